/*
 * test_report.c: the pure parts of the compliance report and the audit
 * checkpoint (src/server/api_reports.c, api_audit.c): RFC 4180 fields,
 * UUIDv5, the failing rules of a verdict, the checkpoint's signed bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "core/buf.h"
#include "core/util.h"
#include "server/api.h"

static void expect_field(const char *in, const char *want)
{
  struct mdm_buf b;
  mdm_buf_init(&b, 1024);
  assert_int_equal(mdm_csv_field(&b, in), MDM_OK);
  assert_string_equal(b.data ? b.data : "", want);
  mdm_buf_release(&b);
}

static void test_csv_field_quoting(void **state)
{
  (void)state;
  expect_field(NULL, "");
  expect_field("", "");
  expect_field("host-1", "host-1");
  expect_field("a b", "a b");                    /* spaces are data */
  expect_field("a,b", "\"a,b\"");
  expect_field("say \"hi\"", "\"say \"\"hi\"\"\"");
  expect_field("\"", "\"\"\"\"");
  expect_field("two\nlines", "\"two\nlines\"");
  expect_field("cr\rlf\r\n", "\"cr\rlf\r\n\"");
  expect_field("naïve, ü", "\"naïve, ü\"");      /* UTF-8 passes */
}

static void test_csv_field_defuses_formulas(void **state)
{
  (void)state;
  expect_field("=1+2", "'=1+2");
  expect_field("+1", "'+1");
  expect_field("-x", "'-x");
  expect_field("@SUM(A1)", "'@SUM(A1)");
  expect_field("\tx", "'\tx");
  expect_field("\rx", "\"'\rx\"");
  expect_field("=HYPERLINK(\"u\",\"t\")",
               "\"'=HYPERLINK(\"\"u\"\",\"\"t\"\")\"");
  expect_field("a=b", "a=b");                    /* only at the start */
}

static void test_csv_field_bound(void **state)
{
  struct mdm_buf b;
  (void)state;
  mdm_buf_init(&b, 8);
  assert_int_equal(mdm_csv_field(&b, "\"\"\"\"\"\""), MDM_ERR_TOOBIG);
  mdm_buf_release(&b);
}

static void test_uuid_v5_vectors(void **state)
{
  char out[MDM_UUID_LEN + 1];
  (void)state;
  /* Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") */
  assert_int_equal(mdm_uuid_v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                               "python.org", 10, out), MDM_OK);
  assert_string_equal(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  /* uuid.uuid5(uuid.NAMESPACE_URL, "https://mdm.dev/stix/2.1"): mdm's
   * STIX namespace (docs/api.md). */
  assert_int_equal(mdm_uuid_v5("6ba7b811-9dad-11d1-80b4-00c04fd430c8",
                               "https://mdm.dev/stix/2.1", 24, out), MDM_OK);
  assert_string_equal(out, "96603a11-51cb-5950-8b61-47f159617388");
  /* Upper-case namespaces read the same. */
  assert_int_equal(mdm_uuid_v5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
                               "python.org", 10, out), MDM_OK);
  assert_string_equal(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  assert_int_equal(mdm_uuid_v5("not-a-uuid", "x", 1, out), MDM_ERR_INVAL);
  assert_int_equal(mdm_uuid_v5(NULL, "x", 1, out), MDM_ERR_INVAL);
}

static void test_failing_rules(void **state)
{
  json_t *out = NULL;
  (void)state;
  assert_int_equal(mdm_report_failing_rules(
    "[{\"policy\":\"base\",\"rule\":\"os\",\"state\":\"noncompliant\","
    "\"message\":\"m1\"},"
    "{\"policy\":\"base\",\"rule\":\"fw\",\"state\":\"unknown\"},"
    "{\"state\":\"unknown\",\"message\":\"no compliance policy assigned\"},"
    "{\"policy\":\"vpn\",\"rule\":\"on\",\"state\":\"noncompliant\"},"
    "{\"rule\":\"orphan\",\"state\":\"noncompliant\"}]", &out), MDM_OK);
  assert_int_equal(json_array_size(out), 2);
  assert_string_equal(
    json_string_value(json_object_get(json_array_get(out, 0), "key")),
    "base/os");
  assert_string_equal(
    json_string_value(json_object_get(json_array_get(out, 0), "message")),
    "m1");
  assert_string_equal(
    json_string_value(json_object_get(json_array_get(out, 1), "key")),
    "vpn/on");
  json_decref(out);
  /* Nothing failing, nothing readable: an empty list. */
  assert_int_equal(mdm_report_failing_rules("[]", &out), MDM_OK);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
  assert_int_equal(mdm_report_failing_rules("not json", &out), MDM_OK);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
  assert_int_equal(mdm_report_failing_rules(NULL, &out), MDM_OK);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
}

static void test_checkpoint_text(void **state)
{
  struct mdm_buf b;
  (void)state;
  mdm_buf_init(&b, 4096);
  assert_int_equal(mdm_audit_checkpoint_text(
    "0b4c1c3e-8f31-4d38-9a9e-3f1f1b5e2c11", 42,
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "2026-11-28T14:00:00.123Z", &b), MDM_OK);
  assert_string_equal(
    b.data,
    "mdm-audit-checkpoint/v1\n0b4c1c3e-8f31-4d38-9a9e-3f1f1b5e2c11\n42\n"
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    "2026-11-28T14:00:00.123Z");
  mdm_buf_release(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_csv_field_quoting),
    cmocka_unit_test(test_csv_field_defuses_formulas),
    cmocka_unit_test(test_csv_field_bound),
    cmocka_unit_test(test_uuid_v5_vectors),
    cmocka_unit_test(test_failing_rules),
    cmocka_unit_test(test_checkpoint_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
