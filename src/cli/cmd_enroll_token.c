/*
 * cmd_enroll_token.c: "mdmctl enroll-token ...": create, list and revoke the
 * enrollment tokens that devices present to enroll (/v1/enrollment-tokens).
 */
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/util.h"

#define PATH_ENROLL_TOKENS "/v1/enrollment-tokens"

/* "USES": uses/max_uses. */
static mdm_rc cell_uses(const json_t *item, struct mdm_buf *out)
{
  const json_t *u = json_object_get(item, "uses");
  const json_t *m = json_object_get(item, "max_uses");
  if(!json_is_integer(u) || !json_is_integer(m))
    return mdm_buf_puts(out, "-");
  return mdm_buf_printf(out, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                        json_integer_value(u), json_integer_value(m));
}

static const struct cli_col enroll_token_cols[] = {
  {"ID", "id", CLI_CELL_TEXT, NULL},
  {"CREATED", "created_at", CLI_CELL_AGO, NULL},
  {"EXPIRES", "expires_at", CLI_CELL_UNTIL, NULL},
  {"USES", NULL, CLI_CELL_TEXT, cell_uses},
  {"LABELS", "labels", CLI_CELL_MAP, NULL},
  {"REVOKED", "revoked", CLI_CELL_YESNO, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

/* ---- enroll-token create ------------------------------------------------ */

static const struct cli_opt create_opts[] = {
  {"--ttl", 0, "DURATION", "how long the token is valid: 90s, 15m, 24h, 7d "
   "(default: the server's, 1h)"},
  {"--uses", 0, "N", "how many devices may enroll with it (default 1)"},
  {"--label", 0, "K=V", "a label every device enrolled with it gets; "
   "repeatable"},
  {NULL, 0, NULL, NULL}
};

static int enroll_token_create(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  json_t *body = NULL, *labels = NULL, *tok = NULL;
  const char *v;
  long long uses = 0;
  int64_t ttl = 0;
  int ret;

  v = cli_args_get(a, "--ttl");
  if(v && (mdm_duration_parse(v, &ttl) || ttl <= 0))
    return cli_usage_error(cli, "invalid value '%s' for --ttl: expected a "
                           "duration such as 3600, 90s, 15m, 24h or 7d", v);
  ret = cli_flag_int(cli, a, "--uses", 1, 1000000000LL, &uses);
  if(!ret)
    ret = cli_flag_labels(cli, a, "--label");
  if(ret)
    return ret;

  ret = CLI_EXIT_FAIL;
  body = json_object();
  if(!body)
    return cli_nomem();
  if((ttl && json_object_set_new(body, "ttl_seconds", json_integer(ttl))) ||
     (uses && json_object_set_new(body, "max_uses", json_integer(uses)))) {
    ret = cli_nomem();
    goto out;
  }
  if(cli_args_has(a, "--label")) {
    labels = json_object();
    if(!labels || json_object_set(body, "labels", labels)) {
      ret = cli_nomem();
      goto out;
    }
    ret = cli_labels_to_json(a, "--label", labels);
    if(ret)
      goto out;
    ret = CLI_EXIT_FAIL;
  }
  c = cli_connect(cli);
  if(!c ||
     cli_client_call(c, "POST", PATH_ENROLL_TOKENS, body, 0, NULL, &tok))
    goto out;
  if(cli_wants_secret_only(cli)) {
    /* The token alone, so that TOKEN=$(mdmctl enroll-token create) works. */
    const char *t = json_string_value(json_object_get(tok, "token"));
    if(!t) {
      cli_error("POST " PATH_ENROLL_TOKENS ": unexpected answer: no 'token'");
      goto out;
    }
    ret = cli_print_line(t);
  }
  else
    ret = cli_print_object(cli, tok);
out:
  json_decref(tok);
  json_decref(labels);
  json_decref(body);
  return ret;
}

/* ---- enroll-token list / revoke ----------------------------------------- */

static int enroll_token_list(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c = cli_connect(cli);
  json_t *items = NULL;
  int ret = CLI_EXIT_FAIL;

  if(c && !cli_client_list(c, PATH_ENROLL_TOKENS, 0, &items))
    ret = cli_print_list(cli, items, enroll_token_cols, "enrollment tokens");
  json_decref(items);
  return ret;
}

static int enroll_token_revoke(struct cli *cli, const struct cli_args *a)
{
  return cli_delete_by_id(cli, PATH_ENROLL_TOKENS, a->pos[0],
                          "enrollment token", "revoked");
}

/* ---- the table ---------------------------------------------------------- */

const struct cli_cmd cli_enroll_token_cmds[] = {
  {"enroll-token", "create", enroll_token_create,
   "[--ttl 24h] [--uses N] [--label K=V]...",
   "create an enrollment token and print it",
   "Only the token is printed, so that TOKEN=$(mdmctl enroll-token create) "
   "works; -o json, -o yaml or -o csv print the whole object (id, token, "
   "expires_at, max_uses, labels).",
   create_opts, 0, 0},
  {"enroll-token", "list", enroll_token_list, "",
   "list enrollment tokens", NULL, NULL, 0, 0},
  {"enroll-token", "revoke", enroll_token_revoke, "ID",
   "revoke an enrollment token", NULL, NULL, 1, 1},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
