/* sync/rebase_apply.h on a real database: the "primary" is an in-memory
 * database set up with SQL, and each case re-applies changes as rowdiff
 * gives them.  The rows of a change are written as SELECTs of one row, run
 * on a scratch connection and turned into Hrana values by
 * values_from_column (so the values have exactly SQLite's types), and
 * every batch goes through JSON text as the rebase plan file keeps it
 * (rebase_apply_helpers.[ch]).
 *
 * This file: row changes of tables with and without a PRIMARY KEY, the
 * conflicts they meet, the primary's schema having moved on, the
 * description of discarded changes, and values of every type.  Schema
 * changes and SQLite's own tables are in test_rebase_apply_schema.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "rebase_apply_helpers.h"
#include "sync/rebase_apply.h"

/* --- Reading the result ------------------------------------------------- */

/* The text of column col of a Hrana row. */
static const char *value_of(const json_t *r, const char *col)
{
	return json_string_value(
	    json_object_get(json_object_get(r, col), "value"));
}

static const json_t *conflict(size_t i)
{
	ck_assert_uint_gt(json_array_size(rah_conflicts), i);
	return json_array_get(rah_conflicts, i);
}

/* --- Rows with a PRIMARY KEY -------------------------------------------- */

#define KV "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"

START_TEST(test_insert_new)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(rah_apply(rah_change("t", "insert", "SELECT 2 AS id",
					      NULL, "SELECT 2 AS id, 'r' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t ORDER BY id", "1,p|2,r");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_insert_same_values)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'r')");
	ck_assert_int_eq(rah_apply(rah_change("t", "insert", "SELECT 1 AS id",
					      NULL, "SELECT 1 AS id, 'r' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "1,r");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_insert_over_other_row)
{
	const json_t *c;

	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(rah_apply(rah_change("t", "insert", "SELECT 1 AS id",
					      NULL, "SELECT 1 AS id, 'r' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "1,r");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 1);
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
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'a'), (2, 'x')");
	ck_assert_int_eq(rah_apply(rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t ORDER BY id", "1,b|2,x");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_update_changed_row)
{
	const json_t *c;

	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(rah_apply(rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "1,b");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(rah_conflicts), 1);
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "v"), "p");
	ck_assert_str_eq(value_of(json_object_get(c, "replica"), "v"), "b");
}
END_TEST

/* Both sides made the same change: nothing to record. */
START_TEST(test_update_same_change)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'b')");
	ck_assert_int_eq(rah_apply(rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "1,b");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_update_deleted_row)
{
	const json_t *c;

	fixture_exec(rah_db, KV);
	ck_assert_int_eq(rah_apply(rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "1,b");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(rah_conflicts), 1);
	ck_assert(json_is_null(json_object_get(c, "primary")));
	ck_assert_str_eq(value_of(json_object_get(c, "replica"), "v"), "b");
}
END_TEST

START_TEST(test_delete_clean)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'a'), (2, 'x')");
	ck_assert_int_eq(rah_apply(rah_change("t", "delete", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "2,x");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_delete_changed_row)
{
	const json_t *c;

	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'p')");
	ck_assert_int_eq(rah_apply(rah_change("t", "delete", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT count(*) FROM t", "0");
	c = conflict(0);
	ck_assert_uint_eq(json_array_size(rah_conflicts), 1);
	ck_assert(json_is_null(json_object_get(c, "replica")));
	ck_assert_str_eq(value_of(json_object_get(c, "primary"), "v"), "p");
}
END_TEST

START_TEST(test_delete_missing_row)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (2, 'x')");
	ck_assert_int_eq(rah_apply(rah_change("t", "delete", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v FROM t", "2,x");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_without_rowid)
{
	fixture_exec(rah_db,
		     "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
		     "INSERT INTO w VALUES ('a', 1), ('b', 2), ('c', 3)");
	ck_assert_int_eq(rah_apply(rah_change("w", "insert", "SELECT 'd' AS k",
					      NULL, "SELECT 'd' AS k, 4 AS v"),
				   rah_change("w", "update", "SELECT 'a' AS k",
					      "SELECT 'a' AS k, 1 AS v",
					      "SELECT 'a' AS k, 10 AS v"),
				   rah_change("w", "delete", "SELECT 'b' AS k",
					      "SELECT 'b' AS k, 2 AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT k, v FROM w ORDER BY k", "a,10|c,3|d,4");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_composite_key)
{
	fixture_exec(rah_db,
		     "CREATE TABLE cp(a INT, b TEXT, v, PRIMARY KEY(b, a));"
		     "INSERT INTO cp VALUES (1, 'x', 'p'), (1, 'y', 'q'),"
		     "(2, 'x', 's')");
	ck_assert_int_eq(
	    rah_apply(rah_change("cp", "update", "SELECT 'x' AS b, 1 AS a",
				 "SELECT 1 AS a, 'x' AS b, 'p' AS v",
				 "SELECT 1 AS a, 'x' AS b, 'r' AS v"),
		      rah_change("cp", "delete", "SELECT 'x' AS b, 2 AS a",
				 "SELECT 2 AS a, 'x' AS b, 'old' AS v", NULL),
		      NULL),
	    0);
	rah_assert_dump("SELECT a, b, v FROM cp ORDER BY a, b", "1,x,r|1,y,q");
	/* The delete found (2, 'x') changed: a conflict. */
	ck_assert_uint_eq(json_array_size(rah_conflicts), 1);
	ck_assert_str_eq(value_of(json_object_get(conflict(0), "key"), "b"),
			 "x");
	ck_assert_str_eq(value_of(json_object_get(conflict(0), "key"), "a"),
			 "2");
}
END_TEST

/* --- Tables without a declared PRIMARY KEY ------------------------------ */

START_TEST(test_rowid_kept_or_new)
{
	fixture_exec(rah_db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	ck_assert_int_eq(
	    rah_apply(
		rah_change_rowid("n", "insert", 2, NULL, "SELECT 'r2' AS v"),
		rah_change_rowid("n", "insert", 1, NULL, "SELECT 'r1' AS v"),
		NULL),
	    0);
	/* 2 was free; 1 was the primary's row: a new rowid, no conflict
	 * (both rows stay). */
	rah_assert_dump("SELECT rowid, v FROM n ORDER BY rowid",
			"1,p|2,r2|3,r1");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
	/* A later transaction of the run follows the row to rowid 3. */
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("n", "update", 1, "SELECT 'r1' AS v",
				       "SELECT 'r1b' AS v"),
		      NULL),
	    0);
	rah_assert_dump("SELECT rowid, v FROM n ORDER BY rowid",
			"1,p|2,r2|3,r1b");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
	ck_assert_int_eq(rah_apply(rah_change_rowid("n", "delete", 1,
						    "SELECT 'r1b' AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT rowid, v FROM n ORDER BY rowid", "1,p|2,r2");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_rowid_remap_forgotten_on_failure)
{
	fixture_exec(rah_db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	/* Remapped to 2, then the transaction fails: rolled back. */
	ck_assert_int_eq(
	    rah_apply(
		rah_change_rowid("n", "insert", 1, NULL, "SELECT 'x' AS v"),
		rah_change("gone", "insert", "SELECT 1 AS id", NULL,
			   "SELECT 1 AS id"),
		NULL),
	    1);
	rah_assert_dump("SELECT rowid, v FROM n", "1,p");
	/* Rowid 1 is the primary's row again, not the lost rowid 2. */
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("n", "update", 1, "SELECT 'p' AS v",
				       "SELECT 'q' AS v"),
		      NULL),
	    0);
	rah_assert_dump("SELECT rowid, v FROM n", "1,q");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

/* A rowid remapped, its row deleted, the rowid inserted again where it is
 * free: later changes go to the new row, not to the old remap. */
START_TEST(test_rowid_reused_after_remap)
{
	fixture_exec(rah_db, "CREATE TABLE n(v); INSERT INTO n VALUES ('p')");
	ck_assert_int_eq(rah_apply(rah_change_rowid("n", "insert", 1, NULL,
						    "SELECT 'x' AS v"),
				   NULL),
			 0);
	ck_assert_int_eq(rah_apply(rah_change_rowid("n", "delete", 1,
						    "SELECT 'x' AS v", NULL),
				   NULL),
			 0);
	rah_assert_dump("SELECT rowid, v FROM n", "1,p");
	fixture_exec(rah_db, "DELETE FROM n");
	ck_assert_int_eq(rah_apply(rah_change_rowid("n", "insert", 1, NULL,
						    "SELECT 'z' AS v"),
				   NULL),
			 0);
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("n", "update", 1, "SELECT 'z' AS v",
				       "SELECT 'w' AS v"),
		      NULL),
	    0);
	rah_assert_dump("SELECT rowid, v FROM n", "1,w");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_column_named_rowid)
{
	fixture_exec(rah_db,
		     "CREATE TABLE cr(rowid TEXT, v);"
		     "INSERT INTO cr(_rowid_, rowid, v) VALUES (1, 'a', 1)");
	ck_assert_int_eq(
	    rah_apply(rah_change_rowid("cr", "insert", 5, NULL,
				       "SELECT 'b' AS rowid, 2 AS v"),
		      rah_change_rowid("cr", "update", 1,
				       "SELECT 'a' AS rowid, 1 AS v",
				       "SELECT 'a2' AS rowid, 1 AS v"),
		      NULL),
	    0);
	rah_assert_dump("SELECT _rowid_, rowid, v FROM cr ORDER BY _rowid_",
			"1,a2,1|5,b,2");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

/* --- The primary's schema moved on -------------------------------------- */

START_TEST(test_column_added_on_primary)
{
	fixture_exec(rah_db, KV "INSERT INTO t VALUES (1, 'a');"
				"ALTER TABLE t ADD COLUMN extra DEFAULT 'd';"
				"UPDATE t SET extra = 'e'");
	ck_assert_int_eq(rah_apply(rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"),
				   rah_change("t", "insert", "SELECT 2 AS id",
					      NULL, "SELECT 2 AS id, 'n' AS v"),
				   NULL),
			 0);
	rah_assert_dump("SELECT id, v, extra FROM t ORDER BY id",
			"1,b,e|2,n,d");
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
}
END_TEST

START_TEST(test_column_dropped_on_primary)
{
	fixture_exec(rah_db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v, gone);"
			     "INSERT INTO t VALUES (1, 'a', 'g');"
			     "ALTER TABLE t DROP COLUMN gone");
	ck_assert_int_eq(
	    rah_apply(rah_change("t", "update", "SELECT 1 AS id",
				 "SELECT 1 AS id, 'a' AS v, 'g' AS gone",
				 "SELECT 1 AS id, 'b' AS v, 'g' AS gone"),
		      NULL),
	    1);
	ck_assert_ptr_nonnull(strstr(rah_err, "table t"));
	ck_assert_ptr_nonnull(strstr(rah_err, "gone"));
	rah_assert_dump("SELECT id, v FROM t", "1,a");
}
END_TEST

START_TEST(test_table_dropped_on_primary)
{
	ck_assert_int_eq(rah_apply(rah_change("t", "insert", "SELECT 1 AS id",
					      NULL, "SELECT 1 AS id, 'r' AS v"),
				   NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(rah_err, "table t"));
	ck_assert_ptr_nonnull(strstr(rah_err, "no such table"));
}
END_TEST

START_TEST(test_unique_violation)
{
	fixture_exec(rah_db,
		     "CREATE TABLE u(id INTEGER PRIMARY KEY, email UNIQUE);"
		     "INSERT INTO u VALUES (1, 'a@x')");
	ck_assert_int_eq(
	    rah_apply(rah_change("u", "insert", "SELECT 2 AS id", NULL,
				 "SELECT 2 AS id, 'a@x' AS email"),
		      NULL),
	    1);
	ck_assert_ptr_nonnull(strstr(rah_err, "table u"));
	ck_assert_ptr_nonnull(strstr(rah_err, "UNIQUE"));
	rah_assert_dump("SELECT count(*) FROM u", "1");
}
END_TEST

/* Errors that are not the transaction's: -1 (here, a read-only
 * connection's SQLITE_READONLY). */
START_TEST(test_other_error)
{
	json_t *changes =
	    json_pack("[o]", rah_change("t", "insert", "SELECT 1 AS id", NULL,
					"SELECT 1 AS id, 'r' AS v"));

	fixture_exec(rah_db, KV "BEGIN; PRAGMA query_only = 1");
	ck_assert_int_eq(rebase_apply_txn(rah_ra, rah_db, changes,
					  rah_conflicts, rah_err,
					  sizeof rah_err),
			 -1);
	ck_assert_ptr_nonnull(strstr(rah_err, "table t"));
	ck_assert_ptr_nonnull(strstr(rah_err, "readonly"));
	fixture_exec(rah_db, "ROLLBACK");
	json_decref(changes);
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

	fixture_exec(rah_db,
		     KV "INSERT INTO t VALUES (1, 'p'); CREATE TABLE n(x)");
	json_array_append_new(arr, rah_change("t", "update", "SELECT 1 AS id",
					      "SELECT 1 AS id, 'a' AS v",
					      "SELECT 1 AS id, 'b' AS v"));
	json_array_append_new(arr,
			      rah_change("t", "insert", "SELECT 5 AS id", NULL,
					 "SELECT 5 AS id, 'new' AS v"));
	json_array_append_new(
	    arr, rah_change_rowid("n", "delete", 3, "SELECT 'x' AS x", NULL));
	json_array_append_new(arr,
			      rah_change("gone", "insert", "SELECT 1 AS id",
					 NULL, "SELECT 1 AS id"));
	ck_assert_int_eq(
	    rebase_apply_describe(rah_db, arr, out, rah_err, sizeof rah_err),
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
	rah_assert_dump("SELECT id, v FROM t", "1,p");
	json_decref(arr);
	json_decref(out);
}
END_TEST

START_TEST(test_values_round_trip)
{
	fixture_exec(rah_db,
		     "CREATE TABLE v(id INTEGER PRIMARY KEY, i, i2, f, f2,"
		     " s, b, n)");
	ck_assert_int_eq(rah_apply(rah_change("v", "insert", "SELECT 1 AS id",
					      NULL, EVERY_TYPE),
				   NULL),
			 0);
	ck_assert_int_eq(
	    fixture_query_int(rah_db,
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
	    rah_apply(
		rah_change("v", "insert", "SELECT 1 AS id", NULL, EVERY_TYPE),
		rah_change("v", "update", "SELECT 1 AS id", EVERY_TYPE,
			   "SELECT 1 AS id, 2 AS i"),
		NULL),
	    0);
	ck_assert_uint_eq(json_array_size(rah_conflicts), 0);
	ck_assert_int_eq(fixture_query_int(rah_db, "SELECT i FROM v"), 2);
	ck_assert_int_eq(fixture_query_int(rah_db, "SELECT length(b) FROM v"),
			 3);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rebase_apply");
	TCase *tc = tcase_create("rebase_apply");

	tcase_add_checked_fixture(tc, rah_setup, rah_teardown);
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
	tcase_add_test(tc, test_describe);
	tcase_add_test(tc, test_values_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
