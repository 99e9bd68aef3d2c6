/* Small helpers shared by the primary's modules: random tokens and
 * formatted strings. */
#ifndef REPLITE_SERVER_UTIL_H
#define REPLITE_SERVER_UTIL_H

#include <stddef.h>

/* n random bytes rendered as URL-safe base64 (unguessable identifiers). */
char *util_random_token(size_t n_bytes);

/* printf into a malloc'd string. */
char *util_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
