/* The replica write path against a real primary on loopback (DESIGN.md §3
 * "Write path", issue 4) with several writers: several connections of a
 * process writing from threads, with and without live sync; several
 * replicas of one primary incrementing one counter (no lost update);
 * writes while the primary starts new generations; a replica attached to a
 * connection of another replica, its writes going to its own primary.
 *
 * Each test is its own test case: CK_RUN_CASE=test_two_replicas runs one.
 * No assertion depends on timing except a generous upper bound on how long
 * the primary takes to roll over; short sleeps only let sync threads reach
 * their long-polls first. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "replica_write_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* several connections of one process */

/* A writer of n operations on the connection db. */
static void writer_init(struct rwh_writer *w, sqlite3 *db, int id, int ops)
{
	memset(w, 0, sizeof *w);
	w->db = db;
	w->id = id;
	w->ops = ops;
}

/* Run n writers to their end, each in a thread running fn: none may have
 * failed.  The sums of their counts in *sum. */
static void run_threads(struct rwh_writer *w, int n, void *(*fn)(void *),
			struct rwh_writer *sum)
{
	int i;

	memset(sum, 0, sizeof *sum);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, fn, &w[i]),
				 0);
	for (i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		ck_assert_msg(w[i].failed == 0,
			      "writer %d: %d errors, first: %s", i, w[i].failed,
			      w[i].first_error);
		sum->inserted += w[i].inserted;
		sum->incremented += w[i].incremented;
		sum->busy += w[i].busy;
		sum->snapshot += w[i].snapshot;
	}
}

/* Print what the writers of a test did (their sums, from run_threads). */
static void print_increments(const char *what, const struct rwh_writer *sum)
{
	printf("%s: %d increments, %d SQLITE_BUSY retried (%d "
	       "SQLITE_BUSY_SNAPSHOT)\n",
	       what, sum->incremented, sum->busy, sum->snapshot);
	fflush(stdout);
}

static void *writer_main(void *arg)
{
	struct rwh_writer *w = arg;
	int i;

	for (i = 0; i < w->ops; i++) {
		char *sql = sqlite3_mprintf(
		    "INSERT INTO t(who, seq, pad) VALUES (%d, %d, "
		    "randomblob(%d))",
		    w->id, i, 100 + (i * 37 + w->id * 11) % 900);

		w->inserted += rwh_writer_exec(w, sql);
		sqlite3_free(sql);
		/* A read-modify-write in an explicit transaction. */
		w->incremented += rwh_writer_exec(
		    w, i % 2 == 0 ? "UPDATE counter SET n = n + 1"
				  : "BEGIN IMMEDIATE; UPDATE counter SET n = "
				    "(SELECT n FROM counter) + 1; COMMIT");
	}
	return NULL;
}

static void run_writers(const char *path, const char *url, const char *extra)
{
	struct rwh_writer w[4], sum;
	sqlite3 *db;
	int i;

	db = rfx_open(path, url, extra);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, who INTEGER, "
			 "seq INTEGER, pad BLOB); CREATE TABLE counter(n "
			 "INTEGER); INSERT INTO counter VALUES (0)");
	for (i = 0; i < 4; i++)
		writer_init(&w[i], rfx_open(path, url, extra), i, 25);
	run_threads(w, 4, writer_main, &sum);
	printf("%s: 4 connections, %d inserts, %d increments, %d SQLITE_BUSY "
	       "retried\n",
	       extra, sum.inserted, sum.incremented, sum.busy);
	fflush(stdout);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT count(*) FROM t"),
			 sum.inserted);
	ck_assert_int_eq(rwh_both_int(db, url, "SELECT n FROM counter"),
			 sum.incremented);
	ck_assert_int_eq(sum.inserted, 100);
	for (i = 0; i < 4; i++) {
		char *sql = sqlite3_mprintf("SELECT count(DISTINCT seq) FROM t "
					    "WHERE who = %d",
					    i);

		ck_assert_int_eq(
		    fixture_query_int(w[i].db, "SELECT count(*) FROM t"),
		    fixture_query_int(db, "SELECT count(*) FROM t"));
		ck_assert_int_eq(rwh_both_int(db, url, sql), w[i].inserted);
		sqlite3_free(sql);
		sqlite3_close(w[i].db);
	}
	rfx_assert_same_table(
	    db, url, "t", "id || ',' || who || ',' || seq || ',' || hex(pad)");
	rwh_assert_integrity_both(db, url);
	sqlite3_close(db);
}

START_TEST(test_threads)
{
	struct rfx_env e;
	char *path2;

	rfx_env_start(&e, NULL);
	path2 = fixture_path(e.dir, "live.db");
	/* Explicit syncs only: every write catches up first. */
	run_writers(e.path, e.srv.url, "sync_interval=0");
	/* With live sync: the long-poll also brings back the replica's own
	 * pushed frames. */
	rfx_primary_exec(e.srv.url, "DROP TABLE t; DROP TABLE counter");
	run_writers(path2, e.srv.url, "sync_interval=1");
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* A writer's thread: w->ops increments (w->incr). */
static void *incr_main(void *arg)
{
	struct rwh_writer *w = arg;
	int i;

	for (i = 0; i < w->ops; i++) {
		char *sql = sqlite3_mprintf(w->incr, w->id, i);

		w->incremented += rwh_writer_exec(w, sql);
		sqlite3_free(sql);
	}
	return NULL;
}

/* Two replicas (two files) of one primary in one process, two connections
 * each, incrementing one counter in transactions: pushes race and lose,
 * and no update is lost. */
START_TEST(test_two_replicas)
{
	struct rfx_env e;
	struct rwh_writer w[4], sum;
	const char *url;
	char *path2;
	sqlite3 *a, *b;
	int i;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	path2 = fixture_path(e.dir, "b.db");
	rfx_primary_exec(url, "CREATE TABLE counter(n INTEGER); INSERT INTO "
			      "counter VALUES (0); CREATE TABLE log(who "
			      "INTEGER, seq INTEGER, n INTEGER UNIQUE)");
	a = rfx_open(e.path, url, "sync_interval=0");
	b = rfx_open(path2, url, "sync_interval=1");
	for (i = 0; i < 4; i++) {
		writer_init(&w[i],
			    i < 2 ? rfx_open(e.path, url, "sync_interval=0")
				  : rfx_open(path2, url, "sync_interval=1"),
			    i, 20);
		w[i].incr = "BEGIN; UPDATE counter SET n = n + 1; INSERT INTO "
			    "log VALUES (%d, %d, (SELECT n FROM counter)); "
			    "COMMIT";
	}
	run_threads(w, 4, incr_main, &sum);
	print_increments("two replicas", &sum);
	ck_assert_int_eq(sum.incremented, 80);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT n FROM counter"),
			 sum.incremented);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM log"),
			 sum.incremented);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT max(n) FROM log"),
			 sum.incremented);
	rfx_sync(a);
	rfx_sync(b);
	rfx_assert_same_table(a, url, "log", "who || ',' || seq || ',' || n");
	rfx_assert_same_table(b, url, "log", "who || ',' || seq || ',' || n");
	ck_assert_int_eq(rwh_both_int(b, url, "SELECT n FROM counter"),
			 sum.incremented);
	rwh_assert_integrity_both(a, url);
	fixture_assert_integrity(b);
	for (i = 0; i < 4; i++)
		sqlite3_close(w[i].db);
	sqlite3_close(a);
	sqlite3_close(b);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* Replicas with live sync (the default sync_interval) of one primary,
 * incrementing one counter from threads (the classic lost-update check):
 * the counter equals the number of increments that succeeded. */
START_TEST(test_counter_live)
{
	struct rfx_env e;
	struct rwh_writer w[3], sum;
	const char *url;
	int i;

	rfx_env_start(&e, NULL);
	url = e.srv.url;
	rfx_primary_exec(url, "CREATE TABLE counter(n INTEGER); INSERT INTO "
			      "counter VALUES (0)");
	for (i = 0; i < 3; i++) {
		char name[32];
		char *path;

		snprintf(name, sizeof name, "r%d.db", i);
		path = fixture_path(e.dir, name);
		writer_init(&w[i], rfx_open(path, url, NULL), i, 30);
		w[i].incr = "UPDATE counter SET n = n + 1";
		free(path);
	}
	rfx_sleep_ms(200); /* let the sync threads reach their long-polls */
	run_threads(w, 3, incr_main, &sum);
	print_increments("counter, 3 live replicas", &sum);
	ck_assert_int_eq(sum.incremented, 90);
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT n FROM counter"),
			 sum.incremented);
	for (i = 0; i < 3; i++) {
		rfx_sync(w[i].db);
		ck_assert_int_eq(
		    rwh_both_int(w[i].db, url, "SELECT n FROM counter"),
		    sum.incremented);
		fixture_assert_integrity(w[i].db);
		sqlite3_close(w[i].db);
	}
	rfx_env_stop(&e);
}
END_TEST

/* Writes while the primary starts new generations (every 20 frames): the
 * replica follows and its writes land, in autocommit and in explicit
 * transactions. */
START_TEST(test_generation_rollover)
{
	const char *args[] = {"--generation-frames", "20", NULL};
	struct rfx_env e;
	struct rwh_writer w = {0};
	struct rfx_info start, info;
	const char *url;
	int64_t t0;
	int i = 0;

	rfx_env_start(&e, args);
	url = e.srv.url;
	w.db = rfx_open(e.path, url, "sync_interval=0");
	fixture_exec(w.db, "CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)");
	rfx_primary_info(url, NULL, &start);
	t0 = rfx_now_ms();
	do {
		char *sql = sqlite3_mprintf(
		    i % 2 ? "INSERT INTO t VALUES (%d, randomblob(3000))"
			  : "BEGIN; INSERT INTO t VALUES (%d, "
			    "randomblob(3000)); COMMIT",
		    i);

		w.inserted += rwh_writer_exec(&w, sql);
		sqlite3_free(sql);
		ck_assert_msg(w.failed == 0, "write %d: %s", i, w.first_error);
		i++;
		rfx_sleep_ms(20);
		rfx_primary_info(url, NULL, &info);
		ck_assert_msg(rfx_now_ms() - t0 < 20000,
			      "the primary did not roll over (generation %u)",
			      info.generation);
	} while (info.generation < start.generation + 3);
	printf("generation rollover: %d writes over generations %u..%u, %d "
	       "SQLITE_BUSY retried (%d SQLITE_BUSY_SNAPSHOT)\n",
	       i, start.generation, info.generation, w.busy, w.snapshot);
	fflush(stdout);
	ck_assert_int_eq(w.inserted, i);
	ck_assert_int_eq(rwh_both_int(w.db, url, "SELECT count(*) FROM t"), i);
	rfx_sync(w.db);
	rfx_assert_same_table(w.db, url, "t", "a || ',' || hex(b)");
	rwh_finish(&e, w.db, NULL);
}
END_TEST

/* A replica attached to a connection of another replica: writes go to the
 * right primary. */
START_TEST(test_attached_writes)
{
	struct rfx_env e;
	struct server_fixture other;
	struct rfx_info info;
	char *path2, *uri, *sql;
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	server_fixture_start(&other, NULL);
	path2 = fixture_path(e.dir, "other.db");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	uri = rfx_uri(path2, other.url, "sync_interval=0");
	sql = sqlite3_mprintf("ATTACH %Q AS r2", uri);
	fixture_exec(db, sql);
	sqlite3_free(sql);
	sqlite3_free(uri);

	fixture_exec(db, "CREATE TABLE main.t(x); CREATE TABLE r2.u(y)");
	fixture_exec(db, "INSERT INTO r2.u VALUES ('to other')");
	fixture_exec(db, "INSERT INTO main.t VALUES ('to main')");
	fixture_exec(db, "BEGIN; INSERT INTO main.t VALUES (1); INSERT INTO "
			 "r2.u VALUES (2); COMMIT");
	ck_assert_int_eq(rfx_primary_query_int(e.srv.url, "SELECT count(*) "
							  "FROM t"),
			 2);
	ck_assert_int_eq(rfx_primary_query_int(other.url, "SELECT count(*) "
							  "FROM u"),
			 2);
	ck_assert_int_eq(
	    rfx_primary_query_int(e.srv.url, "SELECT count(*) FROM "
					     "sqlite_schema WHERE name = 'u'"),
	    0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM r2.u"), 2);
	rfx_primary_info(other.url, NULL, &info);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT json_extract(replite_status('r2'), "
				  "'$.frame_no')"),
	    info.max_frame_no);
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), info.max_frame_no);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	server_fixture_stop(&other);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {
	    test_threads, test_two_replicas, test_counter_live,
	    test_generation_rollover, test_attached_writes};

	return rfx_run_tests("replica_write_connections", tests,
			     sizeof tests / sizeof tests[0]);
}
