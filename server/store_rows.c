/* Record-level consistency of the tables a transaction changes.
 *
 * The fast path (a rowid table whose schema the transaction leaves alone,
 * with no CHECK constraint and no generated column, and indexes on plain
 * columns, not partial) costs in proportion to the pages the transaction
 * changes.  Let R be every rowid of a cell on T's listed pages (before and
 * after) or of an entry (its last field) on the listed pages of T's
 * indexes whose cells or entries are not the same, as a multiset of
 * payloads, before and after (a rowid whose cells and entries all merely
 * moved, or stayed on a rewritten page, is left out: store_rows_fast.c,
 * find_r, says why that is sound).  The state before is consistent: for
 * each index I, its entries are exactly {(key(r), r) : r a row}.
 *
 *  1. A row r outside R lies, before and after, on a page the transaction
 *     did not change, or its cell is on the listed pages the same number of
 *     times on both sides: it exists after iff it existed before, with the
 *     same record.
 *  2. Likewise the entries of I with rowids outside R are the same before
 *     and after: exactly those of the rows outside R, still right (1).
 *  3. For r in R that exists after, a seek of I for (key_after(r), r) finds
 *     exactly one entry (checked with SQL on the page view).
 *  4. The number of I's entries changes by (entries on I's new pages) -
 *     (entries on its old pages); we check that this equals the number of
 *     rows in R after minus the number in R before.  With 2, the entries of
 *     I with rowids in R are then exactly as many as the rows of R after,
 *     and 3 found one distinct right entry for each of those rows: no entry
 *     is missing, wrong, duplicated or extra.
 *
 * Per row of R after, the row is read whole (a malformed record fails),
 * NOT NULL and STRICT types are checked, and a UNIQUE index's key without a
 * NULL must be found once.  Everything else (WITHOUT ROWID tables,
 * expression or partial indexes, CHECK constraints, new trees, a changed
 * schema, the schema table itself) falls back to PRAGMA integrity_check of
 * the table, whose cost is the table's size with its indexes. */
#include "store_rows.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "records.h"
#include "store_rows_internal.h"

#define REFUSED STORE_ROWS_REFUSED

void store_rows_schema_free(struct schema *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		sqlite3_free(s->v[i].type);
		sqlite3_free(s->v[i].name);
		sqlite3_free(s->v[i].tbl);
		sqlite3_free(s->v[i].sql);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static char *dup_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? sqlite3_mprintf("%s", t) : NULL;
}

/* The tables and indexes with b-trees, and the schema table itself. */
static int schema_load(sqlite3 *db, struct schema *s, char *why, size_t why_len)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 16;
	int rc;

	s->n = 0;
	s->v = calloc(cap, sizeof *s->v);
	if (s->v == NULL)
		goto oom;
	s->v[0].type = sqlite3_mprintf("table");
	s->v[0].name = sqlite3_mprintf("sqlite_schema");
	s->v[0].tbl = sqlite3_mprintf("sqlite_schema");
	s->v[0].root = 1;
	s->n = 1;
	rc = sqlite3_prepare_v2(db,
				"SELECT type, name, tbl_name, rootpage, sql "
				"FROM sqlite_schema WHERE type IN "
				"('table', 'index') AND rootpage > 0",
				-1, &st, NULL);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		struct obj *o;

		if (s->n == cap) {
			struct obj *grown =
			    realloc(s->v, 2 * cap * sizeof *grown);
			if (grown == NULL)
				goto oom;
			s->v = grown;
			cap *= 2;
		}
		o = &s->v[s->n++];
		o->type = dup_text(st, 0);
		o->name = dup_text(st, 1);
		o->tbl = dup_text(st, 2);
		o->sql = dup_text(st, 4);
		o->root = (uint32_t)sqlite3_column_int64(st, 3);
		if (o->type == NULL || o->name == NULL || o->tbl == NULL)
			goto oom;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_reset(st);
	if (rc != SQLITE_OK) {
		errors_set(why, why_len, "cannot read the schema: %s",
			   sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
oom:
	sqlite3_finalize(st);
	errors_set(why, why_len, "out of memory");
	return -1;
}

const struct obj *store_rows_by_root(const struct schema *s, uint32_t root)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].root == root)
			return &s->v[i];
	return NULL;
}

const struct obj *store_rows_by_name(const struct schema *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (sqlite3_stricmp(s->v[i].name, name) == 0)
			return &s->v[i];
	return NULL;
}

int store_rows_side_read(void *arg, uint32_t pgno, uint8_t *out)
{
	struct side *s = arg;

	return s->read(s->arg, s->after, pgno, out);
}

/* The record-format pass over every new page of every tree. */
struct parse_ctx {
	uint32_t pgno;
	const char *tree;
	char *why;
	size_t why_len;
};

static int parse_cell(void *arg, const struct records_cell *cell)
{
	struct parse_ctx *p = arg;
	struct records_record rec;
	char what[160];

	if (records_parse(cell->payload, cell->size, &rec, what, sizeof what) ==
	    0)
		return 0;
	errors_set(p->why, p->why_len,
		   "pushed page %" PRIu32 " of %s: cell %d holds a malformed "
		   "record (%s)",
		   p->pgno, p->tree, cell->index, what);
	return REFUSED;
}

static int parse_new_pages(const struct store_rows_tree *t, const char *tree,
			   struct side *after, char *why, size_t why_len)
{
	size_t i;
	int rv;

	for (i = 0; i < t->n_new; i++) {
		struct parse_ctx p = {t->new_pages[i].pgno, tree, why, why_len};
		rv = records_page_cells(p.pgno, t->new_pages[i].data,
					store_rows_side_read, after, parse_cell,
					&p, why, why_len);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* PRAGMA integrity_check of one table and its indexes: correct for any
 * table, at the cost of reading all of it. */
static int fallback(sqlite3 *db, const char *table, char *why, size_t why_len)
{
	char *sql = sqlite3_mprintf("PRAGMA integrity_check(\"%w\")", table);
	sqlite3_stmt *st = NULL;
	const char *msg;
	int rc, rv = -1;

	if (sql == NULL) {
		errors_set(why, why_len, "out of memory");
		return -1;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_CORRUPT || (rc != SQLITE_ROW && rc != SQLITE_DONE &&
				     sqlite3_errcode(db) == SQLITE_CORRUPT)) {
		errors_set(why, why_len,
			   "pushed pages leave table %s unreadable: %s", table,
			   sqlite3_errmsg(db));
		rv = REFUSED;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		errors_set(why, why_len, "cannot check table %s: %s", table,
			   sqlite3_errmsg(db));
		goto out;
	}
	msg = (const char *)sqlite3_column_text(st, 0);
	if (msg != NULL && strcmp(msg, "ok") == 0) {
		rv = 0;
		goto out;
	}
	errors_set(why, why_len,
		   "pushed pages leave table %s inconsistent: integrity_check "
		   "says \"%s\"",
		   table, msg ? msg : "(null)");
	rv = REFUSED;
out:
	sqlite3_finalize(st);
	return rv;
}

static int add_table(const char ***tables, size_t *n, const char *name)
{
	const char **grown;
	size_t i;

	for (i = 0; i < *n; i++)
		if (sqlite3_stricmp((*tables)[i], name) == 0)
			return 0;
	grown = realloc(*tables, (*n + 1) * sizeof *grown);
	if (grown == NULL)
		return -1;
	grown[(*n)++] = name;
	*tables = grown;
	return 0;
}

int store_rows_check(sqlite3 *old_db, sqlite3 *new_db,
		     const struct store_rows_tree *trees, size_t n,
		     store_rows_read_fn read_page, void *arg, char *why,
		     size_t why_len)
{
	struct schema olds = {NULL, 0}, news = {NULL, 0};
	struct side after = {read_page, arg, 1};
	const char **tables = NULL;
	size_t n_tables = 0, i;
	int rv = -1;

	if (schema_load(old_db, &olds, why, why_len) != 0 ||
	    schema_load(new_db, &news, why, why_len) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct store_rows_tree *t = &trees[i];
		const struct obj *o_old = NULL, *o_new = NULL, *tbl;

		if (t->root_old != 0) {
			o_old = store_rows_by_root(&olds, t->root_old);
			if (o_old == NULL) {
				errors_set(why, why_len,
					   "no b-tree was rooted at page "
					   "%" PRIu32 " before the transaction",
					   t->root_old);
				goto out;
			}
		}
		if (t->root_new != 0) {
			o_new = store_rows_by_root(&news, t->root_new);
			if (o_new == NULL) {
				errors_set(why, why_len,
					   "pushed pages hold a b-tree rooted "
					   "at page %" PRIu32 " that the "
					   "pushed schema does not name",
					   t->root_new);
				rv = REFUSED;
				goto out;
			}
			rv = parse_new_pages(t, o_new->name, &after, why,
					     why_len);
			if (rv != 0)
				goto out;
			rv = -1;
			if (add_table(&tables, &n_tables, o_new->tbl) != 0)
				goto oom;
		}
		/* A dropped index of a table that remains concerns it. */
		tbl = o_old ? store_rows_by_name(&news, o_old->tbl) : NULL;
		if (tbl != NULL && strcmp(tbl->type, "table") == 0 &&
		    add_table(&tables, &n_tables, tbl->name) != 0)
			goto oom;
	}
	for (i = 0; i < n_tables; i++) {
		rv = store_rows_fast(old_db, new_db, &olds, &news, tables[i],
				     trees, n, read_page, arg, why, why_len);
		if (rv == STORE_ROWS_FALLBACK)
			rv = fallback(new_db, tables[i], why, why_len);
		if (rv != 0)
			goto out;
	}
	rv = 0;
	goto out;
oom:
	errors_set(why, why_len, "out of memory");
	rv = -1;
out:
	free(tables);
	store_rows_schema_free(&olds);
	store_rows_schema_free(&news);
	return rv;
}
