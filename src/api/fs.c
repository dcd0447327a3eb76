/* core.fs: reading, atomic writing, directories and locks, for Lua. */
#include "api.h"
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file failure: nil, "path: reason", "ENOENT"-style code. */
static int fail(lua_State *L, const char *path) {
  int e = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(e));
  lua_pushstring(L, e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" :
                    e == ETIMEDOUT ? "ETIMEDOUT" : e == ENOTDIR ? "ENOTDIR" : "EIO");
  return 3;
}

/* A mode is an integer or an octal string such as "0600". */
static mode_t check_mode(lua_State *L, int idx, mode_t def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) == LUA_TSTRING) {
    char *end;
    long m = strtol(lua_tostring(L, idx), &end, 8);
    luaL_argcheck(L, *end == '\0' && m >= 0 && m <= 07777, idx, "bad octal mode");
    return (mode_t)m;
  }
  return (mode_t)luaL_checkinteger(L, idx);
}

/* core.fs.read(path) -> data | nil, err, code */
static int l_fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *data;
  size_t len;
  if (fs_read(path, &data, &len) != 0) return fail(L, path);
  lua_pushlstring(L, data, len);
  free(data);
  return 1;
}

/* core.fs.write_atomic(path, data[, mode = "0600"]) -> true | nil, err, code */
static int l_fs_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (fs_write_atomic(path, data, len, check_mode(L, 3, 0600)) != 0) return fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.mkdir(path[, mode = "0700"]) -> true | nil, err, code   (creates parents too) */
static int l_fs_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (fs_mkdir_p(path, check_mode(L, 2, 0700)) != 0) return fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.chmod(path, mode) -> true | nil, err, code */
static int l_fs_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chmod(path, check_mode(L, 2, 0600)) != 0) return fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.stat(path) -> {type=, mode=, size=, mtime=} | nil, err, code */
static int l_fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return fail(L, path);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  lua_setfield(L, -2, "mtime");
  return 1;
}

/* core.fs.remove(path) -> true | nil, err, code */
static int l_fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (unlink(path) != 0) return fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* A held flock; released by :unlock(), by a to-be-closed variable, or by the GC. */
static int l_lock_unlock(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, MT_LOCK);
  fs_unlock(*fd);
  *fd = -1;
  return 0;
}

/* core.fs.lock(path, timeout_ms) -> lock | nil, err, code ("ETIMEDOUT" when held elsewhere) */
static int l_fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  long timeout = (long)luaL_optinteger(L, 2, 0);
  int *fd = lua_newuserdatauv(L, sizeof *fd, 0);   /* before the resource, as liolib does */
  *fd = -1;
  luaL_setmetatable(L, MT_LOCK);
  if (fs_lock(path, timeout, fd) != 0) return fail(L, path);
  return 1;
}

int luaopen_core_fs(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "read", l_fs_read }, { "write_atomic", l_fs_write_atomic }, { "mkdir", l_fs_mkdir },
    { "chmod", l_fs_chmod }, { "stat", l_fs_stat }, { "remove", l_fs_remove },
    { "lock", l_fs_lock }, { NULL, NULL }
  };
  static const luaL_Reg lock_methods[] = {
    { "unlock", l_lock_unlock }, { "__close", l_lock_unlock }, { "__gc", l_lock_unlock },
    { NULL, NULL }
  };
  api_class(L, MT_LOCK, lock_methods);
  luaL_newlib(L, funcs);
  return 1;
}
