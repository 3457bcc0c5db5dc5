/*
 * test_pin.c: unit tests for src/agent/pin.c: the server_ca claim of an
 * enrollment token and finding the pinned CA among PEM certificates (a
 * server's chain, a --ca-file).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>
#include "agent/pin.h"
#include "core/util.h"
#include "crypto/pki.h"

#define FP_A "a70457fd038229a300a077844afb0134086187c78d2f8748a11e83f4ddc5a3ca"

/* Two self-signed CAs, their PEM and fingerprints. */
struct fx {
  char *pem[2];
  char fp[2][MDM_FINGERPRINT_LEN + 1];
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  int i;
  assert_non_null(f);
  for(i = 0; i < 2; i++) {
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    assert_int_equal(mdm_ca_create("7d3a1c3e-6d0e-4f7e-9a55-0b1f4b2f0a01",
                                   i ? "b" : "a", &k, &x), MDM_OK);
    assert_int_equal(mdm_cert_to_pem(x, &f->pem[i]), MDM_OK);
    assert_int_equal(mdm_cert_fingerprint(x, f->fp[i]), MDM_OK);
    EVP_PKEY_free(k);
    X509_free(x);
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  free(f->pem[0]);
  free(f->pem[1]);
  free(f);
  return 0;
}

static void test_parse(void **state)
{
  char hex[MDM_FINGERPRINT_LEN + 1];
  static const char *const bad[] = {
    "",
    FP_A,                                      /* no prefix */
    "sha1:" FP_A,
    "SHA256:" FP_A,
    "sha256: " FP_A,
    "sha256:" FP_A "0",                        /* 65 digits */
    "sha256:a70457fd038229a300a077844afb0134086187c78d2f8748a11e83f4ddc5a3c",
    "sha256:A70457FD038229A300A077844AFB0134086187C78D2F8748A11E83F4DDC5A3CA",
    "sha256:g70457fd038229a300a077844afb0134086187c78d2f8748a11e83f4ddc5a3ca",
  };
  size_t i;
  (void)state;
  assert_int_equal(mdm_pin_parse("sha256:" FP_A, hex), MDM_OK);
  assert_string_equal(hex, FP_A);
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mdm_pin_parse(bad[i], hex), MDM_ERR_INVAL);
  assert_int_equal(mdm_pin_parse(NULL, hex), MDM_ERR_INVAL);
}

/* A token with these claims (JSON text) and a signature nobody checks. */
static char *token_with(const char *claims)
{
  char *h = NULL, *c = NULL, *t;
  size_t n;
  const char *head = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
  assert_int_equal(mdm_b64url_encode(head, strlen(head), &h), MDM_OK);
  assert_int_equal(mdm_b64url_encode(claims, strlen(claims), &c), MDM_OK);
  n = strlen(h) + strlen(c) + 16;
  t = malloc(n);
  assert_non_null(t);
  snprintf(t, n, "%s.%s.c2ln", h, c);
  free(h);
  free(c);
  return t;
}

static void test_from_token(void **state)
{
  static const struct {
    const char *claims;
    mdm_rc rc;
  } cases[] = {
    {"{\"aud\":\"mdm-enroll\",\"server_ca\":\"sha256:" FP_A "\"}", MDM_OK},
    {"{\"aud\":\"mdm-enroll\"}", MDM_ERR_NOTFOUND},
    {"{\"server_ca\":null}", MDM_ERR_NOTFOUND},
    {"{\"server_ca\":7}", MDM_ERR_INVAL},
    {"{\"server_ca\":\"" FP_A "\"}", MDM_ERR_INVAL},
    {"{\"server_ca\":\"sha256:\"}", MDM_ERR_INVAL},
    {"{\"server_ca\":[\"sha256:" FP_A "\"]}", MDM_ERR_INVAL},
  };
  char hex[MDM_FINGERPRINT_LEN + 1];
  size_t i;
  (void)state;
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *t = token_with(cases[i].claims);
    assert_int_equal(mdm_pin_from_token(t, hex), cases[i].rc);
    if(cases[i].rc == MDM_OK)
      assert_string_equal(hex, FP_A);
    free(t);
  }
  /* Not a JWT at all: no pin (https then needs --ca-file). */
  assert_int_equal(mdm_pin_from_token("not-a-token", hex), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_pin_from_token("a.b.c", hex), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_pin_from_token(NULL, hex), MDM_ERR_NOTFOUND);
}

static void test_find_in_chain(void **state)
{
  struct fx *f = *state;
  char chain[16384], *out = NULL;

  /* Leaf first, CA last, with text around them as a CA bundle has. */
  snprintf(chain, sizeof(chain), "# bundle\n%ssubject=whatever\n%s\n",
           f->pem[0], f->pem[1]);
  assert_int_equal(mdm_pin_find(chain, f->fp[1], &out), MDM_OK);
  assert_string_equal(out, f->pem[1]);
  free(out);
  out = NULL;
  assert_int_equal(mdm_pin_find(chain, f->fp[0], &out), MDM_OK);
  assert_string_equal(out, f->pem[0]);
  free(out);
  out = NULL;
  /* A self-signed server: the chain is the pinned certificate itself. */
  assert_int_equal(mdm_pin_find(f->pem[1], f->fp[1], &out), MDM_OK);
  assert_string_equal(out, f->pem[1]);
  free(out);
  out = NULL;
}

static void test_find_none(void **state)
{
  struct fx *f = *state;
  char *out = (char *)"untouched";

  assert_int_equal(mdm_pin_find(f->pem[0], f->fp[1], &out),
                   MDM_ERR_NOTFOUND);
  assert_null(out);
  assert_int_equal(mdm_pin_find(f->pem[0], FP_A, &out), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_pin_find("", FP_A, &out), MDM_ERR_INVAL);
  assert_int_equal(mdm_pin_find("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                "-----END CERTIFICATE-----\n", FP_A, &out),
                   MDM_ERR_INVAL);
  assert_int_equal(mdm_pin_find(NULL, FP_A, &out), MDM_ERR_INVAL);
  assert_null(out);
}

static void test_find_too_big(void **state)
{
  struct fx *f = *state;
  size_t n = MDM_PIN_PEM_MAX + 1, len = strlen(f->pem[1]);
  char *big = malloc(n + 1), *out = NULL;
  assert_non_null(big);
  memset(big, '#', n);
  memcpy(big, f->pem[1], len);
  big[n] = '\0';
  assert_int_equal(mdm_pin_find(big, f->fp[1], &out), MDM_ERR_INVAL);
  assert_null(out);
  /* At the bound it is read. */
  big[n - 1] = '\0';
  assert_int_equal(mdm_pin_find(big, f->fp[1], &out), MDM_OK);
  free(out);
  free(big);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse),
    cmocka_unit_test(test_from_token),
    cmocka_unit_test_setup_teardown(test_find_in_chain, setup, teardown),
    cmocka_unit_test_setup_teardown(test_find_none, setup, teardown),
    cmocka_unit_test_setup_teardown(test_find_too_big, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
