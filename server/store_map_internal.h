/* The page map's parts (store_map.h is the interface):
 *
 *   store_map.c        the map, its start-up walk, references of a page
 *   store_map_check.c  checking a transaction against it: the references
 *                      it drops and gains, the whole check, the commit
 *   store_map_rules.c  the rules a settled transaction must keep (every
 *                      page named once and reachable, depths, rowid order,
 *                      the freelist's length, the pointer map), and the
 *                      trees it changes
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

/* --- A transaction being checked (store_map_check.c) ---------------------- */

#include <stdarg.h>

#include "pgmap.h"

struct assigned {
	uint32_t pgno;
	struct map_entry e;
	int kept; /* kept its role because nothing referring to it changed */
};

struct map_txn {
	uint32_t old_size, new_size;
	int autovacuum;
	/* The last image of each pushed page, by page number. */
	struct pgmap pushed;
	const uint8_t **images;
	/* Images before, read once. */
	struct pgmap cache;
	uint8_t **bufs;
	size_t n_bufs, cap_bufs;
	/* C, and whether each page of it was written. */
	struct pgmap in_c;
	struct pglist c;
	/* lost: page -> the page of C whose reference to it is dropped */
	struct pgmap lost;
	/* The roles after, of the pages whose reference changed. */
	struct pgmap where;
	struct assigned *as;
	size_t n_as, cap_as;
	struct pglist queue;
	int again;
	int failed; /* 1: unsound (why), -1: error */
	char why[512];
	/* For the record-level checks. */
	struct store_map_tree *trees;
	size_t n_trees;
	/* A transaction checked by walking the whole database after it: the
	 * map it leaves. */
	struct store_map *whole;
};

/* The role before the transaction (none past the old end), and after it
 * (assigned by the check, else the same). */
const struct map_entry *map_before(const struct store_map *m,
				   const struct map_txn *t, uint32_t pgno);
const struct map_entry *map_after(const struct store_map *m,
				  const struct map_txn *t, uint32_t pgno);
const struct assigned *map_where_after(const struct map_txn *t, uint32_t pgno);
/* Is the page named by some reference before? */
int map_was_named(const struct store_map *m, const struct map_txn *t,
		  uint32_t pgno);
/* Does the transaction write the page (and *i: its image's index)? */
int map_pushed(const struct map_txn *t, uint32_t pgno, uint32_t *i);
/* Written, and inside the database after. */
int map_written(const struct map_txn *t, uint32_t pgno);
/* Record the first failure: how 1 (unsound) or -1 (an error). */
void map_fail(struct map_txn *t, int how, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- After a settled pass (store_map_rules.c) ----------------------------- */

/* Each records its finding with map_fail; the ones returning int return -1
 * on an error. */
void map_check_complete(struct store_map *m, struct map_txn *t);
int map_check_reachable(struct store_map *m, struct map_txn *t);
int map_check_heights(struct store_map *m, struct map_txn *t,
		      struct pgmap *heights);
int map_check_order(struct store_map *m, struct map_txn *t, uint32_t p);
/* The change in the number of free pages. */
int map_free_delta(struct store_map *m, struct map_txn *t, int64_t *delta);
void map_check_ptrmap(struct store_map *m, struct map_txn *t);
void map_check_max_root(struct store_map *m, struct map_txn *t,
			const uint8_t *page1_before,
			const uint8_t *page1_after);
/* The trees the transaction changes, for store_map_trees. */
int map_collect_trees(struct store_map *m, struct map_txn *t);

#endif
