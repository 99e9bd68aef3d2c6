/* A complete HTTP response as the primary's handlers produce it, and the
 * JSON and text shapes they answer with. */
#ifndef REPLITE_SERVER_HTTP_REPLY_H
#define REPLITE_SERVER_HTTP_REPLY_H

#include <stddef.h>

#include <jansson.h>

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

#endif
