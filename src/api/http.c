/* core.http: HTTP requests from Lua, with server-sent events delivered as they arrive. */
#include "api.h"
#include "http.h"
#include "sse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* One request in flight, in a userdata whose __gc frees the parser and the body, whatever
   raises; stack slots hold what Lua must keep alive. */
struct call {
  lua_State *L;
  int on_event;          /* stack index of the callback, or 0 */
  int res;               /* stack index of the result table, filled by on_head */
  int err;               /* stack index of an error raised by on_event, else nil */
  int sse_mode, cancelled, failed_sse, too_large;
  struct sse sse;
  struct buf body;       /* a collected (non-SSE) body; body.max is max_body */
};

static int in_request;   /* libcurl forbids driving the multi handle from its own callback */

static void push_headers(lua_State *L, const char *p, size_t n) {
  lua_newtable(L);
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

/* The Lua side of on_head and on_sse_event runs inside lua_pcall (a memory error
   too), so that nothing ever longjmps through libcurl's frames. */
struct head { struct call *c; long status; const char *p; size_t len; };

static int head_to_lua(lua_State *L) {   /* (head, res) */
  struct head *h = lua_touserdata(L, 1);
  struct call *c = h->c;
  lua_pushinteger(L, h->status);
  lua_setfield(L, 2, "status");
  push_headers(L, h->p, h->len);
  lua_getfield(L, -1, "content-type");
  const char *ct = lua_tostring(L, -1);
  c->sse_mode = c->on_event && h->status >= 200 && h->status < 300 && ct &&
                strncasecmp(ct, "text/event-stream", 17) == 0;
  lua_pop(L, 1);
  lua_setfield(L, 2, "headers");
  return 0;
}

static int on_head(void *ud, long status, const char *p, size_t len) {
  struct head h = { ud, status, p, len };
  struct call *c = ud;
  lua_pushcfunction(c->L, head_to_lua);
  lua_pushlightuserdata(c->L, &h);
  lua_pushvalue(c->L, c->res);
  if (lua_pcall(c->L, 2, 0, 0) != LUA_OK) {
    lua_replace(c->L, c->err);
    return 1;
  }
  return 0;
}

static int event_to_lua(lua_State *L) {   /* (event, on_event) */
  const struct sse_event *ev = lua_touserdata(L, 1);
  lua_pushvalue(L, 2);
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, ev->type, ev->type_len);
  lua_setfield(L, -2, "event");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  lua_pushlstring(L, ev->id, ev->id_len);
  lua_setfield(L, -2, "id");
  if (ev->retry >= 0) {
    lua_pushinteger(L, ev->retry);
    lua_setfield(L, -2, "retry");
  }
  lua_call(L, 1, 1);
  return 1;
}

static int on_sse_event(void *ud, const struct sse_event *ev) {
  struct call *c = ud;
  lua_State *L = c->L;
  lua_pushcfunction(L, event_to_lua);
  lua_pushlightuserdata(L, (void *)ev);
  lua_pushvalue(L, c->on_event);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    lua_replace(L, c->err);
    return 1;
  }
  c->cancelled = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return c->cancelled;
}

static int on_data(void *ud, const char *p, size_t n) {
  struct call *c = ud;
  if (c->sse_mode) {   /* events are handed on, not kept: no size limit */
    int rc = sse_feed(&c->sse, p, n, on_sse_event, c);
    if (rc < 0) c->failed_sse = rc;
    return rc != SSE_OK;
  }
  if (buf_add(&c->body, p, n) == 0) return 0;
  c->too_large = errno == EFBIG;
  return 1;
}

/* The headers table as "Name: value" lines in a userdata array (freed by the GC). */
static const char **header_lines(lua_State *L, int opts) {
  int n = 0;
  if (lua_getfield(L, opts, "headers") == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a table");
  int tbl = lua_gettop(L);
  for (lua_pushnil(L); lua_next(L, tbl); lua_pop(L, 1)) n++;
  const char **lines = lua_newuserdatauv(L, sizeof *lines * (size_t)(n + 1), 1);
  lua_newtable(L);   /* keeps the line strings alive */
  lua_setiuservalue(L, -2, 1);
  lua_getiuservalue(L, -1, 1);
  int keep = lua_gettop(L), i = 0;
  for (lua_pushnil(L); lua_next(L, tbl); lua_pop(L, 1)) {
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) continue;   /* false removes a header */
    if (lua_type(L, -2) != LUA_TSTRING)   /* checked first: lua_tostring would change the key */
      luaL_error(L, "bad headers: use { [\"Name\"] = \"value\" }, not a list");
    const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
    if (!v || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
      luaL_error(L, "bad header '%s': names and values are strings without CR or LF", k);
    lua_pushfstring(L, "%s: %s", k, v);
    lines[i++] = lua_tostring(L, -1);
    lua_rawseti(L, keep, i);
  }
  lines[i] = NULL;
  lua_pop(L, 1);       /* the keep table; the userdata stays on the stack */
  lua_replace(L, tbl); /* and takes the headers table's slot */
  return lines;
}

static const char *const request_options[] = {
  "method", "url", "headers", "body", "timeout_ms", "connect_timeout_ms",
  "idle_timeout_ms", "max_body", "on_event", NULL
};

/* The options table -> rq, the callback's slot and max_body; values Lua must keep alive
   stay on the stack. */
static void read_request(lua_State *L, struct http_request *rq, int *on_event, size_t *max_body) {
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
  rq->headers = header_lines(L, 1);           /* slot 6, if any */
  rq->timeout_ms = (long)api_opt_int(L, 1, "timeout_ms", 0, 0);
  rq->connect_timeout_ms = (long)api_opt_int(L, 1, "connect_timeout_ms", 0, 0);
  rq->idle_timeout_ms = (long)api_opt_int(L, 1, "idle_timeout_ms", 0, 0);
  *max_body = (size_t)api_opt_int(L, 1, "max_body", 32 << 20, 1);
}

/* call:__gc() */
static int call_free(lua_State *L) {
  struct call *c = luaL_checkudata(L, 1, MT_HTTP_CALL);
  sse_free(&c->sse);
  buf_free(&c->body);
  return 0;
}

/* The call's userdata, then its result table and error slot, on the stack. */
static struct call *new_call(lua_State *L, int on_event, size_t max_body) {
  struct call *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  sse_init(&c->sse);
  luaL_setmetatable(L, MT_HTTP_CALL);
  c->L = L;
  c->on_event = on_event;
  c->body.max = max_body;
  lua_newtable(L);
  c->res = lua_gettop(L);
  lua_pushnil(L);
  c->err = lua_gettop(L);
  return c;
}

/* After the transfer: the result table, or nil, message, kind. */
static int push_outcome(lua_State *L, struct call *c, int kind, struct http_error *err, const char *url) {
  if (kind == HTTP_STOPPED && c->too_large)
    kind = HTTP_TOO_LARGE, snprintf(err->message, sizeof err->message,
                                    "the answer from %s is larger than %zu bytes", url, c->body.max);
  else if (kind == HTTP_STOPPED && !c->cancelled)
    kind = HTTP_FAILED, snprintf(err->message, sizeof err->message, "bad answer from %s: %s", url,
                                 c->failed_sse ? sse_strerror(c->failed_sse) : "out of memory");
  if (kind != HTTP_OK && !(kind == HTTP_STOPPED && c->cancelled)) {
    lua_pushnil(L);
    lua_pushstring(L, err->message);
    lua_pushstring(L, http_kind_name(kind));
    return 3;
  }
  api_box_push(L, &c->body);
  lua_setfield(L, c->res, "body");
  if (c->cancelled) {
    lua_pushboolean(L, 1);
    lua_setfield(L, c->res, "cancelled");
  }
  lua_pushvalue(L, c->res);
  return 1;
}

/* core.http.request{method=, url=, headers=, body=, timeout_ms=, connect_timeout_ms=,
     idle_timeout_ms=, max_body=, on_event=} -> {status=, headers=, body=} | nil, err, kind */
static int l_http_request(lua_State *L) {
  struct http_request rq = { 0 };
  struct http_error err;
  int on_event;
  size_t max_body;
  read_request(L, &rq, &on_event, &max_body);
  if (in_request) return luaL_error(L, "core.http.request cannot be called from inside on_event");
  struct call *c = new_call(L, on_event, max_body);
  struct http_sink sink = { on_head, on_data, c };
  in_request = 1;
  int kind = http_perform(&rq, &sink, &err);
  in_request = 0;
  if (!lua_isnil(L, c->err)) {   /* on_event raised: raise it again, now that curl is done */
    lua_pushvalue(L, c->err);
    return lua_error(L);
  }
  return push_outcome(L, c, kind, &err, rq.url);
}

int luaopen_core_http(lua_State *L) {
  static const luaL_Reg funcs[] = { { "request", l_http_request }, { NULL, NULL } };
  static const luaL_Reg call_methods[] = { { "__gc", call_free }, { NULL, NULL } };
  api_class(L, MT_HTTP_CALL, call_methods);
  luaL_newlib(L, funcs);
  return 1;
}
