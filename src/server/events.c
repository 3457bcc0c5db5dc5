/*
 * events.c: the event stream's core (events.h): its settings, the bounded
 * inbox the store's change hook feeds, the dispatcher thread that turns
 * changes into events (events_format.c) and hands each to every sink's own
 * bounded queue, and the sinks' shared queue code.  The sinks are
 * events_file.c, events_syslog.c and events_hec.c.
 *
 * Why a hook in the store's writer rather than calls from the handlers:
 * the writer is the one place that knows, for every transaction, exactly
 * which audit records and verdicts became durable (a job that rolled back
 * or a commit that failed reports nothing), covers every path that
 * changes them (check-ins, enrollment, the tenant re-evaluation, label
 * changes, every command transition) without touching the handlers, and
 * runs after the callers have their answers.
 *
 * What it costs the writer: a copy of each change into memory it
 * allocates in chunks (and frees itself, when the dispatcher gives a set
 * back), and one lock-free push per commit.  No lock is shared with the
 * stream's threads, which run at the lowest priority: a preempted one can
 * never hold up a write.  The JSON, the user principal names (read once
 * per device, off the writer) and all I/O happen on the stream's threads;
 * during a burst (a 100,000-device re-evaluation) the dispatcher waits for
 * it to end before it starts, so the two do not share the CPU.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include "core/log.h"
#include "core/util.h"
#include "server/events_int.h"

#define EV_CHANGE_ACCESS 100   /* a private mdm_change kind: access.denied */
#define TENANT_CACHE 64
#define BURST_SET 500           /* a set this large is part of a burst */
#define COALESCE_QUIET_MS 200   /* which lasts until none came for this long */
#define COALESCE_MAX_MS 5000    /* events wait for a burst this long at most */
#define UPN_CACHE_MIN 4096
#define UPN_CACHE_MAX (1 << 20)
#define DROP_LOG_MS 10000

/* ---- settings ----------------------------------------------------------- */

void mdm_events_config_defaults(struct mdm_events_config *c)
{
  memset(c, 0, sizeof(*c));
  c->queue_max = 100000;
  c->file_max_size = 100LL << 20;
  c->file_keep = 5;
  c->syslog_facility = 16;
  mdm_strlcpy(c->hec_index, "mdm_logs", sizeof(c->hec_index));
  mdm_strlcpy(c->hec_sourcetype, "intune_compliance",
              sizeof(c->hec_sourcetype));
  c->hec_batch = 100;
  c->hec_batch_ms = 1000;
  c->hec_spool_max = 256LL << 20;
}

int mdm_events_config_enabled(const struct mdm_events_config *c)
{
  return c->file[0] || c->syslog[0] || c->hec_url[0];
}

/* "1048576", "512k", "100M", "1G" (binary units) within [min, max]. */
static int parse_size(const char *s, long long min, long long max,
                      long long *out)
{
  char digits[32];
  size_t n = strlen(s);
  long long mult = 1, v;
  if(!n || n >= sizeof(digits))
    return -1;
  memcpy(digits, s, n + 1);
  switch(digits[n - 1]) {
  case 'k': case 'K':
    mult = 1LL << 10;
    break;
  case 'm': case 'M':
    mult = 1LL << 20;
    break;
  case 'g': case 'G':
    mult = 1LL << 30;
    break;
  default:
    break;
  }
  if(mult != 1)
    digits[n - 1] = '\0';
  if(mdm_parse_int(digits, 0, max, &v) || v > max / mult || v * mult < min)
    return -1;
  *out = v * mult;
  return 0;
}

/* A name for Splunk's index or sourcetype: printable ASCII, no quotes. */
static int is_plain_name(const char *s, size_t max)
{
  size_t n = 0;
  for(; *s; s++, n++)
    if(*s <= ' ' || *s >= 0x7f || *s == '"' || *s == '\\')
      return 0;
  return n <= max;
}

static int set_url(char *dst, size_t n, const char *val,
                   const char *const *schemes)
{
  const char *const *sc;
  char host[256];
  int port;
  if(!*val) {
    dst[0] = '\0';
    return 0;
  }
  for(sc = schemes; *sc; sc++) {
    size_t sl = strlen(*sc);
    if(!strncmp(val, *sc, sl)) {
      const char *rest = val + sl;
      if(!strcmp(*sc, "http://") || !strcmp(*sc, "https://")) {
        /* host[:port][/path]; no spaces, no credentials */
        if(!*rest || *rest == '/' || strpbrk(val, " \t\r\n@"))
          return -1;
      }
      else if(mdm_ev_parse_hostport(rest, host, sizeof(host), &port))
        return -1;
      return mdm_strlcpy(dst, val, n) ? -1 : 0;
    }
  }
  return -1;
}

int mdm_events_config_set(struct mdm_events_config *c, const char *key,
                          const char *val)
{
  static const char *const syslog_schemes[] = {"tcp://", "tls://", NULL};
  static const char *const hec_schemes[] = {"http://", "https://", NULL};
  long long n;
  if(strncmp(key, "events-", 7))
    return -2;
  if(!strcmp(key, "events-queue")) {
    if(mdm_parse_int(val, 100, 10000000, &n))
      return -1;
    c->queue_max = n;
    return 0;
  }
  if(!strcmp(key, "events-file"))
    return mdm_strlcpy(c->file, val, sizeof(c->file)) ? -1 : 0;
  if(!strcmp(key, "events-file-max-size"))
    return parse_size(val, 1024, 1LL << 40, &c->file_max_size);
  if(!strcmp(key, "events-file-keep")) {
    if(mdm_parse_int(val, 0, 1000, &n))
      return -1;
    c->file_keep = (int)n;
    return 0;
  }
  if(!strcmp(key, "events-syslog"))
    return set_url(c->syslog, sizeof(c->syslog), val, syslog_schemes);
  if(!strcmp(key, "events-syslog-ca-file"))
    return mdm_strlcpy(c->syslog_ca_file, val, sizeof(c->syslog_ca_file))
             ? -1 : 0;
  if(!strcmp(key, "events-syslog-facility")) {
    int f = mdm_syslog_facility(val);
    if(f < 0)
      return -1;
    c->syslog_facility = f;
    return 0;
  }
  if(!strcmp(key, "events-hec-url"))
    return set_url(c->hec_url, sizeof(c->hec_url), val, hec_schemes);
  if(!strcmp(key, "events-hec-token-file"))
    return mdm_strlcpy(c->hec_token_file, val, sizeof(c->hec_token_file))
             ? -1 : 0;
  if(!strcmp(key, "events-hec-ca-file"))
    return mdm_strlcpy(c->hec_ca_file, val, sizeof(c->hec_ca_file)) ? -1 : 0;
  if(!strcmp(key, "events-hec-index")) {
    if(!is_plain_name(val, 80))
      return -1;
    return mdm_strlcpy(c->hec_index, val, sizeof(c->hec_index)) ? -1 : 0;
  }
  if(!strcmp(key, "events-hec-sourcetype")) {
    if(!*val || !is_plain_name(val, 120))
      return -1;
    return mdm_strlcpy(c->hec_sourcetype, val, sizeof(c->hec_sourcetype))
             ? -1 : 0;
  }
  if(!strcmp(key, "events-hec-batch")) {
    if(mdm_parse_int(val, 1, 10000, &n))
      return -1;
    c->hec_batch = (int)n;
    return 0;
  }
  if(!strcmp(key, "events-hec-batch-ms")) {
    if(mdm_parse_int(val, 0, 60000, &n))
      return -1;
    c->hec_batch_ms = (int)n;
    return 0;
  }
  if(!strcmp(key, "events-hec-spool-max"))
    return parse_size(val, 64LL << 10, 1LL << 40, &c->hec_spool_max);
  return -2;
}

/* ---- the sinks' queue --------------------------------------------------- */

int64_t mdm_ev_mono_ms(void)
{
  return mdm_mono_ns() / 1000000;
}

void mdm_ev_writeback(int fd, long long *synced_to, long long end)
{
  if(end < *synced_to)
    *synced_to = 0;  /* a new file */
  if(end - *synced_to < MDM_EV_WRITEBACK)
    return;
  if(sync_file_range(fd, *synced_to, end - *synced_to,
                     SYNC_FILE_RANGE_WRITE) == 0)
    *synced_to = end;
}

void mdm_ev_thread_background(const char *name)
{
  pthread_setname_np(pthread_self(), name);
  /* Linux gives each thread its own nice value; raising it needs no
   * privilege.  Failing to is harmless. */
  if(setpriority(PRIO_PROCESS, (id_t)gettid(), MDM_EV_NICE) != 0)
    mdm_debug("events: cannot lower a thread's priority: %s",
              strerror(errno));
}

/* An absolute CLOCK_MONOTONIC time timeout_ms from now, for timed waits
 * (the conditions use the monotonic clock). */
static struct timespec abs_after(int timeout_ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if(ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

mdm_rc mdm_sink_init(struct mdm_sink *s, const char *name, size_t cap)
{
  pthread_condattr_t ca;
  memset(s, 0, sizeof(*s));
  s->name = name;
  s->cap = cap;
  s->ring = calloc(cap, sizeof(*s->ring));
  if(!s->ring)
    return MDM_ERR_NOMEM;
  pthread_mutex_init(&s->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cond, &ca);
  pthread_cond_init(&s->stop_cond, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&s->n_delivered, 0);
  atomic_init(&s->n_dropped, 0);
  atomic_init(&s->n_failures, 0);
  atomic_init(&s->spool_bytes, 0);
  atomic_init(&s->last_drop_log_ms, 0);
  s->is_ready = 1;
  return MDM_OK;
}

void mdm_sink_release(struct mdm_sink *s)
{
  size_t i;
  if(!s->is_ready)
    return;
  for(i = 0; i < s->n; i++)
    mdm_event_unref(s->ring[(s->head + i) % s->cap]);
  free(s->ring);
  s->ring = NULL;
  s->n = 0;
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  pthread_cond_destroy(&s->stop_cond);
  s->is_ready = 0;
}

void mdm_sink_count_drop(struct mdm_sink *s, uint64_t n, const char *why)
{
  int64_t now = mdm_ev_mono_ms();
  long long last = atomic_load(&s->last_drop_log_ms);
  uint64_t total = atomic_fetch_add(&s->n_dropped, n) + n;
  if((now - last >= DROP_LOG_MS || !last) &&
     atomic_compare_exchange_strong(&s->last_drop_log_ms, &last, now))
    mdm_error("events: %s sink: %llu events lost so far (%s)", s->name,
              (unsigned long long)total, why);
}

void mdm_sink_push(struct mdm_sink *s, struct mdm_event *e)
{
  int is_full;
  pthread_mutex_lock(&s->lock);
  is_full = s->n == s->cap;
  if(!is_full) {
    mdm_event_ref(e);
    s->ring[(s->head + s->n) % s->cap] = e;
    s->n++;
    pthread_cond_signal(&s->cond);
  }
  pthread_mutex_unlock(&s->lock);
  if(is_full)
    mdm_sink_count_drop(s, 1, "its queue is full: the receiver is too slow "
                              "or unreachable");
}

size_t mdm_sink_take(struct mdm_sink *s, struct mdm_event **out, size_t max,
                     int timeout_ms)
{
  size_t k = 0;
  pthread_mutex_lock(&s->lock);
  if(!s->n && !s->is_stopping && timeout_ms != 0) {
    if(timeout_ms < 0)
      pthread_cond_wait(&s->cond, &s->lock);
    else {
      struct timespec ts = abs_after(timeout_ms);
      pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
  }
  while(k < max && s->n) {
    out[k++] = s->ring[s->head];
    s->head = (s->head + 1) % s->cap;
    s->n--;
  }
  pthread_mutex_unlock(&s->lock);
  return k;
}

void mdm_sink_wait(struct mdm_sink *s, int timeout_ms)
{
  struct timespec ts;
  if(timeout_ms <= 0)
    return;
  ts = abs_after(timeout_ms);
  pthread_mutex_lock(&s->lock);
  if(!s->is_stopping)
    pthread_cond_timedwait(&s->stop_cond, &s->lock, &ts);
  pthread_mutex_unlock(&s->lock);
}

int mdm_sink_is_stopping(struct mdm_sink *s, int64_t *deadline_ms)
{
  int r;
  pthread_mutex_lock(&s->lock);
  r = s->is_stopping;
  if(r && deadline_ms)
    *deadline_ms = s->deadline_ms;
  pthread_mutex_unlock(&s->lock);
  return r;
}

size_t mdm_sink_queued(struct mdm_sink *s)
{
  size_t n;
  pthread_mutex_lock(&s->lock);
  n = s->n;
  pthread_mutex_unlock(&s->lock);
  return n;
}

void mdm_sink_request_stop(struct mdm_sink *s, int64_t deadline_ms)
{
  pthread_mutex_lock(&s->lock);
  s->is_stopping = 1;
  s->deadline_ms = deadline_ms;
  pthread_cond_broadcast(&s->cond);
  pthread_cond_broadcast(&s->stop_cond);
  pthread_mutex_unlock(&s->lock);
}

/* ---- the stream --------------------------------------------------------- */

/* The store's writer hands sets over without a lock: a thread of lower
 * priority holding a lock the writer needs could stall every write. */
struct mdm_events {
  struct mdm_store *store;
  _Atomic(struct mdm_change_set *) inbox;  /* newest first */
  atomic_size_t n_queued;       /* changes handed over, not yet dispatched */
  atomic_int n_producers;       /* threads inside enqueue() */
  sem_t wake;                   /* posted for each set, and to stop */
  size_t max;
  atomic_int is_stopping;       /* the dispatcher drains and ends */
  atomic_int is_stopped;        /* nothing more is accepted */
  pthread_t thread;
  int has_thread;
  struct mdm_sink *sinks[3];
  int n_sinks;
  int has_curl;                 /* curl_global_init() done */
  atomic_ullong n_changes, n_events, n_dropped;
  atomic_llong last_drop_log_ms;
  /* The dispatcher's alone: */
  struct mdm_ev_ids ids;
  struct {
    char id[MDM_UUID_LEN + 1];
    char name[64];
  } tenants[TENANT_CACHE];
  int n_tenants, next_tenant;
  struct upn_entry *upns;       /* open addressing, upn_cap a power of 2 */
  size_t upn_cap, n_upns;
  atomic_llong last_big_ms;     /* when a set of BURST_SET or more came */
};

/* A device's user principal name as the dispatcher last read it. */
struct upn_entry {
  uint64_t hash;
  char device_id[MDM_UUID_LEN + 1];   /* "" = free */
  char *upn;                          /* NULL: the device has none */
};

/* The tenant's name for the events' "tenant" field (the id if the store
 * cannot say).  A small cache: tenants are few and never renamed. */
static const char *tenant_name(struct mdm_events *ev, const char *id)
{
  struct mdm_tenant t;
  int i;
  for(i = 0; i < ev->n_tenants; i++)
    if(!strcmp(ev->tenants[i].id, id))
      return ev->tenants[i].name;
  memset(&t, 0, sizeof(t));
  if(ev->store->ops->tenant_get(ev->store, id, &t))
    return NULL;
  i = ev->n_tenants < TENANT_CACHE ? ev->n_tenants++ : ev->next_tenant++;
  ev->next_tenant %= TENANT_CACHE;
  mdm_strlcpy(ev->tenants[i].id, id, sizeof(ev->tenants[i].id));
  mdm_strlcpy(ev->tenants[i].name, t.name, sizeof(ev->tenants[i].name));
  mdm_tenant_release(&t);
  return ev->tenants[i].name;
}

/* ---- user principal names ----
 * The store's writer does not read them (a tenant re-evaluation would pay
 * a wide-row lookup per device on its critical path); the dispatcher does,
 * off that path, and remembers them.  A device.* audit record (an update
 * may change the name) makes it read the device again.  Changes come in
 * commit order, so an event never carries a name older than the change. */

static uint64_t hash_id(const char *s)
{
  uint64_t h = 1469598103934665603ULL;   /* FNV-1a, then mixed */
  for(; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

static void upn_clear(struct mdm_events *ev)
{
  size_t i;
  for(i = 0; i < ev->upn_cap; i++)
    free(ev->upns[i].upn);
  free(ev->upns);
  ev->upns = NULL;
  ev->upn_cap = ev->n_upns = 0;
}

/* The slot of device_id: its entry, or the free one where it would go. */
static struct upn_entry *upn_slot(struct upn_entry *t, size_t cap,
                                  const char *device_id, uint64_t h)
{
  size_t i = (size_t)h & (cap - 1);
  while(t[i].device_id[0] &&
        (t[i].hash != h || strcmp(t[i].device_id, device_id)))
    i = (i + 1) & (cap - 1);
  return &t[i];
}

static void upn_forget(struct mdm_events *ev, const char *device_id)
{
  struct upn_entry *e;
  size_t i, j;
  if(!ev->upn_cap)
    return;
  e = upn_slot(ev->upns, ev->upn_cap, device_id, hash_id(device_id));
  if(!e->device_id[0])
    return;
  /* Delete from a linear-probing table: re-place what follows. */
  free(e->upn);
  e->upn = NULL;
  e->device_id[0] = '\0';
  ev->n_upns--;
  i = (size_t)(e - ev->upns);
  for(j = (i + 1) & (ev->upn_cap - 1); ev->upns[j].device_id[0];
      j = (j + 1) & (ev->upn_cap - 1)) {
    struct upn_entry moved = ev->upns[j], *to;
    ev->upns[j].device_id[0] = '\0';
    ev->upns[j].upn = NULL;
    to = upn_slot(ev->upns, ev->upn_cap, moved.device_id, moved.hash);
    *to = moved;
  }
}

/* Room for one more entry: grow, or start afresh at the bound. */
static int upn_reserve(struct mdm_events *ev)
{
  struct upn_entry *t;
  size_t cap, i;
  if(ev->upn_cap && (ev->n_upns + 1) * 10 < ev->upn_cap * 7)
    return 0;
  if(ev->upn_cap >= UPN_CACHE_MAX)
    upn_clear(ev);
  cap = ev->upn_cap ? ev->upn_cap * 2 : UPN_CACHE_MIN;
  t = calloc(cap, sizeof(*t));
  if(!t)
    return -1;
  for(i = 0; i < ev->upn_cap; i++)
    if(ev->upns[i].device_id[0])
      *upn_slot(t, cap, ev->upns[i].device_id, ev->upns[i].hash) =
        ev->upns[i];
  free(ev->upns);
  ev->upns = t;
  ev->upn_cap = cap;
  return 0;
}

static const char *upn_of(struct mdm_events *ev, const char *tenant_id,
                          const char *device_id)
{
  struct upn_entry *e;
  uint64_t h = hash_id(device_id);
  char upn[512];
  if(ev->upn_cap) {
    e = upn_slot(ev->upns, ev->upn_cap, device_id, h);
    if(e->device_id[0])
      return e->upn;
  }
  if(ev->store->ops->device_upn(ev->store, tenant_id, device_id, upn,
                                sizeof(upn)) ||
     strlen(device_id) > MDM_UUID_LEN || upn_reserve(ev))
    return NULL;  /* unknown now; not remembered */
  e = upn_slot(ev->upns, ev->upn_cap, device_id, h);
  e->hash = h;
  mdm_strlcpy(e->device_id, device_id, sizeof(e->device_id));
  e->upn = upn[0] ? strdup(upn) : NULL;
  ev->n_upns++;
  return e->upn;
}

static void fan_out(struct mdm_events *ev, struct mdm_event *e)
{
  int i;
  atomic_fetch_add(&ev->n_events, 1);
  for(i = 0; i < ev->n_sinks; i++)
    mdm_sink_push(ev->sinks[i], e);
}

static void dispatch(struct mdm_events *ev, struct mdm_change *ch)
{
  const char *name = tenant_name(ev, ch->tenant_id);
  struct mdm_ev_list l;
  mdm_rc rc;
  size_t i;

  if(!ch->upn && ch->device_id) {
    if(ch->kind == MDM_CHANGE_AUDIT && !strncmp(ch->action, "device.", 7))
      upn_forget(ev, ch->device_id);
    ch->upn = upn_of(ev, ch->tenant_id, ch->device_id);
  }
  if((int)ch->kind == EV_CHANGE_ACCESS) {
    struct mdm_event *e = NULL;
    rc = mdm_ev_access(ch->at_ms, ch->tenant_id, name, ch->device_id,
                       ch->upn, ch->detail_json, &ev->ids, &e);
    if(!rc) {
      fan_out(ev, e);
      mdm_event_unref(e);
    }
  }
  else {
    l.n = 0;
    rc = mdm_ev_from_change(ch, name, &ev->ids, &l);
    for(i = 0; i < l.n; i++)
      fan_out(ev, l.items[i]);
    if(l.n_merged)
      mdm_warn("events: device %s: %zu more failing settings than one "
               "change reports", ch->device_id ? ch->device_id : "-",
               l.n_merged);
    mdm_ev_list_release(&l);
  }
  if(rc)
    mdm_error("events: cannot build the event of a %s change: %s",
              ch->kind == MDM_CHANGE_COMPLIANCE ? "compliance" : "audit",
              mdm_strerror(rc));
}

/* Take every set handed over, oldest first. */
static struct mdm_change_set *take_inbox(struct mdm_events *ev)
{
  struct mdm_change_set *l = atomic_exchange(&ev->inbox, NULL), *r = NULL;
  while(l) {
    struct mdm_change_set *next = l->next;
    l->next = r;
    r = l;
    l = next;
  }
  return r;
}

/* Wait for the next set, or stop; 0 when timeout_ms (>= 0) passed. */
static int wait_wake(struct mdm_events *ev, int timeout_ms)
{
  struct timespec ts;
  if(timeout_ms < 0) {
    while(sem_wait(&ev->wake))
      if(errno != EINTR)
        return 0;
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if(ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  while(sem_clockwait(&ev->wake, CLOCK_MONOTONIC, &ts))
    if(errno != EINTR)
      return 0;
  return 1;
}

/* Are changes pouring in?  A tenant re-evaluation or a bulk command
 * commits thousands per transaction; check-ins commit a few. */
static int is_burst(struct mdm_events *ev, int64_t now)
{
  return now - atomic_load(&ev->last_big_ms) < COALESCE_QUIET_MS;
}

static void *dispatcher_main(void *arg)
{
  struct mdm_events *ev = arg;
  struct mdm_change_set *head = NULL, *tail = NULL;
  int64_t defer_from = 0;

  mdm_ev_thread_background("mdm-ev-dispatch");
  for(;;) {
    struct mdm_change_set *set = take_inbox(ev);
    struct mdm_change *ch;
    int64_t now;
    if(set) {
      if(tail)
        tail->next = set;
      else
        head = set;
      while(set->next)
        set = set->next;
      tail = set;
    }
    if(!head) {
      if(atomic_load(&ev->is_stopping))
        break;
      wait_wake(ev, -1);
      continue;
    }
    /* While a burst lasts, events wait (so that building them does not
     * compete with it for the CPU), unless the queue is nearly full or
     * they have waited COALESCE_MAX_MS. */
    now = mdm_ev_mono_ms();
    if(!atomic_load(&ev->is_stopping) && is_burst(ev, now) &&
       atomic_load(&ev->n_queued) < ev->max / 10 * 9) {
      if(!defer_from)
        defer_from = now;
      if(now - defer_from < COALESCE_MAX_MS) {
        wait_wake(ev, COALESCE_QUIET_MS);
        continue;
      }
    }
    else
      defer_from = 0;
    set = head;
    head = set->next;
    if(!head)
      tail = NULL;
    for(ch = set->first; ch; ch = ch->next)
      dispatch(ev, ch);
    atomic_fetch_sub(&ev->n_queued, set->n);
    mdm_change_set_done(set);
  }
  return NULL;
}

/* Queue a set for the dispatcher, or give it back (counted as lost) when
 * stopped or when the queue holds its bound.  Never blocks. */
static void enqueue(struct mdm_events *ev, struct mdm_change_set *set)
{
  size_t n = set->n;
  struct mdm_change_set *top;
  atomic_fetch_add(&ev->n_producers, 1);
  atomic_fetch_add(&ev->n_changes, n);
  if(atomic_load(&ev->is_stopped) ||
     atomic_load(&ev->n_queued) + n > ev->max) {
    int64_t now = mdm_ev_mono_ms();
    long long last = atomic_load(&ev->last_drop_log_ms);
    uint64_t total = atomic_fetch_add(&ev->n_dropped, n) + n;
    atomic_fetch_sub(&ev->n_producers, 1);
    mdm_change_set_done(set);
    if(!atomic_load(&ev->is_stopped) &&
       (now - last >= DROP_LOG_MS || !last) &&
       atomic_compare_exchange_strong(&ev->last_drop_log_ms, &last, now))
      mdm_error("events: %llu changes lost so far: the event queue is full "
                "(--events-queue %zu)", (unsigned long long)total, ev->max);
    return;
  }
  atomic_fetch_add(&ev->n_queued, n);
  if(n >= BURST_SET)
    atomic_store(&ev->last_big_ms, mdm_ev_mono_ms());
  top = atomic_load(&ev->inbox);
  do
    set->next = top;
  while(!atomic_compare_exchange_weak(&ev->inbox, &top, set));
  sem_post(&ev->wake);
  atomic_fetch_sub(&ev->n_producers, 1);
}

void mdm_events_on_change(void *ctx, struct mdm_change_set *set)
{
  enqueue(ctx, set);
}

void mdm_events_access_denied(struct mdm_events *ev, const char *tenant_id,
                              const char *device_id, const char *upn,
                              json_t *detail)
{
  struct mdm_change t;
  struct mdm_change_set *set;
  char *d = NULL;
  if(!ev || !tenant_id)
    return;
  if(json_is_object(detail))
    d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
  memset(&t, 0, sizeof(t));
  t.kind = (enum mdm_change_kind)EV_CHANGE_ACCESS;
  t.at_ms = mdm_now_ms();
  t.tenant_id = tenant_id;
  t.device_id = device_id;
  t.upn = upn;
  t.detail_json = d;
  set = mdm_change_set_new(NULL);
  if(set && !mdm_change_set_add(set, &t))
    enqueue(ev, set);
  else {
    mdm_change_set_free(set);
    atomic_fetch_add(&ev->n_dropped, 1);
  }
  free(d);
}

static void hostname_of(char *out, size_t n)
{
  if(gethostname(out, n) != 0 || !out[0])
    mdm_strlcpy(out, "localhost", n);
  out[n - 1] = '\0';
}

mdm_rc mdm_events_new(const struct mdm_events_config *cfg,
                      const char *data_dir, struct mdm_events **out)
{
  struct mdm_events *ev;
  char host[256];
  uint64_t seed = 0;
  mdm_rc rc = MDM_OK;
  int i;

  *out = NULL;
  ev = calloc(1, sizeof(*ev));
  if(!ev)
    return MDM_ERR_NOMEM;
  /* Changes waiting for the dispatcher: twice a sink's bound, so a
   * 100,000-device re-evaluation fits while the dispatcher lets it end. */
  ev->max = (size_t)cfg->queue_max * 2;
  atomic_init(&ev->inbox, NULL);
  atomic_init(&ev->n_queued, 0);
  atomic_init(&ev->n_producers, 0);
  atomic_init(&ev->is_stopping, 0);
  atomic_init(&ev->is_stopped, 0);
  atomic_init(&ev->last_big_ms, 0);
  sem_init(&ev->wake, 0, 0);
  atomic_init(&ev->n_changes, 0);
  atomic_init(&ev->n_events, 0);
  atomic_init(&ev->n_dropped, 0);
  atomic_init(&ev->last_drop_log_ms, 0);
  if(mdm_random(&seed, sizeof(seed)))
    seed = (uint64_t)mdm_now_ms() ^ ((uint64_t)getpid() << 32);
  mdm_ev_ids_init(&ev->ids, seed);
  hostname_of(host, sizeof(host));
  if(cfg->hec_url[0]) {
    if(curl_global_init(CURL_GLOBAL_DEFAULT)) {
      fprintf(stderr, "mdmd: cannot initialize libcurl\n");
      rc = MDM_ERR_INTERNAL;
      goto fail;
    }
    ev->has_curl = 1;
  }
  for(i = 0; !rc && i < 3; i++) {
    struct mdm_sink *s = NULL;
    if(i == 0 && cfg->file[0])
      rc = mdm_sink_file_new(cfg, &s);
    else if(i == 1 && cfg->syslog[0])
      rc = mdm_sink_syslog_new(cfg, host, &s);
    else if(i == 2 && cfg->hec_url[0])
      rc = mdm_sink_hec_new(cfg, data_dir, host, &s);
    if(s)
      ev->sinks[ev->n_sinks++] = s;
  }
  if(rc)
    goto fail;
  for(i = 0; i < ev->n_sinks; i++) {
    rc = ev->sinks[i]->start(ev->sinks[i]);
    if(rc) {
      fprintf(stderr, "mdmd: cannot start the %s event sink\n",
              ev->sinks[i]->name);
      goto fail;
    }
  }
  if(pthread_create(&ev->thread, NULL, dispatcher_main, ev) != 0) {
    fprintf(stderr, "mdmd: cannot start the event dispatcher\n");
    rc = MDM_ERR_INTERNAL;
    goto fail;
  }
  ev->has_thread = 1;
  for(i = 0; i < ev->n_sinks; i++)
    mdm_info("events: %s sink started", ev->sinks[i]->name);
  *out = ev;
  return MDM_OK;
fail:
  mdm_events_free(ev);
  return rc;
}

void mdm_events_attach(struct mdm_events *ev, struct mdm_store *st)
{
  if(!ev || !st)
    return;
  ev->store = st;
  mdm_store_set_change_hook(st, mdm_events_on_change, ev);
}

void mdm_events_stop(struct mdm_events *ev, int64_t deadline_ms)
{
  struct mdm_events_stats s;
  struct mdm_change_set *left;
  int i;
  if(!ev || atomic_load(&ev->is_stopped))
    return;
  atomic_store(&ev->is_stopping, 1);
  sem_post(&ev->wake);
  if(ev->has_thread) {
    pthread_join(ev->thread, NULL);
    ev->has_thread = 0;
  }
  /* From now on sets are given back at once.  One handed over while the
   * dispatcher ended is given back here (its producers never block). */
  atomic_store(&ev->is_stopped, 1);
  while(atomic_load(&ev->n_producers))
    sched_yield();
  left = take_inbox(ev);
  while(left) {
    struct mdm_change_set *next = left->next;
    atomic_fetch_add(&ev->n_dropped, left->n);
    mdm_change_set_done(left);
    left = next;
  }
  /* All sinks drain at once, each by the same deadline. */
  for(i = 0; i < ev->n_sinks; i++)
    mdm_sink_request_stop(ev->sinks[i], deadline_ms);
  for(i = 0; i < ev->n_sinks; i++)
    if(ev->sinks[i]->stop)
      ev->sinks[i]->stop(ev->sinks[i]);
  mdm_events_get_stats(ev, &s);
  for(i = 0; i < s.n_sinks; i++)
    mdm_info("events: %s sink stopped: %llu delivered, %llu lost, "
             "%llu failures%s", s.sinks[i].name,
             (unsigned long long)s.sinks[i].n_delivered,
             (unsigned long long)s.sinks[i].n_dropped,
             (unsigned long long)s.sinks[i].n_failures,
             s.sinks[i].spool_bytes ? " (the rest stays in its spool)" : "");
}

void mdm_events_free(struct mdm_events *ev)
{
  int i, has_curl;
  if(!ev)
    return;
  mdm_events_stop(ev, mdm_ev_mono_ms());
  for(i = 0; i < ev->n_sinks; i++)
    ev->sinks[i]->destroy(ev->sinks[i]);
  has_curl = ev->has_curl;
  upn_clear(ev);
  mdm_ev_ids_release(&ev->ids);
  sem_destroy(&ev->wake);
  free(ev);
  if(has_curl)
    curl_global_cleanup();
}

void mdm_events_get_stats(struct mdm_events *ev, struct mdm_events_stats *out)
{
  int i;
  memset(out, 0, sizeof(*out));
  if(!ev)
    return;
  out->n_changes = atomic_load(&ev->n_changes);
  out->n_events = atomic_load(&ev->n_events);
  out->n_dropped = atomic_load(&ev->n_dropped);
  for(i = 0; i < ev->n_sinks; i++) {
    struct mdm_sink *s = ev->sinks[i];
    out->sinks[i].name = s->name;
    out->sinks[i].n_delivered = atomic_load(&s->n_delivered);
    out->sinks[i].n_dropped = atomic_load(&s->n_dropped);
    out->sinks[i].n_failures = atomic_load(&s->n_failures);
    out->sinks[i].spool_bytes = atomic_load(&s->spool_bytes);
    out->n_sinks = i + 1;
  }
}
