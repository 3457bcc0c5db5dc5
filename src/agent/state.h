/*
 * state.h: the agent's state directory (default /var/lib/mdm-agent, mode
 * 0700): the credentials an enrollment returned (credentials.json, 0600), the
 * facts last seen (last_facts.json, 0600, to tell what changed), the
 * telemetry queue (queue/, see queue.h) and the policy bundle applied and
 * its status (see policy.h).  Every file is replaced atomically.
 */
#ifndef MDM_AGENT_STATE_H
#define MDM_AGENT_STATE_H

#include <stddef.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_STATE_DEFAULT_DIR "/var/lib/mdm-agent"
#define MDM_INTERVAL_MIN 5
#define MDM_INTERVAL_MAX 86400
#define MDM_INTERVAL_DEFAULT 300

/* credentials.json: what enrollment gave this device. */
struct mdm_creds {
  char *server;             /* base URL, "https://mdm.example" */
  char *device_id;
  char *device_token;       /* secret: never log it; NULL when removed
                               (the device certificate is then the only
                               credential) */
  char *ca_file;            /* the one CA bundle https trusts (the pinned
                               server-ca.pem or --ca-file), or NULL */
  char *policy_key;         /* the tenant's public key (PEM) that signs policy
                               bundles; NULL when enrolled before the server
                               gave one (bundles are then refused) */
  long long checkin_interval_s;   /* in [MDM_INTERVAL_MIN, MDM_INTERVAL_MAX] */
  /* The broker that wakes this device up (the enroll answer's "mqtt"
   * object, kept as "mqtt" in credentials.json); all NULL when the server
   * has no broker or the device enrolled before it had one. */
  char *mqtt_url;           /* "mqtt://host:port" or "mqtts://host:port" */
  char *mqtt_topic;         /* "mdm/<tenant>/<device_id>/cmd" */
  char *mqtt_username;
  char *mqtt_password;      /* secret: never log it */
};

/* Free the strings of c (scrubbing the token and the broker password) and
 * zero it. */
void mdm_creds_release(struct mdm_creds *c);

/* Clamp a check-in interval the server gave to [MIN, MAX]. */
long long mdm_state_clamp_interval(long long s);

/* Create dir (and parents) with mode 0700 if needed; tighten dir to 0700 if
 * others can read it. */
mdm_rc mdm_state_prepare(const char *dir);

/* The path of name inside dir into out[n]. */
mdm_rc mdm_state_path(const char *dir, const char *name, char *out, size_t n);

/* Load credentials.json into *c (fields the caller must release with
 * mdm_creds_release()).  MDM_ERR_NOTFOUND when not enrolled; MDM_ERR_INVAL
 * with a reason in err[n] when the file is damaged. */
mdm_rc mdm_state_load_creds(const char *dir, struct mdm_creds *c /* OUT */,
                            char *err, size_t n);
/* Write credentials.json (mode 0600) atomically.  The mqtt object is
 * written only when mqtt_url is set. */
mdm_rc mdm_state_save_creds(const char *dir, const struct mdm_creds *c);

/* Is v (the enroll answer's or credentials.json's "mqtt" member) a usable
 * broker object for device_id?  url must be mqtt:// or mqtts://, topic exactly
 * "mdm/<tenant>/<device_id>/cmd" without wildcards, username and password
 * printable strings.  On success copies the four strings into c's mqtt_*
 * fields (freeing what was there) and returns 1; otherwise returns 0 and
 * leaves c alone. */
int mdm_state_take_mqtt(json_t *v, const char *device_id,
                        struct mdm_creds *c);

/* The facts last seen, from last_facts.json.  Caller owns *facts.
 * MDM_ERR_NOTFOUND when none were kept (or the file is unreadable). */
mdm_rc mdm_state_load_facts(const char *dir, json_t **facts /* OUT */);
/* Keep facts (borrowed) as last_facts.json. */
mdm_rc mdm_state_save_facts(const char *dir, json_t *facts);

#endif
