/*
 * policy.c: fetching, verifying and enforcing the device's configuration
 * bundle, and keeping its status (see policy.h).  The order of the checks
 * is the point of this file: the answer is bounded, the signature is
 * verified over the exact bytes that were signed before they are parsed,
 * and nothing on the device changes until every check has passed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "agent/client.h"
#include "agent/policy.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"

#define STATUS_FILE_MAX (256 * 1024)
#define REJECTED "bundle rejected: "

/* ---- verifying ----------------------------------------------------------- */

/* A short, printable copy of s for a message. */
static const char *quoted(const char *s, char *out, size_t n)
{
  size_t i;
  snprintf(out, n, "%s", s);
  for(i = 0; out[i]; i++)
    if((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
      out[i] = '?';
  return out;
}

static const char *member_str(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  if(!json_is_string(v) || strlen(json_string_value(v)) !=
     json_string_length(v))
    return NULL;
  return json_string_value(v);
}

mdm_rc mdm_policy_verify(const char *key_pem, const char *device_id,
                         const char *etag, const char *body, size_t len,
                         json_t **bundle, char *why, size_t n)
{
  json_t *env = NULL, *b = NULL;
  EVP_PKEY *key = NULL;
  unsigned char *bytes = NULL;
  size_t n_bytes = 0;
  const char *b64, *sig, *alg, *s;
  char q[40];
  mdm_rc rc = MDM_OK;

  *bundle = NULL;
  if(n)
    why[0] = '\0';
  if(!key_pem || !key_pem[0]) {
    snprintf(why, n, "%s", MDM_POLICY_NO_KEY);
    return MDM_ERR_AUTH;
  }
  if(len > MDM_POLICY_MAX_BODY) {
    snprintf(why, n, "answer larger than %d bytes", MDM_POLICY_MAX_BODY);
    return MDM_ERR_TOOBIG;
  }
  env = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  b64 = member_str(env, "bundle");
  sig = member_str(env, "signature");
  alg = member_str(env, "alg");
  if(!json_is_object(env) || !b64 || !sig || !alg) {
    snprintf(why, n, "malformed answer: expected {bundle, signature, kid, "
             "alg}");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  if(strcmp(alg, "ES256")) {
    snprintf(why, n, "unsupported signature algorithm '%s'",
             quoted(alg, q, sizeof(q)));
    rc = MDM_ERR_AUTH;
    goto out;
  }
  if(mdm_key_from_pem(key_pem, &key)) {
    snprintf(why, n, "the policy key is unreadable; re-enroll");
    rc = MDM_ERR_AUTH;
    goto out;
  }
  if(mdm_b64url_decode(b64, strlen(b64), &bytes, &n_bytes)) {
    snprintf(why, n, "malformed answer: bundle is not base64url");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  if(mdm_sig_verify(key, bytes, n_bytes, sig)) {
    snprintf(why, n, "signature invalid");
    rc = MDM_ERR_AUTH;
    goto out;
  }
  /* Signed by the tenant: now it may be parsed. */
  b = json_loadb((const char *)bytes, n_bytes, JSON_REJECT_DUPLICATES, NULL);
  if(!json_is_object(b) || !json_is_object(json_object_get(b, "settings"))) {
    snprintf(why, n, "malformed bundle");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  s = member_str(b, "device_id");
  if(!s || strcmp(s, device_id)) {
    snprintf(why, n, "bundle is for another device");
    rc = MDM_ERR_AUTH;
    goto out;
  }
  s = member_str(b, "etag");
  if(!etag || !etag[0] || !s || strcmp(s, etag)) {
    snprintf(why, n, "bundle etag does not match the ETag header");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  *bundle = b;
  b = NULL;
out:
  EVP_PKEY_free(key);
  free(bytes);
  json_decref(b);
  json_decref(env);
  return rc;
}

/* ---- enforcing ----------------------------------------------------------- */

static const char *state_name(enum mdm_enforce_state s)
{
  switch(s) {
  case MDM_ENFORCE_APPLIED: return "applied";
  case MDM_ENFORCE_FAILED: return "failed";
  default: return "not_supported";
  }
}

static int key_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct mdm_enforcer *find(const struct mdm_enforcer *table,
                                       const char *name)
{
  for(; table && table->setting; table++)
    if(!strcmp(table->setting, name))
      return table;
  return NULL;
}

mdm_rc mdm_policy_enforce(const struct mdm_enforcer *table,
                          const struct mdm_enforce_ctx *ctx, json_t *settings,
                          json_t *prev_settings, json_t **out,
                          size_t *n_unreported)
{
  const char **names = NULL, *k;
  const struct mdm_enforcer *e;
  size_t n_names = 0, i;
  json_t *st = json_object(), *v;
  mdm_rc rc = MDM_OK;

  *out = NULL;
  *n_unreported = 0;
  names = malloc((json_object_size(settings) + 1) * sizeof(*names));
  if(!st || !names) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  json_object_foreach(settings, k, v)
    names[n_names++] = k;
  qsort(names, n_names, sizeof(*names), key_cmp);

  for(i = 0; i < n_names; i++) {
    struct mdm_enforce_result res;
    json_t *one;
    memset(&res, 0, sizeof(res));
    e = find(table, names[i]);
    if(e)
      e->apply(ctx, json_object_get(settings, names[i]), &res);
    else
      mdm_enforce_set(&res, MDM_ENFORCE_NOT_SUPPORTED, "%s",
                      MDM_ENFORCE_UNSUPPORTED_DETAIL);
    if(res.state == MDM_ENFORCE_APPLIED)
      mdm_info("policy: %.*s applied%s", MDM_POLICY_NAME_MAX, names[i],
               res.is_changed ? " (changed)" : "");
    else
      mdm_warn("policy: %.*s %s: %s", MDM_POLICY_NAME_MAX, names[i],
               state_name(res.state), res.detail);
    if(json_object_size(st) >= MDM_POLICY_SETTINGS_MAX ||
       strlen(names[i]) > MDM_POLICY_NAME_MAX) {
      (*n_unreported)++;
      continue;
    }
    one = json_pack("{s:s, s:s?}", "state", state_name(res.state), "detail",
                    res.detail[0] ? res.detail : NULL);
    if(!one || json_object_set_new(st, names[i], one)) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
  }

  /* Settings that left the bundle: undo what the agent owns. */
  for(e = table; e && e->setting; e++) {
    json_t *was = json_object_get(prev_settings, e->setting);
    const char *state = json_string_value(json_object_get(was, "state"));
    if(!e->remove || json_object_get(settings, e->setting) || !state ||
       strcmp(state, "applied"))
      continue;
    if(e->remove(ctx))
      mdm_info("policy: %s removed (no longer in the bundle)", e->setting);
  }
out:
  free(names);
  if(rc)
    json_decref(st);
  else
    *out = st;
  return rc;
}

/* ---- the state directory ------------------------------------------------- */

static int is_str_or_null(json_t *v, size_t max)
{
  return !v || json_is_null(v) ||
         (json_is_string(v) && json_string_length(v) <= max);
}

/* Is v absent, null, or an ETag we may send back in If-None-Match? */
static int is_etag_or_null(json_t *v)
{
  const char *s = json_string_value(v);
  size_t i;
  if(!v || json_is_null(v))
    return 1;
  if(!s || !json_string_length(v) ||
     json_string_length(v) > MDM_POLICY_ETAG_MAX)
    return 0;
  for(i = 0; s[i]; i++)
    if((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
      return 0;
  return i == json_string_length(v);
}

/* Would the server take this as policy_status, and can its etag go back in
 * a request header? */
static int status_ok(json_t *s)
{
  json_t *settings = json_object_get(s, "settings"), *v;
  const char *k;
  if(!json_is_object(s) || !json_is_object(settings) ||
     !is_etag_or_null(json_object_get(s, "etag")) ||
     json_object_size(settings) > MDM_POLICY_SETTINGS_MAX ||
     !is_str_or_null(json_object_get(s, "etag"), MDM_POLICY_ETAG_MAX) ||
     !is_str_or_null(json_object_get(s, "applied_at"), 64) ||
     !is_str_or_null(json_object_get(s, "error"), 1024))
    return 0;
  json_object_foreach(s, k, v)
    if(strcmp(k, "etag") && strcmp(k, "applied_at") && strcmp(k, "error") &&
       strcmp(k, "settings"))
      return 0;
  json_object_foreach(settings, k, v) {
    const char *st = json_string_value(json_object_get(v, "state"));
    if(!json_is_object(v) || !st || (strcmp(st, "applied") &&
       strcmp(st, "failed") && strcmp(st, "not_supported")) ||
       !is_str_or_null(json_object_get(v, "detail"), 1024) ||
       json_object_size(v) > 2 ||
       (json_object_size(v) == 2 && !json_object_get(v, "detail")))
      return 0;
  }
  return 1;
}

mdm_rc mdm_policy_load_status(const char *state_dir, json_t **status)
{
  char path[PATH_MAX], *s = NULL;
  json_t *o;
  mdm_rc rc;

  *status = NULL;
  rc = mdm_state_path(state_dir, MDM_POLICY_STATUS_FILE, path, sizeof(path));
  if(!rc)
    rc = mdm_file_read(path, STATUS_FILE_MAX, &s, NULL);
  if(rc == MDM_ERR_NOTFOUND)
    return rc;
  if(rc) {
    mdm_warn("cannot read '%s': %s; fetching the policy again", path,
             mdm_strerror(rc));
    return MDM_ERR_NOTFOUND;
  }
  o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
  free(s);
  if(!status_ok(o)) {
    mdm_warn("'%s' is damaged; fetching the policy again", path);
    json_decref(o);
    return MDM_ERR_NOTFOUND;
  }
  *status = o;
  return MDM_OK;
}

mdm_rc mdm_policy_save_status(const char *state_dir, json_t *status)
{
  char path[PATH_MAX], *s;
  mdm_rc rc = mdm_state_path(state_dir, MDM_POLICY_STATUS_FILE, path,
                             sizeof(path));
  if(rc)
    return rc;
  s = json_dumps(status, JSON_COMPACT | JSON_SORT_KEYS);
  if(!s)
    return MDM_ERR_NOMEM;
  rc = mdm_file_write_atomic(path, s, strlen(s), 0600);
  free(s);
  return rc;
}

/* ---- fetching ------------------------------------------------------------ */

struct fetch {
  struct mdm_policy_answer *ans;
  const volatile sig_atomic_t *abort_flag;
  int is_toobig;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
  struct fetch *f = ud;
  size_t n = size * nmemb;
  if(mdm_buf_append(&f->ans->body, p, n)) {
    f->is_toobig = 1;
    return 0;
  }
  return n;
}

/* Keep the ETag header of the final answer: printable, bounded, or none. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
  struct fetch *f = ud;
  size_t n = size * nmemb, i, len;
  const char *v;

  if(n >= 5 && !strncmp(p, "HTTP/", 5)) {   /* a new answer starts */
    f->ans->etag[0] = '\0';
    return n;
  }
  if(n < 5 || strncasecmp(p, "ETag:", 5))
    return n;
  v = p + 5;
  len = n - 5;
  while(len && (*v == ' ' || *v == '\t')) {
    v++;
    len--;
  }
  while(len && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
                v[len - 1] == ' ' || v[len - 1] == '\t'))
    len--;
  if(!len || len > MDM_POLICY_ETAG_MAX)
    return n;
  for(i = 0; i < len; i++)
    if((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
      return n;
  memcpy(f->ans->etag, v, len);
  f->ans->etag[len] = '\0';
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
  struct fetch *f = ud;
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return f->abort_flag && *f->abort_flag ? 1 : 0;
}

/* Is s a value that may go into a request header? */
static int is_header_value(const char *s)
{
  size_t i;
  for(i = 0; s[i]; i++)
    if((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
      return 0;
  return i <= MDM_POLICY_ETAG_MAX;
}

mdm_rc mdm_policy_http_fetch(void *ud, const char *if_none_match,
                             struct mdm_policy_answer *ans)
{
  const struct mdm_policy_http *h = ud;
  struct curl_slist *hdrs = NULL, *nl;
  struct mdm_buf url, auth, inm;
  struct fetch f;
  char ua[64];
  CURL *c;
  CURLcode cc;
  mdm_rc rc = MDM_OK;

  ans->status = 0;
  ans->etag[0] = '\0';
  ans->errmsg[0] = '\0';
  mdm_buf_reset(&ans->body);
  memset(&f, 0, sizeof(f));
  f.ans = ans;
  f.abort_flag = h->abort_flag;
  mdm_buf_init(&url, 4096);
  mdm_buf_init(&auth, 16384);
  mdm_buf_init(&inm, 256);

  c = curl_easy_init();
  nl = curl_slist_append(NULL, "Accept: application/json");
  hdrs = nl;
  if(nl && h->device_token) {
    if(!mdm_buf_printf(&auth, "Authorization: Bearer %s", h->device_token))
      nl = curl_slist_append(hdrs, auth.data);
    else
      nl = NULL;
  }
  if(nl && if_none_match) {
    if(!is_header_value(if_none_match) ||
       mdm_buf_printf(&inm, "If-None-Match: %s", if_none_match))
      nl = NULL;
    else
      nl = curl_slist_append(hdrs, inm.data);
  }
  if(!c || !nl || mdm_buf_printf(&url, "%s/v1/agent/policy", h->server)) {
    rc = MDM_ERR_NOMEM;
    snprintf(ans->errmsg, sizeof(ans->errmsg), "cannot build the request");
    goto out;
  }
  snprintf(ua, sizeof(ua), "mdm-agent/%s", MDM_VERSION);
  curl_easy_setopt(c, CURLOPT_URL, url.data);
  curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)MDM_CLIENT_CONNECT_TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)MDM_CLIENT_TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)MDM_POLICY_MAX_BODY);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &f);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  mdm_client_tls_setup(c, h->ca_file, h->cert_file, h->key_file);
  cc = curl_easy_perform(c);
  if((cc == CURLE_WRITE_ERROR && f.is_toobig) ||
     cc == CURLE_FILESIZE_EXCEEDED) {
    rc = MDM_ERR_TOOBIG;
    snprintf(ans->errmsg, sizeof(ans->errmsg), "answer larger than %d bytes",
             MDM_POLICY_MAX_BODY);
    goto out;
  }
  if(cc != CURLE_OK) {
    rc = MDM_ERR_IO;
    snprintf(ans->errmsg, sizeof(ans->errmsg), "cannot reach '%s': %s",
             h->server, cc == CURLE_ABORTED_BY_CALLBACK ? "interrupted" :
             curl_easy_strerror(cc));
    goto out;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ans->status);
  mdm_debug("GET /v1/agent/policy: %ld", ans->status);
out:
  if(c)
    curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);   /* holds a copy of the token: freed now */
  if(auth.data)
    memset(auth.data, 0, auth.len);
  mdm_buf_release(&auth);
  mdm_buf_release(&inm);
  mdm_buf_release(&url);
  return rc;
}

/* ---- one step ------------------------------------------------------------ */

/* A status that keeps what prev (may be NULL) said was applied, with error
 * err.  Caller owns it. */
static json_t *status_rejected(json_t *prev, const char *err)
{
  json_t *st = json_object(), *v;
  static const char *const kept[] = {"etag", "applied_at", "settings"};
  size_t i;
  if(!st)
    return NULL;
  for(i = 0; i < 3; i++) {
    v = json_object_get(prev, kept[i]);
    if(json_object_set_new(st, kept[i], v ? json_incref(v) :
                           i == 2 ? json_object() : json_null()))
      goto fail;
  }
  if(json_object_set_new(st, "error", json_string(err)))
    goto fail;
  return st;
fail:
  json_decref(st);
  return NULL;
}

/* Save status unless it equals prev.  Takes ownership of status. */
static mdm_rc save_if_changed(const char *state_dir, json_t *prev,
                              json_t *status)
{
  mdm_rc rc = MDM_OK;
  if(!status)
    return MDM_ERR_NOMEM;
  if(!prev || !json_equal(prev, status))
    rc = mdm_policy_save_status(state_dir, status);
  json_decref(status);
  return rc;
}

static mdm_rc reject(const struct mdm_policy_step_in *in, json_t *prev,
                     const char *why, enum mdm_policy_outcome *outcome,
                     char *msg, size_t n)
{
  json_t *st;
  snprintf(msg, n, REJECTED "%s", why);
  *outcome = MDM_POLICY_REJECTED;
  st = status_rejected(prev, msg);
  return save_if_changed(in->state_dir, prev, st);
}

mdm_rc mdm_policy_step(const struct mdm_policy_step_in *in,
                       enum mdm_policy_outcome *outcome, char *msg, size_t n)
{
  struct mdm_policy_answer ans;
  json_t *prev = NULL, *bundle = NULL, *settings = NULL, *st = NULL;
  const char *applied = NULL;
  char why[512], path[PATH_MAX], now[32];
  size_t n_unreported = 0, i;
  mdm_rc rc = MDM_OK;

  memset(&ans, 0, sizeof(ans));
  mdm_buf_init(&ans.body, MDM_POLICY_MAX_BODY);
  *outcome = MDM_POLICY_CURRENT;
  if(n)
    msg[0] = '\0';
  if(in->profiles)
    *in->profiles = NULL;
  if(mdm_policy_load_status(in->state_dir, &prev) == MDM_OK)
    applied = json_string_value(json_object_get(prev, "etag"));
  if(!in->server_etag && !in->is_forced)
    goto out;
  if(!in->is_forced && applied && !strcmp(applied, in->server_etag)) {
    /* In step again (after a rejected bundle was replaced, say). */
    if(json_is_string(json_object_get(prev, "error"))) {
      st = json_deep_copy(prev);
      if(st)
        json_object_set_new(st, "error", json_null());
      rc = save_if_changed(in->state_dir, prev, st);
    }
    goto out;
  }
  if(!in->policy_key) {
    rc = reject(in, prev, MDM_POLICY_NO_KEY, outcome, msg, n);
    goto out;
  }
  rc = in->fetch(in->fetch_ud, in->is_forced ? NULL : applied, &ans);
  if(rc) {
    snprintf(msg, n, "cannot fetch the policy: %s", ans.errmsg);
    if(rc == MDM_ERR_TOOBIG)
      rc = reject(in, prev, ans.errmsg, outcome, msg, n);
    goto out;
  }
  if(ans.status == 304 && applied)
    goto out;
  if(ans.status != 200) {
    struct mdm_response r;
    char d[400];
    memset(&r, 0, sizeof(r));
    r.status = ans.status;
    if(ans.body.len)
      r.body = json_loadb(ans.body.data, ans.body.len, 0, NULL);
    mdm_response_describe(&r, d, sizeof(d));
    mdm_response_release(&r);
    snprintf(msg, n, "cannot fetch the policy: %s", d);
    rc = ans.status == 401 || ans.status == 403 ? MDM_ERR_AUTH : MDM_ERR_IO;
    goto out;
  }
  if(mdm_policy_verify(in->policy_key, in->device_id, ans.etag,
                       ans.body.data ? ans.body.data : "", ans.body.len,
                       &bundle, why, sizeof(why))) {
    rc = reject(in, prev, why, outcome, msg, n);
    goto out;
  }

  if(in->profiles) {
    json_t *pr = json_object_get(bundle, "profiles");
    *in->profiles = json_is_array(pr) ? json_deep_copy(pr) : json_array();
  }
  /* Verified: keep the signed answer, then enforce. */
  rc = mdm_state_path(in->state_dir, MDM_POLICY_BUNDLE_FILE, path,
                      sizeof(path));
  if(!rc)
    rc = mdm_file_write_atomic(path, ans.body.data, ans.body.len, 0600);
  if(rc) {
    snprintf(msg, n, "cannot keep the policy in '%s': %s", in->state_dir,
             mdm_strerror(rc));
    goto out;
  }
  rc = mdm_policy_enforce(in->table, &in->ctx,
                          json_object_get(bundle, "settings"),
                          json_object_get(prev, "settings"), &settings,
                          &n_unreported);
  if(rc) {
    snprintf(msg, n, "cannot enforce the policy: %s", mdm_strerror(rc));
    goto out;
  }
  mdm_time_format(mdm_now_ms() / 1000, now, sizeof(now));
  if(n_unreported)
    snprintf(why, sizeof(why), "%zu setting(s) not reported (at most %d)",
             n_unreported, MDM_POLICY_SETTINGS_MAX);
  st = json_pack("{s:s, s:s, s:s?, s:O}", "etag", ans.etag, "applied_at",
                 now, "error", n_unreported ? why : NULL, "settings",
                 settings);
  rc = save_if_changed(in->state_dir, prev, st);
  if(rc) {
    snprintf(msg, n, "cannot keep the policy status in '%s': %s",
             in->state_dir, mdm_strerror(rc));
    goto out;
  }
  *outcome = MDM_POLICY_APPLIED;
  {
    size_t counts[3] = {0, 0, 0};
    const char *k;
    json_t *v;
    json_object_foreach(settings, k, v) {
      const char *s = json_string_value(json_object_get(v, "state"));
      i = !strcmp(s, "applied") ? 0 : !strcmp(s, "failed") ? 1 : 2;
      counts[i]++;
    }
    snprintf(msg, n, "applied policy %s: %zu applied, %zu failed, %zu not "
             "supported", ans.etag, counts[0], counts[1], counts[2]);
  }
out:
  mdm_buf_release(&ans.body);
  json_decref(settings);
  json_decref(bundle);
  json_decref(prev);
  return rc;
}
