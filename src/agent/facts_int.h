/*
 * facts_int.h: internals of the Linux facts backend (facts_linux.c) that the
 * unit tests reach directly: the parsers of os-release, mountinfo, passwd,
 * dconf key files, the kernel lockdown file and EFI variables.  Each parser
 * takes text that came from the device, trusts none of it and never reads
 * past the terminating NUL.  Not part of the agent's interface: only
 * facts_linux.c and tests/unit/agent/test_facts.c include this header.
 */
#ifndef MDM_FACTS_INT_H
#define MDM_FACTS_INT_H

#include <stddef.h>
#include "core/rc.h"

/* Bounds on what the collector reads: small files (os-release, sysfs
 * attributes, configuration) and the two that grow with the machine
 * (mountinfo on a busy host, passwd on a shared one).  Longer files are
 * refused and the facts they carry reported as null. */
#define MDM_FACTS_MAX_SMALL (64 * 1024)
#define MDM_FACTS_MAX_LARGE (1024 * 1024)

/* A fact that may be unknown: JSON true, false or null. */
enum mdm_tri { MDM_TRI_NULL = -1, MDM_TRI_FALSE = 0, MDM_TRI_TRUE = 1 };

/* The value of `key` in text of os-release(5) syntax (also ufw.conf): shell
 * style KEY=value lines with "double" or 'single' quotes, backslash escapes,
 * an optional `export `, and # comments (whole lines, or after blanks in an
 * unquoted value).  The last assignment wins; an assignment whose quote is
 * never closed is ignored.  Returns NULL when the key is absent (or on
 * allocation failure).  Caller owns the result; free with free(). */
char *mdm_facts_env_get(const char *text, const char *key);

/* The root mount of a mountinfo text (proc(5)): the last line whose mount
 * point is "/" (a later mount hides an earlier one). */
struct mdm_facts_mount {
  unsigned major;        /* st_dev of the root file system */
  unsigned minor;
  char fstype[64];       /* "ext4", "overlay"... */
  char source[256];      /* "/dev/mapper/vg-root", "overlay"... */
};
/* MDM_ERR_NOTFOUND when no well-formed line mounts "/". */
mdm_rc mdm_facts_mountinfo_root(const char *text,
                                struct mdm_facts_mount *out /* OUT */);

/* Does a passwd(5) text give uid 0 to an account other than root?  TRUE or
 * FALSE; lines that are not name:pw:uid:... (NIS +/- lines, comments,
 * junk) are skipped. */
enum mdm_tri mdm_facts_passwd_rooted(const char *text);

/* The active mode of /sys/kernel/security/lockdown ("none [integrity]
 * confidentiality" gives "integrity"), or NULL when there is no bracketed
 * word.  Caller owns the result; free with free(). */
char *mdm_facts_lockdown_mode(const char *text);

/* lock-enabled under [org/gnome/desktop/screensaver] in one dconf key
 * file: TRUE, FALSE, or NULL when the file does not set it (last one wins
 * within the file). */
enum mdm_tri mdm_facts_dconf_lock_enabled(const char *text);

/* An efivarfs boolean variable (4 attribute bytes, then 1 value byte):
 * TRUE for 1, FALSE for 0, NULL for any other length or value. */
enum mdm_tri mdm_facts_efivar_bool(const unsigned char *p, size_t n);

#endif
