/* The replica's HTTP client, on libcurl.  One client per sync thread: it
 * keeps its connection to the primary alive across requests, sends the
 * bearer token on every request, bounds every request in time and in body
 * size, and can be cancelled from another thread so that closing a database
 * never waits for a long-poll to end.  Failures are reported as text that
 * names the cause (host and port, timeout, limit), never as a bare code. */
#ifndef REPLITE_HTTP_CLIENT_H
#define REPLITE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct http_client;

struct http_client_config {
	const char *base_url;   /* normalised: see http_client_normalize_url */
	const char *auth_token; /* NULL or "": no Authorization header */
	long connect_timeout_ms;
	size_t max_body; /* larger response bodies fail the request */
	/* > 0: a request during which no byte arrives for this long fails
	 * ("stalled"), whatever its timeout: a dead connection (a partition,
	 * a stalled peer) is noticed within this time, while a slow but
	 * moving download goes on.  Must exceed any long-poll's wait. */
	long stall_timeout_ms;
	/* NULL or "": none; else sent as X-Replite-Replica on every request,
	 * so that the primary's access log can tell replicas apart. */
	const char *client_id;
	/* NULL or "": libcurl's default CAs (the system's); else a PEM file
	 * of the CAs that verify an https primary (CURLOPT_CAINFO). */
	const char *ca_file;
};

struct http_client_response {
	long status;
	uint8_t *body; /* malloc'd, NUL terminated (not counted in len) */
	size_t len;
	/* the body's bytes on the wire: fewer than len when the primary
	 * compressed it (the replica accepts zstd) */
	uint64_t wire_len;
	char content_type[64];
	char *headers; /* malloc'd "name: value\n" lines; see _header() */
};

/* Turn a sync URL as the user gave it into a base URL: http:// and https://
 * are kept, libsql:// becomes https://, a trailing slash is dropped.  Returns
 * a malloc'd string, or NULL with the reason in err (no scheme, another
 * scheme, no host). */
char *http_client_normalize_url(const char *url, char *err, size_t err_len);

int http_client_new(const struct http_client_config *cfg,
		    struct http_client **out, char *err, size_t err_len);
void http_client_free(struct http_client *c);
/* Ask for zstd-compressed answers (on, the default, when libcurl decodes
 * zstd) or for plain ones. */
void http_client_accept_zstd(struct http_client *c, int on);

/* method "GET" or "POST"; path is appended to the base URL.  Returns 0 with
 * the response (whatever its status); 1 with err when a compressed answer
 * did not decode (damaged in transit: nothing of it is kept, asking again
 * may work); or -1 with err naming why no response arrived: connection
 * refused, timeout after timeout_ms, body over the limit, cancelled. */
int http_client_request(struct http_client *c, const char *method,
			const char *path, const void *body, size_t body_len,
			long timeout_ms, struct http_client_response *res,
			char *err, size_t err_len);
void http_client_response_free(struct http_client_response *res);

/* GET path, the body of a 200 answer handed to fn as it arrives (in pieces
 * of any size; res->body is then empty and res->len counts what fn took),
 * so that a large answer is never held whole.  fn returns 0 to go on, or
 * anything else to stop the transfer (then the request fails, -1, and the
 * caller has fn's reason).  The answer's headers are in res before fn
 * first sees a byte (http_client_response_header works in fn).  Other
 * answers are kept in res->body as by http_client_request, and the return
 * values are the same. */
typedef int (*http_client_body_fn)(void *arg, const uint8_t *data, size_t len);
int http_client_get_to(struct http_client *c, const char *path, long timeout_ms,
		       http_client_body_fn fn, void *arg,
		       struct http_client_response *res, char *err,
		       size_t err_len);

/* The value of the response's header name (any case), or NULL.  The
 * pointer is into res and valid until res is freed; the value is copied
 * into out (truncated to out_len - 1) for convenience. */
const char *http_client_response_header(const struct http_client_response *res,
					const char *name, char *out,
					size_t out_len);

/* What went wrong, from an error answer's body: its JSON "message" (or
 * "error"), else an excerpt of the body, else "no details". */
void http_client_error_detail(const struct http_client_response *res, char *out,
			      size_t out_len);
/* err = "the primary answered <what> with HTTP <status>: <detail>", with a
 * hint for 401 (the token) and 403. */
void http_client_status_error(const char *what,
			      const struct http_client_response *res, char *err,
			      size_t err_len);

/* How many connections the client has opened so far: a request that had
 * to open one may have reached another server (a restarted or replaced
 * primary at the same address). */
uint64_t http_client_connections(const struct http_client *c);

/* From any thread: the request in progress, and every later one, fails
 * ("cancelled") at once.  http_client_uncancel() allows requests again. */
void http_client_cancel(struct http_client *c);
void http_client_uncancel(struct http_client *c);

#endif
