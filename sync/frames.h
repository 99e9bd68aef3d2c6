/* The replica's codec for the bodies of the HTTP sync protocol (DESIGN.md
 * §5, notes/libsql-protocols.md "HTTP sync protocol"):
 *
 *   GET /sync/{G}/{start}/{end} 200: concatenated frames, each a 24-byte
 *     big-endian WAL frame header (pgno, db_size, salts, checksums) and a
 *     page.  Only pgno and db_size matter: the salts and checksums are the
 *     primary's and are recomputed locally by the injector.
 *   GET /sync/... 400 {"generation": N}: no frames at start; N is the
 *     generation to continue with (the same one: caught up; the next one:
 *     the requested generation has ended).
 *   GET /info 200 {"current_generation": G, "database_id": "...",
 *     "max_frame_no": N, "oldest_generation": O}.
 *
 * Every failure is reported as text naming what was wrong with the answer
 * of the primary. */
#ifndef REPLITE_FRAMES_H
#define REPLITE_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "vfs/wal_inject.h" /* struct wal_page */

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

struct frames_info {
	uint32_t current_generation; /* >= 1 */
	char *database_id;           /* malloc'd; NULL if not reported */
	int has_max_frame_no;
	uint32_t max_frame_no;      /* when has_max_frame_no */
	uint32_t oldest_generation; /* 0 if not reported */
};

/* Parse the 200 body of GET /info.  Returns 0, or -1 with err; *out is set
 * only on success (release with frames_info_free). */
int frames_parse_info(const void *body, size_t len, struct frames_info *out,
		      char *err, size_t err_len);
void frames_info_free(struct frames_info *info);

/* Parse the 400 body of a pull that found no frames: {"generation": N}
 * with N >= 1.  When the body has no generation (another 400 or an error
 * of the primary) err carries the primary's message if it gave one.
 * Returns 0, or -1 with err. */
int frames_parse_generation(const void *body, size_t len, uint32_t *generation,
			    char *err, size_t err_len);

/* The body of POST /sync/{G}/{start}/{end}: n frames, each a 24-byte
 * big-endian header (page number; on the last frame of a transaction,
 * commit_size, else 0; salts and checksums zero: the primary recomputes
 * them) and the page.  out holds n * (24 + page_size) bytes. */
void frames_encode(const struct wal_page *pages, uint32_t n,
		   uint32_t commit_size, uint32_t page_size, uint8_t *out);

/* The 200 answer to a push: {"status": "ok"|"conflict", "generation": G,
 * "max_frame_no": N, "baton": "..."|null}. */
struct frames_push_reply {
	int conflict;
	uint32_t generation;
	uint32_t max_frame_no;
	char *baton; /* malloc'd, NULL when none */
};
int frames_parse_push_reply(const void *body, size_t len,
			    struct frames_push_reply *out, char *err,
			    size_t err_len);
void frames_push_reply_free(struct frames_push_reply *r);

#endif
