/* The puller's full images (GET /export/{G}): verified against the
 * checksum the primary announces, then rolled forward with the frames of
 * the generation the primary has, so that the image is published at the
 * primary's head (docs/architecture.md "The replica's read path"). */
#include "puller_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "base/errors.h"
#include "proto/frames.h"

/* Grow the image *buf of *size bytes to want bytes, zeros after its end
 * (never shrinks).  0, or -1 when out of memory. */
static int grow_to(uint8_t **buf, size_t *size, size_t want)
{
	uint8_t *grown;

	if (want <= *size)
		return 0;
	grown = realloc(*buf, want);
	if (grown == NULL)
		return -1;
	memset(grown + *size, 0, want - *size);
	*buf = grown;
	*size = want;
	return 0;
}

int puller_fetch_generation_frames(struct puller *p, uint32_t g, uint32_t *got,
				   char *err, size_t err_len)
{
	struct pending *pd = &p->pend;
	struct http_client_response res = {0};
	struct frames_batch b = {0};
	struct frames_chain chain;
	uint32_t start = pd->first + pd->n, end;
	char path[96], text[64], hex[DBSUM_TEXT_SIZE + 8];
	unsigned at = 0;
	int rv;

	*got = 0;
	if (!puller_frames_path(p, g, start, &end, path, sizeof path))
		return 0;
	rv = puller_request(p, path, PULL_TIMEOUT_MS, &res, err, err_len);
	if (rv != 0)
		return rv; /* 1: rejected */
	if (res.status != 200) {
		rv = puller_frames_absent(p, path, &res, err, err_len);
		goto out;
	}
	rv = -1;
	if (frames_parse(res.body, res.len, p->page_size, start, end, &b, err,
			 err_len) != 0)
		goto out;
	if (puller_verify_frames(p, start, &res, &chain, err, err_len) != 0) {
		rv = 1;
		goto out;
	}
	if (puller_pending_append(p, &b, err, err_len) != 0)
		goto out;
	pd->chain = chain;
	pd->has_expected =
	    http_client_response_header(&res, FRAMES_CHECKSUM_AT_HEADER, text,
					sizeof text) != NULL &&
	    sscanf(text, "%u-%20s", &at, hex) == 2 &&
	    dbsum_parse(hex, &pd->expected) == 0;
	pd->expected_frame = at;
	*got = b.n;
	rv = 0;
out:
	frames_batch_free(&b);
	http_client_response_free(&res);
	return rv;
}

/* The frames of generation g from its first on, as far as the primary has
 * them, verified as any pulled frames are and laid over a copy of the
 * image (the generation's base, GET /export).  Applied alone, the base
 * would show readers of a file that had content the database as it was
 * when the generation began, until the frames after it arrive: time going
 * backwards.  Returns 0 with *out (malloc'd; NULL when there were no
 * whole transactions: the image is the state), *out_len, *frame_no and
 * *sum, the checksum of the result; 1 when an answer failed verification
 * (nothing applied), -1 with err. */
static int roll_forward(struct puller *p, uint32_t g, const uint8_t *image,
			size_t len, uint8_t **out, size_t *out_len,
			uint32_t *frame_no, uint64_t *sum, char *err,
			size_t err_len)
{
	struct pending *pd = &p->pend;
	uint8_t *buf = NULL;
	size_t size = len, want;
	uint32_t n, i;
	int rv = -1;

	*out = NULL;
	*frame_no = 0;
	puller_pending_clear(pd);
	pd->generation = g;
	pd->first = 1;
	do {
		rv = puller_fetch_generation_frames(p, g, &n, err, err_len);
		if (rv != 0)
			goto out; /* 1: rejected */
		rv = -1;
	} while (puller_more_frames(p, n));
	n = puller_pending_complete(pd);
	if (puller_check_limit(p, g, n, err, err_len) != 0)
		goto out;
	if (n == 0) {
		rv = 0;
		goto out;
	}
	buf = malloc(size);
	if (buf == NULL)
		goto oom;
	memcpy(buf, image, size);
	for (i = 0; i < n; i++) {
		want = (size_t)pd->pgno[i] * p->page_size;
		if (grow_to(&buf, &size, want) != 0)
			goto oom;
		memcpy(buf + want - p->page_size,
		       pd->data + (size_t)i * p->page_size, p->page_size);
		if (pd->db_size[i] != 0) {
			/* A commit: the database is this many pages now. */
			want = (size_t)pd->db_size[i] * p->page_size;
			if (grow_to(&buf, &size, want) != 0)
				goto oom;
			size = want;
		}
	}
	*sum = dbsum_image(buf, size, p->page_size);
	if (pd->has_expected && pd->expected_frame == n &&
	    pd->expected != *sum) {
		errors_set(
		    err, err_len,
		    "the image of generation %u rolled forward to frame "
		    "%u does not have the checksum the primary announced "
		    "for it; it was not applied",
		    g, n);
		p->stats.rejected_transfers++;
		rv = 1;
		goto out;
	}
	p->stats.frames_pulled += n;
	*out = buf;
	*out_len = size;
	*frame_no = n;
	buf = NULL;
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory rolling an image forward");
out:
	free(buf);
	puller_pending_clear(pd);
	return rv;
}

/* The image must hash to the checksum the primary announced. */
static int verify_image(struct puller *p, const char *what,
			const struct http_client_response *res, uint64_t *sum,
			char *err, size_t err_len)
{
	char text[64], got_text[DBSUM_TEXT_SIZE];
	uint64_t want, got;

	if (http_client_response_header(res, FRAMES_CHECKSUM_HEADER, text,
					sizeof text) == NULL ||
	    dbsum_parse(text, &want) != 0) {
		errors_set(err, err_len,
			   "the primary's answer to %s has no valid %s header, "
			   "so the image cannot be verified (is the primary "
			   "replite serve of this version?)",
			   what, FRAMES_CHECKSUM_HEADER);
		return -1;
	}
	got = dbsum_image(res->body, res->len, p->page_size);
	if (got != want) {
		dbsum_format(got, got_text);
		errors_set(
		    err, err_len,
		    "the image of %zu bytes received for %s has checksum "
		    "%s, not the announced %s: it was damaged in transit "
		    "and was not applied",
		    res->len, what, got_text, text);
		p->stats.rejected_transfers++;
		return -1;
	}
	*sum = got;
	return 0;
}

/* Returns 0, 1 when the image failed verification (not applied), or -1. */
int puller_bootstrap(struct puller *p, const struct replica_state *st,
		     char *err, size_t err_len)
{
	uint8_t *rolled = NULL;
	size_t rolled_len = 0;
	struct http_client_response res = {0};
	struct replica_state now = {0};
	struct messages_info info = {0};
	struct applier_image img;
	char path[64], what[80];
	enum applier_result r;
	int rv = -1;

	if (puller_info(p, &info, err, err_len) != 0)
		return -1;
	if (puller_check_primary(p, &info, st, err, err_len) != 0)
		goto out;
	if (st == NULL || st->bootstrapping) {
		/* A new replica, or one whose bootstrap was cut short:
		 * straight into its file, if it still is one. */
		rv = puller_bootstrap_stream(p, &info, err, err_len);
		if (rv != 2)
			goto out;
		rv = -1;
	}
	snprintf(path, sizeof path, "/export/%" PRIu32,
		 info.current_generation);
	snprintf(what, sizeof what, "GET %s", path);
	rv = puller_request(p, path, EXPORT_TIMEOUT_MS, &res, err, err_len);
	if (rv != 0)
		goto out; /* 1: rejected (did not decode) */
	rv = -1;
	if (res.status != 200) {
		/* 404: the generation ended between the two requests. */
		http_client_status_error(what, &res, err, err_len);
		goto out;
	}
	if (verify_image(p, what, &res, &img.checksum, err, err_len) != 0) {
		rv = 1;
		goto out;
	}
	img.has_checksum = 1;
	img.generation = info.current_generation;
	img.database_id = info.database_id;
	img.sync_url = p->sync_url;
	img.data = res.body;
	img.len = res.len;
	img.frame_no = 0;
	puller_image_as_of(p, &img);
	/* Published at the primary's head (an as-of replica's state), not at
	 * the generation's base. */
	rv = roll_forward(p, img.generation, res.body, res.len, &rolled,
			  &rolled_len, &img.frame_no, &img.checksum, err,
			  err_len);
	if (rv != 0)
		goto out;
	rv = -1;
	if (rolled != NULL) {
		img.data = rolled;
		img.len = rolled_len;
	}
	r = applier_apply_image(p->applier, &img, &now, err, err_len);
	if (r == APPLIER_ERROR)
		goto out;
	if (r == APPLIER_APPLIED) {
		p->stats.frames_pulled += res.len / p->page_size;
		p->stats.batches_applied++;
	}
	puller_pending_clear(&p->pend);
	rv = 0;
out:
	free(rolled);
	replica_state_free(&now);
	http_client_response_free(&res);
	messages_info_free(&info);
	return rv;
}
