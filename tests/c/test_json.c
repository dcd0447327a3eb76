/* Unit tests for our lua-cjson patches (vendor/patches/cjson: exact integers, plain "/", valid
   UTF-8, empty arrays), and a runner for the upstream lua-cjson suite (test_json --upstream DIR).
   The UTF-8 cases in full, and core.json on top of cjson, are in tests/lua/test_json.lua. */
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
  { "a 16-digit float encodes exactly", "return cjson.encode(1764000000.123456) == '1764000000.123456'" },
  { "every float reads back the same",
    "for _, x in ipairs({ 0.1, 1/3, 2^60 + 0.0, 5e-324, 1.7976931348623157e308, 1.2345678901234567e19 }) do"
    " if cjson.decode(cjson.encode(x)) ~= x then return false end end return true" },
  { "0.1 stays short", "return cjson.encode(0.1) == '0.1'" },
  { "integers round-trip inside tables",
    "local t = cjson.decode(cjson.encode({ expires_at = 1732480000123, n = -5, f = 0.25 }))"
    " return t.expires_at == 1732480000123 and math.type(t.n) == 'integer' and t.f == 0.25" },
  { "integers in arrays", "return cjson.encode({ 1, 2, 3 }) == '[1,2,3]'" },
  { "/ encodes plain", "return cjson.encode('https://a/b') == '\"https://a/b\"'" },
  { "\\/ still decodes as /", "return cjson.decode([[\"https:\\/\\/a\"]]) == 'https://a'" },
  { "invalid UTF-8 encodes as U+FFFD", "return cjson.encode('caf\\xE9') == '\"caf\\u{FFFD}\"'" },
  { "valid UTF-8 encodes unchanged", "return cjson.encode('caf\\u{E9} \\u{20AC}') == '\"caf\\u{E9} \\u{20AC}\"'" },
  { "empty_array encodes as []", "return cjson.encode({ a = cjson.empty_array }) == '{\"a\":[]}'" },
  { "empty table with array_mt encodes as []",
    "return cjson.encode(setmetatable({}, cjson.array_mt)) == '[]'" },
  { "array_mt encodes elements 1..#t only",
    "return cjson.encode(setmetatable({ 1, 2, x = 3 }, cjson.array_mt)) == '[1,2]'" },
  { "another metatable leaves {} an object", "return cjson.encode(setmetatable({}, {})) == '{}'" },
  { "decode_array_with_array_mt is off by default",
    "return getmetatable(cjson.decode('[]')) == nil and cjson.encode(cjson.decode('[]')) == '{}'" },
  { "decode_array_with_array_mt(true) marks arrays only",
    "local j = cjson.new() local on = j.decode_array_with_array_mt(true)"
    " local t = j.decode('{\"a\":[],\"b\":{}}')"
    " return on == true and getmetatable(t) == nil and getmetatable(t.b) == nil"
    " and getmetatable(t.a) == j.array_mt and j.encode(t.a) == '[]' and j.encode(t.b) == '{}'" },
  { "decode_array_with_array_mt takes on/off and rejects the rest",
    "local j = cjson.new() return j.decode_array_with_array_mt('on') == true"
    " and j.decode_array_with_array_mt('off') == false"
    " and not pcall(j.decode_array_with_array_mt, 'maybe')" },
  { "array_mt and empty_array are shared by new() and cjson.safe",
    "local j, s = cjson.new(), require 'cjson.safe'"
    " return type(cjson.array_mt) == 'table' and j.array_mt == cjson.array_mt"
    " and s.array_mt == cjson.array_mt and j.empty_array == cjson.empty_array"
    " and type(cjson.empty_array) == 'userdata' and cjson.empty_array ~= cjson.null"
    " and j.encode(setmetatable({}, cjson.array_mt)) == '[]'" },
};

/* Upstream's "Encode all octets" expects the old output: "\/" and bytes 0x80..0xFF copied raw.
   Our patches 0002 and 0003 change exactly that, so the runner expects "/" and one U+FFFD for
   each of those bytes (none of them starts a valid sequence in that order); all else is as is. */
static const char upstream_octets[] =
  "local util = require 'cjson.util'\n"
  "local run_test_group = util.run_test_group\n"
  "util.run_test_group = function(tests)\n"
  "  for _, t in ipairs(tests) do\n"
  "    if t[1] == 'Encode all octets (8-bit clean)' then\n"
  "      local want = util.file_load('octets-escaped.dat'):gsub('\\\\/', '/')\n"
  "      want = want:gsub('[\\128-\\255]', '\\u{FFFD}')\n"
  "      t[1], t[5] = t[1] .. ' (kimictl: \"/\" plain, invalid UTF-8 as U+FFFD)', { want }\n"
  "    end\n"
  "  end\n"
  "  return run_test_group(tests)\n"
  "end\n";

int main(int argc, char **argv) {
  if (argc == 3) {   /* --upstream DIR: run lua-cjson's own test.lua there */
    lua_State *L = new_state();
    if (chdir(argv[2]) != 0) return perror(argv[2]), 1;
    (void)luaL_dostring(L, "package.path = '../lua/?.lua;' .. package.path "
                     "arg = { 'example1.json', 'example2.json', 'example3.json', 'example4.json', "
                     "'example5.json', 'numbers.json', 'rfc-example1.json', 'rfc-example2.json', "
                     "'types.json' }");
    int rc = luaL_dostring(L, upstream_octets);
    if (rc == LUA_OK) rc = luaL_dofile(L, "test.lua");
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
