/*
 * jwt.h: JSON Web Tokens (RFC 7519) in JWS compact form, signed with ES256
 * (ECDSA P-256 + SHA-256, RFC 7518 §3.4).  Enrollment and device tokens are
 * JWTs signed by the tenant's key (CONTRACT §3).  Verification accepts ES256
 * only: "none", HS* and every other alg are rejected.
 */
#ifndef MDM_JWT_H
#define MDM_JWT_H

#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "core/rc.h"

#define MDM_JWT_MAX_LEN 8192   /* longer tokens are rejected unparsed */

/* Sign claims (borrowed) with key into a compact JWS; header is
 * {"alg":"ES256","typ":"JWT","kid":kid} (kid omitted when NULL).
 * Caller owns *out; free() it. */
mdm_rc mdm_jwt_sign(EVP_PKEY *key, const char *kid, json_t *claims,
                    char **out /* OUT */);

/* Split and decode header and claims without checking the signature, to find
 * which key to verify with.  Never trust the result for anything else.
 * Caller owns both (json_decref); either OUT may be NULL.  MDM_ERR_AUTH
 * unless the token has three base64url parts and two JSON objects. */
mdm_rc mdm_jwt_peek(const char *token, json_t **header /* OUT */,
                    json_t **claims /* OUT */);

/* Verify token with key (public or private): alg must be ES256, signature
 * valid, "aud" equal to aud, "exp" present and > now (seconds), "nbf" (if
 * any) <= now.  Returns MDM_OK and the claims (caller owns; claims may be
 * NULL) or MDM_ERR_AUTH (malformed, bad alg, bad signature, wrong aud) or
 * MDM_ERR_EXPIRED (only for a correctly signed token); MDM_ERR_INVAL when
 * key is not a P-256 key or aud is NULL.  Thread-safe; key may be shared. */
mdm_rc mdm_jwt_verify(EVP_PKEY *key, const char *token, const char *aud,
                      int64_t now, json_t **claims /* OUT */);

#endif
