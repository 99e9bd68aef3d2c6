/* Squashed catch-up (GET /sync ...?squash=1, proto/frames.h): a replica far
 * behind receives each changed page once, as one transaction standing for
 * the range, and ends exactly where the primary is.
 *
 * Each case brings a replica that synced once (sync_interval=0: only
 * explicit syncs) up to date after the primary ran many transactions, then
 * checks that it received fewer frames than the log holds
 * (squashed_frames counts the log frames received squashed), that its
 * tables equal the primary's, that PRAGMA integrity_check is ok and that
 * replite_verify() agrees with the primary's whole-database checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"

#define ROWS 100

/* 100 accounts of 1000 each. */
static void accounts(const char *url)
{
	rfx_primary_exec(url,
			 "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT, "
			 "note TEXT);"
			 "CREATE INDEX acct_bal ON acct(bal);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 100) INSERT INTO acct SELECT "
			 "i, 1000, hex(randomblob(100)) FROM n");
}

/* n transfers, each its own transaction (a sequence of BEGIN ... COMMIT
 * statements in one request). */
static void transfers(const char *url, int n, int seed)
{
	size_t cap = (size_t)n * 160 + 1, len = 0;
	char *sql = malloc(cap);
	int i;

	ck_assert_ptr_nonnull(sql);
	sql[0] = '\0';
	for (i = 0; i < n; i++) {
		int a = 1 + (i * 37 + seed) % ROWS, b = 1 + (i * 53 + 7) % ROWS;
		len += (size_t)snprintf(
		    sql + len, cap - len,
		    "BEGIN;UPDATE acct SET bal = bal - 1 WHERE id = %d;"
		    "UPDATE acct SET bal = bal + 1 WHERE id = %d;COMMIT;",
		    a, b);
	}
	rfx_primary_exec(url, sql);
	free(sql);
}

static void assert_like_primary(sqlite3 *db, const char *url)
{
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(bal) FROM acct"),
			 ROWS * 1000);
	rfx_assert_same_table(db, url, "acct", "id || ':' || bal || note");
	rfx_assert_verified(db);
}

START_TEST(test_squashed_updates)
{
	struct rfx_env env;
	int64_t head_before, pulled_before, pulled, squashed, frame_no;
	sqlite3 *db;

	rfx_env_start(&env, NULL);
	accounts(env.srv.url);
	db = rfx_open(env.path, env.srv.url, "sync_interval=0");
	head_before = rfx_status_int(db, "frame_no");
	pulled_before = rfx_status_int(db, "frames_pulled");
	transfers(env.srv.url, 2000, 1);
	frame_no = rfx_sync(db);
	pulled = rfx_status_int(db, "frames_pulled") - pulled_before;
	squashed = rfx_status_int(db, "squashed_frames");
	/* 2,000 transactions of 2-4 frames: a few hundred distinct pages at
	 * most, and every log frame stood for by a squashed answer. */
	ck_assert_int_ge(frame_no - head_before, 4000);
	ck_assert_int_eq(squashed, frame_no - head_before);
	ck_assert_msg(pulled * 20 < frame_no - head_before,
		      "%lld frames pulled for %lld frames of the log",
		      (long long)pulled, (long long)(frame_no - head_before));
	assert_like_primary(db, env.srv.url);
	sqlite3_close(db);
	rfx_env_stop(&env);
}
END_TEST

/* More distinct pages than one squashed answer holds (4,096): the range is
 * cut at a commit frame and the rest follows in later answers. */
START_TEST(test_squash_cut_at_commit)
{
	struct rfx_env env;
	sqlite3 *db;
	int i;

	rfx_env_start(&env, NULL);
	accounts(env.srv.url);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)");
	db = rfx_open(env.path, env.srv.url, "sync_interval=0");
	for (i = 0; i < 12; i++) {
		/* ~1,000 new pages, then the same pages rewritten. */
		rfx_primary_exec(env.srv.url,
				 "INSERT INTO big(v) SELECT randomblob(3900) "
				 "FROM acct, (SELECT 1 UNION ALL SELECT 2 "
				 "UNION ALL SELECT 3 UNION ALL SELECT 4 UNION "
				 "ALL SELECT 5 UNION ALL SELECT 6 UNION ALL "
				 "SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT "
				 "9 UNION ALL SELECT 10)");
		transfers(env.srv.url, 50, i);
	}
	rfx_sync(db);
	ck_assert_int_gt(rfx_status_int(db, "squashed_frames"), 0);
	assert_like_primary(db, env.srv.url);
	rfx_assert_same_table(db, env.srv.url, "big", "id || ':' || hex(v)");
	sqlite3_close(db);
	rfx_env_stop(&env);
}
END_TEST

/* The database shrinks within the range (a big table dropped, VACUUM):
 * pages past the final size are not sent, and the file ends at it. */
START_TEST(test_squash_shrinking_database)
{
	struct rfx_env env;
	sqlite3 *db;

	rfx_env_start(&env, NULL);
	accounts(env.srv.url);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 500) INSERT INTO big(v) "
			 "SELECT randomblob(3000) FROM n");
	db = rfx_open(env.path, env.srv.url, "sync_interval=0");
	transfers(env.srv.url, 300, 3);
	rfx_primary_exec(env.srv.url, "DROP TABLE big");
	rfx_primary_exec(env.srv.url, "VACUUM");
	transfers(env.srv.url, 300, 5);
	rfx_sync(db);
	ck_assert_int_gt(rfx_status_int(db, "squashed_frames"), 0);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
				  "name = 'big'"),
	    0);
	ck_assert_int_eq(
	    fixture_query_int(db, "PRAGMA page_count"),
	    rfx_primary_query_int(env.srv.url, "PRAGMA page_count"));
	assert_like_primary(db, env.srv.url);
	sqlite3_close(db);
	rfx_env_stop(&env);
}
END_TEST

/* A squashed answer damaged in transit is refused before any of it is
 * used, and fetched again. */
START_TEST(test_squash_damaged_in_transit)
{
	struct rfx_env env;
	struct fault_proxy *proxy;
	sqlite3 *db;

	rfx_env_start(&env, NULL);
	accounts(env.srv.url);
	proxy = fault_proxy_start(atoi(strrchr(env.srv.url, ':') + 1));
	ck_assert_ptr_nonnull(proxy);
	db = rfx_open(env.path, fault_proxy_url(proxy), "sync_interval=0");
	transfers(env.srv.url, 1000, 2);
	ck_assert_int_eq(fault_proxy_set(proxy, FAULT_PROXY_CORRUPT_BYTE,
					 "GET /sync/", 5000),
			 0);
	rfx_sync(db);
	ck_assert_uint_eq(fault_proxy_fired(proxy), 1);
	ck_assert_int_eq(rfx_status_int(db, "rejected_transfers"), 1);
	ck_assert_int_gt(rfx_status_int(db, "squashed_frames"), 0);
	assert_like_primary(db, env.srv.url);
	sqlite3_close(db);
	fault_proxy_stop(proxy);
	rfx_env_stop(&env);
}
END_TEST

/* Readers never see part of a squashed answer: while a replica catches up
 * in squashed answers, readers in other threads check on every read that
 * the accounts (two to a page, so that a transfer spans pages) still add
 * up. */
START_TEST(test_squash_readers_see_whole_states)
{
	struct rfx_env env;
	struct rfx_reader readers[3];
	int i, round;
	sqlite3 *db;

	rfx_env_start(&env, NULL);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE wide(id INTEGER PRIMARY KEY, bal INT, "
			 "pad BLOB);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 100) INSERT INTO wide SELECT "
			 "i, 1000, randomblob(1800) FROM n");
	db = rfx_open(env.path, env.srv.url, "sync_interval=0");
	for (i = 0; i < 3; i++) {
		rfx_reader_start(&readers[i], rfx_open(env.path, NULL, NULL),
				 "SELECT sum(bal), count(*) FROM wide", 100000,
				 ROWS);
	}
	for (round = 0; round < 5; round++) {
		size_t cap = 300 * 160, len = 0;
		char *sql = malloc(cap);
		ck_assert_ptr_nonnull(sql);
		for (i = 0; i < 300; i++) {
			/* From the first half to the second: always two
			 * pages apart. */
			int a = 1 + (i * 7 + round) % 50,
			    b = 51 + (i * 13) % 50;
			len += (size_t)snprintf(
			    sql + len, cap - len,
			    "BEGIN;UPDATE wide SET bal = bal - %d WHERE id = "
			    "%d;UPDATE wide SET bal = bal + %d WHERE id = "
			    "%d;COMMIT;",
			    i % 5 + 1, a, i % 5 + 1, b);
		}
		rfx_primary_exec(env.srv.url, sql);
		free(sql);
		rfx_sync(db);
	}
	for (i = 0; i < 3; i++) {
		rfx_reader_stop(&readers[i]);
		ck_assert_msg(readers[i].bad == 0,
			      "reader %d saw %ld inconsistent reads, first: %s",
			      i, readers[i].bad, readers[i].first_bad);
		ck_assert_int_gt(readers[i].reads, 0);
		sqlite3_close(readers[i].db);
	}
	ck_assert_int_gt(rfx_status_int(db, "squashed_frames"), 2000);
	rfx_assert_same_table(db, env.srv.url, "wide",
			      "id || ':' || bal || hex(pad)");
	rfx_assert_verified(db);
	sqlite3_close(db);
	rfx_env_stop(&env);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_squashed_updates,
	    test_squash_cut_at_commit,
	    test_squash_shrinking_database,
	    test_squash_damaged_in_transit,
	    test_squash_readers_see_whole_states,
	};

	return rfx_run_tests("replica_squash", tests,
			     sizeof tests / sizeof tests[0]);
}
