/* Process helpers that need no Lua: the running binary, detached children, and a secret
   typed at a terminal. Pure C. */
#ifndef KIMICTL_PROC_H
#define KIMICTL_PROC_H
#include "buf.h"

#include <sys/types.h>

/* All return 0, or -1 with errno set. */

int proc_exe(char *out, size_t size);   /* the absolute path of the running binary (to run it) */
int proc_setsid(void);                  /* lead a new session; already leading one is fine */
int proc_detach(void);                  /* proc_setsid, and ignore SIGPIPE and SIGHUP */

struct proc_child {
  pid_t pid;      /* 0 once reaped */
  int out;        /* the read end of the child's stdout, -1 once closed */
  int kill;       /* closing kills the child's process group (else the child runs on) */
  size_t dropped; /* bytes of output past out->max, read and thrown away */
};

enum { PROC_STDERR_INHERIT, PROC_STDERR_NULL, PROC_STDERR_STDOUT };

/* Start argv[0] (a path) with argv in a session of its own, default signal dispositions and
   an empty signal mask, stdin from /dev/null, stdout a pipe to c->out, stderr inherited,
   /dev/null or the same pipe (PROC_STDERR_*). No other descriptor of ours reaches it: they
   are all close-on-exec. */
int proc_spawn_detached(struct proc_child *c, char *const argv[], int stderr_mode);
/* Without waiting: the child's stdout into out as far as it has come (bytes past out->max
   are read and dropped, so the child never blocks on a full pipe), then, after EOF, its
   exit in *status (as waitpid gives it). 1 once it has ended, 0 not yet, -1 with errno. */
int proc_collect_some(struct proc_child *c, struct buf *out, int *status);
/* Closes the pipe; with c->kill, also kills the child's process group and reaps the child. */
void proc_child_close(struct proc_child *c);

/* One line from stdin into out, without its line end. On a terminal: the prompt on stderr
   and no echo, the terminal restored afterwards (a fatal signal restores it, then kills).
   1 at end of input with nothing read. */
int proc_read_secret(const char *prompt, struct buf *out);

#endif
