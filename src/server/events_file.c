/*
 * events_file.c: the JSON-lines file sink (events.h, docs/events.md).  One
 * thread appends each event as one line to --events-file.  When the next
 * line would take the file past --events-file-max-size, the file is
 * rotated as logrotate does: FILE.1 is the newest old file, FILE.N the
 * oldest, and --events-file-keep of them are kept.
 *
 * Durability: lines are written with write(2) as soon as they are taken
 * from the queue (so a crash of mdmd loses nothing already written), and
 * the file is fsync'ed at most once a second while events flow, before
 * every rotation and at shutdown (so a crash of the machine loses at most
 * about the last second).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/log.h"
#include "core/util.h"
#include "server/events_int.h"

#define TAKE_MAX 1024
#define WRITE_CHUNK (1 << 20)
#define SYNC_MS 1000

struct file_sink {
  struct mdm_sink base;
  char path[1024];
  long long max_size;
  int keep;
  int fd;
  long long size;
  int is_dirty;                 /* written since the last fsync */
  long long synced_to;          /* written back up to here */
  int64_t last_sync_ms;
  pthread_t thread;
  int has_thread;
};

static int open_file(struct file_sink *f)
{
  struct stat sb;
  f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if(f->fd < 0)
    return -1;
  f->size = fstat(f->fd, &sb) == 0 ? (long long)sb.st_size : 0;
  f->synced_to = f->size;
  return 0;
}

static void sync_file(struct file_sink *f)
{
  if(f->fd >= 0 && f->is_dirty)
    fdatasync(f->fd);
  f->is_dirty = 0;
  f->last_sync_ms = mdm_ev_mono_ms();
}

/* FILE -> FILE.1 -> ... -> FILE.keep (the oldest goes), then a new FILE. */
static void rotate(struct file_sink *f)
{
  char from[1100], to[1100];
  int i;
  sync_file(f);
  if(f->fd >= 0)
    close(f->fd);
  f->fd = -1;
  if(f->keep == 0)
    unlink(f->path);
  else {
    snprintf(to, sizeof(to), "%s.%d", f->path, f->keep);
    unlink(to);
    for(i = f->keep - 1; i >= 1; i--) {
      snprintf(from, sizeof(from), "%s.%d", f->path, i);
      snprintf(to, sizeof(to), "%s.%d", f->path, i + 1);
      if(rename(from, to) && errno != ENOENT)
        mdm_warn("events: cannot rename '%s': %s", from, strerror(errno));
    }
    snprintf(to, sizeof(to), "%s.1", f->path);
    if(rename(f->path, to))
      mdm_warn("events: cannot rename '%s': %s", f->path, strerror(errno));
  }
  if(open_file(f)) {
    atomic_fetch_add(&f->base.n_failures, 1);
    mdm_error("events: cannot open '%s': %s", f->path, strerror(errno));
  }
}

/* Write b (n_events whole lines) or count them lost. */
static void write_out(struct file_sink *f, struct mdm_buf *b, size_t n_events)
{
  size_t off = 0;
  if(!b->len)
    return;
  if(f->fd < 0 && open_file(f)) {
    atomic_fetch_add(&f->base.n_failures, 1);
    mdm_sink_count_drop(&f->base, n_events, "the file cannot be opened");
    mdm_buf_reset(b);
    return;
  }
  while(off < b->len) {
    ssize_t w = write(f->fd, b->data + off, b->len - off);
    if(w < 0 && errno == EINTR)
      continue;
    if(w <= 0) {
      atomic_fetch_add(&f->base.n_failures, 1);
      mdm_sink_count_drop(&f->base, n_events, strerror(errno));
      /* A torn last line: start the next write on a line of its own. */
      if(off) {
        ssize_t r = write(f->fd, "\n", 1);
        (void)r;
      }
      mdm_buf_reset(b);
      return;
    }
    off += (size_t)w;
  }
  f->size += (long long)b->len;
  f->is_dirty = 1;
  mdm_ev_writeback(f->fd, &f->synced_to, f->size);
  atomic_fetch_add(&f->base.n_delivered, n_events);
  mdm_buf_reset(b);
}

static void *file_main(void *arg)
{
  struct file_sink *f = arg;
  struct mdm_event *evs[TAKE_MAX];
  struct mdm_buf b;

  mdm_ev_thread_background("mdm-ev-file");
  mdm_buf_init(&b, WRITE_CHUNK + MDM_EV_MAX + 16);
  for(;;) {
    size_t n = mdm_sink_take(&f->base, evs, TAKE_MAX, SYNC_MS), i, n_buf = 0;
    for(i = 0; i < n; i++) {
      struct mdm_event *e = evs[i];
      long long line = (long long)e->json_len + 1;
      if(f->size + (long long)b.len + line > f->max_size &&
         f->size + (long long)b.len > 0) {
        write_out(f, &b, n_buf);
        n_buf = 0;
        rotate(f);
      }
      if(mdm_buf_append(&b, e->json, e->json_len) ||
         mdm_buf_append(&b, "\n", 1))
        mdm_sink_count_drop(&f->base, 1, "out of memory");
      else
        n_buf++;
      mdm_event_unref(e);
      if(b.len >= WRITE_CHUNK) {
        write_out(f, &b, n_buf);
        n_buf = 0;
      }
    }
    write_out(f, &b, n_buf);
    if(f->is_dirty && mdm_ev_mono_ms() - f->last_sync_ms >= SYNC_MS)
      sync_file(f);
    if(!n && mdm_sink_is_stopping(&f->base, NULL) &&
       !mdm_sink_queued(&f->base))
      break;
  }
  sync_file(f);
  mdm_buf_release(&b);
  return NULL;
}

static mdm_rc file_start(struct mdm_sink *s)
{
  struct file_sink *f = (struct file_sink *)s;
  if(pthread_create(&f->thread, NULL, file_main, f) != 0)
    return MDM_ERR_INTERNAL;
  f->has_thread = 1;
  return MDM_OK;
}

static void file_stop(struct mdm_sink *s)
{
  struct file_sink *f = (struct file_sink *)s;
  if(f->has_thread) {
    pthread_join(f->thread, NULL);
    f->has_thread = 0;
  }
}

static void file_destroy(struct mdm_sink *s)
{
  struct file_sink *f = (struct file_sink *)s;
  file_stop(s);
  if(f->fd >= 0)
    close(f->fd);
  mdm_sink_release(&f->base);
  free(f);
}

mdm_rc mdm_sink_file_new(const struct mdm_events_config *cfg,
                         struct mdm_sink **out)
{
  struct file_sink *f = calloc(1, sizeof(*f));
  mdm_rc rc;
  *out = NULL;
  if(!f)
    return MDM_ERR_NOMEM;
  f->fd = -1;
  rc = mdm_sink_init(&f->base, "file", (size_t)cfg->queue_max);
  if(rc) {
    free(f);
    return rc;
  }
  f->base.start = file_start;
  f->base.stop = file_stop;
  f->base.destroy = file_destroy;
  mdm_strlcpy(f->path, cfg->file, sizeof(f->path));
  f->max_size = cfg->file_max_size;
  f->keep = cfg->file_keep;
  if(open_file(f)) {
    fprintf(stderr, "mdmd: cannot open event file '%s': %s\n", f->path,
            strerror(errno));
    file_destroy(&f->base);
    return MDM_ERR_IO;
  }
  f->last_sync_ms = mdm_ev_mono_ms();
  *out = &f->base;
  return MDM_OK;
}
