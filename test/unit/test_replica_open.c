/* Opening replicas against a real primary on loopback: threads opening
 * the same new replica at once (one bootstrap) and read-only connections,
 * the remembered sync URL (the state file's, REPLITE_SYNC_URL, the URI
 * first), and the refusals: opens that must fail (a plain SQLite file,
 * malformed parameters, a broken state file, another primary for a file
 * open in this process) leaving every file as it was, a sync from another
 * primary, and the pragmas that would break a replica.
 *
 * Each test is its own test case: CK_RUN_CASE=test_refused_opens runs
 * one. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "replica_test_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

/* A file's bytes and mtime, to prove a refusal left it alone. */
struct snap {
	char *data; /* NULL: the file does not exist */
	size_t len;
	struct timespec mtime;
};

static void snap_take(const char *path, struct snap *s)
{
	struct stat st;

	memset(s, 0, sizeof *s);
	s->data = rfx_slurp(path, &s->len);
	if (s->data != NULL && stat(path, &st) == 0)
		s->mtime = st.st_mtim;
}

static void snap_assert_same(const char *path, struct snap *s)
{
	struct snap now;

	snap_take(path, &now);
	ck_assert_msg((now.data == NULL) == (s->data == NULL), "%s was %s",
		      path, s->data == NULL ? "created" : "removed");
	if (s->data != NULL) {
		ck_assert_msg(now.len == s->len &&
				  memcmp(now.data, s->data, s->len) == 0,
			      "the content of %s changed (%zu -> %zu bytes)",
			      path, s->len, now.len);
		ck_assert_msg(now.mtime.tv_sec == s->mtime.tv_sec &&
				  now.mtime.tv_nsec == s->mtime.tv_nsec,
			      "%s was written (mtime changed)", path);
	}
	free(now.data);
	free(s->data);
	s->data = NULL;
}

/* ---------------------------------------------------------------------- */
/* 1. opens */

/* Threads opening the same new replica at once: one bootstrap, every open
 * succeeds and reads the same content.  A connection may also be opened
 * read-only. */
struct opener {
	const char *path;
	const char *url;
	pthread_t thread;
	int rc;
	int64_t count;
	char err[256];
};

static void *opener_main(void *arg)
{
	struct opener *o = arg;
	char *uri = rfx_uri(o->path, o->url, "sync_interval=0");
	sqlite3_stmt *st;
	sqlite3 *db = NULL;

	o->rc = sqlite3_open_v2(
	    uri, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
	/* As an application should: several connections of a process
	 * open and close the file at once (a closing connection briefly
	 * holds a PENDING lock on the database file). */
	if (o->rc == SQLITE_OK)
		sqlite3_busy_timeout(db, 5000);
	if (o->rc != SQLITE_OK) {
		snprintf(o->err, sizeof o->err, "open: %s",
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(o->rc));
	} else if (sqlite3_prepare_v2(db, "SELECT count(*) FROM items", -1, &st,
				      NULL) != SQLITE_OK) {
		snprintf(o->err, sizeof o->err, "prepare: %s (%d)",
			 sqlite3_errmsg(db), sqlite3_extended_errcode(db));
	} else {
		if (sqlite3_step(st) == SQLITE_ROW)
			o->count = sqlite3_column_int64(st, 0);
		else
			snprintf(o->err, sizeof o->err, "step: %s (%d)",
				 sqlite3_errmsg(db),
				 sqlite3_extended_errcode(db));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	sqlite3_free(uri);
	return NULL;
}

START_TEST(test_concurrent_open)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *seed = fixture_path(dir, "seed.db");
	char *path = fixture_path(dir, "app.db");
	const char *args[] = {"--import", seed, "--log-requests", NULL};
	struct opener openers[6];
	sqlite3 *db;
	char *uri;
	int i;

	rth_make_seed_file(seed, 300);
	server_fixture_start(&srv, args);
	ck_assert_int_eq(replite_register(), SQLITE_OK);
	for (i = 0; i < 6; i++) {
		openers[i].path = path;
		openers[i].url = srv.url;
		openers[i].rc = -1;
		openers[i].count = -1;
		ck_assert_int_eq(pthread_create(&openers[i].thread, NULL,
						opener_main, &openers[i]),
				 0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(openers[i].thread, NULL);
		ck_assert_msg(
		    openers[i].rc == SQLITE_OK && openers[i].count == 300,
		    "opener %d: rc %d, count %lld: %s", i, openers[i].rc,
		    (long long)openers[i].count, openers[i].err);
	}
	ck_assert_int_eq(rfx_log_count(&srv, RFX_LOG_EXPORT), 1);

	/* Read-only connections. */
	uri = rfx_uri(path, NULL, "sync_interval=0");
	ck_assert_int_eq(sqlite3_open_v2(uri, &db,
					 SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
					 NULL),
			 SQLITE_OK);
	sqlite3_free(uri);
	rfx_primary_exec(srv.url, "DELETE FROM items WHERE id > 250");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 250);
	rth_assert_same_seed(db, srv.url);
	sqlite3_close(db);
	uri = rfx_uri(path, NULL, "mode=ro&sync_interval=0");
	ck_assert_int_eq(
	    sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
			    NULL),
	    SQLITE_OK);
	sqlite3_free(uri);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 250);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(seed);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. the remembered sync URL */

START_TEST(test_remembered_url)
{
	struct rfx_env e;
	char *path2;
	char *path3;
	json_t *state;
	sqlite3 *db;

	unsetenv("REPLITE_SYNC_URL");
	rfx_env_start(&e, NULL);
	path2 = fixture_path(e.dir, "env.db");
	path3 = fixture_path(e.dir, "uri-wins.db");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (1)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sqlite3_close(db);

	/* No sync_url: the state file's. */
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (2)");
	db = rfx_open(e.path, NULL, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	sqlite3_close(db);
	/* Nor any other parameter. */
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (3)");
	db = rfx_open(e.path, NULL, NULL);
	rth_poll_until(db, "SELECT count(*) FROM t", 3, 10);
	sqlite3_close(db);

	/* REPLITE_SYNC_URL for a new replica. */
	ck_assert_int_eq(setenv("REPLITE_SYNC_URL", e.srv.url, 1), 0);
	db = rfx_open(path2, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	sqlite3_close(db);
	state = rfx_state_json(path2);
	ck_assert_str_eq(json_string_value(json_object_get(state, "sync_url")),
			 e.srv.url);
	json_decref(state);
	/* The URI wins over the environment. */
	ck_assert_int_eq(setenv("REPLITE_SYNC_URL", "http://127.0.0.1:1", 1),
			 0);
	db = rfx_open(path3, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	sqlite3_close(db);
	unsetenv("REPLITE_SYNC_URL");

	free(path2);
	free(path3);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. refusals */

/* Opening path must fail with a message containing needle, and leave the
 * file, its WAL and its state file as they were. */
static void assert_open_refused(const char *path, const char *url,
				const char *extra, const char *needle)
{
	char *wal = rth_sibling(path, "-wal"),
	     *state = rth_sibling(path, "-replite");
	struct snap s_db, s_wal, s_state;
	char *msg = NULL;
	sqlite3 *db = NULL;
	int rc;

	snap_take(path, &s_db);
	snap_take(wal, &s_wal);
	snap_take(state, &s_state);
	rc = rfx_try_open(path, url, extra, &db, &msg);
	ck_assert_msg(rc != SQLITE_OK, "opening %s (sync_url %s, %s) succeeded",
		      path, url ? url : "none", extra ? extra : "");
	ck_assert_ptr_null(db);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, needle) != NULL,
		      "expected \"%s\" in the open error: %s", needle, msg);
	snap_assert_same(path, &s_db);
	snap_assert_same(wal, &s_wal);
	snap_assert_same(state, &s_state);
	free(msg);
	free(wal);
	free(state);
}

START_TEST(test_refused_opens)
{
	struct rfx_env e;
	char *plain_path;
	char *new_path;
	char *slash_url;
	sqlite3 *db, *db2;

	unsetenv("REPLITE_SYNC_URL");
	rfx_env_start(&e, NULL);
	plain_path = fixture_path(e.dir, "plain.db");
	new_path = fixture_path(e.dir, "new.db");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");

	/* A plain SQLite file with data and no state file. */
	ck_assert_int_eq(sqlite3_open(plain_path, &db), SQLITE_OK);
	fixture_exec(db, "CREATE TABLE mine(x); INSERT INTO mine VALUES (42)");
	sqlite3_close(db);
	assert_open_refused(plain_path, e.srv.url, "sync_interval=0",
			    rth_not_a_replica());
	/* Also in WAL mode, with the data still in the WAL. */
	ck_assert_int_eq(sqlite3_open(plain_path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA journal_mode=WAL");
	ck_assert_int_eq(sqlite3_wal_autocheckpoint(db, 0), SQLITE_OK);
	fixture_exec(db, "INSERT INTO mine VALUES (43)");
	assert_open_refused(plain_path, e.srv.url, "sync_interval=0",
			    rth_not_a_replica());
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM mine"), 2);
	sqlite3_close(db);

	/* An empty file (0 bytes) becomes a replica. */
	{
		char *empty = fixture_path(e.dir, "empty.db");
		FILE *fp = fopen(empty, "w");

		ck_assert_ptr_nonnull(fp);
		fclose(fp);
		db = rfx_open(empty, e.srv.url, "sync_interval=0");
		ck_assert_int_eq(
		    fixture_query_int(db, "SELECT count(*) FROM t"), 0);
		sqlite3_close(db);
		free(empty);
	}

	/* A new file and no sync_url. */
	assert_open_refused(new_path, NULL, "sync_interval=0",
			    "sync_url is required");

	/* Malformed parameters, on a new file and on a replica. */
	assert_open_refused(new_path, e.srv.url, "sync_interval=abc",
			    "sync_interval 'abc' is not a duration");
	assert_open_refused(new_path, "ftp://x", NULL,
			    "must start with http://, https:// or libsql://");
	assert_open_refused(new_path, "127.0.0.1:8080", NULL,
			    "must start with http://");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sqlite3_close(db);
	assert_open_refused(e.path, e.srv.url, "sync_interval=-1",
			    "sync_interval '-1' is not a duration");
	assert_open_refused(e.path, "ftp://x", NULL, "sync_url");
	assert_open_refused(e.path, e.srv.url,
			    "sync_interval=1&sync_interval=2", "given 2 times");
	/* A state file that is not one. */
	{
		char *state = rth_sibling(e.path, "-replite");
		char *saved;
		size_t saved_len;
		FILE *fp;

		saved = rfx_slurp(state, &saved_len);
		ck_assert_ptr_nonnull(saved);
		fp = fopen(state, "w");
		ck_assert_ptr_nonnull(fp);
		fputs("{not json", fp);
		fclose(fp);
		assert_open_refused(e.path, e.srv.url, "sync_interval=0",
				    state);
		fp = fopen(state, "w");
		ck_assert_ptr_nonnull(fp);
		ck_assert_uint_eq(fwrite(saved, 1, saved_len, fp), saved_len);
		fclose(fp);
		free(saved);
		free(state);
	}
	/* The replica still opens. */
	db = rfx_open(e.path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 0);
	/* While it is open in this process, another primary is refused for
	 * the same file; the same one (spelt differently) shares it. */
	assert_open_refused(e.path, "http://127.0.0.1:1", "sync_interval=0",
			    "already open in this process as a replica of");
	ck_assert_int_ge(asprintf(&slash_url, "%s/", e.srv.url), 0);
	db2 = rfx_open(e.path, slash_url, "sync_interval=0");
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (1)");
	rfx_sync(db2);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	sqlite3_close(db2);
	sqlite3_close(db);
	free(slash_url);

	free(plain_path);
	free(new_path);
	rfx_env_stop(&e);
}
END_TEST

/* A replica of one primary pointed at another: the sync is refused with
 * both database ids named, and nothing is applied. */
START_TEST(test_refused_other_primary)
{
	struct server_fixture a, b;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *state_path = rth_sibling(path, "-replite");
	struct rfx_info ia, ib;
	struct snap s_db, s_state;
	json_t *status;
	const char *last;
	sqlite3 *db;
	char msg[1024];

	server_fixture_start(&a, NULL);
	server_fixture_start(&b, NULL);
	rfx_primary_exec(a.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				"INSERT INTO t(b) VALUES ('from a')");
	rfx_primary_exec(b.url, "CREATE TABLE other(x); INSERT INTO other "
				"VALUES (1), (2)");
	rfx_primary_info(a.url, NULL, &ia);
	rfx_primary_info(b.url, NULL, &ib);
	ck_assert_str_ne(ia.database_id, ib.database_id);

	db = rfx_open(path, a.url, "sync_interval=0");
	sqlite3_close(db);
	snap_take(path, &s_db);
	snap_take(state_path, &s_state);

	db = rfx_open(path, b.url, "sync_interval=0");
	rth_exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, ia.database_id);
	RFX_ASSERT_HAS(msg, ib.database_id);
	status = rfx_status_json(db);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, ia.database_id);
	RFX_ASSERT_HAS(last, ib.database_id);
	json_decref(status);
	rth_exec_fails(db, "PRAGMA replite_sync", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, ib.database_id);
	/* The local content is a's, untouched. */
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(fixture_query_int(db,
					   "SELECT count(*) FROM sqlite_schema "
					   "WHERE name = 'other'"),
			 0);
	sqlite3_close(db);
	snap_assert_same(path, &s_db);
	snap_assert_same(state_path, &s_state);

	/* Back on its own primary, it syncs again. */
	rfx_primary_exec(a.url, "INSERT INTO t(b) VALUES ('more')");
	db = rfx_open(path, a.url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	sqlite3_close(db);

	server_fixture_stop(&a);
	server_fixture_stop(&b);
	free(state_path);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* The pragmas that would break a replica are refused and leave the files
 * alone; a plain SQLite connection reads the file alongside.  (Local writes
 * are allowed and pushed to the primary: test_replica_write.c.) */
START_TEST(test_refused_pragmas)
{
	struct rfx_env e;
	struct snap s_db, s_wal;
	sqlite3 *db, *plain;
	sqlite3_stmt *st;
	char msg[512];
	char *wal;

	rfx_env_start(&e, NULL);
	wal = rth_sibling(e.path, "-wal");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				    "INSERT INTO t(b) VALUES (1), (2), (3)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	snap_take(e.path, &s_db);
	snap_take(wal, &s_wal);

	rth_exec_fails(db, "PRAGMA journal_mode=DELETE", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "journal_mode=DELETE is refused");
	rth_exec_fails(db, "PRAGMA main.journal_mode=truncate", NULL, msg,
		       sizeof msg);
	RFX_ASSERT_HAS(msg, "is refused");
	rth_exec_fails(db, "PRAGMA locking_mode=EXCLUSIVE", NULL, msg,
		       sizeof msg);
	RFX_ASSERT_HAS(msg, "locking_mode=EXCLUSIVE is refused");
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	fixture_exec(db, "PRAGMA locking_mode=NORMAL");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	snap_assert_same(e.path, &s_db);
	snap_assert_same(wal, &s_wal);

	/* A plain connection (no replite) reads the replica while it is
	 * open, and sees the syncs. */
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 3);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (4), (5)");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(plain, "SELECT count(*) FROM t"), 5);
	fixture_assert_integrity(plain);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 5);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	free(wal);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {
	    test_concurrent_open, test_remembered_url, test_refused_opens,
	    test_refused_other_primary, test_refused_pragmas};

	return rfx_run_tests("replica_open", tests,
			     sizeof tests / sizeof tests[0]);
}
