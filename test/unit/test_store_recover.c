/* Start-up recovery of the live database (store_recover.c): a replay of the
 * log onto live.db that a crash cut short leaves a file that is a mix of
 * the base and some of the generation's pages, with no WAL beside it, as
 * after a clean stop.  The next start-up must replay again, not hand the
 * mix to SQLite first (which may find it malformed and refuse to start:
 * seen with kill -9 during a fork's first open). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "server/frame_log.h"
#include "store_fixture.h"

START_TEST(test_replay_cut_short_is_redone)
{
	struct fx f;
	struct frame_log *log;
	char err[256], cmd[4096], *live, *base, *logp;
	uint32_t head;
	int fd, i;

	fx_init(&f, "data");
	f.cfg.generation_frames = 1000000;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(i INTEGER PRIMARY KEY, b BLOB)");
	for (i = 0; i < 40; i++)
		fx_exec(&f, "INSERT INTO t VALUES (NULL, randomblob(3000));"
			    "CREATE INDEX IF NOT EXISTS tb ON t(b)");
	fx_exec(&f, "CREATE TABLE u(x); INSERT INTO u VALUES (42);"
		    "INSERT INTO t SELECT NULL, randomblob(3000) FROM t");
	head = store_head(f.store);
	fx_close(&f);

	/* What a crash in the middle of the replay leaves: the base copied
	 * to live.db, then the log's frames up to a point part-way, written
	 * in place; no WAL. */
	live = fixture_path(f.data, "live.db");
	base = fixture_path(f.data, "gen-00000001/base.db");
	logp = fixture_path(f.data, "gen-00000001/frames.log");
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", base, live);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(frame_log_open(logp, 0, &log, err, sizeof err), 0);
	ck_assert_uint_eq(frame_log_head(log), head);
	frame_log_close(log);
	fd = open(live, O_RDWR);
	ck_assert_int_ge(fd, 0);
	/* The frames up to one in the middle of a transaction, written in
	 * place as the replay does, with the database grown as far as
	 * they reach: a mix no commit ever made. */
	{
		uint8_t frame[4120];
		int lfd = open(logp, O_RDONLY);
		uint32_t k;
		ck_assert_int_ge(lfd, 0);
		for (k = 1; k <= head - 3; k++) {
			uint32_t pgno;
			ck_assert_int_eq(pread(lfd, frame, sizeof frame,
					       (off_t)frame_log_offset(k)),
					 (ssize_t)sizeof frame);
			pgno = (uint32_t)frame[0] << 24 | frame[1] << 16 |
			       frame[2] << 8 | frame[3];
			ck_assert_int_eq(pwrite(fd, frame + 24, 4096,
						(off_t)(pgno - 1) * 4096),
					 4096);
		}
		close(lfd);
	}
	close(fd);

	fx_open(&f);
	fixture_assert_integrity(f.db);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 80);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT x FROM u"), 42);
	free(live);
	free(base);
	free(logp);
	fx_done(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_recover");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_replay_cut_short_is_redone);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
