/* Unit tests for JSON numbers through the patched lua-cjson, and a runner for the upstream
   lua-cjson suite (test_json --upstream DIR). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <unistd.h>

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_cjson_safe);
  lua_setfield(L, -2, "cjson.safe");
  lua_pop(L, 1);
  return L;
}

static const char *const cases[][2] = {
  { "large integer encodes exactly", "return cjson.encode(123456789012345) == '123456789012345'" },
  { "2^53+1 encodes exactly", "return cjson.encode(9007199254740993) == '9007199254740993'" },
  { "maxinteger encodes exactly", "return cjson.encode(math.maxinteger) == '9223372036854775807'" },
  { "mininteger encodes exactly", "return cjson.encode(math.mininteger) == '-9223372036854775808'" },
  { "3 decodes as an integer", "return math.type(cjson.decode('3')) == 'integer'" },
  { "3.5 decodes as a float", "local v = cjson.decode('3.5') return math.type(v) == 'float' and v == 3.5" },
  { "3.0 stays a float", "return math.type(cjson.decode('3.0')) == 'float'" },
  { "1e2 stays a float", "return math.type(cjson.decode('1e2')) == 'float'" },
  { "2^53+1 decodes exactly", "return cjson.decode('9007199254740993') == 9007199254740993" },
  { "mininteger decodes exactly", "return cjson.decode('-9223372036854775808') == math.mininteger" },
  { "beyond 64 bits decodes as a float", "return math.type(cjson.decode('92233720368547758080')) == 'float'" },
  { "3.5 encodes as 3.5", "return cjson.encode(3.5) == '3.5'" },
  { "integers round-trip inside tables",
    "local t = cjson.decode(cjson.encode({ expires_at = 1732480000123, n = -5, f = 0.25 }))"
    " return t.expires_at == 1732480000123 and math.type(t.n) == 'integer' and t.f == 0.25" },
  { "integers in arrays", "return cjson.encode({ 1, 2, 3 }) == '[1,2,3]'" },
};

int main(int argc, char **argv) {
  if (argc == 3) {   /* --upstream DIR: run lua-cjson's own test.lua there */
    lua_State *L = new_state();
    if (chdir(argv[2]) != 0) return perror(argv[2]), 1;
    (void)luaL_dostring(L, "package.path = '../lua/?.lua;' .. package.path "
                     "arg = { 'example1.json', 'example2.json', 'example3.json', 'example4.json', "
                     "'example5.json', 'numbers.json', 'rfc-example1.json', 'rfc-example2.json', "
                     "'types.json' }");
    int rc = luaL_dofile(L, "test.lua");
    if (rc != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return rc != LUA_OK;
  }
  int failures = 0, n = (int)(sizeof cases / sizeof cases[0]);
  lua_State *L = new_state();
  (void)luaL_dostring(L, "cjson = require 'cjson'");
  for (int i = 0; i < n; i++) {
    int ok = luaL_dostring(L, cases[i][1]) == LUA_OK && lua_toboolean(L, -1);
    if (!ok) failures++;
    printf("%s - json: %s\n", ok ? "ok" : "not ok", cases[i][0]);
    lua_settop(L, 0);
  }
  lua_close(L);
  printf("# json: %d of %d passed\n", n - failures, n);
  return failures != 0;
}
