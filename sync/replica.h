/* One replicated database in this process: its options, its applier
 * (internal connection), its puller and the sync thread that drives them:
 * periodic (sync_interval), live (long-polls the primary so that a commit
 * there shows here within milliseconds) and on demand (replica_sync).  The
 * replica VFS keeps one per database path, shared by every connection of
 * the process that opens the path. */
#ifndef REPLITE_REPLICA_H
#define REPLITE_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

#include "sync/replica_options.h"
#include "wal/wal_inject.h" /* struct wal_page, struct wal_position */

struct replica;

/* Open the replica of the database at db_path (a full path) with options p
 * (copied), its internal connection going through the VFS root_vfs.  A file
 * with no state file must hold no data; one that has never synced is
 * bootstrapped before this returns.  Returns 0, or -1 with err naming the
 * cause (nothing started then). */
int replica_open(const char *db_path, const struct replica_options *p,
		 sqlite3_vfs *root_vfs, struct replica **out, char *err,
		 size_t err_len);

/* Stop the sync thread (interrupting a request in flight) and close. */
void replica_close(struct replica *r);

/* Pull until caught up with the primary, through the sync thread.  Returns
 * 0 with the primary frame number now applied, or -1 with err. */
int replica_sync(struct replica *r, uint32_t *frame_no, char *err,
		 size_t err_len);

/* PRAGMA replite_verify: catch up, read every page of the local file and
 * compare its whole-database checksum with the primary's at the same
 * position (and with the one the state records).  Returns the JSON
 * {"match": bool, "generation", "frame_no", "local", "recorded",
 * "primary"[, "error"]} (sqlite3_malloc'd), or NULL with err when it could
 * not be computed. */
char *replica_verify_json(struct replica *r, char *err, size_t err_len);

/* The JSON of PRAGMA replite_status (DESIGN.md §2), sqlite3_malloc'd. */
char *replica_status_json(struct replica *r);

/* The write path (DESIGN.md §3), called by the replica VFS from the
 * writing connection's thread.
 *
 * replica_begin_write: the connection takes the WAL write lock.  Returns
 * SQLITE_OK (after catching up with the primary unless a live sync shows the
 * file is current), SQLITE_READONLY (read-only token) or SQLITE_IOERR_WRITE
 * (the catch-up failed; the cause is in the status' last_error).
 *
 * replica_commit: the transaction's commit frame is about to be written;
 * pages are its final page images.  Pushes them to the primary and returns
 * SQLITE_OK (applied there: let the commit proceed), SQLITE_BUSY_SNAPSHOT
 * (another writer was first), SQLITE_READONLY or SQLITE_IOERR_WRITE.
 *
 * replica_write_unlocking: the write lock is about to be released; records
 * the new position when the pushed commit was published locally at pos.
 *
 * replica_write_unlocked: the lock was released; after a lost push, applies
 * the frames that won, so that the application's retry succeeds. */
int replica_begin_write(struct replica *r);
/* The same, asked with the write lock already taken: SQLITE_NOTFOUND when
 * it needs the lock free (an online replica may catch up first). */
int replica_begin_write_held(struct replica *r);
/* read_your_writes: is a pushed commit visible locally at once (else at
 * the next sync)? */
int replica_reads_own_writes(const struct replica *r);
int replica_commit(struct replica *r, const struct wal_page *pages, size_t n,
		   uint32_t db_size);
void replica_write_unlocking(struct replica *r, int committed, int published,
			     const struct wal_position *pos);
void replica_write_unlocked(struct replica *r);

/* May another connection of the process open r's file with as_of want
 * (kind AS_OF_NONE: as a live replica)?  As at open (a live replica never
 * as an as-of one, and the reverse; an as-of replica only with an as_of
 * naming its state): 0, or -1 with err. */
int replica_check_as_of(struct replica *r, const struct as_of *want, char *err,
			size_t err_len);

/* May a connection opened with key (NULL: none) share the replica?  Only
 * with the same key text as the first, or without a key on a replica
 * without one: 0, or -1 with err. */
int replica_check_key(struct replica *r, const char *key, char *err,
		      size_t err_len);
/* Is the replica encrypted at rest? */
int replica_encrypted(const struct replica *r);

/* The sync URL in use (normalised). */
const char *replica_sync_url(const struct replica *r);
/* The database file's path. */
const char *replica_db_path(const struct replica *r);

/* Offline mode.  SQLite is about to sync the WAL after a commit: the
 * commit's outbox record first (an SQLite code). */
int replica_offline_wal_sync(struct replica *r);
/* replite_conflicts(): the conflict records as a JSON array text
 * (sqlite3_malloc'd), or NULL with err. */
char *replica_conflicts_json(struct replica *r, char *err, size_t err_len);
/* replite_conflicts_clear(): remove them; *cleared says how many. */
int replica_conflicts_clear(struct replica *r, uint64_t *cleared, char *err,
			    size_t err_len);

#endif
