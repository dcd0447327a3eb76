/* Tasks: Lua coroutines resumed by the event loop. A binding that waits yields from a task
   and is resumed after its callback has returned; outside a task it turns the loop itself.
   SIGINT and SIGTERM interrupt the main task unless a task waits for them. */
#include "api.h"
#include "clock.h"
#include "log.h"
#include "loop.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct task {
  lua_State *co;
  int ref;                         /* anchors co in the registry while the task lives */
  int nargs, started, running, waiting, queued, killed, signal;
  task_end_fn end;
  void *ud;
  uv_timer_t timer;                /* the wait's deadline; owns the record */
  struct task *next;               /* on the ready list */
  struct waitlist *list;           /* the list it waits on, if any */
  struct task *prev_w, *next_w;
};

struct waitlist { struct task *head; };

static struct task *ready, *ready_tail;
static struct task *main_task;
static int main_status = -2;       /* until the main task ends */
static int interrupted;            /* the signal that interrupted the main task, or 0 */
static struct waitlist signal_waiters;
static uv_timer_t block_timer;
static int block_timer_ready;

static struct task **slot(lua_State *L) { return lua_getextraspace(L); }

struct task *task_of(lua_State *L) { return lua_isyieldable(L) ? *slot(L) : NULL; }

/* A task woken inside the loop must not wait for the loop's next poll: a timer's callback
   runs before the poll, which would then sleep with the task ready (for ever, when nothing
   else was pending). uv_stop makes that poll return at once; the task runs next. */
void task_wake(struct task *t) {
  if (!t || t->queued) return;
  t->queued = 1;
  t->next = NULL;
  if (ready_tail) ready_tail->next = t;
  else ready = t;
  ready_tail = t;
  uv_loop_t *loop = loop_get(NULL);
  if (loop) uv_stop(loop);
}

void task_kill(struct task *t) {
  t->killed = 1;
  task_wake(t);
}

/* --- wait lists: a task waits on at most one */

static void unlist(struct task *t) {
  if (!t->list) return;
  if (t->prev_w) t->prev_w->next_w = t->next_w;
  else t->list->head = t->next_w;
  if (t->next_w) t->next_w->prev_w = t->prev_w;
  t->list = NULL;
  t->prev_w = t->next_w = NULL;
}

static void enlist(struct waitlist *l, struct task *t) {
  unlist(t);
  t->list = l;
  t->next_w = l->head;
  if (l->head) l->head->prev_w = t;
  l->head = t;
}

static void wake_all(struct waitlist *l) {
  while (l->head) {
    struct task *t = l->head;
    unlist(t);
    task_wake(t);
  }
}

/* --- the interrupt */

static void push_interrupt(lua_State *L, int signum) {
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, signum);
  lua_setfield(L, -2, "signal");
  if (luaL_newmetatable(L, MT_INTERRUPT)) {
    lua_pushliteral(L, "interrupted");
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

int task_interrupt_code(lua_State *L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, MT_INTERRUPT);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!same) return 0;
  lua_getfield(L, idx, "signal");
  int code = 128 + (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return code;
}

/* The main task (and code outside any task) stops at its next wait after SIGINT or SIGTERM;
   tasks of the server do not. A killed task that was running stops at its next wait. */
static void check_interrupt(lua_State *L) {
  struct task *t = *slot(L);
  if (t && t->killed) luaL_error(L, "cancelled");
  if (interrupted && (!t || t == main_task)) {
    push_interrupt(L, interrupted);
    lua_error(L);
  }
}

static void on_signal(int signum) {
  if (signal_waiters.head) {
    for (struct task *t = signal_waiters.head; t; t = t->next_w) t->signal = signum;
    wake_all(&signal_waiters);
    return;
  }
  if (interrupted) {   /* a second one: the user means it */
    signal(signum, SIG_DFL);
    raise(signum);
    return;
  }
  interrupted = signum;
  if (main_task) task_wake(main_task);
}

/* --- life and death of a task */

static void free_task(uv_handle_t *h) { free(h->data); }

static void end_task(struct task *t, int status) {
  unlist(t);
  if (t->end) t->end(t->co, status, t->ud);
  *slot(t->co) = NULL;
  if (t == main_task) main_task = NULL;
  luaL_unref(t->co, LUA_REGISTRYINDEX, t->ref);
  uv_close((uv_handle_t *)&t->timer, free_task);
}

static void resume(struct task *t, lua_State *from) {
  lua_State *co = t->co;
  int nres, status;
  if (t->running) return;   /* killed from inside its own wait: it stops there */
  if (t->killed) {
    lua_resetthread(co);   /* closes its to-be-closed values: transfers, timers */
    end_task(t, TASK_KILLED);
    return;
  }
  if (t->started && !t->waiting) return;   /* woken twice, or while running */
  t->waiting = 0;
  uv_timer_stop(&t->timer);
  int nargs = t->started ? 0 : t->nargs;
  t->started = 1;
  t->running = 1;
  status = lua_resume(co, from, nargs, &nres);
  t->running = 0;
  if (status == LUA_YIELD && t->waiting) return;
  if (status == LUA_YIELD) {   /* coroutine.yield in the task's own code: nobody would resume it */
    lua_resetthread(co);
    lua_pushliteral(co, "coroutine.yield() was called outside a coroutine of its own");
    status = LUA_ERRRUN;
  }
  end_task(t, status);
}

void tasks_run(lua_State *from) {
  struct task *t;
  while ((t = ready)) {
    if (!(ready = t->next)) ready_tail = NULL;
    t->queued = 0;
    resume(t, from);
  }
}

struct task *task_spawn(lua_State *L, int nargs, task_end_fn end, void *ud) {
  uv_loop_t *loop = loop_get(NULL);
  struct task *t = loop ? calloc(1, sizeof *t) : NULL;
  if (!t) return NULL;
  loop_on_signal(on_signal);
  t->co = lua_newthread(L);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_xmove(L, t->co, nargs + 1);
  *slot(t->co) = t;
  t->nargs = nargs;
  t->end = end;
  t->ud = ud;
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  task_wake(t);
  return t;
}

/* --- waiting */

static void on_deadline(uv_timer_t *h) { task_wake(h->data); }

int task_yield(lua_State *L, long long deadline, lua_KContext ctx, lua_KFunction k) {
  struct task *t = task_of(L);
  check_interrupt(L);
  t->waiting = 1;
  if (deadline > 0) {
    long long left = deadline - clock_now_ms();
    uv_timer_start(&t->timer, on_deadline, left > 0 ? (uint64_t)left : 0, 0);
  }
  return lua_yieldk(L, 0, ctx, k);
}

static void on_block_deadline(uv_timer_t *h) { (void)h; }

void task_block(lua_State *L, long long deadline) {
  check_interrupt(L);
  if (!ready) {
    uv_loop_t *loop = loop_get(NULL);
    if (loop && !block_timer_ready) block_timer_ready = uv_timer_init(loop, &block_timer) == 0;
    if (deadline > 0 && block_timer_ready) {
      long long left = deadline - clock_now_ms();
      uv_timer_start(&block_timer, on_block_deadline, left > 0 ? (uint64_t)left : 0, 0);
    }
    int alive = loop_run_once();
    if (block_timer_ready) uv_timer_stop(&block_timer);
    if (!alive && !ready) luaL_error(L, "kimictl waits for something that cannot happen (a bug)");
  }
  tasks_run(L);
  check_interrupt(L);
}

static void main_end(lua_State *co, int status, void *ud) {
  (void)co, (void)ud;
  main_status = status;
}

int task_main(lua_State *L, int nargs, lua_State **co) {
  struct task *t = task_spawn(L, nargs, main_end, NULL);
  if (!t) {
    lua_pushliteral(L, "cannot start the event loop");
    return LUA_ERRMEM;
  }
  main_task = t;
  *co = t->co;
  lua_pushthread(t->co);   /* the coroutine outlives the task on L's stack */
  lua_xmove(t->co, L, 1);
  while (main_status == -2) {
    tasks_run(NULL);
    if (main_status != -2) break;
    if (!loop_run_once() && !ready) {
      lua_pushliteral(*co, "kimictl waits for something that cannot happen (a bug)");
      return LUA_ERRRUN;
    }
  }
  return main_status;
}

/* --- core.loop */

/* core.loop.sleep(ms) */
static int sleep_k(lua_State *L, int status, lua_KContext deadline) {
  (void)status;
  while (clock_now_ms() < deadline) {
    if (task_of(L)) return task_yield(L, deadline, deadline, sleep_k);
    task_block(L, deadline);
  }
  return 0;
}

int api_sleep(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  return sleep_k(L, 0, clock_now_ms() + (ms > 0 ? ms : 0));
}

/* core.loop.wait_signal() -> "SIGINT" | "SIGTERM": the signal now stops nothing else. */
static int wait_signal_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  struct task *t = task_of(L);
  if (t->signal) {
    lua_pushstring(L, t->signal == SIGINT ? "SIGINT" : "SIGTERM");
    t->signal = 0;
    return 1;
  }
  enlist(&signal_waiters, t);
  return task_yield(L, 0, 0, wait_signal_k);
}

static int l_loop_wait_signal(lua_State *L) {
  if (!task_of(L)) return luaL_error(L, "core.loop.wait_signal must be called from a task");
  loop_on_signal(on_signal);
  return wait_signal_k(L, 0, 0);
}

/* An event: set once, and every task waiting on it goes on. */
struct event { int set; struct waitlist waiters; };

/* core.loop.event() -> ev */
static int l_loop_event(lua_State *L) {
  struct event *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, MT_EVENT);
  return 1;
}

/* ev:set() */
static int l_event_set(lua_State *L) {
  struct event *e = luaL_checkudata(L, 1, MT_EVENT);
  e->set = 1;
  wake_all(&e->waiters);
  return 0;
}

/* ev:wait(timeout_ms) -> true when set, false when the time ran out */
static int event_wait_k(lua_State *L, int status, lua_KContext deadline) {
  (void)status;
  struct event *e = lua_touserdata(L, 1);
  for (;;) {
    struct task *t = task_of(L);
    if (t) unlist(t);
    if (e->set || clock_now_ms() >= deadline) break;
    if (t) {
      enlist(&e->waiters, t);
      return task_yield(L, deadline, deadline, event_wait_k);
    }
    task_block(L, deadline);
  }
  lua_pushboolean(L, e->set);
  return 1;
}

static int l_event_wait(lua_State *L) {
  luaL_checkudata(L, 1, MT_EVENT);
  lua_Integer ms = luaL_checkinteger(L, 2);
  lua_settop(L, 1);
  return event_wait_k(L, 0, clock_now_ms() + (ms > 0 ? ms : 0));
}

/* An error in a task spawned from Lua is logged with its traceback. */
static void spawned_end(lua_State *co, int status, void *ud) {
  (void)ud;
  if (status == LUA_OK || status == TASK_KILLED) return;
  luaL_traceback(co, co, luaL_tolstring(co, -1, NULL), 0);
  log_msg(LOG_ERROR, "a task failed: %s", lua_tostring(co, -1));
  lua_pop(co, 2);
}

/* core.loop.spawn(fn, ...) */
static int l_loop_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!task_spawn(L, lua_gettop(L) - 1, spawned_end, NULL)) return luaL_error(L, "out of memory");
  return 0;
}

/* core.loop.catch_interrupt(err) -> "SIGINT" | "SIGTERM" | nil: when err is the interrupt
   (Ctrl-C, SIGTERM), the process is no longer interrupted and the signal is named; the REPL
   stops an answer this way and goes on. */
static int l_loop_catch_interrupt(lua_State *L) {
  int code = task_interrupt_code(L, 1);
  if (!code) return 0;
  interrupted = 0;
  lua_pushstring(L, code - 128 == SIGINT ? "SIGINT" : "SIGTERM");
  return 1;
}

int luaopen_core_loop(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "sleep", api_sleep }, { "wait_signal", l_loop_wait_signal }, { "event", l_loop_event },
    { "spawn", l_loop_spawn }, { "catch_interrupt", l_loop_catch_interrupt }, { NULL, NULL }
  };
  static const luaL_Reg event_methods[] = { { "set", l_event_set }, { "wait", l_event_wait }, { NULL, NULL } };
  api_class(L, MT_EVENT, event_methods);
  luaL_newlib(L, funcs);
  return 1;
}
