/*
 * identity.c: the device's key and certificate in the state directory, and
 * their renewal through POST /v1/agent/certificate (see identity.h for the
 * steps and what a crash leaves).  Everything read back is checked: a pair
 * is only used when the certificate is for that key and this device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "agent/identity.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"

#define KEY_MAX 8192
#define URN_PREFIX "urn:mdm:device:"
#define CERT_PATH "/v1/agent/certificate"

/* The four files of a pair and its renewal. */
struct paths {
  char key[PATH_MAX], cert[PATH_MAX], key_next[PATH_MAX], cert_next[PATH_MAX];
  char ca[PATH_MAX];
};

static mdm_rc paths_init(const char *dir, struct paths *p)
{
  if(mdm_state_path(dir, MDM_IDENTITY_KEY_FILE, p->key, sizeof(p->key)) ||
     mdm_state_path(dir, MDM_IDENTITY_CERT_FILE, p->cert, sizeof(p->cert)) ||
     mdm_state_path(dir, MDM_IDENTITY_KEY_FILE MDM_IDENTITY_NEXT, p->key_next,
                    sizeof(p->key_next)) ||
     mdm_state_path(dir, MDM_IDENTITY_CERT_FILE MDM_IDENTITY_NEXT,
                    p->cert_next, sizeof(p->cert_next)) ||
     mdm_state_path(dir, MDM_IDENTITY_CA_FILE, p->ca, sizeof(p->ca)))
    return MDM_ERR_TOOBIG;
  return MDM_OK;
}

/* ---- pure checks ------------------------------------------------------------ */

int mdm_identity_renew_due(int64_t not_before, int64_t not_after,
                           int64_t now)
{
  int64_t life = not_after - not_before;
  if(life <= 0)
    return 1;
  /* Two thirds rounded up: never a second early. */
  return now - not_before >= (2 * life + 2) / 3;
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  if(!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return (int64_t)timegm(&tm);
}

/* Is x for device_id: CN, and the SAN URI when there is one? */
static int cert_is_for(X509 *x, const char *device_id)
{
  char cn[MDM_UUID_LEN + 64] = "", urn[sizeof(URN_PREFIX) + 128];
  GENERAL_NAMES *sans;
  int is_uri = 0, is_uri_ok = 0, i;

  if(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                               sizeof(cn)) <= 0 || strcmp(cn, device_id))
    return 0;
  if(snprintf(urn, sizeof(urn), URN_PREFIX "%s", device_id) >=
     (int)sizeof(urn))
    return 0;
  sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  for(i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
    if(g->type != GEN_URI)
      continue;
    is_uri = 1;
    if((size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier) ==
       strlen(urn) &&
       !memcmp(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), urn,
               strlen(urn)))
      is_uri_ok = 1;
  }
  GENERAL_NAMES_free(sans);
  return !is_uri || is_uri_ok;
}

static int pair_ok(EVP_PKEY *key, X509 *x, const char *device_id)
{
  return key && x && EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1 &&
         cert_is_for(x, device_id);
}

mdm_rc mdm_identity_check(const char *cert_pem, const char *ca_pem,
                          EVP_PKEY *key, const char *device_id, char *why,
                          size_t n)
{
  X509 *x = NULL, *ca = NULL;
  mdm_rc rc = MDM_ERR_INVAL;

  if(!cert_pem || strlen(cert_pem) > MDM_CERT_MAX ||
     mdm_cert_from_pem(cert_pem, &x))
    snprintf(why, n, "not a PEM certificate");
  else if(ca_pem && (strlen(ca_pem) > MDM_CERT_MAX ||
                     mdm_cert_from_pem(ca_pem, &ca)))
    snprintf(why, n, "the CA is not a PEM certificate");
  else if(EVP_PKEY_eq(X509_get0_pubkey(x), key) != 1)
    snprintf(why, n, "the certificate is not for this device's key");
  else if(!cert_is_for(x, device_id))
    snprintf(why, n, "the certificate is not for device %s", device_id);
  else if(ca && X509_verify(x, X509_get0_pubkey(ca)) != 1)
    snprintf(why, n, "the certificate is not signed by the CA");
  else
    rc = MDM_OK;
  X509_free(x);
  X509_free(ca);
  return rc;
}

/* ---- files -------------------------------------------------------------------- */

/* The key or certificate in path, or NULL (absent or unreadable); *is_there
 * says whether the file exists. */
static EVP_PKEY *read_key(const char *path, int *is_there)
{
  char *s = NULL;
  size_t len = 0;
  EVP_PKEY *k = NULL;
  mdm_rc rc = mdm_file_read(path, KEY_MAX, &s, &len);
  *is_there = rc != MDM_ERR_NOTFOUND;
  if(!rc && mdm_key_from_pem(s, &k))
    k = NULL;
  if(s) {
    OPENSSL_cleanse(s, len);
    free(s);
  }
  return k;
}

static X509 *read_cert(const char *path, int *is_there)
{
  char *s = NULL;
  X509 *x = NULL;
  mdm_rc rc = mdm_file_read(path, MDM_CERT_MAX, &s, NULL);
  *is_there = rc != MDM_ERR_NOTFOUND;
  if(!rc && mdm_cert_from_pem(s, &x))
    x = NULL;
  free(s);
  return x;
}

static mdm_rc fill(struct mdm_identity *id, const struct paths *p, X509 *x)
{
  memset(id, 0, sizeof(*id));
  if(mdm_strlcpy(id->cert_file, p->cert, sizeof(id->cert_file)) ||
     mdm_strlcpy(id->key_file, p->key, sizeof(id->key_file)) ||
     mdm_cert_fingerprint(x, id->fingerprint))
    return MDM_ERR_INTERNAL;
  id->not_before = asn1_epoch(X509_get0_notBefore(x));
  id->not_after = asn1_epoch(X509_get0_notAfter(x));
  return MDM_OK;
}

/* rename(from, to), with why[n] on failure. */
static mdm_rc move(const char *from, const char *to, char *why, size_t n)
{
  if(rename(from, to) == 0)
    return MDM_OK;
  snprintf(why, n, "cannot rename '%s' to '%s': %s", from, to,
           strerror(errno));
  return MDM_ERR_IO;
}

mdm_rc mdm_identity_load(const char *state_dir, const char *device_id,
                         struct mdm_identity *id, char *why, size_t n)
{
  struct paths p;
  EVP_PKEY *k, *kn;
  X509 *c, *cn;
  int has_k, has_c, has_kn, has_cn;
  mdm_rc rc;

  memset(id, 0, sizeof(*id));
  if(n)
    why[0] = '\0';
  rc = paths_init(state_dir, &p);
  if(rc) {
    snprintf(why, n, "state dir path too long");
    return rc;
  }
  k = read_key(p.key, &has_k);
  c = read_cert(p.cert, &has_c);
  kn = read_key(p.key_next, &has_kn);
  cn = read_cert(p.cert_next, &has_cn);

  if(pair_ok(kn, cn, device_id)) {
    /* Stopped after the new certificate was kept: the server revoked the
     * old one when it issued this one, so the swap is finished. */
    mdm_warn("finishing an interrupted certificate renewal in '%s'",
             state_dir);
    rc = move(p.key_next, p.key, why, n);
    if(!rc)
      rc = move(p.cert_next, p.cert, why, n);
    if(!rc)
      rc = fill(id, &p, cn);
  }
  else if(!pair_ok(k, c, device_id) && pair_ok(k, cn, device_id)) {
    /* Stopped between the two renames: the key is in place already. */
    mdm_warn("finishing an interrupted certificate renewal in '%s'",
             state_dir);
    rc = move(p.cert_next, p.cert, why, n);
    if(!rc)
      rc = fill(id, &p, cn);
  }
  else if(pair_ok(k, c, device_id)) {
    /* What .next files are left came from a renewal that got no
     * certificate (or only half of one): of no use. */
    if(has_kn)
      unlink(p.key_next);
    if(has_cn)
      unlink(p.cert_next);
    rc = fill(id, &p, c);
  }
  else if(!has_k && !has_c) {
    rc = MDM_ERR_NOTFOUND;
  }
  else {
    snprintf(why, n, "'%s' and '%s' are not a key and certificate for "
             "device %s", p.key, p.cert, device_id);
    rc = MDM_ERR_INVAL;
  }
  if(has_kn || has_cn)
    mdm_fsync_dir(state_dir);
  EVP_PKEY_free(k);
  EVP_PKEY_free(kn);
  X509_free(c);
  X509_free(cn);
  return rc;
}

mdm_rc mdm_identity_keep(const char *state_dir, EVP_PKEY *key,
                         const char *cert_pem, const char *ca_pem)
{
  struct paths p;
  char *key_pem = NULL;
  mdm_rc rc = paths_init(state_dir, &p);

  if(!rc)
    rc = mdm_key_to_pem(key, 1, &key_pem);
  /* Leftovers of a renewal of an earlier enrollment must not be taken for
   * this one's. */
  if(!rc) {
    unlink(p.key_next);
    unlink(p.cert_next);
    rc = mdm_file_write_atomic(p.key, key_pem, strlen(key_pem), 0600);
  }
  if(!rc)
    rc = mdm_file_write_atomic(p.cert, cert_pem, strlen(cert_pem), 0600);
  if(!rc)
    rc = mdm_file_write_atomic(p.ca, ca_pem, strlen(ca_pem), 0600);
  if(key_pem) {
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
  }
  return rc;
}

void mdm_identity_remove(const char *state_dir)
{
  struct paths p;
  if(paths_init(state_dir, &p))
    return;
  unlink(p.key_next);
  unlink(p.cert_next);
  unlink(p.cert);
  unlink(p.key);
  unlink(p.ca);
  mdm_fsync_dir(state_dir);
}

/* ---- renewal -------------------------------------------------------------------- */

mdm_rc mdm_identity_renew(const char *state_dir, const char *device_id,
                          struct mdm_client *c, const char *bearer,
                          struct mdm_identity *id, char *why, size_t n)
{
  struct paths p;
  struct mdm_response resp;
  EVP_PKEY *key = NULL;
  X509 *x = NULL;
  json_t *body = NULL;
  const char *cert, *ca;
  char *key_pem = NULL, *csr = NULL, desc[512], bad[256];
  int is_key_next = 0;
  mdm_rc rc;

  memset(&resp, 0, sizeof(resp));
  if(n)
    why[0] = '\0';
  rc = paths_init(state_dir, &p);
  if(rc) {
    snprintf(why, n, "state dir path too long");
    goto out;
  }
  /* 1. The new key is on disk before the server hears of it. */
  if(mdm_key_generate(&key) || mdm_key_to_pem(key, 1, &key_pem) ||
     mdm_csr_create(key, device_id, &csr)) {
    rc = MDM_ERR_CRYPTO;
    snprintf(why, n, "cannot make a new device key");
    goto out;
  }
  rc = mdm_file_write_atomic(p.key_next, key_pem, strlen(key_pem), 0600);
  if(rc) {
    snprintf(why, n, "cannot write '%s': %s", p.key_next, mdm_strerror(rc));
    goto out;
  }
  is_key_next = 1;

  /* 2. The server issues the certificate and revokes the old ones. */
  body = json_pack("{s:s}", "csr", csr);
  if(!body) {
    rc = MDM_ERR_NOMEM;
    snprintf(why, n, "%s", mdm_strerror(rc));
    goto out;
  }
  rc = mdm_client_post(c, CERT_PATH, bearer, body, &resp);
  if(rc) {
    snprintf(why, n, "cannot reach the server: %s", resp.errmsg);
    rc = MDM_ERR_IO;
    goto out;
  }
  if(resp.status < 200 || resp.status > 299) {
    mdm_response_describe(&resp, desc, sizeof(desc));
    snprintf(why, n, "%s", desc);
    rc = resp.status == 401 || resp.status == 403 ? MDM_ERR_AUTH : MDM_ERR_IO;
    goto out;
  }

  /* 3. Only a certificate for the new key and this device is kept. */
  cert = json_string_value(json_object_get(resp.body, "certificate"));
  ca = json_string_value(json_object_get(resp.body, "ca_certificate"));
  if(!cert || !ca) {
    rc = MDM_ERR_INVAL;
    snprintf(why, n, "invalid answer from server: no certificate and "
             "ca_certificate");
    goto out;
  }
  rc = mdm_identity_check(cert, ca, key, device_id, bad, sizeof(bad));
  if(!rc)
    rc = mdm_cert_from_pem(cert, &x);
  if(rc) {
    rc = MDM_ERR_INVAL;
    snprintf(why, n, "invalid answer from server: %s", bad);
    goto out;
  }
  rc = mdm_file_write_atomic(p.cert_next, cert, strlen(cert), 0600);
  if(rc) {
    snprintf(why, n, "cannot write '%s': %s", p.cert_next, mdm_strerror(rc));
    goto out;
  }
  /* From here the .next files are a pair: should a rename fail,
   * mdm_identity_load() puts them in place. */
  is_key_next = 0;

  /* 4. Key first, then certificate: mdm_identity_load() finishes either
   * half. */
  rc = move(p.key_next, p.key, why, n);
  if(!rc)
    rc = move(p.cert_next, p.cert, why, n);
  mdm_fsync_dir(state_dir);
  if(rc)
    goto out;
  if(mdm_file_write_atomic(p.ca, ca, strlen(ca), 0600))
    mdm_warn("cannot update '%s'", p.ca);
  rc = fill(id, &p, x);
  if(rc)
    snprintf(why, n, "%s", mdm_strerror(rc));
out:
  /* A key no certificate was kept for is of no use (the pair in place is
   * untouched). */
  if(is_key_next && rc)
    unlink(p.key_next);
  if(key_pem) {
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
  }
  mdm_response_release(&resp);
  json_decref(body);
  EVP_PKEY_free(key);
  X509_free(x);
  free(csr);
  return rc;
}
