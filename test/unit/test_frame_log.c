/* The frame log: appends and range reads, replay into a database file
 * byte-equal to what SQLite itself wrote, and readers on other threads
 * while appending.  The recovery of a torn tail and refused headers are in
 * test_frame_log_recovery.c; the shared helpers in frame_log_helpers.[ch]. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "frame_log_helpers.h"
#include "server/frame_log.h"
#include "wal/walfmt.h"

/* ---------------------------------------------------------------------- */
/* basics */

START_TEST(test_create_and_open_errors)
{
	struct flh_fx f;
	struct frame_log *l = NULL;
	char err[512] = "";
	char *missing;

	flh_fx_init(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(frame_log_db_size(f.log), 0);
	ck_assert_uint_eq(flh_file_size(f.path), WALFMT_HDR_SIZE);
	flh_assert_file_valid(f.path, 0, NULL);
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(flh_file_size(f.path), WALFMT_HDR_SIZE);
	/* Not created without create. */
	missing = fixture_path(f.dir, "missing.log");
	ck_assert_int_ne(frame_log_open(missing, 0, &l, err, sizeof err), 0);
	ck_assert_msg(strstr(err, "missing.log") != NULL, "%s", err);
	ck_assert_int_ne(access(missing, F_OK), 0);
	free(missing);
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_append_and_read)
{
	struct flh_fx f;
	const uint32_t t1[] = {1, 2}, t2[] = {2, 3, 1}, t3[] = {4};
	const uint32_t commits[] = {0, 2, 0, 0, 3, 4};
	uint8_t *buf, *raw;
	uint64_t len;

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, t1, 2, 2, 1), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 2);
	ck_assert_uint_eq(frame_log_db_size(f.log), 2);
	ck_assert_int_eq(flh_append_txn(f.log, t2, 3, 3, 2), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(frame_log_db_size(f.log), 3);
	ck_assert_int_eq(flh_append_txn(f.log, t3, 1, 4, 3), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 6);
	ck_assert_uint_eq(frame_log_db_size(f.log), 4);
	flh_assert_file_valid(f.path, 6, commits);

	/* Frame N sits at its fixed offset. */
	ck_assert_uint_eq(frame_log_offset(1), WALFMT_HDR_SIZE);
	ck_assert_uint_eq(frame_log_offset(4),
			  WALFMT_HDR_SIZE + 3 * WALFMT_FRAME_SIZE);

	buf = malloc(6 * WALFMT_FRAME_SIZE);
	ck_assert_int_eq(frame_log_read(f.log, 1, 7, buf), 0);
	flh_assert_frame(buf, 1, 0, 1);
	flh_assert_frame(buf + WALFMT_FRAME_SIZE, 2, 2, 1);
	flh_assert_frame(buf + 2 * WALFMT_FRAME_SIZE, 2, 0, 2);
	flh_assert_frame(buf + 3 * WALFMT_FRAME_SIZE, 3, 0, 2);
	flh_assert_frame(buf + 4 * WALFMT_FRAME_SIZE, 1, 3, 2);
	flh_assert_frame(buf + 5 * WALFMT_FRAME_SIZE, 4, 4, 3);

	/* A middle range, by read and through the fd: the same bytes. */
	ck_assert_int_eq(frame_log_read(f.log, 3, 5, buf), 0);
	flh_assert_frame(buf, 2, 0, 2);
	flh_assert_frame(buf + WALFMT_FRAME_SIZE, 3, 0, 2);
	len = 2 * WALFMT_FRAME_SIZE;
	raw = malloc(len);
	ck_assert_int_eq(
	    pread(frame_log_fd(f.log), raw, len, (off_t)frame_log_offset(3)),
	    (ssize_t)len);
	ck_assert_int_eq(memcmp(raw, buf, len), 0);
	ck_assert_int_eq(frame_log_read(f.log, 6, 7, buf), 0);
	flh_assert_frame(buf, 4, 4, 3);

	/* Ranges outside [1, head + 1). */
	ck_assert_int_eq(frame_log_read(f.log, 0, 2, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 3, 3, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 4, 2, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 1, 8, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 7, 8, buf), -EINVAL);
	free(raw);
	free(buf);
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_append_refuses_bad_entries)
{
	struct flh_fx f;
	const uint32_t ok[] = {1}, zero[] = {1, 0};
	uint8_t page[WALFMT_PAGE_SIZE];
	struct frame_log_entry e[2];

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, ok, 1, 1, 1), 0);
	/* No commit frame at the end. */
	ck_assert_int_eq(flh_append_txn(f.log, ok, 1, 0, 2), -EINVAL);
	/* Page number 0. */
	ck_assert_int_eq(flh_append_txn(f.log, zero, 2, 2, 2), -EINVAL);
	/* Nothing. */
	ck_assert_int_eq(frame_log_append(f.log, e, 0), -EINVAL);
	/* A missing page. */
	flh_fill_page(page, 1, 9);
	e[0] = (struct frame_log_entry){1, 0, NULL};
	e[1] = (struct frame_log_entry){2, 2, page};
	ck_assert_int_eq(frame_log_append(f.log, e, 2), -EINVAL);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	ck_assert_uint_eq(frame_log_db_size(f.log), 1);
	ck_assert_uint_eq(flh_file_size(f.path), frame_log_offset(2));
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	flh_fx_done(&f);
}
END_TEST

/* Appends larger than one write chunk, and a reopen that walks them. */
START_TEST(test_reopen_keeps_everything)
{
	struct flh_fx f;
	uint32_t pg[150], commits[152] = {0};
	uint8_t *a, *b;
	size_t i;

	flh_fx_init(&f);
	for (i = 0; i < 150; i++)
		pg[i] = (uint32_t)(i % 140) + 1;
	ck_assert_int_eq(flh_append_txn(f.log, pg, 150, 140, 1), 0);
	ck_assert_int_eq(flh_append_txn(f.log, pg, 1, 140, 2), 0);
	commits[149] = 140;
	commits[150] = 140;
	a = malloc(151 * WALFMT_FRAME_SIZE);
	b = malloc(151 * WALFMT_FRAME_SIZE);
	ck_assert_int_eq(frame_log_read(f.log, 1, 152, a), 0);
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 151);
	ck_assert_uint_eq(frame_log_db_size(f.log), 140);
	ck_assert_int_eq(frame_log_read(f.log, 1, 152, b), 0);
	ck_assert_int_eq(memcmp(a, b, 151 * WALFMT_FRAME_SIZE), 0);
	for (i = 0; i < 150; i++)
		flh_assert_frame(b + i * WALFMT_FRAME_SIZE, pg[i],
				 i == 149 ? 140 : 0, 1);
	/* Appends after a reopen continue the checksum chain. */
	ck_assert_int_eq(flh_append_txn(f.log, pg + 3, 1, 140, 3), 0);
	commits[151] = 140;
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 152);
	flh_assert_file_valid(f.path, 152, commits);
	free(a);
	free(b);
	flh_fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* replay */

/* A database built by SQLite one transaction at a time (rollback journal,
 * so the file itself is the state after each commit); each transaction
 * becomes frames of its changed pages, as the primary logs them. */
struct history {
	int n;            /* transactions */
	uint8_t *img[16]; /* database file after transaction i */
	size_t len[16];
	uint32_t head[16]; /* log head after transaction i */
};

static void history_free(struct history *h)
{
	int i;

	for (i = 0; i < h->n; i++)
		free(h->img[i]);
}

static void log_transaction(struct flh_fx *f, struct history *h,
			    const char *db_path)
{
	const uint8_t *prev = h->n > 0 ? h->img[h->n - 1] : NULL;
	size_t prev_len = h->n > 0 ? h->len[h->n - 1] : 0;
	struct frame_log_entry e[4096];
	size_t len, n = 0, off;
	uint8_t *img = flh_read_whole(db_path, &len);

	ck_assert_uint_eq(len % WALFMT_PAGE_SIZE, 0);
	ck_assert_uint_gt(len, 0);
	for (off = 0; off < len; off += WALFMT_PAGE_SIZE) {
		if (off + WALFMT_PAGE_SIZE <= prev_len &&
		    memcmp(prev + off, img + off, WALFMT_PAGE_SIZE) == 0)
			continue;
		ck_assert_uint_lt(n, 4096);
		e[n].pgno = (uint32_t)(off / WALFMT_PAGE_SIZE) + 1;
		e[n].db_size = 0;
		e[n].page = img + off;
		n++;
	}
	/* SQLite changes page 1 (the change counter) in every commit. */
	ck_assert_uint_gt(n, 0);
	e[n - 1].db_size = (uint32_t)(len / WALFMT_PAGE_SIZE);
	ck_assert_int_eq(frame_log_append(f->log, e, n), 0);
	ck_assert_uint_lt(h->n, 16);
	h->img[h->n] = img;
	h->len[h->n] = len;
	h->head[h->n] = frame_log_head(f->log);
	h->n++;
}

static void build_history(struct flh_fx *f, struct history *h,
			  const char *const *txns, size_t n_txns,
			  const char *setup)
{
	char *db_path = fixture_path(f->dir, "sqlite.db");
	sqlite3 *db;
	size_t i;

	memset(h, 0, sizeof *h);
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	if (setup != NULL)
		ck_assert_int_eq(sqlite3_exec(db, setup, NULL, NULL, NULL),
				 SQLITE_OK);
	for (i = 0; i < n_txns; i++) {
		char *msg = NULL;
		ck_assert_msg(sqlite3_exec(db, txns[i], NULL, NULL, &msg) ==
				  SQLITE_OK,
			      "%s: %s", txns[i], msg ? msg : "");
		log_transaction(f, h, db_path);
	}
	sqlite3_close(db);
	free(db_path);
}

static void assert_integrity_ok(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Replay [1, upto] onto a file holding initial (len bytes) and compare
 * with the expected image. */
static void assert_replay(struct flh_fx *f, uint32_t upto,
			  const uint8_t *initial, size_t initial_len,
			  const uint8_t *want, size_t want_len)
{
	char *out = fixture_path(f->dir, "replayed.db");
	uint8_t *got;
	size_t got_len;
	int fd;

	flh_write_whole(out, initial, initial_len);
	fd = open(out, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(frame_log_replay(f->log, upto, fd), 0);
	close(fd);
	got = flh_read_whole(out, &got_len);
	ck_assert_uint_eq(got_len, want_len);
	ck_assert_msg(memcmp(got, want, want_len) == 0,
		      "replay up to frame %u differs from SQLite's file", upto);
	assert_integrity_ok(out);
	free(got);
	unlink(out);
	free(out);
}

static const char *const workload[] = {
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
    "CREATE INDEX t_v ON t(v)",
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
    "WHERE i < 300) INSERT INTO t(v) SELECT randomblob(300 + i % 700) "
    "FROM c",
    "UPDATE t SET v = randomblob(50) WHERE id % 3 = 0",
    "CREATE TABLE u(x TEXT); INSERT INTO u VALUES ('a'), ('b')",
    "DELETE FROM t WHERE id > 40",
    "VACUUM", /* the file shrinks */
    "INSERT INTO t(v) VALUES (randomblob(20000))",
    "DROP TABLE u",
};

START_TEST(test_replay_matches_sqlite)
{
	struct flh_fx f;
	struct history h;
	size_t n = sizeof workload / sizeof workload[0];
	int i;

	flh_fx_init(&f);
	build_history(&f, &h, workload, n, NULL);
	ck_assert_int_eq(h.n, (int)n);
	/* The VACUUM made the database smaller. */
	ck_assert_uint_lt(h.len[5], h.len[4]);
	/* Every commit point, from the empty base (the first generation's
	 * base is an empty file). */
	for (i = 0; i < h.n; i++)
		assert_replay(&f, h.head[i], NULL, 0, h.img[i], h.len[i]);
	/* From a copy of an older state (the next generation's base is
	 * built this way, and so is the live database at start-up). */
	assert_replay(&f, h.head[h.n - 1], h.img[2], h.len[2], h.img[h.n - 1],
		      h.len[h.n - 1]);
	/* Onto a file that is bigger than the result: cut to size. */
	assert_replay(&f, h.head[5], h.img[4], h.len[4], h.img[5], h.len[5]);
	/* The log survives a reopen and replays the same. */
	flh_fx_reopen(&f);
	assert_replay(&f, h.head[h.n - 1], NULL, 0, h.img[h.n - 1],
		      h.len[h.n - 1]);
	history_free(&h);
	flh_fx_done(&f);
}
END_TEST

/* auto_vacuum=FULL shrinks the file at the commit of a DELETE. */
START_TEST(test_replay_auto_vacuum_shrink)
{
	static const char *const txns[] = {
	    "CREATE TABLE t(x)",
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < 200) INSERT INTO t SELECT randomblob(2000) FROM c",
	    "DELETE FROM t WHERE rowid > 10",
	    "INSERT INTO t VALUES (randomblob(5000))",
	};
	struct flh_fx f;
	struct history h;
	int i;

	flh_fx_init(&f);
	build_history(&f, &h, txns, 4, "PRAGMA auto_vacuum = FULL");
	ck_assert_uint_lt(h.len[2], h.len[1]);
	for (i = 0; i < h.n; i++)
		assert_replay(&f, h.head[i], NULL, 0, h.img[i], h.len[i]);
	ck_assert_uint_eq(frame_log_db_size(f.log),
			  h.len[3] / WALFMT_PAGE_SIZE);
	history_free(&h);
	flh_fx_done(&f);
}
END_TEST

/* The database size of the commit frame decides the length, not the
 * highest page written. */
START_TEST(test_replay_db_size)
{
	struct flh_fx f;
	const uint32_t t1[] = {1, 2, 3, 4}, t2[] = {1}, t3[] = {3};
	uint8_t *img, page[WALFMT_PAGE_SIZE];
	char *out;
	size_t len;
	int fd;

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, t1, 4, 4, 1), 0);
	ck_assert_int_eq(flh_append_txn(f.log, t2, 1, 2, 2), 0);
	ck_assert_int_eq(flh_append_txn(f.log, t3, 1, 3, 3), 0);
	out = fixture_path(f.dir, "out.db");

	flh_write_whole(out, NULL, 0);
	fd = open(out, O_RDWR);
	ck_assert_int_eq(frame_log_replay(f.log, 5, fd), 0);
	img = flh_read_whole(out, &len);
	ck_assert_uint_eq(len, 2 * WALFMT_PAGE_SIZE);
	flh_fill_page(page, 1, 2);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	flh_fill_page(page, 2, 1);
	ck_assert_int_eq(memcmp(img + WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE),
			 0);
	free(img);

	/* Up to frame 4: four pages, the first of version 1. */
	ck_assert_int_eq(frame_log_replay(f.log, 4, fd), 0);
	img = flh_read_whole(out, &len);
	ck_assert_uint_eq(len, 4 * WALFMT_PAGE_SIZE);
	flh_fill_page(page, 1, 1);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	flh_fill_page(page, 4, 1);
	ck_assert_int_eq(
	    memcmp(img + 3 * WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE), 0);
	free(img);

	/* Up to frame 6: three pages, page 3 of version 3. */
	ck_assert_int_eq(frame_log_replay(f.log, 6, fd), 0);
	img = flh_read_whole(out, &len);
	ck_assert_uint_eq(len, 3 * WALFMT_PAGE_SIZE);
	flh_fill_page(page, 1, 2);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	flh_fill_page(page, 3, 3);
	ck_assert_int_eq(
	    memcmp(img + 2 * WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE), 0);
	free(img);

	/* Only commit frames within the head. */
	ck_assert_int_eq(frame_log_replay(f.log, 0, fd), -EINVAL);
	ck_assert_int_eq(frame_log_replay(f.log, 3, fd), -EINVAL);
	ck_assert_int_eq(frame_log_replay(f.log, 7, fd), -EINVAL);
	/* ... and a refused replay leaves the file alone. */
	ck_assert_uint_eq(flh_file_size(out), 3 * WALFMT_PAGE_SIZE);
	close(fd);
	free(out);
	flh_fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* concurrency: readers on other threads while appending */

struct reader_arg {
	struct frame_log *log;
	_Atomic int stop;
	_Atomic int checked;
	_Atomic int bad;
};

/* Frame i (1-based) of the concurrency test writes page i, version i. */
static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t *buf = malloc(WALFMT_FRAME_SIZE);
	uint8_t page[WALFMT_PAGE_SIZE];

	while (!a->stop) {
		uint32_t head = frame_log_head(a->log), i;
		if (head == 0)
			continue;
		i = head - (uint32_t)(a->checked % (int)head);
		if (frame_log_read(a->log, i, i + 1, buf) != 0) {
			a->bad++;
			continue;
		}
		flh_fill_page(page, i, i);
		if (walfmt_get32(buf) != i ||
		    memcmp(buf + WALFMT_FRAME_HDR_SIZE, page,
			   WALFMT_PAGE_SIZE) != 0)
			a->bad++;
		a->checked++;
	}
	free(buf);
	return NULL;
}

START_TEST(test_concurrent_readers)
{
	struct flh_fx f;
	struct reader_arg a[2];
	pthread_t th[2];
	int k;
	uint8_t page[WALFMT_PAGE_SIZE];
	uint32_t i;

	flh_fx_init(&f);
	memset(a, 0, sizeof a);
	for (k = 0; k < 2; k++) {
		a[k].log = f.log;
		ck_assert_int_eq(pthread_create(&th[k], NULL, reader, &a[k]),
				 0);
	}
	for (i = 1; i <= 200; i++) {
		struct frame_log_entry e = {i, i, page};
		flh_fill_page(page, i, i);
		ck_assert_int_eq(frame_log_append(f.log, &e, 1), 0);
	}
	for (k = 0; k < 2; k++) {
		/* Let each reader see the full log at least once. */
		while (a[k].checked < 10)
			usleep(1000);
		a[k].stop = 1;
		pthread_join(th[k], NULL);
		ck_assert_int_eq(a[k].bad, 0);
		ck_assert_int_gt(a[k].checked, 0);
	}
	ck_assert_uint_eq(frame_log_head(f.log), 200);
	flh_fx_done(&f);
}
END_TEST

static Suite *frame_log_suite(void)
{
	Suite *s = suite_create("frame_log");
	TCase *tc = tcase_create("frame_log");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_and_open_errors);
	tcase_add_test(tc, test_append_and_read);
	tcase_add_test(tc, test_append_refuses_bad_entries);
	tcase_add_test(tc, test_reopen_keeps_everything);
	tcase_add_test(tc, test_replay_matches_sqlite);
	tcase_add_test(tc, test_replay_auto_vacuum_shrink);
	tcase_add_test(tc, test_replay_db_size);
	tcase_add_test(tc, test_concurrent_readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(frame_log_suite());
}
