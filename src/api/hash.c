/* core.hash: digests from BearSSL, for Lua. */
#include "api.h"

#include <bearssl.h>

/* core.hash.sha256(s) -> 64 lowercase hex digits (lets kimictl remember a secret without
   keeping it) */
static int l_hash_sha256(lua_State *L) {
  static const char digits[] = "0123456789abcdef";
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  br_sha256_context c;
  unsigned char sum[32];
  char hex[64];
  br_sha256_init(&c);
  br_sha256_update(&c, s, len);
  br_sha256_out(&c, sum);
  for (int i = 0; i < 32; i++) hex[2 * i] = digits[sum[i] >> 4], hex[2 * i + 1] = digits[sum[i] & 15];
  secure_zero(&c, sizeof c);
  secure_zero(sum, sizeof sum);
  lua_pushlstring(L, hex, sizeof hex);
  return 1;
}

int luaopen_core_hash(lua_State *L) {
  static const luaL_Reg funcs[] = { { "sha256", l_hash_sha256 }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  return 1;
}
