/*
 * agent.c: the run loop of mdm-agent (see agent.h).
 *
 * One round: facts → fact_changed events → check-in → policy step (fetch,
 * verify and enforce the configuration bundle when the check-in's
 * policy_etag differs from the applied one; see policy.h) → command step
 * (undelivered results are sent again; GET /v1/agent/commands when the
 * check-in answered pending_commands > 0; see commands.h) → telemetry
 * flush.  refresh_inventory is one more facts + check-in, at once.  Every check-in carries the policy_status kept by the last policy
 * step, so what a step did reaches the server with the next check-in.
 * Between rounds the loop waits the server's check-in interval (±10%), or
 * after a failure 1 s, 2 s, 4 s … up to min(interval, 5 min) (±20%).  The
 * wait is a poll() on a self-pipe that the SIGTERM/SIGINT handler writes to,
 * and libcurl's progress callback abandons a request in flight when the stop
 * flag is up, so the agent answers a signal within about a second.
 *
 * When the credentials name a broker (and not with --once), a push session
 * (push.h) runs beside the loop; its pipe is polled with the signal pipe, so
 * a wake-up ends the wait early and starts a round, at most one such extra
 * round per MDM_AGENT_PUSH_DEBOUNCE_MS (a burst of wake-ups makes one round).
 * The wake-up only says "look now": everything still comes over HTTPS, and
 * without the broker the loop simply polls.
 *
 * The facts of the last round are kept in last_facts.json once their
 * changes are queued (not once the server has them): the queue is what makes
 * them reach the server, and a server that is away must not make every round
 * queue the same change again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "agent/agent.h"
#include "agent/client.h"
#include "agent/commands.h"
#include "agent/config.h"
#include "agent/enforce.h"
#include "agent/facts.h"
#include "agent/identity.h"
#include "agent/policy.h"
#include "agent/push.h"
#include "agent/queue.h"
#include "agent/state.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#define N_RECENT_ERRORS 16
#define FINAL_FLUSH_MS 5000
#define BACKOFF_ATTEMPT_MAX 30

/* ---- pure helpers ------------------------------------------------------------ */

int64_t mdm_agent_jitter_ms(int64_t base_ms, int pct, double u)
{
  double f = 1.0 + (double)pct / 100.0 * (2.0 * u - 1.0);
  int64_t v = (int64_t)((double)base_ms * f);
  return v < 0 ? 0 : v;
}

int64_t mdm_agent_backoff_ms(unsigned attempt, int64_t cap_ms, double u)
{
  int64_t base = 1000;
  while(attempt-- && base < cap_ms)
    base *= 2;
  if(base > cap_ms)
    base = cap_ms;
  return mdm_agent_jitter_ms(base, 20, u);
}

static int key_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int is_none(json_t *v)
{
  return !v || json_is_null(v);
}

static mdm_rc diff_walk(struct mdm_buf *path, json_t *o, json_t *n,
                        mdm_agent_diff_cb cb, void *ud)
{
  const char **keys = NULL;
  size_t n_keys = 0, i, mark = path->len;
  const char *k;
  json_t *v;
  mdm_rc rc = MDM_OK;

  if(is_none(o) && is_none(n))
    return MDM_OK;
  if(!((json_is_object(o) && (json_is_object(n) || is_none(n))) ||
       (json_is_object(n) && is_none(o)))) {
    if(o && n && json_equal(o, n))
      return MDM_OK;
    return cb(path->data ? path->data : "", is_none(o) ? NULL : o,
              is_none(n) ? NULL : n, ud);
  }

  /* The union of the keys, sorted, without repeats. */
  keys = malloc((json_object_size(o) + json_object_size(n) + 1) *
                sizeof(*keys));
  if(!keys)
    return MDM_ERR_NOMEM;
  json_object_foreach(o, k, v)
    keys[n_keys++] = k;
  json_object_foreach(n, k, v)
    if(!json_object_get(o, k))
      keys[n_keys++] = k;
  qsort(keys, n_keys, sizeof(*keys), key_cmp);
  for(i = 0; i < n_keys && !rc; i++) {
    json_t *co = json_object_get(o, keys[i]), *cn = json_object_get(n, keys[i]);
    if((mark && mdm_buf_puts(path, ".")) || mdm_buf_puts(path, keys[i])) {
      /* A path too long to name: report the object whole. */
      path->len = mark;
      if(path->data)
        path->data[mark] = '\0';
      if(!json_equal(co ? co : json_null(), cn ? cn : json_null())) {
        rc = cb(path->data ? path->data : "", o, n, ud);
        break;
      }
      continue;
    }
    rc = diff_walk(path, co, cn, cb, ud);
    path->len = mark;
    path->data[mark] = '\0';
  }
  free(keys);
  return rc;
}

mdm_rc mdm_agent_diff_facts(json_t *old_facts, json_t *new_facts,
                            mdm_agent_diff_cb cb, void *ud)
{
  struct mdm_buf path;
  mdm_rc rc;
  mdm_buf_init(&path, 1024);
  rc = diff_walk(&path, old_facts, new_facts, cb, ud);
  mdm_buf_release(&path);
  return rc;
}

/* ---- signals ------------------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;
static int sig_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
  int saved = errno;
  ssize_t w;
  stop_signal = signo;
  w = write(sig_pipe[1], "x", 1);
  (void)w;
  errno = saved;
}

static mdm_rc signals_install(void)
{
  struct sigaction sa;
  if(sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    return MDM_ERR_IO;
  stop_signal = 0;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if(sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    return MDM_ERR_IO;
  return MDM_OK;
}

static void signals_restore(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

enum sleep_result { SLEEP_DONE, SLEEP_STOPPED, SLEEP_WOKEN };

/* Wait ms milliseconds, or less if a stop signal comes or (push_fd >= 0)
 * push_fd becomes readable.  The push pipe is left for the caller to
 * drain. */
static enum sleep_result agent_sleep(int64_t ms, int push_fd)
{
  int64_t end = mdm_mono_ns() + ms * 1000000;
  while(!stop_signal) {
    int64_t left = (end - mdm_mono_ns()) / 1000000;
    struct pollfd p[2];
    if(left <= 0)
      return SLEEP_DONE;
    p[0].fd = sig_pipe[0];
    p[0].events = POLLIN;
    p[0].revents = 0;
    p[1].fd = push_fd;
    p[1].events = POLLIN;
    p[1].revents = 0;
    if(poll(p, push_fd >= 0 ? 2 : 1,
            left > INT_MAX ? INT_MAX : (int)left) > 0) {
      char drain[64];
      if(p[0].revents)
        while(read(sig_pipe[0], drain, sizeof(drain)) > 0)
          ;
      if(push_fd >= 0 && p[1].revents && !stop_signal)
        return SLEEP_WOKEN;
    }
  }
  return SLEEP_STOPPED;
}

static double rand_unit(void)
{
  uint32_t r = 0;
  if(mdm_random(&r, sizeof(r)))
    r = (uint32_t)mdm_mono_ns();
  return (double)r / 4294967296.0;
}

/* ---- the agent ------------------------------------------------------------------ */

enum round_result { ROUND_OK, ROUND_FAIL, ROUND_AUTH };

struct agent {
  const struct mdm_agent_opts *o;
  struct mdm_creds creds;
  struct mdm_agent_config cfg;
  struct mdm_client *client;
  struct mdm_queue *queue;
  struct mdm_push *push;  /* NULL: polling only */
  struct mdm_identity ident;   /* the device certificate in use */
  int has_ident;
  struct {
    char msg[256];
    int64_t at_ns;
  } recent[N_RECENT_ERRORS];
  char last_error[256];   /* for the one line `run --once` ends with */
};

/* ---- push ---------------------------------------------------------------------- */

/* Start the broker session when the credentials name one.  Failing to start
 * it is logged and leaves the agent polling. */
static void agent_push_start(struct agent *a)
{
  struct mdm_push_opts po;
  char why[256];
  mdm_rc rc;

  if(!a->creds.mqtt_url)
    return;
  memset(&po, 0, sizeof(po));
  po.url = a->creds.mqtt_url;
  po.topic = a->creds.mqtt_topic;
  po.client_id = a->creds.device_id;
  po.username = a->creds.mqtt_username;
  po.password = a->creds.mqtt_password;
  po.ca_file = a->o->ca_file ? a->o->ca_file : a->creds.ca_file;
  why[0] = '\0';
  rc = mdm_push_new(&po, &a->push, why, sizeof(why));
  if(rc)
    mdm_warn("push: %s; polling only", why[0] ? why : mdm_strerror(rc));
}

static void agent_event(struct agent *a, const char *type, json_t *data)
{
  mdm_rc rc = mdm_queue_push(a->queue, type, data, mdm_now_ms(), NULL);
  if(rc)
    mdm_warn("cannot queue a '%s' event: %s", type, mdm_strerror(rc));
}

/* Log an error and queue it as an error event, unless the same message was
 * queued less than a minute ago. */
static void agent_error(struct agent *a, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void agent_error(struct agent *a, const char *fmt, ...)
{
  char msg[256];
  va_list ap;
  int64_t now = mdm_mono_ns();
  size_t i, slot = 0;
  json_t *data;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  mdm_warn("%s", msg);
  memcpy(a->last_error, msg, sizeof(msg));
  for(i = 0; i < N_RECENT_ERRORS; i++) {
    if(!strcmp(a->recent[i].msg, msg)) {
      if(now - a->recent[i].at_ns < (int64_t)MDM_AGENT_ERROR_EVERY_S *
         1000000000)
        return;
      slot = i;
      break;
    }
    if(a->recent[i].at_ns < a->recent[slot].at_ns)
      slot = i;
  }
  mdm_strlcpy(a->recent[slot].msg, msg, sizeof(a->recent[slot].msg));
  a->recent[slot].at_ns = now;
  data = json_pack("{s:s}", "message", msg);
  if(data)
    agent_event(a, "error", data);
  json_decref(data);
}

static mdm_rc on_fact_changed(const char *path, json_t *old_v, json_t *new_v,
                              void *ud)
{
  struct agent *a = ud;
  json_t *data = json_pack("{s:s, s:O?, s:O?}", "fact", path, "old", old_v,
                           "new", new_v);
  mdm_rc rc;
  if(!data)
    return MDM_ERR_NOMEM;
  mdm_info("fact changed: %s", path);
  rc = mdm_queue_push(a->queue, "fact_changed", data, mdm_now_ms(), NULL);
  json_decref(data);
  return rc;
}

/* Queue what changed since the last round and remember these facts. */
static void agent_record_changes(struct agent *a, json_t *facts)
{
  json_t *last = NULL;
  mdm_rc rc = mdm_state_load_facts(a->o->state_dir, &last);
  if(!rc && json_equal(last, facts)) {
    json_decref(last);
    return;
  }
  if(!rc) {
    rc = mdm_agent_diff_facts(last, facts, on_fact_changed, a);
    if(rc) {
      /* Keep the old baseline, so the change is found again next round. */
      mdm_warn("cannot queue fact changes: %s", mdm_strerror(rc));
      json_decref(last);
      return;
    }
  }
  json_decref(last);
  rc = mdm_state_save_facts(a->o->state_dir, facts);
  if(rc)
    mdm_warn("cannot keep the facts in '%s': %s", a->o->state_dir,
             mdm_strerror(rc));
}

/* ---- the device certificate ---------------------------------------------------- */

/* Use id from now on: the client presents it over https (on a new
 * connection). */
static void agent_use_identity(struct agent *a, const struct mdm_identity *id)
{
  a->ident = *id;
  a->has_ident = 1;
  if(mdm_client_set_identity(a->client, id->cert_file, id->key_file))
    mdm_warn("cannot present the device certificate: %s",
             mdm_strerror(MDM_ERR_NOMEM));
}

static void agent_identity_load(struct agent *a)
{
  struct mdm_identity id;
  char why[512];
  mdm_rc rc = mdm_identity_load(a->o->state_dir, a->creds.device_id, &id,
                                why, sizeof(why));
  if(!rc)
    agent_use_identity(a, &id);
  else if(rc != MDM_ERR_NOTFOUND)
    mdm_warn("not using the device certificate: %s", why);
}

/* Renew the certificate now (identity.h); why[n] says why not. */
static mdm_rc agent_renew(struct agent *a, char *why, size_t n)
{
  struct mdm_identity id;
  char until[32];
  mdm_rc rc = mdm_identity_renew(a->o->state_dir, a->creds.device_id,
                                 a->client, a->creds.device_token, &id, why,
                                 n);
  if(rc)
    return rc;
  agent_use_identity(a, &id);
  mdm_time_format(id.not_after, until, sizeof(until));
  mdm_info("device certificate renewed: sha256 %s, valid until %s",
           id.fingerprint, until);
  return MDM_OK;
}

/* Renew once two thirds of the certificate's life are gone, or at once
 * when the server refused it but took the token.  A failure is one line
 * (and a rate-limited error event); the next round tries again. */
static void agent_identity_step(struct agent *a)
{
  char why[512];
  int is_refused = mdm_client_cert_refused(a->client);
  if(!a->has_ident || stop_signal)
    return;
  if(!is_refused && !mdm_identity_renew_due(a->ident.not_before,
                                            a->ident.not_after,
                                            mdm_now_ms() / 1000))
    return;
  if(is_refused)
    mdm_info("renewing the device certificate the server refused");
  if(agent_renew(a, why, sizeof(why)))
    agent_error(a, "certificate renewal failed: %s", why);
}

/* rotate_certificate: renew now, whatever the certificate's age. */
static mdm_rc agent_rotate_cert(void *ud, char *detail, size_t n)
{
  struct agent *a = ud;
  char why[512], *text = NULL;
  json_t *d;
  mdm_rc rc = agent_renew(a, why, sizeof(why));
  if(rc) {
    snprintf(detail, n, "certificate renewal failed: %s", why);
    return rc;
  }
  d = json_pack("{s:I, s:s}", "not_after", (json_int_t)a->ident.not_after,
                "fingerprint", a->ident.fingerprint);
  if(d)
    text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(d);
  if(!text) {
    /* Renewed all the same: say so rather than fail. */
    snprintf(detail, n, "{\"fingerprint\":\"%s\"}", a->ident.fingerprint);
    return MDM_OK;
  }
  snprintf(detail, n, "%s", text);
  free(text);
  return MDM_OK;
}

/* The policy fetcher talks like the client: same CA, same certificate. */
static void agent_policy_http(struct agent *a, struct mdm_policy_http *http)
{
  memset(http, 0, sizeof(*http));
  http->server = a->creds.server;
  http->ca_file = a->o->ca_file ? a->o->ca_file : a->creds.ca_file;
  http->device_token = a->creds.device_token;
  mdm_client_identity(a->client, &http->cert_file, &http->key_file);
  http->abort_flag = &stop_signal;
}

/* Is s fit to go back to the server in an If-None-Match header? */
static int is_etag(const char *s)
{
  size_t i;
  for(i = 0; s[i]; i++)
    if((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
      return 0;
  return i >= 1 && i <= MDM_POLICY_ETAG_MAX;
}

/* Check in with facts (and the kept policy_status).  The answer's
 * policy_etag goes to etag[MDM_POLICY_ETAG_MAX + 1] ("" when none), its
 * pending_commands to *pending. */
static enum round_result agent_checkin(struct agent *a, json_t *facts,
                                       char *etag, long long *pending)
{
  struct mdm_response resp;
  char why[512];
  json_t *body = json_pack("{s:O}", "facts", facts), *iv, *pstatus = NULL;
  enum round_result res = ROUND_FAIL;
  mdm_rc rc;

  etag[0] = '\0';
  *pending = 0;
  if(body && mdm_policy_load_status(a->o->state_dir, &pstatus) == MDM_OK &&
     json_object_set_new(body, "policy_status", pstatus)) {
    json_decref(body);
    body = NULL;
  }
  if(!body) {
    agent_error(a, "check-in failed: %s", mdm_strerror(MDM_ERR_NOMEM));
    return ROUND_FAIL;
  }
  rc = mdm_client_post(a->client, "/v1/agent/checkin", a->creds.device_token,
                       body, &resp);
  json_decref(body);
  if(rc) {
    if(rc == MDM_ERR_TOOBIG)
      agent_error(a, "check-in failed: %s", resp.errmsg);
    else if(!stop_signal)   /* a request cut short by SIGTERM is no error */
      agent_error(a, "check-in failed: cannot reach '%s': %s",
                  a->creds.server, resp.errmsg);
    goto out;
  }
  if(resp.status == 401 || resp.status == 403) {
    mdm_response_describe(&resp, why, sizeof(why));
    mdm_error("the server refused this device's credentials (retired or "
              "revoked?): %s", why);
    agent_error(a, "check-in refused: %s", why);
    res = ROUND_AUTH;
    goto out;
  }
  if(resp.status < 200 || resp.status > 299) {
    mdm_response_describe(&resp, why, sizeof(why));
    agent_error(a, "check-in failed: %s", why);
    goto out;
  }
  if(!json_is_object(resp.body)) {
    agent_error(a, "check-in failed: invalid answer from server");
    goto out;
  }
  iv = json_object_get(resp.body, "checkin_interval_s");
  if(json_is_integer(iv)) {
    long long s = mdm_state_clamp_interval(json_integer_value(iv));
    if(s != a->creds.checkin_interval_s) {
      mdm_info("check-in interval is now %llds", s);
      a->creds.checkin_interval_s = s;
      if(mdm_state_save_creds(a->o->state_dir, &a->creds))
        mdm_warn("cannot update the credentials in '%s'", a->o->state_dir);
    }
  }
  iv = json_object_get(resp.body, "policy_etag");
  if(json_is_string(iv) && is_etag(json_string_value(iv)))
    mdm_strlcpy(etag, json_string_value(iv), MDM_POLICY_ETAG_MAX + 1);
  else if(iv && !json_is_null(iv))
    mdm_warn("ignoring an invalid policy_etag from the server");
  {
    json_t *c = json_object_get(resp.body, "compliance");
    json_t *p = json_object_get(resp.body, "pending_commands");
    if(json_is_integer(p) && json_integer_value(p) > 0)
      *pending = (long long)json_integer_value(p);
    mdm_debug("checked in: compliance %s, %lld pending command(s)",
              json_is_string(c) ? json_string_value(c) : "?",
              json_is_integer(p) ? (long long)json_integer_value(p) : 0LL);
  }
  res = ROUND_OK;
out:
  mdm_response_release(&resp);
  return res;
}

/* Send the queue in batches until it is empty.  deadline_ns (0: none) bounds
 * the time spent; is_final ignores the stop flag. */
static enum round_result agent_flush(struct agent *a, int64_t deadline_ns,
                                     int is_final)
{
  size_t max_n = MDM_AGENT_BATCH_MAX, max_bytes = MDM_AGENT_BATCH_BYTES;
  char why[512];

  for(;;) {
    struct mdm_response resp;
    json_t *events = NULL, *body;
    uint64_t last = 0, dropped = mdm_queue_dropped(a->queue);
    size_t n_events;
    mdm_rc rc;

    if(!is_final && stop_signal)
      return ROUND_OK;     /* the final flush follows */
    if(deadline_ns) {
      int64_t left_ms = (deadline_ns - mdm_mono_ns()) / 1000000;
      if(left_ms <= 0)
        return ROUND_FAIL;
      mdm_client_set_timeouts(a->client, left_ms < 2000 ? (long)left_ms : 2000,
                              left_ms < 3000 ? (long)left_ms : 3000);
    }
    rc = mdm_queue_peek(a->queue, max_n, max_bytes, &events, &last);
    if(rc) {
      agent_error(a, "cannot read the telemetry queue: %s", mdm_strerror(rc));
      return ROUND_FAIL;
    }
    n_events = json_array_size(events);
    if(!last && !dropped) {
      json_decref(events);
      return ROUND_OK;
    }
    if(!n_events && last) {     /* only damaged lines: nothing to send */
      json_decref(events);
      if(mdm_queue_ack(a->queue, last, 0))
        return ROUND_FAIL;
      continue;
    }
    body = json_pack("{s:o, s:I}", "events", events, "dropped",
                     (json_int_t)dropped);
    if(!body) {
      agent_error(a, "telemetry failed: %s", mdm_strerror(MDM_ERR_NOMEM));
      return ROUND_FAIL;
    }
    rc = mdm_client_post(a->client, "/v1/agent/telemetry",
                         a->creds.device_token, body, &resp);
    json_decref(body);
    if(rc) {
      if(rc == MDM_ERR_TOOBIG)
        agent_error(a, "telemetry failed: %s", resp.errmsg);
      else if(is_final || !stop_signal)
        agent_error(a, "telemetry failed: cannot reach '%s': %s",
                    a->creds.server, resp.errmsg);
      mdm_response_release(&resp);
      return ROUND_FAIL;
    }
    if(resp.status == 413 && max_n > 1) {
      /* The server takes smaller batches than we thought. */
      max_n = n_events > 1 ? n_events / 2 : 1;
      max_bytes /= 2;
      mdm_response_release(&resp);
      continue;
    }
    if(resp.status < 200 || resp.status > 299 || !json_is_object(resp.body)) {
      if(resp.status >= 200 && resp.status <= 299)
        snprintf(why, sizeof(why), "invalid answer from server");
      else
        mdm_response_describe(&resp, why, sizeof(why));
      agent_error(a, "telemetry failed: %s", why);
      rc = resp.status == 401 || resp.status == 403 ? MDM_ERR_AUTH : MDM_ERR_IO;
      mdm_response_release(&resp);
      return rc == MDM_ERR_AUTH ? ROUND_AUTH : ROUND_FAIL;
    }
    mdm_response_release(&resp);
    rc = mdm_queue_ack(a->queue, last, dropped);
    if(rc) {
      agent_error(a, "cannot update the telemetry queue: %s",
                  mdm_strerror(rc));
      return ROUND_FAIL;
    }
    mdm_debug("sent %zu event(s) up to seq %" PRIu64 ", %" PRIu64
              " dropped", n_events, last, dropped);
    if(dropped) {
      json_t *data = json_pack("{s:I}", "dropped", (json_int_t)dropped);
      mdm_warn("the telemetry queue overflowed: %" PRIu64 " event(s) lost",
               dropped);
      if(data)
        agent_event(a, "queue_overflow", data);
      json_decref(data);
    }
  }
}

/* The policy step: fetch, verify and enforce the bundle when etag (the
 * check-in's policy_etag, "" for none) is not the applied one.  A refused
 * bundle is reported (policy_status and an error event) and is no failure
 * of the round; a bundle that could not be fetched is. */
static enum round_result agent_policy(struct agent *a, json_t *facts,
                                      const char *etag)
{
  struct mdm_policy_http http;
  struct mdm_policy_step_in in;
  enum mdm_policy_outcome outcome;
  char msg[512];
  mdm_rc rc;

  agent_policy_http(a, &http);
  memset(&in, 0, sizeof(in));
  in.state_dir = a->o->state_dir;
  in.device_id = a->creds.device_id;
  in.policy_key = a->creds.policy_key;
  in.server_etag = etag[0] ? etag : NULL;
  in.table = mdm_enforcers_linux;
  in.ctx.root = a->o->root;
  in.ctx.state_dir = a->o->state_dir;
  in.ctx.facts = facts;
  in.fetch = mdm_policy_http_fetch;
  in.fetch_ud = &http;
  rc = mdm_policy_step(&in, &outcome, msg, sizeof(msg));
  if(rc) {
    if(!stop_signal)
      agent_error(a, "%s", msg);
    return ROUND_FAIL;
  }
  if(outcome == MDM_POLICY_REJECTED)
    agent_error(a, "policy %s", msg);
  else if(outcome == MDM_POLICY_APPLIED)
    mdm_info("%s", msg);
  return ROUND_OK;
}

static mdm_rc io_get(void *ud, const char *path, struct mdm_response *resp)
{
  struct agent *a = ud;
  return mdm_client_get(a->client, path, a->creds.device_token, resp);
}

static mdm_rc io_post(void *ud, const char *path, json_t *body,
                      struct mdm_response *resp)
{
  struct agent *a = ud;
  return mdm_client_post(a->client, path, a->creds.device_token, body, resp);
}

/* refresh_inventory: collect the facts and check in now. */
static mdm_rc agent_refresh(void *ud)
{
  struct agent *a = ud;
  json_t *facts = NULL;
  char etag[MDM_POLICY_ETAG_MAX + 1];
  long long pending;
  enum round_result res;
  mdm_rc rc = mdm_facts_collect(a->o->root, &facts);
  if(rc || !json_is_object(facts)) {
    json_decref(facts);
    return rc ? rc : MDM_ERR_INTERNAL;
  }
  agent_record_changes(a, facts);
  res = agent_checkin(a, facts, etag, &pending);
  json_decref(facts);
  return res == ROUND_OK ? MDM_OK : res == ROUND_AUTH ? MDM_ERR_AUTH :
         MDM_ERR_IO;
}

/* install_profile/remove_profile: fetch, verify and enforce the bundle now
 * (actions.h, policy_sync). */
static mdm_rc agent_policy_sync(void *ud, json_t **profiles, char *msg,
                                size_t n)
{
  struct agent *a = ud;
  struct mdm_policy_http http;
  struct mdm_policy_step_in in;
  enum mdm_policy_outcome outcome;
  json_t *facts = NULL;
  mdm_rc rc;

  *profiles = NULL;
  rc = mdm_facts_collect(a->o->root, &facts);
  if(rc || !json_is_object(facts)) {
    json_decref(facts);
    snprintf(msg, n, "cannot read the device's facts");
    return rc ? rc : MDM_ERR_INTERNAL;
  }
  agent_policy_http(a, &http);
  memset(&in, 0, sizeof(in));
  in.state_dir = a->o->state_dir;
  in.device_id = a->creds.device_id;
  in.policy_key = a->creds.policy_key;
  in.table = mdm_enforcers_linux;
  in.ctx.root = a->o->root;
  in.ctx.state_dir = a->o->state_dir;
  in.ctx.facts = facts;
  in.fetch = mdm_policy_http_fetch;
  in.fetch_ud = &http;
  in.is_forced = 1;
  in.profiles = profiles;
  rc = mdm_policy_step(&in, &outcome, msg, n);
  json_decref(facts);
  if(!rc && outcome == MDM_POLICY_REJECTED) {
    agent_error(a, "policy %s", msg);
    json_decref(*profiles);
    *profiles = NULL;
    return MDM_ERR_AUTH;
  }
  if(!rc)
    mdm_info("%s", msg);
  return rc;
}

/* The command step: results not yet delivered, then the pending commands
 * when there are any. */
static enum round_result agent_commands(struct agent *a, int is_fetch,
                                        int *is_unmanaged)
{
  struct mdm_cmd_step_in in;
  struct mdm_cmd_step_out out;
  mdm_rc rc;

  memset(&in, 0, sizeof(in));
  in.state_dir = a->o->state_dir;
  in.root = a->o->root;
  in.cfg = &a->cfg;
  in.table = mdm_actions_linux;
  in.io.get = io_get;
  in.io.post = io_post;
  in.io.ud = a;
  in.is_fetch = is_fetch;
  in.refresh = agent_refresh;
  in.refresh_ud = a;
  in.policy_sync = agent_policy_sync;
  in.policy_sync_ud = a;
  in.rotate_cert = agent_rotate_cert;
  in.rotate_cert_ud = a;
  in.stop = &stop_signal;
  rc = mdm_commands_step(&in, &out);
  *is_unmanaged = out.is_unmanaged;
  if(out.n_run || out.n_reported)
    mdm_debug("commands: %u run, %u result(s) delivered", out.n_run,
              out.n_reported);
  if(rc) {
    if(!stop_signal)
      agent_error(a, "%s", out.errmsg[0] ? out.errmsg :
                  "command step failed");
    return rc == MDM_ERR_AUTH ? ROUND_AUTH : ROUND_FAIL;
  }
  return ROUND_OK;
}

static enum round_result agent_round(struct agent *a, int *is_checked_in,
                                     int *is_unmanaged)
{
  json_t *facts = NULL;
  enum round_result res, cres = ROUND_OK, flushed;
  char etag[MDM_POLICY_ETAG_MAX + 1];
  long long pending = 0;
  mdm_rc rc;

  *is_checked_in = 0;
  agent_identity_step(a);
  rc = mdm_facts_collect(a->o->root, &facts);
  if(rc || !json_is_object(facts)) {
    agent_error(a, "cannot collect facts: %s",
                mdm_strerror(rc ? rc : MDM_ERR_INTERNAL));
    json_decref(facts);
    return ROUND_FAIL;
  }
  agent_record_changes(a, facts);
  res = agent_checkin(a, facts, etag, &pending);
  if(res != ROUND_OK) {
    json_decref(facts);
    return res;
  }
  *is_checked_in = 1;
  agent_identity_step(a);   /* the check-in may have found it refused */
  res = stop_signal ? ROUND_OK : agent_policy(a, facts, etag);
  json_decref(facts);
  if(!stop_signal)
    cres = agent_commands(a, pending > 0, is_unmanaged);
  if(*is_unmanaged)
    return ROUND_OK;
  flushed = agent_flush(a, 0, 0);
  if(res == ROUND_OK)
    res = cres;
  return res != ROUND_OK ? res : flushed;
}

mdm_rc mdm_agent_run(const struct mdm_agent_opts *o, char *err, size_t n)
{
  struct agent a;
  char qdir[PATH_MAX], why[256];
  unsigned attempt = 0;
  int is_checked_in = 0, is_unmanaged = 0;
  enum round_result res = ROUND_FAIL;
  json_t *data;
  mdm_rc rc;

  memset(&a, 0, sizeof(a));
  a.o = o;
  rc = mdm_state_load_creds(o->state_dir, &a.creds, why, sizeof(why));
  if(rc == MDM_ERR_NOTFOUND) {
    snprintf(err, n, "not enrolled (no credentials in '%s'); run 'mdm-agent "
             "enroll' first", o->state_dir);
    return rc;
  }
  if(rc) {
    snprintf(err, n, "%s", why);
    return rc;
  }
  rc = mdm_agent_config_load(o->config, o->state_dir, o->root, &a.cfg, err, n);
  if(rc)
    goto out;
  rc = mdm_state_prepare(o->state_dir);
  if(!rc)
    rc = mdm_state_path(o->state_dir, "queue", qdir, sizeof(qdir));
  if(!rc)
    rc = mdm_queue_open(qdir, o->queue_max, &a.queue);
  if(rc) {
    if(rc == MDM_ERR_BUSY)
      snprintf(err, n, "another mdm-agent is running with state dir '%s'",
               o->state_dir);
    else
      snprintf(err, n, "cannot open the telemetry queue in '%s': %s", qdir,
               mdm_strerror(rc));
    goto out;
  }
  if(o->ca_file && access(o->ca_file, R_OK) != 0) {
    snprintf(err, n, "cannot read CA file '%s'", o->ca_file);
    rc = MDM_ERR_NOTFOUND;
    goto out;
  }
  rc = mdm_client_new(a.creds.server,
                      o->ca_file ? o->ca_file : a.creds.ca_file, &a.client);
  if(rc) {
    snprintf(err, n, "invalid server URL '%s' in the credentials",
             a.creds.server);
    goto out;
  }
  agent_identity_load(&a);
  if(!a.creds.device_token && !(a.has_ident &&
                                !strncasecmp(a.creds.server, "https://", 8))) {
    snprintf(err, n, "no device token in '%s' and no device certificate to "
             "use over https instead; enroll again", o->state_dir);
    rc = MDM_ERR_AUTH;
    goto out;
  }
  rc = signals_install();
  if(rc) {
    snprintf(err, n, "cannot install signal handlers");
    goto out;
  }
  mdm_client_set_abort(a.client, &stop_signal);
  mdm_info("device %s, server %s, %zu event(s) queued", a.creds.device_id,
           a.creds.server, mdm_queue_count(a.queue));

  data = json_pack("{s:s}", "version", MDM_VERSION);
  agent_event(&a, "agent_started", data);
  json_decref(data);

  if(!o->is_once)
    agent_push_start(&a);

  for(;;) {
    int64_t round_ns = mdm_mono_ns();
    enum sleep_result slept;
    res = agent_round(&a, &is_checked_in, &is_unmanaged);
    int64_t cap_ms = (a.creds.checkin_interval_s < MDM_AGENT_BACKOFF_MAX_S ?
                      a.creds.checkin_interval_s : MDM_AGENT_BACKOFF_MAX_S) *
                     1000;
    int64_t wait_ms;

    if(stop_signal || o->is_once || is_unmanaged)
      break;
    if(res == ROUND_OK) {
      attempt = 0;
      wait_ms = mdm_agent_jitter_ms(a.creds.checkin_interval_s * 1000, 10,
                                    rand_unit());
    }
    else {
      if(res == ROUND_AUTH)
        attempt = BACKOFF_ATTEMPT_MAX;
      wait_ms = mdm_agent_backoff_ms(attempt, cap_ms, rand_unit());
      if(attempt < BACKOFF_ATTEMPT_MAX)
        attempt++;
      mdm_info("retrying in %.1fs", (double)wait_ms / 1000.0);
    }
    slept = agent_sleep(wait_ms, a.push ? mdm_push_fd(a.push) : -1);
    if(slept == SLEEP_STOPPED)
      break;
    if(slept == SLEEP_WOKEN) {
      /* Debounce: at most one extra round per MDM_AGENT_PUSH_DEBOUNCE_MS;
       * the wake-ups of a burst are drained together after the pause. */
      int64_t since_ms = (mdm_mono_ns() - round_ns) / 1000000;
      if(since_ms < MDM_AGENT_PUSH_DEBOUNCE_MS &&
         agent_sleep(MDM_AGENT_PUSH_DEBOUNCE_MS - since_ms, -1) ==
         SLEEP_STOPPED)
        break;
      mdm_debug("woken up by the broker (%u signal(s))",
                mdm_push_drain(a.push));
    }
  }
  /* Stop the session before the last flush: nothing more to wake up for. */
  mdm_push_free(a.push);
  a.push = NULL;

  if(stop_signal) {
    int64_t deadline = mdm_mono_ns() + (int64_t)FINAL_FLUSH_MS * 1000000;
    mdm_info("stopping on %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    data = json_pack("{s:s}", "signal",
                     stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    agent_event(&a, "agent_stopped", data);
    json_decref(data);
    mdm_client_set_abort(a.client, NULL);
    if(agent_flush(&a, deadline, 1) != ROUND_OK)
      mdm_warn("%zu event(s) stay queued for the next start",
               mdm_queue_count(a.queue));
  }
  if(is_unmanaged)
    rc = MDM_OK;
  else if(o->is_once && !is_checked_in) {
    rc = res == ROUND_AUTH ? MDM_ERR_AUTH : MDM_ERR_IO;
    snprintf(err, n, "%s", a.last_error[0] ? a.last_error :
             stop_signal ? "check-in interrupted" : "check-in failed");
  }
  else
    rc = MDM_OK;
  signals_restore();
out:
  mdm_push_free(a.push);
  mdm_client_free(a.client);
  mdm_queue_free(a.queue);
  mdm_creds_release(&a.creds);
  mdm_agent_config_release(&a.cfg);
  return rc;
}
