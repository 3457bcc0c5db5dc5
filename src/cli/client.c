/*
 * client.c: mdmctl's HTTP client (see client.h).  Every request goes through
 * cli_client_call(), which owns the libcurl settings (bounds, timeouts,
 * headers) and turns every failure into one line on stderr: the transport's
 * reason, or the problem+json title and detail the server sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "cli/cli.h"
#include "cli/client.h"

#define MAX_URL 8192

struct cli_client {
  CURL *curl;
  char *base;          /* server URL without trailing '/'; has no userinfo */
  char *auth;          /* "Authorization: Bearer ..." */
  char *ca_file;
  int is_toobig;       /* the response outgrew CLI_MAX_RESPONSE */
  char errbuf[CURL_ERROR_SIZE];
};

/* ---- small helpers ------------------------------------------------------ */

char *cli_sanitize(const char *s, char *out, size_t n)
{
  size_t i = 0;
  if(!n)
    return out;
  for(; s && *s && i + 1 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    out[i++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
  }
  out[i] = '\0';
  if(s && *s && n > 4)
    memcpy(out + n - 4, "...", 4);
  return out;
}

static mdm_rc pct_encode(struct mdm_buf *b, const char *s)
{
  static const char hx[] = "0123456789ABCDEF";
  for(; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    mdm_rc rc;
    if((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
       ch == '~')
      rc = mdm_buf_append(b, s, 1);
    else {
      char e[3] = {'%', hx[ch >> 4], hx[ch & 15]};
      rc = mdm_buf_append(b, e, 3);
    }
    if(rc)
      return rc;
  }
  return MDM_OK;
}

mdm_rc cli_query_add(struct mdm_buf *b, const char *name, const char *value)
{
  mdm_rc rc = mdm_buf_puts(b, b->data && strchr(b->data, '?') ? "&" : "?");
  if(!rc)
    rc = pct_encode(b, name);
  if(!rc)
    rc = mdm_buf_puts(b, "=");
  if(!rc)
    rc = pct_encode(b, value);
  return rc;
}

mdm_rc cli_path_add(struct mdm_buf *b, const char *s)
{
  return pct_encode(b, s);
}

static const char *reason_phrase(long status)
{
  switch(status) {
  case 301: return "moved permanently";
  case 302: return "found";
  case 303: return "see other";
  case 307: return "temporary redirect";
  case 308: return "permanent redirect";
  case 400: return "bad request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not found";
  case 405: return "method not allowed";
  case 409: return "conflict";
  case 413: return "content too large";
  case 415: return "unsupported media type";
  case 422: return "unprocessable content";
  case 429: return "too many requests";
  case 500: return "internal server error";
  case 502: return "bad gateway";
  case 503: return "service unavailable";
  case 504: return "gateway timeout";
  default: return "unexpected status";
  }
}

static mdm_rc status_rc(long status)
{
  switch(status) {
  case 400: return MDM_ERR_INVAL;
  case 401: return MDM_ERR_AUTH;
  case 403: return MDM_ERR_FORBIDDEN;
  case 404: return MDM_ERR_NOTFOUND;
  case 405: return MDM_ERR_METHOD;
  case 409: return MDM_ERR_CONFLICT;
  case 413: return MDM_ERR_TOOBIG;
  case 415: return MDM_ERR_UNSUPPORTED;
  case 422: return MDM_ERR_UNPROCESSABLE;
  case 429: case 503: return MDM_ERR_BUSY;
  default: return status >= 500 ? MDM_ERR_INTERNAL : MDM_ERR_IO;
  }
}

/* ---- lifecycle ---------------------------------------------------------- */

mdm_rc cli_client_new(const struct cli_conf *conf, struct cli_client **out,
                      char *err, size_t err_len)
{
  struct cli_client *c = NULL;
  struct mdm_buf b;
  const char *s = conf->server, *host;
  size_t n;
  mdm_rc rc = MDM_ERR_NOMEM;
  char shown[256];

  mdm_buf_init(&b, MAX_URL);
  snprintf(err, err_len, "out of memory");
  cli_sanitize(s, shown, sizeof(shown));
  if(!strncasecmp(s, "http://", 7))
    host = s + 7;
  else if(!strncasecmp(s, "https://", 8))
    host = s + 8;
  else {
    snprintf(err, err_len, "invalid server URL '%s': expected http://HOST[:PORT] "
             "or https://HOST[:PORT]", shown);
    return MDM_ERR_INVAL;
  }
  n = strcspn(host, "/");
  if(n == 0 || strcspn(s, "?# \t\r\n") != strlen(s)) {
    snprintf(err, err_len, "invalid server URL '%s'", shown);
    return MDM_ERR_INVAL;
  }
  if(memchr(host, '@', n)) {
    snprintf(err, err_len, "invalid server URL '%s': a user name or password "
             "does not belong in it; use a token", shown);
    return MDM_ERR_INVAL;
  }
  if(!conf->token) {
    snprintf(err, err_len, "no API token");
    return MDM_ERR_AUTH;
  }

  if(conf->ca_file) {
    FILE *f = fopen(conf->ca_file, "r");
    if(!f) {
      char p[512];
      snprintf(err, err_len, "cannot read CA file '%s': %s",
               cli_sanitize(conf->ca_file, p, sizeof(p)), strerror(errno));
      return MDM_ERR_IO;
    }
    fclose(f);
  }

  c = calloc(1, sizeof(*c));
  if(!c)
    goto fail;
  c->base = strdup(s);
  if(!c->base)
    goto fail;
  n = strlen(c->base);
  while(n > 0 && c->base[n - 1] == '/')
    c->base[--n] = '\0';
  if(mdm_buf_printf(&b, "Authorization: Bearer %s", conf->token))
    goto fail;
  c->auth = mdm_buf_steal(&b);
  if(conf->ca_file) {
    c->ca_file = strdup(conf->ca_file);
    if(!c->ca_file)
      goto fail;
  }
  c->curl = curl_easy_init();
  if(!c->curl) {
    snprintf(err, err_len, "cannot initialise libcurl");
    rc = MDM_ERR_INTERNAL;
    goto fail;
  }
  *out = c;
  return MDM_OK;
fail:
  mdm_buf_release(&b);
  cli_client_free(c);
  return rc;
}

void cli_client_free(struct cli_client *c)
{
  if(!c)
    return;
  if(c->curl)
    curl_easy_cleanup(c->curl);
  if(c->auth) {
    volatile char *p = c->auth;
    while(*p)
      *p++ = '\0';
    free(c->auth);
  }
  free(c->base);
  free(c->ca_file);
  free(c);
}

/* ---- requests ----------------------------------------------------------- */

struct sink {
  struct cli_client *c;
  struct mdm_buf *buf;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *userdata)
{
  struct sink *s = userdata;
  size_t n = size * nmemb;
  mdm_rc rc = mdm_buf_append(s->buf, p, n);
  if(rc) {
    s->c->is_toobig = rc == MDM_ERR_TOOBIG;
    return 0;   /* makes libcurl stop with CURLE_WRITE_ERROR */
  }
  return n;
}

/* Is this a failure to reach the server at all (rather than during the
 * exchange)? */
static int is_connect_error(CURLcode res)
{
  switch(res) {
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_UNSUPPORTED_PROTOCOL:
    return 1;
  default:
    return 0;
  }
}

/* Print the one line for a transport failure. */
static void report_transport(struct cli_client *c, const char *method,
                             const char *path, CURLcode res)
{
  char why[512], where[256], what[512];
  long oserr = 0;

  cli_sanitize(c->base, where, sizeof(where));
  cli_sanitize(path, what, sizeof(what));
  if(c->is_toobig) {
    cli_error("%s %s: the response is larger than %u MiB", method, what,
              CLI_MAX_RESPONSE / (1024 * 1024));
    return;
  }
  curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
  if(res == CURLE_COULDNT_CONNECT && oserr)
    cli_sanitize(strerror((int)oserr), why, sizeof(why));
  else
    cli_sanitize(c->errbuf[0] ? c->errbuf : curl_easy_strerror(res), why,
                 sizeof(why));
  if(res == CURLE_OPERATION_TIMEDOUT)
    cli_error("%s %s: no complete answer from %s within %ld s", method, what,
              where, CLI_TOTAL_TIMEOUT_S);
  else if(is_connect_error(res))
    cli_error("cannot connect to %s: %s", where, why);
  else
    cli_error("%s %s: %s", method, what, why);
}

/* Print the one line for a non-2xx answer, using the problem+json body when
 * there is one. */
static void report_status(struct cli_client *c, const char *method,
                          const char *path, long status, const json_t *pb)
{
  const char *title = NULL, *detail = NULL;
  char t[256], d[1024], what[512];

  cli_sanitize(path, what, sizeof(what));
  if(json_is_object(pb)) {
    title = json_string_value(json_object_get(pb, "title"));
    detail = json_string_value(json_object_get(pb, "detail"));
  }
  cli_sanitize(title && *title ? title : reason_phrase(status), t, sizeof(t));
  if(status >= 300 && status < 400) {
    char *loc = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &loc);
    cli_sanitize(loc ? loc : "?", d, sizeof(d));
    cli_error("%s %s: %ld %s to '%s' (not followed; check --server)", method,
              what, status, t, d);
  }
  else if(detail && *detail)
    cli_error("%s %s: %ld %s: %s", method, what, status, t,
              cli_sanitize(detail, d, sizeof(d)));
  else
    cli_error("%s %s: %ld %s", method, what, status, t);
}

/* cli_client_call() naming the request as shown in messages (the path
 * without the paging parameters a list adds). */
static mdm_rc call_as(struct cli_client *c, const char *method,
                      const char *path, const char *shown,
                      const json_t *body, unsigned flags, long *status,
                      json_t **out);

mdm_rc cli_client_call(struct cli_client *c, const char *method,
                       const char *path, const json_t *body, unsigned flags,
                       long *status, json_t **out)
{
  return call_as(c, method, path, path, body, flags, status, out);
}

static mdm_rc call_as(struct cli_client *c, const char *method,
                      const char *path, const char *shown,
                      const json_t *body, unsigned flags, long *status,
                      json_t **out)
{
  struct mdm_buf url, resp;
  struct sink sink;
  struct curl_slist *hdrs = NULL, *h;
  char *req = NULL;
  json_t *parsed = NULL;
  json_error_t jerr;
  CURLcode res;
  long code = 0;
  mdm_rc rc = MDM_OK;
  CURL *k = c->curl;

  *out = NULL;
  mdm_buf_init(&url, MAX_URL);
  mdm_buf_init(&resp, CLI_MAX_RESPONSE);
  if(mdm_buf_puts(&url, c->base) || mdm_buf_puts(&url, path)) {
    cli_error("%s %s: the URL is too long", method, shown);
    rc = MDM_ERR_TOOBIG;
    goto out;
  }
  if(body) {
    req = json_dumps(body, JSON_COMPACT);
    if(!req) {
      rc = MDM_ERR_NOMEM;
      cli_error("out of memory");
      goto out;
    }
  }

  /* Headers: a NULL from curl_slist_append leaves the list as it was. */
  h = curl_slist_append(hdrs, "Accept: application/json");
  if(h) hdrs = h;
  h = h ? curl_slist_append(hdrs, c->auth) : NULL;
  if(h) hdrs = h;
  h = h ? curl_slist_append(hdrs, "Expect:") : NULL;   /* no 100-continue */
  if(h) hdrs = h;
  if(h && body)
    h = curl_slist_append(hdrs, "Content-Type: application/json");
  if(!h) {
    rc = MDM_ERR_NOMEM;
    cli_error("out of memory");
    goto out;
  }
  hdrs = h;

  c->is_toobig = 0;
  c->errbuf[0] = '\0';
  sink.c = c;
  sink.buf = &resp;
  curl_easy_reset(k);
  curl_easy_setopt(k, CURLOPT_URL, url.data);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(k, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
  curl_easy_setopt(k, CURLOPT_TIMEOUT, CLI_TOTAL_TIMEOUT_S);
  curl_easy_setopt(k, CURLOPT_USERAGENT, "mdmctl/" MDM_VERSION);
  curl_easy_setopt(k, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(k, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(k, CURLOPT_HTTPHEADER, hdrs);
  if(c->ca_file)
    curl_easy_setopt(k, CURLOPT_CAINFO, c->ca_file);
  if(!strcmp(method, "GET"))
    curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
  else {
    if(strcmp(method, "POST"))
      curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
    if(req || !strcmp(method, "POST")) {
      curl_easy_setopt(k, CURLOPT_POSTFIELDS, req ? req : "");
      curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)(req ? strlen(req) : 0));
    }
  }

  res = curl_easy_perform(k);
  if(res != CURLE_OK) {
    report_transport(c, method, shown, res);
    rc = c->is_toobig ? MDM_ERR_TOOBIG : MDM_ERR_IO;
    goto out;
  }
  curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &code);
  if(status)
    *status = code;

  if(resp.len > 0)
    parsed = json_loadb(resp.data, resp.len, JSON_DECODE_ANY, &jerr);
  if(code >= 200 && code < 300) {
    if(resp.len > 0 && !parsed) {
      char t[160], what[512];
      cli_error("%s %s: the server sent invalid JSON: %s",
                method, cli_sanitize(shown, what, sizeof(what)),
                cli_sanitize(jerr.text, t, sizeof(t)));
      rc = MDM_ERR_INVAL;
      goto out;
    }
    *out = parsed;
    parsed = NULL;
  }
  else if(flags & CLI_HTTP_NOFAIL) {
    *out = parsed;
    parsed = NULL;
  }
  else {
    report_status(c, method, shown, code, parsed);
    rc = status_rc(code);
  }

out:
  json_decref(parsed);
  curl_slist_free_all(hdrs);
  free(req);
  mdm_buf_release(&url);
  mdm_buf_release(&resp);
  return rc;
}

mdm_rc cli_client_list(struct cli_client *c, const char *path, size_t max,
                       json_t **items)
{
  json_t *all = json_array(), *page = NULL;
  char *cursor = NULL;
  struct mdm_buf q;
  mdm_rc rc = MDM_OK;
  char what[512];

  *items = NULL;
  mdm_buf_init(&q, MAX_URL);
  if(!all) {
    cli_error("out of memory");
    return MDM_ERR_NOMEM;
  }
  cli_sanitize(path, what, sizeof(what));
  for(;;) {
    size_t want = CLI_PAGE_SIZE, got = json_array_size(all), i;
    json_t *arr, *nc;
    char num[32];

    if(max && max - got < want)
      want = max - got;
    snprintf(num, sizeof(num), "%zu", want);
    mdm_buf_reset(&q);
    if(mdm_buf_puts(&q, path) || cli_query_add(&q, "limit", num) ||
       (cursor && cli_query_add(&q, "cursor", cursor))) {
      cli_error("GET %s: the URL is too long", what);
      rc = MDM_ERR_TOOBIG;
      goto out;
    }
    rc = call_as(c, "GET", q.data, path, NULL, 0, NULL, &page);
    if(rc)
      goto out;
    arr = json_object_get(page, "items");
    nc = json_object_get(page, "next_cursor");
    if(!json_is_array(arr) || (nc && !json_is_null(nc) && !json_is_string(nc))) {
      cli_error("GET %s: unexpected answer: expected {\"items\": [...], "
                "\"next_cursor\": ...}", what);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    for(i = 0; i < json_array_size(arr) && (!max || got < max); i++, got++)
      if(json_array_append(all, json_array_get(arr, i))) {
        cli_error("out of memory");
        rc = MDM_ERR_NOMEM;
        goto out;
      }
    if(!json_is_string(nc) || (max && got >= max))
      break;
    if(cursor && !strcmp(cursor, json_string_value(nc))) {
      cli_error("GET %s: the server returned the same cursor twice", what);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    free(cursor);
    cursor = strdup(json_string_value(nc));
    if(!cursor) {
      cli_error("out of memory");
      rc = MDM_ERR_NOMEM;
      goto out;
    }
    json_decref(page);
    page = NULL;
  }
  *items = all;
  all = NULL;
out:
  json_decref(page);
  json_decref(all);
  free(cursor);
  mdm_buf_release(&q);
  return rc;
}
