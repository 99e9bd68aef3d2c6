/* The WAL observer: a VFS shim (in the style of SQLite's cksumvfs.c) that
 * wraps the default VFS, forwards every method, and watches the WAL writes of
 * each connection.  When a write transaction's commit frame is about to reach
 * the WAL, it hands the transaction's final page images to a hook *before*
 * the commit frame is written, so the hook can make the transaction durable
 * elsewhere (the primary's frame log) or refuse it (the replica's push).
 * See shared/notes/wal-injection.md §4 for how SQLite writes frames. */
#ifndef REPLITE_WAL_OBSERVER_H
#define REPLITE_WAL_OBSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

#include "wal/wal_inject.h" /* struct wal_page, struct wal_position */

/* before_wal_sync: the commit is durable without syncing the WAL. */
#define WAL_OBSERVER_SYNC_DONE (-1)

struct wal_observer_hooks {
	/* In every hook, ctx is what on_open_main gave the main file (NULL
	 * without on_open_main, or for files it did not see). */

	/* The commit frame of a write transaction on main_path is about to be
	 * written.  pages (sorted by pgno, one per page, pgno <= db_size)
	 * hold the last image of every page the transaction wrote.  Return
	 * SQLITE_OK to let the commit proceed, or an error code that the
	 * commit frame's xWrite returns instead (nothing of the commit frame
	 * reaches the WAL then, so neither readers nor crash recovery can
	 * see the transaction). */
	int (*on_commit)(void *arg, void *ctx, const char *main_path,
			 const struct wal_page *pages, size_t n_pages,
			 uint32_t db_size);
	/* Asked after on_commit accepted a transaction (main files with a
	 * ctx): return 1 to keep the commit private, i.e. not visible in the
	 * local database: it is written to the WAL but withdrawn from the
	 * wal-index before the write lock is released, and no reader can
	 * start on it meanwhile (the replica's read_your_writes=0).  May be
	 * NULL. */
	int (*commit_is_private)(void *arg, void *ctx);
	/* A write lock is about to be released (main files with a ctx only),
	 * while the writer still holds it: committed says whether on_commit
	 * accepted a transaction, pos is the WAL position published in the
	 * wal-index now, and published whether it includes that commit. */
	void (*before_write_unlock)(void *arg, void *ctx, int committed,
				    int published,
				    const struct wal_position *pos);
	/* The write lock of a transaction that passed on_commit was released;
	 * published says whether the commit reached the wal-index (false when
	 * SQLite failed after on_commit accepted it). */
	void (*on_commit_end)(void *arg, void *ctx, const char *main_path,
			      int published);
	/* Any write lock taken through this VFS was released (after
	 * on_commit_end, committed or not), e.g. to wake waiting writers.
	 * May be NULL. */
	void (*on_write_unlock)(void *arg, void *ctx);
	/* SQLite is about to sync the WAL after a commit frame that
	 * on_commit accepted (synchronous=FULL or EXTRA; main files with a
	 * ctx): what on_commit wrote elsewhere must be as durable as the
	 * commit before the commit is.  Return SQLITE_OK (the WAL is synced),
	 * WAL_OBSERVER_SYNC_DONE (the hook made the commit durable by other
	 * means, e.g. a redo record that recovery re-applies: the WAL is not
	 * synced now, and xSync reports success), or the code the sync fails
	 * with.  May be NULL. */
	int (*before_wal_sync)(void *arg, void *ctx);
	void *arg;

	/* Optional hooks that manage main database files (all may be NULL).
	 *
	 * A named main database is being opened: return SQLITE_OK with *ctx
	 * (kept with the file and given to the hooks below), or an error
	 * with *errmsg (sqlite3_malloc'd, may be NULL).  On error the handle
	 * is still opened, as a failed file: it reads as empty and fails
	 * every lock, write and pragma with SQLITE_CANTOPEN, and
	 * wal_observer_open_error() gives the reason (SQLite has no way for
	 * xOpen to report a message). */
	int (*on_open_main)(void *arg, sqlite3_filename name, void **ctx,
			    char **errmsg);
	/* The main file opened with ctx was closed.  The hooks below are
	 * called only for main files with a non-NULL ctx. */
	void (*on_close_main)(void *arg, void *ctx);
	/* A connection begins a write transaction on the main file (takes
	 * the WAL write lock while holding a read lock, not checkpointing),
	 * and the lock is free (while another writer holds it, the request
	 * fails with SQLITE_BUSY without calling the hook).  Called before
	 * the lock is taken: return SQLITE_OK to let it, or the code the lock
	 * request fails with (SQLITE_READONLY: "attempt to write a readonly
	 * database"; SQLITE_BUSY: SQLite's busy handler retries). */
	int (*on_begin_write)(void *arg, void *ctx);
	/* Optional, asked first, with the write lock already taken: return
	 * SQLITE_OK to keep it (on_begin_write is not called), an error to
	 * release it and fail the request with that code, or
	 * SQLITE_NOTFOUND to release it and call on_begin_write (which may
	 * need the lock free). */
	int (*begin_write_held)(void *arg, void *ctx);
	/* SQLITE_FCNTL_PRAGMA on the main file (azArg as SQLite documents
	 * it): return SQLITE_NOTFOUND to let the pragma through. */
	int (*on_pragma)(void *arg, void *ctx, char **azArg);
};

/* Register a shim VFS named name over the current default VFS (not as the
 * default).  The hooks are copied.  Returns an SQLite code. */
int wal_observer_register(const char *name,
			  const struct wal_observer_hooks *hooks,
			  sqlite3_vfs **out);
/* The same over root (another shim, e.g. the primary's live overlay),
 * which must outlive it. */
int wal_observer_register_over(const char *name,
			       const struct wal_observer_hooks *hooks,
			       sqlite3_vfs *root, sqlite3_vfs **out);
/* Unregister and free a VFS from wal_observer_register; no connection may
 * still use it. */
void wal_observer_unregister(sqlite3_vfs *vfs);

/* The underlying file of a handle opened through an observer VFS (for the
 * injector, whose writes must not be observed).  Other handles are returned
 * unchanged. */
sqlite3_file *wal_observer_unwrap(sqlite3_file *f);

/* For a main file opened through an observer VFS: the ctx on_open_main gave
 * it, and the reason its open failed (NULL when it did not).  Other
 * handles: NULL. */
void *wal_observer_ctx(sqlite3_file *f);
const char *wal_observer_open_error(sqlite3_file *f);

#endif
