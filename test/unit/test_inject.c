/* The WAL injector against real SQLite: a primary P (plain SQLite) commits,
 * its frames are read back from P's WAL and injected into a replica R made
 * from the same base file, and R must end up exactly as P -- byte for byte
 * where SQLite's own choices can be replayed (see ijh_pair_commit()).
 *
 * This file: the differential tests against SQLite itself (every page size
 * too), readers keeping their snapshot, crash copies, and readers in other
 * threads seeing whole transactions only.  The WAL states the injector
 * meets are in test_inject_wal.c, the batch's own rules in
 * test_inject_batch.c; the pair itself is in inject_helpers.[ch]. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fixture.h"
#include "inject_helpers.h"
#include "wal/walfmt.h"

#define ACCOUNTS 100
#define BALANCE 1000

/* P's and R's whole WAL files are byte-identical. */
static void pair_compare_wal_full(struct ijh_pair *pr)
{
	size_t la, lb;
	uint8_t *a = ijh_read_whole(
	    ijh_file_of(pr->p, SQLITE_FCNTL_JOURNAL_POINTER), &la);
	uint8_t *b = ijh_read_whole(
	    ijh_file_of(pr->r, SQLITE_FCNTL_JOURNAL_POINTER), &lb);

	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
}

/* ---- 1, 2: differential against SQLite itself ---- */

/* Every batch leaves R's WAL and wal-index byte-identical to P's: across
 * the 4062/4063 hash-block boundary, a transaction of more than 4096 frames,
 * a shrinking VACUUM, a new WAL after TRUNCATE, one after RESTART, and a WAL
 * restarted by the writer itself; the database files match after a
 * checkpoint. */
START_TEST(test_differential)
{
	struct ijh_pair *pr = ijh_pair_new(true);
	uint32_t pages_before;
	uint8_t *hdr;
	int i;

	pr->sync = 1;
	for (i = 0; i < 5; i++) {
		ijh_pair_commitf(pr, IJH_INSERT_ROWS, 3);
	}
	ijh_pair_commit(pr, "UPDATE acc SET bal = bal + 1 WHERE id % 3 = 0");
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 3800);
	for (i = 0; i < 40 && !pr->straddled; i++) {
		ijh_pair_commitf(pr, IJH_INSERT_ROWS, 30);
	}
	ck_assert(pr->straddled);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 4500);
	ck_assert_uint_gt(pr->r_last - pr->r_first + 1, 4096);
	ck_assert_uint_ge(ijh_frame_block(pr->r_last), 2);
	pair_compare_wal_full(pr);
	ijh_assert_hash_blocks(pr->r);
	ck_assert_int_eq(ijh_assert_wal_chain(pr->r), 0);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);

	/* A transaction that shrinks the database. */
	pages_before = ijh_shm_header(pr->r).n_page;
	ijh_pair_commit(pr, "DELETE FROM t WHERE id % 4 != 0");
	ijh_pair_commit_bare(pr, "VACUUM");
	ck_assert_uint_lt(ijh_shm_header(pr->r).n_page, pages_before / 2);
	pair_compare_wal_full(pr);
	ijh_pair_assert_same_content(pr);

	/* TRUNCATE by another connection: the next batch makes a new WAL. */
	ijh_checkpoint_fully(pr->p2, "TRUNCATE");
	ijh_checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(ijh_wal_size(pr->r), 0);
	ijh_pair_compare_db_files(pr);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	ck_assert_uint_eq(pr->r_first, 1);
	ijh_pair_commit(pr,
			"UPDATE t SET v = randomblob(100) WHERE id % 10 = 0");
	pair_compare_wal_full(pr);

	/* RESTART leaves the wal-index alone once no reader uses the WAL; the
	 * next writer restarts it (nCkpt + 1, salt-1 + 1), SQLite and the
	 * injector alike.  The old frames stay in the file behind the new. */
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 40);
	ijh_checkpoint_fully(pr->p2, "RESTART");
	ijh_checkpoint_fully(pr->r2, "RESTART");
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 5);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 1);
	free(hdr);
	pair_compare_wal_full(pr);
	ijh_pair_assert_same_content(pr);

	/* The same after a PASSIVE checkpoint that copied every frame. */
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 5);
	ijh_checkpoint_fully(pr->p2, "PASSIVE");
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 2);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 2);
	free(hdr);
	pair_compare_wal_full(pr);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);

	ijh_checkpoint_fully(pr->p2, "TRUNCATE");
	ijh_checkpoint_fully(pr->r2, "TRUNCATE");
	ijh_pair_compare_db_files(pr);
	ijh_pair_free(pr);
}
END_TEST

/* The same with the smallest and the largest page size (whose wal-index
 * encoding is 1). */
static const uint32_t other_page_sizes[] = {512, 65536};

START_TEST(test_differential_page_sizes)
{
	struct ijh_pair *pr = ijh_pair_new_sized(true, other_page_sizes[_i]);
	uint8_t *hdr;
	int i;

	for (i = 0; i < 3; i++) {
		ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	}
	ck_assert_uint_eq(ijh_shm_header(pr->r).page_size,
			  ijh_page_size == 65536 ? 1 : ijh_page_size);
	ijh_pair_commit(pr, "UPDATE acc SET bal = bal + 1 WHERE id % 2 = 0");
	ijh_checkpoint_fully(pr->p2, "PASSIVE");
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 300);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 8), ijh_page_size);
	free(hdr);
	pair_compare_wal_full(pr);
	ijh_assert_hash_blocks(pr->r);
	ck_assert_int_eq(ijh_assert_wal_chain(pr->r), 0);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_checkpoint_fully(pr->p2, "TRUNCATE");
	ijh_checkpoint_fully(pr->r2, "TRUNCATE");
	ijh_pair_compare_db_files(pr);
	ijh_pair_free(pr);
}
END_TEST

/* ---- 3: readers keep their snapshot ---- */

START_TEST(test_reader_snapshot)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	sqlite3 *reader;
	sqlite3_stmt *count;
	uint64_t before;
	int64_t n_before, dv_before;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 5);
	reader = ijh_open_db(pr->r_path);
	ck_assert_int_eq(sqlite3_prepare_v2(reader, "SELECT count(*) FROM t",
					    -1, &count, NULL),
			 SQLITE_OK);
	fixture_exec(reader, "BEGIN");
	before = ijh_content_hash(reader);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	n_before = sqlite3_column_int64(count, 0);
	sqlite3_reset(count);
	dv_before = fixture_query_int(reader, "PRAGMA data_version");

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 50);
	ijh_pair_commit(pr, "UPDATE acc SET bal = bal - 7 WHERE id = 1");
	ck_assert_uint_eq(ijh_content_hash(reader), before);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int64(count, 0), n_before);
	sqlite3_reset(count);
	fixture_exec(reader, "COMMIT");

	ck_assert_int_ne(fixture_query_int(reader, "PRAGMA data_version"),
			 dv_before);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int64(count, 0), n_before + 50);
	sqlite3_finalize(count);
	ck_assert_uint_eq(ijh_content_hash_in_txn(reader),
			  ijh_content_hash_in_txn(pr->p2));
	ck_assert_int_eq(
	    fixture_query_int(reader, "SELECT bal FROM acc WHERE id = 1"),
	    BALANCE - 7);
	sqlite3_close(reader);
	ijh_pair_free(pr);
}
END_TEST

/* ---- 5: crash copies ---- */

/* Recovery from db + WAL alone finds every injected frame; with the last
 * frame's checksum broken it drops exactly the last batch, which live
 * readers (who never check checksums) do see. */
START_TEST(test_crash_copy)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	uint64_t previous, latest;
	sqlite3 *copy;
	int i;

	for (i = 0; i < 4; i++) {
		ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10 + i);
	}
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	previous = ijh_content_hash_in_txn(pr->r2);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 20);
	latest = ijh_content_hash_in_txn(pr->r2);
	ck_assert_uint_ne(latest, previous);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);

	copy = ijh_crash_copy(pr->r, pr->dir, "broken.db", true);
	fixture_assert_integrity(copy);
	ck_assert_uint_eq(ijh_content_hash_in_txn(copy), previous);
	ck_assert_uint_eq(ijh_shm_header(copy).max_frame, pr->r_first - 1);
	sqlite3_close(copy);
	ck_assert_uint_eq(ijh_content_hash_in_txn(pr->r2), latest);
	ijh_pair_free(pr);
}
END_TEST

/* ---- Readers in other threads see whole transactions only ---- */

struct reader_arg {
	const char *path;
	volatile int *stop;
	long iterations;
	long violations;
	long errors;
};

static int64_t try_query_int(sqlite3 *db, const char *sql, int *rc)
{
	sqlite3_stmt *stmt = NULL;
	int64_t v = -1;

	*rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_step(stmt);
		if (*rc == SQLITE_ROW) {
			v = sqlite3_column_int64(stmt, 0);
			*rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(stmt);
	return v;
}

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	const int64_t total = (int64_t)ACCOUNTS * BALANCE;
	sqlite3 *db;
	int rc;

	if (sqlite3_open(a->path, &db) != SQLITE_OK) {
		a->errors++;
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	while (!__atomic_load_n(a->stop, __ATOMIC_RELAXED)) {
		int64_t s1, s2 = -1;

		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			a->errors++;
			break;
		}
		s1 = try_query_int(db, "SELECT sum(bal) FROM acc", &rc);
		if (rc == SQLITE_OK) {
			try_query_int(db, "SELECT count(*) FROM t", &rc);
		}
		if (rc == SQLITE_OK) {
			s2 = try_query_int(db, "SELECT sum(bal) FROM acc", &rc);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			a->errors++;
			continue;
		}
		if (s1 != total || s2 != total) {
			a->violations++;
		}
		a->iterations++;
	}
	sqlite3_close(db);
	return NULL;
}

START_TEST(test_concurrent_readers)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct reader_arg args[2];
	pthread_t threads[2];
	volatile int stop = 0;
	unsigned seed = 42;
	sqlite3 *ckpt = ijh_open_db(pr->r_path);
	char sql[256];
	int i, r[3];

	sqlite3_busy_timeout(ckpt, 0);
	for (i = 0; i < 2; i++) {
		args[i] = (struct reader_arg){pr->r_path, &stop, 0, 0, 0};
		ck_assert_int_eq(
		    pthread_create(&threads[i], NULL, reader_main, &args[i]),
		    0);
	}
	for (i = 0; i < 200; i++) {
		int from = 1 + (int)(rand_r(&seed) % ACCOUNTS);
		int to = 1 + (int)(rand_r(&seed) % ACCOUNTS);
		int amount = (int)(rand_r(&seed) % 50);

		snprintf(sql, sizeof sql,
			 "UPDATE acc SET bal = bal - %d WHERE id = %d;"
			 "UPDATE acc SET bal = bal + %d WHERE id = %d;"
			 "INSERT INTO t(v) VALUES (randomblob(%d))",
			 amount, from, amount, to, 100 + i * 40);
		ijh_pair_commit(pr, sql);
		if (i % 20 == 19) {
			ijh_checkpoint(
			    ckpt, i % 60 == 59 ? "TRUNCATE" : "PASSIVE", r);
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 2; i++) {
		pthread_join(threads[i], NULL);
		ck_assert_int_eq(args[i].errors, 0);
		ck_assert_int_eq(args[i].violations, 0);
		ck_assert_int_gt(args[i].iterations, 0);
	}
	sqlite3_close(ckpt);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	ijh_pair_free(pr);
}
END_TEST

static Suite *inject_suite(void)
{
	Suite *s = suite_create("wal_inject");
	TCase *tc = tcase_create("inject");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_differential);
	tcase_add_loop_test(tc, test_differential_page_sizes, 0,
			    sizeof other_page_sizes /
				sizeof other_page_sizes[0]);
	tcase_add_test(tc, test_reader_snapshot);
	tcase_add_test(tc, test_crash_copy);
	tcase_add_test(tc, test_concurrent_readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(inject_suite());
}
