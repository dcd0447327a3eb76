/* The process's one event loop (libuv): every socket, timer and signal of kimictl waits on
   it. Pure C. */
#ifndef KIMICTL_LOOP_H
#define KIMICTL_LOOP_H
#include <uv.h>

/* The loop, started on first use with SIGPIPE ignored and SIGINT/SIGTERM watched; NULL
   (and *why set to libuv's words) when it cannot start. */
uv_loop_t *loop_get(const char **why);
/* Called on SIGINT or SIGTERM, from the loop (never from a signal handler). */
void loop_on_signal(void (*fn)(int signum));
/* One turn: wait for something to happen and run its callbacks. 0 when nothing is left to
   wait for (no active handle or request), else 1. */
int loop_run_once(void);
/* Stop the signal watchers, close every handle and the loop. */
void loop_close(void);

#endif
