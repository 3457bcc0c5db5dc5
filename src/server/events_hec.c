/*
 * events_hec.c: the Splunk HTTP Event Collector sink (events.h,
 * docs/events.md), with libcurl.
 *
 * Every event goes to an on-disk spool before it is sent, so an outage of
 * the receiver, or a restart of mdmd, loses nothing; the spool's size is
 * capped (--events-hec-spool-max) so an outage cannot fill the disk: past
 * the cap the oldest events are dropped, counted and reported as errors.
 *
 *  - The spooler thread drains the sink's queue into the spool: segment
 *    files <data-dir>/events-spool/hec/seg-<seq>.jsonl, one HEC envelope
 *    per line, appended with write(2) (fsync'ed at most once a second, at
 *    every new segment and at shutdown).  A segment is closed at an eighth
 *    of the cap (at most 4 MiB); the cap drops whole segments, oldest
 *    first, never the one being written.
 *  - The sender thread reads the oldest unsent lines, POSTs them as one
 *    batch (--events-hec-batch events, or fewer once the oldest has waited
 *    --events-hec-batch-ms, at most 1 MiB), and on a 2xx answer moves its
 *    cursor (<spool>/cursor: segment and offset) past them; a segment
 *    fully sent is deleted.  Any failure (no connection, timeout, non-2xx)
 *    is retried with exponential backoff, 0.5 s doubling to 30 s.
 *
 * Delivery is at least once: a batch whose answer is lost is sent again.
 * Each event carries a unique "id" for de-duplication.
 *
 * The token (Authorization: Splunk <token>) is read once from
 * --events-hec-token-file, which must be mode 0600 or stricter; it is
 * never logged and is wiped from memory at exit.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "core/log.h"
#include "core/util.h"
#include "server/events_int.h"

#define TAKE_MAX 1024
#define APPEND_CHUNK (1 << 20)
#define BATCH_BYTES_MAX (1 << 20)
#define SEG_MAX (4LL << 20)
#define SYNC_MS 1000
#define HTTP_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define FAIL_LOG_MS 10000
#define ANSWER_MAX 512

struct hec_sink {
  struct mdm_sink base;
  char url[1100];
  char ca_file[1024];
  char host[256], index[128], sourcetype[128];
  struct mdm_hec_meta meta;
  int batch, batch_ms;
  long long spool_max, seg_max;
  char dir[1100];
  struct curl_slist *headers;   /* holds the token: wiped before freeing */
  CURL *curl;

  /* The spool, shared by the two threads under sl. */
  pthread_mutex_t sl;
  pthread_cond_t sc;            /* data appended, or the spooler done */
  uint64_t min_seq;             /* the oldest segment on disk */
  uint64_t active_seq;          /* the one being appended to */
  int active_fd;
  long long active_len;
  long long total_bytes;        /* of every segment */
  uint64_t send_seq;            /* the first byte not yet acknowledged: */
  long long send_off;           /* segment and offset */
  uint64_t send_gen;            /* moves when the cap moved the cursor */
  int is_spooler_done;
  int is_dirty;
  long long synced_to;          /* of the active segment, written back */
  int64_t last_sync_ms;
  int cursor_fd;

  pthread_t spooler, sender;
  int has_spooler, has_sender;
  /* The sender's alone: */
  int backoff_ms;
  int64_t last_fail_log_ms;
  char answer[ANSWER_MAX];
  size_t answer_len;
};

/* ---- the spool ---------------------------------------------------------- */

static void seg_path(const struct hec_sink *h, uint64_t seq, char *out,
                     size_t n)
{
  snprintf(out, n, "%s/seg-%020llu.jsonl", h->dir, (unsigned long long)seq);
}

static void publish_backlog(struct hec_sink *h)
{
  long long b = h->total_bytes - h->send_off;
  atomic_store(&h->base.spool_bytes, (unsigned long long)(b > 0 ? b : 0));
}

static void save_cursor(struct hec_sink *h, uint64_t seq, long long off)
{
  char line[64];
  int n = snprintf(line, sizeof(line), "%020llu %020lld\n",
                   (unsigned long long)seq, off);
  if(h->cursor_fd >= 0 && pwrite(h->cursor_fd, line, (size_t)n, 0) != n)
    mdm_warn("events: cannot write the HEC spool cursor: %s",
             strerror(errno));
}

/* Lines (events) in path from offset off to its end. */
static uint64_t count_lines(const char *path, long long off)
{
  char buf[65536];
  uint64_t n = 0;
  ssize_t r;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if(fd < 0)
    return 0;
  while((r = pread(fd, buf, sizeof(buf), off)) > 0) {
    ssize_t i;
    for(i = 0; i < r; i++)
      n += buf[i] == '\n';
    off += r;
  }
  close(fd);
  return n;
}

static long long file_size(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Over the cap: drop the oldest closed segment.  Holds sl. */
static void drop_oldest(struct hec_sink *h)
{
  char path[1200];
  long long size;
  uint64_t n;
  seg_path(h, h->min_seq, path, sizeof(path));
  size = file_size(path);
  n = count_lines(path, h->send_seq == h->min_seq ? h->send_off : 0);
  if(unlink(path) && errno != ENOENT)
    mdm_error("events: cannot remove '%s': %s", path, strerror(errno));
  h->total_bytes -= size;
  if(h->send_seq <= h->min_seq) {
    h->send_seq = h->min_seq + 1;
    h->send_off = 0;
    h->send_gen++;
    save_cursor(h, h->send_seq, 0);
  }
  h->min_seq++;
  atomic_fetch_add(&h->base.n_dropped, n);
  mdm_error("events: the HEC spool reached its cap (--events-hec-spool-max "
            "%lld bytes): dropped its %llu oldest events; %llu lost so far",
            h->spool_max, (unsigned long long)n,
            (unsigned long long)atomic_load(&h->base.n_dropped));
}

/* Close the active segment and start the next.  Holds sl. */
static int roll(struct hec_sink *h)
{
  char path[1200];
  if(h->active_fd >= 0) {
    fdatasync(h->active_fd);
    close(h->active_fd);
  }
  h->active_seq++;
  h->active_len = 0;
  h->synced_to = 0;
  seg_path(h, h->active_seq, path, sizeof(path));
  h->active_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
                              O_CLOEXEC, 0600);
  h->is_dirty = 0;
  if(h->active_fd < 0) {
    mdm_error("events: cannot create '%s': %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Append b (n_events lines) to the spool. */
static void spool_append(struct hec_sink *h, struct mdm_buf *b,
                         size_t n_events)
{
  size_t off = 0;
  pthread_mutex_lock(&h->sl);
  if((h->active_len > 0 && h->active_len + (long long)b->len > h->seg_max) ||
     h->active_fd < 0)
    roll(h);
  while(h->active_fd >= 0 && off < b->len) {
    ssize_t w = write(h->active_fd, b->data + off, b->len - off);
    if(w < 0 && errno == EINTR)
      continue;
    if(w <= 0)
      break;
    off += (size_t)w;
  }
  if(off < b->len) {
    /* Disk full or gone: no torn line stays behind. */
    if(h->active_fd >= 0 && ftruncate(h->active_fd, h->active_len))
      mdm_error("events: cannot truncate the HEC spool: %s",
                strerror(errno));
    pthread_mutex_unlock(&h->sl);
    atomic_fetch_add(&h->base.n_failures, 1);
    mdm_sink_count_drop(&h->base, n_events, "cannot write the HEC spool");
    return;
  }
  h->active_len += (long long)b->len;
  h->total_bytes += (long long)b->len;
  h->is_dirty = 1;
  mdm_ev_writeback(h->active_fd, &h->synced_to, h->active_len);
  while(h->total_bytes > h->spool_max && h->min_seq < h->active_seq)
    drop_oldest(h);
  publish_backlog(h);
  pthread_cond_signal(&h->sc);
  pthread_mutex_unlock(&h->sl);
}

static void spool_sync(struct hec_sink *h, int is_forced)
{
  pthread_mutex_lock(&h->sl);
  if(h->active_fd >= 0 && h->is_dirty &&
     (is_forced || mdm_ev_mono_ms() - h->last_sync_ms >= SYNC_MS)) {
    fdatasync(h->active_fd);
    h->is_dirty = 0;
    h->last_sync_ms = mdm_ev_mono_ms();
  }
  pthread_mutex_unlock(&h->sl);
}

static void *spooler_main(void *arg)
{
  struct hec_sink *h = arg;
  struct mdm_event *evs[TAKE_MAX];
  struct mdm_buf b;
  mdm_ev_thread_background("mdm-ev-spool");
  mdm_buf_init(&b, APPEND_CHUNK + MDM_EV_MAX + 4096);
  for(;;) {
    size_t n = mdm_sink_take(&h->base, evs, TAKE_MAX, SYNC_MS), i, k = 0;
    for(i = 0; i < n; i++) {
      if(mdm_hec_envelope(&b, &h->meta, evs[i]))
        mdm_sink_count_drop(&h->base, 1, "out of memory");
      else
        k++;
      mdm_event_unref(evs[i]);
      /* Appends no larger than a segment keep the spool within its cap. */
      if(b.len >= APPEND_CHUNK || (long long)b.len >= h->seg_max) {
        spool_append(h, &b, k);
        mdm_buf_reset(&b);
        k = 0;
      }
    }
    if(b.len)
      spool_append(h, &b, k);
    mdm_buf_reset(&b);
    spool_sync(h, 0);
    if(!n && mdm_sink_is_stopping(&h->base, NULL) &&
       !mdm_sink_queued(&h->base))
      break;
  }
  spool_sync(h, 1);
  mdm_buf_release(&b);
  pthread_mutex_lock(&h->sl);
  h->is_spooler_done = 1;
  pthread_cond_broadcast(&h->sc);
  pthread_mutex_unlock(&h->sl);
  return NULL;
}

/* Find the segments left by earlier runs, the cursor, and open a new
 * active segment after them. */
static mdm_rc spool_open(struct hec_sink *h)
{
  DIR *d;
  struct dirent *de;
  uint64_t lo = 0, hi = 0;
  char path[1200], text[128];
  ssize_t r;

  if(mdm_mkdirs(h->dir, 0700)) {
    fprintf(stderr, "mdmd: cannot create the HEC spool '%s': %s\n", h->dir,
            strerror(errno));
    return MDM_ERR_IO;
  }
  d = opendir(h->dir);
  if(!d) {
    fprintf(stderr, "mdmd: cannot read the HEC spool '%s': %s\n", h->dir,
            strerror(errno));
    return MDM_ERR_IO;
  }
  while((de = readdir(d))) {
    unsigned long long seq;
    char tail[16];
    if(sscanf(de->d_name, "seg-%20llu.%15s", &seq, tail) != 2 ||
       strcmp(tail, "jsonl") || !seq)
      continue;
    if(!lo || seq < lo)
      lo = seq;
    if(seq > hi)
      hi = seq;
    seg_path(h, seq, path, sizeof(path));
    h->total_bytes += file_size(path);
  }
  closedir(d);
  h->min_seq = lo ? lo : 1;
  h->active_seq = hi;           /* roll() moves to hi + 1 */
  h->send_seq = h->min_seq;
  h->send_off = 0;
  snprintf(path, sizeof(path), "%s/cursor", h->dir);
  h->cursor_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if(h->cursor_fd < 0) {
    fprintf(stderr, "mdmd: cannot open '%s': %s\n", path, strerror(errno));
    return MDM_ERR_IO;
  }
  r = pread(h->cursor_fd, text, sizeof(text) - 1, 0);
  if(r > 0) {
    unsigned long long seq;
    long long off;
    text[r] = '\0';
    if(sscanf(text, "%llu %lld", &seq, &off) == 2 && seq >= h->min_seq &&
       seq <= hi && off >= 0) {
      seg_path(h, seq, path, sizeof(path));
      if(off <= file_size(path)) {
        h->send_seq = seq;
        h->send_off = off;
      }
    }
  }
  /* Segments missing in the middle (removed by hand): skipped by the
   * sender, which moves past a segment it cannot open. */
  pthread_mutex_lock(&h->sl);
  if(roll(h)) {
    pthread_mutex_unlock(&h->sl);
    fprintf(stderr, "mdmd: cannot write the HEC spool '%s'\n", h->dir);
    return MDM_ERR_IO;
  }
  if(h->send_seq > h->active_seq)
    h->send_seq = h->active_seq;
  if(!lo)
    h->min_seq = h->send_seq = h->active_seq;
  publish_backlog(h);
  pthread_mutex_unlock(&h->sl);
  if(h->total_bytes > h->send_off)
    mdm_info("events: HEC spool holds %lld bytes from an earlier run; "
             "sending them first", h->total_bytes - h->send_off);
  return MDM_OK;
}

/* ---- sending ------------------------------------------------------------ */

static size_t on_answer(char *p, size_t size, size_t n, void *ctx)
{
  struct hec_sink *h = ctx;
  size_t len = size * n, room = ANSWER_MAX - 1 - h->answer_len;
  if(room) {
    size_t k = len < room ? len : room;
    memcpy(h->answer + h->answer_len, p, k);
    h->answer_len += k;
    h->answer[h->answer_len] = '\0';
  }
  return len;
}

/* Abort a transfer once mdmd is stopping and the drain deadline passed
 * (a request begun before the stop, to a receiver that does not answer,
 * would otherwise hold the exit for its whole timeout). */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn,
                       curl_off_t ut, curl_off_t un)
{
  struct hec_sink *h = ctx;
  int64_t deadline = 0;
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  return mdm_sink_is_stopping(&h->base, &deadline) &&
         mdm_ev_mono_ms() >= deadline;
}

/* The answer goes to the log: should a receiver echo the token, it is
 * blotted out first. */
static void scrub_token(struct hec_sink *h)
{
  static const char prefix[] = "Authorization: Splunk ";
  const char *tok = h->headers ? h->headers->data : NULL;
  size_t n;
  char *at;
  if(!tok || strncmp(tok, prefix, sizeof(prefix) - 1))
    return;
  tok += sizeof(prefix) - 1;
  n = strlen(tok);
  while(n && (at = strstr(h->answer, tok)))
    memset(at, '*', n);
}

/* POST one batch; 0 on a 2xx answer, else -1 with what went wrong in
 * err. */
static int post(struct hec_sink *h, const char *data, size_t len,
                int64_t deadline, char *err, size_t errlen)
{
  long status = 0, timeout = HTTP_TIMEOUT_MS;
  CURLcode cc;
  if(deadline) {
    int64_t left = deadline - mdm_ev_mono_ms();
    if(left < timeout)
      timeout = left > 1 ? (long)left : 1;
  }
  h->answer_len = 0;
  h->answer[0] = '\0';
  curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, data);
  curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout);
  cc = curl_easy_perform(h->curl);
  if(cc != CURLE_OK) {
    snprintf(err, errlen, "%s", curl_easy_strerror(cc));
    return -1;
  }
  curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
  if(status >= 200 && status < 300)
    return 0;
  scrub_token(h);
  snprintf(err, errlen, "answered %ld: %.200s", status, h->answer);
  return -1;
}

static void send_failed(struct hec_sink *h, const char *err)
{
  int64_t now = mdm_ev_mono_ms();
  atomic_fetch_add(&h->base.n_failures, 1);
  if(!h->last_fail_log_ms || now - h->last_fail_log_ms >= FAIL_LOG_MS) {
    mdm_warn("events: HEC %s: %s (retrying in %d ms; events wait in the "
             "spool)", h->url, err, h->backoff_ms);
    h->last_fail_log_ms = now;
  }
}

/* Sleep ms, or less when stopping (never past the deadline). */
static void backoff_sleep(struct hec_sink *h, int ms)
{
  int64_t deadline = 0;
  if(mdm_sink_is_stopping(&h->base, &deadline)) {
    int64_t left = deadline - mdm_ev_mono_ms();
    struct timespec ts;
    if(left <= 0)
      return;
    if(left < ms)
      ms = (int)left;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
  }
  else
    mdm_sink_wait(&h->base, ms);
}

/* Segment seq is fully sent: delete it and move on.  Holds sl. */
static void finish_segment(struct hec_sink *h, uint64_t seq)
{
  char path[1200];
  if(h->send_seq != seq || seq >= h->active_seq)
    return;
  seg_path(h, seq, path, sizeof(path));
  h->total_bytes -= file_size(path);
  unlink(path);
  h->send_seq = seq + 1;
  h->send_off = 0;
  if(h->min_seq <= seq)
    h->min_seq = seq + 1;
  save_cursor(h, h->send_seq, 0);
  publish_backlog(h);
}

static void timed_wait_sc(struct hec_sink *h, int64_t until_ms)
{
  struct timespec ts;
  int64_t left = until_ms - mdm_ev_mono_ms();
  if(left <= 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += left / 1000;
  ts.tv_nsec += (long)(left % 1000) * 1000000L;
  if(ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(&h->sc, &h->sl, &ts);
}

static void *sender_main(void *arg)
{
  struct hec_sink *h = arg;
  char *chunk = malloc(BATCH_BYTES_MAX);
  char err[300];
  int64_t waiting_since = 0;
  int fd = -1;
  uint64_t fd_seq = 0;

  mdm_ev_thread_background("mdm-ev-hec");
  if(!chunk) {
    mdm_error("events: HEC sender: out of memory");
    return NULL;
  }
  for(;;) {
    int64_t now = mdm_ev_mono_ms(), deadline = 0;
    int is_stopping = mdm_sink_is_stopping(&h->base, &deadline);
    uint64_t seq, gen;
    long long off, end;
    int is_sealed;
    ssize_t got;
    size_t len, n;

    if(is_stopping && now >= deadline)
      break;
    pthread_mutex_lock(&h->sl);
    seq = h->send_seq;
    off = h->send_off;
    gen = h->send_gen;
    is_sealed = seq < h->active_seq;
    end = is_sealed ? off + BATCH_BYTES_MAX : h->active_len;
    if(!is_sealed && off >= h->active_len) {
      int is_done = h->is_spooler_done;
      if(!is_done)
        timed_wait_sc(h, is_stopping ? deadline : now + 1000);
      pthread_mutex_unlock(&h->sl);
      if(is_done)
        break;   /* everything is sent */
      waiting_since = 0;
      continue;
    }
    pthread_mutex_unlock(&h->sl);

    if(fd < 0 || fd_seq != seq) {
      char path[1200];
      if(fd >= 0)
        close(fd);
      seg_path(h, seq, path, sizeof(path));
      fd = open(path, O_RDONLY | O_CLOEXEC);
      fd_seq = seq;
      if(fd < 0) {
        /* Gone (the cap, or by hand): move on to the next. */
        pthread_mutex_lock(&h->sl);
        if(h->send_seq == seq && h->send_gen == gen && is_sealed) {
          h->send_seq = seq + 1;
          h->send_off = 0;
          if(h->min_seq <= seq)
            h->min_seq = seq + 1;
          save_cursor(h, h->send_seq, 0);
        }
        pthread_mutex_unlock(&h->sl);
        continue;
      }
    }
    got = pread(fd, chunk, (size_t)(end - off < BATCH_BYTES_MAX
                                      ? end - off : BATCH_BYTES_MAX), off);
    if(got < 0)
      got = 0;
    len = mdm_hec_batch_len(chunk, (size_t)got, (size_t)h->batch,
                            BATCH_BYTES_MAX, &n);
    if(!n && !is_sealed) {
      /* Only part of a line (a spool written by hand?): wait for more. */
      pthread_mutex_lock(&h->sl);
      timed_wait_sc(h, now + 100);
      pthread_mutex_unlock(&h->sl);
      continue;
    }
    if(!n) {
      /* The end of a closed segment (perhaps with a line torn by a
       * crash): done with it. */
      if(got > 0) {
        mdm_warn("events: HEC spool segment %llu ends in a torn line (an "
                 "earlier crash): skipped", (unsigned long long)seq);
        atomic_fetch_add(&h->base.n_dropped, 1);
      }
      close(fd);
      fd = -1;
      pthread_mutex_lock(&h->sl);
      if(h->send_gen == gen)
        finish_segment(h, seq);
      pthread_mutex_unlock(&h->sl);
      continue;
    }
    /* A short batch waits a little for company, unless stopping. */
    if(n < (size_t)h->batch && !is_sealed && !is_stopping &&
       h->batch_ms > 0) {
      if(!waiting_since)
        waiting_since = now;
      if(now - waiting_since < h->batch_ms) {
        pthread_mutex_lock(&h->sl);
        if(h->active_len == end)
          timed_wait_sc(h, waiting_since + h->batch_ms);
        pthread_mutex_unlock(&h->sl);
        continue;
      }
    }
    waiting_since = 0;
    if(post(h, chunk, len, is_stopping ? deadline : 0, err, sizeof(err))) {
      send_failed(h, err);
      /* Stopping: the spool keeps the rest for the next start; waiting
       * for a receiver that fails would only delay the exit. */
      if(mdm_sink_is_stopping(&h->base, NULL))
        break;
      backoff_sleep(h, h->backoff_ms);
      h->backoff_ms = h->backoff_ms * 2 > BACKOFF_MAX_MS
                        ? BACKOFF_MAX_MS : h->backoff_ms * 2;
      continue;
    }
    if(h->last_fail_log_ms)
      mdm_info("events: HEC %s: sending again", h->url);
    h->last_fail_log_ms = 0;
    h->backoff_ms = BACKOFF_MIN_MS;
    atomic_fetch_add(&h->base.n_delivered, n);
    pthread_mutex_lock(&h->sl);
    if(h->send_gen == gen && h->send_seq == seq && h->send_off == off) {
      h->send_off = off + (long long)len;
      save_cursor(h, seq, h->send_off);
      publish_backlog(h);
    }
    pthread_mutex_unlock(&h->sl);
  }
  if(fd >= 0)
    close(fd);
  free(chunk);
  return NULL;
}

/* ---- the sink ----------------------------------------------------------- */

static mdm_rc hec_start(struct mdm_sink *s)
{
  struct hec_sink *h = (struct hec_sink *)s;
  if(pthread_create(&h->spooler, NULL, spooler_main, h) != 0)
    return MDM_ERR_INTERNAL;
  h->has_spooler = 1;
  if(pthread_create(&h->sender, NULL, sender_main, h) != 0)
    return MDM_ERR_INTERNAL;
  h->has_sender = 1;
  return MDM_OK;
}

static void hec_stop(struct mdm_sink *s)
{
  struct hec_sink *h = (struct hec_sink *)s;
  if(h->has_spooler) {
    pthread_join(h->spooler, NULL);
    h->has_spooler = 0;
  }
  else {
    pthread_mutex_lock(&h->sl);
    h->is_spooler_done = 1;
    pthread_cond_broadcast(&h->sc);
    pthread_mutex_unlock(&h->sl);
  }
  if(h->has_sender) {
    pthread_join(h->sender, NULL);
    h->has_sender = 0;
  }
}

static void wipe_headers(struct curl_slist *l)
{
  for(; l; l = l->next)
    if(l->data)
      OPENSSL_cleanse(l->data, strlen(l->data));
}

static void hec_destroy(struct mdm_sink *s)
{
  struct hec_sink *h = (struct hec_sink *)s;
  char path[1200];
  hec_stop(s);
  if(h->curl)
    curl_easy_cleanup(h->curl);
  wipe_headers(h->headers);
  curl_slist_free_all(h->headers);
  if(h->active_fd >= 0) {
    close(h->active_fd);
    if(!h->active_len) {
      seg_path(h, h->active_seq, path, sizeof(path));
      unlink(path);  /* nothing in it */
    }
  }
  if(h->cursor_fd >= 0)
    close(h->cursor_fd);
  pthread_mutex_destroy(&h->sl);
  pthread_cond_destroy(&h->sc);
  mdm_sink_release(&h->base);
  free(h);
}

/* Read the token: a file only mdmd's user may read, one line. */
static mdm_rc read_token(const char *path, char **out)
{
  struct stat sb;
  char *tok = NULL;
  size_t len = 0, i;
  *out = NULL;
  if(stat(path, &sb) || mdm_file_read(path, 4096, &tok, &len)) {
    fprintf(stderr, "mdmd: cannot read the HEC token file '%s'\n", path);
    return MDM_ERR_IO;
  }
  if(sb.st_mode & 077) {
    fprintf(stderr, "mdmd: '%s' must not be readable by group or others "
                    "(chmod 600)\n", path);
    OPENSSL_cleanse(tok, len);
    free(tok);
    return MDM_ERR_FORBIDDEN;
  }
  while(len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' ||
                tok[len - 1] == ' '))
    tok[--len] = '\0';
  for(i = 0; i < len; i++)
    if((unsigned char)tok[i] <= ' ' || tok[i] == 0x7f)
      break;
  if(!len || i < len) {
    fprintf(stderr, "mdmd: '%s' does not hold a HEC token (one line, no "
                    "spaces)\n", path);
    OPENSSL_cleanse(tok, len);
    free(tok);
    return MDM_ERR_INVAL;
  }
  *out = tok;
  return MDM_OK;
}

static mdm_rc setup_curl(struct hec_sink *h, const char *token)
{
  struct mdm_buf auth;
  struct curl_slist *l;
  mdm_rc rc;
  mdm_buf_init(&auth, 8192);
  rc = mdm_buf_printf(&auth, "Authorization: Splunk %s", token);
  if(rc) {
    mdm_buf_release(&auth);
    return rc;
  }
  l = curl_slist_append(NULL, auth.data);
  OPENSSL_cleanse(auth.data, auth.len);
  mdm_buf_release(&auth);
  if(!l)
    return MDM_ERR_NOMEM;
  h->headers = l;
  if(!(l = curl_slist_append(h->headers, "Content-Type: application/json")))
    return MDM_ERR_NOMEM;
  if(!(l = curl_slist_append(h->headers, "Expect:")))
    return MDM_ERR_NOMEM;
  h->curl = curl_easy_init();
  if(!h->curl)
    return MDM_ERR_NOMEM;
  curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
  curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
  curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
  curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "mdmd/" MDM_VERSION);
  curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_answer);
  curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, h);
  if(h->ca_file[0])
    curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->ca_file);
  return MDM_OK;
}

mdm_rc mdm_sink_hec_new(const struct mdm_events_config *cfg,
                        const char *data_dir, const char *hostname,
                        struct mdm_sink **out)
{
  struct hec_sink *h = calloc(1, sizeof(*h));
  pthread_condattr_t ca;
  const char *path;
  char *token = NULL;
  mdm_rc rc;

  *out = NULL;
  if(!h)
    return MDM_ERR_NOMEM;
  h->active_fd = h->cursor_fd = -1;
  rc = mdm_sink_init(&h->base, "hec", (size_t)cfg->queue_max);
  if(rc) {
    free(h);
    return rc;
  }
  pthread_mutex_init(&h->sl, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->sc, &ca);
  pthread_condattr_destroy(&ca);
  h->base.start = hec_start;
  h->base.stop = hec_stop;
  h->base.destroy = hec_destroy;
  h->backoff_ms = BACKOFF_MIN_MS;
  h->batch = cfg->hec_batch;
  h->batch_ms = cfg->hec_batch_ms;
  h->spool_max = cfg->hec_spool_max;
  h->seg_max = h->spool_max / 8 < SEG_MAX ? h->spool_max / 8 : SEG_MAX;
  mdm_strlcpy(h->host, hostname, sizeof(h->host));
  mdm_strlcpy(h->index, cfg->hec_index, sizeof(h->index));
  mdm_strlcpy(h->sourcetype, cfg->hec_sourcetype, sizeof(h->sourcetype));
  mdm_strlcpy(h->ca_file, cfg->hec_ca_file, sizeof(h->ca_file));
  h->meta.host = h->host;
  h->meta.source = "mdmd";
  h->meta.index = h->index;
  h->meta.sourcetype = h->sourcetype;
  /* A URL without a path gets the collector's event endpoint. */
  path = strchr(strstr(cfg->hec_url, "://") + 3, '/');
  snprintf(h->url, sizeof(h->url), "%s%s", cfg->hec_url,
           !path || !strcmp(path, "/") ? (path ? "services/collector/event"
                                               : "/services/collector/event")
                                       : "");
  if(!cfg->hec_token_file[0]) {
    fprintf(stderr, "mdmd: --events-hec-url needs --events-hec-token-file\n");
    rc = MDM_ERR_INVAL;
    goto fail;
  }
  if(cfg->hec_ca_file[0] && access(cfg->hec_ca_file, R_OK)) {
    fprintf(stderr, "mdmd: cannot read the CA file '%s'\n", cfg->hec_ca_file);
    rc = MDM_ERR_IO;
    goto fail;
  }
  rc = read_token(cfg->hec_token_file, &token);
  if(!rc)
    rc = setup_curl(h, token);
  if(token) {
    OPENSSL_cleanse(token, strlen(token));
    free(token);
  }
  if(rc) {
    if(rc == MDM_ERR_NOMEM)
      fprintf(stderr, "mdmd: cannot set up the HEC client\n");
    goto fail;
  }
  snprintf(h->dir, sizeof(h->dir), "%s/events-spool/hec", data_dir);
  rc = spool_open(h);
  if(rc)
    goto fail;
  *out = &h->base;
  return MDM_OK;
fail:
  hec_destroy(&h->base);
  return rc;
}
