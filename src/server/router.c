/*
 * router.c: the route table, path matching and authentication of each
 * request against its route's declaration (see router.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <microhttpd.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/jwt.h"
#include "crypto/pki.h"
#include "server/api.h"
#include "server/ca.h"
#include "server/router.h"
#include "server/tls.h"

#define READ_ROLES MDM_ROLES_ALL
#define ADMIN_ROLES (MDM_ROLE_OWNER | MDM_ROLE_ADMIN)
/* Roles that may create some command; the handler checks the type
 * (helpdesk: lock, reboot, refresh_inventory only). */
#define COMMAND_ROLES \
  (MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_HELPDESK)
#define RETIRE_ROLES (MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR)
#define AUDIT_ROLES \
  (MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_AUDITOR)

const struct mdm_route mdm_routes[] = {
  {"GET", "/healthz", mdm_api_healthz, MDM_AUTH_PUBLIC},
  {"GET", "/readyz", mdm_api_readyz, MDM_AUTH_PUBLIC},
  /* Open, or guarded by --metrics-token-file in the handler: Prometheus
   * holds no API token. */
  {"GET", "/metrics", mdm_api_metrics, MDM_AUTH_PUBLIC},
  /* A CA certificate and its CRL are published. */
  {"GET", "/v1/ca.pem", mdm_api_ca_pem, MDM_AUTH_PUBLIC},
  {"GET", "/v1/crl.pem", mdm_api_crl_pem, MDM_AUTH_PUBLIC},
  /* The CA agents pin, checked by them against the enrollment token. */
  {"GET", "/v1/server-ca.pem", mdm_api_server_ca_pem, MDM_AUTH_PUBLIC},

  {"POST", "/v1/tokens", mdm_api_tokens_create, MDM_ROLE_OWNER},
  {"GET", "/v1/tokens", mdm_api_tokens_list, MDM_ROLE_OWNER},
  {"DELETE", "/v1/tokens/{id}", mdm_api_tokens_delete, MDM_ROLE_OWNER},

  {"POST", "/v1/enrollment-tokens", mdm_api_etokens_create, ADMIN_ROLES},
  {"GET", "/v1/enrollment-tokens", mdm_api_etokens_list, ADMIN_ROLES},
  {"DELETE", "/v1/enrollment-tokens/{id}", mdm_api_etokens_delete,
   ADMIN_ROLES},

  {"GET", "/v1/devices", mdm_api_devices_list, READ_ROLES},
  {"GET", "/v1/devices/{id}", mdm_api_devices_get, READ_ROLES},
  {"PATCH", "/v1/devices/{id}", mdm_api_devices_patch, ADMIN_ROLES},
  {"POST", "/v1/devices/{id}/retire", mdm_api_devices_retire, RETIRE_ROLES},
  {"POST", "/v1/devices/{id}/commands", mdm_api_commands_create,
   COMMAND_ROLES},
  {"GET", "/v1/devices/{id}/commands", mdm_api_commands_list, READ_ROLES},

  {"POST", "/v1/commands", mdm_api_commands_bulk, COMMAND_ROLES},
  {"GET", "/v1/commands/{id}", mdm_api_commands_get, READ_ROLES},
  {"POST", "/v1/commands/{id}/cancel", mdm_api_commands_cancel,
   COMMAND_ROLES},

  {"GET", "/v1/policies", mdm_api_policies_list, READ_ROLES},
  {"POST", "/v1/policies:apply", mdm_api_policies_apply, ADMIN_ROLES},
  {"GET", "/v1/policies/{kind}/{name}", mdm_api_policies_get, READ_ROLES},
  {"PUT", "/v1/policies/{kind}/{name}", mdm_api_policies_put, ADMIN_ROLES},
  {"DELETE", "/v1/policies/{kind}/{name}", mdm_api_policies_delete,
   ADMIN_ROLES},

  /* The what-if reads policies and devices; the check is the device's. */
  {"POST", "/v1/access/evaluate", mdm_api_access_evaluate, READ_ROLES},
  {"GET", "/v1/access/check", mdm_api_access_check, MDM_AUTH_DEVICE},

  {"GET", "/v1/audit", mdm_api_audit_list, AUDIT_ROLES},
  {"GET", "/v1/audit/verify", mdm_api_audit_verify, AUDIT_ROLES},
  {"GET", "/v1/audit/checkpoint", mdm_api_audit_checkpoint, AUDIT_ROLES},
  {"GET", "/v1/audit/keys", mdm_api_audit_keys, AUDIT_ROLES},
  {"GET", "/v1/reports/compliance", mdm_api_reports_compliance, AUDIT_ROLES},

  /* The enrollment token travels in the body and is checked there. */
  {"POST", "/v1/enroll", mdm_api_enroll, MDM_AUTH_PUBLIC},
  {"POST", "/v1/agent/checkin", mdm_api_agent_checkin, MDM_AUTH_DEVICE},
  {"POST", "/v1/agent/telemetry", mdm_api_agent_telemetry, MDM_AUTH_DEVICE},
  {"GET", "/v1/agent/policy", mdm_api_agent_policy, MDM_AUTH_DEVICE},
  {"GET", "/v1/agent/commands", mdm_api_agent_commands, MDM_AUTH_DEVICE},
  {"POST", "/v1/agent/commands/{id}/result", mdm_api_agent_command_result,
   MDM_AUTH_DEVICE},
  {"POST", "/v1/agent/certificate", mdm_api_agent_certificate,
   MDM_AUTH_DEVICE},
};

const int mdm_n_routes = (int)(sizeof(mdm_routes) / sizeof(mdm_routes[0]));

unsigned mdm_role_bit(const char *role)
{
  static const struct {
    const char *name;
    unsigned bit;
  } roles[] = {{"owner", MDM_ROLE_OWNER},       {"admin", MDM_ROLE_ADMIN},
               {"operator", MDM_ROLE_OPERATOR}, {"helpdesk", MDM_ROLE_HELPDESK},
               {"auditor", MDM_ROLE_AUDITOR}};
  size_t i;
  if(!role)
    return 0;
  for(i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
    if(!strcmp(roles[i].name, role))
      return roles[i].bit;
  return 0;
}

/* Does path match pattern?  Captures {x} segments into r->params. */
static int path_match(const char *pattern, const char *path, struct mdm_req *r)
{
  const char *p = pattern, *s = path;
  int n = 0;

  while(*p && *s) {
    if(*p == '{') {
      const char *pe = strchr(p, '}');
      const char *se = strchr(s, '/');
      size_t len = se ? (size_t)(se - s) : strlen(s);
      if(!pe || len == 0 || n >= MDM_MAX_PARAMS ||
         len >= sizeof(((struct mdm_req *)0)->params[0]))
        return 0;
      if(r) {
        memcpy(r->params[n], s, len);
        r->params[n][len] = '\0';
      }
      n++;
      p = pe + 1;
      s += len;
      continue;
    }
    if(*p != *s)
      return 0;
    p++;
    s++;
  }
  if(*p || *s)
    return 0;
  if(r)
    r->n_params = n;
  return 1;
}

void mdm_route_allow(const char *path, char *out, size_t n)
{
  int i;
  size_t len = 0;
  out[0] = '\0';
  for(i = 0; i < mdm_n_routes; i++) {
    if(!path_match(mdm_routes[i].pattern, path, NULL))
      continue;
    len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s",
                            len ? ", " : "", mdm_routes[i].method);
    if(len >= n) {
      out[n - 1] = '\0';
      return;
    }
  }
}

mdm_rc mdm_route_match(const char *method, const char *path,
                       struct mdm_req *r, const struct mdm_route **out)
{
  const struct mdm_route *path_only = NULL;
  int i;

  for(i = 0; i < mdm_n_routes; i++) {
    const struct mdm_route *rt = &mdm_routes[i];
    if(!path_match(rt->pattern, path, NULL))
      continue;
    if(!strcmp(rt->method, method)) {
      path_match(rt->pattern, path, r);
      *out = rt;
      return MDM_OK;
    }
    if(!path_only)
      path_only = rt;
  }
  if(path_only) {
    *out = path_only;
    return MDM_ERR_METHOD;
  }
  return MDM_ERR_NOTFOUND;
}

/* ---- authentication --------------------------------------------------- */

#define API_TOKEN_PREFIX "mdm_at_"

static mdm_rc auth_admin(struct mdm_req *r, const char *token)
{
  struct mdm_token_info info;
  char hash[65];
  mdm_rc rc;

  mdm_sha256_hex(token, strlen(token), hash);
  rc = r->srv->store->ops->token_auth(r->srv->store, hash, &info);
  if(rc == MDM_ERR_AUTH)
    return mdm_req_fail(r, rc, "invalid or revoked API token");
  if(rc)
    return mdm_req_fail(r, rc, "cannot check the API token");
  r->who.kind = MDM_PRINCIPAL_ADMIN;
  mdm_strlcpy(r->who.tenant_id, info.tenant_id, sizeof(r->who.tenant_id));
  mdm_strlcpy(r->who.id, info.id, sizeof(r->who.id));
  mdm_strlcpy(r->who.role, info.role, sizeof(r->who.role));
  snprintf(r->who.actor, sizeof(r->who.actor), "token:%s", info.id);
  return MDM_OK;
}

static mdm_rc auth_device(struct mdm_req *r, const char *token)
{
  unsigned char digest[32];
  unsigned int dlen = 0;
  struct mdm_devtoken dt;
  int64_t now = mdm_now_ms() / 1000;

  if(strlen(token) > MDM_JWT_MAX_LEN)
    return mdm_req_fail(r, MDM_ERR_AUTH, "invalid device token");
  EVP_Digest(token, strlen(token), digest, &dlen, EVP_sha256(), NULL);
  if(!mdm_tokcache_get(r->srv->devtokens, digest, &dt)) {
    json_t *claims = NULL;
    const char *peeked, *sub, *tc;
    char tenant[MDM_UUID_LEN + 1];
    EVP_PKEY *key;
    const char *kid;
    mdm_rc rc;

    if(mdm_jwt_peek(token, NULL, &claims))
      return mdm_req_fail(r, MDM_ERR_AUTH, "invalid device token");
    peeked = json_string_value(json_object_get(claims, "tenant"));
    if(!peeked || !mdm_is_uuid(peeked) ||
       mdm_strlcpy(tenant, peeked, sizeof(tenant)) ||
       mdm_keycache_get(r->srv, tenant, &key, &kid)) {
      json_decref(claims);
      return mdm_req_fail(r, MDM_ERR_AUTH, "invalid device token");
    }
    json_decref(claims);
    claims = NULL;
    rc = mdm_jwt_verify(key, token, "mdm-device", now, &claims);
    if(rc) {
      return mdm_req_fail(r, MDM_ERR_AUTH, "%s device token",
                          rc == MDM_ERR_EXPIRED ? "expired" : "invalid");
    }
    sub = json_string_value(json_object_get(claims, "sub"));
    tc = json_string_value(json_object_get(claims, "tenant"));
    if(!sub || !mdm_is_uuid(sub) || !tc || strcmp(tc, tenant)) {
      json_decref(claims);
      return mdm_req_fail(r, MDM_ERR_AUTH, "invalid device token");
    }
    memset(&dt, 0, sizeof(dt));
    mdm_strlcpy(dt.tenant_id, tenant, sizeof(dt.tenant_id));
    mdm_strlcpy(dt.device_id, sub, sizeof(dt.device_id));
    dt.exp = json_integer_value(json_object_get(claims, "exp"));
    json_decref(claims);
    mdm_tokcache_put(r->srv->devtokens, digest, &dt);
  }
  if(dt.exp <= now)
    return mdm_req_fail(r, MDM_ERR_AUTH, "expired device token");
  r->who.kind = MDM_PRINCIPAL_DEVICE;
  mdm_strlcpy(r->who.tenant_id, dt.tenant_id, sizeof(r->who.tenant_id));
  mdm_strlcpy(r->who.id, dt.device_id, sizeof(r->who.id));
  snprintf(r->who.actor, sizeof(r->who.actor), "device:%s", dt.device_id);
  /* Whether the device is still active is checked by the handler, inside
   * the same transaction as its write. */
  return MDM_OK;
}

/* Is the peer of r one of --trusted-proxies (exact IPv4/IPv6 addresses)? */
static int peer_is_trusted(struct mdm_req *r)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  char peer[INET6_ADDRSTRLEN], list[sizeof(r->srv->cfg.trusted_proxies)];
  char *save = NULL, *tok;
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if(!sa || !r->srv->cfg.trusted_proxies[0])
    return 0;
  if(sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer,
              sizeof(peer));
  else if(sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer,
              sizeof(peer));
  else
    return 0;
  mdm_strlcpy(list, r->srv->cfg.trusted_proxies, sizeof(list));
  for(tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
    if(!strcmp(tok, peer))
      return 1;
  return 0;
}

/* Decode %XX escapes of s into out (n bytes); -1 on a bad escape or when
 * it does not fit. */
static int url_decode(const char *s, char *out, size_t n)
{
  size_t o = 0;
  for(; *s; s++) {
    int c = (unsigned char)*s;
    if(c == '%') {
      unsigned v;
      if(!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]) ||
         sscanf(s + 1, "%2x", &v) != 1)
        return -1;
      c = (int)v;
      s += 2;
    }
    if(o + 1 >= n)
      return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 0;
}

/* Certificates whose CA signature was checked once, by fingerprint: the
 * fingerprint covers every byte of the certificate, so the answer cannot
 * change, and a gateway's checks then cost no ECDSA verification (about
 * 40 us of CPU each).  Direct-mapped; a collision only costs a verify. */
#define VERIFIED_SLOTS 16384
static char verified[VERIFIED_SLOTS][MDM_FINGERPRINT_LEN + 1];
static pthread_mutex_t verified_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned verified_slot(const char *fp)
{
  unsigned v = 0;
  int i;
  for(i = 0; i < 8; i++)
    v = v * 16 + (unsigned)(isdigit((unsigned char)fp[i]) ? fp[i] - '0'
                                                           : fp[i] - 'a' + 10);
  return v % VERIFIED_SLOTS;
}

static int verified_has(const char *fp)
{
  int has;
  pthread_mutex_lock(&verified_mu);
  has = !strcmp(verified[verified_slot(fp)], fp);
  pthread_mutex_unlock(&verified_mu);
  return has;
}

static void verified_put(const char *fp)
{
  pthread_mutex_lock(&verified_mu);
  memcpy(verified[verified_slot(fp)], fp, MDM_FINGERPRINT_LEN + 1);
  pthread_mutex_unlock(&verified_mu);
}

/* The device of a client certificate (DER): known to the store by its
 * fingerprint (the SHA-256 of exactly the bytes mdmd signed), not revoked,
 * not expired, and signed by its tenant's CA.  Fills *dev. */
static mdm_rc auth_cert(struct mdm_req *r, const unsigned char *der,
                        size_t len, struct mdm_cert_row *dev)
{
  char fp[MDM_FINGERPRINT_LEN + 1];
  const struct mdm_ca *ca;
  int64_t now = mdm_now_ms() / 1000;
  const unsigned char *p = der;
  X509 *x;
  int ok;

  if(mdm_der_fingerprint(der, len, fp))
    return mdm_req_fail(r, MDM_ERR_AUTH, "invalid client certificate");
  if(r->srv->store->ops->cert_lookup(r->srv->store, fp, dev))
    return mdm_req_fail(r, MDM_ERR_AUTH, "unknown client certificate");
  if(dev->revoked_at)
    return mdm_req_fail(r, MDM_ERR_AUTH, "revoked client certificate");
  if(dev->not_after <= now)
    return mdm_req_fail(r, MDM_ERR_AUTH, "expired client certificate");
  if(verified_has(fp))
    return MDM_OK;
  x = d2i_X509(NULL, &p, (long)len);
  ok = x && !mdm_ca_get(r->srv, dev->tenant_id, &ca) &&
       X509_verify(x, X509_get0_pubkey(ca->cert)) == 1;
  X509_free(x);
  if(!ok)
    return mdm_req_fail(r, MDM_ERR_AUTH, "client certificate not from the "
                        "tenant's CA");
  verified_put(fp);
  return MDM_OK;
}

/* The DER of the one PEM certificate in pem into der[*len] (no ASN.1
 * parsing: the fingerprint is taken over these bytes). */
static int pem_to_der(const char *pem, unsigned char *der, size_t *len)
{
  BIO *b = BIO_new_mem_buf(pem, -1);
  char *name = NULL, *header = NULL;
  unsigned char *data = NULL;
  long n = 0;
  int ok = 0;
  if(b && PEM_read_bio(b, &name, &header, &data, &n) == 1 &&
     !strcmp(name, "CERTIFICATE") && n > 0 && (size_t)n <= *len) {
    memcpy(der, data, (size_t)n);
    *len = (size_t)n;
    ok = 1;
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  BIO_free(b);
  ERR_clear_error();
  return ok;
}

/* The device certificate of r, if it has one: forwarded by a trusted proxy
 * (X-Client-Cert, URL-encoded PEM), or presented in r's own TLS handshake.
 * *has is 0 when there is none; a certificate that does not name an
 * active device's current certificate fails the request. */
static mdm_rc device_cert(struct mdm_req *r, struct mdm_cert_row *dev,
                          int *has)
{
  const char *xc = mdm_req_header(r, "X-Client-Cert");
  char pem[MDM_CERT_MAX + 1];
  unsigned char buf[MDM_CERT_MAX];
  const unsigned char *der = NULL;
  size_t len = sizeof(buf);

  *has = 0;
  if(xc && *xc) {
    if(!peer_is_trusted(r))
      return mdm_req_fail(r, MDM_ERR_AUTH, "a client certificate is only "
                          "taken from a trusted proxy");
    if(url_decode(xc, pem, sizeof(pem)) || !pem_to_der(pem, buf, &len))
      return mdm_req_fail(r, MDM_ERR_AUTH, "invalid client certificate");
    der = buf;
  }
  else if(!r->srv->tls || !mdm_tls_peer_der(r->conn, &der, &len))
    return MDM_OK;
  *has = 1;
  return auth_cert(r, der, len, dev);
}

mdm_rc mdm_auth_check(struct mdm_req *r)
{
  const char *h = mdm_req_header(r, "Authorization");
  const char *token = NULL;
  unsigned need = r->route->auth;
  struct mdm_cert_row cert;
  int has_cert = 0;
  mdm_rc rc;

  if(need == MDM_AUTH_UNDECLARED) /* a bug: refuse rather than open */
    return mdm_req_fail(r, MDM_ERR_INTERNAL, "route without access rule");
  if(need & MDM_AUTH_PUBLIC)
    return MDM_OK;
  if(h && !strncasecmp(h, "Bearer ", 7)) {
    token = h + 7;
    while(*token == ' ')
      token++;
    if(!*token)
      token = NULL;
  }
  /* Device endpoints take the device certificate as the credential. */
  if(need & MDM_AUTH_DEVICE) {
    rc = device_cert(r, &cert, &has_cert);
    if(rc)
      return rc;
  }
  if(!token && has_cert) {
    r->who.kind = MDM_PRINCIPAL_DEVICE;
    mdm_strlcpy(r->who.tenant_id, cert.tenant_id, sizeof(r->who.tenant_id));
    mdm_strlcpy(r->who.id, cert.device_id, sizeof(r->who.id));
    snprintf(r->who.actor, sizeof(r->who.actor), "device:%s",
             cert.device_id);
    return MDM_OK;
  }
  if(!token)
    return mdm_req_fail(r, MDM_ERR_AUTH, "missing bearer token");

  if(!strncmp(token, API_TOKEN_PREFIX, strlen(API_TOKEN_PREFIX))) {
    if(has_cert)
      return mdm_req_fail(r, MDM_ERR_AUTH, "a device certificate with an "
                          "API token");
    rc = auth_admin(r, token);
    if(rc)
      return rc;
    if(!(need & mdm_role_bit(r->who.role))) {
      if(!(need & MDM_ROLES_ALL))
        return mdm_req_fail(r, MDM_ERR_FORBIDDEN,
                            "this endpoint is for devices");
      return mdm_req_fail(r, MDM_ERR_FORBIDDEN,
                          "role '%s' may not %s %s", r->who.role, r->method,
                          r->route->pattern);
    }
    return MDM_OK;
  }
  rc = auth_device(r, token);
  if(rc && !(need & MDM_AUTH_DEVICE))
    return mdm_req_fail(r, rc, "invalid API token");
  if(rc)
    return rc;
  if(!(need & MDM_AUTH_DEVICE))
    return mdm_req_fail(r, MDM_ERR_FORBIDDEN,
                        "a device credential cannot open admin endpoints");
  /* Both credentials: one device.  A's certificate with B's token is
   * someone holding what is not theirs. */
  if(has_cert && (strcmp(cert.device_id, r->who.id) ||
                  strcmp(cert.tenant_id, r->who.tenant_id)))
    return mdm_req_fail(r, MDM_ERR_AUTH, "the client certificate and the "
                        "device token name different devices");
  return MDM_OK;
}
