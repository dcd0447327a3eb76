/* kimictl's entry point: start Lua, let the user's directory shadow the embedded
   modules, and hand argv to require("kimictl"). */
#include "alloc.h"
#include "api/api.h"
#include "embed.h"
#include "http.h"
#include "loop.h"
#include "log.h"

#include <errno.h>
#include <lualib.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct embedded_file *find_embedded(const char *name) {
  for (const struct embedded_file *f = embedded_lua; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* package.searchers entry: "a.b" is a/b.lua in the user's directory, else the embedded copy.
   The chunk name says which copy ran. Upvalue 1: the user's directory, or nil. */
static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *dir = lua_tostring(L, lua_upvalueindex(1));
  const char *rel = lua_pushfstring(L, "%s.lua", luaL_gsub(L, name, ".", "/"));
  if (dir) {
    const char *path = lua_pushfstring(L, "%s/%s", dir, rel);
    if (access(path, F_OK) == 0) {
      if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return luaL_error(L, "error loading your override of '%s':\n\t%s", name, lua_tostring(L, -1));
      lua_pushstring(L, path);
      return 2;
    }
  }
  const struct embedded_file *f = find_embedded(rel);
  if (f) {
    const char *chunk = lua_pushfstring(L, "@embedded/%s", rel);
    if (luaL_loadbufferx(L, (const char *)f->data, f->len, chunk, "t") != LUA_OK)
      return lua_error(L);
    lua_pushstring(L, chunk + 1);
    return 2;
  }
  lua_pushfstring(L, "no file '%s/%s' and no embedded '%s'", dir ? dir : "(no Lua directory)", rel, rel);
  return 1;
}

/* core.embedded() -> the names of the embedded files ("providers/kimi.lua", ...) */
static int embedded_names(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; embedded_lua[i].name; i++) {
    lua_pushstring(L, embedded_lua[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Keep package.preload, then our searcher: LUA_PATH and C modules play no part. */
static void install_searcher(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_rawgeti(L, -1, 1);
  lua_newtable(L);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  luaL_requiref(L, "core", luaopen_core, 0);
  lua_pushcfunction(L, embedded_names);
  lua_setfield(L, -2, "embedded");
  lua_getfield(L, -1, "lua_dir");
  lua_pushcclosure(L, searcher, 1);
  lua_rawseti(L, -3, 2);
  lua_pop(L, 1);                     /* core */
  lua_setfield(L, -3, "searchers");  /* the new list */
  lua_pop(L, 2);                     /* old list, package */
}

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
  luaL_openlibs(L);
  install_searcher(L);
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
