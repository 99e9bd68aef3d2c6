/* The replica read path against a real primary: bootstrap and sync. */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"

START_TEST(test_bootstrap_and_incremental)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	sqlite3 *db;

	server_fixture_start(&srv, NULL);
	rfx_primary_exec(srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('one'), ('two')");
	db = rfx_open(path, srv.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	rfx_primary_exec(srv.url, "INSERT INTO t(b) VALUES ('three')");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_gt(rfx_sync(db), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	server_fixture_stop(&srv);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("sync");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bootstrap_and_incremental);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
