/*
 * key.h: signing keys (EC P-256) and raw ES256 signatures over byte strings.
 * Keys are kept as PEM (PKCS#8 for private keys); the key id is the
 * base64url SHA-256 of the DER public key (an RFC 7638-like thumbprint).
 */
#ifndef MDM_KEY_H
#define MDM_KEY_H

#include <stddef.h>
#include <openssl/evp.h>
#include "core/rc.h"

#define MDM_KID_LEN 43  /* base64url of 32 bytes, no padding */

/* A new P-256 key pair.  Caller owns *out; EVP_PKEY_free() it. */
mdm_rc mdm_key_generate(EVP_PKEY **out /* OUT */);
/* PEM of the private (is_private=1, PKCS#8) or public (SPKI) key.
 * Caller owns *out; free() it. */
mdm_rc mdm_key_to_pem(EVP_PKEY *key, int is_private, char **out /* OUT */);
/* Load a private or public key from PEM.  Caller owns *out. */
mdm_rc mdm_key_from_pem(const char *pem, EVP_PKEY **out /* OUT */);
/* Key id into out[MDM_KID_LEN + 1]. */
mdm_rc mdm_key_id(EVP_PKEY *key, char *out);

/* ES256 signature of data as 64 raw bytes R||S, base64url.  Caller owns. */
mdm_rc mdm_sig_sign(EVP_PKEY *key, const void *data, size_t n,
                    char **sig_b64 /* OUT */);
/* MDM_OK if sig_b64 (raw R||S, base64url) is key's ES256 signature of data,
 * MDM_ERR_AUTH if not. */
mdm_rc mdm_sig_verify(EVP_PKEY *key, const void *data, size_t n,
                      const char *sig_b64);

#endif
