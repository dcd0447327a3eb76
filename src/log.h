/* Leveled logging to stderr with secrets redacted; pure C, no Lua. */
#ifndef KIMICTL_LOG_H
#define KIMICTL_LOG_H
#include <stddef.h>

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

int log_level(void);                          /* from KIMICTL_LOG, read once */
void log_write(int level, const char *msg, size_t len);
void log_msg(int level, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* A malloc'd, NUL-terminated copy of s with secret values replaced by "[redacted]". */
char *log_redact(const char *s, size_t len, size_t *out_len);

#endif
