/*
 * tenant.c: creating tenants (their signing key and first owner token) and
 * the bootstrap of an empty data dir (CONTRACT §1, mdmd).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"
#include "server/server.h"
#include "server/token.h"

static int tenant_name_ok(const char *s)
{
  size_t i, n = strlen(s);
  if(n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
    return 0;
  for(i = 0; i < n; i++)
    if(!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
         s[i] == '-'))
      return 0;
  return 1;
}

mdm_rc mdm_tenant_create(struct mdm_store *st, const char *name,
                         const char *region, const char *actor, char **token,
                         struct mdm_tenant *out)
{
  struct mdm_tenant t;
  struct mdm_token_info owner;
  struct mdm_audit_in a;
  EVP_PKEY *key = NULL;
  char hash[65], *secret = NULL;
  json_t *detail = NULL;
  mdm_rc rc;

  memset(&t, 0, sizeof(t));
  memset(&owner, 0, sizeof(owner));
  if(!tenant_name_ok(name))
    return MDM_ERR_INVAL;
  if(region && (strlen(region) > 63 || !*region))
    return MDM_ERR_INVAL;
  rc = mdm_uuid_v4(t.id);
  if(rc)
    goto out;
  mdm_strlcpy(t.name, name, sizeof(t.name));
  mdm_strlcpy(t.region, region ? region : "", sizeof(t.region));
  t.created_at = mdm_now_ms() / 1000;
  rc = mdm_key_generate(&key);
  if(!rc)
    rc = mdm_key_to_pem(key, 1, &t.key_pem);
  if(!rc)
    rc = mdm_key_id(key, t.kid);
  if(!rc)
    rc = mdm_api_token_new(&secret, hash);
  if(!rc)
    rc = mdm_uuid_v4(owner.id);
  if(rc)
    goto out;
  mdm_strlcpy(owner.tenant_id, t.id, sizeof(owner.tenant_id));
  mdm_strlcpy(owner.role, "owner", sizeof(owner.role));
  detail = json_pack("{s:s, s:s, s:s}", "name", t.name, "region", t.region,
                     "owner_token", owner.id);
  a.actor = actor;
  a.action = "tenant.create";
  a.target = t.id;
  a.detail = detail;
  rc = st->ops->tenant_create(st, &t, &owner, hash, &a);
  if(rc)
    goto out;
  *token = secret;
  secret = NULL;
  if(out) {
    *out = t;
    t.key_pem = NULL;
  }
out:
  json_decref(detail);
  EVP_PKEY_free(key);
  free(secret);
  mdm_tenant_release(&t);
  return rc;
}

mdm_rc mdm_bootstrap(struct mdm_server *srv)
{
  struct mdm_tenant t;
  char path[1200], *token = NULL;
  mdm_rc rc;

  rc = srv->store->ops->tenant_get(srv->store, "default", &t);
  if(rc == MDM_OK) {
    mdm_tenant_release(&t);
    return MDM_OK;
  }
  if(rc != MDM_ERR_NOTFOUND)
    return rc;
  rc = mdm_tenant_create(srv->store, "default", NULL, "system", &token, NULL);
  if(rc) {
    mdm_error("bootstrap: cannot create tenant 'default': %s",
              mdm_strerror(rc));
    return rc;
  }
  snprintf(path, sizeof(path), "%s/admin.token", srv->cfg.data_dir);
  {
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", token);
    rc = mdm_file_write_atomic(path, line, (size_t)n, 0600);
  }
  if(rc) {
    mdm_error("bootstrap: cannot write '%s'", path);
    free(token);
    return rc;
  }
  printf("bootstrapped tenant 'default'\n"
         "owner API token (shown once; also in %s, mode 0600):\n  %s\n",
         path, token);
  fflush(stdout);
  mdm_info("bootstrapped tenant 'default'; owner token written to %s", path);
  free(token);
  return MDM_OK;
}
