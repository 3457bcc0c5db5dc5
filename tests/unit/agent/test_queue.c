/*
 * test_queue.c: unit tests for src/agent/queue.c, the on-disk telemetry
 * queue: push/peek/ack, persistence across close and open, the bound and its
 * dropped counter, seq never reused, torn and damaged journal lines, bad
 * acknowledgements, oversize events, compaction and locking.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent/queue.h"
#include "core/util.h"

#define T0 1764338400123LL   /* 2025-11-28T14:00:00.123Z */

/* ---- fixtures ---------------------------------------------------------------- */

struct fx {
  char dir[64];
  char journal[128];
  char meta[128];
};

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-test-queue-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->journal, sizeof(f->journal), "%s/journal.jsonl", f->dir);
  snprintf(f->meta, sizeof(f->meta), "%s/meta.json", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static struct mdm_queue *qopen(struct fx *f, size_t max)
{
  struct mdm_queue *q = NULL;
  assert_int_equal(mdm_queue_open(f->dir, max, &q), MDM_OK);
  assert_non_null(q);
  return q;
}

static uint64_t push_n(struct mdm_queue *q, const char *type, int i)
{
  json_t *d = json_pack("{s:i}", "i", i);
  uint64_t seq = 0;
  assert_int_equal(mdm_queue_push(q, type, d, T0 + i, &seq), MDM_OK);
  json_decref(d);
  return seq;
}

/* Peek everything and check the seqs are exactly from..to. */
static void expect_seqs(struct mdm_queue *q, uint64_t from, uint64_t to)
{
  json_t *ev = NULL;
  uint64_t last = 99999, s;
  size_t i = 0;
  assert_int_equal(mdm_queue_peek(q, 100000, SIZE_MAX, &ev, &last), MDM_OK);
  if(from > to) {
    assert_int_equal(json_array_size(ev), 0);
    assert_int_equal(last, 0);
  }
  else {
    assert_int_equal(json_array_size(ev), to - from + 1);
    for(s = from; s <= to; s++, i++) {
      json_t *e = json_array_get(ev, i);
      assert_int_equal(json_integer_value(json_object_get(e, "seq")), s);
    }
    assert_int_equal(last, to);
  }
  json_decref(ev);
}

static off_t file_size(const char *p)
{
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return st.st_size;
}

static void append_raw(const char *path, const char *s)
{
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
  close(fd);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_push_peek_ack(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  json_t *ev = NULL, *e;
  uint64_t last = 0;

  assert_int_equal(mdm_queue_count(q), 0);
  assert_int_equal(mdm_queue_next_seq(q), 1);
  assert_int_equal(push_n(q, "agent_started", 1), 1);
  assert_int_equal(push_n(q, "fact_changed", 2), 2);
  assert_int_equal(push_n(q, "error", 3), 3);
  assert_int_equal(mdm_queue_count(q), 3);

  assert_int_equal(mdm_queue_peek(q, 2, SIZE_MAX, &ev, &last), MDM_OK);
  assert_int_equal(json_array_size(ev), 2);
  assert_int_equal(last, 2);
  e = json_array_get(ev, 0);
  assert_int_equal(json_integer_value(json_object_get(e, "seq")), 1);
  assert_string_equal(json_string_value(json_object_get(e, "type")),
                      "agent_started");
  assert_string_equal(json_string_value(json_object_get(e, "at")),
                      "2025-11-28T14:00:00.124Z");
  assert_int_equal(json_integer_value(
                     json_object_get(json_object_get(e, "data"), "i")), 1);
  json_decref(ev);
  /* Peeking removes nothing. */
  assert_int_equal(mdm_queue_count(q), 3);

  assert_int_equal(mdm_queue_ack(q, 2, 0), MDM_OK);
  assert_int_equal(mdm_queue_count(q), 1);
  expect_seqs(q, 3, 3);
  assert_int_equal(mdm_queue_ack(q, 3, 0), MDM_OK);
  assert_int_equal(mdm_queue_count(q), 0);
  expect_seqs(q, 1, 0);
  mdm_queue_free(q);
}

static void test_null_data_is_object(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10);
  json_t *ev = NULL;
  uint64_t last;
  assert_int_equal(mdm_queue_push(q, "agent_stopped", NULL, T0, NULL), MDM_OK);
  assert_int_equal(mdm_queue_peek(q, 10, SIZE_MAX, &ev, &last), MDM_OK);
  assert_true(json_is_object(json_object_get(json_array_get(ev, 0), "data")));
  assert_int_equal(json_object_size(json_object_get(json_array_get(ev, 0),
                                                    "data")), 0);
  json_decref(ev);
  mdm_queue_free(q);
}

static void test_persist_across_reopen(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  int i;
  for(i = 1; i <= 5; i++)
    push_n(q, "error", i);
  assert_int_equal(mdm_queue_ack(q, 2, 0), MDM_OK);
  mdm_queue_free(q);

  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 3);
  assert_int_equal(mdm_queue_next_seq(q), 6);
  expect_seqs(q, 3, 5);
  mdm_queue_free(q);
}

static void test_bound_drops_oldest(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 3);
  json_t *ev = NULL;
  uint64_t last = 0;
  int i;

  for(i = 1; i <= 5; i++)
    push_n(q, "error", i);
  assert_int_equal(mdm_queue_count(q), 3);
  assert_int_equal(mdm_queue_dropped(q), 2);
  expect_seqs(q, 3, 5);

  /* The counter survives a restart. */
  mdm_queue_free(q);
  q = qopen(f, 3);
  assert_int_equal(mdm_queue_dropped(q), 2);
  expect_seqs(q, 3, 5);

  /* A batch carries dropped = 2; meanwhile one more is dropped. */
  assert_int_equal(mdm_queue_peek(q, 2, SIZE_MAX, &ev, &last), MDM_OK);
  json_decref(ev);
  assert_int_equal(last, 4);
  push_n(q, "error", 6);   /* drops seq 3, which is in the batch */
  assert_int_equal(mdm_queue_dropped(q), 3);
  assert_int_equal(mdm_queue_ack(q, last, 2), MDM_OK);
  /* Only what the batch reported is reset. */
  assert_int_equal(mdm_queue_dropped(q), 1);
  expect_seqs(q, 5, 6);
  mdm_queue_free(q);

  q = qopen(f, 3);
  assert_int_equal(mdm_queue_dropped(q), 1);
  assert_int_equal(mdm_queue_ack(q, 6, 1), MDM_OK);
  assert_int_equal(mdm_queue_dropped(q), 0);
  assert_int_equal(mdm_queue_count(q), 0);
  mdm_queue_free(q);
}

static void test_full_queue_long_outage(void **state)
{
  /* An outage much longer than the bound: the newest max events stay, and
   * the counter says exactly how many went. */
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 50);
  int i;
  for(i = 1; i <= 1000; i++)
    push_n(q, "fact_changed", i);
  assert_int_equal(mdm_queue_count(q), 50);
  assert_int_equal(mdm_queue_dropped(q), 950);
  expect_seqs(q, 951, 1000);
  /* Compaction keeps the journal near the live size. */
  assert_true(file_size(f->journal) < 64 * 1024 * 3);
  mdm_queue_free(q);
  q = qopen(f, 50);
  assert_int_equal(mdm_queue_count(q), 50);
  assert_int_equal(mdm_queue_dropped(q), 950);
  expect_seqs(q, 951, 1000);
  mdm_queue_free(q);
}

static void test_lower_bound_on_reopen(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10);
  int i;
  for(i = 1; i <= 10; i++)
    push_n(q, "error", i);
  mdm_queue_free(q);
  q = qopen(f, 4);
  assert_int_equal(mdm_queue_count(q), 4);
  assert_int_equal(mdm_queue_dropped(q), 6);
  expect_seqs(q, 7, 10);
  mdm_queue_free(q);
}

static void test_seq_monotonic_after_ack_all(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  int i;
  for(i = 1; i <= 3; i++)
    push_n(q, "error", i);
  assert_int_equal(mdm_queue_ack(q, 3, 0), MDM_OK);
  /* Everything acknowledged: the journal is emptied... */
  assert_int_equal(file_size(f->journal), 0);
  mdm_queue_free(q);
  /* ...and still the seq goes on. */
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 0);
  assert_int_equal(mdm_queue_next_seq(q), 4);
  assert_int_equal(push_n(q, "error", 4), 4);
  mdm_queue_free(q);
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_next_seq(q), 5);
  expect_seqs(q, 4, 4);
  mdm_queue_free(q);
}

static void test_seq_from_journal_when_meta_lags(void **state)
{
  /* A crash after the append and before any meta write: the journal knows
   * better than meta.json. */
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  const char *stale = "{\"version\":1,\"first_seq\":1,\"next_seq\":1,"
                      "\"dropped\":0}\n";
  int i;
  for(i = 1; i <= 3; i++)
    push_n(q, "error", i);
  mdm_queue_free(q);
  assert_int_equal(mdm_file_write_atomic(f->meta, stale, strlen(stale), 0600),
                   MDM_OK);
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_next_seq(q), 4);
  expect_seqs(q, 1, 3);
  mdm_queue_free(q);
}

static void test_damaged_meta_rebuilt(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  int i;
  for(i = 1; i <= 3; i++)
    push_n(q, "error", i);
  mdm_queue_free(q);
  assert_int_equal(mdm_file_write_atomic(f->meta, "{\"first_seq\":", 13, 0600),
                   MDM_OK);
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 3);
  assert_int_equal(mdm_queue_next_seq(q), 4);
  mdm_queue_free(q);
  /* Meta gone altogether: same. */
  assert_int_equal(unlink(f->meta), 0);
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 3);
  assert_int_equal(mdm_queue_next_seq(q), 4);
  mdm_queue_free(q);
}

static void test_torn_tail_line(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  off_t good;
  push_n(q, "error", 1);
  push_n(q, "error", 2);
  mdm_queue_free(q);
  good = file_size(f->journal);
  append_raw(f->journal, "{\"seq\":3,\"at\":\"2025-11-28T1");

  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 2);
  assert_int_equal(file_size(f->journal), good);   /* cut off */
  /* The torn event never counted: seq 3 is handed out now. */
  assert_int_equal(push_n(q, "error", 3), 3);
  mdm_queue_free(q);

  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 3);
  expect_seqs(q, 1, 3);
  mdm_queue_free(q);
}

static void test_torn_tail_complete_json(void **state)
{
  /* The last line is whole JSON but its '\n' never made it: still torn. */
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  push_n(q, "error", 1);
  mdm_queue_free(q);
  append_raw(f->journal, "{\"seq\":2,\"at\":\"2025-11-28T14:00:00Z\","
                         "\"type\":\"error\",\"data\":{}}");
  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 1);
  assert_int_equal(push_n(q, "error", 2), 2);
  expect_seqs(q, 1, 2);
  mdm_queue_free(q);
}

static void test_damaged_lines_skipped(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  char big[MDM_QUEUE_MAX_EVENT + 100];
  push_n(q, "error", 1);
  mdm_queue_free(q);
  append_raw(f->journal, "not json\n");
  append_raw(f->journal, "[1,2]\n");
  append_raw(f->journal, "{\"seq\":\"x\",\"at\":\"a\",\"type\":\"t\",\"data\":1}\n");
  append_raw(f->journal, "\n");
  /* A repeated (non-increasing) seq. */
  append_raw(f->journal, "{\"seq\":1,\"at\":\"a\",\"type\":\"t\",\"data\":1}\n");
  memset(big, 'x', sizeof(big) - 2);
  big[sizeof(big) - 2] = '\n';
  big[sizeof(big) - 1] = '\0';
  append_raw(f->journal, big);
  append_raw(f->journal, "{\"seq\":7,\"at\":\"a\",\"type\":\"t\",\"data\":1}\n");

  q = qopen(f, 100);
  assert_int_equal(mdm_queue_count(q), 2);
  assert_int_equal(mdm_queue_next_seq(q), 8);
  {
    json_t *ev = NULL;
    uint64_t last;
    assert_int_equal(mdm_queue_peek(q, 10, SIZE_MAX, &ev, &last), MDM_OK);
    assert_int_equal(json_array_size(ev), 2);
    assert_int_equal(json_integer_value(
                       json_object_get(json_array_get(ev, 1), "seq")), 7);
    assert_int_equal(last, 7);
    json_decref(ev);
  }
  mdm_queue_free(q);
}

static void test_ack_out_of_range(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 2);
  int i;
  for(i = 1; i <= 3; i++)
    push_n(q, "error", i);   /* seq 1 dropped */
  assert_int_equal(mdm_queue_dropped(q), 1);
  /* Never handed out. */
  assert_int_equal(mdm_queue_ack(q, 4, 0), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_ack(q, UINT64_MAX, 0), MDM_ERR_INVAL);
  /* More dropped than counted. */
  assert_int_equal(mdm_queue_ack(q, 2, 2), MDM_ERR_INVAL);
  /* Nothing changed. */
  assert_int_equal(mdm_queue_count(q), 2);
  assert_int_equal(mdm_queue_dropped(q), 1);
  expect_seqs(q, 2, 3);
  /* Already gone (dropped) or nothing: fine, no change. */
  assert_int_equal(mdm_queue_ack(q, 1, 0), MDM_OK);
  assert_int_equal(mdm_queue_ack(q, 0, 0), MDM_OK);
  assert_int_equal(mdm_queue_count(q), 2);
  /* Acknowledging twice is harmless. */
  assert_int_equal(mdm_queue_ack(q, 2, 1), MDM_OK);
  assert_int_equal(mdm_queue_ack(q, 2, 0), MDM_OK);
  assert_int_equal(mdm_queue_count(q), 1);
  assert_int_equal(mdm_queue_dropped(q), 0);
  expect_seqs(q, 3, 3);
  mdm_queue_free(q);
}

static void test_oversize_event_truncated(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10);
  size_t n = 20000;
  char *s = malloc(n + 1);
  json_t *d, *ev = NULL, *data;
  uint64_t last;

  memset(s, 'a', n);
  s[n] = '\0';
  /* A multi-byte character right at the cut. */
  memcpy(s + 1023, "\xc3\xa9", 2);
  d = json_pack("{s:s, s:s, s:s}", "fact", "os.name", "old", s, "new", s);
  assert_int_equal(mdm_queue_push(q, "fact_changed", d, T0, NULL), MDM_OK);
  json_decref(d);
  d = json_pack("{s:s}", "message", s);
  assert_int_equal(mdm_queue_push(q, "error", d, T0, NULL), MDM_OK);
  json_decref(d);
  free(s);

  assert_int_equal(mdm_queue_peek(q, 10, SIZE_MAX, &ev, &last), MDM_OK);
  assert_int_equal(json_array_size(ev), 2);
  data = json_object_get(json_array_get(ev, 0), "data");
  assert_true(json_is_true(json_object_get(data, "truncated")));
  assert_true(json_integer_value(json_object_get(data, "original_size")) >
              40000);
  assert_string_equal(json_string_value(json_object_get(data, "fact")),
                      "os.name");
  assert_null(json_object_get(data, "old"));
  data = json_object_get(json_array_get(ev, 1), "data");
  assert_true(json_is_true(json_object_get(data, "truncated")));
  /* Cut before the 2-byte character, not through it. */
  assert_int_equal(json_string_length(json_object_get(data, "message")), 1023);
  json_decref(ev);
  mdm_queue_free(q);
}

static void test_event_size_limit_exact(void **state)
{
  /* An event just under the limit is kept whole. */
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10);
  char s[7000];
  json_t *d, *ev = NULL;
  uint64_t last;
  memset(s, 'b', sizeof(s) - 1);
  s[sizeof(s) - 1] = '\0';
  d = json_pack("{s:s}", "message", s);
  assert_int_equal(mdm_queue_push(q, "error", d, T0, NULL), MDM_OK);
  json_decref(d);
  assert_int_equal(mdm_queue_peek(q, 10, SIZE_MAX, &ev, &last), MDM_OK);
  assert_int_equal(json_string_length(json_object_get(
      json_object_get(json_array_get(ev, 0), "data"), "message")),
    sizeof(s) - 1);
  json_decref(ev);
  mdm_queue_free(q);
}

static void test_bad_type(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10);
  char longtype[MDM_QUEUE_MAX_TYPE + 2];
  memset(longtype, 't', sizeof(longtype) - 1);
  longtype[sizeof(longtype) - 1] = '\0';
  assert_int_equal(mdm_queue_push(q, "", NULL, T0, NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_push(q, NULL, NULL, T0, NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_push(q, longtype, NULL, T0, NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_push(q, "a\nb", NULL, T0, NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_count(q), 0);
  assert_int_equal(mdm_queue_next_seq(q), 1);
  mdm_queue_free(q);
}

static void test_peek_bounds(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 100);
  char s[1000];
  json_t *d, *ev = NULL;
  uint64_t last = 0;
  int i;
  memset(s, 'c', sizeof(s) - 1);
  s[sizeof(s) - 1] = '\0';
  d = json_pack("{s:s}", "message", s);
  for(i = 0; i < 5; i++)
    assert_int_equal(mdm_queue_push(q, "error", d, T0, NULL), MDM_OK);
  json_decref(d);

  assert_int_equal(mdm_queue_peek(q, 100, 2500, &ev, &last), MDM_OK);
  assert_int_equal(json_array_size(ev), 2);
  assert_int_equal(last, 2);
  json_decref(ev);
  /* At least one event, however small the byte bound. */
  assert_int_equal(mdm_queue_peek(q, 100, 10, &ev, &last), MDM_OK);
  assert_int_equal(json_array_size(ev), 1);
  assert_int_equal(last, 1);
  json_decref(ev);
  assert_int_equal(mdm_queue_peek(q, 3, SIZE_MAX, &ev, &last), MDM_OK);
  assert_int_equal(json_array_size(ev), 3);
  assert_int_equal(last, 3);
  json_decref(ev);
  mdm_queue_free(q);
}

static void test_compaction_keeps_order(void **state)
{
  /* Push and acknowledge in waves: the journal is compacted along the way
   * and what is live stays intact and in order. */
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 1000);
  char s[600];
  json_t *d;
  uint64_t acked = 0;
  int wave, i;
  memset(s, 'd', sizeof(s) - 1);
  s[sizeof(s) - 1] = '\0';
  d = json_pack("{s:s}", "message", s);
  for(wave = 0; wave < 40; wave++) {
    for(i = 0; i < 20; i++)
      assert_int_equal(mdm_queue_push(q, "error", d, T0, NULL), MDM_OK);
    acked += 15;
    assert_int_equal(mdm_queue_ack(q, acked, 0), MDM_OK);
  }
  json_decref(d);
  assert_int_equal(mdm_queue_count(q), 200);
  expect_seqs(q, acked + 1, 800);
  /* Dead lines never outweigh live ones by much. */
  assert_true(file_size(f->journal) < 2 * 200 * 700 + 64 * 1024);
  mdm_queue_free(q);
  q = qopen(f, 1000);
  expect_seqs(q, acked + 1, 800);
  assert_int_equal(mdm_queue_next_seq(q), 801);
  mdm_queue_free(q);
}

static void test_busy_when_open_twice(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = qopen(f, 10), *q2 = NULL;
  assert_int_equal(mdm_queue_open(f->dir, 10, &q2), MDM_ERR_BUSY);
  assert_null(q2);
  mdm_queue_free(q);
  q = qopen(f, 10);   /* released by close */
  mdm_queue_free(q);
}

static void test_open_bad_args(void **state)
{
  struct fx *f = *state;
  struct mdm_queue *q = NULL;
  assert_int_equal(mdm_queue_open(f->dir, 0, &q), MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_open(f->dir, MDM_QUEUE_LIMIT_MAX + 1, &q),
                   MDM_ERR_INVAL);
  assert_int_equal(mdm_queue_open("", 10, &q), MDM_ERR_INVAL);
  assert_null(q);
}

static void test_creates_dir_private(void **state)
{
  struct fx *f = *state;
  char sub[128];
  struct mdm_queue *q = NULL;
  struct stat st;
  snprintf(sub, sizeof(sub), "%s/a/queue", f->dir);
  assert_int_equal(mdm_queue_open(sub, 10, &q), MDM_OK);
  push_n(q, "error", 1);
  mdm_queue_free(q);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  snprintf(sub, sizeof(sub), "%s/a/queue/journal.jsonl", f->dir);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_push_peek_ack, setup, teardown),
    cmocka_unit_test_setup_teardown(test_null_data_is_object, setup, teardown),
    cmocka_unit_test_setup_teardown(test_persist_across_reopen, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_bound_drops_oldest, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_queue_long_outage, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_lower_bound_on_reopen, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_seq_monotonic_after_ack_all, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_seq_from_journal_when_meta_lags,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_meta_rebuilt, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_tail_line, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_tail_complete_json, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_damaged_lines_skipped, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_ack_out_of_range, setup, teardown),
    cmocka_unit_test_setup_teardown(test_oversize_event_truncated, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_event_size_limit_exact, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_bad_type, setup, teardown),
    cmocka_unit_test_setup_teardown(test_peek_bounds, setup, teardown),
    cmocka_unit_test_setup_teardown(test_compaction_keeps_order, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_busy_when_open_twice, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_bad_args, setup, teardown),
    cmocka_unit_test_setup_teardown(test_creates_dir_private, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
