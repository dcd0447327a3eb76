/* HTTP transfers over one libcurl multi handle: reuse, timeouts, and errors in plain words. */
#include "http.h"
#include "log.h"
#include "tls.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static CURLM *multi;   /* its connection cache is shared by every transfer of the process */

struct transfer {
  const struct http_request *rq;
  const struct http_sink *sink;
  char *head;          /* header lines of the final response */
  size_t head_len, head_cap;
  long status;
  int head_sent, stopped;
  long long last_byte_ms;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int head_add(struct transfer *t, const char *p, size_t n) {
  if (t->head_len + n + 1 > t->head_cap) {
    size_t cap = t->head_cap ? t->head_cap * 2 : 1024;
    while (cap < t->head_len + n + 1) cap *= 2;
    char *q = realloc(t->head, cap);
    if (!q) return -1;
    t->head = q, t->head_cap = cap;
  }
  memcpy(t->head + t->head_len, p, n);
  t->head_len += n;
  t->head[t->head_len] = '\0';
  return 0;
}

/* The status line starts a new header block (a 100 Continue or a proxy's CONNECT
   answer comes first); only the last block's lines are kept. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct transfer *t = ud;
  size_t len = size * n;
  t->last_byte_ms = now_ms();
  if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
    t->head_len = 0;
    t->status = strtol(memchr(p, ' ', len) ? memchr(p, ' ', len) : p + len, NULL, 10);
    return len;
  }
  if (len <= 2 || t->status / 100 == 1) return len;   /* blank line, or an interim block */
  return head_add(t, p, len) == 0 ? len : 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct transfer *t = ud;
  size_t len = size * n;
  t->last_byte_ms = now_ms();
  if (!t->head_sent) {
    t->head_sent = 1;
    if (t->sink->on_head && t->sink->on_head(t->sink->ud, t->status, t->head ? t->head : "", t->head_len)) {
      t->stopped = 1;
      return 0;
    }
  }
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

static CURL *setup(const struct http_request *rq, struct transfer *t,
                   struct curl_slist **hdrs, char *errbuf) {
  CURL *h = curl_easy_init();
  if (!h) return NULL;
  curl_easy_setopt(h, CURLOPT_URL, rq->url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
  if (strcasecmp(rq->method, "HEAD") == 0) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  if (rq->body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
  }
  for (const char *const *p = rq->headers; p && *p; p++) *hdrs = curl_slist_append(*hdrs, *p);
  *hdrs = curl_slist_append(*hdrs, "Expect:");   /* no 100-continue round trip */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
  if (rq->connect_timeout_ms > 0) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  if (log_level() >= LOG_DEBUG) {
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
  }
  return h;
}

/* Drive the multi handle until this transfer ends; the idle timer is ours. */
static CURLcode run(CURL *h, struct transfer *t, int *idle) {
  int running = 1;
  CURLMsg *msg;
  int left;
  t->last_byte_ms = now_ms();
  while (running) {
    if (curl_multi_perform(multi, &running) != CURLM_OK) return CURLE_FAILED_INIT;
    if (!running) break;
    int wait = 1000;
    if (t->rq->idle_timeout_ms > 0) {
      long long left_ms = t->last_byte_ms + t->rq->idle_timeout_ms - now_ms();
      if (left_ms <= 0) { *idle = 1; return CURLE_OPERATION_TIMEDOUT; }
      if (left_ms < wait) wait = (int)left_ms;
    }
    curl_multi_poll(multi, NULL, 0, wait, NULL);
  }
  while ((msg = curl_multi_info_read(multi, &left)))
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) return msg->data.result;
  return CURLE_FAILED_INIT;
}

int http_perform(const struct http_request *rq, const struct http_sink *sink,
                 struct http_error *err) {
  struct transfer t = { .rq = rq, .sink = sink };
  struct curl_slist *hdrs = NULL;
  char errbuf[CURL_ERROR_SIZE] = "";
  int idle = 0;
  enum http_kind kind = HTTP_OK;
  err->kind = HTTP_OK;
  err->message[0] = '\0';

  if (strncasecmp(rq->url, "https:", 6) == 0 && tls_init(err->message, sizeof err->message) != 0)
    return err->kind = HTTP_TLS;
  if (!multi && !(multi = curl_multi_init())) {
    snprintf(err->message, sizeof err->message, "cannot start libcurl");
    return err->kind = HTTP_FAILED;
  }
  CURL *h = setup(rq, &t, &hdrs, errbuf);
  if (!h || curl_multi_add_handle(multi, h) != CURLM_OK) {
    snprintf(err->message, sizeof err->message, "cannot start a transfer (out of memory?)");
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    return err->kind = HTTP_FAILED;
  }
  CURLcode rc = run(h, &t, &idle);
  if (rc == CURLE_OK && !t.head_sent) {
    t.head_sent = 1;   /* an answer with no body still has a status and headers */
    if (sink->on_head && sink->on_head(sink->ud, t.status, t.head ? t.head : "", t.head_len)) t.stopped = 1;
  }
  if (t.stopped) kind = HTTP_STOPPED;
  else if (idle)
    kind = HTTP_TIMEOUT, snprintf(err->message, sizeof err->message,
                                  "%s sent nothing for %ld ms (idle timeout)", rq->url, rq->idle_timeout_ms);
  else if (rc != CURLE_OK) {
    long oserr = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
    kind = describe(rc, errbuf, rq->url, rq->timeout_ms, oserr, err->message, sizeof err->message);
  }
  curl_multi_remove_handle(multi, h);
  curl_easy_cleanup(h);
  curl_slist_free_all(hdrs);
  free(t.head);
  return err->kind = kind;
}

void http_cleanup(void) {
  if (multi) curl_multi_cleanup(multi);
  multi = NULL;
}
