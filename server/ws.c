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
 * (max_connections, and max_per_client for each client address; more are
 * refused with 503 or 429 before the upgrade: ws_admit.c), sockets
 * are non-blocking with poll() timeouts: a socket silent for idle_ms is
 * closed, and so is one whose peer does not read our answers.  Messages are
 * bounded by max_message (wslay closes with 1009 beyond).
 *
 * The protocol (libSQL's Hrana 1-3 over WebSocket, in JSON, or Hrana 3 in
 * protobuf with the subprotocol hrana3-protobuf, translated to and from the
 * same JSON by hrana_pb.h): the client sends
 * "hello" (with its JWT), then "request"s carrying a request_id; each is
 * answered by response_ok or response_error with that id.  Each stream_id
 * names a SQLite connection of its own; SQL texts stored with store_sql are
 * shared by the socket's streams; a cursor (Hrana 3) is run to the end when
 * it opens and its entries handed out by fetch_cursor. */
#include "ws_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "base/base64.h"
#include "base/clock.h"
#include "hrana.h"
#include "hrana_pb.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Stop reading while this much of our answers waits for the peer. */
#define MAX_QUEUED_OUT (8u << 20)
/* After our close frame, how long the peer has to answer it. */
#define CLOSE_WAIT_MS 2000

struct ws_server *ws_server_new(const struct ws_config *cfg)
{
	struct ws_server *ws = calloc(1, sizeof *ws);

	if (ws == NULL)
		return NULL;
	ws->cfg = *cfg;
	if (ws->cfg.max_per_client == 0)
		ws->cfg.max_per_client = ws->cfg.max_connections;
	ws->clients =
	    calloc(ws->cfg.max_connections > 0 ? ws->cfg.max_connections : 1,
		   sizeof *ws->clients);
	if (ws->clients == NULL) {
		free(ws);
		return NULL;
	}
	pthread_mutex_init(&ws->mu, NULL);
	return ws;
}

void ws_server_free(struct ws_server *ws)
{
	if (ws == NULL)
		return;
	pthread_mutex_destroy(&ws->mu);
	free(ws->clients);
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

/* In order of preference: a client offering protobuf gets it, as the more
 * compact encoding. */
static const struct {
	const char *name;
	int version;
	int protobuf;
} subprotocols[] = {{"hrana3-protobuf", 3, 1},
		    {"hrana3", 3, 0},
		    {"hrana2", 2, 0},
		    {"hrana1", 1, 0}};

static void upgrade_run(void *arg, int fd, const uint8_t *extra,
			size_t extra_len, int stop_fd);

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

/* An error answer: the target is not served after all. */
static void release_target(const struct ws_target *t)
{
	if (t->release != NULL)
		t->release(t->release_arg);
}

void ws_handle_upgrade(struct ws_server *ws, struct http_request *req,
		       struct http_response *res,
		       const struct ws_target *target)
{
	const char *key = http_request_header(req, "Sec-WebSocket-Key");
	const char *ver = http_request_header(req, "Sec-WebSocket-Version");
	const char *protos = http_request_header(req, "Sec-WebSocket-Protocol");
	struct ws_pending *p;
	const char *chosen = NULL;
	int version = 1, protobuf = 0;
	size_t i;

	if (strcmp(req->method, "GET") != 0 || key == NULL ||
	    strlen(key) != 24) {
		http_reply_error(&res->reply, 400, "WS_BAD_HANDSHAKE",
				 "a WebSocket upgrade is a GET with a "
				 "Sec-WebSocket-Key");
		release_target(target);
		return;
	}
	if (ver == NULL || strcmp(ver, "13") != 0) {
		http_reply_error(&res->reply, 426, "WS_BAD_VERSION",
				 "only WebSocket version 13 is supported");
		res->headers[0].name = "Sec-WebSocket-Version";
		snprintf(res->headers[0].value, sizeof res->headers[0].value,
			 "13");
		release_target(target);
		return;
	}
	if (protos != NULL) {
		for (i = 0; i < sizeof subprotocols / sizeof subprotocols[0];
		     i++) {
			if (header_has_token(protos, subprotocols[i].name)) {
				chosen = subprotocols[i].name;
				version = subprotocols[i].version;
				protobuf = subprotocols[i].protobuf;
				break;
			}
		}
		if (chosen == NULL) {
			http_reply_error(&res->reply, 400, "WS_NO_SUBPROTOCOL",
					 "none of the WebSocket subprotocols "
					 "offered is supported (hrana1, "
					 "hrana2, hrana3, hrana3-protobuf)");
			release_target(target);
			return;
		}
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "out of memory");
		release_target(target);
		return;
	}
	if (ws_admit(ws, req, p->client, res) != 0) {
		free(p);
		release_target(target);
		return;
	}
	p->srv = ws;
	p->target = *target;
	p->version = version;
	p->protobuf = protobuf;
	res->headers[0].name = "Upgrade";
	snprintf(res->headers[0].value, sizeof res->headers[0].value,
		 "websocket");
	res->headers[1].name = "Sec-WebSocket-Accept";
	if (accept_key(key, res->headers[1].value) != 0) {
		ws_leave(ws, p->client);
		free(p);
		release_target(target);
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

/* msg encoded for the socket's subprotocol: JSON text, or a protobuf
 * ServerMsg (hrana3-protobuf). */
static int encode(struct ws_conn *c, json_t *msg, struct wslay_event_msg *m)
{
	struct hrana_pb_buf pb = {0};
	char *text;

	if (c->protobuf) {
		if (hrana_pb_server_msg(msg, &pb) != 0) {
			hrana_pb_buf_free(&pb);
			return -1;
		}
		m->opcode = WSLAY_BINARY_FRAME;
		m->msg = pb.data;
		m->msg_length = pb.len;
		return 0;
	}
	text = json_dumps(msg, JSON_COMPACT);
	if (text == NULL)
		return -1;
	m->opcode = WSLAY_TEXT_FRAME;
	m->msg = (const uint8_t *)text;
	m->msg_length = strlen(text);
	return 0;
}

void ws_send_json(struct ws_conn *c, json_t *msg)
{
	struct wslay_event_msg m;
	char err[512];
	int rc = encode(c, msg, &m);

	json_decref(msg);
	if (rc != 0) {
		/* The client would wait forever for this answer. */
		ws_close_with(c, 1011, "cannot encode an answer");
		return;
	}
	if (c->srv->cfg.before_send != NULL &&
	    c->srv->cfg.before_send(c->target.before_send_arg, err,
				    sizeof err) != 0) {
		err[119] = '\0'; /* a close reason fits in 123 bytes */
		free((void *)m.msg);
		ws_close_with(c, 1011, err);
		return;
	}
	wslay_event_queue_msg(c->ctx, &m); /* copies the message */
	free((void *)m.msg);
}

void ws_close_with(struct ws_conn *c, uint16_t code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->close_by = clock_monotonic_ms() + CLOSE_WAIT_MS;
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
}

/* Queue the close frame once every answer before it went out. */
void ws_flush_close(struct ws_conn *c)
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
void ws_proto_error(struct ws_conn *c, const char *msg)
{
	char reason[120]; /* a close reason fits in 123 bytes */

	snprintf(reason, sizeof reason, "%s", msg);
	ws_close_with(c, 1002, reason);
}

void ws_respond_error(struct ws_conn *c, json_int_t id, json_t *error)
{
	ws_send_json(c, json_pack("{s:s, s:I, s:o}", "type", "response_error",
				  "request_id", id, "error", error));
}

void ws_respond_ok(struct ws_conn *c, json_int_t id, json_t *response)
{
	ws_send_json(c, json_pack("{s:s, s:I, s:o}", "type", "response_ok",
				  "request_id", id, "response", response));
}

/* The StreamResult of hrana_execute_request, as this request's answer. */
void ws_respond_result(struct ws_conn *c, json_int_t id, json_t *result)
{
	const char *type = json_string_value(json_object_get(result, "type"));

	if (type != NULL && strcmp(type, "ok") == 0)
		ws_respond_ok(c, id,
			      json_incref(json_object_get(result, "response")));
	else
		ws_respond_error(c, id,
				 json_incref(json_object_get(result, "error")));
	json_decref(result);
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

/* After wslay_event_recv failed: did wslay stop reading and queue a close
 * frame (1002 for a frame it cannot parse: a control frame longer than 125
 * bytes or fragmented, a 64-bit length with its top bit set)?  Then that
 * frame is sent before the socket closes, as RFC 6455 wants, within the
 * usual wait for the peer. */
static int close_queued(struct ws_conn *c)
{
	if (wslay_event_want_read(c->ctx) || !wslay_event_want_write(c->ctx))
		return 0;
	if (!c->closing) {
		c->closing = 1;
		c->close_by = clock_monotonic_ms() + CLOSE_WAIT_MS;
	}
	return 1;
}

/* How long poll may wait: until the socket would be idle for too long
 * (--ws-idle-ms may be short), at most a second. */
static int idle_wait(const struct ws_conn *c, int64_t now)
{
	int64_t left = c->last_rx_ms + c->srv->cfg.idle_ms - now + 1;

	return left > 1000 ? 1000 : left < 1 ? 1 : (int)left;
}

static void loop(struct ws_conn *c, int stop_fd)
{
	int stopping = 0, was_wr = 0;
	int64_t last_tx_progress = clock_monotonic_ms();

	for (;;) {
		struct pollfd pf[2];
		int64_t now = clock_monotonic_ms();
		int rd = wslay_event_want_read(c->ctx);
		int wr = wslay_event_want_write(c->ctx);
		int nfds = 1, timeout = 1000;

		ws_flush_close(c);
		wr = wslay_event_want_write(c->ctx);
		if (!rd && !wr)
			break;
		if (c->closing && now > c->close_by)
			break;
		/* The peer's reading is timed from when there was something
		 * to send (a poll of up to a second may lie between). */
		if (!wr || !was_wr)
			last_tx_progress = now;
		else if (now - last_tx_progress > c->srv->cfg.idle_ms)
			break; /* the peer does not read */
		was_wr = wr;
		if (!c->closing && now - c->last_rx_ms > c->srv->cfg.idle_ms) {
			ws_close_with(c, 1001, "idle for too long");
			continue; /* queue the close frame now */
		} else if (!c->closing)
			timeout = idle_wait(c, now);
		if (rd &&
		    wslay_event_get_queued_msg_length(c->ctx) > MAX_QUEUED_OUT)
			rd = 0; /* let the peer read first */
		if (rd && c->extra_pos < c->extra_len) {
			if (wslay_event_recv(c->ctx) != 0 && !close_queued(c))
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
			ws_close_with(c, 1001, "the server is shutting down");
			c->close_by = clock_monotonic_ms() + 200;
		}
		if (pf[0].revents & POLLIN) {
			if (wslay_event_recv(c->ctx) != 0 && !close_queued(c))
				break;
			/* A statement may have run for longer than idle_ms:
			 * idleness counts from when its answer was ready. */
			c->last_rx_ms = clock_monotonic_ms();
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
	int flags, one = 1;

	if (fd < 0)
		goto out;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		goto out;
	/* Each answer is a small message sent at once: Nagle's algorithm
	 * would hold it back until the client's delayed ACK (40 ms). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c.srv = ws;
	c.target = p->target;
	c.version = p->version;
	c.protobuf = p->protobuf;
	c.fd = fd;
	c.extra = extra;
	c.extra_len = extra_len;
	c.last_rx_ms = clock_monotonic_ms();
	c.sqls = json_object();
	cb.recv_callback = on_recv;
	cb.send_callback = on_send;
	cb.on_msg_recv_callback = ws_on_msg;
	if (c.sqls == NULL ||
	    wslay_event_context_server_init(&c.ctx, &cb, &c) != 0)
		goto done;
	wslay_event_config_set_max_recv_msg_length(c.ctx, ws->cfg.max_message);
	if (ws->cfg.log)
		fprintf(stderr, "replite: websocket open (hrana%d%s)\n",
			c.version, c.protobuf ? "-protobuf" : "");
	loop(&c, stop_fd);
	wslay_event_context_free(c.ctx);
	if (ws->cfg.log)
		fprintf(stderr, "replite: websocket closed\n");
done:
	ws_hrana_release(&c);
	shutdown(fd, SHUT_RDWR);
out:
	ws_leave(ws, p->client);
	release_target(&p->target);
	free(p);
}
