#include "frames.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "wal/walfmt.h"

/* Frame frame_no of the pull of [start, end), described in *fr (its page
 * points into f): its page number must be one SQLite can hold data in. */
static int take_frame(const uint8_t *f, uint32_t page_size, uint32_t frame_no,
		      uint32_t start, uint32_t end, struct frames_frame *fr,
		      char *err, size_t err_len)
{
	const uint32_t pending = frames_pending_byte_page(page_size);

	fr->pgno = walfmt_get32(f);
	fr->db_size = walfmt_get32(f + 4);
	fr->page = f + WALFMT_FRAME_HDR_SIZE;
	if (fr->pgno != 0 && fr->pgno != pending)
		return 0;
	snprintf(err, err_len,
		 "frame %u from the primary (pull of [%u, %u)) has page "
		 "number %u, %s",
		 frame_no, start, end, fr->pgno,
		 fr->pgno == 0 ? "but pages are numbered from 1"
			       : "the pending-byte page, which never holds "
				 "data");
	return -1;
}

/* Frame frame_no does not continue the chain the primary announced. */
static void broken_chain(const uint8_t *f, size_t frame_no, char *err,
			 size_t err_len)
{
	snprintf(err, err_len,
		 "frame %zu of the primary's answer (page %u) fails the "
		 "checksum chain the primary announced: the answer was "
		 "damaged in transit (or the primary's log is)",
		 frame_no, walfmt_get32(f));
}

int frames_parse(const void *body, size_t len, uint32_t page_size,
		 uint32_t start, uint32_t end, struct frames_batch *out,
		 char *err, size_t err_len)
{
	const uint8_t *p = body;
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)page_size;
	struct frames_frame *frames;
	uint32_t i, n, n_complete = 0, db_size = 0;

	assert(page_size >= 512 && page_size <= 65536 &&
	       (page_size & (page_size - 1)) == 0);
	assert(start >= 1 && start < end);

	if (len == 0) {
		snprintf(err, err_len,
			 "the primary answered the pull of frames [%u, %u) "
			 "with an empty body",
			 start, end);
		return -1;
	}
	if (len % frame_size != 0) {
		snprintf(
		    err, err_len,
		    "the primary answered the pull of frames [%u, %u) "
		    "with a body of %zu bytes, not a multiple of the frame "
		    "size %zu (24-byte header + %u-byte page): truncated "
		    "or not frames",
		    start, end, len, frame_size, page_size);
		return -1;
	}
	if (len / frame_size > (size_t)(end - start)) {
		snprintf(err, err_len,
			 "the primary answered the pull of frames [%u, %u) "
			 "with %zu frames, more than the %u asked for",
			 start, end, len / frame_size, end - start);
		return -1;
	}
	n = (uint32_t)(len / frame_size);
	frames = calloc(n, sizeof *frames);
	if (frames == NULL) {
		snprintf(err, err_len, "out of memory parsing %u frames", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *f = p + (size_t)i * frame_size;
		struct frames_frame *fr = &frames[i];

		if (take_frame(f, page_size, start + i, start, end, fr, err,
			       err_len) != 0) {
			free(frames);
			return -1;
		}
		/* A commit frame may name pages beyond its db_size (the
		 * injector drops them); db_size != 0 is what marks it. */
		if (fr->db_size != 0) {
			n_complete = i + 1;
			db_size = fr->db_size;
		}
	}
	out->frames = frames;
	out->n = n;
	out->n_complete = n_complete;
	out->db_size = db_size;
	return 0;
}

void frames_batch_free(struct frames_batch *b)
{
	free(b->frames);
	memset(b, 0, sizeof *b);
}

void frames_encode(const struct wal_page *pages, uint32_t n,
		   uint32_t commit_size, uint32_t page_size, uint8_t *out)
{
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)page_size;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint8_t *f = out + (size_t)i * frame_size;

		memset(f, 0, WALFMT_FRAME_HDR_SIZE);
		walfmt_put32(f, pages[i].pgno);
		walfmt_put32(f + 4, i + 1 == n ? commit_size : 0);
		memcpy(f + WALFMT_FRAME_HDR_SIZE, pages[i].data, page_size);
	}
}

void frames_chain_format(const struct frames_chain *c,
			 char out[FRAMES_CHAIN_TEXT_SIZE])
{
	snprintf(out, FRAMES_CHAIN_TEXT_SIZE, "%d-%08x-%08x-%08x-%08x",
		 c->big_endian ? 1 : 0, c->salt[0], c->salt[1], c->cksum[0],
		 c->cksum[1]);
}

int frames_chain_parse(const char *text, struct frames_chain *out)
{
	unsigned e, v[4];
	int used = 0;

	if (text == NULL ||
	    sscanf(text, "%1u-%8x-%8x-%8x-%8x%n", &e, &v[0], &v[1], &v[2],
		   &v[3], &used) != 5 ||
	    text[used] != '\0' || e > 1 || used != 37)
		return -1;
	out->big_endian = (int)e;
	out->salt[0] = v[0];
	out->salt[1] = v[1];
	out->cksum[0] = v[2];
	out->cksum[1] = v[3];
	return 0;
}

int frames_verify(const void *body, size_t len, uint32_t page_size,
		  uint32_t start, const struct frames_chain *chain, char *err,
		  size_t err_len)
{
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)page_size;
	const uint8_t *p = body;
	uint32_t c[2] = {chain->cksum[0], chain->cksum[1]};
	size_t i, n = len / frame_size;

	if (len % frame_size != 0) {
		snprintf(err, err_len,
			 "the body of %zu bytes is not whole frames of %zu "
			 "bytes",
			 len, frame_size);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *f = p + i * frame_size;
		if (walfmt_frame_verify(chain->big_endian, chain->salt, c, f,
					page_size) != 0) {
			broken_chain(f, (size_t)start + i, err, err_len);
			return -1;
		}
	}
	return 0;
}

int frames_check_frame(const uint8_t *frame, uint32_t page_size,
		       uint32_t frame_no, uint32_t start, uint32_t end,
		       struct frames_chain *chain, struct frames_frame *out,
		       char *err, size_t err_len)
{
	assert(start <= frame_no);
	if (frame_no >= end) {
		snprintf(err, err_len,
			 "the primary answered the pull of frames [%u, %u) "
			 "with more frames than asked for",
			 start, end);
		return -1;
	}
	if (walfmt_frame_verify(chain->big_endian, chain->salt, chain->cksum,
				frame, page_size) != 0) {
		broken_chain(frame, frame_no, err, err_len);
		return 1;
	}
	return take_frame(frame, page_size, frame_no, start, end, out, err,
			  err_len);
}

void frames_txn_id_format(const uint8_t id[FRAMES_TXN_ID_SIZE],
			  char out[FRAMES_TXN_ID_TEXT_SIZE])
{
	hex_encode(id, FRAMES_TXN_ID_SIZE, out);
}

int frames_txn_id_parse(const char *text, uint8_t id[FRAMES_TXN_ID_SIZE])
{
	return hex_decode(text, id, FRAMES_TXN_ID_SIZE);
}
