/*
 * api_reports.c: the compliance report, GET /v1/reports/compliance: every
 * active device of the caller's tenant as CSV (RFC 4180) or as a STIX 2.1
 * bundle (docs/api.md "Reports").  The report is written from one read of
 * the store (so it is a snapshot) into an unlinked temporary file in the
 * data directory, and sent from that file: 100,000 devices cost disk, not
 * memory.  STIX ids are UUIDv5 (deterministic): the same state exported
 * twice gives the same objects.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "core/log.h"
#include "core/util.h"
#include "server/api.h"

/* Reports made at once; more get 503 (each holds a store reader). */
#define REPORT_MAX_RUNNING 2
/* Staged output is written to the file past this many bytes. */
#define REPORT_FLUSH (256 * 1024)
/* The bound on what one device stages (its objects or its row). */
#define REPORT_MAX_ITEM (16 * 1024 * 1024)

/* The namespace of mdm's STIX ids: UUIDv5 of "https://mdm.dev/stix/2.1"
 * in the URL namespace. */
#define STIX_NS_MDM "96603a11-51cb-5950-8b61-47f159617388"
/* STIX 2.1 §2.9: the namespace of deterministic SCO ids. */
#define STIX_NS_SCO "00abedb4-aa42-466c-9c01-fed23315a9b7"

#define CSV_HEADER                                                          \
  "id,serialNumber,deviceName,userPrincipalName,operatingSystem,osVersion," \
  "complianceState,failingRules,lastSyncDateTime,enrolledDateTime\r\n"

static atomic_int n_running;

/* ---- pure helpers ------------------------------------------------------- */

mdm_rc mdm_csv_field(struct mdm_buf *b, const char *s)
{
  int must_quote, is_formula;
  mdm_rc rc = MDM_OK;

  if(!s || !*s)
    return MDM_OK;
  must_quote = s[strcspn(s, ",\"\r\n")] != '\0';
  is_formula = strchr("=+-@\t\r", s[0]) != NULL;
  if(must_quote)
    rc = mdm_buf_append(b, "\"", 1);
  if(!rc && is_formula)
    rc = mdm_buf_append(b, "'", 1);
  while(!rc && *s) {
    size_t n = strcspn(s, "\"");
    rc = mdm_buf_append(b, s, n);
    s += n;
    if(!rc && *s == '"') {
      rc = mdm_buf_append(b, "\"\"", 2);
      s++;
    }
  }
  if(!rc && must_quote)
    rc = mdm_buf_append(b, "\"", 1);
  return rc;
}

static int hexval(char c)
{
  if(c >= '0' && c <= '9')
    return c - '0';
  if(c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if(c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

mdm_rc mdm_uuid_v5(const char *ns, const void *name, size_t n, char *out)
{
  unsigned char raw[16], md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx;
  int i, k = 0, ok;

  if(!ns || !mdm_is_uuid(ns))
    return MDM_ERR_INVAL;
  for(i = 0; ns[i] && k < 16; i++) {
    if(ns[i] == '-')
      continue;
    raw[k++] = (unsigned char)(hexval(ns[i]) << 4 | hexval(ns[i + 1]));
    i++;
  }
  if(k != 16)
    return MDM_ERR_INVAL;
  ctx = EVP_MD_CTX_new();
  if(!ctx)
    return MDM_ERR_NOMEM;
  ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
       EVP_DigestUpdate(ctx, raw, sizeof(raw)) == 1 &&
       EVP_DigestUpdate(ctx, name, n) == 1 &&
       EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len >= 16;
  EVP_MD_CTX_free(ctx);
  if(!ok)
    return MDM_ERR_CRYPTO;
  md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);   /* version 5 */
  md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
  snprintf(out, MDM_UUID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8],
           md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
  return MDM_OK;
}

mdm_rc mdm_report_failing_rules(const char *reasons_json, json_t **out)
{
  json_t *reasons = json_loads(reasons_json ? reasons_json : "[]", 0, NULL);
  json_t *arr = json_array(), *it;
  size_t i;
  mdm_rc rc = MDM_OK;

  if(!arr) {
    json_decref(reasons);
    return MDM_ERR_NOMEM;
  }
  json_array_foreach(reasons, i, it) {
    const char *st = json_string_value(json_object_get(it, "state"));
    const char *pol = json_string_value(json_object_get(it, "policy"));
    const char *rule = json_string_value(json_object_get(it, "rule"));
    struct mdm_buf key;
    json_t *o;
    if(!st || strcmp(st, "noncompliant") || !pol || !rule)
      continue;
    mdm_buf_init(&key, 1024);
    rc = mdm_buf_printf(&key, "%s/%s", pol, rule);
    o = rc ? NULL : json_deep_copy(it);
    if(!rc && (!o || json_object_set_new(o, "key", json_string(key.data)) ||
               json_array_append_new(arr, o)))
      rc = MDM_ERR_NOMEM;
    mdm_buf_release(&key);
    if(rc)
      break;
  }
  json_decref(reasons);
  if(rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return MDM_OK;
}

/* ---- the spool file ----------------------------------------------------- */

struct spool {
  int fd;
  struct mdm_buf b;       /* staged, not yet written */
  uint64_t len;           /* bytes written to fd */
  int err;                /* errno of a failed write */
};

static mdm_rc spool_open(struct mdm_req *r, struct spool *sp)
{
  struct mdm_buf path;
  mdm_rc rc;

  mdm_buf_init(&path, 4096);
  rc = mdm_buf_printf(&path, "%s/.report-XXXXXX", r->srv->cfg.data_dir);
  if(rc) {
    mdm_buf_release(&path);
    return mdm_req_fail(r, MDM_ERR_INTERNAL, "data directory path too long");
  }
  sp->fd = mkstemp(path.data);
  if(sp->fd < 0) {
    rc = mdm_req_fail(r, MDM_ERR_IO, "cannot create a report file in '%s': "
                      "%s", r->srv->cfg.data_dir, strerror(errno));
    mdm_buf_release(&path);
    return rc;
  }
  /* Nobody needs its name: it goes when the answer is sent. */
  unlink(path.data);
  mdm_buf_release(&path);
  return MDM_OK;
}

static mdm_rc spool_flush(struct spool *sp)
{
  size_t off = 0;
  while(off < sp->b.len) {
    ssize_t n = write(sp->fd, sp->b.data + off, sp->b.len - off);
    if(n < 0 && errno == EINTR)
      continue;
    if(n <= 0) {
      sp->err = n < 0 ? errno : ENOSPC;
      return MDM_ERR_IO;
    }
    off += (size_t)n;
  }
  sp->len += off;
  mdm_buf_reset(&sp->b);
  return MDM_OK;
}

static mdm_rc spool_step(struct spool *sp)
{
  return sp->b.len >= REPORT_FLUSH ? spool_flush(sp) : MDM_OK;
}

/* ---- one report --------------------------------------------------------- */

struct report {
  const char *tenant_id;
  struct spool out;
  int64_t n_devices;
  /* STIX */
  char tenant_ref[64];    /* identity--... of the tenant */
  char ext_ref[80];       /* extension-definition--... */
  char tenant_created[40];
  json_t *rules;          /* "policy/rule" -> {created, modified, pattern} */
  json_t *seen;           /* "policy/rule" -> the first failing reason */
  json_t *software;       /* software SCO ids emitted */
  int n_objects;
};

static void time_s(int64_t t, char *out, size_t n)
{
  if(t < 0)
    out[0] = '\0';
  else
    mdm_time_format(t, out, n);
}

static void time_ms(int64_t t, char *out, size_t n)
{
  mdm_time_format_ms((t < 0 ? 0 : t) * 1000, out, n);
}

static mdm_rc csv_put(struct mdm_buf *b, const char *s, int is_last)
{
  mdm_rc rc = mdm_csv_field(b, s);
  if(!rc)
    rc = mdm_buf_puts(b, is_last ? "\r\n" : ",");
  return rc;
}

static mdm_rc csv_row(void *ctx, const struct mdm_report_device *d)
{
  struct report *x = ctx;
  struct mdm_buf *b = &x->out.b, rules;
  json_t *failing = NULL, *it;
  char seen[32], enrolled[32];
  size_t i;
  mdm_rc rc = mdm_report_failing_rules(d->reasons_json, &failing);

  if(rc)
    return rc;
  mdm_buf_init(&rules, REPORT_MAX_ITEM);
  json_array_foreach(failing, i, it) {
    rc = mdm_buf_printf(&rules, "%s%s", i ? ";" : "",
                        json_string_value(json_object_get(it, "key")));
    if(rc)
      break;
  }
  json_decref(failing);
  time_s(d->last_seen, seen, sizeof(seen));
  time_s(d->enrolled_at, enrolled, sizeof(enrolled));
  if(!rc)
    rc = csv_put(b, d->id, 0);
  if(!rc)
    rc = csv_put(b, d->serial, 0);
  if(!rc)
    rc = csv_put(b, d->hostname, 0);
  if(!rc)
    rc = csv_put(b, d->upn, 0);
  if(!rc)
    rc = csv_put(b, d->platform, 0);
  if(!rc)
    rc = csv_put(b, d->os_version, 0);
  if(!rc)
    rc = csv_put(b, d->compliance, 0);
  if(!rc)
    rc = csv_put(b, rules.data, 0);
  if(!rc)
    rc = csv_put(b, seen, 0);
  if(!rc)
    rc = csv_put(b, enrolled, 1);
  mdm_buf_release(&rules);
  if(!rc) {
    x->n_devices++;
    rc = spool_step(&x->out);
  }
  return rc;
}

/* ---- STIX 2.1 ----------------------------------------------------------- */

/* "type--" + UUIDv5 of name in mdm's namespace into out. */
static mdm_rc stix_id(const char *type, const char *name, char *out,
                      size_t n)
{
  char uuid[MDM_UUID_LEN + 1];
  mdm_rc rc = mdm_uuid_v5(STIX_NS_MDM, name, strlen(name), uuid);
  if(!rc && (size_t)snprintf(out, n, "%s--%s", type, uuid) >= n)
    rc = MDM_ERR_TOOBIG;
  return rc;
}

/* Write obj (stolen) as the bundle's next object.  Without an "id" it
 * gets type--UUIDv5 of its canonical JSON (sorted keys, compact), so equal
 * content gives equal ids; that id goes to id_out (may be NULL). */
static mdm_rc stix_emit(struct report *x, json_t *obj, const char *type,
                        char *id_out, size_t id_n)
{
  char *text = NULL, id[128];
  const char *given;
  mdm_rc rc = MDM_OK;

  if(!obj)
    return MDM_ERR_NOMEM;
  text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
  if(!text || text[0] != '{') {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  given = json_string_value(json_object_get(obj, "id"));
  if(given)
    rc = mdm_strlcpy(id, given, sizeof(id));
  else {
    char uuid[MDM_UUID_LEN + 1];
    rc = mdm_uuid_v5(STIX_NS_MDM, text, strlen(text), uuid);
    if(!rc && (size_t)snprintf(id, sizeof(id), "%s--%s", type, uuid) >=
                sizeof(id))
      rc = MDM_ERR_TOOBIG;
  }
  if(rc)
    goto out;
  if(x->n_objects++)
    rc = mdm_buf_puts(&x->out.b, ",\n");
  /* The id first, then the canonical text's members. */
  if(!rc && !given)
    rc = mdm_buf_printf(&x->out.b, "{\"id\":\"%s\",%s", id, text + 1);
  else if(!rc)
    rc = mdm_buf_puts(&x->out.b, text);
  if(!rc && id_out)
    rc = mdm_strlcpy(id_out, id, id_n);
out:
  free(text);
  json_decref(obj);
  return rc;
}

/* Policy times are RFC 3339 seconds; STIX wants milliseconds. */
static mdm_rc stix_time_of(json_t *t, char *out, size_t n)
{
  int64_t s;
  if(!json_is_string(t) || mdm_time_parse(json_string_value(t), &s))
    return MDM_ERR_INVAL;
  time_ms(s, out, n);
  return MDM_OK;
}

/* x->rules from the tenant's CompliancePolicy documents. */
static mdm_rc stix_load_rules(struct mdm_req *r, struct report *x)
{
  json_t *items = NULL, *it;
  size_t i;
  mdm_rc rc = r->srv->store->ops->policy_list(r->srv->store, x->tenant_id,
                                              "CompliancePolicy", &items);
  if(rc)
    return rc;
  json_array_foreach(items, i, it) {
    const char *pname = json_string_value(json_object_get(it, "name"));
    json_t *rules = json_object_get(
      json_object_get(json_object_get(it, "document"), "spec"), "rules");
    char created[40], modified[40];
    json_t *rule;
    size_t k;
    if(!pname || stix_time_of(json_object_get(it, "created_at"), created,
                              sizeof(created)) ||
       stix_time_of(json_object_get(it, "updated_at"), modified,
                    sizeof(modified)))
      continue;
    json_array_foreach(rules, k, rule) {
      const char *rname = json_string_value(json_object_get(rule, "name"));
      json_t *cond, *val = json_object_get(rule, "value");
      char *pattern = NULL, key[300];
      if(!rname || (size_t)snprintf(key, sizeof(key), "%s/%s", pname,
                                    rname) >= sizeof(key))
        continue;
      cond = json_pack("{s:O?, s:O?}", "fact", json_object_get(rule, "fact"),
                       "op", json_object_get(rule, "op"));
      if(cond && val && !json_is_null(val))
        json_object_set(cond, "value", val);
      pattern = cond ? json_dumps(cond, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
      json_decref(cond);
      if(!pattern ||
         json_object_set_new(x->rules, key,
                             json_pack("{s:s, s:s, s:s}", "created", created,
                                       "modified", modified, "pattern",
                                       pattern))) {
        free(pattern);
        json_decref(items);
        return MDM_ERR_NOMEM;
      }
      free(pattern);
    }
  }
  json_decref(items);
  return MDM_OK;
}

static const char EXT_SCHEMA[] =
  "A property-extension of observed-data: the compliance of one mdm device "
  "as of its last check-in. Properties (strings unless said; absent when "
  "unknown): device_ref (the identifier of the device's identity object), "
  "device_id (the mdm device id), serial_number, hostname, "
  "user_principal_name, platform (linux, android, ios, macos, windows), "
  "os_name, os_version, compliance_state (compliant, noncompliant or "
  "unknown), failing_rules (a list of 'policy/rule' names: the "
  "CompliancePolicy rules the device fails, each also an indicator sighted "
  "at the device), compliance_changed (timestamp: when compliance_state "
  "last changed), last_seen and enrolled_at (timestamps). Defined in the "
  "mdm documentation, docs/api.md, section Reports.";

static mdm_rc stix_begin(struct mdm_req *r, struct report *x)
{
  struct mdm_tenant t;
  char name[160], bundle[MDM_UUID_LEN + 1];
  json_t *obj;
  mdm_rc rc;

  memset(&t, 0, sizeof(t));
  rc = r->srv->store->ops->tenant_get(r->srv->store, x->tenant_id, &t);
  if(rc)
    return rc;
  time_ms(t.created_at, x->tenant_created, sizeof(x->tenant_created));
  snprintf(name, sizeof(name), "identity:tenant:%s", x->tenant_id);
  rc = stix_id("identity", name, x->tenant_ref, sizeof(x->tenant_ref));
  snprintf(name, sizeof(name), "extension-definition:%s:device-compliance:1",
           x->tenant_id);
  if(!rc)
    rc = stix_id("extension-definition", name, x->ext_ref,
                 sizeof(x->ext_ref));
  if(!rc)
    rc = mdm_uuid_v4(bundle);
  if(!rc)
    rc = mdm_buf_printf(&x->out.b, "{\"type\":\"bundle\",\"id\":\"bundle--%s\","
                        "\"objects\":[\n", bundle);
  if(rc)
    goto out;
  snprintf(name, sizeof(name), "mdm tenant %s%s%s", t.id,
           t.region[0] ? ", region " : "", t.region);
  obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type",
                  "identity", "spec_version", "2.1", "id", x->tenant_ref,
                  "created", x->tenant_created, "modified", x->tenant_created,
                  "name", t.name, "description", name, "identity_class",
                  "organization");
  rc = stix_emit(x, obj, "identity", NULL, 0);
  if(rc)
    goto out;
  obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
                  " s:[s]}", "type", "extension-definition", "spec_version",
                  "2.1", "id", x->ext_ref, "created_by_ref", x->tenant_ref,
                  "created", x->tenant_created, "modified",
                  x->tenant_created, "name", "mdm-device-compliance",
                  "description", "The compliance state of a managed device, "
                  "carried by observed-data", "schema", EXT_SCHEMA,
                  "version", "1.0.0", "extension_types",
                  "property-extension");
  rc = stix_emit(x, obj, "extension-definition", NULL, 0);
  if(!rc)
    rc = stix_load_rules(r, x);
out:
  mdm_tenant_release(&t);
  return rc;
}

static void set_str(json_t *o, const char *k, const char *v)
{
  if(v && *v)
    json_object_set_new(o, k, json_string(v));
}

/* The OS as a software SCO, once per bundle; its id into ref. */
static mdm_rc stix_software(struct report *x,
                            const struct mdm_report_device *d, char *ref,
                            size_t n)
{
  const char *name = d->os_name ? d->os_name
                                : d->platform ? d->platform : "unknown";
  json_t *contrib = json_pack("{s:s}", "name", name), *obj;
  char uuid[MDM_UUID_LEN + 1], *text;
  mdm_rc rc;

  if(!contrib)
    return MDM_ERR_NOMEM;
  set_str(contrib, "version", d->os_version);
  /* STIX 2.1 §2.9: UUIDv5 of the id contributing properties' JSON. */
  text = json_dumps(contrib, JSON_COMPACT | JSON_SORT_KEYS);
  rc = text ? mdm_uuid_v5(STIX_NS_SCO, text, strlen(text), uuid)
            : MDM_ERR_NOMEM;
  free(text);
  if(!rc && (size_t)snprintf(ref, n, "software--%s", uuid) >= n)
    rc = MDM_ERR_TOOBIG;
  if(rc || json_object_get(x->software, ref)) {
    json_decref(contrib);
    return rc;
  }
  if(json_object_set_new(x->software, ref, json_true())) {
    json_decref(contrib);
    return MDM_ERR_NOMEM;
  }
  obj = json_pack("{s:s, s:s, s:s}", "type", "software", "spec_version",
                  "2.1", "id", ref);
  if(obj && json_object_update(obj, contrib))
    rc = MDM_ERR_NOMEM;
  json_decref(contrib);
  if(rc) {
    json_decref(obj);
    return rc;
  }
  return stix_emit(x, obj, "software", NULL, 0);
}

static mdm_rc stix_device(void *ctx, const struct mdm_report_device *d)
{
  struct report *x = ctx;
  char name[200], dev_ref[80], sw_ref[80], od_ref[80], ind_ref[80];
  char created[40], modified[40], seen[40], changed[40], enrolled[40];
  int64_t mod = d->facts_updated_at > d->enrolled_at ? d->facts_updated_at
                                                      : d->enrolled_at;
  json_t *failing = NULL, *ext = NULL, *keys = NULL, *obj, *it;
  size_t i;
  mdm_rc rc;

  rc = mdm_report_failing_rules(d->reasons_json, &failing);
  if(rc)
    return rc;
  time_ms(d->enrolled_at, created, sizeof(created));
  time_ms(mod, modified, sizeof(modified));
  time_ms(d->last_seen >= 0 ? d->last_seen : d->enrolled_at, seen,
          sizeof(seen));
  time_ms(d->enrolled_at, enrolled, sizeof(enrolled));

  snprintf(name, sizeof(name), "identity:device:%s:%s", x->tenant_id, d->id);
  rc = stix_id("identity", name, dev_ref, sizeof(dev_ref));
  if(rc)
    goto out;
  snprintf(name, sizeof(name), "mdm device %s", d->id);
  obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "type",
                  "identity", "spec_version", "2.1", "id", dev_ref,
                  "created_by_ref", x->tenant_ref, "created", created,
                  "modified", modified, "name",
                  d->hostname && *d->hostname ? d->hostname
                  : d->serial && *d->serial ? d->serial : d->id,
                  "description", name, "identity_class", "system");
  rc = stix_emit(x, obj, "identity", NULL, 0);
  if(!rc)
    rc = stix_software(x, d, sw_ref, sizeof(sw_ref));
  if(rc)
    goto out;

  /* The state, through the extension. */
  ext = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "extension_type",
                  "property-extension", "device_ref", dev_ref, "device_id",
                  d->id, "compliance_state", d->compliance, "last_seen", seen,
                  "enrolled_at", enrolled);
  keys = json_array();
  if(!ext || !keys) {
    rc = MDM_ERR_NOMEM;
    goto out;
  }
  set_str(ext, "serial_number", d->serial);
  set_str(ext, "hostname", d->hostname);
  set_str(ext, "user_principal_name", d->upn);
  set_str(ext, "platform", d->platform);
  set_str(ext, "os_name", d->os_name);
  set_str(ext, "os_version", d->os_version);
  if(d->compliance_changed_at >= 0) {
    time_ms(d->compliance_changed_at, changed, sizeof(changed));
    set_str(ext, "compliance_changed", changed);
  }
  json_array_foreach(failing, i, it)
    json_array_append(keys, json_object_get(it, "key"));
  /* STIX lists hold at least one item: no failing rules, no property. */
  if(json_array_size(keys))
    json_object_set(ext, "failing_rules", keys);
  obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[s], s:{s:O}}",
                  "type", "observed-data", "spec_version", "2.1",
                  "created_by_ref", x->tenant_ref, "created", seen,
                  "modified", seen, "first_observed", seen, "last_observed",
                  seen, "number_observed", 1, "object_refs", sw_ref,
                  "extensions", x->ext_ref, ext);
  rc = stix_emit(x, obj, "observed-data", od_ref, sizeof(od_ref));
  if(rc)
    goto out;

  /* Each failing rule: a sighting of its indicator at the device. */
  json_array_foreach(failing, i, it) {
    const char *key = json_string_value(json_object_get(it, "key"));
    const char *msg = json_string_value(json_object_get(it, "message"));
    snprintf(name, sizeof(name), "indicator:%s:", x->tenant_id);
    if(mdm_strlcpy(name + strlen(name), key,
                   sizeof(name) - strlen(name))) {
      rc = MDM_ERR_TOOBIG;
      goto out;
    }
    rc = stix_id("indicator", name, ind_ref, sizeof(ind_ref));
    if(rc)
      goto out;
    if(!json_object_get(x->seen, key) &&
       json_object_set(x->seen, key, it)) {
      rc = MDM_ERR_NOMEM;
      goto out;
    }
    obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:[s],"
                    " s:[s]}", "type", "sighting", "spec_version", "2.1",
                    "created_by_ref", x->tenant_ref, "created", seen,
                    "modified", seen, "first_seen", seen, "last_seen", seen,
                    "count", 1, "sighting_of_ref", ind_ref,
                    "observed_data_refs", od_ref, "where_sighted_refs",
                    dev_ref);
    if(obj)
      set_str(obj, "description", msg);
    rc = stix_emit(x, obj, "sighting", NULL, 0);
    if(rc)
      goto out;
  }
  x->n_devices++;
  rc = spool_step(&x->out);
out:
  json_decref(failing);
  json_decref(ext);
  json_decref(keys);
  return rc;
}

/* The indicators of every rule sighted, then the bundle's end. */
static mdm_rc stix_end(struct report *x)
{
  const char *key;
  json_t *reason;
  mdm_rc rc = MDM_OK;

  json_object_foreach(x->seen, key, reason) {
    json_t *known = json_object_get(x->rules, key), *obj, *cond;
    char name[300], ref[80], desc[512], *pattern = NULL;
    const char *created = x->tenant_created, *modified = x->tenant_created;
    const char *slash = strchr(key, '/');

    snprintf(name, sizeof(name), "indicator:%s:%s", x->tenant_id, key);
    rc = stix_id("indicator", name, ref, sizeof(ref));
    if(rc)
      break;
    if(known) {
      created = json_string_value(json_object_get(known, "created"));
      modified = json_string_value(json_object_get(known, "modified"));
      pattern = strdup(json_string_value(json_object_get(known, "pattern")));
    }
    else {
      /* The policy changed since the verdict: the reason's own words. */
      json_t *val = json_object_get(reason, "expected");
      cond = json_pack("{s:O?, s:O?}", "fact", json_object_get(reason, "fact"),
                       "op", json_object_get(reason, "op"));
      if(cond && val && !json_is_null(val))
        json_object_set(cond, "value", val);
      pattern = cond ? json_dumps(cond, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
      json_decref(cond);
    }
    if(!pattern || !created || !modified) {
      free(pattern);
      rc = MDM_ERR_NOMEM;
      break;
    }
    snprintf(desc, sizeof(desc), "A device is sighted when it fails rule "
             "'%s' of CompliancePolicy '%.*s': the pattern is the rule, in "
             "mdm's policy syntax (docs/policy-reference.md)",
             slash ? slash + 1 : key, slash ? (int)(slash - key) : 0, key);
    obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
                    " s:s, s:s}", "type", "indicator", "spec_version", "2.1",
                    "id", ref, "created_by_ref", x->tenant_ref, "created",
                    created, "modified", modified, "name", key, "description",
                    desc, "pattern", pattern, "pattern_type",
                    "mdm-compliance-rule", "pattern_version", "1",
                    "valid_from", created);
    free(pattern);
    rc = stix_emit(x, obj, "indicator", NULL, 0);
    if(rc)
      break;
  }
  if(!rc)
    rc = mdm_buf_puts(&x->out.b, "\n]}\n");
  return rc;
}

/* ---- the handler -------------------------------------------------------- */

mdm_rc mdm_api_reports_compliance(struct mdm_req *r)
{
  const char *format = mdm_req_query(r, "format");
  struct mdm_store *st = r->srv->store;
  struct report x;
  char day[16], disposition[96];
  time_t now = time(NULL);
  struct tm tm;
  int is_stix;
  int64_t t0 = mdm_mono_ns();
  mdm_rc rc;

  if(!format || !strcmp(format, "csv"))
    is_stix = 0;
  else if(!strcmp(format, "stix"))
    is_stix = 1;
  else
    return mdm_req_fail(r, MDM_ERR_INVAL, "query 'format': expected csv or "
                        "stix");
  if(atomic_fetch_add(&n_running, 1) >= REPORT_MAX_RUNNING) {
    atomic_fetch_sub(&n_running, 1);
    return mdm_req_fail(r, MDM_ERR_BUSY, "%d reports are being made; try "
                        "again shortly", REPORT_MAX_RUNNING);
  }
  memset(&x, 0, sizeof(x));
  x.tenant_id = r->who.tenant_id;
  x.out.fd = -1;
  mdm_buf_init(&x.out.b, REPORT_MAX_ITEM);
  x.rules = json_object();
  x.seen = json_object();
  x.software = json_object();
  if(!x.rules || !x.seen || !x.software) {
    rc = mdm_req_fail(r, MDM_ERR_NOMEM, "out of memory");
    goto out;
  }
  rc = spool_open(r, &x.out);
  if(rc)
    goto out;
  if(is_stix) {
    rc = stix_begin(r, &x);
    if(!rc)
      rc = st->ops->device_report_scan(st, x.tenant_id, stix_device, &x);
    if(!rc)
      rc = stix_end(&x);
  }
  else {
    rc = mdm_buf_puts(&x.out.b, CSV_HEADER);
    if(!rc)
      rc = st->ops->device_report_scan(st, x.tenant_id, csv_row, &x);
  }
  if(!rc)
    rc = spool_flush(&x.out);
  if(rc) {
    rc = mdm_req_fail(r, rc, "cannot make the report: %s",
                      rc == MDM_ERR_IO && x.out.err ? strerror(x.out.err)
                                                    : mdm_strerror(rc));
    goto out;
  }
  gmtime_r(&now, &tm);
  strftime(day, sizeof(day), "%Y%m%d", &tm);
  snprintf(disposition, sizeof(disposition),
           "attachment; filename=\"compliance_%s.%s\"", day,
           is_stix ? "stix.json" : "csv");
  mdm_info("report: %s for tenant %s: %lld devices, %llu bytes in %lld ms",
           is_stix ? "stix" : "csv", x.tenant_id, (long long)x.n_devices,
           (unsigned long long)x.out.len,
           (long long)((mdm_mono_ns() - t0) / 1000000));
  rc = mdm_req_reply_file(r, 200,
                          is_stix ? "application/stix+json;version=2.1"
                                  : "text/csv; charset=utf-8",
                          x.out.fd, x.out.len, disposition);
  x.out.fd = -1;   /* the HTTP layer's now */
out:
  if(x.out.fd >= 0)
    close(x.out.fd);
  mdm_buf_release(&x.out.b);
  json_decref(x.rules);
  json_decref(x.seen);
  json_decref(x.software);
  atomic_fetch_sub(&n_running, 1);
  return rc;
}
