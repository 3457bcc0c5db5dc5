/*
 * store.c: backend selection and what all backends share (see store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store.h"
#include "core/buf.h"

void mdm_tenant_release(struct mdm_tenant *t)
{
  free(t->key_pem);
  t->key_pem = NULL;
}

mdm_rc mdm_store_open(const char *url, struct mdm_store **out)
{
  if(!strncmp(url, "sqlite:", 7))
    return mdm_store_sqlite_open(url + 7, out);
  if(!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
    return MDM_ERR_UNSUPPORTED;
  if(strstr(url, "://"))
    return MDM_ERR_INVAL;
  return mdm_store_sqlite_open(url, out);
}

void mdm_store_close(struct mdm_store *s)
{
  if(s)
    s->ops->close(s);
}

mdm_rc mdm_audit_hash(const char *prev_hash, int64_t seq, const char *at,
                      const char *actor, const char *action,
                      const char *target, const char *detail_json,
                      char *out)
{
  struct mdm_buf b;
  mdm_rc rc;
  /* One line per field, each a JSON value, so no field can bleed into the
   * next whatever it contains. */
  json_t *fields = json_pack("[s, I, s, s, s, s, s]", prev_hash ? prev_hash : "",
                             (json_int_t)seq, at, actor, action,
                             target ? target : "",
                             detail_json ? detail_json : "null");
  char *s;
  if(!fields)
    return MDM_ERR_NOMEM;
  s = json_dumps(fields, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(fields);
  if(!s)
    return MDM_ERR_NOMEM;
  mdm_buf_init(&b, 1 << 20);
  rc = mdm_buf_puts(&b, s);
  free(s);
  if(!rc)
    mdm_sha256_hex(b.data, b.len, out);
  mdm_buf_release(&b);
  return rc;
}
