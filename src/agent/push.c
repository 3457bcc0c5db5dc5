/*
 * push.c: the agent's MQTT wake-up session on libmosquitto (see push.h).
 *
 * libmosquitto's thread runs the callbacks below; the only thing they share
 * with the run loop is the write end of a non-blocking pipe, one byte per
 * wake-up (a full pipe already says "wake up", so a failed write is fine).
 * The connection state lives on that thread alone and only serves to log
 * each change once, not each retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <mosquitto.h>
#include "agent/push.h"
#include "core/log.h"
#include "core/util.h"

enum push_state { PUSH_NEW, PUSH_UP, PUSH_DOWN, PUSH_REFUSED };

struct mdm_push {
  struct mosquitto *mosq;
  char *url;
  char *topic;
  int pipe[2];
  int is_started;             /* the libmosquitto thread runs */
  enum push_state state;      /* the session thread's alone */
  int refused_rc;             /* the CONNACK code last logged */
  int is_sub_refused;
};

/* ---- URL ------------------------------------------------------------------------ */

mdm_rc mdm_push_parse_url(const char *url, char *host, size_t n, int *port,
                          int *is_tls)
{
  const char *h, *end, *colon = NULL;
  size_t h_len;
  long v = 0;

  if(n)
    host[0] = '\0';
  if(!strncmp(url, "mqtt://", 7)) {
    *is_tls = 0;
    h = url + 7;
  }
  else if(!strncmp(url, "mqtts://", 8)) {
    *is_tls = 1;
    h = url + 8;
  }
  else
    return MDM_ERR_INVAL;
  *port = *is_tls ? 8883 : 1883;
  if(*h == '[') {                      /* [v6 literal] */
    end = strchr(h, ']');
    if(!end || end == h + 1)
      return MDM_ERR_INVAL;
    h_len = (size_t)(end - h - 1);
    h++;
    end++;
    if(*end == ':')
      colon = end;
    else if(*end && strcmp(end, "/"))
      return MDM_ERR_INVAL;
  }
  else {
    end = h + strcspn(h, ":/?#@");
    if(*end == '@' || *end == '?' || *end == '#')
      return MDM_ERR_INVAL;
    if(*end == ':')
      colon = end;
    else if(*end && strcmp(end, "/"))
      return MDM_ERR_INVAL;
    h_len = (size_t)(end - h);
  }
  if(!h_len)
    return MDM_ERR_INVAL;
  if(h_len >= n)
    return MDM_ERR_TOOBIG;
  if(colon) {
    const char *d = colon + 1;
    if(!*d)
      return MDM_ERR_INVAL;
    for(; *d >= '0' && *d <= '9'; d++) {
      v = v * 10 + (*d - '0');
      if(v > 65535)
        return MDM_ERR_INVAL;
    }
    if((*d && strcmp(d, "/")) || v < 1)
      return MDM_ERR_INVAL;
    *port = (int)v;
  }
  memcpy(host, h, h_len);
  host[h_len] = '\0';
  return MDM_OK;
}

/* ---- callbacks (libmosquitto's thread) ------------------------------------------- */

static void push_signal(struct mdm_push *p)
{
  ssize_t w = write(p->pipe[1], "w", 1);
  (void)w;   /* EAGAIN: the pipe is full, the loop wakes up anyway */
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
  struct mdm_push *p = ud;
  int mid;

  if(rc) {
    if(p->state != PUSH_REFUSED || p->refused_rc != rc)
      mdm_warn("push: broker '%s' refused the connection: %s; polling only "
               "until it accepts", p->url, mosquitto_connack_string(rc));
    p->state = PUSH_REFUSED;
    p->refused_rc = rc;
    return;
  }
  if(p->state != PUSH_UP)
    mdm_info("push: connected to broker '%s'", p->url);
  p->state = PUSH_UP;
  rc = mosquitto_subscribe(mosq, &mid, p->topic, 1);
  if(rc)
    mdm_warn("push: cannot subscribe to '%s': %s", p->topic,
             mosquitto_strerror(rc));
  /* Wake-ups published while we were away may be lost (the broker was
   * down, or forgot the session): one round catches up with the store. */
  push_signal(p);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
  struct mdm_push *p = ud;
  (void)mosq;
  if(!rc)
    return;               /* we asked for it */
  if(p->state == PUSH_UP)
    mdm_warn("push: lost the connection to broker '%s'; polling until it "
             "is back", p->url);
  if(p->state != PUSH_REFUSED)
    p->state = PUSH_DOWN;
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid,
                         int n_qos, const int *granted)
{
  struct mdm_push *p = ud;
  int is_refused = n_qos < 1 || granted[0] < 0 || granted[0] > 2;
  (void)mosq;
  (void)mid;
  if(is_refused && !p->is_sub_refused)
    mdm_warn("push: broker '%s' refused the subscription to '%s'; polling "
             "only", p->url, p->topic);
  else if(!is_refused && p->is_sub_refused)
    mdm_info("push: subscribed to '%s'", p->topic);
  p->is_sub_refused = is_refused;
}

static void on_message(struct mosquitto *mosq, void *ud,
                       const struct mosquitto_message *msg)
{
  struct mdm_push *p = ud;
  (void)mosq;
  /* Only a signal: the content is never looked at beyond its size. */
  if(!msg->topic || strcmp(msg->topic, p->topic))
    return;
  if(msg->payloadlen < 0 || msg->payloadlen > MDM_PUSH_PAYLOAD_MAX) {
    mdm_debug("push: ignoring a %d-byte message", msg->payloadlen);
    return;
  }
  mdm_debug("push: wake-up");
  push_signal(p);
}

/* ---- life cycle -------------------------------------------------------------------- */

mdm_rc mdm_push_new(const struct mdm_push_opts *o, struct mdm_push **out,
                    char *err, size_t n)
{
  struct mdm_push *p = NULL;
  char host[MDM_PUSH_HOST_MAX];
  int port = 0, is_tls = 0, mrc;
  sigset_t block, old;
  mdm_rc rc;

  *out = NULL;
  rc = mdm_push_parse_url(o->url, host, sizeof(host), &port, &is_tls);
  if(rc) {
    snprintf(err, n, "invalid broker URL '%s'", o->url);
    return MDM_ERR_INVAL;
  }
  p = calloc(1, sizeof(*p));
  if(!p)
    return MDM_ERR_NOMEM;
  p->pipe[0] = p->pipe[1] = -1;
  mosquitto_lib_init();
  p->url = strdup(o->url);
  p->topic = strdup(o->topic);
  if(!p->url || !p->topic) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    snprintf(err, n, "cannot create a pipe: %s", strerror(errno));
    rc = MDM_ERR_IO;
    goto out;
  }
  /* Not a clean session: the broker keeps the subscription and the QoS 1
   * wake-ups for this client id while the device is away. */
  p->mosq = mosquitto_new(o->client_id, false, p);
  if(!p->mosq) {
    rc = errno == ENOMEM ? MDM_ERR_NOMEM : MDM_ERR_INVAL;
    snprintf(err, n, "cannot create the MQTT session: %s", strerror(errno));
    goto out;
  }
  mosquitto_connect_callback_set(p->mosq, on_connect);
  mosquitto_disconnect_callback_set(p->mosq, on_disconnect);
  mosquitto_subscribe_callback_set(p->mosq, on_subscribe);
  mosquitto_message_callback_set(p->mosq, on_message);
  mrc = mosquitto_reconnect_delay_set(p->mosq, MDM_PUSH_RECONNECT_MIN_S,
                                      MDM_PUSH_RECONNECT_MAX_S, true);
  if(!mrc)
    mrc = mosquitto_username_pw_set(p->mosq, o->username, o->password);
  if(!mrc && is_tls) {
    if(o->ca_file)
      mrc = mosquitto_tls_set(p->mosq, o->ca_file, NULL, NULL, NULL, NULL);
    else
      mrc = mosquitto_int_option(p->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
  }
  if(mrc) {
    snprintf(err, n, "cannot set up the MQTT session for '%s': %s", o->url,
             mosquitto_strerror(mrc));
    rc = MDM_ERR_INVAL;
    goto out;
  }
  mdm_info("push: connecting to broker '%s', topic '%s'", o->url, o->topic);
  mrc = mosquitto_connect_async(p->mosq, host, port, MDM_PUSH_KEEPALIVE_S);
  if(mrc) {
    /* Not fatal: the session's thread keeps trying. */
    mdm_warn("push: cannot reach broker '%s': %s; polling until it is "
             "reachable", o->url, mrc == MOSQ_ERR_ERRNO ? strerror(errno) :
             mosquitto_strerror(mrc));
    p->state = PUSH_DOWN;
  }
  /* The session's thread takes no signals: they are the run loop's. */
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  mrc = mosquitto_loop_start(p->mosq);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if(mrc) {
    snprintf(err, n, "cannot start the MQTT session: %s",
             mosquitto_strerror(mrc));
    rc = MDM_ERR_IO;
    goto out;
  }
  p->is_started = 1;
  *out = p;
  p = NULL;
out:
  mdm_push_free(p);
  return rc;
}

int mdm_push_fd(const struct mdm_push *p)
{
  return p->pipe[0];
}

unsigned mdm_push_drain(struct mdm_push *p)
{
  char buf[64];
  unsigned count = 0;
  for(;;) {
    ssize_t r = read(p->pipe[0], buf, sizeof(buf));
    if(r <= 0)
      return count;
    count += (unsigned)r;
  }
}

void mdm_push_free(struct mdm_push *p)
{
  if(!p)
    return;
  if(p->mosq) {
    if(p->is_started) {
      mosquitto_disconnect(p->mosq);
      mosquitto_loop_stop(p->mosq, false);
    }
    mosquitto_destroy(p->mosq);
  }
  mosquitto_lib_cleanup();
  if(p->pipe[0] >= 0)
    close(p->pipe[0]);
  if(p->pipe[1] >= 0)
    close(p->pipe[1]);
  free(p->url);
  free(p->topic);
  free(p);
}
