/* core.http: HTTP requests from Lua, with server-sent events delivered as they arrive; in a
   task they wait by yielding, so one loop carries any number of them. */
#include "api.h"
#include "http.h"
#include "sse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* One request in flight, in a userdata that is closed (to-be-closed slot) or collected
   whatever raises: the transfer is cancelled and the buffers freed. libcurl's callbacks only
   store (the head, events, the body) and wake the waiting task; Lua runs afterwards, in pump. */
struct call {
  struct http_transfer *x;   /* NULL once ended or cancelled */
  struct task *task;         /* waiting for news, or NULL */
  long status;
  struct buf head;           /* the response's header lines */
  int head_ready, head_pushed, sse_mode, in_event, cancelled, failed_sse, too_large, done;
  struct sse sse;
  struct buf events;         /* parsed events waiting for on_event: struct queued + bytes */
  size_t taken;              /* how much of events on_event has had */
  struct buf body;           /* a collected (non-SSE) body; body.max is max_body */
  struct http_error err;
};

struct queued { size_t type_len, data_len, id_len; long retry; };

#define STREAM_READ_BUFFER 4096

/* Unread events beyond this pause the transfer until on_event has caught up. */
#define EVENTS_HIGH (256 * 1024)

/* Fixed stack slots of core.http.request; the options' values stay alive below. */
enum { S_OPTS = 1, S_URL, S_BODY, S_METHOD, S_ON_EVENT, S_HEADERS, S_CALL, S_RES };

static void push_headers(lua_State *L, const char *p, size_t n) {
  int lines = 0;   /* the table is made its final size at once */
  for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))); q++) lines++;
  lua_createtable(L, 0, lines);
  for (const char *end = p + n; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
    const char *next = eol ? eol + 1 : end;
    if (colon) {
      const char *v = colon + 1, *ve = eol ? eol : end;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && isspace((unsigned char)ve[-1])) ve--;
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *c = p; c < colon; c++) luaL_addchar(&b, (char)tolower((unsigned char)*c));
      luaL_pushresult(&b);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) {   /* a repeated header: join with ", " */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = next;
  }
}

static void wake(struct call *c) {
  if (c->task) task_wake(c->task);
}

static int header_is(const char *p, size_t n, const char *name, const char *prefix) {
  size_t nl = strlen(name), pl = strlen(prefix);
  for (const char *end = p + n; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *v = p + nl + 1;
    if (!eol) eol = end;
    if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      return (size_t)(eol - v) >= pl && strncasecmp(v, prefix, pl) == 0;
    }
    p = eol + 1;
  }
  return 0;
}

/* Inside libcurl: keep the head for Lua, and decide how the body is taken. */
static int on_head(void *ud, long status, const char *p, size_t len) {
  struct call *c = ud;
  c->status = status;
  c->head_ready = 1;
  c->sse_mode = c->sse_mode && status >= 200 && status < 300 && header_is(p, len, "content-type", "text/event-stream");
  wake(c);
  return buf_add(&c->head, p, len) != 0;
}

static int queue_event(void *ud, const struct sse_event *ev) {
  struct call *c = ud;
  struct queued q = { ev->type_len, ev->data_len, ev->id_len, ev->retry };
  return buf_add(&c->events, (const char *)&q, sizeof q) != 0 || buf_add(&c->events, ev->type, ev->type_len) != 0 ||
         buf_add(&c->events, ev->data, ev->data_len) != 0 || buf_add(&c->events, ev->id, ev->id_len) != 0;
}

static int on_data(void *ud, const char *p, size_t n) {
  struct call *c = ud;
  if (c->sse_mode) {   /* events are handed on, not kept: no size limit, but a pause */
    if (c->events.len - c->taken > EVENTS_HIGH) return HTTP_PAUSE;
    int rc = sse_feed(&c->sse, p, n, queue_event, c);
    if (rc < 0 || rc == SSE_STOPPED) c->failed_sse = rc < 0 ? rc : SSE_NOMEM;
    wake(c);
    return rc != SSE_OK;
  }
  if (buf_add(&c->body, p, n) == 0) return 0;
  c->too_large = errno == EFBIG;
  return 1;
}

static void on_done(void *ud, const struct http_error *err) {
  struct call *c = ud;
  c->x = NULL;
  c->done = 1;
  c->err = *err;
  wake(c);
}

/* The next queued event as on_event's argument, or nothing (0) when none is left. */
static int push_event(lua_State *L, struct call *c) {
  struct queued q;
  if (c->taken >= c->events.len) {
    buf_reset(&c->events);
    c->taken = 0;
    return 0;
  }
  const char *p = c->events.p + c->taken;
  memcpy(&q, p, sizeof q);
  p += sizeof q;
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, p, q.type_len);
  lua_setfield(L, -2, "event");
  lua_pushlstring(L, p + q.type_len, q.data_len);
  lua_setfield(L, -2, "data");
  lua_pushlstring(L, p + q.type_len + q.data_len, q.id_len);
  lua_setfield(L, -2, "id");
  if (q.retry >= 0) {
    lua_pushinteger(L, q.retry);
    lua_setfield(L, -2, "retry");
  }
  c->taken += sizeof q + q.type_len + q.data_len + q.id_len;
  return 1;
}

static void push_head(lua_State *L, struct call *c) {
  c->head_pushed = 1;
  lua_pushinteger(L, c->status);
  lua_setfield(L, S_RES, "status");
  push_headers(L, c->head.p ? c->head.p : "", c->head.len);
  lua_setfield(L, S_RES, "headers");
  buf_free(&c->head);
}

/* Whether s[0..n) holds no CR, LF or NUL (nor a colon, for a name). */
static int header_text_ok(const char *s, size_t n, int name) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n' || c == '\0' || (name && c == ':')) return 0;
  }
  return 1;
}

/* One header of the table at the top, checked: its line's length, or 0 to skip it. */
static size_t header_line_len(lua_State *L) {
  if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) return 0;   /* false removes a header */
  if (lua_type(L, -2) != LUA_TSTRING)   /* checked first: lua_tolstring would change the key */
    luaL_error(L, "bad headers: use { [\"Name\"] = \"value\" }, not a list");
  size_t kn, vn;
  const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
  if (!v || !header_text_ok(k, kn, 1) || !header_text_ok(v, vn, 0))
    luaL_error(L, "bad header '%s': names and values are strings without CR, LF or NUL", k);
  return kn + 2 + vn + 1;
}

/* The headers table as "Name: value" lines in one userdata: the NULL-ended array, then
   the text. libcurl copies the lines when the transfer starts; the caller then wipes them
   (Authorization is among them). */
static const char **header_lines(lua_State *L, int opts, size_t *size) {
  size_t count = 0, text = 0, len;
  if (lua_getfield(L, opts, "headers") == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a table");
  int tbl = lua_gettop(L);
  for (lua_pushnil(L); lua_next(L, tbl); lua_pop(L, 1))
    if ((len = header_line_len(L)) > 0) count++, text += len;
  *size = sizeof(char *) * (count + 1) + text;
  const char **lines = lua_newuserdatauv(L, *size, 0);
  char *t = (char *)(lines + count + 1);
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, tbl); lua_pop(L, 1)) {   /* checked in the first pass */
    if (lua_isboolean(L, -1)) continue;
    size_t kn, vn;
    const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
    lines[i++] = t;
    memcpy(t, k, kn), t += kn;
    *t++ = ':', *t++ = ' ';
    memcpy(t, v, vn + 1), t += vn + 1;
  }
  lines[i] = NULL;
  lua_replace(L, tbl);   /* the userdata takes the headers table's slot */
  return lines;
}

static const char *const request_options[] = {
  "method", "url", "headers", "body", "timeout_ms", "connect_timeout_ms",
  "idle_timeout_ms", "max_body", "on_event", NULL
};

/* The options table -> rq, the callback's slot and max_body; values Lua must keep alive
   stay on the stack. */
static void read_request(lua_State *L, struct http_request *rq, int *on_event, size_t *max_body,
                         size_t *headers_size) {
  api_check_options(L, 1, request_options);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");                  /* slot 2 */
  rq->url = luaL_checkstring(L, 2);
  lua_getfield(L, 1, "body");                 /* slot 3 */
  rq->body = luaL_optlstring(L, 3, NULL, &rq->body_len);
  lua_getfield(L, 1, "method");               /* slot 4 */
  rq->method = luaL_optstring(L, 4, rq->body ? "POST" : "GET");
  lua_getfield(L, 1, "on_event");             /* slot 5 */
  luaL_argcheck(L, lua_isnil(L, 5) || lua_isfunction(L, 5), 1, "on_event must be a function");
  *on_event = lua_isnil(L, 5) ? 0 : 5;
  rq->headers = header_lines(L, 1, headers_size);   /* slot 6, if any */
  rq->timeout_ms = (long)api_opt_int(L, 1, "timeout_ms", 0, 0);
  rq->connect_timeout_ms = (long)api_opt_int(L, 1, "connect_timeout_ms", 0, 0);
  rq->idle_timeout_ms = (long)api_opt_int(L, 1, "idle_timeout_ms", 0, 0);
  *max_body = (size_t)api_opt_int(L, 1, "max_body", 32 << 20, 1);
  /* events are small and come one by one: a stream needs no 16 KiB receive buffer (1,000
     streams held by a gateway would pay 12 MiB for it) */
  rq->read_buffer = *on_event ? STREAM_READ_BUFFER : 0;
  rq->idle_by_line = *on_event != 0;   /* a byte a second must not hold an event stream open */
}

/* call:__close(), call:__gc(): cancel what still runs, free what is held */
static int call_free(lua_State *L) {
  struct call *c = luaL_checkudata(L, 1, MT_HTTP_CALL);
  http_cancel(c->x);
  c->x = NULL;
  c->task = NULL;
  sse_free(&c->sse);
  buf_free(&c->head);
  buf_free(&c->events);
  buf_free(&c->body);
  return 0;
}

/* After the transfer: the result table, or nil, message, kind. */
static int push_outcome(lua_State *L, struct call *c, const char *url) {
  struct http_error *err = &c->err;
  int kind = err->kind;
  if (kind == HTTP_STOPPED && c->too_large)
    kind = HTTP_TOO_LARGE, snprintf(err->message, sizeof err->message,
                                    "the answer from %s is larger than %zu bytes", url, c->body.max);
  else if (kind == HTTP_STOPPED && !c->cancelled)
    kind = HTTP_FAILED, snprintf(err->message, sizeof err->message, "bad answer from %s: %s", url,
                                 c->failed_sse ? sse_strerror(c->failed_sse) : "out of memory");
  if (kind != HTTP_OK && !c->cancelled) {
    lua_pushnil(L);
    lua_pushstring(L, err->message);
    lua_pushstring(L, http_kind_name(kind));
    return 3;
  }
  if (!c->head_pushed) push_head(L, c);
  api_box_push(L, &c->body);
  lua_setfield(L, S_RES, "body");
  if (c->cancelled) {
    lua_pushboolean(L, 1);
    lua_setfield(L, S_RES, "cancelled");
  }
  lua_pushvalue(L, S_RES);
  return 1;
}

/* Hand what has arrived to Lua (the head, then each event to on_event, which may wait in
   its turn), and wait for more until the transfer ends. */
static void take_result(lua_State *L, struct call *c) {   /* on_event's: false cancels */
  c->in_event = 0;
  c->cancelled = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
}

static int pump(lua_State *L, int status, lua_KContext ctx) {
  struct call *c = lua_touserdata(L, S_CALL);
  (void)status;
  c->task = NULL;
  if (c->in_event) take_result(L, c);   /* resumed after on_event waited */
  for (;;) {
    if (c->head_ready && !c->head_pushed) push_head(L, c);
    while (!c->cancelled && push_event(L, c)) {
      lua_pushvalue(L, S_ON_EVENT);
      lua_insert(L, -2);
      c->in_event = 1;
      lua_callk(L, 1, 1, ctx, pump);
      take_result(L, c);
    }
    if (c->cancelled && c->x) {
      http_cancel(c->x);
      c->x = NULL;
      c->err.kind = HTTP_STOPPED;
      c->done = 1;
    }
    if (c->done) break;
    if (c->x && c->events.len - c->taken == 0) http_resume(c->x);
    c->task = task_of(L);
    if (c->task) return task_yield(L, 0, ctx, pump);
    task_block(L, 0);
  }
  c->task = NULL;
  return push_outcome(L, c, lua_tostring(L, S_URL));
}

/* core.http.request{method=, url=, headers=, body=, timeout_ms=, connect_timeout_ms=,
     idle_timeout_ms=, max_body=, on_event=} -> {status=, headers=, body=} | nil, err, kind
   In a task it waits by yielding; elsewhere it turns the loop until the answer is in. */
static int l_http_request(lua_State *L) {
  struct http_request rq = { 0 };
  int on_event;
  size_t max_body, headers_size = 0;
  read_request(L, &rq, &on_event, &max_body, &headers_size);
  lua_settop(L, S_HEADERS);
  struct call *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  sse_init(&c->sse);
  c->body.max = max_body;
  c->sse_mode = on_event != 0;
  luaL_setmetatable(L, MT_HTTP_CALL);
  lua_toclose(L, S_CALL);
  lua_createtable(L, 0, 4);   /* S_RES */
  struct http_sink sink = { on_head, on_data, on_done, c };
  c->x = http_start(&rq, &sink, &c->err);
  if (rq.headers) secure_zero((void *)rq.headers, headers_size);   /* libcurl has its copy */
  if (!c->x) return push_outcome(L, c, rq.url);
  return pump(L, 0, 0);
}

int luaopen_core_http(lua_State *L) {
  static const luaL_Reg funcs[] = { { "request", l_http_request }, { NULL, NULL } };
  static const luaL_Reg call_methods[] = { { "__gc", call_free }, { "__close", call_free }, { NULL, NULL } };
  api_class(L, MT_HTTP_CALL, call_methods);
  luaL_newlib(L, funcs);
  return 1;
}
