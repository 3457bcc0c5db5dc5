/*
 * api_metrics.c: GET /metrics (docs/metrics.md).  Open unless mdmd runs
 * with --metrics-token-file; then only that bearer token opens it (admin
 * API tokens do not: Prometheus should hold nothing that can change the
 * fleet).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "core/buf.h"
#include "server/api.h"
#include "server/metrics.h"

#define METRICS_MAX (16 * 1024 * 1024)

mdm_rc mdm_api_metrics(struct mdm_req *r)
{
  const char *want = r->srv->cfg.metrics_token;
  struct mdm_buf b;
  mdm_rc rc;

  if(want[0]) {
    const char *h = mdm_req_header(r, "Authorization");
    size_t n = strlen(want);
    if(!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != n ||
       CRYPTO_memcmp(h + 7, want, n))
      return mdm_req_fail(r, MDM_ERR_AUTH, "GET /metrics needs the metrics "
                          "token (--metrics-token-file)");
  }
  mdm_buf_init(&b, METRICS_MAX);
  rc = mdm_metrics_render(r->srv, &b);
  if(rc) {
    mdm_buf_release(&b);
    return mdm_req_fail(r, rc, "cannot read the metrics");
  }
  free(r->resp_body);
  r->resp_len = b.len;
  r->resp_body = mdm_buf_steal(&b);
  r->resp_type = "text/plain; version=0.0.4; charset=utf-8";
  r->status = 200;
  return MDM_OK;
}
