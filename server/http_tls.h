/* Departures of the clients of upgraded TLS connections.  With TLS,
 * libmicrohttpd hands an upgraded connection (WebSocket) over as one end of a
 * socket pair whose bytes it relays through TLS, and (0.9.75) does not pass
 * the client's FIN on: the socket pair stays open, so a client that vanished
 * would be noticed only by the idle timeout, and a statement it left running
 * would not be interrupted.  The watcher polls the TCP sockets of such
 * connections for the FIN (EPOLLRDHUP, never reading) and then shuts the
 * application's end of the socket pair for reading: its reads see the end of
 * the stream and its polls POLLRDHUP, as without TLS. */
#ifndef REPLITE_HTTP_TLS_H
#define REPLITE_HTTP_TLS_H

#include <stddef.h>
#include <stdint.h>

struct http_tls_watch;

/* A thread of its own, until http_tls_watch_stop. */
int http_tls_watch_start(struct http_tls_watch **out, char *err,
			 size_t err_len);
/* Watch tcp_fd (owned by libmicrohttpd; not closed before _remove) for
 * the client's FIN, then shut app_fd for reading.  Returns an id for
 * _remove, or 0 when it cannot watch (no memory, epoll refused). */
uint64_t http_tls_watch_add(struct http_tls_watch *w, int tcp_fd, int app_fd);
/* Stop watching (before the sockets are closed); id 0 is ignored. */
void http_tls_watch_remove(struct http_tls_watch *w, uint64_t id);
/* Join the thread and free w (NULL is ignored). */
void http_tls_watch_stop(struct http_tls_watch *w);

#endif
