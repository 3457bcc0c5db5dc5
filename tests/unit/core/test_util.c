/*
 * test_util.c: unit tests for src/core/util.c and src/core/buf.c: base64url,
 * durations, RFC 3339 times, UUIDs, bounded buffers, integer parsing and
 * bounded file reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/buf.h"
#include "core/util.h"

/* ---- base64url -------------------------------------------------------- */

static void b64_expect(const void *p, size_t n, const char *want)
{
  char *s = NULL;
  unsigned char *back = NULL;
  size_t back_len = 0;
  assert_int_equal(mdm_b64url_encode(p, n, &s), MDM_OK);
  assert_string_equal(s, want);
  assert_int_equal(mdm_b64url_decode(s, strlen(s), &back, &back_len), MDM_OK);
  assert_int_equal(back_len, n);
  assert_memory_equal(back, p, n);
  free(s);
  free(back);
}

static void test_b64url_vectors(void **state)
{
  (void)state;
  /* RFC 4648 §10, without padding. */
  b64_expect("", 0, "");
  b64_expect("f", 1, "Zg");
  b64_expect("fo", 2, "Zm8");
  b64_expect("foo", 3, "Zm9v");
  b64_expect("foob", 4, "Zm9vYg");
  b64_expect("fooba", 5, "Zm9vYmE");
  b64_expect("foobar", 6, "Zm9vYmFy");
  /* The two characters that differ from base64: '+' → '-', '/' → '_'. */
  b64_expect("\xfb\xff", 2, "-_8");
  b64_expect("\xfb\xef\xbe", 3, "----");
  b64_expect("\xff\xff\xff", 3, "____");
  b64_expect("\0\0\0", 3, "AAAA");
}

static void test_b64url_all_lengths(void **state)
{
  unsigned char in[41];
  size_t n, i;
  (void)state;
  for(i = 0; i < sizeof(in); i++)
    in[i] = (unsigned char)(i * 37 + 0xf0);  /* covers 0x00..0xff edges */
  in[0] = 0xff;
  in[1] = 0x00;
  for(n = 0; n <= 40; n++) {
    char *s = NULL;
    unsigned char *back = NULL;
    size_t back_len = 12345, want = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    assert_int_equal(mdm_b64url_encode(in, n, &s), MDM_OK);
    assert_int_equal(strlen(s), want);
    assert_int_equal(strcspn(s, "+/="), want);
    assert_int_equal(mdm_b64url_decode(s, strlen(s), &back, &back_len),
                     MDM_OK);
    assert_int_equal(back_len, n);
    assert_memory_equal(back, in, n);
    assert_int_equal(back[n], '\0');   /* NUL-terminated for convenience */
    free(back);
    free(s);
  }
}

static void b64_bad(const char *s, size_t n)
{
  unsigned char *out = (unsigned char *)1;
  size_t out_len = 7;
  assert_int_equal(mdm_b64url_decode(s, n, &out, &out_len), MDM_ERR_INVAL);
  /* Outputs are left alone on failure. */
  assert_ptr_equal(out, (unsigned char *)1);
  assert_int_equal(out_len, 7);
}

static void test_b64url_invalid(void **state)
{
  unsigned char *out = NULL;
  size_t n = 0;
  (void)state;
  b64_bad("Zm9v+g", 6);     /* base64, not base64url */
  b64_bad("Zm9v/g", 6);
  b64_bad("Zm9v*g", 6);
  b64_bad("Zm 9v", 5);
  b64_bad("Zm9v\n", 5);
  b64_bad("Zm\0v", 4);      /* NUL inside the given length */
  b64_bad("Zm=9v", 5);      /* '=' anywhere but the end */
  b64_bad("Z", 1);          /* 1 mod 4 is never a whole byte */
  b64_bad("Zm9vY", 5);
  /* Padding is optional, but when present it must be right. */
  assert_int_equal(mdm_b64url_decode("Zg==", 4, &out, &n), MDM_OK);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 'f');
  free(out);
  assert_int_equal(mdm_b64url_decode("Zm8=", 4, &out, &n), MDM_OK);
  assert_int_equal(n, 2);
  free(out);
  b64_bad("Zg=", 3);
  b64_bad("Zg===", 5);
  b64_bad("Zm9v=", 5);
  b64_bad("Zm9v====", 8);
  b64_bad("=", 1);
  b64_bad("====", 4);
  /* Non-canonical: leftover bits must be zero, or two strings would decode
   * to the same bytes ("Zh" is "f" with a stray bit). */
  b64_bad("Zh", 2);
  b64_bad("Zm9", 3);
  b64_bad("-_9", 3);
  /* Only the first slen characters count. */
  assert_int_equal(mdm_b64url_decode("Zm9v*junk", 4, &out, &n), MDM_OK);
  assert_int_equal(n, 3);
  assert_memory_equal(out, "foo", 3);
  free(out);
}

/* ---- durations -------------------------------------------------------- */

static void dur_ok(const char *s, int64_t want)
{
  int64_t v = -1;
  assert_int_equal(mdm_duration_parse(s, &v), MDM_OK);
  assert_int_equal(v, want);
}

static void dur_bad(const char *s)
{
  int64_t v = -12345;
  if(mdm_duration_parse(s, &v) != MDM_ERR_INVAL)
    fail_msg("duration '%s' accepted", s ? s : "(null)");
  assert_int_equal(v, -12345);
}

static void test_duration(void **state)
{
  (void)state;
  dur_ok("90", 90);
  dur_ok("90s", 90);
  dur_ok("15m", 900);
  dur_ok("24h", 86400);
  dur_ok("7d", 604800);
  dur_ok("0", 0);
  dur_ok("0s", 0);
  dur_ok("1d", 86400);
  dur_bad(NULL);
  dur_bad("");
  dur_bad("-5");
  dur_bad("+5");
  dur_bad("-5m");
  dur_bad(" 5");
  dur_bad(" -5");       /* strtoll skips the space, then takes the sign */
  dur_bad("\t-5m");
  dur_bad("5 ");
  dur_bad("5 m");
  dur_bad("15x");
  dur_bad("15mm");
  dur_bad("15M");
  dur_bad("1.5h");
  dur_bad("1h30m");
  dur_bad("h");
  dur_bad("m5");
  dur_bad("0x10");
  dur_bad("99999999999999999999");       /* beyond 64 bits */
  dur_bad("999999999999999999d");        /* overflows when multiplied */
  dur_ok("9223372036854775807", INT64_MAX);
  dur_bad("9223372036854775807s0");
}

/* ---- RFC 3339 --------------------------------------------------------- */

static void test_time_format(void **state)
{
  char buf[64];
  (void)state;
  mdm_time_format(0, buf, sizeof(buf));
  assert_string_equal(buf, "1970-01-01T00:00:00Z");
  mdm_time_format(1700000000, buf, sizeof(buf));
  assert_string_equal(buf, "2023-11-14T22:13:20Z");
  mdm_time_format(951782400, buf, sizeof(buf));      /* a leap day */
  assert_string_equal(buf, "2000-02-29T00:00:00Z");
  mdm_time_format(1700000000, buf, 21);              /* exactly enough */
  assert_string_equal(buf, "2023-11-14T22:13:20Z");
  mdm_time_format_ms(1700000000123LL, buf, sizeof(buf));
  assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
  mdm_time_format_ms(5, buf, sizeof(buf));
  assert_string_equal(buf, "1970-01-01T00:00:00.005Z");
  mdm_time_format_ms(-1, buf, sizeof(buf));
  assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
  mdm_time_format_ms(-1000, buf, sizeof(buf));
  assert_string_equal(buf, "1969-12-31T23:59:59.000Z");
}

static void time_ok(const char *s, int64_t want)
{
  int64_t v = -1;
  if(mdm_time_parse(s, &v) != MDM_OK)
    fail_msg("time '%s' refused", s);
  assert_int_equal(v, want);
}

static void time_bad(const char *s)
{
  int64_t v = -12345;
  if(mdm_time_parse(s, &v) != MDM_ERR_INVAL)
    fail_msg("time '%s' accepted", s ? s : "(null)");
  assert_int_equal(v, -12345);
}

static void test_time_parse(void **state)
{
  int64_t t;
  char buf[64];
  (void)state;
  time_ok("1970-01-01T00:00:00Z", 0);
  time_ok("2023-11-14T22:13:20Z", 1700000000);
  time_ok("2023-11-14T22:13:20.123Z", 1700000000);
  time_ok("2023-11-14T22:13:20.1Z", 1700000000);
  time_ok("2000-02-29T00:00:00Z", 951782400);
  time_ok("2024-02-29T12:00:00Z", 1709208000);
  time_ok("2023-12-31T23:59:59Z", 1704067199);
  time_ok("1969-12-31T23:59:59Z", -1);
  /* What we format, we parse back. */
  for(t = -86400; t < 4102444800LL; t += 86400 * 97 + 3601) {
    int64_t back = 0;
    mdm_time_format(t, buf, sizeof(buf));
    assert_int_equal(mdm_time_parse(buf, &back), MDM_OK);
    assert_int_equal(back, t);
    mdm_time_format_ms(t * 1000 + 999, buf, sizeof(buf));
    assert_int_equal(mdm_time_parse(buf, &back), MDM_OK);
    assert_int_equal(back, t);
  }

  time_bad(NULL);
  time_bad("");
  time_bad("2023-11-14");
  time_bad("2023-11-14T22:13:20");          /* no zone */
  time_bad("2023-11-14T22:13:20z");
  time_bad("2023-11-14t22:13:20Z");
  time_bad("2023-11-14 22:13:20Z");
  time_bad("2023-11-14T22:13:20+00:00");    /* we speak UTC, "Z", only */
  time_bad("2023-11-14T22:13:20.Z");
  time_bad("2023-11-14T22:13:20.12a");
  time_bad("2023-11-14T22:13:20Z ");
  time_bad("2023-11-14T22:13:20Zjunk");
  time_bad(" 2023-11-14T22:13:20Z");
  time_bad("2023-1-14T22:13:20Z");          /* fixed widths */
  time_bad("2023-11-4T22:13:20Z");
  time_bad("2023-11-14T2:13:20Z");
  time_bad("2023-11-14T22:13:2Z");
  time_bad("23-11-14T22:13:20Z");
  time_bad("+2023-11-14T22:13:20Z");
  time_bad("2023-00-14T22:13:20Z");         /* out of range */
  time_bad("2023-13-14T22:13:20Z");
  time_bad("2023-11-00T22:13:20Z");
  time_bad("2023-11-31T22:13:20Z");
  time_bad("2023-02-29T00:00:00Z");         /* not a leap year */
  time_bad("2100-02-29T00:00:00Z");
  time_bad("2023-02-30T00:00:00Z");
  time_bad("2023-11-14T24:00:00Z");
  time_bad("2023-11-14T22:60:00Z");
  time_bad("2023-11-14T22:13:60Z");         /* no leap seconds */
  time_bad("2023-11-14T22:13:61Z");
}

/* ---- UUIDs ------------------------------------------------------------ */

static void test_uuid(void **state)
{
  char a[MDM_UUID_LEN + 1], b[MDM_UUID_LEN + 1];
  int i, j;
  (void)state;
  for(i = 0; i < 100; i++) {
    memset(a, 'x', sizeof(a));
    assert_int_equal(mdm_uuid_v4(a), MDM_OK);
    assert_int_equal(strlen(a), MDM_UUID_LEN);
    for(j = 0; j < MDM_UUID_LEN; j++) {
      if(j == 8 || j == 13 || j == 18 || j == 23)
        assert_int_equal(a[j], '-');
      else
        assert_non_null(strchr("0123456789abcdef", a[j]));
    }
    assert_int_equal(a[14], '4');                   /* version 4 */
    assert_non_null(strchr("89ab", a[19]));         /* RFC 4122 variant */
    assert_true(mdm_is_uuid(a));
  }
  assert_int_equal(mdm_uuid_v4(b), MDM_OK);
  assert_string_not_equal(a, b);

  assert_true(mdm_is_uuid("00000000-0000-0000-0000-000000000000"));
  assert_true(mdm_is_uuid("6F9619FF-8B86-D011-B42D-00CF4FC964FF"));
  assert_false(mdm_is_uuid(NULL));
  assert_false(mdm_is_uuid(""));
  assert_false(mdm_is_uuid("6f9619ff-8b86-d011-b42d-00cf4fc964f"));
  assert_false(mdm_is_uuid("6f9619ff-8b86-d011-b42d-00cf4fc964ff0"));
  assert_false(mdm_is_uuid("6f9619ff-8b86-d011-b42d-00cf4fc964fg"));
  assert_false(mdm_is_uuid("6f9619ff08b86-d011-b42d-00cf4fc964ff"));
  assert_false(mdm_is_uuid("6f9619f-f8b86-d011-b42d-00cf4fc964ff"));
  assert_false(mdm_is_uuid("{6f9619ff-8b86-d011-b42d-00cf4fc964f}"));
  assert_false(mdm_is_uuid("6f9619ff-8b86-d011-b42d-00cf4fc964f "));
}

/* ---- bounded buffers -------------------------------------------------- */

static void test_buf_bound(void **state)
{
  struct mdm_buf b;
  char *s;
  (void)state;
  mdm_buf_init(&b, 10);
  assert_int_equal(mdm_buf_puts(&b, "hello"), MDM_OK);
  assert_int_equal(mdm_buf_append(&b, "world", 5), MDM_OK);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "helloworld");
  /* One byte over: refused, and nothing changes. */
  assert_int_equal(mdm_buf_append(&b, "!", 1), MDM_ERR_TOOBIG);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "helloworld");
  assert_int_equal(mdm_buf_printf(&b, "%d", 1), MDM_ERR_TOOBIG);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "helloworld");
  assert_int_equal(mdm_buf_puts(&b, ""), MDM_OK);  /* zero bytes fit */
  assert_int_equal(mdm_buf_append(&b, "x", SIZE_MAX), MDM_ERR_TOOBIG);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "helloworld");
  mdm_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_int_equal(mdm_buf_printf(&b, "%s-%03d", "ab", 7), MDM_OK);
  assert_string_equal(b.data, "ab-007");
  assert_int_equal(mdm_buf_printf(&b, "%s", "abcde"), MDM_ERR_TOOBIG);
  assert_string_equal(b.data, "ab-007");
  assert_int_equal(mdm_buf_printf(&b, "%s", "abcd"), MDM_OK);
  assert_string_equal(b.data, "ab-007abcd");
  s = mdm_buf_steal(&b);
  assert_string_equal(s, "ab-007abcd");
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  free(s);
  /* A stolen empty buffer is "", not NULL. */
  s = mdm_buf_steal(&b);
  assert_non_null(s);
  assert_string_equal(s, "");
  free(s);
  mdm_buf_release(&b);

  /* A whole-size append into an empty buffer, and one byte too many. */
  mdm_buf_init(&b, 4);
  assert_int_equal(mdm_buf_append(&b, "abcde", 5), MDM_ERR_TOOBIG);
  assert_null(b.data);
  assert_int_equal(mdm_buf_append(&b, "abcd", 4), MDM_OK);
  assert_string_equal(b.data, "abcd");
  mdm_buf_release(&b);

  mdm_buf_init(&b, 0);
  assert_int_equal(mdm_buf_append(&b, "", 0), MDM_OK);
  assert_int_equal(mdm_buf_append(&b, "a", 1), MDM_ERR_TOOBIG);
  assert_string_equal(b.data, "");
  mdm_buf_release(&b);
}

static void test_buf_growth(void **state)
{
  struct mdm_buf b;
  char chunk[100];
  size_t i;
  (void)state;
  memset(chunk, 'q', sizeof(chunk));
  mdm_buf_init(&b, 100000);
  for(i = 0; i < 1000; i++)
    assert_int_equal(mdm_buf_append(&b, chunk, sizeof(chunk)), MDM_OK);
  assert_int_equal(b.len, 100000);
  assert_int_equal(b.data[b.len], '\0');
  assert_true(b.cap <= 100001);
  assert_int_equal(mdm_buf_append(&b, chunk, 1), MDM_ERR_TOOBIG);
  for(i = 0; i < b.len; i++)
    if(b.data[i] != 'q')
      fail_msg("byte %zu is %d", i, b.data[i]);
  mdm_buf_release(&b);

  /* "No bound" (SIZE_MAX) must still work and not overflow. */
  mdm_buf_init(&b, SIZE_MAX);
  assert_int_equal(mdm_buf_puts(&b, "unbounded"), MDM_OK);
  assert_string_equal(b.data, "unbounded");
  assert_int_equal(mdm_buf_printf(&b, " %d", 42), MDM_OK);
  assert_string_equal(b.data, "unbounded 42");
  assert_int_equal(mdm_buf_append(&b, "x", SIZE_MAX), MDM_ERR_TOOBIG);
  mdm_buf_release(&b);
}

/* ---- integers --------------------------------------------------------- */

static void int_bad(const char *s, long long min, long long max)
{
  long long v = -12345;
  if(mdm_parse_int(s, min, max, &v) != MDM_ERR_INVAL)
    fail_msg("int '%s' in [%lld, %lld] accepted", s ? s : "(null)", min, max);
  assert_int_equal(v, -12345);
}

static void test_parse_int(void **state)
{
  long long v = 0;
  (void)state;
  assert_int_equal(mdm_parse_int("0", 0, 10, &v), MDM_OK);
  assert_int_equal(v, 0);
  assert_int_equal(mdm_parse_int("10", 0, 10, &v), MDM_OK);   /* inclusive */
  assert_int_equal(v, 10);
  assert_int_equal(mdm_parse_int("-10", -10, 10, &v), MDM_OK);
  assert_int_equal(v, -10);
  assert_int_equal(mdm_parse_int("007", 0, 10, &v), MDM_OK);
  assert_int_equal(v, 7);
  assert_int_equal(mdm_parse_int("9223372036854775807", LLONG_MIN, LLONG_MAX,
                                 &v), MDM_OK);
  assert_true(v == LLONG_MAX);
  assert_int_equal(mdm_parse_int("-9223372036854775808", LLONG_MIN,
                                 LLONG_MAX, &v), MDM_OK);
  assert_true(v == LLONG_MIN);
  int_bad("11", 0, 10);
  int_bad("-1", 0, 10);
  int_bad("-11", -10, 10);
  int_bad("9223372036854775808", LLONG_MIN, LLONG_MAX);
  int_bad("-9223372036854775809", LLONG_MIN, LLONG_MAX);
  int_bad(NULL, 0, 10);
  int_bad("", 0, 10);
  int_bad("-", 0, 10);
  int_bad("a", 0, 10);
  int_bad("5a", 0, 10);
  int_bad("5 ", 0, 10);
  int_bad(" 5", 0, 10);
  int_bad("\n5", 0, 10);
  int_bad("0x5", 0, 10);
  int_bad("1e1", 0, 100);
  int_bad("5.0", 0, 10);
}

/* ---- files ------------------------------------------------------------ */

static char tmpdir[64];

static void write_file(const char *path, const void *p, size_t n)
{
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static void test_file_read(void **state)
{
  char path[128], sub[160];
  char *data = NULL, *big;
  size_t len = 0, i, big_len = 100000;
  (void)state;

  snprintf(tmpdir, sizeof(tmpdir), "/tmp/mdm-test-util-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  snprintf(path, sizeof(path), "%s/f", tmpdir);

  write_file(path, "0123456789", 10);
  assert_int_equal(mdm_file_read(path, 10, &data, &len), MDM_OK);
  assert_int_equal(len, 10);
  assert_string_equal(data, "0123456789");
  free(data);
  data = (char *)1;
  assert_int_equal(mdm_file_read(path, 9, &data, &len), MDM_ERR_TOOBIG);
  assert_ptr_equal(data, (char *)1);
  assert_int_equal(mdm_file_read(path, 0, &data, &len), MDM_ERR_TOOBIG);
  data = NULL;
  assert_int_equal(mdm_file_read(path, 100, &data, NULL), MDM_OK);
  assert_string_equal(data, "0123456789");
  free(data);

  write_file(path, "", 0);
  assert_int_equal(mdm_file_read(path, 0, &data, &len), MDM_OK);
  assert_int_equal(len, 0);
  assert_string_equal(data, "");
  free(data);

  /* Several growth steps; the bound exactly, one under, and "no bound". */
  big = malloc(big_len);
  assert_non_null(big);
  for(i = 0; i < big_len; i++)
    big[i] = (char)('a' + i % 26);
  write_file(path, big, big_len);
  assert_int_equal(mdm_file_read(path, big_len, &data, &len), MDM_OK);
  assert_int_equal(len, big_len);
  assert_memory_equal(data, big, big_len);
  assert_int_equal(data[len], '\0');
  free(data);
  assert_int_equal(mdm_file_read(path, big_len - 1, &data, &len),
                   MDM_ERR_TOOBIG);
  assert_int_equal(mdm_file_read(path, SIZE_MAX, &data, &len), MDM_OK);
  assert_int_equal(len, big_len);
  assert_memory_equal(data, big, big_len);
  free(data);
  free(big);

  snprintf(sub, sizeof(sub), "%s/missing", tmpdir);
  assert_int_equal(mdm_file_read(sub, 10, &data, &len), MDM_ERR_NOTFOUND);
  snprintf(sub, sizeof(sub), "%s/f/below-a-file", tmpdir);
  assert_int_equal(mdm_file_read(sub, 10, &data, &len), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_file_read(tmpdir, 10, &data, &len), MDM_ERR_IO);

  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(tmpdir), 0);
}

static void test_file_write_and_mkdirs(void **state)
{
  char dir[128], path[160];
  char *data = NULL;
  size_t len = 0;
  struct stat st;
  (void)state;

  snprintf(tmpdir, sizeof(tmpdir), "/tmp/mdm-test-util-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  snprintf(dir, sizeof(dir), "%s/a/b/c", tmpdir);
  assert_int_equal(mdm_mkdirs(dir, 0700), MDM_OK);
  assert_int_equal(mdm_mkdirs(dir, 0700), MDM_OK);   /* already there */
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(mdm_mkdirs("", 0700), MDM_ERR_INVAL);

  snprintf(path, sizeof(path), "%s/secret", dir);
  assert_int_equal(mdm_file_write_atomic(path, "s3cret", 6, 0600), MDM_OK);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(mdm_file_read(path, 64, &data, &len), MDM_OK);
  assert_string_equal(data, "s3cret");
  free(data);
  assert_int_equal(mdm_file_write_atomic(path, "new", 3, 0600), MDM_OK);
  assert_int_equal(mdm_file_read(path, 64, &data, &len), MDM_OK);
  assert_string_equal(data, "new");
  free(data);

  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(dir), 0);
  snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
  assert_int_equal(rmdir(dir), 0);
  snprintf(dir, sizeof(dir), "%s/a", tmpdir);
  assert_int_equal(rmdir(dir), 0);
  assert_int_equal(rmdir(tmpdir), 0);
}

/* ---- small things ----------------------------------------------------- */

static void test_hex_sha256_strlcpy(void **state)
{
  char out[65], small[4];
  (void)state;
  mdm_hex("\x00\x7f\xff", 3, out);
  assert_string_equal(out, "007fff");
  mdm_sha256_hex("abc", 3, out);
  assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
                           "b00361a396177a9cb410ff61f20015ad");
  mdm_sha256_hex("", 0, out);
  assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
                           "27ae41e4649b934ca495991b7852b855");
  assert_int_equal(mdm_strlcpy(small, "abc", sizeof(small)), MDM_OK);
  assert_string_equal(small, "abc");
  assert_int_equal(mdm_strlcpy(small, "abcd", sizeof(small)), MDM_ERR_TOOBIG);
  assert_string_equal(small, "abc");
  assert_int_equal(mdm_strlcpy(small, "", sizeof(small)), MDM_OK);
  assert_string_equal(small, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_b64url_vectors),
    cmocka_unit_test(test_b64url_all_lengths),
    cmocka_unit_test(test_b64url_invalid),
    cmocka_unit_test(test_duration),
    cmocka_unit_test(test_time_format),
    cmocka_unit_test(test_time_parse),
    cmocka_unit_test(test_uuid),
    cmocka_unit_test(test_buf_bound),
    cmocka_unit_test(test_buf_growth),
    cmocka_unit_test(test_parse_int),
    cmocka_unit_test(test_file_read),
    cmocka_unit_test(test_file_write_and_mkdirs),
    cmocka_unit_test(test_hex_sha256_strlcpy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
