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
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
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
  char host[256];
  char host_hdr[300];           /* Host: the URL's authority, as given */
  struct sockaddr_storage addr;
  socklen_t addr_len;
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

/* ---- samples (as in mdm-sim) --------------------------------------------- */

struct samples {
  uint32_t *v;    /* microseconds */
  size_t n, cap;
};

static void samples_add(struct samples *s, int64_t ns)
{
  int64_t us = ns / 1000;
  if(s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    uint32_t *v = realloc(s->v, cap * sizeof(*v));
    if(!v)
      return;  /* out of memory: the sample is lost, the run goes on */
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void samples_merge(struct samples *into, const struct samples *from)
{
  size_t i;
  for(i = 0; i < from->n; i++)
    samples_add(into, (int64_t)from->v[i] * 1000);
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentile p (0..100) in milliseconds of sorted samples; 0 when empty. */
static double samples_pct(const struct samples *s, double p)
{
  double x = p / 100.0 * (double)s->n;
  size_t i = (size_t)x;
  if(!s->n)
    return 0;
  if((double)i < x)
    i++;  /* ceil(), without libm */
  if(i > 0)
    i--;
  if(i >= s->n)
    i = s->n - 1;
  return s->v[i] / 1000.0;
}

static json_t *latency_json(struct samples *l)
{
  if(l->n)
    qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I}", "p50_ms",
                   samples_pct(l, 50), "p90_ms", samples_pct(l, 90), "p99_ms",
                   samples_pct(l, 99), "p999_ms", samples_pct(l, 99.9),
                   "max_ms", samples_pct(l, 100), "n", (json_int_t)l->n);
}

/* ---- the bench ----------------------------------------------------------- */

struct bench;

struct worker {
  struct bench *b;
  pthread_t th;
  struct samples lat;           /* connect to the answer's last byte */
  struct samples hs;            /* connect to the end of the handshake */
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

static int64_t now_ns(void)
{
  return mdm_mono_ns();
}

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

/* ---- facts (the shape mdm-sim sends) ------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static const char *const models[] = {
  "ThinkPad T14 Gen 4", "Latitude 7440", "EliteBook 840 G10", "XPS 13 9340",
  "ThinkPad X1 Carbon Gen 11", "OptiPlex 7010"};
static const char *const makers[] = {"LENOVO", "Dell Inc.", "HP",
                                     "Dell Inc.", "LENOVO", "Dell Inc."};
static const char *const pkgs[][2] = {
  {"openssl", "3.0.15-1~deb12u1"}, {"openssh-server", "1:9.2p1-2+deb12u3"},
  {"linux-image-amd64", "6.1.115-1"}, {"firefox-esr", "128.5.0esr-1~deb12u1"},
  {"libc6", "2.36-9+deb12u9"}, {"sudo", "1.9.13p3-1+deb12u1"},
  {"systemd", "252.31-1~deb12u1"}, {"curl", "7.88.1-10+deb12u8"},
  {"chromium", "131.0.6778.85-1~deb12u1"}, {"nftables", "1.0.6-2+deb12u2"},
  {"cryptsetup", "2:2.6.1-4~deb12u2"}, {"mdm-agent", "0.1.0-1"}};

/*
 * Device idx's facts (~1 KB of JSON) into b: the fields and the mix of
 * platforms of mdm-sim's render_facts() at generation 0 (six in ten Linux,
 * two Windows, two macOS), unique per idx.
 */
static mdm_rc render_facts(struct mdm_buf *b, size_t idx)
{
  uint64_t h = splitmix64(idx * 7919 + 17);
  unsigned kind = (unsigned)(idx % 10), m = (unsigned)(h % 6);
  unsigned first_pkg = (unsigned)((h >> 8) % 12);
  mdm_rc rc;
  int i;

  if(kind < 6)
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"PF%08" PRIX64 "\",\"platform\":\"linux\","
      "\"hostname\":\"lnx-%06zu.corp.example\",\"model\":\"%s\","
      "\"manufacturer\":\"%s\","
      "\"os\":{\"name\":\"Debian GNU/Linux\",\"version\":\"12\","
      "\"build\":\"12 (bookworm)\",\"id\":\"debian\","
      "\"kernel\":\"6.1.0-%u-amd64\"},",
      (uint64_t)(h & 0xffffffffULL), idx, models[m], makers[m],
      (unsigned)(20 + (h >> 16) % 8));
  else if(kind < 8)
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"5CG%07" PRIX64 "\",\"platform\":\"windows\","
      "\"hostname\":\"WIN-%06zu\",\"model\":\"HP EliteBook 840 G%u\","
      "\"manufacturer\":\"HP\","
      "\"os\":{\"name\":\"Windows 11 Enterprise\",\"version\":\"23H2\","
      "\"build\":\"22631.%u\",\"id\":\"windows\",\"kernel\":\"10.0.22631\"},",
      (uint64_t)(h & 0xfffffffULL), idx, (unsigned)(8 + m % 3),
      (unsigned)(4000 + (h >> 16) % 600));
  else
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"C02%07" PRIX64 "\",\"platform\":\"macos\","
      "\"hostname\":\"mac-%06zu.corp.example\",\"model\":\"MacBookPro18,%u\","
      "\"manufacturer\":\"Apple Inc.\","
      "\"os\":{\"name\":\"macOS\",\"version\":\"14.%u\",\"build\":\"23G%u\","
      "\"id\":\"macos\",\"kernel\":\"Darwin 23.6.0\"},",
      (uint64_t)(h & 0xfffffffULL), idx, (unsigned)(1 + m % 4),
      (unsigned)(1 + (h >> 12) % 6), (unsigned)(80 + (h >> 16) % 20));
  if(!rc)
    rc = mdm_buf_printf(
      b,
      "\"encryption\":{\"root_encrypted\":%s,\"method\":%s},"
      "\"integrity\":{\"rooted\":false,\"secure_boot\":%s,"
      "\"kernel_tainted\":false,\"lockdown\":%s},"
      "\"security\":{\"firewall_enabled\":%s,\"screen_lock_enabled\":true,"
      "\"password_age_days\":%u},"
      "\"network\":{\"ssid\":%s,\"vpn_connected\":%s,"
      "\"ipv4\":\"10.%u.%u.%u\",\"mac\":\"52:54:00:%02x:%02x:%02x\"},"
      "\"agent\":{\"version\":\"0.1.0\"},"
      "\"hardware\":{\"cpu\":\"%s\",\"cores\":%u,\"memory_mb\":%u,"
      "\"disk_gb\":%u},",
      (h >> 20) % 50 ? "true" : "false",
      kind < 6 ? "\"luks2\"" : kind < 8 ? "\"bitlocker\"" : "\"filevault\"",
      (h >> 26) % 20 ? "true" : "false",
      kind < 6 ? "\"integrity\"" : "null",
      (h >> 30) % 30 ? "true" : "false", (unsigned)(idx % 90),
      (h >> 34) % 3 ? "\"CORP-WIFI\"" : "null",
      (h >> 36) % 4 ? "false" : "true", (unsigned)(idx >> 16) & 255,
      (unsigned)(idx >> 8) & 255, (unsigned)idx & 255,
      (unsigned)(idx >> 16) & 255, (unsigned)(idx >> 8) & 255,
      (unsigned)idx & 255,
      kind < 8 ? "13th Gen Intel(R) Core(TM) i7-1365U" : "Apple M1 Pro",
      (unsigned)(8 << (h >> 40) % 2), (unsigned)(16384 << (h >> 42) % 2),
      (unsigned)(256 << (h >> 44) % 3));
  if(!rc)
    rc = mdm_buf_printf(b,
                        "\"packages\":{\"count\":%u,\"updates_available\":%u,"
                        "\"recent\":[",
                        (unsigned)(1200 + (h >> 48) % 900),
                        (unsigned)(idx % 40));
  for(i = 0; !rc && i < 6; i++) {
    unsigned p = (first_pkg + (unsigned)i) % 12;
    rc = mdm_buf_printf(b, "%s{\"name\":\"%s\",\"version\":\"%s\"}",
                        i ? "," : "", pkgs[p][0], pkgs[p][1]);
  }
  if(!rc)
    rc = mdm_buf_puts(b, "]}}");
  return rc;
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
     render_facts(&facts, (size_t)b->o.first + i))
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
                    b->t.host_hdr, strlen(body), body))
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
  const char *p = b->o.server, *hs, *he, *port;
  char portbuf[16];
  struct addrinfo hints, *res = NULL;
  size_t hl;

  if(!strncmp(p, "https://", 8)) {
    t->is_tls = 1;
    hs = p + 8;
  }
  else if(!strncmp(p, "http://", 7))
    hs = p + 7;
  else {
    fprintf(stderr, PROG ": --server must be an https:// or http:// URL\n");
    return -1;
  }
  snprintf(t->host_hdr, sizeof(t->host_hdr), "%.*s", (int)strcspn(hs, "/"),
           hs);
  if(*hs == '[') {
    hs++;
    he = strchr(hs, ']');
    if(!he)
      return -1;
    port = he[1] == ':' ? he + 2 : NULL;
  }
  else {
    he = hs + strcspn(hs, ":/");
    port = *he == ':' ? he + 1 : NULL;
  }
  hl = (size_t)(he - hs);
  if(!hl || hl >= sizeof(t->host)) {
    fprintf(stderr, PROG ": --server: no host in '%s'\n", p);
    return -1;
  }
  memcpy(t->host, hs, hl);
  t->host[hl] = '\0';
  if(port) {
    size_t pl = strcspn(port, "/");
    if(!pl || pl >= sizeof(portbuf))
      return -1;
    memcpy(portbuf, port, pl);
    portbuf[pl] = '\0';
  }
  else
    mdm_strlcpy(portbuf, t->is_tls ? "443" : "80", sizeof(portbuf));
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if(getaddrinfo(t->host, portbuf, &hints, &res) || !res) {
    fprintf(stderr, PROG ": cannot resolve '%s'\n", t->host);
    return -1;
  }
  memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
  t->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
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
    int is_ip = inet_pton(AF_INET, t->host, &a6) == 1 ||
                inet_pton(AF_INET6, t->host, &a6) == 1;
    if(is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->host) != 1
             : X509_VERIFY_PARAM_set1_host(vp, t->host, 0) != 1)
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
  int64_t t0 = now_ns();
  char what[128];
  struct in6_addr ip;

  *body = NULL;
  *body_len = 0;
  c.fd = socket(b->t.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if(c.fd < 0)
    goto out;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if(connect(c.fd, (struct sockaddr *)&b->t.addr, b->t.addr_len)) {
    snprintf(what, sizeof(what), "connect: %s", strerror(errno));
    show_error(b, "%s", what);
    goto out;
  }
  if(b->t.is_tls) {
    c.ssl = SSL_new(b->t.ctx);
    if(!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1)
      goto out;
    if(inet_pton(AF_INET, b->t.host, &ip) != 1 &&
       inet_pton(AF_INET6, b->t.host, &ip) != 1)
      SSL_set_tlsext_host_name(c.ssl, b->t.host);
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
  samples_add(&w->hs, now_ns() - t0);
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
    samples_add(&w->lat, now_ns() - t0);
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

/* ---- server process figures (as in mdm-sim) ------------------------------ */

/* Fields 14..17 of /proc/PID/stat (utime, stime, cutime, cstime) in
 * seconds: own (first two) and all; -1 when unknown. */
static int proc_times(long long pid, double *own, double *all,
                      long long *ppid)
{
  char path[64], buf[1024], *p;
  unsigned long long f[4];
  FILE *fp;
  size_t n;
  int field;
  double tck = (double)sysconf(_SC_CLK_TCK);

  snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
  fp = fopen(path, "r");
  if(!fp)
    return -1;
  n = fread(buf, 1, sizeof(buf) - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  p = strrchr(buf, ')');  /* the command name may hold spaces */
  if(!p || sscanf(p + 2, "%*c %lld", ppid) != 1)
    return -1;
  p += 2;
  for(field = 3; field < 14 && p; field++) {
    p = strchr(p, ' ');
    if(p)
      p++;
  }
  if(!p || sscanf(p, "%llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3]) != 4)
    return -1;
  *own = (double)(f[0] + f[1]) / tck;
  *all = (double)(f[0] + f[1] + f[2] + f[3]) / tck;
  return 0;
}

static long proc_rss_kb(long long pid, const char *field)
{
  char path[64], line[256];
  size_t fl = strlen(field);
  long v = 0;
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%lld/status", pid);
  f = fopen(path, "r");
  if(!f)
    return 0;
  while(fgets(line, sizeof(line), f))
    if(!strncmp(line, field, fl))
      v = strtol(line + fl, NULL, 10);
  fclose(f);
  return v;
}

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

static double self_cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

struct figures0 {
  double server_cpu, self_cpu, busy;
  int64_t t;
};

static void figures_start(struct bench *b, struct figures0 *f)
{
  double all;
  long long ppid;
  memset(f, 0, sizeof(*f));
  f->server_cpu = -1;
  if(b->o.server_pid > 0 &&
     proc_times(b->o.server_pid, &f->server_cpu, &all, &ppid))
    f->server_cpu = -1;
  f->busy = machine_busy_s();
  f->self_cpu = self_cpu_s();
  f->t = now_ns();
}

/* The server's CPU and RSS, this client's CPU, and the CPU the rest of
 * the machine used since figures_start(). */
static void figures_add(struct bench *b, struct figures0 *f, json_t *r)
{
  double wall = (now_ns() - f->t) / 1e9, scpu = -1, all, other = -1;
  double self = self_cpu_s() - f->self_cpu, busy = machine_busy_s();
  long long ppid;

  if(b->o.server_pid > 0) {
    if(f->server_cpu < 0 ||
       proc_times(b->o.server_pid, &scpu, &all, &ppid))
      scpu = -1;
    else
      scpu -= f->server_cpu;
    json_object_set_new(
      r, "server",
      json_pack("{s:I, s:f, s:f, s:f}", "pid", (json_int_t)b->o.server_pid,
                "cpu_cores", scpu >= 0 ? scpu / wall : -1.0,
                "rss_mib", proc_rss_kb(b->o.server_pid, "VmRSS:") / 1024.0,
                "hwm_mib", proc_rss_kb(b->o.server_pid, "VmHWM:") / 1024.0));
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

static void die_usage(const char *msg, const char *arg)
{
  fprintf(stderr, PROG ": %s", msg);
  if(arg)
    fprintf(stderr, " '%s'", arg);
  fprintf(stderr, "\n(see '" PROG " --help')\n");
  exit(2);
}

static long long parse_ll(const char *s, long long min, long long max,
                          const char *flag)
{
  long long v;
  if(mdm_parse_int(s, min, max, &v))
    die_usage("invalid value for", flag);
  return v;
}

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
    die_usage("expected a command, enroll or connect", NULL);
  if(!strcmp(argv[1], "enroll"))
    o->mode = MODE_ENROLL;
  else if(!strcmp(argv[1], "connect"))
    o->mode = MODE_CONNECT;
  else
    die_usage("unknown command", argv[1]);
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
        die_usage("invalid value for", "--token");
      o->token = optarg;
      break;
    case OPT_DEVICES:
    case OPT_REQUESTS:
      o->n_items = parse_ll(optarg, 1, 10000000,
                            ch == OPT_DEVICES ? "--devices" : "--requests");
      break;
    case OPT_THREADS:
      o->n_threads = (int)parse_ll(optarg, 1, MAX_THREADS, "--threads");
      break;
    case OPT_DEVICES_FILE:
      o->devices_file = optarg;
      break;
    case OPT_FIRST:
      o->first = parse_ll(optarg, 0, 1LL << 40, "--first");
      break;
    case OPT_PATH:
      if(optarg[0] != '/' || strlen(optarg) > 1024 ||
         strpbrk(optarg, " \r\n"))
        die_usage("invalid value for", "--path");
      o->path = optarg;
      break;
    case OPT_SERVER_PID:
      o->server_pid = parse_ll(optarg, 1, 1LL << 40, "--server-pid");
      break;
    case 'o':
      if(strcmp(optarg, "text") && strcmp(optarg, "json"))
        die_usage("-o takes text or json, not", optarg);
      o->out_format = optarg;
      break;
    case 'h':
      fputs(usage_text, stdout);
      exit(0);
    default:
      die_usage("bad usage", NULL);
    }
  }
  if(optind < argc)
    die_usage("unexpected argument", argv[optind]);
  if(!o->server)
    die_usage("--server is required", NULL);
  if(o->mode == MODE_ENROLL && !o->token)
    die_usage("enroll needs --token (an enrollment token)", NULL);
}

static void emit(struct bench *b, json_t *r)
{
  char *t = json_dumps(r, !strcmp(b->o.out_format, "json")
                          ? JSON_COMPACT | JSON_PRESERVE_ORDER
                          : JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if(t)
    puts(t);
  free(t);
  fflush(stdout);
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
  struct samples lat = {NULL, 0, 0}, hs = {NULL, 0, 0};
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
    t0 = now_ns();
    atomic_store(&b.next, 0);
    if(run_threads(&b, maker, (int)sysconf(_SC_NPROCESSORS_ONLN) > 0
                              ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1))
      goto out;
    pregen_s = (now_ns() - t0) / 1e9;
  }
  else {
    struct mdm_buf req;
    mdm_buf_init(&req, 4096);
    if(mdm_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                      PROG "\r\nConnection: close\r\n\r\n", b.o.path,
                      b.t.host_hdr)) {
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
  t0 = now_ns();
  pthread_barrier_wait(&b.start);
  for(i = 0; i < (size_t)k; i++)
    pthread_join(ws[i].th, NULL);
  t1 = now_ns();
  el = (t1 - t0) / 1e9;
  for(i = 0; i < (size_t)k; i++) {
    int s;
    samples_merge(&lat, &ws[i].lat);
    samples_merge(&hs, &ws[i].hs);
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
                "pregen_seconds", pregen_s, "latency", latency_json(&lat),
                "connect", latency_json(&hs), "errors", errs);
  figures_add(&b, &f0, r);
  emit(&b, r);
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
      free(ws[i].lat.v);
      free(ws[i].hs.v);
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
  free(lat.v);
  free(hs.v);
  SSL_CTX_free(b.t.ctx);
  pthread_mutex_destroy(&b.info_lock);
  return ret;
}
