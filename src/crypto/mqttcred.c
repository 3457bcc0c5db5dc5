/*
 * mqttcred.c: derived MQTT device passwords (mqttcred.h).
 */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "crypto/mqttcred.h"

#define LABEL "mdm-mqtt-device/v1:"

int mdm_mqtt_device_password(const unsigned char *key, size_t key_len,
                             const char *device_id, char *out,
                             size_t out_len)
{
  static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char msg[sizeof(LABEL) + 64], mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  size_t id_len, i, o = 0;

  if(!key || !key_len || !device_id || !out ||
     out_len < MDM_MQTT_PASSWORD_LEN + 1)
    return -1;
  id_len = strlen(device_id);
  if(!id_len || id_len > 64)
    return -1;
  memcpy(msg, LABEL, sizeof(LABEL) - 1);
  memcpy(msg + sizeof(LABEL) - 1, device_id, id_len);
  if(!HMAC(EVP_sha256(), key, (int)key_len, msg, sizeof(LABEL) - 1 + id_len,
           mac, &mac_len) || mac_len != 32)
    return -1;
  /* 32 bytes: ten groups of three, then two bytes (three characters). */
  for(i = 0; i + 3 <= 30; i += 3) {
    unsigned v = (unsigned)mac[i] << 16 | (unsigned)mac[i + 1] << 8 |
                 mac[i + 2];
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = b64[v >> 6 & 63];
    out[o++] = b64[v & 63];
  }
  {
    unsigned v = (unsigned)mac[30] << 16 | (unsigned)mac[31] << 8;
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = b64[v >> 6 & 63];
  }
  out[o] = '\0';
  OPENSSL_cleanse(mac, sizeof(mac));
  return 0;
}

int mdm_mqtt_secret_equal(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  /* Compare equal lengths only; the length of a password is not secret. */
  return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}
