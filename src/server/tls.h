/*
 * tls.h: mdmd serving HTTPS (issue 5).  libmicrohttpd speaks TLS through
 * GnuTLS; this file loads the certificate chain and key it is given, works
 * out the CA that devices pin, and reads a connection's client
 * certificate so that device endpoints can take it as the credential.
 *
 * The client certificate is asked for, never required, at the TLS layer:
 * an admin with an API token has none, and which CA a device certificate
 * must come from depends on the tenant, known only once the certificate is
 * looked up (router.c).  GnuTLS still checks that the client holds the
 * certificate's key (the handshake's CertificateVerify).
 */
#ifndef MDM_SERVER_TLS_H
#define MDM_SERVER_TLS_H

#include <stddef.h>
#include <openssl/x509.h>
#include <microhttpd.h>
#include "core/rc.h"

struct mdm_config;

struct mdm_tls {
  char *cert_pem;     /* the chain, as served (without a self-signed root) */
  char *key_pem;      /* secret: cleansed when freed */
  char *trust_pem;    /* the CA names offered in the certificate request */
};

/* The pin of the PEM certificate cert_pem: "sha256:<64 hex>" over its DER
 * into out[72]. */
mdm_rc mdm_tls_pin_of(X509 *cert, char out[72]);

/* Read cfg's --tls-cert/--tls-key (when set) into *out (NULL when mdmd
 * serves plain HTTP), and the CA devices pin (--pin-ca, else the chain's
 * last certificate) as PEM into *pin_pem (caller frees; NULL when neither
 * is set) with its pin into pin[72] ("" then).  A self-signed root at the
 * end of a longer chain is not served (RFC 8446 4.4.2: clients have it;
 * each would decode it at every handshake); agents fetch the pinned CA
 * from GET /v1/server-ca.pem instead.  Refuses a key that group or others
 * may read, a key that does not match the chain's first certificate, and
 * anything but PEM certificates in the chain; the reason goes into
 * err[n]. */
mdm_rc mdm_tls_load(const struct mdm_config *cfg, struct mdm_tls **out,
                    char **pin_pem, char pin[72], char *err, size_t n);
void mdm_tls_free(struct mdm_tls *t);

/* The DER of the certificate the client of conn presented in its TLS
 * handshake (borrowed, valid while the connection is), or 0 when there is
 * none (plain HTTP, or none presented). */
int mdm_tls_peer_der(struct MHD_Connection *conn,
                     const unsigned char **der /* OUT */,
                     size_t *len /* OUT */);

#endif
