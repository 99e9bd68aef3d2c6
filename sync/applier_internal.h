/* The applier's state, shared by the files that implement it (applier.h is
 * the interface): applier.c (the internal connection, the sync lock and the
 * content changes of syncs) and applier_write.c (the state edits of the
 * write path, the checksums of local commits, replite_verify). */
#ifndef REPLITE_APPLIER_INTERNAL_H
#define REPLITE_APPLIER_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>

#include "sync/state_file.h"
#include "sync/applier.h"
#include "sync/outbox.h"

/* How long BEGIN IMMEDIATE waits for another writer of the local file (a
 * sync of another process, a checkpoint) before the sync reports busy. */
#define APPLIER_BUSY_TIMEOUT_MS 10000

struct applier {
	sqlite3 *db;
	/* A second connection, never in a transaction, whose file handles
	 * writers use to read the old images of the pages they change
	 * (applier_checksum_commit): the internal one may be busy in the
	 * sync thread, waiting for the very write lock the writer holds. */
	sqlite3 *reader;
	char *vfs_name; /* the VFS the connections go through */
	char *db_path;
	char *state_path;
	uint32_t page_size;
	int lock_waiters; /* threads in applier_lock_begin (atomic) */
	/* conflict=rebase: dropped records are planned for re-application
	 * (applier_rebase.c), else for records of what was lost. */
	int rebase;
	/* An encrypted replica's cipher (the replica's, NULL when plain):
	 * the outbox and the rebase plan are sealed with it. */
	const struct cipher *cipher;

	/* The offline outbox (NULL when the file has none), and the list of
	 * its records as last scanned (applier_pending.c), under ob_mu:
	 * writers, the sync thread and status readers use it. */
	struct outbox *outbox;
	pthread_mutex_t ob_mu;
	struct outbox_entry *ob_entries;
	size_t ob_n;
	uint64_t ob_end; /* where the next record goes */
	/* The last record known to have committed (1 + its offset, or 0,
	 * and its id), and the last one appended by this process. */
	uint64_t ob_tail_checked;
	uint8_t ob_tail_id[16];
	uint64_t ob_appended_at;
	uint8_t ob_appended_id[16];
	/* first_pending's last answer for the pushed id fp_pushed: the
	 * index, or 0 with how many entries were searched (the last of them
	 * fp_last). */
	int fp_valid;
	uint8_t fp_pushed[16];
	size_t fp_index, fp_scanned;
	uint8_t fp_last[16];
	/* A run of pushes not saved yet (applier_offline.c): the state it
	 * leads to, and the file's state when it began. */
	/* The state file as last read by applier_load_state_cached, and
	 * its stamp then (under ob_mu). */
	int st_cached;
	struct state_file_stamp st_key;
	struct replica_state st_cache;
	int push_cached;
	struct replica_state push_st;
	struct replica_state push_file;
};

/* With no state file, the file must hold nothing of the user's: 0, or -1
 * with err (applier_image.c; under the lock). */
int applier_image_check_unclaimed(struct applier *a, char *err, size_t err_len);
/* May an image be written into the database file directly (readers see an
 * empty database from its page 1, and the WAL has no frame)?  Under the
 * lock (applier_image.c). */
int applier_image_can_bypass_wal(struct applier *a);
/* The internal connection's handle on the database file, to write an image
 * into it directly (applier_image.c, applier_stream.c), in writes of at
 * most APPLIER_RUN_BYTES (SQLite's unix VFS takes at most 128 KiB - 1 per
 * call).  NULL with err. */
#define APPLIER_RUN_BYTES 65536
sqlite3_file *applier_main_file(struct applier *a, char *err, size_t err_len);

/* May img replace the content of the file whose state is st (loaded under
 * the lock)?  Not when one is an as-of replica's and the other is not, or
 * of another as_of (applier_image.c): 0, or -1 with err. */
int applier_image_check_as_of(struct applier *a, const struct replica_state *st,
			      const struct applier_image *img, char *err,
			      size_t err_len);
/* Record img's as_of (or none) in st, a state being rebuilt for it. */
void applier_image_set_as_of(struct replica_state *st,
			     const struct applier_image *img);

/* The sync lock: BEGIN IMMEDIATE on the internal connection (the WAL write
 * lock), and its release. */
int applier_lock_begin(struct applier *a, char *err, size_t err_len);
void applier_lock_end(struct applier *a);

/* The first column of the first row of sql on the internal connection. */
int applier_query_int(struct applier *a, const char *sql, int64_t *out);

/* Publish pages (page 1 forced to say WAL mode) as one transaction of
 * db_size pages (wal/wal_inject.h), under the lock. */
int applier_inject(struct applier *a, struct wal_page *pages, size_t n,
		   uint32_t db_size, char *err, size_t err_len);

/* Record where the WAL stands in st (the divergence check). */
int applier_record_wal(struct applier *a, struct replica_state *st, char *err,
		       size_t err_len);

/* The pending records of st under the write lock (applier_pending.c):
 * [*first, a->ob_n) of the cache, the tail record checked.  Called with
 * ob_mu held. */
int applier_pending_locked(struct applier *a, const struct replica_state *st,
			   size_t *first, char *err, size_t err_len);

/* The same without the tail check (for applier_recover_outbox, which does
 * a complete one), and the mark that the last record is known to be in the
 * file.  Called with ob_mu held. */
int applier_pending_unchecked_locked(struct applier *a,
				     const struct replica_state *st,
				     size_t *first, char *err, size_t err_len);
void applier_tail_checked_locked(struct applier *a);

/* Write the rebase plan of the records [first, a->ob_n) about to be
 * dropped (applier_rebase.c), under the lock with ob_mu held: to re-apply
 * (discard NULL), or to record as lost for the reason discard.  Returns
 * 0, or -1 with err (the drop must not happen then). */
int applier_rebase_plan_locked(struct applier *a, size_t first,
			       const char *discard, char *err, size_t err_len);

/* Load the state under the lock, let edit change it (it returns 1 when it
 * did), and save it.  Returns 0, or -1 with err. */
int applier_edit_state(struct applier *a, int (*edit)(struct replica_state *),
		       char *err, size_t err_len);

/* Replace the state file with *st. */
int applier_state_save(struct applier *a, const struct replica_state *st,
		       char *err, size_t err_len);
/* Without waiting for the disk: only where frame_hwm, already durable,
 * covers what it records (replica_state_save_unsynced). */
int applier_state_save_unsynced(struct applier *a,
				const struct replica_state *st, char *err,
				size_t err_len);

#endif
