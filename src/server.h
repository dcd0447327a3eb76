/* A small HTTP/1.1 server on the event loop: the listener, requests parsed by http-parser,
   answers whole or chunked (SSE), per-connection write queues with watermarks, limits and
   timeouts. Pure C: what a request means is the caller's business. */
#ifndef KIMICTL_SERVER_H
#define KIMICTL_SERVER_H
#include "buf.h"

#include <stddef.h>

struct server;
struct srv_conn;

#define SRV_PIECES_MAX 8   /* pieces of one srv_writev */

struct server_config {
  const char *host;              /* a numeric address: "127.0.0.1", "::1", "0.0.0.0" */
  int port;                      /* 0: any free port */
  size_t max_header;             /* request line and headers (431 beyond) */
  size_t max_body;               /* 413 beyond */
  long header_timeout_ms;        /* the headers must be in this long after their first byte (408) */
  long idle_timeout_ms;          /* a connection with no request and no byte this long is closed */
  size_t write_high, write_low;  /* srv_write says "wait" above high; on_drain below low */
  /* A complete request: answer it with srv_respond, or srv_start, srv_write..., srv_finish.
     The connection reads nothing more until then. */
  void (*on_request)(struct srv_conn *c, void *ud);
  void (*on_drain)(struct srv_conn *c, void *ud);   /* the write queue fell below write_low */
  /* The connection is going (the client left, an error, srv_abort, the server closed) while
     a request was being answered; c is freed right after. */
  void (*on_close)(struct srv_conn *c, void *ud);
  void *ud;
};

/* The request being answered; the strings live until the answer is finished. */
struct srv_request {
  const char *method;
  const char *target;            /* path and query, as sent */
  const char *headers;           /* "name\0value\0" pairs, names in lower case */
  size_t headers_len;
  const char *body;
  size_t body_len;
  char peer[64];                 /* "127.0.0.1:54321" */
};

/* Listen; 0, or -1 with err set. */
int server_listen(struct server **out, const struct server_config *cfg, char *err, size_t n);
int server_port(const struct server *s);
size_t server_active(const struct server *s);   /* requests being answered */
/* Stop accepting and close idle connections; answers in progress go on, and their
   connections close when they are done. */
void server_stop(struct server *s);
/* Close every connection now, then the server itself (freed once the loop lets go). */
void server_close(struct server *s);

const struct srv_request *srv_request(const struct srv_conn *c);
void srv_set_data(struct srv_conn *c, void *data);   /* the caller's pointer for c */
void *srv_data(const struct srv_conn *c);

/* Answers. headers: "Name: value\r\n" lines (may be NULL). All return 0, or -1 when the
   connection is closing (the answer goes nowhere). srv_write returns 1 when the queue is
   above write_high: stop writing until on_drain. */
int srv_respond(struct srv_conn *c, int status, const char *headers, const char *body, size_t len);
int srv_start(struct srv_conn *c, int status, const char *headers);   /* chunked */
int srv_write(struct srv_conn *c, const char *p, size_t n);
/* The same for count pieces sent as one chunk (no copy made by the caller). */
int srv_writev(struct srv_conn *c, const char *const *p, const size_t *n, int count);
int srv_finish(struct srv_conn *c);
size_t srv_queued(const struct srv_conn *c);
void srv_abort(struct srv_conn *c);   /* close at once */
const char *srv_status_text(int status);

#endif
