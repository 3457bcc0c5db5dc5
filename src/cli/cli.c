/*
 * cli.c: the helpers every mdmctl command uses: error lines, flag values,
 * labels, resource paths, and opening the client from the configuration.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/config.h"
#include "cli/output.h"
#include "core/buf.h"
#include "core/util.h"

static void vline(const char *prefix, const char *fmt, va_list ap)
{
  char msg[2048];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  fprintf(stderr, "mdmctl: %s%s\n", prefix, msg);
}

void cli_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vline("", fmt, ap);
  va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vline("warning: ", fmt, ap);
  va_end(ap);
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vline("", fmt, ap);
  va_end(ap);
  if(cli && cli->cmd)
    fprintf(stderr, "Try 'mdmctl %s%s%s --help' for more information.\n",
            cli->cmd->noun, cli->cmd->verb ? " " : "",
            cli->cmd->verb ? cli->cmd->verb : "");
  else
    fputs("Try 'mdmctl --help' for more information.\n", stderr);
  return CLI_EXIT_USAGE;
}

int cli_nomem(void)
{
  cli_error("out of memory");
  return CLI_EXIT_FAIL;
}

int cli_wants_secret_only(const struct cli *cli)
{
  return !cli->is_fmt_given || cli->fmt == CLI_FMT_TABLE;
}

int cli_is_label_pair(const char *s, size_t *key_len)
{
  const char *eq = strchr(s, '=');
  if(!eq || eq == s)
    return 0;
  *key_len = (size_t)(eq - s);
  return 1;
}

int cli_flag_int(const struct cli *cli, const struct cli_args *a,
                 const char *flag, long long min, long long max,
                 long long *out)
{
  const char *v = cli_args_get(a, flag);
  if(!v)
    return CLI_EXIT_OK;
  if(mdm_parse_int(v, min, max, out))
    return cli_usage_error(cli, "invalid value '%s' for %s: expected an "
                           "integer in %lld..%lld", v, flag, min, max);
  return CLI_EXIT_OK;
}

int cli_flag_labels(const struct cli *cli, const struct cli_args *a,
                    const char *flag)
{
  const char *v;
  size_t klen;
  int i;
  for(i = 0; cli_args_nth(a, flag, i); i++) {
    json_t *probe;

    v = cli_args_nth(a, flag, i);
    if(!cli_is_label_pair(v, &klen))
      return cli_usage_error(cli, "invalid value '%s' for %s: expected "
                             "KEY=VALUE", v, flag);
    probe = json_string(v);   /* NULL when v is not UTF-8 */
    if(!probe)
      return cli_usage_error(cli, "invalid value '%s' for %s: not UTF-8", v,
                             flag);
    json_decref(probe);
  }
  return CLI_EXIT_OK;
}

int cli_labels_to_json(const struct cli_args *a, const char *flag,
                       json_t *labels)
{
  const char *v;
  size_t klen;
  int i;
  for(i = 0; cli_args_nth(a, flag, i); i++) {
    char *key;
    int r;

    v = cli_args_nth(a, flag, i);
    if(!cli_is_label_pair(v, &klen))
      continue;
    key = strndup(v, klen);
    if(!key)
      return cli_nomem();
    r = json_object_set_new(labels, key, json_string(v + klen + 1));
    free(key);
    if(r)
      return cli_nomem();
  }
  return CLI_EXIT_OK;
}

int cli_id_path(const struct cli *cli, const char *prefix, const char *id,
                char **out)
{
  struct mdm_buf b;
  if(!*id || !strcmp(id, ".") || !strcmp(id, ".."))
    return cli_usage_error(cli, "invalid ID '%s'", id);
  mdm_buf_init(&b, 8192);
  if(mdm_buf_puts(&b, prefix) || mdm_buf_puts(&b, "/") ||
     cli_path_add(&b, id)) {
    mdm_buf_release(&b);
    return cli_usage_error(cli, "invalid ID: too long");
  }
  *out = mdm_buf_steal(&b);
  return CLI_EXIT_OK;
}

int cli_delete_by_id(struct cli *cli, const char *prefix, const char *id,
                     const char *what, const char *done)
{
  struct cli_client *c;
  char *path = NULL;
  json_t *res = NULL;
  int ret = cli_id_path(cli, prefix, id, &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_call(c, "DELETE", path, NULL, 0, NULL, &res)) {
    ret = CLI_EXIT_OK;
    if(cli->fmt == CLI_FMT_TABLE) {
      char line[512];
      snprintf(line, sizeof(line), "%s %s %s", what, id, done);
      ret = cli_print_line(line);
    }
  }
  json_decref(res);
  free(path);
  return ret;
}

struct cli_client *cli_connect(struct cli *cli)
{
  struct cli_conf conf;
  struct cli_conf_flags f;
  char err[1024];
  mdm_rc rc;

  if(cli->client)
    return cli->client;
  f.server = cli->server;
  f.token = cli->token;
  f.token_file = cli->token_file;
  f.ca_file = cli->ca_file;
  rc = cli_conf_load(&conf, &f, err, sizeof(err));
  if(rc) {
    cli_error("%s", err);
    return NULL;
  }
  if(!conf.token) {
    cli_error("no API token: use --token-file FILE (mdmd writes "
              "<data-dir>/admin.token), --token TOKEN, MDM_TOKEN_FILE, "
              "MDM_TOKEN, or 'token_file = FILE' in %s",
              conf.config_path ? conf.config_path : "~/.config/mdm/config");
    cli_conf_release(&conf);
    return NULL;
  }
  rc = cli_client_new(&conf, &cli->client, err, sizeof(err));
  cli_conf_release(&conf);
  if(rc) {
    cli_error("%s", err);
    return NULL;
  }
  return cli->client;
}
