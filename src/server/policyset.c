/*
 * policyset.c: compiled policy sets per tenant and generation (see
 * policyset.h), the devices' configuration bundles, and the cache.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "policy/assign.h"
#include "server/api.h"
#include "server/policyset.h"

/* ---- building --------------------------------------------------------- */

static int path_known(const struct mdm_policyset *ps, const char *p)
{
  size_t i;
  for(i = 0; i < ps->n_paths; i++)
    if(!strcmp(ps->paths[i], p))
      return 1;
  return 0;
}

static mdm_rc add_path(struct mdm_policyset *ps, const char *p)
{
  char **np;
  if(path_known(ps, p))
    return MDM_OK;
  np = realloc(ps->paths, (ps->n_paths + 1) * sizeof(*np));
  if(!np)
    return MDM_ERR_NOMEM;
  ps->paths = np;
  ps->paths[ps->n_paths] = strdup(p);
  if(!ps->paths[ps->n_paths])
    return MDM_ERR_NOMEM;
  ps->n_paths++;
  return MDM_OK;
}

static int by_name(const void *a, const void *b)
{
  json_t *const *x = a, *const *y = b;
  const char *nx = json_string_value(
    json_object_get(json_object_get(*x, "metadata"), "name"));
  const char *ny = json_string_value(
    json_object_get(json_object_get(*y, "metadata"), "name"));
  return strcmp(nx ? nx : "", ny ? ny : "");
}

mdm_rc mdm_policyset_build(json_t *docs, json_t *versions, const char *tenant,
                           int64_t gen, struct mdm_policyset **out,
                           char *errmsg, size_t errlen)
{
  struct mdm_policyset *ps = calloc(1, sizeof(*ps));
  json_t *doc, **profs = NULL;
  size_t i, n_profs = 0, n_docs = json_array_size(docs);
  mdm_rc rc = MDM_OK;

  if(!ps)
    return MDM_ERR_NOMEM;
  atomic_init(&ps->refs, 1);
  mdm_strlcpy(ps->tenant_id, tenant ? tenant : "", sizeof(ps->tenant_id));
  ps->gen = gen;
  ps->versions = versions ? json_incref(versions) : json_object();
  ps->profiles = json_array();
  ps->access = json_array();
  ps->cps = calloc(n_docs ? n_docs : 1, sizeof(*ps->cps));
  profs = calloc(n_docs ? n_docs : 1, sizeof(*profs));
  if(!ps->versions || !ps->profiles || !ps->access || !ps->cps || !profs) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  json_array_foreach(docs, i, doc) {
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if(kind && !strcmp(kind, "CompliancePolicy")) {
      json_t *rules = json_object_get(json_object_get(doc, "spec"), "rules");
      json_t *rule;
      size_t k;
      rc = mdm_cpolicy_compile(doc, &ps->cps[ps->n_cps], errmsg, errlen);
      if(rc)
        goto out;
      ps->n_cps++;
      json_array_foreach(rules, k, rule) {
        const char *f = json_string_value(json_object_get(rule, "fact"));
        if(f && (rc = add_path(ps, f)))
          goto out;
      }
    }
    else if(kind && !strcmp(kind, "ConfigurationProfile"))
      profs[n_profs++] = doc;
    else if(kind && !strcmp(kind, "ConditionalAccessPolicy"))
      json_array_append(ps->access, doc);
    /* Other kinds are stored but not used yet. */
  }
  qsort(profs, n_profs, sizeof(*profs), by_name);
  for(i = 0; i < n_profs; i++)
    json_array_append(ps->profiles, profs[i]);
out:
  free(profs);
  if(rc) {
    mdm_policyset_put(ps);
    return rc;
  }
  *out = ps;
  return MDM_OK;
}

void mdm_policyset_put(struct mdm_policyset *ps)
{
  size_t i;
  if(!ps || atomic_fetch_sub(&ps->refs, 1) != 1)
    return;
  for(i = 0; i < ps->n_cps; i++)
    mdm_cpolicy_free(ps->cps[i]);
  free(ps->cps);
  for(i = 0; i < ps->n_paths; i++)
    free(ps->paths[i]);
  free(ps->paths);
  json_decref(ps->profiles);
  json_decref(ps->access);
  json_decref(ps->versions);
  free(ps);
}

/* ---- evaluating ------------------------------------------------------- */

mdm_rc mdm_policyset_bundle(const struct mdm_policyset *ps,
                            const char *platform, json_t *labels,
                            json_t **bundle, char etag[72])
{
  json_t *names = json_array(), *settings = json_object(), *doc, *b;
  char *text = NULL, hash[65];
  size_t i;
  mdm_rc rc;

  if(!names || !settings) {
    json_decref(names);
    json_decref(settings);
    return MDM_ERR_NOMEM;
  }
  json_array_foreach(ps->profiles, i, doc) {
    const char *name = json_string_value(
      json_object_get(json_object_get(doc, "metadata"), "name"));
    json_t *s = json_object_get(json_object_get(doc, "spec"), "settings");
    char key[200];
    if(!name || !mdm_assign_matches(doc, platform, labels))
      continue;
    snprintf(key, sizeof(key), "ConfigurationProfile/%s", name);
    json_array_append_new(
      names, json_pack("{s:s, s:I}", "name", name, "version",
                       json_integer_value(json_object_get(ps->versions,
                                                          key))));
    if(json_is_object(s))
      json_object_update(settings, s);
  }
  b = json_pack("{s:o, s:o}", "profiles", names, "settings", settings);
  if(!b)
    return MDM_ERR_NOMEM;
  rc = mdm_canonical_json(b, &text, hash);
  if(rc) {
    json_decref(b);
    return rc;
  }
  free(text);
  snprintf(etag, 72, "\"%.32s\"", hash);
  if(bundle)
    *bundle = b;
  else
    json_decref(b);
  return MDM_OK;
}

mdm_rc mdm_policyset_eval(const struct mdm_policyset *ps, json_t *facts,
                          const char *platform, json_t *labels,
                          struct mdm_device_verdict *out)
{
  json_t *reasons = json_array();
  mdm_rc rc;

  memset(out, 0, sizeof(*out));
  if(!reasons)
    return MDM_ERR_NOMEM;
  out->verdict = mdm_compliance_eval(ps->cps, ps->n_cps, facts, platform,
                                     labels, reasons);
  out->reasons_json = json_dumps(reasons, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(reasons);
  if(!out->reasons_json)
    return MDM_ERR_NOMEM;
  rc = mdm_policyset_bundle(ps, platform, labels, NULL, out->etag);
  if(rc) {
    free(out->reasons_json);
    out->reasons_json = NULL;
  }
  return rc;
}

json_t *mdm_facts_from_paths(char *const *paths, size_t n, json_t *values)
{
  json_t *facts = json_object();
  size_t i;
  if(!facts)
    return NULL;
  for(i = 0; i < n; i++) {
    json_t *v = json_array_get(values, i), *node = facts;
    char seg[128];
    const char *p = paths[i], *dot;
    /* Absent and null read the same from the store: both become null, so
     * a rule on them is unknown either way. */
    if(!v)
      v = json_null();
    /* Create the objects along the path, then set the leaf. */
    while((dot = strchr(p, '.'))) {
      json_t *next;
      size_t len = (size_t)(dot - p);
      if(len >= sizeof(seg))
        break;
      memcpy(seg, p, len);
      seg[len] = '\0';
      next = json_object_get(node, seg);
      if(!json_is_object(next)) {
        next = json_object();
        json_object_set_new(node, seg, next);
      }
      node = next;
      p = dot + 1;
    }
    if(!dot)
      json_object_set(node, p, v);
  }
  return facts;
}

/* ---- the cache -------------------------------------------------------- */

struct cache_ent {
  struct mdm_policyset *ps;
  struct cache_ent *next;
};

struct mdm_policycache {
  pthread_mutex_t lock;
  struct cache_ent *head;
};

mdm_rc mdm_policycache_new(struct mdm_policycache **out)
{
  struct mdm_policycache *pc = calloc(1, sizeof(*pc));
  if(!pc)
    return MDM_ERR_NOMEM;
  pthread_mutex_init(&pc->lock, NULL);
  *out = pc;
  return MDM_OK;
}

void mdm_policycache_free(struct mdm_policycache *pc)
{
  struct cache_ent *e, *n;
  if(!pc)
    return;
  for(e = pc->head; e; e = n) {
    n = e->next;
    mdm_policyset_put(e->ps);
    free(e);
  }
  pthread_mutex_destroy(&pc->lock);
  free(pc);
}

/* A reference to the cached set of tenant if it is at gen, else NULL. */
static struct mdm_policyset *cache_get(struct mdm_policycache *pc,
                                       const char *tenant, int64_t gen)
{
  struct cache_ent *e;
  struct mdm_policyset *ps = NULL;
  pthread_mutex_lock(&pc->lock);
  for(e = pc->head; e; e = e->next)
    if(!strcmp(e->ps->tenant_id, tenant)) {
      if(e->ps->gen == gen) {
        ps = e->ps;
        atomic_fetch_add(&ps->refs, 1);
      }
      break;
    }
  pthread_mutex_unlock(&pc->lock);
  return ps;
}

static void cache_put(struct mdm_policycache *pc, struct mdm_policyset *ps)
{
  struct cache_ent *e;
  atomic_fetch_add(&ps->refs, 1);
  pthread_mutex_lock(&pc->lock);
  for(e = pc->head; e; e = e->next)
    if(!strcmp(e->ps->tenant_id, ps->tenant_id))
      break;
  if(e) {
    if(e->ps->gen < ps->gen) {
      mdm_policyset_put(e->ps);
      e->ps = ps;
      ps = NULL;
    }
  }
  else {
    e = calloc(1, sizeof(*e));
    if(e) {
      e->ps = ps;
      e->next = pc->head;
      pc->head = e;
      ps = NULL;
    }
  }
  pthread_mutex_unlock(&pc->lock);
  mdm_policyset_put(ps);  /* not kept */
}

mdm_rc mdm_policyset_current(struct mdm_server *srv, const char *tenant,
                             struct mdm_policyset **out)
{
  struct mdm_store *st = srv->store;
  int attempt;

  for(attempt = 0; attempt < 5; attempt++) {
    int64_t gen = 0, gen2 = 0;
    json_t *items = NULL, *docs, *versions, *it;
    struct mdm_policyset *ps;
    char err[256];
    size_t i;
    mdm_rc rc = st->ops->policy_gen(st, tenant, &gen);
    if(rc)
      return rc;
    ps = cache_get(srv->policies, tenant, gen);
    if(ps) {
      *out = ps;
      return MDM_OK;
    }
    rc = st->ops->policy_list(st, tenant, NULL, &items);
    if(rc)
      return rc;
    /* The list and the generation come from two reads: if the generation
     * moved in between, the list may be of either; read again. */
    rc = st->ops->policy_gen(st, tenant, &gen2);
    if(rc || gen2 != gen) {
      json_decref(items);
      if(rc)
        return rc;
      continue;
    }
    docs = json_array();
    versions = json_object();
    json_array_foreach(items, i, it) {
      char key[200];
      snprintf(key, sizeof(key), "%s/%s",
               json_string_value(json_object_get(it, "kind")),
               json_string_value(json_object_get(it, "name")));
      json_array_append(docs, json_object_get(it, "document"));
      json_object_set(versions, key, json_object_get(it, "version"));
    }
    json_decref(items);
    rc = mdm_policyset_build(docs, versions, tenant, gen, &ps, err,
                             sizeof(err));
    json_decref(docs);
    json_decref(versions);
    if(rc) {
      mdm_error("policies of tenant %s (generation %lld) do not compile: %s",
                tenant, (long long)gen, err);
      return rc;
    }
    cache_put(srv->policies, ps);
    *out = ps;
    return MDM_OK;
  }
  return MDM_ERR_BUSY;
}
