/*
 * server.h: mdmd's shared state and configuration.  The server keeps no
 * state of its own beyond caches of what the store holds (ARCHITECTURE
 * principle 3): tenant signing keys and verified device-token signatures.
 */
#ifndef MDM_SERVER_H
#define MDM_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "core/rc.h"
#include "server/events.h"
#include "store/store.h"

#define MDM_MAX_BODY (1024 * 1024)   /* request bodies, bytes */

struct mdm_config {
  char listen[256];        /* HOST:PORT */
  char data_dir[1024];
  char db[1200];           /* store URL */
  int log_json;
  int checkin_interval_s;  /* what agents are told */
  int64_t device_token_ttl_s;
  int max_connections;
  char mqtt[300];          /* broker URL, "" for none (devices poll) */
  char mqtt_admin_user[128];
  char mqtt_admin_password_file[1024];
  int mqtt_rate;           /* wake-ups per second */
  char region[64];         /* a tenant's region when it has none */
  int64_t device_cert_s;   /* lifetime of device certificates */
  char tls_cert[1024];     /* PEM chain: mdmd serves HTTPS when set */
  char tls_key[1024];      /* its key (mode 0600 or stricter) */
  char pin_ca[1024];       /* the CA devices pin ("": the chain's last) */
  char trusted_proxies[512];  /* addresses whose X-Client-Cert is believed */
  char metrics_token[256]; /* "" = /metrics is open (read from the file) */
  char metrics_token_file[1024];
  char metrics_label_keys[256];  /* comma-separated device label keys */
  struct mdm_events_config events;   /* the SIEM event stream's sinks */
};

struct mdm_keycache;
struct mdm_tokcache;
struct mdm_policycache;
struct mdm_push;
struct mdm_tls;

struct mdm_server {
  struct mdm_config cfg;
  struct mdm_store *store;
  struct mdm_keycache *keys;
  struct mdm_tokcache *devtokens;
  /* Verified enrollment tokens (tenant, jti in device_id, exp): a token for
   * many devices is checked once; its uses and revocation are the store's,
   * in the enrollment's transaction. */
  struct mdm_tokcache *etokens;
  struct mdm_policycache *policies;
  struct MHD_Daemon *httpd;
  struct mdm_push *push;      /* NULL without --mqtt */
  struct mdm_events *events;  /* NULL without an --events-* sink */
  struct mdm_tls *tls;        /* NULL without --tls-cert */
  /* "sha256:<hex>" of the CA that devices pin (enrollment tokens carry
   * it), "" when neither --tls-cert nor --pin-ca is set. */
  char server_ca_pin[8 + 64];
  char *server_ca_pem;        /* that CA (GET /v1/server-ca.pem), or NULL */
  atomic_int in_flight;       /* requests being handled */
  atomic_int is_draining;
  int port;                   /* the bound port */
};

/* Fill cfg with defaults, then MDM_<FLAG> environment variables. */
void mdm_config_defaults(struct mdm_config *cfg);

/* First start on an empty store: tenant "default", its key and an owner
 * token written to <data_dir>/admin.token (0600) and printed once.  Does
 * nothing when the tenant exists. */
mdm_rc mdm_bootstrap(struct mdm_server *srv);

/* Create tenant name (region may be NULL) with its key and an owner token;
 * the token secret is returned once in *token (caller frees). */
mdm_rc mdm_tenant_create(struct mdm_store *st, const char *name,
                         const char *region, const char *actor,
                         char **token /* OUT */,
                         struct mdm_tenant *out /* OUT, may be NULL */);

/* Start the HTTP server on cfg.listen; sets srv->port. */
mdm_rc mdm_http_start(struct mdm_server *srv);
/* Stop accepting, wait (up to timeout_ms) for requests in flight, stop. */
void mdm_http_stop(struct mdm_server *srv, int timeout_ms);

/* The tenant's signing key (borrowed, valid for the server's life) and its
 * key id.  Loads from the store on first use. */
mdm_rc mdm_keycache_get(struct mdm_server *srv, const char *tenant_id,
                        EVP_PKEY **key, const char **kid);
/* Its public half as PEM (borrowed, valid for the server's life). */
mdm_rc mdm_keycache_public_pem(struct mdm_server *srv, const char *tenant_id,
                               const char **pem);
mdm_rc mdm_keycache_new(struct mdm_keycache **out);
void mdm_keycache_free(struct mdm_keycache *kc);

/* Verified device tokens: the SHA-256 of the token → its tenant, device
 * and expiry, so that a check-in does not pay an ECDSA verify each time.
 * Only signatures are cached: whether the device is still active is asked
 * of the store on every request. */
struct mdm_devtoken {
  char tenant_id[MDM_UUID_LEN + 1];
  char device_id[MDM_UUID_LEN + 1];
  int64_t exp;
};
mdm_rc mdm_tokcache_new(struct mdm_tokcache **out);
void mdm_tokcache_free(struct mdm_tokcache *tc);
int mdm_tokcache_get(struct mdm_tokcache *tc, const unsigned char hash[32],
                     struct mdm_devtoken *out);
void mdm_tokcache_put(struct mdm_tokcache *tc, const unsigned char hash[32],
                      const struct mdm_devtoken *v);

#endif
