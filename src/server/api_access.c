/*
 * api_access.c: conditional access over HTTP (docs/access.md).
 *
 *   POST /v1/access/evaluate   the what-if: a sign-in context in, the
 *                              evaluator's answer out (admin roles).
 *   GET  /v1/access/check      for a gateway's auth subrequest (nginx
 *                              auth_request): the device is the caller
 *                              (its credential), the rest of the context
 *                              comes from the query; 200 allow, 403 block
 *                              or require_mfa (X-MDM-Decision says which);
 *                              401 (from the router) for an unknown device.
 *
 * Both evaluate the tenant's ConditionalAccessPolicy documents (the cached
 * policy set) with the pure evaluator (policy/access.h) against the device
 * as the store knows it now.  Real decisions (check) are counted for
 * /metrics and denials are logged with their reasons; what-ifs are not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "core/log.h"
#include "core/util.h"
#include "policy/access.h"
#include "server/api.h"
#include "server/events.h"
#include "server/metrics.h"
#include "server/policyset.h"

#define CTX_STR_MAX 256

/* The device's state as the evaluator wants it, from the store.  A device
 * that does not exist or is not active is unknown (*is_active 0).  The
 * strings live in *acc; *labels (caller owns) is its labels. */
static mdm_rc device_state(struct mdm_req *r, const char *device_id,
                           struct mdm_access_device *dev,
                           struct mdm_device_access *acc, json_t **labels,
                           int *is_active)
{
  mdm_rc rc;
  memset(dev, 0, sizeof(*dev));
  *labels = NULL;
  *is_active = 0;
  if(!device_id || !mdm_is_uuid(device_id))
    return MDM_OK;
  rc = r->srv->store->ops->device_access(r->srv->store, r->who.tenant_id,
                                         device_id, acc, labels);
  if(rc == MDM_ERR_NOTFOUND)
    return MDM_OK;
  if(rc)
    return rc;
  if(strcmp(acc->state, "active"))
    return MDM_OK;
  *is_active = 1;
  dev->is_known = 1;
  dev->compliance = acc->compliance;
  dev->platform = acc->platform[0] ? acc->platform : NULL;
  dev->labels = *labels;
  dev->last_seen = acc->last_seen;
  return MDM_OK;
}

/* Evaluate ctx for device_id.  With need_active, a device that is not
 * active fails with MDM_ERR_AUTH (the gateway's check: a retired device is
 * unknown there, as a credential that never was). */
static mdm_rc evaluate(struct mdm_req *r, json_t *ctx, const char *device_id,
                       int need_active, json_t **out)
{
  struct mdm_policyset *ps = NULL;
  struct mdm_access_device dev;
  struct mdm_device_access acc;
  json_t *labels = NULL;
  int is_active;
  mdm_rc rc = device_state(r, device_id, &dev, &acc, &labels, &is_active);
  if(!rc && need_active && !is_active)
    rc = MDM_ERR_AUTH;
  if(!rc)
    rc = mdm_policyset_current(r->srv, r->who.tenant_id, &ps);
  if(!rc)
    rc = mdm_access_evaluate(ps->access, ctx, &dev, mdm_now_ms() / 1000,
                             out);
  mdm_policyset_put(ps);
  json_decref(labels);
  return rc;
}

/* ---- the what-if ---------------------------------------------------------- */

static int is_short_string(json_t *v)
{
  return json_is_string(v) && json_string_length(v) >= 1 &&
         json_string_length(v) <= CTX_STR_MAX;
}

/* The context's shape (CONTRACT §2): unknown fields and wrong types are a
 * 400 naming the field. */
static mdm_rc check_context(struct mdm_req *r, json_t *ctx)
{
  static const char *const top[] = {"user", "device_id", "application",
                                    "client_app_type", "network", NULL};
  json_t *v, *user = json_object_get(ctx, "user");
  json_t *net = json_object_get(ctx, "network");
  const char *k;
  size_t i;

  json_object_foreach(ctx, k, v) {
    int is_known = 0;
    for(i = 0; top[i]; i++)
      is_known |= !strcmp(k, top[i]);
    if(!is_known)
      return mdm_req_fail(r, MDM_ERR_INVAL, "unknown field '%.64s' (expected "
                          "user, device_id, application, client_app_type, "
                          "network)", k);
  }
  if(user && !json_is_null(user)) {
    if(!json_is_object(user))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'user': expected an "
                          "object");
    json_object_foreach(user, k, v) {
      if(json_is_null(v))
        continue;
      if(!strcmp(k, "upn") && !is_short_string(v))
        return mdm_req_fail(r, MDM_ERR_INVAL, "field 'user.upn': expected a "
                            "string of 1 to %d bytes", CTX_STR_MAX);
      if(!strcmp(k, "mfa_completed") && !json_is_boolean(v))
        return mdm_req_fail(r, MDM_ERR_INVAL, "field 'user.mfa_completed': "
                            "expected true or false");
      if(!strcmp(k, "password_age_days") &&
         (!json_is_integer(v) || json_integer_value(v) < 0))
        return mdm_req_fail(r, MDM_ERR_INVAL, "field "
                            "'user.password_age_days': expected an integer "
                            ">= 0");
      if(strcmp(k, "upn") && strcmp(k, "mfa_completed") &&
         strcmp(k, "password_age_days"))
        return mdm_req_fail(r, MDM_ERR_INVAL, "unknown field 'user.%.64s' "
                            "(expected upn, mfa_completed, "
                            "password_age_days)", k);
    }
  }
  v = json_object_get(ctx, "device_id");
  if(v && !json_is_null(v) &&
     (!json_is_string(v) || !mdm_is_uuid(json_string_value(v))))
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'device_id': expected a "
                        "device id (UUID)");
  for(i = 0; i < 2; i++) {
    const char *f = i ? "client_app_type" : "application";
    v = json_object_get(ctx, f);
    if(v && !json_is_null(v) && !is_short_string(v))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field '%s': expected a string "
                          "of 1 to %d bytes", f, CTX_STR_MAX);
  }
  if(net && !json_is_null(net)) {
    if(!json_is_object(net))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'network': expected an "
                          "object");
    json_object_foreach(net, k, v) {
      if(json_is_null(v))
        continue;
      if(!strcmp(k, "ssid") && !is_short_string(v))
        return mdm_req_fail(r, MDM_ERR_INVAL, "field 'network.ssid': "
                            "expected a string of 1 to %d bytes",
                            CTX_STR_MAX);
      if(!strcmp(k, "vpn_connected") && !json_is_boolean(v))
        return mdm_req_fail(r, MDM_ERR_INVAL, "field "
                            "'network.vpn_connected': expected true or "
                            "false");
      if(strcmp(k, "ssid") && strcmp(k, "vpn_connected"))
        return mdm_req_fail(r, MDM_ERR_INVAL, "unknown field "
                            "'network.%.64s' (expected ssid, "
                            "vpn_connected)", k);
    }
  }
  return MDM_OK;
}

mdm_rc mdm_api_access_evaluate(struct mdm_req *r)
{
  json_error_t je;
  json_t *ctx, *out = NULL;
  mdm_rc rc;

  if(!r->body.len)
    return mdm_req_fail(r, MDM_ERR_INVAL, "expected a sign-in context (a "
                        "JSON object)");
  ctx = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
  if(!ctx)
    return mdm_req_fail(r, MDM_ERR_INVAL, "malformed JSON: %s", je.text);
  if(!json_is_object(ctx)) {
    json_decref(ctx);
    return mdm_req_fail(r, MDM_ERR_INVAL, "expected a sign-in context (a "
                        "JSON object)");
  }
  rc = check_context(r, ctx);
  if(!rc) {
    rc = evaluate(r, ctx, json_string_value(json_object_get(ctx,
                                                            "device_id")),
                  0, &out);
    if(rc)
      mdm_req_fail(r, rc, "cannot evaluate the access policies");
    else
      rc = mdm_req_reply_json(r, 200, out);
  }
  json_decref(ctx);
  return rc;
}

/* ---- the gateway's check --------------------------------------------------- */

/* A query parameter as a context string, or NULL (absent or empty). */
static const char *qstr(struct mdm_req *r, const char *name, mdm_rc *bad)
{
  const char *v = mdm_req_query(r, name);
  if(v && strlen(v) > CTX_STR_MAX) {
    *bad = mdm_req_fail(r, MDM_ERR_INVAL, "query '%s': at most %d bytes",
                        name, CTX_STR_MAX);
    return NULL;
  }
  return v && *v ? v : NULL;
}

/* "true"/"false" as a boolean, absent as NULL. */
static json_t *qbool(struct mdm_req *r, const char *name, mdm_rc *bad)
{
  const char *v = mdm_req_query(r, name);
  if(!v || !*v)
    return NULL;
  if(!strcmp(v, "true"))
    return json_true();
  if(!strcmp(v, "false"))
    return json_false();
  *bad = mdm_req_fail(r, MDM_ERR_INVAL, "query '%s': expected true or false",
                      name);
  return NULL;
}

mdm_rc mdm_api_access_check(struct mdm_req *r)
{
  mdm_rc bad = MDM_OK, rc;
  const char *app = qstr(r, "application", &bad);
  const char *type = qstr(r, "client_app_type", &bad);
  const char *upn = qstr(r, "upn", &bad);
  const char *ssid = qstr(r, "ssid", &bad);
  json_t *mfa = qbool(r, "mfa", &bad), *vpn = qbool(r, "vpn", &bad);
  json_t *ctx = NULL, *out = NULL, *user, *net;
  const char *decision;

  if(bad) {
    json_decref(mfa);
    json_decref(vpn);
    return bad;
  }
  user = json_object();
  net = json_object();
  ctx = json_object();
  if(!user || !net || !ctx) {
    rc = mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
    goto out;
  }
  if(upn)
    json_object_set_new(user, "upn", json_string(upn));
  if(mfa)
    json_object_set(user, "mfa_completed", mfa);
  if(ssid)
    json_object_set_new(net, "ssid", json_string(ssid));
  if(vpn)
    json_object_set(net, "vpn_connected", vpn);
  json_object_set(ctx, "user", user);
  json_object_set(ctx, "network", net);
  json_object_set_new(ctx, "device_id", json_string(r->who.id));
  if(app)
    json_object_set_new(ctx, "application", json_string(app));
  if(type)
    json_object_set_new(ctx, "client_app_type", json_string(type));

  rc = evaluate(r, ctx, r->who.id, 1, &out);
  if(rc == MDM_ERR_AUTH) {
    mdm_req_fail(r, rc, "the device is not active");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot evaluate the access policies");
    goto out;
  }
  decision = json_string_value(json_object_get(out, "decision"));
  mdm_req_add_header(r, "X-MDM-Decision", decision);
  mdm_req_add_header(r, "X-MDM-Device", r->who.id);
  if(!strcmp(decision, "allow")) {
    mdm_metrics_inc(MDM_M_ACCESS_ALLOW);
    rc = mdm_req_reply_json(r, 200, json_pack("{s:s, s:s}", "decision",
                                              decision, "device_id",
                                              r->who.id));
    goto out;
  }
  mdm_metrics_inc(!strcmp(decision, "block") ? MDM_M_ACCESS_BLOCK
                                             : MDM_M_ACCESS_REQUIRE_MFA);
  {
    char *reasons = json_dumps(json_object_get(out, "reasons"),
                               JSON_COMPACT);
    mdm_info("access %s: device %s, application %s: %s", decision,
             r->who.id, app ? app : "(unknown)", reasons ? reasons : "");
    {
      /* The SIEM's access.denied event (docs/events.md). */
      json_t *detail = json_pack("{s:s?, s:s, s:O, s:O}", "application", app,
                                 "decision", decision, "reasons",
                                 json_object_get(out, "reasons"), "policies",
                                 json_object_get(out, "policies"));
      mdm_events_access_denied(r->srv->events, r->who.tenant_id, r->who.id,
                               upn, detail);
      json_decref(detail);
    }
    rc = mdm_req_fail(r, MDM_ERR_FORBIDDEN, "%s: %s", decision,
                      reasons ? reasons : "");
    free(reasons);
  }
out:
  json_decref(mfa);
  json_decref(vpn);
  json_decref(user);
  json_decref(net);
  json_decref(ctx);
  json_decref(out);
  return rc;
}
