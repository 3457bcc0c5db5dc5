/*
 * mqttcred.h: a device's MQTT broker password, derived rather than stored.
 *
 * password = base64url(HMAC-SHA256(key, "mdm-mqtt-device/v1:" || device_id))
 * without padding (43 characters), where key is the broker secret shared by
 * mdmd (--mqtt-admin-password-file) and the broker's mdm auth plugin
 * (deploy/mosquitto/).  Enrollment therefore needs no round trip to the
 * broker and the broker keeps no per-device state except the revoked ids.
 * This file is compiled into libmdm and into the mosquitto plugin, so it
 * depends on OpenSSL only.
 */
#ifndef MDM_CRYPTO_MQTTCRED_H
#define MDM_CRYPTO_MQTTCRED_H

#include <stddef.h>

#define MDM_MQTT_PASSWORD_LEN 43

/* Write the NUL-terminated password of device_id into out (at least
 * MDM_MQTT_PASSWORD_LEN + 1 bytes).  Returns 0, or -1 on a bad argument or
 * an OpenSSL failure. */
int mdm_mqtt_device_password(const unsigned char *key, size_t key_len,
                             const char *device_id, char *out,
                             size_t out_len);

/* 1 when a and b (NUL-terminated) are equal, in time that does not depend
 * on where they differ. */
int mdm_mqtt_secret_equal(const char *a, const char *b);

#endif
