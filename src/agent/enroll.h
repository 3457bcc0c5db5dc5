/*
 * enroll.h: `mdm-agent enroll`: present an enrollment token and the device's
 * facts to the server, and keep the device credentials it answers with in
 * the state directory (see state.h).  Over https only the CA the token pins
 * (or --ca-file) is trusted, and it is remembered for every later run.
 */
#ifndef MDM_AGENT_ENROLL_H
#define MDM_AGENT_ENROLL_H

#include <stddef.h>
#include "core/rc.h"

#define MDM_DEVICE_ID_MAX 128
#define MDM_ENROLL_SERVER_CA_FILE "server-ca.pem"   /* the pinned CA */

struct mdm_enroll_opts {
  const char *server;      /* base URL, http:// or https:// */
  const char *token;       /* the enrollment token (secret) */
  const char *state_dir;
  const char *root;        /* the device's "/" (NULL: the real one) */
  const char *ca_file;     /* CA bundle to trust and remember, or NULL;
                              must hold the token's pinned CA if any */
  int is_force;            /* enroll again over existing credentials */
};

/* Enroll.  On success device_id[MDM_DEVICE_ID_MAX] holds the new id.
 * On failure err[n] holds one line for the user, such as
 * "enroll failed: 409 conflict: enrollment token used up";
 * MDM_ERR_CONFLICT when already enrolled without is_force. */
mdm_rc mdm_enroll_run(const struct mdm_enroll_opts *o, char *device_id,
                      char *err, size_t n);

#endif
