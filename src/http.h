/* HTTP/1.1 client over libcurl: one multi handle per process, so connections are reused. */
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
};

/* Receives the answer as it arrives. Any callback may return non-zero to stop. */
struct http_sink {
  int (*on_head)(void *ud, long status, const char *headers, size_t len);  /* "name: value\r\n"... */
  int (*on_data)(void *ud, const char *p, size_t n);
  void *ud;
};

enum http_kind {
  HTTP_OK, HTTP_STOPPED, HTTP_DNS, HTTP_CONNECT, HTTP_TLS, HTTP_TIMEOUT, HTTP_RESET,
  HTTP_PROXY, HTTP_TOO_LARGE, HTTP_FAILED
};

struct http_error {
  enum http_kind kind;
  char message[512];
};

/* Runs one transfer to its end. Returns HTTP_OK, HTTP_STOPPED when a callback stopped it,
   or another kind with err->message saying what failed in a user's words. */
int http_perform(const struct http_request *rq, const struct http_sink *sink,
                 struct http_error *err);
const char *http_kind_name(enum http_kind kind);
void http_cleanup(void);

#endif
