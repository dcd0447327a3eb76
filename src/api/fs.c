/* core.fs: reading, atomic writing and directories, for Lua. */
#include "api.h"
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
  struct buf *data = api_box(L, 0);   /* credential files pass through it */
  if (fs_read(path, data) != 0) return api_fail(L, path);
  api_box_push(L, data);
  return 1;
}

/* (path, data[, mode = "0600"]) -> true | nil, err, code, written by fn */
static int write_with(lua_State *L, int (*fn)(const char *, const char *, size_t, mode_t)) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (fn(path, data, len, check_mode(L, 3, 0600)) != 0) return api_fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.write_atomic(path, data[, mode = "0600"]) -> true | nil, err, code */
static int l_fs_write_atomic(lua_State *L) { return write_with(L, fs_write_atomic); }

/* core.fs.append(path, data[, mode = "0600"]) -> true | nil, err, code */
static int l_fs_append(lua_State *L) { return write_with(L, fs_append); }

/* core.fs.mkdir(path[, mode = "0700"]) -> true | nil, err, code   (creates parents too) */
static int l_fs_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (fs_mkdir_p(path, check_mode(L, 2, 0700)) != 0) return api_fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fs.chmod(path, mode) -> true | nil, err, code */
static int l_fs_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chmod(path, check_mode(L, 2, 0600)) != 0) return api_fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

#ifdef __APPLE__
#define st_mtim st_mtimespec
#define st_ctim st_ctimespec
#endif
#define NS(t) ((lua_Integer)(t).tv_sec * 1000000000 + (t).tv_nsec)

/* core.fs.stat(path) -> {type=, mode=, size=, mtime=, mtime_ns=, version=} | nil, err, code
   version changes whenever the file is replaced, written or chmod-ed (inode, size, times in ns). */
static int l_fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return api_fail(L, path);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, NS(st.st_mtim));
  lua_setfield(L, -2, "mtime_ns");
  lua_pushfstring(L, "%I:%I:%I:%I:%I", (lua_Integer)st.st_dev, (lua_Integer)st.st_ino, (lua_Integer)st.st_size,
                  NS(st.st_mtim), NS(st.st_ctim));
  lua_setfield(L, -2, "version");
  return 1;
}

/* core.fs.version(path) -> a short string that changes whenever the file is replaced,
   written or chmod-ed (device, inode, size, modification and change times), or "!" and
   the error's code ("!ENOENT") when it cannot be looked at. One stat, no table: a gateway
   asks it of its files on every request. */
static int l_fs_version(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    lua_pushfstring(L, "!%s", api_errno_name(errno));
    return 1;
  }
  int64_t v[5] = { (int64_t)st.st_dev, (int64_t)st.st_ino, (int64_t)st.st_size, NS(st.st_mtim), NS(st.st_ctim) };
  lua_pushlstring(L, (const char *)v, sizeof v);   /* 40 bytes: a short string, compared by address */
  return 1;
}

/* core.fs.remove(path) -> true | nil, err, code */
static int l_fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (unlink(path) != 0) return api_fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* An open directory, in a userdata so that an error while listing still closes it. */
static int dir_close(lua_State *L) {
  DIR **d = luaL_checkudata(L, 1, MT_DIR);
  if (*d) closedir(*d);
  *d = NULL;
  return 0;
}

/* core.fs.list(dir) -> { name, ... } (sorted by byte, without . and ..) | nil, err, code */
static int l_fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL;
  luaL_setmetatable(L, MT_DIR);
  lua_toclose(L, -1);
  if (!(*d = opendir(path))) return api_fail(L, path);
  lua_newtable(L);
  lua_Integer n = 0;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(*d);
    if (!e) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  if (errno) return api_fail(L, path);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

int luaopen_core_fs(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "read", l_fs_read }, { "write_atomic", l_fs_write_atomic }, { "mkdir", l_fs_mkdir },
    { "chmod", l_fs_chmod }, { "stat", l_fs_stat }, { "version", l_fs_version }, { "remove", l_fs_remove }, { "append", l_fs_append },
    { "list", l_fs_list }, { NULL, NULL }
  };
  static const luaL_Reg dir_methods[] = { { "__gc", dir_close }, { "__close", dir_close }, { NULL, NULL } };
  api_class(L, MT_DIR, dir_methods);
  luaL_newlib(L, funcs);
  return 1;
}
