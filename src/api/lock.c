/* core.lock: the credential stores' locks, for Lua. */
#include "api.h"
#include "clock.h"
#include "lock.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Something other than a directory sits where a lock directory should be: no waiting
   removes it, so the message says what to do. */
static int not_a_dir(lua_State *L, const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0 || S_ISDIR(st.st_mode)) return 0;
  lua_pushfstring(L, "%s is not a directory (a file or a symbolic link), so it cannot be the "
                  "lock directory: remove it and try again", path);
  return 1;
}

/* Try until the deadline, pausing between tries. Slots: 1 path, 2 kind, 3 timeout, 4 lock. */
static int take_k(lua_State *L, int status, lua_KContext deadline) {
  (void)status;
  struct lock *l = lua_touserdata(L, 4);
  const char *path = lua_tostring(L, 1);
  for (;;) {
    if (lock_try(l) == 0) return 1;
    int e = errno;
    long long now = clock_now_ms();
    if (e == EWOULDBLOCK && now >= deadline) {
      lua_pushfstring(L, "%s is held by another process (waited %I ms)", path, lua_tointeger(L, 3));
      lock_release(l);
      return api_fail_with(L, ETIMEDOUT, lua_tostring(L, -1));
    }
    if (e != EWOULDBLOCK) {
      lock_release(l);
      if (e == ENOTDIR && l->kind == LOCK_DIR && not_a_dir(L, path)) return api_fail_with(L, e, lua_tostring(L, -1));
      errno = e;
      return api_fail(L, path);
    }
    long long next = now + lock_pause_ms();
    if (next > deadline) next = deadline;
    if (task_of(L)) return task_yield(L, next, deadline, take_k);
    task_block(L, next);
  }
}

/* core.lock.take(path, kind = "flock" | "dir", timeout_ms) -> lock | nil, err, code */
static int l_lock_take(lua_State *L) {
  static const char *const kinds[] = { "flock", "dir", NULL };
  const char *path = luaL_checkstring(L, 1);
  enum lock_kind kind = luaL_checkoption(L, 2, NULL, kinds) == 0 ? LOCK_FLOCK : LOCK_DIR;
  lua_Integer timeout = luaL_checkinteger(L, 3);
  luaL_argcheck(L, timeout >= 0, 3, "timeout_ms must be a non-negative integer");
  lua_settop(L, 3);
  struct lock *l = lua_newuserdatauv(L, sizeof *l, 0);   /* before the lock, as liolib does */
  int named = lock_init(l, kind, path);   /* a release is safe even when this failed */
  luaL_setmetatable(L, MT_LOCK);
  if (named != 0) return api_fail(L, path);
  return take_k(L, 0, clock_now_ms() + timeout);
}

/* lock:release(), also on close and collection; a second release does nothing */
static int l_lock_release(lua_State *L) {
  lock_release(luaL_checkudata(L, 1, MT_LOCK));
  return 0;
}

int luaopen_core_lock(lua_State *L) {
  static const luaL_Reg funcs[] = { { "take", l_lock_take }, { NULL, NULL } };
  static const luaL_Reg methods[] = {
    { "release", l_lock_release }, { "__close", l_lock_release }, { "__gc", l_lock_release },
    { NULL, NULL }
  };
  api_class(L, MT_LOCK, methods);
  luaL_newlib(L, funcs);
  return 1;
}
