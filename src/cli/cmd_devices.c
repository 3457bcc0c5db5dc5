/*
 * cmd_devices.c: "mdmctl devices ...": list, show, label and set the owner
 * of enrolled devices (GET and PATCH /v1/devices).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

static const struct cli_col device_cols[] = {
  {"ID", "id", CLI_CELL_TEXT, NULL},
  {"HOSTNAME", "hostname", CLI_CELL_TEXT, NULL},
  {"PLATFORM", "platform", CLI_CELL_TEXT, NULL},
  {"OS", "os.name", CLI_CELL_TEXT, NULL},
  {"VERSION", "os.version", CLI_CELL_TEXT, NULL},
  {"COMPLIANCE", "compliance", CLI_CELL_TEXT, NULL},
  {"STATE", "state", CLI_CELL_TEXT, NULL},
  {"LAST SEEN", "last_seen", CLI_CELL_AGO, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

/* ---- devices list ------------------------------------------------------- */

static const struct cli_opt list_opts[] = {
  {"--compliance", 0, "STATE", "only devices in this compliance state "
   "(compliant, noncompliant, unknown)"},
  {"--platform", 0, "P", "only devices of this platform (linux, android, "
   "ios, macos, windows)"},
  {"--label", 0, "K=V", "only devices with this label; repeat to require "
   "several"},
  {"--state", 0, "S", "only devices in this lifecycle state (active, "
   "retired...)"},
  {"--limit", 0, "N", "print at most N devices (default: all)"},
  {NULL, 0, NULL, NULL}
};

static int devices_list(struct cli *cli, const struct cli_args *a)
{
  static const char *const filters[] = {"compliance", "platform", "state",
                                        NULL};
  struct cli_client *c;
  struct mdm_buf path;
  json_t *items = NULL;
  long long limit = 0;
  const char *v;
  int i, ret;

  ret = cli_flag_int(cli, a, "--limit", 1, 1000000000LL, &limit);
  if(!ret)
    ret = cli_flag_labels(cli, a, "--label");
  if(ret)
    return ret;
  c = cli_connect(cli);
  if(!c)
    return CLI_EXIT_FAIL;

  mdm_buf_init(&path, 8192);
  ret = CLI_EXIT_FAIL;
  if(mdm_buf_puts(&path, "/v1/devices"))
    goto out;
  for(i = 0; filters[i]; i++) {
    char flag[32];
    snprintf(flag, sizeof(flag), "--%s", filters[i]);
    v = cli_args_get(a, flag);
    if(v && cli_query_add(&path, filters[i], v))
      goto toolong;
  }
  for(i = 0; cli_args_nth(a, "--label", i); i++)
    if(cli_query_add(&path, "label", cli_args_nth(a, "--label", i)))
      goto toolong;
  if(cli_client_list(c, path.data, (size_t)limit, &items))
    goto out;
  ret = cli_print_list(cli, items, device_cols, "devices");
  goto out;
toolong:
  ret = cli_usage_error(cli, "the filters are too long");
out:
  json_decref(items);
  mdm_buf_release(&path);
  return ret;
}

/* ---- devices show ------------------------------------------------------- */

static int devices_show(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  char *path = NULL;
  json_t *dev = NULL;
  int ret = cli_id_path(cli, "/v1/devices", a->pos[0], &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_call(c, "GET", path, NULL, 0, NULL, &dev))
    ret = cli_print_object(cli, dev);
  json_decref(dev);
  free(path);
  return ret;
}

/* ---- devices label / set-owner ------------------------------------------ */

/* PATCH the device with body; in table mode say done, else print the
 * device the server returns. */
static int patch_device(struct cli *cli, const char *id, json_t *body,
                        const char *done)
{
  struct cli_client *c;
  char *path = NULL;
  json_t *dev = NULL;
  int ret = cli_id_path(cli, "/v1/devices", id, &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_call(c, "PATCH", path, body, 0, NULL, &dev)) {
    if(cli->fmt == CLI_FMT_TABLE) {
      char line[512];
      snprintf(line, sizeof(line), "device %s %s", id, done);
      ret = cli_print_line(line);
    }
    else
      ret = cli_print_object(cli, dev);
  }
  json_decref(dev);
  free(path);
  return ret;
}

static int devices_label(struct cli *cli, const struct cli_args *a)
{
  json_t *labels = json_object(), *body = NULL;
  int i, ret = CLI_EXIT_FAIL;

  if(!labels)
    return cli_nomem();
  for(i = 1; i < a->n_pos; i++) {
    const char *s = a->pos[i];
    size_t klen, len = strlen(s);
    char *key;
    json_t *val;

    if(cli_is_label_pair(s, &klen))
      val = json_string(s + klen + 1);
    else if(len > 1 && s[len - 1] == '-') {
      klen = len - 1;
      val = json_null();
    }
    else {
      ret = cli_usage_error(cli, "invalid label '%s': expected KEY=VALUE to "
                            "set or KEY- to remove", s);
      goto out;
    }
    key = strndup(s, klen);
    if(!key) {
      json_decref(val);
      ret = cli_nomem();
      goto out;
    }
    if(!val) {   /* json_string() refuses what is not UTF-8 */
      free(key);
      ret = cli_usage_error(cli, "invalid label '%s': not UTF-8", s);
      goto out;
    }
    if(json_object_get(labels, key)) {
      ret = cli_usage_error(cli, "label '%s' given twice", key);
      free(key);
      json_decref(val);
      goto out;
    }
    if(json_object_set_new(labels, key, val)) {
      free(key);
      ret = cli_usage_error(cli, "invalid label '%s': not UTF-8", s);
      goto out;
    }
    free(key);
  }
  body = json_pack("{s:O}", "labels", labels);
  if(!body) {
    ret = cli_nomem();
    goto out;
  }
  ret = patch_device(cli, a->pos[0], body, "labeled");
out:
  json_decref(body);
  json_decref(labels);
  return ret;
}

static int devices_set_owner(struct cli *cli, const struct cli_args *a)
{
  json_t *body;
  char done[300];
  int ret;

  if(!*a->pos[1])
    return cli_usage_error(cli, "the owner must not be empty");
  body = json_pack("{s:s}", "user_principal_name", a->pos[1]);
  if(!body)
    return cli_usage_error(cli, "invalid owner '%s': not UTF-8", a->pos[1]);
  snprintf(done, sizeof(done), "owner set to %s", a->pos[1]);
  ret = patch_device(cli, a->pos[0], body, done);
  json_decref(body);
  return ret;
}

/* ---- the table ---------------------------------------------------------- */

const struct cli_cmd cli_devices_cmds[] = {
  {"devices", "list", devices_list,
   "[--compliance STATE] [--platform P] [--label K=V]... [--state S] "
   "[--limit N]",
   "list devices, filtered",
   "Fetches every page (or up to --limit devices). Filters combine with AND.",
   list_opts, 0, 0},
  {"devices", "show", devices_show, "ID",
   "show one device with its facts", NULL, NULL, 1, 1},
  {"devices", "label", devices_label, "ID KEY=VALUE... [KEY-]...",
   "set or remove labels of a device",
   "KEY=VALUE sets a label, KEY- removes it (as kubectl label); labels not "
   "named are kept.",
   NULL, 2, -1},
  {"devices", "set-owner", devices_set_owner, "ID UPN",
   "set the user principal name that owns a device", NULL, NULL, 2, 2},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
