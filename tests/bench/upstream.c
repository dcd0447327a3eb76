/* A fast fake OpenAI-compatible upstream for benchmarks: keep-alive, SSE paced by a timer each. */
#include "http_parser.h"
#include "uv.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BACKLOG 4096     /* the kernel caps it at net.core.somaxconn */
#define RETRY_MS 100     /* out of descriptors: stop accepting this long */
#define KEY_MAX 16       /* longer than the longest stream key */

static const char usage[] = "usage: upstream [--port N] [--tokens N] [--interval-ms M]\n";
static const char completion[] =
  "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":"
  "{\"role\":\"assistant\",\"content\":\"OK\"},\"finish_reason\":\"stop\"}],"
  "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}";
static const char models[] =
  "{\"object\":\"list\",\"data\":[{\"id\":\"m\",\"object\":\"model\",\"created\":0,\"owned_by\":\"upstream\"}]}";
static const char not_found[] = "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\"}}";
static const char bad_request[] = "{\"error\":{\"message\":\"bad request\",\"type\":\"invalid_request_error\"}}";
static const char event[] =
  "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n";
static const char last_event[] =
  "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},"
  "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%ld,"
  "\"total_tokens\":%ld}}\n\n";
static const char done_event[] = "data: [DONE]\n\n";
/* A substring check, as a benchmark needs: compact JSON and json.dumps' default. */
static const char *const stream_keys[] = { "\"stream\":true", "\"stream\": true" };

static long port, tokens = 20, interval_ms;
static uv_loop_t loop;
static uv_tcp_t listener;
static uv_timer_t retry;
static uv_signal_t sigint_watch, sigterm_watch;
static struct sockaddr_in bound;
static int stopping;

struct buf {
  char *p;
  size_t len, cap;
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;         /* paces this connection's stream */
  http_parser parser;
  int handles;              /* open handles; the last close frees the connection */
  int keep_alive, closing;  /* closing: the last answer is queued, input is ignored */
  int streaming, wants_stream, url_long;
  long sent;                /* events of the current stream written so far */
  char url[256], tail[KEY_MAX];
  size_t url_len, tail_len;
};

struct out {
  uv_write_t req;
  char *data;
  int close_after;
};

/* --- one growable buffer; every function returns 0 when out of memory */
static int buf_reserve(struct buf *b, size_t n) {
  size_t cap = b->cap ? b->cap : 512;
  char *p;
  while (cap - b->len <= n) cap *= 2;
  if (cap == b->cap) return 1;
  if (!(p = realloc(b->p, cap))) return 0;
  b->p = p, b->cap = cap;
  return 1;
}

static int buf_add(struct buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return 0;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 1;
}

static int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n)) return 0;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 1;
}

/* One HTTP chunk holding s. */
static int buf_chunk(struct buf *b, const char *s, size_t n) {
  return buf_printf(b, "%zx\r\n", n) && buf_add(b, s, n) && buf_add(b, "\r\n", 2);
}

/* --- connections */
static void on_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles == 0) free(c);
}

static void conn_close(struct conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  struct out *o = (struct out *)req;
  if (status < 0 || o->close_after) conn_close(req->handle->data);
  free(o->data);
  free(o);
}

/* Queue b's bytes, which the write owns from here; if building them failed (!ok), close c. */
static void conn_send(struct conn *c, struct buf *b, int ok, int close_after) {
  struct out *o = ok ? malloc(sizeof *o) : NULL;
  if (o) {
    uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->len);
    o->data = b->p, o->close_after = close_after;
    if (uv_write(&o->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written) == 0) {
      c->closing |= close_after;
      return;
    }
    free(o);
  }
  free(b->p);
  conn_close(c);
}

static void respond(struct conn *c, const char *status, const char *body) {
  struct buf b = { 0 };
  int ok = buf_printf(&b, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: %s\r\n\r\n%s", status, strlen(body),
                      c->keep_alive ? "keep-alive" : "close", body);
  conn_send(c, &b, ok, !c->keep_alive);
}

/* Append up to n more events of c's stream to b, and its end once all are out, then send. */
static void stream_write(struct conn *c, struct buf *b, int ok, long n) {
  for (; ok && n > 0 && c->sent < tokens; n--, c->sent++) ok = buf_chunk(b, event, sizeof event - 1);
  if (c->sent < tokens) {
    conn_send(c, b, ok, 0);
    return;
  }
  char last[sizeof last_event + 40];
  int len = snprintf(last, sizeof last, last_event, tokens, tokens + 5);
  ok = ok && len > 0 && (size_t)len < sizeof last && buf_chunk(b, last, (size_t)len) &&
       buf_chunk(b, done_event, sizeof done_event - 1) && buf_add(b, "0\r\n\r\n", 5) &&
       uv_timer_stop(&c->timer) == 0;
  c->streaming = 0;
  conn_send(c, b, ok, !c->keep_alive);
}

static void on_tick(uv_timer_t *t) {
  struct buf b = { 0 };
  stream_write(t->data, &b, 1, 1);
}

static void stream_start(struct conn *c) {
  struct buf b = { 0 };
  int ok = buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: %s\r\n\r\n",
                      c->keep_alive ? "keep-alive" : "close");
  c->streaming = 1, c->sent = 0;
  if (interval_ms == 0) {
    stream_write(c, &b, ok, tokens);
    return;
  }
  ok = ok && uv_timer_start(&c->timer, on_tick, (uint64_t)interval_ms, (uint64_t)interval_ms) == 0;
  conn_send(c, &b, ok, 0);
}

/* --- requests */
static int path_is(const struct conn *c, const char *path) {
  size_t n = strcspn(c->url, "?");
  return !c->url_long && n == strlen(path) && memcmp(c->url, path, n) == 0;
}

static int has_key(const char *s, size_t n) {
  for (size_t k = 0; k < sizeof stream_keys / sizeof *stream_keys; k++) {
    size_t kn = strlen(stream_keys[k]);
    for (size_t i = 0; i + kn <= n; i++)
      if (memcmp(s + i, stream_keys[k], kn) == 0) return 1;
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  struct conn *c = p->data;
  c->url_len = c->tail_len = 0;
  c->url_long = c->wants_stream = 0;
  c->url[0] = '\0';
  return c->streaming;   /* a request behind a running stream (pipelining) is not supported */
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  if (n >= sizeof c->url - c->url_len) c->url_long = 1;
  if (c->url_long) return 0;
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  c->url[c->url_len] = '\0';
  return 0;
}

/* The body is not kept: a key may straddle two pieces, so the tail of the last one is. */
static int on_body(http_parser *p, const char *at, size_t n) {
  struct conn *c = p->data;
  char win[2 * KEY_MAX];
  size_t head = n < KEY_MAX ? n : KEY_MAX, wlen = c->tail_len + head;
  memcpy(win, c->tail, c->tail_len);
  memcpy(win + c->tail_len, at, head);
  c->wants_stream |= has_key(win, wlen) || has_key(at, n);
  const char *end = n > head ? at + n : win + wlen;
  size_t avail = n > head ? n : wlen;
  c->tail_len = avail < KEY_MAX - 1 ? avail : KEY_MAX - 1;
  memmove(c->tail, end - c->tail_len, c->tail_len);
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct conn *c = p->data;
  c->keep_alive = http_should_keep_alive(p);
  if (p->method == HTTP_POST && path_is(c, "/v1/chat/completions")) {
    if (c->wants_stream) stream_start(c);
    else respond(c, "200 OK", completion);
  } else if (p->method == HTTP_GET && path_is(c, "/v1/models")) {
    respond(c, "200 OK", models);
  } else {
    respond(c, "404 Not Found", not_found);
  }
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin, .on_url = on_url, .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* One buffer serves every read: each is parsed before the next is allocated. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char mem[65536];
  (void)h, (void)hint;
  *buf = uv_buf_init(mem, sizeof mem);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (n < 0) {
    conn_close(c);   /* end of input or an error: either way the client is gone */
    return;
  }
  if (n == 0 || c->closing) return;   /* nothing to read now, or the queued answer closes */
  if (http_parser_execute(&c->parser, &settings, buf->base, (size_t)n) == (size_t)n || c->closing)
    return;
  if (c->streaming) {
    conn_close(c);
  } else {
    c->keep_alive = 0;
    respond(c, "400 Bad Request", bad_request);
  }
}

/* A connection with both handles open, or NULL. */
static struct conn *conn_new(void) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (uv_timer_init(&loop, &c->timer) < 0) {
    free(c);
    return NULL;
  }
  c->timer.data = c, c->handles = 1;
  if (uv_tcp_init(&loop, &c->tcp) < 0) {
    uv_close((uv_handle_t *)&c->timer, on_closed);
    return NULL;
  }
  c->tcp.data = c, c->handles = 2;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  return c;
}

/* --- the listener */
static void on_listener_closed(uv_handle_t *h);
static void on_connection(uv_stream_t *l, int status);

static int listen_start(void) {
  int len = sizeof bound, rc = uv_tcp_init(&loop, &listener);
  if (rc < 0) return rc;
  if ((rc = uv_tcp_bind(&listener, (struct sockaddr *)&bound, 0)) == 0 &&
      (rc = uv_listen((uv_stream_t *)&listener, BACKLOG, on_connection)) == 0)
    rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);   /* retries reuse the port */
  if (rc < 0) uv_close((uv_handle_t *)&listener, on_listener_closed);
  return rc;
}

static void on_retry(uv_timer_t *t) {
  (void)t;
  int rc = listen_start();
  if (rc < 0) fprintf(stderr, "upstream: listen again: %s\n", uv_strerror(rc));
}

static void on_listener_closed(uv_handle_t *h) {
  (void)h;
  if (!stopping && uv_timer_start(&retry, on_retry, RETRY_MS, 0) < 0) {
    fprintf(stderr, "upstream: cannot schedule listening again; stopping\n");
    uv_stop(&loop);
  }
}

/* libuv already drops what it cannot accept; if that fails too, the socket stays readable, so
   close it and listen again shortly instead of spinning. */
static void pause_accepting(int err) {
  fprintf(stderr, "upstream: accept: %s; not accepting for %d ms\n", uv_strerror(err), RETRY_MS);
  if (!uv_is_closing((uv_handle_t *)&listener)) uv_close((uv_handle_t *)&listener, on_listener_closed);
}

static void on_connection(uv_stream_t *l, int status) {
  struct conn *c = status < 0 ? NULL : conn_new();
  if (!c) {
    pause_accepting(status < 0 ? status : UV_ENOMEM);
    return;
  }
  if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0 || uv_tcp_nodelay(&c->tcp, 1) < 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
    conn_close(c);
}

/* --- start and stop */
static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (h->data) conn_close(h->data);
  else if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  stopping = 1;
  uv_walk(s->loop, close_walk, NULL);
}

/* Many streams need many descriptors: take the whole hard limit, and say when it is small. */
static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
    perror("upstream: getrlimit");
    return;
  }
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) perror("upstream: setrlimit");
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) r.rlim_cur = 0;
  }
  if (r.rlim_cur < 4096)
    fprintf(stderr, "upstream: only %lu descriptors (ulimit -Hn): fewer concurrent streams\n",
            (unsigned long)r.rlim_cur);
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i += 2) {
    long *into = strcmp(argv[i], "--port") == 0 ? &port
               : strcmp(argv[i], "--tokens") == 0 ? &tokens
               : strcmp(argv[i], "--interval-ms") == 0 ? &interval_ms : NULL;
    char *end;
    if (!into || i + 1 >= argc) return 0;
    *into = strtol(argv[i + 1], &end, 10);
    if (end == argv[i + 1] || *end || *into < 0 || *into > 1000000) return 0;
  }
  return port <= 65535;
}

static int watch_signal(uv_signal_t *s, int signum) {
  int rc = uv_signal_init(&loop, s);
  return rc < 0 ? rc : uv_signal_start(s, on_signal, signum);
}

int main(int argc, char **argv) {
  if (!parse_args(argc, argv)) return fputs(usage, stderr), 2;
  raise_nofile();
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return perror("upstream: signal"), 1;
  int rc = uv_loop_init(&loop);
  if (rc == 0) rc = uv_ip4_addr("127.0.0.1", (int)port, &bound);
  if (rc == 0) rc = uv_timer_init(&loop, &retry);
  if (rc == 0) rc = watch_signal(&sigint_watch, SIGINT);
  if (rc == 0) rc = watch_signal(&sigterm_watch, SIGTERM);
  if (rc == 0) rc = listen_start();
  if (rc < 0) {
    fprintf(stderr, "upstream: cannot listen on 127.0.0.1:%ld: %s\n", port, uv_strerror(rc));
    return 1;
  }
  if (printf("%d\n", ntohs(bound.sin_port)) < 0 || fflush(stdout) != 0)
    return perror("upstream: stdout"), 1;
  rc = uv_run(&loop, UV_RUN_DEFAULT);
  if (rc == 0) rc = uv_loop_close(&loop);
  if (rc != 0) fprintf(stderr, "upstream: handles left open at exit\n");
  if (fclose(stdout) != 0) return perror("upstream: stdout"), 1;
  return rc != 0;
}
