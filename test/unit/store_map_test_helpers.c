/* Helpers shared by the tests of the page map (test_store_map.c, legitimate
 * transactions, and test_store_map_corruptions.c, corrupted ones): the
 * scratch files a.db, b.db and base.db, the base data set, and a
 * transaction between two files checked against a map of the old one. */
#include "store_map_test_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"

/* --- The files ------------------------------------------------------- */

static char *dir;
char *smh_a_path, *smh_b_path, *smh_base_path;
int smh_n_whole, smh_n_incremental;

void smh_setup(void)
{
	/* randomblob() the same in every run. */
	sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, 2024, NULL);
	dir = fixture_tmpdir();
	smh_a_path = fixture_path(dir, "a.db");
	smh_b_path = fixture_path(dir, "b.db");
	smh_base_path = fixture_path(dir, "base.db");
}

void smh_teardown(void)
{
	free(smh_a_path);
	free(smh_b_path);
	free(smh_base_path);
	fixture_rmdir(dir);
}

/* --- Reading a database ------------------------------------------------ */

/* A store_map_read_fn over a rows_file. */
static int read_page(void *arg, uint32_t pgno, uint8_t *out, char *why,
		     size_t why_len)
{
	const struct rows_file *f = arg;

	if (pgno < 1 || pgno > f->n_pages) {
		snprintf(why, why_len, "page %u past the end (%u pages)", pgno,
			 f->n_pages);
		return -1;
	}
	memcpy(out, f->data + (size_t)(pgno - 1) * SMH_PAGE, SMH_PAGE);
	return 0;
}

void smh_txn_diff(struct smh_txn *t, const struct rows_file *old,
		  const struct rows_file *new)
{
	uint32_t p;

	t->pages = calloc((size_t) new->n_pages + 1, sizeof *t->pages);
	ck_assert_ptr_nonnull(t->pages);
	t->n = 0;
	for (p = 1; p <= new->n_pages; p++)
		if (p > old->n_pages ||
		    memcmp(rows_file_page(old, p), rows_file_page(new, p),
			   SMH_PAGE) != 0)
			t->pages[t->n++] =
			    (struct wal_page){p, rows_file_page(new, p)};
	t->db_size = new->n_pages;
}

struct store_map *smh_build(struct rows_file *f)
{
	struct store_map *m;
	char why[512] = "";

	ck_assert_msg(
	    store_map_build(&m, f->n_pages, read_page, f, why, sizeof why) == 0,
	    "store_map_build: %s", why);
	return m;
}

/* The map, committed, equals a fresh walk of f. */
static void assert_same(const char *what, struct store_map *m,
			struct rows_file *f)
{
	struct store_map *fresh = smh_build(f);
	char why[512] = "";

	ck_assert_msg(store_map_compare(m, fresh, why, sizeof why) == 0,
		      "%s: the map differs from a fresh walk: %s", what, why);
	store_map_free(fresh);
}

void smh_check_legit(const char *what, struct store_map *m,
		     struct rows_file *old, struct rows_file *new)
{
	struct smh_txn t;
	char why[512] = "";
	int rv;

	smh_txn_diff(&t, old, new);
	rv = store_map_check(m, t.pages, t.n, t.db_size, why, sizeof why);
	ck_assert_msg(rv == 0, "%s refused (%d): %s", what, rv, why);
	if (store_map_whole(m))
		smh_n_whole++;
	else
		smh_n_incremental++;
	store_map_commit(m);
	assert_same(what, m, new);
	free(t.pages);
}

void smh_assert_legit(const char *what)
{
	struct rows_file old, new;
	struct store_map *m;
	char *ok = rows_integrity(smh_b_path);

	ck_assert_msg(strcmp(ok, "ok") == 0, "%s: integrity_check: %s", what,
		      ok);
	free(ok);
	rows_file_load(&old, smh_a_path);
	rows_file_load(&new, smh_b_path);
	m = smh_build(&old);
	smh_check_legit(what, m, &old, &new);
	store_map_free(m);
	rows_file_free(&old);
	rows_file_free(&new);
}

/* --- The data set ------------------------------------------------------ */

const char *const smh_base_sql =
    "PRAGMA page_size=4096;"
    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
    "CREATE INDEX t_a ON t(a);"
    "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);"
    "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "BEGIN;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 30) INSERT INTO big SELECT i, randomblob(10000 + i * 3000) "
    "FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 3000) INSERT INTO t SELECT i, printf('a%06d', i * 7919 % "
    "3000), randomblob(60) FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 1000) INSERT INTO w SELECT 'k' || i, randomblob(30) FROM n;"
    "COMMIT;"
    "DELETE FROM big WHERE id IN (3, 7, 13);";
