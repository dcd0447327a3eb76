/* The Lua world kimictl runs in: the standard libraries, then `require` that finds a module
   in the user's Lua directory before the copy embedded in the binary. */
#include "api.h"
#include "embed.h"

#include <lualib.h>
#include <string.h>
#include <unistd.h>

static const struct embedded_file *find_embedded(const char *name) {
  for (const struct embedded_file *f = embedded_lua; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* package.searchers entry: "a.b" is a/b.lua in the user's directory, else the embedded copy.
   The chunk name says which copy ran. Upvalue 1: the user's directory, or nil. */
static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *dir = lua_tostring(L, lua_upvalueindex(1));
  const char *rel = lua_pushfstring(L, "%s.lua", luaL_gsub(L, name, ".", "/"));
  if (dir) {
    const char *path = lua_pushfstring(L, "%s/%s", dir, rel);
    if (access(path, F_OK) == 0) {
      if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return luaL_error(L, "error loading your override of '%s':\n\t%s", name, lua_tostring(L, -1));
      lua_pushstring(L, path);
      return 2;
    }
  }
  const struct embedded_file *f = find_embedded(rel);
  if (f) {
    const char *chunk = lua_pushfstring(L, "@embedded/%s", rel);
    if (luaL_loadbufferx(L, (const char *)f->data, f->len, chunk, "t") != LUA_OK)
      return lua_error(L);
    lua_pushstring(L, chunk + 1);
    return 2;
  }
  lua_pushfstring(L, "no file '%s/%s' and no embedded '%s'", dir ? dir : "(no Lua directory)", rel, rel);
  return 1;
}

/* core.embedded() -> the names of the embedded files ("providers/kimi.lua", ...) */
static int embedded_names(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; embedded_lua[i].name; i++) {
    lua_pushstring(L, embedded_lua[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Keep package.preload, then our searcher: LUA_PATH and C modules play no part. */
void api_open(lua_State *L) {
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_rawgeti(L, -1, 1);
  lua_newtable(L);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  luaL_requiref(L, "core", luaopen_core, 0);
  lua_pushcfunction(L, embedded_names);
  lua_setfield(L, -2, "embedded");
  lua_getfield(L, -1, "lua_dir");
  lua_pushcclosure(L, searcher, 1);
  lua_rawseti(L, -3, 2);
  lua_pop(L, 1);                     /* core */
  lua_setfield(L, -3, "searchers");  /* the new list */
  lua_pop(L, 2);                     /* old list, package */
}
