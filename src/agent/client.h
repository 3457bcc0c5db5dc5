/*
 * client.h: the agent's HTTP client for the mdm server, on libcurl.  One
 * easy handle per client, reused for every request so the connection stays
 * alive between them.  Requests and answers are JSON; answers are bounded
 * (MDM_CLIENT_MAX_BODY) and never trusted: callers check every type.
 *
 * Not thread-safe: one thread uses a client at a time.  curl_global_init()
 * must have been called (main does it).
 */
#ifndef MDM_AGENT_CLIENT_H
#define MDM_AGENT_CLIENT_H

#include <signal.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_CLIENT_MAX_BODY (1024 * 1024)
#define MDM_CLIENT_CONNECT_TIMEOUT_MS 10000
#define MDM_CLIENT_TIMEOUT_MS 30000

struct mdm_client;

/* An answer from the server. */
struct mdm_response {
  long status;        /* HTTP status, 0 when no answer came */
  json_t *body;       /* the body if it parsed as JSON, else NULL; owned */
  char errmsg[256];   /* why the request failed (rc != MDM_OK); one line,
                         stable from one attempt to the next, no secrets */
};

/* A client for the server at base URL server ("http://" or "https://"; a
 * trailing '/' is ignored), trusting the CA bundle ca_file (NULL: the system
 * default).  MDM_ERR_INVAL for another scheme.  Caller owns *out; free with
 * mdm_client_free(). */
mdm_rc mdm_client_new(const char *server, const char *ca_file,
                      struct mdm_client **out /* OUT */);
void mdm_client_free(struct mdm_client *c);

/* Change the connect and total timeouts of the next requests. */
void mdm_client_set_timeouts(struct mdm_client *c, long connect_ms,
                             long total_ms);
/* While *flag (borrowed; NULL to stop) is non-zero, requests in flight are
 * abandoned (MDM_ERR_IO, "interrupted"): a SIGTERM does not wait 30 s. */
void mdm_client_set_abort(struct mdm_client *c,
                          const volatile sig_atomic_t *flag);

/* POST body (borrowed) as JSON to server + path, with "Authorization:
 * Bearer bearer" unless bearer is NULL.  MDM_OK when an answer came back,
 * whatever its status: look at resp->status.  MDM_ERR_IO when the server
 * could not be reached or the transfer failed, MDM_ERR_TOOBIG when the answer
 * was over the bound; resp->errmsg says why.  Release resp with
 * mdm_response_release() in every case. */
mdm_rc mdm_client_post(struct mdm_client *c, const char *path,
                       const char *bearer, json_t *body,
                       struct mdm_response *resp /* OUT */);

/* GET server + path, like mdm_client_post() without a body. */
mdm_rc mdm_client_get(struct mdm_client *c, const char *path,
                      const char *bearer, struct mdm_response *resp /* OUT */);

void mdm_response_release(struct mdm_response *r);

/* One line for a non-2xx answer: "409 conflict: enrollment token used up"
 * (status, the problem's title or the reason phrase, its detail if any),
 * with control characters replaced and the length bounded by n. */
void mdm_response_describe(const struct mdm_response *r, char *out, size_t n);

/* Is s an http:// or https:// URL with a host? */
int mdm_client_url_ok(const char *s);

#endif
