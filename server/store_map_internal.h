/* The page map's parts (store_map.h is the interface):
 *
 *   store_map.c        the map, its start-up walk, references of a page
 *   store_map_check.c  checking a transaction against it
 */
#ifndef REPLITE_SERVER_STORE_MAP_INTERNAL_H
#define REPLITE_SERVER_STORE_MAP_INTERNAL_H

#include "store_map.h"

#include "wal/walfmt.h"

#define MAP_PAGE WALFMT_PAGE_SIZE
#define MAP_LOCK_PAGE (0x40000000u / MAP_PAGE + 1)
/* Leaves a freelist trunk page can list (SQLite's usableSize/4 - 2). */
#define MAP_MAX_LEAVES (MAP_PAGE / 4 - 2)

/* What a page is.  Every page of a sound database has one role, given by
 * the one reference to it (page 1 and the fixed pages excepted). */
enum map_role {
	MAP_NONE = 0, /* past the end (or unknown) */
	MAP_BTREE,    /* a b-tree page */
	MAP_OVERFLOW, /* a page of a cell's overflow chain */
	MAP_TRUNK,    /* a freelist trunk page */
	MAP_LEAF,     /* a free page listed by a trunk page */
	MAP_PTRMAP,   /* a pointer-map page (auto-vacuum), by position */
	MAP_LOCK,     /* the page holding the lock byte, by position */
};

/* The kind of b-tree a page (or an overflow page's cell) belongs to. */
enum map_kind {
	MAP_TABLE = 0,  /* a rowid table's */
	MAP_INDEX = 1,  /* an index's, or a WITHOUT ROWID table's */
	MAP_SCHEMA = 2, /* the schema table's (rooted at page 1) */
};

struct map_entry {
	uint32_t owner; /* the page that refers to it (0 for page 1) */
	/* MAP_BTREE: the page itself when it is a tree's root, else 0; not
	 * the root of every page of the tree, because auto-vacuum moves
	 * roots and every page under one would change. */
	uint32_t root;
	uint32_t aux; /* MAP_BTREE: its height (0 for a leaf); MAP_OVERFLOW:
		       * pages left in the chain, this one included */
	uint8_t role; /* enum map_role */
	uint8_t kind; /* MAP_BTREE, MAP_OVERFLOW: enum map_kind */
};

/* One reference from a page to another, and the role it gives it. */
struct map_ref {
	uint32_t to;
	struct map_entry as; /* as.owner is the referring page */
};

/* A source of page images: the database before the transaction, or after
 * (pushed images over it). */
struct map_view {
	struct store_map *m;
	struct map_txn *t; /* NULL: as it stands, read with m->read */
	int after;         /* with t: the pushed images over it */
};
const uint8_t *map_view_page(struct map_view *v, uint32_t pgno,
			     uint8_t *scratch, char *why, size_t why_len);

/* The references the page pgno holds in the role e, passed to fn (which
 * returns 0 to go on, else the walk stops and returns it).  The page's
 * content must fit the role: a b-tree page of the right kind, a trunk
 * page listing at most MAP_MAX_LEAVES, an overflow page whose chain goes on
 * exactly as long as its payload needs.  Returns 0, fn's value, or 1 with
 * why when the content does not fit (-1 on an error reading a page). */
int map_refs(struct map_view *v, const uint8_t *page, uint32_t pgno,
	     const struct map_entry *e, uint32_t db_size,
	     int (*fn)(void *arg, const struct map_ref *r), void *arg,
	     char *why, size_t why_len);

/* Is pgno a page no reference may name: the lock-byte page, or a
 * pointer-map page of an auto-vacuum database? */
int map_fixed_page(int autovacuum, uint32_t pgno);
const char *map_role_name(uint8_t role);

struct store_map {
	struct map_entry *e; /* e[pgno]; e[0] unused */
	uint32_t n_pages;
	uint32_t n_free; /* trunk and leaf pages */
	store_map_read_fn read;
	void *arg;
	struct map_txn *txn; /* the checked transaction, until commit */
	int stale;           /* out of step: build it again */
};

#endif
