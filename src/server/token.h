/*
 * token.h: API token secrets.  A token is "mdm_at_" + 43 base64url chars
 * (256 random bits); the store keeps only its SHA-256.
 */
#ifndef MDM_TOKEN_H
#define MDM_TOKEN_H

#include "core/rc.h"

/* A new secret (caller frees) and its hash (hex, 65 bytes). */
mdm_rc mdm_api_token_new(char **secret /* OUT */, char *hash /* OUT */);

#endif
