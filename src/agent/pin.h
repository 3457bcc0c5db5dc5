/*
 * pin.h: the server CA an enrollment token pins (issue 5, zero-trust TLS).
 * An mdmd that serves https puts "server_ca": "sha256:<64 lowercase hex>"
 * into every enrollment token: the SHA-256 of the DER of the CA its devices
 * are to trust.  At enrollment the agent finds that certificate in the
 * chain the server presents (or in the --ca-file it was given) and from
 * then on trusts it alone; the system's CA store never is.
 *
 * The agent cannot check the token's signature (the tenant's key is what
 * enrollment gives it): the pin is as good as the channel the token came
 * over, like any invitation.  Pure functions, for the unit tests.
 */
#ifndef MDM_AGENT_PIN_H
#define MDM_AGENT_PIN_H

#include <stddef.h>
#include "core/rc.h"
#include "crypto/pki.h"

#define MDM_PIN_PREFIX "sha256:"
#define MDM_PIN_CLAIM "server_ca"
#define MDM_PIN_PEM_MAX (1024 * 1024)   /* a CA file read to find the pin */

/* Is s MDM_PIN_PREFIX followed by 64 lowercase hex digits?  MDM_OK with the
 * hex digits in hex[MDM_FINGERPRINT_LEN + 1], else MDM_ERR_INVAL. */
mdm_rc mdm_pin_parse(const char *s, char *hex /* OUT */);

/* The pin of an enrollment token (its claims are read, not verified):
 * MDM_OK with hex[MDM_FINGERPRINT_LEN + 1] filled; MDM_ERR_NOTFOUND when the
 * token carries no server_ca claim (or is no JWT at all); MDM_ERR_INVAL when
 * the claim is there but not a pin. */
mdm_rc mdm_pin_from_token(const char *token, char *hex /* OUT */);

/* Find, among the PEM certificates in pem (one after the other, text
 * between them ignored), the one whose SHA-256 DER fingerprint is hex.
 * MDM_OK with its PEM in *out (caller frees); MDM_ERR_NOTFOUND when none
 * is; MDM_ERR_INVAL when pem holds no certificate at all. */
mdm_rc mdm_pin_find(const char *pem, const char *hex, char **out /* OUT */);

#endif
