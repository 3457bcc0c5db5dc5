/*
 * tls.c: the HTTPS side of mdmd (see tls.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <gnutls/gnutls.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"
#include "server/server.h"
#include "server/tls.h"

#define TLS_FILE_MAX (64 * 1024)   /* a chain or a key file, at most */
#define TLS_CHAIN_MAX 8            /* certificates in a chain, at most */

mdm_rc mdm_tls_pin_of(X509 *cert, char out[72])
{
  char fp[MDM_FINGERPRINT_LEN + 1];
  if(mdm_cert_fingerprint(cert, fp))
    return MDM_ERR_CRYPTO;
  snprintf(out, 72, "sha256:%s", fp);
  return MDM_OK;
}

/* Every certificate of the PEM file path into certs[] (at most
 * TLS_CHAIN_MAX), re-encoded as PEM into *pem; err[n] says what is wrong. */
static mdm_rc read_chain(const char *path, X509 **certs, int *count,
                         char **pem, char *err, size_t n)
{
  char *text = NULL;
  size_t len = 0;
  BIO *in = NULL, *outb = NULL;
  X509 *x;
  mdm_rc rc = MDM_ERR_INVAL;

  *count = 0;
  *pem = NULL;
  if(mdm_file_read(path, TLS_FILE_MAX, &text, &len)) {
    snprintf(err, n, "cannot read '%s' (at most 64 KiB)", path);
    return MDM_ERR_IO;
  }
  in = BIO_new_mem_buf(text, (int)len);
  outb = BIO_new(BIO_s_mem());
  if(!in || !outb) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  while((x = PEM_read_bio_X509(in, NULL, NULL, NULL))) {
    if(*count == TLS_CHAIN_MAX) {
      X509_free(x);
      snprintf(err, n, "'%s' has more than %d certificates", path,
               TLS_CHAIN_MAX);
      goto out;
    }
    certs[(*count)++] = x;
    if(PEM_write_bio_X509(outb, x) != 1) {
      rc = MDM_ERR_CRYPTO;
      goto out;
    }
  }
  if(!*count) {
    snprintf(err, n, "'%s' holds no PEM certificate", path);
    goto out;
  }
  rc = mdm_bio_string(outb, pem);
out:
  ERR_clear_error();
  BIO_free(in);
  BIO_free(outb);
  free(text);
  return rc;
}

/* The key file path (0600 or stricter) as PKCS#8 PEM into *pem. */
static mdm_rc read_key(const char *path, X509 *leaf, char **pem, char *err,
                       size_t n)
{
  struct stat sb;
  char *text = NULL;
  size_t len = 0;
  BIO *in = NULL, *outb = NULL;
  EVP_PKEY *key = NULL;
  BUF_MEM *bm;
  mdm_rc rc = MDM_ERR_INVAL;

  *pem = NULL;
  if(stat(path, &sb) || mdm_file_read(path, TLS_FILE_MAX, &text, &len)) {
    snprintf(err, n, "cannot read '%s'", path);
    return MDM_ERR_IO;
  }
  if(sb.st_mode & 077) {
    snprintf(err, n, "'%s' must not be readable by group or others "
             "(chmod 600)", path);
    rc = MDM_ERR_FORBIDDEN;
    goto out;
  }
  in = BIO_new_mem_buf(text, (int)len);
  outb = BIO_new(BIO_s_mem());
  if(!in || !outb) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  /* An empty passphrase callback result: an encrypted key fails here. */
  key = PEM_read_bio_PrivateKey(in, NULL, NULL, (void *)"");
  if(!key) {
    snprintf(err, n, "'%s' holds no unencrypted PEM private key", path);
    goto out;
  }
  if(X509_check_private_key(leaf, key) != 1) {
    snprintf(err, n, "'%s' is not the key of the --tls-cert certificate",
             path);
    goto out;
  }
  if(PEM_write_bio_PrivateKey(outb, key, NULL, NULL, 0, NULL, NULL) != 1) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  rc = mdm_bio_string(outb, pem);
  BIO_get_mem_ptr(outb, &bm);
  OPENSSL_cleanse(bm->data, bm->length);
out:
  ERR_clear_error();
  EVP_PKEY_free(key);
  BIO_free(in);
  BIO_free(outb);
  if(text)
    OPENSSL_cleanse(text, len);
  free(text);
  return rc;
}

/* Is x self-signed: its own issuer, and its signature verifies with its
 * own key? */
static int is_self_signed(X509 *x)
{
  int ok = X509_check_issued(x, x) == X509_V_OK &&
           X509_verify(x, X509_get0_pubkey(x)) == 1;
  ERR_clear_error();
  return ok;
}

mdm_rc mdm_tls_load(const struct mdm_config *cfg, struct mdm_tls **out,
                    char **pin_pem, char pin[72], char *err, size_t n)
{
  X509 *chain[TLS_CHAIN_MAX], *pinned[TLS_CHAIN_MAX];
  int n_chain = 0, n_pinned = 0, i;
  struct mdm_tls *t = NULL;
  char *pinned_pem = NULL;
  mdm_rc rc = MDM_OK;

  *out = NULL;
  *pin_pem = NULL;
  pin[0] = '\0';
  err[0] = '\0';
  if(!cfg->tls_cert[0] != !cfg->tls_key[0]) {
    snprintf(err, n, "--tls-cert and --tls-key go together");
    return MDM_ERR_INVAL;
  }
  if(cfg->tls_cert[0]) {
    t = calloc(1, sizeof(*t));
    if(!t)
      return MDM_ERR_NOMEM;
    rc = read_chain(cfg->tls_cert, chain, &n_chain, &t->cert_pem, err, n);
    if(!rc && X509_cmp_current_time(X509_get0_notAfter(chain[0])) <= 0) {
      snprintf(err, n, "the certificate in '%s' has expired",
               cfg->tls_cert);
      rc = MDM_ERR_INVAL;
    }
    if(!rc)
      rc = read_key(cfg->tls_key, chain[0], &t->key_pem, err, n);
    if(!rc)
      rc = mdm_tls_pin_of(chain[n_chain - 1], pin);
    if(!rc)
      rc = mdm_cert_to_pem(chain[n_chain - 1], &t->trust_pem);
    if(!rc)
      rc = mdm_cert_to_pem(chain[n_chain - 1], pin_pem);
    if(!rc && n_chain > 1 && is_self_signed(chain[n_chain - 1])) {
      /* Served without its root: the leaf and any intermediates. */
      BIO *b = BIO_new(BIO_s_mem());
      char *served = NULL;
      for(i = 0; b && i < n_chain - 1; i++)
        if(PEM_write_bio_X509(b, chain[i]) != 1)
          break;
      rc = b && i == n_chain - 1 ? mdm_bio_string(b, &served) : MDM_ERR_CRYPTO;
      BIO_free(b);
      if(!rc) {
        free(t->cert_pem);
        t->cert_pem = served;
      }
    }
  }
  if(!rc && cfg->pin_ca[0]) {
    rc = read_chain(cfg->pin_ca, pinned, &n_pinned, &pinned_pem, err, n);
    if(!rc && n_pinned != 1) {
      snprintf(err, n, "'%s' must hold exactly one CA certificate",
               cfg->pin_ca);
      rc = MDM_ERR_INVAL;
    }
    if(!rc)
      rc = mdm_tls_pin_of(pinned[0], pin);
    if(!rc) {
      free(*pin_pem);
      *pin_pem = pinned_pem;
      pinned_pem = NULL;
    }
  }
  for(i = 0; i < n_chain; i++)
    X509_free(chain[i]);
  for(i = 0; i < n_pinned; i++)
    X509_free(pinned[i]);
  free(pinned_pem);
  if(rc) {
    if(!err[0])
      snprintf(err, n, "cannot load the TLS settings: %s", mdm_strerror(rc));
    pin[0] = '\0';
    free(*pin_pem);
    *pin_pem = NULL;
    mdm_tls_free(t);
    return rc;
  }
  *out = t;
  return MDM_OK;
}

void mdm_tls_free(struct mdm_tls *t)
{
  if(!t)
    return;
  if(t->key_pem)
    OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
  free(t->key_pem);
  free(t->cert_pem);
  free(t->trust_pem);
  free(t);
}

int mdm_tls_peer_der(struct MHD_Connection *conn, const unsigned char **der,
                     size_t *len)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  const gnutls_datum_t *peers;
  unsigned int count = 0;

  if(!ci || !ci->tls_session)
    return 0;
  peers = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session,
                                       &count);
  if(!peers || !count || !peers[0].data || !peers[0].size ||
     peers[0].size > MDM_CERT_MAX)
    return 0;
  *der = peers[0].data;
  *len = peers[0].size;
  return 1;
}
