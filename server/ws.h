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
	const struct jwt_keys *keys; /* NULL: open access */
	unsigned max_connections;    /* beyond: 503 before upgrading */
	unsigned max_per_client;     /* sockets of one client address; beyond:
					429 before upgrading */
	size_t max_message;          /* larger messages close the socket */
	int idle_ms;                 /* a socket silent this long is closed */
	int max_streams;             /* open streams per socket */
	int log;                     /* one stderr line per socket */
	/* Called before any message is sent, with the socket's
	 * ws_target.before_send_arg (group commit: what it shows must be
	 * durable first); non-zero with the cause in err closes the socket
	 * instead.  NULL: none. */
	int (*before_send)(void *arg, char *err, size_t n);
};

/* The database an upgraded socket serves (databases.h): the connections
 * for its streams and its durability hook's argument, held until the
 * socket ends, when release(release_arg) is called (also when the upgrade
 * does not happen). */
struct ws_target {
	const char *database; /* its name, for the tokens' scopes */
	struct streams *streams;
	void *before_send_arg;
	void (*release)(void *arg);
	void *release_arg;
};

struct ws_server *ws_server_new(const struct ws_config *cfg);
void ws_server_free(struct ws_server *ws);

/* A request with "Upgrade: websocket" header. */
int ws_is_upgrade(struct http_request *req);
/* Answer it: the 101 with the chosen subprotocol and res->upgrade set, or
 * an HTTP error (400, 426, 429, 503).  The socket serves target; on an
 * error answer target->release has been called. */
void ws_handle_upgrade(struct ws_server *ws, struct http_request *req,
		       struct http_response *res,
		       const struct ws_target *target);
unsigned ws_connections(struct ws_server *ws);

#endif
