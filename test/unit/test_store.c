/* The primary's storage: capture of SQL transactions into the frame log,
 * start-up recovery, rollover replay, the database checksum, and import.
 * Pushes are in test_store_push.c, test_store_push_retry.c and
 * test_store_push_refused.c; the helpers these share are in
 * store_test_helpers.[ch]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "store_fixture.h"
#include "store_test_helpers.h"
#include "server/store.h"

START_TEST(test_sql_commits_are_logged)
{
	struct fx f;
	uint32_t head0, head1;

	fx_init(&f, "data");
	fx_open(&f);
	ck_assert_uint_eq(store_generation(f.store), 1);
	head0 = store_head(f.store);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
	head1 = store_head(f.store);
	ck_assert_uint_gt(head1, head0);
	fx_exec(&f, "INSERT INTO t(v) VALUES ('a'), ('b')");
	ck_assert_uint_gt(store_head(f.store), head1);
	/* A rolled-back transaction writes nothing to the log. */
	head1 = store_head(f.store);
	fx_exec(&f, "BEGIN; INSERT INTO t(v) VALUES ('c'); ROLLBACK");
	ck_assert_uint_eq(store_head(f.store), head1);
	sth_assert_log_matches_live(&f, 1);
	fx_done(&f);
}
END_TEST

/* Big transactions spill pages to the WAL before commit, and overwrite
 * frames in place: the log must still hold each page's final image. */
START_TEST(test_spills_and_overwrites)
{
	struct fx f;
	int i;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "PRAGMA cache_size=5");
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	fx_exec(&f, "BEGIN");
	for (i = 0; i < 300; i++) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "INSERT INTO t(v) VALUES (randomblob(%d))",
			 100 + (i * 37) % 9000);
		fx_exec(&f, sql);
		if (i % 50 == 0)
			fx_exec(&f, "UPDATE t SET v = randomblob(200) "
				    "WHERE id % 7 = 0");
	}
	fx_exec(&f, "COMMIT");
	fx_exec(&f, "DELETE FROM t WHERE id % 2 = 0");
	fx_exec(&f, "VACUUM");
	sth_assert_log_matches_live(&f, 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"),
			 150);
	fx_done(&f);
}
END_TEST

START_TEST(test_authorizer_guards_storage)
{
	struct fx f;
	const char *refused[] = {
	    "ATTACH 'other.db' AS o",
	    "VACUUM INTO 'copy.db'",
	    "PRAGMA journal_mode=DELETE",
	    "PRAGMA locking_mode=EXCLUSIVE",
	};
	size_t i;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	for (i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(sqlite3_exec(f.db, refused[i], NULL, NULL,
					   NULL) == SQLITE_AUTH,
			      "%s was allowed", refused[i]);
	/* Plain VACUUM attaches an unnamed temporary database: allowed. */
	fx_exec(&f, "VACUUM");
	fx_exec(&f, "PRAGMA journal_mode");
	sth_assert_log_matches_live(&f, 1);
	fx_done(&f);
}
END_TEST

START_TEST(test_restart_keeps_everything)
{
	struct fx f;
	uint32_t head;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)");
	head = store_head(f.store);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(store_head(f.store), head);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 6);
	fx_done(&f);
}
END_TEST

/* A crash can leave the live database behind the log (its WAL lost, or an
 * old copy): start-up replays the log onto it. */
START_TEST(test_live_brought_up_to_log_head)
{
	struct fx f;
	char *live, *saved, *wal;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	sqlite3_wal_checkpoint_v2(f.db, "main", SQLITE_CHECKPOINT_TRUNCATE,
				  NULL, NULL);
	live = fixture_path(f.data, "live.db");
	saved = fixture_path(f.dir, "saved.db");
	wal = fixture_path(f.data, "live.db-wal");
	sth_copy_file(live, saved);
	fx_exec(&f, "INSERT INTO t VALUES (2); CREATE TABLE u(y);"
		    "INSERT INTO u VALUES (zeroblob(50000))");
	fx_close(&f);
	/* Roll the live database back to the older copy. */
	sth_copy_file(saved, live);
	unlink(wal);
	fx_open(&f);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 3);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT length(y) FROM u"),
			 50000);
	fixture_assert_integrity(f.db);
	sth_assert_log_matches_live(&f, 1);
	free(live);
	free(saved);
	free(wal);
	fx_done(&f);
}
END_TEST

START_TEST(test_rollover_replays_pages)
{
	struct fx f;
	struct store_frames fr;
	uint32_t head1;
	int i;

	fx_init(&f, "data");
	f.cfg.generation_frames = 20;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	for (i = 0; i < 30; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(3000))");
	head1 = store_head(f.store);
	ck_assert_uint_ge(head1, 20);
	store_maintain(f.store);
	ck_assert_uint_eq(store_generation(f.store), 2);
	ck_assert_uint_eq(store_head(f.store), 0);
	/* Base of generation 2 == live database now. */
	sth_assert_log_matches_live(&f, 2);
	/* Generation 1 is complete: past its end, go to generation 2. */
	ck_assert_int_eq(store_pull(f.store, 1, head1 + 1, head1 + 10, &fr),
			 STORE_PULL_NEXT_GEN);
	ck_assert_int_eq(store_pull(f.store, 2, 1, 10, &fr),
			 STORE_PULL_CAUGHT_UP);
	ck_assert_int_eq(store_pull(f.store, 7, 1, 10, &fr),
			 STORE_PULL_UNKNOWN_GEN);
	fx_exec(&f, "UPDATE t SET v = randomblob(10) WHERE id < 5");
	ck_assert_uint_gt(store_head(f.store), 0);
	sth_assert_log_matches_live(&f, 2);
	/* And after a restart, generation 2 stays current. */
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(store_generation(f.store), 2);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 30);
	fx_done(&f);
}
END_TEST

START_TEST(test_checksum_tracks_database)
{
	struct fx f;
	int i;

	fx_init(&f, "data");
	f.cfg.generation_frames = 40;
	fx_open(&f);
	sth_assert_checksum_of_live(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
	sth_assert_checksum_of_live(&f);
	/* Growth (overflow pages), in-place updates, shrinking (VACUUM). */
	for (i = 0; i < 10; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(9000))");
	sth_assert_checksum_of_live(&f);
	fx_exec(&f, "UPDATE t SET v = randomblob(100) WHERE id % 2");
	sth_assert_checksum_of_live(&f);
	fx_exec(&f, "DELETE FROM t WHERE id > 3; VACUUM");
	sth_assert_checksum_of_live(&f);
	/* A rollover, then a restart (replayed from the log). */
	for (i = 0; i < 10; i++)
		fx_exec(&f, "INSERT INTO t(v) VALUES (randomblob(5000))");
	store_maintain(f.store);
	ck_assert_uint_eq(store_generation(f.store), 2);
	fx_exec(&f, "UPDATE t SET v = randomblob(10) WHERE id = 1");
	sth_assert_checksum_of_live(&f);
	fx_close(&f);
	fx_open(&f);
	sth_assert_checksum_of_live(&f);
	fx_done(&f);
}
END_TEST

START_TEST(test_import_converts_page_size)
{
	struct fx f;
	char *seed;
	sqlite3 *db;

	fx_init(&f, "data");
	seed = fixture_path(f.dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=1024; CREATE TABLE t(x);"
			 "INSERT INTO t VALUES ('imported')");
	sqlite3_close(db);
	f.cfg.import_path = seed;
	fx_open(&f);
	ck_assert_int_eq(fixture_query_int(f.db, "PRAGMA page_size"), 4096);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	fx_close(&f);
	/* Importing into an existing data directory is refused. */
	{
		char err[512] = "";
		struct store *s = NULL;
		ck_assert_int_ne(store_open(&f.cfg, &s, err, sizeof err), 0);
		ck_assert_ptr_nonnull(strstr(err, "already holds a database"));
	}
	free(seed);
	fx_done(&f);
}
END_TEST

START_TEST(test_import_refuses_garbage)
{
	struct fx f;
	char *seed;
	char err[512] = "";
	FILE *fp;

	fx_init(&f, "data");
	seed = fixture_path(f.dir, "garbage.db");
	fp = fopen(seed, "wb");
	fputs(
	    "this is not a database, just some text that is long enough "
	    "to look like a header of a file.................................",
	    fp);
	fclose(fp);
	f.cfg.import_path = seed;
	ck_assert_int_ne(store_open(&f.cfg, &f.store, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "garbage.db"));
	free(seed);
	fx_done(&f);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sql_commits_are_logged);
	tcase_add_test(tc, test_spills_and_overwrites);
	tcase_add_test(tc, test_authorizer_guards_storage);
	tcase_add_test(tc, test_restart_keeps_everything);
	tcase_add_test(tc, test_live_brought_up_to_log_head);
	tcase_add_test(tc, test_rollover_replays_pages);
	tcase_add_test(tc, test_import_converts_page_size);
	tcase_add_test(tc, test_import_refuses_garbage);
	tcase_add_test(tc, test_checksum_tracks_database);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(store_suite());
}
