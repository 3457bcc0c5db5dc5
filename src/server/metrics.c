/*
 * metrics.c: counters, the HTTP histogram and the exposition (metrics.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "core/util.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/server.h"

/* Upper bounds of the latency buckets, in seconds (and in ns below). */
static const double bucket_s[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                  5,      10};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))

/* The statuses counted one by one; any other goes to "other" (last). */
static const int statuses[] = {200, 201, 204, 304, 400, 401, 403, 404, 405,
                               409, 413, 415, 422, 429, 500, 503};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)

struct route_stats {
  atomic_ullong by_status[N_STATUS];
  atomic_ullong bucket[N_BUCKETS];    /* not cumulative; summed at render */
  atomic_ullong count;
  atomic_ullong sum_ns;
};

static atomic_ullong counters[MDM_M__COUNT];
static struct route_stats *routes;    /* mdm_n_routes + 1 (unmatched) */
static int n_routes;
static int64_t started_s;

mdm_rc mdm_metrics_init(void)
{
  if(routes)
    return MDM_OK;
  routes = calloc((size_t)mdm_n_routes + 1, sizeof(*routes));
  if(!routes)
    return MDM_ERR_NOMEM;
  n_routes = mdm_n_routes;
  started_s = mdm_now_ms() / 1000;
  return MDM_OK;
}

void mdm_metrics_free(void)
{
  free(routes);
  routes = NULL;
  n_routes = 0;
}

void mdm_metrics_inc(enum mdm_counter c)
{
  mdm_metrics_add(c, 1);
}

void mdm_metrics_add(enum mdm_counter c, uint64_t n)
{
  if((unsigned)c < MDM_M__COUNT)
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void mdm_metrics_http(int route_idx, int status, int64_t ns)
{
  struct route_stats *rs;
  size_t i;
  if(!routes)
    return;
  if(route_idx < 0 || route_idx >= n_routes)
    route_idx = n_routes;
  rs = &routes[route_idx];
  for(i = 0; i + 1 < N_STATUS && statuses[i] != status; i++)
    ;
  atomic_fetch_add_explicit(&rs->by_status[i], 1, memory_order_relaxed);
  if(ns < 0)
    ns = 0;
  for(i = 0; i < N_BUCKETS && (double)ns > bucket_s[i] * 1e9; i++)
    ;
  if(i < N_BUCKETS)
    atomic_fetch_add_explicit(&rs->bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rs->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rs->sum_ns, (unsigned long long)ns,
                            memory_order_relaxed);
}

/* ---- rendering ---------------------------------------------------------- */

/* A label value, escaped as the text format wants (\\, \", \n). */
static mdm_rc put_label(struct mdm_buf *b, const char *v)
{
  mdm_rc rc = MDM_OK;
  for(; *v && !rc; v++) {
    if(*v == '\\')
      rc = mdm_buf_puts(b, "\\\\");
    else if(*v == '"')
      rc = mdm_buf_puts(b, "\\\"");
    else if(*v == '\n')
      rc = mdm_buf_puts(b, "\\n");
    else
      rc = mdm_buf_append(b, v, 1);
  }
  return rc;
}

static mdm_rc head(struct mdm_buf *b, const char *name, const char *type,
                   const char *help)
{
  return mdm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static mdm_rc counter(struct mdm_buf *b, const char *name, const char *help,
                      enum mdm_counter c)
{
  mdm_rc rc = head(b, name, "counter", help);
  if(!rc)
    rc = mdm_buf_printf(b, "%s %llu\n", name,
                        (unsigned long long)atomic_load_explicit(
                          &counters[c], memory_order_relaxed));
  return rc;
}

static void route_labels(int i, const char **method, const char **route)
{
  if(i < n_routes) {
    *method = mdm_routes[i].method;
    *route = mdm_routes[i].pattern;
  }
  else {
    *method = "other";
    *route = "unmatched";
  }
}

static mdm_rc render_http(struct mdm_buf *b)
{
  mdm_rc rc;
  int i;
  size_t k;

  rc = head(b, "mdm_http_requests_total", "counter",
            "HTTP requests answered, by route pattern and status.");
  for(i = 0; !rc && i <= n_routes; i++) {
    const char *m, *r;
    route_labels(i, &m, &r);
    for(k = 0; !rc && k < N_STATUS; k++) {
      unsigned long long v = atomic_load_explicit(&routes[i].by_status[k],
                                                  memory_order_relaxed);
      char st[16];
      if(!v)
        continue;
      if(k + 1 < N_STATUS)
        snprintf(st, sizeof(st), "%d", statuses[k]);
      else
        snprintf(st, sizeof(st), "other");
      rc = mdm_buf_printf(b, "mdm_http_requests_total{method=\"%s\",route=\"",
                          m);
      if(!rc)
        rc = put_label(b, r);
      if(!rc)
        rc = mdm_buf_printf(b, "\",status=\"%s\"} %llu\n", st, v);
    }
  }
  if(!rc)
    rc = head(b, "mdm_http_request_duration_seconds", "histogram",
              "Time from a request's arrival to its answer, by route "
              "pattern.");
  for(i = 0; !rc && i <= n_routes; i++) {
    const char *m, *r;
    unsigned long long count = atomic_load_explicit(&routes[i].count,
                                                    memory_order_relaxed);
    unsigned long long cum = 0, sum;
    if(!count)
      continue;
    route_labels(i, &m, &r);
    for(k = 0; !rc && k <= N_BUCKETS; k++) {
      char le[32];
      if(k < N_BUCKETS) {
        cum += atomic_load_explicit(&routes[i].bucket[k],
                                    memory_order_relaxed);
        snprintf(le, sizeof(le), "%g", bucket_s[k]);
      }
      else {
        cum = count;   /* +Inf holds everything, also what is in flight */
        snprintf(le, sizeof(le), "+Inf");
      }
      if(cum > count)
        cum = count;
      rc = mdm_buf_printf(b, "mdm_http_request_duration_seconds_bucket"
                          "{method=\"%s\",route=\"", m);
      if(!rc)
        rc = put_label(b, r);
      if(!rc)
        rc = mdm_buf_printf(b, "\",le=\"%s\"} %llu\n", le, cum);
    }
    sum = atomic_load_explicit(&routes[i].sum_ns, memory_order_relaxed);
    if(!rc)
      rc = mdm_buf_printf(b, "mdm_http_request_duration_seconds_sum"
                          "{method=\"%s\",route=\"", m);
    if(!rc)
      rc = put_label(b, r);
    if(!rc)
      rc = mdm_buf_printf(b, "\"} %.9f\n", (double)sum / 1e9);
    if(!rc)
      rc = mdm_buf_printf(b, "mdm_http_request_duration_seconds_count"
                          "{method=\"%s\",route=\"", m);
    if(!rc)
      rc = put_label(b, r);
    if(!rc)
      rc = mdm_buf_printf(b, "\"} %llu\n", count);
  }
  return rc;
}

#define LABEL_VALUES_MAX 100   /* per key and tenant; the rest is "other" */

/* One mdm_device_compliance_by_label sample. */
static mdm_rc by_label_line(struct mdm_buf *b, const char *tenant,
                            const char *key, const char *value,
                            const char *state, json_int_t n)
{
  mdm_rc rc = mdm_buf_puts(b, "mdm_device_compliance_by_label{tenant=\"");
  if(!rc)
    rc = put_label(b, tenant);
  if(!rc)
    rc = mdm_buf_puts(b, "\",label=\"");
  if(!rc)
    rc = put_label(b, key);
  if(!rc)
    rc = mdm_buf_puts(b, "\",value=\"");
  if(!rc)
    rc = put_label(b, value);
  if(!rc)
    rc = mdm_buf_puts(b, "\",compliance_state=\"");
  if(!rc)
    rc = put_label(b, state);
  if(!rc)
    rc = mdm_buf_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n", n);
  return rc;
}

/* The "other" samples of tenant ({state: count}), then forget them. */
static mdm_rc by_label_other(struct mdm_buf *b, const char *tenant,
                             const char *key, json_t *other)
{
  const char *state;
  json_t *v;
  mdm_rc rc = MDM_OK;
  json_object_foreach(other, state, v) {
    if(!rc)
      rc = by_label_line(b, tenant, key, "other", state,
                         json_integer_value(v));
  }
  json_object_clear(other);
  return rc;
}

/* mdm_device_compliance_by_label for each key of --metrics-label-keys.
 * Rows come by tenant, largest counts first: the first LABEL_VALUES_MAX
 * values of a tenant are named, later ones summed into "other" (per
 * compliance state). */
static mdm_rc render_labels(struct mdm_server *srv, struct mdm_buf *b)
{
  char keys[sizeof(srv->cfg.metrics_label_keys)], *save = NULL, *key;
  mdm_rc rc;
  rc = head(b, "mdm_device_compliance_by_label", "gauge",
            "Active devices by the value of a device label (the keys of "
            "--metrics-label-keys) and compliance state.");
  mdm_strlcpy(keys, srv->cfg.metrics_label_keys, sizeof(keys));
  for(key = strtok_r(keys, ",", &save); key && !rc;
      key = strtok_r(NULL, ",", &save)) {
    json_t *rows = NULL, *row, *other = json_object(), *seen = json_object();
    const char *tenant = "";
    size_t i;
    if(!*key)
      continue;
    rc = srv->store->ops->metrics_label_scan(srv->store, key, &rows);
    if(!rc && (!other || !seen))
      rc = MDM_ERR_NOMEM;
    json_array_foreach(rows, i, row) {
      const char *t = json_string_value(json_array_get(row, 0));
      const char *val = json_string_value(json_array_get(row, 1));
      const char *state = json_string_value(json_array_get(row, 2));
      json_int_t n = json_integer_value(json_array_get(row, 3));
      if(rc)
        break;
      if(strcmp(t, tenant)) {
        rc = by_label_other(b, tenant, key, other);
        json_object_clear(seen);
        tenant = t;
      }
      if(!json_object_get(seen, val) &&
         json_object_size(seen) >= LABEL_VALUES_MAX)
        json_object_set_new(other, state, json_integer(
          json_integer_value(json_object_get(other, state)) + n));
      else {
        json_object_set_new(seen, val, json_true());
        if(!rc)
          rc = by_label_line(b, t, key, val, state, n);
      }
    }
    if(!rc)
      rc = by_label_other(b, tenant, key, other);
    json_decref(rows);
    json_decref(other);
    json_decref(seen);
  }
  return rc;
}

/* The gauges read from the store: devices by tenant, region, platform and
 * compliance state; commands by tenant, type and state. */
static mdm_rc render_store(struct mdm_server *srv, struct mdm_buf *b)
{
  json_t *dev = NULL, *cmd = NULL, *row;
  size_t i;
  mdm_rc rc;

  rc = srv->store->ops->metrics_scan(srv->store, &dev, &cmd);
  if(rc)
    return rc;
  rc = head(b, "mdm_device_compliance", "gauge",
            "Active devices, by tenant, region, platform and compliance "
            "state.");
  json_array_foreach(dev, i, row) {
    const char *region = json_string_value(json_array_get(row, 1));
    const char *platform = json_string_value(json_array_get(row, 2));
    if(rc)
      break;
    if(!region || !*region)
      region = srv->cfg.region;
    rc = mdm_buf_puts(b, "mdm_device_compliance{tenant=\"");
    if(!rc)
      rc = put_label(b, json_string_value(json_array_get(row, 0)));
    if(!rc)
      rc = mdm_buf_puts(b, "\",region=\"");
    if(!rc)
      rc = put_label(b, region);
    if(!rc)
      rc = mdm_buf_puts(b, "\",platform=\"");
    if(!rc)
      rc = put_label(b, platform ? platform : "unknown");
    if(!rc)
      rc = mdm_buf_puts(b, "\",compliance_state=\"");
    if(!rc)
      rc = put_label(b, json_string_value(json_array_get(row, 3)));
    if(!rc)
      rc = mdm_buf_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n",
                          json_integer_value(json_array_get(row, 4)));
  }
  if(!rc)
    rc = head(b, "mdm_commands", "gauge",
              "Commands, by tenant, type and state.");
  json_array_foreach(cmd, i, row) {
    if(rc)
      break;
    rc = mdm_buf_puts(b, "mdm_commands{tenant=\"");
    if(!rc)
      rc = put_label(b, json_string_value(json_array_get(row, 0)));
    if(!rc)
      rc = mdm_buf_puts(b, "\",type=\"");
    if(!rc)
      rc = put_label(b, json_string_value(json_array_get(row, 1)));
    if(!rc)
      rc = mdm_buf_puts(b, "\",state=\"");
    if(!rc)
      rc = put_label(b, json_string_value(json_array_get(row, 2)));
    if(!rc)
      rc = mdm_buf_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n",
                          json_integer_value(json_array_get(row, 3)));
  }
  json_decref(dev);
  json_decref(cmd);
  if(!rc)
    rc = render_labels(srv, b);
  return rc;
}

/* The SIEM event stream's counters (docs/events.md), when it runs. */
static mdm_rc render_events(struct mdm_server *srv, struct mdm_buf *b)
{
  struct mdm_events_stats es;
  mdm_rc rc;
  int i;
  static const struct {
    const char *name, *help;
  } m[] = {
    {"mdm_events_total", "Events delivered, by sink."},
    {"mdm_events_dropped_total", "Events lost, by sink: its queue was full "
                                 "or its spool reached its cap."},
    {"mdm_events_failures_total", "Failed writes, connections and requests, "
                                  "by sink."},
    {"mdm_events_spool_bytes", "Bytes waiting in a sink's on-disk spool."},
  };
  if(!srv->events)
    return MDM_OK;
  mdm_events_get_stats(srv->events, &es);
  rc = head(b, "mdm_events_built_total", "counter",
            "SIEM events built from the store's changes.");
  if(!rc)
    rc = mdm_buf_printf(b, "mdm_events_built_total %llu\n",
                        (unsigned long long)es.n_events);
  if(!rc)
    rc = head(b, "mdm_events_changes_dropped_total", "counter",
              "Store changes not turned into events: the queue was full.");
  if(!rc)
    rc = mdm_buf_printf(b, "mdm_events_changes_dropped_total %llu\n",
                        (unsigned long long)es.n_dropped);
  for(size_t k = 0; !rc && k < sizeof(m) / sizeof(m[0]); k++) {
    rc = head(b, m[k].name, k == 3 ? "gauge" : "counter", m[k].help);
    for(i = 0; !rc && i < es.n_sinks && i < 3; i++) {
      const struct mdm_events_sink_stats *s = &es.sinks[i];
      uint64_t v = k == 0 ? s->n_delivered : k == 1 ? s->n_dropped
                 : k == 2 ? s->n_failures : s->spool_bytes;
      rc = mdm_buf_printf(b, "%s{sink=\"%s\"} %llu\n", m[k].name, s->name,
                          (unsigned long long)v);
    }
  }
  return rc;
}

static long rss_bytes(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if(!f)
    return 0;
  if(fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = 0;
  fclose(f);
  return rss * sysconf(_SC_PAGESIZE);
}

mdm_rc mdm_metrics_render(struct mdm_server *srv, struct mdm_buf *b)
{
  mdm_rc rc;
  rc = head(b, "mdm_build_info", "gauge",
            "Always 1; the labels say which mdmd this is.");
  if(!rc)
    rc = mdm_buf_printf(b, "mdm_build_info{version=\"%s\"} 1\n",
                        MDM_VERSION);
  if(!rc)
    rc = render_store(srv, b);
  if(!rc)
    rc = counter(b, "mdm_checkins_total", "Device check-ins answered.",
                 MDM_M_CHECKINS);
  if(!rc)
    rc = counter(b, "mdm_enrollments_total", "Devices enrolled.",
                 MDM_M_ENROLLMENTS);
  if(!rc)
    rc = counter(b, "mdm_enrollments_refused_total",
                 "Enrollments refused: invalid, expired or used-up tokens.",
                 MDM_M_ENROLL_REFUSED);
  if(!rc)
    rc = head(b, "mdm_access_decisions_total", "counter",
              "Conditional-access decisions, by result.");
  if(!rc)
    rc = mdm_buf_printf(
      b,
      "mdm_access_decisions_total{result=\"allow\"} %llu\n"
      "mdm_access_decisions_total{result=\"block\"} %llu\n"
      "mdm_access_decisions_total{result=\"require_mfa\"} %llu\n",
      (unsigned long long)atomic_load(&counters[MDM_M_ACCESS_ALLOW]),
      (unsigned long long)atomic_load(&counters[MDM_M_ACCESS_BLOCK]),
      (unsigned long long)atomic_load(&counters[MDM_M_ACCESS_REQUIRE_MFA]));
  if(!rc)
    rc = head(b, "mdm_mqtt_wakeups_total", "counter",
              "MQTT wake-ups, by result: published (handed to the broker), "
              "failed (refused by the client library), dropped (queue "
              "full or broker down; the devices poll).");
  if(!rc)
    rc = mdm_buf_printf(
      b,
      "mdm_mqtt_wakeups_total{result=\"published\"} %llu\n"
      "mdm_mqtt_wakeups_total{result=\"failed\"} %llu\n"
      "mdm_mqtt_wakeups_total{result=\"dropped\"} %llu\n",
      (unsigned long long)atomic_load(&counters[MDM_M_MQTT_PUBLISHED]),
      (unsigned long long)atomic_load(&counters[MDM_M_MQTT_FAILED]),
      (unsigned long long)atomic_load(&counters[MDM_M_MQTT_DROPPED]));
  if(!rc)
    rc = counter(b, "mdm_store_errors_total",
                 "Requests that failed because the store did.",
                 MDM_M_STORE_ERRORS);
  if(!rc && routes)
    rc = render_http(b);
  if(!rc)
    rc = render_events(srv, b);
  if(!rc)
    rc = head(b, "process_resident_memory_bytes", "gauge",
              "Resident memory of mdmd.");
  if(!rc)
    rc = mdm_buf_printf(b, "process_resident_memory_bytes %ld\n",
                        rss_bytes());
  if(!rc)
    rc = head(b, "process_start_time_seconds", "gauge",
              "When mdmd started, in seconds since the epoch.");
  if(!rc)
    rc = mdm_buf_printf(b, "process_start_time_seconds %lld\n",
                        (long long)started_s);
  return rc;
}
