/* The `core` module: its submodules, the version and the user's Lua directory. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

void api_check_options(lua_State *L, int idx, const char *const known[]) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; known[i] && !ok; i++) ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
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

lua_Integer api_opt_int(lua_State *L, int idx, const char *key, lua_Integer def) {
  lua_getfield(L, idx, key);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum) luaL_error(L, "option '%s' must be an integer", key);
  }
  lua_pop(L, 1);
  return v;
}

static const struct { const char *name; lua_CFunction open; } submodules[] = {
  { "http", luaopen_core_http }, { "json", luaopen_core_json }, { "fs", luaopen_core_fs },
  { "log", luaopen_core_log },   { "proc", luaopen_core_proc }, { "token", luaopen_core_token },
  { NULL, NULL }
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
