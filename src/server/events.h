/*
 * events.h: the event stream for a SIEM (docs/events.md).  Every audit
 * record (command transitions included) and every compliance change the
 * store commits, and every access denial, becomes a JSON event with stable
 * field names, written to any of three sinks at once: a JSON-lines file
 * (rotated by size), syslog (RFC 5424 over TCP with RFC 6587 octet
 * counting, optionally TLS) and Splunk's HTTP Event Collector (batched,
 * retried, spooled on disk).
 *
 * Where events come from: the store's change feed (store.h), which hands
 * over what each group commit made durable, on the writer's thread, after
 * the callers have their answers.  So an event is never reported for a
 * change that did not happen, and the request path pays only for copying
 * the change and queueing it.  From there:
 *
 *   store writer --hook--> lock-free bounded inbox --> dispatcher thread
 *   (builds the JSON once) --> one bounded queue per sink --> the sink's
 *   own thread(s)
 *
 * Nothing here ever blocks a request or the store: a full queue drops (and
 * counts, and says so in the log at most every 10 s); a slow or dead sink
 * only fills its own queue.  The HEC sink writes every event to its spool
 * in the data dir before sending, so an outage of the receiver loses
 * nothing until the spool's cap, where the oldest are dropped (counted,
 * logged as errors).
 */
#ifndef MDM_EVENTS_H
#define MDM_EVENTS_H

#include <stdint.h>
#include <jansson.h>
#include "core/rc.h"
#include "store/store.h"

/* What mdmd's flags say (docs/man/mdmd.8); "" / 0 where not given. */
struct mdm_events_config {
  long long queue_max;           /* events waiting per sink (100000) */
  /* JSON-lines file */
  char file[1024];               /* "" = no file sink */
  long long file_max_size;       /* bytes before rotation (default 100 MiB) */
  int file_keep;                 /* rotated files kept (default 5) */
  /* syslog */
  char syslog[300];              /* tcp://HOST:PORT or tls://HOST:PORT */
  char syslog_ca_file[1024];     /* CA to verify a tls:// receiver */
  int syslog_facility;           /* 0..23 (default 16, local0) */
  /* Splunk HEC */
  char hec_url[1024];            /* http(s)://HOST:PORT[/services/...] */
  char hec_token_file[1024];     /* mode 0600 or stricter */
  char hec_ca_file[1024];        /* CA to verify an https:// receiver */
  char hec_index[128];           /* default mdm_logs */
  char hec_sourcetype[128];      /* compliance events (intune_compliance) */
  int hec_batch;                 /* events per request (default 100) */
  int hec_batch_ms;              /* longest wait to fill one (default 1000) */
  long long hec_spool_max;       /* bytes of spool (default 256 MiB) */
};

/* Fill c with the defaults above. */
void mdm_events_config_defaults(struct mdm_events_config *c);
/* Is any sink configured? */
int mdm_events_config_enabled(const struct mdm_events_config *c);
/* Apply one setting by its flag name without "--" ("events-file"...):
 * 0 done, -1 invalid value, -2 not an events setting.  For main.c. */
int mdm_events_config_set(struct mdm_events_config *c, const char *key,
                          const char *val);

struct mdm_events;

/* Counters, for logs now and for /metrics later.  Monotonic. */
struct mdm_events_sink_stats {
  const char *name;              /* "file", "syslog", "hec" */
  uint64_t n_delivered;          /* written / sent (HEC: acknowledged 2xx) */
  uint64_t n_dropped;            /* lost: queue full, or spool cap reached */
  uint64_t n_failures;           /* failed writes, connects, requests */
  uint64_t spool_bytes;          /* HEC: bytes waiting in the spool */
};
struct mdm_events_stats {
  uint64_t n_changes;            /* store changes received */
  uint64_t n_events;             /* events built */
  uint64_t n_dropped;            /* changes dropped: the first queue full */
  int n_sinks;
  struct mdm_events_sink_stats sinks[3];
};

/* Check the configuration (token file mode, URLs, CA files), open the
 * sinks (the file, the HEC spool under data_dir) and start their threads.
 * On failure a clear line has been printed on stderr ("mdmd: ...").
 * MDM_ERR_INVAL for a bad combination of settings, MDM_ERR_FORBIDDEN for a
 * token file others may read, MDM_ERR_IO for a file that cannot be
 * opened.  Caller owns *out; free with mdm_events_free() (after
 * mdm_events_stop()). */
mdm_rc mdm_events_new(const struct mdm_events_config *cfg,
                      const char *data_dir,
                      struct mdm_events **out /* OUT */);

/* Take st's changes from now on (mdm_store_set_change_hook); tenant names
 * and user principal names are read from st, which must outlive ev's
 * dispatcher (stop ev before closing st).  Before st is shared between
 * threads.  ev may be NULL: does nothing. */
void mdm_events_attach(struct mdm_events *ev, struct mdm_store *st);

/* The store change hook (mdm_change_fn): queue the set for the
 * dispatcher; never blocks, takes no lock.  ctx is the struct
 * mdm_events. */
void mdm_events_on_change(void *ctx, struct mdm_change_set *set);

/* An access denial (conditional access, issue 5's enforcement): one
 * access.denied event.  tenant_id required; device_id, upn may be NULL;
 * detail (borrowed, may be NULL) is an object merged into the event:
 * {application, decision, reasons, policies, ...}.  Never blocks; ev may
 * be NULL (no stream configured).  Thread-safe. */
void mdm_events_access_denied(struct mdm_events *ev, const char *tenant_id,
                              const char *device_id, const char *upn,
                              json_t *detail);

/* Drain and stop: every queued change becomes events, the file is written
 * and synced, syslog and HEC send what they can until deadline_ms (a
 * CLOCK_MONOTONIC time in ms, mdm_mono_ns() / 1000000); what HEC could
 * not send stays in its spool for the next start.  Threads are joined.
 * Changes arriving afterwards are dropped (counted).  NULL is fine. */
void mdm_events_stop(struct mdm_events *ev, int64_t deadline_ms);
/* Free (stops first if needed, with no time to send).  NULL is fine. */
void mdm_events_free(struct mdm_events *ev);

/* A snapshot of the counters.  Thread-safe. */
void mdm_events_get_stats(struct mdm_events *ev,
                          struct mdm_events_stats *out /* OUT */);

#endif
