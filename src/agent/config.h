/*
 * config.h: the agent's own configuration file, for what the server must not
 * decide: which local programs carry out the commands that act on the
 * machine (lock, wipe, reboot, os_update) and where the managed corporate
 * data lives.  It is read from <state-dir>/agent.conf (optional: absent means
 * every default) or from the file named by --config (which must exist).
 *
 * Format: one `key = value` a line; blank lines and lines whose first
 * non-blank character is '#' are ignored; spaces around key and value are
 * trimmed; an empty value means "not configured" (it also turns a default
 * off).  A key given twice, an unknown key or a line without '=' is an error.
 * At most 64 KiB, lines at most 4096 bytes.
 *
 *   lock_hook         = PROGRAM [ARG...]   run for the lock command
 *   wipe_hook         = PROGRAM [ARG...]   run for the wipe command
 *   reboot_hook       = PROGRAM [ARG...]   run for the reboot command
 *   os_update_command = PROGRAM [ARG...]   run for the os_update command
 *   managed_dir       = PATH               removed by selective_wipe
 *   hook_timeout_s    = N                  1..86400, default 300
 *
 * A hook is split on spaces and tabs (no quoting, no shell) and run with
 * execv(): PROGRAM is a path, never looked up in $PATH.  Paths (PROGRAM and
 * managed_dir): an absolute path is used as written; a relative path is
 * taken relative to --root (relative to / when no --root is given).  So with
 * `--root /tmp/dev`, `lock_hook = hooks/lock.sh` runs /tmp/dev/hooks/lock.sh,
 * while `lock_hook = /usr/local/bin/lock` runs that program itself.
 *
 * Defaults: lock_hook is `/usr/bin/loginctl lock-sessions` and reboot_hook
 * `/usr/bin/systemctl reboot` only when no --root is given (with --root, a
 * test device, they are not configured); wipe_hook and os_update_command are
 * never configured by default; managed_dir is <state-dir>/managed.
 */
#ifndef MDM_AGENT_CONFIG_H
#define MDM_AGENT_CONFIG_H

#include <stddef.h>
#include "core/rc.h"

#define MDM_AGENT_CONFIG_FILE "agent.conf"
#define MDM_AGENT_CONFIG_MAX (64 * 1024)
#define MDM_AGENT_CONFIG_LINE_MAX 4096
#define MDM_AGENT_HOOK_TIMEOUT_DEFAULT 300
#define MDM_AGENT_HOOK_TIMEOUT_MAX 86400
#define MDM_AGENT_DEFAULT_LOCK "/usr/bin/loginctl lock-sessions"
#define MDM_AGENT_DEFAULT_REBOOT "/usr/bin/systemctl reboot"
#define MDM_AGENT_MANAGED_DIR "managed"

struct mdm_agent_config {
  /* Hook command lines with PROGRAM already resolved (see above); NULL when
   * not configured. */
  char *lock_hook;
  char *wipe_hook;
  char *reboot_hook;
  char *os_update_command;
  char *managed_dir;        /* resolved path, never NULL after a load */
  long hook_timeout_s;
};

/* Load the configuration into *cfg (released with
 * mdm_agent_config_release()).  path is the --config file (must exist), or
 * NULL for <state_dir>/agent.conf (may be absent).  root is --root (NULL or
 * "": none).  MDM_ERR_INVAL / MDM_ERR_NOTFOUND / MDM_ERR_TOOBIG with one line
 * in err[n] ("cannot read 'F': line 3: unknown key 'x'"). */
mdm_rc mdm_agent_config_load(const char *path, const char *state_dir,
                             const char *root,
                             struct mdm_agent_config *cfg /* OUT */,
                             char *err, size_t n);

/* Parse text (len bytes, the file named name for messages) into *cfg.
 * Exported for the unit tests; mdm_agent_config_load() uses it. */
mdm_rc mdm_agent_config_parse(const char *text, size_t len, const char *name,
                              const char *state_dir, const char *root,
                              struct mdm_agent_config *cfg /* OUT */,
                              char *err, size_t n);

void mdm_agent_config_release(struct mdm_agent_config *cfg);

/* Resolve a configured path: absolute as is, relative under root (or /).
 * Caller owns the result; free() it.  NULL on allocation failure. */
char *mdm_agent_config_path(const char *root, const char *p);

#endif
