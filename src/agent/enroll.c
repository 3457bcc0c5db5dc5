/*
 * enroll.c: one enrollment round trip (see enroll.h).  The answer is checked
 * field by field before anything is written; the credentials file is
 * replaced atomically with mode 0600, and the facts sent become the baseline
 * the run loop compares against.  The answer's policy_key (the tenant's
 * public key for policy bundles) is kept only if it is a P-256 key: without
 * one the device is enrolled but refuses bundles until it enrolls again.
 * The answer's mqtt object (the broker that wakes the device up, see
 * push.h) is kept when it is usable for this device, dropped with a warning
 * otherwise: without it the agent polls.
 *
 * Device identity (issue 5): the agent makes a P-256 key here and sends a
 * CSR for it; the key never leaves the device.  When the answer carries a
 * certificate for that key and this device id, the key (device.key), the
 * certificate (device.crt) and the tenant's CA (ca.pem) are kept in the
 * state directory, mode 0600 (identity.h).  A server that issues none (or a
 * certificate that does not match) leaves the device enrolled without one.
 *
 * Zero-trust TLS (issue 5): over https the system's CA store is never
 * used.  When the token pins the server's CA (pin.h) and no --ca-file is
 * given, one unverified connection learns the chain the server presents;
 * the certificate in it with the pinned fingerprint becomes the one CA the
 * enrollment is verified against (peer and host name) and is kept as
 * server-ca.pem, which credentials.json names as its ca_file for every later
 * run.  A server whose chain holds no such certificate is not talked to
 * (nothing is sent, nothing is written).  With --ca-file the file must hold
 * the pinned CA and is what is trusted; without a pin, https needs
 * --ca-file.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "agent/client.h"
#include "agent/enroll.h"
#include "agent/facts.h"
#include "agent/identity.h"
#include "agent/pin.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"

#define TOKEN_MAX 8192
#define POLICY_KEY_MAX 8192

/* A printable string member of 1..max bytes without spaces, or NULL. */
static const char *answer_str(json_t *o, const char *key, size_t max)
{
  json_t *v = json_object_get(o, key);
  const char *s;
  size_t i, len;
  if(!json_is_string(v))
    return NULL;
  s = json_string_value(v);
  len = json_string_length(v);
  if(!len || len > max || strlen(s) != len)
    return NULL;
  for(i = 0; i < len; i++)
    if((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
      return NULL;
  return s;
}

/* Keep the certificate of the answer if it is for key and device_id; else
 * drop what an earlier enrollment kept (it names another device). */
static void keep_certificate(const char *state_dir, EVP_PKEY *key,
                             const char *device_id, json_t *answer)
{
  const char *cert = json_string_value(json_object_get(answer,
                                                       "certificate"));
  const char *ca = json_string_value(json_object_get(answer,
                                                     "ca_certificate"));
  char why[256];

  if(!cert && !ca) {
    mdm_identity_remove(state_dir);   /* a server that issues none */
    return;
  }
  if(!cert || !ca ||
     mdm_identity_check(cert, ca, key, device_id, why, sizeof(why))) {
    mdm_warn("the server's device certificate is not for this key and "
             "device: kept none");
    mdm_identity_remove(state_dir);
  }
  else if(mdm_identity_keep(state_dir, key, cert, ca))
    mdm_warn("cannot keep the device certificate in '%s'", state_dir);
}

/* What an enrollment over https trusts (see the file comment): the CA the
 * token pins (its fingerprint into pin[MDM_FINGERPRINT_LEN + 1], "" when
 * none), found in --ca-file when given, else in the chain the server
 * presents (then *ca_pem, caller frees, is that CA, to keep as
 * server-ca.pem); without a pin, --ca-file; nothing else, ever.  For http
 * nothing is verified and nothing is pinned. */
static mdm_rc trust_server(const struct mdm_enroll_opts *o,
                           const char *ca_abs, struct mdm_client *client,
                           char *pin, char **ca_pem, char *err, size_t n)
{
  char why[256];
  char *text = NULL, *chain = NULL, *found = NULL;
  mdm_rc rc = mdm_pin_from_token(o->token, pin);

  *ca_pem = NULL;
  if(rc == MDM_ERR_INVAL) {
    snprintf(err, n, "enroll failed: the enrollment token's "
             MDM_PIN_CLAIM " claim is not '" MDM_PIN_PREFIX
             "<64 lowercase hex digits>'");
    return rc;
  }
  if(strncasecmp(o->server, "https://", 8)) {
    pin[0] = '\0';
    if(!rc)
      mdm_warn("the enrollment token pins the server's CA but '%s' is not "
               "https: the server is not verified", o->server);
    return MDM_OK;
  }
  if(rc == MDM_ERR_NOTFOUND) {
    if(ca_abs)
      return MDM_OK;
    snprintf(err, n, "enroll failed: no CA to trust for '%s': the "
             "enrollment token pins none and no --ca-file was given (the "
             "system's CA store is never used)", o->server);
    return MDM_ERR_INVAL;
  }
  if(ca_abs) {
    /* Both: the file is what is trusted, so it must hold the pin. */
    rc = mdm_file_read(ca_abs, MDM_PIN_PEM_MAX, &text, NULL);
    if(rc) {
      snprintf(err, n, "cannot read CA file '%s'", o->ca_file);
      goto out;
    }
    rc = mdm_pin_find(text, pin, &found);
    if(rc) {
      snprintf(err, n, "enroll failed: CA file '%s' does not hold the CA "
               "pinned in the enrollment token (" MDM_PIN_PREFIX "%s)",
               o->ca_file, pin);
      rc = MDM_ERR_AUTH;
    }
    goto out;
  }
  rc = mdm_client_probe_chain(o->server, &chain, why, sizeof(why));
  if(rc == MDM_ERR_IO || rc == MDM_ERR_NOMEM || rc == MDM_ERR_TOOBIG) {
    snprintf(err, n, "enroll failed: cannot reach '%s': %s", o->server, why);
    goto out;
  }
  if(!rc)
    rc = mdm_pin_find(chain, pin, &found);
  if(rc) {
    snprintf(err, n, "enroll failed: the server's certificate does not "
             "chain to the CA pinned in the enrollment token ("
             MDM_PIN_PREFIX "%s); refusing to talk to it", pin);
    rc = MDM_ERR_AUTH;
    goto out;
  }
  rc = mdm_client_trust_pem(client, found);
  if(rc) {
    snprintf(err, n, "enroll failed: %s", mdm_strerror(rc));
    goto out;
  }
  *ca_pem = found;
  found = NULL;
out:
  free(text);
  free(chain);
  free(found);
  return rc;
}

/* Keep ca_pem as <state_dir>/server-ca.pem; its absolute path goes into
 * path[PATH_MAX]. */
static mdm_rc keep_server_ca(const char *state_dir, const char *ca_pem,
                             char *path)
{
  char rel[PATH_MAX];
  mdm_rc rc = mdm_state_path(state_dir, MDM_ENROLL_SERVER_CA_FILE, rel,
                             sizeof(rel));
  if(!rc)
    rc = mdm_file_write_atomic(rel, ca_pem, strlen(ca_pem), 0600);
  if(!rc && !realpath(rel, path))
    rc = MDM_ERR_IO;
  return rc;
}

/* The answer's policy_key: the PEM of a P-256 public key, or NULL (with a
 * warning when it is there but unusable: bundles will then be refused). */
static const char *answer_policy_key(json_t *o)
{
  json_t *v = json_object_get(o, "policy_key");
  EVP_PKEY *key = NULL;
  const char *s;
  size_t i;
  if(!v || json_is_null(v)) {
    mdm_warn("the server gave no policy_key: configuration profiles will "
             "be refused until this device enrolls again");
    return NULL;
  }
  s = json_string_value(v);
  if(!s || json_string_length(v) > POLICY_KEY_MAX ||
     strlen(s) != json_string_length(v))
    s = NULL;
  for(i = 0; s && s[i]; i++)   /* what credentials.json takes back */
    if(((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\r') ||
       (unsigned char)s[i] >= 0x7f)
      s = NULL;
  if(!s || mdm_key_from_pem(s, &key)) {
    mdm_warn("the server's policy_key is not a P-256 public key: "
             "configuration profiles will be refused");
    return NULL;
  }
  EVP_PKEY_free(key);
  return s;
}

mdm_rc mdm_enroll_run(const struct mdm_enroll_opts *o, char *device_id,
                      char *err, size_t n)
{
  struct mdm_creds old, creds;
  struct mdm_client *client = NULL;
  struct mdm_response resp;
  json_t *facts = NULL, *body = NULL, *iv;
  const char *id, *token;
  char why[512], ca_abs[PATH_MAX], server_ca[PATH_MAX], *csr = NULL;
  char *ca_pem = NULL, ca_pin[MDM_FINGERPRINT_LEN + 1] = "";
  EVP_PKEY *dkey = NULL;
  size_t server_len;
  mdm_rc rc;

  memset(&creds, 0, sizeof(creds));
  memset(&resp, 0, sizeof(resp));
  device_id[0] = '\0';

  if(o->ca_file) {
    if(access(o->ca_file, R_OK) != 0 || !realpath(o->ca_file, ca_abs)) {
      snprintf(err, n, "cannot read CA file '%s'", o->ca_file);
      return MDM_ERR_NOTFOUND;
    }
  }
  rc = mdm_state_prepare(o->state_dir);
  if(rc) {
    snprintf(err, n, "cannot create state dir '%s': %s", o->state_dir,
             mdm_strerror(rc));
    return rc;
  }
  rc = mdm_state_load_creds(o->state_dir, &old, why, sizeof(why));
  if(!rc) {
    if(!o->is_force) {
      snprintf(err, n, "already enrolled as %s (state dir '%s'); use --force "
               "to enroll again", old.device_id, o->state_dir);
      mdm_creds_release(&old);
      return MDM_ERR_CONFLICT;
    }
    mdm_info("enrolling again over device %s (--force)", old.device_id);
    mdm_creds_release(&old);
  }
  else if(rc != MDM_ERR_NOTFOUND && !o->is_force) {
    snprintf(err, n, "%s; use --force to enroll again", why);
    return MDM_ERR_CONFLICT;
  }

  rc = mdm_facts_collect(o->root, &facts);
  if(rc) {
    snprintf(err, n, "cannot collect facts under '%s': %s",
             o->root ? o->root : "/", mdm_strerror(rc));
    goto out;
  }
  rc = mdm_client_new(o->server, o->ca_file ? ca_abs : NULL, &client);
  if(rc) {
    snprintf(err, n, "invalid server URL '%s'", o->server);
    goto out;
  }
  rc = trust_server(o, o->ca_file ? ca_abs : NULL, client, ca_pin, &ca_pem,
                    err, n);
  if(rc)
    goto out;
  /* The device's own key and a CSR for it (the server sets the subject). */
  if(mdm_key_generate(&dkey) || mdm_csr_create(dkey, "mdm-agent", &csr)) {
    rc = MDM_ERR_CRYPTO;
    snprintf(err, n, "enroll failed: cannot make the device key");
    goto out;
  }
  body = json_pack("{s:s, s:O, s:s}", "enrollment_token", o->token, "facts",
                   facts, "csr", csr);
  if(!body) {
    rc = MDM_ERR_NOMEM;
    snprintf(err, n, "enroll failed: %s", mdm_strerror(rc));
    goto out;
  }
  rc = mdm_client_post(client, "/v1/enroll", NULL, body, &resp);
  if(rc && ca_pin[0] && resp.is_untrusted) {
    /* The pinned CA was in the chain, but the server's certificate is not
     * one it signed (anyone can send a CA's certificate along). */
    snprintf(err, n, "enroll failed: the server's certificate does not "
             "chain to the CA pinned in the enrollment token ("
             MDM_PIN_PREFIX "%s); refusing to talk to it", ca_pin);
    goto out;
  }
  if(rc) {
    snprintf(err, n, "enroll failed: cannot reach '%s': %s", o->server,
             resp.errmsg);
    goto out;
  }
  if(resp.status < 200 || resp.status > 299) {
    mdm_response_describe(&resp, why, sizeof(why));
    snprintf(err, n, "enroll failed: %s", why);
    rc = resp.status == 401 ? MDM_ERR_AUTH :
         resp.status == 409 ? MDM_ERR_CONFLICT : MDM_ERR_IO;
    goto out;
  }
  if(!json_is_object(resp.body)) {
    snprintf(err, n, "enroll failed: invalid answer from server: "
             "not a JSON object");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  id = answer_str(resp.body, "device_id", MDM_DEVICE_ID_MAX - 1);
  token = answer_str(resp.body, "device_token", TOKEN_MAX);
  if(!id || !token) {
    snprintf(err, n, "enroll failed: invalid answer from server: %s",
             id ? "bad device_token" : "bad device_id");
    rc = MDM_ERR_INVAL;
    goto out;
  }
  iv = json_object_get(resp.body, "checkin_interval_s");
  creds.checkin_interval_s = json_is_integer(iv) ?
    mdm_state_clamp_interval(json_integer_value(iv)) : MDM_INTERVAL_DEFAULT;
  /* Kept without a trailing '/': paths are appended to it. */
  server_len = strlen(o->server);
  while(server_len > 1 && o->server[server_len - 1] == '/')
    server_len--;
  creds.server = strndup(o->server, server_len);
  if(!creds.server) {
    rc = MDM_ERR_NOMEM;
    snprintf(err, n, "enroll failed: %s", mdm_strerror(rc));
    goto out;
  }
  creds.device_id = (char *)id;
  creds.device_token = (char *)token;
  creds.ca_file = o->ca_file ? ca_abs : NULL;
  if(ca_pem) {
    /* Every later run trusts this CA and nothing else. */
    rc = keep_server_ca(o->state_dir, ca_pem, server_ca);
    if(rc) {
      snprintf(err, n, "enrolled as %s but cannot write the server's CA in "
               "'%s': %s", id, o->state_dir, mdm_strerror(rc));
      goto out;
    }
    creds.ca_file = server_ca;
  }
  creds.policy_key = (char *)answer_policy_key(resp.body);
  iv = json_object_get(resp.body, "mqtt");
  if(iv && !json_is_null(iv) && !mdm_state_take_mqtt(iv, id, &creds))
    mdm_warn("the server's mqtt object is not usable: this device will "
             "poll only");
  rc = mdm_state_save_creds(o->state_dir, &creds);
  if(rc) {
    snprintf(err, n, "enrolled as %s but cannot write the credentials in "
             "'%s': %s", id, o->state_dir, mdm_strerror(rc));
    goto out;
  }
  if(mdm_state_save_facts(o->state_dir, facts))
    mdm_warn("cannot keep the enrolled facts in '%s'", o->state_dir);
  keep_certificate(o->state_dir, dkey, id, resp.body);
  mdm_strlcpy(device_id, id, MDM_DEVICE_ID_MAX);
out:
  free(creds.server);
  creds.server = NULL;
  creds.device_id = creds.device_token = creds.ca_file = NULL;
  creds.policy_key = NULL;
  mdm_creds_release(&creds);   /* the mqtt strings, the rest are borrowed */
  mdm_response_release(&resp);
  json_decref(body);
  json_decref(facts);
  mdm_client_free(client);
  EVP_PKEY_free(dkey);
  free(csr);
  free(ca_pem);
  return rc;
}
