/* Clocks in milliseconds (and one in microseconds): the monotonic clock for
 * durations and deadlines, the Unix epoch for timestamps shown to users and
 * written to files. */
#ifndef REPLITE_BASE_CLOCK_H
#define REPLITE_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t clock_monotonic_ms(void);
/* In microseconds, for latencies (metrics). */
int64_t clock_monotonic_us(void);
int64_t clock_unix_ms(void);

/* Parse an RFC 3339 time ("2026-12-03T17:00:00Z", "...T17:00:00.250+01:00";
 * a space may stand for the T) into Unix ms; without an offset (sqld's
 * "naive" times, "2026-12-03T17:00:00") the time is UTC.  Fractions finer
 * than a millisecond are truncated.  Returns 0, or -1 when text is not
 * such a time. */
int clock_parse_rfc3339(const char *text, int64_t *unix_ms);
/* Format unix_ms as RFC 3339 in UTC with milliseconds
 * ("2026-12-03T17:00:00.250Z"); out holds at least 32 bytes. */
void clock_format_rfc3339(int64_t unix_ms, char *out, size_t n);

#endif
