/*
 * client.h: the agent's HTTP client for the mdm server, on libcurl.  One
 * easy handle per client, reused for every request so the connection stays
 * alive between them.  Requests and answers are JSON; answers are bounded
 * (MDM_CLIENT_MAX_BODY) and never trusted: callers check every type.
 *
 * Over https (issue 5, zero-trust TLS) the client trusts one CA and nothing
 * else: the file it is given (the server CA pinned at enrollment,
 * server-ca.pem, or --ca-file) or the PEM set with mdm_client_trust_pem();
 * never the system's store, whatever SSL_CERT_FILE or SSL_CERT_DIR say.  It
 * presents the device certificate (mdm_client_set_identity()) as well as
 * the bearer token; when the server answers 401 to a request made with the
 * certificate, the request is made once more with the token alone, and if
 * that works the client stops presenting the certificate and says so
 * (mdm_client_cert_refused()): the agent then renews it at once.
 *
 * Not thread-safe: one thread uses a client at a time.  curl_global_init()
 * must have been called (main does it).
 */
#ifndef MDM_AGENT_CLIENT_H
#define MDM_AGENT_CLIENT_H

#include <signal.h>
#include <curl/curl.h>
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
  int is_untrusted;   /* failed because the server's certificate did not
                         verify against the CA trusted */
};

/* A client for the server at base URL server ("http://" or "https://"; a
 * trailing '/' is ignored), trusting only the CA certificates in ca_file
 * for https (NULL: none, so every https request fails until
 * mdm_client_trust_pem()).  MDM_ERR_INVAL for another scheme.  Caller owns
 * *out; free with mdm_client_free(). */
mdm_rc mdm_client_new(const char *server, const char *ca_file,
                      struct mdm_client **out /* OUT */);
void mdm_client_free(struct mdm_client *c);

/* Trust only the certificates in pem (copied) instead of the CA file. */
mdm_rc mdm_client_trust_pem(struct mdm_client *c, const char *pem);

/* Present the certificate in cert_file with the key in key_file (both PEM,
 * paths copied; NULL, NULL: present none) over https from the next request
 * on, which opens a new connection: one made with the previous certificate
 * is not used again. */
mdm_rc mdm_client_set_identity(struct mdm_client *c, const char *cert_file,
                               const char *key_file);

/* The certificate and key files presented now; both NULL when none (none
 * set, plain http, or the server refused it). */
void mdm_client_identity(const struct mdm_client *c,
                         const char **cert_file /* OUT */,
                         const char **key_file /* OUT */);

/* 1 once after the server refused the certificate but took the token (the
 * client then presents no certificate until mdm_client_set_identity()),
 * else 0.  Reading it clears it. */
int mdm_client_cert_refused(struct mdm_client *c);

/* The TLS settings every agent handle to the server shares (also the
 * policy fetcher's): verify the peer and its name, trust only ca_file
 * (NULL: nothing), never the system store, no TLS session resumption (a
 * resumed session would carry a replaced certificate), and present
 * cert_file/key_file unless NULL. */
void mdm_client_tls_setup(CURL *h, const char *ca_file,
                          const char *cert_file, const char *key_file);

/* Connect to server (https) without verifying it and return the
 * certificates it presents, leaf first, then the CA it publishes at
 * GET /v1/server-ca.pem (mdmd does not send a self-signed root in its
 * chain), as PEM text in *chain (caller frees).  Used once, before
 * enrollment, to find the CA the enrollment token pins: nothing is sent but
 * that GET, and nothing it returns is trusted but a certificate whose
 * fingerprint is the pin.  MDM_ERR_IO with a reason in err[n] when no TLS
 * session came up, MDM_ERR_NOTFOUND when it presented no certificate. */
mdm_rc mdm_client_probe_chain(const char *server, char **chain /* OUT */,
                              char *err, size_t n);

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
