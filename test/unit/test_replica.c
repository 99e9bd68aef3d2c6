/* The replica read path against a real primary on loopback: bootstrap,
 * incremental, background and live sync, status, checkpoints, resume (also
 * after a crash), generation rollover and re-bootstrap, the remembered sync
 * URL, refusals, failures (primary down, restarted, swapped, bad tokens)
 * and a misbehaving primary (a fake HTTP server in a thread).
 *
 * Each test is its own test case: CK_RUN_CASE=test_resume runs one.  No
 * assertion depends on timing: waits poll with deadlines of several
 * seconds, and latencies are only printed. */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "include/replite.h"
#include "wal/walfmt.h"
#include "replica_fixture.h"
#include "server_fixture.h"

/* How long a wait for something asynchronous may take before the test
 * fails (never an expectation of speed). */
#define DEADLINE_MS 10000

/* ---------------------------------------------------------------------- */
/* small helpers */

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static char *sibling(const char *path, const char *suffix)
{
	char *out;

	ck_assert_int_ge(asprintf(&out, "%s%s", path, suffix), 0);
	return out;
}

/* What an open as a replica of a plain SQLite file with data says, with
 * a key (encrypted runs: the key is checked first) or without. */
static const char *not_a_replica(void)
{
	return "holds data but has no replica state file";
}

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
/* the primary */

/* The test data set: several tables (one WITHOUT ROWID), an index, and
 * blobs of every tenth item larger than a page (overflow chains). */
static const char seed_schema[] =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "qty INTEGER, data BLOB);"
    "CREATE INDEX items_name ON items(name, qty);"
    "CREATE TABLE tags(item INTEGER, tag TEXT, PRIMARY KEY(item, tag)) "
    "WITHOUT ROWID;"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)";

/* Rows lo..hi of the three tables (sqlite3_free). */
static char *seed_rows(int lo, int hi)
{
	char *sql = sqlite3_mprintf(
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO items(id, name, qty, data) SELECT i, "
	    "printf('item-%%05d', i), i * 7, randomblob(CASE WHEN i %% 10 = 0 "
	    "THEN 6000 + i * 13 ELSE 50 + i %% 200 END) FROM n;"
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO tags(item, tag) SELECT i, 'tag-' || "
	    "(i %% 7) FROM n;"
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO notes(id, body) SELECT i, "
	    "replace(hex(zeroblob(20 + i %% 300)), '00', 'ab') || i FROM n",
	    lo, hi, lo, hi, lo, hi);

	ck_assert_ptr_nonnull(sql);
	return sql;
}

/* A SQLite file holding the seed with rows 1..n, for --import. */
static void make_seed_file(const char *path, int n)
{
	char *rows = seed_rows(1, n);
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=4096");
	fixture_exec(db, seed_schema);
	fixture_exec(db, rows);
	sqlite3_close(db);
	sqlite3_free(rows);
}

/* Tables of the seed and, for each, an expression giving a row as text. */
static const char *const seed_tables[][2] = {
    {"items", "id || ',' || name || ',' || qty || ',' || hex(data)"},
    {"tags", "item || ',' || tag"},
    {"notes", "id || ',' || body"},
    {"sqlite_schema", "type || ',' || name || ',' || tbl_name || ',' || "
		      "rootpage || ',' || coalesce(sql, '')"},
};

static void assert_same_seed(sqlite3 *db, const char *url)
{
	size_t i;

	for (i = 0; i < sizeof seed_tables / sizeof seed_tables[0]; i++)
		rfx_assert_same_table(db, url, seed_tables[i][0],
				      seed_tables[i][1]);
}

/* Insert one item with a blob of blob_len bytes on the primary. */
static void primary_insert_item(const char *url, int id, int blob_len)
{
	char *sql = sqlite3_mprintf(
	    "INSERT INTO items(id, name, qty, data) VALUES (%d, "
	    "printf('item-%%05d', %d), %d, randomblob(%d))",
	    id, id, id * 7, blob_len);

	rfx_primary_exec(url, sql);
	sqlite3_free(sql);
}

/* ---------------------------------------------------------------------- */
/* the replica */

/* Set an integer field of the state file beside db_path (as a crash in
 * the middle of a sync would leave it). */
static void state_set_int(const char *db_path, const char *key, int64_t v)
{
	char *path = sibling(db_path, "-replite");
	json_t *o = rfx_state_json(db_path);

	ck_assert_int_eq(json_object_set_new(o, key, json_integer(v)), 0);
	ck_assert_int_eq(json_dump_file(o, path, JSON_COMPACT), 0);
	json_decref(o);
	free(path);
}

/* Run sql that must fail; its result code, the extended code and the
 * message. */
static int exec_fails(sqlite3 *db, const char *sql, int *xrc, char *msg,
		      size_t msg_len)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

	ck_assert_msg(rc != SQLITE_OK, "%s succeeded, expected a failure", sql);
	if (xrc != NULL)
		*xrc = sqlite3_extended_errcode(db);
	snprintf(msg, msg_len, "%s", err ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return rc;
}

/* Poll a local query until it returns want; fails after DEADLINE_MS.
 * Returns the milliseconds it took (for printing only). */
static int64_t poll_until(sqlite3 *db, const char *sql, int64_t want,
			  long every_ms)
{
	int64_t start = rfx_now_ms(), v;

	for (;;) {
		v = fixture_query_int(db, sql);
		if (v == want)
			return rfx_now_ms() - start;
		ck_assert_msg(rfx_now_ms() - start < DEADLINE_MS,
			      "%s is %lld after %d ms, expected %lld", sql,
			      (long long)v, DEADLINE_MS, (long long)want);
		rfx_sleep_ms(every_ms);
	}
}

/* Sync until the replica and the primary agree on the generation (a
 * rollover may happen right after a sync), then check the status against
 * /info. */
static void sync_and_check_position(sqlite3 *db, const char *url)
{
	struct rfx_info before, after;
	int tries;

	for (tries = 0; tries < 20; tries++) {
		rfx_primary_info(url, NULL, &before);
		rfx_sync(db);
		rfx_primary_info(url, NULL, &after);
		if (before.generation == after.generation &&
		    before.max_frame_no == after.max_frame_no)
			break;
		rfx_sleep_ms(300);
	}
	ck_assert_int_lt(tries, 20);
	ck_assert_int_eq(rfx_status_int(db, "generation"), after.generation);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), after.max_frame_no);
	ck_assert_int_eq(rfx_status_int(db, "primary_frame_no"),
			 after.max_frame_no);
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

	make_seed_file(seed, 150);
	server_fixture_start(&srv, args);
	/* Frames after the base image too. */
	rows = seed_rows(151, 180);
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
	assert_same_seed(db, srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);

	/* The state file: the primary's id, the URL, the position. */
	state_path = sibling(path, "-replite");
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
	assert_same_seed(db, srv.url);
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
	    exec_fails(db, "SELECT * FROM t2", NULL, msg, sizeof msg),
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
	poll_until(db, "SELECT count(*) FROM t", 3, 20);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES (4)");
	poll_until(db, "SELECT count(*) FROM t", 4, 20);
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
		poll_until(db, "SELECT count(*) FROM t", 5 + i, 2);
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
/* 4. status */

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

static int64_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
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
	ck_assert_int_eq(jint(s0, "generation"), info.generation);
	ck_assert_int_eq(jint(s0, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(jint(s0, "primary_frame_no"), info.max_frame_no);
	ck_assert_int_eq(jint(s0, "pending_frames"), 0);
	ck_assert(json_is_false(json_object_get(s0, "offline")));
	ck_assert(json_number_value(json_object_get(s0, "sync_interval")) ==
		  0.0);
	ck_assert(json_is_null(json_object_get(s0, "last_error")));
	ck_assert_int_gt(jint(s0, "frames_pulled"), 0);
	ck_assert_int_ge(jint(s0, "bytes_pulled"),
			 jint(s0, "frames_pulled") * 4096);
	ck_assert_int_ge(jint(s0, "last_sync_unix_ms"), before - 1000);
	ck_assert_int_le(jint(s0, "last_sync_unix_ms"), after + 1000);

	/* More frames: the counters grow, the position follows. */
	rfx_primary_exec(e.srv.url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 50) INSERT "
			 "INTO t(b) SELECT randomblob(3000) FROM n");
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_eq(rfx_sync(db), info.max_frame_no);
	s1 = rfx_status_json(db);
	assert_status_types(s1);
	ck_assert_int_eq(jint(s1, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(jint(s1, "primary_frame_no"), info.max_frame_no);
	ck_assert_int_ge(jint(s1, "frames_pulled"),
			 jint(s0, "frames_pulled") +
			     (info.max_frame_no - jint(s0, "frame_no")));
	ck_assert_int_ge(jint(s1, "bytes_pulled"),
			 jint(s0, "bytes_pulled") + 50 * 3000);
	ck_assert_int_ge(jint(s1, "last_sync_unix_ms"),
			 jint(s0, "last_sync_unix_ms"));

	/* PRAGMA replite_status: the same document. */
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA replite_status", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	sp = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	assert_status_types(sp);
	ck_assert_int_eq(jint(sp, "frame_no"), jint(s1, "frame_no"));
	ck_assert_int_eq(jint(sp, "frames_pulled"), jint(s1, "frames_pulled"));
	json_decref(sp);
	/* With a schema name; an unknown schema is an error. */
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT json_extract(replite_status('main'), "
				  "'$.frame_no')"),
	    info.max_frame_no);
	exec_fails(db, "SELECT replite_status('nosuch')", NULL, msg,
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
	exec_fails(plain, "SELECT replite_status()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	exec_fails(plain, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	sqlite3_close(plain);

	sqlite3_close(db);
	free(path2);
	free(path3);
	rfx_env_stop(&e);
}
END_TEST

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
	wal = sibling(e.path, "-wal");
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
						  DEADLINE_MS,
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
	exec_fails(db, "SELECT replite_sync('p')", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "not a replica");
	/* Nor may it be attached as one.  (The reason reaches sqlite3_log;
	 * ATTACH itself reports SQLite's generic "unable to open".) */
	uri = rfx_uri(plain_path, e.srv.url, "sync_interval=0");
	sql = sqlite3_mprintf("ATTACH %Q AS bad", uri);
	exec_fails(db, sql, NULL, msg, sizeof msg);
	printf("attach of a plain file as a replica: %s\n", msg);
	fflush(stdout);
	ck_assert_msg(logging, "cannot capture sqlite3_log (CK_FORK=no?)");
	ck_assert_msg(log_has(not_a_replica()),
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

/* After a crash in the middle of a sync the state file says frames up to
 * frame_hwm may be in the file: the next batch must reach at least there,
 * and is applied as one. */
START_TEST(test_frame_hwm_resume)
{
	struct rfx_env e;
	struct rfx_info a, b, c;
	char msg[1024];
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sqlite3_close(db);
	rfx_primary_info(e.srv.url, NULL, &a);
	ck_assert_int_eq(rfx_state_int(e.path, "frame_no"), a.max_frame_no);

	/* Two transactions; frame_hwm in the middle of the second. */
	rfx_primary_exec(e.srv.url,
			 "INSERT INTO t(b) VALUES (randomblob(9000))");
	rfx_primary_info(e.srv.url, NULL, &b);
	rfx_primary_exec(e.srv.url,
			 "INSERT INTO t(b) VALUES (randomblob(9000))");
	rfx_primary_info(e.srv.url, NULL, &c);
	ck_assert_int_gt(c.max_frame_no, b.max_frame_no + 1);
	state_set_int(e.path, "frame_hwm", b.max_frame_no + 1);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(rfx_sync(db), c.max_frame_no);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	rfx_assert_same_table(db, e.srv.url, "t", "a || ',' || hex(b)");
	fixture_assert_integrity(db);
	sqlite3_close(db);
	ck_assert_int_eq(rfx_state_int(e.path, "frame_no"), c.max_frame_no);
	ck_assert_int_eq(rfx_state_int(e.path, "frame_hwm"), c.max_frame_no);

	/* frame_hwm past the primary's last frame: nothing can be applied
	 * until the primary has that frame. */
	state_set_int(e.path, "frame_hwm", c.max_frame_no + 3);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	printf("frame_hwm past the primary's head: %s\n", msg);
	fflush(stdout);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(rfx_state_int(e.path, "frame_no"), c.max_frame_no);
	rfx_primary_exec(e.srv.url,
			 "INSERT INTO t(b) VALUES (randomblob(9000))");
	rfx_primary_exec(e.srv.url,
			 "INSERT INTO t(b) VALUES (randomblob(9000))");
	rfx_primary_info(e.srv.url, NULL, &c);
	ck_assert_int_eq(rfx_sync(db), c.max_frame_no);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	rfx_assert_same_table(db, e.srv.url, "t", "a || ',' || hex(b)");
	fixture_assert_integrity(db);
	sqlite3_close(db);

	/* A crash during a bootstrap: the next open bootstraps again. */
	{
		char *state_path = sibling(e.path, "-replite");
		json_t *o = rfx_state_json(e.path);

		json_object_set_new(o, "bootstrapping", json_true());
		ck_assert_int_eq(json_dump_file(o, state_path, JSON_COMPACT),
				 0);
		json_decref(o);
		free(state_path);
	}
	rfx_primary_exec(e.srv.url, "DELETE FROM t WHERE a = 1");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	/* The base image and every frame since, pulled again. */
	ck_assert_int_gt(rfx_status_int(db, "frames_pulled"),
			 rfx_status_int(db, "frame_no"));
	rfx_assert_same_table(db, e.srv.url, "t", "a || ',' || hex(b)");
	fixture_assert_integrity(db);
	sqlite3_close(db);
	{
		json_t *o = rfx_state_json(e.path);

		ck_assert_ptr_null(json_object_get(o, "bootstrapping"));
		json_decref(o);
	}
	rfx_env_stop(&e);
}
END_TEST

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

	make_seed_file(seed, 300);
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
	assert_same_seed(db, srv.url);
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

/* ---------------------------------------------------------------------- */
/* 5. resume */

/* In a child process (a real restart): open the replica with only the
 * remembered URL, sync, and check the item count.  Exit code 0 if so. */
static int child_resume(const char *path, int want_items)
{
	char *uri = rfx_uri(path, NULL, "sync_interval=0");
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int rc = 1;

	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_exec(db, "SELECT replite_sync()", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db,
			       "SELECT (SELECT count(*) FROM items), "
			       "json_extract(replite_status(), "
			       "'$.frames_pulled') < 100",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	if (sqlite3_column_int(st, 0) == want_items &&
	    sqlite3_column_int(st, 1) == 1)
		rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	sqlite3_free(uri);
	return rc;
}

START_TEST(test_resume)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *seed = fixture_path(dir, "seed.db");
	char *path = fixture_path(dir, "app.db");
	const char *args[] = {"--import", seed, "--log-requests", NULL};
	sqlite3 *db, *db2;
	int64_t pages, frames, bytes;
	int status;
	pid_t pid;

	make_seed_file(seed, 600);
	server_fixture_start(&srv, args);
	db = rfx_open(path, srv.url, "sync_interval=0");
	pages = fixture_query_int(db, "PRAGMA page_count");
	ck_assert_int_gt(pages, 200);
	ck_assert_int_ge(rfx_status_int(db, "frames_pulled"), pages - 1);
	assert_same_seed(db, srv.url);
	sqlite3_close(db);
	ck_assert_int_eq(rfx_log_count(&srv, RFX_LOG_EXPORT), 1);

	/* Closed while the primary moves on: the reopen pulls only the new
	 * frames. */
	primary_insert_item(srv.url, 1001, 100);
	primary_insert_item(srv.url, 1002, 5000);
	db = rfx_open(path, srv.url, "sync_interval=0");
	rfx_sync(db);
	frames = rfx_status_int(db, "frames_pulled");
	bytes = rfx_status_int(db, "bytes_pulled");
	printf("resume: pulled %lld frames, %lld bytes (database: %lld "
	       "pages)\n",
	       (long long)frames, (long long)bytes, (long long)pages);
	fflush(stdout);
	ck_assert_int_gt(frames, 0);
	ck_assert_int_lt(frames, 20);
	ck_assert_int_lt(bytes, pages * 4096 / 10);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 602);
	assert_same_seed(db, srv.url);

	/* "Restart": every connection closed, then opened again. */
	db2 = rfx_open(path, srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db2, "SELECT count(*) FROM items"),
			 602);
	sqlite3_close(db);
	sqlite3_close(db2);
	primary_insert_item(srv.url, 1003, 100);
	db = rfx_open(path, srv.url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_lt(rfx_status_int(db, "frames_pulled"), 20);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 603);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	/* And in another process. */
	primary_insert_item(srv.url, 1004, 100);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_resume(path, 604));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the replica did not resume in a child process");
	db = rfx_open(path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM items"),
			 604);
	assert_same_seed(db, srv.url);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	/* One full image in all. */
	ck_assert_int_eq(rfx_log_count(&srv, RFX_LOG_EXPORT), 1);
	server_fixture_stop(&srv);
	free(seed);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 6. generations */

/* Insert items on the primary (from *next_id on) until it reaches
 * generation target. */
static void write_until_generation(const char *url, uint32_t target,
				   int *next_id)
{
	int64_t start = rfx_now_ms();
	struct rfx_info info;

	for (;;) {
		rfx_primary_info(url, NULL, &info);
		if (info.generation >= target)
			return;
		ck_assert_msg(rfx_now_ms() - start < 30000,
			      "the primary did not reach generation %u (at %u)",
			      target, info.generation);
		primary_insert_item(url, (*next_id)++, 3000);
		rfx_sleep_ms(20);
	}
}

START_TEST(test_generation_rollover)
{
	struct rfx_env e;
	const char *args[] = {"--generation-frames", "20", "--log-requests",
			      NULL};
	int next_id = 1000, i;
	struct rfx_info info;
	char *rows;
	sqlite3 *db;

	rfx_env_start(&e, args);
	rfx_primary_exec(e.srv.url, seed_schema);
	rows = seed_rows(1, 20);
	rfx_primary_exec(e.srv.url, rows);
	sqlite3_free(rows);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	assert_same_seed(db, e.srv.url);

	/* Syncing in between rollovers. */
	for (i = 0; i < 3; i++) {
		rfx_primary_info(e.srv.url, NULL, &info);
		write_until_generation(e.srv.url, info.generation + 1,
				       &next_id);
		sync_and_check_position(db, e.srv.url);
		assert_same_seed(db, e.srv.url);
	}
	/* Several rollovers while closed. */
	sqlite3_close(db);
	rfx_primary_info(e.srv.url, NULL, &info);
	write_until_generation(e.srv.url, info.generation + 3, &next_id);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sync_and_check_position(db, e.srv.url);
	assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	/* Live sync through rollovers. */
	db = rfx_open(e.path, e.srv.url, NULL);
	rfx_primary_info(e.srv.url, NULL, &info);
	write_until_generation(e.srv.url, info.generation + 2, &next_id);
	poll_until(db, "SELECT max(id) FROM items", next_id - 1, 10);
	sync_and_check_position(db, e.srv.url);
	assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_int_ge(info.generation, 7);
	/* Never a second full image. */
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 1);
	rfx_env_stop(&e);
}
END_TEST

/* Wait until the primary no longer holds generation gen. */
static void wait_generation_gone(const char *url, uint32_t gen)
{
	int64_t start = rfx_now_ms();
	struct rfx_info info;

	for (;;) {
		rfx_primary_info(url, NULL, &info);
		if (info.oldest_generation > gen)
			return;
		ck_assert_msg(rfx_now_ms() - start < DEADLINE_MS,
			      "generation %u was not dropped", gen);
		rfx_sleep_ms(50);
	}
}

/* Wait until the primary stops rolling over (its generation has fewer
 * frames than --generation-frames 20 and stays put across maintenance
 * rounds), so that a full image is not dropped while a replica fetches
 * it. */
static void wait_quiescent(const char *url)
{
	int64_t start = rfx_now_ms();
	struct rfx_info a, b;

	for (;;) {
		rfx_primary_info(url, NULL, &a);
		rfx_sleep_ms(600);
		rfx_primary_info(url, NULL, &b);
		if (a.generation == b.generation && b.max_frame_no < 20)
			return;
		ck_assert_msg(rfx_now_ms() - start < DEADLINE_MS,
			      "the primary keeps rolling over");
	}
}

/* A replica whose generation the primary dropped bootstraps again, closed
 * or open. */
START_TEST(test_generation_gone)
{
	struct rfx_env e;
	const char *args[] = {"--generation-frames", "20", "--retention", "0",
			      "--log-requests",      NULL};
	int next_id = 1000;
	uint32_t gen;
	char *rows;
	sqlite3 *db;

	rfx_env_start(&e, args);
	rfx_primary_exec(e.srv.url, seed_schema);
	rows = seed_rows(1, 30);
	rfx_primary_exec(e.srv.url, rows);
	sqlite3_free(rows);
	wait_quiescent(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	assert_same_seed(db, e.srv.url);
	gen = (uint32_t)rfx_status_int(db, "generation");
	sqlite3_close(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 1);

	/* Closed. */
	write_until_generation(e.srv.url, gen + 2, &next_id);
	wait_generation_gone(e.srv.url, gen);
	wait_quiescent(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sync_and_check_position(db, e.srv.url);
	assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 2);

	/* Open (no background sync): the image replaces the content under
	 * the open connection. */
	gen = (uint32_t)rfx_status_int(db, "generation");
	write_until_generation(e.srv.url, gen + 2, &next_id);
	wait_generation_gone(e.srv.url, gen);
	wait_quiescent(e.srv.url);
	sync_and_check_position(db, e.srv.url);
	assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 3);
	sqlite3_close(db);

	/* The file is sound for plain SQLite too. */
	db = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	fixture_assert_integrity(db);
	assert_same_seed(db, e.srv.url);
	ck_assert_int_eq(rfx_plain_close(db), SQLITE_OK);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 7. the remembered sync URL */

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
	poll_until(db, "SELECT count(*) FROM t", 3, 10);
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
/* 8. refusals */

/* Opening path must fail with a message containing needle, and leave the
 * file, its WAL and its state file as they were. */
static void assert_open_refused(const char *path, const char *url,
				const char *extra, const char *needle)
{
	char *wal = sibling(path, "-wal"), *state = sibling(path, "-replite");
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
			    not_a_replica());
	/* Also in WAL mode, with the data still in the WAL. */
	ck_assert_int_eq(sqlite3_open(plain_path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA journal_mode=WAL");
	ck_assert_int_eq(sqlite3_wal_autocheckpoint(db, 0), SQLITE_OK);
	fixture_exec(db, "INSERT INTO mine VALUES (43)");
	assert_open_refused(plain_path, e.srv.url, "sync_interval=0",
			    not_a_replica());
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
		char *state = sibling(e.path, "-replite");
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
	char *state_path = sibling(path, "-replite");
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
	exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, ia.database_id);
	RFX_ASSERT_HAS(msg, ib.database_id);
	status = rfx_status_json(db);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, ia.database_id);
	RFX_ASSERT_HAS(last, ib.database_id);
	json_decref(status);
	exec_fails(db, "PRAGMA replite_sync", NULL, msg, sizeof msg);
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
	wal = sibling(e.path, "-wal");
	rfx_primary_exec(e.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				    "INSERT INTO t(b) VALUES (1), (2), (3)");
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	snap_take(e.path, &s_db);
	snap_take(wal, &s_wal);

	exec_fails(db, "PRAGMA journal_mode=DELETE", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, "journal_mode=DELETE is refused");
	exec_fails(db, "PRAGMA main.journal_mode=truncate", NULL, msg,
		   sizeof msg);
	RFX_ASSERT_HAS(msg, "is refused");
	exec_fails(db, "PRAGMA locking_mode=EXCLUSIVE", NULL, msg, sizeof msg);
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

/* ---------------------------------------------------------------------- */
/* 9. failures */

START_TEST(test_primary_down)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *path2 = fixture_path(dir, "never.db");
	char url[64], hostport[64], msg[1024];
	json_t *status;
	const char *last;
	sqlite3 *db, *db2;
	char *err = NULL;

	server_fixture_start(&srv, NULL);
	snprintf(url, sizeof url, "%s", srv.url);
	snprintf(hostport, sizeof hostport, "%s", url + strlen("http://"));
	rfx_primary_exec(url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
			      "INSERT INTO t(b) VALUES (1), (2)");
	db = rfx_open(path, url, "sync_interval=0");
	db2 = rfx_open(path, url, "sync_interval=0");
	server_fixture_stop(&srv);

	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, hostport);
	RFX_ASSERT_HAS(msg, "cannot reach the primary");
	status = rfx_status_json(db2);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, hostport);
	json_decref(status);
	exec_fails(db2, "PRAGMA replite_sync", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, hostport);
	/* Reads keep working on the last state. */
	ck_assert_int_eq(fixture_query_int(db2, "SELECT sum(b) FROM t"), 3);
	fixture_assert_integrity(db);
	sqlite3_close(db2);
	sqlite3_close(db);

	/* A closed replica reopens (and reads) with the primary down. */
	db = rfx_open(path, NULL, NULL);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	sqlite3_close(db);

	/* A new replica cannot open: it has nothing to read. */
	ck_assert_int_ne(rfx_try_open(path2, url, NULL, &db, &err), SQLITE_OK);
	RFX_ASSERT_HAS(err, hostport);
	RFX_ASSERT_HAS(err, "never synced");
	free(err);

	free(path);
	free(path2);
	fixture_rmdir(dir);
}
END_TEST

/* The primary restarts: at the same address the background sync recovers by
 * itself; at another address, opening with the new URL records it. */
START_TEST(test_primary_restart)
{
	struct rfx_durable d;
	int64_t start;
	json_t *status, *state;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	rfx_primary_exec(d.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				    "INSERT INTO t(b) VALUES (1)");
	db = rfx_open(d.path, d.srv.url, "sync_interval=0.2");
	server_fixture_stop(&d.srv);

	/* Down: the background sync reports it, reads go on. */
	start = rfx_now_ms();
	for (;;) {
		const char *last;

		status = rfx_status_json(db);
		last = json_string_value(json_object_get(status, "last_error"));
		/* (The first error may be the primary's 503 as it stops.) */
		if (last != NULL && strstr(last, d.listen) != NULL)
			break;
		json_decref(status);
		ck_assert_msg(rfx_now_ms() - start < DEADLINE_MS,
			      "no last_error while the primary is down");
		rfx_sleep_ms(20);
	}
	RFX_ASSERT_HAS(json_string_value(json_object_get(status, "last_error")),
		       d.listen);
	json_decref(status);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);

	/* Back at the same address. */
	rfx_durable_restart(&d, 1);
	ck_assert_str_eq(d.srv.url, d.url);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (2)");
	poll_until(db, "SELECT count(*) FROM t", 2, 20);
	rfx_sync(db);
	status = rfx_status_json(db);
	ck_assert(json_is_null(json_object_get(status, "last_error")));
	json_decref(status);
	sqlite3_close(db);
	server_fixture_stop(&d.srv);

	/* At another address (port 0 again). */
	rfx_durable_restart(&d, 0);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (3)");
	db = rfx_open(d.path, d.srv.url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	sqlite3_close(db);
	state = rfx_state_json(d.path);
	ck_assert_str_eq(json_string_value(json_object_get(state, "sync_url")),
			 d.srv.url);
	json_decref(state);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (4)");
	db = rfx_open(d.path, NULL, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* Another database answers at the primary's address while a replica is
 * open (a different primary started on the same port): the replica must
 * notice the database id, not apply its frames. */
START_TEST(test_primary_swapped)
{
	struct server_fixture a, b;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char listen[64], msg[1024];
	const char *args[] = {"--listen", listen, NULL};
	struct rfx_info ia, ib;
	sqlite3 *db;
	int i;

	server_fixture_start(&a, NULL);
	snprintf(listen, sizeof listen, "%s", a.url + strlen("http://"));
	rfx_primary_exec(a.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				"INSERT INTO t(b) VALUES ('a')");
	rfx_primary_info(a.url, NULL, &ia);
	db = rfx_open(path, a.url, "sync_interval=0");
	ck_assert_int_eq(rfx_sync(db), ia.max_frame_no);
	server_fixture_stop(&a);

	server_fixture_start(&b, args);
	ck_assert_str_eq(b.url + strlen("http://"), listen);
	rfx_primary_exec(b.url, "CREATE TABLE other(x, y)");
	for (i = 0; i < 5; i++)
		rfx_primary_exec(b.url, "INSERT INTO other VALUES "
					"(randomblob(5000), 'b')");
	rfx_primary_info(b.url, NULL, &ib);
	ck_assert_str_ne(ia.database_id, ib.database_id);
	ck_assert_int_gt(ib.max_frame_no, ia.max_frame_no);

	if (sqlite3_exec(db, "SELECT replite_sync()", NULL, NULL, NULL) ==
	    SQLITE_OK) {
		/* Describe the damage for the report. */
		char integrity[256] = "?", names[256] = "";
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
				       NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			snprintf(integrity, sizeof integrity, "%s",
				 sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (sqlite3_prepare_v2(db,
				       "SELECT group_concat(name) FROM "
				       "sqlite_schema",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			snprintf(names, sizeof names, "%s",
				 sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		ck_abort_msg("the replica of %s synced from %s (another "
			     "database at the same address): frame_no now "
			     "%lld, tables now [%s], integrity_check: %s",
			     ia.database_id, ib.database_id,
			     (long long)rfx_state_int(path, "frame_no"), names,
			     integrity);
	}
	ck_assert_int_ne(sqlite3_errcode(db), SQLITE_OK);
	snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
	RFX_ASSERT_HAS(msg, ia.database_id);
	RFX_ASSERT_HAS(msg, ib.database_id);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_state_int(path, "frame_no"), ia.max_frame_no);
	sqlite3_close(db);
	server_fixture_stop(&b);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_auth)
{
	struct rfx_env e;
	char *key, *path2, *err = NULL, *token, *extra;
	sqlite3 *db;

	if (!rfx_env_start_auth(&e, "test_auth", &key))
		return;
	path2 = fixture_path(e.dir, "env.db");

	/* No token. */
	ck_assert_int_ne(
	    rfx_try_open(e.path, e.srv.url, "sync_interval=0", &db, &err),
	    SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	RFX_ASSERT_HAS(err, "token");
	free(err);
	/* A token that is not one. */
	ck_assert_int_ne(rfx_try_open(e.path, e.srv.url,
				      "sync_interval=0&auth_token=abc.def.ghi",
				      &db, &err),
			 SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	RFX_ASSERT_HAS(err, "token");
	free(err);
	/* An expired one. */
	token = rfx_sign_token(e.dir, key, "{\"a\":\"ro\",\"exp\":1000}");
	ck_assert_int_ge(
	    asprintf(&extra, "sync_interval=0&auth_token=%s", token), 0);
	ck_assert_int_ne(rfx_try_open(e.path, e.srv.url, extra, &db, &err),
			 SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	ck_assert_ptr_null(strstr(err, token)); /* secrets are not quoted */
	free(err);
	free(extra);
	free(token);

	/* A valid read-only token, in the URI. */
	token = rfx_sign_token(e.dir, key, "{\"a\":\"ro\"}");
	ck_assert_int_ge(
	    asprintf(&extra, "sync_interval=0&auth_token=%s", token), 0);
	db = rfx_open(e.path, e.srv.url, extra);
	ck_assert_int_ge(rfx_sync(db), 0);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
	sqlite3_close(db);
	free(extra);
	/* And from REPLITE_AUTH_TOKEN. */
	ck_assert_int_eq(setenv("REPLITE_AUTH_TOKEN", token, 1), 0);
	db = rfx_open(path2, e.srv.url, "sync_interval=0");
	ck_assert_int_ge(rfx_sync(db), 0);
	sqlite3_close(db);
	unsetenv("REPLITE_AUTH_TOKEN");
	free(token);

	free(key);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 10. a primary that sends bad frames */

enum fake_mode {
	FAKE_CAUGHT_UP, /* /sync: 400 {"generation": 1} */
	FAKE_TRUNCATED, /* /sync: a body that is not whole frames */
	FAKE_PAGE_ZERO, /* /sync: a frame for page 0 */
	FAKE_NO_COMMIT, /* /sync: a frame with no commit frame, then none */
};

struct fake_primary {
	int fd;
	char url[64];
	pthread_t thread;
	pthread_mutex_t mu;
	int stop;
	enum fake_mode mode;
	int syncs; /* /sync requests answered */
	char *image;
	size_t image_len;
};

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* extra: "" or one more header line ending in \r\n. */
static void reply_with(int fd, int status, const char *type, const char *extra,
		       const void *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d X\r\nContent-Type: %s\r\n%s"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, extra, len);

	send_all(fd, head, (size_t)n);
	send_all(fd, body, len);
}

static void reply(int fd, int status, const char *type, const void *body,
		  size_t len)
{
	reply_with(fd, status, type, "", body, len);
}

/* The fake's frames carry a checksum chain as a replite primary's do
 * (X-Replite-Chain), so that they fail only for what each mode breaks. */
static const uint32_t fake_salt[2] = {0x5a17, 0x5a18};
static const uint32_t fake_chain_in[2] = {0xc0ffee, 0xbeef};
#define FAKE_CHAIN_HEADER                                                      \
	"X-Replite-Chain: 1-00005a17-00005a18-00c0ffee-0000beef\r\n"

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void fake_serve(struct fake_primary *f, int fd)
{
	static const char info[] =
	    "{\"current_generation\":1,\"database_id\":\"fake-primary\","
	    "\"max_frame_no\":0,\"oldest_generation\":1}";
	static const char caught_up[] =
	    "{\"generation\":1,\"message\":\"no more frames\"}";
	char req[4096], path[1024];
	unsigned int gen, start, end;
	size_t got = 0;
	enum fake_mode mode;
	unsigned char *frames;

	while (got < sizeof req - 1) {
		ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if (sscanf(req, "GET %1023s", path) != 1) {
		reply(fd, 405, "text/plain", "", 0);
		return;
	}
	path[strcspn(path, "?")] = '\0';
	if (strcmp(path, "/info") == 0) {
		reply(fd, 200, "application/json", info, strlen(info));
		return;
	}
	if (strcmp(path, "/export/1") == 0) {
		char sum[DBSUM_TEXT_SIZE], extra[64];
		dbsum_format(
		    dbsum_image((const uint8_t *)f->image, f->image_len, 4096),
		    sum);
		snprintf(extra, sizeof extra, "X-Replite-Checksum: %s\r\n",
			 sum);
		reply_with(fd, 200, "application/octet-stream", extra, f->image,
			   f->image_len);
		return;
	}
	if (sscanf(path, "/sync/%u/%u/%u", &gen, &start, &end) != 3) {
		reply(fd, 404, "application/json", "{}", 2);
		return;
	}
	pthread_mutex_lock(&f->mu);
	mode = f->mode;
	f->syncs++;
	pthread_mutex_unlock(&f->mu);
	/* Two frames' room: a valid page 2 image (page 2 of the export). */
	frames = calloc(2, 4120);
	if (frames == NULL)
		return;
	put32(frames, 2);
	memcpy(frames + 24, f->image + 4096, 4096);
	switch (mode) {
	case FAKE_CAUGHT_UP:
		reply(fd, 400, "application/json", caught_up,
		      strlen(caught_up));
		break;
	case FAKE_TRUNCATED:
		put32(frames + 4, 2); /* a commit frame, cut short */
		reply(fd, 200, "application/octet-stream", frames, 4120 + 100);
		break;
	case FAKE_PAGE_ZERO:
		put32(frames, 0);
		put32(frames + 4, 2);
		reply(fd, 200, "application/octet-stream", frames, 4120);
		break;
	case FAKE_NO_COMMIT:
		if (start == 1) {
			uint32_t chain[2] = {fake_chain_in[0],
					     fake_chain_in[1]};
			walfmt_frame_encode(1, fake_salt, chain, 2, 0,
					    frames + 24, 4096, frames);
			reply_with(fd, 200, "application/octet-stream",
				   FAKE_CHAIN_HEADER, frames, 4120);
		} else {
			reply(fd, 400, "application/json", caught_up,
			      strlen(caught_up));
		}
		break;
	}
	free(frames);
}

static void *fake_main(void *arg)
{
	struct fake_primary *f = arg;

	for (;;) {
		struct pollfd pfd = {f->fd, POLLIN, 0};
		int stop, c;

		pthread_mutex_lock(&f->mu);
		stop = f->stop;
		pthread_mutex_unlock(&f->mu);
		if (stop)
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		c = accept(f->fd, NULL, NULL);
		if (c < 0)
			continue;
		fake_serve(f, c);
		close(c);
	}
	return NULL;
}

static void fake_set_mode(struct fake_primary *f, enum fake_mode mode)
{
	pthread_mutex_lock(&f->mu);
	f->mode = mode;
	pthread_mutex_unlock(&f->mu);
}

/* A 4096-byte-page database with 3 rows in t, as the fake's image. */
static void fake_start(struct fake_primary *f, const char *dir)
{
	char *img_path = fixture_path(dir, "image.db");
	struct sockaddr_in addr = {0};
	socklen_t alen = sizeof addr;
	sqlite3 *db;

	memset(f, 0, sizeof *f);
	ck_assert_int_eq(sqlite3_open(img_path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=4096; CREATE TABLE t(x); INSERT "
			 "INTO t VALUES (10), (20), (30)");
	sqlite3_close(db);
	f->image = rfx_slurp(img_path, &f->image_len);
	ck_assert_ptr_nonnull(f->image);
	ck_assert_uint_eq(f->image_len, 2 * 4096);
	free(img_path);

	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(f->fd, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&addr, sizeof addr), 0);
	ck_assert_int_eq(listen(f->fd, 16), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&addr, &alen),
			 0);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d",
		 ntohs(addr.sin_port));
	pthread_mutex_init(&f->mu, NULL);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake_primary *f)
{
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	close(f->fd);
	pthread_mutex_destroy(&f->mu);
	free(f->image);
}

/* A failed sync from the fake: the error names needle, nothing is applied,
 * reads still work. */
static void assert_bad_sync(sqlite3 *db, const char *path, const char *needle)
{
	json_t *status;
	const char *last;
	char msg[1024];

	exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, needle);
	status = rfx_status_json(db);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, needle);
	ck_assert_int_eq(jint(status, "frame_no"), 0);
	json_decref(status);
	ck_assert_int_eq(rfx_state_int(path, "frame_no"), 0);
	ck_assert_int_eq(rfx_state_int(path, "frame_hwm"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM "
					       "sqlite_schema"),
			 1);
	fixture_assert_integrity(db);
}

START_TEST(test_bad_frames)
{
	struct fake_primary f;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	json_t *status, *state;
	sqlite3 *db;

	fake_start(&f, dir);
	db = rfx_open(path, f.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	state = rfx_state_json(path);
	ck_assert_str_eq(
	    json_string_value(json_object_get(state, "database_id")),
	    "fake-primary");
	json_decref(state);

	fake_set_mode(&f, FAKE_TRUNCATED);
	assert_bad_sync(db, path, "not a multiple of the frame size");
	fake_set_mode(&f, FAKE_PAGE_ZERO);
	assert_bad_sync(db, path, "has page number 0");
	fake_set_mode(&f, FAKE_NO_COMMIT);
	assert_bad_sync(db, path, "no commit frame");

	/* A sane answer again: healthy. */
	fake_set_mode(&f, FAKE_CAUGHT_UP);
	ck_assert_int_eq(rfx_sync(db), 0);
	status = rfx_status_json(db);
	ck_assert(json_is_null(json_object_get(status, "last_error")));
	json_decref(status);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	sqlite3_close(db);
	fake_stop(&f);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_bootstrap_and_incremental,
				      test_bootstrap_content,
				      test_incremental_sync,
				      test_background_sync,
				      test_status,
				      test_checkpoints,
				      test_attached_replica,
				      test_large_transaction,
				      test_consistent_reads,
				      test_frame_hwm_resume,
				      test_concurrent_open,
				      test_default_busy_timeout,
				      test_resume,
				      test_generation_rollover,
				      test_generation_gone,
				      test_remembered_url,
				      test_refused_opens,
				      test_refused_other_primary,
				      test_refused_pragmas,
				      test_primary_down,
				      test_primary_restart,
				      test_primary_swapped,
				      test_auth,
				      test_bad_frames};

	return rfx_run_tests("replica", tests, sizeof tests / sizeof tests[0]);
}
