/* The admin API (admin.h). */
#include "admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define NAMESPACES "/v1/namespaces"

static int authorized(struct admin *a, struct http_request *req,
		      struct http_response *res)
{
	const char *code = NULL;
	char msg[256];

	if (a->keys == NULL)
		return 1;
	if (jwt_verify_header(a->keys,
			      http_request_header(req, "Authorization"),
			      (int64_t)time(NULL), NULL, &code, msg,
			      sizeof msg) == JWT_ACCESS_READ_WRITE)
		return 1;
	if (code == NULL) {
		code = "AUTH_READ_ONLY";
		snprintf(msg, sizeof msg,
			 "the admin API needs a read-write admin token");
	}
	http_reply_error(&res->reply, 401, code, "%s", msg);
	return 0;
}

/* NAME from /v1/namespaces/NAME[/suffix]: copies it into name and returns
 * what follows it ("" or "/suffix"), or NULL when the path has no name. */
static const char *namespace_of(const char *path, char *name, size_t n)
{
	const char *start = path + strlen(NAMESPACES "/");
	const char *slash = strchr(start, '/');
	size_t len = slash != NULL ? (size_t)(slash - start) : strlen(start);

	if (len == 0 || len >= n)
		return NULL;
	memcpy(name, start, len);
	name[len] = '\0';
	return start + len;
}

static void reply_result(struct http_response *res, int rc, int status,
			 const char *err)
{
	if (rc == 0) {
		http_reply_json(&res->reply, 200, json_object());
		return;
	}
	http_reply_error(&res->reply, status,
			 status == 404   ? "DATABASE_NOT_FOUND"
			 : status == 409 ? "DATABASE_EXISTS"
			 : status == 400 ? "INVALID_DATABASE"
					 : "INTERNAL_ERROR",
			 "%s", err);
}

static void namespaces(struct admin *a, struct http_request *req,
		       struct http_response *res)
{
	char name[DATABASES_NAME_MAX + 2], err[512];
	const char *rest;
	json_error_t jerr;
	int status, rc;

	if (strcmp(req->path, NAMESPACES) == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(&res->reply, 405, "METHOD_NOT_ALLOWED",
					 "%s takes GET", NAMESPACES);
			return;
		}
		http_reply_json(
		    &res->reply, 200,
		    json_pack("{s:o}", "namespaces", databases_list(a->dbs)));
		return;
	}
	rest = namespace_of(req->path, name, sizeof name);
	if (rest == NULL || (!databases_name_valid(name) &&
			     strcmp(name, DATABASES_DEFAULT) != 0)) {
		http_reply_error(&res->reply, 400, "INVALID_DATABASE",
				 "not a database name in %.200s (1-63 of a-z, "
				 "0-9, '-' and '_', starting and ending with a "
				 "letter or digit)",
				 req->path);
		return;
	}
	if (strcmp(rest, "/create") == 0 && strcmp(req->method, "POST") == 0) {
		if (req->body_len > 0) {
			json_t *body = json_loadb((const char *)req->body,
						  req->body_len, 0, &jerr);
			int ok = json_is_object(body);
			json_decref(body);
			if (!ok) {
				http_reply_error(&res->reply, 400,
						 "INVALID_BODY",
						 "the body must be a JSON "
						 "object (or empty)");
				return;
			}
		}
		rc = databases_create(a->dbs, name, &status, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "replite: database \"%s\" created\n",
				name);
		reply_result(res, rc, status, err);
	} else if (rest[0] == '\0' && strcmp(req->method, "DELETE") == 0) {
		rc = databases_delete(a->dbs, name, &status, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "replite: database \"%s\" deleted\n",
				name);
		reply_result(res, rc, status, err);
	} else {
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "no admin route for %s %s", req->method,
				 req->path);
	}
}

void admin_handle(void *arg, struct http_request *req,
		  struct http_response *res)
{
	struct admin *a = arg;

	if (strcmp(req->method, "GET") == 0 &&
	    strcmp(req->path, "/health") == 0) {
		http_reply_text(&res->reply, 200, "");
		return;
	}
	if (!authorized(a, req, res))
		return;
	if (strcmp(req->method, "GET") == 0 &&
	    strcmp(req->path, "/metrics") == 0)
		api_metrics_page(a->api, res);
	else if (strncmp(req->path, NAMESPACES, strlen(NAMESPACES)) == 0 &&
		 (req->path[strlen(NAMESPACES)] == '\0' ||
		  req->path[strlen(NAMESPACES)] == '/'))
		namespaces(a, req, res);
	else
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "no admin route for %s %s", req->method,
				 req->path);
}
