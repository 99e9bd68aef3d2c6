/* The puller's state, shared by the files that implement it (puller.h is
 * the interface): puller.c (frames: pulling, verifying, applying) and
 * puller_image.c (full images). */
#ifndef REPLITE_SYNC_PULLER_INTERNAL_H
#define REPLITE_SYNC_PULLER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frames.h"
#include "proto/messages.h"
#include "sync/http_client.h"
#include "sync/puller.h"

/* A damaged answer is fetched again at once this many times in a row before
 * the sync fails (and the sync thread retries after its back-off). */
#define PULL_MAX_REJECTS 3

/* Frames asked for per request: 16 MiB of 4 KiB pages.  Large requests make
 * a catch-up a few round trips and a few fsyncs. */
#define PULL_FRAMES 4096
/* A transaction of the primary that is larger than this cannot be received
 * (it is held in memory until its commit frame arrives). */
#define PULL_MAX_PENDING_BYTES ((size_t)2 << 30)
#define PULL_TIMEOUT_MS 60000L
/* A full image is one response: allow for a large database. */
#define EXPORT_TIMEOUT_MS 3600000L

/* Frames received after the applied position, not yet applied because no
 * commit frame (or not frame_hwm) was reached: frame first + i has page
 * number pgno[i], commit size db_size[i] and its page at data + i * page
 * size. */
struct pending {
	uint32_t generation;
	uint32_t first;
	uint32_t n;
	uint32_t cap;
	uint32_t *pgno;
	uint32_t *db_size;
	uint8_t *data;
	/* When n > 0: the checksum chain after the last pending frame, so
	 * the next answer must continue it. */
	struct frames_chain chain;
	/* The whole-database checksum the primary announced after a frame
	 * of the last answer (X-Replite-Checksum-At). */
	int has_expected;
	uint32_t expected_frame;
	uint64_t expected;
};

struct puller {
	struct http_client *http;
	struct applier *applier;
	char *sync_url;
	uint32_t page_size;
	/* The primary's database id was compared over a connection that is
	 * still the client's: any answer that came over a newer connection
	 * may be another server's (restarted or replaced at the address). */
	int checked;
	uint64_t checked_conn; /* http_client_connections() then */
	int unchecked_answers; /* dropped in a row, see pull_once */
	struct pending pend;
	struct puller_stats stats;
	/* An as-of replica's (puller_set_as_of; kind AS_OF_NONE: a live
	 * replica): what it asks for, and once the primary resolved it
	 * (GET /info?as_of=...), the state: frame limit_frame of generation
	 * limit_generation, committed at limit_unix_ms.  No frame past
	 * limit_frame is requested. */
	struct as_of as_of;
	int limited;
	uint32_t limit_generation;
	uint32_t limit_frame;
	int64_t limit_unix_ms;
};

/* What one request did.  STEP_REJECTED: the answer failed verification
 * and was dropped. */
enum pull_step { STEP_CONTINUE, STEP_CAUGHT_UP, STEP_REJECTED, STEP_ERROR };

/* Frames asked for per request when they may come squashed
 * (puller_squash.c). */
#define PULL_SQUASH_FRAMES 16384

/* The primary's X-Replite-Checksum-At: 1 with the frame and the checksum,
 * or 0 when absent or malformed. */
int puller_checksum_at(const struct http_client_response *res, uint32_t *frame,
		       uint64_t *sum);
/* The header name of an answer as a decimal number: 1 with *out, or 0
 * when absent or not a number. */
int puller_header_number(const struct http_client_response *res,
			 const char *name, uint64_t *out);
/* The primary's X-Replite-Behind-Since (Unix ms), 0 when absent. */
int64_t puller_behind_since(const struct http_client_response *res);
/* A 200 answer with X-Replite-Squashed (proto/frames.h) to GET /sync
 * from start: checked and applied as one batch standing for its span. */
enum pull_step puller_on_squashed(struct puller *p,
				  const struct replica_state *st,
				  uint32_t start, uint32_t end,
				  const struct http_client_response *res,
				  char *err, size_t err_len);

/* Forget the pending frames. */
void puller_pending_clear(struct pending *pd);
/* Append a verified batch to the pending frames (0, or -1 with err). */
int puller_pending_append(struct puller *p, const struct frames_batch *b,
			  char *err, size_t err_len);
/* Drop the first k pending frames. */
void puller_pending_consume(struct pending *pd, uint32_t k, uint32_t page_size);
/* Whole transactions at the front of the pending frames. */
uint32_t puller_pending_complete(const struct pending *pd);
/* GET path within timeout_ms: 0; 1 with err when the answer was damaged
 * in transit (a compressed body that did not decode; counted as a rejected
 * transfer); or -1 with err. */
int puller_request(struct puller *p, const char *path, long timeout_ms,
		   struct http_client_response *res, char *err, size_t err_len);
/* The same, the body of a 200 answer handed to fn as it arrives
 * (http_client_get_to). */
int puller_request_to(struct puller *p, const char *path, long timeout_ms,
		      http_client_body_fn fn, void *arg,
		      struct http_client_response *res, char *err,
		      size_t err_len);
/* One answer of generation g's frames after the pending ones, verified
 * as any pulled frames and appended to them, with the checksum it
 * announces (pend.has_expected...): 0 with *got frames (0 at the head; fewer
 * than PULL_FRAMES: the head is reached), 1 when it failed verification
 * (counted), or -1 with err (puller_image.c). */
int puller_fetch_generation_frames(struct puller *p, uint32_t g, uint32_t *got,
				   char *err, size_t err_len);
/* A new replica's bootstrap (or one cut short), streamed into its file
 * (puller_stream.c): 0, 1 when an answer failed verification (nothing
 * published), 2 when the file is not such a replica (apply a whole image
 * instead), or -1. */
int puller_bootstrap_stream(struct puller *p, const struct messages_info *info,
			    char *err, size_t err_len);
/* After one answer of n frames while a generation's frames are laid over
 * its image: ask for more?  A live replica, while answers are full (a
 * shorter one ends at the head); an as-of replica, until it has the
 * frames up to its state. */
int puller_more_frames(const struct puller *p, uint32_t n);
/* The GET /sync/g/start/end that lays generation g's frames from start
 * over its image, into path (end cut at an as-of replica's state): 1, or 0
 * when there is nothing to ask for (an as-of replica past its state). */
int puller_frames_path(const struct puller *p, uint32_t g, uint32_t start,
		       uint32_t *end, char *path, size_t path_len);
/* Such a GET answered other than 200: 0, the head (no frames after
 * start), or -1 with err for an as-of replica, whose state's frames must
 * all be there. */
int puller_frames_absent(const struct puller *p, const char *path,
			 const struct http_client_response *res, char *err,
			 size_t err_len);
/* An as-of replica's image rolled forward to frame_no of generation g:
 * 0 when that is its state, or -1 with err. */
int puller_check_limit(const struct puller *p, uint32_t g, uint32_t frame_no,
		       char *err, size_t err_len);
/* The as-of fields of an image about to be applied (none for a live
 * replica). */
void puller_image_as_of(const struct puller *p, struct applier_image *img);
/* GET /info (for an as-of replica, /info?as_of=...: the state, which sets
 * the limit), and the check that it is the primary the state names. */
int puller_info(struct puller *p, struct messages_info *info, char *err,
		size_t err_len);
int puller_check_primary(struct puller *p, const struct messages_info *info,
			 const struct replica_state *st, char *err,
			 size_t err_len);
/* The chain a GET /sync answer announces (X-Replite-Chain) for its frames
 * from start on, into *out; it must continue prev, the chain after the
 * frames before them (NULL: none to continue).  0, or -1 with err naming
 * what is wrong (no valid header, a broken chain). */
int puller_answer_chain(const struct http_client_response *res, uint32_t start,
			const struct frames_chain *prev,
			struct frames_chain *out, char *err, size_t err_len);
/* Check every frame of a GET /sync answer against the checksum chain
 * (0, or -1 with err; the chain after its last frame in *after). */
int puller_verify_frames(struct puller *p, uint32_t start,
			 const struct http_client_response *res,
			 struct frames_chain *after, char *err, size_t err_len);
/* Download and apply a full image of the primary's current generation,
 * rolled forward to its head.  Returns 0, 1 when an answer failed
 * verification (nothing applied), or -1 with err. */
int puller_bootstrap(struct puller *p, const struct replica_state *st,
		     char *err, size_t err_len);

#endif
