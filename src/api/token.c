/* core.token: the credential stores' locks, and fingerprints of secrets, for Lua. */
#include "api.h"
#include "token.h"

#include <errno.h>
#include <string.h>

/* core.token.lock(path, kind = "flock" | "dir", timeout_ms) -> lock | nil, err, code */
static int l_token_lock(lua_State *L) {
  static const char *const kinds[] = { "flock", "dir", NULL };
  const char *path = luaL_checkstring(L, 1);
  int kind = luaL_checkoption(L, 2, NULL, kinds);
  long timeout = (long)luaL_checkinteger(L, 3);
  struct token_lock *l = lua_newuserdatauv(L, sizeof *l, 0);
  memset(l, 0, sizeof *l);
  l->fd = -1;
  luaL_setmetatable(L, MT_TOKEN_LOCK);
  if (token_lock(l, kind == 0 ? TOKEN_LOCK_FLOCK : TOKEN_LOCK_DIR, path, timeout) != 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, e == ETIMEDOUT ? "%s is held by another process" : "%s: %s", path, strerror(e));
    lua_pushstring(L, e == ETIMEDOUT ? "ETIMEDOUT" : "EIO");
    return 3;
  }
  return 1;
}

/* lock:unlock(), also on close and collection */
static int l_token_unlock(lua_State *L) {
  token_unlock(luaL_checkudata(L, 1, MT_TOKEN_LOCK));
  return 0;
}

/* core.token.fingerprint(s) -> sha256 hex: lets kimictl remember a secret without keeping it */
static int l_token_fingerprint(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char out[65];
  token_fingerprint(s, len, out);
  lua_pushstring(L, out);
  return 1;
}

int luaopen_core_token(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "lock", l_token_lock }, { "fingerprint", l_token_fingerprint }, { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "unlock", l_token_unlock }, { "__close", l_token_unlock }, { "__gc", l_token_unlock },
    { NULL, NULL }
  };
  api_class(L, MT_TOKEN_LOCK, methods);
  luaL_newlib(L, funcs);
  return 1;
}
