/*
 * enforce_encryption.c: the encryption setting on Linux.  Full-disk
 * encryption cannot be turned on remotely under a running Linux system (the
 * root file system would have to be re-created), so the agent does not try:
 * it compares what the profile requires with the root_encrypted fact it
 * read from the device and reports the result.  A device that is not
 * encrypted reports the setting failed, and the compliance rules on the
 * server that read encryption.root_encrypted mark it noncompliant.
 */
#include <string.h>
#include "agent/enforce.h"

void mdm_enforce_encryption(const struct mdm_enforce_ctx *ctx, json_t *value,
                            struct mdm_enforce_result *res)
{
  json_t *req, *enc;
  const char *k;
  json_t *v;

  if(json_is_string(value) && !strcmp(json_string_value(value), "required"))
    req = json_true();
  else if(json_is_object(value)) {
    json_object_foreach(value, k, v) {
      if(strcmp(k, "required")) {
        mdm_enforce_set(res, MDM_ENFORCE_FAILED, "encryption.%.64s: not "
                        "supported by mdm-agent", k);
        return;
      }
    }
    req = json_object_get(value, "required");
  }
  else
    req = NULL;
  if(!json_is_boolean(req)) {
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "encryption: expected "
                    "'required' or {required: true|false}");
    return;
  }
  if(json_is_false(req)) {
    mdm_enforce_set(res, MDM_ENFORCE_APPLIED, NULL);
    return;
  }
  enc = json_object_get(json_object_get(ctx->facts, "encryption"),
                        "root_encrypted");
  if(json_is_true(enc))
    mdm_enforce_set(res, MDM_ENFORCE_APPLIED, NULL);
  else if(json_is_false(enc))
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "root filesystem is not "
                    "encrypted; encryption cannot be enabled remotely on "
                    "Linux");
  else
    mdm_enforce_set(res, MDM_ENFORCE_FAILED, "cannot tell whether the root "
                    "filesystem is encrypted; encryption cannot be enabled "
                    "remotely on Linux");
}
