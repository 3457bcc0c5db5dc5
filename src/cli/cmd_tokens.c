/*
 * cmd_tokens.c: "mdmctl tokens ...": create, list and delete the admin API
 * tokens of the tenant (/v1/tokens, role owner).
 */
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

#define PATH_TOKENS "/v1/tokens"

static const struct cli_col token_cols[] = {
  {"ID", "id", CLI_CELL_TEXT, NULL},
  {"NAME", "name", CLI_CELL_TEXT, NULL},
  {"ROLE", "role", CLI_CELL_TEXT, NULL},
  {"CREATED", "created_at", CLI_CELL_AGO, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static const struct cli_opt create_opts[] = {
  {"--name", 0, "NAME", "what the token is for (required)"},
  {"--role", 0, "ROLE", "owner, admin, operator, helpdesk or auditor "
   "(required)"},
  {NULL, 0, NULL, NULL}
};

static int tokens_create(struct cli *cli, const struct cli_args *a)
{
  const char *name = cli_args_get(a, "--name");
  const char *role = cli_args_get(a, "--role");
  struct cli_client *c;
  json_t *body, *tok = NULL;
  const char *secret;
  int ret = CLI_EXIT_FAIL;

  if(!name || !*name)
    return cli_usage_error(cli, "missing --name NAME");
  if(!role || !*role)
    return cli_usage_error(cli, "missing --role ROLE");
  body = json_pack("{s:s, s:s}", "name", name, "role", role);
  if(!body)
    return cli_usage_error(cli, "--name and --role must be UTF-8");
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", PATH_TOKENS, body, 0, NULL, &tok))
    goto out;
  secret = json_string_value(json_object_get(tok, "token"));
  if(!secret) {
    cli_error("POST " PATH_TOKENS ": unexpected answer: no 'token'");
    goto out;
  }
  if(cli_wants_secret_only(cli))
    ret = cli_print_line(secret);
  else
    ret = cli_print_object(cli, tok);
  cli_warn("the token is shown only this once; store it now");
out:
  json_decref(tok);
  json_decref(body);
  return ret;
}

static int tokens_list(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c = cli_connect(cli);
  json_t *items = NULL;
  int ret = CLI_EXIT_FAIL;

  if(c && !cli_client_list(c, PATH_TOKENS, 0, &items))
    ret = cli_print_list(cli, items, token_cols, "API tokens");
  json_decref(items);
  return ret;
}

static int tokens_delete(struct cli *cli, const struct cli_args *a)
{
  return cli_delete_by_id(cli, PATH_TOKENS, a->pos[0], "API token", "deleted");
}

const struct cli_cmd cli_tokens_cmds[] = {
  {"tokens", "create", tokens_create, "--name NAME --role ROLE",
   "create an API token and print its secret once",
   "Only the secret is printed, so that TOKEN=$(mdmctl tokens create ...) "
   "works; -o json, -o yaml or -o csv print the whole object. The server "
   "keeps only a hash: the secret cannot be shown again.",
   create_opts, 0, 0},
  {"tokens", "list", tokens_list, "", "list API tokens", NULL, NULL, 0, 0},
  {"tokens", "delete", tokens_delete, "ID",
   "delete an API token; it stops working at once", NULL, NULL, 1, 1},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
