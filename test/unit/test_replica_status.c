/* The replica's status and its SQL interface against a real primary on
 * loopback: replite_status() and PRAGMA replite_status (every field, its
 * type, and counters following the syncs), sync_interval echoed, the
 * functions on a connection that is not a replica, a replica attached to
 * another connection (the functions and pragmas take the schema name), and
 * the default busy timeout of a replica's connections.
 *
 * Each test is its own test case: CK_RUN_CASE=test_status runs one. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "replica_test_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sqlite3_log messages of this process.  SQLITE_CONFIG_LOG works only
 * before SQLite initialises: capture_log() must come first in a test (each
 * test runs in a fresh child process). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[32768];

static void log_cb(void *arg, int code, const char *msg)
{
	size_t used;

	(void)arg;
	(void)code;
	pthread_mutex_lock(&log_mu);
	used = strlen(log_text);
	snprintf(log_text + used, sizeof log_text - used, "%s\n", msg);
	pthread_mutex_unlock(&log_mu);
}

static int capture_log(void)
{
	return sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL) == SQLITE_OK;
}

static int log_has(const char *needle)
{
	int found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

/* ---------------------------------------------------------------------- */
/* 1. status */

static void assert_status_types(json_t *o)
{
	static const char *const ints[] = {"generation",
					   "frame_no",
					   "primary_frame_no",
					   "last_sync_unix_ms",
					   "pending_frames",
					   "frames_pulled",
					   "bytes_pulled",
					   "rejected_transfers",
					   "pending_transactions",
					   "last_push_unix_ms",
					   "conflicts",
					   "wire_bytes_pulled",
					   "lag_ms",
					   "squashed_frames"};
	size_t i;

	for (i = 0; i < sizeof ints / sizeof ints[0]; i++)
		ck_assert_msg(json_is_integer(json_object_get(o, ints[i])),
			      "replite_status().%s is not an integer", ints[i]);
	ck_assert_msg(json_is_boolean(json_object_get(o, "offline")),
		      "replite_status().offline is not a boolean");
	ck_assert_msg(json_is_number(json_object_get(o, "sync_interval")),
		      "replite_status().sync_interval is not a number");
	ck_assert_msg(json_object_get(o, "last_error") != NULL &&
			  (json_is_null(json_object_get(o, "last_error")) ||
			   json_is_string(json_object_get(o, "last_error"))),
		      "replite_status().last_error is not null or a string");
	ck_assert_msg(json_is_null(json_object_get(o, "checksum")) ||
			  (json_is_string(json_object_get(o, "checksum")) &&
			   strlen(json_string_value(
			       json_object_get(o, "checksum"))) == 16),
		      "replite_status().checksum is not null or 16 hex digits");
	ck_assert_msg(json_is_string(json_object_get(o, "conflict")),
		      "replite_status().conflict is not a string");
	ck_assert_msg(json_is_null(json_object_get(o, "as_of")),
		      "replite_status().as_of is not null (a live replica)");
	ck_assert_msg(json_is_boolean(json_object_get(o, "encrypted")),
		      "replite_status().encrypted is not a boolean");
	ck_assert_int_eq(json_object_size(o), 21);
}

START_TEST(test_status)
{
	struct rfx_env e;
	char *path2;
	char *path3;
	sqlite3 *db, *db2, *plain;
	json_t *s0, *s1, *sp;
	struct rfx_info info;
	sqlite3_stmt *st;
	int64_t before, after;
	char msg[512];

	rfx_env_start(&e, NULL);
	path2 = fixture_path(e.dir, "other.db");
	path3 = fixture_path(e.dir, "default.db");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(e.srv.url,
			 "INSERT INTO t(b) VALUES (randomblob(100))");

	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	before = unix_ms();
	rfx_sync(db);
	after = unix_ms();
	rfx_primary_info(e.srv.url, NULL, &info);
	s0 = rfx_status_json(db);
	assert_status_types(s0);
	ck_assert_int_eq(rth_jint(s0, "generation"), info.generation);
	ck_assert_int_eq(rth_jint(s0, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rth_jint(s0, "primary_frame_no"), info.max_frame_no);
	ck_assert_int_eq(rth_jint(s0, "pending_frames"), 0);
	ck_assert(json_is_false(json_object_get(s0, "offline")));
	ck_assert(json_number_value(json_object_get(s0, "sync_interval")) ==
		  0.0);
	ck_assert(json_is_null(json_object_get(s0, "last_error")));
	ck_assert_int_gt(rth_jint(s0, "frames_pulled"), 0);
	ck_assert_int_ge(rth_jint(s0, "bytes_pulled"),
			 rth_jint(s0, "frames_pulled") * 4096);
	ck_assert_int_ge(rth_jint(s0, "last_sync_unix_ms"), before - 1000);
	ck_assert_int_le(rth_jint(s0, "last_sync_unix_ms"), after + 1000);

	/* More frames: the counters grow, the position follows. */
	rfx_primary_exec(e.srv.url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 50) INSERT "
			 "INTO t(b) SELECT randomblob(3000) FROM n");
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_eq(rfx_sync(db), info.max_frame_no);
	s1 = rfx_status_json(db);
	assert_status_types(s1);
	ck_assert_int_eq(rth_jint(s1, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rth_jint(s1, "primary_frame_no"), info.max_frame_no);
	ck_assert_int_ge(rth_jint(s1, "frames_pulled"),
			 rth_jint(s0, "frames_pulled") +
			     (info.max_frame_no - rth_jint(s0, "frame_no")));
	ck_assert_int_ge(rth_jint(s1, "bytes_pulled"),
			 rth_jint(s0, "bytes_pulled") + 50 * 3000);
	ck_assert_int_ge(rth_jint(s1, "last_sync_unix_ms"),
			 rth_jint(s0, "last_sync_unix_ms"));

	/* PRAGMA replite_status: the same document. */
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA replite_status", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	sp = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	assert_status_types(sp);
	ck_assert_int_eq(rth_jint(sp, "frame_no"), rth_jint(s1, "frame_no"));
	ck_assert_int_eq(rth_jint(sp, "frames_pulled"),
			 rth_jint(s1, "frames_pulled"));
	json_decref(sp);
	/* With a schema name; an unknown schema is an error. */
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT json_extract(replite_status('main'), "
				  "'$.frame_no')"),
	    info.max_frame_no);
	rth_exec_fails(db, "SELECT replite_status('nosuch')", NULL, msg,
		       sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	json_decref(s0);
	json_decref(s1);

	/* sync_interval echoes the parameter, default 1. */
	db2 = rfx_open(path2, e.srv.url, "sync_interval=2.5");
	s0 = rfx_status_json(db2);
	ck_assert(json_number_value(json_object_get(s0, "sync_interval")) ==
		  2.5);
	json_decref(s0);
	sqlite3_close(db2);
	db2 = rfx_open(path3, e.srv.url, NULL);
	s0 = rfx_status_json(db2);
	ck_assert(json_number_value(json_object_get(s0, "sync_interval")) ==
		  1.0);
	json_decref(s0);
	sqlite3_close(db2);

	/* On a connection that is not a replica, the functions say so. */
	ck_assert_int_eq(sqlite3_open(":memory:", &plain), SQLITE_OK);
	rth_exec_fails(plain, "SELECT replite_status()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	rth_exec_fails(plain, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	sqlite3_close(plain);

	sqlite3_close(db);
	free(path2);
	free(path3);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. attached replicas, busy timeout */

/* A replica attached to another connection: the functions and pragmas take
 * the schema name. */
START_TEST(test_attached_replica)
{
	struct rfx_env e;
	char *path2;
	char *plain_path;
	int logging = capture_log();
	char *uri, *sql;
	sqlite3 *db, *p;
	char msg[1024];

	rfx_env_start(&e, NULL);
	path2 = fixture_path(e.dir, "attached.db");
	plain_path = fixture_path(e.dir, "plain.db");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				    "INSERT INTO t(b) VALUES (1)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	uri = rfx_uri(path2, e.srv.url, "sync_interval=0");
	sql = sqlite3_mprintf("ATTACH %Q AS r2", uri);
	fixture_exec(db, sql);
	sqlite3_free(sql);
	sqlite3_free(uri);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM r2.t"), 1);

	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (2)");
	ck_assert_int_gt(fixture_query_int(db, "SELECT replite_sync('r2')"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM r2.t"), 2);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM main.t"),
			 1);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (3)");
	fixture_exec(db, "PRAGMA r2.replite_sync");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM r2.t"), 3);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM main.t"),
			 1);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT json_extract(replite_status('r2'), "
				  "'$.frame_no') > json_extract("
				  "replite_status(), '$.frame_no')"),
	    1);
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM main.t"),
			 3);

	/* A plain database attached is not a replica. */
	ck_assert_int_eq(sqlite3_open(plain_path, &p), SQLITE_OK);
	fixture_exec(p, "CREATE TABLE mine(x)");
	sqlite3_close(p);
	sql = sqlite3_mprintf("ATTACH 'file:%q?vfs=unix' AS p", plain_path);
	fixture_exec(db, sql);
	sqlite3_free(sql);
	rth_exec_fails(db, "SELECT replite_sync('p')", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	/* Nor may it be attached as one.  (The reason reaches sqlite3_log;
	 * ATTACH itself reports SQLite's generic "unable to open".) */
	uri = rfx_uri(plain_path, e.srv.url, "sync_interval=0");
	sql = sqlite3_mprintf("ATTACH %Q AS bad", uri);
	rth_exec_fails(db, sql, NULL, msg, sizeof msg);
	printf("attach of a plain file as a replica: %s\n", msg);
	fflush(stdout);
	ck_assert_msg(logging, "cannot capture sqlite3_log (CK_FORK=no?)");
	ck_assert_msg(log_has(rth_not_a_replica()),
		      "the refusal is not in sqlite3_log");
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM pragma_database_list "
				  "WHERE name = 'bad'"),
	    0);
	sqlite3_free(sql);
	sqlite3_free(uri);

	sqlite3_close(db);
	free(path2);
	free(plain_path);
	rfx_env_stop(&e);
}
END_TEST

/* DESIGN.md §3: "connections on a replite database get a default busy
 * timeout (5 s, unless the app sets its own)", so that the brief locks of
 * other connections (a closing connection holds PENDING on the database
 * file for a moment, the sync holds the WAL write lock) are waited for
 * instead of failing with SQLITE_BUSY. */
START_TEST(test_default_busy_timeout)
{
	struct rfx_env e;
	char *err = NULL;
	sqlite3 *db, *plain;

	rfx_env_start(&e, NULL);
	ck_assert_int_eq(
	    rfx_try_open(e.path, e.srv.url, "sync_interval=0", &db, &err),
	    SQLITE_OK);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA busy_timeout"), 5000);
	sqlite3_busy_timeout(db, 1234);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA busy_timeout"), 1234);
	/* Not on other databases. */
	ck_assert_int_eq(sqlite3_open(":memory:", &plain), SQLITE_OK);
	ck_assert_int_eq(fixture_query_int(plain, "PRAGMA busy_timeout"), 0);
	sqlite3_close(plain);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_status, test_attached_replica,
				      test_default_busy_timeout};

	return rfx_run_tests("replica_status", tests,
			     sizeof tests / sizeof tests[0]);
}
