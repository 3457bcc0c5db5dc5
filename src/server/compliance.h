/*
 * compliance.h: running the evaluator inside mdmd (see compliance.c).
 */
#ifndef MDM_COMPLIANCE_H
#define MDM_COMPLIANCE_H

#include <jansson.h>
#include "server/policyset.h"
#include "server/server.h"
#include "store/store.h"

/* The verdict a check-in carries to the store, if one was needed. */
struct mdm_checkin_verdict {
  int has_verdict;
  struct mdm_verdict_in v;   /* points into this struct */
  char *reasons_json;        /* owned */
  char etag[72];             /* the bundle ETag, new or stored ("" none) */
};
void mdm_checkin_verdict_release(struct mdm_checkin_verdict *cv);

/* Decide whether this check-in needs a new verdict (facts, policies or
 * labels changed since the stored one) and compute it.  MDM_ERR_AUTH if
 * the device is not active. */
mdm_rc mdm_compliance_checkin(struct mdm_server *srv, const char *tenant,
                              const char *device_id, json_t *facts,
                              const char *facts_hash,
                              struct mdm_checkin_verdict *out);

struct mdm_reeval_result {
  int64_t n_devices;
  int64_t n_changed;     /* devices whose state changed (or would) */
  json_t *changes;       /* the first 100: [{device_id, from, to}] */
  json_t *counts;        /* {"compliant": N, "noncompliant": N, "unknown": N} */
};
void mdm_reeval_result_release(struct mdm_reeval_result *r);

/* Evaluate every active device of tenant under its current policies and
 * store what changed. */
mdm_rc mdm_compliance_reeval_tenant(struct mdm_server *srv, const char *tenant,
                                    struct mdm_reeval_result *res);

/* The same under a planned set of policies, storing nothing. */
mdm_rc mdm_compliance_whatif(struct mdm_server *srv, const char *tenant,
                             const struct mdm_policyset *planned,
                             struct mdm_reeval_result *res);

#endif
