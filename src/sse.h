/* Server-sent events parser following the WHATWG rules; pure C, no Lua. */
#ifndef KIMICTL_SSE_H
#define KIMICTL_SSE_H
#include "buf.h"

#include <stddef.h>

struct sse_event {
  const char *type;  size_t type_len;   /* "message" unless an event: field said otherwise */
  const char *data;  size_t data_len;   /* data: lines joined by "\n", no final "\n" */
  const char *id;    size_t id_len;     /* the last event id seen on this stream */
  long retry;                           /* reconnection time in ms, -1 if never given */
};

/* Called for each complete event; return 0 to go on, anything else to stop. */
typedef int (*sse_fn)(void *ud, const struct sse_event *ev);

struct sse {
  struct buf line, data, type, id;
  long retry;
  int started;     /* past the optional byte order mark */
  int after_cr;    /* the last byte fed was CR: a following LF ends nothing */
  size_t max_line; /* a longer line is an error (default 16 MiB) */
};

enum { SSE_OK = 0, SSE_STOPPED = 1, SSE_NOMEM = -1, SSE_TOO_LONG = -2 };

void sse_init(struct sse *p);
/* Feed any slice of the stream; events are dispatched as they complete.
   Returns SSE_OK, SSE_STOPPED if fn asked to stop, or a negative error. */
int sse_feed(struct sse *p, const char *buf, size_t len, sse_fn fn, void *ud);
void sse_free(struct sse *p);   /* wipes what it held; harmless twice */
const char *sse_strerror(int rc);

#endif
