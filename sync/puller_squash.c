/* Squashed answers (proto/frames.h, FRAMES_SQUASHED_HEADER): a replica far
 * behind receives each page the primary changed once, with its image after
 * the last commit of the range, as one transaction that stands for the
 * whole range.  It is checked as strictly as plain frames (shape, then
 * every byte against the checksum chain, then the whole-database checksum
 * after it) and applied as one batch, so readers go from the state before
 * to the state after in one step. */
#include "puller_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "sync/applier.h"

/* The span the primary announced, within the range asked for: 0 when it
 * is not a number in [1, end - start]. */
static uint32_t squashed_span(const struct http_client_response *res,
			      uint32_t start, uint32_t end)
{
	uint64_t v = 0;

	if (!puller_header_number(res, FRAMES_SQUASHED_HEADER, &v) || v == 0 ||
	    v > end - start)
		return 0;
	return (uint32_t)v;
}

/* One transaction: only the last frame commits, no page twice. */
static int one_transaction(const struct frames_batch *b, uint32_t start,
			   char *err, size_t err_len)
{
	uint32_t i;

	if (b->n_complete != b->n) {
		errors_set(err, err_len,
			   "the primary's squashed frames from %u on do not "
			   "end with a commit frame",
			   start);
		return -1;
	}
	for (i = 0; i + 1 < b->n; i++) {
		if (b->frames[i].db_size != 0 ||
		    b->frames[i].pgno >= b->frames[i + 1].pgno) {
			errors_set(err, err_len,
				   "the primary's squashed frames from %u on "
				   "are not one transaction of distinct pages "
				   "in order (frame %u)",
				   start, i);
			return -1;
		}
	}
	return 0;
}

enum pull_step puller_on_squashed(struct puller *p,
				  const struct replica_state *st,
				  uint32_t start, uint32_t end,
				  const struct http_client_response *res,
				  char *err, size_t err_len)
{
	uint32_t span = squashed_span(res, start, end);
	struct replica_state now = {0};
	struct applier_frames ab = {0};
	struct frames_batch b = {0};
	struct frames_chain chain;
	enum applier_result r;

	if (span == 0) {
		errors_set(err, err_len,
			   "the primary's squashed answer from frame %u has "
			   "an invalid %s header (expected 1 to %u)",
			   start, FRAMES_SQUASHED_HEADER, end - start);
		return STEP_ERROR;
	}
	if (frames_parse(res->body, res->len, p->page_size, start, start + span,
			 &b, err, err_len) != 0)
		return STEP_ERROR;
	if (one_transaction(&b, start, err, err_len) != 0) {
		frames_batch_free(&b);
		return STEP_ERROR;
	}
	if (puller_verify_frames(p, start, res, &chain, err, err_len) != 0) {
		frames_batch_free(&b);
		return STEP_REJECTED;
	}
	ab.generation = st->generation;
	ab.first = start;
	ab.frames = b.frames;
	ab.n = b.n;
	ab.span = span;
	ab.has_expected =
	    puller_checksum_at(res, &ab.expected_frame, &ab.expected);
	r = applier_apply_frames(p->applier, &ab, &now, err, err_len);
	replica_state_free(&now);
	p->stats.frames_pulled += b.n;
	frames_batch_free(&b);
	switch (r) {
	case APPLIER_APPLIED:
		p->stats.batches_applied++;
		p->stats.squashed_frames += span;
		/* fall through */
	case APPLIER_STALE:
		p->stats.generation = st->generation;
		if (start + span - 1 > p->stats.primary_frame_no)
			p->stats.primary_frame_no = start + span - 1;
		p->stats.behind_since_unix_ms = puller_behind_since(res);
		return STEP_CONTINUE;
	case APPLIER_NEED_MORE: /* frames beyond it held: pulled plain */
	case APPLIER_MOVED:
		return STEP_CONTINUE;
	case APPLIER_ERROR:
	default:
		return STEP_ERROR;
	}
}
