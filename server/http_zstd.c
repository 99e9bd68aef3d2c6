#include "http_zstd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zstd.h>

/* ---------------------------------------------------------------------- */
/* Accept-Encoding */

/* The weight of one element "coding [; q=W] [; other params]" (RFC 9110
 * §12.4.2): 1 unless a q parameter says otherwise; only whether it is 0
 * matters here. */
static int element_weight_is_zero(const char *params, const char *end)
{
	const char *p = params;

	while (p < end) {
		while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') &&
		    p[1] == '=') {
			/* "0", "0.", "0.0", "0.00", "0.000" */
			p += 2;
			if (p >= end || *p != '0')
				return 0;
			for (p++; p < end && (*p == '.' || *p == '0'); p++)
				;
			return p >= end || *p == ';' || *p == ' ' || *p == '\t';
		}
		while (p < end && *p != ';')
			p++;
	}
	return 0;
}

int http_zstd_accepted(const char *header)
{
	const char *p = header, *elem, *end, *name_end;
	int zstd = -1, star = -1; /* -1 unlisted, 0 refused, 1 accepted */
	size_t n;

	if (header == NULL)
		return 0;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		elem = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		name_end = elem;
		while (name_end < end && *name_end != ';' && *name_end != ' ' &&
		       *name_end != '\t')
			name_end++;
		n = (size_t)(name_end - elem);
		if (n == 4 && strncasecmp(elem, "zstd", 4) == 0)
			zstd = !element_weight_is_zero(name_end, end);
		else if (n == 1 && *elem == '*')
			star = !element_weight_is_zero(name_end, end);
	}
	return zstd >= 0 ? zstd : star == 1;
}

/* ---------------------------------------------------------------------- */
/* the compressed stream */

/* Input is read from the file this much at a time: zstd's own block. */
#define READ_CHUNK ((size_t)128 * 1024)
/* The most MHD asks the callback for at once. */
#define SEND_BLOCK ((size_t)64 * 1024)

struct zstd_stream {
	int fd;
	uint64_t next;      /* file offset of the next read */
	uint64_t remaining; /* bytes of the range not read yet */
	ZSTD_CCtx *cctx;
	uint8_t *in;
	ZSTD_inBuffer inb;
	int finished; /* the frame's epilogue is out */
};

static void stream_free(void *cls)
{
	struct zstd_stream *z = cls;

	if (z == NULL)
		return;
	if (z->fd >= 0)
		close(z->fd);
	ZSTD_freeCCtx(z->cctx);
	free(z->in);
	free(z);
}

/* Refill the input buffer from the file once it is consumed.  0, or -1 on
 * a read error or a file shorter than the range (logged: the client sees
 * the connection end before the zstd frame does, and keeps nothing). */
static int refill(struct zstd_stream *z)
{
	size_t want;
	ssize_t got;

	if (z->inb.pos < z->inb.size || z->remaining == 0)
		return 0;
	want = z->remaining < READ_CHUNK ? (size_t)z->remaining : READ_CHUNK;
	do
		got = pread(z->fd, z->in, want, (off_t)z->next);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		fprintf(stderr,
			"replite: reading an answer's bytes at offset %llu: "
			"%s; the compressed answer is cut short\n",
			(unsigned long long)z->next,
			got < 0 ? strerror(errno) : "the file is shorter");
		return -1;
	}
	z->inb.src = z->in;
	z->inb.size = (size_t)got;
	z->inb.pos = 0;
	z->next += (uint64_t)got;
	z->remaining -= (uint64_t)got;
	return 0;
}

/* MHD's content reader: the next compressed bytes, at most max. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct zstd_stream *z = cls;
	ZSTD_outBuffer out = {buf, max, 0};
	ZSTD_EndDirective mode;
	size_t left;

	(void)pos;
	while (out.pos == 0 && !z->finished) {
		if (refill(z) != 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		mode = z->remaining == 0 && z->inb.pos == z->inb.size
			   ? ZSTD_e_end
			   : ZSTD_e_continue;
		left = ZSTD_compressStream2(z->cctx, &out, &z->inb, mode);
		if (ZSTD_isError(left)) {
			fprintf(stderr, "replite: zstd: %s\n",
				ZSTD_getErrorName(left));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (mode == ZSTD_e_end && left == 0)
			z->finished = 1;
	}
	if (out.pos == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)out.pos;
}

struct MHD_Response *http_zstd_response(int fd, uint64_t offset, uint64_t len,
					int level)
{
	struct zstd_stream *z = calloc(1, sizeof *z);
	struct MHD_Response *resp;

	if (z == NULL) {
		close(fd);
		return NULL;
	}
	z->fd = fd;
	z->next = offset;
	z->remaining = len;
	z->cctx = ZSTD_createCCtx();
	z->in = malloc(len < READ_CHUNK ? (size_t)len + 1 : READ_CHUNK);
	if (z->cctx == NULL || z->in == NULL)
		goto fail;
	/* The size known up front lets zstd size its window and tables to
	 * the answer (small for a few frames) and record it in the frame. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(
		z->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(
		ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z->cctx, len)))
		goto fail;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SEND_BLOCK,
						 stream_read, z, stream_free);
	if (resp == NULL)
		goto fail;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "zstd");
	return resp;
fail:
	stream_free(z);
	return NULL;
}
