/* The rows of rowdiff: the schemas of the two views, the rows of a table
 * looked up by rowid or merged whole by key, and their values as Hrana
 * JSON (the primary encodes them the same way, server/hrana_values.c). */
#include "rowdiff_internal.h"
#include "proto/values.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/errors.h"

/* --- Schemas ------------------------------------------------------------ */

static int add_table(struct rowdiff_side *s, const char *name, uint32_t root,
		     int without_rowid)
{
	struct rowdiff_table *t =
	    realloc(s->tables, (s->n_tables + 1) * sizeof *s->tables);

	if (t == NULL)
		return -1;
	s->tables = t;
	t += s->n_tables;
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	if (t->name == NULL)
		return -1;
	t->root = root;
	t->without_rowid = without_rowid;
	t->rowid_name = "rowid";
	s->n_tables++;
	return 0;
}

static int load_pk(struct rowdiff_side *s, struct rowdiff_table *t, char *err,
		   size_t err_len)
{
	sqlite3 *db = page_view_db(s->v);
	sqlite3_stmt *st = NULL;
	int rc, rv = -1;

	rc = sqlite3_prepare_v2(db,
				"SELECT name FROM pragma_table_info(?1) "
				"WHERE pk > 0 ORDER BY pk",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **pk = realloc(t->pk, (t->n_pk + 1) * sizeof *pk);

		if (pk == NULL)
			goto fail;
		t->pk = pk;
		pk[t->n_pk] = strdup((const char *)sqlite3_column_text(st, 0));
		if (pk[t->n_pk] == NULL)
			goto fail;
		t->n_pk++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	rv = 0;
fail:
	if (rv != 0)
		errors_set(err, err_len, "cannot read the columns of %s: %s",
			   t->name, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rv;
}

/* A column may be called rowid (or _rowid_, oid): SQL then means the
 * column by that name, and the rowid goes by another of the three. */
static int pick_rowid_name(struct rowdiff_side *s, struct rowdiff_table *t,
			   char *err, size_t err_len)
{
	static const char *const names[] = {"rowid", "_rowid_", "oid"};
	sqlite3 *db = page_view_db(s->v);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	rc = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM pragma_table_info(?1) "
				"WHERE name = ?2 COLLATE NOCASE",
				-1, &st, NULL);
	for (i = 0; rc == SQLITE_OK && i < 3; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		rc = SQLITE_OK;
		if (sqlite3_column_int(st, 0) == 0) {
			t->rowid_name = names[i];
			sqlite3_finalize(st);
			return 0;
		}
	}
	if (rc == SQLITE_OK)
		errors_set(err, err_len,
			   "table %s has columns rowid, _rowid_ and oid: its "
			   "rowids cannot be read",
			   t->name);
	else
		errors_set(err, err_len, "cannot read the columns of %s: %s",
			   t->name, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return -1;
}

int rowdiff_schema_load(struct rowdiff_side *s, char *err, size_t err_len)
{
	uint8_t page[PAGE_VIEW_PAGE_SIZE];
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	int rc, rv = -1;

	if (s->v == NULL)
		return 0; /* an empty database has no tables, not even one */
	db = page_view_db(s->v);
	if (add_table(s, "sqlite_schema", 1, 0) != 0)
		goto oom;
	rc = sqlite3_prepare_v2(db,
				"SELECT name, rootpage FROM sqlite_master "
				"WHERE type = 'table'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sql;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		sqlite3_int64 root = sqlite3_column_int64(st, 1);
		uint8_t type;

		if (root <= 0)
			continue; /* a virtual table stores no rows */
		if (name == NULL || root > s->size ||
		    page_view_read(s->v, (uint32_t)root, page) != 0) {
			errors_set(err, err_len,
				   "cannot read the root page of table %s",
				   name ? name : "?");
			goto out;
		}
		type = page[root == 1 ? 100 : 0];
		if (type != 2 && type != 5 && type != 10 && type != 13) {
			errors_set(err, err_len,
				   "the root page %lld of table %s is not a "
				   "b-tree page",
				   (long long)root, name);
			goto out;
		}
		/* WITHOUT ROWID tables are index b-trees. */
		if (add_table(s, name, (uint32_t)root, type == 2 || type == 10))
			goto oom;
		if (load_pk(s, &s->tables[s->n_tables - 1], err, err_len))
			goto out;
		if (!s->tables[s->n_tables - 1].without_rowid &&
		    pick_rowid_name(s, &s->tables[s->n_tables - 1], err,
				    err_len) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		goto sql;
	rv = 0;
	goto out;
sql:
	errors_set(err, err_len, "cannot read the schema: %s",
		   sqlite3_errmsg(db));
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	sqlite3_finalize(st);
	return rv;
}

void rowdiff_schema_free(struct rowdiff_side *s)
{
	size_t i, k;

	for (i = 0; i < s->n_tables; i++) {
		for (k = 0; k < s->tables[i].n_pk; k++)
			free(s->tables[i].pk[k]);
		free(s->tables[i].pk);
		free(s->tables[i].name);
	}
	free(s->tables);
	s->tables = NULL;
	s->n_tables = 0;
}

/* --- Rows --------------------------------------------------------------- */

/* The row at the statement's columns from off on, as {"col": value}. */
static json_t *row_json(sqlite3_stmt *st, int off)
{
	json_t *row = json_object();
	int i, n = sqlite3_column_count(st);

	for (i = off; row != NULL && i < n; i++)
		if (json_object_set_new(row, sqlite3_column_name(st, i),
					values_from_column(st, i)) != 0) {
			json_decref(row);
			row = NULL;
		}
	return row;
}

static int column_index(sqlite3_stmt *st, int off, const char *name)
{
	int i, n = sqlite3_column_count(st);

	for (i = off; i < n; i++)
		if (strcasecmp(sqlite3_column_name(st, i), name) == 0)
			return i;
	return -1;
}

static json_t *key_json(const struct rowdiff_table *t, sqlite3_stmt *st,
			int off, int64_t rowid)
{
	json_t *key = json_object();
	size_t i;
	int col;

	if (key == NULL)
		return NULL;
	if (t->n_pk == 0) {
		if (json_object_set_new(key, "rowid", json_integer(rowid)))
			goto fail;
		return key;
	}
	for (i = 0; i < t->n_pk; i++) {
		col = column_index(st, off, t->pk[i]);
		if (col < 0 ||
		    json_object_set_new(key, t->pk[i],
					values_from_column(st, col)) != 0)
			goto fail;
	}
	return key;
fail:
	json_decref(key);
	return NULL;
}

/* Two values exactly as stored (no text fixing, no affinity). */
static int same_value(sqlite3_stmt *a, int ia, sqlite3_stmt *b, int ib)
{
	int type = sqlite3_column_type(a, ia);
	int n;

	if (type != sqlite3_column_type(b, ib))
		return 0;
	switch (type) {
	case SQLITE_INTEGER:
		return sqlite3_column_int64(a, ia) ==
		       sqlite3_column_int64(b, ib);
	case SQLITE_FLOAT:
		return sqlite3_column_double(a, ia) ==
		       sqlite3_column_double(b, ib);
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		n = sqlite3_column_bytes(a, ia);
		return n == sqlite3_column_bytes(b, ib) &&
		       (n == 0 ||
			memcmp(sqlite3_column_blob(a, ia),
			       sqlite3_column_blob(b, ib), (size_t)n) == 0);
	default:
		return 1;
	}
}

static int same_row(sqlite3_stmt *a, sqlite3_stmt *b, int off)
{
	int i, n = sqlite3_column_count(a);

	if (n != sqlite3_column_count(b))
		return 0;
	for (i = off; i < n; i++)
		if (strcmp(sqlite3_column_name(a, i),
			   sqlite3_column_name(b, i)) != 0 ||
		    !same_value(a, i, b, i))
			return 0;
	return 1;
}

/* SQLite's order of two key values under BINARY: NULL, numbers, text,
 * blobs. */
static int rank(int type)
{
	switch (type) {
	case SQLITE_NULL:
		return 0;
	case SQLITE_INTEGER:
	case SQLITE_FLOAT:
		return 1;
	case SQLITE_TEXT:
		return 2;
	default:
		return 3;
	}
}

static int cmp_value(sqlite3_stmt *a, int ia, sqlite3_stmt *b, int ib)
{
	int ta = sqlite3_column_type(a, ia), tb = sqlite3_column_type(b, ib);
	int na, nb, c;

	if (rank(ta) != rank(tb))
		return rank(ta) < rank(tb) ? -1 : 1;
	switch (rank(ta)) {
	case 0:
		return 0;
	case 1:
		if (ta == SQLITE_INTEGER && tb == SQLITE_INTEGER) {
			sqlite3_int64 x = sqlite3_column_int64(a, ia);
			sqlite3_int64 y = sqlite3_column_int64(b, ib);
			return x < y ? -1 : x > y;
		} else {
			long double x =
			    ta == SQLITE_INTEGER
				? (long double)sqlite3_column_int64(a, ia)
				: sqlite3_column_double(a, ia);
			long double y =
			    tb == SQLITE_INTEGER
				? (long double)sqlite3_column_int64(b, ib)
				: sqlite3_column_double(b, ib);
			return x < y ? -1 : x > y;
		}
	default:
		na = sqlite3_column_bytes(a, ia);
		nb = sqlite3_column_bytes(b, ib);
		c = memcmp(sqlite3_column_blob(a, ia),
			   sqlite3_column_blob(b, ib),
			   (size_t)(na < nb ? na : nb));
		if (c != 0 || na == nb)
			return c < 0 ? -1 : c > 0;
		return na < nb ? -1 : 1;
	}
}

/* --- Changes ------------------------------------------------------------ */

static int emit(struct rowdiff_out *o, const char *table, enum rowdiff_op op,
		int64_t rowid, json_t *key, json_t *before, json_t *after)
{
	struct rowdiff_change *c;

	if (key == NULL || (op != ROWDIFF_INSERT && before == NULL) ||
	    (op != ROWDIFF_DELETE && after == NULL))
		goto fail;
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 16;

		c = realloc(o->c, cap * sizeof *c);
		if (c == NULL)
			goto fail;
		o->c = c;
		o->cap = cap;
	}
	c = &o->c[o->n];
	c->table = strdup(table);
	if (c->table == NULL)
		goto fail;
	c->op = op;
	c->rowid = rowid;
	c->key = key;
	c->before = before;
	c->after = after;
	o->n++;
	return 0;
fail:
	json_decref(key);
	json_decref(before);
	json_decref(after);
	return -1;
}

/* The row of side s's statement as a change: the key from the row the
 * change names it by. */
static int emit_row(struct rowdiff_out *o, const struct rowdiff_job *j,
		    enum rowdiff_op op, sqlite3_stmt *b, sqlite3_stmt *a,
		    int off, int64_t rowid)
{
	const struct rowdiff_table *t =
	    op == ROWDIFF_INSERT ? j->t[1] : j->t[0];
	sqlite3_stmt *by = op == ROWDIFF_INSERT ? a : b;

	return emit(o, j->name, op, t->without_rowid ? 0 : rowid,
		    key_json(t, by, off, rowid),
		    op == ROWDIFF_INSERT ? NULL : row_json(b, off),
		    op == ROWDIFF_DELETE ? NULL : row_json(a, off));
}

/* The name SQL knows a table by, quoted (sqlite3_free). */
static char *sql_name(const struct rowdiff_table *t)
{
	if (t->root == 1)
		return sqlite3_mprintf("sqlite_master");
	return sqlite3_mprintf("\"%w\"", t->name);
}

static int prepare(struct rowdiff_side *s, const struct rowdiff_table *t,
		   const char *fmt, const char *order, sqlite3_stmt **st,
		   char *err, size_t err_len)
{
	char *name = sql_name(t), *sql = NULL;
	int rc = SQLITE_NOMEM;

	if (name != NULL)
		sql = sqlite3_mprintf(fmt, name, order ? order : "");
	if (sql != NULL)
		rc = sqlite3_prepare_v2(page_view_db(s->v), sql, -1, st, NULL);
	sqlite3_free(name);
	sqlite3_free(sql);
	if (rc == SQLITE_OK)
		return 0;
	errors_set(err, err_len, "cannot read table %s: %s", t->name,
		   sqlite3_errmsg(page_view_db(s->v)));
	return -1;
}

/* Lookups: each touched rowid in both views. */
static int run_lookups(struct rowdiff_side sides[2], struct rowdiff_job *j,
		       struct rowdiff_out *o, struct rowdiff_stats *st,
		       char *err, size_t err_len)
{
	sqlite3_stmt *q[2] = {NULL, NULL};
	size_t i;
	int s, rv = -1;

	for (s = 0; s < 2; s++) {
		char *where =
		    sqlite3_mprintf(" WHERE %s = ?1", j->t[s]->rowid_name);
		int bad = where == NULL ||
			  prepare(&sides[s], j->t[s], "SELECT * FROM %s%s",
				  where, &q[s], err, err_len) != 0;

		if (where == NULL)
			errors_set(err, err_len, "out of memory");
		sqlite3_free(where);
		if (bad)
			goto out;
	}
	for (i = 0; i < j->n_rowids; i++) {
		int has[2];

		for (s = 0; s < 2; s++) {
			int rc;

			sqlite3_reset(q[s]);
			sqlite3_bind_int64(q[s], 1, j->rowids[i]);
			rc = sqlite3_step(q[s]);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
				errors_set(
				    err, err_len, "cannot read a row of %s: %s",
				    j->name,
				    sqlite3_errmsg(page_view_db(sides[s].v)));
				goto out;
			}
			has[s] = rc == SQLITE_ROW;
		}
		st->rows_looked_up++;
		if (has[0] && has[1] && same_row(q[0], q[1], 0))
			continue;
		if ((has[0] || has[1]) &&
		    emit_row(o, j,
			     !has[0]   ? ROWDIFF_INSERT
			     : !has[1] ? ROWDIFF_DELETE
				       : ROWDIFF_UPDATE,
			     q[0], q[1], 0, j->rowids[i]) != 0) {
			errors_set(err, err_len, "out of memory");
			goto out;
		}
	}
	rv = 0;
out:
	sqlite3_finalize(q[0]);
	sqlite3_finalize(q[1]);
	return rv;
}

/* The ORDER BY of a whole read: the rowid, or the PRIMARY KEY under
 * BINARY (whatever its declared collation and order), the order
 * cmp_value follows. */
static char *order_by(const struct rowdiff_table *t)
{
	char *sql = sqlite3_mprintf(" ORDER BY "), *next;
	size_t i;

	if (!t->without_rowid || t->n_pk == 0) {
		sqlite3_free(sql);
		return sqlite3_mprintf(" ORDER BY %s", t->rowid_name);
	}
	for (i = 0; sql != NULL && i < t->n_pk; i++) {
		next = sqlite3_mprintf("%s%s\"%w\" COLLATE BINARY", sql,
				       i ? ", " : "", t->pk[i]);
		sqlite3_free(sql);
		sql = next;
	}
	return sql;
}

static int same_pk(const struct rowdiff_table *a, const struct rowdiff_table *b)
{
	size_t i;

	if (a->without_rowid != b->without_rowid || a->n_pk != b->n_pk)
		return 0;
	for (i = 0; i < a->n_pk; i++)
		if (strcasecmp(a->pk[i], b->pk[i]) != 0)
			return 0;
	return 1;
}

/* Which of the two current rows comes first (each side NULL at its end). */
static int cmp_rows(const struct rowdiff_job *j, sqlite3_stmt *a,
		    sqlite3_stmt *b)
{
	const struct rowdiff_table *t = j->t[0];
	size_t i;
	int c;

	if (a == NULL || b == NULL)
		return a == NULL ? 1 : -1;
	if (!t->without_rowid)
		return cmp_value(a, 0, b, 0);
	for (i = 0; i < t->n_pk; i++) {
		c = cmp_value(a, column_index(a, 0, t->pk[i]), b,
			      column_index(b, 0, t->pk[i]));
		if (c != 0)
			return c;
	}
	return 0;
}

/* Both views' rows in key order, merged; with merge unset (the table
 * differs in kind or key, or is in one view only), the rows before are
 * all deletes and those after all inserts. */
static int run_whole(struct rowdiff_side sides[2], struct rowdiff_job *j,
		     int merge, struct rowdiff_out *o, char *err,
		     size_t err_len)
{
	sqlite3_stmt *q[2] = {NULL, NULL}, *cur[2];
	int s, off[2] = {0, 0}, need[2] = {1, 1}, rv = -1;

	for (s = 0; s < 2; s++) {
		char *order, *fmt;

		if (j->t[s] == NULL)
			continue;
		order = order_by(j->t[s]);
		off[s] = j->t[s]->without_rowid ? 0 : 1;
		/* (%%s: the table and the order, filled by prepare) */
		fmt = off[s] ? sqlite3_mprintf("SELECT %s, * FROM %%s%%s",
					       j->t[s]->rowid_name)
			     : sqlite3_mprintf("SELECT * FROM %%s%%s");
		if (order == NULL || fmt == NULL ||
		    prepare(&sides[s], j->t[s], fmt, order, &q[s], err,
			    err_len) != 0) {
			sqlite3_free(order);
			sqlite3_free(fmt);
			goto out;
		}
		sqlite3_free(order);
		sqlite3_free(fmt);
	}
	for (s = 0; s < 2; s++)
		cur[s] = q[s];
	for (;;) {
		int c;

		/* Step each side whose row was consumed (or not read yet). */
		for (s = 0; s < 2; s++) {
			int rc;

			if (cur[s] == NULL || !need[s])
				continue;
			need[s] = 0;
			rc = sqlite3_step(cur[s]);
			if (rc == SQLITE_DONE) {
				cur[s] = NULL;
			} else if (rc != SQLITE_ROW) {
				errors_set(
				    err, err_len, "cannot read table %s: %s",
				    j->name,
				    sqlite3_errmsg(page_view_db(sides[s].v)));
				goto out;
			}
		}
		if (cur[0] == NULL && cur[1] == NULL)
			break;
		if (!merge)
			c = cur[0] != NULL ? -1 : 1;
		else
			c = cmp_rows(j, cur[0], cur[1]);
		if (c == 0 && same_row(cur[0], cur[1], off[0])) {
			/* the same row in both: no change */
		} else if (emit_row(o, j,
				    c < 0   ? ROWDIFF_DELETE
				    : c > 0 ? ROWDIFF_INSERT
					    : ROWDIFF_UPDATE,
				    cur[0], cur[1], c > 0 ? off[1] : off[0],
				    off[c > 0]
					? sqlite3_column_int64(cur[c > 0], 0)
					: 0) != 0) {
			errors_set(err, err_len, "out of memory");
			goto out;
		}
		need[0] = c <= 0;
		need[1] = c >= 0;
	}
	rv = 0;
out:
	sqlite3_finalize(q[0]);
	sqlite3_finalize(q[1]);
	return rv;
}

int rowdiff_job_run(struct rowdiff_side sides[2], struct rowdiff_job *j,
		    struct rowdiff_out *o, struct rowdiff_stats *st, char *err,
		    size_t err_len)
{
	struct rowdiff_table *b = j->t[0], *a = j->t[1];

	size_t start = o->n;
	int rv;

	if (b != NULL && a != NULL && same_pk(b, a)) {
		if (j->whole) {
			st->tables_merged++;
			rv = run_whole(sides, j, 1, o, err, err_len);
		} else if (b->without_rowid || j->n_rowids == 0) {
			return 0;
		} else {
			rv = run_lookups(sides, j, o, st, err, err_len);
		}
		/* Rows come by rowid; a declared PRIMARY KEY orders them
		 * otherwise (a WITHOUT ROWID table's come in that order). */
		if (rv == 0 && !b->without_rowid && b->n_pk > 0)
			rowdiff_sort_by_key(o->c + start, o->n - start, b);
		return rv;
	}
	if (b == NULL && a == NULL)
		return 0;
	/* Created, dropped, or replaced by a table of another kind or key:
	 * every row is a change. */
	st->tables_listed++;
	return run_whole(sides, j, 0, o, err, err_len);
}
