/*
 * sim_mqtt.h: the MQTT side of mdm-sim (issue 4's push benchmark).  One
 * thread holds one MQTT 3.1.1 session per simulated device, each logged in
 * with the device's own broker credentials from its enroll answer (client
 * id = username = device id, persistent session, keepalive 60 s) and
 * subscribed with QoS 1 to its own wake-up topic, as mdm-agent does.  The
 * client is a minimal one over plain non-blocking sockets in one epoll
 * set: libmosquitto spends three descriptors per session (its socket and
 * a socketpair), which caps a process at ~6,600 sessions under this
 * machine's 20,000-descriptor limit.  A wake-up is acknowledged (PUBACK)
 * and only records the device's index; the simulator's HTTP loop takes
 * them (sim_mqtt_take) when the eventfd is readable and fetches the
 * device's commands over HTTP, as the agent does.
 */
#ifndef MDM_SIM_MQTT_H
#define MDM_SIM_MQTT_H

#include <stddef.h>
#include <stdint.h>

struct sim_mqtt;

struct sim_mqtt_dev {
  const char *client_id;   /* the device id: username and client id */
  const char *password;
  const char *topic;
};

struct sim_mqtt_stats {
  uint64_t connected;      /* CONNACKs that accepted */
  uint64_t refused;        /* CONNACKs that refused */
  uint64_t subscribed;     /* SUBACKs that granted QoS 1 */
  uint64_t sub_refused;    /* SUBACKs that refused (0x80) */
  uint64_t messages;       /* wake-ups received */
  uint64_t disconnects;    /* sessions lost after they were up */
};

/* Connect and subscribe all n sessions to host:port, at most `batch`
 * connection attempts outstanding at a time, and return once every
 * session is subscribed (0) or when one could not be within timeout_s
 * (-1, err says why).  *wake_fd: an eventfd that is readable when
 * wake-ups are waiting.  devs must stay valid until sim_mqtt_stop(). */
int sim_mqtt_start(struct sim_mqtt **out, const char *host, int port,
                   const struct sim_mqtt_dev *devs, size_t n, int batch,
                   double timeout_s, int *wake_fd, char *err, size_t errlen);

/* Move up to cap waiting wake-ups (device indices, in arrival order) into
 * out; returns how many.  Clears the eventfd when none are left. */
size_t sim_mqtt_take(struct sim_mqtt *m, uint32_t *out, size_t cap);

void sim_mqtt_get_stats(struct sim_mqtt *m, struct sim_mqtt_stats *st);

/* Disconnect everything, join the thread, free. */
void sim_mqtt_stop(struct sim_mqtt *m);

#endif
