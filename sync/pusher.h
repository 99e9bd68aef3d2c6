/* The pusher: sends one local write transaction to the primary as frames
 * (POST /sync/{G}/{start}/{end}[/{baton}], DESIGN.md §5), in several
 * requests joined by a baton when it is large.  The primary applies it
 * atomically when the commit frame (the last) arrives, and only if start
 * follows its head (or the end of the generation it has just ended, see
 * struct pusher_logged): otherwise another writer got there first. */
#ifndef REPLITE_PUSHER_H
#define REPLITE_PUSHER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frames.h"
#include "sync/http_client.h"
#include "wal/wal_inject.h" /* struct wal_page */

enum pusher_result {
	PUSHER_OK,       /* applied: the primary's head is start + n - 1 */
	PUSHER_CONFLICT, /* another writer was first; nothing applied */
	PUSHER_DENIED,   /* the token may not write (HTTP 403) */
	PUSHER_DIVERGED, /* refused: the checksums show the local file is not
			  * the primary's (HTTP 400 PUSH_CHECKSUM_MISMATCH) */
	PUSHER_ERROR,    /* unreachable, timed out, refused: err says why */
};

struct pusher_txn {
	uint32_t generation;
	uint32_t start; /* the frame number of the first page */
	const struct wal_page *pages;
	uint32_t n;       /* >= 1 */
	uint32_t db_size; /* the database size after the transaction */
	uint32_t page_size;
	/* The transaction's random id, sent with every request (?txn=): a
	 * request sent again, by libcurl or by the retry below, is then
	 * answered as committed instead of applied twice or refused as a
	 * conflict (proto/frames.h). */
	uint8_t id[FRAMES_TXN_ID_SIZE];
	/* The whole-database checksums before and after (?base=, ?result=),
	 * when the replica knows them. */
	int has_sums;
	uint64_t base, result;
	/* Send no request again that got no answer: the caller tries the
	 * whole push again later (the sync thread's next round). */
	int once;
};

/* What the primary answered.  After PUSHER_OK: where the transaction was
 * logged, its last frame being frame head of generation; that is
 * t->generation, or t->generation + 1 when the primary had just ended
 * t->generation (at frame t->start - 1, with nothing committed since) and
 * logged the transaction as frames 1... of the next one (?rollover=1).
 * Otherwise the primary's generation and head when it said them. */
struct pusher_logged {
	uint32_t generation;
	uint32_t head;
};

/* Push t within timeout_ms in all.  A request that got no answer (the
 * connection failed or died) is sent again while time remains: with the
 * transaction's id that is safe. */
enum pusher_result pusher_push(struct http_client *http,
			       const struct pusher_txn *t, long timeout_ms,
			       struct pusher_logged *logged, char *err,
			       size_t err_len);

#endif
