/*
 * commands.c: the agent's command step and its at-most-once journal (see
 * commands.h for the rules).  The journal, <state-dir>/commands.json:
 *
 *   {"version": 1, "entries": [{"id": UUID, "type": T, "state":
 *     "started"|"done", "status": "completed"|"failed"|null, "detail":
 *     TEXT|null, "reported": BOOL, "unmanaged": BOOL, "at": MS}, …]}
 *
 * oldest first.  It is rewritten (temp file, fsync, rename, fsync of the
 * directory) before every action runs and after every change.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/commands.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"

struct step {
  const struct mdm_cmd_step_in *in;
  struct mdm_cmd_step_out *out;
  char path[PATH_MAX];
  json_t *journal;     /* the "entries" array (owned by doc) */
  json_t *doc;
};

static void step_fail(struct step *s, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void step_fail(struct step *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->out->errmsg, sizeof(s->out->errmsg), fmt, ap);
  va_end(ap);
}

/* ---- the journal --------------------------------------------------------------- */

static int entry_ok(json_t *e)
{
  const char *st = json_string_value(json_object_get(e, "state"));
  return json_is_object(e) &&
         json_is_string(json_object_get(e, "id")) &&
         json_is_string(json_object_get(e, "type")) &&
         st && (!strcmp(st, "started") || !strcmp(st, "done"));
}

static mdm_rc journal_load(struct step *s)
{
  char *text = NULL;
  size_t len = 0, i;
  json_t *e;
  mdm_rc rc;

  rc = mdm_state_path(s->in->state_dir, MDM_CMD_JOURNAL_FILE, s->path,
                      sizeof(s->path));
  if(!rc)
    rc = mdm_file_read(s->path, MDM_CMD_JOURNAL_BYTES, &text, &len);
  if(rc == MDM_ERR_NOTFOUND) {
    s->doc = json_pack("{s:i, s:[]}", "version", 1, "entries");
    if(!s->doc)
      return MDM_ERR_NOMEM;
    s->journal = json_object_get(s->doc, "entries");
    return MDM_OK;
  }
  if(rc) {
    step_fail(s, "cannot read the command journal '%s': %s", s->path,
              mdm_strerror(rc));
    return rc == MDM_ERR_TOOBIG ? MDM_ERR_INVAL : rc;
  }
  s->doc = json_loadb(text, len, 0, NULL);
  free(text);
  s->journal = json_object_get(s->doc, "entries");
  if(!json_is_object(s->doc) || !json_is_array(s->journal)) {
    step_fail(s, "the command journal '%s' is damaged; no command runs "
              "until it is repaired or removed", s->path);
    return MDM_ERR_INVAL;
  }
  json_array_foreach(s->journal, i, e)
    if(!entry_ok(e)) {
      step_fail(s, "the command journal '%s' is damaged (entry %zu); no "
                "command runs until it is repaired or removed", s->path, i);
      return MDM_ERR_INVAL;
    }
  return MDM_OK;
}

static mdm_rc journal_save(struct step *s)
{
  char *text;
  mdm_rc rc;
  size_t i;
  json_t *e;

  /* Forget the oldest delivered entries beyond the bound. */
  for(i = 0; json_array_size(s->journal) > MDM_CMD_JOURNAL_MAX &&
      i < json_array_size(s->journal);) {
    e = json_array_get(s->journal, i);
    if(json_is_true(json_object_get(e, "reported")))
      json_array_remove(s->journal, i);
    else
      i++;
  }
  text = json_dumps(s->doc, JSON_COMPACT);
  if(!text)
    return MDM_ERR_NOMEM;
  rc = mdm_file_write_atomic(s->path, text, strlen(text), 0600);
  free(text);
  if(rc)
    step_fail(s, "cannot write the command journal '%s': %s", s->path,
              mdm_strerror(rc));
  return rc;
}

static json_t *journal_find(struct step *s, const char *id)
{
  size_t i;
  json_t *e;
  json_array_foreach(s->journal, i, e)
    if(!strcmp(json_string_value(json_object_get(e, "id")), id))
      return e;
  return NULL;
}

static mdm_rc entry_done(json_t *e, int is_completed, const char *detail,
                         int is_reported)
{
  if(json_object_set_new(e, "state", json_string("done")) ||
     json_object_set_new(e, "status", json_string(is_completed ? "completed" :
                                                  "failed")) ||
     json_object_set_new(e, "detail", detail && *detail ?
                         json_string(detail) : json_null()) ||
     json_object_set_new(e, "reported", json_boolean(is_reported)) ||
     json_object_set_new(e, "at", json_integer(mdm_now_ms())))
    return MDM_ERR_NOMEM;
  return MDM_OK;
}

/* ---- talking to the server ------------------------------------------------------ */

enum post_result { POST_OK, POST_FINAL, POST_RETRY, POST_AUTH };

/* POST a result; POST_FINAL when the server will never take it. */
static enum post_result post_result(struct step *s, const char *id,
                                    const char *status, const char *detail)
{
  struct mdm_response resp;
  char path[128], why[512];
  json_t *body;
  enum post_result res;
  mdm_rc rc;

  snprintf(path, sizeof(path), "/v1/agent/commands/%s/result", id);
  body = json_pack("{s:s, s:s?}", "status", status, "detail", detail);
  if(!body) {
    step_fail(s, "cannot report command %s: out of memory", id);
    return POST_RETRY;
  }
  memset(&resp, 0, sizeof(resp));
  rc = s->in->io.post(s->in->io.ud, path, body, &resp);
  json_decref(body);
  if(rc) {
    step_fail(s, "cannot report command %s: %s", id, resp.errmsg);
    res = POST_RETRY;
  }
  else if(resp.status >= 200 && resp.status <= 299) {
    mdm_debug("command %s: reported %s", id, status);
    res = POST_OK;
  }
  else {
    mdm_response_describe(&resp, why, sizeof(why));
    if(resp.status == 401 || resp.status == 403) {
      step_fail(s, "cannot report command %s: %s", id, why);
      res = POST_AUTH;
    }
    else if(resp.status == 400 || resp.status == 404 || resp.status == 409) {
      mdm_warn("command %s: the server refused the result '%s': %s", id,
               status, why);
      res = POST_FINAL;
    }
    else {
      step_fail(s, "cannot report command %s: %s", id, why);
      res = POST_RETRY;
    }
  }
  mdm_response_release(&resp);
  return res;
}

static mdm_rc stop_managing(struct step *s)
{
  char path[PATH_MAX];
  mdm_rc rc = mdm_state_path(s->in->state_dir, "credentials.json", path,
                             sizeof(path));
  if(!rc && unlink(path) != 0 && errno != ENOENT)
    rc = MDM_ERR_IO;
  if(rc) {
    step_fail(s, "device wiped, but cannot remove the credentials in '%s'",
              s->in->state_dir);
    return rc;
  }
  mdm_warn("device wiped: credentials removed from '%s'; this device is no "
           "longer managed, mdm-agent stops", s->in->state_dir);
  s->out->is_unmanaged = 1;
  return MDM_OK;
}

/* Send the journal's undelivered results (all, or only id's). */
static mdm_rc flush_results(struct step *s, const char *only_id)
{
  size_t i;
  json_t *e;
  mdm_rc rc = MDM_OK;

  json_array_foreach(s->journal, i, e) {
    const char *id = json_string_value(json_object_get(e, "id"));
    enum post_result pr;
    if(only_id && strcmp(id, only_id))
      continue;
    if(strcmp(json_string_value(json_object_get(e, "state")), "done"))
      continue;
    if(json_is_true(json_object_get(e, "reported")) && !only_id)
      continue;
    pr = post_result(s, id, json_string_value(json_object_get(e, "status")),
                     json_string_value(json_object_get(e, "detail")));
    if(pr == POST_AUTH) {
      s->out->is_auth = 1;
      return MDM_ERR_AUTH;
    }
    if(pr == POST_RETRY) {
      rc = MDM_ERR_IO;
      break;
    }
    if(!json_is_true(json_object_get(e, "reported"))) {
      if(pr == POST_OK)
        s->out->n_reported++;
      json_object_set_new(e, "reported", json_true());
      rc = journal_save(s);
      if(rc)
        break;
    }
    if(json_is_true(json_object_get(e, "unmanaged")))
      return stop_managing(s);
  }
  return rc;
}

/* Entries left "started" by an agent that stopped while they ran. */
static mdm_rc recover(struct step *s)
{
  size_t i;
  json_t *e;
  int is_changed = 0;

  json_array_foreach(s->journal, i, e) {
    const char *type = json_string_value(json_object_get(e, "type"));
    int is_reboot = !strcmp(type, "reboot");
    if(strcmp(json_string_value(json_object_get(e, "state")), "started"))
      continue;
    mdm_warn("command %s (%s) was interrupted; it is not run again",
             json_string_value(json_object_get(e, "id")), type);
    if(entry_done(e, is_reboot, is_reboot ? MDM_CMD_REBOOTED :
                  MDM_CMD_INTERRUPTED, 0))
      return MDM_ERR_NOMEM;
    is_changed = 1;
  }
  return is_changed ? journal_save(s) : MDM_OK;
}

/* ---- one command ------------------------------------------------------------------ */

/* Returns MDM_OK to go on with the next command. */
static mdm_rc run_one(struct step *s, json_t *cmd)
{
  const char *id = json_string_value(json_object_get(cmd, "id"));
  const char *type = json_string_value(json_object_get(cmd, "type"));
  json_t *params = json_object_get(cmd, "params"), *e;
  const struct mdm_action *act;
  struct mdm_action_ctx ctx;
  struct mdm_action_result res;
  enum post_result pr;
  char why[256];
  mdm_rc rc;

  if(!id || !mdm_is_uuid(id) || !type) {
    mdm_warn("ignoring a command without a valid id and type");
    return MDM_OK;
  }
  e = journal_find(s, id);
  if(e) {
    /* Never run twice; send what we have if the server still lists it. */
    mdm_debug("command %s: already run, not again", id);
    if(!strcmp(json_string_value(json_object_get(e, "state")), "done"))
      return flush_results(s, id);
    return MDM_OK;
  }
  memset(&ctx, 0, sizeof(ctx));
  ctx.root = s->in->root;
  ctx.state_dir = s->in->state_dir;
  ctx.cfg = s->in->cfg;
  ctx.params = json_is_object(params) ? params : NULL;
  ctx.refresh = s->in->refresh;
  ctx.refresh_ud = s->in->refresh_ud;
  ctx.policy_sync = s->in->policy_sync;
  ctx.policy_sync_ud = s->in->policy_sync_ud;
  ctx.rotate_cert = s->in->rotate_cert;
  ctx.rotate_cert_ud = s->in->rotate_cert_ud;
  act = mdm_action_find(s->in->table, type);
  if(act && act->is_ready && !act->is_ready(&ctx, why, sizeof(why))) {
    mdm_info("command %s (%s) waits: %s", id, type, why);
    return MDM_OK;
  }

  pr = post_result(s, id, "acknowledged", NULL);
  if(pr == POST_AUTH) {
    s->out->is_auth = 1;
    return MDM_ERR_AUTH;
  }
  if(pr == POST_RETRY)
    return MDM_ERR_IO;   /* not journaled: offered again next time */
  e = json_pack("{s:s, s:s, s:s, s:n, s:n, s:b, s:b, s:I}", "id", id, "type",
                type, "state", "started", "status", "detail", "reported", 0,
                "unmanaged", 0, "at", (json_int_t)mdm_now_ms());
  if(!e || json_array_append_new(s->journal, e)) {
    step_fail(s, "cannot journal command %s: out of memory", id);
    return MDM_ERR_NOMEM;
  }
  if(pr == POST_FINAL) {
    /* Canceled or expired on the server before it ran: not run. */
    mdm_info("command %s (%s) is no longer wanted by the server; not run",
             id, type);
    if(entry_done(e, 0, "not run: canceled or expired", 1))
      return MDM_ERR_NOMEM;
    return journal_save(s);
  }
  rc = journal_save(s);     /* on disk before the action runs */
  if(rc) {
    json_array_remove(s->journal, json_array_size(s->journal) - 1);
    return rc;
  }

  memset(&res, 0, sizeof(res));
  mdm_info("command %s: %s", id, type);
  if(act)
    act->run(&ctx, &res);
  else
    mdm_action_set(&res, 0, "unknown command type");
  s->out->n_run++;
  mdm_info("command %s (%s) %s%s%s", id, type, res.is_completed ?
           "completed" : "failed", res.detail[0] ? ": " : "", res.detail);
  if(entry_done(e, res.is_completed, res.detail, 0) ||
     json_object_set_new(e, "unmanaged", json_boolean(res.is_unmanaged)))
    return MDM_ERR_NOMEM;
  rc = journal_save(s);
  if(rc)
    return rc;
  return flush_results(s, id);
}

/* ---- the step ------------------------------------------------------------------ */

mdm_rc mdm_commands_step(const struct mdm_cmd_step_in *in,
                         struct mdm_cmd_step_out *out)
{
  struct step s;
  struct mdm_response resp;
  char why[512];
  json_t *items;
  size_t i;
  mdm_rc rc;

  memset(out, 0, sizeof(*out));
  memset(&s, 0, sizeof(s));
  memset(&resp, 0, sizeof(resp));
  s.in = in;
  s.out = out;
  rc = journal_load(&s);
  if(!rc)
    rc = recover(&s);
  if(!rc)
    rc = flush_results(&s, NULL);
  if(rc || out->is_unmanaged || !in->is_fetch)
    goto out;

  rc = in->io.get(in->io.ud, "/v1/agent/commands", &resp);
  if(rc) {
    step_fail(&s, "cannot fetch commands: %s", resp.errmsg);
    rc = MDM_ERR_IO;
    goto out;
  }
  if(resp.status < 200 || resp.status > 299) {
    mdm_response_describe(&resp, why, sizeof(why));
    step_fail(&s, "cannot fetch commands: %s", why);
    if(resp.status == 401 || resp.status == 403) {
      out->is_auth = 1;
      rc = MDM_ERR_AUTH;
    }
    else
      rc = MDM_ERR_IO;
    goto out;
  }
  items = json_object_get(resp.body, "items");
  if(!json_is_array(items)) {
    step_fail(&s, "cannot fetch commands: invalid answer from server");
    rc = MDM_ERR_IO;
    goto out;
  }
  mdm_debug("%zu command(s) to look at", json_array_size(items));
  for(i = 0; i < json_array_size(items); i++) {
    if(in->stop && *in->stop)
      break;
    rc = run_one(&s, json_array_get(items, i));
    if(rc || out->is_unmanaged)
      break;
  }
out:
  mdm_response_release(&resp);
  json_decref(s.doc);
  return rc;
}
