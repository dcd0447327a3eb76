/* Reading whole files, atomic writes and mkdir -p, in POSIX. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fs_read(const char *path, struct buf *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r;
  do {   /* straight into the buffer: a secret leaves no copy on the stack */
    if (buf_reserve(out, 4096) != 0 && buf_reserve(out, 1) != 0) r = -1;
    else if ((r = read(fd, out->p + out->len, out->cap - out->len - 1)) > 0) out->len += (size_t)r;
  } while (r > 0 || (r < 0 && errno == EINTR));
  int e = errno;
  close(fd);
  if (r < 0) {
    buf_free(out);
    errno = e;
    return -1;
  }
  out->p[out->len] = '\0';
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

static void fsync_dir(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
  int fd = open(dir, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) { fsync(fd); close(fd); }
}

int fs_write_atomic(const char *path, const char *data, size_t len, mode_t mode) {
  char tmp[4096];
  static unsigned counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx%x", path, (long)getpid(),
                   (unsigned long)ts.tv_nsec, counter++);
  if (n < 0 || (size_t)n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
  if (fd < 0) return -1;
  if (write_all(fd, data, len) != 0 || fchmod(fd, mode & 0777) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    errno = e;
    return -1;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  fsync_dir(path);
  return 0;
}

int fs_mkdir_p(const char *path, mode_t mode) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) { errno = n ? ENAMETOOLONG : ENOENT; return -1; }
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      struct stat st;   /* an existing directory is fine, whatever mkdir said (EISDIR on "/") */
      if (mkdir(buf, mode) != 0 && errno != EEXIST && (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)))
        return -1;
      *p = c;
      if (c == '\0') break;
    }
  }
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
  return 0;
}

int fs_append(const char *path, const char *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode & 0777);
  if (fd < 0) return -1;
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      errno = e;
      return -1;
    }
    data += n, len -= (size_t)n;
  }
  return close(fd);
}
