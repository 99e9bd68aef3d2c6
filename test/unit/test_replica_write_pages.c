/* The replica write path against a real primary on loopback (DESIGN.md §3
 * "Write path", issue 4), page by page: writes that resize the file or go
 * through the WAL in less common ways reach the primary before the
 * statement returns and are visible locally at once -- VACUUM and deletes
 * that shrink the file (auto_vacuum FULL and INCREMENTAL), transactions
 * larger than a push request, overflow blobs and incremental blob I/O,
 * cache spills before the commit, writes around local checkpoints of every
 * mode.
 *
 * Each test is its own test case: CK_RUN_CASE=test_cache_spill runs one.
 * No assertion depends on timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "replica_write_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* every kind of write, page by page */

/* A table of n rows of blob_len random bytes, written through db. */
static void fill_big(sqlite3 *db, int lo, int hi, int blob_len)
{
	char *sql = sqlite3_mprintf(
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO big(a, b) SELECT i, randomblob(%d) "
	    "FROM n",
	    lo, hi, blob_len);

	fixture_exec(db, sql);
	sqlite3_free(sql);
}

/* The file shrank below max_pages pages with no free page left, on the
 * replica (also for the other connection db2) and on the primary. */
static void assert_shrunk(sqlite3 *db, sqlite3 *db2, const char *url,
			  int64_t max_pages)
{
	int64_t pages = rwh_both_int(db, url, "PRAGMA page_count");

	ck_assert_int_lt(pages, max_pages);
	ck_assert_int_eq(rwh_both_int(db, url, "PRAGMA freelist_count"), 0);
	ck_assert_int_eq(fixture_query_int(db2, "PRAGMA page_count"), pages);
	rwh_assert_integrity_both(db, url);
}

/* VACUUM and deletes that shrink the file: the page count follows on the
 * primary. */
START_TEST(test_vacuum_shrink)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *db2;
	int64_t pages;

	url = rwh_start_explicit(&e, &db, &db2);
	fixture_exec(db, "CREATE TABLE keep(a INTEGER PRIMARY KEY, b TEXT); "
			 "INSERT INTO keep VALUES (1, 'kept'), (2, 'also')");
	fixture_exec(db, "CREATE TABLE big(a INTEGER PRIMARY KEY, b BLOB)");
	fill_big(db, 1, 400, 3000);
	pages = rwh_both_int(db, url, "PRAGMA page_count");
	ck_assert_int_gt(pages, 400);

	/* A big DELETE leaves free pages (no auto_vacuum). */
	fixture_exec(db, "DELETE FROM big WHERE a > 20");
	ck_assert_int_eq(rwh_both_int(db, url, "PRAGMA page_count"), pages);
	ck_assert_int_gt(rwh_both_int(db, url, "PRAGMA freelist_count"), 300);

	/* VACUUM rewrites and truncates. */
	fixture_exec(db, "VACUUM");
	assert_shrunk(db, db2, url, 40);
	rfx_assert_same_table(db, url, "big", "a || ',' || hex(b)");

	/* auto_vacuum=FULL (applied by VACUUM): a big DELETE shrinks the file
	 * at its commit. */
	fixture_exec(db, "PRAGMA auto_vacuum = FULL");
	fixture_exec(db, "VACUUM");
	/* (PRAGMA auto_vacuum alone answers from a cache of the header that
	 * only a new transaction refreshes, on any SQLite connection whose
	 * schema is loaded: read it inside a statement that reads.) */
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT auto_vacuum + 0 * (SELECT count(*) "
			 "FROM sqlite_schema) FROM pragma_auto_vacuum"),
	    1);
	fill_big(db, 21, 400, 3000);
	ck_assert_int_gt(rwh_both_int(db, url, "PRAGMA page_count"), 400);
	fixture_exec(db, "DELETE FROM big WHERE a > 20");
	assert_shrunk(db, db2, url, 60);

	/* auto_vacuum=INCREMENTAL: PRAGMA incremental_vacuum shrinks. */
	fixture_exec(db, "PRAGMA auto_vacuum = INCREMENTAL");
	fixture_exec(db, "VACUUM");
	fill_big(db, 21, 300, 3000);
	fixture_exec(db, "DELETE FROM big WHERE a > 20");
	ck_assert_int_gt(rwh_both_int(db, url, "PRAGMA freelist_count"), 200);
	fixture_exec(db, "PRAGMA incremental_vacuum");
	ck_assert_int_eq(rwh_both_int(db, url, "PRAGMA freelist_count"), 0);
	ck_assert_int_lt(rwh_both_int(db, url, "PRAGMA page_count"), 60);

	/* The page size stays (a WAL database cannot change it). */
	fixture_exec(db, "PRAGMA page_size = 8192");
	fixture_exec(db, "VACUUM");
	ck_assert_int_eq(rwh_both_int(db, url, "PRAGMA page_size"), 4096);

	/* And the file grows again after shrinking. */
	fill_big(db, 1000, 1100, 3000);
	rwh_both_int(db, url, "PRAGMA page_count");
	rfx_assert_same_table(db, url, "big", "a || ',' || hex(b)");
	rfx_assert_same_table(db, url, "keep", "a || ',' || b");
	rfx_assert_same_table(db2, url, "sqlite_schema", RWH_SCHEMA_ROW);
	rwh_finish(&e, db, db2);
}
END_TEST

/* Transactions larger than one push request (at most 1024 frames), and
 * blobs in overflow chains, inserted and rewritten. */
START_TEST(test_large_transactions)
{
	struct rfx_env e;
	struct rfx_info before, after;
	const char *url;
	sqlite3 *db;

	url = rwh_start_explicit(&e, &db, NULL);
	fixture_exec(db, "CREATE TABLE big(a INTEGER PRIMARY KEY, b BLOB)");

	/* One statement: more than 1500 pages (one row per page). */
	rfx_primary_info(url, NULL, &before);
	fill_big(db, 1, 1600, 3000);
	rfx_primary_info(url, NULL, &after);
	ck_assert_int_gt(after.max_frame_no - before.max_frame_no, 1500);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM big"),
			 1600);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), after.max_frame_no);

	/* One explicit transaction of several statements, again more than
	 * 1500 pages, rewriting pages written earlier in it. */
	rfx_primary_info(url, NULL, &before);
	fixture_exec(db, "BEGIN");
	fill_big(db, 2001, 2800, 3000);
	fixture_exec(db, "UPDATE big SET b = randomblob(2900) WHERE a % 2 = 0");
	fill_big(db, 3001, 3300, 3000);
	fixture_exec(db, "DELETE FROM big WHERE a % 7 = 0");
	fixture_exec(db, "COMMIT");
	rfx_primary_info(url, NULL, &after);
	ck_assert_int_gt(after.max_frame_no - before.max_frame_no, 1500);
	rfx_assert_same_table(db, url, "big", "a || ',' || hex(b)");

	/* Overflow chains: 50 KB blobs, one of 3 MB, then rewritten in part
	 * and shortened. */
	fill_big(db, 5001, 5020, 50000);
	fill_big(db, 6000, 6000, 3 << 20);
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT sum(length(b)) FROM big WHERE a > 5000"),
	    20 * 50000 + (3 << 20));
	fixture_exec(db, "UPDATE big SET b = randomblob(60000) WHERE a > 5000 "
			 "AND a % 3 = 0");
	fixture_exec(db, "UPDATE big SET b = substr(b, 1, 10000) WHERE a = "
			 "6000");
	fixture_exec(db, "DELETE FROM big WHERE a BETWEEN 5001 AND 5005");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM big WHERE a > 5000"),
	    16);
	rfx_assert_same_table(db, url, "big", "a || ',' || hex(b)");
	rwh_finish(&e, db, NULL);
}
END_TEST

/* A transaction that spills SQLite's page cache to the WAL before its
 * commit (cache_size=10): the final image of each page reaches the primary;
 * a spilled transaction rolled back leaves nothing. */
START_TEST(test_cache_spill)
{
	struct rfx_env e;
	struct rfx_info before, after;
	const char *url;
	sqlite3 *db, *db2;
	char *wal;
	struct stat wst;
	off_t wal_before;

	url = rwh_start_explicit(&e, &db, &db2);
	ck_assert_int_ge(asprintf(&wal, "%s-wal", e.path), 0);
	fixture_exec(db, "PRAGMA cache_size = 10");
	fixture_exec(db, "CREATE TABLE s(a INTEGER PRIMARY KEY, b BLOB, c "
			 "INTEGER); CREATE INDEX s_c ON s(c)");
	ck_assert_int_eq(stat(wal, &wst), 0);
	wal_before = wst.st_size;

	fixture_exec(db, "BEGIN");
	fixture_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 400) INSERT INTO s SELECT i, "
			 "randomblob(1500), i FROM n");
	/* The cache spilled: frames are in the WAL before the commit. */
	ck_assert_int_eq(stat(wal, &wst), 0);
	ck_assert_int_gt(wst.st_size, wal_before + 50 * 4096);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM s"),
			 0);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM s"), 0);
	/* Pages spilled and written again: the last image wins. */
	fixture_exec(db, "UPDATE s SET c = a * 2, b = randomblob(1400) WHERE "
			 "a % 3 = 0");
	fixture_exec(db, "DELETE FROM s WHERE a % 5 = 0");
	fixture_exec(db, "WITH RECURSIVE n(i) AS (SELECT 401 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 600) INSERT INTO s SELECT i, "
			 "randomblob(1500), -i FROM n");
	fixture_exec(db, "UPDATE s SET c = c + 1 WHERE a % 4 = 0");
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM s"), 520);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(c) FROM s"),
			 fixture_query_int(db2, "SELECT sum(c) FROM s"));
	rfx_assert_same_table(db, url, "s", "a || ',' || c || ',' || hex(b)");
	rwh_assert_integrity_both(db, url);

	/* A spilled transaction rolled back: nothing anywhere. */
	rfx_primary_info(url, NULL, &before);
	fixture_exec(db, "BEGIN; UPDATE s SET b = randomblob(1500); DELETE "
			 "FROM s WHERE a > 300");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM s"), 240);
	fixture_exec(db, "ROLLBACK");
	rfx_primary_info(url, NULL, &after);
	ck_assert_int_eq(after.max_frame_no, before.max_frame_no);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM s"), 520);
	rfx_assert_same_table(db, url, "s", "a || ',' || c || ',' || hex(b)");

	/* And one statement that spills, in autocommit. */
	fixture_exec(db, "UPDATE s SET b = randomblob(1600), c = c - 1");
	rfx_assert_same_table(db, url, "s", "a || ',' || c || ',' || hex(b)");
	free(wal);
	rwh_finish(&e, db, db2);
}
END_TEST

/* Writes around local checkpoints of every mode (the WAL restarts from its
 * first frame with new salts), automatic checkpoints, and a reader that
 * holds the WAL back. */
START_TEST(test_checkpoints)
{
	static const char *const modes[] = {"TRUNCATE", "RESTART", "PASSIVE",
					    "FULL"};
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *db2;
	char *sql;
	int round, i;

	url = rwh_start_explicit(&e, &db, &db2);
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB, n "
			 "INTEGER DEFAULT 0)");
	for (round = 0; round < 8; round++) {
		fixture_exec(round % 2 ? db : db2,
			     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			     "SELECT i + 1 FROM n WHERE i < 30) INSERT INTO "
			     "t(b) SELECT randomblob(2000) FROM n");
		sql = sqlite3_mprintf("PRAGMA wal_checkpoint(%s)",
				      modes[round % 4]);
		fixture_exec(round % 2 ? db2 : db, sql);
		sqlite3_free(sql);
		/* The first write after the checkpoint (a new WAL when it
		 * was reset). */
		fixture_exec(db, "UPDATE t SET n = n + 1 WHERE a % 3 = 0");
		ck_assert_int_eq(
		    rwh_both_int(db, url, "SELECT count(*) FROM t"),
		    30 * (round + 1));
		ck_assert_int_eq(
		    fixture_query_int(db2, "SELECT sum(n) FROM t"),
		    rfx_primary_query_int(url, "SELECT sum(n) FROM t"));
	}
	rfx_assert_same_table(db, url, "t", "a || ',' || n || ',' || hex(b)");

	/* A reader holds a snapshot while the writer checkpoints: the WAL
	 * cannot restart and grows instead. */
	fixture_exec(db2, "BEGIN");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 240);
	fixture_exec(db, "PRAGMA wal_checkpoint(PASSIVE)");
	fixture_exec(db, "DELETE FROM t WHERE a % 2 = 0");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 240);
	fixture_exec(db2, "COMMIT");
	ck_assert_int_eq(rwh_both_int(db2, url, "SELECT count(*) FROM t"), 120);

	/* Automatic checkpoints every few pages, between small commits. */
	ck_assert_int_eq(sqlite3_wal_autocheckpoint(db, 4), SQLITE_OK);
	for (i = 0; i < 40; i++) {
		sql = sqlite3_mprintf("INSERT INTO t(b) VALUES "
				      "(randomblob(%d))",
				      500 + i * 100);
		fixture_exec(db, sql);
		sqlite3_free(sql);
	}
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 160);
	rfx_assert_same_table(db, url, "t", "a || ',' || n || ',' || hex(b)");
	rwh_assert_integrity_both(db, url);
	fixture_assert_integrity(db2);
	sqlite3_close(db2);
	sqlite3_close(db);

	/* Reopened: the same content, nothing to pull. */
	db = rfx_open(e.path, url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "frames_pulled"), 0);
	rfx_assert_same_table(db, url, "t", "a || ',' || n || ',' || hex(b)");
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Incremental blob I/O (sqlite3_blob_write) inside overflow chains. */
START_TEST(test_blob_io)
{
	struct rfx_env e;
	const char *url;
	sqlite3_blob *blob;
	unsigned char buf[3000];
	sqlite3 *db;
	int i;

	url = rwh_start_explicit(&e, &db, NULL);
	fixture_exec(db, "CREATE TABLE f(a INTEGER PRIMARY KEY, b BLOB); "
			 "INSERT INTO f VALUES (1, zeroblob(200000)), (2, "
			 "zeroblob(10))");
	ck_assert_int_eq(sqlite3_blob_open(db, "main", "f", "b", 1, 1, &blob),
			 SQLITE_OK);
	for (i = 0; i < (int)sizeof buf; i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	/* Autocommit: each write is its own transaction. */
	ck_assert_int_eq(sqlite3_blob_write(blob, buf, sizeof buf, 0),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_blob_write(blob, buf, sizeof buf, 100000),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_blob_close(blob), SQLITE_OK);
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT count(*) FROM f WHERE a = 1 AND length(b) = "
			 "200000 AND substr(b, 100001, 3000) = substr(b, 1, "
			 "3000) AND substr(b, 3001, 1) = x'00' AND "
			 "unicode(CAST(substr(b, 2, 1) AS TEXT)) = 8"),
	    1);
	/* In an explicit transaction, with an ordinary write beside it. */
	fixture_exec(db, "BEGIN");
	ck_assert_int_eq(sqlite3_blob_open(db, "main", "f", "b", 1, 1, &blob),
			 SQLITE_OK);
	for (i = 0; i < 60; i++)
		ck_assert_int_eq(
		    sqlite3_blob_write(blob, buf, sizeof buf, i * 3300),
		    SQLITE_OK);
	ck_assert_int_eq(sqlite3_blob_close(blob), SQLITE_OK);
	fixture_exec(db, "UPDATE f SET b = x'0102' WHERE a = 2");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM f "
						    "WHERE b = x'0102'"),
			 0);
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM f WHERE b = x'0102'"),
	    1);
	rfx_assert_same_table(db, url, "f", "a || ',' || hex(b)");
	rwh_finish(&e, db, NULL);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_vacuum_shrink,
				      test_large_transactions, test_cache_spill,
				      test_checkpoints, test_blob_io};

	return rfx_run_tests("replica_write_pages", tests,
			     sizeof tests / sizeof tests[0]);
}
