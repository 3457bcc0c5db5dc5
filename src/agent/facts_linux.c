/* placeholder: Linux facts backend (being written) */
#include "agent/facts.h"
mdm_rc mdm_facts_collect(const char *root, json_t **out)
{
  (void)root;
  *out = json_object();
  return MDM_OK;
}
