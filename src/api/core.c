/* The `core` module: its submodules, the version, the user's Lua directory, and the
   helpers every binding shares (options, failures, buffers). */
#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void api_check_options(lua_State *L, int idx, const char *const known[]) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; known[i] && !ok; i++) ok = k[0] == known[i][0] && strcmp(k, known[i]) == 0;
    }
    if (!ok) {
      lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL));
      luaL_argerror(L, idx, lua_tostring(L, -1));
    }
  }
}

void api_class(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

lua_Integer api_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer min) {
  int isint = 0;
  lua_Integer v = def;
  if (lua_getfield(L, idx, key) == LUA_TNIL) isint = 1;
  else if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);   /* 5.0 is 5; 1.5 is not */
  if (!isint || v < min) {
    const char *what = min > 0 ? "positive" : "non-negative";
    luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a %s integer", key, what));
  }
  lua_pop(L, 1);
  return v;
}

const char *api_errno_name(int e) {
  static const struct { int e; const char *name; } names[] = {
    { ENOENT, "ENOENT" }, { EACCES, "EACCES" }, { EPERM, "EPERM" }, { EEXIST, "EEXIST" },
    { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" }, { ENOSPC, "ENOSPC" }, { EROFS, "EROFS" },
    { ETIMEDOUT, "ETIMEDOUT" }, { EINTR, "EINTR" }, { ENAMETOOLONG, "ENAMETOOLONG" },
    { ELOOP, "ELOOP" }, { EIO, "EIO" }
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (names[i].e == e) return names[i].name;
  return "EIO";
}

int api_fail_with(lua_State *L, int e, const char *message) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  lua_pushstring(L, api_errno_name(e));
  return 3;
}

int api_fail(lua_State *L, const char *what) {
  int e = errno;
  return api_fail_with(L, e, lua_pushfstring(L, "%s: %s", what, strerror(e)));
}

/* box:__gc(), box:__close() */
static int box_free(lua_State *L) {
  buf_free(luaL_checkudata(L, 1, MT_BOX));
  return 0;
}

struct buf *api_box(lua_State *L, size_t max) {
  struct buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  b->max = max;
  if (luaL_newmetatable(L, MT_BOX)) {
    static const luaL_Reg methods[] = { { "__gc", box_free }, { "__close", box_free }, { NULL, NULL } };
    luaL_setfuncs(L, methods, 0);
  }
  lua_setmetatable(L, -2);
  return b;
}

void api_box_push(lua_State *L, struct buf *b) {
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  buf_free(b);
}

static const struct { const char *name; lua_CFunction open; } submodules[] = {
  { "http", luaopen_core_http }, { "json", luaopen_core_json }, { "fs", luaopen_core_fs },
  { "log", luaopen_core_log },   { "proc", luaopen_core_proc }, { "lock", luaopen_core_lock },
  { "loop", luaopen_core_loop }, { "server", luaopen_core_server }, { "hash", luaopen_core_hash },
  { "edit", luaopen_core_edit }, { NULL, NULL }
};

/* The user's Lua directory: $KIMICTL_LUA_DIR, $XDG_CONFIG_HOME/kimictl/lua, ~/.config/kimictl/lua. */
static void push_lua_dir(lua_State *L) {
  const char *dir = getenv("KIMICTL_LUA_DIR");
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  if (dir && *dir) lua_pushstring(L, dir);
  else if (xdg && *xdg) lua_pushfstring(L, "%s/kimictl/lua", xdg);
  else if (home && *home) lua_pushfstring(L, "%s/.config/kimictl/lua", home);
  else lua_pushnil(L);
}

int luaopen_core(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; submodules[i].name; i++) {
    lua_pushfstring(L, "core.%s", submodules[i].name);
    luaL_requiref(L, lua_tostring(L, -1), submodules[i].open, 0);
    lua_setfield(L, -3, submodules[i].name);
    lua_pop(L, 1);
  }
  lua_pushstring(L, KIMICTL_VERSION);
  lua_setfield(L, -2, "version");
  push_lua_dir(L);
  lua_setfield(L, -2, "lua_dir");
  return 1;
}
