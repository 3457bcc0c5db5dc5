/*
 * migrations_sqlite.c: the SQLite schema steps (see migrations.h).
 *
 * Every table carries tenant_id and leads its primary key with it.  Hot
 * per-device state (last_seen, state, compliance, facts hash) lives in the
 * narrow device_status table so that a check-in with unchanged facts
 * rewrites a few dozen bytes, not the 1 KB facts row (ARCHITECTURE, "the
 * check-in hot path").
 */
#include "store/migrations.h"

const struct mdm_migration mdm_sqlite_migrations[] = {
  {1, "foundation",
   "CREATE TABLE tenants ("
   "  id TEXT PRIMARY KEY,"
   "  name TEXT NOT NULL UNIQUE,"
   "  region TEXT NOT NULL DEFAULT '',"
   "  created_at INTEGER NOT NULL);"
   "CREATE TABLE tenant_keys ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  kid TEXT NOT NULL,"
   "  private_pem TEXT NOT NULL,"
   "  created_at INTEGER NOT NULL,"
   "  PRIMARY KEY (tenant_id, kid));"
   "CREATE TABLE api_tokens ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  id TEXT NOT NULL,"
   "  name TEXT NOT NULL,"
   "  role TEXT NOT NULL,"
   "  hash TEXT NOT NULL UNIQUE,"
   "  created_at INTEGER NOT NULL,"
   "  created_by TEXT NOT NULL,"
   "  PRIMARY KEY (tenant_id, id));"
   "CREATE TABLE enrollment_tokens ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  id TEXT NOT NULL,"
   "  expires_at INTEGER NOT NULL,"
   "  max_uses INTEGER NOT NULL,"
   "  uses INTEGER NOT NULL DEFAULT 0,"
   "  labels TEXT NOT NULL DEFAULT '{}',"
   "  created_at INTEGER NOT NULL,"
   "  created_by TEXT NOT NULL,"
   "  revoked INTEGER NOT NULL DEFAULT 0,"
   "  PRIMARY KEY (tenant_id, id));"
   "CREATE TABLE devices ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  id TEXT NOT NULL,"
   "  serial TEXT, platform TEXT, hostname TEXT, model TEXT,"
   "  os_name TEXT, os_version TEXT, os_build TEXT, os_kernel TEXT,"
   "  labels TEXT NOT NULL DEFAULT '{}',"
   "  upn TEXT,"
   "  enrolled_at INTEGER NOT NULL,"
   "  enrollment_token_id TEXT,"
   "  token_jti TEXT,"
   "  facts TEXT NOT NULL,"
   "  facts_updated_at INTEGER NOT NULL,"
   "  telemetry_dropped INTEGER NOT NULL DEFAULT 0,"
   "  UNIQUE (tenant_id, id));"
   "CREATE INDEX devices_platform ON devices(tenant_id, platform);"
   "CREATE TABLE device_status ("
   "  tenant_id TEXT NOT NULL,"
   "  device_id TEXT NOT NULL,"
   "  state TEXT NOT NULL DEFAULT 'active',"
   "  compliance TEXT NOT NULL DEFAULT 'unknown',"
   "  last_seen INTEGER,"
   "  facts_hash TEXT,"
   "  PRIMARY KEY (tenant_id, device_id)) WITHOUT ROWID;"
   "CREATE TABLE telemetry ("
   "  tenant_id TEXT NOT NULL,"
   "  device_id TEXT NOT NULL,"
   "  seq INTEGER NOT NULL,"
   "  at TEXT,"
   "  type TEXT NOT NULL,"
   "  data TEXT,"
   "  received_at INTEGER NOT NULL,"
   "  UNIQUE (tenant_id, device_id, seq));"
   "CREATE TABLE audit ("
   "  tenant_id TEXT NOT NULL,"
   "  seq INTEGER NOT NULL,"
   "  at TEXT NOT NULL,"
   "  actor TEXT NOT NULL,"
   "  action TEXT NOT NULL,"
   "  target TEXT,"
   "  detail TEXT,"
   "  prev_hash TEXT NOT NULL,"
   "  hash TEXT NOT NULL,"
   "  PRIMARY KEY (tenant_id, seq));"},
  {2, "policies",
   "CREATE TABLE policies ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  kind TEXT NOT NULL,"
   "  name TEXT NOT NULL,"
   "  version INTEGER NOT NULL,"
   "  hash TEXT NOT NULL,"
   "  doc TEXT NOT NULL,"
   "  author TEXT NOT NULL,"
   "  created_at INTEGER NOT NULL,"
   "  updated_at INTEGER NOT NULL,"
   "  PRIMARY KEY (tenant_id, kind, name));"
   /* Bumped by every policy change: verdicts remember the generation they
    * were computed under. */
   "ALTER TABLE tenants ADD COLUMN policy_gen INTEGER NOT NULL DEFAULT 0;"
   "ALTER TABLE device_status ADD COLUMN eval_gen INTEGER NOT NULL"
   "  DEFAULT -1;"
   /* The ETag of the device's configuration bundle, computed with the
    * verdict (both depend on the generation, platform and labels). */
   "ALTER TABLE device_status ADD COLUMN policy_etag TEXT;"
   /* SHA-256 of the last check-in's raw body: a byte-identical check-in
    * under the same policies only needs last_seen moved. */
   "ALTER TABLE device_status ADD COLUMN body_hash BLOB;"
   /* What the agent last said of each setting of its bundle. */
   "ALTER TABLE devices ADD COLUMN policy_status TEXT;"
   "CREATE TABLE device_compliance ("
   "  tenant_id TEXT NOT NULL,"
   "  device_id TEXT NOT NULL,"
   "  reasons TEXT NOT NULL DEFAULT '[]',"
   "  changed_at INTEGER,"
   "  evaluated_at INTEGER,"
   "  PRIMARY KEY (tenant_id, device_id)) WITHOUT ROWID;"
   "CREATE INDEX device_status_compliance"
   "  ON device_status(tenant_id, compliance);"},
  {3, "commands",
   /* The command queue (docs/api.md "Commands").  Times are epoch seconds;
    * a rowid table, so that the rowid orders a device's commands by when
    * they were queued (the list's order and cursor). */
   "CREATE TABLE commands ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  id TEXT NOT NULL,"
   "  device_id TEXT NOT NULL,"
   "  type TEXT NOT NULL,"
   "  params TEXT NOT NULL DEFAULT '{}',"
   "  status TEXT NOT NULL DEFAULT 'queued',"
   "  detail TEXT,"
   "  issued_at INTEGER NOT NULL,"
   "  expires_at INTEGER NOT NULL,"
   "  created_by TEXT NOT NULL,"
   "  sent_at INTEGER,"
   "  acknowledged_at INTEGER,"
   "  completed_at INTEGER,"
   "  canceled_at INTEGER,"
   "  UNIQUE (tenant_id, id));"
   /* What waits for a device: the check-in's count and the agent's fetch
    * read only this index. */
   "CREATE INDEX commands_pending"
   "  ON commands(tenant_id, device_id, status, expires_at);"
   /* A device's commands newest first (the implicit rowid suffix orders
    * them). */
   "CREATE INDEX commands_device ON commands(tenant_id, device_id);"
   /* The wipe command a pending retirement waits for (kept, for the
    * record, once the device is retired). */
   "ALTER TABLE devices ADD COLUMN retire_command_id TEXT;"},
  {4, "pki",
   /* Each tenant's certificate authority (issue 5): its private key is
    * kept like the token-signing key, in this 0600 database. */
   "CREATE TABLE tenant_ca ("
   "  tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),"
   "  key_pem TEXT NOT NULL,"
   "  cert_pem TEXT NOT NULL,"
   "  created_at INTEGER NOT NULL);"
   /* Every certificate issued to a device; revoked_at is set when the
    * device is retired or wiped (the CRL lists those). */
   "CREATE TABLE device_certs ("
   "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
   "  serial TEXT NOT NULL,"
   "  device_id TEXT NOT NULL,"
   "  fingerprint TEXT NOT NULL UNIQUE,"
   "  not_before INTEGER NOT NULL,"
   "  not_after INTEGER NOT NULL,"
   "  issued_at INTEGER NOT NULL,"
   "  revoked_at INTEGER,"
   "  PRIMARY KEY (tenant_id, serial));"
   "CREATE INDEX device_certs_device ON device_certs(tenant_id, device_id);"},
};

const int mdm_sqlite_n_migrations =
  (int)(sizeof(mdm_sqlite_migrations) / sizeof(mdm_sqlite_migrations[0]));
