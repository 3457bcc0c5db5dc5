/*
 * pki.c: tenant CAs, device certificates from CSRs, CRLs (pki.h).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "core/util.h"
#include "crypto/key.h"
#include "crypto/pki.h"

#define SKEW_S 300   /* notBefore this far back: clocks differ */

static void why_set(char *why, size_t n, const char *fmt, const char *arg)
{
  if(why && n)
    snprintf(why, n, fmt, arg ? arg : "");
}

/* A random positive 127-bit serial. */
static int set_random_serial(X509 *x)
{
  unsigned char b[16];
  BIGNUM *bn = NULL;
  ASN1_INTEGER *ai = NULL;
  int ok = 0;
  if(mdm_random(b, sizeof(b)))
    return 0;
  b[0] &= 0x7f;
  b[0] |= 0x40;   /* full length: no leading zero byte to trim */
  bn = BN_bin2bn(b, sizeof(b), NULL);
  ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
  ok = ai && X509_set_serialNumber(x, ai) == 1;
  ASN1_INTEGER_free(ai);
  BN_free(bn);
  return ok;
}

static int serial_hex(const ASN1_INTEGER *ai, char *out, size_t n)
{
  BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
  char *h = bn ? BN_bn2hex(bn) : NULL;
  size_t i;
  int ok = h && strlen(h) < n;
  if(ok) {
    for(i = 0; h[i]; i++)
      out[i] = (char)tolower((unsigned char)h[i]);
    out[i] = '\0';
  }
  OPENSSL_free(h);
  BN_free(bn);
  return ok;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  int ok = e && X509_add_ext(x, e, -1) == 1;
  X509_EXTENSION_free(e);
  return ok;
}

static int add_name(X509_NAME *nm, const char *field, const char *v)
{
  return X509_NAME_add_entry_by_txt(nm, field, MBSTRING_UTF8,
                                    (const unsigned char *)v, -1, -1, 0) == 1;
}

mdm_rc mdm_cert_to_pem(X509 *cert, char **pem)
{
  BIO *b = BIO_new(BIO_s_mem());
  mdm_rc rc;
  *pem = NULL;
  if(!b)
    return MDM_ERR_NOMEM;
  rc = PEM_write_bio_X509(b, cert) == 1 ? mdm_bio_string(b, pem)
                                        : MDM_ERR_CRYPTO;
  BIO_free(b);
  return rc;
}

mdm_rc mdm_cert_from_pem(const char *pem, X509 **cert)
{
  BIO *b;
  *cert = NULL;
  if(!pem || strlen(pem) > MDM_CERT_MAX)
    return MDM_ERR_INVAL;
  b = BIO_new_mem_buf(pem, -1);
  if(!b)
    return MDM_ERR_NOMEM;
  *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  return *cert ? MDM_OK : MDM_ERR_INVAL;
}

mdm_rc mdm_cert_fingerprint(X509 *cert, char *out)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0, i;
  if(X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32)
    return MDM_ERR_CRYPTO;
  for(i = 0; i < len; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return MDM_OK;
}

mdm_rc mdm_der_fingerprint(const unsigned char *der, size_t len, char *out)
{
  unsigned char md[32];
  unsigned int i;
  if(!der || !len || EVP_Digest(der, len, md, NULL, EVP_sha256(), NULL) != 1)
    return MDM_ERR_CRYPTO;
  for(i = 0; i < sizeof(md); i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return MDM_OK;
}

mdm_rc mdm_ca_create(const char *tenant_id, const char *name, EVP_PKEY **key,
                     X509 **cert)
{
  EVP_PKEY *k = NULL;
  X509 *x = NULL;
  X509_NAME *nm = NULL;
  X509V3_CTX ctx;
  char cn[160];
  mdm_rc rc;

  *key = NULL;
  *cert = NULL;
  rc = mdm_key_generate(&k);
  if(rc)
    return rc;
  rc = MDM_ERR_CRYPTO;
  snprintf(cn, sizeof(cn), "mdm tenant CA %.100s", name ? name : tenant_id);
  x = X509_new();
  nm = X509_NAME_new();
  if(!x || !nm || X509_set_version(x, 2) != 1 || !set_random_serial(x) ||
     !X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_S) ||
     !X509_gmtime_adj(X509_getm_notAfter(x), (long)MDM_CA_DAYS * 86400) ||
     !add_name(nm, "O", tenant_id) || !add_name(nm, "CN", cn) ||
     X509_set_subject_name(x, nm) != 1 || X509_set_issuer_name(x, nm) != 1 ||
     X509_set_pubkey(x, k) != 1)
    goto fail;
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  if(!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
     !add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
     !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
     !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
     X509_sign(x, k, EVP_sha256()) <= 0)
    goto fail;
  X509_NAME_free(nm);
  *key = k;
  *cert = x;
  return MDM_OK;
fail:
  X509_NAME_free(nm);
  X509_free(x);
  EVP_PKEY_free(k);
  return rc;
}

/*
 * Reading a device's CSR.
 *
 * d2i_X509_REQ() would decode the CSR's public key through OpenSSL 3's
 * decoder framework, whose set-up costs more than the ECDSA verification
 * itself: measured, 74 us of the 120 us that parsing and verifying a CSR
 * took, and about a tenth of mdmd's CPU per enrollment over TLS.  The only
 * key a device may have is P-256, so the CSR is read here instead: PEM to
 * DER (PEM_read_bio), the PKCS#10 structure (RFC 2986) walked with
 * OpenSSL's DER reader (ASN1_get_object), the key's algorithm compared
 * with the one DER encoding P-256 has, the point made a key (a point off
 * the curve is refused) and the signature verified over the exact bytes
 * of certificationRequestInfo.
 */

/* AlgorithmIdentifier { id-ecPublicKey, prime256v1 } (RFC 5480). */
static const unsigned char P256_SPKI_ALG[] = {
  0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};
/* AlgorithmIdentifier { ecdsa-with-SHA256 | 384 | 512 } without
 * parameters (RFC 5758 3.2); the last byte tells the hash. */
static const unsigned char ECDSA_SIG_ALG[] = {
  0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03
};

struct der {
  const unsigned char *p;     /* the whole element (or what is left) */
  long n;
  const unsigned char *c;     /* its contents */
  long cn;
};

/* The next element of *in into *el (in advances past it) when it has the
 * tag and class asked and a definite length inside what is left. */
static int der_next(struct der *in, int tag, int cls, struct der *el)
{
  const unsigned char *q = in->p;
  long len = 0;
  int t = 0, c = 0, r;
  if(in->n <= 0)
    return 0;
  r = ASN1_get_object(&q, &len, &t, &c, in->n);
  /* 0x80: an error (or a length past the end); 0x01: indefinite. */
  if((r & 0x81) || t != tag || c != cls)
    return 0;
  el->p = in->p;
  el->n = (long)(q - in->p) + len;
  el->c = q;
  el->cn = len;
  in->p += el->n;
  in->n -= el->n;
  return 1;
}

static int der_is(const struct der *el, const unsigned char *b, size_t n)
{
  return el->n == (long)n && !memcmp(el->p, b, n);
}

struct csr {
  unsigned char *der;         /* owns the bytes below */
  struct der info;            /* certificationRequestInfo, signed */
  const unsigned char *point; /* the P-256 public key, X9.62 encoded */
  long point_len;
  const char *md;             /* the signature's hash */
  const unsigned char *sig;   /* ECDSA-Sig-Value, DER */
  long sig_len;
};

/* The first "CERTIFICATE REQUEST" block of pem, decoded into r (free
 * r->der), or MDM_ERR_INVAL with why set. */
static mdm_rc csr_read(const char *pem, struct csr *r, char *why, size_t n)
{
  BIO *b = BIO_new_mem_buf(pem, -1);
  char *name = NULL, *header = NULL;
  unsigned char *der = NULL;
  long len = 0;
  struct der all, csr, alg, sig, spki, spki_alg, key, part, ver, subj, attrs;
  int found = 0;
  const char *bad = "not a PEM certificate request (CSR)%s";

  memset(r, 0, sizeof(*r));
  if(!b)
    return MDM_ERR_NOMEM;
  ERR_set_mark();
  while(!found && PEM_read_bio(b, &name, &header, &der, &len) == 1) {
    found = (!strcmp(name, PEM_STRING_X509_REQ) ||
             !strcmp(name, PEM_STRING_X509_REQ_OLD)) && !*header;
    OPENSSL_free(name);
    OPENSSL_free(header);
    name = header = NULL;
    if(!found) {
      OPENSSL_free(der);
      der = NULL;
    }
  }
  BIO_free(b);
  if(!found)
    goto bad;
  r->der = der;

  /* CertificationRequest ::= SEQUENCE { certificationRequestInfo,
   * signatureAlgorithm, signature BIT STRING }, and nothing after it. */
  all.p = der;
  all.n = len;
  if(!der_next(&all, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &csr) || all.n)
    goto bad;
  part.p = csr.c;
  part.n = csr.cn;
  if(!der_next(&part, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &r->info) ||
     !der_next(&part, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &alg) ||
     !der_next(&part, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, &sig) ||
     part.n || sig.cn < 2 || sig.c[0] != 0)
    goto bad;
  r->sig = sig.c + 1;
  r->sig_len = sig.cn - 1;

  /* CertificationRequestInfo ::= SEQUENCE { version INTEGER (0),
   * subject Name, subjectPKInfo, attributes [0] }.  (Some encoders leave
   * out an empty attributes; that is accepted.) */
  part.p = r->info.c;
  part.n = r->info.cn;
  if(!der_next(&part, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &ver) ||
     ver.cn != 1 || ver.c[0] != 0 ||
     !der_next(&part, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &subj) ||
     !der_next(&part, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &spki))
    goto bad;
  if(part.n && (!der_next(&part, 0, V_ASN1_CONTEXT_SPECIFIC, &attrs) ||
                part.n))
    goto bad;

  /* SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING }: P-256
   * only, its point uncompressed (65 bytes) or compressed (33). */
  part.p = spki.c;
  part.n = spki.cn;
  if(!der_next(&part, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &spki_alg) ||
     !der_next(&part, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, &key) || part.n)
    goto bad;
  if(!der_is(&spki_alg, P256_SPKI_ALG, sizeof(P256_SPKI_ALG)) ||
     key.cn < 2 || key.c[0] != 0 ||
     !((key.cn == 66 && key.c[1] == 0x04) ||
       (key.cn == 34 && (key.c[1] == 0x02 || key.c[1] == 0x03)))) {
    why_set(why, n, "the CSR's key must be EC P-256%s", NULL);
    goto fail;
  }
  r->point = key.c + 1;
  r->point_len = key.cn - 1;

  if(alg.n == (long)sizeof(ECDSA_SIG_ALG) + 1 &&
     !memcmp(alg.p, ECDSA_SIG_ALG, sizeof(ECDSA_SIG_ALG))) {
    switch(alg.p[sizeof(ECDSA_SIG_ALG)]) {
    case 0x02: r->md = "SHA256"; break;
    case 0x03: r->md = "SHA384"; break;
    case 0x04: r->md = "SHA512"; break;
    default: break;
    }
  }
  if(!r->md) {
    why_set(why, n, "the CSR's signature must be ECDSA with SHA-256, "
            "SHA-384 or SHA-512%s", NULL);
    goto fail;
  }
  ERR_pop_to_mark();
  return MDM_OK;
bad:
  why_set(why, n, bad, NULL);
fail:
  ERR_pop_to_mark();
  OPENSSL_free(der);
  r->der = NULL;
  return MDM_ERR_INVAL;
}

/* A P-256 key without its point: every CSR's key is a copy of it with
 * the CSR's point set (EVP_PKEY_fromdata() would make the curve anew for
 * each: 13 us against 3). */
static EVP_PKEY *p256_params;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void p256_params_make(void)
{
  OSSL_PARAM params[2];
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                               (char *)SN_X9_62_prime256v1,
                                               0);
  params[1] = OSSL_PARAM_construct_end();
  if(!pc || EVP_PKEY_fromdata_init(pc) != 1 ||
     EVP_PKEY_fromdata(pc, &p256_params, EVP_PKEY_KEY_PARAMETERS,
                       params) != 1)
    p256_params = NULL;
  EVP_PKEY_CTX_free(pc);
}

/* Proof of possession: the CSR's signature verifies with its own key.
 * 1 when it does, 0 when it does not, -1 when the point is not on the
 * curve (or memory ran out). */
static int csr_verify(const struct csr *r)
{
  EVP_PKEY *pk = NULL;
  EVP_MD_CTX *mc = NULL;
  int ok = -1;

  ERR_set_mark();
  pthread_once(&p256_once, p256_params_make);
  /* EVP_PKEY_set1_encoded_public_key() refuses a point off the curve. */
  if(p256_params && (pk = EVP_PKEY_dup(p256_params)) != NULL &&
     EVP_PKEY_set1_encoded_public_key(pk, r->point,
                                      (size_t)r->point_len) == 1 &&
     (mc = EVP_MD_CTX_new()) != NULL &&
     EVP_DigestVerifyInit_ex(mc, NULL, r->md, NULL, NULL, pk, NULL) == 1)
    ok = EVP_DigestVerify(mc, r->sig, (size_t)r->sig_len, r->info.p,
                          (size_t)r->info.n) == 1;
  ERR_pop_to_mark();
  EVP_MD_CTX_free(mc);
  EVP_PKEY_free(pk);
  return ok;
}

/* The CSR's public key into x, byte for byte.  X509_set_pubkey() would
 * re-encode it through OpenSSL 3's encoder framework: measured, that was
 * a third of an enrollment's CPU. */
static int set_pubkey(X509 *x, const struct csr *r)
{
  unsigned char *copy = OPENSSL_memdup(r->point, (size_t)r->point_len);
  if(!copy)
    return 0;
  if(X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x),
                            OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                            V_ASN1_OBJECT,
                            OBJ_nid2obj(NID_X9_62_prime256v1), copy,
                            (int)r->point_len) != 1) {
    OPENSSL_free(copy);
    return 0;
  }
  return 1;
}

mdm_rc mdm_cert_issue(EVP_PKEY *ca_key, X509 *ca_cert, const char *csr_pem,
                      const char *tenant_id, const char *device_id,
                      int64_t lifetime_s, int64_t now,
                      struct mdm_issued *out,
                      char *why, size_t n)
{
  /* Backdated for clock skew, but by a tenth of a short lifetime at most:
   * the agent renews at two thirds of notBefore..notAfter. */
  int64_t skew = lifetime_s / 10 < SKEW_S ? lifetime_s / 10 : SKEW_S;
  struct csr csr;
  X509 *x = NULL;
  X509_NAME *nm = NULL;
  X509V3_CTX ctx;
  char san[128];
  mdm_rc rc = MDM_ERR_INVAL;

  memset(out, 0, sizeof(*out));
  if(why && n)
    why[0] = '\0';
  if(!csr_pem || !*csr_pem) {
    why_set(why, n, "the CSR is empty%s", NULL);
    return MDM_ERR_INVAL;
  }
  if(strlen(csr_pem) > MDM_CSR_MAX) {
    why_set(why, n, "the CSR is larger than 8192 bytes%s", NULL);
    return MDM_ERR_INVAL;
  }
  if(lifetime_s < MDM_CERT_LIFETIME_MIN ||
     lifetime_s > MDM_CERT_LIFETIME_MAX || !device_id || !tenant_id) {
    why_set(why, n, "bad validity or names%s", NULL);
    return MDM_ERR_INVAL;
  }
  rc = csr_read(csr_pem, &csr, why, n);
  if(rc)
    return rc;
  rc = MDM_ERR_INVAL;
  switch(csr_verify(&csr)) {
  case 1:
    break;
  case 0:
    why_set(why, n, "the CSR's signature does not verify (no proof of "
            "possession of its key)%s", NULL);
    goto out;
  default:
    why_set(why, n, "the CSR's key is not a point of EC P-256%s", NULL);
    goto out;
  }

  rc = MDM_ERR_CRYPTO;
  x = X509_new();
  nm = X509_NAME_new();
  if(!x || !nm || X509_set_version(x, 2) != 1 || !set_random_serial(x) ||
     !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - skew)) ||
     !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now + lifetime_s)) ||
     !add_name(nm, "O", tenant_id) || !add_name(nm, "CN", device_id) ||
     X509_set_subject_name(x, nm) != 1 ||
     X509_set_issuer_name(x, X509_get_subject_name(ca_cert)) != 1 ||
     !set_pubkey(x, &csr))
    goto out;
  snprintf(san, sizeof(san), "URI:urn:mdm:device:%.64s", device_id);
  X509V3_set_ctx(&ctx, ca_cert, x, NULL, NULL, 0);
  if(!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
     !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
     !add_ext(x, &ctx, NID_ext_key_usage, "clientAuth") ||
     !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
     !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
     !add_ext(x, &ctx, NID_subject_alt_name, san) ||
     X509_sign(x, ca_key, EVP_sha256()) <= 0)
    goto out;
  if(!serial_hex(X509_get0_serialNumber(x), out->serial,
                 sizeof(out->serial)) ||
     mdm_cert_fingerprint(x, out->fingerprint))
    goto out;
  out->not_before = now - skew;
  out->not_after = now + lifetime_s;
  rc = mdm_cert_to_pem(x, &out->pem);
out:
  X509_NAME_free(nm);
  X509_free(x);
  OPENSSL_free(csr.der);
  return rc;
}

mdm_rc mdm_crl_build(EVP_PKEY *ca_key, X509 *ca_cert,
                     const struct mdm_revoked *revoked, size_t n,
                     int64_t now, int64_t next_update, int64_t crl_number,
                     char **pem)
{
  X509_CRL *crl = X509_CRL_new();
  ASN1_TIME *t = ASN1_TIME_new();
  ASN1_INTEGER *num = ASN1_INTEGER_new();
  X509V3_CTX ctx;
  X509_EXTENSION *e = NULL;
  BIO *b = NULL;
  size_t i;
  mdm_rc rc = MDM_ERR_CRYPTO;

  *pem = NULL;
  if(!crl || !t || !num)
    goto out;
  if(X509_CRL_set_version(crl, 1) != 1 ||
     X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)) != 1 ||
     !ASN1_TIME_set(t, (time_t)now) || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
     !ASN1_TIME_set(t, (time_t)next_update) ||
     X509_CRL_set1_nextUpdate(crl, t) != 1)
    goto out;
  for(i = 0; i < n; i++) {
    X509_REVOKED *r = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    ASN1_TIME *rt = ASN1_TIME_new();
    int ok = r && rt && BN_hex2bn(&bn, revoked[i].serial) > 0 &&
             (ai = BN_to_ASN1_INTEGER(bn, NULL)) &&
             X509_REVOKED_set_serialNumber(r, ai) == 1 &&
             ASN1_TIME_set(rt, (time_t)revoked[i].revoked_at) &&
             X509_REVOKED_set_revocationDate(r, rt) == 1 &&
             X509_CRL_add0_revoked(crl, r) == 1;
    ASN1_INTEGER_free(ai);
    ASN1_TIME_free(rt);
    BN_free(bn);
    if(!ok) {
      X509_REVOKED_free(r);
      rc = MDM_ERR_INVAL;
      goto out;
    }
  }
  if(ASN1_INTEGER_set_int64(num, crl_number) != 1 ||
     X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
    goto out;
  X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
  e = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
                          "keyid:always");
  if(!e || X509_CRL_add_ext(crl, e, -1) != 1 || X509_CRL_sort(crl) != 1 ||
     X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0)
    goto out;
  b = BIO_new(BIO_s_mem());
  if(!b || PEM_write_bio_X509_CRL(b, crl) != 1)
    goto out;
  rc = mdm_bio_string(b, pem);
out:
  BIO_free(b);
  X509_EXTENSION_free(e);
  ASN1_INTEGER_free(num);
  ASN1_TIME_free(t);
  X509_CRL_free(crl);
  return rc;
}

mdm_rc mdm_csr_create(EVP_PKEY *key, const char *cn, char **pem)
{
  X509_REQ *req = X509_REQ_new();
  X509_NAME *nm = X509_NAME_new();
  BIO *b = NULL;
  mdm_rc rc = MDM_ERR_CRYPTO;

  *pem = NULL;
  if(!req || !nm || X509_REQ_set_version(req, 0) != 1 ||
     (cn && !add_name(nm, "CN", cn)) ||
     X509_REQ_set_subject_name(req, nm) != 1 ||
     X509_REQ_set_pubkey(req, key) != 1 ||
     X509_REQ_sign(req, key, EVP_sha256()) <= 0)
    goto out;
  b = BIO_new(BIO_s_mem());
  if(!b || PEM_write_bio_X509_REQ(b, req) != 1)
    goto out;
  rc = mdm_bio_string(b, pem);
out:
  BIO_free(b);
  X509_NAME_free(nm);
  X509_REQ_free(req);
  return rc;
}
