#include "streams.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hrana.h"
#include "hrana_pb.h"
#include "base/clock.h"
#include "util.h"

#define POOL_SIZE 16 /* idle connections kept for new streams */

struct stream {
	char *baton; /* changes with every response */
	struct hrana_conn conn;
	int64_t used_ms;
	int busy; /* a request is executing on it */
	struct stream *next;
};

struct streams {
	struct streams_config cfg;
	pthread_mutex_t mu; /* guards everything below */
	struct stream *list;
	/* Open streams: those in list, and those of other transports
	 * (WebSocket) between streams_acquire_db and streams_release_db.  One
	 * count, so that --max-streams bounds them together. */
	int n;
	sqlite3 *pool[POOL_SIZE];
	int n_pool;
};

struct streams *streams_new(const struct streams_config *cfg)
{
	struct streams *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

/* Give a connection back: a clean one (autocommit) goes to the pool. */
static void release_db(struct streams *s, sqlite3 *db)
{
	if (db == NULL)
		return;
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&s->mu);
	if (sqlite3_get_autocommit(db) && s->n_pool < POOL_SIZE) {
		s->pool[s->n_pool++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	sqlite3_close(db);
}

static int acquire_db(struct streams *s, sqlite3 **db)
{
	pthread_mutex_lock(&s->mu);
	if (s->n_pool > 0) {
		*db = s->pool[--s->n_pool];
		pthread_mutex_unlock(&s->mu);
		/* As a connection of its own (sqld opens one per stream):
		 * another stream's inserts are not this one's (issue 14). */
		sqlite3_set_last_insert_rowid(*db, 0);
		return SQLITE_OK;
	}
	pthread_mutex_unlock(&s->mu);
	return s->cfg.open_db(s->cfg.open_db_arg, db);
}

static void stream_destroy(struct streams *s, struct stream *st)
{
	release_db(s, st->conn.db);
	hrana_conn_reset(&st->conn);
	free(st->baton);
	free(st);
}

void streams_free(struct streams *s)
{
	int i;

	if (s == NULL)
		return;
	while (s->list != NULL) {
		struct stream *st = s->list;
		s->list = st->next;
		if (!sqlite3_get_autocommit(st->conn.db))
			sqlite3_exec(st->conn.db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(st->conn.db);
		hrana_conn_reset(&st->conn);
		free(st->baton);
		free(st);
	}
	for (i = 0; i < s->n_pool; i++)
		sqlite3_close(s->pool[i]);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void unlink_locked(struct streams *s, struct stream *st)
{
	struct stream **pp = &s->list;

	while (*pp != NULL && *pp != st)
		pp = &(*pp)->next;
	if (*pp == st) {
		*pp = st->next;
		s->n--;
	}
}

/* Unlink idle streams past expiry; returns them as a list to destroy
 * outside the lock (rolling back may take time). */
static struct stream *take_expired_locked(struct streams *s, int64_t now)
{
	struct stream *dead = NULL, **pp = &s->list;

	while (*pp != NULL) {
		struct stream *st = *pp;
		if (!st->busy && now - st->used_ms > s->cfg.idle_expiry_ms) {
			*pp = st->next;
			s->n--;
			st->next = dead;
			dead = st;
		} else {
			pp = &st->next;
		}
	}
	return dead;
}

static void destroy_list(struct streams *s, struct stream *list)
{
	while (list != NULL) {
		struct stream *next = list->next;
		stream_destroy(s, list);
		list = next;
	}
}

void streams_expire(struct streams *s)
{
	struct stream *dead;

	pthread_mutex_lock(&s->mu);
	dead = take_expired_locked(s, clock_monotonic_ms());
	pthread_mutex_unlock(&s->mu);
	destroy_list(s, dead);
}

int streams_count(struct streams *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void proto_error(struct http_reply *r, const char *msg)
{
	http_reply_json(r, 400,
			json_pack("{s:s, s:s}", "message", msg, "code",
				  "HRANA_PROTO_ERROR"));
}

/* Take a slot of the --max-streams budget (idle streams past their expiry
 * are closed first when none is free): SQLITE_OK, or SQLITE_FULL. */
static int reserve(struct streams *s)
{
	struct stream *dead = NULL;
	int rc;

	pthread_mutex_lock(&s->mu);
	if (s->n >= s->cfg.max_streams)
		dead = take_expired_locked(s, clock_monotonic_ms());
	rc = s->n >= s->cfg.max_streams ? SQLITE_FULL : SQLITE_OK;
	if (rc == SQLITE_OK)
		s->n++;
	pthread_mutex_unlock(&s->mu);
	destroy_list(s, dead);
	return rc;
}

static void unreserve(struct streams *s)
{
	pthread_mutex_lock(&s->mu);
	s->n--;
	pthread_mutex_unlock(&s->mu);
}

void streams_exhausted_message(const struct streams *s, char *buf, size_t n)
{
	snprintf(buf, n,
		 "too many open streams (at most %d on the server, "
		 "--max-streams); close streams or retry later",
		 s->cfg.max_streams);
}

/* Find the stream named by baton (NULL: open a new one) and mark it busy.
 * On failure fills reply and returns NULL. */
static struct stream *checkout(struct streams *s, json_t *baton, int version,
			       struct http_reply *reply)
{
	struct stream *st;
	sqlite3 *db = NULL;
	int rc;

	if (baton != NULL && !json_is_null(baton)) {
		const char *b = json_string_value(baton);
		if (b == NULL) {
			proto_error(reply,
				    "\"baton\" must be a string or null");
			return NULL;
		}
		pthread_mutex_lock(&s->mu);
		/* A new stream has no baton until its first request ends. */
		for (st = s->list; st != NULL; st = st->next) {
			if (st->baton != NULL && strcmp(st->baton, b) == 0)
				break;
		}
		if (st != NULL && st->busy)
			st = NULL; /* a baton is good for one request */
		if (st != NULL)
			st->busy = 1;
		pthread_mutex_unlock(&s->mu);
		if (st == NULL) {
			http_reply_json(
			    reply, 400,
			    json_pack("{s:s, s:s}", "message",
				      "the stream has expired or the baton "
				      "is invalid (batons are single-use "
				      "and streams close after inactivity)",
				      "code", "STREAM_EXPIRED"));
		}
		return st;
	}
	if (reserve(s) != SQLITE_OK) {
		char msg[160];
		streams_exhausted_message(s, msg, sizeof msg);
		http_reply_json(reply, 503,
				json_pack("{s:s, s:s}", "message", msg, "code",
					  "STREAMS_EXHAUSTED"));
		return NULL;
	}
	rc = acquire_db(s, &db);
	st = calloc(1, sizeof *st);
	if (rc != SQLITE_OK || st == NULL) {
		sqlite3_close(db);
		free(st);
		unreserve(s);
		http_reply_json(reply, 500,
				json_pack("{s:s, s:s}", "message",
					  "cannot open a database connection",
					  "code", "INTERNAL_ERROR"));
		return NULL;
	}
	hrana_conn_init(&st->conn, db, version, 0);
	st->conn.timeout_ms = s->cfg.statement_timeout_ms;
	st->conn.stats = s->cfg.sql_stats;
	st->busy = 1;
	pthread_mutex_lock(&s->mu);
	st->next = s->list;
	s->list = st;
	pthread_mutex_unlock(&s->mu);
	return st;
}

/* Finish a request on a stream: close it, or give it a fresh baton. */
static const char *checkin(struct streams *s, struct stream *st, int close)
{
	char *baton = close ? NULL : util_random_token(18);

	pthread_mutex_lock(&s->mu);
	if (close || baton == NULL) {
		unlink_locked(s, st);
		pthread_mutex_unlock(&s->mu);
		stream_destroy(s, st);
		return NULL;
	}
	free(st->baton);
	st->baton = baton;
	st->busy = 0;
	st->used_ms = clock_monotonic_ms();
	pthread_mutex_unlock(&s->mu);
	return baton;
}

/* A protobuf request body (PipelineReqBody or CursorReqBody, by decode)
 * as the JSON object a JSON client would have sent. */
static json_t *parse_pb_body(const char *body, size_t len,
			     json_t *(*decode)(const uint8_t *, size_t,
					       const char **),
			     struct http_reply *reply)
{
	const char *err = NULL;
	json_t *j = decode((const uint8_t *)(body ? body : ""), len, &err);

	if (j == NULL)
		proto_error(reply, err);
	return j;
}

static json_t *parse_body(const char *body, size_t len,
			  struct http_reply *reply)
{
	json_error_t err;
	json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, &err);

	if (j == NULL || !json_is_object(j)) {
		char msg[300];
		snprintf(msg, sizeof msg,
			 "request body is not a JSON object: %s",
			 j ? "wrong type" : err.text);
		json_decref(j);
		proto_error(reply, msg);
		return NULL;
	}
	return j;
}

/* Answer a pipeline in protobuf (PipelineRespBody). */
static void reply_pb_pipeline(struct http_reply *reply, json_t *resp)
{
	struct hrana_pb_buf out = {0};

	if (hrana_pb_pipeline_response(resp, &out) != 0) {
		hrana_pb_buf_free(&out);
		http_reply_error(reply, 500, "INTERNAL_ERROR",
				 "cannot encode the answer in protobuf");
	} else {
		reply->status = 200;
		reply->content_type = "application/x-protobuf";
		reply->body = (char *)out.data;
		reply->len = out.len;
	}
	json_decref(resp);
}

void streams_pipeline(struct streams *s, int version, int read_only,
		      enum streams_encoding enc, const char *body, size_t len,
		      int client_fd, struct http_reply *reply)
{
	json_t *req =
	    enc == STREAMS_PROTOBUF
		? parse_pb_body(body, len, hrana_pb_pipeline_request, reply)
		: parse_body(body, len, reply);
	json_t *requests, *results, *r, *resp;
	const char *proto_err = NULL;
	struct stream *st;
	const char *baton;
	int close = 0;
	size_t i;

	if (req == NULL)
		return;
	requests = json_object_get(req, "requests");
	if (!json_is_array(requests)) {
		proto_error(reply, "\"requests\" must be an array");
		goto out;
	}
	/* Refuse a malformed pipeline before any of its requests runs. */
	json_array_foreach(requests, i, r)
	{
		if (hrana_check_request(r, version, &proto_err) != 0) {
			proto_error(reply, proto_err);
			goto out;
		}
	}
	st = checkout(s, json_object_get(req, "baton"), version, reply);
	if (st == NULL)
		goto out;
	st->conn.version = version;
	st->conn.read_only = read_only;
	st->conn.client_fd = client_fd;
	results = json_array();
	json_array_foreach(requests, i, r)
	{
		int closing = 0;
		json_t *res =
		    hrana_execute_request(&st->conn, r, &closing, &proto_err);
		if (res == NULL)
			break;
		json_array_append_new(results, res);
		close |= closing;
	}
	st->conn.client_fd = -1; /* the stream outlives this request */
	if (proto_err != NULL) {
		json_decref(results);
		checkin(s, st, 1);
		proto_error(reply, proto_err);
		goto out;
	}
	baton = checkin(s, st, close);
	resp = json_pack("{s:s?, s:n, s:o}", "baton", baton, "base_url",
			 "results", results);
	if (enc == STREAMS_PROTOBUF)
		reply_pb_pipeline(reply, resp);
	else
		http_reply_json(reply, 200, resp);
out:
	json_decref(req);
}

/* The answer of a cursor, built entry by entry: newline-delimited JSON,
 * or length-delimited protobuf (the first entry is the CursorRespBody). */
struct ndjson {
	char *buf;
	size_t len;
	size_t cap;
	int failed; /* an entry was lost (out of memory) */
	struct hrana_pb_buf pb;
	int pb_entries; /* structures appended to pb */
	int pb_failed;
};

static void pb_append(void *arg, json_t *entry)
{
	struct ndjson *nd = arg;

	if (!nd->pb_failed &&
	    (nd->pb_entries++ == 0
		 ? hrana_pb_cursor_response(entry, &nd->pb)
		 : hrana_pb_cursor_entry(entry, &nd->pb)) != 0)
		nd->pb_failed = 1;
	json_decref(entry);
}

static void ndjson_append(void *arg, json_t *entry)
{
	struct ndjson *nd = arg;
	char *line = json_dumps(entry, JSON_COMPACT);
	size_t n = line ? strlen(line) : 0;

	json_decref(entry);
	if (line == NULL) {
		nd->failed = 1;
		return;
	}
	if (nd->len + n + 2 > nd->cap) {
		size_t cap = nd->cap ? nd->cap * 2 : 4096;
		char *b;
		while (cap < nd->len + n + 2)
			cap *= 2;
		b = realloc(nd->buf, cap);
		if (b == NULL) {
			nd->failed = 1;
			free(line);
			return;
		}
		nd->buf = b;
		nd->cap = cap;
	}
	memcpy(nd->buf + nd->len, line, n);
	nd->len += n;
	nd->buf[nd->len++] = '\n';
	free(line);
}

void streams_cursor(struct streams *s, int read_only, enum streams_encoding enc,
		    const char *body, size_t len, int client_fd,
		    struct http_reply *reply)
{
	int pb = enc == STREAMS_PROTOBUF;
	json_t *req =
	    pb ? parse_pb_body(body, len, hrana_pb_cursor_request, reply)
	       : parse_body(body, len, reply);
	void (*emit)(void *, json_t *) = pb ? pb_append : ndjson_append;
	struct ndjson out = {0};
	const char *proto_err = NULL;
	struct stream *st;
	char *baton;
	int rc;

	if (req == NULL)
		return;
	if (hrana_check_batch(json_object_get(req, "batch"), 3, &proto_err) !=
	    0) {
		proto_error(reply, proto_err);
		goto out;
	}
	st = checkout(s, json_object_get(req, "baton"), 3, reply);
	if (st == NULL)
		goto out;
	st->conn.version = 3;
	st->conn.read_only = read_only;
	st->conn.client_fd = client_fd;
	/* The baton leads the response, before the entries: rotate first. */
	baton = util_random_token(18);
	emit(&out, json_pack("{s:s?, s:n}", "baton", baton, "base_url"));
	rc = hrana_cursor(&st->conn, json_object_get(req, "batch"), emit, &out,
			  &proto_err);
	st->conn.client_fd = -1;
	if (rc != 0) {
		free(baton);
		free(out.buf);
		hrana_pb_buf_free(&out.pb);
		checkin(s, st, 1);
		proto_error(reply, proto_err);
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	free(st->baton);
	st->baton = baton;
	st->busy = 0;
	st->used_ms = clock_monotonic_ms();
	pthread_mutex_unlock(&s->mu);
	if (out.failed || out.pb_failed) {
		/* An entry could not be appended: a partial answer would
		 * silently drop rows, so there is none. */
		free(out.buf);
		hrana_pb_buf_free(&out.pb);
		http_reply_error(reply, 500, "INTERNAL_ERROR",
				 "cannot build the cursor's answer (out of "
				 "memory)");
	} else if (pb) {
		reply->status = 200;
		reply->content_type = "application/x-protobuf";
		reply->body = (char *)out.pb.data;
		reply->len = out.pb.len;
	} else {
		reply->status = 200;
		reply->content_type = "text/plain";
		reply->body = out.buf;
		reply->len = out.len;
	}
out:
	json_decref(req);
}

/* Hrana 1: stateless, one connection borrowed for the request. */
static void v1(struct streams *s, int read_only, const char *body, size_t len,
	       int client_fd, struct http_reply *reply, int is_batch)
{
	json_t *req = parse_body(body, len, reply), *res, *error = NULL;
	struct hrana_conn conn;
	const char *proto_err = NULL;
	sqlite3 *db = NULL;

	if (req == NULL)
		return;
	if (is_batch ? hrana_check_batch(json_object_get(req, "batch"), 1,
					 &proto_err) != 0
		     : !json_is_object(json_object_get(req, "stmt"))) {
		proto_error(reply, proto_err ? proto_err
					     : "expected {\"stmt\": {...}}");
		goto out;
	}
	if (acquire_db(s, &db) != SQLITE_OK) {
		http_reply_json(reply, 500,
				json_pack("{s:s, s:s}", "message",
					  "cannot open a database connection",
					  "code", "INTERNAL_ERROR"));
		goto out;
	}
	hrana_conn_init(&conn, db, 1, read_only);
	conn.timeout_ms = s->cfg.statement_timeout_ms;
	conn.stats = s->cfg.sql_stats;
	conn.client_fd = client_fd;
	if (is_batch)
		res = hrana_execute_batch(&conn, json_object_get(req, "batch"),
					  &proto_err);
	else
		res = hrana_execute_stmt(&conn, json_object_get(req, "stmt"),
					 &error);
	if (res != NULL)
		http_reply_json(reply, 200, json_pack("{s:o}", "result", res));
	else if (proto_err != NULL)
		proto_error(reply, proto_err);
	else
		http_reply_json(reply, 400, error);
	hrana_conn_reset(&conn);
	release_db(s, db);
out:
	json_decref(req);
}

void streams_v1_execute(struct streams *s, int read_only, const char *body,
			size_t len, int client_fd, struct http_reply *reply)
{
	v1(s, read_only, body, len, client_fd, reply, 0);
}

void streams_v1_batch(struct streams *s, int read_only, const char *body,
		      size_t len, int client_fd, struct http_reply *reply)
{
	v1(s, read_only, body, len, client_fd, reply, 1);
}

int64_t streams_statement_timeout(const struct streams *s)
{
	return s->cfg.statement_timeout_ms;
}

int streams_acquire_db(struct streams *s, sqlite3 **db)
{
	int rc = reserve(s);

	*db = NULL;
	if (rc != SQLITE_OK)
		return rc;
	rc = acquire_db(s, db);
	if (rc != SQLITE_OK) {
		sqlite3_close(*db); /* a failed open may leave a handle */
		*db = NULL;
		unreserve(s);
	}
	return rc;
}

void streams_release_db(struct streams *s, sqlite3 *db)
{
	if (db == NULL)
		return;
	release_db(s, db);
	unreserve(s);
}

struct metrics_sql *streams_sql_stats(const struct streams *s)
{
	return s->cfg.sql_stats;
}
