/* The access log of replite serve --log-requests: one JSON object per
 * answered request on stderr, on a line of its own:
 *
 *   {"log":"request","unix_ms":...,"method":"GET","route":"/sync/{gen}/{start}/{end}",
 *    "path":"/sync/1/5/4101","status":200,"ms":3,"bytes":4120,
 *    "database":"main","replica":"<id>"|null,"txn":"<id>"|null,
 *    "push":"ok"|"conflict"|...|null}
 *
 * route names the endpoint with its variable parts as placeholders (for
 * counting by endpoint); bytes is the answer's body as produced (before
 * compression); replica is the X-Replite-Replica header replite replicas
 * send (a random id per replica per process), txn a push's ?txn=, push the
 * status of a push's answer. */
#ifndef REPLITE_ACCESS_LOG_H
#define REPLITE_ACCESS_LOG_H

#include "http.h"

/* database: the one the request was for (NULL: none, e.g. a name that
 * does not exist); path is the path within it. */
void access_log_write(struct http_request *req, const struct http_response *res,
		      const char *database);

/* The status of a push's answer (200 {"status":"ok"|"conflict",...}) into
 * out (n bytes): "" for an answer without one (an error). */
void access_log_push_status(const struct http_reply *r, char *out, size_t n);

/* The route of a path: "/sync/{gen}/{start}/{end}" for "/sync/1/5/4101",
 * "/export/{gen}", "/checksum/{gen}/{frame}", else the path itself.  Into
 * out (n bytes). */
void access_log_route(const char *path, char *out, size_t n);

#endif
