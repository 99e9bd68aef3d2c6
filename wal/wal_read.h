/* Reading pages of a live WAL-mode database as its last committed
 * transaction left them, without SQL: for each page, its latest frame at or
 * below the mxFrame published in the wal-index (found through the
 * wal-index hash tables, as SQLite's walFindFrame does), else the database
 * file, else (past the end of the file) zeros.  The replica reads the old
 * images of the pages a transaction changes, to update its whole-database
 * checksum in proportion to the transaction.
 *
 * The caller keeps the published position from moving while it reads: it
 * holds the WAL write lock (its own BEGIN IMMEDIATE, or a writer's commit
 * in progress), so no writer can commit or restart the WAL; a concurrent
 * checkpoint only copies frames into the database file, which changes no
 * page's committed content. */
#ifndef REPLITE_WAL_READ_H
#define REPLITE_WAL_READ_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"
#include "wal/wal_inject.h" /* wal_inject_unwrap_fn */

/* Read the n pages pgnos[] (>= 1) of db's main database into out (n *
 * page_size bytes), through the file handles of db (unwrap as for
 * wal_inject).  *db_pages receives the database's size in pages.  Returns
 * SQLITE_OK, or an error code with *errmsg (sqlite3_malloc'd) naming the
 * cause. */
int wal_read_pages(sqlite3 *db, wal_inject_unwrap_fn unwrap, uint32_t page_size,
		   const uint32_t *pgnos, size_t n, uint8_t *out,
		   uint32_t *db_pages, char **errmsg);

#endif
