/*
 * eval.c: the compliance evaluator (ARCHITECTURE principle 2).  A
 * CompliancePolicy document is compiled once into flat rules with their
 * fact paths already cut into segments and their expected values already
 * classified; evaluating the rules against a device's facts then walks a
 * few jansson hash lookups per rule and allocates nothing unless a rule
 * fails and the caller asked for reasons.  mdmd re-evaluates every device
 * of a tenant after a policy change, so that path is kept lean: the
 * messages are only built for rules that are not compliant.
 *
 * The semantics of each operator are in eval.h.  Nothing here does I/O or
 * keeps state between calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "policy/eval.h"
#include "policy/version.h"

/* ---- compiled form ---------------------------------------------------- */

enum op {
  OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_VERSION_GE, OP_VERSION_LT,
  OP_IN, OP_NOT_IN, OP_IS_TRUE, OP_IS_FALSE, OP_EXISTS
};

/* What a rule's value must be. */
enum want {
  WANT_NONE,      /* no value (is_true, is_false, exists) */
  WANT_SCALAR,    /* string, number or boolean */
  WANT_ORDERED,   /* string or number */
  WANT_VERSION,   /* string or number that is a version */
  WANT_LIST       /* non-empty array of scalars */
};

static const struct {
  const char *name;
  enum op op;
  enum want want;
} ops[] = {
  {"eq", OP_EQ, WANT_SCALAR},
  {"ne", OP_NE, WANT_SCALAR},
  {"lt", OP_LT, WANT_ORDERED},
  {"le", OP_LE, WANT_ORDERED},
  {"gt", OP_GT, WANT_ORDERED},
  {"ge", OP_GE, WANT_ORDERED},
  {"version_ge", OP_VERSION_GE, WANT_VERSION},
  {"version_lt", OP_VERSION_LT, WANT_VERSION},
  {"in", OP_IN, WANT_LIST},
  {"not_in", OP_NOT_IN, WANT_LIST},
  {"is_true", OP_IS_TRUE, WANT_NONE},
  {"is_false", OP_IS_FALSE, WANT_NONE},
  {"exists", OP_EXISTS, WANT_NONE},
};
#define N_OPS (sizeof(ops) / sizeof(ops[0]))

/* One segment of a fact path: a key, and its array index when the key is
 * all digits (else -1). */
struct seg {
  const char *key;   /* points into crule.fact; not NUL-terminated */
  size_t len;
  long idx;
};

struct crule {
  char *name;
  char *fact;                      /* "os.version" */
  struct seg segs[MDM_FACT_MAX_SEGS];
  size_t n_segs;
  size_t op_i;                     /* index into ops[] */
  json_t *value;                   /* owned copy; NULL for WANT_NONE */
  char *value_text;                /* version ops: the value as text */
  json_t *remediation;             /* owned copy or NULL */
  json_t *escalate;                /* owned copy or NULL */
};

struct label {
  char *key;
  char *value;
};

struct mdm_cpolicy {
  char *name;
  int has_platforms;               /* 0: any platform */
  char **platforms;
  size_t n_platforms;
  struct label *labels;            /* the selector; all must match */
  size_t n_labels;
  struct crule *rules;
  size_t n_rules;
};

const char *mdm_verdict_name(enum mdm_verdict v)
{
  switch(v) {
  case MDM_VERDICT_COMPLIANT:
    return "compliant";
  case MDM_VERDICT_NONCOMPLIANT:
    return "noncompliant";
  case MDM_VERDICT_UNKNOWN:
  default:
    return "unknown";
  }
}

/* ---- numbers and text --------------------------------------------------- */

/* The canonical text of a number: integers in decimal, integral reals as
 * integers (13.0 -> "13"), other reals in the shortest form that reads
 * back the same (22.04 -> "22.04").  buf holds at least 32 bytes. */
static void num_text(json_t *v, char *buf, size_t n)
{
  double d;
  int prec;

  if(json_is_integer(v)) {
    snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return;
  }
  d = json_real_value(v);
  if(d > -1e15 && d < 1e15 && d == (double)(long long)d) {
    snprintf(buf, n, "%lld", (long long)d);   /* also turns -0.0 into 0 */
    return;
  }
  for(prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, d);
    if(strtod(buf, NULL) == d)
      return;
  }
}

/* Text form of a string or number for version comparison: the string
 * itself, or the number's canonical text in buf.  NULL for other types. */
static const char *text_of(json_t *v, char *buf, size_t n)
{
  if(json_is_string(v))
    return json_string_value(v);
  if(json_is_number(v)) {
    num_text(v, buf, n);
    return buf;
  }
  return NULL;
}

static int num_cmp(json_t *a, json_t *b)
{
  if(json_is_integer(a) && json_is_integer(b)) {
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    return (x > y) - (x < y);
  }
  else {
    double x = json_number_value(a), y = json_number_value(b);
    return (x > y) - (x < y);
  }
}

static int str_cmp(json_t *a, json_t *b)
{
  size_t la = json_string_length(a), lb = json_string_length(b);
  int c = memcmp(json_string_value(a), json_string_value(b),
                 la < lb ? la : lb);
  if(c)
    return (c > 0) - (c < 0);
  return (la > lb) - (la < lb);
}

/* eq's semantics: 1 equal, 0 not equal, -1 not comparable. */
static int scalar_eq(json_t *a, json_t *b)
{
  char buf[40];
  json_t *s, *num;

  if(json_is_boolean(a) && json_is_boolean(b))
    return json_is_true(a) == json_is_true(b);
  if(json_is_number(a) && json_is_number(b))
    return num_cmp(a, b) == 0;
  if(json_is_string(a) && json_is_string(b))
    return str_cmp(a, b) == 0;
  if(json_is_string(a) && json_is_number(b)) {
    s = a;
    num = b;
  }
  else if(json_is_number(a) && json_is_string(b)) {
    s = b;
    num = a;
  }
  else
    return -1;
  num_text(num, buf, sizeof(buf));
  return json_string_length(s) == strlen(buf) &&
         !memcmp(json_string_value(s), buf, strlen(buf));
}

/* lt/le/gt/ge's ordering of a against b into *out; -1 if not comparable. */
static int order_cmp(json_t *a, json_t *b, int *out)
{
  char ba[40], bb[40];
  const char *ta, *tb;
  int is_ok = 0, c;

  if(json_is_number(a) && json_is_number(b)) {
    *out = num_cmp(a, b);
    return 0;
  }
  ta = text_of(a, ba, sizeof(ba));
  tb = text_of(b, bb, sizeof(bb));
  if(!ta || !tb)
    return -1;
  c = mdm_version_cmp(ta, tb, &is_ok);
  if(is_ok) {
    *out = c;
    return 0;
  }
  if(json_is_string(a) && json_is_string(b)) {
    *out = str_cmp(a, b);
    return 0;
  }
  return -1;
}

/* ---- fact paths --------------------------------------------------------- */

static long seg_index(const char *s, size_t len)
{
  long v = 0;
  size_t i;
  if(len == 0 || len > 9)
    return -1;
  for(i = 0; i < len; i++) {
    if(s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

static json_t *step(json_t *node, const char *key, size_t len, long idx)
{
  if(json_is_object(node))
    return json_object_getn(node, key, len);
  if(json_is_array(node) && idx >= 0)
    return json_array_get(node, (size_t)idx);
  return NULL;
}

json_t *mdm_fact_get(json_t *facts, const char *path)
{
  json_t *node = facts;
  const char *s, *dot;
  size_t len;

  if(!facts || !path || !*path)
    return NULL;
  for(s = path;; s = dot + 1) {
    dot = strchr(s, '.');
    len = dot ? (size_t)(dot - s) : strlen(s);
    if(!len)
      return NULL;
    node = step(node, s, len, seg_index(s, len));
    if(!node || !dot)
      return node;
  }
}

static json_t *rule_fact(const struct crule *r, json_t *facts)
{
  json_t *node = facts;
  size_t i;
  for(i = 0; i < r->n_segs && node; i++)
    node = step(node, r->segs[i].key, r->segs[i].len, r->segs[i].idx);
  return node;
}

/* ---- evaluation --------------------------------------------------------- */

enum detail {
  D_OK,           /* compliant */
  D_FAIL,         /* noncompliant: the comparison says no */
  D_MISSING,      /* the fact is absent */
  D_NULL,         /* the fact is null */
  D_TYPE,         /* the actual's type does not suit the operator */
  D_NOT_VERSION   /* a string that is not a version */
};

/* exists is the one operator for which absent or null is a definite no. */
static enum mdm_verdict verdict_of(const struct crule *r, enum detail d)
{
  if(d == D_OK)
    return MDM_VERDICT_COMPLIANT;
  if(d == D_FAIL || ops[r->op_i].op == OP_EXISTS)
    return MDM_VERDICT_NONCOMPLIANT;
  return MDM_VERDICT_UNKNOWN;
}

static enum detail eval_rule(const struct crule *r, json_t *actual)
{
  enum op op = ops[r->op_i].op;
  char buf[40];
  const char *t;
  size_t i;
  int c = 0, is_ok = 0, eq, is_comparable;

  if(op == OP_EXISTS) {
    if(!actual)
      return D_MISSING;
    return json_is_null(actual) ? D_NULL : D_OK;
  }
  if(!actual)
    return D_MISSING;
  if(json_is_null(actual))
    return D_NULL;

  switch(op) {
  case OP_IS_TRUE:
  case OP_IS_FALSE:
    if(!json_is_boolean(actual))
      return D_TYPE;
    return json_is_true(actual) == (op == OP_IS_TRUE) ? D_OK : D_FAIL;
  case OP_EQ:
  case OP_NE:
    eq = scalar_eq(actual, r->value);
    if(eq < 0)
      return D_TYPE;
    return eq == (op == OP_EQ) ? D_OK : D_FAIL;
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
    if(order_cmp(actual, r->value, &c))
      return D_TYPE;
    if(op == OP_LT)
      return c < 0 ? D_OK : D_FAIL;
    if(op == OP_LE)
      return c <= 0 ? D_OK : D_FAIL;
    if(op == OP_GT)
      return c > 0 ? D_OK : D_FAIL;
    return c >= 0 ? D_OK : D_FAIL;
  case OP_VERSION_GE:
  case OP_VERSION_LT:
    t = text_of(actual, buf, sizeof(buf));
    if(!t)
      return D_TYPE;
    c = mdm_version_cmp(t, r->value_text, &is_ok);
    if(!is_ok)
      return D_NOT_VERSION;
    if(op == OP_VERSION_GE)
      return c >= 0 ? D_OK : D_FAIL;
    return c < 0 ? D_OK : D_FAIL;
  case OP_IN:
  case OP_NOT_IN:
    is_comparable = 0;
    for(i = 0; i < json_array_size(r->value); i++) {
      eq = scalar_eq(actual, json_array_get(r->value, i));
      if(eq > 0)
        return op == OP_IN ? D_OK : D_FAIL;
      if(eq == 0)
        is_comparable = 1;
    }
    if(!is_comparable)
      return D_TYPE;
    return op == OP_NOT_IN ? D_OK : D_FAIL;
  case OP_EXISTS:
  default:
    return D_TYPE;
  }
}

/* ---- messages ----------------------------------------------------------- */

/* A bounded text buffer that cuts only at UTF-8 character boundaries and
 * ends in "..." when something did not fit. */
struct tbuf {
  char *p;
  size_t cap;       /* bytes at p, NUL included */
  size_t len;
  int is_cut;
};

static void tb_init(struct tbuf *t, char *p, size_t cap)
{
  t->p = p;
  t->cap = cap;
  t->len = 0;
  t->is_cut = 0;
  p[0] = '\0';
}

static void tb_putn(struct tbuf *t, const char *s, size_t n)
{
  size_t room;
  if(t->is_cut)
    return;
  room = t->cap - 4 - t->len;   /* keep room for "..." and the NUL */
  if(n > room) {
    n = room;
    while(n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
    t->is_cut = 1;
  }
  memcpy(t->p + t->len, s, n);
  t->len += n;
  if(t->is_cut) {
    memcpy(t->p + t->len, "...", 3);
    t->len += 3;
  }
  t->p[t->len] = '\0';
}

static void tb_puts(struct tbuf *t, const char *s)
{
  tb_putn(t, s, strlen(s));
}

/* A string's bytes, JSON-quoted and escaped, or raw with control
 * characters shown as '?'; at most MSG_MAX_STRING bytes of it, cut at a
 * character boundary and marked "...". */
#define MSG_MAX_STRING 80

static void tb_string(struct tbuf *t, const char *s, size_t n, int quote)
{
  char esc[8];
  size_t i, start = 0;
  int is_long = 0;

  if(n > MSG_MAX_STRING) {
    n = MSG_MAX_STRING;
    while(n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
    is_long = 1;
  }
  if(quote)
    tb_puts(t, "\"");
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c >= 0x20 && c != '"' && c != '\\')
      continue;
    if(!quote && c >= 0x20)
      continue;
    tb_putn(t, s + start, i - start);
    start = i + 1;
    if(!quote)
      tb_puts(t, "?");
    else if(c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      tb_putn(t, esc, 2);
    }
    else {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      tb_puts(t, esc);
    }
  }
  tb_putn(t, s + start, n - start);
  if(is_long)
    tb_puts(t, "...");
  if(quote)
    tb_puts(t, "\"");
}

/* v as compact JSON (strings quoted when quote), arrays one level deep. */
static void tb_value(struct tbuf *t, json_t *v, int quote, int depth)
{
  char buf[40];
  size_t i;

  switch(json_typeof(v)) {
  case JSON_STRING:
    tb_string(t, json_string_value(v), json_string_length(v), quote);
    break;
  case JSON_INTEGER:
  case JSON_REAL:
    num_text(v, buf, sizeof(buf));
    tb_puts(t, buf);
    break;
  case JSON_TRUE:
    tb_puts(t, "true");
    break;
  case JSON_FALSE:
    tb_puts(t, "false");
    break;
  case JSON_NULL:
    tb_puts(t, "null");
    break;
  case JSON_ARRAY:
    if(depth > 0) {
      tb_puts(t, "[...]");
      break;
    }
    tb_puts(t, "[");
    for(i = 0; i < json_array_size(v) && !t->is_cut; i++) {
      if(i)
        tb_puts(t, ",");
      tb_value(t, json_array_get(v, i), 1, depth + 1);
    }
    tb_puts(t, "]");
    break;
  case JSON_OBJECT:
  default:
    tb_puts(t, "{...}");
    break;
  }
}

static const char *fail_relation(enum op op)
{
  switch(op) {
  case OP_EQ:
    return "!=";
  case OP_NE:
    return "==";
  case OP_LT:
  case OP_VERSION_LT:
    return ">=";
  case OP_LE:
    return ">";
  case OP_GT:
    return "<=";
  case OP_GE:
  case OP_VERSION_GE:
    return "<";
  case OP_IN:
    return "not in";
  case OP_NOT_IN:
    return "in";
  default:
    return "?";
  }
}

static void rule_message(const struct crule *r, json_t *actual,
                         enum detail d, char *msg, size_t n)
{
  enum op op = ops[r->op_i].op;
  int is_version_op = op == OP_VERSION_GE || op == OP_VERSION_LT;
  int is_bool_op = op == OP_IS_TRUE || op == OP_IS_FALSE;
  char a[112], e[200];
  struct tbuf ta, te;

  tb_init(&ta, a, sizeof(a));
  tb_init(&te, e, sizeof(e));
  if(actual)
    tb_value(&ta, actual, !is_version_op, 0);
  if(is_version_op)
    tb_puts(&te, r->value_text);
  else if(r->value)
    tb_value(&te, r->value, 1, 0);

  switch(d) {
  case D_MISSING:
    snprintf(msg, n, "%s is missing%s", r->fact,
             op == OP_EXISTS ? "" : " (unknown)");
    break;
  case D_NULL:
    snprintf(msg, n, "%s is null%s", r->fact,
             op == OP_EXISTS ? "" : " (unknown)");
    break;
  case D_NOT_VERSION:
    tb_init(&ta, a, sizeof(a));
    tb_value(&ta, actual, 1, 0);
    snprintf(msg, n, "%s %s is not a version (unknown)", r->fact, a);
    break;
  case D_TYPE:
    if(is_bool_op) {
      tb_init(&ta, a, sizeof(a));
      tb_value(&ta, actual, 1, 0);
      snprintf(msg, n, "%s is %s, expected a boolean (unknown)", r->fact, a);
    }
    else if(is_version_op)
      snprintf(msg, n, "%s is %s, expected a version (unknown)", r->fact,
               json_is_object(actual) ? "an object" :
               json_is_array(actual) ? "an array" : a);
    else
      snprintf(msg, n, "%s %s cannot be compared with %s (unknown)",
               r->fact, a, e);
    break;
  case D_FAIL:
    if(op == OP_IS_TRUE)
      snprintf(msg, n, "%s is false, expected true", r->fact);
    else if(op == OP_IS_FALSE)
      snprintf(msg, n, "%s is true, expected false", r->fact);
    else
      snprintf(msg, n, "%s %s %s %s", r->fact, a, fail_relation(op), e);
    break;
  case D_OK:
  default:
    snprintf(msg, n, "%s is compliant", r->fact);
    break;
  }
}

static json_t *copy_or_null(json_t *v)
{
  json_t *c = v ? json_deep_copy(v) : NULL;
  return c ? c : json_null();
}

static void add_reason(json_t *reasons, const struct mdm_cpolicy *p,
                       const struct crule *r, json_t *actual, enum detail d)
{
  enum op op = ops[r->op_i].op;
  char msg[MDM_FACT_MAX_PATH + 400];
  json_t *o, *expected, *m;

  rule_message(r, actual, d, msg, sizeof(msg));
  if(op == OP_IS_TRUE || op == OP_IS_FALSE)
    expected = json_boolean(op == OP_IS_TRUE);
  else
    expected = copy_or_null(r->value);
  m = json_string(msg);
  if(!m)   /* not valid UTF-8: cannot happen with jansson's own strings */
    m = json_string("rule is not compliant");
  o = json_object();
  if(!o) {
    json_decref(expected);
    json_decref(m);
    return;
  }
  json_object_set_new(o, "policy", json_string(p->name));
  json_object_set_new(o, "rule", json_string(r->name));
  json_object_set_new(o, "fact", json_string(r->fact));
  json_object_set_new(o, "op", json_string(ops[r->op_i].name));
  json_object_set_new(o, "expected", expected);
  json_object_set_new(o, "actual", copy_or_null(actual));
  json_object_set_new(o, "state", json_string(
                        mdm_verdict_name(verdict_of(r, d))));
  json_object_set_new(o, "message", m);
  json_array_append_new(reasons, o);
}

enum mdm_verdict mdm_cpolicy_eval(const struct mdm_cpolicy *p, json_t *facts,
                                  json_t *reasons)
{
  enum mdm_verdict worst = MDM_VERDICT_COMPLIANT, v;
  const struct crule *r;
  json_t *actual;
  enum detail d;
  size_t i;

  if(!p)
    return MDM_VERDICT_UNKNOWN;
  if(!json_is_array(reasons))
    reasons = NULL;
  for(i = 0; i < p->n_rules; i++) {
    r = &p->rules[i];
    actual = rule_fact(r, facts);
    d = eval_rule(r, actual);
    if(d == D_OK)
      continue;
    v = verdict_of(r, d);
    if(v > worst)
      worst = v;
    if(reasons)
      add_reason(reasons, p, r, actual, d);
  }
  return worst;
}

/* ---- assignment --------------------------------------------------------- */

int mdm_cpolicy_applies(const struct mdm_cpolicy *p, const char *platform,
                        json_t *labels)
{
  size_t i;
  json_t *v;
  int is_listed = 0;

  if(!p)
    return 0;
  if(p->has_platforms) {
    if(!platform)
      return 0;
    for(i = 0; i < p->n_platforms && !is_listed; i++)
      is_listed = !strcmp(p->platforms[i], platform);
    if(!is_listed)
      return 0;
  }
  for(i = 0; i < p->n_labels; i++) {
    v = json_is_object(labels) ? json_object_get(labels, p->labels[i].key)
                               : NULL;
    if(!json_is_string(v) || strcmp(json_string_value(v), p->labels[i].value))
      return 0;
  }
  return 1;
}

enum mdm_verdict mdm_compliance_eval(struct mdm_cpolicy *const *ps, size_t n,
                                     json_t *facts, const char *platform,
                                     json_t *labels, json_t *reasons)
{
  enum mdm_verdict worst = MDM_VERDICT_COMPLIANT, v;
  size_t i, n_applied = 0;

  for(i = 0; ps && i < n; i++) {
    if(!ps[i] || !mdm_cpolicy_applies(ps[i], platform, labels))
      continue;
    n_applied++;
    v = mdm_cpolicy_eval(ps[i], facts, reasons);
    if(v > worst)
      worst = v;
  }
  if(!n_applied) {
    if(json_is_array(reasons))
      json_array_append_new(reasons, json_pack("{s:s, s:s}",
                            "state", "unknown",
                            "message", "no compliance policy assigned"));
    return MDM_VERDICT_UNKNOWN;
  }
  return worst;
}

/* ---- accessors ---------------------------------------------------------- */

const char *mdm_cpolicy_name(const struct mdm_cpolicy *p)
{
  return p ? p->name : NULL;
}

size_t mdm_cpolicy_n_rules(const struct mdm_cpolicy *p)
{
  return p ? p->n_rules : 0;
}

const char *mdm_cpolicy_rule_name(const struct mdm_cpolicy *p, size_t i)
{
  return p && i < p->n_rules ? p->rules[i].name : NULL;
}

json_t *mdm_cpolicy_rule_remediation(const struct mdm_cpolicy *p, size_t i)
{
  return p && i < p->n_rules ? p->rules[i].remediation : NULL;
}

json_t *mdm_cpolicy_rule_escalate(const struct mdm_cpolicy *p, size_t i)
{
  return p && i < p->n_rules ? p->rules[i].escalate : NULL;
}

/* ---- compiling ---------------------------------------------------------- */

static mdm_rc bad(char *errmsg, size_t errlen, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static mdm_rc bad(char *errmsg, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(errmsg && errlen) {
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
  }
  return MDM_ERR_UNPROCESSABLE;
}

static void rule_release(struct crule *r)
{
  free(r->name);
  free(r->fact);
  free(r->value_text);
  json_decref(r->value);
  json_decref(r->remediation);
  json_decref(r->escalate);
}

void mdm_cpolicy_free(struct mdm_cpolicy *p)
{
  size_t i;
  if(!p)
    return;
  for(i = 0; i < p->n_rules; i++)
    rule_release(&p->rules[i]);
  free(p->rules);
  for(i = 0; i < p->n_platforms; i++)
    free(p->platforms[i]);
  free(p->platforms);
  for(i = 0; i < p->n_labels; i++) {
    free(p->labels[i].key);
    free(p->labels[i].value);
  }
  free(p->labels);
  free(p->name);
  free(p);
}

/* A JSON null counts as absent for optional fields (YAML "assign:"). */
static json_t *opt(json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

static int is_scalar(json_t *v)
{
  return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Cut r->fact into segments. */
static int split_path(struct crule *r)
{
  const char *s = r->fact, *dot;
  size_t len, total = strlen(r->fact);

  if(!total || total > MDM_FACT_MAX_PATH)
    return -1;
  r->n_segs = 0;
  for(;; s = dot + 1) {
    dot = strchr(s, '.');
    len = dot ? (size_t)(dot - s) : strlen(s);
    if(!len || r->n_segs == MDM_FACT_MAX_SEGS)
      return -1;
    r->segs[r->n_segs].key = s;
    r->segs[r->n_segs].len = len;
    r->segs[r->n_segs].idx = seg_index(s, len);
    r->n_segs++;
    if(!dot)
      return 0;
  }
}

static mdm_rc compile_value(struct crule *r, json_t *value, size_t ri,
                            char *errmsg, size_t errlen)
{
  const char *op = ops[r->op_i].name;
  char buf[40];
  const char *t;
  size_t i;
  int is_ok = 0;

  switch(ops[r->op_i].want) {
  case WANT_NONE:
    return MDM_OK;   /* a value given anyway is ignored */
  case WANT_SCALAR:
    if(!value)
      return bad(errmsg, errlen, "spec.rules[%zu].value: required for op "
                 "'%s'", ri, op);
    if(!is_scalar(value))
      return bad(errmsg, errlen, "spec.rules[%zu].value: expected a string, "
                 "number or boolean for op '%s'", ri, op);
    break;
  case WANT_ORDERED:
    if(!value)
      return bad(errmsg, errlen, "spec.rules[%zu].value: required for op "
                 "'%s'", ri, op);
    if(!json_is_string(value) && !json_is_number(value))
      return bad(errmsg, errlen, "spec.rules[%zu].value: expected a number "
                 "or a string for op '%s'", ri, op);
    break;
  case WANT_VERSION:
    if(!value)
      return bad(errmsg, errlen, "spec.rules[%zu].value: required for op "
                 "'%s'", ri, op);
    t = text_of(value, buf, sizeof(buf));
    if(!t)
      return bad(errmsg, errlen, "spec.rules[%zu].value: expected a version "
                 "string for op '%s'", ri, op);
    mdm_version_cmp(t, t, &is_ok);
    if(!is_ok)
      return bad(errmsg, errlen, "spec.rules[%zu].value: '%.64s' is not a "
                 "version", ri, t);
    r->value_text = strdup(t);
    if(!r->value_text)
      return MDM_ERR_NOMEM;
    break;
  case WANT_LIST:
    if(!value)
      return bad(errmsg, errlen, "spec.rules[%zu].value: required for op "
                 "'%s'", ri, op);
    if(!json_is_array(value) || !json_array_size(value))
      return bad(errmsg, errlen, "spec.rules[%zu].value: expected a "
                 "non-empty list for op '%s'", ri, op);
    for(i = 0; i < json_array_size(value); i++) {
      if(!is_scalar(json_array_get(value, i)))
        return bad(errmsg, errlen, "spec.rules[%zu].value[%zu]: expected a "
                   "string, number or boolean", ri, i);
    }
    break;
  }
  r->value = json_deep_copy(value);
  return r->value ? MDM_OK : MDM_ERR_NOMEM;
}

static mdm_rc compile_rule(struct mdm_cpolicy *p, json_t *jr, size_t ri,
                           char *errmsg, size_t errlen)
{
  struct crule *r = &p->rules[ri];
  json_t *name, *fact, *op, *x;
  mdm_rc rc;
  size_t i;

  if(!json_is_object(jr))
    return bad(errmsg, errlen, "spec.rules[%zu]: expected an object", ri);
  name = json_object_get(jr, "name");
  if(!json_is_string(name) || !json_string_length(name))
    return bad(errmsg, errlen, "spec.rules[%zu].name: expected a non-empty "
               "string", ri);
  for(i = 0; i < ri; i++) {
    if(!strcmp(p->rules[i].name, json_string_value(name)))
      return bad(errmsg, errlen, "spec.rules[%zu].name: duplicate rule name "
                 "'%.64s'", ri, json_string_value(name));
  }
  r->name = strdup(json_string_value(name));
  if(!r->name)
    return MDM_ERR_NOMEM;

  fact = json_object_get(jr, "fact");
  if(!json_is_string(fact))
    return bad(errmsg, errlen, "spec.rules[%zu].fact: expected a dotted path "
               "such as 'os.version'", ri);
  r->fact = strdup(json_string_value(fact));
  if(!r->fact)
    return MDM_ERR_NOMEM;
  if(strlen(r->fact) != json_string_length(fact) || split_path(r))
    return bad(errmsg, errlen, "spec.rules[%zu].fact: '%.64s' is not a "
               "dotted path of at most %d names and %d bytes", ri, r->fact,
               MDM_FACT_MAX_SEGS, MDM_FACT_MAX_PATH);

  op = json_object_get(jr, "op");
  if(!json_is_string(op))
    return bad(errmsg, errlen, "spec.rules[%zu].op: expected an operator "
               "such as 'eq' or 'version_ge'", ri);
  for(r->op_i = 0; r->op_i < N_OPS; r->op_i++) {
    if(!strcmp(ops[r->op_i].name, json_string_value(op)))
      break;
  }
  if(r->op_i == N_OPS)
    return bad(errmsg, errlen, "spec.rules[%zu].op: unknown operator "
               "'%.32s'", ri, json_string_value(op));

  rc = compile_value(r, opt(jr, "value"), ri, errmsg, errlen);
  if(rc)
    return rc;

  x = opt(jr, "remediation");
  if(x) {
    if(!json_is_object(x))
      return bad(errmsg, errlen, "spec.rules[%zu].remediation: expected an "
                 "object", ri);
    r->remediation = json_deep_copy(x);
    if(!r->remediation)
      return MDM_ERR_NOMEM;
  }
  x = opt(jr, "escalate");
  if(x) {
    if(!json_is_object(x))
      return bad(errmsg, errlen, "spec.rules[%zu].escalate: expected an "
                 "object", ri);
    r->escalate = json_deep_copy(x);
    if(!r->escalate)
      return MDM_ERR_NOMEM;
  }
  return MDM_OK;
}

static mdm_rc compile_assign(struct mdm_cpolicy *p, json_t *assign,
                             char *errmsg, size_t errlen)
{
  json_t *platforms, *labels, *v;
  const char *key;
  size_t i;

  if(!assign)
    return MDM_OK;
  if(!json_is_object(assign))
    return bad(errmsg, errlen, "spec.assign: expected an object");
  platforms = opt(assign, "platforms");
  if(platforms) {
    if(!json_is_array(platforms) || !json_array_size(platforms))
      return bad(errmsg, errlen, "spec.assign.platforms: expected a "
                 "non-empty list of strings");
    p->platforms = calloc(json_array_size(platforms), sizeof(char *));
    if(!p->platforms)
      return MDM_ERR_NOMEM;
    p->has_platforms = 1;
    json_array_foreach(platforms, i, v) {
      if(!json_is_string(v))
        return bad(errmsg, errlen, "spec.assign.platforms[%zu]: expected a "
                   "string", i);
      p->platforms[i] = strdup(json_string_value(v));
      if(!p->platforms[i])
        return MDM_ERR_NOMEM;
      p->n_platforms++;
    }
  }
  labels = opt(assign, "labels");
  if(labels) {
    if(!json_is_object(labels))
      return bad(errmsg, errlen, "spec.assign.labels: expected a map of "
                 "strings");
    if(json_object_size(labels)) {
      p->labels = calloc(json_object_size(labels), sizeof(struct label));
      if(!p->labels)
        return MDM_ERR_NOMEM;
    }
    json_object_foreach(labels, key, v) {
      if(!json_is_string(v))
        return bad(errmsg, errlen, "spec.assign.labels.%.64s: expected a "
                   "string", key);
      p->labels[p->n_labels].key = strdup(key);
      p->labels[p->n_labels].value = strdup(json_string_value(v));
      p->n_labels++;
      if(!p->labels[p->n_labels - 1].key ||
         !p->labels[p->n_labels - 1].value)
        return MDM_ERR_NOMEM;
    }
  }
  return MDM_OK;
}

mdm_rc mdm_cpolicy_compile(json_t *doc, struct mdm_cpolicy **out,
                           char *errmsg, size_t errlen)
{
  struct mdm_cpolicy *p = NULL;
  json_t *kind, *name, *spec, *rules;
  mdm_rc rc = MDM_OK;
  size_t i, n;

  if(errmsg && errlen)
    errmsg[0] = '\0';
  if(!out)
    return MDM_ERR_INVAL;
  *out = NULL;
  if(!json_is_object(doc)) {
    rc = bad(errmsg, errlen, "document: expected an object");
    goto out;
  }
  kind = json_object_get(doc, "kind");
  if(!json_is_string(kind) ||
     strcmp(json_string_value(kind), "CompliancePolicy")) {
    rc = bad(errmsg, errlen, "kind: expected 'CompliancePolicy'");
    goto out;
  }
  name = json_object_get(json_object_get(doc, "metadata"), "name");
  if(!json_is_string(name) || !json_string_length(name)) {
    rc = bad(errmsg, errlen, "metadata.name: expected a non-empty string");
    goto out;
  }
  spec = json_object_get(doc, "spec");
  if(!json_is_object(spec)) {
    rc = bad(errmsg, errlen, "spec: expected an object");
    goto out;
  }
  rules = json_object_get(spec, "rules");
  if(!json_is_array(rules)) {
    rc = bad(errmsg, errlen, "spec.rules: expected a list of rules");
    goto out;
  }
  n = json_array_size(rules);
  if(n > MDM_CPOLICY_MAX_RULES) {
    rc = bad(errmsg, errlen, "spec.rules: %zu rules, at most %d allowed", n,
             MDM_CPOLICY_MAX_RULES);
    goto out;
  }

  p = calloc(1, sizeof(*p));
  if(!p) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  p->name = strdup(json_string_value(name));
  if(!p->name) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  rc = compile_assign(p, opt(spec, "assign"), errmsg, errlen);
  if(rc)
    goto out;
  if(n) {
    p->rules = calloc(n, sizeof(struct crule));
    if(!p->rules) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
  }
  for(i = 0; i < n; i++) {
    p->n_rules++;   /* the rule is freed with p, however far it got */
    rc = compile_rule(p, json_array_get(rules, i), i, errmsg, errlen);
    if(rc)
      goto out;
  }
  *out = p;
  p = NULL;

out:
  if(rc == MDM_ERR_NOMEM && errmsg && errlen && !*errmsg)
    snprintf(errmsg, errlen, "out of memory");
  mdm_cpolicy_free(p);
  return rc;
}
