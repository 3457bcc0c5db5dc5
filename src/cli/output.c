/*
 * output.c: mdmctl's renderers: JSON, YAML, CSV, tables and the details
 * view (see output.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cli/output.h"
#include "core/util.h"

/* A guard against absurdly deep documents: the renderers recurse. */
#define MAX_DEPTH 64

/* ======================================================================
 * Shared helpers
 * ====================================================================== */

static mdm_rc pad(struct mdm_buf *b, size_t n)
{
  static const char spaces[] = "                                ";
  while(n > 0) {
    size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
    mdm_rc rc = mdm_buf_append(b, spaces, k);
    if(rc)
      return rc;
    n -= k;
  }
  return MDM_OK;
}

/* Append a scalar's plain text: strings raw, numbers and booleans as JSON,
 * null as null_text, arrays and objects as compact JSON. */
static mdm_rc append_plain(struct mdm_buf *b, const json_t *v,
                           const char *null_text)
{
  char *s;
  mdm_rc rc;

  if(!v || json_is_null(v))
    return mdm_buf_puts(b, null_text);
  if(json_is_string(v))
    return mdm_buf_append(b, json_string_value(v), json_string_length(v));
  s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if(!s)
    return MDM_ERR_NOMEM;
  rc = mdm_buf_puts(b, s);
  free(s);
  return rc;
}

/* The value at a dotted path ("os.version") in v, or NULL. */
static const json_t *lookup(const json_t *v, const char *path)
{
  char seg[128];
  while(v && *path) {
    size_t n = strcspn(path, ".");
    if(n >= sizeof(seg))
      return NULL;
    memcpy(seg, path, n);
    seg[n] = '\0';
    v = json_object_get(v, seg);
    path += n;
    if(*path == '.')
      path++;
  }
  return v;
}

/* Replace control characters in b from offset off with '?'. */
static void defang(struct mdm_buf *b, size_t off)
{
  size_t i;
  for(i = off; i < b->len; i++) {
    unsigned char ch = (unsigned char)b->data[i];
    if(ch < 0x20 || ch == 0x7f)
      b->data[i] = '?';
  }
}

/* Width on screen of a UTF-8 string: one column per code point. */
static size_t text_width(const char *s, size_t len)
{
  size_t i, w = 0;
  for(i = 0; i < len; i++)
    if(((unsigned char)s[i] & 0xc0) != 0x80)
      w++;
  return w;
}

static void human_duration(int64_t secs, char *out, size_t n)
{
  if(secs < 60)
    snprintf(out, n, "%llds", (long long)secs);
  else if(secs < 3600)
    snprintf(out, n, "%lldm", (long long)(secs / 60));
  else if(secs < 86400)
    snprintf(out, n, "%lldh", (long long)(secs / 3600));
  else
    snprintf(out, n, "%lldd", (long long)(secs / 86400));
}

/* ======================================================================
 * JSON
 * ====================================================================== */

mdm_rc cli_render_json(struct mdm_buf *b, const json_t *v)
{
  char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
  mdm_rc rc;
  if(!s)
    return MDM_ERR_NOMEM;
  rc = mdm_buf_puts(b, s);
  if(!rc)
    rc = mdm_buf_puts(b, "\n");
  free(s);
  return rc;
}

/* ======================================================================
 * YAML
 * ====================================================================== */

/* Would s, unquoted, read as a YAML 1.1 or 1.2 number (int, float, octal,
 * hex, binary, .inf, .nan) or a date? */
static int looks_numeric(const char *s)
{
  const char *p = s, *q;
  int n_digits = 0;

  if(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' &&
     s[2] >= '0' && s[2] <= '9' && s[3] >= '0' && s[3] <= '9' && s[4] == '-')
    return 1;   /* a date or timestamp: 2026-11-28 */
  if(*p == '+' || *p == '-')
    p++;
  if(!strcasecmp(p, ".inf") || !strcasecmp(p, ".nan"))
    return 1;
  if(p[0] == '0' && p[1] && strchr("xXoObB", p[1])) {
    const char *digits = (p[1] == 'x' || p[1] == 'X') ? "0123456789abcdefABCDEF_"
                       : (p[1] == 'o' || p[1] == 'O') ? "01234567_" : "01_";
    q = p + 2;
    return *q && strspn(q, digits) == strlen(q);
  }
  for(q = p; (*q >= '0' && *q <= '9') || *q == '_'; q++)
    n_digits += *q != '_';
  if(*q == '.')
    for(q++; (*q >= '0' && *q <= '9') || *q == '_' || *q == '.'; q++)
      n_digits += *q >= '0' && *q <= '9';
  if(!n_digits)
    return 0;
  if(*q == 'e' || *q == 'E') {
    q++;
    if(*q == '+' || *q == '-')
      q++;
    if(!(*q >= '0' && *q <= '9'))
      return 0;
    while(*q >= '0' && *q <= '9')
      q++;
  }
  return *q == '\0';
}

int cli_yaml_needs_quotes(const char *s, size_t len)
{
  static const char *const words[] = {
    "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~",
    "<<", "=", NULL
  };
  size_t i;
  int k;

  if(len == 0 || strlen(s) != len)   /* empty, or an embedded NUL */
    return 1;
  if(s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t')
    return 1;
  if(strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
    return 1;
  if(!strncmp(s, "...", 3))
    return 1;
  for(i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if(ch < 0x20 || ch == 0x7f || ch == ':' || ch == '#')
      return 1;
    /* NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR (line breaks in YAML 1.1)
     * and the byte order mark. */
    if(ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] == 0x85)
      return 1;
    if(ch == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
       ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
      return 1;
    if(ch == 0xef && i + 2 < len && (unsigned char)s[i + 1] == 0xbb &&
       (unsigned char)s[i + 2] == 0xbf)
      return 1;
  }
  for(k = 0; words[k]; k++)
    if(!strcasecmp(s, words[k]))
      return 1;
  return looks_numeric(s);
}

/* Append s as a double-quoted YAML scalar (JSON-style escapes). */
static mdm_rc yaml_quoted(struct mdm_buf *b, const char *s, size_t len)
{
  size_t i, run = 0;
  mdm_rc rc = mdm_buf_puts(b, "\"");

  for(i = 0; !rc && i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[8];
    size_t skip = 0;

    esc[0] = '\0';
    if(ch == '"')
      memcpy(esc, "\\\"", 3);
    else if(ch == '\\')
      memcpy(esc, "\\\\", 3);
    else if(ch == '\n')
      memcpy(esc, "\\n", 3);
    else if(ch == '\t')
      memcpy(esc, "\\t", 3);
    else if(ch == '\r')
      memcpy(esc, "\\r", 3);
    else if(ch < 0x20 || ch == 0x7f)
      snprintf(esc, sizeof(esc), "\\u%04x", ch);
    else if(ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] == 0x85) {
      memcpy(esc, "\\u0085", 7);
      skip = 1;
    }
    else if(ch == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xa8 ||
             (unsigned char)s[i + 2] == 0xa9)) {
      memcpy(esc, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 7);
      skip = 2;
    }
    else if(ch == 0xef && i + 2 < len && (unsigned char)s[i + 1] == 0xbb &&
            (unsigned char)s[i + 2] == 0xbf) {
      memcpy(esc, "\\ufeff", 7);
      skip = 2;
    }
    if(!esc[0]) {
      run++;
      continue;
    }
    rc = mdm_buf_append(b, s + i - run, run);
    run = 0;
    if(!rc)
      rc = mdm_buf_puts(b, esc);
    i += skip;
  }
  if(!rc)
    rc = mdm_buf_append(b, s + len - run, run);
  if(!rc)
    rc = mdm_buf_puts(b, "\"");
  return rc;
}

static mdm_rc yaml_string(struct mdm_buf *b, const char *s, size_t len)
{
  if(cli_yaml_needs_quotes(s, len))
    return yaml_quoted(b, s, len);
  return mdm_buf_append(b, s, len);
}

/* A real in a form both YAML 1.1 and 1.2 read as a float: jansson writes
 * 1e+20 as "1e20", which YAML 1.1 takes for a string, so make it
 * "1.0e+20". */
static mdm_rc yaml_real(struct mdm_buf *b, const json_t *v)
{
  char *s = json_dumps(v, JSON_ENCODE_ANY), *e;
  mdm_rc rc;

  if(!s)
    return MDM_ERR_NOMEM;
  e = strpbrk(s, "eE");
  if(!e)
    rc = mdm_buf_puts(b, s);
  else {
    rc = mdm_buf_append(b, s, (size_t)(e - s));
    if(!rc && !memchr(s, '.', (size_t)(e - s)))
      rc = mdm_buf_puts(b, ".0");
    if(!rc)
      rc = mdm_buf_puts(b, "e");
    if(!rc && e[1] != '-' && e[1] != '+')
      rc = mdm_buf_puts(b, "+");
    if(!rc)
      rc = mdm_buf_puts(b, e + 1);
  }
  free(s);
  return rc;
}

static mdm_rc yaml_scalar(struct mdm_buf *b, const json_t *v)
{
  if(json_is_real(v))
    return yaml_real(b, v);
  if(json_is_string(v))
    return yaml_string(b, json_string_value(v), json_string_length(v));
  if(json_is_object(v))
    return mdm_buf_puts(b, "{}");
  if(json_is_array(v))
    return mdm_buf_puts(b, "[]");
  return append_plain(b, v, "null");
}

/* Where the cursor is when a node starts. */
enum ypos {
  Y_TOP,   /* at the start of the document */
  Y_KEY,   /* right after "key:" */
  Y_DASH   /* right after "- " */
};

/* Write v.  col is the key's column for Y_KEY, the column after "- " for
 * Y_DASH and 0 for Y_TOP.  Sequences under a key are not indented further
 * ("key:\n- a"), as kubectl and PyYAML write them. */
static mdm_rc yaml_node(struct mdm_buf *b, const json_t *v, size_t col,
                        enum ypos pos, int depth)
{
  mdm_rc rc = MDM_OK;
  int is_first = 1;

  if(depth > MAX_DEPTH)
    return MDM_ERR_TOOBIG;
  if((json_is_object(v) && json_object_size(v) > 0) ||
     (json_is_array(v) && json_array_size(v) > 0)) {
    if(pos == Y_KEY)
      rc = mdm_buf_puts(b, "\n");
  }
  else {
    if(pos == Y_KEY)
      rc = mdm_buf_puts(b, " ");
    if(!rc)
      rc = yaml_scalar(b, v);
    if(!rc)
      rc = mdm_buf_puts(b, "\n");
    return rc;
  }

  if(json_is_object(v)) {
    size_t kcol = pos == Y_KEY ? col + 2 : col;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
      if(!(is_first && pos == Y_DASH))
        rc = pad(b, kcol);
      if(!rc)
        rc = yaml_string(b, key, strlen(key));
      if(!rc)
        rc = mdm_buf_puts(b, ":");
      if(!rc)
        rc = yaml_node(b, val, kcol, Y_KEY, depth + 1);
      if(rc)
        return rc;
      is_first = 0;
    }
  }
  else {
    size_t i;
    for(i = 0; i < json_array_size(v); i++) {
      if(!(is_first && pos == Y_DASH))
        rc = pad(b, col);
      if(!rc)
        rc = mdm_buf_puts(b, "- ");
      if(!rc)
        rc = yaml_node(b, json_array_get(v, i), col + 2, Y_DASH, depth + 1);
      if(rc)
        return rc;
      is_first = 0;
    }
  }
  return rc;
}

mdm_rc cli_render_yaml(struct mdm_buf *b, const json_t *v)
{
  return yaml_node(b, v, 0, Y_TOP, 0);
}

/* ======================================================================
 * CSV
 * ====================================================================== */

/* The columns are a tree merged from every item's keys in first-seen order;
 * its leaves, depth first, are the columns. */
struct colnode {
  const char *name;          /* borrowed from the first item that had it */
  struct colnode *kids;
  size_t n_kids, cap_kids;
  int has_scalar;            /* a non-null, non-object value was seen */
  int has_null;
};

struct colpath {
  const char **segs;
  size_t n_segs;
};

struct colset {
  struct colpath *cols;
  size_t n_cols, cap_cols;
};

static void colnode_release(struct colnode *n)
{
  size_t i;
  for(i = 0; i < n->n_kids; i++)
    colnode_release(&n->kids[i]);
  free(n->kids);
}

static struct colnode *colnode_kid(struct colnode *n, const char *name)
{
  size_t i;
  for(i = 0; i < n->n_kids; i++)
    if(!strcmp(n->kids[i].name, name))
      return &n->kids[i];
  if(n->n_kids == n->cap_kids) {
    size_t cap = n->cap_kids ? n->cap_kids * 2 : 8;
    struct colnode *k = realloc(n->kids, cap * sizeof(*k));
    if(!k)
      return NULL;
    n->kids = k;
    n->cap_kids = cap;
  }
  memset(&n->kids[n->n_kids], 0, sizeof(n->kids[0]));
  n->kids[n->n_kids].name = name;
  return &n->kids[n->n_kids++];
}

static mdm_rc colnode_merge(struct colnode *n, const json_t *v, int depth)
{
  const char *key;
  json_t *val;

  if(depth > MAX_DEPTH)
    return MDM_ERR_TOOBIG;
  if(json_is_null(v)) {
    n->has_null = 1;
    return MDM_OK;
  }
  if(!json_is_object(v)) {
    n->has_scalar = 1;
    return MDM_OK;
  }
  json_object_foreach((json_t *)v, key, val) {
    struct colnode *k = colnode_kid(n, key);
    mdm_rc rc;
    if(!k)
      return MDM_ERR_NOMEM;
    rc = colnode_merge(k, val, depth + 1);
    if(rc)
      return rc;
  }
  return MDM_OK;
}

static mdm_rc colset_add(struct colset *cs, const char **stack, size_t depth)
{
  struct colpath *p;
  if(cs->n_cols == cs->cap_cols) {
    size_t cap = cs->cap_cols ? cs->cap_cols * 2 : 16;
    struct colpath *c = realloc(cs->cols, cap * sizeof(*c));
    if(!c)
      return MDM_ERR_NOMEM;
    cs->cols = c;
    cs->cap_cols = cap;
  }
  p = &cs->cols[cs->n_cols];
  p->segs = malloc((depth ? depth : 1) * sizeof(*p->segs));
  if(!p->segs)
    return MDM_ERR_NOMEM;
  if(depth)
    memcpy(p->segs, stack, depth * sizeof(*stack));
  p->n_segs = depth;
  cs->n_cols++;
  return MDM_OK;
}

static mdm_rc colnode_flatten(const struct colnode *n, const char **stack,
                              size_t depth, struct colset *cs)
{
  size_t i;
  mdm_rc rc = MDM_OK;

  if(n->has_scalar || (n->has_null && n->n_kids == 0))
    rc = colset_add(cs, stack, depth);
  for(i = 0; !rc && i < n->n_kids; i++) {
    stack[depth] = n->kids[i].name;
    rc = colnode_flatten(&n->kids[i], stack, depth + 1, cs);
  }
  return rc;
}

static void colset_release(struct colset *cs)
{
  size_t i;
  for(i = 0; i < cs->n_cols; i++)
    free(cs->cols[i].segs);
  free(cs->cols);
}

static mdm_rc csv_field(struct mdm_buf *b, const char *s, size_t len)
{
  size_t i;
  mdm_rc rc;
  int is_quoted = len > 0 && (s[0] == ' ' || s[len - 1] == ' ');

  for(i = 0; i < len && !is_quoted; i++)
    if(s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
      is_quoted = 1;
  if(!is_quoted)
    return mdm_buf_append(b, s, len);
  rc = mdm_buf_puts(b, "\"");
  for(i = 0; !rc && i < len; i++)
    rc = s[i] == '"' ? mdm_buf_puts(b, "\"\"") : mdm_buf_append(b, s + i, 1);
  if(!rc)
    rc = mdm_buf_puts(b, "\"");
  return rc;
}

static mdm_rc csv_row(struct mdm_buf *b, const json_t *item,
                      const struct colset *cs, struct mdm_buf *cell)
{
  size_t c, s;
  mdm_rc rc = MDM_OK;

  for(c = 0; !rc && c < cs->n_cols; c++) {
    const json_t *v = item;
    for(s = 0; v && s < cs->cols[c].n_segs; s++)
      v = json_object_get(v, cs->cols[c].segs[s]);
    mdm_buf_reset(cell);
    if(c > 0)
      rc = mdm_buf_puts(b, ",");
    if(!rc && v && !json_is_object(v))
      rc = append_plain(cell, v, "");
    if(!rc && cs->n_cols == 1 && cell->len == 0)
      rc = mdm_buf_puts(b, "\"\"");   /* else the row reads as a blank line */
    else if(!rc)
      rc = csv_field(b, cell->data ? cell->data : "", cell->len);
  }
  if(!rc)
    rc = mdm_buf_puts(b, "\r\n");
  return rc;
}

mdm_rc cli_render_csv(struct mdm_buf *b, const json_t *items)
{
  struct colnode root;
  struct colset cs;
  struct mdm_buf cell, name;
  const char *stack[MAX_DEPTH + 2];
  size_t i, c, s, n = json_is_array(items) ? json_array_size(items) : 1;
  mdm_rc rc = MDM_OK;

  memset(&root, 0, sizeof(root));
  memset(&cs, 0, sizeof(cs));
  mdm_buf_init(&cell, CLI_MAX_OUTPUT);
  mdm_buf_init(&name, CLI_MAX_OUTPUT);
  for(i = 0; !rc && i < n; i++)
    rc = colnode_merge(&root, json_is_array(items) ?
                       json_array_get(items, i) : items, 0);
  if(!rc)
    rc = colnode_flatten(&root, stack, 0, &cs);

  /* Header: dotted names; a bare scalar list has the one column "value". */
  for(c = 0; !rc && c < cs.n_cols; c++) {
    mdm_buf_reset(&name);
    if(c > 0)
      rc = mdm_buf_puts(b, ",");
    if(!rc && cs.cols[c].n_segs == 0)
      rc = mdm_buf_puts(&name, "value");
    for(s = 0; !rc && s < cs.cols[c].n_segs; s++)
      rc = mdm_buf_printf(&name, "%s%s", s ? "." : "", cs.cols[c].segs[s]);
    if(!rc)
      rc = csv_field(b, name.data, name.len);
  }
  if(!rc && cs.n_cols > 0)
    rc = mdm_buf_puts(b, "\r\n");
  for(i = 0; !rc && cs.n_cols > 0 && i < n; i++)
    rc = csv_row(b, json_is_array(items) ? json_array_get(items, i) : items,
                 &cs, &cell);

  colset_release(&cs);
  colnode_release(&root);
  mdm_buf_release(&cell);
  mdm_buf_release(&name);
  return rc;
}

/* ======================================================================
 * Tables
 * ====================================================================== */

static mdm_rc table_cell(struct mdm_buf *b, const json_t *item,
                         const struct cli_col *col, int64_t now)
{
  const json_t *v;
  int64_t t;
  char d[32];

  if(col->cell)
    return col->cell(item, b);
  v = lookup(item, col->path);
  if(!v || json_is_null(v))
    return mdm_buf_puts(b, "-");
  switch(col->kind) {
  case CLI_CELL_AGO:
    if(!json_is_string(v) || mdm_time_parse(json_string_value(v), &t))
      break;
    if(now - t < 5)
      return mdm_buf_puts(b, "just now");
    human_duration(now - t, d, sizeof(d));
    return mdm_buf_printf(b, "%s ago", d);
  case CLI_CELL_UNTIL:
    if(!json_is_string(v) || mdm_time_parse(json_string_value(v), &t))
      break;
    if(t <= now)
      return mdm_buf_puts(b, "expired");
    human_duration(t - now, d, sizeof(d));
    return mdm_buf_printf(b, "in %s", d);
  case CLI_CELL_MAP:
    if(json_is_object(v)) {
      const char *k;
      json_t *x;
      int is_first = 1;
      mdm_rc rc = MDM_OK;
      if(json_object_size(v) == 0)
        return mdm_buf_puts(b, "-");
      json_object_foreach((json_t *)v, k, x) {
        rc = mdm_buf_printf(b, "%s%s=", is_first ? "" : ",", k);
        if(!rc)
          rc = append_plain(b, x, "");
        if(rc)
          return rc;
        is_first = 0;
      }
      return rc;
    }
    break;
  case CLI_CELL_YESNO:
    if(json_is_boolean(v))
      return mdm_buf_puts(b, json_is_true(v) ? "yes" : "no");
    break;
  case CLI_CELL_TEXT:
    break;
  }
  return append_plain(b, v, "-");
}

mdm_rc cli_render_table(struct mdm_buf *b, const json_t *items,
                        const struct cli_col *cols, int64_t now)
{
  size_t n_cols = 0, n_rows = json_array_size(items), r, c;
  size_t *width = NULL;
  struct mdm_buf *cells = NULL;   /* n_rows * n_cols texts */
  mdm_rc rc = MDM_OK;

  while(cols[n_cols].header)
    n_cols++;
  width = calloc(n_cols ? n_cols : 1, sizeof(*width));
  cells = calloc(n_rows * n_cols > 0 ? n_rows * n_cols : 1, sizeof(*cells));
  if(!width || !cells) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  for(c = 0; c < n_cols; c++)
    width[c] = text_width(cols[c].header, strlen(cols[c].header));
  for(r = 0; r < n_rows; r++)
    for(c = 0; c < n_cols; c++) {
      struct mdm_buf *cb = &cells[r * n_cols + c];
      size_t w;
      mdm_buf_init(cb, CLI_MAX_OUTPUT);
      rc = table_cell(cb, json_array_get(items, r), &cols[c], now);
      if(rc)
        goto out;
      if(!cb->data)
        rc = mdm_buf_puts(cb, "");
      if(rc)
        goto out;
      defang(cb, 0);
      w = text_width(cb->data, cb->len);
      if(w > width[c])
        width[c] = w;
    }

  for(c = 0; !rc && c < n_cols; c++) {
    rc = mdm_buf_puts(b, cols[c].header);
    if(!rc && c + 1 < n_cols)
      rc = pad(b, width[c] - text_width(cols[c].header, strlen(cols[c].header))
               + 3);
  }
  if(!rc)
    rc = mdm_buf_puts(b, "\n");
  for(r = 0; !rc && r < n_rows; r++) {
    for(c = 0; !rc && c < n_cols; c++) {
      struct mdm_buf *cb = &cells[r * n_cols + c];
      rc = mdm_buf_append(b, cb->data, cb->len);
      if(!rc && c + 1 < n_cols)
        rc = pad(b, width[c] - text_width(cb->data, cb->len) + 3);
    }
    if(!rc)
      rc = mdm_buf_puts(b, "\n");
  }

out:
  if(cells)
    for(r = 0; r < n_rows * n_cols; r++)
      mdm_buf_release(&cells[r]);
  free(cells);
  free(width);
  return rc;
}

/* ======================================================================
 * Details: one object as aligned "key: value" lines
 * ====================================================================== */

struct detail_row {
  char *key;
  char *val;
};

struct details {
  struct detail_row *rows;
  size_t n_rows, cap_rows;
};

static mdm_rc details_add(struct details *d, const char *key, char *val)
{
  if(d->n_rows == d->cap_rows) {
    size_t cap = d->cap_rows ? d->cap_rows * 2 : 32;
    struct detail_row *r = realloc(d->rows, cap * sizeof(*r));
    if(!r) {
      free(val);
      return MDM_ERR_NOMEM;
    }
    d->rows = r;
    d->cap_rows = cap;
  }
  d->rows[d->n_rows].key = strdup(key);
  d->rows[d->n_rows].val = val;
  if(!d->rows[d->n_rows].key) {
    free(val);
    return MDM_ERR_NOMEM;
  }
  d->n_rows++;
  return MDM_OK;
}

static mdm_rc details_walk(struct details *d, const json_t *v,
                           struct mdm_buf *prefix, int depth)
{
  const char *key;
  json_t *val;
  mdm_rc rc = MDM_OK;

  if(depth > MAX_DEPTH)
    return MDM_ERR_TOOBIG;
  json_object_foreach((json_t *)v, key, val) {
    size_t mark = prefix->len;
    rc = mdm_buf_printf(prefix, "%s%s", mark ? "." : "", key);
    if(!rc && json_is_object(val) && json_object_size(val) > 0)
      rc = details_walk(d, val, prefix, depth + 1);
    else if(!rc) {
      struct mdm_buf vb;
      mdm_buf_init(&vb, CLI_MAX_OUTPUT);
      rc = json_is_object(val) ? mdm_buf_puts(&vb, "-")
                               : append_plain(&vb, val, "-");
      if(!rc)
        defang(&vb, 0);
      if(!rc)
        rc = details_add(d, prefix->data, mdm_buf_steal(&vb));
      else
        mdm_buf_release(&vb);
    }
    prefix->len = mark;
    if(prefix->data)
      prefix->data[mark] = '\0';
    if(rc)
      return rc;
  }
  return rc;
}

mdm_rc cli_render_details(struct mdm_buf *b, const json_t *obj)
{
  struct details d;
  struct mdm_buf prefix;
  size_t i, kw = 0;
  mdm_rc rc;

  if(!json_is_object(obj))
    return cli_render_yaml(b, obj);
  memset(&d, 0, sizeof(d));
  mdm_buf_init(&prefix, CLI_MAX_OUTPUT);
  rc = details_walk(&d, obj, &prefix, 0);
  for(i = 0; !rc && i < d.n_rows; i++) {
    size_t w = text_width(d.rows[i].key, strlen(d.rows[i].key));
    if(w > kw)
      kw = w;
  }
  for(i = 0; !rc && i < d.n_rows; i++) {
    size_t mark = b->len;
    rc = mdm_buf_printf(b, "%s:", d.rows[i].key);
    if(!rc)
      defang(b, mark);
    if(!rc)
      rc = pad(b, kw - text_width(d.rows[i].key, strlen(d.rows[i].key)) + 2);
    if(!rc)
      rc = mdm_buf_printf(b, "%s\n", d.rows[i].val);
  }
  for(i = 0; i < d.n_rows; i++) {
    free(d.rows[i].key);
    free(d.rows[i].val);
  }
  free(d.rows);
  mdm_buf_release(&prefix);
  return rc;
}

/* ======================================================================
 * Printing to stdout
 * ====================================================================== */

static int emit(struct mdm_buf *b, mdm_rc rc)
{
  if(rc) {
    cli_error("cannot render the output: %s", mdm_strerror(rc));
    mdm_buf_release(b);
    return CLI_EXIT_FAIL;
  }
  if(b->len && fwrite(b->data, 1, b->len, stdout) != b->len) {
    mdm_buf_release(b);
    return CLI_EXIT_FAIL;    /* main reports the write error */
  }
  mdm_buf_release(b);
  return CLI_EXIT_OK;
}

int cli_print_list(const struct cli *cli, const json_t *items,
                   const struct cli_col *cols, const char *what)
{
  struct mdm_buf b;
  mdm_rc rc = MDM_OK;

  mdm_buf_init(&b, CLI_MAX_OUTPUT);
  switch(cli->fmt) {
  case CLI_FMT_JSON:
    rc = cli_render_json(&b, items);
    break;
  case CLI_FMT_YAML:
    rc = cli_render_yaml(&b, items);
    break;
  case CLI_FMT_CSV:
    rc = cli_render_csv(&b, items);
    break;
  case CLI_FMT_TABLE:
    if(json_array_size(items) == 0) {
      fprintf(stderr, "No %s found.\n", what);
      break;
    }
    rc = cli_render_table(&b, items, cols, (int64_t)time(NULL));
    break;
  }
  return emit(&b, rc);
}

int cli_print_object(const struct cli *cli, const json_t *obj)
{
  struct mdm_buf b;
  mdm_rc rc = MDM_OK;

  mdm_buf_init(&b, CLI_MAX_OUTPUT);
  switch(cli->fmt) {
  case CLI_FMT_JSON:
    rc = cli_render_json(&b, obj);
    break;
  case CLI_FMT_YAML:
    rc = cli_render_yaml(&b, obj);
    break;
  case CLI_FMT_CSV:
    rc = cli_render_csv(&b, obj);
    break;
  case CLI_FMT_TABLE:
    rc = cli_render_details(&b, obj);
    break;
  }
  return emit(&b, rc);
}

int cli_print_line(const char *s)
{
  if(fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF)
    return CLI_EXIT_FAIL;
  return CLI_EXIT_OK;
}
