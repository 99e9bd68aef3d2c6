/* A replica resuming against a real primary on loopback: after a crash in
 * the middle of a sync (frame_hwm) or of a bootstrap, after being closed
 * while the primary moves on, reopened and opened in another process (only
 * the new frames pulled, one full image in all), and across the primary's
 * generations (rollovers while syncing, closed and live, and a dropped
 * generation, which bootstraps again).
 *
 * Each test is its own test case: CK_RUN_CASE=test_resume runs one.  No
 * assertion depends on timing: waits poll with deadlines of several
 * seconds, and latencies are only printed. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "replica_test_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

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

/* Set an integer field of the state file beside db_path (as a crash in
 * the middle of a sync would leave it). */
static void state_set_int(const char *db_path, const char *key, int64_t v)
{
	char *path = rth_sibling(db_path, "-replite");
	json_t *o = rfx_state_json(db_path);

	ck_assert_int_eq(json_object_set_new(o, key, json_integer(v)), 0);
	ck_assert_int_eq(json_dump_file(o, path, JSON_COMPACT), 0);
	json_decref(o);
	free(path);
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
/* 1. a crash in the middle of a sync */

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
	rth_exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
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
		char *state_path = rth_sibling(e.path, "-replite");
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

/* ---------------------------------------------------------------------- */
/* 2. resume */

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

	rth_make_seed_file(seed, 600);
	server_fixture_start(&srv, args);
	db = rfx_open(path, srv.url, "sync_interval=0");
	pages = fixture_query_int(db, "PRAGMA page_count");
	ck_assert_int_gt(pages, 200);
	ck_assert_int_ge(rfx_status_int(db, "frames_pulled"), pages - 1);
	rth_assert_same_seed(db, srv.url);
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
	rth_assert_same_seed(db, srv.url);

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
	rth_assert_same_seed(db, srv.url);
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
/* 3. generations */

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
	rfx_primary_exec(e.srv.url, rth_seed_schema);
	rows = rth_seed_rows(1, 20);
	rfx_primary_exec(e.srv.url, rows);
	sqlite3_free(rows);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	rth_assert_same_seed(db, e.srv.url);

	/* Syncing in between rollovers. */
	for (i = 0; i < 3; i++) {
		rfx_primary_info(e.srv.url, NULL, &info);
		write_until_generation(e.srv.url, info.generation + 1,
				       &next_id);
		sync_and_check_position(db, e.srv.url);
		rth_assert_same_seed(db, e.srv.url);
	}
	/* Several rollovers while closed. */
	sqlite3_close(db);
	rfx_primary_info(e.srv.url, NULL, &info);
	write_until_generation(e.srv.url, info.generation + 3, &next_id);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sync_and_check_position(db, e.srv.url);
	rth_assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	sqlite3_close(db);

	/* Live sync through rollovers. */
	db = rfx_open(e.path, e.srv.url, NULL);
	rfx_primary_info(e.srv.url, NULL, &info);
	write_until_generation(e.srv.url, info.generation + 2, &next_id);
	rth_poll_until(db, "SELECT max(id) FROM items", next_id - 1, 10);
	sync_and_check_position(db, e.srv.url);
	rth_assert_same_seed(db, e.srv.url);
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
		ck_assert_msg(rfx_now_ms() - start < RTH_DEADLINE_MS,
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
		ck_assert_msg(rfx_now_ms() - start < RTH_DEADLINE_MS,
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
	rfx_primary_exec(e.srv.url, rth_seed_schema);
	rows = rth_seed_rows(1, 30);
	rfx_primary_exec(e.srv.url, rows);
	sqlite3_free(rows);
	wait_quiescent(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	rth_assert_same_seed(db, e.srv.url);
	gen = (uint32_t)rfx_status_int(db, "generation");
	sqlite3_close(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 1);

	/* Closed. */
	write_until_generation(e.srv.url, gen + 2, &next_id);
	wait_generation_gone(e.srv.url, gen);
	wait_quiescent(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	sync_and_check_position(db, e.srv.url);
	rth_assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 2);

	/* Open (no background sync): the image replaces the content under
	 * the open connection. */
	gen = (uint32_t)rfx_status_int(db, "generation");
	write_until_generation(e.srv.url, gen + 2, &next_id);
	wait_generation_gone(e.srv.url, gen);
	wait_quiescent(e.srv.url);
	sync_and_check_position(db, e.srv.url);
	rth_assert_same_seed(db, e.srv.url);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_log_count(&e.srv, RFX_LOG_EXPORT), 3);
	sqlite3_close(db);

	/* The file is sound for plain SQLite too. */
	db = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	fixture_assert_integrity(db);
	rth_assert_same_seed(db, e.srv.url);
	ck_assert_int_eq(rfx_plain_close(db), SQLITE_OK);
	rfx_env_stop(&e);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_frame_hwm_resume, test_resume,
				      test_generation_rollover,
				      test_generation_gone};

	return rfx_run_tests("replica_resume", tests,
			     sizeof tests / sizeof tests[0]);
}
