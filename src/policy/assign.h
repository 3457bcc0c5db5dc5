/*
 * assign.h: which devices a policy document is for (spec.assign), for any
 * kind: platforms (the device's must be listed; absent list: any) and
 * labels (every key/value must be among the device's; absent: any).
 * Pure.
 */
#ifndef MDM_ASSIGN_H
#define MDM_ASSIGN_H

#include <jansson.h>

/* Does spec.assign of doc (a whole document, borrowed) select a device of
 * this platform (may be NULL) and labels (object or NULL)? */
int mdm_assign_matches(json_t *doc, const char *platform, json_t *labels);

#endif
