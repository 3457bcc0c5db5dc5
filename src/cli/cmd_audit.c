/*
 * cmd_audit.c: "mdmctl audit ...": read the tenant's audit log and check its
 * hash chain (/v1/audit, /v1/audit/verify).
 */
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

static const struct cli_col audit_cols[] = {
  {"SEQ", "seq", CLI_CELL_TEXT, NULL},
  {"AT", "at", CLI_CELL_TEXT, NULL},
  {"ACTOR", "actor", CLI_CELL_TEXT, NULL},
  {"ACTION", "action", CLI_CELL_TEXT, NULL},
  {"TARGET", "target", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static const struct cli_opt list_opts[] = {
  {"--limit", 0, "N", "print at most the N oldest records (default: all)"},
  {NULL, 0, NULL, NULL}
};

static int audit_list(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  json_t *items = NULL;
  long long limit = 0;
  int ret = cli_flag_int(cli, a, "--limit", 1, 1000000000LL, &limit);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_list(c, "/v1/audit", (size_t)limit, &items))
    ret = cli_print_list(cli, items, audit_cols, "audit records");
  json_decref(items);
  return ret;
}

static int audit_verify(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c = cli_connect(cli);
  json_t *res = NULL, *ok, *bad;
  int ret = CLI_EXIT_FAIL;

  if(!c || cli_client_call(c, "GET", "/v1/audit/verify", NULL, 0, NULL, &res))
    goto out;
  ok = json_object_get(res, "ok");
  bad = json_object_get(res, "first_bad");
  if(!json_is_boolean(ok)) {
    cli_error("GET /v1/audit/verify: unexpected answer: no boolean 'ok'");
    goto out;
  }
  if(cli->fmt != CLI_FMT_TABLE && cli_print_object(cli, res))
    goto out;
  if(json_is_true(ok)) {
    ret = CLI_EXIT_OK;
    if(cli->fmt == CLI_FMT_TABLE) {
      char line[128];
      snprintf(line, sizeof(line), "audit chain ok: %" JSON_INTEGER_FORMAT
               " records", json_integer_value(json_object_get(res, "records")));
      ret = cli_print_line(line);
    }
  }
  else if(json_is_integer(bad))
    cli_error("audit chain broken at seq %" JSON_INTEGER_FORMAT,
              json_integer_value(bad));
  else if(json_is_string(bad)) {
    char s[64];
    cli_error("audit chain broken at seq %s",
              cli_sanitize(json_string_value(bad), s, sizeof(s)));
  }
  else
    cli_error("audit chain broken");
out:
  json_decref(res);
  return ret;
}

const struct cli_cmd cli_audit_cmds[] = {
  {"audit", "list", audit_list, "[--limit N]",
   "list audit records, oldest first", NULL, list_opts, 0, 0},
  {"audit", "verify", audit_verify, "",
   "check the audit log's hash chain",
   "Exits 0 when the chain is intact, 1 with \"audit chain broken at seq N\" "
   "when it is not.",
   NULL, 0, 0},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
