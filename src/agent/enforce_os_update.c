/*
 * enforce_os_update.c: the os_update setting: a maintenance window
 * ("HH:MM-HH:MM", 24-hour clock, may wrap midnight) and a deadline (an RFC
 * 3339 UTC time, or a duration such as 7d counted from when an update is
 * asked for).  Nothing is updated now: the setting is checked and kept in
 * <state-dir>/os_update.json (compact JSON with sorted keys, mode 0600) for
 * the os_update command to read when it runs.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "agent/enforce.h"
#include "agent/state.h"
#include "core/util.h"

/* "HH:MM" at s into minutes since midnight, or -1. */
static int hhmm(const char *s)
{
  static const int at[] = {0, 1, 3, 4};
  size_t i;
  int h, m;
  for(i = 0; i < 4; i++)
    if(s[at[i]] < '0' || s[at[i]] > '9')
      return -1;
  if(s[2] != ':')
    return -1;
  h = (s[0] - '0') * 10 + (s[1] - '0');
  m = (s[3] - '0') * 10 + (s[4] - '0');
  return h < 24 && m < 60 ? h * 60 + m : -1;
}

static int is_window(json_t *v)
{
  const char *s = json_string_value(v);
  int a, b;
  if(!s || json_string_length(v) != 11 || strlen(s) != 11 || s[5] != '-')
    return 0;
  a = hhmm(s);
  b = hhmm(s + 6);
  return a >= 0 && b >= 0 && a != b;
}

static int is_deadline(json_t *v)
{
  const char *s = json_string_value(v);
  int64_t t;
  if(!s || strlen(s) != json_string_length(v) || strlen(s) > 64)
    return 0;
  return mdm_time_parse(s, &t) == MDM_OK ||
         mdm_duration_parse(s, &t) == MDM_OK;
}

void mdm_enforce_os_update(const struct mdm_enforce_ctx *ctx, json_t *value,
                           struct mdm_enforce_result *res)
{
  char path[PATH_MAX], *text = NULL;
  const char *k;
  json_t *v;
  mdm_rc rc;

  if(!json_is_object(value)) {
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "os_update: expected a mapping");
    return;
  }
  json_object_foreach(value, k, v) {
    if(!strcmp(k, "window")) {
      if(!is_window(v)) {
        mdm_enforce_set(res, MDM_ENFORCE_FAILED, "os_update.window: "
                        "expected HH:MM-HH:MM");
        return;
      }
    }
    else if(!strcmp(k, "deadline")) {
      if(!is_deadline(v)) {
        mdm_enforce_set(res, MDM_ENFORCE_FAILED, "os_update.deadline: "
                        "expected an RFC 3339 UTC time or a duration such "
                        "as 7d");
        return;
      }
    }
    else {
      mdm_enforce_set(res, MDM_ENFORCE_FAILED, "os_update.%.64s: not "
                      "supported by mdm-agent", k);
      return;
    }
  }
  rc = mdm_state_path(ctx->state_dir, MDM_ENFORCE_OS_UPDATE_FILE, path,
                      sizeof(path));
  if(!rc) {
    text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    rc = text ? MDM_OK : MDM_ERR_NOMEM;
  }
  if(!rc)
    rc = mdm_enforce_write(path, text, strlen(text), 0600, &res->is_changed);
  if(rc)
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "cannot keep the setting in the "
                    "state dir: %s", mdm_strerror(rc));
  free(text);
}

int mdm_enforce_os_update_remove(const struct mdm_enforce_ctx *ctx)
{
  char path[PATH_MAX];
  if(mdm_state_path(ctx->state_dir, MDM_ENFORCE_OS_UPDATE_FILE, path,
                    sizeof(path)))
    return 0;
  return unlink(path) == 0;
}
