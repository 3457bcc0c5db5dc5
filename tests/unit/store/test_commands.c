/*
 * test_commands.c: the command queue of the SQLite store
 * (src/store/store_sqlite.c, "commands"): lifecycle, idempotent results,
 * expiry, cancel rules, bulk selectors, retirement through a wipe, the
 * check-in's pending count and the audit records of every transition, on a
 * real database file in a temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/util.h"
#include "server/server.h"
#include "store/store.h"

#define NOW 2000000000

struct fx {
  char dir[64];
  char path[128];
  struct mdm_store *st;
  struct mdm_tenant t;
  char *owner_token;
  char et[MDM_UUID_LEN + 1];
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  json_t *labels = json_object();
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-cmd-XXXXXX");
  if(!mkdtemp(f->dir))
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/mdm.db", f->dir);
  if(mdm_store_open(f->path, &f->st))
    return -1;
  if(mdm_tenant_create(f->st, "default", NULL, "test", &f->owner_token,
                       &f->t))
    return -1;
  mdm_uuid_v4(f->et);
  if(f->st->ops->etoken_create(f->st, f->t.id, f->et,
                               mdm_now_ms() / 1000 + 3600, 100, labels, "t",
                               NULL, NULL))
    return -1;
  json_decref(labels);
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

static void enroll(struct fx *f, const char *facts, char *id_out)
{
  struct mdm_enroll_in in;
  char jti[MDM_UUID_LEN + 1], hash[65];
  memset(&in, 0, sizeof(in));
  mdm_uuid_v4(id_out);
  mdm_uuid_v4(jti);
  mdm_sha256_hex(facts, strlen(facts), hash);
  in.etoken_id = f->et;
  in.device_id = id_out;
  in.token_jti = jti;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;  /* the token must be valid */
  assert_int_equal(f->st->ops->enroll(f->st, f->t.id, &in, NULL, NULL),
                   MDM_OK);
}

static void cmd_new(struct mdm_command_new *in, const char *type,
                    int64_t now, int64_t ttl)
{
  memset(in, 0, sizeof(*in));
  in->type = type;
  in->params_json = "{}";
  in->now = now;
  in->expires_at = now + ttl;
  in->actor = "token:t";
}

/* Create a command; its id into id. */
static mdm_rc create(struct fx *f, const char *device, const char *type,
                     int64_t now, int64_t ttl, char *id)
{
  struct mdm_command_new in;
  json_t *out = NULL;
  mdm_rc rc;
  cmd_new(&in, type, now, ttl);
  rc = f->st->ops->command_create(f->st, f->t.id, device, &in, &out);
  if(!rc)
    mdm_strlcpy(id, json_string_value(json_object_get(out, "id")),
                MDM_UUID_LEN + 1);
  json_decref(out);
  return rc;
}

static const char *sfield(json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "(null)";
}

/* The status of command id as the store shows it at now. */
static void expect_status(struct fx *f, const char *id, int64_t now,
                          const char *status)
{
  json_t *c = NULL;
  assert_int_equal(f->st->ops->command_get(f->st, f->t.id, id, now, &c),
                   MDM_OK);
  assert_string_equal(sfield(c, "status"), status);
  json_decref(c);
}

/* How many audit records have this action (and target, if given). */
static int audit_count(struct fx *f, const char *action, const char *target)
{
  json_t *items = NULL, *it;
  int64_t next = 0;
  size_t i;
  int n = 0;
  assert_int_equal(f->st->ops->audit_list(f->st, f->t.id, 0, 100000, &items,
                                          &next), MDM_OK);
  json_array_foreach(items, i, it) {
    if(!strcmp(sfield(it, "action"), action) &&
       (!target || !strcmp(sfield(it, "target"), target)))
      n++;
  }
  json_decref(items);
  return n;
}

static void expect_chain_ok(struct fx *f)
{
  struct mdm_audit_verify v;
  assert_int_equal(f->st->ops->audit_verify(f->st, f->t.id, &v), MDM_OK);
  assert_true(v.ok);
}

static int64_t pending_full(struct fx *f, const char *device, int64_t now)
{
  struct mdm_checkin_in in;
  struct mdm_verdict_in vd;
  const char *facts = "{\"platform\":\"linux\"}";
  unsigned char bh[32];
  char hash[65];
  json_t *st = NULL;
  int64_t n;
  memset(bh, 7, sizeof(bh));
  memset(&in, 0, sizeof(in));
  memset(&vd, 0, sizeof(vd));
  mdm_sha256_hex(facts, strlen(facts), hash);
  vd.gen = 0;
  vd.state = "compliant";
  vd.reasons_json = "[]";
  in.device_id = device;
  in.facts_json = facts;
  in.facts_hash = hash;
  in.now = now;
  in.verdict = &vd;
  in.body_hash = bh;
  assert_int_equal(f->st->ops->checkin(f->st, f->t.id, &in, &st), MDM_OK);
  n = json_integer_value(json_object_get(st, "pending_commands"));
  assert_true(json_is_integer(json_object_get(st, "pending_commands")));
  json_decref(st);
  return n;
}

static int64_t pending_touch(struct fx *f, const char *device, int64_t now)
{
  unsigned char bh[32];
  char compliance[16], etag[72];
  int64_t n = -1;
  memset(bh, 7, sizeof(bh));
  assert_int_equal(f->st->ops->checkin_touch(f->st, f->t.id, device, bh, now,
                                             compliance, etag, &n), MDM_OK);
  return n;
}

static void test_lifecycle(void **state)
{
  struct fx *f = *state;
  char dev[MDM_UUID_LEN + 1], dev2[MDM_UUID_LEN + 1];
  char c1[MDM_UUID_LEN + 1], c2[MDM_UUID_LEN + 1];
  json_t *items = NULL, *out = NULL;

  enroll(f, "{\"platform\":\"linux\"}", dev);
  enroll(f, "{\"platform\":\"linux\"}", dev2);
  assert_int_equal(pending_full(f, dev, NOW), 0);
  assert_int_equal(pending_touch(f, dev, NOW), 0);
  assert_int_equal(pending_full(f, dev2, NOW), 0);
  assert_int_equal(create(f, "00000000-0000-4000-8000-000000000000", "lock",
                          NOW, 3600, c1), MDM_ERR_NOTFOUND);
  assert_int_equal(create(f, dev, "lock", NOW, 3600, c1), MDM_OK);
  assert_int_equal(create(f, dev, "reboot", NOW + 1, 3600, c2), MDM_OK);
  expect_status(f, c1, NOW, "queued");
  assert_int_equal(pending_full(f, dev, NOW + 2), 2);
  assert_int_equal(pending_touch(f, dev, NOW + 2), 2);
  assert_int_equal(pending_touch(f, dev2, NOW + 2), 0);

  /* Fetch: oldest first, queued → sent; a second fetch sends them again. */
  assert_int_equal(f->st->ops->agent_commands_fetch(f->st, f->t.id, dev,
                                                    NOW + 2, &items), MDM_OK);
  assert_int_equal(json_array_size(items), 2);
  assert_string_equal(sfield(json_array_get(items, 0), "id"), c1);
  assert_string_equal(sfield(json_array_get(items, 0), "status"), "sent");
  assert_string_equal(sfield(json_array_get(items, 1), "id"), c2);
  json_decref(items);
  assert_int_equal(f->st->ops->agent_commands_fetch(f->st, f->t.id, dev,
                                                    NOW + 3, &items), MDM_OK);
  assert_int_equal(json_array_size(items), 2);
  json_decref(items);
  assert_int_equal(audit_count(f, "command.send", NULL), 2);
  assert_int_equal(pending_touch(f, dev, NOW + 3), 2);

  /* Results: forward only, idempotent, the device's own only. */
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev2, c1,
                                              "completed", NULL, NOW + 4,
                                              NULL), MDM_ERR_NOTFOUND);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "acknowledged", NULL, NOW + 4,
                                              &out), MDM_OK);
  assert_string_equal(sfield(out, "status"), "acknowledged");
  assert_true(json_is_string(json_object_get(out, "acknowledged_at")));
  json_decref(out);
  assert_int_equal(pending_touch(f, dev, NOW + 4), 1);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "completed", "locked", NOW + 5,
                                              &out), MDM_OK);
  assert_string_equal(sfield(out, "status"), "completed");
  assert_string_equal(sfield(out, "detail"), "locked");
  json_decref(out);
  /* Repeats and a step back change nothing. */
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "completed", "again", NOW + 6,
                                              &out), MDM_OK);
  assert_string_equal(sfield(out, "detail"), "locked");
  json_decref(out);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "acknowledged", NULL, NOW + 6,
                                              NULL), MDM_OK);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "failed", NULL, NOW + 6, NULL),
                   MDM_OK);
  expect_status(f, c1, NOW + 6, "completed");
  assert_int_equal(audit_count(f, "command.result", c1), 2);
  /* sent → failed directly. */
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c2,
                                              "failed", "no", NOW + 6, NULL),
                   MDM_OK);
  expect_status(f, c2, NOW + 6, "failed");
  assert_int_equal(pending_full(f, dev, NOW + 7), 0);
  assert_int_equal(audit_count(f, "command.create", NULL), 2);
  expect_chain_ok(f);
}

static void test_expiry_and_cancel(void **state)
{
  struct fx *f = *state;
  char dev[MDM_UUID_LEN + 1], c1[MDM_UUID_LEN + 1], c2[MDM_UUID_LEN + 1];
  char c3[MDM_UUID_LEN + 1];
  json_t *items = NULL, *out = NULL;

  enroll(f, "{\"platform\":\"linux\"}", dev);
  assert_int_equal(create(f, dev, "lock", NOW, 60, c1), MDM_OK);
  assert_int_equal(create(f, dev, "reboot", NOW, 3600, c2), MDM_OK);
  assert_int_equal(create(f, dev, "os_update", NOW, 3600, c3), MDM_OK);
  /* Past expires_at: not counted, not fetched; any touch stores it. */
  assert_int_equal(pending_full(f, dev, NOW + 61), 2);
  expect_status(f, c1, NOW + 59, "queued");
  expect_status(f, c1, NOW + 61, "expired");
  assert_int_equal(audit_count(f, "command.expire", c1), 1);
  expect_status(f, c1, NOW + 62, "expired");
  assert_int_equal(audit_count(f, "command.expire", c1), 1);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c1,
                                              "completed", NULL, NOW + 62,
                                              NULL), MDM_ERR_CONFLICT);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, c1, NOW + 62,
                                              "token:t", NULL),
                   MDM_ERR_CONFLICT);

  /* Cancel: queued or sent only; again is a no-op. */
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, c2, NOW + 63,
                                              "token:t", &out), MDM_OK);
  assert_string_equal(sfield(out, "status"), "canceled");
  assert_true(json_is_string(json_object_get(out, "canceled_at")));
  json_decref(out);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, c2, NOW + 64,
                                              "token:t", NULL), MDM_OK);
  assert_int_equal(audit_count(f, "command.cancel", c2), 1);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c2,
                                              "acknowledged", NULL, NOW + 64,
                                              NULL), MDM_ERR_CONFLICT);
  assert_int_equal(f->st->ops->agent_commands_fetch(f->st, f->t.id, dev,
                                                    NOW + 64, &items), MDM_OK);
  assert_int_equal(json_array_size(items), 1);
  assert_string_equal(sfield(json_array_get(items, 0), "id"), c3);
  json_decref(items);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, c3, NOW + 65,
                                              "token:t", NULL), MDM_OK);
  assert_int_equal(create(f, dev, "lock", NOW, 3600, c3), MDM_OK);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, dev, c3,
                                              "acknowledged", NULL, NOW + 66,
                                              NULL), MDM_OK);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, c3, NOW + 67,
                                              "token:t", NULL),
                   MDM_ERR_CONFLICT);
  /* An acknowledged command still expires. */
  expect_status(f, c3, NOW + 3601, "expired");
  assert_int_equal(f->st->ops->command_cancel(
                     f->st, f->t.id, "00000000-0000-4000-8000-000000000000",
                     NOW, "token:t", NULL), MDM_ERR_NOTFOUND);
  expect_chain_ok(f);
}

static void test_list_pages(void **state)
{
  struct fx *f = *state;
  char dev[MDM_UUID_LEN + 1], ids[5][MDM_UUID_LEN + 1];
  json_t *items = NULL;
  int64_t next = 0, after = 0;
  int i, seen = 0, pages = 0;

  enroll(f, "{\"platform\":\"linux\"}", dev);
  for(i = 0; i < 5; i++)
    assert_int_equal(create(f, dev, "lock", NOW, 3600, ids[i]), MDM_OK);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, ids[1], NOW,
                                              "token:t", NULL), MDM_OK);
  do {
    size_t k;
    json_t *it;
    assert_int_equal(f->st->ops->command_list(f->st, f->t.id, dev, NULL,
                                              after, 2, NOW, &items, &next),
                     MDM_OK);
    json_array_foreach(items, k, it) {
      /* Newest first. */
      assert_string_equal(sfield(it, "id"), ids[4 - seen]);
      seen++;
    }
    json_decref(items);
    after = next;
    pages++;
  } while(next);
  assert_int_equal(seen, 5);
  assert_int_equal(pages, 3);
  assert_int_equal(f->st->ops->command_list(f->st, f->t.id, dev, "canceled",
                                            0, 100, NOW, &items, &next),
                   MDM_OK);
  assert_int_equal(json_array_size(items), 1);
  assert_string_equal(sfield(json_array_get(items, 0), "id"), ids[1]);
  json_decref(items);
  assert_int_equal(f->st->ops->command_list(
                     f->st, f->t.id, "00000000-0000-4000-8000-000000000000",
                     NULL, 0, 100, NOW, &items, &next), MDM_ERR_NOTFOUND);
  /* Another tenant sees nothing. */
  assert_int_equal(f->st->ops->command_get(f->st, "other", ids[0], NOW,
                                           &items), MDM_ERR_NOTFOUND);
}

static void test_bulk(void **state)
{
  struct fx *f = *state;
  char ids[6][MDM_UUID_LEN + 1];
  struct mdm_command_selector sel;
  struct mdm_command_new in;
  json_t *out = NULL, *d = NULL;
  json_t *lab = json_pack("{s:s}", "dept", "sales");
  int i;

  for(i = 0; i < 6; i++)
    enroll(f, i < 4 ? "{\"platform\":\"linux\"}" : "{\"platform\":\"macos\"}",
           ids[i]);
  for(i = 0; i < 3; i++) {
    assert_int_equal(f->st->ops->device_patch(f->st, f->t.id, ids[i], lab,
                                              NULL, NULL, &d), MDM_OK);
    json_decref(d);
  }
  /* One retired device is never selected. */
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, ids[0], "none",
                                             NOW, NOW + 60, "token:t", &d),
                   MDM_OK);
  assert_string_equal(sfield(d, "state"), "retired");
  json_decref(d);

  cmd_new(&in, "lock", NOW, 3600);
  memset(&sel, 0, sizeof(sel));
  assert_int_equal(f->st->ops->command_create_bulk(f->st, f->t.id, &sel, &in,
                                                   &out), MDM_OK);
  assert_int_equal(json_array_size(out), 5);
  json_decref(out);
  sel.labels = lab;
  assert_int_equal(f->st->ops->command_create_bulk(f->st, f->t.id, &sel, &in,
                                                   &out), MDM_OK);
  assert_int_equal(json_array_size(out), 2);
  json_decref(out);
  sel.labels = NULL;
  sel.platform = "macos";
  assert_int_equal(f->st->ops->command_create_bulk(f->st, f->t.id, &sel, &in,
                                                   &out), MDM_OK);
  assert_int_equal(json_array_size(out), 2);
  json_decref(out);
  sel.platform = NULL;
  sel.compliance = "compliant";
  assert_int_equal(f->st->ops->command_create_bulk(f->st, f->t.id, &sel, &in,
                                                   &out), MDM_OK);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
  assert_int_equal(audit_count(f, "command.create", NULL), 9);
  /* A device that is not active takes no command. */
  assert_int_equal(create(f, ids[0], "lock", NOW, 60, ids[5]),
                   MDM_ERR_CONFLICT);
  json_decref(lab);
  expect_chain_ok(f);
}

static void test_retire(void **state)
{
  struct fx *f = *state;
  char a[MDM_UUID_LEN + 1], b[MDM_UUID_LEN + 1], c[MDM_UUID_LEN + 1];
  char e[MDM_UUID_LEN + 1], other[MDM_UUID_LEN + 1], wid[MDM_UUID_LEN + 1];
  json_t *d = NULL, *items = NULL;

  enroll(f, "{\"platform\":\"linux\"}", a);
  enroll(f, "{\"platform\":\"linux\"}", b);
  enroll(f, "{\"platform\":\"linux\"}", c);
  enroll(f, "{\"platform\":\"linux\"}", e);

  /* Selective: pending until the result, then retired. */
  assert_int_equal(create(f, a, "lock", NOW, 3600, other), MDM_OK);
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, a, "selective",
                                             NOW, NOW + 3600, "token:t", &d),
                   MDM_OK);
  assert_string_equal(sfield(d, "state"), "active");
  assert_true(json_is_true(json_object_get(d, "retire_pending")));
  mdm_strlcpy(wid, sfield(d, "retire_command_id"), sizeof(wid));
  json_decref(d);
  expect_status(f, wid, NOW, "queued");
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, a, "none", NOW,
                                             NOW + 3600, "token:t", NULL),
                   MDM_ERR_CONFLICT);
  assert_int_equal(f->st->ops->agent_commands_fetch(f->st, f->t.id, a, NOW,
                                                    &items), MDM_OK);
  assert_int_equal(json_array_size(items), 2);
  assert_string_equal(sfield(json_array_get(items, 1), "type"),
                      "selective_wipe");
  json_decref(items);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, a, wid,
                                              "completed", NULL, NOW + 1,
                                              NULL), MDM_OK);
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, a, &d), MDM_OK);
  assert_string_equal(sfield(d, "state"), "retired");
  assert_false(json_is_true(json_object_get(d, "retire_pending")));
  assert_string_equal(sfield(d, "retire_command_id"), wid);
  json_decref(d);
  expect_status(f, other, NOW + 1, "canceled");
  assert_int_equal(f->st->ops->agent_commands_fetch(f->st, f->t.id, a,
                                                    NOW + 1, &items),
                   MDM_ERR_AUTH);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, a, wid,
                                              "completed", NULL, NOW + 1,
                                              NULL), MDM_ERR_AUTH);
  assert_int_equal(audit_count(f, "device.retire", a), 1);
  assert_int_equal(audit_count(f, "device.retired", a), 1);

  /* Full wipe completed: wiped. */
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, b, "full", NOW,
                                             NOW + 3600, "token:t", &d),
                   MDM_OK);
  mdm_strlcpy(wid, sfield(d, "retire_command_id"), sizeof(wid));
  json_decref(d);
  assert_int_equal(f->st->ops->command_result(f->st, f->t.id, b, wid,
                                              "completed", NULL, NOW + 1,
                                              NULL), MDM_OK);
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, b, &d), MDM_OK);
  assert_string_equal(sfield(d, "state"), "wiped");
  json_decref(d);

  /* The wipe expires: retired all the same. */
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, c, "selective",
                                             NOW, NOW + 60, "token:t", &d),
                   MDM_OK);
  mdm_strlcpy(wid, sfield(d, "retire_command_id"), sizeof(wid));
  json_decref(d);
  expect_status(f, wid, NOW + 61, "expired");
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, c, &d), MDM_OK);
  assert_string_equal(sfield(d, "state"), "retired");
  json_decref(d);

  /* The wipe canceled: the retirement is abandoned. */
  assert_int_equal(f->st->ops->device_retire(f->st, f->t.id, e, "selective",
                                             NOW, NOW + 60, "token:t", &d),
                   MDM_OK);
  mdm_strlcpy(wid, sfield(d, "retire_command_id"), sizeof(wid));
  json_decref(d);
  assert_int_equal(f->st->ops->command_cancel(f->st, f->t.id, wid, NOW,
                                              "token:t", NULL), MDM_OK);
  assert_int_equal(f->st->ops->device_get(f->st, f->t.id, e, &d), MDM_OK);
  assert_string_equal(sfield(d, "state"), "active");
  assert_false(json_is_true(json_object_get(d, "retire_pending")));
  assert_true(json_is_null(json_object_get(d, "retire_command_id")));
  json_decref(d);
  assert_int_equal(f->st->ops->device_retire(
                     f->st, f->t.id, "00000000-0000-4000-8000-000000000000",
                     "none", NOW, NOW + 60, "token:t", NULL),
                   MDM_ERR_NOTFOUND);
  expect_chain_ok(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_expiry_and_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bulk, setup, teardown),
    cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
