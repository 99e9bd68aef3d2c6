/* Shared by rowdiff.c (which rows: pages, freelists, descents) and
 * rowdiff_rows.c (the rows themselves: schemas, SQL on the two views,
 * values as JSON). */
#ifndef REPLITE_SYNC_ROWDIFF_INTERNAL_H
#define REPLITE_SYNC_ROWDIFF_INTERNAL_H

#include "rowdiff.h"

/* A table of one view.  tables[0] of a side is always sqlite_schema
 * (root 1). */
struct rd_table {
	char *name;
	uint32_t root;
	int without_rowid;
	char **pk; /* the declared PRIMARY KEY's columns, in order */
	size_t n_pk;
};

/* One of the two states: 0 before, 1 after. */
struct rd_side {
	struct page_view *v; /* NULL: the database is empty */
	uint32_t size;
	struct page_view_page *overlay;
	size_t n_overlay;
	struct rd_table *tables;
	size_t n_tables;
	uint32_t *free; /* every freelist page (trunks and leaves), sorted */
	size_t n_free;
	uint32_t *trunks; /* the freelist's trunk pages, sorted */
	size_t n_trunks;
	int autovacuum;
};

/* Everything one table name needs, in both views. */
struct rd_job {
	const char *name;
	struct rd_table *t[2]; /* NULL where the view has no such table */
	int64_t *rowids;       /* touched rowids (rowid tables) */
	size_t n_rowids, cap;
	int whole; /* diff it whole by its key (a fallback) */
};

struct rd_out {
	struct rowdiff_change *c;
	size_t n, cap;
};

/* The tables of side s's schema (sqlite_schema first; virtual tables
 * skipped), their kinds from their root pages.  0, or -1 with err. */
int rd_schema_load(struct rd_side *s, char *err, size_t err_len);
void rd_schema_free(struct rd_side *s);

/* The changes of job j, appended to o in key order.  0, or -1 with err. */
int rd_job_run(struct rd_side sides[2], struct rd_job *j, struct rd_out *o,
	       struct rowdiff_stats *st, char *err, size_t err_len);

#endif
