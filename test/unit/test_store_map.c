/* The page map (server/store_map.h) on real databases: a transaction
 * checked incrementally leaves the map a fresh walk of the new database
 * builds, legitimate transactions are never refused, and transactions whose
 * images were mutated into corruption are refused, each confirmed as
 * corruption by PRAGMA integrity_check.
 *
 * A transaction is the pages that differ between two files (journal mode
 * DELETE, so each file holds the whole state) and the new file's length;
 * pages SQLite frees without writing them are not in it, as in a push. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "rows_fixture.h"
#include "server/store_map.h"
#include "wal/btree_page.h"

#define PAGE 4096

/* The integers 1 to n, as a subquery. */
#define SERIES(n)                                                              \
	"(WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 "    \
	"FROM g WHERE value < " #n ") SELECT value FROM g)"

static char *dir, *a_path, *b_path, *base_path;

static void setup(void)
{
	/* randomblob() the same in every run. */
	sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, 2024, NULL);
	dir = fixture_tmpdir();
	a_path = fixture_path(dir, "a.db");
	b_path = fixture_path(dir, "b.db");
	base_path = fixture_path(dir, "base.db");
}

static void teardown(void)
{
	free(a_path);
	free(b_path);
	free(base_path);
	fixture_rmdir(dir);
}

/* --- Bytes ---------------------------------------------------------------- */

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t varint(const uint8_t *p, int *len)
{
	uint64_t x = 0;
	int i;

	for (i = 0; i < 8; i++) {
		x = x << 7 | (p[i] & 0x7f);
		if ((p[i] & 0x80) == 0) {
			*len = i + 1;
			return x;
		}
	}
	*len = 9;
	return x << 8 | p[8];
}

/* --- Reading a database ----------------------------------------------------
 */

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
	memcpy(out, f->data + (size_t)(pgno - 1) * PAGE, PAGE);
	return 0;
}

/* The transaction from old to new: the pages of new that differ. */
struct txn {
	struct wal_page *pages;
	size_t n;
	uint32_t db_size;
};

static void txn_diff(struct txn *t, const struct rows_file *old,
		     const struct rows_file *new)
{
	uint32_t p;

	t->pages = calloc((size_t) new->n_pages + 1, sizeof *t->pages);
	ck_assert_ptr_nonnull(t->pages);
	t->n = 0;
	for (p = 1; p <= new->n_pages; p++)
		if (p > old->n_pages ||
		    memcmp(rows_file_page(old, p), rows_file_page(new, p),
			   PAGE) != 0)
			t->pages[t->n++] =
			    (struct wal_page){p, rows_file_page(new, p)};
	t->db_size = new->n_pages;
}

static struct store_map *build(struct rows_file *f)
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
	struct store_map *fresh = build(f);
	char why[512] = "";

	ck_assert_msg(store_map_compare(m, fresh, why, sizeof why) == 0,
		      "%s: the map differs from a fresh walk: %s", what, why);
	store_map_free(fresh);
}

static int n_whole, n_incremental;

/* Checks the transaction from old to new against m (a map of old): it is
 * accepted and, committed, leaves the map of new. */
static void check_legit(const char *what, struct store_map *m,
			struct rows_file *old, struct rows_file *new)
{
	struct txn t;
	char why[512] = "";
	int rv;

	txn_diff(&t, old, new);
	rv = store_map_check(m, t.pages, t.n, t.db_size, why, sizeof why);
	ck_assert_msg(rv == 0, "%s refused (%d): %s", what, rv, why);
	if (store_map_whole(m))
		n_whole++;
	else
		n_incremental++;
	store_map_commit(m);
	assert_same(what, m, new);
	free(t.pages);
}

/* The transaction from a.db to b.db is sound, accepted, and leaves the map
 * of b.db. */
static void assert_legit(const char *what)
{
	struct rows_file old, new;
	struct store_map *m;
	char *ok = rows_integrity(b_path);

	ck_assert_msg(strcmp(ok, "ok") == 0, "%s: integrity_check: %s", what,
		      ok);
	free(ok);
	rows_file_load(&old, a_path);
	rows_file_load(&new, b_path);
	m = build(&old);
	check_legit(what, m, &old, &new);
	store_map_free(m);
	rows_file_free(&old);
	rows_file_free(&new);
}

/* Runs sql on a copy of a.db as b.db, checks the transaction, and makes
 * b.db the next a.db. */
static void step(const char *sql)
{
	rows_copy(a_path, b_path);
	rows_exec(b_path, sql);
	assert_legit(sql);
	rows_copy(b_path, a_path);
}

/* The transaction from a.db to b.db is refused, and b.db is corrupt. */
static void assert_refused(const char *what)
{
	struct rows_file old, new;
	struct store_map *m;
	struct txn t;
	char why[512] = "", *ok = rows_integrity(b_path);
	int rv;

	ck_assert_msg(strcmp(ok, "ok") != 0, "%s: not a corruption", what);
	rows_file_load(&old, a_path);
	rows_file_load(&new, b_path);
	m = build(&old);
	txn_diff(&t, &old, &new);
	rv = store_map_check(m, t.pages, t.n, t.db_size, why, sizeof why);
	ck_assert_msg(rv == 1, "%s: accepted (%d) %s (integrity_check: %s)",
		      what, rv, why, ok);
	fprintf(stderr, "%-46s refused: %s (integrity_check: %s)\n", what, why,
		ok);
	store_map_free(m);
	free(t.pages);
	rows_file_free(&old);
	rows_file_free(&new);
	free(ok);
}

/* --- Finding pages ----------------------------------------------------- */

static uint32_t root_of(const char *path, const char *name)
{
	sqlite3 *db = rows_open(path);
	char *q = sqlite3_mprintf(
	    "SELECT rootpage FROM sqlite_schema WHERE name = %Q", name);
	uint32_t root = (uint32_t)fixture_query_int(db, q);

	sqlite3_free(q);
	sqlite3_close(db);
	return root;
}

/* The free leaf pages the freelist lists. */
static size_t free_leaves(struct rows_file *f, uint32_t *out, size_t max)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), i;
	size_t n = 0;

	while (trunk != 0) {
		const uint8_t *pg = rows_file_page(f, trunk);
		for (i = 0; i < get32(pg + 4) && n < max; i++)
			out[n++] = get32(pg + 8 + 4 * i);
		trunk = get32(pg);
	}
	return n;
}

static unsigned hdr_of(uint32_t pgno)
{
	return pgno == 1 ? 100 : 0;
}

static unsigned n_cells(const uint8_t *pg, uint32_t pgno)
{
	return get16(pg + hdr_of(pgno) + 3);
}

/* Cell i of the page (in the cell pointer array's order). */
static uint8_t *cell_at(uint8_t *pg, uint32_t pgno, unsigned i)
{
	unsigned h = hdr_of(pgno);
	unsigned ptrs = h + (pg[h] == 2 || pg[h] == 5 ? 12 : 8);

	ck_assert_uint_lt(i, n_cells(pg, pgno));
	return pg + get16(pg + ptrs + 2 * i);
}

/* Grows f by n zeroed pages, the header's page count too. */
static uint32_t grow(struct rows_file *f, uint32_t n)
{
	uint32_t first = f->n_pages + 1;

	f->data = realloc(f->data, (size_t)(f->n_pages + n) * PAGE);
	ck_assert_ptr_nonnull(f->data);
	memset(f->data + (size_t)f->n_pages * PAGE, 0, (size_t)n * PAGE);
	f->n_pages += n;
	put32(rows_file_page(f, 1) + 28, f->n_pages);
	return first;
}

/* Makes pg an empty table interior page with the right child given. */
static void empty_interior(uint8_t *pg, uint32_t right)
{
	memset(pg, 0, PAGE);
	pg[0] = 5;
	put16(pg + 5, PAGE);
	put32(pg + 8, right);
}

struct find_cell {
	int64_t key;
	const uint8_t *base;
	long overflow_at; /* offset of the cell's overflow page number */
	uint32_t first;
};

static int find_cell_fn(void *arg, const struct btree_cell *c)
{
	struct find_cell *x = arg;

	if (c->key != x->key || c->overflow == 0)
		return 0;
	x->overflow_at = (long)(c->local + c->n_local - x->base);
	x->first = c->overflow;
	return 1;
}

/* The overflow page number of the row key of table tree (in f), and its
 * leaf. */
static uint8_t *overflow_ptr(struct rows_file *f, const char *tree, int64_t key)
{
	uint32_t leaves[1024];
	size_t n = rows_tree_pages(b_path, tree, "leaf", leaves, 1024), i;

	for (i = 0; i < n; i++) {
		uint8_t *pg = rows_file_page(f, leaves[i]);
		struct find_cell x = {key, pg, -1, 0};
		btree_page_cells(pg, leaves[i], PAGE, find_cell_fn, &x);
		if (x.overflow_at >= 0)
			return pg + x.overflow_at;
	}
	ck_abort_msg("no overflow cell for row %lld of %s", (long long)key,
		     tree);
	return NULL;
}

/* The bytes of the rootpage field of name's record in the schema (which
 * must fit on page 1), and their number. */
static uint8_t *schema_rootpage(struct rows_file *f, const char *name,
				unsigned *size)
{
	uint8_t *pg = rows_file_page(f, 1);
	unsigned i;

	ck_assert_int_eq(pg[100], 13);
	for (i = 0; i < n_cells(pg, 1); i++) {
		uint8_t *p = cell_at(pg, 1, i), *hdr, *body;
		uint64_t types[5], hdr_len;
		unsigned sizes[5], k;
		int len;
		varint(p, &len); /* the payload size */
		p += len;
		varint(p, &len); /* the rowid */
		p += len;
		hdr_len = varint(p, &len);
		hdr = p + len;
		body = p + hdr_len;
		for (k = 0; k < 5; k++) {
			types[k] = varint(hdr, &len);
			hdr += len;
			sizes[k] = types[k] >= 12
				       ? (unsigned)(types[k] - 12) / 2
				   : types[k] <= 4 ? (unsigned)types[k]
				   : types[k] == 5 ? 6
				   : types[k] <= 7 ? 8
						   : 0;
		}
		if (sizes[1] == strlen(name) &&
		    memcmp(body + sizes[0], name, sizes[1]) == 0) {
			*size = sizes[3];
			return body + sizes[0] + sizes[1] + sizes[2];
		}
	}
	ck_abort_msg("%s not in the schema on page 1", name);
	return NULL;
}

static void set_rootpage(struct rows_file *f, const char *name, uint32_t root)
{
	unsigned size;
	uint8_t *at = schema_rootpage(f, name, &size);

	if (size == 1) {
		ck_assert_uint_lt(root, 128);
		at[0] = (uint8_t)root;
	} else {
		ck_assert_uint_eq(size, 2);
		ck_assert_uint_lt(root, 32768);
		put16(at, root);
	}
}

/* --- Legitimate transactions ------------------------------------------- */

/* A table of rows spilling to overflow chains of 3 to 25 pages (first, so
 * that its pages and the free ones are numbered below 128, as a one-byte
 * rootpage in a schema record can name), a table of small rows with an
 * index, a WITHOUT ROWID table, some free pages: about 500 pages, so that
 * small transactions are checked incrementally. */
static const char *base_sql =
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

START_TEST(test_legit_rowid_tables)
{
	rows_exec(a_path, base_sql);
	step("INSERT INTO t VALUES (5000, 'x', randomblob(60))");
	step("UPDATE t SET b = randomblob(61) WHERE id = 1500");
	step("DELETE FROM t WHERE id = 1501");
	step("BEGIN; INSERT INTO t SELECT 5000 + value, 'y' || value, "
	     "randomblob(60) FROM " SERIES(60) "; COMMIT");
	step("UPDATE t SET a = a || 'x' WHERE id % 97 = 0");
	step("DELETE FROM t WHERE id BETWEEN 100 AND 150");
	/* Overflow rows: new chains (reusing free pages), chains growing,
	 * shrinking, going, and a row no longer spilling. */
	step("INSERT INTO big VALUES (100, randomblob(50000))");
	step("INSERT INTO big VALUES (101, randomblob(100000))");
	step("UPDATE big SET v = randomblob(90000) WHERE id = 2");
	step("UPDATE big SET v = randomblob(11000) WHERE id = 20");
	step("UPDATE big SET v = randomblob(100) WHERE id = 21");
	step("UPDATE big SET v = randomblob(4100) WHERE id = 22");
	step("DELETE FROM big WHERE id IN (5, 6)");
	step("INSERT INTO big VALUES (102, randomblob(30000))");
	step("INSERT INTO t VALUES (7000, 'ov', randomblob(20000))");
	step("UPDATE t SET a = printf('%.5000c', 'L') WHERE id = 200");
	/* Splits and merges. */
	step("BEGIN; INSERT INTO t SELECT 10000 + value, 's' || value, "
	     "randomblob(300) FROM " SERIES(300) "; COMMIT");
	step("UPDATE t SET b = randomblob(900) WHERE id BETWEEN 1000 AND "
	     "1100");
	step("DELETE FROM t WHERE id % 3 != 0 AND id < 2000");
	step("DELETE FROM t WHERE id BETWEEN 10000 AND 10290");
	/* Reuse of the free pages. */
	step("BEGIN; INSERT INTO t SELECT 20000 + value, 'r' || value, "
	     "randomblob(100) FROM " SERIES(400) "; COMMIT");
	/* DELETE of everything: the pages are freed without being written,
	 * onto freelist trunks and leaves. */
	step("DELETE FROM big");
	step("DELETE FROM t");
	step("INSERT INTO big VALUES (1, randomblob(60000))");
	step("BEGIN; INSERT INTO t SELECT value, 'z' || value, "
	     "randomblob(50) FROM " SERIES(2000) "; COMMIT");
	step("VACUUM");
	step("UPDATE t SET b = randomblob(49) WHERE id = 1000");
	fprintf(stderr, "rowid tables: %d checked incrementally, %d whole\n",
		n_incremental, n_whole);
	ck_assert_int_gt(n_incremental, 15);
}
END_TEST

START_TEST(test_legit_schema)
{
	char *sql;
	char long_default[5001];

	rows_exec(a_path, base_sql);
	step("CREATE TABLE c(x INTEGER PRIMARY KEY, y)");
	step("INSERT INTO c SELECT value, value FROM " SERIES(500) "");
	step("CREATE INDEX c_y ON c(y)");
	step("CREATE INDEX w_v ON w(v)");
	step("CREATE UNIQUE INDEX big_v ON big(substr(v, 1, 8))");
	step("DROP INDEX c_y");
	step("DROP TABLE c");
	step("DROP INDEX big_v");
	step("CREATE TABLE e(x)");
	step("DROP TABLE e");
	/* A schema record spilling to an overflow chain: page 1 splits. */
	memset(long_default, 'd', 5000);
	long_default[5000] = 0;
	sql = sqlite3_mprintf("CREATE TABLE longsql(x, y DEFAULT '%s')",
			      long_default);
	step(sql);
	sqlite3_free(sql);
	step("INSERT INTO longsql(x) VALUES (1)");
	step("CREATE INDEX longsql_x ON longsql(x)");
	step("DROP TABLE longsql");
	/* Many tables: the schema b-tree grows a level. */
	step("BEGIN; CREATE TABLE s1(a); CREATE TABLE s2(a); CREATE TABLE "
	     "s3(a); CREATE TABLE s4(a); CREATE TABLE s5(a); CREATE INDEX "
	     "s1a ON s1(a); CREATE INDEX s2a ON s2(a); COMMIT");
	step("DROP TABLE s3");
	/* WITHOUT ROWID. */
	step("INSERT INTO w VALUES ('new', randomblob(30))");
	step("UPDATE w SET v = randomblob(31) WHERE k = 'k500'");
	step("BEGIN; INSERT INTO w SELECT 'n' || value, randomblob(200) FROM "
	     "" SERIES(400) "; COMMIT");
	step("INSERT INTO w VALUES ('huge', randomblob(20000))");
	step("INSERT INTO w VALUES (printf('%.9000c', 'K'), 1)");
	step("DELETE FROM w WHERE k LIKE 'n%'");
	step("DELETE FROM w");
	step("CREATE TABLE w2(a, b, c, PRIMARY KEY (b, a)) WITHOUT ROWID");
	step("INSERT INTO w2 SELECT value, value % 7, randomblob(40) FROM "
	     "" SERIES(1000) "");
	step("DROP TABLE w2");
	step("VACUUM");
}
END_TEST

/* 10k+ rows of 200-byte keys: a table and an index four levels deep. */
START_TEST(test_legit_deep)
{
	sqlite3 *db;

	rows_exec(a_path, base_sql);
	step("CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT);"
	     "CREATE INDEX m_v ON m(v);"
	     "INSERT INTO m SELECT value, printf('%0200d', value * 7919 % "
	     "12000) FROM " SERIES(12000) "");
	db = rows_open(a_path);
	ck_assert_int_ge(fixture_query_int(db, "SELECT max(length(path)) "
					       "FROM dbstat WHERE name = "
					       "'m_v'"),
			 13); /* /000/000/000/ and below */
	sqlite3_close(db);
	step("UPDATE m SET v = 'changed' WHERE id = 6000");
	step("INSERT INTO m VALUES (20000, printf('%0200d', 5))");
	step("BEGIN; INSERT INTO m SELECT 20000 + value, printf('%0199d', "
	     "value) FROM " SERIES(1000) "; COMMIT");
	step("DELETE FROM m WHERE id BETWEEN 3000 AND 3500");
	step("DELETE FROM m WHERE id % 2 = 0");
	step("UPDATE m SET v = printf('%0300d', id) WHERE id % 50 = 1");
	step("DELETE FROM m WHERE id > 100");
	step("DELETE FROM m");
	step("DROP TABLE m");
}
END_TEST

/* auto_vacuum=FULL: pointer-map pages, a file shrinking at every commit
 * that frees pages, root pages moved on DROP TABLE. */
START_TEST(test_legit_autovacuum)
{
	rows_exec(a_path, "PRAGMA auto_vacuum=FULL");
	rows_exec(a_path, base_sql);
	step("INSERT INTO t VALUES (5000, 'x', randomblob(60))");
	step("UPDATE t SET b = randomblob(61) WHERE id = 1500");
	step("DELETE FROM t WHERE id BETWEEN 100 AND 300");
	step("INSERT INTO big VALUES (100, randomblob(50000))");
	step("UPDATE big SET v = randomblob(20000) WHERE id = 100");
	step("DELETE FROM big WHERE id IN (4, 5)");
	step("CREATE TABLE c(x INTEGER PRIMARY KEY, y)");
	step("INSERT INTO c SELECT value, randomblob(100) FROM "
	     "" SERIES(500) "");
	step("CREATE INDEX c_y ON c(y)");
	step("CREATE TABLE d(x)");
	/* Roots after t's move down into the freed ones. */
	step("DROP TABLE t");
	step("DROP INDEX c_y");
	step("DROP TABLE c");
	step("INSERT INTO w VALUES ('new', randomblob(30000))");
	step("DELETE FROM w");
	step("DELETE FROM big");
	/* Past the first pointer-map page's reach (819 pages). */
	step("BEGIN; INSERT INTO d SELECT randomblob(3000) FROM "
	     "" SERIES(1000) "; COMMIT");
	step("UPDATE d SET x = randomblob(10) WHERE rowid % 3 = 0");
	step("DELETE FROM d WHERE rowid > 100");
	step("VACUUM");
}
END_TEST

/* auto_vacuum=INCREMENTAL: free pages kept until incremental_vacuum cuts
 * them off. */
START_TEST(test_legit_incremental_vacuum)
{
	rows_exec(a_path, "PRAGMA auto_vacuum=INCREMENTAL");
	rows_exec(a_path, base_sql);
	step("DELETE FROM big WHERE id > 20");
	step("PRAGMA incremental_vacuum(5)");
	step("DELETE FROM t WHERE id < 1000");
	step("PRAGMA incremental_vacuum(1)");
	step("INSERT INTO big VALUES (100, randomblob(20000))");
	step("PRAGMA incremental_vacuum");
	step("DROP TABLE t");
	step("PRAGMA incremental_vacuum");
	/* Turning auto-vacuum off takes a VACUUM: a rewrite. */
	step("PRAGMA auto_vacuum=NONE; VACUUM");
	step("DELETE FROM big WHERE id < 10");
}
END_TEST

/* A randomized sequence of transactions, each checked against one map kept
 * from the first (committed each time) and compared with a fresh walk. */
static uint32_t rnd_state;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % n;
}

static void random_sequence(const char *pragma, uint32_t seed, int n)
{
	struct rows_file cur, next;
	struct store_map *m;
	char sql[512], *ok;
	int i, next_id = 100000;

	rnd_state = seed;
	if (pragma != NULL)
		rows_exec(a_path, pragma);
	rows_exec(a_path, base_sql);
	rows_file_load(&cur, a_path);
	m = build(&cur);
	for (i = 0; i < n; i++) {
		uint32_t k = rnd(3000), len = 1 + rnd(100);
		switch (rnd(12)) {
		case 0:
		case 1:
			snprintf(sql, sizeof sql,
				 "BEGIN; INSERT INTO t SELECT %d + value, "
				 "hex(randomblob(%u)), randomblob(%u) FROM "
				 "(WITH RECURSIVE g(value) AS (SELECT 1 UNION "
				 "ALL SELECT value + 1 FROM g WHERE value < "
				 "%u) SELECT value FROM g); COMMIT",
				 next_id, 1 + rnd(20), rnd(200), len);
			next_id += 1000;
			break;
		case 2:
			snprintf(sql, sizeof sql,
				 "UPDATE t SET b = randomblob(%u) WHERE id "
				 "BETWEEN %u AND %u",
				 rnd(400), k, k + rnd(30));
			break;
		case 3:
			snprintf(sql, sizeof sql,
				 "DELETE FROM t WHERE id BETWEEN %u AND %u", k,
				 k + rnd(200));
			break;
		case 4:
			snprintf(sql, sizeof sql,
				 "INSERT OR REPLACE INTO big VALUES (%u, "
				 "randomblob(%u))",
				 rnd(40), 4000 + rnd(100000));
			break;
		case 5:
			snprintf(sql, sizeof sql,
				 "DELETE FROM big WHERE id %% %u = %u",
				 2 + rnd(8), rnd(2));
			break;
		case 6:
			snprintf(sql, sizeof sql,
				 "INSERT OR REPLACE INTO w SELECT 'k' || "
				 "(value * %u %% 3000), randomblob(%u) FROM "
				 "(WITH RECURSIVE g(value) AS (SELECT 1 UNION "
				 "ALL SELECT value + 1 FROM g WHERE value < "
				 "%u) SELECT value FROM g)",
				 1 + rnd(50), rnd(300), len);
			break;
		case 7:
			snprintf(sql, sizeof sql,
				 "DELETE FROM w WHERE k > 'k%u' AND k < 'k%u'",
				 k, k + rnd(500));
			break;
		case 8:
			snprintf(sql, sizeof sql,
				 rnd(2) ? "CREATE INDEX IF NOT EXISTS i%u ON "
					  "t(b)"
					: "DROP INDEX IF EXISTS i%u",
				 rnd(3));
			break;
		case 9:
			snprintf(sql, sizeof sql,
				 rnd(2) ? "CREATE TABLE IF NOT EXISTS x%u(a, "
					  "b); INSERT INTO x%u SELECT value, "
					  "randomblob(value %% 1000) FROM "
					  "" SERIES(200) ""
					: "DROP TABLE IF EXISTS x%u",
				 k % 4, k % 4);
			break;
		case 10:
			snprintf(sql, sizeof sql,
				 "UPDATE t SET a = printf('%%.%uc', 'q') WHERE "
				 "id %% %u = 0",
				 1 + rnd(3000), 50 + rnd(500));
			break;
		default:
			snprintf(sql, sizeof sql,
				 rnd(8) == 0 ? "VACUUM"
				 : pragma != NULL && rnd(2)
				     ? "PRAGMA incremental_vacuum(%u)"
				     : "UPDATE t SET b = b WHERE id = %u",
				 1 + rnd(20));
			break;
		}
		rows_copy(a_path, b_path);
		rows_exec(b_path, sql);
		if (i % 10 == 0) {
			ok = rows_integrity(b_path);
			ck_assert_msg(strcmp(ok, "ok") == 0, "%d %s: %s", i,
				      sql, ok);
			free(ok);
		}
		rows_file_load(&next, b_path);
		check_legit(sql, m, &cur, &next);
		/* The map now reads the new state. */
		rows_file_free(&cur);
		cur = next;
		rows_copy(b_path, a_path);
	}
	fprintf(stderr,
		"%d random transactions (%s): %d checked incrementally, %d "
		"whole, %u pages at the end\n",
		n, pragma ? pragma : "no auto-vacuum", n_incremental, n_whole,
		cur.n_pages);
	store_map_free(m);
	rows_file_free(&cur);
}

START_TEST(test_random_sequence)
{
	random_sequence(NULL, 12345, 240);
}
END_TEST

START_TEST(test_random_sequence_autovacuum)
{
	random_sequence("PRAGMA auto_vacuum=INCREMENTAL", 777, 120);
}
END_TEST

/* --- Corruptions --------------------------------------------------------- */

/* Mutations of the images of a legitimate transaction, on b.db loaded in
 * f (b.db itself is still the sound result until they are stored). */

/* t's root, an interior page over leaves. */
static uint8_t *t_root(struct rows_file *f, uint32_t *root)
{
	uint8_t *pg;

	*root = root_of(b_path, "t");
	pg = rows_file_page(f, *root);
	ck_assert_int_eq(pg[0], 5);
	ck_assert_uint_ge(n_cells(pg, *root), 4);
	return pg;
}

static void child_to_other_tree(struct rows_file *f)
{
	uint32_t root, w_leaves[4];
	uint8_t *pg = t_root(f, &root);

	ck_assert_uint_ge(rows_tree_pages(b_path, "w", "leaf", w_leaves, 4), 1);
	put32(cell_at(pg, root, 1), w_leaves[0]);
}

static void child_to_other_table(struct rows_file *f)
{
	uint32_t root, big_leaves[4];
	uint8_t *pg = t_root(f, &root);

	ck_assert_uint_ge(rows_tree_pages(b_path, "big", "leaf", big_leaves, 4),
			  1);
	put32(cell_at(pg, root, 1), big_leaves[0]);
}

static void child_to_sibling(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root);

	put32(cell_at(pg, root, 1), get32(cell_at(pg, root, 2)));
}

static void right_child_to_sibling(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root);

	put32(pg + 8, get32(cell_at(pg, root, 0)));
}

/* The cell at the start of the content area of t's root removed (its
 * bytes given back to the content area, so the page stays well formed):
 * its child page is no longer used. */
static void child_dropped(struct rows_file *f)
{
	uint32_t root, content, n, i;
	uint8_t *pg = t_root(f, &root);
	int len;

	content = get16(pg + 5);
	n = n_cells(pg, root);
	for (i = 0; i < n && get16(pg + 12 + 2 * i) != content; i++)
		;
	ck_assert_uint_lt(i, n);
	varint(pg + content + 4, &len);
	memmove(pg + 12 + 2 * i, pg + 14 + 2 * i, 2 * (n - 1 - i));
	put16(pg + 3, n - 1);
	put16(pg + 5, content + 4 + (uint32_t)len);
}

static void overflow_to_free_page(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	put32(overflow_ptr(f, "big", 5), leaves[0]);
}

static void overflow_last_goes_on(struct rows_file *f)
{
	uint32_t leaves[8], p = get32(overflow_ptr(f, "big", 5));

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	while (get32(rows_file_page(f, p)) != 0)
		p = get32(rows_file_page(f, p));
	put32(rows_file_page(f, p), leaves[0]);
}

static void overflow_cut_short(struct rows_file *f)
{
	uint32_t p = get32(overflow_ptr(f, "big", 5));

	put32(rows_file_page(f, p), 0);
}

static void trunk_lists_used_page(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), t_leaves[4];
	uint8_t *pg = rows_file_page(f, trunk);

	ck_assert_uint_ge(get32(pg + 4), 1);
	ck_assert_uint_ge(rows_tree_pages(b_path, "t", "leaf", t_leaves, 4), 1);
	put32(pg + 8 + 4 * (get32(pg + 4) - 1), t_leaves[0]);
}

static void trunk_lists_itself(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32);
	uint8_t *pg = rows_file_page(f, trunk);

	put32(pg + 8, trunk);
}

static void freelist_count_up(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 36, get32(p1 + 36) + 1);
}

static void freelist_count_down(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 36, get32(p1 + 36) - 1);
}

/* The last rowid of the leaf under t's root's cell 2 becomes its
 * divider + 1 (a 2-byte varint either way). */
static void rowid_out_of_order(struct rows_file *f)
{
	uint32_t root, leaf, divider;
	uint8_t *pg = t_root(f, &root), *cell, *leaf_pg;
	int len;

	cell = cell_at(pg, root, 2);
	leaf = get32(cell);
	divider = (uint32_t)varint(cell + 4, &len);
	leaf_pg = rows_file_page(f, leaf);
	ck_assert_int_eq(leaf_pg[0], 13);
	cell = cell_at(leaf_pg, leaf, n_cells(leaf_pg, leaf) - 1);
	varint(cell, &len);
	cell += len;
	ck_assert_uint_eq((uint32_t)varint(cell, &len), divider);
	ck_assert_int_eq(len, 2);
	ck_assert_uint_lt(divider + 1, 16384);
	cell[0] = (uint8_t)(0x80 | (divider + 1) >> 7);
	cell[1] = (uint8_t)((divider + 1) & 0x7f);
}

/* An empty interior page between t's root and one of its leaves: that
 * leaf is one level deeper than its siblings. */
static void depth_differs(struct rows_file *f)
{
	uint32_t root, n;
	uint8_t *pg;

	n = grow(f, 1);
	pg = t_root(f, &root);
	empty_interior(rows_file_page(f, n), get32(cell_at(pg, root, 1)));
	put32(cell_at(pg, root, 1), n);
}

static void schema_root_other_table(struct rows_file *f)
{
	set_rootpage(f, "w", root_of(b_path, "big"));
}

static void schema_root_leaf(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(rows_tree_pages(b_path, "big", "leaf", leaves, 8), 1);
	set_rootpage(f, "w", leaves[0]);
}

static void schema_root_free(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	set_rootpage(f, "big", leaves[0]);
}

static void size_cut(struct rows_file *f)
{
	f->n_pages--;
	put32(rows_file_page(f, 1) + 28, f->n_pages);
}

static void page_nobody_refers_to(struct rows_file *f)
{
	uint32_t n = grow(f, 1), leaves[4];

	ck_assert_uint_ge(rows_tree_pages(b_path, "t", "leaf", leaves, 4), 1);
	memcpy(rows_file_page(f, n), rows_file_page(f, leaves[0]), PAGE);
}

static void pages_in_a_loop(struct rows_file *f)
{
	uint32_t n = grow(f, 2);

	empty_interior(rows_file_page(f, n), n + 1);
	empty_interior(rows_file_page(f, n + 1), n);
}

/* An overflow chain pushed past the end, looping on itself. */
static void overflow_loop(struct rows_file *f)
{
	uint32_t n = grow(f, 2);

	put32(rows_file_page(f, n), n + 1);
	put32(rows_file_page(f, n + 1), n);
}

/* A free page of the freelist given a second trunk: the trunk chain. */
static void trunk_chain_to_used(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), t_leaves[4];

	ck_assert_uint_ge(rows_tree_pages(b_path, "t", "leaf", t_leaves, 4), 1);
	while (get32(rows_file_page(f, trunk)) != 0)
		trunk = get32(rows_file_page(f, trunk));
	put32(rows_file_page(f, trunk), t_leaves[0]);
}

struct mutation {
	const char *what;
	void (*fn)(struct rows_file *f);
};

static const char *update_t = "UPDATE t SET b = randomblob(60) WHERE id = "
			      "1500";
static const char *update_big =
    "UPDATE big SET v = randomblob(20000) WHERE id = 5";
static const char *delete_big = "DELETE FROM big WHERE id = 11";

static const struct mutation mutations[] = {
    {"child pointer into another tree", child_to_other_tree},
    {"child pointer into another table's tree", child_to_other_table},
    {"child pointer to an unchanged sibling", child_to_sibling},
    {"right child to a sibling", right_child_to_sibling},
    {"a child dropped", child_dropped},
    {"overflow pointer to a free page", overflow_to_free_page},
    {"last overflow page goes on", overflow_last_goes_on},
    {"overflow chain cut short", overflow_cut_short},
    {"trunk lists a page in use", trunk_lists_used_page},
    {"trunk lists itself", trunk_lists_itself},
    {"trunk chain into a page in use", trunk_chain_to_used},
    {"freelist count one more", freelist_count_up},
    {"freelist count one less", freelist_count_down},
    {"rowid out of order", rowid_out_of_order},
    {"children at different depths", depth_differs},
    {"schema root to another table's root", schema_root_other_table},
    {"schema root to a leaf page", schema_root_leaf},
    {"schema root to a free page", schema_root_free},
    {"database cut short", size_cut},
    {"a page nobody refers to", page_nobody_refers_to},
    {"two pages referring to each other", pages_in_a_loop},
    {"an overflow loop nobody refers to", overflow_loop},
};

static void run_mutation(const char *what, const char *sql,
			 void (*fn)(struct rows_file *f))
{
	struct rows_file f;

	rows_copy(base_path, a_path);
	rows_copy(a_path, b_path);
	rows_exec(b_path, sql);
	assert_legit(what); /* before the mutation */
	rows_file_load(&f, b_path);
	fn(&f);
	rows_file_store(&f, b_path);
	rows_file_free(&f);
	assert_refused(what);
}

START_TEST(test_corruptions_refused)
{
	const char *sqls[] = {update_t, update_big, delete_big};
	size_t i, j;

	rows_exec(base_path, base_sql);
	for (i = 0; i < sizeof mutations / sizeof *mutations; i++)
		for (j = 0; j < sizeof sqls / sizeof *sqls; j++) {
			char what[128];
			snprintf(what, sizeof what, "%s (%.*s)",
				 mutations[i].what, 10, sqls[j]);
			run_mutation(what, sqls[j], mutations[i].fn);
		}
}
END_TEST

/* auto_vacuum=FULL: a pointer-map entry wrong, for a page the transaction
 * writes and for one it does not. */
static void ptrmap_written_page(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root), *pm = rows_file_page(f, 2);
	uint32_t leaf = get32(cell_at(pg, root, 0));

	ck_assert_uint_lt(leaf, 2 + PAGE / 5);
	ck_assert_int_eq(pm[5 * (leaf - 3)], 5);
	put32(pm + 5 * (leaf - 3) + 1, root + 1);
}

static void ptrmap_other_page(struct rows_file *f)
{
	uint8_t *pm = rows_file_page(f, 2);
	uint32_t w_root = root_of(b_path, "w");

	ck_assert_int_eq(pm[5 * (w_root - 3)], 1);
	pm[5 * (w_root - 3)] = 5;
	put32(pm + 5 * (w_root - 3) + 1, 1);
}

static void ptrmap_overflow_type(struct rows_file *f)
{
	uint8_t *pm = rows_file_page(f, 2);
	uint32_t p = get32(overflow_ptr(f, "big", 5));

	ck_assert_uint_lt(p, 2 + PAGE / 5);
	ck_assert_int_eq(pm[5 * (p - 3)], 3);
	pm[5 * (p - 3)] = 4;
}

static void largest_root_wrong(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 52, get32(p1 + 52) - 1);
}

START_TEST(test_autovacuum_corruptions_refused)
{
	const char *sqls[] = {update_t, update_big};
	const struct mutation av[] = {
	    {"pointer map: a written page's parent", ptrmap_written_page},
	    {"pointer map: another root's entry", ptrmap_other_page},
	    {"pointer map: an overflow page's type", ptrmap_overflow_type},
	    {"largest root page wrong", largest_root_wrong},
	    {"child pointer to an unchanged sibling", child_to_sibling},
	    {"database cut short", size_cut},
	    {"schema root to a leaf page", schema_root_leaf},
	};
	size_t i, j;

	rows_exec(base_path, "PRAGMA auto_vacuum=FULL");
	rows_exec(base_path, base_sql);
	for (i = 0; i < sizeof av / sizeof *av; i++)
		for (j = 0; j < sizeof sqls / sizeof *sqls; j++) {
			char what[128];
			snprintf(what, sizeof what, "%s (%.*s)", av[i].what, 10,
				 sqls[j]);
			run_mutation(what, sqls[j], av[i].fn);
		}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store_map");
	TCase *tc = tcase_create("store_map");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_legit_rowid_tables);
	tcase_add_test(tc, test_legit_schema);
	tcase_add_test(tc, test_legit_deep);
	tcase_add_test(tc, test_legit_autovacuum);
	tcase_add_test(tc, test_legit_incremental_vacuum);
	tcase_add_test(tc, test_random_sequence);
	tcase_add_test(tc, test_random_sequence_autovacuum);
	tcase_add_test(tc, test_corruptions_refused);
	tcase_add_test(tc, test_autovacuum_corruptions_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
