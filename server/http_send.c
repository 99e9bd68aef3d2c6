/* Queuing answers on libmicrohttpd (http_send.h). */
#include "http_send.h"

#include <stdlib.h>
#include <unistd.h>

#include "http_zstd.h"

void http_send_headers(struct MHD_Response *resp,
		       const struct http_response *res)
{
	size_t i;

	for (i = 0; i < sizeof res->headers / sizeof res->headers[0]; i++)
		if (res->headers[i].name != NULL)
			MHD_add_response_header(resp, res->headers[i].name,
						res->headers[i].value);
}

enum MHD_Result http_send_reply(struct MHD_Connection *conn,
				struct http_response *res)
{
	struct http_reply *r = &res->reply;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->len, r->body,
					       MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		http_reply_free(r);
		return MHD_NO;
	}
	r->body = NULL; /* owned by the response now */
	if (r->content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					r->content_type);
	http_send_headers(resp, res);
	ret = MHD_queue_response(conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_send_file(struct MHD_Connection *conn,
			       struct http_response *res)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (res->zstd_level > 0 && res->content_encoding == NULL) {
		resp = http_zstd_response(res->fd, res->offset, res->len,
					  res->zstd_level);
		if (resp == NULL)
			return MHD_NO; /* the fd is closed */
	} else {
		resp = MHD_create_response_from_fd_at_offset64(
		    res->len, res->fd, res->offset);
		if (resp == NULL) {
			close(res->fd);
			return MHD_NO;
		}
	}
	if (res->content_encoding != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
					res->content_encoding);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/octet-stream");
	/* The encoding depends on the request's Accept-Encoding: caches must
	 * not hand one client's answer to another. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
				MHD_HTTP_HEADER_ACCEPT_ENCODING);
	http_send_headers(resp, res);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

struct stream_ctx {
	long (*fn)(void *arg, uint64_t pos, uint8_t *buf, size_t max);
	void (*free_fn)(void *arg);
	void *arg;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_ctx *c = cls;
	long n = c->fn(c->arg, pos, (uint8_t *)buf, max);

	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : (ssize_t)n;
}

static void stream_done(void *cls)
{
	struct stream_ctx *c = cls;

	c->free_fn(c->arg);
	free(c);
}

enum MHD_Result http_send_stream(struct MHD_Connection *conn,
				 struct http_response *res)
{
	struct stream_ctx *c = malloc(sizeof *c);
	struct MHD_Response *resp = NULL;
	enum MHD_Result ret;

	if (c != NULL) {
		c->fn = res->stream;
		c->free_fn = res->stream_free;
		c->arg = res->stream_arg;
		resp = MHD_create_response_from_callback(
		    MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, c, stream_done);
	}
	if (resp == NULL) {
		free(c);
		res->stream_free(res->stream_arg);
		return MHD_NO;
	}
	if (res->reply.content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					res->reply.content_type);
	http_send_headers(resp, res);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}
