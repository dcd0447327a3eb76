/* Files the way credentials need them: atomic replace, private modes, advisory locks. */
#ifndef KIMICTL_FS_H
#define KIMICTL_FS_H
#include <stddef.h>
#include <sys/types.h>

/* All return 0, or -1 with errno set. */
int fs_read(const char *path, char **data, size_t *len);   /* *data is malloc'd, NUL-ended */
/* Temp file in the same directory, write, fsync, chmod, rename, fsync the directory:
   a reader sees the old file or the new one, never a mix, and a crash loses neither. */
int fs_write_atomic(const char *path, const char *data, size_t len, mode_t mode);
int fs_mkdir_p(const char *path, mode_t mode);
/* flock(LOCK_EX) on path (created 0600), retried until timeout_ms; ETIMEDOUT then. */
int fs_lock(const char *path, long timeout_ms, int *fd);
void fs_unlock(int fd);

#endif
