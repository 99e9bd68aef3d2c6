/* The WAL injector: publishes a batch of page images into the WAL of a live
 * SQLite database exactly as a SQLite writer would (frames with the local
 * salts and checksum chain, wal-index hash entries, then the two header
 * copies), so readers see all of the batch or none of it.  See
 * shared/notes/wal-injection.md. */
#ifndef REPLITE_WAL_INJECT_H
#define REPLITE_WAL_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

struct wal_page {
	uint32_t pgno;
	const uint8_t *data; /* page_size bytes */
};

/* Maps a file handle SQLite returned through SQLITE_FCNTL_FILE_POINTER /
 * SQLITE_FCNTL_JOURNAL_POINTER to the underlying handle, bypassing a VFS
 * shim's own interception.  NULL = identity. */
typedef sqlite3_file *(*wal_inject_unwrap_fn)(sqlite3_file *f);

struct wal_inject_opts {
	wal_inject_unwrap_fn unwrap;
	/* fsync the WAL before publishing (synchronous >= FULL); else the
	 * caller may wal_inject_sync after publishing */
	int sync;
	uint32_t page_size; /* bytes in each wal_page.data; 0 = 4096 */
};

/* Append pages as one transaction (the last image of a page wins; frames
 * whose pgno exceeds db_size are dropped) and publish it with db_size pages
 * as the new database size.
 *
 * Precondition: db is in a write transaction started with BEGIN IMMEDIATE on
 * its "main" schema that has modified nothing; the caller COMMITs afterwards
 * (which writes nothing and releases the WAL write lock).  The database must
 * be in WAL mode with opts->page_size pages (locking_mode=NORMAL).  pages
 * must hold at least one page of at most db_size (callers always include page
 * 1); page 0 and the pending-byte page are refused.  opts may be NULL.
 *
 * Returns SQLITE_OK, or an SQLite error code with *errmsg (sqlite3_malloc'd,
 * may be NULL) naming the cause.  On error no page of the batch is published
 * (the WAL may have been restarted, which changes no content). */
int wal_inject(sqlite3 *db, const struct wal_inject_opts *opts,
	       const struct wal_page *pages, size_t n_pages, uint32_t db_size,
	       char **errmsg);

/* Where the WAL stands: the last valid frame (mxFrame; 0 = empty, nothing
 * to read from it) and the salts of its header, which change whenever it
 * restarts.  A writer that is not the injector moves it. */
struct wal_position {
	uint32_t frames;
	uint32_t salt[2]; /* the header's salt bytes, in native order */
};

/* The position published in the wal-index, under the same precondition as
 * wal_inject (BEGIN IMMEDIATE on db, nothing modified), so that it cannot
 * move while read.  Returns SQLITE_OK or an error code with *errmsg. */
int wal_inject_position(sqlite3 *db, wal_inject_unwrap_fn unwrap,
			struct wal_position *out, char **errmsg);

/* fsync the WAL, under the same precondition: what was injected with
 * opts->sync = 0 and published is durable on SQLITE_OK (else an error code
 * with *errmsg). */
int wal_inject_sync(sqlite3 *db, wal_inject_unwrap_fn unwrap, char **errmsg);

#endif
