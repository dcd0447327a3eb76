/* Server-sent events parser: https://html.spec.whatwg.org/#event-stream-interpretation */
#include "sse.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int add(struct buf *b, const char *s, size_t n) {
  return buf_add(b, s, n) == 0 ? SSE_OK : SSE_NOMEM;
}

static int set(struct buf *b, const char *s, size_t n) {
  buf_reset(b);
  return add(b, s, n);
}

void sse_init(struct sse *p) {
  memset(p, 0, sizeof *p);
  p->retry = -1;
  p->max_line = 16u << 20;
}

void sse_free(struct sse *p) {
  buf_free(&p->line);
  buf_free(&p->data);
  buf_free(&p->type);
  buf_free(&p->id);
  sse_init(p);
}

const char *sse_strerror(int rc) {
  switch (rc) {
  case SSE_OK: return "ok";
  case SSE_STOPPED: return "stopped";
  case SSE_NOMEM: return "out of memory";
  case SSE_TOO_LONG: return "event stream line too long";
  }
  return "unknown event stream error";
}

/* A blank line: dispatch the pending event, if it has any data. */
static int dispatch(struct sse *p, sse_fn fn, void *ud) {
  int rc = SSE_OK;
  if (p->data.len > 0) {
    struct sse_event ev;
    ev.type = p->type.len ? p->type.p : "message";
    ev.type_len = p->type.len ? p->type.len : 7;
    ev.data = p->data.p;
    ev.data_len = p->data.len - 1;   /* drop the last "\n" */
    ev.id = p->id.p ? p->id.p : "";
    ev.id_len = p->id.len;
    ev.retry = p->retry;
    if (fn(ud, &ev) != 0) rc = SSE_STOPPED;
  }
  buf_reset(&p->data);
  buf_reset(&p->type);
  return rc;
}

static int all_digits(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

static int field(struct sse *p, const char *line, size_t n) {
  const char *colon = memchr(line, ':', n);
  size_t name_len = colon ? (size_t)(colon - line) : n;
  const char *value = colon ? colon + 1 : line + n;
  size_t value_len = n - (size_t)(value - line);
  if (value_len > 0 && value[0] == ' ') value++, value_len--;

  if (name_len == 4 && memcmp(line, "data", 4) == 0) {
    if (p->data.len + value_len > p->max_line) return SSE_TOO_LONG;
    int rc = add(&p->data, value, value_len);
    return rc ? rc : add(&p->data, "\n", 1);
  }
  if (name_len == 5 && memcmp(line, "event", 5) == 0)
    return set(&p->type, value, value_len);
  if (name_len == 2 && memcmp(line, "id", 2) == 0) {
    if (memchr(value, '\0', value_len)) return SSE_OK;
    return set(&p->id, value, value_len);
  }
  if (name_len == 5 && memcmp(line, "retry", 5) == 0 && all_digits(value, value_len)) {
    long v = 0;
    for (size_t i = 0; i < value_len; i++)   /* saturate rather than wrap */
      v = v > (LONG_MAX - 9) / 10 ? LONG_MAX : v * 10 + (value[i] - '0');
    p->retry = v;
  }
  return SSE_OK;   /* other fields are ignored */
}

static int end_line(struct sse *p, const char *line, size_t n, sse_fn fn, void *ud) {
  if (n == 0) return dispatch(p, fn, ud);
  if (line[0] == ':') return SSE_OK;   /* comment */
  return field(p, line, n);
}

int sse_feed(struct sse *p, const char *buf, size_t len, sse_fn fn, void *ud) {
  size_t i = 0;
  if (!p->started) {
    /* Strip one UTF-8 byte order mark, even when it arrives split across feeds. */
    static const char bom[] = "\xEF\xBB\xBF";
    while (i < len && p->line.len < 3 && (unsigned char)buf[i] == (unsigned char)bom[p->line.len]) {
      int rc = add(&p->line, buf + i, 1);
      if (rc) return rc;
      i++;
    }
    if (p->line.len == 3) buf_reset(&p->line), p->started = 1;
    else if (i < len) p->started = 1;   /* a partial BOM stays as line text */
    else return SSE_OK;
  }
  while (i < len) {
    char c = buf[i];
    if (c == '\n' && p->after_cr) {    /* the LF of a CRLF */
      p->after_cr = 0;
      i++;
      continue;
    }
    p->after_cr = 0;
    /* Find the end of this line within the buffer. */
    size_t j = i;
    while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
    if (j == len) {                     /* no end yet: keep the piece */
      if (p->line.len + (j - i) > p->max_line) return SSE_TOO_LONG;
      return add(&p->line, buf + i, j - i);
    }
    int rc;
    /* The limit holds however the stream was cut: a long line read at once is as long. */
    if (p->line.len + (j - i) > p->max_line) return SSE_TOO_LONG;
    if (p->line.len) {                  /* the line began in an earlier feed */
      if ((rc = add(&p->line, buf + i, j - i))) return rc;
      rc = end_line(p, p->line.p, p->line.len, fn, ud);   /* it never touches p->line */
      buf_reset(&p->line);
    } else {
      rc = end_line(p, buf + i, j - i, fn, ud);
    }
    if (rc) return rc;
    p->after_cr = buf[j] == '\r';
    i = j + 1;
  }
  return SSE_OK;
}
