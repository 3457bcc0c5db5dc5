/*
 * cmd_access.c: "mdmctl access evaluate -f CONTEXT.json": the
 * conditional-access what-if (POST /v1/access/evaluate, docs/access.md).
 * Table output: the decision, each reason, then one line per policy;
 * -o json|yaml print the server's answer as it is.  The exit status is 0
 * whatever the decision (the question was answered); scripts read the
 * decision from -o json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/util.h"

#define CTX_MAX (64 * 1024)

static const struct cli_opt evaluate_opts[] = {
  {"--filename", 'f', "FILE", "the sign-in context (JSON; '-' reads "
   "standard input)"},
  {NULL, 0, NULL, NULL}
};

static int read_context(const char *path, json_t **ctx)
{
  json_error_t je;
  char *text = NULL;
  size_t n = 0;
  *ctx = NULL;
  if(!strcmp(path, "-")) {
    size_t cap = CTX_MAX + 1;
    text = malloc(cap);
    if(!text) {
      cli_error("out of memory");
      return CLI_EXIT_FAIL;
    }
    n = fread(text, 1, cap, stdin);
    if(n > CTX_MAX) {
      free(text);
      cli_error("standard input: the context is larger than %d bytes",
                CTX_MAX);
      return CLI_EXIT_FAIL;
    }
  }
  else if(mdm_file_read(path, CTX_MAX, &text, &n)) {
    cli_error("cannot read '%s' (a file of at most %d bytes)", path,
              CTX_MAX);
    return CLI_EXIT_FAIL;
  }
  *ctx = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if(!*ctx || !json_is_object(*ctx)) {
    if(*ctx)
      cli_error("%s: expected a JSON object", path);
    else
      cli_error("%s: line %d: %s", path, je.line, je.text);
    json_decref(*ctx);
    *ctx = NULL;
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

static int access_evaluate(struct cli *cli, const struct cli_args *a)
{
  const char *path = cli_args_get(a, "--filename");
  struct cli_client *c;
  json_t *ctx = NULL, *res = NULL, *v, *p;
  size_t i;
  int ret;

  if(!path)
    return cli_usage_error(cli, "-f CONTEXT.json is required");
  ret = read_context(path, &ctx);
  if(ret)
    return ret;
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", "/v1/access/evaluate", ctx, 0, NULL,
                           &res)) {
    json_decref(ctx);
    return CLI_EXIT_FAIL;
  }
  json_decref(ctx);
  if(cli->fmt != CLI_FMT_TABLE) {
    ret = cli_print_object(cli, res);
    json_decref(res);
    return ret;
  }
  printf("decision: %s\n",
         json_string_value(json_object_get(res, "decision"))
         ? json_string_value(json_object_get(res, "decision")) : "?");
  json_array_foreach(json_object_get(res, "reasons"), i, v) {
    char s[600];
    printf("  %s\n", cli_sanitize(json_string_value(v) ?
                                  json_string_value(v) : "", s, sizeof(s)));
  }
  json_array_foreach(json_object_get(res, "policies"), i, p) {
    char name[200];
    const char *d = json_string_value(json_object_get(p, "decision"));
    printf("policy %s (%s): %s\n",
           cli_sanitize(json_string_value(json_object_get(p, "name")) ?
                        json_string_value(json_object_get(p, "name")) : "",
                        name, sizeof(name)),
           json_string_value(json_object_get(p, "mode")) ?
           json_string_value(json_object_get(p, "mode")) : "?",
           json_is_true(json_object_get(p, "applies")) ? (d ? d : "?")
                                                       : "does not apply");
  }
  json_decref(res);
  return fflush(stdout) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_cmd cli_access_cmds[] = {
  {"access", "evaluate", access_evaluate, "-f CONTEXT.json",
   "evaluate the conditional-access policies for a sign-in (what-if)",
   "The context is CONTRACT §2's: {\"user\": {\"upn\", \"mfa_completed\", "
   "\"password_age_days\"}, \"device_id\", \"application\", "
   "\"client_app_type\", \"network\": {\"ssid\", \"vpn_connected\"}}; "
   "absent fields are unknown. Prints the decision (allow, block or "
   "require_mfa), its reasons and what each policy decided; report-only "
   "policies are shown but never decide.", evaluate_opts, 0, 0},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
