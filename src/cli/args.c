/*
 * args.c: mdmctl's command-line parser (see args.h).
 */
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"

int cli_args_init(struct cli_args *a, int argc)
{
  size_t n = argc > 0 ? (size_t)argc : 1;
  memset(a, 0, sizeof(*a));
  a->vals = calloc(n, sizeof(*a->vals));
  a->pos = calloc(n, sizeof(*a->pos));
  if(!a->vals || !a->pos) {
    cli_args_release(a);
    return -1;
  }
  return 0;
}

void cli_args_release(struct cli_args *a)
{
  free(a->vals);
  free(a->pos);
  a->vals = NULL;
  a->pos = NULL;
  a->n_vals = a->n_pos = 0;
}

/* Find the option whose long name is the first name_len bytes of name. */
static const struct cli_opt *find_long(const struct cli_opt *const *tables,
                                       int n_tables, const char *name,
                                       size_t name_len)
{
  int t;
  for(t = 0; t < n_tables; t++) {
    const struct cli_opt *o;
    for(o = tables[t]; o && o->name; o++)
      if(strlen(o->name) == name_len && !strncmp(o->name, name, name_len))
        return o;
  }
  return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *const *tables,
                                        int n_tables, char c)
{
  int t;
  for(t = 0; t < n_tables; t++) {
    const struct cli_opt *o;
    for(o = tables[t]; o && o->name; o++)
      if(o->short_name && o->short_name == c)
        return o;
  }
  return NULL;
}

enum cli_args_step cli_args_next(struct cli_args *a, int argc, char **argv,
                                 int *i, const struct cli_opt *const *tables,
                                 int n_tables)
{
  const char *s = argv[*i];
  const struct cli_opt *o;
  const char *val = NULL;
  int has_inline = 0;

  if(a->is_past_dashdash || s[0] != '-' || s[1] == '\0') {
    a->pos[a->n_pos++] = s;
    (*i)++;
    return CLI_ARGS_POSITIONAL;
  }
  if(!strcmp(s, "--")) {
    a->is_past_dashdash = 1;
    (*i)++;
    return CLI_ARGS_OPTION;
  }
  if(s[1] == '-') {
    const char *eq = strchr(s, '=');
    size_t name_len = eq ? (size_t)(eq - s) : strlen(s);
    o = find_long(tables, n_tables, s, name_len);
    if(!o)
      return CLI_ARGS_UNKNOWN;
    if(eq) {
      val = eq + 1;
      has_inline = 1;
    }
  }
  else {
    o = find_short(tables, n_tables, s[1]);
    if(!o)
      return CLI_ARGS_UNKNOWN;
    if(s[2]) {
      if(!o->arg)
        return CLI_ARGS_UNKNOWN;   /* "-hx": no bundling of boolean flags */
      val = s[2] == '=' ? s + 3 : s + 2;
      has_inline = 1;
    }
  }
  if(!o->arg) {
    if(has_inline)
      return CLI_ARGS_BADVALUE;
    val = NULL;
  }
  else if(!has_inline) {
    if(*i + 1 >= argc)
      return CLI_ARGS_NOVALUE;
    val = argv[*i + 1];
    (*i)++;
  }
  a->vals[a->n_vals].opt = o;
  a->vals[a->n_vals].val = val;
  a->n_vals++;
  (*i)++;
  return CLI_ARGS_OPTION;
}

const char *cli_args_get(const struct cli_args *a, const char *name)
{
  int k;
  for(k = a->n_vals - 1; k >= 0; k--)
    if(!strcmp(a->vals[k].opt->name, name))
      return a->vals[k].val ? a->vals[k].val : "";
  return NULL;
}

int cli_args_has(const struct cli_args *a, const char *name)
{
  return cli_args_get(a, name) != NULL;
}

const char *cli_args_nth(const struct cli_args *a, const char *name, int idx)
{
  int k;
  for(k = 0; k < a->n_vals; k++)
    if(!strcmp(a->vals[k].opt->name, name) && idx-- == 0)
      return a->vals[k].val ? a->vals[k].val : "";
  return NULL;
}
