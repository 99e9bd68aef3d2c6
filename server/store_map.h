/* The page map: what every page of the live database is, and which page
 * refers to it (issue 9, "no push can corrupt the primary").
 *
 * A sound SQLite database is a forest hung from page 1: the schema b-tree
 * is rooted there, each record of it names the root page of a table or an
 * index, interior b-tree pages name their children, cells that spill name
 * a chain of overflow pages, and the database header names the first
 * freelist trunk page, whose pages list free leaf pages.  PRAGMA
 * integrity_check walks all of it and reports a page referred to twice,
 * never referred to, of the wrong kind or depth, a rowid out of order, an
 * overflow chain or a freelist of the wrong length, a wrong pointer-map
 * entry.  Walking it costs the whole database, so the primary walks it once
 * at start-up and keeps the result here, one entry per page, and checks a
 * transaction by what it changes: the references its pages drop and gain,
 * which must leave every page referred to exactly once, each in a role its
 * content fits.  The cost is in proportion to the pages the transaction
 * writes (and the depth of the trees they are in).
 *
 * Used under the live database's WAL write lock only (a push holds it
 * through the internal connection, a SQL commit through its own), which
 * serialises every call. */
#ifndef REPLITE_SERVER_STORE_MAP_H
#define REPLITE_SERVER_STORE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store_rows.h"     /* struct store_rows_page */
#include "wal/wal_inject.h" /* struct wal_page */

struct store_map;

/* Reads page pgno of the database as it stands (before the transaction
 * being checked) into out: 0, or -1 with why. */
typedef int (*store_map_read_fn)(void *arg, uint32_t pgno, uint8_t *out,
				 char *why, size_t why_len);

/* Walk the whole database (n_pages pages) and build its map.  Returns 0, or
 * -1 with err: out of memory, unreadable, or the database is not sound (err
 * names the first problem; the map is then unusable). */
int store_map_build(struct store_map **out, uint32_t n_pages,
		    store_map_read_fn read, void *arg, char *err, size_t n);
void store_map_free(struct store_map *m);

/* The b-tree pages a checked transaction changes, per tree, for the
 * record-level checks (store_rows.h): the images before of the pages that
 * were in the tree and changed or left it, and after of the pages that are
 * in it and changed or joined it.  A page holding a cell whose overflow
 * chain changed counts as changed. */
struct store_map_tree {
	uint32_t root;
	int index;            /* an index b-tree (else a table's) */
	uint32_t root_before; /* root if it was a root before, else 0 */
	uint32_t root_after;  /* root if it is a root after, else 0 */
	struct store_rows_page *before;
	size_t n_before;
	struct store_rows_page *after;
	size_t n_after;
};

/* Check the transaction that writes pages[] (the last image of a page
 * counts) and leaves the database db_size pages long.  Returns 0 when it
 * leaves the database structurally sound (the change is then pending:
 * store_map_commit or store_map_abort), 1 when it would not (why names the
 * page and the problem), -1 on an error (why).  The images and the trees
 * from store_map_trees stay valid until commit or abort. */
int store_map_check(struct store_map *m, const struct wal_page *pages, size_t n,
		    uint32_t db_size, char *why, size_t why_len);
/* The trees the pending transaction changes. */
void store_map_trees(const struct store_map *m,
		     const struct store_map_tree **trees, size_t *n);
/* Whether the pending transaction was checked by walking the whole
 * database (a rewrite of most of it): the record-level checks must then
 * look at all of it too. */
int store_map_whole(const struct store_map *m);
void store_map_commit(struct store_map *m);
void store_map_abort(struct store_map *m);

/* Test support: compare the map with one built afresh (0 if equal, else -1
 * with why naming the first difference). */
int store_map_compare(const struct store_map *a, const struct store_map *b,
		      char *why, size_t why_len);

#endif
