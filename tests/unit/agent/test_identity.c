/*
 * test_identity.c: unit tests for src/agent/identity.c: when a certificate
 * is due for renewal, which answers are a certificate for this key and
 * device, and what mdm_identity_load() makes of the files a renewal
 * interrupted at each step leaves (it finishes the swap, drops what is of
 * no use, and never gives up the working pair).  Certificates come from a
 * real CA (crypto/pki.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent/identity.h"
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"

#define TENANT "7d3a1c3e-6d0e-4f7e-9a55-0b1f4b2f0a01"
#define DEVICE "0747e9be-b875-429a-aaec-27356fd32719"
#define OTHER "5b0c7f3a-9e1d-4c2b-8a7f-6d5e4c3b2a19"
#define LIFE 3600

/* A key and the certificate a CA issued for it. */
struct pair {
  EVP_PKEY *key;
  char *key_pem;
  struct mdm_issued cert;
};

struct fx {
  char dir[64];
  EVP_PKEY *ca_key;
  X509 *ca;
  char *ca_pem;
  struct pair old, next, other;   /* other: for another device */
};

static void pair_make(struct fx *f, struct pair *p, const char *device_id,
                      int64_t now)
{
  char *csr = NULL, why[256];
  assert_int_equal(mdm_key_generate(&p->key), MDM_OK);
  assert_int_equal(mdm_key_to_pem(p->key, 1, &p->key_pem), MDM_OK);
  assert_int_equal(mdm_csr_create(p->key, "x", &csr), MDM_OK);
  assert_int_equal(mdm_cert_issue(f->ca_key, f->ca, csr, TENANT, device_id,
                                  LIFE, now, &p->cert, why, sizeof(why)),
                   MDM_OK);
  free(csr);
}

static void pair_free(struct pair *p)
{
  EVP_PKEY_free(p->key);
  free(p->key_pem);
  free(p->cert.pem);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  int64_t now = mdm_now_ms() / 1000;
  assert_non_null(f);
  snprintf(f->dir, sizeof(f->dir), "/tmp/mdm-test-identity-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  assert_int_equal(mdm_ca_create(TENANT, "acme", &f->ca_key, &f->ca),
                   MDM_OK);
  assert_int_equal(mdm_cert_to_pem(f->ca, &f->ca_pem), MDM_OK);
  pair_make(f, &f->old, DEVICE, now - 100);
  pair_make(f, &f->next, DEVICE, now);
  pair_make(f, &f->other, OTHER, now);
  *state = f;
  return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

static int teardown(void **state)
{
  struct fx *f = *state;
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  EVP_PKEY_free(f->ca_key);
  X509_free(f->ca);
  free(f->ca_pem);
  pair_free(&f->old);
  pair_free(&f->next);
  pair_free(&f->other);
  free(f);
  return 0;
}

static void put(struct fx *f, const char *name, const char *text)
{
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  assert_int_equal(mdm_file_write_atomic(path, text, strlen(text), 0600),
                   MDM_OK);
}

/* The file's text, or NULL when it is not there (caller frees). */
static char *get(struct fx *f, const char *name)
{
  char path[256], *s = NULL;
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  if(mdm_file_read(path, 65536, &s, NULL))
    return NULL;
  return s;
}

static void assert_file(struct fx *f, const char *name, const char *want)
{
  char *s = get(f, name);
  if(!want) {
    assert_null(s);
    return;
  }
  assert_non_null(s);
  assert_string_equal(s, want);
  free(s);
}

/* ---- renewal due ------------------------------------------------------------ */

static void test_renew_due(void **state)
{
  (void)state;
  /* 300 s: due from 200 s on, not a second before. */
  assert_int_equal(mdm_identity_renew_due(1000, 1300, 1000), 0);
  assert_int_equal(mdm_identity_renew_due(1000, 1300, 1199), 0);
  assert_int_equal(mdm_identity_renew_due(1000, 1300, 1200), 1);
  assert_int_equal(mdm_identity_renew_due(1000, 1300, 1301), 1);
  /* 331 s: two thirds is 220.67, so 221. */
  assert_int_equal(mdm_identity_renew_due(1000, 1331, 1220), 0);
  assert_int_equal(mdm_identity_renew_due(1000, 1331, 1221), 1);
  /* 90 days, real dates. */
  assert_int_equal(mdm_identity_renew_due(1800000000, 1800000000 + 7776000,
                                          1800000000 + 5184000 - 1), 0);
  assert_int_equal(mdm_identity_renew_due(1800000000, 1800000000 + 7776000,
                                          1800000000 + 5184000), 1);
  /* Before notBefore (a clock behind): not due. */
  assert_int_equal(mdm_identity_renew_due(1000, 1300, 900), 0);
  /* Nothing sensible to wait for: renew. */
  assert_int_equal(mdm_identity_renew_due(1000, 1000, 1000), 1);
  assert_int_equal(mdm_identity_renew_due(1300, 1000, 0), 1);
}

/* ---- what a certificate must be ------------------------------------------------ */

static void test_check(void **state)
{
  struct fx *f = *state;
  char why[256];
  EVP_PKEY *k2 = NULL;
  X509 *ca2 = NULL;
  char *ca2_pem = NULL;

  assert_int_equal(mdm_identity_check(f->old.cert.pem, f->ca_pem, f->old.key,
                                      DEVICE, why, sizeof(why)), MDM_OK);
  assert_int_equal(mdm_identity_check(f->old.cert.pem, NULL, f->old.key,
                                      DEVICE, why, sizeof(why)), MDM_OK);
  /* Another key. */
  assert_int_equal(mdm_identity_check(f->old.cert.pem, f->ca_pem, f->next.key,
                                      DEVICE, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, "the certificate is not for this device's key");
  /* Another device. */
  assert_int_equal(mdm_identity_check(f->other.cert.pem, f->ca_pem,
                                      f->other.key, DEVICE, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, "the certificate is not for device " DEVICE);
  /* Another CA. */
  assert_int_equal(mdm_ca_create(TENANT, "other", &k2, &ca2), MDM_OK);
  assert_int_equal(mdm_cert_to_pem(ca2, &ca2_pem), MDM_OK);
  assert_int_equal(mdm_identity_check(f->old.cert.pem, ca2_pem, f->old.key,
                                      DEVICE, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, "the certificate is not signed by the CA");
  /* Not certificates. */
  assert_int_equal(mdm_identity_check("junk", f->ca_pem, f->old.key, DEVICE,
                                      why, sizeof(why)), MDM_ERR_INVAL);
  assert_string_equal(why, "not a PEM certificate");
  assert_int_equal(mdm_identity_check(NULL, f->ca_pem, f->old.key, DEVICE,
                                      why, sizeof(why)), MDM_ERR_INVAL);
  assert_int_equal(mdm_identity_check(f->old.cert.pem, "junk", f->old.key,
                                      DEVICE, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_string_equal(why, "the CA is not a PEM certificate");
  EVP_PKEY_free(k2);
  X509_free(ca2);
  free(ca2_pem);
}

/* ---- loading, and what an interrupted renewal leaves -------------------------- */

#define KEY MDM_IDENTITY_KEY_FILE
#define CRT MDM_IDENTITY_CERT_FILE
#define KEY_NEXT MDM_IDENTITY_KEY_FILE MDM_IDENTITY_NEXT
#define CRT_NEXT MDM_IDENTITY_CERT_FILE MDM_IDENTITY_NEXT

static void assert_loads(struct fx *f, const struct pair *want)
{
  struct mdm_identity id;
  char why[512], path[256];
  assert_int_equal(mdm_identity_load(f->dir, DEVICE, &id, why, sizeof(why)),
                   MDM_OK);
  assert_string_equal(id.fingerprint, want->cert.fingerprint);
  assert_int_equal(id.not_before, want->cert.not_before);
  assert_int_equal(id.not_after, want->cert.not_after);
  snprintf(path, sizeof(path), "%s/" CRT, f->dir);
  assert_string_equal(id.cert_file, path);
  snprintf(path, sizeof(path), "%s/" KEY, f->dir);
  assert_string_equal(id.key_file, path);
  assert_file(f, KEY, want->key_pem);
  assert_file(f, CRT, want->cert.pem);
  assert_file(f, KEY_NEXT, NULL);
  assert_file(f, CRT_NEXT, NULL);
}

static void test_load_none(void **state)
{
  struct fx *f = *state;
  struct mdm_identity id;
  char why[512];
  assert_int_equal(mdm_identity_load(f->dir, DEVICE, &id, why, sizeof(why)),
                   MDM_ERR_NOTFOUND);
}

static void test_load_pair(void **state)
{
  struct fx *f = *state;
  put(f, KEY, f->old.key_pem);
  put(f, CRT, f->old.cert.pem);
  assert_loads(f, &f->old);
}

/* Stopped while asking the server (or it refused): only the new key. */
static void test_load_lone_next_key(void **state)
{
  struct fx *f = *state;
  put(f, KEY, f->old.key_pem);
  put(f, CRT, f->old.cert.pem);
  put(f, KEY_NEXT, f->next.key_pem);
  assert_loads(f, &f->old);
}

/* Stopped after the new certificate was kept, before the renames: the
 * server revoked the old one, so the new pair goes in. */
static void test_load_finishes_swap(void **state)
{
  struct fx *f = *state;
  put(f, KEY, f->old.key_pem);
  put(f, CRT, f->old.cert.pem);
  put(f, KEY_NEXT, f->next.key_pem);
  put(f, CRT_NEXT, f->next.cert.pem);
  assert_loads(f, &f->next);
}

/* Stopped between the two renames: the key is new, the certificate old. */
static void test_load_finishes_half_swap(void **state)
{
  struct fx *f = *state;
  put(f, KEY, f->next.key_pem);
  put(f, CRT, f->old.cert.pem);
  put(f, CRT_NEXT, f->next.cert.pem);
  assert_loads(f, &f->next);
}

/* .next files that are not this device's pair never replace the working
 * one. */
static void test_load_keeps_working_pair(void **state)
{
  struct fx *f = *state;
  put(f, KEY, f->old.key_pem);
  put(f, CRT, f->old.cert.pem);
  put(f, KEY_NEXT, f->other.key_pem);
  put(f, CRT_NEXT, f->other.cert.pem);
  assert_loads(f, &f->old);

  put(f, KEY_NEXT, f->next.key_pem);      /* a key and a stranger's cert */
  put(f, CRT_NEXT, f->other.cert.pem);
  assert_loads(f, &f->old);

  put(f, CRT_NEXT, "damaged");
  put(f, KEY_NEXT, f->next.key_pem);
  assert_loads(f, &f->old);
}

/* Nothing usable: refused, and nothing is removed. */
static void test_load_mismatch(void **state)
{
  struct fx *f = *state;
  struct mdm_identity id;
  char why[512];

  put(f, KEY, f->next.key_pem);
  put(f, CRT, f->old.cert.pem);
  assert_int_equal(mdm_identity_load(f->dir, DEVICE, &id, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_non_null(strstr(why, "are not a key and certificate for device "
                         DEVICE));
  assert_file(f, KEY, f->next.key_pem);
  assert_file(f, CRT, f->old.cert.pem);

  /* The right pair, for another device. */
  put(f, KEY, f->other.key_pem);
  put(f, CRT, f->other.cert.pem);
  assert_int_equal(mdm_identity_load(f->dir, DEVICE, &id, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_file(f, CRT, f->other.cert.pem);

  /* A certificate without its key. */
  put(f, CRT, f->old.cert.pem);
  snprintf(why, sizeof(why), "%s/" KEY, f->dir);
  assert_int_equal(unlink(why), 0);
  assert_int_equal(mdm_identity_load(f->dir, DEVICE, &id, why, sizeof(why)),
                   MDM_ERR_INVAL);
  assert_file(f, CRT, f->old.cert.pem);
}

static void test_keep_and_remove(void **state)
{
  struct fx *f = *state;
  struct stat st;
  char path[256];

  put(f, KEY_NEXT, f->other.key_pem);   /* an earlier enrollment's */
  put(f, CRT_NEXT, f->other.cert.pem);
  assert_int_equal(mdm_identity_keep(f->dir, f->old.key, f->old.cert.pem,
                                     f->ca_pem), MDM_OK);
  assert_loads(f, &f->old);
  assert_file(f, MDM_IDENTITY_CA_FILE, f->ca_pem);
  snprintf(path, sizeof(path), "%s/" KEY, f->dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  mdm_identity_remove(f->dir);
  assert_file(f, KEY, NULL);
  assert_file(f, CRT, NULL);
  assert_file(f, MDM_IDENTITY_CA_FILE, NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_renew_due),
    cmocka_unit_test_setup_teardown(test_check, setup, teardown),
    cmocka_unit_test_setup_teardown(test_load_none, setup, teardown),
    cmocka_unit_test_setup_teardown(test_load_pair, setup, teardown),
    cmocka_unit_test_setup_teardown(test_load_lone_next_key, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_load_finishes_swap, setup, teardown),
    cmocka_unit_test_setup_teardown(test_load_finishes_half_swap, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_load_keeps_working_pair, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_load_mismatch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_keep_and_remove, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
