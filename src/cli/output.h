/*
 * output.h: how mdmctl prints what the server returns.  The renderers are
 * pure (JSON value in, text in a bounded buffer out) so that they can be
 * tested on their own; cli_print_*() choose one by the -o flag and write to
 * stdout.
 *
 *   json   the server's JSON, pretty, 2-space indent (a list: the array of
 *          all items)
 *   yaml   block-style YAML; strings that would read back as something
 *          else (empty, "true", "12", "a: b", ...) are double-quoted
 *   csv    RFC 4180 (CRLF, a header row); nested objects become dotted
 *          columns (os.version, labels.dept) in first-seen order
 *   table  aligned columns chosen per resource; a single object is shown
 *          as "key: value" lines.  Text from the server has its control
 *          characters replaced so it cannot drive the terminal.
 */
#ifndef MDM_CLI_OUTPUT_H
#define MDM_CLI_OUTPUT_H

#include <stdint.h>
#include <jansson.h>
#include "cli/cli.h"
#include "core/buf.h"
#include "core/rc.h"

#define CLI_MAX_OUTPUT (1024u * 1024 * 1024)

/* How a table cell shows its value. */
enum cli_cell {
  CLI_CELL_TEXT,    /* the value as text; null or absent: "-" */
  CLI_CELL_AGO,     /* an RFC 3339 time in the past: "5m ago" */
  CLI_CELL_UNTIL,   /* an RFC 3339 time in the future: "in 3h", "expired" */
  CLI_CELL_MAP,     /* an object of strings: "k=v,k2=v2" */
  CLI_CELL_YESNO    /* a boolean: "yes" / "no" */
};

/* Appends the text of a computed cell for item to out. */
typedef mdm_rc (*cli_cell_fn)(const json_t *item, struct mdm_buf *out);

/* One table column; a table is an array of these ended by header NULL. */
struct cli_col {
  const char *header;  /* "LAST SEEN" */
  const char *path;    /* dotted path into the item: "os.version" */
  enum cli_cell kind;
  cli_cell_fn cell;    /* when set, computes the cell instead of path/kind */
};

/* Renderers: append to b.  now is the epoch second used for relative
 * times. */
mdm_rc cli_render_json(struct mdm_buf *b, const json_t *v);
mdm_rc cli_render_yaml(struct mdm_buf *b, const json_t *v);
/* items: an array (one row per element) or a single object (one row). */
mdm_rc cli_render_csv(struct mdm_buf *b, const json_t *items);
mdm_rc cli_render_table(struct mdm_buf *b, const json_t *items,
                        const struct cli_col *cols, int64_t now);
mdm_rc cli_render_details(struct mdm_buf *b, const json_t *obj);

/* Does s (len bytes) have to be double-quoted in YAML to read back as the
 * same string? */
int cli_yaml_needs_quotes(const char *s, size_t len);

/* Print a list in the chosen format.  In table mode an empty list prints
 * "No <what> found." on stderr and nothing on stdout.  Returns an exit code;
 * on failure one line is on stderr. */
int cli_print_list(const struct cli *cli, const json_t *items,
                   const struct cli_col *cols, const char *what);
/* Print one object in the chosen format (table: the details view). */
int cli_print_object(const struct cli *cli, const json_t *obj);
/* Write s and a newline to stdout. */
int cli_print_line(const char *s);

#endif
