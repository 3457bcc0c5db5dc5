/*
 * push.c: the MQTT wake-up publisher and the broker's per-device
 * credentials (push.h, CONTRACT §5, deploy/mosquitto/README.md).  One
 * libmosquitto client runs in its network thread and reconnects by
 * itself; a second thread drains a bounded ring of wake-ups
 * through a token bucket so that a fleet-wide command does not flood the
 * broker.  A device's broker password is derived from its id and the
 * broker secret (crypto/mqttcred.h), which the broker's mdm auth plugin
 * also holds, so enrollment needs no broker round trip.
 *
 * The network loop is mdmd's own thread (net_main), not libmosquitto's
 * mosquitto_loop_start(): that one watches the socket with select(),
 * which cannot take a descriptor of 1024 or more, and with a thousand HTTP
 * connections open a reconnection can get one (mosquitto_loop() then
 * refuses it for good).  net_main poll()s the socket and an eventfd that
 * every publish from another thread rings.  Retirements are
 * published on $CONTROL/mdm-auth/v1 and the plugin's answers read on
 * .../response; nothing else received from the broker is looked at.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <jansson.h>
#include <mosquitto.h>
#include <openssl/crypto.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/mqttcred.h"
#include "server/metrics.h"
#include "server/push.h"

#define RING_MAX 131072       /* queued wake-ups (about 10 MB) */
#define REMOVE_MAX 4096       /* unconfirmed revocations */
#define REVOKE_BATCH 1000     /* ids in one control message */
#define CONTROL_TOPIC "$CONTROL/mdm-auth/v1"
#define CONTROL_RESPONSE "$CONTROL/mdm-auth/v1/response"
#define SECRET_MAX 512
#define WAKE_PAYLOAD "{\"v\":1,\"reason\":\"command\"}"
#define WAKE_POLICY "{\"v\":1,\"reason\":\"policy\"}"
#define TENANT_PAGE 1000      /* devices listed at a time for a tenant wake */

enum wake_kind {
  WAKE_DEVICE,                /* id: a device */
  WAKE_COMMAND,               /* id: a command, resolved to its device */
  WAKE_TENANT                 /* every active device with an id > id */
};

struct wake {
  char tenant[MDM_UUID_LEN + 1];
  char id[MDM_UUID_LEN + 1];
  unsigned char kind;         /* enum wake_kind */
  unsigned char is_policy;    /* the payload says "policy" */
};

struct mdm_push {
  struct mosquitto *mosq;
  struct mdm_store *store;
  char host[256];
  int port;
  char url[300];
  int rate;
  pthread_mutex_t lock;
  pthread_cond_t cond;        /* ring not empty, stop, or waiter done */
  struct wake *ring;
  size_t head, n;
  unsigned long dropped;
  int is_connected;
  int is_stopping;
  pthread_t drainer;
  int has_drainer;
  pthread_t net;              /* net_main */
  int has_net;
  int net_stop;               /* under lock: flush and leave */
  int wake_fd;                /* eventfd: something to send, or stop */
  char secret[SECRET_MAX + 1];  /* the broker secret: mdmd's password */
  char (*removals)[MDM_UUID_LEN + 1];
  size_t n_removals;
};

static int lib_ready;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
  lib_ready = mosquitto_lib_init() == MOSQ_ERR_SUCCESS;
}

static void net_wake(struct mdm_push *p);

/* ---- revocations ------------------------------------------------------- */

/* Publish {"revoke": ids} on the plugin's control topic.  Holds p->lock. */
static void revoke_send(struct mdm_push *p, const char (*ids)[MDM_UUID_LEN + 1],
                        size_t n)
{
  json_t *arr = json_array(), *msg;
  char *text = NULL;
  size_t i;
  for(i = 0; arr && i < n; i++)
    json_array_append_new(arr, json_string(ids[i]));
  msg = arr ? json_pack("{s:o}", "revoke", arr) : NULL;
  text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if(text &&
     mosquitto_publish(p->mosq, NULL, CONTROL_TOPIC, (int)strlen(text), text,
                       1, 0) == MOSQ_ERR_SUCCESS)
    net_wake(p);
  free(text);
  json_decref(msg);
}

/* Resend every unconfirmed revocation.  Caller holds p->lock. */
static void removals_resend(struct mdm_push *p)
{
  size_t i;
  for(i = 0; i < p->n_removals; i += REVOKE_BATCH)
    revoke_send(p, p->removals + i, p->n_removals - i < REVOKE_BATCH
                                    ? p->n_removals - i : REVOKE_BATCH);
}

/* The plugin recorded device_id's revocation (fsync'd).  Holds p->lock. */
static void removal_done(struct mdm_push *p, const char *device_id)
{
  size_t i;
  for(i = 0; i < p->n_removals; i++)
    if(!strcmp(p->removals[i], device_id)) {
      memmove(p->removals[i], p->removals[p->n_removals - 1],
              sizeof(p->removals[i]));
      p->n_removals--;
      return;
    }
}

static void on_message(struct mosquitto *mosq, void *obj,
                       const struct mosquitto_message *m)
{
  struct mdm_push *p = obj;
  json_t *doc, *id;
  size_t i;
  (void)mosq;
  if(!m->topic || strcmp(m->topic, CONTROL_RESPONSE) || !m->payload ||
     m->payloadlen > 1024 * 1024)
    return;
  doc = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
  pthread_mutex_lock(&p->lock);
  json_array_foreach(json_object_get(doc, "revoked"), i, id)
    if(json_is_string(id))
      removal_done(p, json_string_value(id));
  pthread_mutex_unlock(&p->lock);
  json_decref(doc);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
  struct mdm_push *p = obj;
  if(rc) {
    mdm_warn("mqtt: broker %s refused mdmd: %s", p->url,
             mosquitto_connack_string(rc));
    return;
  }
  mosquitto_subscribe(mosq, NULL, CONTROL_RESPONSE, 1);
  pthread_mutex_lock(&p->lock);
  p->is_connected = 1;
  removals_resend(p);
  pthread_mutex_unlock(&p->lock);
  mdm_info("mqtt: connected to %s", p->url);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
  struct mdm_push *p = obj;
  (void)mosq;
  pthread_mutex_lock(&p->lock);
  /* rc 0: mdmd's own disconnect, as it stops. */
  if(p->is_connected && rc)
    mdm_warn("mqtt: lost the broker %s (%d); devices poll until it is "
             "back", p->url, rc);
  p->is_connected = 0;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

/* ---- wake-ups ----------------------------------------------------------- */

/* Append a wake-up to the ring.  Caller holds p->lock. */
static void enqueue_locked(struct mdm_push *p, const char *tenant,
                           const char *id, int kind, int is_policy)
{
  struct wake *w;
  if(p->n == RING_MAX) {
    mdm_metrics_inc(MDM_M_MQTT_DROPPED);
    if(p->dropped++ % 1000 == 0)
      mdm_warn("mqtt: wake-up queue full, %lu dropped so far (devices "
               "poll)", p->dropped);
    return;
  }
  w = &p->ring[(p->head + p->n) % RING_MAX];
  mdm_strlcpy(w->tenant, tenant, sizeof(w->tenant));
  mdm_strlcpy(w->id, id, sizeof(w->id));
  w->kind = (unsigned char)kind;
  w->is_policy = (unsigned char)is_policy;
  p->n++;
  pthread_cond_broadcast(&p->cond);
}

static void enqueue(struct mdm_push *p, const char *tenant, const char *id,
                    int kind)
{
  if(!p || !tenant || !id || strlen(tenant) > MDM_UUID_LEN ||
     strlen(id) > MDM_UUID_LEN)
    return;
  pthread_mutex_lock(&p->lock);
  enqueue_locked(p, tenant, id, kind, 0);
  pthread_mutex_unlock(&p->lock);
}

void mdm_push_wake(struct mdm_push *p, const char *tenant,
                   const char *device_id)
{
  enqueue(p, tenant, device_id, WAKE_DEVICE);
}

void mdm_push_wake_command(struct mdm_push *p, const char *tenant,
                           const char *command_id)
{
  enqueue(p, tenant, command_id, WAKE_COMMAND);
}

void mdm_push_wake_tenant(struct mdm_push *p, const char *tenant)
{
  enqueue(p, tenant, "", WAKE_TENANT);
}

/* A tenant wake-up: list the next page of its active devices and queue a
 * "policy" wake-up for each, then the rest of the tenant after them.
 * Called without p->lock. */
static void expand_tenant(struct mdm_push *p, const struct wake *w)
{
  struct mdm_device_filter f;
  json_t *items = NULL, *d;
  char *next = NULL;
  const char *last = NULL;
  size_t i;
  memset(&f, 0, sizeof(f));
  f.state = "active";
  f.after_id = w->id[0] ? w->id : NULL;
  f.limit = TENANT_PAGE;
  if(p->store->ops->device_list(p->store, w->tenant, &f, &items, &next))
    return;
  pthread_mutex_lock(&p->lock);
  json_array_foreach(items, i, d) {
    const char *id = json_string_value(json_object_get(d, "id"));
    if(id && strlen(id) <= MDM_UUID_LEN) {
      enqueue_locked(p, w->tenant, id, WAKE_DEVICE, 1);
      last = id;
    }
  }
  if(next && last)
    enqueue_locked(p, w->tenant, last, WAKE_TENANT, 1);
  pthread_mutex_unlock(&p->lock);
  free(next);
  json_decref(items);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void publish_wake(struct mdm_push *p, const struct wake *w)
{
  char topic[128];
  const char *device = w->id;
  const char *payload = w->is_policy ? WAKE_POLICY : WAKE_PAYLOAD;
  json_t *cmd = NULL;
  int rc;
  if(w->kind == WAKE_COMMAND) {
    if(p->store->ops->command_get(p->store, w->tenant, w->id,
                                  mdm_now_ms() / 1000, &cmd))
      return;
    device = json_string_value(json_object_get(cmd, "device_id"));
  }
  if(device) {
    snprintf(topic, sizeof(topic), "mdm/%s/%s/cmd", w->tenant, device);
    rc = mosquitto_publish(p->mosq, NULL, topic, (int)strlen(payload),
                           payload, 1, 0);
    if(!rc)
      net_wake(p);
    mdm_metrics_inc(rc ? MDM_M_MQTT_FAILED : MDM_M_MQTT_PUBLISHED);
    if(rc)
      mdm_debug("mqtt: wake-up for %s not sent: %s", device,
                mosquitto_strerror(rc));
  }
  json_decref(cmd);
}

/* The drain thread: one wake-up per token; rate tokens a second, a
 * second's worth at most in hand. */
static void *drain_main(void *arg)
{
  struct mdm_push *p = arg;
  double tokens = 1, last = now_s();
  pthread_mutex_lock(&p->lock);
  for(;;) {
    struct wake w;
    double t;
    while(!p->is_stopping && !p->n)
      pthread_cond_wait(&p->cond, &p->lock);
    if(p->is_stopping)
      break;
    if(p->ring[p->head].kind == WAKE_TENANT) {
      /* Expanding takes no token: its device wake-ups each will. */
      w = p->ring[p->head];
      p->head = (p->head + 1) % RING_MAX;
      p->n--;
      if(!p->is_connected)
        continue;
      pthread_mutex_unlock(&p->lock);
      expand_tenant(p, &w);
      pthread_mutex_lock(&p->lock);
      continue;
    }
    t = now_s();
    tokens += (t - last) * p->rate;
    last = t;
    if(tokens > p->rate)
      tokens = p->rate;
    if(tokens < 1) {
      struct timespec ts;
      double wait = (1 - tokens) / p->rate;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)(wait * 1e9) + 1000;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&p->cond, &p->lock, &ts);
      continue;
    }
    tokens -= 1;
    w = p->ring[p->head];
    p->head = (p->head + 1) % RING_MAX;
    p->n--;
    if(!p->is_connected) {
      mdm_metrics_inc(MDM_M_MQTT_DROPPED);
      continue;          /* dropped: the device polls */
    }
    pthread_mutex_unlock(&p->lock);
    publish_wake(p, &w);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* ---- the network thread ------------------------------------------------ */

/* Tell net_main there is something to send (or to stop). */
static void net_wake(struct mdm_push *p)
{
  uint64_t one = 1;
  if(write(p->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
    mdm_debug("mqtt: cannot wake the network thread: %s", strerror(errno));
}

/* Wait up to s seconds on p->cond (a stop wakes it).  Holds p->lock. */
static void wait_locked(struct mdm_push *p, int s)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += s;
  pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

/*
 * The client's network loop: connect (and reconnect 1, 2, 4, 5, 5... s
 * apart), then poll() its socket, for writing when it has something
 * queued, and the wake-up eventfd; libmosquitto does the reading, the
 * writing and the keep-alive pings (loop_read/_write/_misc), and calls
 * on_connect/on_disconnect from here.
 */
static void *net_main(void *arg)
{
  struct mdm_push *p = arg;
  int delay = 0, first = 1;

  pthread_mutex_lock(&p->lock);
  for(;;) {
    struct pollfd pfd[2];
    int fd, rc;
    uint64_t n;
    if(p->net_stop)
      break;
    pthread_mutex_unlock(&p->lock);
    fd = mosquitto_socket(p->mosq);
    if(fd < 0) {
      if(delay) {
        pthread_mutex_lock(&p->lock);
        if(!p->net_stop)
          wait_locked(p, delay);
        if(p->net_stop)
          continue;
        pthread_mutex_unlock(&p->lock);
      }
      rc = first ? mosquitto_connect_async(p->mosq, p->host, p->port, 30)
                 : mosquitto_reconnect_async(p->mosq);
      if(rc && first)
        mdm_warn("mqtt: cannot reach %s yet (%s): retrying in the "
                 "background", p->url, mosquitto_strerror(rc));
      first = 0;
      delay = delay ? (delay * 2 > 5 ? 5 : delay * 2) : 1;
      pthread_mutex_lock(&p->lock);
      continue;
    }
    pfd[0].fd = fd;
    pfd[0].events = (short)(POLLIN |
                            (mosquitto_want_write(p->mosq) ? POLLOUT : 0));
    pfd[1].fd = p->wake_fd;
    pfd[1].events = POLLIN;
    pfd[0].revents = pfd[1].revents = 0;
    if(poll(pfd, 2, 1000) < 0 && errno != EINTR)
      mdm_debug("mqtt: poll: %s", strerror(errno));
    if(pfd[1].revents & POLLIN)
      (void)!read(p->wake_fd, &n, sizeof(n));
    rc = MOSQ_ERR_SUCCESS;
    if(pfd[0].revents & (POLLIN | POLLERR | POLLHUP))
      rc = mosquitto_loop_read(p->mosq, 1);
    if(!rc && mosquitto_socket(p->mosq) >= 0 &&
       mosquitto_want_write(p->mosq))
      rc = mosquitto_loop_write(p->mosq, 1);
    if(!rc)
      rc = mosquitto_loop_misc(p->mosq);
    /* On an error libmosquitto has closed the socket and said so through
     * on_disconnect: the next round reconnects, after a second. */
    fd = mosquitto_socket(p->mosq);
    pthread_mutex_lock(&p->lock);
    if(!rc && fd >= 0 && p->is_connected)
      delay = 0;
    else if(!delay)
      delay = 1;
  }
  pthread_mutex_unlock(&p->lock);
  /* Stopping: send what is queued (the DISCONNECT) if the socket takes it
   * now. */
  if(mosquitto_socket(p->mosq) >= 0 && mosquitto_want_write(p->mosq))
    mosquitto_loop_write(p->mosq, 1);
  return NULL;
}

/* ---- credentials -------------------------------------------------------- */

mdm_rc mdm_push_device_add(struct mdm_push *p, const char *tenant,
                           const char *device_id, json_t **mqtt)
{
  char password[MDM_MQTT_PASSWORD_LEN + 1], topic[128];
  *mqtt = NULL;
  if(!p || !tenant || !device_id)
    return MDM_ERR_IO;
  if(mdm_mqtt_device_password((const unsigned char *)p->secret,
                              strlen(p->secret), device_id, password,
                              sizeof(password)))
    return MDM_ERR_CRYPTO;
  snprintf(topic, sizeof(topic), "mdm/%s/%s/cmd", tenant, device_id);
  *mqtt = json_pack("{s:s, s:s, s:s, s:s}", "url", p->url, "topic", topic,
                    "username", device_id, "password", password);
  OPENSSL_cleanse(password, sizeof(password));
  return *mqtt ? MDM_OK : MDM_ERR_NOMEM;
}

void mdm_push_device_remove(struct mdm_push *p, const char *device_id)
{
  size_t i;
  if(!p || !device_id || strlen(device_id) > MDM_UUID_LEN)
    return;
  pthread_mutex_lock(&p->lock);
  for(i = 0; i < p->n_removals; i++)
    if(!strcmp(p->removals[i], device_id))
      break;
  if(i == p->n_removals) {
    if(p->n_removals == REMOVE_MAX)
      mdm_warn("mqtt: too many unconfirmed revocations; device %s must be "
               "revoked on the broker by hand", device_id);
    else
      mdm_strlcpy(p->removals[p->n_removals++], device_id,
                  sizeof(p->removals[0]));
  }
  if(p->is_connected && i < REMOVE_MAX)
    revoke_send(p, p->removals + i, 1);
  pthread_mutex_unlock(&p->lock);
}

/* ---- life cycle --------------------------------------------------------- */

static mdm_rc parse_url(struct mdm_push *p, const char *url)
{
  const char *hp, *colon;
  long long port;
  if(strncmp(url, "mqtt://", 7))
    return MDM_ERR_INVAL;
  hp = url + 7;
  colon = strrchr(hp, ':');
  if(!colon || colon == hp || (size_t)(colon - hp) >= sizeof(p->host) ||
     strchr(colon, '/') || mdm_parse_int(colon + 1, 1, 65535, &port))
    return MDM_ERR_INVAL;
  memcpy(p->host, hp, (size_t)(colon - hp));
  p->host[colon - hp] = '\0';
  p->port = (int)port;
  if(mdm_strlcpy(p->url, url, sizeof(p->url)))
    return MDM_ERR_INVAL;
  return MDM_OK;
}

mdm_rc mdm_push_new(const struct mdm_push_config *cfg, struct mdm_store *st,
                    struct mdm_push **out)
{
  struct mdm_push *p;
  char client_id[64], rnd[8];
  mdm_rc rc = MDM_ERR_NOMEM;

  *out = NULL;
  pthread_once(&lib_once, lib_init);
  if(!lib_ready)
    return MDM_ERR_INTERNAL;
  p = calloc(1, sizeof(*p));
  if(!p)
    return MDM_ERR_NOMEM;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if(p->wake_fd < 0) {
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return MDM_ERR_IO;
  }
  p->store = st;
  p->rate = cfg->rate > 0 ? cfg->rate : 1000;
  rc = parse_url(p, cfg->url);
  if(rc)
    goto fail;
  rc = MDM_ERR_NOMEM;
  p->ring = calloc(RING_MAX, sizeof(*p->ring));
  p->removals = calloc(REMOVE_MAX, sizeof(*p->removals));
  if(!p->ring || !p->removals)
    goto fail;
  if(mdm_random(rnd, sizeof(rnd))) {
    rc = MDM_ERR_CRYPTO;
    goto fail;
  }
  snprintf(client_id, sizeof(client_id), "mdmd-%02x%02x%02x%02x%02x%02x",
           (unsigned char)rnd[0], (unsigned char)rnd[1],
           (unsigned char)rnd[2], (unsigned char)rnd[3],
           (unsigned char)rnd[4], (unsigned char)rnd[5]);
  p->mosq = mosquitto_new(client_id, true, p);
  if(!p->mosq)
    goto fail;
  rc = MDM_ERR_INVAL;
  if(!cfg->admin_password || strlen(cfg->admin_password) < 16 ||
     mdm_strlcpy(p->secret, cfg->admin_password, sizeof(p->secret)) ||
     mosquitto_username_pw_set(p->mosq, cfg->admin_user,
                               cfg->admin_password))
    goto fail;
  mosquitto_connect_callback_set(p->mosq, on_connect);
  mosquitto_disconnect_callback_set(p->mosq, on_disconnect);
  mosquitto_message_callback_set(p->mosq, on_message);
  /* Publishes come from other threads than the network loop's. */
  mosquitto_threaded_set(p->mosq, true);
  rc = MDM_ERR_INTERNAL;
  if(pthread_create(&p->net, NULL, net_main, p))
    goto fail;
  p->has_net = 1;
  if(pthread_create(&p->drainer, NULL, drain_main, p))
    goto fail;
  p->has_drainer = 1;
  *out = p;
  return MDM_OK;
fail:
  mdm_push_free(p);
  return rc;
}

void mdm_push_free(struct mdm_push *p)
{
  if(!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->is_stopping = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  if(p->has_drainer)
    pthread_join(p->drainer, NULL);
  if(p->mosq && p->has_net)
    mosquitto_disconnect(p->mosq);
  pthread_mutex_lock(&p->lock);
  p->net_stop = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  if(p->has_net) {
    net_wake(p);
    pthread_join(p->net, NULL);
  }
  if(p->mosq)
    mosquitto_destroy(p->mosq);
  if(p->dropped)
    mdm_info("mqtt: %lu wake-ups dropped in all", p->dropped);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
  OPENSSL_cleanse(p->secret, sizeof(p->secret));
  close(p->wake_fd);
  free(p->ring);
  free(p->removals);
  free(p);
}
