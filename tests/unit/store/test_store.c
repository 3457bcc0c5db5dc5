/*
 * test_store.c: the SQLite store (src/store/store_sqlite.c) through its
 * interface: tenants, tokens, enrollment accounting, check-in, listing and
 * the audit chain, on a real database file in a temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "core/util.h"
#include "server/server.h"
#include "store/store.h"

struct fx {
  char dir[64];
  char path[128];
  struct mdm_store *st;
  struct mdm_tenant t;
  char *owner_token;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-store-XXXXXX");
  if(!mkdtemp(f->dir))
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/mdm.db", f->dir);
  if(mdm_store_open(f->path, &f->st))
    return -1;
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
  free(f);
  return 0;
}

static void test_db_file_private(void **state)
{
  struct fx *f = *state;
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_tenant(void **state)
{
  struct fx *f = *state;
  struct mdm_tenant t, t2;
  char *tok = NULL;
  json_t *list = NULL;
  assert_int_equal(f->st->ops->tenant_get(f->st, "default", &t), MDM_OK);
  assert_string_equal(t.id, f->t.id);
  assert_non_null(strstr(t.key_pem, "BEGIN PRIVATE KEY"));
  mdm_tenant_release(&t);
  assert_int_equal(f->st->ops->tenant_get(f->st, f->t.id, &t), MDM_OK);
  mdm_tenant_release(&t);
  assert_int_equal(f->st->ops->tenant_get(f->st, "nope", &t),
                   MDM_ERR_NOTFOUND);
  /* Duplicate name: conflict, nothing written. */
  assert_int_equal(mdm_tenant_create(f->st, "default", NULL, "test", &tok,
                                     NULL), MDM_ERR_CONFLICT);
  assert_int_equal(mdm_tenant_create(f->st, "Bad_Name", NULL, "test", &tok,
                                     NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_tenant_create(f->st, "acme", "eu-west", "test", &tok,
                                     &t2), MDM_OK);
  assert_string_equal(t2.region, "eu-west");
  free(tok);
  mdm_tenant_release(&t2);
  assert_int_equal(f->st->ops->tenant_list(f->st, &list), MDM_OK);
  assert_int_equal(json_array_size(list), 2);
  assert_string_equal(
    json_string_value(json_object_get(json_array_get(list, 0), "name")),
    "acme");
  json_decref(list);
}

static void test_token_auth(void **state)
{
  struct fx *f = *state;
  struct mdm_token_info info;
  char hash[65];
  mdm_sha256_hex(f->owner_token, strlen(f->owner_token), hash);
  assert_int_equal(f->st->ops->token_auth(f->st, hash, &info), MDM_OK);
  assert_string_equal(info.role, "owner");
  assert_string_equal(info.tenant_id, f->t.id);
  hash[0] = hash[0] == 'a' ? 'b' : 'a';
  assert_int_equal(f->st->ops->token_auth(f->st, hash, &info), MDM_ERR_AUTH);
  /* Delete: gone at once; deleting again is not found. */
  mdm_sha256_hex(f->owner_token, strlen(f->owner_token), hash);
  assert_int_equal(f->st->ops->token_auth(f->st, hash, &info), MDM_OK);
  assert_int_equal(f->st->ops->token_delete(f->st, f->t.id, info.id, NULL),
                   MDM_OK);
  assert_int_equal(f->st->ops->token_auth(f->st, hash, &info), MDM_ERR_AUTH);
  assert_int_equal(f->st->ops->token_delete(f->st, f->t.id, info.id, NULL),
                   MDM_ERR_NOTFOUND);
}

static mdm_rc enroll_one(struct fx *f, const char *etoken, const char *facts,
                         char *id_out)
{
  struct mdm_enroll_in in;
  char jti[MDM_UUID_LEN + 1], hash[65];
  struct mdm_audit_in a = {"test", "device.enroll", NULL, NULL};
  memset(&in, 0, sizeof(in));
  mdm_uuid_v4(id_out);
  mdm_uuid_v4(jti);
  mdm_sha256_hex(facts, strlen(facts), hash);
  in.etoken_id = etoken;
  in.device_id = id_out;
  in.token_jti = jti;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;
  a.target = id_out;
  return f->st->ops->enroll(f->st, f->t.id, &in, &a, NULL);
}

static void test_enroll_accounting(void **state)
{
  struct fx *f = *state;
  char et[MDM_UUID_LEN + 1], et2[MDM_UUID_LEN + 1], id[MDM_UUID_LEN + 1];
  json_t *labels = json_pack("{s:s}", "dept", "sales"), *out = NULL, *d;
  int64_t now = mdm_now_ms() / 1000;
  int i;

  mdm_uuid_v4(et);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et, now + 3600,
                                             3, labels, "test", NULL, &out),
                   MDM_OK);
  json_decref(out);
  for(i = 0; i < 3; i++)
    assert_int_equal(enroll_one(f, et, "{\"platform\":\"linux\"}", id),
                     MDM_OK);
  assert_int_equal(enroll_one(f, et, "{}", id), MDM_ERR_CONFLICT);
  /* Unknown token, revoked token, expired token. */
  mdm_uuid_v4(et2);
  assert_int_equal(enroll_one(f, et2, "{}", id), MDM_ERR_NOTFOUND);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et2, now + 3600,
                                             5, labels, "test", NULL, NULL),
                   MDM_OK);
  assert_int_equal(f->st->ops->etoken_revoke(f->st, f->t.id, et2, NULL),
                   MDM_OK);
  assert_int_equal(enroll_one(f, et2, "{}", id), MDM_ERR_NOTFOUND);
  mdm_uuid_v4(et2);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et2, now - 1, 5,
                                             labels, "test", NULL, NULL),
                   MDM_OK);
  assert_int_equal(enroll_one(f, et2, "{}", id), MDM_ERR_EXPIRED);

  /* Inherited labels; uses counted. */
  assert_int_equal(f->st->ops->etoken_list(f->st, f->t.id, &out), MDM_OK);
  assert_int_equal(json_array_size(out), 3);
  {
    size_t k;
    json_t *e;
    int found = 0;
    json_array_foreach(out, k, e) {
      if(!strcmp(json_string_value(json_object_get(e, "id")), et)) {
        assert_int_equal(json_integer_value(json_object_get(e, "uses")), 3);
        assert_int_equal(json_integer_value(json_object_get(e, "max_uses")),
                         3);
        found = 1;
      }
    }
    assert_true(found);
  }
  json_decref(out);
  mdm_uuid_v4(et2);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et2, now + 60, 1,
                                             labels, "test", NULL, NULL),
                   MDM_OK);
  assert_int_equal(enroll_one(f, et2, "{\"hostname\":\"h\"}", id), MDM_OK);
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, id, &d), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(
                        json_object_get(d, "labels"), "dept")), "sales");
  assert_string_equal(json_string_value(json_object_get(d, "hostname")), "h");
  assert_string_equal(json_string_value(json_object_get(d, "state")),
                      "active");
  json_decref(d);
  json_decref(labels);
}

static void test_checkin_and_list(void **state)
{
  struct fx *f = *state;
  char et[MDM_UUID_LEN + 1], ids[7][MDM_UUID_LEN + 1], hash[65];
  json_t *labels = json_object(), *items = NULL, *d = NULL, *st = NULL;
  struct mdm_device_filter flt;
  struct mdm_checkin_in in;
  const char *facts2 = "{\"hostname\":\"renamed\",\"platform\":\"linux\"}";
  char *cursor = NULL;
  int i, seen = 0;

  mdm_uuid_v4(et);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et,
                                             mdm_now_ms() / 1000 + 60, 7,
                                             labels, "t", NULL, NULL),
                   MDM_OK);
  for(i = 0; i < 7; i++)
    assert_int_equal(enroll_one(f, et, i % 2 ? "{\"platform\":\"linux\"}"
                                             : "{\"platform\":\"macos\"}",
                                ids[i]), MDM_OK);
  mdm_sha256_hex(facts2, strlen(facts2), hash);
  memset(&in, 0, sizeof(in));
  in.device_id = ids[0];
  in.facts_json = facts2;
  in.facts_hash = hash;
  in.now = 2000000000;
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, &st), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(st, "compliance")),
                      "unknown");
  json_decref(st);
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, ids[0], &d),
                   MDM_OK);
  assert_string_equal(json_string_value(json_object_get(d, "hostname")),
                      "renamed");
  assert_string_equal(json_string_value(json_object_get(d, "last_seen")),
                      "2033-05-18T03:33:20Z");
  json_decref(d);
  /* Unknown device: not a check-in. */
  in.device_id = "00000000-0000-4000-8000-000000000000";
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, NULL),
                   MDM_ERR_AUTH);
  /* Another tenant's id does not reach this device. */
  in.device_id = ids[1];
  assert_int_equal(f->st->ops->checkin(f->st, "other", &in, NULL),
                   MDM_ERR_AUTH);
  assert_int_equal(f->st->ops->device_get(f->st, "other", ids[1], &d),
                   MDM_ERR_NOTFOUND);

  /* Pages of 3 over 7: 3 + 3 + 1, ascending ids, no repeats. */
  memset(&flt, 0, sizeof(flt));
  flt.limit = 3;
  do {
    free((char *)flt.after_id);
    flt.after_id = cursor;
    cursor = NULL;
    assert_int_equal(f->st->ops->device_list(f->st, f->t.id, &flt, &items,
                                             &cursor), MDM_OK);
    seen += (int)json_array_size(items);
    json_decref(items);
  } while(cursor);
  free((char *)flt.after_id);
  assert_int_equal(seen, 7);

  memset(&flt, 0, sizeof(flt));
  flt.limit = 100;
  flt.platform = "macos";
  assert_int_equal(f->st->ops->device_list(f->st, f->t.id, &flt, &items,
                                           &cursor), MDM_OK);
  assert_int_equal(json_array_size(items), 3);  /* ids 2, 4, 6 */
  assert_null(cursor);
  json_decref(items);
  json_decref(labels);
}

static void test_patch_labels(void **state)
{
  struct fx *f = *state;
  char et[MDM_UUID_LEN + 1], id[MDM_UUID_LEN + 1];
  json_t *labels = json_pack("{s:s, s:s}", "a", "1", "b", "2");
  json_t *patch = json_pack("{s:n, s:s}", "a", "c", "3");
  json_t *upn = json_string("alice@corp.example"), *d = NULL, *items = NULL;
  struct mdm_device_filter flt;
  char *cursor = NULL;

  mdm_uuid_v4(et);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et,
                                             mdm_now_ms() / 1000 + 60, 1,
                                             labels, "t", NULL, NULL),
                   MDM_OK);
  assert_int_equal(enroll_one(f, et, "{}", id), MDM_OK);
  assert_int_equal(f->st->ops->device_patch(f->st, f->t.id, id, patch, upn,
                                            NULL, &d), MDM_OK);
  assert_null(json_object_get(json_object_get(d, "labels"), "a"));
  assert_string_equal(json_string_value(json_object_get(
                        json_object_get(d, "labels"), "b")), "2");
  assert_string_equal(json_string_value(json_object_get(
                        json_object_get(d, "labels"), "c")), "3");
  assert_string_equal(json_string_value(json_object_get(
                        d, "user_principal_name")), "alice@corp.example");
  json_decref(d);
  memset(&flt, 0, sizeof(flt));
  flt.limit = 10;
  flt.label_key[0] = "c";
  flt.label_val[0] = "3";
  flt.n_labels = 1;
  assert_int_equal(f->st->ops->device_list(f->st, f->t.id, &flt, &items,
                                           &cursor), MDM_OK);
  assert_int_equal(json_array_size(items), 1);
  json_decref(items);
  flt.label_val[0] = "4";
  assert_int_equal(f->st->ops->device_list(f->st, f->t.id, &flt, &items,
                                           &cursor), MDM_OK);
  assert_int_equal(json_array_size(items), 0);
  json_decref(items);
  assert_int_equal(f->st->ops->device_patch(f->st, f->t.id,
                                            "00000000-0000-4000-8000-"
                                            "000000000000", patch, NULL, NULL,
                                            NULL), MDM_ERR_NOTFOUND);
  json_decref(labels);
  json_decref(patch);
  json_decref(upn);
}

static void test_audit_chain(void **state)
{
  struct fx *f = *state;
  struct mdm_audit_verify v;
  struct mdm_audit_in a = {"token:x", "device.update", "d1", NULL};
  json_t *items = NULL, *detail = json_pack("{s:s}", "k", "v");
  sqlite3 *db;
  int64_t next = 0;
  int i;
  char et[MDM_UUID_LEN + 1];

  a.detail = detail;
  for(i = 0; i < 4; i++) {
    mdm_uuid_v4(et);
    assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et,
                                               mdm_now_ms() / 1000 + 60, 1,
                                               detail, "t", &a, NULL),
                     MDM_OK);
  }
  assert_int_equal(f->st->ops->audit_verify(f->st, f->t.id, &v), MDM_OK);
  assert_true(v.ok);
  assert_int_equal(v.records, 5);  /* tenant.create + 4 */
  assert_int_equal(f->st->ops->audit_list(f->st, f->t.id, 0, 2, &items,
                                          &next), MDM_OK);
  assert_int_equal(json_array_size(items), 2);
  assert_int_equal(next, 2);
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(items, 1), "prev_hash")),
                      json_string_value(json_object_get(
                        json_array_get(items, 0), "hash")));
  json_decref(items);

  /* Change one record behind the store's back: the chain says where. */
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE audit SET detail='{\"k\":\"w\"}'"
                                    " WHERE seq = 3", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(f->st->ops->audit_verify(f->st, f->t.id, &v), MDM_OK);
  assert_false(v.ok);
  assert_int_equal(v.first_bad, 3);
  assert_int_equal(v.records, 5);
  json_decref(detail);
}

static void test_audit_rollback_with_failed_change(void **state)
{
  struct fx *f = *state;
  struct mdm_audit_verify v;
  struct mdm_audit_in a = {"token:x", "token.delete", "nope", NULL};
  assert_int_equal(f->st->ops->token_delete(f->st, f->t.id,
                                            "00000000-0000-4000-8000-"
                                            "000000000000", &a),
                   MDM_ERR_NOTFOUND);
  assert_int_equal(f->st->ops->audit_verify(f->st, f->t.id, &v), MDM_OK);
  assert_int_equal(v.records, 1);  /* only tenant.create */
}


static int scan_cb(void *ctx, const char *device_id, const char *platform,
                   json_t *labels, const char *facts_hash, json_t *values,
                   const char *compliance, const char *reasons_json,
                   const char *policy_etag)
{
  json_t *seen = ctx;
  (void)labels;
  (void)facts_hash;
  (void)reasons_json;
  (void)policy_etag;
  json_object_set_new(seen, device_id,
                      json_pack("{s:s?, s:O, s:s}", "platform", platform,
                                "values", values, "compliance", compliance));
  return 0;
}

static void test_policies_and_verdicts(void **state)
{
  struct fx *f = *state;
  struct mdm_policy_change ch[2];
  struct mdm_audit_verify v;
  struct mdm_verdict_in vd;
  struct mdm_checkin_in in;
  struct mdm_compliance_put put;
  struct mdm_eval_state es;
  char et[MDM_UUID_LEN + 1], id[MDM_UUID_LEN + 1], hash[65];
  const char *facts = "{\"os\":{\"version\":\"12\"},\"platform\":\"linux\"}";
  const char *paths[] = {"os.version", "encryption.root_encrypted"};
  json_t *results = NULL, *items = NULL, *labels = json_object(), *d = NULL;
  json_t *seen = json_object();
  int64_t gen = 0;
  size_t n_changed = 99;

  memset(ch, 0, sizeof(ch));
  ch[0].kind = "CompliancePolicy";
  ch[0].name = "baseline";
  ch[0].doc_json = "{\"kind\":\"CompliancePolicy\"}";
  ch[0].hash = "h1";
  ch[0].prior_version = 0;
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 1, "token:t",
                                            &results, &gen), MDM_OK);
  assert_int_equal(gen, 1);
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(results, 0), "action")), "created");
  json_decref(results);
  /* A stale prior version is a conflict and changes nothing. */
  ch[0].hash = "h2";
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 1, "token:t",
                                            NULL, &gen), MDM_ERR_CONFLICT);
  ch[0].prior_version = 1;
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 1, "token:t",
                                            NULL, &gen), MDM_OK);
  assert_int_equal(gen, 2);
  assert_int_equal(f->st->ops->policy_list(f->st, f->t.id, NULL, &items),
                   MDM_OK);
  assert_int_equal(json_array_size(items), 1);
  assert_int_equal(json_integer_value(json_object_get(
                     json_array_get(items, 0), "version")), 2);
  assert_string_equal(json_string_value(json_object_get(
                        json_array_get(items, 0), "author")), "token:t");
  json_decref(items);
  assert_int_equal(f->st->ops->audit_verify(f->st, f->t.id, &v), MDM_OK);
  assert_true(v.ok);
  assert_int_equal(v.records, 3);  /* tenant, create, update */

  /* A device, checked in with a verdict of the current generation. */
  mdm_uuid_v4(et);
  assert_int_equal(f->st->ops->etoken_create(f->st, f->t.id, et,
                                             mdm_now_ms() / 1000 + 60, 1,
                                             labels, "t", NULL, NULL),
                   MDM_OK);
  assert_int_equal(enroll_one(f, et, facts, id), MDM_OK);
  mdm_sha256_hex(facts, strlen(facts), hash);
  memset(&in, 0, sizeof(in));
  memset(&vd, 0, sizeof(vd));
  in.device_id = id;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = 1000;
  in.verdict = &vd;
  vd.gen = 1;  /* stale: not written */
  vd.state = "noncompliant";
  vd.reasons_json = "[]";
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, NULL), MDM_OK);
  assert_int_equal(f->st->ops->device_eval_state(f->st, f->t.id, id, &es,
                                                 NULL), MDM_OK);
  assert_string_equal(es.compliance, "unknown");
  assert_int_equal(es.policy_gen, 2);
  vd.gen = 2;
  vd.policy_etag = "\"e1\"";
  vd.reasons_json = "[{\"message\":\"x\"}]";
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, NULL), MDM_OK);
  assert_int_equal(f->st->ops->device_eval_state(f->st, f->t.id, id, &es,
                                                 NULL), MDM_OK);
  assert_string_equal(es.compliance, "noncompliant");
  assert_int_equal(es.eval_gen, 2);
  assert_string_equal(es.policy_etag, "\"e1\"");
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, id, &d), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(json_array_get(
                        json_object_get(d, "compliance_reasons"), 0),
                        "message")), "x");
  json_decref(d);

  /* A tenant scan sees the requested fact values. */
  assert_int_equal(f->st->ops->device_eval_scan(f->st, f->t.id, paths, 2,
                                                scan_cb, seen), MDM_OK);
  assert_int_equal(json_object_size(seen), 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(
                        json_object_get(seen, id), "values"), 0)), "12");
  assert_true(json_is_null(json_array_get(json_object_get(
                json_object_get(seen, id), "values"), 1)));

  /* A re-evaluation computed from other facts is not written. */
  memset(&put, 0, sizeof(put));
  put.device_id = id;
  put.is_state_changed = 1;
  put.facts_hash = "not-the-current-facts";
  put.state = "compliant";
  put.reasons_json = "[]";
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, 2, &put, 1,
                                              2000, &n_changed), MDM_OK);
  assert_int_equal(n_changed, 0);
  put.facts_hash = hash;
  put.is_state_changed = 1;
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, 2, &put, 1,
                                              2000, &n_changed), MDM_OK);
  assert_int_equal(n_changed, 1);
  /* A batch computed under a replaced generation writes nothing. */
  put.state = "unknown";
  assert_int_equal(f->st->ops->compliance_put(f->st, f->t.id, 1, &put, 1,
                                              2000, &n_changed), MDM_OK);
  assert_int_equal(n_changed, 0);
  assert_int_equal(f->st->ops->device_eval_state(f->st, f->t.id, id, &es,
                                                 NULL), MDM_OK);
  assert_string_equal(es.compliance, "compliant");

  /* Delete: gone, generation moves. */
  ch[0].doc_json = NULL;
  ch[0].prior_version = 2;
  assert_int_equal(f->st->ops->policy_apply(f->st, f->t.id, ch, 1, "token:t",
                                            NULL, &gen), MDM_OK);
  assert_int_equal(gen, 3);
  assert_int_equal(f->st->ops->policy_get(f->st, f->t.id, "CompliancePolicy",
                                          "baseline", &d), MDM_ERR_NOTFOUND);
  json_decref(seen);
  json_decref(labels);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_db_file_private, setup, teardown),
    cmocka_unit_test_setup_teardown(test_tenant, setup, teardown),
    cmocka_unit_test_setup_teardown(test_token_auth, setup, teardown),
    cmocka_unit_test_setup_teardown(test_enroll_accounting, setup, teardown),
    cmocka_unit_test_setup_teardown(test_checkin_and_list, setup, teardown),
    cmocka_unit_test_setup_teardown(test_patch_labels, setup, teardown),
    cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
    cmocka_unit_test_setup_teardown(test_audit_rollback_with_failed_change,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(test_policies_and_verdicts, setup,
                                    teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
