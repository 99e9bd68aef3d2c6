/* A replica whose local file no longer matches the primary repairs itself
 * with a full image, and says why: written by a plain SQLite connection, or
 * ahead of a primary that lost transactions. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/replica_state.h"

/* Start e with a table t of two rows on the primary, and open a replica
 * of it (sync_interval=0). */
static sqlite3 *start_seeded(struct rfx_env *e)
{
	rfx_env_start(e, NULL);
	rfx_primary_exec(e->srv.url,
			 "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
	rfx_primary_exec(e->srv.url,
			 "INSERT INTO t(b) VALUES ('one'), ('two')");
	return rfx_open(e->path, e->srv.url, "sync_interval=0");
}

/* The state file of the replica at path, loaded (replica_state_free). */
static void load_state(const char *path, struct replica_state *st)
{
	char *state_path = replica_state_path(path);
	char err[512];

	ck_assert_msg(replica_state_load(state_path, st, err, sizeof err) == 0,
		      "%s", err);
	free(state_path);
}

/* Change the state file of the replica at path with edit (as a crash or
 * another process could leave it). */
static void edit_state(const char *path, void (*edit)(struct replica_state *))
{
	char *state_path = replica_state_path(path);
	struct replica_state st;
	char err[512];

	load_state(path, &st);
	edit(&st);
	ck_assert_msg(replica_state_save(state_path, &st, err, sizeof err) == 0,
		      "%s", err);
	replica_state_free(&st);
	free(state_path);
}

START_TEST(test_foreign_write_is_repaired)
{
	struct rfx_env e;
	sqlite3 *db = start_seeded(&e), *plain;
	char *msg;

	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);

	/* Another program writes to the replica file behind replite's back
	 * (in encrypted runs, one with the key: rows, not bytes in clear). */
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READWRITE);
	fixture_exec(plain, "INSERT INTO t(b) VALUES ('foreign')");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);

	/* The next sync refuses to apply on top of it, and says why. */
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('three')");
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
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('four')");
	ck_assert_int_gt(rfx_sync(db), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Move the recorded position 10 frames past the primary's head. */
static void move_ahead(struct replica_state *st)
{
	st->frame_no += 10;
	st->frame_hwm = st->frame_no;
}

/* The replica applied frames the primary no longer has (a primary restored
 * from an older backup): simulated by moving the recorded position past the
 * primary's head. */
START_TEST(test_ahead_of_primary_is_repaired)
{
	struct rfx_env e;
	sqlite3 *db = start_seeded(&e);
	char *msg;

	sqlite3_close(db);
	edit_state(e.path, move_ahead);

	db = rfx_open(e.path, NULL, "sync_interval=0");
	msg = rfx_sync_error(db);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, "ahead of the primary"), "%s", msg);
	free(msg);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('three')");
	msg = rfx_sync_error(db);
	ck_assert_msg(msg == NULL, "%s", msg);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"),
			 rfx_status_int(db, "primary_frame_no"));
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* The database file was deleted but its state file was kept: the state
 * describes content that is gone, so the replica downloads it again. */
START_TEST(test_deleted_database_is_restored)
{
	struct rfx_env e;
	sqlite3 *db = start_seeded(&e);
	char *wal = fixture_path(e.dir, "app.db-wal");

	sqlite3_close(db);
	ck_assert_int_eq(unlink(e.path), 0);
	unlink(wal);
	free(wal);
	db = rfx_open(e.path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* Mark the file as still catching up after a full image (it is not). */
static void mark_catching_up(struct replica_state *st)
{
	ck_assert_int_eq(st->catching_up, 0);
	st->catching_up = 1;
}

/* A file whose full image was applied but whose frames were not yet (its
 * first sync was interrupted, or another process is still syncing it):
 * consistent but behind, so an open waits for a sync even with
 * sync_interval=0, and the flag is cleared once caught up. */
START_TEST(test_catching_up_file_waits_for_a_sync)
{
	struct rfx_env e;
	struct replica_state st;
	sqlite3 *db = start_seeded(&e);

	sqlite3_close(db);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('three')");
	edit_state(e.path, mark_catching_up);

	db = rfx_open(e.path, NULL, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	load_state(e.path, &st);
	ck_assert_int_eq(st.catching_up, 0);
	replica_state_free(&st);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* A plain reader polling the file in a thread: the fewest rows and the
 * reads that failed.  Its connection is opened before the thread starts
 * (through the key in encrypted runs, whose KDF takes ~90 ms). */
struct poller {
	sqlite3 *db;
	volatile int stop;
	int64_t fewest;
	int failures;
	char first_error[256];
	long reads;
};

static void *poll_rows(void *arg)
{
	struct poller *pl = arg;
	sqlite3 *db = pl->db;
	sqlite3_stmt *st;
	int rc;

	while (!pl->stop) {
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st,
					NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (sqlite3_column_int64(st, 0) < pl->fewest)
				pl->fewest = sqlite3_column_int64(st, 0);
		} else if (rc != SQLITE_BUSY) {
			if (pl->failures++ == 0)
				snprintf(pl->first_error,
					 sizeof pl->first_error, "%s",
					 sqlite3_errmsg(db));
		}
		sqlite3_finalize(st);
		__atomic_add_fetch(&pl->reads, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* A full image on a file readers use is published at the primary's head,
 * not at the base of its generation: a reader never sees the database go
 * back in time (here: to the generation's empty start, "no such table"). */
START_TEST(test_image_is_published_at_the_head)
{
	struct rfx_env e;
	sqlite3 *db = start_seeded(&e), *plain;
	struct poller pl = {.fewest = INT64_MAX};
	pthread_t reader;
	char *msg;
	int i;

	for (i = 0; i < 20; i++)
		rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('more')");
	ck_assert_int_eq(rfx_sync(db) > 0, 1);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 22);
	plain = rfx_plain_open(e.path, SQLITE_OPEN_READWRITE);
	fixture_exec(plain, "UPDATE t SET b = 'foreign' WHERE a = 1");
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);

	pl.db = rfx_plain_open(e.path, SQLITE_OPEN_READONLY);
	ck_assert_int_eq(pthread_create(&reader, NULL, poll_rows, &pl), 0);
	/* Reading before anything happens. */
	while (__atomic_load_n(&pl.reads, __ATOMIC_ACQUIRE) == 0)
		rfx_sleep_ms(1);
	rfx_primary_exec(e.srv.url, "INSERT INTO t(b) VALUES ('new')");
	msg = rfx_sync_error(db); /* refused: the foreign write */
	ck_assert_ptr_nonnull(msg);
	free(msg);
	msg = rfx_sync_error(db); /* the full image */
	ck_assert_msg(msg == NULL, "%s", msg);
	pl.stop = 1;
	pthread_join(reader, NULL);
	ck_assert_int_eq(rfx_plain_close(pl.db), SQLITE_OK);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 23);
	ck_assert_int_gt(pl.reads, 0);
	ck_assert_msg(pl.failures == 0, "%d reads failed, the first: %s",
		      pl.failures, pl.first_error);
	ck_assert_int_ge(pl.fewest, 22);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"),
			 rfx_status_int(db, "primary_frame_no"));
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* About 2 MB on the primary: 2,000 rows of ~1 KB, an index. */
static void seed_big(const char *url)
{
	rfx_primary_exec(url, "CREATE TABLE big(id INTEGER PRIMARY KEY, v "
			      "TEXT, b BLOB)");
	rfx_primary_exec(url, "CREATE INDEX big_v ON big(v)");
	rfx_primary_exec(url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 2000) INSERT INTO big(v, b) "
			 "SELECT printf('row %d', i), randomblob(1000) FROM n");
}

static long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* A new replica's image goes into the database file directly, with only
 * its first page (the commit that publishes it) through the WAL: the WAL
 * holds one frame, not one per page. */
START_TEST(test_new_replica_image_skips_the_wal)
{
	struct rfx_env e;
	sqlite3 *db;
	char *wal;

	rfx_env_start(&e, NULL);
	seed_big(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	wal = fixture_path(e.dir, "app.db-wal");
	ck_assert_int_ge(fixture_query_int(db, "PRAGMA page_count"), 500);
	ck_assert_msg(file_size(wal) <= 32 + 4120,
		      "the WAL after a bootstrap has %ld bytes",
		      file_size(wal));
	rfx_assert_same_table(db, e.srv.url, "big", "v || hex(b)");
	rfx_assert_verified(db);
	free(wal);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

static void mark_bootstrapping(struct replica_state *st)
{
	st->bootstrapping = 1;
}

/* What a crash in the middle of a bootstrap's writes leaves: the state
 * says bootstrapping, the file's first page is still the empty database's,
 * and pages after it hold anything (here random bytes).  Plain SQLite sees
 * an empty database; the replica downloads the image again (streamed) and
 * ends equal to the primary. */
START_TEST(test_interrupted_bootstrap_is_redone)
{
	struct rfx_env e;
	sqlite3 *db, *plain;
	char *wal, *shm;
	uint8_t page[4096];
	long pages, i, j;
	FILE *f;

	rfx_env_start(&e, NULL);
	seed_big(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	pages = (long)fixture_query_int(db, "PRAGMA page_count");
	sqlite3_close(db);
	edit_state(e.path, mark_bootstrapping);

	/* An empty database in WAL mode, as a new replica starts (in
	 * encrypted runs under the replica's key file, which stays)... */
	wal = fixture_path(e.dir, "app.db-wal");
	shm = fixture_path(e.dir, "app.db-shm");
	unlink(e.path);
	unlink(wal);
	unlink(shm);
	plain =
	    rfx_plain_open(e.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	fixture_exec(plain, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL");
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);
	ck_assert_int_eq(file_size(e.path), 4096);
	/* ...with garbage where the image's pages were being written. */
	f = fopen(e.path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 4096, SEEK_SET), 0);
	for (i = 1; i < pages; i++) {
		for (j = 0; j < (long)sizeof page; j++)
			page[j] = (uint8_t)(rand() >> 7);
		ck_assert_uint_eq(fwrite(page, 1, sizeof page, f), sizeof page);
	}
	ck_assert_int_eq(fclose(f), 0);

	plain = rfx_plain_open(e.path, SQLITE_OPEN_READWRITE);
	ck_assert_int_eq(
	    fixture_query_int(plain, "SELECT count(*) FROM sqlite_master"), 0);
	fixture_assert_integrity(plain);
	ck_assert_int_eq(rfx_plain_close(plain), SQLITE_OK);

	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	rfx_assert_same_table(db, e.srv.url, "big", "v || hex(b)");
	rfx_assert_verified(db);
	sqlite3_close(db);
	free(wal);
	free(shm);
	rfx_env_stop(&e);
}
END_TEST

/* Bootstrap a new replica of e's primary through a proxy that damages one
 * answer (fault f on the first request matching match, param): the damage
 * is noticed, counted, and the replica ends equal to the primary. */
static void bootstrap_through_fault(struct rfx_env *e, enum fault_proxy_fault f,
				    const char *match, int param)
{
	struct fault_proxy *proxy;
	sqlite3 *db;

	proxy = fault_proxy_start(atoi(strrchr(e->srv.url, ':') + 1));
	ck_assert_ptr_nonnull(proxy);
	fault_proxy_set(proxy, f, match, param);
	db = rfx_open(e->path, fault_proxy_url(proxy), "sync_interval=0");
	ck_assert_uint_eq(fault_proxy_fired(proxy), 1);
	ck_assert_int_ge(rfx_status_int(db, "rejected_transfers"), 1);
	rfx_assert_same_table(db, e->srv.url, "big", "v || hex(b)");
	rfx_assert_verified(db);
	sqlite3_close(db);
	fault_proxy_stop(proxy);
}

/* A primary whose generations end after 50 frames, seeded (seed_big) and
 * settled: the rows are in the current generation's image, and no
 * rollover is due.  Returns that generation. */
static uint32_t start_rolled_over(struct rfx_env *e)
{
	static const char *const args[] = {"--generation-frames", "50", NULL};
	struct rfx_info info;
	int i;

	rfx_env_start(e, args);
	seed_big(e->srv.url);
	for (i = 0; i < 300; i++) {
		rfx_primary_info(e->srv.url, NULL, &info);
		if (info.generation >= 2 && info.max_frame_no < 50)
			break;
		rfx_sleep_ms(50);
	}
	ck_assert_uint_ge(info.generation, 2);
	return info.generation;
}

/* A new replica's image goes into its file as it arrives; a byte flipped
 * in it on the way (here in the plain image, at 50,000) is caught before
 * anything is published, counted, and the image fetched again. */
START_TEST(test_streamed_image_damaged_in_transit_is_fetched_again)
{
	struct rfx_env e;

	start_rolled_over(&e);
	bootstrap_through_fault(&e, FAULT_PROXY_CORRUPT_BYTE, "GET /export/",
				50000);
	rfx_env_stop(&e);
}
END_TEST

/* The same for the frames laid over the image while streaming (the
 * generation's transactions since its base): a flipped page byte. */
START_TEST(test_streamed_frames_damaged_in_transit_are_fetched_again)
{
	struct rfx_env e;

	rfx_env_start(&e, NULL);
	seed_big(e.srv.url);
	bootstrap_through_fault(&e, FAULT_PROXY_CORRUPT_PAGE, "GET /sync/", 3);
	rfx_env_stop(&e);
}
END_TEST

/* A transaction larger than one answer (the primary sends at most 4096
 * frames per GET /sync): a streamed bootstrap writes its frames as they
 * arrive, across answers, and publishes nothing until the commit frame has
 * come and the result checks.  A page of the second answer flipped on the
 * way is caught, counted, and the bootstrap fetched again; a second answer
 * cut inside a frame leaves no replica (the open fails, naming the
 * transfer), and the next open bootstraps whole. */
static void seed_one_big_transaction(const char *url)
{
	rfx_primary_exec(url, "CREATE TABLE big(id INTEGER PRIMARY KEY, v "
			      "TEXT, b BLOB)");
	rfx_primary_exec(url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 4600) INSERT INTO big(v, b) "
			 "SELECT printf('row %d', i), randomblob(3000) FROM n");
}

START_TEST(test_streamed_transaction_across_answers)
{
	struct rfx_env e;
	struct rfx_info info;
	struct fault_proxy *proxy;
	sqlite3 *db = NULL;
	char *err = NULL;
	char match[64];

	rfx_env_start(&e, NULL);
	seed_one_big_transaction(e.srv.url);
	rfx_primary_info(e.srv.url, NULL, &info);
	ck_assert_uint_gt(info.max_frame_no, 4096 + 100);
	snprintf(match, sizeof match, "GET /sync/%u/4097/", info.generation);
	bootstrap_through_fault(&e, FAULT_PROXY_CORRUPT_PAGE, match, 50);
	unlink(e.path);

	proxy = fault_proxy_start(atoi(strrchr(e.srv.url, ':') + 1));
	ck_assert_ptr_nonnull(proxy);
	fault_proxy_set(proxy, FAULT_PROXY_CUT_FRAME, match, 20);
	ck_assert_int_ne(rfx_try_open(e.path, fault_proxy_url(proxy),
				      "sync_interval=0", &db, &err),
			 SQLITE_OK);
	ck_assert_uint_eq(fault_proxy_fired(proxy), 1);
	ck_assert_msg(err != NULL && strstr(err, "/sync/") != NULL,
		      "the error names the transfer: %s", err ? err : "?");
	free(err);
	db = rfx_open(e.path, fault_proxy_url(proxy), "sync_interval=0");
	rfx_assert_same_table(db, e.srv.url, "big", "v || hex(b)");
	rfx_assert_verified(db);
	sqlite3_close(db);
	fault_proxy_stop(proxy);
	rfx_env_stop(&e);
}
END_TEST

struct opener {
	const char *path, *url;
	sqlite3 *db;
	char *err;
	int rc;
};

static void *open_replica(void *arg)
{
	struct opener *o = arg;

	o->rc =
	    rfx_try_open(o->path, o->url, "sync_interval=0", &o->db, &o->err);
	return NULL;
}

/* The primary's generation ends while a new replica streams it (the image
 * is slow to come): the frames of an ended generation come with no
 * checksum for their last frame (the primary keeps those for its current
 * generation only).  The bootstrap still completes, on the image's
 * checksum and the frames' chain, and the replica then follows into the
 * next generation and ends verified. */
START_TEST(test_generation_ends_during_a_streamed_bootstrap)
{
	struct rfx_env e;
	struct rfx_info info;
	struct fault_proxy *proxy;
	struct opener o = {0};
	pthread_t t;
	uint32_t gen = start_rolled_over(&e);
	int i;

	/* Frames after the image, so that the stream rolls forward. */
	rfx_primary_exec(e.srv.url, "UPDATE big SET v = v || '.' WHERE id < 4");
	proxy = fault_proxy_start(atoi(strrchr(e.srv.url, ':') + 1));
	ck_assert_ptr_nonnull(proxy);
	fault_proxy_set(proxy, FAULT_PROXY_LATENCY, NULL, 40);
	o.path = e.path;
	o.url = fault_proxy_url(proxy);
	ck_assert_int_eq(pthread_create(&t, NULL, open_replica, &o), 0);
	/* Meanwhile the generation fills up and ends. */
	rfx_sleep_ms(200);
	rfx_primary_exec(e.srv.url,
			 "UPDATE big SET v = v || '!' WHERE id < 300");
	for (i = 0; i < 300; i++) {
		rfx_primary_info(e.srv.url, NULL, &info);
		if (info.generation > gen)
			break;
		rfx_sleep_ms(20);
	}
	ck_assert_uint_gt(info.generation, gen);
	pthread_join(t, NULL);
	fault_proxy_clear(proxy);
	ck_assert_msg(o.rc == SQLITE_OK, "open: %s", o.err ? o.err : "?");
	rfx_sync(o.db);
	rfx_assert_same_table(o.db, e.srv.url, "big", "v || hex(b)");
	rfx_assert_verified(o.db);
	sqlite3_close(o.db);
	fault_proxy_stop(proxy);
	rfx_env_stop(&e);
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
	tcase_add_test(tc, test_image_is_published_at_the_head);
	tcase_add_test(tc, test_new_replica_image_skips_the_wal);
	tcase_add_test(tc, test_interrupted_bootstrap_is_redone);
	tcase_add_test(tc,
		       test_streamed_image_damaged_in_transit_is_fetched_again);
	tcase_add_test(
	    tc, test_streamed_frames_damaged_in_transit_are_fetched_again);
	tcase_add_test(tc, test_generation_ends_during_a_streamed_bootstrap);
	tcase_add_test(tc, test_streamed_transaction_across_answers);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
