/*
 * identity.h: the device's TLS identity (issue 5): its EC P-256 key
 * (device.key), the certificate the tenant's CA issued for that key
 * (device.crt) and the CA (ca.pem), all mode 0600 in the state directory,
 * and their renewal.  Over https the agent presents the pair as a client
 * certificate with every request (client.h).
 *
 * A renewal (at two thirds of the certificate's lifetime, for a
 * rotate_certificate command, or when the server refused the certificate
 * but took the token) goes:
 *   1. a new key, kept as device.key.next (0600, fsync'd) before anything
 *      is asked of the server;
 *   2. POST /v1/agent/certificate {"csr"}: the server issues a certificate
 *      and revokes the device's previous ones in the same transaction;
 *   3. the answer is checked (for the new key and this device id, signed
 *      by the CA it names) and kept as device.crt.next;
 *   4. device.key.next is renamed over device.key, then device.crt.next
 *      over device.crt, and the directory is fsync'd.
 * A crash at any point leaves files mdm_identity_load() sorts out without
 * ever giving up the working pair: a complete .next pair is put in place
 * (the server already revoked the old one), a key moved without its
 * certificate gets it, and a lone device.key.next (no certificate came) is
 * dropped.
 */
#ifndef MDM_AGENT_IDENTITY_H
#define MDM_AGENT_IDENTITY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "agent/client.h"
#include "core/rc.h"
#include "crypto/pki.h"

#define MDM_IDENTITY_KEY_FILE "device.key"
#define MDM_IDENTITY_CERT_FILE "device.crt"
#define MDM_IDENTITY_CA_FILE "ca.pem"
#define MDM_IDENTITY_NEXT ".next"     /* suffix of a renewal's new files */

/* A usable pair, as found by mdm_identity_load() or made by a renewal. */
struct mdm_identity {
  char cert_file[PATH_MAX];
  char key_file[PATH_MAX];
  char fingerprint[MDM_FINGERPRINT_LEN + 1];   /* SHA-256 of the DER */
  int64_t not_before, not_after;               /* epoch seconds */
};

/* Is a certificate valid from not_before to not_after due for renewal at
 * now (all epoch seconds)?  1 once two thirds of its lifetime have passed
 * (now >= not_before + 2/3 (not_after - not_before)), and for a lifetime
 * that is empty or negative; else 0. */
int mdm_identity_renew_due(int64_t not_before, int64_t not_after,
                           int64_t now);

/* Is cert_pem a certificate for key (its public key) and device_id (CN,
 * and the SAN URI urn:mdm:device:<id> when it has one), signed by the key
 * of ca_pem (not checked when ca_pem is NULL)?  MDM_OK, or MDM_ERR_INVAL
 * with why[n] saying what is wrong. */
mdm_rc mdm_identity_check(const char *cert_pem, const char *ca_pem,
                          EVP_PKEY *key, const char *device_id, char *why,
                          size_t n);

/* Find the device's pair in state_dir, finishing an interrupted renewal
 * first (see above).  MDM_OK with *id filled; MDM_ERR_NOTFOUND when the
 * device has no certificate; MDM_ERR_INVAL (why[n]) when the files do not
 * make a pair for device_id; MDM_ERR_IO (why[n]) when a rename failed. */
mdm_rc mdm_identity_load(const char *state_dir, const char *device_id,
                         struct mdm_identity *id /* OUT */, char *why,
                         size_t n);

/* Keep key (its private PEM), cert_pem and ca_pem as the device's pair and
 * CA, replacing what was there (enrollment), and drop renewal leftovers. */
mdm_rc mdm_identity_keep(const char *state_dir, EVP_PKEY *key,
                         const char *cert_pem, const char *ca_pem);

/* Remove the pair, the CA and renewal leftovers (a new enrollment that got
 * no certificate: the old ones name another device). */
void mdm_identity_remove(const char *state_dir);

/* Renew now through c (with bearer, the device token, unless NULL): see
 * above.  MDM_OK with *id the new pair; otherwise why[n] is one line and
 * the files are as they were (MDM_ERR_AUTH when the server refused the
 * device's credentials, MDM_ERR_IO when it could not be reached or
 * answered an error, MDM_ERR_INVAL for an answer that is not a certificate
 * for the new key and this device). */
mdm_rc mdm_identity_renew(const char *state_dir, const char *device_id,
                          struct mdm_client *c, const char *bearer,
                          struct mdm_identity *id /* OUT */, char *why,
                          size_t n);

#endif
