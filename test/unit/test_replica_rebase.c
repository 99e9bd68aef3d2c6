/* conflict=rebase (the default of offline=1, issue 10) against a real
 * primary on loopback: when the primary moved while the replica held
 * unpushed transactions, the replica takes the primary's state, re-applies
 * its transactions' row changes on top (row-level last push wins), pushes
 * them, and records each row where the primary's version was overwritten,
 * and each transaction that could not be re-applied; afterwards the replica
 * equals the primary (same rows, replite_verify, integrity_check).
 *
 * Each test is its own test case: CK_RUN_CASE=test_rebase_rows runs one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "server_fixture.h"

#define OFFLINE "offline=1&sync_interval=0"

/* The conflict record of table and text key k (NULL if none). */
static json_t *find_conflict(json_t *c, const char *table, const char *col,
			     const char *k)
{
	json_t *rec;
	size_t i;

	json_array_foreach(c, i, rec)
	{
		json_t *key = json_object_get(json_object_get(rec, "key"), col);
		const char *t =
		    json_string_value(json_object_get(rec, "table"));
		const char *v =
		    json_string_value(json_object_get(key, "value"));
		if (t != NULL && strcmp(t, table) == 0 && v != NULL &&
		    strcmp(v, k) == 0)
			return rec;
	}
	return NULL;
}

static void sync_until_pushed(sqlite3 *db)
{
	char *msg = rfx_sync_error(db);

	ck_assert_msg(msg == NULL, "sync: %s", msg);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
}

/* ---------------------------------------------------------------------- */

/* Every rule of last push wins on a keyed table, and the conflict records
 * of the rows the primary had changed too. */
START_TEST(test_rebase_rows)
{
	struct rfx_durable d;
	sqlite3 *db;
	json_t *c, *rec;
	int i;
	char sql[128], plan[1024];

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	fixture_exec(db, "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, n INT)");
	for (i = 0; i < 10; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO kv VALUES ('k%d', 'base', %d)", i, i);
		fixture_exec(db, sql);
	}
	rfx_sync(db);
	server_fixture_stop(&d.srv);
	fixture_exec(db, "INSERT INTO kv VALUES ('local-a', 'L', 100)");
	fixture_exec(db, "BEGIN; INSERT INTO kv VALUES ('local-b', 'L', 101); "
			 "UPDATE kv SET v = 'L1' WHERE k = 'k1'; COMMIT");
	fixture_exec(db, "UPDATE kv SET v = 'L2' WHERE k = 'k2'");
	fixture_exec(db, "DELETE FROM kv WHERE k IN ('k3', 'k4')");
	fixture_exec(db, "UPDATE kv SET v = 'L6' WHERE k = 'k6'");
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 5);
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "INSERT INTO kv VALUES ('prim-a', 'P', 200)");
	rfx_primary_exec(d.url, "UPDATE kv SET v = 'P2', n = 22 WHERE k = "
				"'k2'; UPDATE kv SET v = 'P4' WHERE k = 'k4'");
	rfx_primary_exec(d.url, "DELETE FROM kv WHERE k IN ('k5', 'k6')");

	sync_until_pushed(db);
	/* Said in SQLite's log, formatted (SQLite's printf, not C's). */
	ck_assert(rfx_log_seen("5 local transactions lost a conflict"));
	ck_assert(rfx_log_seen("5 local transactions re-applied"));
	/* The primary's rows and the replica's, merged row by row. */
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM kv"),
			 10 + 2 + 1 - 3);
	ck_assert_int_eq(rfx_primary_query_int(
			     d.url, "SELECT count(*) FROM kv WHERE k IN "
				    "('local-a', 'local-b', 'prim-a') OR "
				    "(k = 'k1' AND v = 'L1') OR (k = 'k2' AND "
				    "v = 'L2' AND n = 2) OR (k = 'k6' AND v = "
				    "'L6')"),
			 6);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM kv WHERE k IN "
					 "('k3', 'k4', 'k5')"),
	    0);
	rfx_assert_same_table(db, d.url, "kv", "k || ',' || v || ',' || n");
	rfx_assert_verified(db);

	/* Three rows the primary had changed: k2 (updated on both), k4
	 * (updated there, deleted here), k6 (deleted there, updated here:
	 * inserted again). */
	c = rfx_conflicts(db);
	ck_assert_int_eq(json_array_size(c), 3);
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 3);
	rec = find_conflict(c, "kv", "k", "k2");
	ck_assert_ptr_nonnull(rec);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "resolution")),
			 "replica");
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(rec, "primary"), "v"),
		"value")),
	    "P2");
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(rec, "replica"), "v"),
		"value")),
	    "L2");
	ck_assert_int_eq(strlen(json_string_value(json_object_get(rec, "txn"))),
			 32);
	ck_assert(json_integer_value(json_object_get(rec, "unix_ms")) > 0);
	rec = find_conflict(c, "kv", "k", "k4");
	ck_assert_ptr_nonnull(rec);
	ck_assert(json_is_null(json_object_get(rec, "replica")));
	rec = find_conflict(c, "kv", "k", "k6");
	ck_assert_ptr_nonnull(rec);
	ck_assert(json_is_null(json_object_get(rec, "primary")));
	json_decref(c);

	/* No plan left, and writes go on from the merged state. */
	snprintf(plan, sizeof plan, "%s-replite-rebase", d.path);
	ck_assert_int_ne(access(plan, F_OK), 0);
	fixture_exec(db, "INSERT INTO kv VALUES ('after', 'A', 1)");
	sync_until_pushed(db);
	rfx_assert_same_table(db, d.url, "kv", "k || ',' || v || ',' || n");
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* A transaction that cannot be re-applied (its table dropped on the
 * primary, a UNIQUE value taken there) is recorded and skipped; the ones
 * after it still reach the primary. */
START_TEST(test_rebase_skips)
{
	struct rfx_durable d;
	sqlite3 *db;
	json_t *c, *rec;
	size_t i, skipped = 0;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	fixture_exec(db, "CREATE TABLE gone(id INTEGER PRIMARY KEY, v TEXT)");
	fixture_exec(db, "CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT "
			 "UNIQUE)");
	fixture_exec(db, "CREATE TABLE log(id TEXT PRIMARY KEY)");
	rfx_sync(db);
	server_fixture_stop(&d.srv);
	fixture_exec(db, "INSERT INTO gone(v) VALUES ('lost')");
	fixture_exec(db, "INSERT INTO u VALUES (10, 'x@example.com')");
	fixture_exec(db, "INSERT INTO log VALUES ('after-both')");
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "DROP TABLE gone");
	rfx_primary_exec(d.url, "INSERT INTO u VALUES (20, 'x@example.com')");

	sync_until_pushed(db);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM log"), 1);
	ck_assert_int_eq(rfx_primary_query_int(d.url, "SELECT id FROM u"), 20);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM "
					       "sqlite_schema WHERE name = "
					       "'gone'"),
			 0);
	rfx_assert_same_table(db, d.url, "u", "id || email");
	rfx_assert_verified(db);
	c = rfx_conflicts(db);
	json_array_foreach(c, i, rec)
	{
		const char *res =
		    json_string_value(json_object_get(rec, "resolution"));
		const char *why =
		    json_string_value(json_object_get(rec, "reason"));
		ck_assert_str_eq(res, "skipped");
		ck_assert_ptr_nonnull(why);
		skipped++;
		if (strcmp(json_string_value(json_object_get(rec, "table")),
			   "gone") == 0)
			RFX_ASSERT_HAS(why, "gone");
		else
			RFX_ASSERT_HAS(why, "UNIQUE");
	}
	ck_assert_int_eq(skipped, 2);
	json_decref(c);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* Rows of a table without a PRIMARY KEY inserted on both sides all
 * survive (the replica's get new rowids), and a table created offline
 * reaches the primary with its rows, on top of a column the primary added. */
START_TEST(test_rebase_no_key_and_schema)
{
	struct rfx_durable d;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	fixture_exec(db, "CREATE TABLE ev(what TEXT)");
	fixture_exec(db, "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)");
	fixture_exec(db, "INSERT INTO ev VALUES ('base')");
	rfx_sync(db);
	server_fixture_stop(&d.srv);
	fixture_exec(db, "INSERT INTO ev VALUES ('local-1')");
	fixture_exec(db, "INSERT INTO ev VALUES ('local-2')");
	fixture_exec(db, "CREATE TABLE made_offline(id INTEGER PRIMARY KEY, "
			 "x TEXT); INSERT INTO made_offline(x) VALUES ('m')");
	fixture_exec(db, "INSERT INTO kv VALUES ('local', 'L')");
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "INSERT INTO ev VALUES ('primary-1')");
	rfx_primary_exec(d.url, "ALTER TABLE kv ADD COLUMN extra TEXT "
				"DEFAULT 'dflt'");

	sync_until_pushed(db);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM ev"), 4);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM ev WHERE what "
					 "IN ('local-1', 'local-2', "
					 "'primary-1')"),
	    3);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM made_offline"),
	    1);
	ck_assert_int_eq(
	    rfx_primary_query_int(d.url, "SELECT count(*) FROM kv WHERE k = "
					 "'local' AND extra = 'dflt'"),
	    1);
	rfx_assert_same_table(db, d.url, "ev", "what");
	rfx_assert_verified(db);
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), 0);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_rebase_rows, test_rebase_skips,
				      test_rebase_no_key_and_schema};

	return rfx_run_tests("replica_rebase", tests,
			     sizeof tests / sizeof tests[0]);
}
