/* Unit tests for the credential store locks: Kimi CLI's flock and kimi-code's lock
   directory (timeout, release, stale takeover, heartbeat, something else in the way). */
#include "clock.h"
#include "lock.h"

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
  printf("%s - lock: %s\n", ok ? "ok" : "not ok", name);
}

static void age(const char *path, int seconds) {
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= seconds;
  t[1] = t[0];
  utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW);
}

static int fresh(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && time(NULL) - st.st_mtime < 10;
}

/* Polls until the heartbeat has touched the directory: a wide deadline, no race. */
static int freshened_within(const char *path, long ms) {
  long long deadline = clock_now_ms() + ms;
  while (!fresh(path)) {
    if (clock_now_ms() >= deadline) return 0;
    sleep_ms(50);
  }
  return 1;
}

/* lock_take fails fast with want_errno; 0 when it did. */
static int fails_fast(enum lock_kind kind, const char *path, int want_errno) {
  struct lock l;
  long long t0 = clock_now_ms();
  int rc = lock_take(&l, kind, path, 5000), e = errno;
  if (rc == 0) lock_release(&l);
  return rc != 0 && e == want_errno && clock_now_ms() - t0 < 2000;
}

static void test_flock(const char *dir) {
  char path[256];
  struct lock a, b;
  struct stat st;
  snprintf(path, sizeof path, "%s/kimi-code.lock", dir);
  check("flock taken", lock_take(&a, LOCK_FLOCK, path, 100) == 0);
  check("flock held elsewhere times out", lock_take(&b, LOCK_FLOCK, path, 100) != 0 && errno == ETIMEDOUT);
  lock_release(&a);
  check("flock free after release", lock_take(&b, LOCK_FLOCK, path, 100) == 0);
  lock_release(&b);
  lock_release(&b);
  check("lock file is 0600", stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
}

static void test_dir(const char *dir) {
  char path[256], inner[300];
  struct lock a, b;
  struct stat st;
  snprintf(path, sizeof path, "%s/dir.lock", dir);
  check("lock directory taken", lock_take(&a, LOCK_DIR, path, 100) == 0 && stat(path, &st) == 0);
  check("lock directory held times out", lock_take(&b, LOCK_DIR, path, 300) != 0 && errno == ETIMEDOUT);
  age(path, 100);   /* the heartbeat must make it fresh again */
  check("heartbeat keeps the directory fresh", freshened_within(path, 10000));
  check("a freshened lock is still held", lock_take(&b, LOCK_DIR, path, 100) != 0 && errno == ETIMEDOUT);
  lock_release(&a);
  check("lock directory removed on release", stat(path, &st) != 0 && errno == ENOENT);

  mkdir(path, 0700);   /* left behind by a process that died */
  age(path, 10);
  check("stale lock directory is taken over", lock_take(&a, LOCK_DIR, path, 100) == 0);
  lock_release(&a);
  lock_release(&a);    /* a second release does nothing */
  check("double release is harmless", stat(path, &st) != 0);

  mkdir(path, 0700);   /* stale but not removable (not empty): wait and time out, never spin */
  snprintf(inner, sizeof inner, "%s/x", path);
  mkdir(inner, 0700);
  age(path, 10);
  check("unremovable stale directory times out",
        lock_take(&a, LOCK_DIR, path, 300) != 0 && errno == ETIMEDOUT);
  rmdir(inner);
  rmdir(path);
}

static void test_in_the_way(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/dangling.lock", dir);
  if (symlink("/nonexistent/kimictl-lock-target", path) != 0) perror("symlink");
  check("dangling symlink at the lock path fails at once with ENOTDIR", fails_fast(LOCK_DIR, path, ENOTDIR));
  snprintf(path, sizeof path, "%s/file.lock", dir);
  close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  check("plain file at the lock path fails at once with ENOTDIR", fails_fast(LOCK_DIR, path, ENOTDIR));
  snprintf(path, sizeof path, "%s/absent/x.lock", dir);
  check("missing parent directory fails at once", fails_fast(LOCK_DIR, path, ENOENT));
}

int main(void) {
  char dir[] = "/tmp/kimictl-lock-XXXXXX", cmd[256];
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
  test_flock(dir);
  test_dir(dir);
  test_in_the_way(dir);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return failures != 0;
}
