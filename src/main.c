/* kimictl's entry point: start Lua (api_open: the user's directory shadows the embedded
   modules), and hand argv to require("kimictl"). */
#include "alloc.h"
#include "api/api.h"
#include "http.h"
#include "loop.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What went wrong, said once: the message, plus a traceback when KIMICTL_LOG=debug (unless
   Lua, which catches errors where they happen, already added the one that matters). */
static void report(lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (!msg) {
    if (luaL_callmeta(co, -1, "__tostring") && lua_type(co, -1) == LUA_TSTRING) msg = lua_tostring(co, -1);
    else msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
  }
  if (log_level() >= LOG_DEBUG && !strstr(msg, "stack traceback:")) luaL_traceback(L, co, msg, 0);
  else lua_pushfstring(L, "%s\n(set KIMICTL_LOG=debug to see where)", msg);
  fprintf(stderr, "kimictl: %s\n", lua_tostring(L, -1));
}

static int pmain_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 1;
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  api_open(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kimictl");
  lua_call(L, 1, 1);
  lua_createtable(L, argc, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_callk(L, 1, 1, 0, pmain_k);   /* the command may yield: it runs in the main task */
  return pmain_k(L, LUA_OK, 0);
}

/* A write that failed before the final flush left no errno behind: a pipe or socket whose
   reader is gone is EPIPE; anything else an I/O error. */
static int lost_write_error(void) {
  struct pollfd p = { 1, POLLOUT, 0 };
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) ? EPIPE : EIO;
}

static int sigpipe_was_default;

/* An error outside any protected call (none is expected: everything runs under pcall). */
static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "kimictl: unprotected Lua error: %s\n", msg ? msg : "(not a string)");
  return 0;   /* Lua aborts */
}

/* Output that never reached its file is data lost: say so and fail. A reader that went
   away (EPIPE, when SIGPIPE is ignored) ends us quietly, as the signal would have. */
static int close_stdout(int code) {
  int e = 0;
  if (fflush(stdout) != 0) e = errno;
  else if (ferror(stdout)) e = lost_write_error();
  if (fclose(stdout) != 0 && !e) e = errno;
  if (!e) return code;
  if (e == EPIPE && sigpipe_was_default) {   /* the loop ignores it: die of it now, as we would have */
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
  }
  if (e == EPIPE) return 128 + SIGPIPE;   /* the status a shell shows for death by SIGPIPE */
  fprintf(stderr, "kimictl: cannot write the output: %s\n", strerror(e));
  return 1;
}

int main(int argc, char **argv) {
  /* Fully buffered when not a terminal, as C says, from the first byte (musl starts line
     buffered): small output then fails in close_stdout, where its errno is still known. */
  if (!isatty(1)) setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
  struct sigaction sa;
  sigpipe_was_default = sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL;
  static struct alloc_pool pool;
  lua_State *L = lua_newstate(alloc_lua, &pool);
  if (!L) {
    fputs("kimictl: cannot start Lua: out of memory\n", stderr);
    return 1;
  }
  lua_atpanic(L, panic);
  /* The whole command is the main task: every wait in it turns the one event loop. */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_State *co = NULL;
  int status = task_main(L, 2, &co), code;
  if (status == LUA_OK) code = lua_isinteger(co, -1) ? (int)lua_tointeger(co, -1) : 0;
  else if (!co || !(code = task_interrupt_code(co, -1))) {
    report(L, co ? co : L);
    code = 1;
  }
  lua_close(L);   /* collects what is left: transfers are cancelled, locks released */
  alloc_drain(&pool);
  http_cleanup();
  loop_close();
  return close_stdout(code);
}
