/* Record-level consistency of the b-trees a transaction changes (issue 9):
 * after a push, every table it touches must still agree with its indexes
 * and constraints as PRAGMA integrity_check judges them (no row missing from
 * an index, no extra or duplicate entry, no duplicate key in a UNIQUE index,
 * no NULL in a NOT NULL column, no value of the wrong type in a STRICT
 * table, no malformed record), at a cost in proportion to the pages the
 * transaction changes for ordinary tables and indexes (see store_rows.c for
 * the argument and for the cases that fall back to integrity_check of the
 * whole table). */
#ifndef REPLITE_SERVER_STORE_ROWS_H
#define REPLITE_SERVER_STORE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* store_rows_check()'s answer when the transaction is refused. */
#define STORE_ROWS_REFUSED 1

/* A b-tree page image (4096 bytes, page 1's b-tree header at offset 100). */
struct store_rows_page {
	uint32_t pgno;
	const uint8_t *data;
};

/* One b-tree the transaction changes.  The lists hold b-tree pages only
 * (interior and leaf; never overflow pages).  A page counts as changed if
 * its bytes changed, if it joined or left the tree, or if an overflow chain
 * that one of its cells leads to changed (SQLite can rewrite a same-sized
 * payload's overflow pages in place and leave the cell's page alone): such
 * an owning page must be listed, before and after, even if its own bytes are
 * the same. */
struct store_rows_tree {
	uint32_t root_old; /* the root before, 0 if the tree is new */
	uint32_t root_new; /* the root after, 0 if the tree was dropped */
	const struct store_rows_page *old_pages; /* before: changed, freed or
						    moved out of the tree */
	size_t n_old;
	const struct store_rows_page *new_pages; /* after: changed, or joined
						    the tree */
	size_t n_new;
};

/* Reads any page, before (after = 0) or after (after = 1) the transaction,
 * into out (4096 bytes): the overflow pages of spilled payloads.  0 on
 * success, -1 on failure. */
typedef int (*store_rows_read_fn)(void *arg, int after, uint32_t pgno,
				  uint8_t *out);

/* Checks the records of the n trees.  old_db sees the database before the
 * transaction (assumed consistent), new_db after (a page view,
 * wal/page_view.h).  The trees are grouped by table (an index belongs to its
 * table); every table concerned is checked with all of its indexes.
 * Returns 0 if consistent, STORE_ROWS_REFUSED with why naming the page or
 * the row and the index, or -1 if the check itself failed (why says why;
 * the transaction must then not be accepted either). */
int store_rows_check(sqlite3 *old_db, sqlite3 *new_db,
		     const struct store_rows_tree *trees, size_t n,
		     store_rows_read_fn read_page, void *arg, char *why,
		     size_t why_len);

#endif
