#include "puller_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "proto/frames.h"
#include "wal/walfmt.h"

struct puller *puller_new(struct http_client *http, struct applier *a,
			  const char *sync_url, uint32_t page_size)
{
	struct puller *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->sync_url = strdup(sync_url);
	if (p->sync_url == NULL) {
		free(p);
		return NULL;
	}
	p->http = http;
	p->applier = a;
	p->page_size = page_size;
	return p;
}

void puller_pending_clear(struct pending *pd)
{
	pd->n = 0;
	pd->first = 0;
	pd->generation = 0;
}

void puller_free(struct puller *p)
{
	if (p == NULL)
		return;
	free(p->pend.pgno);
	free(p->pend.db_size);
	free(p->pend.data);
	free(p->sync_url);
	free(p);
}

void puller_stats(const struct puller *p, struct puller_stats *out)
{
	*out = p->stats;
}

/* ---------------------------------------------------------------------- */
/* answers of the primary */

int puller_request(struct puller *p, const char *path, long timeout_ms,
		   struct http_client_response *res, char *err, size_t err_len)
{
	return puller_request_to(p, path, timeout_ms, NULL, NULL, res, err,
				 err_len);
}

int puller_request_to(struct puller *p, const char *path, long timeout_ms,
		      http_client_body_fn fn, void *arg,
		      struct http_client_response *res, char *err,
		      size_t err_len)
{
	int rc = http_client_get_to(p->http, path, timeout_ms, fn, arg, res,
				    err, err_len);

	if (rc > 0) {
		/* A compressed answer that did not decode: damaged in
		 * transit, like one failing its checksums.  The next
		 * request asks for plain bytes, in case the damage is in
		 * what the primary sends (a bad compressed copy on its
		 * disk) rather than on the way. */
		p->stats.rejected_transfers++;
		http_client_accept_zstd(p->http, 0);
		return 1;
	}
	http_client_accept_zstd(p->http, 1);
	if (rc != 0)
		return -1;
	p->stats.bytes_pulled += res->len;
	p->stats.wire_bytes_pulled += res->wire_len;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* bootstrap */

static int fetch_info(struct http_client *http, const char *path,
		      long timeout_ms, struct messages_info *info,
		      size_t *bytes, char *err, size_t err_len)
{
	struct http_client_response res = {0};
	char what[96];
	int rv = -1;

	if (http_client_request(http, "GET", path, NULL, 0, timeout_ms, &res,
				err, err_len) != 0)
		return -1;
	if (bytes != NULL)
		*bytes = res.len;
	snprintf(what, sizeof what, "GET %s", path);
	if (res.status != 200)
		http_client_status_error(what, &res, err, err_len);
	else
		rv = messages_parse_info(res.body, res.len, info, err, err_len);
	http_client_response_free(&res);
	return rv;
}

int puller_fetch_info(struct http_client *http, long timeout_ms,
		      struct messages_info *info, size_t *bytes, char *err,
		      size_t err_len)
{
	return fetch_info(http, "/info", timeout_ms, info, bytes, err, err_len);
}

void puller_set_as_of(struct puller *p, const struct as_of *a)
{
	p->as_of = *a;
	p->limited = 0;
}

/* An as-of replica's /info answer describes its state: from now on no
 * frame past it is asked for. */
static int take_as_of(struct puller *p, const struct messages_info *info,
		      const char *asked, char *err, size_t err_len)
{
	if (!info->has_as_of || !info->has_max_frame_no) {
		errors_set(err, err_len,
			   "the primary at %s answered GET /info?as_of=%s "
			   "without the state's position (\"as_of\", "
			   "\"max_frame_no\"): it does not serve as-of "
			   "replicas (is it replite serve of this version?)",
			   p->sync_url, asked);
		return -1;
	}
	p->limited = 1;
	p->limit_generation = info->current_generation;
	p->limit_frame = info->max_frame_no;
	p->limit_unix_ms = info->as_of_unix_ms;
	return 0;
}

int puller_info(struct puller *p, struct messages_info *info, char *err,
		size_t err_len)
{
	char asked[AS_OF_TEXT_SIZE], path[64 + AS_OF_TEXT_SIZE];
	size_t bytes = 0;
	int rv;

	if (p->as_of.kind == AS_OF_NONE) {
		rv = fetch_info(p->http, "/info", PULL_TIMEOUT_MS, info, &bytes,
				err, err_len);
	} else {
		/* The canonical text needs no escaping in a query. */
		as_of_format(&p->as_of, asked);
		snprintf(path, sizeof path, "/info?as_of=%s", asked);
		rv = fetch_info(p->http, path, PULL_TIMEOUT_MS, info, &bytes,
				err, err_len);
		if (rv == 0 && take_as_of(p, info, asked, err, err_len) != 0) {
			messages_info_free(info);
			rv = -1;
		}
	}
	p->stats.bytes_pulled += bytes;
	p->stats.wire_bytes_pulled += bytes; /* JSON: never compressed */
	return rv;
}

int puller_more_frames(const struct puller *p, uint32_t n)
{
	if (p->limited)
		return n > 0; /* the next asks for nothing past the limit */
	return n == PULL_FRAMES;
}

int puller_frames_path(const struct puller *p, uint32_t g, uint32_t start,
		       uint32_t *end, char *path, size_t path_len)
{
	*end = start + PULL_FRAMES;
	if (p->limited) {
		/* An as-of replica: nothing past its state, ever. */
		if (start > p->limit_frame)
			return 0;
		if (*end > p->limit_frame + 1)
			*end = p->limit_frame + 1;
	}
	snprintf(path, path_len, "/sync/%" PRIu32 "/%" PRIu32 "/%" PRIu32, g,
		 start, *end);
	return 1;
}

int puller_frames_absent(const struct puller *p, const char *path,
			 const struct http_client_response *res, char *err,
			 size_t err_len)
{
	char what[128];

	if (!p->limited)
		return 0;
	snprintf(what, sizeof what, "GET %s (the state as of)", path);
	http_client_status_error(what, res, err, err_len);
	return -1;
}

int puller_check_limit(const struct puller *p, uint32_t g, uint32_t frame_no,
		       char *err, size_t err_len)
{
	char when[AS_OF_TEXT_SIZE];

	if (!p->limited ||
	    (g == p->limit_generation && frame_no == p->limit_frame))
		return 0;
	clock_format_rfc3339(p->limit_unix_ms, when, sizeof when);
	errors_set(err, err_len,
		   "the primary's frames of generation %u reached frame %u, "
		   "but its state as of %s is frame %u of generation %u; "
		   "nothing was applied",
		   g, frame_no, when, p->limit_frame, p->limit_generation);
	return -1;
}

void puller_image_as_of(const struct puller *p, struct applier_image *img)
{
	img->has_as_of = p->limited;
	img->as_of_request = p->as_of;
	img->as_of_unix_ms = p->limit_unix_ms;
}

/* Is the local file ahead of the primary?  Then it holds transactions the
 * primary lost (restored from a backup, say): only a full image makes it
 * match again. */
static int check_not_ahead(struct puller *p, const struct messages_info *info,
			   const struct replica_state *st, char *err,
			   size_t err_len)
{
	char why[256];

	if (st->bootstrapping)
		return 0;
	if (info->current_generation < st->generation)
		snprintf(why, sizeof why,
			 "the primary is at generation %u, but the replica "
			 "applied generation %u",
			 info->current_generation, st->generation);
	else if (info->current_generation == st->generation &&
		 info->has_max_frame_no && info->max_frame_no < st->frame_no)
		snprintf(why, sizeof why,
			 "the primary's generation %u ends at frame %u, but "
			 "the replica applied frame %u",
			 st->generation, info->max_frame_no, st->frame_no);
	else
		return 0;
	if (applier_require_image(p->applier, err, err_len) != 0)
		return -1;
	errors_set(err, err_len,
		   "the local file is ahead of the primary (%s): it holds "
		   "transactions the primary does not have, and will be "
		   "downloaded again",
		   why);
	return -1;
}

/* Compare the primary's database id with the one the state file recorded
 * (once per puller, and whenever a full image is fetched). */
int puller_check_primary(struct puller *p, const struct messages_info *info,
			 const struct replica_state *st, char *err,
			 size_t err_len)
{
	if (st != NULL &&
	    replica_state_check_primary(st, info->database_id, p->sync_url, err,
					err_len) != 0)
		return -1;
	if (st != NULL && check_not_ahead(p, info, st, err, err_len) != 0)
		return -1;
	if (st != NULL &&
	    ((st->database_id == NULL) != (info->database_id == NULL) ||
	     strcmp(st->sync_url, p->sync_url) != 0)) {
		if (applier_record_primary(p->applier, info->database_id,
					   p->sync_url, err, err_len) != 0)
			return -1;
	}
	p->checked = 1;
	p->checked_conn = http_client_connections(p->http);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* frames */

static int pending_reserve(struct pending *pd, uint32_t extra,
			   uint32_t page_size)
{
	uint32_t cap = pd->cap ? pd->cap : 64;
	void *a, *b, *c;

	if (pd->n + extra <= pd->cap)
		return 0;
	while (cap < pd->n + extra)
		cap *= 2;
	if ((size_t)cap * page_size > PULL_MAX_PENDING_BYTES)
		return -1;
	a = realloc(pd->pgno, cap * sizeof *pd->pgno);
	if (a != NULL)
		pd->pgno = a;
	b = realloc(pd->db_size, cap * sizeof *pd->db_size);
	if (b != NULL)
		pd->db_size = b;
	c = realloc(pd->data, (size_t)cap * page_size);
	if (c != NULL)
		pd->data = c;
	if (a == NULL || b == NULL || c == NULL)
		return -1;
	pd->cap = cap;
	return 0;
}

int puller_pending_append(struct puller *p, const struct frames_batch *b,
			  char *err, size_t err_len)
{
	struct pending *pd = &p->pend;
	uint32_t i;

	if (pending_reserve(pd, b->n, p->page_size) != 0) {
		errors_set(err, err_len,
			   "a transaction of the primary from frame %u on is "
			   "larger than %zu bytes (or memory ran out): the "
			   "replica cannot receive it",
			   pd->first, PULL_MAX_PENDING_BYTES);
		return -1;
	}
	for (i = 0; i < b->n; i++) {
		pd->pgno[pd->n] = b->frames[i].pgno;
		pd->db_size[pd->n] = b->frames[i].db_size;
		memcpy(pd->data + (size_t)pd->n * p->page_size,
		       b->frames[i].page, p->page_size);
		pd->n++;
	}
	return 0;
}

void puller_pending_consume(struct pending *pd, uint32_t k, uint32_t page_size)
{
	assert(k <= pd->n);
	memmove(pd->pgno, pd->pgno + k, (pd->n - k) * sizeof *pd->pgno);
	memmove(pd->db_size, pd->db_size + k,
		(pd->n - k) * sizeof *pd->db_size);
	memmove(pd->data, pd->data + (size_t)k * page_size,
		(size_t)(pd->n - k) * page_size);
	pd->n -= k;
	pd->first += k;
}

/* Whole transactions at the front of the pending frames. */
uint32_t puller_pending_complete(const struct pending *pd)
{
	uint32_t i;

	for (i = pd->n; i > 0; i--) {
		if (pd->db_size[i - 1] != 0)
			return i;
	}
	return 0;
}

/* Apply the whole transactions pending, if they reach frame_hwm.  Returns
 * the applier's verdict (APPLIER_NEED_MORE when there is nothing to apply
 * yet). */
static enum applier_result apply_pending(struct puller *p, uint32_t hwm,
					 char *err, size_t err_len)
{
	struct pending *pd = &p->pend;
	uint32_t n = puller_pending_complete(pd), i;
	struct frames_frame *frames;
	struct replica_state st = {0};
	struct applier_frames b;
	enum applier_result r;

	if (n == 0 || pd->first + n - 1 < hwm)
		return APPLIER_NEED_MORE;
	frames = calloc(n, sizeof *frames);
	if (frames == NULL) {
		errors_set(err, err_len, "out of memory");
		return APPLIER_ERROR;
	}
	for (i = 0; i < n; i++) {
		frames[i].pgno = pd->pgno[i];
		frames[i].db_size = pd->db_size[i];
		frames[i].page = pd->data + (size_t)i * p->page_size;
	}
	b.generation = pd->generation;
	b.first = pd->first;
	b.frames = frames;
	b.n = n;
	b.span = n;
	b.has_expected = pd->has_expected;
	b.expected_frame = pd->expected_frame;
	b.expected = pd->expected;
	r = applier_apply_frames(p->applier, &b, &st, err, err_len);
	free(frames);
	if (r == APPLIER_APPLIED || r == APPLIER_STALE) {
		puller_pending_consume(pd, n, p->page_size);
		if (r == APPLIER_APPLIED)
			p->stats.batches_applied++;
	}
	replica_state_free(&st);
	return r;
}

/* The primary has no frames at the requested start: caught up, or the
 * generation ended. */
static enum pull_step on_no_frames(struct puller *p,
				   const struct replica_state *st,
				   const struct http_client_response *res,
				   char *err, size_t err_len)
{
	struct replica_state now = {0};
	enum applier_result r;
	uint32_t gen = 0;

	if (messages_parse_generation(res->body, res->len, &gen, err,
				      err_len) != 0)
		return STEP_ERROR;
	if (p->pend.n > 0) {
		errors_set(
		    err, err_len,
		    "the primary has no frame %u of generation %u, but "
		    "its transaction from frame %u on has no commit frame",
		    p->pend.first + p->pend.n, st->generation, p->pend.first);
		puller_pending_clear(&p->pend);
		return STEP_ERROR;
	}
	if (gen == st->generation) {
		if (st->frame_hwm > st->frame_no) {
			errors_set(
			    err, err_len,
			    "the primary's generation %u ends at frame %u, "
			    "but it served frames up to %u before; the "
			    "replica waits for them",
			    gen, st->frame_no, st->frame_hwm);
			return STEP_ERROR;
		}
		p->stats.generation = gen;
		p->stats.primary_frame_no = st->frame_no;
		p->stats.behind_since_unix_ms = 0;
		if (st->catching_up &&
		    applier_caught_up(p->applier, err, err_len) != 0)
			return STEP_ERROR;
		return STEP_CAUGHT_UP;
	}
	if (gen < st->generation) {
		errors_set(
		    err, err_len,
		    "the primary answered with generation %u, older than "
		    "the replica's generation %u",
		    gen, st->generation);
		return STEP_ERROR;
	}
	r = applier_next_generation(p->applier, st->generation, st->frame_no,
				    gen, &now, err, err_len);
	replica_state_free(&now);
	return r == APPLIER_ERROR ? STEP_ERROR : STEP_CONTINUE;
}

/* Check every frame of a GET /sync answer against the checksum chain the
 * primary announced with it (and, after pending frames, against the chain
 * they ended with) before any of it is used.  On success *after is the
 * chain after the body's last frame. */
int puller_answer_chain(const struct http_client_response *res, uint32_t start,
			const struct frames_chain *prev,
			struct frames_chain *out, char *err, size_t err_len)
{
	char text[FRAMES_CHAIN_TEXT_SIZE + 16];

	if (http_client_response_header(res, FRAMES_CHAIN_HEADER, text,
					sizeof text) == NULL ||
	    frames_chain_parse(text, out) != 0) {
		errors_set(err, err_len,
			   "the primary's frames from %u on came without a "
			   "valid %s header, so they cannot be verified (is "
			   "the primary replite serve of this version?)",
			   start, FRAMES_CHAIN_HEADER);
		return -1;
	}
	if (prev != NULL &&
	    (out->big_endian != prev->big_endian ||
	     out->salt[0] != prev->salt[0] || out->salt[1] != prev->salt[1] ||
	     out->cksum[0] != prev->cksum[0] ||
	     out->cksum[1] != prev->cksum[1])) {
		errors_set(err, err_len,
			   "the primary's frames from %u on do not continue "
			   "the checksum chain of the frames before them "
			   "(damaged in transit, or another primary answered)",
			   start);
		return -1;
	}
	return 0;
}

int puller_verify_frames(struct puller *p, uint32_t start,
			 const struct http_client_response *res,
			 struct frames_chain *after, char *err, size_t err_len)
{
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)p->page_size;
	char why[384];
	struct walfmt_frame_header last;

	if (puller_answer_chain(res, start,
				p->pend.n > 0 ? &p->pend.chain : NULL, after,
				err, err_len) != 0) {
		p->stats.rejected_transfers++;
		return -1;
	}
	if (frames_verify(res->body, res->len, p->page_size, start, after, why,
			  sizeof why) != 0) {
		errors_set(err, err_len, "%s; it was not applied", why);
		p->stats.rejected_transfers++;
		return -1;
	}
	if (res->len >= frame_size) {
		walfmt_frame_header_decode(res->body + res->len - frame_size,
					   &last);
		after->cksum[0] = last.cksum[0];
		after->cksum[1] = last.cksum[1];
	}
	return 0;
}

/* The primary's X-Replite-Behind-Since (proto/frames.h), 0 when absent. */
int puller_checksum_at(const struct http_client_response *res, uint32_t *frame,
		       uint64_t *sum)
{
	char text[64], hex[DBSUM_TEXT_SIZE + 8];
	unsigned f = 0;

	*frame = 0;
	if (http_client_response_header(res, FRAMES_CHECKSUM_AT_HEADER, text,
					sizeof text) == NULL ||
	    sscanf(text, "%u-%20s", &f, hex) != 2 || dbsum_parse(hex, sum) != 0)
		return 0;
	*frame = f;
	return 1;
}

int puller_header_number(const struct http_client_response *res,
			 const char *name, uint64_t *out)
{
	char text[32], *end;
	unsigned long long v;

	if (http_client_response_header(res, name, text, sizeof text) == NULL ||
	    text[0] < '0' || text[0] > '9')
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	*out = v;
	return 1;
}

int64_t puller_behind_since(const struct http_client_response *res)
{
	uint64_t v = 0;

	if (!puller_header_number(res, FRAMES_BEHIND_SINCE_HEADER, &v) ||
	    v > INT64_MAX)
		return 0;
	return (int64_t)v;
}

static enum pull_step on_frames(struct puller *p,
				const struct replica_state *st, uint32_t start,
				uint32_t end,
				const struct http_client_response *res,
				char *err, size_t err_len)
{
	struct frames_batch b = {0};
	struct frames_chain chain;
	enum applier_result r;
	uint32_t n;
	int rv;

	/* Its shape first (whole frames, page numbers, commit frames), for
	 * precise messages; then every byte against the checksum chain. */
	if (frames_parse(res->body, res->len, p->page_size, start, end, &b, err,
			 err_len) != 0)
		return STEP_ERROR;
	if (puller_verify_frames(p, start, res, &chain, err, err_len) != 0) {
		frames_batch_free(&b);
		return STEP_REJECTED;
	}
	rv = puller_pending_append(p, &b, err, err_len);
	if (rv == 0) {
		p->pend.chain = chain;
		p->pend.has_expected = puller_checksum_at(
		    res, &p->pend.expected_frame, &p->pend.expected);
	}
	p->stats.frames_pulled += b.n;
	n = b.n;
	frames_batch_free(&b);
	if (rv != 0)
		return STEP_ERROR;
	if (p->stats.generation != st->generation ||
	    start + n - 1 > p->stats.primary_frame_no) {
		p->stats.generation = st->generation;
		p->stats.primary_frame_no = start + n - 1;
	}
	r = apply_pending(p, st->frame_hwm, err, err_len);
	switch (r) {
	case APPLIER_APPLIED:
	case APPLIER_STALE:
	case APPLIER_NEED_MORE:
		p->stats.behind_since_unix_ms = puller_behind_since(res);
		return STEP_CONTINUE;
	case APPLIER_MOVED:
		puller_pending_clear(&p->pend);
		return STEP_CONTINUE;
	case APPLIER_ERROR:
		break;
	}
	puller_pending_clear(&p->pend);
	return STEP_ERROR;
}

static int connection_checked(const struct puller *p)
{
	return p->checked &&
	       http_client_connections(p->http) == p->checked_conn;
}

/* One request for the frames after the applied position (and after the
 * pending ones). */
static enum pull_step pull_once(struct puller *p,
				const struct replica_state *st, int wait_s,
				char *err, size_t err_len)
{
	struct http_client_response res = {0};
	struct pending *pd = &p->pend;
	enum pull_step step = STEP_ERROR;
	uint32_t start, end;
	char path[128], text[32];
	long timeout = PULL_TIMEOUT_MS;
	int rv, n, squash;

	if (pd->generation != st->generation || pd->first != st->frame_no + 1) {
		puller_pending_clear(pd);
		pd->generation = st->generation;
		pd->first = st->frame_no + 1;
	}
	start = pd->first + pd->n;
	/* Squashed answers (puller_squash.c) apply only to the applied
	 * position, with nothing held beyond it. */
	squash = pd->n == 0 && st->frame_hwm == st->frame_no;
	end = start + (squash ? PULL_SQUASH_FRAMES : PULL_FRAMES);
	if (end < start)
		end = UINT32_MAX;
	n = snprintf(path, sizeof path,
		     "/sync/%" PRIu32 "/%" PRIu32 "/%" PRIu32, st->generation,
		     start, end);
	if (wait_s > 0 && pd->n == 0) {
		n += snprintf(path + n, sizeof path - (size_t)n, "?wait=%d%s",
			      wait_s, squash ? "&squash=1" : "");
		timeout += wait_s * 1000L;
	} else if (squash) {
		snprintf(path + n, sizeof path - (size_t)n, "?squash=1");
	}
	rv = puller_request(p, path, timeout, &res, err, err_len);
	if (rv != 0)
		return rv > 0 ? STEP_REJECTED : STEP_ERROR;
	if (!connection_checked(p) && p->unchecked_answers++ < 3) {
		/* Answered over a new connection: check the database id
		 * again before using anything from it.  (A primary that
		 * closes every connection is believed after three tries.) */
		http_client_response_free(&res);
		return STEP_CONTINUE;
	}
	p->unchecked_answers = 0;
	if (res.status == 200 &&
	    http_client_response_header(&res, FRAMES_SQUASHED_HEADER, text,
					sizeof text) != NULL) {
		step = squash ? puller_on_squashed(p, st, start, end, &res, err,
						   err_len)
			      : STEP_ERROR;
		if (!squash)
			errors_set(err, err_len,
				   "the primary squashed frames from %u on "
				   "without being asked to",
				   start);
	} else if (res.status == 200) {
		step = on_frames(p, st, start, end, &res, err, err_len);
	} else if (res.status == 400) {
		step = on_no_frames(p, st, &res, err, err_len);
	} else if (res.status == 404) {
		/* The generation held locally is gone: a full image. */
		int b = puller_bootstrap(p, st, err, err_len);
		step = b == 0  ? STEP_CONTINUE
		       : b > 0 ? STEP_REJECTED
			       : STEP_ERROR;
	} else {
		char what[160];
		snprintf(what, sizeof what, "GET %s", path);
		http_client_status_error(what, &res, err, err_len);
	}
	http_client_response_free(&res);
	return step;
}

int puller_sync(struct puller *p, int wait_s, char *err, size_t err_len)
{
	struct replica_state st = {0};
	enum pull_step step = STEP_CONTINUE;
	int loaded, first = 1, rejects = 0;

	while (step == STEP_CONTINUE ||
	       (step == STEP_REJECTED && ++rejects < PULL_MAX_REJECTS)) {
		replica_state_free(&st);
		loaded = applier_load_state(p->applier, &st, err, err_len);
		if (loaded < 0)
			return -1;
		if (loaded == 0 && !st.bootstrapping &&
		    p->as_of.kind != AS_OF_NONE) {
			/* An as-of replica with its state (checked at open
			 * and under the lock by every image): nothing to
			 * pull, ever. */
			p->stats.primary_frame_no = st.frame_no;
			break;
		}
		if (loaded == 1 || st.bootstrapping) {
			int b = puller_bootstrap(p, loaded == 0 ? &st : NULL,
						 err, err_len);
			if (b < 0 || (b > 0 && ++rejects >= PULL_MAX_REJECTS))
				goto fail;
			step = STEP_CONTINUE;
			continue;
		}
		if (!connection_checked(p)) {
			struct messages_info info = {0};
			int rv = puller_info(p, &info, err, err_len);
			if (rv == 0)
				rv = puller_check_primary(p, &info, &st, err,
							  err_len);
			messages_info_free(&info);
			if (rv != 0)
				goto fail;
		}
		step = pull_once(p, &st, first ? wait_s : 0, err, err_len);
		first = 0;
		if (step == STEP_CONTINUE || step == STEP_CAUGHT_UP)
			rejects = 0;
	}
	if (step == STEP_ERROR || step == STEP_REJECTED)
		goto fail;
	p->stats.generation = st.generation;
	p->stats.frame_no = st.frame_no;
	replica_state_free(&st);
	return 0;
fail:
	replica_state_free(&st);
	return -1;
}
