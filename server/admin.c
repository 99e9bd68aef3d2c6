/* The admin API (admin.h). */
#include "admin.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "base/clock.h"

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

/* The state a fork asks for, from its optional JSON body:
 * {"timestamp": RFC 3339, or sqld's naive UTC time} or, as an extension,
 * {"frame": "GENERATION:FRAME"}.  Returns 0, or -1 having answered 400. */
static int fork_point(struct http_request *req, struct http_response *res,
		      struct databases_at *at)
{
	json_t *body = NULL, *v;
	json_error_t jerr;
	const char *code, *key;
	char err[256];
	int rv = -1;

	at->kind = DATABASES_AT_NOW;
	if (req->body_len == 0)
		return 0;
	body = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
	if (!json_is_object(body)) {
		http_reply_error(&res->reply, 400, "INVALID_BODY",
				 "the body must be a JSON object (or empty)");
		goto out;
	}
	json_object_foreach(body, key, v)
	{
		if (strcmp(key, "timestamp") != 0 &&
		    strcmp(key, "frame") != 0) {
			http_reply_error(
			    &res->reply, 400, "INVALID_BODY",
			    "unknown field \"%.60s\": a fork takes "
			    "\"timestamp\" or \"frame\"",
			    key);
			goto out;
		}
	}
	if (databases_parse_at(json_object_get(body, "timestamp"),
			       json_object_get(body, "frame"), at, &code, err,
			       sizeof err) != 0) {
		http_reply_error(&res->reply, 400, code, "%s", err);
		goto out;
	}
	rv = 0;
out:
	json_decref(body);
	return rv;
}

static void fork_database(struct admin *a, struct http_request *req,
			  struct http_response *res, const char *from,
			  const char *to)
{
	struct databases_at at;
	struct store_point pt;
	const char *code;
	char err[512], when[40];
	int status;

	if (fork_point(req, res, &at) != 0)
		return;
	if (databases_fork(a->dbs, from, to, &at, &pt, &status, &code, err,
			   sizeof err) != 0) {
		if (code != NULL)
			http_reply_error(&res->reply, status, code, "%s", err);
		else
			reply_result(res, -1, status, err);
		return;
	}
	clock_format_rfc3339(pt.unix_ms, when, sizeof when);
	fprintf(stderr,
		"replite: database \"%s\" forked from \"%s\" as of %s "
		"(generation %" PRIu32 ", frame %" PRIu32 ")\n",
		to, from, when, pt.generation, pt.frame);
	http_reply_json(&res->reply, 200,
			json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", to,
				  "from", from, "generation",
				  (json_int_t)pt.generation, "frame",
				  (json_int_t)pt.frame, "timestamp", when));
}

/* "retention_seconds" of a create or config body: absent (*ms untouched),
 * null (-1: the server's default) or whole seconds >= 0.  Returns 0, or
 * -1 with err. */
static int retention_of(json_t *v, int64_t *ms, char *err, size_t n)
{
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		*ms = -1;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT64_MAX / 1000) {
		snprintf(err, n,
			 "\"retention_seconds\" must be a whole number of "
			 "seconds >= 0, or null for the server's default");
		return -1;
	}
	*ms = (int64_t)json_integer_value(v) * 1000;
	return 0;
}

/* GET or POST /v1/namespaces/NAME/config: sqld's route; replite keeps one
 * setting per database, its retention ("retention_seconds", ext).  sqld's
 * other settings are refused when they ask for something replite does not
 * do, so that nobody believes a database blocked that is not. */
static void config(struct admin *a, struct http_request *req,
		   struct http_response *res, const char *name)
{
	static const char *const inert[] = {"block_reads", "block_writes",
					    "allow_attach"};
	struct database *db = databases_get(a->dbs, name);
	json_t *body = NULL, *v;
	const char *key;
	int64_t ms = -2;
	char err[512], since[40];
	int own;
	size_t i;

	if (db == NULL) {
		http_reply_error(&res->reply, 404, "DATABASE_NOT_FOUND",
				 "no database is named \"%.80s\"", name);
		return;
	}
	if (strcmp(req->method, "POST") == 0) {
		body =
		    json_loadb((const char *)req->body, req->body_len, 0, NULL);
		if (!json_is_object(body)) {
			http_reply_error(&res->reply, 400, "INVALID_BODY",
					 "the body must be a JSON object");
			goto out;
		}
		json_object_foreach(body, key, v)
		{
			int ok = strcmp(key, "retention_seconds") == 0;
			for (i = 0; !ok && i < sizeof inert / sizeof *inert;
			     i++)
				ok = strcmp(key, inert[i]) == 0 &&
				     (json_is_false(v) || json_is_null(v));
			if (!ok) {
				http_reply_error(
				    &res->reply, 400, "UNSUPPORTED_CONFIG",
				    "replite does not support the setting "
				    "\"%.60s\" (only retention_seconds; "
				    "block_reads, block_writes and "
				    "allow_attach only as false)",
				    key);
				goto out;
			}
		}
		if (retention_of(json_object_get(body, "retention_seconds"),
				 &ms, err, sizeof err) != 0) {
			http_reply_error(&res->reply, 400, "INVALID_CONFIG",
					 "%s", err);
			goto out;
		}
		if (ms != -2 &&
		    store_set_retention(db->store, ms, err, sizeof err) != 0) {
			http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
					 "%s", err);
			goto out;
		}
	}
	ms = store_retention(db->store, &own);
	clock_format_rfc3339(store_restorable_since(db->store), since,
			     sizeof since);
	http_reply_json(
	    &res->reply, 200,
	    json_pack("{s:b, s:b, s:b, s:I, s:b, s:s}", "block_reads", 0,
		      "block_writes", 0, "allow_attach", 0, "retention_seconds",
		      (json_int_t)(ms / 1000), "retention_is_default", !own,
		      "restorable_since", since));
out:
	json_decref(body);
	databases_put(db);
}

/* GET /v1/namespaces/NAME/backup[?timestamp=T|frame=G:F] (ext): the
 * database file of that state (now, by default), streamed (backup.h). */
static void backup(struct admin *a, struct http_request *req,
		   struct http_response *res, const char *name)
{
	struct database *db = databases_get(a->dbs, name);
	struct databases_at at;
	struct store_point pt;
	json_t *ts = NULL, *fr = NULL;
	const char *code, *v;
	char err[512];

	if (db == NULL) {
		http_reply_error(&res->reply, 404, "DATABASE_NOT_FOUND",
				 "no database is named \"%.80s\"", name);
		return;
	}
	/* A value that is not UTF-8 has no JSON string: refused below as
	 * malformed, never taken for "now". */
	if ((v = http_request_arg(req, "timestamp")) != NULL &&
	    (ts = json_string(v)) == NULL)
		ts = json_integer(0);
	if ((v = http_request_arg(req, "frame")) != NULL &&
	    (fr = json_string(v)) == NULL)
		fr = json_integer(0);
	if (databases_parse_at(ts, fr, &at, &code, err, sizeof err) != 0)
		http_reply_error(&res->reply, 400, code, "%s", err);
	else if (databases_locate(db, &at, &pt, err, sizeof err) != 0)
		http_reply_error(&res->reply, 400, "POINT_NOT_AVAILABLE", "%s",
				 err);
	else
		backup_answer(db->store, &pt, res);
	json_decref(ts);
	json_decref(fr);
	databases_put(db);
}

static void namespaces(struct admin *a, struct http_request *req,
		       struct http_response *res)
{
	char name[DATABASES_NAME_MAX + 2], err[512];
	int64_t retention = -1;
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
			if (ok &&
			    retention_of(
				json_object_get(body, "retention_seconds"),
				&retention, err, sizeof err) != 0) {
				http_reply_error(&res->reply, 400,
						 "INVALID_CONFIG", "%s", err);
				json_decref(body);
				return;
			}
			json_decref(body);
			if (!ok) {
				http_reply_error(&res->reply, 400,
						 "INVALID_BODY",
						 "the body must be a JSON "
						 "object (or empty)");
				return;
			}
		}
		rc = databases_create(a->dbs, name, retention, &status, err,
				      sizeof err);
		if (rc == 0)
			fprintf(stderr, "replite: database \"%s\" created\n",
				name);
		reply_result(res, rc, status, err);
	} else if (strcmp(rest, "/config") == 0 &&
		   (strcmp(req->method, "GET") == 0 ||
		    strcmp(req->method, "POST") == 0)) {
		config(a, req, res, name);
	} else if (strcmp(rest, "/backup") == 0 &&
		   strcmp(req->method, "GET") == 0) {
		backup(a, req, res, name);
	} else if (strncmp(rest, "/fork/", 6) == 0 &&
		   strcmp(req->method, "POST") == 0) {
		fork_database(a, req, res, name, rest + 6);
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
