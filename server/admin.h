/* The admin API (issue 12), on a listener of its own (--admin-listen), in
 * the shape of libsql-server's namespace API (its docs/ADMIN_API.md):
 *
 *   POST   /v1/namespaces/NAME/create   create database NAME (an optional
 *                                       JSON object body; its fields are
 *                                       not used yet)
 *   DELETE /v1/namespaces/NAME          delete it
 *   GET    /v1/namespaces               {"namespaces": [{"name",
 *                                       "database_id", "generation",
 *                                       "frame_no"}]} (replite's)
 *   GET    /metrics                     the Prometheus page, as on the user
 *                                       listener
 *   GET    /health                      200, no token needed
 *
 * Answers are JSON; errors {"error", "message", "code"} with 400 (a bad
 * name), 404 (no such database), 405, 409 (exists).  Every request but
 * /health carries the admin token: a read-write JWT that one of
 * --admin-auth-key-file's keys verifies, a key pair of its own, so that no
 * database token is an admin token. */
#ifndef REPLITE_ADMIN_H
#define REPLITE_ADMIN_H

#include "api.h"
#include "databases.h"
#include "http.h"
#include "jwt.h"

struct admin {
	struct databases *dbs;
	struct jwt_keys *keys; /* NULL: open (the server warns at start) */
	struct api *api;       /* for /metrics */
};

/* An http_handler_fn; arg is a struct admin. */
void admin_handle(void *arg, struct http_request *req,
		  struct http_response *res);

#endif
