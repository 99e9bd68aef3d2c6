/* Small helpers shared by the replica's modules. */
#ifndef REPLITE_COMMON_H
#define REPLITE_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* snprintf into an error buffer. */
void common_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Milliseconds on the monotonic clock (durations, deadlines) and since the
 * Unix epoch (timestamps shown to users). */
int64_t common_monotonic_ms(void);
int64_t common_unix_ms(void);

#endif
