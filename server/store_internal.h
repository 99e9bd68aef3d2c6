/* The store's parts, shared by the files that implement it (store.h is the
 * interface):
 *
 *   store.c          the object: open/close, accessors, pull, export, the
 *                    maintenance tick
 *   store_capture.c  capture of SQL commits: the observer VFS's hooks append
 *                    each transaction to the log before it commits, and
 *                    the connections to the live database
 *   store_push.c     validation and application of pushed frames, and the
 *                    pending pushes that wait for their commit frame
 *   store_gen.c      generations: the first one (new or imported), loading
 *                    them, rollover, retention
 *   store_recover.c  start-up: the database id, and bringing the live
 *                    database up to the log's head
 *   store_durable.c  group commit: commits are written to the log under
 *                    the write lock and made durable together, before
 *                    anyone is told of them
 *
 * Locking: mu guards gens, pending, failed and the listener; the live
 * database's WAL write lock (BEGIN IMMEDIATE on the internal connection, or
 * any SQL writer's commit) serialises everything that appends to the log or
 * changes the current generation. */
#ifndef REPLITE_STORE_INTERNAL_H
#define REPLITE_STORE_INTERNAL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "commit_times.h"
#include "frame_log.h"
#include "live_overlay.h"
#include "metrics.h"
#include "push_log.h"
#include "time_log.h"
#include "wal/page_view.h"
#include "store_map.h"
#include "store.h"
#include "wal/wal_inject.h" /* struct wal_page */
#include "wal/walfmt.h"

#define GEN_DIR_FMT "gen-%08" PRIu32
#define PENDING_BYTE_PAGE (0x40000000u / WALFMT_PAGE_SIZE + 1)

struct generation {
	uint32_t number;
	char *dir;
	struct frame_log *log;
	int64_t ended_ms; /* 0 while current */
	/* The checksum of base.db (immutable), computed at its first
	 * export; guarded by the store's mu. */
	int have_base_sum;
	uint64_t base_sum;
	/* base.db.zst, its compressed copy (store_zstd.c): 0 not made yet,
	 * 1 complete, 2 complete but hardly smaller (the image is sent
	 * plain), -1 failed (not tried again); guarded by mu. */
	int have_base_zst;
	/* The transactions pushed with an id in this generation. */
	struct push_log *pushes;
	/* When each of its commits was made (time_log.h). */
	struct time_log *times;
	/* The previous generation's last frame, which this one's base
	 * includes; 0 when unknown (the first generation, or the previous
	 * one was gone at start-up).  Kept here because retention may drop
	 * the previous generation while this one is still empty. */
	uint32_t prev_end;
};

/* Frames of a multi-request push that are not yet followed by a commit. */
struct pending_push {
	char *baton;
	uint32_t gen;
	uint32_t first; /* frame number of frames[0] */
	uint32_t next;  /* frame number the next request must start at */
	unsigned flags; /* enum store_push_flags */
	uint8_t *frames;
	size_t len;
	uint32_t last_start; /* where the last request began (a resend) */
	int64_t used_ms;
	struct pending_push *next_push;
};

/* The whole-database checksum of the head and after each commit frame of
 * the current generation (store_sum.c). */
struct store_sum_undo {
	uint32_t pgno;
	uint64_t term;
};
struct store_sum {
	uint64_t *terms; /* terms[p - 1]: page p's term in the head state */
	uint32_t n_pages;
	uint32_t cap;
	uint64_t sum;  /* of the head state */
	uint64_t base; /* at the start of the current generation */
	/* at[f - 1]: after frame f, when it is a commit frame (else 0);
	 * guarded by mu. */
	uint64_t *at;
	size_t n_at, cap_at;
	/* What the last store_sum_apply changed, for store_sum_undo. */
	struct store_sum_undo *undo;
	size_t n_undo, cap_undo;
	uint32_t undo_n_pages;
	uint64_t undo_sum;
};

struct store {
	struct store_config cfg;
	char *data_dir;
	char *live_path;
	char *database_id;
	sqlite3_vfs *vfs;
	/* A fork's live.db while it shares its base (live_overlay.h): the
	 * capture VFS's root; NULL for a live.db of its own. */
	struct live_overlay *overlay;

	/* mu guards gens, pending, failed and the listener. */
	pthread_mutex_t mu;
	struct generation **gens; /* ascending; the last one is current */
	size_t n_gens;
	struct pending_push *pending;
	char failed[512]; /* non-empty: writes are refused until restart */
	void (*listener)(void *arg);
	void *listener_arg;

	/* Writers waiting for the WAL write lock sleep on unlock_cond and
	 * are woken when it is released (unlock_seq advances), instead of
	 * SQLite's default busy handler sleeping up to 100 ms at a time,
	 * which starves the unlucky ones under contention. */
	pthread_mutex_t unlock_mu;
	pthread_cond_t unlock_cond;
	uint64_t unlock_seq;

	/* Group commit (store_durable.c): one thread at a time (syncing,
	 * under durable_mu) makes the log durable for everyone waiting on
	 * durable_cond; it holds leader_mu meanwhile, which retention takes
	 * before freeing a generation, so the log it syncs stays open.  Lock
	 * order: leader_mu, then mu. */
	pthread_mutex_t durable_mu;
	pthread_cond_t durable_cond;
	int syncing;
	pthread_mutex_t leader_mu;

	/* Updated under the live database's write lock; sum.at also read
	 * under mu. */
	struct store_sum sum;

	/* The internal connection, used for pushes and maintenance; its
	 * BEGIN IMMEDIATE is how they exclude SQL writers. */
	pthread_mutex_t internal_mu;
	sqlite3 *internal;

	/* What every page of the live database is (store_map.h), and the
	 * connection it reads pages through: its own, because it is used
	 * from whichever thread holds the WAL write lock, and the internal
	 * connection may be busy in another (waiting for that lock). */
	struct store_map *map;
	sqlite3 *reader;
	/* While a push's later transaction is checked: the pages its earlier
	 * ones write, which the map reads as the database before it. */
	const struct page_view_page *check_before;
	size_t n_check_before;
	int map_ahead; /* the map includes transactions not applied yet */

	/* The thread making a base.db.zst (store_zstd.c): running and done
	 * under mu; stop tells it the store is closing. */
	pthread_t zstd_thread;
	int zstd_running;
	int zstd_done;
	atomic_int zstd_stop;

	/* For /metrics (store_stats.c): commits that reached the log, the
	 * log's fdatasyncs, and when each durable head was reached (also
	 * for the lag a pull answer reports). */
	atomic_uint_fast64_t commits_sql;
	atomic_uint_fast64_t commits_pushed;
	struct metrics_histogram fsync;
	struct commit_times *times;

	/* How long ended generations are kept (store_retention.c): the
	 * database's own setting (retention_own) or the server's. */
	_Atomic int64_t retention_ms;
	atomic_int retention_own;
};

/* store.c */
void store_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct generation *store_current_locked(struct store *s);
struct generation *store_find_gen_locked(struct store *s, uint32_t number);
/* Tell the listener (long-polls) that the log or the generation changed,
 * and note when the durable head got where it is (for lag). */
void store_notify(struct store *s);
/* Refuse writes until restart, with the reason. */
void store_mark_failed(struct store *s, const char *why);

/* store_capture.c: register the observer VFS through which every
 * connection to the live database is opened (s->vfs). */
int store_capture_register(struct store *s, char *err, size_t n);

/* store_durable.c: fdatasync the current generation's frame log if
 * anything written is not synced there (pushed frames count as durable
 * through the push log before), then punch their copies out of the push
 * log.  The maintenance tick and a clean close call it. */
void store_sync_log(struct store *s);

/* store_push.c */
void store_push_expire(struct store *s);
void store_push_free_pending(struct pending_push *p);

/* Make generation g's commits durable: its time log first, then its frame
 * log, so that a commit durable in the log has its time durable too.
 * Returns 0 or -errno. */
static inline int store_gen_sync(struct generation *g)
{
	int rv = time_log_sync(g->times);

	return rv != 0 ? rv : frame_log_sync(g->log);
}

/* store_gen.c */
int store_exec_check(sqlite3 *db, const char *sql, const char *what, char *err,
		     size_t n);
int store_gen_create_first(struct store *s, char *err, size_t n);
int store_gen_load(struct store *s, char *err, size_t n);
int store_gen_add(struct store *s, uint32_t number, struct frame_log *log);
void store_gen_free(struct generation *g);
void store_remove_tree(const char *dir);
void store_gen_rollover(struct store *s);
/* Make the current generation's base.db.zst if it is missing (store_zstd.c;
 * the maintenance thread, no lock held). */
void store_zstd_prepare(struct store *s);
/* Stop and join that thread (store_close). */
void store_zstd_stop(struct store *s);
void store_gen_drop_expired(struct store *s);

/* store_sum.c.  store_sum_apply: the checksum after a transaction (pages,
 * the database size after it), applied to the head state; store_sum_undo
 * takes the last one back (a push refused, an append that failed).
 * store_sum_record_locked: the checksum after commit frame `frame`;
 * store_sum_at_locked: that of a frame (0: the generation's start), or -1
 * when unknown.  Callers of the _locked ones hold mu. */
int store_sum_init(struct store *s, char *err, size_t n);
/* gen_dir/base.terms (store_terms.c): the terms of the n_pages pages of a
 * base of base_size bytes; read returns 0 when the file has them, -1 when
 * it is missing or does not check. */
int store_terms_read(const char *gen_dir, uint64_t base_size, uint64_t *terms,
		     uint32_t n_pages);
void store_terms_write(const char *gen_dir, const uint64_t *terms,
		       uint32_t n_pages, uint64_t base_size);
void store_sum_free(struct store_sum *m);
int store_sum_apply(struct store_sum *m, const struct wal_page *pages, size_t n,
		    uint32_t db_size, uint64_t *result);
void store_sum_undo(struct store_sum *m);
int store_sum_record_locked(struct store_sum *m, uint32_t frame, uint64_t sum);
void store_sum_forget_locked(struct store_sum *m, uint32_t after);
int store_sum_at_locked(const struct store_sum *m, uint32_t frame,
			uint64_t *out);
void store_sum_new_generation_locked(struct store_sum *m);

/* store_check.c: may the pages of a push (the last image of each wins; the
 * database has db_size pages after it) replace the live database's?  Called
 * under the write lock.  Returns 0, or -1 with why naming the page. */
/* Open the page map (at start-up, after the live database is up to date).
 * Returns 0, or -1 with err. */
int store_check_init(struct store *s, char *err, size_t n);
void store_check_close(struct store *s);
/* A SQL commit (trusted: SQLite wrote it) updates the page map; one the map
 * cannot follow is logged and the map built again before the next push. */
void store_check_sql_commit(struct store *s, const struct wal_page *pages,
			    size_t n, uint32_t db_size);
/* After store_check_push accepted a push: it was applied, or not. */
void store_check_commit(struct store *s);
/* Tests (REPLITE_VERIFY_MAP=1): the map equals one built afresh. */
void store_check_verify(struct store *s);
void store_check_abort(struct store *s);
/* 0: the pushed pages leave the database sound (then store_check_commit or
 * store_check_abort); 1: they would not (why); -1: an error (why). */
int store_check_push(struct store *s, const struct wal_page *pages,
		     const uint32_t *sizes, size_t n, char *why,
		     size_t why_len);

/* store_times.c: the time log of a generation being built in dir, whose
 * base state began at unix_ms; at start-up, after its frame log is open,
 * cut a generation's time records past the log's head
 * (store_gen_times_cut), and once pushes are copied back, date the commits
 * the log holds without a record (store_gen_times_fill).  Each returns 0,
 * or -1 with err. */
int store_gen_times_start(const char *dir, int64_t unix_ms, char *err,
			  size_t n);
/* The time log of a generation being built in dir, holding records (frame
 * 0, the base's, first). */
int store_gen_times_write(const char *dir,
			  const struct time_log_record *records, size_t count,
			  char *err, size_t n);
int store_gen_times_cut(struct generation *g, char *err, size_t n);
int store_gen_times_fill(struct generation *g, char *err, size_t n);

/* store_retention.c: read the database's own retention, if it has one
 * (store_open).  Returns 0, or -1 with err. */
int store_retention_load(struct store *s, char *err, size_t n);

/* store_recover.c: write dir/database.json naming a new database id.
 * Returns 0, or -1 with err. */
int store_write_new_id(const char *dir, char *err, size_t n);

/* store_recover.c */
int store_recover_id(struct store *s, int *is_new, char *err, size_t n);
int store_recover_live(struct store *s, char *err, size_t n);

#endif
