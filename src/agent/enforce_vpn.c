/*
 * enforce_vpn.c: the vpn setting on Linux: an OpenVPN client profile at
 * <root>/etc/openvpn/client/mdm.conf (mode 0600), rendered deterministically
 * from the settings (see mdm_enforce_vpn_render() in enforce.h) so that an
 * unchanged bundle leaves the file untouched.  OpenVPN runs as root and
 * splits its lines on white space, so every value is checked here again,
 * whatever the server did: a host or a cipher name with a space or a newline
 * in it, an inline block or a directive that runs programs is refused, and
 * the setting is reported failed with the reason.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "agent/enforce.h"

#define HOST_MAX 253
#define NAME_MAX_LEN 64
#define PEM_MAX (64 * 1024)
#define EXTRA_MAX 64
#define EXTRA_LEN_MAX 256

static const char header[] =
  "# Written by mdm-agent from this device's configuration profile; local "
  "changes are replaced.\n";

/* Directives that run programs, load code or write files as root: the same
 * list the server refuses (src/policy/kind_profile.c), kept here too because
 * the agent writes the file. */
static const char *const denied[] = {
  "script-security", "up", "down", "route-up", "ipchange", "plugin",
  "learn-address", "tls-verify", "client-connect", "client-disconnect",
  "auth-user-pass-verify", "route-pre-down", "tls-crypt-v2-verify",
  "iproute", "config", "management", "log", "log-append", "writepid",
  "status", "cd", "chroot", "tmp-dir", NULL};

static const char *const known[] = {
  "remote", "port", "proto", "dev", "auth", "cipher", "auth_user_pass",
  "persist_key", "persist_tun", "verb", "ca", "remote_cert_tls", "extra",
  NULL};

static int is_alnum(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

static int in_list(const char *s, const char *const *list)
{
  size_t i;
  for(i = 0; list[i]; i++)
    if(!strcmp(s, list[i]))
      return 1;
  return 0;
}

/* A host name or an IPv4/IPv6 address: letters, digits, '.', '-', ':'. */
static int is_host(const char *s, size_t len)
{
  size_t i;
  if(len < 1 || len > HOST_MAX || strlen(s) != len || s[0] == '-')
    return 0;
  for(i = 0; i < len; i++)
    if(!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != ':')
      return 0;
  return 1;
}

/* An OpenVPN cipher or digest name: letters, digits and '-'. */
static int is_name(const char *s, size_t len)
{
  size_t i;
  if(len < 1 || len > NAME_MAX_LEN || strlen(s) != len || s[0] == '-')
    return 0;
  for(i = 0; i < len; i++)
    if(!is_alnum(s[i]) && s[i] != '-')
      return 0;
  return 1;
}

static int is_b64_line(const char *s, size_t n)
{
  size_t i;
  for(i = 0; i < n; i++)
    if(!is_alnum(s[i]) && s[i] != '+' && s[i] != '/' && s[i] != '=')
      return 0;
  return n > 0;
}

/* Append the certificates of pem between <ca> and </ca>, one line each,
 * without carriage returns or blank lines; 0 if pem is not only PEM
 * certificates. */
static int render_ca(const char *pem, size_t len, struct mdm_buf *out)
{
  static const char begin[] = "-----BEGIN CERTIFICATE-----";
  static const char end[] = "-----END CERTIFICATE-----";
  const char *p, *nl;
  size_t n_certs = 0;
  int is_inside = 0;

  if(len > PEM_MAX || strlen(pem) != len || mdm_buf_puts(out, "<ca>\n"))
    return 0;
  for(p = pem; *p; p = nl ? nl + 1 : p + strlen(p)) {
    size_t n;
    nl = strchr(p, '\n');
    n = nl ? (size_t)(nl - p) : strlen(p);
    if(n && p[n - 1] == '\r')
      n--;
    if(!n && !is_inside)
      continue;
    if(!is_inside) {
      if(n != sizeof(begin) - 1 || memcmp(p, begin, n))
        return 0;
      is_inside = 1;
    }
    else if(n == sizeof(end) - 1 && !memcmp(p, end, n)) {
      is_inside = 0;
      n_certs++;
    }
    else if(!is_b64_line(p, n))
      return 0;
    if(mdm_buf_append(out, p, n) || mdm_buf_puts(out, "\n"))
      return 0;
  }
  return !is_inside && n_certs && !mdm_buf_puts(out, "</ca>\n");
}

/* NULL if line is a directive the agent may write, else why not. */
static const char *extra_problem(const char *s, size_t len, char *word,
                                 size_t word_n)
{
  const char *w;
  size_t i, wn;
  if(len < 1 || len > EXTRA_LEN_MAX || strlen(s) != len)
    return "expected an OpenVPN directive of 1..256 bytes";
  for(i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c == '\n' || c == '\r')
      return "expected a single line";
    if((c < 0x20 && c != '\t') || c == 0x7f)
      return "contains a control character";
  }
  w = s + strspn(s, " \t");
  if(*w == '<')
    return "inline blocks (<tag>) are not allowed";
  if(w[0] == '-' && w[1] == '-')   /* OpenVPN reads "--up" as "up" */
    w += 2;
  wn = strcspn(w, " \t");
  if(wn >= word_n)
    return NULL;
  memcpy(word, w, wn);
  word[wn] = '\0';
  for(i = 0; denied[i]; i++)
    if(!strcasecmp(word, denied[i]))
      return "directive not allowed: it can run programs or write files "
             "on the device";
  return NULL;
}

/* The integer member key of o in [lo, hi], def when absent; -1 when it is
 * there but not such an integer. */
static long long int_field(json_t *o, const char *key, long long lo,
                           long long hi, long long def)
{
  json_t *v = json_object_get(o, key);
  if(!v)
    return def;
  if(!json_is_integer(v) || json_integer_value(v) < lo ||
     json_integer_value(v) > hi)
    return -1;
  return json_integer_value(v);
}

/* 1 if the boolean member key is true, 0 if false or absent, -1 if it is
 * not a boolean. */
static int bool_field(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  if(!v)
    return 0;
  if(!json_is_boolean(v))
    return -1;
  return json_is_true(v);
}

/* The string member key of o if it is one of list (or matches check);
 * def when absent; NULL when it is there but not acceptable. */
static const char *enum_field(json_t *o, const char *key,
                              const char *const *list, const char *def)
{
  json_t *v = json_object_get(o, key);
  if(!v)
    return def;
  if(!json_is_string(v) || strlen(json_string_value(v)) !=
     json_string_length(v) || !in_list(json_string_value(v), list))
    return NULL;
  return json_string_value(v);
}

static const char *name_field(json_t *o, const char *key, int *is_bad)
{
  json_t *v = json_object_get(o, key);
  *is_bad = 0;
  if(!v)
    return NULL;
  if(!json_is_string(v) || !is_name(json_string_value(v),
                                    json_string_length(v))) {
    *is_bad = 1;
    return NULL;
  }
  return json_string_value(v);
}

#define FAIL(...) do { snprintf(err, n, __VA_ARGS__); rc = MDM_ERR_INVAL; \
                       goto done; } while(0)

mdm_rc mdm_enforce_vpn_render(json_t *vpn, struct mdm_buf *out, char *err,
                              size_t n)
{
  static const char *const protos[] = {"udp", "tcp", "udp6", "tcp6", NULL};
  static const char *const devs[] = {"tun", "tap", NULL};
  static const char *const cert_tls[] = {"server", "client", NULL};
  const char *k, *remote, *proto, *dev, *auth, *cipher, *rct;
  json_t *v, *extra, *ca;
  long long port, verb;
  int aup, pk, pt, is_bad;
  size_t i, mark = out->len;
  mdm_rc rc = MDM_OK;

  if(n)
    err[0] = '\0';
  if(!json_is_object(vpn))
    FAIL("vpn: expected a mapping");
  json_object_foreach(vpn, k, v) {
    if(!in_list(k, known))
      FAIL("vpn.%.64s: not supported by mdm-agent", k);
  }
  v = json_object_get(vpn, "remote");
  if(!v)
    FAIL("vpn.remote: required");
  if(!json_is_string(v) || !is_host(json_string_value(v),
                                    json_string_length(v)))
    FAIL("vpn.remote: expected a host name or IP address (letters, digits, "
         "'.', '-', ':'; no spaces)");
  remote = json_string_value(v);
  port = int_field(vpn, "port", 1, 65535, 1194);
  if(port < 0)
    FAIL("vpn.port: expected an integer in 1..65535");
  proto = enum_field(vpn, "proto", protos, "udp");
  if(!proto)
    FAIL("vpn.proto: expected one of udp, tcp, udp6, tcp6");
  dev = enum_field(vpn, "dev", devs, "tun");
  if(!dev)
    FAIL("vpn.dev: expected tun or tap");
  auth = name_field(vpn, "auth", &is_bad);
  if(is_bad)
    FAIL("vpn.auth: expected a digest name of letters, digits and '-' "
         "(no spaces) such as SHA256");
  cipher = name_field(vpn, "cipher", &is_bad);
  if(is_bad)
    FAIL("vpn.cipher: expected a cipher name of letters, digits and '-' "
         "(no spaces) such as AES-256-GCM");
  aup = bool_field(vpn, "auth_user_pass");
  pk = bool_field(vpn, "persist_key");
  pt = bool_field(vpn, "persist_tun");
  if(aup < 0 || pk < 0 || pt < 0)
    FAIL("vpn.%s: expected true or false", aup < 0 ? "auth_user_pass" :
         pk < 0 ? "persist_key" : "persist_tun");
  verb = int_field(vpn, "verb", 0, 11, -2);
  if(verb == -1)
    FAIL("vpn.verb: expected an integer in 0..11");
  rct = enum_field(vpn, "remote_cert_tls", cert_tls, "");
  if(!rct)
    FAIL("vpn.remote_cert_tls: expected server or client");
  ca = json_object_get(vpn, "ca");
  if(ca && !json_is_string(ca))
    FAIL("vpn.ca: expected PEM certificates");
  extra = json_object_get(vpn, "extra");
  if(extra && (!json_is_array(extra) || json_array_size(extra) > EXTRA_MAX))
    FAIL("vpn.extra: expected a list of at most %d OpenVPN directives",
         EXTRA_MAX);
  json_array_foreach(extra, i, v) {
    char word[40];
    const char *why = json_is_string(v) ?
      extra_problem(json_string_value(v), json_string_length(v), word,
                    sizeof(word)) : "expected a string";
    if(why)
      FAIL("vpn.extra[%zu]: %s", i, why);
  }

  rc = mdm_buf_puts(out, header);
  if(!rc)
    rc = mdm_buf_printf(out, "client\ndev %s\nproto %s\nremote %s %lld\n",
                        dev, proto, remote, port);
  if(!rc && auth)
    rc = mdm_buf_printf(out, "auth %s\n", auth);
  if(!rc && cipher)
    rc = mdm_buf_printf(out, "cipher %s\n", cipher);
  if(!rc && aup)
    rc = mdm_buf_puts(out, "auth-user-pass\n");
  if(!rc && pk)
    rc = mdm_buf_puts(out, "persist-key\n");
  if(!rc && pt)
    rc = mdm_buf_puts(out, "persist-tun\n");
  if(!rc && verb >= 0)
    rc = mdm_buf_printf(out, "verb %lld\n", verb);
  if(!rc && rct[0])
    rc = mdm_buf_printf(out, "remote-cert-tls %s\n", rct);
  if(!rc && ca && !render_ca(json_string_value(ca), json_string_length(ca),
                             out)) {
    snprintf(err, n, "vpn.ca: expected one or more PEM certificates "
             "(-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)");
    rc = MDM_ERR_INVAL;
  }
  json_array_foreach(extra, i, v) {
    if(!rc)
      rc = mdm_buf_printf(out, "%s\n", json_string_value(v));
  }
  if(rc && !err[0])
    snprintf(err, n, "vpn: the profile is too large");
done:
  if(rc) {
    out->len = mark;
    if(out->data)
      out->data[mark] = '\0';
  }
  return rc;
}

void mdm_enforce_vpn(const struct mdm_enforce_ctx *ctx, json_t *value,
                     struct mdm_enforce_result *res)
{
  struct mdm_buf b;
  char path[PATH_MAX], why[MDM_ENFORCE_DETAIL_MAX];
  mdm_rc rc;

  mdm_buf_init(&b, PEM_MAX + EXTRA_MAX * (EXTRA_LEN_MAX + 1) + 4096);
  rc = mdm_enforce_vpn_render(value, &b, why, sizeof(why));
  if(rc) {
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "%s", why);
    goto out;
  }
  rc = mdm_enforce_path(ctx, MDM_ENFORCE_VPN_PATH, path, sizeof(path));
  if(!rc)
    rc = mdm_enforce_write(path, b.data, b.len, 0600, &res->is_changed);
  if(rc)
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "cannot write '%s': %s",
                    MDM_ENFORCE_VPN_PATH, mdm_strerror(rc));
out:
  mdm_buf_release(&b);
}

int mdm_enforce_vpn_remove(const struct mdm_enforce_ctx *ctx)
{
  char path[PATH_MAX];
  if(mdm_enforce_path(ctx, MDM_ENFORCE_VPN_PATH, path, sizeof(path)))
    return 0;
  return unlink(path) == 0;
}
