/* The Lua module `core` and its submodules, one file each under src/api/. */
#ifndef KIMICTL_API_H
#define KIMICTL_API_H
#include "buf.h"

#include <lua.h>
#include <lauxlib.h>

#define MT_LOCK "kimictl.Lock"
#define MT_BOX "kimictl.Buffer"
#define MT_HTTP_CALL "kimictl.HttpCall"
#define MT_CHILD "kimictl.Child"
#define MT_EVENT "kimictl.Event"
#define MT_SERVER "kimictl.Server"
#define MT_RESPONSE "kimictl.Response"
#define MT_INTERRUPT "kimictl.Interrupt"
#define MT_DIR "kimictl.Dir"
#define MT_EDITOR "kimictl.Editor"

/* The standard libraries, `core`, and require() reading the user's Lua directory first,
   then the embedded modules (boot.c). */
void api_open(lua_State *L);
int luaopen_core(lua_State *L);
int luaopen_core_http(lua_State *L);
int luaopen_core_json(lua_State *L);
int luaopen_core_fs(lua_State *L);
int luaopen_core_log(lua_State *L);
int luaopen_core_proc(lua_State *L);
int luaopen_core_lock(lua_State *L);
int luaopen_core_hash(lua_State *L);
int luaopen_core_loop(lua_State *L);
int luaopen_core_server(lua_State *L);
int luaopen_core_edit(lua_State *L);
int luaopen_cjson(lua_State *L);   /* from lua-cjson */

/* Raise an error naming an option that the function does not know. */
void api_check_options(lua_State *L, int idx, const char *const known[]);
/* Register a metatable NAME whose methods are also its __index. */
void api_class(lua_State *L, const char *name, const luaL_Reg *methods);
/* Optional integer field of an options table, at least min (0 or 1); an argument error
   naming the field otherwise ("timeout_ms must be a non-negative integer"). */
lua_Integer api_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer min);

/* A failure of the world: pushes nil, "what: strerror(errno)" and errno's name; returns 3. */
int api_fail(lua_State *L, const char *what);
/* The same with a message of the binding's own for error number e. */
int api_fail_with(lua_State *L, int e, const char *message);
/* "ENOENT", "EACCES", ...; "EIO" for a number outside the list. */
const char *api_errno_name(int e);

/* A buffer owned by a new userdata (pushed): collected or closed, it is wiped and freed, so
   a Lua error between filling it and pushing its contents leaks nothing. */
struct buf *api_box(lua_State *L, size_t max);
/* Push the buffer's contents as a string, then wipe and free the buffer. */
void api_box_push(lua_State *L, struct buf *b);

/* --- tasks (task.c): Lua coroutines that the event loop resumes. A call that waits yields
   when it runs in a task, and otherwise runs the loop itself until its wait is over:
     for (;;) { if (done) return results;
                if (task_of(L)) return task_yield(L, deadline, ctx, k);
                task_block(L, deadline); }
   Nothing resumes a task from inside a library callback: callbacks call task_wake. */
struct task;
#define TASK_KILLED (-1)
/* Called when a task ends, with its coroutine: results or the error on its stack, or status
   TASK_KILLED. */
typedef void (*task_end_fn)(lua_State *co, int status, void *ud);

/* Run the function under nargs arguments on L's top (popped) as a new task, from the next
   turn of the loop. NULL (and nothing popped) when out of memory. */
struct task *task_spawn(lua_State *L, int nargs, task_end_fn end, void *ud);
struct task *task_of(lua_State *L);   /* the task L can yield to, or NULL */
void task_wake(struct task *t);       /* resume t after the current callback has returned */
void task_kill(struct task *t);       /* end t at the next turn; its waits are closed */
/* Wait until woken or until deadline (clock_now_ms; 0: none), then call k. Raises instead
   when the process was interrupted (SIGINT, SIGTERM) and no task waits for signals. */
int task_yield(lua_State *L, long long deadline, lua_KContext ctx, lua_KFunction k);
void task_block(lua_State *L, long long deadline);
/* Run the function under nargs arguments as the main task to its end, driving the loop;
   its status, and its results or error on *co (kept alive on L's stack). */
int task_main(lua_State *L, int nargs, lua_State **co);
/* 128 + the signal when the value at idx is the interrupt error, else 0. */
int task_interrupt_code(lua_State *L, int idx);
/* Resume every task that is ready (from: the running coroutine, or NULL). */
void tasks_run(lua_State *from);
int api_sleep(lua_State *L);   /* core.loop.sleep(ms), also core.proc.sleep */

#endif
