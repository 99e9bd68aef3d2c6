/* The page view (wal/page_view.h) and the record-level check of a
 * transaction (server/store_rows.h), on real databases: legitimate
 * transactions are accepted, and corruptions a client could push are
 * refused, each confirmed as corruption by PRAGMA integrity_check. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "rows_fixture.h"

#define PAGE 4096

static char *dir, *a_path, *b_path;

/* A table for the fast path with every kind of index it handles, a table
 * with a UNIQUE constraint, a WITHOUT ROWID table and a table with an
 * expression and a partial index (those fall back to integrity_check). */
static const char *schema_sql =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INT, c TEXT,"
    " d BLOB);"
    "CREATE INDEX t_a ON t(a);"
    "CREATE INDEX t_bc ON t(b, c COLLATE NOCASE DESC);"
    "CREATE UNIQUE INDEX t_u ON t(c);"
    "CREATE TABLE u(k INTEGER PRIMARY KEY, x TEXT UNIQUE, y);"
    "CREATE TABLE w(k TEXT PRIMARY KEY, a TEXT NOT NULL, b) WITHOUT ROWID;"
    "CREATE INDEX w_a ON w(a);"
    "CREATE UNIQUE INDEX w_b ON w(b);"
    "CREATE TABLE e(id INTEGER PRIMARY KEY, x TEXT, y INT);"
    "CREATE INDEX e_lx ON e(lower(x));"
    "CREATE INDEX e_py ON e(y) WHERE y > 100;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 2000) INSERT INTO t SELECT i, printf('a%05d', i % 700), "
    "i % 13, CASE WHEN i % 10 = 0 THEN NULL ELSE printf('C%d', i) END, "
    "CASE WHEN i % 97 = 0 THEN randomblob(6000 + i) ELSE randomblob(i % 40) "
    "END FROM n;"
    "UPDATE t SET a = printf('%.2500c', 'L') || id WHERE id % 301 = 0;"
    "INSERT INTO u SELECT id, 'x' || id, id FROM t WHERE id <= 500;"
    "INSERT INTO w SELECT 'k' || id, a, id FROM t WHERE id <= 800;"
    "INSERT INTO e SELECT id, 'X' || id, id FROM t WHERE id <= 600;";

static void setup(void)
{
	sqlite3 *db;

	dir = fixture_tmpdir();
	a_path = fixture_path(dir, "a.db");
	b_path = fixture_path(dir, "b.db");
	db = rows_open(a_path);
	fixture_exec(db, "PRAGMA page_size=4096; PRAGMA secure_delete=OFF");
	fixture_exec(db, schema_sql);
	sqlite3_close(db);
}

static void teardown(void)
{
	free(a_path);
	free(b_path);
	fixture_rmdir(dir);
}

/* The transaction from a.db to b.db is accepted, and is sound. */
static void assert_accepted(const char *what)
{
	char why[512] = "", *ok = rows_integrity(b_path);
	int rv = rows_check(a_path, b_path, why, sizeof why);

	ck_assert_msg(strcmp(ok, "ok") == 0, "%s: integrity_check: %s", what,
		      ok);
	ck_assert_msg(rv == 0, "%s refused (%d): %s", what, rv, why);
	free(ok);
}

/* The transaction from a.db to b.db is refused with a message containing
 * expect, and b.db really is corrupt. */
static void assert_refused(const char *what, const char *expect)
{
	char why[512] = "", *ok = rows_integrity(b_path);
	int rv = rows_check(a_path, b_path, why, sizeof why);

	ck_assert_msg(strcmp(ok, "ok") != 0, "%s: not a corruption", what);
	ck_assert_msg(rv == STORE_ROWS_REFUSED, "%s accepted (%d): %s", what,
		      rv, why);
	ck_assert_msg(strstr(why, expect) != NULL, "%s: \"%s\" lacks \"%s\"",
		      what, why, expect);
	fprintf(stderr, "%-44s refused: %s (integrity_check: %s)\n", what, why,
		ok);
	free(ok);
}

/* The leaf of tree holding needle, and where. */
static uint8_t *find_needle(struct rows_file *f, const char *tree,
			    const char *needle)
{
	uint32_t pages[4096];
	size_t n = rows_tree_pages(b_path, tree, "leaf", pages, 4096), i;

	for (i = 0; i < n; i++) {
		uint8_t *pg = rows_file_page(f, pages[i]);
		uint8_t *at = memmem(pg, PAGE, needle, strlen(needle));
		if (at != NULL)
			return at;
	}
	ck_abort_msg("%s not found in %s", needle, tree);
	return NULL;
}

/* Flips a character of needle in tree's leaf, leaving its other copies (in
 * the indexes) alone. */
static void flip_needle(const char *tree, const char *needle)
{
	struct rows_file f;

	rows_file_load(&f, b_path);
	find_needle(&f, tree, needle)[7] ^= 0x01;
	rows_file_store(&f, b_path);
	rows_file_free(&f);
}

/* Makes the serial type of the needle's field one byte too long in its
 * cell's record header: the fields then need more than the payload. */
static void bump_serial(const char *tree, const char *needle)
{
	struct rows_file f;
	uint8_t *at, *pg, *cell = NULL, *h;
	uint32_t n, i, hdr;
	uint8_t type = (uint8_t)(2 * strlen(needle) + 13);

	rows_file_load(&f, b_path);
	at = find_needle(&f, tree, needle);
	pg = f.data + ((size_t)(at - f.data) / PAGE) * PAGE;
	n = (uint32_t)pg[3] << 8 | pg[4];
	for (i = 0; i < n; i++) {
		uint8_t *c =
		    pg + ((uint32_t)pg[8 + 2 * i] << 8 | pg[9 + 2 * i]);
		if (c < at && (cell == NULL || c > cell))
			cell = c;
	}
	ck_assert_ptr_nonnull(cell);
	/* Past the payload size, and the rowid on a table leaf. */
	for (h = cell; *h & 0x80; h++)
		;
	h++;
	if (pg[0] == 13) {
		for (; *h & 0x80; h++)
			;
		h++;
	}
	ck_assert(h[0] < 0x80);
	for (hdr = 1; hdr < h[0] && h[hdr] != type; hdr++)
		;
	ck_assert_uint_lt(hdr, h[0]);
	h[hdr] += 2;
	rows_file_store(&f, b_path);
	rows_file_free(&f);
}

/* Writes the image of one leaf of tree over another leaf of it: a frame
 * relabelled as another page. */
static void relabel(const char *tree)
{
	struct rows_file f;
	uint32_t pages[8];

	ck_assert_uint_ge(rows_tree_pages(b_path, tree, "leaf", pages, 8), 3);
	rows_file_load(&f, b_path);
	memcpy(rows_file_page(&f, pages[2]), rows_file_page(&f, pages[1]),
	       PAGE);
	rows_file_store(&f, b_path);
	rows_file_free(&f);
}

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Copies cell 0 of a leaf of index tree into the leaf's unallocated space,
 * its pointer right after the original's: an entry duplicated, the page
 * otherwise well-formed. */
static void dup_cell(const char *tree)
{
	uint32_t pages[64];
	size_t n = rows_tree_pages(b_path, tree, "leaf", pages, 64), i;
	struct rows_file f;

	rows_file_load(&f, b_path);
	for (i = 0; i < n; i++) {
		uint8_t *pg = rows_file_page(&f, pages[i]), *c;
		uint32_t cells = get16(pg + 3), start = get16(pg + 5), off,
			 size, at;
		ck_assert_uint_eq(pg[0], 10);
		off = get16(pg + 8);
		c = pg + off;
		size = 1 + c[0]; /* with a one-byte payload size */
		if (c[0] >= 0x80 || start < 8 + 2 * (cells + 1) + size)
			continue;
		at = start - size;
		memcpy(pg + at, c, size);
		memmove(pg + 12, pg + 10, 2 * (cells - 1));
		put16(pg + 10, at);
		put16(pg + 3, cells + 1);
		put16(pg + 5, at);
		rows_file_store(&f, b_path);
		rows_file_free(&f);
		return;
	}
	ck_abort_msg("no leaf of %s has room", tree);
}

START_TEST(test_candidate_view)
{
	struct rows_txn t;
	struct page_view *c;
	char why[256];
	sqlite3 *db;

	rows_copy(a_path, b_path);
	rows_exec(b_path, "INSERT INTO t(a, d) SELECT 'new' || id, "
			  "randomblob(3000) FROM t");
	rows_txn_build(&t, a_path, b_path);
	ck_assert_uint_gt(t.new.n_pages, t.old.n_pages);
	/* The overlay over the base: the new state. */
	ck_assert_int_eq(page_view_open(&c, t.new.n_pages, t.overlay,
					t.n_overlay, rows_txn_read_base, &t,
					why, sizeof why),
			 0);
	db = page_view_db(c);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4000);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA page_count"),
			 t.new.n_pages);
	fixture_assert_integrity(db);
	page_view_close(c);
	/* The base alone, at its own size: the old state. */
	ck_assert_int_eq(page_view_open(&c, t.old.n_pages, NULL, 0,
					rows_txn_read_base, &t, why,
					sizeof why),
			 0);
	db = page_view_db(c);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2000);
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA page_count"),
			 t.old.n_pages);
	page_view_close(c);
	rows_txn_free(&t);
}
END_TEST

/* The state before and after, each in its own view, both open at once. */
static void two_views(struct rows_txn *t)
{
	struct page_view *before, *after;
	char why[256];

	ck_assert_int_eq(page_view_open(&before, t->old.n_pages, NULL, 0,
					rows_txn_read_base, t, why, sizeof why),
			 0);
	ck_assert_int_eq(page_view_open(&after, t->new.n_pages, t->overlay,
					t->n_overlay, rows_txn_read_base, t,
					why, sizeof why),
			 0);
	ck_assert_int_eq(
	    fixture_query_int(page_view_db(before), "SELECT count(*) FROM t"),
	    2000);
	ck_assert_int_eq(
	    fixture_query_int(page_view_db(after), "SELECT count(*) FROM t"),
	    4000);
	ck_assert_int_eq(
	    fixture_query_int(page_view_db(before), "SELECT count(*) FROM t"),
	    2000);
	page_view_close(after);
	page_view_close(before);
}

static void *two_views_thread(void *arg)
{
	int i;

	for (i = 0; i < 20; i++)
		two_views(arg);
	return NULL;
}

/* Several views at once, from several threads: each has its own file in
 * the one VFS. */
START_TEST(test_views_at_once)
{
	struct rows_txn t;
	pthread_t th[4];
	int i;

	rows_copy(a_path, b_path);
	rows_exec(b_path, "INSERT INTO t(a, d) SELECT 'new' || id, "
			  "randomblob(300) FROM t");
	rows_txn_build(&t, a_path, b_path);
	two_views(&t);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(
		    pthread_create(&th[i], NULL, two_views_thread, &t), 0);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	rows_txn_free(&t);
}
END_TEST

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Queries that sort, a whole integrity_check and a write attempt open no
 * file (a journal, WAL, -shm or temporary file would show as a descriptor,
 * and the VFS refuses them anyway). */
START_TEST(test_candidate_opens_no_file)
{
	struct rows_txn t;
	struct page_view *c;
	char why[256];
	sqlite3 *db;
	int fds;

	rows_copy(a_path, b_path);
	rows_exec(b_path, "UPDATE t SET b = b + 1 WHERE id % 3 = 0");
	rows_txn_build(&t, a_path, b_path);
	fds = count_fds();
	ck_assert_int_eq(page_view_open(&c, t.new.n_pages, t.overlay,
					t.n_overlay, rows_txn_read_base, &t,
					why, sizeof why),
			 0);
	db = page_view_db(c);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM (SELECT "
					       "d FROM t ORDER BY d, c)"),
			 2000);
	fixture_assert_integrity(db);
	ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM t", NULL, NULL, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(count_fds(), fds);
	page_view_close(c);
	rows_txn_free(&t);
}
END_TEST

START_TEST(test_candidate_bad_schema)
{
	struct rows_txn t;
	struct page_view *c = NULL;
	char why[256];
	uint8_t page1[PAGE], *at;

	rows_copy(a_path, b_path);
	rows_txn_build(&t, a_path, b_path);
	memcpy(page1, rows_file_page(&t.old, 1), PAGE);
	at = memmem(page1, PAGE, "CREATE INDEX t_bc", 17);
	ck_assert_ptr_nonnull(at);
	memcpy(at, "CREATE INDEX t_b(", 17);
	t.overlay[0] = (struct page_view_page){1, page1};
	ck_assert_int_eq(page_view_open(&c, t.old.n_pages, t.overlay, 1,
					rows_txn_read_base, &t, why,
					sizeof why),
			 -1);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(why, "the schema does not parse: "
				  "malformed database schema") != NULL,
		      "%s", why);
	rows_txn_free(&t);
}
END_TEST

/* The statements of the fast path seek the index on every column. */
START_TEST(test_seek_plans)
{
	static const char *const q[][2] = {
	    {"SELECT count(*) FROM \"t\" INDEXED BY \"t_bc\" WHERE \"b\" IS "
	     "?1 COLLATE \"BINARY\" AND \"c\" IS ?2 COLLATE \"NOCASE\" AND "
	     "rowid = ?3",
	     "SEARCH t USING COVERING INDEX t_bc (b=? AND c=? AND rowid=?)"},
	    {"SELECT count(*) FROM \"t\" INDEXED BY \"t_u\" WHERE \"c\" IS "
	     "?1 COLLATE \"BINARY\"",
	     "SEARCH t USING COVERING INDEX t_u (c=?)"},
	    {"SELECT count(*) FROM \"u\" INDEXED BY \"sqlite_autoindex_u_1\" "
	     "WHERE \"x\" IS ?1 COLLATE \"BINARY\" AND rowid = ?2",
	     "SEARCH u USING COVERING INDEX sqlite_autoindex_u_1 (x=? AND "
	     "rowid=?)"},
	};
	sqlite3 *db = rows_open(a_path);
	size_t i;

	for (i = 0; i < sizeof q / sizeof q[0]; i++) {
		char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", q[i][0]);
		sqlite3_stmt *st;
		int rows = 0;
		ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			ck_assert_str_eq(
			    (const char *)sqlite3_column_text(st, 3), q[i][1]);
			rows++;
		}
		ck_assert_int_eq(rows, 1);
		sqlite3_finalize(st);
		sqlite3_free(sql);
	}
	sqlite3_close(db);
}
END_TEST

/* Legitimate transactions of every kind are accepted. */
START_TEST(test_legit_accepted)
{
	static const char *const txns[] = {
	    "INSERT INTO t VALUES(5001, 'new', 1, 'Cnew', x'00')",
	    "UPDATE t SET a = a || 'x' WHERE id % 50 = 0",
	    "UPDATE t SET c = upper(c) || 'z', b = b + 1 WHERE id % 7 = 0",
	    "DELETE FROM t WHERE id BETWEEN 100 AND 400",
	    "WITH RECURSIVE n(i) AS (SELECT 3000 UNION ALL SELECT i + 1 FROM "
	    "n WHERE i < 3600) INSERT INTO t SELECT i, 'b' || i, i % 5, NULL, "
	    "randomblob(i % 200) FROM n",
	    "UPDATE t SET d = randomblob(9000) WHERE id = 7;"
	    "UPDATE t SET a = printf('%.3000c', 'M') WHERE id = 8",
	    /* Same-sized payloads: SQLite rewrites the overflow pages in
	     * place and may leave the cell's page alone. */
	    "UPDATE t SET d = randomblob(length(d)) WHERE length(d) > 5000",
	    "UPDATE t SET a = printf('%.2500c', 'K') || id WHERE id % 301 = 0",
	    "UPDATE t SET c = NULL WHERE id < 50",
	    "DELETE FROM t WHERE id % 2 = 0; INSERT INTO t(a) VALUES('z')",
	    "INSERT INTO u(x, y) VALUES('fresh', 1), (NULL, 2), (NULL, 3);"
	    "UPDATE u SET x = 'y' || k WHERE k % 3 = 0",
	    "INSERT INTO w VALUES('zz', 'a', 99999); UPDATE w SET a = 'q' || "
	    "a WHERE b % 4 = 0; DELETE FROM w WHERE b % 9 = 0",
	    "UPDATE e SET y = y + 200, x = lower(x) WHERE id % 5 = 0",
	    "CREATE INDEX t_d ON t(d)",
	    "DROP INDEX t_bc",
	    "CREATE TABLE n(x, y UNIQUE); INSERT INTO n VALUES(1, 2)",
	    "DROP TABLE e",
	    "ALTER TABLE t ADD COLUMN z DEFAULT 7; UPDATE t SET z = 8 WHERE "
	    "id = 3",
	    "DELETE FROM t",
	};
	size_t i;

	for (i = 0; i < sizeof txns / sizeof txns[0]; i++) {
		rows_copy(a_path, b_path);
		rows_exec(b_path, txns[i]);
		assert_accepted(txns[i]);
	}
}
END_TEST

/* Corruptions through the fast path (table t) and through the fallback
 * (the WITHOUT ROWID table w), each of one kind. */
START_TEST(test_corruptions_refused)
{
	static const char *const in_t = "INSERT INTO t VALUES(5001, "
					"'NEEDLE-XYZ', 1, 'Cn', NULL)";
	static const char *const in_w = "INSERT INTO w VALUES('NEEDLE-XYZ', "
					"'a', 5001)";

	/* A flipped byte of an indexed column in a table leaf. */
	rows_copy(a_path, b_path);
	rows_exec(b_path, in_t);
	flip_needle("t", "NEEDLE-XYZ");
	assert_refused("t: indexed column flipped",
		       "row 5001 of table t without its entry in index t_a");
	rows_copy(a_path, b_path);
	rows_exec(b_path, in_w);
	flip_needle("w", "NEEDLE-XYZ");
	assert_refused("w: indexed column flipped", "table w inconsistent");

	/* A malformed record. */
	rows_copy(a_path, b_path);
	rows_exec(b_path, in_t);
	bump_serial("t", "NEEDLE-XYZ");
	assert_refused("t: malformed record", "holds a malformed record");
	rows_copy(a_path, b_path);
	rows_exec(b_path, in_w);
	bump_serial("w", "NEEDLE-XYZ");
	assert_refused("w: malformed record", "holds a malformed record");

	/* An index entry duplicated in its page. */
	rows_copy(a_path, b_path);
	dup_cell("t_bc");
	assert_refused("t_bc: entry duplicated", "entries in index t_bc");
	rows_copy(a_path, b_path);
	dup_cell("w_a");
	assert_refused("w_a: entry duplicated", "table w inconsistent");

	/* An index leaf's frame relabelled as another leaf of it. */
	rows_copy(a_path, b_path);
	rows_exec(b_path, in_t);
	relabel("t_a");
	assert_refused("t_a: leaf relabelled",
		       "without its entry in index t_a");
	rows_copy(a_path, b_path);
	relabel("w_a");
	assert_refused("w_a: leaf relabelled", "table w inconsistent");
}
END_TEST

/* Runs steps on b.db (a copy of a.db, attached as o): SQL, or "=name sql"
 * to set a schema object's sql with writable_schema ("=name" alone: back to
 * a.db's), as a client building corrupt pages could. */
static void run_steps(const char *const *steps)
{
	rows_copy(a_path, b_path);
	for (; *steps != NULL; steps++) {
		const char *s = *steps;
		char name[64];
		if (s[0] == '=') {
			size_t len = strcspn(s + 1, " ");
			ck_assert_uint_lt(len, sizeof name);
			memcpy(name, s + 1, len);
			name[len] = '\0';
			rows_set_sql(b_path, name,
				     s[1 + len] ? s + 2 + len : NULL, a_path);
		} else {
			char *sql =
			    sqlite3_mprintf("ATTACH %Q AS o; %s", a_path, s);
			rows_exec(b_path, sql);
			sqlite3_free(sql);
		}
	}
}

struct mutation {
	const char *what;
	const char *steps[6];
	const char *expect;
};

static const struct mutation mutations[] = {
    {"t: index entry removed",
     {"DELETE FROM t WHERE id = 10", "=t_a CREATE INDEX t_a ON t(a) WHERE 0",
      "INSERT INTO t SELECT * FROM o.t WHERE id = 10", "=t_a", NULL},
     "row 10 of table t without its entry in index t_a"},
    {"t: row without its index entry",
     {"=t_a CREATE INDEX t_a ON t(a) WHERE 0",
      "INSERT INTO t VALUES(5001, 'x', 1, 'Cx', NULL)", "=t_a", NULL},
     "row 5001 of table t without its entry in index t_a"},
    {"t: entry left by a deleted row",
     {"=t_a CREATE INDEX t_a ON t(a) WHERE 0", "DELETE FROM t WHERE id = 10",
      "=t_a", NULL},
     "wrong # of entries in index t_a"},
    {"t: NULL in a NOT NULL column",
     {"=t CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT, d "
      "BLOB)",
      "UPDATE t SET a = NULL WHERE id = 10", "=t", NULL},
     "NULL in t.a (row 10)"},
    {"t: duplicate key in a UNIQUE index",
     {"=t_u CREATE INDEX t_u ON t(c)", "UPDATE t SET c = 'C11' WHERE id = 12",
      "=t_u", NULL},
     "non-unique entry in index t_u"},
    {"w: index entry removed",
     {"DELETE FROM w WHERE k = 'k10'", "=w_a CREATE INDEX w_a ON w(a) WHERE 0",
      "INSERT INTO w SELECT * FROM o.w WHERE k = 'k10'", "=w_a", NULL},
     "table w inconsistent"},
    {"w: row without its index entry",
     {"=w_a CREATE INDEX w_a ON w(a) WHERE 0",
      "INSERT INTO w VALUES('new', 'x', 5001)", "=w_a", NULL},
     "table w inconsistent"},
    {"w: NULL in a NOT NULL column",
     {"=w CREATE TABLE w(k TEXT PRIMARY KEY, a TEXT, b) WITHOUT ROWID",
      "UPDATE w SET a = NULL WHERE k = 'k10'", "=w", NULL},
     "table w inconsistent"},
    {"w: duplicate key in a UNIQUE index",
     {"=w_b CREATE INDEX w_b ON w(b)", "UPDATE w SET b = 11 WHERE k = 'k12'",
      "=w_b", NULL},
     "table w inconsistent"},
    {"e: expression index entry removed",
     {"DELETE FROM e WHERE id = 10",
      "=e_lx CREATE INDEX e_lx ON e(lower(x)) WHERE 0",
      "INSERT INTO e SELECT * FROM o.e WHERE id = 10", "=e_lx", NULL},
     "table e inconsistent"},
};

START_TEST(test_schema_corruptions_refused)
{
	size_t i;

	for (i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
		run_steps(mutations[i].steps);
		assert_refused(mutations[i].what, mutations[i].expect);
	}
}
END_TEST

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A one-row update of a 100k-row table with two indexes: the check against
 * the table's integrity_check (printed, not asserted). */
START_TEST(test_cost_of_one_row)
{
	struct rows_txn t;
	struct page_view *c;
	sqlite3 *old_db;
	char why[512];
	double t0, t1, t2;
	size_t i, pages = 0;

	rows_exec(
	    a_path,
	    "CREATE TABLE big(id INTEGER PRIMARY KEY, a TEXT, b INT);"
	    "CREATE INDEX big_a ON big(a); CREATE INDEX big_b ON big(b);"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
	    "FROM n WHERE i < 100000) INSERT INTO big SELECT i, "
	    "printf('%08x', i * 2654435761 % 4294967296), i % 1000 FROM n");
	rows_copy(a_path, b_path);
	rows_exec(b_path, "UPDATE big SET a = 'changed', b = -1 WHERE id = "
			  "50000");
	rows_txn_build(&t, a_path, b_path);
	for (i = 0; i < t.n_trees; i++)
		pages += t.trees[i].n_old + t.trees[i].n_new;
	ck_assert_int_eq(
	    sqlite3_open_v2(a_path, &old_db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(page_view_open(&c, t.new.n_pages, t.overlay,
					t.n_overlay, rows_txn_read_base, &t,
					why, sizeof why),
			 0);
	t0 = now_ms();
	ck_assert_int_eq(store_rows_check(old_db, page_view_db(c), t.trees,
					  t.n_trees, rows_txn_read, &t, why,
					  sizeof why),
			 0);
	t1 = now_ms();
	fixture_exec(page_view_db(c), "PRAGMA integrity_check(big)");
	t2 = now_ms();
	fprintf(stderr,
		"1-row update of a 100000-row table with 2 indexes (%u "
		"pages, %zu listed b-tree pages): store_rows_check %.2f ms, "
		"integrity_check(big) %.2f ms\n",
		t.new.n_pages, pages, t1 - t0, t2 - t1);
	page_view_close(c);
	sqlite3_close(old_db);
	rows_txn_free(&t);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("candidate_rows");
	TCase *tc = tcase_create("candidate_rows");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_candidate_view);
	tcase_add_test(tc, test_candidate_opens_no_file);
	tcase_add_test(tc, test_candidate_bad_schema);
	tcase_add_test(tc, test_views_at_once);
	tcase_add_test(tc, test_seek_plans);
	tcase_add_test(tc, test_legit_accepted);
	tcase_add_test(tc, test_corruptions_refused);
	tcase_add_test(tc, test_schema_corruptions_refused);
	tcase_add_test(tc, test_cost_of_one_row);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
