/*
 * api_devices.c: the inventory: list (filters, cursor pagination), show,
 * and PATCH of labels and owner.
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/api.h"
#include "server/policyset.h"

static int enum_ok(const char *v, const char *const *allowed)
{
  for(; *allowed; allowed++)
    if(!strcmp(v, *allowed))
      return 1;
  return 0;
}

mdm_rc mdm_api_devices_list(struct mdm_req *r)
{
  static const char *const compliance[] = {"compliant", "noncompliant",
                                           "unknown", NULL};
  static const char *const platforms[] = {"linux", "android", "ios", "macos",
                                          "windows", NULL};
  static const char *const states[] = {"active", "retired", "wiped",
                                       "revoked", NULL};
  struct mdm_device_filter f;
  const char *labels[MDM_MAX_LABEL_FILTERS + 1];
  char keys[MDM_MAX_LABEL_FILTERS][64], vals[MDM_MAX_LABEL_FILTERS][64];
  const char *cur = mdm_req_query(r, "cursor");
  unsigned char *decoded = NULL;
  size_t dlen = 0;
  json_t *items = NULL;
  char *next = NULL, *next_enc = NULL;
  int i, n;
  mdm_rc rc;

  memset(&f, 0, sizeof(f));
  rc = mdm_req_limit(r, &f.limit);
  if(rc)
    return rc;
  f.platform = mdm_req_query(r, "platform");
  f.compliance = mdm_req_query(r, "compliance");
  f.state = mdm_req_query(r, "state");
  if(f.platform && !enum_ok(f.platform, platforms))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'platform': expected one of "
                        "linux, android, ios, macos, windows");
  if(f.compliance && !enum_ok(f.compliance, compliance))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'compliance': expected one "
                        "of compliant, noncompliant, unknown");
  if(f.state && !enum_ok(f.state, states))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'state': expected one of "
                        "active, retired, wiped, revoked");
  n = mdm_req_query_all(r, "label", labels, MDM_MAX_LABEL_FILTERS + 1);
  if(n > MDM_MAX_LABEL_FILTERS)
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'label': at most %d",
                        MDM_MAX_LABEL_FILTERS);
  for(i = 0; i < n; i++) {
    const char *eq = strchr(labels[i], '=');
    size_t klen = eq ? (size_t)(eq - labels[i]) : 0;
    if(!eq || klen == 0 || klen >= sizeof(keys[i]) ||
       mdm_strlcpy(vals[i], eq + 1, sizeof(vals[i])))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "query 'label': expected KEY=VALUE");
    memcpy(keys[i], labels[i], klen);
    keys[i][klen] = '\0';
    if(!mdm_label_key_ok(keys[i]) || !mdm_label_value_ok(vals[i]))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "query 'label': invalid key or value");
    f.label_key[i] = keys[i];
    f.label_val[i] = vals[i];
  }
  f.n_labels = n;
  if(cur) {
    if(mdm_b64url_decode(cur, strlen(cur), &decoded, &dlen) ||
       !mdm_is_uuid((const char *)decoded)) {
      free(decoded);
      return mdm_req_fail(r, MDM_ERR_INVAL, "query 'cursor': invalid cursor");
    }
    f.after_id = (const char *)decoded;
  }
  rc = r->srv->store->ops->device_list(r->srv->store, r->who.tenant_id, &f,
                                       &items, &next);
  free(decoded);
  if(rc)
    return mdm_req_fail(r, rc, "cannot list devices");
  if(next && mdm_b64url_encode(next, strlen(next), &next_enc)) {
    free(next);
    json_decref(items);
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  }
  free(next);
  rc = mdm_req_reply_list(r, items, next_enc);
  free(next_enc);
  return rc;
}

mdm_rc mdm_api_devices_get(struct mdm_req *r)
{
  json_t *d = NULL;
  mdm_rc rc;
  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no device '%s'", r->params[0]);
  rc = r->srv->store->ops->device_get(r->srv->store, r->who.tenant_id,
                                      r->params[0], &d);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no device '%s'", r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the device");
  return mdm_req_reply_json(r, 200, d);
}

/* Labels select policies: evaluate the device again now rather than at its
 * next check-in.  Best effort; the stored verdict is already marked stale,
 * so a failure here only delays it. */
static mdm_rc reevaluate(struct mdm_req *r, json_t *dev)
{
  struct mdm_store *st = r->srv->store;
  struct mdm_eval_state es;
  struct mdm_policyset *ps = NULL;
  struct mdm_device_verdict dv;
  struct mdm_compliance_put put;
  json_t *facts = json_object_get(dev, "facts");
  const char *platform = json_string_value(json_object_get(facts, "platform"));
  mdm_rc rc;

  memset(&dv, 0, sizeof(dv));
  rc = st->ops->device_eval_state(st, r->who.tenant_id, r->params[0], &es,
                                  NULL);
  if(!rc)
    rc = mdm_policyset_current(r->srv, r->who.tenant_id, &ps);
  if(!rc)
    rc = mdm_policyset_eval(ps, facts, platform,
                            json_object_get(dev, "labels"), &dv);
  if(!rc) {
    memset(&put, 0, sizeof(put));
    put.device_id = r->params[0];
    put.facts_hash = es.facts_hash;
    put.state = mdm_verdict_name(dv.verdict);
    put.reasons_json = dv.reasons_json;
    put.policy_etag = dv.etag;
    put.is_state_changed = strcmp(put.state, es.compliance) != 0;
    rc = st->ops->compliance_put(st, r->who.tenant_id, ps->gen, &put, 1,
                                 mdm_now_ms() / 1000, NULL);
  }
  free(dv.reasons_json);
  mdm_policyset_put(ps);
  return rc;
}

mdm_rc mdm_api_devices_patch(struct mdm_req *r)
{
  static const char *const fields[] = {"labels", "user_principal_name", NULL};
  json_t *body = NULL, *labels, *upn, *out = NULL;
  struct mdm_audit_in a;
  mdm_rc rc;

  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no device '%s'", r->params[0]);
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  labels = json_object_get(body, "labels");
  upn = json_object_get(body, "user_principal_name");
  if(!labels && !upn) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "nothing to change: give 'labels' "
                                        "or 'user_principal_name'");
    goto out;
  }
  if(labels) {
    rc = mdm_check_labels(r, labels, 1);
    if(rc)
      goto out;
  }
  if(upn && !json_is_null(upn) &&
     (!json_is_string(upn) || json_string_length(upn) == 0 ||
      json_string_length(upn) > 256 || !strchr(json_string_value(upn), '@'))) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'user_principal_name': "
                      "expected a user@domain string or null");
    goto out;
  }
  a.actor = r->who.actor;
  a.action = "device.update";
  a.target = r->params[0];
  a.detail = body;
  rc = r->srv->store->ops->device_patch(r->srv->store, r->who.tenant_id,
                                        r->params[0], labels, upn, &a, &out);
  if(rc == MDM_ERR_NOTFOUND) {
    rc = mdm_req_fail(r, rc, "no device '%s'", r->params[0]);
    goto out;
  }
  if(rc == MDM_ERR_TOOBIG) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'labels': a device has at "
                                        "most 64 labels");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot update the device");
    goto out;
  }
  if(labels && reevaluate(r, out) == MDM_OK) {
    /* Answer with the device as it is now, verdict included. */
    json_t *fresh = NULL;
    if(!r->srv->store->ops->device_get(r->srv->store, r->who.tenant_id,
                                       r->params[0], &fresh)) {
      json_decref(out);
      out = fresh;
    }
  }
  rc = mdm_req_reply_json(r, 200, out);
out:
  json_decref(body);
  return rc;
}
