/*
 * policy.h: the device's configuration bundle on the agent side (docs/api.md,
 * "Agent policy bundle").  Each round, after the check-in, the agent compares
 * the answer's policy_etag with the ETag of the bundle it applied; when they
 * differ it fetches GET /v1/agent/policy (If-None-Match: the applied ETag),
 * verifies the tenant's ES256 signature with the policy_key it got at
 * enrollment before it parses anything, checks the bundle is for this device
 * and carries the ETag it was served with, and then hands each setting to
 * the platform's enforcers (enforce.h).  What happened is kept as
 * policy_status and sent with every later check-in:
 *   {"etag": ETAG|null, "applied_at": RFC 3339|null, "error": TEXT|null,
 *    "settings": {"vpn": {"state": "applied|failed|not_supported",
 *                         "detail": TEXT|null}, ...}}
 * A bundle that fails any check changes nothing on the device: the status
 * keeps the previous ETag and settings and says why in "error".
 *
 * In the state directory (files 0600, replaced atomically):
 *   policy.json         the server's signed answer last applied, verbatim;
 *   policy_status.json  the status above.
 */
#ifndef MDM_AGENT_POLICY_H
#define MDM_AGENT_POLICY_H

#include <signal.h>
#include <stddef.h>
#include <jansson.h>
#include "agent/enforce.h"
#include "core/buf.h"
#include "core/rc.h"

#define MDM_POLICY_MAX_BODY (1024 * 1024)   /* a signed answer, at most */
#define MDM_POLICY_ETAG_MAX 128
#define MDM_POLICY_SETTINGS_MAX 64          /* reported per check-in */
#define MDM_POLICY_NAME_MAX 128             /* a reported setting's name */
#define MDM_POLICY_STATUS_FILE "policy_status.json"
#define MDM_POLICY_BUNDLE_FILE "policy.json"
#define MDM_POLICY_NO_KEY "no policy key; re-enroll"

/* ---- verifying ----------------------------------------------------------- */

/* Check a GET /v1/agent/policy answer body[len] served with ETag etag:
 * {"bundle": base64url(JSON), "signature": base64url(R||S), "kid", "alg":
 * "ES256"}.  The signature is checked with key_pem (the tenant's public key,
 * PEM) over the decoded bundle bytes before they are parsed; then the
 * bundle must be a JSON object whose device_id is device_id, whose etag is
 * etag and whose settings is an object.  On success *bundle (caller owns)
 * is the parsed bundle.  Otherwise MDM_ERR_AUTH (no key, signature invalid,
 * another device), MDM_ERR_TOOBIG or MDM_ERR_INVAL, and why[n] holds the
 * reason without a prefix, e.g. "signature invalid". */
mdm_rc mdm_policy_verify(const char *key_pem, const char *device_id,
                         const char *etag, const char *body, size_t len,
                         json_t **bundle /* OUT */, char *why, size_t n);

/* ---- enforcing ----------------------------------------------------------- */

/* Enforce every member of settings (borrowed) with table, in name order:
 * a name the table lacks is not_supported ("not supported by mdm-agent on
 * linux").  Then, for each table entry with a remove function whose setting
 * prev_settings (borrowed, may be NULL) had applied and settings no longer
 * has, undo it.  *out (caller owns) is the status's "settings" object, at
 * most MDM_POLICY_SETTINGS_MAX names of at most MDM_POLICY_NAME_MAX bytes;
 * *n_unreported counts the settings left out of it. */
mdm_rc mdm_policy_enforce(const struct mdm_enforcer *table,
                          const struct mdm_enforce_ctx *ctx, json_t *settings,
                          json_t *prev_settings, json_t **out /* OUT */,
                          size_t *n_unreported /* OUT */);

/* ---- the state directory ------------------------------------------------- */

/* The kept policy_status, checked for shape.  Caller owns *status.
 * MDM_ERR_NOTFOUND when there is none (or it was damaged: a warning says
 * so, and the bundle is fetched again). */
mdm_rc mdm_policy_load_status(const char *state_dir,
                              json_t **status /* OUT */);
mdm_rc mdm_policy_save_status(const char *state_dir, json_t *status);

/* ---- fetching ------------------------------------------------------------ */

/* One answer of GET /v1/agent/policy. */
struct mdm_policy_answer {
  long status;                          /* HTTP status, 0 if none came */
  char etag[MDM_POLICY_ETAG_MAX + 1];   /* the ETag header, "" if none */
  struct mdm_buf body;                  /* bounded by MDM_POLICY_MAX_BODY */
  char errmsg[256];                     /* why the request failed */
};

/* Fetch the bundle, sending If-None-Match: if_none_match unless NULL.
 * ans->body is initialized (empty) by the caller.  MDM_OK when an answer
 * came, whatever its status; MDM_ERR_IO or MDM_ERR_TOOBIG with errmsg
 * otherwise.  Tests plug in their own. */
typedef mdm_rc (*mdm_policy_fetch_fn)(void *ud, const char *if_none_match,
                                      struct mdm_policy_answer *ans);

/* The real fetcher, on libcurl: ud is a struct mdm_policy_http. */
struct mdm_policy_http {
  const char *server;        /* base URL without trailing '/' */
  const char *ca_file;       /* the one CA https trusts (NULL: none) */
  const char *device_token;  /* secret; NULL: none sent */
  const char *cert_file;     /* the device certificate to present over */
  const char *key_file;      /* https and its key; NULL: none */
  const volatile sig_atomic_t *abort_flag;   /* may be NULL */
};
mdm_rc mdm_policy_http_fetch(void *ud, const char *if_none_match,
                             struct mdm_policy_answer *ans);

/* ---- one step of a round ------------------------------------------------- */

struct mdm_policy_step_in {
  const char *state_dir;
  const char *device_id;
  const char *policy_key;     /* PEM; NULL when enrolled before bundles */
  const char *server_etag;    /* the check-in's policy_etag; NULL: none */
  const struct mdm_enforcer *table;
  struct mdm_enforce_ctx ctx;  /* root, state dir, this round's facts */
  mdm_policy_fetch_fn fetch;
  void *fetch_ud;
  /* install_profile/remove_profile: fetch without If-None-Match whatever
   * the ETags say and enforce the bundle again (server_etag is ignored). */
  int is_forced;
  /* If not NULL and a bundle was verified: its "profiles" array
   * ([{name, version}], caller owns). */
  json_t **profiles;
};

enum mdm_policy_outcome {
  MDM_POLICY_CURRENT,    /* nothing to do: the applied bundle is current */
  MDM_POLICY_APPLIED,    /* a new bundle was verified and enforced */
  MDM_POLICY_REJECTED    /* a bundle was refused; msg says why */
};

/* The policy step of a round (see the file comment).  *outcome says what
 * happened and msg[n] describes it ("bundle rejected: signature invalid";
 * a summary when applied).  Returns MDM_OK unless the bundle could not be
 * fetched (msg says why; MDM_ERR_AUTH when the server refused the device's
 * token) or the state could not be kept. */
mdm_rc mdm_policy_step(const struct mdm_policy_step_in *in,
                       enum mdm_policy_outcome *outcome /* OUT */, char *msg,
                       size_t n);

#endif
