/* core.json: lua-cjson with exact integers; decode reports bad input as nil, err. */
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

int luaopen_core_json(lua_State *L) {
  luaopen_cjson(L);
  int cjson = lua_gettop(L);
  lua_getfield(L, cjson, "decode_invalid_numbers");   /* strict JSON: no NaN, Inf or hex */
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_newtable(L);
  lua_getfield(L, cjson, "encode");
  lua_setfield(L, -2, "encode");
  lua_getfield(L, cjson, "decode");
  lua_pushcclosure(L, l_json_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, cjson, "null");
  lua_setfield(L, -2, "null");
  return 1;
}
