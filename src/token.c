/* Credential store locks: an flock'd file (Kimi CLI) or a lock directory refreshed while
   held and taken over when stale (kimi-code). */
#include "token.h"
#include "fs.h"

#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(int clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Touch the lock directory every TOKEN_DIR_BEAT_MS until told to stop, so that other
   processes never mistake a slow refresh for an abandoned lock. */
static void *heartbeat(void *arg) {
  struct token_lock *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += TOKEN_DIR_BEAT_MS / 1000;
    until.tv_nsec += (TOKEN_DIR_BEAT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    if (pthread_cond_timedwait(&l->cv, &l->mu, &until) == ETIMEDOUT && !l->stop)
      utimensat(AT_FDCWD, l->path, NULL, 0);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* 1 when the lock directory is older than TOKEN_DIR_STALE_MS (its inode in *ino),
   0 when it is held, -1 when it is gone. */
static int dir_state(const char *path, ino_t *ino) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  *ino = st.st_ino;
  return now_ms(CLOCK_REALTIME) - (long long)st.st_mtime * 1000 > TOKEN_DIR_STALE_MS;
}

static int lock_dir(struct token_lock *l, long timeout_ms) {
  long long deadline = now_ms(CLOCK_MONOTONIC) + timeout_ms;
  static int seeded;
  if (!seeded) srand((unsigned)getpid() ^ (unsigned)now_ms(CLOCK_REALTIME)), seeded = 1;
  for (;;) {
    ino_t ino, again;
    if (mkdir(l->path, 0700) == 0) break;
    if (errno != EEXIST) return -1;
    int state = dir_state(l->path, &ino);
    if (state < 0) continue;   /* released meanwhile: try again at once */
    /* Abandoned by a process that died: remove it, but only if it is still the same
       stale directory (a narrow check, as proper-lockfile makes none). A directory that
       cannot be removed is waited on like a held one. */
    if (state == 1 && dir_state(l->path, &again) == 1 && again == ino && rmdir(l->path) == 0) continue;
    if (now_ms(CLOCK_MONOTONIC) >= deadline) { errno = ETIMEDOUT; return -1; }
    sleep_ms(50 + rand() % 100);
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->stop = 0;
  l->beating = pthread_create(&l->beat, NULL, heartbeat, l) == 0;
  return 0;
}

int token_lock(struct token_lock *l, enum token_lock_kind kind, const char *path, long timeout_ms) {
  memset(l, 0, sizeof *l);
  l->fd = -1;
  l->kind = kind;
  if (snprintf(l->path, sizeof l->path, "%s", path) >= (int)sizeof l->path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int rc = kind == TOKEN_LOCK_FLOCK ? fs_lock(path, timeout_ms, &l->fd) : lock_dir(l, timeout_ms);
  l->held = rc == 0;
  return rc;
}

void token_unlock(struct token_lock *l) {
  if (!l->held) return;
  l->held = 0;
  if (l->kind == TOKEN_LOCK_FLOCK) {
    fs_unlock(l->fd);
    l->fd = -1;
    return;
  }
  if (l->beating) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->beat, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    l->beating = 0;
  }
  rmdir(l->path);
}

void token_fingerprint(const char *data, size_t len, char *out) {
  br_sha256_context c;
  unsigned char sum[32];
  br_sha256_init(&c);
  br_sha256_update(&c, data, len);
  br_sha256_out(&c, sum);
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", sum[i]);
}
