/*
 * http.h: one HTTP request as the handlers see it, and the helpers they use
 * to read its body and write its answer.  A handler returns MDM_OK after
 * mdm_req_reply*(), or an error code after mdm_req_fail() has said why; the
 * HTTP layer turns the latter into an RFC 9457 problem+json body.
 */
#ifndef MDM_HTTP_H
#define MDM_HTTP_H

#include <stdint.h>
#include <jansson.h>
#include "core/buf.h"
#include "core/rc.h"
#include "server/server.h"

struct MHD_Connection;
struct mdm_route;

enum mdm_principal_kind { MDM_PRINCIPAL_NONE, MDM_PRINCIPAL_ADMIN,
                          MDM_PRINCIPAL_DEVICE };

struct mdm_principal {
  enum mdm_principal_kind kind;
  char tenant_id[MDM_UUID_LEN + 1];
  char id[MDM_UUID_LEN + 1];      /* API token id or device id */
  char role[16];                  /* admin tokens */
  char actor[48];                 /* "token:<id>" / "device:<id>" */
};

#define MDM_MAX_PARAMS 4

struct mdm_req {
  struct mdm_server *srv;
  struct MHD_Connection *conn;
  const char *method;
  const char *path;
  struct mdm_buf body;
  int is_body_too_big;
  const struct mdm_route *route;
  char params[MDM_MAX_PARAMS][128];  /* {id} path segments, in order */
  int n_params;
  struct mdm_principal who;

  /* the answer */
  int status;
  char *resp_body;                /* owned */
  size_t resp_len;
  const char *resp_type;
  char etag[80];
  char location[256];
  /* Up to two more response headers (mdm_req_add_header). */
  char hdr_name[2][32];
  char hdr_value[2][160];
  char problem_detail[512];
  int64_t started_ns;

  /* A file answer instead of resp_body (mdm_req_reply_file): the request
   * owns the descriptor until the HTTP layer hands it to the response. */
  int has_resp_fd;
  int resp_fd;
  uint64_t resp_fd_len;
  char disposition[160];          /* Content-Disposition, "" for none */
};

/* Body as a JSON object.  Requires Content-Type application/json; rejects
 * duplicate keys, non-objects and fields not in allowed (NULL-terminated;
 * NULL allows any).  On failure the problem is set on r. */
mdm_rc mdm_req_json_body(struct mdm_req *r, const char *const *allowed,
                         json_t **out /* OUT */);
/* Is the request's Content-Type application/json? */
int mdm_req_is_json(struct mdm_req *r);
/* A query-string argument, or NULL. Borrowed for the request's life. */
const char *mdm_req_query(struct mdm_req *r, const char *name);
/* Every value of a repeated query argument; returns the count. */
int mdm_req_query_all(struct mdm_req *r, const char *name,
                      const char **vals, int max);
/* A request header, or NULL. */
const char *mdm_req_header(struct mdm_req *r, const char *name);

/* Answer with status and a JSON value (takes ownership of v). */
mdm_rc mdm_req_reply_json(struct mdm_req *r, int status, json_t *v);
/* Add a response header (at most two per request; names and values are
 * the handler's own, never request data unchecked).  -1 when full or too
 * long. */
int mdm_req_add_header(struct mdm_req *r, const char *name,
                       const char *value);
/* Answer with no body. */
mdm_rc mdm_req_reply_empty(struct mdm_req *r, int status);
/* Answer with the first len bytes of the open file fd (from offset 0) as
 * type (a static string), so that a large answer (a report) is sent from
 * disk rather than memory.  disposition (may be NULL) becomes the
 * Content-Disposition header.  Takes ownership of fd, also on failure. */
mdm_rc mdm_req_reply_file(struct mdm_req *r, int status, const char *type,
                          int fd, uint64_t len, const char *disposition);
/* Answer with a list page: {"items": items, "next_cursor": cursor|null}. */
mdm_rc mdm_req_reply_list(struct mdm_req *r, json_t *items,
                          const char *next_cursor);
/* Record why the request failed and return rc (for "return mdm_req_fail"). */
mdm_rc mdm_req_fail(struct mdm_req *r, mdm_rc rc, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* Parse ?limit= (1..1000, default 100). */
mdm_rc mdm_req_limit(struct mdm_req *r, int *limit /* OUT */);

#endif
