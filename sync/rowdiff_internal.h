/* Shared by rowdiff.c (which rows: pages, freelists, descents) and
 * rowdiff_rows.c (the rows themselves: schemas, SQL on the two views,
 * values as JSON). */
#ifndef REPLITE_SYNC_ROWDIFF_INTERNAL_H
#define REPLITE_SYNC_ROWDIFF_INTERNAL_H

#include "rowdiff.h"

/* A table of one view.  tables[0] of a side is always sqlite_schema
 * (root 1). */
struct rowdiff_table {
	char *name;
	uint32_t root;
	int without_rowid;
	/* rowid tables: the first of rowid, _rowid_, oid that no column
	 * takes */
	const char *rowid_name;
	char **pk; /* the declared PRIMARY KEY's columns, in order */
	size_t n_pk;
};

/* One of the two states: 0 before, 1 after. */
struct rowdiff_side {
	struct page_view *v; /* NULL: the database is empty */
	uint32_t size;
	struct page_view_page *overlay;
	size_t n_overlay;
	struct rowdiff_table *tables;
	size_t n_tables;
	uint32_t *free; /* every freelist page (trunks and leaves), sorted */
	size_t n_free;
	int autovacuum;
};

/* Everything one table name needs, in both views. */
struct rowdiff_job {
	const char *name;
	struct rowdiff_table *t[2]; /* NULL where the view has no such table */
	int64_t *rowids;            /* touched rowids (rowid tables) */
	size_t n_rowids, cap;
	int whole; /* diff it whole by its key (a fallback) */
};

struct rowdiff_out {
	struct rowdiff_change *c;
	size_t n, cap;
};

/* A page whose rows may have changed: written, or freed unwritten. */
struct rowdiff_seen {
	uint32_t pgno;
	const uint8_t *img[2]; /* NULL where the page is not in that state */
	uint8_t freed;         /* freed unwritten: its image before is read when
				* needed (img[0] NULL), never held (a dropped
				* table frees all its pages) */
	uint8_t known[2];      /* a b-tree, freelist or pointer-map page */
	uint8_t chained[2];    /* in an overflow chain of a changed cell */
};

struct rowdiff_ctx {
	const struct rowdiff_input *in;
	struct rowdiff_side side[2];
	struct rowdiff_seen *pages;
	size_t n_pages;
	uint8_t freed_buf[PAGE_VIEW_PAGE_SIZE];
	struct rowdiff_job *jobs;
	size_t n_jobs;
	size_t owner_hint[2]; /* the table that owned the last leaf */
	uint8_t buf[PAGE_VIEW_PAGE_SIZE];
	int index_changed;
	struct rowdiff_stats st;
	char *err;
	size_t err_len;
};

/* Helpers of rowdiff.c: the listed page pgno (NULL if not listed); a page
 * of side s (0 or -1 with c->err); "out of memory" (-1); membership of a
 * sorted array. */
struct rowdiff_seen *rowdiff_find_page(struct rowdiff_ctx *c, uint32_t pgno);
int rowdiff_read_page(struct rowdiff_ctx *c, int s, uint32_t pgno,
		      uint8_t *out);
int rowdiff_oom(struct rowdiff_ctx *c);
int rowdiff_has_u32(const uint32_t *v, size_t n, uint32_t x);
/* Whether listed page p is in side s; its image there into *out (a freed
 * page's read into c->freed_buf, valid until the next call): 0, or -1 when
 * it cannot be read. */
int rowdiff_present(const struct rowdiff_seen *p, int s);
int rowdiff_image(struct rowdiff_ctx *c, const struct rowdiff_seen *p, int s,
		  const uint8_t **out);

/* rowdiff_overflow.c: marks the listed pages in the overflow chains of the
 * listed b-tree pages' cells (0, or -1); how many listed images nothing
 * explains; the fallback: every rowid table with overflow cells is merged
 * whole (0, or -1). */
int rowdiff_walk_chains(struct rowdiff_ctx *c);
size_t rowdiff_unexplained(const struct rowdiff_ctx *c);
int rowdiff_overflow_fallback(struct rowdiff_ctx *c);

/* The tables of side s's schema (sqlite_schema first; virtual tables
 * skipped), their kinds from their root pages.  0, or -1 with err. */
int rowdiff_schema_load(struct rowdiff_side *s, char *err, size_t err_len);
void rowdiff_schema_free(struct rowdiff_side *s);

/* rowdiff_values.c: a column as a Hrana value (NULL when out of memory);
 * changes of rowid table t sorted by their keys (its PRIMARY KEY's values
 * in BINARY order). */
void rowdiff_sort_by_key(struct rowdiff_change *c, size_t n,
			 const struct rowdiff_table *t);

/* The changes of job j, appended to o in key order.  0, or -1 with err. */
int rowdiff_job_run(struct rowdiff_side sides[2], struct rowdiff_job *j,
		    struct rowdiff_out *o, struct rowdiff_stats *st, char *err,
		    size_t err_len);

#endif
