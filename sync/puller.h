/* The puller: one replica's client side of the sync protocol (DESIGN.md §5).
 * It brings the local file up to the primary's head: a full image when the
 * file has none (GET /info, GET /export/{G}), then whole transactions of
 * frames (GET /sync/{G}/{start}/{end}), following generation rollovers
 * without downloading again, and bootstrapping again only when the
 * generation held locally is gone from the primary.  Every change goes
 * through the applier; the puller keeps no position of its own beyond the
 * frames of a transaction it has not received whole yet, so several pullers
 * (threads or processes) may serve one file. */
#ifndef REPLITE_PULLER_H
#define REPLITE_PULLER_H

#include <stddef.h>
#include <stdint.h>

#include "sync/applier.h"
#include "sync/as_of.h"
#include "proto/frames.h"
#include "proto/messages.h"
#include "sync/http_client.h"

struct puller;

struct puller_stats {
	uint64_t frames_pulled;     /* frames received (images count pages) */
	uint64_t bytes_pulled;      /* response bytes received */
	uint64_t wire_bytes_pulled; /* the same on the wire (compressed) */
	uint32_t generation;        /* position applied after the last sync */
	uint32_t frame_no;
	uint32_t primary_frame_no; /* the primary's head, as last seen */
	uint64_t batches_applied;
	/* Answers refused because they failed verification (a frame off
	 * the announced checksum chain, an image off its checksum): never
	 * applied, fetched again. */
	uint64_t rejected_transfers;
	/* When the oldest primary commit not applied became durable there
	 * (Unix ms, as the primary reported it with the last frames:
	 * X-Replite-Behind-Since); 0 when the last answer left the replica
	 * caught up. */
	int64_t behind_since_unix_ms;
	/* Frames of the primary's log received squashed (each page once:
	 * FRAMES_SQUASHED_HEADER), and applied. */
	uint64_t squashed_frames;
};

/* http and a belong to the caller and must outlive the puller. */
struct puller *puller_new(struct http_client *http, struct applier *a,
			  const char *sync_url, uint32_t page_size);
void puller_free(struct puller *p);

/* Make the puller an as-of replica's (a: kind AS_OF_TIME or AS_OF_FRAME),
 * before its first sync: it asks the primary for the state as of a (GET
 * /info?as_of=...), bootstraps the file with exactly that state (no frame
 * past it is ever requested or applied, and the state file records as_of),
 * and never pulls anything after it. */
void puller_set_as_of(struct puller *p, const struct as_of *a);

/* Pull and apply until the primary says the file is caught up.  wait_s > 0
 * lets the first request long-poll that long for new frames when there are
 * none yet (live sync).  Returns 0 when caught up, or -1 with err naming the
 * cause; what was applied before an error stays applied.  An as-of
 * replica's puller only bootstraps a file that does not hold its state yet
 * (and needs no network otherwise). */
int puller_sync(struct puller *p, int wait_s, char *err, size_t err_len);

/* GET /info: the primary's generation, head and database id.  *bytes
 * (may be NULL) receives the size of the answer. */
int puller_fetch_info(struct http_client *http, long timeout_ms,
		      struct messages_info *info, size_t *bytes, char *err,
		      size_t err_len);

/* Counters and position since puller_new. */
void puller_stats(const struct puller *p, struct puller_stats *out);

#endif
