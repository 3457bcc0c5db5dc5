/*
 * access.h: the conditional-access evaluator (issue 5; docs/access.md).
 * Pure: it looks only at its arguments (the tenant's
 * ConditionalAccessPolicy documents, a sign-in context, what the store
 * knows of the device, and the time), so the server's /v1/access/evaluate
 * and /v1/access/check and `mdmctl access evaluate` give the same answer
 * for the same input.
 *
 * A sign-in context (CONTRACT §2; any field may be absent, absent means
 * unknown):
 *   {"user": {"upn", "mfa_completed", "password_age_days"},
 *    "device_id", "application", "client_app_type",
 *    "network": {"ssid", "vpn_connected"}}
 *
 * How a policy decides (validated by kind_access.c):
 * - It applies when every condition that selects (applications, users,
 *   clientAppTypes, platforms) matches.  A selector whose input is unknown
 *   matches (zero trust: an unknown cannot be shown to be outside it, so
 *   leaving a field out of the context never escapes a policy).
 * - When it applies, each requirement that fails blocks: the device states
 *   (compliant, domain-joined, checked in within maxCheckinAgeHours,
 *   default 24), the user's password age, the network (SSID, VPN).  An
 *   unknown device, or an unknown value a requirement needs, fails it.
 * - Then the grant controls: "block" blocks; otherwise with operator OR one
 *   satisfied control passes, with AND all must be.  When they fail but
 *   would pass once MFA is done, the decision is require_mfa; else block.
 * - Over all policies: block if any enforced policy blocks, else
 *   require_mfa if any requires it, else allow (also when none applies).
 *   Report-only policies are evaluated and reported, never enforced;
 *   disabled ones are skipped.
 */
#ifndef MDM_POLICY_ACCESS_H
#define MDM_POLICY_ACCESS_H

#include <stdint.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_ACCESS_DEFAULT_MAX_AGE_H 24

/* What the store knows of the sign-in's device.  Borrowed. */
struct mdm_access_device {
  int is_known;             /* 0: no such device (or none named) */
  const char *compliance;   /* compliant | noncompliant | unknown */
  const char *platform;     /* may be NULL */
  int64_t last_seen;        /* epoch seconds, 0 never */
  json_t *labels;           /* object or NULL */
};

/* Evaluate. policies: an array of ConditionalAccessPolicy documents
 * ({metadata: {name}, spec}); ctx: the sign-in context (NULL: all
 * unknown).  *out (caller owns):
 *   {"decision": "allow"|"block"|"require_mfa",
 *    "reasons": ["policy NAME: why", ...],
 *    "policies": [{"name", "mode": "enabled"|"reportOnly"|"disabled",
 *                  "applies": bool, "decision": ...|null,
 *                  "reasons": [...]}]}
 * MDM_ERR_INVAL when ctx is not an object (or null); MDM_ERR_NOMEM. */
mdm_rc mdm_access_evaluate(json_t *policies, json_t *ctx,
                           const struct mdm_access_device *dev, int64_t now,
                           json_t **out /* OUT */);

#endif
