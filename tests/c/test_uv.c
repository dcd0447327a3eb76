/* Unit test for the vendored libuv and http-parser under static musl: a timer starts a client
   that sends a chunked HTTP/1.1 request to a loopback listener in the same loop. */
#include "http_parser.h"
#include "uv.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEADLINE_MS 5000   /* the whole exchange takes about a millisecond */
#define START_MS 20

static const char request[] =
  "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\n"
  "Transfer-Encoding: chunked\r\n\r\n7\r\nhello, \r\n7\r\nchunked\r\n6\r\n world\r\n0\r\n\r\n";
static const char response[] =
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/* A text that parser callbacks may deliver in pieces. */
struct text {
  char s[64];
  size_t len;
};

static void text_add(struct text *t, const char *at, size_t n) {
  if (n > sizeof t->s - 1 - t->len) n = sizeof t->s - 1 - t->len;
  memcpy(t->s + t->len, at, n);
  t->len += n;
  t->s[t->len] = '\0';
}

static uv_loop_t loop;
static uv_tcp_t listener, server, client;
static uv_timer_t start_timer, deadline;
static uv_connect_t connect_req;
static uv_write_t request_req, response_req;
static http_parser req_parser, res_parser;
static struct sockaddr_in addr;
static struct text url, name, x_test, req_body, res_body;
static int uv_errors, in_value, req_done, res_done, accepted, connected, timed_out;
static uint64_t started_at, waited_ms;

static int failures;

static void check(const char *what, int ok) {
  if (!ok) failures++;
  printf("%s - uv: %s\n", ok ? "ok" : "not ok", what);
}

/* Every libuv call goes through here: a failure is named, counted and reported by one check. */
static int uv_ok(const char *what, int rc) {
  if (rc < 0) {
    uv_errors++;
    printf("# %s: %s\n", what, uv_strerror(rc));
  }
  return rc >= 0;
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  close_handle(h);
}

/* One static buffer serves every read: each is consumed before the next is allocated. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char mem[65536];
  (void)h, (void)hint;
  *buf = uv_buf_init(mem, sizeof mem);
}

static int on_url(http_parser *p, const char *at, size_t n) {
  (void)p;
  text_add(&url, at, n);
  return 0;
}

/* A header's name and value may each come in several pieces; a new name starts after a value. */
static int on_header_field(http_parser *p, const char *at, size_t n) {
  (void)p;
  if (in_value) name.len = 0, in_value = 0;
  text_add(&name, at, n);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  (void)p;
  in_value = 1;
  if (strcasecmp(name.s, "X-Test") == 0) text_add(&x_test, at, n);
  return 0;
}

/* A message's body and end, for either side: parser->data is its struct message. */
struct message { struct text *body; int *done; };

static int on_msg_body(http_parser *p, const char *at, size_t n) {
  text_add(((struct message *)p->data)->body, at, n);
  return 0;
}

static int on_msg_done(http_parser *p) {
  *((struct message *)p->data)->done = 1;
  return 0;
}

static struct message req_msg = { &req_body, &req_done }, res_msg = { &res_body, &res_done };

static const http_parser_settings req_settings = {
  .on_url = on_url, .on_header_field = on_header_field, .on_header_value = on_header_value,
  .on_body = on_msg_body, .on_message_complete = on_msg_done,
};
static const http_parser_settings res_settings = {
  .on_body = on_msg_body, .on_message_complete = on_msg_done,
};

static void on_response_written(uv_write_t *req, int status) {
  uv_ok("write response", status);
  close_handle((uv_handle_t *)req->handle);
}

/* The server feeds its parser one byte at a time, so every callback must reassemble pieces. */
static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  for (ssize_t i = 0; i < n && !req_done; i++) {
    if (http_parser_execute(&req_parser, &req_settings, buf->base + i, 1) != 1) {
      printf("# request: %s\n", http_errno_description(HTTP_PARSER_ERRNO(&req_parser)));
      close_handle((uv_handle_t *)s);
      return;
    }
  }
  if (req_done) {
    uv_buf_t out = uv_buf_init((char *)response, sizeof response - 1);
    if (!uv_ok("read stop", uv_read_stop(s)) ||
        !uv_ok("write response", uv_write(&response_req, s, &out, 1, on_response_written)))
      close_handle((uv_handle_t *)s);
  } else if (n < 0) {
    uv_ok("server read", (int)n);
    close_handle((uv_handle_t *)s);
  }
}

static void on_connection(uv_stream_t *l, int status) {
  accepted = uv_ok("connection", status) && uv_ok("tcp init", uv_tcp_init(&loop, &server)) &&
             uv_ok("accept", uv_accept(l, (uv_stream_t *)&server));
  close_handle((uv_handle_t *)l);   /* one connection is all this test takes */
  http_parser_init(&req_parser, HTTP_REQUEST);
  req_parser.data = &req_msg;
  if (accepted && !uv_ok("read start", uv_read_start((uv_stream_t *)&server, on_alloc, on_server_read)))
    close_handle((uv_handle_t *)&server);
}

/* The client reads until the server closes; a zero-length execute tells the parser about EOF. */
static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n > 0) {
    if (http_parser_execute(&res_parser, &res_settings, buf->base, (size_t)n) != (size_t)n)
      close_handle((uv_handle_t *)s);
  } else if (n < 0) {
    if (n != UV_EOF) uv_ok("client read", (int)n);
    http_parser_execute(&res_parser, &res_settings, NULL, 0);
    close_handle((uv_handle_t *)s);
  }
}

static void on_request_written(uv_write_t *req, int status) {
  if (!uv_ok("write request", status)) close_handle((uv_handle_t *)req->handle);
}

static void on_connect(uv_connect_t *req, int status) {
  uv_buf_t out = uv_buf_init((char *)request, sizeof request - 1);
  connected = uv_ok("connect", status);
  http_parser_init(&res_parser, HTTP_RESPONSE);
  res_parser.data = &res_msg;
  if (!connected ||
      !uv_ok("read start", uv_read_start(req->handle, on_alloc, on_client_read)) ||
      !uv_ok("write request", uv_write(&request_req, req->handle, &out, 1, on_request_written)))
    close_handle((uv_handle_t *)req->handle);
}

static void on_start(uv_timer_t *t) {
  waited_ms = uv_now(&loop) - started_at;
  close_handle((uv_handle_t *)t);
  if (uv_ok("tcp init", uv_tcp_init(&loop, &client)) &&
      !uv_ok("connect", uv_tcp_connect(&connect_req, &client, (struct sockaddr *)&addr, on_connect)))
    close_handle((uv_handle_t *)&client);
}

static void on_deadline(uv_timer_t *t) {
  timed_out = 1;
  uv_walk(t->loop, close_any, NULL);
}

/* Bind 127.0.0.1:0 and learn the port the kernel chose. */
static int listen_loopback(void) {
  int len = sizeof addr;
  return uv_ok("ip4 addr", uv_ip4_addr("127.0.0.1", 0, &addr)) &&
         uv_ok("tcp init", uv_tcp_init(&loop, &listener)) &&
         uv_ok("bind", uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0)) &&
         uv_ok("listen", uv_listen((uv_stream_t *)&listener, 8, on_connection)) &&
         uv_ok("getsockname", uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len)) &&
         ntohs(addr.sin_port) != 0;
}

int main(void) {
  check("libuv 1.44.2 and http-parser 2.9.4 are linked",
        uv_version() == 0x012c02 && http_parser_version() == 0x020904);
  if (!uv_ok("loop init", uv_loop_init(&loop))) return 1;
  check("listener bound to 127.0.0.1 with a port", listen_loopback());
  started_at = uv_now(&loop);
  if (uv_ok("timer init", uv_timer_init(&loop, &start_timer)))
    uv_ok("timer start", uv_timer_start(&start_timer, on_start, START_MS, 0));
  if (uv_ok("timer init", uv_timer_init(&loop, &deadline)) &&
      uv_ok("timer start", uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0)))
    uv_unref((uv_handle_t *)&deadline);   /* the deadline alone does not keep the loop running */
  uv_ok("run", uv_run(&loop, UV_RUN_DEFAULT));

  check("timer fired after its delay", waited_ms >= START_MS);
  check("client connected and server accepted", connected && accepted);
  check("request method parsed", req_parser.method == HTTP_POST);
  check("request URL parsed", strcmp(url.s, "/v1/chat/completions?x=1") == 0);
  check("request header parsed", strcmp(x_test.s, "yes") == 0);
  check("chunked body reassembled", req_done && strcmp(req_body.s, "hello, chunked world") == 0);
  check("client got the answer", res_done && res_parser.status_code == 200 && strcmp(res_body.s, "ok") == 0);
  check("exchange finished before the deadline", !timed_out);

  uv_walk(&loop, close_any, NULL);
  uv_ok("run", uv_run(&loop, UV_RUN_DEFAULT));
  check("every libuv call succeeded", uv_errors == 0);
  check("loop closes with no handle left", uv_loop_close(&loop) == 0);
  return failures != 0;
}
