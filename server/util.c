#include "util.h"

#include "base/base64.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

char *util_random_token(size_t n_bytes)
{
	uint8_t buf[64];

	if (n_bytes > sizeof buf || RAND_bytes(buf, (int)n_bytes) != 1) {
		return NULL;
	}
	return base64_encode(buf, n_bytes, 1, 0);
}

char *util_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;

	va_start(ap, fmt);
	if (vasprintf(&out, fmt, ap) < 0) {
		out = NULL;
	}
	va_end(ap);
	return out;
}

int util_open_sized(const char *path, int *fd, uint64_t *size)
{
	struct stat st;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return -1;
	if (fstat(*fd, &st) != 0) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}
