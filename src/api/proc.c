/* core.proc: clocks, sleeping, terminals, randomness and the system's name. */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

/* core.proc.now() -> seconds since the epoch, as a float */
static int l_proc_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.proc.clock_ms() -> milliseconds on a monotonic clock */
static int l_proc_clock_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

/* core.proc.sleep(ms) */
static int l_proc_sleep(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
  while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return 0;
}

/* core.proc.isatty(fd) -> boolean */
static int l_proc_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.proc.pid() -> integer */
static int l_proc_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* core.proc.random_hex(nbytes) -> 2*nbytes lowercase hex digits from /dev/urandom | nil, err */
static int l_proc_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n <= 256, 1, "between 1 and 256 bytes");
  unsigned char raw[256];
  char hex[513];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? read(fd, raw, (size_t)n) : -1;
  if (fd >= 0) close(fd);
  if (got != (ssize_t)n) {
    lua_pushnil(L);
    lua_pushliteral(L, "cannot read /dev/urandom");
    return 2;
  }
  for (lua_Integer i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  lua_pushlstring(L, hex, (size_t)(2 * n));
  return 1;
}

/* core.proc.uname() -> {sysname=, nodename=, release=, version=, machine=} */
static int l_proc_uname(lua_State *L) {
  struct utsname u;
  if (uname(&u) != 0) return luaL_error(L, "uname failed");
  lua_createtable(L, 0, 5);
  lua_pushstring(L, u.sysname), lua_setfield(L, -2, "sysname");
  lua_pushstring(L, u.nodename), lua_setfield(L, -2, "nodename");
  lua_pushstring(L, u.release), lua_setfield(L, -2, "release");
  lua_pushstring(L, u.version), lua_setfield(L, -2, "version");
  lua_pushstring(L, u.machine), lua_setfield(L, -2, "machine");
  return 1;
}

int luaopen_core_proc(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "now", l_proc_now }, { "clock_ms", l_proc_clock_ms }, { "sleep", l_proc_sleep },
    { "isatty", l_proc_isatty }, { "pid", l_proc_pid }, { "random_hex", l_proc_random_hex },
    { "uname", l_proc_uname }, { NULL, NULL }
  };
  luaL_newlib(L, funcs);
  return 1;
}
