/*
 * buf.c: bounded growable buffer (see buf.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"

void mdm_buf_init(struct mdm_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  /* "No bound" (SIZE_MAX) is capped so that max + 1 and the doubling in
   * buf_reserve() cannot overflow. */
  b->max = max < SIZE_MAX / 2 ? max : SIZE_MAX / 2;
}

void mdm_buf_release(struct mdm_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void mdm_buf_reset(struct mdm_buf *b)
{
  b->len = 0;
  if(b->data)
    b->data[0] = '\0';
}

static mdm_rc buf_reserve(struct mdm_buf *b, size_t n)
{
  size_t need, ncap;
  char *p;

  if(n > b->max || b->len > b->max - n)
    return MDM_ERR_TOOBIG;
  need = b->len + n + 1;
  if(need <= b->cap)
    return MDM_OK;
  ncap = b->cap ? b->cap : 256;
  while(ncap < need)
    ncap *= 2;
  if(ncap > b->max + 1)
    ncap = b->max + 1;
  p = realloc(b->data, ncap);
  if(!p)
    return MDM_ERR_NOMEM;
  b->data = p;
  b->cap = ncap;
  return MDM_OK;
}

mdm_rc mdm_buf_append(struct mdm_buf *b, const void *p, size_t n)
{
  mdm_rc rc = buf_reserve(b, n);
  if(rc)
    return rc;
  if(n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return MDM_OK;
}

mdm_rc mdm_buf_puts(struct mdm_buf *b, const char *s)
{
  return mdm_buf_append(b, s, strlen(s));
}

mdm_rc mdm_buf_vprintf(struct mdm_buf *b, const char *fmt, va_list ap)
{
  va_list cp;
  int n;
  mdm_rc rc;

  va_copy(cp, ap);
  n = vsnprintf(NULL, 0, fmt, cp);
  va_end(cp);
  if(n < 0)
    return MDM_ERR_INVAL;
  rc = buf_reserve(b, (size_t)n);
  if(rc)
    return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return MDM_OK;
}

mdm_rc mdm_buf_printf(struct mdm_buf *b, const char *fmt, ...)
{
  va_list ap;
  mdm_rc rc;
  va_start(ap, fmt);
  rc = mdm_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

char *mdm_buf_steal(struct mdm_buf *b)
{
  char *p = b->data;
  if(!p)
    p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
