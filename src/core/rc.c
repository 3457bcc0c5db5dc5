/*
 * rc.c: the table behind mdm_rc: message, HTTP status and exit code.
 */
#include "core/rc.h"

static const struct {
  const char *msg;
  int http;
} rc_table[] = {
  [MDM_OK] = {"ok", 200},
  [MDM_ERR_NOMEM] = {"out of memory", 500},
  [MDM_ERR_INVAL] = {"invalid input", 400},
  [MDM_ERR_NOTFOUND] = {"not found", 404},
  [MDM_ERR_TOOBIG] = {"too large", 413},
  [MDM_ERR_IO] = {"i/o error", 500},
  [MDM_ERR_AUTH] = {"not authenticated", 401},
  [MDM_ERR_FORBIDDEN] = {"forbidden", 403},
  [MDM_ERR_CONFLICT] = {"conflict", 409},
  [MDM_ERR_EXPIRED] = {"expired", 401},
  [MDM_ERR_STORE] = {"store error", 500},
  [MDM_ERR_CRYPTO] = {"cryptographic error", 500},
  [MDM_ERR_UNSUPPORTED] = {"unsupported", 415},
  [MDM_ERR_BUSY] = {"busy", 503},
  [MDM_ERR_INTERNAL] = {"internal error", 500},
  [MDM_ERR_UNPROCESSABLE] = {"invalid document", 422},
  [MDM_ERR_METHOD] = {"method not allowed", 405},
};

#define N_RC (sizeof(rc_table) / sizeof(rc_table[0]))

const char *mdm_strerror(mdm_rc rc)
{
  if((unsigned)rc >= N_RC || !rc_table[rc].msg)
    return "unknown error";
  return rc_table[rc].msg;
}

int mdm_rc_http_status(mdm_rc rc)
{
  if((unsigned)rc >= N_RC || !rc_table[rc].msg)
    return 500;
  return rc_table[rc].http;
}

int mdm_rc_exit_code(mdm_rc rc)
{
  return rc == MDM_OK ? 0 : 1;
}
