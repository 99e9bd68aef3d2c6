/* The applier: the only code that changes a replica's content.  It owns a
 * long-lived internal connection to the local database, opened through the
 * VFS the replica VFS wraps (so the replica's refusal of local writes does
 * not apply to it), and publishes pulled pages with the WAL injector while
 * that connection holds the WAL write lock ("the sync lock").
 *
 * The state file is read and written only under that lock, with the
 * frame_no / frame_hwm protocol of DESIGN.md §3 "Crash safety": before a
 * batch's frames are written, frame_hwm is raised to the batch's end and
 * made durable; after the batch is durable and published, frame_no follows.
 * A batch must start right after frame_no (frames at or before it are
 * trimmed, never applied again) and end at or beyond frame_hwm, so the
 * result is exact whatever a crashed earlier attempt left in the file. */
#ifndef REPLITE_APPLIER_H
#define REPLITE_APPLIER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/frames.h"

#include "sync/outbox.h"
#include "sync/replica_state.h"
#include "wal/wal_inject.h"

struct applier;

/* Open the internal connection to db_path through the VFS vfs_name (NULL:
 * the default VFS), in WAL mode with pages of page_size bytes.  The caller
 * has checked that the file is a replica or empty (applier_file_is_empty);
 * opening turns an empty file into an empty WAL-mode database.  Returns 0,
 * or -1 with err. */
int applier_open(const char *db_path, const char *vfs_name, uint32_t page_size,
		 struct applier **out, char *err, size_t err_len);
void applier_close(struct applier *a);

/* Could the file at db_path (and its -wal) hold data of the user's, read
 * through the VFS vfs_name (NULL: the default; an encrypted file reads
 * through the cipher VFS)?  Returns 1 when it certainly holds none
 * (missing, zero bytes, or a single empty page 1 and no WAL frames), 0 when
 * it may, -1 with err when unreadable. */
int applier_file_is_empty(const char *db_path, const char *vfs_name, char *err,
			  size_t err_len);

/* The state file as it is now (read without the lock: it is replaced
 * atomically).  Returns 0, 1 when there is none, or -1 with err. */
int applier_load_state(struct applier *a, struct replica_state *st, char *err,
		       size_t err_len);
/* The same, read again only when the file was replaced since the last
 * call (a stat instead of a parse: the offline commit's path). */
int applier_load_state_cached(struct applier *a, struct replica_state *st,
			      char *err, size_t err_len);

enum applier_result {
	APPLIER_APPLIED,   /* published; *st holds the new state */
	APPLIER_STALE,     /* the file is already at or past the batch */
	APPLIER_NEED_MORE, /* the batch ends before st->frame_hwm */
	APPLIER_MOVED,     /* the state is in another generation, or needs a
			    * full image: pull again from *st */
	APPLIER_ERROR,     /* err says why; nothing was published */
};

/* Frames [first, first + n) of generation, whole transactions: the last
 * frame is a commit frame.  *st receives the state found or written (the
 * caller frees it). */
struct applier_frames {
	uint32_t generation;
	uint32_t first;
	const struct frames_frame *frames;
	uint32_t n;
	/* The frames of the primary's log the batch stands for, from first:
	 * n, or more for a squashed batch (proto/frames.h,
	 * FRAMES_SQUASHED_HEADER: each page once, one transaction), which is
	 * applied whole or not at all. */
	uint32_t span;
	/* The checksum the primary announced after frame expected_frame
	 * (X-Replite-Checksum-At), checked when it is the batch's last. */
	int has_expected;
	uint32_t expected_frame;
	uint64_t expected;
};
enum applier_result applier_apply_frames(struct applier *a,
					 const struct applier_frames *b,
					 struct replica_state *st, char *err,
					 size_t err_len);

/* A full image of the database at the start of generation (what GET
 * /export/{G} returns), applied as one batch that rewrites every page, so
 * that the result is exact whatever the file held.  Refused when there is
 * no state file and the file holds data (never overwrite the user's file).
 * Stale when the state file is already in generation or later and not
 * bootstrapping. */
struct applier_image {
	uint32_t generation;
	const char *database_id; /* the primary's, or NULL */
	const char *sync_url;
	const uint8_t *data;
	size_t len;       /* a multiple of the page size */
	int has_checksum; /* the image's checksum, verified */
	uint64_t checksum;
	/* The frame of the generation the image is at (0: its base; more
	 * when the puller laid the generation's frames over it). */
	uint32_t frame_no;
	/* An as-of replica's image (sync/replica_state.h): the state as of
	 * as_of_request, committed at as_of_unix_ms, recorded in the state
	 * file from the start of the bootstrap on.  The image is refused
	 * when the state file says otherwise (a live replica, or another
	 * as_of), and the result is not catching up: nothing follows. */
	int has_as_of;
	struct as_of as_of_request;
	int64_t as_of_unix_ms;
};
enum applier_result applier_apply_image(struct applier *a,
					const struct applier_image *img,
					struct replica_state *st, char *err,
					size_t err_len);

/* A new replica's image written into the file as it arrives
 * (applier_stream.c), instead of applied from memory: begin with what
 * img says of it (generation, database_id, sync_url; data unused).
 * APPLIER_APPLIED: the stream is open in *out and holds the sync lock
 * until finish or abort.  APPLIER_MOVED: the file is neither a new
 * replica nor one whose bootstrap was cut short with nothing published
 * (or it has an offline outbox): apply a whole image instead.  APPLIER_STALE:
 * the file is already past it.  APPLIER_ERROR: err says why. */
struct applier_stream;
enum applier_result applier_stream_begin(struct applier *a,
					 const struct applier_image *img,
					 struct applier_stream **out, char *err,
					 size_t err_len);
/* Page pgno of the result, in the order the primary's log has them (a
 * later one replaces an earlier one).  0, or -1 with err. */
int applier_stream_page(struct applier_stream *s, uint32_t pgno,
			const uint8_t *data, char *err, size_t err_len);
/* The database has n_pages pages from now on (the image's size, then each
 * commit's).  0, or -1 with err. */
int applier_stream_size(struct applier_stream *s, uint32_t n_pages, char *err,
			size_t err_len);
/* Check the result as written against expected (the primary's checksum at
 * frame_no of the generation; has_expected 0 when the primary announced
 * none for that frame: the result's own is recorded); on a match publish it
 * and record the state (*st; the caller frees it).  On a mismatch
 * (*mismatch set) or an error nothing is published.  The stream is closed
 * either way. */
enum applier_result applier_stream_finish(struct applier_stream *s,
					  uint32_t frame_no, int has_expected,
					  uint64_t expected, int *mismatch,
					  struct replica_state *st, char *err,
					  size_t err_len);
/* Close the stream without publishing anything; the state still says
 * bootstrapping.  NULL is a no-op. */
void applier_stream_abort(struct applier_stream *s);

/* The primary ended generation from at frame at (the file holds all of its
 * frames): continue with generation to, frame 0, whose base is the same
 * content, without applying anything. */
enum applier_result applier_next_generation(struct applier *a, uint32_t from,
					    uint32_t at, uint32_t to,
					    struct replica_state *st, char *err,
					    size_t err_len);

/* Record the primary's database id and sync URL in the state file (under the
 * lock), e.g. after the URL changed or an id was first reported. */
int applier_record_primary(struct applier *a, const char *database_id,
			   const char *sync_url, char *err, size_t err_len);

/* A local write transaction was pushed as frames start... of generation
 * and the primary logged it, its last frame being frame end of
 * logged_generation: generation itself, or generation + 1 when generation
 * had ended at frame start - 1 (then the transaction is frames 1..end of
 * the next one, whose base is the file's content before it).  Its commit
 * frame is about to reach the local WAL.  Move the state to
 * logged_generation (at frame 0) if needed and raise frame_hwm to end
 * first, so that after a crash the next batch covers it.  The caller's
 * connection holds the write lock.  Returns 0, or -1 with err when the
 * state moved (then the commit must not happen). */
int applier_commit_prepare(struct applier *a, uint32_t generation,
			   uint32_t start, uint32_t logged_generation,
			   uint32_t end, char *err, size_t err_len);
/* ... and it was published in the local WAL at pos: the file is at frame
 * end of generation (the logged one), with the given checksum when
 * has_checksum.  The caller's connection still holds the write lock. */
int applier_commit_done(struct applier *a, uint32_t generation, uint32_t end,
			const struct wal_position *pos, int has_checksum,
			uint64_t checksum, char *err, size_t err_len);

/* The checksum after a local write transaction (pages, db_size), from the
 * file's checksum base before it (sync/checksum.h), reading the old images
 * through a connection of the applier's own that is never in a transaction.
 * The caller holds the write lock.  Returns 0, or -1 with err. */
int applier_checksum_commit(struct applier *a, uint64_t base,
			    const struct wal_page *pages, size_t n,
			    uint32_t db_size, uint64_t *result, char *err,
			    size_t err_len);

/* The whole-database checksum of the local file, every page read, with the
 * state it was read at (in *st; release with replica_state_free), under the
 * write lock of a connection of its own.  Returns 0, or -1 with err. */
int applier_verify(struct applier *a, struct replica_state *st, uint64_t *local,
		   char *err, size_t err_len);

/* The primary said the file is caught up: clear the state's catching_up
 * flag (set when a full image is applied).  Returns 0, or -1 with err. */
int applier_caught_up(struct applier *a, char *err, size_t err_len);

/* The local file holds a state the primary does not have (it reports an
 * older position than the one applied): mark it for a full image, under the
 * lock.  Returns 0, or -1 with err. */
int applier_require_image(struct applier *a, char *err, size_t err_len);

/* BEGIN IMMEDIATE on another connection of the sync thread (db, on the
 * same file), waiting for the write lock as the sync lock does: retried
 * every millisecond, and offline writers let it through.  Returns 0, or
 * -1 with err. */
int applier_lock_begin_on(struct applier *a, sqlite3 *db, char *err,
			  size_t err_len);

/* Is a thread of this process waiting for the sync lock?  An offline
 * writer that would take the WAL write lock again at once lets it go
 * first (its busy handler retries), or pushes would starve. */
int applier_lock_wanted(struct applier *a);

/* ---------------------------------------------------------------------- */
/* offline mode (sync/applier_offline.c) */

/* Open the outbox of the file (sync/outbox.h): always with create, else
 * only when it exists (an online replica still pushes what an offline
 * session left).  Returns 0, or -1 with err. */
int applier_open_outbox(struct applier *a, int create, char *err,
			size_t err_len);

/* At open, under the lock: the pending records a power loss took from the
 * WAL are published again (sync/applier_recover.c).  Returns 0, or -1 with
 * err. */
int applier_recover_outbox(struct applier *a, char *err, size_t err_len);

/* The pending records (not yet acknowledged by the primary) of the state
 * st, and the pages they hold, read without the lock (a record being
 * written counts once it is whole).  0 when there is no outbox. */
int applier_pending_counts(struct applier *a, const struct replica_state *st,
			   uint64_t *txns, uint64_t *frames, char *err,
			   size_t err_len);

/* conflict=rebase (set once, before the first sync): a drop of pending
 * records writes their row changes to the rebase plan
 * (sync/rebase_plan.h) instead of recording them as discarded. */
void applier_set_rebase(struct applier *a, int rebase);

/* An encrypted replica (set once, right after applier_open, before the
 * outbox is opened): its outbox and rebase plan are sealed with c, which
 * the caller keeps until applier_close. */
void applier_set_cipher(struct applier *a, const struct cipher *c);

/* Under the write lock: were the transactions of the rebase plan (the
 * JSON array of its entries) dropped?  A crash between the plan and the
 * drop's publication leaves them pending, on top of the old state: the plan
 * is re-applied only after the drop.  Returns 1, 0, or -1 with err. */
int applier_rebase_dropped(struct applier *a, const json_t *plan, char *err,
			   size_t err_len);

/* Is a record with this id in the outbox?  The caller holds the write lock
 * (the re-application of a plan entry).  Returns 1, 0, or -1 with err. */
int applier_outbox_has(struct applier *a, const uint8_t id[16], char *err,
		       size_t err_len);

/* An offline commit: append the outbox record of the transaction (pages,
 * db_size, id) on top of the state st, before its commit frame is written.
 * The caller's connection holds the write lock.  *undo_at receives the
 * record's offset, for applier_offline_undo when the commit fails.
 * Returns 0, or -1 with err (the commit must then fail). */
int applier_offline_commit(struct applier *a, const struct replica_state *st,
			   const struct wal_page *pages, size_t n,
			   uint32_t db_size, const uint8_t id[16],
			   uint64_t *undo_at, char *err, size_t err_len);
/* Make the records appended so far durable (before SQLite syncs the WAL). */
int applier_offline_sync(struct applier *a, char *err, size_t err_len);
/* The record at at was committed (published in the WAL): the check of a
 * tail record whose writer may have died is not needed for it. */
void applier_offline_committed(struct applier *a, uint64_t at);
/* Remove the record at at and after (its commit did not happen). */
int applier_offline_undo(struct applier *a, uint64_t at, char *err,
			 size_t err_len);

/* The next push: the first pending records, up to APPLIER_PUSH_RECORDS of
 * them and APPLIER_PUSH_PAGES distinct pages, as ONE transaction (the last
 * image of each page, the size after the last, the checksum before the
 * first and after the last), to push as frames start... of generation.
 * Its id is the record's own for one record, else derived from the first
 * and last ids.  Which records a push holds is saved in the state before
 * it is sent ("batch", sync/replica_state.h): a push sent again, by this
 * process after a failure or a crash or by another process, holds exactly
 * the same records under the same id, so the primary answers it by the id
 * and nothing is applied twice. */
#define APPLIER_PUSH_RECORDS 1024
#define APPLIER_PUSH_PAGES 4096
struct applier_push {
	struct outbox_entry entry; /* the combined transaction's */
	uint8_t first_id[16], last_id[16];
	size_t n_records;
	int last; /* no record after them */
	uint32_t generation;
	uint32_t start;
	struct wal_page *pages; /* n pages up to entry.db_size */
	uint32_t n;
	uint8_t *images; /* the pages' data */
};
/* Under the lock: 1 with the first pending records in *p (release with
 * applier_push_free), 0 when none is pending (the outbox is emptied), 2
 * when they are waiting to be dropped (discard, or a full image is due)
 * or a rebase plan is being re-applied, -1 with err. */
int applier_next_push(struct applier *a, struct applier_push *p, char *err,
		      size_t err_len);
void applier_push_free(struct applier_push *p);
/* The primary logged p's transaction, its last frame being logged_head of
 * logged_generation: the state moves there, and the record is no longer
 * pending (when it still was: another process may have pushed it). */
int applier_pushed(struct applier *a, const struct applier_push *p,
		   uint32_t logged_generation, uint32_t logged_head, int save,
		   char *err, size_t err_len);
/* With save 0, applier_pushed may keep the new state in memory for the next
 * push of the run; this saves it (call it when the run ends, before any
 * other state change). */
int applier_push_flush(struct applier *a, char *err, size_t err_len);
/* The primary refused p's transaction (a conflict): the pending records
 * are dropped with the next batch applied (conflict=discard). */
int applier_push_lost(struct applier *a, char *err, size_t err_len);

/* Dropping the pending records with a batch (under the lock): the old
 * image of every page they changed, to publish under the batch's pages. */
struct applier_drop {
	size_t n_txns;
	uint8_t last_id[16];
	uint32_t base_db_size; /* the size before the first of them */
	int has_file_sum;      /* the file's checksum now (with them) */
	uint64_t file_sum;
	struct wal_page *pages; /* n, each page once */
	uint32_t n;
	uint8_t *images;
};
/* With the state st (loaded under the lock): 0 when nothing is pending, 1
 * with *d when records are pending and may be dropped (st->discard, or
 * reason given: then recorded with that reason), -1 with err (records are
 * pending and must be pushed first, or an error).  The dropped
 * transactions' row changes are first written to the rebase plan
 * (sync/rebase_plan.h): to re-apply (conflict=rebase) or to record as lost
 * (conflict=discard, with the reason). */
int applier_drop_prepare(struct applier *a, struct replica_state *st,
			 const char *reason, struct applier_drop *d, char *err,
			 size_t err_len);
/* After the batch was published: the state no longer lists them (the
 * caller saves it), then applier_drop_clear empties the outbox. */
void applier_drop_done(struct applier *a, struct replica_state *st,
		       const struct applier_drop *d);
void applier_drop_clear(struct applier *a);
void applier_drop_free(struct applier_drop *d);

/* Checkpoint the local WAL (injected frames never trigger SQLite's
 * auto-checkpoint).  truncate: also reset the WAL file to zero bytes when no
 * reader needs it.  *wal_frames (may be NULL) receives the frames left in
 * the WAL.  Returns 0, or -1 with err (readers in the way are no error). */
int applier_checkpoint(struct applier *a, int truncate, int *wal_frames,
		       char *err, size_t err_len);

#endif
