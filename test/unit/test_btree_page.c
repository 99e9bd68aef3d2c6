/* The b-tree page checker (wal/btree_page.h) against every page SQLite
 * itself wrote (dbstat says which are b-tree pages and which overflow), and
 * against damaged copies of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "wal/btree_page.h"
#include "wal/walfmt.h"

#define PAGE 4096

/* A database with most kinds of b-tree pages: tables with rowids and
 * without, indexes, overflow chains, freeblocks left by deletes, an FTS5
 * index, and a freelist (secure_delete off so freed pages keep their old
 * content). */
static sqlite3 *make_db(const char *path)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	fixture_exec(
	    db,
	    "PRAGMA page_size=4096; PRAGMA secure_delete=OFF;"
	    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
	    "CREATE INDEX t_a ON t(a);"
	    "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	    "CREATE VIRTUAL TABLE f USING fts5(body);"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < 3000) INSERT INTO t(a, b) SELECT printf('%08d %s', i, "
	    "hex(randomblob(i % 50))), CASE WHEN i % 97 = 0 THEN "
	    "randomblob(9000 + i) ELSE randomblob(i % 300) END FROM n;"
	    "INSERT INTO w SELECT a, length(b) FROM t;"
	    "INSERT INTO f SELECT a FROM t WHERE id % 3 = 0;"
	    "DELETE FROM t WHERE id % 7 = 0; DELETE FROM w WHERE v % 5 = 0;"
	    "CREATE TABLE gone(x); INSERT INTO gone SELECT b FROM t LIMIT 500;"
	    "DROP TABLE gone;");
	return db;
}

static uint8_t *read_page(const char *path, uint32_t pgno)
{
	uint8_t *buf = malloc(PAGE);
	FILE *fp = fopen(path, "rb");

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, (long)(pgno - 1) * PAGE, SEEK_SET), 0);
	ck_assert_int_eq(fread(buf, 1, PAGE, fp), PAGE);
	fclose(fp);
	return buf;
}

struct seen {
	uint32_t *pgno;
	size_t n;
	int64_t pages; /* overflow pages the chains need, in all */
};

static int note_overflow(void *arg, const struct btree_cell *c)
{
	struct seen *s = arg;

	if (c->overflow == 0)
		return 0;
	ck_assert_uint_ge(c->n_overflow, 1);
	s->pgno[s->n++] = c->overflow;
	s->pages += c->n_overflow;
	return 0;
}

START_TEST(test_every_page_sqlite_wrote)
{
	char *dir = fixture_tmpdir(), *path = fixture_path(dir, "t.db");
	sqlite3 *db = make_db(path);
	sqlite3_stmt *st;
	int64_t db_size = fixture_query_int(db, "PRAGMA page_count");
	struct seen seen = {calloc(100000, sizeof(uint32_t)), 0, 0};
	int btree = 0, overflow_firsts = 0;
	char why[256];

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT pageno, pagetype FROM dbstat ORDER BY "
			       "pageno",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint32_t pgno = (uint32_t)sqlite3_column_int64(st, 0);
		const char *type = (const char *)sqlite3_column_text(st, 1);
		uint8_t *page = read_page(path, pgno);

		if (strcmp(type, "overflow") != 0) {
			ck_assert_msg(btree_page_check(page, pgno, PAGE,
						       (uint32_t)db_size, why,
						       sizeof why) == 0,
				      "a page SQLite wrote fails: %s", why);
			ck_assert_int_eq(btree_page_cells(page, pgno, PAGE,
							  note_overflow, &seen),
					 0);
			btree++;
		}
		free(page);
	}
	sqlite3_finalize(st);
	/* Every first overflow page named by a cell is an overflow page. */
	for (size_t i = 0; i < seen.n; i++) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM dbstat WHERE pageno = %u AND "
			 "pagetype = 'overflow'",
			 seen.pgno[i]);
		overflow_firsts += (int)fixture_query_int(db, sql);
	}
	ck_assert_int_gt(btree, 100);
	ck_assert_int_gt((int)seen.n, 20);
	ck_assert_int_eq(overflow_firsts, (int)seen.n);
	/* And the chains' lengths add up to every overflow page. */
	ck_assert_int_eq(seen.pages,
			 fixture_query_int(db, "SELECT count(*) FROM dbstat "
					       "WHERE pagetype = 'overflow'"));
	printf("btree pages: %d checked, %zu overflow chains found\n", btree,
	       seen.n);
	free(seen.pgno);
	sqlite3_close(db);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Damage to the structure is found: the type, the cell count, the content
 * area, a cell pointer, a child pointer, a freeblock, zeros. */
START_TEST(test_damaged_pages)
{
	char *dir = fixture_tmpdir(), *path = fixture_path(dir, "t.db");
	sqlite3 *db = make_db(path);
	int64_t db_size = fixture_query_int(db, "PRAGMA page_count");
	int64_t interior =
	    fixture_query_int(db, "SELECT min(pageno) FROM dbstat WHERE "
				  "pagetype = 'internal' AND pageno > 1");
	uint8_t *good = read_page(path, (uint32_t)interior);
	uint8_t copy[PAGE];
	char why[256];
	static const struct {
		size_t off;
		uint8_t value;
	} damage[] = {
	    {0, 0},     /* not a b-tree type */
	    {0, 7},     /* not a b-tree type */
	    {3, 0xff},  /* a huge cell count */
	    {5, 0x00},  /* content area at 0..: before the cells */
	    {6, 0x01},  /* content area off by the cells' offsets */
	    {7, 61},    /* too many fragmented bytes */
	    {8, 0xff},  /* right child past the end */
	    {12, 0xff}, /* the first cell pointer past the page */
	};
	size_t i;

	ck_assert_int_eq(btree_page_check(good, (uint32_t)interior, PAGE,
					  (uint32_t)db_size, why, sizeof why),
			 0);
	for (i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		memcpy(copy, good, PAGE);
		copy[damage[i].off] = damage[i].value;
		ck_assert_msg(btree_page_check(copy, (uint32_t)interior, PAGE,
					       (uint32_t)db_size, why,
					       sizeof why) != 0,
			      "damage %zu (byte %zu = %u) not found", i,
			      damage[i].off, damage[i].value);
	}
	memset(copy, 0, PAGE);
	ck_assert_int_ne(
	    btree_page_check(copy, 2, PAGE, (uint32_t)db_size, why, sizeof why),
	    0);
	ck_assert_ptr_nonnull(strstr(why, "page 2"));
	/* A child pointer outside the database. */
	memcpy(copy, good, PAGE);
	walfmt_put32(copy + ((copy[12] << 8) | copy[13]),
		     (uint32_t)db_size + 5);
	ck_assert_int_ne(btree_page_check(copy, (uint32_t)interior, PAGE,
					  (uint32_t)db_size, why, sizeof why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "child page"));
	free(good);
	sqlite3_close(db);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("btree_page");
	TCase *tc = tcase_create("btree_page");

	tcase_add_test(tc, test_every_page_sqlite_wrote);
	tcase_add_test(tc, test_damaged_pages);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
