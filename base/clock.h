/* Clocks in milliseconds (and one in microseconds): the monotonic clock for
 * durations and deadlines, the Unix epoch for timestamps shown to users and
 * written to files. */
#ifndef REPLITE_BASE_CLOCK_H
#define REPLITE_BASE_CLOCK_H

#include <stdint.h>

int64_t clock_monotonic_ms(void);
/* In microseconds, for latencies (metrics). */
int64_t clock_monotonic_us(void);
int64_t clock_unix_ms(void);

#endif
