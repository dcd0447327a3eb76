/* Leveled logging to stderr with secrets redacted; pure C, no Lua. */
#ifndef KIMICTL_LOG_H
#define KIMICTL_LOG_H
#include "buf.h"

#include <stddef.h>

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

int log_level(void);                          /* from KIMICTL_LOG, read once */
const char *log_level_name(int level);        /* "error", "warn", "info" or "debug" */
void log_write(int level, const char *msg, size_t len);
void log_msg(int level, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* Append s to out with secret values replaced by "[redacted]": header values after secret
   header names, Bearer and Basic credentials, and the values of secret-named JSON fields and
   name=value pairs. Ordinary words, such as "token" in a URL or a sentence, stay.
   0, or -1 with errno (ENOMEM). */
int log_redact(const char *s, size_t len, struct buf *out);

#endif
