/*
 * benchutil.c: the pieces mdm-sim and mdm-tls-bench share (benchutil.h):
 * latency samples, the devices' facts, the server's address, /proc figures
 * and option parsing.  Plain C over libc, jansson and libmdm's core; no
 * libm, which mdm-tls-bench does not link.
 */
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "core/util.h"
#include "benchutil.h"

/* ---- latency samples ---------------------------------------------------- */

void bench_samples_add(struct bench_samples *s, int64_t ns)
{
  int64_t us = ns / 1000;
  if(s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    uint32_t *v = realloc(s->v, cap * sizeof(*v));
    if(!v)
      return;  /* out of memory: the sample is lost, the run goes on */
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void bench_samples_merge(struct bench_samples *into,
                         const struct bench_samples *from)
{
  size_t i;
  for(i = 0; i < from->n; i++)
    bench_samples_add(into, (int64_t)from->v[i] * 1000);
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

double bench_samples_pct(const struct bench_samples *s, double p)
{
  double x = p / 100.0 * (double)s->n;
  size_t i = (size_t)x;
  if(!s->n)
    return 0;
  if((double)i < x)
    i++;  /* ceil(), without libm */
  if(i > 0)
    i--;
  if(i >= s->n)
    i = s->n - 1;
  return s->v[i] / 1000.0;
}

json_t *bench_latency_json(struct bench_samples *s)
{
  if(s->n)
    qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I}", "p50_ms",
                   bench_samples_pct(s, 50), "p90_ms",
                   bench_samples_pct(s, 90), "p99_ms",
                   bench_samples_pct(s, 99), "p999_ms",
                   bench_samples_pct(s, 99.9), "max_ms",
                   bench_samples_pct(s, 100), "n", (json_int_t)s->n);
}

void bench_samples_release(struct bench_samples *s)
{
  free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
}

/* ---- the devices' facts -------------------------------------------------- */

uint64_t bench_splitmix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static const char *const models_linux[] = {
  "ThinkPad T14 Gen 4", "Latitude 7440", "EliteBook 840 G10", "XPS 13 9340",
  "ThinkPad X1 Carbon Gen 11", "OptiPlex 7010"};
static const char *const makers_linux[] = {"LENOVO", "Dell Inc.", "HP",
                                           "Dell Inc.", "LENOVO", "Dell Inc."};
static const char *const pkgs[][2] = {
  {"openssl", "3.0.15-1~deb12u1"}, {"openssh-server", "1:9.2p1-2+deb12u3"},
  {"linux-image-amd64", "6.1.115-1"}, {"firefox-esr", "128.5.0esr-1~deb12u1"},
  {"libc6", "2.36-9+deb12u9"}, {"sudo", "1.9.13p3-1+deb12u1"},
  {"systemd", "252.31-1~deb12u1"}, {"curl", "7.88.1-10+deb12u8"},
  {"chromium", "131.0.6778.85-1~deb12u1"}, {"nftables", "1.0.6-2+deb12u2"},
  {"cryptsetup", "2:2.6.1-4~deb12u2"}, {"mdm-agent", "0.1.0-1"}};

mdm_rc bench_facts_render(struct mdm_buf *b, size_t idx, uint32_t gen)
{
  uint64_t h = bench_splitmix64(idx * 7919 + 17);
  unsigned kind = (unsigned)(idx % 10);
  unsigned m = (unsigned)(h % 6);
  unsigned age_base = (unsigned)(idx % 90);
  unsigned first_pkg = (unsigned)((h >> 8) % 12);
  int i;
  mdm_rc rc;

  if(kind < 6)
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"PF%08" PRIX64 "\",\"platform\":\"linux\","
      "\"hostname\":\"lnx-%06zu.corp.example\",\"model\":\"%s\","
      "\"manufacturer\":\"%s\","
      "\"os\":{\"name\":\"Debian GNU/Linux\",\"version\":\"12\","
      "\"build\":\"12 (bookworm)\",\"id\":\"debian\","
      "\"kernel\":\"6.1.0-%u-amd64\"},",
      (uint64_t)(h & 0xffffffffULL), idx, models_linux[m], makers_linux[m],
      (unsigned)(20 + (h >> 16) % 8));
  else if(kind < 8)
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"5CG%07" PRIX64 "\",\"platform\":\"windows\","
      "\"hostname\":\"WIN-%06zu\",\"model\":\"HP EliteBook 840 G%u\","
      "\"manufacturer\":\"HP\","
      "\"os\":{\"name\":\"Windows 11 Enterprise\",\"version\":\"23H2\","
      "\"build\":\"22631.%u\",\"id\":\"windows\",\"kernel\":\"10.0.22631\"},",
      (uint64_t)(h & 0xfffffffULL), idx, (unsigned)(8 + m % 3),
      (unsigned)(4000 + (h >> 16) % 600));
  else
    rc = mdm_buf_printf(
      b,
      "{\"serial\":\"C02%07" PRIX64 "\",\"platform\":\"macos\","
      "\"hostname\":\"mac-%06zu.corp.example\",\"model\":\"MacBookPro18,%u\","
      "\"manufacturer\":\"Apple Inc.\","
      "\"os\":{\"name\":\"macOS\",\"version\":\"14.%u\",\"build\":\"23G%u\","
      "\"id\":\"macos\",\"kernel\":\"Darwin 23.6.0\"},",
      (uint64_t)(h & 0xfffffffULL), idx, (unsigned)(1 + m % 4),
      (unsigned)(1 + (h >> 12) % 6), (unsigned)(80 + (h >> 16) % 20));
  if(!rc)
    rc = mdm_buf_printf(
      b,
      "\"encryption\":{\"root_encrypted\":%s,\"method\":%s},"
      "\"integrity\":{\"rooted\":false,\"secure_boot\":%s,"
      "\"kernel_tainted\":false,\"lockdown\":%s},"
      "\"security\":{\"firewall_enabled\":%s,\"screen_lock_enabled\":true,"
      "\"password_age_days\":%u},"
      "\"network\":{\"ssid\":%s,\"vpn_connected\":%s,"
      "\"ipv4\":\"10.%u.%u.%u\",\"mac\":\"52:54:00:%02x:%02x:%02x\"},"
      "\"agent\":{\"version\":\"0.1.0\"},"
      "\"hardware\":{\"cpu\":\"%s\",\"cores\":%u,\"memory_mb\":%u,"
      "\"disk_gb\":%u},",
      (h >> 20) % 50 ? "true" : "false",
      kind < 6 ? "\"luks2\"" : kind < 8 ? "\"bitlocker\"" : "\"filevault\"",
      (h >> 26) % 20 ? "true" : "false",
      kind < 6 ? "\"integrity\"" : "null",
      (h >> 30) % 30 ? "true" : "false", age_base + gen,
      (h >> 34) % 3 ? "\"CORP-WIFI\"" : "null",
      (h >> 36) % 4 ? "false" : "true", (unsigned)(idx >> 16) & 255,
      (unsigned)(idx >> 8) & 255, (unsigned)idx & 255,
      (unsigned)(idx >> 16) & 255, (unsigned)(idx >> 8) & 255,
      (unsigned)idx & 255,
      kind < 8 ? "13th Gen Intel(R) Core(TM) i7-1365U" : "Apple M1 Pro",
      (unsigned)(8 << (h >> 40) % 2), (unsigned)(16384 << (h >> 42) % 2),
      (unsigned)(256 << (h >> 44) % 3));
  if(!rc)
    rc = mdm_buf_printf(b,
                        "\"packages\":{\"count\":%u,\"updates_available\":%u,"
                        "\"recent\":[",
                        (unsigned)(1200 + (h >> 48) % 900),
                        (unsigned)((gen * 7 + idx) % 40));
  for(i = 0; !rc && i < 6; i++) {
    unsigned p = (first_pkg + (unsigned)i) % 12;
    rc = mdm_buf_printf(b, "%s{\"name\":\"%s\",\"version\":\"%s\"}",
                        i ? "," : "", pkgs[p][0], pkgs[p][1]);
  }
  if(!rc)
    rc = mdm_buf_puts(b, "]}}");
  return rc;
}

/* ---- the server ---------------------------------------------------------- */

int bench_server_resolve(const char *prog, const char *url,
                         const char *default_port, struct bench_server *srv)
{
  const char *hs = strstr(url, "://"), *he, *port;
  char portbuf[16];
  struct addrinfo hints, *res = NULL;
  size_t hl;

  if(!hs)
    return -1;
  hs += 3;
  snprintf(srv->host_hdr, sizeof(srv->host_hdr), "%.*s",
           (int)strcspn(hs, "/"), hs);
  if(*hs == '[') {
    hs++;
    he = strchr(hs, ']');
    if(!he)
      return -1;
    port = he[1] == ':' ? he + 2 : NULL;
  }
  else {
    he = hs + strcspn(hs, ":/");
    port = *he == ':' ? he + 1 : NULL;
  }
  hl = (size_t)(he - hs);
  if(!hl || hl >= sizeof(srv->host)) {
    fprintf(stderr, "%s: --server: no host in '%s'\n", prog, url);
    return -1;
  }
  memcpy(srv->host, hs, hl);
  srv->host[hl] = '\0';
  if(port) {
    size_t pl = strcspn(port, "/");
    if(!pl || pl >= sizeof(portbuf))
      return -1;
    memcpy(portbuf, port, pl);
    portbuf[pl] = '\0';
  }
  else
    mdm_strlcpy(portbuf, default_port, sizeof(portbuf));
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if(getaddrinfo(srv->host, portbuf, &hints, &res) || !res) {
    fprintf(stderr, "%s: cannot resolve '%s'\n", prog, srv->host);
    return -1;
  }
  memcpy(&srv->addr, res->ai_addr, res->ai_addrlen);
  srv->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* ---- CPU and memory (/proc, getrusage) ----------------------------------- */

int bench_proc_stat_read(long long pid, struct bench_proc_stat *st)
{
  char path[64], buf[2048], *p;
  unsigned long long f[4];
  FILE *fp;
  size_t n;
  int field;
  double tck = (double)sysconf(_SC_CLK_TCK);

  st->ppid = -1;
  st->cpu_s = st->cpu_all_s = -1;
  if(pid <= 0)
    return -1;
  snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
  fp = fopen(path, "r");
  if(!fp)
    return -1;
  n = fread(buf, 1, sizeof(buf) - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  p = strrchr(buf, ')');  /* the command name may hold spaces */
  if(!p || sscanf(p + 2, "%*c %lld", &st->ppid) != 1) {
    st->ppid = -1;
    return -1;
  }
  /* Fields 14..17: utime, stime, cutime, cstime. */
  p += 2;
  for(field = 3; field < 14 && p; field++) {
    p = strchr(p, ' ');
    if(p)
      p++;
  }
  if(!p || sscanf(p, "%llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3]) != 4) {
    st->ppid = -1;
    return -1;
  }
  st->cpu_s = (double)(f[0] + f[1]) / tck;
  st->cpu_all_s = (double)(f[0] + f[1] + f[2] + f[3]) / tck;
  return 0;
}

void bench_proc_rss(long long pid, long *rss_kb, long *hwm_kb)
{
  char path[64], line[256];
  FILE *f;
  *rss_kb = *hwm_kb = 0;
  if(pid <= 0)
    return;
  snprintf(path, sizeof(path), "/proc/%lld/status", pid);
  f = fopen(path, "r");
  if(!f)
    return;
  while(fgets(line, sizeof(line), f)) {
    if(!strncmp(line, "VmRSS:", 6))
      *rss_kb = strtol(line + 6, NULL, 10);
    else if(!strncmp(line, "VmHWM:", 6))
      *hwm_kb = strtol(line + 6, NULL, 10);
  }
  fclose(f);
}

double bench_self_cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- options and output -------------------------------------------------- */

void bench_die_usage(const char *prog, const char *msg, const char *arg)
{
  fprintf(stderr, "%s: %s", prog, msg);
  if(arg)
    fprintf(stderr, " '%s'", arg);
  fprintf(stderr, "\n(see '%s --help')\n", prog);
  exit(2);
}

long long bench_parse_ll(const char *prog, const char *s, long long min,
                         long long max, const char *flag)
{
  long long v;
  if(mdm_parse_int(s, min, max, &v))
    bench_die_usage(prog, "invalid value for", flag);
  return v;
}

void bench_opt_common(const char *prog, const char *usage, int ch,
                      const char *arg, const char **out_format)
{
  switch(ch) {
  case 'o':
    if(strcmp(arg, "text") && strcmp(arg, "json"))
      bench_die_usage(prog, "-o takes text or json, not", arg);
    *out_format = arg;
    break;
  case 'h':
    fputs(usage, stdout);
    exit(0);
  default:
    bench_die_usage(prog, "bad usage", NULL);
  }
}

void bench_emit(json_t *r, const char *out_format)
{
  char *t = json_dumps(r, !strcmp(out_format, "json")
                          ? JSON_COMPACT | JSON_PRESERVE_ORDER
                          : JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if(t)
    puts(t);
  free(t);
  fflush(stdout);
}
