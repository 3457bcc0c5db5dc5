/*
 * util.c: time, ids, encodings, hashing and file helpers (see util.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdatomic.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "core/util.h"

int64_t mdm_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mdm_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void mdm_time_format(int64_t epoch_s, char *out, size_t n)
{
  time_t t = (time_t)epoch_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mdm_time_format_ms(int64_t epoch_ms, char *out, size_t n)
{
  /* Floor division, so that times before 1970 keep 0..999 milliseconds. */
  int64_t secs = epoch_ms / 1000, ms = epoch_ms % 1000;
  time_t t;
  struct tm tm;
  char base[32];
  if(ms < 0) {
    ms += 1000;
    secs--;
  }
  t = (time_t)secs;
  gmtime_r(&t, &tm);
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%03dZ", base, (int)ms);
}

/* n decimal digits at s into *out; -1 if any of them is not a digit (a NUL
 * included, so a short string stops the scan before its end). */
static int parse_digits(const char *s, int n, int *out)
{
  int i, v = 0;
  for(i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

static int days_in_month(int y, int m)
{
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if(m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return days[m - 1];
}

mdm_rc mdm_time_parse(const char *s, int64_t *out)
{
  /* Strict and by hand: strptime() takes single digits, leading spaces and
   * days such as February 30 (which timegm() then moves into March). */
  struct tm tm;
  const char *p;
  int y, mo, d, h, mi, sec;

  if(!s || !out)
    return MDM_ERR_INVAL;
  if(parse_digits(s, 4, &y) || s[4] != '-' ||
     parse_digits(s + 5, 2, &mo) || s[7] != '-' ||
     parse_digits(s + 8, 2, &d) || s[10] != 'T' ||
     parse_digits(s + 11, 2, &h) || s[13] != ':' ||
     parse_digits(s + 14, 2, &mi) || s[16] != ':' ||
     parse_digits(s + 17, 2, &sec))
    return MDM_ERR_INVAL;
  if(mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
     mi > 59 || sec > 59)
    return MDM_ERR_INVAL;
  p = s + 19;
  if(*p == '.') {
    p++;
    if(*p < '0' || *p > '9')
      return MDM_ERR_INVAL;
    while(*p >= '0' && *p <= '9')
      p++;
  }
  if(strcmp(p, "Z") != 0)
    return MDM_ERR_INVAL;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  *out = (int64_t)timegm(&tm);
  return MDM_OK;
}

mdm_rc mdm_duration_parse(const char *s, int64_t *out)
{
  char *end;
  long long v, mult = 1;
  /* A digit first: strtoll() would skip spaces and then take a sign. */
  if(!s || *s < '0' || *s > '9')
    return MDM_ERR_INVAL;
  errno = 0;
  v = strtoll(s, &end, 10);
  if(errno || end == s)
    return MDM_ERR_INVAL;
  if(*end) {
    if(end[1])
      return MDM_ERR_INVAL;
    switch(*end) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    default: return MDM_ERR_INVAL;
    }
  }
  if(v > LLONG_MAX / mult)
    return MDM_ERR_INVAL;
  *out = v * mult;
  return MDM_OK;
}

/* The kernel's CSPRNG (getrandom(2), the source OpenSSL seeds from too).
 * Not RAND_bytes(): OpenSSL 3 instantiates a DRBG in every thread that
 * asks, and mdmd's request threads live for one connection each. */
mdm_rc mdm_random(void *p, size_t n)
{
  unsigned char *b = p;
  while(n) {
    ssize_t got = getrandom(b, n, 0);
    if(got < 0) {
      if(errno == EINTR)
        continue;
      if(errno == ENOSYS)
        return RAND_bytes(b, (int)n) == 1 ? MDM_OK : MDM_ERR_CRYPTO;
      return MDM_ERR_CRYPTO;
    }
    b += got;
    n -= (size_t)got;
  }
  return MDM_OK;
}

mdm_rc mdm_uuid_v4(char *out)
{
  unsigned char b[16];
  mdm_rc rc = mdm_random(b, sizeof(b));
  if(rc)
    return rc;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, MDM_UUID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
  return MDM_OK;
}

int mdm_is_uuid(const char *s)
{
  size_t i;
  if(!s || strlen(s) != MDM_UUID_LEN)
    return 0;
  for(i = 0; i < MDM_UUID_LEN; i++) {
    char c = s[i];
    if(i == 8 || i == 13 || i == 18 || i == 23) {
      if(c != '-')
        return 0;
    }
    else if(!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
      return 0;
  }
  return 1;
}

static const char b64url_chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

mdm_rc mdm_b64url_encode(const void *p, size_t n, char **out)
{
  const unsigned char *s = p;
  size_t olen = (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
  char *o = malloc(olen + 1), *w = o;
  size_t i;
  if(!o)
    return MDM_ERR_NOMEM;
  for(i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    *w++ = b64url_chars[(v >> 18) & 63];
    *w++ = b64url_chars[(v >> 12) & 63];
    *w++ = b64url_chars[(v >> 6) & 63];
    *w++ = b64url_chars[v & 63];
  }
  if(n - i == 1) {
    unsigned v = (unsigned)s[i] << 16;
    *w++ = b64url_chars[(v >> 18) & 63];
    *w++ = b64url_chars[(v >> 12) & 63];
  }
  else if(n - i == 2) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
    *w++ = b64url_chars[(v >> 18) & 63];
    *w++ = b64url_chars[(v >> 12) & 63];
    *w++ = b64url_chars[(v >> 6) & 63];
  }
  *w = '\0';
  *out = o;
  return MDM_OK;
}

static int b64url_val(char c)
{
  if(c >= 'A' && c <= 'Z') return c - 'A';
  if(c >= 'a' && c <= 'z') return c - 'a' + 26;
  if(c >= '0' && c <= '9') return c - '0' + 52;
  if(c == '-') return 62;
  if(c == '_') return 63;
  return -1;
}

mdm_rc mdm_b64url_decode(const char *s, size_t slen, unsigned char **out,
                         size_t *out_len)
{
  unsigned char *o, *w;
  unsigned acc = 0;
  int bits = 0;
  size_t i, n_pad = 0;

  /* Padding is optional; when present it must complete the last group. */
  while(slen && s[slen - 1] == '=') {
    slen--;
    n_pad++;
  }
  if(n_pad && (n_pad > 2 || (slen + n_pad) % 4 != 0))
    return MDM_ERR_INVAL;
  if(slen % 4 == 1)
    return MDM_ERR_INVAL;
  o = malloc(slen * 3 / 4 + 2);
  if(!o)
    return MDM_ERR_NOMEM;
  w = o;
  for(i = 0; i < slen; i++) {
    int v = b64url_val(s[i]);
    if(v < 0) {
      free(o);
      return MDM_ERR_INVAL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      *w++ = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  /* The bits left over must be zero, so that each byte string has exactly
   * one encoding (RFC 4648 §3.5): signatures must not be malleable. */
  if(acc & ((1u << bits) - 1)) {
    free(o);
    return MDM_ERR_INVAL;
  }
  *w = '\0';
  *out = o;
  *out_len = (size_t)(w - o);
  return MDM_OK;
}

void mdm_hex(const void *p, size_t n, char *out)
{
  static const char hx[] = "0123456789abcdef";
  const unsigned char *s = p;
  size_t i;
  for(i = 0; i < n; i++) {
    out[2 * i] = hx[s[i] >> 4];
    out[2 * i + 1] = hx[s[i] & 15];
  }
  out[2 * n] = '\0';
}

void mdm_sha256_hex(const void *p, size_t n, char *out)
{
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
  mdm_hex(md, 32, out);
}

mdm_rc mdm_file_read(const char *path, size_t max, char **out, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *p = NULL;
  size_t n = 0, cap = 0;
  mdm_rc rc = MDM_OK;

  if(!f)
    return errno == ENOENT || errno == ENOTDIR ? MDM_ERR_NOTFOUND : MDM_ERR_IO;
  /* "No limit" (SIZE_MAX) must not overflow max + 4096 + 1 below. */
  if(max > SIZE_MAX / 4)
    max = SIZE_MAX / 4;
  for(;;) {
    size_t r;
    if(n + 4096 + 1 > cap) {
      char *np;
      cap = cap ? cap * 2 : 8192;
      if(cap > max + 4096 + 1)
        cap = max + 4096 + 1;
      np = realloc(p, cap);
      if(!np) {
        rc = MDM_ERR_NOMEM;
        goto out;
      }
      p = np;
    }
    r = fread(p + n, 1, cap - n - 1, f);
    n += r;
    if(n > max) {
      rc = MDM_ERR_TOOBIG;
      goto out;
    }
    if(r == 0) {
      if(ferror(f))
        rc = MDM_ERR_IO;
      break;
    }
  }
out:
  fclose(f);
  if(rc) {
    free(p);
    return rc;
  }
  if(!p) {
    p = malloc(1);
    if(!p)
      return MDM_ERR_NOMEM;
  }
  p[n] = '\0';
  *out = p;
  if(len)
    *len = n;
  return MDM_OK;
}

mdm_rc mdm_fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  mdm_rc rc = MDM_OK;
  if(fd < 0)
    return MDM_ERR_IO;
  if(fsync(fd) != 0)
    rc = MDM_ERR_IO;
  close(fd);
  return rc;
}

mdm_rc mdm_fsync_parent(const char *path)
{
  char dir[PATH_MAX];
  char *slash;
  if(mdm_strlcpy(dir, path, sizeof(dir)))
    return MDM_ERR_TOOBIG;
  slash = strrchr(dir, '/');
  if(slash == dir)
    dir[1] = '\0';
  else if(slash)
    *slash = '\0';
  else
    mdm_strlcpy(dir, ".", sizeof(dir));
  return mdm_fsync_dir(dir);
}

mdm_rc mdm_file_write_atomic(const char *path, const void *p, size_t n,
                             unsigned mode)
{
  char tmp[PATH_MAX];
  int fd;
  const char *s = p;
  size_t off = 0;

  static atomic_uint counter;
  /* Unique per process and call, so two threads never share a temp file. */
  if(snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
              atomic_fetch_add(&counter, 1)) >= (int)sizeof(tmp))
    return MDM_ERR_TOOBIG;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if(fd < 0)
    return MDM_ERR_IO;
  if(fchmod(fd, mode) != 0)
    goto fail;
  while(off < n) {
    ssize_t w = write(fd, s + off, n - off);
    if(w < 0) {
      if(errno == EINTR)
        continue;
      goto fail;
    }
    off += (size_t)w;
  }
  if(fsync(fd) != 0)
    goto fail;
  close(fd);
  if(rename(tmp, path) != 0) {
    unlink(tmp);
    return MDM_ERR_IO;
  }
  /* The rename is durable only once the directory is. */
  mdm_fsync_parent(path);
  return MDM_OK;
fail:
  close(fd);
  unlink(tmp);
  return MDM_ERR_IO;
}

mdm_rc mdm_mkdirs(const char *path, unsigned mode)
{
  char tmp[PATH_MAX];
  char *p;
  if(mdm_strlcpy(tmp, path, sizeof(tmp)))
    return MDM_ERR_TOOBIG;
  if(!tmp[0])
    return MDM_ERR_INVAL;
  for(p = tmp + 1; *p; p++) {
    if(*p == '/') {
      *p = '\0';
      if(mkdir(tmp, mode) != 0 && errno != EEXIST)
        return MDM_ERR_IO;
      *p = '/';
    }
  }
  if(mkdir(tmp, mode) != 0 && errno != EEXIST)
    return MDM_ERR_IO;
  return MDM_OK;
}

mdm_rc mdm_parse_int(const char *s, long long min, long long max,
                     long long *out)
{
  char *end;
  long long v;
  /* strtoll() skips leading spaces; the whole string must be the number. */
  if(!s || !*s || isspace((unsigned char)*s))
    return MDM_ERR_INVAL;
  errno = 0;
  v = strtoll(s, &end, 10);
  if(errno || *end || end == s || v < min || v > max)
    return MDM_ERR_INVAL;
  *out = v;
  return MDM_OK;
}

mdm_rc mdm_strlcpy(char *dst, const char *src, size_t n)
{
  size_t l = strlen(src);
  if(n == 0)
    return MDM_ERR_TOOBIG;
  if(l >= n) {
    memcpy(dst, src, n - 1);
    dst[n - 1] = '\0';
    return MDM_ERR_TOOBIG;
  }
  memcpy(dst, src, l + 1);
  return MDM_OK;
}
