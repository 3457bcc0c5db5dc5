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
 * state directory, mode 0600.  A server that issues none (or a certificate
 * that does not match) leaves the device enrolled without one.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "agent/client.h"
#include "agent/enroll.h"
#include "agent/facts.h"
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

/* Keep the certificate of the answer if it is for key and device_id. */
static void keep_certificate(const char *state_dir, EVP_PKEY *key,
                             const char *device_id, json_t *answer)
{
  const char *cert = json_string_value(json_object_get(answer,
                                                       "certificate"));
  const char *ca = json_string_value(json_object_get(answer,
                                                     "ca_certificate"));
  X509 *x = NULL, *cx = NULL;
  char cn[80] = "", path[PATH_MAX], *key_pem = NULL;
  int is_ok;

  if(!cert && !ca)
    return;   /* a server that issues no certificates */
  is_ok = cert && ca && strlen(cert) <= MDM_CERT_MAX &&
          strlen(ca) <= MDM_CERT_MAX && !mdm_cert_from_pem(cert, &x) &&
          !mdm_cert_from_pem(ca, &cx) &&
          EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1 &&
          X509_NAME_get_text_by_NID(X509_get_subject_name(x),
                                    NID_commonName, cn, sizeof(cn)) > 0 &&
          !strcmp(cn, device_id) &&
          X509_verify(x, X509_get0_pubkey(cx)) == 1;
  if(!is_ok)
    mdm_warn("the server's device certificate is not for this key and "
             "device: kept none");
  else if(mdm_key_to_pem(key, 1, &key_pem) ||
          mdm_state_path(state_dir, "device.key", path, sizeof(path)) ||
          mdm_file_write_atomic(path, key_pem, strlen(key_pem), 0600) ||
          mdm_state_path(state_dir, "device.crt", path, sizeof(path)) ||
          mdm_file_write_atomic(path, cert, strlen(cert), 0600) ||
          mdm_state_path(state_dir, "ca.pem", path, sizeof(path)) ||
          mdm_file_write_atomic(path, ca, strlen(ca), 0600))
    mdm_warn("cannot keep the device certificate in '%s'", state_dir);
  if(key_pem) {
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
  }
  X509_free(x);
  X509_free(cx);
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
  char why[512], ca_abs[PATH_MAX], *csr = NULL;
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
  return rc;
}
