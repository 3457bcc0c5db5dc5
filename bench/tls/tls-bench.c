/*
 * tls-bench.c: the client of the zero-trust benchmark (bench/tls/run,
 * issue 5).  It enrolls devices the way a fleet of new devices does: each
 * one has made its own P-256 key and CSR (before the clock starts, as on
 * the device), opens a NEW TLS connection (full handshake, no session
 * resumption: a new device is a new client), verifies mdmd's certificate
 * against the CA it was given, posts its enrollment with the CSR and
 * requires a 201 with a certificate in the answer.  K threads of blocking
 * sockets share the devices; the figure is enrollments per second over the
 * timed phase, with latency percentiles, errors by status, and the CPU
 * mdmd, this client and the rest of the machine used meanwhile (all on the
 * same two cores).
 *
 *   mdm-tls-bench enroll --server URL --token T [--ca FILE] [--devices N]
 *                 [--threads K] [--devices-file FILE] [--first N]
 *                 [--server-pid PID] [-o text|json]
 *   mdm-tls-bench connect --server URL [--ca FILE] [--requests N]
 *                 [--threads K] [--path PATH] [--server-pid PID] [-o ...]
 *
 * "connect" is the reference without enrollment: GET PATH (default
 * /healthz) on a new connection each, so the handshake's and the
 * connection's own cost can be told from the enrollment's.  URL is
 * https://HOST:PORT or http://HOST:PORT (plain, for comparison).
 *
 * The devices file (for the access checks that follow, bench/tls/
 * access.lua) has one line per enrolled device: its id, its device token
 * and its certificate URL-encoded as nginx's $ssl_client_escaped_cert
 * forwards it in X-Client-Cert.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "core/buf.h"
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"
#include "../benchutil.h"

#define PROG "mdm-tls-bench"
#define RESP_MAX (256 * 1024)   /* one response, headers and body */
#define FACTS_MAX 4096
#define TOKEN_MAX 4096
#define IO_TIMEOUT_S 30         /* a hung server fails the request */
#define N_STATUS 600            /* errors by HTTP status; 0: no answer */
#define MAX_THREADS 512

/* ---- options ------------------------------------------------------------ */

enum mode { MODE_ENROLL, MODE_CONNECT };

struct opts {
  enum mode mode;
  const char *server;
  const char *ca_file;
  const char *token;            /* the enrollment token */
  const char *devices_file;
  const char *path;             /* connect: what to GET */
  const char *out_format;       /* "text" or "json" */
  long long n_items;            /* devices to enroll, or connections */
  long long first;              /* index of the first device (its facts) */
  int n_threads;
  long long server_pid;
};

/* ---- the server ---------------------------------------------------------- */

struct target {
  int is_tls;
  struct bench_server srv;      /* its host, Host: header and address */
  SSL_CTX *ctx;
};

/* ---- one device ---------------------------------------------------------- */

struct device {
  char *req;                    /* the whole HTTP request, made up front */
  size_t req_len;
  char id[MDM_UUID_LEN + 1];
  char *token;                  /* from the answer */
  char *cert_escaped;           /* the certificate, URL-encoded */
};

/* ---- the bench ----------------------------------------------------------- */

struct bench;

struct worker {
  struct bench *b;
  pthread_t th;
  struct bench_samples lat;     /* connect to the answer's last byte */
  struct bench_samples hs;      /* connect to the end of the handshake */
  uint64_t by_status[N_STATUS];
  uint64_t n_ok;
  char *resp;                   /* RESP_MAX + 1 bytes of its own */
};

struct bench {
  struct opts o;
  struct target t;
  struct device *devs;
  size_t n_devs;
  atomic_size_t next;           /* the next item a worker takes */
  atomic_int n_errors_shown;
  pthread_barrier_t start;
  char *connect_req;            /* connect: the one request */
  size_t connect_req_len;
  char tls_info[160];           /* version, cipher and group, first seen */
  pthread_mutex_t info_lock;
};

/* A failure worth showing (the first few only: a run may fail thousands
 * of times the same way). */
static void show_error(struct bench *b, const char *fmt, const char *detail)
{
  if(atomic_fetch_add(&b->n_errors_shown, 1) < 5) {
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
  }
}

/* ---- making the devices (not timed) -------------------------------------- */

/*
 * Device i's key, CSR and whole enrollment request.  The key itself is not
 * kept: the access checks that follow present the certificate as a gateway
 * forwards it, which needs no key.
 */
static int device_make(struct bench *b, size_t i)
{
  struct device *d = &b->devs[i];
  EVP_PKEY *key = NULL;
  char *csr = NULL, *body = NULL, cn[32];
  struct mdm_buf facts, req;
  json_t *j = NULL, *fj = NULL;
  int ret = -1;

  mdm_buf_init(&facts, FACTS_MAX);
  mdm_buf_init(&req, FACTS_MAX + MDM_CSR_MAX + TOKEN_MAX + 1024);
  snprintf(cn, sizeof(cn), "bench-%zu", (size_t)b->o.first + i);
  if(mdm_key_generate(&key) || mdm_csr_create(key, cn, &csr) ||
     bench_facts_render(&facts, (size_t)b->o.first + i, 0))
    goto out;
  fj = json_loadb(facts.data, facts.len, 0, NULL);
  if(!fj)
    goto out;
  j = json_pack("{s:s, s:O, s:s}", "enrollment_token", b->o.token, "facts",
                fj, "csr", csr);
  body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  if(!body ||
     mdm_buf_printf(&req, "POST /v1/enroll HTTP/1.1\r\nHost: %s\r\n"
                    "User-Agent: " PROG "\r\nAccept: application/json\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                    b->t.srv.host_hdr, strlen(body), body))
    goto out;
  d->req_len = req.len;
  d->req = mdm_buf_steal(&req);
  ret = 0;
out:
  free(body);
  json_decref(j);
  json_decref(fj);
  free(csr);
  EVP_PKEY_free(key);
  mdm_buf_release(&facts);
  mdm_buf_release(&req);
  return ret;
}

static void *maker(void *arg)
{
  struct bench *b = arg;
  for(;;) {
    size_t i = atomic_fetch_add(&b->next, 1);
    if(i >= b->n_devs)
      break;
    if(device_make(b, i)) {
      show_error(b, "%s", "cannot make a device's key and CSR");
      return (void *)1;
    }
  }
  return NULL;
}

/* ---- the server's address and TLS ---------------------------------------- */

static int target_setup(struct bench *b)
{
  struct target *t = &b->t;
  const char *p = b->o.server;

  if(!strncmp(p, "https://", 8))
    t->is_tls = 1;
  else if(strncmp(p, "http://", 7)) {
    fprintf(stderr, PROG ": --server must be an https:// or http:// URL\n");
    return -1;
  }
  if(bench_server_resolve(PROG, p, t->is_tls ? "443" : "80", &t->srv))
    return -1;
  if(!t->is_tls)
    return 0;

  if(!b->o.ca_file) {
    fprintf(stderr, PROG ": https:// needs --ca (the server's certificate "
                    "is always verified)\n");
    return -1;
  }
  t->ctx = SSL_CTX_new(TLS_client_method());
  if(!t->ctx || !SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) ||
     SSL_CTX_load_verify_locations(t->ctx, b->o.ca_file, NULL) != 1) {
    fprintf(stderr, PROG ": cannot load the CA '%s'\n", b->o.ca_file);
    return -1;
  }
  SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
  /* Every connection a full handshake: no session cache, no tickets. */
  SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET |
                              SSL_OP_IGNORE_UNEXPECTED_EOF);
  {
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(t->ctx);
    struct in6_addr a6;
    int is_ip = inet_pton(AF_INET, t->srv.host, &a6) == 1 ||
                inet_pton(AF_INET6, t->srv.host, &a6) == 1;
    if(is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->srv.host) != 1
             : X509_VERIFY_PARAM_set1_host(vp, t->srv.host, 0) != 1)
      return -1;
  }
  return 0;
}

/* ---- one request on a new connection ------------------------------------- */

struct xconn {
  int fd;
  SSL *ssl;
};

static int x_write(struct xconn *c, const char *p, size_t n)
{
  while(n) {
    ssize_t w;
    if(c->ssl) {
      size_t done = 0;
      if(SSL_write_ex(c->ssl, p, n, &done) != 1)
        return -1;
      w = (ssize_t)done;
    }
    else {
      w = send(c->fd, p, n, MSG_NOSIGNAL);
      if(w < 0 && errno == EINTR)
        continue;
      if(w <= 0)
        return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Up to n bytes into p; 0 at the end of the stream, -1 on an error. */
static ssize_t x_read(struct xconn *c, char *p, size_t n)
{
  if(c->ssl) {
    size_t got = 0;
    if(SSL_read_ex(c->ssl, p, n, &got) == 1)
      return (ssize_t)got;
    switch(SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      /* An end without close_notify, after a complete answer, is an end. */
      return ERR_peek_error() ? -1 : 0;
    default:
      return -1;
    }
  }
  for(;;) {
    ssize_t r = recv(c->fd, p, n, 0);
    if(r < 0 && errno == EINTR)
      continue;
    return r;
  }
}

/* Where the header block of p[0..n) ends (after its blank line); 0 when
 * it is not complete yet. */
static size_t head_end(const char *p, size_t n)
{
  size_t i;
  for(i = 3; i < n; i++)
    if(p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
       p[i - 3] == '\r')
      return i + 1;
  return 0;
}

/* Content-Length of the header block, or -1 when there is none. */
static long long content_length(const char *head, size_t n)
{
  const char *p = head, *end = head + n;
  while(p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if(!eol)
      break;
    if((size_t)(eol - p) > 15 && !strncasecmp(p, "Content-Length:", 15)) {
      char num[32];
      size_t l = (size_t)(eol - p) - 15;
      long long v;
      if(l >= sizeof(num))
        return -1;
      memcpy(num, p + 15, l);
      num[l] = '\0';
      v = strtoll(num, NULL, 10);
      return v < 0 ? -1 : v;
    }
    p = eol + 1;
  }
  return -1;
}

/*
 * Send req on a new connection (TLS handshake included) and read the
 * answer until its Content-Length or the end of the stream.  Returns the
 * HTTP status (0: no answer) and the body at *body (in w->resp) of
 * *body_len bytes.  The handshake's time goes into w->hs.
 */
static int exchange(struct worker *w, const char *req, size_t req_len,
                    const char **body, size_t *body_len)
{
  struct bench *b = w->b;
  struct xconn c = {-1, NULL};
  struct timeval tv = {IO_TIMEOUT_S, 0};
  size_t got = 0, hl = 0;
  long long cl = -1;
  int status = 0, one = 1;
  int64_t t0 = mdm_mono_ns();
  char what[128];
  struct in6_addr ip;

  *body = NULL;
  *body_len = 0;
  c.fd = socket(b->t.srv.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if(c.fd < 0)
    goto out;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if(connect(c.fd, (struct sockaddr *)&b->t.srv.addr, b->t.srv.addr_len)) {
    snprintf(what, sizeof(what), "connect: %s", strerror(errno));
    show_error(b, "%s", what);
    goto out;
  }
  if(b->t.is_tls) {
    c.ssl = SSL_new(b->t.ctx);
    if(!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1)
      goto out;
    if(inet_pton(AF_INET, b->t.srv.host, &ip) != 1 &&
       inet_pton(AF_INET6, b->t.srv.host, &ip) != 1)
      SSL_set_tlsext_host_name(c.ssl, b->t.srv.host);
    if(SSL_connect(c.ssl) != 1) {
      long vr = SSL_get_verify_result(c.ssl);
      if(vr != X509_V_OK)
        snprintf(what, sizeof(what), "TLS handshake: certificate: %s",
                 X509_verify_cert_error_string(vr));
      else
        snprintf(what, sizeof(what), "TLS handshake: %s",
                 ERR_peek_last_error()
                 ? ERR_reason_error_string(ERR_peek_last_error())
                 : strerror(errno));
      show_error(b, "%s", what);
      ERR_clear_error();
      goto out;
    }
    if(!b->tls_info[0]) {
      pthread_mutex_lock(&b->info_lock);
      if(!b->tls_info[0]) {
        int nid = SSL_get_negotiated_group(c.ssl);
        snprintf(b->tls_info, sizeof(b->tls_info), "%s %s %s",
                 SSL_get_version(c.ssl), SSL_get_cipher_name(c.ssl),
                 nid > 0 && !(nid & TLSEXT_nid_unknown) && OBJ_nid2sn(nid)
                 ? OBJ_nid2sn(nid) : "?");
      }
      pthread_mutex_unlock(&b->info_lock);
    }
  }
  bench_samples_add(&w->hs, mdm_mono_ns() - t0);
  if(x_write(&c, req, req_len)) {
    show_error(b, "%s", "cannot send the request");
    goto out;
  }
  for(;;) {
    ssize_t r;
    if(got == RESP_MAX)
      break;
    r = x_read(&c, w->resp + got, RESP_MAX - got);
    if(r < 0) {
      show_error(b, "%s", "the connection failed before the answer was in");
      goto out;
    }
    if(r == 0)
      break;
    got += (size_t)r;
    if(!hl && (hl = head_end(w->resp, got)))
      cl = content_length(w->resp, hl);
    if(hl && cl >= 0 && got >= hl + (size_t)cl)
      break;
  }
  w->resp[got] = '\0';
  if(!hl || sscanf(w->resp, "HTTP/1.%*d %d", &status) != 1 ||
     status < 100 || status >= N_STATUS) {
    status = 0;
    show_error(b, "%s", "malformed answer");
    goto out;
  }
  if(cl >= 0 && got < hl + (size_t)cl) {
    status = 0;
    show_error(b, "%s", "the answer ended early");
    goto out;
  }
  *body = w->resp + hl;
  *body_len = got - hl;
  if(c.ssl)
    SSL_shutdown(c.ssl);  /* close_notify, not waiting for the peer's */
out:
  if(c.ssl)
    SSL_free(c.ssl);
  if(c.fd >= 0)
    close(c.fd);
  ERR_clear_error();
  if(status)
    bench_samples_add(&w->lat, mdm_mono_ns() - t0);
  return status;
}

/* ---- the timed phase ----------------------------------------------------- */

/* nginx's $ssl_client_escaped_cert: the PEM with everything but
 * [A-Za-z0-9-._~] as %XX.  Caller owns the result. */
static char *url_escape(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s), o = 0;
  char *out = malloc(3 * n + 1);
  if(!out)
    return NULL;
  for(; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
       c == '~')
      out[o++] = (char)c;
    else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

/* Take what an enrollment answered into device i; 0 if it is complete. */
static int enroll_answer(struct worker *w, size_t i, const char *body,
                         size_t len)
{
  struct device *d = &w->b->devs[i];
  json_t *j = json_loadb(body, len, 0, NULL);
  const char *id = json_string_value(json_object_get(j, "device_id"));
  const char *tok = json_string_value(json_object_get(j, "device_token"));
  const char *cert = json_string_value(json_object_get(j, "certificate"));
  int ret = -1;

  if(!id || !mdm_is_uuid(id) || !tok || strlen(tok) >= TOKEN_MAX) {
    show_error(w->b, "%s", "201 without device_id and device_token");
    goto out;
  }
  if(!cert || strncmp(cert, "-----BEGIN CERTIFICATE-----", 27)) {
    show_error(w->b, "%s", "201 without a certificate");
    goto out;
  }
  mdm_strlcpy(d->id, id, sizeof(d->id));
  d->token = strdup(tok);
  d->cert_escaped = url_escape(cert);
  if(d->token && d->cert_escaped)
    ret = 0;
out:
  json_decref(j);
  return ret;
}

static void *worker_run(void *arg)
{
  struct worker *w = arg;
  struct bench *b = w->b;
  size_t n = b->o.mode == MODE_ENROLL ? b->n_devs : (size_t)b->o.n_items;

  pthread_barrier_wait(&b->start);
  for(;;) {
    size_t i = atomic_fetch_add(&b->next, 1), blen;
    const char *body;
    int st;
    if(i >= n)
      break;
    if(b->o.mode == MODE_ENROLL) {
      st = exchange(w, b->devs[i].req, b->devs[i].req_len, &body, &blen);
      free(b->devs[i].req);
      b->devs[i].req = NULL;
      if(st == 201 && enroll_answer(w, i, body, blen))
        st = 0;  /* 201 without what it must hold counts as no answer */
      if(st == 201) {
        w->n_ok++;
        continue;
      }
      if(st)
        show_error(b, "enrollment answered %.300s", body ? body : "");
    }
    else {
      st = exchange(w, b->connect_req, b->connect_req_len, &body, &blen);
      if(st == 200) {
        w->n_ok++;
        continue;
      }
    }
    w->by_status[st]++;
  }
  return NULL;
}

/* ---- server process figures ---------------------------------------------- */

/* CPU seconds the machine was busy (user, nice, system, irq, softirq of
 * /proc/stat); -1 when unknown.  What the server and this client did not
 * use of it is other load on the same cores, which the report must show. */
static double machine_busy_s(void)
{
  unsigned long long f[7];
  FILE *fp = fopen("/proc/stat", "r");
  int n;
  if(!fp)
    return -1;
  n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1],
             &f[2], &f[3], &f[4], &f[5], &f[6]);
  fclose(fp);
  if(n != 7)
    return -1;
  return (double)(f[0] + f[1] + f[2] + f[5] + f[6]) /
         (double)sysconf(_SC_CLK_TCK);
}

struct figures0 {
  double server_cpu, self_cpu, busy;
  int64_t t;
};

static void figures_start(struct bench *b, struct figures0 *f)
{
  struct bench_proc_stat st;
  memset(f, 0, sizeof(*f));
  f->server_cpu = -1;
  if(b->o.server_pid > 0 && !bench_proc_stat_read(b->o.server_pid, &st))
    f->server_cpu = st.cpu_s;
  f->busy = machine_busy_s();
  f->self_cpu = bench_self_cpu_s();
  f->t = mdm_mono_ns();
}

/* The server's CPU and RSS, this client's CPU, and the CPU the rest of
 * the machine used since figures_start(). */
static void figures_add(struct bench *b, struct figures0 *f, json_t *r)
{
  double wall = (mdm_mono_ns() - f->t) / 1e9, scpu = -1, other = -1;
  double self = bench_self_cpu_s() - f->self_cpu, busy = machine_busy_s();
  struct bench_proc_stat st;
  long rss, hwm;

  if(b->o.server_pid > 0) {
    if(f->server_cpu >= 0 && !bench_proc_stat_read(b->o.server_pid, &st))
      scpu = st.cpu_s - f->server_cpu;
    bench_proc_rss(b->o.server_pid, &rss, &hwm);
    json_object_set_new(
      r, "server",
      json_pack("{s:I, s:f, s:f, s:f}", "pid", (json_int_t)b->o.server_pid,
                "cpu_cores", scpu >= 0 ? scpu / wall : -1.0,
                "rss_mib", rss / 1024.0, "hwm_mib", hwm / 1024.0));
  }
  json_object_set_new(r, "client",
                      json_pack("{s:f}", "cpu_cores", self / wall));
  if(busy >= 0 && f->busy >= 0) {
    other = busy - f->busy - self - (scpu > 0 ? scpu : 0);
    if(other < 0)
      other = 0;  /* the counters tick at different moments */
  }
  json_object_set_new(r, "machine",
                      json_pack("{s:f, s:f, s:f}", "wall_s", wall,
                                "busy_cores", busy >= 0 && f->busy >= 0
                                ? (busy - f->busy) / wall : -1.0,
                                "other_cores", other >= 0 ? other / wall
                                                          : -1.0));
}

/* ---- the devices file ---------------------------------------------------- */

static int devices_save(struct bench *b)
{
  char tmp[4096];
  FILE *f;
  size_t i;
  int ret = -1;

  if(snprintf(tmp, sizeof(tmp), "%s.tmp", b->o.devices_file) >=
     (int)sizeof(tmp))
    return -1;
  f = fopen(tmp, "w");
  if(!f) {
    fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp, strerror(errno));
    return -1;
  }
  fprintf(f, "# " PROG " devices: device_id device_token "
             "certificate_url_encoded\n");
  for(i = 0; i < b->n_devs; i++) {
    struct device *d = &b->devs[i];
    if(d->token && d->cert_escaped)
      fprintf(f, "%s %s %s\n", d->id, d->token, d->cert_escaped);
  }
  if(fflush(f) == 0 && !ferror(f))
    ret = 0;
  if(fclose(f))
    ret = -1;
  if(!ret && rename(tmp, b->o.devices_file))
    ret = -1;
  if(ret)
    fprintf(stderr, PROG ": cannot write '%s': %s\n", b->o.devices_file,
            strerror(errno));
  return ret;
}

/* ---- main ---------------------------------------------------------------- */

static const char usage_text[] =
  "usage: " PROG " enroll --server URL --token TOKEN [--ca FILE]\n"
  "                     [--devices N] [--threads K] [--devices-file FILE]\n"
  "                     [--first N] [--server-pid PID] [-o text|json]\n"
  "       " PROG " connect --server URL [--ca FILE] [--requests N]\n"
  "                     [--threads K] [--path PATH] [--server-pid PID]\n"
  "                     [-o text|json]\n"
  "\n"
  "enroll: N new devices, each with its own P-256 key and CSR (made before\n"
  "the clock starts), enroll over a new TLS connection each (full\n"
  "handshake, no resumption), K at a time; 201 with a certificate is a\n"
  "success.  connect: GET PATH on a new connection each, the reference.\n"
  "\n"
  "  --server URL          https://HOST:PORT, or http://HOST:PORT (plain)\n"
  "  --ca FILE             the CA that signed the server's certificate\n"
  "                        (https: required; the name or IP is checked)\n"
  "  --token TOKEN         an enrollment token with N uses left\n"
  "  --devices N           devices to enroll (default 1000)\n"
  "  --requests N          connect: connections (default 1000)\n"
  "  --threads K           at a time, each on its own thread (default 16)\n"
  "  --devices-file FILE   write each enrolled device's id, device token\n"
  "                        and URL-encoded certificate, one per line\n"
  "  --first N             device index of the first device (its facts;\n"
  "                        default 0): runs on one server differ by it\n"
  "  --path PATH           connect: the path (default /healthz)\n"
  "  --server-pid PID      report this process's CPU and RSS\n"
  "  -o text|json          the summary's format (default text)\n";

enum {
  OPT_SERVER = 256, OPT_CA, OPT_TOKEN, OPT_DEVICES, OPT_REQUESTS,
  OPT_THREADS, OPT_DEVICES_FILE, OPT_FIRST, OPT_PATH, OPT_SERVER_PID
};

static const struct option long_opts[] = {
  {"server", required_argument, NULL, OPT_SERVER},
  {"ca", required_argument, NULL, OPT_CA},
  {"token", required_argument, NULL, OPT_TOKEN},
  {"devices", required_argument, NULL, OPT_DEVICES},
  {"requests", required_argument, NULL, OPT_REQUESTS},
  {"threads", required_argument, NULL, OPT_THREADS},
  {"devices-file", required_argument, NULL, OPT_DEVICES_FILE},
  {"first", required_argument, NULL, OPT_FIRST},
  {"path", required_argument, NULL, OPT_PATH},
  {"server-pid", required_argument, NULL, OPT_SERVER_PID},
  {"help", no_argument, NULL, 'h'},
  {NULL, 0, NULL, 0}
};

static void parse_args(struct opts *o, int argc, char **argv)
{
  int ch;
  memset(o, 0, sizeof(*o));
  o->n_items = 1000;
  o->n_threads = 16;
  o->path = "/healthz";
  o->out_format = "text";
  if(argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    fputs(usage_text, stdout);
    exit(0);
  }
  if(argc < 2)
    bench_die_usage(PROG, "expected a command, enroll or connect", NULL);
  if(!strcmp(argv[1], "enroll"))
    o->mode = MODE_ENROLL;
  else if(!strcmp(argv[1], "connect"))
    o->mode = MODE_CONNECT;
  else
    bench_die_usage(PROG, "unknown command", argv[1]);
  optind = 2;
  while((ch = getopt_long(argc, argv, "ho:", long_opts, NULL)) != -1) {
    switch(ch) {
    case OPT_SERVER:
      o->server = optarg;
      break;
    case OPT_CA:
      o->ca_file = optarg;
      break;
    case OPT_TOKEN:
      if(!*optarg || strlen(optarg) >= TOKEN_MAX)
        bench_die_usage(PROG, "invalid value for", "--token");
      o->token = optarg;
      break;
    case OPT_DEVICES:
    case OPT_REQUESTS:
      o->n_items = bench_parse_ll(PROG, optarg, 1, 10000000,
                                  ch == OPT_DEVICES ? "--devices"
                                                    : "--requests");
      break;
    case OPT_THREADS:
      o->n_threads = (int)bench_parse_ll(PROG, optarg, 1, MAX_THREADS,
                                         "--threads");
      break;
    case OPT_DEVICES_FILE:
      o->devices_file = optarg;
      break;
    case OPT_FIRST:
      o->first = bench_parse_ll(PROG, optarg, 0, 1LL << 40, "--first");
      break;
    case OPT_PATH:
      if(optarg[0] != '/' || strlen(optarg) > 1024 ||
         strpbrk(optarg, " \r\n"))
        bench_die_usage(PROG, "invalid value for", "--path");
      o->path = optarg;
      break;
    case OPT_SERVER_PID:
      o->server_pid = bench_parse_ll(PROG, optarg, 1, 1LL << 40,
                                     "--server-pid");
      break;
    default:  /* -o, -h, and what getopt rejected */
      bench_opt_common(PROG, usage_text, ch, optarg, &o->out_format);
    }
  }
  if(optind < argc)
    bench_die_usage(PROG, "unexpected argument", argv[optind]);
  if(!o->server)
    bench_die_usage(PROG, "--server is required", NULL);
  if(o->mode == MODE_ENROLL && !o->token)
    bench_die_usage(PROG, "enroll needs --token (an enrollment token)",
                    NULL);
}

/* Run fn on K threads; 0 if every one returned NULL. */
static int run_threads(struct bench *b, void *(*fn)(void *), int k)
{
  pthread_t th[MAX_THREADS];
  int i, n = 0, ret = 0;
  for(i = 0; i < k; i++) {
    if(pthread_create(&th[i], NULL, fn, b))
      break;
    n++;
  }
  for(i = 0; i < n; i++) {
    void *rv = NULL;
    pthread_join(th[i], &rv);
    ret |= rv != NULL;
  }
  return n == k ? ret : -1;
}

int main(int argc, char **argv)
{
  struct bench b;
  struct worker *ws = NULL;
  struct bench_samples lat = {NULL, 0, 0}, hs = {NULL, 0, 0};
  struct figures0 f0;
  uint64_t by_status[N_STATUS], n_ok = 0;
  json_t *r = NULL, *errs;
  double pregen_s = 0, el;
  int64_t t0, t1;
  size_t i, n;
  int k, ret = 1, is_started = 0;

  memset(&b, 0, sizeof(b));
  memset(by_status, 0, sizeof(by_status));
  parse_args(&b.o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  pthread_mutex_init(&b.info_lock, NULL);
  if(target_setup(&b))
    goto out;
  k = b.o.n_threads;
  n = (size_t)b.o.n_items;
  if(b.o.mode == MODE_ENROLL) {
    b.n_devs = n;
    b.devs = calloc(n, sizeof(*b.devs));
    if(!b.devs)
      goto out;
    fprintf(stderr, PROG ": making %zu keys and CSRs (not timed)\n", n);
    t0 = mdm_mono_ns();
    atomic_store(&b.next, 0);
    if(run_threads(&b, maker, (int)sysconf(_SC_NPROCESSORS_ONLN) > 0
                              ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1))
      goto out;
    pregen_s = (mdm_mono_ns() - t0) / 1e9;
  }
  else {
    struct mdm_buf req;
    mdm_buf_init(&req, 4096);
    if(mdm_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                      PROG "\r\nConnection: close\r\n\r\n", b.o.path,
                      b.t.srv.host_hdr)) {
      mdm_buf_release(&req);
      goto out;
    }
    b.connect_req_len = req.len;
    b.connect_req = mdm_buf_steal(&req);
  }

  ws = calloc((size_t)k, sizeof(*ws));
  if(!ws || pthread_barrier_init(&b.start, NULL, (unsigned)k + 1))
    goto out;
  is_started = 1;
  atomic_store(&b.next, 0);
  for(i = 0; i < (size_t)k; i++) {
    ws[i].b = &b;
    ws[i].resp = malloc(RESP_MAX + 1);
    if(!ws[i].resp || pthread_create(&ws[i].th, NULL, worker_run, &ws[i])) {
      fprintf(stderr, PROG ": cannot start thread %zu\n", i);
      exit(1);  /* the others wait at the barrier forever */
    }
  }
  fprintf(stderr, PROG ": %s %zu %s over %s, %d at a time\n",
          b.o.mode == MODE_ENROLL ? "enrolling" : "connecting", n,
          b.o.mode == MODE_ENROLL ? "devices" : "times",
          b.t.is_tls ? "TLS" : "plain HTTP", k);
  figures_start(&b, &f0);
  t0 = mdm_mono_ns();
  pthread_barrier_wait(&b.start);
  for(i = 0; i < (size_t)k; i++)
    pthread_join(ws[i].th, NULL);
  t1 = mdm_mono_ns();
  el = (t1 - t0) / 1e9;
  for(i = 0; i < (size_t)k; i++) {
    int s;
    bench_samples_merge(&lat, &ws[i].lat);
    bench_samples_merge(&hs, &ws[i].hs);
    n_ok += ws[i].n_ok;
    for(s = 0; s < N_STATUS; s++)
      by_status[s] += ws[i].by_status[s];
  }
  errs = json_object();
  for(i = 0; i < N_STATUS; i++)
    if(by_status[i]) {
      char key[16];
      snprintf(key, sizeof(key), "%zu", i);
      json_object_set_new(errs, i ? key : "no_answer",
                          json_integer((json_int_t)by_status[i]));
    }
  r = json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:f, s:f, s:f, s:o, s:o, "
                "s:o}",
                "phase", b.o.mode == MODE_ENROLL ? "enroll" : "connect",
                "transport", b.t.is_tls ? "tls" : "plain",
                "tls", b.tls_info[0] ? b.tls_info : "-",
                b.o.mode == MODE_ENROLL ? "devices" : "requests",
                (json_int_t)n, "ok", (json_int_t)n_ok, "threads", k,
                "seconds", el, "per_s", el > 0 ? (double)n_ok / el : 0,
                "pregen_seconds", pregen_s, "latency",
                bench_latency_json(&lat), "connect", bench_latency_json(&hs),
                "errors", errs);
  figures_add(&b, &f0, r);
  bench_emit(r, b.o.out_format);
  if(b.o.mode == MODE_ENROLL && b.o.devices_file && devices_save(&b))
    goto out;
  if(n_ok != n)
    fprintf(stderr, PROG ": %" PRIu64 " of %zu succeeded\n", n_ok, n);
  ret = n_ok == n ? 0 : 1;
out:
  json_decref(r);
  if(ws)
    for(i = 0; i < (size_t)k; i++) {
      free(ws[i].resp);
      bench_samples_release(&ws[i].lat);
      bench_samples_release(&ws[i].hs);
    }
  free(ws);
  if(is_started)
    pthread_barrier_destroy(&b.start);
  for(i = 0; i < b.n_devs; i++) {
    free(b.devs[i].req);
    free(b.devs[i].token);
    free(b.devs[i].cert_escaped);
  }
  free(b.devs);
  free(b.connect_req);
  bench_samples_release(&lat);
  bench_samples_release(&hs);
  SSL_CTX_free(b.t.ctx);
  pthread_mutex_destroy(&b.info_lock);
  return ret;
}
