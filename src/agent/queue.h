/*
 * queue.h: the agent's on-disk telemetry queue.  Events the agent collects
 * wait here until the server acknowledges them, so a server that is away
 * loses nothing and a killed agent loses nothing it had queued.  The queue is
 * bounded: when full it drops the oldest event and counts it, and that count
 * travels in the next batch ("dropped") until a batch carrying it is
 * acknowledged.
 *
 * On disk, in the queue directory (created 0700, files 0600):
 *   journal.jsonl  one event per line, compact JSON, oldest first:
 *                  {"seq":N,"at":"RFC 3339","type":"…","data":{…}}
 *                  appended with one write() and fsync'd before push returns;
 *   meta.json      {"version":1,"first_seq":F,"next_seq":N,"dropped":D},
 *                  replaced atomically (temp file, fsync, rename);
 *   lock           flock()ed while the queue is open (one agent at a time).
 * Lines with seq < first_seq are acknowledged or dropped ("dead"); the
 * journal is rewritten without them when they outweigh the live ones.  The
 * next seq is max(meta next_seq, highest seq in the journal + 1), so a seq is
 * never reused, across restarts and after everything was acknowledged.  A
 * torn last line (a crash mid-append) is cut off at open; other unreadable
 * lines are skipped with a warning.
 *
 * Not thread-safe: one thread uses a queue at a time.
 */
#ifndef MDM_AGENT_QUEUE_H
#define MDM_AGENT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_QUEUE_DEFAULT_MAX 10000   /* events */
#define MDM_QUEUE_LIMIT_MAX 1000000   /* the largest bound one may ask for */
#define MDM_QUEUE_MAX_EVENT 8192      /* bytes of one serialized event */
#define MDM_QUEUE_MAX_TYPE 64         /* bytes of an event type */

struct mdm_queue;

/* Open (creating if needed) the queue in directory dir, keeping at most
 * max_events events (1..MDM_QUEUE_LIMIT_MAX).  If the journal holds more than
 * that, the oldest are dropped and counted.  MDM_ERR_BUSY when another
 * process has the queue open.  Caller owns *out; free with mdm_queue_free(). */
mdm_rc mdm_queue_open(const char *dir, size_t max_events,
                      struct mdm_queue **out /* OUT */);
/* Close the queue and free it.  NULL is fine. */
void mdm_queue_free(struct mdm_queue *q);

/* Append an event of the given type (1..MDM_QUEUE_MAX_TYPE bytes) with data
 * (borrowed; NULL means {}) stamped at_ms (epoch milliseconds), durably.
 * Data that would make the event larger than MDM_QUEUE_MAX_EVENT is replaced
 * by {"truncated": true, "original_size": N} keeping a shortened "fact" and
 * "message" if present.  When the queue is full the oldest event is dropped
 * and counted first.  *seq_out (may be NULL) gets the event's seq. */
mdm_rc mdm_queue_push(struct mdm_queue *q, const char *type, json_t *data,
                      int64_t at_ms, uint64_t *seq_out /* OUT */);

/* The oldest events, at most max_n of them and at most max_bytes of
 * serialized events (but always at least one event if any is queued), as a
 * new JSON array in *events (caller owns it; json_decref()).  *last_seq is the
 * seq of the last one, 0 when the queue is empty.  Nothing is removed. */
mdm_rc mdm_queue_peek(struct mdm_queue *q, size_t max_n, size_t max_bytes,
                      json_t **events /* OUT */, uint64_t *last_seq /* OUT */);

/* The server acknowledged every event up to last_seq (0: none) and a dropped
 * count of dropped_sent: remove those events and subtract dropped_sent from
 * the dropped counter, durably.  MDM_ERR_INVAL, changing nothing, when
 * last_seq was never handed out or dropped_sent exceeds the counter.
 * Acknowledging events already gone is not an error. */
mdm_rc mdm_queue_ack(struct mdm_queue *q, uint64_t last_seq,
                     uint64_t dropped_sent);

/* Events waiting. */
size_t mdm_queue_count(const struct mdm_queue *q);
/* Events dropped to the bound and not yet reported in an acknowledged batch. */
uint64_t mdm_queue_dropped(const struct mdm_queue *q);
/* The seq the next pushed event will get. */
uint64_t mdm_queue_next_seq(const struct mdm_queue *q);

#endif
