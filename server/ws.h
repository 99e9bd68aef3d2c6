/* Hrana over WebSocket (JSON subprotocols hrana1, hrana2, hrana3) on the
 * HTTP port: the upgrade handshake, and each upgraded connection on a
 * thread of its own running the Hrana messages (hello, requests) on
 * per-stream SQLite connections from streams.h. */
#ifndef REPLITE_WS_H
#define REPLITE_WS_H

#include <stddef.h>

#include "http.h"
#include "jwt.h"
#include "streams.h"

struct ws_server;

struct ws_config {
	struct streams *streams;     /* connections for the streams */
	const struct jwt_keys *keys; /* NULL: open access */
	unsigned max_connections;    /* beyond: 503 before upgrading */
	unsigned max_per_client;     /* sockets of one client address; beyond:
					429 before upgrading */
	size_t max_message;          /* larger messages close the socket */
	int idle_ms;                 /* a socket silent this long is closed */
	int max_streams;             /* open streams per socket */
	int log;                     /* one stderr line per socket */
	/* Called before any message is sent (group commit: what it shows
	 * must be durable first); non-zero with the cause in err closes the
	 * socket instead.  NULL: none. */
	int (*before_send)(void *arg, char *err, size_t n);
	void *before_send_arg;
};

struct ws_server *ws_server_new(const struct ws_config *cfg);
void ws_server_free(struct ws_server *ws);

/* A request with "Upgrade: websocket" header. */
int ws_is_upgrade(struct http_request *req);
/* Answer it: the 101 with the chosen subprotocol and res->upgrade set, or
 * an HTTP error (400, 426, 429, 503). */
void ws_handle_upgrade(struct ws_server *ws, struct http_request *req,
		       struct http_response *res);
unsigned ws_connections(struct ws_server *ws);

#endif
