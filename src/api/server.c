/* core.server: an HTTP server whose every request is a Lua task. A request that raises is
   logged with its traceback and answered 500 (or its stream closed); the server goes on. */
#include "api.h"
#include "clock.h"
#include "log.h"
#include "server.h"

#include <string.h>

struct lserver {
  struct server *s;
  lua_State *G;        /* the main thread: tasks are made from it */
  int handler;         /* registry ref of the handler */
};

/* One request: its answer's state, reachable from the connection while it is answered. */
struct lreq {
  struct srv_conn *c;  /* NULL once the client is gone or the answer is finished */
  struct task *task, *writer;
  int started, self;   /* self: registry ref that keeps this userdata alive while it runs */
  lua_State *G;
};

static struct lreq *check_req(lua_State *L) { return luaL_checkudata(L, 1, MT_RESPONSE); }

/* --- the server's callbacks (inside libuv: they only store, spawn and wake) */

static void push_headers(lua_State *L, const struct srv_request *rq) {
  int n = 0;   /* pairs: the table is made its final size at once */
  for (const char *p = rq->headers, *end = p + rq->headers_len; p < end; p++) n += *p == '\0';
  lua_createtable(L, 0, n / 2);
  for (const char *p = rq->headers, *end = p + rq->headers_len; p < end;) {
    const char *v = p + strlen(p) + 1;
    if (v >= end) break;
    lua_pushstring(L, p);
    if (lua_rawget(L, -2) == LUA_TSTRING) {   /* repeated: joined with ", " */
      lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), v);
      lua_remove(L, -2);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, v);
    }
    lua_setfield(L, -2, p);
    p = v + strlen(v) + 1;
  }
}

static void push_request(lua_State *L, const struct srv_request *rq) {
  const char *q = strchr(rq->target, '?');
  lua_createtable(L, 0, 6);
  lua_pushstring(L, rq->method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, rq->target, q ? (size_t)(q - rq->target) : strlen(rq->target));
  lua_setfield(L, -2, "path");
  lua_pushstring(L, q ? q + 1 : "");
  lua_setfield(L, -2, "query");
  push_headers(L, rq);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, rq->body, rq->body_len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, rq->peer);
  lua_setfield(L, -2, "peer");
}

static void request_end(lua_State *co, int status, void *ud);

/* In a protected call, so that a memory error never unwinds through libuv. */
static int spawn_request(lua_State *L) {
  struct lserver *ls = lua_touserdata(L, 1);
  struct srv_conn *c = lua_touserdata(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ls->handler);
  push_request(L, srv_request(c));
  struct lreq *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->self = LUA_NOREF;
  luaL_setmetatable(L, MT_RESPONSE);
  r->G = ls->G;
  lua_pushvalue(L, -1);
  r->self = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!(r->task = task_spawn(L, 2, request_end, r))) return luaL_error(L, "out of memory");
  r->c = c;
  srv_set_data(c, r);
  return 0;
}

static void on_request(struct srv_conn *c, void *ud) {
  struct lserver *ls = ud;
  lua_State *L = ls->G;
  lua_pushcfunction(L, spawn_request);
  lua_pushlightuserdata(L, ls);
  lua_pushlightuserdata(L, c);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    log_msg(LOG_ERROR, "cannot start a request: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    srv_respond(c, 503, "Content-Type: application/json\r\n",
                "{\"error\":{\"message\":\"kimictl is out of memory\",\"type\":\"server_error\"}}", 66);
  }
}

static void on_drain(struct srv_conn *c, void *ud) {
  struct lreq *r = srv_data(c);
  (void)ud;
  if (r && r->writer) task_wake(r->writer);
}

static void on_close(struct srv_conn *c, void *ud) {
  struct lreq *r = srv_data(c);
  (void)ud;
  if (!r) return;
  r->c = NULL;
  if (r->writer) task_wake(r->writer);
  if (r->task) task_kill(r->task);   /* the client left: its upstream transfer goes too */
}

static const char internal_error[] =
  "{\"error\":{\"message\":\"kimictl failed while answering (its log says where)\",\"type\":\"server_error\"}}";

/* The task ended: an answer left open is completed (or, if it raised, failed) here. */
static void request_end(lua_State *co, int status, void *ud) {
  struct lreq *r = ud;
  if (status != LUA_OK && status != TASK_KILLED) {
    luaL_traceback(co, co, luaL_tolstring(co, -1, NULL), 0);
    log_msg(LOG_ERROR, "a request failed: %s", lua_tostring(co, -1));
    lua_pop(co, 2);
  }
  if (r->c) {
    struct srv_conn *c = r->c;
    srv_set_data(c, NULL);
    r->c = NULL;
    if (r->started && status == LUA_OK) srv_finish(c);
    else if (r->started) srv_abort(c);   /* a stream cut short must not look complete */
    else srv_respond(c, 500, "Content-Type: application/json\r\n", internal_error, sizeof internal_error - 1);
  }
  r->task = NULL;
  luaL_unref(r->G, LUA_REGISTRYINDEX, r->self);
}

/* --- the answer, from Lua */

/* The headers table as "Name: value\r\n" lines, pushed. */
static const char *header_lines(lua_State *L, int idx) {
  lua_pushliteral(L, "");
  int acc = lua_gettop(L);
  if (lua_isnoneornil(L, idx)) return "";
  luaL_checktype(L, idx, LUA_TTABLE);
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!k || !v || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
      luaL_error(L, "bad header: use { [\"Name\"] = \"value\" } without CR or LF");
    lua_pushvalue(L, acc);
    lua_pushfstring(L, "%s: %s\r\n", k, v);
    lua_concat(L, 2);
    lua_replace(L, acc);
  }
  return lua_tostring(L, acc);
}

static int gone(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "the client has gone");
  return 2;
}

/* res:respond(status, headers, body) -> true | nil, err */
static int l_res_respond(lua_State *L) {
  struct lreq *r = check_req(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t len;
  const char *body = luaL_optlstring(L, 4, "", &len);
  luaL_argcheck(L, !r->started, 1, "the answer has already started");
  const char *headers = header_lines(L, 3);
  if (!r->c) return gone(L);
  struct srv_conn *c = r->c;
  srv_set_data(c, NULL);
  r->c = NULL;
  if (srv_respond(c, status, headers, body, len) != 0) return gone(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:start(status, headers) -> true | nil, err: a chunked answer (a stream) begins */
static int l_res_start(lua_State *L) {
  struct lreq *r = check_req(L);
  int status = (int)luaL_checkinteger(L, 2);
  luaL_argcheck(L, !r->started, 1, "the answer has already started");
  const char *headers = header_lines(L, 3);
  if (!r->c) return gone(L);
  r->started = 1;
  if (srv_start(r->c, status, headers) != 0) return gone(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:write(bytes) -> true | nil, err: waits while the client is behind */
static int write_k(lua_State *L, int status, lua_KContext ctx) {
  struct lreq *r = lua_touserdata(L, 1);
  (void)status;
  r->writer = NULL;
  while (r->c && srv_queued(r->c) > (size_t)ctx) {
    if (!(r->writer = task_of(L))) break;   /* outside a task: the queue just grows */
    return task_yield(L, 0, ctx, write_k);
  }
  if (!r->c) return gone(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_res_write(lua_State *L) {
  struct lreq *r = check_req(L);
  const char *p[SRV_PIECES_MAX];
  size_t n[SRV_PIECES_MAX];
  int count = lua_gettop(L) - 1;
  luaL_argcheck(L, count >= 1 && count <= SRV_PIECES_MAX, count < 1 ? 2 : SRV_PIECES_MAX + 2,
                "res:write takes 1 to 8 strings");
  for (int i = 0; i < count; i++) p[i] = luaL_checklstring(L, i + 2, &n[i]);
  luaL_argcheck(L, r->started, 1, "res:start() comes first");
  if (!r->c) return gone(L);
  int rc = srv_writev(r->c, p, n, count);
  if (rc < 0) return gone(L);
  return write_k(L, 0, rc == 1 ? (lua_KContext)(256 * 1024) : (lua_KContext)SIZE_MAX);
}

/* res:finish() -> true | nil, err */
static int l_res_finish(lua_State *L) {
  struct lreq *r = check_req(L);
  luaL_argcheck(L, r->started, 1, "res:start() comes first");
  if (!r->c) return gone(L);
  struct srv_conn *c = r->c;
  srv_set_data(c, NULL);
  r->c = NULL;
  if (srv_finish(c) != 0) return gone(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:closed() -> true when the client has gone or the answer is complete */
static int l_res_closed(lua_State *L) {
  lua_pushboolean(L, check_req(L)->c == NULL);
  return 1;
}

/* res:__gc(): a request dropped unanswered closes its connection */
static int l_res_gc(lua_State *L) {
  struct lreq *r = check_req(L);
  if (r->c) {
    srv_set_data(r->c, NULL);
    srv_abort(r->c);
    r->c = NULL;
  }
  return 0;
}

/* --- the server */

static const char *const listen_options[] = {
  "host", "port", "max_header", "max_body", "header_timeout_ms", "idle_timeout_ms", "handler", NULL
};

/* core.server.listen{host=, port=, max_header=, max_body=, header_timeout_ms=,
     idle_timeout_ms=, handler=function(req, res)} -> server | nil, err */
static int l_server_listen(lua_State *L) {
  struct server_config cfg = { 0 };
  char err[256];
  api_check_options(L, 1, listen_options);
  lua_getfield(L, 1, "host");
  cfg.host = luaL_optstring(L, -1, "127.0.0.1");
  cfg.port = (int)api_opt_int(L, 1, "port", 0, 0);
  luaL_argcheck(L, cfg.port <= 65535, 1, "port must be at most 65535");
  cfg.max_header = (size_t)api_opt_int(L, 1, "max_header", 16 * 1024, 1);
  cfg.max_body = (size_t)api_opt_int(L, 1, "max_body", 8 << 20, 1);
  cfg.header_timeout_ms = (long)api_opt_int(L, 1, "header_timeout_ms", 10000, 1);
  cfg.idle_timeout_ms = (long)api_opt_int(L, 1, "idle_timeout_ms", 75000, 1);
  cfg.write_high = 1 << 20;
  cfg.write_low = 256 * 1024;
  cfg.on_request = on_request, cfg.on_drain = on_drain, cfg.on_close = on_close;
  lua_getfield(L, 1, "handler");
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "handler must be a function");
  struct lserver *ls = lua_newuserdatauv(L, sizeof *ls, 1);
  memset(ls, 0, sizeof *ls);
  luaL_setmetatable(L, MT_SERVER);
  cfg.ud = ls;
  if (server_listen(&ls->s, &cfg, err, sizeof err) != 0) return api_fail_with(L, 0, err);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  ls->G = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, -2);
  ls->handler = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static struct lserver *check_server(lua_State *L) {
  struct lserver *ls = luaL_checkudata(L, 1, MT_SERVER);
  luaL_argcheck(L, ls->s != NULL, 1, "the server is closed");
  return ls;
}

/* server:port() */
static int l_server_port(lua_State *L) {
  lua_pushinteger(L, server_port(check_server(L)->s));
  return 1;
}

/* server:active() -> requests being answered */
static int l_server_active(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)server_active(check_server(L)->s));
  return 1;
}

/* server:stop(): accept nothing more; answers in progress go on */
static int l_server_stop(lua_State *L) {
  server_stop(check_server(L)->s);
  return 0;
}

/* server:close(), also on collection: every connection closes now */
static int l_server_close(lua_State *L) {
  struct lserver *ls = luaL_checkudata(L, 1, MT_SERVER);
  if (!ls->s) return 0;
  server_close(ls->s);
  ls->s = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, ls->handler);
  return 0;
}

int luaopen_core_server(lua_State *L) {
  static const luaL_Reg funcs[] = { { "listen", l_server_listen }, { NULL, NULL } };
  static const luaL_Reg server_methods[] = {
    { "port", l_server_port }, { "active", l_server_active }, { "stop", l_server_stop },
    { "close", l_server_close }, { "__gc", l_server_close }, { "__close", l_server_close }, { NULL, NULL }
  };
  static const luaL_Reg res_methods[] = {
    { "respond", l_res_respond }, { "start", l_res_start }, { "write", l_res_write },
    { "finish", l_res_finish }, { "closed", l_res_closed }, { "__gc", l_res_gc }, { NULL, NULL }
  };
  api_class(L, MT_SERVER, server_methods);
  api_class(L, MT_RESPONSE, res_methods);
  luaL_newlib(L, funcs);
  return 1;
}
