/*
 * api_audit.c: the audit log, its chain check, and signed checkpoints of
 * the chain's head that can be verified later, away from the server
 * (docs/api.md "Audit").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include "core/util.h"
#include "crypto/key.h"
#include "server/api.h"

mdm_rc mdm_api_audit_list(struct mdm_req *r)
{
  const char *cur = mdm_req_query(r, "cursor");
  long long after = 0;
  int64_t next = 0;
  json_t *items = NULL;
  char nbuf[32];
  int limit;
  mdm_rc rc = mdm_req_limit(r, &limit);
  if(rc)
    return rc;
  if(cur && mdm_parse_int(cur, 0, INT64_MAX, &after))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'cursor': invalid cursor");
  rc = r->srv->store->ops->audit_list(r->srv->store, r->who.tenant_id, after,
                                      limit, &items, &next);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the audit log");
  snprintf(nbuf, sizeof(nbuf), "%lld", (long long)next);
  return mdm_req_reply_list(r, items, next ? nbuf : NULL);
}

mdm_rc mdm_api_audit_verify(struct mdm_req *r)
{
  const char *seq_s = mdm_req_query(r, "seq");
  struct mdm_audit_head h;
  long long seq = 0;
  json_t *o;
  mdm_rc rc;

  if(seq_s && mdm_parse_int(seq_s, 1, INT64_MAX, &seq))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'seq': expected an integer "
                        ">= 1");
  rc = r->srv->store->ops->audit_head(r->srv->store, r->who.tenant_id,
                                      (int64_t)seq, &h);
  if(rc)
    return mdm_req_fail(r, rc, "cannot verify the audit log");
  o = json_pack("{s:b, s:I, s:o, s:s, s:o}", "ok", h.ok, "records",
                (json_int_t)h.records, "first_bad",
                h.ok ? json_null() : json_integer(h.first_bad), "tenant",
                r->who.tenant_id, "head_hash",
                h.records ? json_string(h.head_hash) : json_null());
  if(o && seq_s &&
     (json_object_set_new(o, "seq", json_integer((json_int_t)seq)) ||
      json_object_set_new(o, "hash_at_seq", h.has_at ? json_string(h.at_hash)
                                                     : json_null()))) {
    json_decref(o);
    o = NULL;
  }
  return mdm_req_reply_json(r, 200, o);
}

mdm_rc mdm_audit_checkpoint_text(const char *tenant, int64_t records,
                                 const char *head_hash, const char *time,
                                 struct mdm_buf *out)
{
  return mdm_buf_printf(out, "mdm-audit-checkpoint/v1\n%s\n%lld\n%s\n%s",
                        tenant, (long long)records, head_hash, time);
}

mdm_rc mdm_api_audit_checkpoint(struct mdm_req *r)
{
  struct mdm_audit_head h;
  struct mdm_buf text;
  EVP_PKEY *key = NULL;
  const char *kid = NULL;
  char at[40], *sig = NULL, *pem = NULL;
  json_t *o;
  mdm_rc rc;

  rc = r->srv->store->ops->audit_head(r->srv->store, r->who.tenant_id, 0,
                                      &h);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the audit log");
  /* A signature over a broken chain would vouch for a rewritten past. */
  if(!h.ok)
    return mdm_req_fail(r, MDM_ERR_CONFLICT, "the audit log fails its chain "
                        "check at seq %lld: no checkpoint is signed",
                        (long long)h.first_bad);
  rc = mdm_keycache_get(r->srv, r->who.tenant_id, &key, &kid);
  if(rc)
    return mdm_req_fail(r, rc, "cannot load the tenant's signing key");
  mdm_time_format_ms(mdm_now_ms(), at, sizeof(at));
  mdm_buf_init(&text, 4096);
  rc = mdm_audit_checkpoint_text(r->who.tenant_id, h.records, h.head_hash,
                                 at, &text);
  if(!rc)
    rc = mdm_sig_sign(key, text.data, text.len, &sig);
  if(!rc)
    rc = mdm_key_to_pem(key, 0, &pem);
  mdm_buf_release(&text);
  if(rc) {
    free(sig);
    return mdm_req_fail(r, rc, "cannot sign the checkpoint");
  }
  o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "tenant",
                r->who.tenant_id, "records", (json_int_t)h.records,
                "head_hash", h.head_hash, "time", at, "kid", kid, "alg",
                "ES256", "signature", sig, "public_key", pem);
  free(sig);
  free(pem);
  return mdm_req_reply_json(r, 200, o);
}

/* The public key as an RFC 7517 JWK (EC P-256). */
static json_t *jwk_of(EVP_PKEY *key, const char *kid)
{
  unsigned char pt[65];
  size_t len = 0;
  char *x = NULL, *y = NULL;
  json_t *o = NULL;

  if(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                     sizeof(pt), &len) != 1 ||
     len != sizeof(pt) || pt[0] != 0x04)
    return NULL;
  if(!mdm_b64url_encode(pt + 1, 32, &x) &&
     !mdm_b64url_encode(pt + 33, 32, &y))
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv",
                  "P-256", "x", x, "y", y, "kid", kid, "alg", "ES256", "use",
                  "sig");
  free(x);
  free(y);
  return o;
}

mdm_rc mdm_api_audit_keys(struct mdm_req *r)
{
  EVP_PKEY *key = NULL;
  const char *kid = NULL;
  char *pem = NULL;
  json_t *jwk;
  mdm_rc rc;

  rc = mdm_keycache_get(r->srv, r->who.tenant_id, &key, &kid);
  if(!rc)
    rc = mdm_key_to_pem(key, 0, &pem);
  if(rc)
    return mdm_req_fail(r, rc, "cannot load the tenant's signing key");
  jwk = jwk_of(key, kid);
  if(!jwk || json_object_set_new(jwk, "public_key", json_string(pem))) {
    json_decref(jwk);
    free(pem);
    return mdm_req_fail(r, MDM_ERR_CRYPTO, "cannot export the tenant's "
                        "public key");
  }
  free(pem);
  return mdm_req_reply_json(r, 200, json_pack("{s:[o]}", "keys", jwk));
}
