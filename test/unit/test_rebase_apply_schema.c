/* sync/rebase_apply.h re-applying schema changes (rows of sqlite_schema)
 * on a real database, as test_rebase_apply.c does row changes: tables and
 * indexes created, created again where the primary has them, dropped, and
 * dropped and created again; ALTER TABLE ... ADD COLUMN applied and other
 * ALTERs refused; a change of the root page only; and SQLite's own tables
 * (sqlite_sequence merged, sqlite_stat1 skipped). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "rebase_apply_helpers.h"
#include "sync/rebase_apply.h"

/* --- Building schema changes -------------------------------------------- */

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
	c = rah_change_rowid("sqlite_schema", op, rowid, b, a);
	sqlite3_free(b);
	sqlite3_free(a);
	return c;
}

/* --- Schema changes ----------------------------------------------------- */

START_TEST(test_schema_create)
{
	ck_assert_int_eq(
	    rah_apply(
		schema_change("insert", 1, "table", "t2", NULL,
			      "CREATE TABLE t2(id INTEGER PRIMARY KEY, v)"),
		schema_change("insert", 2, "index", "i2", NULL,
			      "CREATE INDEX i2 ON t2(v)"),
		rah_change("t2", "insert", "SELECT 1 AS id", NULL,
			   "SELECT 1 AS id, 'a' AS v"),
		NULL),
	    0);
	rah_assert_dump("SELECT type, name FROM sqlite_master ORDER BY name",
			"index,i2|table,t2");
	rah_assert_dump("SELECT id, v FROM t2", "1,a");
}
END_TEST

START_TEST(test_schema_create_existing)
{
	fixture_exec(rah_db,
		     "CREATE TABLE t2(a, b); INSERT INTO t2 VALUES (1, 2)");
	ck_assert_int_eq(rah_apply(schema_change("insert", 1, "table", "t2",
						 NULL, "CREATE TABLE t2(a, b)"),
				   NULL),
			 0);
	rah_assert_dump("SELECT a, b FROM t2", "1,2");
	ck_assert_int_eq(
	    rah_apply(schema_change("insert", 1, "table", "t2", NULL,
				    "CREATE TABLE t2(a, b, c)"),
		      NULL),
	    1);
	ck_assert_ptr_nonnull(strstr(rah_err, "t2"));
	/* An automatic index has no sql: skipped. */
	ck_assert_int_eq(
	    rah_apply(schema_change("insert", 3, "index",
				    "sqlite_autoindex_t2_1", NULL, NULL),
		      NULL),
	    0);
}
END_TEST

START_TEST(test_schema_drop)
{
	fixture_exec(rah_db, "CREATE TABLE t2(id INTEGER PRIMARY KEY, v);"
			     "CREATE TABLE keep(x);"
			     "INSERT INTO t2 VALUES (1, 'a'), (2, 'b')");
	/* The index is gone on the primary already: nothing. */
	ck_assert_int_eq(
	    rah_apply(schema_change(
			  "delete", 1, "table", "t2",
			  "CREATE TABLE t2(id INTEGER PRIMARY KEY, v)", NULL),
		      schema_change("delete", 2, "index", "i2",
				    "CREATE INDEX i2 ON t2(v)", NULL),
		      /* the rows went with the table */
		      rah_change("t2", "delete", "SELECT 1 AS id",
				 "SELECT 1 AS id, 'a' AS v", NULL),
		      rah_change("t2", "delete", "SELECT 2 AS id",
				 "SELECT 2 AS id, 'b' AS v", NULL),
		      NULL),
	    0);
	rah_assert_dump("SELECT name FROM sqlite_master", "keep");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

/* Dropped and created again in one transaction: the new table's rows are
 * new rows, the old one's are gone. */
START_TEST(test_schema_drop_and_recreate)
{
	fixture_exec(rah_db,
		     "CREATE TABLE t2(id INTEGER PRIMARY KEY, v);"
		     "INSERT INTO t2 VALUES (1, 'a'), (2, 'b'), (3, 'p')");
	ck_assert_int_eq(
	    rah_apply(
		schema_change("delete", 1, "table", "t2",
			      "CREATE TABLE t2(id INTEGER PRIMARY KEY, v)",
			      NULL),
		schema_change("insert", 2, "table", "t2", NULL,
			      "CREATE TABLE t2(id INTEGER PRIMARY KEY, v, w)"),
		rah_change("t2", "delete", "SELECT 1 AS id",
			   "SELECT 1 AS id, 'a' AS v", NULL),
		rah_change("t2", "update", "SELECT 2 AS id",
			   "SELECT 2 AS id, 'b' AS v",
			   "SELECT 2 AS id, 'b2' AS v, 'w' AS w"),
		rah_change("t2", "insert", "SELECT 4 AS id", NULL,
			   "SELECT 4 AS id, 'd' AS v, 'w' AS w"),
		NULL),
	    0);
	rah_assert_dump("SELECT id, v, w FROM t2 ORDER BY id", "2,b2,w|4,d,w");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
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

	fixture_exec(rah_scratch, create);
	fixture_exec(rah_scratch, alter);
	ck_assert_int_eq(sqlite3_prepare_v2(rah_scratch, q, -1, &st, NULL),
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
	fixture_exec(rah_db, create);
	fixture_exec(rah_db, insert);
	ck_assert_int_eq(
	    rah_apply(schema_change("update", 1, "table", name, create, after),
		      NULL),
	    0);
	rah_assert_dump(q, after);
	/* Again: the primary has it already, nothing to do. */
	ck_assert_int_eq(
	    rah_apply(schema_change("update", 1, "table", name, create, after),
		      NULL),
	    0);
	rah_assert_dump(q, after);
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
	rah_assert_dump("SELECT c, d, e FROM t, w, m", "NULL,x, y,NULL");
}
END_TEST

START_TEST(test_schema_other_alter)
{
	fixture_exec(rah_db, "CREATE TABLE t(a, b)");
	/* RENAME COLUMN b TO x */
	ck_assert_int_eq(rah_apply(schema_change("update", 1, "table", "t",
						 "CREATE TABLE t(a, b)",
						 "CREATE TABLE t(a, x)"),
				   NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(rah_err, "table t"));
	/* DROP COLUMN b */
	ck_assert_int_eq(rah_apply(schema_change("update", 1, "table", "t",
						 "CREATE TABLE t(a, b)",
						 "CREATE TABLE t(a)"),
				   NULL),
			 1);
	/* A definition that is more than one: refused, not run. */
	ck_assert_int_eq(rah_apply(schema_change("update", 1, "table", "t",
						 "CREATE TABLE t(a, b)",
						 "CREATE TABLE t(a, b, c; DROP "
						 "TABLE t)"),
				   NULL),
			 1);
	rah_assert_dump("SELECT sql FROM sqlite_master",
			"CREATE TABLE t(a, b)");
}
END_TEST

START_TEST(test_schema_rootpage_only)
{
	fixture_exec(rah_db,
		     "CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2)");
	ck_assert_int_eq(rah_apply(schema_change("update", 1, "table", "t",
						 "CREATE TABLE t(a, b)",
						 "CREATE TABLE t(a, b)"),
				   NULL),
			 0);
	rah_assert_dump("SELECT sql FROM sqlite_master",
			"CREATE TABLE t(a, b)");
	rah_assert_dump("SELECT a, b FROM t", "1,2");
}
END_TEST

/* --- SQLite's tables ---------------------------------------------------- */

START_TEST(test_sequence_merge)
{
	fixture_exec(rah_db,
		     "CREATE TABLE s(id INTEGER PRIMARY KEY AUTOINCREMENT);"
		     "CREATE TABLE s2(id INTEGER PRIMARY KEY "
		     "AUTOINCREMENT);"
		     "INSERT INTO s VALUES (10)");
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("sqlite_sequence", "update", 1,
				       "SELECT 's' AS name, 3 AS seq",
				       "SELECT 's' AS name, 5 AS seq"),
		      rah_change_rowid("sqlite_sequence", "insert", 2, NULL,
				       "SELECT 's2' AS name, 7 AS seq"),
		      NULL),
	    0);
	rah_assert_dump("SELECT name, seq FROM sqlite_sequence ORDER BY name",
			"s,10|s2,7");
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("sqlite_sequence", "update", 1,
				       "SELECT 's' AS name, 5 AS seq",
				       "SELECT 's' AS name, 20 AS seq"),
		      rah_change_rowid("sqlite_sequence", "delete", 2,
				       "SELECT 's2' AS name, 7 AS seq", NULL),
		      NULL),
	    0);
	rah_assert_dump("SELECT name, seq FROM sqlite_sequence ORDER BY name",
			"s,20|s2,7");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_stat_skipped)
{
	/* The primary has no sqlite_stat1: re-applying would fail. */
	ck_assert_int_eq(
	    rah_apply(schema_change("insert", 5, "table", "sqlite_stat1", NULL,
				    "CREATE TABLE sqlite_stat1(tbl,idx,stat)"),
		      rah_change_rowid(
			  "sqlite_stat1", "insert", 1, NULL,
			  "SELECT 't' AS tbl, NULL AS idx, '10' AS stat"),
		      NULL),
	    0);
	rah_assert_dump("SELECT count(*) FROM sqlite_master", "0");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rebase_apply_schema");
	TCase *tc = tcase_create("rebase_apply_schema");

	tcase_add_checked_fixture(tc, rah_setup, rah_teardown);
	tcase_add_test(tc, test_schema_create);
	tcase_add_test(tc, test_schema_create_existing);
	tcase_add_test(tc, test_schema_drop);
	tcase_add_test(tc, test_schema_drop_and_recreate);
	tcase_add_test(tc, test_schema_add_column);
	tcase_add_test(tc, test_schema_other_alter);
	tcase_add_test(tc, test_schema_rootpage_only);
	tcase_add_test(tc, test_sequence_merge);
	tcase_add_test(tc, test_stat_skipped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
