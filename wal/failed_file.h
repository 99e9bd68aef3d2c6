/* A failed file: the handle a VFS returns from xOpen when it refuses to
 * open a database but must still let sqlite3_open_v2 complete, because
 * SQLite gives xOpen no way to attach a message to an error.  It reads as an
 * empty file, fails every lock, write and sync with SQLITE_CANTOPEN (logging
 * the reason), and answers SQLITE_FCNTL_PRAGMA with the reason, so the
 * caller can find the handle and report why (wal_observer_open_error). */
#ifndef REPLITE_WAL_FAILED_FILE_H
#define REPLITE_WAL_FAILED_FILE_H

#include "base/sqlite_api.h"

struct failed_file {
	sqlite3_file base; /* must be first */
	char *reason;      /* sqlite3_malloc'd; freed by xClose */
};

/* Turn f (at least sizeof(struct failed_file) bytes) into a failed file
 * holding reason (sqlite3_malloc'd; taken over). */
void failed_file_init(sqlite3_file *f, char *reason);

/* The reason of a failed file, or NULL for any other handle. */
const char *failed_file_reason(sqlite3_file *f);

#endif
