/* HTTP/1.1 client over libcurl on the event loop: one multi handle per process, so
   connections are reused and any number of transfers run at once. */
#ifndef KIMICTL_HTTP_H
#define KIMICTL_HTTP_H
#include <stddef.h>

struct http_request {
  const char *method;              /* "GET", "POST", ... */
  const char *url;
  const char *const *headers;      /* "Name: value" lines, NULL-terminated */
  const char *body;                /* may be NULL */
  size_t body_len;
  long timeout_ms;                 /* whole transfer; 0 = none */
  long connect_timeout_ms;         /* 0 = libcurl's default */
  long idle_timeout_ms;            /* no byte received for this long; 0 = none */
  int idle_by_line;                /* an event stream: only a line's end counts as activity, so
                                      bytes dripping in without ending a line do not hold it open */
  long read_buffer;                /* bytes of libcurl's receive buffer; 0 = its default (16 KiB) */
};

enum http_kind {
  HTTP_OK, HTTP_STOPPED, HTTP_DNS, HTTP_CONNECT, HTTP_TLS, HTTP_TIMEOUT, HTTP_RESET,
  HTTP_PROXY, HTTP_TOO_LARGE, HTTP_FAILED
};

struct http_error {
  enum http_kind kind;
  char message[512];
};

/* Receives the answer as it arrives. on_head and on_data run inside libcurl: they may
   store and signal, never start or cancel a transfer. */
struct http_sink {
  /* "name: value\r\n" lines of the final response; non-zero stops the transfer */
  int (*on_head)(void *ud, long status, const char *headers, size_t len);
  /* 0: taken; HTTP_PAUSE: not taken, pause receiving until http_resume; else stop */
  int (*on_data)(void *ud, const char *p, size_t n);
  /* the end, once (never after http_cancel): err->kind is HTTP_OK, HTTP_STOPPED when a
     callback stopped it, or another kind with err->message in a user's words */
  void (*on_done)(void *ud, const struct http_error *err);
  void *ud;
};

#define HTTP_PAUSE 2

struct http_transfer;

/* Start a transfer on the loop. rq->body must live until the transfer ends; the rest is
   copied. NULL with err set when it cannot start. */
struct http_transfer *http_start(const struct http_request *rq, const struct http_sink *sink,
                                 struct http_error *err);
/* Stop a transfer at once; its sink hears nothing more. */
void http_cancel(struct http_transfer *x);
/* Receive again after on_data answered HTTP_PAUSE (the held bytes come first). */
void http_resume(struct http_transfer *x);
const char *http_kind_name(enum http_kind kind);
void http_cleanup(void);

#endif
