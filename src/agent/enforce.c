/*
 * enforce.c: the Linux enforcer table and the helpers the enforcers share
 * (see enforce.h): paths under the root, write-if-different with an atomic
 * replace, and in-place edits of key/value configuration files that keep
 * every other line as it was.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "agent/enforce.h"
#include "core/util.h"

const struct mdm_enforcer mdm_enforcers_linux[] = {
  {"encryption", mdm_enforce_encryption, NULL},
  {"os_update", mdm_enforce_os_update, mdm_enforce_os_update_remove},
  {"password", mdm_enforce_password, NULL},
  {"vpn", mdm_enforce_vpn, mdm_enforce_vpn_remove},
  {NULL, NULL, NULL}
};

void mdm_enforce_set(struct mdm_enforce_result *res,
                     enum mdm_enforce_state state, const char *fmt, ...)
{
  va_list ap;
  res->state = state;
  res->detail[0] = '\0';
  if(!fmt)
    return;
  va_start(ap, fmt);
  vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
  va_end(ap);
}

mdm_rc mdm_enforce_path(const struct mdm_enforce_ctx *ctx, const char *rel,
                        char *out, size_t n)
{
  const char *root = ctx->root && ctx->root[0] ? ctx->root : "";
  size_t len = strlen(root);
  while(len && root[len - 1] == '/')
    len--;
  if(snprintf(out, n, "%.*s%s", (int)len, root, rel) >= (int)n)
    return MDM_ERR_TOOBIG;
  return MDM_OK;
}

/* The directory part of path into out[n]. */
static mdm_rc parent_dir(const char *path, char *out, size_t n)
{
  const char *slash = strrchr(path, '/');
  if(!slash || slash == path)
    return mdm_strlcpy(out, "/", n);
  if((size_t)(slash - path) >= n)
    return MDM_ERR_TOOBIG;
  memcpy(out, path, (size_t)(slash - path));
  out[slash - path] = '\0';
  return MDM_OK;
}

mdm_rc mdm_enforce_write(const char *path, const void *data, size_t len,
                         unsigned mode, int *is_changed)
{
  char dir[PATH_MAX], *old = NULL;
  size_t old_len = 0;
  struct stat st;
  mdm_rc rc;

  if(is_changed)
    *is_changed = 0;
  rc = mdm_file_read(path, len, &old, &old_len);
  if(!rc && old_len == len && !memcmp(old, data, len) &&
     stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    free(old);
    if((st.st_mode & 07777) == mode)
      return MDM_OK;
    if(chmod(path, mode) != 0)
      return MDM_ERR_IO;
    if(is_changed)
      *is_changed = 1;
    return MDM_OK;
  }
  free(old);
  if(rc && rc != MDM_ERR_NOTFOUND && rc != MDM_ERR_TOOBIG)
    return rc;
  rc = parent_dir(path, dir, sizeof(dir));
  if(!rc)
    rc = mdm_mkdirs(dir, 0755);
  if(!rc)
    rc = mdm_file_write_atomic(path, data, len, mode);
  if(!rc && is_changed)
    *is_changed = 1;
  return rc;
}

/* Does line[0..n) set key (an active line: not a comment)?  *val_at gets the
 * offset where its value starts (after the separator). */
static int kv_match(const char *line, size_t n, const char *key,
                    enum mdm_kv_style style, size_t *val_at)
{
  size_t i = 0, klen = strlen(key);
  while(i < n && (line[i] == ' ' || line[i] == '\t'))
    i++;
  if(n - i < klen || memcmp(line + i, key, klen))
    return 0;
  i += klen;
  if(style == MDM_KV_SPACE) {
    if(i >= n || (line[i] != ' ' && line[i] != '\t'))
      return 0;
    while(i < n && (line[i] == ' ' || line[i] == '\t'))
      i++;
  }
  else {
    while(i < n && (line[i] == ' ' || line[i] == '\t'))
      i++;
    if(i >= n || line[i] != '=')
      return 0;
    i++;
    while(i < n && (line[i] == ' ' || line[i] == '\t'))
      i++;
  }
  *val_at = i;
  return 1;
}

mdm_rc mdm_enforce_kv_set(const char *text, const char *key,
                          enum mdm_kv_style style, const char *value,
                          char **out)
{
  struct mdm_buf b;
  const char *p = text, *nl;
  int is_found = 0;
  mdm_rc rc = MDM_OK;

  *out = NULL;
  mdm_buf_init(&b, MDM_ENFORCE_FILE_MAX + 4096);
  while(*p && !rc) {
    size_t n, eol, val_at;
    nl = strchr(p, '\n');
    eol = nl ? (size_t)(nl - p) : strlen(p);
    n = eol;
    if(n && p[n - 1] == '\r')
      n--;
    if(kv_match(p, n, key, style, &val_at)) {
      is_found = 1;
      /* Keep what precedes the value; keep the line ending. */
      rc = mdm_buf_append(&b, p, val_at);
      if(!rc)
        rc = mdm_buf_puts(&b, value);
      if(!rc)
        rc = mdm_buf_append(&b, p + n, eol - n);
    }
    else
      rc = mdm_buf_append(&b, p, eol);
    if(!rc && nl)
      rc = mdm_buf_puts(&b, "\n");
    p = nl ? nl + 1 : p + eol;
  }
  if(!rc && !is_found) {
    if(b.len && b.data[b.len - 1] != '\n')
      rc = mdm_buf_puts(&b, "\n");
    if(!rc)
      rc = mdm_buf_printf(&b, style == MDM_KV_SPACE ? "%s\t%s\n" :
                          "%s = %s\n", key, value);
  }
  if(rc) {
    mdm_buf_release(&b);
    return rc;
  }
  *out = mdm_buf_steal(&b);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}
