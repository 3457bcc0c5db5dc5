/*
 * events-bench.c: how many events per second the event stream (server/
 * events.c) turns into JSON lines in the file sink, end to end: change
 * sets handed over as the store's writer hands them (the change hook),
 * the dispatcher building each event once, the file sink's thread writing
 * them.  The store is a stand-in that only answers what the dispatcher
 * asks (a tenant's name, a device's user principal name).
 *
 *   mdm-events-bench [--events N] [--dir DIR] [--set N] [--no-file]
 *                    [--hec URL --hec-token-file FILE] [--syslog URL]
 *                    [-o text|json]
 *
 * Half the changes are compliance changes with two failing settings (two
 * events each), half are command transitions (one event): 1.5 events per
 * change on average.  Sets of --set changes (default 100, the size of a
 * busy group commit; 500 or more would count as a burst, whose events
 * wait for it to end).  With --hec or --syslog those sinks run too, and
 * the time is until the slowest sink has them all (HEC: acknowledged by
 * the receiver; syslog: written to the connection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/log.h"
#include "core/util.h"
#include "server/events.h"
#include "store/store.h"

static mdm_rc fake_tenant_get(struct mdm_store *s, const char *id,
                              struct mdm_tenant *out)
{
  (void)s;
  memset(out, 0, sizeof(*out));
  mdm_strlcpy(out->id, id, sizeof(out->id));
  mdm_strlcpy(out->name, "bench", sizeof(out->name));
  return MDM_OK;
}

static mdm_rc fake_device_upn(struct mdm_store *s, const char *tenant,
                              const char *device_id, char *upn, size_t n)
{
  (void)s;
  (void)tenant;
  snprintf(upn, n, "user-%.8s@corp.example", device_id);
  return MDM_OK;
}

static const struct mdm_store_ops fake_ops = {
  .name = "bench",
  .tenant_get = fake_tenant_get,
  .device_upn = fake_device_upn,
};

static const char REASONS[] =
  "[{\"actual\":false,\"expected\":true,"
  "\"fact\":\"encryption.root_encrypted\","
  "\"message\":\"encryption.root_encrypted is false, expected true\","
  "\"op\":\"is_true\",\"policy\":\"baseline\",\"rule\":\"disk\","
  "\"state\":\"noncompliant\"},{\"actual\":\"11\",\"expected\":\"12\","
  "\"fact\":\"os.version\",\"message\":\"os.version 11 < 12\","
  "\"op\":\"version_ge\",\"policy\":\"baseline\",\"rule\":\"os\","
  "\"state\":\"noncompliant\"}]";

static double now_s(void)
{
  return (double)mdm_mono_ns() / 1e9;
}

static void usage(void)
{
  fputs("usage: mdm-events-bench [--events N] [--dir DIR] [--set N]\n"
        "                        [--no-file]\n"
        "                        [--hec URL --hec-token-file FILE]\n"
        "                        [--syslog URL] [-o text|json]\n", stderr);
  exit(2);
}

int main(int argc, char **argv)
{
  struct mdm_events_config cfg;
  struct mdm_store store = {&fake_ops, NULL, NULL};
  struct mdm_events *ev = NULL;
  struct mdm_events_stats st;
  const char *dir = "/tmp/mdm-events-bench", *hec = NULL, *tok = NULL;
  const char *syslog_url = NULL;
  int is_file = 1;
  long long n_events = 1000000, set_size = 100, i, n_changes, made = 0;
  char path[1100], id[MDM_UUID_LEN + 1];
  int is_json = 0, k;
  double t0, t1;

  for(k = 1; k < argc; k++) {
    if(!strcmp(argv[k], "--events") && k + 1 < argc) {
      if(mdm_parse_int(argv[++k], 1, 100000000, &n_events))
        usage();
    }
    else if(!strcmp(argv[k], "--set") && k + 1 < argc) {
      if(mdm_parse_int(argv[++k], 1, 100000, &set_size))
        usage();
    }
    else if(!strcmp(argv[k], "--dir") && k + 1 < argc)
      dir = argv[++k];
    else if(!strcmp(argv[k], "--hec") && k + 1 < argc)
      hec = argv[++k];
    else if(!strcmp(argv[k], "--hec-token-file") && k + 1 < argc)
      tok = argv[++k];
    else if(!strcmp(argv[k], "--syslog") && k + 1 < argc)
      syslog_url = argv[++k];
    else if(!strcmp(argv[k], "--no-file"))
      is_file = 0;
    else if(!strcmp(argv[k], "-o") && k + 1 < argc)
      is_json = !strcmp(argv[++k], "json");
    else
      usage();
  }
  mdm_log_setup("mdm-events-bench", 0, MDM_LOG_WARN);
  if(mdm_mkdirs(dir, 0700)) {
    fprintf(stderr, "mdm-events-bench: cannot create '%s'\n", dir);
    return 1;
  }
  snprintf(path, sizeof(path), "%s/events.jsonl", dir);
  unlink(path);
  mdm_events_config_defaults(&cfg);
  if(is_file)
    mdm_strlcpy(cfg.file, path, sizeof(cfg.file));
  cfg.file_max_size = 1LL << 40;          /* one file: no rotation cost */
  if(syslog_url && mdm_events_config_set(&cfg, "events-syslog", syslog_url))
    usage();
  if(hec) {
    if(!tok)
      usage();
    if(mdm_events_config_set(&cfg, "events-hec-url", hec))
      usage();
    mdm_strlcpy(cfg.hec_token_file, tok, sizeof(cfg.hec_token_file));
    cfg.hec_batch = 1000;
    cfg.hec_batch_ms = 20;   /* the last, short batch: do not wait */
    cfg.hec_spool_max = 4LL << 30;
  }
  if(!mdm_events_config_enabled(&cfg))
    usage();
  if(mdm_events_new(&cfg, dir, &ev))
    return 1;
  mdm_events_attach(ev, &store);
  n_changes = (n_events * 2 + 2) / 3;     /* 1.5 events per change */
  mdm_uuid_v4(id);

  t0 = now_s();
  for(i = 0; i < n_changes;) {
    struct mdm_change_set *set = mdm_change_set_new(NULL);
    long long j;
    if(!set)
      return 1;
    for(j = 0; j < set_size && i < n_changes; j++, i++) {
      struct mdm_change t;
      char dev[MDM_UUID_LEN + 1], cmd[MDM_UUID_LEN + 1];
      memset(&t, 0, sizeof(t));
      snprintf(dev, sizeof(dev), "%08llx-0000-4000-8000-000000000000",
               (unsigned long long)(i % 100000));
      t.at_ms = mdm_now_ms();
      t.tenant_id = id;
      t.device_id = dev;
      if(i % 2 == 0) {
        t.kind = MDM_CHANGE_COMPLIANCE;
        t.state = "noncompliant";
        t.prev_state = "compliant";
        t.reasons_json = REASONS;
        made += 2;
      }
      else {
        snprintf(cmd, sizeof(cmd), "%08llx-1111-4000-8000-000000000000",
                 (unsigned long long)i & 0xffffffffULL);
        t.kind = MDM_CHANGE_AUDIT;
        t.seq = i;
        t.at = "2026-11-28T16:00:00.000Z";
        t.actor = "device:bench";
        t.action = "command.send";
        t.target = cmd;
        t.command_type = "lock";
        t.hash = "00000000000000000000000000000000"
                 "00000000000000000000000000000000";
        made += 1;
      }
      if(mdm_change_set_add(set, &t))
        return 1;
    }
    mdm_events_on_change(ev, set);
    /* Stay within the queues' bounds: this measures throughput, not
     * drops. */
    for(;;) {
      uint64_t done = UINT64_MAX;
      int s;
      mdm_events_get_stats(ev, &st);
      for(s = 0; s < st.n_sinks; s++)
        if(st.sinks[s].n_delivered < done)
          done = st.sinks[s].n_delivered;
      if(made - (long long)done < 60000)
        break;
      usleep(500);
    }
  }
  for(;;) {
    int s, all = 1;
    mdm_events_get_stats(ev, &st);
    for(s = 0; s < st.n_sinks; s++)
      if((long long)st.sinks[s].n_delivered + (long long)st.sinks[s].n_dropped
         < made)
        all = 0;
    if(all)
      break;
    usleep(200);
  }
  t1 = now_s();
  mdm_events_stop(ev, mdm_mono_ns() / 1000000 + 5000);
  mdm_events_get_stats(ev, &st);
  if(is_json) {
    printf("{\"events\":%lld,\"changes\":%lld,\"seconds\":%.3f,"
           "\"events_per_s\":%.0f", made, n_changes, t1 - t0,
           (double)made / (t1 - t0));
    for(k = 0; k < st.n_sinks; k++)
      printf(",\"%s\":{\"delivered\":%llu,\"dropped\":%llu}",
             st.sinks[k].name, (unsigned long long)st.sinks[k].n_delivered,
             (unsigned long long)st.sinks[k].n_dropped);
    printf("}\n");
  }
  else {
    printf("%lld events (%lld changes) in %.3f s: %.0f events/s\n", made,
           n_changes, t1 - t0, (double)made / (t1 - t0));
    for(k = 0; k < st.n_sinks; k++)
      printf("  %s: %llu delivered, %llu dropped\n", st.sinks[k].name,
             (unsigned long long)st.sinks[k].n_delivered,
             (unsigned long long)st.sinks[k].n_dropped);
  }
  mdm_events_free(ev);
  return 0;
}
