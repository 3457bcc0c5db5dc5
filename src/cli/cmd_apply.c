/*
 * cmd_apply.c: policies as code: "mdmctl apply", "mdmctl diff" and
 * "mdmctl export" (CONTRACT §1, §6).  apply and diff read a file or a
 * directory of policy documents with the loader of libmdm (policy/doc.h) and
 * validate them locally, so an invalid file is reported as
 * "FILE: line N: FIELD: what is wrong" before anything is sent; apply then
 * posts the whole set to /v1/policies:apply, diff compares it with
 * GET /v1/policies.  export writes the server's documents back as YAML
 * files that apply reads back unchanged.
 *
 * These are CI commands: they print their human-readable report unless -o
 * json|yaml|csv is given explicitly (the usual "JSON when not a terminal"
 * rule would turn a CI log into JSON).  Colors are used only on a terminal
 * and never with NO_COLOR set.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/util.h"
#include "policy/doc.h"
#include "policy/eval.h"

#define PATH_POLICIES "/v1/policies"
#define PATH_APPLY "/v1/policies:apply"
#define MAX_HOST_LOOKUPS 20          /* hostnames fetched for a summary */
#define DIFF_CONTEXT 3               /* lines around a change */
#define MAX_LCS_CELLS (8u * 1024 * 1024)
#define MAX_DIFF_TEXT (64u * 1024 * 1024)

#define C_RED "\033[1;31m"
#define C_GREEN "\033[32m"
#define C_MINUS "\033[31m"
#define C_CYAN "\033[36m"
#define C_BOLD "\033[1m"
#define C_OFF "\033[0m"

/* ======================================================================
 * Shared helpers
 * ====================================================================== */

/* The human-readable report unless a machine format was asked for. */
static int is_text_output(const struct cli *cli)
{
  return !cli->is_fmt_given || cli->fmt == CLI_FMT_TABLE;
}

static int use_color(void)
{
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
  if(nc && *nc)
    return 0;
  if(term && !strcmp(term, "dumb"))
    return 0;
  return isatty(STDOUT_FILENO);
}

/* The last value of the flag o (an entry of a command's own table), or
 * NULL.  By entry, not by name: export's -o is not the global -o. */
static const char *own_flag(const struct cli_args *a, const struct cli_opt *o)
{
  int k;
  for(k = a->n_vals - 1; k >= 0; k--)
    if(a->vals[k].opt == o)
      return a->vals[k].val ? a->vals[k].val : "";
  return NULL;
}

/* The line in d of the field that text starts with ("spec.rules[0].op: ..."),
 * or the document's first line. */
static int field_line(const struct mdm_doc *d, const char *text)
{
  size_t n = strcspn(text, " :");
  char field[512];

  if(!n || n >= sizeof(field) || text[n] != ':' || text[n + 1] != ' ')
    return d->line;
  memcpy(field, text, n);
  field[n] = '\0';
  return mdm_doc_line(d, field);
}

/* Compile each CompliancePolicy as the server will: its evaluator is
 * stricter than the document validator in places (a version such as
 * "12 " passes the one and not the other). */
static mdm_rc compile_check(const struct mdm_docset *ds, char *err,
                            size_t errlen)
{
  size_t i;
  for(i = 0; i < ds->n_docs; i++) {
    const struct mdm_doc *d = &ds->docs[i];
    struct mdm_cpolicy *cp = NULL;
    char msg[1024];
    mdm_rc rc;

    if(strcmp(mdm_doc_kind(d), "CompliancePolicy"))
      continue;
    msg[0] = '\0';
    rc = mdm_cpolicy_compile(d->json, &cp, msg, sizeof(msg));
    mdm_cpolicy_free(cp);
    if(rc == MDM_ERR_NOMEM)
      return rc;
    if(rc) {
      snprintf(err, errlen, "%s: line %d: %s", d->file, field_line(d, msg),
               *msg ? msg : mdm_strerror(rc));
      return rc;
    }
  }
  return MDM_OK;
}

/* Load path (a file or a directory) into ds and validate the set.  On
 * failure prints the loader's "FILE: line N: FIELD: what is wrong" and
 * returns CLI_EXIT_FAIL; ds is initialised either way. */
static int load_docs(const char *path, struct mdm_docset *ds)
{
  char err[1536], shown[1536];
  mdm_rc rc;

  mdm_docset_init(ds);
  rc = mdm_doc_load_path(ds, path, err, sizeof(err));
  if(!rc)
    rc = mdm_docset_validate(ds, err, sizeof(err));
  if(!rc)
    rc = compile_check(ds, err, sizeof(err));
  if(rc == MDM_ERR_NOMEM)
    return cli_nomem();
  if(rc) {
    cli_error("%s", cli_sanitize(*err ? err : mdm_strerror(rc), shown,
                                 sizeof(shown)));
    return CLI_EXIT_FAIL;
  }
  if(!ds->n_docs) {
    cli_error("no policy documents in '%s' (files *.yaml, *.yml, *.json)",
              cli_sanitize(path, shown, sizeof(shown)));
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

/* The documents of ds as a JSON array (new reference), or NULL. */
static json_t *docs_json(const struct mdm_docset *ds)
{
  json_t *arr = json_array();
  size_t i;
  for(i = 0; arr && i < ds->n_docs; i++)
    if(json_array_append(arr, ds->docs[i].json)) {
      json_decref(arr);
      return NULL;
    }
  return arr;
}

/* Print the one line for a non-2xx answer to method path. */
static void report_problem(const char *method, const char *path, long status,
                           const json_t *pb)
{
  const char *title = json_string_value(json_object_get(pb, "title"));
  const char *detail = json_string_value(json_object_get(pb, "detail"));
  char t[256], d[1536];

  cli_sanitize(title && *title ? title : "error", t, sizeof(t));
  if(detail && *detail)
    cli_error("%s %s: %ld %s: %s", method, path, status, t,
              cli_sanitize(detail, d, sizeof(d)));
  else
    cli_error("%s %s: %ld %s", method, path, status, t);
}

/* The server refused the set (422).  Its detail names a document by index,
 * "documents[3]: line 0: spec.rules[0].op: ..."; say which file and line
 * that is, as the local validation would have. */
static void report_refused(const struct mdm_docset *ds, const json_t *pb)
{
  const char *detail = json_string_value(json_object_get(pb, "detail"));
  const char *rest, *p;
  char *end, shown[1536], file[512];
  unsigned long idx;
  const struct mdm_doc *d;
  int line;

  if(!detail || strncmp(detail, "documents[", 10) ||
     detail[10] < '0' || detail[10] > '9') {
    report_problem("POST", PATH_APPLY, 422, pb);
    return;
  }
  errno = 0;
  idx = strtoul(detail + 10, &end, 10);
  if(errno || strncmp(end, "]: ", 3) || idx >= ds->n_docs) {
    report_problem("POST", PATH_APPLY, 422, pb);
    return;
  }
  d = &ds->docs[idx];
  rest = end + 3;
  /* The server's own "line N: " counts lines of nothing: drop it. */
  if(!strncmp(rest, "line ", 5)) {
    for(p = rest + 5; *p >= '0' && *p <= '9'; p++)
      ;
    if(p > rest + 5 && !strncmp(p, ": ", 2))
      rest = p + 2;
  }
  line = field_line(d, rest);
  cli_error("%s: line %d: %s (refused by the server as documents[%lu])",
            cli_sanitize(d->file, file, sizeof(file)), line,
            cli_sanitize(rest, shown, sizeof(shown)), idx);
}

/* ======================================================================
 * The apply report (also used by "policies delete")
 * ====================================================================== */

static const struct cli_col result_cols[] = {
  {"ACTION", "action", CLI_CELL_TEXT, NULL},
  {"KIND", "kind", CLI_CELL_TEXT, NULL},
  {"NAME", "name", CLI_CELL_TEXT, NULL},
  {"VERSION", "version", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static const struct cli_col change_cols[] = {
  {"DEVICE", "device_id", CLI_CELL_TEXT, NULL},
  {"HOSTNAME", "hostname", CLI_CELL_TEXT, NULL},
  {"FROM", "from", CLI_CELL_TEXT, NULL},
  {"TO", "to", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static json_int_t int_at(const json_t *o, const char *key)
{
  return json_integer_value(json_object_get(o, key));
}

static int print_results(const json_t *results, int is_color)
{
  const json_t *r;
  size_t i;

  json_array_foreach(results, i, r) {
    char kind[128], name[128], action[32];
    const char *act = json_string_value(json_object_get(r, "action"));

    cli_sanitize(json_string_value(json_object_get(r, "kind")), kind,
                 sizeof(kind));
    cli_sanitize(json_string_value(json_object_get(r, "name")), name,
                 sizeof(name));
    cli_sanitize(act ? act : "?", action, sizeof(action));
    if(act && !strcmp(act, "deleted"))
      printf("%sDELETE deleted %s/%s (v%" JSON_INTEGER_FORMAT ")%s\n",
             is_color ? C_RED : "", kind, name, int_at(r, "version"),
             is_color ? C_OFF : "");
    else
      printf("%s %s/%s (v%" JSON_INTEGER_FORMAT ")\n", action, kind, name,
             int_at(r, "version"));
  }
  return CLI_EXIT_OK;
}

/* The devices whose state changes, with their hostnames when there are
 * few enough to look up. */
static int print_changes(struct cli *cli, const json_t *comp, int is_dry)
{
  const json_t *changes = json_object_get(comp, "changes"), *ch;
  json_int_t changed = int_at(comp, "changed");
  const json_t *counts = json_object_get(comp, "counts");
  size_t i, n_listed = json_array_size(changes);
  json_t *rows = NULL;
  struct mdm_buf b;
  int ret = CLI_EXIT_OK;

  printf("%" JSON_INTEGER_FORMAT " device%s %s compliance state%s\n",
         changed, changed == 1 ? "" : "s",
         is_dry ? "would change" : "changed", n_listed ? ":" : "");
  if(n_listed) {
    rows = json_array();
    if(!rows)
      return cli_nomem();
    json_array_foreach(changes, i, ch) {
      const char *id = json_string_value(json_object_get(ch, "device_id"));
      json_t *row = json_pack("{s:O?, s:O?, s:O?, s:n}", "device_id",
                              json_object_get(ch, "device_id"), "from",
                              json_object_get(ch, "from"), "to",
                              json_object_get(ch, "to"), "hostname");
      if(!row || json_array_append_new(rows, row)) {
        json_decref(rows);
        return cli_nomem();
      }
      if(id && n_listed <= MAX_HOST_LOOKUPS && cli->client) {
        char *path = NULL;
        json_t *dev = NULL;
        long status = 0;
        struct mdm_buf p;
        mdm_buf_init(&p, 1024);
        if(!mdm_buf_puts(&p, "/v1/devices/") && !cli_path_add(&p, id))
          path = mdm_buf_steal(&p);
        mdm_buf_release(&p);
        if(path && !cli_client_call(cli->client, "GET", path, NULL,
                                    CLI_HTTP_NOFAIL, &status, &dev) &&
           status == 200 &&
           json_is_string(json_object_get(dev, "hostname")))
          json_object_set(row, "hostname", json_object_get(dev, "hostname"));
        json_decref(dev);
        free(path);
      }
    }
    mdm_buf_init(&b, CLI_MAX_OUTPUT);
    if(cli_render_table(&b, rows, change_cols, (int64_t)time(NULL)) ||
       (b.len && fwrite(b.data, 1, b.len, stdout) != b.len))
      ret = CLI_EXIT_FAIL;
    mdm_buf_release(&b);
    json_decref(rows);
    if(changed > (json_int_t)n_listed)
      printf("... and %" JSON_INTEGER_FORMAT " more (the server lists the "
             "first %zu)\n", changed - (json_int_t)n_listed, n_listed);
  }
  if(json_is_integer(json_object_get(counts, "compliant")))
    printf("compliance %s: %" JSON_INTEGER_FORMAT " compliant, %"
           JSON_INTEGER_FORMAT " noncompliant, %" JSON_INTEGER_FORMAT
           " unknown (%" JSON_INTEGER_FORMAT " devices)\n",
           is_dry ? "after the change" : "now",
           int_at(counts, "compliant"), int_at(counts, "noncompliant"),
           int_at(counts, "unknown"), int_at(comp, "devices"));
  return ret;
}

int cli_print_apply_result(struct cli *cli, const json_t *res,
                           const char *path, int is_prune)
{
  const json_t *results = json_object_get(res, "results"), *r;
  const json_t *comp = json_object_get(res, "compliance");
  int is_dry = json_is_true(json_object_get(res, "dry_run"));
  size_t i, n_del = 0;
  int ret;

  if(!json_is_array(results)) {
    cli_error("unexpected answer from the server: no 'results' list");
    return CLI_EXIT_FAIL;
  }
  json_array_foreach(results, i, r) {
    const char *act = json_string_value(json_object_get(r, "action"));
    if(act && !strcmp(act, "deleted"))
      n_del++;
  }
  if(is_prune && n_del) {
    char shown[512];
    cli_warn("--prune %s %zu document%s not in '%s'",
             is_dry ? "would delete" : "deletes", n_del, n_del == 1 ? "" : "s",
             cli_sanitize(path ? path : "?", shown, sizeof(shown)));
  }
  if(!is_text_output(cli)) {
    if(cli->fmt == CLI_FMT_CSV)
      return cli_print_list(cli, results, result_cols, "results");
    return cli_print_object(cli, res);
  }
  if(is_dry)
    printf("dry run: nothing was changed on the server\n");
  ret = print_results(results, use_color());
  if(!ret && json_is_object(comp))
    ret = print_changes(cli, comp, is_dry);
  return ret;
}

/* ======================================================================
 * mdmctl apply
 * ====================================================================== */

static const struct cli_opt apply_opts[] = {
  {"--filename", 'f', "PATH", "a policy file, or a directory searched "
   "recursively for *.yaml, *.yml and *.json (hidden files are skipped)"},
  {"--dry-run", 0, NULL, "show what would change, and which devices would "
   "change compliance state; store nothing"},
  {"--prune", 0, NULL, "delete the server's documents that are not in PATH"},
  {NULL, 0, NULL, NULL}
};

static int cmd_apply(struct cli *cli, const struct cli_args *a)
{
  const char *path = cli_args_get(a, "--filename");
  int is_dry = cli_args_has(a, "--dry-run");
  int is_prune = cli_args_has(a, "--prune");
  struct mdm_docset ds;
  struct cli_client *c;
  json_t *body = NULL, *res = NULL;
  long status = 0;
  int ret;

  if(!path || !*path)
    return cli_usage_error(cli, "missing -f PATH (a policy file or "
                           "directory)");
  ret = load_docs(path, &ds);
  if(ret)
    goto out;
  ret = CLI_EXIT_FAIL;
  body = json_pack("{s:o, s:b, s:b}", "documents", docs_json(&ds),
                   "dry_run", is_dry, "prune", is_prune);
  if(!body) {
    ret = cli_nomem();
    goto out;
  }
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "POST", PATH_APPLY, body, CLI_HTTP_NOFAIL,
                           &status, &res))
    goto out;
  if(status == 422)
    report_refused(&ds, res);
  else if(status < 200 || status > 299)
    report_problem("POST", PATH_APPLY, status, res);
  else
    ret = cli_print_apply_result(cli, res, path, is_prune);
out:
  json_decref(res);
  json_decref(body);
  mdm_docset_release(&ds);
  return ret;
}

/* ======================================================================
 * mdmctl diff
 * ====================================================================== */

/* A text cut into lines (in place). */
struct lines {
  char *text;      /* owned */
  char **v;        /* owned array; the lines point into text */
  size_t n;
};

static void lines_release(struct lines *l)
{
  free(l->text);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

/* Take ownership of text (may be NULL: no lines) and cut it. */
static mdm_rc lines_init(struct lines *l, char *text)
{
  size_t cap = 1;
  char *p;

  memset(l, 0, sizeof(*l));
  l->text = text;
  if(!text)
    return MDM_OK;
  for(p = text; *p; p++)
    if(*p == '\n')
      cap++;
  l->v = malloc(cap * sizeof(*l->v));
  if(!l->v)
    return MDM_ERR_NOMEM;
  for(p = text; *p;) {
    char *nl = strchr(p, '\n');
    l->v[l->n++] = p;
    if(!nl)
      break;
    *nl = '\0';
    p = nl + 1;
  }
  return MDM_OK;
}

/* One step of an edit script: '=' (a line of both), '-' (of x only) or '+'
 * (of y only); a and b are the positions in x and y before the step. */
struct edit {
  char op;
  size_t a, b;
};

/* The shortest edit script from x to y: common prefix and suffix, and a
 * longest common subsequence of the middle (or, when the middle is too big
 * for the table, all of it removed and added). */
static mdm_rc diff_lines(const struct lines *x, const struct lines *y,
                         struct edit **out, size_t *n_out)
{
  size_t pre = 0, suf = 0, n, m, i, j, k = 0;
  uint32_t *t = NULL;
  struct edit *e;

  while(pre < x->n && pre < y->n && !strcmp(x->v[pre], y->v[pre]))
    pre++;
  while(suf < x->n - pre && suf < y->n - pre &&
        !strcmp(x->v[x->n - 1 - suf], y->v[y->n - 1 - suf]))
    suf++;
  n = x->n - pre - suf;
  m = y->n - pre - suf;
  e = malloc((x->n + y->n + 1) * sizeof(*e));
  if(!e)
    return MDM_ERR_NOMEM;
  for(i = 0; i < pre; i++)
    e[k++] = (struct edit){'=', i, i};
  if(n && m && n + 1 <= MAX_LCS_CELLS / (m + 1))
    t = calloc((n + 1) * (m + 1), sizeof(*t));
  if(t) {
    /* t[i][j]: LCS length of x[pre+i..] and y[pre+j..]. */
    for(i = n; i-- > 0;)
      for(j = m; j-- > 0;) {
        if(!strcmp(x->v[pre + i], y->v[pre + j]))
          t[i * (m + 1) + j] = t[(i + 1) * (m + 1) + j + 1] + 1;
        else {
          uint32_t down = t[(i + 1) * (m + 1) + j];
          uint32_t right = t[i * (m + 1) + j + 1];
          t[i * (m + 1) + j] = down >= right ? down : right;
        }
      }
    i = j = 0;
    while(i < n || j < m) {
      if(i < n && j < m && !strcmp(x->v[pre + i], y->v[pre + j])) {
        e[k++] = (struct edit){'=', pre + i, pre + j};
        i++;
        j++;
      }
      else if(j == m || (i < n && t[(i + 1) * (m + 1) + j] >=
                                  t[i * (m + 1) + j + 1])) {
        e[k++] = (struct edit){'-', pre + i, pre + j};
        i++;
      }
      else {
        e[k++] = (struct edit){'+', pre + i, pre + j};
        j++;
      }
    }
    free(t);
  }
  else {
    for(i = 0; i < n; i++)
      e[k++] = (struct edit){'-', pre + i, pre};
    for(j = 0; j < m; j++)
      e[k++] = (struct edit){'+', pre + n, pre + j};
  }
  for(i = 0; i < suf; i++)
    e[k++] = (struct edit){'=', pre + n + i, pre + m + i};
  *out = e;
  *n_out = k;
  return MDM_OK;
}

/* Append one diff line: the prefix, the line with control characters
 * replaced (text from the server must not drive the terminal). */
static mdm_rc put_line(struct mdm_buf *b, char op, const char *s,
                       int is_color)
{
  const char *color = op == '-' ? C_MINUS : op == '+' ? C_GREEN : NULL;
  size_t off;
  mdm_rc rc = MDM_OK;

  if(is_color && color)
    rc = mdm_buf_puts(b, color);
  if(!rc)
    rc = mdm_buf_append(b, &op, 1);
  off = b->len;
  if(!rc)
    rc = mdm_buf_puts(b, s);
  for(; !rc && off < b->len; off++) {
    unsigned char ch = (unsigned char)b->data[off];
    if(ch < 0x20 || ch == 0x7f)
      b->data[off] = '?';
  }
  if(!rc && is_color && color)
    rc = mdm_buf_puts(b, C_OFF);
  return rc ? rc : mdm_buf_puts(b, "\n");
}

/* "-a,b" / "+c,d" of a hunk header, in unified diff's conventions. */
static mdm_rc put_range(struct mdm_buf *b, char sign, size_t start,
                        size_t count)
{
  if(count == 1)
    return mdm_buf_printf(b, "%c%zu", sign, start + 1);
  return mdm_buf_printf(b, "%c%zu,%zu", sign, count ? start + 1 : start,
                        count);
}

/* Append the hunks of the edit script e (x: the server's lines, y: the
 * local ones).  *n_hunks gets how many. */
static mdm_rc put_hunks(struct mdm_buf *b, const struct edit *e, size_t ne,
                        const struct lines *x, const struct lines *y,
                        int is_color, size_t *n_hunks)
{
  size_t i = 0, done = 0;
  mdm_rc rc = MDM_OK;

  *n_hunks = 0;
  while(!rc) {
    size_t first, last, j, k, s, end, ca = 0, cb = 0;

    for(first = i; first < ne && e[first].op == '='; first++)
      ;
    if(first == ne)
      break;
    /* Extend over changes separated by at most 2 * context equal lines. */
    last = first;
    for(j = first + 1;; j = k + 1) {
      for(k = j; k < ne && e[k].op == '='; k++)
        ;
      if(k == ne || k - j > 2 * DIFF_CONTEXT)
        break;
      last = k;
    }
    s = first > DIFF_CONTEXT ? first - DIFF_CONTEXT : 0;
    if(s < done)
      s = done;
    end = last + 1 + DIFF_CONTEXT;
    if(end > ne)
      end = ne;
    for(k = s; k < end; k++) {
      ca += e[k].op != '+';
      cb += e[k].op != '-';
    }
    if(is_color)
      rc = mdm_buf_puts(b, C_CYAN);
    if(!rc)
      rc = mdm_buf_puts(b, "@@ ");
    if(!rc)
      rc = put_range(b, '-', e[s].a, ca);
    if(!rc)
      rc = mdm_buf_puts(b, " ");
    if(!rc)
      rc = put_range(b, '+', e[s].b, cb);
    if(!rc)
      rc = mdm_buf_puts(b, is_color ? " @@" C_OFF "\n" : " @@\n");
    for(k = s; !rc && k < end; k++) {
      if(e[k].op == '+')
        rc = put_line(b, '+', y->v[e[k].b], is_color);
      else
        rc = put_line(b, e[k].op == '-' ? '-' : ' ', x->v[e[k].a],
                      is_color);
    }
    (*n_hunks)++;
    i = done = end;
  }
  return rc;
}

/* Append the diff of one document: server (NULL when absent) against the
 * local document d. */
static mdm_rc diff_doc(struct mdm_buf *b, const char *kind, const char *name,
                       json_t *server, const struct mdm_doc *d, int is_color)
{
  struct lines x, y;
  struct edit *e = NULL;
  char *sx = NULL, *sy = NULL, file[1024];
  size_t ne = 0, n_hunks = 0;
  mdm_rc rc;

  memset(&x, 0, sizeof(x));
  memset(&y, 0, sizeof(y));
  rc = server ? mdm_doc_to_yaml(server, &sx) : MDM_OK;
  if(!rc)
    rc = mdm_doc_to_yaml(d->json, &sy);
  if(rc) {
    free(sx);
    free(sy);
    return rc;
  }
  rc = lines_init(&x, sx);        /* each takes its text, even on error */
  if(lines_init(&y, sy))
    rc = MDM_ERR_NOMEM;
  if(!rc)
    rc = diff_lines(&x, &y, &e, &ne);
  if(!rc)
    rc = mdm_buf_printf(b, "%s--- server/%s/%s%s\n+++ %s%s\n",
                        is_color ? C_BOLD : "", kind, name,
                        server ? "" : " (not on the server)",
                        cli_sanitize(d->file, file, sizeof(file)),
                        is_color ? C_OFF : "");
  if(!rc)
    rc = put_hunks(b, e, ne, &x, &y, is_color, &n_hunks);
  if(!rc && !n_hunks)
    rc = mdm_buf_puts(b, "(the documents differ in a way their YAML does "
                         "not show: a number's type or precision)\n");
  free(e);
  lines_release(&x);
  lines_release(&y);
  return rc;
}

static json_t *find_stored(const json_t *items, const char *kind,
                           const char *name)
{
  const json_t *it;
  size_t i;
  json_array_foreach(items, i, it) {
    const char *k = json_string_value(json_object_get(it, "kind"));
    const char *n = json_string_value(json_object_get(it, "name"));
    if(k && n && !strcmp(k, kind) && !strcmp(n, name))
      return (json_t *)it;
  }
  return NULL;
}

static const struct cli_opt diff_opts[] = {
  {"--filename", 'f', "PATH", "a policy file, or a directory searched "
   "recursively for *.yaml, *.yml and *.json"},
  {NULL, 0, NULL, NULL}
};

static int cmd_diff(struct cli *cli, const struct cli_args *a)
{
  const char *path = cli_args_get(a, "--filename");
  int is_text = is_text_output(cli), is_color = is_text && use_color();
  size_t i, n_changed = 0, n_new = 0, n_only = 0;
  struct mdm_docset ds;
  struct cli_client *c;
  struct mdm_buf b;
  json_t *items = NULL, *report = NULL;
  const json_t *it;
  mdm_rc rc = MDM_OK;
  int ret;

  if(!path || !*path)
    return cli_usage_error(cli, "missing -f PATH (a policy file or "
                           "directory)");
  mdm_buf_init(&b, MAX_DIFF_TEXT);
  ret = load_docs(path, &ds);
  if(ret)
    goto out;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(!c || cli_client_list(c, PATH_POLICIES, 0, &items))
    goto out;
  report = json_array();
  if(!report) {
    ret = cli_nomem();
    goto out;
  }
  for(i = 0; !rc && i < ds.n_docs; i++) {
    const struct mdm_doc *d = &ds.docs[i];
    const char *kind = mdm_doc_kind(d), *name = mdm_doc_name(d), *status;
    json_t *stored = find_stored(items, kind, name);
    json_t *sdoc = json_object_get(stored, "document");
    size_t start = b.len;

    if(stored && json_equal(sdoc, d->json))
      status = "unchanged";
    else {
      status = stored ? "changed" : "new";
      if(stored)
        n_changed++;
      else
        n_new++;
      rc = diff_doc(&b, kind, name, stored ? sdoc : NULL, d, is_color);
    }
    if(!rc && !is_text) {
      json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s%}", "kind", kind,
                              "name", name, "file", d->file, "status",
                              status, "diff", b.data ? b.data + start : "",
                              b.len - start);
      if(!row || json_array_append_new(report, row))
        rc = MDM_ERR_NOMEM;
    }
  }
  json_array_foreach(items, i, it) {
    const char *kind = json_string_value(json_object_get(it, "kind"));
    const char *name = json_string_value(json_object_get(it, "name"));
    char k[128], n[128];
    size_t j;
    int is_local = 0;

    if(rc || !kind || !name)
      continue;
    for(j = 0; j < ds.n_docs && !is_local; j++)
      is_local = !strcmp(mdm_doc_kind(&ds.docs[j]), kind) &&
                 !strcmp(mdm_doc_name(&ds.docs[j]), name);
    if(is_local)
      continue;
    n_only++;
    if(is_text)
      rc = mdm_buf_printf(&b, "%sserver/%s/%s: only on the server (apply "
                          "--prune would delete it)%s\n",
                          is_color ? C_RED : "",
                          cli_sanitize(kind, k, sizeof(k)),
                          cli_sanitize(name, n, sizeof(n)),
                          is_color ? C_OFF : "");
    else {
      json_t *row = json_pack("{s:s, s:s, s:n, s:s, s:s}", "kind", kind,
                              "name", name, "file", "status",
                              "only_on_server", "diff", "");
      if(!row || json_array_append_new(report, row))
        rc = MDM_ERR_NOMEM;
    }
  }
  if(rc == MDM_ERR_NOMEM) {
    ret = cli_nomem();
    goto out;
  }
  if(rc) {
    cli_error("cannot show the diff: %s", mdm_strerror(rc));
    goto out;
  }
  ret = n_changed + n_new + n_only ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  if(is_text) {
    if(b.len && fwrite(b.data, 1, b.len, stdout) != b.len)
      ret = CLI_EXIT_FAIL;
    else if(ret == CLI_EXIT_OK)
      printf("no drift: %zu document%s match the server\n", ds.n_docs,
             ds.n_docs == 1 ? "" : "s");
    else
      printf("drift: %zu changed, %zu not on the server, %zu only on the "
             "server\n", n_changed, n_new, n_only);
  }
  else {
    json_t *o = json_pack("{s:b, s:O}", "drift", ret != CLI_EXIT_OK,
                          "documents", report);
    int r2 = o ? (cli->fmt == CLI_FMT_CSV
                  ? cli_print_list(cli, report, result_cols, "documents")
                  : cli_print_object(cli, o))
               : cli_nomem();
    json_decref(o);
    if(r2)
      ret = r2;
  }
out:
  json_decref(report);
  json_decref(items);
  mdm_buf_release(&b);
  mdm_docset_release(&ds);
  return ret;
}

/* ======================================================================
 * mdmctl export
 * ====================================================================== */

static const struct cli_opt export_opts[] = {
  {"--output", 'o', "DIR", "the directory to write to (created when "
   "missing); not the output format"},
  {NULL, 0, NULL, NULL}
};

/* "CompliancePolicy" -> "compliance-policy" into out; 0 when kind is not
 * a plain CamelCase word. */
static int kind_dir(const char *kind, char *out, size_t n)
{
  size_t i, k = 0;
  if(!kind || !*kind)
    return 0;
  for(i = 0; kind[i]; i++) {
    char ch = kind[i];
    int is_upper = ch >= 'A' && ch <= 'Z';
    if(!is_upper && !(ch >= 'a' && ch <= 'z'))
      return 0;
    if(k + 3 > n)
      return 0;
    if(is_upper && i)
      out[k++] = '-';
    out[k++] = is_upper ? (char)(ch - 'A' + 'a') : ch;
  }
  out[k] = '\0';
  return 1;
}

/* A DNS label (what the server allows as a name): safe as a file name. */
static int is_dns_label(const char *s)
{
  size_t n = s ? strlen(s) : 0, i;
  if(n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
    return 0;
  for(i = 0; i < n; i++)
    if(!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
         s[i] == '-'))
      return 0;
  return 1;
}

/* Render doc as YAML and check that the loader reads it back as the same
 * value.  Caller owns *out. */
static mdm_rc render_checked(json_t *doc, const char *file, char **out)
{
  struct mdm_docset ds;
  char err[512];
  mdm_rc rc = mdm_doc_to_yaml(doc, out);

  if(rc)
    return rc;
  mdm_docset_init(&ds);
  rc = mdm_doc_parse(&ds, file, *out, strlen(*out), err, sizeof(err));
  if(!rc && (ds.n_docs != 1 || !json_equal(ds.docs[0].json, doc)))
    rc = MDM_ERR_INTERNAL;
  mdm_docset_release(&ds);
  if(rc) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

static int cmd_export(struct cli *cli, const struct cli_args *a)
{
  const char *dir = own_flag(a, &export_opts[0]);
  int is_text = is_text_output(cli);
  struct cli_client *c;
  json_t *items = NULL, *written = NULL;
  const json_t *it;
  struct mdm_buf p;
  size_t i, dlen;
  char shown[1024];
  int ret = CLI_EXIT_FAIL;

  if(!dir || !*dir)
    return cli_usage_error(cli, "missing -o DIR (the directory to write "
                           "the documents to)");
  for(i = 0; i < (size_t)a->n_vals; i++)
    if(a->vals[i].opt == &export_opts[0] && a->vals[i].val != dir)
      return cli_usage_error(cli, "-o given twice: for export, -o is the "
                             "directory (a format goes before 'export': "
                             "mdmctl -o json export -o DIR)");
  mdm_buf_init(&p, 4096);
  dlen = strlen(dir);
  while(dlen > 1 && dir[dlen - 1] == '/')
    dlen--;
  c = cli_connect(cli);
  if(!c || cli_client_list(c, PATH_POLICIES, 0, &items))
    goto out;
  written = json_array();
  if(!written) {
    ret = cli_nomem();
    goto out;
  }
  /* Check every name before writing anything. */
  json_array_foreach(items, i, it) {
    const char *kind = json_string_value(json_object_get(it, "kind"));
    const char *name = json_string_value(json_object_get(it, "name"));
    char kd[128], k[128], n[128];
    if(!kind_dir(kind, kd, sizeof(kd)) || !is_dns_label(name) ||
       !json_is_object(json_object_get(it, "document"))) {
      cli_error("cannot export %s/%s: the server sent a kind or name that "
                "is not safe as a file name",
                cli_sanitize(kind ? kind : "?", k, sizeof(k)),
                cli_sanitize(name ? name : "?", n, sizeof(n)));
      goto out;
    }
  }
  json_array_foreach(items, i, it) {
    const char *kind = json_string_value(json_object_get(it, "kind"));
    const char *name = json_string_value(json_object_get(it, "name"));
    json_t *doc = json_object_get(it, "document");
    char kd[128], *yaml = NULL;
    mdm_rc rc;

    kind_dir(kind, kd, sizeof(kd));
    mdm_buf_reset(&p);
    if(mdm_buf_append(&p, dir, dlen) || mdm_buf_printf(&p, "/%s", kd)) {
      cli_error("cannot export into '%s': the path is too long",
                cli_sanitize(dir, shown, sizeof(shown)));
      goto out;
    }
    if(mdm_mkdirs(p.data, 0755)) {
      cli_error("cannot create directory '%s': %s",
                cli_sanitize(p.data, shown, sizeof(shown)), strerror(errno));
      goto out;
    }
    if(mdm_buf_printf(&p, "/%s.yaml", name)) {
      cli_error("cannot export into '%s': the path is too long",
                cli_sanitize(dir, shown, sizeof(shown)));
      goto out;
    }
    rc = render_checked(doc, p.data, &yaml);
    if(rc == MDM_ERR_NOMEM) {
      ret = cli_nomem();
      goto out;
    }
    if(rc) {
      cli_error("cannot export %s/%s: its YAML would not read back as the "
                "same document", kind, name);
      goto out;
    }
    rc = mdm_file_write_atomic(p.data, yaml, strlen(yaml), 0644);
    free(yaml);
    if(rc) {
      cli_error("cannot write '%s': %s",
                cli_sanitize(p.data, shown, sizeof(shown)),
                rc == MDM_ERR_IO ? strerror(errno) : mdm_strerror(rc));
      goto out;
    }
    if(json_array_append_new(written,
                             json_pack("{s:s, s:s, s:O?, s:s}", "kind", kind,
                                       "name", name, "version",
                                       json_object_get(it, "version"),
                                       "file", p.data))) {
      ret = cli_nomem();
      goto out;
    }
    if(is_text)
      printf("wrote %s (%s/%s v%" JSON_INTEGER_FORMAT ")\n",
             cli_sanitize(p.data, shown, sizeof(shown)), kind, name,
             int_at(it, "version"));
  }
  if(!is_text)
    ret = cli_print_list(cli, written, result_cols, "documents");
  else {
    ret = CLI_EXIT_OK;
    if(json_array_size(items))
      printf("exported %zu document%s to %s\n", json_array_size(items),
             json_array_size(items) == 1 ? "" : "s",
             cli_sanitize(dir, shown, sizeof(shown)));
    else
      fprintf(stderr, "No policies found: nothing written.\n");
  }
out:
  json_decref(written);
  json_decref(items);
  mdm_buf_release(&p);
  return ret;
}

/* ======================================================================
 * The table
 * ====================================================================== */

const struct cli_cmd cli_apply_cmds[] = {
  {"apply", NULL, cmd_apply, "-f PATH [--dry-run] [--prune]",
   "apply policy documents from a file or directory",
   "Reads PATH (a file, or a directory searched recursively; files and "
   "directories starting with '.' are skipped), validates every document "
   "locally (an invalid one is reported as FILE: line N: FIELD: what is "
   "wrong, and nothing is sent), then sends the whole set to the server in "
   "one request: all of it is stored, or none. Prints per document "
   "'created|updated|unchanged|deleted KIND/NAME (vN)' and which devices "
   "changed compliance state. With --prune the server's documents that are "
   "not in PATH are deleted; each is shown as 'DELETE deleted KIND/NAME' "
   "(red on a terminal) and a warning goes to stderr. A PATH with no "
   "documents is an error, so that a wrong path cannot prune everything. "
   "The report is text unless -o json|yaml|csv is given (json: the "
   "server's answer).",
   apply_opts, 0, 0},
  {"diff", NULL, cmd_diff, "-f PATH",
   "show how the server's policies differ from PATH's",
   "Compares the YAML rendering of each document in PATH with the "
   "server's (--- server/KIND/NAME, +++ FILE; comments and key order of "
   "the files do not count) and names the documents only on the server. "
   "Exit status: 0 no drift, 1 drift (the diff is on stdout, nothing on "
   "stderr), 1 also for an error (one 'mdmctl: ...' line on stderr, "
   "nothing on stdout), 2 bad usage. Documents only on the server count "
   "as drift. -o json prints {drift, documents: [{kind, name, file, "
   "status, diff}]}.",
   diff_opts, 0, 0},
  {"export", NULL, cmd_export, "-o DIR",
   "write the server's policies as YAML files under DIR",
   "Writes DIR/<kind>/<name>.yaml for every document (kind in lower case "
   "with dashes: compliance-policy/baseline.yaml), creating directories, "
   "replacing files of the same name and leaving other files alone. "
   "'mdmctl apply -f DIR' afterwards reports every document unchanged. "
   "-o is the directory here; a global -o FORMAT before 'export' turns the "
   "report of written files into json, yaml or csv.",
   export_opts, 0, 0},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
