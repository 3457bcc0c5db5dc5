/*
 * doc_int.h: internals of the policy document loader, shared by doc.c and
 * the kind validators (kind_compliance.c, kind_profile.c).  A validator
 * walks a document with a struct mdm_vctx that carries the dotted path of
 * the field being checked ("spec.rules[2].op"); mdm_verr() turns that path
 * into "FILE: line N: FIELD: what is wrong" using the document's line map.
 * Objects are checked against tables of struct mdm_vfield, so a kind's
 * rules read as data; cross-field rules stay in plain code next to them.
 */
#ifndef MDM_DOC_INT_H
#define MDM_DOC_INT_H

#include <stddef.h>
#include <jansson.h>
#include "core/rc.h"
#include "policy/doc.h"

#define MDM_VPATH_MAX 1024

struct mdm_vctx {
  const struct mdm_doc *d;   /* borrowed */
  char *err;                 /* OUT: the message of the first error */
  size_t errlen;
  char path[MDM_VPATH_MAX];  /* dotted path of the current field */
  size_t path_len;
};

/* Append ".key" (or "key" at the top) or "[i]" to the path.  Both return
 * the previous length, to give back to mdm_vpath_pop().  A path that would
 * not fit is cut short (only messages use it). */
size_t mdm_vpath_key(struct mdm_vctx *v, const char *key);
size_t mdm_vpath_index(struct mdm_vctx *v, size_t i);
void mdm_vpath_pop(struct mdm_vctx *v, size_t old_len);

/* Write "FILE: line N: PATH: <fmt>" into v->err for the current path and
 * return MDM_ERR_UNPROCESSABLE. */
mdm_rc mdm_verr(struct mdm_vctx *v, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* s for a message: in single quotes, at most 64 bytes, control characters
 * shown as '?'.  Returns buf. */
const char *mdm_vquote(const char *s, char *buf, size_t n);
#define MDM_VQUOTE_LEN 80

/* ---- field tables ----------------------------------------------------- */

/* Check val (the current path names it).  arg is the field's arg. */
typedef mdm_rc (*mdm_vcheck_fn)(struct mdm_vctx *v, json_t *val,
                                const void *arg);

struct mdm_vfield {
  const char *name;
  int is_required;
  mdm_vcheck_fn check;   /* NULL: any value */
  const void *arg;
};

struct mdm_vrange {        /* arg of mdm_vcheck_int */
  long long min, max;
};

struct mdm_vstrlen {       /* arg of mdm_vcheck_string: length in bytes */
  size_t min, max;
};

/* val must be a mapping.  With allow_unknown 0, a member that is not in
 * fields is an error ("unknown field").  A missing required field is an
 * error ("required field is missing").  Each present field's check runs
 * with the path extended by the field's name, in table order. */
mdm_rc mdm_vobject(struct mdm_vctx *v, json_t *val,
                   const struct mdm_vfield *fields, size_t n_fields,
                   int allow_unknown);

/* Checkers for struct mdm_vfield.check. */
mdm_rc mdm_vcheck_object(struct mdm_vctx *v, json_t *val, const void *arg);
mdm_rc mdm_vcheck_string(struct mdm_vctx *v, json_t *val,
                         const void *arg /* struct mdm_vstrlen or NULL */);
mdm_rc mdm_vcheck_int(struct mdm_vctx *v, json_t *val,
                      const void *arg /* struct mdm_vrange */);
mdm_rc mdm_vcheck_bool(struct mdm_vctx *v, json_t *val, const void *arg);
mdm_rc mdm_vcheck_enum(struct mdm_vctx *v, json_t *val,
                       const void *arg /* NULL-terminated const char *[] */);
mdm_rc mdm_vcheck_name(struct mdm_vctx *v, json_t *val, const void *arg);
mdm_rc mdm_vcheck_string_map(struct mdm_vctx *v, json_t *val,
                             const void *arg);
mdm_rc mdm_vcheck_duration(struct mdm_vctx *v, json_t *val,
                           const void *arg);
/* spec.assign: {platforms: [linux|android|ios|macos|windows], labels}. */
mdm_rc mdm_vcheck_assign(struct mdm_vctx *v, json_t *val, const void *arg);

/* Predicates. */
int mdm_is_dns_label(const char *s);
/* "30m", "24h", "7d", "90s": digits and one unit; *secs > 0 (may be NULL). */
int mdm_is_duration(const char *s, long long *secs);
/* Index of s in a NULL-terminated list, or -1. */
int mdm_str_index(const char *const *list, const char *s);

/* ---- kinds ------------------------------------------------------------ */

/* Validate a kind's spec; the path is "spec". */
typedef mdm_rc (*mdm_kind_validate_fn)(struct mdm_vctx *v, json_t *spec);

mdm_rc mdm_kind_compliance_validate(struct mdm_vctx *v, json_t *spec);
mdm_rc mdm_kind_profile_validate(struct mdm_vctx *v, json_t *spec);
mdm_rc mdm_kind_access_validate(struct mdm_vctx *v, json_t *spec);

#endif
