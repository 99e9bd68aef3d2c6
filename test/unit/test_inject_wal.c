/* The WAL injector against the WAL states SQLite and other connections
 * leave (see test_inject.c for the primary P and its replica R): a WAL
 * truncated or restarted by a checkpoint, restarted by the injector itself
 * unless a reader (or the injecting connection) still reads from it, a WAL
 * with big-endian checksums, and the leftovers of a writer that died or
 * spilled and rolled back.  A test run as another process
 * (--spill-and-die, see main) is the dying writer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "inject_helpers.h"
#include "wal/walfmt.h"

/* nBackfill of db's wal-index: the frames a checkpoint copied. */
static uint32_t shm_backfill(sqlite3 *db)
{
	uint32_t v;

	memcpy(&v, (const void *)(ijh_shm_region(db, 0) + 96), 4);
	return v;
}

/* Leave the WAL and -shm files behind, as a crashed process would. */
static void pair_close_replica(struct ijh_pair *pr)
{
	int off;

	ck_assert_int_eq(
	    sqlite3_db_config(pr->r, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &off),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_db_config(
			     pr->r2, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &off),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(pr->r), SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(pr->r2), SQLITE_OK);
	pr->r = pr->r2 = NULL;
}

/* ---- 6: restarting the WAL ---- */

START_TEST(test_inject_after_truncate)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct ijh_shm_hdr before, after;
	uint8_t *hdr;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 30);
	before = ijh_shm_header(pr->r);
	ijh_checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(ijh_wal_size(pr->r), 0);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 5);
	after = ijh_shm_header(pr->r);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_int_ne(memcmp(before.salt, after.salt, 8), 0);
	hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(memcmp(hdr + 16, after.salt, 8), 0);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 0);
	free(hdr);
	ck_assert_int_eq(ijh_assert_wal_chain(pr->r), 0);
	ijh_assert_hash_blocks(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_pair_free(pr);
}
END_TEST

START_TEST(test_inject_after_restart)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	uint8_t *old_hdr, *new_hdr;
	int64_t size;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 60);
	old_hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ijh_checkpoint_fully(pr->r2, "RESTART");
	size = ijh_wal_size(pr->r);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 3);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_int_eq(ijh_wal_size(pr->r), size); /* old frames remain */
	/* RESTART itself leaves the header; the injector restarts the WAL. */
	new_hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 12),
			  walfmt_get32(old_hdr + 12) + 1);
	ck_assert_int_ne(memcmp(old_hdr + 16, new_hdr + 16, 8), 0);
	free(old_hdr);
	free(new_hdr);
	ijh_assert_wal_chain(pr->r);
	ijh_pair_assert_same_content(pr);
	/* Recovery must stop at our commit, not resurrect the old frames. */
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_pair_free(pr);
}
END_TEST

/* The checkpoint read locks stay usable after a restart: nothing leaked. */
static void assert_wal_usable(struct ijh_pair *pr)
{
	sqlite3 *other = ijh_open_db(pr->r_path);

	sqlite3_busy_timeout(other, 0);
	ck_assert_uint_eq(ijh_content_hash_in_txn(other),
			  ijh_content_hash_in_txn(pr->p2));
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	ijh_checkpoint_fully(other, "PASSIVE");
	sqlite3_close(other);
}

START_TEST(test_injector_restarts_wal)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	uint8_t *old_hdr, *new_hdr;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	old_hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	ck_assert_uint_eq(shm_backfill(pr->r), ijh_shm_header(pr->r).max_frame);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 2);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_uint_eq(shm_backfill(pr->r), 0);
	new_hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 12),
			  walfmt_get32(old_hdr + 12) + 1);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 16),
			  walfmt_get32(old_hdr + 16) + 1);
	free(old_hdr);
	free(new_hdr);
	ijh_assert_wal_chain(pr->r);
	ijh_assert_hash_blocks(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	assert_wal_usable(pr);
	ijh_pair_free(pr);
}
END_TEST

/* A reader whose snapshot includes WAL frames (READ(k), k > 0) blocks the
 * restart: the batch is appended, and the reader keeps its snapshot. */
START_TEST(test_reader_in_wal_blocks_restart)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	sqlite3 *reader = ijh_open_db(pr->r_path);
	uint32_t mx;
	uint64_t seen;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	fixture_exec(reader, "BEGIN");
	seen = ijh_content_hash(reader);
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	mx = ijh_shm_header(pr->r).max_frame;
	ck_assert_uint_eq(shm_backfill(pr->r), mx);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, mx + 1);
	ck_assert_uint_eq(ijh_content_hash(reader), seen);
	fixture_exec(reader, "COMMIT");
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);

	/* Once the reader is gone the next batch restarts the WAL. */
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, 1);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(reader);
	ijh_pair_free(pr);
}
END_TEST

/* A reader that started after a full checkpoint reads through READ(0), from
 * the database file only: the restart goes ahead under it. */
START_TEST(test_restart_under_read0_reader)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	sqlite3 *reader = ijh_open_db(pr->r_path);
	uint64_t seen;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	fixture_exec(reader, "BEGIN");
	seen = ijh_content_hash(reader);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_uint_eq(ijh_content_hash(reader), seen);
	fixture_exec(reader, "COMMIT");
	ck_assert_uint_ne(ijh_content_hash_in_txn(reader), seen);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(reader);
	ijh_pair_free(pr);
}
END_TEST

/* The internal connection itself reads through READ(k > 0) (its transaction
 * began before the checkpoint): it must not restart the WAL although
 * nBackfill == mxFrame. */
START_TEST(test_own_wal_snapshot_blocks_restart)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct ijh_batch b;
	char *msg = NULL;
	uint32_t mx;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	fixture_exec(pr->p, "INSERT INTO t(v) VALUES (randomblob(5000))");
	ijh_pair_extract(pr, &b);
	fixture_exec(pr->r, "BEGIN IMMEDIATE");
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	mx = ijh_shm_header(pr->r).max_frame;
	ck_assert_uint_eq(shm_backfill(pr->r), mx);
	ck_assert_int_eq(wal_inject(pr->r, NULL, b.pages, b.n, b.db_size, &msg),
			 SQLITE_OK);
	fixture_exec(pr->r, "COMMIT");
	ck_assert_uint_eq(ijh_shm_header(pr->r).max_frame, mx + b.n);
	ijh_batch_free(&b);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	assert_wal_usable(pr);
	ijh_pair_free(pr);
}
END_TEST

/* ---- 7: a WAL with big-endian checksums ---- */

/* Rewrite a WAL (no connection open) with magic 0x377f0683: the same frames,
 * checksummed over big-endian words. */
static void convert_wal_big_endian(const char *path)
{
	struct walfmt_header h;
	uint32_t chain[2], out[2], i, n = 0;
	size_t len;
	uint8_t *buf = fixture_read_file(path, &len);

	ck_assert_int_eq(walfmt_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.magic, WALFMT_MAGIC_LE);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	while (
	    walfmt_frame_offset(n + 2, ijh_page_size) <= len &&
	    walfmt_frame_verify(0, h.salt, chain,
				buf + walfmt_frame_offset(n + 1, ijh_page_size),
				ijh_page_size) == 0) {
		n++;
	}
	ck_assert_uint_gt(n, 0);
	h.magic = WALFMT_MAGIC_BE;
	walfmt_header_encode(&h, buf);
	out[0] = h.cksum[0];
	out[1] = h.cksum[1];
	for (i = 1; i <= n; i++) {
		uint8_t *f = buf + walfmt_frame_offset(i, ijh_page_size);

		walfmt_frame_encode(
		    1, h.salt, out, walfmt_get32(f), walfmt_get32(f + 4),
		    f + WALFMT_FRAME_HDR_SIZE, ijh_page_size, f);
	}
	ijh_write_file(path, buf, len);
	free(buf);
}

START_TEST(test_big_endian_wal)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	char *wal_path;
	uint8_t *hdr;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	ijh_pair_commit(pr, "UPDATE acc SET bal = bal + 3 WHERE id < 10");
	pair_close_replica(pr);
	ck_assert_int_ne(asprintf(&wal_path, "%s-wal", pr->r_path), -1);
	convert_wal_big_endian(wal_path);
	free(wal_path);
	ijh_pair_open_replica(pr); /* the first opener recovers the WAL */
	ck_assert_uint_eq(ijh_shm_header(pr->r).big_end_cksum, 1);
	ck_assert_uint_gt(ijh_shm_header(pr->r).max_frame, 0);
	ijh_pair_assert_same_content(pr);

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 25);
	ijh_pair_commit(pr, "UPDATE acc SET bal = bal - 3 WHERE id < 10");
	ck_assert_int_eq(ijh_assert_wal_chain(pr->r), 1);
	ijh_pair_assert_same_content(pr);
	/* SQLite itself appends to the injected big-endian chain. */
	fixture_exec(pr->r2, "INSERT INTO loc VALUES ('written by SQLite')");
	ck_assert_int_eq(ijh_assert_wal_chain(pr->r), 1);
	hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr), WALFMT_MAGIC_BE);
	free(hdr);
	fixture_assert_integrity(pr->r2);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_pair_free(pr);
}
END_TEST

/* ---- 10: leftovers of a writer that died ---- */

/* Run in a fresh process (see main): spill a large uncommitted transaction
 * into the WAL and the wal-index, then die without rolling back. */
static int spill_and_die(const char *path, int rows)
{
	char sql[256];
	sqlite3 *db;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		return 2;
	}
	snprintf(sql, sizeof sql,
		 "PRAGMA cache_size=10; BEGIN; " IJH_INSERT_ROWS ";", rows);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		return 3;
	}
	_exit(0);
}

static void run_spill_child(const char *path, int rows)
{
	char n[16];
	pid_t pid;
	int status;

	snprintf(n, sizeof n, "%d", rows);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		execl("/proc/self/exe", "test_inject_wal", "--spill-and-die",
		      path, n, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}

START_TEST(test_leftover_hash_entries)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	volatile uint32_t *pgno;
	uint32_t mx;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	mx = ijh_shm_header(pr->r).max_frame;
	ck_assert_uint_lt(mx, 200);
	/* R stays open, so the dead writer's -shm survives as it left it. */
	run_spill_child(pr->r_path, 5000);
	ck_assert_uint_eq(ijh_shm_header(pr->r).max_frame, mx);
	pgno = (volatile uint32_t *)(ijh_shm_region(pr->r, 0) + 136);
	ck_assert_uint_ne(pgno[mx], 0); /* frame mx + 1 */
	ck_assert_uint_ne(pgno[IJH_HASH_NPAGE_ONE - 1], 0);
	ck_assert_uint_ne(((volatile uint32_t *)ijh_shm_region(pr->r, 1))[0],
			  0);

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 5);
	ijh_assert_hash_blocks(pr->r);
	ck_assert_uint_eq(pgno[pr->r_last], 0);
	ijh_assert_wal_chain(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);

	/* Into the dead writer's second hash block. */
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 4200);
	ck_assert_uint_ge(ijh_frame_block(pr->r_last), 1);
	ijh_assert_hash_blocks(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_pair_free(pr);
}
END_TEST

/* A local writer that spilled and rolled back left frames (with the current
 * salts) beyond mxFrame in the WAL file: our frames overwrite them. */
START_TEST(test_after_spilled_rollback)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	sqlite3 *local = ijh_open_db(pr->r_path);
	char sql[256];
	uint32_t mx;
	int64_t size;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	mx = ijh_shm_header(pr->r).max_frame;
	snprintf(sql, sizeof sql,
		 "PRAGMA cache_size=10; BEGIN; " IJH_INSERT_ROWS "; ROLLBACK",
		 500);
	fixture_exec(local, sql);
	size = ijh_wal_size(pr->r);
	ck_assert_int_gt(size,
			 (int64_t)walfmt_frame_offset(mx + 100, IJH_PAGE_SIZE));
	ck_assert_uint_eq(ijh_shm_header(pr->r).max_frame, mx);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	ck_assert_uint_eq(pr->r_first, mx + 1);
	ijh_assert_hash_blocks(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(local);
	ijh_pair_free(pr);
}
END_TEST

static Suite *inject_wal_suite(void)
{
	Suite *s = suite_create("wal_inject_wal");
	TCase *tc = tcase_create("inject_wal");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_inject_after_truncate);
	tcase_add_test(tc, test_inject_after_restart);
	tcase_add_test(tc, test_injector_restarts_wal);
	tcase_add_test(tc, test_reader_in_wal_blocks_restart);
	tcase_add_test(tc, test_restart_under_read0_reader);
	tcase_add_test(tc, test_own_wal_snapshot_blocks_restart);
	tcase_add_test(tc, test_big_endian_wal);
	tcase_add_test(tc, test_leftover_hash_entries);
	tcase_add_test(tc, test_after_spilled_rollback);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--spill-and-die") == 0) {
		return spill_and_die(argv[2], atoi(argv[3]));
	}
	return fixture_run(inject_wal_suite());
}
