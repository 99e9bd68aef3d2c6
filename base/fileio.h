/* Durable file helpers shared by the primary and the replica: whole reads
 * and writes at an offset, directory fsync, mkdir -p, and atomic whole-file
 * replacement (temp file, fsync, rename, fsync of the directory).  Every
 * function returns 0 or -errno. */
#ifndef REPLITE_SYNC_FILEIO_H
#define REPLITE_SYNC_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* pwrite/pread all of buf at off, retrying on EINTR and short transfers.
 * fileio_read_all fails with -EIO when the file ends first. */
int fileio_write_all(int fd, const void *buf, size_t len, uint64_t off);
int fileio_read_all(int fd, void *buf, size_t len, uint64_t off);
int fileio_fsync_dir(const char *dir);
/* fileio_fsync_dir of the directory holding path (0 or -errno). */
int fileio_fsync_parent(const char *path);
int fileio_mkdir_p(const char *path);
/* Write a whole file atomically: "path.tmp" is written and fsync'd, renamed
 * over path, then the directory is fsync'd.  A crash at any point leaves
 * either the old or the new content at path (and maybe a stale temp). */
int fileio_write_file_atomic(const char *path, const void *buf, size_t len);
/* Read a whole file into a malloc'd buffer (NUL terminated). */
int fileio_read_file(const char *path, char **out, size_t *len);
/* Copy src to dst durably (dst replaced atomically, through "dst.tmp"). */
int fileio_copy_file(const char *src, const char *dst);
/* The same from an open descriptor (its whole content, read with
 * positioned reads: the descriptor's offset is not used). */
int fileio_copy_fd(int in, const char *dst);
/* Remove path and everything below it (symbolic links are removed, not
 * followed).  A path that does not exist is no error. */
int fileio_remove_tree(const char *path);

#endif
