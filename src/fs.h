/* Files the way credentials need them: atomic replace, private modes. Pure C. */
#ifndef KIMICTL_FS_H
#define KIMICTL_FS_H
#include "buf.h"

#include <sys/types.h>

/* All return 0, or -1 with errno set. */
/* The whole file appended to out (EFBIG past out->max); on failure out is wiped and freed. */
int fs_read(const char *path, struct buf *out);
/* Temp file in the same directory, write, fsync, chmod, rename, fsync the directory:
   a reader sees the old file or the new one, never a mix, and a crash loses neither. */
int fs_write_atomic(const char *path, const char *data, size_t len, mode_t mode);
int fs_mkdir_p(const char *path, mode_t mode);
/* data added at the end of path (created with mode) by one write call after another, with
   O_APPEND, so that an append never interleaves with another's and a crash leaves at most a
   torn last piece, never damage before it. */
int fs_append(const char *path, const char *data, size_t len, mode_t mode);

#endif
