/* sync/rowdiff.h on real databases: a database is built with SQLite, its
 * file copied, a transaction run on the copy through a plain connection,
 * and the pages that differ between the two files are the transaction
 * (the base reader reads the file before).  Every case is checked against
 * a brute-force oracle (rowdiff_fixture.h): both files' full table
 * contents compared in SQL (per table, the keys only before, only after,
 * and the rows that differ), and each reported change's key looked up in
 * both files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "rowdiff_fixture.h"

/* --- Cases -------------------------------------------------------------- */

static const char *plain_sql =
    "CREATE TABLE t(a, b TEXT);" FILL("t", 3000, "i, printf('row %d', i)");

START_TEST(test_insert_update_delete)
{
	struct txn t;
	const struct rowdiff_change *c;

	rd_run(&t, plain_sql,
	       "BEGIN; INSERT INTO t VALUES (5000, 'new');"
	       "UPDATE t SET b = 'changed' WHERE a = 1500;"
	       "DELETE FROM t WHERE a = 2999; COMMIT");
	ck_assert_uint_eq(t.n, 3);
	ck_assert_uint_eq(rd_count_op(&t, "t", ROWDIFF_INSERT), 1);
	c = rd_find(&t, "t", ROWDIFF_UPDATE);
	ck_assert_int_eq(c->rowid, 1500);
	ck_assert_str_eq(rd_value_of(c->before, "b"), "row 1500");
	ck_assert_str_eq(rd_value_of(c->after, "b"), "changed");
	ck_assert_str_eq(rd_value_of(c->after, "a"), "1500");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(c->after, "a"), "type")),
			 "integer");
	/* No declared PRIMARY KEY: the rowid is the key. */
	ck_assert_int_eq(json_integer_value(json_object_get(c->key, "rowid")),
			 1500);
	ck_assert_uint_eq(json_object_size(c->key), 1);
	ck_assert_uint_eq(rd_count_op(&t, "t", ROWDIFF_DELETE), 1);
	rd_assert_no_fallback(&t);
	/* Three rows: a few leaves, not the table. */
	ck_assert_uint_lt(t.st.rows_looked_up, 1000);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_keys)
{
	struct txn t;
	const struct rowdiff_change *c;

	rd_run(&t,
	       "CREATE TABLE ip(id INTEGER PRIMARY KEY, v);"
	       "CREATE TABLE tp(name TEXT PRIMARY KEY, v);"
	       "CREATE TABLE ir(v);"
	       "CREATE TABLE cp(x INT, y TEXT, v, PRIMARY KEY (y, x));" FILL(
		   "ip", 500, "i * 2, i") FILL("tp", 500, "'n' || i, i")
		   FILL("ir", 500, "i") FILL("cp", 500, "i, 'y' || i, i"),
	       "UPDATE ip SET v = -1 WHERE id = 100;"
	       "UPDATE tp SET v = -1 WHERE name = 'n7';"
	       "UPDATE ir SET v = -1 WHERE v = 9;"
	       "UPDATE cp SET v = -1 WHERE x = 3;"
	       "INSERT INTO tp VALUES ('zz', 1), ('a0', 2);");
	c = rd_find(&t, "ip", ROWDIFF_UPDATE);
	ck_assert_uint_eq(json_object_size(c->key), 1);
	ck_assert_str_eq(rd_value_of(c->key, "id"), "100");
	ck_assert_int_eq(c->rowid, 100);
	c = rd_find(&t, "tp", ROWDIFF_UPDATE);
	ck_assert_uint_eq(json_object_size(c->key), 1);
	ck_assert_str_eq(rd_value_of(c->key, "name"), "n7");
	/* By key, not by rowid: a0 (rowid 502), n7 (7), zz (501). */
	c = rd_find(&t, "tp", ROWDIFF_INSERT);
	ck_assert_str_eq(rd_value_of(c[0].key, "name"), "a0");
	ck_assert_ptr_null(c->before);
	ck_assert_str_eq(rd_value_of(c[1].key, "name"), "n7");
	ck_assert_str_eq(rd_value_of(c[2].key, "name"), "zz");
	c = rd_find(&t, "ir", ROWDIFF_UPDATE);
	ck_assert_int_eq(json_integer_value(json_object_get(c->key, "rowid")),
			 9);
	c = rd_find(&t, "cp", ROWDIFF_UPDATE);
	ck_assert_uint_eq(json_object_size(c->key), 2);
	ck_assert_str_eq(rd_value_of(c->key, "y"), "y3");
	ck_assert_str_eq(rd_value_of(c->key, "x"), "3");
	ck_assert_uint_eq(t.n, 6);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* Inserts in the middle split leaves: the rows that move to new leaves are
 * no change. */
START_TEST(test_page_split)
{
	struct txn t;

	rd_run(&t,
	       "CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT);" FILL(
		   "s", 2000, "i * 10, printf('%.100c', 'v')"),
	       "BEGIN;" FILL(
		   "s", 300,
		   "5005 + i * 10, printf('%.300c', 'w')") "UPDATE s SET v = "
							   "'short' "
							   "WHERE id = 10; "
							   "COMMIT");
	ck_assert_uint_eq(rd_count_op(&t, "s", ROWDIFF_INSERT), 300);
	ck_assert_uint_eq(rd_count_op(&t, "s", ROWDIFF_UPDATE), 1);
	ck_assert_uint_eq(rd_count_op(&t, "s", ROWDIFF_DELETE), 0);
	/* Rows on split leaves were looked up and compared equal. */
	ck_assert_uint_gt(t.st.rows_looked_up, 301);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* A same-size blob update that changes only an overflow page: SQLite
 * overwrites the payload in place and the leaf stays as it was. */
START_TEST(test_overflow_in_place)
{
	struct txn t;
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t *blob;
	int n;

	rd_exec_on(b_path, "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);"
			   "CREATE TABLE other(x);" FILL("big", 20,
							 "i, randomblob(20000)")
			       FILL("other", 100, "i"));
	rd_copy_file(b_path, a_path);
	db = rd_open_db(a_path);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT b FROM big WHERE id = 7",
					    -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_bytes(st, 0);
	blob = malloc((size_t)n);
	memcpy(blob, sqlite3_column_blob(st, 0), (size_t)n);
	sqlite3_finalize(st);
	blob[15000] ^= 0xff;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "UPDATE big SET b = ?1 WHERE id = 7", -1,
			       &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_blob(st, 1, blob, n, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(blob);
	rd_diff_files(&t);
	ck_assert_int_eq(t.st.overflow_fallback, 1);
	ck_assert_uint_eq(t.st.tables_merged, 1); /* big, not other */
	ck_assert_uint_eq(t.n, 1);
	ck_assert_int_eq(rd_find(&t, "big", ROWDIFF_UPDATE)->rowid, 7);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_several_tables)
{
	struct txn t;

	rd_run(&t,
	       "CREATE TABLE p(id INTEGER PRIMARY KEY, a TEXT, b INT);"
	       "CREATE INDEX p_a ON p(a);"
	       "CREATE UNIQUE INDEX p_b ON p(b);"
	       "CREATE TABLE q(k TEXT PRIMARY KEY, v REAL);"
	       "CREATE TABLE r(x, y BLOB);" FILL("p", 1500,
						 "i, 'a' || (i % 50), i")
		   FILL("q", 800, "'k' || i, i / 4.0")
		       FILL("r", 600, "i, randomblob(i % 50)"),
	       "BEGIN;"
	       "UPDATE p SET a = 'moved', b = b + 100000 WHERE id % 97 = 0;"
	       "UPDATE q SET v = v * 2 WHERE k LIKE 'k1%';"
	       "DELETE FROM r WHERE x % 5 = 0 AND x < 600;"
	       "INSERT INTO r VALUES (NULL, x'00ff');"
	       "COMMIT");
	ck_assert_uint_eq(rd_count_op(&t, "p", ROWDIFF_UPDATE), 15);
	ck_assert_uint_gt(rd_count_op(&t, "q", ROWDIFF_UPDATE), 100);
	ck_assert_uint_eq(rd_count_op(&t, "r", ROWDIFF_DELETE), 119);
	ck_assert_str_eq(
	    rd_value_of(rd_find(&t, "q", ROWDIFF_UPDATE)->after, "k"), "k1");
	ck_assert(json_is_real(json_object_get(
	    json_object_get(rd_find(&t, "q", ROWDIFF_UPDATE)->after, "v"),
	    "value")));
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(rd_find(&t, "r", ROWDIFF_INSERT)->after, "y"),
		"base64")),
	    "AP8");
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* Deleting most of a table frees leaves SQLite never writes again and
 * changes freelist trunks: found by the freelist, no fallback. */
START_TEST(test_delete_frees_pages)
{
	struct txn t;

	rd_run(&t,
	       "CREATE TABLE d(id INTEGER PRIMARY KEY, v TEXT);"
	       "CREATE TABLE keep(x);" FILL(
		   "d", 5000, "i, printf('%.200c', 'd')") FILL("keep", 50, "i"),
	       "DELETE FROM d WHERE id > 500");
	ck_assert_uint_eq(rd_count_op(&t, "d", ROWDIFF_DELETE), 4500);
	ck_assert_uint_gt(t.st.pages_freed, 0);
	/* The freelist's first trunk is written by the transaction. */
	ck_assert_uint_ne(rd_get32(t.a.data + 32), 0);
	ck_assert(rd_changed(&t, rd_get32(t.a.data + 32)));
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_create_table)
{
	struct txn t;

	rd_run(&t, plain_sql,
	       "BEGIN; CREATE TABLE n(id INTEGER PRIMARY KEY, v);"
	       "CREATE INDEX n_v ON n(v);" FILL(
		   "n", 700,
		   "i, i * i") "UPDATE t SET b = 'x' WHERE a = 3; COMMIT");
	ck_assert_uint_eq(rd_count_op(&t, "n", ROWDIFF_INSERT), 700);
	ck_assert_uint_eq(rd_count_op(&t, "sqlite_schema", ROWDIFF_INSERT), 2);
	ck_assert_str_eq(t.c[0].table, "sqlite_schema");
	ck_assert_uint_eq(rd_count_op(&t, "t", ROWDIFF_UPDATE), 1);
	ck_assert_uint_eq(t.st.tables_listed, 1);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_from_empty_database)
{
	struct txn t;

	rd_run(&t, NULL, plain_sql);
	ck_assert_uint_eq(rd_count_op(&t, "t", ROWDIFF_INSERT), 3000);
	ck_assert_uint_eq(rd_count_op(&t, "sqlite_schema", ROWDIFF_INSERT), 1);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_drop_table)
{
	struct txn t;

	rd_run(
	    &t,
	    "CREATE TABLE gone(id INTEGER PRIMARY KEY, v TEXT);"
	    "CREATE INDEX gone_v ON gone(v);" FILL(
		"gone", 1200,
		"i, printf('%.50c', 'g')") "CREATE TABLE stay(x);" FILL("stay",
									10,
									"i"),
	    "DROP TABLE gone");
	ck_assert_uint_eq(rd_count_op(&t, "gone", ROWDIFF_DELETE), 1200);
	ck_assert_uint_eq(rd_count_op(&t, "sqlite_schema", ROWDIFF_DELETE), 2);
	ck_assert_uint_eq(rd_count_op(&t, "stay", ROWDIFF_DELETE), 0);
	rd_txn_free(&t);
}
END_TEST

/* A table dropped and created again under its name in one transaction:
 * the old rows' leaves are freed unwritten, yet every row is compared. */
START_TEST(test_drop_and_recreate)
{
	struct txn t;

	rd_run(&t,
	       "CREATE TABLE a1(x);"
	       "CREATE TABLE re(id INTEGER PRIMARY KEY, v TEXT);" FILL(
		   "re", 1500, "i, printf('%.80c', 'r')"),
	       "BEGIN; DROP TABLE re;"
	       "CREATE TABLE re(id INTEGER PRIMARY KEY, v TEXT);" FILL(
		   "re", 10, "i, printf('%.80c', 'r')") "COMMIT");
	ck_assert_uint_eq(rd_count_op(&t, "re", ROWDIFF_DELETE), 1490);
	ck_assert_uint_eq(rd_count_op(&t, "re", ROWDIFF_UPDATE), 0);
	rd_txn_free(&t);
}
END_TEST

START_TEST(test_without_rowid)
{
	struct txn t;
	const struct rowdiff_change *c;

	rd_run(&t,
	       "CREATE TABLE w(k TEXT, n INT, v, PRIMARY KEY (k, n)) "
	       "WITHOUT ROWID;"
	       "CREATE TABLE plain(x);" FILL("w", 2000, "'k' || (i % 40), i, i")
		   FILL("plain", 100, "i"),
	       "BEGIN; UPDATE w SET v = -v WHERE n % 100 = 0;"
	       "DELETE FROM w WHERE n = 7; INSERT INTO w VALUES ('a', 1, 2);"
	       "COMMIT");
	ck_assert_int_eq(t.st.without_rowid_fallback, 1);
	ck_assert_uint_eq(rd_count_op(&t, "w", ROWDIFF_UPDATE), 20);
	c = rd_find(&t, "w", ROWDIFF_DELETE);
	ck_assert_int_eq(c->rowid, 0);
	ck_assert_str_eq(rd_value_of(c->key, "k"), "k7");
	ck_assert_str_eq(rd_value_of(c->key, "n"), "7");
	ck_assert_ptr_null(c->after);
	ck_assert_uint_eq(rd_count_op(&t, "w", ROWDIFF_INSERT), 1);
	ck_assert_uint_eq(rd_count_op(&t, "plain", ROWDIFF_UPDATE), 0);
	rd_txn_free(&t);
}
END_TEST

/* Auto-vacuum: pointer-map pages change with every move, dropping a table
 * relocates pages and truncates the file. */
START_TEST(test_auto_vacuum)
{
	struct txn t;

	rd_run(&t,
	       "PRAGMA auto_vacuum=FULL;"
	       "CREATE TABLE v1(id INTEGER PRIMARY KEY, v TEXT);"
	       "CREATE TABLE v2(id INTEGER PRIMARY KEY, v TEXT);"
	       "CREATE TABLE v3(x);" FILL("v1", 3000, "i, printf('%.60c', 'a')")
		   FILL("v2", 1000, "i, printf('%.300c', 'b')")
		       FILL("v3", 500, "i"),
	       "BEGIN; DELETE FROM v1 WHERE id % 3 = 0; DROP TABLE v2;"
	       "UPDATE v3 SET x = -x WHERE x < 10; COMMIT");
	ck_assert_uint_lt(t.a.n, t.b.n);
	ck_assert(rd_changed(&t, 2)); /* the first pointer-map page */
	ck_assert_uint_eq(rd_count_op(&t, "v1", ROWDIFF_DELETE), 1000);
	ck_assert_uint_eq(rd_count_op(&t, "v2", ROWDIFF_DELETE), 1000);
	ck_assert_uint_eq(rd_count_op(&t, "v3", ROWDIFF_UPDATE), 9);
	ck_assert_int_eq(t.st.overflow_fallback, 0);
	rd_txn_free(&t);
}
END_TEST

/* Rows with overflow chains, deleted and rewritten with other sizes: the
 * chains are accounted for by their changed cells, no fallback. */
START_TEST(test_overflow_rows_changed)
{
	struct txn t;

	rd_run(&t,
	       "CREATE TABLE o(id INTEGER PRIMARY KEY, b BLOB);" FILL(
		   "o", 40, "i, randomblob(9000)"),
	       "BEGIN; UPDATE o SET b = randomblob(12000) WHERE id = 3;"
	       "DELETE FROM o WHERE id = 5; INSERT INTO o VALUES (100, "
	       "randomblob(30000)); COMMIT");
	ck_assert_uint_eq(t.n, 3);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* A WAL database, the transaction checkpointed into the file: page 1
 * stays as it was (no change counter in WAL mode), and the schema is read
 * from the base. */
START_TEST(test_wal_mode)
{
	struct txn t;
	size_t i;

	rd_run(&t,
	       "PRAGMA journal_mode=WAL;"
	       "CREATE TABLE t(a, b TEXT);" FILL("t", 3000,
						 "i, printf('row %d', i)"),
	       "UPDATE t SET b = 'wal' WHERE a IN (10, 2000);"
	       "PRAGMA wal_checkpoint(TRUNCATE)");
	for (i = 0; i < t.n_pages; i++)
		ck_assert_uint_ne(t.pages[i].pgno, 1);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_uint_eq(rd_count_op(&t, "t", ROWDIFF_UPDATE), 2);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* Pages out of order are refused, not trusted. */
START_TEST(test_unsorted_refused)
{
	struct txn t;
	struct rowdiff_page p[2];
	struct rowdiff_input in;
	struct rowdiff_change *c = NULL;
	size_t n = 1;
	char err[256];

	rd_run(&t, plain_sql, "UPDATE t SET b = 'x' WHERE a = 1");
	p[0] = t.pages[0];
	p[1] = t.pages[0];
	in = (struct rowdiff_input){.read = rd_read_before,
				    .arg = &t,
				    .pages = p,
				    .n_pages = 2,
				    .size_before = t.b.n,
				    .size_after = t.a.n};
	ck_assert_int_eq(rowdiff_compute(&in, &c, &n, err, sizeof err), -1);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(strstr(err, "not sorted") != NULL, "%s", err);
	rd_txn_free(&t);
}
END_TEST

/* A schema over several pages: its leaves other than page 1 belong to
 * sqlite_schema too. */
START_TEST(test_big_schema)
{
	struct txn t;
	sqlite3 *db;
	char sql[128];
	int i;

	db = rd_open_db(b_path);
	fixture_exec(db, "BEGIN");
	for (i = 0; i < 300; i++) {
		snprintf(sql, sizeof sql,
			 "CREATE TABLE tab%03d(id INTEGER PRIMARY KEY, "
			 "v TEXT DEFAULT 'some default text')",
			 i);
		fixture_exec(db, sql);
	}
	fixture_exec(db, "INSERT INTO tab150(id) VALUES (1), (2); COMMIT");
	sqlite3_close(db);
	rd_copy_file(b_path, a_path);
	rd_exec_on(a_path,
		   "BEGIN; DROP TABLE tab007; CREATE TABLE zzz(x);"
		   "INSERT INTO zzz VALUES (1); UPDATE tab150 SET v = 'x';"
		   "COMMIT");
	rd_diff_files(&t);
	ck_assert_uint_eq(rd_count_op(&t, "sqlite_schema", ROWDIFF_DELETE), 1);
	ck_assert_uint_eq(rd_count_op(&t, "sqlite_schema", ROWDIFF_INSERT), 1);
	ck_assert_uint_eq(rd_count_op(&t, "tab150", ROWDIFF_UPDATE), 2);
	ck_assert_uint_eq(rd_count_op(&t, "zzz", ROWDIFF_INSERT), 1);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* Long index keys spill to overflow pages of index cells: accounted by
 * the index pages' cells, no fallback. */
START_TEST(test_index_overflow)
{
	struct txn t;

	rd_run(
	    &t,
	    "CREATE TABLE x(id INTEGER PRIMARY KEY, k TEXT);"
	    "CREATE INDEX x_k ON x(k);" FILL("x", 200,
					     "i, printf('%.5000c', 'k') || i"),
	    "UPDATE x SET k = printf('%.7000c', 'z') || id WHERE id % 50 = 0");
	ck_assert_uint_eq(rd_count_op(&t, "x", ROWDIFF_UPDATE), 4);
	rd_assert_no_fallback(&t);
	rd_txn_free(&t);
}
END_TEST

/* Random transactions in a row, each checked by the oracle: rows of every
 * size, a WITHOUT ROWID table, indexes, deletes that free pages. */
START_TEST(test_random_transactions)
{
	static const char *txn_sql =
	    "BEGIN;"
	    "UPDATE r SET v = randomblob(abs(random()) % 9000) "
	    "WHERE abs(random()) % 15 = 0;"
	    "DELETE FROM r WHERE abs(random()) % 25 = 0;"
	    "INSERT INTO r(v, s) SELECT randomblob(abs(random()) % 6000), "
	    "hex(randomblob(8)) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL "
	    "SELECT 3) WHERE abs(random()) % 2 = 0;"
	    "UPDATE w SET v = v + 1 WHERE abs(random()) % 30 = 0;"
	    "DELETE FROM w WHERE abs(random()) % 40 = 0;"
	    "INSERT OR REPLACE INTO w SELECT 'k' || (abs(random()) % 900), "
	    "abs(random()) % 3, 0 FROM r LIMIT 20;"
	    "DELETE FROM p WHERE abs(random()) % 3 = 0;"
	    "INSERT INTO p SELECT NULL, printf('%.*c', abs(random()) % 300, "
	    "'p') FROM r LIMIT abs(random()) % 200;"
	    "COMMIT";
	struct txn t;
	int i, fallbacks = 0;

	rd_exec_on(b_path,
		   "CREATE TABLE r(id INTEGER PRIMARY KEY, v BLOB, s TEXT);"
		   "CREATE INDEX r_s ON r(s);"
		   "CREATE TABLE w(k TEXT, n INT, v, PRIMARY KEY (k, n)) "
		   "WITHOUT ROWID;"
		   "CREATE TABLE p(id INTEGER PRIMARY KEY, t TEXT);" FILL(
		       "r", 300, "i, randomblob(abs(random()) % 8000), hex(i)")
		       FILL("w", 600, "'k' || i, i % 3, i")
			   FILL("p", 1000, "i, printf('%.100c', 'p')"));
	for (i = 0; i < 18; i++) {
		rd_copy_file(b_path, a_path);
		rd_exec_on(a_path, txn_sql);
		if (i >= 12) {
			/* Same-size rewrites of s, at the end of records
			 * whose v spills: some only in overflow pages, which
			 * the fallback finds. */
			rd_exec_on(a_path,
				   "UPDATE r SET s = hex(randomblob(4)) "
				   "WHERE abs(random()) % 10 = 0");
		}
		rd_diff_files(&t);
		if (i < 12)
			ck_assert_int_eq(t.st.overflow_fallback, 0);
		else
			fallbacks += t.st.overflow_fallback;
		rd_txn_free(&t);
		rd_copy_file(a_path, b_path);
	}
	fprintf(stderr,
		"random transactions: %d of 6 took the overflow "
		"fallback\n",
		fallbacks);
}
END_TEST

/* A column named rowid: the rowid goes by _rowid_. */
START_TEST(test_column_named_rowid)
{
	struct txn t;
	const struct rowdiff_change *c;

	rd_run(
	    &t,
	    "CREATE TABLE odd(rowid TEXT, v);" FILL("odd", 900, "'r' || i, i"),
	    "UPDATE odd SET v = -1 WHERE rowid = 'r500';"
	    "DELETE FROM odd WHERE rowid = 'r9'");
	c = rd_find(&t, "odd", ROWDIFF_UPDATE);
	ck_assert_int_eq(c->rowid, 500);
	ck_assert_str_eq(rd_value_of(c->before, "rowid"), "r500");
	ck_assert_int_eq(rd_find(&t, "odd", ROWDIFF_DELETE)->rowid, 9);
	ck_assert_uint_eq(t.n, 2);
	rd_txn_free(&t);
}
END_TEST

/* Incremental vacuum: pages move and the file shrinks inside the
 * transaction that deletes. */
START_TEST(test_incremental_vacuum)
{
	struct txn t;

	rd_run(&t,
	       "PRAGMA auto_vacuum=INCREMENTAL;"
	       "CREATE TABLE iv(id INTEGER PRIMARY KEY, v TEXT);"
	       "CREATE TABLE tail(x TEXT);" FILL("iv", 2000,
						 "i, printf('%.100c', 'i')")
		   FILL("tail", 300, "printf('%.200c', 't')"),
	       "BEGIN; DELETE FROM iv WHERE id <= 1500;"
	       "PRAGMA incremental_vacuum(40); COMMIT");
	ck_assert_uint_lt(t.a.n, t.b.n);
	ck_assert_uint_eq(rd_count_op(&t, "iv", ROWDIFF_DELETE), 1500);
	ck_assert_uint_eq(rd_count_op(&t, "tail", ROWDIFF_UPDATE), 0);
	ck_assert_int_eq(t.st.overflow_fallback, 0);
	rd_txn_free(&t);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rowdiff");
	TCase *tc = tcase_create("rowdiff");

	tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_insert_update_delete);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_page_split);
	tcase_add_test(tc, test_overflow_in_place);
	tcase_add_test(tc, test_several_tables);
	tcase_add_test(tc, test_delete_frees_pages);
	tcase_add_test(tc, test_create_table);
	tcase_add_test(tc, test_from_empty_database);
	tcase_add_test(tc, test_drop_table);
	tcase_add_test(tc, test_drop_and_recreate);
	tcase_add_test(tc, test_without_rowid);
	tcase_add_test(tc, test_auto_vacuum);
	tcase_add_test(tc, test_overflow_rows_changed);
	tcase_add_test(tc, test_wal_mode);
	tcase_add_test(tc, test_unsorted_refused);
	tcase_add_test(tc, test_big_schema);
	tcase_add_test(tc, test_index_overflow);
	tcase_add_test(tc, test_random_transactions);
	tcase_add_test(tc, test_column_named_rowid);
	tcase_add_test(tc, test_incremental_vacuum);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
