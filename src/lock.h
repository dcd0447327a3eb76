/* Locks of the credential stores kimictl shares with the official Kimi clients: Kimi CLI's
   flock on a lock file, and kimi-code's lock directory (proper-lockfile style). Pure C. */
#ifndef KIMICTL_LOCK_H
#define KIMICTL_LOCK_H
#include <pthread.h>

enum lock_kind { LOCK_FLOCK, LOCK_DIR };

struct lock {
  enum lock_kind kind;
  int held;
  int fd;                  /* LOCK_FLOCK: the locked file */
  char path[4096];
  pthread_t beat;          /* LOCK_DIR: a thread keeps the directory's mtime fresh */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
};

/* A directory lock older than this is abandoned and may be taken over. */
#define LOCK_DIR_STALE_MS 5000
#define LOCK_DIR_BEAT_MS 2000

/* Name the lock without taking it: 0, or -1 (ENAMETOOLONG). */
int lock_init(struct lock *l, enum lock_kind kind, const char *path);
/* One try, without waiting: 0 when taken; -1 with errno EWOULDBLOCK when another holder
   has it (try again after lock_pause_ms), any other errno when it cannot be taken. */
int lock_try(struct lock *l);
long lock_pause_ms(void);   /* 20-100 ms, jittered so that waiters do not retry in step */
/* Take the lock, waiting up to timeout_ms. 0, or -1 with errno: ETIMEDOUT when another
   holder kept it, ENOTDIR when a LOCK_DIR path is something other than a directory. */
int lock_take(struct lock *l, enum lock_kind kind, const char *path, long timeout_ms);
/* Release a held lock (and what a failed try opened); releasing again does nothing. */
void lock_release(struct lock *l);

#endif
