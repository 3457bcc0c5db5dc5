/*
 * http.c: mdmd's HTTP layer on libmicrohttpd.  It reads each request's
 * body into a bounded buffer (MDM_MAX_BODY; a larger declared or actual body
 * is answered 413 without being read), finds the route, authenticates,
 * calls the handler and writes its answer, or an RFC 9457 problem+json when
 * the handler failed.  One thread per connection: handlers may block on
 * the store's group commit without stalling other connections.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <microhttpd.h>
#include "core/log.h"
#include "core/util.h"
#include "server/http.h"
#include "server/tls.h"
#include "server/api.h"
#include "server/metrics.h"
#include "server/router.h"

/* ---- helpers for handlers --------------------------------------------- */

const char *mdm_req_query(struct mdm_req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_all_ctx {
  const char *name;
  const char **vals;
  int n, max;
};

static enum MHD_Result query_all_cb(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
  struct query_all_ctx *x = cls;
  (void)kind;
  if(key && !strcmp(key, x->name)) {
    if(x->n < x->max)
      x->vals[x->n] = value ? value : "";
    x->n++;
  }
  return MHD_YES;
}

int mdm_req_query_all(struct mdm_req *r, const char *name, const char **vals,
                      int max)
{
  struct query_all_ctx x = {name, vals, 0, max};
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_all_cb, &x);
  return x.n;
}

const char *mdm_req_header(struct mdm_req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

mdm_rc mdm_req_fail(struct mdm_req *r, mdm_rc rc, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->problem_detail, sizeof(r->problem_detail), fmt, ap);
  va_end(ap);
  return rc;
}

mdm_rc mdm_req_reply_json(struct mdm_req *r, int status, json_t *v)
{
  char *s;
  if(!v)
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  if(!s)
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  free(r->resp_body);
  r->resp_body = s;
  r->resp_len = strlen(s);
  r->resp_type = "application/json";
  r->status = status;
  return MDM_OK;
}

int mdm_req_add_header(struct mdm_req *r, const char *name,
                       const char *value)
{
  for(int i = 0; i < 2; i++)
    if(!r->hdr_name[i][0]) {
      if(mdm_strlcpy(r->hdr_name[i], name, sizeof(r->hdr_name[i])) ||
         mdm_strlcpy(r->hdr_value[i], value, sizeof(r->hdr_value[i]))) {
        r->hdr_name[i][0] = '\0';
        return -1;
      }
      return 0;
    }
  return -1;
}

mdm_rc mdm_req_reply_empty(struct mdm_req *r, int status)
{
  free(r->resp_body);
  r->resp_body = NULL;
  r->resp_len = 0;
  r->resp_type = NULL;
  r->status = status;
  return MDM_OK;
}

/* Close a file answer the HTTP layer did not take. */
static void drop_file(struct mdm_req *r)
{
  if(r->has_resp_fd) {
    close(r->resp_fd);
    r->has_resp_fd = 0;
  }
}

mdm_rc mdm_req_reply_file(struct mdm_req *r, int status, const char *type,
                          int fd, uint64_t len, const char *disposition)
{
  drop_file(r);
  if(disposition &&
     mdm_strlcpy(r->disposition, disposition, sizeof(r->disposition))) {
    close(fd);
    return mdm_req_fail(r, MDM_ERR_INTERNAL, "Content-Disposition too long");
  }
  free(r->resp_body);
  r->resp_body = NULL;
  r->resp_len = 0;
  r->has_resp_fd = 1;
  r->resp_fd = fd;
  r->resp_fd_len = len;
  r->resp_type = type;
  r->status = status;
  return MDM_OK;
}

mdm_rc mdm_req_reply_list(struct mdm_req *r, json_t *items,
                          const char *next_cursor)
{
  json_t *o = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                        next_cursor ? json_string(next_cursor) : json_null());
  return mdm_req_reply_json(r, 200, o);
}

mdm_rc mdm_req_limit(struct mdm_req *r, int *limit)
{
  const char *s = mdm_req_query(r, "limit");
  long long v = 100;
  if(s && mdm_parse_int(s, 1, 1000, &v))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "query 'limit': expected an integer in 1..1000");
  *limit = (int)v;
  return MDM_OK;
}

static int is_json_type(const char *ct)
{
  size_t n = strlen("application/json");
  if(!ct || strncasecmp(ct, "application/json", n))
    return 0;
  ct += n;
  while(*ct == ' ')
    ct++;
  return *ct == '\0' || *ct == ';';
}

int mdm_req_is_json(struct mdm_req *r)
{
  return is_json_type(mdm_req_header(r, "Content-Type"));
}

mdm_rc mdm_req_json_body(struct mdm_req *r, const char *const *allowed,
                         json_t **out)
{
  json_error_t err;
  json_t *v;
  const char *key;
  json_t *val;

  if(!is_json_type(mdm_req_header(r, "Content-Type")))
    return mdm_req_fail(r, MDM_ERR_UNSUPPORTED,
                        "Content-Type must be application/json");
  if(!r->body.len)
    return mdm_req_fail(r, MDM_ERR_INVAL, "request body is empty");
  v = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &err);
  if(!v)
    return mdm_req_fail(r, MDM_ERR_INVAL, "malformed JSON at line %d column %d: %s",
                        err.line, err.column, err.text);
  if(!json_is_object(v)) {
    json_decref(v);
    return mdm_req_fail(r, MDM_ERR_INVAL, "request body must be a JSON object");
  }
  if(allowed) {
    json_object_foreach(v, key, val) {
      const char *const *a;
      int is_known = 0;
      for(a = allowed; *a; a++)
        if(!strcmp(*a, key)) {
          is_known = 1;
          break;
        }
      if(!is_known) {
        mdm_req_fail(r, MDM_ERR_INVAL, "unknown field '%.100s'", key);
        json_decref(v);
        return MDM_ERR_INVAL;
      }
    }
  }
  *out = v;
  return MDM_OK;
}

/* ---- answers ---------------------------------------------------------- */

static const char *problem_slug(int status)
{
  switch(status) {
  case 400: return "invalid-request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not-found";
  case 405: return "method-not-allowed";
  case 409: return "conflict";
  case 413: return "payload-too-large";
  case 415: return "unsupported-media-type";
  case 422: return "invalid-document";
  case 429: return "rate-limited";
  case 503: return "unavailable";
  default: return "internal-error";
  }
}

static const char *status_title(int status)
{
  switch(status) {
  case 400: return "invalid request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not found";
  case 405: return "method not allowed";
  case 409: return "conflict";
  case 413: return "payload too large";
  case 415: return "unsupported media type";
  case 422: return "invalid document";
  case 429: return "too many requests";
  case 503: return "service unavailable";
  default: return "internal server error";
  }
}

static void set_problem(struct mdm_req *r, mdm_rc rc)
{
  int status = mdm_rc_http_status(rc);
  char type[96];
  json_t *o;

  drop_file(r);
  r->disposition[0] = '\0';
  if(rc == MDM_ERR_STORE)
    mdm_metrics_inc(MDM_M_STORE_ERRORS);

  if(status >= 500 && rc != MDM_ERR_BUSY) {
    /* Never leak internals; the log has the detail. */
    mdm_error("%s %s: %s: %s", r->method, r->path, mdm_strerror(rc),
              r->problem_detail[0] ? r->problem_detail : "-");
    mdm_strlcpy(r->problem_detail, "the server failed; see its log",
                sizeof(r->problem_detail));
  }
  snprintf(type, sizeof(type), "https://mdm.dev/problems/%s",
           problem_slug(status));
  o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title",
                status_title(status), "status", status, "detail",
                r->problem_detail[0] ? r->problem_detail : mdm_strerror(rc));
  free(r->resp_body);
  r->resp_body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  r->resp_len = r->resp_body ? strlen(r->resp_body) : 0;
  r->resp_type = "application/problem+json";
  r->status = status;
}

static enum MHD_Result send_answer(struct mdm_req *r)
{
  struct MHD_Response *resp;
  enum MHD_Result ret;

  if(r->has_resp_fd) {
    /* MHD closes the file when it is done with the response. */
    resp = MHD_create_response_from_fd64(r->resp_fd_len, r->resp_fd);
    if(resp)
      r->has_resp_fd = 0;
  }
  else
    resp = MHD_create_response_from_buffer(r->resp_len,
                                           r->resp_body ? r->resp_body : "",
                                           MHD_RESPMEM_MUST_COPY);
  if(!resp)
    return MHD_NO;
  if(r->disposition[0])
    MHD_add_response_header(resp, "Content-Disposition", r->disposition);
  if(r->resp_type)
    MHD_add_response_header(resp, "Content-Type", r->resp_type);
  if(r->etag[0])
    MHD_add_response_header(resp, "ETag", r->etag);
  for(int i = 0; i < 2; i++)
    if(r->hdr_name[i][0])
      MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
  if(r->location[0])
    MHD_add_response_header(resp, "Location", r->location);
  if(r->status == 401)
    MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
  if(r->status == 405) {
    char allow[128];
    mdm_route_allow(r->path, allow, sizeof(allow));
    MHD_add_response_header(resp, "Allow", allow);
  }
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if(atomic_load(&r->srv->is_draining))
    MHD_add_response_header(resp, "Connection", "close");
  ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ---- the request cycle ------------------------------------------------ */

static void dispatch(struct mdm_req *r)
{
  const struct mdm_route *route = NULL;
  mdm_rc rc;

  rc = mdm_route_match(r->method, r->path, r, &route);
  if(rc == MDM_ERR_NOTFOUND) {
    mdm_req_fail(r, rc, "no such endpoint: %.200s", r->path);
    goto fail;
  }
  if(rc == MDM_ERR_METHOD) {
    r->route = route;
    mdm_req_fail(r, rc, "method %s not allowed on %.200s", r->method, r->path);
    goto fail;
  }
  r->route = route;
  rc = mdm_auth_check(r);
  if(rc)
    goto fail;
  if(r->is_body_too_big) {
    rc = mdm_req_fail(r, MDM_ERR_TOOBIG, "request body exceeds %d bytes",
                      MDM_MAX_BODY);
    goto fail;
  }
  rc = route->handler(r);
  if(rc)
    goto fail;
  return;
fail:
  set_problem(r, rc);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  struct mdm_server *srv = cls;
  struct mdm_req *r = *con_cls;
  enum MHD_Result ret;
  (void)version;

  if(!r) {
    const char *cl;
    r = calloc(1, sizeof(*r));
    if(!r)
      return MHD_NO;
    r->srv = srv;
    r->conn = conn;
    r->method = method;
    r->path = url;
    r->started_ns = mdm_mono_ns();
    mdm_buf_init(&r->body, MDM_MAX_BODY);
    *con_cls = r;
    atomic_fetch_add(&srv->in_flight, 1);
    /* A declared body over the bound is refused before it is read. */
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if(cl) {
      long long n;
      if(mdm_parse_int(cl, 0, (long long)1 << 62, &n) == MDM_OK &&
         n > MDM_MAX_BODY) {
        r->is_body_too_big = 1;
        mdm_req_fail(r, MDM_ERR_TOOBIG, "request body exceeds %d bytes",
                     MDM_MAX_BODY);
        set_problem(r, MDM_ERR_TOOBIG);
        return send_answer(r);
      }
    }
    return MHD_YES;
  }
  if(*upload_data_size) {
    if(!r->is_body_too_big &&
       mdm_buf_append(&r->body, upload_data, *upload_data_size))
      r->is_body_too_big = 1;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if(r->status)  /* already answered (413 up front) */
    return MHD_YES;
  dispatch(r);
  ret = send_answer(r);
  if(r->status >= 500)
    mdm_warn("%s %s -> %d", r->method, r->path, r->status);
  else
    mdm_debug("%s %s -> %d (%lld us)", r->method, r->path, r->status,
              (long long)((mdm_mono_ns() - r->started_ns) / 1000));
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
  struct mdm_server *srv = cls;
  struct mdm_req *r = *con_cls;
  (void)conn;
  (void)toe;
  if(!r)
    return;
  if(r->status) {
    mdm_metrics_http(r->route ? (int)(r->route - mdm_routes) : -1, r->status,
                     mdm_mono_ns() - r->started_ns);
    /* The domain counters are counted by what was answered. */
    if(r->route && r->route->handler == mdm_api_agent_checkin &&
       r->status == 200)
      mdm_metrics_inc(MDM_M_CHECKINS);
    else if(r->route && r->route->handler == mdm_api_enroll &&
            (r->status == 201 || r->status == 401 || r->status == 409))
      mdm_metrics_inc(r->status == 201 ? MDM_M_ENROLLMENTS
                                       : MDM_M_ENROLL_REFUSED);
  }
  mdm_buf_release(&r->body);
  free(r->resp_body);
  drop_file(r);
  free(r);
  *con_cls = NULL;
  atomic_fetch_sub(&srv->in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512];
  size_t n;
  (void)cls;
  vsnprintf(msg, sizeof(msg), fmt, ap);
  n = strlen(msg);
  while(n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  mdm_debug("http: %s", msg);
}

/* ---- start and stop --------------------------------------------------- */

static mdm_rc parse_listen(const char *listen, struct sockaddr_storage *ss,
                           int *is_v6)
{
  char host[256], port[16];
  const char *colon;
  struct addrinfo hints, *res = NULL;
  size_t hlen;

  if(listen[0] == '[') {
    const char *end = strchr(listen, ']');
    if(!end || end[1] != ':')
      return MDM_ERR_INVAL;
    hlen = (size_t)(end - listen - 1);
    if(hlen >= sizeof(host))
      return MDM_ERR_INVAL;
    memcpy(host, listen + 1, hlen);
    host[hlen] = '\0';
    colon = end + 1;
  }
  else {
    colon = strrchr(listen, ':');
    if(!colon)
      return MDM_ERR_INVAL;
    hlen = (size_t)(colon - listen);
    if(hlen >= sizeof(host))
      return MDM_ERR_INVAL;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
  }
  if(mdm_strlcpy(port, colon + 1, sizeof(port)) || !port[0])
    return MDM_ERR_INVAL;
  {
    long long p;
    if(mdm_parse_int(port, 0, 65535, &p))
      return MDM_ERR_INVAL;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  if(getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || !res)
    return MDM_ERR_INVAL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *is_v6 = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  return MDM_OK;
}

/* TLS 1.2 and 1.3 only, GnuTLS's default suites otherwise. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

mdm_rc mdm_http_start(struct mdm_server *srv)
{
  struct sockaddr_storage ss;
  int is_v6 = 0;
  unsigned flags;
  const union MHD_DaemonInfo *info;

  memset(&ss, 0, sizeof(ss));
  if(parse_listen(srv->cfg.listen, &ss, &is_v6)) {
    mdm_error("invalid listen address '%s' (expected HOST:PORT)",
              srv->cfg.listen);
    return MDM_ERR_INVAL;
  }
  /* poll(), not select(): select() cannot watch a descriptor past
   * FD_SETSIZE (1024), so connection 1,000 or so was reset however high
   * --max-connections was. */
  flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
          MHD_USE_ERROR_LOG | MHD_USE_ITC;
  if(is_v6)
    flags |= MHD_USE_IPv6;
  {
    struct MHD_OptionItem tls[] = {
      {MHD_OPTION_HTTPS_MEM_CERT, 0, NULL},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, NULL},
      /* Asks for a client certificate without requiring one (tls.h). */
      {MHD_OPTION_HTTPS_MEM_TRUST, 0, NULL},
      {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
      {MHD_OPTION_END, 0, NULL},
    };
    if(srv->tls) {
      flags |= MHD_USE_TLS;
      tls[0].ptr_value = srv->tls->cert_pem;
      tls[1].ptr_value = srv->tls->key_pem;
      tls[2].ptr_value = srv->tls->trust_pem;
    }
    else
      tls[0].option = MHD_OPTION_END;
    srv->httpd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, srv,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_ARRAY, tls,
      MHD_OPTION_END);
  }
  if(!srv->httpd) {
    mdm_error("cannot listen on %s%s", srv->cfg.listen,
              srv->tls ? " (or GnuTLS refused the certificate or key)" : "");
    return MDM_ERR_IO;
  }
  info = MHD_get_daemon_info(srv->httpd, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : 0;
  return MDM_OK;
}

void mdm_http_stop(struct mdm_server *srv, int timeout_ms)
{
  int64_t deadline = mdm_mono_ns() + (int64_t)timeout_ms * 1000000;
  MHD_socket s;

  if(!srv->httpd)
    return;
  atomic_store(&srv->is_draining, 1);
  s = MHD_quiesce_daemon(srv->httpd);
  if(s != MHD_INVALID_SOCKET)
    close(s);
  /* Requests in flight finish; idle keep-alive connections do not count. */
  while(atomic_load(&srv->in_flight) > 0 && mdm_mono_ns() < deadline) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  MHD_stop_daemon(srv->httpd);
  srv->httpd = NULL;
}
