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
 * and append its documents to ds.  Empty documents are skipped.  On error
 * nothing is appended and err holds "NAME: line N: what is wrong". */
mdm_rc mdm_doc_parse(struct mdm_docset *ds, const char *name,
                     const char *text, size_t len, char *err, size_t errlen);

/* Read path (a file, or a directory searched recursively for *.yaml,
 * *.yml and *.json, in sorted order) and parse everything into ds.
 * Names are paths as given (dir/sub/file.yaml). */
mdm_rc mdm_doc_load_path(struct mdm_docset *ds, const char *path, char *err,
                         size_t errlen);

/* Validate one document: apiVersion "mdm/v1", a known kind,
 * metadata.name a DNS label (1-63 of [a-z0-9-], not starting or ending
 * with '-'), metadata.labels string map (optional), no other top-level
 * fields, and the kind's own spec rules.  On MDM_ERR_UNPROCESSABLE err
 * holds "FILE: line N: FIELD: what is wrong". */
mdm_rc mdm_doc_validate(const struct mdm_doc *d, char *err, size_t errlen);

/* Validate every document of ds and check that no (kind, name) appears
 * twice.  Stops at the first error. */
mdm_rc mdm_docset_validate(const struct mdm_docset *ds, char *err,
                           size_t errlen);

/* Known kinds, for the server's routes: 1 if kind is one. */
int mdm_doc_kind_known(const char *kind);

/* Line of the node at a dotted path with [i] indices ("spec.rules[2].op")
 * in d, or d->line when unknown. */
int mdm_doc_line(const struct mdm_doc *d, const char *path);

/* Render a document as YAML (block style, keys in a stable order:
 * apiVersion, kind, metadata, spec, then the rest sorted) for
 * `mdmctl export`.  Caller frees. */
mdm_rc mdm_doc_to_yaml(json_t *doc, char **out);

#endif
