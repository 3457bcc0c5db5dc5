/*
 * version.c: ordering of version strings for the compliance evaluator
 * (version_ge, version_lt, and lt/le/gt/ge on two version-like strings).
 * It has to order what agents report, such as "12", "22.04.4", "14.4.1" and
 * kernel releases like "6.1.0-26-amd64", the way a person reads them.
 *
 * The rules, in order:
 *
 * 1. A version starts with a digit and holds only ASCII letters, digits and
 *    the separators '.', '-', '_', '+' and '~'.  Anything else (NULL, "",
 *    "v13", "13 (bookworm)") is not a version: *is_ok is 0 and the result
 *    is 0, so the caller can say "unknown" rather than guess.
 * 2. A version is cut into segments: maximal runs of digits (numeric) or
 *    of letters (alphabetic).  Separators only divide segments, and which
 *    separator it was does not matter ("1.2" == "1-2" == "1_2"), except for
 *    rule 3.  A change between digit and letter also divides ("10a" is 10,
 *    "a"; "rc1" is "rc", 1).
 * 3. An alphabetic segment is a pre-release when it follows a '~'
 *    anywhere (Debian: "1.0~beta"), or when it follows a '-' directly after
 *    the leading run of '.'-separated numbers (semver: "1.2.3-rc1",
 *    "2.0.0-beta.2").  A later '-' word is not one: the "amd64" in
 *    "6.1.0-26-amd64" and the "generic" in "5.15.0-105-generic" are plain
 *    segments, so "6.1.0-26-amd64" > "6.1.0-26" and a rule that asks for
 *    version_ge "6.1.0-26" holds on that kernel.
 * 4. Versions compare segment by segment from the left.  A version that
 *    has run out reads as numeric 0 from there on, so "13" == "13.0" ==
 *    "13.0.0" and "6.1.0" == "6.1.0-0".  Two segments of the same kind
 *    compare as follows: numeric by value (leading zeros ignored, any
 *    length, no overflow: "1.01" == "1.1", "1.010" > "1.9"); alphabetic and
 *    pre-release by byte order ("alpha" < "beta" < "rc").  Segments of
 *    different kinds order as pre-release < numeric < alphabetic:
 *    "1.2.3-rc1" < "1.2.3" (the pre-release meets an implied 0),
 *    "1.0~beta" < "1.0", "1.1.1w" > "1.1.1" (a trailing letter is a later
 *    release, as with OpenSSL), "2.0-rc1" < "2.0-1".
 *
 * Each version maps to a sequence of keys in one total order and two
 * versions compare as those sequences, so the result is antisymmetric
 * (cmp(a, b) == -cmp(b, a) in sign) and transitive.  Work is linear in the
 * two lengths; nothing is read past a string's terminating NUL and nothing
 * is allocated.  Thread-safe.
 */
#include <stddef.h>
#include <string.h>
#include "policy/version.h"

enum seg_kind {
  SEG_PRE = 0,     /* pre-release word: sorts before a release */
  SEG_NUM = 1,     /* number; also what an exhausted version reads as */
  SEG_ALPHA = 2    /* other word: sorts after numbers */
};

struct seg {
  enum seg_kind kind;
  const char *p;   /* numeric: first significant digit */
  size_t len;      /* numeric: 0 for the value 0 */
};

struct seg_iter {
  const char *s;
  int is_core;     /* still in the leading "N.N.N" run */
  int is_first;
};

static int is_digit(unsigned char c)
{
  return c >= '0' && c <= '9';
}

static int is_alpha(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_sep(unsigned char c)
{
  return c == '.' || c == '-' || c == '_' || c == '+' || c == '~';
}

/* Rule 1. */
static int is_version(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  if(!p || !is_digit(*p))
    return 0;
  for(; *p; p++) {
    if(!is_digit(*p) && !is_alpha(*p) && !is_sep(*p))
      return 0;
  }
  return 1;
}

/* The next segment of it; past the end, numeric 0 forever. */
static void seg_next(struct seg_iter *it, struct seg *out)
{
  const char *s = it->s;
  int saw_tilde = 0, saw_dash = 0, saw_other = 0;

  while(is_sep((unsigned char)*s)) {
    if(*s == '~')
      saw_tilde = 1;
    else if(*s == '-')
      saw_dash = 1;
    else if(*s != '.')
      saw_other = 1;
    s++;
  }
  if(!*s) {
    it->s = s;
    out->kind = SEG_NUM;
    out->p = s;
    out->len = 0;
    return;
  }
  if(is_digit((unsigned char)*s)) {
    /* The core goes on only through '.' (or at the very start). */
    if(!it->is_first && (saw_tilde || saw_dash || saw_other ||
                         s == it->s))
      it->is_core = 0;
    while(*s == '0')
      s++;
    out->kind = SEG_NUM;
    out->p = s;
    while(is_digit((unsigned char)*s))
      s++;
    out->len = (size_t)(s - out->p);
  }
  else {
    if(saw_tilde || (saw_dash && it->is_core))
      out->kind = SEG_PRE;
    else
      out->kind = SEG_ALPHA;
    it->is_core = 0;
    out->p = s;
    while(is_alpha((unsigned char)*s))
      s++;
    out->len = (size_t)(s - out->p);
  }
  it->is_first = 0;
  it->s = s;
}

static int sign(int v)
{
  return (v > 0) - (v < 0);
}

static int seg_cmp(const struct seg *a, const struct seg *b)
{
  size_t n;
  int c;

  if(a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  if(a->kind == SEG_NUM && a->len != b->len)
    return a->len < b->len ? -1 : 1;   /* no leading zeros left */
  n = a->len < b->len ? a->len : b->len;
  c = n ? memcmp(a->p, b->p, n) : 0;
  if(c)
    return sign(c);
  if(a->len != b->len)
    return a->len < b->len ? -1 : 1;
  return 0;
}

int mdm_version_cmp(const char *a, const char *b, int *is_ok)
{
  struct seg_iter ia = {a, 1, 1}, ib = {b, 1, 1};
  struct seg sa, sb;
  int c;

  if(!is_version(a) || !is_version(b)) {
    if(is_ok)
      *is_ok = 0;
    return 0;
  }
  if(is_ok)
    *is_ok = 1;
  for(;;) {
    /* Each round consumes at least one character of a or b until both
     * are exhausted, so the loop is bounded by their lengths. */
    if(!*ia.s && !*ib.s)
      return 0;
    seg_next(&ia, &sa);
    seg_next(&ib, &sb);
    c = seg_cmp(&sa, &sb);
    if(c)
      return c;
  }
}
