/* The Lua module `core` and its submodules, one file each under src/api/. */
#ifndef KIMICTL_API_H
#define KIMICTL_API_H
#include <lua.h>
#include <lauxlib.h>

#define MT_LOCK "kimictl.Lock"
#define MT_TOKEN_LOCK "kimictl.TokenLock"

int luaopen_core(lua_State *L);
int luaopen_core_http(lua_State *L);
int luaopen_core_json(lua_State *L);
int luaopen_core_fs(lua_State *L);
int luaopen_core_log(lua_State *L);
int luaopen_core_proc(lua_State *L);
int luaopen_core_token(lua_State *L);
int luaopen_cjson(lua_State *L);   /* from lua-cjson */

/* Raise an error naming an option that the function does not know. */
void api_check_options(lua_State *L, int idx, const char *const known[]);
/* Register a metatable NAME whose methods are also its __index. */
void api_class(lua_State *L, const char *name, const luaL_Reg *methods);
/* Optional integer field of an options table. */
lua_Integer api_opt_int(lua_State *L, int idx, const char *key, lua_Integer def);

#endif
