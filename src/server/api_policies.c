/*
 * api_policies.c: policy documents (CONTRACT §6): list, get, put, delete
 * and apply (a whole set, with dry_run and prune).  Every change validates
 * all documents first (an invalid set changes nothing: 422), is stored all
 * or nothing with an audit record per document, and is followed by the
 * re-evaluation of the tenant's devices, so states change without waiting
 * for a check-in.
 */
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "policy/doc.h"
#include "server/api.h"
#include "server/push.h"
#include "server/compliance.h"
#include "server/policyset.h"

#define MAX_DOCS 1000

/* Validate a JSON document from the API; name says where it came from. */
static mdm_rc validate_json_doc(struct mdm_req *r, json_t *doc,
                                const char *name)
{
  struct mdm_doc d;
  char err[512];
  mdm_rc rc;
  memset(&d, 0, sizeof(d));
  d.json = doc;
  d.file = (char *)name;
  d.line = 0;
  d.map = NULL;
  rc = mdm_doc_validate(&d, err, sizeof(err));
  if(rc)
    return mdm_req_fail(r, MDM_ERR_UNPROCESSABLE, "%s", err);
  return MDM_OK;
}

static const char *doc_kind(json_t *d)
{
  return json_string_value(json_object_get(d, "kind"));
}

static const char *doc_name(json_t *d)
{
  return json_string_value(
    json_object_get(json_object_get(d, "metadata"), "name"));
}

static json_t *compliance_json(const struct mdm_reeval_result *res)
{
  return json_pack("{s:I, s:I, s:O, s:O}", "devices",
                   (json_int_t)res->n_devices, "changed",
                   (json_int_t)res->n_changed, "changes", res->changes,
                   "counts", res->counts);
}

/* ---- reads ------------------------------------------------------------ */

mdm_rc mdm_api_policies_list(struct mdm_req *r)
{
  const char *kind = mdm_req_query(r, "kind"), *cur = mdm_req_query(r, "cursor");
  json_t *items = NULL, *page, *it;
  unsigned char *after = NULL;
  size_t i, dlen = 0;
  char *next = NULL;
  int limit;
  mdm_rc rc = mdm_req_limit(r, &limit);
  if(rc)
    return rc;
  if(kind && !mdm_doc_kind_known(kind))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'kind': unknown kind '%.64s'",
                        kind);
  if(cur && mdm_b64url_decode(cur, strlen(cur), &after, &dlen))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'cursor': invalid cursor");
  rc = r->srv->store->ops->policy_list(r->srv->store, r->who.tenant_id, kind,
                                       &items);
  if(rc) {
    free(after);
    return mdm_req_fail(r, rc, "cannot list policies");
  }
  /* Documents are few: page over the sorted list by "kind/name". */
  page = json_array();
  json_array_foreach(items, i, it) {
    char key[200];
    snprintf(key, sizeof(key), "%s/%s",
             json_string_value(json_object_get(it, "kind")),
             json_string_value(json_object_get(it, "name")));
    if(after && strcmp(key, (const char *)after) <= 0)
      continue;
    if((int)json_array_size(page) == limit) {
      json_t *last = json_array_get(page, json_array_size(page) - 1);
      snprintf(key, sizeof(key), "%s/%s",
               json_string_value(json_object_get(last, "kind")),
               json_string_value(json_object_get(last, "name")));
      mdm_b64url_encode(key, strlen(key), &next);
      break;
    }
    json_array_append(page, it);
  }
  json_decref(items);
  free(after);
  rc = mdm_req_reply_list(r, page, next);
  free(next);
  return rc;
}

mdm_rc mdm_api_policies_get(struct mdm_req *r)
{
  json_t *p = NULL;
  mdm_rc rc;
  if(!mdm_doc_kind_known(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "unknown kind '%s'",
                        r->params[0]);
  rc = r->srv->store->ops->policy_get(r->srv->store, r->who.tenant_id,
                                      r->params[0], r->params[1], &p);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no %s '%s'", r->params[0], r->params[1]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the policy");
  return mdm_req_reply_json(r, 200, p);
}

/* ---- planning --------------------------------------------------------- */

struct plan {
  struct mdm_policy_change *ch;
  size_t n_ch;
  char **owned;            /* texts and hashes the changes point to */
  size_t n_owned;
  json_t *results;         /* per document: {kind, name, action, version} */
  json_t *planned_docs;    /* the whole set after the change */
  json_t *planned_versions;
  json_t *kept;            /* holds results dropped by plan_only() */
};

static void plan_release(struct plan *p)
{
  size_t i;
  for(i = 0; i < p->n_owned; i++)
    free(p->owned[i]);
  free(p->owned);
  free(p->ch);
  json_decref(p->results);
  json_decref(p->planned_docs);
  json_decref(p->planned_versions);
  json_decref(p->kept);
  memset(p, 0, sizeof(*p));
}

static char *own(struct plan *p, char *s)
{
  if(s)
    p->owned[p->n_owned++] = s;
  return s;
}

/* Compare docs (the desired documents) with the stored ones.  With
 * is_prune, stored documents absent from docs are deleted; only_kind and
 * only_name restrict the comparison to one document (PUT/DELETE). */
static mdm_rc plan_make(struct mdm_req *r, json_t *docs, int is_prune,
                        const char *del_kind, const char *del_name,
                        struct plan *p)
{
  json_t *cur = NULL, *it, *d;
  size_t i, n_docs = json_array_size(docs);
  mdm_rc rc;

  memset(p, 0, sizeof(*p));
  rc = r->srv->store->ops->policy_list(r->srv->store, r->who.tenant_id, NULL,
                                       &cur);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the stored policies");
  p->ch = calloc(n_docs + json_array_size(cur) + 1, sizeof(*p->ch));
  p->owned = calloc(2 * n_docs + 2, sizeof(*p->owned));
  p->results = json_array();
  p->planned_docs = json_array();
  p->planned_versions = json_object();
  if(!p->ch || !p->owned || !p->results || !p->planned_docs ||
     !p->planned_versions) {
    json_decref(cur);
    plan_release(p);
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  }
  /* Desired documents: created, updated or unchanged. */
  json_array_foreach(docs, i, d) {
    const char *kind = doc_kind(d), *name = doc_name(d), *action;
    json_t *found = NULL;
    int64_t version = 0;
    char *text = NULL, hash[65], key[200];
    size_t k;
    json_array_foreach(cur, k, it)
      if(!strcmp(json_string_value(json_object_get(it, "kind")), kind) &&
         !strcmp(json_string_value(json_object_get(it, "name")), name)) {
        found = it;
        break;
      }
    rc = mdm_canonical_json(d, &text, hash);
    if(rc) {
      json_decref(cur);
      plan_release(p);
      return mdm_req_fail(r, rc, "out of memory");
    }
    own(p, text);
    if(found)
      version = json_integer_value(json_object_get(found, "version"));
    if(found && !strcmp(json_string_value(json_object_get(found, "hash")),
                        hash)) {
      action = "unchanged";
    }
    else {
      struct mdm_policy_change *c = &p->ch[p->n_ch++];
      c->kind = kind;
      c->name = name;
      c->doc_json = text;
      c->hash = own(p, strdup(hash));
      c->prior_version = version;
      action = found ? "updated" : "created";
      version++;
    }
    json_array_append_new(p->results,
                          json_pack("{s:s, s:s, s:s, s:I}", "kind", kind,
                                    "name", name, "action", action, "version",
                                    (json_int_t)version));
    json_array_append(p->planned_docs, d);
    snprintf(key, sizeof(key), "%s/%s", kind, name);
    json_object_set_new(p->planned_versions, key, json_integer(version));
  }
  /* Stored documents not in docs: kept, or deleted (prune / DELETE). */
  json_array_foreach(cur, i, it) {
    const char *kind = json_string_value(json_object_get(it, "kind"));
    const char *name = json_string_value(json_object_get(it, "name"));
    int is_listed = 0, is_deleted;
    size_t k;
    char key[200];
    json_array_foreach(docs, k, d)
      if(!strcmp(doc_kind(d), kind) && !strcmp(doc_name(d), name))
        is_listed = 1;
    if(is_listed)
      continue;
    is_deleted = is_prune || (del_kind && !strcmp(del_kind, kind) &&
                              !strcmp(del_name, name));
    if(is_deleted) {
      struct mdm_policy_change *c = &p->ch[p->n_ch++];
      /* Strings of cur live as long as p->results holds copies: keep the
       * names by copying them into results first. */
      json_t *res = json_pack("{s:s, s:s, s:s, s:O}", "kind", kind, "name",
                              name, "action", "deleted", "version",
                              json_object_get(it, "version"));
      json_array_append_new(p->results, res);
      c->kind = json_string_value(json_object_get(res, "kind"));
      c->name = json_string_value(json_object_get(res, "name"));
      c->doc_json = NULL;
      c->hash = NULL;
      c->prior_version = json_integer_value(json_object_get(it, "version"));
    }
    else {
      json_array_append(p->planned_docs, json_object_get(it, "document"));
      snprintf(key, sizeof(key), "%s/%s", kind, name);
      json_object_set(p->planned_versions, key,
                      json_object_get(it, "version"));
    }
  }
  json_decref(cur);
  return MDM_OK;
}

/* Keep only the result of kind/name (PUT and DELETE touch one document;
 * the others were only carried along). */
static void plan_only(struct plan *p, const char *kind, const char *name)
{
  json_t *kept = json_array(), *it;
  size_t i;
  json_array_foreach(p->results, i, it)
    if(!strcmp(json_string_value(json_object_get(it, "kind")), kind) &&
       !strcmp(json_string_value(json_object_get(it, "name")), name))
      json_array_append(kept, it);
  /* The changes point into the results' strings: keep those alive. */
  json_array_extend(kept, p->results);
  json_array_clear(p->results);
  json_array_append(p->results, json_array_get(kept, 0));
  json_decref(p->kept);
  p->kept = kept;
}

/* Carry out the plan (or, dry, only evaluate it) and answer. */
static mdm_rc plan_run(struct mdm_req *r, struct plan *p, int is_dry,
                       int status)
{
  struct mdm_reeval_result res;
  struct mdm_policyset *ps = NULL;
  json_t *out;
  char err[512];
  int64_t gen = 0;
  mdm_rc rc;

  memset(&res, 0, sizeof(res));
  if(is_dry) {
    rc = mdm_policyset_build(p->planned_docs, p->planned_versions,
                             r->who.tenant_id, -1, &ps, err, sizeof(err));
    if(rc)
      return mdm_req_fail(r, MDM_ERR_UNPROCESSABLE, "%s", err);
    rc = mdm_compliance_whatif(r->srv, r->who.tenant_id, ps, &res);
    mdm_policyset_put(ps);
    if(rc)
      return mdm_req_fail(r, rc, "cannot evaluate the planned policies");
  }
  else {
    /* Compile before storing: a set the evaluator refuses is not stored. */
    rc = mdm_policyset_build(p->planned_docs, p->planned_versions,
                             r->who.tenant_id, -1, &ps, err, sizeof(err));
    mdm_policyset_put(ps);
    if(rc)
      return mdm_req_fail(r, MDM_ERR_UNPROCESSABLE, "%s", err);
    if(p->n_ch) {
      rc = r->srv->store->ops->policy_apply(r->srv->store, r->who.tenant_id,
                                            p->ch, p->n_ch, r->who.actor,
                                            NULL, &gen);
      if(rc == MDM_ERR_CONFLICT)
        return mdm_req_fail(r, rc, "a policy changed while this request "
                                   "was made; retry");
      if(rc)
        return mdm_req_fail(r, rc, "cannot store the policies");
    }
    rc = mdm_compliance_reeval_tenant(r->srv, r->who.tenant_id, &res);
    /* Devices fetch the new configuration now rather than at their next
     * check-in (CONTRACT §5; a device whose bundle did not change gets a
     * 304 for its ETag). */
    if(p->n_ch && r->srv->push)
      mdm_push_wake_tenant(r->srv->push, r->who.tenant_id);
    if(rc) {
      /* The change is stored; devices will be evaluated at check-in. */
      mdm_warn("policies stored but re-evaluation failed: %s",
               mdm_strerror(rc));
      memset(&res, 0, sizeof(res));
      res.changes = json_array();
      res.counts = json_object();
    }
  }
  out = json_pack("{s:b, s:O, s:o}", "dry_run", is_dry, "results",
                  p->results, "compliance", compliance_json(&res));
  mdm_reeval_result_release(&res);
  return mdm_req_reply_json(r, status, out);
}

/* ---- writes ----------------------------------------------------------- */

mdm_rc mdm_api_policies_apply(struct mdm_req *r)
{
  static const char *const fields[] = {"documents", "dry_run", "prune", NULL};
  json_t *body = NULL, *docs, *d, *v;
  struct plan p;
  int is_dry = 0, is_prune = 0;
  size_t i, k;
  mdm_rc rc;

  memset(&p, 0, sizeof(p));
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  docs = json_object_get(body, "documents");
  if(!json_is_array(docs)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'documents': expected an "
                                        "array of policy documents");
    goto out;
  }
  if(json_array_size(docs) > MAX_DOCS) {
    rc = mdm_req_fail(r, MDM_ERR_TOOBIG, "field 'documents': at most %d",
                      MAX_DOCS);
    goto out;
  }
  v = json_object_get(body, "dry_run");
  if(v && !json_is_boolean(v)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'dry_run': expected a boolean");
    goto out;
  }
  is_dry = json_is_true(v);
  v = json_object_get(body, "prune");
  if(v && !json_is_boolean(v)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'prune': expected a boolean");
    goto out;
  }
  is_prune = json_is_true(v);
  /* All documents valid and distinct, or nothing happens. */
  json_array_foreach(docs, i, d) {
    char name[64];
    snprintf(name, sizeof(name), "documents[%zu]", i);
    rc = validate_json_doc(r, d, name);
    if(rc)
      goto out;
    for(k = 0; k < i; k++) {
      json_t *e = json_array_get(docs, k);
      if(!strcmp(doc_kind(e), doc_kind(d)) && !strcmp(doc_name(e), doc_name(d))) {
        rc = mdm_req_fail(r, MDM_ERR_UNPROCESSABLE,
                          "documents[%zu]: %s '%s' is also documents[%zu]", i,
                          doc_kind(d), doc_name(d), k);
        goto out;
      }
    }
  }
  rc = plan_make(r, docs, is_prune, NULL, NULL, &p);
  if(rc)
    goto out;
  rc = plan_run(r, &p, is_dry, 200);
out:
  plan_release(&p);
  json_decref(body);
  return rc;
}

mdm_rc mdm_api_policies_put(struct mdm_req *r)
{
  json_t *doc = NULL, *docs = NULL, *cur = NULL, *it;
  struct plan p;
  size_t i;
  int is_new = 1;
  mdm_rc rc;

  memset(&p, 0, sizeof(p));
  if(!mdm_doc_kind_known(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "unknown kind '%s'",
                        r->params[0]);
  rc = mdm_req_json_body(r, NULL, &doc);
  if(rc)
    return rc;
  rc = validate_json_doc(r, doc, "request body");
  if(rc)
    goto out;
  if(strcmp(doc_kind(doc), r->params[0]) || strcmp(doc_name(doc), r->params[1])) {
    rc = mdm_req_fail(r, MDM_ERR_UNPROCESSABLE,
                      "request body: the document is %s '%s', not %s '%s' "
                      "as the path says", doc_kind(doc), doc_name(doc),
                      r->params[0], r->params[1]);
    goto out;
  }
  /* Plan against everything stored, keeping the others as they are. */
  rc = r->srv->store->ops->policy_list(r->srv->store, r->who.tenant_id, NULL,
                                       &cur);
  if(rc) {
    mdm_req_fail(r, rc, "cannot read the stored policies");
    goto out;
  }
  docs = json_array();
  json_array_append(docs, doc);
  json_array_foreach(cur, i, it) {
    if(!strcmp(json_string_value(json_object_get(it, "kind")), doc_kind(doc)) &&
       !strcmp(json_string_value(json_object_get(it, "name")), doc_name(doc))) {
      is_new = 0;
      continue;
    }
    json_array_append(docs, json_object_get(it, "document"));
  }
  rc = plan_make(r, docs, 0, NULL, NULL, &p);
  if(rc)
    goto out;
  plan_only(&p, r->params[0], r->params[1]);
  rc = plan_run(r, &p, 0, is_new ? 201 : 200);
out:
  plan_release(&p);
  json_decref(cur);
  json_decref(docs);
  json_decref(doc);
  return rc;
}

mdm_rc mdm_api_policies_delete(struct mdm_req *r)
{
  json_t *cur = NULL, *docs = NULL, *it;
  struct plan p;
  size_t i;
  int is_found = 0;
  mdm_rc rc;

  memset(&p, 0, sizeof(p));
  if(!mdm_doc_kind_known(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "unknown kind '%s'",
                        r->params[0]);
  rc = r->srv->store->ops->policy_list(r->srv->store, r->who.tenant_id, NULL,
                                       &cur);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the stored policies");
  docs = json_array();
  json_array_foreach(cur, i, it) {
    if(!strcmp(json_string_value(json_object_get(it, "kind")), r->params[0]) &&
       !strcmp(json_string_value(json_object_get(it, "name")), r->params[1])) {
      is_found = 1;
      continue;
    }
    json_array_append(docs, json_object_get(it, "document"));
  }
  if(!is_found) {
    rc = mdm_req_fail(r, MDM_ERR_NOTFOUND, "no %s '%s'", r->params[0],
                      r->params[1]);
    goto out;
  }
  rc = plan_make(r, docs, 0, r->params[0], r->params[1], &p);
  if(rc)
    goto out;
  plan_only(&p, r->params[0], r->params[1]);
  rc = plan_run(r, &p, 0, 200);
out:
  plan_release(&p);
  json_decref(cur);
  json_decref(docs);
  return rc;
}
