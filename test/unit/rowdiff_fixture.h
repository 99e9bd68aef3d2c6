/* The transactions and the oracle of test_rowdiff: a database file
 * before (b_path) and after (a_path) a transaction run with SQLite, the
 * pages that differ given to rowdiff_compute, and its answer checked
 * against a brute-force oracle (both files' full table contents compared
 * in SQL, per table, and each reported change's key looked up). */
#ifndef REPLITE_TEST_ROWDIFF_FIXTURE_H
#define REPLITE_TEST_ROWDIFF_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "sync/rowdiff.h"

#define PAGE 4096

/* The files before and after (set up by rd_setup, removed by
 * rd_teardown). */
extern char *b_path, *a_path;

struct file {
	uint8_t *data;
	uint32_t n;
};

struct txn {
	struct file b, a;
	struct rowdiff_page *pages;
	size_t n_pages;
	struct rowdiff_stats st;
	struct rowdiff_change *c;
	size_t n;
};

void rd_setup(void);
void rd_teardown(void);

void rd_copy_file(const char *from, const char *to);
/* A connection with page_size 4096 and secure_delete off (so freed pages
 * are not written). */
sqlite3 *rd_open_db(const char *path);
void rd_exec_on(const char *path, const char *sql);
/* Reads the file before: the base. */
int rd_read_before(void *arg, uint32_t pgno, uint8_t *out);

/* The difference from b_path to a_path, checked by the oracle. */
void rd_diff_files(struct txn *t);
/* setup_sql makes b_path (NULL: an empty file), txn_sql runs on a copy
 * (a_path), then rd_diff_files. */
void rd_run(struct txn *t, const char *setup_sql, const char *txn_sql);
void rd_txn_free(struct txn *t);

size_t rd_count_op(const struct txn *t, const char *table, enum rowdiff_op op);
int rd_changed(const struct txn *t, uint32_t pgno);
uint32_t rd_get32(const uint8_t *p);
void rd_assert_no_fallback(const struct txn *t);
/* The "value" of column col of a row. */
const char *rd_value_of(json_t *row, const char *col);
/* The first change of kind op in table (fails the test if none). */
const struct rowdiff_change *rd_find(const struct txn *t, const char *table,
				     enum rowdiff_op op);

/* INSERT INTO table SELECT expr for i in 1..n. */
#define FILL(table, n, expr)                                                   \
	"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "      \
	"WHERE i < " #n ") INSERT INTO " table " SELECT " expr " FROM n;"

#endif
