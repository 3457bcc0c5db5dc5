/*
 * main.c: the mdm-agent program: command-line parsing and dispatch to
 * enroll (enroll.c), run (agent.c) and facts (facts.h).  Exit codes: 0 on
 * success, 1 on failure with one line on stderr, 2 on bad usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include "agent/agent.h"
#include "agent/client.h"
#include "agent/enroll.h"
#include "agent/facts.h"
#include "agent/queue.h"
#include "agent/state.h"
#include "core/log.h"
#include "core/util.h"

#define PROG "mdm-agent"
#define EXIT_USAGE 2

static const char usage_text[] =
  "usage: mdm-agent <command> [options]\n"
  "\n"
  "commands:\n"
  "  enroll --server URL --token TOKEN [--state-dir DIR] [--root DIR]\n"
  "         [--ca-file FILE] [--force]\n"
  "      enroll this device and keep its credentials in the state dir\n"
  "  run [--state-dir DIR] [--root DIR] [--once] [--queue-max N]\n"
  "      [--ca-file FILE] [--config FILE]\n"
  "      check in, apply the policy, run pending commands and send\n"
  "      telemetry at the interval the server gives, until SIGTERM or\n"
  "      SIGINT (or until a wipe command unenrolls the device)\n"
  "  facts [--root DIR]\n"
  "      print the facts this device reports (JSON) and exit\n"
  "\n"
  "options:\n"
  "  --server URL       the mdm server, http:// or https://\n"
  "  --token TOKEN      the enrollment token\n"
  "  --state-dir DIR    credentials and telemetry queue (default\n"
  "                     $MDM_AGENT_STATE_DIR, else " MDM_STATE_DEFAULT_DIR ")\n"
  "  --root DIR         read device state under DIR instead of /\n"
  "  --ca-file FILE     trust only the CA certificates in FILE for https\n"
  "                     (enroll remembers it; run may override it).  Without\n"
  "                     it, enroll trusts the CA its token pins and keeps it\n"
  "                     as <state-dir>/server-ca.pem; the system's CA store\n"
  "                     is never used\n"
  "  --config FILE      the agent's own settings (command hooks,\n"
  "                     managed_dir; key = value lines); default\n"
  "                     <state-dir>/agent.conf if it exists.  Relative\n"
  "                     paths in it are taken under --root\n"
  "  --force            enroll again even if already enrolled\n"
  "  --once             one round (check-in, telemetry); exit 0 if the\n"
  "                     check-in succeeded, else 1\n"
  "  --queue-max N      keep at most N unsent events (default 10000, or\n"
  "                     $MDM_AGENT_QUEUE_MAX); the oldest go first\n"
  "  --log-format FMT   text (default) or json log lines on stderr\n"
  "  -v, --verbose      log debug messages too\n"
  "  -h, --help         show this help and exit\n"
  "  -V, --version      print the version and exit\n";

enum {
  OPT_SERVER = 256, OPT_TOKEN, OPT_STATE_DIR, OPT_ROOT, OPT_CA_FILE, OPT_FORCE,
  OPT_ONCE, OPT_QUEUE_MAX, OPT_LOG_FORMAT, OPT_CONFIG
};

static const struct option all_opts[] = {
  {"server", required_argument, NULL, OPT_SERVER},
  {"token", required_argument, NULL, OPT_TOKEN},
  {"state-dir", required_argument, NULL, OPT_STATE_DIR},
  {"root", required_argument, NULL, OPT_ROOT},
  {"ca-file", required_argument, NULL, OPT_CA_FILE},
  {"force", no_argument, NULL, OPT_FORCE},
  {"once", no_argument, NULL, OPT_ONCE},
  {"queue-max", required_argument, NULL, OPT_QUEUE_MAX},
  {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
  {"config", required_argument, NULL, OPT_CONFIG},
  {"verbose", no_argument, NULL, 'v'},
  {"help", no_argument, NULL, 'h'},
  {"version", no_argument, NULL, 'V'},
  {NULL, 0, NULL, 0}
};

struct args {
  const char *cmd;
  const char *server, *token, *state_dir, *root, *ca_file, *queue_max;
  const char *log_format, *config;
  int is_force, is_once, is_verbose;
};

static int usage_error(const char *fmt, const char *what)
{
  fprintf(stderr, PROG ": ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, " (see '" PROG " --help')\n");
  return EXIT_USAGE;
}

static int fail(const char *msg)
{
  fprintf(stderr, PROG ": %s\n", msg);
  return 1;
}

/* Which options a command takes. */
static int opt_allowed(const char *cmd, int opt)
{
  switch(opt) {
  case OPT_ROOT: case 'v': case 'h': case 'V': case OPT_LOG_FORMAT:
    return 1;
  case OPT_SERVER: case OPT_TOKEN: case OPT_FORCE:
    return !strcmp(cmd, "enroll");
  case OPT_ONCE: case OPT_QUEUE_MAX: case OPT_CONFIG:
    return !strcmp(cmd, "run");
  case OPT_STATE_DIR: case OPT_CA_FILE:
    return !strcmp(cmd, "enroll") || !strcmp(cmd, "run");
  default:
    return 0;
  }
}

/* Parse argv after the command.  Returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct args *a)
{
  int c;
  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":vhV", all_opts, NULL)) != -1) {
    const char *bad = argv[optind - 1];
    if(c == '?') {
      if(optopt)
        return usage_error("unknown option '-%s'",
                           (char[]){(char)optopt, '\0'});
      return usage_error("unknown option '%s'", bad);
    }
    if(c == ':')
      return usage_error("option '%s' needs a value", bad);
    if(!opt_allowed(a->cmd, c))
      return usage_error("option '%s' does not apply to this command", bad);
    switch(c) {
    case OPT_SERVER: a->server = optarg; break;
    case OPT_TOKEN: a->token = optarg; break;
    case OPT_STATE_DIR: a->state_dir = optarg; break;
    case OPT_ROOT: a->root = optarg; break;
    case OPT_CA_FILE: a->ca_file = optarg; break;
    case OPT_FORCE: a->is_force = 1; break;
    case OPT_ONCE: a->is_once = 1; break;
    case OPT_QUEUE_MAX: a->queue_max = optarg; break;
    case OPT_LOG_FORMAT: a->log_format = optarg; break;
    case OPT_CONFIG: a->config = optarg; break;
    case 'v': a->is_verbose = 1; break;
    case 'h': fputs(usage_text, stdout); return 0;
    case 'V': puts(PROG " " MDM_VERSION); return 0;
    default: return usage_error("unknown option '%s'", bad);
    }
  }
  if(optind < argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  return -1;
}

static int cmd_facts(const struct args *a)
{
  json_t *facts = NULL;
  char *s;
  mdm_rc rc = mdm_facts_collect(a->root, &facts);
  if(rc) {
    fprintf(stderr, PROG ": cannot collect facts under '%s': %s\n",
            a->root ? a->root : "/", mdm_strerror(rc));
    return 1;
  }
  s = json_dumps(facts, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(facts);
  if(!s)
    return fail("cannot print facts: out of memory");
  puts(s);
  free(s);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_enroll(const struct args *a, const char *state_dir)
{
  struct mdm_enroll_opts o;
  char id[MDM_DEVICE_ID_MAX], err[1024];

  if(!a->server)
    return usage_error("%s needs --server URL", "enroll");
  if(!a->token || !*a->token)
    return usage_error("%s needs --token TOKEN", "enroll");
  if(!mdm_client_url_ok(a->server))
    return usage_error("--server: '%s' is not an http:// or https:// URL",
                       a->server);
  memset(&o, 0, sizeof(o));
  o.server = a->server;
  o.token = a->token;
  o.state_dir = state_dir;
  o.root = a->root;
  o.ca_file = a->ca_file;
  o.is_force = a->is_force;
  if(mdm_enroll_run(&o, id, err, sizeof(err)))
    return fail(err);
  printf("enrolled as %s\n", id);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_run(const struct args *a, const char *state_dir)
{
  struct mdm_agent_opts o;
  const char *qmax = a->queue_max ? a->queue_max : getenv("MDM_AGENT_QUEUE_MAX");
  long long n = MDM_QUEUE_DEFAULT_MAX;
  char err[1024];
  mdm_rc rc;

  if(qmax && *qmax && mdm_parse_int(qmax, 1, MDM_QUEUE_LIMIT_MAX, &n)) {
    fprintf(stderr, PROG ": %s: '%s' is not a number in 1..%d (see '" PROG
            " --help')\n", a->queue_max ? "--queue-max" : "MDM_AGENT_QUEUE_MAX",
            qmax, MDM_QUEUE_LIMIT_MAX);
    return EXIT_USAGE;
  }
  memset(&o, 0, sizeof(o));
  o.state_dir = state_dir;
  o.root = a->root;
  o.ca_file = a->ca_file;
  o.config = a->config;
  o.queue_max = (size_t)n;
  o.is_once = a->is_once;
  err[0] = '\0';
  rc = mdm_agent_run(&o, err, sizeof(err));
  if(rc) {
    if(err[0])
      return fail(err);
    if(rc == MDM_ERR_AUTH)
      return fail("check-in refused: this device's credentials are no "
                  "longer accepted (retired or revoked?)");
    return fail("check-in failed");
  }
  return 0;
}

int main(int argc, char **argv)
{
  struct args a;
  const char *state_dir;
  struct sigaction sa;
  int code;

  memset(&a, 0, sizeof(a));
  if(argc < 2)
    return usage_error("%s", "missing command");
  a.cmd = argv[1];
  if(!strcmp(a.cmd, "-h") || !strcmp(a.cmd, "--help")) {
    fputs(usage_text, stdout);
    return 0;
  }
  if(!strcmp(a.cmd, "-V") || !strcmp(a.cmd, "--version")) {
    puts(PROG " " MDM_VERSION);
    return 0;
  }
  if(strcmp(a.cmd, "enroll") && strcmp(a.cmd, "run") && strcmp(a.cmd, "facts"))
    return usage_error(a.cmd[0] == '-' ? "unknown option '%s'" :
                       "unknown command '%s'", a.cmd);
  code = parse(argc - 1, argv + 1, &a);
  if(code >= 0)
    return code;
  if(a.log_format && strcmp(a.log_format, "text") &&
     strcmp(a.log_format, "json"))
    return usage_error("--log-format: '%s' is not text or json", a.log_format);
  mdm_log_setup(PROG, a.log_format && !strcmp(a.log_format, "json"),
                a.is_verbose ? MDM_LOG_DEBUG : MDM_LOG_INFO);

  state_dir = a.state_dir ? a.state_dir : getenv("MDM_AGENT_STATE_DIR");
  if(!state_dir || !*state_dir)
    state_dir = MDM_STATE_DEFAULT_DIR;

  if(!strcmp(a.cmd, "facts"))
    return cmd_facts(&a);

  /* libcurl runs with CURLOPT_NOSIGNAL: a peer closing a socket must not
   * kill us with SIGPIPE. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return fail("cannot initialize libcurl");
  if(!strcmp(a.cmd, "enroll"))
    code = cmd_enroll(&a, state_dir);
  else
    code = cmd_run(&a, state_dir);
  curl_global_cleanup();
  return code;
}
