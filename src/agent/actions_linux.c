/*
 * actions_linux.c: the Linux actions behind actions.h, one function per
 * command type, gathered in mdm_actions_linux[].
 *
 *   lock            lock_hook (default `loginctl lock-sessions` without
 *                   --root), else failed "no lock hook configured"
 *   reboot          reboot_hook (default `systemctl reboot` without --root)
 *   wipe            wipe_hook; on success the device stops being managed
 *                   (commands.c removes the credentials once reported).  A
 *                   real factory reset is the platform's job, not ours.
 *   selective_wipe  removes the corporate data the agent put on the device
 *                   and nothing else: managed_dir (recursively, refused when
 *                   it resolves to /, outside the state dir and --root, or
 *                   to a directory that holds the state dir), the OpenVPN
 *                   profile (<root>/etc/openvpn/client/mdm.conf),
 *                   <state-dir>/os_update.json and <state-dir>/policy.json.
 *                   The credentials are kept: the device still checks in and
 *                   reports until the server retires it.
 *   os_update       os_update_command, inside the os_update setting's window
 *                   (local time) when there is one; outside it the command
 *                   waits (mdm_action.is_ready), it is not run.
 *   refresh_inventory  an immediate extra check-in (ctx->refresh).
 *   install_profile, remove_profile {name}: fetch, verify and enforce the
 *                   configuration bundle now, then confirm the profile is
 *                   (install) or is no longer (remove) in it (act_profile).
 *   rotate_certificate: renew the device certificate now, whatever its
 *                   age (ctx->rotate_cert, identity.h); completed with
 *                   {"not_after", "fingerprint"} of the new one as detail.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "agent/actions.h"
#include "agent/enforce.h"
#include "agent/policy.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"

#define HOOK_ARGS_MAX 64

void mdm_action_set(struct mdm_action_result *res, int is_completed,
                    const char *fmt, ...)
{
  va_list ap;
  res->is_completed = is_completed;
  va_start(ap, fmt);
  vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
  va_end(ap);
}

const struct mdm_action *mdm_action_find(const struct mdm_action *table,
                                         const char *type)
{
  for(; table && table->type; table++)
    if(!strcmp(table->type, type))
      return table;
  return NULL;
}

/* ---- hooks ------------------------------------------------------------------ */

static void clean_output(char *s, size_t len)
{
  size_t i;
  for(i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f)
      s[i] = '?';
  }
  while(len && (s[len - 1] == '\n' || s[len - 1] == ' ' ||
                s[len - 1] == '\t'))
    len--;
  s[len] = '\0';
}

static void child_exec(const char *prog, char **argv, int out_fd, int err_fd)
{
  struct sigaction sa;
  sigset_t none;
  int null_fd, e;

  setpgid(0, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  null_fd = open("/dev/null", O_RDONLY);
  if(null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
     dup2(out_fd, 2) < 0)
    goto fail;
  if(err_fd != 3) {
    if(dup2(err_fd, 3) < 0)
      goto fail;
    err_fd = 3;
  }
  fcntl(err_fd, F_SETFD, FD_CLOEXEC);
  close_range(4, ~0U, 0);
  execv(prog, argv);
fail:
  e = errno;
  if(write(err_fd, &e, sizeof(e)) < 0)
    e = 0;
  _exit(127);
}

void mdm_action_run_hook(const char *root, const char *cmdline,
                         long timeout_s, struct mdm_action_result *res)
{
  char *copy = NULL, *argv[HOOK_ARGS_MAX + 1], *prog = NULL, *p;
  char out[MDM_ACTION_OUTPUT_MAX + 1];
  size_t n_out = 0, n_args = 0;
  int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, status = 0, exec_errno = 0;
  int is_exited = 0, is_eof = 0, is_timeout = 0;
  int64_t deadline = mdm_mono_ns() + (int64_t)timeout_s * 1000000000;
  pid_t pid = -1;
  ssize_t r;

  memset(res, 0, sizeof(*res));
  copy = strdup(cmdline ? cmdline : "");
  if(!copy) {
    mdm_action_set(res, 0, "out of memory");
    return;
  }
  for(p = copy; *p && n_args < HOOK_ARGS_MAX;) {
    while(*p == ' ' || *p == '\t')
      *p++ = '\0';
    if(!*p)
      break;
    argv[n_args++] = p;
    while(*p && *p != ' ' && *p != '\t')
      p++;
  }
  argv[n_args] = NULL;
  if(!n_args) {
    mdm_action_set(res, 0, "empty hook");
    goto out;
  }
  prog = mdm_agent_config_path(root, argv[0]);
  if(!prog || pipe2(opipe, O_CLOEXEC) || pipe2(epipe, O_CLOEXEC)) {
    mdm_action_set(res, 0, "cannot run '%s': %s", argv[0],
                   prog ? strerror(errno) : "out of memory");
    goto out;
  }
  mdm_info("running '%s'", cmdline);
  pid = fork();
  if(pid < 0) {
    mdm_action_set(res, 0, "cannot run '%s': %s", prog, strerror(errno));
    goto out;
  }
  if(pid == 0)
    child_exec(prog, argv, opipe[1], epipe[1]);
  close(opipe[1]);
  close(epipe[1]);
  opipe[1] = epipe[1] = -1;
  fcntl(opipe[0], F_SETFL, O_NONBLOCK);

  /* Read the output until EOF and exit, or until the deadline. */
  while(!is_exited || !is_eof) {
    int64_t left_ms = (deadline - mdm_mono_ns()) / 1000000;
    struct pollfd pf;
    if(left_ms <= 0) {
      is_timeout = 1;
      break;
    }
    if(!is_eof) {
      pf.fd = opipe[0];
      pf.events = POLLIN;
      pf.revents = 0;
      poll(&pf, 1, left_ms > 100 ? 100 : (int)left_ms);
      for(;;) {
        char chunk[4096];
        r = read(opipe[0], chunk, sizeof(chunk));
        if(r > 0) {
          size_t take = (size_t)r;
          if(take > MDM_ACTION_OUTPUT_MAX - n_out)
            take = MDM_ACTION_OUTPUT_MAX - n_out;
          memcpy(out + n_out, chunk, take);
          n_out += take;
          continue;
        }
        if(r == 0)
          is_eof = 1;
        break;
      }
    }
    else
      poll(NULL, 0, left_ms > 50 ? 50 : (int)left_ms);
    if(!is_exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if(w == pid)
        is_exited = 1;
    }
    /* A hook that left a background child holding its output: done. */
    if(is_exited && !is_eof) {
      r = read(opipe[0], out + n_out, MDM_ACTION_OUTPUT_MAX - n_out);
      if(r > 0)
        n_out += (size_t)r;
      break;
    }
  }
  if(is_timeout) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    if(!is_exited)
      waitpid(pid, &status, 0);
  }
  if(read(epipe[0], &exec_errno, sizeof(exec_errno)) != sizeof(exec_errno))
    exec_errno = 0;
  clean_output(out, n_out);

  if(exec_errno)
    mdm_action_set(res, 0, "cannot run '%s': %s", prog, strerror(exec_errno));
  else if(is_timeout)
    mdm_action_set(res, 0, "timed out after %lds%s%s", timeout_s,
                   out[0] ? ": " : "", out);
  else if(WIFEXITED(status) && WEXITSTATUS(status) == 0)
    mdm_action_set(res, 1, "%s", out);
  else if(WIFEXITED(status))
    mdm_action_set(res, 0, "exit status %d%s%s", WEXITSTATUS(status),
                   out[0] ? ": " : "", out);
  else
    mdm_action_set(res, 0, "killed by signal %d%s%s",
                   WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                   out[0] ? ": " : "", out);
  mdm_info("'%s': %s%s%s", argv[0], res->is_completed ? "completed" :
           "failed", res->detail[0] ? ": " : "", res->detail);
out:
  if(opipe[0] >= 0)
    close(opipe[0]);
  if(opipe[1] >= 0)
    close(opipe[1]);
  if(epipe[0] >= 0)
    close(epipe[0]);
  if(epipe[1] >= 0)
    close(epipe[1]);
  free(prog);
  free(copy);
}

/* ---- the actions -------------------------------------------------------------- */

static void run_configured(const struct mdm_action_ctx *ctx, const char *hook,
                           const char *what, struct mdm_action_result *res)
{
  if(!hook) {
    mdm_action_set(res, 0, "no %s configured", what);
    return;
  }
  mdm_action_run_hook(ctx->root, hook, ctx->cfg->hook_timeout_s, res);
}

static void act_lock(const struct mdm_action_ctx *ctx,
                     struct mdm_action_result *res)
{
  run_configured(ctx, ctx->cfg->lock_hook, "lock hook", res);
}

static void act_reboot(const struct mdm_action_ctx *ctx,
                       struct mdm_action_result *res)
{
  run_configured(ctx, ctx->cfg->reboot_hook, "reboot hook", res);
}

static void act_wipe(const struct mdm_action_ctx *ctx,
                     struct mdm_action_result *res)
{
  run_configured(ctx, ctx->cfg->wipe_hook, "wipe hook", res);
  if(res->is_completed)
    res->is_unmanaged = 1;
}

static void act_os_update(const struct mdm_action_ctx *ctx,
                          struct mdm_action_result *res)
{
  run_configured(ctx, ctx->cfg->os_update_command, "os_update_command", res);
}

static void act_rotate_certificate(const struct mdm_action_ctx *ctx,
                                   struct mdm_action_result *res)
{
  char detail[MDM_ACTION_DETAIL_MAX];
  mdm_rc rc;
  if(!ctx->rotate_cert) {
    mdm_action_set(res, 0, "cannot renew the certificate now");
    return;
  }
  detail[0] = '\0';
  rc = ctx->rotate_cert(ctx->rotate_cert_ud, detail, sizeof(detail));
  mdm_action_set(res, !rc, "%s", detail[0] ? detail : mdm_strerror(rc));
}

static void act_refresh(const struct mdm_action_ctx *ctx,
                        struct mdm_action_result *res)
{
  mdm_rc rc;
  if(!ctx->refresh) {
    mdm_action_set(res, 0, "cannot check in now");
    return;
  }
  rc = ctx->refresh(ctx->refresh_ud);
  if(rc)
    mdm_action_set(res, 0, "check-in failed: %s", mdm_strerror(rc));
  else
    mdm_action_set(res, 1, "inventory sent");
}

/* The version of profile name in profiles ([{name, version}]), or -1 when
 * the bundle does not carry it. */
static long long profile_version(json_t *profiles, const char *name)
{
  size_t i;
  json_t *p;
  json_array_foreach(profiles, i, p) {
    const char *n = json_string_value(json_object_get(p, "name"));
    if(n && !strcmp(n, name))
      return json_integer_value(json_object_get(p, "version"));
  }
  return -1;
}

/* install_profile {name} / remove_profile {name}.  Profiles are assigned
 * in the policy repository (spec.assign), so the server's bundle is the
 * truth about which apply: these commands make the device fetch, verify
 * and enforce its bundle now, and then confirm that the named profile is
 * applied (install) or no longer applied (remove).  A profile the bundle
 * does not carry cannot be installed, and one it still carries cannot be
 * removed: the detail says so. */
static void act_profile(const struct mdm_action_ctx *ctx,
                        struct mdm_action_result *res, int is_install)
{
  const char *name = json_string_value(json_object_get(ctx->params, "name"));
  json_t *profiles = NULL;
  char msg[512];
  long long v;
  mdm_rc rc;

  if(!name || !*name) {
    mdm_action_set(res, 0, "params.name: expected the profile's name");
    return;
  }
  if(!ctx->policy_sync) {
    mdm_action_set(res, 0, "cannot fetch the configuration now");
    return;
  }
  msg[0] = '\0';
  rc = ctx->policy_sync(ctx->policy_sync_ud, &profiles, msg, sizeof(msg));
  if(rc) {
    mdm_action_set(res, 0, "%s", msg[0] ? msg : mdm_strerror(rc));
    json_decref(profiles);
    return;
  }
  v = profile_version(profiles, name);
  json_decref(profiles);
  if(is_install && v < 0)
    mdm_action_set(res, 0, "profile '%.128s' is not assigned to this device "
                   "(assign it with spec.assign); %s", name, msg);
  else if(is_install)
    mdm_action_set(res, 1, "profile '%.128s' version %lld applied; %s", name,
                   v, msg);
  else if(v >= 0)
    mdm_action_set(res, 0, "profile '%.128s' is still assigned to this "
                   "device (version %lld): unassign it in the policy "
                   "repository first", name, v);
  else
    mdm_action_set(res, 1, "profile '%.128s' is not applied; %s", name, msg);
}

static void act_install_profile(const struct mdm_action_ctx *ctx,
                                struct mdm_action_result *res)
{
  act_profile(ctx, res, 1);
}

static void act_remove_profile(const struct mdm_action_ctx *ctx,
                               struct mdm_action_result *res)
{
  act_profile(ctx, res, 0);
}

int mdm_action_in_window(const char *w, int minute)
{
  int v[4], i;
  static const int at[] = {0, 1, 3, 4};
  if(!w || strlen(w) != 11 || w[5] != '-')
    return -1;
  for(i = 0; i < 2; i++) {
    const char *s = w + i * 6;
    int j;
    for(j = 0; j < 4; j++)
      if(s[at[j]] < '0' || s[at[j]] > '9')
        return -1;
    if(s[2] != ':')
      return -1;
    v[i * 2] = (s[0] - '0') * 10 + (s[1] - '0');
    v[i * 2 + 1] = (s[3] - '0') * 10 + (s[4] - '0');
    if(v[i * 2] > 23 || v[i * 2 + 1] > 59)
      return -1;
  }
  {
    int a = v[0] * 60 + v[1], b = v[2] * 60 + v[3];
    if(a <= b)
      return minute >= a && minute < b;
    return minute >= a || minute < b;   /* wraps midnight */
  }
}

/* os_update waits for the window of the os_update setting, if any. */
static int os_update_ready(const struct mdm_action_ctx *ctx, char *why,
                           size_t n)
{
  char path[PATH_MAX], *text = NULL;
  json_t *o = NULL;
  time_t now = time(NULL);
  struct tm tm;
  int in = 1;

  if(!ctx->cfg->os_update_command)
    return 1;   /* fails at once */
  if(mdm_state_path(ctx->state_dir, MDM_ENFORCE_OS_UPDATE_FILE, path,
                    sizeof(path)) ||
     mdm_file_read(path, 64 * 1024, &text, NULL))
    return 1;
  o = json_loads(text, 0, NULL);
  free(text);
  if(json_is_string(json_object_get(o, "window")) &&
     localtime_r(&now, &tm)) {
    const char *w = json_string_value(json_object_get(o, "window"));
    in = mdm_action_in_window(w, tm.tm_hour * 60 + tm.tm_min);
    if(!in)
      snprintf(why, n, "outside the maintenance window %s", w);
    in = in != 0;
  }
  json_decref(o);
  return in;
}

/* ---- selective wipe ------------------------------------------------------------ */

static unsigned long n_removed;
static int remove_errno;

static int rm_entry(const char *p, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  int r = flag == FTW_DP ? rmdir(p) : unlink(p);
  if(r != 0 && errno != ENOENT) {
    remove_errno = errno;
    return 1;
  }
  if(flag != FTW_DP)
    n_removed++;
  return 0;
}

/* Is p strictly inside dir (both canonical)? */
static int is_inside(const char *p, const char *dir)
{
  size_t n = strlen(dir);
  if(!strcmp(dir, "/"))
    return p[0] == '/' && p[1] != '\0';
  return !strncmp(p, dir, n) && p[n] == '/' && p[n + 1] != '\0';
}

static mdm_rc remove_managed_dir(const struct mdm_action_ctx *ctx,
                                 int *is_removed, char *why, size_t n)
{
  char real[PATH_MAX], sreal[PATH_MAX], rreal[PATH_MAX];
  const char *root = ctx->root && *ctx->root ? ctx->root : "/";
  struct stat st;

  *is_removed = 0;
  if(lstat(ctx->cfg->managed_dir, &st) != 0 && errno == ENOENT)
    return MDM_OK;
  if(!realpath(ctx->cfg->managed_dir, real) ||
     !realpath(ctx->state_dir, sreal)) {
    snprintf(why, n, "cannot resolve managed_dir '%s': %s",
             ctx->cfg->managed_dir, strerror(errno));
    return MDM_ERR_IO;
  }
  if(!realpath(root, rreal))
    mdm_strlcpy(rreal, "/", sizeof(rreal));
  if(!strcmp(real, "/") ||
     !(is_inside(real, sreal) || (strcmp(rreal, "/") && is_inside(real, rreal)))
     || is_inside(sreal, real) || !strcmp(sreal, real)) {
    snprintf(why, n, "refusing to remove managed_dir '%.300s' (resolves to "
             "'%.300s', not inside the state dir or --root)",
             ctx->cfg->managed_dir, real);
    return MDM_ERR_INVAL;
  }
  if(stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, n, "managed_dir '%s' is not a directory",
             ctx->cfg->managed_dir);
    return MDM_ERR_INVAL;
  }
  n_removed = 0;
  remove_errno = 0;
  if(nftw(real, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
    snprintf(why, n, "cannot remove managed_dir '%s': %s",
             ctx->cfg->managed_dir, strerror(remove_errno ? remove_errno :
                                              errno));
    return MDM_ERR_IO;
  }
  *is_removed = 1;
  return MDM_OK;
}

static mdm_rc remove_file(const char *path, int *is_removed, char *why,
                          size_t n)
{
  *is_removed = 0;
  if(unlink(path) == 0) {
    *is_removed = 1;
    return MDM_OK;
  }
  if(errno == ENOENT)
    return MDM_OK;
  snprintf(why, n, "cannot remove '%.300s': %s", path, strerror(errno));
  return MDM_ERR_IO;
}

void mdm_action_selective_wipe(const struct mdm_action_ctx *ctx,
                               struct mdm_action_result *res)
{
  char why[768] = "", path[PATH_MAX], done[512] = "";
  static const char *const state_files[] = {MDM_ENFORCE_OS_UPDATE_FILE,
                                            MDM_POLICY_BUNDLE_FILE, NULL};
  char *vpn = NULL;
  int is_removed;
  size_t i;
  mdm_rc rc;

  rc = remove_managed_dir(ctx, &is_removed, why, sizeof(why));
  if(rc)
    goto out;
  if(is_removed)
    snprintf(done, sizeof(done), "managed_dir (%lu file(s))", n_removed);
  vpn = mdm_agent_config_path(ctx->root, MDM_ENFORCE_VPN_PATH + 1);
  if(!vpn) {
    rc = MDM_ERR_NOMEM;
    snprintf(why, sizeof(why), "out of memory");
    goto out;
  }
  rc = remove_file(vpn, &is_removed, why, sizeof(why));
  if(rc)
    goto out;
  if(is_removed)
    snprintf(done + strlen(done), sizeof(done) - strlen(done), "%svpn "
             "profile", done[0] ? ", " : "");
  for(i = 0; state_files[i]; i++) {
    rc = mdm_state_path(ctx->state_dir, state_files[i], path, sizeof(path));
    if(!rc)
      rc = remove_file(path, &is_removed, why, sizeof(why));
    if(rc)
      goto out;
    if(is_removed)
      snprintf(done + strlen(done), sizeof(done) - strlen(done), "%s%s",
               done[0] ? ", " : "", state_files[i]);
  }
out:
  free(vpn);
  if(rc)
    mdm_action_set(res, 0, "%s", why[0] ? why : mdm_strerror(rc));
  else
    mdm_action_set(res, 1, "removed: %s; credentials kept",
                   done[0] ? done : "nothing (no corporate data found)");
}

const struct mdm_action mdm_actions_linux[] = {
  {"lock", act_lock, NULL},
  {"wipe", act_wipe, NULL},
  {"selective_wipe", mdm_action_selective_wipe, NULL},
  {"reboot", act_reboot, NULL},
  {"os_update", act_os_update, os_update_ready},
  {"install_profile", act_install_profile, NULL},
  {"remove_profile", act_remove_profile, NULL},
  {"rotate_certificate", act_rotate_certificate, NULL},
  {"refresh_inventory", act_refresh, NULL},
  {NULL, NULL, NULL}
};
