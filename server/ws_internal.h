/* The parts of Hrana over WebSocket (ws.h is the interface):
 *
 *   ws.c        the upgrade, the socket and its thread, framing (wslay),
 *               sending answers and closing
 *   ws_hrana.c  the Hrana messages: hello, streams, cursors, requests
 *   ws_admit.c  admission: the server's and each client address's socket
 *               counts
 */
#ifndef REPLITE_SERVER_WS_INTERNAL_H
#define REPLITE_SERVER_WS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <wslay/wslay.h>

#include "hrana.h"
#include "ws.h"

/* A client address, as http_request_client writes it. */
#define WS_CLIENT_LEN 48

struct ws_client {
	char addr[WS_CLIENT_LEN];
	unsigned n; /* its sockets; 0: the entry is free */
};

struct ws_server {
	struct ws_config cfg;
	pthread_mutex_t mu; /* guards n and clients */
	unsigned n;         /* sockets upgraded or about to be */
	/* max_connections entries: every socket's client has one */
	struct ws_client *clients;
};

/* What the upgrade callback gets: the server, the subprotocol and the
 * client whose count the socket is in. */
struct ws_pending {
	struct ws_server *srv;
	struct ws_target target;
	int version;
	int protobuf; /* hrana3-protobuf */
	char client[WS_CLIENT_LEN];
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
	struct ws_target target; /* the database it serves */
	int version;             /* 1, 2 or 3 */
	int protobuf; /* hrana3-protobuf: binary messages, ServerMsg and
			 ClientMsg (hrana_pb.h) */
	int fd;
	const uint8_t *extra;
	size_t extra_len, extra_pos;
	wslay_event_context_ptr ctx;
	int hello;              /* a hello was accepted */
	int read_only;          /* the hello's token is read-only */
	int64_t expires;        /* the hello's token's "exp", 0: never */
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

/* ws_admit.c: count a socket about to be upgraded for req's client (its
 * address into client): 0, or -1 with res->reply the refusal (503 when the
 * server has max_connections sockets, 429 when this client has
 * max_per_client).  ws_leave gives the count back. */
int ws_admit(struct ws_server *ws, struct http_request *req,
	     char client[WS_CLIENT_LEN], struct http_response *res);
void ws_leave(struct ws_server *ws, const char *client);

/* ws.c: answers and closing. */
void ws_send_json(struct ws_conn *c, json_t *msg);
void ws_close_with(struct ws_conn *c, uint16_t code, const char *reason);
void ws_flush_close(struct ws_conn *c);
void ws_proto_error(struct ws_conn *c, const char *msg);
void ws_respond_error(struct ws_conn *c, json_int_t id, json_t *error);
void ws_respond_ok(struct ws_conn *c, json_int_t id, json_t *response);
void ws_respond_result(struct ws_conn *c, json_int_t id, json_t *result);

/* ws_hrana.c: one message received (wslay's on_msg_recv callback), and the
 * streams, cursors and stored SQL released when the socket closes. */
void ws_on_msg(wslay_event_context_ptr ctx,
	       const struct wslay_event_on_msg_recv_arg *arg, void *user);
void ws_hrana_release(struct ws_conn *c);

#endif
