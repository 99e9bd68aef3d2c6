#include "pusher.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "base/sqlite_api.h"
#include "proto/frames.h"
#include "proto/messages.h"
#include "wal/walfmt.h"

/* Frames per request: 4 MiB bodies of 4 KiB pages, well under the
 * primary's default request limit. */
#define PUSH_FRAMES 1024
/* Pause before sending a request again that got no answer. */
#define RETRY_PAUSE_MS 100

/* push_part's own verdict: no answer arrived, send it again. */
#define PUSHER_NO_ANSWER (-1)

/* One request: frames [first, first + n) of the transaction. */
/* Returns a pusher_result, or PUSHER_NO_ANSWER with err. */
static int push_part(struct http_client *http, const struct pusher_txn *t,
		     uint32_t first, uint32_t n, char **baton, long timeout_ms,
		     struct pusher_logged *logged, char *err, size_t err_len)
{
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)t->page_size;
	uint32_t start = t->start + first, end = start + n;
	int last = first + n == t->n;
	struct http_client_response res = {0};
	struct messages_push_reply reply = {0};
	enum pusher_result r = PUSHER_ERROR;
	char path[320], detail[256], txn[FRAMES_TXN_ID_TEXT_SIZE];
	char sums[64] = "", base[DBSUM_TEXT_SIZE], result[DBSUM_TEXT_SIZE];
	uint8_t *body;
	int rc;

	body = malloc((size_t)n * frame_size);
	if (body == NULL) {
		errors_set(err, err_len, "out of memory");
		return PUSHER_ERROR;
	}
	frames_encode(t->pages + first, n, last ? t->db_size : 0, t->page_size,
		      body);
	/* strict: the primary must not take another writer's identical
	 * transaction for ours (see store_push); txn: but ours, sent again,
	 * it recognises; rollover: if the generation ended right where we
	 * start, log the transaction at the start of the next one and say
	 * so, instead of a conflict. */
	frames_txn_id_format(t->id, txn);
	if (t->has_sums) {
		dbsum_format(t->base, base);
		dbsum_format(t->result, result);
		snprintf(sums, sizeof sums, "&base=%s&result=%s", base, result);
	}
	snprintf(path, sizeof path,
		 "/sync/%" PRIu32 "/%" PRIu32 "/%" PRIu32
		 "%s%s?strict=1&rollover=1&txn=%s%s",
		 t->generation, start, end, *baton ? "/" : "",
		 *baton ? *baton : "", txn, sums);
	rc = http_client_request(http, "POST", path, body,
				 (size_t)n * frame_size, timeout_ms, &res, err,
				 err_len);
	free(body);
	if (rc != 0)
		return PUSHER_NO_ANSWER;
	if (res.status == 403) {
		http_client_error_detail(&res, detail, sizeof detail);
		errors_set(err, err_len,
			   "the primary refused the write (HTTP 403): %s; the "
			   "auth token is read-only",
			   detail);
		r = PUSHER_DENIED;
		goto out;
	}
	if (res.status == 400 &&
	    strstr((const char *)res.body, "PUSH_CHECKSUM_MISMATCH") != NULL) {
		http_client_error_detail(&res, detail, sizeof detail);
		errors_set(err, err_len, "the primary refused the write: %s",
			   detail);
		r = PUSHER_DIVERGED;
		goto out;
	}
	if (res.status == 404 &&
	    strstr((const char *)res.body, "GENERATION_NOT_FOUND") != NULL) {
		/* The generation the write is built on is gone: the
		 * primary moved on without it. */
		http_client_error_detail(&res, detail, sizeof detail);
		errors_set(err, err_len,
			   "the primary no longer has generation "
			   "%" PRIu32 ": %s",
			   t->generation, detail);
		r = PUSHER_CONFLICT;
		goto out;
	}
	if (res.status != 200) {
		http_client_error_detail(&res, detail, sizeof detail);
		errors_set(err, err_len,
			   "the primary answered the push of frames [%" PRIu32
			   ", %" PRIu32 ") with HTTP %ld: %s",
			   start, end, res.status, detail);
		goto out;
	}
	if (messages_parse_push_reply(res.body, res.len, &reply, err,
				      err_len) != 0)
		goto out;
	logged->generation = reply.generation;
	logged->head = reply.max_frame_no;
	if (reply.conflict) {
		r = PUSHER_CONFLICT;
		goto out;
	}
	if (last && reply.generation == t->generation + 1 &&
	    reply.max_frame_no == t->n) {
		/* Logged as frames [1, t->n] of the next generation. */
		r = PUSHER_OK;
		goto out;
	}
	if (reply.generation != t->generation ||
	    reply.max_frame_no != end - 1) {
		errors_set(
		    err, err_len,
		    "the primary acknowledged the push of frames [%" PRIu32
		    ", %" PRIu32 ") of generation %" PRIu32
		    " with head %" PRIu32 " of generation %" PRIu32
		    ": it is not where the replica expected it",
		    start, end, t->generation, reply.max_frame_no,
		    reply.generation);
		goto out;
	}
	if (!last && reply.baton == NULL) {
		errors_set(err, err_len,
			   "the primary gave no baton to continue the push of "
			   "frames [%" PRIu32 ", %" PRIu32 ")",
			   start, t->start + t->n);
		goto out;
	}
	free(*baton);
	*baton = reply.baton;
	reply.baton = NULL;
	r = PUSHER_OK;
out:
	messages_push_reply_free(&reply);
	http_client_response_free(&res);
	return r;
}

enum pusher_result pusher_push(struct http_client *http,
			       const struct pusher_txn *t, long timeout_ms,
			       struct pusher_logged *logged, char *err,
			       size_t err_len)
{
	int64_t deadline = clock_monotonic_ms() + timeout_ms;
	int r = PUSHER_OK;
	char *baton = NULL;
	uint32_t first;

	for (first = 0; first < t->n && r == PUSHER_OK;) {
		uint32_t n =
		    t->n - first < PUSH_FRAMES ? t->n - first : PUSH_FRAMES;
		long left = (long)(deadline - clock_monotonic_ms());

		if (left <= 0) {
			errors_set(
			    err, err_len,
			    "the push to the primary did not finish within "
			    "write_timeout (%ld ms)",
			    timeout_ms);
			r = PUSHER_ERROR;
			break;
		}
		r = push_part(http, t, first, n, &baton, left, logged, err,
			      err_len);
		if (r == PUSHER_NO_ANSWER) {
			/* The same request again (same id, same baton): the
			 * primary answers it as it did the first copy. */
			left = (long)(deadline - clock_monotonic_ms());
			if (t->once || left <= RETRY_PAUSE_MS) {
				r = PUSHER_ERROR;
				break;
			}
			sqlite3_sleep(RETRY_PAUSE_MS);
			r = PUSHER_OK;
			continue;
		}
		first += n;
	}
	free(baton);
	return (enum pusher_result)r;
}
