/* The applier's state, shared by the files that implement it (applier.h is
 * the interface): applier.c (the internal connection, the sync lock and the
 * content changes of syncs) and applier_write.c (the state edits of the
 * write path, the checksums of local commits, replite_verify). */
#ifndef REPLITE_APPLIER_INTERNAL_H
#define REPLITE_APPLIER_INTERNAL_H

#include "sync/applier.h"

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
};

/* Replace the state file with *st. */
int applier_state_save(struct applier *a, const struct replica_state *st,
		       char *err, size_t err_len);

#endif
