/*
 * key.c: the tenant's signing keys (EC P-256) and ES256 signatures, on top of
 * the OpenSSL 3 EVP interface (see key.h).  Signatures leave and enter this
 * file in the JOSE form, 64 raw bytes R||S (RFC 7518 §3.4); OpenSSL speaks
 * DER ECDSA-Sig-Value, so we convert at the edge.  Nothing here keeps state:
 * every function may be called from any thread, and an EVP_PKEY may be
 * shared by threads that only sign or verify with it.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "core/util.h"
#include "crypto/key.h"

#define P256_COORD_LEN 32            /* bytes in R, S and each coordinate */
#define MDM_PEM_MAX (16 * 1024)      /* a P-256 PEM is ~250 bytes */

/* ---- key checks ------------------------------------------------------- */

int mdm_key_is_p256(EVP_PKEY *key)
{
  char group[64];
  size_t glen = 0;
  int nid;

  if(!key || !EVP_PKEY_is_a(key, "EC"))
    return 0;
  if(EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1) {
    ERR_clear_error();
    return 0;
  }
  /* "prime256v1" from OpenSSL; "P-256" is its NIST name.  Keys with
   * explicit curve parameters have no group name and are refused above. */
  nid = EC_curve_nist2nid(group);
  if(nid == NID_undef) {
    nid = OBJ_sn2nid(group);
    ERR_clear_error();
  }
  return nid == NID_X9_62_prime256v1;
}

/* PEM loading must never fall back to OpenSSL's terminal passphrase prompt:
 * an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

/* ---- generation and PEM ----------------------------------------------- */

mdm_rc mdm_key_generate(EVP_PKEY **out)
{
  EVP_PKEY *k;

  if(!out)
    return MDM_ERR_INVAL;
  *out = NULL;
  k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if(!k) {
    ERR_clear_error();
    return MDM_ERR_CRYPTO;
  }
  *out = k;
  return MDM_OK;
}

mdm_rc mdm_bio_string(BIO *b, char **out)
{
  char *mem = NULL;
  long n = BIO_get_mem_data(b, &mem);
  *out = NULL;
  if(n <= 0 || !mem)
    return MDM_ERR_CRYPTO;
  *out = malloc((size_t)n + 1);
  if(!*out)
    return MDM_ERR_NOMEM;
  memcpy(*out, mem, (size_t)n);
  (*out)[n] = '\0';
  return MDM_OK;
}

mdm_rc mdm_key_to_pem(EVP_PKEY *key, int is_private, char **out)
{
  mdm_rc rc = MDM_OK;
  BIO *bio = NULL;
  int ok;

  if(!out)
    return MDM_ERR_INVAL;
  *out = NULL;
  if(!mdm_key_is_p256(key))
    return MDM_ERR_INVAL;
  bio = BIO_new(BIO_s_mem());
  if(!bio) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in 3.x. */
  if(is_private)
    ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
  else
    ok = PEM_write_bio_PUBKEY(bio, key);
  if(ok != 1) {
    /* Most likely a public-only key asked for its private half. */
    rc = is_private ? MDM_ERR_INVAL : MDM_ERR_CRYPTO;
    goto out;
  }
  rc = mdm_bio_string(bio, out);
out:
  if(rc)
    ERR_clear_error();
  BIO_free(bio);
  return rc;
}

mdm_rc mdm_key_from_pem(const char *pem, EVP_PKEY **out)
{
  mdm_rc rc = MDM_OK;
  BIO *bio = NULL;
  EVP_PKEY *k = NULL;
  size_t len;

  if(!out)
    return MDM_ERR_INVAL;
  *out = NULL;
  if(!pem)
    return MDM_ERR_INVAL;
  len = strnlen(pem, MDM_PEM_MAX + 1);
  if(len > MDM_PEM_MAX)
    return MDM_ERR_TOOBIG;
  bio = BIO_new_mem_buf(pem, (int)len);
  if(!bio) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  /* A private key first (PKCS#8 or traditional), then an SPKI public key. */
  k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  if(!k) {
    if(BIO_reset(bio) != 1) {
      rc = MDM_ERR_CRYPTO;
      goto out;
    }
    k = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
  }
  if(!k) {
    rc = MDM_ERR_INVAL;
    goto out;
  }
  if(!mdm_key_is_p256(k)) {
    rc = MDM_ERR_INVAL;
    goto out;
  }
  *out = k;
  k = NULL;
out:
  /* Failed attempts leave entries in this thread's error queue; drop them
   * so they do not show up later in somebody else's TLS error check. */
  ERR_clear_error();
  EVP_PKEY_free(k);
  BIO_free(bio);
  return rc;
}

mdm_rc mdm_key_id(EVP_PKEY *key, char *out)
{
  mdm_rc rc = MDM_OK;
  unsigned char *der = NULL;
  unsigned char md[32];
  unsigned int md_len = 0;
  char *b64 = NULL;
  int der_len;

  if(!out)
    return MDM_ERR_INVAL;
  out[0] = '\0';
  if(!mdm_key_is_p256(key))
    return MDM_ERR_INVAL;
  der_len = i2d_PUBKEY(key, &der);
  if(der_len <= 0) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  if(EVP_Digest(der, (size_t)der_len, md, &md_len, EVP_sha256(), NULL) != 1 ||
     md_len != sizeof(md)) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  rc = mdm_b64url_encode(md, sizeof(md), &b64);
  if(rc)
    goto out;
  if(strlen(b64) != MDM_KID_LEN) {
    rc = MDM_ERR_INTERNAL;
    goto out;
  }
  memcpy(out, b64, MDM_KID_LEN + 1);
out:
  if(rc)
    ERR_clear_error();
  OPENSSL_free(der);
  free(b64);
  return rc;
}

/* ---- signatures ------------------------------------------------------- */

mdm_rc mdm_sig_sign_raw(EVP_PKEY *key, const void *data, size_t n,
                        unsigned char sig[MDM_SIG_LEN])
{
  mdm_rc rc = MDM_OK;
  EVP_MD_CTX *md = NULL;
  ECDSA_SIG *es = NULL;
  unsigned char *der = NULL;
  const unsigned char *p;
  const BIGNUM *r = NULL, *s = NULL;
  size_t der_len = 0;

  if(!sig || (!data && n))
    return MDM_ERR_INVAL;
  if(!mdm_key_is_p256(key))
    return MDM_ERR_INVAL;
  md = EVP_MD_CTX_new();
  if(!md) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
     EVP_DigestSign(md, NULL, &der_len, data, n) != 1 || !der_len) {
    /* A public-only key cannot sign. */
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  der = OPENSSL_malloc(der_len);
  if(!der) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(EVP_DigestSign(md, der, &der_len, data, n) != 1) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  p = der;
  es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  if(!es) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  ECDSA_SIG_get0(es, &r, &s);
  /* R and S are integers below the group order: left-pad each to 32. */
  if(BN_bn2binpad(r, sig, P256_COORD_LEN) != P256_COORD_LEN ||
     BN_bn2binpad(s, sig + P256_COORD_LEN, P256_COORD_LEN) != P256_COORD_LEN) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
out:
  if(rc) {
    ERR_clear_error();
    if(sig)
      memset(sig, 0, MDM_SIG_LEN);
  }
  ECDSA_SIG_free(es);
  OPENSSL_free(der);
  EVP_MD_CTX_free(md);
  return rc;
}

mdm_rc mdm_sig_verify_raw(EVP_PKEY *key, const void *data, size_t n,
                          const unsigned char *sig, size_t sig_len)
{
  mdm_rc rc = MDM_ERR_AUTH;
  EVP_MD_CTX *md = NULL;
  ECDSA_SIG *es = NULL;
  BIGNUM *r = NULL, *s = NULL;
  unsigned char *der = NULL;
  int der_len;

  if(!data && n)
    return MDM_ERR_INVAL;
  if(!mdm_key_is_p256(key))
    return MDM_ERR_INVAL;
  if(!sig || sig_len != MDM_SIG_LEN)
    return MDM_ERR_AUTH;
  es = ECDSA_SIG_new();
  r = BN_bin2bn(sig, P256_COORD_LEN, NULL);
  s = BN_bin2bn(sig + P256_COORD_LEN, P256_COORD_LEN, NULL);
  if(!es || !r || !s) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(ECDSA_SIG_set0(es, r, s) != 1) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  r = s = NULL;  /* owned by es now */
  der_len = i2d_ECDSA_SIG(es, &der);
  if(der_len <= 0) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  md = EVP_MD_CTX_new();
  if(!md) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1) {
    rc = MDM_ERR_CRYPTO;
    goto out;
  }
  /* 1 is a valid signature; 0 a wrong one and <0 a malformed one (R or S
   * zero or not below the order): both are a failed verification. */
  rc = EVP_DigestVerify(md, der, (size_t)der_len, data, n) == 1 ?
       MDM_OK : MDM_ERR_AUTH;
out:
  ERR_clear_error();
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return rc;
}

mdm_rc mdm_sig_sign(EVP_PKEY *key, const void *data, size_t n,
                    char **sig_b64)
{
  unsigned char sig[MDM_SIG_LEN];
  mdm_rc rc;

  if(!sig_b64)
    return MDM_ERR_INVAL;
  *sig_b64 = NULL;
  rc = mdm_sig_sign_raw(key, data, n, sig);
  if(rc)
    return rc;
  return mdm_b64url_encode(sig, sizeof(sig), sig_b64);
}

mdm_rc mdm_sig_verify(EVP_PKEY *key, const void *data, size_t n,
                      const char *sig_b64)
{
  unsigned char *sig = NULL;
  size_t sig_len = 0, slen;
  mdm_rc rc;

  if(!sig_b64)
    return MDM_ERR_AUTH;
  /* 64 bytes are 86 characters; anything much longer is not ours. */
  slen = strnlen(sig_b64, 128);
  if(slen >= 128)
    return MDM_ERR_AUTH;
  rc = mdm_b64url_decode(sig_b64, slen, &sig, &sig_len);
  if(rc == MDM_ERR_NOMEM)
    return rc;
  if(rc)
    return MDM_ERR_AUTH;
  rc = mdm_sig_verify_raw(key, data, n, sig, sig_len);
  free(sig);
  return rc;
}
