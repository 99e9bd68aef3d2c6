/* The page map (server/store_map.h) on real databases: a transaction
 * checked incrementally leaves the map a fresh walk of the new database
 * builds, and legitimate transactions are never refused: rowid tables,
 * schema changes, deep trees, auto-vacuum, and randomized sequences.
 * Transactions mutated into corruption are in test_store_map_corruptions.c;
 * the helpers both share are in store_map_test_helpers.[ch].
 *
 * A transaction is the pages that differ between two files (journal mode
 * DELETE, so each file holds the whole state) and the new file's length;
 * pages SQLite frees without writing them are not in it, as in a push. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "rows_fixture.h"
#include "server/store_map.h"
#include "store_map_test_helpers.h"

/* The integers 1 to n, as a subquery. */
#define SERIES(n)                                                              \
	"(WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 "    \
	"FROM g WHERE value < " #n ") SELECT value FROM g)"

/* Runs sql on a copy of a.db as b.db, checks the transaction, and makes
 * b.db the next a.db. */
static void step(const char *sql)
{
	rows_copy(smh_a_path, smh_b_path);
	rows_exec(smh_b_path, sql);
	smh_assert_legit(sql);
	rows_copy(smh_b_path, smh_a_path);
}

START_TEST(test_legit_rowid_tables)
{
	rows_exec(smh_a_path, smh_base_sql);
	step("INSERT INTO t VALUES (5000, 'x', randomblob(60))");
	step("UPDATE t SET b = randomblob(61) WHERE id = 1500");
	step("DELETE FROM t WHERE id = 1501");
	step("BEGIN; INSERT INTO t SELECT 5000 + value, 'y' || value, "
	     "randomblob(60) FROM " SERIES(60) "; COMMIT");
	step("UPDATE t SET a = a || 'x' WHERE id % 97 = 0");
	step("DELETE FROM t WHERE id BETWEEN 100 AND 150");
	/* Overflow rows: new chains (reusing free pages), chains growing,
	 * shrinking, going, and a row no longer spilling. */
	step("INSERT INTO big VALUES (100, randomblob(50000))");
	step("INSERT INTO big VALUES (101, randomblob(100000))");
	step("UPDATE big SET v = randomblob(90000) WHERE id = 2");
	step("UPDATE big SET v = randomblob(11000) WHERE id = 20");
	step("UPDATE big SET v = randomblob(100) WHERE id = 21");
	step("UPDATE big SET v = randomblob(4100) WHERE id = 22");
	step("DELETE FROM big WHERE id IN (5, 6)");
	step("INSERT INTO big VALUES (102, randomblob(30000))");
	step("INSERT INTO t VALUES (7000, 'ov', randomblob(20000))");
	step("UPDATE t SET a = printf('%.5000c', 'L') WHERE id = 200");
	/* Splits and merges. */
	step("BEGIN; INSERT INTO t SELECT 10000 + value, 's' || value, "
	     "randomblob(300) FROM " SERIES(300) "; COMMIT");
	step("UPDATE t SET b = randomblob(900) WHERE id BETWEEN 1000 AND "
	     "1100");
	step("DELETE FROM t WHERE id % 3 != 0 AND id < 2000");
	step("DELETE FROM t WHERE id BETWEEN 10000 AND 10290");
	/* Reuse of the free pages. */
	step("BEGIN; INSERT INTO t SELECT 20000 + value, 'r' || value, "
	     "randomblob(100) FROM " SERIES(400) "; COMMIT");
	/* DELETE of everything: the pages are freed without being written,
	 * onto freelist trunks and leaves. */
	step("DELETE FROM big");
	step("DELETE FROM t");
	step("INSERT INTO big VALUES (1, randomblob(60000))");
	step("BEGIN; INSERT INTO t SELECT value, 'z' || value, "
	     "randomblob(50) FROM " SERIES(2000) "; COMMIT");
	step("VACUUM");
	step("UPDATE t SET b = randomblob(49) WHERE id = 1000");
	fprintf(stderr, "rowid tables: %d checked incrementally, %d whole\n",
		smh_n_incremental, smh_n_whole);
	ck_assert_int_gt(smh_n_incremental, 15);
}
END_TEST

START_TEST(test_legit_schema)
{
	char *sql;
	char long_default[5001];

	rows_exec(smh_a_path, smh_base_sql);
	step("CREATE TABLE c(x INTEGER PRIMARY KEY, y)");
	step("INSERT INTO c SELECT value, value FROM " SERIES(500) "");
	step("CREATE INDEX c_y ON c(y)");
	step("CREATE INDEX w_v ON w(v)");
	step("CREATE UNIQUE INDEX big_v ON big(substr(v, 1, 8))");
	step("DROP INDEX c_y");
	step("DROP TABLE c");
	step("DROP INDEX big_v");
	step("CREATE TABLE e(x)");
	step("DROP TABLE e");
	/* A schema record spilling to an overflow chain: page 1 splits. */
	memset(long_default, 'd', 5000);
	long_default[5000] = 0;
	sql = sqlite3_mprintf("CREATE TABLE longsql(x, y DEFAULT '%s')",
			      long_default);
	step(sql);
	sqlite3_free(sql);
	step("INSERT INTO longsql(x) VALUES (1)");
	step("CREATE INDEX longsql_x ON longsql(x)");
	step("DROP TABLE longsql");
	/* Many tables: the schema b-tree grows a level. */
	step("BEGIN; CREATE TABLE s1(a); CREATE TABLE s2(a); CREATE TABLE "
	     "s3(a); CREATE TABLE s4(a); CREATE TABLE s5(a); CREATE INDEX "
	     "s1a ON s1(a); CREATE INDEX s2a ON s2(a); COMMIT");
	step("DROP TABLE s3");
	/* WITHOUT ROWID. */
	step("INSERT INTO w VALUES ('new', randomblob(30))");
	step("UPDATE w SET v = randomblob(31) WHERE k = 'k500'");
	step("BEGIN; INSERT INTO w SELECT 'n' || value, randomblob(200) FROM "
	     "" SERIES(400) "; COMMIT");
	step("INSERT INTO w VALUES ('huge', randomblob(20000))");
	step("INSERT INTO w VALUES (printf('%.9000c', 'K'), 1)");
	step("DELETE FROM w WHERE k LIKE 'n%'");
	step("DELETE FROM w");
	step("CREATE TABLE w2(a, b, c, PRIMARY KEY (b, a)) WITHOUT ROWID");
	step("INSERT INTO w2 SELECT value, value % 7, randomblob(40) FROM "
	     "" SERIES(1000) "");
	step("DROP TABLE w2");
	step("VACUUM");
}
END_TEST

/* 10k+ rows of 200-byte keys: a table and an index four levels deep. */
START_TEST(test_legit_deep)
{
	sqlite3 *db;

	rows_exec(smh_a_path, smh_base_sql);
	step("CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT);"
	     "CREATE INDEX m_v ON m(v);"
	     "INSERT INTO m SELECT value, printf('%0200d', value * 7919 % "
	     "12000) FROM " SERIES(12000) "");
	db = rows_open(smh_a_path);
	ck_assert_int_ge(fixture_query_int(db, "SELECT max(length(path)) "
					       "FROM dbstat WHERE name = "
					       "'m_v'"),
			 13); /* /000/000/000/ and below */
	sqlite3_close(db);
	step("UPDATE m SET v = 'changed' WHERE id = 6000");
	step("INSERT INTO m VALUES (20000, printf('%0200d', 5))");
	step("BEGIN; INSERT INTO m SELECT 20000 + value, printf('%0199d', "
	     "value) FROM " SERIES(1000) "; COMMIT");
	step("DELETE FROM m WHERE id BETWEEN 3000 AND 3500");
	step("DELETE FROM m WHERE id % 2 = 0");
	step("UPDATE m SET v = printf('%0300d', id) WHERE id % 50 = 1");
	step("DELETE FROM m WHERE id > 100");
	step("DELETE FROM m");
	step("DROP TABLE m");
}
END_TEST

/* auto_vacuum=FULL: pointer-map pages, a file shrinking at every commit
 * that frees pages, root pages moved on DROP TABLE. */
START_TEST(test_legit_autovacuum)
{
	rows_exec(smh_a_path, "PRAGMA auto_vacuum=FULL");
	rows_exec(smh_a_path, smh_base_sql);
	step("INSERT INTO t VALUES (5000, 'x', randomblob(60))");
	step("UPDATE t SET b = randomblob(61) WHERE id = 1500");
	step("DELETE FROM t WHERE id BETWEEN 100 AND 300");
	step("INSERT INTO big VALUES (100, randomblob(50000))");
	step("UPDATE big SET v = randomblob(20000) WHERE id = 100");
	step("DELETE FROM big WHERE id IN (4, 5)");
	step("CREATE TABLE c(x INTEGER PRIMARY KEY, y)");
	step("INSERT INTO c SELECT value, randomblob(100) FROM "
	     "" SERIES(500) "");
	step("CREATE INDEX c_y ON c(y)");
	step("CREATE TABLE d(x)");
	/* Roots after t's move down into the freed ones. */
	step("DROP TABLE t");
	step("DROP INDEX c_y");
	step("DROP TABLE c");
	step("INSERT INTO w VALUES ('new', randomblob(30000))");
	step("DELETE FROM w");
	step("DELETE FROM big");
	/* Past the first pointer-map page's reach (819 pages). */
	step("BEGIN; INSERT INTO d SELECT randomblob(3000) FROM "
	     "" SERIES(1000) "; COMMIT");
	step("UPDATE d SET x = randomblob(10) WHERE rowid % 3 = 0");
	step("DELETE FROM d WHERE rowid > 100");
	step("VACUUM");
}
END_TEST

/* auto_vacuum=INCREMENTAL: free pages kept until incremental_vacuum cuts
 * them off. */
START_TEST(test_legit_incremental_vacuum)
{
	rows_exec(smh_a_path, "PRAGMA auto_vacuum=INCREMENTAL");
	rows_exec(smh_a_path, smh_base_sql);
	step("DELETE FROM big WHERE id > 20");
	step("PRAGMA incremental_vacuum(5)");
	step("DELETE FROM t WHERE id < 1000");
	step("PRAGMA incremental_vacuum(1)");
	step("INSERT INTO big VALUES (100, randomblob(20000))");
	step("PRAGMA incremental_vacuum");
	step("DROP TABLE t");
	step("PRAGMA incremental_vacuum");
	/* Turning auto-vacuum off takes a VACUUM: a rewrite. */
	step("PRAGMA auto_vacuum=NONE; VACUUM");
	step("DELETE FROM big WHERE id < 10");
}
END_TEST

/* A randomized sequence of transactions, each checked against one map kept
 * from the first (committed each time) and compared with a fresh walk. */
static uint32_t rnd_state;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % n;
}

static void random_sequence(const char *pragma, uint32_t seed, int n)
{
	struct rows_file cur, next;
	struct store_map *m;
	char sql[512], *ok;
	int i, next_id = 100000;

	rnd_state = seed;
	if (pragma != NULL)
		rows_exec(smh_a_path, pragma);
	rows_exec(smh_a_path, smh_base_sql);
	rows_file_load(&cur, smh_a_path);
	m = smh_build(&cur);
	for (i = 0; i < n; i++) {
		uint32_t k = rnd(3000), len = 1 + rnd(100);
		switch (rnd(12)) {
		case 0:
		case 1:
			snprintf(sql, sizeof sql,
				 "BEGIN; INSERT INTO t SELECT %d + value, "
				 "hex(randomblob(%u)), randomblob(%u) FROM "
				 "(WITH RECURSIVE g(value) AS (SELECT 1 UNION "
				 "ALL SELECT value + 1 FROM g WHERE value < "
				 "%u) SELECT value FROM g); COMMIT",
				 next_id, 1 + rnd(20), rnd(200), len);
			next_id += 1000;
			break;
		case 2:
			snprintf(sql, sizeof sql,
				 "UPDATE t SET b = randomblob(%u) WHERE id "
				 "BETWEEN %u AND %u",
				 rnd(400), k, k + rnd(30));
			break;
		case 3:
			snprintf(sql, sizeof sql,
				 "DELETE FROM t WHERE id BETWEEN %u AND %u", k,
				 k + rnd(200));
			break;
		case 4:
			snprintf(sql, sizeof sql,
				 "INSERT OR REPLACE INTO big VALUES (%u, "
				 "randomblob(%u))",
				 rnd(40), 4000 + rnd(100000));
			break;
		case 5:
			snprintf(sql, sizeof sql,
				 "DELETE FROM big WHERE id %% %u = %u",
				 2 + rnd(8), rnd(2));
			break;
		case 6:
			snprintf(sql, sizeof sql,
				 "INSERT OR REPLACE INTO w SELECT 'k' || "
				 "(value * %u %% 3000), randomblob(%u) FROM "
				 "(WITH RECURSIVE g(value) AS (SELECT 1 UNION "
				 "ALL SELECT value + 1 FROM g WHERE value < "
				 "%u) SELECT value FROM g)",
				 1 + rnd(50), rnd(300), len);
			break;
		case 7:
			snprintf(sql, sizeof sql,
				 "DELETE FROM w WHERE k > 'k%u' AND k < 'k%u'",
				 k, k + rnd(500));
			break;
		case 8:
			snprintf(sql, sizeof sql,
				 rnd(2) ? "CREATE INDEX IF NOT EXISTS i%u ON "
					  "t(b)"
					: "DROP INDEX IF EXISTS i%u",
				 rnd(3));
			break;
		case 9:
			snprintf(sql, sizeof sql,
				 rnd(2) ? "CREATE TABLE IF NOT EXISTS x%u(a, "
					  "b); INSERT INTO x%u SELECT value, "
					  "randomblob(value %% 1000) FROM "
					  "" SERIES(200) ""
					: "DROP TABLE IF EXISTS x%u",
				 k % 4, k % 4);
			break;
		case 10:
			snprintf(sql, sizeof sql,
				 "UPDATE t SET a = printf('%%.%uc', 'q') WHERE "
				 "id %% %u = 0",
				 1 + rnd(3000), 50 + rnd(500));
			break;
		default:
			snprintf(sql, sizeof sql,
				 rnd(8) == 0 ? "VACUUM"
				 : pragma != NULL && rnd(2)
				     ? "PRAGMA incremental_vacuum(%u)"
				     : "UPDATE t SET b = b WHERE id = %u",
				 1 + rnd(20));
			break;
		}
		rows_copy(smh_a_path, smh_b_path);
		rows_exec(smh_b_path, sql);
		if (i % 10 == 0) {
			ok = rows_integrity(smh_b_path);
			ck_assert_msg(strcmp(ok, "ok") == 0, "%d %s: %s", i,
				      sql, ok);
			free(ok);
		}
		rows_file_load(&next, smh_b_path);
		smh_check_legit(sql, m, &cur, &next);
		/* The map now reads the new state. */
		rows_file_free(&cur);
		cur = next;
		rows_copy(smh_b_path, smh_a_path);
	}
	fprintf(stderr,
		"%d random transactions (%s): %d checked incrementally, %d "
		"whole, %u pages at the end\n",
		n, pragma ? pragma : "no auto-vacuum", smh_n_incremental,
		smh_n_whole, cur.n_pages);
	store_map_free(m);
	rows_file_free(&cur);
}

START_TEST(test_random_sequence)
{
	random_sequence(NULL, 12345, 240);
}
END_TEST

START_TEST(test_random_sequence_autovacuum)
{
	random_sequence("PRAGMA auto_vacuum=INCREMENTAL", 777, 120);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store_map");
	TCase *tc = tcase_create("store_map");

	tcase_add_checked_fixture(tc, smh_setup, smh_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_legit_rowid_tables);
	tcase_add_test(tc, test_legit_schema);
	tcase_add_test(tc, test_legit_deep);
	tcase_add_test(tc, test_legit_autovacuum);
	tcase_add_test(tc, test_legit_incremental_vacuum);
	tcase_add_test(tc, test_random_sequence);
	tcase_add_test(tc, test_random_sequence_autovacuum);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
