/*
 * access.c: the conditional-access evaluator (access.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "policy/access.h"

enum decision { D_ALLOW, D_REQUIRE_MFA, D_BLOCK };

static const char *const decision_names[] = {"allow", "require_mfa",
                                             "block"};

static int list_has(json_t *list, const char *v, int is_nocase)
{
  size_t i;
  json_t *x;
  json_array_foreach(list, i, x) {
    const char *s = json_string_value(x);
    if(s && (is_nocase ? !strcasecmp(s, v) : !strcmp(s, v)))
      return 1;
  }
  return 0;
}

static const char *ctx_str(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

/* ---- applicability -------------------------------------------------------- */

/* An include/exclude selector over value v (NULL: unknown).  all is the
 * include list's wildcard ("All" or "all").  An unknown value matches:
 * it cannot be shown to be outside the selector. */
static int selects(json_t *sel, const char *inc_key, const char *exc_key,
                   const char *v, const char *all, int is_nocase)
{
  json_t *inc = json_object_get(sel, inc_key);
  json_t *exc = json_object_get(sel, exc_key);
  if(!sel)
    return 1;
  if(!v)
    return 1;
  if(exc && list_has(exc, v, is_nocase))
    return 0;
  return list_has(inc, all, 0) || list_has(inc, v, is_nocase);
}

static int client_type_selects(json_t *types, const char *t)
{
  static const char *const mobile[] = {"mobileApps",
                                       "mobileAppsAndDesktopClients"};
  if(!types || !t || list_has(types, "all", 0) || list_has(types, t, 0))
    return 1;
  /* The brief's "mobileApps" and Graph's "mobileAppsAndDesktopClients"
   * name the same clients. */
  if(!strcmp(t, mobile[0]) || !strcmp(t, mobile[1]))
    return list_has(types, mobile[0], 0) || list_has(types, mobile[1], 0);
  return 0;
}

static int applies(json_t *cond, json_t *ctx,
                   const struct mdm_access_device *dev)
{
  json_t *user = json_object_get(ctx, "user");
  const char *platform = dev->is_known ? dev->platform : NULL;
  return selects(json_object_get(cond, "applications"),
                 "includeApplications", "excludeApplications",
                 ctx_str(ctx, "application"), "All", 0) &&
         selects(json_object_get(cond, "users"), "includeUsers",
                 "excludeUsers", ctx_str(user, "upn"), "All", 1) &&
         selects(json_object_get(cond, "platforms"), "includePlatforms",
                 "excludePlatforms", platform, "all", 0) &&
         client_type_selects(json_object_get(cond, "clientAppTypes"),
                             ctx_str(ctx, "client_app_type"));
}

/* ---- requirements --------------------------------------------------------- */

static void why(json_t *reasons, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void why(json_t *reasons, const char *fmt, ...)
{
  char buf[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  json_array_append_new(reasons, json_string(buf));
}

/* Is the device known, fresh and compliant?  If not, and reasons is given,
 * say why. */
static int device_compliant(const struct mdm_access_device *dev,
                            long long max_age_h, int64_t now,
                            json_t *reasons)
{
  if(!dev->is_known) {
    if(reasons)
      why(reasons, "the device is unknown");
    return 0;
  }
  if(dev->last_seen <= 0 || now - dev->last_seen > max_age_h * 3600) {
    if(reasons) {
      if(dev->last_seen <= 0)
        why(reasons, "the device has never checked in");
      else
        why(reasons, "the device last checked in %lld h ago (stale after "
            "%lld h)", (long long)((now - dev->last_seen) / 3600),
            max_age_h);
    }
    return 0;
  }
  if(!dev->compliance || strcmp(dev->compliance, "compliant")) {
    if(reasons)
      why(reasons, "the device is %s",
          dev->compliance && !strcmp(dev->compliance, "noncompliant")
          ? "noncompliant" : "of unknown compliance");
    return 0;
  }
  return 1;
}

static int device_domain_joined(const struct mdm_access_device *dev,
                                json_t *reasons)
{
  const char *v = json_string_value(json_object_get(dev->labels,
                                                    "domain-joined"));
  if(!dev->is_known) {
    if(reasons)
      why(reasons, "the device is unknown");
    return 0;
  }
  if(!v || strcmp(v, "true")) {
    if(reasons)
      why(reasons, "the device is not domain-joined");
    return 0;
  }
  return 1;
}

/* The requirements of an applying policy; a failed one blocks. */
static void requirements(json_t *cond, json_t *ctx,
                         const struct mdm_access_device *dev, int64_t now,
                         json_t *reasons)
{
  json_t *ds = json_object_get(cond, "deviceStates");
  json_t *risk = json_object_get(cond, "userRisk");
  json_t *net = json_object_get(cond, "network");
  json_t *user = json_object_get(ctx, "user");
  json_t *cnet = json_object_get(ctx, "network");
  json_t *mx = json_object_get(ds, "maxCheckinAgeHours");
  long long max_age = mx ? json_integer_value(mx)
                         : MDM_ACCESS_DEFAULT_MAX_AGE_H;

  if(json_is_true(json_object_get(ds, "requireCompliantDevice")))
    device_compliant(dev, max_age, now, reasons);
  if(json_is_true(json_object_get(ds, "requireDomainJoinedDevice")))
    device_domain_joined(dev, reasons);
  if(risk) {
    long long max = json_integer_value(json_object_get(risk,
                                                       "maxPasswordAgeDays"));
    json_t *age = json_object_get(user, "password_age_days");
    if(!json_is_integer(age))
      why(reasons, "the password's age is unknown");
    else if(json_integer_value(age) > max)
      why(reasons, "the password is %lld days old (at most %lld)",
          (long long)json_integer_value(age), max);
  }
  if(net) {
    json_t *ssids = json_object_get(net, "allowedSsids");
    const char *ssid = ctx_str(cnet, "ssid");
    json_t *vpn = json_object_get(cnet, "vpn_connected");
    if(ssids && !ssid)
      why(reasons, "the network (SSID) is unknown");
    else if(ssids && !list_has(ssids, ssid, 0))
      why(reasons, "the network '%.64s' is not allowed", ssid);
    if(json_is_true(json_object_get(net, "requireVpn")) &&
       !json_is_true(vpn))
      why(reasons, json_is_false(vpn) ? "the VPN is not connected"
                                      : "the VPN state is unknown");
  }
}

/* ---- grant controls ------------------------------------------------------- */

static int is_mfa_control(const char *c)
{
  return !strcmp(c, "requireMfa") || !strcmp(c, "mfa");
}

/* Is control c satisfied?  mfa_assumed: treat MFA as done. */
static int control_ok(const char *c, json_t *ctx,
                      const struct mdm_access_device *dev, long long max_age,
                      int64_t now, int mfa_assumed, json_t *reasons)
{
  if(is_mfa_control(c)) {
    int ok = mfa_assumed ||
             json_is_true(json_object_get(json_object_get(ctx, "user"),
                                          "mfa_completed"));
    if(!ok && reasons)
      why(reasons, "multi-factor authentication is required");
    return ok;
  }
  if(!strcmp(c, "compliantDevice") || !strcmp(c, "requireCompliantDevice"))
    return device_compliant(dev, max_age, now, reasons);
  if(!strcmp(c, "domainJoinedDevice") ||
     !strcmp(c, "requireDomainJoinedDevice"))
    return device_domain_joined(dev, reasons);
  if(reasons)
    why(reasons, "blocked by the policy");
  return 0;   /* "block", and anything unknown */
}

static int grant_ok(json_t *grant, json_t *ctx,
                    const struct mdm_access_device *dev, long long max_age,
                    int64_t now, int mfa_assumed, json_t *reasons)
{
  json_t *list = json_object_get(grant, "builtInControls"), *c;
  int is_and = !strcmp(json_string_value(json_object_get(grant, "operator"))
                       ? json_string_value(json_object_get(grant, "operator"))
                       : "AND", "AND");
  int any = 0, all = 1;
  size_t i;
  json_array_foreach(list, i, c) {
    int ok = control_ok(json_string_value(c), ctx, dev, max_age, now,
                        mfa_assumed, reasons);
    any |= ok;
    all &= ok;
  }
  return is_and ? all : any;
}

/* ---- one policy, all policies --------------------------------------------- */

static const char *mode_of(json_t *spec)
{
  const char *s = json_string_value(json_object_get(spec, "state"));
  if(!s || !strcmp(s, "enabled"))
    return "enabled";
  if(!strcmp(s, "disabled"))
    return "disabled";
  return "reportOnly";
}

static enum decision one_policy(json_t *spec, json_t *ctx,
                                const struct mdm_access_device *dev,
                                int64_t now, int *is_applying,
                                json_t *reasons)
{
  json_t *cond = json_object_get(spec, "conditions");
  json_t *grant = json_object_get(spec, "grantControls");
  json_t *mx = json_object_get(json_object_get(cond, "deviceStates"),
                               "maxCheckinAgeHours");
  long long max_age = mx ? json_integer_value(mx)
                         : MDM_ACCESS_DEFAULT_MAX_AGE_H;
  json_t *tmp;
  size_t before;

  *is_applying = applies(cond, ctx, dev);
  if(!*is_applying)
    return D_ALLOW;
  requirements(cond, ctx, dev, now, reasons);
  if(json_array_size(reasons))
    return D_BLOCK;
  before = json_array_size(reasons);
  if(grant_ok(grant, ctx, dev, max_age, now, 0, NULL))
    return D_ALLOW;
  /* Would MFA make it pass?  Then that is what is asked. */
  if(grant_ok(grant, ctx, dev, max_age, now, 1, NULL)) {
    why(reasons, "multi-factor authentication is required");
    return D_REQUIRE_MFA;
  }
  /* Say what failed (with OR, every control failed). */
  tmp = json_array();
  grant_ok(grant, ctx, dev, max_age, now, 0, tmp);
  json_array_extend(reasons, tmp);
  json_decref(tmp);
  if(json_array_size(reasons) == before)
    why(reasons, "the grant controls are not satisfied");
  return D_BLOCK;
}

mdm_rc mdm_access_evaluate(json_t *policies, json_t *ctx,
                           const struct mdm_access_device *dev, int64_t now,
                           json_t **out)
{
  json_t *res, *all_reasons, *list, *p;
  enum decision overall = D_ALLOW;
  size_t i;

  *out = NULL;
  if(ctx && !json_is_object(ctx) && !json_is_null(ctx))
    return MDM_ERR_INVAL;
  if(json_is_null(ctx))
    ctx = NULL;
  res = json_object();
  all_reasons = json_array();
  list = json_array();
  if(!res || !all_reasons || !list) {
    json_decref(res);
    json_decref(all_reasons);
    json_decref(list);
    return MDM_ERR_NOMEM;
  }
  json_array_foreach(policies, i, p) {
    json_t *spec = json_object_get(p, "spec");
    const char *name = json_string_value(
      json_object_get(json_object_get(p, "metadata"), "name"));
    const char *mode = mode_of(spec);
    json_t *reasons = json_array(), *entry;
    int is_applying = 0, is_enforced = !strcmp(mode, "enabled");
    enum decision d = D_ALLOW;
    size_t k;
    json_t *r;

    if(strcmp(mode, "disabled"))
      d = one_policy(spec, ctx, dev, now, &is_applying, reasons);
    entry = json_pack("{s:s, s:s, s:b, s:s?, s:o}", "name", name ? name : "",
                      "mode", mode, "applies", is_applying, "decision",
                      is_applying ? decision_names[d] : NULL, "reasons",
                      reasons);
    json_array_append_new(list, entry);
    if(!is_enforced || !is_applying || d == D_ALLOW)
      continue;
    if(d > overall)
      overall = d;
    json_array_foreach(reasons, k, r) {
      char buf[400];
      snprintf(buf, sizeof(buf), "policy %s: %s", name ? name : "",
               json_string_value(r));
      json_array_append_new(all_reasons, json_string(buf));
    }
  }
  json_object_set_new(res, "decision", json_string(decision_names[overall]));
  json_object_set_new(res, "reasons", all_reasons);
  json_object_set_new(res, "policies", list);
  *out = res;
  return MDM_OK;
}
