/*
 * router.h: the route table.  Every route declares who may call it; the
 * declaration is a required field of struct mdm_route, and a unit test
 * (tests/unit/server/test_router.c) fails if any route leaves it at 0
 * (MDM_AUTH_UNDECLARED) or opens a non-public path to everyone.
 */
#ifndef MDM_ROUTER_H
#define MDM_ROUTER_H

#include "server/http.h"

enum {
  MDM_AUTH_UNDECLARED = 0,
  MDM_AUTH_PUBLIC = 1 << 0,     /* no credentials at all */
  /* A device: its token, or its certificate (in mdmd's own TLS handshake,
   * or forwarded by a --trusted-proxies address in X-Client-Cert,
   * URL-encoded PEM as nginx's $ssl_client_escaped_cert); with both, one
   * device. */
  MDM_AUTH_DEVICE = 1 << 1,
  MDM_ROLE_OWNER = 1 << 2,
  MDM_ROLE_ADMIN = 1 << 3,
  MDM_ROLE_OPERATOR = 1 << 4,
  MDM_ROLE_HELPDESK = 1 << 5,
  MDM_ROLE_AUDITOR = 1 << 6,
};

#define MDM_ROLES_ALL                                                 \
  (MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_HELPDESK | \
   MDM_ROLE_AUDITOR)

typedef mdm_rc (*mdm_handler)(struct mdm_req *r);

struct mdm_route {
  const char *method;
  const char *pattern;    /* "/v1/devices/{id}" */
  mdm_handler handler;
  unsigned auth;          /* MDM_AUTH_* | MDM_ROLE_* bits; never 0 */
};

extern const struct mdm_route mdm_routes[];
extern const int mdm_n_routes;

/* Role name → its bit (0 for an unknown name). */
unsigned mdm_role_bit(const char *role);

/* Find the route for method and path, filling r->params.  Returns
 * MDM_ERR_NOTFOUND (no path matches) or MDM_ERR_METHOD (path matches,
 * method does not). */
mdm_rc mdm_route_match(const char *method, const char *path,
                       struct mdm_req *r, const struct mdm_route **out);

/* The methods routed for path, "GET, PATCH", into out (for Allow). */
void mdm_route_allow(const char *path, char *out, size_t n);

/* Authenticate r against its route's declaration (sets r->who). */
mdm_rc mdm_auth_check(struct mdm_req *r);

#endif
