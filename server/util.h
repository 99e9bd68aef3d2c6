/* Small helpers shared by the primary's modules: HTTP replies, base64,
 * random tokens, clocks; durable file operations come from sync/fileio.h. */
#ifndef REPLITE_SERVER_UTIL_H
#define REPLITE_SERVER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Durable file helpers (util_write_all, util_write_file_atomic, ...): shared
 * with the replica. */
#include "sync/fileio.h"

/* A complete HTTP response produced by a handler.  body is malloc'd (may be
 * NULL when len is 0) and owned by the reply. */
struct http_reply {
	int status;
	const char *content_type;
	char *body;
	size_t len;
};

void http_reply_free(struct http_reply *r);
/* Take ownership of j (decref'd) and serialise it compactly. */
void http_reply_json(struct http_reply *r, int status, json_t *j);
/* {"error": message, "code": code} (libSQL's server error shape, also
 * accepted by the Hrana clients since it carries "message"). */
void http_reply_error(struct http_reply *r, int status, const char *code,
		      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void http_reply_text(struct http_reply *r, int status, const char *text);

/* n random bytes rendered as URL-safe base64 (unguessable identifiers). */
char *util_random_token(size_t n_bytes);

int64_t util_now_ms(void);       /* wall clock, Unix ms */
int64_t util_monotonic_ms(void); /* monotonic clock, ms */

/* printf into a malloc'd string. */
char *util_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
