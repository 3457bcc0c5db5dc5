/*
 * rc.h: the one result type of mdm.  Every fallible function returns an
 * mdm_rc; the values are stable (never renumbered) and one table maps each to
 * an HTTP status, an RFC 9457 problem type and a CLI exit code.
 */
#ifndef MDM_RC_H
#define MDM_RC_H

typedef enum mdm_rc {
  MDM_OK = 0,
  MDM_ERR_NOMEM = 1,       /* out of memory */
  MDM_ERR_INVAL = 2,       /* malformed input */
  MDM_ERR_NOTFOUND = 3,    /* no such object */
  MDM_ERR_TOOBIG = 4,      /* input over its bound */
  MDM_ERR_IO = 5,          /* file or network I/O failed */
  MDM_ERR_AUTH = 6,        /* missing or invalid credentials */
  MDM_ERR_FORBIDDEN = 7,   /* credentials valid, action not allowed */
  MDM_ERR_CONFLICT = 8,    /* state conflict (exists, used up) */
  MDM_ERR_EXPIRED = 9,     /* token or object past its time */
  MDM_ERR_STORE = 10,      /* the store failed */
  MDM_ERR_CRYPTO = 11,     /* a cryptographic operation failed */
  MDM_ERR_UNSUPPORTED = 12,/* not supported (method, media type...) */
  MDM_ERR_BUSY = 13,       /* try again later */
  MDM_ERR_INTERNAL = 14,   /* a bug */
  MDM_ERR_UNPROCESSABLE = 15, /* well-formed but invalid document */
  MDM_ERR_METHOD = 16      /* method not allowed on this resource */
} mdm_rc;

/* Short lower-case description of rc; never NULL. */
const char *mdm_strerror(mdm_rc rc);
/* HTTP status for rc (200 for MDM_OK). */
int mdm_rc_http_status(mdm_rc rc);
/* Process exit code for rc: 0 for MDM_OK, 1 otherwise. */
int mdm_rc_exit_code(mdm_rc rc);

#endif
