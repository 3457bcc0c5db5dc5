/*
 * test_facts.c: unit tests of the Linux facts backend
 * (src/agent/facts_linux.c).
 * The three fake devices under $MDM_FIXTURES/devices are collected and
 * compared field by field with the exact facts they must give; devices built
 * in a temporary directory check each decision (encryption stacks, Secure
 * Boot, firewall, screen lock, VPN), and that missing, garbled and oversized
 * files give null rather than a guess or a crash; the parsers of facts_int.h
 * are tested on tables of cases.  The real machine's facts are collected
 * last, to check only that it works and has the contract's shape.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/facts.h"
#include "agent/facts_int.h"
#include "core/util.h"

#define GUID "8be4df61-93ca-11d0-9d03-00e098032b8c"
#define SECURE_BOOT "sys/firmware/efi/efivars/SecureBoot-" GUID

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* One file of a fake device: data may hold NUL bytes; a path ending in '/'
 * makes an empty directory. */
struct file {
  const char *path;
  const char *data;
  size_t len;
};
#define F(p, d) { (p), (d), sizeof(d) - 1 }
#define DIR_(p) { (p), NULL, 0 }
#define END { NULL, NULL, 0 }

static void write_file(const char *root, const char *rel, const char *data,
                       size_t len)
{
  char path[PATH_MAX], dir[PATH_MAX];
  char *slash;
  FILE *f;

  assert_true(snprintf(path, sizeof(path), "%s/%s", root, rel) <
              (int)sizeof(path));
  assert_int_equal(mdm_strlcpy(dir, path, sizeof(dir)), MDM_OK);
  slash = strrchr(dir, '/');
  *slash = '\0';
  assert_int_equal(mdm_mkdirs(dir, 0755), MDM_OK);
  if(!data) /* a directory */
    return;
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static void write_str(const char *root, const char *rel, const char *text)
{
  write_file(root, rel, text, strlen(text));
}

static void write_files(const char *root, const struct file *files)
{
  for(; files->path; files++)
    write_file(root, files->path, files->data, files->len);
}

/* A file of n bytes: `head`, then filler lines of `fill`. */
static void write_big(const char *root, const char *rel, const char *head,
                      char fill, size_t n)
{
  char *p = malloc(n);
  size_t i, hl = strlen(head);
  assert_non_null(p);
  assert_true(hl <= n);
  memcpy(p, head, hl);
  for(i = hl; i < n; i++)
    p[i] = (i % 64 == 63) ? '\n' : fill;
  write_file(root, rel, p, n);
  free(p);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Each test that builds a device gets a fresh empty directory as *state. */
static int setup_root(void **state)
{
  char tmpl[] = "/tmp/mdm-test-facts-XXXXXX";
  char *d = mkdtemp(tmpl);
  if(!d)
    return -1;
  *state = strdup(d);
  return *state ? 0 : -1;
}

static int teardown_root(void **state)
{
  int rc = nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(*state);
  return rc;
}

static json_t *collect(const char *root)
{
  json_t *o = NULL;
  assert_int_equal(mdm_facts_collect(root, &o), MDM_OK);
  assert_non_null(o);
  assert_true(json_is_object(o));
  return o;
}

/* The value at "section.key" (or "key"); fails if absent. */
static json_t *at(json_t *o, const char *dotted)
{
  char buf[128];
  char *dot;
  json_t *v;
  assert_int_equal(mdm_strlcpy(buf, dotted, sizeof(buf)), MDM_OK);
  dot = strchr(buf, '.');
  if(dot) {
    *dot = '\0';
    o = json_object_get(o, buf);
    assert_true(json_is_object(o));
    v = json_object_get(o, dot + 1);
  }
  else {
    v = json_object_get(o, buf);
  }
  if(!v)
    fail_msg("no field '%s'", dotted);
  return v;
}

static void expect_null(json_t *o, const char *k)
{
  if(!json_is_null(at(o, k)))
    fail_msg("%s: expected null", k);
}

static void expect_bool(json_t *o, const char *k, int b)
{
  json_t *v = at(o, k);
  if(!json_is_boolean(v) || json_is_true(v) != b)
    fail_msg("%s: expected %s", k, b ? "true" : "false");
}

static void expect_str(json_t *o, const char *k, const char *s)
{
  json_t *v = at(o, k);
  if(!json_is_string(v))
    fail_msg("%s: expected \"%s\", got a non-string", k, s);
  assert_string_equal(json_string_value(v), s);
}

/* The facts of root are exactly `expected` (a JSON text): every field of
 * every section, and no other field. */
static void expect_facts(const char *root, const char *expected)
{
  json_error_t err;
  json_t *want = json_loads(expected, 0, &err);
  json_t *got = collect(root);
  if(!want)
    fail_msg("bad expected JSON: %s", err.text);
  if(!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS);
    char *w = json_dumps(want, JSON_SORT_KEYS);
    print_error("got:  %s\nwant: %s\n", g, w);
    free(g);
    free(w);
    fail_msg("facts of '%s' differ", root);
  }
  json_decref(want);
  json_decref(got);
}

static void fixture(char *out, const char *name)
{
  const char *base = getenv("MDM_FIXTURES");
  if(!base)
    fail_msg("MDM_FIXTURES is not set (ctest sets it)");
  assert_true(snprintf(out, PATH_MAX, "%s/devices/%s", base, name) < PATH_MAX);
}

/* ---------------------------------------------------------------------- */
/* The three fixture devices                                               */
/* ---------------------------------------------------------------------- */

#define AGENT "\"agent\": {\"version\": \"" MDM_VERSION "\"}"

static void test_fixture_debian12_luks(void **state)
{
  char root[PATH_MAX];
  (void)state;
  fixture(root, "debian12-luks");
  expect_facts(root,
    "{\"serial\": \"PF3KX2QZ\", \"platform\": \"linux\","
    " \"hostname\": \"deb-ws-0042\", \"model\": \"21CB0066GE\","
    " \"manufacturer\": \"LENOVO\","
    " \"os\": {\"name\": \"Debian GNU/Linux\", \"version\": \"12\","
    "  \"build\": \"12 (bookworm)\", \"kernel\": \"6.1.0-26-amd64\","
    "  \"id\": \"debian\"},"
    " \"encryption\": {\"root_encrypted\": true, \"method\": \"luks2\"},"
    " \"integrity\": {\"rooted\": false, \"secure_boot\": true,"
    "  \"kernel_tainted\": false, \"lockdown\": \"integrity\"},"
    " \"security\": {\"firewall_enabled\": true,"
    "  \"screen_lock_enabled\": true, \"password_age_days\": null},"
    " \"network\": {\"ssid\": null, \"vpn_connected\": true}, " AGENT "}");
}

static void test_fixture_ubuntu2204_plain(void **state)
{
  char root[PATH_MAX];
  (void)state;
  fixture(root, "ubuntu2204-plain");
  expect_facts(root,
    "{\"serial\": \"7XK2L33\", \"platform\": \"linux\","
    " \"hostname\": \"ubuntu-dev-17\", \"model\": \"XPS 13 9310\","
    " \"manufacturer\": \"Dell Inc.\","
    " \"os\": {\"name\": \"Ubuntu\", \"version\": \"22.04\","
    "  \"build\": \"22.04.4 LTS (Jammy Jellyfish)\","
    "  \"kernel\": \"5.15.0-105-generic\", \"id\": \"ubuntu\"},"
    " \"encryption\": {\"root_encrypted\": false, \"method\": null},"
    " \"integrity\": {\"rooted\": false, \"secure_boot\": false,"
    "  \"kernel_tainted\": true, \"lockdown\": \"none\"},"
    " \"security\": {\"firewall_enabled\": false,"
    "  \"screen_lock_enabled\": false, \"password_age_days\": null},"
    " \"network\": {\"ssid\": null, \"vpn_connected\": false}, " AGENT "}");
}

static void test_fixture_alpine_old(void **state)
{
  char root[PATH_MAX];
  (void)state;
  fixture(root, "alpine-old");
  expect_facts(root,
    "{\"serial\": null, \"platform\": \"linux\","
    " \"hostname\": \"alpine-kiosk-3\","
    " \"model\": \"Standard PC (i440FX + PIIX, 1996)\","
    " \"manufacturer\": \"QEMU\","
    " \"os\": {\"name\": \"Alpine Linux\", \"version\": \"3.9.6\","
    "  \"build\": null, \"kernel\": \"4.14.89-0-vanilla\", \"id\": \"alpine\"},"
    " \"encryption\": {\"root_encrypted\": false, \"method\": null},"
    " \"integrity\": {\"rooted\": true, \"secure_boot\": false,"
    "  \"kernel_tainted\": false, \"lockdown\": null},"
    " \"security\": {\"firewall_enabled\": null,"
    "  \"screen_lock_enabled\": null, \"password_age_days\": null},"
    " \"network\": {\"ssid\": null, \"vpn_connected\": false}, " AGENT "}");
}

/* The key order of CONTRACT §4 is kept (jansson keeps insertion order). */
static void test_fixture_key_order(void **state)
{
  char root[PATH_MAX];
  json_t *o;
  char *s;
  (void)state;
  fixture(root, "debian12-luks");
  o = collect(root);
  s = json_dumps(o, JSON_COMPACT);
  assert_non_null(s);
  assert_non_null(strstr(s, "{\"serial\":\"PF3KX2QZ\",\"platform\":\"linux\","
                            "\"hostname\":"));
  assert_non_null(strstr(s, "\"os\":{\"name\":"));
  free(s);
  json_decref(o);
}

static void test_root_with_trailing_slash(void **state)
{
  char root[PATH_MAX], slashed[PATH_MAX + 2];
  json_t *a, *b;
  (void)state;
  fixture(root, "ubuntu2204-plain");
  snprintf(slashed, sizeof(slashed), "%s//", root);
  a = collect(root);
  b = collect(slashed);
  assert_true(json_equal(a, b));
  json_decref(a);
  json_decref(b);
}

/* ---------------------------------------------------------------------- */
/* Missing, garbled and oversized input                                    */
/* ---------------------------------------------------------------------- */

static void test_root_missing(void **state)
{
  char path[PATH_MAX];
  json_t *o = json_object();
  json_t *keep = o;
  snprintf(path, sizeof(path), "%s/nonexistent", (char *)*state);
  assert_int_equal(mdm_facts_collect(path, &o), MDM_ERR_NOTFOUND);
  assert_null(o);
  json_decref(keep);
  /* a regular file is no device root either */
  write_str(*state, "file", "x");
  snprintf(path, sizeof(path), "%s/file", (char *)*state);
  assert_int_equal(mdm_facts_collect(path, &o), MDM_ERR_NOTFOUND);
  assert_null(o);
}

/* Nothing readable: every fact null but those the agent knows itself. */
static void test_root_empty(void **state)
{
  expect_facts(*state,
    "{\"serial\": null, \"platform\": \"linux\", \"hostname\": null,"
    " \"model\": null, \"manufacturer\": null,"
    " \"os\": {\"name\": null, \"version\": null, \"build\": null,"
    "  \"kernel\": null, \"id\": null},"
    " \"encryption\": {\"root_encrypted\": null, \"method\": null},"
    " \"integrity\": {\"rooted\": null, \"secure_boot\": null,"
    "  \"kernel_tainted\": null, \"lockdown\": null},"
    " \"security\": {\"firewall_enabled\": null,"
    "  \"screen_lock_enabled\": null, \"password_age_days\": null},"
    " \"network\": {\"ssid\": null, \"vpn_connected\": null}, " AGENT "}");
}

static void test_garbage_files(void **state)
{
  static const struct file files[] = {
    F("proc/sys/kernel/hostname", "\xff\xfe not utf-8\n"),
    F("etc/os-release", "NAME=\"Debian\0GNU\"\nVERSION_ID=12\n"),
    /* not read: etc/os-release exists */
    F("usr/lib/os-release", "NAME=Fallback\nVERSION_ID=1\n"),
    F("proc/sys/kernel/osrelease", "6.1\x01\x02\n"),
    F("proc/self/mountinfo",
      "garbage\n\n1 2 x:y / / rw - ext4 /dev/sda1 rw\n"
      "1 2 8:1 / / rw shared:1 ext4 /dev/sda1 rw\n" /* no separator */
      "1 2 8:1 / /\n"),
    F("sys/block/sda/sda1/dev", "8:1\n"),
    F("sys/class/dmi/id/product_serial", "To Be Filled By O.E.M.\n"),
    F("sys/class/dmi/id/product_name", "  default STRING \n"),
    F("sys/class/dmi/id/sys_vendor", "\n\n  \n"),
    F(SECURE_BOOT, "\x06\x00\x00\x00"),
    F("proc/sys/kernel/tainted", "abc\n"),
    F("sys/kernel/security/lockdown", "none integrity\n"),
    F("etc/passwd", "lalala\n+::0:0:::\n-x::0:0:::\n#y:x:0:0::\nz:x::0::\n"
                    "root:x:0:0:root:/root:/bin/sh\n:\n::\n:::\n"),
    F("etc/ufw/ufw.conf", "ENABLED=maybe\n"),
    F("etc/dconf/db/local.d/00-x",
      "[org/gnome/desktop/screensaver\nlock-enabled=true\n"
      "[org/gnome/desktop/screensaver]\nlock-enabled=perhaps\n"),
    F("sys/class/net/wg0/operstate", "\xff\n"),
    F("sys/class/net/tun0/operstate", "upper\n"),
    END
  };
  write_files(*state, files);
  expect_facts(*state,
    "{\"serial\": null, \"platform\": \"linux\", \"hostname\": null,"
    " \"model\": null, \"manufacturer\": null,"
    " \"os\": {\"name\": null, \"version\": null, \"build\": null,"
    "  \"kernel\": null, \"id\": null},"
    " \"encryption\": {\"root_encrypted\": null, \"method\": null},"
    " \"integrity\": {\"rooted\": false, \"secure_boot\": null,"
    "  \"kernel_tainted\": null, \"lockdown\": null},"
    " \"security\": {\"firewall_enabled\": null,"
    "  \"screen_lock_enabled\": null, \"password_age_days\": null},"
    " \"network\": {\"ssid\": null, \"vpn_connected\": false}, " AGENT "}");
}

/* Values that are present but no fact: over-long, control characters. */
static void test_garbage_values(void **state)
{
  char *longname = malloc(2001);
  json_t *o;
  assert_non_null(longname);
  memset(longname, 'a', 2000);
  longname[2000] = '\0';
  write_file(*state, "proc/sys/kernel/hostname", longname, 2000);
  write_str(*state, "etc/os-release", "NAME=\"a\\tb\"\nID='x\ty'\n"
            "VERSION_ID=\"\"\nBUILD_ID=\nVERSION=\"1\"\n");
  o = collect(*state);
  expect_null(o, "hostname");      /* 2000 characters: over the bound */
  expect_str(o, "os.name", "a\\tb"); /* a backslash is a character */
  expect_null(o, "os.id");         /* a tab is not */
  expect_null(o, "os.version");    /* empty */
  expect_str(o, "os.build", "1");  /* empty BUILD_ID: VERSION */
  json_decref(o);
  free(longname);
}

static void test_oversized_files(void **state)
{
  const char *root = *state;
  json_t *o;
  /* 64 KiB is accepted, one byte more is refused */
  write_big(root, "etc/os-release", "NAME=Big\nID=big\n#", '#',
            MDM_FACTS_MAX_SMALL);
  o = collect(root);
  expect_str(o, "os.name", "Big");
  json_decref(o);
  write_big(root, "etc/os-release", "NAME=Big\nID=big\n#", '#',
            MDM_FACTS_MAX_SMALL + 1);
  /* an oversized kernel hostname falls back to /etc/hostname */
  write_big(root, "proc/sys/kernel/hostname", "h", 'h',
            MDM_FACTS_MAX_SMALL + 1);
  write_str(root, "etc/hostname", "# comment\n\n  fallback-host  \n");
  write_big(root, "proc/self/mountinfo",
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n#", '#',
            MDM_FACTS_MAX_LARGE + 1);
  write_str(root, "sys/block/sda/sda1/dev", "8:1\n");
  write_big(root, "etc/passwd", "toor:x:0:0::/:/bin/sh\n#", '#',
            MDM_FACTS_MAX_LARGE + 1);
  write_big(root, SECURE_BOOT, "\x06", '\x01', 65);
  write_big(root, "sys/class/dmi/id/product_serial", "S", 'S',
            MDM_FACTS_MAX_SMALL + 1);
  o = collect(root);
  expect_null(o, "os.name");
  expect_null(o, "os.id");
  expect_str(o, "hostname", "fallback-host");
  expect_null(o, "encryption.root_encrypted");
  expect_null(o, "integrity.rooted");
  expect_null(o, "integrity.secure_boot");
  expect_null(o, "serial");
  json_decref(o);
}

/* A FIFO or a directory where a file should be is not read (a FIFO would
 * block the agent forever). */
static void test_special_files(void **state)
{
  char path[PATH_MAX];
  json_t *o;
  write_str(*state, "etc/os-release", "NAME=x\n");
  snprintf(path, sizeof(path), "%s/proc/sys/kernel", (char *)*state);
  assert_int_equal(mdm_mkdirs(path, 0755), MDM_OK);
  snprintf(path, sizeof(path), "%s/proc/sys/kernel/hostname", (char *)*state);
  assert_int_equal(mkfifo(path, 0600), 0);
  snprintf(path, sizeof(path), "%s/proc/sys/kernel/osrelease", (char *)*state);
  assert_int_equal(mkdir(path, 0755), 0);
  write_str(*state, "etc/hostname", "after-fifo\n");
  o = collect(*state);
  expect_str(o, "hostname", "after-fifo");
  expect_null(o, "os.kernel");
  expect_str(o, "os.name", "x");
  json_decref(o);
}

/* ---------------------------------------------------------------------- */
/* Parsers                                                                 */
/* ---------------------------------------------------------------------- */

static void expect_env(const char *text, const char *key, const char *want)
{
  char *v = mdm_facts_env_get(text, key);
  if(!want) {
    if(v)
      fail_msg("%s in <%s>: expected absent, got '%s'", key, text, v);
    return;
  }
  if(!v)
    fail_msg("%s in <%s>: expected '%s', got absent", key, text, want);
  assert_string_equal(v, want);
  free(v);
}

static void test_env_parser(void **state)
{
  (void)state;
  /* quoting */
  expect_env("NAME=\"Debian GNU/Linux\"\n", "NAME", "Debian GNU/Linux");
  expect_env("NAME='Debian GNU/Linux'\n", "NAME", "Debian GNU/Linux");
  expect_env("NAME=plain\n", "NAME", "plain");
  expect_env("NAME=\"\"\n", "NAME", "");
  expect_env("NAME=\n", "NAME", "");
  expect_env("NAME=a\"b c\"'d e'f\n", "NAME", "ab cd ef");
  expect_env("NAME=\"it's\"\n", "NAME", "it's");
  expect_env("NAME='say \"hi\"'\n", "NAME", "say \"hi\"");
  /* escapes: in double quotes only \" \\ \` \$ escape; elsewhere \ stays */
  expect_env("NAME=\"a \\\"b\\\" \\\\ \\$x \\`y\\`\"\n", "NAME",
             "a \"b\" \\ $x `y`");
  expect_env("NAME=\"c:\\d\"\n", "NAME", "c:\\d");
  expect_env("NAME='no \\escape'\n", "NAME", "no \\escape");
  expect_env("NAME=a\\ b\\\"c\n", "NAME", "a b\"c");
  expect_env("NAME=\"one \\\ntwo\"\n", "NAME", "one two");
  expect_env("NAME=one\\\ntwo\n", "NAME", "onetwo");
  expect_env("NAME=end\\", "NAME", "end");
  /* comments, blanks, CRLF, export, last assignment wins */
  expect_env("# NAME=commented\nNAME=real\n", "NAME", "real");
  expect_env("  # NAME=x\n\n\tNAME = spaced  \n", "NAME", "spaced");
  expect_env("NAME=value # a comment\n", "NAME", "value");
  expect_env("NAME=val#ue\n", "NAME", "val#ue");
  expect_env("NAME=\"quoted # not a comment\"\n", "NAME",
             "quoted # not a comment");
  expect_env("NAME= #x\n", "NAME", "");
  expect_env("NAME=\"dos\"\r\nID=x\r\n", "NAME", "dos");
  expect_env("NAME=\"dos\"\r\nID=x\r\n", "ID", "x");
  expect_env("export NAME=exported\n", "NAME", "exported");
  expect_env("NAME=first\nNAME=second\n", "NAME", "second");
  expect_env("NAME=inner words  kept\n", "NAME", "inner words  kept");
  /* the key must match exactly, and be a key */
  expect_env("NAMES=x\nXNAME=y\nNAME_X=z\n", "NAME", NULL);
  expect_env("VERSION_ID=12\nVERSION=\"12 (bookworm)\"\n", "VERSION",
             "12 (bookworm)");
  expect_env("1NAME=x\n-NAME=x\nNAME-X=y\n NAME x\n", "NAME", NULL);
  expect_env("", "NAME", NULL);
  expect_env("NAME", "NAME", NULL);
  expect_env("=NAME\n", "NAME", NULL);
  /* an unclosed quote voids the assignment and the rest of the text */
  expect_env("NAME=ok\nNAME=\"unclosed\nID=x\n", "NAME", "ok");
  expect_env("NAME=\"unclosed\nID=x\n", "ID", NULL);
  expect_env("NAME='unclosed", "NAME", NULL);
  /* multi-line quoted values are one value */
  expect_env("NAME=\"a\nb\"\nID=x\n", "NAME", "a\nb");
  expect_env("NAME=\"a\nID=b\"\n", "ID", NULL);
}

static void expect_mount(const char *text, unsigned major, unsigned minor,
                         const char *fstype, const char *source)
{
  struct mdm_facts_mount m;
  assert_int_equal(mdm_facts_mountinfo_root(text, &m), MDM_OK);
  assert_int_equal(m.major, major);
  assert_int_equal(m.minor, minor);
  assert_string_equal(m.fstype, fstype);
  assert_string_equal(m.source, source);
}

static void test_mountinfo_parser(void **state)
{
  struct mdm_facts_mount m;
  (void)state;
  expect_mount("28 1 254:1 / / rw,relatime shared:1 - ext4 "
               "/dev/mapper/vg-root rw,errors=remount-ro\n",
               254, 1, "ext4", "/dev/mapper/vg-root");
  /* no optional fields; several; no trailing newline */
  expect_mount("20 1 8:1 / / rw - ext4 /dev/sda1 rw", 8, 1, "ext4",
               "/dev/sda1");
  expect_mount("20 1 8:1 / / rw shared:1 master:2 propagate_from:3 - xfs "
               "/dev/sda1 rw\n", 8, 1, "xfs", "/dev/sda1");
  /* the last line mounting / wins; other mount points are not / */
  expect_mount("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
               "2 1 0:40 / /home rw - tmpfs tmpfs rw\n"
               "3 1 0:41 / / rw - overlay overlay rw,lowerdir=/a:/b\n"
               "4 3 8:2 / /mnt rw - ext4 /dev/sda2 rw\n",
               0, 41, "overlay", "overlay");
  expect_mount("1 0 8:1 /sub / rw - btrfs /dev/sda1 rw\n", 8, 1, "btrfs",
               "/dev/sda1");
  /* tabs as separators still parse */
  expect_mount("1\t0\t8:3\t/\t/\trw\t-\text4\t/dev/sda3\trw\n", 8, 3, "ext4",
               "/dev/sda3");
  /* over-long fields are kept empty, never truncated */
  expect_mount("1 0 8:1 / / rw - ext4 /dev/"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaa rw\n", 8, 1, "ext4", "");
  /* malformed lines are skipped */
  assert_int_equal(mdm_facts_mountinfo_root("", &m), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_facts_mountinfo_root("\n\n", &m), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_facts_mountinfo_root(
    "1 0 8:1 / /home rw - ext4 /dev/sda1 rw\n"    /* not / */
    "1 0 8:1 / // rw - ext4 /dev/sda1 rw\n"       /* not / either */
    "1 0 8:1 / / rw ext4 /dev/sda1 rw\n"          /* no separator */
    "1 0 8:1 / / rw -\n"                          /* no fstype */
    "1 0 8:1 / / rw - ext4\n"                     /* no source */
    "1 0 81 / / rw - ext4 /dev/sda1 rw\n"         /* no colon */
    "1 0 :1 / / rw - ext4 /dev/sda1 rw\n"
    "1 0 8: / / rw - ext4 /dev/sda1 rw\n"
    "1 0 -8:1 / / rw - ext4 /dev/sda1 rw\n"
    "1 0 8:1x / / rw - ext4 /dev/sda1 rw\n"
    "1 0 9999999999:1 / / rw - ext4 /dev/sda1 rw\n" /* too many digits */
    "1 0 8:1 /\n", &m), MDM_ERR_NOTFOUND);
}

static void test_passwd_parser(void **state)
{
  (void)state;
  assert_int_equal(mdm_facts_passwd_rooted(""), MDM_TRI_FALSE);
  assert_int_equal(mdm_facts_passwd_rooted(
    "root:x:0:0:root:/root:/bin/bash\n"
    "operator:x:11:0:operator:/root:/bin/sh\n" /* gid 0 is not uid 0 */
    "u:x:100:100::/home/u:/bin/sh"), MDM_TRI_FALSE);
  assert_int_equal(mdm_facts_passwd_rooted(
    "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"),
    MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_passwd_rooted("admin:x:000:0::/:/bin/sh\n"),
                   MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_passwd_rooted("rootkit:x:0:0::/:/bin/sh"),
                   MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_passwd_rooted("roo:x:0:0::/:/bin/sh"),
                   MDM_TRI_TRUE);
  /* not accounts: comments, NIS entries, short or empty-uid lines */
  assert_int_equal(mdm_facts_passwd_rooted(
    "#toor:x:0:0::/:/bin/sh\n+toor::0:0:::\n-toor::0:0:::\n"
    "toor:x:0\ntoor:x::0::/:/bin/sh\ntoor:x:01:0::/:/bin/sh\n"
    "toor:x: 0:0::/:/bin/sh\n"), MDM_TRI_FALSE);
}

static void expect_lockdown(const char *text, const char *want)
{
  char *v = mdm_facts_lockdown_mode(text);
  if(!want) {
    assert_null(v);
    return;
  }
  assert_non_null(v);
  assert_string_equal(v, want);
  free(v);
}

static void test_lockdown_parser(void **state)
{
  (void)state;
  expect_lockdown("none [integrity] confidentiality\n", "integrity");
  expect_lockdown("[none] integrity confidentiality\n", "none");
  expect_lockdown("none integrity [confidentiality]\n", "confidentiality");
  expect_lockdown("none integrity confidentiality\n", NULL);
  expect_lockdown("[] x\n", NULL);
  expect_lockdown("[unclosed\n", NULL);
  expect_lockdown("[Bad Word]\n", NULL);
  expect_lockdown("", NULL);
}

static void test_dconf_parser(void **state)
{
  (void)state;
  assert_int_equal(mdm_facts_dconf_lock_enabled(""), MDM_TRI_NULL);
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"), MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "# c\n[ org/gnome/desktop/screensaver ]\r\n  lock-enabled = false \r\n"),
    MDM_TRI_FALSE);
  /* the key in another section, or before any section, does not count */
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "lock-enabled=true\n[org/gnome/desktop/lockdown]\nlock-enabled=true\n"
    "[org/gnome/desktop/screensaver/x]\nlock-enabled=true\n"), MDM_TRI_NULL);
  /* the section ends at the next one; the last setting wins */
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"
    "[org/gnome/desktop/session]\nlock-enabled=false\n"), MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"
    "lock-enabled=false\n"), MDM_TRI_FALSE);
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "[org/gnome/desktop/screensaver]\nlock-enabled=TRUE\n"), MDM_TRI_NULL);
  assert_int_equal(mdm_facts_dconf_lock_enabled(
    "[org/gnome/desktop/screensaver]\nlock-enabled-x=true\n"
    "idle-activation-enabled=true\n"), MDM_TRI_NULL);
}

static void test_efivar_bool(void **state)
{
  (void)state;
  assert_int_equal(mdm_facts_efivar_bool(
    (const unsigned char *)"\x06\0\0\0\x01", 5), MDM_TRI_TRUE);
  assert_int_equal(mdm_facts_efivar_bool(
    (const unsigned char *)"\x07\0\0\0\0", 5), MDM_TRI_FALSE);
  assert_int_equal(mdm_facts_efivar_bool(
    (const unsigned char *)"\x06\0\0\0\x02", 5), MDM_TRI_NULL);
  assert_int_equal(mdm_facts_efivar_bool(
    (const unsigned char *)"\x06\0\0\0", 4), MDM_TRI_NULL);
  assert_int_equal(mdm_facts_efivar_bool(
    (const unsigned char *)"\x06\0\0\0\x01\x01", 6), MDM_TRI_NULL);
  assert_int_equal(mdm_facts_efivar_bool((const unsigned char *)"", 0),
                   MDM_TRI_NULL);
}

/* ---------------------------------------------------------------------- */
/* Decisions, one device per case                                          */
/* ---------------------------------------------------------------------- */

/* Build `files` in a fresh subdirectory of the test's root and collect. */
static json_t *device(void **state, const char *name, const struct file *files)
{
  char root[PATH_MAX];
  snprintf(root, sizeof(root), "%s/%s", (char *)*state, name);
  assert_int_equal(mdm_mkdirs(root, 0755), MDM_OK);
  write_files(root, files);
  return collect(root);
}

static void expect_encryption(void **state, const char *name,
                              const struct file *files, int enc,
                              const char *method)
{
  json_t *o = device(state, name, files);
  print_message("encryption case: %s\n", name);
  if(enc < 0)
    expect_null(o, "encryption.root_encrypted");
  else
    expect_bool(o, "encryption.root_encrypted", enc);
  if(method)
    expect_str(o, "encryption.method", method);
  else
    expect_null(o, "encryption.method");
  json_decref(o);
}

#define MOUNT_DM0 F("proc/self/mountinfo", \
                    "1 0 253:0 / / rw - ext4 /dev/mapper/root rw\n")

static void test_encryption_cases(void **state)
{
  static const struct file overlay[] = {
    F("proc/self/mountinfo",
      "100 90 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l,"
      "upperdir=/u,workdir=/w\n"),
    F("sys/block/sda/dev", "8:0\n"),
    END
  };
  static const struct file tmpfs[] = {
    F("proc/self/mountinfo", "1 0 0:20 / / rw - tmpfs tmpfs rw\n"),
    END
  };
  static const struct file zfs[] = {
    F("proc/self/mountinfo",
      "1 0 0:25 / / rw - zfs rpool/ROOT/ubuntu_abc rw\n"),
    END
  };
  static const struct file btrfs_luks[] = {
    F("proc/self/mountinfo",
      "1 0 0:35 /root / rw - btrfs /dev/mapper/luks-7f3a rw,subvol=/root\n"),
    F("sys/block/nvme0n1/dev", "259:0\n"),
    F("sys/block/nvme0n1/nvme0n1p3/dev", "259:3\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/name", "luks-7f3a\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-LUKS2-7f3a00112233-luks-7f3a\n"),
    F("sys/block/dm-0/slaves/nvme0n1p3", ""),
    END
  };
  static const struct file btrfs_plain[] = {
    F("proc/self/mountinfo", "1 0 0:35 / / rw - btrfs /dev/sda2 rw\n"),
    F("sys/block/sda/dev", "8:0\n"),
    F("sys/block/sda/sda2/dev", "8:2\n"),
    END
  };
  static const struct file luks1[] = {
    MOUNT_DM0,
    F("sys/block/sda/sda2/dev", "8:2\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-LUKS1-0123abcd-root\n"),
    F("sys/block/dm-0/slaves/sda2", ""),
    END
  };
  static const struct file plain_crypt[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-PLAIN-root\n"),
    DIR_("sys/block/dm-0/slaves/"),
    END
  };
  static const struct file bitlocker[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-BITLK-abcd-root\n"),
    END
  };
  /* LVM spanning an encrypted and a plain PV: not all of root is */
  static const struct file lvm_mixed[] = {
    MOUNT_DM0,
    F("sys/block/sda/sda2/dev", "8:2\n"),
    F("sys/block/sdb/sdb1/dev", "8:17\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "LVM-abc\n"),
    F("sys/block/dm-0/slaves/dm-1", ""),
    F("sys/block/dm-0/slaves/sdb1", ""),
    F("sys/block/dm-1/dev", "253:1\n"),
    F("sys/block/dm-1/dm/uuid", "CRYPT-LUKS2-def-sda2_crypt\n"),
    F("sys/block/dm-1/slaves/sda2", ""),
    END
  };
  /* LVM over two LUKS PVs, on md RAID1 over LUKS: all encrypted */
  static const struct file lvm_two_luks[] = {
    MOUNT_DM0,
    F("sys/block/sda/sda2/dev", "8:2\n"),
    F("sys/block/sdb/sdb2/dev", "8:18\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "LVM-abc\n"),
    F("sys/block/dm-0/slaves/md0", ""),
    F("sys/block/md0/dev", "9:0\n"),
    F("sys/block/md0/slaves/dm-1", ""),
    F("sys/block/md0/slaves/dm-2", ""),
    F("sys/block/dm-1/dev", "253:1\n"),
    F("sys/block/dm-1/dm/uuid", "CRYPT-LUKS1-a-sda2_crypt\n"),
    F("sys/block/dm-1/slaves/sda2", ""),
    F("sys/block/dm-2/dev", "253:2\n"),
    F("sys/block/dm-2/dm/uuid", "CRYPT-LUKS1-b-sdb2_crypt\n"),
    F("sys/block/dm-2/slaves/sdb2", ""),
    END
  };
  /* dm-verity is integrity, not encryption */
  static const struct file verity[] = {
    MOUNT_DM0,
    F("sys/block/sda/sda3/dev", "8:3\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-VERITY-0011-root\n"),
    F("sys/block/dm-0/slaves/sda3", ""),
    END
  };
  static const struct file dm_uuid_unreadable[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/name", "root\n"),
    F("sys/block/dm-0/slaves/sda2", ""),
    F("sys/block/sda/sda2/dev", "8:2\n"),
    END
  };
  static const struct file dm_no_slaves_dir[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "LVM-abc\n"),
    END
  };
  static const struct file slave_unknown[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "LVM-abc\n"),
    F("sys/block/dm-0/slaves/sdz9", ""),
    END
  };
  static const struct file dm_cycle[] = {
    MOUNT_DM0,
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "LVM-abc\n"),
    F("sys/block/dm-0/slaves/dm-0", ""),
    END
  };
  static const struct file not_in_sysfs[] = {
    F("proc/self/mountinfo", "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"),
    F("sys/block/sda/dev", "8:0\n"),
    F("sys/block/sda/sda2/dev", "8:2\n"),
    END
  };
  static const struct file no_sysfs[] = {
    F("proc/self/mountinfo", "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"),
    END
  };
  static const struct file whole_disk[] = {
    F("proc/self/mountinfo", "1 0 254:0 / / rw - ext4 /dev/vda rw\n"),
    F("sys/block/vda/dev", "254:0\n"),
    DIR_("sys/block/vda/slaves/"),
    END
  };
  /* the later mount of / hides the earlier one */
  static const struct file overmounted[] = {
    F("proc/self/mountinfo", "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                             "2 1 253:0 / / rw - ext4 /dev/mapper/c rw\n"),
    F("sys/block/sda/sda1/dev", "8:1\n"),
    F("sys/block/dm-0/dev", "253:0\n"),
    F("sys/block/dm-0/dm/uuid", "CRYPT-LUKS2-x-c\n"),
    F("sys/block/dm-0/slaves/sda1", ""),
    END
  };

  expect_encryption(state, "overlay", overlay, -1, NULL);
  expect_encryption(state, "tmpfs", tmpfs, -1, NULL);
  expect_encryption(state, "zfs", zfs, -1, NULL);
  expect_encryption(state, "btrfs_luks", btrfs_luks, 1, "luks2");
  expect_encryption(state, "btrfs_plain", btrfs_plain, 0, NULL);
  expect_encryption(state, "luks1", luks1, 1, "luks1");
  expect_encryption(state, "plain_crypt", plain_crypt, 1, "dm-crypt");
  expect_encryption(state, "bitlocker", bitlocker, 1, "dm-crypt");
  expect_encryption(state, "lvm_mixed", lvm_mixed, 0, NULL);
  expect_encryption(state, "lvm_two_luks", lvm_two_luks, 1, "luks1");
  expect_encryption(state, "verity", verity, 0, NULL);
  expect_encryption(state, "dm_uuid_unreadable", dm_uuid_unreadable, -1,
                    NULL);
  expect_encryption(state, "dm_no_slaves_dir", dm_no_slaves_dir, -1, NULL);
  expect_encryption(state, "slave_unknown", slave_unknown, -1, NULL);
  expect_encryption(state, "dm_cycle", dm_cycle, -1, NULL);
  expect_encryption(state, "not_in_sysfs", not_in_sysfs, -1, NULL);
  expect_encryption(state, "no_sysfs", no_sysfs, -1, NULL);
  expect_encryption(state, "whole_disk", whole_disk, 0, NULL);
  expect_encryption(state, "overmounted", overmounted, 1, "luks2");
}

static void expect_tri(void **state, const char *name,
                       const struct file *files, const char *key, int want)
{
  json_t *o = device(state, name, files);
  print_message("%s case: %s\n", key, name);
  if(want < 0)
    expect_null(o, key);
  else
    expect_bool(o, key, want);
  json_decref(o);
}

static void test_secure_boot_cases(void **state)
{
  static const struct file no_firmware[] = {
    F("proc/sys/kernel/osrelease", "6.1.0\n"), END
  };
  static const struct file firmware_masked[] = {
    DIR_("sys/firmware/"), END
  };
  static const struct file bios[] = {
    F("sys/firmware/acpi/pm_profile", "1\n"), END
  };
  static const struct file efi_unmounted[] = {
    F("sys/firmware/acpi/pm_profile", "1\n"),
    DIR_("sys/firmware/efi/efivars/"),
    F("sys/firmware/efi/runtime", "0x1\n"),
    END
  };
  static const struct file efi_no_var[] = {
    F("sys/firmware/efi/efivars/BootCurrent-" GUID, "\x06\0\0\0\x01\0"),
    END
  };
  static const struct file efi_on[] = {
    F(SECURE_BOOT, "\x06\0\0\0\x01"), END
  };
  static const struct file efi_off[] = {
    F(SECURE_BOOT, "\x06\0\0\0\0"), END
  };
  static const struct file efi_bad_value[] = {
    F(SECURE_BOOT, "\x06\0\0\0\x02"), END
  };
  static const struct file efi_dir_as_var[] = {
    DIR_(SECURE_BOOT "/x/"), END
  };
  static const struct file sysfs_vars_on[] = {
    F("sys/firmware/efi/vars/SecureBoot-" GUID "/data", "\x01"), END
  };
  static const struct file sysfs_vars_none[] = {
    F("sys/firmware/efi/vars/new_var", ""), END
  };
  const char *k = "integrity.secure_boot";

  expect_tri(state, "no_firmware", no_firmware, k, -1);
  expect_tri(state, "firmware_masked", firmware_masked, k, -1);
  expect_tri(state, "bios", bios, k, 0);
  expect_tri(state, "efi_unmounted", efi_unmounted, k, -1);
  expect_tri(state, "efi_no_var", efi_no_var, k, 0);
  expect_tri(state, "efi_on", efi_on, k, 1);
  expect_tri(state, "efi_off", efi_off, k, 0);
  expect_tri(state, "efi_bad_value", efi_bad_value, k, -1);
  expect_tri(state, "efi_dir_as_var", efi_dir_as_var, k, -1);
  expect_tri(state, "sysfs_vars_on", sysfs_vars_on, k, 1);
  expect_tri(state, "sysfs_vars_none", sysfs_vars_none, k, 0);
}

static void test_integrity_cases(void **state)
{
  static const struct file tainted[] = {
    F("proc/sys/kernel/tainted", "4097\n"), END
  };
  static const struct file untainted[] = {
    F("proc/sys/kernel/tainted", "0"), END
  };
  static const struct file tainted_neg[] = {
    F("proc/sys/kernel/tainted", "-1\n"), END
  };
  static const struct file tainted_huge[] = {
    F("proc/sys/kernel/tainted", "99999999999999999999999\n"), END
  };
  static const struct file passwd_unreadable_dir[] = {
    DIR_("etc/passwd/"), END
  };
  expect_tri(state, "tainted", tainted, "integrity.kernel_tainted", 1);
  expect_tri(state, "untainted", untainted, "integrity.kernel_tainted", 0);
  expect_tri(state, "tainted_neg", tainted_neg, "integrity.kernel_tainted",
             -1);
  expect_tri(state, "tainted_huge", tainted_huge,
             "integrity.kernel_tainted", -1);
  expect_tri(state, "passwd_dir", passwd_unreadable_dir, "integrity.rooted",
             -1);
}

static void test_firewall_cases(void **state)
{
  static const struct file ufw_on[] = {
    F("etc/ufw/ufw.conf", "# c\nENABLED=yes\nLOGLEVEL=low\n"), END
  };
  static const struct file ufw_on_quoted[] = {
    F("etc/ufw/ufw.conf", "ENABLED=\"YES\"\n"), END
  };
  static const struct file ufw_off[] = {
    F("etc/ufw/ufw.conf", "ENABLED=no\n"), END
  };
  static const struct file ufw_off_firewalld[] = {
    F("etc/ufw/ufw.conf", "ENABLED=no\n"),
    F("etc/systemd/system/multi-user.target.wants/firewalld.service", ""),
    END
  };
  static const struct file nftables_multi_user[] = {
    F("etc/systemd/system/multi-user.target.wants/nftables.service", ""),
    END
  };
  static const struct file openrc_iptables[] = {
    F("etc/runlevels/default/iptables", ""), END
  };
  static const struct file other_units[] = {
    F("etc/systemd/system/multi-user.target.wants/ssh.service", ""),
    F("etc/systemd/system/multi-user.target.wants/ufw.service", ""),
    END
  };
  const char *k = "security.firewall_enabled";
  expect_tri(state, "ufw_on", ufw_on, k, 1);
  expect_tri(state, "ufw_on_quoted", ufw_on_quoted, k, 1);
  expect_tri(state, "ufw_off", ufw_off, k, 0);
  expect_tri(state, "ufw_off_firewalld", ufw_off_firewalld, k, 1);
  expect_tri(state, "nftables_multi_user", nftables_multi_user, k, 1);
  expect_tri(state, "openrc_iptables", openrc_iptables, k, 1);
  /* ufw.service is enabled even when ufw is off: it does not count */
  expect_tri(state, "other_units", other_units, k, -1);
}

static void test_firewall_dangling_link(void **state)
{
  char path[PATH_MAX];
  json_t *o;
  write_str(*state, "etc/systemd/system/sysinit.target.wants/x", "");
  snprintf(path, sizeof(path),
           "%s/etc/systemd/system/sysinit.target.wants/nftables.service",
           (char *)*state);
  assert_int_equal(symlink("/lib/systemd/system/nftables.service-absent",
                           path), 0);
  o = collect(*state);
  expect_bool(o, "security.firewall_enabled", 1);
  json_decref(o);
}

static void test_screen_lock_cases(void **state)
{
  static const struct file later_wins[] = {
    F("etc/dconf/db/local.d/10-policy",
      "[org/gnome/desktop/screensaver]\nlock-enabled=false\n"),
    F("etc/dconf/db/local.d/00-defaults",
      "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"),
    END
  };
  static const struct file unset_later[] = {
    F("etc/dconf/db/local.d/00-lock",
      "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"),
    F("etc/dconf/db/local.d/50-other",
      "[org/gnome/desktop/interface]\nclock-show-date=true\n"),
    F("etc/dconf/db/local.d/locks/screensaver",
      "/org/gnome/desktop/screensaver/lock-enabled\n"),
    END
  };
  static const struct file skipped_names[] = {
    F("etc/dconf/db/local.d/00-lock",
      "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"),
    F("etc/dconf/db/local.d/99-lock~",
      "[org/gnome/desktop/screensaver]\nlock-enabled=false\n"),
    F("etc/dconf/db/local.d/.hidden",
      "[org/gnome/desktop/screensaver]\nlock-enabled=false\n"),
    END
  };
  static const struct file empty_dir[] = {
    DIR_("etc/dconf/db/local.d/"), END
  };
  const char *k = "security.screen_lock_enabled";
  expect_tri(state, "later_wins", later_wins, k, 0);
  expect_tri(state, "unset_later", unset_later, k, 1);
  expect_tri(state, "skipped_names", skipped_names, k, 1);
  expect_tri(state, "empty_dir", empty_dir, k, -1);
}

static void test_vpn_cases(void **state)
{
  static const struct file tun_up[] = {
    F("sys/class/net/eth0/operstate", "up\n"),
    F("sys/class/net/tun0/operstate", "up\n"),
    END
  };
  static const struct file tap_unknown[] = {
    F("sys/class/net/tap3/operstate", "unknown\n"), END
  };
  static const struct file wg_named[] = {
    F("sys/class/net/mullvad/operstate", "unknown\n"),
    F("sys/class/net/mullvad/uevent", "DEVTYPE=wireguard\nINTERFACE=x\n"),
    END
  };
  static const struct file wg_named_down[] = {
    F("sys/class/net/mullvad/operstate", "down\n"),
    F("sys/class/net/mullvad/uevent", "INTERFACE=x\nDEVTYPE=wireguard\n"),
    END
  };
  static const struct file not_vpn[] = {
    F("sys/class/net/lo/operstate", "unknown\n"),
    F("sys/class/net/eth0/operstate", "up\n"),
    F("sys/class/net/eth0/uevent", "INTERFACE=eth0\nDEVTYPE=wireguardish\n"),
    F("sys/class/net/tun0/operstate", "down\n"),
    F("sys/class/net/wg0/operstate", "dormant\n"),
    F("sys/class/net/tap0/operstate", "lowerlayerdown\n"),
    DIR_("sys/class/net/wg1/"),
    END
  };
  static const struct file no_net[] = {
    DIR_("sys/class/"), END
  };
  const char *k = "network.vpn_connected";
  expect_tri(state, "tun_up", tun_up, k, 1);
  expect_tri(state, "tap_unknown", tap_unknown, k, 1);
  expect_tri(state, "wg_named", wg_named, k, 1);
  expect_tri(state, "wg_named_down", wg_named_down, k, 0);
  expect_tri(state, "not_vpn", not_vpn, k, 0);
  expect_tri(state, "no_net", no_net, k, -1);
}

static void test_identity_cases(void **state)
{
  static const struct file devicetree[] = {
    F("sys/firmware/devicetree/base/model", "Raspberry Pi 4 Model B Rev 1.4\0"),
    F("sys/firmware/devicetree/base/serial-number", "10000000abcdef01\0"),
    F("proc/sys/kernel/hostname", "(none)\n"),
    F("etc/hostname", "pi-kiosk\n"),
    END
  };
  static const struct file usr_lib_fallback[] = {
    F("usr/lib/os-release", "NAME=Fedora Linux\nVERSION_ID=40\n"
      "BUILD_ID=2024.1\nVERSION=\"40 (Forty)\"\nID=fedora\n"),
    END
  };
  json_t *o = device(state, "devicetree", devicetree);
  expect_str(o, "model", "Raspberry Pi 4 Model B Rev 1.4");
  expect_str(o, "serial", "10000000abcdef01");
  expect_str(o, "hostname", "pi-kiosk");
  expect_null(o, "manufacturer");
  json_decref(o);
  o = device(state, "usr_lib_fallback", usr_lib_fallback);
  expect_str(o, "os.name", "Fedora Linux");
  expect_str(o, "os.version", "40");
  expect_str(o, "os.build", "2024.1");
  expect_str(o, "os.id", "fedora");
  json_decref(o);
}

/* ---------------------------------------------------------------------- */
/* The real machine                                                        */
/* ---------------------------------------------------------------------- */

static void expect_shape(json_t *o, const char *k, int is_bool)
{
  json_t *v = at(o, k);
  if(!json_is_null(v) && (is_bool ? !json_is_boolean(v) : !json_is_string(v)))
    fail_msg("%s: expected a %s or null", k, is_bool ? "boolean" : "string");
}

static void test_real_machine(void **state)
{
  static const char *const strings[] = {
    "serial", "hostname", "model", "manufacturer", "os.name", "os.version",
    "os.build", "os.kernel", "os.id", "encryption.method",
    "integrity.lockdown", "network.ssid", NULL
  };
  static const char *const bools[] = {
    "encryption.root_encrypted", "integrity.rooted", "integrity.secure_boot",
    "integrity.kernel_tainted", "security.firewall_enabled",
    "security.screen_lock_enabled", "network.vpn_connected", NULL
  };
  const char *roots[] = { NULL, "", "/" };
  size_t r;
  int i;
  (void)state;
  for(r = 0; r < sizeof(roots) / sizeof(roots[0]); r++) {
    json_t *o = collect(roots[r]);
    expect_str(o, "platform", "linux");
    expect_str(o, "agent.version", MDM_VERSION);
    expect_null(o, "security.password_age_days");
    for(i = 0; strings[i]; i++)
      expect_shape(o, strings[i], 0);
    for(i = 0; bools[i]; i++)
      expect_shape(o, bools[i], 1);
    json_decref(o);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fixture_debian12_luks),
    cmocka_unit_test(test_fixture_ubuntu2204_plain),
    cmocka_unit_test(test_fixture_alpine_old),
    cmocka_unit_test(test_fixture_key_order),
    cmocka_unit_test(test_root_with_trailing_slash),
    cmocka_unit_test_setup_teardown(test_root_missing, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_root_empty, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_garbage_files, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_garbage_values, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_oversized_files, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_special_files, setup_root,
                                    teardown_root),
    cmocka_unit_test(test_env_parser),
    cmocka_unit_test(test_mountinfo_parser),
    cmocka_unit_test(test_passwd_parser),
    cmocka_unit_test(test_lockdown_parser),
    cmocka_unit_test(test_dconf_parser),
    cmocka_unit_test(test_efivar_bool),
    cmocka_unit_test_setup_teardown(test_encryption_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_secure_boot_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_integrity_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_firewall_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_firewall_dangling_link, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_screen_lock_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_vpn_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test_setup_teardown(test_identity_cases, setup_root,
                                    teardown_root),
    cmocka_unit_test(test_real_machine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
