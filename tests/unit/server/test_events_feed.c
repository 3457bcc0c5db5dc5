/*
 * test_events_feed.c: the store's change feed that the event stream reads
 * (store.h "the change feed", store.c change sets, the capture in
 * store_sqlite.c's writer): exactly what a commit kept reaches the hook,
 * a job that rolled back reports nothing, and a verdict is a change only
 * when its state or reasons differ from the stored ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/util.h"
#include "server/server.h"
#include "store/store.h"

/* ---- change sets -------------------------------------------------------- */

static void test_set_mark_truncate(void **state)
{
  struct mdm_change_set *set;
  struct mdm_change_home *home = mdm_change_home_new();
  struct mdm_change t, *c;
  struct mdm_change_mark m;
  char *big = malloc(100000);
  int i, n;
  (void)state;
  memset(big, 'x', 99999);
  big[99999] = '\0';
  set = mdm_change_set_new(home);
  memset(&t, 0, sizeof(t));
  t.kind = MDM_CHANGE_AUDIT;
  t.tenant_id = "t";
  t.action = "a.one";
  for(i = 0; i < 3; i++)
    assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  mdm_change_set_mark(set, &m);
  t.action = "a.later";
  t.detail_json = big;   /* a chunk of its own */
  assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  t.detail_json = NULL;
  assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  assert_int_equal(set->n, 5);
  assert_string_equal(set->last->action, "a.later");
  mdm_change_set_truncate(set, &m);
  assert_int_equal(set->n, 3);
  for(n = 0, c = set->first; c; c = c->next, n++)
    assert_string_equal(c->action, "a.one");
  assert_int_equal(n, 3);
  assert_ptr_equal(set->last->next, NULL);
  /* the strings are copies */
  t.action = "a.two";
  assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  assert_string_equal(set->last->action, "a.two");
  assert_string_equal(set->first->tenant_id, "t");
  assert_ptr_not_equal(set->first->tenant_id, t.tenant_id);
  /* back to an empty set */
  memset(&m, 0, sizeof(m));
  mdm_change_set_truncate(set, &m);
  assert_int_equal(set->n, 0);
  assert_null(set->first);
  assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  assert_ptr_equal(set->first, set->last);
  /* given back: freed by its producer's reclaim (ASan checks) */
  mdm_change_set_done(set);
  mdm_change_home_reclaim(home);
  mdm_change_home_free(home);
  /* no home: freed at once */
  set = mdm_change_set_new(NULL);
  assert_int_equal(mdm_change_set_add(set, &t), MDM_OK);
  mdm_change_set_done(set);
  free(big);
}

/* ---- the feed of a real SQLite store ------------------------------------ */

#define MAX_SEEN 64

struct seen {
  char kind, action[48], device[40], state[16], prev[16], type[32];
  char reasons[128];
  int set_no;
};

struct fx {
  char dir[64];
  struct mdm_store *st;
  struct mdm_tenant t;
  char *owner_token;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct seen seen[MAX_SEEN];
  int n_seen, n_sets;
};

static void copy(char *dst, size_t n, const char *s)
{
  mdm_strlcpy(dst, s ? s : "-", n);
}

static void on_change(void *ctx, struct mdm_change_set *set)
{
  struct fx *f = ctx;
  struct mdm_change *c;
  pthread_mutex_lock(&f->lock);
  f->n_sets++;
  for(c = set->first; c && f->n_seen < MAX_SEEN; c = c->next) {
    struct seen *s = &f->seen[f->n_seen++];
    s->kind = c->kind == MDM_CHANGE_AUDIT ? 'a' : 'c';
    copy(s->action, sizeof(s->action), c->action);
    copy(s->device, sizeof(s->device), c->device_id);
    copy(s->state, sizeof(s->state), c->state);
    copy(s->prev, sizeof(s->prev), c->prev_state);
    copy(s->type, sizeof(s->type), c->command_type);
    copy(s->reasons, sizeof(s->reasons), c->reasons_json);
    s->set_no = f->n_sets;
  }
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->lock);
  mdm_change_set_done(set);
}

/* Wait until n changes in all were seen (the hook runs after the callers
 * have their answers). */
static void wait_seen(struct fx *f, int n)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  pthread_mutex_lock(&f->lock);
  while(f->n_seen < n)
    if(pthread_cond_timedwait(&f->cond, &f->lock, &ts))
      break;
  pthread_mutex_unlock(&f->lock);
  assert_int_equal(f->n_seen, n);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  char path[128];
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-feed-XXXXXX");
  if(!mkdtemp(f->dir))
    return -1;
  snprintf(path, sizeof(path), "%s/mdm.db", f->dir);
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->cond, NULL);
  if(mdm_store_open(path, &f->st))
    return -1;
  mdm_store_set_change_hook(f->st, on_change, f);
  if(mdm_tenant_create(f->st, "default", NULL, "test", &f->owner_token,
                       &f->t))
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  char cmd[160];
  mdm_store_close(f->st);
  mdm_tenant_release(&f->t);
  free(f->owner_token);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  if(system(cmd) != 0)
    return -1;
  pthread_mutex_destroy(&f->lock);
  pthread_cond_destroy(&f->cond);
  free(f);
  return 0;
}

static void checkin_verdict(struct fx *f, const char *id, const char *facts,
                            const char *state, const char *reasons)
{
  struct mdm_checkin_in in;
  struct mdm_verdict_in vd;
  char hash[65];
  int64_t gen = 0;
  assert_int_equal(f->st->ops->policy_gen(f->st, f->t.id, &gen), MDM_OK);
  mdm_sha256_hex(facts, strlen(facts), hash);
  memset(&in, 0, sizeof(in));
  memset(&vd, 0, sizeof(vd));
  in.device_id = id;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;
  in.verdict = &vd;
  vd.gen = gen;
  vd.state = state;
  vd.reasons_json = reasons;
  vd.policy_etag = "\"e\"";
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, NULL), MDM_OK);
}

static void test_feed(void **state)
{
  struct fx *f = *state;
  struct mdm_policy_change ch[2];
  struct mdm_enroll_in in;
  struct mdm_verdict_in vd;
  struct mdm_command_new cn;
  struct mdm_compliance_put put;
  struct mdm_eval_state es;
  struct mdm_audit_in a = {"test", "device.enroll", NULL, NULL};
  char et[MDM_UUID_LEN + 1], id[MDM_UUID_LEN + 1], jti[MDM_UUID_LEN + 1];
  char hash[65], upn[64];
  const char *facts = "{\"platform\":\"linux\"}";
  json_t *labels = json_object(), *cmd = NULL, *out = NULL;
  int64_t gen = 0;
  int n;

  wait_seen(f, 1);
  assert_string_equal(f->seen[0].action, "tenant.create");

  /* A job that rolls back after appending an audit record reports
   * nothing: the second document's prior version is wrong. */
  memset(ch, 0, sizeof(ch));
  ch[0].kind = ch[1].kind = "CompliancePolicy";
  ch[0].name = "a";
  ch[1].name = "b";
  ch[0].doc_json = ch[1].doc_json = "{\"kind\":\"CompliancePolicy\"}";
  ch[0].hash = ch[1].hash = "h";
  ch[1].prior_version = 7;
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 2, "token:t",
                                            NULL, &gen), MDM_ERR_CONFLICT);
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 1, "token:t",
                                            NULL, &gen), MDM_OK);
  wait_seen(f, 2);
  assert_string_equal(f->seen[1].action, "policy.create");
  assert_string_equal(f->seen[1].device, "-");

  /* Enrollment with a first verdict: the verdict (no previous state) and
   * the record, in that order, in one set. */
  mdm_uuid_v4(et);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et,
                                             mdm_now_ms() / 1000 + 60, 1,
                                             labels, "t", NULL, NULL),
                   MDM_OK);
  memset(&in, 0, sizeof(in));
  memset(&vd, 0, sizeof(vd));
  mdm_uuid_v4(id);
  mdm_uuid_v4(jti);
  mdm_sha256_hex(facts, strlen(facts), hash);
  in.etoken_id = et;
  in.device_id = id;
  in.token_jti = jti;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;
  in.verdict = &vd;
  vd.gen = gen;
  vd.state = "compliant";
  vd.reasons_json = "[]";
  a.target = id;
  assert_int_equal(f->st->ops->enroll(f->st, f->t.id, &in, &a, NULL),
                   MDM_OK);
  wait_seen(f, 4);   /* etoken_create had no audit record: none */
  assert_int_equal(f->seen[2].kind, 'c');
  assert_string_equal(f->seen[2].device, id);
  assert_string_equal(f->seen[2].state, "compliant");
  assert_string_equal(f->seen[2].prev, "-");
  assert_string_equal(f->seen[3].action, "device.enroll");
  assert_string_equal(f->seen[3].device, id);
  assert_int_equal(f->seen[2].set_no, f->seen[3].set_no);

  /* Check-ins: a new state is a change; the same verdict is none; the
   * same state with other reasons is one. */
  checkin_verdict(f, id, "{\"platform\":\"linux\",\"a\":1}", "noncompliant",
                  "[{\"fact\":\"x\"}]");
  checkin_verdict(f, id, "{\"platform\":\"linux\",\"a\":2}", "noncompliant",
                  "[{\"fact\":\"x\"}]");
  checkin_verdict(f, id, "{\"platform\":\"linux\",\"a\":3}", "noncompliant",
                  "[{\"fact\":\"y\"}]");
  wait_seen(f, 6);
  assert_string_equal(f->seen[4].state, "noncompliant");
  assert_string_equal(f->seen[4].prev, "compliant");
  assert_string_equal(f->seen[4].reasons, "[{\"fact\":\"x\"}]");
  assert_string_equal(f->seen[5].prev, "noncompliant");
  assert_string_equal(f->seen[5].reasons, "[{\"fact\":\"y\"}]");

  /* A single re-evaluation without what the scan knew (as a label change
   * does): the store compares; only the ETag moving is no change. */
  assert_int_equal(f->st->ops->device_eval_state(f->st, f->t.id, id, &es,
                                                 NULL), MDM_OK);
  memset(&put, 0, sizeof(put));
  put.device_id = id;
  put.facts_hash = es.facts_hash;
  put.state = "noncompliant";
  put.reasons_json = "[{\"fact\":\"y\"}]";
  put.policy_etag = "\"other\"";
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, es.policy_gen,
                                              &put, 1, 1, NULL), MDM_OK);
  put.state = "compliant";
  put.reasons_json = "[]";
  put.is_state_changed = 1;
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, es.policy_gen,
                                              &put, 1, 1, NULL), MDM_OK);
  /* From a scan: as it says. */
  put.has_prior = 1;
  put.prior_state = "compliant";
  put.state = "unknown";
  put.reasons_json = "[{\"state\":\"unknown\"}]";
  put.is_state_changed = 1;
  put.is_reasons_changed = 1;
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, es.policy_gen,
                                              &put, 1, 1, NULL), MDM_OK);
  wait_seen(f, 8);
  assert_string_equal(f->seen[6].state, "compliant");
  assert_string_equal(f->seen[6].prev, "noncompliant");
  assert_string_equal(f->seen[7].state, "unknown");
  assert_string_equal(f->seen[7].prev, "compliant");

  /* Commands: the record names the command; the feed adds its device and
   * type, also where the record itself does not say them (cancel). */
  memset(&cn, 0, sizeof(cn));
  cn.type = "lock";
  cn.params_json = "{}";
  cn.now = mdm_now_ms() / 1000;
  cn.expires_at = cn.now + 600;
  cn.actor = "token:t";
  assert_int_equal(f->st->ops->command_create(f->st, f->t.id, id, &cn, &cmd),
                   MDM_OK);
  assert_int_equal(f->st->ops->command_cancel(
                     f->st, f->t.id,
                     json_string_value(json_object_get(cmd, "id")),
                     cn.now, "token:t", &out), MDM_OK);
  wait_seen(f, 10);
  for(n = 8; n < 10; n++) {
    assert_string_equal(f->seen[n].device, id);
    assert_string_equal(f->seen[n].type, "lock");
  }
  assert_string_equal(f->seen[8].action, "command.create");
  assert_string_equal(f->seen[9].action, "command.cancel");

  /* The event stream reads the user principal name itself. */
  assert_int_equal(f->st->ops->device_upn(f->st, f->t.id, id, upn,
                                          sizeof(upn)), MDM_OK);
  assert_string_equal(upn, "");
  assert_int_equal(f->st->ops->device_upn(f->st, f->t.id, et, upn,
                                          sizeof(upn)), MDM_ERR_NOTFOUND);
  json_decref(labels);
  json_decref(cmd);
  json_decref(out);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_set_mark_truncate),
    cmocka_unit_test_setup_teardown(test_feed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
