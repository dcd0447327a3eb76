/* libFuzzer target: the gateway's HTTP server (http-parser glue, limits, pipelining, chunked
   bodies and answers). Each input is sent as the bytes of one client connection to a real
   server on 127.0.0.1, in the same process; the target turns the event loop until the
   server has answered all it will, then hangs up. A hang past the deadline is a crash. */
#include "loop.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct server *srv;

/* Answers whole, or chunked in three pieces when the target asks for it. */
static void on_request(struct srv_conn *c, void *ud) {
  (void)ud;
  const struct srv_request *r = srv_request(c);
  char n[32];
  int len = snprintf(n, sizeof n, "%zu", r->body_len);
  if (strstr(r->target, "chunk")) {
    if (srv_start(c, 200, "Content-Type: text/event-stream\r\n") == 0 && srv_write(c, "data: ", 6) >= 0 &&
        srv_write(c, n, (size_t)len) >= 0 && srv_write(c, "\n\n", 2) >= 0)
      srv_finish(c);
  } else {
    srv_respond(c, 200, "Content-Type: text/plain\r\n", n, (size_t)len);
  }
}

static double now(void) {
  struct timespec t;
  if (clock_gettime(CLOCK_MONOTONIC, &t) != 0) abort();
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Nothing left for the loop to do now: no readable event and no timer due. */
static int loop_idle(uv_loop_t *loop) {
  struct pollfd p = { uv_backend_fd(loop), POLLIN, 0 };
  return poll(&p, 1, 0) == 0 && uv_backend_timeout(loop) != 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* small limits, so that inputs reach them */
  struct server_config cfg = { .host = "127.0.0.1", .max_header = 2048, .max_body = 4096,
                               .header_timeout_ms = 1000, .idle_timeout_ms = 2000,
                               .write_high = 8192, .write_low = 1024, .on_request = on_request };
  char err[200];
  if (server_listen(&srv, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_server: %s\n", err);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  uv_loop_t *loop = loop_get(NULL);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)server_port(srv));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Each input from the next of 127.0.0.1-254: thousands of connections a second would
     otherwise use up one address's ports, every closed one waiting a minute in TIME_WAIT. */
  static unsigned turn;
  struct sockaddr_in from = sa;
  from.sin_port = 0;
  from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + turn++ % 254);
  /* Non-blocking from the start: libFuzzer's SIGALRM would interrupt a blocking connect.
     The server accepts on the loop below; the connection completes in the kernel. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
      bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
      (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS && errno != EINTR)) {
    fprintf(stderr, "fuzz_server: connecting to the server (input %u): %s\n", turn, strerror(errno));
    abort();
  }
  size_t sent = 0;
  int quiet = 0;
  double deadline = now() + 10;
  while (quiet < 2) {
    if (sent < size) {
      ssize_t n = write(fd, data + sent, size - sent);
      if (n > 0) sent += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;   /* reset by the server */
    }
    uv_run(loop, UV_RUN_NOWAIT);
    char answer[4096];
    ssize_t got;
    while ((got = read(fd, answer, sizeof answer)) > 0) {}
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;   /* closed */
    quiet = sent == size && loop_idle(loop) ? quiet + 1 : 0;
    if (now() > deadline) abort();   /* the server neither answered nor closed */
  }
  if (close(fd) != 0) abort();
  for (int i = 0; i < 4 || !loop_idle(loop); i++) {   /* the server sees the hang-up */
    uv_run(loop, UV_RUN_NOWAIT);
    if (now() > deadline + 5) abort();
  }
  return 0;
}
