#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void common_set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t common_monotonic_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t common_unix_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}
