/*
 * api_ca.c: the tenants' CA certificates and CRLs, published (issue 5):
 *   GET /v1/ca.pem?tenant=NAME|ID    the CA that signs the tenant's device
 *                                    certificates (gateways trust it)
 *   GET /v1/crl.pem?tenant=NAME|ID   its CRL: the certificates of retired
 *                                    and wiped devices, signed now, valid
 *                                    for a day (fetch it more often)
 *   GET /v1/server-ca.pem            the CA agents pin (--tls-cert's root,
 *                                    or --pin-ca): an agent enrolling
 *                                    fetches it unverified and keeps it
 *                                    only if its SHA-256 is the pin its
 *                                    enrollment token carries
 * All are public: a CA certificate and a CRL are made to be shared.  An
 * unknown tenant is a 404 (as is one whose CA was never needed: creating
 * it is left to enrollment).
 */
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "crypto/pki.h"
#include "server/api.h"
#include "server/ca.h"

#define CRL_VALID_S 86400

static mdm_rc reply_pem(struct mdm_req *r, char *pem)
{
  free(r->resp_body);
  r->resp_body = pem;
  r->resp_len = strlen(pem);
  r->resp_type = "application/x-pem-file";
  r->status = 200;
  return MDM_OK;
}

/* The tenant named by ?tenant= (its id into tenant_id) and its CA. */
static mdm_rc tenant_ca(struct mdm_req *r, char *tenant_id,
                        const struct mdm_ca **ca)
{
  struct mdm_tenant tt, *t = &tt;
  const char *q = mdm_req_query(r, "tenant");
  char *k = NULL, *c = NULL;
  mdm_rc rc;
  if(!q || !*q || strlen(q) > 64)
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'tenant': expected the "
                        "tenant's name or id");
  memset(t, 0, sizeof(*t));
  rc = r->srv->store->ops->tenant_get(r->srv->store, q, t);
  mdm_strlcpy(tenant_id, t->id, MDM_UUID_LEN + 1);
  mdm_tenant_release(t);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "no tenant '%s'", q);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the tenant");
  /* Published once it exists: the first enrollment with a CSR makes it. */
  rc = r->srv->store->ops->ca_get(r->srv->store, tenant_id, &k, &c);
  if(k)
    memset(k, 0, strlen(k));
  free(k);
  free(c);
  if(rc == MDM_ERR_NOTFOUND)
    return mdm_req_fail(r, rc, "tenant '%s' has issued no certificates yet",
                        q);
  if(!rc)
    rc = mdm_ca_get(r->srv, tenant_id, ca);
  if(rc)
    return mdm_req_fail(r, rc, "cannot load the tenant's CA");
  return MDM_OK;
}

mdm_rc mdm_api_ca_pem(struct mdm_req *r)
{
  char tenant[MDM_UUID_LEN + 1];
  const struct mdm_ca *ca;
  char *pem;
  mdm_rc rc = tenant_ca(r, tenant, &ca);
  if(rc)
    return rc;
  pem = strdup(ca->cert_pem);
  if(!pem)
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  return reply_pem(r, pem);
}

mdm_rc mdm_api_crl_pem(struct mdm_req *r)
{
  char tenant[MDM_UUID_LEN + 1];
  const struct mdm_ca *ca;
  struct mdm_revoked *rv = NULL;
  json_t *rows = NULL, *row;
  char *pem = NULL;
  int64_t now = mdm_now_ms() / 1000;
  size_t i, n;
  mdm_rc rc = tenant_ca(r, tenant, &ca);
  if(rc)
    return rc;
  rc = r->srv->store->ops->cert_revoked_list(r->srv->store, tenant, &rows);
  if(rc)
    return mdm_req_fail(r, rc, "cannot read the revoked certificates");
  n = json_array_size(rows);
  rv = calloc(n ? n : 1, sizeof(*rv));
  if(!rv) {
    json_decref(rows);
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  }
  json_array_foreach(rows, i, row) {
    rv[i].serial = json_string_value(json_array_get(row, 0));
    rv[i].revoked_at = json_integer_value(json_array_get(row, 1));
  }
  /* The CRL number only grows: the time it was made. */
  rc = mdm_crl_build(ca->key, ca->cert, rv, n, now, now + CRL_VALID_S, now,
                     &pem);
  free(rv);
  json_decref(rows);
  if(rc)
    return mdm_req_fail(r, rc, "cannot build the CRL");
  return reply_pem(r, pem);
}

mdm_rc mdm_api_server_ca_pem(struct mdm_req *r)
{
  char *pem;
  if(!r->srv->server_ca_pem)
    return mdm_req_fail(r, MDM_ERR_NOTFOUND, "this server pins no CA (it "
                        "runs without --tls-cert or --pin-ca)");
  pem = strdup(r->srv->server_ca_pem);
  if(!pem)
    return mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
  return reply_pem(r, pem);
}
