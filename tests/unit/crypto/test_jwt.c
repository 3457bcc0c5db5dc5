/*
 * test_jwt.c: unit tests for src/crypto/jwt.c.  Most forged tokens here
 * carry a signature that is valid for their bytes, made with the right key,
 * so that each rejection is caused by the one thing the test changes (the
 * alg, the aud, the length...) and not by a bad signature.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "core/util.h"
#include "crypto/jwt.h"
#include "crypto/key.h"

#define NOW ((int64_t)1800000000)
#define AUD "mdm-device"
#define HDR "{\"alg\":\"ES256\",\"typ\":\"JWT\"}"

struct fixture {
  EVP_PKEY *key;     /* the tenant key */
  EVP_PKEY *pub;     /* its public half only, loaded from PEM */
  char *pub_pem;
  EVP_PKEY *other;   /* somebody else's key */
  char kid[MDM_KID_LEN + 1];
};

static struct fixture F;

static int setup(void **state)
{
  (void)state;
  if(mdm_key_generate(&F.key) || mdm_key_generate(&F.other) ||
     mdm_key_to_pem(F.key, 0, &F.pub_pem) ||
     mdm_key_from_pem(F.pub_pem, &F.pub) || mdm_key_id(F.key, F.kid))
    return -1;
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  EVP_PKEY_free(F.key);
  EVP_PKEY_free(F.pub);
  EVP_PKEY_free(F.other);
  free(F.pub_pem);
  return 0;
}

static char *b64(const void *p, size_t n)
{
  char *s = NULL;
  assert_int_equal(mdm_b64url_encode(p, n, &s), MDM_OK);
  return s;
}

static char *b64s(const char *s)
{
  return b64(s, strlen(s));
}

static char *cat3(const char *a, const char *b, const char *c)
{
  size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
  char *s = malloc(n);
  assert_non_null(s);
  snprintf(s, n, "%s.%s.%s", a, b, c);
  return s;
}

/* header and payload as given (raw JSON text), signed ES256 with key, with
 * whatever alg the header claims.  Caller frees. */
static char *forge(EVP_PKEY *key, const char *header, const char *payload)
{
  char *h = b64s(header), *p = b64s(payload), *input, *sig = NULL, *tok;
  size_t n = strlen(h) + strlen(p) + 2;
  input = malloc(n);
  assert_non_null(input);
  snprintf(input, n, "%s.%s", h, p);
  assert_int_equal(mdm_sig_sign(key, input, strlen(input), &sig), MDM_OK);
  tok = cat3(h, p, sig);
  free(h);
  free(p);
  free(input);
  free(sig);
  return tok;
}

/* header and payload with a raw signature of sig_len bytes. */
static char *forge_raw(const char *header, const char *payload,
                       const unsigned char *sig, size_t sig_len)
{
  char *h = b64s(header), *p = b64s(payload), *s = b64(sig, sig_len), *tok;
  tok = cat3(h, p, s);
  free(h);
  free(p);
  free(s);
  return tok;
}

static char *payload_exp(int64_t exp)
{
  char *s = malloc(128);
  assert_non_null(s);
  snprintf(s, 128, "{\"aud\":\"" AUD "\",\"exp\":%lld,\"sub\":\"dev-1\"}",
           (long long)exp);
  return s;
}

static mdm_rc verify(const char *tok)
{
  return mdm_jwt_verify(F.pub, tok, AUD, NOW, NULL);
}

static mdm_rc verify_forged(const char *header, const char *payload)
{
  char *tok = forge(F.key, header, payload);
  mdm_rc rc = verify(tok);
  free(tok);
  return rc;
}

static json_t *claims_new(void)
{
  json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "iss", "mdm",
                        "aud", AUD, "sub", "dev-1", "tenant", "default",
                        "exp", (json_int_t)(NOW + 3600), "jti", "j-1");
  assert_non_null(c);
  return c;
}

/* Not inlined: gcc 12 at -O3 (-Wdangling-pointer) otherwise takes pointers
 * into the returned token for pointers to this function's local. */
__attribute__((noinline)) static char *sign(json_t *claims)
{
  char *tok = NULL;
  assert_int_equal(mdm_jwt_sign(F.key, F.kid, claims, &tok), MDM_OK);
  assert_non_null(tok);
  return tok;
}

/* Decoded part i (0, 1, 2) of tok as a string. */
static char *part(const char *tok, int i)
{
  const char *s = tok, *e;
  unsigned char *out = NULL;
  size_t n = 0;
  while(i--) {
    s = strchr(s, '.');
    assert_non_null(s);
    s++;
  }
  e = strchr(s, '.');
  if(!e)
    e = s + strlen(s);
  assert_int_equal(mdm_b64url_decode(s, (size_t)(e - s), &out, &n), MDM_OK);
  return (char *)out;
}

/* ---- the good path ---------------------------------------------------- */

static void test_roundtrip(void **state)
{
  json_t *c = claims_new(), *got = NULL;
  char *tok = sign(c), *h, *p, *expect;
  (void)state;

  /* Exact header and payload: compact, keys sorted. */
  h = part(tok, 0);
  expect = malloc(128);
  snprintf(expect, 128, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
           F.kid);
  assert_string_equal(h, expect);
  p = part(tok, 1);
  assert_string_equal(p, "{\"aud\":\"mdm-device\",\"exp\":1800003600,"
                         "\"iss\":\"mdm\",\"jti\":\"j-1\",\"sub\":\"dev-1\","
                         "\"tenant\":\"default\"}");

  assert_int_equal(mdm_jwt_verify(F.pub, tok, AUD, NOW, &got), MDM_OK);
  assert_non_null(got);
  assert_true(json_equal(got, c));
  json_decref(got);
  /* The private key verifies too; claims may be NULL. */
  assert_int_equal(mdm_jwt_verify(F.key, tok, AUD, NOW, NULL), MDM_OK);

  free(h);
  free(p);
  free(expect);
  free(tok);
  json_decref(c);
}

static void test_sign_without_kid(void **state)
{
  json_t *c = claims_new();
  char *tok = NULL, *h;
  (void)state;
  assert_int_equal(mdm_jwt_sign(F.key, NULL, c, &tok), MDM_OK);
  h = part(tok, 0);
  assert_string_equal(h, HDR);
  assert_int_equal(verify(tok), MDM_OK);
  free(h);
  free(tok);
  json_decref(c);
}

static void test_sign_rejects(void **state)
{
  json_t *c = claims_new(), *arr = json_array();
  char *tok = (char *)1;
  char big[MDM_JWT_MAX_LEN];
  (void)state;
  assert_int_equal(mdm_jwt_sign(NULL, NULL, c, &tok), MDM_ERR_INVAL);
  assert_null(tok);
  assert_int_equal(mdm_jwt_sign(F.key, NULL, arr, &tok), MDM_ERR_INVAL);
  assert_int_equal(mdm_jwt_sign(F.key, NULL, NULL, &tok), MDM_ERR_INVAL);
  assert_int_equal(mdm_jwt_sign(F.key, "\xff\xfe", c, &tok), MDM_ERR_INVAL);
  assert_int_equal(mdm_jwt_sign(F.pub, NULL, c, &tok), MDM_ERR_CRYPTO);
  assert_null(tok);
  /* A token that verify would refuse as too long is not made. */
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  json_object_set_new(c, "pad", json_string(big));
  assert_int_equal(mdm_jwt_sign(F.key, NULL, c, &tok), MDM_ERR_TOOBIG);
  assert_null(tok);
  json_decref(arr);
  json_decref(c);
}

static void test_verify_bad_arguments(void **state)
{
  json_t *c = claims_new(), *got = (json_t *)1;
  char *tok = sign(c);
  EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  (void)state;
  assert_int_equal(mdm_jwt_verify(NULL, tok, AUD, NOW, &got), MDM_ERR_INVAL);
  assert_null(got);
  assert_int_equal(mdm_jwt_verify(F.pub, tok, NULL, NOW, NULL),
                   MDM_ERR_INVAL);
  assert_int_equal(mdm_jwt_verify(p384, tok, AUD, NOW, NULL), MDM_ERR_INVAL);
  assert_int_equal(mdm_jwt_verify(F.pub, NULL, AUD, NOW, NULL), MDM_ERR_AUTH);
  EVP_PKEY_free(p384);
  free(tok);
  json_decref(c);
}

/* ---- algorithms ------------------------------------------------------- */

static void test_alg_none_empty_signature(void **state)
{
  char *h = b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}");
  char *p = payload_exp(NOW + 60), *p64 = b64s(p), *tok;
  size_t n = strlen(h) + strlen(p64) + 3;
  (void)state;
  tok = malloc(n);
  snprintf(tok, n, "%s.%s.", h, p64);
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  /* And the same with an ES256 header and no signature. */
  free(h);
  h = b64s(HDR);
  snprintf(tok, n, "%s.%s.", h, p64);
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  free(h);
  free(p);
  free(p64);
  free(tok);
}

static void test_alg_none_with_valid_signature(void **state)
{
  char *p = payload_exp(NOW + 60);
  (void)state;
  /* The signature is a correct ES256 signature by the right key; the
   * header still says "none" and must lose. */
  assert_int_equal(verify_forged("{\"alg\":\"none\",\"typ\":\"JWT\"}", p),
                   MDM_ERR_AUTH);
  free(p);
}

static void test_other_algs_rejected(void **state)
{
  static const char *const hdrs[] = {
    "{\"alg\":\"HS256\"}", "{\"alg\":\"RS256\"}", "{\"alg\":\"ES384\"}",
    "{\"alg\":\"ES512\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"EdDSA\"}",
    "{\"alg\":\"es256\"}", "{\"alg\":\"ES256 \"}", "{\"alg\":\"NONE\"}",
    "{\"alg\":\"\"}", "{\"alg\":null}", "{\"alg\":256}",
    "{\"alg\":[\"ES256\"]}", "{\"typ\":\"JWT\"}", "{}",
    /* Two "alg": whichever a reader keeps, we refuse. */
    "{\"alg\":\"none\",\"alg\":\"ES256\"}",
    "{\"alg\":\"ES256\",\"alg\":\"none\"}",
    /* A NUL smuggled into the name. */
    "{\"alg\":\"ES256\\u0000\"}",
    /* Extensions we do not understand. */
    "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}",
  };
  char *p = payload_exp(NOW + 60);
  size_t i;
  (void)state;
  /* Control: the same payload with a plain ES256 header passes. */
  assert_int_equal(verify_forged("{\"alg\":\"ES256\"}", p), MDM_OK);
  for(i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
    mdm_rc rc = verify_forged(hdrs[i], p);
    if(rc != MDM_ERR_AUTH)
      fail_msg("header %s: got %d, want MDM_ERR_AUTH", hdrs[i], rc);
  }
  free(p);
}

static void test_hs256_key_confusion(void **state)
{
  char *h = b64s("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
  char *p = payload_exp(NOW + 60), *p64 = b64s(p), *input, *tok;
  unsigned char mac[32];
  size_t mac_len = 0, n = strlen(h) + strlen(p64) + 2;
  (void)state;
  input = malloc(n);
  snprintf(input, n, "%s.%s", h, p64);
  /* The classic attack: HMAC-SHA256 keyed with the public key's PEM. */
  assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, F.pub_pem,
                            strlen(F.pub_pem), (unsigned char *)input,
                            strlen(input), mac, sizeof(mac), &mac_len));
  assert_int_equal(mac_len, 32);
  tok = forge_raw("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, mac, mac_len);
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  free(tok);
  /* Even a 64-byte "signature" (MAC twice) under an HS256 header. */
  {
    unsigned char two[64];
    memcpy(two, mac, 32);
    memcpy(two + 32, mac, 32);
    tok = forge_raw("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, two, 64);
    assert_int_equal(verify(tok), MDM_ERR_AUTH);
    free(tok);
  }
  free(h);
  free(p);
  free(p64);
  free(input);
}

/* ---- claims ----------------------------------------------------------- */

static void test_aud(void **state)
{
  char p[256];
  (void)state;
#define P_AUD(a) \
  snprintf(p, sizeof(p), "{\"aud\":" a ",\"exp\":%lld}", (long long)NOW + 60)
  P_AUD("\"mdm-device\"");
  assert_int_equal(verify_forged(HDR, p), MDM_OK);
  P_AUD("\"mdm-enroll\"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("\"mdm-device \"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("\"MDM-DEVICE\"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("\"\"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("[\"mdm-enroll\",\"mdm-device\"]");
  assert_int_equal(verify_forged(HDR, p), MDM_OK);
  P_AUD("[\"mdm-device\"]");
  assert_int_equal(verify_forged(HDR, p), MDM_OK);
  P_AUD("[\"mdm-enroll\",\"other\"]");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("[]");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("[\"mdm-device\",7]");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("[[\"mdm-device\"]]");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("{\"mdm-device\":true}");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("null");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_AUD("\"mdm-enroll\",\"aud\":\"mdm-device\"");  /* duplicate name */
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
#undef P_AUD
  snprintf(p, sizeof(p), "{\"exp\":%lld}", (long long)NOW + 60);
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  /* Same token, the caller's audience decides. */
  {
    char *tok;
    snprintf(p, sizeof(p), "{\"aud\":\"mdm-enroll\",\"exp\":%lld}",
             (long long)NOW + 60);
    tok = forge(F.key, HDR, p);
    assert_int_equal(mdm_jwt_verify(F.pub, tok, "mdm-enroll", NOW, NULL),
                     MDM_OK);
    assert_int_equal(mdm_jwt_verify(F.pub, tok, "mdm-device", NOW, NULL),
                     MDM_ERR_AUTH);
    free(tok);
  }
}

static void test_exp(void **state)
{
  char p[256];
  char *s;
  (void)state;
  s = payload_exp(NOW + 1);
  assert_int_equal(verify_forged(HDR, s), MDM_OK);
  free(s);
  s = payload_exp(NOW);
  assert_int_equal(verify_forged(HDR, s), MDM_ERR_EXPIRED);
  free(s);
  s = payload_exp(NOW - 1);
  assert_int_equal(verify_forged(HDR, s), MDM_ERR_EXPIRED);
  free(s);
  s = payload_exp(0);
  assert_int_equal(verify_forged(HDR, s), MDM_ERR_EXPIRED);
  free(s);

#define P_EXP(e) snprintf(p, sizeof(p), "{\"aud\":\"" AUD "\"" e "}")
  P_EXP("");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":null");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":\"1900000000\"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":1900000000.5");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":1.9e9");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":true");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":[1900000000]");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":99999999999999999999999");  /* beyond 64 bits */
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_EXP(",\"exp\":1,\"exp\":1900000000");      /* duplicate name */
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
#undef P_EXP
}

static void test_expired_token_with_bad_signature_is_auth(void **state)
{
  char *s = payload_exp(NOW - 100);
  char *tok = forge(F.other, HDR, s);
  (void)state;
  /* The signature is checked first: a forger learns nothing about exp. */
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  free(tok);
  free(s);
}

static void test_nbf(void **state)
{
  char p[256];
  (void)state;
#define P_NBF(n) snprintf(p, sizeof(p), \
  "{\"aud\":\"" AUD "\",\"exp\":%lld,\"nbf\":" n "}", (long long)NOW + 60)
  P_NBF("1800000001");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_NBF("1800000000");
  assert_int_equal(verify_forged(HDR, p), MDM_OK);
  P_NBF("1799999999");
  assert_int_equal(verify_forged(HDR, p), MDM_OK);
  P_NBF("\"0\"");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
  P_NBF("null");
  assert_int_equal(verify_forged(HDR, p), MDM_ERR_AUTH);
#undef P_NBF
}

static void test_payload_not_object(void **state)
{
  (void)state;
  assert_int_equal(verify_forged(HDR, "[\"aud\",\"mdm-device\"]"),
                   MDM_ERR_AUTH);
  assert_int_equal(verify_forged(HDR, "\"mdm-device\""), MDM_ERR_AUTH);
  assert_int_equal(verify_forged(HDR, "1900000000"), MDM_ERR_AUTH);
  assert_int_equal(verify_forged(HDR, "not json"), MDM_ERR_AUTH);
  assert_int_equal(verify_forged(HDR, "{\"aud\":\"mdm-device\","
                                      "\"exp\":1900000000} trailing"),
                   MDM_ERR_AUTH);
}

/* ---- signatures ------------------------------------------------------- */

static void test_bad_signature(void **state)
{
  json_t *c = claims_new();
  char *tok = sign(c), *dot = strrchr(tok, '.');
  unsigned char *sig = NULL;
  size_t n = 0, i;
  char *h, *p, *tok2;
  (void)state;

  /* Flip each byte of the decoded signature in turn. */
  assert_int_equal(mdm_b64url_decode(dot + 1, strlen(dot + 1), &sig, &n),
                   MDM_OK);
  assert_int_equal(n, 64);
  h = part(tok, 0);
  p = part(tok, 1);
  for(i = 0; i < n; i += 7) {
    sig[i] ^= 0x01;
    tok2 = forge_raw(h, p, sig, n);
    assert_int_equal(verify(tok2), MDM_ERR_AUTH);
    free(tok2);
    sig[i] ^= 0x01;
  }
  /* Control: unflipped, the rebuilt token is the original. */
  tok2 = forge_raw(h, p, sig, n);
  assert_string_equal(tok2, tok);
  assert_int_equal(verify(tok2), MDM_OK);
  free(tok2);

  /* Flip one character of the text. */
  dot[5] = dot[5] == 'A' ? 'B' : 'A';
  assert_int_equal(verify(tok), MDM_ERR_AUTH);

  free(h);
  free(p);
  free(sig);
  free(tok);
  json_decref(c);
}

static void test_noncanonical_signature_encoding(void **state)
{
  json_t *c = claims_new();
  char *tok = sign(c);
  size_t n = strlen(tok);
  char last = tok[n - 1];
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int v = (int)(strchr(alphabet, last) - alphabet);
  (void)state;
  /* 64 bytes end in a 2-character group whose last 4 bits are zero; with
   * one of them set the text differs but would decode to the same bytes. */
  assert_int_equal(v & 0x0f, 0);
  tok[n - 1] = alphabet[v | 1];
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  tok[n - 1] = last;
  assert_int_equal(verify(tok), MDM_OK);
  free(tok);
  json_decref(c);
}

static void test_tampered_payload(void **state)
{
  json_t *c = claims_new(), *c2 = claims_new();
  char *tok, *tok2, *d1, *d2, *mix;
  size_t n;
  (void)state;
  json_object_set_new(c2, "sub", json_string("dev-2"));
  tok = sign(c);
  tok2 = sign(c2);
  /* header.payload of tok2, signature of tok. */
  d1 = strrchr(tok, '.');
  d2 = strrchr(tok2, '.');
  n = (size_t)(d2 - tok2) + strlen(d1) + 1;
  mix = malloc(n);
  snprintf(mix, n, "%.*s%s", (int)(d2 - tok2), tok2, d1);
  assert_int_equal(verify(mix), MDM_ERR_AUTH);
  assert_int_equal(verify(tok), MDM_OK);
  assert_int_equal(verify(tok2), MDM_OK);
  free(mix);
  free(tok);
  free(tok2);
  json_decref(c);
  json_decref(c2);
}

static void test_other_key(void **state)
{
  json_t *c = claims_new();
  char *tok = NULL, kid[MDM_KID_LEN + 1];
  (void)state;
  /* Even naming our kid does not help a token signed by another key. */
  assert_int_equal(mdm_key_id(F.key, kid), MDM_OK);
  assert_int_equal(mdm_jwt_sign(F.other, kid, c, &tok), MDM_OK);
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  assert_int_equal(mdm_jwt_verify(F.other, tok, AUD, NOW, NULL), MDM_OK);
  free(tok);
  json_decref(c);
}

static void test_signature_lengths(void **state)
{
  json_t *c = claims_new();
  char *tok = sign(c), *dot = strrchr(tok, '.'), *h, *p, *t;
  unsigned char *sig = NULL, longer[65];
  size_t n = 0;
  (void)state;
  assert_int_equal(mdm_b64url_decode(dot + 1, strlen(dot + 1), &sig, &n),
                   MDM_OK);
  assert_int_equal(n, 64);
  h = part(tok, 0);
  p = part(tok, 1);
  t = forge_raw(h, p, sig, 63);
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  free(t);
  memcpy(longer, sig, 64);
  longer[64] = 0;
  t = forge_raw(h, p, longer, 65);
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  free(t);
  t = forge_raw(h, p, sig, 32);
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  free(t);
  /* Control. */
  t = forge_raw(h, p, sig, 64);
  assert_int_equal(verify(t), MDM_OK);
  free(t);
  free(h);
  free(p);
  free(sig);
  free(tok);
  json_decref(c);
}

/* ---- shape ------------------------------------------------------------ */

static void test_malformed(void **state)
{
  json_t *c = claims_new();
  char *tok = sign(c), *h = NULL, *p = NULL, *s = NULL, *t;
  char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  size_t n = strlen(tok) + 16;
  (void)state;
  h = strndup(tok, (size_t)(d1 - tok));
  p = strndup(d1 + 1, (size_t)(d2 - d1 - 1));
  s = strdup(d2 + 1);
  t = malloc(n);
  assert_int_equal(verify(tok), MDM_OK);

  snprintf(t, n, "%s.%s", h, p);                 /* two parts */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s.", h, p, s);          /* four parts */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s.%s", h, p, s, s);
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s..%s", h, s);                /* empty payload */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, ".%s.%s", p, s);                /* empty header */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s=", h, p, s);          /* padding */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s\n", h, p, s);         /* whitespace */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, " %s.%s.%s", h, p, s);
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s", h, p, s);
  t[3] = '*';                                    /* bad base64 */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s", h, p, s);
  t[3] = '+';                                    /* base64, not base64url */
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  snprintf(t, n, "%s.%s.%s", h, p, s);
  t[strlen(h) + 2] = '/';
  assert_int_equal(verify(t), MDM_ERR_AUTH);
  assert_int_equal(verify(""), MDM_ERR_AUTH);
  assert_int_equal(verify(".."), MDM_ERR_AUTH);
  assert_int_equal(verify("a.b.c"), MDM_ERR_AUTH);   /* 1-char parts */
  free(t);

  /* Non-JSON header, array header, header with trailing bytes, a JSON
   * string header: each validly signed. */
  {
    char pay[128];
    snprintf(pay, sizeof(pay), "{\"aud\":\"" AUD "\",\"exp\":%lld}",
             (long long)NOW + 60);
    assert_int_equal(verify_forged("alg=ES256", pay), MDM_ERR_AUTH);
    assert_int_equal(verify_forged("[\"ES256\"]", pay), MDM_ERR_AUTH);
    assert_int_equal(verify_forged("[{\"alg\":\"ES256\"}]", pay),
                     MDM_ERR_AUTH);
    assert_int_equal(verify_forged("\"ES256\"", pay), MDM_ERR_AUTH);
    assert_int_equal(verify_forged(HDR "x", pay), MDM_ERR_AUTH);
    assert_int_equal(verify_forged("", pay), MDM_ERR_AUTH);
    /* Control: a well-formed header with odd spacing is fine. */
    assert_int_equal(verify_forged("{ \"alg\" : \"ES256\" }", pay), MDM_OK);
  }

  free(h);
  free(p);
  free(s);
  free(tok);
  json_decref(c);
}

static size_t b64_len(size_t n)
{
  return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* A validly signed token of exactly len characters, made by padding the
 * header and payload with JSON whitespace.  Base64url lengths are never 1
 * mod 4, so both parts are adjusted together. */
static char *token_of_length(size_t len)
{
  size_t hs, ps;
  char *hdr = malloc(64), *pay = malloc(len + 64);
  char *tok = NULL;
  assert_non_null(hdr);
  assert_non_null(pay);
  for(hs = 0; hs < 4 && !tok; hs++) {
    for(ps = 0; ps < len && !tok; ps++) {
      size_t tl;
      snprintf(hdr, 64, "{%*s\"alg\":\"ES256\"}", (int)hs, "");
      snprintf(pay, len + 64, "{%*s\"aud\":\"" AUD "\",\"exp\":%lld}",
               (int)ps, "", (long long)NOW + 60);
      tl = b64_len(strlen(hdr)) + 1 + b64_len(strlen(pay)) + 1 + 86;
      if(tl > len)
        break;
      if(tl == len)
        tok = forge(F.key, hdr, pay);
    }
  }
  free(hdr);
  free(pay);
  assert_non_null(tok);
  assert_int_equal(strlen(tok), len);
  return tok;
}

static void test_max_length(void **state)
{
  char *tok;
  (void)state;
  tok = token_of_length(MDM_JWT_MAX_LEN);
  assert_int_equal(strlen(tok), MDM_JWT_MAX_LEN);
  assert_int_equal(verify(tok), MDM_OK);
  free(tok);
  tok = token_of_length(MDM_JWT_MAX_LEN + 1);
  assert_int_equal(strlen(tok), MDM_JWT_MAX_LEN + 1);
  assert_int_equal(verify(tok), MDM_ERR_AUTH);
  assert_int_equal(mdm_jwt_peek(tok, NULL, NULL), MDM_ERR_AUTH);
  free(tok);
}

/* ---- peek ------------------------------------------------------------- */

static void test_peek(void **state)
{
  json_t *c = claims_new(), *h = NULL, *got = NULL;
  char *tok = sign(c), *bad;
  (void)state;
  assert_int_equal(mdm_jwt_peek(tok, &h, &got), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(h, "kid")), F.kid);
  assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
  assert_true(json_equal(got, c));
  json_decref(h);
  json_decref(got);
  assert_int_equal(mdm_jwt_peek(tok, NULL, &got), MDM_OK);
  json_decref(got);
  assert_int_equal(mdm_jwt_peek(tok, &h, NULL), MDM_OK);
  json_decref(h);

  /* Peek does not check the signature (that is its point)... */
  bad = forge(F.other, "{\"alg\":\"none\",\"kid\":\"x\"}", "{\"a\":1}");
  assert_int_equal(mdm_jwt_peek(bad, &h, &got), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(h, "kid")), "x");
  json_decref(h);
  json_decref(got);
  free(bad);
  /* ...but does check the shape. */
  h = got = (json_t *)1;
  assert_int_equal(mdm_jwt_peek("a.b", &h, &got), MDM_ERR_AUTH);
  assert_null(h);
  assert_null(got);
  assert_int_equal(mdm_jwt_peek(NULL, &h, &got), MDM_ERR_AUTH);
  bad = forge(F.key, "[1]", "{}");
  assert_int_equal(mdm_jwt_peek(bad, &h, &got), MDM_ERR_AUTH);
  free(bad);
  bad = forge(F.key, HDR, "[1]");
  assert_int_equal(mdm_jwt_peek(bad, &h, &got), MDM_ERR_AUTH);
  assert_null(h);
  assert_null(got);
  free(bad);
  free(tok);
  json_decref(c);
}

/* ---- interoperability ------------------------------------------------- */

/* The RFC 7515 A.3 key (public half) and a token signed with its private
 * half by another implementation (Python "cryptography"). */
static const char rfc_pub_pem[] =
  "-----BEGIN PUBLIC KEY-----\n"
  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
  "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
  "-----END PUBLIC KEY-----\n";
static const char py_token[] =
  "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9."
  "eyJhdWQiOlsieCIsIm1kbS1kZXZpY2UiXSwiZXhwIjoxODAwMDAzNjAwLCJzdWIiOiJweSJ9."
  "q_6pk-ytjZ5K7Ho9rzqsrDMU038DnXU96c30_lwascuV78jz813lDO4chglaBxd6LzdelboluV"
  "KhMs6A8dtItA";

static void test_foreign_token(void **state)
{
  EVP_PKEY *k = NULL;
  json_t *got = NULL;
  char bad[sizeof(py_token)];
  (void)state;
  assert_int_equal(mdm_key_from_pem(rfc_pub_pem, &k), MDM_OK);
  assert_int_equal(mdm_jwt_verify(k, py_token, AUD, NOW, &got), MDM_OK);
  assert_string_equal(json_string_value(json_object_get(got, "sub")), "py");
  json_decref(got);
  assert_int_equal(mdm_jwt_verify(k, py_token, "mdm-enroll", NOW, NULL),
                   MDM_ERR_AUTH);
  assert_int_equal(mdm_jwt_verify(k, py_token, AUD, NOW + 3600, NULL),
                   MDM_ERR_EXPIRED);
  assert_int_equal(mdm_jwt_verify(F.pub, py_token, AUD, NOW, NULL),
                   MDM_ERR_AUTH);
  memcpy(bad, py_token, sizeof(bad));
  bad[sizeof(bad) - 10] = bad[sizeof(bad) - 10] == 'A' ? 'B' : 'A';
  assert_int_equal(mdm_jwt_verify(k, bad, AUD, NOW, NULL), MDM_ERR_AUTH);
  EVP_PKEY_free(k);
}

/* ---- threads ---------------------------------------------------------- */

#define N_THREADS 8
#define N_ROUNDS 200

struct thread_arg {
  const char *good;
  const char *bad;
  int n_fail;
};

static void *verify_thread(void *p)
{
  struct thread_arg *a = p;
  int i;
  for(i = 0; i < N_ROUNDS; i++) {
    json_t *got = NULL;
    if(mdm_jwt_verify(F.pub, a->good, AUD, NOW, &got) != MDM_OK || !got)
      a->n_fail++;
    json_decref(got);
    if(mdm_jwt_verify(F.pub, a->bad, AUD, NOW, NULL) != MDM_ERR_AUTH)
      a->n_fail++;
  }
  return NULL;
}

static void test_concurrent_verify(void **state)
{
  json_t *c = claims_new();
  char *good = sign(c), *bad = strdup(good);
  pthread_t th[N_THREADS];
  struct thread_arg args[N_THREADS];
  int i;
  (void)state;
  bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == 'A' ? 'B' : 'A';
  for(i = 0; i < N_THREADS; i++) {
    args[i].good = good;
    args[i].bad = bad;
    args[i].n_fail = 0;
    assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &args[i]),
                     0);
  }
  for(i = 0; i < N_THREADS; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(args[i].n_fail, 0);
  }
  free(good);
  free(bad);
  json_decref(c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_sign_without_kid),
    cmocka_unit_test(test_sign_rejects),
    cmocka_unit_test(test_verify_bad_arguments),
    cmocka_unit_test(test_alg_none_empty_signature),
    cmocka_unit_test(test_alg_none_with_valid_signature),
    cmocka_unit_test(test_other_algs_rejected),
    cmocka_unit_test(test_hs256_key_confusion),
    cmocka_unit_test(test_aud),
    cmocka_unit_test(test_exp),
    cmocka_unit_test(test_expired_token_with_bad_signature_is_auth),
    cmocka_unit_test(test_nbf),
    cmocka_unit_test(test_payload_not_object),
    cmocka_unit_test(test_bad_signature),
    cmocka_unit_test(test_noncanonical_signature_encoding),
    cmocka_unit_test(test_tampered_payload),
    cmocka_unit_test(test_other_key),
    cmocka_unit_test(test_signature_lengths),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_max_length),
    cmocka_unit_test(test_peek),
    cmocka_unit_test(test_foreign_token),
    cmocka_unit_test(test_concurrent_verify),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
