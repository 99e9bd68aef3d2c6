/* The replica VFS "replite": a shim over the default VFS in the style of
 * SQLite's ext/misc/cksumvfs.c.  Every method forwards; on top of that:
 *
 * - opening a main database reads the replica options from the URI
 *   (uri_params) and attaches the file to its replica (one per path per
 *   process, created by the first open and closed with the last);
 * - the replica's pragmas arrive through SQLITE_FCNTL_PRAGMA: replite_sync,
 *   replite_status, and the refusal of journal_mode other than WAL and of
 *   locking_mode=EXCLUSIVE;
 * - the write path (sync/replica.h): a write transaction catches up with
 *   the primary when it begins (the WAL write lock), is pushed to the
 *   primary when its commit frame is about to be written (the WAL observer
 *   hands over its final pages), and the replica's position follows when
 *   the write lock is released;
 * - files report SQLITE_IOCAP_POWERSAFE_OVERWRITE (no WAL padding frames).
 *
 * An open that fails for a reason of replite's (a malformed parameter, a
 * file that is not a replica, a first sync that failed) still returns a
 * file handle, which fails every later use; the extension's per-connection
 * hook reports the reason as the error of sqlite3_open_v2, since SQLite has
 * no way for xOpen to give a message. */
#ifndef REPLITE_VFS_H
#define REPLITE_VFS_H

#include "base/sqlite_api.h"

struct replica;

/* Register the VFS named name over the current default VFS (not as the
 * default).  Registering a name that exists already is a no-op.  Returns an
 * SQLite code. */
int replite_vfs_register(const char *name);

/* For a file handle of a main database opened through the replica VFS:
 * the reason its open failed (NULL if it did not), and its replica (NULL if
 * none).  Other handles: both NULL. */
const char *replite_vfs_open_error(sqlite3_file *f);
struct replica *replite_vfs_replica(sqlite3_file *f);

#endif
