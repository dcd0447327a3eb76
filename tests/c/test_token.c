/* Unit tests for the credential store locks: Kimi CLI's flock and kimi-code's lock
   directory (timeout, release, stale takeover, heartbeat), and fingerprints. */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok) {
  if (!ok) failures++;
  printf("%s - token: %s\n", ok ? "ok" : "not ok", name);
}

static void age(const char *path, int seconds) {
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= seconds;
  t[1] = t[0];
  utimensat(AT_FDCWD, path, t, 0);
}

int main(void) {
  char dir[] = "/tmp/kimictl-token-XXXXXX", path[256];
  struct token_lock a, b;
  struct stat st;
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;

  snprintf(path, sizeof path, "%s/kimi-code.lock", dir);
  check("flock taken", token_lock(&a, TOKEN_LOCK_FLOCK, path, 100) == 0);
  check("flock held elsewhere times out", token_lock(&b, TOKEN_LOCK_FLOCK, path, 100) != 0 && errno == ETIMEDOUT);
  token_unlock(&a);
  check("flock free after unlock", token_lock(&b, TOKEN_LOCK_FLOCK, path, 100) == 0);
  token_unlock(&b);
  check("lock file is 0600", stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

  snprintf(path, sizeof path, "%s/dir.lock", dir);
  check("lock directory taken", token_lock(&a, TOKEN_LOCK_DIR, path, 100) == 0 && stat(path, &st) == 0);
  check("lock directory held times out", token_lock(&b, TOKEN_LOCK_DIR, path, 300) != 0 && errno == ETIMEDOUT);
  age(path, 4);   /* nearly stale: the heartbeat must freshen it before anyone takes over */
  struct timespec pause = { 2, 300 * 1000000L };
  nanosleep(&pause, NULL);
  check("heartbeat keeps the directory fresh",
        stat(path, &st) == 0 && time(NULL) - st.st_mtime <= 1 && token_lock(&b, TOKEN_LOCK_DIR, path, 100) != 0);
  token_unlock(&a);
  check("lock directory removed on unlock", stat(path, &st) != 0 && errno == ENOENT);

  mkdir(path, 0700);   /* left behind by a process that died */
  age(path, 10);
  check("stale lock directory is taken over", token_lock(&a, TOKEN_LOCK_DIR, path, 100) == 0);
  token_unlock(&a);
  token_unlock(&a);    /* a second unlock does nothing */
  check("double unlock is harmless", stat(path, &st) != 0);

  char inner[300];
  mkdir(path, 0700);   /* stale but not removable (not empty): wait and time out, never spin */
  snprintf(inner, sizeof inner, "%s/x", path);
  mkdir(inner, 0700);
  age(path, 10);
  check("unremovable stale directory times out", token_lock(&a, TOKEN_LOCK_DIR, path, 300) != 0 && errno == ETIMEDOUT);
  rmdir(inner);
  rmdir(path);

  char fp[65];
  token_fingerprint("abc", 3, fp);
  check("fingerprint is SHA-256", strcmp(fp, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);

  snprintf(path, sizeof path, "rm -rf %s", dir);
  if (system(path) != 0) return 1;
  return failures != 0;
}
