/*
 * api.h: the handlers, one api_<resource>.c each.  Routes live in router.c.
 */
#ifndef MDM_API_H
#define MDM_API_H

#include "server/http.h"

mdm_rc mdm_api_healthz(struct mdm_req *r);
mdm_rc mdm_api_readyz(struct mdm_req *r);

mdm_rc mdm_api_tokens_create(struct mdm_req *r);
mdm_rc mdm_api_tokens_list(struct mdm_req *r);
mdm_rc mdm_api_tokens_delete(struct mdm_req *r);

mdm_rc mdm_api_etokens_create(struct mdm_req *r);
mdm_rc mdm_api_etokens_list(struct mdm_req *r);
mdm_rc mdm_api_etokens_delete(struct mdm_req *r);

mdm_rc mdm_api_enroll(struct mdm_req *r);
mdm_rc mdm_api_agent_checkin(struct mdm_req *r);
mdm_rc mdm_api_agent_telemetry(struct mdm_req *r);

mdm_rc mdm_api_devices_list(struct mdm_req *r);
mdm_rc mdm_api_devices_get(struct mdm_req *r);
mdm_rc mdm_api_devices_patch(struct mdm_req *r);

mdm_rc mdm_api_policies_list(struct mdm_req *r);
mdm_rc mdm_api_policies_get(struct mdm_req *r);
mdm_rc mdm_api_policies_put(struct mdm_req *r);
mdm_rc mdm_api_policies_delete(struct mdm_req *r);
mdm_rc mdm_api_policies_apply(struct mdm_req *r);
mdm_rc mdm_api_agent_policy(struct mdm_req *r);

mdm_rc mdm_api_commands_create(struct mdm_req *r);
mdm_rc mdm_api_commands_bulk(struct mdm_req *r);
mdm_rc mdm_api_commands_list(struct mdm_req *r);
mdm_rc mdm_api_commands_get(struct mdm_req *r);
mdm_rc mdm_api_commands_cancel(struct mdm_req *r);
mdm_rc mdm_api_devices_retire(struct mdm_req *r);
mdm_rc mdm_api_agent_commands(struct mdm_req *r);
mdm_rc mdm_api_agent_command_result(struct mdm_req *r);

mdm_rc mdm_api_audit_list(struct mdm_req *r);
mdm_rc mdm_api_audit_verify(struct mdm_req *r);

/* Shared by handlers: canonical JSON (sorted, compact) and its SHA-256. */
mdm_rc mdm_canonical_json(json_t *v, char **text /* OUT */,
                          char hash[65] /* OUT */);
/* A label key or value: 1..63 chars of [A-Za-z0-9._-/]; values may be
 * empty. */
int mdm_label_key_ok(const char *k);
int mdm_label_value_ok(const char *v);
/* Check a labels object {k: "v"}; on failure sets the problem on r. */
mdm_rc mdm_check_labels(struct mdm_req *r, json_t *labels, int allow_null);

/* Check the facts an agent sent: an object whose summary fields, when
 * present, have the contract's types (CONTRACT §4).  On success *text
 * (caller frees) and hash hold its canonical form. */
mdm_rc mdm_check_facts(struct mdm_req *r, json_t *facts, char **text,
                       char hash[65]);

#endif
