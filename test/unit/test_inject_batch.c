/* The WAL injector's rules for a batch (see test_inject.c for the primary
 * P and its replica R): the last image of a page wins, pages beyond the
 * database size are dropped, bad batches and a connection without a write
 * transaction are refused without a trace, a batch that only shrinks the
 * database, the write lock released, and opts->unwrap applied. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fixture.h"
#include "inject_helpers.h"
#include "wal/wal_inject.h"

#define PENDING_PAGE (0x40000000u / IJH_PAGE_SIZE + 1)

/* ---- The batch ---- */

static const uint8_t zero_page[IJH_PAGE_SIZE];

/* An earlier image of a page in the same batch is superseded. */
START_TEST(test_duplicates_last_wins)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct wal_page *pages;
	struct ijh_batch b;
	char *msg = NULL;
	uint32_t mx;
	size_t i;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	fixture_exec(pr->p, "UPDATE acc SET bal = bal + 1; "
			    "INSERT INTO t(v) VALUES (randomblob(9000))");
	ijh_pair_extract(pr, &b);
	/* Garbage first, then the real images; page 1 twice at the end. */
	pages = calloc(2 * b.n + 1, sizeof *pages);
	for (i = 0; i < b.n; i++) {
		pages[i].pgno = b.pages[i].pgno;
		pages[i].data = zero_page;
		pages[b.n + i] = b.pages[i];
	}
	pages[2 * b.n] = pages[b.n];
	for (i = 0; i < b.n; i++) {
		if (b.pages[i].pgno == 1) {
			pages[2 * b.n] = b.pages[i];
		}
	}
	mx = ijh_shm_header(pr->r).max_frame;
	ck_assert_int_eq(
	    ijh_inject_into(pr->r, NULL, pages, 2 * b.n + 1, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_uint_eq(ijh_shm_header(pr->r).max_frame, mx + b.n);
	ijh_assert_hash_blocks(pr->r);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	free(pages);
	ijh_batch_free(&b);
	ijh_pair_free(pr);
}
END_TEST

START_TEST(test_drops_pages_beyond_db_size)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct wal_page *pages;
	struct ijh_batch b;
	char *msg = NULL;
	uint32_t mx;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	fixture_exec(pr->p, "UPDATE acc SET bal = bal + 1");
	ijh_pair_extract(pr, &b);
	pages = calloc(b.n + 2, sizeof *pages);
	pages[0].pgno = b.db_size + 1;
	pages[0].data = zero_page;
	memcpy(pages + 1, b.pages, b.n * sizeof *pages);
	pages[b.n + 1].pgno = b.db_size + 100;
	pages[b.n + 1].data = zero_page;
	mx = ijh_shm_header(pr->r).max_frame;
	ck_assert_int_eq(
	    ijh_inject_into(pr->r, NULL, pages, b.n + 2, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_uint_eq(ijh_shm_header(pr->r).max_frame, mx + b.n);
	ck_assert_uint_eq(ijh_shm_header(pr->r).n_page, b.db_size);
	ijh_pair_assert_same_content(pr);
	ijh_assert_crash_copy_equal(pr->r, pr->dir);
	free(pages);
	ijh_batch_free(&b);
	ijh_pair_free(pr);
}
END_TEST

/* A refused batch publishes nothing and leaves no lock behind. */
static void assert_refused(struct ijh_pair *pr,
			   const struct wal_inject_opts *opts,
			   const struct wal_page *pages, size_t n,
			   uint32_t db_size, int code, const char *needle)
{
	uint8_t before[96], after[96];
	int64_t size = ijh_wal_size(pr->r);
	char *msg = NULL;
	sqlite3 *other;

	memcpy(before, (const void *)ijh_shm_region(pr->r, 0), sizeof before);
	ck_assert_int_eq(ijh_inject_into(pr->r, opts, pages, n, db_size, &msg),
			 code);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' lacks '%s'",
		      msg, needle);
	sqlite3_free(msg);
	memcpy(after, (const void *)ijh_shm_region(pr->r, 0), sizeof after);
	ck_assert_int_eq(memcmp(before, after, sizeof before), 0);
	ck_assert_int_eq(ijh_wal_size(pr->r), size);
	other = ijh_open_db(pr->r_path);
	sqlite3_busy_timeout(other, 0);
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	sqlite3_close(other);
}

START_TEST(test_refuses_bad_batches)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct wal_inject_opts small = {NULL, 0, 1024};
	struct wal_page page = {1, zero_page};
	struct wal_page bad[2] = {{1, zero_page}, {0, zero_page}};
	struct wal_page pending[2] = {{1, zero_page},
				      {PENDING_PAGE, zero_page}};

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 10);
	assert_refused(pr, NULL, bad, 2, 10, SQLITE_CORRUPT, "page number 0");
	assert_refused(pr, NULL, pending, 2, PENDING_PAGE + 10, SQLITE_CORRUPT,
		       "pending-byte page");
	assert_refused(pr, NULL, bad, 0, 10, SQLITE_MISUSE,
		       "no page of the batch");
	page.pgno = 20;
	assert_refused(pr, NULL, &page, 1, 10, SQLITE_MISUSE,
		       "no page of the batch");
	page.pgno = 1;
	assert_refused(pr, &small, &page, 1, 10, SQLITE_MISUSE,
		       "page size mismatch: WAL 4096, batch 1024");
	/* R is still in sync: the next batch applies. */
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 3);
	ijh_pair_assert_same_content(pr);
	ijh_pair_free(pr);
}
END_TEST

START_TEST(test_requires_write_transaction)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct wal_page page = {1, zero_page};
	char *path = fixture_path(pr->dir, "rollback.db");
	char *msg = NULL;
	sqlite3 *db;

	ck_assert_int_eq(wal_inject(pr->r, NULL, &page, 1, 10, &msg),
			 SQLITE_MISUSE);
	ck_assert_ptr_nonnull(strstr(msg, "write transaction"));
	sqlite3_free(msg);
	fixture_exec(pr->r, "BEGIN");
	fixture_query_int(pr->r, "SELECT count(*) FROM t");
	ck_assert_int_eq(wal_inject(pr->r, NULL, &page, 1, 10, &msg),
			 SQLITE_MISUSE);
	sqlite3_free(msg);
	fixture_exec(pr->r, "COMMIT");

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	fixture_exec(db, "CREATE TABLE x(y); BEGIN IMMEDIATE");
	ck_assert_int_eq(wal_inject(db, NULL, &page, 1, 1, &msg),
			 SQLITE_MISUSE);
	ck_assert_ptr_nonnull(strstr(msg, "not in WAL mode"));
	sqlite3_free(msg);
	fixture_exec(db, "COMMIT");
	sqlite3_close(db);
	free(path);
	ijh_pair_free(pr);
}
END_TEST

/* A batch that only shrinks the database: after a checkpoint R's file has
 * P's size. */
START_TEST(test_shrinking_batch)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	uint32_t big;

	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 300);
	big = ijh_shm_header(pr->r).n_page;
	ijh_pair_commit(pr, "DELETE FROM t WHERE id > 50");
	ijh_pair_commit_bare(pr, "VACUUM");
	ck_assert_uint_lt(ijh_shm_header(pr->r).n_page, big / 4);
	ck_assert_uint_eq(ijh_shm_header(pr->r).n_page,
			  ijh_shm_header(pr->p).n_page);
	ijh_pair_assert_same_content(pr);
	ijh_checkpoint_fully(pr->p2, "TRUNCATE");
	ijh_checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(
	    ijh_handle_size(ijh_file_of(pr->r, SQLITE_FCNTL_FILE_POINTER)),
	    (int64_t)ijh_shm_header(pr->p).n_page * IJH_PAGE_SIZE);
	ijh_pair_compare_db_files(pr);
	ijh_pair_free(pr);
}
END_TEST

START_TEST(test_lock_released)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	sqlite3 *other = ijh_open_db(pr->r_path);

	sqlite3_busy_timeout(other, 0);
	ijh_pair_commitf(pr, IJH_INSERT_ROWS, 3);
	fixture_exec(other,
		     "BEGIN IMMEDIATE; INSERT INTO loc VALUES (1); COMMIT");
	ijh_checkpoint_fully(pr->r2, "PASSIVE");
	ijh_pair_commit(pr, "DELETE FROM loc");
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	ijh_checkpoint_fully(other, "TRUNCATE");
	sqlite3_close(other);
	ijh_pair_free(pr);
}
END_TEST

static int unwrap_calls;

static sqlite3_file *counting_unwrap(sqlite3_file *f)
{
	unwrap_calls++;
	return f;
}

/* Both handles go through opts->unwrap. */
START_TEST(test_unwrap_applied)
{
	struct ijh_pair *pr = ijh_pair_new(false);
	struct wal_inject_opts opts = {counting_unwrap, 1, 0};
	struct ijh_batch b;
	char *msg = NULL;

	fixture_exec(pr->p, "INSERT INTO loc VALUES (42)");
	ijh_pair_extract(pr, &b);
	ck_assert_int_eq(
	    ijh_inject_into(pr->r, &opts, b.pages, b.n, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_int_eq(unwrap_calls, 2);
	ijh_batch_free(&b);
	ijh_pair_assert_same_content(pr);
	ijh_pair_free(pr);
}
END_TEST

static Suite *inject_batch_suite(void)
{
	Suite *s = suite_create("wal_inject_batch");
	TCase *tc = tcase_create("inject_batch");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_duplicates_last_wins);
	tcase_add_test(tc, test_drops_pages_beyond_db_size);
	tcase_add_test(tc, test_refuses_bad_batches);
	tcase_add_test(tc, test_requires_write_transaction);
	tcase_add_test(tc, test_shrinking_batch);
	tcase_add_test(tc, test_lock_released);
	tcase_add_test(tc, test_unwrap_applied);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(inject_batch_suite());
}
