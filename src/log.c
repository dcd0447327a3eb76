/* Leveled logging: KIMICTL_LOG=error|warn|info|debug; every line passes through log_redact. */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level(void) {
  static int level = -1;
  if (level < 0) {
    const char *env = getenv("KIMICTL_LOG");
    level = LOG_WARN;
    for (int i = 0; env && i <= LOG_DEBUG; i++)
      if (strcasecmp(env, level_names[i]) == 0) level = i;
  }
  return level;
}

/* Names whose values are secrets, wherever they appear: headers, JSON, forms, URLs. */
static const char *const secret_keys[] = {
  "authorization", "api-key", "api_key", "apikey", "access_token", "refresh_token",
  "id_token", "device_code", "password", "secret", "token", "bearer ", NULL
};

static size_t match_key(const char *s, size_t n, size_t i) {
  for (int k = 0; secret_keys[k]; k++) {
    size_t kl = strlen(secret_keys[k]);
    if (i + kl <= n && strncasecmp(s + i, secret_keys[k], kl) == 0) return kl;
  }
  return 0;
}

static int is_value_end(char c) {
  return c == '"' || c == '\'' || c == ',' || c == ';' || c == '&' || c == '}' ||
         c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '\0';
}

/* After a key: separators, then (for Authorization) a scheme word, then the value. */
static size_t value_start(const char *s, size_t n, size_t i, int need_sep) {
  int seps = 0;
  while (i < n && (s[i] == '"' || s[i] == '\'' || s[i] == ' ' || s[i] == ':' || s[i] == '=')) {
    if (s[i] == ':' || s[i] == '=') seps++;
    i++;
  }
  if (need_sep && !seps) return n;
  size_t w = i;
  while (w < n && isalpha((unsigned char)s[w])) w++;
  if (w > i && w < n && s[w] == ' ' &&
      (strncasecmp(s + i, "bearer", 6) == 0 || strncasecmp(s + i, "basic", 5) == 0))
    i = w + 1;
  return i;
}

char *log_redact(const char *s, size_t n, size_t *out_len) {
  static const char mark[] = "[redacted]";
  /* Each redaction eats a key (>= 5 bytes) and a value (>= 1) and writes at most
     9 bytes more than it ate, so 3n is always room enough. */
  char *out = malloc(n * 3 + sizeof mark);
  size_t o = 0, i = 0;
  if (!out) return NULL;
  while (i < n) {
    size_t kl = (i == 0 || !isalnum((unsigned char)s[i - 1])) ? match_key(s, n, i) : 0;
    if (kl) {
      int is_bearer = s[i + kl - 1] == ' ';
      size_t v = value_start(s, n, i + kl, !is_bearer);
      size_t e = v;
      while (e < n && !is_value_end(s[e])) e++;
      if (v < n && e > v) {
        memcpy(out + o, s + i, v - i), o += v - i;
        memcpy(out + o, mark, sizeof mark - 1), o += sizeof mark - 1;
        i = e;
        continue;
      }
    }
    out[o++] = s[i++];
  }
  out[o] = '\0';
  if (out_len) *out_len = o;
  return out;
}

void log_write(int level, const char *msg, size_t len) {
  if (level > log_level()) return;
  size_t n;
  char *clean = log_redact(msg, len, &n);
  if (!clean) return;
  while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == '\r')) n--;
  fprintf(stderr, "kimictl: %s: %.*s\n", level_names[level], (int)n, clean);
  free(clean);
}

void log_msg(int level, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  if (level > log_level()) return;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  log_write(level, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}
