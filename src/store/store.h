/*
 * store.h: the store interface.  mdmd keeps all state here (ARCHITECTURE
 * principle 3); a backend is a table of functions (struct mdm_store_ops), one
 * file each (store_sqlite.c now, store_pg.c later), chosen by URL in
 * mdm_store_open().
 *
 * Every function takes the tenant id and touches only that tenant's rows.
 * Every mutation appends its audit record in the same transaction as the
 * change (struct mdm_audit_in), so the log and the data never disagree.
 * Objects come back as jansson values shaped as the HTTP API shows them
 * (docs/api.md); the caller owns them.  All functions are thread-safe.
 */
#ifndef MDM_STORE_H
#define MDM_STORE_H

#include <stdint.h>
#include <jansson.h>
#include "core/rc.h"
#include "core/util.h"

struct mdm_store;

/* What an audit record says besides seq/at/hashes.  Borrowed. */
struct mdm_audit_in {
  const char *actor;    /* "token:<id>", "device:<id>", "cli", "system" */
  const char *action;   /* "token.create", "device.enroll", ... */
  const char *target;   /* the object's id */
  json_t *detail;       /* object or NULL */
};

/* ---- the change feed ---------------------------------------------------
 * What the event stream (server/events.c) reports comes from here: after a
 * transaction is durable, the backend hands the audit records it appended
 * and the compliance verdicts it changed to the hook set with
 * mdm_store_set_change_hook(), as one set per commit, in commit order, on
 * the writer's thread.  The changes of a job that rolled back, or of a
 * commit that failed, are never handed over, so the feed says exactly what
 * the store keeps.  A compliance change is a verdict written whose state
 * or reasons differ from the stored ones (a verdict that only moves to a
 * new policy generation, or only changes the bundle ETag, is none).
 *
 * Cost on the writer: a copy of each change into the set's memory, which
 * the writer allocates in large chunks and frees itself once the consumer
 * gives the set back (mdm_change_set_done): the consumer's threads never
 * take a lock the writer needs. */
enum mdm_change_kind {
  MDM_CHANGE_AUDIT = 1,        /* an audit record (command.* included) */
  MDM_CHANGE_COMPLIANCE = 2    /* a device's verdict changed */
};

struct mdm_change {
  struct mdm_change *next;     /* the next of its set, in commit order */
  enum mdm_change_kind kind;
  int64_t at_ms;               /* when it was written */
  const char *tenant_id;
  const char *device_id;       /* NULL: concerns no device */
  const char *upn;             /* NULL from the store: the event stream
                                * reads it (device_upn) off the writer */
  /* MDM_CHANGE_AUDIT: the record as stored */
  int64_t seq;
  const char *at;              /* its RFC 3339 time as hashed */
  const char *actor, *action, *target;
  const char *detail_json;     /* NULL when none */
  const char *hash;
  const char *command_type;    /* command.* records: the command's type */
  /* MDM_CHANGE_COMPLIANCE */
  const char *state;           /* compliant | noncompliant | unknown */
  const char *prev_state;      /* NULL: the device's first verdict */
  const char *reasons_json;    /* the verdict's reasons (eval.h) */
};

struct mdm_change_chunk;
struct mdm_change_home;

/* The changes of one commit.  The consumer may write to the changes
 * (e.g. fill in upn with a string of its own). */
struct mdm_change_set {
  struct mdm_change_set *next;     /* free for the consumer's queues */
  struct mdm_change *first, *last; /* linked by next */
  size_t n;
  struct mdm_change_chunk *chunks; /* the memory of the changes */
  struct mdm_change_home *home;    /* who frees it; NULL: free() here */
};

/* The change hook: takes the set (give it back with
 * mdm_change_set_done()).  Runs on the store's writer thread: it must not
 * block and must not call the store. */
typedef void (*mdm_change_fn)(void *ctx, struct mdm_change_set *set);

/* The consumer is done with set: it goes back to its producer, which frees
 * it on its own thread (or it is freed here when it has no home).  Any
 * thread; never blocks.  NULL is fine. */
void mdm_change_set_done(struct mdm_change_set *set);

/* For producers (backends, and mdmd's access denials): a new empty set
 * whose memory returns to home (NULL: freed by mdm_change_set_done). */
struct mdm_change_set *mdm_change_set_new(struct mdm_change_home *home);
/* Append a copy of tmpl and its strings.  MDM_ERR_NOMEM. */
mdm_rc mdm_change_set_add(struct mdm_change_set *set,
                          const struct mdm_change *tmpl);
/* A position in a set, and dropping everything added after it. */
struct mdm_change_mark {
  size_t n;
  struct mdm_change *last;
  struct mdm_change_chunk *chunk;
  size_t used;
};
void mdm_change_set_mark(const struct mdm_change_set *set,
                         struct mdm_change_mark *m /* OUT */);
void mdm_change_set_truncate(struct mdm_change_set *set,
                             const struct mdm_change_mark *m);
void mdm_change_set_free(struct mdm_change_set *set);
/* Where done sets wait for their producer.  _new: NULL on ENOMEM. */
struct mdm_change_home *mdm_change_home_new(void);
/* Free the sets given back so far.  The producer's thread. */
void mdm_change_home_reclaim(struct mdm_change_home *h);
/* Reclaim, then free h.  Sets still out must not come back after this. */
void mdm_change_home_free(struct mdm_change_home *h);

struct mdm_tenant {
  char id[MDM_UUID_LEN + 1];
  char name[64];
  char region[64];
  char kid[48];
  char *key_pem;        /* private signing key, PEM; owned */
  int64_t created_at;
};
void mdm_tenant_release(struct mdm_tenant *t);

/* An API token as the authenticator sees it. */
struct mdm_token_info {
  char id[MDM_UUID_LEN + 1];
  char tenant_id[MDM_UUID_LEN + 1];
  char role[16];
};

/* device_access: a device as conditional access sees it. */
struct mdm_device_access {
  char state[16];             /* active | retired | wiped */
  char compliance[16];        /* compliant | noncompliant | unknown */
  char platform[32];          /* "" when unknown */
  int64_t last_seen;          /* epoch seconds, 0 never */
};

/* Enrollment: what the device becomes.  Strings borrowed. */
struct mdm_verdict_in;

/* A certificate issued to a device (its CSR, issue 5). */
struct mdm_cert_in {
  const char *serial;         /* lowercase hex */
  const char *fingerprint;    /* SHA-256 of the DER, lowercase hex */
  int64_t not_before, not_after;
};

/* What the store knows of an issued certificate (cert_lookup). */
struct mdm_cert_row {
  char tenant_id[MDM_UUID_LEN + 1];
  char device_id[MDM_UUID_LEN + 1];
  int64_t not_after;
  int64_t revoked_at;         /* 0: not revoked */
};

struct mdm_enroll_in {
  const char *etoken_id;      /* the enrollment token's jti */
  const char *device_id;      /* new UUID chosen by the caller */
  const char *token_jti;      /* the device token's jti */
  const char *facts_json;     /* canonical JSON of the facts */
  const char *facts_hash;
  int64_t now;
  /* The device's first verdict, computed with the token's labels (NULL:
   * none; the first check-in evaluates). */
  const struct mdm_verdict_in *verdict;
  /* The device certificate issued from its CSR, stored in the same
   * transaction (NULL: the device sent no CSR). */
  const struct mdm_cert_in *cert;
};

/* A compliance verdict computed by the caller (the evaluator is pure and
 * lives outside the store).  It is written only if the tenant's policy
 * generation is still gen, so a verdict made under replaced policies never
 * lands. */
struct mdm_verdict_in {
  int64_t gen;
  const char *state;          /* compliant | noncompliant | unknown */
  const char *reasons_json;   /* JSON array */
  const char *policy_etag;    /* the device's bundle ETag, or NULL */
};

struct mdm_checkin_in {
  const char *device_id;
  const char *facts_json;     /* canonical JSON */
  const char *policy_status_json; /* canonical JSON or NULL */
  const char *facts_hash;     /* hex SHA-256 over facts and policy status:
                               * the wide row is rewritten only when it
                               * changes */
  int64_t now;
  const struct mdm_verdict_in *verdict;  /* NULL: not evaluated */
  const unsigned char *body_hash;        /* 32 bytes, or NULL */
};

/* What a check-in needs to know to decide whether to evaluate. */
struct mdm_eval_state {
  char facts_hash[65];
  char compliance[16];
  char policy_etag[72];       /* "" when none */
  int64_t eval_gen;           /* generation of the stored verdict, -1 none */
  int64_t policy_gen;         /* the tenant's current generation */
};

/* A planned change to one policy document (see policy_apply). */
struct mdm_policy_change {
  const char *kind;
  const char *name;
  const char *doc_json;       /* canonical JSON; NULL deletes */
  const char *hash;           /* SHA-256 of doc_json */
  int64_t prior_version;      /* 0: must not exist; else the current one */
};

/* One device's new verdict from a tenant re-evaluation.  Written only if
 * the device's facts are still facts_hash and the generation still gen. */
struct mdm_compliance_put {
  const char *device_id;
  const char *facts_hash;     /* the facts it was computed from */
  const char *state;
  const char *reasons_json;
  const char *policy_etag;
  int is_same;                /* state, reasons and ETag as stored: only the
                               * generation moves */
  int is_state_changed;       /* state differs from the scanned one */
  /* For the change feed, from a caller that scanned them (has_prior set);
   * otherwise the store reads them itself when a change hook is set. */
  int has_prior;
  const char *prior_state;    /* the scanned state */
  int is_reasons_changed;     /* reasons differ from the scanned ones */
};

/* Called for each active device by device_eval_scan: values is the JSON
 * array of the requested fact paths' values (null when absent); labels the
 * device's labels.  Both borrowed for the call.  Return non-zero to stop. */
typedef int (*mdm_eval_scan_fn)(void *ctx, const char *device_id,
                                const char *platform, json_t *labels,
                                const char *facts_hash, json_t *values,
                                const char *compliance,
                                const char *reasons_json,
                                const char *policy_etag);

#define MDM_MAX_LABEL_FILTERS 8
struct mdm_device_filter {
  const char *platform;
  const char *compliance;
  const char *state;
  const char *label_key[MDM_MAX_LABEL_FILTERS];
  const char *label_val[MDM_MAX_LABEL_FILTERS];
  int n_labels;
  const char *after_id;  /* cursor: list ids greater than this */
  int limit;
};

/* A command to queue (docs/api.md, "Commands").  Strings borrowed. */
struct mdm_command_new {
  const char *type;           /* lock, wipe, selective_wipe, ... */
  const char *params_json;    /* canonical JSON object */
  int64_t now;                /* issued_at */
  int64_t expires_at;
  const char *actor;          /* created_by, and the audit records' actor */
};

/* Which active devices a bulk command goes to; every given part must
 * match (NULL: any).  Borrowed. */
struct mdm_command_selector {
  const char *platform;
  const char *compliance;
  json_t *labels;             /* {key: "value"} or NULL */
};

/* The most devices one bulk command may reach. */
#define MDM_BULK_MAX 100000

struct mdm_audit_verify {
  int ok;
  int64_t records;
  int64_t first_bad;  /* 0 when ok */
};

/* The audit chain as recomputed from the records' content (audit_head).
 * H(0) is "", H(i) = mdm_audit_hash(H(i-1), seq, at, actor, action, target,
 * detail) over the records in seq order, whatever hashes they store. */
struct mdm_audit_head {
  int ok;                     /* as audit_verify */
  int64_t records;
  int64_t first_bad;          /* 0 when ok */
  int64_t head_seq;           /* seq of the last record, 0 when none */
  char head_hash[65];         /* H of the last record, "" when none */
  int has_at;                 /* a record with seq at_seq exists */
  char at_hash[65];           /* H at that record, "" when none */
};

/* One device of a compliance report (device_report_scan).  Strings are
 * borrowed for the callback and NULL when unknown; times are epoch
 * seconds, -1 when unknown. */
struct mdm_report_device {
  const char *id;
  const char *serial;
  const char *hostname;
  const char *upn;
  const char *platform;
  const char *os_name;
  const char *os_version;
  const char *compliance;       /* compliant | noncompliant | unknown */
  const char *reasons_json;     /* the verdict's reasons, a JSON array */
  int64_t last_seen;
  int64_t enrolled_at;
  int64_t facts_updated_at;
  int64_t compliance_changed_at;
};

/* Called once per device by device_report_scan; a result other than
 * MDM_OK stops the scan, which then returns it. */
typedef mdm_rc (*mdm_report_scan_fn)(void *ctx,
                                     const struct mdm_report_device *d);

struct mdm_store_ops {
  const char *name;
  mdm_rc (*ping)(struct mdm_store *s);
  void (*close)(struct mdm_store *s);

  mdm_rc (*tenant_create)(struct mdm_store *s, const struct mdm_tenant *t,
                          const struct mdm_token_info *owner,
                          const char *owner_hash, const struct mdm_audit_in *a);
  mdm_rc (*tenant_get)(struct mdm_store *s, const char *id_or_name,
                       struct mdm_tenant *out);
  mdm_rc (*tenant_list)(struct mdm_store *s, json_t **out);

  mdm_rc (*token_create)(struct mdm_store *s, const struct mdm_token_info *t,
                         const char *name, const char *hash,
                         const char *created_by, const struct mdm_audit_in *a,
                         json_t **out);
  mdm_rc (*token_auth)(struct mdm_store *s, const char *hash,
                       struct mdm_token_info *out);
  mdm_rc (*token_list)(struct mdm_store *s, const char *tenant, json_t **out);
  mdm_rc (*token_delete)(struct mdm_store *s, const char *tenant,
                         const char *id, const struct mdm_audit_in *a);

  mdm_rc (*etoken_create)(struct mdm_store *s, const char *tenant,
                          const char *id, int64_t expires_at, int64_t max_uses,
                          json_t *labels, const char *created_by,
                          const struct mdm_audit_in *a, json_t **out);
  mdm_rc (*etoken_list)(struct mdm_store *s, const char *tenant,
                        json_t **out);
  /* The labels an enrollment token gives its devices (caller owns). */
  mdm_rc (*etoken_labels)(struct mdm_store *s, const char *tenant,
                          const char *id, json_t **labels);
  mdm_rc (*etoken_revoke)(struct mdm_store *s, const char *tenant,
                          const char *id, const struct mdm_audit_in *a);

  mdm_rc (*enroll)(struct mdm_store *s, const char *tenant,
                   const struct mdm_enroll_in *in,
                   const struct mdm_audit_in *a, json_t **device);
  /* *state: {compliance, pending_commands}. */
  mdm_rc (*checkin)(struct mdm_store *s, const char *tenant,
                    const struct mdm_checkin_in *in, json_t **state);
  /* The fast check-in: if the device is active, its last check-in's body
   * had this SHA-256 and its verdict is of the current policy generation,
   * move last_seen and return the stored compliance and bundle ETag.
   * *n_pending is how many commands wait for it (queued or sent, not
   * expired).
   * MDM_ERR_NOTFOUND when any of that is not so (do a full check-in). */
  mdm_rc (*checkin_touch)(struct mdm_store *s, const char *tenant,
                          const char *device_id,
                          const unsigned char body_hash[32], int64_t now,
                          char compliance[16], char etag[72],
                          int64_t *n_pending);
  mdm_rc (*device_active)(struct mdm_store *s, const char *tenant,
                          const char *device_id);
  mdm_rc (*device_get)(struct mdm_store *s, const char *tenant,
                       const char *id, json_t **out);
  mdm_rc (*device_list)(struct mdm_store *s, const char *tenant,
                        const struct mdm_device_filter *f, json_t **items,
                        char **next_cursor);
  mdm_rc (*device_patch)(struct mdm_store *s, const char *tenant,
                         const char *id, json_t *labels_patch,
                         json_t *upn, const struct mdm_audit_in *a,
                         json_t **out);

  mdm_rc (*device_eval_state)(struct mdm_store *s, const char *tenant,
                              const char *device_id,
                              struct mdm_eval_state *out, json_t **labels);
  /* What conditional access needs of a device, and nothing more (a
   * gateway asks on every request): its state, compliance, platform,
   * last_seen and labels (*labels, caller owns).  MDM_ERR_NOTFOUND: no
   * such device in tenant. */
  mdm_rc (*device_access)(struct mdm_store *s, const char *tenant,
                          const char *device_id,
                          struct mdm_device_access *out, json_t **labels);
  /* The device's user_principal_name into upn[n] ("" when it has none),
   * for the event stream, on a connection of its own (never one a request
   * waits for).  MDM_ERR_NOTFOUND: no such device. */
  mdm_rc (*device_upn)(struct mdm_store *s, const char *tenant,
                       const char *device_id, char *upn, size_t n);
  mdm_rc (*device_eval_scan)(struct mdm_store *s, const char *tenant,
                             const char *const *paths, size_t n_paths,
                             mdm_eval_scan_fn fn, void *ctx);
  mdm_rc (*compliance_put)(struct mdm_store *s, const char *tenant,
                           int64_t gen, const struct mdm_compliance_put *u,
                           size_t n, int64_t now, size_t *n_changed);

  mdm_rc (*policy_gen)(struct mdm_store *s, const char *tenant,
                       int64_t *gen);
  /* kind may be NULL (all kinds).  Items: {kind, name, version, hash,
   * author, created_at, updated_at, document}. */
  mdm_rc (*policy_list)(struct mdm_store *s, const char *tenant,
                        const char *kind, json_t **items);
  mdm_rc (*policy_get)(struct mdm_store *s, const char *tenant,
                       const char *kind, const char *name, json_t **out);
  /* All of ch or nothing, each with its audit record (action
   * policy.create / policy.update / policy.delete); MDM_ERR_CONFLICT when a
   * document's version is no longer prior_version.  Bumps the tenant's
   * policy generation (returned in *gen) when anything changed.
   * *results: [{kind, name, action, version}] in ch's order. */
  mdm_rc (*policy_apply)(struct mdm_store *s, const char *tenant,
                         const struct mdm_policy_change *ch, size_t n,
                         const char *actor, json_t **results, int64_t *gen);

  mdm_rc (*telemetry_put)(struct mdm_store *s, const char *tenant,
                          const char *device_id, json_t *events,
                          int64_t dropped, int64_t now, json_t **result);

  /* ---- commands (docs/api.md "Commands").  A command that is not
   * completed, failed or canceled by its expires_at becomes expired
   * (audited command.expire, actor "system") whenever a read, a fetch, a
   * result or a cancel touches it.  Objects are the API's command shape;
   * the caller owns them. */

  /* Queue one command for device_id (audited command.create).
   * MDM_ERR_NOTFOUND: no such device; MDM_ERR_CONFLICT: it is not active. */
  mdm_rc (*command_create)(struct mdm_store *s, const char *tenant,
                           const char *device_id,
                           const struct mdm_command_new *in, json_t **out);
  /* One command per active device that sel matches, all in one
   * transaction, each with its own command.create record (detail says
   * "bulk": true).  *ids: array of the new ids, in device id order.
   * MDM_ERR_TOOBIG when more than MDM_BULK_MAX devices match (nothing is
   * written). */
  mdm_rc (*command_create_bulk)(struct mdm_store *s, const char *tenant,
                                const struct mdm_command_selector *sel,
                                const struct mdm_command_new *in,
                                json_t **ids);
  mdm_rc (*command_get)(struct mdm_store *s, const char *tenant,
                        const char *id, int64_t now, json_t **out);
  /* A device's commands, newest first; status may be NULL (all).
   * after: the cursor (0: from the newest); *next: the next page's cursor
   * or 0.  MDM_ERR_NOTFOUND when the device does not exist. */
  mdm_rc (*command_list)(struct mdm_store *s, const char *tenant,
                         const char *device_id, const char *status,
                         int64_t after, int limit, int64_t now,
                         json_t **items, int64_t *next);
  /* queued|sent → canceled (audited command.cancel); canceling a canceled
   * command changes nothing.  MDM_ERR_CONFLICT when it is past sent
   * (acknowledged, completed, failed, expired).  Canceling a device's
   * pending retirement wipe abandons the retirement. */
  mdm_rc (*command_cancel)(struct mdm_store *s, const char *tenant,
                           const char *id, int64_t now, const char *actor,
                           json_t **out);
  /* The device's queued and sent commands that have not expired, oldest
   * first; queued ones become sent (audited command.send).
   * MDM_ERR_AUTH when the device is not active. */
  mdm_rc (*agent_commands_fetch)(struct mdm_store *s, const char *tenant,
                                 const char *device_id, int64_t now,
                                 json_t **items);
  /* The device says status (acknowledged|completed|failed) of command id.
   * Forward only and idempotent: a result that does not move the command
   * forward changes nothing and is MDM_OK.  MDM_ERR_NOTFOUND: no such
   * command of this device; MDM_ERR_CONFLICT: expired or canceled;
   * MDM_ERR_AUTH: the device is not active.  A device's retirement wipe
   * reaching completed or failed retires the device in the same
   * transaction. */
  mdm_rc (*command_result)(struct mdm_store *s, const char *tenant,
                           const char *device_id, const char *id,
                           const char *status, const char *detail,
                           int64_t now, json_t **out);
  /* Retire a device: wipe "none" retires it at once; "selective" or "full"
   * queues a selective_wipe or wipe command expiring at expires_at and
   * marks the device retire_pending until that command ends.  Audited
   * device.retire (and device.retired when done).  *out: the device.
   * MDM_ERR_NOTFOUND; MDM_ERR_CONFLICT when the device is not active or
   * its retirement is already pending. */
  mdm_rc (*device_retire)(struct mdm_store *s, const char *tenant,
                          const char *device_id, const char *wipe,
                          int64_t now, int64_t expires_at,
                          const char *actor, json_t **out);

  mdm_rc (*audit_list)(struct mdm_store *s, const char *tenant,
                       int64_t after_seq, int limit, json_t **items,
                       int64_t *next);
  mdm_rc (*audit_verify)(struct mdm_store *s, const char *tenant,
                         struct mdm_audit_verify *out);

  /* ---- reports and audit checkpoints (docs/api.md "Reports", "Audit") */

  /* Every active device of tenant, in id order, from one read (a
   * consistent snapshot), handed to fn(ctx, ...). */
  mdm_rc (*device_report_scan)(struct mdm_store *s, const char *tenant,
                               mdm_report_scan_fn fn, void *ctx);
  /* Verify tenant's chain as audit_verify does, and recompute it from the
   * records' content (struct mdm_audit_head): the head, and the hash at
   * at_seq (0: none asked), both in one read. */
  mdm_rc (*audit_head)(struct mdm_store *s, const char *tenant,
                       int64_t at_seq, struct mdm_audit_head *out);

  /* ---- metrics (docs/metrics.md), read at each scrape, all tenants ---- */

  /* *devices: [[tenant name, region, platform, compliance, count], ...] of
   * active devices; *commands: [[tenant name, type, status, count], ...]. */
  mdm_rc (*metrics_scan)(struct mdm_store *s, json_t **devices,
                         json_t **commands);
  /* Active devices by the value of label key (absent: ""):
   * [[tenant name, value, compliance, count], ...], by tenant then count,
   * largest first. */
  mdm_rc (*metrics_label_scan)(struct mdm_store *s, const char *key,
                               json_t **out);

  /* ---- the tenant CA and device certificates (issue 5) ---------------- */

  /* The tenant's CA as PEM (caller frees both); MDM_ERR_NOTFOUND when it
   * has none yet. */
  mdm_rc (*ca_get)(struct mdm_store *s, const char *tenant, char **key_pem,
                   char **cert_pem);
  /* Store the tenant's CA unless it has one; either way *cert_pem_out
   * (caller frees) is the CA that is stored (so concurrent creators agree)
   * and *key_pem_out its key. */
  mdm_rc (*ca_put)(struct mdm_store *s, const char *tenant,
                   const char *key_pem, const char *cert_pem, int64_t now,
                   char **key_pem_out, char **cert_pem_out);
  /* The tenant's revoked certificates: [[serial, revoked_at], ...]. */
  mdm_rc (*cert_revoked_list)(struct mdm_store *s, const char *tenant,
                              json_t **out);
  /* The device certificate with this SHA-256 fingerprint (lowercase
   * hex): its tenant and device, validity end and revocation time (0: not
   * revoked).  MDM_ERR_NOTFOUND when none was issued. */
  mdm_rc (*cert_lookup)(struct mdm_store *s, const char *fingerprint,
                        struct mdm_cert_row *out);
  /* A renewed certificate for an active device (its new CSR): the
   * device's other certificates are revoked and this one stored, with the
   * audit record a, in one transaction; a device has one valid certificate.
   * MDM_ERR_AUTH when the device is not active. */
  mdm_rc (*cert_renew)(struct mdm_store *s, const char *tenant,
                       const char *device_id, const struct mdm_cert_in *cert,
                       int64_t now, const struct mdm_audit_in *a);
};

struct mdm_store {
  const struct mdm_store_ops *ops;
  mdm_change_fn on_change;    /* see mdm_store_set_change_hook() */
  void *on_change_ctx;
};

/* Hand every commit's changes (struct mdm_change_set) to fn(ctx, ...) from
 * now on; fn NULL stops it.  Call before the store is shared between
 * threads (at start-up, before any write).  Without a hook the store
 * captures nothing and pays nothing. */
void mdm_store_set_change_hook(struct mdm_store *s, mdm_change_fn fn,
                               void *ctx);

/* Open the store named by url: "sqlite:PATH" (or a bare path).  Runs the
 * migrations.  Caller owns *out; close with mdm_store_close(). */
mdm_rc mdm_store_open(const char *url, struct mdm_store **out /* OUT */);
void mdm_store_close(struct mdm_store *s);

/* Backends' constructors, used by mdm_store_open only. */
mdm_rc mdm_store_sqlite_open(const char *path, struct mdm_store **out);

/* Canonical JSON (sorted keys, compact) of an audit record's content, the
 * input of its hash.  Shared so every backend chains the same way. */
mdm_rc mdm_audit_hash(const char *prev_hash, int64_t seq, const char *at,
                      const char *actor, const char *action,
                      const char *target, const char *detail_json,
                      char *out /* 65 bytes */);

#endif
