/*
 * config.c: resolve mdmctl's server, token and CA file from flags, the
 * environment and the config file (see config.h for the order).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/config.h"
#include "core/buf.h"
#include "core/util.h"

#define CONF_MAX_FILE (64 * 1024)
#define CONF_MAX_PATH 4096

/* The values a config file set (owned). */
struct file_vals {
  char *server;
  char *token;
  char *token_file;
  char *ca_file;
};

static void file_vals_release(struct file_vals *fv)
{
  free(fv->server);
  free(fv->token);
  free(fv->token_file);
  free(fv->ca_file);
}

static const char *env_nonempty(const char *name)
{
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* Why reading path failed, for a message; errno is read at once. */
static const char *read_failure(mdm_rc rc, size_t max)
{
  static char msg[64];
  if(rc == MDM_ERR_NOTFOUND)
    return "No such file or directory";
  if(rc == MDM_ERR_TOOBIG) {
    snprintf(msg, sizeof(msg), "larger than %zu KiB", max / 1024);
    return msg;
  }
  if(rc == MDM_ERR_NOMEM)
    return "out of memory";
  return errno ? strerror(errno) : "i/o error";
}

static void warn_if_exposed(const char *path)
{
  struct stat st;
  if(stat(path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
    cli_warn("'%s' holds an API token and is readable by group or others; "
             "run 'chmod 600 %s'", path, path);
}

/* Is every byte of the token a visible ASCII character?  Anything else
 * could not travel in an Authorization header. */
static int token_is_clean(const char *t)
{
  const unsigned char *p;
  if(!*t)
    return 0;
  for(p = (const unsigned char *)t; *p; p++)
    if(*p <= 0x20 || *p >= 0x7f)
      return 0;
  return 1;
}

static char *trim(char *s)
{
  char *e;
  while(*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  e = s + strlen(s);
  while(e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
                  e[-1] == '\n'))
    *--e = '\0';
  return s;
}

/* Read the first line of a token file into *out (owned). */
static mdm_rc read_token_file(const char *path, char **out, char *err,
                              size_t err_len)
{
  char *text = NULL, *nl, *t;
  mdm_rc rc;

  errno = 0;
  rc = mdm_file_read(path, CONF_MAX_FILE, &text, NULL);
  if(rc) {
    snprintf(err, err_len, "cannot read token file '%s': %s", path,
             read_failure(rc, CONF_MAX_FILE));
    return rc;
  }
  nl = strchr(text, '\n');
  if(nl)
    *nl = '\0';
  t = trim(text);
  if(!*t) {
    snprintf(err, err_len, "token file '%s' is empty", path);
    free(text);
    return MDM_ERR_INVAL;
  }
  warn_if_exposed(path);
  *out = strdup(t);
  free(text);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}

/* Resolve a path written in the config file: "~/x" is under $HOME, a
 * relative path is relative to the config file's directory. */
static char *conf_path(const char *config_path, const char *v)
{
  struct mdm_buf b;
  const char *home = env_nonempty("HOME");
  const char *slash = strrchr(config_path, '/');

  mdm_buf_init(&b, CONF_MAX_PATH);
  if(v[0] == '~' && v[1] == '/' && home) {
    if(mdm_buf_puts(&b, home) || mdm_buf_puts(&b, v + 1))
      goto fail;
  }
  else if(v[0] != '/' && slash) {
    if(mdm_buf_append(&b, config_path, (size_t)(slash - config_path) + 1) ||
       mdm_buf_puts(&b, v))
      goto fail;
  }
  else if(mdm_buf_puts(&b, v))
    goto fail;
  return mdm_buf_steal(&b);
fail:
  mdm_buf_release(&b);
  return NULL;
}

static mdm_rc set_val(char **slot, const char *v)
{
  char *d = strdup(v);
  if(!d)
    return MDM_ERR_NOMEM;
  free(*slot);
  *slot = d;
  return MDM_OK;
}

/* Parse the text of the config file at path into fv. */
static mdm_rc conf_parse(const char *path, char *text, struct file_vals *fv,
                         char *err, size_t err_len)
{
  char *line = text, *next;
  int lineno = 0;
  mdm_rc rc = MDM_OK;

  for(; line; line = next) {
    char *eq, *key, *val;
    size_t vlen;

    next = strchr(line, '\n');
    if(next)
      *next++ = '\0';
    lineno++;
    line = trim(line);
    if(!*line || *line == '#')
      continue;
    eq = strchr(line, '=');
    if(!eq) {
      snprintf(err, err_len, "cannot read config file '%s': line %d: "
               "expected 'key = value'", path, lineno);
      return MDM_ERR_INVAL;
    }
    *eq = '\0';
    key = trim(line);
    val = trim(eq + 1);
    vlen = strlen(val);
    if(vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
      val[vlen - 1] = '\0';
      val++;
    }
    if(!strcmp(key, "server"))
      rc = set_val(&fv->server, val);
    else if(!strcmp(key, "token"))
      rc = set_val(&fv->token, val);
    else if(!strcmp(key, "token_file") || !strcmp(key, "ca_file")) {
      char *p = conf_path(path, val);
      if(!p)
        return MDM_ERR_NOMEM;
      rc = set_val(key[0] == 't' ? &fv->token_file : &fv->ca_file, p);
      free(p);
    }
    else
      /* Not an error, so that an older mdmctl reads a newer file. */
      cli_warn("'%s': line %d: unknown key '%s'", path, lineno, key);
    if(rc)
      return rc;
  }
  return MDM_OK;
}

/* The config file's path (owned) and whether it must exist. */
static char *config_file_path(int *must_exist)
{
  struct mdm_buf b;
  const char *v;

  *must_exist = 0;
  v = env_nonempty("MDM_CONFIG");
  if(v) {
    *must_exist = 1;
    return strdup(v);
  }
  mdm_buf_init(&b, CONF_MAX_PATH);
  v = env_nonempty("XDG_CONFIG_HOME");
  if(v && v[0] == '/') {
    if(mdm_buf_printf(&b, "%s/mdm/config", v))
      goto fail;
    return mdm_buf_steal(&b);
  }
  v = env_nonempty("HOME");
  if(!v || mdm_buf_printf(&b, "%s/.config/mdm/config", v))
    goto fail;
  return mdm_buf_steal(&b);
fail:
  mdm_buf_release(&b);
  return NULL;
}

mdm_rc cli_conf_load(struct cli_conf *c, const struct cli_conf_flags *f,
                     char *err, size_t err_len)
{
  struct file_vals fv;
  char *text = NULL;
  const char *v, *token_from = NULL, *env_token, *env_token_file;
  int must_exist;
  mdm_rc rc = MDM_OK;

  memset(c, 0, sizeof(*c));
  memset(&fv, 0, sizeof(fv));
  snprintf(err, err_len, "out of memory");

  /* The config file, if any. */
  c->config_path = config_file_path(&must_exist);
  if(c->config_path) {
    errno = 0;
    rc = mdm_file_read(c->config_path, CONF_MAX_FILE, &text, NULL);
    if(rc == MDM_ERR_NOTFOUND && !must_exist)
      rc = MDM_OK;
    else if(rc) {
      snprintf(err, err_len, "cannot read config file '%s': %s",
               c->config_path, read_failure(rc, CONF_MAX_FILE));
      goto out;
    }
    else {
      rc = conf_parse(c->config_path, text, &fv, err, err_len);
      if(rc)
        goto out;
      if(fv.token)
        warn_if_exposed(c->config_path);
    }
  }

  /* Server. */
  v = f->server;
  if(!v)
    v = env_nonempty("MDM_SERVER");
  if(!v)
    v = fv.server;
  if(!v)
    v = CLI_DEFAULT_SERVER;
  c->server = strdup(v);
  if(!c->server) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }

  /* Token: a literal token or a file at each level, the literal first. */
  env_token = env_nonempty("MDM_TOKEN");
  env_token_file = env_nonempty("MDM_TOKEN_FILE");
  if(f->token) {
    c->token = strdup(f->token);
    token_from = "--token";
  }
  else if(f->token_file)
    rc = read_token_file(f->token_file, &c->token, err, err_len);
  else if(env_token) {
    c->token = strdup(env_token);
    token_from = "MDM_TOKEN";
  }
  else if(env_token_file)
    rc = read_token_file(env_token_file, &c->token, err, err_len);
  else if(fv.token) {
    c->token = strdup(fv.token);
    token_from = c->config_path;
  }
  else if(fv.token_file)
    rc = read_token_file(fv.token_file, &c->token, err, err_len);
  if(rc)
    goto out;
  if(token_from && !c->token) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(c->token) {
    /* Forgive the whitespace that "export MDM_TOKEN=..." or an editor may
     * leave around it. */
    char *t = trim(c->token);
    memmove(c->token, t, strlen(t) + 1);
  }
  if(c->token && !token_is_clean(c->token)) {
    snprintf(err, err_len, "the API token from %s %s",
             token_from ? token_from : "the token file",
             *c->token ? "contains a space or a control character"
                       : "is empty");
    rc = MDM_ERR_INVAL;
    goto out;
  }

  /* CA file. */
  v = f->ca_file;
  if(!v)
    v = env_nonempty("MDM_CA_FILE");
  if(!v)
    v = fv.ca_file;
  if(v) {
    c->ca_file = strdup(v);
    if(!c->ca_file) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
  }

out:
  free(text);
  file_vals_release(&fv);
  if(rc)
    cli_conf_release(c);
  return rc;
}

void cli_conf_release(struct cli_conf *c)
{
  free(c->server);
  if(c->token) {
    /* Do not leave the secret in freed memory. */
    volatile char *p = c->token;
    while(*p)
      *p++ = '\0';
    free(c->token);
  }
  free(c->ca_file);
  free(c->config_path);
  memset(c, 0, sizeof(*c));
}
