/*
 * test_agent.c: unit tests for the pure parts of src/agent/agent.c: the
 * fact diff that makes fact_changed events, the backoff and the jitter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent/agent.h"

/* Collects the changes as "path old new" lines. */
struct changes {
  char text[2048];
  int n;
  int fail_at;   /* return an error on the n-th change (1-based), 0: never */
};

static mdm_rc collect(const char *path, json_t *o, json_t *n, void *ud)
{
  struct changes *c = ud;
  char *so = o ? json_dumps(o, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  char *sn = n ? json_dumps(n, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  size_t len = strlen(c->text);
  c->n++;
  snprintf(c->text + len, sizeof(c->text) - len, "%s %s %s\n", path,
           so ? so : "-", sn ? sn : "-");
  free(so);
  free(sn);
  if(c->fail_at && c->n == c->fail_at)
    return MDM_ERR_IO;
  return MDM_OK;
}

static void diff(const char *old_s, const char *new_s, const char *want)
{
  json_t *o = json_loads(old_s, 0, NULL), *n = json_loads(new_s, 0, NULL);
  struct changes c;
  memset(&c, 0, sizeof(c));
  assert_non_null(o);
  assert_non_null(n);
  assert_int_equal(mdm_agent_diff_facts(o, n, collect, &c), MDM_OK);
  assert_string_equal(c.text, want);
  json_decref(o);
  json_decref(n);
}

static void test_diff_equal(void **state)
{
  (void)state;
  diff("{}", "{}", "");
  diff("{\"a\":1,\"os\":{\"name\":\"x\",\"v\":null}}",
       "{\"os\":{\"v\":null,\"name\":\"x\"},\"a\":1}", "");
}

static void test_diff_leaves(void **state)
{
  (void)state;
  diff("{\"os\":{\"name\":\"Debian\",\"version\":\"11\"},\"hostname\":\"h\"}",
       "{\"os\":{\"name\":\"Debian\",\"version\":\"12\"},\"hostname\":\"h\"}",
       "os.version \"11\" \"12\"\n");
  diff("{\"encryption\":{\"root_encrypted\":true}}",
       "{\"encryption\":{\"root_encrypted\":false}}",
       "encryption.root_encrypted true false\n");
  /* Sorted order, several levels. */
  diff("{\"z\":1,\"a\":{\"c\":1,\"b\":1}}",
       "{\"z\":2,\"a\":{\"c\":2,\"b\":2}}",
       "a.b 1 2\na.c 1 2\nz 1 2\n");
}

static void test_diff_added_removed_null(void **state)
{
  (void)state;
  /* Absent and null are the same thing. */
  diff("{\"a\":null}", "{}", "");
  diff("{}", "{\"a\":null}", "");
  diff("{}", "{\"serial\":\"S1\"}", "serial - \"S1\"\n");
  diff("{\"serial\":\"S1\"}", "{}", "serial \"S1\" -\n");
  diff("{\"serial\":\"S1\"}", "{\"serial\":null}", "serial \"S1\" -\n");
  /* An object appearing or going: each of its leaves. */
  diff("{\"network\":null}",
       "{\"network\":{\"ssid\":\"W\",\"vpn_connected\":false,\"x\":null}}",
       "network.ssid - \"W\"\nnetwork.vpn_connected - false\n");
  diff("{\"network\":{\"ssid\":\"W\"}}", "{}", "network.ssid \"W\" -\n");
}

static void test_diff_whole_values(void **state)
{
  (void)state;
  /* Arrays are leaves. */
  diff("{\"a\":[1,2]}", "{\"a\":[1,2]}", "");
  diff("{\"a\":[1,2]}", "{\"a\":[2,1]}", "a [1,2] [2,1]\n");
  /* An object against a scalar: compared whole. */
  diff("{\"a\":{\"b\":1}}", "{\"a\":5}", "a {\"b\":1} 5\n");
  /* Types matter. */
  diff("{\"a\":1}", "{\"a\":\"1\"}", "a 1 \"1\"\n");
  diff("{\"a\":true}", "{\"a\":1}", "a true 1\n");
}

static void test_diff_stops_on_error(void **state)
{
  json_t *o = json_loads("{\"a\":1,\"b\":1,\"c\":1}", 0, NULL);
  json_t *n = json_loads("{\"a\":2,\"b\":2,\"c\":2}", 0, NULL);
  struct changes c;
  (void)state;
  memset(&c, 0, sizeof(c));
  c.fail_at = 2;
  assert_int_equal(mdm_agent_diff_facts(o, n, collect, &c), MDM_ERR_IO);
  assert_int_equal(c.n, 2);
  json_decref(o);
  json_decref(n);
}

static void test_diff_long_path(void **state)
{
  /* A key longer than a path may be: reported at the parent, not lost. */
  char key[1500];
  json_t *o, *n;
  struct changes c;
  (void)state;
  memset(key, 'k', sizeof(key) - 1);
  key[sizeof(key) - 1] = '\0';
  o = json_pack("{s:{s:i}}", "p", key, 1);
  n = json_pack("{s:{s:i}}", "p", key, 2);
  memset(&c, 0, sizeof(c));
  assert_int_equal(mdm_agent_diff_facts(o, n, collect, &c), MDM_OK);
  assert_int_equal(c.n, 1);
  assert_true(!strncmp(c.text, "p {", 3));
  json_decref(o);
  json_decref(n);
}

static void test_backoff(void **state)
{
  (void)state;
  /* u = 0.5 is the middle: no jitter. */
  assert_int_equal(mdm_agent_backoff_ms(0, 300000, 0.5), 1000);
  assert_int_equal(mdm_agent_backoff_ms(1, 300000, 0.5), 2000);
  assert_int_equal(mdm_agent_backoff_ms(2, 300000, 0.5), 4000);
  assert_int_equal(mdm_agent_backoff_ms(8, 300000, 0.5), 256000);
  assert_int_equal(mdm_agent_backoff_ms(9, 300000, 0.5), 300000);
  assert_int_equal(mdm_agent_backoff_ms(30, 300000, 0.5), 300000);
  assert_int_equal(mdm_agent_backoff_ms(UINT32_MAX, 300000, 0.5), 300000);
  /* The cap is the check-in interval when that is shorter. */
  assert_int_equal(mdm_agent_backoff_ms(5, 5000, 0.5), 5000);
  /* ±20%. */
  assert_int_equal(mdm_agent_backoff_ms(0, 300000, 0.0), 800);
  assert_true(mdm_agent_backoff_ms(0, 300000, 0.999999) <= 1200);
  assert_true(mdm_agent_backoff_ms(0, 300000, 0.999999) >= 1199);
  assert_int_equal(mdm_agent_backoff_ms(30, 300000, 0.0), 240000);
}

static void test_jitter(void **state)
{
  (void)state;
  assert_int_equal(mdm_agent_jitter_ms(60000, 10, 0.5), 60000);
  assert_int_equal(mdm_agent_jitter_ms(60000, 10, 0.0), 54000);
  assert_true(mdm_agent_jitter_ms(60000, 10, 0.9999999) < 66000);
  assert_true(mdm_agent_jitter_ms(60000, 10, 0.9999999) >= 65999);
  assert_int_equal(mdm_agent_jitter_ms(86400000, 10, 0.0), 77760000);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_diff_equal),
    cmocka_unit_test(test_diff_leaves),
    cmocka_unit_test(test_diff_added_removed_null),
    cmocka_unit_test(test_diff_whole_values),
    cmocka_unit_test(test_diff_stops_on_error),
    cmocka_unit_test(test_diff_long_path),
    cmocka_unit_test(test_backoff),
    cmocka_unit_test(test_jitter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
