/* The structure of one SQLite b-tree page, checked on its own (the checks
 * of SQLite's btreeInitPage and btreeComputeFreeSpace, and the bounds of
 * every cell): the page type, the cell pointer array, every cell inside the
 * content area and not overlapping another cell or a freeblock, the
 * freeblock chain, child and overflow page numbers within the database.
 * The primary uses it on pushed pages, which no client may be trusted to
 * have built correctly (see server/store_check.c), and walks cells with it
 * (server/store_map.c). */
#ifndef REPLITE_WAL_BTREE_PAGE_H
#define REPLITE_WAL_BTREE_PAGE_H

#include <stddef.h>
#include <stdint.h>

/* The b-tree page types (the first byte of the page header). */
#define BTREE_PAGE_INTERIOR_INDEX 2
#define BTREE_PAGE_INTERIOR_TABLE 5
#define BTREE_PAGE_LEAF_INDEX 10
#define BTREE_PAGE_LEAF_TABLE 13

/* Check page pgno (page_size bytes, no reserved bytes) of a database of
 * db_size pages as a b-tree page (page 1: after the 100-byte database
 * header).  Returns 0, or -1 with why naming the first problem. */
int btree_page_check(const uint8_t *page, uint32_t pgno, uint32_t page_size,
		     uint32_t db_size, char *why, size_t why_len);

/* One cell of a b-tree page, as btree_page_cells gives it. */
struct btree_cell {
	uint32_t index;       /* its position in the cell pointer array */
	uint32_t child;       /* interior pages: the left child */
	int64_t key;          /* table pages: the rowid (leaf), the divider
			       * (interior) */
	uint64_t payload;     /* leaf table and index cells: payload bytes */
	const uint8_t *local; /* the first n_local of them, on the page */
	uint32_t n_local;
	uint32_t overflow;   /* the first overflow page, or 0 */
	uint32_t n_overflow; /* overflow pages the payload needs */
};

/* Each cell of a page btree_page_check accepts, in key order, passed to fn
 * (which returns 0 to go on).  Returns 0, fn's non-zero return, or -1 when
 * the page is not a b-tree page. */
int btree_page_cells(const uint8_t *page, uint32_t pgno, uint32_t page_size,
		     int (*fn)(void *arg, const struct btree_cell *cell),
		     void *arg);

/* An interior page's right-most child (0 for a leaf page). */
uint32_t btree_page_right_child(const uint8_t *page, uint32_t pgno);

#endif
