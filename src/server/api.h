/*
 * api.h: the handlers, one api_<resource>.c each.  Routes live in router.c.
 */
#ifndef MDM_API_H
#define MDM_API_H

#include "server/http.h"

mdm_rc mdm_api_healthz(struct mdm_req *r);
mdm_rc mdm_api_metrics(struct mdm_req *r);
mdm_rc mdm_api_ca_pem(struct mdm_req *r);
mdm_rc mdm_api_crl_pem(struct mdm_req *r);
mdm_rc mdm_api_server_ca_pem(struct mdm_req *r);
mdm_rc mdm_api_access_evaluate(struct mdm_req *r);
mdm_rc mdm_api_access_check(struct mdm_req *r);
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
mdm_rc mdm_api_agent_certificate(struct mdm_req *r);

mdm_rc mdm_api_audit_list(struct mdm_req *r);
mdm_rc mdm_api_audit_verify(struct mdm_req *r);
mdm_rc mdm_api_audit_checkpoint(struct mdm_req *r);
mdm_rc mdm_api_audit_keys(struct mdm_req *r);

mdm_rc mdm_api_reports_compliance(struct mdm_req *r);

/* The bytes an audit checkpoint's signature covers (docs/api.md "Audit"):
 * "mdm-audit-checkpoint/v1\n<tenant>\n<records>\n<head_hash>\n<time>",
 * appended to out. */
mdm_rc mdm_audit_checkpoint_text(const char *tenant, int64_t records,
                                 const char *head_hash, const char *time,
                                 struct mdm_buf *out);

/* Append s to b as one RFC 4180 field: quoted when it holds a comma, a
 * quote, CR or LF, quotes doubled; a field starting with = + - @ TAB or CR
 * gets a leading ' so that a spreadsheet shows it as text (OWASP "CSV
 * injection").  NULL or "" appends nothing (an empty field). */
mdm_rc mdm_csv_field(struct mdm_buf *b, const char *s);
/* The RFC 4122 version 5 (SHA-1) UUID of name (n bytes) in namespace ns (a
 * UUID string), lower case, into out[MDM_UUID_LEN + 1].  MDM_ERR_INVAL
 * when ns is not a UUID. */
mdm_rc mdm_uuid_v5(const char *ns, const void *name, size_t n, char *out);
/* The rules a device fails, from its verdict's reasons (a JSON array of
 * eval.h reasons): a new array of copies of the reasons whose state is
 * noncompliant and that name a policy and a rule, in their order, each
 * with "key": "policy/rule" added.  Caller owns *out. */
mdm_rc mdm_report_failing_rules(const char *reasons_json, json_t **out);

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
