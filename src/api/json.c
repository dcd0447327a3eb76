/* core.json: lua-cjson with exact integers, plain "/", valid UTF-8 and real empty arrays;
   decode reports bad input as nil, err and keeps every array an array. */
#include "api.h"

/* core.json.decode(s) -> value | nil, err */
static int l_json_decode(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON: %s", lua_tostring(L, -2));
    return 2;
  }
  return 1;
}

/* core.json.array(t) -> t, with array_mt set: encodes as a JSON array, [] when empty */
static int l_json_array(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, 1);
  return 1;
}

/* Call cjson[name](on) on the cjson table at index cjson. */
static void set_option(lua_State *L, int cjson, const char *name, int on) {
  lua_getfield(L, cjson, name);
  lua_pushboolean(L, on);
  lua_call(L, 1, 0);
}

int luaopen_core_json(lua_State *L) {
  luaopen_cjson(L);
  int cjson = lua_gettop(L);
  set_option(L, cjson, "decode_invalid_numbers", 0);      /* strict JSON: no NaN, Inf or hex */
  set_option(L, cjson, "decode_array_with_array_mt", 1);  /* a decoded [] encodes back as [] */
  lua_newtable(L);
  lua_getfield(L, cjson, "encode");
  lua_setfield(L, -2, "encode");
  lua_getfield(L, cjson, "decode");
  lua_pushcclosure(L, l_json_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, cjson, "null");
  lua_setfield(L, -2, "null");
  lua_getfield(L, cjson, "array_mt");   /* a table with this metatable encodes as an array */
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "array_mt");
  lua_pushcclosure(L, l_json_array, 1);
  lua_setfield(L, -2, "array");
  lua_getfield(L, cjson, "empty_array");   /* encodes as [] */
  lua_setfield(L, -2, "empty_array");
  return 1;
}
