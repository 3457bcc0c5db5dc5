/*
 * mdm_mosquitto_auth.c: mosquitto's authentication and access control for
 * mdm (a broker plugin, API v5, mosquitto 2.0).  See
 * deploy/mosquitto/README.md.
 *
 * Who may log in:
 * - mdmd, as plugin_opt_admin_user (default "mdmd") with the broker secret
 *   (the first line of plugin_opt_password_file);
 * - a device, with its id as username AND client id, and the password
 *   derived from its id and the secret (src/crypto/mqttcred.h), unless the
 *   id is in the revoked list.
 * Nothing per device is stored here except the revoked ids, so enrolling a
 * million devices costs the broker nothing (mosquitto's dynamic-security
 * plugin rewrites its whole JSON file on every change, which is quadratic
 * in the fleet).
 *
 * What each may do:
 * - a device: subscribe to, and receive, mdm/<tenant>/<its id>/cmd only;
 *   publish nothing; unsubscribe freely.
 * - mdmd: publish wake-ups on mdm/<tenant>/<device>/cmd and revocations on
 *   $CONTROL/mdm-auth/v1; subscribe to $CONTROL/mdm-auth/v1/response.
 *
 * Revocation: mdmd publishes {"revoke": ["<device id>", ...]} on
 * $CONTROL/mdm-auth/v1.  Each new id is appended to plugin_opt_revoked_file
 * (fsync'd before the answer), the device's connection is closed, and the
 * answer {"revoked": [...]} goes back to mdmd on .../response.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include "crypto/mqttcred.h"

#define PLUGIN "mdm-auth"
/* Only the entry points are exported (the target hides everything else). */
#define EXPORT __attribute__((visibility("default")))
#define CONTROL_TOPIC "$CONTROL/mdm-auth/v1"
#define RESPONSE_TOPIC "$CONTROL/mdm-auth/v1/response"
#define SECRET_MAX 512
#define ID_LEN 36
#define REVOKE_MAX 10000          /* ids in one control message */

struct revoked {
  char (*slot)[ID_LEN + 1];       /* open addressing; "" is empty */
  size_t cap, n;                  /* cap: a power of two */
};

struct plugin {
  mosquitto_plugin_id_t *id;
  char admin_user[64];
  char secret[SECRET_MAX + 1];
  char revoked_path[4096];
  int revoked_fd;
  struct revoked rv;
};

static struct plugin g;

/* ---- the revoked set ------------------------------------------------------ */

static int is_device_id(const char *s)
{
  size_t i;
  if(!s || strlen(s) != ID_LEN)
    return 0;
  for(i = 0; i < ID_LEN; i++) {
    if(i == 8 || i == 13 || i == 18 || i == 23) {
      if(s[i] != '-')
        return 0;
    }
    else if(!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
      return 0;
  }
  return 1;
}

static size_t id_hash(const char *id)
{
  size_t h = 1469598103934665603ULL, i;
  for(i = 0; i < ID_LEN; i++)
    h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
  return h;
}

static int rv_has(const struct revoked *r, const char *id)
{
  size_t i;
  if(!r->cap)
    return 0;
  for(i = id_hash(id) & (r->cap - 1); r->slot[i][0];
      i = (i + 1) & (r->cap - 1))
    if(!memcmp(r->slot[i], id, ID_LEN))
      return 1;
  return 0;
}

static void rv_put_slot(struct revoked *r, const char *id)
{
  size_t i = id_hash(id) & (r->cap - 1);
  while(r->slot[i][0])
    i = (i + 1) & (r->cap - 1);
  memcpy(r->slot[i], id, ID_LEN + 1);
  r->n++;
}

/* Add id (known to be absent); -1 when out of memory. */
static int rv_add(struct revoked *r, const char *id)
{
  if((r->n + 1) * 2 > r->cap) {
    struct revoked nr;
    size_t i;
    nr.cap = r->cap ? r->cap * 2 : 1024;
    nr.n = 0;
    nr.slot = calloc(nr.cap, sizeof(*nr.slot));
    if(!nr.slot)
      return -1;
    for(i = 0; i < r->cap; i++)
      if(r->slot[i][0])
        rv_put_slot(&nr, r->slot[i]);
    free(r->slot);
    *r = nr;
  }
  rv_put_slot(r, id);
  return 0;
}

static int revoked_load(void)
{
  FILE *f = fopen(g.revoked_path, "r");
  char line[128];
  unsigned long n = 0, bad = 0;
  if(!f)
    return errno == ENOENT ? 0 : -1;
  while(fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if(!is_device_id(line)) {
      bad++;          /* e.g. a line cut short by a crash: it is re-sent */
      continue;
    }
    if(!rv_has(&g.rv, line) && rv_add(&g.rv, line)) {
      fclose(f);
      return -1;
    }
    n++;
  }
  fclose(f);
  mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN ": %lu revoked device(s) "
                       "loaded from %s%s", n, g.revoked_path,
                       bad ? " (malformed lines skipped)" : "");
  return 0;
}

/* ---- options -------------------------------------------------------------- */

static int read_secret(const char *path)
{
  FILE *f = fopen(path, "r");
  size_t n;
  if(!f) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": cannot read %s: %s", path,
                         strerror(errno));
    return -1;
  }
  n = fread(g.secret, 1, SECRET_MAX, f);
  fclose(f);
  g.secret[n] = '\0';
  g.secret[strcspn(g.secret, "\r\n")] = '\0';
  if(strlen(g.secret) < 16) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": %s: the secret must be at "
                         "least 16 characters on its first line", path);
    return -1;
  }
  return 0;
}

/* ---- callbacks ------------------------------------------------------------ */

static int on_basic_auth(int event, void *event_data, void *userdata)
{
  struct mosquitto_evt_basic_auth *ed = event_data;
  char expect[MDM_MQTT_PASSWORD_LEN + 1];
  const char *cid;
  int ok;
  (void)event;
  (void)userdata;
  if(!ed->username || !ed->password)
    return MOSQ_ERR_AUTH;
  if(!strcmp(ed->username, g.admin_user))
    return mdm_mqtt_secret_equal(ed->password, g.secret) ? MOSQ_ERR_SUCCESS
                                                         : MOSQ_ERR_AUTH;
  cid = mosquitto_client_id(ed->client);
  if(!is_device_id(ed->username) || !cid || strcmp(cid, ed->username) ||
     rv_has(&g.rv, ed->username))
    return MOSQ_ERR_AUTH;
  if(mdm_mqtt_device_password((const unsigned char *)g.secret,
                              strlen(g.secret), ed->username, expect,
                              sizeof(expect)))
    return MOSQ_ERR_AUTH;
  ok = mdm_mqtt_secret_equal(ed->password, expect);
  OPENSSL_cleanse(expect, sizeof(expect));
  return ok ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

/* topic is mdm/<tenant>/<device>/cmd with no wildcard and non-empty
 * levels; device, if given, must be the third level. */
static int is_wake_topic(const char *topic, const char *device)
{
  const char *t, *d;
  size_t tl, dl;
  if(strncmp(topic, "mdm/", 4) || strpbrk(topic, "+#"))
    return 0;
  t = topic + 4;
  d = strchr(t, '/');
  if(!d || d == t)
    return 0;
  tl = (size_t)(d - t);
  (void)tl;
  d++;
  dl = strcspn(d, "/");
  if(!dl || strcmp(d + dl, "/cmd"))
    return 0;
  if(device && (strlen(device) != dl || memcmp(d, device, dl)))
    return 0;
  return 1;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
  struct mosquitto_evt_acl_check *ed = event_data;
  const char *user = mosquitto_client_username(ed->client);
  (void)event;
  (void)userdata;
  if(!user || !ed->topic)
    return MOSQ_ERR_ACL_DENIED;
  if(ed->access == MOSQ_ACL_UNSUBSCRIBE)
    return MOSQ_ERR_SUCCESS;
  if(!strcmp(user, g.admin_user)) {
    if(ed->access == MOSQ_ACL_WRITE)
      return is_wake_topic(ed->topic, NULL) ||
             !strcmp(ed->topic, CONTROL_TOPIC) ? MOSQ_ERR_SUCCESS
                                               : MOSQ_ERR_ACL_DENIED;
    if(ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_READ)
      return !strcmp(ed->topic, RESPONSE_TOPIC) ? MOSQ_ERR_SUCCESS
                                                : MOSQ_ERR_ACL_DENIED;
    return MOSQ_ERR_ACL_DENIED;
  }
  if(rv_has(&g.rv, user))
    return MOSQ_ERR_ACL_DENIED;
  if(ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_READ)
    return is_wake_topic(ed->topic, user) ? MOSQ_ERR_SUCCESS
                                          : MOSQ_ERR_ACL_DENIED;
  return MOSQ_ERR_ACL_DENIED;   /* devices publish nothing */
}

static int on_control(int event, void *event_data, void *userdata)
{
  struct mosquitto_evt_control *ed = event_data;
  const char *user = mosquitto_client_username(ed->client);
  json_t *doc, *ids, *done = NULL, *ans = NULL;
  char *text = NULL;
  size_t i;
  int is_written = 0, rc = MOSQ_ERR_SUCCESS;
  (void)event;
  (void)userdata;

  if(!user || strcmp(user, g.admin_user))
    return MOSQ_ERR_ACL_DENIED;
  doc = json_loadb(ed->payload, ed->payloadlen, 0, NULL);
  ids = json_object_get(doc, "revoke");
  if(!json_is_array(ids) || json_array_size(ids) > REVOKE_MAX) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN ": ignoring a malformed "
                         "control message");
    json_decref(doc);
    return MOSQ_ERR_SUCCESS;
  }
  done = json_array();
  for(i = 0; done && i < json_array_size(ids); i++) {
    const char *id = json_string_value(json_array_get(ids, i));
    char line[ID_LEN + 2];
    if(!is_device_id(id))
      continue;
    if(!rv_has(&g.rv, id)) {
      snprintf(line, sizeof(line), "%s\n", id);
      if(write(g.revoked_fd, line, ID_LEN + 1) != ID_LEN + 1 ||
         rv_add(&g.rv, id)) {
        mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": cannot record the "
                             "revocation of %s in %s: %s", id,
                             g.revoked_path, strerror(errno));
        rc = MOSQ_ERR_UNKNOWN;
        break;    /* not confirmed: mdmd sends it again */
      }
      is_written = 1;
      mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": device %s revoked", id);
    }
    mosquitto_kick_client_by_username(id, false);
    json_array_append_new(done, json_string(id));
  }
  if(is_written && fsync(g.revoked_fd)) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": fsync %s: %s",
                         g.revoked_path, strerror(errno));
    json_array_clear(done);
  }
  ans = done ? json_pack("{s:O}", "revoked", done) : NULL;
  text = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
  if(text)
    mosquitto_broker_publish_copy(mosquitto_client_id(ed->client),
                                  RESPONSE_TOPIC, (int)strlen(text), text, 1,
                                  false, NULL);
  free(text);
  json_decref(ans);
  json_decref(done);
  json_decref(doc);
  return rc;
}

/* ---- plugin entry points -------------------------------------------------- */

EXPORT int mosquitto_plugin_version(int n, const int *versions)
{
  int i;
  for(i = 0; i < n; i++)
    if(versions[i] == 5)
      return 5;
  return -1;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **userdata,
                          struct mosquitto_opt *opts, int n_opts)
{
  const char *password_file = NULL, *revoked_file = NULL;
  int i;

  memset(&g, 0, sizeof(g));
  g.revoked_fd = -1;
  g.id = id;
  snprintf(g.admin_user, sizeof(g.admin_user), "mdmd");
  for(i = 0; i < n_opts; i++) {
    if(!strcmp(opts[i].key, "admin_user"))
      snprintf(g.admin_user, sizeof(g.admin_user), "%s", opts[i].value);
    else if(!strcmp(opts[i].key, "password_file"))
      password_file = opts[i].value;
    else if(!strcmp(opts[i].key, "revoked_file"))
      revoked_file = opts[i].value;
    else
      mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN ": unknown option "
                           "plugin_opt_%s", opts[i].key);
  }
  if(!password_file || !revoked_file ||
     strlen(revoked_file) >= sizeof(g.revoked_path)) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": plugin_opt_password_file "
                         "and plugin_opt_revoked_file are required");
    return MOSQ_ERR_INVAL;
  }
  if(read_secret(password_file))
    return MOSQ_ERR_INVAL;
  memcpy(g.revoked_path, revoked_file, strlen(revoked_file) + 1);
  if(revoked_load()) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": cannot read %s: %s",
                         g.revoked_path, strerror(errno));
    return MOSQ_ERR_INVAL;
  }
  g.revoked_fd = open(g.revoked_path, O_WRONLY | O_CREAT | O_APPEND |
                      O_CLOEXEC, 0600);
  if(g.revoked_fd < 0) {
    mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": cannot open %s: %s",
                         g.revoked_path, strerror(errno));
    return MOSQ_ERR_INVAL;
  }
  *userdata = &g;
  if(mosquitto_callback_register(id, MOSQ_EVT_BASIC_AUTH, on_basic_auth,
                                 NULL, NULL) ||
     mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL,
                                 NULL) ||
     mosquitto_callback_register(id, MOSQ_EVT_CONTROL, on_control,
                                 CONTROL_TOPIC, NULL))
    return MOSQ_ERR_UNKNOWN;
  mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN ": ready (admin user %s)",
                       g.admin_user);
  return MOSQ_ERR_SUCCESS;
}

EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts,
                             int n_opts)
{
  (void)userdata;
  (void)opts;
  (void)n_opts;
  mosquitto_callback_unregister(g.id, MOSQ_EVT_BASIC_AUTH, on_basic_auth,
                                NULL);
  mosquitto_callback_unregister(g.id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
  mosquitto_callback_unregister(g.id, MOSQ_EVT_CONTROL, on_control,
                                CONTROL_TOPIC);
  if(g.revoked_fd >= 0)
    close(g.revoked_fd);
  free(g.rv.slot);
  OPENSSL_cleanse(g.secret, sizeof(g.secret));
  memset(&g, 0, sizeof(g));
  return MOSQ_ERR_SUCCESS;
}
