/*
 * compliance.c: where mdmd runs the pure evaluator: at a check-in (only
 * when the facts, the policies or the labels changed since the stored
 * verdict), for a whole tenant after a policy change, and as a what-if for
 * a planned set of documents that changes nothing.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "server/compliance.h"

void mdm_checkin_verdict_release(struct mdm_checkin_verdict *cv)
{
  free(cv->reasons_json);
  cv->reasons_json = NULL;
}

mdm_rc mdm_compliance_checkin(struct mdm_server *srv, const char *tenant,
                              const char *device_id, json_t *facts,
                              const char *facts_hash,
                              struct mdm_checkin_verdict *out)
{
  struct mdm_store *st = srv->store;
  struct mdm_eval_state es;
  struct mdm_policyset *ps = NULL;
  struct mdm_device_verdict dv;
  json_t *labels = NULL;
  const char *platform;
  mdm_rc rc;

  memset(out, 0, sizeof(*out));
  rc = st->ops->device_eval_state(st, tenant, device_id, &es, NULL);
  if(rc)
    return rc;
  if(!strcmp(es.facts_hash, facts_hash) && es.eval_gen == es.policy_gen &&
     es.eval_gen >= 0) {
    /* Same facts, same policies, same labels: the stored verdict holds. */
    mdm_strlcpy(out->etag, es.policy_etag, sizeof(out->etag));
    return MDM_OK;
  }
  rc = st->ops->device_eval_state(st, tenant, device_id, &es, &labels);
  if(!rc)
    rc = mdm_policyset_current(srv, tenant, &ps);
  if(rc)
    goto out;
  platform = json_string_value(json_object_get(facts, "platform"));
  rc = mdm_policyset_eval(ps, facts, platform, labels, &dv);
  if(rc)
    goto out;
  out->has_verdict = 1;
  out->reasons_json = dv.reasons_json;
  mdm_strlcpy(out->etag, dv.etag, sizeof(out->etag));
  out->v.gen = ps->gen;
  out->v.state = mdm_verdict_name(dv.verdict);
  out->v.reasons_json = out->reasons_json;
  out->v.policy_etag = out->etag;
out:
  mdm_policyset_put(ps);
  json_decref(labels);
  return rc;
}

/* ---- whole-tenant evaluation ------------------------------------------ */

#define PUT_BATCH 5000
#define MAX_LISTED 100

/* Verdicts waiting to be written; two alternate, so the scan evaluates the
 * next batch while the writer commits the last one. */
struct put_batch {
  struct mdm_compliance_put puts[PUT_BATCH];
  char *owned[PUT_BATCH][3];   /* device id, facts hash, reasons */
  char etags[PUT_BATCH][72];
  size_t n;
};

struct scan_ctx {
  struct mdm_server *srv;
  const char *tenant;
  const struct mdm_policyset *ps;
  int is_dry;
  mdm_rc rc;
  struct mdm_reeval_result *res;
  struct put_batch *batch[2];
  int cur;
  pthread_t writer;
  int has_writer;
  mdm_rc writer_rc;
  size_t writer_changed;
  struct put_batch *writing;
};

static void batch_clear(struct put_batch *b)
{
  size_t i;
  for(i = 0; i < b->n; i++) {
    free(b->owned[i][0]);
    free(b->owned[i][1]);
    free(b->owned[i][2]);
  }
  b->n = 0;
}

static void *write_batch(void *arg)
{
  struct scan_ctx *x = arg;
  x->writer_rc = x->srv->store->ops->compliance_put(
    x->srv->store, x->tenant, x->ps->gen, x->writing->puts, x->writing->n,
    mdm_now_ms() / 1000, &x->writer_changed);
  return NULL;
}

/* Wait for the batch being written, if any. */
static void join_writer(struct scan_ctx *x)
{
  if(!x->has_writer)
    return;
  pthread_join(x->writer, NULL);
  x->has_writer = 0;
  if(x->writer_rc && !x->rc)
    x->rc = x->writer_rc;
  batch_clear(x->writing);
  x->writing = NULL;
}

/* Hand the current batch to a writer thread (or write it here when one
 * cannot be started) and switch to the other. */
static void flush_puts(struct scan_ctx *x, int is_last)
{
  struct put_batch *b = x->batch[x->cur];
  join_writer(x);
  if(!b->n || x->rc || x->is_dry) {
    batch_clear(b);
    return;
  }
  x->writing = b;
  if(!is_last && pthread_create(&x->writer, NULL, write_batch, x) == 0) {
    x->has_writer = 1;
    x->cur = !x->cur;
    return;
  }
  write_batch(x);
  if(x->writer_rc && !x->rc)
    x->rc = x->writer_rc;
  batch_clear(b);
  x->writing = NULL;
}

static const char *static_state(const char *s)
{
  if(!strcmp(s, "compliant"))
    return "compliant";
  if(!strcmp(s, "noncompliant"))
    return "noncompliant";
  return "unknown";
}

static int on_device(void *ctx, const char *device_id, const char *platform,
                     json_t *labels, const char *facts_hash, json_t *values,
                     const char *compliance, const char *reasons_json,
                     const char *policy_etag)
{
  struct scan_ctx *x = ctx;
  struct mdm_device_verdict dv;
  struct put_batch *b = x->batch[x->cur];
  json_t *facts;
  const char *state;
  int is_state_diff;

  facts = mdm_facts_from_paths(x->ps->paths, x->ps->n_paths, values);
  if(!facts) {
    x->rc = MDM_ERR_NOMEM;
    return 1;
  }
  /* The platform column is the facts' own "platform". */
  if(platform)
    json_object_set_new(facts, "platform", json_string(platform));
  x->rc = mdm_policyset_eval(x->ps, facts, platform, labels, &dv);
  json_decref(facts);
  if(x->rc)
    return 1;
  x->res->n_devices++;
  state = mdm_verdict_name(dv.verdict);
  is_state_diff = strcmp(state, compliance) != 0;
  if(is_state_diff) {
    x->res->n_changed++;
    if(json_array_size(x->res->changes) < MAX_LISTED)
      json_array_append_new(x->res->changes,
                            json_pack("{s:s, s:s, s:s}", "device_id",
                                      device_id, "from", compliance, "to",
                                      state));
  }
  json_object_set_new(x->res->counts, state,
                      json_integer(json_integer_value(json_object_get(
                                     x->res->counts, state)) + 1));
  if(!x->is_dry) {
    struct mdm_compliance_put *u = &b->puts[b->n];
    memset(u, 0, sizeof(*u));
    u->is_reasons_changed = strcmp(dv.reasons_json, reasons_json) != 0;
    u->is_same = !is_state_diff && !u->is_reasons_changed && policy_etag &&
                 !strcmp(dv.etag, policy_etag);
    u->is_state_changed = is_state_diff;
    /* What the store's change feed compares with (the event stream reports
     * a verdict whose state or reasons changed): known from the scan, so
     * the writer reads nothing more.  A static name, as the scan's text
     * is only borrowed. */
    u->has_prior = 1;
    u->prior_state = static_state(compliance);
    b->owned[b->n][0] = strdup(device_id);
    b->owned[b->n][1] = strdup(facts_hash ? facts_hash : "");
    b->owned[b->n][2] = u->is_same ? NULL : dv.reasons_json;
    if(!u->is_same)
      dv.reasons_json = NULL;
    mdm_strlcpy(b->etags[b->n], dv.etag, sizeof(b->etags[0]));
    u->device_id = b->owned[b->n][0];
    u->facts_hash = b->owned[b->n][1];
    u->state = state;
    u->reasons_json = b->owned[b->n][2];
    u->policy_etag = b->etags[b->n];
    b->n++;
    if(!u->device_id || !u->facts_hash) {
      x->rc = MDM_ERR_NOMEM;
      free(dv.reasons_json);
      return 1;
    }
    if(b->n == PUT_BATCH)
      flush_puts(x, 0);
  }
  free(dv.reasons_json);
  return x->rc != MDM_OK;
}

static mdm_rc run_scan(struct mdm_server *srv, const char *tenant,
                       const struct mdm_policyset *ps, int is_dry,
                       struct mdm_reeval_result *res)
{
  struct scan_ctx *x = calloc(1, sizeof(*x));
  mdm_rc rc;
  if(!x)
    return MDM_ERR_NOMEM;
  memset(res, 0, sizeof(*res));
  res->changes = json_array();
  res->counts = json_pack("{s:i, s:i, s:i}", "compliant", 0, "noncompliant",
                          0, "unknown", 0);
  x->srv = srv;
  x->tenant = tenant;
  x->ps = ps;
  x->is_dry = is_dry;
  x->res = res;
  if(!is_dry) {
    x->batch[0] = calloc(1, sizeof(struct put_batch));
    x->batch[1] = calloc(1, sizeof(struct put_batch));
    if(!x->batch[0] || !x->batch[1]) {
      free(x->batch[0]);
      free(x->batch[1]);
      free(x);
      mdm_reeval_result_release(res);
      return MDM_ERR_NOMEM;
    }
  }
  rc = srv->store->ops->device_eval_scan(srv->store, tenant,
                                         (const char *const *)ps->paths,
                                         ps->n_paths, on_device, x);
  if(!is_dry) {
    flush_puts(x, 1);
    join_writer(x);
    batch_clear(x->batch[0]);
    batch_clear(x->batch[1]);
    free(x->batch[0]);
    free(x->batch[1]);
  }
  if(!rc)
    rc = x->rc;
  free(x);
  if(rc)
    mdm_reeval_result_release(res);
  return rc;
}

void mdm_reeval_result_release(struct mdm_reeval_result *r)
{
  json_decref(r->changes);
  json_decref(r->counts);
  r->changes = r->counts = NULL;
}

mdm_rc mdm_compliance_reeval_tenant(struct mdm_server *srv, const char *tenant,
                                    struct mdm_reeval_result *res)
{
  struct mdm_policyset *ps = NULL;
  int64_t t0 = mdm_mono_ns();
  mdm_rc rc = mdm_policyset_current(srv, tenant, &ps);
  if(rc)
    return rc;
  rc = run_scan(srv, tenant, ps, 0, res);
  if(!rc)
    mdm_info("compliance: tenant %s generation %lld: %lld devices evaluated, "
             "%lld changed state, in %lld ms", tenant, (long long)ps->gen,
             (long long)res->n_devices, (long long)res->n_changed,
             (long long)((mdm_mono_ns() - t0) / 1000000));
  mdm_policyset_put(ps);
  return rc;
}

mdm_rc mdm_compliance_whatif(struct mdm_server *srv, const char *tenant,
                             const struct mdm_policyset *planned,
                             struct mdm_reeval_result *res)
{
  return run_scan(srv, tenant, planned, 1, res);
}
