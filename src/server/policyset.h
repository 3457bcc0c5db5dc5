/*
 * policyset.h: a tenant's policies at one generation, compiled for use:
 * compliance policies for the evaluator, configuration profiles for the
 * devices' bundles, and the fact paths the rules read.  Sets are immutable
 * and reference-counted; mdmd caches the current one per tenant and
 * rebuilds it when the store's generation moves (the store stays the truth).
 */
#ifndef MDM_POLICYSET_H
#define MDM_POLICYSET_H

#include <stdatomic.h>
#include <stdint.h>
#include <jansson.h>
#include "core/util.h"
#include "policy/eval.h"
#include "server/server.h"

struct mdm_policyset {
  atomic_int refs;
  char tenant_id[MDM_UUID_LEN + 1];
  int64_t gen;
  struct mdm_cpolicy **cps;
  size_t n_cps;
  json_t *profiles;      /* ConfigurationProfile documents, by name */
  json_t *access;        /* ConditionalAccessPolicy documents, by name */
  json_t *versions;      /* "kind/name" -> version, for bundles */
  char **paths;          /* distinct fact paths the rules read */
  size_t n_paths;
};

/* Build a set from documents (a JSON array of whole documents; borrowed)
 * and versions (object "kind/name" -> version, may be NULL).  Caller owns
 * *out (refs 1); release with mdm_policyset_put().  On failure errmsg says
 * which document is wrong. */
mdm_rc mdm_policyset_build(json_t *docs, json_t *versions, const char *tenant,
                           int64_t gen, struct mdm_policyset **out,
                           char *errmsg, size_t errlen);
void mdm_policyset_put(struct mdm_policyset *ps);

/* The tenant's current set (cached; rebuilt when the generation moved).
 * Caller owns a reference; mdm_policyset_put() it. */
mdm_rc mdm_policyset_current(struct mdm_server *srv, const char *tenant,
                             struct mdm_policyset **out);

/* What one device gets: its verdict (with reasons as JSON text, caller
 * frees) and its configuration bundle's ETag. */
struct mdm_device_verdict {
  enum mdm_verdict verdict;
  char *reasons_json;
  char etag[72];
};
mdm_rc mdm_policyset_eval(const struct mdm_policyset *ps, json_t *facts,
                          const char *platform, json_t *labels,
                          struct mdm_device_verdict *out);

/* The device's configuration bundle: {"profiles": [{name, version}],
 * "settings": {...}} (settings of the assigned profiles merged in name
 * order, a later profile's setting replacing an earlier one's) and its ETag.
 * Caller owns *bundle. */
mdm_rc mdm_policyset_bundle(const struct mdm_policyset *ps,
                            const char *platform, json_t *labels,
                            json_t **bundle, char etag[72]);

/* Rebuild facts from the values of ps->paths (as device_eval_scan gives
 * them).  Caller owns the result. */
json_t *mdm_facts_from_paths(char *const *paths, size_t n, json_t *values);

/* Process-wide cache handling, called by main. */
mdm_rc mdm_policycache_new(struct mdm_policycache **out);
void mdm_policycache_free(struct mdm_policycache *pc);

#endif
