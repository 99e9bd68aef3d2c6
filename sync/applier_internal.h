/* The applier's state, shared by the files that implement it (applier.h is
 * the interface): applier.c (the internal connection, the sync lock and the
 * content changes of syncs) and applier_write.c (the state edits of the
 * write path, the checksums of local commits, replite_verify). */
#ifndef REPLITE_APPLIER_INTERNAL_H
#define REPLITE_APPLIER_INTERNAL_H

#include <pthread.h>

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

	/* The offline outbox (NULL when the file has none), and the list of
	 * its records as last scanned (applier_offline.c), under ob_mu:
	 * writers, the sync thread and status readers use it. */
	struct outbox *outbox;
	pthread_mutex_t ob_mu;
	struct outbox_entry *ob_entries;
	size_t ob_n;
	uint64_t ob_end;          /* where the next record goes */
	uint64_t ob_tail_checked; /* 1 + offset of the last record known to
				   * have committed, or 0 */
};

/* The sync lock: BEGIN IMMEDIATE on the internal connection (the WAL write
 * lock), and its release. */
int applier_lock_begin(struct applier *a, char *err, size_t err_len);
void applier_lock_end(struct applier *a);

/* Load the state under the lock, let edit change it (it returns 1 when it
 * did), and save it.  Returns 0, or -1 with err. */
int applier_edit_state(struct applier *a, int (*edit)(struct replica_state *),
		       char *err, size_t err_len);

/* Replace the state file with *st. */
int applier_state_save(struct applier *a, const struct replica_state *st,
		       char *err, size_t err_len);

#endif
