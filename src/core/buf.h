/*
 * buf.h: a growable byte buffer with a hard maximum.  Every buffer that
 * outside input can grow is an mdm_buf with a bound; appending past the bound
 * fails with MDM_ERR_TOOBIG and leaves the buffer as it was.
 */
#ifndef MDM_BUF_H
#define MDM_BUF_H

#include <stddef.h>
#include <stdarg.h>
#include "core/rc.h"

struct mdm_buf {
  char *data;     /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
  size_t max;     /* the bound on len */
};

void mdm_buf_init(struct mdm_buf *b, size_t max);
void mdm_buf_release(struct mdm_buf *b);
void mdm_buf_reset(struct mdm_buf *b);
mdm_rc mdm_buf_append(struct mdm_buf *b, const void *p, size_t n);
mdm_rc mdm_buf_puts(struct mdm_buf *b, const char *s);
mdm_rc mdm_buf_printf(struct mdm_buf *b, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
mdm_rc mdm_buf_vprintf(struct mdm_buf *b, const char *fmt, va_list ap);
/* Hand the data to the caller (free() it); the buffer is empty afterwards.
 * Returns an empty string rather than NULL for an empty buffer. */
char *mdm_buf_steal(struct mdm_buf *b);

#endif
