/*
 * api_agent.c: what devices call with their device token: check-in (facts
 * stored, last_seen updated, the count of commands waiting answered) and
 * telemetry batches (stored once per
 * device-side seq).  The check-in is the hot path: one group-committed
 * transaction that rewrites the wide facts row only when the facts' hash
 * changed.
 */
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/util.h"
#include <openssl/evp.h>
#include "crypto/key.h"
#include "server/api.h"
#include "server/compliance.h"
#include "server/policyset.h"

#define TELEMETRY_MAX_EVENTS 1000

/* policy_status: what the agent did with its bundle.
 *   {"etag": ETAG|null, "error": TEXT|null,
 *    "settings": {"vpn": {"state": "applied|failed|not_supported",
 *                         "detail": TEXT|null}, ...}} */
static mdm_rc check_policy_status(struct mdm_req *r, json_t *ps)
{
  const char *k;
  json_t *v, *settings;
  if(!json_is_object(ps))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'policy_status': expected an object");
  json_object_foreach(ps, k, v) {
    if(strcmp(k, "etag") && strcmp(k, "error") && strcmp(k, "settings") &&
       strcmp(k, "applied_at"))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'policy_status.%.64s' is "
                                            "unknown", k);
    if(strcmp(k, "settings") && !json_is_null(v) &&
       (!json_is_string(v) || json_string_length(v) > 1024))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'policy_status.%s': "
                          "expected a string or null", k);
  }
  settings = json_object_get(ps, "settings");
  if(settings && !json_is_object(settings))
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'policy_status.settings': "
                                          "expected an object");
  if(json_object_size(settings) > 64)
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'policy_status.settings': "
                                          "at most 64 settings");
  json_object_foreach(settings, k, v) {
    const char *state = json_string_value(json_object_get(v, "state"));
    json_t *detail = json_object_get(v, "detail");
    if(!json_is_object(v) || !state ||
       (strcmp(state, "applied") && strcmp(state, "failed") &&
        strcmp(state, "not_supported")) ||
       json_object_size(v) > 2 ||
       (json_object_size(v) == 2 && !detail) ||
       (detail && !json_is_null(detail) &&
        (!json_is_string(detail) || json_string_length(detail) > 1024)))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "field 'policy_status.settings.%.64s': expected "
                          "{state: applied|failed|not_supported, detail}", k);
  }
  return MDM_OK;
}

mdm_rc mdm_api_agent_checkin(struct mdm_req *r)
{
  static const char *const fields[] = {"facts", "policy_status", NULL};
  json_t *body = NULL, *state = NULL, *facts, *pstatus;
  struct mdm_checkin_in in;
  struct mdm_checkin_verdict cv;
  char *text = NULL, *ptext = NULL, hash[65], phash[65];
  unsigned char body_hash[32];
  mdm_rc rc;

  memset(&cv, 0, sizeof(cv));
  memset(&in, 0, sizeof(in));
  /* The fast path: byte for byte the body this device sent last time,
   * already validated and evaluated under the current policies.  Only
   * last_seen moves; nothing is parsed. */
  if(r->body.len && mdm_req_is_json(r)) {
    char compliance[16], etag[72];
    int64_t n_pending = 0;
    EVP_Digest(r->body.data, r->body.len, body_hash, NULL, EVP_sha256(),
               NULL);
    in.body_hash = body_hash;
    rc = r->srv->store->ops->checkin_touch(r->srv->store, r->who.tenant_id,
                                           r->who.id, body_hash,
                                           mdm_now_ms() / 1000, compliance,
                                           etag, &n_pending);
    if(rc == MDM_OK)
      return mdm_req_reply_json(
        r, 200,
        json_pack("{s:s, s:o, s:I, s:i}", "compliance", compliance,
                  "policy_etag", etag[0] ? json_string(etag) : json_null(),
                  "pending_commands", (json_int_t)n_pending,
                  "checkin_interval_s",
                  r->srv->cfg.checkin_interval_s));
    if(rc != MDM_ERR_NOTFOUND)
      return mdm_req_fail(r, rc, "cannot store the check-in");
  }
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  facts = json_object_get(body, "facts");
  if(!facts) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'facts' is required");
    goto out;
  }
  rc = mdm_check_facts(r, facts, &text, hash);
  if(rc)
    goto out;
  pstatus = json_object_get(body, "policy_status");
  if(pstatus && !json_is_null(pstatus)) {
    rc = check_policy_status(r, pstatus);
    if(!rc)
      rc = mdm_canonical_json(pstatus, &ptext, phash);
    if(rc)
      goto out;
    /* One hash over both: the wide row is rewritten when either changes. */
    {
      struct mdm_buf b;
      mdm_buf_init(&b, 256);
      mdm_buf_printf(&b, "%s %s", hash, phash);
      mdm_sha256_hex(b.data, b.len, hash);
      mdm_buf_release(&b);
    }
  }
  /* Evaluate only when the facts, the policies or the labels changed. */
  rc = mdm_compliance_checkin(r->srv, r->who.tenant_id, r->who.id, facts,
                              hash, &cv);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                             "revoked)");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot evaluate compliance");
    goto out;
  }
  in.device_id = r->who.id;
  in.facts_json = text;
  in.policy_status_json = ptext;
  /* in.body_hash was set above when the body is JSON. */
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;
  in.verdict = cv.has_verdict ? &cv.v : NULL;
  rc = r->srv->store->ops->checkin(r->srv->store, r->who.tenant_id, &in,
                                   &state);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                             "revoked)");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot store the check-in");
    goto out;
  }
  rc = mdm_req_reply_json(
    r, 200,
    json_pack("{s:O, s:o, s:O, s:i}", "compliance",
              json_object_get(state, "compliance"), "policy_etag",
              cv.etag[0] ? json_string(cv.etag) : json_null(),
              "pending_commands", json_object_get(state, "pending_commands"),
              "checkin_interval_s",
              r->srv->cfg.checkin_interval_s));
out:
  mdm_checkin_verdict_release(&cv);
  json_decref(state);
  free(ptext);
  free(text);
  json_decref(body);
  return rc;
}

/* GET /v1/agent/policy: the device's configuration bundle, signed by the
 * tenant's key.  The body is {"bundle": base64url(JSON), "signature":
 * base64url(ES256 over those exact bytes), "kid", "alg"}: the agent checks
 * the signature over the bytes it got before it parses anything. */
mdm_rc mdm_api_agent_policy(struct mdm_req *r)
{
  struct mdm_policyset *ps = NULL;
  json_t *dev = NULL, *bundle = NULL, *labels, *facts;
  const char *inm = mdm_req_header(r, "If-None-Match");
  char etag[72], *text = NULL, *b64 = NULL, *sig = NULL;
  const char *kid;
  EVP_PKEY *key;
  mdm_rc rc;

  rc = r->srv->store->ops->device_active(r->srv->store, r->who.tenant_id,
                                         r->who.id);
  if(rc == MDM_ERR_AUTH)
    return mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                               "revoked)");
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the device");
  rc = r->srv->store->ops->device_get(r->srv->store, r->who.tenant_id,
                                      r->who.id, &dev);
  if(!rc)
    rc = mdm_policyset_current(r->srv, r->who.tenant_id, &ps);
  if(rc) {
    mdm_req_fail(r, rc, "cannot read the device's policies");
    goto out;
  }
  labels = json_object_get(dev, "labels");
  facts = json_object_get(dev, "facts");
  rc = mdm_policyset_bundle(ps, json_string_value(json_object_get(facts,
                                                                  "platform")),
                            labels, &bundle, etag);
  if(rc) {
    mdm_req_fail(r, rc, "cannot build the bundle");
    goto out;
  }
  mdm_strlcpy(r->etag, etag, sizeof(r->etag));
  if(inm && !strcmp(inm, etag)) {
    rc = mdm_req_reply_empty(r, 304);
    goto out;
  }
  json_object_set_new(bundle, "device_id", json_string(r->who.id));
  json_object_set_new(bundle, "generation", json_integer(ps->gen));
  json_object_set_new(bundle, "etag", json_string(etag));
  text = json_dumps(bundle, JSON_COMPACT | JSON_SORT_KEYS);
  rc = text ? mdm_keycache_get(r->srv, r->who.tenant_id, &key, &kid)
            : MDM_ERR_NOMEM;
  if(!rc)
    rc = mdm_b64url_encode(text, strlen(text), &b64);
  if(!rc)
    rc = mdm_sig_sign(key, text, strlen(text), &sig);
  if(rc) {
    mdm_req_fail(r, rc, "cannot sign the bundle");
    goto out;
  }
  rc = mdm_req_reply_json(r, 200,
                          json_pack("{s:s, s:s, s:s, s:s}", "bundle", b64,
                                    "signature", sig, "kid", kid, "alg",
                                    "ES256"));
out:
  free(text);
  free(b64);
  free(sig);
  json_decref(bundle);
  json_decref(dev);
  mdm_policyset_put(ps);
  return rc;
}

static mdm_rc check_event(struct mdm_req *r, size_t i, json_t *ev)
{
  const char *k;
  json_t *v;
  int64_t t;
  if(!json_is_object(ev))
    return mdm_req_fail(r, MDM_ERR_INVAL, "events[%zu]: expected an object",
                        i);
  json_object_foreach(ev, k, v) {
    if(strcmp(k, "seq") && strcmp(k, "at") && strcmp(k, "type") &&
       strcmp(k, "data"))
      return mdm_req_fail(r, MDM_ERR_INVAL, "events[%zu]: unknown field "
                                            "'%.64s'", i, k);
  }
  v = json_object_get(ev, "seq");
  if(!json_is_integer(v) || json_integer_value(v) < 1)
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].seq: expected a positive integer", i);
  v = json_object_get(ev, "type");
  if(!json_is_string(v) || json_string_length(v) == 0 ||
     json_string_length(v) > 64)
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].type: expected a string of 1-64 "
                        "characters", i);
  v = json_object_get(ev, "at");
  if(v && (!json_is_string(v) || mdm_time_parse(json_string_value(v), &t)))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].at: expected an RFC 3339 UTC time", i);
  return MDM_OK;
}

mdm_rc mdm_api_agent_telemetry(struct mdm_req *r)
{
  static const char *const fields[] = {"events", "dropped", NULL};
  json_t *body = NULL, *events, *dropped, *ev, *result = NULL;
  int64_t n_dropped = 0;
  size_t i;
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  events = json_object_get(body, "events");
  if(!json_is_array(events)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'events': expected an array");
    goto out;
  }
  if(json_array_size(events) > TELEMETRY_MAX_EVENTS) {
    rc = mdm_req_fail(r, MDM_ERR_TOOBIG, "field 'events': at most %d events "
                                         "a batch", TELEMETRY_MAX_EVENTS);
    goto out;
  }
  dropped = json_object_get(body, "dropped");
  if(dropped) {
    if(!json_is_integer(dropped) || json_integer_value(dropped) < 0) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'dropped': expected a non-negative integer");
      goto out;
    }
    n_dropped = json_integer_value(dropped);
  }
  json_array_foreach(events, i, ev) {
    rc = check_event(r, i, ev);
    if(rc)
      goto out;
  }
  rc = r->srv->store->ops->telemetry_put(r->srv->store, r->who.tenant_id,
                                         r->who.id, events, n_dropped,
                                         mdm_now_ms() / 1000, &result);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                             "revoked)");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot store telemetry");
    goto out;
  }
  rc = mdm_req_reply_json(r, 200, result);
  result = NULL;
out:
  json_decref(result);
  json_decref(body);
  return rc;
}
