/*
 * commands.h: the agent's command step (CONTRACT §5, docs/api.md "Commands",
 * "Agent side").  After a check-in that answered pending_commands > 0 the
 * agent fetches GET /v1/agent/commands and, oldest first, for each command:
 *
 *   1. if its id is in the journal, it is never run again (its recorded
 *      result is sent again if the server still lists it);
 *   2. if its action is not ready (os_update outside its window) it is left
 *      pending for a later fetch;
 *   3. POST …/result {"status": "acknowledged"}; a 404 or 409 (canceled,
 *      expired, not ours) means it is not run and is journaled as such;
 *   4. the id is added to the journal as "started" and the journal is
 *      written and fsync'd; only then
 *   5. the action runs (actions.h), and its outcome is journaled;
 *   6. POST …/result {"status": "completed"|"failed", "detail"}.
 *
 * The journal, <state-dir>/commands.json (mode 0600, replaced atomically),
 * is what makes execution at-most-once across crashes and restarts.  An
 * entry still "started" when the agent starts again (it stopped while the
 * action ran) is reported failed "interrupted: the agent stopped while the
 * command ran" and never run again; a reboot is the exception: it is
 * reported completed "the device restarted", since that is what a
 * successful reboot hook does to us.  Results not yet delivered stay in the
 * journal and are sent again at every step (every round) until the server
 * answers 2xx; a 400, 404 or 409 answer to a result is final too (the
 * server will never take it) and is logged.  A damaged journal stops the
 * step: nothing runs until it is repaired or removed by hand (safety first).
 * The journal keeps at most MDM_CMD_JOURNAL_MAX ids; beyond that the oldest
 * delivered ones are forgotten (the server no longer lists them).
 *
 * After a wipe whose hook succeeded and whose result is delivered, the
 * agent stops managing the device: credentials.json is removed and the step
 * says so (is_unmanaged); the run loop then exits.
 */
#ifndef MDM_AGENT_COMMANDS_H
#define MDM_AGENT_COMMANDS_H

#include <signal.h>
#include <stddef.h>
#include <jansson.h>
#include "agent/actions.h"
#include "agent/client.h"
#include "agent/config.h"
#include "core/rc.h"

#define MDM_CMD_JOURNAL_FILE "commands.json"
#define MDM_CMD_JOURNAL_MAX 1000
#define MDM_CMD_JOURNAL_BYTES (8 * 1024 * 1024)
#define MDM_CMD_INTERRUPTED "interrupted: the agent stopped while the " \
  "command ran"
#define MDM_CMD_REBOOTED "the device restarted"

/* How the step talks to the server.  Both return like mdm_client_post():
 * MDM_OK when an answer came (look at resp->status), and release nothing:
 * the step calls mdm_response_release() on resp. */
struct mdm_cmd_io {
  mdm_rc (*get)(void *ud, const char *path, struct mdm_response *resp);
  mdm_rc (*post)(void *ud, const char *path, json_t *body,
                 struct mdm_response *resp);
  void *ud;
};

struct mdm_cmd_step_in {
  const char *state_dir;
  const char *root;                       /* NULL: the real "/" */
  const struct mdm_agent_config *cfg;
  const struct mdm_action *table;         /* e.g. mdm_actions_linux */
  struct mdm_cmd_io io;
  int is_fetch;                           /* pending_commands > 0 */
  mdm_rc (*refresh)(void *ud);            /* refresh_inventory; may be NULL */
  void *refresh_ud;
  /* install_profile/remove_profile (actions.h); may be NULL */
  mdm_rc (*policy_sync)(void *ud, json_t **profiles, char *msg, size_t n);
  void *policy_sync_ud;
  /* rotate_certificate (actions.h); may be NULL */
  mdm_rc (*rotate_cert)(void *ud, char *detail, size_t n);
  void *rotate_cert_ud;
  const volatile sig_atomic_t *stop;      /* stop between commands; NULL */
};

struct mdm_cmd_step_out {
  unsigned n_run;          /* actions run in this step */
  unsigned n_reported;     /* results the server took in this step */
  int is_auth;             /* the server refused the device's token */
  int is_unmanaged;        /* wiped: credentials removed, stop the agent */
  char errmsg[512];        /* why the step failed (rc != MDM_OK) */
};

/* One command step (see above).  MDM_OK when everything due was done;
 * MDM_ERR_IO when the server could not be reached or answered an error
 * (results stay for the next step), MDM_ERR_AUTH on 401/403, MDM_ERR_INVAL
 * for a damaged journal; out->errmsg says why. */
mdm_rc mdm_commands_step(const struct mdm_cmd_step_in *in,
                         struct mdm_cmd_step_out *out /* OUT */);

#endif
