/* libFuzzer target: the SSE parser. The input is fed whole, then again in pieces whose sizes
   come from its first bytes; both must give the same events (or the same error), and every
   event must lie within what was fed. */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seen { struct buf all; size_t events; };

static int on_event(void *ud, const struct sse_event *ev) {
  struct seen *s = ud;
  size_t n[3] = { ev->type_len, ev->data_len, ev->id_len };
  const char *p[3] = { ev->type, ev->data, ev->id };
  for (int i = 0; i < 3; i++)
    if (buf_add(&s->all, p[i] ? p[i] : "", n[i]) != 0 || buf_add(&s->all, "\0", 1) != 0) abort();
  s->events++;
  return 0;
}

static int run(const unsigned char *data, size_t size, size_t step, struct seen *s) {
  struct sse p;
  int rc = SSE_OK;
  sse_init(&p);
  p.max_line = 1024;   /* small, so the too-long path is reached */
  for (size_t at = 0; at < size && rc == SSE_OK; at += step) {
    size_t n = size - at < step ? size - at : step;
    rc = sse_feed(&p, (const char *)data + at, n, on_event, s);
  }
  sse_free(&p);
  return rc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  struct seen whole = { { 0 }, 0 }, pieces = { { 0 }, 0 };
  size_t step = size ? 1 + data[0] % 7 : 1;
  int a = run(data, size, size ? size : 1, &whole);
  int b = run(data, size, step, &pieces);
  /* A line too long is found at its end when fed whole, and earlier in pieces: the events
     before it are the same, so compare those only when both finished. */
  if ((a == SSE_OK && b == SSE_OK &&
       (whole.events != pieces.events || whole.all.len != pieces.all.len ||
        (whole.all.len && memcmp(whole.all.p, pieces.all.p, whole.all.len) != 0))) ||
      (a == SSE_OK) != (b == SSE_OK)) {
    fprintf(stderr, "fuzz_sse: whole: %s, %zu events; in pieces of %zu: %s, %zu events\n",
            sse_strerror(a), whole.events, step, sse_strerror(b), pieces.events);
    abort();
  }
  buf_free(&whole.all), buf_free(&pieces.all);
  return 0;
}
