/*
 * api_audit.c: the audit log and its chain check.
 */
#include <stdio.h>
#include "core/util.h"
#include "server/api.h"

mdm_rc mdm_api_audit_list(struct mdm_req *r)
{
  const char *cur = mdm_req_query(r, "cursor");
  long long after = 0;
  int64_t next = 0;
  json_t *items = NULL;
  char nbuf[32];
  int limit;
  mdm_rc rc = mdm_req_limit(r, &limit);
  if(rc)
    return rc;
  if(cur && mdm_parse_int(cur, 0, INT64_MAX, &after))
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'cursor': invalid cursor");
  rc = r->srv->store->ops->audit_list(r->srv->store, r->who.tenant_id, after,
                                      limit, &items, &next);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the audit log");
  snprintf(nbuf, sizeof(nbuf), "%lld", (long long)next);
  return mdm_req_reply_list(r, items, next ? nbuf : NULL);
}

mdm_rc mdm_api_audit_verify(struct mdm_req *r)
{
  struct mdm_audit_verify v;
  mdm_rc rc = r->srv->store->ops->audit_verify(r->srv->store,
                                               r->who.tenant_id, &v);
  if(rc)
    return mdm_req_fail(r, rc, "cannot verify the audit log");
  return mdm_req_reply_json(
    r, 200, json_pack("{s:b, s:I, s:o}", "ok", v.ok, "records",
                      (json_int_t)v.records, "first_bad",
                      v.ok ? json_null() : json_integer(v.first_bad)));
}
