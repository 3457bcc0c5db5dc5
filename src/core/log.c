/*
 * log.c: text or JSON-lines logging to stderr (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
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

void mdm_log(enum mdm_log_level lvl, const char *fmt, ...)
{
  char msg[2048], ts[40], line[4096];
  va_list ap;
  int n;

  if(lvl < log_min)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  mdm_time_format_ms(mdm_now_ms(), ts, sizeof(ts));
  if(log_json) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level",
                          level_names[lvl], "prog", log_prog, "msg", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    n = snprintf(line, sizeof(line), "%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
  }
  else
    n = snprintf(line, sizeof(line), "%s %s %s: %s\n", ts, level_names[lvl],
                 log_prog, msg);
  if(n > (int)sizeof(line) - 1)
    n = (int)sizeof(line) - 1;
  if(n > 0) {
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
  }
}
