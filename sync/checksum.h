/* The replica's whole-database checksum (base/dbsum.h), carried forward per
 * transaction: from the checksum of the local file before it (recorded in
 * the state file) and the old images of the pages the transaction changes,
 * read from the local file itself (wal/wal_read.h).  Because the old images
 * come from the file, a file that something other than replite changed
 * gives another result than the primary computes for the same transaction:
 * the primary refuses such a push, and a pulled batch's result differs from
 * the checksum the primary announces for it. */
#ifndef REPLITE_SYNC_CHECKSUM_H
#define REPLITE_SYNC_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"
#include "wal/wal_inject.h" /* struct wal_page, wal_inject_unwrap_fn */

/* The checksum after the transaction pages[0..n-1] (the last image of a
 * page wins; pages past db_size are dropped) with db_size pages after it,
 * on top of the committed state of db's main database whose checksum is
 * base.  The caller keeps that state from moving (wal_read.h).  Returns 0,
 * or -1 with err. */
int checksum_after(sqlite3 *db, wal_inject_unwrap_fn unwrap, uint32_t page_size,
		   uint64_t base, const struct wal_page *pages, size_t n,
		   uint32_t db_size, uint64_t *result, char *err,
		   size_t err_len);

/* The old images checksum_after_old read: the pages written (ascending),
 * then the pages cut off (past db_size, ascending), as they were before the
 * transaction (zeros for pages past the old end), and the size before. */
struct checksum_old {
	uint32_t db_pages;
	size_t n;
	uint32_t *pgnos;
	uint8_t *images; /* n * page_size bytes */
};

/* checksum_after, also giving the old images it read in *keep (release
 * with checksum_old_free; untouched on error).  An offline commit keeps
 * them, to restore the pages if the transaction is dropped. */
int checksum_after_old(sqlite3 *db, wal_inject_unwrap_fn unwrap,
		       uint32_t page_size, uint64_t base,
		       const struct wal_page *pages, size_t n, uint32_t db_size,
		       uint64_t *result, struct checksum_old *keep, char *err,
		       size_t err_len);
void checksum_old_free(struct checksum_old *old);

#endif
