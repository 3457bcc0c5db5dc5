/*
 * args.h: mdmctl's command-line parser.  Flags are described by tables of
 * struct cli_opt; the parser takes one argv element at a time so that main.c
 * can accept global flags anywhere (before the noun, between noun and verb,
 * after the verb) while a command's own flags are known only once the
 * command is.  Accepted forms: "--name VALUE", "--name=VALUE", "-o VALUE",
 * "-oVALUE", "-o=VALUE", boolean "--flag"; "--" ends the flags.  When a flag
 * is given twice the last value wins, except for flags marked repeatable,
 * which keep every value in order.
 */
#ifndef MDM_CLI_ARGS_H
#define MDM_CLI_ARGS_H

#include <stddef.h>

struct cli_opt {
  const char *name;      /* long form with dashes: "--limit"; NULL ends a table */
  char short_name;       /* 'o' for "-o", or 0 */
  const char *arg;       /* name of the value ("N"), NULL for a boolean flag */
  const char *help;      /* one line for --help */
};

struct cli_optval {
  const struct cli_opt *opt;  /* borrowed from the table */
  const char *val;            /* borrowed from argv; NULL for a boolean */
};

/* The parsed command line.  Everything points into argv and the option
 * tables; only the two arrays are owned. */
struct cli_args {
  struct cli_optval *vals;    /* in command-line order */
  int n_vals;
  const char **pos;           /* positional arguments, noun and verb included */
  int n_pos;
  int is_past_dashdash;       /* "--" seen: the rest is positional */
};

enum cli_args_step {
  CLI_ARGS_OPTION,      /* a flag (and its value) was consumed */
  CLI_ARGS_POSITIONAL,  /* a positional argument was consumed */
  CLI_ARGS_UNKNOWN,     /* argv[*i] is a flag no table knows */
  CLI_ARGS_NOVALUE,     /* argv[*i] is a flag that needs a value and has none */
  CLI_ARGS_BADVALUE,    /* argv[*i] is a boolean flag given "=VALUE" */
  CLI_ARGS_NOMEM
};

/* Prepare a for a command line of argc elements.  Returns 0, -1 when out of
 * memory.  Release with cli_args_release(). */
int cli_args_init(struct cli_args *a, int argc);
void cli_args_release(struct cli_args *a);

/* Consume argv[*i] (and its value) against the n_tables tables; advances *i
 * past what was consumed, except on an error, where *i stays on the
 * offending element. */
enum cli_args_step cli_args_next(struct cli_args *a, int argc, char **argv,
                                 int *i, const struct cli_opt *const *tables,
                                 int n_tables);

/* The last value of the flag named name ("--limit"), or NULL if absent.
 * For a boolean flag the value is "" when present. */
const char *cli_args_get(const struct cli_args *a, const char *name);
/* Was the flag given at all? */
int cli_args_has(const struct cli_args *a, const char *name);
/* The idx-th value (0-based, command-line order) of a repeatable flag, or
 * NULL past the last. */
const char *cli_args_nth(const struct cli_args *a, const char *name, int idx);

#endif
