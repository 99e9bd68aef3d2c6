/* The primary's storage for one database: a live SQLite database in WAL mode
 * (what SQL runs against) and a durable frame log organised in generations
 * (DESIGN.md §4).  The log is the source of truth: every transaction, SQL or
 * pushed, reaches the log before it becomes visible in the live database,
 * and is durable there (fsync, shared by concurrent commits: group commit,
 * store_make_durable) before anyone is told of it; start-up brings the live
 * database up to the log's durable head.
 *
 * Layout of data_dir:
 *   database.json        {"format": 1, "database_id": "<uuid>"}
 *   live.db (-wal, -shm) the live database
 *   gen-00000001/        generation 1: base.db (the database before its
 *                        first frame) and frames.log (frame_log.h)
 */
#ifndef REPLITE_STORE_H
#define REPLITE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "http_reply.h"
#include "proto/frames.h"
#include "wal/walfmt.h"

struct store;

struct store_config {
	const char *data_dir;
	const char *import_path;    /* seed a new database from this file */
	uint32_t generation_frames; /* roll over after this many frames */
	int64_t retention_ms;       /* keep ended generations this long */
	size_t max_push_bytes;      /* frames buffered per pending push */
	int push_expiry_ms;         /* pending push batons expire */
	/* > 0: keep the current generation's base compressed at this zstd
	 * level too (store_export_zstd) */
	int compression_level;
	/* Tests: called at each step of logging a pushed transaction that
	 * has an id (enum store_push_stage), under the write lock, e.g. to
	 * take a crash image of the data directory there. */
	void (*push_stage)(void *arg, struct store *s, int stage);
	void *push_stage_arg;
};

/* The steps of logging a pushed transaction (store_push.c, push_log.h). */
enum store_push_stage {
	STORE_PUSH_BEFORE_RECORD, /* earlier frames durable, nothing of it */
	STORE_PUSH_RECORDED,      /* its entry durable in the push log */
	STORE_PUSH_WRITTEN,       /* its frames written to the frame log */
};
/* Tests (crash images): the current generation's frame log's synced head
 * and its push log's size as the last fdatasync of each left them. */
void store_synced_marks(struct store *s, uint32_t *log_synced,
			uint64_t *pushes_synced);
/* Tests (crash images): the current generation's times.log's size as its
 * last fdatasync left it. */
uint64_t store_times_synced_size(struct store *s);

void store_config_defaults(struct store_config *cfg);

int store_open(const struct store_config *cfg, struct store **out, char *err,
	       size_t err_len);
void store_close(struct store *s);

/* Open a connection to the live database through the capturing VFS; the
 * signature matches streams_config.open_db. */
int store_open_conn(void *store, sqlite3 **db);

const char *store_database_id(struct store *s);
uint32_t store_generation(struct store *s);
uint32_t store_head(struct store *s); /* frames in the current generation */

/* Called (from any thread, with no store lock held) after every new commit
 * and generation change, e.g. to wake long-polls. */
void store_set_listener(struct store *s, void (*fn)(void *arg), void *arg);

/* GET /sync/{gen}/{start}/{end}. */
enum store_pull {
	STORE_PULL_FRAMES,      /* frames [start, *end) at fd/offset */
	STORE_PULL_CAUGHT_UP,   /* 400 {"generation": gen} */
	STORE_PULL_NEXT_GEN,    /* 400 {"generation": gen + 1} */
	STORE_PULL_UNKNOWN_GEN, /* 404, the generation is not retained */
	STORE_PULL_BAD_RANGE,   /* 400, start == 0 or end <= start */
};
struct store_frames {
	int fd; /* dup'd: the caller closes it */
	uint64_t offset;
	uint64_t len;
	uint32_t end; /* exclusive */
	/* The X-Replite-Chain header for these frames (proto/frames.h). */
	char chain[FRAMES_CHAIN_TEXT_SIZE];
	/* The checksum after the last commit frame among them, when known
	 * (frames of the current generation). */
	int has_checksum;
	uint32_t checksum_frame;
	uint64_t checksum;
};
enum store_pull store_pull(struct store *s, uint32_t gen, uint32_t start,
			   uint32_t end, struct store_frames *out);
/* GET /sync/{gen}/{start}/{end}?squash=1 (store_squash.c): the frames of
 * up to STORE_SQUASH_MAX_FRAMES transactions' worth squashed into one
 * transaction holding each page's last image (at most
 * STORE_SQUASH_MAX_PAGES pages), standing for frames [start, start +
 * *span); *span is 0 when squashing would not save a tenth of the frames,
 * and the answer is then store_pull's for at most STORE_SQUASH_PLAIN_FRAMES
 * frames.  out->fd is then a memfd with the body (offset 0). */
#define STORE_SQUASH_MAX_FRAMES 16384
#define STORE_SQUASH_MAX_PAGES 4096
#define STORE_SQUASH_PLAIN_FRAMES 4096
enum store_pull store_pull_squashed(struct store *s, uint32_t gen,
				    uint32_t start, uint32_t end,
				    struct store_frames *out, uint32_t *span);

/* GET /export/{gen} to a client that accepts zstd: 0 with an fd and the
 * size of the generation's base compressed (a zstd frame decoding to
 * exactly what store_export sends); 1 when the image hardly compresses (send
 * it plain); -1 while there is no such copy (not made yet, compression_level
 * 0, or the generation is not retained): compress as it is sent. */
int store_export_zstd(struct store *s, uint32_t gen, int *fd, uint64_t *size);

/* GET /export/{gen}: an fd (dup'd), the size and the whole-database
 * checksum (base/dbsum.h) of the generation's base, or -1 if the generation
 * is not retained (or its base cannot be read). */
int store_export(struct store *s, uint32_t gen, int *fd, uint64_t *size,
		 uint64_t *checksum);

/* Pages of one state, for Turso Sync's pull (store_pages.c): the state
 * after the current generation's durable head when opened, as a full
 * image (since_gen 0) or the pages changed after frame `since` of
 * generation since_gen (across generations still retained).  Pages are
 * read later, as the answer streams, from files held open: the state
 * cannot change underneath.  Returns 0 with *out; 1 when (since_gen,
 * since) is past the head (from the future); 2 when the increment cannot
 * be resolved (a generation no longer retained, or too many): ask for the
 * full image; -1 on I/O or memory failure. */
struct store_pages;
int store_pages_open(struct store *s, uint32_t since_gen, uint32_t since,
		     struct store_pages **out);
struct store_point;
/* The whole image of state `at` (store_locate_*; a backup): 0, or -1 when
 * its generation is gone. */
int store_pages_open_at(struct store *s, const struct store_point *at,
			struct store_pages **out);
void store_pages_close(struct store_pages *p);
uint32_t store_pages_generation(const struct store_pages *p);
uint32_t store_pages_frame(const struct store_pages *p);
uint32_t store_pages_db_size(const struct store_pages *p); /* in pages */
uint32_t store_pages_count(const struct store_pages *p);
/* The i-th page (ascending page numbers, 1-based), and its bytes. */
uint32_t store_pages_pgno(const struct store_pages *p, uint32_t i);
int store_pages_read(const struct store_pages *p, uint32_t i,
		     uint8_t page[WALFMT_PAGE_SIZE]);

/* Point-in-time restore (store_times.c, time_log.h).  A state of the
 * database: the one after commit frame `frame` of generation `generation`
 * (0: its base), made at unix_ms. */
struct store_point {
	uint32_t generation;
	uint32_t frame;
	int64_t unix_ms;
};
/* The state as of unix_ms: after the last commit made at or before it.
 * Returns 0, or -1 with err naming why (in the future; before the oldest
 * state retained, which it names). */
int store_locate_time(struct store *s, int64_t unix_ms, struct store_point *out,
		      char *err, size_t n);
/* The state after frame `frame` of generation gen (0: its base), which
 * must be a durable commit frame of a retained generation.  Returns 0, or
 * -1 with err. */
int store_locate_frame(struct store *s, uint32_t gen, uint32_t frame,
		       struct store_point *out, char *err, size_t n);
/* When the oldest state retained began (Unix ms). */
int64_t store_restorable_since(struct store *s);

/* Retention (store_retention.c): set the database's own (ms >= 0, kept
 * durably in its directory) or go back to the server's default (ms < 0).
 * Returns 0, or -1 with err. */
int store_set_retention(struct store *s, int64_t ms, char *err, size_t n);
/* The same for the data directory of a store not open (a database being
 * built). */
int store_write_retention(const char *dir, int64_t ms, char *err, size_t n);
/* The retention in force, and whether it is the database's own. */
int64_t store_retention(struct store *s, int *own);

/* Build in dir (which must not exist) a new database whose state is
 * `at` of s (store_fork.c): a new database id, one generation whose
 * base.db is a hard link to the base of at's generation (a copy where a
 * link cannot be made) and whose log holds that generation's frames up to
 * at, with their commit times.  store_open on dir then builds the live
 * database.  Returns 0, or -1 with err (dir removed). */
int store_fork(struct store *s, const struct store_point *at, const char *dir,
	       char *err, size_t n);

/* How a push is to be taken (query arguments of POST /sync). */
enum store_push_flags {
	/* ?strict=1 (what replite replicas send): an identical re-push of
	 * frames already logged is never acknowledged, since another
	 * writer's transaction can have the same pages (two replicas
	 * incrementing the same counter from the same value) and
	 * acknowledging it would lose an update. */
	STORE_PUSH_STRICT = 1,
	/* ?rollover=1 (what replite replicas send): the client can follow a
	 * push logged in the next generation (see store_push). */
	STORE_PUSH_ROLLOVER = 2,
};

/* How a push is to be taken (POST /sync query parameters). */
struct store_push_opts {
	unsigned flags; /* enum store_push_flags */
	/* ?txn= (NULL: none): the transaction's id, FRAMES_TXN_ID_SIZE
	 * bytes: a transaction committed under it is answered as committed
	 * when it is sent again, whatever its range, and never applied twice
	 * (push_log.h). */
	const uint8_t *txn;
	/* ?base=, ?result= (ext): the whole-database checksums (base/dbsum.h)
	 * the pusher's copy had before the transaction and has after it.  A
	 * push whose base is not the checksum at the frame it follows, or
	 * whose result is not what applying it gives, is refused (400): it
	 * was built on a database that differs from the primary's. */
	int has_base, has_result;
	uint64_t base, result;
};

/* POST /sync/{gen}/{start}/{end}[/{baton}] (baton may be NULL).  A push
 * that starts at or before the head is a conflict, except, without
 * STORE_PUSH_STRICT, an identical re-push of frames already logged (a
 * libSQL client retrying a push whose answer it lost), which is
 * acknowledged.
 *
 * A push for a generation gen that has ended, starting right after its last
 * frame, is built on exactly the base of gen + 1; if gen + 1 is current and
 * nothing was logged in it yet, nothing was committed since the rollover,
 * so with STORE_PUSH_ROLLOVER it is logged as frames 1... of gen + 1 and
 * the answer is "ok" with that generation and its last frame there.  Only
 * when the push is one transaction (its commit frame is its last one), so
 * that the answer describes all of it.  Without the flag (libSQL clients,
 * whose local WAL numbering must stay the primary's) it is a conflict.
 *
 * opts also names the transaction (txn: sent again, it is answered as
 * committed) and the checksums it states (base, result: refused when
 * either does not match). */
void store_push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		const char *baton, const struct store_push_opts *opts,
		const uint8_t *body, size_t len, struct http_reply *reply);

/* Periodic work: roll over a full generation, checkpoint the live WAL,
 * drop generations past retention, expire pending pushes. */
void store_maintain(struct store *s);

/* The whole-database checksum after commit frame `frame` of generation gen
 * (0: its start): 0 with *out, or -1 when unknown (another generation than
 * the current one, past the head, not a commit frame). */
int store_checksum_at(struct store *s, uint32_t gen, uint32_t frame,
		      uint64_t *out);

/* Information for /info and logs. */
json_t *store_info(struct store *s);
/* The same describing state `at` (store_locate_*) instead of the head:
 * GET /info?as_of=... (ext), for as-of replicas.  Its generation and frame
 * as current_generation and max_frame_no, "as_of" its commit time, and the
 * checksum when the primary knows it (at a state of the current
 * generation). */
json_t *store_info_at(struct store *s, const struct store_point *at);

/* Numbers for /metrics (store_stats.c). */
struct store_stats {
	uint32_t generation; /* current */
	uint32_t head;       /* its durable head */
	uint32_t oldest_generation;
	uint32_t generations;    /* retained, the current one included */
	uint64_t commits_sql;    /* SQL transactions logged */
	uint64_t commits_pushed; /* pushed transactions logged */
	/* Bytes on disk: live.db, its WAL, and over the retained
	 * generations, their frame logs and bases (with compressed copies). */
	uint64_t live_bytes, live_wal_bytes, log_bytes, base_bytes;
	const struct metrics_histogram *fsync; /* the frame logs' fdatasyncs */
};
void store_stats(struct store *s, struct store_stats *out);
/* How far a replica at frame `frame` of generation gen (its last applied
 * frame, 0 at a generation's start) is behind: the Unix ms at which the
 * oldest commit after it became durable, or 0 when nothing is (it is
 * caught up); *frames (may be NULL): frames after it, over the generations
 * still retained. */
int64_t store_behind_since(struct store *s, uint32_t gen, uint32_t frame,
			   uint64_t *frames);

/* Group commit (store_durable.c): return once the log is durable up to
 * what it held when the call began.  Call it before any answer that may
 * show what SQL saw or wrote.  Returns 0, or -1 with the cause in err (the
 * log could not be made durable; the store refuses writes until restart). */
int store_make_durable(struct store *s, char *err, size_t n);

#endif
