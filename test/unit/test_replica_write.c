/* The replica write path against a real primary on loopback (DESIGN.md §3
 * "Write path", issue 4), its core: writes through a replica connection in
 * autocommit, in transactions (BEGIN IMMEDIATE / EXCLUSIVE, ROLLBACK,
 * savepoints) and DDL reach the primary before the statement returns and
 * are visible locally at once (read-your-writes), to the other connections
 * of the process too; the status and state file after writes; a plain
 * SQLite reader alongside.
 *
 * The rest of the write path, by theme: test_replica_write_pages (VACUUM
 * and shrinking files, large transactions, overflow blobs and blob I/O,
 * cache spills, local checkpoints), test_replica_write_connections
 * (threads, several replicas, generation rollovers, an attached replica),
 * test_replica_write_conflicts (a replica behind, SQLITE_BUSY_SNAPSHOT,
 * read_your_writes=0), test_replica_write_errors (an unreachable primary,
 * read-only tokens); their shared helpers: replica_write_helpers.h.
 *
 * Each test is its own test case: CK_RUN_CASE=test_transactions runs one.
 * No assertion depends on timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "replica_write_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* 1. every kind of write: autocommit, transactions, DDL */

/* INSERT, UPDATE, DELETE, upserts and a header field in autocommit: on
 * the primary and locally as soon as the statement returns. */
START_TEST(test_autocommit_writes)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db;

	url = rwh_start_explicit(&e, &db, NULL);

	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c "
			 "INTEGER)");
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT count(*) FROM sqlite_schema WHERE "
			 "name = 't'"),
	    1);

	fixture_exec(db, "INSERT INTO t(b, c) VALUES ('one', 1)");
	ck_assert_int_eq(sqlite3_changes(db), 1);
	ck_assert_int_eq(sqlite3_last_insert_rowid(db), 1);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 1);

	fixture_exec(db, "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 10) INSERT INTO t(b, c) "
			 "SELECT 'row ' || i, i FROM n");
	ck_assert_int_eq(sqlite3_changes(db), 9);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 10);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(c) FROM t"), 55);

	fixture_exec(db, "UPDATE t SET c = c * 10 WHERE a % 2 = 0");
	ck_assert_int_eq(sqlite3_changes(db), 5);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(c) FROM t"),
			 25 + 10 * 30);

	fixture_exec(db, "DELETE FROM t WHERE a > 7");
	ck_assert_int_eq(sqlite3_changes(db), 3);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 7);

	/* An upsert, a REPLACE, an UPDATE matching nothing. */
	fixture_exec(db, "INSERT INTO t(a, b, c) VALUES (1, 'uno', 100) ON "
			 "CONFLICT(a) DO UPDATE SET b = excluded.b, c = "
			 "excluded.c");
	fixture_exec(db, "REPLACE INTO t(a, b, c) VALUES (2, 'dos', 200)");
	fixture_exec(db, "UPDATE t SET c = 0 WHERE a > 1000");
	ck_assert_int_eq(sqlite3_changes(db), 0);
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT c FROM t WHERE b = 'uno'"), 100);
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT c FROM t WHERE b = 'dos'"), 200);

	/* A field of the database header (page 1 only). */
	fixture_exec(db, "PRAGMA user_version = 7");
	ck_assert_int_eq(rwh_both_int(db, url, "PRAGMA user_version"), 7);

	rfx_assert_same_table(db, url, "t", "a || ',' || b || ',' || c");
	rwh_finish(&e, db, NULL);
}
END_TEST

/* Multi-statement transactions, BEGIN IMMEDIATE / EXCLUSIVE, ROLLBACK,
 * savepoints. */
START_TEST(test_transactions)
{
	struct rfx_env e;
	struct rfx_info before, after;
	const char *url;
	sqlite3 *db, *db2;

	url = rwh_start_explicit(&e, &db, &db2);
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");

	/* BEGIN .. COMMIT: nothing leaves before COMMIT. */
	fixture_exec(db, "BEGIN");
	fixture_exec(db, "INSERT INTO t VALUES (1, 'one')");
	fixture_exec(db, "INSERT INTO t VALUES (2, 'two')");
	fixture_exec(db, "UPDATE t SET b = b || '!' WHERE a = 1");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 0);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 0);
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE b = 'one!'"),
	    1);

	/* BEGIN IMMEDIATE and BEGIN EXCLUSIVE. */
	fixture_exec(db, "BEGIN IMMEDIATE");
	fixture_exec(db, "INSERT INTO t VALUES (3, 'three')");
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 3);
	fixture_exec(db, "BEGIN EXCLUSIVE; DELETE FROM t WHERE a = 2; INSERT "
			 "INTO t VALUES (4, 'four'); COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(a) FROM t"), 8);
	/* The same from the other connection. */
	fixture_exec(db2, "BEGIN IMMEDIATE; INSERT INTO t VALUES (5, 'five'); "
			  "COMMIT");
	ck_assert_int_eq(rwh_both_int(db2, url, "SELECT sum(a) FROM t"), 13);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(a) FROM t"), 13);

	/* ROLLBACK: nothing reaches the primary, not even a frame. */
	rfx_primary_info(url, NULL, &before);
	fixture_exec(db, "BEGIN; INSERT INTO t VALUES (6, 'six'); DELETE FROM "
			 "t WHERE a = 1; UPDATE t SET b = 'x'");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "b = 'x'"),
			 4);
	fixture_exec(db, "ROLLBACK");
	fixture_exec(db, "BEGIN IMMEDIATE; ROLLBACK");
	fixture_exec(db, "BEGIN; UPDATE t SET b = 'y' WHERE a > 100; COMMIT");
	rfx_primary_info(url, NULL, &after);
	ck_assert_int_eq(after.max_frame_no, before.max_frame_no);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(a) FROM t"), 13);
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT count(*) FROM t WHERE b IN ('x', 'y')"),
	    0);

	/* Savepoints: the part rolled back to never leaves. */
	fixture_exec(db, "SAVEPOINT s1; INSERT INTO t VALUES (10, 'ten'); "
			 "SAVEPOINT s2; INSERT INTO t VALUES (11, 'eleven'); "
			 "ROLLBACK TO s2; INSERT INTO t VALUES (12, 'twelve'); "
			 "RELEASE s2");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 4);
	fixture_exec(db, "RELEASE s1");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE a >= 10"), 2);
	ck_assert_int_eq(rwh_both_int(db, url,
				      "SELECT count(*) FROM t WHERE a = "
				      "11"),
			 0);
	/* ROLLBACK TO the outermost savepoint, then RELEASE: nothing. */
	fixture_exec(db, "SAVEPOINT outer_sp; INSERT INTO t VALUES (20, "
			 "'twenty'); UPDATE t SET b = 'z'; ROLLBACK TO "
			 "outer_sp; RELEASE outer_sp");
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT count(*) FROM t WHERE a = 20 OR b = 'z'"),
	    0);
	/* Savepoints inside BEGIN .. COMMIT. */
	fixture_exec(db, "BEGIN; SAVEPOINT a; INSERT INTO t VALUES (30, "
			 "'thirty'); RELEASE a; SAVEPOINT b; INSERT INTO t "
			 "VALUES (31, 'x'); ROLLBACK TO b; COMMIT");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE a >= 30"), 1);

	rfx_assert_same_table(db, url, "t", "a || ',' || b");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"),
			 fixture_query_int(db, "SELECT count(*) FROM t"));
	sqlite3_close(db2);
	rwh_finish(&e, db, NULL);
}
END_TEST

/* DDL through one replica connection: another connection of the process,
 * opened before, sees (and uses) each new schema; so does the primary. */
START_TEST(test_ddl)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *db2;
	sqlite3_stmt *st;
	char msg[512];

	url = rwh_start_explicit(&e, &db, &db2);
	ck_assert_int_eq(
	    fixture_query_int(db2, "SELECT count(*) FROM sqlite_schema"), 0);

	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");
	fixture_exec(db2, "INSERT INTO t(b) VALUES ('from db2'), ('again')");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db2, "SELECT count(*) FROM t", -1, &st, NULL),
	    SQLITE_OK);

	fixture_exec(db, "CREATE INDEX t_b ON t(b)");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t "
						"INDEXED BY t_b WHERE b > ''"),
			 2);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t "
						    "INDEXED BY t_b WHERE b > "
						    "''"),
			 2);

	fixture_exec(db, "ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 7");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT sum(c) FROM t"), 14);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT sum(c) FROM t"),
			 14);
	/* A statement prepared before the change runs after it. */
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
	sqlite3_reset(st);

	fixture_exec(db, "ALTER TABLE t RENAME COLUMN b TO bb");
	fixture_exec(db2, "INSERT INTO t(bb, c) VALUES ('renamed', 1)");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(c) FROM t"), 15);
	ck_assert_int_eq(
	    rwh_both_int(db, url,
			 "SELECT count(*) FROM t WHERE bb = 'renamed'"),
	    1);

	/* A table, a view and a trigger; the other connection's writes fire
	 * the trigger, on the replica and hence on the primary. */
	fixture_exec(db, "CREATE TABLE log(a INTEGER, what TEXT); CREATE VIEW "
			 "v AS SELECT a, bb FROM t WHERE c > 5; CREATE TRIGGER "
			 "t_ai AFTER INSERT ON t BEGIN INSERT INTO log "
			 "VALUES (new.a, 'insert'); END");
	fixture_exec(db2, "INSERT INTO t(bb, c) VALUES ('logged', 9)");
	ck_assert_int_eq(rwh_both_int(db2, url, "SELECT count(*) FROM log"), 1);
	ck_assert_int_eq(rwh_both_int(db2, url, "SELECT count(*) FROM v"), 3);

	/* DROP, and a schema rewritten in one transaction. */
	fixture_exec(db, "DROP TRIGGER t_ai; DROP VIEW v; DROP INDEX t_b");
	fixture_exec(db, "DROP TABLE log");
	ck_assert_int_ne(
	    rwh_try_exec(db2, "SELECT * FROM log", NULL, msg, sizeof msg),
	    SQLITE_OK);
	RFX_ASSERT_HAS(msg, "no such table");
	fixture_exec(db, "BEGIN; CREATE TABLE t2(a INTEGER PRIMARY KEY, bb, "
			 "c); INSERT INTO t2 SELECT * FROM t; DROP TABLE t; "
			 "ALTER TABLE t2 RENAME TO t; COMMIT");
	ck_assert_int_eq(
	    rwh_both_int(db2, url, "SELECT count(*) FROM sqlite_schema"), 1);
	/* The statement prepared on the old table t runs on the new one. */
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 4);
	sqlite3_finalize(st);

	rfx_assert_same_table(db2, url, "sqlite_schema", RWH_SCHEMA_ROW);
	rfx_assert_same_table(db2, url, "t",
			      "a || ',' || bb || ',' || coalesce(c, '')");
	rwh_finish(&e, db, db2);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. status and state file after writes */

START_TEST(test_status_after_writes)
{
	struct rfx_env e;
	const char *url;
	char *path2;
	sqlite3 *db;
	int64_t pulled;
	int i;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	path2 = fixture_path(e.dir, "live.db");
	db = rfx_open(e.path, url, "sync_interval=0");
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)");
	rwh_assert_at_head(db, e.path, url);
	pulled = rfx_status_int(db, "frames_pulled");
	for (i = 0; i < 5; i++) {
		fixture_exec(db, "INSERT INTO t(b) VALUES (randomblob(5000))");
		rwh_assert_at_head(db, e.path, url);
	}
	fixture_exec(db, "BEGIN; UPDATE t SET b = randomblob(100); DELETE FROM "
			 "t WHERE a = 2; COMMIT");
	rwh_assert_at_head(db, e.path, url);
	ck_assert_int_eq(rfx_status_int(db, "primary_frame_no"),
			 rfx_status_int(db, "frame_no"));
	ck_assert_int_eq(rfx_status_int(db, "pending_frames"), 0);
	/* Its own pages are not downloaded again. */
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "frames_pulled"), pulled);
	rwh_assert_at_head(db, e.path, url);
	sqlite3_close(db);
	/* The state file survives a reopen, and a reopen pulls nothing. */
	db = rfx_open(e.path, url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "frames_pulled"), 0);
	rwh_assert_at_head(db, e.path, url);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 4);
	sqlite3_close(db);

	/* With live sync. */
	db = rfx_open(path2, url, "sync_interval=1");
	for (i = 0; i < 5; i++) {
		fixture_exec(db, "INSERT INTO t(b) VALUES (randomblob(300))");
		rwh_assert_at_head(db, path2, url);
	}
	rfx_sync(db);
	rwh_assert_at_head(db, path2, url);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 9);
	sqlite3_close(db);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. a plain SQLite reader alongside */

START_TEST(test_plain_reader)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *plain;

	url = rwh_start_explicit(&e, &db, NULL);
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)");
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	sqlite3_busy_timeout(plain, 5000);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 0);

	fixture_exec(db, "INSERT INTO t(b) VALUES (randomblob(100))");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 1);
	/* A reader in a transaction keeps its snapshot. */
	fixture_exec(plain, "BEGIN");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 1);
	fixture_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i "
			 "+ 1 FROM n WHERE i < 300) INSERT INTO t(b) SELECT "
			 "randomblob(2000) FROM n");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 1);
	fixture_exec(plain, "COMMIT");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"),
			 301);
	/* A checkpoint by the replica, then more writes. */
	fixture_exec(db, "PRAGMA wal_checkpoint(PASSIVE)");
	fixture_exec(db, "DELETE FROM t WHERE a % 2 = 0; CREATE INDEX t_b ON "
			 "t(b)");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"),
			 151);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t "
						  "INDEXED BY t_b WHERE b IS "
						  "NOT NULL"),
			 151);
	fixture_assert_integrity(plain);
	rfx_assert_same_table(plain, url, "t", "a || ',' || hex(b)");
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	rwh_assert_integrity_both(db, url);
	sqlite3_close(db);

	/* Closed: the file is sound for plain SQLite and holds the writes. */
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	fixture_assert_integrity(plain);
	rfx_assert_same_table(plain, url, "t", "a || ',' || hex(b)");
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_autocommit_writes, test_transactions,
				      test_ddl, test_status_after_writes,
				      test_plain_reader};

	return rfx_run_tests("replica_write", tests,
			     sizeof tests / sizeof tests[0]);
}
