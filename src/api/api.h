/* The Lua module `core` and its submodules, one file each under src/api/. */
#ifndef KIMICTL_API_H
#define KIMICTL_API_H
#include "buf.h"

#include <lua.h>
#include <lauxlib.h>

#define MT_LOCK "kimictl.Lock"
#define MT_BOX "kimictl.Buffer"
#define MT_HTTP_CALL "kimictl.HttpCall"
#define MT_CHILD "kimictl.Child"

int luaopen_core(lua_State *L);
int luaopen_core_http(lua_State *L);
int luaopen_core_json(lua_State *L);
int luaopen_core_fs(lua_State *L);
int luaopen_core_log(lua_State *L);
int luaopen_core_proc(lua_State *L);
int luaopen_core_lock(lua_State *L);
int luaopen_core_hash(lua_State *L);
int luaopen_cjson(lua_State *L);   /* from lua-cjson */

/* Raise an error naming an option that the function does not know. */
void api_check_options(lua_State *L, int idx, const char *const known[]);
/* Register a metatable NAME whose methods are also its __index. */
void api_class(lua_State *L, const char *name, const luaL_Reg *methods);
/* Optional integer field of an options table, at least min (0 or 1); an argument error
   naming the field otherwise ("timeout_ms must be a non-negative integer"). */
lua_Integer api_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer min);

/* A failure of the world: pushes nil, "what: strerror(errno)" and errno's name; returns 3. */
int api_fail(lua_State *L, const char *what);
/* The same with a message of the binding's own for error number e. */
int api_fail_with(lua_State *L, int e, const char *message);
/* "ENOENT", "EACCES", ...; "EIO" for a number outside the list. */
const char *api_errno_name(int e);

/* A buffer owned by a new userdata (pushed): collected or closed, it is wiped and freed, so
   a Lua error between filling it and pushing its contents leaks nothing. */
struct buf *api_box(lua_State *L, size_t max);
/* Push the buffer's contents as a string, then wipe and free the buffer. */
void api_box_push(lua_State *L, struct buf *b);

#endif
