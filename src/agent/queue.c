/*
 * queue.c: the bounded, crash-safe on-disk telemetry queue (see queue.h for
 * the format).  The journal is append-only between compactions; memory holds
 * only an index (seq, offset, length) of the live lines, and batches are read
 * back from the file, so a full queue of 10000 events of 8 KiB costs a few
 * hundred KiB of memory, not 80 MB.
 *
 * Durability order:
 *   push:    append the line and fsync; then, if the bound dropped an event,
 *            rewrite meta.  A crash between the two leaves one event too
 *            many, which the next open drops and counts again.
 *   ack:     rewrite meta (first_seq, dropped).  A crash before it only
 *            resends events, which the server takes idempotently by seq.
 *   compact: only right after meta was written (so next_seq survives the
 *            lines that held it): write the live lines to a temp file,
 *            fsync, rename, fsync the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent/queue.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#define QUEUE_META_MAX 4096
/* Compact when dead bytes reach this and outweigh the live ones, or when
 * nothing is live any more. */
#define QUEUE_COMPACT_MIN (64 * 1024)
/* Kept of a "fact" or "message" string when an event is truncated. */
#define QUEUE_KEEP_STR 1024

struct qent {
  uint64_t seq;
  off_t off;      /* where the line starts in the journal */
  uint32_t len;   /* line length without the '\n' */
};

struct mdm_queue {
  char dir[PATH_MAX];
  char journal_path[PATH_MAX];
  char meta_path[PATH_MAX];
  int fd;                 /* journal, O_APPEND */
  int lock_fd;
  size_t max_events;
  uint64_t first_seq;     /* every seq below is acknowledged or dropped */
  uint64_t next_seq;      /* the next seq to hand out */
  uint64_t dropped;       /* dropped to the bound, not yet acknowledged */
  struct qent *ents;      /* live lines are ents[head .. tail) */
  size_t head, tail, cap;
  off_t file_len;         /* journal length */
  off_t live_bytes;       /* bytes of live lines, '\n' included */
};

/* ---- small helpers ----------------------------------------------------- */

static size_t queue_n(const struct mdm_queue *q)
{
  return q->tail - q->head;
}

static mdm_rc write_all(int fd, const char *p, size_t n)
{
  while(n) {
    ssize_t w = write(fd, p, n);
    if(w < 0) {
      if(errno == EINTR)
        continue;
      return MDM_ERR_IO;
    }
    p += w;
    n -= (size_t)w;
  }
  return MDM_OK;
}

static mdm_rc read_at(int fd, char *p, size_t n, off_t off)
{
  while(n) {
    ssize_t r = pread(fd, p, n, off);
    if(r < 0) {
      if(errno == EINTR)
        continue;
      return MDM_ERR_IO;
    }
    if(r == 0)
      return MDM_ERR_IO;   /* the file is shorter than the index says */
    p += r;
    n -= (size_t)r;
    off += r;
  }
  return MDM_OK;
}

static mdm_rc index_push(struct mdm_queue *q, uint64_t seq, off_t off,
                         uint32_t len)
{
  if(q->tail == q->cap) {
    if(q->head > 0) {
      memmove(q->ents, q->ents + q->head, queue_n(q) * sizeof(*q->ents));
      q->tail -= q->head;
      q->head = 0;
    }
    else {
      size_t ncap = q->cap ? q->cap * 2 : 64;
      struct qent *n = realloc(q->ents, ncap * sizeof(*n));
      if(!n)
        return MDM_ERR_NOMEM;
      q->ents = n;
      q->cap = ncap;
    }
  }
  q->ents[q->tail].seq = seq;
  q->ents[q->tail].off = off;
  q->ents[q->tail].len = len;
  q->tail++;
  q->live_bytes += (off_t)len + 1;
  return MDM_OK;
}

/* Forget the oldest live event (it becomes dead). */
static void index_pop(struct mdm_queue *q)
{
  struct qent *e = &q->ents[q->head++];
  q->live_bytes -= (off_t)e->len + 1;
  if(q->first_seq <= e->seq)
    q->first_seq = e->seq + 1;
}

/* ---- meta ---------------------------------------------------------------- */

static mdm_rc meta_write(struct mdm_queue *q)
{
  char s[256];
  int n = snprintf(s, sizeof(s),
                   "{\"version\":1,\"first_seq\":%" PRIu64
                   ",\"next_seq\":%" PRIu64 ",\"dropped\":%" PRIu64 "}\n",
                   q->first_seq, q->next_seq, q->dropped);
  mdm_rc rc;
  if(n < 0 || n >= (int)sizeof(s))
    return MDM_ERR_INTERNAL;
  rc = mdm_file_write_atomic(q->meta_path, s, (size_t)n, 0600);
  if(!rc)
    rc = mdm_fsync_dir(q->dir);
  return rc;
}

static int json_u64(json_t *o, const char *key, uint64_t min, uint64_t *out)
{
  json_t *v = json_object_get(o, key);
  json_int_t i;
  if(!json_is_integer(v))
    return 0;
  i = json_integer_value(v);
  if(i < 0 || (uint64_t)i < min)
    return 0;
  *out = (uint64_t)i;
  return 1;
}

/* Read meta.json.  *is_present is 0 when it is absent or unreadable (then
 * the queue starts from what the journal says). */
static mdm_rc meta_read(struct mdm_queue *q, int *is_present)
{
  char *s = NULL;
  json_t *o = NULL;
  uint64_t first = 0, next = 0, dropped = 0;
  mdm_rc rc = mdm_file_read(q->meta_path, QUEUE_META_MAX, &s, NULL);

  *is_present = 0;
  if(rc == MDM_ERR_NOTFOUND)
    return MDM_OK;
  if(rc && rc != MDM_ERR_TOOBIG)
    return rc;
  if(!rc)
    o = json_loads(s, 0, NULL);
  if(!json_is_object(o) || !json_u64(o, "first_seq", 1, &first) ||
     !json_u64(o, "next_seq", 1, &next) ||
     !json_u64(o, "dropped", 0, &dropped) || next < first) {
    mdm_warn("queue: ignoring unreadable '%s'; rebuilding it from the journal",
             q->meta_path);
  }
  else {
    q->first_seq = first;
    q->next_seq = next;
    q->dropped = dropped;
    *is_present = 1;
  }
  json_decref(o);
  free(s);
  return MDM_OK;
}

/* ---- event lines ---------------------------------------------------------- */

/* Is this a well-formed event line?  Sets *seq. */
static int line_parse(const char *p, size_t len, uint64_t *seq)
{
  json_t *o = json_loadb(p, len, 0, NULL);
  json_t *v;
  int ok = 0;
  if(!json_is_object(o))
    goto out;
  v = json_object_get(o, "seq");
  if(!json_is_integer(v) || json_integer_value(v) < 1)
    goto out;
  if(!json_is_string(json_object_get(o, "type")) ||
     !json_is_string(json_object_get(o, "at")) ||
     !json_object_get(o, "data"))
    goto out;
  *seq = (uint64_t)json_integer_value(v);
  ok = 1;
out:
  json_decref(o);
  return ok;
}

struct scan {
  uint64_t prev_seq;
  uint64_t max_seq;
  size_t n_bad;
};

static mdm_rc scan_line(struct mdm_queue *q, struct scan *sc, const char *p,
                        size_t len, off_t off)
{
  uint64_t seq = 0;
  if(!len || !line_parse(p, len, &seq) || seq <= sc->prev_seq) {
    sc->n_bad++;
    return MDM_OK;
  }
  sc->prev_seq = seq;
  if(seq > sc->max_seq)
    sc->max_seq = seq;
  if(seq < q->first_seq)
    return MDM_OK;
  return index_push(q, seq, off, (uint32_t)len);
}

/* Read the journal, index its live lines and cut off a torn tail. */
static mdm_rc journal_scan(struct mdm_queue *q)
{
  char *chunk = malloc(65536);
  struct mdm_buf line;
  struct scan sc = {0, 0, 0};
  off_t pos = 0, line_start = 0;
  int is_overlong = 0;
  mdm_rc rc = MDM_OK;

  mdm_buf_init(&line, MDM_QUEUE_MAX_EVENT);
  if(!chunk)
    return MDM_ERR_NOMEM;
  for(;;) {
    ssize_t r = pread(q->fd, chunk, 65536, pos);
    size_t i = 0;
    if(r < 0) {
      if(errno == EINTR)
        continue;
      rc = MDM_ERR_IO;
      goto out;
    }
    if(r == 0)
      break;
    while(i < (size_t)r) {
      char *nl = memchr(chunk + i, '\n', (size_t)r - i);
      size_t seg = nl ? (size_t)(nl - (chunk + i)) : (size_t)r - i;
      if(!is_overlong && mdm_buf_append(&line, chunk + i, seg)) {
        is_overlong = 1;
        mdm_buf_reset(&line);
      }
      i += seg;
      if(!nl)
        break;
      i++;
      if(is_overlong)
        sc.n_bad++;
      else {
        rc = scan_line(q, &sc, line.data, line.len, line_start);
        if(rc)
          goto out;
      }
      line_start = pos + (off_t)i;
      is_overlong = 0;
      mdm_buf_reset(&line);
    }
    pos += r;
  }
  if(line_start < pos) {
    mdm_warn("queue: cutting off a torn last line of %lld bytes in '%s'",
             (long long)(pos - line_start), q->journal_path);
    if(ftruncate(q->fd, line_start) != 0 || fsync(q->fd) != 0) {
      rc = MDM_ERR_IO;
      goto out;
    }
  }
  if(sc.n_bad)
    mdm_warn("queue: skipped %zu unreadable line(s) in '%s'", sc.n_bad,
             q->journal_path);
  q->file_len = line_start;
  if(sc.max_seq >= q->next_seq)
    q->next_seq = sc.max_seq + 1;
  if(q->first_seq > q->next_seq)
    q->next_seq = q->first_seq;
out:
  mdm_buf_release(&line);
  free(chunk);
  return rc;
}

/* Rewrite the journal with the live lines only.  The caller has just
 * written meta, so next_seq survives the dead lines that held it.  Failure
 * leaves the old journal in place, which is still correct. */
static mdm_rc journal_compact(struct mdm_queue *q)
{
  char tmp[PATH_MAX + 8];
  char *line = NULL;
  int fd = -1;
  size_t i;
  off_t off = 0;
  mdm_rc rc = MDM_OK;

  if(snprintf(tmp, sizeof(tmp), "%s.tmp", q->journal_path) >= (int)sizeof(tmp))
    return MDM_ERR_TOOBIG;
  fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if(fd < 0)
    return MDM_ERR_IO;
  line = malloc(MDM_QUEUE_MAX_EVENT + 1);
  if(!line) {
    rc = MDM_ERR_NOMEM;
    goto fail;
  }
  for(i = q->head; i < q->tail; i++) {
    struct qent *e = &q->ents[i];
    rc = read_at(q->fd, line, (size_t)e->len + 1, e->off);
    if(!rc)
      rc = write_all(fd, line, (size_t)e->len + 1);
    if(rc)
      goto fail;
  }
  if(fsync(fd) != 0 || rename(tmp, q->journal_path) != 0) {
    rc = MDM_ERR_IO;
    goto fail;
  }
  mdm_fsync_dir(q->dir);
  free(line);
  close(q->fd);
  q->fd = fd;
  for(i = q->head; i < q->tail; i++) {
    q->ents[i].off = off;
    off += (off_t)q->ents[i].len + 1;
  }
  q->file_len = off;
  return MDM_OK;
fail:
  free(line);
  close(fd);
  unlink(tmp);
  return rc;
}

/* Call only right after a successful meta_write(). */
static void journal_maybe_compact(struct mdm_queue *q)
{
  off_t dead = q->file_len - q->live_bytes;
  mdm_rc rc;
  if(dead <= 0)
    return;
  if(queue_n(q) && (dead < QUEUE_COMPACT_MIN || dead < q->live_bytes))
    return;
  rc = journal_compact(q);
  if(rc)
    mdm_warn("queue: cannot compact '%s': %s", q->journal_path,
             mdm_strerror(rc));
}

/* ---- open / close ----------------------------------------------------------- */

static mdm_rc path_join(char *out, size_t n, const char *dir, const char *name)
{
  if(snprintf(out, n, "%s/%s", dir, name) >= (int)n)
    return MDM_ERR_TOOBIG;
  return MDM_OK;
}

mdm_rc mdm_queue_open(const char *dir, size_t max_events,
                      struct mdm_queue **out)
{
  struct mdm_queue *q;
  char lock_path[PATH_MAX];
  int is_meta = 0, is_dirty = 0;
  size_t excess;
  mdm_rc rc;

  *out = NULL;
  if(!dir || !*dir || max_events < 1 || max_events > MDM_QUEUE_LIMIT_MAX)
    return MDM_ERR_INVAL;
  q = calloc(1, sizeof(*q));
  if(!q)
    return MDM_ERR_NOMEM;
  q->fd = q->lock_fd = -1;
  q->max_events = max_events;
  q->first_seq = q->next_seq = 1;
  rc = mdm_strlcpy(q->dir, dir, sizeof(q->dir));
  if(!rc)
    rc = path_join(q->journal_path, sizeof(q->journal_path), dir,
                   "journal.jsonl");
  if(!rc)
    rc = path_join(q->meta_path, sizeof(q->meta_path), dir, "meta.json");
  if(!rc)
    rc = path_join(lock_path, sizeof(lock_path), dir, "lock");
  if(!rc)
    rc = mdm_mkdirs(dir, 0700);
  if(rc)
    goto fail;

  q->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if(q->lock_fd < 0) {
    rc = MDM_ERR_IO;
    goto fail;
  }
  if(flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rc = errno == EWOULDBLOCK ? MDM_ERR_BUSY : MDM_ERR_IO;
    goto fail;
  }

  rc = meta_read(q, &is_meta);
  if(rc)
    goto fail;
  q->fd = open(q->journal_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC,
               0600);
  if(q->fd < 0) {
    rc = MDM_ERR_IO;
    goto fail;
  }
  mdm_fsync_dir(dir);
  {
    uint64_t meta_next = q->next_seq;
    rc = journal_scan(q);
    if(rc)
      goto fail;
    if(q->next_seq != meta_next)
      is_dirty = 1;
  }
  /* A smaller bound than before, or a crash between append and meta. */
  excess = queue_n(q) > max_events ? queue_n(q) - max_events : 0;
  if(excess) {
    mdm_warn("queue: dropping the %zu oldest event(s) to stay within %zu",
             excess, max_events);
    while(excess--) {
      index_pop(q);
      q->dropped++;
    }
    is_dirty = 1;
  }
  if(!is_meta || is_dirty || q->file_len > q->live_bytes) {
    rc = meta_write(q);
    if(rc)
      goto fail;
    journal_maybe_compact(q);
  }
  *out = q;
  return MDM_OK;
fail:
  mdm_queue_free(q);
  return rc;
}

void mdm_queue_free(struct mdm_queue *q)
{
  if(!q)
    return;
  if(q->fd >= 0)
    close(q->fd);
  if(q->lock_fd >= 0)
    close(q->lock_fd);   /* releases the flock */
  free(q->ents);
  free(q);
}

/* ---- push / peek / ack ---------------------------------------------------------- */

/* A copy of s cut to at most max bytes on a UTF-8 character boundary. */
static json_t *string_cut(const char *s, size_t len, size_t max)
{
  if(len > max) {
    len = max;
    while(len && ((unsigned char)s[len] & 0xC0) == 0x80)
      len--;
  }
  return json_stringn(s, len);
}

static json_t *data_truncated(json_t *data, size_t original_size)
{
  static const char *const keep[] = {"fact", "message"};
  json_t *o = json_object();
  size_t i;
  if(!o)
    return NULL;
  json_object_set_new(o, "truncated", json_true());
  json_object_set_new(o, "original_size", json_integer((json_int_t)original_size));
  for(i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
    json_t *v = json_object_get(data, keep[i]);
    if(json_is_string(v))
      json_object_set_new(o, keep[i],
                          string_cut(json_string_value(v),
                                     json_string_length(v), QUEUE_KEEP_STR));
  }
  return o;
}

/* Serialize an event; caller owns *line (free()). */
static mdm_rc event_dump(uint64_t seq, const char *at, const char *type,
                         json_t *data, char **line, size_t *len)
{
  json_t *ev = json_object();
  char *s;
  if(!ev)
    return MDM_ERR_NOMEM;
  json_object_set_new(ev, "seq", json_integer((json_int_t)seq));
  json_object_set_new(ev, "at", json_string(at));
  json_object_set_new(ev, "type", json_string(type));
  json_object_set(ev, "data", data);
  s = json_dumps(ev, JSON_COMPACT);
  json_decref(ev);
  if(!s)
    return MDM_ERR_NOMEM;
  *line = s;
  *len = strlen(s);
  return MDM_OK;
}

mdm_rc mdm_queue_push(struct mdm_queue *q, const char *type, json_t *data,
                      int64_t at_ms, uint64_t *seq_out)
{
  char at[40];
  char *line = NULL;
  size_t len = 0, tlen, k;
  json_t *own = NULL;
  uint64_t seq;
  size_t old_head = q->head;
  uint64_t old_first = q->first_seq, old_dropped = q->dropped;
  off_t old_live = q->live_bytes;
  int is_drop = 0;
  mdm_rc rc;

  if(!type)
    return MDM_ERR_INVAL;
  tlen = strlen(type);
  if(tlen < 1 || tlen > MDM_QUEUE_MAX_TYPE)
    return MDM_ERR_INVAL;
  for(k = 0; k < tlen; k++)
    if((unsigned char)type[k] < 0x20 || (unsigned char)type[k] >= 0x7f)
      return MDM_ERR_INVAL;
  if(!data)
    data = own = json_object();
  if(!data)
    return MDM_ERR_NOMEM;
  if(q->next_seq >= (1ULL << 53)) {   /* beyond what JSON numbers keep exact */
    rc = MDM_ERR_TOOBIG;
    goto out;
  }
  seq = q->next_seq;
  mdm_time_format_ms(at_ms, at, sizeof(at));
  rc = event_dump(seq, at, type, data, &line, &len);
  if(rc)
    goto out;
  if(len > MDM_QUEUE_MAX_EVENT) {
    json_t *small = data_truncated(data, len);
    free(line);
    line = NULL;
    if(!small) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
    mdm_warn("queue: event '%s' of %zu bytes truncated", type, len);
    rc = event_dump(seq, at, type, small, &line, &len);
    json_decref(small);
    if(rc)
      goto out;
    if(len > MDM_QUEUE_MAX_EVENT) {
      rc = MDM_ERR_TOOBIG;
      goto out;
    }
  }

  if(queue_n(q) >= q->max_events) {
    index_pop(q);
    q->dropped++;
    is_drop = 1;
  }
  line[len] = '\n';   /* json_dumps left room: this overwrites the NUL */
  rc = write_all(q->fd, line, len + 1);
  line[len] = '\0';
  if(!rc && fdatasync(q->fd) != 0)
    rc = MDM_ERR_IO;
  if(!rc)
    rc = index_push(q, seq, q->file_len, (uint32_t)len);
  if(rc) {
    /* Take back a partial line so the next append starts clean. */
    if(ftruncate(q->fd, q->file_len) != 0)
      mdm_warn("queue: cannot truncate '%s' after a failed append",
               q->journal_path);
    q->head = old_head;
    q->first_seq = old_first;
    q->dropped = old_dropped;
    q->live_bytes = old_live;
    goto out;
  }
  q->file_len += (off_t)len + 1;
  q->next_seq = seq + 1;
  if(seq_out)
    *seq_out = seq;
  if(is_drop) {
    /* Not fatal: the event is stored, and the next open counts the drop
     * again from the journal if this meta never made it to disk. */
    if(meta_write(q))
      mdm_warn("queue: cannot write '%s'", q->meta_path);
    else
      journal_maybe_compact(q);
  }
out:
  free(line);
  json_decref(own);
  return rc;
}

mdm_rc mdm_queue_peek(struct mdm_queue *q, size_t max_n, size_t max_bytes,
                      json_t **events, uint64_t *last_seq)
{
  json_t *arr = json_array();
  char *line = malloc(MDM_QUEUE_MAX_EVENT + 1);
  size_t i, bytes = 0;
  uint64_t last = 0;
  mdm_rc rc = MDM_OK;

  *events = NULL;
  *last_seq = 0;
  if(!arr || !line) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  for(i = q->head; i < q->tail && json_array_size(arr) < max_n; i++) {
    struct qent *e = &q->ents[i];
    json_t *ev;
    if(last && bytes + e->len + 1 > max_bytes)
      break;
    rc = read_at(q->fd, line, e->len, e->off);
    if(rc)
      goto out;
    ev = json_loadb(line, e->len, 0, NULL);
    /* Checked when written or opened; a line damaged since is skipped (and
     * goes with the acknowledgement of this batch). */
    if(json_is_object(ev))
      json_array_append_new(arr, ev);
    else {
      mdm_warn("queue: skipping unreadable event %" PRIu64, e->seq);
      json_decref(ev);
    }
    bytes += e->len + 1;
    last = e->seq;
  }
  *events = arr;
  arr = NULL;
  *last_seq = last;
out:
  free(line);
  json_decref(arr);
  return rc;
}

mdm_rc mdm_queue_ack(struct mdm_queue *q, uint64_t last_seq,
                     uint64_t dropped_sent)
{
  size_t old_head = q->head;
  uint64_t old_first = q->first_seq, old_dropped = q->dropped;
  off_t old_live = q->live_bytes;
  mdm_rc rc;

  if(last_seq >= q->next_seq || dropped_sent > q->dropped)
    return MDM_ERR_INVAL;
  while(q->head < q->tail && q->ents[q->head].seq <= last_seq)
    index_pop(q);
  if(last_seq >= q->first_seq)
    q->first_seq = last_seq + 1;
  q->dropped -= dropped_sent;
  if(q->head == old_head && q->first_seq == old_first && !dropped_sent)
    return MDM_OK;
  rc = meta_write(q);
  if(rc) {
    q->head = old_head;
    q->first_seq = old_first;
    q->dropped = old_dropped;
    q->live_bytes = old_live;
    return rc;
  }
  journal_maybe_compact(q);
  return MDM_OK;
}

size_t mdm_queue_count(const struct mdm_queue *q)
{
  return queue_n(q);
}

uint64_t mdm_queue_dropped(const struct mdm_queue *q)
{
  return q->dropped;
}

uint64_t mdm_queue_next_seq(const struct mdm_queue *q)
{
  return q->next_seq;
}
