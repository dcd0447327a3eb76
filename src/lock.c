/* Credential store locks: an flock'd file (Kimi CLI) or a lock directory refreshed while
   held and taken over when stale (kimi-code). Tries never wait; lock_take waits by deadline. */
#include "lock.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The pause between two tries: jittered, so that waiters do not retry in step. */
long lock_pause_ms(void) {
  static int seeded;
  if (!seeded) srand((unsigned)getpid() ^ (unsigned)clock_real_ms()), seeded = 1;
  return 20 + rand() % 80;
}

static int try_flock(struct lock *l) {
  if (l->fd < 0 && (l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) return -1;
  if (flock(l->fd, LOCK_EX | LOCK_NB) == 0) return 0;
  if (errno == EINTR) errno = EWOULDBLOCK;
  return -1;
}

/* Touch the lock directory every LOCK_DIR_BEAT_MS until told to stop, so that other
   processes never mistake a slow refresh for an abandoned lock. */
static void *heartbeat(void *arg) {
  struct lock *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    long long at = clock_real_ms() + LOCK_DIR_BEAT_MS;
    struct timespec until = { (time_t)(at / 1000), (long)(at % 1000) * 1000000L };
    if (pthread_cond_timedwait(&l->cv, &l->mu, &until) == ETIMEDOUT && !l->stop)
      utimensat(AT_FDCWD, l->path, NULL, 0);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* The lock path's state: 1 stale directory, 0 held directory, -1 gone (ENOENT) or not a
   directory (ENOTDIR: a file or a symbolic link, which no waiting will ever remove). lstat,
   so that a dangling symbolic link is seen for what it is. */
static int dir_state(const char *path, ino_t *ino) {
  struct stat st;
  if (lstat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  *ino = st.st_ino;
  return clock_real_ms() - (long long)st.st_mtime * 1000 > LOCK_DIR_STALE_MS;
}

static int start_heartbeat(struct lock *l) {
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->stop = 0;
  int rc = pthread_create(&l->beat, NULL, heartbeat, l);
  if (rc == 0) return 0;
  /* Without a heartbeat others would take the lock over in 5 s: do not hold it at all. */
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  rmdir(l->path);
  errno = rc;
  return -1;
}

static int try_dir(struct lock *l) {
  for (;;) {
    ino_t ino, again;
    if (mkdir(l->path, 0700) == 0) return start_heartbeat(l);
    if (errno != EEXIST) return -1;
    int state = dir_state(l->path, &ino);
    if (state < 0 && errno != ENOENT) return -1;
    /* Abandoned by a process that died: remove it, but only if it is still the same
       stale directory (a narrow check, as proper-lockfile makes none), and try again at
       once. No spin: each pass removes a directory that sat unchanged for 5 s. One
       that cannot be removed is waited on like a held one. */
    if (state == 1 && dir_state(l->path, &again) == 1 && again == ino && rmdir(l->path) == 0) continue;
    errno = EWOULDBLOCK;
    return -1;
  }
}

int lock_init(struct lock *l, enum lock_kind kind, const char *path) {
  memset(l, 0, sizeof *l);
  l->fd = -1;
  l->kind = kind;
  if (snprintf(l->path, sizeof l->path, "%s", path) < (int)sizeof l->path) return 0;
  errno = ENAMETOOLONG;
  return -1;
}

int lock_try(struct lock *l) {
  int rc = l->kind == LOCK_FLOCK ? try_flock(l) : try_dir(l);
  l->held = rc == 0;
  return rc;
}

int lock_take(struct lock *l, enum lock_kind kind, const char *path, long timeout_ms) {
  if (lock_init(l, kind, path) != 0) return -1;
  long long deadline = clock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  while (lock_try(l) != 0) {
    long long left = deadline - clock_now_ms();
    if (errno != EWOULDBLOCK || left <= 0) {
      int e = left <= 0 && errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      lock_release(l);
      errno = e;
      return -1;
    }
    long p = lock_pause_ms();
    sleep_ms(p < left ? p : (long)left);
  }
  return 0;
}

void lock_release(struct lock *l) {
  if (l->kind == LOCK_FLOCK && l->fd >= 0) {   /* held, or opened by a try that failed */
    if (l->held) flock(l->fd, LOCK_UN);
    close(l->fd);
    l->fd = -1;
  }
  if (!l->held) return;
  l->held = 0;
  if (l->kind == LOCK_FLOCK) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_signal(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->beat, NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  rmdir(l->path);
}
