/*
 * pin.c: reading the server CA pin of an enrollment token and finding the
 * pinned certificate among PEM certificates (see pin.h).
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "agent/pin.h"
#include "crypto/jwt.h"

mdm_rc mdm_pin_parse(const char *s, char *hex)
{
  size_t plen = strlen(MDM_PIN_PREFIX), i;
  if(!s || strncmp(s, MDM_PIN_PREFIX, plen) ||
     strlen(s + plen) != MDM_FINGERPRINT_LEN)
    return MDM_ERR_INVAL;
  for(i = 0; i < MDM_FINGERPRINT_LEN; i++) {
    char c = s[plen + i];
    /* Lower case only: one spelling, compared as a string. */
    if(!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return MDM_ERR_INVAL;
  }
  memcpy(hex, s + plen, MDM_FINGERPRINT_LEN + 1);
  return MDM_OK;
}

mdm_rc mdm_pin_from_token(const char *token, char *hex)
{
  json_t *claims = NULL, *v;
  mdm_rc rc;

  hex[0] = '\0';
  if(!token || strlen(token) > MDM_JWT_MAX_LEN ||
     mdm_jwt_peek(token, NULL, &claims))
    return MDM_ERR_NOTFOUND;
  v = json_object_get(claims, MDM_PIN_CLAIM);
  if(!v || json_is_null(v))
    rc = MDM_ERR_NOTFOUND;
  else if(!json_is_string(v) ||
          strlen(json_string_value(v)) != json_string_length(v))
    rc = MDM_ERR_INVAL;
  else
    rc = mdm_pin_parse(json_string_value(v), hex);
  json_decref(claims);
  return rc;
}

mdm_rc mdm_pin_find(const char *pem, const char *hex, char **out)
{
  BIO *bio;
  X509 *x;
  char fp[MDM_FINGERPRINT_LEN + 1];
  size_t n_certs = 0;
  mdm_rc rc = MDM_ERR_NOTFOUND;

  *out = NULL;
  if(!pem || strlen(pem) > MDM_PIN_PEM_MAX)
    return MDM_ERR_INVAL;
  bio = BIO_new_mem_buf(pem, (int)strlen(pem));
  if(!bio)
    return MDM_ERR_NOMEM;
  /* PEM_read_bio_X509 skips text between certificates and stops at the
   * end or at a block it cannot read. */
  while(rc == MDM_ERR_NOTFOUND) {
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if(!x)
      break;
    n_certs++;
    if(!mdm_cert_fingerprint(x, fp) && !strcmp(fp, hex))
      rc = mdm_cert_to_pem(x, out);
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(bio);
  if(rc == MDM_ERR_NOTFOUND && !n_certs)
    rc = MDM_ERR_INVAL;
  return rc;
}
