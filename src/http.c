/* HTTP transfers over one libcurl multi handle: reuse, timeouts, and errors in plain words. */
#include "http.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "tls.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static CURLM *multi;   /* its connection cache is shared by every transfer of the process */
static int curl_tried;
static CURLcode curl_started = CURLE_FAILED_INIT;   /* curl_global_init's answer */

struct transfer {
  const struct http_request *rq;
  const struct http_sink *sink;
  struct buf head;     /* header lines of the final response */
  long status;
  int head_sent, stopped;
  long long last_byte_ms;
};

/* The status line starts a new header block (a 100 Continue or a proxy's CONNECT
   answer comes first); only the last block's lines are kept. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct transfer *t = ud;
  size_t len = size * n;
  t->last_byte_ms = clock_now_ms();
  if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
    buf_reset(&t->head);
    t->status = strtol(memchr(p, ' ', len) ? memchr(p, ' ', len) : p + len, NULL, 10);
    return len;
  }
  if (len <= 2 || t->status / 100 == 1) return len;   /* blank line, or an interim block */
  return buf_add(&t->head, p, len) == 0 ? len : 0;
}

/* Hand the final response's status and headers on, once. */
static int send_head(struct transfer *t) {
  t->head_sent = 1;
  if (t->sink->on_head && t->sink->on_head(t->sink->ud, t->status, t->head.p ? t->head.p : "", t->head.len))
    t->stopped = 1;
  return t->stopped;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct transfer *t = ud;
  size_t len = size * n;
  t->last_byte_ms = clock_now_ms();
  if (!t->head_sent && send_head(t) != 0) return 0;
  if (t->sink->on_data && t->sink->on_data(t->sink->ud, p, len)) {
    t->stopped = 1;
    return 0;
  }
  return len;
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

static void setup(CURL *h, const struct http_request *rq, struct transfer *t,
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
  SET(h, e, CURLOPT_NOSIGNAL, 1L);
  SET(h, e, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
  if (rq->connect_timeout_ms > 0) SET(h, e, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
  SET(h, e, CURLOPT_SSL_VERIFYPEER, 1L);
  SET(h, e, CURLOPT_SSL_VERIFYHOST, 2L);
  SET(h, e, CURLOPT_SOCKOPTFUNCTION, cloexec);
  SET(h, e, CURLOPT_HEADERFUNCTION, on_header);
  SET(h, e, CURLOPT_HEADERDATA, t);
  SET(h, e, CURLOPT_WRITEFUNCTION, on_body);
  SET(h, e, CURLOPT_WRITEDATA, t);
  SET(h, e, CURLOPT_ERRORBUFFER, errbuf);
  if (log_level() >= LOG_DEBUG) {
    SET(h, e, CURLOPT_VERBOSE, 1L);
    SET(h, e, CURLOPT_DEBUGFUNCTION, debug_cb);
  }
}

/* Drive the multi handle until this transfer ends; the idle timer is ours. A failure of
   the multi handle itself lands in *mrc. */
static CURLcode run(CURL *h, struct transfer *t, int *idle, CURLMcode *mrc) {
  int running = 1;
  CURLMsg *msg;
  int left;
  t->last_byte_ms = clock_now_ms();
  while (running) {
    if ((*mrc = curl_multi_perform(multi, &running)) != CURLM_OK) return CURLE_FAILED_INIT;
    if (!running) break;
    int wait = 1000;
    if (t->rq->idle_timeout_ms > 0) {
      long long left_ms = t->last_byte_ms + t->rq->idle_timeout_ms - clock_now_ms();
      if (left_ms <= 0) { *idle = 1; return CURLE_OPERATION_TIMEDOUT; }
      if (left_ms < wait) wait = (int)left_ms;
    }
    if ((*mrc = curl_multi_poll(multi, NULL, 0, wait, NULL)) != CURLM_OK) return CURLE_FAILED_INIT;
  }
  while ((msg = curl_multi_info_read(multi, &left)))
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) return msg->data.result;
  return CURLE_FAILED_INIT;
}

/* libcurl's global state first (once per process), then the shared multi handle. */
static int start_curl(struct http_error *err) {
  if (!curl_tried) curl_tried = 1, curl_started = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (curl_started != CURLE_OK) {
    snprintf(err->message, sizeof err->message, "cannot start libcurl: %s", curl_easy_strerror(curl_started));
    return -1;
  }
  if (!multi && !(multi = curl_multi_init())) {
    snprintf(err->message, sizeof err->message, "cannot start libcurl: out of memory");
    return -1;
  }
  return 0;
}

/* After the transfer: what kind of ending it was, and its message. */
static enum http_kind outcome(const struct http_request *rq, struct transfer *t, CURL *h, CURLcode rc,
                              CURLMcode mrc, int idle, const char *errbuf, struct http_error *err) {
  long oserr = 0;
  if (t->stopped) return HTTP_STOPPED;
  if (idle) {
    snprintf(err->message, sizeof err->message, "%s sent nothing for %ld ms (idle timeout)",
             rq->url, rq->idle_timeout_ms);
    return HTTP_TIMEOUT;
  }
  if (mrc != CURLM_OK) {
    snprintf(err->message, sizeof err->message, "request to %s failed: libcurl: %s", rq->url,
             curl_multi_strerror(mrc));
    return HTTP_FAILED;
  }
  if (rc == CURLE_OK) return HTTP_OK;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
  return describe(rc, errbuf, rq->url, rq->timeout_ms, oserr, err->message, sizeof err->message);
}

int http_perform(const struct http_request *rq, const struct http_sink *sink,
                 struct http_error *err) {
  struct transfer t = { .rq = rq, .sink = sink };
  struct setopt_error bad = { CURLE_OK, NULL };
  char errbuf[CURL_ERROR_SIZE] = "";
  int idle = 0;
  CURLMcode mrc = CURLM_OK;
  err->kind = HTTP_OK;
  err->message[0] = '\0';

  if (strncasecmp(rq->url, "https:", 6) == 0 && tls_init(err->message, sizeof err->message) != 0)
    return err->kind = HTTP_TLS;
  if (start_curl(err) != 0) return err->kind = HTTP_FAILED;
  struct curl_slist *hdrs = header_list(rq);
  CURL *h = hdrs ? curl_easy_init() : NULL;
  if (h) setup(h, rq, &t, hdrs, errbuf, &bad);
  if (!h || bad.rc != CURLE_OK || curl_multi_add_handle(multi, h) != CURLM_OK) {
    if (bad.rc != CURLE_OK)
      snprintf(err->message, sizeof err->message, "cannot start a request to %s: libcurl refused %s: %s",
               rq->url, bad.name, curl_easy_strerror(bad.rc));
    else
      snprintf(err->message, sizeof err->message, "cannot start a request to %s: out of memory", rq->url);
    curl_easy_cleanup(h);
    free_header_list(hdrs);
    return err->kind = HTTP_FAILED;
  }
  CURLcode rc = run(h, &t, &idle, &mrc);
  if (rc == CURLE_OK && mrc == CURLM_OK && !t.head_sent) send_head(&t);   /* no body: still a head */
  enum http_kind kind = outcome(rq, &t, h, rc, mrc, idle, errbuf, err);
  curl_multi_remove_handle(multi, h);
  curl_easy_cleanup(h);
  free_header_list(hdrs);
  buf_free(&t.head);
  return err->kind = kind;
}

void http_cleanup(void) {
  if (multi) curl_multi_cleanup(multi);
  multi = NULL;
  if (curl_started == CURLE_OK) curl_global_cleanup();
  curl_started = CURLE_FAILED_INIT;   /* and curl_tried stays: never initialised twice */
}
