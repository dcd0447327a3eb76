/* The growable buffer: it grows by copying into new memory and wiping the old, so no
   stale copy of a secret is left in the heap (realloc would leave one). */
#if defined(__APPLE__)
#define __STDC_WANT_LIB_EXT1__ 1   /* memset_s */
#endif
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void secure_zero(void *p, size_t n) {
  if (!p || n == 0) return;
#if defined(__linux__) || defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__)
  explicit_bzero(p, n);   /* glibc, musl and the BSDs have it */
#elif defined(__APPLE__)
  memset_s(p, n, 0, n);
#else
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
#endif
}

int buf_reserve(struct buf *b, size_t n) {
  size_t limit = b->max ? b->max : SIZE_MAX - 1;
  if (n > limit - b->len) {
    errno = EFBIG;
    return -1;
  }
  if (b->p && b->len + n < b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap <= b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
  char *p = malloc(cap);
  if (!p) {
    errno = ENOMEM;
    return -1;
  }
  if (b->p) memcpy(p, b->p, b->len);
  p[b->len] = '\0';
  if (b->p) secure_zero(b->p, b->cap), free(b->p);
  b->p = p, b->cap = cap;
  return 0;
}

int buf_add(struct buf *b, const void *data, size_t n) {
  if (buf_reserve(b, n) != 0) return -1;
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

void buf_reset(struct buf *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}

void buf_free(struct buf *b) {
  secure_zero(b->p, b->cap);
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
