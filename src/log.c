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

/* Names whose values are secrets, wherever they appear: headers, JSON (snake or camel
   case, escaped or not), forms, URLs. Header-like ones run to the end of the line. */
static const struct { const char *name; int to_eol; } secret_keys[] = {
  { "proxy-authorization", 1 }, { "authorization", 1 }, { "set-cookie", 1 }, { "cookie", 1 },
  { "api-key", 0 }, { "api_key", 0 }, { "apikey", 0 }, { "access_token", 0 }, { "accesstoken", 0 },
  { "refresh_token", 0 }, { "refreshtoken", 0 }, { "id_token", 0 }, { "idtoken", 0 },
  { "device_code", 0 }, { "devicecode", 0 }, { "client_secret", 0 }, { "clientsecret", 0 },
  { "password", 0 }, { "secret", 0 }, { "token", 0 }, { "bearer ", 0 }, { NULL, 0 }
};

static int match_key(const char *s, size_t n, size_t i, int *to_eol) {
  for (int k = 0; secret_keys[k].name; k++) {
    size_t kl = strlen(secret_keys[k].name);
    if (i + kl <= n && strncasecmp(s + i, secret_keys[k].name, kl) == 0) {
      *to_eol = secret_keys[k].to_eol;
      return (int)kl;
    }
  }
  return 0;
}

/* A key starts after a non-alphanumeric byte, or where camelCase starts a word. */
static int key_boundary(const char *s, size_t i) {
  if (i == 0 || !isalnum((unsigned char)s[i - 1])) return 1;
  return islower((unsigned char)s[i - 1]) && isupper((unsigned char)s[i]);
}

static int is_value_end(char c, int quoted, int to_eol) {
  if (c == '\r' || c == '\n' || c == '\0') return 1;
  if (quoted || to_eol) return c == '"' || c == '\\';
  return c == '"' || c == '\'' || c == ',' || c == ';' || c == '&' || c == '}' ||
         c == ' ' || c == '\t' || c == '\\';
}

/* After a key: separators (quotes, escapes, ':' or '='), then for a header an auth scheme
   word ("Bearer ", "Token "), then the value. *quoted says a quote opened the value. */
static size_t value_start(const char *s, size_t n, size_t i, int need_sep, int to_eol, int *quoted) {
  int seps = 0;
  *quoted = 0;
  while (i < n && strchr("\"'\\ :=", s[i])) {
    if (s[i] == ':' || s[i] == '=') seps++, *quoted = 0;
    else if (s[i] == '"' || s[i] == '\'') *quoted = 1;
    i++;
  }
  if (need_sep && !seps) return n;
  size_t w = i;
  while (to_eol && w < n && isalpha((unsigned char)s[w])) w++;
  if (w > i && w < n && s[w] == ' ') i = w + 1;
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
    int to_eol = 0, quoted = 0;
    size_t kl = key_boundary(s, i) ? (size_t)match_key(s, n, i, &to_eol) : 0;
    if (kl) {
      int is_bearer = s[i + kl - 1] == ' ';
      size_t v = value_start(s, n, i + kl, !is_bearer, to_eol, &quoted);
      size_t e = v;
      while (e < n && !is_value_end(s[e], quoted, to_eol)) e++;
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
