/*
 * log.c: text or JSON-lines logging to stderr (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "core/log.h"
#include "core/util.h"

static const char *log_prog = "mdm";
static int log_json;
static enum mdm_log_level log_min = MDM_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void mdm_log_setup(const char *prog, int json, enum mdm_log_level min)
{
  log_prog = prog;
  log_json = json;
  log_min = min;
}

/* Make msg valid UTF-8 without control characters, in place: a log line
 * must stay one line, and a JSON encoder refuses invalid UTF-8. */
static void log_sanitize(char *msg)
{
  unsigned char *p = (unsigned char *)msg;
  while(*p) {
    int n = 0, k;
    if(*p < 0x20 || *p == 0x7f) {
      *p++ = '?';
      continue;
    }
    if(*p < 0x80) {
      p++;
      continue;
    }
    if((*p & 0xe0) == 0xc0 && *p >= 0xc2)
      n = 1;
    else if((*p & 0xf0) == 0xe0)
      n = 2;
    else if((*p & 0xf8) == 0xf0 && *p <= 0xf4)
      n = 3;
    for(k = 1; n && k <= n; k++)
      if((p[k] & 0xc0) != 0x80)
        n = 0;
    if(!n) {
      *p++ = '?';
      continue;
    }
    p += n + 1;
  }
}

void mdm_log(enum mdm_log_level lvl, const char *fmt, ...)
{
  char msg[2048], ts[40], *line = NULL;
  va_list ap;
  size_t n;

  if(lvl < log_min)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* A cut may have split a UTF-8 sequence: sanitizing repairs that too. */
  log_sanitize(msg);
  mdm_time_format_ms(mdm_now_ms(), ts, sizeof(ts));
  if(log_json) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level",
                          level_names[lvl], "prog", log_prog, "msg", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if(!s)
      return;
    n = strlen(s);
    line = malloc(n + 2);
    if(line) {
      memcpy(line, s, n);
      line[n++] = '\n';
    }
    free(s);
  }
  else {
    n = strlen(ts) + strlen(level_names[lvl]) + strlen(log_prog) +
        strlen(msg) + 8;
    line = malloc(n);
    if(line)
      n = (size_t)snprintf(line, n, "%s %s %s: %s\n", ts, level_names[lvl],
                           log_prog, msg);
  }
  if(line) {
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    free(line);
  }
}
