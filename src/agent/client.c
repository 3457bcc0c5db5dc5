/*
 * client.c: JSON over HTTP(S) to the mdm server with one reused libcurl easy
 * handle (see client.h).  Redirects are not followed (a device token must not
 * travel to another host), only http and https are spoken, answers are capped
 * at MDM_CLIENT_MAX_BODY, and the Authorization header never reaches a log.
 * Over https the peer is always verified against the one CA the client was
 * given, and the device certificate goes with every request it is set for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "agent/client.h"
#include "core/buf.h"
#include "core/log.h"

#define PROBE_CHAIN_MAX (64 * 1024)
#define PROBE_TIMEOUT_MS 10000
#define PROBE_CA_MAX (16 * 1024)       /* GET /v1/server-ca.pem, at most */

struct mdm_client {
  CURL *h;
  char *base;                         /* server URL without trailing '/' */
  struct mdm_buf body;                /* the answer being received */
  int is_toobig;
  const volatile sig_atomic_t *abort_flag;
  char errbuf[CURL_ERROR_SIZE];
  int is_https;
  int has_ca;                         /* a CA to trust was given */
  char *ca_file;
  char *cert_file, *key_file;         /* the device's identity, or NULL */
  int is_cert_off;                    /* refused by the server: token only */
  int is_cert_refused;                /* not yet read by the agent */
  int is_fresh;                       /* next request: a new connection */
};

int mdm_client_url_ok(const char *s)
{
  size_t skip, i;
  if(!s)
    return 0;
  if(!strncasecmp(s, "http://", 7))
    skip = 7;
  else if(!strncasecmp(s, "https://", 8))
    skip = 8;
  else
    return 0;
  if(!s[skip] || s[skip] == '/')
    return 0;
  for(i = 0; s[i]; i++)
    if((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
      return 0;
  return i <= 2048;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
  struct mdm_client *c = ud;
  size_t n = size * nmemb;
  if(mdm_buf_append(&c->body, p, n)) {
    c->is_toobig = 1;
    return 0;   /* makes curl fail with CURLE_WRITE_ERROR */
  }
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
  struct mdm_client *c = ud;
  return c->abort_flag && *c->abort_flag ? 1 : 0;
}

mdm_rc mdm_client_new(const char *server, const char *ca_file,
                      struct mdm_client **out)
{
  struct mdm_client *c;
  size_t len;
  char ua[64];

  *out = NULL;
  if(!mdm_client_url_ok(server))
    return MDM_ERR_INVAL;
  c = calloc(1, sizeof(*c));
  if(!c)
    return MDM_ERR_NOMEM;
  mdm_buf_init(&c->body, MDM_CLIENT_MAX_BODY);
  c->base = strdup(server);
  c->h = curl_easy_init();
  if(!c->base || !c->h) {
    mdm_client_free(c);
    return MDM_ERR_NOMEM;
  }
  len = strlen(c->base);
  while(len && c->base[len - 1] == '/')
    c->base[--len] = '\0';

  snprintf(ua, sizeof(ua), "mdm-agent/%s", MDM_VERSION);
  curl_easy_setopt(c->h, CURLOPT_USERAGENT, ua);   /* curl copies strings */
  curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)MDM_CLIENT_CONNECT_TIMEOUT_MS);
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)MDM_CLIENT_TIMEOUT_MS);
  curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c->h, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)MDM_CLIENT_MAX_BODY);
  curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(c->h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c->h, CURLOPT_XFERINFODATA, c);
  curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
  /* One server, one connection: a new one (after the certificate changed)
   * closes the old one instead of keeping it for reuse. */
  curl_easy_setopt(c->h, CURLOPT_MAXCONNECTS, 1L);
  c->is_https = !strncasecmp(server, "https://", 8);
  if(ca_file) {
    c->ca_file = strdup(ca_file);
    if(!c->ca_file) {
      mdm_client_free(c);
      return MDM_ERR_NOMEM;
    }
    c->has_ca = 1;
  }
  mdm_client_tls_setup(c->h, c->ca_file, NULL, NULL);
  *out = c;
  return MDM_OK;
}

void mdm_client_free(struct mdm_client *c)
{
  if(!c)
    return;
  if(c->h)
    curl_easy_cleanup(c->h);
  mdm_buf_release(&c->body);
  free(c->base);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c);
}

void mdm_client_tls_setup(CURL *h, const char *ca_file,
                          const char *cert_file, const char *key_file)
{
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  /* Setting both replaces libcurl's built-in bundle and directory (the
   * system store).  OpenSSL's default paths, where SSL_CERT_FILE and
   * SSL_CERT_DIR are read, are only a fallback of libcurls built with
   * --with-ca-fallback for a handle given no CA at all; the client sends
   * nothing over https without one (client_request). */
  curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
  curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
  /* A resumed session keeps the client certificate of the first one: after
   * a renewal that one is revoked. */
  curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  curl_easy_setopt(h, CURLOPT_SSLCERT, cert_file);
  curl_easy_setopt(h, CURLOPT_SSLKEY, key_file);
  if(cert_file) {
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
}

mdm_rc mdm_client_trust_pem(struct mdm_client *c, const char *pem)
{
  struct curl_blob blob;
  blob.data = (void *)pem;
  blob.len = strlen(pem);
  blob.flags = CURL_BLOB_COPY;
  /* The blob takes the place of CURLOPT_CAINFO; CAPATH stays unset. */
  if(curl_easy_setopt(c->h, CURLOPT_CAINFO_BLOB, &blob) != CURLE_OK)
    return MDM_ERR_NOMEM;
  c->has_ca = 1;
  c->is_fresh = 1;
  return MDM_OK;
}

/* What the handle presents now: the identity unless refused, only over
 * https (a certificate is of no use in clear text). */
static void identity_apply(struct mdm_client *c)
{
  int is_on = c->is_https && c->cert_file && !c->is_cert_off;
  curl_easy_setopt(c->h, CURLOPT_SSLCERT, is_on ? c->cert_file : NULL);
  curl_easy_setopt(c->h, CURLOPT_SSLKEY, is_on ? c->key_file : NULL);
  if(is_on) {
    curl_easy_setopt(c->h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c->h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  /* libcurl would reuse a connection (or find it fit) whatever the file
   * behind the same path now holds. */
  c->is_fresh = 1;
}

mdm_rc mdm_client_set_identity(struct mdm_client *c, const char *cert_file,
                               const char *key_file)
{
  char *cf = NULL, *kf = NULL;
  if(cert_file && key_file) {
    cf = strdup(cert_file);
    kf = strdup(key_file);
    if(!cf || !kf) {
      free(cf);
      free(kf);
      return MDM_ERR_NOMEM;
    }
  }
  free(c->cert_file);
  free(c->key_file);
  c->cert_file = cf;
  c->key_file = kf;
  c->is_cert_off = 0;
  c->is_cert_refused = 0;
  identity_apply(c);
  return MDM_OK;
}

void mdm_client_identity(const struct mdm_client *c, const char **cert_file,
                         const char **key_file)
{
  int is_on = c->is_https && c->cert_file && !c->is_cert_off;
  *cert_file = is_on ? c->cert_file : NULL;
  *key_file = is_on ? c->key_file : NULL;
}

int mdm_client_cert_refused(struct mdm_client *c)
{
  int r = c->is_cert_refused;
  c->is_cert_refused = 0;
  return r;
}

void mdm_client_set_timeouts(struct mdm_client *c, long connect_ms,
                             long total_ms)
{
  curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, total_ms);
}

void mdm_client_set_abort(struct mdm_client *c,
                          const volatile sig_atomic_t *flag)
{
  c->abort_flag = flag;
}

/* A short, stable, lower-case reason for a failed transfer. */
static const char *curl_reason(CURLcode cc)
{
  switch(cc) {
  case CURLE_COULDNT_RESOLVE_HOST: return "cannot resolve the server's name";
  case CURLE_COULDNT_RESOLVE_PROXY: return "cannot resolve the proxy's name";
  case CURLE_COULDNT_CONNECT: return "cannot connect";
  case CURLE_OPERATION_TIMEDOUT: return "timed out";
  case CURLE_GOT_NOTHING: return "empty reply from server";
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR: return "connection broken";
  case CURLE_SSL_CONNECT_ERROR: return "tls handshake failed";
  case CURLE_PEER_FAILED_VERIFICATION: return "server certificate not trusted";
  case CURLE_SSL_CACERT_BADFILE: return "cannot read the CA file";
  case CURLE_SSL_CERTPROBLEM: return "cannot use the device certificate";
  case CURLE_ABORTED_BY_CALLBACK: return "interrupted";
  case CURLE_UNSUPPORTED_PROTOCOL: return "unsupported protocol";
  case CURLE_URL_MALFORMAT: return "malformed server URL";
  default: return curl_easy_strerror(cc);
  }
}

/* One transfer of the request set up on the handle; *status is the
 * answer's HTTP status, 0 when none came. */
static CURLcode client_perform(struct mdm_client *c, long *status)
{
  CURLcode cc;
  mdm_buf_reset(&c->body);
  c->is_toobig = 0;
  c->errbuf[0] = '\0';
  *status = 0;
  if(c->is_fresh)
    curl_easy_setopt(c->h, CURLOPT_FRESH_CONNECT, 1L);
  cc = curl_easy_perform(c->h);
  curl_easy_setopt(c->h, CURLOPT_FRESH_CONNECT, 0L);
  c->is_fresh = 0;
  if(cc == CURLE_OK)
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
  return cc;
}

/* POST body as JSON, or GET when body is NULL. */
static mdm_rc client_request(struct mdm_client *c, const char *path,
                             const char *bearer, json_t *body,
                             struct mdm_response *resp)
{
  struct curl_slist *hdrs = NULL, *n;
  struct mdm_buf url, auth;
  char *payload = NULL;
  CURLcode cc;
  mdm_rc rc = MDM_OK;

  memset(resp, 0, sizeof(*resp));
  mdm_buf_init(&url, 4096);
  mdm_buf_init(&auth, 16384);

  if(c->is_https && !c->has_ca) {
    /* Never the system store: without a CA of its own there is nothing to
     * trust. */
    rc = MDM_ERR_IO;
    snprintf(resp->errmsg, sizeof(resp->errmsg), "no CA to trust for https "
             "(enroll with a pinning token or give --ca-file)");
    goto out;
  }
  payload = body ? json_dumps(body, JSON_COMPACT) : strdup("");
  if(!payload || mdm_buf_printf(&url, "%s%s", c->base, path)) {
    rc = MDM_ERR_NOMEM;
    snprintf(resp->errmsg, sizeof(resp->errmsg), "cannot build the request");
    goto out;
  }
  n = curl_slist_append(hdrs, body ? "Content-Type: application/json" :
                         "Accept: application/json");
  if(n)
    hdrs = n;
  n = n ? curl_slist_append(hdrs, "Accept: application/json") : NULL;
  if(n)
    hdrs = n;
  n = n ? curl_slist_append(hdrs, "Expect:") : NULL;
  if(n)
    hdrs = n;
  if(n && bearer) {
    if(mdm_buf_printf(&auth, "Authorization: Bearer %s", bearer))
      n = NULL;
    else
      n = curl_slist_append(hdrs, auth.data);
    if(n)
      hdrs = n;
  }
  if(!n) {
    rc = MDM_ERR_NOMEM;
    snprintf(resp->errmsg, sizeof(resp->errmsg), "cannot build the request");
    goto out;
  }

  curl_easy_setopt(c->h, CURLOPT_URL, url.data);
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
  if(body) {
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)strlen(payload));
  }
  else
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
  cc = client_perform(c, &resp->status);
  if(c->is_https && c->cert_file && !c->is_cert_off && bearer &&
     ((cc == CURLE_OK && resp->status == 401) ||
      cc == CURLE_SSL_CERTPROBLEM)) {
    /* The certificate may be revoked, expired or unreadable while the token
     * is still good: a 401 changed nothing on the server, so ask once more
     * with the token alone. */
    c->is_cert_off = 1;
    identity_apply(c);
    cc = client_perform(c, &resp->status);
    if(cc == CURLE_OK && resp->status != 401) {
      mdm_warn("the server refused this device's certificate but took its "
               "token: going on with the token until the certificate is "
               "renewed");
      c->is_cert_refused = 1;
    }
    else {
      c->is_cert_off = 0;     /* the certificate was not the problem */
      identity_apply(c);
    }
  }
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(c->h, CURLOPT_HTTPGET, 0L);
  if(cc == CURLE_WRITE_ERROR && c->is_toobig) {
    rc = MDM_ERR_TOOBIG;
    snprintf(resp->errmsg, sizeof(resp->errmsg),
             "answer larger than %d bytes", MDM_CLIENT_MAX_BODY);
    goto out;
  }
  if(cc == CURLE_FILESIZE_EXCEEDED) {
    rc = MDM_ERR_TOOBIG;
    snprintf(resp->errmsg, sizeof(resp->errmsg),
             "answer larger than %d bytes", MDM_CLIENT_MAX_BODY);
    goto out;
  }
  if(cc != CURLE_OK) {
    rc = MDM_ERR_IO;
    resp->status = 0;
    resp->is_untrusted = cc == CURLE_PEER_FAILED_VERIFICATION;
    snprintf(resp->errmsg, sizeof(resp->errmsg), "%s", curl_reason(cc));
    mdm_debug("%s %s: %s", body ? "POST" : "GET", path, c->errbuf[0] ? c->errbuf :
              curl_easy_strerror(cc));
    goto out;
  }
  if(c->body.len)
    resp->body = json_loadb(c->body.data, c->body.len, 0, NULL);
  mdm_debug("%s %s: %ld", body ? "POST" : "GET", path, resp->status);
out:
  curl_slist_free_all(hdrs);   /* holds a copy of the token: freed now */
  if(auth.data)
    memset(auth.data, 0, auth.len);
  mdm_buf_release(&auth);
  mdm_buf_release(&url);
  free(payload);
  return rc;
}

mdm_rc mdm_client_post(struct mdm_client *c, const char *path,
                       const char *bearer, json_t *body,
                       struct mdm_response *resp)
{
  if(!body) {
    memset(resp, 0, sizeof(*resp));
    snprintf(resp->errmsg, sizeof(resp->errmsg), "cannot build the request");
    return MDM_ERR_INVAL;
  }
  return client_request(c, path, bearer, body, resp);
}

mdm_rc mdm_client_get(struct mdm_client *c, const char *path,
                      const char *bearer, struct mdm_response *resp)
{
  return client_request(c, path, bearer, NULL, resp);
}

/* The probe's answer, kept up to its buffer's cap. */
static size_t on_probe_body(char *p, size_t size, size_t nmemb, void *ud)
{
  struct mdm_buf *b = ud;
  size_t n = size * nmemb;
  return mdm_buf_append(b, p, n) ? 0 : n;
}

mdm_rc mdm_client_probe_chain(const char *server, char **chain, char *err,
                              size_t n)
{
  struct curl_certinfo *ci = NULL;
  struct mdm_buf url, out, body;
  long status = 0;
  size_t len = strlen(server);
  char ua[64], errbuf[CURL_ERROR_SIZE] = "";
  CURL *h;
  CURLcode cc;
  mdm_rc rc = MDM_OK;
  int i;

  *chain = NULL;
  mdm_buf_init(&url, 4096);
  mdm_buf_init(&out, PROBE_CHAIN_MAX);
  mdm_buf_init(&body, PROBE_CA_MAX);
  while(len && server[len - 1] == '/')
    len--;
  h = curl_easy_init();
  if(!h || mdm_buf_printf(&url, "%.*s/v1/server-ca.pem", (int)len,
                          server)) {
    rc = MDM_ERR_NOMEM;
    snprintf(err, n, "%s", mdm_strerror(rc));
    goto out;
  }
  snprintf(ua, sizeof(ua), "mdm-agent/%s", MDM_VERSION);
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)PROBE_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)PROBE_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PROBE_CA_MAX);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_probe_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  /* Unverified on purpose: this connection only learns which certificates
   * the server presents, and carries nothing secret.  The pin decides which
   * of them (if any) to trust; the enrollment itself is then verified
   * against that one alone. */
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
  curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
  curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
  cc = curl_easy_perform(h);
  /* The chain is known once the handshake is done, whatever came after. */
  if(curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci ||
     ci->num_of_certs <= 0) {
    rc = cc == CURLE_OK ? MDM_ERR_NOTFOUND : MDM_ERR_IO;
    snprintf(err, n, "%s", cc == CURLE_OK ? "the server presented no "
             "certificate" : curl_reason(cc));
    mdm_debug("probe %s: %s", url.data, errbuf[0] ? errbuf :
              curl_easy_strerror(cc));
    goto out;
  }
  for(i = 0; i < ci->num_of_certs; i++) {
    struct curl_slist *e;
    for(e = ci->certinfo[i]; e; e = e->next)
      if(!strncmp(e->data, "Cert:", 5)) {
        if(mdm_buf_puts(&out, e->data + 5) || mdm_buf_puts(&out, "\n")) {
          rc = MDM_ERR_TOOBIG;
          snprintf(err, n, "the server's certificate chain is larger than "
                   "%d bytes", PROBE_CHAIN_MAX);
          goto out;
        }
        break;
      }
  }
  if(!out.len) {
    rc = MDM_ERR_NOTFOUND;
    snprintf(err, n, "the server presented no certificate");
    goto out;
  }
  /* The CA the server publishes, when it answered with one; a server of
   * another kind answers 404 and only its chain counts. */
  if(cc == CURLE_OK &&
     curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
     status == 200 && body.len && !memchr(body.data, '\0', body.len) &&
     mdm_buf_append(&out, body.data, body.len)) {
    rc = MDM_ERR_TOOBIG;
    snprintf(err, n, "the server's certificates are larger than %d bytes",
             PROBE_CHAIN_MAX);
    goto out;
  }
  *chain = strdup(out.data);
  if(!*chain) {
    rc = MDM_ERR_NOMEM;
    snprintf(err, n, "%s", mdm_strerror(rc));
  }
out:
  if(h)
    curl_easy_cleanup(h);
  mdm_buf_release(&out);
  mdm_buf_release(&body);
  mdm_buf_release(&url);
  return rc;
}

void mdm_response_release(struct mdm_response *r)
{
  json_decref(r->body);
  r->body = NULL;
}

static const char *reason_phrase(long status)
{
  switch(status) {
  case 400: return "bad request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not found";
  case 405: return "method not allowed";
  case 409: return "conflict";
  case 413: return "too large";
  case 415: return "unsupported media type";
  case 422: return "unprocessable";
  case 429: return "too many requests";
  case 500: return "internal server error";
  case 502: return "bad gateway";
  case 503: return "service unavailable";
  case 504: return "gateway timeout";
  default: return "unexpected answer";
  }
}

void mdm_response_describe(const struct mdm_response *r, char *out, size_t n)
{
  json_t *t = json_object_get(r->body, "title");
  json_t *d = json_object_get(r->body, "detail");
  const char *title = json_is_string(t) && json_string_length(t) ?
                      json_string_value(t) : reason_phrase(r->status);
  const char *detail = json_is_string(d) && json_string_length(d) ?
                       json_string_value(d) : NULL;
  size_t i;

  if(!n)
    return;
  snprintf(out, n, "%ld %.100s%s%.400s", r->status, title,
           detail ? ": " : "", detail ? detail : "");
  for(i = 0; out[i]; i++)
    if((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
      out[i] = ' ';
}
