/*
 * api_commands.c: remote commands (docs/api.md "Commands", CONTRACT §5):
 * queue one for a device or many by selector, list, show and cancel them,
 * retire a device (through its wipe), and the agent's side: fetch what
 * waits and report results.  Who may create which type is decided here,
 * for every path that creates a command (single, bulk, retire); the route
 * table only admits the roles that may create some command.  The store
 * keeps the lifecycle and its audit records (store.h); after a commit
 * the device is woken over MQTT when a broker is configured (push.h),
 * and agents poll either way (ARCHITECTURE principle 1).
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/api.h"
#include "server/push.h"

#define PARAMS_MAX (16 * 1024)
#define EXPIRES_MIN 60
#define EXPIRES_MAX 2592000
#define EXPIRES_DEFAULT 86400
#define DETAIL_MAX 4096

static const char *const command_types[] = {
  "lock", "wipe", "selective_wipe", "reboot", "os_update", "install_profile",
  "remove_profile", "rotate_certificate", "refresh_inventory", NULL};

static int one_of(const char *v, const char *const *allowed)
{
  for(; *allowed; allowed++)
    if(!strcmp(v, *allowed))
      return 1;
  return 0;
}

/* May a token of role create a command of type?  helpdesk: lock, reboot
 * and refresh_inventory; auditor: nothing; the others: everything. */
static int role_may_create(const char *role, const char *type)
{
  static const char *const helpdesk[] = {"lock", "reboot",
                                         "refresh_inventory", NULL};
  if(!strcmp(role, "owner") || !strcmp(role, "admin") ||
     !strcmp(role, "operator"))
    return 1;
  if(!strcmp(role, "helpdesk"))
    return one_of(type, helpdesk);
  return 0;
}

static mdm_rc forbid(struct mdm_req *r, const char *type)
{
  return mdm_req_fail(r, MDM_ERR_FORBIDDEN,
                      "role '%s' may not create '%s' commands", r->who.role,
                      type);
}

/* A DNS label: 1-63 of [a-z0-9-], not starting or ending with '-'. */
static int profile_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n >= 1 && n <= 63 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-")
         == n && s[0] != '-' && s[n - 1] != '-';
}

/* The parts of a create body every path shares: type, params,
 * expires_in_s.  *params_text (caller frees) is canonical JSON. */
static mdm_rc parse_command(struct mdm_req *r, json_t *body,
                            const char **type, char **params_text,
                            int64_t *expires_in)
{
  json_t *t = json_object_get(body, "type");
  json_t *p = json_object_get(body, "params");
  json_t *e = json_object_get(body, "expires_in_s");
  char hash[65];
  mdm_rc rc;

  *params_text = NULL;
  if(!json_is_string(t))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'type': expected a command type");
  if(!one_of(json_string_value(t), command_types))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'type': unknown command type '%.64s'",
                        json_string_value(t));
  *type = json_string_value(t);
  /* Who may ask comes before what is wrong with the asking. */
  if(!role_may_create(r->who.role, *type))
    return forbid(r, *type);
  if(p && !json_is_object(p))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'params': expected an object");
  if(!strcmp(*type, "install_profile") || !strcmp(*type, "remove_profile")) {
    /* The ConfigurationProfile's metadata.name (docs/api.md). */
    const char *n = json_string_value(json_object_get(p, "name"));
    if(!n || !profile_name_ok(n))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'params.name': expected "
                          "the name of a ConfigurationProfile (a DNS label)");
  }
  *expires_in = EXPIRES_DEFAULT;
  if(e) {
    if(!json_is_integer(e) || json_integer_value(e) < EXPIRES_MIN ||
       json_integer_value(e) > EXPIRES_MAX)
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'expires_in_s': expected "
                          "an integer in %d..%d", EXPIRES_MIN, EXPIRES_MAX);
    *expires_in = json_integer_value(e);
  }
  if(p) {
    rc = mdm_canonical_json(p, params_text, hash);
    if(rc)
      return mdm_req_fail(r, rc, "out of memory");
    if(strlen(*params_text) > PARAMS_MAX) {
      free(*params_text);
      *params_text = NULL;
      return mdm_req_fail(r, MDM_ERR_TOOBIG,
                          "field 'params': at most %d bytes", PARAMS_MAX);
    }
  }
  return MDM_OK;
}

/* POST /v1/devices/{id}/commands */
mdm_rc mdm_api_commands_create(struct mdm_req *r)
{
  static const char *const fields[] = {"type", "params", "expires_in_s",
                                       NULL};
  struct mdm_command_new in;
  json_t *body = NULL, *out = NULL;
  char *params = NULL;
  int64_t expires_in;
  mdm_rc rc;

  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no device '%s'", r->params[0]);
  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  memset(&in, 0, sizeof(in));
  rc = parse_command(r, body, &in.type, &params, &expires_in);
  if(rc)
    goto out;
  if(!role_may_create(r->who.role, in.type)) {
    rc = forbid(r, in.type);
    goto out;
  }
  in.params_json = params ? params : "{}";
  in.now = mdm_now_ms() / 1000;
  in.expires_at = in.now + expires_in;
  in.actor = r->who.actor;
  rc = r->srv->store->ops->command_create(r->srv->store, r->who.tenant_id,
                                          r->params[0], &in, &out);
  if(rc == MDM_ERR_NOTFOUND)
    rc = mdm_req_fail(r, rc, "no device '%s'", r->params[0]);
  else if(rc == MDM_ERR_CONFLICT)
    rc = mdm_req_fail(r, rc, "device '%s' is not active", r->params[0]);
  else if(rc)
    mdm_req_fail(r, rc, "cannot queue the command");
  else {
    mdm_push_wake(r->srv->push, r->who.tenant_id, r->params[0]);
    rc = mdm_req_reply_json(r, 201, out);
  }
out:
  free(params);
  json_decref(body);
  return rc;
}

/* The selector of a bulk command: {"labels": {k: v}, "platform": P,
 * "compliance": C}, each part optional; {} is every active device. */
static mdm_rc parse_selector(struct mdm_req *r, json_t *sel,
                             struct mdm_command_selector *out)
{
  static const char *const platforms[] = {"linux", "android", "ios", "macos",
                                          "windows", NULL};
  static const char *const compliance[] = {"compliant", "noncompliant",
                                           "unknown", NULL};
  const char *k;
  json_t *v;
  mdm_rc rc;

  memset(out, 0, sizeof(*out));
  if(!sel)
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'selector' is required "
                        "(give {} to reach every active device)");
  if(!json_is_object(sel))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'selector': expected an object");
  json_object_foreach(sel, k, v) {
    if(strcmp(k, "labels") && strcmp(k, "platform") &&
       strcmp(k, "compliance"))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "field 'selector.%.64s' is unknown", k);
  }
  v = json_object_get(sel, "labels");
  if(v) {
    rc = mdm_check_labels(r, v, 0);
    if(rc)
      return rc;
    out->labels = v;
  }
  v = json_object_get(sel, "platform");
  if(v) {
    if(!json_is_string(v) || !one_of(json_string_value(v), platforms))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'selector.platform': "
                          "expected one of linux, android, ios, macos, "
                          "windows");
    out->platform = json_string_value(v);
  }
  v = json_object_get(sel, "compliance");
  if(v) {
    if(!json_is_string(v) || !one_of(json_string_value(v), compliance))
      return mdm_req_fail(r, MDM_ERR_INVAL, "field 'selector.compliance': "
                          "expected one of compliant, noncompliant, "
                          "unknown");
    out->compliance = json_string_value(v);
  }
  return MDM_OK;
}

/* POST /v1/commands: one command per matching active device. */
mdm_rc mdm_api_commands_bulk(struct mdm_req *r)
{
  static const char *const fields[] = {"type", "params", "expires_in_s",
                                       "selector", NULL};
  struct mdm_command_new in;
  struct mdm_command_selector sel;
  json_t *body = NULL, *ids = NULL;
  char *params = NULL;
  int64_t expires_in;
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  memset(&in, 0, sizeof(in));
  rc = parse_command(r, body, &in.type, &params, &expires_in);
  if(!rc)
    rc = parse_selector(r, json_object_get(body, "selector"), &sel);
  if(rc)
    goto out;
  if(!role_may_create(r->who.role, in.type)) {
    rc = forbid(r, in.type);
    goto out;
  }
  in.params_json = params ? params : "{}";
  in.now = mdm_now_ms() / 1000;
  in.expires_at = in.now + expires_in;
  in.actor = r->who.actor;
  rc = r->srv->store->ops->command_create_bulk(r->srv->store,
                                               r->who.tenant_id, &sel, &in,
                                               &ids);
  if(rc == MDM_ERR_TOOBIG)
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'selector': matches more "
                      "than %d devices", MDM_BULK_MAX);
  else if(rc)
    mdm_req_fail(r, rc, "cannot queue the commands");
  else {
    size_t i;
    json_t *v;
    /* Throttled by the publisher (--mqtt-rate). */
    json_array_foreach(ids, i, v)
      mdm_push_wake_command(r->srv->push, r->who.tenant_id,
                            json_string_value(v));
    rc = mdm_req_reply_json(r, 201,
                            json_pack("{s:I, s:o}", "count",
                                      (json_int_t)json_array_size(ids),
                                      "ids", ids));
  }
out:
  free(params);
  json_decref(body);
  return rc;
}

/* GET /v1/devices/{id}/commands[?status=S] */
mdm_rc mdm_api_commands_list(struct mdm_req *r)
{
  static const char *const statuses[] = {"queued", "sent", "acknowledged",
                                         "completed", "failed", "expired",
                                         "canceled", NULL};
  const char *status = mdm_req_query(r, "status");
  const char *cur = mdm_req_query(r, "cursor");
  json_t *items = NULL;
  int64_t after = 0, next = 0;
  char *next_enc = NULL, num[24];
  int limit;
  mdm_rc rc;

  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no device '%s'", r->params[0]);
  rc = mdm_req_limit(r, &limit);
  if(rc)
    return rc;
  if(status && !one_of(status, statuses))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'status': expected one of "
                        "queued, sent, acknowledged, completed, failed, "
                        "expired, canceled");
  if(cur) {
    unsigned char *decoded = NULL;
    size_t dlen = 0;
    long long v = 0;
    int is_bad = mdm_b64url_decode(cur, strlen(cur), &decoded, &dlen) ||
                 dlen == 0 || dlen >= sizeof(num);
    if(!is_bad) {
      memcpy(num, decoded, dlen);
      num[dlen] = '\0';
      is_bad = mdm_parse_int(num, 1, INT64_MAX, &v) != MDM_OK;
    }
    free(decoded);
    if(is_bad)
      return mdm_req_fail(r, MDM_ERR_INVAL, "query 'cursor': invalid cursor");
    after = v;
  }
  rc = r->srv->store->ops->command_list(r->srv->store, r->who.tenant_id,
                                        r->params[0], status, after, limit,
                                        mdm_now_ms() / 1000, &items, &next);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no device '%s'", r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot list commands");
  if(next) {
    snprintf(num, sizeof(num), "%lld", (long long)next);
    if(mdm_b64url_encode(num, strlen(num), &next_enc)) {
      json_decref(items);
      return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
    }
  }
  rc = mdm_req_reply_list(r, items, next_enc);
  free(next_enc);
  return rc;
}

/* GET /v1/commands/{id} */
mdm_rc mdm_api_commands_get(struct mdm_req *r)
{
  json_t *out = NULL;
  mdm_rc rc;
  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no command '%s'", r->params[0]);
  rc = r->srv->store->ops->command_get(r->srv->store, r->who.tenant_id,
                                       r->params[0], mdm_now_ms() / 1000,
                                       &out);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no command '%s'", r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the command");
  return mdm_req_reply_json(r, 200, out);
}

/* POST /v1/commands/{id}/cancel: whoever may create a command of its type
 * may cancel it. */
mdm_rc mdm_api_commands_cancel(struct mdm_req *r)
{
  struct mdm_store *st = r->srv->store;
  json_t *cmd = NULL, *out = NULL;
  int64_t now = mdm_now_ms() / 1000;
  const char *type;
  mdm_rc rc;

  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no command '%s'", r->params[0]);
  if(r->body.len) {
    json_t *body = NULL;
    static const char *const none[] = {NULL};
    rc = mdm_req_json_body(r, none, &body);
    json_decref(body);
    if(rc)
      return rc;
  }
  rc = st->ops->command_get(st, r->who.tenant_id, r->params[0], now, &cmd);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no command '%s'", r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the command");
  type = json_string_value(json_object_get(cmd, "type"));
  if(!type || !role_may_create(r->who.role, type)) {
    rc = mdm_req_fail(r, MDM_ERR_FORBIDDEN, "role '%s' may not cancel '%s' "
                      "commands", r->who.role, type ? type : "?");
    goto out;
  }
  rc = st->ops->command_cancel(st, r->who.tenant_id, r->params[0], now,
                               r->who.actor, &out);
  if(rc == MDM_ERR_NOTFOUND)
    rc = mdm_req_fail(r, rc, "no command '%s'", r->params[0]);
  else if(rc == MDM_ERR_CONFLICT)
    rc = mdm_req_fail(r, rc, "command '%s' is past 'sent': it can no "
                      "longer be canceled", r->params[0]);
  else if(rc)
    mdm_req_fail(r, rc, "cannot cancel the command");
  else
    rc = mdm_req_reply_json(r, 200, out);
out:
  json_decref(cmd);
  return rc;
}

/* POST /v1/devices/{id}/retire {"wipe": "selective"|"full"|"none"} */
mdm_rc mdm_api_devices_retire(struct mdm_req *r)
{
  static const char *const fields[] = {"wipe", NULL};
  static const char *const wipes[] = {"selective", "full", "none", NULL};
  json_t *body = NULL, *out = NULL, *w;
  const char *wipe = "selective";
  int64_t now = mdm_now_ms() / 1000;
  mdm_rc rc;

  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no device '%s'", r->params[0]);
  if(r->body.len) {
    rc = mdm_req_json_body(r, fields, &body);
    if(rc)
      return rc;
  }
  w = json_object_get(body, "wipe");
  if(w) {
    if(!json_is_string(w) || !one_of(json_string_value(w), wipes)) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'wipe': expected one of "
                                          "selective, full, none");
      goto out;
    }
    wipe = json_string_value(w);
  }
  if(strcmp(wipe, "none") &&
     !role_may_create(r->who.role,
                      strcmp(wipe, "full") ? "selective_wipe" : "wipe")) {
    rc = forbid(r, strcmp(wipe, "full") ? "selective_wipe" : "wipe");
    goto out;
  }
  rc = r->srv->store->ops->device_retire(r->srv->store, r->who.tenant_id,
                                         r->params[0], wipe, now,
                                         now + EXPIRES_DEFAULT, r->who.actor,
                                         &out);
  if(rc == MDM_ERR_NOTFOUND)
    rc = mdm_req_fail(r, rc, "no device '%s'", r->params[0]);
  else if(rc == MDM_ERR_CONFLICT)
    rc = mdm_req_fail(r, rc, "device '%s' is not active or its retirement "
                      "is already pending", r->params[0]);
  else if(rc)
    mdm_req_fail(r, rc, "cannot retire the device");
  else {
    /* Retired at once: its broker credentials go now.  A wipe first
     * wakes the device; its credentials go when the wipe ends. */
    if(!strcmp(wipe, "none"))
      mdm_push_device_remove(r->srv->push, r->params[0]);
    else
      mdm_push_wake(r->srv->push, r->who.tenant_id, r->params[0]);
    rc = mdm_req_reply_json(r, strcmp(wipe, "none") ? 202 : 200, out);
  }
out:
  json_decref(body);
  return rc;
}

/* ---- the agent's side -------------------------------------------------- */

static mdm_rc inactive(struct mdm_req *r)
{
  return mdm_req_fail(r, MDM_ERR_AUTH, "device is not active (retired, "
                                       "wiped or revoked)");
}

/* A result may have ended the device's retirement wipe, which retires it
 * (store.h command_result): then its broker credentials go.  Only a final
 * status can end it, and only the device's state is read (device_access),
 * not the whole device with its facts: this runs on every result. */
static void drop_credentials_if_gone(struct mdm_req *r, const char *status)
{
  struct mdm_device_access acc;
  json_t *labels = NULL;
  if(!strcmp(status, "acknowledged"))
    return;
  if(!r->srv->store->ops->device_access(r->srv->store, r->who.tenant_id,
                                        r->who.id, &acc, &labels) &&
     strcmp(acc.state, "active"))
    mdm_push_device_remove(r->srv->push, r->who.id);
  json_decref(labels);
}

/* GET /v1/agent/commands */
mdm_rc mdm_api_agent_commands(struct mdm_req *r)
{
  json_t *items = NULL;
  mdm_rc rc = r->srv->store->ops->agent_commands_fetch(
    r->srv->store, r->who.tenant_id, r->who.id, mdm_now_ms() / 1000, &items);
  if(rc == MDM_ERR_AUTH)
    return inactive(r);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the device's commands");
  return mdm_req_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

/* POST /v1/agent/commands/{id}/result {"status", "detail"} */
mdm_rc mdm_api_agent_command_result(struct mdm_req *r)
{
  static const char *const fields[] = {"status", "detail", NULL};
  static const char *const statuses[] = {"acknowledged", "completed",
                                         "failed", NULL};
  json_t *body = NULL, *out = NULL, *s, *d;
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  s = json_object_get(body, "status");
  d = json_object_get(body, "detail");
  if(!json_is_string(s) || !one_of(json_string_value(s), statuses)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'status': expected one of "
                                        "acknowledged, completed, failed");
    goto out;
  }
  if(d && !json_is_null(d) &&
     (!json_is_string(d) || json_string_length(d) > DETAIL_MAX)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'detail': expected a string "
                      "of at most %d bytes or null", DETAIL_MAX);
    goto out;
  }
  if(!mdm_is_uuid(r->params[0])) {
    rc = mdm_req_fail(r, MDM_ERR_NOTFOUND, "no command '%s'", r->params[0]);
    goto out;
  }
  rc = r->srv->store->ops->command_result(
    r->srv->store, r->who.tenant_id, r->who.id, r->params[0],
    json_string_value(s), json_string_value(d), mdm_now_ms() / 1000, &out);
  if(rc == MDM_ERR_AUTH)
    rc = inactive(r);
  else if(rc == MDM_ERR_NOTFOUND)
    rc = mdm_req_fail(r, rc, "no command '%s'", r->params[0]);
  else if(rc == MDM_ERR_CONFLICT)
    rc = mdm_req_fail(r, rc, "command '%s' has expired or was canceled",
                      r->params[0]);
  else if(rc)
    mdm_req_fail(r, rc, "cannot store the result");
  else {
    if(r->srv->push)
      drop_credentials_if_gone(r, json_string_value(s));
    rc = mdm_req_reply_json(r, 200, out);
  }
out:
  json_decref(body);
  return rc;
}
