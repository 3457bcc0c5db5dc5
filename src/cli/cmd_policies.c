/*
 * cmd_policies.c: "mdmctl policies ...": list, show and delete the policy
 * documents stored on the server one at a time (GET and DELETE
 * /v1/policies).  Changing them is "mdmctl apply" (cmd_apply.c), which
 * works on whole sets from files.
 *
 * A KIND argument is the kind as documents write it (CompliancePolicy) or
 * in the lower-case dashed form that "mdmctl export" uses for directories
 * (compliance-policy).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "policy/doc.h"

#define PATH_POLICIES "/v1/policies"

static const struct cli_col policy_cols[] = {
  {"KIND", "kind", CLI_CELL_TEXT, NULL},
  {"NAME", "name", CLI_CELL_TEXT, NULL},
  {"VERSION", "version", CLI_CELL_TEXT, NULL},
  {"UPDATED", "updated_at", CLI_CELL_AGO, NULL},
  {"AUTHOR", "author", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

/* KIND as the server names it: "compliance-policy" -> "CompliancePolicy";
 * anything with a capital letter is taken as it is.  Returns an exit code
 * (a usage error for an empty or overlong kind). */
static int kind_arg(const struct cli *cli, const char *s, char *out,
                    size_t n)
{
  size_t i, k = 0;
  int is_upper = 0, is_start = 1;

  for(i = 0; s[i]; i++)
    if(s[i] >= 'A' && s[i] <= 'Z')
      is_upper = 1;
  if(!*s || strlen(s) >= n)
    return cli_usage_error(cli, "invalid kind '%s'", s);
  if(is_upper) {
    memcpy(out, s, strlen(s) + 1);
    return CLI_EXIT_OK;
  }
  for(i = 0; s[i]; i++) {
    if(s[i] == '-') {
      is_start = 1;
      continue;
    }
    out[k++] = is_start && s[i] >= 'a' && s[i] <= 'z'
               ? (char)(s[i] - 'a' + 'A') : s[i];
    is_start = 0;
  }
  out[k] = '\0';
  if(!k)
    return cli_usage_error(cli, "invalid kind '%s'", s);
  return CLI_EXIT_OK;
}

/* "/v1/policies/KIND/NAME" (percent-encoded) into *out; caller frees. */
static int policy_path(const struct cli *cli, const char *kind_in,
                       const char *name, char **out)
{
  struct mdm_buf b;
  char kind[128];
  int ret = kind_arg(cli, kind_in, kind, sizeof(kind));

  if(ret)
    return ret;
  if(!*name || !strcmp(name, ".") || !strcmp(name, ".."))
    return cli_usage_error(cli, "invalid name '%s'", name);
  mdm_buf_init(&b, 8192);
  if(mdm_buf_puts(&b, PATH_POLICIES "/") || cli_path_add(&b, kind) ||
     mdm_buf_puts(&b, "/") || cli_path_add(&b, name)) {
    mdm_buf_release(&b);
    return cli_usage_error(cli, "invalid name: too long");
  }
  *out = mdm_buf_steal(&b);
  return CLI_EXIT_OK;
}

/* ---- policies list ------------------------------------------------------ */

static const struct cli_opt list_opts[] = {
  {"--kind", 0, "KIND", "only documents of this kind (CompliancePolicy or "
   "compliance-policy, ConfigurationProfile...)"},
  {NULL, 0, NULL, NULL}
};

static int policies_list(struct cli *cli, const struct cli_args *a)
{
  const char *k = cli_args_get(a, "--kind");
  struct cli_client *c;
  struct mdm_buf path;
  json_t *items = NULL;
  char kind[128];
  int ret;

  if(k) {
    ret = kind_arg(cli, k, kind, sizeof(kind));
    if(ret)
      return ret;
  }
  mdm_buf_init(&path, 8192);
  ret = CLI_EXIT_FAIL;
  if(mdm_buf_puts(&path, PATH_POLICIES) ||
     (k && cli_query_add(&path, "kind", kind))) {
    ret = cli_nomem();
    goto out;
  }
  c = cli_connect(cli);
  if(c && !cli_client_list(c, path.data, 0, &items))
    ret = cli_print_list(cli, items, policy_cols, "policies");
out:
  json_decref(items);
  mdm_buf_release(&path);
  return ret;
}

/* ---- policies show ------------------------------------------------------ */

static int policies_show(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  char *path = NULL, *yaml = NULL;
  json_t *p = NULL, *doc;
  int ret = policy_path(cli, a->pos[0], a->pos[1], &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "GET", path, NULL, 0, NULL, &p))
    goto out;
  doc = json_object_get(p, "document");
  if(cli->fmt == CLI_FMT_JSON || cli->fmt == CLI_FMT_CSV) {
    ret = cli_print_object(cli, p);
    goto out;
  }
  if(!json_is_object(doc)) {
    cli_error("GET %s: unexpected answer: no 'document'", path);
    goto out;
  }
  if(mdm_doc_to_yaml(doc, &yaml)) {
    ret = cli_nomem();
    goto out;
  }
  if(cli->fmt == CLI_FMT_TABLE) {
    /* The stored policy's own fields as YAML comments: the output is
     * still a document that apply reads. */
    const char *fields[] = {"version", "hash", "author", "created_at",
                            "updated_at", NULL};
    size_t i;
    for(i = 0; fields[i]; i++) {
      json_t *v = json_object_get(p, fields[i]);
      char s[256];
      if(json_is_integer(v))
        printf("# %s: %" JSON_INTEGER_FORMAT "\n", fields[i],
               json_integer_value(v));
      else if(json_is_string(v))
        printf("# %s: %s\n", fields[i],
               cli_sanitize(json_string_value(v), s, sizeof(s)));
    }
  }
  /* mdm_doc_to_yaml() escapes control characters in strings. */
  ret = fputs(yaml, stdout) == EOF ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  free(yaml);
  json_decref(p);
  free(path);
  return ret;
}

/* ---- policies delete ---------------------------------------------------- */

static int policies_delete(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  char *path = NULL;
  json_t *res = NULL;
  int ret = policy_path(cli, a->pos[0], a->pos[1], &path);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "DELETE", path, NULL, 0, NULL, &res))
    goto out;
  /* The server lists every stored document (the others "unchanged"); the
   * text report names only the deleted one. */
  if(!cli->is_fmt_given || cli->fmt == CLI_FMT_TABLE) {
    json_t *all = json_object_get(res, "results"), *r, *keep = json_array();
    size_t i;
    json_array_foreach(all, i, r) {
      const char *act = json_string_value(json_object_get(r, "action"));
      if(keep && act && strcmp(act, "unchanged"))
        json_array_append(keep, r);
    }
    if(!keep || json_object_set_new(res, "results", keep)) {
      ret = cli_nomem();
      goto out;
    }
  }
  ret = cli_print_apply_result(cli, res, NULL, 0);
out:
  json_decref(res);
  free(path);
  return ret;
}

/* ---- the table ---------------------------------------------------------- */

const struct cli_cmd cli_policies_cmds[] = {
  {"policies", "list", policies_list, "[--kind KIND]",
   "list the policy documents stored on the server",
   "-o json includes each document.", list_opts, 0, 0},
  {"policies", "show", policies_show, "KIND NAME",
   "show one policy document",
   "Prints the document as YAML that 'mdmctl apply' reads, after its "
   "version, hash, author and times as '#' comments; -o yaml prints the "
   "document alone, -o json the stored policy (kind, name, version, hash, "
   "author, created_at, updated_at, document).",
   NULL, 2, 2},
  {"policies", "delete", policies_delete, "KIND NAME",
   "delete one policy document",
   "Devices are re-evaluated at once; prints the devices whose compliance "
   "state changed.",
   NULL, 2, 2},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
