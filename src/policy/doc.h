/*
 * doc.h: policy documents (CONTRACT §6): parsing YAML or JSON files that
 * hold one or more documents, and validating each against its kind.
 *
 * Parsing turns each document into a jansson object and remembers, for
 * every node, the line it came from, so a validation error can name file,
 * line, field and what is wrong:
 *   "policies/vpn.yaml: line 7: spec.settings.vpn.port: expected an integer
 *    in 1..65535"
 * Kinds are a table (doc.c: one entry a kind with its validator), so adding
 * a kind is a local change.  Parsing is bounded (input size, depth, node
 * count, scalar length; YAML aliases are refused) so hostile input fails
 * fast.
 */
#ifndef MDM_DOC_H
#define MDM_DOC_H

#include <stddef.h>
#include <jansson.h>
#include "core/rc.h"

#define MDM_DOC_MAX_INPUT (4 * 1024 * 1024)  /* bytes per file */
#define MDM_DOC_MAX_DEPTH 64
#define MDM_DOC_MAX_NODES 100000
#define MDM_DOC_MAX_SCALAR (256 * 1024)
#define MDM_DOC_MAX_KEY 1024                 /* bytes in a mapping key */
#define MDM_DOC_MAX_DIR_DEPTH 16             /* mdm_doc_load_path */

/*
 * YAML scalars become JSON values by the YAML 1.2 core schema, applied to
 * plain (unquoted, untagged) scalars only:
 *   null, Null, NULL, ~ and the empty scalar     -> null
 *   true, True, TRUE, false, False, FALSE        -> boolean
 *   [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+        -> integer (out of the
 *                                                   64-bit range: error)
 *   [-+]?([.][0-9]+|[0-9]+([.][0-9]*)?)([eE][-+]?[0-9]+)?  -> real
 *   .inf, .nan and friends                       -> error (JSON has none)
 *   anything else                                -> string
 * So YAML 1.1's yes/no/on/off/y/n are strings, 0123 is the integer 123
 * (1.1 read octal), 12:30 and 2026-01-31 are strings (1.1 read a base-60
 * number and a timestamp).  Write value: "13.10" for a version: plain
 * 13.10 is the real 13.1.
 * Quoted and block scalars are always strings.  Tags: "!" and !!str force a
 * string; !!int, !!float, !!bool, !!null force that type (an error when the
 * text is not one); !!map, !!seq on the matching node are accepted; any
 * other tag is an error.  Aliases are an error ("aliases are not
 * supported"); anchors are ignored.  Mapping keys must be scalars (their
 * text is the key; a null key is an error); duplicate keys are an error.
 * JSON is parsed as YAML; in a JSON file (one that jansson also accepts)
 * \uD83D\uDE00-style surrogate pairs are decoded, which libyaml alone
 * refuses.
 */

/* One parsed document: its JSON and where it came from. */
struct mdm_doc {
  json_t *json;          /* owned */
  char *file;            /* owned; the name given to the parser */
  int line;              /* line of the document's start */
  struct mdm_docmap *map;/* owned; node path → line */
};

struct mdm_docset {
  struct mdm_doc *docs;
  size_t n_docs;
  size_t cap;
};

void mdm_docset_init(struct mdm_docset *ds);
void mdm_docset_release(struct mdm_docset *ds);

/* Parse text (YAML 1.1/1.2 or JSON; JSON is YAML) from a file named name
 * and append its documents to ds.  Empty (or null) documents are skipped.
 * On error nothing is appended and err holds "NAME: line N: what is
 * wrong", with the field's path before "what" where one is known
 * ("t.yaml: line 3: spec.x: duplicate key (first at line 2)"):
 * MDM_ERR_INVAL for text that is not YAML or breaks a rule above,
 * MDM_ERR_TOOBIG past a bound (input size, depth, nodes, scalar or key
 * length), MDM_ERR_NOMEM.  err may be NULL. */
mdm_rc mdm_doc_parse(struct mdm_docset *ds, const char *name,
                     const char *text, size_t len, char *err, size_t errlen);

/* Read path (a file, or a directory searched recursively for *.yaml,
 * *.yml and *.json, in sorted order) and parse everything into ds.
 * Names are paths as given (dir/sub/file.yaml).  In directories, names
 * starting with '.' (.git, editor files) are skipped, symbolic links to
 * directories are not followed, and at most MDM_DOC_MAX_DIR_DEPTH levels
 * are read.  Each file is read up to MDM_DOC_MAX_INPUT bytes.  All or
 * nothing: on error ds is as it was and err says "PATH: what is wrong". */
mdm_rc mdm_doc_load_path(struct mdm_docset *ds, const char *path, char *err,
                         size_t errlen);

/* Validate one document: apiVersion "mdm/v1", a known kind,
 * metadata.name a DNS label (1-63 of [a-z0-9-], not starting or ending
 * with '-'), metadata.labels string map (optional), no other top-level
 * fields, and the kind's own spec rules.  On MDM_ERR_UNPROCESSABLE err
 * holds "FILE: line N: FIELD: what is wrong". */
mdm_rc mdm_doc_validate(const struct mdm_doc *d, char *err, size_t errlen);

/* Validate every document of ds and check that no (kind, name) appears
 * twice ("B: line N: metadata.name: KIND 'NAME' duplicates A: line M",
 * MDM_ERR_UNPROCESSABLE).  Stops at the first error. */
mdm_rc mdm_docset_validate(const struct mdm_docset *ds, char *err,
                           size_t errlen);

/* Known kinds, for the server's routes: 1 if kind is one. */
int mdm_doc_kind_known(const char *kind);

/* Line of the node at a dotted path with [i] indices ("spec.rules[2].op")
 * in d: for a mapping member the line of its key.  A path that goes
 * further than the document gives the line of its deepest existing
 * ancestor (so a missing field names its parent's line); d->line when
 * nothing matches.  Keys containing '.' or '[' are found too. */
int mdm_doc_line(const struct mdm_doc *d, const char *path);

/* d's kind and metadata.name, or NULL when absent or not strings.
 * Borrowed; valid while d is. */
const char *mdm_doc_kind(const struct mdm_doc *d);
const char *mdm_doc_name(const struct mdm_doc *d);

/* Render a document as YAML (block style, keys in a stable order:
 * apiVersion, kind, metadata, spec, then the rest sorted) for
 * `mdmctl export`.  Strings that would read back as another type or
 * another string are double-quoted, so mdm_doc_parse() of the result gives
 * a value json_equal() to doc (for documents of at most
 * MDM_DOC_MAX_DEPTH levels).  Caller owns *out; free() it. */
mdm_rc mdm_doc_to_yaml(json_t *doc, char **out);

#endif
