/*
 * api_agent.c: what devices call with their device token: check-in (facts
 * stored, last_seen updated) and telemetry batches (stored once per
 * device-side seq).  The check-in is the hot path: one group-committed
 * transaction that rewrites the wide facts row only when the facts' hash
 * changed.
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/api.h"

#define TELEMETRY_MAX_EVENTS 1000

mdm_rc mdm_api_agent_checkin(struct mdm_req *r)
{
  static const char *const fields[] = {"facts", NULL};
  json_t *body = NULL, *state = NULL;
  struct mdm_checkin_in in;
  char *text = NULL, hash[65];
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  if(!json_object_get(body, "facts")) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'facts' is required");
    goto out;
  }
  rc = mdm_check_facts(r, json_object_get(body, "facts"), &text, hash);
  if(rc)
    goto out;
  in.device_id = r->who.id;
  in.facts_json = text;
  in.facts_hash = hash;
  in.now = mdm_now_ms() / 1000;
  rc = r->srv->store->ops->checkin(r->srv->store, r->who.tenant_id, &in,
                                   &state);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                             "revoked)");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot store the check-in");
    goto out;
  }
  rc = mdm_req_reply_json(
    r, 200,
    json_pack("{s:O, s:n, s:i, s:i}", "compliance",
              json_object_get(state, "compliance"), "policy_etag",
              "pending_commands", 0, "checkin_interval_s",
              r->srv->cfg.checkin_interval_s));
out:
  json_decref(state);
  free(text);
  json_decref(body);
  return rc;
}

static mdm_rc check_event(struct mdm_req *r, size_t i, json_t *ev)
{
  const char *k;
  json_t *v;
  int64_t t;
  if(!json_is_object(ev))
    return mdm_req_fail(r, MDM_ERR_INVAL, "events[%zu]: expected an object",
                        i);
  json_object_foreach(ev, k, v) {
    if(strcmp(k, "seq") && strcmp(k, "at") && strcmp(k, "type") &&
       strcmp(k, "data"))
      return mdm_req_fail(r, MDM_ERR_INVAL, "events[%zu]: unknown field "
                                            "'%.64s'", i, k);
  }
  v = json_object_get(ev, "seq");
  if(!json_is_integer(v) || json_integer_value(v) < 1)
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].seq: expected a positive integer", i);
  v = json_object_get(ev, "type");
  if(!json_is_string(v) || json_string_length(v) == 0 ||
     json_string_length(v) > 64)
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].type: expected a string of 1-64 "
                        "characters", i);
  v = json_object_get(ev, "at");
  if(v && (!json_is_string(v) || mdm_time_parse(json_string_value(v), &t)))
    return mdm_req_fail(r, MDM_ERR_INVAL,
                        "events[%zu].at: expected an RFC 3339 UTC time", i);
  return MDM_OK;
}

mdm_rc mdm_api_agent_telemetry(struct mdm_req *r)
{
  static const char *const fields[] = {"events", "dropped", NULL};
  json_t *body = NULL, *events, *dropped, *ev, *result = NULL;
  int64_t n_dropped = 0;
  size_t i;
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  events = json_object_get(body, "events");
  if(!json_is_array(events)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL, "field 'events': expected an array");
    goto out;
  }
  if(json_array_size(events) > TELEMETRY_MAX_EVENTS) {
    rc = mdm_req_fail(r, MDM_ERR_TOOBIG, "field 'events': at most %d events "
                                         "a batch", TELEMETRY_MAX_EVENTS);
    goto out;
  }
  dropped = json_object_get(body, "dropped");
  if(dropped) {
    if(!json_is_integer(dropped) || json_integer_value(dropped) < 0) {
      rc = mdm_req_fail(r, MDM_ERR_INVAL,
                        "field 'dropped': expected a non-negative integer");
      goto out;
    }
    n_dropped = json_integer_value(dropped);
  }
  json_array_foreach(events, i, ev) {
    rc = check_event(r, i, ev);
    if(rc)
      goto out;
  }
  rc = r->srv->store->ops->telemetry_put(r->srv->store, r->who.tenant_id,
                                         r->who.id, events, n_dropped,
                                         mdm_now_ms() / 1000, &result);
  if(rc == MDM_ERR_AUTH) {
    rc = mdm_req_fail(r, rc, "device is not active (retired, wiped or "
                             "revoked)");
    goto out;
  }
  if(rc) {
    mdm_req_fail(r, rc, "cannot store telemetry");
    goto out;
  }
  rc = mdm_req_reply_json(r, 200, result);
  result = NULL;
out:
  json_decref(result);
  json_decref(body);
  return rc;
}
