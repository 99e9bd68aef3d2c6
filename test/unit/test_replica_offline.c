/* Offline mode (offline=1, issue 10) against a real primary on loopback:
 * commits are local with the primary stopped, survive closing and
 * reopening, and reach the primary exactly once when it is back (by the
 * background push and by replite_sync); an online replica pushes what an
 * offline session left; a record whose commit never happened is dropped,
 * never pushed; conflict=discard drops the unpushed transactions when the
 * primary moved, restores their pages in the same publication as the
 * primary's (the file then equals the primary: same rows, replite_verify,
 * integrity_check), and records each in replite_conflicts() until
 * replite_conflicts_clear(); the VACUUM of an offline replica (pages cut
 * off) dropped the same way.  conflict=rebase (the default):
 * test_replica_rebase.c.
 *
 * Each test is its own test case: CK_RUN_CASE=test_discard runs one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/outbox.h"
#include "wal/cipher.h"

#define OFFLINE "offline=1&conflict=discard"
#define OFFLINE_EXPLICIT "offline=1&conflict=discard&sync_interval=0"

/* Wait (at most 20 s) until the replica reports nothing pending. */
static void wait_pushed(sqlite3 *db)
{
	int64_t deadline = rfx_now_ms() + 20000;

	while (rfx_status_int(db, "pending_transactions") != 0) {
		ck_assert_msg(rfx_now_ms() < deadline,
			      "still pending after 20 s: %s",
			      rfx_status_text(db));
		rfx_sleep_ms(20);
	}
}

static void insert_rows(sqlite3 *db, const char *tag, int n)
{
	char sql[256];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO t(v, b) VALUES ('%s-%d', randomblob(%d))",
			 tag, i, 50 + 97 * i % 3000);
		fixture_exec(db, sql);
	}
}

static void assert_equals_primary(sqlite3 *db, const char *url)
{
	rfx_assert_same_table(db, url, "t", "id || ',' || v || ',' || hex(b)");
	rfx_assert_verified(db);
}

/* ---------------------------------------------------------------------- */

START_TEST(test_commit_offline_push_later)
{
	struct rfx_durable d;
	sqlite3 *db, *db2;
	int64_t frames;
	char *msg;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b)");
	wait_pushed(db);
	ck_assert_int_gt(rfx_status_int(db, "last_push_unix_ms"), 0);

	/* The primary is gone: writes commit locally, at once. */
	server_fixture_stop(&d.srv);
	insert_rows(db, "off", 30);
	fixture_exec(db, "BEGIN; UPDATE t SET v = v || '!' WHERE id % 2 = 0; "
			 "DELETE FROM t WHERE id % 7 = 0; COMMIT");
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 31);
	frames = rfx_status_int(db, "pending_frames");
	ck_assert_int_ge(frames, 31);
	db2 = rfx_open(d.path, d.url, OFFLINE);
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM t"),
			 30 - 4);
	msg = rfx_sync_error(db2);
	ck_assert_ptr_nonnull(msg); /* the primary is unreachable */
	free(msg);
	sqlite3_close(db2);
	/* Closed and opened again: still pending, still readable. */
	sqlite3_close(db);
	db = rfx_open(d.path, d.url, OFFLINE);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 31);
	ck_assert_int_eq(rfx_status_int(db, "pending_frames"), frames);

	/* Back: replite_sync pushes everything, then pulls. */
	rfx_durable_restart(&d, 1);
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	ck_assert_int_eq(rfx_status_int(db, "pending_frames"), 0);
	ck_assert_int_eq(rfx_primary_query_int(d.url, "SELECT count(*) FROM t"),
			 26);
	assert_equals_primary(db, d.url);
	/* Pushed exactly once: the primary's own writes follow. */
	rfx_primary_exec(d.url, "INSERT INTO t(v) VALUES ('primary')");
	rfx_sync(db);
	assert_equals_primary(db, d.url);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

START_TEST(test_online_pushes_offline_leftovers)
{
	struct rfx_durable d;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b)");
	wait_pushed(db);
	server_fixture_stop(&d.srv);
	insert_rows(db, "left", 5);
	sqlite3_close(db);
	rfx_durable_restart(&d, 1);
	/* An online replica of the file: its first write waits for them. */
	db = rfx_open(d.path, d.url, "sync_interval=0");
	fixture_exec(db, "INSERT INTO t(v) VALUES ('online')");
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	ck_assert_int_eq(rfx_primary_query_int(d.url, "SELECT count(*) FROM t"),
			 6);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT max(id) FROM t WHERE v = "
					 "'online'"),
	    6);
	assert_equals_primary(db, d.url);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* A record appended by a writer that died before its commit frame: the file
 * does not hold its pages, so it is dropped and never pushed. */
START_TEST(test_uncommitted_record_dropped)
{
	struct rfx_env e;
	struct outbox *ob;
	struct cipher *c;
	struct outbox_entry *entries = NULL;
	struct outbox_record rec = {0};
	uint8_t page[REPLITE_PAGE_SIZE * 2] = {0};
	uint32_t pgno = 2;
	uint64_t end = 0;
	size_t n = 0;
	char err[512];
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	db = rfx_open(e.path, e.srv.url, OFFLINE_EXPLICIT);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b)");
	insert_rows(db, "ok", 3);
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);

	c = rfx_key_cipher(e.path);
	ck_assert_msg(outbox_open(e.path, REPLITE_PAGE_SIZE, c, &ob, err,
				  sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(outbox_scan(ob, OUTBOX_HEADER_SIZE, &entries, &n, &end,
				     err, sizeof err),
			 0);
	memset(page, 0x5a, REPLITE_PAGE_SIZE);
	memset(rec.id, 7, sizeof rec.id);
	rec.n = 1;
	rec.pgnos = &pgno;
	rec.new_pages = page;
	rec.old_pages = page + REPLITE_PAGE_SIZE;
	rec.db_size = rec.old_db_size = 2;
	ck_assert_int_eq(outbox_append(ob, &rec, &end, err, sizeof err), 0);
	free(entries);
	outbox_close(ob);
	cipher_free(c);

	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 1);
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	ck_assert_int_eq(
	    rfx_primary_query_int(e.srv.url, "SELECT count(*) FROM t"), 3);
	assert_equals_primary(db, e.srv.url);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

START_TEST(test_discard)
{
	struct rfx_durable d;
	sqlite3 *db;
	json_t *c, *rec;
	int64_t pulled, pages;
	size_t i;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE_EXPLICIT);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b)");
	insert_rows(db, "base", 206);
	rfx_sync(db);
	/* Offline for a while; the primary moves meanwhile. */
	server_fixture_stop(&d.srv);
	insert_rows(db, "local", 4);
	fixture_exec(db, "DELETE FROM t WHERE id <= 3");
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 5);
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "INSERT INTO t(v) VALUES ('primary-1')");
	rfx_primary_exec(d.url, "UPDATE t SET v = 'primary-2' WHERE id = 2");

	pulled = rfx_status_int(db, "bytes_pulled");
	pages = fixture_query_int(db, "PRAGMA page_count");
	ck_assert_ptr_null(rfx_sync_error(db));
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t WHERE "
					       "v LIKE 'local-%'"),
			 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 207);
	/* The primary's two transactions, not a full image: the dropped
	 * pages came back from the outbox. */
	ck_assert_int_lt(rfx_status_int(db, "bytes_pulled") - pulled,
			 pages * REPLITE_PAGE_SIZE / 4);
	assert_equals_primary(db, d.url);
	/* A record per row lost: four inserted, three deleted (rows 2 and
	 * 3 still at the primary, with its version of row 2). */
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 7);
	c = rfx_conflicts(db);
	ck_assert_int_eq(json_array_size(c), 7);
	json_array_foreach(c, i, rec)
	{
		json_t *key = json_object_get(rec, "key");
		json_t *id = json_object_get(key, "id");
		const char *k = json_string_value(json_object_get(id, "value"));
		json_t *primary = json_object_get(rec, "primary");
		ck_assert_str_eq(
		    json_string_value(json_object_get(rec, "resolution")),
		    "discarded");
		ck_assert_str_eq(
		    json_string_value(json_object_get(rec, "table")), "t");
		ck_assert_ptr_nonnull(k);
		if (strcmp(k, "2") == 0)
			ck_assert_str_eq(
			    json_string_value(json_object_get(
				json_object_get(primary, "v"), "value")),
			    "primary-2");
		if (atoi(k) > 3)
			/* The inserted rows: the replica's values; the
			 * primary has none, or its own row 207. */
			ck_assert(
			    json_is_object(json_object_get(rec, "replica")));
		else
			ck_assert(
			    json_is_null(json_object_get(rec, "replica")));
		ck_assert_int_eq(
		    strlen(json_string_value(json_object_get(rec, "txn"))), 32);
		ck_assert(json_is_string(json_object_get(rec, "reason")));
		ck_assert(json_integer_value(json_object_get(rec, "unix_ms")) >
			  0);
	}
	json_decref(c);
	/* They survive a restart, until cleared. */
	sqlite3_close(db);
	db = rfx_open(d.path, d.url, OFFLINE_EXPLICIT);
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 7);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT replite_conflicts_clear()"), 7);
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 0);
	c = rfx_conflicts(db);
	ck_assert_int_eq(json_array_size(c), 0);
	json_decref(c);
	/* Writes go on from the primary's state. */
	insert_rows(db, "after", 2);
	rfx_sync(db);
	assert_equals_primary(db, d.url);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* A local VACUUM cuts pages off; a conflict then puts them back (the
 * primary's file is larger) in the same publication. */
START_TEST(test_discard_shrunk_file)
{
	struct rfx_durable d;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE_EXPLICIT);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b)");
	insert_rows(db, "big", 60);
	rfx_sync(db);
	server_fixture_stop(&d.srv);
	fixture_exec(db, "DELETE FROM t WHERE id > 5");
	fixture_exec(db, "VACUUM");
	ck_assert_int_lt(fixture_query_int(db, "PRAGMA page_count"), 10);
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "UPDATE t SET v = 'moved' WHERE id = 40");
	ck_assert_ptr_null(rfx_sync_error(db));
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 60);
	assert_equals_primary(db, d.url);
	/* The 55 rows deleted; the VACUUM changed no row. */
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 55);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_commit_offline_push_later,
				      test_online_pushes_offline_leftovers,
				      test_uncommitted_record_dropped,
				      test_discard, test_discard_shrunk_file};

	return rfx_run_tests("replica_offline", tests,
			     sizeof tests / sizeof tests[0]);
}
