/* A fork's live database, copy-on-write over the base it shares with its
 * source (server/live_overlay.h): the fork's live.db holds only the pages
 * written since, on disk as a sparse file, and reads the rest from the
 * shared base; it stays exactly the forked state through writes,
 * checkpoints, clean and unclean stops, and a rollover after which the
 * fork's next start makes live.db a whole file of its own. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "store_fixture.h"

#define ROWS 4000
#define ROWS_TEXT "4000"

/* The text in the first column of the first row (malloc'd). */
static char *query_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	char *out;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	out = strdup((const char *)sqlite3_column_text(st, 0));
	ck_assert_ptr_nonnull(out);
	sqlite3_finalize(st);
	return out;
}

/* A database of ROWS rows of about 1 KB, deterministic, imported: all of
 * it in generation 1's base.  Then a few commits in its log. */
static void open_source(struct fx *f)
{
	char *seed;
	sqlite3 *db;

	fx_init(f, "source");
	seed = fixture_path(f->dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_exec(db,
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < " ROWS_TEXT ") "
			 "INSERT INTO t SELECT i, printf('%d:%.*c', i, 1000, "
			 "char(65 + i % 26)) FROM n;"
			 "CREATE INDEX tv ON t(substr(v, 1, 12));",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	f->cfg.import_path = seed;
	f->cfg.generation_frames = 1000000;
	f->cfg.compression_level = 1; /* a base.db.zst in the background */
	fx_open(f);
	f->cfg.import_path = NULL;
	fx_exec(f, "UPDATE t SET v = v || '+' WHERE id % 500 = 0");
	fx_exec(f, "INSERT INTO t VALUES (" ROWS_TEXT " + 1, 'last')");
	free(seed);
}

/* The whole table as one text, to compare states exactly. */
static char *table_text(sqlite3 *db)
{
	return query_text(
	    db, "SELECT count(*) || '|' || group_concat(id || '=' || v, ',') "
		"FROM (SELECT * FROM t ORDER BY id)");
}

static struct stat stat_of(const char *dir, const char *name)
{
	char *path = fixture_path(dir, name);
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
	free(path);
	return st;
}

/* live.db takes far less disk than its length: only written pages. */
static void assert_sparse(const char *dir)
{
	struct stat st = stat_of(dir, "live.db");

	ck_assert_int_gt(st.st_size, (off_t)ROWS * 1000);
	ck_assert_msg((off_t)st.st_blocks * 512 < st.st_size / 4,
		      "live.db uses %lld bytes on disk for %lld",
		      (long long)st.st_blocks * 512, (long long)st.st_size);
}

static void fork_now(struct fx *src, struct fx *fk)
{
	struct store_point pt;
	char err[512] = "";

	fx_init_in(fk, src->dir, "fork");
	pt.generation = store_generation(src->store);
	pt.frame = store_head(src->store);
	ck_assert_msg(store_fork(src->store, &pt, fk->data, err, sizeof err) ==
			  0,
		      "store_fork: %s", err);
}

START_TEST(test_fork_shares_base_and_reads_it)
{
	struct fx src, fk;
	char *want, *got;
	struct stat base, live_base;

	open_source(&src);
	want = table_text(src.db);
	fork_now(&src, &fk);
	fx_open(&fk);
	/* The fork's live database is sparse over a third link to the
	 * source's base. */
	base = stat_of(src.data, "gen-00000001/base.db");
	live_base = stat_of(fk.data, "live.base");
	ck_assert_uint_eq(base.st_ino, live_base.st_ino);
	assert_sparse(fk.data);
	got = table_text(fk.db);
	ck_assert_str_eq(got, want);
	fixture_assert_integrity(fk.db);
	free(got);

	/* Writes on the fork: through checkpoints into live.db, never into
	 * the shared base; the source is unchanged. */
	fx_exec(&fk, "UPDATE t SET v = 'fork ' || id WHERE id % 97 = 0");
	fx_exec(&fk, "DELETE FROM t WHERE id > 3990");
	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(fk.db, NULL,
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, NULL),
			 SQLITE_OK);
	fixture_assert_integrity(fk.db);
	ck_assert_int_eq(
	    fixture_query_int(fk.db, "SELECT count(*) FROM t WHERE v LIKE "
				     "'fork %'"),
	    3990 / 97);
	got = table_text(src.db);
	ck_assert_str_eq(got, want);
	free(got);
	ck_assert_int_eq(stat_of(src.data, "gen-00000001/base.db").st_mtime,
			 base.st_mtime);
	free(want);
	want = table_text(fk.db);

	/* A clean stop and a start: the same state, still sparse. */
	fx_close(&fk);
	fx_open(&fk);
	got = table_text(fk.db);
	ck_assert_str_eq(got, want);
	fixture_assert_integrity(fk.db);
	assert_sparse(fk.data);
	free(got);
	free(want);
	fx_close(&fk);
	free(fk.data);
	free(fk.dir);
	fx_done(&src);
}
END_TEST

/* kill -9 of a process writing to the fork: start-up rebuilds the sparse
 * live.db from the shared base and the fork's log, and every answered
 * commit is there. */
START_TEST(test_unclean_stop_rebuilds_sparse)
{
	struct fx src, fk;
	char *want, *got;
	pid_t pid;
	int status;

	open_source(&src);
	fork_now(&src, &fk);
	fx_close(&src);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fx_open(&fk);
		fx_exec(&fk, "UPDATE t SET v = 'child ' || id WHERE id % 89 "
			     "= 0");
		fx_exec(&fk, "INSERT INTO t VALUES (9999, 'answered')");
		_exit(0); /* as kill -9: nothing closed */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	stat_of(fk.data, "live.db-wal"); /* the stop was not clean */
	fx_open(&fk);
	assert_sparse(fk.data);
	fixture_assert_integrity(fk.db);
	ck_assert_int_eq(fixture_query_int(fk.db, "SELECT count(*) FROM t "
						  "WHERE v LIKE 'child %'"),
			 (ROWS + 1) / 89);
	ck_assert_str_eq(
	    (got = query_text(fk.db, "SELECT v FROM t WHERE id = 9999")),
	    "answered");
	free(got);
	want = table_text(fk.db);
	fx_close(&fk);
	fx_open(&fk);
	got = table_text(fk.db);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	fx_close(&fk);
	free(fk.data);
	free(fk.dir);
	fx_done(&src);
}
END_TEST

/* After the fork's own rollover its next start makes live.db whole from
 * the new generation's base and drops live.base, even once retention has
 * removed the generation it shared. */
START_TEST(test_rollover_ends_sharing)
{
	struct fx src, fk;
	char *want, *got, *live_base;
	struct stat st;

	open_source(&src);
	fork_now(&src, &fk);
	fk.cfg.generation_frames = 20;
	fx_open(&fk);
	fx_exec(&fk, "UPDATE t SET v = 'gen2 ' || id WHERE id % 3 = 0");
	store_maintain(fk.store);
	ck_assert_uint_ge(store_generation(fk.store), 2);
	fx_exec(&fk, "INSERT INTO t VALUES (7777, 'after the rollover')");
	want = table_text(fk.db);
	fixture_assert_integrity(fk.db);
	fx_close(&fk);
	fx_open(&fk);
	live_base = fixture_path(fk.data, "live.base");
	ck_assert_int_ne(stat(live_base, &st), 0);
	st = stat_of(fk.data, "live.db");
	ck_assert_int_ge((off_t)st.st_blocks * 512, st.st_size / 2);
	got = table_text(fk.db);
	ck_assert_str_eq(got, want);
	fixture_assert_integrity(fk.db);
	free(got);
	free(want);
	free(live_base);
	fx_close(&fk);
	free(fk.data);
	free(fk.dir);
	fx_done(&src);
}
END_TEST

/* A fork of a fork shares the same base, and is its own state. */
START_TEST(test_fork_of_a_fork)
{
	struct fx src, fk, grand;
	struct store_point pt;
	char err[512] = "", *want, *got;

	open_source(&src);
	fork_now(&src, &fk);
	fx_open(&fk);
	fx_exec(&fk, "UPDATE t SET v = 'first ' || id WHERE id % 101 = 0");
	want = table_text(fk.db);
	fx_init_in(&grand, src.dir, "grand");
	pt.generation = store_generation(fk.store);
	pt.frame = store_head(fk.store);
	ck_assert_msg(store_fork(fk.store, &pt, grand.data, err, sizeof err) ==
			  0,
		      "%s", err);
	fx_exec(&fk, "DELETE FROM t");
	fx_open(&grand);
	assert_sparse(grand.data);
	ck_assert_uint_eq(stat_of(grand.data, "live.base").st_ino,
			  stat_of(src.data, "gen-00000001/base.db").st_ino);
	got = table_text(grand.db);
	ck_assert_str_eq(got, want);
	fixture_assert_integrity(grand.db);
	free(got);
	free(want);
	fx_close(&grand);
	free(grand.data);
	free(grand.dir);
	fx_close(&fk);
	free(fk.data);
	free(fk.dir);
	fx_done(&src);
}
END_TEST

/* gen-N/base.terms (server/store_terms.c): the checksum terms of a base,
 * written at a rollover from what the store knows, must be those of the
 * base.db the rollover built, page for page. */
static void assert_terms_match_base(const char *gen_dir)
{
	char *terms_path = fixture_path(gen_dir, "base.terms");
	char *base_path = fixture_path(gen_dir, "base.db");
	uint8_t page[4096];
	uint64_t term;
	uint32_t n, pgno;
	int tfd = open(terms_path, O_RDONLY), bfd = open(base_path, O_RDONLY);
	struct stat st;

	ck_assert_int_ge(tfd, 0);
	ck_assert_int_ge(bfd, 0);
	ck_assert_int_eq(fstat(bfd, &st), 0);
	ck_assert_int_eq(pread(tfd, &n, 4, 8), 4);
	ck_assert_uint_eq(n, (uint32_t)(st.st_size / 4096));
	for (pgno = 1; pgno <= n; pgno++) {
		ck_assert_int_eq(
		    pread(bfd, page, sizeof page, (off_t)(pgno - 1) * 4096),
		    4096);
		ck_assert_int_eq(
		    pread(tfd, &term, 8, 32 + (off_t)(pgno - 1) * 8), 8);
		ck_assert_msg(term == dbsum_page(pgno, page, 4096),
			      "term of page %u", pgno);
	}
	close(tfd);
	close(bfd);
	free(terms_path);
	free(base_path);
}

/* The checksum the store reports at its head after a start. */
static uint64_t head_sum(struct fx *f)
{
	uint64_t sum = 0;

	ck_assert_int_eq(store_checksum_at(f->store, store_generation(f->store),
					   store_head(f->store), &sum),
			 0);
	return sum;
}

START_TEST(test_base_terms)
{
	struct fx src, fk;
	char *gen2, *path;
	uint64_t before, after;
	int fd, i;
	char *zst;

	open_source(&src);
	zst = fixture_path(src.data, "gen-00000001/base.db.zst");
	/* The source's compressed base, made in the background. */
	for (i = 0; i < 500 && access(zst, F_OK) != 0; i++) {
		store_maintain(src.store);
		usleep(10000);
	}
	ck_assert_int_eq(access(zst, F_OK), 0);
	/* The import's start computed generation 1's terms; the fork links
	 * them (and opens without reading its base for them), and the
	 * compressed base. */
	fork_now(&src, &fk);
	ck_assert_uint_eq(stat_of(fk.data, "gen-00000001/base.terms").st_ino,
			  stat_of(src.data, "gen-00000001/base.terms").st_ino);
	ck_assert_uint_eq(stat_of(fk.data, "gen-00000001/base.db.zst").st_ino,
			  stat_of(src.data, "gen-00000001/base.db.zst").st_ino);
	fx_open(&fk);
	ck_assert_uint_eq(head_sum(&fk), head_sum(&src));
	fx_close(&fk);
	free(fk.data);
	free(fk.dir);

	/* A rollover writes the new base's terms. */
	fx_close(&src);
	src.cfg.generation_frames = 20;
	fx_open(&src);
	fx_exec(&src, "UPDATE t SET v = 'r ' || id WHERE id % 13 = 0");
	store_maintain(src.store);
	ck_assert_uint_eq(store_generation(src.store), 2);
	gen2 = fixture_path(src.data, "gen-00000002");
	assert_terms_match_base(gen2);
	before = head_sum(&src);
	fx_close(&src);
	fx_open(&src);
	ck_assert_uint_eq(head_sum(&src), before);

	/* A damaged file is not believed: the start computes the terms. */
	fx_close(&src);
	path = fixture_path(gen2, "base.terms");
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\xff\xff", 2, 100), 2);
	close(fd);
	fx_open(&src);
	after = head_sum(&src);
	ck_assert_uint_eq(after, before);
	assert_terms_match_base(gen2); /* and wrote them again */
	free(path);
	free(gen2);
	free(zst);
	fx_done(&src);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("live_overlay");
	TCase *tc = tcase_create("overlay");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fork_shares_base_and_reads_it);
	tcase_add_test(tc, test_unclean_stop_rebuilds_sparse);
	tcase_add_test(tc, test_rollover_ends_sharing);
	tcase_add_test(tc, test_fork_of_a_fork);
	tcase_add_test(tc, test_base_terms);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
