/*
 * main.c: the mdmd program: flags and environment, the `tenant`
 * subcommands, start-up (store, bootstrap, HTTP) and a draining shutdown on
 * SIGTERM/SIGINT (CONTRACT §1).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "core/log.h"
#include "core/util.h"
#include "crypto/pki.h"
#include "server/ca.h"
#include "server/events.h"
#include "server/metrics.h"
#include "server/policyset.h"
#include "server/push.h"
#include "server/server.h"
#include "server/tls.h"

static const char usage_text[] =
  "usage: mdmd [--config FILE] [--listen HOST:PORT] [--data-dir DIR]\n"
  "            [--db URL] [--log-format json|text] [--checkin-interval SECONDS]\n"
  "            [--tls-cert FILE --tls-key FILE] [--pin-ca FILE]\n"
  "            [--mqtt mqtt://HOST:PORT [--mqtt-admin-user USER]\n"
  "             --mqtt-admin-password-file FILE] [--mqtt-rate N]\n"
  "       mdmd tenant create NAME [--region REGION] [--data-dir DIR | --db URL]\n"
  "       mdmd tenant list [--data-dir DIR | --db URL]\n"
  "\n"
  "The mdm control plane server.\n"
  "\n"
  "  --listen HOST:PORT      address to serve on (default 127.0.0.1:8080;\n"
  "                          port 0 picks a free one and prints it)\n"
  "  --data-dir DIR          state directory (default ./var)\n"
  "  --db URL                store: sqlite:PATH (default sqlite:DIR/mdm.db)\n"
  "  --log-format json|text  log lines on stderr (default text)\n"
  "  --tls-cert FILE         serve HTTPS with this PEM chain (leaf first;\n"
  "                          the last certificate is the CA devices pin)\n"
  "  --tls-key FILE          its private key (mode 0600 or stricter)\n"
  "  --pin-ca FILE           the CA that enrollment tokens pin instead (for\n"
  "                          a TLS-terminating proxy in front of mdmd)\n"
  "  --checkin-interval N    seconds between agent check-ins (default 300)\n"
  "  --mqtt URL              wake devices through this MQTT broker\n"
  "                          (mosquitto with mdm's auth plugin; see\n"
  "                          deploy/mosquitto/README.md); without it\n"
  "                          devices only poll\n"
  "  --mqtt-admin-user USER  the user mdmd logs in as (default mdmd)\n"
  "  --mqtt-admin-password-file FILE\n"
  "                          the broker secret: mdmd's password, from\n"
  "                          which device passwords are derived (file\n"
  "                          mode 0600 or stricter, 16+ characters)\n"
  "  --mqtt-rate N           wake-ups per second at most (default 10000)\n"
  "  --trusted-proxies ADDR[,ADDR...]  proxies (IP addresses) whose\n"
  "                          X-Client-Cert header identifies a device on\n"
  "                          GET /v1/access/check (default: none)\n"
  "  --device-cert-days N    validity of device certificates issued from\n"
  "                          their CSR: N days, or with a unit: 90d, 12h,\n"
  "                          30m, 45s (default 90)\n"
  "  --region REGION         the region of tenants created without one\n"
  "                          (default 'default'; a /metrics label)\n"
  "  --metrics-token-file FILE  require this bearer token (the file's first\n"
  "                          line; mode 0600) on GET /metrics\n"
  "  --metrics-label-keys K[,K...]  device labels exported by\n"
  "                          mdm_device_compliance_by_label (default\n"
  "                          department; '' for none)\n"
  "\n"
  "The event stream for a SIEM (docs/events.md); any sinks at once:\n"
  "  --events-file FILE      JSON lines to FILE, rotated by size\n"
  "  --events-file-max-size BYTES  rotate past this (default 100M)\n"
  "  --events-file-keep N    rotated files kept (default 5)\n"
  "  --events-syslog URL     RFC 5424 to tcp://HOST:PORT or tls://HOST:PORT\n"
  "  --events-syslog-ca-file FILE  CA that signed the tls:// receiver\n"
  "  --events-syslog-facility NAME  (default local0)\n"
  "  --events-hec-url URL    Splunk HEC, http(s)://HOST:PORT\n"
  "  --events-hec-token-file FILE  its token (mode 0600 or stricter)\n"
  "  --events-hec-ca-file FILE     CA that signed the https:// receiver\n"
  "  --events-hec-index NAME (default mdm_logs)\n"
  "  --events-hec-sourcetype NAME  of compliance events (default\n"
  "                          intune_compliance)\n"
  "  --events-hec-batch N    events per request (default 100)\n"
  "  --events-hec-batch-ms MS  longest wait to fill a batch (default 1000)\n"
  "  --events-hec-spool-max BYTES  spool cap in the data dir (default 256M)\n"
  "  --events-queue N        events waiting per sink at most (default\n"
  "                          100000); beyond, they are dropped and counted\n"
  "\n"
  "  --config FILE           read KEY = VALUE lines (listen, data-dir, db,\n"
  "                          log-format, checkin-interval, mqtt, ...)\n"
  "  --help, --version\n"
  "\n"
  "Every flag may also come from the environment as MDM_<FLAG>, e.g.\n"
  "MDM_LISTEN, MDM_DATA_DIR, MDM_DB. Flags win over the environment, the\n"
  "environment over the config file.\n";

static void die_usage(const char *fmt, const char *arg)
{
  fprintf(stderr, "mdmd: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'mdmd --help')\n");
  exit(2);
}

void mdm_config_defaults(struct mdm_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  mdm_strlcpy(cfg->listen, "127.0.0.1:8080", sizeof(cfg->listen));
  mdm_strlcpy(cfg->data_dir, "./var", sizeof(cfg->data_dir));
  cfg->checkin_interval_s = 300;
  cfg->device_token_ttl_s = 365LL * 86400;
  cfg->max_connections = 4096;
  mdm_strlcpy(cfg->mqtt_admin_user, "mdmd", sizeof(cfg->mqtt_admin_user));
  cfg->mqtt_rate = 10000;
  mdm_strlcpy(cfg->region, "default", sizeof(cfg->region));
  cfg->device_cert_s = 90LL * 86400;
  mdm_strlcpy(cfg->metrics_label_keys, "department",
              sizeof(cfg->metrics_label_keys));
  mdm_events_config_defaults(&cfg->events);
}

/* A certificate lifetime: N days, or N with a unit, "90d", "12h", "30m",
 * "45s" (short lifetimes are for tests and for fleets that renew often);
 * ten seconds to ten years. */
static int parse_lifetime(const char *val, int64_t *out)
{
  char num[24];
  size_t len = strlen(val);
  long long n, unit = 86400;
  if(!len || len >= sizeof(num))
    return -1;
  memcpy(num, val, len + 1);
  switch(num[len - 1]) {
  case 'd': unit = 86400; num[--len] = '\0'; break;
  case 'h': unit = 3600; num[--len] = '\0'; break;
  case 'm': unit = 60; num[--len] = '\0'; break;
  case 's': unit = 1; num[--len] = '\0'; break;
  default: break;
  }
  if(mdm_parse_int(num, 1, MDM_CERT_LIFETIME_MAX, &n) ||
     n * unit < MDM_CERT_LIFETIME_MIN || n * unit > MDM_CERT_LIFETIME_MAX)
    return -1;
  *out = (int64_t)(n * unit);
  return 0;
}

/* Apply one setting by its flag name (without "--"). */
static int config_set(struct mdm_config *cfg, const char *key,
                      const char *val)
{
  long long n;
  if(!strcmp(key, "listen"))
    return mdm_strlcpy(cfg->listen, val, sizeof(cfg->listen)) ? -1 : 0;
  if(!strcmp(key, "data-dir"))
    return mdm_strlcpy(cfg->data_dir, val, sizeof(cfg->data_dir)) ? -1 : 0;
  if(!strcmp(key, "db"))
    return mdm_strlcpy(cfg->db, val, sizeof(cfg->db)) ? -1 : 0;
  if(!strcmp(key, "log-format")) {
    if(strcmp(val, "json") && strcmp(val, "text"))
      return -1;
    cfg->log_json = !strcmp(val, "json");
    return 0;
  }
  if(!strcmp(key, "checkin-interval")) {
    if(mdm_parse_int(val, 5, 86400, &n))
      return -1;
    cfg->checkin_interval_s = (int)n;
    return 0;
  }
  if(!strcmp(key, "mqtt")) {
    if(*val && strncmp(val, "mqtt://", 7))
      return -1;
    return mdm_strlcpy(cfg->mqtt, val, sizeof(cfg->mqtt)) ? -1 : 0;
  }
  if(!strcmp(key, "mqtt-admin-user"))
    return !*val || mdm_strlcpy(cfg->mqtt_admin_user, val,
                                sizeof(cfg->mqtt_admin_user)) ? -1 : 0;
  if(!strcmp(key, "mqtt-admin-password-file"))
    return mdm_strlcpy(cfg->mqtt_admin_password_file, val,
                       sizeof(cfg->mqtt_admin_password_file)) ? -1 : 0;
  if(!strcmp(key, "trusted-proxies"))
    return mdm_strlcpy(cfg->trusted_proxies, val,
                       sizeof(cfg->trusted_proxies)) ? -1 : 0;
  if(!strcmp(key, "device-cert-days"))
    return parse_lifetime(val, &cfg->device_cert_s);
  if(!strcmp(key, "tls-cert"))
    return mdm_strlcpy(cfg->tls_cert, val, sizeof(cfg->tls_cert)) ? -1 : 0;
  if(!strcmp(key, "tls-key"))
    return mdm_strlcpy(cfg->tls_key, val, sizeof(cfg->tls_key)) ? -1 : 0;
  if(!strcmp(key, "pin-ca"))
    return mdm_strlcpy(cfg->pin_ca, val, sizeof(cfg->pin_ca)) ? -1 : 0;
  if(!strcmp(key, "region")) {
    if(!*val || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
       strlen(val))
      return -1;
    return mdm_strlcpy(cfg->region, val, sizeof(cfg->region)) ? -1 : 0;
  }
  if(!strcmp(key, "metrics-token-file"))
    return mdm_strlcpy(cfg->metrics_token_file, val,
                       sizeof(cfg->metrics_token_file)) ? -1 : 0;
  if(!strcmp(key, "metrics-label-keys")) {
    if(strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
              "0123456789_.-/,") != strlen(val))
      return -1;
    return mdm_strlcpy(cfg->metrics_label_keys, val,
                       sizeof(cfg->metrics_label_keys)) ? -1 : 0;
  }
  if(!strcmp(key, "mqtt-rate")) {
    if(mdm_parse_int(val, 1, 1000000, &n))
      return -1;
    cfg->mqtt_rate = (int)n;
    return 0;
  }
  return mdm_events_config_set(&cfg->events, key, val);
}

static const char *const env_keys[] = {"listen", "data-dir", "db",
                                       "log-format", "checkin-interval",
                                       "mqtt", "mqtt-admin-user",
                                       "mqtt-admin-password-file",
                                       "mqtt-rate", "region",
                                       "device-cert-days", "trusted-proxies",
                                       "tls-cert", "tls-key", "pin-ca",
                                       "metrics-token-file",
                                       "metrics-label-keys", "events-queue",
                                       "events-file", "events-file-max-size",
                                       "events-file-keep", "events-syslog",
                                       "events-syslog-ca-file",
                                       "events-syslog-facility",
                                       "events-hec-url",
                                       "events-hec-token-file",
                                       "events-hec-ca-file",
                                       "events-hec-index",
                                       "events-hec-sourcetype",
                                       "events-hec-batch",
                                       "events-hec-batch-ms",
                                       "events-hec-spool-max", NULL};

static void config_from_env(struct mdm_config *cfg)
{
  const char *const *k;
  for(k = env_keys; *k; k++) {
    char name[64];
    const char *v;
    size_t i;
    snprintf(name, sizeof(name), "MDM_%s", *k);
    for(i = 4; name[i]; i++)
      name[i] = name[i] == '-' ? '_' : (char)(name[i] >= 'a' && name[i] <= 'z'
                                                ? name[i] - 32 : name[i]);
    v = getenv(name);
    if(v && *v && config_set(cfg, *k, v)) {
      fprintf(stderr, "mdmd: invalid value in %s\n", name);
      exit(2);
    }
  }
}

static void config_from_file(struct mdm_config *cfg, const char *path)
{
  char *text = NULL, *line, *save = NULL;
  int lineno = 0;
  if(mdm_file_read(path, 64 * 1024, &text, NULL)) {
    fprintf(stderr, "mdmd: cannot read config file '%s'\n", path);
    exit(1);
  }
  for(line = strtok_r(text, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save)) {
    char *eq, *k, *v, *end;
    lineno++;
    while(*line == ' ' || *line == '\t')
      line++;
    if(!*line || *line == '#')
      continue;
    eq = strchr(line, '=');
    if(!eq) {
      fprintf(stderr, "mdmd: '%s': line %d: expected KEY = VALUE\n", path,
              lineno);
      exit(1);
    }
    *eq = '\0';
    k = line;
    v = eq + 1;
    end = eq;
    while(end > k && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    while(*v == ' ' || *v == '\t')
      v++;
    end = v + strlen(v);
    while(end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
      *--end = '\0';
    if(config_set(cfg, k, v)) {
      fprintf(stderr, "mdmd: '%s': line %d: invalid setting '%s'\n", path,
              lineno, k);
      exit(1);
    }
  }
  free(text);
}

/* Parse flags (argv[first..]); "config" is taken first so flags win. */
static void parse_flags(struct mdm_config *cfg, int argc, char **argv,
                        int first, const char **region, const char **name)
{
  int i;
  for(i = first; i < argc; i++)
    if(!strcmp(argv[i], "--config") && i + 1 < argc)
      config_from_file(cfg, argv[i + 1]);
  config_from_env(cfg);
  for(i = first; i < argc; i++) {
    const char *a = argv[i], *v;
    if(!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      exit(0);
    }
    if(!strcmp(a, "--version")) {
      printf("mdmd %s\n", MDM_VERSION);
      exit(0);
    }
    if(strncmp(a, "--", 2)) {
      if(name && !*name) {
        *name = a;
        continue;
      }
      die_usage("unexpected argument '%s'", a);
    }
    if(i + 1 >= argc) {
      if(config_set(cfg, a + 2, "") == -2 && strcmp(a, "--config") &&
         strcmp(a, "--region"))
        die_usage("unknown flag '%s'", a);
      die_usage("flag '%s' needs a value", a);
    }
    v = argv[++i];
    if(!strcmp(a, "--config"))
      continue;
    if(!strcmp(a, "--region") && region) {
      *region = v;
      continue;
    }
    switch(config_set(cfg, a + 2, v)) {
    case 0:
      break;
    case -1:
      fprintf(stderr, "mdmd: invalid value for %s: '%s'\n", a, v);
      exit(2);
    default:
      die_usage("unknown flag '%s'", a);
    }
  }
}

static mdm_rc open_store(struct mdm_config *cfg, struct mdm_store **st)
{
  char url[1300];
  mdm_rc rc;
  if(mdm_mkdirs(cfg->data_dir, 0700)) {
    fprintf(stderr, "mdmd: cannot create data dir '%s': %s\n", cfg->data_dir,
            strerror(errno));
    return MDM_ERR_IO;
  }
  chmod(cfg->data_dir, 0700);
  if(cfg->db[0])
    mdm_strlcpy(url, cfg->db, sizeof(url));
  else
    snprintf(url, sizeof(url), "sqlite:%s/mdm.db", cfg->data_dir);
  rc = mdm_store_open(url, st);
  if(rc == MDM_ERR_UNSUPPORTED)
    fprintf(stderr, "mdmd: store '%s' is not supported by this version yet\n",
            url);
  else if(rc)
    fprintf(stderr, "mdmd: cannot open store '%s': %s\n", url,
            mdm_strerror(rc));
  return rc;
}

/* Start the MQTT publisher when a broker is configured.  The admin
 * password comes from a file only mdmd's user may read; it is never
 * logged. */
/* /metrics: the per-route tables, and the token when one is required. */
static mdm_rc start_metrics(struct mdm_server *srv)
{
  struct mdm_config *cfg = &srv->cfg;
  struct stat sb;
  char *tok = NULL;
  size_t len = 0;
  mdm_rc rc = mdm_metrics_init();
  if(rc || !cfg->metrics_token_file[0])
    return rc;
  if(stat(cfg->metrics_token_file, &sb) ||
     mdm_file_read(cfg->metrics_token_file, 4096, &tok, &len)) {
    fprintf(stderr, "mdmd: cannot read '%s'\n", cfg->metrics_token_file);
    return MDM_ERR_IO;
  }
  if(sb.st_mode & 077) {
    fprintf(stderr, "mdmd: '%s' must not be readable by group or others "
            "(chmod 600)\n", cfg->metrics_token_file);
    free(tok);
    return MDM_ERR_FORBIDDEN;
  }
  tok[strcspn(tok, "\r\n")] = '\0';
  rc = strlen(tok) < 16 || mdm_strlcpy(cfg->metrics_token, tok,
                                       sizeof(cfg->metrics_token))
       ? MDM_ERR_INVAL : MDM_OK;
  if(rc)
    fprintf(stderr, "mdmd: '%s': the metrics token must be 16 to 255 "
            "characters on the first line\n", cfg->metrics_token_file);
  OPENSSL_cleanse(tok, len);
  free(tok);
  return rc;
}

static mdm_rc start_push(struct mdm_server *srv)
{
  struct mdm_config *cfg = &srv->cfg;
  struct mdm_push_config pc;
  struct stat sb;
  char *pw = NULL;
  size_t len = 0;
  mdm_rc rc;

  if(!cfg->mqtt[0])
    return MDM_OK;
  if(!cfg->mqtt_admin_password_file[0]) {
    fprintf(stderr, "mdmd: --mqtt needs --mqtt-admin-password-file\n");
    return MDM_ERR_INVAL;
  }
  if(stat(cfg->mqtt_admin_password_file, &sb) ||
     mdm_file_read(cfg->mqtt_admin_password_file, 4096, &pw, &len)) {
    fprintf(stderr, "mdmd: cannot read '%s'\n",
            cfg->mqtt_admin_password_file);
    return MDM_ERR_IO;
  }
  if(sb.st_mode & 077) {
    fprintf(stderr, "mdmd: '%s' must not be readable by group or others "
            "(chmod 600)\n", cfg->mqtt_admin_password_file);
    free(pw);
    return MDM_ERR_FORBIDDEN;
  }
  while(len && (pw[len - 1] == '\n' || pw[len - 1] == '\r'))
    pw[--len] = '\0';
  memset(&pc, 0, sizeof(pc));
  pc.url = cfg->mqtt;
  pc.admin_user = cfg->mqtt_admin_user;
  pc.admin_password = pw;
  pc.rate = cfg->mqtt_rate;
  rc = mdm_push_new(&pc, srv->store, &srv->push);
  OPENSSL_cleanse(pw, len);
  free(pw);
  if(rc == MDM_ERR_INVAL && len < 16)
    fprintf(stderr, "mdmd: '%s': the broker secret must be at least 16 "
            "characters\n", cfg->mqtt_admin_password_file);
  else if(rc == MDM_ERR_INVAL)
    fprintf(stderr, "mdmd: invalid --mqtt '%s' (expected mqtt://HOST:PORT)"
            "\n", cfg->mqtt);
  else if(rc)
    fprintf(stderr, "mdmd: cannot start the MQTT publisher: %s\n",
            mdm_strerror(rc));
  return rc;
}

static int cmd_tenant(int argc, char **argv)
{
  struct mdm_config cfg;
  struct mdm_store *st = NULL;
  const char *region = NULL, *name = NULL;
  int ret = 1;

  mdm_config_defaults(&cfg);
  if(argc < 3)
    die_usage("%s", "usage: mdmd tenant create NAME [--region R] | list");
  mdm_log_setup("mdmd", 0, MDM_LOG_WARN);
  if(!strcmp(argv[2], "create")) {
    struct mdm_tenant t;
    char *token = NULL;
    mdm_rc rc;
    parse_flags(&cfg, argc, argv, 3, &region, &name);
    if(!name)
      die_usage("%s", "tenant create: NAME is required");
    if(open_store(&cfg, &st))
      return 1;
    rc = mdm_tenant_create(st, name, region, "cli", &token, &t);
    if(rc == MDM_ERR_INVAL)
      fprintf(stderr, "mdmd: invalid tenant name '%s' (lower-case letters, "
                      "digits and '-', at most 63) or region\n", name);
    else if(rc == MDM_ERR_CONFLICT)
      fprintf(stderr, "mdmd: tenant '%s' already exists\n", name);
    else if(rc)
      fprintf(stderr, "mdmd: cannot create tenant '%s': %s\n", name,
              mdm_strerror(rc));
    else {
      printf("created tenant '%s' (id %s%s%s)\n"
             "owner API token (shown once, store it now):\n  %s\n",
             t.name, t.id, t.region[0] ? ", region " : "", t.region, token);
      free(token);
      mdm_tenant_release(&t);
      ret = 0;
    }
  }
  else if(!strcmp(argv[2], "list")) {
    json_t *arr = NULL, *v;
    size_t i;
    parse_flags(&cfg, argc, argv, 3, NULL, NULL);
    if(open_store(&cfg, &st))
      return 1;
    if(st->ops->tenant_list(st, &arr)) {
      fprintf(stderr, "mdmd: cannot list tenants\n");
    }
    else {
      printf("%-36s  %-20s  %-12s  %8s  %s\n", "ID", "NAME", "REGION",
             "DEVICES", "CREATED");
      json_array_foreach(arr, i, v) {
        const char *rg = json_string_value(json_object_get(v, "region"));
        printf("%-36s  %-20s  %-12s  %8lld  %s\n",
               json_string_value(json_object_get(v, "id")),
               json_string_value(json_object_get(v, "name")),
               rg && *rg ? rg : "-",
               (long long)json_integer_value(json_object_get(v, "devices")),
               json_string_value(json_object_get(v, "created_at")));
      }
      json_decref(arr);
      ret = 0;
    }
  }
  else
    die_usage("unknown tenant command '%s'", argv[2]);
  mdm_store_close(st);
  return ret;
}

/* Start the SIEM event stream when a sink is configured: first of all, so
 * that a bad setting (a token file others may read, a file that cannot be
 * opened) is the one line mdmd prints.  It is connected to the store's
 * change feed once the store is open (events.c says why there), before
 * the bootstrap, whose audit records are events too. */
static mdm_rc start_events(struct mdm_server *srv)
{
  if(!mdm_events_config_enabled(&srv->cfg.events))
    return MDM_OK;
  return mdm_events_new(&srv->cfg.events, srv->cfg.data_dir, &srv->events);
}

/* --tls-cert/--tls-key/--pin-ca: read and checked before binding. */
static mdm_rc start_tls(struct mdm_server *srv)
{
  char err[1400];
  mdm_rc rc = mdm_tls_load(&srv->cfg, &srv->tls, &srv->server_ca_pem,
                           srv->server_ca_pin, err, sizeof(err));
  if(rc)
    fprintf(stderr, "mdmd: %s\n", err);
  return rc;
}

/* Room for max_connections descriptors and the store's, logs' and
 * sinks' own: the soft limit is raised towards the hard one (a service
 * manager's default soft limit is 1024), and a limit still too low is said
 * at the start, not found at connection 1,000. */
static void raise_nofile(const struct mdm_config *cfg)
{
  struct rlimit rl;
  rlim_t want = (rlim_t)cfg->max_connections + 256;
  if(getrlimit(RLIMIT_NOFILE, &rl))
    return;
  if(rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
                  ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if(rl.rlim_cur < want)
    mdm_warn("open files are limited to %llu: fewer than %d connections "
             "at a time will be served (raise the hard limit, e.g. "
             "LimitNOFILE=%llu)", (unsigned long long)rl.rlim_cur,
             cfg->max_connections, (unsigned long long)want);
}

int main(int argc, char **argv)
{
  struct mdm_server srv;
  sigset_t sigs;
  int64_t t_signal;
  int sig = 0, ret = 1;

  if(argc > 1 && !strcmp(argv[1], "tenant"))
    return cmd_tenant(argc, argv);

  memset(&srv, 0, sizeof(srv));
  mdm_config_defaults(&srv.cfg);
  parse_flags(&srv.cfg, argc, argv, 1, NULL, NULL);
  mdm_log_setup("mdmd", srv.cfg.log_json,
                getenv("MDM_DEBUG") ? MDM_LOG_DEBUG : MDM_LOG_INFO);

  /* Signals are taken by sigwait() below; every thread inherits the mask. */
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  umask(077);
  raise_nofile(&srv.cfg);
  if(start_tls(&srv) || start_events(&srv) ||
     open_store(&srv.cfg, &srv.store))
    goto out;
  mdm_events_attach(srv.events, srv.store);
  if(mdm_keycache_new(&srv.keys) || mdm_tokcache_new(&srv.devtokens) ||
     mdm_tokcache_new(&srv.etokens) ||
     mdm_policycache_new(&srv.policies))
    goto out;
  if(start_metrics(&srv) || start_push(&srv))
    goto out;
  /* Bind first: a wrong --listen fails before anything is created. */
  if(mdm_http_start(&srv))
    goto out;
  if(mdm_bootstrap(&srv)) {
    mdm_http_stop(&srv, 0);
    goto out;
  }
  {
    char host[256];
    const char *colon;
    mdm_strlcpy(host, srv.cfg.listen, sizeof(host));
    colon = strrchr(srv.cfg.listen, ':');
    if(colon)
      host[colon - srv.cfg.listen] = '\0';
    printf("listening on %s:%d\n", host, srv.port);
    fflush(stdout);
    mdm_info("mdmd %s listening on %s:%d (%s, store %s, data dir %s)",
             MDM_VERSION, host, srv.port, srv.tls ? "https" : "http",
             srv.store->ops->name, srv.cfg.data_dir);
    if(srv.server_ca_pin[0])
      mdm_info("devices pin the server CA %s", srv.server_ca_pin);
  }
  while(sigwait(&sigs, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
    ;
  t_signal = mdm_mono_ns() / 1000000;
  mdm_info("signal %d: draining", sig);
  mdm_http_stop(&srv, 8000);
  /* The events committed so far: written, or sent while the exit stays
   * within 10 s of the signal (at most 5 s of it); HEC keeps the rest in
   * its spool. */
  {
    int64_t now = mdm_mono_ns() / 1000000, deadline = t_signal + 9000;
    if(deadline > now + 5000)
      deadline = now + 5000;
    mdm_events_stop(srv.events, deadline);
  }
  ret = 0;
out:
  mdm_events_stop(srv.events, mdm_mono_ns() / 1000000);
  mdm_push_free(srv.push);
  mdm_store_close(srv.store);
  mdm_metrics_free();
  mdm_ca_cache_free();
  mdm_events_free(srv.events);
  mdm_keycache_free(srv.keys);
  mdm_tokcache_free(srv.devtokens);
  mdm_tokcache_free(srv.etokens);
  mdm_policycache_free(srv.policies);
  mdm_tls_free(srv.tls);
  free(srv.server_ca_pem);
  if(!ret)
    mdm_info("stopped");
  return ret;
}
