/*
 * api_common.c: small pieces the handlers share: canonical JSON, label
 * checks, health endpoints.
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/api.h"

mdm_rc mdm_canonical_json(json_t *v, char **text, char hash[65])
{
  char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if(!s)
    return MDM_ERR_NOMEM;
  mdm_sha256_hex(s, strlen(s), hash);
  *text = s;
  return MDM_OK;
}

static int label_char_ok(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
         c == '/';
}

int mdm_label_key_ok(const char *k)
{
  size_t i, n = strlen(k);
  if(n == 0 || n > 63)
    return 0;
  for(i = 0; i < n; i++)
    if(!label_char_ok(k[i]))
      return 0;
  return 1;
}

int mdm_label_value_ok(const char *v)
{
  size_t i, n = strlen(v);
  if(n > 63)
    return 0;
  for(i = 0; i < n; i++)
    if(!label_char_ok(v[i]))
      return 0;
  return 1;
}

mdm_rc mdm_check_labels(struct mdm_req *r, json_t *labels, int allow_null)
{
  const char *k;
  json_t *v;
  if(!json_is_object(labels))
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'labels': expected an object");
  if(json_object_size(labels) > 64)
    return mdm_req_fail(r, MDM_ERR_INVAL, "field 'labels': at most 64 labels");
  json_object_foreach(labels, k, v) {
    if(!mdm_label_key_ok(k))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "label key '%.80s': expected 1-63 characters of "
                          "[A-Za-z0-9._/-]", k);
    if(json_is_null(v) && allow_null)
      continue;
    if(!json_is_string(v) || !mdm_label_value_ok(json_string_value(v)))
      return mdm_req_fail(r, MDM_ERR_INVAL,
                          "label '%.80s': value must be a string of 0-63 "
                          "characters of [A-Za-z0-9._/-]", k);
  }
  return MDM_OK;
}

mdm_rc mdm_api_healthz(struct mdm_req *r)
{
  return mdm_req_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

mdm_rc mdm_api_readyz(struct mdm_req *r)
{
  if(atomic_load(&r->srv->is_draining))
    return mdm_req_fail(r, MDM_ERR_BUSY, "shutting down");
  if(r->srv->store->ops->ping(r->srv->store))
    return mdm_req_fail(r, MDM_ERR_BUSY, "store unreachable");
  return mdm_req_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}
