/* The temporary files of encryption at rest: the stream cipher
 * (wal/cipher_temp.h) against a plain reference, a temporary file's handle
 * through the cipher VFS (wal/cipher_vfs_temp.h), and real SQLite workloads
 * that spill to temporary files (a large sort, with and without mmap, a
 * temporary table, VACUUM, a statement journal, a DISTINCT) over a spying
 * root VFS (temp_spy.h) that sees every byte they write: none holds a row's
 * marker while a database is encrypted, and the same workload without one
 * leaves the markers there (the control: the spy does see them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "temp_spy.h"
#include "wal/cipher_temp.h"
#include "wal/cipher_vfs.h"

#define SPY_NAME "temp-spy"
#define VFS_NAME "cipher-temp-test"
#define MARKER "TEMPMARK"
#define PASSPHRASE "a passphrase nobody guesses"
#define ROWS 20000

static sqlite3_vfs *vfs;
static char *dir;

static void setup(void)
{
	ck_assert_int_eq(temp_spy_register(SPY_NAME, 0, MARKER), SQLITE_OK);
	ck_assert_int_eq(
	    cipher_vfs_register(VFS_NAME, sqlite3_vfs_find(SPY_NAME), &vfs),
	    SQLITE_OK);
	dir = fixture_tmpdir();
	temp_spy_reset();
}

static void teardown(void)
{
	cipher_vfs_unregister(vfs);
	vfs = NULL;
	fixture_rmdir(dir);
	dir = NULL;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static unsigned next(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* ---------------------------------------------------------------------- */
/* the stream cipher */

#define XN (64 * 1024 + 7)

/* Any (offset, length) encrypts to the bytes the whole range gives at
 * that place, and decrypts back, in place or not; the keystream covers
 * every block (no 16 bytes in clear); two files' keys differ. */
START_TEST(test_xor_any_range)
{
	static uint8_t plain[XN], whole[XN], piece[XN], back[XN];
	struct cipher_temp *t, *u;
	unsigned seed = 7;
	size_t i, off, n;
	int round;

	ck_assert_int_eq(cipher_temp_new(&t), 0);
	ck_assert_int_eq(cipher_temp_new(&u), 0);
	fill(plain, XN, 1);
	ck_assert_int_eq(cipher_temp_xor(t, 0, plain, whole, XN), 0);
	for (i = 0; i + 16 <= XN; i += 16)
		ck_assert_msg(memcmp(whole + i, plain + i, 16) != 0,
			      "block at %zu in clear", i);
	for (round = 0; round < 3000; round++) {
		off = next(&seed) % XN;
		n = round % 10 == 0 ? next(&seed) % (XN - off + 1)
				    : next(&seed) % 80 % (XN - off + 1);
		ck_assert_int_eq(cipher_temp_xor(t, off, plain + off, piece, n),
				 0);
		ck_assert_msg(memcmp(piece, whole + off, n) == 0,
			      "encrypt %zu at %zu", n, off);
		memcpy(back, piece, n);
		ck_assert_int_eq(cipher_temp_xor(t, off, back, back, n), 0);
		ck_assert_msg(memcmp(back, plain + off, n) == 0,
			      "decrypt %zu at %zu", n, off);
	}
	/* Far offsets (a sorter's file may be large): pieces agree. */
	off = ((size_t)1 << 40) + 5;
	ck_assert_int_eq(cipher_temp_xor(t, off, plain, whole, 1000), 0);
	ck_assert_int_eq(cipher_temp_xor(t, off, plain, piece, 333), 0);
	ck_assert_int_eq(
	    cipher_temp_xor(t, off + 333, plain + 333, piece + 333, 667), 0);
	ck_assert_int_eq(memcmp(piece, whole, 1000), 0);
	/* Another file's key: another keystream. */
	ck_assert_int_eq(cipher_temp_xor(u, 0, plain, piece, 4096), 0);
	ck_assert_int_eq(cipher_temp_xor(t, 0, plain, whole, 4096), 0);
	ck_assert_int_ne(memcmp(piece, whole, 4096), 0);
	cipher_temp_free(t);
	cipher_temp_free(u);
	cipher_temp_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* a temporary file's handle */

static void add_db(const char *name)
{
	uint8_t salt[CIPHER_SALT_SIZE] = {1};
	struct cipher_key k;
	struct cipher *c = NULL;
	char *path = fixture_path(dir, name), err[256] = "";

	ck_assert_int_eq(cipher_key_parse(PASSPHRASE, &k, err, sizeof err), 0);
	ck_assert_msg(cipher_new(&k, salt, &c, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(cipher_vfs_add(vfs, path, c, 4096, err, sizeof err) == 0,
		      "%s", err);
	cipher_key_wipe(&k);
	cipher_free(c);
	free(path);
}

#define FN (1 << 20) /* where the random calls go */

static sqlite3_file *temp_open(const char *name)
{
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
	int out = 0;

	ck_assert_int_eq(
	    vfs->xOpen(vfs, name, f,
		       SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_READWRITE |
			   SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE |
			   SQLITE_OPEN_DELETEONCLOSE,
		       &out),
	    SQLITE_OK);
	return f;
}

static void temp_close(sqlite3_file *f)
{
	ck_assert_int_eq(f->pMethods->xClose(f), SQLITE_OK);
	free(f);
}

static void compare_read(sqlite3_file *f, sqlite3_file *ref, int n,
			 sqlite3_int64 off)
{
	static uint8_t a[128 * 1024], b[128 * 1024];
	int rc, ref_rc;

	ck_assert_int_le(n, (int)sizeof a);
	memset(a, 0xaa, (size_t)n);
	memset(b, 0x55, (size_t)n);
	rc = f->pMethods->xRead(f, a, n, off);
	ref_rc = ref->pMethods->xRead(ref, b, n, off);
	ck_assert_msg(rc == ref_rc && memcmp(a, b, (size_t)n) == 0,
		      "read %d at %lld: rc %d, plain %d", n, (long long)off, rc,
		      ref_rc);
}

/* Random writes (markers among them), reads and truncations of a
 * temporary file, of any size and offset (gaps included), against a plain
 * temporary file of the unix VFS given the same calls: the same bytes and
 * codes back, zeros past the end and in gaps included. */
static void random_io(sqlite3_file *f, unsigned seed)
{
	sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
	sqlite3_file *ref = calloc(1, (size_t)unix_vfs->szOsFile);
	static uint8_t buf[128 * 1024];
	sqlite3_int64 off, n, size, ref_size;
	void *map = &map;
	int round, out;

	ck_assert_int_eq(
	    unix_vfs->xOpen(unix_vfs, NULL, ref,
			    SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_READWRITE |
				SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE |
				SQLITE_OPEN_DELETEONCLOSE,
			    &out),
	    SQLITE_OK);
	for (round = 0; round < 1000; round++) {
		off = next(&seed) % FN;
		/* Mostly small, sometimes over the 64 KiB piece size (the
		 * unix VFS takes less than 128 KiB at once). */
		n = round % 5 == 0 ? next(&seed) % 120000 : next(&seed) % 9000;
		if (round % 41 == 40) {
			ck_assert_int_eq(f->pMethods->xTruncate(f, off),
					 SQLITE_OK);
			ck_assert_int_eq(ref->pMethods->xTruncate(ref, off),
					 SQLITE_OK);
		} else if (round % 2 == 0) {
			fill(buf, (size_t)n, seed);
			if (n >= 40)
				memcpy(buf + n / 2, MARKER, strlen(MARKER));
			ck_assert_int_eq(
			    f->pMethods->xWrite(f, buf, (int)n, off),
			    SQLITE_OK);
			ck_assert_int_eq(
			    ref->pMethods->xWrite(ref, buf, (int)n, off),
			    SQLITE_OK);
		} else {
			compare_read(f, ref, (int)n, off);
		}
	}
	ck_assert_int_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
	ck_assert_int_eq(ref->pMethods->xFileSize(ref, &ref_size), SQLITE_OK);
	ck_assert_int_eq(size, ref_size);
	ck_assert_int_gt(size, 0);
	/* All of it, and past the end. */
	for (off = 0; off < size + 100000; off += 65536)
		compare_read(f, ref, 65536, off);
	/* No mapping when encrypted (the root would map ciphertext); the
	 * call works either way. */
	ck_assert_int_eq(f->pMethods->xFetch(f, 0, 4096, &map), SQLITE_OK);
	if (map != NULL)
		f->pMethods->xUnfetch(f, 0, map);
	ref->pMethods->xClose(ref);
	free(ref);
}

START_TEST(test_temp_file_round_trip)
{
	struct temp_spy_stats s;
	char *named = fixture_path(dir, "named-temp");
	sqlite3_file *f;
	void *map = &map;

	add_db("enc.db");
	/* SQLite's way (no name), then a named file deleted on close. */
	f = temp_open(NULL);
	random_io(f, 11);
	ck_assert_int_eq(f->pMethods->xFetch(f, 0, 4096, &map), SQLITE_OK);
	ck_assert_ptr_null(map);
	temp_close(f);
	f = temp_open(named);
	random_io(f, 12);
	temp_close(f);
	temp_spy_get(&s);
	ck_assert_int_eq(s.opens, 2);
	ck_assert_int_gt(s.bytes[TEMP_SPY_TEMP_JOURNAL], 1 << 20);
	ck_assert_int_eq(temp_spy_total_holding(&s), 0);
	ck_assert_int_eq(s.mapped, 0);
	free(named);
}
END_TEST

/* The control: no database encrypted, the same writes reach the root in
 * clear (so the spy would catch a marker). */
START_TEST(test_temp_file_plain_without_encrypted_db)
{
	struct temp_spy_stats s;
	sqlite3_file *f;

	f = temp_open(NULL);
	random_io(f, 11);
	temp_close(f);
	temp_spy_get(&s);
	ck_assert_int_eq(s.opens, 1);
	ck_assert_int_gt(s.bytes[TEMP_SPY_TEMP_JOURNAL], 0);
	ck_assert_int_eq(s.holding[TEMP_SPY_TEMP_JOURNAL], 1);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* SQLite's own temporary files */

static sqlite3 *open_db(const char *name)
{
	char *path = fixture_path(dir, name);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(
	    path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);

	ck_assert_msg(rc == SQLITE_OK, "open %s: %s", path,
		      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	free(path);
	return db;
}

/* Temporary files on disk, and small caches so that they spill. */
static void spill_settings(sqlite3 *db)
{
	fixture_exec(db, "PRAGMA temp_store=FILE;" /* first: it resets temp */
			 "PRAGMA cache_size=10;"
			 "PRAGMA temp.cache_size=10;");
}

static void create_rows(sqlite3 *db)
{
	fixture_exec(db,
		     "PRAGMA journal_mode=WAL;"
		     "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
		     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
		     "FROM n WHERE i < 20000) INSERT INTO t SELECT i, "
		     "printf('" MARKER "-%06d-%s', i, hex(randomblob(100))) "
		     "FROM n;"
		     "CREATE TABLE u(id INTEGER PRIMARY KEY, k INTEGER UNIQUE, "
		     "v TEXT);"
		     "INSERT INTO u SELECT id, id, v FROM t WHERE id <= 4000;");
}

/* The spy's counts after running step (a function of the connection),
 * from zero. */
typedef void (*step_fn)(sqlite3 *db);

static void step_counts(sqlite3 *db, step_fn fn, struct temp_spy_stats *s)
{
	temp_spy_reset();
	fn(db);
	temp_spy_get(s);
}

/* A sort no index serves (by the random hex after the marker), over ~4.6
 * MB: the sorter spills (its memory is 250 pages with a small cache).  The
 * order and the count come out right. */
static void sort_rows(sqlite3 *db)
{
	sqlite3_stmt *st;
	char prev[256] = "";
	int n = 0, rc;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT v FROM t "
					    "ORDER BY substr(v, 17)",
					    -1, &st, NULL),
			 SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0) + 16;
		ck_assert_uint_eq(strlen(k), 200);
		ck_assert_msg(strcmp(prev, k) <= 0, "out of order at row %d",
			      n);
		snprintf(prev, sizeof prev, "%s", k);
		n++;
	}
	ck_assert_msg(rc == SQLITE_DONE, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	ck_assert_int_eq(n, ROWS);
}

/* The same with the sorter allowed to map its files (the only temporary
 * files SQLite maps; a test control sets the limit, 0 by default). */
static void sort_rows_mmap(sqlite3 *db)
{
	sqlite3_test_control(SQLITE_TESTCTRL_SORTER_MMAP, db, 256 << 20);
	sort_rows(db);
	sqlite3_test_control(SQLITE_TESTCTRL_SORTER_MMAP, db, 0);
}

static void temp_table(sqlite3 *db)
{
	fixture_exec(db, "CREATE TEMP TABLE tt AS SELECT * FROM t");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM tt JOIN t "
					       "USING (id) WHERE tt.v = t.v"),
			 ROWS);
	fixture_exec(db, "DROP TABLE tt");
}

static void vacuum(sqlite3 *db)
{
	fixture_exec(db, "VACUUM");
	fixture_assert_integrity(db);
}

/* A multi-row UPDATE in a transaction that fails at its last row: SQLite
 * undoes it from the statement journal (spilled past 64 KiB). */
static void statement_journal(sqlite3 *db)
{
	int rc;

	fixture_exec(db, "BEGIN; INSERT INTO u(k, v) VALUES (-1, 'x')");
	rc = sqlite3_exec(db,
			  "UPDATE u SET v = v || '-new', k = CASE WHEN id = "
			  "4000 THEN 1 ELSE k END",
			  NULL, NULL, NULL);
	ck_assert_int_eq(rc, SQLITE_CONSTRAINT);
	fixture_exec(db, "COMMIT");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM u WHERE v "
					       "LIKE '%-new'"),
			 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM u"), 4001);
}

/* DISTINCT over the rows: an ephemeral index (a transient database). */
static void distinct(sqlite3 *db)
{
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM (SELECT DISTINCT v "
				  "FROM t)"),
	    ROWS);
}

static const struct {
	const char *what;
	step_fn fn;
	enum temp_spy_type type; /* the files it must write */
} steps[] = {
    {"sort", sort_rows, TEMP_SPY_TEMP_JOURNAL},
    {"sort (mmap)", sort_rows_mmap, TEMP_SPY_TEMP_JOURNAL},
    {"temp table", temp_table, TEMP_SPY_TEMP_DB},
    {"vacuum", vacuum, TEMP_SPY_TEMP_DB},
    {"statement journal", statement_journal, TEMP_SPY_SUBJOURNAL},
    {"distinct", distinct, TEMP_SPY_TRANSIENT_DB},
};

/* Run every step on db; each must write files of its type (else the step
 * proves nothing); encrypted: none holds the marker, else each does. */
static void run_steps(sqlite3 *db, int encrypted)
{
	struct temp_spy_stats s;
	size_t i;

	for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		step_counts(db, steps[i].fn, &s);
		printf("cipher_temp: %s %s: %lld temp bytes (%lld of the "
		       "type), %lld file(s) with the marker, %lld mapped\n",
		       encrypted ? "encrypted" : "plain", steps[i].what,
		       (long long)temp_spy_total_bytes(&s),
		       (long long)s.bytes[steps[i].type],
		       (long long)temp_spy_total_holding(&s),
		       (long long)s.mapped);
		ck_assert_msg(s.bytes[steps[i].type] > 0,
			      "%s wrote no temporary file of its type",
			      steps[i].what);
		/* wal/cipher_vfs_temp.h's test: every temporary file
		 * SQLite opens has no name and is deleted on close. */
		ck_assert_int_eq(s.named_or_kept, 0);
		if (encrypted) {
			ck_assert_msg(temp_spy_total_holding(&s) == 0,
				      "%s: a marker in clear", steps[i].what);
			ck_assert_int_eq(s.mapped, 0);
		} else {
			ck_assert_msg(s.holding[steps[i].type] > 0,
				      "%s: the marker not found in clear",
				      steps[i].what);
		}
	}
}

START_TEST(test_sqlite_temp_files_encrypted)
{
	sqlite3 *db;

	add_db("enc.db");
	db = open_db("enc.db");
	create_rows(db);
	spill_settings(db);
	run_steps(db, 1);
	sqlite3_close(db);
}
END_TEST

/* The control: the same workload, no database encrypted in the process:
 * every step leaves its markers in clear where the spy looks, and the
 * sorter maps its files when allowed (so refusing to map matters). */
START_TEST(test_sqlite_temp_files_plain_control)
{
	struct temp_spy_stats s;
	sqlite3 *db;

	db = open_db("plain.db");
	create_rows(db);
	spill_settings(db);
	run_steps(db, 0);
	step_counts(db, sort_rows_mmap, &s);
	ck_assert_int_gt(s.mapped, 0);
	sqlite3_close(db);
}
END_TEST

/* A process with an encrypted database encrypts the temporary files of
 * its other connections too (a temporary file names no database); once
 * the last is removed, they are plain again. */
START_TEST(test_any_encrypted_db_turns_it_on)
{
	struct temp_spy_stats s;
	char *path = fixture_path(dir, "enc.db");
	sqlite3 *db;

	add_db("enc.db");
	db = open_db("other.db");
	create_rows(db);
	spill_settings(db);
	step_counts(db, sort_rows, &s);
	ck_assert_int_gt(s.bytes[TEMP_SPY_TEMP_JOURNAL], 0);
	ck_assert_int_eq(temp_spy_total_holding(&s), 0);
	ck_assert_int_eq(cipher_vfs_remove(vfs, path), 0);
	step_counts(db, sort_rows, &s);
	ck_assert_int_gt(s.holding[TEMP_SPY_TEMP_JOURNAL], 0);
	sqlite3_close(db);
	free(path);
}
END_TEST

static Suite *cipher_temp_suite(void)
{
	Suite *s = suite_create("cipher_temp");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_xor_any_range);
	tcase_add_test(tc, test_temp_file_round_trip);
	tcase_add_test(tc, test_temp_file_plain_without_encrypted_db);
	tcase_add_test(tc, test_sqlite_temp_files_encrypted);
	tcase_add_test(tc, test_sqlite_temp_files_plain_control);
	tcase_add_test(tc, test_any_encrypted_db_turns_it_on);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(cipher_temp_suite());
}
