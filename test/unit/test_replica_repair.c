/* A replica whose local file no longer matches the primary repairs itself
 * with a full image, and says why: written by a plain SQLite connection, or
 * ahead of a primary that lost transactions. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/replica_state.h"

static void seed(const char *url)
{
	rfx_primary_exec(url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(url, "INSERT INTO t(b) VALUES ('one'), ('two')");
}

START_TEST(test_foreign_write_is_repaired)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	sqlite3 *db, *plain;
	char *msg;

	server_fixture_start(&srv, NULL);
	seed(srv.url);
	db = rfx_open(path, srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);

	/* Another program writes to the replica file behind replite's back. */
	ck_assert_int_eq(
	    sqlite3_open_v2(path, &plain, SQLITE_OPEN_READWRITE, NULL),
	    SQLITE_OK);
	fixture_exec(plain, "INSERT INTO t(b) VALUES ('foreign')");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);

	/* The next sync refuses to apply on top of it, and says why. */
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('three')");
	msg = rfx_sync_error(db);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, "written by something other than replite"),
		      "%s", msg);
	free(msg);
	msg = rfx_status_text(db);
	ck_assert_msg(strstr(msg, "other than replite") != NULL, "%s", msg);
	free(msg);

	/* The sync after that downloads the database again: exactly the
	 * primary's rows, the foreign one gone. */
	msg = rfx_sync_error(db);
	ck_assert_msg(msg == NULL, "%s", msg);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM t WHERE b = 'foreign'"),
	    0);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM t WHERE b = 'three'"),
	    1);
	fixture_assert_integrity(db);
	/* And it stays in sync incrementally afterwards. */
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('four')");
	ck_assert_int_gt(rfx_sync(db), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	sqlite3_close(plain);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* The replica applied frames the primary no longer has (a primary restored
 * from an older backup): simulated by moving the recorded position past the
 * primary's head. */
START_TEST(test_ahead_of_primary_is_repaired)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *state_path = replica_state_path(path);
	struct replica_state st;
	char err[512], *msg;
	sqlite3 *db;

	server_fixture_start(&srv, NULL);
	seed(srv.url);
	db = rfx_open(path, srv.url, "sync_interval=0");
	sqlite3_close(db);
	ck_assert_int_eq(replica_state_load(state_path, &st, err, sizeof err),
			 0);
	st.frame_no += 10;
	st.frame_hwm = st.frame_no;
	ck_assert_int_eq(replica_state_save(state_path, &st, err, sizeof err),
			 0);
	replica_state_free(&st);

	db = rfx_open(path, NULL, "sync_interval=0");
	msg = rfx_sync_error(db);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, "ahead of the primary"), "%s", msg);
	free(msg);
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('three')");
	msg = rfx_sync_error(db);
	ck_assert_msg(msg == NULL, "%s", msg);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"),
			 rfx_status_int(db, "primary_frame_no"));
	fixture_assert_integrity(db);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(state_path);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* The database file was deleted but its state file was kept: the state
 * describes content that is gone, so the replica downloads it again. */
START_TEST(test_deleted_database_is_restored)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *wal = fixture_path(dir, "app.db-wal");
	sqlite3 *db;

	server_fixture_start(&srv, NULL);
	seed(srv.url);
	db = rfx_open(path, srv.url, "sync_interval=0");
	sqlite3_close(db);
	ck_assert_int_eq(unlink(path), 0);
	unlink(wal);
	db = rfx_open(path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(wal);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* A file whose full image was applied but whose frames were not yet (its
 * first sync was interrupted, or another process is still syncing it):
 * consistent but behind, so an open waits for a sync even with
 * sync_interval=0, and the flag is cleared once caught up. */
START_TEST(test_catching_up_file_waits_for_a_sync)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *state_path = replica_state_path(path);
	struct replica_state st;
	char err[512];
	sqlite3 *db;

	server_fixture_start(&srv, NULL);
	seed(srv.url);
	db = rfx_open(path, srv.url, "sync_interval=0");
	sqlite3_close(db);
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('three')");
	ck_assert_int_eq(replica_state_load(state_path, &st, err, sizeof err),
			 0);
	ck_assert_int_eq(st.catching_up, 0);
	st.catching_up = 1;
	ck_assert_int_eq(replica_state_save(state_path, &st, err, sizeof err),
			 0);
	replica_state_free(&st);

	db = rfx_open(path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(replica_state_load(state_path, &st, err, sizeof err),
			 0);
	ck_assert_int_eq(st.catching_up, 0);
	replica_state_free(&st);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(state_path);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica_repair");
	TCase *tc = tcase_create("repair");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_foreign_write_is_repaired);
	tcase_add_test(tc, test_ahead_of_primary_is_repaired);
	tcase_add_test(tc, test_deleted_database_is_restored);
	tcase_add_test(tc, test_catching_up_file_waits_for_a_sync);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
