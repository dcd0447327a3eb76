/* Locks of the credential stores kimictl shares with the official Kimi clients: Kimi CLI's
   flock on a lock file, and kimi-code's lock directory (proper-lockfile style). Pure C. */
#ifndef KIMICTL_TOKEN_H
#define KIMICTL_TOKEN_H
#include <pthread.h>

enum token_lock_kind { TOKEN_LOCK_FLOCK, TOKEN_LOCK_DIR };

struct token_lock {
  enum token_lock_kind kind;
  int held;
  int fd;                  /* TOKEN_LOCK_FLOCK: the locked file */
  char path[4096];
  int beating;             /* TOKEN_LOCK_DIR: a thread keeps the directory's mtime fresh */
  pthread_t beat;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
};

/* A directory lock older than this is abandoned and may be taken over. */
#define TOKEN_DIR_STALE_MS 5000
#define TOKEN_DIR_BEAT_MS 2000

/* Take the lock, waiting up to timeout_ms. 0, or -1 with errno (ETIMEDOUT when held). */
int token_lock(struct token_lock *l, enum token_lock_kind kind, const char *path, long timeout_ms);
void token_unlock(struct token_lock *l);
/* SHA-256 of data as 64 lowercase hex digits (out must hold 65 bytes). */
void token_fingerprint(const char *data, size_t len, char *out);

#endif
