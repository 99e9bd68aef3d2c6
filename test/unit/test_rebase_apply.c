/* sync/rebase_apply.h on a real database: the "primary" is an in-memory
 * database set up with SQL, and each case re-applies changes as rowdiff
 * gives them.  The rows of a change are written as SELECTs of one row, run
 * on a scratch connection and turned into Hrana values by
 * values_from_column (so the values have exactly SQLite's types), and
 * every batch goes through JSON text as the rebase plan file keeps it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "proto/values.h"
#include "sync/rebase_apply.h"

static sqlite3 *db, *scratch;
static struct rebase_apply *ra;
static json_t *conflicts;
static char err[512];

static void setup(void)
{
	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_open(":memory:", &scratch), SQLITE_OK);
	ra = rebase_apply_new();
	ck_assert_ptr_nonnull(ra);
	conflicts = json_array();
	err[0] = '\0';
}

static void teardown(void)
{
	json_decref(conflicts);
	rebase_apply_free(ra);
	sqlite3_close(scratch);
	sqlite3_close(db);
}

/* --- Building changes --------------------------------------------------- */

/* The one row of a SELECT as {"col": Hrana value}; NULL for NULL. */
static json_t *row(const char *select)
{
	sqlite3_stmt *st;
	json_t *r;
	int i;

	if (select == NULL)
		return NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(scratch, select, -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	r = json_object();
	for (i = 0; i < sqlite3_column_count(st); i++)
		json_object_set_new(r, sqlite3_column_name(st, i),
				    values_from_column(st, i));
	sqlite3_finalize(st);
	return r;
}

/* A change of a table with a PRIMARY KEY: key, before and after are
 * SELECTs (NULL: none). */
static json_t *change(const char *table, const char *op, const char *key,
		      const char *before, const char *after)
{
	return json_pack("{s:s, s:s, s:o, s:o?, s:o?}", "table", table, "op",
			 op, "key", row(key), "before", row(before), "after",
			 row(after));
}

/* A change of a table without a declared PRIMARY KEY: keyed by rowid. */
static json_t *change_rowid(const char *table, const char *op, long long rowid,
			    const char *before, const char *after)
{
	return json_pack("{s:s, s:s, s:{s:I}, s:o?, s:o?}", "table", table,
			 "op", op, "key", "rowid", (json_int_t)rowid, "before",
			 row(before), "after", row(after));
}

/* A row of sqlite_schema as a SELECT (sqlite3_free). */
static char *schema_row(const char *type, const char *name, int rootpage,
			const char *sql)
{
	return sqlite3_mprintf("SELECT %Q AS type, %Q AS name, %Q AS tbl_name,"
			       " %d AS rootpage, %Q AS sql",
			       type, name, name, rootpage, sql);
}

static json_t *schema_change(const char *op, long long rowid, const char *type,
			     const char *name, const char *sql_before,
			     const char *sql_after)
{
	char *b = NULL, *a = NULL;
	json_t *c;

	if (strcmp(op, "insert") != 0)
		b = schema_row(type, name, 2, sql_before);
	if (strcmp(op, "delete") != 0)
		a = schema_row(type, name, 3, sql_after);
	c = change_rowid("sqlite_schema", op, rowid, b, a);
	sqlite3_free(b);
	sqlite3_free(a);
	return c;
}

/* Apply the changes (NULL-terminated; consumed) in a transaction of
 * their own: committed when applied, else rolled back. */
static int apply(json_t *first, ...)
{
	json_t *arr = json_array(), *c, *loaded;
	va_list ap;
	char *text;
	int rv;

	va_start(ap, first);
	for (c = first; c != NULL; c = va_arg(ap, json_t *)) {
		ck_assert_ptr_nonnull(c);
		json_array_append_new(arr, c);
	}
	va_end(ap);
	/* Through the text of the plan file. */
	text = json_dumps(arr, JSON_COMPACT);
	loaded = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(loaded);
	free(text);
	json_decref(arr);
	fixture_exec(db, "BEGIN IMMEDIATE");
	err[0] = '\0';
	rv = rebase_apply_txn(ra, db, loaded, conflicts, err, sizeof err);
	fixture_exec(db, rv == 0 ? "COMMIT" : "ROLLBACK");
	json_decref(loaded);
	return rv;
}

/* --- Reading the result ------------------------------------------------- */

/* Every row of sql, its values quote()d and joined by ",", rows by "|". */
static char *dump(const char *sql)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_stmt *st;
	int i, rows = 0;
	char *out;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (rows++)
			sqlite3_str_appendall(s, "|");
		for (i = 0; i < sqlite3_column_count(st); i++)
			sqlite3_str_appendf(
			    s, "%s%s", i ? "," : "",
			    sqlite3_column_text(st, i)
				? (const char *)sqlite3_column_text(st, i)
				: "NULL");
	}
	sqlite3_finalize(st);
	out = sqlite3_str_finish(s);
	return out ? out : sqlite3_mprintf("");
}

#define assert_dump(sql, want)                                                 \
	do {                                                                   \
		char *got_ = dump(sql);                                        \
		ck_assert_str_eq(got_, want);                                  \
		sqlite3_free(got_);                                            \
	} while (0)

/* The text of column col of a Hrana row. */
static const char *value_of(const json_t *r, const char *col)
{
	return json_string_value(
	    json_object_get(json_object_get(r, col), "value"));
}

static const json_t *conflict(size_t i)
{
	ck_assert_uint_gt(json_array_size(conflicts), i);
	return json_array_get(conflicts, i);
}

/* --- Rows with a PRIMARY KEY -------------------------------------------- */

#define KV "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"

START_TEST(test_insert_new)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(apply(change("t", "insert", "SELECT 2 AS id", NULL,
				      "SELECT 2 AS id, 'r' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t ORDER BY id", "1,p|2,r");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_insert_same_values)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'r')");
	ck_assert_int_eq(apply(change("t", "insert", "SELECT 1 AS id", NULL,
				      "SELECT 1 AS id, 'r' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "1,r");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_insert_over_other_row)
{
	const json_t *c;

	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(apply(change("t", "insert", "SELECT 1 AS id", NULL,
				      "SELECT 1 AS id, 'r' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "1,r");
	ck_assert_uint_eq(json_array_size(conflicts), 1);
	c = conflict(0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "table")), "t");
	ck_assert_str_eq(value_of(json_object_get(c, "key"), "id"), "1");
	ck_assert_str_eq(value_of(json_object_get(c, "replica"), "v"), "r");
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "v"), "p");
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "id"), "1");
	ck_assert_str_eq(json_string_value(json_object_get(c, "resolution")),
			 "replica");
}
END_TEST

START_TEST(test_update_clean)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'a'), (2, 'x')");
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v",
				      "SELECT 1 AS id, 'b' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t ORDER BY id", "1,b|2,x");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_update_changed_row)
{
	const json_t *c;

	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v",
				      "SELECT 1 AS id, 'b' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "1,b");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(conflicts), 1);
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "v"), "p");
	ck_assert_str_eq(value_of(json_object_get(c, "replica"), "v"), "b");
}
END_TEST

/* Both sides made the same change: nothing to record. */
START_TEST(test_update_same_change)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'b')");
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v",
				      "SELECT 1 AS id, 'b' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "1,b");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_update_deleted_row)
{
	const json_t *c;

	fixture_exec(db, KV);
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v",
				      "SELECT 1 AS id, 'b' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "1,b");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(conflicts), 1);
	ck_assert(json_is_null(json_object_get(c, "primary")));
	ck_assert_str_eq(value_of(json_object_get(c, "replica"), "v"), "b");
}
END_TEST

START_TEST(test_delete_clean)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'a'), (2, 'x')");
	ck_assert_int_eq(apply(change("t", "delete", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v", NULL),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "2,x");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_delete_changed_row)
{
	const json_t *c;

	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(apply(change("t", "delete", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v", NULL),
			       NULL),
			 0);
	assert_dump("SELECT count(*) FROM t", "0");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(conflicts), 1);
	ck_assert(json_is_null(json_object_get(c, "replica")));
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "v"), "p");
}
END_TEST

START_TEST(test_delete_missing_row)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (2, 'x')");
	ck_assert_int_eq(apply(change("t", "delete", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v", NULL),
			       NULL),
			 0);
	assert_dump("SELECT id, v FROM t", "2,x");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_without_rowid)
{
	fixture_exec(db, "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
			 "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)");
	ck_assert_int_eq(
	    apply(change("w", "insert", "SELECT 'd' AS k", NULL,
			 "SELECT 'd' AS k, 4 AS v"),
		  change("w", "update", "SELECT 'a' AS k",
			 "SELECT 'a' AS k, 1 AS v", "SELECT 'a' AS k, 10 AS v"),
		  change("w", "delete", "SELECT 'b' AS k",
			 "SELECT 'b' AS k, 2 AS v", NULL),
		  NULL),
	    0);
	assert_dump("SELECT k, v FROM w ORDER BY k", "a,10|c,3|d,4");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_composite_key)
{
	fixture_exec(db, "CREATE TABLE cp(a INT, b TEXT, v, PRIMARY KEY(b, a));"
			 "INSERT INTO cp VALUES (1, 'x', 'p'), (1, 'y', 'q'),"
			 "(2, 'x', 's')");
	ck_assert_int_eq(
	    apply(change("cp", "update", "SELECT 'x' AS b, 1 AS a",
			 "SELECT 1 AS a, 'x' AS b, 'p' AS v",
			 "SELECT 1 AS a, 'x' AS b, 'r' AS v"),
		  change("cp", "delete", "SELECT 'x' AS b, 2 AS a",
			 "SELECT 2 AS a, 'x' AS b, 'old' AS v", NULL),
		  NULL),
	    0);
	assert_dump("SELECT a, b, v FROM cp ORDER BY a, b", "1,x,r|1,y,q");
	/* The delete found (2, 'x') changed: a conflict. */
	ck_assert_uint_eq(json_array_size(conflicts), 1);
	ck_assert_str_eq(value_of(json_object_get(conflict(0), "key"), "b"),
			 "x");
	ck_assert_str_eq(value_of(json_object_get(conflict(0), "key"), "a"),
			 "2");
}
END_TEST

/* --- Tables without a declared PRIMARY KEY ------------------------------ */

START_TEST(test_rowid_kept_or_new)
{
	fixture_exec(db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	ck_assert_int_eq(
	    apply(change_rowid("n", "insert", 2, NULL, "SELECT 'r2' AS v"),
		  change_rowid("n", "insert", 1, NULL, "SELECT 'r1' AS v"),
		  NULL),
	    0);
	/* 2 was free; 1 was the primary's row: a new rowid, no conflict
	 * (both rows stay). */
	assert_dump("SELECT rowid, v FROM n ORDER BY rowid", "1,p|2,r2|3,r1");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
	/* A later transaction of the run follows the row to rowid 3. */
	ck_assert_int_eq(
	    apply(change_rowid("n", "update", 1, "SELECT 'r1' AS v",
			       "SELECT 'r1b' AS v"),
		  NULL),
	    0);
	assert_dump("SELECT rowid, v FROM n ORDER BY rowid", "1,p|2,r2|3,r1b");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
	ck_assert_int_eq(
	    apply(change_rowid("n", "delete", 1, "SELECT 'r1b' AS v", NULL),
		  NULL),
	    0);
	assert_dump("SELECT rowid, v FROM n ORDER BY rowid", "1,p|2,r2");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_rowid_remap_forgotten_on_failure)
{
	fixture_exec(db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	/* Remapped to 2, then the transaction fails: rolled back. */
	ck_assert_int_eq(
	    apply(change_rowid("n", "insert", 1, NULL, "SELECT 'x' AS v"),
		  change("gone", "insert", "SELECT 1 AS id", NULL,
			 "SELECT 1 AS id"),
		  NULL),
	    1);
	assert_dump("SELECT rowid, v FROM n", "1,p");
	/* Rowid 1 is the primary's row again, not the lost rowid 2. */
	ck_assert_int_eq(apply(change_rowid("n", "update", 1, "SELECT 'p' AS v",
					    "SELECT 'q' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT rowid, v FROM n", "1,q");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

/* A rowid remapped, its row deleted, the rowid inserted again where it is
 * free: later changes go to the new row, not to the old remap. */
START_TEST(test_rowid_reused_after_remap)
{
	fixture_exec(db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	ck_assert_int_eq(
	    apply(change_rowid("n", "insert", 1, NULL, "SELECT 'x' AS v"),
		  NULL),
	    0);
	ck_assert_int_eq(
	    apply(change_rowid("n", "delete", 1, "SELECT 'x' AS v", NULL),
		  NULL),
	    0);
	assert_dump("SELECT rowid, v FROM n", "1,p");
	fixture_exec(db, "DELETE FROM n");
	ck_assert_int_eq(
	    apply(change_rowid("n", "insert", 1, NULL, "SELECT 'z' AS v"),
		  NULL),
	    0);
	ck_assert_int_eq(apply(change_rowid("n", "update", 1, "SELECT 'z' AS v",
					    "SELECT 'w' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT rowid, v FROM n", "1,w");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_column_named_rowid)
{
	fixture_exec(db,
		     "CREATE TABLE cr(rowid TEXT, v);"
		     "INSERT INTO cr(_rowid_, rowid, v) VALUES (1, 'a', 1)");
	ck_assert_int_eq(
	    apply(change_rowid("cr", "insert", 5, NULL,
			       "SELECT 'b' AS rowid, 2 AS v"),
		  change_rowid("cr", "update", 1, "SELECT 'a' AS rowid, 1 AS v",
			       "SELECT 'a2' AS rowid, 1 AS v"),
		  NULL),
	    0);
	assert_dump("SELECT _rowid_, rowid, v FROM cr ORDER BY _rowid_",
		    "1,a2,1|5,b,2");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

/* --- The primary's schema moved on -------------------------------------- */

START_TEST(test_column_added_on_primary)
{
	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'a');"
			    "ALTER TABLE t ADD COLUMN extra DEFAULT 'd';"
			    "UPDATE t SET extra = 'e'");
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v",
				      "SELECT 1 AS id, 'b' AS v"),
			       change("t", "insert", "SELECT 2 AS id", NULL,
				      "SELECT 2 AS id, 'n' AS v"),
			       NULL),
			 0);
	assert_dump("SELECT id, v, extra FROM t ORDER BY id", "1,b,e|2,n,d");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_column_dropped_on_primary)
{
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v, gone);"
			 "INSERT INTO t VALUES (1, 'a', 'g');"
			 "ALTER TABLE t DROP COLUMN gone");
	ck_assert_int_eq(apply(change("t", "update", "SELECT 1 AS id",
				      "SELECT 1 AS id, 'a' AS v, 'g' AS gone",
				      "SELECT 1 AS id, 'b' AS v, 'g' AS gone"),
			       NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(err, "table t"));
	ck_assert_ptr_nonnull(strstr(err, "gone"));
	assert_dump("SELECT id, v FROM t", "1,a");
}
END_TEST

START_TEST(test_table_dropped_on_primary)
{
	ck_assert_int_eq(apply(change("t", "insert", "SELECT 1 AS id", NULL,
				      "SELECT 1 AS id, 'r' AS v"),
			       NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(err, "table t"));
	ck_assert_ptr_nonnull(strstr(err, "no such table"));
}
END_TEST

START_TEST(test_unique_violation)
{
	fixture_exec(db, "CREATE TABLE u(id INTEGER PRIMARY KEY, email UNIQUE);"
			 "INSERT INTO u VALUES (1, 'a@x')");
	ck_assert_int_eq(apply(change("u", "insert", "SELECT 2 AS id", NULL,
				      "SELECT 2 AS id, 'a@x' AS email"),
			       NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(err, "table u"));
	ck_assert_ptr_nonnull(strstr(err, "UNIQUE"));
	assert_dump("SELECT count(*) FROM u", "1");
}
END_TEST

/* Errors that are not the transaction's: -1 (here, a read-only
 * connection's SQLITE_READONLY). */
START_TEST(test_other_error)
{
	json_t *changes =
	    json_pack("[o]", change("t", "insert", "SELECT 1 AS id", NULL,
				    "SELECT 1 AS id, 'r' AS v"));

	fixture_exec(db, KV "BEGIN; PRAGMA query_only = 1");
	ck_assert_int_eq(
	    rebase_apply_txn(ra, db, changes, conflicts, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "table t"));
	ck_assert_ptr_nonnull(strstr(err, "readonly"));
	fixture_exec(db, "ROLLBACK");
	json_decref(changes);
}
END_TEST

/* --- Schema changes ----------------------------------------------------- */

START_TEST(test_schema_create)
{
	ck_assert_int_eq(
	    apply(schema_change("insert", 1, "table", "t2", NULL,
				"CREATE TABLE t2(id INTEGER PRIMARY KEY, v)"),
		  schema_change("insert", 2, "index", "i2", NULL,
				"CREATE INDEX i2 ON t2(v)"),
		  change("t2", "insert", "SELECT 1 AS id", NULL,
			 "SELECT 1 AS id, 'a' AS v"),
		  NULL),
	    0);
	assert_dump("SELECT type, name FROM sqlite_master ORDER BY name",
		    "index,i2|table,t2");
	assert_dump("SELECT id, v FROM t2", "1,a");
}
END_TEST

START_TEST(test_schema_create_existing)
{
	fixture_exec(db, "CREATE TABLE t2(a, b); INSERT INTO t2 VALUES (1, 2)");
	ck_assert_int_eq(apply(schema_change("insert", 1, "table", "t2", NULL,
					     "CREATE TABLE t2(a, b)"),
			       NULL),
			 0);
	assert_dump("SELECT a, b FROM t2", "1,2");
	ck_assert_int_eq(apply(schema_change("insert", 1, "table", "t2", NULL,
					     "CREATE TABLE t2(a, b, c)"),
			       NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(err, "t2"));
	/* An automatic index has no sql: skipped. */
	ck_assert_int_eq(
	    apply(schema_change("insert", 3, "index", "sqlite_autoindex_t2_1",
				NULL, NULL),
		  NULL),
	    0);
}
END_TEST

START_TEST(test_schema_drop)
{
	fixture_exec(db, "CREATE TABLE t2(id INTEGER PRIMARY KEY, v);"
			 "CREATE TABLE keep(x);"
			 "INSERT INTO t2 VALUES (1, 'a'), (2, 'b')");
	/* The index is gone on the primary already: nothing. */
	ck_assert_int_eq(
	    apply(schema_change("delete", 1, "table", "t2",
				"CREATE TABLE t2(id INTEGER PRIMARY KEY, v)",
				NULL),
		  schema_change("delete", 2, "index", "i2",
				"CREATE INDEX i2 ON t2(v)", NULL),
		  /* the rows went with the table */
		  change("t2", "delete", "SELECT 1 AS id",
			 "SELECT 1 AS id, 'a' AS v", NULL),
		  change("t2", "delete", "SELECT 2 AS id",
			 "SELECT 2 AS id, 'b' AS v", NULL),
		  NULL),
	    0);
	assert_dump("SELECT name FROM sqlite_master", "keep");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

/* Dropped and created again in one transaction: the new table's rows are
 * new rows, the old one's are gone. */
START_TEST(test_schema_drop_and_recreate)
{
	fixture_exec(db, "CREATE TABLE t2(id INTEGER PRIMARY KEY, v);"
			 "INSERT INTO t2 VALUES (1, 'a'), (2, 'b'), (3, 'p')");
	ck_assert_int_eq(
	    apply(
		schema_change("delete", 1, "table", "t2",
			      "CREATE TABLE t2(id INTEGER PRIMARY KEY, v)",
			      NULL),
		schema_change("insert", 2, "table", "t2", NULL,
			      "CREATE TABLE t2(id INTEGER PRIMARY KEY, v, w)"),
		change("t2", "delete", "SELECT 1 AS id",
		       "SELECT 1 AS id, 'a' AS v", NULL),
		change("t2", "update", "SELECT 2 AS id",
		       "SELECT 2 AS id, 'b' AS v",
		       "SELECT 2 AS id, 'b2' AS v, 'w' AS w"),
		change("t2", "insert", "SELECT 4 AS id", NULL,
		       "SELECT 4 AS id, 'd' AS v, 'w' AS w"),
		NULL),
	    0);
	assert_dump("SELECT id, v, w FROM t2 ORDER BY id", "2,b2,w|4,d,w");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

/* The sql SQLite itself writes for ALTER TABLE ... ADD COLUMN (made on
 * the scratch connection) is what the replica's after holds. */
static char *sql_after_add_column(const char *create, const char *alter,
				  const char *name)
{
	char *q = sqlite3_mprintf("SELECT sql FROM sqlite_master WHERE "
				  "name = %Q",
				  name);
	sqlite3_stmt *st;
	char *sql;

	fixture_exec(scratch, create);
	fixture_exec(scratch, alter);
	ck_assert_int_eq(sqlite3_prepare_v2(scratch, q, -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	sql = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_free(q);
	return sql;
}

static void check_add_column(const char *name, const char *create,
			     const char *alter)
{
	char *after = sql_after_add_column(create, alter, name);
	char *insert =
	    sqlite3_mprintf("INSERT INTO \"%w\"(a) VALUES (1)", name);
	char *q = sqlite3_mprintf("SELECT sql FROM sqlite_master WHERE "
				  "name = %Q",
				  name);

	/* The sql stored for a plain CREATE TABLE is the statement. */
	fixture_exec(db, create);
	fixture_exec(db, insert);
	ck_assert_int_eq(
	    apply(schema_change("update", 1, "table", name, create, after),
		  NULL),
	    0);
	assert_dump(q, after);
	/* Again: the primary has it already, nothing to do. */
	ck_assert_int_eq(
	    apply(schema_change("update", 1, "table", name, create, after),
		  NULL),
	    0);
	assert_dump(q, after);
	sqlite3_free(q);
	sqlite3_free(insert);
	sqlite3_free(after);
}

START_TEST(test_schema_add_column)
{
	check_add_column("t", "CREATE TABLE t(a, b)",
			 "ALTER TABLE t ADD COLUMN c INTEGER");
	/* Inserted before the table constraint: ", d ..." and "d ..., "
	 * both fit the text. */
	check_add_column("w",
			 "CREATE TABLE w(a, b, PRIMARY KEY(a)) WITHOUT ROWID",
			 "ALTER TABLE w ADD COLUMN d TEXT DEFAULT 'x, y'");
	check_add_column("m", "CREATE TABLE m(\n  a,\n  b -- c\n)",
			 "ALTER TABLE m ADD e   REAL ;");
	assert_dump("SELECT c, d, e FROM t, w, m", "NULL,x, y,NULL");
}
END_TEST

START_TEST(test_schema_other_alter)
{
	fixture_exec(db, "CREATE TABLE t(a, b)");
	/* RENAME COLUMN b TO x */
	ck_assert_int_eq(
	    apply(schema_change("update", 1, "table", "t",
				"CREATE TABLE t(a, b)", "CREATE TABLE t(a, x)"),
		  NULL),
	    1);
	ck_assert_ptr_nonnull(strstr(err, "table t"));
	/* DROP COLUMN b */
	ck_assert_int_eq(
	    apply(schema_change("update", 1, "table", "t",
				"CREATE TABLE t(a, b)", "CREATE TABLE t(a)"),
		  NULL),
	    1);
	/* A definition that is more than one: refused, not run. */
	ck_assert_int_eq(apply(schema_change("update", 1, "table", "t",
					     "CREATE TABLE t(a, b)",
					     "CREATE TABLE t(a, b, c; DROP "
					     "TABLE t)"),
			       NULL),
			 1);
	assert_dump("SELECT sql FROM sqlite_master", "CREATE TABLE t(a, b)");
}
END_TEST

START_TEST(test_schema_rootpage_only)
{
	fixture_exec(db, "CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2)");
	ck_assert_int_eq(
	    apply(schema_change("update", 1, "table", "t",
				"CREATE TABLE t(a, b)", "CREATE TABLE t(a, b)"),
		  NULL),
	    0);
	assert_dump("SELECT sql FROM sqlite_master", "CREATE TABLE t(a, b)");
	assert_dump("SELECT a, b FROM t", "1,2");
}
END_TEST

/* --- SQLite's tables ---------------------------------------------------- */

START_TEST(test_sequence_merge)
{
	fixture_exec(db, "CREATE TABLE s(id INTEGER PRIMARY KEY AUTOINCREMENT);"
			 "CREATE TABLE s2(id INTEGER PRIMARY KEY "
			 "AUTOINCREMENT);"
			 "INSERT INTO s VALUES (10)");
	ck_assert_int_eq(
	    apply(change_rowid("sqlite_sequence", "update", 1,
			       "SELECT 's' AS name, 3 AS seq",
			       "SELECT 's' AS name, 5 AS seq"),
		  change_rowid("sqlite_sequence", "insert", 2, NULL,
			       "SELECT 's2' AS name, 7 AS seq"),
		  NULL),
	    0);
	assert_dump("SELECT name, seq FROM sqlite_sequence ORDER BY name",
		    "s,10|s2,7");
	ck_assert_int_eq(
	    apply(change_rowid("sqlite_sequence", "update", 1,
			       "SELECT 's' AS name, 5 AS seq",
			       "SELECT 's' AS name, 20 AS seq"),
		  change_rowid("sqlite_sequence", "delete", 2,
			       "SELECT 's2' AS name, 7 AS seq", NULL),
		  NULL),
	    0);
	assert_dump("SELECT name, seq FROM sqlite_sequence ORDER BY name",
		    "s,20|s2,7");
	ck_assert_uint_eq(json_array_size(conflicts), 0);
}
END_TEST

START_TEST(test_stat_skipped)
{
	/* The primary has no sqlite_stat1: re-applying would fail. */
	ck_assert_int_eq(
	    apply(schema_change("insert", 5, "table", "sqlite_stat1", NULL,
				"CREATE TABLE sqlite_stat1(tbl,idx,stat)"),
		  change_rowid("sqlite_stat1", "insert", 1, NULL,
			       "SELECT 't' AS tbl, NULL AS idx, '10' AS stat"),
		  NULL),
	    0);
	assert_dump("SELECT count(*) FROM sqlite_master", "0");
}
END_TEST

/* --- Values ------------------------------------------------------------- */

#define EVERY_TYPE                                                             \
	"SELECT 1 AS id, 9007199254740993 AS i, -9223372036854775808 AS i2,"   \
	" 0.1 AS f, 1.5e300 AS f2, 'h\xc3\xa9llo \xe2\x9c\x93 "                \
	"\xf0\x9f\x98\x80' AS s, X'00ff10' AS b, NULL AS n"

/* conflict=discard: every row change described with the primary's row now,
 * nothing written. */
START_TEST(test_describe)
{
	json_t *arr = json_array(), *out = json_array(), *e;

	fixture_exec(db, KV "INSERT INTO t VALUES (1, 'p'); CREATE TABLE n(x)");
	json_array_append_new(arr, change("t", "update", "SELECT 1 AS id",
					  "SELECT 1 AS id, 'a' AS v",
					  "SELECT 1 AS id, 'b' AS v"));
	json_array_append_new(arr, change("t", "insert", "SELECT 5 AS id", NULL,
					  "SELECT 5 AS id, 'new' AS v"));
	json_array_append_new(
	    arr, change_rowid("n", "delete", 3, "SELECT 'x' AS x", NULL));
	json_array_append_new(arr, change("gone", "insert", "SELECT 1 AS id",
					  NULL, "SELECT 1 AS id"));
	ck_assert_int_eq(rebase_apply_describe(db, arr, out, err, sizeof err),
			 0);
	ck_assert_uint_eq(json_array_size(out), 4);
	e = json_array_get(out, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "resolution")),
			 "discarded");
	ck_assert_str_eq(value_of(json_object_get(e, "primary"), "v"), "p");
	ck_assert_str_eq(value_of(json_object_get(e, "replica"), "v"), "b");
	e = json_array_get(out, 1);
	ck_assert(json_is_null(json_object_get(e, "primary")));
	ck_assert_str_eq(value_of(json_object_get(e, "replica"), "v"), "new");
	e = json_array_get(out, 2);
	ck_assert(json_is_null(json_object_get(e, "replica")));
	ck_assert(json_is_null(json_object_get(e, "primary")));
	e = json_array_get(out, 3);
	ck_assert_str_eq(json_string_value(json_object_get(e, "table")),
			 "gone");
	ck_assert(json_is_null(json_object_get(e, "primary")));
	assert_dump("SELECT id, v FROM t", "1,p");
	json_decref(arr);
	json_decref(out);
}
END_TEST

START_TEST(test_values_round_trip)
{
	fixture_exec(db, "CREATE TABLE v(id INTEGER PRIMARY KEY, i, i2, f, f2,"
			 " s, b, n)");
	ck_assert_int_eq(
	    apply(change("v", "insert", "SELECT 1 AS id", NULL, EVERY_TYPE),
		  NULL),
	    0);
	ck_assert_int_eq(
	    fixture_query_int(db,
			      "SELECT count(*) FROM v WHERE "
			      "i = 9007199254740993 AND typeof(i) = "
			      "'integer' AND i2 = -9223372036854775808 AND "
			      "f = 0.1 AND f2 = 1.5e300 AND s = 'h\xc3\xa9llo "
			      "\xe2\x9c\x93 \xf0\x9f\x98\x80' AND "
			      "typeof(s) = 'text' AND b = X'00ff10' AND "
			      "typeof(b) = 'blob' AND n IS NULL"),
	    1);
	/* The same row again, and an update from it: every value compares
	 * equal to the primary's, so no conflict. */
	ck_assert_int_eq(
	    apply(change("v", "insert", "SELECT 1 AS id", NULL, EVERY_TYPE),
		  change("v", "update", "SELECT 1 AS id", EVERY_TYPE,
			 "SELECT 1 AS id, 2 AS i"),
		  NULL),
	    0);
	ck_assert_uint_eq(json_array_size(conflicts), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT i FROM v"), 2);
	ck_assert_int_eq(fixture_query_int(db, "SELECT length(b) FROM v"), 3);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rebase_apply");
	TCase *tc = tcase_create("rebase_apply");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_insert_new);
	tcase_add_test(tc, test_insert_same_values);
	tcase_add_test(tc, test_insert_over_other_row);
	tcase_add_test(tc, test_update_clean);
	tcase_add_test(tc, test_update_changed_row);
	tcase_add_test(tc, test_update_same_change);
	tcase_add_test(tc, test_update_deleted_row);
	tcase_add_test(tc, test_delete_clean);
	tcase_add_test(tc, test_delete_changed_row);
	tcase_add_test(tc, test_delete_missing_row);
	tcase_add_test(tc, test_without_rowid);
	tcase_add_test(tc, test_composite_key);
	tcase_add_test(tc, test_rowid_kept_or_new);
	tcase_add_test(tc, test_rowid_remap_forgotten_on_failure);
	tcase_add_test(tc, test_rowid_reused_after_remap);
	tcase_add_test(tc, test_column_named_rowid);
	tcase_add_test(tc, test_column_added_on_primary);
	tcase_add_test(tc, test_column_dropped_on_primary);
	tcase_add_test(tc, test_table_dropped_on_primary);
	tcase_add_test(tc, test_unique_violation);
	tcase_add_test(tc, test_other_error);
	tcase_add_test(tc, test_schema_create);
	tcase_add_test(tc, test_schema_create_existing);
	tcase_add_test(tc, test_schema_drop);
	tcase_add_test(tc, test_schema_drop_and_recreate);
	tcase_add_test(tc, test_schema_add_column);
	tcase_add_test(tc, test_schema_other_alter);
	tcase_add_test(tc, test_schema_rootpage_only);
	tcase_add_test(tc, test_sequence_merge);
	tcase_add_test(tc, test_stat_skipped);
	tcase_add_test(tc, test_describe);
	tcase_add_test(tc, test_values_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
