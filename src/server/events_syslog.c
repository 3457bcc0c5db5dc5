/*
 * events_syslog.c: the syslog sink (events.h, docs/events.md): RFC 5424
 * messages over TCP, framed by octet counting (RFC 6587 3.4.1, which
 * RFC 5425 prescribes for TLS as well), to tcp://HOST:PORT or, with TLS
 * (OpenSSL; the receiver's certificate is verified against
 * --events-syslog-ca-file or the system's CAs, and its name against HOST),
 * to tls://HOST:PORT.
 *
 * One thread: it frames queued events into a pending buffer and writes it
 * on a non-blocking socket.  When the receiver is away it reconnects with
 * exponential backoff (0.5 s doubling to 30 s) while the queue holds what
 * comes meanwhile (then drops and counts).  After a broken connection the
 * whole pending buffer is sent again: syslog over TCP has no
 * acknowledgements, so delivery is best effort and may repeat a few
 * messages (every event carries its id); the HEC sink is the one that
 * loses nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "core/log.h"
#include "core/util.h"
#include "server/events_int.h"

#define TAKE_MAX 512
#define PENDING_MAX (1 << 20)     /* bytes framed but not yet written */
#define CONNECT_MS 5000
#define WRITE_MS 30000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define FAIL_LOG_MS 10000

struct syslog_sink {
  struct mdm_sink base;
  char host[256];
  int port;
  int is_tls;
  char ca_file[1024];
  int facility;
  char hostname[256];
  int pid;
  SSL_CTX *ctx;
  SSL *ssl;
  int fd;
  struct mdm_buf pending;
  size_t n_pending;             /* events in pending */
  int backoff_ms;
  int64_t next_try_ms;
  int64_t last_fail_log_ms;
  int is_failing;               /* stopping, and the receiver is away */
  pthread_t thread;
  int has_thread;
};

static void disconnect(struct syslog_sink *s)
{
  if(s->ssl) {
    SSL_free(s->ssl);
    s->ssl = NULL;
  }
  if(s->fd >= 0)
    close(s->fd);
  s->fd = -1;
}

static void note_failure(struct syslog_sink *s, const char *what)
{
  int64_t now = mdm_ev_mono_ms();
  atomic_fetch_add(&s->base.n_failures, 1);
  if(!s->last_fail_log_ms || now - s->last_fail_log_ms >= FAIL_LOG_MS) {
    mdm_warn("events: syslog %s:%d: %s (retrying in %d ms)", s->host,
             s->port, what, s->backoff_ms);
    s->last_fail_log_ms = now;
  }
  s->next_try_ms = now + s->backoff_ms;
  s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                     : s->backoff_ms * 2;
}

/* Wait for fd to be ready for ev until deadline; 1 ready, 0 timeout or
 * error. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
  for(;;) {
    struct pollfd p = {fd, ev, 0};
    int64_t left = deadline - mdm_ev_mono_ms();
    int r;
    if(left <= 0)
      return 0;
    r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    if(r > 0)
      return (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & ev) ? 0 : 1;
    if(r < 0 && errno != EINTR)
      return 0;
  }
}

/* One TCP connection to host:port by deadline; -1 on failure. */
static int tcp_connect(const char *host, int port, int64_t deadline)
{
  struct addrinfo hints, *res = NULL, *ai;
  char portstr[16];
  int fd = -1;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  snprintf(portstr, sizeof(portstr), "%d", port);
  if(getaddrinfo(host, portstr, &hints, &res) != 0)
    return -1;
  for(ai = res; ai; ai = ai->ai_next) {
    int err = 0, one = 1;
    socklen_t el = sizeof(err);
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if(fd < 0)
      continue;
    if(connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
       (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && !err)) {
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      break;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

static int is_ip_literal(const char *host)
{
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

/* Drive an SSL call that may want to read or write until it is done. */
static int ssl_wait(SSL *ssl, int fd, int r, int64_t deadline)
{
  int e = SSL_get_error(ssl, r);
  if(e == SSL_ERROR_WANT_READ)
    return wait_fd(fd, POLLIN, deadline);
  if(e == SSL_ERROR_WANT_WRITE)
    return wait_fd(fd, POLLOUT, deadline);
  return 0;
}

static int do_connect(struct syslog_sink *s, int64_t deadline, char *err,
                      size_t errlen)
{
  int r;
  s->fd = tcp_connect(s->host, s->port, deadline);
  if(s->fd < 0) {
    snprintf(err, errlen, "cannot connect");
    return -1;
  }
  if(!s->is_tls)
    return 0;
  s->ssl = SSL_new(s->ctx);
  if(!s->ssl || !SSL_set_fd(s->ssl, s->fd)) {
    snprintf(err, errlen, "cannot start TLS");
    disconnect(s);
    return -1;
  }
  if(is_ip_literal(s->host))
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), s->host);
  else {
    SSL_set_tlsext_host_name(s->ssl, s->host);
    SSL_set1_host(s->ssl, s->host);
  }
  ERR_clear_error();
  while((r = SSL_connect(s->ssl)) != 1) {
    if(!ssl_wait(s->ssl, s->fd, r, deadline)) {
      long v = SSL_get_verify_result(s->ssl);
      if(v != X509_V_OK)
        snprintf(err, errlen, "TLS: certificate not trusted: %s",
                 X509_verify_cert_error_string(v));
      else
        snprintf(err, errlen, "TLS handshake failed");
      ERR_clear_error();
      disconnect(s);
      return -1;
    }
  }
  return 0;
}

/* Has the receiver closed (or sent anything, which a syslog receiver never
 * does but a closing TLS peer may)? */
static int is_peer_gone(struct syslog_sink *s)
{
  struct pollfd p = {s->fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

static int write_all(struct syslog_sink *s, const char *data, size_t len,
                     int64_t deadline)
{
  size_t off = 0;
  while(off < len) {
    if(s->ssl) {
      int r;
      size_t w = 0;
      ERR_clear_error();
      r = SSL_write_ex(s->ssl, data + off, len - off, &w);
      if(r == 1) {
        off += w;
        continue;
      }
      if(!ssl_wait(s->ssl, s->fd, r, deadline)) {
        ERR_clear_error();
        return -1;
      }
    }
    else {
      ssize_t w = send(s->fd, data + off, len - off, MSG_NOSIGNAL);
      if(w > 0) {
        off += (size_t)w;
        continue;
      }
      if(w < 0 && errno == EINTR)
        continue;
      if(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
         wait_fd(s->fd, POLLOUT, deadline))
        continue;
      return -1;
    }
  }
  return 0;
}

static void *syslog_main(void *arg)
{
  struct syslog_sink *s = arg;
  struct mdm_event *evs[TAKE_MAX];

  mdm_ev_thread_background("mdm-ev-syslog");
  for(;;) {
    int64_t now = mdm_ev_mono_ms(), deadline = 0;
    int is_stopping = mdm_sink_is_stopping(&s->base, &deadline);
    char err[160];

    /* Stopping: what the receiver cannot take now (it is away, or the
     * deadline passed) is counted lost rather than delaying the exit. */
    if(is_stopping && (now >= deadline || s->is_failing)) {
      size_t n = s->n_pending, k;
      while((k = mdm_sink_take(&s->base, evs, TAKE_MAX, 0))) {
        n += k;
        while(k)
          mdm_event_unref(evs[--k]);
      }
      if(n)
        mdm_sink_count_drop(&s->base, n, "not sent before the shutdown "
                                         "deadline");
      break;
    }
    if(s->pending.len < PENDING_MAX) {
      /* Wait for events only when there is nothing to send. */
      int timeout = s->pending.len || is_stopping ? 0 : 1000;
      size_t n = mdm_sink_take(&s->base, evs, TAKE_MAX, timeout), i;
      for(i = 0; i < n; i++) {
        if(mdm_syslog_frame(&s->pending, s->facility, s->hostname, "mdmd",
                            s->pid, evs[i]))
          mdm_sink_count_drop(&s->base, 1, "message too large");
        else
          s->n_pending++;
        mdm_event_unref(evs[i]);
      }
    }
    if(!s->pending.len) {
      if(is_stopping && !mdm_sink_queued(&s->base))
        break;
      continue;
    }
    if(s->fd >= 0 && is_peer_gone(s)) {
      disconnect(s);
      note_failure(s, "the receiver closed the connection");
    }
    if(s->fd < 0) {
      int64_t until = is_stopping ? deadline : now + CONNECT_MS;
      if(now < s->next_try_ms && is_stopping) {
        s->is_failing = 1;
        continue;
      }
      if(now < s->next_try_ms) {
        int64_t wake = s->next_try_ms < until || !is_stopping ? s->next_try_ms
                                                              : until;
        mdm_sink_wait(&s->base, (int)(wake - now));
        continue;
      }
      if(until > now + CONNECT_MS)
        until = now + CONNECT_MS;
      if(do_connect(s, until, err, sizeof(err))) {
        note_failure(s, err);
        s->is_failing = is_stopping;
        continue;
      }
      if(s->backoff_ms > BACKOFF_MIN_MS || s->last_fail_log_ms)
        mdm_info("events: syslog %s:%d: connected", s->host, s->port);
      s->backoff_ms = BACKOFF_MIN_MS;
      s->last_fail_log_ms = 0;
    }
    if(write_all(s, s->pending.data, s->pending.len,
                 is_stopping ? deadline : now + WRITE_MS)) {
      disconnect(s);
      note_failure(s, "cannot send");
      s->is_failing = is_stopping;
      continue;  /* the whole pending buffer goes again */
    }
    atomic_fetch_add(&s->base.n_delivered, s->n_pending);
    s->n_pending = 0;
    mdm_buf_reset(&s->pending);
  }
  disconnect(s);
  return NULL;
}

static mdm_rc syslog_start(struct mdm_sink *b)
{
  struct syslog_sink *s = (struct syslog_sink *)b;
  if(pthread_create(&s->thread, NULL, syslog_main, s) != 0)
    return MDM_ERR_INTERNAL;
  s->has_thread = 1;
  return MDM_OK;
}

static void syslog_stop(struct mdm_sink *b)
{
  struct syslog_sink *s = (struct syslog_sink *)b;
  if(s->has_thread) {
    pthread_join(s->thread, NULL);
    s->has_thread = 0;
  }
}

static void syslog_destroy(struct mdm_sink *b)
{
  struct syslog_sink *s = (struct syslog_sink *)b;
  syslog_stop(b);
  disconnect(s);
  SSL_CTX_free(s->ctx);
  mdm_buf_release(&s->pending);
  mdm_sink_release(&s->base);
  free(s);
}

mdm_rc mdm_sink_syslog_new(const struct mdm_events_config *cfg,
                           const char *hostname, struct mdm_sink **out)
{
  struct syslog_sink *s = calloc(1, sizeof(*s));
  mdm_rc rc;
  int ok;
  *out = NULL;
  if(!s)
    return MDM_ERR_NOMEM;
  s->fd = -1;
  rc = mdm_sink_init(&s->base, "syslog", (size_t)cfg->queue_max);
  if(rc) {
    free(s);
    return rc;
  }
  s->base.start = syslog_start;
  s->base.stop = syslog_stop;
  s->base.destroy = syslog_destroy;
  mdm_buf_init(&s->pending, PENDING_MAX + MDM_EV_MAX + 8192);
  s->is_tls = !strncmp(cfg->syslog, "tls://", 6);
  s->facility = cfg->syslog_facility;
  s->pid = (int)getpid();
  s->backoff_ms = BACKOFF_MIN_MS;
  mdm_strlcpy(s->hostname, hostname, sizeof(s->hostname));
  if(mdm_ev_parse_hostport(cfg->syslog + 6, s->host, sizeof(s->host),
                           &s->port)) {
    fprintf(stderr, "mdmd: invalid --events-syslog '%s' (expected "
                    "tcp://HOST:PORT or tls://HOST:PORT)\n", cfg->syslog);
    syslog_destroy(&s->base);
    return MDM_ERR_INVAL;
  }
  if(cfg->syslog_ca_file[0] && !s->is_tls) {
    fprintf(stderr, "mdmd: --events-syslog-ca-file needs a tls:// "
                    "--events-syslog\n");
    syslog_destroy(&s->base);
    return MDM_ERR_INVAL;
  }
  if(s->is_tls) {
    s->ctx = SSL_CTX_new(TLS_client_method());
    if(!s->ctx) {
      syslog_destroy(&s->base);
      return MDM_ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(s->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_ENABLE_PARTIAL_WRITE);
    ok = cfg->syslog_ca_file[0]
           ? SSL_CTX_load_verify_locations(s->ctx, cfg->syslog_ca_file, NULL)
           : SSL_CTX_set_default_verify_paths(s->ctx);
    if(ok != 1) {
      fprintf(stderr, "mdmd: cannot read the CA certificates in '%s'\n",
              cfg->syslog_ca_file[0] ? cfg->syslog_ca_file
                                     : "the system store");
      ERR_clear_error();
      syslog_destroy(&s->base);
      return MDM_ERR_IO;
    }
  }
  *out = &s->base;
  return MDM_OK;
}
