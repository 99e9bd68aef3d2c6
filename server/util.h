/* Small helpers shared by the primary's modules: random tokens, formatted
 * strings, files opened to be sent. */
#ifndef REPLITE_SERVER_UTIL_H
#define REPLITE_SERVER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* n random bytes rendered as URL-safe base64 (unguessable identifiers). */
char *util_random_token(size_t n_bytes);

/* printf into a malloc'd string. */
char *util_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open path read-only with its size: 0, or -1 (nothing left open). */
int util_open_sized(const char *path, int *fd, uint64_t *size);

#endif
