/*
 * enforce.h: local enforcement of a configuration bundle's settings.  Each
 * setting the agent knows (vpn, password, encryption, os_update) has one
 * enforcer in its own file, enforce_<area>.c; a platform's enforcers are
 * gathered in one table ({setting name, apply, remove}) that policy.c walks,
 * so another platform supplies its own table and files, and no logic here
 * tests for a platform.  A setting absent from the table is reported
 * not_supported, never dropped.
 *
 * Enforcers write under the device's root (--root; "/" for the real one)
 * and the agent's state directory only, are idempotent (a file whose bytes
 * and mode are already right is not rewritten), and never trust the value
 * they get: the server validated it, but the file they write may be read by
 * a program that runs as root (OpenVPN), so every value is checked again.
 */
#ifndef MDM_AGENT_ENFORCE_H
#define MDM_AGENT_ENFORCE_H

#include <stddef.h>
#include <jansson.h>
#include "core/buf.h"
#include "core/rc.h"

#define MDM_ENFORCE_DETAIL_MAX 512
#define MDM_ENFORCE_FILE_MAX (1024 * 1024)   /* files we edit in place */

/* Where the agent writes the VPN profile, under the root. */
#define MDM_ENFORCE_VPN_PATH "/etc/openvpn/client/mdm.conf"
#define MDM_ENFORCE_LOGIN_DEFS "/etc/login.defs"
#define MDM_ENFORCE_PWQUALITY_DIR "/etc/security"
#define MDM_ENFORCE_PWQUALITY "/etc/security/pwquality.conf"
/* In the state directory. */
#define MDM_ENFORCE_OS_UPDATE_FILE "os_update.json"

enum mdm_enforce_state {
  MDM_ENFORCE_APPLIED,
  MDM_ENFORCE_FAILED,
  MDM_ENFORCE_NOT_SUPPORTED
};

/* What an enforcer may look at.  All borrowed. */
struct mdm_enforce_ctx {
  const char *root;        /* the device's "/" (NULL or "": the real one) */
  const char *state_dir;   /* the agent's state directory */
  json_t *facts;           /* the facts of this round (CONTRACT §4), or NULL */
};

/* What an enforcer did with one setting. */
struct mdm_enforce_result {
  enum mdm_enforce_state state;
  char detail[MDM_ENFORCE_DETAIL_MAX];   /* "" means no detail (null) */
  int is_changed;                        /* a file was written or removed */
};

/* Enforce value (borrowed) and fill *res (zeroed by the caller: state
 * applied, no detail). */
typedef void (*mdm_enforce_fn)(const struct mdm_enforce_ctx *ctx,
                               json_t *value, struct mdm_enforce_result *res);
/* Undo what the agent put in place for a setting that left the bundle
 * (remove the file it owns).  Idempotent; returns 1 if it changed
 * something. */
typedef int (*mdm_enforce_remove_fn)(const struct mdm_enforce_ctx *ctx);

struct mdm_enforcer {
  const char *setting;            /* key in the bundle's "settings" */
  mdm_enforce_fn apply;
  mdm_enforce_remove_fn remove;   /* NULL: nothing the agent owns to undo */
};

/* The Linux table, ended by an entry whose setting is NULL. */
extern const struct mdm_enforcer mdm_enforcers_linux[];

/* The detail for a setting no enforcer knows. */
#define MDM_ENFORCE_UNSUPPORTED_DETAIL "not supported by mdm-agent on linux"

/* ---- the enforcers -------------------------------------------------------- */

void mdm_enforce_vpn(const struct mdm_enforce_ctx *ctx, json_t *value,
                     struct mdm_enforce_result *res);
int mdm_enforce_vpn_remove(const struct mdm_enforce_ctx *ctx);
void mdm_enforce_password(const struct mdm_enforce_ctx *ctx, json_t *value,
                          struct mdm_enforce_result *res);
void mdm_enforce_encryption(const struct mdm_enforce_ctx *ctx, json_t *value,
                            struct mdm_enforce_result *res);
void mdm_enforce_os_update(const struct mdm_enforce_ctx *ctx, json_t *value,
                           struct mdm_enforce_result *res);
int mdm_enforce_os_update_remove(const struct mdm_enforce_ctx *ctx);

/* The OpenVPN client profile for the vpn setting vpn (borrowed) appended to
 * out, deterministically: a comment line, then client, dev, proto, remote
 * HOST PORT, auth, cipher, auth-user-pass, persist-key, persist-tun, verb,
 * remote-cert-tls, <ca>…</ca>, then the extra lines, each only when set.
 * MDM_ERR_INVAL with a reason in err[n] ("vpn.remote: …") for a value that
 * OpenVPN would read differently from what it says. */
mdm_rc mdm_enforce_vpn_render(json_t *vpn, struct mdm_buf *out, char *err,
                              size_t n);

/* ---- helpers shared by the enforcers (enforce.c) -------------------------- */

/* Set res's state and its detail (printf-style; NULL for none). */
void mdm_enforce_set(struct mdm_enforce_result *res,
                     enum mdm_enforce_state state, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* rel (starting with '/') under ctx->root into out[n]. */
mdm_rc mdm_enforce_path(const struct mdm_enforce_ctx *ctx, const char *rel,
                        char *out, size_t n);

/* Make path hold exactly data[len] with mode: nothing is written when it
 * already does (a wrong mode alone is fixed with chmod); otherwise missing
 * parent directories are created 0755 and the file is replaced atomically.
 * *is_changed (may be NULL) tells whether anything changed. */
mdm_rc mdm_enforce_write(const char *path, const void *data, size_t len,
                         unsigned mode, int *is_changed /* OUT */);

/* How a configuration file separates a key from its value. */
enum mdm_kv_style {
  MDM_KV_SPACE,    /* login.defs: "PASS_MAX_DAYS<whitespace>99999" */
  MDM_KV_EQUALS    /* pwquality.conf: "minlen = 8" */
};

/* text (a NUL-terminated file) with every active (uncommented) line that
 * sets key given value instead, its indentation and separator kept, and
 * every other line (comments included) as it was; when no line sets key,
 * "key<TAB>value" or "key = value" is appended on a line of its own.
 * Caller owns *out; free() it. */
mdm_rc mdm_enforce_kv_set(const char *text, const char *key,
                          enum mdm_kv_style style, const char *value,
                          char **out /* OUT */);

#endif
