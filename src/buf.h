/* The one growable byte buffer, and secure_zero: whatever passed through a buffer (tokens,
   headers, answers) is wiped before its memory goes back to malloc. Pure C. */
#ifndef KIMICTL_BUF_H
#define KIMICTL_BUF_H
#include <stddef.h>

/* Zero-initialised, it is empty and unlimited. p[len] is always '\0' once p is set. */
struct buf {
  char *p;
  size_t len, cap;
  size_t max;        /* the most bytes it may hold; 0 = no limit */
};

/* Both return 0, or -1 with errno ENOMEM, or EFBIG when max would be passed. */
int buf_add(struct buf *b, const void *data, size_t n);
int buf_reserve(struct buf *b, size_t n);   /* room for n more bytes (and the '\0') */
void buf_reset(struct buf *b);              /* empty; keeps the memory and max */
void buf_free(struct buf *b);               /* wipes all of it, frees, keeps max; again is harmless */

/* Zero memory in a way the compiler may not drop as a dead store. */
void secure_zero(void *p, size_t n);

#endif
