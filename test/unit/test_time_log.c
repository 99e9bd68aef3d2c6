/* Commit times (time_log.h) and what point-in-time restore builds on them:
 * the file's records survive a reopen and lose only a torn tail; the store
 * resolves a time to the last commit at or before it, across rollovers and
 * restarts; start-up cuts records the log does not hold and dates the
 * commits it holds without one; a fork (store_fork) is exactly the state
 * it names, with its own database id and the source's base hard-linked. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "fixture.h"
#include "server/frame_log.h"
#include "server/time_log.h"
#include "store_fixture.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

START_TEST(test_records_survive_and_torn_tail_is_cut)
{
	char *dir = fixture_tmpdir(), *path = fixture_path(dir, "times.log");
	char err[256];
	struct time_log *t;
	uint32_t frame;
	int64_t ms;
	int created, fd;

	ck_assert_int_eq(time_log_open(path, &t, &created, err, sizeof err), 0);
	ck_assert_int_eq(created, 1);
	ck_assert_int_eq(time_log_append(t, 0, 1000), 0);
	ck_assert_int_eq(time_log_append(t, 3, 2000), 0);
	/* A clock stepping back: recorded no earlier than the one before. */
	ck_assert_int_eq(time_log_append(t, 7, 1500), 0);
	ck_assert_int_eq(time_log_append(t, 9, 4000), 0);
	ck_assert_int_eq(time_log_append(t, 9, 5000), -EINVAL);
	ck_assert_int_eq(time_log_sync(t), 0);
	ck_assert_int_eq(time_log_find(t, 999, 100, &frame, &ms), 0);
	ck_assert_int_eq(time_log_find(t, 1000, 100, &frame, &ms), 1);
	ck_assert_uint_eq(frame, 0);
	ck_assert_int_eq(time_log_find(t, 2000, 100, &frame, &ms), 1);
	ck_assert_uint_eq(frame, 7); /* 3 and 7 both at 2000: the last */
	ck_assert_int_eq(ms, 2000);
	ck_assert_int_eq(time_log_find(t, 3999, 100, &frame, &ms), 1);
	ck_assert_uint_eq(frame, 7);
	/* Bounded by a durable head. */
	ck_assert_int_eq(time_log_find(t, 9999, 8, &frame, &ms), 1);
	ck_assert_uint_eq(frame, 7);
	ck_assert_int_eq(time_log_time_of(t, 9, &ms), 1);
	ck_assert_int_eq(ms, 4000);
	ck_assert_int_eq(time_log_time_of(t, 8, &ms), 0);
	time_log_close(t);

	/* A torn record at the end (half written), then a damaged one. */
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\0\0\0\x0b\0\0", 6), 6);
	close(fd);
	ck_assert_int_eq(time_log_open(path, &t, &created, err, sizeof err), 0);
	ck_assert_int_eq(created, 0);
	ck_assert_uint_eq(time_log_count(t), 4);
	ck_assert_uint_eq(time_log_last_frame(t), 9);
	ck_assert_int_eq(time_log_first_ms(t), 1000);
	time_log_close(t);
	{
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(st.st_size, 4 * TIME_LOG_RECORD_SIZE);
		fd = open(path, O_RDWR);
		ck_assert_int_eq(
		    pwrite(fd, "x", 1, 3 * TIME_LOG_RECORD_SIZE + 5), 1);
		close(fd);
	}
	ck_assert_int_eq(time_log_open(path, &t, &created, err, sizeof err), 0);
	ck_assert_uint_eq(time_log_count(t), 3);
	ck_assert_uint_eq(time_log_last_frame(t), 7);
	ck_assert_int_eq(time_log_cut_after(t, 3), 0);
	ck_assert_uint_eq(time_log_last_frame(t), 3);
	ck_assert_int_eq(time_log_append(t, 4, 5000), 0);
	time_log_close(t);
	ck_assert_int_eq(time_log_open(path, &t, &created, err, sizeof err), 0);
	ck_assert_uint_eq(time_log_count(t), 3);
	ck_assert_int_eq(time_log_time_of(t, 4, &ms), 1);
	ck_assert_int_eq(ms, 5000);
	time_log_close(t);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

#define N_COMMITS 24

/* Commit i inserts row i; after[i] is a time after commit i and before
 * commit i + 1. */
static void commit_rows(struct fx *f, int64_t after[N_COMMITS])
{
	char sql[128];
	int i;

	fx_exec(f, "CREATE TABLE t(i INTEGER PRIMARY KEY, b BLOB)");
	for (i = 0; i < N_COMMITS; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO t VALUES (%d, randomblob(5000))", i);
		fx_exec(f, sql);
		sleep_ms(3);
		after[i] = clock_unix_ms();
		sleep_ms(3);
		if (i % 5 == 4)
			store_maintain(f->store); /* rolls over */
	}
}

/* The rows of the state `at` of f's store, by a fork opened as a store. */
static int64_t rows_at(struct fx *f, const struct store_point *at,
		       const char *name, char **database_id)
{
	struct fx g;
	char err[512] = "";
	int64_t n;

	fx_init_in(&g, f->dir, name);
	ck_assert_msg(store_fork(f->store, at, g.data, err, sizeof err) == 0,
		      "store_fork: %s", err);
	fx_open(&g);
	fixture_assert_integrity(g.db);
	n = fixture_query_int(g.db, "SELECT count(*) FROM t");
	/* Rows 0..k-1 of commit_rows, and nothing in between missing. */
	ck_assert_int_eq(
	    fixture_query_int(g.db, "SELECT coalesce(max(i) + 1, 0) - count(*) "
				    "FROM t WHERE i < 1000"),
	    0);
	if (database_id != NULL)
		*database_id = strdup(store_database_id(g.store));
	fx_close(&g);
	free(g.data);
	free(g.dir);
	return n;
}

static void check_every_time(struct fx *f, const int64_t after[N_COMMITS],
			     const char *prefix)
{
	struct store_point pt;
	char err[512], name[64];
	int i;

	for (i = 0; i < N_COMMITS; i += 3) {
		ck_assert_msg(store_locate_time(f->store, after[i], &pt, err,
						sizeof err) == 0,
			      "%s", err);
		ck_assert_int_le(pt.unix_ms, after[i]);
		snprintf(name, sizeof name, "%s-%d", prefix, i);
		ck_assert_int_eq(rows_at(f, &pt, name, NULL), i + 1);
	}
}

START_TEST(test_restore_at_times_across_rollovers_and_restarts)
{
	struct fx f;
	int64_t after[N_COMMITS], before = clock_unix_ms();
	struct store_point pt;
	char err[512], *id = NULL;

	fx_init(&f, "data");
	f.cfg.generation_frames = 8;
	fx_open(&f);
	commit_rows(&f, after);
	ck_assert_uint_ge(store_generation(f.store), 3);
	check_every_time(&f, after, "a");

	/* Now: every row; the fork has its own id. */
	ck_assert_int_eq(
	    store_locate_time(f.store, clock_unix_ms(), &pt, err, sizeof err),
	    0);
	ck_assert_int_eq(rows_at(&f, &pt, "now", &id), N_COMMITS);
	ck_assert_str_ne(id, store_database_id(f.store));
	free(id);

	/* Not available: the future, and before the database existed. */
	ck_assert_int_eq(store_locate_time(f.store, clock_unix_ms() + 60000,
					   &pt, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "in the future"));
	ck_assert_int_eq(
	    store_locate_time(f.store, before - 1000, &pt, err, sizeof err),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "outside retention"));
	ck_assert_int_eq(
	    store_locate_frame(f.store, 1, 1, &pt, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a commit"));
	ck_assert_int_eq(
	    store_locate_frame(f.store, 99, 0, &pt, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not retained"));

	/* The times are durable: the same answers after a restart. */
	fx_close(&f);
	fx_open(&f);
	check_every_time(&f, after, "b");
	fx_done(&f);
}
END_TEST

START_TEST(test_start_up_cuts_and_dates)
{
	struct fx f;
	struct store_point pt;
	char err[512], *times;
	struct time_log *t;
	int64_t after[N_COMMITS], ms, reopened;
	uint32_t head;
	int created;

	fx_init(&f, "data");
	f.cfg.generation_frames = 1000000;
	fx_open(&f);
	commit_rows(&f, after);
	head = store_head(f.store);
	fx_close(&f);

	/* A record past the log's head (its frames were lost): cut. */
	times = fixture_path(f.data, "gen-00000001/times.log");
	ck_assert_int_eq(time_log_open(times, &t, &created, err, sizeof err),
			 0);
	ck_assert_int_eq(time_log_append(t, head + 2, clock_unix_ms()), 0);
	time_log_close(t);
	fx_open(&f);
	fx_exec(&f, "INSERT INTO t VALUES (1000, NULL)");
	ck_assert_int_eq(
	    store_locate_frame(f.store, 1, head + 2, &pt, err, sizeof err),
	    -1); /* the new commit took frame head + 1 */
	ck_assert_int_eq(
	    store_locate_frame(f.store, 1, head + 1, &pt, err, sizeof err), 0);
	fx_close(&f);

	/* A log without its times (an older version's): every commit is
	 * dated when start-up found it. */
	ck_assert_int_eq(unlink(times), 0);
	sleep_ms(5);
	reopened = clock_unix_ms();
	fx_open(&f);
	ck_assert_int_ge(store_restorable_since(f.store), reopened);
	ck_assert_int_eq(store_locate_time(f.store, after[N_COMMITS - 1], &pt,
					   err, sizeof err),
			 -1);
	ck_assert_int_eq(
	    store_locate_frame(f.store, 1, head + 1, &pt, err, sizeof err), 0);
	ms = pt.unix_ms;
	ck_assert_int_ge(ms, reopened);
	ck_assert_int_eq(rows_at(&f, &pt, "after", NULL) - 1, N_COMMITS);
	free(times);
	fx_done(&f);
}
END_TEST

START_TEST(test_fork_shares_the_base)
{
	struct fx f;
	struct store_point pt;
	char err[512], *src, *dst;
	struct stat a, b;
	int64_t after[N_COMMITS];

	fx_init(&f, "data");
	f.cfg.generation_frames = 1000000;
	fx_open(&f);
	commit_rows(&f, after);
	ck_assert_int_eq(
	    store_locate_time(f.store, after[10], &pt, err, sizeof err), 0);
	ck_assert_int_eq(rows_at(&f, &pt, "fork", NULL), 11);
	src = fixture_path(f.data, "gen-00000001/base.db");
	dst = fixture_path(f.dir, "fork/gen-00000001/base.db");
	ck_assert_int_eq(stat(src, &a), 0);
	ck_assert_int_eq(stat(dst, &b), 0);
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	/* The source writes on; the fork is unchanged, and so is its base. */
	fx_exec(&f, "INSERT INTO t VALUES (5000, NULL)");
	ck_assert_int_eq(stat(dst, &b), 0);
	ck_assert_int_eq(a.st_size, b.st_size);
	/* A fork into an existing directory is refused. */
	ck_assert_int_eq(store_fork(f.store, &pt, f.data, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "exists"));
	ck_assert_int_eq(stat(src, &a), 0); /* and the source is intact */
	free(src);
	free(dst);
	fx_done(&f);
}
END_TEST

/* A power loss right after SQL commits were answered: every file cut where
 * its last fdatasync left it.  Each answered commit keeps the time it was
 * made, since group commit syncs the time log before the frame log (fails
 * if the time log is left to sync later: start-up would date them). */
START_TEST(test_answered_commits_keep_their_times_through_power_loss)
{
	struct fx f, g;
	struct store_point a, b;
	char err[256], cmd[4096], *image, *log, *times;
	uint32_t log_synced, frame;
	uint64_t pushes_synced;
	int64_t after[N_COMMITS];

	fx_init(&f, "data");
	f.cfg.generation_frames = 1000000;
	fx_open(&f);
	commit_rows(&f, after);
	store_synced_marks(f.store, &log_synced, &pushes_synced);
	ck_assert_uint_eq(log_synced, store_head(f.store));
	image = fixture_path(f.dir, "image");
	snprintf(cmd, sizeof cmd,
		 "rm -rf '%s' && cp -a '%s' '%s' && rm -f '%s/live.db-shm'",
		 image, f.data, image, image);
	ck_assert_int_eq(system(cmd), 0);
	log = fixture_path(image, "gen-00000001/frames.log");
	times = fixture_path(image, "gen-00000001/times.log");
	ck_assert_int_eq(truncate(log, (off_t)frame_log_offset(log_synced + 1)),
			 0);
	ck_assert_int_eq(
	    truncate(times, (off_t)store_times_synced_size(f.store)), 0);
	fx_init_in(&g, f.dir, "image");
	fx_open(&g);
	for (frame = 1; frame <= log_synced; frame++) {
		if (store_locate_frame(f.store, 1, frame, &a, err, sizeof err))
			continue; /* not a commit frame */
		ck_assert_msg(store_locate_frame(g.store, 1, frame, &b, err,
						 sizeof err) == 0,
			      "%s", err);
		ck_assert_int_eq(a.unix_ms, b.unix_ms);
	}
	fx_close(&g);
	free(g.data);
	free(g.dir);
	free(image);
	free(log);
	free(times);
	fx_done(&f);
}
END_TEST

/* A database's own retention is kept across restarts and applies at the
 * next tick; going back to the default removes it.  Ended generations go
 * once past it, and the oldest restorable state moves with them. */
START_TEST(test_retention_per_database)
{
	struct fx f;
	struct store_point pt;
	char err[256];
	int64_t after[N_COMMITS], since;
	int own;

	fx_init(&f, "data");
	f.cfg.generation_frames = 8;
	f.cfg.retention_ms = 3600 * 1000;
	fx_open(&f);
	ck_assert_int_eq(store_retention(f.store, &own), 3600 * 1000);
	ck_assert_int_eq(own, 0);
	commit_rows(&f, after);
	since = store_restorable_since(f.store);
	ck_assert_int_eq(
	    store_locate_time(f.store, after[0], &pt, err, sizeof err), 0);
	ck_assert_int_eq(store_set_retention(f.store, 0, err, sizeof err), 0);
	fx_close(&f);
	fx_open(&f); /* kept durably */
	ck_assert_int_eq(store_retention(f.store, &own), 0);
	ck_assert_int_eq(own, 1);
	store_maintain(f.store);
	ck_assert_int_gt(store_restorable_since(f.store), since);
	ck_assert_int_eq(
	    store_locate_time(f.store, after[0], &pt, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "outside retention"));
	/* The newest state is still there, whole. */
	ck_assert_int_eq(
	    store_locate_time(f.store, clock_unix_ms(), &pt, err, sizeof err),
	    0);
	ck_assert_int_eq(rows_at(&f, &pt, "kept", NULL), N_COMMITS);
	ck_assert_int_eq(store_set_retention(f.store, -1, err, sizeof err), 0);
	fx_close(&f);
	fx_open(&f);
	ck_assert_int_eq(store_retention(f.store, &own), 3600 * 1000);
	ck_assert_int_eq(own, 0);
	fx_done(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("time_log");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_records_survive_and_torn_tail_is_cut);
	tcase_add_test(tc, test_restore_at_times_across_rollovers_and_restarts);
	tcase_add_test(tc, test_start_up_cuts_and_dates);
	tcase_add_test(tc, test_fork_shares_the_base);
	tcase_add_test(tc, test_retention_per_database);
	tcase_add_test(
	    tc, test_answered_commits_keep_their_times_through_power_loss);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
