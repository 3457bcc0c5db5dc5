/*
 * actions.h: what a command does on the device.  Each command type (CONTRACT
 * §5) has one action; a platform's actions are gathered in one table
 * ({type, run}, NULL-terminated) that commands.c looks up, so another
 * platform supplies its own table and file (the Linux one is
 * actions_linux.c) and no logic tests for a platform.  A type absent from
 * the table is answered failed "unknown command type".
 *
 * Actions that act on the machine (lock, wipe, reboot, os_update) run a
 * program from the agent's configuration (config.h) with
 * mdm_action_run_hook(): fork/execv, no shell, stdin from /dev/null,
 * stdout and stderr captured (the first MDM_ACTION_OUTPUT_MAX bytes go into
 * the result's detail), killed with its process group after the configured
 * timeout; exit status 0 is completed, anything else failed.
 */
#ifndef MDM_AGENT_ACTIONS_H
#define MDM_AGENT_ACTIONS_H

#include <stddef.h>
#include <jansson.h>
#include "agent/config.h"
#include "core/rc.h"

#define MDM_ACTION_DETAIL_MAX 1280
#define MDM_ACTION_OUTPUT_MAX 1024

/* What an action may look at.  All borrowed. */
struct mdm_action_ctx {
  const char *root;          /* the device's "/" (NULL or "": the real one) */
  const char *state_dir;     /* the agent's state directory */
  const struct mdm_agent_config *cfg;
  json_t *params;            /* the command's params (an object), or NULL */
  /* refresh_inventory: an immediate extra check-in; NULL when unavailable. */
  mdm_rc (*refresh)(void *ud);
  void *refresh_ud;
  /* install_profile/remove_profile: fetch the configuration bundle now
   * (whatever the ETags say), verify and enforce it; *profiles (caller
   * owns) is its [{name, version}] list, msg[n] what was done or why it
   * failed.  NULL when unavailable. */
  mdm_rc (*policy_sync)(void *ud, json_t **profiles, char *msg, size_t n);
  void *policy_sync_ud;
  /* rotate_certificate: renew the device certificate now (identity.h);
   * on success detail[n] is the JSON text {"not_after": EPOCH,
   * "fingerprint": HEX} of the new one, else why it failed.  NULL when
   * unavailable. */
  mdm_rc (*rotate_cert)(void *ud, char *detail, size_t n);
  void *rotate_cert_ud;
};

/* What an action did. */
struct mdm_action_result {
  int is_completed;                      /* else failed */
  char detail[MDM_ACTION_DETAIL_MAX];    /* "" means no detail (null) */
  int is_unmanaged;   /* the device is no longer managed (after a wipe):
                         credentials are to be removed once reported */
};

/* Run the command; fill *res (zeroed by the caller: failed, no detail). */
typedef void (*mdm_action_fn)(const struct mdm_action_ctx *ctx,
                              struct mdm_action_result *res);

/* May the command run now?  1 yes; 0 not yet (why[n] says why): the command
 * is left pending (neither acknowledged nor journaled) and offered again by
 * the server at a later fetch. */
typedef int (*mdm_action_ready_fn)(const struct mdm_action_ctx *ctx,
                                   char *why, size_t n);

struct mdm_action {
  const char *type;
  mdm_action_fn run;
  mdm_action_ready_fn is_ready;     /* NULL: always ready */
};

/* The Linux actions, ending with {NULL, NULL}. */
extern const struct mdm_action mdm_actions_linux[];

/* The action for type in table, or NULL. */
const struct mdm_action *mdm_action_find(const struct mdm_action *table,
                                         const char *type);

/* Run cmdline (PROGRAM [ARG...], split on blanks, PROGRAM resolved with
 * mdm_agent_config_path(root, …)) for at most timeout_s seconds.  Fills
 * res: completed on exit status 0; detail is the captured output (first
 * MDM_ACTION_OUTPUT_MAX bytes, control characters and non-ASCII bytes
 * replaced, trimmed), prefixed on failure by "exit status N", "killed by
 * signal N", "timed out after Ns" or "cannot run 'P': reason". */
void mdm_action_run_hook(const char *root, const char *cmdline,
                         long timeout_s, struct mdm_action_result *res);

/* Remove the corporate data selective_wipe removes (see actions_linux.c).
 * Exported for the unit tests. */
void mdm_action_selective_wipe(const struct mdm_action_ctx *ctx,
                               struct mdm_action_result *res);

/* Is minute (0..1439, local time) inside window "HH:MM-HH:MM" (which may
 * wrap midnight)?  1 yes, 0 no, -1 when window is not of that form. */
int mdm_action_in_window(const char *window, int minute);

/* Format into res->detail. */
void mdm_action_set(struct mdm_action_result *res, int is_completed,
                    const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#endif
