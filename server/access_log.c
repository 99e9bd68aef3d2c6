#include "access_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"

/* How many slash-separated segments rest has, all of them decimal digits;
 * -1 if one is not. */
static int numeric_segments(const char *rest)
{
	int n = 0;

	for (;;) {
		size_t len = strspn(rest, "0123456789");
		if (len == 0)
			return -1;
		n++;
		rest += len;
		if (*rest == '\0')
			return n;
		if (*rest != '/')
			return -1;
		rest++;
	}
}

void access_log_route(const char *path, char *out, size_t n)
{
	static const struct {
		const char *prefix;
		int segments;
		const char *route;
	} routes[] = {
	    {"/sync/", 3, "/sync/{gen}/{start}/{end}"},
	    {"/sync/", 4, "/sync/{gen}/{start}/{end}/{baton}"},
	    {"/export/", 1, "/export/{gen}"},
	    {"/checksum/", 2, "/checksum/{gen}/{frame}"},
	};
	size_t i;

	for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		size_t len = strlen(routes[i].prefix);
		const char *rest = path + len;
		if (strncmp(path, routes[i].prefix, len) != 0)
			continue;
		/* A push's baton is not numeric: count the digits before
		 * it. */
		if (routes[i].segments == 4) {
			const char *last = strrchr(rest, '/');
			char head[128];
			if (last == NULL ||
			    (size_t)(last - rest) >= sizeof head)
				continue;
			memcpy(head, rest, (size_t)(last - rest));
			head[last - rest] = '\0';
			if (numeric_segments(head) != 3 || last[1] == '\0')
				continue;
		} else if (numeric_segments(rest) != routes[i].segments) {
			continue;
		}
		snprintf(out, n, "%s", routes[i].route);
		return;
	}
	snprintf(out, n, "%s", path);
}

/* A header value fit for the log: printable, short. */
static const char *loggable(const char *v)
{
	size_t i;

	if (v == NULL || strlen(v) > 64)
		return NULL;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < 0x21 || v[i] > 0x7e)
			return NULL;
	}
	return v;
}

void access_log_push_status(const struct http_reply *r, char *out, size_t n)
{
	const char *at = r->status == 200 && r->body != NULL
			     ? strstr(r->body, "\"status\":\"")
			     : NULL;
	size_t len;

	out[0] = '\0';
	if (at == NULL)
		return;
	at += 10;
	len = strcspn(at, "\"");
	if (len < n) {
		memcpy(out, at, len);
		out[len] = '\0';
	}
}

void access_log_write(struct http_request *req, const struct http_response *res,
		      const char *database)
{
	char route[128], push[24] = "";
	json_t *line;
	char *text;

	access_log_route(req->path, route, sizeof route);
	if (res->fd < 0 && strcmp(req->method, "POST") == 0 &&
	    strncmp(route, "/sync/", 6) == 0)
		access_log_push_status(&res->reply, push, sizeof push);
	line = json_pack(
	    "{s:s, s:I, s:s, s:s, s:s, s:i, s:I, s:I, s:s?, s:s?, s:s?, s:s?}",
	    "log", "request", "unix_ms", (json_int_t)clock_unix_ms(), "method",
	    req->method, "route", route, "path", req->path, "status",
	    res->fd >= 0 ? 200 : res->reply.status, "ms",
	    (json_int_t)(clock_monotonic_ms() - req->started_us / 1000),
	    "bytes", (json_int_t)(res->fd >= 0 ? res->len : res->reply.len),
	    "database", database, "replica",
	    loggable(http_request_header(req, "X-Replite-Replica")), "txn",
	    loggable(http_request_arg(req, "txn")), "push",
	    push[0] != '\0' ? push : NULL);
	text =
	    line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (text != NULL)
		fprintf(stderr, "%s\n", text);
	free(text);
	json_decref(line);
}
