/*
 * kind_compliance.c: the CompliancePolicy validator (CONTRACT §6).  A
 * policy assigns itself to devices (spec.assign) and lists rules, each a
 * test of one fact with one operator, with an optional remediation and
 * escalation.  What is checked here is what the evaluator (eval.c) relies
 * on: known operators, a value of the right shape for the operator, unique
 * rule names, remediations that name what they need.
 */
#include <string.h>
#include <jansson.h>
#include "policy/doc_int.h"
#include "policy/version.h"

#define MAX_RULES 256
#define MAX_FACT_LEN 256

static const char *const ops[] = {
  "eq", "ne", "lt", "le", "gt", "ge", "version_ge", "version_lt", "in",
  "not_in", "is_true", "is_false", "exists", NULL};

static const char *const actions[] = {
  "push_profile", "lock", "wipe", "selective_wipe", "os_update", "notify",
  NULL};

/* "os.version": segments of [a-z0-9_] joined by single dots. */
static mdm_rc check_fact(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *s = json_string_value(val);
  size_t n, i;
  int is_ok = s != NULL;
  (void)arg;
  n = s ? strlen(s) : 0;
  if(n < 1 || n > MAX_FACT_LEN || s[0] == '.' || s[n - 1] == '.')
    is_ok = 0;
  for(i = 0; is_ok && i < n; i++)
    if(!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
         s[i] == '_' || (s[i] == '.' && s[i + 1] != '.')))
      is_ok = 0;
  if(!is_ok)
    return mdm_verr(v, "expected a fact path such as os.version: segments "
                    "of a-z, 0-9 and '_' joined by '.'");
  return MDM_OK;
}

static mdm_rc check_remediation(struct mdm_vctx *v, json_t *val,
                                const void *arg)
{
  static const struct mdm_vfield fields[] = {
    {"action", 1, mdm_vcheck_enum, actions},
    {"profile", 0, mdm_vcheck_name, NULL},
    {"notifier", 0, mdm_vcheck_name, NULL},
  };
  /* Which action needs which extra field. */
  static const struct {
    const char *field, *action;
  } needs[] = {{"profile", "push_profile"}, {"notifier", "notify"}};
  const char *action;
  size_t i;
  mdm_rc rc;
  (void)arg;

  rc = mdm_vobject(v, val, fields, sizeof(fields) / sizeof(fields[0]), 0);
  if(rc)
    return rc;
  action = json_string_value(json_object_get(val, "action"));
  for(i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
    int is_needed = !strcmp(action, needs[i].action);
    int is_present = json_object_get(val, needs[i].field) != NULL;
    if(is_needed == is_present)
      continue;
    mdm_vpath_key(v, needs[i].field);
    if(is_needed)
      return mdm_verr(v, "required with action '%s'", action);
    return mdm_verr(v, "only allowed with action '%s'", needs[i].action);
  }
  return MDM_OK;
}

static mdm_rc check_escalate(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  static const struct mdm_vfield fields[] = {
    {"after", 1, mdm_vcheck_duration, NULL},
    {"notify", 1, mdm_vcheck_name, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, fields, sizeof(fields) / sizeof(fields[0]), 0);
}

static int is_scalar(json_t *x)
{
  return json_is_string(x) || json_is_number(x) || json_is_boolean(x);
}

/* The value a rule compares with, by operator.  The path names the value
 * (a missing one resolves to the rule's line). */
static mdm_rc check_value(struct mdm_vctx *v, json_t *val, const char *op)
{
  json_t *item;
  size_t i;

  if(!strcmp(op, "is_true") || !strcmp(op, "is_false") ||
     !strcmp(op, "exists"))
    return val ? mdm_verr(v, "not allowed with op '%s'", op) : MDM_OK;
  if(!val)
    return mdm_verr(v, "required with op '%s'", op);
  if(!strcmp(op, "in") || !strcmp(op, "not_in")) {
    if(!json_is_array(val) || !json_array_size(val))
      return mdm_verr(v, "expected a non-empty list of strings, numbers or "
                      "booleans with op '%s'", op);
    json_array_foreach(val, i, item) {
      if(!is_scalar(item)) {
        mdm_vpath_index(v, i);
        return mdm_verr(v, "expected a string, number or boolean");
      }
    }
    return MDM_OK;
  }
  if(!strcmp(op, "version_ge") || !strcmp(op, "version_lt")) {
    const char *s = json_string_value(val);
    /* 13.10 as a YAML number is the real 13.1: insist on a string. */
    if(json_is_real(val))
      return mdm_verr(v, "expected a version string: quote it, as a number "
                      "13.10 would read 13.1");
    if(json_is_integer(val) && json_integer_value(val) >= 0)
      return MDM_OK;
    {
      int is_ok = 0;
      /* The evaluator's own test of what a version is, so that a document
       * that validates always compiles. */
      if(s)
        mdm_version_cmp(s, s, &is_ok);
      if(!is_ok)
        return mdm_verr(v, "expected a version such as '13.0'");
    }
    return MDM_OK;
  }
  if(!strcmp(op, "eq") || !strcmp(op, "ne")) {
    if(!is_scalar(val))
      return mdm_verr(v, "expected a string, number or boolean");
    return MDM_OK;
  }
  /* lt le gt ge */
  if(!json_is_number(val) && !json_is_string(val))
    return mdm_verr(v, "expected a number or a string");
  return MDM_OK;
}

static mdm_rc check_rule(struct mdm_vctx *v, json_t *rule)
{
  static const struct mdm_vfield fields[] = {
    {"name", 1, mdm_vcheck_name, NULL},
    {"fact", 1, check_fact, NULL},
    {"op", 1, mdm_vcheck_enum, ops},
    {"value", 0, NULL, NULL},
    {"remediation", 0, check_remediation, NULL},
    {"escalate", 0, check_escalate, NULL},
  };
  size_t old;
  mdm_rc rc = mdm_vobject(v, rule, fields,
                          sizeof(fields) / sizeof(fields[0]), 0);
  if(rc)
    return rc;
  old = mdm_vpath_key(v, "value");
  rc = check_value(v, json_object_get(rule, "value"),
                   json_string_value(json_object_get(rule, "op")));
  if(!rc)
    mdm_vpath_pop(v, old);
  return rc;
}

static mdm_rc check_rules(struct mdm_vctx *v, json_t *val, const void *arg)
{
  size_t i, j, old;
  json_t *rule;
  mdm_rc rc;
  (void)arg;

  if(!json_is_array(val) || !json_array_size(val))
    return mdm_verr(v, "expected a non-empty list of rules");
  if(json_array_size(val) > MAX_RULES)
    return mdm_verr(v, "more than %d rules", MAX_RULES);
  json_array_foreach(val, i, rule) {
    const char *name;
    old = mdm_vpath_index(v, i);
    rc = check_rule(v, rule);
    if(rc)
      return rc;
    name = json_string_value(json_object_get(rule, "name"));
    for(j = 0; j < i; j++) {
      json_t *other = json_array_get(val, j);
      int first;
      if(strcmp(name, json_string_value(json_object_get(other, "name"))))
        continue;
      mdm_vpath_pop(v, old);
      mdm_vpath_index(v, j);
      mdm_vpath_key(v, "name");
      first = mdm_doc_line(v->d, v->path);
      mdm_vpath_pop(v, old);
      mdm_vpath_index(v, i);
      mdm_vpath_key(v, "name");
      return mdm_verr(v, "duplicate rule name '%s' (first at line %d)", name,
                      first);
    }
    mdm_vpath_pop(v, old);
  }
  return MDM_OK;
}

mdm_rc mdm_kind_compliance_validate(struct mdm_vctx *v, json_t *spec)
{
  static const struct mdm_vfield fields[] = {
    {"assign", 0, mdm_vcheck_assign, NULL},
    {"rules", 1, check_rules, NULL},
  };
  return mdm_vobject(v, spec, fields, sizeof(fields) / sizeof(fields[0]), 0);
}
