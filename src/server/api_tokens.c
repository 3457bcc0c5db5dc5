/*
 * api_tokens.c: API tokens (owner only): create, list, delete.  The secret
 * is returned once and stored as its SHA-256.
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/api.h"
#include "server/router.h"
#include "server/token.h"

mdm_rc mdm_api_tokens_create(struct mdm_req *r)
{
  static const char *const fields[] = {"name", "role", NULL};
  json_t *body = NULL, *out = NULL, *detail = NULL;
  struct mdm_token_info t;
  struct mdm_audit_in a;
  const char *name, *role;
  char *secret = NULL, hash[65];
  mdm_rc rc;

  rc = mdm_req_json_body(r, fields, &body);
  if(rc)
    return rc;
  name = json_string_value(json_object_get(body, "name"));
  role = json_string_value(json_object_get(body, "role"));
  if(!name || !*name || strlen(name) > 64) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL,
                      "field 'name': expected a string of 1-64 characters");
    goto out;
  }
  if(!role || !mdm_role_bit(role)) {
    rc = mdm_req_fail(r, MDM_ERR_INVAL,
                      "field 'role': expected one of owner, admin, operator, "
                      "helpdesk, auditor");
    goto out;
  }
  memset(&t, 0, sizeof(t));
  rc = mdm_uuid_v4(t.id);
  if(!rc)
    rc = mdm_api_token_new(&secret, hash);
  if(rc)
    goto out;
  mdm_strlcpy(t.tenant_id, r->who.tenant_id, sizeof(t.tenant_id));
  mdm_strlcpy(t.role, role, sizeof(t.role));
  detail = json_pack("{s:s, s:s}", "name", name, "role", role);
  a.actor = r->who.actor;
  a.action = "token.create";
  a.target = t.id;
  a.detail = detail;
  rc = r->srv->store->ops->token_create(r->srv->store, &t, name, hash,
                                        r->who.actor, &a, &out);
  if(rc) {
    mdm_req_fail(r, rc, "cannot create the token");
    goto out;
  }
  json_object_set_new(out, "token", json_string(secret));
  rc = mdm_req_reply_json(r, 201, out);
out:
  if(secret) {
    memset(secret, 0, strlen(secret));
    free(secret);
  }
  json_decref(detail);
  json_decref(body);
  return rc;
}

mdm_rc mdm_api_tokens_list(struct mdm_req *r)
{
  json_t *items = NULL;
  mdm_rc rc = r->srv->store->ops->token_list(r->srv->store, r->who.tenant_id,
                                             &items);
  if(rc)
    return mdm_req_fail(r, rc, "cannot list tokens");
  return mdm_req_reply_list(r, items, NULL);
}

mdm_rc mdm_api_tokens_delete(struct mdm_req *r)
{
  struct mdm_audit_in a = {r->who.actor, "token.delete", r->params[0], NULL};
  mdm_rc rc;
  if(!mdm_is_uuid(r->params[0]))
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "no token '%s'", r->params[0]);
  rc = r->srv->store->ops->token_delete(r->srv->store, r->who.tenant_id,
                                        r->params[0], &a);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no token '%s'", r->params[0]);
  if(rc)
    return mdm_req_fail(r, rc, "cannot delete the token");
  return mdm_req_reply_empty(r, 204);
}
