/*
 * key.h: signing keys (EC P-256) and raw ES256 signatures over byte strings.
 * Keys are kept as PEM (PKCS#8 for private keys); the key id is the
 * base64url SHA-256 of the DER public key (an RFC 7638-like thumbprint).
 */
#ifndef MDM_KEY_H
#define MDM_KEY_H

#include <stddef.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include "core/rc.h"

#define MDM_KID_LEN 43  /* base64url of 32 bytes, no padding */
#define MDM_SIG_LEN 64  /* an ES256 signature: R||S, 32 bytes each */

/* Every function here is thread-safe; an EVP_PKEY may be shared by threads
 * that only sign or verify with it.  A key that is not EC P-256 is refused
 * with MDM_ERR_INVAL. */

/* What was written to the memory BIO b, as a string in *out (caller
 * frees): how PEM text leaves OpenSSL here.  MDM_ERR_CRYPTO when b holds
 * nothing. */
mdm_rc mdm_bio_string(BIO *b, char **out /* OUT */);

/* A new P-256 key pair.  Caller owns *out; EVP_PKEY_free() it. */
mdm_rc mdm_key_generate(EVP_PKEY **out /* OUT */);
/* PEM of the private (is_private=1, PKCS#8) or public (SPKI) key.
 * Caller owns *out; free() it. */
mdm_rc mdm_key_to_pem(EVP_PKEY *key, int is_private, char **out /* OUT */);
/* Load a private (PKCS#8 or traditional) or public (SPKI) key from PEM.
 * Encrypted keys are refused, never prompted for.  MDM_ERR_INVAL if pem
 * holds no P-256 key.  Caller owns *out; EVP_PKEY_free() it. */
mdm_rc mdm_key_from_pem(const char *pem, EVP_PKEY **out /* OUT */);
/* Key id into out[MDM_KID_LEN + 1]. */
mdm_rc mdm_key_id(EVP_PKEY *key, char *out);

/* ES256 signature of data as 64 raw bytes R||S, base64url (86 characters).
 * Caller owns *sig_b64; free() it. */
mdm_rc mdm_sig_sign(EVP_PKEY *key, const void *data, size_t n,
                    char **sig_b64 /* OUT */);
/* MDM_OK if sig_b64 (raw R||S, base64url) is key's ES256 signature of data,
 * MDM_ERR_AUTH if not (including a signature that is not 64 bytes). */
mdm_rc mdm_sig_verify(EVP_PKEY *key, const void *data, size_t n,
                      const char *sig_b64);

/* Is key an EC key on P-256?  NULL is not. */
int mdm_key_is_p256(EVP_PKEY *key);
/* ES256 signature of data as raw R||S into sig (OUT, MDM_SIG_LEN bytes).
 * MDM_ERR_CRYPTO for a public-only key. */
mdm_rc mdm_sig_sign_raw(EVP_PKEY *key, const void *data, size_t n,
                        unsigned char sig[MDM_SIG_LEN] /* OUT */);
/* MDM_OK if sig (raw R||S, sig_len bytes) is key's ES256 signature of data;
 * MDM_ERR_AUTH if not, and whenever sig_len != MDM_SIG_LEN. */
mdm_rc mdm_sig_verify_raw(EVP_PKEY *key, const void *data, size_t n,
                          const unsigned char *sig, size_t sig_len);

#endif
