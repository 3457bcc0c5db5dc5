/*
 * main.c: mdmctl's entry point: parse the command line, find the command in
 * the per-noun tables, run it and turn the result into an exit status.
 * Global flags are accepted anywhere: before the noun, between noun and
 * verb, and among the command's own flags.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "cli/cli.h"
#include "cli/client.h"

static const struct cli_opt global_opts[] = {
  {"--server", 0, "URL", "mdmd's base URL (default http://127.0.0.1:8080)"},
  {"--token", 0, "TOKEN", "the API token (visible in ps; prefer --token-file)"},
  {"--token-file", 0, "FILE", "read the API token from the first line of FILE"},
  {"--ca-file", 0, "FILE", "trust the CA certificates in this PEM file"},
  {"--output", 'o', "FORMAT", "table, json, yaml or csv (default: table on a "
   "terminal, json otherwise)"},
  {"--help", 'h', NULL, "show help; 'mdmctl COMMAND --help' for a command"},
  {"--version", 0, NULL, "print the version"},
  {NULL, 0, NULL, NULL}
};

/* Every noun's commands, in the order --help lists them. */
static const struct cli_cmd *const cmd_tables[] = {
  cli_devices_cmds,
  cli_device_action_cmds,
  cli_commands_cmds,
  cli_enroll_token_cmds,
  cli_tokens_cmds,
  cli_audit_cmds,
  cli_report_cmds,
  cli_access_cmds,
  cli_policies_cmds,
  cli_apply_cmds,
};
#define N_TABLES (sizeof(cmd_tables) / sizeof(cmd_tables[0]))

/* ---- help --------------------------------------------------------------- */

/* Print text from column col on, wrapped before column 80. */
static void print_wrapped(FILE *f, const char *text, size_t col)
{
  size_t at = col;
  while(*text) {
    size_t n = strcspn(text, " ");
    if(at > col && at + 1 + n > 79) {
      fprintf(f, "\n%*s", (int)col, "");
      at = col;
    }
    else if(at > col) {
      fputc(' ', f);
      at++;
    }
    fwrite(text, 1, n, f);
    at += n;
    text += n;
    while(*text == ' ')
      text++;
  }
  fputc('\n', f);
}

static void print_opts(FILE *f, const struct cli_opt *opts)
{
  const struct cli_opt *o;
  size_t w = 0;

  for(o = opts; o && o->name; o++) {
    size_t n = strlen(o->name) + (o->arg ? strlen(o->arg) + 1 : 0) +
               (o->short_name ? 4 : 0);
    if(n > w)
      w = n;
  }
  for(o = opts; o && o->name; o++) {
    char lhs[128];
    if(o->short_name)
      snprintf(lhs, sizeof(lhs), "-%c, %s%s%s", o->short_name, o->name,
               o->arg ? " " : "", o->arg ? o->arg : "");
    else
      snprintf(lhs, sizeof(lhs), "%s%s%s", o->name, o->arg ? " " : "",
               o->arg ? o->arg : "");
    fprintf(f, "  %-*s  ", (int)w, lhs);
    print_wrapped(f, o->help, w + 4);
  }
}

static void print_cmd_list(FILE *f, const char *noun)
{
  size_t t, w = 0;
  const struct cli_cmd *c;

  for(t = 0; t < N_TABLES; t++)
    for(c = cmd_tables[t]; c->noun; c++) {
      size_t n = strlen(c->noun) + (c->verb ? strlen(c->verb) + 1 : 0);
      if((!noun || !strcmp(noun, c->noun)) && n > w)
        w = n;
    }
  for(t = 0; t < N_TABLES; t++)
    for(c = cmd_tables[t]; c->noun; c++) {
      char name[128];
      if(noun && strcmp(noun, c->noun))
        continue;
      snprintf(name, sizeof(name), "%s%s%s", c->noun, c->verb ? " " : "",
               c->verb ? c->verb : "");
      fprintf(f, "  %-*s  %s\n", (int)w, name, c->summary);
    }
}

static void print_main_help(FILE *f)
{
  fputs("Usage: mdmctl [FLAGS] COMMAND [ARGS]\n"
        "\n"
        "The admin tool of an mdm server: devices and their commands, "
        "enrollment\ntokens, API tokens, the audit log, and policies as "
        "code (apply, diff,\nexport).\n"
        "\n"
        "Commands:\n", f);
  print_cmd_list(f, NULL);
  fputs("\nFlags (before or after the command):\n", f);
  print_opts(f, global_opts);
  fputs("\n"
        "Server, token and CA file come from the flags, else from MDM_SERVER,\n"
        "MDM_TOKEN, MDM_TOKEN_FILE and MDM_CA_FILE, else from the config file\n"
        "($MDM_CONFIG or ~/.config/mdm/config) of 'key = value' lines:\n"
        "  server = https://mdm.example.com\n"
        "  token_file = ~/.config/mdm/admin.token\n"
        "\n"
        "Run 'mdmctl COMMAND --help' for a command's arguments and flags.\n"
        "Exit status: 0 success, 1 failure, 2 bad usage.\n", f);
}

static void print_noun_help(FILE *f, const char *noun)
{
  size_t t;
  const struct cli_cmd *c;

  fprintf(f, "Usage: mdmctl %s COMMAND [ARGS]\n\nCommands:\n", noun);
  print_cmd_list(f, noun);
  fputs("\n", f);
  for(t = 0; t < N_TABLES; t++)
    for(c = cmd_tables[t]; c->noun; c++)
      if(!strcmp(c->noun, noun))
        fprintf(f, "  mdmctl %s %s%s%s\n", c->noun, c->verb ? c->verb : "",
                *c->synopsis ? " " : "", c->synopsis);
  fprintf(f, "\nRun 'mdmctl %s COMMAND --help' for more; 'mdmctl --help' for "
          "the global flags.\n", noun);
}

static void print_cmd_help(FILE *f, const struct cli_cmd *c)
{
  fprintf(f, "Usage: mdmctl %s%s%s%s%s\n\n%s\n", c->noun, c->verb ? " " : "",
          c->verb ? c->verb : "", *c->synopsis ? " " : "", c->synopsis,
          c->summary);
  if(c->details) {
    fputc('\n', f);
    print_wrapped(f, c->details, 0);
  }
  if(c->opts && c->opts->name) {
    fputs("\nFlags:\n", f);
    print_opts(f, c->opts);
  }
  fputs("\nGlobal flags: --server URL, --token TOKEN, --token-file FILE, "
        "--ca-file FILE,\n-o table|json|yaml|csv (see 'mdmctl --help').\n", f);
}

/* ---- parsing ------------------------------------------------------------ */

/* Report a usage error with a --help hint for topic ("" for the top). */
static int usage_fail(const char *topic, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static int usage_fail(const char *topic, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "mdmctl: %s\nTry 'mdmctl %s%s--help' for more "
          "information.\n", msg, topic, *topic ? " " : "");
  return CLI_EXIT_USAGE;
}

/* Report why cli_args_next() stopped on s. */
static int step_fail(enum cli_args_step step, const char *s,
                     const char *topic)
{
  char name[128];
  size_t n = strcspn(s, "=");

  if(n >= sizeof(name))
    n = sizeof(name) - 1;
  memcpy(name, s, n);
  name[n] = '\0';
  switch(step) {
  case CLI_ARGS_NOVALUE:
    return usage_fail(topic, "flag '%s' needs a value", name);
  case CLI_ARGS_BADVALUE:
    return usage_fail(topic, "flag '%s' takes no value", name);
  case CLI_ARGS_NOMEM:
    return cli_nomem();
  default:
    return usage_fail(topic, "unknown flag '%s'", s[1] == '-' ? name : s);
  }
}

/* Parse argv[*i...] against tables until n_pos positionals are in (or, for
 * want_pos < 0, to the end).  Returns 0 or an exit code. */
static int parse_until(struct cli_args *a, int argc, char **argv, int *i,
                       const struct cli_opt *const *tables, int n_tables,
                       int want_pos, const char *topic)
{
  while(*i < argc && (want_pos < 0 || a->n_pos < want_pos)) {
    enum cli_args_step step = cli_args_next(a, argc, argv, i, tables,
                                            n_tables);
    if(step != CLI_ARGS_OPTION && step != CLI_ARGS_POSITIONAL)
      return step_fail(step, argv[*i], topic);
  }
  return 0;
}

static const struct cli_cmd *find_noun(const char *noun)
{
  size_t t;
  const struct cli_cmd *c;
  for(t = 0; t < N_TABLES; t++)
    for(c = cmd_tables[t]; c->noun; c++)
      if(!strcmp(c->noun, noun))
        return c;
  return NULL;
}

static const struct cli_cmd *find_verb(const char *noun, const char *verb)
{
  size_t t;
  const struct cli_cmd *c;
  for(t = 0; t < N_TABLES; t++)
    for(c = cmd_tables[t]; c->noun; c++)
      if(!strcmp(c->noun, noun) && c->verb && !strcmp(c->verb, verb))
        return c;
  return NULL;
}

/* The value of the global -o/--output, or NULL.  Matched by table entry,
 * not by name: a command may have its own -o (export -o DIR). */
static const char *global_output(const struct cli_args *a)
{
  const struct cli_opt *o = global_opts;
  int k;
  while(o->name && strcmp(o->name, "--output"))
    o++;
  for(k = a->n_vals - 1; k >= 0; k--)
    if(a->vals[k].opt == o)
      return a->vals[k].val;
  return NULL;
}

/* Apply the global flags found anywhere on the line.  Returns 0 or an exit
 * code. */
static int apply_globals(struct cli *cli, const struct cli_args *a,
                         const char *topic)
{
  const char *v;

  cli->server = cli_args_get(a, "--server");
  cli->token = cli_args_get(a, "--token");
  cli->token_file = cli_args_get(a, "--token-file");
  cli->ca_file = cli_args_get(a, "--ca-file");
  if(cli->token && cli->token_file)
    return usage_fail(topic, "%s", "--token and --token-file exclude each "
                      "other");
  v = global_output(a);
  cli->is_fmt_given = v != NULL;
  if(!v)
    cli->fmt = isatty(STDOUT_FILENO) ? CLI_FMT_TABLE : CLI_FMT_JSON;
  else if(!strcmp(v, "table"))
    cli->fmt = CLI_FMT_TABLE;
  else if(!strcmp(v, "json"))
    cli->fmt = CLI_FMT_JSON;
  else if(!strcmp(v, "yaml"))
    cli->fmt = CLI_FMT_YAML;
  else if(!strcmp(v, "csv"))
    cli->fmt = CLI_FMT_CSV;
  else
    return usage_fail(topic, "unknown output format '%s' (expected table, "
                      "json, yaml or csv)", v);
  return 0;
}

/* Parse the whole command line and run the command.  Returns the exit
 * status. */
static int run(struct cli *cli, struct cli_args *a, int argc, char **argv)
{
  const struct cli_opt *tables[2];
  const struct cli_cmd *cmd;
  struct cli_args view;
  char topic[128];
  int i = 1, ret, skip, n;

  /* The noun, with global flags before it. */
  tables[0] = global_opts;
  ret = parse_until(a, argc, argv, &i, tables, 1, 1, "");
  if(ret)
    return ret;
  if(cli_args_has(a, "--version") && a->n_pos == 0) {
    printf("mdmctl %s\n", MDM_VERSION);
    return CLI_EXIT_OK;
  }
  if(a->n_pos == 0) {
    if(cli_args_has(a, "--help")) {
      print_main_help(stdout);
      return CLI_EXIT_OK;
    }
    print_main_help(stderr);
    return CLI_EXIT_USAGE;
  }
  cmd = find_noun(a->pos[0]);
  if(!cmd)
    return usage_fail("", "unknown command '%s'", a->pos[0]);
  snprintf(topic, sizeof(topic), "%s", cmd->noun);

  /* The verb, when the noun has verbs. */
  if(cmd->verb) {
    ret = parse_until(a, argc, argv, &i, tables, 1, 2, topic);
    if(ret)
      return ret;
    if(a->n_pos < 2) {
      if(cli_args_has(a, "--help")) {
        print_noun_help(stdout, cmd->noun);
        return CLI_EXIT_OK;
      }
      if(cli_args_has(a, "--version")) {
        printf("mdmctl %s\n", MDM_VERSION);
        return CLI_EXIT_OK;
      }
      return usage_fail(topic, "'%s' needs a command", cmd->noun);
    }
    cmd = find_verb(a->pos[0], a->pos[1]);
    if(!cmd) {
      return usage_fail(topic, "unknown command '%s %s'", a->pos[0],
                        a->pos[1]);
    }
    snprintf(topic, sizeof(topic), "%s %s", cmd->noun, cmd->verb);
  }
  cli->cmd = cmd;

  /* The command's own flags and arguments, global flags among them. */
  tables[0] = cmd->opts;
  tables[1] = global_opts;
  ret = parse_until(a, argc, argv, &i, tables, 2, -1, topic);
  if(ret)
    return ret;
  if(cli_args_has(a, "--help")) {
    print_cmd_help(stdout, cmd);
    return CLI_EXIT_OK;
  }
  if(cli_args_has(a, "--version")) {
    printf("mdmctl %s\n", MDM_VERSION);
    return CLI_EXIT_OK;
  }
  ret = apply_globals(cli, a, topic);
  if(ret)
    return ret;

  skip = cmd->verb ? 2 : 1;
  n = a->n_pos - skip;
  if(n < cmd->min_pos)
    return cli_usage_error(cli, "missing arguments; usage: mdmctl %s %s",
                           topic, cmd->synopsis);
  if(cmd->max_pos >= 0 && n > cmd->max_pos)
    return cli_usage_error(cli, "unexpected argument '%s'",
                           a->pos[skip + cmd->max_pos]);
  view = *a;
  view.pos = a->pos + skip;
  view.n_pos = n;
  return cmd->run(cli, &view);
}

int main(int argc, char **argv)
{
  struct cli cli;
  struct cli_args a;
  int ret;

  memset(&cli, 0, sizeof(cli));
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    cli_error("cannot initialise libcurl");
    return CLI_EXIT_FAIL;
  }
  if(cli_args_init(&a, argc)) {
    curl_global_cleanup();
    return cli_nomem();
  }
  ret = run(&cli, &a, argc, argv);
  cli_client_free(cli.client);
  cli_args_release(&a);
  curl_global_cleanup();

  if(fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("cannot write to standard output: %s", strerror(errno));
    ret = CLI_EXIT_FAIL;
  }
  return ret;
}
