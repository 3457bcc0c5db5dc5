/*
 * version.h: ordering of version strings as people read them:
 * 9 < 10 < 10.0.1 < 13, "13" == "13.0" == "13.0.0", 1.2.3-rc1 < 1.2.3,
 * 22.04 < 22.10.  Pure, no allocation.
 */
#ifndef MDM_VERSION_CMP_H
#define MDM_VERSION_CMP_H

/* <0, 0, >0 as a is older than, the same as, or newer than b.
 * *is_ok (may be NULL) is set to 0 when either string is not a version
 * (empty, or no leading digit); the result is then 0. */
int mdm_version_cmp(const char *a, const char *b, int *is_ok);

#endif
