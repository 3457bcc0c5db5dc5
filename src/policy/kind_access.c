/*
 * kind_access.c: the ConditionalAccessPolicy validator (CONTRACT §6, the
 * brief's conditional-access JSON).  The spec is the brief's shape, which is
 * Microsoft Graph's conditionalAccessPolicy trimmed to what a device
 * management system can decide, plus user-risk and network conditions:
 *
 *   state: enabled | reportOnly | disabled         (default enabled; Graph's
 *          enabledForReportingButNotEnforced means reportOnly)
 *   conditions:
 *     applications: {includeApplications: [All|APP...], excludeApplications}
 *     clientAppTypes: [all|browser|mobileApps|mobileAppsAndDesktopClients|
 *                      exchangeActiveSync|other]
 *     deviceStates: {requireCompliantDevice, requireDomainJoinedDevice,
 *                    maxCheckinAgeHours}
 *     users: {includeUsers: [All|UPN...], excludeUsers}
 *     platforms: {includePlatforms: [all|linux|...], excludePlatforms}
 *     userRisk: {maxPasswordAgeDays}
 *     network: {allowedSsids: [SSID...], requireVpn}
 *   grantControls: {operator: AND|OR, builtInControls: [block | requireMfa |
 *                   compliantDevice | domainJoinedDevice ...]}
 *
 * The evaluator (access.c) relies on what is checked here.
 */
#include <string.h>
#include <jansson.h>
#include "policy/doc_int.h"

#define MAX_LIST 1000
#define MAX_ITEM 256

static const char *const states[] = {
  "enabled", "disabled", "reportOnly", "enabledForReportingButNotEnforced",
  NULL};
static const char *const client_types[] = {
  "all", "browser", "mobileApps", "mobileAppsAndDesktopClients",
  "exchangeActiveSync", "other", NULL};
static const char *const platforms[] = {
  "all", "linux", "android", "ios", "macos", "windows", NULL};
static const char *const controls[] = {
  "block", "requireMfa", "mfa", "compliantDevice", "requireCompliantDevice",
  "domainJoinedDevice", "requireDomainJoinedDevice", NULL};
static const char *const operators[] = {"AND", "OR", NULL};

/* A list of 1..MAX_LIST strings of 1..MAX_ITEM bytes, each in allowed
 * (a NULL-terminated list) when allowed is given. */
static mdm_rc check_list(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *const *allowed = arg;
  json_t *item;
  size_t i;
  if(!json_is_array(val) || !json_array_size(val) ||
     json_array_size(val) > MAX_LIST)
    return mdm_verr(v, "expected a list of 1 to %d strings", MAX_LIST);
  json_array_foreach(val, i, item) {
    const char *s = json_string_value(item);
    size_t old = mdm_vpath_index(v, i);
    mdm_rc rc = MDM_OK;
    if(!s || !*s || strlen(s) > MAX_ITEM)
      rc = mdm_verr(v, "expected a string of 1 to %d bytes", MAX_ITEM);
    else if(allowed && mdm_str_index(allowed, s) < 0) {
      char q[MDM_VQUOTE_LEN];
      rc = mdm_verr(v, "unknown value %s", mdm_vquote(s, q, sizeof(q)));
    }
    mdm_vpath_pop(v, old);
    if(rc)
      return rc;
  }
  return MDM_OK;
}

static const struct mdm_vrange hours = {1, 24 * 365};
static const struct mdm_vrange days = {1, 3650};

static mdm_rc check_applications(struct mdm_vctx *v, json_t *val,
                                 const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"includeApplications", 1, check_list, NULL},
    {"excludeApplications", 0, check_list, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_device_states(struct mdm_vctx *v, json_t *val,
                                  const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"requireCompliantDevice", 0, mdm_vcheck_bool, NULL},
    {"requireDomainJoinedDevice", 0, mdm_vcheck_bool, NULL},
    {"maxCheckinAgeHours", 0, mdm_vcheck_int, &hours},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_users(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"includeUsers", 1, check_list, NULL},
    {"excludeUsers", 0, check_list, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_platforms(struct mdm_vctx *v, json_t *val,
                              const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"includePlatforms", 1, check_list, platforms},
    {"excludePlatforms", 0, check_list, platforms},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_user_risk(struct mdm_vctx *v, json_t *val,
                              const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"maxPasswordAgeDays", 1, mdm_vcheck_int, &days},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_network(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"allowedSsids", 0, check_list, NULL},
    {"requireVpn", 0, mdm_vcheck_bool, NULL},
  };
  mdm_rc rc;
  (void)arg;
  rc = mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
  if(!rc && !json_object_size(val))
    return mdm_verr(v, "expected allowedSsids or requireVpn");
  return rc;
}

static mdm_rc check_conditions(struct mdm_vctx *v, json_t *val,
                               const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"applications", 1, check_applications, NULL},
    {"clientAppTypes", 0, check_list, client_types},
    {"deviceStates", 0, check_device_states, NULL},
    {"users", 0, check_users, NULL},
    {"platforms", 0, check_platforms, NULL},
    {"userRisk", 0, check_user_risk, NULL},
    {"network", 0, check_network, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
}

static mdm_rc check_grant(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const struct mdm_vfield f[] = {
    {"operator", 1, mdm_vcheck_enum, operators},
    {"builtInControls", 1, check_list, controls},
  };
  json_t *list, *item;
  size_t i;
  mdm_rc rc;
  (void)arg;
  rc = mdm_vobject(v, val, f, sizeof(f) / sizeof(f[0]), 0);
  if(rc)
    return rc;
  /* "block" stands alone: with anything else the policy would read as
   * "block, or else..." */
  list = json_object_get(val, "builtInControls");
  json_array_foreach(list, i, item)
    if(!strcmp(json_string_value(item), "block") &&
       json_array_size(list) > 1) {
      mdm_vpath_key(v, "builtInControls");
      return mdm_verr(v, "'block' cannot be combined with other controls");
    }
  return MDM_OK;
}

mdm_rc mdm_kind_access_validate(struct mdm_vctx *v, json_t *spec)
{
  static const struct mdm_vfield f[] = {
    {"state", 0, mdm_vcheck_enum, states},
    {"conditions", 1, check_conditions, NULL},
    {"grantControls", 1, check_grant, NULL},
  };
  return mdm_vobject(v, spec, f, sizeof(f) / sizeof(f[0]), 0);
}
