/* Admission of WebSocket upgrades: each socket costs a thread for its whole
 * life, so their number is bounded server-wide (max_connections) and per
 * client address (max_per_client).  Without the second bound one client
 * (a burst of idle sockets, a leaking pool) would take every slot and lock
 * every other client out of WebSocket until its sockets idle out.
 *
 * Both counts are taken together under ws->mu before the 101 is sent, and
 * given back together when the socket's thread ends (or the upgrade does
 * not happen), so they never disagree.  The table of clients has
 * max_connections entries: every client with a socket has one, and there
 * are never more sockets than that.  A linear scan under the lock is a
 * few microseconds for the default 256 and is paid once per upgrade. */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry of addr, or a free one to take (NULL: none; cannot happen
 * while n < max_connections). */
static struct ws_client *find_locked(struct ws_server *ws, const char *addr)
{
	struct ws_client *free_entry = NULL;
	unsigned i;

	for (i = 0; i < ws->cfg.max_connections; i++) {
		struct ws_client *e = &ws->clients[i];
		if (e->n == 0) {
			if (free_entry == NULL)
				free_entry = e;
		} else if (strcmp(e->addr, addr) == 0) {
			return e;
		}
	}
	return free_entry;
}

int ws_admit(struct ws_server *ws, struct http_request *req,
	     char client[WS_CLIENT_LEN], struct http_response *res)
{
	struct ws_client *e;

	/* An unknown address (never seen on TCP) shares one count. */
	if (http_request_client(req, client, WS_CLIENT_LEN) != 0)
		snprintf(client, WS_CLIENT_LEN, "unknown");
	pthread_mutex_lock(&ws->mu);
	if (ws->n >= ws->cfg.max_connections) {
		pthread_mutex_unlock(&ws->mu);
		http_reply_error(&res->reply, 503, "WS_TOO_MANY_CONNECTIONS",
				 "too many WebSocket connections (at most %u, "
				 "--max-ws-connections); retry later",
				 ws->cfg.max_connections);
		return -1;
	}
	e = find_locked(ws, client);
	if (e == NULL || e->n >= ws->cfg.max_per_client) {
		pthread_mutex_unlock(&ws->mu);
		http_reply_error(&res->reply, 429,
				 "WS_TOO_MANY_CLIENT_CONNECTIONS",
				 "too many WebSocket connections from %s (at "
				 "most %u per client address, "
				 "--max-ws-per-client); close some or retry "
				 "later",
				 client, ws->cfg.max_per_client);
		res->headers[0].name = "Retry-After";
		snprintf(res->headers[0].value, sizeof res->headers[0].value,
			 "1");
		return -1;
	}
	if (e->n == 0)
		snprintf(e->addr, sizeof e->addr, "%s", client);
	e->n++;
	ws->n++;
	pthread_mutex_unlock(&ws->mu);
	return 0;
}

void ws_leave(struct ws_server *ws, const char *client)
{
	struct ws_client *e;

	pthread_mutex_lock(&ws->mu);
	e = find_locked(ws, client);
	if (e != NULL && e->n > 0)
		e->n--;
	ws->n--;
	pthread_mutex_unlock(&ws->mu);
}
