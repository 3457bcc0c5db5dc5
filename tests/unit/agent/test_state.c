/*
 * test_state.c: unit tests for src/agent/state.c: credentials and last
 * facts in the state directory, their modes, and what a damaged file gives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "agent/state.h"
#include "core/util.h"

struct fx {
  char dir[64];
  char creds[128];
};

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-test-state-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->creds, sizeof(f->creds), "%s/credentials.json", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void put(const char *path, const char *s, unsigned mode)
{
  assert_int_equal(mdm_file_write_atomic(path, s, strlen(s), mode), MDM_OK);
}

static void test_creds_roundtrip(void **state)
{
  struct fx *f = *state;
  struct mdm_creds c = {0}, r;
  struct stat st;
  char err[256];

  c.server = "https://mdm.example:8443";
  c.device_id = "0b6d7c8e-1f2a-4b3c-8d9e-0123456789ab";
  c.device_token = "eyJhbGciOiJFUzI1NiJ9.e30.sig";
  c.ca_file = "/etc/mdm/ca.pem";
  c.checkin_interval_s = 60;
  assert_int_equal(mdm_state_save_creds(f->dir, &c), MDM_OK);
  assert_int_equal(stat(f->creds, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_string_equal(r.server, c.server);
  assert_string_equal(r.device_id, c.device_id);
  assert_string_equal(r.device_token, c.device_token);
  assert_string_equal(r.ca_file, c.ca_file);
  assert_int_equal(r.checkin_interval_s, 60);
  mdm_creds_release(&r);
  assert_null(r.device_token);

  /* Without a CA file. */
  c.ca_file = NULL;
  assert_int_equal(mdm_state_save_creds(f->dir, &c), MDM_OK);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_null(r.ca_file);
  mdm_creds_release(&r);
}

static void test_creds_absent(void **state)
{
  struct fx *f = *state;
  struct mdm_creds r;
  char err[256];
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)),
                   MDM_ERR_NOTFOUND);
  assert_null(r.server);
}

static void test_creds_damaged(void **state)
{
  static const char *const bad[] = {
    "",
    "not json",
    "[]",
    "{\"device_id\":\"x\",\"device_token\":\"t\"}",
    "{\"server\":\"http://a\",\"device_id\":\"x\",\"device_token\":7}",
    "{\"server\":\"http://a\",\"device_id\":\"\",\"device_token\":\"t\"}",
    "{\"server\":\"http://a\",\"device_id\":\"x\",\"device_token\":\"t\\n\"}",
    "{\"server\":\"http://a\",\"device_id\":\"x\",\"device_token\":\"t\","
    "\"ca_file\":[]}",
  };
  struct fx *f = *state;
  struct mdm_creds r;
  char err[256];
  size_t i;
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    put(f->creds, bad[i], 0600);
    assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)),
                     MDM_ERR_INVAL);
    assert_non_null(strstr(err, "credentials.json"));
    assert_null(r.server);
    assert_null(r.device_token);
  }
}

/* The device token may be gone (the certificate is then the credential):
 * absent, null and "" all load as NULL, and a NULL token is saved as null. */
static void test_creds_token_optional(void **state)
{
  static const char *const ok[] = {
    "{\"server\":\"https://a\",\"device_id\":\"x\"}",
    "{\"server\":\"https://a\",\"device_id\":\"x\",\"device_token\":null}",
    "{\"server\":\"https://a\",\"device_id\":\"x\",\"device_token\":\"\"}",
  };
  struct fx *f = *state;
  struct mdm_creds r, c = {0};
  char err[256], *text = NULL;
  size_t i;

  for(i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    put(f->creds, ok[i], 0600);
    assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)),
                     MDM_OK);
    assert_string_equal(r.device_id, "x");
    assert_null(r.device_token);
    mdm_creds_release(&r);
  }
  c.server = "https://a";
  c.device_id = "x";
  c.checkin_interval_s = 60;
  assert_int_equal(mdm_state_save_creds(f->dir, &c), MDM_OK);
  assert_int_equal(mdm_file_read(f->creds, 4096, &text, NULL), MDM_OK);
  assert_non_null(strstr(text, "\"device_token\": null"));
  free(text);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)),
                   MDM_OK);
  assert_null(r.device_token);
  mdm_creds_release(&r);
}

static void test_creds_too_big(void **state)
{
  struct fx *f = *state;
  struct mdm_creds r;
  char err[256];
  size_t n = 100 * 1024;
  char *s = malloc(n + 1);
  memset(s, ' ', n);
  s[n] = '\0';
  put(f->creds, s, 0600);
  free(s);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)),
                   MDM_ERR_INVAL);
  assert_non_null(strstr(err, "too large"));
}

static void test_creds_interval(void **state)
{
  struct fx *f = *state;
  struct mdm_creds r;
  char err[256];
  const char *base = "{\"server\":\"http://a\",\"device_id\":\"x\","
                     "\"device_token\":\"t\"";
  char s[256];

  snprintf(s, sizeof(s), "%s}", base);
  put(f->creds, s, 0600);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_int_equal(r.checkin_interval_s, MDM_INTERVAL_DEFAULT);
  mdm_creds_release(&r);

  snprintf(s, sizeof(s), "%s,\"checkin_interval_s\":1}", base);
  put(f->creds, s, 0600);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_int_equal(r.checkin_interval_s, 5);
  mdm_creds_release(&r);

  snprintf(s, sizeof(s), "%s,\"checkin_interval_s\":9999999999}", base);
  put(f->creds, s, 0600);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_int_equal(r.checkin_interval_s, 86400);
  mdm_creds_release(&r);

  snprintf(s, sizeof(s), "%s,\"checkin_interval_s\":\"60\"}", base);
  put(f->creds, s, 0600);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  assert_int_equal(r.checkin_interval_s, MDM_INTERVAL_DEFAULT);
  mdm_creds_release(&r);
}

static void test_creds_mode_tightened(void **state)
{
  struct fx *f = *state;
  struct mdm_creds r;
  struct stat st;
  char err[256];
  put(f->creds, "{\"server\":\"http://a\",\"device_id\":\"x\","
      "\"device_token\":\"t\"}", 0644);
  assert_int_equal(mdm_state_load_creds(f->dir, &r, err, sizeof(err)), MDM_OK);
  mdm_creds_release(&r);
  assert_int_equal(stat(f->creds, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_clamp(void **state)
{
  (void)state;
  assert_int_equal(mdm_state_clamp_interval(-1), 5);
  assert_int_equal(mdm_state_clamp_interval(4), 5);
  assert_int_equal(mdm_state_clamp_interval(5), 5);
  assert_int_equal(mdm_state_clamp_interval(300), 300);
  assert_int_equal(mdm_state_clamp_interval(86400), 86400);
  assert_int_equal(mdm_state_clamp_interval(86401), 86400);
}

static void test_prepare_dir(void **state)
{
  struct fx *f = *state;
  char sub[128];
  struct stat st;
  snprintf(sub, sizeof(sub), "%s/x/y", f->dir);
  assert_int_equal(mdm_state_prepare(sub), MDM_OK);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(chmod(sub, 0755), 0);
  assert_int_equal(mdm_state_prepare(sub), MDM_OK);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  /* A file in the way. */
  snprintf(sub, sizeof(sub), "%s/file", f->dir);
  put(sub, "x", 0600);
  assert_int_not_equal(mdm_state_prepare(sub), MDM_OK);
}

static void test_facts(void **state)
{
  struct fx *f = *state;
  char path[128];
  json_t *in = json_pack("{s:s, s:{s:s}}", "hostname", "h1", "os", "version",
                         "12");
  json_t *out = NULL;

  assert_int_equal(mdm_state_load_facts(f->dir, &out), MDM_ERR_NOTFOUND);
  assert_null(out);
  assert_int_equal(mdm_state_save_facts(f->dir, in), MDM_OK);
  assert_int_equal(mdm_state_load_facts(f->dir, &out), MDM_OK);
  assert_true(json_equal(in, out));
  json_decref(out);
  json_decref(in);

  /* Damaged: treated as absent, so the next round starts over. */
  snprintf(path, sizeof(path), "%s/last_facts.json", f->dir);
  put(path, "[1]", 0600);
  assert_int_equal(mdm_state_load_facts(f->dir, &out), MDM_ERR_NOTFOUND);
  assert_null(out);
  put(path, "{\"a\":", 0600);
  assert_int_equal(mdm_state_load_facts(f->dir, &out), MDM_ERR_NOTFOUND);
  assert_null(out);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_creds_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_absent, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_damaged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_token_optional, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_creds_too_big, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_interval, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_mode_tightened, setup,
                                    teardown),
    cmocka_unit_test(test_clamp),
    cmocka_unit_test_setup_teardown(test_prepare_dir, setup, teardown),
    cmocka_unit_test_setup_teardown(test_facts, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
