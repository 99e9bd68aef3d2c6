/* The replica read path against a real primary on loopback: bootstrap
 * (from a base image and the frames since), incremental sync (schema
 * changes, snapshots of open transactions, a shrinking primary), background
 * and live sync, checkpoints under a plain reader, a transaction larger than
 * a pull, and readers never seeing part of a transaction.
 *
 * The other themes of the read path have suites of their own:
 * test_replica_status.c (status, functions and pragmas), test_replica_open.c
 * (opens, the remembered sync URL, refusals), test_replica_resume.c (resume
 * after a close or a crash, generations) and test_replica_failures.c (a
 * primary down, restarted, swapped, bad tokens, bad frames).
 *
 * Each test is its own test case: CK_RUN_CASE=test_incremental_sync runs
 * one.  No assertion depends on timing: waits poll with deadlines of several
 * seconds, and latencies are only printed. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "replica_test_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------------- */
/* 1. bootstrap */

START_TEST(test_bootstrap_and_incremental)
{
	struct rfx_env e;
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('one'), ('two')");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('three')");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_gt(rfx_sync(db), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* A new file bootstraps from the primary's base image (seeded with
 * --import) plus the frames committed since: same content, a valid
 * database, and a state file naming the primary. */
START_TEST(test_bootstrap_content)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *seed = fixture_path(dir, "seed.db");
	char *path = fixture_path(dir, "app.db");
	const char *args[] = {"--import", seed, NULL};
	char *rows, *state_path;
	struct rfx_info info;
	sqlite3_stmt *st;
	json_t *state;
	sqlite3 *db;

	rth_make_seed_file(seed, 150);
	server_fixture_start(&srv, args);
	/* Frames after the base image too. */
	rows = rth_seed_rows(151, 180);
	rfx_primary_exec(srv.url, rows);
	sqlite3_free(rows);
	rfx_primary_exec(srv.url,
			 "UPDATE items SET qty = qty + 1 WHERE id "
			 "% 3 = 0; DELETE FROM notes WHERE id % 5 = 0");
	rfx_primary_info(srv.url, NULL, &info);
	ck_assert_int_gt(info.max_frame_no, 0);

	db = rfx_open(path, srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 180);
	ck_assert_int_eq(fixture_query_int(db,
					   "SELECT count(*) FROM items WHERE "
					   "length(data) > 4096"),
			 18);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items "
					       "INDEXED BY items_name WHERE "
					       "name >= 'item-'"),
			 180);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema"),
	    rfx_primary_query_int(srv.url,
				  "SELECT count(*) FROM sqlite_schema"));
	rth_assert_same_seed(db, srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);

	/* The state file: the primary's id, the URL, the position. */
	state_path = rth_sibling(path, "-replite");
	ck_assert(file_exists(state_path));
	state = rfx_state_json(path);
	ck_assert_str_eq(
	    json_string_value(json_object_get(state, "database_id")),
	    info.database_id);
	ck_assert_str_eq(json_string_value(json_object_get(state, "sync_url")),
			 srv.url);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(state, "generation")),
	    info.generation);
	ck_assert_int_eq(json_integer_value(json_object_get(state, "frame_no")),
			 info.max_frame_no);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(state, "page_size")), 4096);
	ck_assert_ptr_null(json_object_get(state, "bootstrapping"));
	json_decref(state);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rfx_status_int(db, "generation"), info.generation);
	sqlite3_close(db);

	/* The file is a valid database for plain SQLite once closed. */
	db = rfx_plain_open(path, SQLITE_OPEN_READONLY);
	fixture_assert_integrity(db);
	rth_assert_same_seed(db, srv.url);
	ck_assert_int_eq(rfx_plain_close(db), SQLITE_OK);

	server_fixture_stop(&srv);
	free(state_path);
	free(seed);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. incremental sync */

START_TEST(test_incremental_sync)
{
	struct rfx_env e;
	sqlite3 *db, *db2;
	sqlite3_stmt *count, *st;
	struct rfx_info info;
	char msg[512];

	rfx_env_start(&e, NULL);
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('one'), ('two')");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	db2 = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &count, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(count, 0), 2);
	sqlite3_reset(count);

	/* PRAGMA replite_sync: the frame number, as text. */
	rfx_primary_exec(e.srv.url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 10) INSERT "
			 "INTO t(b) SELECT 'row ' || i FROM n");
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA replite_sync", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_type(st, 0), SQLITE_TEXT);
	ck_assert_int_eq(sqlite3_column_int64(st, 0), info.max_frame_no);
	sqlite3_finalize(st);
	/* The prepared statement, run again, sees the new rows. */
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(count, 0), 12);
	sqlite3_reset(count);

	/* SELECT replite_sync(): the frame number, as an integer. */
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('thirteen')");
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_sync()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_type(st, 0), SQLITE_INTEGER);
	ck_assert_int_eq(sqlite3_column_int64(st, 0), info.max_frame_no);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(count, 0), 13);
	sqlite3_reset(count);
	/* Nothing new: the same frame number. */
	ck_assert_int_eq(rfx_sync(db), info.max_frame_no);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 13);

	/* Schema changes reach the open connections. */
	rfx_primary_exec(e.srv.url, "CREATE TABLE t2(x TEXT); INSERT INTO t2 "
				    "VALUES ('a'), ('b'), ('c')");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t2"), 3);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t2"), 3);
	rfx_primary_exec(e.srv.url, "ALTER TABLE t ADD COLUMN c INTEGER "
				    "DEFAULT 5; CREATE INDEX t_b ON t(b)");
	rfx_sync(db2);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(c) FROM t"), 65);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t "
					       "INDEXED BY t_b WHERE b > ''"),
			 13);
	/* The prepared statement survives the schema change. */
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(count, 0), 13);
	sqlite3_reset(count);
	rfx_primary_exec(e.srv.url, "DROP TABLE t2");
	rfx_sync(db);
	ck_assert_int_ne(
	    rth_exec_fails(db, "SELECT * FROM t2", NULL, msg, sizeof msg),
	    SQLITE_OK);
	RFX_ASSERT_HAS(msg, "no such table");
	ck_assert_int_eq(fixture_query_int(db2,
					   "SELECT count(*) FROM sqlite_schema "
					   "WHERE name = 't2'"),
			 0);

	/* A reader in a transaction keeps its snapshot until COMMIT, while
	 * another connection sees the sync. */
	fixture_exec(db, "BEGIN");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 13);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('x'), ('y')");
	rfx_sync(db2);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 15);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 13);
	/* Even a sync asked for inside that transaction. */
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('z')");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 13);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"), 16);
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 16);

	rfx_assert_same_table(db, e.srv.url, "t",
			      "a || ',' || b || ',' || coalesce(c, '')");
	fixture_assert_integrity(db);

	/* The primary's database shrinks (VACUUM rewrites every page). */
	rfx_primary_exec(e.srv.url,
			 "CREATE TABLE big(x); WITH RECURSIVE n(i) "
			 "AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
			 "WHERE i < 200) INSERT INTO big SELECT "
			 "randomblob(3000) FROM n");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA page_count"),
			 rfx_primary_query_int(e.srv.url, "PRAGMA page_count"));
	rfx_primary_exec(e.srv.url, "DROP TABLE big");
	rfx_primary_exec(e.srv.url, "VACUUM");
	ck_assert_int_lt(rfx_primary_query_int(e.srv.url, "PRAGMA page_count"),
			 20);
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA page_count"),
			 rfx_primary_query_int(e.srv.url, "PRAGMA page_count"));
	ck_assert_int_eq(fixture_query_int(db2, "PRAGMA page_count"),
			 rfx_primary_query_int(e.srv.url, "PRAGMA page_count"));
	rfx_assert_same_table(db, e.srv.url, "t",
			      "a || ',' || b || ',' || coalesce(c, '')");
	rfx_assert_same_table(db, e.srv.url, "sqlite_schema",
			      "type || name || rootpage || coalesce(sql, '')");
	fixture_assert_integrity(db);
	fixture_assert_integrity(db2);
	sqlite3_finalize(count);
	sqlite3_close(db2);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. background and live sync */

START_TEST(test_background_sync)
{
	struct rfx_env e;
	char *path2;
	sqlite3 *db;
	json_t *status;
	int i;

	rfx_env_start(&e, NULL);
	path2 = fixture_path(e.dir, "live.db");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");

	/* sync_interval=0.2: no explicit sync. */
	db = rfx_open(e.path, e.srv.url, "sync_interval=0.2");
	status = rfx_status_json(db);
	ck_assert(json_is_number(json_object_get(status, "sync_interval")));
	ck_assert(json_number_value(json_object_get(status, "sync_interval")) ==
		  0.2);
	json_decref(status);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (1), (2), (3)");
	rth_poll_until(db, "SELECT count(*) FROM t", 3, 20);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (4)");
	rth_poll_until(db, "SELECT count(*) FROM t", 4, 20);
	sqlite3_close(db);

	/* The default interval (1 s) with live sync: each commit shows up
	 * (latency printed, not asserted). */
	db = rfx_open(path2, e.srv.url, NULL);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	/* Let the sync thread settle into its long-poll. */
	rfx_sleep_ms(200);
	for (i = 0; i < 5; i++) {
		int64_t t0 = rfx_now_ms(), ms;

		rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('live')");
		rth_poll_until(db, "SELECT count(*) FROM t", 5 + i, 2);
		ms = rfx_now_ms() - t0;
		printf("live sync: commit %d visible on the replica after "
		       "%lld ms (including the commit's round trip)\n",
		       i + 1, (long long)ms);
		fflush(stdout);
	}
	ck_assert_int_eq(rfx_status_int(db, "sync_interval"), 1);
	status = rfx_status_json(db);
	ck_assert(json_is_null(json_object_get(status, "last_error")));
	json_decref(status);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 4. checkpoints, large transactions, consistent reads */

/* Enough frames for the sync thread's checkpoints, a TRUNCATE checkpoint
 * from the application and the WAL restarts that follow, with a plain
 * reader holding a snapshot across them. */
START_TEST(test_checkpoints)
{
	struct rfx_env e;
	char *wal;
	sqlite3 *db, *plain;
	sqlite3_stmt *st;
	int64_t start, snapshot = -1;
	struct stat wst;
	int round, busy;

	rfx_env_start(&e, NULL);
	wal = rth_sibling(e.path, "-wal");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	for (round = 0; round < 6; round++) {
		rfx_primary_exec(e.srv.url,
				 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
				 "SELECT i + 1 FROM n WHERE i < 300) INSERT "
				 "INTO t(b) SELECT randomblob(3000) FROM n");
		if (round == 1) {
			fixture_exec(plain, "BEGIN");
			snapshot = fixture_query_int(plain, "SELECT count(*) "
							    "FROM t");
		}
		rfx_sync(db);
		if (round == 3) {
			ck_assert_int_eq(fixture_query_int(plain, "SELECT "
								  "count(*) "
								  "FROM t"),
					 snapshot);
			fixture_exec(plain, "COMMIT");
		}
		if (round == 4) {
			/* The sync thread may be checkpointing: retry. */
			start = rfx_now_ms();
			do {
				ck_assert_int_eq(
				    sqlite3_prepare_v2(
					db, "PRAGMA wal_checkpoint(TRUNCATE)",
					-1, &st, NULL),
				    SQLITE_OK);
				ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
				busy = sqlite3_column_int(st, 0);
				sqlite3_finalize(st);
				ck_assert_msg(rfx_now_ms() - start <
						  RTH_DEADLINE_MS,
					      "the checkpoint stayed busy");
				if (busy)
					rfx_sleep_ms(20);
			} while (busy);
			ck_assert_int_eq(stat(wal, &wst), 0);
			ck_assert_int_eq(wst.st_size, 0);
		}
		ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM "
						       "t"),
				 300 * (round + 1));
		rfx_assert_same_table(db, e.srv.url, "t", "a || ',' || hex(b)");
	}
	ck_assert_int_gt(rfx_status_int(db, "frames_pulled"), 1000);
	fixture_assert_integrity(db);
	fixture_assert_integrity(plain);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"),
			 1800);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	sqlite3_close(db);
	free(wal);
	rfx_env_stop(&e);
}
END_TEST

/* One transaction of the primary larger than a pull (4096 frames): it
 * arrives in several responses and is applied at once. */
START_TEST(test_large_transaction)
{
	struct rfx_env e;
	struct rfx_info before, after;
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	rfx_primary_info(e.srv.url, NULL, &before);
	rfx_primary_exec(e.srv.url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 4500) INSERT "
			 "INTO t(b) SELECT randomblob(3500) FROM n");
	rfx_primary_info(e.srv.url, NULL, &after);
	ck_assert_int_gt(after.max_frame_no - before.max_frame_no, 4096);
	ck_assert_int_eq(rfx_sync(db), after.max_frame_no);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4500);
	rfx_assert_same_table(db, e.srv.url, "t", "a || ',' || hex(b)");
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Readers never see part of a primary transaction: transfers on the
 * primary keep a total constant, and readers in other threads check it on
 * every read while live sync applies them. */
START_TEST(test_consistent_reads)
{
	struct rfx_env e;
	struct rfx_reader readers[4];
	sqlite3 *db, *plain;
	int i;

	rfx_env_start(&e, NULL);
	rfx_primary_exec(
	    e.srv.url, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, bal "
		       "INTEGER, pad BLOB); WITH RECURSIVE n(i) AS (SELECT 1 "
		       "UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT "
		       "INTO accounts SELECT i, 500, randomblob(1500) FROM n");
	db = rfx_open(e.path, e.srv.url, NULL);
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	sqlite3_busy_timeout(plain, 5000);
	for (i = 0; i < 4; i++) {
		rfx_reader_start(
		    &readers[i], i == 3 ? plain : rfx_open(e.path, NULL, NULL),
		    "SELECT sum(bal), count(*) FROM accounts", 100000, 200);
	}
	/* Transfers touching every page (and the padding, rewritten). */
	for (i = 0; i < 60; i++) {
		char *sql = sqlite3_mprintf(
		    "UPDATE accounts SET bal = bal + CASE WHEN id %% 2 = %d "
		    "THEN %d ELSE -%d END, pad = CASE WHEN id %% 7 = %d THEN "
		    "randomblob(1500) ELSE pad END",
		    i % 2, i + 1, i + 1, i % 7);
		rfx_primary_exec(e.srv.url, sql);
		sqlite3_free(sql);
	}
	rfx_sync(db);
	for (i = 0; i < 4; i++) {
		rfx_reader_stop(&readers[i]);
		printf("consistent reads: reader %d made %ld reads\n", i,
		       readers[i].reads);
		ck_assert_msg(readers[i].bad == 0,
			      "reader %d saw %ld inconsistent reads, first: %s",
			      i, readers[i].bad, readers[i].first_bad);
		ck_assert_int_gt(readers[i].reads, 0);
		if (i < 3)
			sqlite3_close(readers[i].db);
	}
	fflush(stdout);
	rfx_assert_same_table(db, e.srv.url, "accounts",
			      "id || ',' || bal || ',' || hex(pad)");
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_bootstrap_and_incremental,
				      test_bootstrap_content,
				      test_incremental_sync,
				      test_background_sync,
				      test_checkpoints,
				      test_large_transaction,
				      test_consistent_reads};

	return rfx_run_tests("replica", tests, sizeof tests / sizeof tests[0]);
}
