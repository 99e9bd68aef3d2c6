#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temp file an atomic replacement of path goes through. */
static char *tmp_path(const char *path)
{
	char *tmp;

	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		return NULL;
	}
	return tmp;
}

int fileio_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fileio_read_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			return -EIO; /* short file */
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fileio_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int rv;

	if (copy == NULL)
		return -ENOMEM;
	rv = fileio_fsync_dir(dirname(copy));
	free(copy);
	return rv;
}

int fileio_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0) {
		return -errno;
	}
	if (fsync(fd) != 0) {
		rv = -errno;
	}
	close(fd);
	return rv;
}

int fileio_mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof buf) {
		return -ENAMETOOLONG;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
				return -errno;
			}
			buf[i] = c;
		}
	}
	return 0;
}

static char *parent_dir(const char *path)
{
	char *copy = strdup(path);
	char *dir;

	if (copy == NULL) {
		return NULL;
	}
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

static int replace_durably(const char *tmp, const char *path)
{
	char *dir;
	int rv;

	if (rename(tmp, path) != 0) {
		rv = -errno;
		unlink(tmp);
		return rv;
	}
	dir = parent_dir(path);
	if (dir == NULL) {
		return -ENOMEM;
	}
	rv = fileio_fsync_dir(dir);
	free(dir);
	return rv;
}

int fileio_write_file_atomic(const char *path, const void *buf, size_t len)
{
	char *tmp = tmp_path(path);
	int fd, rv;

	if (tmp == NULL) {
		return -ENOMEM;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rv = -errno;
		goto out;
	}
	rv = fileio_write_all(fd, buf, len, 0);
	if (rv == 0 && fsync(fd) != 0) {
		rv = -errno;
	}
	close(fd);
	if (rv != 0) {
		unlink(tmp);
		goto out;
	}
	rv = replace_durably(tmp, path);
out:
	free(tmp);
	return rv;
}

int fileio_read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	rv = fileio_read_all(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (rv != 0) {
		free(buf);
		return rv;
	}
	buf[st.st_size] = '\0';
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

/* Copy in (from offset 0 to its end) into out: copy_file_range first,
 * which copies inside the kernel (and shares the blocks on filesystems
 * with reflinks), then read/write where it is not supported. */
static int copy_contents(int in, int out)
{
	char buf[1 << 16];
	uint64_t off = 0;
	int rv;

	for (;;) {
		loff_t a = (loff_t)off, b = (loff_t)off;
		ssize_t n =
		    copy_file_range(in, &a, out, &b, (size_t)1 << 30, 0);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == ENOSYS ||
			    errno == EOPNOTSUPP || errno == EINVAL)
				break;
			return -errno;
		}
		off += (uint64_t)n;
	}
	for (;;) {
		ssize_t n = pread(in, buf, sizeof buf, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		rv = fileio_write_all(out, buf, (size_t)n, off);
		if (rv != 0)
			return rv;
		off += (uint64_t)n;
	}
}

int fileio_copy_fd(int in, const char *dst)
{
	char *tmp = tmp_path(dst);
	int out = -1, rv = 0;

	if (tmp == NULL)
		return -ENOMEM;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		rv = -errno;
		goto done;
	}
	rv = copy_contents(in, out);
	if (rv != 0)
		goto done;
	if (fsync(out) != 0) {
		rv = -errno;
		goto done;
	}
	close(out);
	out = -1;
	rv = replace_durably(tmp, dst);
done:
	if (out >= 0) {
		close(out);
		unlink(tmp);
	}
	free(tmp);
	return rv;
}

int fileio_copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), rv;

	if (in < 0)
		return -errno;
	rv = fileio_copy_fd(in, dst);
	close(in);
	return rv;
}

static int remove_one(const char *path, const struct stat *sb, int type,
		      struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

int fileio_remove_tree(const char *path)
{
	int rv = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);

	if (rv == -1)
		return errno == ENOENT ? 0 : -errno;
	return rv;
}
