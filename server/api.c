#include "api.h"

#include "base/dbsum.h"
#include "proto/frames.h"
#include "proto/messages.h"
#include "wal/walfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include "base/clock.h"
#include "access_log.h"
#include "http_zstd.h"
#include "turso_sync.h"

/* Parse a decimal u32 path segment; returns the rest of the path after it
 * (pointing at '/' or '\0'), or NULL if the segment is not a number. */
static const char *parse_u32(const char *p, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (*p < '0' || *p > '9')
		return NULL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno != 0 || v > UINT32_MAX || (*end != '/' && *end != '\0'))
		return NULL;
	*out = (uint32_t)v;
	return end;
}

/* Parses "{gen}/{start}/{end}[/{baton}]" after "/sync/". */
static int parse_sync_path(const char *p, uint32_t v[3], const char **baton)
{
	int i;

	for (i = 0; i < 3; i++) {
		p = parse_u32(p, &v[i]);
		if (p == NULL)
			return -1;
		if (i < 2) {
			if (*p != '/')
				return -1;
			p++;
		}
	}
	*baton = NULL;
	if (*p == '/' && p[1] != '\0' && strchr(p + 1, '/') == NULL)
		*baton = p + 1;
	else if (*p != '\0')
		return -1;
	return 0;
}

static void reply_generation(struct http_response *res, uint32_t gen)
{
	http_reply_json(&res->reply, 400, messages_encode_generation(gen));
}

static int64_t wait_deadline(struct api *api, struct http_request *req)
{
	const char *w = http_request_arg(req, "wait");
	double secs;
	char *end;

	if (w == NULL)
		return 0;
	secs = strtod(w, &end);
	if (end == w || *end != '\0' || secs <= 0)
		return 0;
	if (secs > api->max_wait_s)
		secs = api->max_wait_s;
	return req->started_us / 1000 + (int64_t)(secs * 1000);
}

/* The level to compress a file answer at for this request: 0 when the
 * server never compresses or the client does not accept zstd. */
static int answer_zstd_level(struct api *api, struct http_request *req)
{
	if (api->zstd_level <= 0)
		return 0;
	return http_zstd_accepted(http_request_header(req, "Accept-Encoding"))
		   ? api->zstd_level
		   : 0;
}

/* A query argument that is exactly "1". */
static int arg_is_one(struct http_request *req, const char *name)
{
	const char *v = http_request_arg(req, name);

	return v != NULL && strcmp(v, "1") == 0;
}

static void handle_pull(struct api *api, struct database *db,
			struct http_request *req, struct http_response *res,
			const uint32_t v[3])
{
	struct store_frames f;
	enum store_pull pulled;
	uint32_t span = 0;
	int64_t deadline;

	/* It has applied what precedes v[1], wherever it asks from. */
	replicas_seen(db->replicas,
		      http_request_header(req, FRAMES_REPLICA_HEADER), v[0],
		      v[1] > 0 ? v[1] - 1 : 0, clock_monotonic_ms());
	if (arg_is_one(req, "squash"))
		pulled =
		    store_pull_squashed(db->store, v[0], v[1], v[2], &f, &span);
	else
		pulled = store_pull(db->store, v[0], v[1], v[2], &f);
	switch (pulled) {
	case STORE_PULL_FRAMES: {
		struct metrics_sync *ms = metrics_sync(api->metrics);
		int64_t since;
		atomic_fetch_add(&ms->frames_served, f.len / WALFMT_FRAME_SIZE);
		atomic_fetch_add(&ms->frame_bytes_served, f.len);
		res->fd = f.fd;
		res->offset = f.offset;
		res->len = f.len;
		res->zstd_level = answer_zstd_level(api, req);
		res->headers[0].name = FRAMES_CHAIN_HEADER;
		snprintf(res->headers[0].value, sizeof res->headers[0].value,
			 "%s", f.chain);
		if (f.has_checksum) {
			char sum[DBSUM_TEXT_SIZE];
			dbsum_format(f.checksum, sum);
			res->headers[1].name = FRAMES_CHECKSUM_AT_HEADER;
			snprintf(res->headers[1].value,
				 sizeof res->headers[1].value, "%" PRIu32 "-%s",
				 f.checksum_frame, sum);
		}
		if (span > 0) {
			res->headers[3].name = FRAMES_SQUASHED_HEADER;
			snprintf(res->headers[3].value,
				 sizeof res->headers[3].value, "%" PRIu32,
				 span);
		}
		/* For the replica's lag once it has applied these. */
		since = store_behind_since(db->store, v[0], f.end - 1, NULL);
		if (since > 0) {
			res->headers[2].name = FRAMES_BEHIND_SINCE_HEADER;
			snprintf(res->headers[2].value,
				 sizeof res->headers[2].value, "%" PRId64,
				 since);
		}
		return;
	}
	case STORE_PULL_CAUGHT_UP:
		deadline = wait_deadline(api, req);
		if (deadline > clock_monotonic_ms()) {
			res->park_until_ms = deadline;
			return;
		}
		reply_generation(res, v[0]);
		return;
	case STORE_PULL_NEXT_GEN:
		reply_generation(res, v[0] + 1);
		return;
	case STORE_PULL_UNKNOWN_GEN:
		http_reply_error(&res->reply, 404, "GENERATION_NOT_FOUND",
				 "generation %" PRIu32
				 " is not available on this primary (current "
				 "generation is %" PRIu32
				 "); the replica must bootstrap again",
				 v[0], store_generation(db->store));
		return;
	case STORE_PULL_BAD_RANGE:
		http_reply_error(&res->reply, 400, "INVALID_FRAME_RANGE",
				 "invalid frame range [%" PRIu32 ", %" PRIu32
				 ") (frames are numbered from 1)",
				 v[1], v[2]);
		return;
	}
}

static void handle_export(struct api *api, struct database *db,
			  struct http_request *req, const char *rest,
			  struct http_response *res)
{
	uint32_t gen;
	uint64_t size, checksum, zsize;
	int fd, zfd;
	const char *end = parse_u32(rest, &gen);

	if (end == NULL || *end != '\0') {
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "expected /export/{generation}");
		return;
	}
	if (store_export(db->store, gen, &fd, &size, &checksum) != 0) {
		http_reply_error(&res->reply, 404, "GENERATION_NOT_FOUND",
				 "generation %" PRIu32
				 " is not available on this primary",
				 gen);
		return;
	}
	res->fd = fd;
	res->offset = 0;
	res->len = size;
	res->zstd_level = answer_zstd_level(api, req);
	if (res->zstd_level > 0) {
		int z = store_export_zstd(db->store, gen, &zfd, &zsize);
		if (z == 0) {
			/* The copy made once per generation: sent as
			 * it is. */
			close(fd);
			res->fd = zfd;
			res->len = zsize;
			res->content_encoding = "zstd";
		} else if (z == 1) {
			res->zstd_level = 0; /* incompressible: plain */
		}
	}
	res->headers[0].name = FRAMES_CHECKSUM_HEADER;
	dbsum_format(checksum, res->headers[0].value);
	atomic_fetch_add(&metrics_sync(api->metrics)->exports, 1);
	atomic_fetch_add(&metrics_sync(api->metrics)->export_bytes, size);
}

/* GET /checksum/{G}/{F} (ext): the whole-database checksum after commit
 * frame F of generation G (0: its start), for replite_verify. */
static void handle_checksum(struct database *db, const char *rest,
			    struct http_response *res)
{
	uint32_t gen, frame;
	uint64_t sum;
	const char *p = parse_u32(rest, &gen);

	if (p != NULL && *p == '/')
		p = parse_u32(p + 1, &frame);
	else
		p = NULL;
	if (p == NULL || *p != '\0') {
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "expected /checksum/{generation}/{frame}");
		return;
	}
	if (store_checksum_at(db->store, gen, frame, &sum) != 0) {
		http_reply_error(
		    &res->reply, 404, "CHECKSUM_NOT_FOUND",
		    "the primary knows no checksum after frame "
		    "%" PRIu32 " of generation %" PRIu32
		    " (only after the commit frames of its current "
		    "generation, %" PRIu32 ")",
		    frame, gen, store_generation(db->store));
		return;
	}
	http_reply_json(&res->reply, 200,
			messages_encode_checksum(gen, frame, sum));
}

/* Is text GENERATION:FRAME rather than a time (digits and a colon; an
 * RFC 3339 time has dashes)? */
static int looks_like_frame(const char *text)
{
	return text[0] != '\0' && strspn(text, "0123456789:") == strlen(text);
}

/* GET /info[?as_of=TIME|GEN:FRAME]: the head, or (ext) the state as of a
 * time (RFC 3339) or after a commit frame, for as-of replicas: the state's
 * generation and frame in place of the head's, "as_of" its commit time.
 * The rest of the protocol is unchanged: the generation's base (GET
 * /export/G) and its frames up to that one are exactly that state. */
static void handle_info(struct database *db, struct http_request *req,
			struct http_response *res)
{
	const char *v = http_request_arg(req, "as_of"), *code;
	struct databases_at at;
	struct store_point pt;
	json_t *text;
	char err[512];

	if (v == NULL) {
		http_reply_json(&res->reply, 200, store_info(db->store));
		return;
	}
	text = json_string(v);
	if (text == NULL) {
		http_reply_error(&res->reply, 400, "INVALID_TIMESTAMP",
				 "as_of is not UTF-8 text: expected an RFC "
				 "3339 time or GENERATION:FRAME");
		return;
	}
	if (looks_like_frame(v)
		? databases_parse_at(NULL, text, &at, &code, err, sizeof err)
		: databases_parse_at(text, NULL, &at, &code, err, sizeof err))
		http_reply_error(&res->reply, 400, code, "as_of: %s", err);
	else if (databases_locate(db, &at, &pt, err, sizeof err) != 0)
		http_reply_error(&res->reply, 400, "POINT_NOT_AVAILABLE", "%s",
				 err);
	else
		http_reply_json(&res->reply, 200,
				store_info_at(db->store, &pt));
	json_decref(text);
}

/* The access granted to database db, or JWT_ACCESS_DENIED with the reply
 * set: 401, or 403 for a token of other databases. */
static enum jwt_access authorize(struct api *api, struct database *db,
				 struct http_request *req,
				 struct http_response *res)
{
	const char *code = NULL;
	char msg[256];
	enum jwt_access access;

	if (api->keys == NULL)
		return JWT_ACCESS_READ_WRITE;
	access = jwt_verify_header(
	    api->keys, http_request_header(req, "Authorization"),
	    (int64_t)time(NULL), db->name, &code, msg, sizeof msg);
	if (access == JWT_ACCESS_DENIED)
		http_reply_error(
		    &res->reply,
		    code != NULL && strcmp(code, JWT_WRONG_DATABASE) == 0 ? 403
									  : 401,
		    code ? code : "AUTH_FAILED", "%s", msg);
	return access;
}

static int is(struct http_request *req, const char *method, const char *path)
{
	return strcmp(req->method, method) == 0 && strcmp(req->path, path) == 0;
}

static void handle_hrana(struct database *db, struct http_request *req,
			 struct http_response *res, int read_only)
{
	const char *body = (const char *)req->body;
	int fd = http_request_fd(req);
	char err[512];

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(&res->reply, 405, "METHOD_NOT_ALLOWED",
				 "%s requires POST", req->path);
	} else if (strcmp(req->path, "/v2/pipeline") == 0) {
		streams_pipeline(db->streams, 2, read_only, STREAMS_JSON, body,
				 req->body_len, fd, &res->reply);
	} else if (strcmp(req->path, "/v3/pipeline") == 0) {
		streams_pipeline(db->streams, 3, read_only, STREAMS_JSON, body,
				 req->body_len, fd, &res->reply);
	} else if (strcmp(req->path, "/v3-protobuf/pipeline") == 0) {
		streams_pipeline(db->streams, 3, read_only, STREAMS_PROTOBUF,
				 body, req->body_len, fd, &res->reply);
	} else if (strcmp(req->path, "/v3/cursor") == 0) {
		streams_cursor(db->streams, read_only, STREAMS_JSON, body,
			       req->body_len, fd, &res->reply);
	} else if (strcmp(req->path, "/v3-protobuf/cursor") == 0) {
		streams_cursor(db->streams, read_only, STREAMS_PROTOBUF, body,
			       req->body_len, fd, &res->reply);
	} else if (strcmp(req->path, "/v1/execute") == 0) {
		streams_v1_execute(db->streams, read_only, body, req->body_len,
				   fd, &res->reply);
	} else {
		streams_v1_batch(db->streams, read_only, body, req->body_len,
				 fd, &res->reply);
	}
	/* Group commit: the answer may show commits written to the log but
	 * not yet durable, this request's own or others'. */
	if (store_make_durable(db->store, err, sizeof err) != 0) {
		http_reply_free(&res->reply);
		http_reply_error(&res->reply, 503, "PRIMARY_FAILED", "%s", err);
	}
}

static int is_hrana_path(const char *path)
{
	return strcmp(path, "/v2/pipeline") == 0 ||
	       strcmp(path, "/v3/pipeline") == 0 ||
	       strcmp(path, "/v3/cursor") == 0 ||
	       strcmp(path, "/v3-protobuf/pipeline") == 0 ||
	       strcmp(path, "/v3-protobuf/cursor") == 0 ||
	       strcmp(path, "/v1/execute") == 0 ||
	       strcmp(path, "/v1/batch") == 0;
}

/* The query parameters of a push (store_push_opts). */
static int push_opts(struct http_request *req, struct store_push_opts *o,
		     uint8_t txn[FRAMES_TXN_ID_SIZE], const char **bad)
{
	const char *txn_text = http_request_arg(req, "txn");
	const char *base = http_request_arg(req, "base");
	const char *result = http_request_arg(req, "result");

	memset(o, 0, sizeof *o);
	o->flags = (arg_is_one(req, "strict") ? STORE_PUSH_STRICT : 0u) |
		   (arg_is_one(req, "rollover") ? STORE_PUSH_ROLLOVER : 0u);
	if (txn_text != NULL) {
		if (frames_txn_id_parse(txn_text, txn) != 0) {
			*bad = "txn must be 32 hex digits";
			return -1;
		}
		o->txn = txn;
	}
	if (base != NULL) {
		if (dbsum_parse(base, &o->base) != 0) {
			*bad = "base must be 16 hex digits";
			return -1;
		}
		o->has_base = 1;
	}
	if (result != NULL) {
		if (dbsum_parse(result, &o->result) != 0) {
			*bad = "result must be 16 hex digits";
			return -1;
		}
		o->has_result = 1;
	}
	return 0;
}

/* A push's answer by outcome: 200 {"status":"ok"|"conflict",...}, or an
 * error. */
static void count_push(struct metrics_sync *ms, const struct http_reply *r)
{
	char status[24];

	access_log_push_status(r, status, sizeof status);
	if (strcmp(status, "ok") == 0)
		atomic_fetch_add(&ms->pushes_ok, 1);
	else if (strcmp(status, "conflict") == 0)
		atomic_fetch_add(&ms->pushes_conflict, 1);
	else
		atomic_fetch_add(&ms->pushes_refused, 1);
}

static void handle_push(struct api *api, struct database *db,
			struct http_request *req, struct http_response *res,
			const uint32_t v[3], const char *baton)
{
	struct store_push_opts opts;
	uint8_t txn[FRAMES_TXN_ID_SIZE];
	const char *bad = NULL;

	if (push_opts(req, &opts, txn, &bad) != 0) {
		http_reply_error(&res->reply, 400, "INVALID_PUSH_PARAMETER",
				 "%s", bad);
		return;
	}
	store_push(db->store, v[0], v[1], v[2], baton, &opts, req->body,
		   req->body_len, &res->reply);
	count_push(metrics_sync(api->metrics), &res->reply);
}

static void handle_sync(struct api *api, struct database *db,
			struct http_request *req, struct http_response *res,
			enum jwt_access access)
{
	const char *baton;
	uint32_t v[3];

	if (parse_sync_path(req->path + strlen("/sync/"), v, &baton) != 0) {
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "expected /sync/{generation}/{start}/{end}");
		return;
	}
	if (strcmp(req->method, "GET") == 0 && baton == NULL) {
		handle_pull(api, db, req, res, v);
	} else if (strcmp(req->method, "POST") == 0) {
		if (access != JWT_ACCESS_READ_WRITE) {
			http_reply_error(&res->reply, 403, "AUTH_READ_ONLY",
					 "this token is read-only; pushing "
					 "frames needs a read-write token");
			return;
		}
		handle_push(api, db, req, res, v, baton);
	} else {
		http_reply_error(&res->reply, 405, "METHOD_NOT_ALLOWED",
				 "%s %s is not supported", req->method,
				 req->path);
	}
}

/* The name in a Host header's first label, when it names a database:
 * not for an IP address (whose first label is a number) or a bare host. */
static int host_database(struct api *api, const char *host, char *name,
			 size_t n)
{
	const char *dot = host != NULL ? strchr(host, '.') : NULL;
	size_t len = dot != NULL ? (size_t)(dot - host) : 0;

	if (len == 0 || len >= n || host[0] == '[' ||
	    strspn(host, "0123456789.:") == strlen(host))
		return 0;
	memcpy(name, host, len);
	name[len] = '\0';
	return databases_name_valid(name) && databases_exists(api->dbs, name);
}

/* The database a request is for, held (databases_put), with req->path
 * moved past a /db/NAME prefix; NULL with the answer in res when it names
 * none. */
static struct database *request_database(struct api *api,
					 struct http_request *req,
					 struct http_response *res)
{
	char name[DATABASES_NAME_MAX + 1];
	const char *ns = http_request_header(req, "x-namespace");
	struct database *db;

	name[0] = '\0';
	if (strncmp(req->path, "/db/", 4) == 0) {
		const char *start = req->path + 4;
		const char *slash = strchr(start, '/');
		size_t len =
		    slash != NULL ? (size_t)(slash - start) : strlen(start);
		if (len > DATABASES_NAME_MAX) {
			http_reply_error(&res->reply, 400, "INVALID_DATABASE",
					 "a database name has at most %d "
					 "characters",
					 DATABASES_NAME_MAX);
			return NULL;
		}
		memcpy(name, start, len);
		name[len] = '\0';
		/* "/db/NAME//info": a sync URL given with a trailing slash,
		 * to which npm libsql appends "/info". */
		while (slash != NULL && slash[1] == '/')
			slash++;
		req->path = slash != NULL ? slash : "/";
	} else if (ns != NULL) {
		snprintf(name, sizeof name, "%s", ns);
	} else if (!host_database(api, http_request_header(req, "Host"), name,
				  sizeof name)) {
		name[0] = '\0';
	}
	if (name[0] != '\0' && !databases_name_valid(name)) {
		http_reply_error(&res->reply, 400, "INVALID_DATABASE",
				 "\"%.80s\" is not a database name (a-z, 0-9, "
				 "'-' and '_')",
				 name);
		return NULL;
	}
	db = databases_get(api->dbs, name[0] != '\0' ? name : NULL);
	if (db == NULL && databases_name_reserved(name))
		/* @libsql/client resolves "v2/pipeline" against its URL:
		 * without a trailing slash, /db/NAME loses NAME. */
		http_reply_error(&res->reply, 404, "DATABASE_NOT_FOUND",
				 "no database is named \"%s\" (with "
				 "@libsql/client, end the URL with a slash: "
				 "http://HOST:PORT/db/NAME/)",
				 name);
	else if (db == NULL)
		http_reply_error(&res->reply, 404, "DATABASE_NOT_FOUND",
				 "no database is named \"%s\"", name);
	return db;
}

static void release_database(void *arg)
{
	databases_put(arg);
}

static void route(struct api *api, struct database *db,
		  struct http_request *req, struct http_response *res)
{
	enum jwt_access access;

	if (is(req, "GET", "/health")) {
		http_reply_text(&res->reply, 200, "");
		return;
	}
	if (is(req, "GET", "/version")) {
		http_reply_text(&res->reply, 200, "replite " REPLITE_VERSION);
		return;
	}
	if (api->ws != NULL && ws_is_upgrade(req)) {
		/* Authenticated by the hello's JWT, as sqld does; the socket
		 * holds the database until it ends. */
		struct ws_target t = {db->name, db->streams, db->store,
				      release_database, databases_hold(db)};
		ws_handle_upgrade(api->ws, req, res, &t);
		return;
	}
	access = authorize(api, db, req, res);
	if (access == JWT_ACCESS_DENIED)
		return;
	if (is(req, "GET", "/metrics")) {
		/* Behind a token like the rest, when there are tokens. */
		api_metrics_page(api, res);
	} else if (is(req, "GET", "/info")) {
		handle_info(db, req, res);
	} else if (strncmp(req->path, "/sync/", 6) == 0) {
		handle_sync(api, db, req, res, access);
	} else if (strncmp(req->path, "/export/", 8) == 0 &&
		   strcmp(req->method, "GET") == 0) {
		handle_export(api, db, req, req->path + 8, res);
	} else if (strncmp(req->path, "/checksum/", 10) == 0 &&
		   strcmp(req->method, "GET") == 0) {
		handle_checksum(db, req->path + 10, res);
	} else if (is_hrana_path(req->path)) {
		handle_hrana(db, req, res, access != JWT_ACCESS_READ_WRITE);
	} else if (strcmp(req->path, "/pull-updates") == 0) {
		turso_sync_pull(db->store, api->max_wait_s, req, res);
	} else if (is(req, "GET", "/v2") || is(req, "GET", "/v3") ||
		   is(req, "GET", "/v3-protobuf") || is(req, "GET", "/v1") ||
		   is(req, "GET", "/")) {
		http_reply_text(&res->reply, 200, "");
	} else {
		http_reply_error(&res->reply, 404, "NOT_FOUND",
				 "no route for %s %s", req->method, req->path);
	}
}

enum http_lane api_lane(void *arg, const char *method, const char *url)
{
	(void)arg;
	if (strncmp(url, "/db/", 4) == 0) { /* the path within the database */
		const char *slash = strchr(url + 4, '/');
		url = slash != NULL ? slash : "/";
	}
	/* SQL runs for as long as its statements do, and a push may wait for
	 * the write lock: the main lane.  The rest is quick (frames and
	 * images are sent by libmicrohttpd's thread, long-polls are parked
	 * without a worker) and must stay so whatever SQL runs: /health,
	 * /info, pulls, exports. */
	if (strcmp(url, "/pull-updates") == 0)
		return HTTP_LANE_CONTROL; /* a pull, though a POST */
	if (is_hrana_path(url) || strcmp(method, "POST") == 0)
		return HTTP_LANE_MAIN;
	return HTTP_LANE_CONTROL;
}

void api_handle(void *arg, struct http_request *req, struct http_response *res)
{
	struct api *api = arg;
	const char *path = req->path;
	struct database *db = request_database(api, req, res);

	if (db != NULL)
		route(api, db, req, res);
	if (res->park_until_ms == 0) {
		metrics_request(api->metrics, req->method, req->path,
				res->fd >= 0 ? 200 : res->reply.status,
				clock_monotonic_us() - req->started_us);
		if (api->log_requests)
			access_log_write(req, res,
					 db != NULL ? db->name : NULL);
	}
	databases_put(db);
	/* A parked request is handled again from the start. */
	req->path = path;
}
