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

const char *log_level_name(int level) {
  return level_names[level];
}

/* Field names whose values are secrets, in JSON ("name": "value") and in forms and URLs
   (name=value); compared whole and case-insensitively, so apiKey is api_key's twin. */
static const char *const secret_names[] = {
  "access_token", "accesstoken", "refresh_token", "refreshtoken", "id_token", "idtoken",
  "device_code", "devicecode", "client_secret", "clientsecret", "api_key", "apikey", "api-key",
  "x-api-key", "password", "secret", "token", "authorization", "proxy-authorization",
  "cookie", "set-cookie", NULL
};

/* Headers whose values are secrets, where the name starts a line (or follows curl's "> "). */
static const char *const secret_headers[] = {
  "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", NULL
};

static int in_list(const char *const list[], const char *s, size_t n) {
  for (int k = 0; list[k]; k++)
    if (strlen(list[k]) == n && strncasecmp(s, list[k], n) == 0) return 1;
  return 0;
}

static int is_name_char(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static size_t skip_blanks(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

static size_t name_end(const char *s, size_t n, size_t i) {
  while (i < n && is_name_char(s[i])) i++;
  return i;
}

/* Each rule looks at s[i]: when a secret value starts there, it returns the value's end
   and sets *v to its start; otherwise 0. */

/* "Authorization: Bearer abc" at the start of a line, or after curl's "> " or "< ".
   The scheme word stays, so the log still says which kind of credential went out. */
static size_t header_value(const char *s, size_t n, size_t i, size_t *v) {
  if (i > 0 && s[i - 1] != '\n' && s[i - 1] != '\r') return 0;
  if (n - i > 2 && (s[i] == '>' || s[i] == '<') && s[i + 1] == ' ') i += 2;
  size_t k = name_end(s, n, i);
  if (!in_list(secret_headers, s + i, k - i)) return 0;
  int auth = k - i >= 13 && strncasecmp(s + k - 13, "authorization", 13) == 0;
  k = skip_blanks(s, n, k);
  if (k == n || s[k] != ':') return 0;
  k = skip_blanks(s, n, k + 1);
  size_t w = k;
  while (auth && w < n && isalpha((unsigned char)s[w])) w++;
  if (w > k && w < n && s[w] == ' ') k = skip_blanks(s, n, w);
  size_t e = k;
  while (e < n && s[e] != '\r' && s[e] != '\n') e++;
  *v = k;
  return e > k ? e : 0;
}

/* "Bearer abc" or "Basic abc" anywhere. */
static size_t scheme_value(const char *s, size_t n, size_t i, size_t *v) {
  static const char *const schemes[] = { "Bearer ", "Basic ", NULL };
  if (i > 0 && isalnum((unsigned char)s[i - 1])) return 0;
  for (int k = 0; schemes[k]; k++) {
    size_t len = strlen(schemes[k]);
    if (n - i < len || strncmp(s + i, schemes[k], len) != 0) continue;
    size_t b = skip_blanks(s, n, i + len), e = b;
    while (e < n && !strchr(" \t\r\n\"'\\,;", s[e])) e++;
    *v = b;
    return e > b ? e : 0;
  }
  return 0;
}

/* A quote at s[i]: 1 for " or ', 2 for \" (JSON inside a JSON string); 0 for none. */
static size_t quote_at(const char *s, size_t n, size_t i, char *qc) {
  if (i < n && (s[i] == '"' || s[i] == '\'')) return *qc = s[i], 1;
  if (n - i >= 2 && s[i] == '\\' && s[i + 1] == '"') return *qc = '"', 2;
  return 0;
}

static int is_quote(const char *s, size_t n, size_t i, size_t q, char qc) {
  char c;
  return quote_at(s, n, i, &c) == q && c == qc;
}

/* "name": "value", 'name': 'value' or \"name\":\"value\" with a secret name. A value cut
   short (a truncated log line) is redacted to its end. */
static size_t json_value(const char *s, size_t n, size_t i, size_t *v) {
  char qc;
  size_t q = quote_at(s, n, i, &qc);
  if (!q) return 0;
  size_t k = name_end(s, n, i + q);
  if (!in_list(secret_names, s + i + q, k - i - q) || !is_quote(s, n, k, q, qc)) return 0;
  k = skip_blanks(s, n, k + q);
  if (k == n || s[k] != ':') return 0;
  k = skip_blanks(s, n, k + 1);
  if (!is_quote(s, n, k, q, qc)) return 0;
  size_t e = k += q;
  while (e < n && s[e] != '\n' && !is_quote(s, n, e, q, qc))
    e += q == 1 && s[e] == '\\' && e + 1 < n ? 2 : 1;   /* an escaped quote is inside */
  *v = k;
  return e > k ? e : 0;
}

/* name=value with a secret name, in a form body or a URL query. */
static size_t form_value(const char *s, size_t n, size_t i, size_t *v) {
  if (i > 0 && (is_name_char(s[i - 1]) || s[i - 1] == '.')) return 0;
  size_t k = name_end(s, n, i);
  if (k == n || s[k] != '=' || !in_list(secret_names, s + i, k - i)) return 0;
  size_t e = ++k;
  while (e < n && !strchr("&;,# \t\r\n\"'\\}", s[e])) e++;
  *v = k;
  return e > k ? e : 0;
}

int log_redact(const char *s, size_t n, struct buf *out) {
  static const char mark[] = "[redacted]";
  static size_t (*const rules[])(const char *, size_t, size_t, size_t *) = {
    header_value, scheme_value, json_value, form_value
  };
  size_t i = 0, copied = 0;   /* s[copied..i) is still to be copied */
  int rc = 0;
  while (i < n) {
    size_t v = 0, e = 0;
    for (size_t r = 0; !e && r < sizeof rules / sizeof *rules; r++) e = rules[r](s, n, i, &v);
    if (!e) {
      i++;
      continue;
    }
    rc |= buf_add(out, s + copied, v - copied);
    rc |= buf_add(out, mark, sizeof mark - 1);
    i = copied = e;
  }
  rc |= buf_add(out, s + copied, n - copied);
  return rc ? -1 : 0;
}

void log_write(int level, const char *msg, size_t len) {
  if (level > log_level()) return;
  struct buf clean = { 0 };
  if (log_redact(msg, len, &clean) == 0) {
    size_t n = clean.len;
    while (n > 0 && (clean.p[n - 1] == '\n' || clean.p[n - 1] == '\r')) n--;
    fprintf(stderr, "kimictl: %s: %.*s\n", level_names[level], (int)n, clean.p);
  }
  buf_free(&clean);
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
  secure_zero(buf, sizeof buf);   /* curl's header lines pass through here */
}
