/*
 * benchutil.h: what the two benchmark clients share, mdm-sim (bench/mdm-sim.c,
 * the device simulator of bench/run) and mdm-tls-bench (bench/tls/tls-bench.c,
 * the zero-trust client of bench/tls/run): latency samples and their
 * percentiles, the devices' facts, the server's address, the CPU and memory
 * figures /proc gives, and the options both parse alike.  It is not part of
 * libmdm; only the benchmark programs link it (bench/benchutil.c).
 */
#ifndef MDM_BENCHUTIL_H
#define MDM_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>
#include "core/buf.h"

/* ---- latency samples ---------------------------------------------------- */

/* Latencies in microseconds.  All zeros is an empty set; one set belongs to
 * one thread at a time. */
struct bench_samples {
  uint32_t *v;
  size_t n, cap;
};

/* Add a latency of ns nanoseconds (kept as microseconds, clamped to
 * 0..UINT32_MAX).  Out of memory the sample is lost and the run goes on. */
void bench_samples_add(struct bench_samples *s, int64_t ns);
/* Add every sample of from to into (a worker's set to the total). */
void bench_samples_merge(struct bench_samples *into,
                         const struct bench_samples *from);
/* Percentile p (0..100) in milliseconds of sorted samples; 0 when empty. */
double bench_samples_pct(const struct bench_samples *s, double p);
/* Sort s and summarise it as the reports read it:
 * {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "n"}.
 * Caller owns the result (json_decref(), or give it to a json_pack "o"). */
json_t *bench_latency_json(struct bench_samples *s);
/* Free the samples; s is an empty set again. */
void bench_samples_release(struct bench_samples *s);

/* ---- the devices' facts -------------------------------------------------- */

/* SplitMix64: one well-mixed 64-bit value of x (the facts' variety, and
 * mdm-sim's random choices). */
uint64_t bench_splitmix64(uint64_t x);

/*
 * Append device idx's facts at generation gen to b: ~1 KB of JSON, unique
 * per idx, six devices in ten Linux, two Windows, two macOS.  Deterministic:
 * the same (idx, gen) always gives the same text, and a new generation
 * changes security.password_age_days (idx % 90 + gen, which names the
 * generation) and the package summary, as a real device's facts drift.
 * mdm-tls-bench sends generation 0, which is what mdm-sim enrolls with.
 * Returns MDM_OK, or MDM_ERR_TOOBIG / MDM_ERR_NOMEM from b.
 */
mdm_rc bench_facts_render(struct mdm_buf *b, size_t idx, uint32_t gen);

/* ---- the server ---------------------------------------------------------- */

struct bench_server {
  char host[256];                 /* without [] around an IPv6 address */
  char host_hdr[300];             /* Host: the URL's authority, as given */
  struct sockaddr_storage addr;
  socklen_t addr_len;
};

/* Parse url (SCHEME://HOST[:PORT][/...], HOST a name, an IPv4 address or
 * [IPv6]; the caller has checked the scheme) into srv and resolve HOST,
 * default_port when the URL names none.  Returns 0, or -1 with a message
 * "PROG: ..." on stderr when there is no host or it cannot be resolved
 * (a malformed port or an unclosed "[" fails without one). */
int bench_server_resolve(const char *prog, const char *url,
                         const char *default_port, struct bench_server *srv);

/* ---- CPU and memory (/proc, getrusage) ----------------------------------- */

/* What /proc/PID/stat says of a process; -1 in each field when unknown. */
struct bench_proc_stat {
  long long ppid;
  double cpu_s;                   /* its user + system CPU seconds */
  double cpu_all_s;               /* the same with its reaped children's */
};

/* Read pid's stat into st.  Returns 0, or -1 (every field -1) when the
 * process is gone, pid <= 0 or the file does not parse. */
int bench_proc_stat_read(long long pid, struct bench_proc_stat *st /* OUT */);
/* VmRSS and VmHWM (kB) of pid; 0 when unknown. */
void bench_proc_rss(long long pid, long *rss_kb /* OUT */,
                    long *hwm_kb /* OUT */);
/* User + system CPU seconds this process (all its threads) used so far. */
double bench_self_cpu_s(void);

/* ---- options and output -------------------------------------------------- */

/* Print "PROG: MSG ['ARG']" and a pointer to PROG --help on stderr, then
 * exit 2. */
_Noreturn void bench_die_usage(const char *prog, const char *msg,
                               const char *arg);
/* s as an integer in [min, max]; otherwise bench_die_usage() with
 * "invalid value for FLAG". */
long long bench_parse_ll(const char *prog, const char *s, long long min,
                         long long max, const char *flag);
/* The getopt_long() results both programs handle alike, for the default
 * case of their switch: 'o' checks arg is text or json and sets
 * *out_format (borrowed from argv), 'h' prints usage on stdout and exits 0,
 * anything else is bad usage (exit 2). */
void bench_opt_common(const char *prog, const char *usage, int ch,
                      const char *arg, const char **out_format);
/* Print a result on stdout, one compact line for -o json, indented for
 * -o text, in the order it was built, and flush. */
void bench_emit(json_t *r, const char *out_format);

#endif
