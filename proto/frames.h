/* The frame bodies of the HTTP sync protocol (DESIGN.md §5,
 * notes/libsql-protocols.md "HTTP sync protocol"): concatenated frames, each
 * a 24-byte big-endian WAL frame header (pgno, db_size, salts, checksums)
 * and a page, as served by GET /sync/{G}/{start}/{end} and sent with
 * POST /sync/{G}/{start}/{end}.  Only pgno and db_size matter: the salts and
 * checksums are the primary's and are recomputed locally by the injector.
 * The JSON answers are in proto/messages.h.
 *
 * Every failure is reported as text naming what was wrong with the body. */
#ifndef REPLITE_PROTO_FRAMES_H
#define REPLITE_PROTO_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wal/wal_inject.h" /* struct wal_page */

/* One frame: a view into the body it was parsed from (no copy). */
struct frames_frame {
	uint32_t pgno;       /* >= 1, never the pending-byte page */
	uint32_t db_size;    /* database size in pages; non-zero = commit */
	const uint8_t *page; /* page_size bytes inside the body */
};

struct frames_batch {
	struct frames_frame *frames; /* malloc'd, n entries */
	uint32_t n;                  /* frames in the body, >= 1 */
	/* Leading frames that form whole transactions: up to and including
	 * the last commit frame (0: no commit frame at all).  Frames after
	 * it are an incomplete transaction, to be requested again from
	 * start + n_complete. */
	uint32_t n_complete;
	uint32_t db_size; /* db_size of the last commit frame, or 0 */
};

/* The page number of the pending-byte page for a page size: SQLite never
 * stores data in it. */
static inline uint32_t frames_pending_byte_page(uint32_t page_size)
{
	return 0x40000000u / page_size + 1;
}

/* Does page (page 1 of an image, GET /export) begin a SQLite database with
 * pages of page_size bytes? */
static inline int frames_is_database_page1(const uint8_t *page,
					   uint32_t page_size)
{
	return memcmp(page, "SQLite format 3", 16) == 0 &&
	       ((uint32_t)page[16] << 8 | page[17]) ==
		   (page_size == 65536 ? 1 : page_size);
}

/* Parse the 200 body of GET /sync/{G}/{start}/{end} with the given page
 * size (a power of two in 512..65536; 1 <= start < end).  The frames point
 * into body, which must outlive *out.  Returns 0, or -1 with err naming the
 * problem (empty body, length not a multiple of the frame size, page number
 * 0 or the pending-byte page, more frames than asked for); *out is set only
 * on success. */
int frames_parse(const void *body, size_t len, uint32_t page_size,
		 uint32_t start, uint32_t end, struct frames_batch *out,
		 char *err, size_t err_len);
void frames_batch_free(struct frames_batch *b);

/* Verified transfers (ext).  With every 200 answer to GET /sync the primary
 * sends the header
 *
 *   X-Replite-Chain: <e>-<salt1>-<salt2>-<c1>-<c2>
 *
 * (e: 1 when the checksums are over big-endian words, as bit 0 of the WAL
 * magic says; the rest 8 hex digits each): the salts of its frame log and
 * the WAL checksum chain right before the first frame of the body (after
 * frame start - 1, or the log header's checksum for frame 1).  The frames
 * of the body carry the log's salts and chained checksums exactly as the
 * primary wrote them (SQLite's WAL algorithm over the first 8 bytes of each
 * frame header and its page), so the replica can check every byte of the
 * body before it applies any of it: a damaged page number, commit size or
 * page byte breaks the chain.  libSQL clients ignore the header. */
#define FRAMES_CHAIN_HEADER "X-Replite-Chain"
#define FRAMES_CHAIN_TEXT_SIZE 48

struct frames_chain {
	int big_endian;
	uint32_t salt[2];
	uint32_t cksum[2];
};

void frames_chain_format(const struct frames_chain *c,
			 char out[FRAMES_CHAIN_TEXT_SIZE]);
/* Returns 0, or -1 when text is not a chain header. */
int frames_chain_parse(const char *text, struct frames_chain *out);

/* Check the frames of a GET /sync body (start = number of its first frame)
 * against the chain the header announced.  Returns 0, or -1 with err naming
 * the first frame that fails (damaged in transit, or not the primary's). */
int frames_verify(const void *body, size_t len, uint32_t page_size,
		  uint32_t start, const struct frames_chain *chain, char *err,
		  size_t err_len);

/* Frame frame_no of a pull of [start, end), taken as the body arrives
 * (a streamed bootstrap): what frames_parse and frames_verify check of it,
 * its place in the pull, its page number, and that it continues *chain,
 * which it then advances.  Fills *out (out->page points into frame).
 * Returns 0; 1 with err when the frame breaks the chain (damaged in
 * transit); -1 with err when the pull is wrong (more frames than asked
 * for, a page number that cannot hold data). */
int frames_check_frame(const uint8_t *frame, uint32_t page_size,
		       uint32_t frame_no, uint32_t start, uint32_t end,
		       struct frames_chain *chain, struct frames_frame *out,
		       char *err, size_t err_len);

/* With the 200 answer to GET /export/{G}, the primary sends
 *
 *   X-Replite-Checksum: <16 hex digits>
 *
 * the whole-database checksum (base/dbsum.h) of the image, which the replica
 * recomputes before applying it. */
#define FRAMES_CHECKSUM_HEADER "X-Replite-Checksum"

/* With a 200 answer to GET /sync of the current generation, the primary also
 * sends
 *
 *   X-Replite-Checksum-At: <frame>-<16 hex digits>
 *
 * the whole-database checksum after the last commit frame of the body,
 * which a replica compares with the checksum it computes after applying
 * that frame: a difference means its file differs from the primary's. */
#define FRAMES_CHECKSUM_AT_HEADER "X-Replite-Checksum-At"

/* With frames that do not reach the primary's head:
 *
 *   X-Replite-Behind-Since: <Unix ms>
 *
 * when the oldest commit after the body's last frame became durable on the
 * primary: a replica that has applied the body is behind since then (its
 * lag_ms).  Absent when the body reaches the head. */
#define FRAMES_BEHIND_SINCE_HEADER "X-Replite-Behind-Since"

/* Squashed catch-up (ext): GET /sync/{G}/{start}/{end}?squash=1 may be
 * answered with
 *
 *   X-Replite-Squashed: <span>
 *
 * and a body that stands for frames [start, start + span) of the log: each
 * page they change once, with its image after frame start + span - 1 (a
 * commit frame), as one transaction (only its last frame is a commit frame,
 * with that frame's database size), carrying the log's salts and a
 * checksum chain computed afresh from X-Replite-Chain's.  Without the
 * header the body is plain frames. */
#define FRAMES_SQUASHED_HEADER "X-Replite-Squashed"

/* Sent by replite replicas with every request: a random id per replica
 * per process (16 hex digits), so that the primary can tell replicas apart
 * in its access log and in /metrics (their lag). */
#define FRAMES_REPLICA_HEADER "X-Replite-Replica"

/* Idempotent pushes (ext): a replite replica names each transaction it
 * pushes with a random 128-bit id, sent as ?txn=<32 hex digits> with every
 * request of the push, so the primary recognises the transaction when it is
 * sent again and answers it as committed (server/push_log.h). */
#define FRAMES_TXN_ID_SIZE 16
#define FRAMES_TXN_ID_TEXT_SIZE (2 * FRAMES_TXN_ID_SIZE + 1)

void frames_txn_id_format(const uint8_t id[FRAMES_TXN_ID_SIZE],
			  char out[FRAMES_TXN_ID_TEXT_SIZE]);
/* Exactly 32 hex digits.  Returns 0, or -1. */
int frames_txn_id_parse(const char *text, uint8_t id[FRAMES_TXN_ID_SIZE]);

/* The body of POST /sync/{G}/{start}/{end}: n frames, each a 24-byte
 * big-endian header (page number; on the last frame of a transaction,
 * commit_size, else 0; salts and checksums zero: the primary recomputes
 * them) and the page.  out holds n * (24 + page_size) bytes. */
void frames_encode(const struct wal_page *pages, uint32_t n,
		   uint32_t commit_size, uint32_t page_size, uint8_t *out);

#endif
