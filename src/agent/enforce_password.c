/*
 * enforce_password.c: the password setting on Linux, through the system's
 * own files under the root: min_length and min_classes become `minlen = N`
 * and `minclass = N` in /etc/security/pwquality.conf (libpwquality, which
 * pam_pwquality reads), max_age_days becomes `PASS_MAX_DAYS N` in
 * /etc/login.defs (the shadow suite: passwords set from now on).  The files
 * are edited in place: the keys' lines change, every other line and comment
 * stays, a missing key is appended.  An unchanged file is not rewritten.
 *
 * Without /etc/security (no libpwquality) the pwquality part is
 * not_supported; without /etc/login.defs (no shadow suite) the age part
 * fails.  The setting's state is the worst of its parts.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "agent/enforce.h"
#include "core/util.h"

struct part_result {
  enum mdm_enforce_state state;
  char detail[MDM_ENFORCE_DETAIL_MAX / 2 - 8];
  int is_changed;
};

/* Set each key of keys[n_keys] to vals[] in the file rel under the root. */
static void edit_file(const struct mdm_enforce_ctx *ctx, const char *rel,
                      enum mdm_kv_style style, const char *const *keys,
                      const char *const *vals, size_t n_keys,
                      int is_create_ok, struct part_result *pr)
{
  char path[PATH_MAX], *text = NULL, *next = NULL;
  size_t len = 0, i;
  unsigned mode = 0644;
  struct stat st;
  mdm_rc rc;

  rc = mdm_enforce_path(ctx, rel, path, sizeof(path));
  if(!rc)
    rc = mdm_file_read(path, MDM_ENFORCE_FILE_MAX, &text, &len);
  if(rc == MDM_ERR_NOTFOUND && is_create_ok) {
    text = strdup("");
    rc = text ? MDM_OK : MDM_ERR_NOMEM;
  }
  else if(!rc && stat(path, &st) == 0)
    mode = st.st_mode & 07777;
  if(rc == MDM_ERR_NOTFOUND) {
    pr->state = MDM_ENFORCE_FAILED;
    snprintf(pr->detail, sizeof(pr->detail), "%s not found",
             strrchr(rel, '/') + 1);
    goto out;
  }
  if(!rc && strlen(text) != len)
    rc = MDM_ERR_INVAL;
  if(rc) {
    pr->state = MDM_ENFORCE_FAILED;
    snprintf(pr->detail, sizeof(pr->detail), "cannot read '%s': %s", rel,
             rc == MDM_ERR_INVAL ? "not a text file" : mdm_strerror(rc));
    goto out;
  }
  for(i = 0; i < n_keys && !rc; i++) {
    rc = mdm_enforce_kv_set(text, keys[i], style, vals[i], &next);
    if(!rc) {
      free(text);
      text = next;
    }
  }
  if(!rc)
    rc = strlen(text) > MDM_ENFORCE_FILE_MAX ? MDM_ERR_TOOBIG :
         mdm_enforce_write(path, text, strlen(text), mode, &pr->is_changed);
  if(rc) {
    pr->state = MDM_ENFORCE_FAILED;
    snprintf(pr->detail, sizeof(pr->detail), "cannot write '%s': %s", rel,
             mdm_strerror(rc));
  }
out:
  free(text);
}

static int is_dir(const struct mdm_enforce_ctx *ctx, const char *rel)
{
  char path[PATH_MAX];
  struct stat st;
  return !mdm_enforce_path(ctx, rel, path, sizeof(path)) &&
         stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The integer member key in [lo, hi] as text into out[n]: 1 if present and
 * valid, 0 if absent, -1 if present and invalid. */
static int int_member(json_t *o, const char *key, long long lo, long long hi,
                      char *out, size_t n)
{
  json_t *v = json_object_get(o, key);
  if(!v)
    return 0;
  if(!json_is_integer(v) || json_integer_value(v) < lo ||
     json_integer_value(v) > hi)
    return -1;
  snprintf(out, n, "%lld", (long long)json_integer_value(v));
  return 1;
}

/* The worse of two states: failed, then not_supported, then applied. */
static enum mdm_enforce_state worse(enum mdm_enforce_state a,
                                    enum mdm_enforce_state b)
{
  if(a == MDM_ENFORCE_FAILED || b == MDM_ENFORCE_FAILED)
    return MDM_ENFORCE_FAILED;
  if(a == MDM_ENFORCE_NOT_SUPPORTED || b == MDM_ENFORCE_NOT_SUPPORTED)
    return MDM_ENFORCE_NOT_SUPPORTED;
  return MDM_ENFORCE_APPLIED;
}

void mdm_enforce_password(const struct mdm_enforce_ctx *ctx, json_t *value,
                          struct mdm_enforce_result *res)
{
  static const struct {
    const char *field, *key;
    long long lo, hi;
  } pwq[] = {
    {"min_length", "minlen", 1, 128},
    {"min_classes", "minclass", 0, 4},
  };
  const char *keys[2], *vals[2], *k;
  char nums[3][24];
  struct part_result parts[2];
  size_t n_pwq = 0, i;
  json_t *v;
  int has;

  memset(parts, 0, sizeof(parts));
  if(!json_is_object(value)) {
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "password: expected a mapping");
    return;
  }
  json_object_foreach(value, k, v) {
    if(strcmp(k, "min_length") && strcmp(k, "min_classes") &&
       strcmp(k, "max_age_days")) {
      mdm_enforce_set(res, MDM_ENFORCE_FAILED, "password.%.64s: not "
                      "supported by mdm-agent", k);
      return;
    }
  }
  for(i = 0; i < 2; i++) {
    has = int_member(value, pwq[i].field, pwq[i].lo, pwq[i].hi, nums[i],
                     sizeof(nums[i]));
    if(has < 0) {
      mdm_enforce_set(res, MDM_ENFORCE_FAILED, "password.%s: expected an "
                      "integer in %lld..%lld", pwq[i].field, pwq[i].lo,
                      pwq[i].hi);
      return;
    }
    if(has) {
      keys[n_pwq] = pwq[i].key;
      vals[n_pwq++] = nums[i];
    }
  }
  has = int_member(value, "max_age_days", 0, 99999, nums[2],
                   sizeof(nums[2]));
  if(has < 0) {
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "password.max_age_days: "
                    "expected an integer in 0..99999");
    return;
  }

  if(n_pwq) {
    if(!is_dir(ctx, MDM_ENFORCE_PWQUALITY_DIR)) {
      parts[0].state = MDM_ENFORCE_NOT_SUPPORTED;
      snprintf(parts[0].detail, sizeof(parts[0].detail),
               "libpwquality not installed");
    }
    else
      edit_file(ctx, MDM_ENFORCE_PWQUALITY, MDM_KV_EQUALS, keys, vals, n_pwq,
                1, &parts[0]);
  }
  if(has) {
    const char *key = "PASS_MAX_DAYS", *val = nums[2];
    edit_file(ctx, MDM_ENFORCE_LOGIN_DEFS, MDM_KV_SPACE, &key, &val, 1, 0,
              &parts[1]);
  }

  res->state = worse(parts[0].state, parts[1].state);
  res->is_changed = parts[0].is_changed || parts[1].is_changed;
  snprintf(res->detail, sizeof(res->detail), "%s%s%s", parts[0].detail,
           parts[0].detail[0] && parts[1].detail[0] ? "; " : "",
           parts[1].detail);
}
