/*
 * doc.c: policy documents (CONTRACT §6, see doc.h).  Text goes through
 * libyaml's event API (which keeps its own state on the heap, never on the
 * C stack) into jansson values, with an explicit stack of open collections
 * bounded by MDM_DOC_MAX_DEPTH, so hostile nesting, alias bombs and huge
 * inputs stop early with a clear message.  (Measured with libyaml 0.2.5:
 * its event API does not recurse, but its simple-key bookkeeping is
 * quadratic in flow depth, so 100000 nested '[' take it about 20 s when
 * nobody stops it; stopped at depth 64 they take about 1 ms.)  Each
 * document keeps a line map (a tree of node → line, sorted for lookup by
 * dotted path) so validation errors read "FILE: line N: FIELD: what is
 * wrong".  Validation checks the
 * envelope here and hands spec to the kind's validator from a table
 * (kind_*.c).  mdm_doc_to_yaml() writes the block YAML that `mdmctl export`
 * prints and that parses back to the same JSON.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>
#include "core/buf.h"
#include "core/util.h"
#include "policy/doc.h"
#include "policy/doc_int.h"

#define DM_NONE UINT32_MAX      /* the root's parent */
#define DM_NOKEY SIZE_MAX       /* an item of a sequence */
#define MSG_PATH_MAX 512        /* paths in parse errors */

/* ---- plain scalars: the YAML 1.2 core schema ------------------------- */

enum scalar_kind {
  SK_STRING, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_NONFINITE
};

static int is_dig(char c)
{
  return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
  return is_dig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int str_is(const char *s, size_t n, const char *w)
{
  return strlen(w) == n && memcmp(s, w, n) == 0;
}

static int str_is_any(const char *s, size_t n, const char *const *ws)
{
  for(; *ws; ws++)
    if(str_is(s, n, *ws))
      return 1;
  return 0;
}

/* What a plain scalar s (n bytes) stands for. */
static enum scalar_kind plain_kind(const char *s, size_t n)
{
  static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
  static const char *const bools[] = {"true", "True", "TRUE", "false",
                                      "False", "FALSE", NULL};
  static const char *const nonfinite[] = {
    ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
    "-.INF", ".nan", ".NaN", ".NAN", NULL};
  size_t i = 0, j;

  if(n == 0 || str_is_any(s, n, nulls))
    return SK_NULL;
  if(str_is_any(s, n, bools))
    return SK_BOOL;
  if(str_is_any(s, n, nonfinite))
    return SK_NONFINITE;
  if(n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    for(j = 2; j < n; j++)
      if(s[1] == 'o' ? (s[j] < '0' || s[j] > '7') : !is_hex(s[j]))
        break;
    if(j == n)
      return SK_INT;
  }
  if(s[0] == '+' || s[0] == '-')
    i = 1;
  for(j = i; j < n && is_dig(s[j]); j++)
    ;
  if(j == n && j > i)
    return SK_INT;
  /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
  if(j > i) {
    if(j < n && s[j] == '.')
      for(j++; j < n && is_dig(s[j]); j++)
        ;
  }
  else {
    if(j >= n || s[j] != '.' || j + 1 >= n || !is_dig(s[j + 1]))
      return SK_STRING;
    for(j++; j < n && is_dig(s[j]); j++)
      ;
  }
  if(j < n && (s[j] == 'e' || s[j] == 'E')) {
    size_t k = j + 1;
    if(k < n && (s[k] == '+' || s[k] == '-'))
      k++;
    if(k >= n || !is_dig(s[k]))
      return SK_STRING;
    for(j = k; j < n && is_dig(s[j]); j++)
      ;
  }
  return j == n ? SK_FLOAT : SK_STRING;
}

/* The JSON value of a scalar s (NUL-terminated, n bytes) whose kind is k.
 * On error *why says what is wrong. */
static json_t *scalar_json(const char *s, size_t n, enum scalar_kind k,
                           const char **why)
{
  json_t *v = NULL;
  *why = NULL;
  switch(k) {
  case SK_NULL:
    v = json_null();
    break;
  case SK_BOOL:
    v = json_boolean(s[0] == 't' || s[0] == 'T');
    break;
  case SK_INT: {
    long long x = 0;
    if(s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
      int base = s[1] == 'o' ? 8 : 16;
      size_t i;
      for(i = 2; i < n; i++) {
        int dv = is_dig(s[i]) ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
        if(x > (LLONG_MAX - dv) / base) {
          *why = "integer out of range (quote it for a string)";
          return NULL;
        }
        x = x * base + dv;
      }
    }
    else {
      char *end;
      errno = 0;
      x = strtoll(s, &end, 10);
      if(errno == ERANGE) {
        *why = "integer out of range (quote it for a string)";
        return NULL;
      }
    }
    v = json_integer(x);
    break;
  }
  case SK_FLOAT: {
    double x;
    errno = 0;
    x = strtod(s, NULL);
    if(isinf(x) || isnan(x)) {
      *why = "number out of range";
      return NULL;
    }
    v = json_real(x);
    break;
  }
  case SK_NONFINITE:
    *why = "infinity and NaN are not supported (JSON has neither)";
    return NULL;
  case SK_STRING:
    v = json_stringn(s, n);
    if(!v)
      *why = "invalid UTF-8";
    break;
  }
  return v;
}

/* ---- the line map ----------------------------------------------------- */

struct dm_ent {
  uint32_t parent;   /* id of the parent node; DM_NONE for the root */
  uint32_t id;       /* position in build order */
  uint32_t line;     /* 1-based; a member's is its key's */
  uint32_t index;    /* item index, when key_off is DM_NOKEY */
  size_t key_off;    /* member name in the keys buffer, or DM_NOKEY */
  const char *key;   /* set by map_finish() */
};

struct mdm_docmap {
  struct dm_ent *ents;   /* sorted by (parent, items first, index | key) */
  size_t n_ents;
  char *keys;            /* NUL-terminated member names, back to back */
  int root_line;
};

static void map_free(struct mdm_docmap *m)
{
  if(!m)
    return;
  free(m->ents);
  free(m->keys);
  free(m);
}

static int ent_cmp(const void *a, const void *b)
{
  const struct dm_ent *x = a, *y = b;
  if(x->parent != y->parent)
    return x->parent < y->parent ? -1 : 1;
  if(!x->key != !y->key)
    return x->key ? 1 : -1;
  if(!x->key)
    return x->index < y->index ? -1 : x->index > y->index;
  return strcmp(x->key, y->key);
}

/* The child of parent with this key (key_len bytes, not NUL-terminated) or,
 * when key is NULL, this index. */
static const struct dm_ent *map_find(const struct mdm_docmap *m,
                                     uint32_t parent, const char *key,
                                     size_t key_len, uint32_t index)
{
  size_t lo = 0, hi = m->n_ents;
  while(lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct dm_ent *e = &m->ents[mid];
    int c;
    if(e->parent != parent)
      c = e->parent < parent ? -1 : 1;
    else if(!e->key != !key)
      c = e->key ? 1 : -1;
    else if(!key)
      c = e->index < index ? -1 : e->index > index;
    else {
      c = strncmp(e->key, key, key_len);
      if(!c && e->key[key_len])
        c = 1;
    }
    if(!c)
      return e;
    if(c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int mdm_doc_line(const struct mdm_doc *d, const char *path)
{
  const struct mdm_docmap *m;
  const char *p = path;
  uint32_t cur = 0;
  int line;

  if(!d)
    return 0;
  m = d->map;
  if(!m || !path)
    return d->line;
  line = m->root_line;
  while(*p) {
    const struct dm_ent *e = NULL;
    if(*p == '[') {
      unsigned long long idx = 0;
      p++;
      if(!is_dig(*p))
        break;
      while(is_dig(*p) && idx <= UINT32_MAX)
        idx = idx * 10 + (unsigned)(*p++ - '0');
      if(*p != ']' || idx > UINT32_MAX)
        break;
      p++;
      e = map_find(m, cur, NULL, 0, (uint32_t)idx);
    }
    else {
      size_t rest, q;
      if(p != path) {
        if(*p != '.')
          break;
        p++;
      }
      /* The longest member name that fits: a label key may hold dots. */
      rest = strlen(p);
      for(q = rest;; q--) {
        if(q == rest || p[q] == '.' || p[q] == '[') {
          e = map_find(m, cur, p, q, 0);
          if(e)
            break;
        }
        if(!q)
          break;
      }
      if(e)
        p += q;
    }
    if(!e)
      break;
    cur = e->id;
    line = (int)e->line;
  }
  return line;
}

/* ---- the parser ------------------------------------------------------- */

struct frame {
  json_t *node;      /* borrowed: its parent or the document owns it */
  uint32_t id;
  int is_map;
  int has_key;       /* a mapping's key is read, its value not yet */
  size_t key_off;
  uint32_t key_line;
  uint32_t n_items;
};

struct parser {
  const char *name;
  const char *text;
  size_t len;
  char *err;
  size_t errlen;
  struct mdm_docset docs;    /* what this text holds so far */
  /* the document being read */
  json_t *root;
  int doc_line;
  struct frame stack[MDM_DOC_MAX_DEPTH];
  size_t depth;
  struct dm_ent *ents;
  size_t n_ents, cap_ents;
  struct mdm_buf keys;
  size_t n_nodes;            /* over the whole text */
};

static mdm_rc perr(struct parser *ps, mdm_rc rc, int line, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static mdm_rc perr(struct parser *ps, mdm_rc rc, int line, const char *fmt,
                   ...)
{
  va_list ap;
  int n = 0;
  if(!ps->err || !ps->errlen)
    return rc;
  if(line > 0)
    n = snprintf(ps->err, ps->errlen, "%s: line %d: ", ps->name, line);
  else
    n = snprintf(ps->err, ps->errlen, "%s: ", ps->name);
  if(n < 0 || (size_t)n >= ps->errlen)
    return rc;
  va_start(ap, fmt);
  vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return rc;
}

static void path_add_key(char *buf, size_t n, const char *key)
{
  size_t len = strlen(buf);
  if(len < n)
    snprintf(buf + len, n - len, "%s%s", len ? "." : "", key);
}

static void path_add_index(char *buf, size_t n, unsigned long i)
{
  size_t len = strlen(buf);
  if(len < n)
    snprintf(buf + len, n - len, "[%lu]", i);
}

/* The dotted path of node id (in build order) into buf. */
static void ent_path(const struct parser *ps, uint32_t id, char *buf,
                     size_t n)
{
  uint32_t chain[MDM_DOC_MAX_DEPTH + 2];
  size_t k = 0;
  buf[0] = '\0';
  while(id != DM_NONE && k < sizeof(chain) / sizeof(chain[0])) {
    chain[k++] = id;
    id = ps->ents[id].parent;
  }
  while(k-- > 0) {
    const struct dm_ent *e = &ps->ents[chain[k]];
    if(e->parent == DM_NONE)
      continue;
    if(e->key_off == DM_NOKEY)
      path_add_index(buf, n, e->index);
    else
      path_add_key(buf, n, ps->keys.data + e->key_off);
  }
}

static const char *or_doc(const char *path)
{
  return path[0] ? path : "document";
}

/* The path of the node about to be read: a value of the top collection, or
 * the document itself.  "document" for the root. */
static void next_path(const struct parser *ps, char *buf, size_t n)
{
  const struct frame *top;
  buf[0] = '\0';
  if(ps->depth) {
    top = &ps->stack[ps->depth - 1];
    ent_path(ps, top->id, buf, n);
    if(top->is_map && top->has_key)
      path_add_key(buf, n, ps->keys.data + top->key_off);
    else if(!top->is_map)
      path_add_index(buf, n, top->n_items);
  }
  if(!buf[0])
    snprintf(buf, n, "document");
}

static mdm_rc add_ent(struct parser *ps, uint32_t parent, size_t key_off,
                      uint32_t index, int line)
{
  struct dm_ent *e;
  if(ps->n_ents == ps->cap_ents) {
    size_t ncap = ps->cap_ents ? ps->cap_ents * 2 : 64;
    struct dm_ent *ne = realloc(ps->ents, ncap * sizeof(*ne));
    if(!ne)
      return MDM_ERR_NOMEM;
    ps->ents = ne;
    ps->cap_ents = ncap;
  }
  e = &ps->ents[ps->n_ents];
  e->parent = parent;
  e->id = (uint32_t)ps->n_ents;
  e->line = (uint32_t)line;
  e->index = index;
  e->key_off = key_off;
  e->key = NULL;
  ps->n_ents++;
  return MDM_OK;
}

/* Hang v (ownership taken) under the top collection, or make it the root.
 * The new node's id is ps->n_ents - 1 on success. */
static mdm_rc attach(struct parser *ps, json_t *v, int line)
{
  struct frame *top;
  mdm_rc rc;

  if(!ps->depth) {
    rc = add_ent(ps, DM_NONE, DM_NOKEY, 0, line);
    if(rc) {
      json_decref(v);
      return rc;
    }
    ps->root = v;   /* NULL until now: a document has one root */
    return MDM_OK;
  }
  top = &ps->stack[ps->depth - 1];
  if(top->is_map) {
    rc = add_ent(ps, top->id, top->key_off, 0, (int)top->key_line);
    if(rc) {
      json_decref(v);
      return rc;
    }
    top->has_key = 0;
    /* Steals v even when it fails. */
    if(json_object_set_new(top->node, ps->keys.data + top->key_off, v))
      return MDM_ERR_NOMEM;
    return MDM_OK;
  }
  rc = add_ent(ps, top->id, DM_NOKEY, top->n_items, line);
  if(rc) {
    json_decref(v);
    return rc;
  }
  top->n_items++;
  if(json_array_append_new(top->node, v))
    return MDM_ERR_NOMEM;
  return MDM_OK;
}

static int count_node(struct parser *ps)
{
  return ++ps->n_nodes > MDM_DOC_MAX_NODES;
}

#define YAML_TAG(x) "tag:yaml.org,2002:" x

/* A mapping key: a scalar, not null, not seen before in this mapping. */
static mdm_rc on_key(struct parser *ps, const yaml_event_t *ev, int line)
{
  struct frame *top = &ps->stack[ps->depth - 1];
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length, off;
  const char *tag = (const char *)ev->data.scalar.tag;
  char path[MSG_PATH_MAX];
  mdm_rc rc;

  ent_path(ps, top->id, path, sizeof(path));
  if(tag && strcmp(tag, "!") &&
     strncmp(tag, YAML_TAG(""), strlen(YAML_TAG(""))))
    return perr(ps, MDM_ERR_INVAL, line, "%s: unsupported tag '%s'",
                or_doc(path), tag);
  if(!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
     plain_kind(s, n) == SK_NULL)
    return perr(ps, MDM_ERR_INVAL, line,
                "%s: a mapping key must be a string, not null", or_doc(path));
  if(n > MDM_DOC_MAX_KEY)
    return perr(ps, MDM_ERR_TOOBIG, line,
                "%s: mapping key longer than %d bytes", or_doc(path),
                MDM_DOC_MAX_KEY);
  if(memchr(s, '\0', n))
    return perr(ps, MDM_ERR_INVAL, line,
                "%s: mapping key contains a NUL character", or_doc(path));
  if(json_object_get(top->node, s)) {
    int first = 0;
    size_t i;
    for(i = 0; i < ps->n_ents; i++)
      if(ps->ents[i].parent == top->id && ps->ents[i].key_off != DM_NOKEY &&
         !strcmp(ps->keys.data + ps->ents[i].key_off, s)) {
        first = (int)ps->ents[i].line;
        break;
      }
    path_add_key(path, sizeof(path), s);
    return perr(ps, MDM_ERR_INVAL, line,
                "%s: duplicate key (first at line %d)", path, first);
  }
  off = ps->keys.len;
  rc = mdm_buf_append(&ps->keys, s, n + 1);   /* with its NUL */
  if(rc)
    return rc == MDM_ERR_TOOBIG ? perr(ps, rc, line, "too many keys") : rc;
  top->has_key = 1;
  top->key_off = off;
  top->key_line = (uint32_t)line;
  return MDM_OK;
}

static mdm_rc on_scalar(struct parser *ps, const yaml_event_t *ev)
{
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int line = (int)ev->start_mark.line + 1;
  enum scalar_kind k = SK_STRING, want = SK_STRING;
  const char *why = NULL;
  char path[MSG_PATH_MAX];
  json_t *v;

  if(count_node(ps))
    return perr(ps, MDM_ERR_TOOBIG, line, "more than %d nodes",
                MDM_DOC_MAX_NODES);
  if(n > MDM_DOC_MAX_SCALAR) {
    next_path(ps, path, sizeof(path));
    return perr(ps, MDM_ERR_TOOBIG, line, "%s: scalar longer than %d bytes",
                path, MDM_DOC_MAX_SCALAR);
  }
  if(ps->depth && ps->stack[ps->depth - 1].is_map &&
     !ps->stack[ps->depth - 1].has_key)
    return on_key(ps, ev, line);

  if(!tag)
    k = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_kind(s, n)
                                                          : SK_STRING;
  else if(!strcmp(tag, "!") || !strcmp(tag, YAML_TAG("str")))
    k = SK_STRING;
  else {
    if(!strcmp(tag, YAML_TAG("null")))
      want = SK_NULL;
    else if(!strcmp(tag, YAML_TAG("bool")))
      want = SK_BOOL;
    else if(!strcmp(tag, YAML_TAG("int")))
      want = SK_INT;
    else if(!strcmp(tag, YAML_TAG("float")))
      want = SK_FLOAT;
    else {
      next_path(ps, path, sizeof(path));
      return perr(ps, MDM_ERR_INVAL, line, "%s: unsupported tag '%s'", path,
                  tag);
    }
    k = plain_kind(s, n);
    if(want == SK_FLOAT && k == SK_INT)
      k = SK_FLOAT;   /* !!float 1 is 1.0 */
    if(k != want) {
      next_path(ps, path, sizeof(path));
      return perr(ps, MDM_ERR_INVAL, line, "%s: not a valid !!%s", path,
                  tag + strlen(YAML_TAG("")));
    }
  }
  v = scalar_json(s, n, k, &why);
  if(!v) {
    if(!why)
      return MDM_ERR_NOMEM;
    next_path(ps, path, sizeof(path));
    return perr(ps, MDM_ERR_INVAL, line, "%s: %s", path, why);
  }
  return attach(ps, v, line);
}

static mdm_rc on_collection(struct parser *ps, const yaml_event_t *ev,
                            int is_map)
{
  const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag
                                          : ev->data.sequence_start.tag);
  int line = (int)ev->start_mark.line + 1;
  char path[MSG_PATH_MAX];
  struct frame *f;
  json_t *v;
  mdm_rc rc;

  if(count_node(ps))
    return perr(ps, MDM_ERR_TOOBIG, line, "more than %d nodes",
                MDM_DOC_MAX_NODES);
  if(ps->depth && ps->stack[ps->depth - 1].is_map &&
     !ps->stack[ps->depth - 1].has_key) {
    ent_path(ps, ps->stack[ps->depth - 1].id, path, sizeof(path));
    return perr(ps, MDM_ERR_INVAL, line,
                "%s: a mapping key must be a string, not a %s",
                path[0] ? path : "document", is_map ? "mapping" : "list");
  }
  if(tag && strcmp(tag, "!") &&
     strcmp(tag, is_map ? YAML_TAG("map") : YAML_TAG("seq"))) {
    next_path(ps, path, sizeof(path));
    return perr(ps, MDM_ERR_INVAL, line, "%s: unsupported tag '%s'", path,
                tag);
  }
  if(ps->depth >= MDM_DOC_MAX_DEPTH) {
    next_path(ps, path, sizeof(path));
    return perr(ps, MDM_ERR_TOOBIG, line,
                "%s: nested deeper than %d levels", path, MDM_DOC_MAX_DEPTH);
  }
  v = is_map ? json_object() : json_array();
  if(!v)
    return MDM_ERR_NOMEM;
  rc = attach(ps, v, line);
  if(rc)
    return rc;
  f = &ps->stack[ps->depth++];
  f->node = v;
  f->id = (uint32_t)(ps->n_ents - 1);
  f->is_map = is_map;
  f->has_key = 0;
  f->key_off = DM_NOKEY;
  f->key_line = 0;
  f->n_items = 0;
  return MDM_OK;
}

static void doc_reset(struct parser *ps)
{
  json_decref(ps->root);
  ps->root = NULL;
  ps->depth = 0;
  ps->n_ents = 0;
  mdm_buf_reset(&ps->keys);
}

static mdm_rc docset_reserve(struct mdm_docset *ds, size_t more)
{
  struct mdm_doc *nd;
  size_t ncap;
  if(ds->n_docs + more <= ds->cap)
    return MDM_OK;
  ncap = ds->cap ? ds->cap : 8;
  while(ncap < ds->n_docs + more)
    ncap *= 2;
  nd = realloc(ds->docs, ncap * sizeof(*nd));
  if(!nd)
    return MDM_ERR_NOMEM;
  ds->docs = nd;
  ds->cap = ncap;
  return MDM_OK;
}

/* The document is complete: keep it, unless it is empty. */
static mdm_rc doc_finish(struct parser *ps)
{
  struct mdm_docmap *m = NULL;
  struct mdm_doc *d;
  size_t i;
  mdm_rc rc;

  if(!ps->root || json_is_null(ps->root)) {
    doc_reset(ps);
    return MDM_OK;
  }
  rc = docset_reserve(&ps->docs, 1);
  if(rc)
    return rc;
  m = calloc(1, sizeof(*m));
  if(!m)
    return MDM_ERR_NOMEM;
  d = &ps->docs.docs[ps->docs.n_docs];
  d->file = strdup(ps->name);
  if(!d->file) {
    free(m);
    return MDM_ERR_NOMEM;
  }
  m->ents = ps->ents;
  m->n_ents = ps->n_ents;
  m->keys = mdm_buf_steal(&ps->keys);
  m->root_line = ps->n_ents ? (int)ps->ents[0].line : ps->doc_line;
  ps->ents = NULL;
  ps->n_ents = ps->cap_ents = 0;
  for(i = 0; i < m->n_ents; i++)
    if(m->ents[i].key_off != DM_NOKEY)
      m->ents[i].key = m->keys + m->ents[i].key_off;
  qsort(m->ents, m->n_ents, sizeof(*m->ents), ent_cmp);
  d->json = ps->root;
  d->line = ps->doc_line;
  d->map = m;
  ps->root = NULL;
  ps->docs.n_docs++;
  doc_reset(ps);
  return MDM_OK;
}

static int line_at(const char *text, size_t len, size_t off)
{
  int line = 1;
  size_t i;
  for(i = 0; i < off && i < len; i++)
    if(text[i] == '\n')
      line++;
  return line;
}

/* Does line (0-based) of text start with blanks that hold a tab? */
static int has_tab_indent(const char *text, size_t len, size_t line)
{
  size_t i = 0;
  while(line && i < len) {
    if(text[i++] == '\n')
      line--;
  }
  for(; i < len && (text[i] == ' ' || text[i] == '\t'); i++)
    if(text[i] == '\t')
      return 1;
  return 0;
}

static mdm_rc yaml_failed(struct parser *ps, const yaml_parser_t *yp)
{
  const char *problem = yp->problem ? yp->problem : "syntax error";
  int line;

  switch(yp->error) {
  case YAML_MEMORY_ERROR:
    return perr(ps, MDM_ERR_NOMEM, 0, "out of memory");
  case YAML_READER_ERROR:
    line = line_at(ps->text, ps->len, yp->problem_offset);
    if(strstr(problem, "UTF-8") || strstr(problem, "Unicode"))
      return perr(ps, MDM_ERR_INVAL, line, "not valid UTF-8 text (%s)",
                  problem);
    return perr(ps, MDM_ERR_INVAL, line, "%s", problem);
  default:
    line = (int)yp->problem_mark.line + 1;
    if(!strcmp(problem, "found character that cannot start any token") &&
       has_tab_indent(ps->text, ps->len, yp->problem_mark.line))
      return perr(ps, MDM_ERR_INVAL, line,
                  "tab in indentation (YAML indents with spaces only)");
    if(yp->context)
      return perr(ps, MDM_ERR_INVAL, line, "%s (%s at line %d)", problem,
                  yp->context, (int)yp->context_mark.line + 1);
    return perr(ps, MDM_ERR_INVAL, line, "%s", problem);
  }
}

static mdm_rc parse_events(struct parser *ps, const char *text, size_t len)
{
  yaml_parser_t yp;
  yaml_event_t ev;
  int has_ev = 0, is_done = 0;
  char path[MSG_PATH_MAX];
  mdm_rc rc = MDM_OK;

  if(!yaml_parser_initialize(&yp))
    return MDM_ERR_NOMEM;
  yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
  /* JSON and our YAML are UTF-8; no guessing UTF-16 from a BOM. */
  yaml_parser_set_encoding(&yp, YAML_UTF8_ENCODING);
  while(!is_done) {
    if(!yaml_parser_parse(&yp, &ev)) {
      rc = yaml_failed(ps, &yp);
      goto out;
    }
    has_ev = 1;
    switch(ev.type) {
    case YAML_STREAM_END_EVENT:
      is_done = 1;
      break;
    case YAML_DOCUMENT_START_EVENT:
      doc_reset(ps);
      ps->doc_line = (int)ev.start_mark.line + 1;
      break;
    case YAML_DOCUMENT_END_EVENT:
      rc = doc_finish(ps);
      break;
    case YAML_ALIAS_EVENT:
      next_path(ps, path, sizeof(path));
      rc = perr(ps, MDM_ERR_INVAL, (int)ev.start_mark.line + 1,
                "%s: aliases are not supported", path);
      break;
    case YAML_SCALAR_EVENT:
      rc = on_scalar(ps, &ev);
      break;
    case YAML_SEQUENCE_START_EVENT:
      rc = on_collection(ps, &ev, 0);
      break;
    case YAML_MAPPING_START_EVENT:
      rc = on_collection(ps, &ev, 1);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if(ps->depth)
        ps->depth--;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
    has_ev = 0;
    if(rc)
      goto out;
  }
out:
  if(has_ev)
    yaml_event_delete(&ev);
  yaml_parser_delete(&yp);
  return rc;
}

/* libyaml refuses "\uD83D\uDE00" (a surrogate pair, as JSON writes
 * characters beyond U+FFFF).  When the whole text is JSON (jansson says so),
 * rewrite each pair as YAML's "\U0001F600": the same lines, the same value.
 * *out is NULL when nothing needs rewriting; else caller frees it. */
static mdm_rc json_fix_surrogates(const char *t, size_t n, char **out,
                                  size_t *out_len)
{
  json_error_t jerr;
  json_t *j;
  size_t i = 0, o = 0, bom = 0;
  int in_str = 0, is_found = 0;
  char *r;

  *out = NULL;
  if(n >= 3 && !memcmp(t, "\xef\xbb\xbf", 3))
    i = bom = 3;   /* libyaml skips it, jansson does not */
  while(i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' ||
                  t[i] == '\r'))
    i++;
  if(i >= n || (t[i] != '{' && t[i] != '['))
    return MDM_OK;
  for(i = 0; i + 3 < n && !is_found; i++)
    if(t[i] == '\\' && t[i + 1] == 'u' && (t[i + 2] | 0x20) == 'd' &&
       strchr("89abAB", t[i + 3]))
      is_found = 1;
  if(!is_found)
    return MDM_OK;
  j = json_loadb(t + bom, n - bom, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if(!j)
    return MDM_OK;   /* not JSON: libyaml will say what is wrong */
  json_decref(j);
  r = malloc(n + 1);
  if(!r)
    return MDM_ERR_NOMEM;
  for(i = 0; i < n;) {
    if(!in_str) {
      if(t[i] == '"')
        in_str = 1;
      r[o++] = t[i++];
      continue;
    }
    if(t[i] == '"') {
      in_str = 0;
      r[o++] = t[i++];
      continue;
    }
    if(t[i] != '\\' || i + 1 >= n) {
      r[o++] = t[i++];
      continue;
    }
    if(t[i + 1] == 'u' && i + 12 <= n && t[i + 6] == '\\' &&
       t[i + 7] == 'u') {
      char h[5], l[5];
      unsigned long hi, lo;
      memcpy(h, t + i + 2, 4);
      memcpy(l, t + i + 8, 4);
      h[4] = l[4] = '\0';
      hi = strtoul(h, NULL, 16);
      lo = strtoul(l, NULL, 16);
      if(is_hex(h[0]) && is_hex(h[1]) && is_hex(h[2]) && is_hex(h[3]) &&
         is_hex(l[0]) && is_hex(l[1]) && is_hex(l[2]) && is_hex(l[3]) &&
         hi >= 0xD800 && hi <= 0xDBFF && lo >= 0xDC00 && lo <= 0xDFFF) {
        unsigned long cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        snprintf(r + o, 11, "\\U%08lX", cp);
        o += 10;
        i += 12;
        continue;
      }
    }
    r[o++] = t[i++];   /* the backslash and what it escapes */
    r[o++] = t[i++];
  }
  r[o] = '\0';
  *out = r;
  *out_len = o;
  return MDM_OK;
}

/* ---- document sets ---------------------------------------------------- */

void mdm_docset_init(struct mdm_docset *ds)
{
  ds->docs = NULL;
  ds->n_docs = 0;
  ds->cap = 0;
}

static void doc_release(struct mdm_doc *d)
{
  json_decref(d->json);
  free(d->file);
  map_free(d->map);
  d->json = NULL;
  d->file = NULL;
  d->map = NULL;
}

/* Drop the documents from index n on. */
static void docset_truncate(struct mdm_docset *ds, size_t n)
{
  while(ds->n_docs > n)
    doc_release(&ds->docs[--ds->n_docs]);
}

void mdm_docset_release(struct mdm_docset *ds)
{
  if(!ds)
    return;
  docset_truncate(ds, 0);
  free(ds->docs);
  mdm_docset_init(ds);
}

mdm_rc mdm_doc_parse(struct mdm_docset *ds, const char *name,
                     const char *text, size_t len, char *err, size_t errlen)
{
  struct parser ps;
  char *fixed = NULL;
  size_t fixed_len = 0, i;
  mdm_rc rc;

  if(err && errlen)
    err[0] = '\0';
  if(!ds || !name || (!text && len))
    return MDM_ERR_INVAL;
  memset(&ps, 0, sizeof(ps));
  ps.name = name;
  ps.text = text;
  ps.len = len;
  ps.err = err;
  ps.errlen = errlen;
  mdm_docset_init(&ps.docs);
  /* Keys live in the text, so the text bounds them. */
  mdm_buf_init(&ps.keys, MDM_DOC_MAX_INPUT + 1);
  if(len > MDM_DOC_MAX_INPUT)
    return perr(&ps, MDM_ERR_TOOBIG, 0, "larger than %d bytes",
                MDM_DOC_MAX_INPUT);
  rc = json_fix_surrogates(text ? text : "", len, &fixed, &fixed_len);
  if(rc)
    goto out;
  rc = parse_events(&ps, fixed ? fixed : text ? text : "",
                    fixed ? fixed_len : len);
  if(rc)
    goto out;
  rc = docset_reserve(ds, ps.docs.n_docs);
  if(rc)
    goto out;
  for(i = 0; i < ps.docs.n_docs; i++)
    ds->docs[ds->n_docs++] = ps.docs.docs[i];
  ps.docs.n_docs = 0;
out:
  if(rc == MDM_ERR_NOMEM && err && errlen && !err[0])
    perr(&ps, rc, 0, "out of memory");
  doc_reset(&ps);
  free(ps.ents);
  mdm_buf_release(&ps.keys);
  mdm_docset_release(&ps.docs);
  free(fixed);
  return rc;
}

/* ---- loading files and directories ------------------------------------ */

static mdm_rc load_error(const char *path, mdm_rc rc, char *err,
                         size_t errlen, const char *what)
{
  if(err && errlen)
    snprintf(err, errlen, "%s: %s", path, what);
  return rc;
}

static mdm_rc load_file(struct mdm_docset *ds, const char *path, char *err,
                        size_t errlen)
{
  char *text = NULL;
  size_t len = 0;
  char what[64];
  mdm_rc rc = mdm_file_read(path, MDM_DOC_MAX_INPUT, &text, &len);

  switch(rc) {
  case MDM_OK:
    break;
  case MDM_ERR_NOTFOUND:
    return load_error(path, rc, err, errlen, "no such file");
  case MDM_ERR_TOOBIG:
    snprintf(what, sizeof(what), "larger than %d bytes", MDM_DOC_MAX_INPUT);
    return load_error(path, rc, err, errlen, what);
  case MDM_ERR_NOMEM:
    return load_error(path, rc, err, errlen, "out of memory");
  default:
    return load_error(path, rc, err, errlen, "cannot read");
  }
  rc = mdm_doc_parse(ds, path, text, len, err, errlen);
  free(text);
  return rc;
}

static int is_doc_file(const char *name)
{
  static const char *const exts[] = {".yaml", ".yml", ".json", NULL};
  size_t n = strlen(name), i;
  for(i = 0; exts[i]; i++) {
    size_t e = strlen(exts[i]);
    if(n > e && !strcmp(name + n - e, exts[i]))
      return 1;
  }
  return 0;
}

static int is_visible(const struct dirent *e)
{
  return e->d_name[0] != '.';
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

static mdm_rc load_dir(struct mdm_docset *ds, const char *dir, int level,
                       char *err, size_t errlen)
{
  struct dirent **list = NULL;
  size_t dlen = strlen(dir);
  int n, i;
  mdm_rc rc = MDM_OK;

  if(level > MDM_DOC_MAX_DIR_DEPTH)
    return load_error(dir, MDM_ERR_TOOBIG, err, errlen,
                      "directories nested too deep");
  n = scandir(dir, &list, is_visible, name_cmp);
  if(n < 0)
    return load_error(dir, errno == ENOMEM ? MDM_ERR_NOMEM : MDM_ERR_IO, err,
                      errlen, "cannot read directory");
  for(i = 0; i < n; i++) {
    const char *name = list[i]->d_name;
    size_t plen = dlen + strlen(name) + 2;
    int is_link = 0;
    struct stat st;
    char *path;

    if(rc)
      continue;   /* free the rest of the list */
    path = malloc(plen);
    if(!path) {
      rc = MDM_ERR_NOMEM;
      continue;
    }
    snprintf(path, plen, "%s%s%s", dir,
             dlen && dir[dlen - 1] == '/' ? "" : "/", name);
    if(lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
      is_link = 1;
      if(stat(path, &st) != 0)
        st.st_mode = 0;   /* dangling: skip */
    }
    if(S_ISDIR(st.st_mode) && !is_link)  /* no loops through links */
      rc = load_dir(ds, path, level + 1, err, errlen);
    else if(S_ISREG(st.st_mode) && is_doc_file(name))
      rc = load_file(ds, path, err, errlen);
    free(path);
  }
  for(i = 0; i < n; i++)
    free(list[i]);
  free(list);
  return rc;
}

mdm_rc mdm_doc_load_path(struct mdm_docset *ds, const char *path, char *err,
                         size_t errlen)
{
  size_t n0;
  struct stat st;
  mdm_rc rc;

  if(err && errlen)
    err[0] = '\0';
  if(!ds || !path)
    return MDM_ERR_INVAL;
  n0 = ds->n_docs;
  if(stat(path, &st) != 0)
    return load_error(path, errno == ENOENT ? MDM_ERR_NOTFOUND : MDM_ERR_IO,
                      err, errlen,
                      errno == ENOENT ? "no such file or directory"
                                      : "cannot read");
  if(S_ISDIR(st.st_mode))
    rc = load_dir(ds, path, 0, err, errlen);
  else
    rc = load_file(ds, path, err, errlen);
  if(rc)
    docset_truncate(ds, n0);
  return rc;
}

/* ---- validation helpers (doc_int.h) ----------------------------------- */

size_t mdm_vpath_key(struct mdm_vctx *v, const char *key)
{
  size_t old = v->path_len;
  int n = snprintf(v->path + old, sizeof(v->path) - old, "%s%s",
                   old ? "." : "", key);
  v->path_len = n < 0 ? old : old + (size_t)n;
  if(v->path_len >= sizeof(v->path))
    v->path_len = sizeof(v->path) - 1;
  return old;
}

size_t mdm_vpath_index(struct mdm_vctx *v, size_t i)
{
  size_t old = v->path_len;
  int n = snprintf(v->path + old, sizeof(v->path) - old, "[%zu]", i);
  v->path_len = n < 0 ? old : old + (size_t)n;
  if(v->path_len >= sizeof(v->path))
    v->path_len = sizeof(v->path) - 1;
  return old;
}

void mdm_vpath_pop(struct mdm_vctx *v, size_t old_len)
{
  v->path_len = old_len;
  v->path[old_len] = '\0';
}

mdm_rc mdm_verr(struct mdm_vctx *v, const char *fmt, ...)
{
  va_list ap;
  int n;
  if(!v->err || !v->errlen)
    return MDM_ERR_UNPROCESSABLE;
  /* Documents that came without a text (JSON over the API) have no
   * lines: the message names the document and the field. */
  if(mdm_doc_line(v->d, v->path) > 0)
    n = snprintf(v->err, v->errlen, "%s: line %d: %s: ", v->d->file,
                 mdm_doc_line(v->d, v->path),
                 v->path_len ? v->path : "document");
  else
    n = snprintf(v->err, v->errlen, "%s: %s: ", v->d->file,
                 v->path_len ? v->path : "document");
  if(n >= 0 && (size_t)n < v->errlen) {
    va_start(ap, fmt);
    vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return MDM_ERR_UNPROCESSABLE;
}

const char *mdm_vquote(const char *s, char *buf, size_t n)
{
  size_t len = strlen(s), max = 64, i, o = 0;
  int is_cut = 0;
  if(n < 8) {
    if(n)
      buf[0] = '\0';
    return buf;
  }
  if(max > n - 6)
    max = n - 6;
  if(len > max) {
    len = max;
    while(len && ((unsigned char)s[len] & 0xC0) == 0x80)
      len--;   /* not inside a UTF-8 sequence */
    is_cut = 1;
  }
  buf[o++] = '\'';
  for(i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  if(is_cut) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

int mdm_str_index(const char *const *list, const char *s)
{
  int i;
  for(i = 0; list[i]; i++)
    if(!strcmp(list[i], s))
      return i;
  return -1;
}

int mdm_is_dns_label(const char *s)
{
  size_t n = strlen(s), i;
  if(n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
    return 0;
  for(i = 0; i < n; i++)
    if(!((s[i] >= 'a' && s[i] <= 'z') || is_dig(s[i]) || s[i] == '-'))
      return 0;
  return 1;
}

int mdm_is_duration(const char *s, long long *secs)
{
  size_t n = strlen(s);
  int64_t v = 0;
  if(n < 2 || n > 20 || !strchr("smhd", s[n - 1]))
    return 0;
  if(mdm_duration_parse(s, &v) || v <= 0)
    return 0;
  if(secs)
    *secs = v;
  return 1;
}

mdm_rc mdm_vobject(struct mdm_vctx *v, json_t *val,
                   const struct mdm_vfield *fields, size_t n_fields,
                   int allow_unknown)
{
  const char *key;
  json_t *member;
  size_t i, old;
  mdm_rc rc;

  if(!json_is_object(val))
    return mdm_verr(v, "expected a mapping");
  if(!allow_unknown) {
    json_object_foreach(val, key, member) {
      for(i = 0; i < n_fields; i++)
        if(!strcmp(fields[i].name, key))
          break;
      if(i == n_fields) {
        char known[256] = "";
        size_t k, len;
        for(k = 0; k < n_fields; k++) {
          len = strlen(known);
          snprintf(known + len, sizeof(known) - len, "%s%s", k ? ", " : "",
                   fields[k].name);
        }
        mdm_vpath_key(v, key);
        return mdm_verr(v, "unknown field (expected one of %s)", known);
      }
    }
  }
  for(i = 0; i < n_fields; i++) {
    member = json_object_get(val, fields[i].name);
    if(!member && fields[i].is_required) {
      mdm_vpath_key(v, fields[i].name);
      return mdm_verr(v, "required field is missing");
    }
  }
  for(i = 0; i < n_fields; i++) {
    member = json_object_get(val, fields[i].name);
    if(!member || !fields[i].check)
      continue;
    old = mdm_vpath_key(v, fields[i].name);
    rc = fields[i].check(v, member, fields[i].arg);
    if(rc)
      return rc;
    mdm_vpath_pop(v, old);
  }
  return MDM_OK;
}

mdm_rc mdm_vcheck_object(struct mdm_vctx *v, json_t *val, const void *arg)
{
  (void)arg;
  return json_is_object(val) ? MDM_OK : mdm_verr(v, "expected a mapping");
}

mdm_rc mdm_vcheck_string(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const struct mdm_vstrlen *r = arg;
  size_t n;
  if(!json_is_string(val))
    return r ? mdm_verr(v, "expected a string of %zu..%zu bytes", r->min,
                        r->max)
             : mdm_verr(v, "expected a string");
  n = json_string_length(val);
  if(r && (n < r->min || n > r->max))
    return mdm_verr(v, "expected a string of %zu..%zu bytes", r->min,
                    r->max);
  if(memchr(json_string_value(val), '\0', n))
    return mdm_verr(v, "contains a NUL character");
  return MDM_OK;
}

mdm_rc mdm_vcheck_int(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const struct mdm_vrange *r = arg;
  json_int_t x;
  if(!json_is_integer(val))
    return mdm_verr(v, "expected an integer in %lld..%lld", r->min, r->max);
  x = json_integer_value(val);
  if(x < r->min || x > r->max)
    return mdm_verr(v, "expected an integer in %lld..%lld", r->min, r->max);
  return MDM_OK;
}

mdm_rc mdm_vcheck_bool(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const char *const yaml11[] = {"yes", "Yes", "YES", "no", "No", "NO",
                                       "on", "On", "ON", "off", "Off", "OFF",
                                       "y", "Y", "n", "N", NULL};
  (void)arg;
  if(json_is_boolean(val))
    return MDM_OK;
  if(json_is_string(val) &&
     mdm_str_index(yaml11, json_string_value(val)) >= 0)
    return mdm_verr(v, "expected true or false ('%s' is a string in YAML "
                    "1.2)", json_string_value(val));
  return mdm_verr(v, "expected true or false");
}

mdm_rc mdm_vcheck_enum(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *const *list = arg;
  char known[256] = "", q[MDM_VQUOTE_LEN];
  size_t i, len;
  if(json_is_string(val) && mdm_str_index(list, json_string_value(val)) >= 0)
    return MDM_OK;
  for(i = 0; list[i]; i++) {
    len = strlen(known);
    snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "",
             list[i]);
  }
  if(json_is_string(val))
    return mdm_verr(v, "expected one of %s (got %s)", known,
                    mdm_vquote(json_string_value(val), q, sizeof(q)));
  return mdm_verr(v, "expected one of %s", known);
}

mdm_rc mdm_vcheck_name(struct mdm_vctx *v, json_t *val, const void *arg)
{
  char q[MDM_VQUOTE_LEN];
  (void)arg;
  if(json_is_string(val) && mdm_is_dns_label(json_string_value(val)))
    return MDM_OK;
  if(json_is_string(val))
    return mdm_verr(v, "expected a DNS label: 1-63 of a-z, 0-9 and '-', not "
                    "starting or ending with '-' (got %s)",
                    mdm_vquote(json_string_value(val), q, sizeof(q)));
  return mdm_verr(v, "expected a DNS label: 1-63 of a-z, 0-9 and '-', not "
                  "starting or ending with '-'");
}

mdm_rc mdm_vcheck_string_map(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  const char *key;
  json_t *member;
  (void)arg;
  if(!json_is_object(val))
    return mdm_verr(v, "expected a mapping of strings to strings");
  json_object_foreach(val, key, member) {
    if(!json_is_string(member)) {
      mdm_vpath_key(v, key);
      return mdm_verr(v, "expected a string");
    }
  }
  return MDM_OK;
}

mdm_rc mdm_vcheck_duration(struct mdm_vctx *v, json_t *val, const void *arg)
{
  (void)arg;
  if(json_is_string(val) && mdm_is_duration(json_string_value(val), NULL))
    return MDM_OK;
  return mdm_verr(v, "expected a duration such as 30m, 24h or 7d");
}

static const char *const platforms[] = {"linux", "android", "ios", "macos",
                                        "windows", NULL};

static mdm_rc check_platforms(struct mdm_vctx *v, json_t *val,
                              const void *arg)
{
  size_t i, old;
  json_t *item;
  mdm_rc rc;
  (void)arg;
  if(!json_is_array(val) || !json_array_size(val))
    return mdm_verr(v, "expected a non-empty list of platforms");
  json_array_foreach(val, i, item) {
    old = mdm_vpath_index(v, i);
    rc = mdm_vcheck_enum(v, item, platforms);
    if(rc)
      return rc;
    mdm_vpath_pop(v, old);
  }
  return MDM_OK;
}

mdm_rc mdm_vcheck_assign(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const struct mdm_vfield fields[] = {
    {"platforms", 0, check_platforms, NULL},
    {"labels", 0, mdm_vcheck_string_map, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, fields, sizeof(fields) / sizeof(fields[0]), 0);
}

/* ---- validation: the envelope and the kinds --------------------------- */

static const struct kind {
  const char *name;
  mdm_kind_validate_fn validate;   /* NULL: named by CONTRACT §6, not yet */
} kinds[] = {
  {"CompliancePolicy", mdm_kind_compliance_validate},
  {"ConfigurationProfile", mdm_kind_profile_validate},
  {"ConditionalAccessPolicy", mdm_kind_access_validate},
  {"AppProtectionPolicy", NULL},
  {"DetectionRule", NULL},
  {"Notifier", NULL},
  {"EnrollmentProfile", NULL},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static const struct kind *kind_find(const char *name)
{
  size_t i;
  for(i = 0; name && i < N_KINDS; i++)
    if(!strcmp(kinds[i].name, name))
      return &kinds[i];
  return NULL;
}

int mdm_doc_kind_known(const char *kind)
{
  const struct kind *k = kind_find(kind);
  return k && k->validate;
}

const char *mdm_doc_kind(const struct mdm_doc *d)
{
  return d ? json_string_value(json_object_get(d->json, "kind")) : NULL;
}

const char *mdm_doc_name(const struct mdm_doc *d)
{
  json_t *meta = d ? json_object_get(d->json, "metadata") : NULL;
  return json_string_value(json_object_get(meta, "name"));
}

static mdm_rc check_api_version(struct mdm_vctx *v, json_t *val,
                                const void *arg)
{
  char q[MDM_VQUOTE_LEN];
  (void)arg;
  if(json_is_string(val) && !strcmp(json_string_value(val), "mdm/v1"))
    return MDM_OK;
  if(json_is_string(val))
    return mdm_verr(v, "expected 'mdm/v1' (got %s)",
                    mdm_vquote(json_string_value(val), q, sizeof(q)));
  return mdm_verr(v, "expected 'mdm/v1'");
}

static mdm_rc check_kind(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const struct kind *k;
  char known[256] = "", q[MDM_VQUOTE_LEN];
  size_t i, len;
  (void)arg;
  if(!json_is_string(val))
    return mdm_verr(v, "expected a string");
  k = kind_find(json_string_value(val));
  if(k && k->validate)
    return MDM_OK;
  mdm_vquote(json_string_value(val), q, sizeof(q));
  if(k)
    return mdm_verr(v, "kind %s is not supported yet", q);
  for(i = 0; i < N_KINDS; i++) {
    if(!kinds[i].validate)
      continue;
    len = strlen(known);
    snprintf(known + len, sizeof(known) - len, "%s%s", len ? ", " : "",
             kinds[i].name);
  }
  return mdm_verr(v, "unknown kind %s (expected one of %s)", q, known);
}

static mdm_rc check_metadata(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  static const struct mdm_vfield fields[] = {
    {"name", 1, mdm_vcheck_name, NULL},
    {"labels", 0, mdm_vcheck_string_map, NULL},
  };
  (void)arg;
  return mdm_vobject(v, val, fields, sizeof(fields) / sizeof(fields[0]), 0);
}

static void vctx_init(struct mdm_vctx *v, const struct mdm_doc *d, char *err,
                      size_t errlen)
{
  v->d = d;
  v->err = err;
  v->errlen = errlen;
  v->path[0] = '\0';
  v->path_len = 0;
  if(err && errlen)
    err[0] = '\0';
}

mdm_rc mdm_doc_validate(const struct mdm_doc *d, char *err, size_t errlen)
{
  static const struct mdm_vfield fields[] = {
    {"apiVersion", 1, check_api_version, NULL},
    {"kind", 1, check_kind, NULL},
    {"metadata", 1, check_metadata, NULL},
    {"spec", 1, mdm_vcheck_object, NULL},
  };
  struct mdm_vctx v;
  const struct kind *k;
  mdm_rc rc;

  if(!d || !d->json || !d->file)
    return MDM_ERR_INVAL;
  vctx_init(&v, d, err, errlen);
  rc = mdm_vobject(&v, d->json, fields, sizeof(fields) / sizeof(fields[0]),
                   0);
  if(rc)
    return rc;
  k = kind_find(mdm_doc_kind(d));
  mdm_vpath_key(&v, "spec");
  return k->validate(&v, json_object_get(d->json, "spec"));
}

struct kn {
  const char *kind, *name;
  size_t i;
};

static int kn_cmp(const void *a, const void *b)
{
  const struct kn *x = a, *y = b;
  int c = strcmp(x->kind, y->kind);
  if(!c)
    c = strcmp(x->name, y->name);
  if(!c)
    c = x->i < y->i ? -1 : x->i > y->i;
  return c;
}

mdm_rc mdm_docset_validate(const struct mdm_docset *ds, char *err,
                           size_t errlen)
{
  struct kn *kn = NULL;
  size_t i, g, dup = SIZE_MAX, first = 0;
  mdm_rc rc = MDM_OK;

  if(!ds)
    return MDM_ERR_INVAL;
  if(err && errlen)
    err[0] = '\0';
  for(i = 0; i < ds->n_docs; i++) {
    rc = mdm_doc_validate(&ds->docs[i], err, errlen);
    if(rc)
      return rc;
  }
  if(ds->n_docs < 2)
    return MDM_OK;
  kn = malloc(ds->n_docs * sizeof(*kn));
  if(!kn)
    return MDM_ERR_NOMEM;
  for(i = 0; i < ds->n_docs; i++) {
    kn[i].kind = mdm_doc_kind(&ds->docs[i]);
    kn[i].name = mdm_doc_name(&ds->docs[i]);
    kn[i].i = i;
  }
  qsort(kn, ds->n_docs, sizeof(*kn), kn_cmp);
  /* Report the duplicate that comes first in the set's order, against the
   * first document of its (kind, name) group. */
  for(i = 1, g = 0; i < ds->n_docs; i++) {
    if(strcmp(kn[i].kind, kn[i - 1].kind) ||
       strcmp(kn[i].name, kn[i - 1].name))
      g = i;
    else if(kn[i].i < dup) {
      dup = kn[i].i;
      first = kn[g].i;
    }
  }
  if(dup != SIZE_MAX) {
    const struct mdm_doc *d = &ds->docs[dup], *f = &ds->docs[first];
    if(err && errlen)
      snprintf(err, errlen, "%s: line %d: metadata.name: %s '%s' duplicates "
               "%s: line %d", d->file, mdm_doc_line(d, "metadata.name"),
               mdm_doc_kind(d), mdm_doc_name(d), f->file,
               mdm_doc_line(f, "metadata.name"));
    rc = MDM_ERR_UNPROCESSABLE;
  }
  free(kn);
  return rc;
}

/* ---- rendering YAML --------------------------------------------------- */

/* May s go out as a plain scalar and read back as the same string?  Only a
 * conservative subset: it starts with a letter, '_', '/' or a digit (see
 * below), holds no YAML indicator that could matter and only ASCII, and
 * reads as no other type, in YAML 1.2 (our parser) nor as a boolean to
 * YAML 1.1 readers (yes, no, on, off, y, n).  The rest is double-quoted. */
static int is_plain_safe(const char *s, size_t n)
{
  static const char *const yaml11[] = {
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On",
    "ON", "off", "Off", "OFF", NULL};
  size_t i;
  if(!n || s[n - 1] == ' ')
    return 0;
  if(is_dig(s[0])) {
    /* "24h", "7d": but no ".-+_" that YAML 1.1 reads as numbers or dates
     * (1_000, 2026-01-31), nor 0b/0o/0x prefixes. */
    if(strpbrk(s, ".-+_") || (s[0] == '0' && n > 1 && strchr("box", s[1])))
      return 0;
  }
  else if(!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
            s[0] == '_' || s[0] == '/'))
    return 0;
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_dig((char)c))
      continue;
    if(!strchr(" -_./+=()@%^~,;<>$", c) || !c)
      return 0;
  }
  if(str_is_any(s, n, yaml11))
    return 0;
  return plain_kind(s, n) == SK_STRING;
}

/* Decode one UTF-8 character at s (valid UTF-8: jansson checks).  Returns
 * its length. */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned long *cp)
{
  if(s[0] < 0x80 || n < 2) {
    *cp = s[0];
    return 1;
  }
  if(s[0] < 0xE0) {
    *cp = ((s[0] & 0x1Ful) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if(s[0] < 0xF0 && n >= 3) {
    *cp = ((s[0] & 0x0Ful) << 12) | ((s[1] & 0x3Ful) << 6) | (s[2] & 0x3F);
    return 3;
  }
  if(n >= 4) {
    *cp = ((s[0] & 0x07ul) << 18) | ((s[1] & 0x3Ful) << 12) |
          ((s[2] & 0x3Ful) << 6) | (s[3] & 0x3F);
    return 4;
  }
  *cp = s[0];
  return 1;
}

static mdm_rc y_string(struct mdm_buf *b, const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, k;
  mdm_rc rc;

  if(is_plain_safe(s, n))
    return mdm_buf_append(b, s, n);
  rc = mdm_buf_append(b, "\"", 1);
  while(!rc && i < n) {
    unsigned long cp;
    const char *esc = NULL;
    char hex[12];
    k = utf8_next(u + i, n - i, &cp);
    switch(cp) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\n': esc = "\\n"; break;
    case '\t': esc = "\\t"; break;
    case '\r': esc = "\\r"; break;
    case 0: esc = "\\0"; break;
    case 0x85: esc = "\\N"; break;     /* YAML 1.1 line breaks */
    case 0x2028: esc = "\\L"; break;
    case 0x2029: esc = "\\P"; break;
    default:
      if(cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
        snprintf(hex, sizeof(hex), "\\x%02lX", cp);
        esc = hex;
      }
      else if(cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
        snprintf(hex, sizeof(hex), "\\u%04lX", cp);
        esc = hex;
      }
    }
    rc = esc ? mdm_buf_puts(b, esc) : mdm_buf_append(b, s + i, k);
    i += k;
  }
  return rc ? rc : mdm_buf_append(b, "\"", 1);
}

static mdm_rc y_real(struct mdm_buf *b, double x)
{
  char s[40];
  int prec;
  char *e;
  if(!isfinite(x))
    return MDM_ERR_INVAL;   /* jansson never holds one */
  for(prec = 1; prec <= 17; prec++) {
    snprintf(s, sizeof(s), "%.*g", prec, x);
    if(strtod(s, NULL) == x)
      break;
  }
  /* Keep it a float to every reader: 1 -> 1.0, 1e+300 -> 1.0e+300. */
  if(!strchr(s, '.')) {
    char t[48];
    e = strchr(s, 'e');
    if(e)
      snprintf(t, sizeof(t), "%.*s.0%s", (int)(e - s), s, e);
    else
      snprintf(t, sizeof(t), "%s.0", s);
    return mdm_buf_puts(b, t);
  }
  return mdm_buf_puts(b, s);
}

/* A scalar, or an empty collection in flow style. */
static mdm_rc y_scalar(struct mdm_buf *b, json_t *v)
{
  switch(json_typeof(v)) {
  case JSON_OBJECT: return mdm_buf_puts(b, "{}");
  case JSON_ARRAY: return mdm_buf_puts(b, "[]");
  case JSON_STRING:
    return y_string(b, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    return mdm_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  case JSON_REAL: return y_real(b, json_real_value(v));
  case JSON_TRUE: return mdm_buf_puts(b, "true");
  case JSON_FALSE: return mdm_buf_puts(b, "false");
  case JSON_NULL: return mdm_buf_puts(b, "null");
  }
  return MDM_ERR_INVAL;
}

static int is_block(json_t *v)
{
  return (json_is_object(v) && json_object_size(v)) ||
         (json_is_array(v) && json_array_size(v));
}

static mdm_rc y_node(struct mdm_buf *b, json_t *v, int indent,
                     int is_inline, int is_top);

static mdm_rc y_indent(struct mdm_buf *b, int indent)
{
  static const char sp[] = "                                ";
  mdm_rc rc = MDM_OK;
  while(!rc && indent > 0) {
    int k = indent < 32 ? indent : 32;
    rc = mdm_buf_append(b, sp, (size_t)k);
    indent -= k;
  }
  return rc;
}

/* After "key:" or "-": the value, on this line or in a block below. */
static mdm_rc y_value(struct mdm_buf *b, json_t *v, int indent, int is_item)
{
  mdm_rc rc;
  if(!is_block(v)) {
    rc = mdm_buf_append(b, " ", 1);
    if(!rc)
      rc = y_scalar(b, v);
    return rc ? rc : mdm_buf_append(b, "\n", 1);
  }
  if(is_item) {
    rc = mdm_buf_append(b, " ", 1);
    return rc ? rc : y_node(b, v, indent + 2, 1, 0);
  }
  rc = mdm_buf_append(b, "\n", 1);
  return rc ? rc : y_node(b, v, indent + 2, 0, 0);
}

static int key_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int top_rank(const char *k)
{
  static const char *const first[] = {"apiVersion", "kind", "metadata",
                                      "spec", NULL};
  int i = mdm_str_index(first, k);
  return i < 0 ? 4 : i;
}

static int top_key_cmp(const void *a, const void *b)
{
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  int rx = top_rank(x), ry = top_rank(y);
  return rx != ry ? rx - ry : strcmp(x, y);
}

static mdm_rc y_map(struct mdm_buf *b, json_t *obj, int indent,
                    int is_inline, int is_top)
{
  size_t n = json_object_size(obj), i = 0;
  const char **keys = malloc(n * sizeof(*keys));
  struct mdm_buf kb;
  const char *key;
  json_t *member;
  mdm_rc rc = MDM_OK;

  if(!keys)
    return MDM_ERR_NOMEM;
  json_object_foreach(obj, key, member)
    keys[i++] = key;
  qsort(keys, n, sizeof(*keys), is_top ? top_key_cmp : key_cmp);
  mdm_buf_init(&kb, b->max);
  for(i = 0; !rc && i < n; i++) {
    if(i || !is_inline)
      rc = y_indent(b, indent);
    mdm_buf_reset(&kb);
    if(!rc)
      rc = y_string(&kb, keys[i], strlen(keys[i]));
    if(rc)
      break;
    if(kb.len > 512) {
      /* libyaml takes implicit keys up to 1024 characters only. */
      rc = mdm_buf_printf(b, "? %s\n", kb.data);
      if(!rc)
        rc = y_indent(b, indent);
      if(!rc)
        rc = mdm_buf_append(b, ":", 1);
    }
    else
      rc = mdm_buf_printf(b, "%s:", kb.data);
    if(!rc)
      rc = y_value(b, json_object_get(obj, keys[i]), indent, 0);
  }
  mdm_buf_release(&kb);
  free(keys);
  return rc;
}

static mdm_rc y_seq(struct mdm_buf *b, json_t *arr, int indent,
                    int is_inline)
{
  size_t i;
  json_t *item;
  mdm_rc rc = MDM_OK;
  json_array_foreach(arr, i, item) {
    if(i || !is_inline)
      rc = y_indent(b, indent);
    if(!rc)
      rc = mdm_buf_append(b, "-", 1);
    if(!rc)
      rc = y_value(b, item, indent, 1);
    if(rc)
      break;
  }
  return rc;
}

static mdm_rc y_node(struct mdm_buf *b, json_t *v, int indent,
                     int is_inline, int is_top)
{
  if(json_is_object(v))
    return y_map(b, v, indent, is_inline, is_top);
  return y_seq(b, v, indent, is_inline);
}

mdm_rc mdm_doc_to_yaml(json_t *doc, char **out)
{
  struct mdm_buf b;
  mdm_rc rc;

  if(!doc || !out)
    return MDM_ERR_INVAL;
  /* Escapes make a string at most four times longer, indentation adds a
   * little per line: a bound well above any document the parser took. */
  mdm_buf_init(&b, (size_t)MDM_DOC_MAX_INPUT * 16);
  if(is_block(doc))
    rc = y_node(&b, doc, 0, 0, 1);
  else {
    rc = y_scalar(&b, doc);
    if(!rc)
      rc = mdm_buf_append(&b, "\n", 1);
  }
  if(rc) {
    mdm_buf_release(&b);
    return rc;
  }
  *out = mdm_buf_steal(&b);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}
