/*
 * test_enforce.c: unit tests for the Linux enforcers (src/agent/enforce*.c):
 * the OpenVPN profile of the brief's example byte for byte, idempotence,
 * values OpenVPN would read differently, in-place edits of login.defs and
 * pwquality.conf with comments kept, encryption against the facts, and
 * os_update kept in the state dir.  Each test works in its own temp dir
 * that stands in for the device's root.
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
#include "core/log.h"
#include "core/util.h"

/* The brief's example, as a ConfigurationProfile's vpn setting. */
#define BRIEF_VPN \
  "{\"remote\": \"vpn.corp.example.com\", \"port\": 1194, \"proto\": \"udp\"," \
  " \"dev\": \"tun\", \"auth\": \"SHA256\", \"cipher\": \"AES-256-CBC\"," \
  " \"auth_user_pass\": true, \"persist_key\": true, \"persist_tun\": true," \
  " \"verb\": 3}"

#define HEADER "# Written by mdm-agent from this device's configuration " \
  "profile; local changes are replaced.\n"

/* ...and the file it must give: the brief's directives, in its order. */
static const char brief_conf[] =
  HEADER
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

struct fx {
  char root[64];
  char state[128];
  struct mdm_enforce_ctx ctx;
  json_t *facts;
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
  snprintf(f->root, sizeof(f->root), "/tmp/mdm-test-enforce-XXXXXX");
  assert_non_null(mkdtemp(f->root));
  snprintf(f->state, sizeof(f->state), "%s/var/lib/mdm-agent", f->root);
  assert_int_equal(mdm_mkdirs(f->state, 0700), MDM_OK);
  f->facts = json_loads("{\"encryption\": {\"root_encrypted\": true, "
                        "\"method\": \"luks2\"}}", 0, NULL);
  assert_non_null(f->facts);
  f->ctx.root = f->root;
  f->ctx.state_dir = f->state;
  f->ctx.facts = f->facts;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  json_decref(f->facts);
  free(f);
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

/* path under the fixture's root. */
static const char *at(struct fx *f, const char *rel)
{
  static char buf[4][256];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s%s", f->root, rel);
  return buf[i];
}

static void put(const char *path, const char *s, unsigned mode)
{
  char dir[256], *slash;
  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  *slash = '\0';
  assert_int_equal(mdm_mkdirs(dir, 0755), MDM_OK);
  assert_int_equal(mdm_file_write_atomic(path, s, strlen(s), mode), MDM_OK);
}

static void assert_file(const char *path, const char *want, unsigned mode)
{
  char *got = NULL;
  struct stat st;
  assert_int_equal(mdm_file_read(path, 1 << 20, &got, NULL), MDM_OK);
  assert_string_equal(got, want);
  free(got);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, mode);
}

static void assert_absent(const char *path)
{
  struct stat st;
  assert_int_not_equal(lstat(path, &st), 0);
}

/* Apply fn to the setting text; return the result. */
static struct mdm_enforce_result run(struct fx *f, mdm_enforce_fn fn,
                                     const char *value)
{
  struct mdm_enforce_result res;
  json_t *v = js(value);
  memset(&res, 0, sizeof(res));
  fn(&f->ctx, v, &res);
  json_decref(v);
  return res;
}

static void expect(struct mdm_enforce_result res,
                   enum mdm_enforce_state state, const char *detail)
{
  assert_int_equal(res.state, state);
  assert_string_equal(res.detail, detail);
}

/* ---- vpn ------------------------------------------------------------------- */

static void render(const char *vpn, const char *want)
{
  struct mdm_buf b;
  char err[512];
  json_t *v = js(vpn);
  mdm_buf_init(&b, 1 << 20);
  assert_int_equal(mdm_enforce_vpn_render(v, &b, err, sizeof(err)), MDM_OK);
  assert_string_equal(err, "");
  assert_string_equal(b.data, want);
  mdm_buf_release(&b);
  json_decref(v);
}

static void test_vpn_brief_example(void **state)
{
  (void)state;
  render(BRIEF_VPN, brief_conf);
  /* Member order in the document does not matter. */
  render("{\"verb\": 3, \"persist_tun\": true, \"persist_key\": true,"
         " \"auth_user_pass\": true, \"cipher\": \"AES-256-CBC\","
         " \"auth\": \"SHA256\", \"dev\": \"tun\", \"proto\": \"udp\","
         " \"port\": 1194, \"remote\": \"vpn.corp.example.com\"}", brief_conf);
}

static void test_vpn_defaults_and_everything(void **state)
{
  (void)state;
  /* The least: port 1194, proto udp, dev tun; nothing else. */
  render("{\"remote\": \"10.1.2.3\"}",
         HEADER "client\ndev tun\nproto udp\nremote 10.1.2.3 1194\n");
  /* false flags write nothing. */
  render("{\"remote\": \"2001:db8::1\", \"auth_user_pass\": false,"
         " \"persist_key\": false, \"persist_tun\": false, \"verb\": 0}",
         HEADER "client\ndev tun\nproto udp\nremote 2001:db8::1 1194\n"
         "verb 0\n");
  /* Every field, in the fixed order; the CA inline without blank lines or
   * carriage returns; extra lines last, as written. */
  render("{\"remote\": \"gw.example.org\", \"port\": 443, \"proto\": \"tcp\","
         " \"dev\": \"tap\", \"auth\": \"SHA512\", \"cipher\": \"AES-256-GCM\","
         " \"auth_user_pass\": true, \"persist_key\": true,"
         " \"persist_tun\": true, \"verb\": 4, \"remote_cert_tls\": \"server\","
         " \"ca\": \"-----BEGIN CERTIFICATE-----\\r\\nMIIBszCCAVmgAwIBAgIU\\r\\n"
         "bm90IGEgcmVhbCBjZXJ0=\\r\\n-----END CERTIFICATE-----\\r\\n\\n"
         "-----BEGIN CERTIFICATE-----\\nQUJD\\n-----END CERTIFICATE-----\","
         " \"extra\": [\"data-ciphers AES-256-GCM:AES-128-GCM\","
         " \"resolv-retry infinite\", \"nobind\"]}",
         HEADER
         "client\n"
         "dev tap\n"
         "proto tcp\n"
         "remote gw.example.org 443\n"
         "auth SHA512\n"
         "cipher AES-256-GCM\n"
         "auth-user-pass\n"
         "persist-key\n"
         "persist-tun\n"
         "verb 4\n"
         "remote-cert-tls server\n"
         "<ca>\n"
         "-----BEGIN CERTIFICATE-----\n"
         "MIIBszCCAVmgAwIBAgIU\n"
         "bm90IGEgcmVhbCBjZXJ0=\n"
         "-----END CERTIFICATE-----\n"
         "-----BEGIN CERTIFICATE-----\n"
         "QUJD\n"
         "-----END CERTIFICATE-----\n"
         "</ca>\n"
         "data-ciphers AES-256-GCM:AES-128-GCM\n"
         "resolv-retry infinite\n"
         "nobind\n");
}

static void test_vpn_apply_idempotent(void **state)
{
  struct fx *f = *state;
  const char *path = at(f, MDM_ENFORCE_VPN_PATH);
  struct mdm_enforce_result res;
  struct stat st1, st2;

  assert_absent(at(f, "/etc"));
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_true(res.is_changed);
  assert_file(path, brief_conf, 0600);
  assert_int_equal(stat(at(f, "/etc/openvpn/client"), &st1), 0);
  assert_true(S_ISDIR(st1.st_mode));
  assert_int_equal(st1.st_mode & 0777, 0755);

  /* Again: nothing is written (same inode, so no rename happened). */
  assert_int_equal(stat(path, &st1), 0);
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_false(res.is_changed);
  assert_int_equal(stat(path, &st2), 0);
  assert_int_equal(st1.st_ino, st2.st_ino);

  /* A local edit is put back; so is a loosened mode. */
  put(path, "client\nremote evil.example 1194\n", 0600);
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  assert_true(res.is_changed);
  assert_file(path, brief_conf, 0600);
  assert_int_equal(chmod(path, 0644), 0);
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  assert_true(res.is_changed);
  assert_file(path, brief_conf, 0600);

  /* Removal (the setting left the bundle), idempotent too. */
  assert_int_equal(mdm_enforce_vpn_remove(&f->ctx), 1);
  assert_absent(path);
  assert_int_equal(mdm_enforce_vpn_remove(&f->ctx), 0);
}

static void test_vpn_bad_values(void **state)
{
  static const struct {
    const char *vpn, *detail;
  } cases[] = {
    {"\"vpn.corp.example.com\"", "vpn: expected a mapping"},
    {"{}", "vpn.remote: required"},
    {"{\"remote\": \"vpn.corp.example.com\\nup /bin/sh\"}",
     "vpn.remote: expected a host name or IP address (letters, digits, '.', "
     "'-', ':'; no spaces)"},
    {"{\"remote\": \"vpn.corp.example.com 443\"}",
     "vpn.remote: expected a host name or IP address (letters, digits, '.', "
     "'-', ':'; no spaces)"},
    {"{\"remote\": \"--script-security\"}",
     "vpn.remote: expected a host name or IP address (letters, digits, '.', "
     "'-', ':'; no spaces)"},
    {"{\"remote\": 7}",
     "vpn.remote: expected a host name or IP address (letters, digits, '.', "
     "'-', ':'; no spaces)"},
    {"{\"remote\": \"h\", \"cipher\": \"AES-256-CBC up /tmp/x\"}",
     "vpn.cipher: expected a cipher name of letters, digits and '-' (no "
     "spaces) such as AES-256-GCM"},
    {"{\"remote\": \"h\", \"cipher\": \"AES-256-CBC\\nup /tmp/x\"}",
     "vpn.cipher: expected a cipher name of letters, digits and '-' (no "
     "spaces) such as AES-256-GCM"},
    {"{\"remote\": \"h\", \"auth\": \"SHA 256\"}",
     "vpn.auth: expected a digest name of letters, digits and '-' (no "
     "spaces) such as SHA256"},
    {"{\"remote\": \"h\", \"port\": 0}",
     "vpn.port: expected an integer in 1..65535"},
    {"{\"remote\": \"h\", \"port\": \"1194\"}",
     "vpn.port: expected an integer in 1..65535"},
    {"{\"remote\": \"h\", \"proto\": \"icmp\"}",
     "vpn.proto: expected one of udp, tcp, udp6, tcp6"},
    {"{\"remote\": \"h\", \"dev\": \"tun0 up\"}", "vpn.dev: expected tun or tap"},
    {"{\"remote\": \"h\", \"verb\": 12}",
     "vpn.verb: expected an integer in 0..11"},
    {"{\"remote\": \"h\", \"persist_key\": \"yes\"}",
     "vpn.persist_key: expected true or false"},
    {"{\"remote\": \"h\", \"remote_cert_tls\": \"peer\"}",
     "vpn.remote_cert_tls: expected server or client"},
    {"{\"remote\": \"h\", \"ca\": \"-----BEGIN CERTIFICATE-----\\nQUJD\\n"
     "</ca>\\nup /bin/sh\\n-----END CERTIFICATE-----\"}",
     "vpn.ca: expected one or more PEM certificates (-----BEGIN "
     "CERTIFICATE----- ... -----END CERTIFICATE-----)"},
    {"{\"remote\": \"h\", \"ca\": \"-----BEGIN CERTIFICATE-----\\nQUJD\"}",
     "vpn.ca: expected one or more PEM certificates (-----BEGIN "
     "CERTIFICATE----- ... -----END CERTIFICATE-----)"},
    {"{\"remote\": \"h\", \"extra\": [\"nobind\", \"up /tmp/x.sh\"]}",
     "vpn.extra[1]: directive not allowed: it can run programs or write "
     "files on the device"},
    {"{\"remote\": \"h\", \"extra\": [\"--SCRIPT-SECURITY 2\"]}",
     "vpn.extra[0]: directive not allowed: it can run programs or write "
     "files on the device"},
    {"{\"remote\": \"h\", \"extra\": [\"nobind\\nup /tmp/x.sh\"]}",
     "vpn.extra[0]: expected a single line"},
    {"{\"remote\": \"h\", \"extra\": [\"  <connection>\"]}",
     "vpn.extra[0]: inline blocks (<tag>) are not allowed"},
    {"{\"remote\": \"h\", \"extra\": \"nobind\"}",
     "vpn.extra: expected a list of at most 64 OpenVPN directives"},
    {"{\"remote\": \"h\", \"extra\": [1]}", "vpn.extra[0]: expected a string"},
    {"{\"remote\": \"h\", \"compress\": \"lz4\"}",
     "vpn.compress: not supported by mdm-agent"},
  };
  struct fx *f = *state;
  struct mdm_enforce_result res;
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    res = run(f, mdm_enforce_vpn, cases[i].vpn);
    if(res.state != MDM_ENFORCE_FAILED || strcmp(res.detail, cases[i].detail))
      fail_msg("case %zu (%s): state %d, detail '%s'", i, cases[i].vpn,
               (int)res.state, res.detail);
    assert_false(res.is_changed);
    assert_absent(at(f, "/etc"));
  }
  /* A bad bundle does not touch a profile that is there. */
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  assert_int_equal(res.state, MDM_ENFORCE_APPLIED);
  res = run(f, mdm_enforce_vpn, cases[2].vpn);
  assert_int_equal(res.state, MDM_ENFORCE_FAILED);
  assert_file(at(f, MDM_ENFORCE_VPN_PATH), brief_conf, 0600);
}

static void test_vpn_cannot_write(void **state)
{
  struct fx *f = *state;
  struct mdm_enforce_result res;
  /* /etc/openvpn is a file: the directory cannot be made. */
  put(at(f, "/etc/openvpn"), "x", 0644);
  res = run(f, mdm_enforce_vpn, BRIEF_VPN);
  expect(res, MDM_ENFORCE_FAILED,
         "cannot write '/etc/openvpn/client/mdm.conf': i/o error");
}

/* ---- key/value files ------------------------------------------------------- */

static void kv(const char *text, const char *key, enum mdm_kv_style style,
               const char *value, const char *want)
{
  char *out = NULL;
  assert_int_equal(mdm_enforce_kv_set(text, key, style, value, &out), MDM_OK);
  assert_string_equal(out, want);
  free(out);
}

static void test_kv_set(void **state)
{
  (void)state;
  /* Replaced in place; comments, other keys and spacing stay. */
  kv("# PASS_MAX_DAYS 1\n#\tPASS_MAX_DAYS\tMaximum days\n"
     "PASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\n",
     "PASS_MAX_DAYS", MDM_KV_SPACE, "90",
     "# PASS_MAX_DAYS 1\n#\tPASS_MAX_DAYS\tMaximum days\n"
     "PASS_MAX_DAYS\t90\nPASS_MIN_DAYS\t0\n");
  /* Indentation and several spaces kept; CRLF kept; every active line. */
  kv("  PASS_MAX_DAYS   99999\r\nX 1\r\nPASS_MAX_DAYS 5\r\n",
     "PASS_MAX_DAYS", MDM_KV_SPACE, "90",
     "  PASS_MAX_DAYS   90\r\nX 1\r\nPASS_MAX_DAYS 90\r\n");
  /* A longer key that starts the same is another key. */
  kv("PASS_MAX_DAYSX 1\n", "PASS_MAX_DAYS", MDM_KV_SPACE, "90",
     "PASS_MAX_DAYSX 1\nPASS_MAX_DAYS\t90\n");
  /* Absent: appended, after a newline if the file lacks its last one. */
  kv("PASS_MIN_DAYS\t0", "PASS_MAX_DAYS", MDM_KV_SPACE, "90",
     "PASS_MIN_DAYS\t0\nPASS_MAX_DAYS\t90\n");
  kv("", "minlen", MDM_KV_EQUALS, "12", "minlen = 12\n");
  /* key = value with or without spaces. */
  kv("# minlen = 8\nminlen=8\nminclass = 1\n", "minlen", MDM_KV_EQUALS, "12",
     "# minlen = 8\nminlen=12\nminclass = 1\n");
  kv("minlen    =    8   \n", "minlen", MDM_KV_EQUALS, "12",
     "minlen    =    12\n");
  kv("minlength = 3\n", "minlen", MDM_KV_EQUALS, "12",
     "minlength = 3\nminlen = 12\n");
  /* Already right: the same text. */
  kv("minlen = 12\n", "minlen", MDM_KV_EQUALS, "12", "minlen = 12\n");
}

/* ---- password -------------------------------------------------------------- */

#define LOGIN_DEFS_HEAD \
  "#\n" \
  "# /etc/login.defs - Configuration control definitions for the login " \
  "package.\n" \
  "#\n" \
  "# Password aging controls:\n" \
  "#\n" \
  "#\tPASS_MAX_DAYS\tMaximum number of days a password may be used.\n" \
  "#\tPASS_MIN_DAYS\tMinimum number of days allowed between password " \
  "changes.\n" \
  "#\tPASS_WARN_AGE\tNumber of days warning given before a password " \
  "expires.\n" \
  "#\n"
#define LOGIN_DEFS_TAIL \
  "PASS_MIN_DAYS\t0\n" \
  "PASS_WARN_AGE\t7\n" \
  "\n" \
  "ENCRYPT_METHOD SHA512\n"

static const char login_defs[] =
  LOGIN_DEFS_HEAD "PASS_MAX_DAYS\t99999\n" LOGIN_DEFS_TAIL;
/* ...with max_age_days 90: that line only. */
static const char login_defs_90[] =
  LOGIN_DEFS_HEAD "PASS_MAX_DAYS\t90\n" LOGIN_DEFS_TAIL;

static const char pwquality[] =
  "# Configuration for systemwide password quality limits\n"
  "# Defaults:\n"
  "#\n"
  "# Minimum acceptable size for the new password (plus one if\n"
  "# credits are not disabled which is the default). (See pam_cracklib "
  "manual.)\n"
  "# Cannot be set to lower value than 6.\n"
  "# minlen = 8\n"
  "#\n"
  "# The minimum number of required classes of characters for the new\n"
  "# password (digits, uppercase, lowercase, others).\n"
  "# minclass = 0\n"
  "#\n"
  "dictcheck = 1\n";

static void test_password_apply(void **state)
{
  struct fx *f = *state;
  struct mdm_enforce_result res;
  const char *defs = at(f, "/etc/login.defs");
  const char *pwq = at(f, "/etc/security/pwquality.conf");
  char *want_pwq;
  struct stat st1, st2;

  put(defs, login_defs, 0644);
  put(pwq, pwquality, 0640);
  res = run(f, mdm_enforce_password, "{\"min_length\": 12, "
            "\"max_age_days\": 90, \"min_classes\": 3}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_true(res.is_changed);

  /* login.defs: the one active line changed, its tab kept; the commented
   * "#\tPASS_MAX_DAYS\tMaximum..." line is left alone. */
  assert_file(defs, login_defs_90, 0644);

  /* pwquality.conf: the commented defaults stay; the keys are appended;
   * its mode (0640) is kept. */
  want_pwq = malloc(strlen(pwquality) + 64);
  assert_non_null(want_pwq);
  snprintf(want_pwq, strlen(pwquality) + 64, "%sminlen = 12\nminclass = 3\n",
           pwquality);
  assert_file(pwq, want_pwq, 0640);

  /* Again: nothing is rewritten. */
  assert_int_equal(stat(defs, &st1), 0);
  res = run(f, mdm_enforce_password, "{\"min_length\": 12, "
            "\"max_age_days\": 90, \"min_classes\": 3}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_false(res.is_changed);
  assert_int_equal(stat(defs, &st2), 0);
  assert_int_equal(st1.st_ino, st2.st_ino);

  /* A new value replaces ours in place. */
  res = run(f, mdm_enforce_password, "{\"min_length\": 14}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  snprintf(want_pwq, strlen(pwquality) + 64, "%sminlen = 14\nminclass = 3\n",
           pwquality);
  assert_file(pwq, want_pwq, 0640);
  assert_file(defs, login_defs_90, 0644);
  free(want_pwq);
}

static void test_password_missing_files(void **state)
{
  struct fx *f = *state;
  struct mdm_enforce_result res;

  /* No /etc/security: no libpwquality; no login.defs: no shadow suite. */
  res = run(f, mdm_enforce_password, "{\"min_length\": 12}");
  expect(res, MDM_ENFORCE_NOT_SUPPORTED, "libpwquality not installed");
  res = run(f, mdm_enforce_password, "{\"max_age_days\": 90}");
  expect(res, MDM_ENFORCE_FAILED, "login.defs not found");
  res = run(f, mdm_enforce_password, "{\"min_length\": 12, "
            "\"max_age_days\": 90}");
  expect(res, MDM_ENFORCE_FAILED,
         "libpwquality not installed; login.defs not found");
  assert_absent(at(f, "/etc"));

  /* /etc/security without pwquality.conf: it is created. */
  assert_int_equal(mdm_mkdirs(at(f, "/etc/security"), 0755), MDM_OK);
  res = run(f, mdm_enforce_password, "{\"min_length\": 12, "
            "\"min_classes\": 2}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_file(at(f, "/etc/security/pwquality.conf"),
              "minlen = 12\nminclass = 2\n", 0644);
  assert_absent(at(f, "/etc/login.defs"));

  /* Nothing asked: nothing to do. */
  res = run(f, mdm_enforce_password, "{}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_false(res.is_changed);
}

static void test_password_bad_values(void **state)
{
  struct fx *f = *state;
  put(at(f, "/etc/login.defs"), login_defs, 0644);
  expect(run(f, mdm_enforce_password, "[12]"), MDM_ENFORCE_FAILED,
         "password: expected a mapping");
  expect(run(f, mdm_enforce_password, "{\"min_length\": \"12\"}"),
         MDM_ENFORCE_FAILED,
         "password.min_length: expected an integer in 1..128");
  expect(run(f, mdm_enforce_password, "{\"min_length\": 0}"),
         MDM_ENFORCE_FAILED,
         "password.min_length: expected an integer in 1..128");
  expect(run(f, mdm_enforce_password, "{\"min_classes\": 5}"),
         MDM_ENFORCE_FAILED,
         "password.min_classes: expected an integer in 0..4");
  expect(run(f, mdm_enforce_password, "{\"max_age_days\": -1}"),
         MDM_ENFORCE_FAILED,
         "password.max_age_days: expected an integer in 0..99999");
  expect(run(f, mdm_enforce_password, "{\"max_age_days\": 9, "
             "\"history\": 5}"), MDM_ENFORCE_FAILED,
         "password.history: not supported by mdm-agent");
  /* Nothing was changed by any of them. */
  assert_file(at(f, "/etc/login.defs"), login_defs, 0644);
  /* A file with a NUL byte is not edited. */
  {
    static const char nul[] = "PASS_MAX_DAYS 1\n\0x\n";
    assert_int_equal(mdm_file_write_atomic(at(f, "/etc/login.defs"), nul,
                                           sizeof(nul) - 1, 0644), MDM_OK);
  }
  expect(run(f, mdm_enforce_password, "{\"max_age_days\": 9}"),
         MDM_ENFORCE_FAILED, "cannot read '/etc/login.defs': not a text file");
}

/* ---- encryption ------------------------------------------------------------ */

static void test_encryption(void **state)
{
  struct fx *f = *state;
  static const char not_enc[] = "root filesystem is not encrypted; "
    "encryption cannot be enabled remotely on Linux";

  expect(run(f, mdm_enforce_encryption, "\"required\""),
         MDM_ENFORCE_APPLIED, "");
  expect(run(f, mdm_enforce_encryption, "{\"required\": true}"),
         MDM_ENFORCE_APPLIED, "");
  json_object_set_new(json_object_get(f->facts, "encryption"),
                      "root_encrypted", json_false());
  expect(run(f, mdm_enforce_encryption, "\"required\""), MDM_ENFORCE_FAILED,
         not_enc);
  expect(run(f, mdm_enforce_encryption, "{\"required\": true}"),
         MDM_ENFORCE_FAILED, not_enc);
  expect(run(f, mdm_enforce_encryption, "{\"required\": false}"),
         MDM_ENFORCE_APPLIED, "");
  /* A fact the agent could not read is no pass. */
  json_object_set_new(json_object_get(f->facts, "encryption"),
                      "root_encrypted", json_null());
  expect(run(f, mdm_enforce_encryption, "\"required\""), MDM_ENFORCE_FAILED,
         "cannot tell whether the root filesystem is encrypted; encryption "
         "cannot be enabled remotely on Linux");
  f->ctx.facts = NULL;
  expect(run(f, mdm_enforce_encryption, "\"required\""), MDM_ENFORCE_FAILED,
         "cannot tell whether the root filesystem is encrypted; encryption "
         "cannot be enabled remotely on Linux");
  /* Bad values. */
  expect(run(f, mdm_enforce_encryption, "\"optional\""), MDM_ENFORCE_FAILED,
         "encryption: expected 'required' or {required: true|false}");
  expect(run(f, mdm_enforce_encryption, "{\"required\": \"yes\"}"),
         MDM_ENFORCE_FAILED,
         "encryption: expected 'required' or {required: true|false}");
  expect(run(f, mdm_enforce_encryption, "{\"required\": true, \"method\": "
             "\"luks2\"}"), MDM_ENFORCE_FAILED,
         "encryption.method: not supported by mdm-agent");
  assert_absent(at(f, "/etc"));
}

/* ---- os_update ------------------------------------------------------------- */

static void test_os_update(void **state)
{
  struct fx *f = *state;
  struct mdm_enforce_result res;
  char path[256];

  snprintf(path, sizeof(path), "%s/os_update.json", f->state);
  res = run(f, mdm_enforce_os_update, "{\"window\": \"22:00-04:00\", "
            "\"deadline\": \"7d\"}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_true(res.is_changed);
  assert_file(path, "{\"deadline\":\"7d\",\"window\":\"22:00-04:00\"}", 0600);
  res = run(f, mdm_enforce_os_update, "{\"deadline\": \"7d\", "
            "\"window\": \"22:00-04:00\"}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_false(res.is_changed);
  res = run(f, mdm_enforce_os_update, "{\"deadline\": "
            "\"2026-12-31T22:00:00Z\"}");
  expect(res, MDM_ENFORCE_APPLIED, "");
  assert_file(path, "{\"deadline\":\"2026-12-31T22:00:00Z\"}", 0600);

  expect(run(f, mdm_enforce_os_update, "{\"window\": \"22:00-22:00\"}"),
         MDM_ENFORCE_FAILED, "os_update.window: expected HH:MM-HH:MM");
  expect(run(f, mdm_enforce_os_update, "{\"window\": \"24:00-01:00\"}"),
         MDM_ENFORCE_FAILED, "os_update.window: expected HH:MM-HH:MM");
  expect(run(f, mdm_enforce_os_update, "{\"deadline\": \"soon\"}"),
         MDM_ENFORCE_FAILED, "os_update.deadline: expected an RFC 3339 UTC "
         "time or a duration such as 7d");
  expect(run(f, mdm_enforce_os_update, "{\"reboot\": true}"),
         MDM_ENFORCE_FAILED, "os_update.reboot: not supported by mdm-agent");
  expect(run(f, mdm_enforce_os_update, "\"22:00-04:00\""),
         MDM_ENFORCE_FAILED, "os_update: expected a mapping");
  /* The refused ones left the kept setting alone. */
  assert_file(path, "{\"deadline\":\"2026-12-31T22:00:00Z\"}", 0600);
  assert_int_equal(mdm_enforce_os_update_remove(&f->ctx), 1);
  assert_absent(path);
}

/* ---- the table ------------------------------------------------------------- */

static void test_linux_table(void **state)
{
  static const char *const want[] = {"encryption", "os_update", "password",
                                     "vpn"};
  size_t i;
  (void)state;
  for(i = 0; mdm_enforcers_linux[i].setting; i++) {
    assert_true(i < 4);
    assert_string_equal(mdm_enforcers_linux[i].setting, want[i]);
    assert_non_null(mdm_enforcers_linux[i].apply);
  }
  assert_int_equal(i, 4);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vpn_brief_example),
    cmocka_unit_test(test_vpn_defaults_and_everything),
    cmocka_unit_test_setup_teardown(test_vpn_apply_idempotent, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_vpn_bad_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vpn_cannot_write, setup, teardown),
    cmocka_unit_test(test_kv_set),
    cmocka_unit_test_setup_teardown(test_password_apply, setup, teardown),
    cmocka_unit_test_setup_teardown(test_password_missing_files, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_password_bad_values, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_encryption, setup, teardown),
    cmocka_unit_test_setup_teardown(test_os_update, setup, teardown),
    cmocka_unit_test(test_linux_table),
  };
  mdm_log_setup("test_enforce", 0, MDM_LOG_ERROR);
  umask(022);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
