/*
 * cache.c: the two caches of mdmd (see server.h): tenants' signing keys and
 * verified device-token signatures.  Both hold only what the store (or the
 * token itself) says and can be dropped at any time.
 */
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "crypto/key.h"
#include "server/server.h"

/* ---- tenant keys ------------------------------------------------------ */

struct keyent {
  char tenant_id[MDM_UUID_LEN + 1];
  char kid[48];
  EVP_PKEY *key;
  char *pub_pem;      /* its public half, PEM: every enrollment sends it */
  struct keyent *next;
};

struct mdm_keycache {
  pthread_rwlock_t lock;
  struct keyent *head;
};

mdm_rc mdm_keycache_new(struct mdm_keycache **out)
{
  struct mdm_keycache *kc = calloc(1, sizeof(*kc));
  if(!kc)
    return MDM_ERR_NOMEM;
  pthread_rwlock_init(&kc->lock, NULL);
  *out = kc;
  return MDM_OK;
}

void mdm_keycache_free(struct mdm_keycache *kc)
{
  struct keyent *e, *n;
  if(!kc)
    return;
  for(e = kc->head; e; e = n) {
    n = e->next;
    EVP_PKEY_free(e->key);
    free(e->pub_pem);
    free(e);
  }
  pthread_rwlock_destroy(&kc->lock);
  free(kc);
}

static struct keyent *keycache_find(struct mdm_keycache *kc, const char *t)
{
  struct keyent *e;
  for(e = kc->head; e; e = e->next)
    if(!strcmp(e->tenant_id, t))
      return e;
  return NULL;
}

static mdm_rc keycache_get(struct mdm_server *srv, const char *tenant_id,
                           EVP_PKEY **key, const char **kid,
                           const char **pub_pem)
{
  struct mdm_keycache *kc = srv->keys;
  struct mdm_tenant t;
  struct keyent *e;
  EVP_PKEY *k = NULL;
  char *pub = NULL;
  mdm_rc rc;

  pthread_rwlock_rdlock(&kc->lock);
  e = keycache_find(kc, tenant_id);
  pthread_rwlock_unlock(&kc->lock);
  if(e)
    goto found;

  rc = srv->store->ops->tenant_get(srv->store, tenant_id, &t);
  if(rc)
    return rc;
  if(strcmp(t.id, tenant_id)) {  /* matched by name: ids only here */
    mdm_tenant_release(&t);
    return MDM_ERR_NOTFOUND;
  }
  rc = mdm_key_from_pem(t.key_pem, &k);
  if(!rc)
    rc = mdm_key_to_pem(k, 0, &pub);
  if(rc) {
    EVP_PKEY_free(k);
    mdm_tenant_release(&t);
    return rc;
  }
  pthread_rwlock_wrlock(&kc->lock);
  e = keycache_find(kc, tenant_id);
  if(!e) {
    e = calloc(1, sizeof(*e));
    if(e) {
      mdm_strlcpy(e->tenant_id, t.id, sizeof(e->tenant_id));
      mdm_strlcpy(e->kid, t.kid, sizeof(e->kid));
      e->key = k;
      e->pub_pem = pub;
      k = NULL;
      pub = NULL;
      e->next = kc->head;
      kc->head = e;
    }
  }
  pthread_rwlock_unlock(&kc->lock);
  EVP_PKEY_free(k);
  free(pub);
  mdm_tenant_release(&t);
  if(!e)
    return MDM_ERR_NOMEM;
found:
  *key = e->key;
  if(kid)
    *kid = e->kid;
  if(pub_pem)
    *pub_pem = e->pub_pem;
  return MDM_OK;
}

mdm_rc mdm_keycache_get(struct mdm_server *srv, const char *tenant_id,
                        EVP_PKEY **key, const char **kid)
{
  return keycache_get(srv, tenant_id, key, kid, NULL);
}

mdm_rc mdm_keycache_public_pem(struct mdm_server *srv, const char *tenant_id,
                               const char **pem)
{
  EVP_PKEY *key;
  return keycache_get(srv, tenant_id, &key, NULL, pem);
}

/* ---- verified device tokens ------------------------------------------- */

#define TOK_BUCKETS 65536
#define TOK_MAX 262144
#define TOK_STRIPES 64

struct tokent {
  unsigned char hash[32];
  struct mdm_devtoken v;
  struct tokent *next;
};

struct mdm_tokcache {
  pthread_mutex_t locks[TOK_STRIPES];
  struct tokent *buckets[TOK_BUCKETS];
  int counts[TOK_STRIPES];
};

mdm_rc mdm_tokcache_new(struct mdm_tokcache **out)
{
  struct mdm_tokcache *tc = calloc(1, sizeof(*tc));
  int i;
  if(!tc)
    return MDM_ERR_NOMEM;
  for(i = 0; i < TOK_STRIPES; i++)
    pthread_mutex_init(&tc->locks[i], NULL);
  *out = tc;
  return MDM_OK;
}

static void tok_clear_stripe(struct mdm_tokcache *tc, int stripe)
{
  int b;
  for(b = stripe; b < TOK_BUCKETS; b += TOK_STRIPES) {
    struct tokent *e = tc->buckets[b], *n;
    for(; e; e = n) {
      n = e->next;
      free(e);
    }
    tc->buckets[b] = NULL;
  }
  tc->counts[stripe] = 0;
}

void mdm_tokcache_free(struct mdm_tokcache *tc)
{
  int i;
  if(!tc)
    return;
  for(i = 0; i < TOK_STRIPES; i++) {
    tok_clear_stripe(tc, i);
    pthread_mutex_destroy(&tc->locks[i]);
  }
  free(tc);
}

static unsigned tok_bucket(const unsigned char h[32])
{
  return ((unsigned)h[0] << 8 | h[1]) % TOK_BUCKETS;
}

int mdm_tokcache_get(struct mdm_tokcache *tc, const unsigned char hash[32],
                     struct mdm_devtoken *out)
{
  unsigned b = tok_bucket(hash);
  int stripe = (int)(b % TOK_STRIPES), found = 0;
  struct tokent *e;
  pthread_mutex_lock(&tc->locks[stripe]);
  for(e = tc->buckets[b]; e; e = e->next)
    if(!memcmp(e->hash, hash, 32)) {
      *out = e->v;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&tc->locks[stripe]);
  return found;
}

void mdm_tokcache_put(struct mdm_tokcache *tc, const unsigned char hash[32],
                      const struct mdm_devtoken *v)
{
  unsigned b = tok_bucket(hash);
  int stripe = (int)(b % TOK_STRIPES);
  struct tokent *e = malloc(sizeof(*e));
  if(!e)
    return;
  memcpy(e->hash, hash, 32);
  e->v = *v;
  pthread_mutex_lock(&tc->locks[stripe]);
  /* Bounded: a full stripe starts over (entries are cheap to remake). */
  if(tc->counts[stripe] >= TOK_MAX / TOK_STRIPES)
    tok_clear_stripe(tc, stripe);
  e->next = tc->buckets[b];
  tc->buckets[b] = e;
  tc->counts[stripe]++;
  pthread_mutex_unlock(&tc->locks[stripe]);
}
