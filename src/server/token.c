/*
 * token.c: API token secrets (see token.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "server/token.h"

mdm_rc mdm_api_token_new(char **secret, char *hash)
{
  unsigned char raw[32];
  char *b64 = NULL, *s;
  size_t n;
  mdm_rc rc = mdm_random(raw, sizeof(raw));
  if(rc)
    return rc;
  rc = mdm_b64url_encode(raw, sizeof(raw), &b64);
  if(rc)
    return rc;
  n = strlen("mdm_at_") + strlen(b64) + 1;
  s = malloc(n);
  if(!s) {
    free(b64);
    return MDM_ERR_NOMEM;
  }
  snprintf(s, n, "mdm_at_%s", b64);
  free(b64);
  mdm_sha256_hex(s, strlen(s), hash);
  *secret = s;
  return MDM_OK;
}
