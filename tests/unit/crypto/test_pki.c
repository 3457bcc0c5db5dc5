/*
 * test_pki.c: unit tests for src/crypto/pki.c.  Certificates are checked
 * with OpenSSL's own verifier (X509_verify_cert against the CA as the only
 * trust anchor, with and without the CRL), so a wrong extension or a bad
 * signature fails here, not only in a TLS handshake later.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "crypto/key.h"
#include "crypto/pki.h"

#define D90 (90 * 86400)  /* a device certificate's default lifetime */
#define TENANT "7d3a1c3e-6d0e-4f7e-9a55-0b1f4b2f0a01"
#define DEVICE "0747e9be-b875-429a-aaec-27356fd32719"
#define NOW ((int64_t)1800000000)

struct fx {
  EVP_PKEY *ca_key;
  X509 *ca;
  EVP_PKEY *dev_key;
  char *csr;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(mdm_ca_create(TENANT, "acme", &f->ca_key, &f->ca), 0);
  assert_int_equal(mdm_key_generate(&f->dev_key), 0);
  assert_int_equal(mdm_csr_create(f->dev_key, "whatever-the-device-says",
                                  &f->csr), 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  EVP_PKEY_free(f->ca_key);
  EVP_PKEY_free(f->dev_key);
  X509_free(f->ca);
  free(f->csr);
  free(f);
  return 0;
}

/* X509_verify_cert of cert against ca alone (and crl_pem when given), at
 * time t.  Returns the X509_V_ERR_* code (X509_V_OK when it verifies). */
static int verify(X509 *ca, X509 *cert, const char *crl_pem, int64_t t)
{
  X509_STORE *st = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_VERIFY_PARAM *vp;
  int err;
  assert_non_null(st);
  assert_non_null(ctx);
  assert_int_equal(X509_STORE_add_cert(st, ca), 1);
  if(crl_pem) {
    BIO *b = BIO_new_mem_buf(crl_pem, -1);
    X509_CRL *crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
    assert_non_null(crl);
    assert_int_equal(X509_STORE_add_crl(st, crl), 1);
    X509_CRL_free(crl);
    BIO_free(b);
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
  }
  assert_int_equal(X509_STORE_CTX_init(ctx, st, cert, NULL), 1);
  vp = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_time(vp, (time_t)t);
  X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_CLIENT);
  X509_verify_cert(ctx);
  err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(st);
  return err;
}

static void test_ca(void **state)
{
  struct fx *f = *state;
  BASIC_CONSTRAINTS *bc;
  char cn[128];
  assert_true(mdm_key_is_p256(X509_get0_pubkey(f->ca)));
  bc = X509_get_ext_d2i(f->ca, NID_basic_constraints, NULL, NULL);
  assert_non_null(bc);
  assert_true(bc->ca);
  BASIC_CONSTRAINTS_free(bc);
  assert_true(X509_get_key_usage(f->ca) & KU_KEY_CERT_SIGN);
  assert_true(X509_get_key_usage(f->ca) & KU_CRL_SIGN);
  X509_NAME_get_text_by_NID(X509_get_subject_name(f->ca), NID_commonName, cn,
                            sizeof(cn));
  assert_string_equal(cn, "mdm tenant CA acme");
  /* Self-signed, and trusted as its own anchor. */
  assert_int_equal(X509_verify(f->ca, f->ca_key), 1);
}

static void test_issue(void **state)
{
  struct fx *f = *state;
  struct mdm_issued is;
  char why[256], cn[128], o[128], fp[MDM_FINGERPRINT_LEN + 1];
  X509 *c = NULL;
  GENERAL_NAMES *san;
  const GENERAL_NAME *gn;
  const unsigned char *uri;

  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, f->csr, TENANT, DEVICE,
                                  D90, NOW, &is, why, sizeof(why)), 0);
  assert_string_equal(why, "");
  assert_int_equal(mdm_cert_from_pem(is.pem, &c), 0);
  /* The subject is the server's, not the CSR's. */
  X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn,
                            sizeof(cn));
  X509_NAME_get_text_by_NID(X509_get_subject_name(c),
                            NID_organizationName, o, sizeof(o));
  assert_string_equal(cn, DEVICE);
  assert_string_equal(o, TENANT);
  san = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
  assert_non_null(san);
  assert_int_equal(sk_GENERAL_NAME_num(san), 1);
  gn = sk_GENERAL_NAME_value(san, 0);
  assert_int_equal(gn->type, GEN_URI);
  uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
  assert_string_equal((const char *)uri, "urn:mdm:device:" DEVICE);
  GENERAL_NAMES_free(san);
  /* The device's own key, a client certificate, not a CA. */
  assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c), f->dev_key), 1);
  assert_true(X509_get_extended_key_usage(c) & XKU_SSL_CLIENT);
  assert_false(X509_check_ca(c));
  assert_int_equal(is.not_after - NOW, 90 * 86400);
  assert_int_equal(is.not_before, NOW - 300);
  assert_int_equal(strlen(is.serial), 32);
  assert_int_equal(mdm_cert_fingerprint(c, fp), 0);
  assert_string_equal(fp, is.fingerprint);
  /* Verifies against the CA as a TLS client; not before/after its time. */
  assert_int_equal(verify(f->ca, c, NULL, NOW + 86400), X509_V_OK);
  assert_int_equal(verify(f->ca, c, NULL, NOW + 91 * 86400),
                   X509_V_ERR_CERT_HAS_EXPIRED);
  assert_int_equal(verify(f->ca, c, NULL, NOW - 3600),
                   X509_V_ERR_CERT_NOT_YET_VALID);
  X509_free(c);
  free(is.pem);
  /* A short lifetime is backdated by a tenth of it, not 5 minutes, so that
   * its renewal point (two thirds) is still ahead. */
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, f->csr, TENANT, DEVICE,
                                  30, NOW, &is, why, sizeof(why)), 0);
  assert_int_equal(is.not_before, NOW - 3);
  assert_int_equal(is.not_after, NOW + 30);
  free(is.pem);
}

static void test_other_ca_does_not_verify(void **state)
{
  struct fx *f = *state;
  EVP_PKEY *k2;
  X509 *ca2, *c;
  struct mdm_issued is;
  char why[256];
  assert_int_equal(mdm_ca_create(TENANT, "other", &k2, &ca2), 0);
  assert_int_equal(mdm_cert_issue(k2, ca2, f->csr, TENANT, DEVICE, D90, NOW,
                                  &is, why, sizeof(why)), 0);
  assert_int_equal(mdm_cert_from_pem(is.pem, &c), 0);
  assert_int_not_equal(verify(f->ca, c, NULL, NOW + 60), X509_V_OK);
  X509_free(c);
  free(is.pem);
  X509_free(ca2);
  EVP_PKEY_free(k2);
}

/* A CSR for key signed with md, as PEM (caller frees), built with
 * OpenSSL's own X509_REQ API: the forms other tools send. */
static char *csr_with(EVP_PKEY *key, const EVP_MD *md)
{
  X509_REQ *r = X509_REQ_new();
  X509_NAME *nm = X509_NAME_new();
  BIO *b = BIO_new(BIO_s_mem());
  char *pem, *out;
  long n;
  assert_non_null(r);
  assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
                                              (const unsigned char *)"d",
                                              -1, -1, 0), 1);
  assert_int_equal(X509_REQ_set_subject_name(r, nm), 1);
  assert_int_equal(X509_REQ_set_pubkey(r, key), 1);
  assert_true(X509_REQ_sign(r, key, md) > 0);
  assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
  n = BIO_get_mem_data(b, &pem);
  out = strndup(pem, (size_t)n);
  assert_non_null(out);
  BIO_free(b);
  X509_NAME_free(nm);
  X509_REQ_free(r);
  return out;
}

/* The DER inside a CSR's PEM (caller frees with OPENSSL_free). */
static unsigned char *csr_der(const char *pem, long *len)
{
  BIO *b = BIO_new_mem_buf(pem, -1);
  char *name = NULL, *hdr = NULL;
  unsigned char *der = NULL;
  assert_int_equal(PEM_read_bio(b, &name, &hdr, &der, len), 1);
  OPENSSL_free(name);
  OPENSSL_free(hdr);
  BIO_free(b);
  return der;
}

/* der[len] as a "CERTIFICATE REQUEST" PEM (caller frees). */
static char *csr_pem(const unsigned char *der, long len)
{
  BIO *b = BIO_new(BIO_s_mem());
  char *pem, *out;
  long n;
  assert_int_equal(PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, len) > 0,
                   1);
  n = BIO_get_mem_data(b, &pem);
  out = strndup(pem, (size_t)n);
  assert_non_null(out);
  BIO_free(b);
  return out;
}

/* mdm_cert_issue(csr) must refuse with exactly why_want. */
static void refused(struct fx *f, const char *csr, const char *why_want)
{
  struct mdm_issued is;
  char why[256];
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, DEVICE,
                                  D90, NOW, &is, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, why_want);
  assert_null(is.pem);
}

/* mdm_cert_issue(csr) must issue a certificate for key. */
static void issued(struct fx *f, const char *csr, EVP_PKEY *key)
{
  struct mdm_issued is;
  char why[256];
  X509 *c = NULL;
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, DEVICE,
                                  D90, NOW, &is, why, sizeof(why)), 0);
  assert_int_equal(mdm_cert_from_pem(is.pem, &c), 0);
  assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c), key), 1);
  assert_int_equal(verify(f->ca, c, NULL, NOW + 86400), X509_V_OK);
  X509_free(c);
  free(is.pem);
}

/* The CSR is read by pki.c itself, not by d2i_X509_REQ: the forms other
 * encoders send are accepted, and every malformed one is refused with
 * the right reason. */
static void test_csr_forms(void **state)
{
  struct fx *f = *state;
  EVP_PKEY *ck = EVP_EC_gen("P-256");
  char *csr, *pem, *two, *p;
  unsigned char *der, *bad;
  long len, i;

  /* SHA-384 and SHA-512 signatures; a compressed point. */
  csr = csr_with(f->dev_key, EVP_sha384());
  issued(f, csr, f->dev_key);
  free(csr);
  csr = csr_with(f->dev_key, EVP_sha512());
  issued(f, csr, f->dev_key);
  free(csr);
  assert_non_null(ck);
  assert_int_equal(EVP_PKEY_set_utf8_string_param(
                       ck, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                       "compressed"), 1);
  csr = csr_with(ck, EVP_sha256());
  assert_non_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
  issued(f, csr, ck);
  free(csr);

  /* Another PEM block first (the CA certificate): the CSR is still
   * found. */
  assert_int_equal(mdm_cert_to_pem(f->ca, &pem), 0);
  assert_true(asprintf(&two, "%s%s", pem, f->csr) > 0);
  issued(f, two, f->dev_key);
  free(two);
  /* ... but a certificate alone is not a CSR. */
  refused(f, pem, "not a PEM certificate request (CSR)");
  free(pem);

  /* SHA-1 is not accepted. */
  csr = csr_with(f->dev_key, EVP_sha1());
  refused(f, csr, "the CSR's signature must be ECDSA with SHA-256, SHA-384 "
                  "or SHA-512");
  free(csr);

  /* Bytes after the CSR, inside the PEM. */
  der = csr_der(f->csr, &len);
  bad = OPENSSL_malloc((size_t)len + 2);
  assert_non_null(bad);
  memcpy(bad, der, (size_t)len);
  bad[len] = 0x05;
  bad[len + 1] = 0x00;
  pem = csr_pem(bad, len + 2);
  refused(f, pem, "not a PEM certificate request (CSR)");
  free(pem);
  /* Cut short, anywhere. */
  for(i = 1; i < len; i++) {
    pem = csr_pem(der, i);
    refused(f, pem, "not a PEM certificate request (CSR)");
    free(pem);
  }
  /* Version 2 instead of 0 (the INTEGER after the two SEQUENCE headers). */
  memcpy(bad, der, (size_t)len);
  p = memchr(bad + 4, 0x02, 8);
  assert_non_null(p);
  assert_int_equal(p[1], 1);
  assert_int_equal(p[2], 0);
  p[2] = 2;
  pem = csr_pem(bad, len);
  refused(f, pem, "not a PEM certificate request (CSR)");
  free(pem);
  /* The point moved off the curve: its last byte changed. */
  memcpy(bad, der, (size_t)len);
  for(i = 0; i + 66 < len; i++)
    if(bad[i] == 0x03 && bad[i + 1] == 0x42 && bad[i + 2] == 0 &&
       bad[i + 3] == 0x04)
      break;
  assert_true(i + 66 < len);
  bad[i + 3 + 64] ^= 0x01;
  pem = csr_pem(bad, len);
  refused(f, pem, "the CSR's key is not a point of EC P-256");
  free(pem);
  /* A signature of other bytes: one byte of the subject changed. */
  memcpy(bad, der, (size_t)len);
  p = memmem(bad, (size_t)len, "whatever", 8);
  assert_non_null(p);
  p[0] = 'W';
  pem = csr_pem(bad, len);
  refused(f, pem, "the CSR's signature does not verify (no proof of "
                  "possession of its key)");
  free(pem);
  /* Any byte changed to anything (a fixed pseudo-random sequence, so a
   * failure repeats): never a crash, never a certificate, always one of
   * the reasons. */
  {
    static const char *const reasons[] = {
      "not a PEM certificate request (CSR)",
      "the CSR's key must be EC P-256",
      "the CSR's key is not a point of EC P-256",
      "the CSR's signature must be ECDSA with SHA-256, SHA-384 or SHA-512",
      "the CSR's signature does not verify (no proof of possession of its "
      "key)",
    };
    unsigned x = 12345;
    int k;
    for(k = 0; k < 3000; k++) {
      struct mdm_issued is;
      char why[256];
      size_t r;
      int known = 0;
      memcpy(bad, der, (size_t)len);
      x = x * 1103515245u + 12345u;
      i = (long)((x >> 8) % (unsigned)len);
      x = x * 1103515245u + 12345u;
      if((unsigned char)(x >> 16) == bad[i])
        continue;
      bad[i] = (unsigned char)(x >> 16);
      pem = csr_pem(bad, len);
      assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, pem, TENANT, DEVICE,
                                      D90, NOW, &is, why, sizeof(why)),
                       MDM_ERR_INVAL);
      assert_null(is.pem);
      for(r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++)
        known |= !strcmp(why, reasons[r]);
      if(!known)
        fail_msg("byte %ld = 0x%02x: unexpected reason '%s'", i, bad[i],
                 why);
      free(pem);
    }
  }
  OPENSSL_free(bad);
  OPENSSL_free(der);
  EVP_PKEY_free(ck);
}

static void test_bad_csrs(void **state)
{
  struct fx *f = *state;
  struct mdm_issued is;
  char why[256], *csr = NULL, *p;
  EVP_PKEY *rsa = EVP_RSA_gen(2048), *p384 = EVP_EC_gen("P-384");
  char big[MDM_CSR_MAX + 2];

  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, "", TENANT, DEVICE, D90,
                                  NOW, &is, why, sizeof(why)), MDM_ERR_INVAL);
  assert_string_equal(why, "the CSR is empty");
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, "hello", TENANT, DEVICE,
                                  D90, NOW, &is, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, "not a PEM certificate request (CSR)");
  memset(big, 'A', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, big, TENANT, DEVICE, D90,
                                  NOW, &is, why, sizeof(why)), MDM_ERR_INVAL);
  assert_string_equal(why, "the CSR is larger than 8192 bytes");

  /* Wrong key types. */
  assert_non_null(rsa);
  assert_int_equal(mdm_csr_create(rsa, "x", &csr), 0);
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, DEVICE, D90,
                                  NOW, &is, why, sizeof(why)), MDM_ERR_INVAL);
  assert_string_equal(why, "the CSR's key must be EC P-256");
  free(csr);
  assert_non_null(p384);
  assert_int_equal(mdm_csr_create(p384, "x", &csr), 0);
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, DEVICE, D90,
                                  NOW, &is, why, sizeof(why)), MDM_ERR_INVAL);
  assert_string_equal(why, "the CSR's key must be EC P-256");
  free(csr);

  /* A CSR whose signature does not match its key (no proof of
   * possession): flip one character of the base64 near the end, inside
   * the signature. */
  csr = strdup(f->csr);
  assert_non_null(csr);
  p = strstr(csr, "-----END");
  assert_non_null(p);
  p -= 8;
  *p = *p == 'A' ? 'B' : 'A';
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, DEVICE, D90,
                                  NOW, &is, why, sizeof(why)), MDM_ERR_INVAL);
  assert_true(!strcmp(why, "the CSR's signature does not verify (no proof of "
                           "possession of its key)") ||
              !strcmp(why, "not a PEM certificate request (CSR)"));
  free(csr);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(p384);
  assert_null(is.pem);
}

static void test_crl(void **state)
{
  struct fx *f = *state;
  struct mdm_issued a, b;
  struct mdm_revoked rv;
  char why[256], *crl = NULL;
  X509 *ca_ = NULL, *cb = NULL;
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, f->csr, TENANT, DEVICE,
                                  D90, NOW, &a, why, sizeof(why)), 0);
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, f->csr, TENANT, DEVICE,
                                  D90, NOW, &b, why, sizeof(why)), 0);
  assert_string_not_equal(a.serial, b.serial);
  assert_int_equal(mdm_cert_from_pem(a.pem, &ca_), 0);
  assert_int_equal(mdm_cert_from_pem(b.pem, &cb), 0);
  rv.serial = a.serial;
  rv.revoked_at = NOW + 60;
  assert_int_equal(mdm_crl_build(f->ca_key, f->ca, &rv, 1, NOW + 120,
                                 NOW + 120 + 86400, 7, &crl), 0);
  assert_non_null(strstr(crl, "-----BEGIN X509 CRL-----"));
  assert_int_equal(verify(f->ca, ca_, crl, NOW + 600),
                   X509_V_ERR_CERT_REVOKED);
  assert_int_equal(verify(f->ca, cb, crl, NOW + 600), X509_V_OK);
  free(crl);
  /* An empty CRL is valid too. */
  assert_int_equal(mdm_crl_build(f->ca_key, f->ca, NULL, 0, NOW + 120,
                                 NOW + 120 + 86400, 8, &crl), 0);
  assert_int_equal(verify(f->ca, ca_, crl, NOW + 600), X509_V_OK);
  free(crl);
  X509_free(ca_);
  X509_free(cb);
  free(a.pem);
  free(b.pem);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_ca, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue, setup, teardown),
    cmocka_unit_test_setup_teardown(test_other_ca_does_not_verify, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_bad_csrs, setup, teardown),
    cmocka_unit_test_setup_teardown(test_csr_forms, setup, teardown),
    cmocka_unit_test_setup_teardown(test_crl, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
