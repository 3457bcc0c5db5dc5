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

/* Compile a CompliancePolicy document (the whole document: apiVersion,
 * kind, metadata, spec).  Borrowed doc; the result copies what it needs.
 * On MDM_ERR_UNPROCESSABLE, errmsg says what is wrong.
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
 * file comment).  No applicable policy: MDM_VERDICT_UNKNOWN with the reason
 * {"state": "unknown", "message": "no compliance policy assigned"}. */
enum mdm_verdict mdm_compliance_eval(struct mdm_cpolicy *const *ps, size_t n,
                                     json_t *facts, const char *platform,
                                     json_t *labels, json_t *reasons);

/* The value at a dotted path ("os.version", "encryption.root_encrypted")
 * in facts, or NULL.  Borrowed. */
json_t *mdm_fact_get(json_t *facts, const char *path);

#endif
