/*
 * util.h: small shared helpers: time, ids, base64url, hex, hashing, files,
 * safe number parsing.
 */
#ifndef MDM_UTIL_H
#define MDM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "core/rc.h"

#define MDM_UUID_LEN 36

/* Wall clock, milliseconds since the epoch. */
int64_t mdm_now_ms(void);
/* Monotonic clock in nanoseconds. */
int64_t mdm_mono_ns(void);
/* RFC 3339 UTC with seconds: "2026-11-28T14:00:00Z". out needs 21 bytes. */
void mdm_time_format(int64_t epoch_s, char *out, size_t n);
/* RFC 3339 UTC with milliseconds: "2026-11-28T14:00:00.123Z". */
void mdm_time_format_ms(int64_t epoch_ms, char *out, size_t n);
/* Parse "YYYY-MM-DDTHH:MM:SS[.fff]Z" to epoch seconds. */
mdm_rc mdm_time_parse(const char *s, int64_t *out /* OUT */);
/* Parse a duration like "90", "90s", "15m", "24h", "7d" into seconds. */
mdm_rc mdm_duration_parse(const char *s, int64_t *out /* OUT */);

/* A random UUID v4 (lower-case) into out[MDM_UUID_LEN + 1]. */
mdm_rc mdm_uuid_v4(char *out);
/* Is s a syntactically valid UUID string? */
int mdm_is_uuid(const char *s);
/* n cryptographically random bytes. */
mdm_rc mdm_random(void *p, size_t n);

/* base64url without padding.  Caller owns *out; free() it. */
mdm_rc mdm_b64url_encode(const void *p, size_t n, char **out /* OUT */);
/* Decodes base64url (padding optional); rejects other characters.  Caller
 * owns *out (NUL-terminated for convenience); *out_len is the byte count. */
mdm_rc mdm_b64url_decode(const char *s, size_t slen, unsigned char **out,
                         size_t *out_len);
/* Lower-case hex of p into out (2n+1 bytes). */
void mdm_hex(const void *p, size_t n, char *out);
/* SHA-256 of p as 64 hex digits into out[65]. */
void mdm_sha256_hex(const void *p, size_t n, char *out);

/* Read a whole file of at most max bytes.  Caller owns *out (NUL-terminated).
 * MDM_ERR_NOTFOUND if absent, MDM_ERR_TOOBIG if longer than max. */
mdm_rc mdm_file_read(const char *path, size_t max, char **out, size_t *len);
/* fsync the directory dir (what makes a rename or create in it durable).
 * MDM_ERR_IO when it cannot be opened or synced. */
mdm_rc mdm_fsync_dir(const char *dir);
/* The same for the directory that holds path ("." for a bare name). */
mdm_rc mdm_fsync_parent(const char *path);

/* Write a file atomically (temp file, fsync, rename) with the given mode. */
mdm_rc mdm_file_write_atomic(const char *path, const void *p, size_t n,
                             unsigned mode);
/* mkdir -p with mode for the directories it creates. */
mdm_rc mdm_mkdirs(const char *path, unsigned mode);

/* Parse a base-10 integer in [min, max]; whole string must be consumed. */
mdm_rc mdm_parse_int(const char *s, long long min, long long max,
                     long long *out /* OUT */);

/* Bounded string copy that always terminates; returns MDM_ERR_TOOBIG when
 * src did not fit (dst then holds a truncated copy). */
mdm_rc mdm_strlcpy(char *dst, const char *src, size_t n);

#endif
