/*
 * metrics.h: what GET /metrics says (Prometheus text format 0.0.4,
 * docs/metrics.md).  Counters and the HTTP latency histogram live in
 * process memory as relaxed atomics, so counting costs a request a few
 * nanoseconds; device and command gauges are read from the store at each
 * scrape, so they are true at the moment of the scrape.  No label names a
 * device or a user: labels are tenant, region, platform, states, route
 * patterns and status codes, all of bounded number.
 */
#ifndef MDM_SERVER_METRICS_H
#define MDM_SERVER_METRICS_H

#include <stdint.h>
#include "core/buf.h"
#include "core/rc.h"

struct mdm_server;

enum mdm_counter {
  MDM_M_CHECKINS,             /* check-ins answered 200 */
  MDM_M_ENROLLMENTS,          /* devices enrolled */
  MDM_M_ENROLL_REFUSED,       /* enrollments refused (bad or used-up token) */
  MDM_M_MQTT_PUBLISHED,       /* wake-ups handed to the broker */
  MDM_M_MQTT_FAILED,          /* wake-ups libmosquitto refused */
  MDM_M_MQTT_DROPPED,         /* wake-ups dropped (queue full, broker down) */
  MDM_M_STORE_ERRORS,         /* requests that failed in the store */
  MDM_M_ACCESS_ALLOW,         /* conditional-access decisions */
  MDM_M_ACCESS_BLOCK,
  MDM_M_ACCESS_REQUIRE_MFA,
  MDM_M__COUNT
};

/* Allocate the per-route tables (mdm_n_routes).  Call once at start;
 * until then every recording function does nothing. */
mdm_rc mdm_metrics_init(void);
void mdm_metrics_free(void);

void mdm_metrics_inc(enum mdm_counter c);
void mdm_metrics_add(enum mdm_counter c, uint64_t n);

/* One answered request: route_idx is its index in mdm_routes, or -1 when
 * no route matched; status the HTTP status; ns its duration. */
void mdm_metrics_http(int route_idx, int status, int64_t ns);

/* The whole exposition into out.  Reads the store for the gauges. */
mdm_rc mdm_metrics_render(struct mdm_server *srv, struct mdm_buf *out);

#endif
