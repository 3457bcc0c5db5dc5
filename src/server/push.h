/*
 * push.h: the MQTT wake-up publisher (CONTRACT §5).  When mdmd runs with
 * --mqtt, one libmosquitto client connected as mdmd's broker admin
 * publishes a small wake-up on mdm/<tenant>/<device_id>/cmd after a
 * command is committed.  Devices log in to the broker with a password
 * derived from their id and the broker secret (crypto/mqttcred.h), which
 * the broker's mdm auth plugin (deploy/mosquitto/) also holds; retirement
 * revokes the id there.  The store stays the truth (ARCHITECTURE
 * principle 1): every function here is best effort, never blocks a request
 * on a publish, and a lost wake-up only means the device learns of the
 * command at its next poll.
 */
#ifndef MDM_PUSH_H
#define MDM_PUSH_H

#include "core/rc.h"
#include "store/store.h"

struct mdm_push;

struct mdm_push_config {
  const char *url;            /* mqtt://HOST:PORT */
  const char *admin_user;     /* the user mdmd connects as */
  const char *admin_password; /* the broker secret, >= 16 characters;
                                 borrowed, copied */
  int rate;                   /* wake-ups per second, at least 1 */
};

/* Start the publisher: parse cfg->url, connect in the background (with
 * automatic reconnection) and start the throttled wake-up queue.  st is
 * borrowed and must outlive the publisher (bulk wake-ups name commands
 * that are resolved to devices there).  Caller owns *out; free with
 * mdm_push_free().  MDM_ERR_INVAL: a URL that is not mqtt://HOST:PORT. */
mdm_rc mdm_push_new(const struct mdm_push_config *cfg, struct mdm_store *st,
                    struct mdm_push **out /* OUT */);
/* Stop the threads, disconnect and free.  NULL is fine. */
void mdm_push_free(struct mdm_push *p);

/* Queue a wake-up for device_id of tenant.  Never blocks: when the queue is
 * full, or the broker is down when its turn comes, the wake-up is dropped
 * (and counted).  p may be NULL (no broker): does nothing.  Thread-safe. */
void mdm_push_wake(struct mdm_push *p, const char *tenant,
                   const char *device_id);
/* The same for the device of command command_id (bulk commands). */
void mdm_push_wake_command(struct mdm_push *p, const char *tenant,
                           const char *command_id);

/* Queue a "policy" wake-up for every active device of tenant (after a
 * policy change was committed): the devices are listed page by page as the
 * queue drains, at the same throttled rate.  p may be NULL.  Thread-safe. */
void mdm_push_wake_tenant(struct mdm_push *p, const char *tenant);

/* The broker credentials of a newly enrolled device: username device_id,
 * the password derived from it (the broker's plugin lets it subscribe to
 * mdm/<tenant>/<device_id>/cmd and nothing else).  No broker round trip:
 * works while the broker is down.  On MDM_OK *mqtt is the enroll answer's
 * object {url, topic, username, password} (caller owns it); the password
 * is not stored anywhere.  Thread-safe. */
mdm_rc mdm_push_device_add(struct mdm_push *p, const char *tenant,
                           const char *device_id, json_t **mqtt /* OUT */);
/* Revoke device_id on the broker (the plugin records it durably and
 * disconnects the device).  Queued and resent on every reconnection until
 * the plugin confirms, so a device retired while the broker is down is
 * refused once it is back.  p may be NULL.  Thread-safe. */
void mdm_push_device_remove(struct mdm_push *p, const char *device_id);

#endif
