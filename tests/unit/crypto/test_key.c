/*
 * test_key.c: unit tests for src/crypto/key.c: P-256 generation, PEM in and
 * out, key ids, and raw R||S ES256 signatures, including the RFC 7515 A.3
 * known answer and the left-padding of short R and S.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "core/util.h"
#include "crypto/key.h"

/* RFC 7515 Appendix A.3: the ES256 example.  The PEM forms of its JWK and
 * the key id were computed independently (Python "cryptography"). */
static const char rfc_pub_pem[] =
  "-----BEGIN PUBLIC KEY-----\n"
  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
  "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
  "-----END PUBLIC KEY-----\n";
static const char rfc_priv_pem[] =
  "-----BEGIN PRIVATE KEY-----\n"
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
  "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
  "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
  "-----END PRIVATE KEY-----\n";
static const char rfc_kid[] = "K9G7DESol8MKeqCZHN442AYv5EHeUNoPRoJTRPYC6Cc";
static const char rfc_input[] =
  "eyJhbGciOiJFUzI1NiJ9."
  "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
  "bS9pc19yb290Ijp0cnVlfQ";
static const char rfc_sig[] =
  "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJ"
  "qPP3-Kg6NU1Q";

static const char msg[] = "the quick brown fox";

static EVP_PKEY *load(const char *pem)
{
  EVP_PKEY *k = NULL;
  assert_int_equal(mdm_key_from_pem(pem, &k), MDM_OK);
  assert_non_null(k);
  return k;
}

static EVP_PKEY *gen(void)
{
  EVP_PKEY *k = NULL;
  assert_int_equal(mdm_key_generate(&k), MDM_OK);
  assert_non_null(k);
  return k;
}

/* PEM of any key, for keys mdm_key_to_pem refuses (other curves). */
static char *foreign_pem(EVP_PKEY *k, int is_private)
{
  BIO *b = BIO_new(BIO_s_mem());
  char *mem = NULL, *out;
  long n;
  assert_non_null(b);
  if(is_private)
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
                                              NULL), 1);
  else
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
  n = BIO_get_mem_data(b, &mem);
  out = calloc(1, (size_t)n + 1);
  assert_non_null(out);
  memcpy(out, mem, (size_t)n);
  BIO_free(b);
  return out;
}

static int is_kid(const char *s)
{
  size_t i;
  if(strlen(s) != MDM_KID_LEN)
    return 0;
  for(i = 0; s[i]; i++)
    if(!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789-_", s[i]))
      return 0;
  return 1;
}

/* ---- PEM and key ids -------------------------------------------------- */

static void test_generate_pem_roundtrip(void **state)
{
  EVP_PKEY *k = gen(), *kpriv, *kpub;
  char kid[MDM_KID_LEN + 1], kid2[MDM_KID_LEN + 1], kid3[MDM_KID_LEN + 1];
  char *priv = NULL, *pub = NULL, *pub2 = NULL;
  (void)state;

  assert_true(mdm_key_is_p256(k));
  assert_int_equal(mdm_key_id(k, kid), MDM_OK);
  assert_true(is_kid(kid));

  assert_int_equal(mdm_key_to_pem(k, 1, &priv), MDM_OK);
  assert_int_equal(mdm_key_to_pem(k, 0, &pub), MDM_OK);
  assert_non_null(strstr(priv, "-----BEGIN PRIVATE KEY-----\n"));
  assert_null(strstr(priv, "EC PRIVATE KEY"));
  assert_non_null(strstr(pub, "-----BEGIN PUBLIC KEY-----\n"));

  kpriv = load(priv);
  kpub = load(pub);
  assert_int_equal(mdm_key_id(kpriv, kid2), MDM_OK);
  assert_int_equal(mdm_key_id(kpub, kid3), MDM_OK);
  assert_string_equal(kid, kid2);
  assert_string_equal(kid, kid3);
  assert_int_equal(EVP_PKEY_eq(k, kpriv), 1);

  /* The public half of a loaded private key prints the same public PEM. */
  assert_int_equal(mdm_key_to_pem(kpriv, 0, &pub2), MDM_OK);
  assert_string_equal(pub, pub2);

  free(priv);
  free(pub);
  free(pub2);
  EVP_PKEY_free(k);
  EVP_PKEY_free(kpriv);
  EVP_PKEY_free(kpub);
}

static void test_two_keys_differ(void **state)
{
  EVP_PKEY *a = gen(), *b = gen();
  char ka[MDM_KID_LEN + 1], kb[MDM_KID_LEN + 1];
  (void)state;
  assert_int_equal(mdm_key_id(a, ka), MDM_OK);
  assert_int_equal(mdm_key_id(b, kb), MDM_OK);
  assert_string_not_equal(ka, kb);
  EVP_PKEY_free(a);
  EVP_PKEY_free(b);
}

static void test_kid_known_answer(void **state)
{
  EVP_PKEY *pub = load(rfc_pub_pem), *priv = load(rfc_priv_pem);
  char kid[MDM_KID_LEN + 1];
  char *pem = NULL;
  (void)state;
  assert_int_equal(mdm_key_id(pub, kid), MDM_OK);
  assert_string_equal(kid, rfc_kid);
  assert_int_equal(mdm_key_id(priv, kid), MDM_OK);
  assert_string_equal(kid, rfc_kid);
  assert_int_equal(mdm_key_to_pem(priv, 0, &pem), MDM_OK);
  assert_string_equal(pem, rfc_pub_pem);
  free(pem);
  assert_int_equal(mdm_key_to_pem(priv, 1, &pem), MDM_OK);
  assert_string_equal(pem, rfc_priv_pem);
  free(pem);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(priv);
}

static void test_traditional_ec_pem_loads(void **state)
{
  EVP_PKEY *k = gen(), *k2;
  BIO *b = BIO_new(BIO_s_mem());
  char *mem = NULL, *pem;
  long n;
  (void)state;
  assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0,
                                                        NULL, NULL), 1);
  n = BIO_get_mem_data(b, &mem);
  pem = strndup(mem, (size_t)n);
  assert_non_null(strstr(pem, "BEGIN EC PRIVATE KEY"));
  k2 = load(pem);
  assert_int_equal(EVP_PKEY_eq(k, k2), 1);
  free(pem);
  BIO_free(b);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);
}

static void test_from_pem_rejects(void **state)
{
  EVP_PKEY *k = (EVP_PKEY *)1, *p384, *ed, *p256;
  char *pem;
  BIO *b;
  char *mem = NULL;
  long n;
  char *big;
  (void)state;

  assert_int_equal(mdm_key_from_pem(NULL, &k), MDM_ERR_INVAL);
  assert_null(k);
  assert_int_equal(mdm_key_from_pem("", &k), MDM_ERR_INVAL);
  assert_int_equal(mdm_key_from_pem("not a key", &k), MDM_ERR_INVAL);
  assert_int_equal(mdm_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                    "-----END PUBLIC KEY-----\n", &k),
                   MDM_ERR_INVAL);
  assert_null(k);
  assert_int_equal(mdm_key_from_pem(rfc_pub_pem, NULL), MDM_ERR_INVAL);

  /* Another curve and another algorithm: refused, public or private. */
  p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  assert_non_null(p384);
  assert_non_null(ed);
  pem = foreign_pem(p384, 1);
  assert_int_equal(mdm_key_from_pem(pem, &k), MDM_ERR_INVAL);
  free(pem);
  pem = foreign_pem(p384, 0);
  assert_int_equal(mdm_key_from_pem(pem, &k), MDM_ERR_INVAL);
  free(pem);
  pem = foreign_pem(ed, 1);
  assert_int_equal(mdm_key_from_pem(pem, &k), MDM_ERR_INVAL);
  free(pem);
  assert_null(k);

  /* An encrypted key fails without asking for a passphrase. */
  p256 = gen();
  b = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_PrivateKey(b, p256, EVP_aes_256_cbc(),
                                            (unsigned char *)"secret", 6,
                                            NULL, NULL), 1);
  n = BIO_get_mem_data(b, &mem);
  pem = strndup(mem, (size_t)n);
  assert_non_null(strstr(pem, "ENCRYPTED"));
  assert_int_equal(mdm_key_from_pem(pem, &k), MDM_ERR_INVAL);
  assert_null(k);
  free(pem);
  BIO_free(b);

  /* Oversized input is refused before it is parsed. */
  big = malloc(64 * 1024);
  assert_non_null(big);
  memset(big, 'A', 64 * 1024 - 1);
  big[64 * 1024 - 1] = '\0';
  assert_int_equal(mdm_key_from_pem(big, &k), MDM_ERR_TOOBIG);
  free(big);

  /* And the OpenSSL error queue is left clean for the next user. */
  assert_int_equal(ERR_peek_error(), 0);

  EVP_PKEY_free(p384);
  EVP_PKEY_free(ed);
  EVP_PKEY_free(p256);
}

static void test_foreign_keys_refused(void **state)
{
  EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  char kid[MDM_KID_LEN + 1];
  unsigned char sig[MDM_SIG_LEN] = {0};
  char *out = (char *)1;
  (void)state;
  assert_non_null(p384);
  assert_false(mdm_key_is_p256(p384));
  assert_false(mdm_key_is_p256(NULL));
  assert_int_equal(mdm_key_id(p384, kid), MDM_ERR_INVAL);
  assert_int_equal(mdm_key_id(NULL, kid), MDM_ERR_INVAL);
  assert_int_equal(mdm_key_to_pem(p384, 1, &out), MDM_ERR_INVAL);
  assert_null(out);
  assert_int_equal(mdm_sig_sign(p384, msg, sizeof(msg), &out), MDM_ERR_INVAL);
  assert_null(out);
  assert_int_equal(mdm_sig_verify_raw(p384, msg, sizeof(msg), sig,
                                      sizeof(sig)), MDM_ERR_INVAL);
  EVP_PKEY_free(p384);
}

static void test_public_only_key(void **state)
{
  EVP_PKEY *pub = load(rfc_pub_pem);
  char *out = (char *)1;
  unsigned char sig[MDM_SIG_LEN];
  (void)state;
  assert_int_equal(mdm_key_to_pem(pub, 1, &out), MDM_ERR_INVAL);
  assert_null(out);
  assert_int_equal(mdm_sig_sign(pub, msg, sizeof(msg), &out), MDM_ERR_CRYPTO);
  assert_null(out);
  assert_int_equal(mdm_sig_sign_raw(pub, msg, sizeof(msg), sig),
                   MDM_ERR_CRYPTO);
  assert_int_equal(ERR_peek_error(), 0);
  EVP_PKEY_free(pub);
}

/* ---- signatures ------------------------------------------------------- */

static void test_rfc7515_a3_known_answer(void **state)
{
  EVP_PKEY *pub = load(rfc_pub_pem);
  char bad[sizeof(rfc_sig)];
  char input[sizeof(rfc_input)];
  (void)state;

  assert_int_equal(mdm_sig_verify(pub, rfc_input, strlen(rfc_input), rfc_sig),
                   MDM_OK);
  /* One bit of the signature, one byte of the input. */
  memcpy(bad, rfc_sig, sizeof(bad));
  bad[10] = bad[10] == 'A' ? 'B' : 'A';
  assert_int_equal(mdm_sig_verify(pub, rfc_input, strlen(rfc_input), bad),
                   MDM_ERR_AUTH);
  memcpy(input, rfc_input, sizeof(input));
  input[30] ^= 1;
  assert_int_equal(mdm_sig_verify(pub, input, strlen(input), rfc_sig),
                   MDM_ERR_AUTH);
  /* The right 64 bytes plus one more are not accepted. */
  assert_int_equal(mdm_sig_verify(pub, rfc_input, strlen(rfc_input),
                                  "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXF"
                                  "CgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1QA"),
                   MDM_ERR_AUTH);
  EVP_PKEY_free(pub);
}

static void test_sign_verify_roundtrip(void **state)
{
  EVP_PKEY *k = gen(), *pub, *other = gen();
  char *pem = NULL, *sig = NULL;
  unsigned char *raw = NULL;
  size_t raw_len = 0;
  (void)state;

  assert_int_equal(mdm_sig_sign(k, msg, strlen(msg), &sig), MDM_OK);
  assert_int_equal(strlen(sig), 86);
  assert_int_equal(mdm_b64url_decode(sig, strlen(sig), &raw, &raw_len),
                   MDM_OK);
  assert_int_equal(raw_len, MDM_SIG_LEN);

  assert_int_equal(mdm_sig_verify(k, msg, strlen(msg), sig), MDM_OK);
  /* A public key loaded from PEM verifies what the private key signed. */
  assert_int_equal(mdm_key_to_pem(k, 0, &pem), MDM_OK);
  pub = load(pem);
  assert_int_equal(mdm_sig_verify(pub, msg, strlen(msg), sig), MDM_OK);
  assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), raw, raw_len),
                   MDM_OK);

  /* Tampered data, tampered signature, another key. */
  assert_int_equal(mdm_sig_verify(pub, "the quick brown fox!", 20, sig),
                   MDM_ERR_AUTH);
  assert_int_equal(mdm_sig_verify(pub, msg, strlen(msg) - 1, sig),
                   MDM_ERR_AUTH);
  raw[5] ^= 0x01;
  assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), raw, raw_len),
                   MDM_ERR_AUTH);
  raw[5] ^= 0x01;
  raw[40] ^= 0x80;
  assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), raw, raw_len),
                   MDM_ERR_AUTH);
  raw[40] ^= 0x80;
  assert_int_equal(mdm_sig_verify(other, msg, strlen(msg), sig),
                   MDM_ERR_AUTH);

  /* Wrong lengths: 63 and 65 bytes, even when the 64 are right. */
  assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), raw, 63),
                   MDM_ERR_AUTH);
  {
    unsigned char longer[65];
    memcpy(longer, raw, 64);
    longer[64] = 0;
    assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), longer, 65),
                     MDM_ERR_AUTH);
  }
  assert_int_equal(mdm_sig_verify_raw(pub, msg, strlen(msg), NULL, 64),
                   MDM_ERR_AUTH);
  assert_int_equal(mdm_sig_verify(pub, msg, strlen(msg), NULL), MDM_ERR_AUTH);
  assert_int_equal(mdm_sig_verify(pub, msg, strlen(msg), ""), MDM_ERR_AUTH);
  assert_int_equal(mdm_sig_verify(pub, msg, strlen(msg), "not*base64"),
                   MDM_ERR_AUTH);

  /* The empty message is a message too. */
  free(sig);
  assert_int_equal(mdm_sig_sign(k, "", 0, &sig), MDM_OK);
  assert_int_equal(mdm_sig_verify(pub, "", 0, sig), MDM_OK);
  assert_int_equal(mdm_sig_verify(pub, "x", 1, sig), MDM_ERR_AUTH);

  free(raw);
  free(sig);
  free(pem);
  EVP_PKEY_free(k);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(other);
}

static void test_degenerate_signatures(void **state)
{
  EVP_PKEY *k = load(rfc_pub_pem);
  unsigned char sig[MDM_SIG_LEN];
  (void)state;
  /* R = S = 0, and R = S = 2^256 - 1 (above the group order). */
  memset(sig, 0, sizeof(sig));
  assert_int_equal(mdm_sig_verify_raw(k, msg, strlen(msg), sig, sizeof(sig)),
                   MDM_ERR_AUTH);
  memset(sig, 0xff, sizeof(sig));
  assert_int_equal(mdm_sig_verify_raw(k, msg, strlen(msg), sig, sizeof(sig)),
                   MDM_ERR_AUTH);
  assert_int_equal(ERR_peek_error(), 0);
  EVP_PKEY_free(k);
}

/* Verify raw R||S with OpenSSL directly, through DER, so the padding logic
 * under test is not also the logic doing the checking. */
static int verify_independently(EVP_PKEY *k, const unsigned char *sig)
{
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
  unsigned char *der = NULL;
  int der_len, ok;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_int_equal(ECDSA_SIG_set0(es, r, s), 1);
  der_len = i2d_ECDSA_SIG(es, &der);
  assert_true(der_len > 0);
  assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
  ok = EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)msg,
                        strlen(msg));
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ECDSA_SIG_free(es);
  return ok;
}

static void test_short_r_and_s_are_left_padded(void **state)
{
  EVP_PKEY *k = gen();
  unsigned char sig[MDM_SIG_LEN];
  int i, is_short_r = 0, is_short_s = 0;
  (void)state;
  /* About one signature in 256 has an R (or S) with a leading zero byte;
   * keep signing until both have been seen. */
  for(i = 0; i < 40000 && !(is_short_r && is_short_s); i++) {
    assert_int_equal(mdm_sig_sign_raw(k, msg, strlen(msg), sig), MDM_OK);
    if(sig[0] == 0 || sig[32] == 0) {
      assert_int_equal(verify_independently(k, sig), 1);
      assert_int_equal(mdm_sig_verify_raw(k, msg, strlen(msg), sig,
                                          sizeof(sig)), MDM_OK);
      if(sig[0] == 0)
        is_short_r = 1;
      if(sig[32] == 0)
        is_short_s = 1;
    }
  }
  assert_true(is_short_r);
  assert_true(is_short_s);
  EVP_PKEY_free(k);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_generate_pem_roundtrip),
    cmocka_unit_test(test_two_keys_differ),
    cmocka_unit_test(test_kid_known_answer),
    cmocka_unit_test(test_traditional_ec_pem_loads),
    cmocka_unit_test(test_from_pem_rejects),
    cmocka_unit_test(test_foreign_keys_refused),
    cmocka_unit_test(test_public_only_key),
    cmocka_unit_test(test_rfc7515_a3_known_answer),
    cmocka_unit_test(test_sign_verify_roundtrip),
    cmocka_unit_test(test_degenerate_signatures),
    cmocka_unit_test(test_short_r_and_s_are_left_padded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
