/*
 * store.c: backend selection and what all backends share (see store.h).
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store.h"
#include "core/buf.h"

void mdm_tenant_release(struct mdm_tenant *t)
{
  free(t->key_pem);
  t->key_pem = NULL;
}

mdm_rc mdm_store_open(const char *url, struct mdm_store **out)
{
  if(!strncmp(url, "sqlite:", 7))
    return mdm_store_sqlite_open(url + 7, out);
  if(!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
    return MDM_ERR_UNSUPPORTED;
  if(strstr(url, "://"))
    return MDM_ERR_INVAL;
  return mdm_store_sqlite_open(url, out);
}

void mdm_store_close(struct mdm_store *s)
{
  if(s)
    s->ops->close(s);
}

mdm_rc mdm_audit_hash(const char *prev_hash, int64_t seq, const char *at,
                      const char *actor, const char *action,
                      const char *target, const char *detail_json,
                      char *out)
{
  struct mdm_buf b;
  mdm_rc rc;
  /* One line per field, each a JSON value, so no field can bleed into the
   * next whatever it contains. */
  json_t *fields = json_pack("[s, I, s, s, s, s, s]", prev_hash ? prev_hash : "",
                             (json_int_t)seq, at, actor, action,
                             target ? target : "",
                             detail_json ? detail_json : "null");
  char *s;
  if(!fields)
    return MDM_ERR_NOMEM;
  s = json_dumps(fields, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(fields);
  if(!s)
    return MDM_ERR_NOMEM;
  mdm_buf_init(&b, 1 << 20);
  rc = mdm_buf_puts(&b, s);
  free(s);
  if(!rc)
    mdm_sha256_hex(b.data, b.len, out);
  mdm_buf_release(&b);
  return rc;
}

void mdm_store_set_change_hook(struct mdm_store *s, mdm_change_fn fn,
                               void *ctx)
{
  s->on_change = fn;
  s->on_change_ctx = fn ? ctx : NULL;
}

/* ---- change sets (store.h, "the change feed") --------------------------- */

#define CHUNK_SIZE (64 * 1024)

struct mdm_change_chunk {
  struct mdm_change_chunk *prev;   /* the older one */
  size_t used, cap;
  _Alignas(max_align_t) char data[];
};

struct mdm_change_home {
  _Atomic(struct mdm_change_set *) done;
};

/* The string fields of struct mdm_change. */
#define CHANGE_STRINGS(X)                                                   \
  X(tenant_id) X(device_id) X(upn) X(at) X(actor) X(action) X(target)      \
  X(detail_json) X(hash) X(command_type) X(state) X(prev_state)            \
  X(reasons_json)

struct mdm_change_set *mdm_change_set_new(struct mdm_change_home *home)
{
  struct mdm_change_set *set = calloc(1, sizeof(*set));
  if(set)
    set->home = home;
  return set;
}

mdm_rc mdm_change_set_add(struct mdm_change_set *set,
                          const struct mdm_change *tmpl)
{
  struct mdm_change_chunk *k = set->chunks;
  struct mdm_change *c;
  size_t size = sizeof(*c);
  char *p;
#define ADD_LEN(f) if(tmpl->f) size += strlen(tmpl->f) + 1;
  CHANGE_STRINGS(ADD_LEN)
#undef ADD_LEN
  size = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
  if(!k || k->cap - k->used < size) {
    /* A small first chunk: most commits carry a change or two. */
    size_t cap = k ? CHUNK_SIZE : CHUNK_SIZE / 16;
    if(cap < size)
      cap = size;
    k = malloc(sizeof(*k) + cap);
    if(!k)
      return MDM_ERR_NOMEM;
    k->prev = set->chunks;
    k->used = 0;
    k->cap = cap;
    set->chunks = k;
  }
  c = (struct mdm_change *)(k->data + k->used);
  k->used += size;
  *c = *tmpl;
  c->next = NULL;
  p = (char *)(c + 1);
#define COPY(f)                                                             \
  if(tmpl->f) {                                                             \
    size_t n_ = strlen(tmpl->f) + 1;                                        \
    memcpy(p, tmpl->f, n_);                                                 \
    c->f = p;                                                               \
    p += n_;                                                                \
  }
  CHANGE_STRINGS(COPY)
#undef COPY
  if(set->last)
    set->last->next = c;
  else
    set->first = c;
  set->last = c;
  set->n++;
  return MDM_OK;
}

void mdm_change_set_mark(const struct mdm_change_set *set,
                         struct mdm_change_mark *m)
{
  m->n = set->n;
  m->last = set->last;
  m->chunk = set->chunks;
  m->used = set->chunks ? set->chunks->used : 0;
}

void mdm_change_set_truncate(struct mdm_change_set *set,
                             const struct mdm_change_mark *m)
{
  while(set->chunks && set->chunks != m->chunk) {
    struct mdm_change_chunk *k = set->chunks;
    set->chunks = k->prev;
    free(k);
  }
  if(set->chunks)
    set->chunks->used = m->used;
  set->n = m->n;
  set->last = m->last;
  if(set->last)
    set->last->next = NULL;
  else
    set->first = NULL;
}

void mdm_change_set_free(struct mdm_change_set *set)
{
  if(!set)
    return;
  while(set->chunks) {
    struct mdm_change_chunk *k = set->chunks;
    set->chunks = k->prev;
    free(k);
  }
  free(set);
}

void mdm_change_set_done(struct mdm_change_set *set)
{
  struct mdm_change_home *h;
  struct mdm_change_set *top;
  if(!set)
    return;
  h = set->home;
  if(!h) {
    mdm_change_set_free(set);
    return;
  }
  top = atomic_load(&h->done);
  do
    set->next = top;
  while(!atomic_compare_exchange_weak(&h->done, &top, set));
}

struct mdm_change_home *mdm_change_home_new(void)
{
  struct mdm_change_home *h = malloc(sizeof(*h));
  if(h)
    atomic_init(&h->done, NULL);
  return h;
}

void mdm_change_home_reclaim(struct mdm_change_home *h)
{
  struct mdm_change_set *set;
  if(!h)
    return;
  set = atomic_exchange(&h->done, NULL);
  while(set) {
    struct mdm_change_set *next = set->next;
    mdm_change_set_free(set);
    set = next;
  }
}

void mdm_change_home_free(struct mdm_change_home *h)
{
  mdm_change_home_reclaim(h);
  free(h);
}
