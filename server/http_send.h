/* The answer of a request, queued on its libmicrohttpd connection
 * (http.c's internals; http.h is the interface): an in-memory reply, a file
 * range (sent with sendfile, or zstd-compressed as it goes), or a body made
 * as it is sent.  Each takes ownership of what the response holds. */
#ifndef REPLITE_HTTP_SEND_H
#define REPLITE_HTTP_SEND_H

#include <microhttpd.h>

#include "http.h"

/* The extra headers of res (those with a name) onto resp. */
void http_send_headers(struct MHD_Response *resp,
		       const struct http_response *res);
/* res->reply (its body is freed, or owned by libmicrohttpd). */
enum MHD_Result http_send_reply(struct MHD_Connection *conn,
				struct http_response *res);
/* [res->offset, +res->len) of res->fd (closed when sent). */
enum MHD_Result http_send_file(struct MHD_Connection *conn,
			       struct http_response *res);
/* res->stream (stream_free is called once, sent or not). */
enum MHD_Result http_send_stream(struct MHD_Connection *conn,
				 struct http_response *res);

#endif
