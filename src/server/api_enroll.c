/*
 * api_enroll.c: enrollment tokens (create, list, revoke) and enrollment
 * itself.  An enrollment token is a JWT signed by the tenant's key
 * (CONTRACT §3); its record in the store counts its uses, and redeeming it
 * is one transaction (so N concurrent enrollments with a k-use token make
 * exactly k devices).
 */
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/jwt.h"
#include <openssl/evp.h>
#include "crypto/key.h"
#include "crypto/pki.h"
#include "server/api.h"
#include "server/ca.h"
#include "server/policyset.h"
#include "server/push.h"

#define FACTS_MAX (64 * 1024)

static mdm_rc sign_token(struct mdm_req *r, const char *tenant,
                         const char *aud, const char *sub, const char *jti,
                         int64_t now, int64_t exp, char **out)
{
  EVP_PKEY *key;
  const char *kid;
  json_t *claims;
  mdm_rc rc = mdm_keycache_get(r->srv, tenant, &key, &kid);
  if(rc)
    return rc;
  claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", "mdm",
                     "aud", aud, "sub", sub, "jti", jti, "tenant", tenant,
                     "iat", (json_int_t)now, "exp", (json_int_t)exp);
  if(!claims)
    return MDM_ERR_NOMEM;
  /* An enrollment token carries the pin of the server's CA: the agent
   * trusts that CA only, never the system store (issue 5). */
  if(!strcmp(aud, "mdm-enroll") && r->srv->server_ca_pin[0] &&
     json_object_set_new(claims, "server_ca",
                         json_string(r->srv->server_ca_pin))) {
    json_decref(claims);
    return MDM_ERR_NOMEM;
  }
  rc = mdm_jwt_sign(key, kid, claims, out);
  json_decref(claims);
  return rc;
}

mdm_rc mdm_api_etokens_create(struct mdm_req *r)
{
  static const char *const fields[] = {"ttl_seconds", "max_uses", "labels",
                                       NULL};
  json_t *body = NULL, *v, *labels = NULL, *out = NULL, *detail = NULL;
  int64_t ttl = 3600, uses = 1, now = mdm_now_ms() / 1000;
  char id[MDM_UUID_LEN + 1], *jwt = NULL;
  struct mdm_audit_in a;
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  v = json_object_get(body, "ttl_seconds");
  if(v) {
    if(!json_is_integer(v) || json_integer_value(v) < 60 ||
       json_integer_value(v) > 31536000) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'ttl_seconds': expected an "
                                          "integer in 60..31536000");
      goto out;
    }
    ttl = json_integer_value(v);
  }
  v = json_object_get(body, "max_uses");
  if(v) {
    if(!json_is_integer(v) || json_integer_value(v) < 1 ||
       json_integer_value(v) > 100000) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'max_uses': expected an integer in 1..100000");
      goto out;
    }
    uses = json_integer_value(v);
  }
  v = json_object_get(body, "labels");
  if(v) {
    rc = mdm_check_labels(r, v, 0);
    if(rc)
      goto out;
    labels = json_incref(v);
  }
  else
    labels = json_object();
  rc = mdm_uuid_v4(id);
  if(!rc)
    rc = sign_token(r, r->who.tenant_id, "mdm-enroll", id, id, now, now + ttl,
                    &jwt);
  if(rc) {
    mdm_req_fail(r, rc, "cannot sign the enrollment token");
    goto out;
  }
  detail = json_pack("{s:I, s:I, s:O}", "ttl_seconds", (json_int_t)ttl,
                     "max_uses", (json_int_t)uses, "labels", labels);
  a.actor = r->who.actor;
  a.action = "enrollment_token.create";
  a.target = id;
  a.detail = detail;
  rc = r->srv->store->ops->etoken_create(r->srv->store, r->who.tenant_id, id,
                                         now + ttl, uses, labels,
                                         r->who.actor, &a, &out);
  if(rc) {
    mdm_req_fail(r, rc, "cannot store the enrollment token");
    goto out;
  }
  json_object_set_new(out, "token", json_string(jwt));
  if(r->srv->server_ca_pin[0])
    json_object_set_new(out, "server_ca_fingerprint",
                        json_string(r->srv->server_ca_pin));
  rc = mdm_req_reply_json(r, 201, out);
out:
  free(jwt);
  json_decref(detail);
  json_decref(labels);
  json_decref(body);
  return rc;
}

mdm_rc mdm_api_etokens_list(struct mdm_req *r)
{
  json_t *items = NULL;
  mdm_rc rc = r->srv->store->ops->etoken_list(r->srv->store,
                                              r->who.tenant_id, &items);
  if(rc)
    return mdm_req_fail(r, rc, "cannot list enrollment tokens");
  return mdm_req_reply_list(r, items, NULL);
}

mdm_rc mdm_api_etokens_delete(struct mdm_req *r)
{
  struct mdm_audit_in a = {r->who.actor, "enrollment_token.revoke",
                           r->params[0], NULL};
  mdm_rc rc;
  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no enrollment token '%s'",
                        r->params[0]);
  rc = r->srv->store->ops->etoken_revoke(r->srv->store, r->who.tenant_id,
                                         r->params[0], &a);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no active enrollment token '%s'",
                        r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot revoke the enrollment token");
  return mdm_req_reply_empty(r, 204);
}

static json_t *copy_or_null(json_t *v)
{
  json_t *c = v ? json_deep_copy(v) : NULL;
  return c ? c : json_null();
}

static int str_or_null(json_t *v, size_t max)
{
  return !v || json_is_null(v) ||
         (json_is_string(v) && json_string_length(v) <= max);
}

mdm_rc mdm_check_facts(struct mdm_req *r, json_t *facts, char **text,
                       char hash[65])
{
  static const char *const top[] = {"serial", "platform", "hostname", "model"};
  static const char *const os_fields[] = {"name", "version", "build",
                                          "kernel"};
  json_t *os;
  size_t i;
  mdm_rc rc;

  if(!json_is_object(facts))
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'facts': expected an object");
  for(i = 0; i < sizeof(top) / sizeof(top[0]); i++)
    if(!str_or_null(json_object_get(facts, top[i]), 256))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "field 'facts.%s': expected a string of at most "
                          "256 characters or null", top[i]);
  os = json_object_get(facts, "os");
  if(os && !json_is_null(os)) {
    if(!json_is_object(os))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "field 'facts.os': expected an object or null");
    for(i = 0; i < sizeof(os_fields) / sizeof(os_fields[0]); i++)
      if(!str_or_null(json_object_get(os, os_fields[i]), 256))
        return mdm_req_fail(r, MDM_ERR_INVAL,
                            "field 'facts.os.%s': expected a string of at "
                            "most 256 characters or null", os_fields[i]);
  }
  rc = mdm_canonical_json(facts, text, hash);
  if(rc)
    return mdm_req_fail(r, rc, "out of memory");
  if(strlen(*text) > FACTS_MAX) {
    free(*text);
    *text = NULL;
    return mdm_req_fail(r, MDM_ERR_TOOBIG, "field 'facts': larger than %d "
                                           "bytes", FACTS_MAX);
  }
  return MDM_OK;
}

mdm_rc mdm_api_enroll(struct mdm_req *r)
{
  static const char *const fields[] = {"enrollment_token", "facts", "csr",
                                       NULL};
  json_t *body = NULL, *claims = NULL, *facts, *detail = NULL, *mqtt = NULL;
  json_t *csr;
  struct mdm_issued issued;
  struct mdm_cert_in cert_in;
  const struct mdm_ca *ca = NULL;
  const char *etok, *tenant, *jti;
  char device_id[MDM_UUID_LEN + 1], token_jti[MDM_UUID_LEN + 1];
  char *facts_text = NULL, *dtoken = NULL, hash[65];
  const char *pubkey = NULL;
  int64_t now = mdm_now_ms() / 1000;
  struct mdm_enroll_in in;
  struct mdm_audit_in a;
  struct mdm_verdict_in verdict;
  struct mdm_device_verdict dv;
  EVP_PKEY *key;
  struct mdm_devtoken et;
  unsigned char edigest[32];
  mdm_rc rc;

  memset(&dv, 0, sizeof(dv));
  memset(&issued, 0, sizeof(issued));
  memset(&et, 0, sizeof(et));
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  csr = json_object_get(body, "csr");
  if(csr && !json_is_null(csr) && !json_is_string(csr)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'csr': expected a PEM "
                      "certificate request (a string)");
    goto out;
  }
  etok = json_string_value(json_object_get(body, "enrollment_token"));
  facts = json_object_get(body, "facts");
  if(!etok) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL,
                      "field 'enrollment_token': expected a string");
    goto out;
  }
  if(!facts) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'facts' is required");
    goto out;
  }
  rc = mdm_check_facts(r, facts, &facts_text, hash);
  if(rc)
    goto out;

  /* Which tenant's key to check it with comes from the token itself; a
   * token that lies about its tenant fails that tenant's signature.  A
   * signature once verified is remembered (the token's hash → tenant, jti,
   * exp): a zero-touch token enrolls thousands of devices. */
  EVP_Digest(etok, strlen(etok), edigest, NULL, EVP_sha256(), NULL);
  if(!mdm_tokcache_get(r->srv->etokens, edigest, &et)) {
    if(mdm_jwt_peek(etok, NULL, &claims) ||
       !(tenant = json_string_value(json_object_get(claims, "tenant"))) ||
       !mdm_is_uuid(tenant) || mdm_keycache_get(r->srv, tenant, &key, NULL)) {
      rc = mdm_req_fail(r, MDM_ERR_AUTH, "invalid enrollment token");
      goto out;
    }
    json_decref(claims);
    claims = NULL;
    rc = mdm_jwt_verify(key, etok, "mdm-enroll", now, &claims);
    if(rc) {
      rc = mdm_req_fail(r, MDM_ERR_AUTH, "%s enrollment token",
                        rc == MDM_ERR_EXPIRED ? "expired" : "invalid");
      goto out;
    }
    tenant = json_string_value(json_object_get(claims, "tenant"));
    jti = json_string_value(json_object_get(claims, "jti"));
    if(!tenant || !jti || !mdm_is_uuid(jti) ||
       mdm_strlcpy(et.tenant_id, tenant, sizeof(et.tenant_id)) ||
       mdm_strlcpy(et.device_id, jti, sizeof(et.device_id))) {
      rc = mdm_req_fail(r, MDM_ERR_AUTH, "invalid enrollment token");
      goto out;
    }
    et.exp = json_integer_value(json_object_get(claims, "exp"));
    mdm_tokcache_put(r->srv->etokens, edigest, &et);
  }
  else if(et.exp <= now) {
    rc = mdm_req_fail(r, MDM_ERR_AUTH, "expired enrollment token");
    goto out;
  }
  tenant = et.tenant_id;
  jti = et.device_id;

  rc = mdm_uuid_v4(device_id);
  if(!rc)
    rc = mdm_uuid_v4(token_jti);
  if(!rc)
    rc = sign_token(r, tenant, "mdm-device", device_id, token_jti, now,
                    now + r->srv->cfg.device_token_ttl_s, &dtoken);
  if(rc) {
    mdm_req_fail(r, rc, "cannot issue the device token");
    goto out;
  }
  /* The device certificate, from the device's CSR (its key never leaves
   * the device): checked and issued before anything is stored, so a bad
   * CSR changes nothing. */
  if(json_is_string(csr)) {
    char why[256];
    rc = mdm_ca_get(r->srv, tenant, &ca);
    if(rc) {
      mdm_req_fail(r, rc, "cannot load the tenant's certificate authority");
      goto out;
    }
    rc = mdm_cert_issue(ca->key, ca->cert, json_string_value(csr), tenant,
                        device_id, r->srv->cfg.device_cert_s, now,
                        &issued, why, sizeof(why));
    if(rc == MDM_ERR_INVAL) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'csr': %s", why);
      goto out;
    }
    if(rc) {
      mdm_req_fail(r, rc, "cannot issue the device certificate");
      goto out;
    }
  }
  memset(&in, 0, sizeof(in));
  if(issued.pem) {
    cert_in.serial = issued.serial;
    cert_in.fingerprint = issued.fingerprint;
    cert_in.not_before = issued.not_before;
    cert_in.not_after = issued.not_after;
    in.cert = &cert_in;
  }
  in.etoken_id = jti;
  in.device_id = device_id;
  in.token_jti = token_jti;
  in.facts_json = facts_text;
  in.facts_hash = hash;
  in.now = now;
  /* The first verdict now, so the device's first check-in finds it
   * current.  Best effort: without it the first check-in evaluates. */
  {
    json_t *labels = NULL;
    struct mdm_policyset *ps = NULL;
    if(!r->srv->store->ops->etoken_labels(r->srv->store, tenant, jti,
                                          &labels) &&
       !mdm_policyset_current(r->srv, tenant, &ps) &&
       !mdm_policyset_eval(ps, facts,
                           json_string_value(json_object_get(facts,
                                                             "platform")),
                           labels, &dv)) {
      verdict.gen = ps->gen;
      verdict.state = mdm_verdict_name(dv.verdict);
      verdict.reasons_json = dv.reasons_json;
      verdict.policy_etag = dv.etag;
      in.verdict = &verdict;
    }
    mdm_policyset_put(ps);
    json_decref(labels);
  }
  detail = json_pack("{s:s, s:o, s:o}", "enrollment_token", jti, "serial",
                     copy_or_null(json_object_get(facts, "serial")),
                     "hostname", copy_or_null(json_object_get(facts, "hostname")));
  {
    char actor[64];
    snprintf(actor, sizeof(actor), "enrollment_token:%s", jti);
    a.actor = actor;
    a.action = "device.enroll";
    a.target = device_id;
    a.detail = detail;
    rc = r->srv->store->ops->enroll(r->srv->store, tenant, &in, &a, NULL);
  }
  if(rc == MDM_ERR_NOTFOUND)
    rc = mdm_req_fail(r, MDM_ERR_AUTH, "enrollment token is unknown or "
                                       "revoked");
  else if(rc == MDM_ERR_EXPIRED)
    rc = mdm_req_fail(r, MDM_ERR_AUTH, "expired enrollment token");
  else if(rc == MDM_ERR_CONFLICT)
    rc = mdm_req_fail(r, MDM_ERR_CONFLICT, "enrollment token used up");
  else if(rc)
    mdm_req_fail(r, rc, "cannot store the enrollment");
  if(rc)
    goto out;
  mdm_info("device %s enrolled in tenant %s", device_id, tenant);
  {
    /* The token was signed here a moment ago: its first check-in need not
     * pay for an ECDSA verification. */
    struct mdm_devtoken dt;
    unsigned char digest[32];
    memset(&dt, 0, sizeof(dt));
    mdm_strlcpy(dt.tenant_id, tenant, sizeof(dt.tenant_id));
    mdm_strlcpy(dt.device_id, device_id, sizeof(dt.device_id));
    dt.exp = now + r->srv->cfg.device_token_ttl_s;
    EVP_Digest(dtoken, strlen(dtoken), digest, NULL, EVP_sha256(), NULL);
    mdm_tokcache_put(r->srv->devtokens, digest, &dt);
  }
  snprintf(r->location, sizeof(r->location), "/v1/devices/%s", device_id);
  /* The tenant's public key: the agent verifies its policy bundles with it
   * (addition to CONTRACT §2's enroll answer). */
  rc = mdm_keycache_public_pem(r->srv, tenant, &pubkey);
  if(rc) {
    mdm_req_fail(r, rc, "cannot export the tenant key");
    goto out;
  }
  /* The device's broker credentials (derived, see crypto/mqttcred.h):
   * without --mqtt the answer says "mqtt": null and the device polls
   * (ARCHITECTURE principle 1); while the broker is down the agent keeps
   * reconnecting and polls meanwhile. */
  if(r->srv->push)
    mdm_push_device_add(r->srv->push, tenant, device_id, &mqtt);
  {
    json_t *ans = json_pack("{s:s, s:s, s:i, s:o, s:s}", "device_id",
                            device_id, "device_token", dtoken,
                            "checkin_interval_s",
                            r->srv->cfg.checkin_interval_s, "mqtt",
                            mqtt ? mqtt : json_null(), "policy_key", pubkey);
    /* With a CSR only (CONTRACT §2: certificate?, ca_certificate?). */
    if(ans && issued.pem && ca &&
       (json_object_set_new(ans, "certificate", json_string(issued.pem)) ||
        json_object_set_new(ans, "ca_certificate",
                            json_string(ca->cert_pem)))) {
      json_decref(ans);
      ans = NULL;
    }
    rc = mdm_req_reply_json(r, 201, ans);
  }
  mqtt = NULL;
out:
  free(issued.pem);
  json_decref(mqtt);
  free(dv.reasons_json);
  free(dtoken);
  free(facts_text);
  json_decref(detail);
  json_decref(claims);
  json_decref(body);
  return rc;
}

/* POST /v1/agent/certificate {csr}: a device renews its certificate (at
 * two thirds of its lifetime, or on rotate_certificate) with a key it has
 * just made.  The new certificate is stored and the device's others are
 * revoked in one transaction: a device has one valid certificate. */
mdm_rc mdm_api_agent_certificate(struct mdm_req *r)
{
  static const char *const fields[] = {"csr", NULL};
  json_t *body = NULL, *csr, *detail = NULL, *ans;
  const struct mdm_ca *ca = NULL;
  struct mdm_issued issued;
  struct mdm_cert_in cert_in;
  struct mdm_audit_in a;
  int64_t now = mdm_now_ms() / 1000;
  char why[256];
  mdm_rc rc;

  memset(&issued, 0, sizeof(issued));
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  csr = json_object_get(body, "csr");
  if(!json_is_string(csr)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'csr': expected a string");
    goto out;
  }
  rc = mdm_ca_get(r->srv, r->who.tenant_id, &ca);
  if(rc) {
    mdm_req_fail(r, rc, "cannot load the tenant's certificate authority");
    goto out;
  }
  rc = mdm_cert_issue(ca->key, ca->cert, json_string_value(csr),
                      r->who.tenant_id, r->who.id, r->srv->cfg.device_cert_s,
                      now, &issued, why, sizeof(why));
  if(rc == MDM_ERR_INVAL) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'csr': %s", why);
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot issue the device certificate");
    goto out;
  }
  cert_in.serial = issued.serial;
  cert_in.fingerprint = issued.fingerprint;
  cert_in.not_before = issued.not_before;
  cert_in.not_after = issued.not_after;
  detail = json_pack("{s:s, s:s}", "serial", issued.serial, "fingerprint",
                     issued.fingerprint);
  a.actor = r->who.actor;
  a.action = "device.certificate_renew";
  a.target = r->who.id;
  a.detail = detail;
  rc = r->srv->store->ops->cert_renew(r->srv->store, r->who.tenant_id,
                                      r->who.id, &cert_in, now, &a);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, MDM_ERR_AUTH, "device is retired or wiped");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot store the device certificate");
    goto out;
  }
  mdm_info("device %s renewed its certificate (serial %s)", r->who.id,
           issued.serial);
  ans = json_pack("{s:s, s:s, s:I, s:s}", "certificate", issued.pem,
                  "ca_certificate", ca->cert_pem, "not_after",
                  (json_int_t)issued.not_after, "fingerprint",
                  issued.fingerprint);
  rc = mdm_req_reply_json(r, 200, ans);
out:
  free(issued.pem);
  json_decref(detail);
  json_decref(body);
  return rc;
}
