/*
 * cmd_commands.c: device commands (CONTRACT §5).  The top-level verbs
 * "mdmctl lock|reboot|update|wipe ID" queue one command for one device
 * (POST /v1/devices/{id}/commands), "mdmctl retire ID" starts the
 * retirement workflow (POST /v1/devices/{id}/retire), and "mdmctl commands
 * list|show|cancel|create" read, cancel and create commands, create also
 * for every device a selector matches (POST /v1/commands).
 *
 * What cannot be undone (a full wipe, a retirement, a wipe of many
 * devices) asks for confirmation on a terminal and is refused without
 * --yes when standard input is not one, before anything is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/util.h"

#define PATH_DEVICES "/v1/devices"
#define PATH_COMMANDS "/v1/commands"

/* Largest --params document accepted locally (the server's limit). */
#define MAX_PARAMS_LEN (16u * 1024)

#define WIPE_WARNING "this erases all its data and cannot be undone"

static const struct cli_col command_cols[] = {
  {"ID", "id", CLI_CELL_TEXT, NULL},
  {"TYPE", "type", CLI_CELL_TEXT, NULL},
  {"STATUS", "status", CLI_CELL_TEXT, NULL},
  {"ISSUED", "issued_at", CLI_CELL_AGO, NULL},
  {"UPDATED", "updated_at", CLI_CELL_AGO, NULL},
  {"DETAIL", "detail", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static const char *const command_types[] = {
  "lock", "wipe", "selective_wipe", "reboot", "os_update", "install_profile",
  "remove_profile", "rotate_certificate", "refresh_inventory", NULL
};

/* ---- shared helpers ----------------------------------------------------- */

/* Ask on the terminal whether to go on with action ("wipe device 'X'"),
 * after saying why it matters (warning: "this erases all its data and
 * cannot be undone").  Without a terminal on stdin the answer is no, said
 * in one line.  Returns CLI_EXIT_OK to go on, else CLI_EXIT_FAIL after
 * printing why not. */
static int confirm(const struct cli_args *a, const char *action,
                   const char *warning)
{
  char answer[64];

  if(cli_args_has(a, "--yes"))
    return CLI_EXIT_OK;
  if(!isatty(STDIN_FILENO)) {
    cli_error("refusing to %s without --yes: standard input is not a "
              "terminal", action);
    return CLI_EXIT_FAIL;
  }
  fprintf(stderr, "about to %s: %s\nType 'yes' to continue: ", action,
          warning);
  fflush(stderr);
  if(!fgets(answer, sizeof(answer), stdin)) {
    fputc('\n', stderr);
    cli_error("aborted: nothing was sent");
    return CLI_EXIT_FAIL;
  }
  answer[strcspn(answer, "\r\n")] = '\0';
  if(strcmp(answer, "yes") && strcmp(answer, "y")) {
    cli_error("aborted: nothing was sent");
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

/* Put "expires_in_s" from --expires into body.  Returns an exit code. */
static int flag_expires(const struct cli *cli, const struct cli_args *a,
                        json_t *body)
{
  const char *v = cli_args_get(a, "--expires");
  int64_t secs = 0;

  if(!v)
    return CLI_EXIT_OK;
  if(mdm_duration_parse(v, &secs) || secs <= 0)
    return cli_usage_error(cli, "invalid value '%s' for --expires: expected "
                           "a duration such as 3600, 90m, 24h or 7d", v);
  if(json_object_set_new(body, "expires_in_s", json_integer(secs)))
    return cli_nomem();
  return CLI_EXIT_OK;
}

/* Put "params" from --params (a JSON object) into body.  Returns an exit
 * code. */
static int flag_params(const struct cli *cli, const struct cli_args *a,
                       json_t *body)
{
  const char *v = cli_args_get(a, "--params");
  json_error_t jerr;
  json_t *p;

  if(!v)
    return CLI_EXIT_OK;
  if(strlen(v) > MAX_PARAMS_LEN)
    return cli_usage_error(cli, "invalid value for --params: longer than "
                           "%u bytes", MAX_PARAMS_LEN);
  p = json_loads(v, JSON_REJECT_DUPLICATES, &jerr);
  if(!p)
    return cli_usage_error(cli, "invalid value for --params: %s (column %d)",
                           jerr.text, jerr.column);
  if(!json_is_object(p)) {
    json_decref(p);
    return cli_usage_error(cli, "invalid value for --params: expected a JSON "
                           "object");
  }
  if(json_object_set_new(body, "params", p))
    return cli_nomem();
  return CLI_EXIT_OK;
}

static int is_command_type(const char *t)
{
  size_t i;
  for(i = 0; command_types[i]; i++)
    if(!strcmp(command_types[i], t))
      return 1;
  return 0;
}

/* ---- one device: lock, reboot, update, wipe ----------------------------- */

static const struct cli_opt device_cmd_opts[] = {
  {"--expires", 0, "DURATION", "give up if the device has not run it by "
   "then: 90m, 24h, 7d (default: the server's, 24h)"},
  {"--params", 0, "JSON", "the command's parameters, a JSON object"},
  {NULL, 0, NULL, NULL}
};

static const struct cli_opt wipe_opts[] = {
  {"--selective", 0, NULL, "remove corporate data only (selective_wipe) "
   "instead of erasing the device"},
  {"--yes", 'y', NULL, "do not ask for confirmation"},
  {"--expires", 0, "DURATION", "give up if the device has not run it by "
   "then: 90m, 24h, 7d (default: the server's, 24h)"},
  {"--params", 0, "JSON", "the command's parameters, a JSON object"},
  {NULL, 0, NULL, NULL}
};

/* "/v1/devices/ID" + suffix (ID percent-encoded) into b, initialised
 * here; release it whatever the result.  Returns an exit code. */
static int device_path(const struct cli *cli, const char *id,
                       const char *suffix, struct mdm_buf *b)
{
  mdm_buf_init(b, 8192);
  if(!*id || !strcmp(id, ".") || !strcmp(id, ".."))
    return cli_usage_error(cli, "invalid ID '%s'", id);
  if(mdm_buf_puts(b, PATH_DEVICES "/") || cli_path_add(b, id) ||
     mdm_buf_puts(b, suffix))
    return cli_usage_error(cli, "invalid ID: too long");
  return CLI_EXIT_OK;
}

/* POST /v1/devices/{id}/commands with body (which gets its "type" here)
 * and print the command: its id alone unless -o json|yaml|csv. */
static int create_for_device(struct cli *cli, const char *id,
                             const char *type, json_t *body)
{
  struct cli_client *c;
  struct mdm_buf path;
  json_t *cmd = NULL;
  int ret = device_path(cli, id, "/commands", &path);

  if(ret)
    goto out;
  ret = CLI_EXIT_FAIL;
  if(json_object_set_new(body, "type", json_string(type))) {
    ret = cli_nomem();
    goto out;
  }
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", path.data, body, 0, NULL, &cmd))
    goto out;
  if(cli_wants_secret_only(cli)) {
    /* The id alone, so that ID=$(mdmctl lock DEV) works. */
    const char *cid = json_string_value(json_object_get(cmd, "id"));
    if(!cid) {
      cli_error("POST %s: unexpected answer: no 'id'", path.data);
      goto out;
    }
    ret = cli_print_line(cid);
  }
  else
    ret = cli_print_object(cli, cmd);
out:
  json_decref(cmd);
  mdm_buf_release(&path);
  return ret;
}

/* Build the body from --expires and --params, and create type for the
 * device a->pos[0]. */
static int device_command(struct cli *cli, const struct cli_args *a,
                          const char *type)
{
  json_t *body = json_object();
  int ret;

  if(!body)
    return cli_nomem();
  ret = flag_expires(cli, a, body);
  if(!ret)
    ret = flag_params(cli, a, body);
  if(!ret)
    ret = create_for_device(cli, a->pos[0], type, body);
  json_decref(body);
  return ret;
}

static int cmd_lock(struct cli *cli, const struct cli_args *a)
{
  return device_command(cli, a, "lock");
}

static int cmd_reboot(struct cli *cli, const struct cli_args *a)
{
  return device_command(cli, a, "reboot");
}

static int cmd_update(struct cli *cli, const struct cli_args *a)
{
  return device_command(cli, a, "os_update");
}

static int cmd_wipe(struct cli *cli, const struct cli_args *a)
{
  char what[512], shown[256];
  int ret;

  if(cli_args_has(a, "--selective"))
    return device_command(cli, a, "selective_wipe");
  /* Check the flags before asking, so a typo is not found after "yes". */
  {
    json_t *probe = json_object();
    if(!probe)
      return cli_nomem();
    ret = flag_expires(cli, a, probe);
    if(!ret)
      ret = flag_params(cli, a, probe);
    json_decref(probe);
    if(ret)
      return ret;
  }
  snprintf(what, sizeof(what), "wipe device '%s'",
           cli_sanitize(a->pos[0], shown, sizeof(shown)));
  ret = confirm(a, what, WIPE_WARNING);
  if(ret)
    return ret;
  return device_command(cli, a, "wipe");
}

/* ---- retire ------------------------------------------------------------- */

static const struct cli_opt retire_opts[] = {
  {"--wipe", 0, "MODE", "selective (default: remove corporate data, then "
   "retire), full (erase the device, then retire) or none (retire at "
   "once)"},
  {"--yes", 'y', NULL, "do not ask for confirmation"},
  {NULL, 0, NULL, NULL}
};

static int cmd_retire(struct cli *cli, const struct cli_args *a)
{
  const char *mode = cli_args_get(a, "--wipe");
  struct cli_client *c;
  struct mdm_buf path;
  json_t *body = NULL, *dev = NULL;
  const char *warning;
  char what[512], shown[256];
  long status = 0;
  int ret;

  if(!mode)
    mode = "selective";
  if(strcmp(mode, "selective") && strcmp(mode, "full") && strcmp(mode, "none"))
    return cli_usage_error(cli, "invalid value '%s' for --wipe: expected "
                           "selective, full or none", mode);
  cli_sanitize(a->pos[0], shown, sizeof(shown));
  snprintf(what, sizeof(what), "retire device '%s'", shown);
  if(!strcmp(mode, "full"))
    warning = "it is erased first, then stops being managed; this cannot be "
              "undone";
  else if(!strcmp(mode, "none"))
    warning = "it stops being managed at once, without a wipe; this cannot "
              "be undone";
  else
    warning = "its corporate data is removed first, then it stops being "
              "managed; this cannot be undone";

  ret = device_path(cli, a->pos[0], "/retire", &path);
  if(!ret)
    ret = confirm(a, what, warning);
  if(ret)
    goto out;
  ret = CLI_EXIT_FAIL;
  body = json_pack("{s:s}", "wipe", mode);
  if(!body) {
    ret = cli_nomem();
    goto out;
  }
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", path.data, body, 0, &status, &dev))
    goto out;
  if(cli->fmt != CLI_FMT_TABLE) {
    ret = cli_print_object(cli, dev);
    goto out;
  }
  if(json_is_true(json_object_get(dev, "retire_pending"))) {
    const char *cid = json_string_value(json_object_get(dev,
                                                        "retire_command_id"));
    char cshown[128];
    printf("device %s will be retired when its %s command %s is done\n",
           shown, !strcmp(mode, "full") ? "wipe" : "selective_wipe",
           cid ? cli_sanitize(cid, cshown, sizeof(cshown)) : "(unknown)");
    ret = CLI_EXIT_OK;
  }
  else {
    snprintf(what, sizeof(what), "device %s retired", shown);
    ret = cli_print_line(what);
  }
out:
  json_decref(dev);
  json_decref(body);
  mdm_buf_release(&path);
  return ret;
}

/* ---- commands list / show / cancel -------------------------------------- */

/* Set "updated_at" on a command for the table: the time of its latest
 * transition (expires_at for an expired one), else issued_at. */
static mdm_rc add_updated_at(json_t *cmd)
{
  static const char *const fields[] = {"sent_at", "acknowledged_at",
                                       "completed_at", "canceled_at",
                                       "expires_at", NULL};
  const char *best = json_string_value(json_object_get(cmd, "issued_at"));
  const char *st = json_string_value(json_object_get(cmd, "status"));
  int is_expired = st && !strcmp(st, "expired");
  int64_t best_t = 0, t;
  size_t i;

  if(best && mdm_time_parse(best, &best_t))
    best = NULL;
  for(i = 0; fields[i]; i++) {
    const char *v = json_string_value(json_object_get(cmd, fields[i]));
    if(!strcmp(fields[i], "expires_at") && !is_expired)
      continue;
    if(v && !mdm_time_parse(v, &t) && (!best || t >= best_t)) {
      best = v;
      best_t = t;
    }
  }
  if(!best)
    return MDM_OK;
  return json_object_set_new(cmd, "updated_at", json_string(best))
         ? MDM_ERR_NOMEM : MDM_OK;
}

static const struct cli_opt list_opts[] = {
  {"--status", 0, "S", "only commands in this state (queued, sent, "
   "acknowledged, completed, failed, expired, canceled)"},
  {"--limit", 0, "N", "print at most N commands (default: all)"},
  {NULL, 0, NULL, NULL}
};

static int commands_list(struct cli *cli, const struct cli_args *a)
{
  const char *st = cli_args_get(a, "--status");
  struct cli_client *c;
  struct mdm_buf path;
  json_t *items = NULL, *cmd;
  long long limit = 0;
  size_t i;
  int ret;

  ret = cli_flag_int(cli, a, "--limit", 1, 1000000000LL, &limit);
  if(ret)
    return ret;
  ret = device_path(cli, a->pos[0], "/commands", &path);
  if(ret)
    goto out;
  if(st && cli_query_add(&path, "status", st)) {
    ret = cli_usage_error(cli, "the arguments are too long");
    goto out;
  }
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(!c || cli_client_list(c, path.data, (size_t)limit, &items))
    goto out;
  if(cli->fmt == CLI_FMT_TABLE)
    json_array_foreach(items, i, cmd)
      if(add_updated_at(cmd)) {
        ret = cli_nomem();
        goto out;
      }
  ret = cli_print_list(cli, items, command_cols, "commands");
out:
  json_decref(items);
  mdm_buf_release(&path);
  return ret;
}

static int commands_show(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  char *path = NULL;
  json_t *cmd = NULL;
  int ret = cli_id_path(cli, PATH_COMMANDS, a->pos[0], &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_call(c, "GET", path, NULL, 0, NULL, &cmd))
    ret = cli_print_object(cli, cmd);
  json_decref(cmd);
  free(path);
  return ret;
}

static int commands_cancel(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  struct mdm_buf path;
  json_t *cmd = NULL;
  int ret;

  mdm_buf_init(&path, 8192);
  if(!*a->pos[0] || !strcmp(a->pos[0], ".") || !strcmp(a->pos[0], "..")) {
    ret = cli_usage_error(cli, "invalid ID '%s'", a->pos[0]);
    goto out;
  }
  if(mdm_buf_puts(&path, PATH_COMMANDS "/") || cli_path_add(&path, a->pos[0])
     || mdm_buf_puts(&path, "/cancel")) {
    ret = cli_usage_error(cli, "invalid ID: too long");
    goto out;
  }
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", path.data, NULL, 0, NULL, &cmd))
    goto out;
  if(cli->fmt == CLI_FMT_TABLE) {
    char line[512], shown[256];
    snprintf(line, sizeof(line), "command %s canceled",
             cli_sanitize(a->pos[0], shown, sizeof(shown)));
    ret = cli_print_line(line);
  }
  else
    ret = cli_print_object(cli, cmd);
out:
  json_decref(cmd);
  mdm_buf_release(&path);
  return ret;
}

/* ---- commands create ---------------------------------------------------- */

static const struct cli_opt create_opts[] = {
  {"--type", 0, "T", "lock, wipe, selective_wipe, reboot, os_update, "
   "install_profile, remove_profile, rotate_certificate or "
   "refresh_inventory"},
  {"--label", 0, "K=V", "only devices with this label; repeat to require "
   "several"},
  {"--platform", 0, "P", "only devices of this platform"},
  {"--compliance", 0, "C", "only devices in this compliance state"},
  {"--all", 0, NULL, "every active device (required when no selector is "
   "given)"},
  {"--params", 0, "JSON", "the command's parameters, a JSON object"},
  {"--expires", 0, "DURATION", "give up on devices that have not run it by "
   "then: 90m, 24h, 7d (default: the server's, 24h)"},
  {"--yes", 'y', NULL, "do not ask for confirmation"},
  {NULL, 0, NULL, NULL}
};

/* Describe the selector for the confirmation question into out. */
static void describe_selector(const struct cli_args *a, char *out, size_t n)
{
  const char *p = cli_args_get(a, "--platform");
  const char *c = cli_args_get(a, "--compliance");
  size_t at;
  int i;

  if(cli_args_has(a, "--all")) {
    snprintf(out, n, "every active device");
    return;
  }
  at = (size_t)snprintf(out, n, "every active device with");
  for(i = 0; cli_args_nth(a, "--label", i) && at < n; i++)
    at += (size_t)snprintf(out + at, n - at, "%s label %s", i ? "," : "",
                           cli_args_nth(a, "--label", i));
  if(p && at < n)
    at += (size_t)snprintf(out + at, n - at, "%s platform %s",
                           i ? "," : "", p);
  if(c && at < n)
    snprintf(out + at, n - at, "%s compliance %s", (i || p) ? "," : "", c);
}

static int commands_create(struct cli *cli, const struct cli_args *a)
{
  const char *type = cli_args_get(a, "--type");
  const char *plat = cli_args_get(a, "--platform");
  const char *comp = cli_args_get(a, "--compliance");
  int has_sel = cli_args_has(a, "--label") || plat || comp;
  struct cli_client *c;
  json_t *body = NULL, *sel = NULL, *labels = NULL, *res = NULL;
  char what[1024], sel_text[600], shown[700];
  int ret;

  if(!type)
    return cli_usage_error(cli, "missing --type T");
  if(!is_command_type(type))
    return cli_usage_error(cli, "invalid value '%s' for --type: expected "
                           "lock, wipe, selective_wipe, reboot, os_update, "
                           "install_profile, remove_profile, "
                           "rotate_certificate or refresh_inventory", type);
  ret = cli_flag_labels(cli, a, "--label");
  if(ret)
    return ret;
  body = json_object();
  if(!body)
    return cli_nomem();
  ret = flag_expires(cli, a, body);
  if(!ret)
    ret = flag_params(cli, a, body);
  if(ret)
    goto out;

  /* One device by ID. */
  if(a->n_pos == 1) {
    if(has_sel || cli_args_has(a, "--all")) {
      ret = cli_usage_error(cli, "give a device ID or a selector (--label, "
                            "--platform, --compliance, --all), not both");
      goto out;
    }
    if(!strcmp(type, "wipe")) {
      snprintf(what, sizeof(what), "wipe device '%s'",
               cli_sanitize(a->pos[0], shown, sizeof(shown)));
      ret = confirm(a, what, WIPE_WARNING);
      if(ret)
        goto out;
    }
    ret = create_for_device(cli, a->pos[0], type, body);
    goto out;
  }

  /* Every device the selector matches. */
  if(!has_sel && !cli_args_has(a, "--all")) {
    ret = cli_usage_error(cli, "no selector: give --label, --platform or "
                          "--compliance, or --all for every active device");
    goto out;
  }
  if(has_sel && cli_args_has(a, "--all")) {
    ret = cli_usage_error(cli, "--all excludes --label, --platform and "
                          "--compliance");
    goto out;
  }
  if(!strcmp(type, "wipe") || !strcmp(type, "selective_wipe")) {
    describe_selector(a, sel_text, sizeof(sel_text));
    snprintf(what, sizeof(what), "send '%s' to %s", type,
             cli_sanitize(sel_text, shown, sizeof(shown)));
    ret = confirm(a, what, !strcmp(type, "wipe")
                  ? "this erases all their data and cannot be undone"
                  : "this removes their corporate data and cannot be undone");
    if(ret)
      goto out;
  }
  ret = CLI_EXIT_FAIL;
  sel = json_object();
  if(!sel || json_object_set(body, "selector", sel) ||
     json_object_set_new(body, "type", json_string(type)) ||
     (plat && json_object_set_new(sel, "platform", json_string(plat))) ||
     (comp && json_object_set_new(sel, "compliance", json_string(comp)))) {
    ret = cli_nomem();
    goto out;
  }
  if(cli_args_has(a, "--label")) {
    labels = json_object();
    if(!labels || json_object_set(sel, "labels", labels)) {
      ret = cli_nomem();
      goto out;
    }
    ret = cli_labels_to_json(a, "--label", labels);
    if(ret)
      goto out;
    ret = CLI_EXIT_FAIL;
  }
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", PATH_COMMANDS, body, 0, NULL, &res))
    goto out;
  if(cli->fmt == CLI_FMT_TABLE) {
    json_t *n = json_object_get(res, "count");
    if(!json_is_integer(n)) {
      cli_error("POST " PATH_COMMANDS ": unexpected answer: no 'count'");
      goto out;
    }
    printf("%" JSON_INTEGER_FORMAT " command%s created\n",
           json_integer_value(n), json_integer_value(n) == 1 ? "" : "s");
    ret = CLI_EXIT_OK;
  }
  else
    ret = cli_print_object(cli, res);
out:
  json_decref(res);
  json_decref(labels);
  json_decref(sel);
  json_decref(body);
  return ret;
}

/* ---- the tables --------------------------------------------------------- */

const struct cli_cmd cli_device_action_cmds[] = {
  {"lock", NULL, cmd_lock, "ID [--expires 24h]",
   "lock a device's screen",
   "Queues a 'lock' command for the device and prints its id, so that "
   "CMD=$(mdmctl lock ID) works; -o json, -o yaml or -o csv print the whole "
   "command. Follow it with 'mdmctl commands show CMD'.",
   device_cmd_opts, 1, 1},
  {"reboot", NULL, cmd_reboot, "ID [--expires 24h]",
   "reboot a device",
   "Queues a 'reboot' command and prints its id (-o json|yaml|csv: the "
   "command).",
   device_cmd_opts, 1, 1},
  {"update", NULL, cmd_update, "ID [--expires 24h] [--params JSON]",
   "install operating system updates on a device",
   "Queues an 'os_update' command and prints its id (-o json|yaml|csv: the "
   "command).",
   device_cmd_opts, 1, 1},
  {"wipe", NULL, cmd_wipe, "[--selective] [--yes] ID [--expires 24h]",
   "erase a device; --selective: its corporate data only",
   "Queues a 'wipe' command (with --selective a 'selective_wipe', which "
   "removes corporate data only) and prints its id (-o json|yaml|csv: the "
   "command). A full wipe cannot be undone: it asks for confirmation on a "
   "terminal, and without a terminal on standard input it is refused "
   "unless --yes is given.",
   wipe_opts, 1, 1},
  {"retire", NULL, cmd_retire, "ID [--wipe selective|full|none] [--yes]",
   "retire a device: wipe it, then stop managing it",
   "Starts the retirement workflow: with --wipe selective (the default) or "
   "full a wipe command is queued and the device is retired once it is "
   "done; with --wipe none it is retired at once. A retired device's token "
   "stops working. Asks for confirmation on a terminal; without a terminal "
   "on standard input it is refused unless --yes is given. -o json|yaml "
   "prints the device.",
   retire_opts, 1, 1},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};

const struct cli_cmd cli_commands_cmds[] = {
  {"commands", "list", commands_list, "ID [--status S] [--limit N]",
   "list a device's commands, newest first",
   "Columns: ID TYPE STATUS ISSUED UPDATED DETAIL; UPDATED is the time of "
   "the latest change of status.",
   list_opts, 1, 1},
  {"commands", "show", commands_show, "CMD_ID",
   "show one command with its times", NULL, NULL, 1, 1},
  {"commands", "cancel", commands_cancel, "CMD_ID",
   "cancel a command the device has not acknowledged yet",
   "Only a 'queued' or 'sent' command can be canceled; after that the "
   "server refuses (exit 1).",
   NULL, 1, 1},
  {"commands", "create", commands_create,
   "--type T [--label K=V]... [--platform P] [--compliance C] [--all] "
   "[--params JSON] [--expires D] [--yes] [ID]",
   "queue a command for one device or for a selection of devices",
   "With ID, one command for that device (its id is printed). Without, one "
   "command for every active device matching all of --label, --platform "
   "and --compliance, and 'N commands created' is printed (-o json: "
   "{count, ids}); an empty selector is refused unless --all is given. "
   "wipe, and selective_wipe for many devices, ask for confirmation on a "
   "terminal and are refused without --yes when standard input is not "
   "one.",
   create_opts, 0, 1},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
