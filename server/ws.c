/* Hrana over WebSocket.
 *
 * Why wslay rather than libwebsockets: wslay (libwslay-dev) does only the
 * framing (RFC 6455 frames, masking, fragmentation, ping/pong and the close
 * handshake) through two I/O callbacks, with no event loop, sockets or HTTP
 * server of its own.  That is exactly what libmicrohttpd's connection
 * upgrade hands us: MHD parses the HTTP request and sends the 101, then
 * gives us the raw socket.  libwebsockets is a server in its own right (its
 * own event loop, listener, HTTP parser and TLS); using it would mean a
 * second server beside MHD, or routing MHD's sockets into its loop, for
 * nothing we need.
 *
 * Each upgraded socket runs on a thread of its own (http.c): SQL may block
 * on locks, and must not stall MHD's polling thread.  Threads are bounded
 * (max_connections; more are refused with 503 before the upgrade), sockets
 * are non-blocking with poll() timeouts: a socket silent for idle_ms is
 * closed, and so is one whose peer does not read our answers.  Messages are
 * bounded by max_message (wslay closes with 1009 beyond).
 *
 * The protocol (libSQL's Hrana 1-3 over WebSocket, JSON): the client sends
 * "hello" (with its JWT), then "request"s carrying a request_id; each is
 * answered by response_ok or response_error with that id.  Each stream_id
 * names a SQLite connection of its own; SQL texts stored with store_sql are
 * shared by the socket's streams; a cursor (Hrana 3) is run to the end when
 * it opens and its entries handed out by fetch_cursor. */
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "base/base64.h"
#include "base/clock.h"
#include "hrana.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Stop reading while this much of our answers waits for the peer. */
#define MAX_QUEUED_OUT (8u << 20)
/* After our close frame, how long the peer has to answer it. */
#define CLOSE_WAIT_MS 2000
#define MAX_CURSORS 16

struct ws_server {
	struct ws_config cfg;
	pthread_mutex_t mu;
	unsigned n; /* sockets upgraded or about to be */
};

struct ws_stream {
	int64_t id;
	struct hrana_conn conn;
	struct ws_stream *next;
};

struct ws_cursor {
	int64_t id;
	json_t *entries; /* all of them, computed at open_cursor */
	size_t pos;
	struct ws_cursor *next;
};

struct ws_conn {
	struct ws_server *srv;
	int version; /* 1, 2 or 3 */
	int fd;
	const uint8_t *extra;
	size_t extra_len, extra_pos;
	wslay_event_context_ptr ctx;
	int hello;              /* a hello was accepted */
	int read_only;          /* the hello's token is read-only */
	int closing;            /* we are closing: no more requests run */
	uint16_t close_code;    /* not 0: the close frame to queue once the */
	char close_reason[124]; /* answers before it are sent (wslay sends
				   control frames first) */
	int64_t close_by;       /* when closing: give up waiting for the peer */
	int64_t last_rx_ms;
	json_t *sqls; /* sql_id -> SQL, shared by the streams */
	struct ws_stream *streams;
	int n_streams;
	struct ws_cursor *cursors;
	int n_cursors;
};

struct ws_server *ws_server_new(const struct ws_config *cfg)
{
	struct ws_server *ws = calloc(1, sizeof *ws);

	if (ws == NULL)
		return NULL;
	ws->cfg = *cfg;
	pthread_mutex_init(&ws->mu, NULL);
	return ws;
}

void ws_server_free(struct ws_server *ws)
{
	if (ws == NULL)
		return;
	pthread_mutex_destroy(&ws->mu);
	free(ws);
}

unsigned ws_connections(struct ws_server *ws)
{
	unsigned n;

	pthread_mutex_lock(&ws->mu);
	n = ws->n;
	pthread_mutex_unlock(&ws->mu);
	return n;
}

/* ---------------------------------------------------------------------- */
/* the handshake */

/* Does the comma-separated header value list token (case-insensitive)? */
static int header_has_token(const char *v, const char *token)
{
	size_t n = strlen(token);

	while (v != NULL && *v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, token, n) == 0 &&
		    (v[n] == '\0' || v[n] == ',' || v[n] == ' ' ||
		     v[n] == '\t'))
			return 1;
		v = strchr(v, ',');
	}
	return 0;
}

int ws_is_upgrade(struct http_request *req)
{
	return header_has_token(http_request_header(req, "Upgrade"),
				"websocket");
}

static const struct {
	const char *name;
	int version;
} subprotocols[] = {{"hrana3", 3}, {"hrana2", 2}, {"hrana1", 1}};

static void upgrade_run(void *arg, int fd, const uint8_t *extra,
			size_t extra_len, int stop_fd);

/* What the upgrade callback gets: the server and the version. */
struct ws_pending {
	struct ws_server *srv;
	int version;
};

static int accept_key(const char *key, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char buf[128];
	char *b64;
	int n = snprintf(buf, sizeof buf, "%s%s", key, WS_GUID);

	if (n < 0 || (size_t)n >= sizeof buf ||
	    EVP_Digest(buf, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1)
		return -1;
	b64 = base64_encode(md, md_len, 0, 1);
	if (b64 == NULL)
		return -1;
	snprintf(out, 64, "%s", b64);
	free(b64);
	return 0;
}

void ws_handle_upgrade(struct ws_server *ws, struct http_request *req,
		       struct http_response *res)
{
	const char *key = http_request_header(req, "Sec-WebSocket-Key");
	const char *ver = http_request_header(req, "Sec-WebSocket-Version");
	const char *protos = http_request_header(req, "Sec-WebSocket-Protocol");
	struct ws_pending *p;
	const char *chosen = NULL;
	int version = 1;
	size_t i;

	if (strcmp(req->method, "GET") != 0 || key == NULL ||
	    strlen(key) != 24) {
		http_reply_error(&res->reply, 400, "WS_BAD_HANDSHAKE",
				 "a WebSocket upgrade is a GET with a "
				 "Sec-WebSocket-Key");
		return;
	}
	if (ver == NULL || strcmp(ver, "13") != 0) {
		http_reply_error(&res->reply, 426, "WS_BAD_VERSION",
				 "only WebSocket version 13 is supported");
		res->headers[0].name = "Sec-WebSocket-Version";
		snprintf(res->headers[0].value, sizeof res->headers[0].value,
			 "13");
		return;
	}
	if (protos != NULL) {
		for (i = 0; i < sizeof subprotocols / sizeof subprotocols[0];
		     i++) {
			if (header_has_token(protos, subprotocols[i].name)) {
				chosen = subprotocols[i].name;
				version = subprotocols[i].version;
				break;
			}
		}
		if (chosen == NULL) {
			http_reply_error(&res->reply, 400, "WS_NO_SUBPROTOCOL",
					 "none of the WebSocket subprotocols "
					 "offered is supported (hrana1, "
					 "hrana2, hrana3)");
			return;
		}
	}
	pthread_mutex_lock(&ws->mu);
	if (ws->n >= ws->cfg.max_connections) {
		pthread_mutex_unlock(&ws->mu);
		http_reply_error(&res->reply, 503, "WS_TOO_MANY_CONNECTIONS",
				 "too many WebSocket connections (at most "
				 "%u); retry later",
				 ws->cfg.max_connections);
		return;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		pthread_mutex_unlock(&ws->mu);
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "out of memory");
		return;
	}
	ws->n++;
	pthread_mutex_unlock(&ws->mu);
	p->srv = ws;
	p->version = version;
	res->headers[0].name = "Upgrade";
	snprintf(res->headers[0].value, sizeof res->headers[0].value,
		 "websocket");
	res->headers[1].name = "Sec-WebSocket-Accept";
	if (accept_key(key, res->headers[1].value) != 0) {
		free(p);
		pthread_mutex_lock(&ws->mu);
		ws->n--;
		pthread_mutex_unlock(&ws->mu);
		memset(res->headers, 0, sizeof res->headers);
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "cannot compute Sec-WebSocket-Accept");
		return;
	}
	if (chosen != NULL) {
		res->headers[2].name = "Sec-WebSocket-Protocol";
		snprintf(res->headers[2].value, sizeof res->headers[2].value,
			 "%s", chosen);
	}
	res->reply.status = 101;
	res->upgrade = upgrade_run;
	res->upgrade_arg = p;
}

/* ---------------------------------------------------------------------- */
/* messages */

static void send_json(struct ws_conn *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	struct wslay_event_msg m;

	json_decref(msg);
	if (text == NULL)
		return;
	m.opcode = WSLAY_TEXT_FRAME;
	m.msg = (const uint8_t *)text;
	m.msg_length = strlen(text);
	wslay_event_queue_msg(c->ctx, &m); /* copies the message */
	free(text);
}

static void close_with(struct ws_conn *c, uint16_t code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->close_by = clock_monotonic_ms() + CLOSE_WAIT_MS;
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
}

/* Queue the close frame once every answer before it went out. */
static void flush_close(struct ws_conn *c)
{
	if (c->close_code == 0 || wslay_event_get_queued_msg_count(c->ctx) > 0)
		return;
	wslay_event_queue_close(c->ctx, c->close_code,
				(const uint8_t *)c->close_reason,
				strlen(c->close_reason));
	c->close_code = 0;
}

/* A protocol error: the socket is closed (the spec: "the server closes the
 * WebSocket with an error"); the reason is the message. */
static void proto_error(struct ws_conn *c, const char *msg)
{
	char reason[120]; /* a close reason fits in 123 bytes */

	snprintf(reason, sizeof reason, "%s", msg);
	close_with(c, 1002, reason);
}

static void respond_error(struct ws_conn *c, json_int_t id, json_t *error)
{
	send_json(c, json_pack("{s:s, s:I, s:o}", "type", "response_error",
			       "request_id", id, "error", error));
}

static void respond_ok(struct ws_conn *c, json_int_t id, json_t *response)
{
	send_json(c, json_pack("{s:s, s:I, s:o}", "type", "response_ok",
			       "request_id", id, "response", response));
}

/* The StreamResult of hrana_execute_request, as this request's answer. */
static void respond_result(struct ws_conn *c, json_int_t id, json_t *result)
{
	const char *type = json_string_value(json_object_get(result, "type"));

	if (type != NULL && strcmp(type, "ok") == 0)
		respond_ok(c, id,
			   json_incref(json_object_get(result, "response")));
	else
		respond_error(c, id,
			      json_incref(json_object_get(result, "error")));
	json_decref(result);
}

static void hello(struct ws_conn *c, json_t *msg)
{
	const struct jwt_keys *keys = c->srv->cfg.keys;
	const char *jwt = json_string_value(json_object_get(msg, "jwt"));
	const char *code = NULL;
	char text[256];
	enum jwt_access access = JWT_ACCESS_READ_WRITE;
	struct ws_stream *st;

	if (c->hello && c->version < 2) {
		proto_error(c, "hello may be sent only once in hrana1");
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
			access = jwt_verify(keys, jwt, (int64_t)time(NULL),
					    &code, text, sizeof text);
		}
	}
	if (access == JWT_ACCESS_DENIED) {
		send_json(c, json_pack("{s:s, s:{s:s, s:s}}", "type",
				       "hello_error", "error", "message", text,
				       "code", code ? code : "AUTH_FAILED"));
		close_with(c, 1008, "authentication failed");
		return;
	}
	c->hello = 1;
	c->read_only = access != JWT_ACCESS_READ_WRITE;
	for (st = c->streams; st != NULL; st = st->next)
		st->conn.read_only = c->read_only;
	send_json(c, json_pack("{s:s}", "type", "hello_ok"));
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
	streams_release_db(c->srv->cfg.streams, st->conn.db);
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

static void open_stream(struct ws_conn *c, json_int_t rid, json_t *req)
{
	json_t *id = json_object_get(req, "stream_id");
	struct ws_stream *st;
	sqlite3 *db = NULL;

	if (!json_is_integer(id)) {
		proto_error(c, "open_stream needs an integer stream_id");
		return;
	}
	if (find_stream(c, req) != NULL) {
		proto_error(c, "open_stream: the stream_id is in use");
		return;
	}
	if (c->n_streams >= c->srv->cfg.max_streams) {
		respond_error(c, rid,
			      hrana_make_error("too many open streams on this "
					       "socket; close streams first",
					       "STREAMS_EXHAUSTED"));
		return;
	}
	st = calloc(1, sizeof *st);
	if (st == NULL ||
	    streams_acquire_db(c->srv->cfg.streams, &db) != SQLITE_OK) {
		sqlite3_close(db);
		free(st);
		respond_error(
		    c, rid,
		    hrana_make_error("cannot open a database connection",
				     "INTERNAL_ERROR"));
		return;
	}
	hrana_conn_init(&st->conn, db, c->version, c->read_only);
	json_decref(st->conn.sqls); /* the socket's, shared */
	st->conn.sqls = json_incref(c->sqls);
	st->id = json_integer_value(id);
	st->next = c->streams;
	c->streams = st;
	c->n_streams++;
	respond_ok(c, rid, json_pack("{s:s}", "type", "open_stream"));
}

static void close_stream(struct ws_conn *c, json_int_t rid, json_t *req)
{
	struct ws_stream **pp = &c->streams;
	json_t *id = json_object_get(req, "stream_id");

	if (!json_is_integer(id)) {
		proto_error(c, "close_stream needs an integer stream_id");
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
	respond_ok(c, rid, json_pack("{s:s}", "type", "close_stream"));
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
		proto_error(c, "open_cursor needs a cursor_id not in use");
		return;
	}
	if (hrana_check_batch(json_object_get(req, "batch"), 3, &proto_err) !=
	    0) {
		proto_error(c, proto_err);
		return;
	}
	if (c->n_cursors >= MAX_CURSORS) {
		respond_error(c, rid,
			      hrana_make_error("too many open cursors on this "
					       "socket; close cursors first",
					       "CURSORS_EXHAUSTED"));
		return;
	}
	cur = calloc(1, sizeof *cur);
	if (cur == NULL || (cur->entries = json_array()) == NULL) {
		free(cur);
		respond_error(
		    c, rid,
		    hrana_make_error("out of memory", "INTERNAL_ERROR"));
		return;
	}
	if (hrana_cursor(&st->conn, json_object_get(req, "batch"), cursor_emit,
			 cur->entries, &proto_err) != 0) {
		cursor_free(cur);
		proto_error(c, proto_err);
		return;
	}
	cur->id = json_integer_value(id);
	cur->next = c->cursors;
	c->cursors = cur;
	c->n_cursors++;
	respond_ok(c, rid, json_pack("{s:s}", "type", "open_cursor"));
}

static void fetch_cursor(struct ws_conn *c, json_int_t rid, json_t *req)
{
	struct ws_cursor **pp = find_cursor(c, req);
	json_t *max = json_object_get(req, "max_count"), *out;
	size_t n, i, total;

	if (pp == NULL || !json_is_integer(max) ||
	    json_integer_value(max) < 0) {
		proto_error(c, "fetch_cursor needs an open cursor_id and a "
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
	respond_ok(c, rid,
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
	respond_ok(c, rid, json_pack("{s:s}", "type", "close_cursor"));
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
		proto_error(c, "a request before the hello");
		return;
	}
	if (!json_is_integer(id) || !json_is_object(req) || type == NULL) {
		proto_error(c, "a request needs an integer request_id and a "
			       "request object with a type");
		return;
	}
	rid = json_integer_value(id);
	if (!allowed(type, c->version)) {
		proto_error(c, "unknown request type for this version");
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
				proto_error(c, "store_sql: the sql_id is in "
					       "use");
				return;
			}
		}
		res = hrana_execute_request(&sc, req, &close, &proto_err);
		if (res == NULL)
			proto_error(c, proto_err);
		else
			respond_result(c, rid, res);
		return;
	}
	st = find_stream(c, req);
	if (st == NULL) {
		respond_error(c, rid,
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
		proto_error(c, proto_err);
		return;
	}
	res = hrana_execute_request(&st->conn, req, &close, &proto_err);
	if (res == NULL)
		proto_error(c, proto_err);
	else
		respond_result(c, rid, res);
}

static void on_msg(wslay_event_context_ptr ctx,
		   const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct ws_conn *c = user;
	json_error_t err;
	const char *type;
	json_t *msg;

	(void)ctx;
	if (c->closing || wslay_is_ctrl_frame(arg->opcode))
		return;
	if (arg->opcode != WSLAY_TEXT_FRAME) {
		close_with(c, 1003, "only text messages with JSON");
		return;
	}
	msg = json_loadb((const char *)arg->msg, arg->msg_length, 0, &err);
	type = json_string_value(json_object_get(msg, "type"));
	if (!json_is_object(msg) || type == NULL)
		proto_error(c, "a message must be a JSON object with a type");
	else if (strcmp(type, "hello") == 0)
		hello(c, msg);
	else if (strcmp(type, "request") == 0)
		request(c, msg);
	else
		proto_error(c, "unknown message type");
	json_decref(msg);
}

/* ---------------------------------------------------------------------- */
/* the socket */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
		       int flags, void *user)
{
	struct ws_conn *c = user;
	ssize_t n;

	(void)flags;
	if (c->extra_pos < c->extra_len) {
		n = (ssize_t)(c->extra_len - c->extra_pos);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, c->extra + c->extra_pos, (size_t)n);
		c->extra_pos += (size_t)n;
		return n;
	}
	do {
		n = recv(c->fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		c->last_rx_ms = clock_monotonic_ms();
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data,
		       size_t len, int flags, void *user)
{
	struct ws_conn *c = user;
	ssize_t n;

	(void)flags;
	do {
		n = send(c->fd, data, len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static void loop(struct ws_conn *c, int stop_fd)
{
	int stopping = 0;
	int64_t last_tx_progress = clock_monotonic_ms();

	for (;;) {
		struct pollfd pf[2];
		int64_t now = clock_monotonic_ms();
		int rd = wslay_event_want_read(c->ctx);
		int wr = wslay_event_want_write(c->ctx);
		int nfds = 1, timeout = 1000;

		flush_close(c);
		wr = wslay_event_want_write(c->ctx);
		if (!rd && !wr)
			break;
		if (c->closing && now > c->close_by)
			break;
		if (!wr)
			last_tx_progress = now;
		else if (now - last_tx_progress > c->srv->cfg.idle_ms)
			break; /* the peer does not read */
		if (!c->closing && now - c->last_rx_ms > c->srv->cfg.idle_ms)
			close_with(c, 1001, "idle for too long");
		if (rd &&
		    wslay_event_get_queued_msg_length(c->ctx) > MAX_QUEUED_OUT)
			rd = 0; /* let the peer read first */
		if (rd && c->extra_pos < c->extra_len) {
			if (wslay_event_recv(c->ctx) != 0)
				break;
			continue;
		}
		pf[0].fd = c->fd;
		pf[0].events =
		    (short)((rd ? POLLIN : 0) |
			    (wslay_event_want_write(c->ctx) ? POLLOUT : 0));
		pf[0].revents = 0;
		if (!stopping && stop_fd >= 0) {
			pf[1].fd = stop_fd;
			pf[1].events = POLLIN;
			pf[1].revents = 0;
			nfds = 2;
		}
		if (poll(pf, (nfds_t)nfds, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (nfds == 2 && (pf[1].revents & POLLIN)) {
			stopping = 1;
			close_with(c, 1001, "the server is shutting down");
			c->close_by = clock_monotonic_ms() + 200;
		}
		if (pf[0].revents & POLLIN) {
			if (wslay_event_recv(c->ctx) != 0)
				break;
		} else if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			break;
		}
		if (pf[0].revents & POLLOUT) {
			size_t before =
			    wslay_event_get_queued_msg_length(c->ctx);
			if (wslay_event_send(c->ctx) != 0)
				break;
			if (wslay_event_get_queued_msg_length(c->ctx) < before)
				last_tx_progress = clock_monotonic_ms();
		}
		/* answers queued while reading go out at once if they can */
		if (wslay_event_want_write(c->ctx) &&
		    wslay_event_send(c->ctx) != 0)
			break;
	}
}

static void upgrade_run(void *arg, int fd, const uint8_t *extra,
			size_t extra_len, int stop_fd)
{
	struct ws_pending *p = arg;
	struct ws_server *ws = p->srv;
	struct wslay_event_callbacks cb = {0};
	struct ws_conn c = {0};
	int flags;

	if (fd < 0)
		goto out;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		goto out;
	c.srv = ws;
	c.version = p->version;
	c.fd = fd;
	c.extra = extra;
	c.extra_len = extra_len;
	c.last_rx_ms = clock_monotonic_ms();
	c.sqls = json_object();
	cb.recv_callback = on_recv;
	cb.send_callback = on_send;
	cb.on_msg_recv_callback = on_msg;
	if (c.sqls == NULL ||
	    wslay_event_context_server_init(&c.ctx, &cb, &c) != 0)
		goto done;
	wslay_event_config_set_max_recv_msg_length(c.ctx, ws->cfg.max_message);
	if (ws->cfg.log)
		fprintf(stderr, "replite: websocket open (hrana%d)\n",
			c.version);
	loop(&c, stop_fd);
	wslay_event_context_free(c.ctx);
	if (ws->cfg.log)
		fprintf(stderr, "replite: websocket closed\n");
done:
	while (c.cursors != NULL) {
		struct ws_cursor *cur = c.cursors;
		c.cursors = cur->next;
		cursor_free(cur);
	}
	while (c.streams != NULL) {
		struct ws_stream *st = c.streams;
		c.streams = st->next;
		stream_free(&c, st);
	}
	json_decref(c.sqls);
	shutdown(fd, SHUT_RDWR);
out:
	pthread_mutex_lock(&ws->mu);
	ws->n--;
	pthread_mutex_unlock(&ws->mu);
	free(p);
}
