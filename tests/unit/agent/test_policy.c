/*
 * test_policy.c: unit tests for src/agent/policy.c: the signature check of a
 * policy bundle (tampered bundle bytes, tampered signature, another key,
 * another device, another ETag, another algorithm, malformed answers), the
 * walk over the settings with a table of enforcers, and whole policy steps
 * against a fake server: a bundle applied, the same ETag doing nothing, a
 * tampered bundle refused with nothing on the device changed, no policy key,
 * 304 and errors.  Keys are made in the test with mdm_key_generate().
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
#include <unistd.h>
#include "agent/enforce.h"
#include "agent/policy.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"

#define DEVICE "0b6d7c8e-1f2a-4b3c-8d9e-0123456789ab"
#define OTHER "11111111-2222-4333-8444-555555555555"
#define E1 "\"0123456789abcdef0123456789abcdef\""
#define E2 "\"fedcba9876543210fedcba9876543210\""
#define E3 "\"33333333333333333333333333333333\""

#define BRIEF_VPN \
  "{\"remote\": \"vpn.corp.example.com\", \"port\": 1194, \"proto\": \"udp\"," \
  " \"dev\": \"tun\", \"auth\": \"SHA256\", \"cipher\": \"AES-256-CBC\"," \
  " \"auth_user_pass\": true, \"persist_key\": true, \"persist_tun\": true," \
  " \"verb\": 3}"
#define SETTINGS \
  "{\"vpn\": " BRIEF_VPN ", \"password\": {\"min_length\": 12, " \
  "\"max_age_days\": 90}, \"encryption\": \"required\", " \
  "\"wifi\": {\"ssid\": \"CORP\", \"security\": \"open\"}}"

static const char brief_conf[] =
  "# Written by mdm-agent from this device's configuration profile; local "
  "changes are replaced.\n"
  "client\n"
  "dev tun\n"
  "proto udp\n"
  "remote vpn.corp.example.com 1194\n"
  "auth SHA256\n"
  "cipher AES-256-CBC\n"
  "auth-user-pass\n"
  "persist-key\n"
  "persist-tun\n"
  "verb 3\n";

/* ---- keys and answers ------------------------------------------------------ */

static EVP_PKEY *key_a, *key_b;
static char *pem_a, *pem_b;

static int group_setup(void **state)
{
  (void)state;
  if(mdm_key_generate(&key_a) || mdm_key_generate(&key_b) ||
     mdm_key_to_pem(key_a, 0, &pem_a) || mdm_key_to_pem(key_b, 0, &pem_b))
    return -1;
  return 0;
}

static int group_teardown(void **state)
{
  (void)state;
  EVP_PKEY_free(key_a);
  EVP_PKEY_free(key_b);
  free(pem_a);
  free(pem_b);
  return 0;
}

static json_t *js(const char *s)
{
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
  if(!v)
    fail_msg("bad JSON in test: %s: %s", s, e.text);
  return v;
}

/* The bundle text the server signs (compact, sorted keys). */
static char *bundle_text(const char *device, const char *etag,
                         const char *settings)
{
  json_t *b = json_pack("{s:s, s:s, s:i, s:[{s:s, s:i}], s:o}", "device_id",
                        device, "etag", etag, "generation", 7, "profiles",
                        "name", "corp-vpn", "version", 1, "settings",
                        js(settings));
  char *s;
  assert_non_null(b);
  s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(b);
  assert_non_null(s);
  return s;
}

/* {"bundle", "signature", "kid", "alg"} over bytes[n] signed with key, with
 * what: 0 as is, 1 a byte of the bundle flipped after signing, 2 the
 * signature altered. */
static char *answer_raw(EVP_PKEY *key, const char *bytes, size_t n,
                        const char *alg, int what)
{
  char *b64 = NULL, *sig = NULL, *out, kid[MDM_KID_LEN + 1];
  char *copy = malloc(n + 1);
  json_t *o;

  assert_non_null(copy);
  memcpy(copy, bytes, n);
  assert_int_equal(mdm_sig_sign(key, copy, n, &sig), MDM_OK);
  assert_int_equal(mdm_key_id(key, kid), MDM_OK);
  if(what == 1) {
    /* "verb":3 becomes "verb":2 (still valid JSON), or any byte. */
    char *p = strstr(copy, "\"verb\":3");
    if(p)
      p[7] = '2';
    else
      copy[n / 2] ^= 0x01;
  }
  if(what == 2)
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
  assert_int_equal(mdm_b64url_encode(copy, n, &b64), MDM_OK);
  o = json_pack("{s:s, s:s, s:s, s:s}", "bundle", b64, "signature", sig,
                "kid", kid, "alg", alg);
  assert_non_null(o);
  out = json_dumps(o, JSON_COMPACT);
  assert_non_null(out);
  json_decref(o);
  free(b64);
  free(sig);
  free(copy);
  return out;
}

static char *answer(EVP_PKEY *key, const char *device, const char *etag,
                    const char *settings, int what)
{
  char *b = bundle_text(device, etag, settings);
  char *a = answer_raw(key, b, strlen(b), "ES256", what);
  free(b);
  return a;
}

/* ---- verifying ------------------------------------------------------------- */

static void verify_fails(const char *pem, const char *etag, const char *body,
                         mdm_rc want_rc, const char *want_why)
{
  json_t *b = (json_t *)1;
  char why[256];
  mdm_rc rc = mdm_policy_verify(pem, DEVICE, etag, body, strlen(body), &b,
                                why, sizeof(why));
  assert_int_equal(rc, want_rc);
  assert_string_equal(why, want_why);
  assert_null(b);
}

static void test_verify_ok(void **state)
{
  char *a = answer(key_a, DEVICE, E1, SETTINGS, 0), why[256];
  json_t *b = NULL;
  (void)state;
  assert_int_equal(mdm_policy_verify(pem_a, DEVICE, E1, a, strlen(a), &b,
                                     why, sizeof(why)), MDM_OK);
  assert_string_equal(why, "");
  assert_true(json_is_object(b));
  assert_string_equal(json_string_value(json_object_get(b, "etag")), E1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(
    json_object_get(b, "settings"), "vpn"), "verb")), 3);
  json_decref(b);
  free(a);
}

static void test_verify_tampered(void **state)
{
  char *a;
  (void)state;
  /* A byte of the bundle changed after signing. */
  a = answer(key_a, DEVICE, E1, SETTINGS, 1);
  assert_non_null(strstr(a, "ES256"));
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH, "signature invalid");
  free(a);
  /* The signature changed. */
  a = answer(key_a, DEVICE, E1, SETTINGS, 2);
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH, "signature invalid");
  free(a);
  /* Signed by another key (another tenant's, say). */
  a = answer(key_b, DEVICE, E1, SETTINGS, 0);
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH, "signature invalid");
  free(a);
  /* A signature of the wrong length, or not base64url. */
  verify_fails(pem_a, E1, "{\"bundle\":\"e30\",\"signature\":\"AAAA\","
               "\"kid\":\"k\",\"alg\":\"ES256\"}", MDM_ERR_AUTH,
               "signature invalid");
  verify_fails(pem_a, E1, "{\"bundle\":\"e30\",\"signature\":\"!!!!\","
               "\"kid\":\"k\",\"alg\":\"ES256\"}", MDM_ERR_AUTH,
               "signature invalid");
}

static void test_verify_wrong_device_and_etag(void **state)
{
  char *a = answer(key_a, OTHER, E1, SETTINGS, 0);
  (void)state;
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH, "bundle is for another device");
  free(a);
  a = answer(key_a, DEVICE, E1, SETTINGS, 0);
  verify_fails(pem_a, E2, a, MDM_ERR_INVAL,
               "bundle etag does not match the ETag header");
  verify_fails(pem_a, "", a, MDM_ERR_INVAL,
               "bundle etag does not match the ETag header");
  free(a);
}

static void test_verify_alg_and_key(void **state)
{
  char *b = bundle_text(DEVICE, E1, SETTINGS), *a;
  (void)state;
  a = answer_raw(key_a, b, strlen(b), "HS256", 0);
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH,
               "unsupported signature algorithm 'HS256'");
  free(a);
  a = answer_raw(key_a, b, strlen(b), "none", 0);
  verify_fails(pem_a, E1, a, MDM_ERR_AUTH,
               "unsupported signature algorithm 'none'");
  free(a);
  a = answer_raw(key_a, b, strlen(b), "ES256", 0);
  /* Enrolled before bundles were signed: no key, nothing is trusted. */
  verify_fails(NULL, E1, a, MDM_ERR_AUTH, "no policy key; re-enroll");
  verify_fails("", E1, a, MDM_ERR_AUTH, "no policy key; re-enroll");
  verify_fails("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
               E1, a, MDM_ERR_AUTH, "the policy key is unreadable; re-enroll");
  free(a);
  free(b);
}

static void test_verify_malformed(void **state)
{
  static const char *const bodies[] = {
    "", "not json", "[]", "{}",
    "{\"bundle\":\"e30\",\"kid\":\"k\",\"alg\":\"ES256\"}",
    "{\"signature\":\"AAAA\",\"kid\":\"k\",\"alg\":\"ES256\"}",
    "{\"bundle\":1,\"signature\":\"AAAA\",\"kid\":\"k\",\"alg\":\"ES256\"}",
    "{\"bundle\":\"e30\",\"signature\":\"AAAA\",\"kid\":\"k\"}",
    "{\"bundle\":\"e30\",\"bundle\":\"e30\",\"signature\":\"AAAA\","
    "\"alg\":\"ES256\"}",
  };
  static const char *const signed_bad[] = {
    "not json", "[1]", "{\"device_id\":\"" DEVICE "\"}",
    "{\"device_id\":\"" DEVICE "\",\"etag\":\"\\\"x\\\"\",\"settings\":[]}",
    "{\"settings\":{},\"settings\":{},\"device_id\":\"" DEVICE "\"}",
  };
  size_t i;
  char *a;
  (void)state;

  for(i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    verify_fails(pem_a, E1, bodies[i], MDM_ERR_INVAL,
                 "malformed answer: expected {bundle, signature, kid, alg}");
  verify_fails(pem_a, E1, "{\"bundle\":\"e3=0*\",\"signature\":\"AAAA\","
               "\"kid\":\"k\",\"alg\":\"ES256\"}", MDM_ERR_INVAL,
               "malformed answer: bundle is not base64url");
  /* Well signed, but not a bundle: refused after the signature check. */
  for(i = 0; i < sizeof(signed_bad) / sizeof(signed_bad[0]); i++) {
    a = answer_raw(key_a, signed_bad[i], strlen(signed_bad[i]), "ES256", 0);
    verify_fails(pem_a, E1, a, MDM_ERR_INVAL, "malformed bundle");
    free(a);
  }
}

static void test_verify_too_big(void **state)
{
  size_t n = MDM_POLICY_MAX_BODY + 1;
  char *big = malloc(n + 1), why[256];
  json_t *b = NULL;
  (void)state;
  assert_non_null(big);
  memset(big, ' ', n);
  big[n] = '\0';
  assert_int_equal(mdm_policy_verify(pem_a, DEVICE, E1, big, n, &b, why,
                                     sizeof(why)), MDM_ERR_TOOBIG);
  assert_string_equal(why, "answer larger than 1048576 bytes");
  assert_null(b);
  free(big);
}

/* ---- walking the settings -------------------------------------------------- */

static char calls[512];
static int n_removed;

static void fake_apply(const struct mdm_enforce_ctx *ctx, json_t *v,
                       struct mdm_enforce_result *res)
{
  size_t len = strlen(calls);
  (void)ctx;
  snprintf(calls + len, sizeof(calls) - len, "%s;",
           json_string_value(v) ? json_string_value(v) : "?");
  if(json_string_value(v) && !strcmp(json_string_value(v), "bad"))
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "it is %s", "bad");
}

static int fake_remove(const struct mdm_enforce_ctx *ctx)
{
  (void)ctx;
  n_removed++;
  return 1;
}

static const struct mdm_enforcer fake_table[] = {
  {"zeta", fake_apply, fake_remove},
  {"alpha", fake_apply, fake_remove},
  {"beta", fake_apply, NULL},
  {NULL, NULL, NULL}
};

static void enforce(const char *settings, const char *prev,
                    const char *want_status, size_t want_unreported)
{
  struct mdm_enforce_ctx ctx = {"/nonexistent", "/nonexistent", NULL};
  json_t *s = js(settings), *p = prev ? js(prev) : NULL, *out = NULL;
  json_t *want = js(want_status);
  size_t n_unreported = 99;
  assert_int_equal(mdm_policy_enforce(fake_table, &ctx, s, p, &out,
                                      &n_unreported), MDM_OK);
  if(!json_equal(out, want)) {
    char *got = json_dumps(out, JSON_SORT_KEYS);
    fail_msg("status: %s", got);
  }
  assert_int_equal(n_unreported, want_unreported);
  json_decref(out);
  json_decref(want);
  json_decref(s);
  json_decref(p);
}

static void test_enforce_walk(void **state)
{
  (void)state;
  calls[0] = '\0';
  n_removed = 0;
  /* In name order; unknown names not_supported with the fixed detail. */
  enforce("{\"zeta\": \"z\", \"wifi\": {}, \"alpha\": \"bad\", "
          "\"beta\": \"b\"}", NULL,
          "{\"alpha\": {\"state\": \"failed\", \"detail\": \"it is bad\"},"
          " \"beta\": {\"state\": \"applied\", \"detail\": null},"
          " \"wifi\": {\"state\": \"not_supported\", \"detail\": "
          "\"not supported by mdm-agent on linux\"},"
          " \"zeta\": {\"state\": \"applied\", \"detail\": null}}", 0);
  assert_string_equal(calls, "bad;b;z;");
  assert_int_equal(n_removed, 0);

  /* Left the bundle: zeta was applied, so it is undone; alpha had failed,
   * beta has no remove. */
  enforce("{}", "{\"zeta\": {\"state\": \"applied\"}, \"alpha\": {\"state\":"
          " \"failed\", \"detail\": \"x\"}, \"beta\": {\"state\": "
          "\"applied\"}}", "{}", 0);
  assert_int_equal(n_removed, 1);
  n_removed = 0;
  enforce("{\"zeta\": \"z\"}", "{\"zeta\": {\"state\": \"applied\"}}",
          "{\"zeta\": {\"state\": \"applied\", \"detail\": null}}", 0);
  assert_int_equal(n_removed, 0);
}

static void test_enforce_bounded(void **state)
{
  json_t *s = json_object(), *out = NULL;
  struct mdm_enforce_ctx ctx = {"/nonexistent", "/nonexistent", NULL};
  size_t n_unreported = 0, i;
  char name[300];
  (void)state;
  for(i = 0; i < 70; i++) {
    snprintf(name, sizeof(name), "s%03zu", i);
    json_object_set_new(s, name, json_true());
  }
  memset(name, 'x', 200);
  name[200] = '\0';
  json_object_set_new(s, name, json_true());
  assert_int_equal(mdm_policy_enforce(mdm_enforcers_linux, &ctx, s, NULL,
                                      &out, &n_unreported), MDM_OK);
  assert_int_equal(json_object_size(out), MDM_POLICY_SETTINGS_MAX);
  assert_int_equal(n_unreported, 71 - MDM_POLICY_SETTINGS_MAX);
  assert_non_null(json_object_get(out, "s063"));
  assert_null(json_object_get(out, "s064"));
  json_decref(out);
  json_decref(s);
}

/* ---- whole steps against a fake server ------------------------------------- */

struct fake {
  int n_calls;
  char inm[200];
  long status;
  char etag[MDM_POLICY_ETAG_MAX + 1];
  char *body;        /* owned */
  mdm_rc rc;
};

static mdm_rc fake_fetch(void *ud, const char *if_none_match,
                         struct mdm_policy_answer *ans)
{
  struct fake *f = ud;
  f->n_calls++;
  snprintf(f->inm, sizeof(f->inm), "%s", if_none_match ? if_none_match : "");
  if(f->rc) {
    snprintf(ans->errmsg, sizeof(ans->errmsg), "%s", f->rc == MDM_ERR_TOOBIG ?
             "answer larger than 1048576 bytes" :
             "cannot reach 'http://127.0.0.1:9': cannot connect");
    return f->rc;
  }
  ans->status = f->status;
  snprintf(ans->etag, sizeof(ans->etag), "%s", f->etag);
  if(f->body)
    assert_int_equal(mdm_buf_puts(&ans->body, f->body), MDM_OK);
  return MDM_OK;
}

static void serve(struct fake *f, long status, const char *etag, char *body)
{
  free(f->body);
  f->status = status;
  snprintf(f->etag, sizeof(f->etag), "%s", etag);
  f->body = body;
  f->rc = MDM_OK;
}

struct fx {
  char root[64];
  char state[128];
  json_t *facts;
  struct fake fake;
  struct mdm_policy_step_in in;
};

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static char *at(struct fx *f, const char *rel)
{
  static char buf[4][256];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s%s", f->root, rel);
  return buf[i];
}

static char *in_state(struct fx *f, const char *name)
{
  static char buf[256];
  snprintf(buf, sizeof(buf), "%s/%s", f->state, name);
  return buf;
}

static void put(const char *path, const char *s)
{
  char dir[256], *slash;
  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  *slash = '\0';
  assert_int_equal(mdm_mkdirs(dir, 0755), MDM_OK);
  assert_int_equal(mdm_file_write_atomic(path, s, strlen(s), 0644), MDM_OK);
}

static char *slurp(const char *path)
{
  char *s = NULL;
  assert_int_equal(mdm_file_read(path, 1 << 20, &s, NULL), MDM_OK);
  return s;
}

static void assert_file(const char *path, const char *want)
{
  char *s = slurp(path);
  assert_string_equal(s, want);
  free(s);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  snprintf(f->root, sizeof(f->root), "/tmp/mdm-test-policy-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->state, sizeof(f->state), "%s/state", f->root);
  assert_int_equal(mdm_state_prepare(f->state), MDM_OK);
  put(at(f, "/etc/login.defs"), "PASS_MAX_DAYS\t99999\n");
  put(at(f, "/etc/security/pwquality.conf"), "# minlen = 8\n");
  f->facts = js("{\"encryption\": {\"root_encrypted\": true}}");
  f->in.state_dir = f->state;
  f->in.device_id = DEVICE;
  f->in.policy_key = pem_a;
  f->in.table = mdm_enforcers_linux;
  f->in.ctx.root = f->root;
  f->in.ctx.state_dir = f->state;
  f->in.ctx.facts = f->facts;
  f->in.fetch = fake_fetch;
  f->in.fetch_ud = &f->fake;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  json_decref(f->facts);
  free(f->fake.body);
  free(f);
  return 0;
}

static mdm_rc step(struct fx *f, const char *server_etag,
                   enum mdm_policy_outcome want, const char *want_msg)
{
  enum mdm_policy_outcome got = (enum mdm_policy_outcome)-1;
  char msg[512];
  mdm_rc rc;
  f->in.server_etag = server_etag;
  rc = mdm_policy_step(&f->in, &got, msg, sizeof(msg));
  assert_int_equal(got, want);
  assert_string_equal(msg, want_msg);
  return rc;
}

static json_t *status(struct fx *f)
{
  json_t *s = NULL;
  assert_int_equal(mdm_policy_load_status(f->state, &s), MDM_OK);
  return s;
}

/* The status without applied_at (a time), compared with want. */
static void assert_status(struct fx *f, const char *want)
{
  json_t *s = status(f), *w = js(want);
  const char *at_s = json_string_value(json_object_get(s, "applied_at"));
  int64_t t;
  if(json_object_get(w, "applied_at") == NULL) {
    assert_non_null(at_s);
    assert_int_equal(mdm_time_parse(at_s, &t), MDM_OK);
    json_object_del(s, "applied_at");
  }
  if(!json_equal(s, w)) {
    char *got = json_dumps(s, JSON_SORT_KEYS);
    fail_msg("policy_status: %s", got);
  }
  json_decref(s);
  json_decref(w);
}

#define APPLIED_SETTINGS \
  "{\"encryption\": {\"state\": \"applied\", \"detail\": null}," \
  " \"password\": {\"state\": \"applied\", \"detail\": null}," \
  " \"vpn\": {\"state\": \"applied\", \"detail\": null}," \
  " \"wifi\": {\"state\": \"not_supported\", \"detail\": " \
  "\"not supported by mdm-agent on linux\"}}"

static void apply_e1(struct fx *f)
{
  serve(&f->fake, 200, E1, answer(key_a, DEVICE, E1, SETTINGS, 0));
  assert_int_equal(step(f, E1, MDM_POLICY_APPLIED, "applied policy " E1
                        ": 3 applied, 0 failed, 1 not supported"), MDM_OK);
}

static void test_step_apply_then_current(void **state)
{
  struct fx *f = *state;
  char *kept;

  /* No policy_etag from the server: nothing to do, nothing fetched. */
  assert_int_equal(step(f, NULL, MDM_POLICY_CURRENT, ""), MDM_OK);
  assert_int_equal(f->fake.n_calls, 0);
  assert_int_equal(access(in_state(f, MDM_POLICY_STATUS_FILE), F_OK), -1);

  apply_e1(f);
  assert_int_equal(f->fake.n_calls, 1);
  assert_string_equal(f->fake.inm, "");   /* nothing applied yet */
  assert_status(f, "{\"etag\": " "\"\\\"0123456789abcdef0123456789abcdef\\\"\""
                ", \"error\": null, \"settings\": " APPLIED_SETTINGS "}");
  assert_file(at(f, MDM_ENFORCE_VPN_PATH), brief_conf);
  assert_file(at(f, "/etc/login.defs"), "PASS_MAX_DAYS\t90\n");
  assert_file(at(f, "/etc/security/pwquality.conf"),
              "# minlen = 8\nminlen = 12\n");
  /* The signed answer is kept verbatim. */
  kept = slurp(in_state(f, MDM_POLICY_BUNDLE_FILE));
  assert_string_equal(kept, f->fake.body);
  free(kept);

  /* The same ETag again: nothing fetched, nothing changed. */
  assert_int_equal(step(f, E1, MDM_POLICY_CURRENT, ""), MDM_OK);
  assert_int_equal(f->fake.n_calls, 1);
  /* The server answers 304 to our If-None-Match: nothing changes. */
  serve(&f->fake, 304, E1, NULL);
  assert_int_equal(step(f, E2, MDM_POLICY_CURRENT, ""), MDM_OK);
  assert_int_equal(f->fake.n_calls, 2);
  assert_string_equal(f->fake.inm, E1);
  assert_status(f, "{\"etag\": " "\"\\\"0123456789abcdef0123456789abcdef\\\"\""
                ", \"error\": null, \"settings\": " APPLIED_SETTINGS "}");
}

/* Every file and directory under a root but its state dir, as "path mode
 * size sha256" lines in walk order (nftw visits a directory's entries in
 * the order readdir gives, which is stable for an unchanged directory). */
static char snap[16384];
static const char *snap_root, *snap_skip;

static int snap_one(const char *p, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  size_t len = strlen(snap);
  char hex[65] = "-", *data = NULL;
  size_t n = 0;
  (void)flag;
  (void)ftw;
  if(!strncmp(p, snap_skip, strlen(snap_skip)))
    return 0;
  if(S_ISREG(st->st_mode) && mdm_file_read(p, 1 << 20, &data, &n) == MDM_OK)
    mdm_sha256_hex(data, n, hex);
  free(data);
  snprintf(snap + len, sizeof(snap) - len, "%s %o %lld %s\n",
           p + strlen(snap_root), (unsigned)st->st_mode,
           (long long)st->st_size, hex);
  return 0;
}

static void snapshot_dir(const char *dir, const char *skip, char *out,
                         size_t n)
{
  char skip_path[256];
  snprintf(skip_path, sizeof(skip_path), "%s/%s", dir, skip);
  snap[0] = '\0';
  snap_root = dir;
  snap_skip = skip_path;
  assert_int_equal(nftw(dir, snap_one, 16, FTW_PHYS), 0);
  assert_true(strlen(snap) < sizeof(snap) - 1);
  snprintf(out, n, "%s", snap);
}

static void test_step_rejects_tampered(void **state)
{
  struct fx *f = *state;
  char before[8192], after[8192], *kept_before, *kept_after;
  json_t *st1, *st2;
  static const char *const whys[] = {
    "bundle rejected: signature invalid",
    "bundle rejected: signature invalid",
    "bundle rejected: signature invalid",
    "bundle rejected: bundle is for another device",
    "bundle rejected: bundle etag does not match the ETag header",
  };
  int i;

  apply_e1(f);
  st1 = status(f);
  kept_before = slurp(in_state(f, MDM_POLICY_BUNDLE_FILE));
  snapshot_dir(f->root, "state", before, sizeof(before));
  assert_non_null(strstr(before, "/etc/openvpn/client/mdm.conf 100600 "));

  /* A new profile (verb 3 -> 4, no password) arrives altered in transit,
   * signed by another key, for another device, or with another ETag. */
  for(i = 0; i < 5; i++) {
    const char *settings = "{\"vpn\": {\"remote\": \"evil.example\", "
                           "\"verb\": 3}}";
    char *a = i == 0 ? answer(key_a, DEVICE, E2, settings, 1) :
              i == 1 ? answer(key_a, DEVICE, E2, settings, 2) :
              i == 2 ? answer(key_b, DEVICE, E2, settings, 0) :
              i == 3 ? answer(key_a, OTHER, E2, settings, 0) :
                       answer(key_a, DEVICE, E3, settings, 0);
    serve(&f->fake, 200, E2, a);
    assert_int_equal(step(f, E2, MDM_POLICY_REJECTED, whys[i]), MDM_OK);
    assert_string_equal(f->fake.inm, E1);
    /* Nothing on the device changed, nor the kept bundle. */
    snapshot_dir(f->root, "state", after, sizeof(after));
    assert_string_equal(after, before);
    kept_after = slurp(in_state(f, MDM_POLICY_BUNDLE_FILE));
    assert_string_equal(kept_after, kept_before);
    free(kept_after);
    /* The status keeps the applied ETag, time and settings, and says why. */
    st2 = status(f);
    assert_true(json_equal(json_object_get(st1, "etag"),
                           json_object_get(st2, "etag")));
    assert_true(json_equal(json_object_get(st1, "applied_at"),
                           json_object_get(st2, "applied_at")));
    assert_true(json_equal(json_object_get(st1, "settings"),
                           json_object_get(st2, "settings")));
    assert_string_equal(json_string_value(json_object_get(st2, "error")),
                        whys[i]);
    json_decref(st2);
  }
  free(kept_before);

  /* The server goes back to what we have: the error is cleared. */
  assert_int_equal(step(f, E1, MDM_POLICY_CURRENT, ""), MDM_OK);
  st2 = status(f);
  assert_true(json_equal(st1, st2));
  json_decref(st2);
  json_decref(st1);

  /* A good bundle for E2 applies: vpn rewritten, password left as it is
   * (it is not ours to undo), and the error gone. */
  serve(&f->fake, 200, E2, answer(key_a, DEVICE, E2, "{\"vpn\": {\"remote\":"
                                  " \"vpn2.example\"}}", 0));
  assert_int_equal(step(f, E2, MDM_POLICY_APPLIED, "applied policy " E2
                        ": 1 applied, 0 failed, 0 not supported"), MDM_OK);
  assert_status(f, "{\"etag\": " "\"\\\"fedcba9876543210fedcba9876543210\\\"\""
                ", \"error\": null, \"settings\": {\"vpn\": {\"state\": "
                "\"applied\", \"detail\": null}}}");
  assert_file(at(f, MDM_ENFORCE_VPN_PATH),
              "# Written by mdm-agent from this device's configuration "
              "profile; local changes are replaced.\n"
              "client\ndev tun\nproto udp\nremote vpn2.example 1194\n");
  assert_file(at(f, "/etc/login.defs"), "PASS_MAX_DAYS\t90\n");

  /* A bundle without vpn: the profile the agent wrote goes away. */
  serve(&f->fake, 200, E3, answer(key_a, DEVICE, E3, "{}", 0));
  assert_int_equal(step(f, E3, MDM_POLICY_APPLIED, "applied policy " E3
                        ": 0 applied, 0 failed, 0 not supported"), MDM_OK);
  assert_int_equal(access(at(f, MDM_ENFORCE_VPN_PATH), F_OK), -1);
  assert_status(f, "{\"etag\": " "\"\\\"33333333333333333333333333333333\\\"\""
                ", \"error\": null, \"settings\": {}}");
}

static void test_step_no_policy_key(void **state)
{
  struct fx *f = *state;
  char before[8192], after[8192];

  /* Enrolled before bundles were signed: refused without fetching. */
  f->in.policy_key = NULL;
  snapshot_dir(f->root, "state", before, sizeof(before));
  serve(&f->fake, 200, E1, answer(key_a, DEVICE, E1, SETTINGS, 0));
  assert_int_equal(step(f, E1, MDM_POLICY_REJECTED,
                        "bundle rejected: no policy key; re-enroll"), MDM_OK);
  assert_int_equal(f->fake.n_calls, 0);
  assert_status(f, "{\"etag\": null, \"applied_at\": null, \"error\": "
                "\"bundle rejected: no policy key; re-enroll\", "
                "\"settings\": {}}");
  snapshot_dir(f->root, "state", after, sizeof(after));
  assert_string_equal(after, before);
  assert_int_equal(access(in_state(f, MDM_POLICY_BUNDLE_FILE), F_OK), -1);
  /* The next round says the same, without rewriting the status. */
  assert_int_equal(step(f, E1, MDM_POLICY_REJECTED,
                        "bundle rejected: no policy key; re-enroll"), MDM_OK);
}

static void test_step_fetch_errors(void **state)
{
  struct fx *f = *state;
  json_t *st1, *st2;

  apply_e1(f);
  st1 = status(f);
  serve(&f->fake, 500, "", strdup("{\"type\":\"https://mdm.dev/problems/x\","
                                  "\"title\":\"internal error\",\"status\""
                                  ":500,\"detail\":\"cannot sign the bundle\"}"));
  assert_int_equal(step(f, E2, MDM_POLICY_CURRENT, "cannot fetch the policy: "
                        "500 internal error: cannot sign the bundle"),
                   MDM_ERR_IO);
  serve(&f->fake, 401, "", NULL);
  assert_int_equal(step(f, E2, MDM_POLICY_CURRENT, "cannot fetch the policy: "
                        "401 unauthorized"), MDM_ERR_AUTH);
  serve(&f->fake, 200, E2, NULL);
  f->fake.rc = MDM_ERR_IO;
  assert_int_equal(step(f, E2, MDM_POLICY_CURRENT, "cannot fetch the policy: "
                        "cannot reach 'http://127.0.0.1:9': cannot connect"),
                   MDM_ERR_IO);
  /* Too large is the server's fault, not the network's: reported. */
  f->fake.rc = MDM_ERR_TOOBIG;
  assert_int_equal(step(f, E2, MDM_POLICY_REJECTED, "bundle rejected: "
                        "answer larger than 1048576 bytes"), MDM_OK);
  f->fake.rc = MDM_OK;
  /* None of the network failures touched the status. */
  serve(&f->fake, 304, E1, NULL);
  assert_int_equal(step(f, E2, MDM_POLICY_CURRENT, ""), MDM_OK);
  st2 = status(f);
  assert_true(json_equal(json_object_get(st1, "settings"),
                         json_object_get(st2, "settings")));
  json_decref(st1);
  json_decref(st2);
}

static void test_status_damaged(void **state)
{
  static const char *const bad[] = {
    "", "[]", "{\"etag\": 1, \"settings\": {}}",
    "{\"etag\": null}",
    "{\"etag\": null, \"settings\": {\"vpn\": {\"state\": \"done\"}}}",
    "{\"etag\": null, \"settings\": {}, \"extra\": 1}",
    "{\"etag\": null, \"settings\": {\"vpn\": {\"state\": \"applied\", "
    "\"why\": null}}}",
    /* an ETag that cannot go back in If-None-Match */
    "{\"etag\": \"\\\"a\\r\\nX-Evil: 1\\\"\", \"settings\": {}}",
    "{\"etag\": \"\", \"settings\": {}}",
  };
  struct fx *f = *state;
  json_t *s = (json_t *)1;
  size_t i;

  assert_int_equal(mdm_policy_load_status(f->state, &s), MDM_ERR_NOTFOUND);
  assert_null(s);
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    put(in_state(f, MDM_POLICY_STATUS_FILE), bad[i]);
    assert_int_equal(mdm_policy_load_status(f->state, &s), MDM_ERR_NOTFOUND);
    assert_null(s);
  }
  /* A damaged status makes the agent fetch again. */
  apply_e1(f);
  put(in_state(f, MDM_POLICY_STATUS_FILE), "{");
  apply_e1(f);
  assert_string_equal(f->fake.inm, "");
}

/* credentials.json keeps policy_key; one written before it has none. */
static void test_creds_policy_key(void **state)
{
  struct fx *f = *state;
  struct mdm_creds c, r;
  char err[256];

  memset(&c, 0, sizeof(c));
  c.server = "http://127.0.0.1:8080";
  c.device_id = DEVICE;
  c.device_token = "eyJhbGciOiJFUzI1NiJ9.e30.sig";
  c.checkin_interval_s = 60;
  c.policy_key = pem_a;
  assert_int_equal(mdm_state_save_creds(f->state, &c), MDM_OK);
  assert_int_equal(mdm_state_load_creds(f->state, &r, err, sizeof(err)),
                   MDM_OK);
  assert_string_equal(r.policy_key, pem_a);
  mdm_creds_release(&r);

  put(in_state(f, "credentials.json"), "{\"server\": \"http://h\", "
      "\"device_id\": \"d\", \"device_token\": \"t\"}");
  assert_int_equal(mdm_state_load_creds(f->state, &r, err, sizeof(err)),
                   MDM_OK);
  assert_null(r.policy_key);
  mdm_creds_release(&r);

  put(in_state(f, "credentials.json"), "{\"server\": \"http://h\", "
      "\"device_id\": \"d\", \"device_token\": \"t\", \"policy_key\": 5}");
  assert_int_equal(mdm_state_load_creds(f->state, &r, err, sizeof(err)),
                   MDM_ERR_INVAL);
  assert_non_null(strstr(err, "policy_key"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_verify_ok),
    cmocka_unit_test(test_verify_tampered),
    cmocka_unit_test(test_verify_wrong_device_and_etag),
    cmocka_unit_test(test_verify_alg_and_key),
    cmocka_unit_test(test_verify_malformed),
    cmocka_unit_test(test_verify_too_big),
    cmocka_unit_test(test_enforce_walk),
    cmocka_unit_test(test_enforce_bounded),
    cmocka_unit_test_setup_teardown(test_step_apply_then_current, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_step_rejects_tampered, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_step_no_policy_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_step_fetch_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_status_damaged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creds_policy_key, setup, teardown),
  };
  mdm_log_setup("test_policy", 0, MDM_LOG_ERROR);
  umask(022);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
