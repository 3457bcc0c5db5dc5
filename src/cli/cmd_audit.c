/*
 * cmd_audit.c: "mdmctl audit ...": read the tenant's audit log, check its
 * hash chain (/v1/audit, /v1/audit/verify), export a signed checkpoint of
 * the chain's head (/v1/audit/checkpoint) and check a checkpoint later
 * against the live log: its signature here, with the libmdm crypto, and
 * the log's prefix on the server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/buf.h"
#include "core/util.h"
#include "crypto/key.h"

#define PATH_CHECKPOINT "/v1/audit/checkpoint"
#define PATH_KEYS "/v1/audit/keys"
#define PATH_VERIFY "/v1/audit/verify"
/* A checkpoint file is a few hundred bytes. */
#define CLI_MAX_CHECKPOINT (64 * 1024)

static const struct cli_col audit_cols[] = {
  {"SEQ", "seq", CLI_CELL_TEXT, NULL},
  {"AT", "at", CLI_CELL_TEXT, NULL},
  {"ACTOR", "actor", CLI_CELL_TEXT, NULL},
  {"ACTION", "action", CLI_CELL_TEXT, NULL},
  {"TARGET", "target", CLI_CELL_TEXT, NULL},
  {NULL, NULL, CLI_CELL_TEXT, NULL}
};

static const struct cli_opt list_opts[] = {
  {"--limit", 0, "N", "print at most the N oldest records (default: all)"},
  {NULL, 0, NULL, NULL}
};

static const struct cli_opt verify_opts[] = {
  {"--checkpoint", 0, "FILE", "also check that the log still holds the "
   "history this checkpoint (from 'audit checkpoint') signed"},
  {"--key", 0, "FILE", "with --checkpoint: the tenant's public key (PEM) "
   "to trust, instead of the one in the checkpoint"},
  {NULL, 0, NULL, NULL}
};

static const struct cli_opt checkpoint_opts[] = {
  {"--output", 'o', "FILE", "write the checkpoint to FILE (atomically) "
   "instead of standard output; not the output format"},
  {NULL, 0, NULL, NULL}
};

static int audit_list(struct cli *cli, const struct cli_args *a)
{
  struct cli_client *c;
  json_t *items = NULL;
  long long limit = 0;
  int ret = cli_flag_int(cli, a, "--limit", 1, 1000000000LL, &limit);

  if(ret)
    return ret;
  ret = CLI_EXIT_FAIL;
  c = cli_connect(cli);
  if(c && !cli_client_list(c, "/v1/audit", (size_t)limit, &items))
    ret = cli_print_list(cli, items, audit_cols, "audit records");
  json_decref(items);
  return ret;
}

/* ---- checkpoints -------------------------------------------------------- */

struct checkpoint {
  const char *tenant;
  json_int_t records;
  const char *head_hash;
  const char *time;
  const char *kid;
  const char *signature;
  const char *public_key;
};

static int is_hex64(const char *s)
{
  size_t i;
  for(i = 0; i < 64; i++)
    if(!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[64] == '\0';
}

/* Read the fields of a checkpoint object (borrowed from o); 0 or -1 after
 * printing what is wrong. */
static int checkpoint_fields(json_t *o, const char *shown,
                             struct checkpoint *cp)
{
  const char *alg = json_string_value(json_object_get(o, "alg"));
  json_t *rec = json_object_get(o, "records");

  cp->tenant = json_string_value(json_object_get(o, "tenant"));
  cp->head_hash = json_string_value(json_object_get(o, "head_hash"));
  cp->time = json_string_value(json_object_get(o, "time"));
  cp->kid = json_string_value(json_object_get(o, "kid"));
  cp->signature = json_string_value(json_object_get(o, "signature"));
  cp->public_key = json_string_value(json_object_get(o, "public_key"));
  cp->records = json_integer_value(rec);
  if(!cp->tenant || !mdm_is_uuid(cp->tenant) || !json_is_integer(rec) ||
     cp->records < 0 || !cp->head_hash ||
     (cp->records ? !is_hex64(cp->head_hash) : cp->head_hash[0] != '\0') ||
     !cp->time || !cp->kid || !cp->signature || !cp->public_key || !alg) {
    cli_error("'%s' is not an audit checkpoint: it needs tenant, records, "
              "head_hash, time, kid, alg, signature and public_key", shown);
    return -1;
  }
  if(strcmp(alg, "ES256")) {
    char s[64];
    cli_error("'%s': unsupported signature algorithm '%s' (expected ES256)",
              shown, cli_sanitize(alg, s, sizeof(s)));
    return -1;
  }
  return 0;
}

/* Check cp's signature with the key it names (or the pinned key from
 * key_path).  0, or -1 after printing why not. */
static int checkpoint_signature(const struct checkpoint *cp,
                                const char *shown, const char *key_path)
{
  EVP_PKEY *key = NULL;
  char *pem = NULL, kid[MDM_KID_LEN + 1], ks[512];
  struct mdm_buf text;
  size_t len;
  int ret = -1;

  if(key_path) {
    mdm_rc rc = mdm_file_read(key_path, CLI_MAX_CHECKPOINT, &pem, &len);
    if(rc) {
      cli_error("cannot read '%s': %s",
                cli_sanitize(key_path, ks, sizeof(ks)),
                rc == MDM_ERR_NOTFOUND ? "no such file" : strerror(errno));
      return -1;
    }
  }
  if(mdm_key_from_pem(pem ? pem : cp->public_key, &key)) {
    if(key_path)
      cli_error("'%s' holds no P-256 public key",
                cli_sanitize(key_path, ks, sizeof(ks)));
    else
      cli_error("'%s': public_key is not a P-256 public key", shown);
    goto out;
  }
  if(mdm_key_id(key, kid) || strcmp(kid, cp->kid)) {
    if(key_path) {
      char kp[512];
      cli_error("'%s' was signed by key %s, not by the key in '%s' (%s)",
                shown, cli_sanitize(cp->kid, ks, 64),
                cli_sanitize(key_path, kp, sizeof(kp)), kid);
    }
    else
      cli_error("'%s': its public_key does not match its kid", shown);
    goto out;
  }
  mdm_buf_init(&text, 4096);
  if(mdm_buf_printf(&text, "mdm-audit-checkpoint/v1\n%s\n%lld\n%s\n%s",
                    cp->tenant, (long long)cp->records, cp->head_hash,
                    cp->time) ||
     mdm_sig_verify(key, text.data, text.len, cp->signature))
    cli_error("'%s': the signature does not verify: the checkpoint was "
              "altered or not made by this key", shown);
  else
    ret = 0;
  mdm_buf_release(&text);
out:
  EVP_PKEY_free(key);
  free(pem);
  return ret;
}

/* Is kid among the tenant's keys the server publishes? */
static int checkpoint_key_known(struct cli_client *c,
                                const struct checkpoint *cp)
{
  json_t *res = NULL, *k;
  size_t i;
  int found = 0;

  if(cli_client_call(c, "GET", PATH_KEYS, NULL, 0, NULL, &res))
    return -1;
  json_array_foreach(json_object_get(res, "keys"), i, k) {
    const char *kid = json_string_value(json_object_get(k, "kid"));
    if(kid && !strcmp(kid, cp->kid))
      found = 1;
  }
  json_decref(res);
  if(!found) {
    char s[64];
    cli_error("the checkpoint was signed by key %s, which is not this "
              "tenant's signing key", cli_sanitize(cp->kid, s, sizeof(s)));
    return -1;
  }
  return 0;
}

/* Compare the live log (the server's recomputed chain) with cp.  Prints
 * the result; returns an exit code. */
static int checkpoint_against_log(struct cli *cli, struct cli_client *c,
                                  const struct checkpoint *cp,
                                  const char *shown)
{
  json_t *res = NULL, *bad, *out = NULL;
  const char *tenant, *at_hash;
  json_int_t records;
  char path[128], s[128];
  int ret = CLI_EXIT_FAIL;

  if(cp->records > 0)
    snprintf(path, sizeof(path), PATH_VERIFY "?seq=%" JSON_INTEGER_FORMAT,
             cp->records);
  else
    snprintf(path, sizeof(path), PATH_VERIFY);
  if(cli_client_call(c, "GET", path, NULL, 0, NULL, &res))
    goto out;
  tenant = json_string_value(json_object_get(res, "tenant"));
  records = json_integer_value(json_object_get(res, "records"));
  bad = json_object_get(res, "first_bad");
  at_hash = json_string_value(json_object_get(res, "hash_at_seq"));
  if(!tenant || !json_is_integer(json_object_get(res, "records")) ||
     !json_is_boolean(json_object_get(res, "ok"))) {
    cli_error("GET %s: unexpected answer", path);
    goto out;
  }
  if(strcmp(tenant, cp->tenant)) {
    cli_error("'%s' is a checkpoint of tenant %s; the token's tenant is %s",
              shown, cp->tenant, cli_sanitize(tenant, s, sizeof(s)));
    goto out;
  }
  if(records < cp->records) {
    cli_error("audit log truncated: it has %" JSON_INTEGER_FORMAT
              " records, the checkpoint of %s covers %" JSON_INTEGER_FORMAT,
              records, cli_sanitize(cp->time, s, sizeof(s)), cp->records);
    goto out;
  }
  if(json_is_integer(bad) && json_integer_value(bad) <= cp->records) {
    cli_error("audit log rewritten: record %" JSON_INTEGER_FORMAT " fails "
              "the chain, within the %" JSON_INTEGER_FORMAT " records the "
              "checkpoint covers", json_integer_value(bad), cp->records);
    goto out;
  }
  if(cp->records > 0 && (!at_hash || strcmp(at_hash, cp->head_hash))) {
    cli_error("audit log rewritten: the chain at seq %" JSON_INTEGER_FORMAT
              " no longer has the checkpoint's hash %.12s...", cp->records,
              cp->head_hash);
    goto out;
  }
  if(json_is_integer(bad)) {
    cli_error("audit chain broken at seq %" JSON_INTEGER_FORMAT " (after "
              "the %" JSON_INTEGER_FORMAT " records the checkpoint covers, "
              "which are intact)", json_integer_value(bad), cp->records);
    goto out;
  }
  if(cli->fmt == CLI_FMT_TABLE) {
    char line[512];
    snprintf(line, sizeof(line), "checkpoint ok: %" JSON_INTEGER_FORMAT
             " records up to head %s (signed %s by key %s); the log now has %"
             JSON_INTEGER_FORMAT " records", cp->records,
             cp->records ? cp->head_hash : "-", cli_sanitize(cp->time, s, 64),
             cp->kid, records);
    ret = cli_print_line(line);
  }
  else {
    out = json_pack("{s:b, s:{s:s, s:I, s:s, s:s, s:s}, s:O}", "ok", 1,
                    "checkpoint", "tenant", cp->tenant, "records",
                    cp->records, "head_hash", cp->head_hash, "time",
                    cp->time, "kid", cp->kid, "log", res);
    ret = out ? cli_print_object(cli, out) : cli_nomem();
  }
out:
  json_decref(out);
  json_decref(res);
  return ret;
}

static int verify_checkpoint(struct cli *cli, const char *file,
                             const char *key_path)
{
  struct cli_client *c;
  struct checkpoint cp;
  json_t *o = NULL;
  json_error_t jerr;
  char *text = NULL, shown[512];
  size_t len = 0;
  mdm_rc rc;
  int ret = CLI_EXIT_FAIL;

  cli_sanitize(file, shown, sizeof(shown));
  rc = mdm_file_read(file, CLI_MAX_CHECKPOINT, &text, &len);
  if(rc) {
    cli_error("cannot read '%s': %s", shown,
              rc == MDM_ERR_NOTFOUND ? "no such file"
              : rc == MDM_ERR_TOOBIG ? "not a checkpoint (too large)"
                                     : strerror(errno));
    return CLI_EXIT_FAIL;
  }
  o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if(!json_is_object(o)) {
    cli_error("'%s' is not an audit checkpoint: not a JSON object", shown);
    goto out;
  }
  if(checkpoint_fields(o, shown, &cp) ||
     checkpoint_signature(&cp, shown, key_path))
    goto out;
  c = cli_connect(cli);
  if(!c || checkpoint_key_known(c, &cp))
    goto out;
  ret = checkpoint_against_log(cli, c, &cp, shown);
out:
  json_decref(o);
  return ret;
}

static int audit_verify(struct cli *cli, const struct cli_args *a)
{
  const char *file = cli_args_get(a, "--checkpoint");
  const char *key_path = cli_args_get(a, "--key");
  struct cli_client *c;
  json_t *res = NULL, *ok, *bad;
  int ret = CLI_EXIT_FAIL;

  if(key_path && !file)
    return cli_usage_error(cli, "--key goes with --checkpoint FILE");
  if(file && !*file)
    return cli_usage_error(cli, "--checkpoint needs a file name");
  if(file)
    return verify_checkpoint(cli, file, key_path);
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "GET", PATH_VERIFY, NULL, 0, NULL, &res))
    goto out;
  ok = json_object_get(res, "ok");
  bad = json_object_get(res, "first_bad");
  if(!json_is_boolean(ok)) {
    cli_error("GET " PATH_VERIFY ": unexpected answer: no boolean 'ok'");
    goto out;
  }
  if(cli->fmt != CLI_FMT_TABLE && cli_print_object(cli, res))
    goto out;
  if(json_is_true(ok)) {
    ret = CLI_EXIT_OK;
    if(cli->fmt == CLI_FMT_TABLE) {
      const char *head = json_string_value(json_object_get(res, "head_hash"));
      char line[256], h[80];
      snprintf(line, sizeof(line), "audit chain ok: %" JSON_INTEGER_FORMAT
               " records, head %s",
               json_integer_value(json_object_get(res, "records")),
               head ? cli_sanitize(head, h, sizeof(h)) : "-");
      ret = cli_print_line(line);
    }
  }
  else if(json_is_integer(bad))
    cli_error("audit chain broken at seq %" JSON_INTEGER_FORMAT,
              json_integer_value(bad));
  else if(json_is_string(bad)) {
    char s[64];
    cli_error("audit chain broken at seq %s",
              cli_sanitize(json_string_value(bad), s, sizeof(s)));
  }
  else
    cli_error("audit chain broken");
out:
  json_decref(res);
  return ret;
}

static int audit_checkpoint(struct cli *cli, const struct cli_args *a)
{
  const char *path = NULL;
  struct cli_client *c;
  struct checkpoint cp;
  json_t *res = NULL;
  char *text = NULL, *withnl, shown[1024];
  size_t n;
  int k, ret = CLI_EXIT_FAIL;
  mdm_rc rc;

  for(k = a->n_vals - 1; k >= 0 && !path; k--)
    if(a->vals[k].opt == &checkpoint_opts[0])
      path = a->vals[k].val ? a->vals[k].val : "";
  if(path && !*path)
    return cli_usage_error(cli, "-o needs a file name (or - for standard "
                           "output)");
  c = cli_connect(cli);
  if(!c || cli_client_call(c, "GET", PATH_CHECKPOINT, NULL, 0, NULL, &res))
    goto out;
  if(!json_is_object(res) ||
     checkpoint_fields(res, "GET " PATH_CHECKPOINT, &cp))
    goto out;
  text = json_dumps(res, JSON_INDENT(2));
  if(!text) {
    ret = cli_nomem();
    goto out;
  }
  if(!path || !strcmp(path, "-")) {
    ret = cli_print_line(text);
    goto out;
  }
  n = strlen(text);
  withnl = malloc(n + 2);
  if(!withnl) {
    ret = cli_nomem();
    goto out;
  }
  memcpy(withnl, text, n);
  withnl[n] = '\n';
  withnl[n + 1] = '\0';
  rc = mdm_file_write_atomic(path, withnl, n + 1, 0644);
  free(withnl);
  if(rc) {
    cli_error("cannot write '%s': %s",
              cli_sanitize(path, shown, sizeof(shown)),
              rc == MDM_ERR_IO ? strerror(errno) : mdm_strerror(rc));
    goto out;
  }
  ret = cli_print_line(cli_sanitize(path, shown, sizeof(shown)));
out:
  free(text);
  json_decref(res);
  return ret;
}

const struct cli_cmd cli_audit_cmds[] = {
  {"audit", "list", audit_list, "[--limit N]",
   "list audit records, oldest first", NULL, list_opts, 0, 0},
  {"audit", "verify", audit_verify, "[--checkpoint FILE [--key PEM]]",
   "check the audit log's hash chain (and a checkpoint against it)",
   "Exits 0 when the chain is intact and prints \"audit chain ok: N "
   "records, head HASH\"; exits 1 with \"audit chain broken at seq N\" "
   "when it is not. With --checkpoint FILE (from 'mdmctl audit "
   "checkpoint'), checks instead that the checkpoint's signature verifies "
   "(with its own public key, which must match its kid and be the tenant's "
   "key the server publishes, or with the key pinned by --key), and that "
   "the live log still holds the checkpoint's records unchanged: at least "
   "that many records, and the chain recomputed from their content reaches "
   "the checkpoint's head hash at that seq. A truncated or rewritten "
   "history exits 1 with one line saying which.",
   verify_opts, 0, 0},
  {"audit", "checkpoint", audit_checkpoint, "[-o FILE]",
   "export a signed checkpoint of the audit log's head",
   "Prints (or writes to FILE, atomically, and prints its name) the "
   "server's signed checkpoint: {tenant, records, head_hash, time, kid, "
   "alg, signature, public_key}. Keep it away from the server; later, "
   "'mdmctl audit verify --checkpoint FILE' shows whether the history it "
   "covers was changed since.",
   checkpoint_opts, 0, 0},
  {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}
};
