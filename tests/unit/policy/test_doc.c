/*
 * test_doc.c: unit tests for src/policy/doc.c and its kind validators
 * (kind_compliance.c, kind_profile.c): YAML/JSON parsing into jansson with
 * the YAML 1.2 core schema, the bounds that stop hostile input, the line
 * map, loading files and directories, every validation error with its exact
 * "FILE: line N: FIELD: what is wrong" message, and the to_yaml round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/rc.h"
#include "policy/doc.h"

/* ---- helpers ---------------------------------------------------------- */

static char fixtures[1024];

static int setup_fixtures(void **state)
{
  const char *f = getenv("MDM_FIXTURES");
  (void)state;
  snprintf(fixtures, sizeof(fixtures), "%s/policies",
           f ? f : "tests/fixtures");
  return 0;
}

static const char *fx(const char *rel, char *buf, size_t n)
{
  snprintf(buf, n, "%s/%s", fixtures, rel);
  return buf;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Parse text as "t.yaml"; expect success with n documents. */
static void parse_ok(struct mdm_docset *ds, const char *text, size_t n)
{
  char err[512] = "";
  mdm_docset_init(ds);
  if(mdm_doc_parse(ds, "t.yaml", text, strlen(text), err, sizeof(err)))
    fail_msg("unexpected error: %s", err);
  assert_int_equal(ds->n_docs, n);
}

/* Parse (then validate) text as name; expect rc and exactly msg. */
static void expect_err_named(const char *name, const char *text, size_t len,
                             mdm_rc want, const char *msg)
{
  struct mdm_docset ds;
  char err[1024] = "";
  mdm_rc rc;
  mdm_docset_init(&ds);
  rc = mdm_doc_parse(&ds, name, text, len, err, sizeof(err));
  if(rc == MDM_OK) {
    rc = mdm_docset_validate(&ds, err, sizeof(err));
    if(rc == MDM_OK)
      fail_msg("expected \"%s\", got no error", msg);
  }
  else
    assert_int_equal(ds.n_docs, 0);   /* nothing appended on error */
  if(strcmp(err, msg))
    fail_msg("expected \"%s\"\n             got \"%s\"", msg, err);
  assert_int_equal(rc, want);
  mdm_docset_release(&ds);
}

static void expect_err(const char *text, mdm_rc want, const char *msg)
{
  expect_err_named("t.yaml", text, strlen(text), want, msg);
}

#define PARSE_ERR(text, msg) expect_err(text, MDM_ERR_INVAL, msg)
#define INVALID(text, msg) expect_err(text, MDM_ERR_UNPROCESSABLE, msg)
/* A string literal with NULs or bytes that are not UTF-8. */
#define BYTES_ERR(lit, msg) \
  expect_err_named("t.yaml", lit, sizeof(lit) - 1, MDM_ERR_INVAL, msg)

static void expect_valid(const char *text)
{
  struct mdm_docset ds;
  char err[1024] = "";
  parse_ok(&ds, text, 1);
  if(mdm_docset_validate(&ds, err, sizeof(err)))
    fail_msg("unexpected: %s", err);
  mdm_docset_release(&ds);
}

/* Lines 1-5 of a CompliancePolicy; rules start at line 6. */
#define CP "apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n" \
           "  name: p\nspec:\n"
/* Lines 1-6 of a ConfigurationProfile; settings start at line 7. */
#define PROF "apiVersion: mdm/v1\nkind: ConfigurationProfile\nmetadata:\n" \
             "  name: p\nspec:\n  settings:\n"
/* Lines 7-8: a vpn setting with its required remote; fields at line 9. */
#define VPN PROF "    vpn:\n      remote: vpn.example.com\n"
/* Lines 6-9: one rule, more of its fields at line 10. */
#define RULE CP "  rules:\n    - name: r\n      fact: os.version\n" \
                "      op: version_ge\n"

/* ---- scalar typing ---------------------------------------------------- */

/* "v: <text>" parses to want (compared with json_equal). */
static void scalar_is(const char *text, json_t *want)
{
  struct mdm_docset ds;
  char buf[256];
  json_t *got;
  snprintf(buf, sizeof(buf), "v: %s\n", text);
  parse_ok(&ds, buf, 1);
  got = json_object_get(ds.docs[0].json, "v");
  if(!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_ENCODE_ANY);
    char *w = json_dumps(want, JSON_ENCODE_ANY);
    fail_msg("'%s': got %s, want %s", text, g, w);
  }
  json_decref(want);
  mdm_docset_release(&ds);
}

static void test_scalar_types(void **state)
{
  (void)state;
  /* null */
  scalar_is("", json_null());
  scalar_is("~", json_null());
  scalar_is("null", json_null());
  scalar_is("Null", json_null());
  scalar_is("NULL", json_null());
  scalar_is("nULL", json_string("nULL"));
  /* booleans: YAML 1.2 core, not 1.1's yes/no/on/off */
  scalar_is("true", json_true());
  scalar_is("True", json_true());
  scalar_is("TRUE", json_true());
  scalar_is("false", json_false());
  scalar_is("FALSE", json_false());
  scalar_is("yes", json_string("yes"));
  scalar_is("no", json_string("no"));
  scalar_is("on", json_string("on"));
  scalar_is("Off", json_string("Off"));
  scalar_is("y", json_string("y"));
  /* integers */
  scalar_is("0", json_integer(0));
  scalar_is("-17", json_integer(-17));
  scalar_is("+17", json_integer(17));
  scalar_is("0123", json_integer(123));   /* 1.2: decimal, not octal */
  scalar_is("0o17", json_integer(15));
  scalar_is("0x1F", json_integer(31));
  scalar_is("0xff", json_integer(255));
  scalar_is("9223372036854775807", json_integer(INT64_MAX));
  scalar_is("-9223372036854775808", json_integer(INT64_MIN));
  scalar_is("0x7fffffffffffffff", json_integer(INT64_MAX));
  scalar_is("1_000", json_string("1_000"));
  scalar_is("0b101", json_string("0b101"));
  scalar_is("0o8", json_string("0o8"));
  scalar_is("0x", json_string("0x"));
  scalar_is("12:30", json_string("12:30"));   /* no sexagesimals */
  /* reals */
  scalar_is("1.5", json_real(1.5));
  scalar_is("-0.25", json_real(-0.25));
  scalar_is(".5", json_real(0.5));
  scalar_is("1.", json_real(1.0));
  scalar_is("1e3", json_real(1000.0));
  scalar_is("1.5E-2", json_real(0.015));
  scalar_is("+2.5e+2", json_real(250.0));
  scalar_is("13.10", json_real(13.1));
  scalar_is("1e", json_string("1e"));
  scalar_is(".", json_string("."));
  scalar_is("1.2.3", json_string("1.2.3"));
  scalar_is("inf", json_string("inf"));
  scalar_is("NaN", json_string("NaN"));
  /* strings */
  scalar_is("2026-01-31", json_string("2026-01-31"));  /* no timestamps */
  scalar_is("mdm/v1", json_string("mdm/v1"));
  scalar_is("a b  c", json_string("a b  c"));
  scalar_is("-x", json_string("-x"));
  /* quoted and block scalars are strings whatever they hold */
  scalar_is("'true'", json_string("true"));
  scalar_is("\"null\"", json_string("null"));
  scalar_is("'123'", json_string("123"));
  scalar_is("\"\"", json_string(""));
  scalar_is("\"a\\tb\\u00e9\"", json_string("a\tb\xc3\xa9"));
  scalar_is("'it''s'", json_string("it's"));
  scalar_is("|\n  line1\n  line2", json_string("line1\nline2\n"));
  scalar_is(">-\n  folded\n  text", json_string("folded text"));
  /* tags */
  scalar_is("!!str 123", json_string("123"));
  scalar_is("! 123", json_string("123"));
  scalar_is("!!int 42", json_integer(42));
  scalar_is("!!float 1", json_real(1.0));
  scalar_is("!!bool true", json_true());
  scalar_is("!!null ~", json_null());
  scalar_is("!!seq [1]", json_pack("[i]", 1));
  scalar_is("!!map {a: 1}", json_pack("{s:i}", "a", 1));
  /* anchors alone are harmless: ignored */
  scalar_is("&x 5", json_integer(5));
  /* flow collections */
  scalar_is("[1, two, 3.0, null, true]",
            json_pack("[isfnb]", 1, "two", 3.0, 1));
  scalar_is("{a: 1, 'b': [x]}", json_pack("{s:i,s:[s]}", "a", 1, "b", "x"));
  scalar_is("{}", json_object());
  scalar_is("[]", json_array());
}

/* ---- parsing: documents, JSON, line map ------------------------------- */

static void test_multi_document(void **state)
{
  struct mdm_docset ds;
  (void)state;
  parse_ok(&ds,
           "# leading comment\n"          /* 1 */
           "---\n"                         /* 2 */
           "a: 1\n"                        /* 3 */
           "---\n"                         /* 4: empty: skipped */
           "# only a comment\n"            /* 5 */
           "---\n"                         /* 6 */
           "b: [x, y]\n"                   /* 7 */
           "...\n"                         /* 8 */
           "---\n"                         /* 9 */
           "~\n"                           /* 10: null: skipped */
           "---\n"                         /* 11 */
           "c: {d: e}\n",                  /* 12 */
           3);
  assert_int_equal(ds.docs[0].line, 2);
  assert_int_equal(ds.docs[1].line, 6);
  assert_int_equal(ds.docs[2].line, 11);
  assert_string_equal(ds.docs[1].file, "t.yaml");
  assert_int_equal(json_integer_value(json_object_get(ds.docs[0].json, "a")),
                   1);
  assert_string_equal(json_string_value(json_array_get(
                        json_object_get(ds.docs[1].json, "b"), 1)), "y");
  assert_int_equal(mdm_doc_line(&ds.docs[2], "c.d"), 12);
  /* Appending: a second parse adds to the set. */
  assert_int_equal(mdm_doc_parse(&ds, "u.yaml", "z: 1\n", 5, NULL, 0),
                   MDM_OK);
  assert_int_equal(ds.n_docs, 4);
  assert_string_equal(ds.docs[3].file, "u.yaml");
  mdm_docset_release(&ds);
  assert_int_equal(ds.n_docs, 0);

  /* Nothing but comments, blank lines or nothing at all: no documents. */
  parse_ok(&ds, "", 0);
  mdm_docset_release(&ds);
  parse_ok(&ds, "# nothing here\n\n---\n---\n", 0);
  mdm_docset_release(&ds);
}

static void test_json_input(void **state)
{
  struct mdm_docset ds;
  json_t *want;
  const char *ca;
  const char *text =
    "{\n"                                                     /* 1 */
    "  \"apiVersion\": \"mdm/v1\",\n"                         /* 2 */
    "  \"metadata\": {\"name\":\"caf\\u00e9\",\n"             /* 3 */
    "    \"labels\": {\"e\": \"\\ud83d\\ude00 \\\"q\\\" \\\\u\\/\"}},\n"
    "\t\"n\": [1, -2.5e3, true, null, \"\\u0041\\u2028\"],\n" /* 5 */
    "  \"empty\": {}\n"                                       /* 6 */
    "}\n";
  (void)state;
  parse_ok(&ds, text, 1);
  want = json_loads(text, 0, NULL);
  assert_non_null(want);
  /* The same value jansson reads, surrogate pairs included. */
  assert_true(json_equal(ds.docs[0].json, want));
  assert_string_equal(
    json_string_value(json_object_get(json_object_get(json_object_get(
      ds.docs[0].json, "metadata"), "labels"), "e")),
    "\xf0\x9f\x98\x80 \"q\" \\u/");
  assert_int_equal(mdm_doc_line(&ds.docs[0], "metadata.name"), 3);
  assert_int_equal(mdm_doc_line(&ds.docs[0], "metadata.labels.e"), 4);
  assert_int_equal(mdm_doc_line(&ds.docs[0], "n[4]"), 5);
  assert_int_equal(mdm_doc_line(&ds.docs[0], "empty"), 6);
  json_decref(want);
  mdm_docset_release(&ds);

  /* A lone surrogate is not a character: refused. */
  PARSE_ERR("{\"a\": \"\\ud800\"}",
            "t.yaml: line 1: found invalid Unicode character escape code "
            "(while parsing a quoted scalar at line 1)");
  /* The brief's conditional access snippet, as the spec of a JSON
   * document: accepted as written. */
  ca = "{\"apiVersion\": \"mdm/v1\", \"kind\": \"ConditionalAccessPolicy\",\n"
    " \"metadata\": {\"name\": \"require-compliant\"},\n"
    " \"spec\": {\n"
    "\"conditions\": {\n"
    "\"deviceStates\": {\n"
    "\"requireCompliantDevice\": true,\n"
    "\"requireDomainJoinedDevice\": false\n"
    "},\n"
    "\"applications\": {\n"
    "\"includeApplications\": [\"All\"]\n"
    "},\n"
    "\"clientAppTypes\": [\"mobileApps\", \"browser\"]\n"
    "},\n"
    "\"grantControls\": {\n"
    "\"operator\": \"OR\",\n"
    "\"builtInControls\": [\"requireMfa\"]\n"
    "}\n"
    "}}\n";
  {
    char err[512] = "";
    parse_ok(&ds, ca, 1);
    if(mdm_docset_validate(&ds, err, sizeof(err)))
      fail_msg("the brief's policy is refused: %s", err);
    mdm_docset_release(&ds);
  }

  /* A UTF-8 byte order mark is fine. */
  parse_ok(&ds, "\xef\xbb\xbf{\"a\": \"\\ud83d\\ude00\"}", 1);
  mdm_docset_release(&ds);
}

static void test_doc_line(void **state)
{
  struct mdm_docset ds;
  const struct mdm_doc *d;
  (void)state;
  parse_ok(&ds,
           "\n"                                   /* 1 */
           "apiVersion: mdm/v1\n"                 /* 2 */
           "metadata:\n"                          /* 3 */
           "  name: x\n"                          /* 4 */
           "  labels:\n"                          /* 5 */
           "    app.kubernetes.io/name: y\n"      /* 6 */
           "    app: z\n"                         /* 7 */
           "spec:\n"                              /* 8 */
           "  rules:\n"                           /* 9 */
           "    - name: a\n"                      /* 10 */
           "      op: eq\n"                       /* 11 */
           "    -\n"                              /* 12 */
           "      name: b\n"                      /* 13 */
           "      value: [1,\n"                   /* 14 */
           "        2]\n",                        /* 15 */
           1);
  d = &ds.docs[0];
  assert_int_equal(d->line, 2);
  assert_int_equal(mdm_doc_line(d, ""), 2);
  assert_int_equal(mdm_doc_line(d, "apiVersion"), 2);
  assert_int_equal(mdm_doc_line(d, "metadata"), 3);
  assert_int_equal(mdm_doc_line(d, "metadata.name"), 4);
  assert_int_equal(mdm_doc_line(d, "metadata.labels.app.kubernetes.io/name"),
                   6);
  assert_int_equal(mdm_doc_line(d, "metadata.labels.app"), 7);
  assert_int_equal(mdm_doc_line(d, "spec.rules[0]"), 10);
  assert_int_equal(mdm_doc_line(d, "spec.rules[0].op"), 11);
  /* An item's line is where its node starts: after a bare "-", below. */
  assert_int_equal(mdm_doc_line(d, "spec.rules[1]"), 13);
  assert_int_equal(mdm_doc_line(d, "spec.rules[1].name"), 13);
  assert_int_equal(mdm_doc_line(d, "spec.rules[1].value[1]"), 15);
  /* Missing nodes: the deepest ancestor that exists. */
  assert_int_equal(mdm_doc_line(d, "spec.rules[0].fact"), 10);
  assert_int_equal(mdm_doc_line(d, "spec.rules[7].op"), 9);
  assert_int_equal(mdm_doc_line(d, "spec.nope.deeper"), 8);
  assert_int_equal(mdm_doc_line(d, "nope"), 2);
  assert_int_equal(mdm_doc_line(d, "spec.rules[x]"), 9);
  assert_int_equal(mdm_doc_line(d, NULL), 2);
  assert_null(mdm_doc_kind(d));
  assert_string_equal(mdm_doc_name(d), "x");
  mdm_docset_release(&ds);
}

/* ---- parse errors ----------------------------------------------------- */

static void test_parse_errors(void **state)
{
  (void)state;
  /* Duplicate keys, at any depth. */
  PARSE_ERR("a: 1\nb: 2\na: 3\n",
            "t.yaml: line 3: a: duplicate key (first at line 1)");
  PARSE_ERR("spec:\n  rules:\n    - {name: x, op: eq, op: ne}\n",
            "t.yaml: line 3: spec.rules[0].op: duplicate key (first at "
            "line 3)");
  PARSE_ERR("a: 1\n'a': 2\n",   /* quoting does not make another key */
            "t.yaml: line 2: a: duplicate key (first at line 1)");
  /* Aliases, anywhere. */
  PARSE_ERR("base: &b {x: 1}\nother: *b\n",
            "t.yaml: line 2: other: aliases are not supported");
  PARSE_ERR("base: &b {x: 1}\nother:\n  <<: *b\n",
            "t.yaml: line 3: other.<<: aliases are not supported");
  PARSE_ERR("a: &k key\n*k : v\n",
            "t.yaml: line 2: document: aliases are not supported");
  /* Tags. */
  PARSE_ERR("a: !custom x\n", "t.yaml: line 1: a: unsupported tag '!custom'");
  PARSE_ERR("a: !!binary aGk=\n",
            "t.yaml: line 1: a: unsupported tag "
            "'tag:yaml.org,2002:binary'");
  PARSE_ERR("a:\n  - !!set {x: 1}\n",
            "t.yaml: line 2: a[0]: unsupported tag 'tag:yaml.org,2002:set'");
  PARSE_ERR("a: !!int twelve\n", "t.yaml: line 1: a: not a valid !!int");
  PARSE_ERR("a: !!bool yes\n", "t.yaml: line 1: a: not a valid !!bool");
  PARSE_ERR("a: !!map [1]\n",
            "t.yaml: line 1: a: unsupported tag 'tag:yaml.org,2002:map'");
  /* Keys. */
  PARSE_ERR("~: 1\n",
            "t.yaml: line 1: document: a mapping key must be a string, not "
            "null");
  PARSE_ERR("a:\n  null: 1\n",
            "t.yaml: line 2: a: a mapping key must be a string, not null");
  PARSE_ERR("? [a, b]\n: 1\n",
            "t.yaml: line 1: document: a mapping key must be a string, not "
            "a list");
  PARSE_ERR("x:\n  {a: 1}: 2\n",
            "t.yaml: line 2: x: a mapping key must be a string, not a "
            "mapping");
  PARSE_ERR("\"a\\0b\": 1\n",
            "t.yaml: line 1: document: mapping key contains a NUL "
            "character");
  /* Numbers JSON cannot hold. */
  PARSE_ERR("a: 9223372036854775808\n",
            "t.yaml: line 1: a: integer out of range (quote it for a "
            "string)");
  PARSE_ERR("a: [0x8000000000000000]\n",
            "t.yaml: line 1: a[0]: integer out of range (quote it for a "
            "string)");
  PARSE_ERR("a: 1e999\n", "t.yaml: line 1: a: number out of range");
  PARSE_ERR("a: -.inf\n",
            "t.yaml: line 1: a: infinity and NaN are not supported (JSON "
            "has neither)");
  PARSE_ERR(".nan\n",
            "t.yaml: line 1: document: infinity and NaN are not supported "
            "(JSON has neither)");
  /* Syntax, as libyaml words it, with our file and line. */
  PARSE_ERR("a: [1, 2\nb: 3\n",
            "t.yaml: line 2: did not find expected ',' or ']' (while "
            "parsing a flow sequence at line 1)");
  PARSE_ERR("a: b: c\n",
            "t.yaml: line 1: mapping values are not allowed in this "
            "context");
  PARSE_ERR("a:\n  b: 1\n c: 2\n",
            "t.yaml: line 3: did not find expected key (while parsing a "
            "block mapping at line 1)");
  PARSE_ERR("a: 'open\n",
            "t.yaml: line 2: found unexpected end of stream (while scanning "
            "a quoted scalar at line 1)");
  PARSE_ERR("a:\n\tb: 1\n",
            "t.yaml: line 2: tab in indentation (YAML indents with spaces "
            "only)");
  PARSE_ERR("{\"a\": 1 \"b\": 2}\n",
            "t.yaml: line 1: did not find expected ',' or '}' (while "
            "parsing a flow mapping at line 1)");
  /* Bytes that are not UTF-8 text. */
  BYTES_ERR("a: ok\nb: caf\xc3\x28\n",
            "t.yaml: line 2: not valid UTF-8 text (invalid trailing "
            "UTF-8 octet)");
  BYTES_ERR("a: \xff\n",
            "t.yaml: line 1: not valid UTF-8 text (invalid leading "
            "UTF-8 octet)");
  BYTES_ERR("a: \xed\xa0\x80\n",
            "t.yaml: line 1: not valid UTF-8 text (invalid Unicode "
            "character)");
  BYTES_ERR("a: b\n\nc: \xe2\x82",
            "t.yaml: line 3: not valid UTF-8 text (incomplete UTF-8 "
            "octet sequence)");
  BYTES_ERR("a: b\0c\n",
            "t.yaml: line 1: control characters are not allowed");
  BYTES_ERR("a: \x1b[31m\n",
            "t.yaml: line 1: control characters are not allowed");
  /* UTF-16 is not guessed from a BOM: JSON and our YAML are UTF-8. */
  BYTES_ERR("\xff\xfe" "a\0:\0 \0" "1\0",
            "t.yaml: line 1: not valid UTF-8 text (invalid leading "
            "UTF-8 octet)");
}

/* ---- hostile input ---------------------------------------------------- */

static void test_alias_bomb(void **state)
{
  char path[1200];
  char *text = NULL;
  size_t len = 0;
  FILE *f;
  double t0, ms;
  struct mdm_docset ds;
  char err[512];
  (void)state;
  f = fopen(fx("invalid/alias-bomb.yaml", path, sizeof(path)), "rb");
  assert_non_null(f);
  text = calloc(1, 4096);
  len = fread(text, 1, 4095, f);
  fclose(f);
  t0 = now_ms();
  expect_err_named("bomb.yaml", text, len, MDM_ERR_INVAL,
                   "bomb.yaml: line 3: b[0]: aliases are not supported");
  ms = now_ms() - t0;
  print_message("alias bomb: rejected in %.3f ms\n", ms);
  assert_true(ms < 1000);
  free(text);
  /* And from the file, by name. */
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_load_path(&ds, path, err, sizeof(err)),
                   MDM_ERR_INVAL);
  assert_non_null(strstr(err, "alias-bomb.yaml: line 3: b[0]: aliases are "
                              "not supported"));
  assert_int_equal(ds.n_docs, 0);
  mdm_docset_release(&ds);
}

/* n opening brackets then n closing ones (of kind "[]" or "{}"). */
static char *nested(size_t n, const char *brackets, size_t *len)
{
  char *s = malloc(2 * n + 2);
  assert_non_null(s);
  memset(s, brackets[0], n);
  memset(s + n, brackets[1], n);
  s[2 * n] = '\n';
  s[2 * n + 1] = '\0';
  *len = 2 * n + 1;
  return s;
}

static void test_deep_nesting(void **state)
{
  char want[1024] = "t.yaml: line 1: ";
  size_t len, i;
  char *s;
  double t0, ms;
  struct mdm_docset ds;
  (void)state;

  /* 64 levels are fine... */
  s = nested(MDM_DOC_MAX_DEPTH, "[]", &len);
  parse_ok(&ds, s, 1);
  mdm_docset_release(&ds);
  free(s);

  /* ...65 are not; the path names where. */
  for(i = 0; i < MDM_DOC_MAX_DEPTH; i++)
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "[0]");
  snprintf(want + strlen(want), sizeof(want) - strlen(want),
           ": nested deeper than 64 levels");
  s = nested(MDM_DOC_MAX_DEPTH + 1, "[]", &len);
  expect_err_named("t.yaml", s, len, MDM_ERR_TOOBIG, want);
  free(s);

  /* 100000 levels: stops at the 65th, without recursion, at once. */
  s = nested(100000, "[]", &len);
  t0 = now_ms();
  expect_err_named("t.yaml", s, len, MDM_ERR_TOOBIG, want);
  ms = now_ms() - t0;
  print_message("100000 nested [: rejected in %.3f ms\n", ms);
  assert_true(ms < 1000);
  free(s);

  s = nested(100000, "{}", &len);
  t0 = now_ms();
  expect_err_named("t.yaml", s, len, MDM_ERR_INVAL,
                   "t.yaml: line 1: document: a mapping key must be a "
                   "string, not a mapping");
  ms = now_ms() - t0;
  print_message("100000 nested {: rejected in %.3f ms\n", ms);
  assert_true(ms < 1000);
  free(s);

  /* Block style: "- - - - ... x". */
  s = malloc(2 * 100000 + 3);
  assert_non_null(s);
  for(i = 0; i < 100000; i++)
    memcpy(s + 2 * i, "- ", 2);
  memcpy(s + 2 * i, "x\n", 3);
  t0 = now_ms();
  {
    struct mdm_docset d2;
    char err[1024];
    mdm_docset_init(&d2);
    assert_int_equal(mdm_doc_parse(&d2, "t.yaml", s, strlen(s), err,
                                   sizeof(err)), MDM_ERR_TOOBIG);
    assert_non_null(strstr(err, ": nested deeper than 64 levels"));
    mdm_docset_release(&d2);
  }
  ms = now_ms() - t0;
  print_message("100000 nested '- ': rejected in %.3f ms\n", ms);
  assert_true(ms < 1000);
  free(s);
}

static void test_too_big(void **state)
{
  size_t big = 5 * 1024 * 1024, i;
  char *s = malloc(big + 1), want[1200], path[] = "/tmp/mdm-doc-XXXXXX";
  char err[1200];
  struct mdm_docset ds;
  double t0, ms;
  int fd;
  (void)state;
  assert_non_null(s);
  /* A valid YAML list, 5 MB of it. */
  for(i = 0; i + 4 <= big; i += 4)
    memcpy(s + i, "- a\n", 4);
  s[i] = '\0';
  t0 = now_ms();
  expect_err_named("t.yaml", s, i, MDM_ERR_TOOBIG,
                   "t.yaml: larger than 4194304 bytes");
  ms = now_ms() - t0;
  print_message("5 MB input: rejected in %.3f ms\n", ms);
  assert_true(ms < 100);

  /* The same from a file: not even read past the bound. */
  fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, s, i), (ssize_t)i);
  close(fd);
  mdm_docset_init(&ds);
  t0 = now_ms();
  assert_int_equal(mdm_doc_load_path(&ds, path, err, sizeof(err)),
                   MDM_ERR_TOOBIG);
  ms = now_ms() - t0;
  print_message("5 MB file: rejected in %.3f ms\n", ms);
  snprintf(want, sizeof(want), "%s: larger than 4194304 bytes", path);
  assert_string_equal(err, want);
  assert_int_equal(ds.n_docs, 0);
  unlink(path);
  mdm_docset_release(&ds);
  free(s);
}

static void test_huge_scalar_and_key(void **state)
{
  size_t n = MDM_DOC_MAX_SCALAR + 1, len;
  char *s = malloc(n + 64);
  double t0, ms;
  struct mdm_docset ds;
  (void)state;
  assert_non_null(s);

  /* At the bound: fine. */
  memcpy(s, "a: ", 3);
  memset(s + 3, 'x', MDM_DOC_MAX_SCALAR);
  memcpy(s + 3 + MDM_DOC_MAX_SCALAR, "\n", 2);
  parse_ok(&ds, s, 1);
  assert_int_equal(json_string_length(json_object_get(ds.docs[0].json, "a")),
                   MDM_DOC_MAX_SCALAR);
  mdm_docset_release(&ds);

  /* One byte more, quoted or not. */
  memcpy(s, "a: \"", 4);
  memset(s + 4, 'x', n);
  memcpy(s + 4 + n, "\"\n", 3);
  t0 = now_ms();
  expect_err_named("t.yaml", s, strlen(s), MDM_ERR_TOOBIG,
                   "t.yaml: line 1: a: scalar longer than 262144 bytes");
  ms = now_ms() - t0;
  print_message("256 KiB + 1 scalar: rejected in %.3f ms\n", ms);
  assert_true(ms < 1000);

  /* A mapping key over MDM_DOC_MAX_KEY: an explicit key (libyaml itself
   * stops implicit keys at 1024 characters). */
  memcpy(s, "? ", 2);
  memset(s + 2, 'k', MDM_DOC_MAX_KEY + 1);
  memcpy(s + 2 + MDM_DOC_MAX_KEY + 1, "\n: v\n", 6);
  expect_err_named("t.yaml", s, strlen(s), MDM_ERR_TOOBIG,
                   "t.yaml: line 1: document: mapping key longer than 1024 "
                   "bytes");
  /* Exactly MDM_DOC_MAX_KEY: fine. */
  memcpy(s, "? ", 2);
  memset(s + 2, 'k', MDM_DOC_MAX_KEY);
  memcpy(s + 2 + MDM_DOC_MAX_KEY, "\n: v\n", 6);
  len = strlen(s);
  assert_true(len > MDM_DOC_MAX_KEY);
  parse_ok(&ds, s, 1);
  mdm_docset_release(&ds);
  free(s);
}

static void test_too_many_nodes(void **state)
{
  size_t n = MDM_DOC_MAX_NODES, i, len = 0;
  char *s = malloc(2 * n + 8);
  struct mdm_docset ds;
  double t0, ms;
  (void)state;
  assert_non_null(s);
  /* The list plus its n - 1 items: exactly at the bound. */
  s[len++] = '[';
  for(i = 0; i < n - 1; i++) {
    s[len++] = '1';
    s[len++] = ',';
  }
  s[len - 1] = ']';
  s[len] = '\0';
  parse_ok(&ds, s, 1);
  assert_int_equal(json_array_size(ds.docs[0].json), n - 1);
  mdm_docset_release(&ds);
  /* One more. */
  memcpy(s + len - 1, ",1]", 4);
  t0 = now_ms();
  expect_err(s, MDM_ERR_TOOBIG, "t.yaml: line 1: more than 100000 nodes");
  ms = now_ms() - t0;
  print_message("100001 nodes: rejected in %.3f ms\n", ms);
  free(s);

  /* Empty documents count too: a million "---" cannot spin for long. */
  s = malloc(4 * 1000000 + 1);
  assert_non_null(s);
  for(i = 0; i < 1000000; i++)
    memcpy(s + 4 * i, "---\n", 4);
  s[4 * i] = '\0';
  t0 = now_ms();
  /* (libyaml puts an empty document's null node on the next line) */
  expect_err(s, MDM_ERR_TOOBIG, "t.yaml: line 100002: more than 100000 "
                                "nodes");
  ms = now_ms() - t0;
  print_message("1000000 empty documents: rejected in %.3f ms\n", ms);
  free(s);
}

/* ---- validation: envelope --------------------------------------------- */

static void test_envelope_errors(void **state)
{
  (void)state;
  INVALID("- a\n", "t.yaml: line 1: document: expected a mapping");
  INVALID("kind: CompliancePolicy\nmetadata: {name: p}\nspec: {}\n",
          "t.yaml: line 1: apiVersion: required field is missing");
  INVALID("apiVersion: mdm/v2\nkind: CompliancePolicy\n"
          "metadata: {name: p}\nspec: {}\n",
          "t.yaml: line 1: apiVersion: expected 'mdm/v1' (got 'mdm/v2')");
  INVALID("apiVersion: 1\nkind: CompliancePolicy\n"
          "metadata: {name: p}\nspec: {}\n",
          "t.yaml: line 1: apiVersion: expected 'mdm/v1'");
  INVALID("apiVersion: mdm/v1\nkind: Policy\nmetadata: {name: p}\nspec: {}\n",
          "t.yaml: line 2: kind: unknown kind 'Policy' (expected one of "
          "CompliancePolicy, ConfigurationProfile, ConditionalAccessPolicy)");
  INVALID("apiVersion: mdm/v1\nkind: AppProtectionPolicy\n"
          "metadata: {name: p}\nspec: {}\n",
          "t.yaml: line 2: kind: kind 'AppProtectionPolicy' is not "
          "supported yet");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: Baseline\nspec: {}\n",
          "t.yaml: line 4: metadata.name: expected a DNS label: 1-63 of a-z, "
          "0-9 and '-', not starting or ending with '-' (got 'Baseline')");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: -x\nspec: {}\n",
          "t.yaml: line 4: metadata.name: expected a DNS label: 1-63 of a-z, "
          "0-9 and '-', not starting or ending with '-' (got '-x')");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: 12\nspec: {}\n",
          "t.yaml: line 4: metadata.name: expected a DNS label: 1-63 of a-z, "
          "0-9 and '-', not starting or ending with '-'");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaa\nspec: {}\n",   /* 70: quoted cut at 64 */
          "t.yaml: line 4: metadata.name: expected a DNS label: 1-63 of a-z, "
          "0-9 and '-', not starting or ending with '-' (got 'aaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...')");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: p\n  labels:\n    team: 1\nspec: {}\n",
          "t.yaml: line 6: metadata.labels.team: expected a string");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  name: p\n  lables: {}\nspec: {}\n",
          "t.yaml: line 5: metadata.lables: unknown field (expected one of "
          "name, labels)");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata:\n"
          "  labels: {a: b}\nspec: {}\n",
          "t.yaml: line 3: metadata.name: required field is missing");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata: {name: p}\n"
          "spec: {rules: [{name: a, fact: b, op: exists}]}\nstatus: ok\n",
          "t.yaml: line 5: status: unknown field (expected one of "
          "apiVersion, kind, metadata, spec)");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata: {name: p}\n",
          "t.yaml: line 1: spec: required field is missing");
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata: {name: p}\n"
          "spec: [a]\n",
          "t.yaml: line 4: spec: expected a mapping");
  /* A message names the document it is about, not the first one. */
  INVALID("apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata: {name: p}\n"
          "spec: {rules: [{name: a, fact: b, op: exists}]}\n"
          "---\n"
          "apiVersion: mdm/v1\nkind: CompliancePolicy\nmetadata: {name: q}\n"
          "spec: {rules: []}\n",
          "t.yaml: line 9: spec.rules: expected a non-empty list of rules");
}

/* The brief's example message, to the letter. */
static void test_brief_example(void **state)
{
  const char *text =
    "apiVersion: mdm/v1\n"
    "kind: ConfigurationProfile\n"
    "metadata: {name: corp-vpn}\n"
    "spec:\n"
    "  settings:\n"
    "    vpn:\n"
    "      port: 70000\n"
    "      remote: vpn.corp.example.com\n";
  (void)state;
  expect_err_named("policies/vpn.yaml", text, strlen(text),
                   MDM_ERR_UNPROCESSABLE,
                   "policies/vpn.yaml: line 7: spec.settings.vpn.port: "
                   "expected an integer in 1..65535");
}

/* ---- validation: CompliancePolicy ------------------------------------- */

static void test_compliance_errors(void **state)
{
  char buf[40000];
  size_t len, i;
  (void)state;
  INVALID(CP "  assign: {platforms: [linux]}\n",
          "t.yaml: line 5: spec.rules: required field is missing");
  INVALID(CP "  rules: []\n",
          "t.yaml: line 6: spec.rules: expected a non-empty list of rules");
  INVALID(CP "  rules: {name: x}\n",
          "t.yaml: line 6: spec.rules: expected a non-empty list of rules");
  INVALID(CP "  rules:\n    - x\n",
          "t.yaml: line 7: spec.rules[0]: expected a mapping");
  INVALID(CP "  rule: []\n",
          "t.yaml: line 6: spec.rule: unknown field (expected one of assign, "
          "rules)");
  INVALID(CP "  assign: {platforms: [linux, beos]}\n  rules: []\n",
          "t.yaml: line 6: spec.assign.platforms[1]: expected one of linux, "
          "android, ios, macos, windows (got 'beos')");
  INVALID(CP "  assign: {platforms: []}\n  rules: []\n",
          "t.yaml: line 6: spec.assign.platforms: expected a non-empty list "
          "of platforms");
  INVALID(CP "  assign:\n    labels: {tier: [1]}\n  rules: []\n",
          "t.yaml: line 7: spec.assign.labels.tier: expected a string");
  INVALID(CP "  assign:\n    devices: [a]\n  rules: []\n",
          "t.yaml: line 7: spec.assign.devices: unknown field (expected one "
          "of platforms, labels)");
  /* rule fields */
  INVALID(CP "  rules:\n    - fact: os.version\n      op: exists\n",
          "t.yaml: line 7: spec.rules[0].name: required field is missing");
  INVALID(CP "  rules:\n    - name: r\n      op: exists\n",
          "t.yaml: line 7: spec.rules[0].fact: required field is missing");
  INVALID(RULE "      value: '13'\n      severity: high\n",
          "t.yaml: line 11: spec.rules[0].severity: unknown field (expected "
          "one of name, fact, op, value, remediation, escalate)");
  INVALID(CP "  rules:\n    - name: Rule_1\n      fact: a\n      op: exists\n",
          "t.yaml: line 7: spec.rules[0].name: expected a DNS label: 1-63 of "
          "a-z, 0-9 and '-', not starting or ending with '-' (got "
          "'Rule_1')");
  INVALID(CP "  rules:\n    - name: r\n      fact: OS.Version\n"
          "      op: exists\n",
          "t.yaml: line 8: spec.rules[0].fact: expected a fact path such as "
          "os.version: segments of a-z, 0-9 and '_' joined by '.'");
  INVALID(CP "  rules:\n    - name: r\n      fact: os..version\n"
          "      op: exists\n",
          "t.yaml: line 8: spec.rules[0].fact: expected a fact path such as "
          "os.version: segments of a-z, 0-9 and '_' joined by '.'");
  INVALID(CP "  rules:\n    - name: r\n      fact: os.version\n"
          "      op: gte\n      value: '13'\n",
          "t.yaml: line 9: spec.rules[0].op: expected one of eq, ne, lt, le, "
          "gt, ge, version_ge, version_lt, in, not_in, is_true, is_false, "
          "exists (got 'gte')");
  /* value by operator */
  INVALID(CP "  rules:\n    - name: r\n      fact: os.version\n"
          "      op: eq\n",
          "t.yaml: line 7: spec.rules[0].value: required with op 'eq'");
  INVALID(CP "  rules:\n    - name: r\n      fact: integrity.rooted\n"
          "      op: is_false\n      value: false\n",
          "t.yaml: line 10: spec.rules[0].value: not allowed with op "
          "'is_false'");
  INVALID(CP "  rules:\n    - name: r\n      fact: model\n"
          "      op: in\n      value: Pixel\n",
          "t.yaml: line 10: spec.rules[0].value: expected a non-empty list of "
          "strings, numbers or booleans with op 'in'");
  INVALID(CP "  rules:\n    - name: r\n      fact: model\n"
          "      op: not_in\n      value: [a, [b], c]\n",
          "t.yaml: line 10: spec.rules[0].value[1]: expected a string, "
          "number or boolean");
  INVALID(RULE "      value: 13.10\n",
          "t.yaml: line 10: spec.rules[0].value: expected a version string: "
          "quote it, as a number 13.10 would read 13.1");
  INVALID(RULE "      value: latest\n",
          "t.yaml: line 10: spec.rules[0].value: expected a version such as "
          "'13.0'");
  INVALID(CP "  rules:\n    - name: r\n      fact: os.version\n"
          "      op: eq\n      value: ~\n",
          "t.yaml: line 10: spec.rules[0].value: expected a string, number "
          "or boolean");
  INVALID(CP "  rules:\n    - name: r\n      fact: security.password_age_days\n"
          "      op: lt\n      value: true\n",
          "t.yaml: line 10: spec.rules[0].value: expected a number or a "
          "string");
  /* remediation and escalation */
  INVALID(RULE "      value: '13'\n      remediation:\n"
          "        action: push_profile\n",
          "t.yaml: line 11: spec.rules[0].remediation.profile: required with "
          "action 'push_profile'");
  INVALID(RULE "      value: '13'\n      remediation:\n"
          "        action: lock\n        profile: corp-vpn\n",
          "t.yaml: line 13: spec.rules[0].remediation.profile: only allowed "
          "with action 'push_profile'");
  INVALID(RULE "      value: '13'\n      remediation:\n"
          "        action: notify\n",
          "t.yaml: line 11: spec.rules[0].remediation.notifier: required "
          "with action 'notify'");
  INVALID(RULE "      value: '13'\n      remediation: {action: reboot}\n",
          "t.yaml: line 11: spec.rules[0].remediation.action: expected one "
          "of push_profile, lock, wipe, selective_wipe, os_update, notify "
          "(got 'reboot')");
  INVALID(RULE "      value: '13'\n      escalate:\n        after: 1 day\n"
          "        notify: it\n",
          "t.yaml: line 12: spec.rules[0].escalate.after: expected a "
          "duration such as 30m, 24h or 7d");
  INVALID(RULE "      value: '13'\n      escalate:\n        after: 24\n"
          "        notify: it\n",
          "t.yaml: line 12: spec.rules[0].escalate.after: expected a "
          "duration such as 30m, 24h or 7d");
  INVALID(RULE "      value: '13'\n      escalate: {after: 0h, notify: it}\n",
          "t.yaml: line 11: spec.rules[0].escalate.after: expected a "
          "duration such as 30m, 24h or 7d");
  INVALID(RULE "      value: '13'\n      escalate: {after: 24h}\n",
          "t.yaml: line 11: spec.rules[0].escalate.notify: required field is "
          "missing");
  /* names are unique */
  INVALID(CP "  rules:\n"
          "    - {name: a, fact: x, op: exists}\n"
          "    - {name: b, fact: x, op: exists}\n"
          "    - {name: a, fact: y, op: exists}\n",
          "t.yaml: line 9: spec.rules[2].name: duplicate rule name 'a' "
          "(first at line 7)");
  /* at most 256 rules */
  len = (size_t)snprintf(buf, sizeof(buf), "%s  rules:\n", CP);
  for(i = 0; i < 257; i++)
    len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                            "    - {name: r%zu, fact: x, op: exists}\n", i);
  INVALID(buf, "t.yaml: line 6: spec.rules: more than 256 rules");
}

/* ---- validation: ConfigurationProfile --------------------------------- */

static void test_profile_errors(void **state)
{
  (void)state;
  INVALID(PROF "    {}\n",
          "t.yaml: line 6: spec.settings: expected a non-empty mapping");
  INVALID("apiVersion: mdm/v1\nkind: ConfigurationProfile\n"
          "metadata: {name: p}\nspec: {}\n",
          "t.yaml: line 4: spec.settings: required field is missing");
  /* vpn */
  INVALID(PROF "    vpn:\n      port: 1194\n",
          "t.yaml: line 7: spec.settings.vpn.remote: required field is "
          "missing");
  INVALID(PROF "    vpn: vpn.example.com\n",
          "t.yaml: line 7: spec.settings.vpn: expected a mapping");
  INVALID(PROF "    vpn:\n      remote: bad host!\n",
          "t.yaml: line 8: spec.settings.vpn.remote: expected a host name or "
          "IP address (got 'bad host!')");
  INVALID(PROF "    vpn:\n      remote: -vpn.example.com\n",
          "t.yaml: line 8: spec.settings.vpn.remote: expected a host name or "
          "IP address (got '-vpn.example.com')");
  INVALID(VPN "      port: '1194'\n",
          "t.yaml: line 9: spec.settings.vpn.port: expected an integer in "
          "1..65535");
  INVALID(VPN "      port: 0\n",
          "t.yaml: line 9: spec.settings.vpn.port: expected an integer in "
          "1..65535");
  INVALID(VPN "      port: 1194.0\n",
          "t.yaml: line 9: spec.settings.vpn.port: expected an integer in "
          "1..65535");
  INVALID(VPN "      proto: icmp\n",
          "t.yaml: line 9: spec.settings.vpn.proto: expected one of udp, "
          "tcp, udp6, tcp6 (got 'icmp')");
  INVALID(VPN "      dev: tux\n",
          "t.yaml: line 9: spec.settings.vpn.dev: expected one of tun, tap "
          "(got 'tux')");
  INVALID(VPN "      auth: SHA 256\n",
          "t.yaml: line 9: spec.settings.vpn.auth: expected a name of "
          "letters, digits and '-' such as SHA256");
  INVALID(VPN "      cipher: \"AES-256-GCM\\nup /bin/sh\"\n",
          "t.yaml: line 9: spec.settings.vpn.cipher: expected a name of "
          "letters, digits and '-' such as AES-256-GCM");
  INVALID(VPN "      persist_key: yes\n",
          "t.yaml: line 9: spec.settings.vpn.persist_key: expected true or "
          "false ('yes' is a string in YAML 1.2)");
  INVALID(VPN "      auth_user_pass: 1\n",
          "t.yaml: line 9: spec.settings.vpn.auth_user_pass: expected true "
          "or false");
  INVALID(VPN "      verb: 12\n",
          "t.yaml: line 9: spec.settings.vpn.verb: expected an integer in "
          "0..11");
  INVALID(VPN "      remote_cert_tls: peer\n",
          "t.yaml: line 9: spec.settings.vpn.remote_cert_tls: expected one "
          "of server, client (got 'peer')");
  INVALID(VPN "      ca: not a certificate\n",
          "t.yaml: line 9: spec.settings.vpn.ca: expected one or more PEM "
          "certificates (-----BEGIN CERTIFICATE----- ... -----END "
          "CERTIFICATE-----)");
  INVALID(VPN "      ca: |\n        -----BEGIN CERTIFICATE-----\n"
          "        MIIB\n        </ca>\n        -----END CERTIFICATE-----\n",
          "t.yaml: line 9: spec.settings.vpn.ca: expected one or more PEM "
          "certificates (-----BEGIN CERTIFICATE----- ... -----END "
          "CERTIFICATE-----)");
  INVALID(VPN "      compress: lz4\n",
          "t.yaml: line 9: spec.settings.vpn.compress: unknown field "
          "(expected one of remote, port, proto, dev, auth, cipher, "
          "auth_user_pass, persist_key, persist_tun, verb, ca, "
          "remote_cert_tls, extra)");
  /* vpn.extra: single lines, nothing that runs programs */
  INVALID(VPN "      extra: remote-random\n",
          "t.yaml: line 9: spec.settings.vpn.extra: expected a list of "
          "OpenVPN directives");
  INVALID(VPN "      extra:\n        - \"remote-random\\nup /tmp/x\"\n",
          "t.yaml: line 10: spec.settings.vpn.extra[0]: expected a single "
          "line");
  INVALID(VPN "      extra: [\"mssfix 1400\\r\"]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: expected a single "
          "line");
  INVALID(VPN "      extra: [\"mssfix\\x001400\"]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: contains a control "
          "character");
  INVALID(VPN "      extra: [mssfix 1400, up /tmp/x.sh]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[1]: directive 'up' is not "
          "allowed: it can run programs or write files on the device");
  INVALID(VPN "      extra:\n        - '  --script-security 2'\n",
          "t.yaml: line 10: spec.settings.vpn.extra[0]: directive "
          "'script-security' is not allowed: it can run programs or write "
          "files on the device");
  INVALID(VPN "      extra: [\"Auth-User-Pass-Verify\tx via-env\"]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: directive "
          "'Auth-User-Pass-Verify' is not allowed: it can run programs or "
          "write files on the device");
  INVALID(VPN "      extra: [plugin /usr/lib/x.so]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: directive 'plugin' is "
          "not allowed: it can run programs or write files on the device");
  INVALID(VPN "      extra: [\"<connection>\"]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: inline blocks (<tag>) "
          "are not allowed");
  INVALID(VPN "      extra: ['']\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: expected an OpenVPN "
          "directive of 1..256 bytes");
  INVALID(VPN "      extra: [1194]\n",
          "t.yaml: line 9: spec.settings.vpn.extra[0]: expected a string");
  /* password */
  INVALID(PROF "    password:\n      min_length: 0\n",
          "t.yaml: line 8: spec.settings.password.min_length: expected an "
          "integer in 1..128");
  INVALID(PROF "    password:\n      max_age_days: 3651\n",
          "t.yaml: line 8: spec.settings.password.max_age_days: expected an "
          "integer in 0..3650");
  INVALID(PROF "    password:\n      min_classes: 5\n",
          "t.yaml: line 8: spec.settings.password.min_classes: expected an "
          "integer in 0..4");
  INVALID(PROF "    password:\n      history: 5\n",
          "t.yaml: line 8: spec.settings.password.history: unknown field "
          "(expected one of min_length, max_age_days, min_classes)");
  /* encryption */
  INVALID(PROF "    encryption: optional\n",
          "t.yaml: line 7: spec.settings.encryption: expected 'required' or "
          "a mapping {required: true|false}");
  INVALID(PROF "    encryption: {required: 'true'}\n",
          "t.yaml: line 7: spec.settings.encryption.required: expected true "
          "or false");
  INVALID(PROF "    encryption: {}\n",
          "t.yaml: line 7: spec.settings.encryption.required: required field "
          "is missing");
  /* os_update */
  INVALID(PROF "    os_update:\n      window: 25:00-03:00\n",
          "t.yaml: line 8: spec.settings.os_update.window: expected a window "
          "HH:MM-HH:MM (24-hour clock; it may wrap midnight)");
  INVALID(PROF "    os_update:\n      window: 2:00-3:00\n",
          "t.yaml: line 8: spec.settings.os_update.window: expected a window "
          "HH:MM-HH:MM (24-hour clock; it may wrap midnight)");
  INVALID(PROF "    os_update:\n      window: 03:00-03:00\n",
          "t.yaml: line 8: spec.settings.os_update.window: window starts and "
          "ends at the same time");
  INVALID(PROF "    os_update:\n      deadline: tomorrow\n",
          "t.yaml: line 8: spec.settings.os_update.deadline: expected an RFC "
          "3339 UTC time such as 2026-01-31T22:00:00Z or a duration such as "
          "7d");
  INVALID(PROF "    os_update:\n      deadline: 2026-01-31T22:00:00+01:00\n",
          "t.yaml: line 8: spec.settings.os_update.deadline: expected an RFC "
          "3339 UTC time such as 2026-01-31T22:00:00Z or a duration such as "
          "7d");
  /* wifi */
  INVALID(PROF "    wifi:\n      security: open\n",
          "t.yaml: line 7: spec.settings.wifi.ssid: required field is "
          "missing");
  INVALID(PROF "    wifi:\n      ssid: abcdefghijklmnopqrstuvwxyz0123456\n"
          "      security: open\n",
          "t.yaml: line 8: spec.settings.wifi.ssid: expected a string of "
          "1..32 bytes");
  INVALID(PROF "    wifi:\n      ssid: ''\n      security: open\n",
          "t.yaml: line 8: spec.settings.wifi.ssid: expected a string of "
          "1..32 bytes");
  INVALID(PROF "    wifi:\n      ssid: Corp\n      security: wep\n",
          "t.yaml: line 9: spec.settings.wifi.security: expected one of open, "
          "wpa2-psk, wpa3-sae, wpa2-enterprise (got 'wep')");
  /* The passphrase is a secret: never in a message. */
  INVALID(PROF "    wifi:\n      ssid: Corp\n      security: wpa2-psk\n"
          "      psk: short12\n",
          "t.yaml: line 10: spec.settings.wifi.psk: expected 8..63 printable "
          "ASCII characters");
  INVALID(PROF "    wifi:\n      ssid: Corp\n      security: wpa3-sae\n",
          "t.yaml: line 7: spec.settings.wifi.psk: required with security "
          "'wpa3-sae'");
  INVALID(PROF "    wifi:\n      ssid: Corp\n      security: open\n"
          "      psk: secret-passphrase\n",
          "t.yaml: line 10: spec.settings.wifi.psk: not allowed with security "
          "'open'");
  INVALID(PROF "    wifi:\n      ssid: Corp\n      security: open\n"
          "      hidden: true\n",
          "t.yaml: line 10: spec.settings.wifi.hidden: unknown field "
          "(expected one of ssid, security, psk)");
}

static void test_valid_inline(void **state)
{
  (void)state;
  /* Unknown settings are kept, whatever their shape. */
  expect_valid(PROF "    future_thing: {a: [1, {b: c}]}\n"
               "    other: 1\n");
  expect_valid(VPN "      port: 65535\n      proto: tcp6\n      dev: tap\n"
               "      verb: 0\n      remote_cert_tls: server\n"
               "      extra: ['remote-random', 'mssfix 1400', '# up x',"
               " 'setenv UV_X 1', 'keepalive 10 60', uptime-x]\n"
               "      ca: |\n"
               "        -----BEGIN CERTIFICATE-----\n"
               "        MIIBszCCAVmgAwIBAgIUQ2p3\n"
               "        YWJjZA==\n"
               "        -----END CERTIFICATE-----\n"
               "        -----BEGIN CERTIFICATE-----\n"
               "        MIIB\n"
               "        -----END CERTIFICATE-----\n");
  expect_valid(PROF "    vpn: {remote: 192.0.2.10}\n");
  expect_valid(PROF "    vpn: {remote: '2001:db8::1'}\n");
  expect_valid(PROF "    encryption: {required: false}\n");
  expect_valid(PROF "    os_update: {window: '00:00-23:59', "
               "deadline: '2026-01-31T22:00:00Z'}\n");
  expect_valid(PROF "    wifi: {ssid: \"\\u00e9t\\u00e9\", security: "
               "wpa2-enterprise}\n");
  expect_valid(RULE "      value: 13\n");
  expect_valid(CP "  rules:\n    - name: r\n      fact: os.name\n"
               "      op: ne\n      value: Windows\n"
               "      remediation: {action: wipe}\n");
}

/* ---- docsets ---------------------------------------------------------- */

static void test_docset_duplicates(void **state)
{
  struct mdm_docset ds;
  char err[512], path[1200];
  const char *a = "apiVersion: mdm/v1\nkind: CompliancePolicy\n"
                  "metadata:\n  name: baseline\n"
                  "spec: {rules: [{name: r, fact: x, op: exists}]}\n";
  const char *b = "apiVersion: mdm/v1\nkind: ConfigurationProfile\n"
                  "metadata: {name: baseline}\n"
                  "spec: {settings: {encryption: required}}\n"
                  "---\n"
                  "apiVersion: mdm/v1\nkind: CompliancePolicy\n"
                  "metadata: {name: baseline}\n"
                  "spec: {rules: [{name: r, fact: x, op: exists}]}\n";
  (void)state;
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_parse(&ds, "policies/a.yaml", a, strlen(a), err,
                                 sizeof(err)), MDM_OK);
  assert_int_equal(mdm_doc_parse(&ds, "policies/b.yaml", b, strlen(b), err,
                                 sizeof(err)), MDM_OK);
  assert_int_equal(ds.n_docs, 3);
  assert_int_equal(mdm_docset_validate(&ds, err, sizeof(err)),
                   MDM_ERR_UNPROCESSABLE);
  assert_string_equal(err, "policies/b.yaml: line 8: metadata.name: "
                           "CompliancePolicy 'baseline' duplicates "
                           "policies/a.yaml: line 4");
  /* Each alone is fine: same name, another kind is no clash. */
  assert_int_equal(mdm_doc_validate(&ds.docs[2], err, sizeof(err)), MDM_OK);
  mdm_docset_release(&ds);

  /* From files: a directory holding both. */
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_load_path(&ds, fx("dup", path, sizeof(path)), err,
                                     sizeof(err)), MDM_OK);
  assert_int_equal(mdm_docset_validate(&ds, err, sizeof(err)),
                   MDM_ERR_UNPROCESSABLE);
  assert_non_null(strstr(err, "dup/b.yaml: line 13: metadata.name: "
                              "CompliancePolicy 'baseline' duplicates "));
  assert_non_null(strstr(err, "dup/a.yaml: line 4"));
  mdm_docset_release(&ds);
}

/* ---- fixtures --------------------------------------------------------- */

static void test_load_valid_dir(void **state)
{
  static const struct {
    const char *file, *kind, *name;
    int line;
  } want[] = {
    {"baseline.yaml", "CompliancePolicy", "baseline", 4},
    {"corp-vpn.yaml", "ConfigurationProfile", "corp-vpn", 12},
    {"mobile/kiosk.json", "ConfigurationProfile", "kiosk", 1},
    {"mobile/phones.yaml", "CompliancePolicy", "phones", 2},
    {"mobile/phones.yaml", "ConfigurationProfile", "office-wifi", 27},
    {"profiles.yaml", "ConfigurationProfile", "password", 3},
    {"profiles.yaml", "ConfigurationProfile", "disk-encryption", 14},
    {"profiles.yaml", "ConfigurationProfile", "os-update", 26},
  };
  struct mdm_docset ds;
  char err[1024], dir[1200], file[1300];
  size_t i;
  json_t *vpn, *rules;
  (void)state;
  mdm_docset_init(&ds);
  fx("valid", dir, sizeof(dir));
  if(mdm_doc_load_path(&ds, dir, err, sizeof(err)))
    fail_msg("%s", err);
  if(mdm_docset_validate(&ds, err, sizeof(err)))
    fail_msg("%s", err);
  /* Sorted, recursive, hidden files and README.txt skipped. */
  assert_int_equal(ds.n_docs, sizeof(want) / sizeof(want[0]));
  for(i = 0; i < ds.n_docs; i++) {
    snprintf(file, sizeof(file), "%s/%s", dir, want[i].file);
    assert_string_equal(ds.docs[i].file, file);
    assert_string_equal(mdm_doc_kind(&ds.docs[i]), want[i].kind);
    assert_string_equal(mdm_doc_name(&ds.docs[i]), want[i].name);
    assert_int_equal(ds.docs[i].line, want[i].line);
  }

  /* The baseline holds the four rules the brief names. */
  rules = json_object_get(json_object_get(ds.docs[0].json, "spec"), "rules");
  assert_int_equal(json_array_size(rules), 4);
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(rules, 0), "op")), "version_ge");
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(rules, 1), "fact")),
                      "encryption.root_encrypted");
  assert_int_equal(mdm_doc_line(&ds.docs[0], "spec.rules[3].fact"), 39);

  /* corp-vpn: the brief's OpenVPN client settings. */
  vpn = json_object_get(json_object_get(json_object_get(ds.docs[1].json,
                                                        "spec"), "settings"),
                        "vpn");
  {
    json_t *want_vpn = json_pack(
      "{s:s, s:i, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:i}",
      "remote", "vpn.corp.example.com", "port", 1194, "proto", "udp",
      "dev", "tun", "auth", "SHA256", "cipher", "AES-256-CBC",
      "auth_user_pass", 1, "persist_key", 1, "persist_tun", 1, "verb", 3);
    assert_true(json_equal(vpn, want_vpn));
    json_decref(want_vpn);
  }
  /* Unknown settings are kept for the agent to report. */
  assert_non_null(json_object_get(json_object_get(json_object_get(
    ds.docs[4].json, "spec"), "settings"), "app_protection"));
  /* JSON with \u escapes, a surrogate pair among them. */
  assert_string_equal(
    json_string_value(json_object_get(json_object_get(json_object_get(
      ds.docs[2].json, "metadata"), "labels"), "site")),
    "M\xc3\xbcnchen \xf0\x9f\x8f\xa2");
  mdm_docset_release(&ds);

  /* A single file by name, whatever its extension. */
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_load_path(&ds, fx("valid/profiles.yaml", file,
                                              sizeof(file)), err,
                                     sizeof(err)), MDM_OK);
  assert_int_equal(ds.n_docs, 3);
  assert_int_equal(mdm_doc_load_path(&ds, fx("valid/.draft.yaml", file,
                                              sizeof(file)), err,
                                     sizeof(err)), MDM_OK);
  assert_int_equal(ds.n_docs, 4);
  assert_int_equal(mdm_docset_validate(&ds, err, sizeof(err)),
                   MDM_ERR_UNPROCESSABLE);
  assert_non_null(strstr(err, "valid/.draft.yaml: line 2: apiVersion: "
                              "expected 'mdm/v1' (got 'mdm/v9')"));
  mdm_docset_release(&ds);
}

static void test_load_errors(void **state)
{
  static const struct {
    const char *file;
    mdm_rc rc;
    const char *msg;   /* after "<path>: " */
  } cases[] = {
    {"invalid/vpn.yaml", MDM_ERR_UNPROCESSABLE,
     "line 7: spec.settings.vpn.port: expected an integer in 1..65535"},
    {"invalid/vpn-script.yaml", MDM_ERR_UNPROCESSABLE,
     "line 12: spec.settings.vpn.extra[1]: directive 'up' is not allowed: "
     "it can run programs or write files on the device"},
    {"invalid/duplicate-key.yaml", MDM_ERR_INVAL,
     "line 11: spec.rules[0].op: duplicate key (first at line 9)"},
    {"invalid/alias-bomb.yaml", MDM_ERR_INVAL,
     "line 3: b[0]: aliases are not supported"},
    {"invalid/bad-utf8.yaml", MDM_ERR_INVAL,
     "line 4: not valid UTF-8 text (invalid trailing UTF-8 octet)"},
    {"invalid/tabs.yaml", MDM_ERR_INVAL,
     "line 7: tab in indentation (YAML indents with spaces only)"},
    {"invalid/rule-value.yaml", MDM_ERR_UNPROCESSABLE,
     "line 10: spec.rules[0].value: expected a version string: quote it, as "
     "a number 13.10 would read 13.1"},
    {"invalid/missing.yaml", MDM_ERR_NOTFOUND, "no such file or directory"},
  };
  struct mdm_docset ds;
  char err[1024], path[1200], want[2400];
  size_t i;
  mdm_rc rc;
  (void)state;
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    mdm_docset_init(&ds);
    fx(cases[i].file, path, sizeof(path));
    rc = mdm_doc_load_path(&ds, path, err, sizeof(err));
    if(!rc)
      rc = mdm_docset_validate(&ds, err, sizeof(err));
    snprintf(want, sizeof(want), "%s: %s", path, cases[i].msg);
    assert_string_equal(err, want);
    assert_int_equal(rc, cases[i].rc);
    mdm_docset_release(&ds);
  }
  /* A directory with a bad file: all or nothing. */
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_parse(&ds, "keep.yaml", "a: 1\n", 5, err,
                                 sizeof(err)), MDM_OK);
  assert_int_equal(mdm_doc_load_path(&ds, fx("invalid", path, sizeof(path)),
                                     err, sizeof(err)), MDM_ERR_INVAL);
  assert_non_null(strstr(err, "invalid/alias-bomb.yaml: line 3:"));
  assert_int_equal(ds.n_docs, 1);
  assert_string_equal(ds.docs[0].file, "keep.yaml");
  mdm_docset_release(&ds);
}

/* ---- to_yaml ---------------------------------------------------------- */

/* to_yaml(v) parses back to v. */
static void round_trip(json_t *v)
{
  struct mdm_docset ds;
  char *y = NULL, err[1024];
  assert_int_equal(mdm_doc_to_yaml(v, &y), MDM_OK);
  mdm_docset_init(&ds);
  if(mdm_doc_parse(&ds, "rt.yaml", y, strlen(y), err, sizeof(err)))
    fail_msg("%s\n--- yaml:\n%s", err, y);
  if(json_is_null(v)) {
    assert_int_equal(ds.n_docs, 0);   /* a null document is empty */
  }
  else {
    assert_int_equal(ds.n_docs, 1);
    if(!json_equal(ds.docs[0].json, v)) {
      char *a = json_dumps(v, JSON_ENCODE_ANY | JSON_SORT_KEYS);
      char *b = json_dumps(ds.docs[0].json, JSON_ENCODE_ANY | JSON_SORT_KEYS);
      fail_msg("round trip changed the value\nwant %s\ngot  %s\n--- yaml:\n%s",
               a, b, y);
    }
  }
  mdm_docset_release(&ds);
  free(y);
}

static void test_to_yaml_golden(void **state)
{
  json_t *doc = json_pack(
    "{s:{s:s, s:[i,f,b,n,{}], s:{}}, s:s, s:s, s:{s:s}, s:s, s:[]}",
    "spec", "z", "needs quotes: yes", "a", 1, 1.0, 1, "e",
    "kind", "ConfigurationProfile",
    "apiVersion", "mdm/v1",
    "metadata", "name", "p",
    "extra", "true",
    "aa", "list");
  char *y = NULL;
  (void)state;
  assert_non_null(doc);
  assert_int_equal(mdm_doc_to_yaml(doc, &y), MDM_OK);
  assert_string_equal(y,
    "apiVersion: mdm/v1\n"
    "kind: ConfigurationProfile\n"
    "metadata:\n"
    "  name: p\n"
    "spec:\n"
    "  a:\n"
    "    - 1\n"
    "    - 1.0\n"
    "    - true\n"
    "    - null\n"
    "    - {}\n"
    "  e: {}\n"
    "  z: \"needs quotes: yes\"\n"
    "aa: []\n"
    "extra: \"true\"\n");
  free(y);
  round_trip(doc);
  json_decref(doc);

  /* Lists of lists and of mappings. */
  doc = json_pack("{s:[[i,i],[],{s:i,s:[s]}]}", "k", 1, 2, "x", 1, "y", "z");
  assert_int_equal(mdm_doc_to_yaml(doc, &y), MDM_OK);
  assert_string_equal(y,
    "k:\n"
    "  - - 1\n"
    "    - 2\n"
    "  - []\n"
    "  - x: 1\n"
    "    \"y\":\n"   /* YAML 1.1 readers take a plain y for true */
    "      - z\n");
  free(y);
  round_trip(doc);
  json_decref(doc);
}

#define S(x) {x, sizeof(x) - 1}

static void test_to_yaml_strings(void **state)
{
  static const struct {
    const char *s;
    size_t n;
  } strs[] = {
    S(""), S(" "), S("a "), S(" a"), S("true"), S("True"), S("FALSE"),
    S("null"), S("Null"), S("~"), S("yes"), S("No"), S("on"), S("OFF"),
    S("y"), S("n"), S("123"), S("-1"), S("+1"), S("0x1f"), S("0o7"),
    S("0123"), S("1.5"), S(".5"), S("1e3"), S("1."), S(".inf"), S("-.Inf"),
    S(".nan"), S("1_000"), S("12:30"), S("2026-01-31"), S("a: b"), S("a:b"),
    S("a #b"), S("#a"), S("-"), S("- a"), S("-a"), S("--"), S("---"),
    S("..."), S("? a"), S("?"), S(":"), S(","), S("[a]"), S("{a}"), S("]"),
    S("}"), S("!a"), S("&a"), S("*a"), S("|"), S(">"), S("%a"), S("@a"),
    S("`a"), S("'a'"), S("\"a\""), S("a'b"), S("a\"b"), S("a\\b"), S("\\"),
    S("line\nbreak"), S("\n"), S("tab\there"), S("cr\r"), S("nul\0x"),
    S("\0"), S("\x01\x1f\x7f"), S("caf\xc3\xa9"), S("\xc2\x85nel"),
    S("ls\xe2\x80\xa8ps\xe2\x80\xa9"), S("\xef\xbb\xbf" "bom"),
    S("\xef\xbf\xbe"), S("\xc2\x80\xc2\x9f"), S("\xc2\xa0nbsp"),
    S("\xf0\x9f\x98\x80"), S("a  b"), S("a\t"), S("mdm/v1"),
    S("AES-256-CBC"), S("vpn.corp.example.com"), S("24h"), S("7d"),
    S("3des"), S("0b1"), S("1e"), S("e1"), S("inf"), S("NaN"),
    S("Infinity"), S("<<"), S("="), S("a,b"), S("a;b"), S("(a)"), S("$x"),
    S("^"), S("%"), S("plain text with spaces"), S("x: y: z"), S("  lead"),
    S("trail  "), S("2026-01-31T22:00:00Z"), S("22:00-04:00"),
  };
  size_t i;
  json_t *v;
  (void)state;
  for(i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
    json_t *doc = json_object(), *s = json_stringn(strs[i].s, strs[i].n);
    assert_non_null(s);
    json_object_set(doc, "v", s);
    if(!memchr(strs[i].s, '\0', strs[i].n))
      json_object_set(doc, strs[i].s, s);   /* as a key, too */
    json_object_set_new(doc, "l", json_pack("[O]", s));
    round_trip(doc);
    json_decref(s);
    json_decref(doc);
  }
  /* Numbers at their edges; top-level scalars and lists. */
  v = json_pack("[I,I,f,f,f,f,f,f,f]", (json_int_t)INT64_MAX,
                (json_int_t)INT64_MIN, 0.1, -0.0, 1e300, 5e-324,
                123456789.125, 1.0 / 3, -2.5);
  round_trip(v);
  json_decref(v);
  v = json_string("just a string");
  round_trip(v);
  json_decref(v);
  v = json_integer(7);
  round_trip(v);
  json_decref(v);
  round_trip(json_null());
}

/* A small deterministic generator of nasty JSON values. */
static unsigned long long rng_state = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

static json_t *rnd_string(void)
{
  static const char *const parts[] = {
    "a", "Z", "0", "9", " ", "-", ":", "#", "'", "\"", "\\", "\n", "\t",
    "?", "!", "&", "*", "|", ">", "%", "@", "`", "[", "]", "{", "}", ",",
    ".", "e", "x", "o", "_", "+", "true", "null", "~", "yes", "\xc3\xa9",
    "\xe2\x80\xa8", "\xc2\x85", "\xef\xbb\xbf", "\xf0\x9f\x98\x80", "\x01",
    "\x7f", "---", "...", "<<", "0x", "1e5", ".inf"};
  char buf[128];
  size_t len = 0, k = rnd(6), i;
  for(i = 0; i < k; i++) {
    const char *p = parts[rnd(sizeof(parts) / sizeof(parts[0]))];
    size_t n = strlen(p);
    if(len + n >= sizeof(buf))
      break;
    memcpy(buf + len, p, n);
    len += n;
  }
  return json_stringn(buf, len);
}

static json_t *rnd_value(int depth)
{
  unsigned k = rnd(depth > 4 ? 5 : 7);
  json_t *v;
  size_t i, n;
  switch(k) {
  case 0: return rnd_string();
  case 1: return json_integer((json_int_t)rnd(2000000) - 1000000);
  case 2: return json_real(((double)rnd(1000000) - 500000) / (1 + rnd(1000)));
  case 3: return json_boolean(rnd(2));
  case 4: return rnd(2) ? json_null() : rnd_string();
  case 5:
    v = json_array();
    n = rnd(4);
    for(i = 0; i < n; i++)
      json_array_append_new(v, rnd_value(depth + 1));
    return v;
  default:
    v = json_object();
    n = rnd(4);
    for(i = 0; i < n; i++) {
      json_t *key = rnd_string();
      json_object_set_new(v, json_string_value(key), rnd_value(depth + 1));
      json_decref(key);
    }
    return v;
  }
}

static void test_to_yaml_random(void **state)
{
  int i;
  (void)state;
  for(i = 0; i < 3000; i++) {
    json_t *doc = json_object();
    json_object_set_new(doc, "v", rnd_value(0));
    round_trip(doc);
    json_decref(doc);
  }
}

static void test_to_yaml_fixtures(void **state)
{
  struct mdm_docset ds;
  char err[1024], dir[1200];
  size_t i;
  (void)state;
  mdm_docset_init(&ds);
  assert_int_equal(mdm_doc_load_path(&ds, fx("valid", dir, sizeof(dir)), err,
                                     sizeof(err)), MDM_OK);
  assert_true(ds.n_docs >= 8);
  for(i = 0; i < ds.n_docs; i++) {
    char *y = NULL;
    struct mdm_docset back;
    round_trip(ds.docs[i].json);
    /* The rendering validates as the original did. */
    assert_int_equal(mdm_doc_to_yaml(ds.docs[i].json, &y), MDM_OK);
    mdm_docset_init(&back);
    assert_int_equal(mdm_doc_parse(&back, "export.yaml", y, strlen(y), err,
                                   sizeof(err)), MDM_OK);
    if(mdm_docset_validate(&back, err, sizeof(err)))
      fail_msg("%s", err);
    /* Rendering is stable: the second time gives the same text. */
    {
      char *y2 = NULL;
      assert_int_equal(mdm_doc_to_yaml(back.docs[0].json, &y2), MDM_OK);
      assert_string_equal(y, y2);
      free(y2);
    }
    mdm_docset_release(&back);
    free(y);
  }
  mdm_docset_release(&ds);
}

static void test_long_key_round_trip(void **state)
{
  char key[MDM_DOC_MAX_KEY + 1];
  json_t *doc;
  (void)state;
  /* Over libyaml's 1024-character implicit keys once quoted and escaped:
   * written as an explicit "? key". */
  memset(key, '\x01', 300);
  memset(key + 300, 'k', sizeof(key) - 301);
  key[sizeof(key) - 1] = '\0';
  doc = json_object();
  json_object_set_new(doc, key, json_pack("{s:[i]}", key, 1));
  round_trip(doc);
  json_decref(doc);
}

static void test_kinds_table(void **state)
{
  (void)state;
  assert_true(mdm_doc_kind_known("CompliancePolicy"));
  assert_true(mdm_doc_kind_known("ConfigurationProfile"));
  assert_true(mdm_doc_kind_known("ConditionalAccessPolicy"));
  assert_false(mdm_doc_kind_known("AppProtectionPolicy"));
  assert_false(mdm_doc_kind_known("compliancepolicy"));
  assert_false(mdm_doc_kind_known(NULL));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scalar_types),
    cmocka_unit_test(test_multi_document),
    cmocka_unit_test(test_json_input),
    cmocka_unit_test(test_doc_line),
    cmocka_unit_test(test_parse_errors),
    cmocka_unit_test(test_alias_bomb),
    cmocka_unit_test(test_deep_nesting),
    cmocka_unit_test(test_too_big),
    cmocka_unit_test(test_huge_scalar_and_key),
    cmocka_unit_test(test_too_many_nodes),
    cmocka_unit_test(test_envelope_errors),
    cmocka_unit_test(test_brief_example),
    cmocka_unit_test(test_compliance_errors),
    cmocka_unit_test(test_profile_errors),
    cmocka_unit_test(test_valid_inline),
    cmocka_unit_test(test_docset_duplicates),
    cmocka_unit_test(test_load_valid_dir),
    cmocka_unit_test(test_load_errors),
    cmocka_unit_test(test_to_yaml_golden),
    cmocka_unit_test(test_to_yaml_strings),
    cmocka_unit_test(test_to_yaml_random),
    cmocka_unit_test(test_to_yaml_fixtures),
    cmocka_unit_test(test_long_key_round_trip),
    cmocka_unit_test(test_kinds_table),
  };
  return cmocka_run_group_tests(tests, setup_fixtures, NULL);
}
