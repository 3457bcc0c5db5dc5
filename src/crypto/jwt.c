/*
 * jwt.c: JSON Web Tokens in JWS compact serialization (RFC 7515/7519),
 * ES256 only (see jwt.h).  Enrollment and device tokens are made and checked
 * here (CONTRACT §3).  Verification is deliberately narrow: one algorithm,
 * fixed by us and never taken from the token, so "none", HS256 signed with a
 * public key, and friends are all refused before any key is used.  The
 * signature is checked before any claim is looked at, so an unsigned token
 * learns nothing but "not authenticated".  No state is kept: every function
 * is safe to call from many threads at once with a shared key.
 */
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/util.h"
#include "crypto/jwt.h"
#include "crypto/key.h"

/* The three parts of a compact JWS, pointing into the token. */
struct jwt_parts {
  const char *header;
  size_t header_len;
  const char *payload;
  size_t payload_len;
  const char *sig;
  size_t sig_len;
};

static int is_b64url_char(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Split token into exactly three non-empty base64url parts (no padding, no
 * whitespace).  MDM_ERR_AUTH for anything else, including a token longer
 * than MDM_JWT_MAX_LEN, which is rejected before it is looked at. */
static mdm_rc jwt_split(const char *token, struct jwt_parts *p)
{
  const char *dot[2];
  size_t len, i, n_dots = 0;

  if(!token)
    return MDM_ERR_AUTH;
  len = strnlen(token, MDM_JWT_MAX_LEN + 1);
  if(len > MDM_JWT_MAX_LEN)
    return MDM_ERR_AUTH;
  for(i = 0; i < len; i++) {
    if(token[i] == '.') {
      if(n_dots == 2)
        return MDM_ERR_AUTH;
      dot[n_dots++] = token + i;
    }
    else if(!is_b64url_char(token[i]))
      return MDM_ERR_AUTH;
  }
  if(n_dots != 2)
    return MDM_ERR_AUTH;
  p->header = token;
  p->header_len = (size_t)(dot[0] - token);
  p->payload = dot[0] + 1;
  p->payload_len = (size_t)(dot[1] - p->payload);
  p->sig = dot[1] + 1;
  p->sig_len = (size_t)(token + len - p->sig);
  if(!p->header_len || !p->payload_len || !p->sig_len)
    return MDM_ERR_AUTH;
  return MDM_OK;
}

/* Decode one base64url part that must hold a JSON object.  Duplicate names
 * are refused: two "alg" or two "aud" must not let two readers disagree.
 * Caller owns *out (json_decref). */
static mdm_rc jwt_decode_object(const char *s, size_t n, json_t **out)
{
  unsigned char *raw = NULL;
  size_t raw_len = 0;
  json_t *j;
  json_error_t err;
  mdm_rc rc;

  *out = NULL;
  rc = mdm_b64url_decode(s, n, &raw, &raw_len);
  if(rc)
    return rc == MDM_ERR_NOMEM ? rc : MDM_ERR_AUTH;
  j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &err);
  free(raw);
  if(!j)
    return MDM_ERR_AUTH;
  if(!json_is_object(j)) {
    json_decref(j);
    return MDM_ERR_AUTH;
  }
  *out = j;
  return MDM_OK;
}

/* The only header we accept: "alg" exactly "ES256" and no "crit" (we
 * understand no extensions, RFC 7515 §4.1.11).  Other members such as "kid"
 * and "typ" are informational. */
static mdm_rc jwt_check_header(json_t *header)
{
  json_t *alg = json_object_get(header, "alg");

  if(!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0)
    return MDM_ERR_AUTH;
  if(json_object_get(header, "crit"))
    return MDM_ERR_AUTH;
  return MDM_OK;
}

/* "aud" is a string or an array of strings (RFC 7519 §4.1.3); aud must be
 * one of them.  Anything else in the array makes the claim invalid. */
static mdm_rc jwt_check_aud(json_t *claims, const char *aud)
{
  json_t *a = json_object_get(claims, "aud"), *v;
  size_t i;
  int is_found = 0;

  if(json_is_string(a))
    return strcmp(json_string_value(a), aud) == 0 ? MDM_OK : MDM_ERR_AUTH;
  if(!json_is_array(a))
    return MDM_ERR_AUTH;
  json_array_foreach(a, i, v) {
    if(!json_is_string(v))
      return MDM_ERR_AUTH;
    if(strcmp(json_string_value(v), aud) == 0)
      is_found = 1;
  }
  return is_found ? MDM_OK : MDM_ERR_AUTH;
}

static mdm_rc jwt_check_times(json_t *claims, int64_t now)
{
  json_t *exp = json_object_get(claims, "exp");
  json_t *nbf = json_object_get(claims, "nbf");

  if(!json_is_integer(exp))
    return MDM_ERR_AUTH;
  if(nbf && !json_is_integer(nbf))
    return MDM_ERR_AUTH;
  if(nbf && json_integer_value(nbf) > now)
    return MDM_ERR_AUTH;
  if(json_integer_value(exp) <= now)
    return MDM_ERR_EXPIRED;
  return MDM_OK;
}

/* ---- exported --------------------------------------------------------- */

mdm_rc mdm_jwt_sign(EVP_PKEY *key, const char *kid, json_t *claims,
                    char **out)
{
  mdm_rc rc = MDM_OK;
  struct mdm_buf b;
  json_t *header = NULL;
  char *hjson = NULL, *cjson = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL;

  mdm_buf_init(&b, MDM_JWT_MAX_LEN);
  if(!out)
    return MDM_ERR_INVAL;
  *out = NULL;
  if(!mdm_key_is_p256(key) || !json_is_object(claims))
    return MDM_ERR_INVAL;
  header = json_object();
  if(!header) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  if(json_object_set_new(header, "alg", json_string("ES256")) ||
     json_object_set_new(header, "typ", json_string("JWT"))) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  /* json_string() refuses invalid UTF-8, so a NULL here is bad input. */
  if(kid && json_object_set_new(header, "kid", json_string(kid))) {
    rc = MDM_ERR_INVAL;
    goto out;
  }
  hjson = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS);
  cjson = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  if(!hjson || !cjson) {
    rc = MDM_ERR_INVAL;
    goto out;
  }
  rc = mdm_b64url_encode(hjson, strlen(hjson), &h64);
  if(rc)
    goto out;
  rc = mdm_b64url_encode(cjson, strlen(cjson), &c64);
  if(rc)
    goto out;
  rc = mdm_buf_puts(&b, h64);
  if(!rc)
    rc = mdm_buf_puts(&b, ".");
  if(!rc)
    rc = mdm_buf_puts(&b, c64);
  if(rc)
    goto out;
  rc = mdm_sig_sign(key, b.data, b.len, &s64);
  if(rc)
    goto out;
  rc = mdm_buf_puts(&b, ".");
  if(!rc)
    rc = mdm_buf_puts(&b, s64);
  if(rc)
    goto out;
  *out = mdm_buf_steal(&b);
  if(!*out)
    rc = MDM_ERR_NOMEM;
out:
  mdm_buf_release(&b);
  json_decref(header);
  free(hjson);
  free(cjson);
  free(h64);
  free(c64);
  free(s64);
  return rc;
}

mdm_rc mdm_jwt_peek(const char *token, json_t **header, json_t **claims)
{
  mdm_rc rc;
  struct jwt_parts p;
  json_t *h = NULL, *c = NULL;

  if(header)
    *header = NULL;
  if(claims)
    *claims = NULL;
  rc = jwt_split(token, &p);
  if(rc)
    goto out;
  rc = jwt_decode_object(p.header, p.header_len, &h);
  if(rc)
    goto out;
  rc = jwt_decode_object(p.payload, p.payload_len, &c);
  if(rc)
    goto out;
  if(header) {
    *header = h;
    h = NULL;
  }
  if(claims) {
    *claims = c;
    c = NULL;
  }
out:
  json_decref(h);
  json_decref(c);
  return rc;
}

mdm_rc mdm_jwt_verify(EVP_PKEY *key, const char *token, const char *aud,
                      int64_t now, json_t **claims)
{
  mdm_rc rc;
  struct jwt_parts p;
  json_t *h = NULL, *c = NULL;
  unsigned char *sig = NULL;
  size_t sig_len = 0;

  if(claims)
    *claims = NULL;
  if(!aud || !mdm_key_is_p256(key))
    return MDM_ERR_INVAL;
  rc = jwt_split(token, &p);
  if(rc)
    goto out;
  rc = jwt_decode_object(p.header, p.header_len, &h);
  if(rc)
    goto out;
  rc = jwt_check_header(h);
  if(rc)
    goto out;
  rc = mdm_b64url_decode(p.sig, p.sig_len, &sig, &sig_len);
  if(rc) {
    if(rc != MDM_ERR_NOMEM)
      rc = MDM_ERR_AUTH;
    goto out;
  }
  if(sig_len != MDM_SIG_LEN) {
    rc = MDM_ERR_AUTH;
    goto out;
  }
  /* The signing input is the token up to the second dot, as sent. */
  rc = mdm_sig_verify_raw(key, p.header, p.header_len + 1 + p.payload_len,
                          sig, sig_len);
  if(rc)
    goto out;
  rc = jwt_decode_object(p.payload, p.payload_len, &c);
  if(rc)
    goto out;
  rc = jwt_check_aud(c, aud);
  if(rc)
    goto out;
  rc = jwt_check_times(c, now);
  if(rc)
    goto out;
  if(claims) {
    *claims = c;
    c = NULL;
  }
out:
  free(sig);
  json_decref(h);
  json_decref(c);
  return rc;
}
