/* HTTP transfers over one libcurl multi handle driven by the event loop
   (curl_multi_socket_action): reuse, timeouts, back-pressure, and errors in plain words. */
#include "http.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "tls.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static CURLM *multi;   /* its connection cache is shared by every transfer of the process */
static uv_loop_t *loop;
static uv_timer_t curl_timer;   /* libcurl's one timeout for the multi handle */
static int curl_tried;
static CURLcode curl_started = CURLE_FAILED_INIT;   /* curl_global_init's answer */
static CURL *spare[16];   /* finished easy handles, reset, kept for the next transfers */
static int spares;

struct http_transfer {
  CURL *h;
  struct curl_slist *hdrs;
  struct http_sink sink;
  char *url;                /* for messages */
  long timeout_ms, idle_timeout_ms;
  struct buf head;          /* header lines of the final response */
  long status;
  int head_sent, stopped, paused, idle, by_line, dripping;
  uint64_t last_byte_ms;    /* the last activity, on the loop's clock (by_line: a line's end) */
  uv_timer_t idle_timer;    /* owns the record: freed when this handle has closed */
  char errbuf[CURL_ERROR_SIZE];
};

/* A socket libcurl asked us to watch. */
struct watch {
  uv_poll_t poll;
  curl_socket_t fd;
};

/* The status line starts a new header block (a 100 Continue or a proxy's CONNECT
   answer comes first); only the last block's lines are kept. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct http_transfer *x = ud;
  size_t len = size * n;
  x->last_byte_ms = uv_now(loop);
  if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
    buf_reset(&x->head);
    x->status = strtol(memchr(p, ' ', len) ? memchr(p, ' ', len) : p + len, NULL, 10);
    return len;
  }
  if (len <= 2 || x->status / 100 == 1) return len;   /* blank line, or an interim block */
  return buf_add(&x->head, p, len) == 0 ? len : 0;
}

/* Hand the final response's status and headers on, once. */
static int send_head(struct http_transfer *x) {
  x->head_sent = 1;
  if (x->sink.on_head && x->sink.on_head(x->sink.ud, x->status, x->head.p ? x->head.p : "", x->head.len))
    x->stopped = 1;
  return x->stopped;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct http_transfer *x = ud;
  size_t len = size * n;
  x->dripping = x->by_line && !memchr(p, '\n', len) && !memchr(p, '\r', len);
  if (!x->dripping) x->last_byte_ms = uv_now(loop);
  if (!x->head_sent && send_head(x) != 0) return 0;
  int rc = x->sink.on_data ? x->sink.on_data(x->sink.ud, p, len) : 0;
  if (rc == HTTP_PAUSE) {
    x->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (rc != 0) x->stopped = 1;
  return rc == 0 ? len : 0;
}

static int debug_cb(CURL *h, curl_infotype type, char *p, size_t n, void *ud) {
  (void)h, (void)ud;
  if (type == CURLINFO_TEXT) log_write(LOG_DEBUG, p, n);
  else if (type == CURLINFO_HEADER_OUT || type == CURLINFO_HEADER_IN) {
    const char *dir = type == CURLINFO_HEADER_OUT ? "> " : "< ";
    for (const char *line = p, *end = p + n; line < end;) {
      const char *nl = memchr(line, '\n', (size_t)(end - line));
      size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
      if (len > 1) log_msg(LOG_DEBUG, "%s%.*s", dir, (int)len, line);
      line += len + 1;
    }
  }
  return 0;
}

const char *http_kind_name(enum http_kind kind) {
  static const char *const names[] = { "ok", "stopped", "dns", "connect", "tls", "timeout",
                                       "reset", "proxy", "too_large", "failed" };
  return names[kind];
}

/* Turn libcurl's code and detail into what happened, in words a user can act on. */
static enum http_kind describe(CURLcode rc, const char *detail, const char *url,
                               long timeout_ms, long oserr, char *out, size_t n) {
  if (!*detail) detail = curl_easy_strerror(rc);
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
    snprintf(out, n, "could not resolve the host of %s (DNS): %s", url, detail);
    return HTTP_DNS;
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_PROXY:
    snprintf(out, n, "the proxy failed for %s: %s (check https_proxy/http_proxy)", url, detail);
    return HTTP_PROXY;
  case CURLE_COULDNT_CONNECT:
    if (oserr == ECONNREFUSED)
      snprintf(out, n, "could not connect to %s: connection refused (is the server running?)", url);
    else
      snprintf(out, n, "could not connect to %s: %s%s%s", url, detail, oserr ? ": " : "",
               oserr ? strerror((int)oserr) : "");
    return HTTP_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    if (timeout_ms > 0 && strstr(detail, "Operation timed out"))
      snprintf(out, n, "%s did not finish within %ld ms", url, timeout_ms);
    else
      snprintf(out, n, "timed out talking to %s: %s", url, detail);
    return HTTP_TIMEOUT;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
    snprintf(out, n, "TLS certificate verification failed for %s: %s", url,
             strncmp(detail, "SSL: X.509 verification: ", 25) == 0 ? detail + 25 : detail);
    return HTTP_TLS;
  case CURLE_SSL_CONNECT_ERROR:
    snprintf(out, n, "TLS handshake with %s failed: %s (kimictl speaks TLS 1.2)", url, detail);
    return HTTP_TLS;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING:
    snprintf(out, n, "the connection to %s was closed before the answer was complete: %s", url, detail);
    return HTTP_RESET;
  default:
    snprintf(out, n, "request to %s failed: %s", url, detail);
    return HTTP_FAILED;
  }
}

/* Every socket libcurl opens is closed in a spawned child (core.proc.spawn_detached). */
static int cloexec(void *ud, curl_socket_t fd, curlsocktype purpose) {
  (void)ud, (void)purpose;
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 ? CURL_SOCKOPT_OK : CURL_SOCKOPT_ERROR;
}

/* The first curl_easy_setopt that failed, so that no option is lost without a word. */
struct setopt_error { CURLcode rc; const char *name; };

static void note(struct setopt_error *e, CURLcode rc, const char *name) {
  if (rc != CURLE_OK && e->rc == CURLE_OK) e->rc = rc, e->name = name;
}
#define SET(h, e, opt, val) note((e), curl_easy_setopt((h), (opt), (val)), #opt)

/* The header list holds Authorization: wipe every line before it is freed. */
static void free_header_list(struct curl_slist *list) {
  for (struct curl_slist *p = list; p; p = p->next) secure_zero(p->data, strlen(p->data));
  curl_slist_free_all(list);
}

/* The request's header lines; NULL when one could not be added (out of memory). */
static struct curl_slist *header_list(const struct http_request *rq) {
  struct curl_slist *list = NULL, *grown;
  for (const char *const *p = rq->headers; p && *p; p++) {
    if (!(grown = curl_slist_append(list, *p))) goto fail;
    list = grown;
  }
  if ((grown = curl_slist_append(list, "Expect:"))) return grown;   /* no 100-continue round trip */
fail:
  free_header_list(list);
  return NULL;
}

/* libcurl looks the proxy variables up on every transfer. When none is set (asked once: the
   environment does not change under us), it is told there is no proxy and skips that. */
static int no_proxy_in_env(void) {
  static const char *const names[] = {
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL
  };
  static int known, none;
  if (!known) {
    known = none = 1;
    for (const char *const *n = names; *n; n++) none = none && !getenv(*n);
  }
  return none;
}

static void setup(CURL *h, const struct http_request *rq, struct http_transfer *x,
                  struct curl_slist *hdrs, char *errbuf, struct setopt_error *e) {
  SET(h, e, CURLOPT_URL, rq->url);
  SET(h, e, CURLOPT_CUSTOMREQUEST, rq->method);
  if (strcasecmp(rq->method, "HEAD") == 0) SET(h, e, CURLOPT_NOBODY, 1L);
  if (rq->body) {
    SET(h, e, CURLOPT_POSTFIELDS, rq->body);
    SET(h, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
  }
  SET(h, e, CURLOPT_HTTPHEADER, hdrs);
  SET(h, e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SET(h, e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (no_proxy_in_env()) {
    SET(h, e, CURLOPT_PROXY, "");
    SET(h, e, CURLOPT_NOPROXY, "");
  }
  SET(h, e, CURLOPT_NOSIGNAL, 1L);
  SET(h, e, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
  if (rq->connect_timeout_ms > 0) SET(h, e, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
  if (rq->read_buffer > 0) SET(h, e, CURLOPT_BUFFERSIZE, rq->read_buffer);
  SET(h, e, CURLOPT_SSL_VERIFYPEER, 1L);
  SET(h, e, CURLOPT_SSL_VERIFYHOST, 2L);
  SET(h, e, CURLOPT_SOCKOPTFUNCTION, cloexec);
  SET(h, e, CURLOPT_HEADERFUNCTION, on_header);
  SET(h, e, CURLOPT_HEADERDATA, x);
  SET(h, e, CURLOPT_WRITEFUNCTION, on_body);
  SET(h, e, CURLOPT_WRITEDATA, x);
  SET(h, e, CURLOPT_PRIVATE, x);
  SET(h, e, CURLOPT_ERRORBUFFER, errbuf);
  if (log_level() >= LOG_DEBUG) {
    SET(h, e, CURLOPT_VERBOSE, 1L);
    SET(h, e, CURLOPT_DEBUGFUNCTION, debug_cb);
  }
}

/* --- the engine: libcurl's sockets and timer on the loop */

static void finish(struct http_transfer *x, CURLcode rc);

/* Every transfer that ended in the last action gets its ending. */
static void check_done(void) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(multi, &left))) {
    struct http_transfer *x = NULL;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x) finish(x, m->data.result);
  }
}

static void act(curl_socket_t fd, int flags) {
  int running;
  CURLMcode mrc = curl_multi_socket_action(multi, fd, flags, &running);
  if (mrc != CURLM_OK) log_msg(LOG_WARN, "libcurl: %s", curl_multi_strerror(mrc));
  check_done();
}

/* An error on the socket (a reset) is reported as readable: bytes that came before it are
   still there to read, and the read then names the error. */
static void on_poll(uv_poll_t *p, int status, int events) {
  struct watch *w = (struct watch *)p;
  int flags = status < 0 ? CURL_CSELECT_IN | CURL_CSELECT_ERR
            : ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) | ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
  act(w->fd, flags);
}

static void on_curl_timer(uv_timer_t *t) {
  (void)t;
  act(CURL_SOCKET_TIMEOUT, 0);
}

static void free_handle(uv_handle_t *h) { free(h); }

/* CURLMOPT_SOCKETFUNCTION: watch fd for what libcurl wants, or stop watching it. */
static int socket_cb(CURL *e, curl_socket_t fd, int what, void *ud, void *socketp) {
  (void)e, (void)ud;
  struct watch *w = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      uv_poll_stop(&w->poll);
      uv_close((uv_handle_t *)&w->poll, free_handle);   /* now, while fd is still this socket */
      curl_multi_assign(multi, fd, NULL);
    }
    return 0;
  }
  if (!w) {
    if (!(w = calloc(1, sizeof *w))) return -1;
    if (uv_poll_init_socket(loop, &w->poll, fd) != 0) {
      free(w);
      return -1;
    }
    w->fd = fd;
    curl_multi_assign(multi, fd, w);
  }
  int events = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
  return uv_poll_start(&w->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants to act after ms (-1: never). */
static int timer_cb(CURLM *m, long ms, void *ud) {
  (void)m, (void)ud;
  if (ms < 0) return uv_timer_stop(&curl_timer) == 0 ? 0 : -1;
  return uv_timer_start(&curl_timer, on_curl_timer, (uint64_t)ms, 0) == 0 ? 0 : -1;
}

/* libcurl's global state first (once per process), then the loop and the multi handle. */
static int start_curl(struct http_error *err) {
  const char *why = "out of memory";
  if (!curl_tried) curl_tried = 1, curl_started = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (curl_started != CURLE_OK) why = curl_easy_strerror(curl_started);
  else if (multi) return 0;
  else if ((loop = loop_get(&why)) && (multi = curl_multi_init())) {
    if (uv_timer_init(loop, &curl_timer) == 0 &&
        curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb) == CURLM_OK &&
        curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb) == CURLM_OK)
      return 0;
    why = "libcurl refused the event loop";
    curl_multi_cleanup(multi);
    multi = NULL;
  }
  snprintf(err->message, sizeof err->message, "cannot start libcurl: %s", why);
  return -1;
}

/* The idle timer: no byte (by_line: no line's end) for idle_timeout_ms, while not paused by
   us, ends the transfer. */
static void on_idle(uv_timer_t *t) {
  struct http_transfer *x = t->data;
  uint64_t now = uv_now(loop), due = x->last_byte_ms + (uint64_t)x->idle_timeout_ms;
  if (x->paused || now < due) {
    uv_timer_start(t, on_idle, x->paused ? (uint64_t)x->idle_timeout_ms : due - now, 0);
    return;
  }
  x->idle = 1;
  finish(x, CURLE_OPERATION_TIMEDOUT);
}

static void free_transfer(uv_handle_t *h) {
  struct http_transfer *x = h->data;
  free(x->url);
  free(x);
}

/* An easy handle for a new transfer: a spare one if there is one (its buffers are already
   there), otherwise a new one. */
static CURL *easy_get(void) { return spares ? spare[--spares] : curl_easy_init(); }

static void easy_put(CURL *h) {
  if (spares < (int)(sizeof spare / sizeof *spare)) curl_easy_reset(h), spare[spares++] = h;
  else curl_easy_cleanup(h);
}

/* Take the transfer off the multi handle and free it (the record once its timer closed). */
static void release(struct http_transfer *x) {
  curl_multi_remove_handle(multi, x->h);
  easy_put(x->h);
  free_header_list(x->hdrs);
  buf_free(&x->head);
  uv_close((uv_handle_t *)&x->idle_timer, free_transfer);
}

/* After the transfer: what kind of ending it was, and its message. */
static enum http_kind outcome(struct http_transfer *x, CURLcode rc, char *out, size_t n) {
  long oserr = 0;
  if (x->stopped) return HTTP_STOPPED;
  if (x->idle) {
    snprintf(out, n, "%s sent %s for %ld ms (idle timeout)", x->url,
             x->dripping ? "bytes but no complete line" : "nothing", x->idle_timeout_ms);
    return HTTP_TIMEOUT;
  }
  if (rc == CURLE_OK) return HTTP_OK;
  curl_easy_getinfo(x->h, CURLINFO_OS_ERRNO, &oserr);
  return describe(rc, x->errbuf, x->url, x->timeout_ms, oserr, out, n);
}

static void finish(struct http_transfer *x, CURLcode rc) {
  struct http_error err = { HTTP_OK, "" };
  if (rc == CURLE_OK && !x->head_sent) send_head(x);   /* no body: still a head */
  err.kind = outcome(x, rc, err.message, sizeof err.message);
  struct http_sink sink = x->sink;
  release(x);
  if (sink.on_done) sink.on_done(sink.ud, &err);
}

static struct http_transfer *fail(struct http_error *err, enum http_kind kind, const char *fmt,
                                  const char *url, const char *detail) {
  snprintf(err->message, sizeof err->message, fmt, url, detail);
  err->kind = kind;
  return NULL;
}

struct http_transfer *http_start(const struct http_request *rq, const struct http_sink *sink,
                                 struct http_error *err) {
  struct setopt_error bad = { CURLE_OK, NULL };
  err->kind = HTTP_OK;
  err->message[0] = '\0';
  if (strncasecmp(rq->url, "https:", 6) == 0 && tls_init(err->message, sizeof err->message) != 0) {
    err->kind = HTTP_TLS;
    return NULL;
  }
  if (start_curl(err) != 0) {
    err->kind = HTTP_FAILED;
    return NULL;
  }
  struct http_transfer *x = calloc(1, sizeof *x);
  if (!x || !(x->url = strdup(rq->url)) || !(x->hdrs = header_list(rq)) || !(x->h = easy_get())) {
    if (x) free_header_list(x->hdrs), free(x->url);
    free(x);
    return fail(err, HTTP_FAILED, "cannot start a request to %s: %s", rq->url, "out of memory");
  }
  x->sink = *sink;
  x->timeout_ms = rq->timeout_ms;
  x->idle_timeout_ms = rq->idle_timeout_ms;
  x->by_line = rq->idle_by_line;
  x->last_byte_ms = uv_now(loop);
  uv_timer_init(loop, &x->idle_timer);   /* cannot fail: it only fills the handle in */
  x->idle_timer.data = x;
  setup(x->h, rq, x, x->hdrs, x->errbuf, &bad);
  CURLMcode mrc = bad.rc == CURLE_OK ? curl_multi_add_handle(multi, x->h) : CURLM_OK;
  if (bad.rc != CURLE_OK || mrc != CURLM_OK) {
    easy_put(x->h);
    x->h = NULL;
    free_header_list(x->hdrs);
    uv_close((uv_handle_t *)&x->idle_timer, free_transfer);
    if (bad.rc != CURLE_OK)
      return fail(err, HTTP_FAILED, "cannot start a request to %s: libcurl refused %s", rq->url, bad.name);
    return fail(err, HTTP_FAILED, "cannot start a request to %s: %s", rq->url, curl_multi_strerror(mrc));
  }
  if (x->idle_timeout_ms > 0) uv_timer_start(&x->idle_timer, on_idle, (uint64_t)x->idle_timeout_ms, 0);
  return x;
}

void http_cancel(struct http_transfer *x) {
  if (x) release(x);
}

void http_resume(struct http_transfer *x) {
  if (!x->paused) return;
  x->paused = 0;
  x->last_byte_ms = uv_now(loop);
  curl_easy_pause(x->h, CURLPAUSE_CONT);   /* may hand the held bytes on at once */
}

void http_cleanup(void) {
  while (spares) curl_easy_cleanup(spare[--spares]);
  if (multi) {
    curl_multi_cleanup(multi);
    uv_close((uv_handle_t *)&curl_timer, NULL);
  }
  multi = NULL;
  if (curl_started == CURLE_OK) curl_global_cleanup();
  curl_started = CURLE_FAILED_INIT;   /* and curl_tried stays: never initialised twice */
}
