/* Unit tests for the SSE parser: every framing rule, fed whole, byte by byte, and split
   at every point. Prints one "ok"/"not ok" line per case. */
#include "sse.h"

#include <stdio.h>
#include <string.h>

static char got[4096];
static int stop_after = -1, events;

/* Each event is recorded as "type|data|id|retry;" */
static int record(void *ud, const struct sse_event *ev) {
  (void)ud;
  size_t n = strlen(got);
  snprintf(got + n, sizeof got - n, "%.*s|%.*s|%.*s|%ld;", (int)ev->type_len, ev->type,
           (int)ev->data_len, ev->data, (int)ev->id_len, ev->id, ev->retry);
  return ++events == stop_after;
}

/* Feed input in pieces of `step` bytes (0: whole), or split once at `split`. */
static int feed(const char *in, size_t len, size_t step, size_t split, int *rc) {
  struct sse p;
  sse_init(&p);
  got[0] = '\0';
  events = 0;
  *rc = SSE_OK;
  if (split) {
    *rc = sse_feed(&p, in, split, record, NULL);
    if (*rc == SSE_OK) *rc = sse_feed(&p, in + split, len - split, record, NULL);
  } else if (step) {
    for (size_t i = 0; i < len && *rc == SSE_OK; i += step)
      *rc = sse_feed(&p, in + i, len - i < step ? len - i : step, record, NULL);
  } else {
    *rc = sse_feed(&p, in, len, record, NULL);
  }
  sse_free(&p);
  return 0;
}

static int failures, count;

static void expect_len(const char *name, const char *in, size_t len, const char *want) {
  int rc, ok = 1;
  char why[256] = "";
  feed(in, len, 0, 0, &rc);
  if (strcmp(got, want) != 0) ok = 0, snprintf(why, sizeof why, "whole: got %s", got);
  feed(in, len, 1, 0, &rc);
  if (ok && strcmp(got, want) != 0) ok = 0, snprintf(why, sizeof why, "byte by byte: got %s", got);
  for (size_t s = 1; ok && s < len; s++) {
    feed(in, len, 0, s, &rc);
    if (strcmp(got, want) != 0) ok = 0, snprintf(why, sizeof why, "split at %zu: got %s", s, got);
  }
  count++;
  if (!ok) failures++;
  printf("%s - sse: %s%s%s\n", ok ? "ok" : "not ok", name, ok ? "" : "\n#   ", why);
}

#define expect(name, in, want) expect_len(name, in, sizeof(in) - 1, want)

static void check(const char *name, int cond) {
  count++;
  if (!cond) failures++;
  printf("%s - sse: %s\n", cond ? "ok" : "not ok", name);
}

int main(void) {
  expect("one event", "data: hello\n\n", "message|hello||-1;");
  expect("multi-line data joined with LF", "data: a\ndata: b\n\n", "message|a\nb||-1;");
  expect("event type", "event: add\ndata: x\n\n", "add|x||-1;");
  expect("event type resets after dispatch", "event: add\ndata: x\n\ndata: y\n\n", "add|x||-1;message|y||-1;");
  expect("type without data dispatches nothing and resets", "event: foo\n\ndata: x\n\n", "message|x||-1;");
  expect("id persists to later events", "id: 7\ndata: x\n\ndata: y\n\n", "message|x|7|-1;message|y|7|-1;");
  expect("empty id clears it", "id: 7\ndata: x\n\nid\ndata: y\n\n", "message|x|7|-1;message|y||-1;");
  expect_len("id with NUL is ignored", "id: 1\ndata: x\n\nid: a\0b\ndata: y\n\n", 32,
             "message|x|1|-1;message|y|1|-1;");
  expect("retry sets reconnection time", "retry: 1500\ndata: x\n\n", "message|x||1500;");
  expect("huge retry saturates", "retry: 99999999999999999999999\ndata: x\n\n", "message|x||9223372036854775807;");
  expect("retry with non-digits ignored", "retry: 15x\ndata: x\n\n", "message|x||-1;");
  expect("comments ignored", ": ping\n\n:\ndata: y\n\n", "message|y||-1;");
  expect("CR line ends", "data: a\r\rdata: b\r\r", "message|a||-1;message|b||-1;");
  expect("CRLF line ends", "data: a\r\n\r\ndata: b\r\n\r\n", "message|a||-1;message|b||-1;");
  expect("mixed line ends", "data: a\rdata: b\r\ndata: c\n\r\n", "message|a\nb\nc||-1;");
  expect("BOM stripped at start", "\xEF\xBB\xBF" "data: a\n\n", "message|a||-1;");
  expect("BOM only at start", "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", "message|a||-1;");
  expect("no space after colon", "data:x\n\n", "message|x||-1;");
  expect("only one space removed", "data:  x\n\n", "message| x||-1;");
  expect("field without colon", "data\n\n", "message|||-1;");
  expect("empty data line twice", "data\ndata\n\n", "message|\n||-1;");
  expect("unknown fields ignored", "foo: bar\ndata: x\n\n", "message|x||-1;");
  expect("colon in value kept", "data: a: b\n\n", "message|a: b||-1;");
  expect("incomplete event at end is not dispatched", "data: x\n", "");
  expect("blank lines alone do nothing", "\n\n\r\n", "");
  expect("JSON payload", "data: {\"a\":[1,2]}\n\ndata: [DONE]\n\n", "message|{\"a\":[1,2]}||-1;message|[DONE]||-1;");

  int rc;
  stop_after = 1;
  feed("data: a\n\ndata: b\n\n", 18, 0, 0, &rc);
  check("callback can stop the stream", rc == SSE_STOPPED && strcmp(got, "message|a||-1;") == 0);
  stop_after = -1;

  struct sse p;
  sse_init(&p);
  p.max_line = 16;
  rc = sse_feed(&p, "data: 0123456789", 16, record, NULL);
  if (rc == SSE_OK) rc = sse_feed(&p, "abcdef", 6, record, NULL);
  check("over-long line is an error", rc == SSE_TOO_LONG);
  sse_free(&p);

  printf("# sse: %d of %d passed\n", count - failures, count);
  return failures != 0;
}
