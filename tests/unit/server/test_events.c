/*
 * test_events.c: the event stream's pure parts (src/server/events_format.c
 * and the settings in events.c): setting names, JSON strings, the events a
 * store change becomes, RFC 5424 frames, HEC envelopes and batches, and the
 * --events-* settings.
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
#include "server/events_int.h"

#define T_MS 1732800000123LL   /* 2024-11-28T13:20:00.123Z */

/* ---- setting names ------------------------------------------------------ */

static void test_setting_names(void **state)
{
  (void)state;
  assert_string_equal(mdm_ev_setting_name("encryption.root_encrypted", "d"),
                      "DeviceEncryption");
  assert_string_equal(mdm_ev_setting_name("encryption.method", "m"),
                      "DeviceEncryption");
  assert_string_equal(mdm_ev_setting_name("os.version", "os"), "OsVersion");
  assert_string_equal(mdm_ev_setting_name("integrity.rooted", "r"),
                      "Jailbreak");
  assert_string_equal(mdm_ev_setting_name("integrity.secure_boot", "s"),
                      "SecureBoot");
  assert_string_equal(mdm_ev_setting_name("integrity.tampered", "t"),
                      "DeviceIntegrity");
  assert_string_equal(mdm_ev_setting_name("security.firewall_enabled", "f"),
                      "Firewall");
  assert_string_equal(mdm_ev_setting_name("security.password_age_days", "p"),
                      "PasswordExpiration");
  assert_string_equal(mdm_ev_setting_name("security.password_length", "p"),
                      "Password");
  /* exact names only: "platformx" is not "platform" */
  assert_string_equal(mdm_ev_setting_name("platformx", "plat"), "plat");
  /* no entry: the rule's name; no fact at all: the rule or nothing */
  assert_string_equal(mdm_ev_setting_name("custom.thing", "my-rule"),
                      "my-rule");
  assert_string_equal(mdm_ev_setting_name("custom.thing", NULL),
                      "custom.thing");
  assert_string_equal(mdm_ev_setting_name(NULL, "r"), "r");
  assert_null(mdm_ev_setting_name(NULL, NULL));
  /* "encryption" without the dot is not under encryption. */
  assert_string_equal(mdm_ev_setting_name("encryptionx", "e"), "e");
}

/* ---- JSON strings ------------------------------------------------------- */

static char *json_of(const char *s)
{
  struct mdm_buf b;
  mdm_buf_init(&b, 4096);
  assert_int_equal(mdm_ev_json_str(&b, s), MDM_OK);
  return mdm_buf_steal(&b);
}

static void test_json_str(void **state)
{
  char *s;
  json_t *v;
  (void)state;
  s = json_of("plain");
  assert_string_equal(s, "\"plain\"");
  free(s);
  s = json_of("a\"b\\c\nd\te\x01" "f\x7f");
  assert_string_equal(s, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\"");
  free(s);
  s = json_of(NULL);
  assert_string_equal(s, "null");
  free(s);
  /* valid UTF-8 passes; invalid bytes become U+FFFD */
  s = json_of("caf\xc3\xa9 \xf0\x9f\x94\x92");
  assert_string_equal(s, "\"caf\xc3\xa9 \xf0\x9f\x94\x92\"");
  free(s);
  s = json_of("a\xff" "b\xc3" "c\xed\xa0\x80");
  v = json_loads(s, JSON_DECODE_ANY, NULL);
  assert_non_null(v);   /* always valid JSON */
  assert_string_equal(json_string_value(v),
                      "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd"
                      "\xef\xbf\xbd\xef\xbf\xbd");
  json_decref(v);
  free(s);
}

/* The whole buffer bound holds: an oversize string fails, leaving b. */
static void test_json_str_bounded(void **state)
{
  struct mdm_buf b;
  char big[300];
  (void)state;
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  mdm_buf_init(&b, 100);
  assert_int_equal(mdm_ev_json_str(&b, big), MDM_ERR_TOOBIG);
  mdm_buf_release(&b);
}

/* ---- ids ---------------------------------------------------------------- */

static void test_ids(void **state)
{
  struct mdm_ev_ids ids;
  char a[37], b[37];
  int i;
  (void)state;
  mdm_ev_ids_init(&ids, 42);
  mdm_ev_id_next(&ids, a);
  assert_int_equal(strlen(a), 36);
  assert_int_equal(a[8], '-');
  assert_int_equal(a[14], '4');   /* version 4 */
  assert_true(strchr("89ab", a[19]) != NULL);
  for(i = 0; i < 100000; i++) {
    mdm_ev_id_next(&ids, b);
    assert_string_not_equal(a, b);
  }
  /* another process (seed) gives other ids */
  mdm_ev_ids_release(&ids);
  mdm_ev_ids_init(&ids, 43);
  mdm_ev_id_next(&ids, b);
  mdm_ev_ids_release(&ids);
  mdm_ev_ids_init(&ids, 42);
  mdm_ev_id_next(&ids, a);
  assert_string_not_equal(a, b);
  mdm_ev_ids_release(&ids);
}

/* ---- events from changes ------------------------------------------------ */

static json_t *parse_event(const struct mdm_event *e)
{
  json_error_t err;
  json_t *v = json_loads(e->json, 0, &err);
  if(!v)
    fail_msg("event is not JSON: %s: %s", err.text, e->json);
  assert_int_equal(strlen(e->json), e->json_len);
  assert_null(strchr(e->json, '\n'));
  return v;
}

static const char *str(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static void test_compliance_noncompliant(void **state)
{
  struct mdm_change ch;
  struct mdm_ev_ids ids;
  struct mdm_ev_list l;
  json_t *e0, *e1, *e2;
  (void)state;
  memset(&ch, 0, sizeof(ch));
  ch.kind = MDM_CHANGE_COMPLIANCE;
  ch.at_ms = T_MS;
  ch.tenant_id = "t-id";
  ch.device_id = "dev-1";
  ch.upn = "alice@corp.example";
  ch.state = "noncompliant";
  ch.prev_state = "compliant";
  /* two encryption rules (one setting), one OS rule, one unknown */
  ch.reasons_json =
    "[{\"policy\":\"base\",\"rule\":\"disk\",\"fact\":"
    "\"encryption.root_encrypted\",\"op\":\"is_true\",\"expected\":true,"
    "\"actual\":false,\"state\":\"noncompliant\",\"message\":\"m1\"},"
    "{\"policy\":\"base\",\"rule\":\"os\",\"fact\":\"os.version\","
    "\"op\":\"version_ge\",\"expected\":\"13\",\"actual\":\"12\","
    "\"state\":\"noncompliant\",\"message\":\"m2\"},"
    "{\"policy\":\"extra\",\"rule\":\"luks\",\"fact\":\"encryption.method\","
    "\"op\":\"eq\",\"expected\":\"luks2\",\"actual\":null,"
    "\"state\":\"unknown\",\"message\":\"m3\"},"
    "{\"policy\":\"base\",\"rule\":\"fw\",\"fact\":"
    "\"security.firewall_enabled\",\"op\":\"is_true\",\"expected\":true,"
    "\"actual\":null,\"state\":\"unknown\",\"message\":\"m4\"}]";
  mdm_ev_ids_init(&ids, 1);
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  assert_int_equal(l.n, 3);
  e0 = parse_event(l.items[0]);
  e1 = parse_event(l.items[1]);
  e2 = parse_event(l.items[2]);
  assert_string_equal(str(e0, "type"), "compliance.changed");
  assert_string_equal(str(e0, "time"), "2024-11-28T13:20:00.123Z");
  assert_string_equal(str(e0, "tenant"), "default");
  assert_string_equal(str(e0, "tenantId"), "t-id");
  assert_string_equal(str(e0, "deviceId"), "dev-1");
  assert_string_equal(str(e0, "userPrincipalName"), "alice@corp.example");
  assert_string_equal(str(e0, "setting"), "DeviceEncryption");
  assert_string_equal(str(e0, "complianceState"), "noncompliant");
  assert_string_equal(str(e0, "deviceComplianceState"), "noncompliant");
  assert_string_equal(str(e0, "previousComplianceState"), "compliant");
  assert_string_equal(str(e0, "rule"), "disk");
  assert_string_equal(str(e0, "policy"), "base");
  assert_string_equal(str(e0, "reason"), "m1");
  assert_true(json_is_true(json_object_get(e0, "expected")));
  assert_true(json_is_false(json_object_get(e0, "actual")));
  assert_int_equal(json_array_size(json_object_get(e0, "rules")), 2);
  assert_string_equal(str(json_array_get(json_object_get(e0, "rules"), 1),
                          "rule"), "luks");
  assert_string_equal(str(json_array_get(json_object_get(e0, "rules"), 1),
                          "state"), "unknown");
  assert_string_equal(str(e1, "setting"), "OsVersion");
  assert_string_equal(str(e1, "complianceState"), "noncompliant");
  assert_string_equal(str(e1, "expected"), "13");
  /* a setting only unknown is not "noncompliant": the SIEM rule for
   * disabled settings must not match it */
  assert_string_equal(str(e2, "setting"), "Firewall");
  assert_string_equal(str(e2, "complianceState"), "unknown");
  assert_string_equal(str(e2, "deviceComplianceState"), "noncompliant");
  /* the syslog fields */
  assert_string_equal(l.items[0]->setting, "DeviceEncryption");
  assert_string_equal(l.items[0]->state, "noncompliant");
  assert_int_equal(l.items[0]->severity, 4);
  assert_int_equal(l.items[2]->severity, 5);
  assert_int_equal(l.items[0]->kind, MDM_EV_COMPLIANCE);
  /* every event its own id */
  assert_string_not_equal(str(e0, "id"), str(e1, "id"));
  json_decref(e0);
  json_decref(e1);
  json_decref(e2);
  mdm_ev_list_release(&l);
  mdm_ev_ids_release(&ids);
}

static void test_compliance_compliant_and_first(void **state)
{
  struct mdm_change ch;
  struct mdm_ev_ids ids;
  struct mdm_ev_list l;
  json_t *e;
  (void)state;
  memset(&ch, 0, sizeof(ch));
  ch.kind = MDM_CHANGE_COMPLIANCE;
  ch.at_ms = T_MS;
  ch.tenant_id = "t-id";
  ch.device_id = "dev-2";
  ch.state = "compliant";
  ch.reasons_json = "[]";
  mdm_ev_ids_init(&ids, 1);
  /* no tenant name known: the id stands in */
  assert_int_equal(mdm_ev_from_change(&ch, NULL, &ids, &l), MDM_OK);
  assert_int_equal(l.n, 1);
  e = parse_event(l.items[0]);
  assert_string_equal(str(e, "tenant"), "t-id");
  assert_string_equal(str(e, "complianceState"), "compliant");
  assert_true(json_is_null(json_object_get(e, "setting")));
  assert_true(json_is_null(json_object_get(e, "previousComplianceState")));
  assert_true(json_is_null(json_object_get(e, "userPrincipalName")));
  assert_int_equal(json_array_size(json_object_get(e, "rules")), 0);
  json_decref(e);
  mdm_ev_list_release(&l);

  /* no policy assigned: unknown, one event, no setting */
  ch.state = "unknown";
  ch.reasons_json = "[{\"state\":\"unknown\",\"message\":"
                    "\"no compliance policy assigned\"}]";
  assert_int_equal(mdm_ev_from_change(&ch, "t", &ids, &l), MDM_OK);
  assert_int_equal(l.n, 1);
  e = parse_event(l.items[0]);
  assert_string_equal(str(e, "complianceState"), "unknown");
  assert_true(json_is_null(json_object_get(e, "setting")));
  assert_string_equal(str(e, "reason"), "no compliance policy assigned");
  json_decref(e);
  mdm_ev_list_release(&l);
  mdm_ev_ids_release(&ids);
}

/* Many settings: at most 64 events per change, the rest counted. */
static void test_compliance_many_settings(void **state)
{
  struct mdm_change ch;
  struct mdm_ev_ids ids;
  struct mdm_ev_list l;
  struct mdm_buf b;
  int i;
  (void)state;
  mdm_buf_init(&b, 1 << 20);
  mdm_buf_puts(&b, "[");
  for(i = 0; i < 70; i++)
    mdm_buf_printf(&b, "%s{\"rule\":\"r%d\",\"fact\":\"custom.f%d\","
                       "\"state\":\"noncompliant\",\"message\":\"x\"}",
                   i ? "," : "", i, i);
  mdm_buf_puts(&b, "]");
  memset(&ch, 0, sizeof(ch));
  ch.kind = MDM_CHANGE_COMPLIANCE;
  ch.tenant_id = "t";
  ch.device_id = "d";
  ch.state = "noncompliant";
  ch.reasons_json = b.data;
  mdm_ev_ids_init(&ids, 1);
  assert_int_equal(mdm_ev_from_change(&ch, "t", &ids, &l), MDM_OK);
  assert_int_equal(l.n, 64);
  assert_int_equal(l.n_merged, 6);
  assert_string_equal(l.items[63]->setting, "r63");
  mdm_ev_list_release(&l);
  mdm_buf_release(&b);
  mdm_ev_ids_release(&ids);
}

static void test_command_and_audit(void **state)
{
  struct mdm_change ch;
  struct mdm_ev_ids ids;
  struct mdm_ev_list l;
  json_t *e;
  (void)state;
  memset(&ch, 0, sizeof(ch));
  ch.kind = MDM_CHANGE_AUDIT;
  ch.at_ms = T_MS;
  ch.tenant_id = "t-id";
  ch.device_id = "dev-1";
  ch.upn = "bob@corp.example";
  ch.seq = 42;
  ch.actor = "device:dev-1";
  ch.action = "command.result";
  ch.target = "cmd-1";
  ch.command_type = "wipe";
  ch.detail_json = "{\"detail\":\"disk busy\",\"device_id\":\"dev-1\","
                   "\"status\":\"failed\"}";
  ch.hash = "abc";
  mdm_ev_ids_init(&ids, 1);
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  assert_int_equal(l.n, 1);
  e = parse_event(l.items[0]);
  assert_string_equal(str(e, "type"), "command.failed");
  assert_string_equal(str(e, "commandId"), "cmd-1");
  assert_string_equal(str(e, "commandType"), "wipe");
  assert_string_equal(str(e, "status"), "failed");
  assert_string_equal(str(e, "userPrincipalName"), "bob@corp.example");
  assert_string_equal(str(e, "action"), "command.result");
  assert_int_equal(json_integer_value(json_object_get(e, "auditSeq")), 42);
  assert_string_equal(str(json_object_get(e, "detail"), "detail"),
                      "disk busy");
  assert_int_equal(l.items[0]->kind, MDM_EV_COMMAND);
  assert_int_equal(l.items[0]->severity, 4);
  json_decref(e);
  mdm_ev_list_release(&l);

  ch.action = "command.create";
  ch.detail_json = NULL;
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  e = parse_event(l.items[0]);
  assert_string_equal(str(e, "type"), "command.queued");
  assert_true(json_is_null(json_object_get(e, "detail")));
  json_decref(e);
  mdm_ev_list_release(&l);
  ch.action = "command.send";
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  assert_string_equal(l.items[0]->type, "command.sent");
  mdm_ev_list_release(&l);
  ch.action = "command.expire";
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  assert_string_equal(l.items[0]->type, "command.expired");
  mdm_ev_list_release(&l);
  ch.action = "command.cancel";
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  assert_string_equal(l.items[0]->type, "command.canceled");
  mdm_ev_list_release(&l);

  /* any other record: audit.<action> */
  ch.action = "policy.update";
  ch.device_id = NULL;
  ch.upn = NULL;
  ch.target = "CompliancePolicy/base";
  ch.detail_json = "{\"version\":2}";
  assert_int_equal(mdm_ev_from_change(&ch, "default", &ids, &l), MDM_OK);
  e = parse_event(l.items[0]);
  assert_string_equal(str(e, "type"), "audit.policy.update");
  assert_true(json_is_null(json_object_get(e, "deviceId")));
  assert_null(json_object_get(e, "commandId"));
  assert_int_equal(json_integer_value(json_object_get(
                     json_object_get(e, "detail"), "version")), 2);
  assert_int_equal(l.items[0]->kind, MDM_EV_AUDIT);
  json_decref(e);
  mdm_ev_list_release(&l);
  mdm_ev_ids_release(&ids);
}

static void test_access_event(void **state)
{
  struct mdm_ev_ids ids;
  struct mdm_event *ev = NULL;
  json_t *e;
  (void)state;
  mdm_ev_ids_init(&ids, 1);
  assert_int_equal(mdm_ev_access(T_MS, "t-id", "default", "dev-9",
                                 "carol@corp.example",
                                 "{\"application\":\"crm\",\"decision\":"
                                 "\"block\",\"type\":\"nope\"}",
                                 &ids, &ev), MDM_OK);
  e = parse_event(ev);
  assert_string_equal(str(e, "type"), "access.denied");  /* not "nope" */
  assert_string_equal(str(e, "application"), "crm");
  assert_string_equal(str(e, "decision"), "block");
  assert_string_equal(str(e, "userPrincipalName"), "carol@corp.example");
  assert_int_equal(ev->kind, MDM_EV_ACCESS);
  json_decref(e);
  mdm_event_unref(ev);
  mdm_ev_ids_release(&ids);
}

/* ---- syslog ------------------------------------------------------------- */

static struct mdm_event *test_event(const char *json, const char *type,
                                    const char *setting)
{
  struct mdm_event t;
  memset(&t, 0, sizeof(t));
  t.kind = MDM_EV_COMPLIANCE;
  t.severity = 4;
  t.time_ms = T_MS;
  t.type = type;
  t.tenant = "default";
  t.device_id = "dev-1";
  t.state = "noncompliant";
  t.setting = setting;
  t.json = json;
  t.json_len = strlen(json);
  return mdm_event_new(&t);
}

static void test_syslog_frame(void **state)
{
  struct mdm_event *e = test_event("{\"a\":1}", "compliance.changed",
                                   "Odd\"]\\Name");
  struct mdm_buf b;
  const char *msg;
  char *space;
  (void)state;
  mdm_buf_init(&b, 1 << 20);
  assert_int_equal(mdm_syslog_frame(&b, 16, "host one", "mdmd", 1234, e),
                   MDM_OK);
  msg = "<132>1 2024-11-28T13:20:00.123Z host_one mdmd 1234 "
        "compliance.changed [mdm@32473 type=\"compliance.changed\" "
        "tenant=\"default\" deviceId=\"dev-1\" "
        "complianceState=\"noncompliant\" setting=\"Odd\\\"\\]\\\\Name\"] "
        "{\"a\":1}";
  space = strchr(b.data, ' ');
  assert_non_null(space);
  /* octet counting: the length prefix is the byte count of the rest */
  assert_int_equal(strtoul(b.data, NULL, 10), strlen(msg));
  assert_string_equal(space + 1, msg);
  assert_int_equal((size_t)(space - b.data) + 1 + strlen(msg), b.len);
  mdm_buf_reset(&b);
  mdm_event_unref(e);

  /* MSGID at most 32 characters; no hostname: the NILVALUE */
  e = test_event("{}", "audit.enrollment_token.create.something.long", NULL);
  assert_int_equal(mdm_syslog_frame(&b, 10, "", "mdmd", 1, e), MDM_OK);
  assert_non_null(strstr(b.data,
                         " - mdmd 1 audit.enrollment_token.create.so "));
  assert_null(strstr(b.data, "setting="));
  assert_non_null(strstr(b.data, "<84>1 "));  /* authpriv.warning */
  mdm_buf_release(&b);
  mdm_event_unref(e);
}

static void test_syslog_facility(void **state)
{
  (void)state;
  assert_int_equal(mdm_syslog_facility("local0"), 16);
  assert_int_equal(mdm_syslog_facility("local7"), 23);
  assert_int_equal(mdm_syslog_facility("authpriv"), 10);
  assert_int_equal(mdm_syslog_facility("3"), 3);
  assert_int_equal(mdm_syslog_facility("24"), -1);
  assert_int_equal(mdm_syslog_facility("local8"), -1);
  assert_int_equal(mdm_syslog_facility(""), -1);
}

/* ---- HEC ---------------------------------------------------------------- */

static void test_hec_envelope(void **state)
{
  struct mdm_event *e = test_event("{\"setting\":\"DeviceEncryption\"}",
                                   "compliance.changed", "DeviceEncryption");
  struct mdm_hec_meta m = {"h1", "mdmd", "mdm_logs", "intune_compliance"};
  struct mdm_buf b;
  (void)state;
  mdm_buf_init(&b, 1 << 20);
  assert_int_equal(mdm_hec_envelope(&b, &m, e), MDM_OK);
  assert_string_equal(b.data,
                      "{\"time\":1732800000.123,\"host\":\"h1\",\"source\":"
                      "\"mdmd\",\"sourcetype\":\"intune_compliance\","
                      "\"index\":\"mdm_logs\",\"event\":{\"setting\":"
                      "\"DeviceEncryption\"}}\n");
  mdm_buf_reset(&b);
  e->kind = MDM_EV_AUDIT;
  m.index = "";
  assert_int_equal(mdm_hec_envelope(&b, &m, e), MDM_OK);
  assert_non_null(strstr(b.data, "\"sourcetype\":\"mdm:audit\""));
  assert_null(strstr(b.data, "\"index\""));  /* the token's default */
  mdm_buf_reset(&b);
  e->kind = MDM_EV_COMMAND;
  assert_int_equal(mdm_hec_envelope(&b, &m, e), MDM_OK);
  assert_non_null(strstr(b.data, "\"sourcetype\":\"mdm:command\""));
  mdm_buf_release(&b);
  /* too small a buffer leaves it as it was */
  mdm_buf_init(&b, 40);
  mdm_buf_puts(&b, "keep");
  assert_int_equal(mdm_hec_envelope(&b, &m, e), MDM_ERR_TOOBIG);
  assert_string_equal(b.data, "keep");
  mdm_buf_release(&b);
  mdm_event_unref(e);
}

static void test_hec_batch(void **state)
{
  const char *d = "aaa\nbb\ncccc\nd";
  size_t n;
  (void)state;
  assert_int_equal(mdm_hec_batch_len(d, strlen(d), 100, 1000, &n), 12);
  assert_int_equal(n, 3);   /* the torn "d" stays */
  assert_int_equal(mdm_hec_batch_len(d, strlen(d), 2, 1000, &n), 7);
  assert_int_equal(n, 2);
  assert_int_equal(mdm_hec_batch_len(d, strlen(d), 100, 8, &n), 7);
  assert_int_equal(n, 2);
  /* one line longer than the byte cap still goes, alone */
  assert_int_equal(mdm_hec_batch_len(d, strlen(d), 100, 2, &n), 4);
  assert_int_equal(n, 1);
  assert_int_equal(mdm_hec_batch_len("xyz", 3, 100, 1000, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mdm_hec_batch_len("", 0, 100, 1000, &n), 0);
}

/* ---- settings ----------------------------------------------------------- */

static void test_config(void **state)
{
  struct mdm_events_config c;
  char host[64];
  int port;
  (void)state;
  mdm_events_config_defaults(&c);
  assert_false(mdm_events_config_enabled(&c));
  assert_string_equal(c.hec_index, "mdm_logs");
  assert_string_equal(c.hec_sourcetype, "intune_compliance");
  assert_int_equal(mdm_events_config_set(&c, "listen", "x"), -2);
  assert_int_equal(mdm_events_config_set(&c, "events-nope", "x"), -2);
  assert_int_equal(mdm_events_config_set(&c, "events-file", "/tmp/x"), 0);
  assert_true(mdm_events_config_enabled(&c));
  assert_int_equal(mdm_events_config_set(&c, "events-file-max-size", "8k"),
                   0);
  assert_int_equal(c.file_max_size, 8192);
  assert_int_equal(mdm_events_config_set(&c, "events-file-max-size", "2G"),
                   0);
  assert_int_equal(c.file_max_size, 2LL << 30);
  assert_int_equal(mdm_events_config_set(&c, "events-file-max-size", "12"),
                   -1);   /* below 1 KiB */
  assert_int_equal(mdm_events_config_set(&c, "events-file-max-size", "1x"),
                   -1);
  assert_int_equal(mdm_events_config_set(&c, "events-file-keep", "-1"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog",
                                         "tcp://127.0.0.1:514"), 0);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog",
                                         "tls://[::1]:6514"), 0);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog",
                                         "udp://h:514"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog", "tcp://h"),
                   -1);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog",
                                         "tcp://h:70000"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-url",
                                         "https://splunk:8088"), 0);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-url",
                                         "ftp://splunk:8088"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-url",
                                         "http://user:pw@splunk"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-url", "http://"),
                   -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-index",
                                         "bad index"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-index", "main"),
                   0);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-sourcetype", ""),
                   -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-batch", "0"), -1);
  assert_int_equal(mdm_events_config_set(&c, "events-hec-spool-max", "1k"),
                   -1);   /* below 64 KiB */
  assert_int_equal(mdm_events_config_set(&c, "events-hec-spool-max", "64k"),
                   0);
  assert_int_equal(mdm_events_config_set(&c, "events-syslog-facility",
                                         "local3"), 0);
  assert_int_equal(c.syslog_facility, 19);

  assert_int_equal(mdm_ev_parse_hostport("h.example:514", host,
                                         sizeof(host), &port), 0);
  assert_string_equal(host, "h.example");
  assert_int_equal(port, 514);
  assert_int_equal(mdm_ev_parse_hostport("[::1]:6514", host, sizeof(host),
                                         &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(mdm_ev_parse_hostport("h:514/x", host, sizeof(host),
                                         &port), -1);
  assert_int_equal(mdm_ev_parse_hostport(":514", host, sizeof(host),
                                         &port), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_setting_names),
    cmocka_unit_test(test_json_str),
    cmocka_unit_test(test_json_str_bounded),
    cmocka_unit_test(test_ids),
    cmocka_unit_test(test_compliance_noncompliant),
    cmocka_unit_test(test_compliance_compliant_and_first),
    cmocka_unit_test(test_compliance_many_settings),
    cmocka_unit_test(test_command_and_audit),
    cmocka_unit_test(test_access_event),
    cmocka_unit_test(test_syslog_frame),
    cmocka_unit_test(test_syslog_facility),
    cmocka_unit_test(test_hec_envelope),
    cmocka_unit_test(test_hec_batch),
    cmocka_unit_test(test_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
