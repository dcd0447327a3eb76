/* core.proc: clocks, sleeping, terminals, randomness, the system's name, and processes:
   the running binary, detached children, sessions and secrets typed at a terminal. */
#include "api.h"
#include "clock.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* core.proc.now() -> seconds since the epoch, as a float */
static int l_proc_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)clock_real_s());
  return 1;
}

/* core.proc.clock_ms() -> milliseconds on a monotonic clock */
static int l_proc_clock_ms(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)clock_now_ms());
  return 1;
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

/* core.proc.exe() -> absolute path of the running binary | nil, err, code */
static int l_proc_exe(lua_State *L) {
  char path[4096];
  if (proc_exe(path, sizeof path) != 0) return api_fail(L, "cannot find the running binary");
  lua_pushstring(L, path);
  return 1;
}

/* core.proc.setsid() -> true | nil, err, code   (true also when already a session leader) */
static int l_proc_setsid(lua_State *L) {
  if (proc_setsid() != 0) return api_fail(L, "setsid");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.proc.detach() -> true | nil, err, code: a session of its own, deaf to SIGPIPE and
   SIGHUP, for work that must finish whatever happens to the terminal and its readers */
static int l_proc_detach(lua_State *L) {
  if (proc_detach() != 0) return api_fail(L, "detach");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.proc.raise_nofile() -> the limit on open descriptors, raised to the hard limit
   (a gateway holds two sockets per stream) */
static int l_proc_raise_nofile(lua_State *L) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return api_fail(L, "getrlimit");
  if (r.rlim_cur < r.rlim_max) {
    rlim_t want = r.rlim_max;
#ifdef __APPLE__
    if (want > OPEN_MAX) want = OPEN_MAX;   /* macOS refuses more than OPEN_MAX here */
#endif
    struct rlimit raised = { want, r.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) r.rlim_cur = want;
  }
  lua_pushinteger(L, r.rlim_cur == RLIM_INFINITY ? LUA_MAXINTEGER : (lua_Integer)r.rlim_cur);
  return 1;
}

/* core.proc.read_secret(prompt) -> line | nil, err   (no echo on a terminal) */
static int l_proc_read_secret(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "");
  struct buf *line = api_box(L, 64 << 10);
  int rc = proc_read_secret(prompt, line);
  if (rc > 0) return api_fail_with(L, EIO, "no input: standard input ended before a line was read");
  if (rc < 0) return api_fail(L, "cannot read standard input");
  api_box_push(L, line);
  return 1;
}

/* child:__gc(): the pipe is closed; the child is killed with kill, else left to run */
static int l_child_close(lua_State *L) {
  proc_child_close(luaL_checkudata(L, 1, MT_CHILD));
  return 0;
}

/* The option argv: a NULL-ended array in a userdata; the strings stay alive in the table,
   which stays on the stack below it. */
static char **argv_option(lua_State *L, int opts) {
  lua_getfield(L, opts, "argv");
  int tbl = lua_gettop(L);
  lua_Integer n = lua_istable(L, tbl) ? luaL_len(L, tbl) : 0;
  luaL_argcheck(L, n >= 1 && n < 65536, opts, "argv must be a non-empty list of strings");
  char **argv = lua_newuserdatauv(L, sizeof *argv * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    luaL_argcheck(L, lua_rawgeti(L, tbl, i) == LUA_TSTRING, opts, "argv must be a non-empty list of strings");
    argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  return argv;
}

/* {output=, status=} for an exit, {output=, signal=} for a death by signal; dropped= the bytes
   of output past max_output. */
static int push_exit(lua_State *L, struct buf *output, int status, size_t dropped) {
  lua_createtable(L, 0, 3);
  api_box_push(L, output);
  lua_setfield(L, -2, "output");
  lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  lua_setfield(L, -2, WIFEXITED(status) ? "status" : "signal");
  if (dropped) {
    lua_pushinteger(L, (lua_Integer)dropped);
    lua_setfield(L, -2, "dropped");
  }
  return 1;
}

/* Collect the child's output and exit a piece at a time, every few milliseconds, until the
   deadline. Slots: 1 options, 5 the output box, 6 the child. */
static int collect_k(lua_State *L, int status, lua_KContext deadline) {
  struct buf *output = lua_touserdata(L, 5);
  struct proc_child *c = lua_touserdata(L, 6);
  for (;;) {
    int rc = proc_collect_some(c, output, &status), e = errno;
    if (rc != 0) proc_child_close(c);
    if (rc == 1) return push_exit(L, output, status, c->dropped);
    if (rc < 0) return errno = e, api_fail(L, "the child process");
    long long now = clock_now_ms();
    if (now >= deadline) {
      lua_getfield(L, 1, "timeout_ms");
      lua_pushfstring(L, "the child process did not finish within %I ms%s", lua_tointeger(L, -1),
                      c->kill ? " and was killed" : "");
      proc_child_close(c);
      return api_fail_with(L, ETIMEDOUT, lua_tostring(L, -1));
    }
    long long next = now + 5 < deadline ? now + 5 : deadline;
    if (task_of(L)) return task_yield(L, next, deadline, collect_k);
    task_block(L, next);
  }
}

/* core.proc.spawn_detached{argv=, timeout_ms=, stderr="inherit"|"null"|"stdout",
     max_output= (1 MiB), kill= (false)} -> {output=, status=, signal=, dropped=} | nil, err, code
   With kill, the child's process group is killed on a timeout, or when the caller is
   interrupted; otherwise the child runs on (ETIMEDOUT). */
static int l_proc_spawn_detached(lua_State *L) {
  static const char *const options[] = { "argv", "timeout_ms", "stderr", "max_output", "kill", NULL };
  static const char *const stderr_modes[] = { "inherit", "null", "stdout", NULL };
  api_check_options(L, 1, options);
  lua_Integer timeout = api_opt_int(L, 1, "timeout_ms", -1, 0);   /* required */
  lua_Integer max_output = api_opt_int(L, 1, "max_output", 1 << 20, 1);
  lua_getfield(L, 1, "kill");
  int kill_child = lua_toboolean(L, -1);
  lua_settop(L, 1);
  lua_getfield(L, 1, "stderr");                  /* slot 2 */
  int stderr_mode = luaL_checkoption(L, 2, "inherit", stderr_modes);
  char **argv = argv_option(L, 1);               /* slots 3, 4 */
  api_box(L, (size_t)max_output);                /* slot 5 */
  struct proc_child *c = lua_newuserdatauv(L, sizeof *c, 0);   /* slot 6, before the child */
  c->pid = 0, c->out = -1, c->kill = kill_child;
  luaL_setmetatable(L, MT_CHILD);
  lua_toclose(L, 6);   /* an error or an interrupt while waiting closes (and with kill, kills) it */
  if (proc_spawn_detached(c, argv, stderr_mode) != 0) return api_fail(L, argv[0]);
  return collect_k(L, 0, clock_now_ms() + timeout);
}

int luaopen_core_proc(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "now", l_proc_now }, { "clock_ms", l_proc_clock_ms }, { "sleep", api_sleep },
    { "isatty", l_proc_isatty }, { "pid", l_proc_pid }, { "random_hex", l_proc_random_hex },
    { "uname", l_proc_uname }, { "exe", l_proc_exe }, { "setsid", l_proc_setsid },
    { "detach", l_proc_detach }, { "raise_nofile", l_proc_raise_nofile },
    { "read_secret", l_proc_read_secret }, { "spawn_detached", l_proc_spawn_detached },
    { NULL, NULL }
  };
  static const luaL_Reg child_methods[] = { { "__gc", l_child_close }, { "__close", l_child_close }, { NULL, NULL } };
  api_class(L, MT_CHILD, child_methods);
  luaL_newlib(L, funcs);
  return 1;
}
