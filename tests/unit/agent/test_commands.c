/*
 * test_commands.c: unit tests for the agent's command step
 * (src/agent/commands.c), its actions (src/agent/actions_linux.c) and its
 * configuration file (src/agent/config.c).  The server is a fake (struct
 * mdm_cmd_io) that records every request; hooks are small shell scripts in
 * the test's temp dir, which stands in for --root, so nothing here locks,
 * wipes or reboots the machine it runs on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "agent/actions.h"
#include "agent/commands.h"
#include "agent/config.h"
#include "core/log.h"
#include "core/util.h"

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"
#define ID3 "33333333-3333-4333-8333-333333333333"

/* ---- fixture ---------------------------------------------------------------- */

struct fake {
  json_t *items;          /* what GET answers (borrowed into a copy) */
  long get_status;
  int is_down;            /* every request fails with MDM_ERR_IO */
  long post_status;       /* status for result posts (default 200) */
  long ack_status;        /* status for "acknowledged" posts (0: post_status) */
  json_t *posts;          /* [{"path", "body"}] */
  unsigned n_gets;
};

struct fx {
  char root[64];
  char state[128];
  char path[PATH_MAX];
  struct mdm_agent_config cfg;
  struct fake fake;
  struct mdm_cmd_step_in in;
  struct mdm_cmd_step_out out;
  unsigned n_refresh;
  unsigned n_rotate;
  mdm_rc rotate_rc;
};

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static mdm_rc fake_get(void *ud, const char *path, struct mdm_response *resp)
{
  struct fake *f = ud;
  memset(resp, 0, sizeof(*resp));
  f->n_gets++;
  if(f->is_down) {
    snprintf(resp->errmsg, sizeof(resp->errmsg), "cannot connect");
    return MDM_ERR_IO;
  }
  assert_string_equal(path, "/v1/agent/commands");
  resp->status = f->get_status;
  resp->body = json_pack("{s:O}", "items", f->items);
  return MDM_OK;
}

static mdm_rc fake_post(void *ud, const char *path, json_t *body,
                        struct mdm_response *resp)
{
  struct fake *f = ud;
  const char *st = json_string_value(json_object_get(body, "status"));
  memset(resp, 0, sizeof(*resp));
  if(f->is_down) {
    snprintf(resp->errmsg, sizeof(resp->errmsg), "cannot connect");
    return MDM_ERR_IO;
  }
  json_array_append_new(f->posts, json_pack("{s:s, s:O}", "path", path,
                                            "body", body));
  resp->status = st && !strcmp(st, "acknowledged") && f->ack_status ?
                 f->ack_status : f->post_status;
  resp->body = json_object();
  return MDM_OK;
}

static mdm_rc fake_refresh(void *ud)
{
  struct fx *x = ud;
  x->n_refresh++;
  return MDM_OK;
}

static mdm_rc fake_rotate(void *ud, char *detail, size_t n)
{
  struct fx *x = ud;
  x->n_rotate++;
  if(x->rotate_rc)
    snprintf(detail, n, "certificate renewal failed: 503 unavailable");
  else
    snprintf(detail, n, "{\"fingerprint\":\"ab12\",\"not_after\":"
             "1800000000}");
  return x->rotate_rc;
}

static const char *at(struct fx *x, const char *rel)
{
  snprintf(x->path, sizeof(x->path), "%s/%s", x->root, rel);
  return x->path;
}

static void write_file(const char *path, const char *text, unsigned mode)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  chmod(path, mode);
}

static int exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

static void load_cfg(struct fx *x, const char *text)
{
  char err[512];
  mdm_agent_config_release(&x->cfg);
  assert_int_equal(mdm_agent_config_parse(text, strlen(text), "agent.conf",
                                          x->state, x->root, &x->cfg, err,
                                          sizeof(err)), MDM_OK);
}

static int setup(void **state)
{
  struct fx *x = calloc(1, sizeof(*x));
  char dir[PATH_MAX];
  snprintf(x->root, sizeof(x->root), "/tmp/mdm-cmd-XXXXXX");
  assert_non_null(mkdtemp(x->root));
  snprintf(x->state, sizeof(x->state), "%s/state", x->root);
  assert_int_equal(mkdir(x->state, 0700), 0);
  snprintf(dir, sizeof(dir), "%s/hooks", x->root);
  assert_int_equal(mkdir(dir, 0755), 0);
  /* A hook that counts its runs and says so. */
  write_file(at(x, "hooks/count.sh"),
             "#!/bin/sh\necho run >> \"$(dirname \"$0\")/runs\"\n"
             "echo \"ran $1\"\n", 0755);
  write_file(at(x, "hooks/fail.sh"),
             "#!/bin/sh\necho 'no screen to lock' >&2\nexit 3\n", 0755);
  write_file(at(x, "state/credentials.json"), "{}", 0600);
  load_cfg(x, "lock_hook = hooks/count.sh lock\n");
  x->fake.items = json_array();
  x->fake.posts = json_array();
  x->fake.get_status = 200;
  x->fake.post_status = 200;
  x->in.state_dir = x->state;
  x->in.root = x->root;
  x->in.cfg = &x->cfg;
  x->in.table = mdm_actions_linux;
  x->in.io.get = fake_get;
  x->in.io.post = fake_post;
  x->in.io.ud = &x->fake;
  x->in.is_fetch = 1;
  x->in.refresh = fake_refresh;
  x->in.refresh_ud = x;
  *state = x;
  return 0;
}

static int teardown(void **state)
{
  struct fx *x = *state;
  nftw(x->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  mdm_agent_config_release(&x->cfg);
  json_decref(x->fake.items);
  json_decref(x->fake.posts);
  free(x);
  return 0;
}

static void add_cmd(struct fx *x, const char *id, const char *type)
{
  json_array_append_new(x->fake.items,
                        json_pack("{s:s, s:s, s:{}, s:s, s:s}", "id", id,
                                  "type", type, "params", "issued_at",
                                  "2026-11-28T14:00:00Z", "expires_at",
                                  "2026-11-29T14:00:00Z"));
}

static int n_runs(struct fx *x)
{
  char *text = NULL;
  size_t len = 0, i;
  int n = 0;
  if(mdm_file_read(at(x, "hooks/runs"), 65536, &text, &len))
    return 0;
  for(i = 0; i < len; i++)
    n += text[i] == '\n';
  free(text);
  return n;
}

/* The i-th recorded post: its path and status (and detail, may be NULL). */
static void assert_post(struct fx *x, size_t i, const char *id,
                        const char *status, const char *detail)
{
  json_t *p = json_array_get(x->fake.posts, i);
  char path[128];
  json_t *d;
  assert_non_null(p);
  snprintf(path, sizeof(path), "/v1/agent/commands/%s/result", id);
  assert_string_equal(json_string_value(json_object_get(p, "path")), path);
  assert_string_equal(json_string_value(
    json_object_get(json_object_get(p, "body"), "status")), status);
  d = json_object_get(json_object_get(p, "body"), "detail");
  if(detail)
    assert_string_equal(json_string_value(d), detail);
  else
    assert_true(!d || json_is_null(d));
}

static mdm_rc step(struct fx *x)
{
  return mdm_commands_step(&x->in, &x->out);
}

/* ---- config --------------------------------------------------------------------- */

static void test_config_defaults(void **state)
{
  struct fx *x = *state;
  struct mdm_agent_config c;
  char err[256], want[PATH_MAX];

  /* With --root: nothing is configured that could act on the machine. */
  assert_int_equal(mdm_agent_config_parse("", 0, "a", x->state, x->root, &c,
                                          err, sizeof(err)), MDM_OK);
  assert_null(c.lock_hook);
  assert_null(c.reboot_hook);
  assert_null(c.wipe_hook);
  assert_null(c.os_update_command);
  assert_int_equal(c.hook_timeout_s, 300);
  snprintf(want, sizeof(want), "%s/managed", x->state);
  assert_string_equal(c.managed_dir, want);
  mdm_agent_config_release(&c);

  /* Without: loginctl and systemctl. */
  assert_int_equal(mdm_agent_config_parse("", 0, "a", x->state, NULL, &c,
                                          err, sizeof(err)), MDM_OK);
  assert_string_equal(c.lock_hook, "/usr/bin/loginctl lock-sessions");
  assert_string_equal(c.reboot_hook, "/usr/bin/systemctl reboot");
  mdm_agent_config_release(&c);

  /* An empty value turns a default off. */
  assert_int_equal(mdm_agent_config_parse("lock_hook =\n", 12, "a", x->state,
                                          NULL, &c, err, sizeof(err)), MDM_OK);
  assert_null(c.lock_hook);
  assert_string_equal(c.reboot_hook, "/usr/bin/systemctl reboot");
  mdm_agent_config_release(&c);
}

static void test_config_keys(void **state)
{
  struct fx *x = *state;
  struct mdm_agent_config c;
  char err[256], want[PATH_MAX];
  const char *text =
    "# the agent's hooks\n"
    "\n"
    "  lock_hook = hooks/lock.sh  --now \n"
    "wipe_hook=/opt/wipe\n"
    "reboot_hook = hooks/reboot.sh\r\n"
    "os_update_command = /usr/bin/apt-get -y upgrade\n"
    "managed_dir = corp/data\n"
    "hook_timeout_s = 42";

  assert_int_equal(mdm_agent_config_parse(text, strlen(text), "a", x->state,
                                          x->root, &c, err, sizeof(err)),
                   MDM_OK);
  assert_string_equal(c.lock_hook, "hooks/lock.sh  --now");
  assert_string_equal(c.wipe_hook, "/opt/wipe");
  assert_string_equal(c.reboot_hook, "hooks/reboot.sh");
  assert_string_equal(c.os_update_command, "/usr/bin/apt-get -y upgrade");
  snprintf(want, sizeof(want), "%s/corp/data", x->root);
  assert_string_equal(c.managed_dir, want);
  assert_int_equal(c.hook_timeout_s, 42);
  mdm_agent_config_release(&c);

  /* Path resolution: absolute as written, relative under the root. */
  {
    char *p = mdm_agent_config_path("/r/", "x/y");
    assert_string_equal(p, "/r/x/y");
    free(p);
    p = mdm_agent_config_path("/r", "/abs");
    assert_string_equal(p, "/abs");
    free(p);
    p = mdm_agent_config_path(NULL, "rel");
    assert_string_equal(p, "/rel");
    free(p);
  }
}

static void test_config_errors(void **state)
{
  struct fx *x = *state;
  struct mdm_agent_config c;
  char err[256], big[5000];
  static const struct { const char *text, *msg; } bad[] = {
    {"lock_hook = a\nfoo = b\n",
     "cannot read 'agent.conf': line 2: unknown key 'foo'"},
    {"lock_hook = a\nlock_hook = b\n",
     "cannot read 'agent.conf': line 2: 'lock_hook' given twice"},
    {"# c\nlock_hook\n",
     "cannot read 'agent.conf': line 2: expected 'key = value'"},
    {"hook_timeout_s = 0\n",
     "cannot read 'agent.conf': hook_timeout_s: expected an integer in "
     "1..86400"},
    {"hook_timeout_s = 5m\n",
     "cannot read 'agent.conf': hook_timeout_s: expected an integer in "
     "1..86400"},
  };
  size_t i;

  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_not_equal(mdm_agent_config_parse(bad[i].text,
                                                strlen(bad[i].text),
                                                "agent.conf", x->state,
                                                x->root, &c, err,
                                                sizeof(err)), MDM_OK);
    assert_string_equal(err, bad[i].msg);
    assert_null(c.managed_dir);
  }
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(mdm_agent_config_parse(big, strlen(big), "agent.conf",
                                          x->state, x->root, &c, err,
                                          sizeof(err)), MDM_ERR_TOOBIG);

  /* --config must exist; the default file may be absent. */
  assert_int_equal(mdm_agent_config_load(at(x, "nope.conf"), x->state,
                                         x->root, &c, err, sizeof(err)),
                   MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_agent_config_load(NULL, x->state, x->root, &c, err,
                                         sizeof(err)), MDM_OK);
  mdm_agent_config_release(&c);
  write_file(at(x, "state/agent.conf"), "wipe_hook = hooks/w.sh\n", 0600);
  assert_int_equal(mdm_agent_config_load(NULL, x->state, x->root, &c, err,
                                         sizeof(err)), MDM_OK);
  assert_string_equal(c.wipe_hook, "hooks/w.sh");
  mdm_agent_config_release(&c);
}

/* ---- hooks ---------------------------------------------------------------------- */

static void test_hook_run(void **state)
{
  struct fx *x = *state;
  struct mdm_action_result r;
  char want[2048];
  size_t i;

  mdm_action_run_hook(x->root, "hooks/count.sh  abc", 10, &r);
  assert_true(r.is_completed);
  assert_string_equal(r.detail, "ran abc");
  assert_int_equal(n_runs(x), 1);

  mdm_action_run_hook(x->root, "hooks/fail.sh", 10, &r);
  assert_false(r.is_completed);
  assert_string_equal(r.detail, "exit status 3: no screen to lock");

  mdm_action_run_hook(x->root, "hooks/missing.sh", 10, &r);
  assert_false(r.is_completed);
  snprintf(want, sizeof(want), "cannot run '%s/hooks/missing.sh': No such "
           "file or directory", x->root);
  assert_string_equal(r.detail, want);

  /* Output beyond 1 KiB is dropped; control bytes are replaced. */
  write_file(at(x, "hooks/loud.sh"), "#!/bin/sh\nprintf 'a\\033b'\n"
             "i=0; while [ $i -lt 200 ]; do echo 0123456789; i=$((i+1)); "
             "done\n", 0755);
  mdm_action_run_hook(x->root, "hooks/loud.sh", 10, &r);
  assert_true(r.is_completed);
  assert_int_equal(strlen(r.detail), MDM_ACTION_OUTPUT_MAX);
  assert_memory_equal(r.detail, "a?b0123456789\n0123", 18);
  for(i = 0; r.detail[i]; i++)
    assert_true(r.detail[i] == '\n' || (r.detail[i] >= 0x20 &&
                                        r.detail[i] < 0x7f));

  /* A hook that does not end is killed, its children with it. */
  write_file(at(x, "hooks/hang.sh"), "#!/bin/sh\necho started\nsleep 30 &\n"
             "sleep 30\n", 0755);
  {
    int64_t t0 = mdm_mono_ns();
    mdm_action_run_hook(x->root, "hooks/hang.sh", 1, &r);
    assert_true(mdm_mono_ns() - t0 < 5000000000LL);
  }
  assert_false(r.is_completed);
  assert_string_equal(r.detail, "timed out after 1s: started");

  mdm_action_run_hook(x->root, "   ", 10, &r);
  assert_false(r.is_completed);
  assert_string_equal(r.detail, "empty hook");
}

static void test_window(void **state)
{
  assert_int_equal(mdm_action_in_window("02:00-04:00", 2 * 60), 1);
  assert_int_equal(mdm_action_in_window("02:00-04:00", 4 * 60), 0);
  assert_int_equal(mdm_action_in_window("02:00-04:00", 1 * 60 + 59), 0);
  assert_int_equal(mdm_action_in_window("22:00-02:00", 23 * 60), 1);
  assert_int_equal(mdm_action_in_window("22:00-02:00", 60), 1);
  assert_int_equal(mdm_action_in_window("22:00-02:00", 12 * 60), 0);
  assert_int_equal(mdm_action_in_window("2:00-04:00", 0), -1);
  assert_int_equal(mdm_action_in_window("24:00-04:00", 0), -1);
  assert_int_equal(mdm_action_in_window(NULL, 0), -1);
}

/* ---- the step ------------------------------------------------------------------ */

static void test_lock_once(void **state)
{
  struct fx *x = *state;

  add_cmd(x, ID1, "lock");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_run, 1);
  assert_int_equal(x->out.n_reported, 1);
  assert_int_equal(n_runs(x), 1);
  assert_int_equal(json_array_size(x->fake.posts), 2);
  assert_post(x, 0, ID1, "acknowledged", NULL);
  assert_post(x, 1, ID1, "completed", "ran lock");

  /* Delivered again (the server lost our result): never run again, the
   * recorded result is sent again. */
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_run, 0);
  assert_int_equal(n_runs(x), 1);
  assert_int_equal(json_array_size(x->fake.posts), 3);
  assert_post(x, 2, ID1, "completed", "ran lock");

  /* Nothing pending: no fetch, nothing sent. */
  x->in.is_fetch = 0;
  x->fake.n_gets = 0;
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->fake.n_gets, 0);
  assert_int_equal(json_array_size(x->fake.posts), 3);
}

static void test_journal_before_action(void **state)
{
  struct fx *x = *state;

  /* The hook prints 1 only if the id is on disk as started when it runs. */
  {
    char text[PATH_MAX + 256];
    snprintf(text, sizeof(text), "#!/bin/sh\nexec /bin/grep -c "
             "'\"id\":\"%s\",\"type\":\"lock\",\"state\":\"started\"' "
             "'%s/commands.json'\n", ID1, x->state);
    write_file(at(x, "hooks/check.sh"), text, 0755);
  }
  load_cfg(x, "lock_hook = hooks/check.sh\n");
  add_cmd(x, ID1, "lock");
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID1, "completed", "1");
}

static void test_interrupted(void **state)
{
  struct fx *x = *state;
  write_file(at(x, "state/commands.json"),
             "{\"version\":1,\"entries\":["
             "{\"id\":\"" ID1 "\",\"type\":\"lock\",\"state\":\"started\","
             "\"status\":null,\"detail\":null,\"reported\":false,"
             "\"unmanaged\":false,\"at\":1},"
             "{\"id\":\"" ID2 "\",\"type\":\"reboot\",\"state\":\"started\","
             "\"status\":null,\"detail\":null,\"reported\":false,"
             "\"unmanaged\":false,\"at\":2}]}", 0600);
  add_cmd(x, ID1, "lock");
  add_cmd(x, ID2, "reboot");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_run, 0);
  assert_int_equal(n_runs(x), 0);
  assert_post(x, 0, ID1, "failed", MDM_CMD_INTERRUPTED);
  assert_post(x, 1, ID2, "completed", MDM_CMD_REBOOTED);
  /* ...and the fetched copies only repeat those results. */
  assert_post(x, 2, ID1, "failed", MDM_CMD_INTERRUPTED);
  assert_post(x, 3, ID2, "completed", MDM_CMD_REBOOTED);
  assert_int_equal(json_array_size(x->fake.posts), 4);
}

static void test_result_retried(void **state)
{
  struct fx *x = *state;

  add_cmd(x, ID1, "lock");
  x->fake.post_status = 503;
  x->fake.ack_status = 200;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_string_equal(x->out.errmsg, "cannot report command " ID1 ": 503 "
                      "service unavailable");
  assert_int_equal(n_runs(x), 1);

  /* Server down: the result stays; nothing runs again. */
  x->fake.is_down = 1;
  x->in.is_fetch = 0;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_int_equal(n_runs(x), 1);

  /* Back: the result goes with the next step, once. */
  x->fake.is_down = 0;
  x->fake.post_status = 200;
  json_array_clear(x->fake.posts);
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_reported, 1);
  assert_int_equal(json_array_size(x->fake.posts), 1);
  assert_post(x, 0, ID1, "completed", "ran lock");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(json_array_size(x->fake.posts), 1);
  assert_int_equal(n_runs(x), 1);
}

static void test_ack_refused_or_lost(void **state)
{
  struct fx *x = *state;

  /* Canceled on the server before it ran: not run, ever. */
  add_cmd(x, ID1, "lock");
  x->fake.ack_status = 409;
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(n_runs(x), 0);
  assert_int_equal(json_array_size(x->fake.posts), 1);
  x->fake.ack_status = 0;
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(n_runs(x), 0);

  /* The acknowledgement does not get through: not run, not journaled,
   * run at the next delivery. */
  json_array_clear(x->fake.items);
  add_cmd(x, ID2, "lock");
  x->fake.ack_status = 500;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_int_equal(n_runs(x), 0);
  x->fake.ack_status = 0;
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(n_runs(x), 1);
}

static void test_failures_and_types(void **state)
{
  struct fx *x = *state;
  size_t i;

  load_cfg(x, "reboot_hook = hooks/fail.sh\n");
  add_cmd(x, ID1, "lock");                  /* no hook with --root */
  add_cmd(x, ID2, "reboot");
  add_cmd(x, ID3, "self_destruct");
  json_array_append_new(x->fake.items,
                        json_pack("{s:s, s:s}", "id", "../../etc",
                                  "type", "lock"));
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_run, 3);
  assert_post(x, 1, ID1, "failed", "no lock hook configured");
  assert_post(x, 3, ID2, "failed", "exit status 3: no screen to lock");
  assert_post(x, 5, ID3, "failed", "unknown command type");
  assert_int_equal(json_array_size(x->fake.posts), 6);

  {
    static const char *const not_yet[] = {"install_profile",
                                          "remove_profile",
                                          "rotate_certificate"};
    static const char *const ids[] = {
      "44444444-4444-4444-8444-444444444444",
      "55555555-5555-4555-8555-555555555555",
      "66666666-6666-4666-8666-666666666666"};
    json_array_clear(x->fake.items);
    json_array_clear(x->fake.posts);
    for(i = 0; i < 3; i++)
      add_cmd(x, ids[i], not_yet[i]);
    assert_int_equal(step(x), MDM_OK);
    /* install/remove_profile need params.name (and a policy sync, which
     * this step has none of); rotate_certificate needs the agent's
     * renewal, which this step has none of either. */
    assert_post(x, 1, ids[0], "failed",
                "params.name: expected the profile's name");
    assert_post(x, 3, ids[1], "failed",
                "params.name: expected the profile's name");
    assert_post(x, 5, ids[2], "failed", "cannot renew the certificate now");
  }
}

static void test_refresh_inventory(void **state)
{
  struct fx *x = *state;
  add_cmd(x, ID1, "refresh_inventory");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->n_refresh, 1);
  assert_post(x, 1, ID1, "completed", "inventory sent");
}

/* rotate_certificate renews through the agent, at most once per command,
 * and reports the new certificate (or why not). */
static void test_rotate_certificate(void **state)
{
  struct fx *x = *state;
  x->in.rotate_cert = fake_rotate;
  x->in.rotate_cert_ud = x;
  add_cmd(x, ID1, "rotate_certificate");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->n_rotate, 1);
  assert_post(x, 0, ID1, "acknowledged", NULL);
  assert_post(x, 1, ID1, "completed", "{\"fingerprint\":\"ab12\","
              "\"not_after\":1800000000}");
  /* Listed again (the server did not see the result): not run again. */
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->n_rotate, 1);
  assert_post(x, 2, ID1, "completed", "{\"fingerprint\":\"ab12\","
              "\"not_after\":1800000000}");

  json_array_clear(x->fake.items);
  x->rotate_rc = MDM_ERR_IO;
  add_cmd(x, ID2, "rotate_certificate");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->n_rotate, 2);
  assert_post(x, 4, ID2, "failed",
              "certificate renewal failed: 503 unavailable");
}

static void test_os_update(void **state)
{
  struct fx *x = *state;
  time_t now = time(NULL);
  struct tm tm;
  char window[64], text[128];
  int h;

  /* Not configured: failed. */
  add_cmd(x, ID1, "os_update");
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID1, "failed", "no os_update_command configured");

  /* Outside the window: it waits (not acknowledged, not journaled). */
  load_cfg(x, "os_update_command = hooks/count.sh upgrade\n");
  localtime_r(&now, &tm);
  h = (tm.tm_hour + 2) % 24;
  snprintf(window, sizeof(window), "%02d:00-%02d:00", h, (h + 1) % 24);
  snprintf(text, sizeof(text), "{\"window\":\"%s\"}", window);
  write_file(at(x, "state/os_update.json"), text, 0600);
  json_array_clear(x->fake.items);
  json_array_clear(x->fake.posts);
  add_cmd(x, ID2, "os_update");
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(json_array_size(x->fake.posts), 0);
  assert_int_equal(n_runs(x), 0);

  /* Inside it: it runs. */
  h = tm.tm_hour;
  snprintf(window, sizeof(window), "%02d:00-%02d:00", h, (h + 1) % 24);
  snprintf(text, sizeof(text), "{\"window\":\"%s\"}", window);
  write_file(at(x, "state/os_update.json"), text, 0600);
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID2, "completed", "ran upgrade");
  assert_int_equal(n_runs(x), 1);
}

static void test_selective_wipe(void **state)
{
  struct fx *x = *state;
  char path[PATH_MAX];

  assert_int_equal(mkdir(at(x, "state/managed"), 0700), 0);
  assert_int_equal(mkdir(at(x, "state/managed/sub"), 0700), 0);
  write_file(at(x, "state/managed/a"), "corp", 0600);
  write_file(at(x, "state/managed/sub/b"), "corp", 0600);
  write_file(at(x, "precious"), "mine", 0600);
  assert_int_equal(symlink(at(x, "precious"), (snprintf(path, sizeof(path),
                   "%s/state/managed/link", x->root), path)), 0);
  assert_int_equal(mdm_mkdirs(at(x, "etc/openvpn/client"), 0755), MDM_OK);
  write_file(at(x, "etc/openvpn/client/mdm.conf"), "client\n", 0600);
  write_file(at(x, "etc/openvpn/client/other.conf"), "client\n", 0600);
  write_file(at(x, "state/os_update.json"), "{}", 0600);
  write_file(at(x, "state/policy.json"), "{}", 0600);
  write_file(at(x, "state/policy_status.json"), "{}", 0600);

  add_cmd(x, ID1, "selective_wipe");
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID1, "completed", "removed: managed_dir (3 file(s)), "
              "vpn profile, os_update.json, policy.json; credentials kept");
  assert_false(exists(at(x, "state/managed")));
  assert_false(exists(at(x, "etc/openvpn/client/mdm.conf")));
  assert_false(exists(at(x, "state/os_update.json")));
  assert_false(exists(at(x, "state/policy.json")));
  /* ...and nothing else. */
  assert_true(exists(at(x, "precious")));
  assert_true(exists(at(x, "etc/openvpn/client/other.conf")));
  assert_true(exists(at(x, "state/credentials.json")));
  assert_true(exists(at(x, "state/policy_status.json")));
  assert_true(exists(at(x, "state/commands.json")));
  assert_false(x->out.is_unmanaged);
}

static void test_selective_wipe_refuses(void **state)
{
  struct fx *x = *state;
  struct mdm_action_ctx ctx;
  struct mdm_action_result r;
  char text[PATH_MAX + 32], outside[] = "/tmp/mdm-cmd-out-XXXXXX";
  static const char *const bad[] = {"managed_dir = /\n",
                                    "managed_dir = state\n",
                                    "managed_dir = .\n",
                                    "managed_dir = state/..\n"};
  size_t i;

  memset(&ctx, 0, sizeof(ctx));
  ctx.root = x->root;
  ctx.state_dir = x->state;
  ctx.cfg = &x->cfg;
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    load_cfg(x, bad[i]);
    memset(&r, 0, sizeof(r));
    mdm_action_selective_wipe(&ctx, &r);
    assert_false(r.is_completed);
    assert_non_null(strstr(r.detail, "refusing to remove managed_dir"));
    assert_true(exists(at(x, "state/credentials.json")));
    assert_true(exists(at(x, "hooks/count.sh")));
  }
  /* A directory outside both the state dir and the root. */
  assert_non_null(mkdtemp(outside));
  snprintf(text, sizeof(text), "%s/f", outside);
  write_file(text, "x", 0600);
  snprintf(text, sizeof(text), "managed_dir = %s\n", outside);
  load_cfg(x, text);
  mdm_action_selective_wipe(&ctx, &r);
  assert_false(r.is_completed);
  snprintf(text, sizeof(text), "%s/f", outside);
  assert_true(exists(text));
  unlink(text);
  rmdir(outside);
}

static void test_wipe(void **state)
{
  struct fx *x = *state;

  /* No hook: failed, still managed. */
  add_cmd(x, ID1, "wipe");
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID1, "failed", "no wipe hook configured");
  assert_false(x->out.is_unmanaged);
  assert_true(exists(at(x, "state/credentials.json")));

  /* A failing hook: failed, still managed. */
  load_cfg(x, "wipe_hook = hooks/fail.sh\n");
  json_array_clear(x->fake.items);
  json_array_clear(x->fake.posts);
  add_cmd(x, ID2, "wipe");
  assert_int_equal(step(x), MDM_OK);
  assert_post(x, 1, ID2, "failed", "exit status 3: no screen to lock");
  assert_false(x->out.is_unmanaged);
  assert_true(exists(at(x, "state/credentials.json")));

  /* It works, but the result cannot be delivered yet: still managed. */
  load_cfg(x, "wipe_hook = hooks/count.sh wipe\n");
  json_array_clear(x->fake.items);
  json_array_clear(x->fake.posts);
  add_cmd(x, ID3, "wipe");
  add_cmd(x, "77777777-7777-4777-8777-777777777777", "lock");
  x->fake.ack_status = 200;
  x->fake.post_status = 503;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_false(x->out.is_unmanaged);
  assert_true(exists(at(x, "state/credentials.json")));
  assert_int_equal(n_runs(x), 1);

  /* Delivered: the credentials go and nothing after it runs. */
  x->fake.post_status = 200;
  json_array_clear(x->fake.posts);
  assert_int_equal(step(x), MDM_OK);
  assert_true(x->out.is_unmanaged);
  assert_false(exists(at(x, "state/credentials.json")));
  assert_int_equal(json_array_size(x->fake.posts), 1);
  assert_post(x, 0, ID3, "completed", "ran wipe");
  assert_int_equal(n_runs(x), 1);
}

static void test_damaged_journal(void **state)
{
  struct fx *x = *state;
  write_file(at(x, "state/commands.json"), "{\"version\":1,\"entries\":[{", 0600);
  add_cmd(x, ID1, "lock");
  assert_int_equal(step(x), MDM_ERR_INVAL);
  assert_non_null(strstr(x->out.errmsg, "is damaged"));
  assert_int_equal(n_runs(x), 0);
  assert_int_equal(json_array_size(x->fake.posts), 0);
  assert_int_equal(x->fake.n_gets, 0);
}

static void test_fetch_errors(void **state)
{
  struct fx *x = *state;

  x->fake.get_status = 401;
  assert_int_equal(step(x), MDM_ERR_AUTH);
  assert_true(x->out.is_auth);
  x->fake.get_status = 500;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_string_equal(x->out.errmsg, "cannot fetch commands: 500 internal "
                      "server error");
  x->fake.get_status = 200;
  x->fake.is_down = 1;
  assert_int_equal(step(x), MDM_ERR_IO);
  assert_string_equal(x->out.errmsg, "cannot fetch commands: cannot connect");
}

static void test_journal_bounded(void **state)
{
  struct fx *x = *state;
  size_t i;
  char id[40], *text = NULL;
  json_t *doc;

  for(i = 0; i < MDM_CMD_JOURNAL_MAX + 5; i++) {
    snprintf(id, sizeof(id), "%08zx-0000-4000-8000-000000000000", i);
    add_cmd(x, id, "install_profile");
  }
  assert_int_equal(step(x), MDM_OK);
  assert_int_equal(x->out.n_run, MDM_CMD_JOURNAL_MAX + 5);
  assert_int_equal(mdm_file_read(at(x, "state/commands.json"),
                                 MDM_CMD_JOURNAL_BYTES, &text, NULL), MDM_OK);
  doc = json_loads(text, 0, NULL);
  free(text);
  assert_int_equal(json_array_size(json_object_get(doc, "entries")),
                   MDM_CMD_JOURNAL_MAX);
  json_decref(doc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_config_defaults, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_keys, setup, teardown),
    cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hook_run, setup, teardown),
    cmocka_unit_test(test_window),
    cmocka_unit_test_setup_teardown(test_lock_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_before_action, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_result_retried, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ack_refused_or_lost, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_failures_and_types, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_refresh_inventory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rotate_certificate, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_os_update, setup, teardown),
    cmocka_unit_test_setup_teardown(test_selective_wipe, setup, teardown),
    cmocka_unit_test_setup_teardown(test_selective_wipe_refuses, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_wipe, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_journal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fetch_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_bounded, setup, teardown),
  };
  mdm_log_setup("test", 0, MDM_LOG_ERROR);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
