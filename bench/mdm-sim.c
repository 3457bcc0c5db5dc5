/*
 * mdm-sim.c: the device simulator of the benchmark (bench/run, issue 2).
 * One process plays many devices against one mdmd over keep-alive HTTP/1.1:
 * it enrolls N devices with realistic, unique ~1 KB facts, checks them in
 * round-robin at a target rate, and afterwards checks that every check-in
 * the server acknowledged is stored (after the server was killed with -9
 * and restarted).  The simulator shares two cores with the server, so the
 * HTTP client is a minimal epoll loop over plain sockets rather than
 * libcurl: each request is rendered into the connection's buffer and goes
 * out in one send(); a response is complete when its Content-Length is in.
 *
 * The check-in phase is open-loop: request k is due at t0 + k/R whatever
 * the server does, and its latency counts from that due time, so a slow
 * server cannot hide its queueing by slowing the client down (coordinated
 * omission).  Per device the simulator keeps the generation of facts it
 * last sent and the last one the server acknowledged; --verify reads every
 * device back and requires facts of a generation in [acked, sent] and a
 * last_seen no older than the last acknowledged check-in.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include "core/buf.h"
#include "core/util.h"
#include "benchutil.h"
#include "sim_mqtt.h"

#define PROG "mdm-sim"
#define REQ_MAX (16 * 1024)      /* one rendered request */
#define RESP_MAX (256 * 1024)    /* one response, headers and body */
#define FACTS_MAX 4096
#define TOKEN_MAX 4096
#define TOKEN_USES_MAX 100000    /* max_uses bound of one enrollment token */
#define TIMELINE_MAX 3600
#define SLOW_MS 50

/* ---- options ------------------------------------------------------------ */

struct opts {
  const char *server;
  char *admin_token;
  const char *devices_file;
  const char *out_format;      /* "text" or "json" */
  long long n_devices;
  double rate;
  double duration_s;
  int n_conns;
  int is_enroll_only, is_checkin_only, is_verify, is_commands_poll;
  double interval_s;           /* --commands-poll: each device's check-in period */
  const char *bulk_type;       /* --commands-poll: the bulk command's type */
  int is_complete;             /* --commands-poll: also report "completed" */
  int is_commands_push;
  const char *mqtt_url;        /* --commands-push: mqtt://HOST:PORT */
  int mqtt_batch;              /* --commands-push: connections at a time */
  int is_stop_on_disconnect;
  long long wrk_lua_idx;       /* -1: not asked */
  double changed_ratio;
  long long tick_us;           /* 0: wake for each due request */
  long long server_pid;
  unsigned long long seed;
};

/* ---- devices -------------------------------------------------------------- */

struct device {
  char id[MDM_UUID_LEN + 1];
  char *token;
  uint32_t acked_gen;   /* newest facts generation the server acknowledged */
  uint32_t sent_gen;    /* newest facts generation sent */
  int64_t last_ack_s;   /* wall-clock second of the newest acknowledged send */
  char *req;            /* the rendered check-in request for req_gen */
  uint32_t req_len;
  uint32_t req_gen;
  uint16_t n_followups; /* --commands-poll: command requests queued or out */
  char *mqtt_password;  /* from the enroll answer's "mqtt", or NULL */
  char *mqtt_topic;
};

/* ---- one connection ---------------------------------------------------- */

struct conn {
  int fd;
  int is_busy;            /* a request is out, its response not yet in */
  int is_wanting_out;     /* EPOLLOUT is armed */
  char *out;              /* REQ_MAX bytes of our own */
  const char *wbuf;       /* what goes out: out, or a device's cached request */
  size_t out_len, out_off;
  char *in;
  size_t in_len;
  size_t hdr_len;         /* 0 until the header block is complete */
  size_t body_len;
  int status;
  int is_close;           /* the server said Connection: close */
  /* the request in flight */
  size_t dev;
  uint32_t gen;
  int is_changed;
  int64_t sched_ns, sent_ns, sent_wall_s;
  int kind;               /* PHASE_POLL: enum req_kind */
  char cmd_id[MDM_UUID_LEN + 1];
};

/* ---- the simulator ------------------------------------------------------ */

enum phase { PHASE_ENROLL, PHASE_CHECKIN, PHASE_VERIFY, PHASE_POLL };

/* --commands-poll: what a request of the phase is. */
enum req_kind { REQ_CHECKIN, REQ_FETCH, REQ_ACK, REQ_COMPLETE };

/* A command request a device still has to make (after a check-in answered
 * pending_commands > 0, or after an acknowledgement). */
struct followup {
  uint32_t dev;
  uint8_t kind;
  char cmd_id[MDM_UUID_LEN + 1];
};

struct timeline_sec {
  uint32_t ok, err, slow;
  uint32_t max_us;
  uint32_t rss_kb;
};

struct sim {
  struct opts o;
  struct bench_server srv;

  struct device *devs;
  size_t n_devs;
  char **etokens;          /* one enrollment token per TOKEN_USES_MAX devices */
  size_t n_etokens;

  int ep;
  struct conn *conns;
  int n_conns;
  int *idle;               /* stack of idle connection indices */
  int n_idle;
  int n_busy;
  int n_dead;              /* connections that could not reconnect */

  enum phase phase;
  size_t next_item;        /* closed loop: next device to enroll or verify */
  uint64_t k_next, k_total;/* open loop: next request number, total */
  int64_t t0_ns, t_end_ns;
  int is_stopping;
  int is_server_gone;
  uint64_t rng;

  /* results */
  uint64_t n_sent, n_ok, n_changed_sent, n_changed_ok;
  uint64_t by_status[600]; /* [0]: connection failed before an answer */
  struct bench_samples lat; /* from the due time (open loop) or the send */
  struct bench_samples svc; /* from the send */
  struct timeline_sec *tl;
  size_t n_tl;
  uint64_t n_unsent;       /* due but never sent (the server fell behind) */
  uint64_t n_abandoned;    /* in flight when the drain timed out */
  int64_t elapsed_ns;
  long server_rss_max_kb;
  uint64_t verify_ok, verify_bad, verify_facts_checked;
  int n_bad_printed;

  /* --commands-poll */
  struct followup *fq;     /* FIFO ring of command requests to make */
  size_t fq_head, fq_n, fq_cap;
  char (*bulk_ids)[MDM_UUID_LEN + 1];  /* the bulk command's ids, sorted */
  uint8_t *bulk_acked;
  size_t n_bulk;
  uint64_t n_acked, n_completed, n_fetches, n_checkins_ok, n_other_cmds;
  int n_fu_out;            /* command requests in flight */
  int64_t t_bulk_ns;       /* the bulk POST's answer (monotonic) */
  struct bench_samples ack_lat; /* bulk call -> acknowledgement's 2xx */

  /* --commands-push */
  struct sim_mqtt *mqtt;
  int wake_fd;
  int wake_marker;         /* its epoll data.ptr is &wake_marker */
  struct sim_mqtt_dev *push_devs;
  uint64_t n_wakeups;      /* wake-ups taken from the MQTT thread */
  /* bulk call -> wake-up taken by the HTTP loop */
  struct bench_samples wake_lat;
};

static int64_t wall_s(void)
{
  return mdm_now_ms() / 1000;
}

static double rng_unit(struct sim *s)
{
  s->rng = bench_splitmix64(s->rng);
  return (double)(s->rng >> 11) / 9007199254740992.0;
}

/* ---- facts ---------------------------------------------------------------- */

/*
 * Render device idx's facts at generation gen (bench_facts_render()) into
 * out (NUL-terminated); returns the length, or 0 if they do not fit.
 */
static size_t render_facts(char *out, size_t cap, size_t idx, uint32_t gen)
{
  struct mdm_buf b;
  size_t len = 0;

  mdm_buf_init(&b, cap - 1);
  if(!bench_facts_render(&b, idx, gen) && b.len < cap) {
    memcpy(out, b.data, b.len + 1);
    len = b.len;
  }
  mdm_buf_release(&b);
  return len;
}

/* ---- the devices file ----------------------------------------------------- */

static int devices_save(struct sim *s, const char *path)
{
  char tmp[4096];
  FILE *f;
  size_t i;
  int ret = -1;

  if(snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
    return -1;
  f = fopen(tmp, "w");
  if(!f) {
    fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp, strerror(errno));
    return -1;
  }
  fprintf(f, "# mdm-sim devices v2: index id acked_gen sent_gen last_ack_s "
             "token [mqtt_password mqtt_topic]\n");
  for(i = 0; i < s->n_devs; i++) {
    struct device *d = &s->devs[i];
    if(!d->token)
      continue;
    fprintf(f, "%zu %s %" PRIu32 " %" PRIu32 " %" PRId64 " %s", i, d->id,
            d->acked_gen, d->sent_gen, d->last_ack_s, d->token);
    if(d->mqtt_password && d->mqtt_topic)
      fprintf(f, " %s %s", d->mqtt_password, d->mqtt_topic);
    fputc('\n', f);
  }
  if(fflush(f) == 0 && fsync(fileno(f)) == 0 && !ferror(f))
    ret = 0;
  if(fclose(f))
    ret = -1;
  if(!ret && rename(tmp, path))
    ret = -1;
  if(ret)
    fprintf(stderr, PROG ": cannot write '%s': %s\n", path, strerror(errno));
  return ret;
}

static int devices_load(struct sim *s, const char *path)
{
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t line_cap = 0, n = 0, cap = 0;
  ssize_t len;
  int ret = 0;

  if(!f) {
    fprintf(stderr, PROG ": cannot read '%s': %s\n", path, strerror(errno));
    return -1;
  }
  while((len = getline(&line, &line_cap, f)) > 0) {
    struct device d;
    size_t idx;
    int pos = 0;
    long long last = 0;
    if(line[0] == '#')
      continue;
    while(len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    memset(&d, 0, sizeof(d));
    if(sscanf(line, "%zu %36s %" SCNu32 " %" SCNu32 " %lld %n", &idx, d.id,
              &d.acked_gen, &d.sent_gen, &last, &pos) != 5 || !pos ||
       !line[pos] || idx != n || strlen(line + pos) >= TOKEN_MAX) {
      fprintf(stderr, PROG ": '%s': malformed line %zu\n", path, n + 1);
      ret = -1;
      break;
    }
    d.last_ack_s = last;
    {
      /* token [mqtt_password mqtt_topic], separated by single spaces */
      char *tok = line + pos, *pw = strchr(tok, ' '), *topic = NULL;
      if(pw) {
        *pw++ = '\0';
        topic = strchr(pw, ' ');
        if(topic)
          *topic++ = '\0';
        if(!topic || !*pw || !*topic || strchr(topic, ' ')) {
          fprintf(stderr, PROG ": '%s': malformed line %zu\n", path, n + 1);
          ret = -1;
          break;
        }
      }
      d.token = strdup(tok);
      d.mqtt_password = pw ? strdup(pw) : NULL;
      d.mqtt_topic = topic ? strdup(topic) : NULL;
      if(!d.token || (pw && (!d.mqtt_password || !d.mqtt_topic))) {
        free(d.token);
        free(d.mqtt_password);
        free(d.mqtt_topic);
        ret = -1;
        break;
      }
    }
    if(n == cap) {
      size_t ncap = cap ? cap * 2 : 1024;
      struct device *nd = realloc(s->devs, ncap * sizeof(*nd));
      if(!nd) {
        free(d.token);
        free(d.mqtt_password);
        free(d.mqtt_topic);
        ret = -1;
        break;
      }
      s->devs = nd;
      cap = ncap;
    }
    s->devs[n++] = d;
  }
  free(line);
  fclose(f);
  s->n_devs = n;
  if(!ret && !n) {
    fprintf(stderr, PROG ": '%s': no devices\n", path);
    ret = -1;
  }
  return ret;
}

/* ---- admin calls (few; libcurl is simplest here) ---------------------- */

static size_t curl_sink(char *p, size_t size, size_t n, void *ud)
{
  if(mdm_buf_append(ud, p, size * n))
    return 0;
  return size * n;
}

/* POST body to server+path with the admin token; *out is the parsed JSON
 * answer (caller owns it).  Returns the HTTP status, or -1. */
static long admin_post(struct sim *s, const char *path, const char *body,
                       json_t **out)
{
  CURL *h = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  struct mdm_buf resp, url, auth;
  long status = -1;

  *out = NULL;
  mdm_buf_init(&resp, 64 << 20);  /* a bulk command's ids: ~40 B a device */
  mdm_buf_init(&url, 4096);
  mdm_buf_init(&auth, TOKEN_MAX);
  if(!h || mdm_buf_printf(&url, "%s%s", s->o.server, path) ||
     mdm_buf_printf(&auth, "Authorization: Bearer %s", s->o.admin_token))
    goto out;
  hdrs = curl_slist_append(hdrs, auth.data);
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
  if(curl_easy_perform(h) != CURLE_OK)
    goto out;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if(resp.len)
    *out = json_loadb(resp.data, resp.len, 0, NULL);
out:
  curl_slist_free_all(hdrs);
  if(h)
    curl_easy_cleanup(h);
  mdm_buf_release(&resp);
  mdm_buf_release(&url);
  mdm_buf_release(&auth);
  return status;
}

static int create_enrollment_tokens(struct sim *s)
{
  size_t i, left = s->n_devs;
  s->n_etokens = (s->n_devs + TOKEN_USES_MAX - 1) / TOKEN_USES_MAX;
  s->etokens = calloc(s->n_etokens, sizeof(*s->etokens));
  if(!s->etokens)
    return -1;
  for(i = 0; i < s->n_etokens; i++) {
    size_t uses = left > TOKEN_USES_MAX ? TOKEN_USES_MAX : left;
    char body[128];
    json_t *ans = NULL;
    const char *tok;
    long st;
    left -= uses;
    snprintf(body, sizeof(body),
             "{\"ttl_seconds\":86400,\"max_uses\":%zu,"
             "\"labels\":{\"source\":\"mdm-sim\"}}", uses);
    st = admin_post(s, "/v1/enrollment-tokens", body, &ans);
    tok = json_string_value(json_object_get(ans, "token"));
    if(st != 201 || !tok) {
      fprintf(stderr, PROG ": cannot create an enrollment token: HTTP %ld\n",
              st);
      json_decref(ans);
      return -1;
    }
    s->etokens[i] = strdup(tok);
    json_decref(ans);
    if(!s->etokens[i])
      return -1;
  }
  return 0;
}

/* ---- the epoll HTTP/1.1 client ----------------------------------------- */

static int server_addr(struct sim *s)
{
  if(strncmp(s->o.server, "http://", 7)) {
    fprintf(stderr, PROG ": --server must be an http:// URL (plain HTTP on "
                    "loopback)\n");
    return -1;
  }
  return bench_server_resolve(PROG, s->o.server, "80", &s->srv);
}

static int conn_open(struct sim *s, struct conn *c)
{
  int fd, one = 1;
  struct epoll_event ev;

  fd = socket(s->srv.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if(fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if(connect(fd, (struct sockaddr *)&s->srv.addr, s->srv.addr_len)) {
    close(fd);
    return -1;
  }
  if(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
    close(fd);
    return -1;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  if(epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev)) {
    close(fd);
    return -1;
  }
  c->fd = fd;
  c->is_wanting_out = 0;
  c->in_len = c->hdr_len = c->body_len = 0;
  c->is_close = 0;
  return 0;
}

static void conn_close(struct conn *c)
{
  if(c->fd >= 0)
    close(c->fd);  /* also leaves the epoll set */
  c->fd = -1;
}

static void idle_push(struct sim *s, struct conn *c)
{
  s->idle[s->n_idle++] = (int)(c - s->conns);
}

static void on_answer(struct sim *s, struct conn *c, const char *body,
                      size_t body_len);

/* The request on c failed without an answer: count it, then reconnect (or
 * give the connection up). */
static void conn_fail(struct sim *s, struct conn *c)
{
  if(c->is_busy) {
    c->is_busy = 0;
    s->n_busy--;
    c->status = 0;
    on_answer(s, c, NULL, 0);
  }
  conn_close(c);
  if(s->o.is_stop_on_disconnect) {
    s->is_server_gone = 1;
    s->n_dead++;
    return;
  }
  if(conn_open(s, c)) {
    s->n_dead++;
    return;
  }
  idle_push(s, c);
}

static void conn_want_out(struct sim *s, struct conn *c, int want)
{
  struct epoll_event ev;
  if(c->is_wanting_out == want)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
  ev.data.ptr = c;
  epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->is_wanting_out = want;
}

static void conn_flush(struct sim *s, struct conn *c)
{
  while(c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->wbuf + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL);
    if(n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      conn_want_out(s, c, 1);
      return;
    }
    if(n < 0 && errno == EINTR)
      continue;
    conn_fail(s, c);
    return;
  }
  conn_want_out(s, c, 0);
}

/* Parse the header block once it is complete; -1 on a malformed answer. */
static int parse_head(struct conn *c)
{
  char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4), *p, *eol;
  int have_len = 0;

  if(!end)
    return c->in_len >= RESP_MAX ? -1 : 0;
  *end = '\0';
  if(strncmp(c->in, "HTTP/1.", 7) || c->in_len < 12)
    return -1;
  c->status = (c->in[9] - '0') * 100 + (c->in[10] - '0') * 10 +
              (c->in[11] - '0');
  if(c->status < 100 || c->status > 599)
    return -1;
  c->is_close = !strncmp(c->in, "HTTP/1.0", 8);
  for(p = strstr(c->in, "\r\n"); p; p = eol) {
    p += 2;
    eol = strstr(p, "\r\n");
    if(!strncasecmp(p, "content-length:", 15)) {
      char *e;
      unsigned long long v = strtoull(p + 15, &e, 10);
      if(v > RESP_MAX)
        return -1;
      c->body_len = (size_t)v;
      have_len = 1;
    }
    else if(!strncasecmp(p, "connection:", 11)) {
      const char *v = p + 11;
      while(*v == ' ')
        v++;
      if(!strncasecmp(v, "close", 5))
        c->is_close = 1;
    }
    else if(!strncasecmp(p, "transfer-encoding:", 18))
      return -1;  /* not used by mdmd for these answers */
  }
  if(!have_len)
    c->body_len = 0;
  c->hdr_len = (size_t)(end - c->in) + 4;
  return 0;
}

static void conn_read(struct sim *s, struct conn *c)
{
  for(;;) {
    ssize_t n = recv(c->fd, c->in + c->in_len, RESP_MAX - c->in_len, 0);
    if(n > 0) {
      c->in_len += (size_t)n;
      if(c->in_len < RESP_MAX)
        continue;
    }
    else if(n < 0 && errno == EINTR)
      continue;
    else if(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    else {           /* closed or reset */
      conn_fail(s, c);
      return;
    }
    if(c->in_len >= RESP_MAX)
      break;
  }
  if(!c->is_busy) {   /* bytes nobody asked for */
    conn_fail(s, c);
    return;
  }
  if(!c->hdr_len && parse_head(c)) {
    conn_fail(s, c);
    return;
  }
  if(!c->hdr_len || c->in_len < c->hdr_len + c->body_len)
    return;
  if(c->in_len > c->hdr_len + c->body_len) {  /* no pipelining here */
    conn_fail(s, c);
    return;
  }
  c->is_busy = 0;
  s->n_busy--;
  c->in[c->hdr_len + c->body_len] = '\0';
  on_answer(s, c, c->in + c->hdr_len, c->body_len);
  c->in_len = c->hdr_len = c->body_len = 0;
  if(c->is_close) {
    conn_close(c);
    if(conn_open(s, c)) {
      s->n_dead++;
      return;
    }
  }
  idle_push(s, c);
}

/* ---- requests ------------------------------------------------------------ */

/* Render one request into c->out.  body may be NULL (GET). */
static int render_request(struct sim *s, struct conn *c, const char *method,
                          const char *path, const char *token,
                          const char *body, size_t body_len)
{
  int n;
  if(body)
    n = snprintf(c->out, REQ_MAX,
                 "%s %s HTTP/1.1\r\nHost: %s\r\n"
                 "%s%s%s"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 method, path, s->srv.host_hdr,
                 token ? "Authorization: Bearer " : "", token ? token : "",
                 token ? "\r\n" : "", body_len);
  else
    n = snprintf(c->out, REQ_MAX, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n",
                 method, path, s->srv.host_hdr,
                 token ? "Authorization: Bearer " : "", token ? token : "",
                 token ? "\r\n" : "");
  if(n < 0 || (size_t)n + body_len >= REQ_MAX)
    return -1;
  if(body)
    memcpy(c->out + n, body, body_len);
  c->wbuf = c->out;
  c->out_len = (size_t)n + body_len;
  c->out_off = 0;
  return 0;
}

/* Render device i's check-in into c (facts changed or not). */
static int checkin_render(struct sim *s, struct conn *c, size_t i,
                          int is_changed)
{
  char body[FACTS_MAX + 64];
  char facts[FACTS_MAX];
  size_t fl, bl;
  struct device *d = &s->devs[i];
  uint32_t gen = is_changed ? d->sent_gen + 1 : d->sent_gen;
  /* Most check-ins repeat the device's last request: it is kept rendered
   * (about 1.8 KB a device) so that the simulator's CPU goes to I/O. */
  if(!d->req || d->req_gen != gen) {
    fl = render_facts(facts, sizeof(facts), i, gen);
    if(!fl)
      return -1;
    bl = (size_t)snprintf(body, sizeof(body), "{\"facts\":%s}", facts);
    if(bl >= sizeof(body))
      return -1;
    if(render_request(s, c, "POST", "/v1/agent/checkin", d->token, body, bl))
      return -1;
    free(d->req);
    d->req = malloc(c->out_len);
    if(d->req) {
      memcpy(d->req, c->out, c->out_len);
      d->req_len = (uint32_t)c->out_len;
      d->req_gen = gen;
    }
  }
  else {
    c->wbuf = d->req;
    c->out_len = d->req_len;
    c->out_off = 0;
  }
  d->sent_gen = gen;
  c->dev = i;
  c->gen = gen;
  c->is_changed = is_changed;
  c->kind = REQ_CHECKIN;
  s->n_changed_sent += (uint64_t)is_changed;
  return 0;
}

/* ---- --commands-poll: command requests after a check-in ---------------- */

static void fq_push(struct sim *s, size_t dev, int kind, const char *cmd_id)
{
  struct followup *f;
  if(s->fq_n == s->fq_cap) {
    size_t cap = s->fq_cap ? s->fq_cap * 2 : 4096, k;
    struct followup *q = malloc(cap * sizeof(*q));
    if(!q)
      return;  /* lost: the device asks again at its next check-in */
    for(k = 0; k < s->fq_n; k++)
      q[k] = s->fq[(s->fq_head + k) % s->fq_cap];
    free(s->fq);
    s->fq = q;
    s->fq_cap = cap;
    s->fq_head = 0;
  }
  f = &s->fq[(s->fq_head + s->fq_n) % s->fq_cap];
  f->dev = (uint32_t)dev;
  f->kind = (uint8_t)kind;
  mdm_strlcpy(f->cmd_id, cmd_id ? cmd_id : "", sizeof(f->cmd_id));
  s->fq_n++;
  s->devs[dev].n_followups++;
}

static int followup_render(struct sim *s, struct conn *c,
                           const struct followup *f)
{
  static const char ack[] = "{\"status\":\"acknowledged\",\"detail\":null}";
  static const char done[] = "{\"status\":\"completed\",\"detail\":"
                             "\"mdm-sim: done\"}";
  struct device *d = &s->devs[f->dev];
  char path[128];
  c->dev = f->dev;
  c->kind = f->kind;
  mdm_strlcpy(c->cmd_id, f->cmd_id, sizeof(c->cmd_id));
  if(f->kind == REQ_FETCH)
    return render_request(s, c, "GET", "/v1/agent/commands", d->token, NULL,
                          0);
  snprintf(path, sizeof(path), "/v1/agent/commands/%s/result", f->cmd_id);
  if(f->kind == REQ_ACK)
    return render_request(s, c, "POST", path, d->token, ack, sizeof(ack) - 1);
  return render_request(s, c, "POST", path, d->token, done, sizeof(done) - 1);
}

static int cmp_id(const void *a, const void *b)
{
  return strcmp(a, b);
}

/* Index of id among the bulk command's ids, or -1. */
static long bulk_find(struct sim *s, const char *id)
{
  const char (*p)[MDM_UUID_LEN + 1] =
    bsearch(id, s->bulk_ids, s->n_bulk, sizeof(*s->bulk_ids), cmp_id);
  return p ? (long)(p - s->bulk_ids) : -1;
}

static void poll_answer(struct sim *s, struct conn *c, const char *body,
                        size_t body_len, int64_t t)
{
  struct device *d = &s->devs[c->dev];
  int st = c->status;
  json_t *a = NULL, *items;
  size_t k;

  if(c->kind != REQ_CHECKIN) {
    d->n_followups--;
    s->n_fu_out--;
  }
  if(st / 100 == 2)
    s->n_ok++;
  if(body && st / 100 == 2 && c->kind != REQ_COMPLETE)
    a = json_loadb(body, body_len, 0, NULL);
  switch(c->kind) {
  case REQ_CHECKIN:
    if(st != 200)
      break;
    if(c->gen > d->acked_gen)
      d->acked_gen = c->gen;
    if(c->sent_wall_s > d->last_ack_s)
      d->last_ack_s = c->sent_wall_s;
    s->n_checkins_ok++;
    bench_samples_add(&s->lat, t - c->sched_ns);
    if(json_integer_value(json_object_get(a, "pending_commands")) > 0 &&
       d->n_followups == 0)
      fq_push(s, c->dev, REQ_FETCH, NULL);
    break;
  case REQ_FETCH:
    if(st != 200)
      break;
    s->n_fetches++;
    items = json_object_get(a, "items");
    for(k = 0; k < json_array_size(items); k++) {
      const char *id = json_string_value(
        json_object_get(json_array_get(items, k), "id"));
      if(id && mdm_is_uuid(id))
        fq_push(s, c->dev, REQ_ACK, id);
    }
    break;
  case REQ_ACK: {
    long idx;
    if(st / 100 != 2)
      break;
    idx = bulk_find(s, c->cmd_id);
    if(idx < 0)
      s->n_other_cmds++;
    else if(!s->bulk_acked[idx]) {
      s->bulk_acked[idx] = 1;
      s->n_acked++;
      bench_samples_add(&s->ack_lat, t - s->t_bulk_ns);
    }
    if(s->o.is_complete)
      fq_push(s, c->dev, REQ_COMPLETE, c->cmd_id);
    break;
  }
  case REQ_COMPLETE:
    if(st / 100 == 2)
      s->n_completed++;
    break;
  }
  json_decref(a);
}

/* Fill c with the next request of the phase; 0 if there was one. */
static int next_request(struct sim *s, struct conn *c)
{
  char body[FACTS_MAX + TOKEN_MAX + 64];
  char facts[FACTS_MAX];
  char path[128];
  size_t fl, bl;

  switch(s->phase) {
  case PHASE_ENROLL: {
    size_t i = s->next_item;
    const char *et;
    if(i >= s->n_devs)
      return -1;
    s->next_item++;
    et = s->etokens[i / TOKEN_USES_MAX];
    fl = render_facts(facts, sizeof(facts), i, 0);
    if(!fl)
      return -1;
    bl = (size_t)snprintf(body, sizeof(body),
                          "{\"enrollment_token\":\"%s\",\"facts\":%s}", et,
                          facts);
    if(bl >= sizeof(body))
      return -1;
    c->dev = i;
    c->gen = 0;
    return render_request(s, c, "POST", "/v1/enroll", NULL, body, bl);
  }
  case PHASE_CHECKIN:
    return checkin_render(s, c, (size_t)(s->k_next % s->n_devs),
                          rng_unit(s) < s->o.changed_ratio);
  case PHASE_POLL:
    return -1;  /* dispatch_poll() renders these */
  case PHASE_VERIFY: {
    size_t i = s->next_item;
    if(i >= s->n_devs)
      return -1;
    s->next_item++;
    snprintf(path, sizeof(path), "/v1/devices/%s", s->devs[i].id);
    c->dev = i;
    return render_request(s, c, "GET", path, s->o.admin_token, NULL, 0);
  }
  }
  return -1;
}

static void verify_bad(struct sim *s, size_t i, const char *why)
{
  s->verify_bad++;
  if(s->n_bad_printed++ < 10)
    fprintf(stderr, PROG ": verify: device %zu (%s): %s\n", i, s->devs[i].id,
            why);
}

static void verify_answer(struct sim *s, struct conn *c, const char *body,
                          size_t body_len)
{
  struct device *d = &s->devs[c->dev];
  json_t *dev = NULL, *facts, *want = NULL, *age;
  const char *ls;
  int64_t last_seen = 0;
  char buf[FACTS_MAX];
  long long g;
  char why[160];

  if(c->status != 200) {
    snprintf(why, sizeof(why), "GET answered %d", c->status);
    verify_bad(s, c->dev, why);
    return;
  }
  dev = json_loadb(body, body_len, 0, NULL);
  facts = json_object_get(dev, "facts");
  age = json_object_get(json_object_get(facts, "security"),
                        "password_age_days");
  if(!json_is_integer(age)) {
    verify_bad(s, c->dev, "no facts.security.password_age_days");
    goto out;
  }
  g = json_integer_value(age) - (long long)(c->dev % 90);
  if(g < (long long)d->acked_gen || g > (long long)d->sent_gen) {
    snprintf(why, sizeof(why), "facts generation %lld stored, acknowledged %"
             PRIu32 ", sent %" PRIu32, g, d->acked_gen, d->sent_gen);
    verify_bad(s, c->dev, why);
    goto out;
  }
  if(!render_facts(buf, sizeof(buf), c->dev, (uint32_t)g) ||
     !(want = json_loads(buf, 0, NULL)) || !json_equal(want, facts)) {
    verify_bad(s, c->dev, "stored facts differ from the ones sent");
    goto out;
  }
  ls = json_string_value(json_object_get(dev, "last_seen"));
  if(!ls || mdm_time_parse(ls, &last_seen) || last_seen < d->last_ack_s) {
    snprintf(why, sizeof(why), "last_seen %s older than the acknowledged "
             "check-in at %" PRId64, ls ? ls : "null", d->last_ack_s);
    verify_bad(s, c->dev, why);
    goto out;
  }
  s->verify_ok++;
  s->verify_facts_checked += d->acked_gen > 0;
out:
  json_decref(want);
  json_decref(dev);
}

static void on_answer(struct sim *s, struct conn *c, const char *body,
                      size_t body_len)
{
  int64_t t = mdm_mono_ns();
  int st = c->status;
  size_t sec;

  s->by_status[st >= 0 && st < 600 ? st : 0]++;
  switch(s->phase) {
  case PHASE_ENROLL:
    if(st == 201) {
      json_t *a = json_loadb(body, body_len, 0, NULL);
      const char *id = json_string_value(json_object_get(a, "device_id"));
      const char *tok = json_string_value(json_object_get(a, "device_token"));
      json_t *mq = json_object_get(a, "mqtt");
      const char *pw = json_string_value(json_object_get(mq, "password"));
      const char *topic = json_string_value(json_object_get(mq, "topic"));
      struct device *d = &s->devs[c->dev];
      if(id && tok && !mdm_strlcpy(d->id, id, sizeof(d->id)) &&
         (d->token = strdup(tok))) {
        d->last_ack_s = c->sent_wall_s;
        s->n_ok++;
        if(pw && topic && !strpbrk(pw, " \t\n") && !strpbrk(topic, " \t\n")) {
          d->mqtt_password = strdup(pw);
          d->mqtt_topic = strdup(topic);
        }
      }
      json_decref(a);
    }
    bench_samples_add(&s->lat, t - c->sent_ns);
    break;
  case PHASE_CHECKIN:
    if(st == 200) {
      struct device *d = &s->devs[c->dev];
      if(c->gen > d->acked_gen)
        d->acked_gen = c->gen;
      if(c->sent_wall_s > d->last_ack_s)
        d->last_ack_s = c->sent_wall_s;
      s->n_ok++;
      s->n_changed_ok += (uint64_t)c->is_changed;
      bench_samples_add(&s->lat, t - c->sched_ns);
      bench_samples_add(&s->svc, t - c->sent_ns);
    }
    sec = (size_t)((c->sched_ns - s->t0_ns) / 1000000000);
    if(sec < s->n_tl) {
      uint64_t us = (uint64_t)(t - c->sched_ns) / 1000;
      struct timeline_sec *ts = &s->tl[sec];
      if(st == 200)
        ts->ok++;
      else
        ts->err++;
      if(us > ts->max_us)
        ts->max_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
      if(us > SLOW_MS * 1000)
        ts->slow++;
    }
    break;
  case PHASE_VERIFY:
    verify_answer(s, c, body, body_len);
    break;
  case PHASE_POLL:
    poll_answer(s, c, body, body_len, t);
    break;
  }
}

/* ---- server process figures ------------------------------------------- */

/* CPU seconds of each user-space process on the machine but two, with
 * their reaped children's.  (/proc/stat would be simpler, but in this kind of
 * VM it is updated in lumps of seconds.) */
struct proc_cpu {
  long long pid;
  double cpu_s;
};

struct proc_snap {
  struct proc_cpu *v;
  size_t n, cap;
};

static int cmp_pid(const void *a, const void *b)
{
  const struct proc_cpu *x = a, *y = b;
  return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static void proc_snap_take(struct proc_snap *ps, long long skip1,
                           long long skip2, long long own_only)
{
  DIR *d = opendir("/proc");
  struct dirent *e;
  ps->n = 0;
  if(!d)
    return;
  while((e = readdir(d))) {
    struct bench_proc_stat st;
    long long pid;
    char *end;
    pid = strtoll(e->d_name, &end, 10);
    if(*end || pid <= 2 || pid == skip1 || pid == skip2)
      continue;
    if(bench_proc_stat_read(pid, &st) || st.ppid == 2)
      continue;  /* gone, or a kernel thread */
    if(ps->n == ps->cap) {
      size_t cap = ps->cap ? ps->cap * 2 : 256;
      struct proc_cpu *v = realloc(ps->v, cap * sizeof(*v));
      if(!v)
        break;
      ps->v = v;
      ps->cap = cap;
    }
    ps->v[ps->n].pid = pid;
    /* own_only (the server's parent) would be charged the server's whole
     * life when it reaps a server killed in the run: its own time only. */
    ps->v[ps->n].cpu_s = pid == own_only ? st.cpu_s : st.cpu_all_s;
    ps->n++;
  }
  closedir(d);
  qsort(ps->v, ps->n, sizeof(*ps->v), cmp_pid);
}

/* CPU seconds the processes of end used since start. */
static double proc_snap_delta(const struct proc_snap *start,
                              const struct proc_snap *end)
{
  double sum = 0;
  size_t i;
  for(i = 0; i < end->n; i++) {
    const struct proc_cpu *p = bsearch(&end->v[i], start->v, start->n,
                                       sizeof(*start->v), cmp_pid);
    double d = end->v[i].cpu_s - (p ? p->cpu_s : 0);
    if(d > 0)
      sum += d;
  }
  return sum;
}

/* Context switches of all of pid's threads; -1 when unknown. */
static long long proc_ctxt_switches(long long pid)
{
  char path[64], line[256];
  long long sum = 0;
  FILE *f;
  DIR *d;
  struct dirent *e;
  if(pid <= 0)
    return -1;
  snprintf(path, sizeof(path), "/proc/%lld/task", pid);
  d = opendir(path);
  if(!d)
    return -1;
  while((e = readdir(d))) {
    char p2[128];
    if(e->d_name[0] == '.')
      continue;
    snprintf(p2, sizeof(p2), "/proc/%lld/task/%.20s/status", pid, e->d_name);
    f = fopen(p2, "r");
    if(!f)
      continue;
    while(fgets(line, sizeof(line), f))
      if(strstr(line, "ctxt_switches:"))
        sum += strtoll(strchr(line, ':') + 1, NULL, 10);
    fclose(f);
  }
  closedir(d);
  return sum;
}

/* ---- the loop ------------------------------------------------------------- */

static int64_t sched_of(struct sim *s, uint64_t k)
{
  return s->t0_ns + (int64_t)((double)k * 1e9 / s->o.rate);
}

/* --commands-poll: command requests first, then the check-ins due. */
static void dispatch_poll(struct sim *s, int64_t t)
{
  uint64_t due = t < s->t0_ns ? 0
                 : (uint64_t)((double)(t - s->t0_ns) * s->o.rate / 1e9) + 1;
  if(due > s->k_total)
    due = s->k_total;
  while(s->n_idle > 0 && !s->is_server_gone) {
    struct conn *c = &s->conns[s->idle[s->n_idle - 1]];
    if(s->fq_n) {
      struct followup f = s->fq[s->fq_head];
      s->fq_head = (s->fq_head + 1) % s->fq_cap;
      s->fq_n--;
      if(followup_render(s, c, &f)) {
        s->devs[f.dev].n_followups--;
        continue;
      }
      s->n_fu_out++;
      c->sched_ns = mdm_mono_ns();
    }
    else if(s->k_next < due) {
      if(checkin_render(s, c, (size_t)(s->k_next % s->n_devs), 0)) {
        s->k_next++;
        continue;
      }
      c->sched_ns = sched_of(s, s->k_next);
      s->k_next++;
    }
    else
      break;
    s->n_idle--;
    c->is_busy = 1;
    s->n_busy++;
    s->n_sent++;
    c->sent_ns = mdm_mono_ns();
    c->sent_wall_s = wall_s();
    conn_flush(s, c);
  }
}

static void dispatch(struct sim *s, int64_t t)
{
  uint64_t due = 0;
  if(s->phase == PHASE_POLL) {
    dispatch_poll(s, t);
    return;
  }
  if(s->phase == PHASE_CHECKIN) {
    due = t < s->t0_ns ? 0
          : (uint64_t)((double)(t - s->t0_ns) * s->o.rate / 1e9) + 1;
    if(due > s->k_total)
      due = s->k_total;
  }
  while(s->n_idle > 0 && !s->is_server_gone) {
    struct conn *c;
    if(s->phase == PHASE_CHECKIN && s->k_next >= due)
      break;
    c = &s->conns[s->idle[s->n_idle - 1]];
    if(next_request(s, c)) {
      if(s->phase == PHASE_CHECKIN) {  /* cannot render: skip it */
        s->k_next++;
        continue;
      }
      break;
    }
    s->n_idle--;
    if(s->phase == PHASE_CHECKIN) {
      c->sched_ns = sched_of(s, s->k_next);
      s->k_next++;
    }
    c->is_busy = 1;
    s->n_busy++;
    s->n_sent++;
    c->sent_ns = mdm_mono_ns();
    c->sent_wall_s = wall_s();
    if(s->phase != PHASE_CHECKIN)
      c->sched_ns = c->sent_ns;
    conn_flush(s, c);
  }
}

/* --commands-push: each wake-up makes its device fetch its commands at
 * once, as mdm-agent does (a fetch already in flight may have been answered
 * before the command was committed, so a wake-up always fetches again). */
static void push_take(struct sim *s)
{
  uint32_t idx[1024];
  size_t n, k;
  int64_t t = mdm_mono_ns();
  while((n = sim_mqtt_take(s->mqtt, idx, sizeof(idx) / sizeof(idx[0])))) {
    for(k = 0; k < n; k++)
      if(idx[k] < s->n_devs) {
        fq_push(s, idx[k], REQ_FETCH, NULL);
        bench_samples_add(&s->wake_lat, t - s->t_bulk_ns);
      }
    s->n_wakeups += n;
  }
}

static int run_phase(struct sim *s, enum phase ph)
{
  struct epoll_event evs[256];
  int64_t last_sample = 0, last_report = 0, drain_deadline = 0;
  uint64_t ok_at_report = 0;
  int i;

  s->phase = ph;
  s->next_item = 0;
  s->k_next = 0;
  s->is_stopping = 0;
  s->n_sent = s->n_ok = s->n_changed_sent = s->n_changed_ok = 0;
  memset(s->by_status, 0, sizeof(s->by_status));
  s->lat.n = s->svc.n = 0;
  s->n_unsent = s->n_abandoned = 0;
  s->t0_ns = mdm_mono_ns() + 20 * 1000000;  /* a moment to settle */
  if(ph == PHASE_POLL)
    s->t0_ns = mdm_mono_ns();  /* right after the bulk command's answer */
  if(ph == PHASE_CHECKIN || ph == PHASE_POLL) {
    s->k_total = (uint64_t)llround(s->o.rate * s->o.duration_s);
    s->t_end_ns = s->t0_ns + (int64_t)(s->o.duration_s * 1e9);
    s->n_tl = (size_t)ceil(s->o.duration_s);
    if(s->n_tl > TIMELINE_MAX)
      s->n_tl = TIMELINE_MAX;
    free(s->tl);
    s->tl = calloc(s->n_tl ? s->n_tl : 1, sizeof(*s->tl));
    if(!s->tl)
      return -1;
  }
  else
    s->t0_ns = mdm_mono_ns();

  for(;;) {
    int64_t t = mdm_mono_ns(), wait_ns;
    struct timespec ts;
    int n;

    if(!s->is_stopping) {
      if(ph == PHASE_CHECKIN && (t >= s->t_end_ns || s->is_server_gone)) {
        s->is_stopping = 1;
        s->n_unsent = s->k_total - s->k_next;
      }
      else if(ph == PHASE_POLL &&
              (t >= s->t_end_ns || s->is_server_gone ||
               (s->n_acked == s->n_bulk && !s->fq_n && !s->n_fu_out)))
        s->is_stopping = 1;
      else if(ph != PHASE_CHECKIN && ph != PHASE_POLL &&
              (s->next_item >= s->n_devs || s->is_server_gone))
        s->is_stopping = 1;
      if(s->is_stopping)
        drain_deadline = t + 30 * (int64_t)1000000000;
    }
    if(!s->is_stopping)
      dispatch(s, t);
    if(s->is_stopping && s->n_busy == 0)
      break;
    if(s->is_stopping && t > drain_deadline) {
      s->n_abandoned = (uint64_t)s->n_busy;
      break;
    }
    if(!s->is_stopping && s->n_idle == 0 && s->n_busy == 0) {
      fprintf(stderr, PROG ": no connection to the server is left\n");
      s->is_server_gone = 1;
      continue;
    }

    /* Once a second: the server's RSS, and a progress line now and then. */
    if(t - last_sample >= 1000000000) {
      long rss, hwm;
      bench_proc_rss(s->o.server_pid, &rss, &hwm);
      if(rss > s->server_rss_max_kb)
        s->server_rss_max_kb = rss;
      if(ph == PHASE_CHECKIN && t >= s->t0_ns) {
        size_t sec = (size_t)((t - s->t0_ns) / 1000000000);
        if(sec < s->n_tl)
          s->tl[sec].rss_kb = (uint32_t)rss;
      }
      last_sample = t;
      if(t - last_report >= 10 * (int64_t)1000000000) {
        double behind = 0;
        if((ph == PHASE_CHECKIN || ph == PHASE_POLL) && !s->is_stopping)
          behind = (double)(t - s->t0_ns) * s->o.rate / 1e9 -
                   (double)s->k_next;
        if(last_report)
          fprintf(stderr, PROG ": %s: %.0f s: %" PRIu64 " ok (%.0f/s), %d "
                          "in flight, %.0f due but unsent, server RSS %ld "
                          "MiB\n",
                  ph == PHASE_ENROLL ? "enroll" : ph == PHASE_CHECKIN ?
                  "check-in" : ph == PHASE_POLL ? "commands-poll" : "verify", (t - s->t0_ns) / 1e9, s->n_ok,
                  (double)(s->n_ok - ok_at_report) * 1e9 / (t - last_report),
                  s->n_busy, behind > 0 ? behind : 0, rss / 1024);
        if(last_report && ph == PHASE_POLL)
          fprintf(stderr, PROG ": commands-poll: %" PRIu64 " of %zu "
                          "commands acknowledged\n", s->n_acked, s->n_bulk);
        last_report = t;
        ok_at_report = s->n_ok;
      }
    }

    wait_ns = 100 * 1000000;
    if((ph == PHASE_CHECKIN || ph == PHASE_POLL) && !s->is_stopping &&
       s->n_idle > 0 &&
       s->k_next < s->k_total) {
      int64_t next = sched_of(s, s->k_next) - t;
      if(next > 0 && next < s->o.tick_us * 1000)
        next = s->o.tick_us * 1000;  /* send the requests due by then together */
      if(next < wait_ns)
        wait_ns = next < 0 ? 0 : next;
    }
    ts.tv_sec = wait_ns / 1000000000;
    ts.tv_nsec = wait_ns % 1000000000;
    n = epoll_pwait2(s->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), &ts,
                     NULL);
    if(n < 0 && errno != EINTR) {
      perror(PROG ": epoll_pwait2");
      return -1;
    }
    for(i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if(evs[i].data.ptr == &s->wake_marker) {
        push_take(s);
        continue;
      }
      if(c->fd < 0)
        continue;
      if((evs[i].events & EPOLLOUT) && c->out_off < c->out_len)
        conn_flush(s, c);
      if(c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        conn_read(s, c);
    }
  }
  s->elapsed_ns = mdm_mono_ns() - s->t0_ns;
  if(ph == PHASE_CHECKIN && s->elapsed_ns > s->t_end_ns - s->t0_ns)
    s->elapsed_ns = s->t_end_ns - s->t0_ns;  /* the rate is over the window */
  return 0;
}

static int conns_setup(struct sim *s)
{
  int i;
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  s->conns = calloc((size_t)s->o.n_conns, sizeof(*s->conns));
  s->idle = calloc((size_t)s->o.n_conns, sizeof(*s->idle));
  if(s->ep < 0 || !s->conns || !s->idle)
    return -1;
  s->n_conns = s->o.n_conns;
  for(i = 0; i < s->n_conns; i++)
    s->conns[i].fd = -1;
  for(i = 0; i < s->o.n_conns; i++) {
    struct conn *c = &s->conns[i];
    c->fd = -1;
    c->out = malloc(REQ_MAX);
    c->in = malloc(RESP_MAX + 1);
    if(!c->out || !c->in)
      return -1;
    if(conn_open(s, c)) {
      fprintf(stderr, PROG ": cannot connect to %s: %s\n", s->o.server,
              strerror(errno));
      return -1;
    }
    idle_push(s, c);
  }
  s->n_dead = 0;
  return 0;
}

static void conns_teardown(struct sim *s)
{
  int i;
  for(i = 0; s->conns && i < s->n_conns; i++) {
    conn_close(&s->conns[i]);
    free(s->conns[i].out);
    free(s->conns[i].in);
  }
  free(s->conns);
  free(s->idle);
  s->conns = NULL;
  s->idle = NULL;
  s->n_idle = s->n_busy = s->n_conns = 0;
  if(s->ep >= 0)
    close(s->ep);
  s->ep = -1;
}

/* ---- reports ------------------------------------------------------------- */

static json_t *status_counts(struct sim *s)
{
  json_t *o = json_object();
  int i;
  for(i = 0; i < 600; i++)
    if(s->by_status[i]) {
      char k[16];
      snprintf(k, sizeof(k), "%s", i ? "" : "conn");
      if(i)
        snprintf(k, sizeof(k), "%d", i);
      json_object_set_new(o, k, json_integer((json_int_t)s->by_status[i]));
    }
  return o;
}

struct figures0 {
  double server_cpu, self_cpu;
  struct proc_snap others;
  long long server_ppid;
  long long server_cs;
  int64_t t;
};

static void figures_start(struct sim *s, struct figures0 *f)
{
  struct bench_proc_stat st;

  bench_proc_stat_read(s->o.server_pid, &st);  /* -1s when unknown */
  f->server_cpu = st.cpu_s;
  f->self_cpu = bench_self_cpu_s();
  memset(&f->others, 0, sizeof(f->others));
  f->server_ppid = st.ppid;
  proc_snap_take(&f->others, s->o.server_pid, (long long)getpid(),
                 f->server_ppid);
  f->server_cs = proc_ctxt_switches(s->o.server_pid);
  f->t = mdm_mono_ns();
  s->server_rss_max_kb = 0;
}

/* The server's RSS, CPU and context switches, this process's CPU, and the
 * CPU all other user-space processes used since figures_start(): other load
 * on the machine, which the report must show. */
static void figures_add(struct sim *s, struct figures0 *f, json_t *r,
                        uint64_t n_requests)
{
  double wall = (mdm_mono_ns() - f->t) / 1e9;
  struct bench_proc_stat st;
  struct proc_snap others_end = {NULL, 0, 0};
  double self = (bench_self_cpu_s() - f->self_cpu) / wall;
  long long cs = proc_ctxt_switches(s->o.server_pid);
  long rss, hwm, srss, shwm;
  double server_cores = -1;

  bench_proc_stat_read(s->o.server_pid, &st);
  bench_proc_rss((long long)getpid(), &srss, &shwm);
  if(s->o.server_pid > 0) {
    bench_proc_rss(s->o.server_pid, &rss, &hwm);
    if(f->server_cpu >= 0 && st.cpu_s >= 0)
      server_cores = (st.cpu_s - f->server_cpu) / wall;
    json_object_set_new(
      r, "server",
      json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "pid",
                (json_int_t)s->o.server_pid, "rss_mib", rss / 1024.0,
                "rss_max_sampled_mib", s->server_rss_max_kb / 1024.0,
                "hwm_mib", hwm / 1024.0, "cpu_cores", server_cores,
                "context_switches_per_request",
                n_requests && cs >= 0 && f->server_cs >= 0
                  ? (double)(cs - f->server_cs) / (double)n_requests : -1.0));
  }
  json_object_set_new(r, "simulator",
                      json_pack("{s:f, s:f}", "cpu_cores", self, "hwm_mib",
                                shwm / 1024.0));
  proc_snap_take(&others_end, s->o.server_pid, (long long)getpid(),
                 f->server_ppid);
  json_object_set_new(
    r, "machine",
    json_pack("{s:f, s:f}", "wall_s", wall, "other_cores",
              proc_snap_delta(&f->others, &others_end) / wall));
  free(others_end.v);
  free(f->others.v);
  f->others.v = NULL;
}

/* ---- main ------------------------------------------------------------------ */

static const char usage_text[] =
  "usage: mdm-sim --server URL (--token TOKEN | --token-file FILE)\n"
  "               [--devices N] [--devices-file FILE] [--enroll-only |\n"
  "               --checkin-only | --verify] [--rate R] [--duration S]\n"
  "               [--connections C] [--changed-facts-ratio F]\n"
  "               [--server-pid PID] [--stop-on-disconnect] [-o text|json]\n"
  "       mdm-sim --server URL --token-file FILE --devices-file FILE\n"
  "               --commands-poll [--interval S] [--duration S]\n"
  "               [--bulk-type TYPE] [--complete] [--connections C]\n"
  "       mdm-sim --server URL --token-file FILE --devices-file FILE\n"
  "               --commands-push --mqtt mqtt://HOST:PORT [--interval S]\n"
  "               [--duration S] [--bulk-type TYPE] [--complete]\n"
  "               [--mqtt-batch N]\n"
  "       mdm-sim --devices-file FILE --wrk-lua INDEX\n"
  "\n"
  "Simulates many devices against one mdmd (plain HTTP/1.1, keep-alive).\n"
  "\n"
  "  --server URL              the server, http://HOST:PORT\n"
  "  --token TOKEN             an admin API token (owner or admin role)\n"
  "  --token-file FILE         read the admin token from FILE\n"
  "  --devices N               devices to enroll (default 1000)\n"
  "  --devices-file FILE       where enrolled devices are kept: written by\n"
  "                            enrollment and every check-in run, read by\n"
  "                            --checkin-only and --verify\n"
  "  --enroll-only             enroll, save the devices and stop\n"
  "  --checkin-only            check in the devices of --devices-file\n"
  "  --verify                  read every device back and check that each\n"
  "                            acknowledged check-in is stored (exit 1 if\n"
  "                            not)\n"
  "  --rate R                  check-ins per second, open loop (default\n"
  "                            1000); latency counts from the due time\n"
  "  --duration S              seconds of check-ins (default 10)\n"
  "  --connections C           keep-alive connections (default 64)\n"
  "  --changed-facts-ratio F   share of check-ins whose facts changed\n"
  "                            (default 0.01)\n"
  "  --server-pid PID          report this process's RSS and CPU\n"
  "  --stop-on-disconnect      end the run at the first lost connection\n"
  "                            (for the kill -9 durability test)\n"
  "  --seed N                  seed of the changed-facts choice\n"
  "  --tick-us N               wake at most every N microseconds to send\n"
  "                            what is due (default 0: at each due time);\n"
  "                            latency still counts from each due time\n"
"  --commands-poll           create one bulk command for every active device\n"
  "                            (POST /v1/commands, selector {}), then check\n"
  "                            the devices of --devices-file in round-robin,\n"
  "                            each once per --interval; a device whose\n"
  "                            check-in answers pending_commands > 0 fetches\n"
  "                            its commands and acknowledges each.  Reports\n"
  "                            the time from the bulk POST's call to each\n"
  "                            acknowledgement's 2xx; ends when all are\n"
  "                            acknowledged or after --duration\n"
  "  --commands-push           as --commands-poll, but first every device of\n"
  "                            --devices-file (enrolled against mdmd --mqtt)\n"
  "                            opens its MQTT session with its own\n"
  "                            credentials and subscribes to its topic; a\n"
  "                            wake-up makes the device fetch its commands at\n"
  "                            once.  Use a long --interval (e.g. 3600) so\n"
  "                            that polling does not deliver them\n"
  "  --mqtt URL                --commands-push: the broker, mqtt://HOST:PORT\n"
  "  --mqtt-batch N            --commands-push: MQTT connections opened at a\n"
  "                            time (default 200)\n"
  "  --interval S              --commands-poll: each device's check-in\n"
  "                            period (default 30); rate = devices / S\n"
  "  --bulk-type TYPE          --commands-poll: the command (default lock)\n"
  "  --complete                --commands-poll: after acknowledging, report\n"
  "                            each command completed too\n"
  "  --wrk-lua INDEX           print a wrk script that checks device INDEX\n"
  "                            in with its unchanged facts, and exit\n"
  "  -o text|json              the summary's format (default text)\n";

enum {
  OPT_SERVER = 256, OPT_TOKEN, OPT_TOKEN_FILE, OPT_DEVICES, OPT_DEVICES_FILE,
  OPT_ENROLL_ONLY, OPT_CHECKIN_ONLY, OPT_VERIFY, OPT_RATE, OPT_DURATION,
  OPT_CONNECTIONS, OPT_CHANGED, OPT_SERVER_PID, OPT_STOP, OPT_SEED, OPT_WRK, OPT_TICK,
  OPT_POLL, OPT_INTERVAL, OPT_BULK_TYPE, OPT_COMPLETE, OPT_PUSH, OPT_MQTT,
  OPT_MQTT_BATCH
};

static const struct option long_opts[] = {
  {"server", required_argument, NULL, OPT_SERVER},
  {"token", required_argument, NULL, OPT_TOKEN},
  {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
  {"devices", required_argument, NULL, OPT_DEVICES},
  {"devices-file", required_argument, NULL, OPT_DEVICES_FILE},
  {"enroll-only", no_argument, NULL, OPT_ENROLL_ONLY},
  {"checkin-only", no_argument, NULL, OPT_CHECKIN_ONLY},
  {"verify", no_argument, NULL, OPT_VERIFY},
  {"rate", required_argument, NULL, OPT_RATE},
  {"duration", required_argument, NULL, OPT_DURATION},
  {"connections", required_argument, NULL, OPT_CONNECTIONS},
  {"changed-facts-ratio", required_argument, NULL, OPT_CHANGED},
  {"server-pid", required_argument, NULL, OPT_SERVER_PID},
  {"stop-on-disconnect", no_argument, NULL, OPT_STOP},
  {"seed", required_argument, NULL, OPT_SEED},
  {"wrk-lua", required_argument, NULL, OPT_WRK},
  {"tick-us", required_argument, NULL, OPT_TICK},
  {"commands-poll", no_argument, NULL, OPT_POLL},
  {"interval", required_argument, NULL, OPT_INTERVAL},
  {"bulk-type", required_argument, NULL, OPT_BULK_TYPE},
  {"complete", no_argument, NULL, OPT_COMPLETE},
  {"commands-push", no_argument, NULL, OPT_PUSH},
  {"mqtt", required_argument, NULL, OPT_MQTT},
  {"mqtt-batch", required_argument, NULL, OPT_MQTT_BATCH},
  {"help", no_argument, NULL, 'h'},
  {NULL, 0, NULL, 0}
};

static double parse_double(const char *s, double min, double max,
                           const char *flag)
{
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if(errno || end == s || *end || v < min || v > max)
    bench_die_usage(PROG, "invalid value for", flag);
  return v;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
  int ch;
  memset(o, 0, sizeof(*o));
  o->n_devices = 1000;
  o->rate = 1000;
  o->duration_s = 10;
  o->n_conns = 64;
  o->changed_ratio = 0.01;
  o->out_format = "text";
  o->wrk_lua_idx = -1;
  o->seed = 1;
  o->interval_s = 30;
  o->bulk_type = "lock";
  o->mqtt_batch = 200;
  while((ch = getopt_long(argc, argv, "ho:", long_opts, NULL)) != -1) {
    switch(ch) {
    case OPT_SERVER:
      o->server = optarg;
      break;
    case OPT_TOKEN:
      free(o->admin_token);
      o->admin_token = strdup(optarg);
      break;
    case OPT_TOKEN_FILE: {
      char *t = NULL;
      size_t n;
      if(mdm_file_read(optarg, TOKEN_MAX, &t, &n)) {
        fprintf(stderr, PROG ": cannot read '%s'\n", optarg);
        exit(1);
      }
      while(n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        t[--n] = '\0';
      free(o->admin_token);
      o->admin_token = t;
      break;
    }
    case OPT_DEVICES:
      o->n_devices = bench_parse_ll(PROG, optarg, 1, 10000000, "--devices");
      break;
    case OPT_DEVICES_FILE:
      o->devices_file = optarg;
      break;
    case OPT_ENROLL_ONLY:
      o->is_enroll_only = 1;
      break;
    case OPT_CHECKIN_ONLY:
      o->is_checkin_only = 1;
      break;
    case OPT_VERIFY:
      o->is_verify = 1;
      break;
    case OPT_RATE:
      o->rate = parse_double(optarg, 1, 1e7, "--rate");
      break;
    case OPT_DURATION:
      o->duration_s = parse_double(optarg, 0.1, TIMELINE_MAX, "--duration");
      break;
    case OPT_CONNECTIONS:
      o->n_conns = (int)bench_parse_ll(PROG, optarg, 1, 20000,
                                       "--connections");
      break;
    case OPT_CHANGED:
      o->changed_ratio = parse_double(optarg, 0, 1, "--changed-facts-ratio");
      break;
    case OPT_SERVER_PID:
      o->server_pid = bench_parse_ll(PROG, optarg, 1, 1LL << 40,
                                     "--server-pid");
      break;
    case OPT_STOP:
      o->is_stop_on_disconnect = 1;
      break;
    case OPT_SEED:
      o->seed = (unsigned long long)bench_parse_ll(PROG, optarg, 0, 1LL << 62,
                                                   "--seed");
      break;
    case OPT_TICK:
      o->tick_us = bench_parse_ll(PROG, optarg, 0, 1000000, "--tick-us");
      break;
    case OPT_POLL:
      o->is_commands_poll = 1;
      break;
    case OPT_INTERVAL:
      o->interval_s = parse_double(optarg, 0.1, 86400, "--interval");
      break;
    case OPT_BULK_TYPE:
      if(!*optarg || strlen(optarg) > 32 || strspn(optarg,
         "abcdefghijklmnopqrstuvwxyz_") != strlen(optarg))
        bench_die_usage(PROG, "invalid value for", "--bulk-type");
      o->bulk_type = optarg;
      break;
    case OPT_COMPLETE:
      o->is_complete = 1;
      break;
    case OPT_PUSH:
      o->is_commands_push = 1;
      break;
    case OPT_MQTT:
      if(strncmp(optarg, "mqtt://", 7))
        bench_die_usage(PROG, "--mqtt takes mqtt://HOST:PORT, not", optarg);
      o->mqtt_url = optarg;
      break;
    case OPT_MQTT_BATCH:
      o->mqtt_batch = (int)bench_parse_ll(PROG, optarg, 1, 100000,
                                          "--mqtt-batch");
      break;
    case OPT_WRK:
      o->wrk_lua_idx = bench_parse_ll(PROG, optarg, 0, 1LL << 40,
                                      "--wrk-lua");
      break;
    default:  /* -o, -h, and what getopt rejected */
      bench_opt_common(PROG, usage_text, ch, optarg, &o->out_format);
    }
  }
  if(optind < argc)
    bench_die_usage(PROG, "unexpected argument", argv[optind]);
  if(o->is_enroll_only + o->is_checkin_only + o->is_verify +
     o->is_commands_poll + o->is_commands_push > 1)
    bench_die_usage(PROG, "choose one of --enroll-only, --checkin-only, "
                    "--verify, --commands-poll, --commands-push", NULL);
  if(o->is_commands_push && !o->mqtt_url)
    bench_die_usage(PROG, "--commands-push needs --mqtt", NULL);
  if(o->wrk_lua_idx >= 0) {
    if(!o->devices_file)
      bench_die_usage(PROG, "--wrk-lua needs --devices-file", NULL);
    return;
  }
  if(!o->server)
    bench_die_usage(PROG, "--server is required", NULL);
  if((o->is_checkin_only || o->is_verify || o->is_commands_poll ||
      o->is_commands_push) && !o->devices_file)
    bench_die_usage(PROG, "--checkin-only, --verify, --commands-poll and "
                    "--commands-push need --devices-file", NULL);
  if(!o->is_checkin_only && !o->admin_token)  /* enrollment or --verify */
    bench_die_usage(PROG, "--token or --token-file is required", NULL);
}

static int wrk_lua(struct sim *s)
{
  char facts[FACTS_MAX];
  struct device *d;
  size_t i = (size_t)s->o.wrk_lua_idx;
  if(i >= s->n_devs) {
    fprintf(stderr, PROG ": no device %zu in the devices file\n", i);
    return 1;
  }
  d = &s->devs[i];
  if(!render_facts(facts, sizeof(facts), i, d->sent_gen))
    return 1;
  printf("-- generated by mdm-sim --wrk-lua %zu: device %s checks in with\n"
         "-- the facts it last sent (unchanged), over and over\n"
         "wrk.method = \"POST\"\n"
         "wrk.path = \"/v1/agent/checkin\"\n"
         "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
         "wrk.headers[\"Authorization\"] = \"Bearer %s\"\n"
         "wrk.body = [==[{\"facts\":%s}]==]\n",
         i, d->id, d->token, facts);
  return 0;
}

/* --commands-poll: the bulk command, then the devices' polling. */
/* --commands-push: one MQTT session per device, all subscribed before the
 * bulk command; wake-ups come in through s->wake_fd. */
static int push_setup(struct sim *s)
{
  struct sim_mqtt_dev *md;
  struct epoll_event ev;
  char host[256], err[300];
  const char *hp;
  int port;
  size_t i;
  int64_t t0 = mdm_mono_ns();

  hp = s->o.mqtt_url + strlen("mqtt://");
  if(sscanf(hp, "%255[^:]:%d", host, &port) != 2 || port < 1 ||
     port > 65535) {
    fprintf(stderr, PROG ": --mqtt: expected mqtt://HOST:PORT\n");
    return -1;
  }
  md = calloc(s->n_devs, sizeof(*md));
  if(!md)
    return -1;
  for(i = 0; i < s->n_devs; i++) {
    if(!s->devs[i].mqtt_password) {
      fprintf(stderr, PROG ": device %zu of --devices-file has no MQTT "
                      "credentials (enroll against mdmd --mqtt)\n", i);
      free(md);
      return -1;
    }
    md[i].client_id = s->devs[i].id;
    md[i].password = s->devs[i].mqtt_password;
    md[i].topic = s->devs[i].mqtt_topic;
  }
  fprintf(stderr, PROG ": opening %zu MQTT sessions to %s:%d\n", s->n_devs,
          host, port);
  if(sim_mqtt_start(&s->mqtt, host, port, md, s->n_devs, s->o.mqtt_batch,
                    120, &s->wake_fd, err, sizeof(err))) {
    fprintf(stderr, PROG ": MQTT: %s\n", err);
    /* the sessions were stopped: md is no longer used */
    free(md);
    return -1;
  }
  s->push_devs = md;
  fprintf(stderr, PROG ": %zu MQTT sessions subscribed in %.1f s\n",
          s->n_devs, (mdm_mono_ns() - t0) / 1e9);
  ev.events = EPOLLIN;
  ev.data.ptr = &s->wake_marker;
  if(epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev))
    return -1;
  return 0;
}

static int commands_poll(struct sim *s)
{
  char body[256];
  json_t *ans = NULL, *ids, *r;
  struct figures0 f0;
  int64_t t_call;
  double bulk_ms;
  long st;
  size_t i;
  int is_push = s->o.is_commands_push;

  s->o.rate = (double)s->n_devs / s->o.interval_s;
  s->o.changed_ratio = 0;
  if(conns_setup(s))
    return 1;
  if(is_push && push_setup(s))
    return 1;
  snprintf(body, sizeof(body), "{\"type\":\"%s\",\"selector\":{}}",
           s->o.bulk_type);
  t_call = mdm_mono_ns();
  st = admin_post(s, "/v1/commands", body, &ans);
  bulk_ms = (mdm_mono_ns() - t_call) / 1e6;
  /* Latency counts from the API call: the wait for its answer included. */
  s->t_bulk_ns = t_call;
  ids = json_object_get(ans, "ids");
  if(st != 201 || !json_is_array(ids)) {
    fprintf(stderr, PROG ": POST /v1/commands answered HTTP %ld\n", st);
    json_decref(ans);
    return 1;
  }
  s->n_bulk = json_array_size(ids);
  s->bulk_ids = calloc(s->n_bulk ? s->n_bulk : 1, sizeof(*s->bulk_ids));
  s->bulk_acked = calloc(s->n_bulk ? s->n_bulk : 1, 1);
  if(!s->bulk_ids || !s->bulk_acked) {
    json_decref(ans);
    return 1;
  }
  for(i = 0; i < s->n_bulk; i++)
    mdm_strlcpy(s->bulk_ids[i], json_string_value(json_array_get(ids, i))
                ? json_string_value(json_array_get(ids, i)) : "",
                sizeof(s->bulk_ids[i]));
  json_decref(ans);
  qsort(s->bulk_ids, s->n_bulk, sizeof(*s->bulk_ids), cmp_id);
  fprintf(stderr, PROG ": bulk %s: %zu commands in %.0f ms; %zu devices "
                  "check in every %.0f s (%.0f/s) for at most %.0f s\n",
          s->o.bulk_type, s->n_bulk, bulk_ms, s->n_devs, s->o.interval_s,
          s->o.rate, s->o.duration_s);
  figures_start(s, &f0);
  if(run_phase(s, PHASE_POLL))
    return 1;
  r = json_pack(
    "{s:s, s:I, s:s, s:f, s:f, s:f, s:f, s:i, s:b, s:I, s:I, s:I, s:I, "
    "s:I, s:o, s:f, s:I, s:I, s:o, s:o}",
    "phase", is_push ? "commands_push" : "commands_poll", "devices", (json_int_t)s->n_devs, "bulk_type",
    s->o.bulk_type, "bulk_post_ms", bulk_ms, "interval_s", s->o.interval_s,
    "checkin_rate", s->o.rate, "duration_s", s->o.duration_s, "connections",
    s->o.n_conns, "complete", s->o.is_complete, "commands_created",
    (json_int_t)s->n_bulk, "acknowledged", (json_int_t)s->n_acked,
    "never_acknowledged", (json_int_t)(s->n_bulk - s->n_acked), "completed",
    (json_int_t)s->n_completed, "other_commands_acknowledged",
    (json_int_t)s->n_other_cmds, "latency", bench_latency_json(&s->ack_lat),
    "seconds", s->elapsed_ns / 1e9, "checkins", (json_int_t)s->n_checkins_ok,
    "fetches", (json_int_t)s->n_fetches, "checkin_latency",
    bench_latency_json(&s->lat), "errors", status_counts(s));
  if(is_push) {
    struct sim_mqtt_stats ms;
    sim_mqtt_get_stats(s->mqtt, &ms);
    json_object_set_new(r, "mqtt", json_pack(
      "{s:I, s:I, s:I, s:I, s:I, s:I}", "sessions", (json_int_t)s->n_devs,
      "subscribed", (json_int_t)ms.subscribed, "wakeups_received",
      (json_int_t)ms.messages, "wakeups_taken", (json_int_t)s->n_wakeups,
      "disconnects", (json_int_t)ms.disconnects, "refused",
      (json_int_t)(ms.refused + ms.sub_refused)));
    json_object_set_new(r, "wakeup_latency",
                        bench_latency_json(&s->wake_lat));
  }
  figures_add(s, &f0, r, s->n_sent);
  bench_emit(r, s->o.out_format);
  json_decref(r);
  return 0;
}

int main(int argc, char **argv)
{
  struct sim s;
  json_t *r = NULL;
  int ret = 1;
  struct figures0 f0;
  size_t i;

  memset(&s, 0, sizeof(s));
  s.ep = -1;
  parse_args(&s.o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  s.rng = bench_splitmix64(s.o.seed);

  if(s.o.wrk_lua_idx >= 0) {
    if(!devices_load(&s, s.o.devices_file))
      ret = wrk_lua(&s);
    goto out;
  }
  if(server_addr(&s))
    goto out;
  curl_global_init(CURL_GLOBAL_DEFAULT);

  if(s.o.is_commands_poll || s.o.is_commands_push) {
    if(devices_load(&s, s.o.devices_file))
      goto out;
    ret = commands_poll(&s);
    if(!ret && devices_save(&s, s.o.devices_file))
      ret = 1;
    goto out;
  }
  if(s.o.is_checkin_only || s.o.is_verify) {
    if(devices_load(&s, s.o.devices_file))
      goto out;
  }
  else {
    s.n_devs = (size_t)s.o.n_devices;
    s.devs = calloc(s.n_devs, sizeof(*s.devs));
    if(!s.devs || create_enrollment_tokens(&s))
      goto out;
    if(conns_setup(&s))
      goto out;
    figures_start(&s, &f0);
    fprintf(stderr, PROG ": enrolling %zu devices over %d connections\n",
            s.n_devs, s.o.n_conns);
    if(run_phase(&s, PHASE_ENROLL))
      goto out;
    conns_teardown(&s);
    {
      double el = s.elapsed_ns / 1e9;
      r = json_pack("{s:s, s:I, s:I, s:i, s:f, s:f, s:o, s:o}",
                    "phase", "enroll", "devices", (json_int_t)s.n_devs,
                    "enrolled", (json_int_t)s.n_ok, "connections",
                    s.o.n_conns, "seconds", el, "enrollments_per_s",
                    s.n_ok / el, "latency", bench_latency_json(&s.lat),
                    "errors", status_counts(&s));
      figures_add(&s, &f0, r, s.n_sent);
    }
    bench_emit(r, s.o.out_format);
    json_decref(r);
    r = NULL;
    if(s.n_ok != s.n_devs) {
      fprintf(stderr, PROG ": only %" PRIu64 " of %zu devices enrolled\n",
              s.n_ok, s.n_devs);
      /* Keep those that did enroll, in order, for the check-in phase. */
      {
        size_t w = 0;
        for(i = 0; i < s.n_devs; i++)
          if(s.devs[i].token)
            s.devs[w++] = s.devs[i];
        s.n_devs = w;
      }
      if(!s.n_devs)
        goto out;
    }
    if(s.o.devices_file && devices_save(&s, s.o.devices_file))
      goto out;
    if(s.o.is_enroll_only) {
      ret = s.n_ok == (uint64_t)s.o.n_devices ? 0 : 1;
      goto out;
    }
  }

  if(conns_setup(&s))
    goto out;
  figures_start(&s, &f0);
  if(s.o.is_verify) {
    if(run_phase(&s, PHASE_VERIFY))
      goto out;
    r = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "phase", "verify",
                  "devices", (json_int_t)s.n_devs, "ok",
                  (json_int_t)s.verify_ok, "bad", (json_int_t)s.verify_bad,
                  "devices_with_changed_facts",
                  (json_int_t)s.verify_facts_checked, "answers",
                  status_counts(&s));
    free(f0.others.v);
    bench_emit(r, s.o.out_format);
    ret = s.verify_ok == s.n_devs && !s.verify_bad ? 0 : 1;
    goto out;
  }

  fprintf(stderr, PROG ": checking in %zu devices at %.0f/s for %.0f s over "
                  "%d connections\n", s.n_devs, s.o.rate, s.o.duration_s,
          s.o.n_conns);
  if(run_phase(&s, PHASE_CHECKIN))
    goto out;
  {
    double el = s.elapsed_ns / 1e9;
    json_t *tl = json_array();
    uint64_t slow = 0;
    for(i = 0; i < s.n_tl; i++) {
      json_array_append_new(
        tl, json_pack("[i, i, i, f, i]", (int)s.tl[i].ok, (int)s.tl[i].err,
                      (int)s.tl[i].slow, s.tl[i].max_us / 1000.0,
                      (int)(s.tl[i].rss_kb / 1024)));
      slow += s.tl[i].slow;
    }
    r = json_pack(
      "{s:s, s:I, s:f, s:f, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, "
      "s:o, s:o, s:o, s:I, s:s, s:o}",
      "phase", "checkin", "devices", (json_int_t)s.n_devs, "target_rate",
      s.o.rate, "duration_s", s.o.duration_s, "connections", s.o.n_conns,
      "changed_facts_ratio", s.o.changed_ratio, "due",
      (json_int_t)s.k_total, "sent", (json_int_t)s.n_sent, "ok",
      (json_int_t)s.n_ok, "changed_ok", (json_int_t)s.n_changed_ok,
      "unsent", (json_int_t)s.n_unsent, "abandoned",
      (json_int_t)s.n_abandoned, "checkins_per_s", el > 0 ? s.n_ok / el : 0,
      "latency", bench_latency_json(&s.lat), "service_time",
      bench_latency_json(&s.svc), "errors", status_counts(&s), "over_50ms",
      (json_int_t)slow, "timeline_fields",
      "ok, errors, over_50ms, max_ms, server_rss_mib", "timeline", tl);
    figures_add(&s, &f0, r, s.n_sent);
  }
  bench_emit(r, s.o.out_format);
  if(s.o.devices_file && devices_save(&s, s.o.devices_file))
    goto out;
  ret = 0;
out:
  json_decref(r);
  conns_teardown(&s);
  sim_mqtt_stop(s.mqtt);
  free(s.push_devs);
  for(i = 0; i < s.n_devs; i++) {
    free(s.devs[i].token);
    free(s.devs[i].req);
    free(s.devs[i].mqtt_password);
    free(s.devs[i].mqtt_topic);
  }
  free(s.devs);
  for(i = 0; i < s.n_etokens; i++)
    free(s.etokens[i]);
  free(s.etokens);
  free(s.tl);
  bench_samples_release(&s.lat);
  bench_samples_release(&s.svc);
  bench_samples_release(&s.ack_lat);
  bench_samples_release(&s.wake_lat);
  free(s.fq);
  free(s.bulk_ids);
  free(s.bulk_acked);
  free(s.o.admin_token);
  curl_global_cleanup();
  return ret;
}
