/* The event loop: one libuv loop for the process, with the signals a command answers. */
#include "loop.h"

#include <signal.h>
#include <stdlib.h>

static uv_loop_t loop;
static int started;
static uv_signal_t signals[2];
static void (*signal_hook)(int signum);

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (signal_hook) signal_hook(signum);
}

/* Signal watchers must not keep the loop alive: a command waiting for nothing is a bug. */
static int watch_signals(void) {
  static const int nums[2] = { SIGINT, SIGTERM };
  for (int i = 0; i < 2; i++) {
    int rc = uv_signal_init(&loop, &signals[i]);
    if (rc == 0) rc = uv_signal_start(&signals[i], on_signal, nums[i]);
    if (rc != 0) return rc;
    uv_unref((uv_handle_t *)&signals[i]);
  }
  return 0;
}

uv_loop_t *loop_get(const char **why) {
  static int failed;
  if (started) return &loop;
  int rc = failed ? failed : uv_loop_init(&loop);
  if (rc == 0) {
    signal(SIGPIPE, SIG_IGN);   /* a peer that went away is an EPIPE, handled where it happens */
    started = 1;
    if ((rc = watch_signals()) == 0) return &loop;
    loop_close();
  }
  failed = rc;
  if (why) *why = uv_strerror(rc);
  return NULL;
}

void loop_on_signal(void (*fn)(int signum)) { signal_hook = fn; }

int loop_run_once(void) {
  if (!started || !uv_loop_alive(&loop)) return 0;
  uv_run(&loop, UV_RUN_ONCE);
  return 1;
}

static void close_handle(uv_handle_t *h, void *ud) {
  (void)ud;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Handles still open belong to code that is ending with the process: close them all and
   let their callbacks run, so that the loop closes cleanly. A task woken at the very end (a
   request killed when serve closes its connections) leaves task_wake's uv_stop pending, and
   uv_run then returns before any callback: run until none is left. */
void loop_close(void) {
  if (!started) return;
  uv_walk(&loop, close_handle, NULL);
  while (uv_run(&loop, UV_RUN_DEFAULT) != 0) continue;
  if (uv_loop_close(&loop) != 0) return;   /* a handle outlived its close: the exit ends it */
  started = 0;
}
