/*
 * test_push.c: unit tests for src/agent/push.c (the broker URL) and the
 * mqtt object of credentials.json in src/agent/state.c: kept, checked, and
 * an older file without it still loads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "agent/push.h"
#include "agent/state.h"

#define ID "0b8f7c1e-1111-2222-3333-444455556666"

static void test_parse_url(void **st)
{
  char host[MDM_PUSH_HOST_MAX], small[4];
  int port = 0, is_tls = -1;
  (void)st;
  assert_int_equal(mdm_push_parse_url("mqtt://broker.example:1884", host,
                                      sizeof(host), &port, &is_tls), MDM_OK);
  assert_string_equal(host, "broker.example");
  assert_int_equal(port, 1884);
  assert_int_equal(is_tls, 0);
  assert_int_equal(mdm_push_parse_url("mqtts://b", host, sizeof(host), &port,
                                      &is_tls), MDM_OK);
  assert_string_equal(host, "b");
  assert_int_equal(port, 8883);
  assert_int_equal(is_tls, 1);
  assert_int_equal(mdm_push_parse_url("mqtt://[::1]:7/", host, sizeof(host),
                                      &port, &is_tls), MDM_OK);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 7);
  assert_int_equal(mdm_push_parse_url("mqtt://127.0.0.1", host, sizeof(host),
                                      &port, &is_tls), MDM_OK);
  assert_int_equal(port, 1883);
  {
    static const char *const bad[] = {
      "http://b:1883", "mqtt://", "mqtt://:1883", "mqtt://b:", "mqtt://b:0",
      "mqtt://b:65536", "mqtt://b:12x", "mqtt://u:p@b", "mqtt://b/path",
      "mqtt://b?x", "mqtt://[::1", "mqtt://[]:1", "tcp://b", ""};
    size_t i;
    for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
      assert_int_equal(mdm_push_parse_url(bad[i], host, sizeof(host), &port,
                                          &is_tls), MDM_ERR_INVAL);
  }
  assert_int_equal(mdm_push_parse_url("mqtt://abcd", small, sizeof(small),
                                      &port, &is_tls), MDM_ERR_TOOBIG);
}

static json_t *mqtt_obj(const char *url, const char *topic)
{
  return json_pack("{s:s, s:s, s:s, s:s}", "url", url, "topic", topic,
                   "username", ID, "password", "s3cret pw");
}

static void test_take_mqtt(void **st)
{
  struct mdm_creds c;
  json_t *v;
  (void)st;
  memset(&c, 0, sizeof(c));
  v = mqtt_obj("mqtt://h:1883", "mdm/acme/" ID "/cmd");
  assert_int_equal(mdm_state_take_mqtt(v, ID, &c), 1);
  assert_string_equal(c.mqtt_topic, "mdm/acme/" ID "/cmd");
  assert_string_equal(c.mqtt_password, "s3cret pw");
  json_decref(v);
  {
    static const char *const bad_topics[] = {
      "mdm/acme/other/cmd", "mdm/acme/#", "mdm/+/" ID "/cmd", "mdm//" ID
      "/cmd", "x/acme/" ID "/cmd", "mdm/acme/" ID "/cmdx", "mdm/acme/" ID};
    size_t i;
    for(i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
      v = mqtt_obj("mqtt://h", bad_topics[i]);
      assert_int_equal(mdm_state_take_mqtt(v, ID, &c), 0);
      json_decref(v);
    }
  }
  v = mqtt_obj("http://h", "mdm/acme/" ID "/cmd");
  assert_int_equal(mdm_state_take_mqtt(v, ID, &c), 0);
  json_decref(v);
  v = json_pack("{s:s, s:s, s:s, s:i}", "url", "mqtt://h", "topic",
                "mdm/acme/" ID "/cmd", "username", ID, "password", 1);
  assert_int_equal(mdm_state_take_mqtt(v, ID, &c), 0);
  json_decref(v);
  assert_int_equal(mdm_state_take_mqtt(json_null(), ID, &c), 0);
  /* What failed left the first good object alone. */
  assert_string_equal(c.mqtt_url, "mqtt://h:1883");
  mdm_creds_release(&c);
}

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  chmod(path, 0600);
}

static void test_creds_round_trip(void **st)
{
  char dir[] = "/tmp/test_push.XXXXXX", path[128], err[256];
  struct mdm_creds c, back;
  struct stat sb;
  (void)st;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/credentials.json", dir);

  /* An older file without mqtt loads: polling only. */
  write_file(path, "{\"server\":\"http://s\",\"device_id\":\"" ID "\","
             "\"device_token\":\"t\"}");
  assert_int_equal(mdm_state_load_creds(dir, &c, err, sizeof(err)), MDM_OK);
  assert_null(c.mqtt_url);
  assert_null(c.mqtt_password);

  /* Kept on save, read back the same, mode 0600. */
  c.mqtt_url = strdup("mqtt://h:1883");
  c.mqtt_topic = strdup("mdm/acme/" ID "/cmd");
  c.mqtt_username = strdup(ID);
  c.mqtt_password = strdup("pw");
  assert_int_equal(mdm_state_save_creds(dir, &c), MDM_OK);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(mdm_state_load_creds(dir, &back, err, sizeof(err)), MDM_OK);
  assert_string_equal(back.mqtt_url, "mqtt://h:1883");
  assert_string_equal(back.mqtt_topic, "mdm/acme/" ID "/cmd");
  assert_string_equal(back.mqtt_username, ID);
  assert_string_equal(back.mqtt_password, "pw");
  mdm_creds_release(&back);
  mdm_creds_release(&c);

  /* A damaged mqtt object is dropped; the rest still loads. */
  write_file(path, "{\"server\":\"http://s\",\"device_id\":\"" ID "\","
             "\"device_token\":\"t\",\"mqtt\":{\"url\":\"mqtt://h\","
             "\"topic\":\"mdm/acme/#\",\"username\":\"u\",\"password\":\"p\"}}");
  assert_int_equal(mdm_state_load_creds(dir, &c, err, sizeof(err)), MDM_OK);
  assert_string_equal(c.device_token, "t");
  assert_null(c.mqtt_url);
  mdm_creds_release(&c);
  write_file(path, "{\"server\":\"http://s\",\"device_id\":\"" ID "\","
             "\"device_token\":\"t\",\"mqtt\":null}");
  assert_int_equal(mdm_state_load_creds(dir, &c, err, sizeof(err)), MDM_OK);
  assert_null(c.mqtt_url);
  mdm_creds_release(&c);

  unlink(path);
  rmdir(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_url),
    cmocka_unit_test(test_take_mqtt),
    cmocka_unit_test(test_creds_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
