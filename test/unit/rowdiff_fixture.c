/* The transactions and the oracle of test_rowdiff (rowdiff_fixture.h). */
#include "rowdiff_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

char *rd_dir, *b_path, *a_path;

static void rd_load(struct file *f, const char *path)
{
	FILE *fp = fopen(path, "rb");
	long size;

	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	ck_assert_int_eq(size % PAGE, 0);
	f->n = (uint32_t)(size / PAGE);
	f->data = malloc(size ? (size_t)size : 1);
	ck_assert_uint_eq(fread(f->data, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
}

void rd_copy_file(const char *from, const char *to)
{
	struct file f;
	FILE *fp;

	rd_load(&f, from);
	fp = fopen(to, "wb");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(f.data, PAGE, f.n, fp), f.n);
	fclose(fp);
	free(f.data);
}

sqlite3 *rd_open_db(const char *path)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=4096; PRAGMA secure_delete=OFF");
	return db;
}

void rd_exec_on(const char *path, const char *sql)
{
	sqlite3 *db = rd_open_db(path);

	fixture_exec(db, sql);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

int rd_read_before(void *arg, uint32_t pgno, uint8_t *out)
{
	struct txn *t = arg;

	if (pgno < 1 || pgno > t->b.n)
		return -1;
	memcpy(out, t->b.data + (size_t)(pgno - 1) * PAGE, PAGE);
	return 0;
}

/* --- The oracle --------------------------------------------------------- */

static int64_t count_sql(sqlite3 *db, const char *fmt, const char *a,
			 const char *b)
{
	char *sql = sqlite3_mprintf(fmt, a, b, a, b);
	int64_t n = fixture_query_int(db, sql);

	sqlite3_free(sql);
	return n;
}

static int has_table(sqlite3 *db, const char *schema, const char *name)
{
	char *sql = sqlite3_mprintf("SELECT count(*) FROM %s.sqlite_master "
				    "WHERE type = 'table' AND name = %Q",
				    schema, name);
	int64_t n = fixture_query_int(db, sql);

	sqlite3_free(sql);
	return n > 0;
}

/* The rowid's name in a table: the first of rowid, _rowid_, oid that is
 * not a column's. */
static const char *rowid_name(sqlite3 *db, const char *schema, const char *name)
{
	static const char *const names[] = {"rowid", "_rowid_", "oid"};
	int i;

	for (i = 0; i < 3; i++) {
		char *sql = sqlite3_mprintf(
		    "SELECT count(*) FROM pragma_table_info(%Q, %Q) WHERE "
		    "name = %Q COLLATE NOCASE",
		    name, schema, names[i]);
		int64_t n = fixture_query_int(db, sql);

		sqlite3_free(sql);
		if (n == 0)
			return names[i];
	}
	ck_abort_msg("no rowid name in %s", name);
	return NULL;
}

/* The key of a table as SQL: its rowid, or its PRIMARY KEY's columns for
 * a WITHOUT ROWID table (sqlite3_free). */
static char *key_sql(sqlite3 *db, const char *schema, const char *name)
{
	char *sql =
	    sqlite3_mprintf("SELECT rowid FROM %s.\"%w\"", schema, name);
	char *key = NULL;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	sqlite3_free(sql);
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		return sqlite3_mprintf("%s", rowid_name(db, schema, name));
	sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q, %Q) "
			      "WHERE pk > 0 ORDER BY pk",
			      name, schema);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *next = sqlite3_mprintf(
		    "%s%s\"%w\"", key ? key : "", key ? ", " : "",
		    (const char *)sqlite3_column_text(st, 0));
		sqlite3_free(key);
		key = next;
	}
	sqlite3_finalize(st);
	sqlite3_free(sql);
	ck_assert_ptr_nonnull(key);
	return key;
}

static void count_reported(const struct txn *t, const char *table, size_t n[4])
{
	size_t i;

	memset(n, 0, 4 * sizeof *n);
	for (i = 0; i < t->n; i++)
		if (strcmp(t->c[i].table, table) == 0)
			n[t->c[i].op]++;
}

/* Table name's expected inserts, updates and deletes against the reported
 * ones. */
static void oracle_table(sqlite3 *db, const struct txn *t, const char *name)
{
	const char *sqlname =
	    strcmp(name, "sqlite_schema") == 0 ? "sqlite_master" : name;
	int in_b =
	    strcmp(name, "sqlite_schema") == 0 || has_table(db, "main", name);
	int in_a =
	    strcmp(name, "sqlite_schema") == 0 || has_table(db, "a", name);
	int64_t ins = 0, del = 0, upd = 0;
	size_t n[4];
	char *qb, *qa, *kb, *ka;

	qb = sqlite3_mprintf("main.\"%w\"", sqlname);
	qa = sqlite3_mprintf("a.\"%w\"", sqlname);
	if (in_b && in_a) {
		kb = key_sql(db, "main", sqlname);
		ka = key_sql(db, "a", sqlname);
		ck_assert_str_eq(kb, ka);
		{
			char *sel = sqlite3_mprintf(
			    "SELECT count(*) FROM (SELECT %s FROM %%s EXCEPT "
			    "SELECT %s FROM %%s)",
			    kb, kb);
			char *rows = sqlite3_mprintf(
			    "SELECT count(*) FROM (SELECT %s, * FROM %%s "
			    "EXCEPT SELECT %s, * FROM %%s)",
			    kb, kb);
			char *s1 = sqlite3_mprintf(sel, qa, qb);
			char *s2 = sqlite3_mprintf(sel, qb, qa);
			char *s3 = sqlite3_mprintf(rows, qa, qb);

			ins = fixture_query_int(db, s1);
			del = fixture_query_int(db, s2);
			upd = fixture_query_int(db, s3) - ins;
			sqlite3_free(sel);
			sqlite3_free(rows);
			sqlite3_free(s1);
			sqlite3_free(s2);
			sqlite3_free(s3);
		}
		sqlite3_free(kb);
		sqlite3_free(ka);
	} else if (in_b) {
		del = count_sql(db, "SELECT count(*) FROM %s", qb, "");
	} else if (in_a) {
		ins = count_sql(db, "SELECT count(*) FROM %s", qa, "");
	}
	count_reported(t, name, n);
	ck_assert_msg(n[ROWDIFF_INSERT] == (size_t)ins &&
			  n[ROWDIFF_UPDATE] == (size_t)upd &&
			  n[ROWDIFF_DELETE] == (size_t)del,
		      "%s: reported %zu/%zu/%zu inserts/updates/deletes, the "
		      "oracle says %lld/%lld/%lld",
		      name, n[ROWDIFF_INSERT], n[ROWDIFF_UPDATE],
		      n[ROWDIFF_DELETE], (long long)ins, (long long)upd,
		      (long long)del);
	sqlite3_free(qb);
	sqlite3_free(qa);
}

/* Each reported rowid-table change's row is where its kind says. */
static void oracle_rows(sqlite3 *db, const struct txn *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct rowdiff_change *c = &t->c[i];
		const char *name = strcmp(c->table, "sqlite_schema") == 0
				       ? "sqlite_master"
				       : c->table;
		int s;

		ck_assert_ptr_nonnull(c->key);
		ck_assert(c->op == ROWDIFF_INSERT ? c->before == NULL
						  : c->before != NULL);
		ck_assert(c->op == ROWDIFF_DELETE ? c->after == NULL
						  : c->after != NULL);
		if (c->op == ROWDIFF_UPDATE)
			ck_assert(!json_equal(c->before, c->after));
		if (c->rowid == 0)
			continue;
		for (s = 0; s < 2; s++) {
			const char *schema = s ? "a" : "main";
			int want = s ? c->op != ROWDIFF_DELETE
				     : c->op != ROWDIFF_INSERT;
			char *sql;

			if (!want && strcmp(name, "sqlite_master") != 0 &&
			    !has_table(db, schema, name))
				continue;
			sql = sqlite3_mprintf(
			    "SELECT count(*) FROM %s.\"%w\" WHERE %s = %lld",
			    schema, name, rowid_name(db, schema, name),
			    (long long)c->rowid);
			ck_assert_msg(fixture_query_int(db, sql) == want,
				      "%s rowid %lld (op %d) %s", c->table,
				      (long long)c->rowid, c->op, schema);
			sqlite3_free(sql);
		}
	}
}

/* Changes come sqlite_schema first, then by table name, then by key. */
static void oracle_order(const struct txn *t)
{
	size_t i;

	for (i = 1; i < t->n; i++) {
		const char *p = t->c[i - 1].table, *q = t->c[i].table;
		int ps = strcmp(p, "sqlite_schema") == 0;
		int qs = strcmp(q, "sqlite_schema") == 0;

		ck_assert(ps >= qs);
		if (ps == qs)
			ck_assert_int_le(strcmp(p, q), 0);
		/* By rowid where it is the key (a declared PRIMARY KEY's
		 * order is checked by the cases that have one). */
		if (strcmp(p, q) == 0 && t->c[i].rowid != 0 &&
		    json_object_get(t->c[i].key, "rowid") != NULL)
			ck_assert_int_lt(t->c[i - 1].rowid, t->c[i].rowid);
	}
}

static void oracle(const struct txn *t)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *sql;

	ck_assert_int_eq(
	    sqlite3_open_v2(b_path, &db, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	sql = sqlite3_mprintf("ATTACH %Q AS a", a_path);
	fixture_exec(db, sql);
	sqlite3_free(sql);
	oracle_table(db, t, "sqlite_schema");
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT name FROM main.sqlite_master WHERE "
			       "type = 'table' UNION SELECT name FROM "
			       "a.sqlite_master WHERE type = 'table'",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		oracle_table(db, t, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	oracle_rows(db, t);
	oracle_order(t);
	sqlite3_close(db);
}

/* --- Running a transaction ---------------------------------------------- */

void rd_setup(void)
{
	rd_dir = fixture_tmpdir();
	b_path = fixture_path(rd_dir, "b.db");
	a_path = fixture_path(rd_dir, "a.db");
}

void rd_teardown(void)
{
	fixture_rmdir(rd_dir);
	free(b_path);
	free(a_path);
}

void rd_txn_free(struct txn *t)
{
	rowdiff_free(t->c, t->n);
	free(t->pages);
	free(t->b.data);
	free(t->a.data);
}

/* The pages that differ between the files, then the difference, checked
 * by the oracle. */
void rd_diff_files(struct txn *t)
{
	struct rowdiff_input in;
	uint32_t pg, max;
	char err[256];

	memset(t, 0, sizeof *t);
	rd_load(&t->b, b_path);
	rd_load(&t->a, a_path);
	max = t->b.n > t->a.n ? t->b.n : t->a.n;
	t->pages = calloc(max + 1, sizeof *t->pages);
	for (pg = 1; pg <= max; pg++) {
		const uint8_t *b =
		    pg <= t->b.n ? t->b.data + (size_t)(pg - 1) * PAGE : NULL;
		const uint8_t *a =
		    pg <= t->a.n ? t->a.data + (size_t)(pg - 1) * PAGE : NULL;

		if (b != NULL && a != NULL && memcmp(b, a, PAGE) == 0)
			continue;
		t->pages[t->n_pages++] = (struct rowdiff_page){pg, b, a};
	}
	in = (struct rowdiff_input){.read = rd_read_before,
				    .arg = t,
				    .pages = t->pages,
				    .n_pages = t->n_pages,
				    .size_before = t->b.n,
				    .size_after = t->a.n,
				    .stats = &t->st};
	ck_assert_msg(rowdiff_compute(&in, &t->c, &t->n, err, sizeof err) == 0,
		      "%s", err);
	oracle(t);
}

/* setup_sql makes the database before; txn_sql runs on a copy. */
void rd_run(struct txn *t, const char *setup_sql, const char *txn_sql)
{
	if (setup_sql != NULL)
		rd_exec_on(b_path, setup_sql);
	else
		fclose(fopen(b_path, "wb"));
	rd_copy_file(b_path, a_path);
	rd_exec_on(a_path, txn_sql);
	rd_diff_files(t);
}

size_t rd_count_op(const struct txn *t, const char *table, enum rowdiff_op op)
{
	size_t n[4];

	count_reported(t, table, n);
	return n[op];
}

/* Whether page pgno is among the changed pages. */
int rd_changed(const struct txn *t, uint32_t pgno)
{
	size_t i;

	for (i = 0; i < t->n_pages; i++)
		if (t->pages[i].pgno == pgno)
			return 1;
	return 0;
}

uint32_t rd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

void rd_assert_no_fallback(const struct txn *t)
{
	ck_assert_int_eq(t->st.overflow_fallback, 0);
	ck_assert_int_eq(t->st.without_rowid_fallback, 0);
	ck_assert_uint_eq(t->st.tables_merged, 0);
}

const char *rd_value_of(json_t *row, const char *col)
{
	json_t *v = json_object_get(json_object_get(row, col), "value");

	ck_assert_ptr_nonnull(v);
	return json_string_value(v);
}

const struct rowdiff_change *rd_find(const struct txn *t, const char *table,
				     enum rowdiff_op op)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->c[i].table, table) == 0 && t->c[i].op == op)
			return &t->c[i];
	ck_abort_msg("no change of kind %d in %s", op, table);
	return NULL;
}
