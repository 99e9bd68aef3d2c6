/* Helpers shared by the tests of the page map (test_store_map.c, legitimate
 * transactions, and test_store_map_corruptions.c, corrupted ones): the
 * scratch files a.db, b.db and base.db, the base data set, and a
 * transaction between two files checked against a map of the old one.
 *
 * A transaction is the pages that differ between two files (journal mode
 * DELETE, so each file holds the whole state) and the new file's length;
 * pages SQLite frees without writing them are not in it, as in a push. */
#ifndef REPLITE_TEST_STORE_MAP_TEST_HELPERS_H
#define REPLITE_TEST_STORE_MAP_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "rows_fixture.h"
#include "server/store_map.h"

/* The page size of every database here. */
#define SMH_PAGE 4096

/* --- The files ------------------------------------------------------- */

/* a.db (the state before), b.db (after) and base.db (a pristine copy of
 * the data set) in a temporary directory, which smh_setup makes and
 * smh_teardown removes (a checked fixture). */
extern char *smh_a_path, *smh_b_path, *smh_base_path;
void smh_setup(void);
void smh_teardown(void);

/* A table of rows spilling to overflow chains of 3 to 25 pages (first, so
 * that its pages and the free ones are numbered below 128, as a one-byte
 * rootpage in a schema record can name), a table of small rows with an
 * index, a WITHOUT ROWID table, some free pages: about 500 pages, so that
 * small transactions are checked incrementally. */
extern const char *const smh_base_sql;

/* --- Transactions ---------------------------------------------------- */

/* The transaction from old to new: the pages of new that differ. */
struct smh_txn {
	struct wal_page *pages;
	size_t n;
	uint32_t db_size;
};

/* Fills t with the transaction from old to new (t->pages malloc'd). */
void smh_txn_diff(struct smh_txn *t, const struct rows_file *old,
		  const struct rows_file *new);
/* The map of f, built by a full walk (must succeed). */
struct store_map *smh_build(struct rows_file *f);

/* How many transactions smh_check_legit saw checked whole or
 * incrementally (printed by the tests that count them). */
extern int smh_n_whole, smh_n_incremental;

/* Checks the transaction from old to new against m (a map of old): it is
 * accepted and, committed, leaves the map of new. */
void smh_check_legit(const char *what, struct store_map *m,
		     struct rows_file *old, struct rows_file *new);
/* The transaction from a.db to b.db is sound, accepted, and leaves the map
 * of b.db. */
void smh_assert_legit(const char *what);

#endif
