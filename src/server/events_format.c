/*
 * events_format.c: the event stream's pure parts (events_int.h): what a
 * store change becomes as JSON events (docs/events.md is the schema), the
 * setting-name table, and the wire formats of the sinks (RFC 5424 syslog
 * with RFC 6587 octet counting, Splunk HEC envelopes and batches).  No I/O
 * and no shared state: the unit tests call these directly.
 *
 * The JSON is written by hand rather than through jansson: the dispatcher
 * builds every event once, and a 100,000-device re-evaluation can make
 * 100,000 or more of them in a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "core/util.h"
#include "server/events_int.h"

/* ---- events ---------------------------------------------------------- */

struct mdm_event *mdm_event_new(const struct mdm_event *tmpl)
{
  struct mdm_event *e;
  size_t total = tmpl->json_len + 1;
  char *p;
#define EV_STRINGS(X) X(type) X(tenant) X(device_id) X(state) X(setting)
#define ADD_LEN(f) if(tmpl->f) total += strlen(tmpl->f) + 1;
  EV_STRINGS(ADD_LEN)
#undef ADD_LEN
  e = malloc(sizeof(*e) + total);
  if(!e)
    return NULL;
  e->kind = tmpl->kind;
  e->severity = tmpl->severity;
  e->time_ms = tmpl->time_ms;
  e->json_len = tmpl->json_len;
  p = e->data;
  memcpy(p, tmpl->json, tmpl->json_len);
  p[tmpl->json_len] = '\0';
  e->json = p;
  p += tmpl->json_len + 1;
#define COPY(f)                                                             \
  if(tmpl->f) {                                                             \
    size_t n_ = strlen(tmpl->f) + 1;                                        \
    memcpy(p, tmpl->f, n_);                                                 \
    e->f = p;                                                               \
    p += n_;                                                                \
  }                                                                         \
  else                                                                      \
    e->f = NULL;
  EV_STRINGS(COPY)
#undef COPY
#undef EV_STRINGS
  atomic_init(&e->refs, 1);
  return e;
}

void mdm_event_ref(struct mdm_event *e)
{
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void mdm_event_unref(struct mdm_event *e)
{
  if(e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
    free(e);
}

void mdm_ev_list_release(struct mdm_ev_list *l)
{
  size_t i;
  for(i = 0; i < l->n; i++)
    mdm_event_unref(l->items[i]);
  l->n = 0;
}

/* ---- the setting names ------------------------------------------------
 * The brief's SIEM rule filters on setting="DeviceEncryption"; Intune
 * names the settings of its compliance reports in the same style.  A rule
 * gets the name of the fact it checks: an exact path wins, else the
 * longest prefix.  Keep docs/events.md and docs/policy-reference.md in
 * step with this table. */
static const struct {
  const char *fact;
  int is_prefix;      /* fact is a prefix of the paths it names */
  const char *setting;
} setting_table[] = {
  {"encryption.", 1, "DeviceEncryption"},
  {"os.version", 0, "OsVersion"},
  {"os.build", 0, "OsVersion"},
  {"os.kernel", 0, "OsVersion"},
  {"os.name", 0, "OperatingSystem"},
  {"integrity.rooted", 0, "Jailbreak"},
  {"integrity.secure_boot", 0, "SecureBoot"},
  {"integrity.", 1, "DeviceIntegrity"},
  {"security.firewall_enabled", 0, "Firewall"},
  {"security.screen_lock_enabled", 0, "ScreenLock"},
  {"security.password_age_days", 0, "PasswordExpiration"},
  {"security.password", 1, "Password"},
  {"security.antivirus", 1, "Antivirus"},
  {"network.vpn_connected", 0, "Vpn"},
  {"network.ssid", 0, "WiFi"},
  {"agent.version", 0, "AgentVersion"},
  {"platform", 0, "Platform"},
  {"model", 0, "DeviceModel"},
};

const char *mdm_ev_setting_name(const char *fact, const char *rule)
{
  size_t i, best_len = 0;
  const char *best = NULL;
  if(!fact || !*fact)
    return rule && *rule ? rule : NULL;
  for(i = 0; i < sizeof(setting_table) / sizeof(setting_table[0]); i++) {
    const char *f = setting_table[i].fact;
    size_t n = strlen(f);
    if(!setting_table[i].is_prefix) {
      if(!strcmp(fact, f))
        return setting_table[i].setting;
    }
    else if(!strncmp(fact, f, n) && n > best_len) {
      best = setting_table[i].setting;
      best_len = n;
    }
  }
  if(best)
    return best;
  return rule && *rule ? rule : fact;
}

/* ---- ids ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void mdm_ev_ids_init(struct mdm_ev_ids *ids, uint64_t seed)
{
  memset(ids, 0, sizeof(*ids));
  ids->seed = seed;
  ids->ts_sec = INT64_MIN;
  mdm_buf_init(&ids->scratch, MDM_EV_MAX);
}

void mdm_ev_ids_release(struct mdm_ev_ids *ids)
{
  mdm_buf_release(&ids->scratch);
}

/* "2024-11-28T13:20:00.123Z" into out[25], the seconds formatted once per
 * second. */
static void format_time(struct mdm_ev_ids *ids, int64_t ms, char *out)
{
  int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int frac = (int)(ms - sec * 1000);
  if(sec != ids->ts_sec) {
    char full[40];
    mdm_time_format(sec, full, sizeof(full));   /* ...:SSZ */
    full[19] = '\0';
    memcpy(ids->ts_prefix, full, 20);
    ids->ts_sec = sec;
  }
  memcpy(out, ids->ts_prefix, 19);
  out[19] = '.';
  out[20] = (char)('0' + frac / 100);
  out[21] = (char)('0' + frac / 10 % 10);
  out[22] = (char)('0' + frac % 10);
  out[23] = 'Z';
  out[24] = '\0';
}

void mdm_ev_id_next(struct mdm_ev_ids *ids, char out[37])
{
  uint64_t x = ids->seed ^ (ids->n++ * 0xd1342543de82ef95ULL);
  uint64_t hi = splitmix64(&x), lo = splitmix64(&x);
  /* UUID version 4 layout: the bits say "random". */
  hi = (hi & ~0xf000ULL) | 0x4000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
           (unsigned)((hi >> 16) & 0xffff), (unsigned)(hi & 0xffff),
           (unsigned)(lo >> 48),
           (unsigned long long)(lo & 0xffffffffffffULL));
}

/* ---- JSON --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p)
{
  unsigned char c = p[0];
  if(c < 0x80)
    return 1;
  if(c >= 0xc2 && c <= 0xdf)
    return (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if(c >= 0xe0 && c <= 0xef) {
    if((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
      return 0;
    if((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
      return 0;  /* overlong, or a surrogate */
    return 3;
  }
  if(c >= 0xf0 && c <= 0xf4) {
    if((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
       (p[3] & 0xc0) != 0x80)
      return 0;
    if((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
      return 0;
    return 4;
  }
  return 0;
}

mdm_rc mdm_ev_json_str(struct mdm_buf *b, const char *s)
{
  const unsigned char *p = (const unsigned char *)s, *run;
  mdm_rc rc;
  if(!s)
    return mdm_buf_append(b, "null", 4);
  rc = mdm_buf_append(b, "\"", 1);
  run = p;
  while(!rc && *p) {
    size_t n;
    char esc[8];
    if(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
      p++;
      continue;
    }
    n = *p >= 0x80 ? utf8_len(p) : 0;
    if(n) {
      p += n;
      continue;
    }
    rc = mdm_buf_append(b, run, (size_t)(p - run));
    if(rc)
      break;
    if(*p == '"')
      rc = mdm_buf_append(b, "\\\"", 2);
    else if(*p == '\\')
      rc = mdm_buf_append(b, "\\\\", 2);
    else if(*p == '\n')
      rc = mdm_buf_append(b, "\\n", 2);
    else if(*p == '\t')
      rc = mdm_buf_append(b, "\\t", 2);
    else if(*p == '\r')
      rc = mdm_buf_append(b, "\\r", 2);
    else if(*p < 0x80) {
      snprintf(esc, sizeof(esc), "\\u%04x", *p);
      rc = mdm_buf_append(b, esc, 6);
    }
    else
      rc = mdm_buf_append(b, "\xef\xbf\xbd", 3);  /* U+FFFD */
    p++;
    run = p;
  }
  if(!rc)
    rc = mdm_buf_append(b, run, (size_t)(p - run));
  if(!rc)
    rc = mdm_buf_append(b, "\"", 1);
  return rc;
}

/* ,"key": (key is one of ours: plain ASCII, short) */
static mdm_rc put_key(struct mdm_buf *b, const char *key)
{
  char tmp[64];
  size_t n = strlen(key);
  if(n + 4 > sizeof(tmp))
    return MDM_ERR_TOOBIG;
  tmp[0] = ',';
  tmp[1] = '"';
  memcpy(tmp + 2, key, n);
  tmp[n + 2] = '"';
  tmp[n + 3] = ':';
  return mdm_buf_append(b, tmp, n + 4);
}

/* ,"key":"value" (value NULL: null) */
static mdm_rc put_str(struct mdm_buf *b, const char *key, const char *val)
{
  mdm_rc rc = put_key(b, key);
  return rc ? rc : mdm_ev_json_str(b, val);
}

/* ,"key":<raw JSON> (NULL: null) */
static mdm_rc put_raw(struct mdm_buf *b, const char *key, const char *json)
{
  mdm_rc rc = put_key(b, key);
  return rc ? rc : mdm_buf_puts(b, json ? json : "null");
}

/* A jansson value as JSON (absent: null). */
static mdm_rc put_value(struct mdm_buf *b, json_t *v)
{
  char *s;
  mdm_rc rc;
  if(!v)
    return mdm_buf_append(b, "null", 4);
  if(json_is_string(v))
    return mdm_ev_json_str(b, json_string_value(v));
  s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
  if(!s)
    return MDM_ERR_NOMEM;
  rc = mdm_buf_puts(b, s);
  free(s);
  return rc;
}

/* ,"key":<value> for a jansson value (absent: null). */
static mdm_rc put_json(struct mdm_buf *b, const char *key, json_t *v)
{
  mdm_rc rc = put_key(b, key);
  return rc ? rc : put_value(b, v);
}

/* {"id":..,"time":..,"type":..,"tenant":..,"tenantId":..,"deviceId":..,
 *  "userPrincipalName":..   (no closing brace) */
static mdm_rc put_head(struct mdm_buf *b, struct mdm_ev_ids *ids,
                       int64_t at_ms, const char *type,
                       const char *tenant_id, const char *tenant_name,
                       const char *device_id, const char *upn)
{
  char head[96];
  mdm_rc rc;
  /* {"id":"<36>","time":"<24>" */
  memcpy(head, "{\"id\":\"", 7);
  mdm_ev_id_next(ids, head + 7);
  memcpy(head + 43, "\",\"time\":\"", 10);
  format_time(ids, at_ms, head + 53);
  head[77] = '"';
  rc = mdm_buf_append(b, head, 78);
  if(!rc)
    rc = put_str(b, "type", type);
  if(!rc)
    rc = put_str(b, "tenant", tenant_name ? tenant_name : tenant_id);
  if(!rc)
    rc = put_str(b, "tenantId", tenant_id);
  if(!rc)
    rc = put_str(b, "deviceId", device_id);
  if(!rc)
    rc = put_str(b, "userPrincipalName", upn);
  return rc;
}

static mdm_rc list_add(struct mdm_ev_list *out, const struct mdm_event *tmpl)
{
  struct mdm_event *e;
  if(out->n >= sizeof(out->items) / sizeof(out->items[0]))
    return MDM_ERR_TOOBIG;
  e = mdm_event_new(tmpl);
  if(!e)
    return MDM_ERR_NOMEM;
  out->items[out->n++] = e;
  return MDM_OK;
}

/* ---- compliance changes ---------------------------------------------- */

static int state_severity(const char *state)
{
  if(state && !strcmp(state, "noncompliant"))
    return 4;  /* warning */
  if(state && !strcmp(state, "compliant"))
    return 6;  /* informational */
  return 5;    /* notice */
}

/* The fields every compliance.changed event starts with (also the
 * truncated form of one). */
static mdm_rc compliance_head(struct mdm_buf *b, const struct mdm_change *ch,
                              const char *tenant_name,
                              struct mdm_ev_ids *ids, const char *setting,
                              const char *state)
{
  mdm_rc rc = put_head(b, ids, ch->at_ms, "compliance.changed",
                       ch->tenant_id, tenant_name, ch->device_id, ch->upn);
  if(!rc)
    rc = put_str(b, "complianceState", state);
  if(!rc)
    rc = put_str(b, "setting", setting);
  if(!rc)
    rc = put_str(b, "deviceComplianceState", ch->state);
  if(!rc)
    rc = put_str(b, "previousComplianceState", ch->prev_state);
  return rc;
}

/* One compliance.changed event: the setting's state (or the device's when
 * setting is NULL) and the rules behind it (reasons[idx[0..n)]). */
static mdm_rc compliance_event(const struct mdm_change *ch,
                               const char *tenant_name,
                               struct mdm_ev_ids *ids, const char *setting,
                               const char *state, json_t *reasons,
                               const size_t *idx, size_t n,
                               struct mdm_ev_list *out)
{
  struct mdm_buf *b = &ids->scratch;
  struct mdm_event t;
  json_t *first = n ? json_array_get(reasons, idx[0]) : NULL;
  size_t i;
  mdm_rc rc;

  mdm_buf_reset(b);   /* the scratch buffer: no allocation per event */
  rc = compliance_head(b, ch, tenant_name, ids, setting, state);
  if(!rc)
    rc = put_json(b, "policy", json_object_get(first, "policy"));
  if(!rc)
    rc = put_json(b, "rule", json_object_get(first, "rule"));
  if(!rc)
    rc = put_json(b, "fact", json_object_get(first, "fact"));
  if(!rc)
    rc = put_json(b, "reason", json_object_get(first, "message"));
  if(!rc)
    rc = put_json(b, "expected", json_object_get(first, "expected"));
  if(!rc)
    rc = put_json(b, "actual", json_object_get(first, "actual"));
  if(!rc)
    rc = mdm_buf_puts(b, ",\"rules\":[");
  for(i = 0; !rc && i < n; i++) {
    json_t *r = json_array_get(reasons, idx[i]);
    rc = mdm_buf_puts(b, i ? ",{\"policy\":" : "{\"policy\":");
    if(!rc)
      rc = put_value(b, json_object_get(r, "policy"));
    if(!rc)
      rc = put_json(b, "rule", json_object_get(r, "rule"));
    if(!rc)
      rc = put_json(b, "fact", json_object_get(r, "fact"));
    if(!rc)
      rc = put_json(b, "state", json_object_get(r, "state"));
    if(!rc)
      rc = put_json(b, "reason", json_object_get(r, "message"));
    if(!rc)
      rc = mdm_buf_puts(b, "}");
  }
  if(!rc)
    rc = mdm_buf_puts(b, "]}");
  if(rc == MDM_ERR_TOOBIG) {
    /* Values too large to report (a huge fact): the names stay. */
    mdm_buf_reset(b);
    rc = compliance_head(b, ch, tenant_name, ids, setting, state);
    if(!rc)
      rc = mdm_buf_puts(b, ",\"truncated\":true}");
  }
  if(rc) {
    return rc;
  }
  memset(&t, 0, sizeof(t));
  t.kind = MDM_EV_COMPLIANCE;
  t.severity = state_severity(state);
  t.time_ms = ch->at_ms;
  t.type = "compliance.changed";
  t.tenant = tenant_name ? tenant_name : ch->tenant_id;
  t.device_id = ch->device_id;
  t.state = state;
  t.setting = setting;
  t.json = b->data;
  t.json_len = b->len;
  rc = list_add(out, &t);
  return rc;
}

/* The settings of a verdict: reasons grouped by setting name, in order of
 * first appearance; one event each. */
static mdm_rc from_compliance(const struct mdm_change *ch,
                              const char *tenant_name,
                              struct mdm_ev_ids *ids,
                              struct mdm_ev_list *out)
{
  json_t *reasons = json_loads(ch->reasons_json ? ch->reasons_json : "[]",
                               0, NULL);
  size_t n = json_array_size(reasons), i, j, n_groups = 0;
  const char **names = NULL;
  size_t *idx = NULL, *group = NULL;
  mdm_rc rc = MDM_OK;

  if(!ch->state || !strcmp(ch->state, "compliant") || !n) {
    rc = compliance_event(ch, tenant_name, ids, NULL,
                          ch->state ? ch->state : "unknown", reasons, NULL,
                          0, out);
    json_decref(reasons);
    return rc;
  }
  names = calloc(n, sizeof(*names));
  idx = calloc(n, sizeof(*idx));
  group = calloc(n, sizeof(*group));
  if(!names || !idx || !group) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  for(i = 0; i < n; i++) {
    json_t *r = json_array_get(reasons, i);
    names[i] = mdm_ev_setting_name(
      json_string_value(json_object_get(r, "fact")),
      json_string_value(json_object_get(r, "rule")));
  }
  /* group[g] = first reason index of group g */
  for(i = 0; i < n; i++) {
    for(j = 0; j < n_groups; j++) {
      const char *a = names[group[j]], *c = names[i];
      if((!a && !c) || (a && c && !strcmp(a, c)))
        break;
    }
    if(j == n_groups)
      group[n_groups++] = i;
  }
  for(j = 0; !rc && j < n_groups; j++) {
    const char *setting = names[group[j]];
    const char *state = "unknown";
    size_t k = 0;
    for(i = group[j]; i < n; i++) {
      const char *c = names[i];
      json_t *r;
      if(!((!setting && !c) || (setting && c && !strcmp(setting, c))))
        continue;
      r = json_array_get(reasons, i);
      idx[k++] = i;
      if(json_string_value(json_object_get(r, "state")) &&
         !strcmp(json_string_value(json_object_get(r, "state")),
                 "noncompliant"))
        state = "noncompliant";
    }
    rc = compliance_event(ch, tenant_name, ids, setting, state, reasons, idx,
                          k, out);
    if(rc == MDM_ERR_TOOBIG && out->n) {
      /* More settings than one change may report: count the rest. */
      out->n_merged += n_groups - j;
      rc = MDM_OK;
      break;
    }
  }
out:
  free(names);
  free(idx);
  free(group);
  json_decref(reasons);
  return rc;
}

/* ---- audit records ----------------------------------------------------- */

/* command.create -> queued, ... (CONTRACT §5's lifecycle names). */
static void command_transition(const struct mdm_change *ch, char *out,
                               size_t n)
{
  const char *verb = ch->action + 8;
  if(!strcmp(verb, "create"))
    mdm_strlcpy(out, "queued", n);
  else if(!strcmp(verb, "send"))
    mdm_strlcpy(out, "sent", n);
  else if(!strcmp(verb, "expire"))
    mdm_strlcpy(out, "expired", n);
  else if(!strcmp(verb, "cancel"))
    mdm_strlcpy(out, "canceled", n);
  else if(!strcmp(verb, "result")) {
    json_t *d = ch->detail_json ? json_loads(ch->detail_json, 0, NULL)
                                : NULL;
    const char *st = json_string_value(json_object_get(d, "status"));
    mdm_strlcpy(out, st ? st : "result", n);
    json_decref(d);
  }
  else
    mdm_strlcpy(out, verb, n);
}

static mdm_rc from_audit(const struct mdm_change *ch, const char *tenant_name,
                         struct mdm_ev_ids *ids, struct mdm_ev_list *out)
{
  int is_command = !strncmp(ch->action, "command.", 8);
  char type[96], status[32] = "";
  struct mdm_buf *b = &ids->scratch;
  struct mdm_event t;
  int is_big = ch->detail_json && strlen(ch->detail_json) > MDM_EV_MAX / 2;
  mdm_rc rc;

  if(is_command) {
    command_transition(ch, status, sizeof(status));
    snprintf(type, sizeof(type), "command.%s", status);
  }
  else
    snprintf(type, sizeof(type), "audit.%s", ch->action);
  mdm_buf_reset(b);   /* the scratch buffer */
  rc = put_head(b, ids, ch->at_ms, type, ch->tenant_id, tenant_name,
                ch->device_id, ch->upn);
  if(!rc && is_command)
    rc = put_str(b, "commandId", ch->target);
  if(!rc && is_command)
    rc = put_str(b, "commandType", ch->command_type);
  if(!rc && is_command)
    rc = put_str(b, "status", status);
  if(!rc)
    rc = put_str(b, "actor", ch->actor);
  if(!rc)
    rc = put_str(b, "action", ch->action);
  if(!rc)
    rc = put_str(b, "target", ch->target);
  if(!rc) {
    char num[48];
    int k = snprintf(num, sizeof(num), ",\"auditSeq\":%lld",
                     (long long)ch->seq);
    rc = mdm_buf_append(b, num, (size_t)k);
  }
  if(!rc)
    rc = put_str(b, "auditHash", ch->hash);
  if(!rc)
    rc = put_raw(b, "detail", is_big ? NULL : ch->detail_json);
  if(!rc && is_big)
    rc = mdm_buf_puts(b, ",\"truncated\":true");
  if(!rc)
    rc = mdm_buf_puts(b, "}");
  if(rc) {
    return rc;
  }
  memset(&t, 0, sizeof(t));
  t.kind = is_command ? MDM_EV_COMMAND : MDM_EV_AUDIT;
  t.severity = is_command ? (!strcmp(status, "failed") ||
                             !strcmp(status, "expired") ? 4 : 6)
                          : 5;
  t.time_ms = ch->at_ms;
  t.type = type;
  t.tenant = tenant_name ? tenant_name : ch->tenant_id;
  t.device_id = ch->device_id;
  t.json = b->data;
  t.json_len = b->len;
  rc = list_add(out, &t);
  return rc;
}

mdm_rc mdm_ev_from_change(const struct mdm_change *ch,
                          const char *tenant_name, struct mdm_ev_ids *ids,
                          struct mdm_ev_list *out)
{
  out->n = 0;
  out->n_merged = 0;
  if(ch->kind == MDM_CHANGE_COMPLIANCE)
    return from_compliance(ch, tenant_name, ids, out);
  if(ch->kind == MDM_CHANGE_AUDIT && ch->action)
    return from_audit(ch, tenant_name, ids, out);
  return MDM_ERR_INVAL;
}

mdm_rc mdm_ev_access(int64_t at_ms, const char *tenant_id,
                     const char *tenant_name, const char *device_id,
                     const char *upn, const char *detail_json,
                     struct mdm_ev_ids *ids, struct mdm_event **out)
{
  struct mdm_buf *b = &ids->scratch;
  struct mdm_event t;
  json_t *d = detail_json ? json_loads(detail_json, 0, NULL) : NULL;
  const char *key;
  json_t *v;
  mdm_rc rc;

  *out = NULL;
  mdm_buf_reset(b);   /* the scratch buffer */
  rc = put_head(b, ids, at_ms, "access.denied", tenant_id, tenant_name,
                device_id, upn);
  /* The detail's fields sit beside the common ones (which win). */
  json_object_foreach(d, key, v) {
    if(rc)
      break;
    if(!strcmp(key, "id") || !strcmp(key, "time") || !strcmp(key, "type") ||
       !strcmp(key, "tenant") || !strcmp(key, "tenantId") ||
       !strcmp(key, "deviceId") || !strcmp(key, "userPrincipalName"))
      continue;
    rc = mdm_buf_puts(b, ",");
    if(!rc)
      rc = mdm_ev_json_str(b, key);
    if(!rc) {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
                                JSON_SORT_KEYS);
      rc = s ? mdm_buf_printf(b, ":%s", s) : MDM_ERR_NOMEM;
      free(s);
    }
  }
  json_decref(d);
  if(!rc)
    rc = mdm_buf_puts(b, "}");
  if(rc) {
    return rc;
  }
  memset(&t, 0, sizeof(t));
  t.kind = MDM_EV_ACCESS;
  t.severity = 4;
  t.time_ms = at_ms;
  t.type = "access.denied";
  t.tenant = tenant_name ? tenant_name : tenant_id;
  t.device_id = device_id;
  t.json = b->data;
  t.json_len = b->len;
  *out = mdm_event_new(&t);
  return *out ? MDM_OK : MDM_ERR_NOMEM;
}

/* ---- syslog ------------------------------------------------------------ */

int mdm_syslog_facility(const char *name)
{
  static const struct {
    const char *name;
    int code;
  } names[] = {{"kern", 0}, {"user", 1}, {"daemon", 3}, {"auth", 4},
               {"syslog", 5}, {"authpriv", 10}, {"local0", 16},
               {"local1", 17}, {"local2", 18}, {"local3", 19},
               {"local4", 20}, {"local5", 21}, {"local6", 22},
               {"local7", 23}};
  long long n;
  size_t i;
  for(i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if(!strcmp(name, names[i].name))
      return names[i].code;
  if(!mdm_parse_int(name, 0, 23, &n))
    return (int)n;
  return -1;
}

/* A header field: printable US-ASCII (33..126) cut at max, "-" if empty. */
static mdm_rc put_header_field(struct mdm_buf *b, const char *s, size_t max)
{
  char tmp[256];
  size_t i;
  if(!s || !*s)
    return mdm_buf_puts(b, "- ");
  if(max >= sizeof(tmp))
    max = sizeof(tmp) - 1;
  for(i = 0; s[i] && i < max; i++)
    tmp[i] = (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126
               ? s[i] : '_';
  tmp[i++] = ' ';
  return mdm_buf_append(b, tmp, i);
}

/* PARAM-NAME="value" with '"', '\' and ']' escaped (RFC 5424 6.3.3). */
static mdm_rc put_sd_param(struct mdm_buf *b, const char *name,
                           const char *val)
{
  const char *p, *run;
  mdm_rc rc;
  if(!val)
    return MDM_OK;
  rc = mdm_buf_printf(b, " %s=\"", name);
  for(p = run = val; !rc && *p; p++) {
    if(*p != '"' && *p != '\\' && *p != ']')
      continue;
    rc = mdm_buf_append(b, run, (size_t)(p - run));
    if(!rc)
      rc = mdm_buf_append(b, "\\", 1);
    run = p;
  }
  if(!rc)
    rc = mdm_buf_append(b, run, (size_t)(p - run));
  if(!rc)
    rc = mdm_buf_append(b, "\"", 1);
  return rc;
}

mdm_rc mdm_syslog_frame(struct mdm_buf *b, int facility,
                        const char *hostname, const char *app, int pid,
                        const struct mdm_event *e)
{
  struct mdm_buf m;
  char ts[40], procid[24];
  mdm_rc rc;

  mdm_buf_init(&m, MDM_EV_MAX + 4096);
  mdm_time_format_ms(e->time_ms, ts, sizeof(ts));
  snprintf(procid, sizeof(procid), "%d", pid);
  rc = mdm_buf_printf(&m, "<%d>1 %s ", facility * 8 + (e->severity & 7), ts);
  if(!rc)
    rc = put_header_field(&m, hostname, 255);
  if(!rc)
    rc = put_header_field(&m, app, 48);
  if(!rc)
    rc = put_header_field(&m, procid, 128);
  if(!rc)
    rc = put_header_field(&m, e->type, 32);
  if(!rc)
    rc = mdm_buf_puts(&m, "[" MDM_SYSLOG_SDID);
  if(!rc)
    rc = put_sd_param(&m, "type", e->type);
  if(!rc)
    rc = put_sd_param(&m, "tenant", e->tenant);
  if(!rc)
    rc = put_sd_param(&m, "deviceId", e->device_id);
  if(!rc)
    rc = put_sd_param(&m, "complianceState", e->state);
  if(!rc)
    rc = put_sd_param(&m, "setting", e->setting);
  if(!rc)
    rc = mdm_buf_puts(&m, "] ");
  if(!rc)
    rc = mdm_buf_append(&m, e->json, e->json_len);
  if(!rc)
    rc = mdm_buf_printf(b, "%zu ", m.len);
  if(!rc)
    rc = mdm_buf_append(b, m.data, m.len);
  mdm_buf_release(&m);
  return rc;
}

/* ---- Splunk HEC --------------------------------------------------------- */

mdm_rc mdm_hec_envelope(struct mdm_buf *b, const struct mdm_hec_meta *m,
                        const struct mdm_event *e)
{
  const char *st;
  size_t mark = b->len;
  mdm_rc rc;
  switch(e->kind) {
  case MDM_EV_COMPLIANCE:
    st = m->sourcetype;
    break;
  case MDM_EV_COMMAND:
    st = "mdm:command";
    break;
  case MDM_EV_ACCESS:
    st = "mdm:access";
    break;
  default:
    st = "mdm:audit";
  }
  rc = mdm_buf_printf(b, "{\"time\":%lld.%03lld",
                      (long long)(e->time_ms / 1000),
                      (long long)(e->time_ms % 1000));
  if(!rc)
    rc = put_str(b, "host", m->host);
  if(!rc)
    rc = put_str(b, "source", m->source);
  if(!rc)
    rc = put_str(b, "sourcetype", st);
  if(!rc && m->index && *m->index)
    rc = put_str(b, "index", m->index);
  if(!rc)
    rc = mdm_buf_puts(b, ",\"event\":");
  if(!rc)
    rc = mdm_buf_append(b, e->json, e->json_len);
  if(!rc)
    rc = mdm_buf_puts(b, "}\n");
  if(rc) {
    /* leave b as it was */
    b->len = mark;
    if(b->data)
      b->data[mark] = '\0';
  }
  return rc;
}

size_t mdm_hec_batch_len(const char *data, size_t len, size_t max_events,
                         size_t max_bytes, size_t *n_events)
{
  size_t end = 0, n = 0;
  const char *p = data, *stop = data + len;
  *n_events = 0;
  while(p < stop && n < max_events) {
    const char *nl = memchr(p, '\n', (size_t)(stop - p));
    size_t next;
    if(!nl)
      break;
    next = (size_t)(nl + 1 - data);
    if(n && next > max_bytes)
      break;
    end = next;
    n++;
    p = nl + 1;
  }
  *n_events = n;
  return end;
}

int mdm_ev_parse_hostport(const char *s, char *host, size_t host_len,
                          int *port)
{
  const char *colon;
  size_t hl;
  long long n;
  if(*s == '[') {
    const char *close = strchr(s, ']');
    if(!close || close[1] != ':')
      return -1;
    hl = (size_t)(close - s - 1);
    s++;
    colon = close + 1;
  }
  else {
    colon = strrchr(s, ':');
    if(!colon)
      return -1;
    hl = (size_t)(colon - s);
  }
  if(!hl || hl >= host_len || strchr(colon + 1, '/'))
    return -1;
  if(mdm_parse_int(colon + 1, 1, 65535, &n))
    return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  *port = (int)n;
  return 0;
}
