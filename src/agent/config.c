/*
 * config.c: the agent's configuration file, agent.conf (see config.h for the
 * format).  Hook values are kept as written; the program word is resolved
 * against --root when the hook runs (actions_linux.c), so a root that holds
 * spaces still works.  managed_dir is resolved here.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent/config.h"
#include "agent/state.h"
#include "core/buf.h"
#include "core/util.h"

void mdm_agent_config_release(struct mdm_agent_config *cfg)
{
  free(cfg->lock_hook);
  free(cfg->wipe_hook);
  free(cfg->reboot_hook);
  free(cfg->os_update_command);
  free(cfg->managed_dir);
  memset(cfg, 0, sizeof(*cfg));
}

static int has_root(const char *root)
{
  return root && *root && strcmp(root, "/");
}

char *mdm_agent_config_path(const char *root, const char *p)
{
  struct mdm_buf b;
  size_t len;
  if(p[0] == '/' || !has_root(root)) {
    mdm_buf_init(&b, PATH_MAX);
    if(mdm_buf_printf(&b, "%s%s", p[0] == '/' ? "" : "/", p)) {
      mdm_buf_release(&b);
      return NULL;
    }
    return b.data;
  }
  len = strlen(root);
  while(len > 1 && root[len - 1] == '/')
    len--;
  mdm_buf_init(&b, PATH_MAX);
  if(mdm_buf_printf(&b, "%.*s/%s", (int)len, root, p)) {
    mdm_buf_release(&b);
    return NULL;
  }
  return b.data;
}

static int is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

static const char *const keys[] = {
  "lock_hook", "wipe_hook", "reboot_hook", "os_update_command", "managed_dir",
  "hook_timeout_s", NULL
};

mdm_rc mdm_agent_config_parse(const char *text, size_t len, const char *name,
                              const char *state_dir, const char *root,
                              struct mdm_agent_config *cfg,
                              char *err, size_t n)
{
  char *values[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
  int is_set[6] = {0, 0, 0, 0, 0, 0};
  size_t pos = 0, i;
  unsigned line = 0;
  mdm_rc rc = MDM_OK;

  memset(cfg, 0, sizeof(*cfg));
  cfg->hook_timeout_s = MDM_AGENT_HOOK_TIMEOUT_DEFAULT;
  while(pos < len) {
    const char *s = text + pos, *eol = memchr(s, '\n', len - pos), *eq;
    size_t n_line = eol ? (size_t)(eol - s) : len - pos;
    size_t ks, ke, vs, ve, k;
    pos += n_line + (eol ? 1 : 0);
    line++;
    if(n_line > MDM_AGENT_CONFIG_LINE_MAX) {
      snprintf(err, n, "cannot read '%s': line %u: longer than %d bytes",
               name, line, MDM_AGENT_CONFIG_LINE_MAX);
      rc = MDM_ERR_TOOBIG;
      goto out;
    }
    if(memchr(s, '\0', n_line)) {
      snprintf(err, n, "cannot read '%s': line %u: NUL byte", name, line);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    for(ks = 0; ks < n_line && is_blank(s[ks]); ks++)
      ;
    if(ks == n_line || s[ks] == '#')
      continue;
    eq = memchr(s, '=', n_line);
    if(!eq) {
      snprintf(err, n, "cannot read '%s': line %u: expected 'key = value'",
               name, line);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    for(ke = (size_t)(eq - s); ke > ks && is_blank(s[ke - 1]); ke--)
      ;
    for(vs = (size_t)(eq - s) + 1; vs < n_line && is_blank(s[vs]); vs++)
      ;
    for(ve = n_line; ve > vs && is_blank(s[ve - 1]); ve--)
      ;
    for(k = 0; keys[k]; k++)
      if(strlen(keys[k]) == ke - ks && !memcmp(keys[k], s + ks, ke - ks))
        break;
    if(!keys[k]) {
      snprintf(err, n, "cannot read '%s': line %u: unknown key '%.*s'", name,
               line, (int)(ke - ks > 64 ? 64 : ke - ks), s + ks);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    if(is_set[k]) {
      snprintf(err, n, "cannot read '%s': line %u: '%s' given twice", name,
               line, keys[k]);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    is_set[k] = 1;
    if(ve > vs) {
      values[k] = strndup(s + vs, ve - vs);
      if(!values[k]) {
        rc = MDM_ERR_NOMEM;
        snprintf(err, n, "cannot read '%s': out of memory", name);
        goto out;
      }
    }
  }

  if(values[5]) {
    long long t;
    if(mdm_parse_int(values[5], 1, MDM_AGENT_HOOK_TIMEOUT_MAX, &t)) {
      snprintf(err, n, "cannot read '%s': hook_timeout_s: expected an "
               "integer in 1..%d", name, MDM_AGENT_HOOK_TIMEOUT_MAX);
      rc = MDM_ERR_INVAL;
      goto out;
    }
    cfg->hook_timeout_s = (long)t;
  }
  /* Hooks: as written, or the default when the key is absent. */
  cfg->lock_hook = values[0];
  cfg->wipe_hook = values[1];
  cfg->reboot_hook = values[2];
  cfg->os_update_command = values[3];
  values[0] = values[1] = values[2] = values[3] = NULL;
  if(!is_set[0] && !has_root(root))
    cfg->lock_hook = strdup(MDM_AGENT_DEFAULT_LOCK);
  if(!is_set[2] && !has_root(root))
    cfg->reboot_hook = strdup(MDM_AGENT_DEFAULT_REBOOT);
  if(values[4])
    cfg->managed_dir = mdm_agent_config_path(root, values[4]);
  else {
    char p[PATH_MAX];
    if(!mdm_state_path(state_dir, MDM_AGENT_MANAGED_DIR, p, sizeof(p)))
      cfg->managed_dir = strdup(p);
  }
  if(!cfg->managed_dir || (!is_set[0] && !has_root(root) && !cfg->lock_hook) ||
     (!is_set[2] && !has_root(root) && !cfg->reboot_hook)) {
    rc = MDM_ERR_NOMEM;
    snprintf(err, n, "cannot read '%s': out of memory", name);
  }
out:
  for(i = 0; i < 6; i++)
    free(values[i]);
  if(rc)
    mdm_agent_config_release(cfg);
  return rc;
}

mdm_rc mdm_agent_config_load(const char *path, const char *state_dir,
                             const char *root, struct mdm_agent_config *cfg,
                             char *err, size_t n)
{
  char def[PATH_MAX], *text = NULL;
  size_t len = 0;
  const char *file = path;
  mdm_rc rc;

  memset(cfg, 0, sizeof(*cfg));
  if(!file) {
    rc = mdm_state_path(state_dir, MDM_AGENT_CONFIG_FILE, def, sizeof(def));
    if(rc) {
      snprintf(err, n, "state dir path too long");
      return rc;
    }
    file = def;
  }
  rc = mdm_file_read(file, MDM_AGENT_CONFIG_MAX, &text, &len);
  if(rc == MDM_ERR_NOTFOUND && !path)
    return mdm_agent_config_parse("", 0, file, state_dir, root, cfg, err, n);
  if(rc == MDM_ERR_NOTFOUND)
    snprintf(err, n, "cannot read '%s': no such file", file);
  else if(rc == MDM_ERR_TOOBIG)
    snprintf(err, n, "cannot read '%s': larger than %d bytes", file,
             MDM_AGENT_CONFIG_MAX);
  else if(rc)
    snprintf(err, n, "cannot read '%s': %s", file, mdm_strerror(rc));
  if(rc)
    return rc;
  rc = mdm_agent_config_parse(text, len, file, state_dir, root, cfg, err, n);
  free(text);
  return rc;
}
