/*
 * kind_profile.c: the ConfigurationProfile validator (CONTRACT §6).  A
 * profile carries settings the agent enforces: vpn (an OpenVPN client
 * profile), password, encryption, os_update and wifi.  Known settings are
 * checked field by field, and since the agent writes some of them into
 * files that run as root (the OpenVPN config), strings that reach such a
 * file are held to narrow shapes here.  Settings this server does not know
 * are kept as they are: an agent that does not know them either reports
 * them "not_supported", a newer agent may.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "core/util.h"
#include "policy/doc_int.h"

#define MAX_PEM_LEN (64 * 1024)
#define MAX_EXTRA 64
#define MAX_EXTRA_LEN 256

/* ---- vpn -------------------------------------------------------------- */

static int is_alnum(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* A DNS name: labels of [A-Za-z0-9-] (1-63, no '-' at either end) joined by
 * dots, at most 253 bytes. */
static int is_hostname(const char *s)
{
  size_t n = strlen(s), i, label = 0;
  if(n < 1 || n > 253)
    return 0;
  for(i = 0; i <= n; i++) {
    if(i == n || s[i] == '.') {
      if(label < 1 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
        return 0;
      label = 0;
    }
    else if(is_alnum(s[i]) || s[i] == '-')
      label++;
    else
      return 0;
  }
  return 1;
}

static mdm_rc check_host(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *s = json_string_value(val);
  unsigned char addr[16];
  char q[MDM_VQUOTE_LEN];
  (void)arg;
  if(s && (is_hostname(s) || inet_pton(AF_INET, s, addr) == 1 ||
           inet_pton(AF_INET6, s, addr) == 1))
    return MDM_OK;
  if(s)
    return mdm_verr(v, "expected a host name or IP address (got %s)",
                    mdm_vquote(s, q, sizeof(q)));
  return mdm_verr(v, "expected a host name or IP address");
}

/* auth and cipher names such as SHA256 or AES-256-CBC. */
static mdm_rc check_ovpn_name(struct mdm_vctx *v, json_t *val,
                              const void *arg)
{
  const char *s = json_string_value(val);
  size_t n = s ? strlen(s) : 0, i;
  int is_ok = n >= 1 && n <= 64;
  for(i = 0; is_ok && i < n; i++)
    is_ok = is_alnum(s[i]) || s[i] == '-';
  if(!is_ok)
    return mdm_verr(v, "expected a name of letters, digits and '-' such as "
                    "%s", (const char *)arg);
  return MDM_OK;
}

static int is_b64_line(const char *s, size_t n)
{
  size_t i;
  for(i = 0; i < n; i++)
    if(!is_alnum(s[i]) && s[i] != '+' && s[i] != '/' && s[i] != '=')
      return 0;
  return 1;
}

/* One or more PEM certificates and nothing else: the agent writes this
 * between <ca> and </ca> in the OpenVPN config. */
static mdm_rc check_pem(struct mdm_vctx *v, json_t *val, const void *arg)
{
  static const char begin[] = "-----BEGIN CERTIFICATE-----";
  static const char end[] = "-----END CERTIFICATE-----";
  const char *s = json_string_value(val), *p, *nl;
  size_t len, n_certs = 0;
  int is_inside = 0, is_ok;
  (void)arg;

  is_ok = s && (len = json_string_length(val)) <= MAX_PEM_LEN &&
          strlen(s) == len;
  for(p = s; is_ok && p && *p; p = nl ? nl + 1 : NULL) {
    size_t n;
    nl = strchr(p, '\n');
    n = nl ? (size_t)(nl - p) : strlen(p);
    if(n && p[n - 1] == '\r')
      n--;
    if(!is_inside) {
      if(n == sizeof(begin) - 1 && !memcmp(p, begin, n))
        is_inside = 1;
      else if(n)
        is_ok = 0;
    }
    else if(n == sizeof(end) - 1 && !memcmp(p, end, n)) {
      is_inside = 0;
      n_certs++;
    }
    else if(!n || !is_b64_line(p, n))
      is_ok = 0;
  }
  if(!is_ok || is_inside || !n_certs)
    return mdm_verr(v, "expected one or more PEM certificates "
                    "(%s ... %s)", begin, end);
  return MDM_OK;
}

/* Directives that run programs, load code or write files as the OpenVPN
 * process (root): the brief's list, and others with the same reach. */
static const char *const ovpn_denied[] = {
  "script-security", "up", "down", "route-up", "ipchange", "plugin",
  "learn-address", "tls-verify", "client-connect", "client-disconnect",
  "auth-user-pass-verify",
  /* not in the brief, same danger */
  "route-pre-down", "tls-crypt-v2-verify", "iproute", "config",
  "management", "log", "log-append", "writepid", "status", "cd", "chroot",
  "tmp-dir", NULL};

static mdm_rc check_extra_line(struct mdm_vctx *v, json_t *val)
{
  const char *s = json_string_value(val), *w;
  size_t n, i, wn;
  char word[40], q[MDM_VQUOTE_LEN];

  if(!s)
    return mdm_verr(v, "expected a string");
  n = json_string_length(val);
  if(n < 1 || n > MAX_EXTRA_LEN)
    return mdm_verr(v, "expected an OpenVPN directive of 1..%d bytes",
                    MAX_EXTRA_LEN);
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c == '\n' || c == '\r')
      return mdm_verr(v, "expected a single line");
    if((c < 0x20 && c != '\t') || c == 0x7f)
      return mdm_verr(v, "contains a control character");
  }
  w = s + strspn(s, " \t");
  if(*w == '<')
    return mdm_verr(v, "inline blocks (<tag>) are not allowed");
  if(w[0] == '-' && w[1] == '-')   /* OpenVPN reads "--up" as "up" */
    w += 2;
  wn = strcspn(w, " \t");
  if(wn < sizeof(word)) {
    memcpy(word, w, wn);
    word[wn] = '\0';
    for(i = 0; ovpn_denied[i]; i++)
      if(!strcasecmp(word, ovpn_denied[i]))
        return mdm_verr(v, "directive %s is not allowed: it can run "
                        "programs or write files on the device",
                        mdm_vquote(word, q, sizeof(q)));
  }
  return MDM_OK;
}

static mdm_rc check_extra(struct mdm_vctx *v, json_t *val, const void *arg)
{
  size_t i, old;
  json_t *item;
  mdm_rc rc;
  (void)arg;
  if(!json_is_array(val))
    return mdm_verr(v, "expected a list of OpenVPN directives");
  if(json_array_size(val) > MAX_EXTRA)
    return mdm_verr(v, "more than %d directives", MAX_EXTRA);
  json_array_foreach(val, i, item) {
    old = mdm_vpath_index(v, i);
    rc = check_extra_line(v, item);
    if(rc)
      return rc;
    mdm_vpath_pop(v, old);
  }
  return MDM_OK;
}

static const struct mdm_vrange port_range = {1, 65535};
static const struct mdm_vrange verb_range = {0, 11};
static const char *const protos[] = {"udp", "tcp", "udp6", "tcp6", NULL};
static const char *const devs[] = {"tun", "tap", NULL};
static const char *const cert_tls[] = {"server", "client", NULL};

/* port defaults to 1194 where the agent writes the config; the document is
 * kept as written. */
static const struct mdm_vfield vpn_fields[] = {
  {"remote", 1, check_host, NULL},
  {"port", 0, mdm_vcheck_int, &port_range},
  {"proto", 0, mdm_vcheck_enum, protos},
  {"dev", 0, mdm_vcheck_enum, devs},
  {"auth", 0, check_ovpn_name, "SHA256"},
  {"cipher", 0, check_ovpn_name, "AES-256-GCM"},
  {"auth_user_pass", 0, mdm_vcheck_bool, NULL},
  {"persist_key", 0, mdm_vcheck_bool, NULL},
  {"persist_tun", 0, mdm_vcheck_bool, NULL},
  {"verb", 0, mdm_vcheck_int, &verb_range},
  {"ca", 0, check_pem, NULL},
  {"remote_cert_tls", 0, mdm_vcheck_enum, cert_tls},
  {"extra", 0, check_extra, NULL},
};

static mdm_rc check_vpn(struct mdm_vctx *v, json_t *val, const void *arg)
{
  (void)arg;
  return mdm_vobject(v, val, vpn_fields,
                     sizeof(vpn_fields) / sizeof(vpn_fields[0]), 0);
}

/* ---- password, encryption --------------------------------------------- */

static const struct mdm_vrange min_length_range = {1, 128};
static const struct mdm_vrange max_age_range = {0, 3650};
static const struct mdm_vrange classes_range = {0, 4};

static const struct mdm_vfield password_fields[] = {
  {"min_length", 0, mdm_vcheck_int, &min_length_range},
  {"max_age_days", 0, mdm_vcheck_int, &max_age_range},
  {"min_classes", 0, mdm_vcheck_int, &classes_range},
};

static mdm_rc check_password(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  (void)arg;
  return mdm_vobject(v, val, password_fields,
                     sizeof(password_fields) / sizeof(password_fields[0]),
                     0);
}

/* "required", or {required: true|false}. */
static mdm_rc check_encryption(struct mdm_vctx *v, json_t *val,
                               const void *arg)
{
  static const struct mdm_vfield fields[] = {
    {"required", 1, mdm_vcheck_bool, NULL},
  };
  (void)arg;
  if(json_is_string(val) && !strcmp(json_string_value(val), "required"))
    return MDM_OK;
  if(json_is_object(val))
    return mdm_vobject(v, val, fields, 1, 0);
  return mdm_verr(v, "expected 'required' or a mapping {required: "
                  "true|false}");
}

/* ---- os_update -------------------------------------------------------- */

/* "HH:MM" at s into minutes since midnight, or -1. */
static int hhmm(const char *s)
{
  static const int at[] = {0, 1, 3, 4};
  int h, m;
  size_t i;
  for(i = 0; i < 4; i++)
    if(s[at[i]] < '0' || s[at[i]] > '9')
      return -1;
  if(s[2] != ':')
    return -1;
  h = (s[0] - '0') * 10 + (s[1] - '0');
  m = (s[3] - '0') * 10 + (s[4] - '0');
  return h < 24 && m < 60 ? h * 60 + m : -1;
}

static mdm_rc check_window(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *s = json_string_value(val);
  int a, b;
  (void)arg;
  if(!s || strlen(s) != 11 || s[5] != '-' || (a = hhmm(s)) < 0 ||
     (b = hhmm(s + 6)) < 0)
    return mdm_verr(v, "expected a window HH:MM-HH:MM (24-hour clock; it "
                    "may wrap midnight)");
  if(a == b)
    return mdm_verr(v, "window starts and ends at the same time");
  return MDM_OK;
}

static mdm_rc check_deadline(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  const char *s = json_string_value(val);
  int64_t t;
  (void)arg;
  if(s && (mdm_time_parse(s, &t) == MDM_OK || mdm_is_duration(s, NULL)))
    return MDM_OK;
  return mdm_verr(v, "expected an RFC 3339 UTC time such as "
                  "2026-01-31T22:00:00Z or a duration such as 7d");
}

static const struct mdm_vfield os_update_fields[] = {
  {"window", 0, check_window, NULL},
  {"deadline", 0, check_deadline, NULL},
};

static mdm_rc check_os_update(struct mdm_vctx *v, json_t *val,
                              const void *arg)
{
  (void)arg;
  return mdm_vobject(v, val, os_update_fields,
                     sizeof(os_update_fields) / sizeof(os_update_fields[0]),
                     0);
}

/* ---- wifi ------------------------------------------------------------- */

static const char *const wifi_security[] = {"open", "wpa2-psk", "wpa3-sae",
                                            "wpa2-enterprise", NULL};
static const struct mdm_vstrlen ssid_len = {1, 32};

/* A WPA passphrase: 8..63 printable ASCII characters.  It is a secret: the
 * server stores it in the document and sends it to the devices the profile
 * is assigned to, so messages here never quote it. */
static mdm_rc check_psk(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *s = json_string_value(val);
  size_t n = s ? json_string_length(val) : 0, i;
  int is_ok = n >= 8 && n <= 63;
  (void)arg;
  for(i = 0; is_ok && i < n; i++)
    is_ok = s[i] >= 0x20 && s[i] <= 0x7e;
  if(!is_ok)
    return mdm_verr(v, "expected 8..63 printable ASCII characters");
  return MDM_OK;
}

static const struct mdm_vfield wifi_fields[] = {
  {"ssid", 1, mdm_vcheck_string, &ssid_len},
  {"security", 1, mdm_vcheck_enum, wifi_security},
  {"psk", 0, check_psk, NULL},
};

static mdm_rc check_wifi(struct mdm_vctx *v, json_t *val, const void *arg)
{
  const char *sec;
  int is_needed, is_present;
  mdm_rc rc;
  (void)arg;
  rc = mdm_vobject(v, val, wifi_fields,
                   sizeof(wifi_fields) / sizeof(wifi_fields[0]), 0);
  if(rc)
    return rc;
  sec = json_string_value(json_object_get(val, "security"));
  is_needed = !strcmp(sec, "wpa2-psk") || !strcmp(sec, "wpa3-sae");
  is_present = json_object_get(val, "psk") != NULL;
  if(is_needed == is_present)
    return MDM_OK;
  mdm_vpath_key(v, "psk");
  if(is_needed)
    return mdm_verr(v, "required with security '%s'", sec);
  return mdm_verr(v, "not allowed with security '%s'", sec);
}

/* ---- the kind --------------------------------------------------------- */

static const struct mdm_vfield settings_fields[] = {
  {"vpn", 0, check_vpn, NULL},
  {"password", 0, check_password, NULL},
  {"encryption", 0, check_encryption, NULL},
  {"os_update", 0, check_os_update, NULL},
  {"wifi", 0, check_wifi, NULL},
};

static mdm_rc check_settings(struct mdm_vctx *v, json_t *val,
                             const void *arg)
{
  (void)arg;
  if(!json_is_object(val) || !json_object_size(val))
    return mdm_verr(v, "expected a non-empty mapping");
  /* Unknown settings are allowed and kept (see the file comment). */
  return mdm_vobject(v, val, settings_fields,
                     sizeof(settings_fields) / sizeof(settings_fields[0]), 1);
}

mdm_rc mdm_kind_profile_validate(struct mdm_vctx *v, json_t *spec)
{
  static const struct mdm_vfield fields[] = {
    {"assign", 0, mdm_vcheck_assign, NULL},
    {"settings", 1, check_settings, NULL},
  };
  return mdm_vobject(v, spec, fields, sizeof(fields) / sizeof(fields[0]), 0);
}
