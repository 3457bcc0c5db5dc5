/*
 * config.h: where mdmctl finds its server, API token and CA file.  Each comes
 * from the first of: a command-line flag, the environment, the config file,
 * a default.
 *
 *   server:  --server, MDM_SERVER, "server", else http://127.0.0.1:8080
 *   token:   --token, --token-file, MDM_TOKEN, MDM_TOKEN_FILE, "token",
 *            "token_file"; no default
 *   ca_file: --ca-file, MDM_CA_FILE, "ca_file"; else the system's CAs
 *
 * The config file is $MDM_CONFIG (which must then exist), else
 * $XDG_CONFIG_HOME/mdm/config, else ~/.config/mdm/config (either may be
 * absent).  It holds "key = value" lines; blank lines and lines starting
 * with '#' are ignored; a value may be wrapped in double quotes.  Relative
 * paths in token_file and ca_file are relative to the file's directory, and
 * "~/" is the home directory.  A token file holds the token on its first
 * line (mdmd writes <data-dir>/admin.token that way).
 */
#ifndef MDM_CLI_CONFIG_H
#define MDM_CLI_CONFIG_H

#include <stddef.h>
#include "core/rc.h"

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

/* What the user gave on the command line; each may be NULL. Borrowed. */
struct cli_conf_flags {
  const char *server;
  const char *token;
  const char *token_file;
  const char *ca_file;
};

/* The resolved settings.  Strings are owned; release with
 * cli_conf_release(). */
struct cli_conf {
  char *server;       /* never NULL after a successful load */
  char *token;        /* NULL when none is configured anywhere */
  char *ca_file;      /* NULL: the system's trust store */
  char *config_path;  /* the config file consulted (may not exist) or NULL */
};

/* Resolve the settings.  Warns on stderr when a file that holds a token
 * (config or token file) is readable by group or others.  On failure returns
 * an mdm_rc and writes one lower-case line (without "mdmctl: ") to err.
 * The token never appears in err. */
mdm_rc cli_conf_load(struct cli_conf *c, const struct cli_conf_flags *f,
                     char *err, size_t err_len);
void cli_conf_release(struct cli_conf *c);

#endif
