/*
 * eval.h: the compliance evaluator (ARCHITECTURE principle 2: pure).
 * A CompliancePolicy document (CONTRACT §6, already validated by the
 * loader, doc.h) is compiled once into a struct mdm_cpolicy; evaluating it
 * against a device's facts is a pure function with no I/O, shared by mdmd
 * (check-ins, tenant re-evaluation), mdmctl (what-if) and tests.
 *
 * Verdicts: a rule is compliant, noncompliant or unknown (its fact is
 * absent or null, or of a type the operator cannot compare: never
 * "compliant" by default).  A device is noncompliant if any rule of any
 * policy assigned to it is; else unknown if any is unknown, or if no policy
 * is assigned at all; else compliant.
 *
 * Operators (each rule: fact OP value; "actual" is the fact's value):
 *  - Every operator but exists: an absent or null fact is unknown.
 *  - eq, ne: booleans compare with booleans, numbers with numbers by value
 *    (13 eq 13.0), strings with strings byte for byte; a string and a
 *    number compare as the number's canonical text against the string
 *    ("13" eq 13 holds, "13.0" eq 13 does not; a real prints shortest,
 *    integral reals without ".0").  Any other pairing (a boolean against a
 *    string or number, an object or array) is unknown.
 *  - lt, le, gt, ge: two numbers by value; two strings by mdm_version_cmp
 *    when both are versions ("9" lt "10"), else by byte order; a string
 *    and a number by mdm_version_cmp on the number's canonical text when
 *    both are versions, else unknown; anything else unknown.
 *  - version_ge, version_lt: mdm_version_cmp on the text forms (a number
 *    becomes its canonical text: 13 -> "13"); an actual that is not a
 *    version ("abc", true, an object) is unknown.
 *  - in, not_in: membership with eq's semantics; unknown only when the
 *    actual is comparable with no member of the list.
 *  - is_true, is_false: the actual must be a boolean, else unknown.
 *  - exists: compliant when present and not null, else noncompliant.
 * The compiled policy is read-only during evaluation: several threads may
 * evaluate the same policy at once.  Evaluation allocates only when it
 * appends to reasons.
 */
#ifndef MDM_EVAL_H
#define MDM_EVAL_H

#include <stddef.h>
#include <jansson.h>
#include "core/rc.h"

enum mdm_verdict {
  MDM_VERDICT_COMPLIANT = 0,
  MDM_VERDICT_UNKNOWN = 1,
  MDM_VERDICT_NONCOMPLIANT = 2
};

/* "compliant" | "unknown" | "noncompliant" */
const char *mdm_verdict_name(enum mdm_verdict v);

struct mdm_cpolicy;

/* Bounds on a compiled policy (compile fails with MDM_ERR_UNPROCESSABLE
 * past them): rules per policy, bytes in a fact path, segments in it. */
#define MDM_CPOLICY_MAX_RULES 1024
#define MDM_FACT_MAX_PATH 256
#define MDM_FACT_MAX_SEGS 16

/* Compile a CompliancePolicy document (the whole document: apiVersion,
 * kind, metadata, spec).  Borrowed doc; the result copies what it needs.
 * On MDM_ERR_UNPROCESSABLE, errmsg says what is wrong, naming the field:
 * "spec.rules[1].op: unknown operator 'equals'".  Each rule's value is
 * checked against its op (a scalar for eq/ne, a number or string for
 * lt..ge, a version for version_ge/lt, a non-empty list of scalars for
 * in/not_in; ignored for is_true/is_false/exists); an optional field that
 * is null counts as absent.  MDM_ERR_INVAL if out is NULL, MDM_ERR_NOMEM.
 * Caller owns *out; free with mdm_cpolicy_free(). */
mdm_rc mdm_cpolicy_compile(json_t *doc, struct mdm_cpolicy **out,
                           char *errmsg, size_t errlen);
void mdm_cpolicy_free(struct mdm_cpolicy *p);
const char *mdm_cpolicy_name(const struct mdm_cpolicy *p);

/* Is p assigned to a device of this platform (may be NULL) and labels
 * (an object, may be NULL)?  spec.assign.platforms: the device's platform
 * must be listed (absent list: any platform); spec.assign.labels: every
 * key/value must be among the device's labels (absent: any device). */
int mdm_cpolicy_applies(const struct mdm_cpolicy *p, const char *platform,
                        json_t *labels);

/* Evaluate p's rules against facts (borrowed).  For each rule that is not
 * compliant, appends to reasons (a JSON array; may be NULL) an object:
 *   {"policy": NAME, "rule": RULE, "fact": "os.version", "op": "version_ge",
 *    "expected": VALUE, "actual": VALUE|null,
 *    "state": "noncompliant"|"unknown", "message": "os.version 11 < 13.0"}
 * Returns the policy's verdict. */
enum mdm_verdict mdm_cpolicy_eval(const struct mdm_cpolicy *p, json_t *facts,
                                  json_t *reasons);

/* The device verdict over every policy in ps that applies to it (see the
 * file comment); NULL entries are skipped.  No applicable policy: MDM_VERDICT_UNKNOWN with the reason
 * {"state": "unknown", "message": "no compliance policy assigned"}. */
enum mdm_verdict mdm_compliance_eval(struct mdm_cpolicy *const *ps, size_t n,
                                     json_t *facts, const char *platform,
                                     json_t *labels, json_t *reasons);

/* The value at a dotted path ("os.version", "encryption.root_encrypted")
 * in facts, or NULL.  A segment of digits indexes an array ("disks.0.size").
 * Borrowed. */
json_t *mdm_fact_get(json_t *facts, const char *path);

/* The rules of a compiled policy, in document order, for the remediation
 * and escalation steps that act on a rule's failure.  i < n_rules.
 * Borrowed; valid until mdm_cpolicy_free(p).  remediation and escalate are
 * the rule's JSON objects as written, or NULL when the rule has none. */
size_t mdm_cpolicy_n_rules(const struct mdm_cpolicy *p);
const char *mdm_cpolicy_rule_name(const struct mdm_cpolicy *p, size_t i);
json_t *mdm_cpolicy_rule_remediation(const struct mdm_cpolicy *p, size_t i);
json_t *mdm_cpolicy_rule_escalate(const struct mdm_cpolicy *p, size_t i);

#endif
