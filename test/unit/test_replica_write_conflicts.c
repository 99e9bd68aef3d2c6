/* The replica write path against a real primary on loopback (DESIGN.md §3
 * "Write path", issue 4) when the replica is not at the primary's head: a
 * replica that is behind, with and without live sync, whose writes still
 * succeed on fresh data with no error reaching the application; conflicts,
 * transactions that lost the race to the primary (SQLITE_BUSY_SNAPSHOT,
 * rolled back completely, the retry succeeds); read_your_writes=0, where
 * the file lags behind the connection's own pushed commits until a sync.
 *
 * Each test is its own test case: CK_RUN_CASE=test_conflicts runs one.
 * No assertion depends on timing; short sleeps only let a sync thread
 * reach its long-poll first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "replica_write_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* 1. a replica that is behind; conflicts */

/* The primary moves on while the replica does not sync: its next writes
 * still succeed with no error reaching the application, on fresh data. */
START_TEST(test_behind)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *db2;
	int i;

	url = rwh_start_explicit(&e, &db, &db2);
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, n "
			 "INTEGER DEFAULT 0)");

	for (i = 0; i < 5; i++) {
		int rc;

		rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('primary')");
		ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM "
						       "t WHERE b = 'primary'"),
				 i);
		/* Autocommit, and an UPDATE of the row the replica has not
		 * seen yet: it runs on the fresh snapshot. */
		rc = sqlite3_exec(db, "INSERT INTO t(b) VALUES ('replica')",
				  NULL, NULL, NULL);
		ck_assert_msg(rc == SQLITE_OK, "write behind: %s (%d)",
			      sqlite3_errmsg(db), sqlite3_extended_errcode(db));
		ck_assert_int_eq(
		    rwh_both_int(db, url,
				 "SELECT count(*) FROM t WHERE b = 'primary'"),
		    i + 1);
		rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('unseen')");
		fixture_exec(i % 2 ? db : db2,
			     "UPDATE t SET n = n + 1 WHERE b = 'unseen' AND a "
			     "= (SELECT max(a) FROM t)");
		ck_assert_int_eq(sqlite3_changes(i % 2 ? db : db2), 1);
	}
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(n) FROM t"), 5);

	/* BEGIN IMMEDIATE while behind. */
	rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('before immediate')");
	fixture_exec(db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "b = 'before immediate'"),
			 1);
	fixture_exec(db, "UPDATE t SET n = 100 WHERE b = 'before immediate'");
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(n) FROM t"), 105);

	/* A multi-statement transaction started while behind. */
	rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('before begin')");
	fixture_exec(db2, "BEGIN; INSERT INTO t(b) VALUES ('in txn'); UPDATE "
			  "t SET n = n + 1 WHERE b = 'before begin'; COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT sum(n) FROM t"), 106);
	rfx_assert_same_table(db, url, "t", "a || ',' || b || ',' || n");
	rwh_assert_at_head(db, e.path, url);
	sqlite3_close(db2);
	rwh_finish(&e, db, NULL);
}
END_TEST

/* The same with live sync (the default sync_interval): the long-poll is in
 * flight, but a commit made on the primary a moment ago has not been
 * applied yet, so the replica is not current and a write must not act as
 * if it were (DESIGN.md §3: the catch-up is skippable only when live sync
 * *shows* the replica is current).  The application must see no error. */
START_TEST(test_behind_live)
{
	struct rfx_env e;
	const char *url;
	char first[256] = "";
	sqlite3 *db;
	int i, failed = 0;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	db = rfx_open(e.path, url, NULL);
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");
	rfx_sleep_ms(200); /* let the sync thread settle into its long-poll */
	for (i = 0; i < 40; i++) {
		int rc;

		/* The primary's commit has returned before the write starts:
		 * no race from the application's point of view. */
		rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('primary')");
		if (i % 2)
			rfx_sleep_ms(2);
		rc = sqlite3_exec(db, "INSERT INTO t(b) VALUES ('replica')",
				  NULL, NULL, NULL);
		if (rc != SQLITE_OK && failed++ == 0)
			snprintf(first, sizeof first,
				 "write %d: %s (extended code %d)", i,
				 sqlite3_errmsg(db),
				 sqlite3_extended_errcode(db));
	}
	ck_assert_msg(failed == 0,
		      "%d of 40 writes made right after a commit on the "
		      "primary failed; first: %s",
		      failed, first);
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE b = 'replica'"),
	    40);
	rwh_finish(&e, db, NULL);
}
END_TEST

/* Commit hook: make the primary move on right before this connection's
 * commit (after its begin-write caught up), once. */
struct race {
	const char *url;
	const char *sql;
	int armed;
};

static int race_hook(void *arg)
{
	struct race *r = arg;

	if (r->armed) {
		r->armed = 0;
		rfx_primary_exec(r->url, r->sql);
	}
	return 0;
}

/* A transaction that lost the race to the primary: SQLITE_BUSY_SNAPSHOT,
 * rolled back completely, the winner's frames applied before the statement
 * returns, and the retry succeeds. */
START_TEST(test_conflicts)
{
	struct rfx_env e;
	struct race race = {0};
	const char *url;
	sqlite3 *db, *db2;
	char msg[512];
	int rc, xrc;

	url = rwh_start_explicit(&e, &db, &db2);
	race.url = url;
	fixture_exec(db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); "
			 "INSERT INTO t VALUES (1, 'orig')");

	/* A deferred transaction whose read snapshot went stale. */
	fixture_exec(db, "BEGIN");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	rfx_primary_exec(url, "INSERT INTO t VALUES (2, 'primary 1')");
	rc = rwh_try_exec(db, "UPDATE t SET b = 'mine' WHERE a = 1", &xrc, msg,
			  sizeof msg);
	printf("stale deferred transaction: refused at %s\n",
	       rc == SQLITE_OK ? "COMMIT" : "the UPDATE (begin-write)");
	fflush(stdout);
	if (rc == SQLITE_OK) /* refused at the commit instead */
		rc = rwh_try_exec(db, "COMMIT", &xrc, msg, sizeof msg);
	ck_assert_msg(rc != SQLITE_OK, "a stale deferred transaction "
				       "committed");
	ck_assert_msg(xrc == SQLITE_BUSY_SNAPSHOT,
		      "extended code %d (%s), expected SQLITE_BUSY_SNAPSHOT",
		      xrc, msg);
	if (sqlite3_get_autocommit(db) == 0)
		fixture_exec(db, "ROLLBACK");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE b = 'mine'"),
	    0);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t WHERE "
						"b = 'mine'"),
			 0);
	/* The retry. */
	fixture_exec(db, "BEGIN");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	fixture_exec(db, "UPDATE t SET b = 'mine' WHERE a = 1");
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE b = 'mine'"),
	    1);

	/* The primary moves on while the transaction holds the write lock:
	 * the push loses at COMMIT. */
	fixture_exec(db, "BEGIN; UPDATE t SET b = 'second' WHERE a = 1; "
			 "INSERT INTO t VALUES (10, 'mine too')");
	rfx_primary_exec(url, "INSERT INTO t VALUES (3, 'primary 2')");
	rwh_assert_fails_with(db, "COMMIT", SQLITE_BUSY_SNAPSHOT, msg,
			      sizeof msg);
	ck_assert_int_eq(sqlite3_get_autocommit(db), 1);
	/* Rolled back everywhere; the winner is applied already. */
	ck_assert_int_eq(rwh_both_int(db, url,
				      "SELECT count(*) FROM t WHERE b = "
				      "'second' OR a = 10"),
			 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "a = 3"),
			 1);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t WHERE "
						"a = 3"),
			 1);
	fixture_exec(db, "BEGIN; UPDATE t SET b = 'second' WHERE a = 1; "
			 "INSERT INTO t VALUES (10, 'mine too'); COMMIT");
	ck_assert_int_eq(rwh_both_int(db, url,
				      "SELECT count(*) FROM t WHERE b = "
				      "'second' OR a = 10"),
			 2);

	/* An autocommit statement that loses at its commit. */
	race.sql = "INSERT INTO t VALUES (4, 'primary 3')";
	race.armed = 1;
	sqlite3_commit_hook(db, race_hook, &race);
	rwh_assert_fails_with(db, "INSERT INTO t VALUES (11, 'lost')",
			      SQLITE_BUSY_SNAPSHOT, msg, sizeof msg);
	sqlite3_commit_hook(db, NULL, NULL);
	ck_assert_int_eq(race.armed, 0);
	ck_assert_int_eq(rwh_both_int(db, url,
				      "SELECT count(*) FROM t WHERE a = "
				      "11"),
			 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "a = 4"),
			 1);
	fixture_exec(db, "INSERT INTO t VALUES (11, 'retried')");
	ck_assert_int_eq(rwh_both_int(db, url,
				      "SELECT count(*) FROM t WHERE a = "
				      "11"),
			 1);

	/* A transaction that spilled its cache loses at COMMIT: the spilled
	 * frames are discarded, the file stays sound. */
	fixture_exec(db, "PRAGMA cache_size = 10");
	fixture_exec(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t "
			 "SELECT i, hex(randomblob(700)) FROM n");
	rfx_primary_exec(url, "INSERT INTO t VALUES (5, 'primary 4')");
	rwh_assert_fails_with(db, "COMMIT", SQLITE_BUSY_SNAPSHOT, msg,
			      sizeof msg);
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE a >= 100"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "a = 5"),
			 1);
	fixture_assert_integrity(db);
	fixture_exec(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t "
			 "SELECT i, hex(randomblob(700)) FROM n; COMMIT");
	ck_assert_int_eq(
	    rwh_both_int(db, url, "SELECT count(*) FROM t WHERE a >= 100"),
	    301);

	rfx_assert_same_table(db, url, "t", "a || ',' || b");
	rwh_assert_at_head(db, e.path, url);
	rwh_finish(&e, db, db2);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. read_your_writes=0 */

START_TEST(test_read_your_writes_off)
{
	struct rfx_env e;
	const char *url;
	sqlite3 *db, *db2, *plain;
	int status;
	pid_t pid;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	rfx_primary_exec(url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");
	db = rfx_open(e.path, url, "sync_interval=0&read_your_writes=0");

	fixture_exec(db, "INSERT INTO t(b) VALUES ('one')");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 1);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 0);
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	rwh_assert_at_head(db, e.path, url);

	/* A write that builds on the previous one, not synced yet: it runs on
	 * the primary's state (begin-write catches up). */
	fixture_exec(db, "INSERT INTO t(b) VALUES ('two')");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	fixture_exec(db, "UPDATE t SET b = 'TWO' WHERE b = 'two'");
	ck_assert_int_eq(sqlite3_changes(db), 1);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t "
						    "WHERE b = 'TWO'"),
			 1);
	rfx_sync(db);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 2);

	fixture_exec(db, "BEGIN; INSERT INTO t(b) VALUES ('three'); INSERT "
			 "INTO t(b) VALUES ('four'); COMMIT");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 4);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	rfx_sync(db);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 4);
	rfx_assert_same_table(db, url, "t", "a || ',' || b");
	rwh_assert_integrity_both(db, url);
	rwh_assert_at_head(db, e.path, url);

	/* Nor does any other connection see it before the sync: another
	 * replica connection, a plain reader. */
	db2 = rfx_open(e.path, url, "sync_interval=0&read_your_writes=0");
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	sqlite3_busy_timeout(plain, 5000);
	fixture_exec(db, "INSERT INTO t(b) VALUES ('five')");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 5);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 4);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 4);
	/* A local checkpoint meanwhile does not publish it either. */
	fixture_exec(db2, "PRAGMA wal_checkpoint(TRUNCATE)");
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(plain);
	rfx_sync(db2);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 5);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 5);
	fixture_assert_integrity(plain);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	sqlite3_close(db2);
	sqlite3_close(db);

	/* A process that dies after such a write, before any sync: the file
	 * holds the write or not, and converges on the next sync. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sqlite3 *c = NULL;
		char *uri =
		    rfx_uri(e.path, url, "sync_interval=0&read_your_writes=0");

		if (sqlite3_open_v2(uri, &c,
				    SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
				    NULL) != SQLITE_OK ||
		    sqlite3_exec(c, "INSERT INTO t(b) VALUES ('six')", NULL,
				 NULL, NULL) != SQLITE_OK)
			_exit(1);
		_exit(0); /* no close, no checkpoint */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's write failed");
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 6);
	db = rfx_open(e.path, url, "sync_interval=0");
	fixture_assert_integrity(db);
	rfx_sync(db);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"), 6);
	rfx_assert_same_table(db, url, "t", "a || ',' || b");
	rwh_assert_at_head(db, e.path, url);
	rwh_finish(&e, db, NULL);
}
END_TEST

/* read_your_writes=0 with live sync (the default sync_interval): writes in
 * a row from one connection, each on the state its predecessors left on
 * the primary.  The local file lags behind its own pushed commits until
 * the long-poll brings them back, so a write must not start from it as if
 * it were current: no update may be lost, and two identical INSERTs are
 * two rows. */
START_TEST(test_read_your_writes_off_live)
{
	static const char *const modes[] = {"read_your_writes=0",
					    "read_your_writes=0&sync_interval="
					    "0"};
	struct rfx_env e;
	const char *url;
	size_t m;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	rfx_primary_exec(url, "CREATE TABLE counter(id INTEGER PRIMARY KEY, "
			      "n INTEGER); CREATE TABLE t(a INTEGER PRIMARY "
			      "KEY, b TEXT)");
	for (m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		struct rwh_writer w = {0};
		char *path =
		    fixture_path(e.dir, m ? "ryw0-sync0.db" : "ryw0-live.db");
		char *sql;
		int64_t rowid[2];
		int i;

		sql = sqlite3_mprintf("INSERT INTO counter VALUES (%d, 0)",
				      (int)m);
		rfx_primary_exec(url, sql);
		sqlite3_free(sql);
		w.db = rfx_open(path, url, modes[m]);
		rfx_sleep_ms(200); /* let the sync thread reach its long-poll */
		for (i = 0; i < 10; i++) {
			sql = sqlite3_mprintf("UPDATE counter SET n = n + 1 "
					      "WHERE id = %d",
					      (int)m);
			w.incremented += rwh_writer_exec(&w, sql);
			sqlite3_free(sql);
		}
		for (i = 0; i < 2; i++) {
			w.inserted += rwh_writer_exec(
			    &w, "INSERT INTO t(b) VALUES ('same')");
			rowid[i] = sqlite3_last_insert_rowid(w.db);
		}
		printf("%s: %d increments, %d inserts, %d SQLITE_BUSY "
		       "retried (%d SQLITE_BUSY_SNAPSHOT)\n",
		       modes[m], w.incremented, w.inserted, w.busy, w.snapshot);
		fflush(stdout);
		ck_assert_msg(w.failed == 0, "%s: %s", modes[m], w.first_error);
		sql = sqlite3_mprintf("SELECT n FROM counter WHERE id = %d",
				      (int)m);
		ck_assert_int_eq(rfx_primary_query_int(url, sql),
				 w.incremented);
		sqlite3_free(sql);
		ck_assert_int_eq(w.incremented, 10);
		ck_assert_int_eq(w.inserted, 2);
		ck_assert_int_ne(rowid[0], rowid[1]);
		ck_assert_int_eq(
		    rfx_primary_query_int(url, "SELECT count(*) FROM t WHERE "
					       "b = 'same'"),
		    2 * (int64_t)(m + 1));
		/* A connection writing after its own write is not racing
		 * anyone: no error may reach it. */
		ck_assert_msg(w.busy == 0,
			      "%s: %d of the writes in a row from one "
			      "connection failed with SQLITE_BUSY (%d "
			      "SQLITE_BUSY_SNAPSHOT)",
			      modes[m], w.busy, w.snapshot);
		rfx_sync(w.db);
		rfx_assert_same_table(w.db, url, "counter", "id || ',' || n");
		rfx_assert_same_table(w.db, url, "t", "a || ',' || b");
		rwh_assert_integrity_both(w.db, url);
		sqlite3_close(w.db);
		free(path);
	}
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_behind, test_behind_live,
				      test_conflicts, test_read_your_writes_off,
				      test_read_your_writes_off_live};

	return rfx_run_tests("replica_write_conflicts", tests,
			     sizeof tests / sizeof tests[0]);
}
