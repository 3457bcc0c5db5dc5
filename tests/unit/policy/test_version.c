/*
 * test_version.c: unit tests for src/policy/version.c: the ordering of
 * version strings that version_ge/version_lt rules rely on, on a table of
 * pairs with the exact expected order, its symmetry, a sorted chain that
 * must stay sorted (transitivity), and what is not a version.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "policy/version.h"

struct vcase {
  const char *a;
  const char *b;
  int want;   /* -1, 0, 1 */
};

static const struct vcase cases[] = {
  /* plain numbers, numerically */
  {"9", "10", -1},
  {"10", "10.0.1", -1},
  {"10.0.1", "13", -1},
  {"9", "13", -1},
  {"2", "10", -1},
  {"13", "13", 0},
  {"100", "99", 1},
  /* missing trailing numbers are 0 */
  {"13", "13.0", 0},
  {"13.0", "13.0.0", 0},
  {"13", "13.0.0", 0},
  {"13.0.0", "13.0.1", -1},
  {"13.1", "13.0.9", 1},
  {"12", "13.0", -1},
  {"14", "13.0", 1},
  /* Ubuntu and Debian */
  {"22.04", "22.10", -1},
  {"22.04.4", "22.04", 1},
  {"22.04.4", "22.10", -1},
  {"20.04", "22.04", -1},
  {"11", "12", -1},
  /* leading zeros are ignored */
  {"1.01", "1.1", 0},
  {"1.010", "1.9", 1},
  {"007", "7", 0},
  {"1.002.3", "1.2.3", 0},
  {"0.0", "0", 0},
  {"00000000000000000000000000001", "1", 0},
  /* numbers longer than any integer type */
  {"123456789012345678901234567890", "123456789012345678901234567891", -1},
  {"99999999999999999999", "100000000000000000000", -1},
  /* pre-releases sort before the release */
  {"1.2.3-rc1", "1.2.3", -1},
  {"1.2.3-rc1", "1.2.3-rc2", -1},
  {"1.2.3-rc2", "1.2.3-rc10", -1},
  {"1.2.3-alpha", "1.2.3-beta", -1},
  {"1.2.3-beta", "1.2.3-rc1", -1},
  {"1.2.3-rc1", "1.2.2", 1},
  {"2.0.0-beta.2", "2.0.0-beta.11", -1},
  {"1.0~beta", "1.0", -1},
  {"1.0~beta", "1.0~beta1", -1},
  {"1.0~rc1", "1.0-1", -1},
  {"13.0-rc1", "13", -1},
  {"2.0-rc1", "2.0-1", -1},
  /* kernel releases */
  {"6.1.0-26-amd64", "6.1.0-27-amd64", -1},
  {"5.15.0-105-generic", "6.1.0-26-amd64", -1},
  {"5.15.0-105-generic", "5.15.0-91-generic", 1},
  {"6.1.0-26-amd64", "6.1.0-26", 1},
  {"6.1.0-26-amd64", "6.1.0", 1},
  {"6.1.0-26-amd64", "6.1", 1},
  {"6.1.0-26-amd64", "6.1.1", -1},
  {"6.1.0-26-amd64", "6.1.0-26-amd64", 0},
  {"6.5.0-1018-azure", "6.5.0-1018-aws", 1},
  /* trailing words are later releases */
  {"1.1.1w", "1.1.1", 1},
  {"1.1.1a", "1.1.1w", -1},
  {"1.1.1w", "1.1.2", -1},
  {"1.0a", "1.0.1", 1},
  {"1.0+build5", "1.0", 1},
  /* separators are interchangeable */
  {"1.2", "1-2", 0},
  {"1_2_3", "1.2.3", 0},
  {"13.", "13", 0},
  {"1..2", "1.2", 0},
};

static void test_version_table(void **state)
{
  size_t i;
  int is_ok, c;
  (void)state;
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    is_ok = -1;
    c = mdm_version_cmp(cases[i].a, cases[i].b, &is_ok);
    if(((c > 0) - (c < 0)) != cases[i].want || is_ok != 1)
      fail_msg("cmp(\"%s\", \"%s\") = %d (is_ok %d), want %d", cases[i].a,
               cases[i].b, c, is_ok, cases[i].want);
    c = mdm_version_cmp(cases[i].b, cases[i].a, &is_ok);
    if(((c > 0) - (c < 0)) != -cases[i].want || is_ok != 1)
      fail_msg("cmp(\"%s\", \"%s\") = %d, want %d", cases[i].b, cases[i].a,
               c, -cases[i].want);
  }
  assert_true(sizeof(cases) / sizeof(cases[0]) >= 30);
}

/* Every string in the table against every other: cmp(a, b) == -cmp(b, a)
 * in sign, and cmp(a, a) == 0. */
static void test_version_symmetry(void **state)
{
  const char *all[2 * sizeof(cases) / sizeof(cases[0])];
  size_t n = 0, i, j;
  int ab, ba, is_ok;
  (void)state;
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    all[n++] = cases[i].a;
    all[n++] = cases[i].b;
  }
  for(i = 0; i < n; i++) {
    assert_int_equal(mdm_version_cmp(all[i], all[i], &is_ok), 0);
    assert_int_equal(is_ok, 1);
    for(j = 0; j < n; j++) {
      ab = mdm_version_cmp(all[i], all[j], NULL);
      ba = mdm_version_cmp(all[j], all[i], NULL);
      if(((ab > 0) - (ab < 0)) != -((ba > 0) - (ba < 0)))
        fail_msg("cmp(\"%s\", \"%s\") = %d but reverse = %d", all[i],
                 all[j], ab, ba);
    }
  }
}

/* A chain in increasing order: every earlier one is older than every later
 * one, which also checks transitivity along it. */
static void test_version_chain(void **state)
{
  static const char *chain[] = {
    "1.0~alpha", "1.0~beta", "1.0~beta1", "1.0-rc1", "1.0-rc2", "1.0",
    "1.0-1", "1.0a", "1.1", "5.15.0-91-generic",
    "5.15.0-105-generic", "6.1.0-26", "6.1.0-26-amd64", "6.1.0-27-amd64",
    "9", "10", "10.0.1", "12", "13", "13.1", "22.04", "22.04.4", "22.10",
  };
  size_t n = sizeof(chain) / sizeof(chain[0]), i, j;
  int c;
  (void)state;
  for(i = 0; i < n; i++) {
    for(j = 0; j < n; j++) {
      c = mdm_version_cmp(chain[i], chain[j], NULL);
      c = (c > 0) - (c < 0);
      if(c != (i > j) - (i < j))
        fail_msg("cmp(\"%s\", \"%s\") = %d, want %d", chain[i], chain[j], c,
                 (i > j) - (i < j));
    }
  }
}

static void test_version_not_ok(void **state)
{
  static const char *bad[] = {
    "", "abc", "v13", ".5", "-1", "~1", " 13", "13 ", "13 (bookworm)",
    "1.2#3", "1,2", "\xc3\xa9" "1", "1\xc3\xa9", "+", "x.1", "1/2",
  };
  size_t i;
  int is_ok;
  (void)state;
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    is_ok = -1;
    assert_int_equal(mdm_version_cmp(bad[i], "13", &is_ok), 0);
    if(is_ok != 0)
      fail_msg("\"%s\" taken as a version", bad[i]);
    is_ok = -1;
    assert_int_equal(mdm_version_cmp("13", bad[i], &is_ok), 0);
    assert_int_equal(is_ok, 0);
    is_ok = -1;
    assert_int_equal(mdm_version_cmp(bad[i], bad[i], &is_ok), 0);
    assert_int_equal(is_ok, 0);
  }
  is_ok = -1;
  assert_int_equal(mdm_version_cmp(NULL, "1", &is_ok), 0);
  assert_int_equal(is_ok, 0);
  assert_int_equal(mdm_version_cmp("1", NULL, &is_ok), 0);
  assert_int_equal(is_ok, 0);
  assert_int_equal(mdm_version_cmp(NULL, NULL, NULL), 0);
  /* is_ok may be NULL */
  assert_true(mdm_version_cmp("1", "2", NULL) < 0);
}

static int ok_pair(const char *a, const char *b)
{
  int is_ok = 0;
  mdm_version_cmp(a, b, &is_ok);
  return is_ok;
}

/* Random strings over the version alphabet (and some others) in exactly
 * sized heap blocks, so ASan sees any read past the end; symmetry, and
 * transitivity through pairs of the table's strings. */
static void test_version_random(void **state)
{
  static const char alphabet[] = "0123456789..--~~__++abrcAZ0 #";
  char *a, *b;
  size_t i, k, la, lb;
  int ab, ba, ok1, ok2;
  unsigned seed = 12345;
  (void)state;
  for(i = 0; i < 20000; i++) {
    seed = seed * 1103515245u + 12345u;
    la = (seed >> 16) % 12;
    seed = seed * 1103515245u + 12345u;
    lb = (seed >> 16) % 12;
    a = malloc(la + 1);
    b = malloc(lb + 1);
    assert_non_null(a);
    assert_non_null(b);
    for(k = 0; k < la; k++) {
      seed = seed * 1103515245u + 12345u;
      a[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
    }
    a[la] = '\0';
    for(k = 0; k < lb; k++) {
      seed = seed * 1103515245u + 12345u;
      b[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
    }
    b[lb] = '\0';
    /* transitivity against the table's strings */
    for(k = 0; k + 1 < sizeof(cases) / sizeof(cases[0]); k++) {
      const char *x = cases[k].a, *y = cases[k + 1].b;
      int ax = mdm_version_cmp(a, x, NULL), xy = mdm_version_cmp(x, y, NULL);
      if(ax <= 0 && xy <= 0 && ok_pair(a, y))
        assert_true(mdm_version_cmp(a, y, NULL) <= 0);
      if(ax >= 0 && xy >= 0 && ok_pair(a, y))
        assert_true(mdm_version_cmp(a, y, NULL) >= 0);
    }
    ab = mdm_version_cmp(a, b, &ok1);
    ba = mdm_version_cmp(b, a, &ok2);
    assert_int_equal(ok1, ok2);
    if(((ab > 0) - (ab < 0)) != -((ba > 0) - (ba < 0)))
      fail_msg("cmp(\"%s\", \"%s\") = %d but reverse = %d", a, b, ab, ba);
    free(a);
    free(b);
  }
}

/* A long input is handled in linear time and without overflow. */
static void test_version_long(void **state)
{
  size_t n = 1 << 20, i;
  char *a = malloc(n + 1), *b = malloc(n + 1);
  int is_ok = -1;
  (void)state;
  assert_non_null(a);
  assert_non_null(b);
  for(i = 0; i < n; i++) {
    a[i] = (i % 2) ? '.' : '9';
    b[i] = a[i];
  }
  a[n] = b[n] = '\0';
  assert_int_equal(mdm_version_cmp(a, b, &is_ok), 0);
  assert_int_equal(is_ok, 1);
  b[n - 2] = '8';
  assert_true(mdm_version_cmp(a, b, &is_ok) > 0);
  memset(a, '7', n);   /* one 1 MB number */
  assert_true(mdm_version_cmp(a, "8", &is_ok) > 0);
  assert_int_equal(is_ok, 1);
  free(a);
  free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_version_table),
    cmocka_unit_test(test_version_symmetry),
    cmocka_unit_test(test_version_chain),
    cmocka_unit_test(test_version_not_ok),
    cmocka_unit_test(test_version_random),
    cmocka_unit_test(test_version_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
