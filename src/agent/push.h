/*
 * push.h: the agent's MQTT session (ARCHITECTURE principle 1: the store is
 * the truth, MQTT only makes it fast; CONTRACT section 5).  After a command
 * or a policy change is committed the server publishes a small wake-up on
 * mdm/<tenant>/<device_id>/cmd; this module keeps one libmosquitto session
 * subscribed (QoS 1) to exactly that topic and turns each message into one
 * byte on a pipe that the run loop polls.  The message is only a signal: its
 * content is never parsed, never executed, and messages over
 * MDM_PUSH_PAYLOAD_MAX bytes are dropped.  The round it triggers fetches
 * everything over HTTPS.
 *
 * The session runs on libmosquitto's own thread (mosquitto_loop_start):
 * keepalive 60 s, a persistent session (clean session off, client id = the
 * device id) so QoS 1 wake-ups queued while the device was briefly away are
 * delivered, and automatic reconnection with a 1 s … 60 s backoff.  Broker
 * trouble is logged once per change of state and never stops the agent,
 * which polls meanwhile.  Each (re)connection after a lost one also
 * signals, since wake-ups published while the broker was down are lost.
 */
#ifndef MDM_AGENT_PUSH_H
#define MDM_AGENT_PUSH_H

#include <stddef.h>
#include "core/rc.h"

#define MDM_PUSH_PAYLOAD_MAX 1024   /* larger messages are ignored */
#define MDM_PUSH_KEEPALIVE_S 60
#define MDM_PUSH_RECONNECT_MIN_S 1
#define MDM_PUSH_RECONNECT_MAX_S 60
#define MDM_PUSH_HOST_MAX 256

struct mdm_push;

struct mdm_push_opts {
  const char *url;         /* mqtt://host[:port] or mqtts://host[:port] */
  const char *topic;       /* subscribed to exactly, QoS 1 */
  const char *client_id;   /* the device id: a stable persistent session */
  const char *username;
  const char *password;    /* secret: never logged */
  const char *ca_file;     /* for mqtts (NULL: the system's CAs) */
};

/* Split url into host (out[n]), port and is_tls.  The port defaults to 1883
 * (mqtt) or 8883 (mqtts); a path, user info or query is refused.  IPv6
 * literals are taken in brackets.  MDM_ERR_INVAL when url is not such a URL,
 * MDM_ERR_TOOBIG when the host does not fit. */
mdm_rc mdm_push_parse_url(const char *url, char *host /* OUT */, size_t n,
                          int *port /* OUT */, int *is_tls /* OUT */);

/* Start the session (it connects in the background; a broker that is down
 * is no error).  The strings of o are copied.  Caller owns *out; free with
 * mdm_push_free().  MDM_ERR_INVAL (with a reason in err[n]) for a bad URL,
 * MDM_ERR_NOMEM / MDM_ERR_IO when libmosquitto cannot start. */
mdm_rc mdm_push_new(const struct mdm_push_opts *o, struct mdm_push **out,
                    char *err, size_t n);

/* The read end of the wake-up pipe: readable when a wake-up came.  For
 * poll() only; read it with mdm_push_drain(). */
int mdm_push_fd(const struct mdm_push *p);

/* Empty the pipe.  Returns the number of wake-ups that were waiting (0 when
 * none).  Called from the loop's thread only. */
unsigned mdm_push_drain(struct mdm_push *p);

/* Disconnect cleanly, stop the session's thread and free p.  NULL is fine. */
void mdm_push_free(struct mdm_push *p);

#endif
