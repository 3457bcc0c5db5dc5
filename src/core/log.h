/*
 * log.h: process-wide structured logging to stderr, as text lines or as JSON
 * lines (`--log-format json`).  Thread-safe: each record is one write().
 * Never log secrets: tokens, keys and passwords stay out of every message.
 */
#ifndef MDM_LOG_H
#define MDM_LOG_H

enum mdm_log_level { MDM_LOG_DEBUG, MDM_LOG_INFO, MDM_LOG_WARN, MDM_LOG_ERROR };

/* Configure once at start-up (not thread-safe). json: 1 for JSON lines. */
void mdm_log_setup(const char *prog, int json, enum mdm_log_level min);
/* Log a message; "msg" is formatted printf-style. */
void mdm_log(enum mdm_log_level lvl, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

#define mdm_debug(...) mdm_log(MDM_LOG_DEBUG, __VA_ARGS__)
#define mdm_info(...)  mdm_log(MDM_LOG_INFO, __VA_ARGS__)
#define mdm_warn(...)  mdm_log(MDM_LOG_WARN, __VA_ARGS__)
#define mdm_error(...) mdm_log(MDM_LOG_ERROR, __VA_ARGS__)

#endif
