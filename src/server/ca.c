/*
 * ca.c: the tenants' CAs, cached (ca.h).  Tenants are few: a list under
 * one lock.  Two requests that find no CA at once both make one; the store
 * keeps the first (ca_put) and both use what it kept.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"
#include "server/ca.h"

struct ca_entry {
  struct ca_entry *next;
  char tenant[MDM_UUID_LEN + 1];
  struct mdm_ca ca;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ca_entry *head;

static void ca_release(struct mdm_ca *ca)
{
  EVP_PKEY_free(ca->key);
  X509_free(ca->cert);
  free(ca->cert_pem);
}

/* Load the CA of key_pem/cert_pem into ca. */
static mdm_rc ca_load(const char *key_pem, const char *cert_pem,
                      struct mdm_ca *ca)
{
  memset(ca, 0, sizeof(*ca));
  if(mdm_key_from_pem(key_pem, &ca->key) ||
     mdm_cert_from_pem(cert_pem, &ca->cert) ||
     !(ca->cert_pem = strdup(cert_pem))) {
    ca_release(ca);
    memset(ca, 0, sizeof(*ca));
    return MDM_ERR_CRYPTO;
  }
  return MDM_OK;
}

/* The store's CA for tenant, creating and storing one if it has none. */
static mdm_rc ca_fetch(struct mdm_server *srv, const char *tenant,
                       struct mdm_ca *ca)
{
  struct mdm_store *st = srv->store;
  char *key_pem = NULL, *cert_pem = NULL, *new_key = NULL, *new_cert = NULL;
  EVP_PKEY *k = NULL;
  X509 *x = NULL;
  mdm_rc rc = st->ops->ca_get(st, tenant, &key_pem, &cert_pem);
  if(rc == MDM_ERR_NOTFOUND) {
    struct mdm_tenant t;
    memset(&t, 0, sizeof(t));
    rc = st->ops->tenant_get(st, tenant, &t);
    if(!rc)
      rc = mdm_ca_create(tenant, t.name, &k, &x);
    mdm_tenant_release(&t);
    if(!rc)
      rc = mdm_key_to_pem(k, 1, &new_key);
    if(!rc)
      rc = mdm_cert_to_pem(x, &new_cert);
    if(!rc)
      rc = st->ops->ca_put(st, tenant, new_key, new_cert,
                           mdm_now_ms() / 1000, &key_pem, &cert_pem);
    if(!rc)
      mdm_info("created the certificate authority of tenant %s", tenant);
  }
  if(!rc)
    rc = ca_load(key_pem, cert_pem, ca);
  if(new_key) {
    OPENSSL_cleanse(new_key, strlen(new_key));
    free(new_key);
  }
  if(key_pem) {
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
  }
  free(cert_pem);
  free(new_cert);
  EVP_PKEY_free(k);
  X509_free(x);
  return rc;
}

mdm_rc mdm_ca_get(struct mdm_server *srv, const char *tenant,
                  const struct mdm_ca **out)
{
  struct ca_entry *e;
  mdm_rc rc;
  *out = NULL;
  if(!tenant || strlen(tenant) > MDM_UUID_LEN)
    return MDM_ERR_INVAL;
  pthread_mutex_lock(&lock);
  for(e = head; e; e = e->next)
    if(!strcmp(e->tenant, tenant))
      break;
  if(!e) {
    e = calloc(1, sizeof(*e));
    rc = e ? ca_fetch(srv, tenant, &e->ca) : MDM_ERR_NOMEM;
    if(rc) {
      free(e);
      pthread_mutex_unlock(&lock);
      return rc;
    }
    mdm_strlcpy(e->tenant, tenant, sizeof(e->tenant));
    e->next = head;
    head = e;
  }
  *out = &e->ca;
  pthread_mutex_unlock(&lock);
  return MDM_OK;
}

void mdm_ca_cache_free(void)
{
  pthread_mutex_lock(&lock);
  while(head) {
    struct ca_entry *e = head;
    head = e->next;
    ca_release(&e->ca);
    free(e);
  }
  pthread_mutex_unlock(&lock);
}
