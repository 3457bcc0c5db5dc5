/*
 * test_mqttcred.c: unit tests for src/crypto/mqttcred.c, the derived MQTT
 * device password that mdmd hands out and the broker's plugin checks.
 * The expected value was computed independently (Python's hmac module):
 * base64url(HMAC-SHA256(key, "mdm-mqtt-device/v1:" + id)) without padding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "crypto/mqttcred.h"

#define KEY "0123456789abcdef-secret"
#define ID "0747e9be-b875-429a-aaec-27356fd32719"

static void test_known_vector(void **state)
{
  char pw[MDM_MQTT_PASSWORD_LEN + 1];
  (void)state;
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY,
                                            strlen(KEY), ID, pw, sizeof(pw)),
                   0);
  assert_string_equal(pw, "SHU4havhHM8TFMOk6BxlcpuYNzfs3b9_SnJ-tjOGekM");
  assert_int_equal(strlen(pw), MDM_MQTT_PASSWORD_LEN);
}

static void test_depends_on_key_and_id(void **state)
{
  char a[MDM_MQTT_PASSWORD_LEN + 1], b[MDM_MQTT_PASSWORD_LEN + 1];
  (void)state;
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY,
                                            strlen(KEY), ID, a, sizeof(a)), 0);
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY "x",
                                            strlen(KEY) + 1, ID, b,
                                            sizeof(b)), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(mdm_mqtt_device_password(
                     (const unsigned char *)KEY, strlen(KEY),
                     "0747e9be-b875-429a-aaec-27356fd32710", b, sizeof(b)),
                   0);
  assert_string_not_equal(a, b);
}

static void test_bad_arguments(void **state)
{
  char pw[MDM_MQTT_PASSWORD_LEN + 1];
  char big[100];
  (void)state;
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY, 0,
                                            ID, pw, sizeof(pw)), -1);
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY,
                                            strlen(KEY), "", pw, sizeof(pw)),
                   -1);
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY,
                                            strlen(KEY), big, pw, sizeof(pw)),
                   -1);
  assert_int_equal(mdm_mqtt_device_password((const unsigned char *)KEY,
                                            strlen(KEY), ID, pw,
                                            MDM_MQTT_PASSWORD_LEN), -1);
}

static void test_secret_equal(void **state)
{
  (void)state;
  assert_true(mdm_mqtt_secret_equal("abc", "abc"));
  assert_false(mdm_mqtt_secret_equal("abc", "abd"));
  assert_false(mdm_mqtt_secret_equal("abc", "abcd"));
  assert_false(mdm_mqtt_secret_equal("", "a"));
  assert_true(mdm_mqtt_secret_equal("", ""));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_known_vector),
    cmocka_unit_test(test_depends_on_key_and_id),
    cmocka_unit_test(test_bad_arguments),
    cmocka_unit_test(test_secret_equal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
