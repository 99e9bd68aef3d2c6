/* HTTP/1.1 front end of the primary, on libmicrohttpd: a thread pool over an
 * epoll event loop (a slow client costs a socket, not a thread), request
 * bodies collected up to a limit, file-range replies sent with sendfile, and
 * requests that can be parked (long-polls) without holding a thread. */
#ifndef REPLITE_HTTP_H
#define REPLITE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "http_reply.h"

struct http_server;

/* An upgraded connection (HTTP 101, e.g. WebSocket), run on a thread of its
 * own: fd is the socket (never closed by fn; with TLS, one end of a socket
 * pair whose plain bytes libmicrohttpd relays through TLS, so no TCP
 * options), extra the bytes the client
 * sent after its request's headers, stop_fd becomes readable when the server
 * stops (fn must then return soon).  Called with fd -1 when the upgrade did
 * not happen (the client left first), to free arg. */
typedef void (*http_upgrade_fn)(void *arg, int fd, const uint8_t *extra,
				size_t extra_len, int stop_fd);

struct http_request {
	const char *method;
	const char *path;
	const uint8_t *body;
	size_t body_len;
	int64_t started_us; /* monotonic; when the request arrived */
	void *conn;         /* for http_request_header/_arg */
};

struct http_response {
	struct http_reply reply; /* used when fd < 0 */
	int fd;                  /* >= 0: send [offset, offset+len) of fd */
	uint64_t offset;
	uint64_t len;
	/* > 0: send the file range zstd-compressed at this level (the client
	 * accepts it: http_zstd.h). */
	int zstd_level;
	/* Not NULL: the file range is already encoded so (e.g. "zstd"), and
	 * is sent as it is with this Content-Encoding. */
	const char *content_encoding;
	/* > 0: park the request until http_server_wake() or this monotonic
	 * time, then call the handler again with the same request. */
	int64_t park_until_ms;
	/* Extra headers of the answer (proto/frames.h's integrity headers):
	 * those whose name is not NULL. */
	struct {
		const char *name;
		char value[64];
	} headers[4];
	/* Not NULL (with fd < 0): answer 200 with reply.content_type and a
	 * body made as it is sent, without a length: stream(stream_arg,
	 * pos, buf, max) fills buf with the next bytes and returns how many,
	 * 0 at the end, or -1 on failure (the connection is cut, so the
	 * client sees a truncated body, never a complete-looking one);
	 * stream_free(stream_arg) is called once, sent or not. */
	long (*stream)(void *arg, uint64_t pos, uint8_t *buf, size_t max);
	void (*stream_free)(void *arg);
	void *stream_arg;
	/* Not NULL: answer reply.status (101) with the headers above and
	 * hand the connection to upgrade(upgrade_arg, ...). */
	http_upgrade_fn upgrade;
	void *upgrade_arg;
};

typedef void (*http_handler_fn)(void *arg, struct http_request *req,
				struct http_response *res);

/* Requests run on worker threads in two lanes, each with its own queue and
 * workers, so that requests of one lane never wait behind those of the
 * other (e.g. /health behind long SQL statements). */
enum http_lane {
	HTTP_LANE_MAIN,    /* `threads` workers */
	HTTP_LANE_CONTROL, /* `control_threads` workers */
	HTTP_N_LANES
};

struct http_config {
	const char *host; /* numeric IPv4 or IPv6 address */
	uint16_t port;    /* 0: any free port */
	unsigned threads;
	unsigned control_threads;
	/* The lane of a request (method and path); NULL: all in the main
	 * lane. */
	enum http_lane (*lane_of)(void *arg, const char *method,
				  const char *url);
	size_t max_body; /* larger bodies get 413 */
	unsigned max_connections;
	unsigned idle_timeout_s;
	http_handler_fn handler;
	void *arg;
	/* Both not NULL: serve HTTPS (libmicrohttpd's GnuTLS) with this PEM
	 * certificate chain and private key; kept until http_server_stop. */
	const char *tls_cert_pem;
	const char *tls_key_pem;
};

int http_server_start(const struct http_config *cfg, struct http_server **out,
		      char *err, size_t err_len);
uint16_t http_server_port(struct http_server *s);
/* Resume every parked request (new data may be there). */
void http_server_wake(struct http_server *s);
/* Resume parked requests whose time is up; call periodically. */
void http_server_tick(struct http_server *s);
void http_server_stop(struct http_server *s);

const char *http_request_header(struct http_request *req, const char *name);
/* The request's socket (-1: unknown), e.g. to notice that the client left
 * while the request runs (a FIN: POLLRDHUP); not to read or write.  With TLS
 * too it is the TCP socket, whose bytes are encrypted. */
int http_request_fd(struct http_request *req);
const char *http_request_arg(struct http_request *req, const char *name);
/* The client's numeric address ("192.0.2.1", "2001:db8::1"; an IPv4 address
 * mapped into IPv6 as IPv4), e.g. to count a client's connections.  Returns
 * 0, or -1 (buf "") when it is not known. */
int http_request_client(struct http_request *req, char *buf, size_t n);

#endif
