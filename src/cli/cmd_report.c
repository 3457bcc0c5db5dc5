/*
 * cmd_report.c: "mdmctl report compliance": download the tenant's compliance
 * report (GET /v1/reports/compliance, CSV or STIX 2.1) into a file, written
 * atomically (a temporary file beside it, renamed when complete), or to
 * standard output.  The report can be far larger than the JSON client's
 * bound, so it streams to disk through its own libcurl transfer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/config.h"
#include "cli/output.h"
#include "core/buf.h"
#include "core/util.h"

#define PATH_REPORT "/v1/reports/compliance"
/* What a report may grow to on disk before the transfer is stopped. */
#define CLI_MAX_REPORT ((curl_off_t)16 * 1024 * 1024 * 1024)
/* An error answer is read into memory up to this. */
#define CLI_MAX_PROBLEM (64 * 1024)
/* A transfer slower than 1 byte/s for this long is given up. */
#define CLI_REPORT_STALL_S 120L

static const struct cli_opt compliance_opts[] = {
  {"--format", 0, "FORMAT", "csv (the default) or stix"},
  {"--output", 'o', "FILE", "the file to write (default "
   "compliance_YYYYMMDD.csv or .stix.json in the current directory); - for "
   "standard output.  Not the output format"},
  {NULL, 0, NULL, NULL}
};

/* The last value of the flag o (an entry of this command's table), or
 * NULL.  By entry, not by name: this -o is not the global -o. */
static const char *own_flag(const struct cli_args *a, const struct cli_opt *o)
{
  int k;
  for(k = a->n_vals - 1; k >= 0; k--)
    if(a->vals[k].opt == o)
      return a->vals[k].val ? a->vals[k].val : "";
  return NULL;
}

struct download {
  CURL *curl;
  FILE *out;              /* the temporary file or stdout */
  struct mdm_buf problem; /* the body of a non-2xx answer */
  curl_off_t n;           /* bytes written to out */
  int is_write_error;
  int write_errno;
  int is_toobig;
  char filename[64];      /* from Content-Disposition, when well-formed */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
  struct download *d = userdata;
  size_t n = size * nmemb;
  long code = 0;

  curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
  if(code < 200 || code >= 300)
    return mdm_buf_append(&d->problem, p, n) ? 0 : n;
  if(d->n + (curl_off_t)n > CLI_MAX_REPORT) {
    d->is_toobig = 1;
    return 0;
  }
  if(fwrite(p, 1, n, d->out) != n) {
    d->is_write_error = 1;
    d->write_errno = errno;
    return 0;
  }
  d->n += (curl_off_t)n;
  return n;
}

/* Is s "compliance_YYYYMMDD.csv" or "compliance_YYYYMMDD.stix.json"? */
static int is_report_name(const char *s, size_t n)
{
  size_t i;
  if(n < 20 || strncmp(s, "compliance_", 11))
    return 0;
  for(i = 11; i < 19; i++)
    if(s[i] < '0' || s[i] > '9')
      return 0;
  return (n == 23 && !strncmp(s + 19, ".csv", 4)) ||
         (n == 29 && !strncmp(s + 19, ".stix.json", 10));
}

/* Keep the server's file name when it is one of ours. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
  struct download *d = userdata;
  size_t n = size * nmemb;
  static const char key[] = "content-disposition:";
  const char *q, *end = p + n;

  if(n > sizeof(key) && !strncasecmp(p, key, sizeof(key) - 1)) {
    q = memchr(p, '"', n);
    if(q) {
      const char *e = memchr(q + 1, '"', (size_t)(end - q - 1));
      if(e && is_report_name(q + 1, (size_t)(e - q - 1))) {
        memcpy(d->filename, q + 1, (size_t)(e - q - 1));
        d->filename[e - q - 1] = '\0';
      }
    }
  }
  return n;
}

/* The one line for a failed answer: the problem's title and detail. */
static void report_problem(long code, const struct mdm_buf *body)
{
  json_t *pb = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
  const char *title = json_string_value(json_object_get(pb, "title"));
  const char *detail = json_string_value(json_object_get(pb, "detail"));
  char t[256], dt[1024];

  cli_sanitize(title && *title ? title : "unexpected status", t, sizeof(t));
  if(detail && *detail)
    cli_error("GET " PATH_REPORT ": %ld %s: %s", code, t,
              cli_sanitize(detail, dt, sizeof(dt)));
  else
    cli_error("GET " PATH_REPORT ": %ld %s", code, t);
  json_decref(pb);
}

/* GET the report in format into d->out.  Returns 0 or prints the one
 * line and returns CLI_EXIT_FAIL. */
static int fetch(const struct cli_conf *conf, const char *format,
                 struct download *d)
{
  struct mdm_buf url, auth;
  struct curl_slist *hdrs = NULL, *h;
  char errbuf[CURL_ERROR_SIZE] = "", why[512], where[256];
  size_t blen = strlen(conf->server);
  CURLcode res;
  long code = 0;
  int ret = CLI_EXIT_FAIL;

  while(blen > 0 && conf->server[blen - 1] == '/')
    blen--;
  mdm_buf_init(&url, 8192);
  mdm_buf_init(&auth, 8192);
  if(mdm_buf_append(&url, conf->server, blen) ||
     mdm_buf_printf(&url, PATH_REPORT "?format=%s", format) ||
     mdm_buf_printf(&auth, "Authorization: Bearer %s", conf->token)) {
    cli_error("GET " PATH_REPORT ": the URL or token is too long");
    goto out;
  }
  h = curl_slist_append(NULL, auth.data);
  hdrs = h;
  h = h ? curl_slist_append(hdrs, strcmp(format, "stix")
                                     ? "Accept: text/csv"
                                     : "Accept: application/stix+json") : NULL;
  if(!h) {
    cli_nomem();
    goto out;
  }
  d->curl = curl_easy_init();
  if(!d->curl) {
    cli_error("cannot initialise libcurl");
    goto out;
  }
  curl_easy_setopt(d->curl, CURLOPT_URL, url.data);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS,
                   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
  /* No total timeout: a large report takes what it takes, but a stalled
   * one is given up. */
  curl_easy_setopt(d->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(d->curl, CURLOPT_LOW_SPEED_TIME, CLI_REPORT_STALL_S);
  curl_easy_setopt(d->curl, CURLOPT_USERAGENT, "mdmctl/" MDM_VERSION);
  curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(d->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(d->curl, CURLOPT_HEADERDATA, d);
  if(conf->ca_file)
    curl_easy_setopt(d->curl, CURLOPT_CAINFO, conf->ca_file);
  res = curl_easy_perform(d->curl);
  curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
  cli_sanitize(conf->server, where, sizeof(where));
  if(res != CURLE_OK && code >= 200 && code < 300 && d->is_write_error)
    cli_error("cannot write the report: %s", strerror(d->write_errno));
  else if(res != CURLE_OK && d->is_toobig)
    cli_error("GET " PATH_REPORT ": the report is larger than %lld GiB",
              (long long)(CLI_MAX_REPORT >> 30));
  else if(res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST)
    cli_error("cannot connect to %s: %s", where,
              cli_sanitize(errbuf[0] ? errbuf : curl_easy_strerror(res), why,
                           sizeof(why)));
  else if(res != CURLE_OK && (code < 200 || code >= 300) && code &&
          d->problem.len)
    report_problem(code, &d->problem);
  else if(res != CURLE_OK)
    cli_error("GET " PATH_REPORT ": %s",
              cli_sanitize(errbuf[0] ? errbuf : curl_easy_strerror(res), why,
                           sizeof(why)));
  else if(code < 200 || code >= 300)
    report_problem(code, &d->problem);
  else
    ret = CLI_EXIT_OK;
out:
  curl_slist_free_all(hdrs);
  if(d->curl)
    curl_easy_cleanup(d->curl);
  d->curl = NULL;
  mdm_buf_release(&url);
  if(auth.data)
    memset(auth.data, 0, auth.len);
  mdm_buf_release(&auth);
  return ret;
}

static int report_compliance(struct cli *cli, const struct cli_args *a)
{
  const char *format = cli_args_get(a, "--format");
  const char *path = own_flag(a, &compliance_opts[1]);
  struct cli_conf conf;
  struct cli_conf_flags f;
  struct cli_client *probe = NULL;
  struct download d;
  struct mdm_buf tmp;
  char err[1024], shown[1024], name[64];
  int ret = CLI_EXIT_FAIL, fd = -1, is_stdout, i;

  if(!format)
    format = "csv";
  if(strcmp(format, "csv") && strcmp(format, "stix"))
    return cli_usage_error(cli, "invalid value '%s' for --format: expected "
                           "csv or stix", format);
  for(i = 0; i < a->n_vals; i++)
    if(a->vals[i].opt == &compliance_opts[1] && a->vals[i].val != path)
      return cli_usage_error(cli, "-o given twice: for report, -o is the "
                             "file to write");
  if(path && !*path)
    return cli_usage_error(cli, "-o needs a file name (or - for standard "
                           "output)");
  is_stdout = path && !strcmp(path, "-");

  memset(&d, 0, sizeof(d));
  mdm_buf_init(&d.problem, CLI_MAX_PROBLEM);
  mdm_buf_init(&tmp, 8192);
  memset(&conf, 0, sizeof(conf));
  f.server = cli->server;
  f.token = cli->token;
  f.token_file = cli->token_file;
  f.ca_file = cli->ca_file;
  if(cli_conf_load(&conf, &f, err, sizeof(err))) {
    cli_error("%s", err);
    goto out;
  }
  if(!conf.token) {
    cli_error("no API token: use --token-file FILE, --token TOKEN, "
              "MDM_TOKEN_FILE, MDM_TOKEN, or 'token_file = FILE' in %s",
              conf.config_path ? conf.config_path : "~/.config/mdm/config");
    goto out;
  }
  /* The JSON client's checks of the server URL, with its messages. */
  if(cli_client_new(&conf, &probe, err, sizeof(err))) {
    cli_error("%s", err);
    goto out;
  }

  if(is_stdout)
    d.out = stdout;
  else {
    /* Until the answer names the file, write beside the target (or in the
     * current directory). */
    const char *dir_of = path ? path : "compliance";
    if(mdm_buf_printf(&tmp, "%s.tmp.%ld.XXXXXX", dir_of, (long)getpid())) {
      cli_error("cannot write '%s': the path is too long",
                cli_sanitize(dir_of, shown, sizeof(shown)));
      goto out;
    }
    fd = mkstemp(tmp.data);
    if(fd < 0 || fchmod(fd, 0600) != 0) {
      cli_error("cannot create '%s': %s",
                cli_sanitize(tmp.data, shown, sizeof(shown)),
                strerror(errno));
      if(fd >= 0) {
        close(fd);
        unlink(tmp.data);
        fd = -1;
      }
      goto out;
    }
    d.out = fdopen(fd, "wb");
    if(!d.out) {
      cli_error("cannot write '%s': %s",
                cli_sanitize(tmp.data, shown, sizeof(shown)),
                strerror(errno));
      close(fd);
      unlink(tmp.data);
      fd = -1;
      goto out;
    }
    fd = -1;   /* d.out's now */
  }

  ret = fetch(&conf, format, &d);
  if(is_stdout) {
    if(!ret && fflush(stdout) != 0) {
      cli_error("cannot write to standard output: %s", strerror(errno));
      ret = CLI_EXIT_FAIL;
    }
    goto out;
  }
  if(!ret && (fflush(d.out) != 0 || fsync(fileno(d.out)) != 0)) {
    cli_error("cannot write '%s': %s",
              cli_sanitize(tmp.data, shown, sizeof(shown)), strerror(errno));
    ret = CLI_EXIT_FAIL;
  }
  if(fclose(d.out) != 0 && !ret) {
    cli_error("cannot write '%s': %s",
              cli_sanitize(tmp.data, shown, sizeof(shown)), strerror(errno));
    ret = CLI_EXIT_FAIL;
  }
  d.out = NULL;
  if(!ret && !path) {
    if(d.filename[0])
      mdm_strlcpy(name, d.filename, sizeof(name));
    else {
      time_t now = time(NULL);
      struct tm tm;
      char day[16];
      gmtime_r(&now, &tm);
      strftime(day, sizeof(day), "%Y%m%d", &tm);
      snprintf(name, sizeof(name), "compliance_%s.%s", day,
               strcmp(format, "stix") ? "csv" : "stix.json");
    }
    path = name;
  }
  if(!ret && rename(tmp.data, path) != 0) {
    cli_error("cannot write '%s': %s", cli_sanitize(path, shown,
                                                    sizeof(shown)),
              strerror(errno));
    ret = CLI_EXIT_FAIL;
  }
  if(ret)
    unlink(tmp.data);
  else {
    mdm_fsync_parent(path);  /* the rename, durable */
    ret = cli_print_line(cli_sanitize(path, shown, sizeof(shown)));
  }
out:
  if(d.out && d.out != stdout)
    fclose(d.out);
  cli_client_free(probe);
  cli_conf_release(&conf);
  mdm_buf_release(&d.problem);
  mdm_buf_release(&tmp);
  return ret;
}

const struct cli_cmd cli_report_cmds[] = {
  {"report", "compliance", report_compliance,
   "[--format csv|stix] [-o FILE]",
   "download the compliance report of every active device",
   "Writes the report the server makes (GET /v1/reports/compliance) to "
   "FILE, by default compliance_YYYYMMDD.csv (or .stix.json with --format "
   "stix; the server's UTC date) in the current directory, and prints the "
   "file's name. The file (mode 0600) appears only once complete: it is "
   "written beside its final name and renamed; an existing file of that "
   "name is replaced. -o - writes to standard output. CSV is RFC 4180 with "
   "a header row; STIX is a STIX 2.1 bundle (docs/api.md, Reports).",
   compliance_opts, 0, 0},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
