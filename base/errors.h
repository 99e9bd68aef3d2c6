/* Error text for the caller: every fallible function of replite that can say
 * why it failed takes a (char *err, size_t err_len) buffer and fills it with
 * one sentence naming the cause. */
#ifndef REPLITE_BASE_ERRORS_H
#define REPLITE_BASE_ERRORS_H

#include <stddef.h>

/* snprintf into an error buffer (err may be NULL or err_len 0: ignored). */
void errors_set(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
