/* Group commit on the primary (server/store_durable.c): SQL commits are
 * written to the frame log under the write lock and made durable together
 * before anyone learns of them; a crash that loses the not-yet-durable tail
 * of the log must not bring those commits back from the live WAL or from
 * live.db.
 *
 * A power loss is simulated by a crash image: while the store is still open
 * (its writes in the page cache, as after kill -9), its data directory is
 * copied (without live.db-shm, which does not survive a reboot) and the
 * copy's frame log is cut right after the durable head, as an unsynced file
 * can lose its tail.  A store opened on the copy must hold exactly the
 * durable commits. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "store_fixture.h"
#include "server/frame_log.h"
#include "server/store.h"
#include "wal/walfmt.h"

/* A store seeded (serve --import) with t = {1} and an empty s: t's page is
 * then in the generation's base only, so replaying the log at start-up
 * does not rewrite it, and a lost commit to it shows. */
static void fx_open_seeded(struct fx *f)
{
	char *seed = fixture_path(f->dir, "seed.db");
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"
			 "CREATE TABLE s(y)");
	sqlite3_close(db);
	f->cfg.import_path = seed;
	fx_open(f);
	f->cfg.import_path = NULL;
	free(seed);
}

static void run(const char *cmd)
{
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

/* Copy f's data directory to image (in f's dir) as a power loss would
 * leave it: no -shm, and each generation's frame log cut after its
 * durable head (heads[i] for generation i + 1). */
static char *crash_image(struct fx *f, const uint32_t *heads, size_t n_gens)
{
	char *image = fixture_path(f->dir, "image");
	char cmd[4096];
	size_t i;

	snprintf(cmd, sizeof cmd,
		 "rm -rf '%s' && cp -a '%s' '%s' && rm -f '%s/live.db-shm'",
		 image, f->data, image, image);
	run(cmd);
	for (i = 0; i < n_gens; i++) {
		char *log;
		ck_assert(asprintf(&log, "%s/gen-%08zu/frames.log", image,
				   i + 1) > 0);
		ck_assert_int_eq(
		    truncate(log, (off_t)frame_log_offset(heads[i] + 1)), 0);
		free(log);
	}
	return image;
}

/* Open a store on the crash image (in f's directory) as g. */
static void open_image(struct fx *f, struct fx *g)
{
	fx_init_in(g, f->dir, "image");
	fx_open(g);
}

/* Close the image's store and the original, and remove everything. */
static void close_both(struct fx *f, struct fx *g, char *image)
{
	fx_close(g);
	free(g->data);
	free(g->dir);
	fx_done(f);
	free(image);
}

static int64_t count_rows(sqlite3 *db)
{
	return fixture_query_int(db, "SELECT count(*) FROM t");
}

/* Frames are served, and the head reported, only once durable. */
START_TEST(test_frames_served_once_durable)
{
	struct fx f;
	struct store_frames fr;
	uint32_t head;
	char err[512];

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x)");
	head = store_head(f.store);
	ck_assert_uint_gt(head, 0);
	/* Committed and visible to SQL, not yet durable. */
	fixture_exec(f.db, "INSERT INTO t VALUES (1)");
	ck_assert_int_eq(count_rows(f.db), 1);
	ck_assert_uint_eq(store_head(f.store), head);
	ck_assert_int_eq(store_pull(f.store, 1, head + 1, head + 100, &fr),
			 STORE_PULL_CAUGHT_UP);
	ck_assert_int_eq(store_make_durable(f.store, err, sizeof err), 0);
	ck_assert_uint_gt(store_head(f.store), head);
	ck_assert_int_eq(store_pull(f.store, 1, head + 1, head + 100, &fr),
			 STORE_PULL_FRAMES);
	close(fr.fd);
	fx_done(&f);
}
END_TEST

/* A commit written to the log but never answered (not durable), then a
 * power loss.  checkpointed = 0: the lost commit is still in the live WAL,
 * which start-up must not checkpoint into live.db; 1: it was checkpointed
 * into live.db itself (and the WAL emptied), which start-up must rebuild,
 * not trust. */
static void lose_unanswered_commit(int checkpointed)
{
	struct fx f, g;
	uint32_t head;
	char *image;

	fx_init(&f, "data");
	fx_open_seeded(&f);
	fx_exec(&f, "INSERT INTO s VALUES (1)");
	head = store_head(f.store);
	ck_assert_uint_gt(head, 0);
	fixture_exec(f.db, "INSERT INTO t VALUES (2)"); /* never answered */
	if (checkpointed)
		ck_assert_int_eq(
		    sqlite3_wal_checkpoint_v2(
			f.db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
		    SQLITE_OK);
	image = crash_image(&f, &head, 1);
	open_image(&f, &g);
	ck_assert_int_eq(count_rows(g.db), 1);
	ck_assert_int_eq(fixture_query_int(g.db, "SELECT count(*) FROM s"), 1);
	ck_assert_uint_eq(store_head(g.store), head);
	fixture_assert_integrity(g.db);
	/* A new commit follows the durable one. */
	fx_exec(&g, "INSERT INTO t VALUES (3)");
	ck_assert_int_eq(
	    fixture_query_int(g.db, "SELECT group_concat(x) = '1,3' FROM t"),
	    1);
	close_both(&f, &g, image);
}

START_TEST(test_power_loss_drops_commit_in_wal)
{
	lose_unanswered_commit(0);
}
END_TEST

START_TEST(test_power_loss_drops_checkpointed_commit)
{
	lose_unanswered_commit(1);
}
END_TEST

/* A clean close makes everything durable: nothing is lost, and nothing
 * needs rebuilding. */
START_TEST(test_clean_close_is_durable)
{
	struct fx f;
	char *wal;

	fx_init(&f, "data");
	fx_open(&f);
	fixture_exec(f.db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	fx_close(&f);
	wal = fixture_path(f.data, "live.db-wal");
	ck_assert_int_ne(access(wal, F_OK), 0);
	fx_open(&f);
	ck_assert_int_eq(count_rows(f.db), 1);
	ck_assert_uint_gt(store_head(f.store), 0);
	free(wal);
	fx_done(&f);
}
END_TEST

/* A rollover with commits written but not durable syncs them first: the
 * next generation's base never holds what the log could lose. */
START_TEST(test_rollover_syncs_first)
{
	struct fx f, g;
	uint32_t heads[2];
	char *image;

	fx_init(&f, "data");
	f.cfg.generation_frames = 2;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x)");
	fixture_exec(f.db, "INSERT INTO t VALUES (1)"); /* not answered */
	store_maintain(f.store);
	ck_assert_uint_eq(store_generation(f.store), 2);
	/* Generation 1's log is whole: the rollover synced it. */
	heads[0] = 0;
	{
		char *log;
		struct frame_log *l;
		char err[256];
		ck_assert(asprintf(&log, "%s/gen-00000001/frames.log", f.data) >
			  0);
		ck_assert_int_eq(frame_log_open(log, 0, &l, err, sizeof err),
				 0);
		heads[0] = frame_log_head(l);
		frame_log_close(l);
		free(log);
	}
	heads[1] = store_head(f.store);                 /* 0 */
	fixture_exec(f.db, "INSERT INTO t VALUES (2)"); /* lost */
	image = crash_image(&f, heads, 2);
	open_image(&f, &g);
	ck_assert_int_eq(
	    fixture_query_int(g.db, "SELECT group_concat(x) = '1' FROM t"), 1);
	fixture_assert_integrity(g.db);
	close_both(&f, &g, image);
}
END_TEST

/* Writers on their own connections and threads, each waiting for its
 * commit to be durable: every answered commit is in the log and survives
 * a power loss at the end. */
#define N_WRITERS 8
#define N_COMMITS 50

struct writer {
	struct store *store;
	int id;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	sqlite3 *db;
	char sql[128], err[512];
	int i;

	ck_assert_int_eq(store_open_conn(w->store, &db), SQLITE_OK);
	for (i = 0; i < N_COMMITS; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d)",
			 w->id * 1000 + i);
		fixture_exec(db, sql);
		ck_assert_int_eq(store_make_durable(w->store, err, sizeof err),
				 0);
	}
	sqlite3_close(db);
	return NULL;
}

START_TEST(test_concurrent_writers_all_durable)
{
	struct writer w[N_WRITERS];
	pthread_t th[N_WRITERS];
	struct fx f, g;
	uint32_t head;
	char *image;
	int i;

	fx_init(&f, "data");
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(x)");
	for (i = 0; i < N_WRITERS; i++) {
		w[i].store = f.store;
		w[i].id = i;
		ck_assert_int_eq(
		    pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (i = 0; i < N_WRITERS; i++)
		pthread_join(th[i], NULL);
	head = store_head(f.store);
	image = crash_image(&f, &head, 1);
	open_image(&f, &g);
	ck_assert_int_eq(count_rows(g.db), N_WRITERS * N_COMMITS);
	ck_assert_int_eq(
	    fixture_query_int(g.db, "SELECT count(DISTINCT x) FROM t"),
	    N_WRITERS * N_COMMITS);
	fixture_assert_integrity(g.db);
	close_both(&f, &g, image);
}
END_TEST

static Suite *group_commit_suite(void)
{
	Suite *s = suite_create("group_commit");
	TCase *tc = tcase_create("group_commit");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_frames_served_once_durable);
	tcase_add_test(tc, test_power_loss_drops_commit_in_wal);
	tcase_add_test(tc, test_power_loss_drops_checkpointed_commit);
	tcase_add_test(tc, test_clean_close_is_durable);
	tcase_add_test(tc, test_rollover_syncs_first);
	tcase_add_test(tc, test_concurrent_writers_all_durable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(group_commit_suite());
}
