/* A new replica's bootstrap, streamed (docs/architecture.md "The replica's
 * read path", 4): GET /export/{G} written into the database file as it
 * arrives (applier_stream.c), then the generation's frames laid over it
 * as they arrive, then the result checked, as written, against the
 * checksum the primary announces, and only then published.  Memory stays
 * at a page and a frame, whatever the database's size. */
#include "puller_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "base/errors.h"
#include "proto/frames.h"
#include "sync/applier.h"
#include "wal/walfmt.h"

/* The image's bytes as they come: whole pages to the stream, the
 * checksum of what passed, and the first error. */
struct image_sink {
	struct puller *p;
	struct applier_stream *s;
	uint8_t *page; /* a page being completed */
	size_t have;   /* bytes of it so far */
	uint32_t next_pgno;
	uint64_t sum;
	char err[512];
};

/* Page 1 must start a SQLite database with the replica's page size. */
static int check_page1(struct image_sink *k, const uint8_t *page)
{
	const uint32_t ps = k->p->page_size;

	if (frames_is_database_page1(page, ps))
		return 0;
	snprintf(k->err, sizeof k->err,
		 "the primary's image is not a SQLite database with %u-byte "
		 "pages",
		 ps);
	return -1;
}

static int take_page(struct image_sink *k, const uint8_t *page)
{
	if (k->next_pgno == 1 && check_page1(k, page) != 0)
		return -1;
	k->sum ^= dbsum_page(k->next_pgno, page, k->p->page_size);
	if (applier_stream_page(k->s, k->next_pgno, page, k->err,
				sizeof k->err) != 0)
		return -1;
	k->next_pgno++;
	return 0;
}

static int on_image_bytes(void *arg, const uint8_t *data, size_t len)
{
	struct image_sink *k = arg;
	const size_t ps = k->p->page_size;
	size_t n;

	while (len > 0) {
		if (k->have == 0 && len >= ps) {
			if (take_page(k, data) != 0)
				return -1;
			data += ps;
			len -= ps;
			continue;
		}
		n = ps - k->have < len ? ps - k->have : len;
		memcpy(k->page + k->have, data, n);
		k->have += n;
		data += n;
		len -= n;
		if (k->have == ps) {
			k->have = 0;
			if (take_page(k, k->page) != 0)
				return -1;
		}
	}
	return 0;
}

/* GET /export/G into the stream; 0 with the image's size in pages and its
 * checksum, 1 when it failed verification (counted), -1 with err. */
static int stream_export(struct puller *p, struct applier_stream *s, uint32_t g,
			 uint32_t *n_pages, uint64_t *sum, char *err,
			 size_t err_len)
{
	struct image_sink k = {.p = p, .s = s, .next_pgno = 1};
	struct http_client_response res = {0};
	char path[64], text[64];
	uint64_t want;
	int rc, rv = -1;

	k.page = malloc(p->page_size);
	if (k.page == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	snprintf(path, sizeof path, "/export/%" PRIu32, g);
	rc = puller_request_to(p, path, EXPORT_TIMEOUT_MS, on_image_bytes, &k,
			       &res, err, err_len);
	if (rc != 0) {
		if (k.err[0] != '\0')
			errors_set(err, err_len, "%s", k.err);
		rv = rc;
		goto out;
	}
	if (res.status != 200) {
		char what[80];
		snprintf(what, sizeof what, "GET %s", path);
		http_client_status_error(what, &res, err, err_len);
		goto out;
	}
	if (http_client_response_header(&res, FRAMES_CHECKSUM_HEADER, text,
					sizeof text) == NULL ||
	    dbsum_parse(text, &want) != 0) {
		errors_set(err, err_len,
			   "the primary's answer to GET %s has no valid %s "
			   "header, so the image cannot be verified",
			   path, FRAMES_CHECKSUM_HEADER);
		goto out;
	}
	if (k.have != 0 || k.next_pgno == 1 || k.sum != want) {
		errors_set(err, err_len,
			   "the image received for GET %s (%zu bytes) is not "
			   "the one the primary announced (checksum %s): it "
			   "was damaged in transit and was not applied",
			   path, res.len, text);
		p->stats.rejected_transfers++;
		rv = 1;
		goto out;
	}
	*n_pages = k.next_pgno - 1;
	*sum = k.sum;
	p->stats.frames_pulled += *n_pages;
	rv = 0;
out:
	free(k.page);
	http_client_response_free(&res);
	return rv;
}

/* The generation's frames as they come, answer after answer: each frame
 * checked (frames_check_frame: its place, its page number, the checksum
 * chain from the X-Replite-Chain header on) before it is written into the
 * stream.  Nothing is held but the frame being completed: the frames are
 * never copied into the puller's pending buffer, and an answer's body is
 * never held whole.  Frames of a transaction reach the file before its
 * commit frame has arrived; that is safe because nothing of the stream is
 * published until it ends on a commit frame and passes its checksum. */
struct frame_sink {
	struct puller *p;
	struct applier_stream *s;
	const struct http_client_response *res; /* the answer in progress */
	uint32_t start, end;                    /* its pull */
	uint32_t next;                          /* number of the next frame */
	uint32_t last_commit;      /* the last commit frame written */
	struct frames_chain chain; /* after frame next - 1 */
	int has_chain;             /* chain holds an earlier answer's end */
	int answer_checked;        /* this answer's chain header was read */
	uint8_t *frame;            /* a frame being completed */
	size_t have;               /* bytes of it so far */
	int rejected;              /* the failure is damage in transit */
	/* X-Replite-Checksum-At of the last answer: the primary's checksum
	 * after frame expected_frame (0: none announced) */
	uint32_t expected_frame;
	uint64_t expected;
	char err[512];
};

/* The answer's X-Replite-Chain must continue the chain of the frames before
 * it (or, for the first answer, start it). */
static int check_answer_chain(struct frame_sink *k)
{
	struct frames_chain announced;

	k->rejected = 1;
	if (puller_answer_chain(k->res, k->start,
				k->has_chain ? &k->chain : NULL, &announced,
				k->err, sizeof k->err) != 0)
		return -1;
	k->rejected = 0;
	k->chain = announced;
	k->has_chain = 1;
	k->answer_checked = 1;
	return 0;
}

static int take_frame(struct frame_sink *k, const uint8_t *f)
{
	struct frames_frame fr;
	int rc;

	rc = frames_check_frame(f, k->p->page_size, k->next, k->start, k->end,
				&k->chain, &fr, k->err, sizeof k->err);
	if (rc != 0) {
		k->rejected = rc > 0;
		return -1;
	}
	if (applier_stream_page(k->s, fr.pgno, fr.page, k->err,
				sizeof k->err) != 0)
		return -1;
	if (fr.db_size != 0) {
		if (applier_stream_size(k->s, fr.db_size, k->err,
					sizeof k->err) != 0)
			return -1;
		k->last_commit = k->next;
	}
	k->next++;
	return 0;
}

static int on_frame_bytes(void *arg, const uint8_t *data, size_t len)
{
	struct frame_sink *k = arg;
	const size_t fs = WALFMT_FRAME_HDR_SIZE + (size_t)k->p->page_size;
	size_t n;

	if (!k->answer_checked && check_answer_chain(k) != 0)
		return -1;
	while (len > 0) {
		if (k->have == 0 && len >= fs) {
			if (take_frame(k, data) != 0)
				return -1;
			data += fs;
			len -= fs;
			continue;
		}
		n = fs - k->have < len ? fs - k->have : len;
		memcpy(k->frame + k->have, data, n);
		k->have += n;
		data += n;
		len -= n;
		if (k->have == fs) {
			k->have = 0;
			if (take_frame(k, k->frame) != 0)
				return -1;
		}
	}
	return 0;
}

/* One GET /sync/g/... answer into the stream: 0 with *got frames (0: the
 * head was reached), 1 when it failed verification (counted), -1 with
 * err. */
static int stream_answer(struct puller *p, struct frame_sink *k, uint32_t g,
			 uint32_t *got, char *err, size_t err_len)
{
	struct http_client_response res = {0};
	char path[96];
	int rv;

	*got = 0;
	k->start = k->next;
	if (!puller_frames_path(p, g, k->start, &k->end, path, sizeof path))
		return 0;
	k->res = &res;
	k->answer_checked = 0;
	k->have = 0;
	k->rejected = 0;
	k->err[0] = '\0';
	rv = puller_request_to(p, path, PULL_TIMEOUT_MS, on_frame_bytes, k,
			       &res, err, err_len);
	if (rv == -1 && k->err[0] != '\0') {
		errors_set(err, err_len, "%s; it was not applied", k->err);
		if (k->rejected) {
			p->stats.rejected_transfers++;
			rv = 1;
		}
	}
	if (rv != 0)
		goto out; /* 1: rejected */
	if (res.status != 200) {
		rv = puller_frames_absent(p, path, &res, err, err_len);
		goto out;
	}
	rv = -1;
	if (k->have != 0 || k->next == k->start) {
		errors_set(err, err_len,
			   "the primary answered the pull of frames [%u, %u) "
			   "with %s (%zu bytes): truncated or not frames; it "
			   "was not applied",
			   k->start, k->end,
			   k->next == k->start ? "no whole frame"
					       : "a body that ends inside a "
						 "frame",
			   (size_t)res.len);
		p->stats.rejected_transfers++;
		rv = 1;
		goto out;
	}
	*got = k->next - k->start;
	p->stats.frames_pulled += *got;
	puller_checksum_at(&res, &k->expected_frame, &k->expected);
	rv = 0;
out:
	http_client_response_free(&res);
	return rv;
}

/* The frames of generation g from its first on, as far as the primary has
 * them, verified as they arrive and written over the image.  0 with the
 * last frame applied and the checksum the primary announced after it
 * (*has_expected, *expected); 1 when an answer failed verification; -1. */
static int stream_frames(struct puller *p, struct applier_stream *s, uint32_t g,
			 uint32_t *frame_no, int *has_expected,
			 uint64_t *expected, char *err, size_t err_len)
{
	struct frame_sink k = {.p = p, .s = s, .next = 1};
	uint32_t n;
	int rv;

	k.frame = malloc(WALFMT_FRAME_HDR_SIZE + (size_t)p->page_size);
	if (k.frame == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	puller_pending_clear(&p->pend);
	do {
		rv = stream_answer(p, &k, g, &n, err, err_len);
	} while (rv == 0 && puller_more_frames(p, n));
	if (rv == 0 && k.next - 1 != k.last_commit) {
		/* The primary's log ends on commit frames; frames past the
		 * last one would be a transaction half there. */
		errors_set(err, err_len,
			   "the primary's frames of generation %u end inside a "
			   "transaction (frame %u, after the commit at frame "
			   "%u); the bootstrap was not published",
			   g, k.next - 1, k.last_commit);
		p->stats.rejected_transfers++;
		rv = 1;
	}
	if (rv == 0) {
		*frame_no = k.last_commit;
		rv = puller_check_limit(p, g, *frame_no, err, err_len);
	}
	if (rv == 0) {
		/* The image alone is checked against its own checksum. */
		*has_expected =
		    *frame_no == 0 ||
		    (k.expected_frame != 0 && k.expected_frame == *frame_no);
		if (*frame_no > 0 && *has_expected)
			*expected = k.expected;
	}
	free(k.frame);
	return rv;
}

int puller_bootstrap_stream(struct puller *p, const struct messages_info *info,
			    char *err, size_t err_len)
{
	struct applier_image img = {0};
	struct applier_stream *s = NULL;
	struct replica_state now = {0};
	enum applier_result r;
	uint32_t n_pages = 0, frame_no = 0;
	uint64_t expected = 0;
	int has_expected = 0, mismatch = 0, rv;

	img.generation = info->current_generation;
	img.database_id = info->database_id;
	img.sync_url = p->sync_url;
	puller_image_as_of(p, &img);
	r = applier_stream_begin(p->applier, &img, &s, err, err_len);
	if (r == APPLIER_MOVED)
		return 2;
	if (r == APPLIER_STALE)
		return 0;
	if (r != APPLIER_APPLIED)
		return -1;
	rv = stream_export(p, s, img.generation, &n_pages, &expected, err,
			   err_len);
	if (rv == 0)
		rv = applier_stream_size(s, n_pages, err, err_len);
	if (rv == 0)
		rv = stream_frames(p, s, img.generation, &frame_no,
				   &has_expected, &expected, err, err_len);
	if (rv != 0) {
		applier_stream_abort(s);
		return rv;
	}
	/* Without a checksum announced for the last frame (the generation
	 * ended meanwhile: the primary keeps them for its current one), the
	 * result stands on its parts, as a whole image applied from memory
	 * does: the image checked against its checksum, each frame against
	 * its chain. */
	r = applier_stream_finish(s, frame_no, has_expected, expected,
				  &mismatch, &now, err, err_len);
	replica_state_free(&now);
	if (mismatch) {
		p->stats.rejected_transfers++;
		return 1;
	}
	if (r != APPLIER_APPLIED)
		return -1;
	p->stats.batches_applied++;
	return 0;
}
