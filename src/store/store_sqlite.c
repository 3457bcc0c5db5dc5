/*
 * store_sqlite.c: the embedded SQLite backend of the store (see store.h).
 *
 * One writer thread owns the only writing connection and commits many
 * requests per transaction (group commit): a caller hands it a job and waits
 * until the transaction holding that job is durable (WAL, synchronous=FULL),
 * so "acknowledged" always means "stored" and throughput does not pay one
 * fsync per request.  Each job runs inside its own SAVEPOINT, so a job that
 * fails leaves nothing behind and does not disturb its batch.  Because all
 * writes are serialized through this thread, the per-tenant audit hash chain
 * needs no further locking.
 *
 * Reads use a small pool of read-only connections; WAL lets them run beside
 * the writer.  Prepared statements are cached per connection, keyed by the
 * address of their (static) SQL text.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include "store/store.h"
#include "store/migrations.h"
#include "core/buf.h"
#include "core/log.h"

#define SQ_READERS 4
#define SQ_STMT_CACHE 96
#define SQ_BATCH_MAX 1024

struct sq_capture;

struct sq_conn {
  sqlite3 *db;
  struct {
    const char *sql;
    sqlite3_stmt *st;
  } cache[SQ_STMT_CACHE];
  int n_cache;
  struct sq_capture *cap;   /* the writer's, while a change hook is set */
};

/* The changes (store.h, "the change feed") of the transaction the writer
 * is building; handed to the hook once it is durable. */
struct sq_capture {
  struct mdm_change_home *home;  /* where the hook gives sets back */
  struct mdm_change_set *set;    /* being built; NULL before a change */
  unsigned long n_lost;          /* not kept for want of memory */
};

struct sq_job;
typedef mdm_rc (*sq_job_fn)(struct sq_conn *c, struct sq_job *j);

struct sq_job {
  sq_job_fn fn;
  void *arg;
  mdm_rc rc;
  int is_done;
  pthread_cond_t done;      /* signalled once is_done is set */
  struct sq_job *next;
};

struct sq_store {
  struct mdm_store base;
  char *path;
  struct sq_conn writer;
  struct sq_conn readers[SQ_READERS];
  int reader_busy[SQ_READERS];
  pthread_mutex_t rlock;
  pthread_cond_t rcond;

  pthread_t thread;
  pthread_mutex_t qlock;
  pthread_cond_t qcond;     /* writer waits for jobs */
  struct sq_job *head, *tail;
  int is_stopping;
  int has_thread;

  /* Checkpoints run on their own thread and connection, so the WAL's
   * copy-back and the database file's fsync never stall a commit. */
  pthread_t ckpt_thread;
  pthread_cond_t ckpt_cond;
  int has_ckpt_thread;

  struct sq_capture capture;
  /* device_upn's own read-only connection (opened on first use): the event
   * stream's threads run at the lowest priority and must never hold one
   * of the request threads' readers. */
  struct sq_conn upn_reader;
  pthread_mutex_t upn_lock;
};

/* ---- connections and statements ------------------------------------- */

static mdm_rc sq_exec(sqlite3 *db, const char *sql)
{
  char *err = NULL;
  if(sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    mdm_error("sqlite: %s", err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return MDM_ERR_STORE;
  }
  return MDM_OK;
}

static mdm_rc sq_conn_open(struct sq_conn *c, const char *path, int is_writer)
{
  int flags = SQLITE_OPEN_NOMUTEX |
              (is_writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                         : SQLITE_OPEN_READONLY);
  memset(c, 0, sizeof(*c));
  if(sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
    mdm_error("sqlite: cannot open '%s': %s", path,
              c->db ? sqlite3_errmsg(c->db) : "out of memory");
    sqlite3_close(c->db);
    c->db = NULL;
    return MDM_ERR_STORE;
  }
  sqlite3_busy_timeout(c->db, 10000);
  if(is_writer)
    return sq_exec(c->db, "PRAGMA journal_mode=WAL;"
                          "PRAGMA synchronous=FULL;"
                          "PRAGMA foreign_keys=ON;"
                          "PRAGMA cache_size=-65536;"
                          "PRAGMA temp_store=MEMORY;"
                          "PRAGMA wal_autocheckpoint=0;");
  return sq_exec(c->db, "PRAGMA cache_size=-16384;");
}

static void sq_conn_close(struct sq_conn *c)
{
  int i;
  for(i = 0; i < c->n_cache; i++)
    sqlite3_finalize(c->cache[i].st);
  c->n_cache = 0;
  sqlite3_close(c->db);
  c->db = NULL;
}

/* A cached prepared statement for a static SQL text; reset and unbound by
 * sq_done().  NULL on error (logged). */
static sqlite3_stmt *sq_stmt(struct sq_conn *c, const char *sql)
{
  sqlite3_stmt *st = NULL;
  int i;
  for(i = 0; i < c->n_cache; i++)
    if(c->cache[i].sql == sql)
      return c->cache[i].st;
  if(sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                        NULL) != SQLITE_OK) {
    mdm_error("sqlite: prepare: %s", sqlite3_errmsg(c->db));
    return NULL;
  }
  if(c->n_cache < SQ_STMT_CACHE) {
    c->cache[c->n_cache].sql = sql;
    c->cache[c->n_cache].st = st;
    c->n_cache++;
  }
  else {
    /* Cache full: keep it anyway in the last slot, finalizing the old one. */
    sqlite3_finalize(c->cache[SQ_STMT_CACHE - 1].st);
    c->cache[SQ_STMT_CACHE - 1].sql = sql;
    c->cache[SQ_STMT_CACHE - 1].st = st;
  }
  return st;
}

static void sq_done(sqlite3_stmt *st)
{
  if(st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
  if(s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
  return (const char *)sqlite3_column_text(st, i);
}

/* Step a statement that returns no rows; MDM_OK or MDM_ERR_STORE. */
static mdm_rc sq_step_done(struct sq_conn *c, sqlite3_stmt *st)
{
  int r = sqlite3_step(st);
  if(r == SQLITE_DONE || r == SQLITE_ROW)
    return MDM_OK;
  if(r == SQLITE_CONSTRAINT)
    return MDM_ERR_CONFLICT;
  mdm_error("sqlite: step: %s", sqlite3_errmsg(c->db));
  return MDM_ERR_STORE;
}

static struct sq_conn *sq_reader_get(struct sq_store *q, int *slot)
{
  int i;
  pthread_mutex_lock(&q->rlock);
  for(;;) {
    for(i = 0; i < SQ_READERS; i++)
      if(!q->reader_busy[i]) {
        q->reader_busy[i] = 1;
        pthread_mutex_unlock(&q->rlock);
        *slot = i;
        return &q->readers[i];
      }
    pthread_cond_wait(&q->rcond, &q->rlock);
  }
}

static void sq_reader_put(struct sq_store *q, int slot)
{
  pthread_mutex_lock(&q->rlock);
  q->reader_busy[slot] = 0;
  pthread_cond_signal(&q->rcond);
  pthread_mutex_unlock(&q->rlock);
}

/* Run a cached no-row statement; errors are logged. */
static mdm_rc sq_run(struct sq_conn *c, const char *sql)
{
  sqlite3_stmt *st = sq_stmt(c, sql);
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  rc = sq_step_done(c, st);
  sq_done(st);
  return rc;
}

static const char SQL_SAVEPOINT[] = "SAVEPOINT job";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO job";
static const char SQL_RELEASE[] = "RELEASE job";

/* ---- the checkpointer thread ------------------------------------------ */

#define SQ_CKPT_INTERVAL_MS 500
#define SQ_WAL_RESTART_FRAMES 262144  /* 1 GiB of 4 KiB pages: rare, so
                                       * its stall (a database fsync with
                                       * writers held) stays out of p99 */

static void *sq_ckpt_main(void *arg)
{
  struct sq_store *q = arg;
  struct sq_conn c;

  if(sq_conn_open(&c, q->path, 1)) {
    mdm_error("store: checkpointer cannot open the database; the WAL will "
              "grow until restart");
    return NULL;
  }
  /* Never wait long for a reader: a long scan would otherwise hold every
   * writer behind a RESTART checkpoint.  Try again next round instead. */
  sqlite3_busy_timeout(c.db, 20);
  pthread_mutex_lock(&q->qlock);
  while(!q->is_stopping) {
    struct timespec ts;
    int n_log = 0, n_ckpt = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += SQ_CKPT_INTERVAL_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&q->ckpt_cond, &q->qlock, &ts);
    if(q->is_stopping)
      break;
    pthread_mutex_unlock(&q->qlock);
    /* PASSIVE: copy what no reader still needs, never block anyone. */
    if(sqlite3_wal_checkpoint_v2(c.db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                 &n_log, &n_ckpt) != SQLITE_OK &&
       sqlite3_errcode(c.db) != SQLITE_BUSY)
      mdm_warn("store: checkpoint: %s", sqlite3_errmsg(c.db));
    /* Under steady writes (and during long scans) a passive checkpoint may
     * never be complete when the next transaction starts, so the WAL would
     * never start over and would grow without bound.  Past a size, finish
     * the job: RESTART holds writers for the few frames left and a
     * database fsync, and lets the next transaction reuse the file from
     * its start.  The file is not truncated (an ftruncate of a large WAL
     * in the commit path stalled check-ins for hundreds of ms); a clean
     * stop truncates it. */
    if(n_log > SQ_WAL_RESTART_FRAMES &&
       sqlite3_wal_checkpoint_v2(c.db, NULL, SQLITE_CHECKPOINT_RESTART,
                                 NULL, NULL) != SQLITE_OK &&
       sqlite3_errcode(c.db) != SQLITE_BUSY)
      mdm_warn("store: checkpoint: %s", sqlite3_errmsg(c.db));
    pthread_mutex_lock(&q->qlock);
  }
  pthread_mutex_unlock(&q->qlock);
  /* At a clean stop, fold the WAL back into the database file. */
  sqlite3_wal_checkpoint_v2(c.db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                            NULL);
  sq_conn_close(&c);
  return NULL;
}

/* ---- the change feed (store.h) ---------------------------------------- */

static void capture_mark(const struct sq_capture *cap,
                         struct mdm_change_mark *m)
{
  if(cap && cap->set)
    mdm_change_set_mark(cap->set, m);
  else
    memset(m, 0, sizeof(*m));
}

static void capture_truncate(struct sq_capture *cap,
                             const struct mdm_change_mark *m)
{
  if(cap && cap->set)
    mdm_change_set_truncate(cap->set, m);
}

/* Keep a copy of tmpl for the hook when one is set.  A change that cannot
 * be kept for want of memory is counted (and logged after the commit); the
 * transaction goes on: the feed never fails a write. */
static void capture_add(struct sq_conn *c, const struct mdm_change *tmpl)
{
  struct sq_capture *cap = c->cap;
  if(!cap)
    return;
  if(!cap->set)
    cap->set = mdm_change_set_new(cap->home);
  if(!cap->set || mdm_change_set_add(cap->set, tmpl))
    cap->n_lost++;
}

/* After a commit (is_kept) hand the batch's changes to the hook, which
 * takes them; after a failed one drop them.  Then free the sets the hook
 * gave back: their memory is this thread's. */
static void capture_deliver(struct sq_store *q, struct sq_capture *cap,
                            int is_kept)
{
  if(cap->set && cap->set->n && is_kept)
    q->base.on_change(q->base.on_change_ctx, cap->set);
  else
    mdm_change_set_free(cap->set);
  cap->set = NULL;
  mdm_change_home_reclaim(cap->home);
  if(cap->n_lost) {
    mdm_error("store: %lu changes not passed to the event stream (out of "
              "memory)", cap->n_lost);
    cap->n_lost = 0;
  }
}

/* ---- the writer thread (group commit) ---------------------------------- */

static void *sq_writer_main(void *arg)
{
  struct sq_store *q = arg;
  struct sq_conn *c = &q->writer;

  for(;;) {
    struct sq_job *batch, *j;
    int n = 0;
    mdm_rc commit_rc = MDM_OK;

    pthread_mutex_lock(&q->qlock);
    while(!q->head && !q->is_stopping)
      pthread_cond_wait(&q->qcond, &q->qlock);
    if(!q->head && q->is_stopping) {
      pthread_mutex_unlock(&q->qlock);
      break;
    }
    /* Take up to SQ_BATCH_MAX jobs. */
    batch = q->head;
    j = batch;
    n = 1;
    while(j->next && n < SQ_BATCH_MAX) {
      j = j->next;
      n++;
    }
    q->head = j->next;
    if(!q->head)
      q->tail = NULL;
    j->next = NULL;
    pthread_mutex_unlock(&q->qlock);

    /* The change hook is set before the store is shared (store.h). */
    if(q->base.on_change && !q->capture.home)
      q->capture.home = mdm_change_home_new();
    c->cap = q->base.on_change && q->capture.home ? &q->capture : NULL;
    if(sq_exec(c->db, "BEGIN IMMEDIATE")) {
      commit_rc = MDM_ERR_STORE;
    }
    else {
      for(j = batch; j; j = j->next) {
        struct mdm_change_mark mark;
        capture_mark(c->cap, &mark);
        sq_run(c, SQL_SAVEPOINT);
        j->rc = j->fn(c, j);
        if(j->rc) {
          sq_run(c, SQL_ROLLBACK_TO);
          capture_truncate(c->cap, &mark);  /* what it did is undone */
        }
        sq_run(c, SQL_RELEASE);
      }
      if(sq_exec(c->db, "COMMIT")) {
        commit_rc = MDM_ERR_STORE;
        sq_exec(c->db, "ROLLBACK");
      }
    }

    /* Wake each caller once.  qlock is held throughout, so no caller can
     * return (and free its job) before the loop is past it. */
    pthread_mutex_lock(&q->qlock);
    for(j = batch; j;) {
      struct sq_job *next = j->next;
      if(commit_rc)
        j->rc = commit_rc;
      j->is_done = 1;
      pthread_cond_signal(&j->done);
      j = next;
    }
    pthread_mutex_unlock(&q->qlock);

    /* The callers have their answers; now the change feed gets what is
     * durable, in commit order (the next batch waits for this, so the hook
     * only queues). */
    if(c->cap)
      capture_deliver(q, c->cap, commit_rc == MDM_OK);
  }
  return NULL;
}

/* Run fn(arg) in the writer's next transaction; returns once it is durable
 * (or failed). */
static mdm_rc sq_submit(struct sq_store *q, sq_job_fn fn, void *arg)
{
  struct sq_job job;
  memset(&job, 0, sizeof(job));
  job.fn = fn;
  job.arg = arg;
  pthread_cond_init(&job.done, NULL);
  pthread_mutex_lock(&q->qlock);
  if(q->is_stopping) {
    pthread_mutex_unlock(&q->qlock);
    pthread_cond_destroy(&job.done);
    return MDM_ERR_BUSY;
  }
  if(q->tail)
    q->tail->next = &job;
  else
    q->head = &job;
  q->tail = &job;
  pthread_cond_signal(&q->qcond);
  while(!job.is_done)
    pthread_cond_wait(&job.done, &q->qlock);
  pthread_mutex_unlock(&q->qlock);
  pthread_cond_destroy(&job.done);
  return job.rc;
}

/* ---- audit ------------------------------------------------------------ */

static const char SQL_AUDIT_LAST[] =
  "SELECT seq, hash FROM audit WHERE tenant_id=?1 ORDER BY seq DESC LIMIT 1";
static const char SQL_AUDIT_INSERT[] =
  "INSERT INTO audit(tenant_id, seq, at, actor, action, target, detail,"
  " prev_hash, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)";

static const char SQL_CHANGE_COMMAND[] =
  "SELECT device_id, type FROM commands WHERE tenant_id = ?1 AND id = ?2";

/* The change feed's copy of an audit record just appended, with the device
 * it concerns: a command's device (read from the command's narrow row, just
 * written), or the device a device.* record names.  The device's user
 * principal name is left to the event stream, off this thread. */
static void capture_audit(struct sq_conn *c, struct mdm_change *t,
                          const struct mdm_audit_in *a)
{
  sqlite3_stmt *st = NULL;
  if(a->target && !strncmp(a->action, "command.", 8)) {
    st = sq_stmt(c, SQL_CHANGE_COMMAND);
    if(st) {
      bind_text(st, 1, t->tenant_id);
      bind_text(st, 2, a->target);
      if(sqlite3_step(st) == SQLITE_ROW) {
        t->device_id = col_text(st, 0);
        t->command_type = col_text(st, 1);
      }
    }
  }
  else if(a->target && !strncmp(a->action, "device.", 7))
    t->device_id = a->target;
  capture_add(c, t);  /* copies, while the row's text is still valid */
  sq_done(st);
}

/* Append a to tenant's chain, in the caller's transaction. */
static mdm_rc sq_audit(struct sq_conn *c, const char *tenant,
                       const struct mdm_audit_in *a)
{
  sqlite3_stmt *st;
  int64_t seq = 0, now_ms = mdm_now_ms();
  char prev[65] = "", hash[65], at[40];
  char *detail = NULL;
  mdm_rc rc;

  if(!a)
    return MDM_OK;
  st = sq_stmt(c, SQL_AUDIT_LAST);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  if(sqlite3_step(st) == SQLITE_ROW) {
    seq = sqlite3_column_int64(st, 0);
    mdm_strlcpy(prev, col_text(st, 1) ? col_text(st, 1) : "", sizeof(prev));
  }
  sq_done(st);
  seq++;
  mdm_time_format_ms(now_ms, at, sizeof(at));
  if(a->detail) {
    detail = json_dumps(a->detail, JSON_COMPACT | JSON_SORT_KEYS);
    if(!detail)
      return MDM_ERR_NOMEM;
  }
  rc = mdm_audit_hash(prev, seq, at, a->actor, a->action, a->target, detail,
                      hash);
  if(rc)
    goto out;
  st = sq_stmt(c, SQL_AUDIT_INSERT);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  sqlite3_bind_int64(st, 2, seq);
  bind_text(st, 3, at);
  bind_text(st, 4, a->actor);
  bind_text(st, 5, a->action);
  bind_text(st, 6, a->target);
  bind_text(st, 7, detail);
  bind_text(st, 8, prev);
  bind_text(st, 9, hash);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(!rc && c->cap) {
    struct mdm_change t;
    memset(&t, 0, sizeof(t));
    t.kind = MDM_CHANGE_AUDIT;
    t.at_ms = now_ms;
    t.tenant_id = tenant;
    t.seq = seq;
    t.at = at;
    t.actor = a->actor;
    t.action = a->action;
    t.target = a->target;
    t.detail_json = detail;
    t.hash = hash;
    capture_audit(c, &t, a);
  }
out:
  free(detail);
  return rc;
}

/* ---- JSON helpers ----------------------------------------------------- */

static json_t *json_text_or_null(const char *s)
{
  return s ? json_string(s) : json_null();
}

static json_t *json_time_or_null(sqlite3_stmt *st, int i)
{
  char buf[32];
  if(sqlite3_column_type(st, i) == SQLITE_NULL)
    return json_null();
  mdm_time_format(sqlite3_column_int64(st, i), buf, sizeof(buf));
  return json_string(buf);
}

static json_t *json_parse_col(sqlite3_stmt *st, int i)
{
  const char *s = col_text(st, i);
  json_t *v;
  if(!s)
    return json_null();
  v = json_loads(s, 0, NULL);
  return v ? v : json_null();
}

/* ---- shared read and write shapes --------------------------------------- */

typedef json_t *(*sq_row_fn)(sqlite3_stmt *st);

/* Run sql on a reader with up to two text parameters (NULL binds NULL) and
 * collect row(st) of every row into a new array (caller owns *out). */
static mdm_rc sq_read_rows(struct sq_store *q, const char *sql,
                           const char *p1, const char *p2, sq_row_fn row,
                           json_t **out)
{
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, sql);
  json_t *arr = json_array();
  mdm_rc rc = MDM_OK;

  if(!st || !arr) {
    rc = st ? MDM_ERR_NOMEM : MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, p1);
  if(sqlite3_bind_parameter_count(st) >= 2)
    bind_text(st, 2, p2);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *v = row(st);
    if(!v || json_array_append_new(arr, v)) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
  }
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  if(rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return MDM_OK;
}

typedef mdm_rc (*sq_one_fn)(sqlite3_stmt *st, void *out);

/* Run sql on a reader with up to two text parameters and hand its first
 * row to row(st, out).  MDM_ERR_NOTFOUND when there is none. */
static mdm_rc sq_read_one(struct sq_store *q, const char *sql,
                          const char *p1, const char *p2, sq_one_fn row,
                          void *out)
{
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, sql);
  mdm_rc rc = MDM_ERR_STORE;
  if(st) {
    bind_text(st, 1, p1);
    if(sqlite3_bind_parameter_count(st) >= 2)
      bind_text(st, 2, p2);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW)
      rc = row(st, out);
    else if(r == SQLITE_DONE)
      rc = MDM_ERR_NOTFOUND;
  }
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

/* A write that must change exactly one row of (tenant ?1, id ?2), then
 * audit it: deletes, revocations.  MDM_ERR_NOTFOUND when no row changed. */
struct one_row_args {
  const char *sql;
  const char *tenant, *id;
  const struct mdm_audit_in *a;
};

static mdm_rc job_one_row(struct sq_conn *c, struct sq_job *j)
{
  struct one_row_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, x->sql);
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->id);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  if(sqlite3_changes(c->db) != 1)
    return MDM_ERR_NOTFOUND;
  return sq_audit(c, x->tenant, x->a);
}

static mdm_rc sq_one_row(struct mdm_store *s, const char *sql,
                         const char *tenant, const char *id,
                         const struct mdm_audit_in *a)
{
  struct one_row_args x = {sql, tenant, id, a};
  return sq_submit((struct sq_store *)s, job_one_row, &x);
}

/* ---- tenants ---------------------------------------------------------- */

struct tenant_create_args {
  const struct mdm_tenant *t;
  const struct mdm_token_info *owner;
  const char *owner_hash;
  const struct mdm_audit_in *a;
};

static const char SQL_TENANT_INSERT[] =
  "INSERT INTO tenants(id, name, region, created_at) VALUES (?1,?2,?3,?4)";
static const char SQL_KEY_INSERT[] =
  "INSERT INTO tenant_keys(tenant_id, kid, private_pem, created_at)"
  " VALUES (?1,?2,?3,?4)";
static const char SQL_TOKEN_INSERT[] =
  "INSERT INTO api_tokens(tenant_id, id, name, role, hash, created_at,"
  " created_by) VALUES (?1,?2,?3,?4,?5,?6,?7)";

static mdm_rc job_tenant_create(struct sq_conn *c, struct sq_job *j)
{
  struct tenant_create_args *x = j->arg;
  sqlite3_stmt *st;
  mdm_rc rc;

  st = sq_stmt(c, SQL_TENANT_INSERT);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->t->id);
  bind_text(st, 2, x->t->name);
  bind_text(st, 3, x->t->region);
  sqlite3_bind_int64(st, 4, x->t->created_at);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  st = sq_stmt(c, SQL_KEY_INSERT);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->t->id);
  bind_text(st, 2, x->t->kid);
  bind_text(st, 3, x->t->key_pem);
  sqlite3_bind_int64(st, 4, x->t->created_at);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  st = sq_stmt(c, SQL_TOKEN_INSERT);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->t->id);
  bind_text(st, 2, x->owner->id);
  bind_text(st, 3, "owner");
  bind_text(st, 4, "owner");
  bind_text(st, 5, x->owner_hash);
  sqlite3_bind_int64(st, 6, x->t->created_at);
  bind_text(st, 7, "system");
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  return sq_audit(c, x->t->id, x->a);
}

static mdm_rc sq_tenant_create(struct mdm_store *s, const struct mdm_tenant *t,
                               const struct mdm_token_info *owner,
                               const char *owner_hash,
                               const struct mdm_audit_in *a)
{
  struct tenant_create_args x = {t, owner, owner_hash, a};
  return sq_submit((struct sq_store *)s, job_tenant_create, &x);
}

static const char SQL_TENANT_GET[] =
  "SELECT t.id, t.name, t.region, t.created_at, k.kid, k.private_pem"
  " FROM tenants t JOIN tenant_keys k ON k.tenant_id = t.id"
  " WHERE t.id = ?1 OR t.name = ?1 ORDER BY k.created_at DESC LIMIT 1";

static mdm_rc sq_tenant_get(struct mdm_store *s, const char *id_or_name,
                            struct mdm_tenant *out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_TENANT_GET);
  mdm_rc rc = MDM_ERR_NOTFOUND;
  int r;

  memset(out, 0, sizeof(*out));
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, id_or_name);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    mdm_strlcpy(out->id, col_text(st, 0), sizeof(out->id));
    mdm_strlcpy(out->name, col_text(st, 1), sizeof(out->name));
    mdm_strlcpy(out->region, col_text(st, 2), sizeof(out->region));
    out->created_at = sqlite3_column_int64(st, 3);
    mdm_strlcpy(out->kid, col_text(st, 4), sizeof(out->kid));
    out->key_pem = strdup(col_text(st, 5));
    rc = out->key_pem ? MDM_OK : MDM_ERR_NOMEM;
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

static const char SQL_TENANT_LIST[] =
  "SELECT t.id, t.name, t.region, t.created_at,"
  " (SELECT count(*) FROM devices d WHERE d.tenant_id = t.id)"
  " FROM tenants t ORDER BY t.name";

static json_t *tenant_row(sqlite3_stmt *st)
{
  return json_pack("{s:s, s:s, s:s, s:o, s:I}", "id", col_text(st, 0),
                   "name", col_text(st, 1), "region", col_text(st, 2),
                   "created_at", json_time_or_null(st, 3), "devices",
                   (json_int_t)sqlite3_column_int64(st, 4));
}

static mdm_rc sq_tenant_list(struct mdm_store *s, json_t **out)
{
  /* The statement has no parameter: the bound NULL is ignored. */
  return sq_read_rows((struct sq_store *)s, SQL_TENANT_LIST, NULL, NULL,
                      tenant_row, out);
}

/* ---- API tokens ------------------------------------------------------- */

struct token_create_args {
  const struct mdm_token_info *t;
  const char *name, *hash, *created_by;
  const struct mdm_audit_in *a;
  int64_t now;
};

static mdm_rc job_token_create(struct sq_conn *c, struct sq_job *j)
{
  struct token_create_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_TOKEN_INSERT);
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->t->tenant_id);
  bind_text(st, 2, x->t->id);
  bind_text(st, 3, x->name);
  bind_text(st, 4, x->t->role);
  bind_text(st, 5, x->hash);
  sqlite3_bind_int64(st, 6, x->now);
  bind_text(st, 7, x->created_by);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  return sq_audit(c, x->t->tenant_id, x->a);
}

static mdm_rc sq_token_create(struct mdm_store *s,
                              const struct mdm_token_info *t,
                              const char *name, const char *hash,
                              const char *created_by,
                              const struct mdm_audit_in *a, json_t **out)
{
  struct token_create_args x = {t, name, hash, created_by, a,
                                mdm_now_ms() / 1000};
  char ts[32];
  mdm_rc rc = sq_submit((struct sq_store *)s, job_token_create, &x);
  if(rc || !out)
    return rc;
  mdm_time_format(x.now, ts, sizeof(ts));
  *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", t->id, "name", name,
                   "role", t->role, "created_at", ts, "created_by",
                   created_by);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}

static const char SQL_TOKEN_AUTH[] =
  "SELECT id, tenant_id, role FROM api_tokens WHERE hash = ?1";

static mdm_rc sq_token_auth(struct mdm_store *s, const char *hash,
                            struct mdm_token_info *out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_TOKEN_AUTH);
  mdm_rc rc = MDM_ERR_AUTH;
  int r;
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, hash);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    mdm_strlcpy(out->id, col_text(st, 0), sizeof(out->id));
    mdm_strlcpy(out->tenant_id, col_text(st, 1), sizeof(out->tenant_id));
    mdm_strlcpy(out->role, col_text(st, 2), sizeof(out->role));
    rc = MDM_OK;
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

static const char SQL_TOKEN_LIST[] =
  "SELECT id, name, role, created_at, created_by FROM api_tokens"
  " WHERE tenant_id = ?1 ORDER BY created_at, id";

static json_t *token_row(sqlite3_stmt *st)
{
  return json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", col_text(st, 0),
                   "name", col_text(st, 1), "role", col_text(st, 2),
                   "created_at", json_time_or_null(st, 3), "created_by",
                   col_text(st, 4));
}

static mdm_rc sq_token_list(struct mdm_store *s, const char *tenant,
                            json_t **out)
{
  return sq_read_rows((struct sq_store *)s, SQL_TOKEN_LIST, tenant, NULL,
                      token_row, out);
}

static const char SQL_TOKEN_DELETE[] =
  "DELETE FROM api_tokens WHERE tenant_id = ?1 AND id = ?2";

static mdm_rc sq_token_delete(struct mdm_store *s, const char *tenant,
                              const char *id, const struct mdm_audit_in *a)
{
  return sq_one_row(s, SQL_TOKEN_DELETE, tenant, id, a);
}

/* ---- enrollment tokens ------------------------------------------------ */

struct etoken_create_args {
  const char *tenant, *id, *created_by;
  int64_t expires_at, max_uses, now;
  const char *labels;
  const struct mdm_audit_in *a;
};

static const char SQL_ETOKEN_INSERT[] =
  "INSERT INTO enrollment_tokens(tenant_id, id, expires_at, max_uses, labels,"
  " created_at, created_by) VALUES (?1,?2,?3,?4,?5,?6,?7)";

static mdm_rc job_etoken_create(struct sq_conn *c, struct sq_job *j)
{
  struct etoken_create_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_ETOKEN_INSERT);
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->id);
  sqlite3_bind_int64(st, 3, x->expires_at);
  sqlite3_bind_int64(st, 4, x->max_uses);
  bind_text(st, 5, x->labels);
  sqlite3_bind_int64(st, 6, x->now);
  bind_text(st, 7, x->created_by);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  return sq_audit(c, x->tenant, x->a);
}

static mdm_rc sq_etoken_create(struct mdm_store *s, const char *tenant,
                               const char *id, int64_t expires_at,
                               int64_t max_uses, json_t *labels,
                               const char *created_by,
                               const struct mdm_audit_in *a, json_t **out)
{
  struct etoken_create_args x;
  char *ltext = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
  char ts[32];
  mdm_rc rc;
  if(!ltext)
    return MDM_ERR_NOMEM;
  x.tenant = tenant;
  x.id = id;
  x.created_by = created_by;
  x.expires_at = expires_at;
  x.max_uses = max_uses;
  x.now = mdm_now_ms() / 1000;
  x.labels = ltext;
  x.a = a;
  rc = sq_submit((struct sq_store *)s, job_etoken_create, &x);
  free(ltext);
  if(rc || !out)
    return rc;
  mdm_time_format(expires_at, ts, sizeof(ts));
  *out = json_pack("{s:s, s:s, s:I, s:O}", "id", id, "expires_at", ts,
                   "max_uses", (json_int_t)max_uses, "labels", labels);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}

static const char SQL_ETOKEN_LIST[] =
  "SELECT id, expires_at, max_uses, uses, labels, created_at, revoked,"
  " created_by FROM enrollment_tokens WHERE tenant_id = ?1"
  " ORDER BY created_at, id";

static json_t *etoken_row(sqlite3_stmt *st)
{
  return json_pack("{s:s, s:o, s:I, s:I, s:o, s:o, s:b, s:s}", "id",
                   col_text(st, 0), "expires_at", json_time_or_null(st, 1),
                   "max_uses", (json_int_t)sqlite3_column_int64(st, 2),
                   "uses", (json_int_t)sqlite3_column_int64(st, 3),
                   "labels", json_parse_col(st, 4), "created_at",
                   json_time_or_null(st, 5), "revoked",
                   sqlite3_column_int(st, 6), "created_by", col_text(st, 7));
}

static mdm_rc sq_etoken_list(struct mdm_store *s, const char *tenant,
                             json_t **out)
{
  return sq_read_rows((struct sq_store *)s, SQL_ETOKEN_LIST, tenant, NULL,
                      etoken_row, out);
}

static const char SQL_ETOKEN_LABELS[] =
  "SELECT labels FROM enrollment_tokens WHERE tenant_id = ?1 AND id = ?2";

static mdm_rc json_col0(sqlite3_stmt *st, void *out)
{
  *(json_t **)out = json_parse_col(st, 0);
  return MDM_OK;
}

static mdm_rc sq_etoken_labels(struct mdm_store *s, const char *tenant,
                               const char *id, json_t **labels)
{
  return sq_read_one((struct sq_store *)s, SQL_ETOKEN_LABELS, tenant, id,
                     json_col0, labels);
}

static const char SQL_ETOKEN_REVOKE[] =
  "UPDATE enrollment_tokens SET revoked = 1"
  " WHERE tenant_id = ?1 AND id = ?2 AND revoked = 0";

static mdm_rc sq_etoken_revoke(struct mdm_store *s, const char *tenant,
                               const char *id, const struct mdm_audit_in *a)
{
  return sq_one_row(s, SQL_ETOKEN_REVOKE, tenant, id, a);
}

/* ---- devices: enroll and check-in ------------------------------------- */

struct enroll_args {
  const char *tenant;
  const struct mdm_enroll_in *in;
  const struct mdm_audit_in *a;
};

static const char SQL_ETOKEN_CLAIM[] =
  "SELECT expires_at, max_uses, uses, revoked, labels FROM enrollment_tokens"
  " WHERE tenant_id = ?1 AND id = ?2";
static const char SQL_ETOKEN_USE[] =
  "UPDATE enrollment_tokens SET uses = uses + 1"
  " WHERE tenant_id = ?1 AND id = ?2 AND uses < max_uses";
/* The facts' summary columns come from the facts themselves. */
static const char SQL_DEVICE_INSERT[] =
  "INSERT INTO devices(tenant_id, id, serial, platform, hostname, model,"
  " os_name, os_version, os_build, os_kernel, labels, enrolled_at,"
  " enrollment_token_id, token_jti, facts, facts_updated_at)"
  " VALUES (?1, ?2, json_extract(?3,'$.serial'), json_extract(?3,'$.platform'),"
  " json_extract(?3,'$.hostname'), json_extract(?3,'$.model'),"
  " json_extract(?3,'$.os.name'), json_extract(?3,'$.os.version'),"
  " json_extract(?3,'$.os.build'), json_extract(?3,'$.os.kernel'),"
  " ?4, ?5, ?6, ?7, ?3, ?5)";
static const char SQL_STATUS_INSERT[] =
  "INSERT INTO device_status(tenant_id, device_id, state, compliance,"
  " last_seen, facts_hash) VALUES (?1, ?2, 'active', 'unknown', ?3, ?4)";

static mdm_rc write_verdict(struct sq_conn *c, const char *tenant,
                            const char *device_id, int64_t gen,
                            const char *state, const char *reasons,
                            const char *etag, const char *old_state,
                            int64_t now, int *is_written, int *is_changed);

static const char SQL_CERT_INSERT[] =
  "INSERT INTO device_certs(tenant_id, serial, device_id, fingerprint,"
  " not_before, not_after, issued_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/* Store the certificate issued to device_id. */
static mdm_rc cert_insert(struct sq_conn *c, const char *tenant,
                          const char *device_id,
                          const struct mdm_cert_in *cert, int64_t now)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_CERT_INSERT);
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, cert->serial);
  bind_text(st, 3, device_id);
  bind_text(st, 4, cert->fingerprint);
  sqlite3_bind_int64(st, 5, cert->not_before);
  sqlite3_bind_int64(st, 6, cert->not_after);
  sqlite3_bind_int64(st, 7, now);
  rc = sq_step_done(c, st);
  sq_done(st);
  return rc;
}

static mdm_rc job_enroll(struct sq_conn *c, struct sq_job *j)
{
  struct enroll_args *x = j->arg;
  const struct mdm_enroll_in *in = x->in;
  sqlite3_stmt *st = sq_stmt(c, SQL_ETOKEN_CLAIM);
  char *labels = NULL;
  mdm_rc rc = MDM_OK;
  int r;

  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, in->etoken_id);
  r = sqlite3_step(st);
  if(r != SQLITE_ROW)
    rc = r == SQLITE_DONE ? MDM_ERR_NOTFOUND : MDM_ERR_STORE;
  else if(sqlite3_column_int(st, 3))
    rc = MDM_ERR_NOTFOUND;  /* revoked */
  else if(sqlite3_column_int64(st, 0) <= in->now)
    rc = MDM_ERR_EXPIRED;
  else if(sqlite3_column_int64(st, 2) >= sqlite3_column_int64(st, 1))
    rc = MDM_ERR_CONFLICT;  /* used up */
  else {
    labels = strdup(col_text(st, 4) ? col_text(st, 4) : "{}");
    if(!labels)
      rc = MDM_ERR_NOMEM;
  }
  sq_done(st);
  if(rc)
    return rc;

  st = sq_stmt(c, SQL_ETOKEN_USE);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, in->etoken_id);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(!rc && sqlite3_changes(c->db) != 1)
    rc = MDM_ERR_CONFLICT;
  if(rc)
    goto out;

  st = sq_stmt(c, SQL_DEVICE_INSERT);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, in->device_id);
  bind_text(st, 3, in->facts_json);
  bind_text(st, 4, labels);
  sqlite3_bind_int64(st, 5, in->now);
  bind_text(st, 6, in->etoken_id);
  bind_text(st, 7, in->token_jti);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    goto out;

  st = sq_stmt(c, SQL_STATUS_INSERT);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, in->device_id);
  sqlite3_bind_int64(st, 3, in->now);
  bind_text(st, 4, in->facts_hash);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    goto out;
  if(in->verdict) {
    rc = write_verdict(c, x->tenant, in->device_id, in->verdict->gen,
                       in->verdict->state, in->verdict->reasons_json,
                       in->verdict->policy_etag, "unknown", in->now, NULL,
                       NULL);
    if(rc)
      goto out;
  }
  if(in->cert) {
    rc = cert_insert(c, x->tenant, in->device_id, in->cert, in->now);
    if(rc)
      goto out;
  }
  rc = sq_audit(c, x->tenant, x->a);
out:
  free(labels);
  return rc;
}

static mdm_rc sq_device_get(struct mdm_store *s, const char *tenant,
                            const char *id, json_t **out);

static mdm_rc sq_enroll(struct mdm_store *s, const char *tenant,
                        const struct mdm_enroll_in *in,
                        const struct mdm_audit_in *a, json_t **device)
{
  struct enroll_args x = {tenant, in, a};
  mdm_rc rc = sq_submit((struct sq_store *)s, job_enroll, &x);
  if(rc || !device)
    return rc;
  return sq_device_get(s, tenant, in->device_id, device);
}

struct checkin_args {
  const char *tenant;
  const struct mdm_checkin_in *in;
  char compliance[16];
  int64_t n_pending;
};

/* How many commands wait for the device (?1 tenant, ?2 device, ?3 now):
 * read from the commands_pending index alone. */
#define SQL_PENDING_COUNT                                                  \
  "(SELECT count(*) FROM commands WHERE tenant_id = ?1 AND device_id = ?2" \
  " AND status IN ('queued', 'sent') AND expires_at > ?3)"

static const char SQL_CHECKIN_STATUS[] =
  "UPDATE device_status SET last_seen = ?3, body_hash = ?4"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND state = 'active'"
  " RETURNING facts_hash, compliance, " SQL_PENDING_COUNT;
static const char SQL_CHECKIN_TOUCH[] =
  "UPDATE device_status SET last_seen = ?3"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND state = 'active'"
  " AND body_hash = ?4"
  " AND eval_gen = (SELECT policy_gen FROM tenants WHERE id = ?1)"
  " RETURNING compliance, policy_etag, " SQL_PENDING_COUNT;
static const char SQL_CHECKIN_FACTS[] =
  "UPDATE devices SET facts = ?3, facts_updated_at = ?4, policy_status = ?5,"
  " serial = json_extract(?3,'$.serial'),"
  " platform = json_extract(?3,'$.platform'),"
  " hostname = json_extract(?3,'$.hostname'),"
  " model = json_extract(?3,'$.model'),"
  " os_name = json_extract(?3,'$.os.name'),"
  " os_version = json_extract(?3,'$.os.version'),"
  " os_build = json_extract(?3,'$.os.build'),"
  " os_kernel = json_extract(?3,'$.os.kernel')"
  " WHERE tenant_id = ?1 AND id = ?2";
/* New facts invalidate the stored verdict's generation (-1) unless a new
 * verdict comes with them. */
/* New facts make the stored verdict stale; a verdict of the current
 * generation that comes with them (write_verdict, next) makes it current
 * again.  A verdict computed under replaced policies is not written, and
 * the device stays stale until its next check-in evaluates. */
static const char SQL_CHECKIN_HASH[] =
  "UPDATE device_status SET facts_hash = ?3, eval_gen = -1"
  " WHERE tenant_id = ?1 AND device_id = ?2";
static const char SQL_VERDICT_STATUS[] =
  "UPDATE device_status SET compliance = ?3, eval_gen = ?4, policy_etag = ?5"
  " WHERE tenant_id = ?1 AND device_id = ?2"
  " AND (SELECT policy_gen FROM tenants WHERE id = ?1) = ?4";
static const char SQL_VERDICT_REASONS[] =
  "INSERT INTO device_compliance(tenant_id, device_id, reasons, changed_at,"
  " evaluated_at) VALUES (?1, ?2, ?3, ?4, ?4)"
  " ON CONFLICT(tenant_id, device_id) DO UPDATE SET"
  " reasons = excluded.reasons, evaluated_at = excluded.evaluated_at,"
  " changed_at = CASE WHEN ?5 THEN excluded.changed_at ELSE changed_at END";

/* ---- compliance changes for the change feed ---- */

static const char SQL_CHANGE_PRIOR[] =
  "SELECT s.compliance, c.reasons FROM device_status s"
  " LEFT JOIN device_compliance c ON c.tenant_id = s.tenant_id"
  " AND c.device_id = s.device_id"
  " WHERE s.tenant_id = ?1 AND s.device_id = ?2";

/* A device's stored verdict before a new one is written. */
struct change_prior {
  int has_verdict;            /* it had one (a device_compliance row) */
  char *state, *reasons;
};

static void prior_read(struct sq_conn *c, const char *tenant,
                       const char *device_id, struct change_prior *p)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_CHANGE_PRIOR);
  memset(p, 0, sizeof(*p));
  if(!st)
    return;
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  if(sqlite3_step(st) == SQLITE_ROW) {
    p->has_verdict = col_text(st, 1) != NULL;
    p->state = strdup(col_text(st, 0) ? col_text(st, 0) : "unknown");
    p->reasons = col_text(st, 1) ? strdup(col_text(st, 1)) : NULL;
  }
  sq_done(st);
}

static void prior_release(struct change_prior *p)
{
  free(p->state);
  free(p->reasons);
}

/* The verdict (state, reasons) just written for device_id, which was
 * prev_state before (NULL: its first verdict), goes to the change feed.
 * Nothing more is read here: a tenant re-evaluation writes 100,000 of
 * these on the writer's thread. */
static void capture_verdict(struct sq_conn *c, const char *tenant,
                            const char *device_id, const char *prev_state,
                            const char *state, const char *reasons,
                            int64_t now_ms)
{
  struct mdm_change t;
  memset(&t, 0, sizeof(t));
  t.kind = MDM_CHANGE_COMPLIANCE;
  t.at_ms = now_ms;
  t.tenant_id = tenant;
  t.device_id = device_id;
  t.state = state;
  t.prev_state = prev_state;
  t.reasons_json = reasons ? reasons : "[]";
  capture_add(c, &t);
}

/* Does the verdict (state, reasons) differ from what p says was stored? */
static int prior_differs(const struct change_prior *p, const char *state,
                         const char *reasons)
{
  if(!p->has_verdict || !p->state)
    return 1;
  return strcmp(p->state, state) ||
         strcmp(p->reasons ? p->reasons : "[]", reasons ? reasons : "[]");
}

/* Store a verdict computed under generation gen, if gen is still current.
 * old_state is the device's state before.  *is_written says whether it was
 * stored, *is_changed whether the state changed (both may be NULL). */
static mdm_rc write_verdict(struct sq_conn *c, const char *tenant,
                            const char *device_id, int64_t gen,
                            const char *state, const char *reasons,
                            const char *etag, const char *old_state,
                            int64_t now, int *is_written, int *is_changed)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_VERDICT_STATUS);
  int is_diff = strcmp(old_state, state) != 0;
  struct change_prior prior;
  mdm_rc rc;

  memset(&prior, 0, sizeof(prior));
  if(is_changed)
    *is_changed = 0;
  if(is_written)
    *is_written = 0;
  if(!st)
    return MDM_ERR_STORE;
  if(c->cap)
    prior_read(c, tenant, device_id, &prior);
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  bind_text(st, 3, state);
  sqlite3_bind_int64(st, 4, gen);
  bind_text(st, 5, etag);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc || sqlite3_changes(c->db) != 1)
    goto out;  /* a newer generation exists: its evaluation wins */
  st = sq_stmt(c, SQL_VERDICT_REASONS);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  bind_text(st, 3, reasons ? reasons : "[]");
  sqlite3_bind_int64(st, 4, now);
  sqlite3_bind_int(st, 5, is_diff);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(!rc && c->cap && prior_differs(&prior, state, reasons))
    capture_verdict(c, tenant, device_id,
                    prior.has_verdict ? prior.state : NULL, state, reasons,
                    mdm_now_ms());
  if(!rc && is_changed)
    *is_changed = is_diff;
  if(!rc && is_written)
    *is_written = 1;
out:
  prior_release(&prior);
  return rc;
}

static mdm_rc job_checkin(struct sq_conn *c, struct sq_job *j)
{
  struct checkin_args *x = j->arg;
  const struct mdm_checkin_in *in = x->in;
  sqlite3_stmt *st = sq_stmt(c, SQL_CHECKIN_STATUS);
  int is_same = 0, r;
  mdm_rc rc = MDM_OK;

  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, in->device_id);
  sqlite3_bind_int64(st, 3, in->now);
  if(in->body_hash)
    sqlite3_bind_blob(st, 4, in->body_hash, 32, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, 4);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    const char *h = col_text(st, 0);
    is_same = h && !strcmp(h, in->facts_hash);
    mdm_strlcpy(x->compliance, col_text(st, 1) ? col_text(st, 1) : "unknown",
                sizeof(x->compliance));
    x->n_pending = sqlite3_column_int64(st, 2);
    r = sqlite3_step(st);  /* run to completion */
  }
  else
    rc = r == SQLITE_DONE ? MDM_ERR_AUTH : MDM_ERR_STORE;
  sq_done(st);
  if(rc)
    return rc;

  if(!is_same) {
    st = sq_stmt(c, SQL_CHECKIN_FACTS);
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, in->device_id);
    bind_text(st, 3, in->facts_json);
    sqlite3_bind_int64(st, 4, in->now);
    bind_text(st, 5, in->policy_status_json);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      return rc;
    st = sq_stmt(c, SQL_CHECKIN_HASH);
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, in->device_id);
    bind_text(st, 3, in->facts_hash);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      return rc;
  }
  if(in->verdict) {
    int is_written = 0;
    rc = write_verdict(c, x->tenant, in->device_id, in->verdict->gen,
                       in->verdict->state, in->verdict->reasons_json,
                       in->verdict->policy_etag, x->compliance, in->now,
                       &is_written, NULL);
    if(!rc && is_written)
      mdm_strlcpy(x->compliance, in->verdict->state, sizeof(x->compliance));
  }
  return rc;
}

static mdm_rc sq_checkin(struct mdm_store *s, const char *tenant,
                         const struct mdm_checkin_in *in, json_t **state)
{
  struct checkin_args x;
  mdm_rc rc;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.in = in;
  rc = sq_submit((struct sq_store *)s, job_checkin, &x);
  if(rc || !state)
    return rc;
  *state = json_pack("{s:s, s:I}", "compliance", x.compliance,
                     "pending_commands", (json_int_t)x.n_pending);
  return *state ? MDM_OK : MDM_ERR_NOMEM;
}

struct touch_args {
  const char *tenant, *device_id;
  const unsigned char *hash;
  int64_t now;
  char *compliance, *etag;
  int64_t *n_pending;
};

static mdm_rc job_checkin_touch(struct sq_conn *c, struct sq_job *j)
{
  struct touch_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_CHECKIN_TOUCH);
  mdm_rc rc = MDM_ERR_NOTFOUND;
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  sqlite3_bind_int64(st, 3, x->now);
  sqlite3_bind_blob(st, 4, x->hash, 32, SQLITE_STATIC);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    mdm_strlcpy(x->compliance, col_text(st, 0) ? col_text(st, 0) : "unknown",
                16);
    mdm_strlcpy(x->etag, col_text(st, 1) ? col_text(st, 1) : "", 72);
    *x->n_pending = sqlite3_column_int64(st, 2);
    rc = MDM_OK;
    sqlite3_step(st);
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  return rc;
}

static mdm_rc sq_checkin_touch(struct mdm_store *s, const char *tenant,
                               const char *device_id,
                               const unsigned char body_hash[32], int64_t now,
                               char compliance[16], char etag[72],
                               int64_t *n_pending)
{
  struct touch_args x = {tenant, device_id, body_hash, now, compliance, etag,
                         n_pending};
  return sq_submit((struct sq_store *)s, job_checkin_touch, &x);
}

static const char SQL_DEVICE_ACTIVE[] =
  "SELECT 1 FROM device_status WHERE tenant_id = ?1 AND device_id = ?2"
  " AND state = 'active'";

/* Is the device active, on connection c?  MDM_OK, MDM_ERR_AUTH (retired,
 * wiped or unknown) or MDM_ERR_STORE. */
static mdm_rc device_is_active(struct sq_conn *c, const char *tenant,
                               const char *device_id)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_DEVICE_ACTIVE);
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  r = sqlite3_step(st);
  sq_done(st);
  return r == SQLITE_ROW ? MDM_OK : r == SQLITE_DONE ? MDM_ERR_AUTH
                                                     : MDM_ERR_STORE;
}

static mdm_rc sq_device_active(struct mdm_store *s, const char *tenant,
                               const char *device_id)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot;
  struct sq_conn *c = sq_reader_get(q, &slot);
  mdm_rc rc = device_is_active(c, tenant, device_id);
  sq_reader_put(q, slot);
  return rc;
}

/* ---- devices: reads --------------------------------------------------- */

#define DEVICE_COLS                                                         \
  "d.id, d.serial, d.platform, d.hostname, d.model, d.os_name,"             \
  " d.os_version, d.os_build, d.os_kernel, d.labels, d.upn, d.enrolled_at," \
  " s.last_seen, s.state, s.compliance, d.facts, d.telemetry_dropped,"  \
  " c.reasons, c.changed_at, d.policy_status, s.policy_etag, t.name,"   \
  " d.retire_command_id"
#define DEVICE_FROM                                          \
  " FROM devices d JOIN device_status s"                     \
  " ON s.tenant_id = d.tenant_id AND s.device_id = d.id"     \
  " LEFT JOIN device_compliance c"                           \
  " ON c.tenant_id = d.tenant_id AND c.device_id = d.id"     \
  " JOIN tenants t ON t.id = d.tenant_id"

static json_t *device_row(sqlite3_stmt *st)
{
  json_t *os = json_pack("{s:o, s:o, s:o, s:o}",
                         "name", json_text_or_null(col_text(st, 5)),
                         "version", json_text_or_null(col_text(st, 6)),
                         "build", json_text_or_null(col_text(st, 7)),
                         "kernel", json_text_or_null(col_text(st, 8)));
  json_t *reasons = json_parse_col(st, 17);
  if(json_is_null(reasons)) {
    json_decref(reasons);
    reasons = json_array();
  }
  return json_pack(
    "{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
    " s:o, s:I, s:o, s:o, s:o, s:o, s:b, s:o}",
    "id", col_text(st, 0), "tenant", json_text_or_null(col_text(st, 21)),
    "serial", json_text_or_null(col_text(st, 1)),
    "platform", json_text_or_null(col_text(st, 2)), "hostname",
    json_text_or_null(col_text(st, 3)), "model",
    json_text_or_null(col_text(st, 4)), "os", os ? os : json_null(),
    "labels", json_parse_col(st, 9), "user_principal_name",
    json_text_or_null(col_text(st, 10)), "enrolled_at",
    json_time_or_null(st, 11), "last_seen", json_time_or_null(st, 12),
    "state", json_text_or_null(col_text(st, 13)), "compliance",
    json_text_or_null(col_text(st, 14)), "facts", json_parse_col(st, 15),
    "telemetry_dropped", (json_int_t)sqlite3_column_int64(st, 16),
    "compliance_reasons", reasons, "compliance_changed_at",
    json_time_or_null(st, 18), "policy_status", json_parse_col(st, 19),
    "policy_etag", json_text_or_null(col_text(st, 20)),
    /* Pending while the device is active and waits for its wipe. */
    "retire_pending", col_text(st, 22) && col_text(st, 13) &&
                      !strcmp(col_text(st, 13), "active"),
    "retire_command_id", json_text_or_null(col_text(st, 22)));
}

static const char SQL_DEVICE_GET[] =
  "SELECT " DEVICE_COLS DEVICE_FROM " WHERE d.tenant_id = ?1 AND d.id = ?2";

/* The first row of sql (?1 tenant, ?2 id) on connection c, shaped by row.
 * MDM_ERR_NOTFOUND when there is none. */
static mdm_rc row_get_on(struct sq_conn *c, const char *sql,
                         const char *tenant, const char *id, sq_row_fn row,
                         json_t **out)
{
  sqlite3_stmt *st = sq_stmt(c, sql);
  mdm_rc rc = MDM_ERR_NOTFOUND;
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    *out = row(st);
    rc = *out ? MDM_OK : MDM_ERR_NOMEM;
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  return rc;
}

static mdm_rc device_get_on(struct sq_conn *c, const char *tenant,
                            const char *id, json_t **out)
{
  return row_get_on(c, SQL_DEVICE_GET, tenant, id, device_row, out);
}

static mdm_rc sq_device_get(struct mdm_store *s, const char *tenant,
                            const char *id, json_t **out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot;
  struct sq_conn *c = sq_reader_get(q, &slot);
  mdm_rc rc = device_get_on(c, tenant, id, out);
  sq_reader_put(q, slot);
  return rc;
}

static mdm_rc sq_device_list(struct mdm_store *s, const char *tenant,
                             const struct mdm_device_filter *f,
                             json_t **items, char **next_cursor)
{
  struct sq_store *q = (struct sq_store *)s;
  struct mdm_buf sql;
  sqlite3_stmt *st = NULL;
  json_t *arr = json_array();
  int slot, i, n = 0, idx = 2, r;
  struct sq_conn *c;
  mdm_rc rc = MDM_OK;

  *next_cursor = NULL;
  if(!arr)
    return MDM_ERR_NOMEM;
  /* The text is made of fixed fragments only; every value is bound. */
  mdm_buf_init(&sql, 4096);
  rc = mdm_buf_puts(&sql, "SELECT " DEVICE_COLS DEVICE_FROM
                          " WHERE d.tenant_id = ?1");
  if(!rc && f->platform)
    rc = mdm_buf_printf(&sql, " AND d.platform = ?%d", idx++);
  if(!rc && f->compliance)
    rc = mdm_buf_printf(&sql, " AND s.compliance = ?%d", idx++);
  if(!rc && f->state)
    rc = mdm_buf_printf(&sql, " AND s.state = ?%d", idx++);
  for(i = 0; !rc && i < f->n_labels; i++) {
    rc = mdm_buf_printf(&sql, " AND json_extract(d.labels, ?%d) = ?%d", idx,
                        idx + 1);
    idx += 2;
  }
  if(!rc && f->after_id)
    rc = mdm_buf_printf(&sql, " AND d.id > ?%d", idx++);
  if(!rc)
    rc = mdm_buf_printf(&sql, " ORDER BY d.id LIMIT %d", f->limit + 1);
  if(rc) {
    mdm_buf_release(&sql);
    json_decref(arr);
    return rc;
  }

  c = sq_reader_get(q, &slot);
  if(sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL) != SQLITE_OK) {
    mdm_error("sqlite: prepare: %s", sqlite3_errmsg(c->db));
    rc = MDM_ERR_STORE;
    goto out;
  }
  idx = 1;
  bind_text(st, idx++, tenant);
  if(f->platform)
    bind_text(st, idx++, f->platform);
  if(f->compliance)
    bind_text(st, idx++, f->compliance);
  if(f->state)
    bind_text(st, idx++, f->state);
  for(i = 0; i < f->n_labels; i++) {
    struct mdm_buf path;
    json_t *key = json_string(f->label_key[i]);
    char *kq = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
    json_decref(key);
    mdm_buf_init(&path, 1024);
    if(!kq || mdm_buf_printf(&path, "$.%s", kq)) {
      free(kq);
      mdm_buf_release(&path);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    free(kq);
    bind_text(st, idx++, path.data);
    bind_text(st, idx++, f->label_val[i]);
    mdm_buf_release(&path);
  }
  if(f->after_id)
    bind_text(st, idx++, f->after_id);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    if(n == f->limit) {
      /* One more row exists: the cursor is the last id returned. */
      json_t *last = json_array_get(arr, (size_t)n - 1);
      const char *lid = json_string_value(json_object_get(last, "id"));
      *next_cursor = lid ? strdup(lid) : NULL;
      break;
    }
    json_array_append_new(arr, device_row(st));
    n++;
  }
  if(r != SQLITE_ROW && r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sqlite3_finalize(st);
  sq_reader_put(q, slot);
  mdm_buf_release(&sql);
  if(rc) {
    json_decref(arr);
    free(*next_cursor);
    *next_cursor = NULL;
    return rc;
  }
  *items = arr;
  return MDM_OK;
}

/* ---- devices: patch --------------------------------------------------- */

struct patch_args {
  const char *tenant, *id;
  json_t *labels_patch, *upn;
  const struct mdm_audit_in *a;
  json_t *out;
};

static const char SQL_DEVICE_LABELS[] =
  "SELECT labels, upn FROM devices WHERE tenant_id = ?1 AND id = ?2";
static const char SQL_DEVICE_STALE[] =
  "UPDATE device_status SET eval_gen = -1"
  " WHERE tenant_id = ?1 AND device_id = ?2";
static const char SQL_DEVICE_PATCH[] =
  "UPDATE devices SET labels = ?3, upn = ?4 WHERE tenant_id = ?1 AND id = ?2";

static mdm_rc job_device_patch(struct sq_conn *c, struct sq_job *j)
{
  struct patch_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_DEVICE_LABELS);
  json_t *labels = NULL;
  char *upn = NULL, *ltext = NULL;
  const char *key;
  json_t *val;
  mdm_rc rc = MDM_OK;
  int r;

  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->id);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    labels = json_loads(col_text(st, 0) ? col_text(st, 0) : "{}", 0, NULL);
    if(col_text(st, 1))
      upn = strdup(col_text(st, 1));
    if(!json_is_object(labels)) {
      json_decref(labels);
      labels = json_object();
    }
  }
  else
    rc = r == SQLITE_DONE ? MDM_ERR_NOTFOUND : MDM_ERR_STORE;
  sq_done(st);
  if(rc)
    goto out;

  if(x->labels_patch) {
    json_object_foreach(x->labels_patch, key, val) {
      if(json_is_null(val))
        json_object_del(labels, key);
      else
        json_object_set(labels, key, val);
    }
  }
  if(json_object_size(labels) > 64) {
    rc = MDM_ERR_TOOBIG;  /* the handler says: at most 64 labels */
    goto out;
  }
  if(x->upn) {
    free(upn);
    upn = json_is_string(x->upn) ? strdup(json_string_value(x->upn)) : NULL;
  }
  ltext = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
  if(!ltext) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  st = sq_stmt(c, SQL_DEVICE_PATCH);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->id);
  bind_text(st, 3, ltext);
  bind_text(st, 4, upn);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    goto out;
  if(x->labels_patch) {
    /* Labels select policies: the stored verdict is stale now. */
    st = sq_stmt(c, SQL_DEVICE_STALE);
    if(!st) {
      rc = MDM_ERR_STORE;
      goto out;
    }
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, x->id);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      goto out;
  }
  rc = sq_audit(c, x->tenant, x->a);
  if(rc)
    goto out;
  rc = device_get_on(c, x->tenant, x->id, &x->out);
out:
  json_decref(labels);
  free(upn);
  free(ltext);
  return rc;
}

static mdm_rc sq_device_patch(struct mdm_store *s, const char *tenant,
                              const char *id, json_t *labels_patch,
                              json_t *upn, const struct mdm_audit_in *a,
                              json_t **out)
{
  struct patch_args x = {tenant, id, labels_patch, upn, a, NULL};
  mdm_rc rc = sq_submit((struct sq_store *)s, job_device_patch, &x);
  if(rc) {
    json_decref(x.out);
    return rc;
  }
  if(out)
    *out = x.out;
  else
    json_decref(x.out);
  return MDM_OK;
}

/* ---- compliance ------------------------------------------------------- */

static const char SQL_EVAL_STATE[] =
  "SELECT s.facts_hash, s.compliance, s.eval_gen, t.policy_gen,"
  " s.policy_etag, d.labels"
  " FROM device_status s JOIN tenants t ON t.id = s.tenant_id"
  " JOIN devices d ON d.tenant_id = s.tenant_id AND d.id = s.device_id"
  " WHERE s.tenant_id = ?1 AND s.device_id = ?2 AND s.state = 'active'";
static const char SQL_EVAL_STATE_NARROW[] =
  "SELECT s.facts_hash, s.compliance, s.eval_gen, t.policy_gen,"
  " s.policy_etag"
  " FROM device_status s JOIN tenants t ON t.id = s.tenant_id"
  " WHERE s.tenant_id = ?1 AND s.device_id = ?2 AND s.state = 'active'";

static mdm_rc sq_device_eval_state(struct mdm_store *s, const char *tenant,
                                   const char *device_id,
                                   struct mdm_eval_state *out,
                                   json_t **labels)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  /* The labels live in the wide row: read it only when asked. */
  sqlite3_stmt *st = sq_stmt(c, labels ? SQL_EVAL_STATE
                                       : SQL_EVAL_STATE_NARROW);
  mdm_rc rc = MDM_ERR_STORE;

  memset(out, 0, sizeof(*out));
  if(st) {
    bind_text(st, 1, tenant);
    bind_text(st, 2, device_id);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW) {
      mdm_strlcpy(out->facts_hash, col_text(st, 0) ? col_text(st, 0) : "",
                  sizeof(out->facts_hash));
      mdm_strlcpy(out->compliance, col_text(st, 1) ? col_text(st, 1)
                                                   : "unknown",
                  sizeof(out->compliance));
      out->eval_gen = sqlite3_column_int64(st, 2);
      out->policy_gen = sqlite3_column_int64(st, 3);
      mdm_strlcpy(out->policy_etag, col_text(st, 4) ? col_text(st, 4) : "",
                  sizeof(out->policy_etag));
      if(labels)
        *labels = json_parse_col(st, 5);
      rc = MDM_OK;
    }
    else if(r == SQLITE_DONE)
      rc = MDM_ERR_AUTH;
  }
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

static const char SQL_DEVICE_UPN[] =
  "SELECT upn FROM devices WHERE tenant_id = ?1 AND id = ?2";

static mdm_rc sq_device_upn(struct mdm_store *s, const char *tenant,
                            const char *device_id, char *upn, size_t n)
{
  struct sq_store *q = (struct sq_store *)s;
  struct sq_conn *c = &q->upn_reader;
  sqlite3_stmt *st = NULL;
  mdm_rc rc = MDM_ERR_STORE;
  int r;
  upn[0] = '\0';
  pthread_mutex_lock(&q->upn_lock);
  if(!c->db && sq_conn_open(c, q->path, 0))
    sq_conn_close(c);
  if(c->db)
    st = sq_stmt(c, SQL_DEVICE_UPN);
  if(st) {
    bind_text(st, 1, tenant);
    bind_text(st, 2, device_id);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW) {
      mdm_strlcpy(upn, col_text(st, 0) ? col_text(st, 0) : "", n);
      rc = MDM_OK;
    }
    else if(r == SQLITE_DONE)
      rc = MDM_ERR_NOTFOUND;
  }
  sq_done(st);
  pthread_mutex_unlock(&q->upn_lock);
  return rc;
}

static mdm_rc sq_device_eval_scan(struct mdm_store *s, const char *tenant,
                                  const char *const *paths, size_t n_paths,
                                  mdm_eval_scan_fn fn, void *ctx)
{
  struct sq_store *q = (struct sq_store *)s;
  struct mdm_buf sql, jp;
  sqlite3_stmt *st = NULL;
  struct sq_conn *c;
  size_t i, n_sql_paths = n_paths == 1 ? 2 : n_paths;
  int slot, r, idx;
  mdm_rc rc;

  mdm_buf_init(&sql, 64 * 1024);
  rc = mdm_buf_puts(&sql, "SELECT d.id, d.platform, d.labels, s.facts_hash,"
                          " s.compliance, c.reasons, s.policy_etag");
  /* json_extract with two or more paths parses the facts once and returns
   * an array; a single path gets a dummy second one for the same shape. */
  if(!rc && n_paths) {
    rc = mdm_buf_puts(&sql, ", json_extract(d.facts");
    for(i = 0; !rc && i < n_sql_paths; i++)
      rc = mdm_buf_printf(&sql, ", ?%zu", i + 2);
    if(!rc)
      rc = mdm_buf_puts(&sql, ")");
  }
  if(!rc)
    rc = mdm_buf_puts(&sql, " FROM devices d JOIN device_status s"
                            " ON s.tenant_id = d.tenant_id AND s.device_id ="
                            " d.id LEFT JOIN device_compliance c ON"
                            " c.tenant_id = d.tenant_id AND c.device_id ="
                            " d.id WHERE d.tenant_id = ?1 AND s.state ="
                            " 'active' ORDER BY d.id");
  /* In id order, the verdicts written back in batches touch neighbouring
   * pages of device_status and device_compliance, not every page each
   * time (the same order as their primary keys). */
  if(rc) {
    mdm_buf_release(&sql);
    return rc;
  }
  c = sq_reader_get(q, &slot);
  if(sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL) != SQLITE_OK) {
    mdm_error("sqlite: prepare: %s", sqlite3_errmsg(c->db));
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  idx = 2;
  mdm_buf_init(&jp, 1024);
  for(i = 0; i < n_sql_paths; i++) {
    mdm_buf_reset(&jp);
    if(i < n_paths)
      rc = mdm_buf_printf(&jp, "$.%s", paths[i]);
    else
      rc = mdm_buf_puts(&jp, "$.\"\"");
    if(rc)
      break;
    bind_text(st, idx++, jp.data);
  }
  mdm_buf_release(&jp);
  if(rc)
    goto out;
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *labels = json_parse_col(st, 2), *values;
    int stop;
    if(n_paths) {
      values = json_parse_col(st, 7);
      if(!json_is_array(values)) {
        json_decref(values);
        values = json_array();
      }
    }
    else
      values = json_array();
    stop = fn(ctx, col_text(st, 0), col_text(st, 1), labels, col_text(st, 3),
              values, col_text(st, 4) ? col_text(st, 4) : "unknown",
              col_text(st, 5) ? col_text(st, 5) : "[]", col_text(st, 6));
    json_decref(labels);
    json_decref(values);
    if(stop)
      break;
  }
  if(r != SQLITE_ROW && r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sqlite3_finalize(st);
  sq_reader_put(q, slot);
  mdm_buf_release(&sql);
  return rc;
}

struct compliance_args {
  const char *tenant;
  int64_t gen, now;
  const struct mdm_compliance_put *u;
  size_t n, n_changed;
};

static const char SQL_COMPLIANCE_GEN[] =
  "SELECT policy_gen FROM tenants WHERE id = ?1";
static const char SQL_COMPLIANCE_STATUS[] =
  "UPDATE device_status SET compliance = ?4, eval_gen = ?5, policy_etag = ?6"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND facts_hash = ?3"
  " AND state = 'active'";
static const char SQL_COMPLIANCE_SAME[] =
  "UPDATE device_status SET eval_gen = ?4"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND facts_hash = ?3"
  " AND state = 'active'";

static mdm_rc put_one(struct sq_conn *c, struct compliance_args *x,
                      const struct mdm_compliance_put *u,
                      const struct change_prior *prior);

/* A tenant re-evaluation's verdicts, a batch at a time.  The generation is
 * checked once per batch (writes are serialized, so it cannot move inside
 * one); a device whose facts changed since the scan is skipped (its
 * check-in evaluates).  Unchanged verdicts only get the new generation. */
static mdm_rc job_compliance_put(struct sq_conn *c, struct sq_job *j)
{
  struct compliance_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_COMPLIANCE_GEN);
  size_t i;
  int r;

  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  r = sqlite3_step(st);
  if(r != SQLITE_ROW) {
    sq_done(st);
    return MDM_ERR_STORE;
  }
  if(sqlite3_column_int64(st, 0) != x->gen) {
    sq_done(st);
    return MDM_OK;  /* replaced meanwhile: that generation's scan writes */
  }
  sq_done(st);
  for(i = 0; i < x->n; i++) {
    const struct mdm_compliance_put *u = &x->u[i];
    struct change_prior prior;
    mdm_rc rc;
    memset(&prior, 0, sizeof(prior));
    /* The change feed needs the verdict before; a scan knows it. */
    if(c->cap && !u->is_same && !u->has_prior)
      prior_read(c, x->tenant, u->device_id, &prior);
    rc = put_one(c, x, u, &prior);
    prior_release(&prior);
    if(rc)
      return rc;
  }
  return MDM_OK;
}

/* One verdict of a compliance_put batch (the generation is checked). */
static mdm_rc put_one(struct sq_conn *c, struct compliance_args *x,
                      const struct mdm_compliance_put *u,
                      const struct change_prior *prior)
{
  sqlite3_stmt *st;
  mdm_rc rc;

  st = sq_stmt(c, u->is_same ? SQL_COMPLIANCE_SAME : SQL_COMPLIANCE_STATUS);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, u->device_id);
  bind_text(st, 3, u->facts_hash);
  if(u->is_same)
    sqlite3_bind_int64(st, 4, x->gen);
  else {
    bind_text(st, 4, u->state);
    sqlite3_bind_int64(st, 5, x->gen);
    bind_text(st, 6, u->policy_etag);
  }
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  if(u->is_same || sqlite3_changes(c->db) != 1)
    return MDM_OK;
  st = sq_stmt(c, SQL_VERDICT_REASONS);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, u->device_id);
  bind_text(st, 3, u->reasons_json ? u->reasons_json : "[]");
  sqlite3_bind_int64(st, 4, x->now);
  sqlite3_bind_int(st, 5, u->is_state_changed);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  x->n_changed += (size_t)u->is_state_changed;
  if(!c->cap)
    return MDM_OK;
  if(u->has_prior) {
    if(u->is_state_changed || u->is_reasons_changed)
      capture_verdict(c, x->tenant, u->device_id, u->prior_state, u->state,
                      u->reasons_json, mdm_now_ms());
  }
  else if(prior_differs(prior, u->state, u->reasons_json))
    capture_verdict(c, x->tenant, u->device_id,
                    prior->has_verdict ? prior->state : NULL, u->state,
                    u->reasons_json, mdm_now_ms());
  return MDM_OK;
}

static mdm_rc sq_compliance_put(struct mdm_store *s, const char *tenant,
                                int64_t gen,
                                const struct mdm_compliance_put *u, size_t n,
                                int64_t now, size_t *n_changed)
{
  struct compliance_args x = {tenant, gen, now, u, n, 0};
  mdm_rc rc = sq_submit((struct sq_store *)s, job_compliance_put, &x);
  if(!rc && n_changed)
    *n_changed = x.n_changed;
  return rc;
}

/* ---- policies --------------------------------------------------------- */

static const char SQL_POLICY_GEN[] =
  "SELECT policy_gen FROM tenants WHERE id = ?1";

static mdm_rc int_col0(sqlite3_stmt *st, void *out)
{
  *(int64_t *)out = sqlite3_column_int64(st, 0);
  return MDM_OK;
}

static mdm_rc sq_policy_gen(struct mdm_store *s, const char *tenant,
                            int64_t *gen)
{
  return sq_read_one((struct sq_store *)s, SQL_POLICY_GEN, tenant, NULL,
                     int_col0, gen);
}

static json_t *policy_row(sqlite3_stmt *st)
{
  return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o}", "kind",
                   col_text(st, 0), "name", col_text(st, 1), "version",
                   (json_int_t)sqlite3_column_int64(st, 2), "hash",
                   col_text(st, 3), "author", col_text(st, 4), "created_at",
                   json_time_or_null(st, 5), "updated_at",
                   json_time_or_null(st, 6), "document",
                   json_parse_col(st, 7));
}

static const char SQL_POLICY_LIST[] =
  "SELECT kind, name, version, hash, author, created_at, updated_at, doc"
  " FROM policies WHERE tenant_id = ?1 AND (?2 IS NULL OR kind = ?2)"
  " ORDER BY kind, name";
static const char SQL_POLICY_GET[] =
  "SELECT kind, name, version, hash, author, created_at, updated_at, doc"
  " FROM policies WHERE tenant_id = ?1 AND kind = ?2 AND name = ?3";

static mdm_rc sq_policy_list(struct mdm_store *s, const char *tenant,
                             const char *kind, json_t **items)
{
  return sq_read_rows((struct sq_store *)s, SQL_POLICY_LIST, tenant, kind,
                      policy_row, items);
}

static mdm_rc sq_policy_get(struct mdm_store *s, const char *tenant,
                            const char *kind, const char *name, json_t **out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_POLICY_GET);
  mdm_rc rc = MDM_ERR_STORE;
  if(st) {
    bind_text(st, 1, tenant);
    bind_text(st, 2, kind);
    bind_text(st, 3, name);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW) {
      *out = policy_row(st);
      rc = *out ? MDM_OK : MDM_ERR_NOMEM;
    }
    else if(r == SQLITE_DONE)
      rc = MDM_ERR_NOTFOUND;
  }
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

struct policy_apply_args {
  const char *tenant, *actor;
  const struct mdm_policy_change *ch;
  size_t n;
  int64_t now, gen;
  json_t *results;
};

static const char SQL_POLICY_VERSION[] =
  "SELECT version FROM policies WHERE tenant_id = ?1 AND kind = ?2"
  " AND name = ?3";
static const char SQL_POLICY_INSERT[] =
  "INSERT INTO policies(tenant_id, kind, name, version, hash, doc, author,"
  " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
  " ON CONFLICT(tenant_id, kind, name) DO UPDATE SET version = ?4,"
  " hash = ?5, doc = ?6, author = ?7, updated_at = ?8";
static const char SQL_POLICY_DELETE[] =
  "DELETE FROM policies WHERE tenant_id = ?1 AND kind = ?2 AND name = ?3";
static const char SQL_POLICY_BUMP[] =
  "UPDATE tenants SET policy_gen = policy_gen + 1 WHERE id = ?1"
  " RETURNING policy_gen";

static mdm_rc job_policy_apply(struct sq_conn *c, struct sq_job *j)
{
  struct policy_apply_args *x = j->arg;
  size_t i;
  mdm_rc rc = MDM_OK;

  for(i = 0; i < x->n; i++) {
    const struct mdm_policy_change *ch = &x->ch[i];
    sqlite3_stmt *st = sq_stmt(c, SQL_POLICY_VERSION);
    struct mdm_audit_in a;
    const char *action;
    int64_t cur = 0, version;
    json_t *detail;
    int r;

    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, ch->kind);
    bind_text(st, 3, ch->name);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW)
      cur = sqlite3_column_int64(st, 0);
    sq_done(st);
    if(r != SQLITE_ROW && r != SQLITE_DONE)
      return MDM_ERR_STORE;
    if(cur != ch->prior_version || (!ch->doc_json && cur == 0))
      return MDM_ERR_CONFLICT;
    if(ch->doc_json) {
      version = cur + 1;
      action = cur ? "policy.update" : "policy.create";
      st = sq_stmt(c, SQL_POLICY_INSERT);
      if(!st)
        return MDM_ERR_STORE;
      bind_text(st, 1, x->tenant);
      bind_text(st, 2, ch->kind);
      bind_text(st, 3, ch->name);
      sqlite3_bind_int64(st, 4, version);
      bind_text(st, 5, ch->hash);
      bind_text(st, 6, ch->doc_json);
      bind_text(st, 7, x->actor);
      sqlite3_bind_int64(st, 8, x->now);
    }
    else {
      version = cur;
      action = "policy.delete";
      st = sq_stmt(c, SQL_POLICY_DELETE);
      if(!st)
        return MDM_ERR_STORE;
      bind_text(st, 1, x->tenant);
      bind_text(st, 2, ch->kind);
      bind_text(st, 3, ch->name);
    }
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      return rc;
    detail = json_pack("{s:s, s:s, s:I, s:s*}", "kind", ch->kind, "name",
                       ch->name, "version", (json_int_t)version, "hash",
                       ch->hash);
    {
      char target[200];
      snprintf(target, sizeof(target), "%s/%s", ch->kind, ch->name);
      a.actor = x->actor;
      a.action = action;
      a.target = target;
      a.detail = detail;
      rc = sq_audit(c, x->tenant, &a);
    }
    json_decref(detail);
    if(rc)
      return rc;
    json_array_append_new(
      x->results,
      json_pack("{s:s, s:s, s:s, s:I}", "kind", ch->kind, "name", ch->name,
                "action", ch->doc_json ? (cur ? "updated" : "created")
                                       : "deleted",
                "version", (json_int_t)version));
  }
  if(x->n) {
    sqlite3_stmt *st = sq_stmt(c, SQL_POLICY_BUMP);
    int r;
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW) {
      x->gen = sqlite3_column_int64(st, 0);
      r = sqlite3_step(st);
    }
    sq_done(st);
    if(r != SQLITE_DONE)
      return MDM_ERR_STORE;
  }
  return MDM_OK;
}

static mdm_rc sq_policy_apply(struct mdm_store *s, const char *tenant,
                              const struct mdm_policy_change *ch, size_t n,
                              const char *actor, json_t **results,
                              int64_t *gen)
{
  struct policy_apply_args x;
  mdm_rc rc;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.actor = actor;
  x.ch = ch;
  x.n = n;
  x.now = mdm_now_ms() / 1000;
  x.results = json_array();
  if(!x.results)
    return MDM_ERR_NOMEM;
  rc = sq_submit((struct sq_store *)s, job_policy_apply, &x);
  if(rc) {
    json_decref(x.results);
    return rc;
  }
  if(!n)
    rc = sq_policy_gen(s, tenant, &x.gen);
  if(gen)
    *gen = x.gen;
  if(results)
    *results = x.results;
  else
    json_decref(x.results);
  return rc;
}

/* ---- telemetry -------------------------------------------------------- */

struct telemetry_args {
  const char *tenant, *device_id;
  json_t *events;
  int64_t dropped, now;
  int64_t accepted, duplicates, last_seq;
};

static const char SQL_TELEMETRY_INSERT[] =
  "INSERT OR IGNORE INTO telemetry(tenant_id, device_id, seq, at, type, data,"
  " received_at) VALUES (?1,?2,?3,?4,?5,?6,?7)";
static const char SQL_TELEMETRY_DROPPED[] =
  "UPDATE devices SET telemetry_dropped = telemetry_dropped + ?3"
  " WHERE tenant_id = ?1 AND id = ?2";
static const char SQL_TELEMETRY_LAST[] =
  "SELECT max(seq) FROM telemetry WHERE tenant_id = ?1 AND device_id = ?2";

static mdm_rc job_telemetry(struct sq_conn *c, struct sq_job *j)
{
  struct telemetry_args *x = j->arg;
  sqlite3_stmt *st;
  size_t i;
  json_t *ev;
  mdm_rc rc = device_is_active(c, x->tenant, x->device_id);

  if(rc)
    return rc;
  st = sq_stmt(c, SQL_TELEMETRY_INSERT);
  if(!st)
    return MDM_ERR_STORE;
  json_array_foreach(x->events, i, ev) {
    json_t *data = json_object_get(ev, "data");
    char *dtext = data ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS |
                                            JSON_ENCODE_ANY)
                       : NULL;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, x->device_id);
    sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(ev, "seq")));
    bind_text(st, 4, json_string_value(json_object_get(ev, "at")));
    bind_text(st, 5, json_string_value(json_object_get(ev, "type")));
    bind_text(st, 6, dtext);
    sqlite3_bind_int64(st, 7, x->now);
    rc = sq_step_done(c, st);
    free(dtext);
    if(!rc) {
      if(sqlite3_changes(c->db) == 1)
        x->accepted++;
      else
        x->duplicates++;
    }
    sq_done(st);
    if(rc)
      return rc;
  }
  if(x->dropped > 0) {
    st = sq_stmt(c, SQL_TELEMETRY_DROPPED);
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, x->device_id);
    sqlite3_bind_int64(st, 3, x->dropped);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      return rc;
  }
  st = sq_stmt(c, SQL_TELEMETRY_LAST);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  if(sqlite3_step(st) == SQLITE_ROW)
    x->last_seq = sqlite3_column_int64(st, 0);
  sq_done(st);
  return MDM_OK;
}

static mdm_rc sq_telemetry_put(struct mdm_store *s, const char *tenant,
                               const char *device_id, json_t *events,
                               int64_t dropped, int64_t now, json_t **result)
{
  struct telemetry_args x;
  mdm_rc rc;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.device_id = device_id;
  x.events = events;
  x.dropped = dropped;
  x.now = now;
  rc = sq_submit((struct sq_store *)s, job_telemetry, &x);
  if(rc)
    return rc;
  *result = json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)x.accepted,
                      "duplicates", (json_int_t)x.duplicates, "last_seq",
                      (json_int_t)x.last_seq);
  return *result ? MDM_OK : MDM_ERR_NOMEM;
}

/* ---- commands --------------------------------------------------------- */

/* Lifecycle (docs/api.md "Commands"): queued → sent → acknowledged →
 * completed | failed, or expired (not completed by expires_at) or canceled
 * (while queued or sent).  Every transition is written with its time and
 * its audit record in one job.  Expiry needs no timer: whatever touches a
 * device's commands (a read, the agent's fetch, a result, a cancel) first
 * turns its overdue ones into expired.  A device's retirement wipe that
 * ends (completed, failed, expired) retires the device in the same job. */

#define COMMAND_COLS                                                       \
  "id, device_id, type, params, status, detail, issued_at, expires_at,"    \
  " created_by, sent_at, acknowledged_at, completed_at, canceled_at, rowid"
#define COMMAND_OPEN "status IN ('queued', 'sent', 'acknowledged')"

static json_t *command_row(sqlite3_stmt *st)
{
  return json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:s, s:o, s:o,"
                   " s:o, s:o}",
                   "id", col_text(st, 0), "device_id", col_text(st, 1),
                   "type", col_text(st, 2), "params", json_parse_col(st, 3),
                   "status", col_text(st, 4),
                   "detail", json_text_or_null(col_text(st, 5)),
                   "issued_at", json_time_or_null(st, 6),
                   "expires_at", json_time_or_null(st, 7),
                   "created_by", col_text(st, 8),
                   "sent_at", json_time_or_null(st, 9),
                   "acknowledged_at", json_time_or_null(st, 10),
                   "completed_at", json_time_or_null(st, 11),
                   "canceled_at", json_time_or_null(st, 12));
}

/* A status's place in the forward-only order. */
static int status_rank(const char *s)
{
  if(!strcmp(s, "queued"))
    return 0;
  if(!strcmp(s, "sent"))
    return 1;
  if(!strcmp(s, "acknowledged"))
    return 2;
  return 3;  /* completed failed expired canceled: final */
}

static int status_is_open(const char *s)
{
  return status_rank(s) < 3;
}

static const char SQL_COMMAND_GET[] =
  "SELECT " COMMAND_COLS " FROM commands WHERE tenant_id = ?1 AND id = ?2";

/* The command as the API shows it, on connection c. */
static mdm_rc command_get_on(struct sq_conn *c, const char *tenant,
                             const char *id, json_t **out)
{
  return row_get_on(c, SQL_COMMAND_GET, tenant, id, command_row, out);
}

/* The strings of a json array of strings, collected before writing so no
 * statement is left half-stepped while others change the table. */
static mdm_rc collect_ids(struct sq_conn *c, sqlite3_stmt *st, json_t *ids)
{
  int r;
  while((r = sqlite3_step(st)) == SQLITE_ROW)
    if(json_array_append_new(ids, json_string(col_text(st, 0))))
      return MDM_ERR_NOMEM;
  if(r != SQLITE_DONE) {
    mdm_error("sqlite: step: %s", sqlite3_errmsg(c->db));
    return MDM_ERR_STORE;
  }
  return MDM_OK;
}

static const char SQL_COMMAND_INSERT[] =
  "INSERT INTO commands(tenant_id, id, device_id, type, params, status,"
  " issued_at, expires_at, created_by) VALUES (?1,?2,?3,?4,?5,'queued',?6,"
  " ?7,?8)";

/* Insert one queued command with its command.create record. */
static mdm_rc command_insert(struct sq_conn *c, const char *tenant,
                             const char *id, const char *device_id,
                             const struct mdm_command_new *in, int is_bulk)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_INSERT);
  struct mdm_audit_in a;
  json_t *params;
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  bind_text(st, 3, device_id);
  bind_text(st, 4, in->type);
  bind_text(st, 5, in->params_json ? in->params_json : "{}");
  sqlite3_bind_int64(st, 6, in->now);
  sqlite3_bind_int64(st, 7, in->expires_at);
  bind_text(st, 8, in->actor);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  params = json_loads(in->params_json ? in->params_json : "{}", 0, NULL);
  a.actor = in->actor;
  a.action = "command.create";
  a.target = id;
  a.detail = json_pack("{s:s, s:s, s:o, s:I}", "device_id", device_id,
                       "type", in->type, "params",
                       params ? params : json_object(), "expires_at",
                       (json_int_t)in->expires_at);
  if(!a.detail)
    return MDM_ERR_NOMEM;
  if(is_bulk)
    json_object_set_new(a.detail, "bulk", json_true());
  rc = sq_audit(c, tenant, &a);
  json_decref(a.detail);
  return rc;
}

static const char SQL_COMMAND_OPEN_IDS[] =
  "SELECT id FROM commands WHERE tenant_id = ?1 AND device_id = ?2"
  " AND " COMMAND_OPEN " ORDER BY rowid";
static const char SQL_COMMAND_CANCEL[] =
  "UPDATE commands SET status = 'canceled', canceled_at = ?3"
  " WHERE tenant_id = ?1 AND id = ?2";
static const char SQL_DEVICE_RETIRED[] =
  "UPDATE device_status SET state = ?3"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND state = 'active'";
static const char SQL_CERTS_REVOKE[] =
  "UPDATE device_certs SET revoked_at = ?3"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND revoked_at IS NULL";

/* Set command id's status to canceled with its audit record. */
static mdm_rc command_set_canceled(struct sq_conn *c, const char *tenant,
                                   const char *id, int64_t now,
                                   const char *actor, const char *reason)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_CANCEL);
  struct mdm_audit_in a;
  mdm_rc rc;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  a.actor = actor;
  a.action = "command.cancel";
  a.target = id;
  a.detail = reason ? json_pack("{s:s}", "reason", reason) : NULL;
  rc = sq_audit(c, tenant, &a);
  json_decref(a.detail);
  return rc;
}

/* The device leaves service: state becomes state (retired or wiped), its
 * other open commands are canceled (they can never be delivered now) and
 * device.retired is audited.  command_id: the wipe that ended, or NULL. */
static mdm_rc device_set_retired(struct sq_conn *c, const char *tenant,
                                 const char *device_id, const char *state,
                                 const char *command_id,
                                 const char *command_status, int64_t now,
                                 const char *actor)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_DEVICE_RETIRED);
  json_t *ids = json_array(), *v;
  struct mdm_audit_in a;
  size_t i;
  mdm_rc rc;
  if(!st || !ids) {
    json_decref(ids);
    return st ? MDM_ERR_NOMEM : MDM_ERR_STORE;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  bind_text(st, 3, state);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    goto out;
  /* Its certificates are revoked in the same transaction (the CRL). */
  st = sq_stmt(c, SQL_CERTS_REVOKE);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  sqlite3_bind_int64(st, 3, now);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    goto out;
  st = sq_stmt(c, SQL_COMMAND_OPEN_IDS);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  rc = collect_ids(c, st, ids);
  sq_done(st);
  json_array_foreach(ids, i, v) {
    if(rc)
      break;
    rc = command_set_canceled(c, tenant, json_string_value(v), now, actor,
                              "device retired");
  }
  if(rc)
    goto out;
  a.actor = actor;
  a.action = "device.retired";
  a.target = device_id;
  a.detail = json_pack("{s:s, s:o, s:o}", "state", state, "command_id",
                       json_text_or_null(command_id), "command_status",
                       json_text_or_null(command_status));
  rc = sq_audit(c, tenant, &a);
  json_decref(a.detail);
out:
  json_decref(ids);
  return rc;
}

static const char SQL_RETIRE_WAITING[] =
  "SELECT 1 FROM devices d JOIN device_status s"
  " ON s.tenant_id = d.tenant_id AND s.device_id = d.id"
  " WHERE d.tenant_id = ?1 AND d.id = ?2 AND d.retire_command_id = ?3"
  " AND s.state = 'active'";

/* Command id (of type, on device_id) just ended with status: if it is the
 * wipe the device's retirement waits for, retire the device now. */
static mdm_rc command_ended(struct sq_conn *c, const char *tenant,
                            const char *device_id, const char *id,
                            const char *type, const char *status,
                            int64_t now, const char *actor)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_RETIRE_WAITING);
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  bind_text(st, 3, id);
  r = sqlite3_step(st);
  sq_done(st);
  if(r == SQLITE_DONE)
    return MDM_OK;
  if(r != SQLITE_ROW)
    return MDM_ERR_STORE;
  return device_set_retired(c, tenant, device_id,
                            !strcmp(type, "wipe") &&
                                !strcmp(status, "completed")
                              ? "wiped"
                              : "retired",
                            id, status, now, actor);
}

static const char SQL_COMMAND_OVERDUE[] =
  "SELECT id, type FROM commands WHERE tenant_id = ?1 AND device_id = ?2"
  " AND " COMMAND_OPEN " AND expires_at <= ?3 ORDER BY rowid";
static const char SQL_COMMAND_EXPIRE[] =
  "UPDATE commands SET status = 'expired'"
  " WHERE tenant_id = ?1 AND id = ?2 AND " COMMAND_OPEN;

/* Turn device_id's overdue open commands into expired, each audited
 * command.expire by "system" (in the caller's job). */
static mdm_rc expire_due(struct sq_conn *c, const char *tenant,
                         const char *device_id, int64_t now)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_OVERDUE);
  json_t *rows = json_array(), *v;
  size_t i;
  int r;
  mdm_rc rc = MDM_OK;
  if(!st || !rows) {
    json_decref(rows);
    return st ? MDM_ERR_NOMEM : MDM_ERR_STORE;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  sqlite3_bind_int64(st, 3, now);
  while((r = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(rows, json_pack("[s, s]", col_text(st, 0),
                                          col_text(st, 1)));
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  json_array_foreach(rows, i, v) {
    const char *id = json_string_value(json_array_get(v, 0));
    const char *type = json_string_value(json_array_get(v, 1));
    struct mdm_audit_in a;
    if(rc)
      break;
    if(!id || !type) {
      rc = MDM_ERR_NOMEM;
      break;
    }
    st = sq_stmt(c, SQL_COMMAND_EXPIRE);
    if(!st) {
      rc = MDM_ERR_STORE;
      break;
    }
    bind_text(st, 1, tenant);
    bind_text(st, 2, id);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      break;
    a.actor = "system";
    a.action = "command.expire";
    a.target = id;
    a.detail = json_pack("{s:s}", "device_id", device_id);
    rc = sq_audit(c, tenant, &a);
    json_decref(a.detail);
    if(!rc)
      rc = command_ended(c, tenant, device_id, id, type, "expired", now,
                         "system");
  }
  json_decref(rows);
  return rc;
}

struct expire_args {
  const char *tenant, *device_id;
  int64_t now;
};

static mdm_rc job_expire(struct sq_conn *c, struct sq_job *j)
{
  struct expire_args *x = j->arg;
  return expire_due(c, x->tenant, x->device_id, x->now);
}

static const char SQL_DEVICE_STATE[] =
  "SELECT state FROM device_status WHERE tenant_id = ?1 AND device_id = ?2";

/* The device's state into out: MDM_ERR_NOTFOUND when it does not exist. */
static mdm_rc device_state_on(struct sq_conn *c, const char *tenant,
                              const char *device_id, char out[16])
{
  sqlite3_stmt *st = sq_stmt(c, SQL_DEVICE_STATE);
  mdm_rc rc = MDM_ERR_NOTFOUND;
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    mdm_strlcpy(out, col_text(st, 0) ? col_text(st, 0) : "", 16);
    rc = MDM_OK;
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  return rc;
}

struct command_create_args {
  const char *tenant, *device_id;
  const struct mdm_command_new *in;
  char id[MDM_UUID_LEN + 1];
  json_t *out;
};

static mdm_rc job_command_create(struct sq_conn *c, struct sq_job *j)
{
  struct command_create_args *x = j->arg;
  char state[16];
  mdm_rc rc = device_state_on(c, x->tenant, x->device_id, state);
  if(rc)
    return rc;
  if(strcmp(state, "active"))
    return MDM_ERR_CONFLICT;
  rc = command_insert(c, x->tenant, x->id, x->device_id, x->in, 0);
  if(!rc)
    rc = command_get_on(c, x->tenant, x->id, &x->out);
  return rc;
}

static mdm_rc sq_command_create(struct mdm_store *s, const char *tenant,
                                const char *device_id,
                                const struct mdm_command_new *in,
                                json_t **out)
{
  struct command_create_args x;
  mdm_rc rc;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.device_id = device_id;
  x.in = in;
  rc = mdm_uuid_v4(x.id);
  if(!rc)
    rc = sq_submit((struct sq_store *)s, job_command_create, &x);
  if(rc || !out)
    json_decref(x.out);
  else
    *out = x.out;
  return rc;
}

static const char SQL_BULK_DEVICES[] =
  "SELECT d.id, d.labels FROM devices d JOIN device_status s"
  " ON s.tenant_id = d.tenant_id AND s.device_id = d.id"
  " WHERE d.tenant_id = ?1 AND s.state = 'active'"
  " AND (?2 IS NULL OR d.platform = ?2)"
  " AND (?3 IS NULL OR s.compliance = ?3) ORDER BY d.id";

struct bulk_args {
  const char *tenant;
  const struct mdm_command_selector *sel;
  const struct mdm_command_new *in;
  json_t *ids;
};

/* Do a device's labels (JSON text) hold every label of want? */
static int labels_match(const char *text, json_t *want)
{
  json_t *have, *v;
  const char *k;
  int ok = 1;
  if(!json_object_size(want))
    return 1;
  have = json_loads(text ? text : "{}", 0, NULL);
  json_object_foreach(want, k, v) {
    const char *hv = json_string_value(json_object_get(have, k));
    if(!hv || !json_is_string(v) || strcmp(hv, json_string_value(v))) {
      ok = 0;
      break;
    }
  }
  json_decref(have);
  return ok;
}

static mdm_rc job_command_bulk(struct sq_conn *c, struct sq_job *j)
{
  struct bulk_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_BULK_DEVICES);
  json_t *devices = json_array(), *v;
  size_t i;
  int r;
  mdm_rc rc = MDM_OK;

  if(!st || !devices) {
    json_decref(devices);
    return st ? MDM_ERR_NOMEM : MDM_ERR_STORE;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->sel->platform);
  bind_text(st, 3, x->sel->compliance);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    if(!labels_match(col_text(st, 1), x->sel->labels))
      continue;
    if(json_array_size(devices) >= MDM_BULK_MAX) {
      rc = MDM_ERR_TOOBIG;
      break;
    }
    if(json_array_append_new(devices, json_string(col_text(st, 0)))) {
      rc = MDM_ERR_NOMEM;
      break;
    }
  }
  if(!rc && r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  json_array_foreach(devices, i, v) {
    char id[MDM_UUID_LEN + 1];
    if(rc)
      break;
    rc = mdm_uuid_v4(id);
    if(!rc)
      rc = command_insert(c, x->tenant, id, json_string_value(v), x->in, 1);
    if(!rc && json_array_append_new(x->ids, json_string(id)))
      rc = MDM_ERR_NOMEM;
  }
  json_decref(devices);
  return rc;
}

static mdm_rc sq_command_create_bulk(struct mdm_store *s, const char *tenant,
                                     const struct mdm_command_selector *sel,
                                     const struct mdm_command_new *in,
                                     json_t **ids)
{
  struct bulk_args x = {tenant, sel, in, json_array()};
  mdm_rc rc;
  if(!x.ids)
    return MDM_ERR_NOMEM;
  rc = sq_submit((struct sq_store *)s, job_command_bulk, &x);
  if(rc) {
    json_decref(x.ids);
    return rc;
  }
  *ids = x.ids;
  return MDM_OK;
}

static const char SQL_COMMAND_IS_OVERDUE[] =
  "SELECT 1 FROM commands WHERE tenant_id = ?1 AND device_id = ?2"
  " AND " COMMAND_OPEN " AND expires_at <= ?3 LIMIT 1";
static const char SQL_COMMAND_DEVICE[] =
  "SELECT device_id FROM commands WHERE tenant_id = ?1 AND id = ?2";

/* Reads touch expiry: if device_id has overdue open commands (a cheap
 * index probe on a reader), expire them through the writer first. */
static mdm_rc expire_if_due(struct sq_store *q, const char *tenant,
                            const char *device_id, int64_t now)
{
  struct expire_args x = {tenant, device_id, now};
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_IS_OVERDUE);
  if(!st) {
    sq_reader_put(q, slot);
    return MDM_ERR_STORE;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  sqlite3_bind_int64(st, 3, now);
  r = sqlite3_step(st);
  sq_done(st);
  sq_reader_put(q, slot);
  if(r == SQLITE_DONE)
    return MDM_OK;
  if(r != SQLITE_ROW)
    return MDM_ERR_STORE;
  return sq_submit(q, job_expire, &x);
}

static mdm_rc sq_command_get(struct mdm_store *s, const char *tenant,
                             const char *id, int64_t now, json_t **out)
{
  struct sq_store *q = (struct sq_store *)s;
  char device_id[MDM_UUID_LEN + 1] = "";
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_DEVICE);
  mdm_rc rc = MDM_ERR_STORE;
  if(st) {
    bind_text(st, 1, tenant);
    bind_text(st, 2, id);
    r = sqlite3_step(st);
    if(r == SQLITE_ROW) {
      mdm_strlcpy(device_id, col_text(st, 0) ? col_text(st, 0) : "",
                  sizeof(device_id));
      rc = MDM_OK;
    }
    else if(r == SQLITE_DONE)
      rc = MDM_ERR_NOTFOUND;
  }
  sq_done(st);
  sq_reader_put(q, slot);
  if(!rc)
    rc = expire_if_due(q, tenant, device_id, now);
  if(rc)
    return rc;
  c = sq_reader_get(q, &slot);
  rc = command_get_on(c, tenant, id, out);
  sq_reader_put(q, slot);
  return rc;
}

static const char SQL_COMMAND_LIST[] =
  "SELECT " COMMAND_COLS " FROM commands WHERE tenant_id = ?1"
  " AND device_id = ?2 AND (?3 IS NULL OR status = ?3)"
  " AND (?4 = 0 OR rowid < ?4) ORDER BY rowid DESC LIMIT ?5";

static mdm_rc sq_command_list(struct mdm_store *s, const char *tenant,
                              const char *device_id, const char *status,
                              int64_t after, int limit, int64_t now,
                              json_t **items, int64_t *next)
{
  struct sq_store *q = (struct sq_store *)s;
  struct sq_conn *c;
  sqlite3_stmt *st;
  json_t *arr = NULL;
  char state[16];
  int slot, n = 0, r;
  mdm_rc rc;

  *next = 0;
  c = sq_reader_get(q, &slot);
  rc = device_state_on(c, tenant, device_id, state);
  sq_reader_put(q, slot);
  if(!rc)
    rc = expire_if_due(q, tenant, device_id, now);
  if(rc)
    return rc;
  arr = json_array();
  if(!arr)
    return MDM_ERR_NOMEM;
  c = sq_reader_get(q, &slot);
  st = sq_stmt(c, SQL_COMMAND_LIST);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  bind_text(st, 2, device_id);
  bind_text(st, 3, status);
  sqlite3_bind_int64(st, 4, after);
  sqlite3_bind_int(st, 5, limit + 1);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    if(n == limit) {
      /* One more row exists: continue below the last one returned. */
      break;
    }
    *next = sqlite3_column_int64(st, 13);
    json_array_append_new(arr, command_row(st));
    n++;
  }
  if(r != SQLITE_ROW) {
    *next = 0;
    if(r != SQLITE_DONE)
      rc = MDM_ERR_STORE;
  }
out:
  sq_done(st);
  sq_reader_put(q, slot);
  if(rc) {
    json_decref(arr);
    return rc;
  }
  *items = arr;
  return MDM_OK;
}

static const char SQL_COMMAND_STATE[] =
  "SELECT device_id, type, status, expires_at FROM commands"
  " WHERE tenant_id = ?1 AND id = ?2";

/* A command's device, type and status (on c). */
static mdm_rc command_state_at(struct sq_conn *c, const char *tenant,
                               const char *id, char device_id[40],
                               char type[32], char status[16],
                               int64_t *expires_at)
{
  sqlite3_stmt *st = sq_stmt(c, SQL_COMMAND_STATE);
  mdm_rc rc = MDM_ERR_NOTFOUND;
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW) {
    mdm_strlcpy(device_id, col_text(st, 0) ? col_text(st, 0) : "", 40);
    mdm_strlcpy(type, col_text(st, 1) ? col_text(st, 1) : "", 32);
    mdm_strlcpy(status, col_text(st, 2) ? col_text(st, 2) : "", 16);
    if(expires_at)
      *expires_at = sqlite3_column_int64(st, 3);
    rc = MDM_OK;
  }
  else if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
  return rc;
}

static mdm_rc command_state_on(struct sq_conn *c, const char *tenant,
                               const char *id, char device_id[40],
                               char type[32], char status[16])
{
  return command_state_at(c, tenant, id, device_id, type, status, NULL);
}

struct command_op_args {
  const char *tenant, *device_id, *id, *status, *detail, *actor;
  int64_t now;
  mdm_rc answer;  /* what to tell the caller once the job's writes (an
                   * expiry) are kept */
  json_t *out;
};

static const char SQL_RETIRE_ABANDON[] =
  "UPDATE devices SET retire_command_id = NULL"
  " WHERE tenant_id = ?1 AND id = ?2 AND retire_command_id = ?3";

static mdm_rc job_command_cancel(struct sq_conn *c, struct sq_job *j)
{
  struct command_op_args *x = j->arg;
  char device_id[40], type[32], status[16], state[16];
  sqlite3_stmt *st;
  mdm_rc rc = command_state_on(c, x->tenant, x->id, device_id, type, status);
  if(!rc)
    rc = expire_due(c, x->tenant, device_id, x->now);
  if(!rc)
    rc = command_state_on(c, x->tenant, x->id, device_id, type, status);
  if(rc)
    return rc;
  if(!strcmp(status, "queued") || !strcmp(status, "sent")) {
    rc = command_set_canceled(c, x->tenant, x->id, x->now, x->actor, NULL);
    if(rc)
      return rc;
    /* A canceled retirement wipe: the retirement is abandoned and the
     * device stays in service. */
    st = sq_stmt(c, SQL_RETIRE_ABANDON);
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, device_id);
    bind_text(st, 3, x->id);
    rc = sq_step_done(c, st);
    sq_done(st);
    if(rc)
      return rc;
    if(sqlite3_changes(c->db) == 1 &&
       !device_state_on(c, x->tenant, device_id, state) &&
       !strcmp(state, "active")) {
      struct mdm_audit_in a = {x->actor, "device.retire_abandoned", device_id,
                               NULL};
      a.detail = json_pack("{s:s}", "command_id", x->id);
      rc = sq_audit(c, x->tenant, &a);
      json_decref(a.detail);
      if(rc)
        return rc;
    }
  }
  else if(strcmp(status, "canceled"))
    x->answer = MDM_ERR_CONFLICT;
  return command_get_on(c, x->tenant, x->id, &x->out);
}

static mdm_rc command_op(struct mdm_store *s, sq_job_fn fn,
                         struct command_op_args *x, json_t **out)
{
  mdm_rc rc = sq_submit((struct sq_store *)s, fn, x);
  if(!rc)
    rc = x->answer;
  if(rc || !out)
    json_decref(x->out);
  else
    *out = x->out;
  return rc;
}

static mdm_rc sq_command_cancel(struct mdm_store *s, const char *tenant,
                                const char *id, int64_t now,
                                const char *actor, json_t **out)
{
  struct command_op_args x;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.id = id;
  x.now = now;
  x.actor = actor;
  return command_op(s, job_command_cancel, &x, out);
}

static const char SQL_COMMAND_SEND[] =
  "UPDATE commands SET status = 'sent', sent_at = ?3"
  " WHERE tenant_id = ?1 AND device_id = ?2 AND status = 'queued'"
  " AND expires_at > ?3 RETURNING id";
static const char SQL_COMMAND_FETCH[] =
  "SELECT " COMMAND_COLS " FROM commands WHERE tenant_id = ?1"
  " AND device_id = ?2 AND status = 'sent' AND expires_at > ?3"
  " ORDER BY rowid";

struct fetch_args {
  const char *tenant, *device_id;
  int64_t now;
  json_t *items;
};

static mdm_rc job_agent_fetch(struct sq_conn *c, struct sq_job *j)
{
  struct fetch_args *x = j->arg;
  char state[16], actor[48];
  json_t *sent = json_array(), *v;
  sqlite3_stmt *st;
  size_t i;
  int r;
  mdm_rc rc = device_state_on(c, x->tenant, x->device_id, state);

  if(rc == MDM_ERR_NOTFOUND || (!rc && strcmp(state, "active")))
    rc = MDM_ERR_AUTH;
  if(!rc && !sent)
    rc = MDM_ERR_NOMEM;
  if(!rc)
    rc = expire_due(c, x->tenant, x->device_id, x->now);
  if(rc)
    goto out;
  st = sq_stmt(c, SQL_COMMAND_SEND);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  sqlite3_bind_int64(st, 3, x->now);
  rc = collect_ids(c, st, sent);
  sq_done(st);
  snprintf(actor, sizeof(actor), "device:%s", x->device_id);
  json_array_foreach(sent, i, v) {
    struct mdm_audit_in a = {actor, "command.send", json_string_value(v),
                             NULL};
    if(rc)
      break;
    rc = sq_audit(c, x->tenant, &a);
  }
  if(rc)
    goto out;
  st = sq_stmt(c, SQL_COMMAND_FETCH);
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  sqlite3_bind_int64(st, 3, x->now);
  while((r = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(x->items, command_row(st));
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  sq_done(st);
out:
  json_decref(sent);
  return rc;
}

static mdm_rc sq_agent_commands_fetch(struct mdm_store *s,
                                      const char *tenant,
                                      const char *device_id, int64_t now,
                                      json_t **items)
{
  struct fetch_args x = {tenant, device_id, now, json_array()};
  mdm_rc rc;
  if(!x.items)
    return MDM_ERR_NOMEM;
  rc = sq_submit((struct sq_store *)s, job_agent_fetch, &x);
  if(rc) {
    json_decref(x.items);
    return rc;
  }
  *items = x.items;
  return MDM_OK;
}

static const char SQL_COMMAND_ACK[] =
  "UPDATE commands SET status = 'acknowledged', acknowledged_at = ?3,"
  " detail = ?4, sent_at = coalesce(sent_at, ?3)"
  " WHERE tenant_id = ?1 AND id = ?2";
static const char SQL_COMMAND_DONE[] =
  "UPDATE commands SET status = ?5, completed_at = ?3, detail = ?4,"
  " sent_at = coalesce(sent_at, ?3)"
  " WHERE tenant_id = ?1 AND id = ?2";

static mdm_rc job_command_result(struct sq_conn *c, struct sq_job *j)
{
  struct command_op_args *x = j->arg;
  char device_id[40], type[32], status[16], state[16], actor[48];
  int64_t expires_at = 0;
  int is_final = strcmp(x->status, "acknowledged") != 0;
  struct mdm_audit_in a;
  sqlite3_stmt *st;
  mdm_rc rc = device_state_on(c, x->tenant, x->device_id, state);

  if(rc == MDM_ERR_NOTFOUND || (!rc && strcmp(state, "active")))
    return MDM_ERR_AUTH;
  if(!rc)
    rc = command_state_at(c, x->tenant, x->id, device_id, type, status,
                          &expires_at);
  if(!rc && strcmp(device_id, x->device_id))
    rc = MDM_ERR_NOTFOUND;  /* another device's: it does not exist here */
  /* Expiry is applied by whatever touches the device's commands; a result
   * only needs it when this command is overdue (then the whole device's
   * overdue commands expire, as a fetch would do). */
  if(!rc && expires_at <= x->now &&
     (!strcmp(status, "queued") || !strcmp(status, "sent") ||
      !strcmp(status, "acknowledged"))) {
    rc = expire_due(c, x->tenant, x->device_id, x->now);
    if(!rc)
      rc = command_state_on(c, x->tenant, x->id, device_id, type, status);
  }
  if(rc)
    return rc;
  if(!strcmp(status, "expired") || !strcmp(status, "canceled")) {
    x->answer = MDM_ERR_CONFLICT;
    return MDM_OK;  /* keep the expiry just written */
  }
  if(status_rank(x->status) <= status_rank(status))
    return command_get_on(c, x->tenant, x->id, &x->out);  /* a repeat */
  st = sq_stmt(c, is_final ? SQL_COMMAND_DONE : SQL_COMMAND_ACK);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->id);
  sqlite3_bind_int64(st, 3, x->now);
  bind_text(st, 4, x->detail);
  if(is_final)
    bind_text(st, 5, x->status);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  snprintf(actor, sizeof(actor), "device:%s", x->device_id);
  a.actor = actor;
  a.action = "command.result";
  a.target = x->id;
  a.detail = json_pack("{s:s, s:s, s:o}", "device_id", x->device_id,
                       "status", x->status, "detail",
                       json_text_or_null(x->detail));
  rc = sq_audit(c, x->tenant, &a);
  json_decref(a.detail);
  if(!rc && is_final)
    rc = command_ended(c, x->tenant, x->device_id, x->id, type, x->status,
                       x->now, actor);
  if(!rc)
    rc = command_get_on(c, x->tenant, x->id, &x->out);
  return rc;
}

static mdm_rc sq_command_result(struct mdm_store *s, const char *tenant,
                                const char *device_id, const char *id,
                                const char *status, const char *detail,
                                int64_t now, json_t **out)
{
  struct command_op_args x;
  memset(&x, 0, sizeof(x));
  x.tenant = tenant;
  x.device_id = device_id;
  x.id = id;
  x.status = status;
  x.detail = detail;
  x.now = now;
  return command_op(s, job_command_result, &x, out);
}

static const char SQL_RETIRE_CURRENT[] =
  "SELECT d.retire_command_id, c.status FROM devices d LEFT JOIN commands c"
  " ON c.tenant_id = d.tenant_id AND c.id = d.retire_command_id"
  " WHERE d.tenant_id = ?1 AND d.id = ?2";
static const char SQL_RETIRE_SET[] =
  "UPDATE devices SET retire_command_id = ?3 WHERE tenant_id = ?1 AND id = ?2";

struct retire_args {
  const char *tenant, *device_id, *wipe, *actor;
  int64_t now, expires_at;
  json_t *out;
};

static mdm_rc job_device_retire(struct sq_conn *c, struct sq_job *j)
{
  struct retire_args *x = j->arg;
  char state[16], id[MDM_UUID_LEN + 1];
  struct mdm_audit_in a;
  struct mdm_command_new in;
  sqlite3_stmt *st;
  int r, is_pending = 0;
  mdm_rc rc = device_state_on(c, x->tenant, x->device_id, state);

  if(!rc && strcmp(state, "active"))
    rc = MDM_ERR_CONFLICT;
  if(rc)
    return rc;
  /* A retirement already waiting for its wipe: one is enough. */
  st = sq_stmt(c, SQL_RETIRE_CURRENT);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  r = sqlite3_step(st);
  if(r == SQLITE_ROW && col_text(st, 0) && col_text(st, 1) &&
     status_is_open(col_text(st, 1)))
    is_pending = 1;
  sq_done(st);
  if(r != SQLITE_ROW && r != SQLITE_DONE)
    return MDM_ERR_STORE;
  if(is_pending)
    return MDM_ERR_CONFLICT;

  a.actor = x->actor;
  a.action = "device.retire";
  a.target = x->device_id;
  a.detail = json_pack("{s:s}", "wipe", x->wipe);
  rc = sq_audit(c, x->tenant, &a);
  json_decref(a.detail);
  if(rc)
    return rc;
  if(!strcmp(x->wipe, "none"))
    rc = device_set_retired(c, x->tenant, x->device_id, "retired", NULL,
                            NULL, x->now, x->actor);
  else {
    memset(&in, 0, sizeof(in));
    in.type = strcmp(x->wipe, "full") ? "selective_wipe" : "wipe";
    in.params_json = "{}";
    in.now = x->now;
    in.expires_at = x->expires_at;
    in.actor = x->actor;
    rc = mdm_uuid_v4(id);
    if(!rc)
      rc = command_insert(c, x->tenant, id, x->device_id, &in, 0);
    if(rc)
      return rc;
    st = sq_stmt(c, SQL_RETIRE_SET);
    if(!st)
      return MDM_ERR_STORE;
    bind_text(st, 1, x->tenant);
    bind_text(st, 2, x->device_id);
    bind_text(st, 3, id);
    rc = sq_step_done(c, st);
    sq_done(st);
  }
  if(!rc)
    rc = device_get_on(c, x->tenant, x->device_id, &x->out);
  return rc;
}

static mdm_rc sq_device_retire(struct mdm_store *s, const char *tenant,
                               const char *device_id, const char *wipe,
                               int64_t now, int64_t expires_at,
                               const char *actor, json_t **out)
{
  struct retire_args x = {tenant, device_id, wipe, actor, now, expires_at,
                          NULL};
  mdm_rc rc = sq_submit((struct sq_store *)s, job_device_retire, &x);
  if(rc || !out)
    json_decref(x.out);
  else
    *out = x.out;
  return rc;
}

/* ---- audit reads ------------------------------------------------------ */

static const char SQL_AUDIT_LIST[] =
  "SELECT seq, at, actor, action, target, detail, prev_hash, hash FROM audit"
  " WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";

static mdm_rc sq_audit_list(struct mdm_store *s, const char *tenant,
                            int64_t after_seq, int limit, json_t **items,
                            int64_t *next)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, n = 0, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_AUDIT_LIST);
  json_t *arr = json_array();
  mdm_rc rc = MDM_OK;

  *next = 0;
  if(!st || !arr) {
    rc = st ? MDM_ERR_NOMEM : MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  sqlite3_bind_int64(st, 2, after_seq);
  sqlite3_bind_int(st, 3, limit + 1);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    if(n == limit) {
      *next = sqlite3_column_int64(st, 0) - 1;
      break;
    }
    json_array_append_new(
      arr, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:s, s:s}", "seq",
                     (json_int_t)sqlite3_column_int64(st, 0), "at",
                     col_text(st, 1), "actor", col_text(st, 2), "action",
                     col_text(st, 3), "target",
                     json_text_or_null(col_text(st, 4)), "detail",
                     json_parse_col(st, 5), "prev_hash", col_text(st, 6),
                     "hash", col_text(st, 7)));
    n++;
  }
  if(r != SQLITE_ROW && r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  if(rc) {
    json_decref(arr);
    return rc;
  }
  *items = arr;
  return MDM_OK;
}

static const char SQL_AUDIT_ALL[] =
  "SELECT seq, at, actor, action, target, detail, prev_hash, hash FROM audit"
  " WHERE tenant_id = ?1 ORDER BY seq";

static mdm_rc sq_audit_verify(struct mdm_store *s, const char *tenant,
                              struct mdm_audit_verify *out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_AUDIT_ALL);
  char prev[65] = "", hash[65];
  int64_t expect = 1;
  mdm_rc rc = MDM_OK;

  out->ok = 1;
  out->records = 0;
  out->first_bad = 0;
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *ph = col_text(st, 6), *h = col_text(st, 7);
    out->records++;
    if(out->ok) {
      rc = mdm_audit_hash(prev, seq, col_text(st, 1), col_text(st, 2),
                          col_text(st, 3), col_text(st, 4), col_text(st, 5),
                          hash);
      if(rc)
        goto out;
      if(seq != expect || !ph || strcmp(ph, prev) || !h || strcmp(h, hash)) {
        out->ok = 0;
        out->first_bad = seq;
      }
      mdm_strlcpy(prev, h ? h : "", sizeof(prev));
      expect = seq + 1;
    }
  }
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

/* ---- reports and audit checkpoints ------------------------------------ */

static const char SQL_REPORT_DEVICES[] =
  "SELECT d.id, d.serial, d.hostname, d.upn, d.platform, d.os_name,"
  " d.os_version, s.compliance, c.reasons, s.last_seen, d.enrolled_at,"
  " d.facts_updated_at, c.changed_at"
  " FROM devices d JOIN device_status s"
  " ON s.tenant_id = d.tenant_id AND s.device_id = d.id"
  " LEFT JOIN device_compliance c"
  " ON c.tenant_id = d.tenant_id AND c.device_id = d.id"
  " WHERE d.tenant_id = ?1 AND s.state = 'active' ORDER BY d.id";

static int64_t col_time(sqlite3_stmt *st, int i)
{
  return sqlite3_column_type(st, i) == SQLITE_NULL
           ? -1 : sqlite3_column_int64(st, i);
}

/* One statement, so one read transaction: the report is a snapshot. */
static mdm_rc sq_device_report_scan(struct mdm_store *s, const char *tenant,
                                    mdm_report_scan_fn fn, void *ctx)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_REPORT_DEVICES);
  mdm_rc rc = MDM_OK;

  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    struct mdm_report_device d;
    d.id = col_text(st, 0);
    d.serial = col_text(st, 1);
    d.hostname = col_text(st, 2);
    d.upn = col_text(st, 3);
    d.platform = col_text(st, 4);
    d.os_name = col_text(st, 5);
    d.os_version = col_text(st, 6);
    d.compliance = col_text(st, 7) ? col_text(st, 7) : "unknown";
    d.reasons_json = col_text(st, 8) ? col_text(st, 8) : "[]";
    d.last_seen = col_time(st, 9);
    d.enrolled_at = col_time(st, 10);
    d.facts_updated_at = col_time(st, 11);
    d.compliance_changed_at = col_time(st, 12);
    if(!d.id)
      continue;
    rc = fn(ctx, &d);
    if(rc)
      goto out;
  }
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
out:
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

static mdm_rc sq_audit_head(struct mdm_store *s, const char *tenant,
                            int64_t at_seq, struct mdm_audit_head *out)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot, r;
  struct sq_conn *c = sq_reader_get(q, &slot);
  sqlite3_stmt *st = sq_stmt(c, SQL_AUDIT_ALL);
  char calc[65] = "";
  int64_t expect = 1;
  mdm_rc rc = MDM_OK;

  memset(out, 0, sizeof(*out));
  out->ok = 1;
  if(!st) {
    rc = MDM_ERR_STORE;
    goto out;
  }
  bind_text(st, 1, tenant);
  while((r = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *ph = col_text(st, 6), *h = col_text(st, 7);
    char prev[65];

    memcpy(prev, calc, sizeof(prev));
    rc = mdm_audit_hash(prev, seq, col_text(st, 1), col_text(st, 2),
                        col_text(st, 3), col_text(st, 4), col_text(st, 5),
                        calc);
    if(rc)
      goto out;
    out->records++;
    /* Until the first bad record the stored hashes are the recomputed
     * ones, so this is audit_verify's test. */
    if(out->ok && (seq != expect || !ph || strcmp(ph, prev) || !h ||
                   strcmp(h, calc))) {
      out->ok = 0;
      out->first_bad = seq;
    }
    expect = seq + 1;
    out->head_seq = seq;
    if(at_seq > 0 && seq == at_seq) {
      out->has_at = 1;
      memcpy(out->at_hash, calc, sizeof(out->at_hash));
    }
  }
  if(r != SQLITE_DONE)
    rc = MDM_ERR_STORE;
  memcpy(out->head_hash, calc, sizeof(out->head_hash));
out:
  sq_done(st);
  sq_reader_put(q, slot);
  return rc;
}

/* ---- open, migrate, close --------------------------------------------- */

static mdm_rc sq_ping(struct mdm_store *s)
{
  struct sq_store *q = (struct sq_store *)s;
  int slot;
  struct sq_conn *c = sq_reader_get(q, &slot);
  mdm_rc rc = sq_exec(c->db, "SELECT count(*) FROM tenants");
  sq_reader_put(q, slot);
  return rc;
}

static mdm_rc sq_migrate(sqlite3 *db)
{
  sqlite3_stmt *st = NULL;
  int version = 0, i;
  mdm_rc rc;

  rc = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
                   " version INTEGER NOT NULL, name TEXT NOT NULL,"
                   " applied_at INTEGER NOT NULL)");
  if(rc)
    return rc;
  if(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1,
                        &st, NULL) != SQLITE_OK)
    return MDM_ERR_STORE;
  if(sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if(version > mdm_sqlite_migrations[mdm_sqlite_n_migrations - 1].version) {
    mdm_error("store: database schema version %d is newer than this mdmd "
              "knows (%d)", version,
              mdm_sqlite_migrations[mdm_sqlite_n_migrations - 1].version);
    return MDM_ERR_STORE;
  }
  for(i = 0; i < mdm_sqlite_n_migrations; i++) {
    const struct mdm_migration *m = &mdm_sqlite_migrations[i];
    if(m->version <= version)
      continue;
    rc = sq_exec(db, "BEGIN IMMEDIATE");
    if(!rc)
      rc = sq_exec(db, m->sql);
    if(!rc) {
      if(sqlite3_prepare_v2(db, "INSERT INTO schema_version VALUES (?1,?2,?3)",
                            -1, &st, NULL) != SQLITE_OK)
        rc = MDM_ERR_STORE;
      else {
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, mdm_now_ms() / 1000);
        if(sqlite3_step(st) != SQLITE_DONE)
          rc = MDM_ERR_STORE;
        sqlite3_finalize(st);
      }
    }
    if(!rc)
      rc = sq_exec(db, "COMMIT");
    if(rc) {
      sq_exec(db, "ROLLBACK");
      mdm_error("store: migration %d (%s) failed", m->version, m->name);
      return rc;
    }
    mdm_info("store: applied migration %d (%s)", m->version, m->name);
  }
  return MDM_OK;
}

static void sq_close(struct mdm_store *s)
{
  struct sq_store *q = (struct sq_store *)s;
  int i;
  if(q->has_thread || q->has_ckpt_thread) {
    pthread_mutex_lock(&q->qlock);
    q->is_stopping = 1;
    pthread_cond_signal(&q->qcond);
    pthread_cond_signal(&q->ckpt_cond);
    pthread_mutex_unlock(&q->qlock);
    if(q->has_thread)
      pthread_join(q->thread, NULL);
    if(q->has_ckpt_thread)
      pthread_join(q->ckpt_thread, NULL);
  }
  for(i = 0; i < SQ_READERS; i++)
    if(q->readers[i].db)
      sq_conn_close(&q->readers[i]);
  if(q->writer.db)
    sq_conn_close(&q->writer);
  mdm_change_set_free(q->capture.set);
  mdm_change_home_free(q->capture.home);
  if(q->upn_reader.db)
    sq_conn_close(&q->upn_reader);
  pthread_mutex_destroy(&q->upn_lock);
  pthread_mutex_destroy(&q->qlock);
  pthread_cond_destroy(&q->qcond);
  pthread_cond_destroy(&q->ckpt_cond);
  pthread_mutex_destroy(&q->rlock);
  pthread_cond_destroy(&q->rcond);
  free(q->path);
  free(q);
}

/* ---- metrics ------------------------------------------------------------ */

static const char SQL_METRICS_DEVICES[] =
  "SELECT t.name, t.region, coalesce(d.platform, 'unknown'), s.compliance,"
  " count(*) FROM device_status s"
  " JOIN devices d ON d.tenant_id = s.tenant_id AND d.id = s.device_id"
  " JOIN tenants t ON t.id = s.tenant_id"
  " WHERE s.state = 'active'"
  " GROUP BY s.tenant_id, d.platform, s.compliance ORDER BY 1, 3, 4";
static const char SQL_METRICS_COMMANDS[] =
  "SELECT t.name, c.type, c.status, count(*) FROM commands c"
  " JOIN tenants t ON t.id = c.tenant_id"
  " GROUP BY c.tenant_id, c.type, c.status ORDER BY 1, 2, 3";
static const char SQL_METRICS_LABEL[] =
  "SELECT t.name, coalesce(CAST(json_extract(d.labels, ?1) AS TEXT), ''),"
  " s.compliance, count(*) FROM device_status s"
  " JOIN devices d ON d.tenant_id = s.tenant_id AND d.id = s.device_id"
  " JOIN tenants t ON t.id = s.tenant_id"
  " WHERE s.state = 'active'"
  " GROUP BY s.tenant_id, 2, s.compliance ORDER BY 1, 4 DESC, 2, 3";

static json_t *metrics_row5(sqlite3_stmt *st)
{
  return json_pack("[s, s, s, s, I]", col_text(st, 0) ? col_text(st, 0) : "",
                   col_text(st, 1) ? col_text(st, 1) : "",
                   col_text(st, 2) ? col_text(st, 2) : "",
                   col_text(st, 3) ? col_text(st, 3) : "",
                   (json_int_t)sqlite3_column_int64(st, 4));
}

static json_t *metrics_row4(sqlite3_stmt *st)
{
  return json_pack("[s, s, s, I]", col_text(st, 0) ? col_text(st, 0) : "",
                   col_text(st, 1) ? col_text(st, 1) : "",
                   col_text(st, 2) ? col_text(st, 2) : "",
                   (json_int_t)sqlite3_column_int64(st, 3));
}

static mdm_rc sq_metrics_scan(struct mdm_store *s, json_t **devices,
                              json_t **commands)
{
  struct sq_store *q = (struct sq_store *)s;
  mdm_rc rc = sq_read_rows(q, SQL_METRICS_DEVICES, NULL, NULL, metrics_row5,
                           devices);
  if(rc)
    return rc;
  rc = sq_read_rows(q, SQL_METRICS_COMMANDS, NULL, NULL, metrics_row4,
                    commands);
  if(rc) {
    json_decref(*devices);
    *devices = NULL;
  }
  return rc;
}

static mdm_rc sq_metrics_label_scan(struct mdm_store *s, const char *key,
                                    json_t **out)
{
  char path[300];
  size_t i;
  /* A JSON path member, quoted; keys with '"' or '\\' are not asked. */
  if(!key || !*key || strlen(key) > 250 || strpbrk(key, "\"\\"))
    return MDM_ERR_INVAL;
  i = (size_t)snprintf(path, sizeof(path), "$.\"%s\"", key);
  (void)i;
  return sq_read_rows((struct sq_store *)s, SQL_METRICS_LABEL, path, NULL,
                      metrics_row4, out);
}

/* ---- the tenant CA and device certificates ------------------------------ */

static const char SQL_CA_GET[] =
  "SELECT key_pem, cert_pem FROM tenant_ca WHERE tenant_id = ?1";
static const char SQL_CA_PUT[] =
  "INSERT INTO tenant_ca(tenant_id, key_pem, cert_pem, created_at)"
  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(tenant_id) DO NOTHING";
static const char SQL_CERTS_REVOKED[] =
  "SELECT serial, revoked_at FROM device_certs"
  " WHERE tenant_id = ?1 AND revoked_at IS NOT NULL ORDER BY serial";

struct ca_pems {
  char *key, *cert;
};

static mdm_rc ca_row(sqlite3_stmt *st, void *out)
{
  struct ca_pems *p = out;
  p->key = strdup(col_text(st, 0) ? col_text(st, 0) : "");
  p->cert = strdup(col_text(st, 1) ? col_text(st, 1) : "");
  if(!p->key || !p->cert) {
    free(p->key);
    free(p->cert);
    p->key = p->cert = NULL;
    return MDM_ERR_NOMEM;
  }
  return MDM_OK;
}

static mdm_rc sq_ca_get(struct mdm_store *s, const char *tenant,
                        char **key_pem, char **cert_pem)
{
  struct ca_pems p = {NULL, NULL};
  mdm_rc rc = sq_read_one((struct sq_store *)s, SQL_CA_GET, tenant, NULL,
                          ca_row, &p);
  *key_pem = p.key;
  *cert_pem = p.cert;
  return rc;
}

struct ca_put_args {
  const char *tenant, *key, *cert;
  int64_t now;
  struct ca_pems out;
};

static mdm_rc job_ca_put(struct sq_conn *c, struct sq_job *j)
{
  struct ca_put_args *x = j->arg;
  sqlite3_stmt *st = sq_stmt(c, SQL_CA_PUT);
  mdm_rc rc;
  int r;
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->key);
  bind_text(st, 3, x->cert);
  sqlite3_bind_int64(st, 4, x->now);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(rc)
    return rc;
  st = sq_stmt(c, SQL_CA_GET);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  r = sqlite3_step(st);
  rc = r == SQLITE_ROW ? ca_row(st, &x->out) : MDM_ERR_STORE;
  sq_done(st);
  return rc;
}

static mdm_rc sq_ca_put(struct mdm_store *s, const char *tenant,
                        const char *key_pem, const char *cert_pem,
                        int64_t now, char **key_pem_out, char **cert_pem_out)
{
  struct ca_put_args x = {tenant, key_pem, cert_pem, now, {NULL, NULL}};
  mdm_rc rc = sq_submit((struct sq_store *)s, job_ca_put, &x);
  if(rc) {
    free(x.out.key);
    free(x.out.cert);
    x.out.key = x.out.cert = NULL;
  }
  *key_pem_out = x.out.key;
  *cert_pem_out = x.out.cert;
  return rc;
}

static json_t *revoked_row(sqlite3_stmt *st)
{
  return json_pack("[s, I]", col_text(st, 0) ? col_text(st, 0) : "",
                   (json_int_t)sqlite3_column_int64(st, 1));
}

static mdm_rc sq_cert_revoked_list(struct mdm_store *s, const char *tenant,
                                   json_t **out)
{
  return sq_read_rows((struct sq_store *)s, SQL_CERTS_REVOKED, tenant, NULL,
                      revoked_row, out);
}

static const char SQL_DEVICE_ACCESS[] =
  "SELECT s.state, s.compliance, d.platform, coalesce(s.last_seen, 0),"
  " d.labels FROM devices d JOIN device_status s"
  " ON s.tenant_id = d.tenant_id AND s.device_id = d.id"
  " WHERE d.tenant_id = ?1 AND d.id = ?2";

struct device_access_out {
  struct mdm_device_access *dev;
  json_t **labels;
};

static mdm_rc device_access_row(sqlite3_stmt *st, void *out)
{
  struct device_access_out *o = out;
  const char *labels = col_text(st, 4);
  mdm_strlcpy(o->dev->state, col_text(st, 0) ? col_text(st, 0) : "",
              sizeof(o->dev->state));
  mdm_strlcpy(o->dev->compliance, col_text(st, 1) ? col_text(st, 1) : "",
              sizeof(o->dev->compliance));
  mdm_strlcpy(o->dev->platform, col_text(st, 2) ? col_text(st, 2) : "",
              sizeof(o->dev->platform));
  o->dev->last_seen = sqlite3_column_int64(st, 3);
  *o->labels = labels ? json_loads(labels, 0, NULL) : json_object();
  return *o->labels ? MDM_OK : MDM_ERR_STORE;
}

static mdm_rc sq_device_access(struct mdm_store *s, const char *tenant,
                               const char *device_id,
                               struct mdm_device_access *out,
                               json_t **labels)
{
  struct device_access_out o = {out, labels};
  memset(out, 0, sizeof(*out));
  *labels = NULL;
  return sq_read_one((struct sq_store *)s, SQL_DEVICE_ACCESS, tenant,
                     device_id, device_access_row, &o);
}

static const char SQL_CERT_LOOKUP[] =
  "SELECT tenant_id, device_id, not_after, coalesce(revoked_at, 0)"
  " FROM device_certs WHERE fingerprint = ?1";

static mdm_rc cert_lookup_row(sqlite3_stmt *st, void *out)
{
  struct mdm_cert_row *c = out;
  mdm_strlcpy(c->tenant_id, col_text(st, 0) ? col_text(st, 0) : "",
              sizeof(c->tenant_id));
  mdm_strlcpy(c->device_id, col_text(st, 1) ? col_text(st, 1) : "",
              sizeof(c->device_id));
  c->not_after = sqlite3_column_int64(st, 2);
  c->revoked_at = sqlite3_column_int64(st, 3);
  return MDM_OK;
}

static mdm_rc sq_cert_lookup(struct mdm_store *s, const char *fingerprint,
                             struct mdm_cert_row *out)
{
  memset(out, 0, sizeof(*out));
  return sq_read_one((struct sq_store *)s, SQL_CERT_LOOKUP, fingerprint,
                     NULL, cert_lookup_row, out);
}

struct cert_renew_args {
  const char *tenant, *device_id;
  const struct mdm_cert_in *cert;
  int64_t now;
  const struct mdm_audit_in *a;
};

static mdm_rc job_cert_renew(struct sq_conn *c, struct sq_job *j)
{
  struct cert_renew_args *x = j->arg;
  sqlite3_stmt *st;
  mdm_rc rc = device_is_active(c, x->tenant, x->device_id);
  if(rc)
    return rc;
  st = sq_stmt(c, SQL_CERTS_REVOKE);
  if(!st)
    return MDM_ERR_STORE;
  bind_text(st, 1, x->tenant);
  bind_text(st, 2, x->device_id);
  sqlite3_bind_int64(st, 3, x->now);
  rc = sq_step_done(c, st);
  sq_done(st);
  if(!rc)
    rc = cert_insert(c, x->tenant, x->device_id, x->cert, x->now);
  if(rc)
    return rc;
  return sq_audit(c, x->tenant, x->a);
}

static mdm_rc sq_cert_renew(struct mdm_store *s, const char *tenant,
                            const char *device_id,
                            const struct mdm_cert_in *cert, int64_t now,
                            const struct mdm_audit_in *a)
{
  struct cert_renew_args x = {tenant, device_id, cert, now, a};
  return sq_submit((struct sq_store *)s, job_cert_renew, &x);
}

static const struct mdm_store_ops sqlite_ops = {
  .name = "sqlite",
  .ping = sq_ping,
  .close = sq_close,
  .tenant_create = sq_tenant_create,
  .tenant_get = sq_tenant_get,
  .tenant_list = sq_tenant_list,
  .token_create = sq_token_create,
  .token_auth = sq_token_auth,
  .token_list = sq_token_list,
  .token_delete = sq_token_delete,
  .etoken_create = sq_etoken_create,
  .etoken_list = sq_etoken_list,
  .etoken_labels = sq_etoken_labels,
  .etoken_revoke = sq_etoken_revoke,
  .enroll = sq_enroll,
  .checkin = sq_checkin,
  .checkin_touch = sq_checkin_touch,
  .device_active = sq_device_active,
  .device_get = sq_device_get,
  .device_list = sq_device_list,
  .device_patch = sq_device_patch,
  .device_eval_state = sq_device_eval_state,
  .device_upn = sq_device_upn,
  .device_access = sq_device_access,
  .device_eval_scan = sq_device_eval_scan,
  .compliance_put = sq_compliance_put,
  .policy_gen = sq_policy_gen,
  .policy_list = sq_policy_list,
  .policy_get = sq_policy_get,
  .policy_apply = sq_policy_apply,
  .telemetry_put = sq_telemetry_put,
  .command_create = sq_command_create,
  .command_create_bulk = sq_command_create_bulk,
  .command_get = sq_command_get,
  .command_list = sq_command_list,
  .command_cancel = sq_command_cancel,
  .agent_commands_fetch = sq_agent_commands_fetch,
  .command_result = sq_command_result,
  .device_retire = sq_device_retire,
  .audit_list = sq_audit_list,
  .audit_verify = sq_audit_verify,
  .device_report_scan = sq_device_report_scan,
  .audit_head = sq_audit_head,
  .metrics_scan = sq_metrics_scan,
  .metrics_label_scan = sq_metrics_label_scan,
  .ca_get = sq_ca_get,
  .ca_put = sq_ca_put,
  .cert_revoked_list = sq_cert_revoked_list,
  .cert_lookup = sq_cert_lookup,
  .cert_renew = sq_cert_renew,
};

mdm_rc mdm_store_sqlite_open(const char *path, struct mdm_store **out)
{
  struct sq_store *q = calloc(1, sizeof(*q));
  mdm_rc rc;
  int i, fd;

  if(!q)
    return MDM_ERR_NOMEM;
  q->base.ops = &sqlite_ops;
  pthread_mutex_init(&q->qlock, NULL);
  pthread_cond_init(&q->qcond, NULL);
  pthread_cond_init(&q->ckpt_cond, NULL);
  pthread_mutex_init(&q->rlock, NULL);
  pthread_cond_init(&q->rcond, NULL);
  pthread_mutex_init(&q->upn_lock, NULL);
  q->path = strdup(path);
  if(!q->path) {
    rc = MDM_ERR_NOMEM;
    goto fail;
  }
  /* The database holds the tenants' private keys: owner-only. */
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if(fd < 0) {
    mdm_error("store: cannot open '%s'", path);
    rc = MDM_ERR_STORE;
    goto fail;
  }
  fchmod(fd, 0600);
  close(fd);
  rc = sq_conn_open(&q->writer, path, 1);
  if(rc)
    goto fail;
  rc = sq_migrate(q->writer.db);
  if(rc)
    goto fail;
  for(i = 0; i < SQ_READERS; i++) {
    rc = sq_conn_open(&q->readers[i], path, 0);
    if(rc)
      goto fail;
  }
  if(pthread_create(&q->thread, NULL, sq_writer_main, q) != 0) {
    rc = MDM_ERR_INTERNAL;
    goto fail;
  }
  q->has_thread = 1;
  if(pthread_create(&q->ckpt_thread, NULL, sq_ckpt_main, q) != 0) {
    rc = MDM_ERR_INTERNAL;
    goto fail;
  }
  q->has_ckpt_thread = 1;
  *out = &q->base;
  return MDM_OK;
fail:
  sq_close(&q->base);
  return rc;
}
