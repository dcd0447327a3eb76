/* libFuzzer target for kimictl's Lua: FUZZ_LUA names a script (tests/fuzz/lua/NAME.lua) that
   returns function(input). It runs in kimictl's own Lua world (the embedded modules, core);
   any error it raises is a finding: the scripts catch what the code under test may rightly
   refuse, and check what must hold with assert. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *script = getenv("FUZZ_LUA");
  if (!script) {
    fputs("fuzz_lua: set FUZZ_LUA to a script, e.g. tests/fuzz/lua/json.lua\n", stderr);
    abort();
  }
  if (!(L = luaL_newstate())) abort();
  api_open(L);
  if (luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz_lua: %s: %s\n", script, lua_isstring(L, -1) ? lua_tostring(L, -1) : "must return a function");
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz");
  return 0;
}

static int traceback(lua_State *l) {
  luaL_traceback(l, l, lua_tostring(l, 1), 1);
  return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  lua_pushcfunction(L, traceback);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
    fprintf(stderr, "fuzz_lua: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  return 0;
}
