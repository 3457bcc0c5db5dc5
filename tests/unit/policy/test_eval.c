/*
 * test_eval.c: unit tests for src/policy/eval.c, the compliance evaluator:
 * a table of (facts, rule, verdict, message) cases over every operator,
 * then assignment (platforms, label selectors), the device verdict over
 * several policies, fact paths, the reason objects, message bounds, and
 * compile errors on malformed documents.
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
#include "policy/eval.h"

#define C MDM_VERDICT_COMPLIANT
#define U MDM_VERDICT_UNKNOWN
#define N MDM_VERDICT_NONCOMPLIANT

/* The facts of a Debian laptop (CONTRACT §4) plus odd values to test. */
static const char base_facts[] =
  "{\"serial\": \"S1\", \"platform\": \"linux\", \"hostname\": \"h1\","
  " \"os\": {\"name\": \"Debian GNU/Linux\", \"id\": \"debian\","
  "          \"version\": \"12\", \"build\": null,"
  "          \"kernel\": \"6.1.0-26-amd64\"},"
  " \"encryption\": {\"root_encrypted\": true, \"method\": \"luks2\"},"
  " \"integrity\": {\"rooted\": false, \"secure_boot\": null},"
  " \"security\": {\"firewall_enabled\": true, \"password_age_days\": 12,"
  "                \"min_len\": 12.0},"
  " \"network\": {\"ssid\": null, \"vpn_connected\": false},"
  " \"disks\": [{\"name\": \"sda\", \"encrypted\": true},"
  "             {\"name\": \"sdb\", \"encrypted\": false}],"
  " \"weird\": {\"obj\": {\"a\": 1}, \"arr\": [1, 2], \"numstr\": \"13\","
  "             \"bool_str\": \"true\", \"empty\": \"\", \"one\": 1}}";

struct ecase {
  const char *facts;    /* NULL: base_facts */
  const char *rule;     /* without "name": the table adds "r" */
  enum mdm_verdict want;
  const char *msg;      /* exact message; NULL when compliant */
};

static const struct ecase cases[] = {
  /* ---- version_ge / version_lt ---- */
  {NULL, "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"12\"}",
   C, NULL},
  {NULL, "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   N, "os.version 12 < 13.0"},
  {"{\"os\": {\"version\": \"11\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   N, "os.version 11 < 13.0"},
  {"{\"os\": {\"version\": \"13\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   C, NULL},
  {"{\"os\": {\"version\": \"14.4.1\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": 13}", C, NULL},
  {"{\"os\": {\"version\": \"12.7\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": 13}",
   N, "os.version 12.7 < 13"},
  {"{\"os\": {\"version\": 14}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   C, NULL},
  {"{\"os\": {\"version\": 22.04}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"22.10\"}",
   N, "os.version 22.04 < 22.10"},
  {"{\"os\": {\"version\": null}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   U, "os.version is null (unknown)"},
  {"{\"os\": {}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   U, "os.version is missing (unknown)"},
  {"{\"os\": {\"version\": \"abc\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   U, "os.version \"abc\" is not a version (unknown)"},
  {"{\"os\": {\"version\": \"\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_lt\", \"value\": \"13.0\"}",
   U, "os.version \"\" is not a version (unknown)"},
  {"{\"os\": {\"version\": true}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   U, "os.version is true, expected a version (unknown)"},
  {"{\"os\": {\"version\": {\"major\": 14}}}",
   "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"13.0\"}",
   U, "os.version is an object, expected a version (unknown)"},
  {NULL, "{\"fact\": \"os.kernel\", \"op\": \"version_ge\", \"value\": \"6.1.0-26\"}",
   C, NULL},
  {NULL, "{\"fact\": \"os.kernel\", \"op\": \"version_ge\", \"value\": \"6.1.0-27\"}",
   N, "os.kernel 6.1.0-26-amd64 < 6.1.0-27"},
  {"{\"os\": {\"kernel\": \"5.15.0-105-generic\"}}",
   "{\"fact\": \"os.kernel\", \"op\": \"version_lt\", \"value\": \"6.1.0-26-amd64\"}",
   C, NULL},
  {"{\"os\": {\"version\": \"14\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_lt\", \"value\": \"14\"}",
   N, "os.version 14 >= 14"},
  {"{\"os\": {\"version\": \"13.9\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_lt\", \"value\": \"14\"}",
   C, NULL},
  {"{\"os\": {\"version\": \"14.0-rc1\"}}",
   "{\"fact\": \"os.version\", \"op\": \"version_lt\", \"value\": \"14\"}",
   C, NULL},
  {"{\"os\": {}}",
   "{\"fact\": \"os.version\", \"op\": \"version_lt\", \"value\": \"14\"}",
   U, "os.version is missing (unknown)"},

  /* ---- eq / ne ---- */
  {NULL, "{\"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"debian\"}", C, NULL},
  {NULL, "{\"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"ubuntu\"}",
   N, "os.id \"debian\" != \"ubuntu\""},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"eq\", \"value\": 12.0}",
   C, NULL},
  {NULL, "{\"fact\": \"security.min_len\", \"op\": \"eq\", \"value\": 12}", C, NULL},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"eq\", \"value\": 13}",
   N, "security.password_age_days 12 != 13"},
  {NULL, "{\"fact\": \"weird.numstr\", \"op\": \"eq\", \"value\": 13}", C, NULL},
  {NULL, "{\"fact\": \"weird.one\", \"op\": \"eq\", \"value\": \"1\"}", C, NULL},
  {"{\"os\": {\"version\": \"13.0\"}}",
   "{\"fact\": \"os.version\", \"op\": \"eq\", \"value\": 13}",
   N, "os.version \"13.0\" != 13"},
  {"{\"os\": {\"version\": \"13.5\"}}",
   "{\"fact\": \"os.version\", \"op\": \"eq\", \"value\": 13.5}", C, NULL},
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"eq\", \"value\": true}",
   C, NULL},
  {NULL, "{\"fact\": \"network.vpn_connected\", \"op\": \"eq\", \"value\": true}",
   N, "network.vpn_connected false != true"},
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"eq\", \"value\": \"true\"}",
   U, "encryption.root_encrypted true cannot be compared with \"true\" (unknown)"},
  {NULL, "{\"fact\": \"weird.one\", \"op\": \"ne\", \"value\": true}",
   U, "weird.one 1 cannot be compared with true (unknown)"},
  {NULL, "{\"fact\": \"weird.obj\", \"op\": \"eq\", \"value\": 1}",
   U, "weird.obj {...} cannot be compared with 1 (unknown)"},
  {NULL, "{\"fact\": \"os.id\", \"op\": \"ne\", \"value\": \"arch\"}", C, NULL},
  {NULL, "{\"fact\": \"os.id\", \"op\": \"ne\", \"value\": \"debian\"}",
   N, "os.id \"debian\" == \"debian\""},
  {NULL, "{\"fact\": \"network.ssid\", \"op\": \"ne\", \"value\": \"evil\"}",
   U, "network.ssid is null (unknown)"},
  {NULL, "{\"fact\": \"security.nothing\", \"op\": \"eq\", \"value\": 1}",
   U, "security.nothing is missing (unknown)"},
  {"{\"os\": {\"id\": \"a\\\"b\\\\c\"}}",
   "{\"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"x\"}",
   N, "os.id \"a\\\"b\\\\c\" != \"x\""},
  {"{\"os\": {\"id\": \"a\\nb\"}}",
   "{\"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"x\"}",
   N, "os.id \"a\\u000ab\" != \"x\""},
  {"{\"os\": {\"id\": \"d\\u00e9bian\"}}",
   "{\"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"debian\"}",
   N, "os.id \"d\xc3\xa9" "bian\" != \"debian\""},

  /* ---- lt / le / gt / ge ---- */
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"lt\", \"value\": 90}",
   C, NULL},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"lt\", \"value\": 12}",
   N, "security.password_age_days 12 >= 12"},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"gt\", \"value\": 90}",
   N, "security.password_age_days 12 <= 90"},
  {"{\"security\": {\"password_age_days\": 120}}",
   "{\"fact\": \"security.password_age_days\", \"op\": \"le\", \"value\": 90}",
   N, "security.password_age_days 120 > 90"},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"le\", \"value\": 12}",
   C, NULL},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"ge\", \"value\": 12.5}",
   N, "security.password_age_days 12 < 12.5"},
  {"{\"security\": {\"password_age_days\": 12.5}}",
   "{\"fact\": \"security.password_age_days\", \"op\": \"gt\", \"value\": 12}",
   C, NULL},
  {NULL, "{\"fact\": \"os.version\", \"op\": \"ge\", \"value\": \"9\"}", C, NULL},
  {NULL, "{\"fact\": \"os.version\", \"op\": \"lt\", \"value\": \"9\"}",
   N, "os.version \"12\" >= \"9\""},
  {NULL, "{\"fact\": \"os.version\", \"op\": \"ge\", \"value\": 13}",
   N, "os.version \"12\" < 13"},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"ge\", \"value\": \"10\"}",
   C, NULL},
  {NULL, "{\"fact\": \"os.name\", \"op\": \"lt\", \"value\": \"Fedora\"}", C, NULL},
  {NULL, "{\"fact\": \"os.name\", \"op\": \"gt\", \"value\": \"Fedora\"}",
   N, "os.name \"Debian GNU/Linux\" <= \"Fedora\""},
  {NULL, "{\"fact\": \"os.name\", \"op\": \"gt\", \"value\": 5}",
   U, "os.name \"Debian GNU/Linux\" cannot be compared with 5 (unknown)"},
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"lt\", \"value\": 1}",
   U, "encryption.root_encrypted true cannot be compared with 1 (unknown)"},
  {NULL, "{\"fact\": \"weird.arr\", \"op\": \"gt\", \"value\": 0}",
   U, "weird.arr [1,2] cannot be compared with 0 (unknown)"},
  {NULL, "{\"fact\": \"integrity.secure_boot\", \"op\": \"ge\", \"value\": 1}",
   U, "integrity.secure_boot is null (unknown)"},

  /* ---- in / not_in ---- */
  {NULL, "{\"fact\": \"os.id\", \"op\": \"in\", \"value\": [\"debian\", \"ubuntu\"]}",
   C, NULL},
  {"{\"os\": {\"id\": \"arch\"}}",
   "{\"fact\": \"os.id\", \"op\": \"in\", \"value\": [\"debian\", \"ubuntu\"]}",
   N, "os.id \"arch\" not in [\"debian\",\"ubuntu\"]"},
  {NULL, "{\"fact\": \"os.id\", \"op\": \"not_in\", \"value\": [\"debian\", \"ubuntu\"]}",
   N, "os.id \"debian\" in [\"debian\",\"ubuntu\"]"},
  {"{\"os\": {\"id\": \"arch\"}}",
   "{\"fact\": \"os.id\", \"op\": \"not_in\", \"value\": [\"debian\", \"ubuntu\"]}",
   C, NULL},
  {NULL, "{\"fact\": \"os.version\", \"op\": \"in\", \"value\": [11, 12]}", C, NULL},
  {NULL, "{\"fact\": \"security.password_age_days\", \"op\": \"in\", \"value\": [1, 2.5, \"x\"]}",
   N, "security.password_age_days 12 not in [1,2.5,\"x\"]"},
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"in\", \"value\": [\"yes\", \"no\"]}",
   U, "encryption.root_encrypted true cannot be compared with [\"yes\",\"no\"] (unknown)"},
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"in\", \"value\": [\"yes\", true]}",
   C, NULL},
  {"{\"os\": {\"id\": null}}",
   "{\"fact\": \"os.id\", \"op\": \"in\", \"value\": [\"debian\"]}",
   U, "os.id is null (unknown)"},
  {NULL, "{\"fact\": \"weird.obj\", \"op\": \"not_in\", \"value\": [\"a\"]}",
   U, "weird.obj {...} cannot be compared with [\"a\"] (unknown)"},
  {"{}", "{\"fact\": \"os.id\", \"op\": \"not_in\", \"value\": [\"a\"]}",
   U, "os.id is missing (unknown)"},

  /* ---- is_true / is_false ---- */
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"is_true\"}", C, NULL},
  {"{\"encryption\": {\"root_encrypted\": false}}",
   "{\"fact\": \"encryption.root_encrypted\", \"op\": \"is_true\"}",
   N, "encryption.root_encrypted is false, expected true"},
  {NULL, "{\"fact\": \"integrity.rooted\", \"op\": \"is_false\"}", C, NULL},
  {"{\"integrity\": {\"rooted\": true}}",
   "{\"fact\": \"integrity.rooted\", \"op\": \"is_false\"}",
   N, "integrity.rooted is true, expected false"},
  {"{\"integrity\": {\"rooted\": null}}",
   "{\"fact\": \"integrity.rooted\", \"op\": \"is_false\"}",
   U, "integrity.rooted is null (unknown)"},
  {NULL, "{\"fact\": \"weird.bool_str\", \"op\": \"is_true\"}",
   U, "weird.bool_str is \"true\", expected a boolean (unknown)"},
  {NULL, "{\"fact\": \"weird.one\", \"op\": \"is_true\"}",
   U, "weird.one is 1, expected a boolean (unknown)"},
  {NULL, "{\"fact\": \"weird.numstr\", \"op\": \"is_false\"}",
   U, "weird.numstr is \"13\", expected a boolean (unknown)"},
  {"{\"security\": {}}",
   "{\"fact\": \"security.firewall_enabled\", \"op\": \"is_true\"}",
   U, "security.firewall_enabled is missing (unknown)"},
  /* a value given to is_true is ignored */
  {NULL, "{\"fact\": \"encryption.root_encrypted\", \"op\": \"is_true\", \"value\": false}",
   C, NULL},

  /* ---- exists ---- */
  {NULL, "{\"fact\": \"os.kernel\", \"op\": \"exists\"}", C, NULL},
  {NULL, "{\"fact\": \"os.build\", \"op\": \"exists\"}", N, "os.build is null"},
  {NULL, "{\"fact\": \"os.nothing\", \"op\": \"exists\"}", N, "os.nothing is missing"},
  {NULL, "{\"fact\": \"weird.empty\", \"op\": \"exists\"}", C, NULL},
  {NULL, "{\"fact\": \"network.vpn_connected\", \"op\": \"exists\"}", C, NULL},
  {NULL, "{\"fact\": \"weird.obj\", \"op\": \"exists\"}", C, NULL},

  /* ---- paths ---- */
  {NULL, "{\"fact\": \"platform\", \"op\": \"eq\", \"value\": \"linux\"}", C, NULL},
  {NULL, "{\"fact\": \"disks.0.encrypted\", \"op\": \"is_true\"}", C, NULL},
  {NULL, "{\"fact\": \"disks.1.encrypted\", \"op\": \"is_true\"}",
   N, "disks.1.encrypted is false, expected true"},
  {NULL, "{\"fact\": \"disks.5.encrypted\", \"op\": \"is_true\"}",
   U, "disks.5.encrypted is missing (unknown)"},
  {NULL, "{\"fact\": \"disks.name\", \"op\": \"exists\"}",
   N, "disks.name is missing"},
  {NULL, "{\"fact\": \"os.version.major\", \"op\": \"exists\"}",
   N, "os.version.major is missing"},
  {"{\"disks\": {\"0\": {\"x\": true}}}",
   "{\"fact\": \"disks.0.x\", \"op\": \"is_true\"}", C, NULL},
  {"{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": 5}}}}}",
   "{\"fact\": \"a.b.c.d.e\", \"op\": \"ge\", \"value\": 5}", C, NULL},
  {"{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": 5}}}}}",
   "{\"fact\": \"a.b.c.d.e\", \"op\": \"gt\", \"value\": 5}",
   N, "a.b.c.d.e 5 <= 5"},
  {"[1, 2]", "{\"fact\": \"os.version\", \"op\": \"version_ge\", \"value\": \"1\"}",
   U, "os.version is missing (unknown)"},
  {"\"text\"", "{\"fact\": \"os\", \"op\": \"exists\"}", N, "os is missing"},
};

static json_t *load(const char *text)
{
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
  if(!j)
    fail_msg("bad test JSON: %s: %s", text, jerr.text);
  return j;
}

/* A CompliancePolicy document named name with rules (a JSON array text)
 * and spec.assign (JSON text, or NULL for none).  Caller frees. */
static json_t *policy_doc(const char *name, const char *rules,
                          const char *assign)
{
  json_t *doc = json_pack("{s:s, s:s, s:{s:s}, s:{s:o}}",
                          "apiVersion", "mdm/v1", "kind", "CompliancePolicy",
                          "metadata", "name", name,
                          "spec", "rules", load(rules));
  assert_non_null(doc);
  if(assign)
    json_object_set_new(json_object_get(doc, "spec"), "assign", load(assign));
  return doc;
}

static struct mdm_cpolicy *policy(const char *name, const char *rules,
                                  const char *assign)
{
  struct mdm_cpolicy *p = NULL;
  char err[256];
  json_t *doc = policy_doc(name, rules, assign);
  if(mdm_cpolicy_compile(doc, &p, err, sizeof(err)) != MDM_OK)
    fail_msg("compile %s: %s", rules, err);
  json_decref(doc);
  assert_non_null(p);
  return p;
}

static const char *reason_str(json_t *reason, const char *key)
{
  json_t *v = json_object_get(reason, key);
  if(!json_is_string(v))
    fail_msg("reason has no string \"%s\"", key);
  return json_string_value(v);
}

/* ---- the table ---------------------------------------------------------- */

static void test_eval_table(void **state)
{
  size_t i, n = sizeof(cases) / sizeof(cases[0]);
  int n_c = 0, n_n = 0, n_u = 0;
  (void)state;
  for(i = 0; i < n; i++) {
    const struct ecase *k = &cases[i];
    json_t *facts = load(k->facts ? k->facts : base_facts);
    json_t *reasons = json_array(), *rule = load(k->rule), *rules, *doc;
    json_t *reason, *fact_rule_value, *actual, *want_actual;
    struct mdm_cpolicy *p = NULL;
    enum mdm_verdict v;
    char err[256];

    json_object_set_new(rule, "name", json_string("r"));
    fact_rule_value = json_object_get(rule, "value");
    rules = json_pack("[O]", rule);
    doc = policy_doc("t", "[]", NULL);
    json_object_set_new(json_object_get(doc, "spec"), "rules", rules);
    if(mdm_cpolicy_compile(doc, &p, err, sizeof(err)) != MDM_OK)
      fail_msg("case %zu: compile: %s", i, err);

    v = mdm_cpolicy_eval(p, facts, reasons);
    if(v != k->want)
      fail_msg("case %zu (%s on %s): verdict %s, want %s", i, k->rule,
               k->facts ? k->facts : "base", mdm_verdict_name(v),
               mdm_verdict_name(k->want));
    /* the same without reasons */
    assert_int_equal(mdm_cpolicy_eval(p, facts, NULL), k->want);
    if(k->want == C) {
      assert_int_equal(json_array_size(reasons), 0);
      n_c++;
    }
    else {
      assert_int_equal(json_array_size(reasons), 1);
      reason = json_array_get(reasons, 0);
      if(strcmp(reason_str(reason, "message"), k->msg))
        fail_msg("case %zu (%s): message '%s', want '%s'", i, k->rule,
                 reason_str(reason, "message"), k->msg);
      assert_string_equal(reason_str(reason, "policy"), "t");
      assert_string_equal(reason_str(reason, "rule"), "r");
      assert_string_equal(reason_str(reason, "fact"),
                          json_string_value(json_object_get(rule, "fact")));
      assert_string_equal(reason_str(reason, "op"),
                          json_string_value(json_object_get(rule, "op")));
      assert_string_equal(reason_str(reason, "state"),
                          k->want == N ? "noncompliant" : "unknown");
      actual = json_object_get(reason, "actual");
      want_actual = mdm_fact_get(facts,
                      json_string_value(json_object_get(rule, "fact")));
      assert_non_null(actual);
      if(want_actual)
        assert_true(json_equal(actual, want_actual));
      else
        assert_true(json_is_null(actual));
      if(fact_rule_value && strcmp(reason_str(reason, "op"), "is_true") &&
         strcmp(reason_str(reason, "op"), "is_false"))
        assert_true(json_equal(json_object_get(reason, "expected"),
                               fact_rule_value));
      if(k->want == N)
        n_n++;
      else
        n_u++;
    }
    mdm_cpolicy_free(p);
    json_decref(doc);
    json_decref(rule);
    json_decref(reasons);
    json_decref(facts);
  }
  /* every verdict is well represented */
  assert_true(n_c >= 20);
  assert_true(n_n >= 20);
  assert_true(n_u >= 20);
}

/* One reason object, whole. */
static void test_eval_reason_object(void **state)
{
  struct mdm_cpolicy *p = policy("baseline",
    "[{\"name\": \"os-min\", \"fact\": \"os.version\", \"op\": \"version_ge\","
    "  \"value\": \"13.0\"},"
    " {\"name\": \"not-rooted\", \"fact\": \"integrity.rooted\","
    "  \"op\": \"is_false\"},"
    " {\"name\": \"disk\", \"fact\": \"encryption.root_encrypted\","
    "  \"op\": \"is_true\"}]", NULL);
  json_t *facts = load("{\"os\": {\"version\": \"11\"},"
                       " \"integrity\": {\"rooted\": null},"
                       " \"encryption\": {\"root_encrypted\": true}}");
  json_t *reasons = json_array();
  json_t *want = load(
    "[{\"policy\": \"baseline\", \"rule\": \"os-min\", \"fact\": \"os.version\","
    "  \"op\": \"version_ge\", \"expected\": \"13.0\", \"actual\": \"11\","
    "  \"state\": \"noncompliant\", \"message\": \"os.version 11 < 13.0\"},"
    " {\"policy\": \"baseline\", \"rule\": \"not-rooted\","
    "  \"fact\": \"integrity.rooted\", \"op\": \"is_false\", \"expected\": false,"
    "  \"actual\": null, \"state\": \"unknown\","
    "  \"message\": \"integrity.rooted is null (unknown)\"}]");
  (void)state;
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  if(!json_equal(reasons, want)) {
    char *got = json_dumps(reasons, 0);
    fail_msg("reasons %s", got);
  }
  /* reasons are appended, never replaced */
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  assert_int_equal(json_array_size(reasons), 4);
  /* the reasons own their values: they outlive facts and the policy */
  mdm_cpolicy_free(p);
  json_decref(facts);
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(reasons, 2), "actual")), "11");
  json_decref(want);
  json_decref(reasons);
}

/* Long and odd values are cut, at a character boundary, and the message
 * stays valid UTF-8 of bounded length. */
static void test_eval_message_bounds(void **state)
{
  struct mdm_cpolicy *p = policy("t",
    "[{\"name\": \"r\", \"fact\": \"os.id\", \"op\": \"eq\", \"value\": \"x\"}]",
    NULL);
  char big[2001];
  json_t *facts, *reasons;
  const char *m;
  size_t i;
  (void)state;
  for(i = 0; i < sizeof(big) - 1; i++)
    big[i] = (i % 2) ? '\xa9' : '\xc3';   /* "ééé..." */
  big[sizeof(big) - 1] = '\0';
  facts = json_pack("{s:{s:s}}", "os", "id", big);
  assert_non_null(facts);
  reasons = json_array();
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  m = reason_str(json_array_get(reasons, 0), "message");
  /* the first 80 bytes of the string: 40 characters of 2 bytes */
  assert_int_equal(strlen(m), strlen("os.id \"") + 80 +
                   strlen("...\" != \"x\""));
  assert_memory_equal(m, "os.id \"", 7);
  assert_memory_equal(m + 7, big, 80);
  assert_string_equal(m + 87, "...\" != \"x\"");
  /* the whole value is still in "actual" */
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(reasons, 0), "actual")), big);
  json_decref(reasons);
  json_decref(facts);

  /* a cut that would fall inside a character falls before it: "a" and
   * then 2-byte characters, so byte 80 is the middle of one */
  {
    char odd[200];
    odd[0] = 'a';
    for(i = 1; i + 1 < sizeof(odd); i += 2) {
      odd[i] = '\xc3';
      odd[i + 1] = '\xa9';
    }
    odd[sizeof(odd) - 1] = '\0';
    facts = json_pack("{s:{s:s}}", "os", "id", odd);
    assert_non_null(facts);
    reasons = json_array();
    assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
    m = reason_str(json_array_get(reasons, 0), "message");
    assert_memory_equal(m + 7, odd, 79);
    assert_string_equal(m + 86, "...\" != \"x\"");
    json_decref(reasons);
    json_decref(facts);
  }

  /* a long in-list */
  mdm_cpolicy_free(p);
  {
    json_t *list = json_array(), *doc;
    char err[128];
    for(i = 0; i < 500; i++)
      json_array_append_new(list, json_sprintf("item-%zu", i));
    doc = policy_doc("t", "[{\"name\": \"r\", \"fact\": \"os.id\","
                     " \"op\": \"in\", \"value\": [\"a\"]}]", NULL);
    json_object_set_new(json_array_get(json_object_get(
      json_object_get(doc, "spec"), "rules"), 0), "value", list);
    assert_int_equal(mdm_cpolicy_compile(doc, &p, err, sizeof(err)), MDM_OK);
    json_decref(doc);
  }
  facts = load("{\"os\": {\"id\": \"arch\"}}");
  reasons = json_array();
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  m = reason_str(json_array_get(reasons, 0), "message");
  assert_true(strlen(m) < 260);
  assert_memory_equal(m, "os.id \"arch\" not in [\"item-0\",\"item-1\",", 38);
  assert_string_equal(m + strlen(m) - 3, "...");
  json_decref(reasons);
  json_decref(facts);
  mdm_cpolicy_free(p);
}

/* ---- the whole example document ----------------------------------------- */

static const char example[] =
  "{\"apiVersion\": \"mdm/v1\", \"kind\": \"CompliancePolicy\","
  " \"metadata\": {\"name\": \"baseline\", \"labels\": {\"team\": \"it\"}},"
  " \"spec\": {"
  "   \"assign\": {\"platforms\": [\"linux\", \"macos\"],"
  "              \"labels\": {\"dept\": \"sales\"}},"
  "   \"rules\": ["
  "     {\"name\": \"os-min\", \"fact\": \"os.version\", \"op\": \"version_ge\","
  "      \"value\": \"13.0\"},"
  "     {\"name\": \"disk\", \"fact\": \"encryption.root_encrypted\","
  "      \"op\": \"is_true\","
  "      \"remediation\": {\"action\": \"push_profile\","
  "                       \"profile\": \"encryption\"},"
  "      \"escalate\": {\"after\": \"24h\", \"notify\": \"it-email\"}},"
  "     {\"name\": \"not-rooted\", \"fact\": \"integrity.rooted\","
  "      \"op\": \"is_false\"},"
  "     {\"name\": \"kernel\", \"fact\": \"os.kernel\", \"op\": \"exists\"},"
  "     {\"name\": \"os-family\", \"fact\": \"os.id\", \"op\": \"in\","
  "      \"value\": [\"debian\", \"ubuntu\"]}"
  "   ]}}";

static void test_compile_example(void **state)
{
  json_t *doc = load(example), *facts, *reasons, *want;
  struct mdm_cpolicy *p = NULL;
  char err[256] = "x";
  (void)state;
  assert_int_equal(mdm_cpolicy_compile(doc, &p, err, sizeof(err)), MDM_OK);
  assert_string_equal(err, "");
  json_decref(doc);   /* the compiled policy keeps its own copies */
  assert_string_equal(mdm_cpolicy_name(p), "baseline");
  assert_int_equal(mdm_cpolicy_n_rules(p), 5);
  assert_string_equal(mdm_cpolicy_rule_name(p, 0), "os-min");
  assert_string_equal(mdm_cpolicy_rule_name(p, 4), "os-family");
  assert_null(mdm_cpolicy_rule_name(p, 5));
  assert_null(mdm_cpolicy_rule_remediation(p, 0));
  assert_null(mdm_cpolicy_rule_escalate(p, 0));
  want = load("{\"action\": \"push_profile\", \"profile\": \"encryption\"}");
  assert_true(json_equal(mdm_cpolicy_rule_remediation(p, 1), want));
  json_decref(want);
  want = load("{\"after\": \"24h\", \"notify\": \"it-email\"}");
  assert_true(json_equal(mdm_cpolicy_rule_escalate(p, 1), want));
  json_decref(want);
  assert_null(mdm_cpolicy_rule_remediation(p, 99));

  /* Debian 12 is older than 13.0: only os-min fails */
  facts = load(base_facts);
  reasons = json_array();
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  assert_int_equal(json_array_size(reasons), 1);
  assert_string_equal(reason_str(json_array_get(reasons, 0), "rule"),
                      "os-min");
  json_decref(reasons);
  json_decref(facts);

  facts = load("{\"os\": {\"version\": \"13.1\", \"id\": \"ubuntu\","
               "         \"kernel\": \"6.8.0-45-generic\"},"
               " \"encryption\": {\"root_encrypted\": true},"
               " \"integrity\": {\"rooted\": false}}");
  reasons = json_array();
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), C);
  assert_int_equal(json_array_size(reasons), 0);
  json_decref(reasons);
  json_decref(facts);

  /* nothing reported: every rule unknown, except exists which is a no */
  facts = load("{}");
  reasons = json_array();
  assert_int_equal(mdm_cpolicy_eval(p, facts, reasons), N);
  assert_int_equal(json_array_size(reasons), 5);
  assert_string_equal(reason_str(json_array_get(reasons, 3), "state"),
                      "noncompliant");
  assert_string_equal(reason_str(json_array_get(reasons, 0), "state"),
                      "unknown");
  json_decref(reasons);
  /* NULL facts read as no facts */
  assert_int_equal(mdm_cpolicy_eval(p, NULL, NULL), N);
  json_decref(facts);
  mdm_cpolicy_free(p);
}

/* ---- assignment --------------------------------------------------------- */

static void test_applies(void **state)
{
  static const char r[] =
    "[{\"name\": \"r\", \"fact\": \"os.id\", \"op\": \"exists\"}]";
  struct mdm_cpolicy *any = policy("any", r, NULL);
  struct mdm_cpolicy *empty = policy("empty", r, "{}");
  struct mdm_cpolicy *nul = policy("nul", r, "null");
  struct mdm_cpolicy *plat = policy("plat", r,
                                    "{\"platforms\": [\"linux\", \"macos\"]}");
  struct mdm_cpolicy *lab = policy("lab", r,
    "{\"labels\": {\"dept\": \"sales\", \"site\": \"paris\"}}");
  struct mdm_cpolicy *both = policy("both", r,
    "{\"platforms\": [\"ios\"], \"labels\": {\"dept\": \"sales\"}}");
  struct mdm_cpolicy *nolab = policy("nolab", r, "{\"labels\": {}}");
  json_t *sales_paris = load("{\"dept\": \"sales\", \"site\": \"paris\","
                             " \"extra\": \"x\"}");
  json_t *sales = load("{\"dept\": \"sales\"}");
  json_t *wrong = load("{\"dept\": \"sales\", \"site\": \"lyon\"}");
  json_t *typed = load("{\"dept\": \"sales\", \"site\": 1}");
  json_t *notobj = load("[\"dept\"]");
  (void)state;

  assert_true(mdm_cpolicy_applies(any, "linux", NULL));
  assert_true(mdm_cpolicy_applies(any, NULL, NULL));
  assert_true(mdm_cpolicy_applies(empty, "windows", sales));
  assert_true(mdm_cpolicy_applies(nul, NULL, NULL));
  assert_true(mdm_cpolicy_applies(nolab, "ios", NULL));

  assert_true(mdm_cpolicy_applies(plat, "linux", NULL));
  assert_true(mdm_cpolicy_applies(plat, "macos", sales));
  assert_false(mdm_cpolicy_applies(plat, "windows", NULL));
  assert_false(mdm_cpolicy_applies(plat, "Linux", NULL));
  assert_false(mdm_cpolicy_applies(plat, "linu", NULL));
  assert_false(mdm_cpolicy_applies(plat, "", NULL));
  assert_false(mdm_cpolicy_applies(plat, NULL, NULL));

  assert_true(mdm_cpolicy_applies(lab, "linux", sales_paris));
  assert_true(mdm_cpolicy_applies(lab, NULL, sales_paris));
  assert_false(mdm_cpolicy_applies(lab, "linux", sales));
  assert_false(mdm_cpolicy_applies(lab, "linux", wrong));
  assert_false(mdm_cpolicy_applies(lab, "linux", typed));
  assert_false(mdm_cpolicy_applies(lab, "linux", NULL));
  assert_false(mdm_cpolicy_applies(lab, "linux", notobj));

  assert_true(mdm_cpolicy_applies(both, "ios", sales));
  assert_false(mdm_cpolicy_applies(both, "android", sales));
  assert_false(mdm_cpolicy_applies(both, "ios", NULL));

  assert_false(mdm_cpolicy_applies(NULL, "linux", NULL));

  json_decref(sales_paris);
  json_decref(sales);
  json_decref(wrong);
  json_decref(typed);
  json_decref(notobj);
  mdm_cpolicy_free(any);
  mdm_cpolicy_free(empty);
  mdm_cpolicy_free(nul);
  mdm_cpolicy_free(plat);
  mdm_cpolicy_free(lab);
  mdm_cpolicy_free(both);
  mdm_cpolicy_free(nolab);
}

/* ---- the device verdict over several policies --------------------------- */

static void test_compliance_eval(void **state)
{
  struct mdm_cpolicy *ok = policy("ok",
    "[{\"name\": \"disk\", \"fact\": \"encryption.root_encrypted\","
    "  \"op\": \"is_true\"}]", NULL);
  struct mdm_cpolicy *unk = policy("unk",
    "[{\"name\": \"boot\", \"fact\": \"integrity.secure_boot\","
    "  \"op\": \"is_true\"}]", NULL);
  struct mdm_cpolicy *bad = policy("bad",
    "[{\"name\": \"os-min\", \"fact\": \"os.version\", \"op\": \"version_ge\","
    "  \"value\": \"13.0\"}]", NULL);
  struct mdm_cpolicy *mac = policy("mac",
    "[{\"name\": \"os-min\", \"fact\": \"os.version\", \"op\": \"version_ge\","
    "  \"value\": \"99\"}]", "{\"platforms\": [\"macos\"]}");
  json_t *facts = load(base_facts), *reasons, *want;
  struct mdm_cpolicy *ps[4];
  (void)state;

  /* compliant only */
  ps[0] = ok;
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 1, facts, "linux", NULL, reasons),
                   C);
  assert_int_equal(json_array_size(reasons), 0);
  json_decref(reasons);

  /* unknown beats compliant */
  ps[0] = ok;
  ps[1] = unk;
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 2, facts, "linux", NULL, reasons),
                   U);
  assert_int_equal(json_array_size(reasons), 1);
  assert_string_equal(reason_str(json_array_get(reasons, 0), "policy"), "unk");
  assert_string_equal(reason_str(json_array_get(reasons, 0), "rule"), "boot");
  json_decref(reasons);

  /* noncompliant beats unknown, in either order */
  ps[0] = unk;
  ps[1] = bad;
  ps[2] = ok;
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 3, facts, "linux", NULL, reasons),
                   N);
  assert_int_equal(json_array_size(reasons), 2);
  assert_string_equal(reason_str(json_array_get(reasons, 0), "policy"), "unk");
  assert_string_equal(reason_str(json_array_get(reasons, 1), "policy"), "bad");
  assert_string_equal(reason_str(json_array_get(reasons, 1), "rule"), "os-min");
  assert_string_equal(reason_str(json_array_get(reasons, 1), "state"),
                      "noncompliant");
  json_decref(reasons);
  ps[0] = bad;
  ps[1] = unk;
  assert_int_equal(mdm_compliance_eval(ps, 2, facts, "linux", NULL, NULL), N);

  /* a policy that does not apply is not counted */
  ps[0] = ok;
  ps[1] = mac;
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 2, facts, "linux", NULL, reasons),
                   C);
  assert_int_equal(json_array_size(reasons), 0);
  assert_int_equal(mdm_compliance_eval(ps, 2, facts, "macos", NULL, reasons),
                   N);
  assert_string_equal(reason_str(json_array_get(reasons, 0), "policy"), "mac");
  json_decref(reasons);

  /* no applicable policy: unknown, with that reason */
  want = load("[{\"state\": \"unknown\","
              "  \"message\": \"no compliance policy assigned\"}]");
  ps[0] = mac;
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 1, facts, "linux", NULL, reasons),
                   U);
  assert_true(json_equal(reasons, want));
  json_decref(reasons);
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(ps, 0, facts, "linux", NULL, reasons),
                   U);
  assert_true(json_equal(reasons, want));
  json_decref(reasons);
  reasons = json_array();
  assert_int_equal(mdm_compliance_eval(NULL, 3, facts, "linux", NULL,
                                       reasons), U);
  assert_true(json_equal(reasons, want));
  json_decref(reasons);
  json_decref(want);
  assert_int_equal(mdm_compliance_eval(ps, 1, facts, "linux", NULL, NULL), U);

  /* NULL entries are skipped */
  ps[0] = NULL;
  ps[1] = ok;
  assert_int_equal(mdm_compliance_eval(ps, 2, facts, "linux", NULL, NULL), C);

  /* reasons that is not an array is left alone */
  reasons = json_object();
  ps[0] = bad;
  assert_int_equal(mdm_compliance_eval(ps, 1, facts, "linux", NULL, reasons),
                   N);
  assert_int_equal(json_object_size(reasons), 0);
  json_decref(reasons);

  json_decref(facts);
  mdm_cpolicy_free(ok);
  mdm_cpolicy_free(unk);
  mdm_cpolicy_free(bad);
  mdm_cpolicy_free(mac);
}

/* ---- fact paths and names ----------------------------------------------- */

static void test_fact_get(void **state)
{
  json_t *facts = load(base_facts);
  (void)state;
  assert_string_equal(json_string_value(mdm_fact_get(facts, "os.version")),
                      "12");
  assert_string_equal(json_string_value(mdm_fact_get(facts, "platform")),
                      "linux");
  assert_true(json_is_true(mdm_fact_get(facts, "encryption.root_encrypted")));
  assert_true(json_is_null(mdm_fact_get(facts, "os.build")));
  assert_true(json_is_object(mdm_fact_get(facts, "os")));
  assert_string_equal(json_string_value(mdm_fact_get(facts, "disks.1.name")),
                      "sdb");
  assert_null(mdm_fact_get(facts, "disks.2.name"));
  assert_null(mdm_fact_get(facts, "disks.-1.name"));
  assert_null(mdm_fact_get(facts, "disks.01x.name"));
  assert_null(mdm_fact_get(facts, "os.nothing"));
  assert_null(mdm_fact_get(facts, "os.version.x"));
  assert_null(mdm_fact_get(facts, "os."));
  assert_null(mdm_fact_get(facts, ".os"));
  assert_null(mdm_fact_get(facts, "os..version"));
  assert_null(mdm_fact_get(facts, ""));
  assert_null(mdm_fact_get(facts, NULL));
  assert_null(mdm_fact_get(NULL, "os"));
  json_decref(facts);
}

static void test_verdict_name(void **state)
{
  (void)state;
  assert_string_equal(mdm_verdict_name(MDM_VERDICT_COMPLIANT), "compliant");
  assert_string_equal(mdm_verdict_name(MDM_VERDICT_UNKNOWN), "unknown");
  assert_string_equal(mdm_verdict_name(MDM_VERDICT_NONCOMPLIANT),
                      "noncompliant");
  assert_string_equal(mdm_verdict_name((enum mdm_verdict)7), "unknown");
  assert_int_equal(mdm_cpolicy_eval(NULL, NULL, NULL), U);
  assert_null(mdm_cpolicy_name(NULL));
  assert_int_equal(mdm_cpolicy_n_rules(NULL), 0);
  mdm_cpolicy_free(NULL);
}

/* ---- compile errors ----------------------------------------------------- */

struct ccase {
  const char *doc;
  const char *msg;
};

#define DOC(spec) "{\"apiVersion\": \"mdm/v1\", \"kind\": \"CompliancePolicy\"," \
                  " \"metadata\": {\"name\": \"p\"}, \"spec\": " spec "}"
#define RULE(body) DOC("{\"rules\": [{\"name\": \"ok\", \"fact\": \"a\"," \
                       " \"op\": \"exists\"}, " body "]}")

static const struct ccase ccases[] = {
  {"[]", "document: expected an object"},
  {"\"CompliancePolicy\"", "document: expected an object"},
  {"{\"kind\": \"ConfigurationProfile\", \"metadata\": {\"name\": \"p\"},"
   " \"spec\": {\"rules\": []}}", "kind: expected 'CompliancePolicy'"},
  {"{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"rules\": []}}",
   "kind: expected 'CompliancePolicy'"},
  {"{\"kind\": \"CompliancePolicy\", \"spec\": {\"rules\": []}}",
   "metadata.name: expected a non-empty string"},
  {"{\"kind\": \"CompliancePolicy\", \"metadata\": {\"name\": \"\"},"
   " \"spec\": {\"rules\": []}}", "metadata.name: expected a non-empty string"},
  {"{\"kind\": \"CompliancePolicy\", \"metadata\": {\"name\": 5},"
   " \"spec\": {\"rules\": []}}", "metadata.name: expected a non-empty string"},
  {"{\"kind\": \"CompliancePolicy\", \"metadata\": {\"name\": \"p\"}}",
   "spec: expected an object"},
  {DOC("[]"), "spec: expected an object"},
  {DOC("{}"), "spec.rules: expected a list of rules"},
  {DOC("{\"rules\": {\"name\": \"x\"}}"), "spec.rules: expected a list of rules"},
  {DOC("{\"rules\": null}"), "spec.rules: expected a list of rules"},
  {DOC("{\"rules\": [], \"assign\": []}"), "spec.assign: expected an object"},
  {DOC("{\"rules\": [], \"assign\": {\"platforms\": \"linux\"}}"),
   "spec.assign.platforms: expected a non-empty list of strings"},
  {DOC("{\"rules\": [], \"assign\": {\"platforms\": []}}"),
   "spec.assign.platforms: expected a non-empty list of strings"},
  {DOC("{\"rules\": [], \"assign\": {\"platforms\": [\"linux\", 3]}}"),
   "spec.assign.platforms[1]: expected a string"},
  {DOC("{\"rules\": [], \"assign\": {\"labels\": [\"a\"]}}"),
   "spec.assign.labels: expected a map of strings"},
  {DOC("{\"rules\": [], \"assign\": {\"labels\": {\"a\": \"b\", \"n\": 1}}}"),
   "spec.assign.labels.n: expected a string"},
  {RULE("\"r\""), "spec.rules[1]: expected an object"},
  {RULE("{\"fact\": \"a\", \"op\": \"exists\"}"),
   "spec.rules[1].name: expected a non-empty string"},
  {RULE("{\"name\": \"\", \"fact\": \"a\", \"op\": \"exists\"}"),
   "spec.rules[1].name: expected a non-empty string"},
  {RULE("{\"name\": \"ok\", \"fact\": \"b\", \"op\": \"exists\"}"),
   "spec.rules[1].name: duplicate rule name 'ok'"},
  {RULE("{\"name\": \"r\", \"op\": \"exists\"}"),
   "spec.rules[1].fact: expected a dotted path such as 'os.version'"},
  {RULE("{\"name\": \"r\", \"fact\": 3, \"op\": \"exists\"}"),
   "spec.rules[1].fact: expected a dotted path such as 'os.version'"},
  {RULE("{\"name\": \"r\", \"fact\": \"os..version\", \"op\": \"exists\"}"),
   "spec.rules[1].fact: 'os..version' is not a dotted path of at most 16 "
   "names and 256 bytes"},
  {RULE("{\"name\": \"r\", \"fact\": \"\", \"op\": \"exists\"}"),
   "spec.rules[1].fact: '' is not a dotted path of at most 16 names and 256 "
   "bytes"},
  {RULE("{\"name\": \"r\", \"fact\": \"os.\", \"op\": \"exists\"}"),
   "spec.rules[1].fact: 'os.' is not a dotted path of at most 16 names and "
   "256 bytes"},
  {RULE("{\"name\": \"r\", \"fact\": \"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\","
        " \"op\": \"exists\"}"),
   "spec.rules[1].fact: 'a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q' is not a dotted "
   "path of at most 16 names and 256 bytes"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\"}"),
   "spec.rules[1].op: expected an operator such as 'eq' or 'version_ge'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": [\"eq\"]}"),
   "spec.rules[1].op: expected an operator such as 'eq' or 'version_ge'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"equals\", \"value\": 1}"),
   "spec.rules[1].op: unknown operator 'equals'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"EQ\", \"value\": 1}"),
   "spec.rules[1].op: unknown operator 'EQ'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"eq\"}"),
   "spec.rules[1].value: required for op 'eq'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"ne\", \"value\": null}"),
   "spec.rules[1].value: required for op 'ne'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"eq\", \"value\": [1]}"),
   "spec.rules[1].value: expected a string, number or boolean for op 'eq'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"lt\"}"),
   "spec.rules[1].value: required for op 'lt'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"ge\", \"value\": true}"),
   "spec.rules[1].value: expected a number or a string for op 'ge'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"version_ge\"}"),
   "spec.rules[1].value: required for op 'version_ge'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"version_lt\","
        " \"value\": {\"v\": 1}}"),
   "spec.rules[1].value: expected a version string for op 'version_lt'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"version_ge\","
        " \"value\": \"thirteen\"}"),
   "spec.rules[1].value: 'thirteen' is not a version"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"version_ge\","
        " \"value\": -1}"),
   "spec.rules[1].value: '-1' is not a version"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"in\"}"),
   "spec.rules[1].value: required for op 'in'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"in\", \"value\": \"debian\"}"),
   "spec.rules[1].value: expected a non-empty list for op 'in'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"not_in\", \"value\": []}"),
   "spec.rules[1].value: expected a non-empty list for op 'not_in'"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"in\","
        " \"value\": [\"a\", null]}"),
   "spec.rules[1].value[1]: expected a string, number or boolean"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"in\","
        " \"value\": [\"a\", [\"b\"]]}"),
   "spec.rules[1].value[1]: expected a string, number or boolean"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"exists\","
        " \"remediation\": \"lock\"}"),
   "spec.rules[1].remediation: expected an object"},
  {RULE("{\"name\": \"r\", \"fact\": \"a\", \"op\": \"exists\","
        " \"escalate\": [\"24h\"]}"),
   "spec.rules[1].escalate: expected an object"},
};

static void test_compile_errors(void **state)
{
  size_t i;
  (void)state;
  for(i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
    json_t *doc = load(ccases[i].doc);
    struct mdm_cpolicy *p = (struct mdm_cpolicy *)&i;   /* must be reset */
    char err[256] = "";
    mdm_rc rc = mdm_cpolicy_compile(doc, &p, err, sizeof(err));
    if(rc != MDM_ERR_UNPROCESSABLE || strcmp(err, ccases[i].msg))
      fail_msg("case %zu: rc %d err '%s', want '%s'", i, (int)rc, err,
               ccases[i].msg);
    assert_null(p);
    json_decref(doc);
  }
  {
    struct mdm_cpolicy *p = NULL;
    char err[8];
    /* NULL document, a short error buffer, no error buffer at all */
    assert_int_equal(mdm_cpolicy_compile(NULL, &p, err, sizeof(err)),
                     MDM_ERR_UNPROCESSABLE);
    assert_string_equal(err, "documen");
    assert_int_equal(mdm_cpolicy_compile(NULL, &p, NULL, 0),
                     MDM_ERR_UNPROCESSABLE);
    assert_int_equal(mdm_cpolicy_compile(NULL, NULL, NULL, 0), MDM_ERR_INVAL);
  }
}

static void test_compile_too_many_rules(void **state)
{
  json_t *doc = policy_doc("p", "[]", NULL), *rules;
  struct mdm_cpolicy *p = NULL;
  char err[256];
  size_t i;
  (void)state;
  rules = json_object_get(json_object_get(doc, "spec"), "rules");
  for(i = 0; i < MDM_CPOLICY_MAX_RULES; i++)
    json_array_append_new(rules, json_pack("{s:o, s:s, s:s}", "name",
                          json_sprintf("r%zu", i), "fact", "a", "op",
                          "exists"));
  assert_int_equal(mdm_cpolicy_compile(doc, &p, err, sizeof(err)), MDM_OK);
  assert_int_equal(mdm_cpolicy_n_rules(p), MDM_CPOLICY_MAX_RULES);
  mdm_cpolicy_free(p);
  json_array_append_new(rules, json_pack("{s:s, s:s, s:s}", "name", "one-more",
                        "fact", "a", "op", "exists"));
  assert_int_equal(mdm_cpolicy_compile(doc, &p, err, sizeof(err)),
                   MDM_ERR_UNPROCESSABLE);
  assert_string_equal(err, "spec.rules: 1025 rules, at most 1024 allowed");
  assert_null(p);
  json_decref(doc);
}

/* Every field of the example replaced by every kind of JSON value: compile
 * either succeeds or says what is wrong, and never crashes or leaks. */
static void test_compile_mutations(void **state)
{
  static const char *paths[][4] = {
    {"kind", NULL}, {"metadata", NULL}, {"metadata", "name", NULL},
    {"spec", NULL}, {"spec", "assign", NULL},
    {"spec", "assign", "platforms", NULL}, {"spec", "assign", "labels", NULL},
    {"spec", "rules", NULL},
  };
  static const char *rule_keys[] = {"name", "fact", "op", "value",
                                    "remediation", "escalate"};
  static const char *values[] = {"null", "true", "0", "-1.5", "\"\"",
                                 "\"x\"", "[]", "[1, \"a\"]", "{}",
                                 "{\"a\": {}}", "\"13.0\"", "[null]"};
  size_t i, j, r;
  (void)state;
  for(j = 0; j < sizeof(values) / sizeof(values[0]); j++) {
    for(i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
      json_t *doc = load(example), *parent = doc;
      struct mdm_cpolicy *p = NULL;
      char err[256] = "";
      size_t k;
      mdm_rc rc;
      for(k = 0; paths[i][k + 1]; k++)
        parent = json_object_get(parent, paths[i][k]);
      json_object_set_new(parent, paths[i][k], load(values[j]));
      rc = mdm_cpolicy_compile(doc, &p, err, sizeof(err));
      assert_true(rc == MDM_OK || rc == MDM_ERR_UNPROCESSABLE);
      if(rc)
        assert_true(err[0] && !p);
      mdm_cpolicy_free(p);
      json_decref(doc);
    }
    for(r = 0; r < 5; r++) {
      for(i = 0; i < sizeof(rule_keys) / sizeof(rule_keys[0]); i++) {
        json_t *doc = load(example), *facts = load(base_facts);
        json_t *reasons = json_array();
        struct mdm_cpolicy *p = NULL;
        char err[256] = "";
        mdm_rc rc;
        json_object_set_new(json_array_get(json_object_get(json_object_get(
                              doc, "spec"), "rules"), r), rule_keys[i],
                            load(values[j]));
        rc = mdm_cpolicy_compile(doc, &p, err, sizeof(err));
        assert_true(rc == MDM_OK || rc == MDM_ERR_UNPROCESSABLE);
        if(rc)
          assert_true(err[0] && !p);
        else
          mdm_cpolicy_eval(p, facts, reasons);
        mdm_cpolicy_free(p);
        json_decref(reasons);
        json_decref(facts);
        json_decref(doc);
      }
    }
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_eval_table),
    cmocka_unit_test(test_eval_reason_object),
    cmocka_unit_test(test_eval_message_bounds),
    cmocka_unit_test(test_compile_example),
    cmocka_unit_test(test_applies),
    cmocka_unit_test(test_compliance_eval),
    cmocka_unit_test(test_fact_get),
    cmocka_unit_test(test_verdict_name),
    cmocka_unit_test(test_compile_errors),
    cmocka_unit_test(test_compile_too_many_rules),
    cmocka_unit_test(test_compile_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
