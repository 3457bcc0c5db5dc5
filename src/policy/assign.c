/*
 * assign.c: spec.assign matching on documents as JSON (see assign.h).
 * Compiled compliance policies have their own copy in eval.c; this one
 * serves kinds that are not compiled (configuration profiles).
 */
#include <string.h>
#include "policy/assign.h"

int mdm_assign_matches(json_t *doc, const char *platform, json_t *labels)
{
  json_t *assign = json_object_get(json_object_get(doc, "spec"), "assign");
  json_t *platforms, *sel, *v;
  const char *k;
  size_t i;

  if(!json_is_object(assign))
    return 1;
  platforms = json_object_get(assign, "platforms");
  if(json_is_array(platforms)) {
    int is_listed = 0;
    if(!platform)
      return 0;
    json_array_foreach(platforms, i, v)
      if(json_is_string(v) && !strcmp(json_string_value(v), platform))
        is_listed = 1;
    if(!is_listed)
      return 0;
  }
  sel = json_object_get(assign, "labels");
  if(json_is_object(sel)) {
    json_object_foreach(sel, k, v) {
      json_t *have = json_is_object(labels) ? json_object_get(labels, k)
                                            : NULL;
      if(!json_is_string(have) || !json_is_string(v) ||
         strcmp(json_string_value(have), json_string_value(v)))
        return 0;
    }
  }
  return 1;
}
