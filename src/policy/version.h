/*
 * version.h: ordering of version strings as people read them:
 * 9 < 10 < 10.0.1 < 13, "13" == "13.0" == "13.0.0", 1.2.3-rc1 < 1.2.3,
 * 1.0~beta < 1.0, 22.04 < 22.10, 5.15.0-105-generic < 6.1.0-26-amd64 <
 * 6.1.0-27-amd64.  Pure, no allocation, thread-safe.
 *
 * In short (version.c has the full rules): a version starts with a digit
 * and holds only letters, digits and . - _ + ~; it is cut into numeric and
 * alphabetic segments that compare left to right, numbers by value
 * (leading zeros ignored), words by byte order; a version that runs out
 * reads as 0 from there on; a word after '~', or after a '-' that directly
 * follows the leading N.N.N run, is a pre-release and sorts before the
 * release; other words sort after numbers ("1.1.1w" > "1.1.1").
 */
#ifndef MDM_VERSION_CMP_H
#define MDM_VERSION_CMP_H

/* <0, 0, >0 as a is older than, the same as, or newer than b.
 * *is_ok (may be NULL) is set to 0 when either string is not a version
 * (NULL, empty, no leading digit, or a character other than a letter,
 * digit or one of . - _ + ~); the result is then 0.  Otherwise 1. */
int mdm_version_cmp(const char *a, const char *b, int *is_ok);

#endif
