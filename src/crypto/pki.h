/*
 * pki.h: a tenant's certificate authority and its device certificates
 * (issue 5, device identity).  ECDSA P-256 throughout, on OpenSSL 3.
 *
 * - The CA is self-signed (basicConstraints CA:TRUE, pathlen 0; keyUsage
 *   keyCertSign, cRLSign), valid for MDM_CA_DAYS.
 * - A device certificate is issued from the device's CSR only after the
 *   CSR's own signature verifies (proof of possession) and its key is
 *   P-256.  Everything in it is set by the server, nothing is copied from
 *   the CSR but the public key: subject CN=<device id>, O=<tenant id>,
 *   SAN URI urn:mdm:device:<device id>, a random 128-bit serial,
 *   keyUsage digitalSignature, extendedKeyUsage clientAuth, CA:FALSE,
 *   subject and authority key identifiers, notBefore 5 minutes back (clock
 *   skew), notAfter as asked.
 * - The CRL lists revoked serials with their revocation time and a CRL
 *   number; it is signed by the CA.
 * PEM text in and out; bounded inputs; every failure is a clear message.
 */
#ifndef MDM_CRYPTO_PKI_H
#define MDM_CRYPTO_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "core/rc.h"

#define MDM_CA_DAYS 3650
#define MDM_CSR_MAX 8192          /* bytes of a CSR's PEM */
#define MDM_CERT_MAX 16384        /* bytes of a certificate's PEM */
#define MDM_SERIAL_HEX_MAX 40     /* a serial as hex, without leading zeros */
#define MDM_FINGERPRINT_LEN 64    /* SHA-256 of the DER, lowercase hex */
/* A device certificate's lifetime: ten seconds (tests, very short-lived
 * fleets) to ten years. */
#define MDM_CERT_LIFETIME_MIN 10
#define MDM_CERT_LIFETIME_MAX (3650LL * 86400)

/* A new CA for tenant_id: a P-256 key and its self-signed certificate
 * (subject CN="mdm tenant CA <name>", O=<tenant_id>).  Caller owns both. */
mdm_rc mdm_ca_create(const char *tenant_id, const char *name,
                     EVP_PKEY **key /* OUT */, X509 **cert /* OUT */);

/* What a CSR check found wrong goes into why[n]. */
struct mdm_issued {
  char serial[MDM_SERIAL_HEX_MAX + 1];           /* lowercase hex */
  char fingerprint[MDM_FINGERPRINT_LEN + 1];     /* sha256 of the DER */
  int64_t not_before, not_after;                 /* epoch seconds */
  char *pem;                                     /* caller frees */
};

/* Check csr_pem (at most MDM_CSR_MAX bytes) and issue the device's
 * certificate, valid from now for lifetime_s seconds.  MDM_ERR_INVAL
 * with why when the CSR is malformed, its signature does not verify, or
 * its key is not P-256. */
mdm_rc mdm_cert_issue(EVP_PKEY *ca_key, X509 *ca_cert, const char *csr_pem,
                      const char *tenant_id, const char *device_id,
                      int64_t lifetime_s, int64_t now,
                      struct mdm_issued *out,
                      char *why, size_t n);

/* One revoked certificate. */
struct mdm_revoked {
  const char *serial;             /* lowercase hex */
  int64_t revoked_at;             /* epoch seconds */
};

/* The CA's CRL (PEM, caller frees) listing revoked[n], issued now and
 * valid until next_update, with CRL number crl_number. */
mdm_rc mdm_crl_build(EVP_PKEY *ca_key, X509 *ca_cert,
                     const struct mdm_revoked *revoked, size_t n,
                     int64_t now, int64_t next_update, int64_t crl_number,
                     char **pem /* OUT */);

/* PEM of cert (caller frees) / a certificate from PEM (caller frees with
 * X509_free).  MDM_ERR_INVAL for anything but one certificate. */
mdm_rc mdm_cert_to_pem(X509 *cert, char **pem /* OUT */);
mdm_rc mdm_cert_from_pem(const char *pem, X509 **cert /* OUT */);

/* SHA-256 of cert's DER as lowercase hex into out[MDM_FINGERPRINT_LEN+1]. */
mdm_rc mdm_cert_fingerprint(X509 *cert, char *out);
/* The same from the DER bytes themselves (no parsing). */
mdm_rc mdm_der_fingerprint(const unsigned char *der, size_t len, char *out);

/* A new P-256 key (kept by the device, never sent) and a CSR for it
 * (PEM, caller frees); the subject is a hint only, the server sets its
 * own.  For the agent and the tests. */
mdm_rc mdm_csr_create(EVP_PKEY *key, const char *cn, char **pem /* OUT */);

#endif
