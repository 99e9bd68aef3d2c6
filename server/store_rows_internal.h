/* What store_rows.c and store_rows_fast.c share: the schema as each side
 * sees it, and reading overflow pages on one side of the transaction. */
#ifndef REPLITE_SERVER_STORE_ROWS_INTERNAL_H
#define REPLITE_SERVER_STORE_ROWS_INTERNAL_H

#include "store_rows.h"

/* One sqlite_schema row with a b-tree (or the schema table, root 1). */
struct obj {
	char *type, *name, *tbl, *sql;
	uint32_t root;
};

struct schema {
	struct obj *v;
	size_t n;
};

void store_rows_schema_free(struct schema *s);
const struct obj *store_rows_by_root(const struct schema *s, uint32_t root);
/* By name, case-insensitively as SQLite names; NULL if absent. */
const struct obj *store_rows_by_name(const struct schema *s, const char *name);

/* A records_read_fn (records.h) over a store_rows_read_fn. */
struct side {
	store_rows_read_fn read;
	void *arg;
	int after;
};
int store_rows_side_read(void *arg, uint32_t pgno, uint8_t *out);

/* store_rows_fast()'s answer for a table it does not handle. */
#define STORE_ROWS_FALLBACK 2

/* Checks table (a name in news) and all its indexes by the fast path (see
 * store_rows.c).  Returns 0, STORE_ROWS_REFUSED, -1, or STORE_ROWS_FALLBACK
 * when the table is not one the fast path handles. */
int store_rows_fast(sqlite3 *old_db, sqlite3 *new_db, const struct schema *olds,
		    const struct schema *news, const char *table,
		    const struct store_rows_tree *trees, size_t n,
		    store_rows_read_fn read_page, void *arg, char *why,
		    size_t why_len);

#endif
