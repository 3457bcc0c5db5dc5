/*
 * sim_mqtt.c: many MQTT 3.1.1 sessions in one thread for mdm-sim
 * (sim_mqtt.h).  Each session is a non-blocking socket in one epoll set
 * with a small input buffer; the packets it sends (CONNECT, SUBSCRIBE,
 * PUBACK, PINGREQ, DISCONNECT) are a few hundred bytes at most and go out
 * with one send() each, which a fresh loopback socket always takes whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "sim_mqtt.h"

#define KEEPALIVE_S 60
#define IN_MAX 1024              /* one session's unparsed input */
#define OUT_MAX 512              /* one packet we send */

enum sess_state { S_IDLE, S_CONNECTING, S_CONNACK, S_SUBACK, S_UP, S_DOWN };

struct sess {
  int fd;
  uint8_t state;
  uint16_t in_len;
  int64_t last_out_ns;
  unsigned char *in;             /* IN_MAX bytes */
};

struct sim_mqtt {
  const struct sim_mqtt_dev *devs;
  size_t n;
  struct sess *ss;
  struct sockaddr_in addr;
  int batch;
  double timeout_s;
  int ep;
  int efd;
  pthread_t th;
  int has_thread;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  int is_ready;                  /* 1: all subscribed, -1: gave up */
  char err[256];
  int is_stopping;
  uint32_t *woken;               /* wake-ups not yet taken */
  size_t n_woken, cap_woken;
  struct sim_mqtt_stats st;

  size_t outstanding;            /* started, not yet subscribed */
};

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(struct sim_mqtt *q, size_t i, const char *what, long v)
{
  pthread_mutex_lock(&q->lock);
  if(!q->is_ready) {
    snprintf(q->err, sizeof(q->err), "session %s: %s (%ld)",
             i < q->n ? q->devs[i].client_id : "-", what, v);
    q->is_ready = -1;
    pthread_cond_broadcast(&q->cond);
  }
  pthread_mutex_unlock(&q->lock);
}

static void count(struct sim_mqtt *q, uint64_t *c)
{
  pthread_mutex_lock(&q->lock);
  (*c)++;
  pthread_mutex_unlock(&q->lock);
}

/* ---- packets ---------------------------------------------------------- */

static size_t put_len(unsigned char *p, size_t v)
{
  size_t n = 0;
  do {
    unsigned char b = v % 128;
    v /= 128;
    p[n++] = (unsigned char)(b | (v ? 128 : 0));
  } while(v);
  return n;
}

static size_t put_str(unsigned char *p, const char *s)
{
  size_t l = strlen(s);
  p[0] = (unsigned char)(l >> 8);
  p[1] = (unsigned char)l;
  memcpy(p + 2, s, l);
  return l + 2;
}

/* Frame body (len bytes) under fixed-header byte h and send it. */
static int send_packet(struct sess *s, unsigned char h,
                       const unsigned char *body, size_t len)
{
  unsigned char out[OUT_MAX + 8];
  size_t n = 0;
  if(len > OUT_MAX)
    return -1;
  out[n++] = h;
  n += put_len(out + n, len);
  memcpy(out + n, body, len);
  n += len;
  if(send(s->fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
    return -1;
  s->last_out_ns = mono_ns();
  return 0;
}

static int send_connect(struct sim_mqtt *q, size_t i)
{
  const struct sim_mqtt_dev *d = &q->devs[i];
  unsigned char b[OUT_MAX];
  size_t n = 0;
  if(strlen(d->client_id) + strlen(d->password) + 32 > OUT_MAX)
    return -1;
  n += put_str(b + n, "MQTT");
  b[n++] = 4;                      /* 3.1.1 */
  b[n++] = 0x80 | 0x40;            /* username, password; persistent */
  b[n++] = 0;
  b[n++] = KEEPALIVE_S;
  n += put_str(b + n, d->client_id);
  n += put_str(b + n, d->client_id);
  n += put_str(b + n, d->password);
  return send_packet(&q->ss[i], 0x10, b, n);
}

static int send_subscribe(struct sim_mqtt *q, size_t i)
{
  unsigned char b[OUT_MAX];
  size_t n = 0;
  if(strlen(q->devs[i].topic) + 8 > OUT_MAX)
    return -1;
  b[n++] = 0;
  b[n++] = 1;                      /* packet id */
  n += put_str(b + n, q->devs[i].topic);
  b[n++] = 1;                      /* QoS 1 */
  return send_packet(&q->ss[i], 0x82, b, n);
}

static void sess_close(struct sim_mqtt *q, size_t i, int is_lost)
{
  struct sess *s = &q->ss[i];
  if(s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  if(s->state == S_UP && is_lost)
    count(q, &q->st.disconnects);
  else if(s->state != S_UP && s->state != S_DOWN && s->state != S_IDLE) {
    q->outstanding--;
    fail(q, i, "closed before it was subscribed", 0);
  }
  s->state = S_DOWN;
}

static void on_wake(struct sim_mqtt *q, size_t i)
{
  uint64_t one = 1;
  ssize_t w;
  pthread_mutex_lock(&q->lock);
  q->st.messages++;
  if(q->n_woken == q->cap_woken) {
    size_t cap = q->cap_woken ? q->cap_woken * 2 : 4096;
    uint32_t *p = realloc(q->woken, cap * sizeof(*p));
    if(!p) {
      pthread_mutex_unlock(&q->lock);
      return;  /* counted as received, never fetched: reported as lost */
    }
    q->woken = p;
    q->cap_woken = cap;
  }
  q->woken[q->n_woken++] = (uint32_t)i;
  pthread_mutex_unlock(&q->lock);
  w = write(q->efd, &one, sizeof(one));
  (void)w;   /* EAGAIN: the counter is already non-zero */
}

/* Handle one complete packet (type byte h, body b of len bytes). */
static int on_packet(struct sim_mqtt *q, size_t i, unsigned char h,
                     const unsigned char *b, size_t len)
{
  struct sess *s = &q->ss[i];
  switch(h >> 4) {
  case 2:                          /* CONNACK */
    if(s->state != S_CONNACK || len < 2)
      return -1;
    if(b[1]) {
      count(q, &q->st.refused);
      fail(q, i, "the broker refused the login, CONNACK code", b[1]);
      return -1;
    }
    count(q, &q->st.connected);
    s->state = S_SUBACK;
    return send_subscribe(q, i);
  case 9:                          /* SUBACK */
    if(s->state != S_SUBACK || len < 3)
      return -1;
    q->outstanding--;
    if(b[2] > 2) {
      count(q, &q->st.sub_refused);
      s->state = S_DOWN;
      fail(q, i, "the broker refused the subscription, code", b[2]);
      return -1;
    }
    count(q, &q->st.subscribed);
    s->state = S_UP;
    return 0;
  case 3: {                        /* PUBLISH: a wake-up */
    unsigned qos = (h >> 1) & 3;
    size_t tl;
    if(len < 2)
      return -1;
    tl = (size_t)b[0] << 8 | b[1];
    if(qos && 2 + tl + 2 <= len) {
      unsigned char ack[2] = {b[2 + tl], b[2 + tl + 1]};
      if(send_packet(s, 0x40, ack, 2))
        return -1;
    }
    on_wake(q, i);
    return 0;
  }
  case 13:                         /* PINGRESP */
    return 0;
  default:
    return -1;
  }
}

static void sess_read(struct sim_mqtt *q, size_t i)
{
  struct sess *s = &q->ss[i];
  for(;;) {
    ssize_t r = recv(s->fd, s->in + s->in_len, IN_MAX - s->in_len, 0);
    size_t off = 0;
    if(r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      sess_close(q, i, 1);
      return;
    }
    if(r < 0)
      return;
    s->in_len = (uint16_t)(s->in_len + r);
    /* Every complete packet in the buffer. */
    for(;;) {
      size_t len = 0, mul = 1, k = 1;
      int is_done = 0;
      while(off + k < s->in_len && k <= 4) {
        unsigned char c = s->in[off + k];
        len += (c & 127) * mul;
        mul *= 128;
        k++;
        if(!(c & 128)) {
          is_done = 1;
          break;
        }
      }
      if(!is_done)
        break;
      if(len > IN_MAX - 8) {
        sess_close(q, i, 1);
        return;
      }
      if(off + k + len > s->in_len)
        break;
      if(on_packet(q, i, s->in[off], s->in + off + k, len)) {
        sess_close(q, i, 1);
        return;
      }
      off += k + len;
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len = (uint16_t)(s->in_len - off);
  }
}

static int sess_start(struct sim_mqtt *q, size_t i)
{
  struct sess *s = &q->ss[i];
  struct epoll_event ev;
  int one = 1;
  s->in = malloc(IN_MAX);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if(!s->in || s->fd < 0) {
    fail(q, i, "out of memory or descriptors", errno);
    return -1;
  }
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if(connect(s->fd, (struct sockaddr *)&q->addr, sizeof(q->addr)) &&
     errno != EINPROGRESS) {
    fail(q, i, "cannot connect", errno);
    return -1;
  }
  s->state = S_CONNECTING;
  q->outstanding++;
  ev.events = EPOLLOUT;
  ev.data.u64 = i;
  if(epoll_ctl(q->ep, EPOLL_CTL_ADD, s->fd, &ev)) {
    fail(q, i, "epoll_ctl", errno);
    return -1;
  }
  return 0;
}

/* The non-blocking connect finished: send CONNECT, then wait for input. */
static void sess_connected(struct sim_mqtt *q, size_t i)
{
  struct sess *s = &q->ss[i];
  struct epoll_event ev;
  int err = 0;
  socklen_t el = sizeof(err);
  if(getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
    fail(q, i, "cannot connect", err);
    sess_close(q, i, 0);
    return;
  }
  ev.events = EPOLLIN;
  ev.data.u64 = i;
  epoll_ctl(q->ep, EPOLL_CTL_MOD, s->fd, &ev);
  s->state = S_CONNACK;
  if(send_connect(q, i))
    sess_close(q, i, 0);
}

static void *sim_mqtt_main(void *arg)
{
  struct sim_mqtt *q = arg;
  struct epoll_event evs[512];
  size_t next = 0, i;
  int64_t t_start = mono_ns(), last_ping_scan = t_start;
  static const unsigned char none[1];

  for(;;) {
    int n, k, is_stopping;
    int64_t t;
    pthread_mutex_lock(&q->lock);
    is_stopping = q->is_stopping;
    pthread_mutex_unlock(&q->lock);
    if(is_stopping)
      break;
    while(q->is_ready == 0 && next < q->n &&
          q->outstanding < (size_t)q->batch) {
      if(sess_start(q, next))
        break;
      next++;
    }
    n = epoll_wait(q->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 50);
    for(k = 0; k < n; k++) {
      size_t idx = (size_t)evs[k].data.u64;
      struct sess *s = &q->ss[idx];
      if(s->fd < 0)
        continue;
      if(s->state == S_CONNECTING)
        sess_connected(q, idx);
      else
        sess_read(q, idx);
    }
    t = mono_ns();
    /* Keepalive: a PINGREQ after half the keepalive without output. */
    if(t - last_ping_scan >= 1000000000) {
      last_ping_scan = t;
      for(i = 0; i < next; i++)
        if(q->ss[i].state == S_UP &&
           t - q->ss[i].last_out_ns > (int64_t)KEEPALIVE_S * 500000000 &&
           send_packet(&q->ss[i], 0xc0, none, 0))
          sess_close(q, i, 1);
    }
    if(q->is_ready == 0) {
      uint64_t subscribed;
      pthread_mutex_lock(&q->lock);
      subscribed = q->st.subscribed;
      pthread_mutex_unlock(&q->lock);
      if(next == q->n && q->outstanding == 0 && subscribed == q->n) {
        pthread_mutex_lock(&q->lock);
        q->is_ready = 1;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
      }
      else if((double)(t - t_start) / 1e9 > q->timeout_s)
        fail(q, q->n, "sessions subscribed before the timeout",
             (long)subscribed);
    }
  }
  for(i = 0; i < q->n; i++)
    if(q->ss[i].fd >= 0) {
      if(q->ss[i].state == S_UP)
        send_packet(&q->ss[i], 0xe0, none, 0);   /* DISCONNECT */
      close(q->ss[i].fd);
      q->ss[i].fd = -1;
    }
  return NULL;
}

int sim_mqtt_start(struct sim_mqtt **out, const char *host, int port,
                   const struct sim_mqtt_dev *devs, size_t n, int batch,
                   double timeout_s, int *wake_fd, char *err, size_t errlen)
{
  struct sim_mqtt *q = calloc(1, sizeof(*q));
  size_t i;
  *out = NULL;
  if(!q || n == 0) {
    snprintf(err, errlen, "bad arguments");
    free(q);
    return -1;
  }
  q->ep = q->efd = -1;
  q->addr.sin_family = AF_INET;
  q->addr.sin_port = htons((uint16_t)port);
  if(inet_pton(AF_INET, host, &q->addr.sin_addr) != 1) {
    snprintf(err, errlen, "%s: an IPv4 address is needed", host);
    free(q);
    return -1;
  }
  q->devs = devs;
  q->n = n;
  q->batch = batch > 0 ? batch : 1;
  q->timeout_s = timeout_s;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->cond, NULL);
  q->ss = calloc(n, sizeof(*q->ss));
  q->ep = epoll_create1(EPOLL_CLOEXEC);
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(!q->ss || q->ep < 0 || q->efd < 0) {
    snprintf(err, errlen, "out of memory or descriptors");
    sim_mqtt_stop(q);
    return -1;
  }
  for(i = 0; i < n; i++)
    q->ss[i].fd = -1;
  if(pthread_create(&q->th, NULL, sim_mqtt_main, q)) {
    snprintf(err, errlen, "cannot start the MQTT thread");
    sim_mqtt_stop(q);
    return -1;
  }
  q->has_thread = 1;
  pthread_mutex_lock(&q->lock);
  while(!q->is_ready)
    pthread_cond_wait(&q->cond, &q->lock);
  pthread_mutex_unlock(&q->lock);
  if(q->is_ready < 0) {
    snprintf(err, errlen, "%s", q->err);
    sim_mqtt_stop(q);
    return -1;
  }
  *wake_fd = q->efd;
  *out = q;
  return 0;
}

size_t sim_mqtt_take(struct sim_mqtt *q, uint32_t *out, size_t cap)
{
  size_t k;
  uint64_t v;
  ssize_t r;
  pthread_mutex_lock(&q->lock);
  k = q->n_woken < cap ? q->n_woken : cap;
  memcpy(out, q->woken, k * sizeof(*out));
  memmove(q->woken, q->woken + k, (q->n_woken - k) * sizeof(*out));
  q->n_woken -= k;
  if(!q->n_woken) {
    r = read(q->efd, &v, sizeof(v));
    (void)r;
  }
  pthread_mutex_unlock(&q->lock);
  return k;
}

void sim_mqtt_get_stats(struct sim_mqtt *q, struct sim_mqtt_stats *st)
{
  pthread_mutex_lock(&q->lock);
  *st = q->st;
  pthread_mutex_unlock(&q->lock);
}

void sim_mqtt_stop(struct sim_mqtt *q)
{
  size_t i;
  if(!q)
    return;
  if(q->has_thread) {
    pthread_mutex_lock(&q->lock);
    q->is_stopping = 1;
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->th, NULL);
  }
  for(i = 0; q->ss && i < q->n; i++) {
    if(q->ss[i].fd >= 0)
      close(q->ss[i].fd);
    free(q->ss[i].in);
  }
  free(q->ss);
  free(q->woken);
  if(q->ep >= 0)
    close(q->ep);
  if(q->efd >= 0)
    close(q->efd);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
  free(q);
}
