/*
 * cli.h: what the parts of mdmctl share.  main.c parses the command line and
 * dispatches through tables of struct cli_cmd, one table per noun, each in its
 * own cmd_<noun>.c; a handler gets the parsed arguments (args.h), talks to the
 * server through client.h and prints with output.h.  Adding a command is one
 * row in its noun's table and one handler beside it; adding a noun is one new
 * file and one line in main.c's list of tables.
 *
 * mdmctl is a program, not a library: its internal names use the prefix cli_.
 * It never includes server or store headers, only src/core.
 */
#ifndef MDM_CLI_H
#define MDM_CLI_H

#include <stddef.h>
#include <jansson.h>
#include "cli/args.h"

/* Exit codes (CONTRACT §1). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

enum cli_format { CLI_FMT_TABLE, CLI_FMT_JSON, CLI_FMT_YAML, CLI_FMT_CSV };

struct cli_client;
struct cli_cmd;

/* The state of one mdmctl run: global flags and the lazily opened client. */
struct cli {
  enum cli_format fmt;
  int is_fmt_given;              /* -o was on the command line */
  /* Global flags as given on the command line (borrowed from argv; NULL when
   * absent).  The environment and the config file fill in the rest when the
   * client is opened. */
  const char *server;
  const char *token;
  const char *token_file;
  const char *ca_file;
  const struct cli_cmd *cmd;     /* the command being run */
  struct cli_client *client;     /* NULL until cli_connect() */
};

/* A command handler.  Returns an exit code (CLI_EXIT_*); on failure it has
 * printed exactly one line on stderr (two for usage errors: the error and a
 * hint). */
typedef int (*cli_handler)(struct cli *cli, const struct cli_args *a);

struct cli_cmd {
  const char *noun;          /* "devices" */
  const char *verb;          /* "list"; NULL when the noun alone is the command */
  cli_handler run;
  const char *synopsis;      /* arguments after "mdmctl NOUN VERB" */
  const char *summary;       /* one line for --help, lower case */
  const char *details;       /* more for "mdmctl NOUN VERB --help", or NULL */
  const struct cli_opt *opts;/* the command's own flags; NULL or {NULL}-ended */
  int min_pos;               /* positional arguments accepted */
  int max_pos;               /* -1: no upper bound */
};

/* The command tables, each ended by an entry whose noun is NULL. */
extern const struct cli_cmd cli_devices_cmds[];
extern const struct cli_cmd cli_enroll_token_cmds[];
extern const struct cli_cmd cli_tokens_cmds[];
extern const struct cli_cmd cli_audit_cmds[];
extern const struct cli_cmd cli_report_cmds[];   /* report compliance */
extern const struct cli_cmd cli_access_cmds[];   /* access evaluate */
extern const struct cli_cmd cli_policies_cmds[];
extern const struct cli_cmd cli_apply_cmds[];   /* apply, diff, export */
/* lock, reboot, update, wipe, retire (cmd_commands.c) */
extern const struct cli_cmd cli_device_action_cmds[];
extern const struct cli_cmd cli_commands_cmds[];

/* Print the answer of POST /v1/policies:apply (or of a policy PUT/DELETE):
 * per document "ACTION KIND/NAME (vN)", deletions marked loudly, and the
 * compliance summary; -o json|yaml print res as it is.  path (may be NULL)
 * names the source of the documents in the --prune warning, given when
 * is_prune.  Returns an exit code.  (cmd_apply.c) */
int cli_print_apply_result(struct cli *cli, const json_t *res,
                           const char *path, int is_prune);

/* Print "mdmctl: MESSAGE" and a newline on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "mdmctl: warning: MESSAGE" and a newline on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Report a usage error for the current command: the message, then a line
 * pointing at --help.  Returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* Open the HTTP client on first use: resolves server, token and CA file from
 * flags, environment and config file.  On failure prints the one error line
 * and returns NULL.  The client belongs to cli and is freed by main. */
struct cli_client *cli_connect(struct cli *cli);

/* Is s "K=V" with a non-empty K?  *key_len gets the length of K; the value
 * starts at s + *key_len + 1. */
int cli_is_label_pair(const char *s, size_t *key_len /* OUT */);

/* Read the integer value of flag (e.g. "--limit") into *out when present
 * (*out is left alone otherwise).  Returns CLI_EXIT_OK, or CLI_EXIT_USAGE
 * after reporting a value outside [min, max]. */
int cli_flag_int(const struct cli *cli, const struct cli_args *a,
                 const char *flag, long long min, long long max,
                 long long *out /* OUT */);

/* Validate every value of the repeatable flag as K=V.  Returns
 * CLI_EXIT_OK, or CLI_EXIT_USAGE after reporting the first bad one. */
int cli_flag_labels(const struct cli *cli, const struct cli_args *a,
                    const char *flag);

/* Add the K=V values of the repeatable flag to the object labels. */
int cli_labels_to_json(const struct cli_args *a, const char *flag,
                       json_t *labels);

/* Build "prefix/ID" in *out (caller frees) with id percent-encoded; an
 * empty id, "." or ".." is a usage error.  Returns an exit code. */
int cli_id_path(const struct cli *cli, const char *prefix, const char *id,
                char **out /* OUT */);

/* DELETE prefix/ID; in table mode print "<what> ID <done>" (e.g. "API token
 * X deleted").  Returns an exit code. */
int cli_delete_by_id(struct cli *cli, const char *prefix, const char *id,
                     const char *what, const char *done);

/* Should a create command print only the secret it got?  Yes unless
 * -o json, yaml or csv was asked for: so that TOKEN=$(mdmctl ... create)
 * works although output to a pipe is JSON by default. */
int cli_wants_secret_only(const struct cli *cli);

/* Print the one line for running out of memory; returns CLI_EXIT_FAIL. */
int cli_nomem(void);

#endif
