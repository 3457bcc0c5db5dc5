/*
 * facts_linux.c: the Linux facts backend behind facts.h.  It reads the state
 * of the device rooted at `root` (/ on a real device, a fake device root in
 * tests) from the files the kernel and the distribution keep: os-release,
 * /proc, /sys, /etc.  Only regular files are read, each with a bound, and
 * parsed as untrusted text; a fact that cannot be read, or whose file is
 * oversized or garbled, is JSON null, never a guess.  Paths are joined under
 * the root and checked for truncation.  The parsers live here too and are
 * reachable by the unit tests through facts_int.h.  Calls share no state, so
 * concurrent calls are safe.
 *
 * Choices where the state is ambiguous:
 * - encryption: the root file system's device comes from the last mountinfo
 *   line mounting "/", by major:minor among <root>/sys/block/<disk> and its
 *   partitions (or, for file systems with anonymous device numbers such as
 *   btrfs, by the /dev/... source).  A device-mapper device whose dm/uuid is
 *   CRYPT-LUKS2/LUKS1 is "luks2"/"luks1", other dm-crypt formats (PLAIN,
 *   LOOPAES, TCRYPT, BITLK, FVAULT2) are "dm-crypt"; anything else stacked
 *   (LVM, md, dm-integrity...) is followed through slaves/, and is encrypted
 *   only if every slave is.  Root on overlay, tmpfs, zfs... (a container, a
 *   live system) is null: its backing store is not visible from here.
 * - secure_boot: the SecureBoot EFI variable decides when present.  When it
 *   is absent, the answer is false only if the firmware's variables are
 *   visible (then this UEFI firmware has no Secure Boot), or if
 *   <root>/sys/firmware has entries but no efi/ (booted by a legacy BIOS,
 *   which has no Secure Boot).  An efi/ directory whose variables are not
 *   mounted, and an absent or empty sys/firmware (a container: Docker masks
 *   it with an empty tmpfs), are null.
 * - serial, model, manufacturer: DMI placeholders written by vendors that
 *   never filled them ("To Be Filled By O.E.M.", "Default string"...) are
 *   null.  Without DMI (ARM boards), model and serial come from the device
 *   tree when it has them.
 * - firewall_enabled: true when ufw is ENABLED=yes, or nftables or firewalld
 *   is enabled at boot (systemd wants/ entry, or an OpenRC runlevel entry
 *   for nftables, iptables or firewalld); false only when ufw.conf says
 *   ENABLED=no and none of those is enabled; null otherwise.
 * - password_age_days and ssid are per-user or per-session state: null.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <jansson.h>
#include "agent/facts.h"
#include "agent/facts_int.h"
#include "core/util.h"

#define MAX_VALUE_LEN 1024    /* longest single string fact reported */
#define MAX_STACK_DEPTH 8     /* block devices stacked on each other */
#define MAX_DIR_ENTRIES 4096  /* entries looked at in one directory */
#define MAX_DCONF_FILES 256

#define EFI_GLOBAL_GUID "8be4df61-93ca-11d0-9d03-00e098032b8c"

/* ---------------------------------------------------------------------- */
/* Parsers (facts_int.h)                                                   */
/* ---------------------------------------------------------------------- */

static int is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

static int is_key_start(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
  return is_key_start(c) || (c >= '0' && c <= '9');
}

static const char *skip_line(const char *p)
{
  while(*p && *p != '\n')
    p++;
  return *p ? p + 1 : p;
}

static char *dup_n(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  if(d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Parse one value starting at *pp into val (room for the rest of the text).
 * Returns the value's length, or -1 when a quote is never closed. */
static long env_value(const char **pp, char *val, int at_word_start)
{
  const char *p = *pp;
  size_t n = 0, keep = 0;
  char quote = 0;

  for(;;) {
    char c = *p;
    if(c == '\0') {
      if(quote) {
        *pp = p;
        return -1;
      }
      break;
    }
    if(quote == '\'') {
      p++;
      if(c == '\'')
        quote = 0;
      else
        val[n++] = c;
      keep = n;
    }
    else if(quote == '"') {
      p++;
      if(c == '"')
        quote = 0;
      else if(c == '\\' && *p == '\n')
        p++; /* line continuation */
      else if(c == '\\' && *p && strchr("\"\\`$", *p))
        val[n++] = *p++;
      else
        val[n++] = c;
      keep = n;
    }
    else if(c == '\n') {
      p++;
      break;
    }
    else if(c == '#' && at_word_start) {
      p = skip_line(p);
      break;
    }
    else if(is_blank(c)) {
      p++;
      val[n++] = c; /* kept only if something follows */
      at_word_start = 1;
    }
    else {
      p++;
      if(c == '\'' || c == '"')
        quote = c;
      else if(c == '\\' && *p == '\n')
        p++;
      else if(c == '\\' && *p)
        val[n++] = *p++;
      else if(c != '\\')
        val[n++] = c;
      keep = n;
      at_word_start = 0;
    }
  }
  *pp = p;
  return (long)keep;
}

char *mdm_facts_env_get(const char *text, const char *key)
{
  size_t klen = strlen(key);
  char *val = malloc(strlen(text) + 1);
  char *best = NULL;
  const char *p = text;

  if(!val)
    return NULL;
  while(*p) {
    const char *k;
    size_t kl;
    long vl;
    int blanks = 0;

    while(is_blank(*p))
      p++;
    if(!is_key_start(*p)) { /* blank line, comment or junk */
      p = skip_line(p);
      continue;
    }
    if(!strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t')) {
      p += 6;
      while(is_blank(*p))
        p++;
      if(!is_key_start(*p)) {
        p = skip_line(p);
        continue;
      }
    }
    k = p;
    while(is_key_char(*p))
      p++;
    kl = (size_t)(p - k);
    while(is_blank(*p))
      p++;
    if(*p != '=') {
      p = skip_line(p);
      continue;
    }
    p++;
    while(is_blank(*p)) {
      p++;
      blanks = 1;
    }
    vl = env_value(&p, val, blanks);
    if(vl < 0)
      break; /* unclosed quote: the rest of the text is its value */
    if(kl == klen && !memcmp(k, key, klen)) {
      char *v = dup_n(val, (size_t)vl);
      free(best);
      best = v;
      if(!v)
        break;
    }
  }
  free(val);
  return best;
}

/* Next blank-separated field of [*pp, eol); NULL at the end of the line. */
static const char *next_field(const char **pp, const char *eol, size_t *len)
{
  const char *p = *pp, *f;
  while(p < eol && (*p == ' ' || *p == '\t'))
    p++;
  if(p == eol)
    return NULL;
  f = p;
  while(p < eol && *p != ' ' && *p != '\t')
    p++;
  *len = (size_t)(p - f);
  *pp = p;
  return f;
}

/* Parse up to 9 decimal digits (device numbers are at most 20 bits). */
static int parse_small_uint(const char *s, size_t n, unsigned *out)
{
  unsigned v = 0;
  size_t i;
  if(n == 0 || n > 9)
    return -1;
  for(i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return 0;
}

static void copy_field(char *dst, size_t dst_len, const char *f, size_t n)
{
  /* A field that does not fit is left empty, never truncated. */
  if(n >= dst_len)
    n = 0;
  memcpy(dst, f, n);
  dst[n] = '\0';
}

/* One mountinfo line: "id parent maj:min root mountpoint opts [opt...] -
 * fstype source superopts".  0 when it is well formed and mounts "/". */
static int mount_line(const char *p, const char *eol,
                      struct mdm_facts_mount *m)
{
  const char *f[6], *colon, *t;
  size_t fl[6], tl;
  int i;

  for(i = 0; i < 6; i++) {
    f[i] = next_field(&p, eol, &fl[i]);
    if(!f[i])
      return -1;
  }
  if(fl[4] != 1 || f[4][0] != '/')
    return -1;
  colon = memchr(f[2], ':', fl[2]);
  if(!colon ||
     parse_small_uint(f[2], (size_t)(colon - f[2]), &m->major) ||
     parse_small_uint(colon + 1, fl[2] - (size_t)(colon - f[2]) - 1,
                      &m->minor))
    return -1;
  do { /* optional fields, up to the "-" separator */
    t = next_field(&p, eol, &tl);
    if(!t)
      return -1;
  } while(tl != 1 || *t != '-');
  t = next_field(&p, eol, &tl);
  if(!t)
    return -1;
  copy_field(m->fstype, sizeof(m->fstype), t, tl);
  t = next_field(&p, eol, &tl);
  if(!t)
    return -1;
  copy_field(m->source, sizeof(m->source), t, tl);
  return 0;
}

mdm_rc mdm_facts_mountinfo_root(const char *text, struct mdm_facts_mount *out)
{
  const char *p = text;
  struct mdm_facts_mount m;
  mdm_rc rc = MDM_ERR_NOTFOUND;

  while(*p) {
    const char *eol = strchr(p, '\n');
    if(!eol)
      eol = p + strlen(p);
    if(!mount_line(p, eol, &m)) {
      *out = m;
      rc = MDM_OK;
    }
    p = *eol ? eol + 1 : eol;
  }
  return rc;
}

enum mdm_tri mdm_facts_passwd_rooted(const char *text)
{
  const char *p = text;

  while(*p) {
    const char *eol = strchr(p, '\n'), *name = p, *c1, *c2, *c3;
    if(!eol)
      eol = p + strlen(p);
    c1 = memchr(p, ':', (size_t)(eol - p));
    c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
    c3 = c2 ? memchr(c2 + 1, ':', (size_t)(eol - c2 - 1)) : NULL;
    if(c3 && *name != '#' && *name != '+' && *name != '-' && c3 > c2 + 1) {
      const char *u = c2 + 1;
      while(u < c3 && *u == '0')
        u++;
      /* uid is all zeros, and the account is not root */
      if(u == c3 && !((size_t)(c1 - name) == 4 && !memcmp(name, "root", 4)))
        return MDM_TRI_TRUE;
    }
    p = *eol ? eol + 1 : eol;
  }
  return MDM_TRI_FALSE;
}

char *mdm_facts_lockdown_mode(const char *text)
{
  const char *open = strchr(text, '['), *close, *q;
  if(!open)
    return NULL;
  close = strchr(open + 1, ']');
  if(!close || close == open + 1)
    return NULL;
  for(q = open + 1; q < close; q++)
    if(!islower((unsigned char)*q) && !isdigit((unsigned char)*q) &&
       *q != '-' && *q != '_')
      return NULL;
  return dup_n(open + 1, (size_t)(close - open - 1));
}

/* [s, e) without blanks on either side. */
static void trim_span(const char **s, const char **e)
{
  while(*s < *e && is_blank(**s))
    (*s)++;
  while(*e > *s && is_blank((*e)[-1]))
    (*e)--;
}

static int span_is(const char *s, const char *e, const char *word)
{
  size_t n = strlen(word);
  return (size_t)(e - s) == n && !memcmp(s, word, n);
}

enum mdm_tri mdm_facts_dconf_lock_enabled(const char *text)
{
  const char *p = text;
  int in_section = 0;
  enum mdm_tri r = MDM_TRI_NULL;

  while(*p) {
    const char *s = p, *e = strchr(p, '\n'), *eq;
    if(!e)
      e = p + strlen(p);
    p = *e ? e + 1 : e;
    trim_span(&s, &e);
    if(s == e || *s == '#')
      continue;
    if(*s == '[') {
      const char *gs = s + 1, *ge = e - 1;
      if(e - s < 2 || *ge != ']') {
        in_section = 0;
        continue;
      }
      trim_span(&gs, &ge);
      in_section = span_is(gs, ge, "org/gnome/desktop/screensaver");
      continue;
    }
    eq = memchr(s, '=', (size_t)(e - s));
    if(in_section && eq) {
      const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
      trim_span(&ks, &ke);
      trim_span(&vs, &ve);
      if(span_is(ks, ke, "lock-enabled"))
        r = span_is(vs, ve, "true") ? MDM_TRI_TRUE :
            span_is(vs, ve, "false") ? MDM_TRI_FALSE : MDM_TRI_NULL;
    }
  }
  return r;
}

enum mdm_tri mdm_facts_efivar_bool(const unsigned char *p, size_t n)
{
  if(n != 5 || p[4] > 1)
    return MDM_TRI_NULL;
  return p[4] ? MDM_TRI_TRUE : MDM_TRI_FALSE;
}

/* ---------------------------------------------------------------------- */
/* Reading under the root                                                  */
/* ---------------------------------------------------------------------- */

struct facts_ctx {
  char root[PATH_MAX]; /* without a trailing slash: "" for "/" */
};

/* <root>/rel into out[PATH_MAX]; -1 if it does not fit. */
static int ctx_path(const struct facts_ctx *c, const char *rel, char *out)
{
  int n = snprintf(out, PATH_MAX, "%s/%s", c->root, rel);
  return n >= 0 && n < PATH_MAX ? 0 : -1;
}

/* A relative path from a format into rel[PATH_MAX]; -1 if it does not fit. */
static int mkrel(char *rel, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static int mkrel(char *rel, const char *fmt, ...)
{
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(rel, PATH_MAX, fmt, ap);
  va_end(ap);
  return n >= 0 && n < PATH_MAX ? 0 : -1;
}

/* The whole file at <root>/rel, at most max bytes.  Only a regular file
 * (links followed) is read: a FIFO or a device in a fake root must not
 * block or feed the agent.  MDM_ERR_NOTFOUND when it does not exist. */
static mdm_rc read_file(const struct facts_ctx *c, const char *rel, size_t max,
                        char **out /* OUT */, size_t *len /* OUT */)
{
  char path[PATH_MAX];
  struct stat st;
  if(ctx_path(c, rel, path))
    return MDM_ERR_TOOBIG;
  if(stat(path, &st))
    return errno == ENOENT || errno == ENOTDIR ? MDM_ERR_NOTFOUND : MDM_ERR_IO;
  if(!S_ISREG(st.st_mode))
    return MDM_ERR_INVAL;
  return mdm_file_read(path, max, out, len);
}

/* A text file: NULL if unreadable, oversized or holding a NUL byte. */
static char *read_text(const struct facts_ctx *c, const char *rel, size_t max,
                       mdm_rc *rcp /* OUT, may be NULL */)
{
  char *p = NULL;
  size_t n = 0;
  mdm_rc rc = read_file(c, rel, max, &p, &n);
  if(!rc && memchr(p, '\0', n)) {
    free(p);
    p = NULL;
    rc = MDM_ERR_INVAL;
  }
  if(rcp)
    *rcp = rc;
  return rc ? NULL : p;
}

/* A one-value file (a sysfs attribute, a device-tree string): trimmed of
 * blanks, newlines and trailing NULs; NULL if unreadable or empty. */
static char *read_value(const struct facts_ctx *c, const char *rel)
{
  char *p = NULL, *s;
  size_t n = 0;
  if(read_file(c, rel, MDM_FACTS_MAX_SMALL, &p, &n))
    return NULL;
  while(n && (p[n - 1] == '\0' || isspace((unsigned char)p[n - 1])))
    n--;
  p[n] = '\0';
  for(s = p; isspace((unsigned char)*s); s++)
    ;
  if(!*s || memchr(p, '\0', n)) {
    free(p);
    return NULL;
  }
  memmove(p, s, strlen(s) + 1);
  return p;
}

static int path_is_dir(const struct facts_ctx *c, const char *rel)
{
  char path[PATH_MAX];
  struct stat st;
  return !ctx_path(c, rel, path) && !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* Does <root>/rel exist (a dangling link counts: an enabled unit's link may
 * point outside a fake root)? */
static int path_exists(const struct facts_ctx *c, const char *rel)
{
  char path[PATH_MAX];
  struct stat st;
  return !ctx_path(c, rel, path) && !lstat(path, &st);
}

/* The name of the next entry of d that does not start with '.' (devices,
 * interfaces and variables never do), or NULL at the end.  Borrowed; valid
 * until the next call on d. */
static const char *next_name(DIR *d)
{
  for(;;) {
    struct dirent *e = readdir(d);
    if(!e)
      return NULL;
    if(e->d_name[0] != '.')
      return e->d_name;
  }
}

/* Does directory <root>/rel have an entry (other than dot files)? */
static int dir_has_entries(const struct facts_ctx *c, const char *rel)
{
  char path[PATH_MAX];
  DIR *d;
  int found;
  if(ctx_path(c, rel, path))
    return 0;
  d = opendir(path);
  if(!d)
    return 0;
  found = next_name(d) != NULL;
  closedir(d);
  return found;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                    */
/* ---------------------------------------------------------------------- */

/* A string fact, or null when absent, empty, too long, holding control
 * characters or not UTF-8.  Takes ownership of s. */
static json_t *jstr_take(char *s)
{
  json_t *v = NULL;
  const unsigned char *q;
  if(s && *s && strlen(s) <= MAX_VALUE_LEN) {
    for(q = (const unsigned char *)s; *q && *q >= 0x20 && *q != 0x7f; q++)
      ;
    if(!*q)
      v = json_string(s); /* NULL if s is not UTF-8 */
  }
  free(s);
  return v ? v : json_null();
}

static json_t *jstr(const char *s)
{
  return jstr_take(s ? strdup(s) : NULL);
}

static json_t *jtri(enum mdm_tri t)
{
  return t == MDM_TRI_NULL ? json_null() : json_boolean(t == MDM_TRI_TRUE);
}

/* Set o[k] = v (taking v); remembers an allocation failure in *nomem. */
static void put(json_t *o, const char *k, json_t *v, int *nomem)
{
  if(json_object_set_new(o, k, v))
    *nomem = 1;
}

/* ---------------------------------------------------------------------- */
/* Identity                                                                */
/* ---------------------------------------------------------------------- */

static const char *const dmi_placeholders[] = {
  "To Be Filled By O.E.M.", "Default string", "System Serial Number",
  "System Product Name", "System manufacturer", "Not Specified",
  "Not Applicable", "None", "N/A", "0", "0123456789", "Invalid", NULL
};

static char *dmi_value(const struct facts_ctx *c, const char *attr)
{
  char rel[PATH_MAX];
  char *v;
  int i;
  if(mkrel(rel, "sys/class/dmi/id/%s", attr))
    return NULL;
  v = read_value(c, rel);
  for(i = 0; v && dmi_placeholders[i]; i++) {
    if(!strcasecmp(v, dmi_placeholders[i])) {
      free(v);
      v = NULL;
    }
  }
  return v;
}

static char *hostname(const struct facts_ctx *c)
{
  char *h = read_value(c, "proc/sys/kernel/hostname");
  char *text;
  const char *p;
  if(h && strcmp(h, "(none)"))
    return h;
  free(h);
  /* hostname(5): the first line that is not blank or a comment */
  text = read_text(c, "etc/hostname", MDM_FACTS_MAX_SMALL, NULL);
  h = NULL;
  for(p = text; p && *p && !h;) {
    const char *s = p, *e = strchr(p, '\n');
    if(!e)
      e = p + strlen(p);
    p = *e ? e + 1 : e;
    trim_span(&s, &e);
    if(s < e && *s != '#')
      h = dup_n(s, (size_t)(e - s));
  }
  free(text);
  return h;
}

static void collect_identity(const struct facts_ctx *c, json_t *o, int *nomem)
{
  char *serial = dmi_value(c, "product_serial");
  char *model = dmi_value(c, "product_name");
  if(!serial)
    serial = read_value(c, "sys/firmware/devicetree/base/serial-number");
  if(!model)
    model = read_value(c, "sys/firmware/devicetree/base/model");
  put(o, "serial", jstr_take(serial), nomem);
  put(o, "platform", json_string("linux"), nomem);
  put(o, "hostname", jstr_take(hostname(c)), nomem);
  put(o, "model", jstr_take(model), nomem);
  put(o, "manufacturer", jstr_take(dmi_value(c, "sys_vendor")), nomem);
}

/* ---------------------------------------------------------------------- */
/* Operating system                                                        */
/* ---------------------------------------------------------------------- */

static json_t *collect_os(const struct facts_ctx *c)
{
  json_t *os = json_object();
  mdm_rc rc;
  char *text = read_text(c, "etc/os-release", MDM_FACTS_MAX_SMALL, &rc);
  char *build = NULL;
  int nomem = 0;

  /* os-release(5): fall back only when /etc/os-release does not exist */
  if(rc == MDM_ERR_NOTFOUND)
    text = read_text(c, "usr/lib/os-release", MDM_FACTS_MAX_SMALL, NULL);
  if(text) {
    build = mdm_facts_env_get(text, "BUILD_ID");
    if(!build || !*build) {
      free(build);
      build = mdm_facts_env_get(text, "VERSION");
    }
  }
  put(os, "name", jstr_take(text ? mdm_facts_env_get(text, "NAME") : NULL),
      &nomem);
  put(os, "version",
      jstr_take(text ? mdm_facts_env_get(text, "VERSION_ID") : NULL), &nomem);
  put(os, "build", jstr_take(build), &nomem);
  put(os, "kernel", jstr_take(read_value(c, "proc/sys/kernel/osrelease")),
      &nomem);
  put(os, "id", jstr_take(text ? mdm_facts_env_get(text, "ID") : NULL),
      &nomem);
  free(text);
  if(nomem) {
    json_decref(os);
    os = NULL;
  }
  return os;
}

/* ---------------------------------------------------------------------- */
/* Encryption of the root file system                                      */
/* ---------------------------------------------------------------------- */

enum dev_match { BY_DEV, BY_NAME, BY_DM_NAME };

/* Is block device <root>/sys/block/<disk>[/<part>] the one wanted? */
static int dev_matches(const struct facts_ctx *c, const char *disk,
                       const char *part, enum dev_match how, const char *want)
{
  char rel[PATH_MAX];
  const char *attr = how == BY_DEV ? "dev" : "dm/name";
  char *v;
  int hit;

  if(how == BY_NAME)
    return !strcmp(part ? part : disk, want);
  if(part ? mkrel(rel, "sys/block/%s/%s/%s", disk, part, attr) :
            mkrel(rel, "sys/block/%s/%s", disk, attr))
    return 0;
  v = read_value(c, rel);
  hit = v && !strcmp(v, want);
  free(v);
  return hit;
}

/* Find the disk or partition under <root>/sys/block that matches want (its
 * "maj:min", its name, or its device-mapper name).  0 and its name in
 * name[NAME_MAX + 1] when found. */
static int find_blockdev(const struct facts_ctx *c, enum dev_match how,
                         const char *want, char *name)
{
  char path[PATH_MAX], rel[PATH_MAX];
  DIR *d, *pd;
  const char *disk, *part;
  int found = -1, n, pn;

  if(ctx_path(c, "sys/block", path))
    return -1;
  d = opendir(path);
  if(!d)
    return -1;
  for(n = 0; found && n < MAX_DIR_ENTRIES; n++) {
    size_t dl;
    disk = next_name(d);
    if(!disk)
      break;
    if(dev_matches(c, disk, NULL, how, want)) {
      found = mdm_strlcpy(name, disk, NAME_MAX + 1) ? -1 : 0;
      break;
    }
    if(how == BY_DM_NAME || mkrel(rel, "sys/block/%s", disk) ||
       ctx_path(c, rel, path))
      continue;
    pd = opendir(path);
    if(!pd)
      continue;
    /* partitions are named after their disk: sda1, nvme0n1p2 */
    dl = strlen(disk);
    for(pn = 0; pn < MAX_DIR_ENTRIES; pn++) {
      part = next_name(pd);
      if(!part)
        break;
      if(strncmp(part, disk, dl) || !part[dl] ||
         !dev_matches(c, disk, part, how, want))
        continue;
      found = mdm_strlcpy(name, part, NAME_MAX + 1) ? -1 : 0;
      break;
    }
    closedir(pd);
  }
  closedir(d);
  return found;
}

static const struct {
  const char *prefix;
  const char *method;
} crypt_types[] = {
  { "CRYPT-LUKS2-", "luks2" },      { "CRYPT-LUKS1-", "luks1" },
  { "CRYPT-PLAIN-", "dm-crypt" },   { "CRYPT-LOOPAES-", "dm-crypt" },
  { "CRYPT-TCRYPT-", "dm-crypt" },  { "CRYPT-BITLK-", "dm-crypt" },
  { "CRYPT-FVAULT2-", "dm-crypt" },
};

/* Is block device `name` (a disk, dm-N, md..., or a partition) encrypted?
 * *method is set when it is. */
static enum mdm_tri blk_encrypted(const struct facts_ctx *c, const char *name,
                                  int depth, const char **method)
{
  char rel[PATH_MAX], path[PATH_MAX], found[NAME_MAX + 1];
  const char *first = NULL, *m = NULL;
  enum mdm_tri r = MDM_TRI_TRUE, s;
  int is_dm, n_slaves = 0;
  DIR *d;

  if(depth > MAX_STACK_DEPTH || !*name || *name == '.' || strchr(name, '/'))
    return MDM_TRI_NULL;
  if(mkrel(rel, "sys/block/%s", name))
    return MDM_TRI_NULL;
  if(!path_is_dir(c, rel)) {
    /* a partition holds its data directly: it is no dm-crypt mapping */
    return find_blockdev(c, BY_NAME, name, found) ? MDM_TRI_NULL :
                                                   MDM_TRI_FALSE;
  }
  if(mkrel(rel, "sys/block/%s/dm", name))
    return MDM_TRI_NULL;
  is_dm = path_is_dir(c, rel);
  if(is_dm) {
    size_t i;
    char *uuid;
    if(mkrel(rel, "sys/block/%s/dm/uuid", name))
      return MDM_TRI_NULL;
    uuid = read_text(c, rel, MDM_FACTS_MAX_SMALL, NULL);
    if(!uuid)
      return MDM_TRI_NULL;
    for(i = 0; i < sizeof(crypt_types) / sizeof(crypt_types[0]); i++) {
      if(!strncmp(uuid, crypt_types[i].prefix, strlen(crypt_types[i].prefix)))
        m = crypt_types[i].method;
    }
    free(uuid);
    if(m) {
      *method = m;
      return MDM_TRI_TRUE;
    }
  }
  /* LVM, md, dm-integrity...: encrypted if all that lies beneath is */
  if(mkrel(rel, "sys/block/%s/slaves", name) || ctx_path(c, rel, path))
    return MDM_TRI_NULL;
  d = opendir(path);
  if(!d)
    return is_dm ? MDM_TRI_NULL : MDM_TRI_FALSE;
  while(r != MDM_TRI_FALSE && n_slaves < MAX_DIR_ENTRIES) {
    const char *slave = next_name(d);
    if(!slave)
      break;
    n_slaves++;
    s = blk_encrypted(c, slave, depth + 1, &m);
    if(s == MDM_TRI_FALSE)
      r = MDM_TRI_FALSE;
    else if(s == MDM_TRI_NULL)
      r = MDM_TRI_NULL;
    else if(!first)
      first = m;
  }
  closedir(d);
  if(n_slaves == 0)
    return MDM_TRI_FALSE;
  if(r == MDM_TRI_TRUE)
    *method = first;
  return r;
}

static json_t *collect_encryption(const struct facts_ctx *c)
{
  json_t *enc = json_object();
  char *text = read_text(c, "proc/self/mountinfo", MDM_FACTS_MAX_LARGE, NULL);
  struct mdm_facts_mount m;
  enum mdm_tri t = MDM_TRI_NULL;
  const char *method = NULL;
  char name[NAME_MAX + 1], want[32];
  int nomem = 0, found = -1;

  if(text && !mdm_facts_mountinfo_root(text, &m)) {
    if(m.major != 0) {
      snprintf(want, sizeof(want), "%u:%u", m.major, m.minor);
      found = find_blockdev(c, BY_DEV, want, name);
    }
    /* anonymous device numbers (btrfs): go by the source device */
    else if(!strncmp(m.source, "/dev/mapper/", 12) && m.source[12])
      found = find_blockdev(c, BY_DM_NAME, m.source + 12, name);
    else if(!strncmp(m.source, "/dev/", 5) && m.source[5] &&
            !strchr(m.source + 5, '/'))
      found = find_blockdev(c, BY_NAME, m.source + 5, name);
    if(!found)
      t = blk_encrypted(c, name, 0, &method);
  }
  free(text);
  put(enc, "root_encrypted", jtri(t), &nomem);
  put(enc, "method", t == MDM_TRI_TRUE ? jstr(method) : json_null(), &nomem);
  if(nomem) {
    json_decref(enc);
    enc = NULL;
  }
  return enc;
}

/* ---------------------------------------------------------------------- */
/* Integrity                                                               */
/* ---------------------------------------------------------------------- */

static enum mdm_tri secure_boot(const struct facts_ctx *c)
{
  char *p = NULL;
  size_t n = 0;
  enum mdm_tri t;
  mdm_rc rc;

  rc = read_file(c, "sys/firmware/efi/efivars/SecureBoot-" EFI_GLOBAL_GUID,
                 64, &p, &n);
  if(!rc) {
    t = mdm_facts_efivar_bool((const unsigned char *)p, n);
    free(p);
    return t;
  }
  if(rc != MDM_ERR_NOTFOUND)
    return MDM_TRI_NULL;
  /* the older sysfs interface holds the value byte alone */
  rc = read_file(c, "sys/firmware/efi/vars/SecureBoot-" EFI_GLOBAL_GUID "/data",
                 64, &p, &n);
  if(!rc) {
    t = n == 1 && (unsigned char)p[0] <= 1 ?
          (p[0] ? MDM_TRI_TRUE : MDM_TRI_FALSE) : MDM_TRI_NULL;
    free(p);
    return t;
  }
  if(rc != MDM_ERR_NOTFOUND)
    return MDM_TRI_NULL;
  if(dir_has_entries(c, "sys/firmware/efi/efivars") ||
     dir_has_entries(c, "sys/firmware/efi/vars"))
    return MDM_TRI_FALSE; /* UEFI variables visible, no SecureBoot among them */
  if(path_exists(c, "sys/firmware/efi"))
    return MDM_TRI_NULL;  /* UEFI, but its variables are not mounted */
  if(dir_has_entries(c, "sys/firmware"))
    return MDM_TRI_FALSE; /* legacy BIOS boot: there is no Secure Boot */
  return MDM_TRI_NULL;    /* no view of the firmware (a container) */
}

static json_t *collect_integrity(const struct facts_ctx *c)
{
  json_t *in = json_object();
  char *text, *v;
  enum mdm_tri t = MDM_TRI_NULL;
  long long tainted;
  int nomem = 0;

  text = read_text(c, "etc/passwd", MDM_FACTS_MAX_LARGE, NULL);
  put(in, "rooted", jtri(text ? mdm_facts_passwd_rooted(text) : MDM_TRI_NULL),
      &nomem);
  free(text);
  put(in, "secure_boot", jtri(secure_boot(c)), &nomem);

  v = read_value(c, "proc/sys/kernel/tainted");
  if(v && isdigit((unsigned char)*v) &&
     !mdm_parse_int(v, 0, LLONG_MAX, &tainted))
    t = tainted ? MDM_TRI_TRUE : MDM_TRI_FALSE;
  free(v);
  put(in, "kernel_tainted", jtri(t), &nomem);

  text = read_text(c, "sys/kernel/security/lockdown", MDM_FACTS_MAX_SMALL,
                   NULL);
  put(in, "lockdown", jstr_take(text ? mdm_facts_lockdown_mode(text) : NULL),
      &nomem);
  free(text);
  if(nomem) {
    json_decref(in);
    in = NULL;
  }
  return in;
}

/* ---------------------------------------------------------------------- */
/* Security                                                                */
/* ---------------------------------------------------------------------- */

static const char *const firewall_enabled_paths[] = {
  "etc/systemd/system/sysinit.target.wants/nftables.service",
  "etc/systemd/system/multi-user.target.wants/nftables.service",
  "etc/systemd/system/multi-user.target.wants/firewalld.service",
  "etc/runlevels/boot/nftables", "etc/runlevels/default/nftables",
  "etc/runlevels/boot/iptables", "etc/runlevels/default/iptables",
  "etc/runlevels/default/firewalld", NULL
};

static enum mdm_tri firewall_enabled(const struct facts_ctx *c)
{
  char *text = read_text(c, "etc/ufw/ufw.conf", MDM_FACTS_MAX_SMALL, NULL);
  char *v = text ? mdm_facts_env_get(text, "ENABLED") : NULL;
  enum mdm_tri ufw = MDM_TRI_NULL;
  int i;

  if(v && !strcasecmp(v, "yes"))
    ufw = MDM_TRI_TRUE;
  else if(v && !strcasecmp(v, "no"))
    ufw = MDM_TRI_FALSE;
  free(v);
  free(text);
  if(ufw == MDM_TRI_TRUE)
    return ufw;
  for(i = 0; firewall_enabled_paths[i]; i++)
    if(path_exists(c, firewall_enabled_paths[i]))
      return MDM_TRI_TRUE;
  return ufw;
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dconf's system database: key files in etc/dconf/db/local.d, read in name
 * order, a later file overriding an earlier one. */
static enum mdm_tri screen_lock_enabled(const struct facts_ctx *c)
{
  char path[PATH_MAX], *names[MAX_DCONF_FILES];
  size_t n_names = 0, i;
  enum mdm_tri r = MDM_TRI_NULL;
  DIR *d;
  int n;

  if(ctx_path(c, "etc/dconf/db/local.d", path))
    return MDM_TRI_NULL;
  d = opendir(path);
  if(!d)
    return MDM_TRI_NULL;
  for(n = 0; n_names < MAX_DCONF_FILES && n < MAX_DIR_ENTRIES; n++) {
    const char *name = next_name(d);
    if(!name)
      break;
    if(name[strlen(name) - 1] == '~') /* an editor's backup */
      continue;
    names[n_names] = strdup(name);
    if(names[n_names])
      n_names++;
  }
  closedir(d);
  qsort(names, n_names, sizeof(names[0]), cmp_names);
  for(i = 0; i < n_names; i++) {
    char *text = NULL;
    enum mdm_tri t;
    if(!mkrel(path, "etc/dconf/db/local.d/%s", names[i]))
      text = read_text(c, path, MDM_FACTS_MAX_SMALL,
                       NULL); /* NULL for the locks/ directory too */
    t = text ? mdm_facts_dconf_lock_enabled(text) : MDM_TRI_NULL;
    if(t != MDM_TRI_NULL)
      r = t;
    free(text);
    free(names[i]);
  }
  return r;
}

static json_t *collect_security(const struct facts_ctx *c)
{
  json_t *sec = json_object();
  int nomem = 0;
  put(sec, "firewall_enabled", jtri(firewall_enabled(c)), &nomem);
  put(sec, "screen_lock_enabled", jtri(screen_lock_enabled(c)), &nomem);
  put(sec, "password_age_days", json_null(), &nomem);
  if(nomem) {
    json_decref(sec);
    sec = NULL;
  }
  return sec;
}

/* ---------------------------------------------------------------------- */
/* Network                                                                 */
/* ---------------------------------------------------------------------- */

/* Is interface `ifname` a VPN tunnel that is up?  tun*, tap*, wg*, or any
 * WireGuard interface (uevent DEVTYPE=wireguard), with operstate up or
 * unknown (what tun and WireGuard devices report when running). */
static int vpn_up(const struct facts_ctx *c, const char *ifname)
{
  char rel[PATH_MAX];
  char *v;
  int is_vpn = !strncmp(ifname, "tun", 3) || !strncmp(ifname, "tap", 3) ||
               !strncmp(ifname, "wg", 2);
  int up;

  if(!is_vpn) {
    if(mkrel(rel, "sys/class/net/%s/uevent", ifname))
      return 0;
    v = read_text(c, rel, MDM_FACTS_MAX_SMALL, NULL);
    is_vpn = v && (!strncmp(v, "DEVTYPE=wireguard\n", 18) ||
                   strstr(v, "\nDEVTYPE=wireguard\n"));
    free(v);
  }
  if(!is_vpn || mkrel(rel, "sys/class/net/%s/operstate", ifname))
    return 0;
  v = read_value(c, rel);
  up = v && (!strcmp(v, "up") || !strcmp(v, "unknown"));
  free(v);
  return up;
}

static enum mdm_tri vpn_connected(const struct facts_ctx *c)
{
  char path[PATH_MAX];
  DIR *d;
  enum mdm_tri r = MDM_TRI_FALSE;
  int n;

  if(ctx_path(c, "sys/class/net", path))
    return MDM_TRI_NULL;
  d = opendir(path);
  if(!d)
    return MDM_TRI_NULL;
  for(n = 0; r == MDM_TRI_FALSE && n < MAX_DIR_ENTRIES; n++) {
    const char *ifname = next_name(d);
    if(!ifname)
      break;
    if(vpn_up(c, ifname))
      r = MDM_TRI_TRUE;
  }
  closedir(d);
  return r;
}

static json_t *collect_network(const struct facts_ctx *c)
{
  json_t *net = json_object();
  int nomem = 0;
  put(net, "ssid", json_null(), &nomem);
  put(net, "vpn_connected", jtri(vpn_connected(c)), &nomem);
  if(nomem) {
    json_decref(net);
    net = NULL;
  }
  return net;
}

/* ---------------------------------------------------------------------- */
/* Entry point                                                             */
/* ---------------------------------------------------------------------- */

/* A root that does not exist or is not a directory is MDM_ERR_NOTFOUND
 * (a mistyped --root must not report a device of nulls). */
mdm_rc mdm_facts_collect(const char *root, json_t **out)
{
  struct facts_ctx c;
  struct stat st;
  json_t *o = NULL, *agent = NULL;
  size_t l;
  int nomem = 0;
  mdm_rc rc = MDM_OK;

  *out = NULL;
  if(!root || !*root)
    root = "/";
  if(mdm_strlcpy(c.root, root, sizeof(c.root))) {
    rc = MDM_ERR_TOOBIG;
    goto out;
  }
  if(stat(c.root, &st) || !S_ISDIR(st.st_mode)) {
    rc = MDM_ERR_NOTFOUND;
    goto out;
  }
  for(l = strlen(c.root); l && c.root[l - 1] == '/'; l--)
    c.root[l - 1] = '\0';

  o = json_object();
  collect_identity(&c, o, &nomem);
  put(o, "os", collect_os(&c), &nomem);
  put(o, "encryption", collect_encryption(&c), &nomem);
  put(o, "integrity", collect_integrity(&c), &nomem);
  put(o, "security", collect_security(&c), &nomem);
  put(o, "network", collect_network(&c), &nomem);
  agent = json_object();
  put(agent, "version", json_string(MDM_VERSION), &nomem);
  put(o, "agent", agent, &nomem);
  if(!o || nomem) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  *out = o;
  o = NULL;
out:
  json_decref(o);
  return rc;
}
