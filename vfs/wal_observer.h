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

#include <sqlite3.h>

#include "vfs/wal_inject.h" /* struct wal_page */

struct wal_observer_hooks {
	/* The commit frame of a write transaction on main_path is about to be
	 * written.  pages (sorted by pgno, one per page, pgno <= db_size)
	 * hold the last image of every page the transaction wrote.  Return
	 * SQLITE_OK to let the commit proceed, or an error code that the
	 * commit frame's xWrite returns instead (nothing of the commit frame
	 * reaches the WAL then, so neither readers nor crash recovery can
	 * see the transaction). */
	int (*on_commit)(void *arg, const char *main_path,
			 const struct wal_page *pages, size_t n_pages,
			 uint32_t db_size);
	/* The write lock of a transaction that passed on_commit was released;
	 * published says whether the commit reached the wal-index (false when
	 * SQLite failed after on_commit accepted it). */
	void (*on_commit_end)(void *arg, const char *main_path, int published);
	/* Any write lock taken through this VFS was released (after
	 * on_commit_end, committed or not), e.g. to wake waiting writers.
	 * May be NULL. */
	void (*on_write_unlock)(void *arg);
	void *arg;
};

/* Register a shim VFS named name over the current default VFS (not as the
 * default).  The hooks are copied.  Returns an SQLite code. */
int wal_observer_register(const char *name,
			  const struct wal_observer_hooks *hooks,
			  sqlite3_vfs **out);
/* Unregister and free a VFS from wal_observer_register; no connection may
 * still use it. */
void wal_observer_unregister(sqlite3_vfs *vfs);

/* The underlying file of a handle opened through an observer VFS (for the
 * injector, whose writes must not be observed).  Other handles are returned
 * unchanged. */
sqlite3_file *wal_observer_unwrap(sqlite3_file *f);

#endif
