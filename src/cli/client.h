/*
 * client.h: mdmctl's HTTP client for the mdm API (libcurl + jansson).  One
 * client per run keeps one connection alive across the pages of a list.
 * Responses are bounded (16 MiB), requests time out (10 s to connect, 60 s
 * in all), redirects are not followed and the token is never printed.
 *
 * On failure the calls print exactly one line on stderr, for example
 *   mdmctl: GET /v1/devices/xyz: 404 not found: no device 'xyz'
 *   mdmctl: cannot connect to http://127.0.0.1:8080: Connection refused
 * and return the mdm_rc that matches (MDM_ERR_NOTFOUND, MDM_ERR_IO, ...).
 */
#ifndef MDM_CLI_CLIENT_H
#define MDM_CLI_CLIENT_H

#include <stddef.h>
#include <jansson.h>
#include "cli/config.h"
#include "core/buf.h"
#include "core/rc.h"

#define CLI_MAX_RESPONSE (16u * 1024 * 1024)
#define CLI_CONNECT_TIMEOUT_S 10L
#define CLI_TOTAL_TIMEOUT_S 60L
#define CLI_PAGE_SIZE 1000         /* the API's largest page */

struct cli_client;

/* cli_client_call flag: on a non-2xx answer return MDM_OK with *status set
 * and *out the problem body (or NULL), printing nothing. */
#define CLI_HTTP_NOFAIL 1u

/* Create a client for conf->server with conf->token (which must be set) and
 * conf->ca_file.  Copies what it needs from conf.  On failure writes one
 * line to err.  Caller owns *out; free with cli_client_free(). */
mdm_rc cli_client_new(const struct cli_conf *conf,
                      struct cli_client **out /* OUT */, char *err,
                      size_t err_len);
void cli_client_free(struct cli_client *c);

/* Send METHOD path (path starts with "/", query included) with body (NULL
 * for none; sent as application/json).  On a 2xx answer *out is the parsed
 * body, NULL when the body is empty (204).  status may be NULL.  Caller owns
 * *out; json_decref() it. */
mdm_rc cli_client_call(struct cli_client *c, const char *method,
                       const char *path, const json_t *body, unsigned flags,
                       long *status /* OUT */, json_t **out /* OUT */);

/* GET a list endpoint page by page ("limit" and "cursor" are added to path),
 * following next_cursor until it is null or max items are in (max 0: all).
 * Caller owns *items, a JSON array; json_decref() it. */
mdm_rc cli_client_list(struct cli_client *c, const char *path, size_t max,
                       json_t **items /* OUT */);

/* Append "name=value" (value percent-encoded) to the query in b, with '?'
 * before the first parameter and '&' before the others. */
mdm_rc cli_query_add(struct mdm_buf *b, const char *name, const char *value);
/* Append s to b percent-encoded, for use as one path segment. */
mdm_rc cli_path_add(struct mdm_buf *b, const char *s);

/* Copy s into out (size n), replacing control characters with '?' and
 * truncating with "..." so that text from the network cannot drive the
 * terminal.  Returns out. */
char *cli_sanitize(const char *s, char *out, size_t n);

#endif
