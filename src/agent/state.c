/*
 * state.c: credentials and last-seen facts in the agent's state directory
 * (see state.h).  Everything read back is checked for type and size: the
 * directory may have been edited by hand or damaged by a full disk.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"

#define CREDS_FILE "credentials.json"
#define FACTS_FILE "last_facts.json"
#define CREDS_MAX (64 * 1024)
#define FACTS_MAX (1024 * 1024)
#define FIELD_MAX 8192
#define PEM_MAX 8192

static void scrub(char *s)
{
  volatile char *p = s;
  while(p && *p)
    *p++ = '\0';
}

static void creds_mqtt_release(struct mdm_creds *c)
{
  scrub(c->mqtt_password);
  free(c->mqtt_url);
  free(c->mqtt_topic);
  free(c->mqtt_username);
  free(c->mqtt_password);
  c->mqtt_url = c->mqtt_topic = c->mqtt_username = c->mqtt_password = NULL;
}

void mdm_creds_release(struct mdm_creds *c)
{
  scrub(c->device_token);
  creds_mqtt_release(c);
  free(c->server);
  free(c->device_id);
  free(c->device_token);
  free(c->ca_file);
  free(c->policy_key);
  memset(c, 0, sizeof(*c));
}

long long mdm_state_clamp_interval(long long s)
{
  if(s < MDM_INTERVAL_MIN)
    return MDM_INTERVAL_MIN;
  if(s > MDM_INTERVAL_MAX)
    return MDM_INTERVAL_MAX;
  return s;
}

mdm_rc mdm_state_prepare(const char *dir)
{
  struct stat st;
  mdm_rc rc = mdm_mkdirs(dir, 0700);
  if(rc)
    return rc;
  if(stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return MDM_ERR_IO;
  if((st.st_mode & 077) && chmod(dir, 0700) != 0)
    mdm_warn("state dir '%s' is readable by others and cannot be tightened",
             dir);
  return MDM_OK;
}

mdm_rc mdm_state_path(const char *dir, const char *name, char *out, size_t n)
{
  if(snprintf(out, n, "%s/%s", dir, name) >= (int)n)
    return MDM_ERR_TOOBIG;
  return MDM_OK;
}

/* A copy of a string member, NULL if absent (or, when optional, null or
 * ""); 0 if present but not a short string without control characters. */
static int creds_str(json_t *o, const char *key, int is_required, char **out)
{
  json_t *v = json_object_get(o, key);
  const char *s;
  size_t i, len;
  *out = NULL;
  if(!v || json_is_null(v) ||
     (!is_required && json_is_string(v) && !json_string_length(v)))
    return !is_required;
  if(!json_is_string(v))
    return 0;
  s = json_string_value(v);
  len = json_string_length(v);
  if(!len || len > FIELD_MAX || strlen(s) != len)
    return 0;
  for(i = 0; i < len; i++)
    if((unsigned char)s[i] < 0x20)
      return 0;
  *out = strdup(s);
  return *out != NULL;
}

/* A copy of an optional PEM member (printable lines), NULL if absent; 0 if
 * present but not such a string. */
static int creds_pem(json_t *o, const char *key, char **out)
{
  json_t *v = json_object_get(o, key);
  const char *s;
  size_t i, len;
  *out = NULL;
  if(!v || json_is_null(v))
    return 1;
  if(!json_is_string(v))
    return 0;
  s = json_string_value(v);
  len = json_string_length(v);
  if(!len || len > PEM_MAX || strlen(s) != len)
    return 0;
  for(i = 0; i < len; i++)
    if(((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\r') ||
       (unsigned char)s[i] >= 0x7f)
      return 0;
  *out = strdup(s);
  return *out != NULL;
}

/* A printable string member of 1..FIELD_MAX bytes (no spaces when
 * !is_spaced), or NULL. */
static const char *mqtt_str(json_t *o, const char *key, int is_spaced)
{
  json_t *v = json_object_get(o, key);
  const char *s;
  size_t i, len;
  if(!json_is_string(v))
    return NULL;
  s = json_string_value(v);
  len = json_string_length(v);
  if(!len || len > FIELD_MAX || strlen(s) != len)
    return NULL;
  for(i = 0; i < len; i++)
    if((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f ||
       (!is_spaced && s[i] == ' '))
      return NULL;
  return s;
}

int mdm_state_take_mqtt(json_t *v, const char *device_id, struct mdm_creds *c)
{
  const char *url, *topic, *user, *pass, *tenant_end;
  size_t id_len = device_id ? strlen(device_id) : 0, t_len;
  char *n_url = NULL, *n_topic = NULL, *n_user = NULL, *n_pass = NULL;

  if(!json_is_object(v) || !id_len)
    return 0;
  url = mqtt_str(v, "url", 0);
  topic = mqtt_str(v, "topic", 0);
  user = mqtt_str(v, "username", 0);
  pass = mqtt_str(v, "password", 1);
  if(!url || !topic || !user || !pass)
    return 0;
  if(strncmp(url, "mqtt://", 7) && strncmp(url, "mqtts://", 8))
    return 0;
  /* mdm/<tenant>/<device_id>/cmd: this device's own topic, no wildcards. */
  if(strncmp(topic, "mdm/", 4) || strpbrk(topic, "+#"))
    return 0;
  tenant_end = strchr(topic + 4, '/');
  if(!tenant_end || tenant_end == topic + 4)
    return 0;
  t_len = strlen(tenant_end + 1);
  if(t_len != id_len + 4 || strncmp(tenant_end + 1, device_id, id_len) ||
     strcmp(tenant_end + 1 + id_len, "/cmd"))
    return 0;
  n_url = strdup(url);
  n_topic = strdup(topic);
  n_user = strdup(user);
  n_pass = strdup(pass);
  if(!n_url || !n_topic || !n_user || !n_pass) {
    free(n_url);
    free(n_topic);
    free(n_user);
    scrub(n_pass);
    free(n_pass);
    return 0;
  }
  creds_mqtt_release(c);
  c->mqtt_url = n_url;
  c->mqtt_topic = n_topic;
  c->mqtt_username = n_user;
  c->mqtt_password = n_pass;
  return 1;
}

mdm_rc mdm_state_load_creds(const char *dir, struct mdm_creds *c, char *err,
                            size_t n)
{
  char path[PATH_MAX];
  char *s = NULL;
  json_t *o = NULL, *iv;
  struct stat st;
  mdm_rc rc;

  memset(c, 0, sizeof(*c));
  if(n)
    err[0] = '\0';
  rc = mdm_state_path(dir, CREDS_FILE, path, sizeof(path));
  if(rc)
    return rc;
  rc = mdm_file_read(path, CREDS_MAX, &s, NULL);
  if(rc == MDM_ERR_TOOBIG) {
    snprintf(err, n, "'%s' is too large", path);
    return MDM_ERR_INVAL;
  }
  if(rc) {
    if(rc != MDM_ERR_NOTFOUND)
      snprintf(err, n, "cannot read '%s'", path);
    return rc;
  }
  if(stat(path, &st) == 0 && (st.st_mode & 077)) {
    mdm_warn("'%s' was readable by others; setting mode 0600", path);
    chmod(path, 0600);
  }
  o = json_loads(s, 0, NULL);
  if(!json_is_object(o)) {
    snprintf(err, n, "'%s' is not a JSON object", path);
    rc = MDM_ERR_INVAL;
    goto out;
  }
  /* The token may be gone: over https the device certificate alone is a
   * credential (the run loop refuses a device that has neither). */
  if(!creds_str(o, "server", 1, &c->server) ||
     !creds_str(o, "device_id", 1, &c->device_id) ||
     !creds_str(o, "device_token", 0, &c->device_token) ||
     !creds_str(o, "ca_file", 0, &c->ca_file)) {
    snprintf(err, n, "'%s': server, device_id and device_token must be strings",
             path);
    rc = MDM_ERR_INVAL;
    goto out;
  }
  if(!creds_pem(o, "policy_key", &c->policy_key)) {
    snprintf(err, n, "'%s': policy_key must be a PEM public key", path);
    rc = MDM_ERR_INVAL;
    goto out;
  }
  iv = json_object_get(o, "checkin_interval_s");
  c->checkin_interval_s = json_is_integer(iv) ?
    mdm_state_clamp_interval(json_integer_value(iv)) : MDM_INTERVAL_DEFAULT;
  /* The broker only makes the agent faster: a file without one (enrolled
   * before the server had a broker) or with a damaged one still loads, and
   * the agent polls. */
  iv = json_object_get(o, "mqtt");
  if(iv && !json_is_null(iv) && !mdm_state_take_mqtt(iv, c->device_id, c))
    mdm_warn("'%s': ignoring an invalid mqtt object; polling only", path);
out:
  if(s) {
    memset(s, 0, strlen(s));
    free(s);
  }
  json_decref(o);
  if(rc)
    mdm_creds_release(c);
  return rc;
}

mdm_rc mdm_state_save_creds(const char *dir, const struct mdm_creds *c)
{
  char path[PATH_MAX];
  json_t *o;
  char *s = NULL;
  mdm_rc rc;

  rc = mdm_state_path(dir, CREDS_FILE, path, sizeof(path));
  if(rc)
    return rc;
  o = json_pack("{s:s, s:s, s:s?, s:I}", "server", c->server, "device_id",
                c->device_id, "device_token", c->device_token,
                "checkin_interval_s", (json_int_t)c->checkin_interval_s);
  if(!o)
    return MDM_ERR_NOMEM;
  if(c->ca_file)
    json_object_set_new(o, "ca_file", json_string(c->ca_file));
  if(c->policy_key)
    json_object_set_new(o, "policy_key", json_string(c->policy_key));
  if(c->mqtt_url && c->mqtt_topic && c->mqtt_username && c->mqtt_password) {
    json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "url", c->mqtt_url, "topic",
                          c->mqtt_topic, "username", c->mqtt_username,
                          "password", c->mqtt_password);
    if(!m || json_object_set_new(o, "mqtt", m)) {
      json_decref(o);
      return MDM_ERR_NOMEM;
    }
  }
  s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(o);
  if(!s)
    return MDM_ERR_NOMEM;
  rc = mdm_file_write_atomic(path, s, strlen(s), 0600);
  memset(s, 0, strlen(s));
  free(s);
  return rc;
}

mdm_rc mdm_state_load_facts(const char *dir, json_t **facts)
{
  char path[PATH_MAX];
  char *s = NULL;
  json_t *o;
  mdm_rc rc;

  *facts = NULL;
  rc = mdm_state_path(dir, FACTS_FILE, path, sizeof(path));
  if(rc)
    return rc;
  rc = mdm_file_read(path, FACTS_MAX, &s, NULL);
  if(rc == MDM_ERR_NOTFOUND)
    return rc;
  if(rc) {
    mdm_warn("cannot read '%s': %s; comparing facts from scratch", path,
             mdm_strerror(rc));
    return MDM_ERR_NOTFOUND;
  }
  o = json_loads(s, 0, NULL);
  free(s);
  if(!json_is_object(o)) {
    mdm_warn("'%s' is not a JSON object; comparing facts from scratch", path);
    json_decref(o);
    return MDM_ERR_NOTFOUND;
  }
  *facts = o;
  return MDM_OK;
}

mdm_rc mdm_state_save_facts(const char *dir, json_t *facts)
{
  char path[PATH_MAX];
  char *s;
  mdm_rc rc = mdm_state_path(dir, FACTS_FILE, path, sizeof(path));
  if(rc)
    return rc;
  s = json_dumps(facts, JSON_COMPACT | JSON_SORT_KEYS);
  if(!s)
    return MDM_ERR_NOMEM;
  rc = strlen(s) > FACTS_MAX ? MDM_ERR_TOOBIG :
       mdm_file_write_atomic(path, s, strlen(s), 0600);
  free(s);
  return rc;
}
