/*
 * facts.h: what the agent reports about its device (CONTRACT §4).  One
 * backend per platform (facts_linux.c now) behind this interface.  Facts are
 * read from the device rooted at `root` ("/" for the real one; a directory
 * that stands in for / in tests).  What cannot be read is JSON null, never a
 * guess.
 */
#ifndef MDM_FACTS_H
#define MDM_FACTS_H

#include <jansson.h>
#include "core/rc.h"

/* Collect the facts of the device under root (NULL or "" means "/").
 * Returns a JSON object shaped as CONTRACT §4.  Caller owns *out.
 * MDM_ERR_NOTFOUND (and *out NULL) when root is not a directory: a wrong
 * --root is an error, not a device whose every fact is null. */
mdm_rc mdm_facts_collect(const char *root, json_t **out /* OUT */);

#endif
