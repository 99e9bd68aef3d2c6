/* The fast path of store_rows_check (the argument is in store_rows.c): the
 * rowids R of the changed pages of a table and its indexes, then per rowid
 * of R a few seeks on each side, then the entry counts. */
#include "store_rows_internal.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "records.h"
#include "wal/record.h"

#define REFUSED STORE_ROWS_REFUSED
#define FALLBACK STORE_ROWS_FALLBACK

struct index_plan {
	const char *name;
	int unique;
	int n_key;
	int *cid;    /* the key columns, by number in SELECT * */
	char **coll; /* their collations */
	const struct store_rows_tree *tree; /* NULL: no page of it changed */
	int64_t entries_old, entries_new;   /* on the listed pages */
	int64_t rows_delta;                 /* rows of R after - before */
	sqlite3_stmt *seek, *uniq;
};

/* A table cell or an index entry on a listed page, its payload copied. */
struct item {
	int64_t rowid;
	int tree; /* -1: the table, else the index's number */
	int after;
	uint32_t size;
	uint8_t *payload;
};

struct col {
	char *name, *type;
	int notnull;
};

struct plan {
	const char *table;
	const char *rowid; /* a name of the rowid no column hides */
	int strict;
	int n_col;
	struct col *cols;
	const struct store_rows_tree *tree;
	int n_idx;
	struct index_plan *idx;
	struct item *items; /* every cell and entry on the listed pages */
	size_t n_items, cap_items;
	int64_t *r; /* R: the rowids whose cells or entries differ */
	size_t n_r;
	sqlite3_stmt *old_row, *new_row;
};

static int same_sql(const struct obj *a, const struct obj *b)
{
	if (a->sql == NULL || b->sql == NULL)
		return a->sql == b->sql;
	return strcmp(a->sql, b->sql) == 0;
}

static void plan_free(struct plan *p)
{
	int i, j;

	for (i = 0; i < p->n_idx; i++) {
		for (j = 0; j < p->idx[i].n_key; j++)
			sqlite3_free(p->idx[i].coll[j]);
		free(p->idx[i].cid);
		free(p->idx[i].coll);
		sqlite3_finalize(p->idx[i].seek);
		sqlite3_finalize(p->idx[i].uniq);
	}
	free(p->idx);
	for (i = 0; i < p->n_col; i++) {
		sqlite3_free(p->cols[i].name);
		sqlite3_free(p->cols[i].type);
	}
	free(p->cols);
	for (i = 0; i < (int)p->n_items; i++)
		free(p->items[i].payload);
	free(p->items);
	free(p->r);
	sqlite3_finalize(p->old_row);
	sqlite3_finalize(p->new_row);
}

static int prepare(sqlite3 *db, sqlite3_stmt **st, char *why, size_t why_len,
		   const char *fmt, ...)
{
	va_list ap;
	char *sql;
	int rc;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (sql == NULL) {
		errors_set(why, why_len, "out of memory");
		return -1;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		errors_set(why, why_len, "cannot prepare %s: %s", sql,
			   sqlite3_errmsg(db));
	sqlite3_free(sql);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The tree whose roots are the object's before and after; *mismatch if a
 * tree has one of the roots but not the other. */
static const struct store_rows_tree *
find_tree(const struct store_rows_tree *trees, size_t n, uint32_t ro,
	  uint32_t rn, int *mismatch)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct store_rows_tree *t = &trees[i];
		if ((ro != 0 && t->root_old == ro) ||
		    (rn != 0 && t->root_new == rn)) {
			if (t->root_old != ro || t->root_new != rn)
				*mismatch = 1;
			return t;
		}
	}
	return NULL;
}

/* The table's columns (none generated: those fall back). */
static int load_columns(sqlite3 *db, struct plan *p, char *why, size_t why_len)
{
	sqlite3_stmt *st = NULL;
	int rc, rv = -1;

	if (prepare(db, &st, why, why_len,
		    "SELECT name, type, \"notnull\", hidden FROM "
		    "pragma_table_xinfo(%Q) ORDER BY cid",
		    p->table) != 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct col *c, *grown;

		if (sqlite3_column_int(st, 3) != 0) {
			rv = FALLBACK;
			goto out;
		}
		grown = realloc(p->cols, (size_t)(p->n_col + 1) * sizeof *c);
		if (grown == NULL)
			goto oom;
		p->cols = grown;
		c = &p->cols[p->n_col++];
		c->name = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		c->type = sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
		c->notnull = sqlite3_column_int(st, 2);
		if (c->name == NULL || c->type == NULL)
			goto oom;
	}
	if (rc != SQLITE_DONE) {
		errors_set(why, why_len, "cannot read the columns of %s: %s",
			   p->table, sqlite3_errmsg(db));
		goto out;
	}
	rv = 0;
	goto out;
oom:
	errors_set(why, why_len, "out of memory");
out:
	sqlite3_finalize(st);
	return rv;
}

/* Index i's key columns; FALLBACK for an expression. */
static int load_index(sqlite3 *db, struct index_plan *x, char *why,
		      size_t why_len)
{
	sqlite3_stmt *st = NULL;
	int rc, rv = -1;

	if (prepare(db, &st, why, why_len,
		    "SELECT cid, coll FROM pragma_index_xinfo(%Q) WHERE key "
		    "ORDER BY seqno",
		    x->name) != 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int *cid =
		    realloc(x->cid, (size_t)(x->n_key + 1) * sizeof *cid);
		char **coll;

		if (cid == NULL)
			goto oom;
		x->cid = cid;
		coll = realloc(x->coll, (size_t)(x->n_key + 1) * sizeof *coll);
		if (coll == NULL)
			goto oom;
		x->coll = coll;
		x->cid[x->n_key] = sqlite3_column_int(st, 0);
		x->coll[x->n_key] =
		    sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
		if (x->coll[x->n_key++] == NULL)
			goto oom;
		if (x->cid[x->n_key - 1] < 0) {
			rv = FALLBACK;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		errors_set(why, why_len, "cannot read index %s: %s", x->name,
			   sqlite3_errmsg(db));
		goto out;
	}
	rv = x->n_key > 0 ? 0 : FALLBACK;
	goto out;
oom:
	errors_set(why, why_len, "out of memory");
out:
	sqlite3_finalize(st);
	return rv;
}

/* The statements: the row on each side, and per index a seek for (key,
 * rowid) and, if UNIQUE, for the key alone.  COLLATE on the bound value
 * gives the comparison the index's collation, so the seek uses the index on
 * every column (test_candidate_rows checks the plans). */
static int prepare_statements(sqlite3 *old_db, sqlite3 *new_db, struct plan *p,
			      char *why, size_t why_len)
{
	int i, j;

	if (prepare(old_db, &p->old_row, why, why_len,
		    "SELECT 1 FROM \"%w\" WHERE %s = ?1", p->table,
		    p->rowid) != 0 ||
	    prepare(new_db, &p->new_row, why, why_len,
		    "SELECT * FROM \"%w\" WHERE %s = ?1", p->table,
		    p->rowid) != 0)
		return -1;
	for (i = 0; i < p->n_idx; i++) {
		struct index_plan *x = &p->idx[i];
		sqlite3_str *s = sqlite3_str_new(NULL);
		char *where;

		for (j = 0; j < x->n_key; j++)
			sqlite3_str_appendf(s, "%s\"%w\" IS ?%d COLLATE \"%w\"",
					    j ? " AND " : "",
					    p->cols[x->cid[j]].name, j + 1,
					    x->coll[j]);
		where = sqlite3_str_finish(s);
		if (where == NULL) {
			errors_set(why, why_len, "out of memory");
			return -1;
		}
		if (prepare(new_db, &x->seek, why, why_len,
			    "SELECT count(*) FROM \"%w\" INDEXED BY \"%w\" "
			    "WHERE %s AND %s = ?%d",
			    p->table, x->name, where, p->rowid,
			    x->n_key + 1) != 0 ||
		    (x->unique &&
		     prepare(new_db, &x->uniq, why, why_len,
			     "SELECT count(*) FROM \"%w\" INDEXED BY \"%w\" "
			     "WHERE %s",
			     p->table, x->name, where) != 0)) {
			sqlite3_free(where);
			return -1;
		}
		sqlite3_free(where);
	}
	return 0;
}

/* The plan for table, or FALLBACK when the fast path does not apply. */
static int make_plan(sqlite3 *new_db, const struct schema *olds,
		     const struct schema *news, const char *table,
		     const struct store_rows_tree *trees, size_t n,
		     struct plan *p, char *why, size_t why_len)
{
	static const char *const rowid_names[] = {"rowid", "_rowid_", "oid"};
	const struct obj *to = store_rows_by_name(olds, table);
	const struct obj *tn = store_rows_by_name(news, table);
	sqlite3_stmt *st = NULL;
	size_t i, k;
	int mismatch = 0, rc, rv;

	/* New, changed, or special tables; CHECK constraints (a plain
	 * substring: a false match only costs the fallback). */
	if (to == NULL || tn == NULL || tn->root == 1 ||
	    strcmp(to->type, "table") != 0 || strcmp(tn->type, "table") != 0 ||
	    tn->sql == NULL || !same_sql(to, tn) ||
	    strcasestr(tn->sql, "check") != NULL)
		return FALLBACK;
	p->table = tn->name;
	p->tree = find_tree(trees, n, to->root, tn->root, &mismatch);
	/* Each index the same before and after, and its tree's roots too. */
	for (i = 0; i < olds->n; i++)
		if (strcmp(olds->v[i].type, "index") == 0 &&
		    sqlite3_stricmp(olds->v[i].tbl, table) == 0) {
			const struct obj *xn =
			    store_rows_by_name(news, olds->v[i].name);
			if (xn == NULL || sqlite3_stricmp(xn->tbl, table) != 0)
				return FALLBACK;
		}
	for (i = 0; i < news->n; i++) {
		const struct obj *xn = &news->v[i], *xo;
		struct index_plan *x;

		if (strcmp(xn->type, "index") != 0 ||
		    sqlite3_stricmp(xn->tbl, table) != 0)
			continue;
		xo = store_rows_by_name(olds, xn->name);
		if (xo == NULL || strcmp(xo->type, "index") != 0 ||
		    !same_sql(xo, xn))
			return FALLBACK;
		x = realloc(p->idx, (size_t)(p->n_idx + 1) * sizeof *x);
		if (x == NULL)
			goto oom;
		p->idx = x;
		x = &p->idx[p->n_idx++];
		memset(x, 0, sizeof *x);
		x->name = xn->name;
		x->tree = find_tree(trees, n, xo->root, xn->root, &mismatch);
	}
	if (mismatch)
		return FALLBACK;
	if (prepare(new_db, &st, why, why_len,
		    "SELECT wr, strict FROM pragma_table_list(%Q)", table) != 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		errors_set(why, why_len, "cannot read the kind of table %s: %s",
			   table, sqlite3_errmsg(new_db));
		sqlite3_finalize(st);
		return -1;
	}
	rv = sqlite3_column_int(st, 0) ? FALLBACK : 0;
	p->strict = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	if (rv != 0)
		return rv;
	if (prepare(new_db, &st, why, why_len,
		    "SELECT name, \"unique\", partial FROM "
		    "pragma_index_list(%Q)",
		    table) != 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		for (k = 0; k < (size_t)p->n_idx; k++)
			if (sqlite3_stricmp(p->idx[k].name, name) == 0)
				break;
		if (k == (size_t)p->n_idx || sqlite3_column_int(st, 2)) {
			rc = FALLBACK;
			break;
		}
		p->idx[k].unique = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == FALLBACK)
		return FALLBACK;
	if (rc != SQLITE_DONE) {
		errors_set(why, why_len, "cannot list the indexes of %s",
			   table);
		return -1;
	}
	rv = load_columns(new_db, p, why, why_len);
	for (k = 0; rv == 0 && k < (size_t)p->n_idx; k++)
		rv = load_index(new_db, &p->idx[k], why, why_len);
	if (rv != 0)
		return rv;
	for (k = 0; k < 3 && p->rowid == NULL; k++) {
		int j;
		for (j = 0; j < p->n_col; j++)
			if (sqlite3_stricmp(p->cols[j].name, rowid_names[k]) ==
			    0)
				break;
		if (j == p->n_col)
			p->rowid = rowid_names[k];
	}
	return p->rowid != NULL ? 0 : FALLBACK;
oom:
	errors_set(why, why_len, "out of memory");
	return -1;
}

static int add_item(struct plan *p, int64_t rowid, int tree, int after,
		    const struct records_cell *cell)
{
	struct item *it;

	if (p->n_items == p->cap_items) {
		size_t cap = p->cap_items ? 2 * p->cap_items : 256;
		struct item *grown = realloc(p->items, cap * sizeof *grown);
		if (grown == NULL)
			return -1;
		p->items = grown;
		p->cap_items = cap;
	}
	it = &p->items[p->n_items];
	it->payload = malloc(cell->size ? cell->size : 1);
	if (it->payload == NULL)
		return -1;
	memcpy(it->payload, cell->payload, cell->size);
	it->rowid = rowid;
	it->tree = tree;
	it->after = after;
	it->size = cell->size;
	p->n_items++;
	return 0;
}

/* Walking the listed pages of one tree on one side. */
struct walk {
	struct plan *p;
	struct index_plan *x; /* NULL: the table's own tree */
	int after;
	uint32_t pgno;
	int64_t prev; /* the last rowid on a table leaf */
	int has_prev;
	int64_t *entries;
	char *why;
	size_t why_len;
};

/* What is wrong with a page of the wrong kind or a cell of the wrong
 * shape: a refusal after the transaction, an internal error before. */
static int wrong(struct walk *w)
{
	return w->after ? REFUSED : -1;
}

static int walk_cell(void *arg, const struct records_cell *cell)
{
	struct walk *w = arg;
	struct records_record rec;
	int64_t rowid;
	char what[160];

	if (w->x == NULL) {
		/* Rowids strictly increase along a table page (interior
		 * pages are not walked: they hold only keys). */
		if (w->has_prev && cell->rowid <= w->prev) {
			errors_set(w->why, w->why_len,
				   "pushed page %" PRIu32 " of table %s: "
				   "rowid %" PRId64 " out of order",
				   w->pgno, w->p->table, cell->rowid);
			return wrong(w);
		}
		w->prev = cell->rowid;
		w->has_prev = 1;
		return add_item(w->p, cell->rowid, -1, w->after, cell) == 0
			   ? 0
			   : -1;
	}
	(*w->entries)++;
	if (records_parse(cell->payload, cell->size, &rec, what, sizeof what) !=
	    0) {
		errors_set(w->why, w->why_len,
			   "page %" PRIu32 " of index %s: cell %d holds a "
			   "malformed record (%s)",
			   w->pgno, w->x->name, cell->index, what);
		return wrong(w);
	}
	if (rec.n_fields != (uint32_t)w->x->n_key + 1 ||
	    record_int(rec.last_type, rec.last, &rowid) != 0) {
		errors_set(w->why, w->why_len,
			   "page %" PRIu32 " of index %s: cell %d is not a "
			   "key of %d columns and a rowid",
			   w->pgno, w->x->name, cell->index, w->x->n_key);
		return wrong(w);
	}
	return add_item(w->p, rowid, (int)(w->x - w->p->idx), w->after, cell) ==
		       0
		   ? 0
		   : -1;
}

static int walk_pages(struct plan *p, struct index_plan *x, int after,
		      store_rows_read_fn read_page, void *arg, char *why,
		      size_t why_len)
{
	const struct store_rows_tree *t = x ? x->tree : p->tree;
	const struct store_rows_page *pages;
	struct side side = {read_page, arg, after};
	size_t n, i;
	int rv;

	if (t == NULL)
		return 0;
	pages = after ? t->new_pages : t->old_pages;
	n = after ? t->n_new : t->n_old;
	for (i = 0; i < n; i++) {
		struct walk w = {p, x,    after, pages[i].pgno, 0,
				 0, NULL, why,   why_len};
		int kind = records_page_kind(w.pgno, pages[i].data);
		int is_index = kind == RECORDS_INDEX_LEAF ||
			       kind == RECORDS_INDEX_INTERIOR;

		if (x != NULL)
			w.entries = after ? &x->entries_new : &x->entries_old;
		if (kind < 0 || is_index != (x != NULL)) {
			errors_set(why, why_len,
				   "page %" PRIu32 " of %s %s is not a %s "
				   "b-tree page",
				   w.pgno, x ? "index" : "table",
				   x ? x->name : p->table,
				   x ? "index" : "table");
			return wrong(&w);
		}
		rv = records_page_cells(w.pgno, pages[i].data,
					store_rows_side_read, &side, walk_cell,
					&w, why, why_len);
		if (rv == REFUSED && !after)
			rv = -1;
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Orders items by rowid, tree and payload (the side last). */
static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c;

	if (x->rowid != y->rowid)
		return x->rowid < y->rowid ? -1 : 1;
	if (x->tree != y->tree)
		return x->tree < y->tree ? -1 : 1;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	c = memcmp(x->payload, y->payload, x->size);
	return c != 0 ? c : x->after - y->after;
}

/* R: the rowids with a cell or an entry that is on the listed pages more
 * (or fewer) times after than before.  A rowid whose cells and entries on
 * the listed pages are the same on both sides needs no check: its row was
 * on one page before, listed (then the same cell is listed after, and none
 * other with that rowid is) or not (then that page is unchanged), so the
 * row is the same after; so are its entries, by the same reasoning on each
 * index; and it adds nothing to either side of the count balance. */
static int find_r(struct plan *p)
{
	size_t i = 0, j;

	qsort(p->items, p->n_items, sizeof *p->items, cmp_item);
	p->r = malloc((p->n_items ? p->n_items : 1) * sizeof *p->r);
	if (p->r == NULL)
		return -1;
	while (i < p->n_items) {
		int64_t balance = 0;
		for (j = i; j < p->n_items; j++) {
			struct item *a = &p->items[i], *b = &p->items[j];
			if (a->rowid != b->rowid || a->tree != b->tree ||
			    a->size != b->size ||
			    memcmp(a->payload, b->payload, a->size) != 0)
				break;
			balance += b->after ? 1 : -1;
		}
		if (balance != 0 &&
		    (p->n_r == 0 || p->r[p->n_r - 1] != p->items[i].rowid))
			p->r[p->n_r++] = p->items[i].rowid;
		i = j;
	}
	return 0;
}

/* Whether row r exists before: 1, 0, or -1. */
static int old_exists(sqlite3 *db, struct plan *p, int64_t r, char *why,
		      size_t why_len)
{
	int rc;

	sqlite3_bind_int64(p->old_row, 1, r);
	rc = sqlite3_step(p->old_row);
	sqlite3_reset(p->old_row);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc == SQLITE_ROW;
	errors_set(why, why_len, "cannot read row %" PRId64 " of %s: %s", r,
		   p->table, sqlite3_errmsg(db));
	return -1;
}

/* The type a STRICT column's values must have (NULL aside), or 0 for ANY.
 * A REAL column may hold an integer in its record: it reads as REAL. */
static int strict_ok(const char *type, int t)
{
	if (sqlite3_stricmp(type, "INT") == 0 ||
	    sqlite3_stricmp(type, "INTEGER") == 0)
		return t == SQLITE_INTEGER;
	if (sqlite3_stricmp(type, "REAL") == 0)
		return t == SQLITE_FLOAT || t == SQLITE_INTEGER;
	if (sqlite3_stricmp(type, "TEXT") == 0)
		return t == SQLITE_TEXT;
	if (sqlite3_stricmp(type, "BLOB") == 0)
		return t == SQLITE_BLOB;
	return 1;
}

/* A count(*) statement's answer, or -1. */
static int64_t count(sqlite3 *db, sqlite3_stmt *st, char *why, size_t why_len)
{
	int64_t c = -1;
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		c = sqlite3_column_int64(st, 0);
	else
		errors_set(why, why_len, "cannot seek an index: %s",
			   sqlite3_errmsg(db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return c;
}

/* Row r after the transaction (p->new_row stepped on it) against its
 * columns' constraints and each index. */
static int check_row(sqlite3 *db, struct plan *p, int64_t r, char *why,
		     size_t why_len)
{
	sqlite3_stmt *row = p->new_row;
	int i, j, null_key;
	int64_t c;

	for (i = 0; i < p->n_col; i++) {
		int t = sqlite3_column_type(row, i);
		if (t == SQLITE_NULL && p->cols[i].notnull) {
			errors_set(why, why_len,
				   "pushed pages put NULL in %s.%s (row "
				   "%" PRId64 "), a NOT NULL column",
				   p->table, p->cols[i].name, r);
			return REFUSED;
		}
		if (t != SQLITE_NULL && p->strict &&
		    !strict_ok(p->cols[i].type, t)) {
			errors_set(why, why_len,
				   "pushed pages put a non-%s value in %s.%s "
				   "(row %" PRId64 "), a STRICT column",
				   p->cols[i].type, p->table, p->cols[i].name,
				   r);
			return REFUSED;
		}
	}
	for (i = 0; i < p->n_idx; i++) {
		struct index_plan *x = &p->idx[i];
		null_key = 0;
		for (j = 0; j < x->n_key; j++) {
			sqlite3_value *v = sqlite3_column_value(row, x->cid[j]);
			null_key |= sqlite3_value_type(v) == SQLITE_NULL;
			sqlite3_bind_value(x->seek, j + 1, v);
			if (x->uniq != NULL)
				sqlite3_bind_value(x->uniq, j + 1, v);
		}
		sqlite3_bind_int64(x->seek, x->n_key + 1, r);
		c = count(db, x->seek, why, why_len);
		if (c < 0)
			return -1;
		if (c == 0) {
			errors_set(why, why_len,
				   "pushed pages leave row %" PRId64
				   " of table %s without its entry in index %s",
				   r, p->table, x->name);
			return REFUSED;
		}
		if (c > 1) {
			errors_set(why, why_len,
				   "pushed pages leave row %" PRId64
				   " of table %s with %" PRId64
				   " entries in index %s",
				   r, p->table, c, x->name);
			return REFUSED;
		}
		if (x->uniq == NULL)
			continue;
		if (null_key) {
			sqlite3_clear_bindings(x->uniq);
			continue;
		}
		c = count(db, x->uniq, why, why_len);
		if (c < 0)
			return -1;
		if (c != 1) {
			errors_set(why, why_len,
				   "pushed pages leave a non-unique entry in "
				   "index %s: the key of row %" PRId64
				   " of table %s appears %" PRId64 " times",
				   x->name, r, p->table, c);
			return REFUSED;
		}
	}
	return 0;
}

static int check_rows(sqlite3 *old_db, sqlite3 *new_db, struct plan *p,
		      char *why, size_t why_len)
{
	size_t i;
	int k, rv;

	for (i = 0; i < p->n_r; i++) {
		int64_t r = p->r[i];
		int before = old_exists(old_db, p, r, why, why_len), rc, now;

		if (before < 0)
			return -1;
		sqlite3_bind_int64(p->new_row, 1, r);
		rc = sqlite3_step(p->new_row);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			rv = (sqlite3_extended_errcode(new_db) & 0xff) ==
				     SQLITE_CORRUPT
				 ? REFUSED
				 : -1;
			errors_set(
			    why, why_len, "%s row %" PRId64 " of table %s: %s",
			    rv == REFUSED ? "pushed pages leave unreadable"
					  : "cannot read",
			    r, p->table, sqlite3_errmsg(new_db));
			sqlite3_reset(p->new_row);
			return rv;
		}
		now = rc == SQLITE_ROW;
		rv = now ? check_row(new_db, p, r, why, why_len) : 0;
		sqlite3_reset(p->new_row);
		if (rv != 0)
			return rv;
		for (k = 0; k < p->n_idx; k++)
			p->idx[k].rows_delta += now - before;
	}
	return 0;
}

int store_rows_fast(sqlite3 *old_db, sqlite3 *new_db, const struct schema *olds,
		    const struct schema *news, const char *table,
		    const struct store_rows_tree *trees, size_t n,
		    store_rows_read_fn read_page, void *arg, char *why,
		    size_t why_len)
{
	struct plan p;
	int k, after, rv;

	memset(&p, 0, sizeof p);
	rv = make_plan(new_db, olds, news, table, trees, n, &p, why, why_len);
	if (rv != 0)
		goto out;
	for (after = 0; after <= 1; after++) {
		rv = walk_pages(&p, NULL, after, read_page, arg, why, why_len);
		for (k = 0; rv == 0 && k < p.n_idx; k++)
			rv = walk_pages(&p, &p.idx[k], after, read_page, arg,
					why, why_len);
		if (rv != 0)
			goto out;
	}
	if (find_r(&p) != 0) {
		errors_set(why, why_len, "out of memory");
		rv = -1;
		goto out;
	}
	if (p.n_r > 0)
		rv = prepare_statements(old_db, new_db, &p, why, why_len);
	if (rv == 0 && p.n_r > 0)
		rv = check_rows(old_db, new_db, &p, why, why_len);
	for (k = 0; rv == 0 && k < p.n_idx; k++) {
		struct index_plan *x = &p.idx[k];
		int64_t d = x->entries_new - x->entries_old;
		if (d == x->rows_delta)
			continue;
		errors_set(why, why_len,
			   "pushed pages change index %s by %+" PRId64
			   " entries but its table %s by %+" PRId64
			   " rows (wrong # of entries in index %s)",
			   x->name, d, p.table, x->rows_delta, x->name);
		rv = REFUSED;
	}
out:
	plan_free(&p);
	return rv;
}
