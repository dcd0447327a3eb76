/* The HTTP/1.1 server: libuv for the sockets, http-parser for the requests. One request per
   connection at a time (later pipelined bytes wait), answers queued with watermarks, and
   every limit answered with its status before the connection closes. */
#include "server.h"
#include "loop.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct server {
  uv_tcp_t tcp;
  struct server_config cfg;
  int port, stopped, listener_closed, unwanted;
  size_t active;
  struct srv_conn *conns;
};

struct srv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct server *s;
  struct srv_conn *prev, *next;
  http_parser parser;
  struct buf url, hdrs, body, stash;   /* stash: bytes after the request, for the next one */
  struct buf held;                     /* a chunked answer's head, sent with its first chunk */
  struct srv_request req;
  size_t head_bytes, queued;
  int answering, chunked, keep_alive, closing, lingering, in_value, headers_done, reject;
  int over_high, handles;
  void *data;
};

struct write_req {
  uv_write_t w;
  struct srv_conn *c;
  size_t len;
  char bytes[];
};

static http_parser_settings settings;
static char read_buf[64 * 1024];   /* each read is parsed or copied before the next */

/* --- closing */

static void conn_closed(uv_handle_t *h) {
  struct srv_conn *c = h->data;
  if (--c->handles > 0) return;
  buf_free(&c->url), buf_free(&c->hdrs), buf_free(&c->body), buf_free(&c->stash), buf_free(&c->held);
  free(c);
}

static void end_answer(struct srv_conn *c) {
  if (!c->answering) return;
  c->answering = 0;
  c->s->active--;
}

/* Close now. The owner of an answer in progress hears of it first. */
static void conn_close(struct srv_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->answering && c->s->cfg.on_close) c->s->cfg.on_close(c, c->s->cfg.ud);
  end_answer(c);
  if (c->prev) c->prev->next = c->next;
  else c->s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
  uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_linger_end(uv_timer_t *t) { conn_close(t->data); }

static void on_shutdown(uv_shutdown_t *rq, int status) {
  (void)status;
  free(rq);
}

/* After a refusal: send what is queued and FIN, read and drop what the client still sends
   (so that our answer is not lost to a reset), and close at EOF or after 2 s. */
static void linger(struct srv_conn *c) {
  uv_shutdown_t *rq = malloc(sizeof *rq);
  c->lingering = 1;
  if (!rq || uv_shutdown(rq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(rq);
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_linger_end, 2000, 0);
}

/* --- writing */

static void on_written(uv_write_t *w, int status) {
  struct write_req *rq = (struct write_req *)w;
  struct srv_conn *c = rq->c;
  c->queued -= rq->len;
  free(rq);
  if (c->closing) return;
  if (status < 0) {   /* the client went away */
    conn_close(c);
    return;
  }
  if (c->over_high && c->queued <= c->s->cfg.write_low) {
    c->over_high = 0;
    if (c->answering && c->s->cfg.on_drain) c->s->cfg.on_drain(c, c->s->cfg.ud);
  }
}

static uv_buf_t piece(const char *p, size_t n) { return uv_buf_init((char *)p, (unsigned)n); }

/* Queue a copy of the pieces as one write (one syscall, one segment for a small answer),
   after a head held back by srv_start. */
static int sendv(struct srv_conn *c, const uv_buf_t *pieces, int n) {
  if (c->closing || c->lingering) return -1;
  size_t len = c->held.len;
  for (int i = 0; i < n; i++) len += pieces[i].len;
  struct write_req *rq = malloc(sizeof *rq + len);
  if (!rq) {
    conn_close(c);
    return -1;
  }
  if (c->held.len) memcpy(rq->bytes, c->held.p, c->held.len);
  for (size_t at = c->held.len, i = 0; i < (size_t)n; at += pieces[i].len, i++)
    if (pieces[i].len) memcpy(rq->bytes + at, pieces[i].base, pieces[i].len);
  buf_free(&c->held);
  rq->c = c;
  rq->len = len;
  uv_buf_t ub = uv_buf_init(rq->bytes, (unsigned)len);
  if (uv_write(&rq->w, (uv_stream_t *)&c->tcp, &ub, 1, on_written) != 0) {
    free(rq);
    conn_close(c);
    return -1;
  }
  c->queued += len;
  return 0;
}

static int send1(struct srv_conn *c, const char *p, size_t n) {
  uv_buf_t one = piece(p, n);
  return sendv(c, &one, 1);
}

const char *srv_status_text(int status) {
  switch (status) {
  case 200: return "OK";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

/* Numbers and status lines are written by hand: snprintf costs more than the rest of a
   chunk's framing, and a stream writes one chunk per event. */
static size_t put_num(char *out, size_t v, unsigned base) {
  char digits[24];
  size_t n = 0;
  do digits[n++] = "0123456789abcdef"[v % base]; while ((v /= base) > 0);
  for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
  return n;
}

static size_t put_str(char *out, const char *s) {
  size_t n = strlen(s);
  memcpy(out, s, n);
  return n;
}

/* "HTTP/1.1 200 OK\r\n" at out (room for 64 bytes); its length. */
static size_t status_line(char *out, int status) {
  size_t n = put_str(out, "HTTP/1.1 ");
  n += put_num(out + n, status > 0 && status < 1000 ? (size_t)status : 500, 10);
  out[n++] = ' ';
  n += put_str(out + n, srv_status_text(status));
  return n + put_str(out + n, "\r\n");
}

/* A whole answer: the status line, Content-Length, the headers and the body, in one write. */
static int send_whole(struct srv_conn *c, int status, const char *headers, const char *body, size_t len) {
  char head[128];
  size_t n = status_line(head, status);
  n += put_str(head + n, "Content-Length: ");
  n += put_num(head + n, len, 10);
  n += put_str(head + n, "\r\n");
  const char *conn = c->keep_alive && !c->s->stopped ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  uv_buf_t pieces[] = { piece(head, n), piece(headers ? headers : "", headers ? strlen(headers) : 0),
                        piece(conn, strlen(conn)), piece(body, len) };
  return sendv(c, pieces, 4);
}

static void next_request(struct srv_conn *c);

/* The answer is complete: the connection waits for the next request, or closes. */
static void answered(struct srv_conn *c) {
  end_answer(c);
  if (!c->keep_alive || c->s->stopped) linger(c);
  else next_request(c);
}

int srv_respond(struct srv_conn *c, int status, const char *headers, const char *body, size_t len) {
  if (send_whole(c, status, headers, body, len) != 0) return -1;
  answered(c);
  return 0;
}

/* The head of a chunked answer waits for the first chunk: one write, and the client wakes
   once, for the first event of a stream. */
int srv_start(struct srv_conn *c, int status, const char *headers) {
  char head[128];
  if (c->closing || c->lingering) return -1;
  c->chunked = 1;
  size_t n = status_line(head, status);
  n += put_str(head + n, "Transfer-Encoding: chunked\r\n");
  n += put_str(head + n, c->keep_alive && !c->s->stopped ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  if (buf_add(&c->held, head, n) != 0 || (headers && buf_add(&c->held, headers, strlen(headers)) != 0) ||
      buf_add(&c->held, "\r\n", 2) != 0) {
    conn_close(c);
    return -1;
  }
  return 0;
}

int srv_writev(struct srv_conn *c, const char *const *p, const size_t *n, int count) {
  uv_buf_t pieces[SRV_PIECES_MAX + 2];
  char size[24];
  size_t len = 0;
  if (count < 1 || count > SRV_PIECES_MAX) return -1;
  for (int i = 0; i < count; i++) len += n[i], pieces[i + 1] = piece(p[i], n[i]);
  if (len == 0) return c->over_high;   /* an empty chunk would end the answer */
  size_t sn = put_num(size, len, 16);
  pieces[0] = piece(size, sn + put_str(size + sn, "\r\n"));
  pieces[count + 1] = piece("\r\n", 2);
  if (sendv(c, pieces, count + 2) != 0) return -1;
  if (c->queued > c->s->cfg.write_high) c->over_high = 1;
  return c->over_high;
}

int srv_write(struct srv_conn *c, const char *p, size_t n) { return srv_writev(c, &p, &n, 1); }

int srv_finish(struct srv_conn *c) {
  if (send1(c, "0\r\n\r\n", 5) != 0) return -1;
  answered(c);
  return 0;
}

size_t srv_queued(const struct srv_conn *c) { return c->queued; }
void srv_abort(struct srv_conn *c) { conn_close(c); }
const struct srv_request *srv_request(const struct srv_conn *c) { return &c->req; }
void srv_set_data(struct srv_conn *c, void *data) { c->data = data; }
void *srv_data(const struct srv_conn *c) { return c->data; }

/* A refusal of our own, in the OpenAI error shape, then the connection closes. */
static void refuse(struct srv_conn *c, int status, const char *fmt, ...) {
  char msg[256], body[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int n = snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\"}}", msg);
  c->keep_alive = 0;
  send_whole(c, status, "Content-Type: application/json\r\n", body, (size_t)n);
  linger(c);
}

/* --- reading */

static void on_timer(uv_timer_t *t) {
  struct srv_conn *c = t->data;
  if (c->head_bytes && !c->headers_done) refuse(c, 408, "the request headers did not arrive within %ld ms", c->s->cfg.header_timeout_ms);
  else conn_close(c);   /* idle, or a body that stopped coming */
}

static int on_message_begin(http_parser *p) {
  struct srv_conn *c = p->data;
  buf_reset(&c->url), buf_reset(&c->hdrs), buf_reset(&c->body);
  c->head_bytes = 1;   /* counting from here: the header timeout runs */
  c->headers_done = c->in_value = 0;
  uv_timer_start(&c->timer, on_timer, (uint64_t)c->s->cfg.header_timeout_ms, 0);
  return 0;
}

/* Header bytes count against max_header; over it, the parser is paused and 431 follows. */
static int head_piece(struct srv_conn *c, struct buf *b, const char *at, size_t n, int lower) {
  if ((c->head_bytes += n) > c->s->cfg.max_header) {
    c->reject = 431;
    http_parser_pause(&c->parser, 1);
    return 0;
  }
  size_t at_len = b->len;
  if (buf_add(b, at, n) != 0) return -1;
  if (lower)
    for (size_t i = at_len; i < b->len; i++)
      if (b->p[i] >= 'A' && b->p[i] <= 'Z') b->p[i] = (char)(b->p[i] + 32);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct srv_conn *c = p->data;
  return head_piece(c, &c->url, at, n, 0);
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  struct srv_conn *c = p->data;
  if (c->in_value && buf_add(&c->hdrs, "", 1) != 0) return -1;   /* the value before ends */
  c->in_value = 0;
  return head_piece(c, &c->hdrs, at, n, 1);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  struct srv_conn *c = p->data;
  if (!c->in_value && buf_add(&c->hdrs, "", 1) != 0) return -1;  /* the name before ends */
  c->in_value = 1;
  return head_piece(c, &c->hdrs, at, n, 0);
}

static const char *header(struct srv_conn *c, const char *name) {
  if (!c->hdrs.p) return NULL;   /* no header at all */
  for (const char *p = c->hdrs.p, *end = p + c->hdrs.len; p < end;) {
    const char *v = p + strlen(p) + 1;
    if (v >= end) break;
    if (strcmp(p, name) == 0) return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

static int on_headers_complete(http_parser *p) {
  struct srv_conn *c = p->data;
  if (c->in_value && buf_add(&c->hdrs, "", 1) != 0) return -1;
  c->headers_done = 1;
  c->keep_alive = http_should_keep_alive(p);
  if (p->content_length != ULLONG_MAX && p->content_length > c->s->cfg.max_body) {
    c->reject = 413;
    http_parser_pause(p, 1);
    return 0;
  }
  const char *expect = header(c, "expect");
  if (expect && strcasecmp(expect, "100-continue") == 0)
    send1(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  uv_timer_start(&c->timer, on_timer, (uint64_t)c->s->cfg.idle_timeout_ms, 0);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct srv_conn *c = p->data;
  if (c->body.len + n > c->s->cfg.max_body) {
    c->reject = 413;
    http_parser_pause(p, 1);
    return 0;
  }
  return buf_add(&c->body, at, n);
}

/* The request is complete: pause the parser (what follows waits) and hand it on. */
static int on_message_complete(http_parser *p) {
  struct srv_conn *c = p->data;
  uv_timer_stop(&c->timer);
  http_parser_pause(p, 1);
  c->req.method = http_method_str((enum http_method)p->method);
  c->req.target = c->url.p ? c->url.p : "";
  c->req.headers = c->hdrs.p ? c->hdrs.p : "";
  c->req.headers_len = c->hdrs.len;
  c->req.body = c->body.p ? c->body.p : "";
  c->req.body_len = c->body.len;
  c->answering = 1;
  c->chunked = 0;
  c->head_bytes = 0;
  c->s->active++;
  return 0;
}

/* Parse n bytes; what follows a complete request is kept for the next one. */
static void feed(struct srv_conn *c, const char *p, size_t n) {
  size_t used = http_parser_execute(&c->parser, &settings, p, n);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->reject == 431) refuse(c, 431, "the request line and headers are larger than %zu bytes", c->s->cfg.max_header);
  else if (c->reject == 413) refuse(c, 413, "the request body is larger than %zu bytes (kimictl serve --max-body)", c->s->cfg.max_body);
  else if (e != HPE_OK && e != HPE_PAUSED) refuse(c, 400, "malformed HTTP request: %s", http_errno_description(e));
  else if (c->parser.upgrade) refuse(c, 400, "protocol upgrades are not supported");
  else if (c->answering) {
    if (used < n && buf_add(&c->stash, p + used, n - used) != 0) conn_close(c);
    else c->s->cfg.on_request(c, c->s->cfg.ud);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h, (void)hint;
  *b = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct srv_conn *c = st->data;
  if (n < 0) {   /* EOF or an error: the client is gone (HTTP/1.1 clients do not half-close) */
    conn_close(c);
    return;
  }
  if (n == 0 || c->lingering) return;
  if (c->answering) {   /* pipelined: kept for when this answer is done; past max_header, no more is read till then */
    if (buf_add(&c->stash, b->base, (size_t)n) != 0) conn_close(c);
    else if (c->stash.len > c->s->cfg.max_header) uv_read_stop(st);
    return;
  }
  if (c->headers_done) uv_timer_start(&c->timer, on_timer, (uint64_t)c->s->cfg.idle_timeout_ms, 0);
  feed(c, b->base, (size_t)n);
}

/* Ready for the next request on this connection: bytes already here are parsed first (on
   the next turn, not inside the answer's caller). */
static void on_stash(uv_timer_t *t) {
  struct srv_conn *c = t->data;
  struct buf held = c->stash;
  memset(&c->stash, 0, sizeof c->stash);
  uv_timer_start(&c->timer, on_timer, (uint64_t)c->s->cfg.idle_timeout_ms, 0);
  feed(c, held.p, held.len);
  buf_free(&held);
  if (!c->closing && !c->answering) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void next_request(struct srv_conn *c) {
  http_parser_pause(&c->parser, 0);
  c->reject = 0;
  if (c->stash.len) uv_timer_start(&c->timer, on_stash, 0, 0);
  else {
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->s->cfg.idle_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
}

/* --- the listener */

/* The listener's handle lives in the record: it is freed once both are done with it. */
static void listener_closed(uv_handle_t *h) {
  struct server *s = h->data;
  s->listener_closed = 1;
  if (s->unwanted) free(s);
}


static void peer_name(struct srv_conn *c) {
  struct sockaddr_storage sa;
  int len = sizeof sa;
  char ip[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
  }
  snprintf(c->req.peer, sizeof c->req.peer, "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *ls, int status) {
  struct server *s = ls->data;
  struct srv_conn *c = status == 0 ? calloc(1, sizeof *c) : NULL;
  if (!c) return;
  uv_tcp_init(ls->loop, &c->tcp);       /* cannot fail: both only fill the handle in */
  uv_timer_init(ls->loop, &c->timer);
  c->handles = 2;
  c->tcp.data = c->timer.data = c;
  c->s = s;
  if ((c->next = s->conns)) c->next->prev = c;
  s->conns = c;
  /* nodelay fails only on a socket the client has already reset */
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || uv_tcp_nodelay(&c->tcp, 1) != 0) {
    conn_close(c);
    return;
  }
  peer_name(c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  next_request(c);
}

int server_listen(struct server **out, const struct server_config *cfg, char *err, size_t n) {
  const char *why = NULL;
  uv_loop_t *loop = loop_get(&why);
  struct sockaddr_storage sa;
  struct server *s;
  int rc;
  if (!loop) return snprintf(err, n, "cannot start the event loop: %s", why), -1;
  if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&sa) != 0 &&
      uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&sa) != 0)
    return snprintf(err, n, "%s is not an IP address (use 127.0.0.1 or ::1)", cfg->host), -1;
  if (!(s = calloc(1, sizeof *s))) return snprintf(err, n, "out of memory"), -1;
  s->cfg = *cfg;
  uv_tcp_init(loop, &s->tcp);   /* cannot fail: it only fills the handle in */
  s->tcp.data = s;
  int len = sizeof sa;
  if ((rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection)) != 0 ||
      (rc = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len)) != 0) {
    int v6 = strchr(cfg->host, ':') != NULL;
    snprintf(err, n, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "", cfg->host, v6 ? "]" : "", cfg->port, uv_strerror(rc));
    s->stopped = s->unwanted = 1;
    uv_close((uv_handle_t *)&s->tcp, listener_closed);
    return -1;
  }
  s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                           : ((struct sockaddr_in *)&sa)->sin_port);
  http_parser_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  *out = s;
  return 0;
}

int server_port(const struct server *s) { return s->port; }
size_t server_active(const struct server *s) { return s->active; }

void server_stop(struct server *s) {
  if (s->stopped) return;
  s->stopped = 1;
  uv_close((uv_handle_t *)&s->tcp, listener_closed);
  for (struct srv_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (!c->answering) conn_close(c);
  }
}

void server_close(struct server *s) {
  server_stop(s);
  while (s->conns) conn_close(s->conns);
  s->unwanted = 1;
  if (s->listener_closed) free(s);
}
