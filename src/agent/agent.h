/*
 * agent.h: the agent's run loop (`mdm-agent run`).  Each round collects the
 * facts, queues a fact_changed event for every leaf that changed since the
 * last round, checks in, and flushes the telemetry queue in batches.  Errors
 * are queued as (rate-limited) error events and make the loop back off
 * exponentially; SIGTERM/SIGINT end it with an agent_stopped event and one
 * last, short flush.  When the credentials name an MQTT broker, a wake-up
 * from it (push.h) starts a round early; the broker is never needed.
 *
 * The pure pieces (diff, backoff, jitter) are exported for the unit tests.
 */
#ifndef MDM_AGENT_AGENT_H
#define MDM_AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_AGENT_BATCH_MAX 500            /* events per telemetry batch */
#define MDM_AGENT_BATCH_BYTES (900 * 1024) /* under the server's 1 MiB */
#define MDM_AGENT_BACKOFF_MAX_S 300
#define MDM_AGENT_ERROR_EVERY_S 60   /* the same error is queued once a minute */
#define MDM_AGENT_PUSH_DEBOUNCE_MS 500    /* at most one woken round per 0.5 s */

struct mdm_agent_opts {
  const char *state_dir;   /* credentials and queue */
  const char *root;        /* the device's "/" (NULL: the real one) */
  const char *ca_file;     /* overrides the CA file of the credentials */
  const char *config;      /* agent.conf to read (NULL: <state_dir>/agent.conf,
                              optional); see config.h */
  size_t queue_max;        /* events kept at most */
  int is_once;             /* one round, then return */
};

/* Run the agent until SIGTERM/SIGINT (or one round with is_once).
 * Returns MDM_OK after a signal in loop mode, or once a wipe command made the
 * device unmanaged (credentials removed); with is_once, MDM_OK if the
 * check-in succeeded, MDM_ERR_AUTH if the server refused the device's token,
 * another error otherwise.  Errors that stop it from starting (not enrolled,
 * queue busy) come back at once with a one-line reason in err[n]. */
mdm_rc mdm_agent_run(const struct mdm_agent_opts *o, char *err, size_t n);

/* Called for each leaf fact that differs: path is dotted ("os.version"),
 * old_v/new_v are borrowed and NULL when absent.  A non-OK return stops the
 * walk and is returned by mdm_agent_diff_facts(). */
typedef mdm_rc (*mdm_agent_diff_cb)(const char *path, json_t *old_v,
                                    json_t *new_v, void *ud);

/* Walk old and new (both borrowed) and report every leaf that differs, in
 * sorted key order.  Objects are descended; an absent key and null are the
 * same; an object against an absent/null value reports each of its leaves;
 * anything else (arrays, an object against a scalar) is compared whole. */
mdm_rc mdm_agent_diff_facts(json_t *old_facts, json_t *new_facts,
                            mdm_agent_diff_cb cb, void *ud);

/* base_ms scaled by a factor in [1 - pct/100, 1 + pct/100), u in [0, 1). */
int64_t mdm_agent_jitter_ms(int64_t base_ms, int pct, double u);

/* The wait after the attempt-th consecutive failure (0-based): 1 s, 2 s,
 * 4 s, … capped at cap_ms, with ±20% jitter from u in [0, 1). */
int64_t mdm_agent_backoff_ms(unsigned attempt, int64_t cap_ms, double u);

#endif
