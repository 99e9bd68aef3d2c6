/* Hrana over WebSocket: the messages (ws.c has the socket).  See the top
 * of ws.c for the protocol. */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "hrana_pb.h"

static void hello(struct ws_conn *c, json_t *msg)
{
	const struct jwt_keys *keys = c->srv->cfg.keys;
	const char *jwt = json_string_value(json_object_get(msg, "jwt"));
	const char *code = NULL;
	char text[256];
	enum jwt_access access = JWT_ACCESS_READ_WRITE;
	struct ws_stream *st;
	int64_t expires = 0;

	if (c->hello && c->version < 2) {
		ws_proto_error(c, "hello may be sent only once in hrana1");
		return;
	}
	if (keys != NULL) {
		if (jwt == NULL || *jwt == '\0') {
			access = JWT_ACCESS_DENIED;
			code = "AUTH_JWT_MISSING";
			snprintf(text, sizeof text,
				 "authentication required: the hello has no "
				 "JWT");
		} else {
			access = jwt_verify_until(
			    keys, jwt, (int64_t)time(NULL), c->target.database,
			    &expires, &code, text, sizeof text);
		}
	}
	if (access == JWT_ACCESS_DENIED) {
		ws_send_json(c,
			     json_pack("{s:s, s:{s:s, s:s}}", "type",
				       "hello_error", "error", "message", text,
				       "code", code ? code : "AUTH_FAILED"));
		ws_close_with(c, 1008, "authentication failed");
		return;
	}
	c->hello = 1;
	c->expires = expires;
	c->read_only = access != JWT_ACCESS_READ_WRITE;
	for (st = c->streams; st != NULL; st = st->next)
		st->conn.read_only = c->read_only;
	ws_send_json(c, json_pack("{s:s}", "type", "hello_ok"));
}

static struct ws_stream *find_stream(struct ws_conn *c, json_t *req)
{
	json_t *id = json_object_get(req, "stream_id");
	struct ws_stream *st;

	if (!json_is_integer(id))
		return NULL;
	for (st = c->streams; st != NULL; st = st->next)
		if (st->id == json_integer_value(id))
			return st;
	return NULL;
}

static void stream_free(struct ws_conn *c, struct ws_stream *st)
{
	streams_release_db(c->target.streams, st->conn.db);
	hrana_conn_reset(&st->conn);
	free(st);
}

static void cursor_free(struct ws_cursor *cur)
{
	json_decref(cur->entries);
	free(cur);
}

static struct ws_cursor **find_cursor(struct ws_conn *c, json_t *req)
{
	json_t *id = json_object_get(req, "cursor_id");
	struct ws_cursor **pp = &c->cursors;

	if (!json_is_integer(id))
		return NULL;
	while (*pp != NULL && (*pp)->id != json_integer_value(id))
		pp = &(*pp)->next;
	return *pp != NULL ? pp : NULL;
}

/* The answer to an open_stream that got no connection (rc): the server's
 * streams are all taken (--max-streams, shared with HTTP), or a failure. */
static void open_stream_refused(struct ws_conn *c, json_int_t rid, int rc)
{
	char msg[160];

	if (rc == SQLITE_FULL) {
		streams_exhausted_message(c->target.streams, msg, sizeof msg);
		ws_respond_error(c, rid,
				 hrana_make_error(msg, "STREAMS_EXHAUSTED"));
		return;
	}
	ws_respond_error(c, rid,
			 hrana_make_error("cannot open a database connection",
					  "INTERNAL_ERROR"));
}

static void open_stream(struct ws_conn *c, json_int_t rid, json_t *req)
{
	json_t *id = json_object_get(req, "stream_id");
	struct ws_stream *st;
	sqlite3 *db = NULL;
	int rc;

	if (!json_is_integer(id)) {
		ws_proto_error(c, "open_stream needs an integer stream_id");
		return;
	}
	if (find_stream(c, req) != NULL) {
		ws_proto_error(c, "open_stream: the stream_id is in use");
		return;
	}
	if (c->n_streams >= c->srv->cfg.max_streams) {
		ws_respond_error(
		    c, rid,
		    hrana_make_error("too many open streams on this "
				     "socket; close streams first",
				     "STREAMS_EXHAUSTED"));
		return;
	}
	st = calloc(1, sizeof *st);
	rc = st != NULL ? streams_acquire_db(c->target.streams, &db)
			: SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		free(st);
		open_stream_refused(c, rid, rc);
		return;
	}
	hrana_conn_init(&st->conn, db, c->version, c->read_only);
	st->conn.timeout_ms = streams_statement_timeout(c->target.streams);
	st->conn.stats = streams_sql_stats(c->target.streams);
	st->conn.client_fd = c->fd;
	st->conn.client_ws = 1;
	json_decref(st->conn.sqls); /* the socket's, shared */
	st->conn.sqls = json_incref(c->sqls);
	st->id = json_integer_value(id);
	st->next = c->streams;
	c->streams = st;
	c->n_streams++;
	ws_respond_ok(c, rid, json_pack("{s:s}", "type", "open_stream"));
}

static void close_stream(struct ws_conn *c, json_int_t rid, json_t *req)
{
	struct ws_stream **pp = &c->streams;
	json_t *id = json_object_get(req, "stream_id");

	if (!json_is_integer(id)) {
		ws_proto_error(c, "close_stream needs an integer stream_id");
		return;
	}
	while (*pp != NULL && (*pp)->id != json_integer_value(id))
		pp = &(*pp)->next;
	if (*pp != NULL) {
		struct ws_stream *st = *pp;
		*pp = st->next;
		c->n_streams--;
		stream_free(c, st);
	}
	ws_respond_ok(c, rid, json_pack("{s:s}", "type", "close_stream"));
}

static void cursor_emit(void *arg, json_t *entry)
{
	json_array_append_new(arg, entry);
}

static void open_cursor(struct ws_conn *c, json_int_t rid, json_t *req,
			struct ws_stream *st)
{
	json_t *id = json_object_get(req, "cursor_id");
	const char *proto_err = NULL;
	struct ws_cursor *cur;

	if (!json_is_integer(id) || find_cursor(c, req) != NULL) {
		ws_proto_error(c, "open_cursor needs a cursor_id not in use");
		return;
	}
	if (hrana_check_batch(json_object_get(req, "batch"), 3, &proto_err) !=
	    0) {
		ws_proto_error(c, proto_err);
		return;
	}
	/* As many cursors as streams (sqld allows one per stream): a client
	 * with a batch in flight on each of its streams (@libsql/client on
	 * Hrana 3 runs every batch through a cursor) must not be refused. */
	if (c->n_cursors >= c->srv->cfg.max_streams) {
		ws_respond_error(
		    c, rid,
		    hrana_make_error("too many open cursors on this "
				     "socket; close cursors first",
				     "CURSORS_EXHAUSTED"));
		return;
	}
	cur = calloc(1, sizeof *cur);
	if (cur == NULL || (cur->entries = json_array()) == NULL) {
		free(cur);
		ws_respond_error(
		    c, rid,
		    hrana_make_error("out of memory", "INTERNAL_ERROR"));
		return;
	}
	if (hrana_cursor(&st->conn, json_object_get(req, "batch"), cursor_emit,
			 cur->entries, &proto_err) != 0) {
		cursor_free(cur);
		ws_proto_error(c, proto_err);
		return;
	}
	cur->id = json_integer_value(id);
	cur->next = c->cursors;
	c->cursors = cur;
	c->n_cursors++;
	ws_respond_ok(c, rid, json_pack("{s:s}", "type", "open_cursor"));
}

static void fetch_cursor(struct ws_conn *c, json_int_t rid, json_t *req)
{
	struct ws_cursor **pp = find_cursor(c, req);
	json_t *max = json_object_get(req, "max_count"), *out;
	size_t n, i, total;

	if (pp == NULL || !json_is_integer(max) ||
	    json_integer_value(max) < 0) {
		ws_proto_error(c, "fetch_cursor needs an open cursor_id and a "
				  "max_count");
		return;
	}
	total = json_array_size((*pp)->entries);
	n = (size_t)json_integer_value(max);
	if (n > total - (*pp)->pos)
		n = total - (*pp)->pos;
	out = json_array();
	for (i = 0; i < n; i++)
		json_array_append(out,
				  json_array_get((*pp)->entries, (*pp)->pos++));
	ws_respond_ok(c, rid,
		      json_pack("{s:s, s:o, s:b}", "type", "fetch_cursor",
				"entries", out, "done", (*pp)->pos == total));
}

static void close_cursor(struct ws_conn *c, json_int_t rid, json_t *req)
{
	struct ws_cursor **pp = find_cursor(c, req);

	if (pp != NULL) {
		struct ws_cursor *cur = *pp;
		*pp = cur->next;
		c->n_cursors--;
		cursor_free(cur);
	}
	ws_respond_ok(c, rid, json_pack("{s:s}", "type", "close_cursor"));
}

/* The requests of each version (hrana1 has the first four only). */
static int allowed(const char *type, int version)
{
	static const char *const v1[] = {"open_stream", "close_stream",
					 "execute", "batch"};
	static const char *const v2[] = {"sequence", "describe", "store_sql",
					 "close_sql"};
	static const char *const v3[] = {"get_autocommit", "open_cursor",
					 "fetch_cursor", "close_cursor"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcmp(type, v1[i]) == 0)
			return 1;
		if (strcmp(type, v2[i]) == 0)
			return version >= 2;
		if (strcmp(type, v3[i]) == 0)
			return version >= 3;
	}
	return 0;
}

static void request(struct ws_conn *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "request_id");
	json_t *req = json_object_get(msg, "request"), *res;
	const char *type = json_string_value(json_object_get(req, "type"));
	const char *proto_err = NULL;
	struct ws_stream *st;
	json_int_t rid;
	int close = 0;

	if (!c->hello) {
		ws_proto_error(c, "a request before the hello");
		return;
	}
	if (!json_is_integer(id) || !json_is_object(req) || type == NULL) {
		ws_proto_error(c, "a request needs an integer request_id and a "
				  "request object with a type");
		return;
	}
	rid = json_integer_value(id);
	if (c->expires != 0 && (int64_t)time(NULL) >= c->expires) {
		/* The token ran out while the socket stayed open: nothing
		 * more runs until a hello brings a valid one (hrana2+). */
		ws_respond_error(
		    c, rid,
		    hrana_make_error("the hello's token has expired: send a "
				     "hello with a new one",
				     "AUTH_JWT_EXPIRED"));
		return;
	}
	if (!allowed(type, c->version)) {
		ws_proto_error(c, "unknown request type for this version");
		return;
	}
	if (strcmp(type, "open_stream") == 0) {
		open_stream(c, rid, req);
		return;
	}
	if (strcmp(type, "close_stream") == 0) {
		close_stream(c, rid, req);
		return;
	}
	if (strcmp(type, "fetch_cursor") == 0) {
		fetch_cursor(c, rid, req);
		return;
	}
	if (strcmp(type, "close_cursor") == 0) {
		close_cursor(c, rid, req);
		return;
	}
	if (strcmp(type, "store_sql") == 0 || strcmp(type, "close_sql") == 0) {
		/* connection-level: on the shared SQL texts */
		struct hrana_conn sc = {.version = c->version, .sqls = c->sqls};
		json_t *sqls = c->sqls;

		if (strcmp(type, "store_sql") == 0) {
			char key[32];
			snprintf(
			    key, sizeof key, "%" JSON_INTEGER_FORMAT,
			    json_integer_value(json_object_get(req, "sql_id")));
			if (json_object_get(sqls, key) != NULL) {
				ws_proto_error(c, "store_sql: the sql_id is in "
						  "use");
				return;
			}
		}
		res = hrana_execute_request(&sc, req, &close, &proto_err);
		if (res == NULL)
			ws_proto_error(c, proto_err);
		else
			ws_respond_result(c, rid, res);
		return;
	}
	st = find_stream(c, req);
	if (st == NULL) {
		ws_respond_error(c, rid,
				 hrana_make_error("no open stream has this "
						  "stream_id",
						  "STREAM_NOT_FOUND"));
		return;
	}
	if (strcmp(type, "open_cursor") == 0) {
		open_cursor(c, rid, req, st);
		return;
	}
	if (hrana_check_request(req, c->version, &proto_err) != 0) {
		ws_proto_error(c, proto_err);
		return;
	}
	res = hrana_execute_request(&st->conn, req, &close, &proto_err);
	if (res == NULL)
		ws_proto_error(c, proto_err);
	else
		ws_respond_result(c, rid, res);
}

void ws_on_msg(wslay_event_context_ptr ctx,
	       const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct ws_conn *c = user;
	json_error_t err;
	const char *type;
	json_t *msg;

	(void)ctx;
	if (c->closing || wslay_is_ctrl_frame(arg->opcode))
		return;
	if (c->protobuf) {
		const char *pb_err = NULL;
		if (arg->opcode != WSLAY_BINARY_FRAME) {
			ws_close_with(c, 1003,
				      "hrana3-protobuf takes only binary "
				      "messages");
			return;
		}
		msg = hrana_pb_client_msg(arg->msg, arg->msg_length, &pb_err);
		if (msg == NULL) {
			ws_proto_error(c, pb_err);
			return;
		}
	} else if (arg->opcode != WSLAY_TEXT_FRAME) {
		ws_close_with(c, 1003, "only text messages with JSON");
		return;
	} else {
		msg = json_loadb((const char *)arg->msg, arg->msg_length, 0,
				 &err);
	}
	type = json_string_value(json_object_get(msg, "type"));
	if (!json_is_object(msg) || type == NULL)
		ws_proto_error(c,
			       "a message must be a JSON object with a type");
	else if (strcmp(type, "hello") == 0)
		hello(c, msg);
	else if (strcmp(type, "request") == 0)
		request(c, msg);
	else
		ws_proto_error(c, "unknown message type");
	json_decref(msg);
}

void ws_hrana_release(struct ws_conn *c)
{
	while (c->cursors != NULL) {
		struct ws_cursor *cur = c->cursors;
		c->cursors = cur->next;
		cursor_free(cur);
	}
	while (c->streams != NULL) {
		struct ws_stream *st = c->streams;
		c->streams = st->next;
		stream_free(c, st);
	}
	json_decref(c->sqls);
	c->sqls = NULL;
}
