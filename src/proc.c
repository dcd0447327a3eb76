/* Process helpers: the running binary's path, detached children by posix_spawn (never a
   bare fork: kimictl has threads), and reading a secret with the terminal's echo off. */
#if defined(__linux__)
#define _GNU_SOURCE   /* pipe2 and POSIX_SPAWN_SETSID on glibc; musl has them anyway */
#endif
#include "proc.h"
#include "clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif

extern char **environ;

/* On Linux, once the binary was replaced or removed (kimictl upgraded while serve runs), the
   link reads "PATH (deleted)": the answer is then /proc/self/exe, which still runs this binary
   (a refresh worker of the same version). The suffix tells, not a stat of the link: under
   valgrind the link itself is the tool's binary, while readlink reports the program's path. */
int proc_exe(char *out, size_t size) {
#if defined(__linux__)
  static const char self[] = "/proc/self/exe", gone[] = " (deleted)";
  const size_t suffix = sizeof gone - 1;
  ssize_t n = readlink(self, out, size);
  if (n < 0) return -1;
  if ((size_t)n >= size || size < sizeof self) {
    errno = ENAMETOOLONG;
    return -1;
  }
  out[n] = '\0';
  if ((size_t)n > suffix && memcmp(out + n - suffix, gone, suffix) == 0) memcpy(out, self, sizeof self);
  return 0;
#elif defined(__APPLE__)
  char raw[PATH_MAX], real[PATH_MAX];
  uint32_t len = sizeof raw;
  if (_NSGetExecutablePath(raw, &len) != 0 || !realpath(raw, real)) return -1;
  if (strlen(real) >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(out, real);
  return 0;
#else
  (void)out, (void)size;
  errno = ENOSYS;
  return -1;
#endif
}

int proc_setsid(void) {
  if (setsid() >= 0 || (errno == EPERM && getsid(0) == getpid())) return 0;
  return -1;
}

int proc_detach(void) {
  if (proc_setsid() != 0) return -1;
  /* a reader that went away, or a terminal that closed, must not stop the work half done */
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGHUP, SIG_IGN) == SIG_ERR) return -1;
  return 0;
}

static int cloexec_pipe(int fds[2]) {
#if defined(__linux__)
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) != 0) return -1;
  if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0) return 0;
  int e = errno;
  close(fds[0]), close(fds[1]);
  errno = e;
  return -1;
#endif
}

static void set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* Ours are close-on-exec from the start, but not every descriptor others open for us is
   (libcurl's wakeup socket pair, Lua's io.open): mark all of them above stderr, so that a
   child gets none. */
static void cloexec_all(void) {
#if defined(__linux__)
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    for (struct dirent *e; (e = readdir(d));) {
      int fd = atoi(e->d_name);   /* "." and ".." are 0 */
      if (fd > 2 && fd != dirfd(d)) set_cloexec(fd);
    }
    closedir(d);
    return;
  }
#endif
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++) set_cloexec(fd);
}

/* The child's descriptors and attributes; posix_spawn's error number, or 0. */
static int spawn(pid_t *pid, char *const argv[], int out, int stderr_mode) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, all;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef POSIX_SPAWN_SETSID
  flags |= POSIX_SPAWN_SETSID;   /* else the child's own setsid() does it */
#endif
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc) return rc;
  if (!(rc = posix_spawnattr_init(&attr))) {
    /* dup2 first: the pipe may have been given descriptor 0 or 2 */
    rc = posix_spawn_file_actions_adddup2(&fa, out, 1);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc && stderr_mode == PROC_STDERR_NULL) rc = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (!rc && stderr_mode == PROC_STDERR_STDOUT) rc = posix_spawn_file_actions_adddup2(&fa, out, 2);
    if (!rc) rc = posix_spawnattr_setflags(&attr, flags);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = posix_spawn(pid, argv[0], &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

int proc_spawn_detached(struct proc_child *c, char *const argv[], int stderr_mode) {
  int fds[2];
  c->pid = 0;
  c->out = -1;
  c->dropped = 0;
  if (cloexec_pipe(fds) != 0) return -1;
  cloexec_all();
  int rc = spawn(&c->pid, argv, fds[1], stderr_mode);
  close(fds[1]);
  if (rc) {
    close(fds[0]);
    c->pid = 0;
    errno = rc;
    return -1;
  }
  c->out = fds[0];
  int flags = fcntl(c->out, F_GETFL);   /* collected a piece at a time, never waited on */
  if (flags < 0 || fcntl(c->out, F_SETFL, flags | O_NONBLOCK) != 0) return -1;
  return 0;
}

/* One read from the child's stdout: into out while it has room, else dropped. 0 at EOF. */
static ssize_t read_some(struct proc_child *c, struct buf *out) {
  char drop[4096];
  int fd = c->out;
  size_t room = out->max ? out->max - out->len : sizeof drop;
  if (room > sizeof drop) room = sizeof drop;
  if (room == 0) {
    ssize_t n = read(fd, drop, sizeof drop);
    secure_zero(drop, sizeof drop);
    if (n > 0) c->dropped += (size_t)n;
    return n;
  }
  if (buf_reserve(out, room) != 0) return -1;
  ssize_t n = read(fd, out->p + out->len, room);
  if (n > 0) out->len += (size_t)n, out->p[out->len] = '\0';
  return n;
}

int proc_collect_some(struct proc_child *c, struct buf *out, int *status) {
  while (c->out >= 0) {
    ssize_t n = read_some(c, out);
    if (n == 0) close(c->out), c->out = -1;
    else if (n < 0 && errno == EAGAIN) return 0;
    else if (n < 0 && errno != EINTR) return -1;
  }
  pid_t r = waitpid(c->pid, status, WNOHANG);
  if (r == c->pid) {
    c->pid = 0;
    return 1;
  }
  return r < 0 && errno != EINTR ? -1 : 0;
}

void proc_child_close(struct proc_child *c) {
  if (c->out >= 0) close(c->out);
  c->out = -1;
  if (c->kill && c->pid > 0) {   /* the child leads its own group: the group goes with it */
    kill(-c->pid, SIGKILL);
    while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {}
    c->pid = 0;
  }
}

/* The terminal's settings while echo is off, for the signal handler to put back. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;
static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NFATAL (sizeof fatal_signals / sizeof *fatal_signals)

static void restore_and_die(int sig) {
  if (tty_changed) tcsetattr(0, TCSANOW, &saved_tty);
  signal(sig, SIG_DFL);
  raise(sig);   /* delivered, with the default action, once this handler returns */
}

static void echo_on(const struct sigaction old[NFATAL]) {
  tcsetattr(0, TCSANOW, &saved_tty);
  tty_changed = 0;
  for (size_t i = 0; i < NFATAL; i++) sigaction(fatal_signals[i], &old[i], NULL);
}

/* A signal that would end the process puts the terminal back first; an ignored one stays
   ignored. */
static int echo_off(struct sigaction old[NFATAL]) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = restore_and_die;
  sigemptyset(&sa.sa_mask);
  if (tcgetattr(0, &saved_tty) != 0) return -1;
  for (size_t i = 0; i < NFATAL; i++) {
    sigaction(fatal_signals[i], NULL, &old[i]);
    if (old[i].sa_handler != SIG_IGN) sigaction(fatal_signals[i], &sa, NULL);
  }
  struct termios quiet = saved_tty;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  tty_changed = 1;
  if (tcsetattr(0, TCSAFLUSH, &quiet) == 0) return 0;
  int e = errno;
  echo_on(old);
  errno = e;
  return -1;
}

/* One byte at a time, so that nothing past the line is taken from stdin. */
static int read_line(struct buf *out) {
  char c = 0;
  int rc = 0;
  for (;;) {
    ssize_t n = read(0, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -1;
    else if (n == 0) rc = out->len ? 0 : 1;
    else if (c != '\n' && buf_add(out, &c, 1) != 0) rc = -1;
    else if (c != '\n') continue;
    break;
  }
  secure_zero(&c, 1);
  return rc;
}

static void write_str(int fd, const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;   /* a prompt that cannot be shown does not stop the reading */
    s += w, n -= (size_t)w;
  }
}

int proc_read_secret(const char *prompt, struct buf *out) {
  struct sigaction old[NFATAL];
  int tty = isatty(0);
  if (tty) {   /* echo off first: it drops typeahead, never what answers the prompt */
    if (echo_off(old) != 0) return -1;
    write_str(2, prompt);
  }
  int rc = read_line(out), e = errno;
  if (tty) echo_on(old), write_str(2, "\n");
  if (rc == 0 && out->len > 0 && out->p[out->len - 1] == '\r') out->p[--out->len] = '\0';
  errno = e;
  return rc;
}
