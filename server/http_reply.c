#include "http_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void http_reply_free(struct http_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

void http_reply_json(struct http_reply *r, int status, json_t *j)
{
	r->status = status;
	r->content_type = "application/json";
	r->body = json_dumps(j, JSON_COMPACT);
	r->len = r->body ? strlen(r->body) : 0;
	json_decref(j);
}

void http_reply_error(struct http_reply *r, int status, const char *code,
		      const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	http_reply_json(r, status,
			json_pack("{s:s, s:s, s:s}", "error", msg, "message",
				  msg, "code", code));
}

void http_reply_text(struct http_reply *r, int status, const char *text)
{
	r->status = status;
	r->content_type = "text/plain; charset=utf-8";
	r->body = strdup(text);
	r->len = strlen(text);
}
