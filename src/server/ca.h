/*
 * ca.h: each tenant's certificate authority in mdmd (issue 5).  Loaded
 * from the store, or created (ECDSA P-256, src/crypto/pki.h) and stored on
 * first use, then kept for the process's life.  Thread-safe.
 */
#ifndef MDM_SERVER_CA_H
#define MDM_SERVER_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include "core/rc.h"
#include "server/server.h"

struct mdm_ca {
  EVP_PKEY *key;
  X509 *cert;
  char *cert_pem;
};

/* tenant's CA (borrowed; valid until mdm_ca_cache_free()). */
mdm_rc mdm_ca_get(struct mdm_server *srv, const char *tenant,
                  const struct mdm_ca **out /* OUT */);
void mdm_ca_cache_free(void);

#endif
