/*
 * events_int.h: the event stream's internals (see events.h): the event
 * object the dispatcher builds once and every sink shares, the bounded
 * per-sink queue, the sinks' constructors, and the pure formatting
 * functions (event JSON, setting names, RFC 5424, HEC envelopes and
 * batches) that the unit tests exercise directly.
 */
#ifndef MDM_EVENTS_INT_H
#define MDM_EVENTS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "server/events.h"

/* The largest event (JSON text); a bigger one loses its detail. */
#define MDM_EV_MAX (256 * 1024)

enum mdm_ev_kind {
  MDM_EV_COMPLIANCE = 0,   /* compliance.changed */
  MDM_EV_COMMAND,          /* command.<transition> */
  MDM_EV_AUDIT,            /* audit.<action> */
  MDM_EV_ACCESS            /* access.denied */
};

/* One event, built once, shared by every sink (reference counted).
 * Immutable once queued. */
struct mdm_event {
  atomic_int refs;
  enum mdm_ev_kind kind;
  int severity;            /* syslog severity, 0..7 */
  int64_t time_ms;
  /* A few fields again, for syslog's structured data (NULL: absent). */
  const char *type, *tenant, *device_id, *state, *setting;
  const char *json;        /* the event object, compact, one line */
  size_t json_len;
  char data[];
};

/* A copy of tmpl with its strings in one allocation, 1 reference.  NULL on
 * ENOMEM. */
struct mdm_event *mdm_event_new(const struct mdm_event *tmpl);
void mdm_event_ref(struct mdm_event *e);
void mdm_event_unref(struct mdm_event *e);

/* ---- building events (events_format.c, pure) ------------------------- */

/* The brief's name of the setting a compliance rule checks (docs/events.md
 * has the table): by fact path, exact or by prefix ("encryption.*" ->
 * DeviceEncryption); a fact with no entry gives the rule's name, and no
 * fact at all gives NULL. */
const char *mdm_ev_setting_name(const char *fact, const char *rule);

/* The state of one thread that builds events: event ids (UUID-shaped,
 * random per process, unique within it), the time of the last second
 * formatted, and a scratch buffer.  _init allocates; _release frees. */
struct mdm_ev_ids {
  uint64_t seed, n;
  int64_t ts_sec;
  char ts_prefix[24];
  struct mdm_buf scratch;
};
void mdm_ev_ids_init(struct mdm_ev_ids *ids, uint64_t seed);
void mdm_ev_ids_release(struct mdm_ev_ids *ids);
void mdm_ev_id_next(struct mdm_ev_ids *ids, char out[37]);

/* Append s as a JSON string (quotes included) to b; NULL gives null.
 * Control characters are escaped and invalid UTF-8 becomes U+FFFD, so the
 * result is always valid JSON. */
mdm_rc mdm_ev_json_str(struct mdm_buf *b, const char *s);

/* A list of events built from one change. */
struct mdm_ev_list {
  struct mdm_event *items[64];
  size_t n;
  size_t n_merged;         /* settings over the 64 cap, folded away */
};
void mdm_ev_list_release(struct mdm_ev_list *l);

/* Build the events of change ch (docs/events.md) into out: one per failing
 * setting of a compliance change (one with setting null when the device
 * has none), one per audit record (command.* records become
 * command.<transition>).  tenant_name may be NULL (then the id is used).
 * MDM_ERR_NOMEM. */
mdm_rc mdm_ev_from_change(const struct mdm_change *ch,
                          const char *tenant_name, struct mdm_ev_ids *ids,
                          struct mdm_ev_list *out);

/* The access.denied event. */
mdm_rc mdm_ev_access(int64_t at_ms, const char *tenant_id,
                     const char *tenant_name, const char *device_id,
                     const char *upn, const char *detail_json,
                     struct mdm_ev_ids *ids, struct mdm_event **out);

/* ---- syslog (RFC 5424, RFC 6587 octet counting) ----------------------- */

/* The SD-ID of our structured data (the enterprise number is the one
 * RFC 5612 reserves for documentation; docs/events.md). */
#define MDM_SYSLOG_SDID "mdm@32473"

/* Append one framed message "LEN SP <PRI>1 TIMESTAMP HOST APP PROCID MSGID
 * [SD] MSG" for e to b.  Header fields are cut to their RFC 5424 lengths
 * and anything outside printable US-ASCII becomes '_'; SD values escape
 * '"', '\' and ']'.  The MSG is the event's JSON (UTF-8, no BOM). */
mdm_rc mdm_syslog_frame(struct mdm_buf *b, int facility,
                        const char *hostname, const char *app, int pid,
                        const struct mdm_event *e);

/* Parse "local0".."local7", "user", "daemon", "auth", "authpriv",
 * "syslog" or a number 0..23; -1 if none. */
int mdm_syslog_facility(const char *name);

/* ---- Splunk HEC -------------------------------------------------------- */

struct mdm_hec_meta {
  const char *host, *source, *index;
  const char *sourcetype;            /* compliance events */
};

/* Append e's HEC envelope and a newline to b:
 * {"time":1732800000.123,"host":..,"source":..,"sourcetype":..,
 *  "index":..,"event":{...}}.  Compliance events get m->sourcetype;
 * others mdm:command, mdm:audit, mdm:access. */
mdm_rc mdm_hec_envelope(struct mdm_buf *b, const struct mdm_hec_meta *m,
                        const struct mdm_event *e);

/* How many bytes of data (newline-terminated envelopes) make the next
 * batch: whole lines only, at most max_events lines and max_bytes bytes
 * (but always at least one whole line).  *n_events gets the count.  0 when
 * data holds no complete line. */
size_t mdm_hec_batch_len(const char *data, size_t len, size_t max_events,
                         size_t max_bytes, size_t *n_events /* OUT */);

/* ---- sinks ------------------------------------------------------------ */

/* A sink: a bounded queue of events that its own thread(s) drain.  The
 * dispatcher pushes without blocking; when the queue is full the event is
 * dropped and counted. */
struct mdm_sink {
  const char *name;
  pthread_mutex_t lock;
  pthread_cond_t cond;        /* events queued, or stop */
  pthread_cond_t stop_cond;   /* stop only (mdm_sink_wait) */
  struct mdm_event **ring;
  size_t cap, head, n;
  int is_ready;               /* initialized */
  int is_stopping;
  int64_t deadline_ms;        /* monotonic; when stopping */
  atomic_ullong n_delivered, n_dropped, n_failures, spool_bytes;
  atomic_llong last_drop_log_ms;
  void *impl;
  /* Start the thread(s); stop (drain by deadline_ms, join); free impl. */
  mdm_rc (*start)(struct mdm_sink *s);
  void (*stop)(struct mdm_sink *s);
  void (*destroy)(struct mdm_sink *s);
};

mdm_rc mdm_sink_init(struct mdm_sink *s, const char *name, size_t cap);
void mdm_sink_release(struct mdm_sink *s);
/* Queue e (takes a reference) or drop it when full.  Never blocks. */
void mdm_sink_push(struct mdm_sink *s, struct mdm_event *e);
/* Wait up to timeout_ms (<0: until something comes or stop) and move up
 * to max queued events into out (the caller owns those references).
 * Returns the count; 0 on timeout or when stopping with nothing left. */
size_t mdm_sink_take(struct mdm_sink *s, struct mdm_event **out, size_t max,
                     int timeout_ms);
/* Sleep up to timeout_ms, waking early when asked to stop. */
void mdm_sink_wait(struct mdm_sink *s, int timeout_ms);
/* Events waiting in the queue. */
size_t mdm_sink_queued(struct mdm_sink *s);
/* Is the sink asked to stop? (and *deadline_ms when so) */
int mdm_sink_is_stopping(struct mdm_sink *s, int64_t *deadline_ms);
/* Ask the threads to stop by deadline_ms. */
void mdm_sink_request_stop(struct mdm_sink *s, int64_t deadline_ms);
/* Count n lost events, with an error line at most every 10 s. */
void mdm_sink_count_drop(struct mdm_sink *s, uint64_t n, const char *why);

/* Monotonic milliseconds. */
int64_t mdm_ev_mono_ms(void);

/* Start writing back what was appended to fd since *synced_to, once it is
 * MDM_EV_WRITEBACK bytes or more (sync_file_range, not waiting).  Dirty
 * pages then go to disk steadily, in small pieces, rather than in one
 * large flush at the next fsync, which on ext4 (data=ordered) would hold
 * up the store's own fsyncs behind it.  end is fd's size now. */
#define MDM_EV_WRITEBACK (1 << 20)
void mdm_ev_writeback(int fd, long long *synced_to, long long end);

/* The event threads run at the lowest priority (nice +19): they use the
 * CPU time the threads that answer requests and re-evaluate tenants leave.
 * On a saturated machine the stream falls behind (its queues absorb that,
 * then drop and count) rather than slowing those.  The store's writer
 * and the request threads never wait for a lock of theirs (changes come
 * through a lock-free inbox), so a preempted event thread cannot hold
 * them up.  (The user principal names the dispatcher reads come through
 * a store connection of their own; only a tenant's name, read once, uses
 * the shared readers.)  Call at the start of each event
 * thread, with the thread's name (as top -H and ps -L show it). */
#define MDM_EV_NICE 19
void mdm_ev_thread_background(const char *name /* at most 15 bytes */);

/* The sinks.  Each prints one clear line on stderr when it cannot start. */
mdm_rc mdm_sink_file_new(const struct mdm_events_config *cfg,
                         struct mdm_sink **out);
mdm_rc mdm_sink_syslog_new(const struct mdm_events_config *cfg,
                           const char *hostname, struct mdm_sink **out);
mdm_rc mdm_sink_hec_new(const struct mdm_events_config *cfg,
                        const char *data_dir, const char *hostname,
                        struct mdm_sink **out);

/* Parse "HOST:PORT" after a scheme (IPv6 as [::1]:PORT) into host and
 * port. -1 if malformed. */
int mdm_ev_parse_hostport(const char *s, char *host, size_t host_len,
                          int *port);

#endif
