/*
 * test_access.c: the conditional-access evaluator (src/policy/access.c) as
 * a table of cases, each with its policies, sign-in context, device,
 * expected decision and exact reasons; then the ConditionalAccessPolicy
 * validator (src/policy/kind_access.c) with exact messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "policy/access.h"
#include "policy/doc.h"

#define NOW ((int64_t)1800000000)

/* The brief's JSON, verbatim, as a spec. */
#define BRIEF                                                               \
  "{\"conditions\": {\"deviceStates\": {\"requireCompliantDevice\": true, " \
  "\"requireDomainJoinedDevice\": false}, \"applications\": "              \
  "{\"includeApplications\": [\"All\"]}, \"clientAppTypes\": "             \
  "[\"mobileApps\", \"browser\"]}, \"grantControls\": {\"operator\": "     \
  "\"OR\", \"builtInControls\": [\"requireMfa\"]}}"
#define ALL_APPS "\"applications\": {\"includeApplications\": [\"All\"]}"
#define GRANT(op, list)                                                     \
  "\"grantControls\": {\"operator\": \"" op "\", \"builtInControls\": ["   \
  list "]}"
#define POL(name, spec) "{\"metadata\": {\"name\": \"" name "\"}, " \
  "\"spec\": " spec "}"
#define ONE(name, spec) "[" POL(name, spec) "]"
#define SPEC(cond, grant) "{\"conditions\": {" cond "}, " grant "}"
#define MFA_OK "{\"user\": {\"mfa_completed\": true}, " \
  "\"client_app_type\": \"browser\"}"
#define MFA_NO "{\"user\": {\"mfa_completed\": false}, " \
  "\"client_app_type\": \"browser\"}"

static json_t *labels_dj;

enum dev { D_OK, D_NC, D_UNKNOWN, D_STALE, D_NEVER, D_UNK, D_DJ, D_30H,
           D_WIN };

static struct mdm_access_device device(enum dev d)
{
  struct mdm_access_device x = {1, "compliant", "linux", NOW - 60, NULL};
  switch(d) {
  case D_OK: break;
  case D_NC: x.compliance = "noncompliant"; break;
  case D_UNKNOWN: memset(&x, 0, sizeof(x)); break;
  case D_STALE: x.last_seen = NOW - 25 * 3600; break;
  case D_NEVER: x.last_seen = 0; break;
  case D_UNK: x.compliance = "unknown"; break;
  case D_DJ: x.labels = labels_dj; break;
  case D_30H: x.last_seen = NOW - 30 * 3600; break;
  case D_WIN: x.platform = "windows"; break;
  }
  return x;
}

struct tcase {
  const char *name;
  const char *policies;   /* JSON array */
  const char *ctx;        /* JSON object, or NULL */
  enum dev dev;
  const char *decision;
  const char *reasons;    /* JSON array */
};

static const struct tcase cases[] = {
  /* The brief's policy: compliant device required, then MFA. */
  {"brief: compliant, MFA done", ONE("brief", BRIEF), MFA_OK, D_OK, "allow",
   "[]"},
  {"brief: compliant, no MFA", ONE("brief", BRIEF), MFA_NO, D_OK,
   "require_mfa",
   "[\"policy brief: multi-factor authentication is required\"]"},
  {"brief: MFA unknown", ONE("brief", BRIEF), "{}", D_OK, "require_mfa",
   "[\"policy brief: multi-factor authentication is required\"]"},
  {"brief: noncompliant", ONE("brief", BRIEF), MFA_OK, D_NC, "block",
   "[\"policy brief: the device is noncompliant\"]"},
  {"brief: unknown device", ONE("brief", BRIEF), MFA_OK, D_UNKNOWN, "block",
   "[\"policy brief: the device is unknown\"]"},
  {"brief: stale device", ONE("brief", BRIEF), MFA_OK, D_STALE, "block",
   "[\"policy brief: the device last checked in 25 h ago (stale after "
   "24 h)\"]"},
  {"brief: never checked in", ONE("brief", BRIEF), MFA_OK, D_NEVER, "block",
   "[\"policy brief: the device has never checked in\"]"},
  {"brief: compliance unknown", ONE("brief", BRIEF), MFA_OK, D_UNK, "block",
   "[\"policy brief: the device is of unknown compliance\"]"},
  {"brief: other client type does not apply", ONE("brief", BRIEF),
   "{\"client_app_type\": \"other\"}", D_NC, "allow", "[]"},
  {"brief: unknown client type applies", ONE("brief", BRIEF),
   "{\"user\": {\"mfa_completed\": true}}", D_NC, "block",
   "[\"policy brief: the device is noncompliant\"]"},
  {"brief: mobileAppsAndDesktopClients is mobileApps", ONE("brief", BRIEF),
   "{\"client_app_type\": \"mobileAppsAndDesktopClients\"}", D_OK,
   "require_mfa",
   "[\"policy brief: multi-factor authentication is required\"]"},

  /* AND of MFA and a compliant device. */
  {"AND: both", ONE("p", SPEC(ALL_APPS, GRANT("AND", "\"requireMfa\", "
                                                "\"compliantDevice\""))),
   MFA_OK, D_OK, "allow", "[]"},
  {"AND: no MFA", ONE("p", SPEC(ALL_APPS, GRANT("AND", "\"requireMfa\", "
                                                  "\"compliantDevice\""))),
   MFA_NO, D_OK, "require_mfa",
   "[\"policy p: multi-factor authentication is required\"]"},
  {"AND: noncompliant", ONE("p", SPEC(ALL_APPS, GRANT("AND", "\"requireMfa\","
                                                      " \"compliantDevice\""))),
   MFA_OK, D_NC, "block", "[\"policy p: the device is noncompliant\"]"},
  {"AND: neither", ONE("p", SPEC(ALL_APPS, GRANT("AND", "\"requireMfa\", "
                                                 "\"compliantDevice\""))),
   MFA_NO, D_NC, "block",
   "[\"policy p: multi-factor authentication is required\", "
   "\"policy p: the device is noncompliant\"]"},

  /* OR of MFA and a compliant device. */
  {"OR: compliant, no MFA", ONE("p", SPEC(ALL_APPS, GRANT("OR", "\"requireMfa"
                                                          "\", \"compliant"
                                                          "Device\""))),
   MFA_NO, D_OK, "allow", "[]"},
  {"OR: MFA, noncompliant", ONE("p", SPEC(ALL_APPS, GRANT("OR", "\"requireMf"
                                                          "a\", \"compliant"
                                                          "Device\""))),
   MFA_OK, D_NC, "allow", "[]"},
  {"OR: neither: MFA would do", ONE("p", SPEC(ALL_APPS, GRANT("OR", "\"requi"
                                                              "reMfa\", \"co"
                                                              "mpliantDevice"
                                                              "\""))),
   MFA_NO, D_NC, "require_mfa",
   "[\"policy p: multi-factor authentication is required\"]"},
  {"OR: unknown device, no MFA", ONE("p", SPEC(ALL_APPS, GRANT("OR", "\"requ"
                                                               "ireMfa\", \"c"
                                                               "ompliantDevic"
                                                               "e\""))),
   MFA_NO, D_UNKNOWN, "require_mfa",
   "[\"policy p: multi-factor authentication is required\"]"},

  /* Block, by application. */
  {"block: the app", ONE("b", SPEC("\"applications\": {\"includeApplications"
                                   "\": [\"crm\"]}", GRANT("OR", "\"block\""))),
   "{\"application\": \"crm\"}", D_OK, "block",
   "[\"policy b: blocked by the policy\"]"},
  {"block: another app", ONE("b", SPEC("\"applications\": {\"includeApplicat"
                                       "ions\": [\"crm\"]}",
                                       GRANT("OR", "\"block\""))),
   "{\"application\": \"mail\"}", D_OK, "allow", "[]"},
  {"block: app unknown", ONE("b", SPEC("\"applications\": {\"includeApplicat"
                                       "ions\": [\"crm\"]}",
                                       GRANT("OR", "\"block\""))),
   "{}", D_OK, "block", "[\"policy b: blocked by the policy\"]"},
  {"block: excluded app", ONE("b", SPEC("\"applications\": {\"includeApplica"
                                        "tions\": [\"All\"], \"excludeApplic"
                                        "ations\": [\"crm\"]}",
                                        GRANT("OR", "\"block\""))),
   "{\"application\": \"crm\"}", D_OK, "allow", "[]"},
  {"block: null context", ONE("b", SPEC(ALL_APPS, GRANT("OR", "\"block\""))),
   NULL, D_OK, "block", "[\"policy b: blocked by the policy\"]"},

  /* Modes. */
  {"report-only block is not enforced",
   ONE("r", "{\"state\": \"reportOnly\", \"conditions\": {" ALL_APPS "}, "
       GRANT("OR", "\"block\"") "}"),
   "{}", D_OK, "allow", "[]"},
  {"Graph's report-only name",
   ONE("r", "{\"state\": \"enabledForReportingButNotEnforced\", "
       "\"conditions\": {" ALL_APPS "}, " GRANT("OR", "\"block\"") "}"),
   "{}", D_OK, "allow", "[]"},
  {"disabled", ONE("d", "{\"state\": \"disabled\", \"conditions\": {"
                   ALL_APPS "}, " GRANT("OR", "\"block\"") "}"),
   "{}", D_OK, "allow", "[]"},

  /* Users. */
  {"users: included (case-insensitive)",
   ONE("u", SPEC(ALL_APPS ", \"users\": {\"includeUsers\": "
                 "[\"alice@corp.example\"]}", GRANT("OR", "\"block\""))),
   "{\"user\": {\"upn\": \"ALICE@corp.example\"}}", D_OK, "block",
   "[\"policy u: blocked by the policy\"]"},
  {"users: another user", ONE("u", SPEC(ALL_APPS ", \"users\": {\"includeUs"
                                        "ers\": [\"alice@corp.example\"]}",
                                        GRANT("OR", "\"block\""))),
   "{\"user\": {\"upn\": \"bob@corp.example\"}}", D_OK, "allow", "[]"},
  {"users: excluded", ONE("u", SPEC(ALL_APPS ", \"users\": {\"includeUsers\""
                                    ": [\"All\"], \"excludeUsers\": [\"bob@c"
                                    "orp.example\"]}",
                                    GRANT("OR", "\"block\""))),
   "{\"user\": {\"upn\": \"bob@corp.example\"}}", D_OK, "allow", "[]"},
  {"users: unknown user applies",
   ONE("u", SPEC(ALL_APPS ", \"users\": {\"includeUsers\": "
                 "[\"alice@corp.example\"]}", GRANT("OR", "\"block\""))),
   "{}", D_OK, "block", "[\"policy u: blocked by the policy\"]"},

  /* Platforms. */
  {"platforms: another platform",
   ONE("w", SPEC(ALL_APPS ", \"platforms\": {\"includePlatforms\": "
                 "[\"windows\"]}", GRANT("OR", "\"block\""))),
   "{}", D_OK, "allow", "[]"},
  {"platforms: included", ONE("w", SPEC(ALL_APPS ", \"platforms\": {\"includ"
                                        "ePlatforms\": [\"windows\"]}",
                                        GRANT("OR", "\"block\""))),
   "{}", D_WIN, "block", "[\"policy w: blocked by the policy\"]"},
  {"platforms: unknown device applies",
   ONE("w", SPEC(ALL_APPS ", \"platforms\": {\"includePlatforms\": "
                 "[\"windows\"]}", GRANT("OR", "\"block\""))),
   "{}", D_UNKNOWN, "block", "[\"policy w: blocked by the policy\"]"},
  {"platforms: excluded", ONE("w", SPEC(ALL_APPS ", \"platforms\": {\"includ"
                                        "ePlatforms\": [\"all\"], \"excludeP"
                                        "latforms\": [\"linux\"]}",
                                        GRANT("OR", "\"block\""))),
   "{}", D_OK, "allow", "[]"},

  /* User risk: password age. */
  {"password: young enough",
   ONE("pw", SPEC(ALL_APPS ", \"userRisk\": {\"maxPasswordAgeDays\": 90}",
                  GRANT("OR", "\"requireMfa\""))),
   "{\"user\": {\"mfa_completed\": true, \"password_age_days\": 30}}", D_OK,
   "allow", "[]"},
  {"password: too old",
   ONE("pw", SPEC(ALL_APPS ", \"userRisk\": {\"maxPasswordAgeDays\": 90}",
                  GRANT("OR", "\"requireMfa\""))),
   "{\"user\": {\"mfa_completed\": true, \"password_age_days\": 120}}", D_OK,
   "block", "[\"policy pw: the password is 120 days old (at most 90)\"]"},
  {"password: age unknown",
   ONE("pw", SPEC(ALL_APPS ", \"userRisk\": {\"maxPasswordAgeDays\": 90}",
                  GRANT("OR", "\"requireMfa\""))),
   "{\"user\": {\"mfa_completed\": true}}", D_OK, "block",
   "[\"policy pw: the password's age is unknown\"]"},

  /* Network: SSID and VPN. */
  {"ssid: allowed",
   ONE("n", SPEC(ALL_APPS ", \"network\": {\"allowedSsids\": [\"CORP-WIFI\"]}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{\"network\": {\"ssid\": \"CORP-WIFI\"}}", D_OK, "allow", "[]"},
  {"ssid: not allowed",
   ONE("n", SPEC(ALL_APPS ", \"network\": {\"allowedSsids\": [\"CORP-WIFI\"]}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{\"network\": {\"ssid\": \"GUEST\"}}", D_OK, "block",
   "[\"policy n: the network 'GUEST' is not allowed\"]"},
  {"ssid: unknown",
   ONE("n", SPEC(ALL_APPS ", \"network\": {\"allowedSsids\": [\"CORP-WIFI\"]}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{\"network\": {\"ssid\": null}}", D_OK, "block",
   "[\"policy n: the network (SSID) is unknown\"]"},
  {"vpn: connected",
   ONE("v", SPEC(ALL_APPS ", \"network\": {\"requireVpn\": true}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{\"network\": {\"vpn_connected\": true}}", D_OK, "allow", "[]"},
  {"vpn: not connected",
   ONE("v", SPEC(ALL_APPS ", \"network\": {\"requireVpn\": true}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{\"network\": {\"vpn_connected\": false}}", D_OK, "block",
   "[\"policy v: the VPN is not connected\"]"},
  {"vpn: unknown",
   ONE("v", SPEC(ALL_APPS ", \"network\": {\"requireVpn\": true}",
                 GRANT("OR", "\"compliantDevice\""))),
   "{}", D_OK, "block", "[\"policy v: the VPN state is unknown\"]"},

  /* Domain join (the device label domain-joined=true). */
  {"domain-joined: yes",
   ONE("dj", SPEC(ALL_APPS ", \"deviceStates\": {\"requireDomainJoinedDevice"
                  "\": true}", GRANT("OR", "\"requireMfa\""))),
   MFA_OK, D_DJ, "allow", "[]"},
  {"domain-joined: no",
   ONE("dj", SPEC(ALL_APPS ", \"deviceStates\": {\"requireDomainJoinedDevice"
                  "\": true}", GRANT("OR", "\"requireMfa\""))),
   MFA_OK, D_OK, "block", "[\"policy dj: the device is not domain-joined\"]"},
  {"domain-joined as a grant control",
   ONE("dj", SPEC(ALL_APPS, GRANT("OR", "\"domainJoinedDevice\""))),
   "{}", D_OK, "block", "[\"policy dj: the device is not domain-joined\"]"},

  /* Staleness threshold. */
  {"maxCheckinAgeHours 48: 30 h is fresh",
   ONE("s", SPEC(ALL_APPS ", \"deviceStates\": {\"requireCompliantDevice\": "
                 "true, \"maxCheckinAgeHours\": 48}",
                 GRANT("OR", "\"requireMfa\""))),
   MFA_OK, D_30H, "allow", "[]"},
  {"default 24 h: 30 h is stale",
   ONE("s", SPEC(ALL_APPS, GRANT("OR", "\"compliantDevice\""))),
   "{}", D_30H, "block",
   "[\"policy s: the device last checked in 30 h ago (stale after 24 h)\"]"},

  /* Several policies: all enforced ones must pass. */
  {"two policies: MFA and block",
   "[" POL("a", BRIEF) ", " POL("b", SPEC(ALL_APPS, GRANT("OR", "\"block\"")))
   "]", MFA_NO, D_OK, "block",
   "[\"policy a: multi-factor authentication is required\", "
   "\"policy b: blocked by the policy\"]"},
  {"two policies: both pass",
   "[" POL("a", BRIEF) ", " POL("b", SPEC(ALL_APPS, GRANT("OR", "\"compliant"
                                                         "Device\""))) "]",
   MFA_OK, D_OK, "allow", "[]"},
  {"no policies", "[]", "{}", D_UNKNOWN, "allow", "[]"},
};

static void test_table(void **state)
{
  size_t i;
  (void)state;
  assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct tcase *c = &cases[i];
    json_error_t je;
    json_t *pol = json_loads(c->policies, 0, &je), *ctx = NULL, *out = NULL;
    json_t *want = json_loads(c->reasons, 0, &je);
    struct mdm_access_device dev = device(c->dev);
    char *got;
    if(!pol || !want)
      fail_msg("%s: bad test JSON: %s", c->name, je.text);
    if(c->ctx) {
      ctx = json_loads(c->ctx, 0, &je);
      if(!ctx)
        fail_msg("%s: bad context JSON: %s", c->name, je.text);
    }
    assert_int_equal(mdm_access_evaluate(pol, ctx, &dev, NOW, &out), 0);
    got = json_dumps(out, JSON_COMPACT);
    if(strcmp(json_string_value(json_object_get(out, "decision")),
              c->decision) ||
       !json_equal(json_object_get(out, "reasons"), want))
      fail_msg("%s: got %s", c->name, got);
    assert_int_equal(json_array_size(json_object_get(out, "policies")),
                     json_array_size(pol));
    free(got);
    json_decref(out);
    json_decref(ctx);
    json_decref(pol);
    json_decref(want);
  }
}

static void test_report_only_is_reported(void **state)
{
  json_t *pol = json_loads(
    "[" POL("r", "{\"state\": \"reportOnly\", \"conditions\": {" ALL_APPS
            "}, " GRANT("OR", "\"block\"") "}") ", "
    POL("d", "{\"state\": \"disabled\", \"conditions\": {" ALL_APPS "}, "
        GRANT("OR", "\"block\"") "}") "]", 0, NULL);
  json_t *out = NULL, *want;
  struct mdm_access_device dev = device(D_OK);
  (void)state;
  assert_int_equal(mdm_access_evaluate(pol, NULL, &dev, NOW, &out), 0);
  want = json_loads(
    "{\"decision\": \"allow\", \"reasons\": [], \"policies\": ["
    "{\"name\": \"r\", \"mode\": \"reportOnly\", \"applies\": true, "
    "\"decision\": \"block\", \"reasons\": [\"blocked by the policy\"]}, "
    "{\"name\": \"d\", \"mode\": \"disabled\", \"applies\": false, "
    "\"decision\": null, \"reasons\": []}]}", 0, NULL);
  assert_non_null(want);
  if(!json_equal(out, want)) {
    char *s = json_dumps(out, 0);
    fail_msg("got %s", s);
  }
  json_decref(want);
  json_decref(out);
  json_decref(pol);
}

static void test_bad_context(void **state)
{
  json_t *pol = json_array(), *ctx = json_array(), *out = NULL;
  struct mdm_access_device dev = device(D_OK);
  (void)state;
  assert_int_equal(mdm_access_evaluate(pol, ctx, &dev, NOW, &out),
                   MDM_ERR_INVAL);
  assert_null(out);
  json_decref(ctx);
  /* Fields of the wrong type are unknowns. */
  ctx = json_loads("{\"user\": \"x\", \"network\": 3, \"application\": 7}", 0,
                   NULL);
  json_decref(pol);
  pol = json_loads(ONE("brief", BRIEF), 0, NULL);
  assert_int_equal(mdm_access_evaluate(pol, ctx, &dev, NOW, &out), 0);
  assert_string_equal(json_string_value(json_object_get(out, "decision")),
                      "require_mfa");
  json_decref(out);
  json_decref(ctx);
  json_decref(pol);
}

/* ---- the validator ------------------------------------------------------ */

static void validate(const char *spec_yaml, const char *want)
{
  struct mdm_docset ds;
  char text[4096], err[512] = "";
  mdm_rc rc;
  snprintf(text, sizeof(text),
           "apiVersion: mdm/v1\nkind: ConditionalAccessPolicy\n"
           "metadata: {name: ca}\nspec:\n%s", spec_yaml);
  mdm_docset_init(&ds);
  if(mdm_doc_parse(&ds, "ca.yaml", text, strlen(text), err, sizeof(err)))
    fail_msg("parse: %s", err);
  rc = mdm_docset_validate(&ds, err, sizeof(err));
  if(!want && rc)
    fail_msg("refused: %s", err);
  if(want && !rc)
    fail_msg("accepted, wanted: %s", want);
  if(want)
    assert_string_equal(err, want);
  mdm_docset_release(&ds);
}

static void test_validator(void **state)
{
  (void)state;
  /* Valid: everything at once, YAML style. */
  validate("  state: reportOnly\n"
           "  conditions:\n"
           "    applications: {includeApplications: [All], "
           "excludeApplications: [payroll]}\n"
           "    clientAppTypes: [browser, mobileApps]\n"
           "    deviceStates: {requireCompliantDevice: true, "
           "maxCheckinAgeHours: 12}\n"
           "    users: {includeUsers: [All], excludeUsers: [bob@corp.example]}\n"
           "    platforms: {includePlatforms: [all], excludePlatforms: [ios]}\n"
           "    userRisk: {maxPasswordAgeDays: 90}\n"
           "    network: {allowedSsids: [CORP-WIFI], requireVpn: true}\n"
           "  grantControls: {operator: AND, builtInControls: [requireMfa, "
           "compliantDevice]}\n", NULL);
  validate("  conditions: {}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 5: spec.conditions.applications: required field is "
           "missing");
  validate("  conditions: {applications: {includeApplications: [All]}}\n",
           "ca.yaml: line 4: spec.grantControls: required field is missing");
  validate("  conditions: {applications: {includeApplications: [All]}}\n"
           "  grantControls: {operator: XOR, builtInControls: [block]}\n",
           "ca.yaml: line 6: spec.grantControls.operator: expected one of "
           "AND, OR (got 'XOR')");
  validate("  conditions: {applications: {includeApplications: [All]}}\n"
           "  grantControls: {operator: OR, builtInControls: [block, "
           "requireMfa]}\n",
           "ca.yaml: line 6: spec.grantControls.builtInControls: 'block' "
           "cannot be combined with other controls");
  validate("  conditions: {applications: {includeApplications: [All]}}\n"
           "  grantControls: {operator: OR, builtInControls: [approvedApp]}\n",
           "ca.yaml: line 6: spec.grantControls.builtInControls[0]: unknown "
           "value 'approvedApp'");
  validate("  conditions: {applications: {includeApplications: []}}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 5: spec.conditions.applications."
           "includeApplications: expected a list of 1 to 1000 strings");
  validate("  conditions:\n"
           "    applications: {includeApplications: [All]}\n"
           "    clientAppTypes: [fax]\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 7: spec.conditions.clientAppTypes[0]: unknown value "
           "'fax'");
  validate("  conditions:\n"
           "    applications: {includeApplications: [All]}\n"
           "    deviceStates: {requireCompliantDevice: yes}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 7: spec.conditions.deviceStates."
           "requireCompliantDevice: expected true or false ('yes' is a "
           "string in YAML 1.2)");
  validate("  conditions:\n"
           "    applications: {includeApplications: [All]}\n"
           "    network: {}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 7: spec.conditions.network: expected allowedSsids "
           "or requireVpn");
  validate("  conditions:\n"
           "    applications: {includeApplications: [All]}\n"
           "    userRisk: {maxPasswordAgeDays: 0}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 7: spec.conditions.userRisk.maxPasswordAgeDays: "
           "expected an integer in 1..3650");
  validate("  state: on\n"
           "  conditions: {applications: {includeApplications: [All]}}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 5: spec.state: expected one of enabled, disabled, "
           "reportOnly, enabledForReportingButNotEnforced (got 'on')");
  validate("  conditions: {applications: {includeApplications: [All]}, "
           "locations: {}}\n"
           "  grantControls: {operator: OR, builtInControls: [block]}\n",
           "ca.yaml: line 5: spec.conditions.locations: unknown field "
           "(expected one of applications, clientAppTypes, deviceStates, "
           "users, platforms, userRisk, network)");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_table),
    cmocka_unit_test(test_report_only_is_reported),
    cmocka_unit_test(test_bad_context),
    cmocka_unit_test(test_validator),
  };
  int rc;
  labels_dj = json_pack("{s:s}", "domain-joined", "true");
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  json_decref(labels_dj);
  return rc;
}
