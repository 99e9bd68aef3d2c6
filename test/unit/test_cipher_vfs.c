/* The cipher VFS (wal/cipher_vfs.h) under real SQLite connections: what
 * reaches the database file and its WAL, what SQLite without the key sees,
 * and the file layout handle by handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "wal/cipher_vfs.h"
#include "wal/walfmt.h"

#define VFS_NAME "cipher-test"
#define PASSPHRASE "a passphrase nobody guesses"

static sqlite3_vfs *vfs;
static char *dir;

static void setup(void)
{
	ck_assert_int_eq(cipher_vfs_register(VFS_NAME, NULL, &vfs), SQLITE_OK);
	dir = fixture_tmpdir();
}

static void teardown(void)
{
	cipher_vfs_unregister(vfs);
	vfs = NULL;
	fixture_rmdir(dir);
	dir = NULL;
}

static struct cipher *make(const char *text, const uint8_t *salt)
{
	struct cipher_key k;
	struct cipher *c = NULL;
	char err[256] = "";

	ck_assert_msg(cipher_key_parse(text, &k, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(cipher_new(&k, salt, &c, err, sizeof err) == 0, "%s",
		      err);
	cipher_key_wipe(&k);
	return c;
}

static void add(const char *path, const struct cipher *c, uint32_t ps)
{
	char err[256] = "";

	ck_assert_msg(cipher_vfs_add(vfs, path, c, ps, err, sizeof err) == 0,
		      "%s", err);
}

/* A file's bytes (malloc'd; NULL with *n = 0 when it does not exist). */
static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long size;

	*n = 0;
	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	*n = (size_t)size;
	return buf;
}

static int contains(const uint8_t *buf, size_t n, const char *s)
{
	return buf != NULL && memmem(buf, n, s, strlen(s)) != NULL;
}

static int file_contains(const char *path, const char *s)
{
	size_t n;
	uint8_t *buf = slurp(path, &n);
	int found = contains(buf, n, s);

	free(buf);
	return found;
}

static sqlite3 *open_db(const char *path, int flags, const char *vfs_name)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, vfs_name);

	ck_assert_msg(rc == SQLITE_OK, "open %s: %s", path,
		      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	return db;
}

/* Markers in every row, over ~200 pages and an index: checkpointed into
 * the database file, then more left in the WAL (which restarts over the
 * frames of the first batch), rows of both batches rewritten. */
static void workload(sqlite3 *db)
{
	fixture_exec(db,
		     "PRAGMA journal_mode=WAL;"
		     "PRAGMA wal_autocheckpoint=0;"
		     "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
		     "CREATE INDEX t_v ON t(v);"
		     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
		     "SELECT i + 1 FROM n WHERE i < 3000) "
		     "INSERT INTO t SELECT i, printf('SECRET-MARKER-%06d-%s',"
		     " i, hex(zeroblob(100))) FROM n;");
	ck_assert_int_eq(fixture_query_int(db, "PRAGMA wal_checkpoint"), 0);
	fixture_exec(db,
		     "WITH RECURSIVE n(i) AS (SELECT 3001 UNION ALL "
		     "SELECT i + 1 FROM n WHERE i < 3500) "
		     "INSERT INTO t SELECT i, printf('LATE-MARKER-%06d', i) "
		     "FROM n;"
		     "UPDATE t SET v = v || '-UPDATED-MARKER' "
		     "WHERE id % 100 = 0;");
}

/* What workload wrote reads back. */
static void check_rows(sqlite3 *db)
{
	fixture_assert_integrity(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3500);
	ck_assert_int_eq(
	    fixture_query_int(
		db, "SELECT count(*) FROM t WHERE v = printf("
		    "'SECRET-MARKER-%06d-%s', id, hex(zeroblob(100))) "
		    "|| CASE WHEN id % 100 = 0 THEN '-UPDATED-MARKER' ELSE '' "
		    "END"),
	    3000);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM t WHERE id > 3000 AND "
				  "v LIKE printf('LATE-MARKER-%06d%%', id)"),
	    500);
}

/* The control: the same workload without the shim leaves its markers in
 * the database file and in the WAL, where the encrypted case looks. */
START_TEST(test_plain_files_hold_markers)
{
	char *path = fixture_path(dir, "plain.db");
	char *wal = fixture_path(dir, "plain.db-wal");
	sqlite3 *db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	workload(db);
	ck_assert(file_contains(path, "SECRET-MARKER"));
	ck_assert(file_contains(wal, "LATE-MARKER"));
	ck_assert(file_contains(wal, "UPDATED-MARKER"));
	sqlite3_close(db);
	ck_assert(file_contains(path, "LATE-MARKER"));
	free(path);
	free(wal);
}
END_TEST

/* A file registered for another path, or a file beside it, is not
 * encrypted: the shim changes only what it is told to. */
START_TEST(test_other_files_pass_through)
{
	char *enc = fixture_path(dir, "enc.db");
	char *path = fixture_path(dir, "other.db");
	uint8_t salt[CIPHER_SALT_SIZE] = {0};
	struct cipher *c = make(PASSPHRASE, salt);
	sqlite3 *db;

	add(enc, c, 4096);
	db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);
	workload(db);
	check_rows(db);
	sqlite3_close(db);
	ck_assert(file_contains(path, "LATE-MARKER"));
	cipher_free(c);
	free(enc);
	free(path);
}
END_TEST

static void assert_notadb(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema",
				    -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	ck_assert_msg(rc == SQLITE_NOTADB, "rc %d: %s", rc, sqlite3_errmsg(db));
	ck_assert_str_eq(sqlite3_errmsg(db), "file is not a database");
}

static void assert_same(const char *path, const uint8_t *before, size_t n)
{
	size_t now_n;
	uint8_t *now = slurp(path, &now_n);

	ck_assert_uint_eq(now_n, n);
	ck_assert(n == 0 || memcmp(now, before, n) == 0);
	free(now);
}

START_TEST(test_encrypted_files)
{
	char *path = fixture_path(dir, "enc.db");
	char *wal = fixture_path(dir, "enc.db-wal");
	uint8_t salt[CIPHER_SALT_SIZE], stored_check[CIPHER_CHECK_SIZE];
	struct cipher *c, *again, *wrong;
	uint8_t *db_bytes, *wal_bytes;
	size_t db_n, wal_n;
	sqlite3 *db, *reader, *plain;

	/* Creating: a salt and the check value, which the caller stores
	 * (step 2: the replica's state file). */
	ck_assert_int_eq(cipher_salt_new(salt, NULL, 0), 0);
	c = make(PASSPHRASE, salt);
	cipher_check_value(c, stored_check);
	add(path, c, 4096);
	cipher_free(c);

	db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);
	workload(db);
	/* A second connection, with handles and a cipher of its own. */
	reader = open_db(path, SQLITE_OPEN_READONLY, VFS_NAME);
	check_rows(reader);

	/* The WAL still holds frames: neither file holds a marker. */
	db_bytes = slurp(path, &db_n);
	wal_bytes = slurp(wal, &wal_n);
	ck_assert_uint_gt(db_n, 100 * 4096);
	ck_assert_uint_gt(wal_n, WALFMT_HDR_SIZE + 10 * WALFMT_FRAME_SIZE);
	ck_assert(!contains(db_bytes, db_n, "MARKER"));
	ck_assert(!contains(wal_bytes, wal_n, "MARKER"));
	ck_assert(!contains(db_bytes, db_n, "SQLite format 3"));
	/* What stays in clear: the WAL header and the frame headers. */
	{
		struct walfmt_header h;
		ck_assert_int_eq(walfmt_header_decode(wal_bytes, &h), 0);
		ck_assert_uint_eq(h.page_size, 4096);
		ck_assert_int_eq(
		    memcmp(wal_bytes + WALFMT_HDR_SIZE + 8, wal_bytes + 16, 8),
		    0); /* frame 1's salts are the header's */
		ck_assert_uint_ge(walfmt_get32(wal_bytes + WALFMT_HDR_SIZE), 1);
	}

	/* SQLite without the key, the WAL present: not a database, and
	 * (read-only) nothing changed. */
	plain = open_db(path, SQLITE_OPEN_READONLY, NULL);
	assert_notadb(plain);
	sqlite3_close(plain);
	assert_same(path, db_bytes, db_n);
	assert_same(wal, wal_bytes, wal_n);
	free(db_bytes);
	free(wal_bytes);

	/* The last close checkpoints through the shim and drops the WAL. */
	sqlite3_close(reader);
	sqlite3_close(db);
	ck_assert(!file_contains(path, "MARKER"));
	db_bytes = slurp(path, &db_n);
	wal_bytes = slurp(wal, &wal_n);
	ck_assert_uint_eq(wal_n, 0);

	/* Read-write too: not a database, and the file unchanged. */
	plain = open_db(path, SQLITE_OPEN_READWRITE, NULL);
	assert_notadb(plain);
	sqlite3_close(plain);
	assert_same(path, db_bytes, db_n);

	/* Reopening: the key and the stored salt give the stored check
	 * value, then the shim reads everything back. */
	ck_assert_int_eq(cipher_vfs_remove(vfs, path), 0);
	again = make(PASSPHRASE, salt);
	ck_assert(cipher_check_matches(again, stored_check));
	add(path, again, 4096);
	cipher_free(again);
	db = open_db(path, SQLITE_OPEN_READWRITE, VFS_NAME);
	check_rows(db);
	sqlite3_close(db);
	assert_same(path, db_bytes, db_n);

	/* A wrong key: the check value differs, so the open is refused
	 * before any file is opened. */
	wrong = make("not " PASSPHRASE, salt);
	ck_assert(!cipher_check_matches(wrong, stored_check));
	/* Had the caller skipped the check: SQLite finds no database (not
	 * noise), and a read-only open changes nothing. */
	ck_assert_int_eq(cipher_vfs_remove(vfs, path), 0);
	add(path, wrong, 4096);
	cipher_free(wrong);
	plain = open_db(path, SQLITE_OPEN_READONLY, VFS_NAME);
	assert_notadb(plain);
	sqlite3_close(plain);
	assert_same(path, db_bytes, db_n);
	assert_same(wal, NULL, 0);
	free(db_bytes);
	free(wal_bytes);
	free(path);
	free(wal);
}
END_TEST

static void write_file(const char *path, const uint8_t *buf, size_t n)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(buf, 1, n, fp), n);
	fclose(fp);
}

/* A crash leaves the WAL with frames: the shim recovers them.  SQLite
 * without the key, opened read-write on those files, finds no valid frame
 * (their checksums are over the plaintext), says "not a database" and, as
 * the last connection, deletes the WAL on close: the frames not
 * checkpointed are lost (with another connection open, it cannot).  Nothing in
 * the shim can prevent it (that SQLite never calls the shim); this documents
 * what step 2 must live with. */
START_TEST(test_crash_wal_and_stock_sqlite)
{
	char *path = fixture_path(dir, "enc.db");
	char *wal = fixture_path(dir, "enc.db-wal");
	uint8_t salt[CIPHER_SALT_SIZE] = {9};
	struct cipher *c = make(PASSPHRASE, salt);
	uint8_t *db_bytes, *wal_bytes, *now;
	size_t db_n, wal_n, now_n;
	sqlite3 *db, *plain;

	add(path, c, 4096);
	cipher_free(c);
	db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);
	workload(db);
	db_bytes = slurp(path, &db_n);
	wal_bytes = slurp(wal, &wal_n);
	sqlite3_close(db);

	/* The files as kill -9 would leave them: recovered through the
	 * shim (SQLite verifies each frame's checksum on the plaintext). */
	write_file(path, db_bytes, db_n);
	write_file(wal, wal_bytes, wal_n);
	db = open_db(path, SQLITE_OPEN_READWRITE, VFS_NAME);
	check_rows(db);
	/* While a connection through the shim is open (its shared lock on
	 * the database file), SQLite without the key leaves the WAL. */
	plain = open_db(path, SQLITE_OPEN_READWRITE, NULL);
	assert_notadb(plain);
	sqlite3_close(plain);
	assert_same(wal, wal_bytes, wal_n);
	sqlite3_close(db);

	write_file(path, db_bytes, db_n);
	write_file(wal, wal_bytes, wal_n);
	db = open_db(path, SQLITE_OPEN_READWRITE, NULL);
	assert_notadb(db);
	sqlite3_close(db);
	now = slurp(wal, &now_n);
	ck_assert_uint_eq(now_n, 0);
	free(now);
	db = open_db(path, SQLITE_OPEN_READWRITE, VFS_NAME);
	fixture_assert_integrity(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3000);
	sqlite3_close(db);
	free(db_bytes);
	free(wal_bytes);
	free(path);
	free(wal);
}
END_TEST

/* A handle opened directly through the VFS, as the replica's own code
 * does: the full path SQLite would give, kept until the close. */
struct raw {
	sqlite3_file *f;
	char *name;
};

static struct raw raw_open(const char *path, int flags)
{
	struct raw r;
	int out = 0;

	r.f = calloc(1, (size_t)vfs->szOsFile);
	r.name = calloc(1, (size_t)vfs->mxPathname + 1);
	ck_assert_int_eq(
	    vfs->xFullPathname(vfs, path, vfs->mxPathname + 1, r.name),
	    SQLITE_OK);
	ck_assert_int_eq(
	    vfs->xOpen(vfs, r.name, r.f,
		       flags | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
		       &out),
	    SQLITE_OK);
	return r;
}

static void raw_close(struct raw *r)
{
	r->f->pMethods->xClose(r->f);
	free(r->f);
	free(r->name);
}

static void raw_write(struct raw *r, uint8_t *model, const void *buf, int amt,
		      sqlite3_int64 off)
{
	ck_assert_int_eq(r->f->pMethods->xWrite(r->f, buf, amt, off),
			 SQLITE_OK);
	memmove(model + off, buf, (size_t)amt);
}

static void check_read(struct raw *r, const uint8_t *model, int amt,
		       sqlite3_int64 off)
{
	uint8_t *buf = malloc((size_t)amt);

	memset(buf, 0xaa, (size_t)amt);
	ck_assert_int_eq(r->f->pMethods->xRead(r->f, buf, amt, off), SQLITE_OK);
	ck_assert_msg(memcmp(buf, model + off, (size_t)amt) == 0,
		      "read of %d at %lld", amt, (long long)off);
	free(buf);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* No 16-byte block of plain appears at the same place in disk. */
static void assert_scrambled(const uint8_t *disk, const uint8_t *plain,
			     size_t n)
{
	size_t i;

	for (i = 0; i + 16 <= n; i += 16)
		ck_assert_msg(memcmp(disk + i, plain + i, 16) != 0,
			      "block at %zu in clear", i);
}

#define PS 1024

/* The database file, handle level: whole and partial reads and writes,
 * short reads, torn pages. */
START_TEST(test_db_layout)
{
	char *path = fixture_path(dir, "raw.db");
	uint8_t salt[CIPHER_SALT_SIZE] = {3};
	struct cipher *c = make("x'"
				"00112233445566778899aabbccddeeff"
				"00112233445566778899aabbccddeeff"
				"'",
				salt);
	static uint8_t model[6 * PS], before[6 * PS], buf[2 * PS];
	uint8_t *disk;
	size_t n;
	struct raw r;

	add(path, c, PS);
	cipher_free(c);
	r = raw_open(path, SQLITE_OPEN_MAIN_DB);
	fill(buf, sizeof buf, 1);
	raw_write(&r, model, buf, 2 * PS, 0);
	fill(buf, PS, 2);
	raw_write(&r, model, buf, PS, 2 * PS);
	disk = slurp(path, &n);
	ck_assert_uint_eq(n, 3 * PS);
	assert_scrambled(disk, model, n);
	memcpy(before, disk, n);
	free(disk);

	check_read(&r, model, 3 * PS, 0);
	check_read(&r, model, 100, 0); /* SQLite's header read */
	check_read(&r, model, 200, PS - 100);
	check_read(&r, model, 2 * PS + 5, 17);
	check_read(&r, model, 24, 2 * PS + 1000);

	/* Part of page 2: only page 2 changes on disk. */
	raw_write(&r, model, "PATCHED!", 8, PS + 50);
	disk = slurp(path, &n);
	ck_assert_int_eq(memcmp(disk, before, PS), 0);
	ck_assert_int_ne(memcmp(disk + PS, before + PS, PS), 0);
	ck_assert_int_eq(memcmp(disk + 2 * PS, before + 2 * PS, PS), 0);
	ck_assert(!contains(disk, n, "PATCHED"));
	free(disk);
	/* The end of page 1 and the start of page 2 in one write. */
	fill(buf, 100, 3);
	raw_write(&r, model, buf, 100, PS - 50);
	check_read(&r, model, 3 * PS, 0);

	/* Past the end: zeros, and SQLite's short-read code. */
	memset(buf, 0xaa, sizeof buf);
	ck_assert_int_eq(r.f->pMethods->xRead(r.f, buf, 2 * PS, 2 * PS),
			 SQLITE_IOERR_SHORT_READ);
	ck_assert_int_eq(memcmp(buf, model + 2 * PS, 2 * PS), 0);
	/* A write of part of a page past the end: the rest reads as
	 * zeros. */
	raw_write(&r, model, "TAIL", 4, 3 * PS + 8);
	check_read(&r, model, 4 * PS, 0);
	/* A torn last page (a crash in its write) reads as missing. */
	ck_assert_int_eq(r.f->pMethods->xTruncate(r.f, 4 * PS - 10), SQLITE_OK);
	memset(buf, 0xaa, sizeof buf);
	ck_assert_int_eq(r.f->pMethods->xRead(r.f, buf, PS, 3 * PS),
			 SQLITE_IOERR_SHORT_READ);
	memset(model + 3 * PS, 0, PS);
	ck_assert_int_eq(memcmp(buf, model + 3 * PS, PS), 0);
	check_read(&r, model, 100, 0);
	raw_close(&r);
	free(path);
}
END_TEST

/* The WAL, handle level: the WAL header and frame headers in clear, the
 * pages not, whatever the split of reads and writes. */
START_TEST(test_wal_layout)
{
	char *path = fixture_path(dir, "w.db");
	char *wal = fixture_path(dir, "w.db-wal");
	uint8_t salt[CIPHER_SALT_SIZE] = {4};
	struct cipher *c = make(PASSPHRASE, salt);
	enum { frame = WALFMT_FRAME_HDR_SIZE + PS };
	static uint8_t model[WALFMT_HDR_SIZE + 3 * frame];
	uint8_t hdr[WALFMT_HDR_SIZE], *disk;
	struct walfmt_header h = {WALFMT_MAGIC_LE, PS, 0, {7, 8}, {0, 0}};
	sqlite3_int64 f1 = WALFMT_HDR_SIZE, f2 = f1 + frame, f3 = f2 + frame;
	struct raw db, w;
	size_t n;
	int k;

	add(path, c, PS);
	cipher_free(c);
	db = raw_open(path, SQLITE_OPEN_MAIN_DB);
	w = raw_open(wal, SQLITE_OPEN_WAL);
	walfmt_header_encode(&h, model);
	for (k = 0; k < 3; k++) {
		uint8_t *fr = model + WALFMT_HDR_SIZE + k * frame;
		fill(fr, WALFMT_FRAME_HDR_SIZE, 10 + (unsigned)k);
		fill(fr + WALFMT_FRAME_HDR_SIZE, PS, 20 + (unsigned)k);
	}
	/* As SQLite writes: the header, then each frame's header and page
	 * apart; then a frame in one write; then a header with half a page,
	 * and the other half. */
	raw_write(&w, model, model, WALFMT_HDR_SIZE, 0);
	raw_write(&w, model, model + f1, WALFMT_FRAME_HDR_SIZE, f1);
	raw_write(&w, model, model + f1 + 24, PS, f1 + 24);
	raw_write(&w, model, model + f2, frame, f2);
	raw_write(&w, model, model + f3, 24 + PS / 2, f3);
	raw_write(&w, model, model + f3 + 24 + PS / 2, PS / 2,
		  f3 + 24 + PS / 2);

	disk = slurp(wal, &n);
	ck_assert_uint_eq(n, sizeof model);
	ck_assert_int_eq(memcmp(disk, model, WALFMT_HDR_SIZE), 0);
	for (k = 0; k < 3; k++) {
		size_t fo = WALFMT_HDR_SIZE + (size_t)k * frame;
		ck_assert_int_eq(
		    memcmp(disk + fo, model + fo, WALFMT_FRAME_HDR_SIZE), 0);
		assert_scrambled(disk + fo + 24, model + fo + 24, PS);
	}
	free(disk);

	check_read(&w, model, (int)sizeof model, 0);
	check_read(&w, model, WALFMT_HDR_SIZE, 0);        /* recovery */
	check_read(&w, model, frame, f1);                 /* a frame */
	check_read(&w, model, PS, f2 + 24);               /* a page */
	check_read(&w, model, WALFMT_FRAME_HDR_SIZE, f3); /* a header */
	check_read(&w, model, 34, f2 - 10);               /* page|header */
	check_read(&w, model, 30, f3 + 24 + 500);         /* mid-page */
	check_read(&w, model, 2 * frame + 8, f1 - 4);

	/* A WAL of another page size would be cut wrong: refused. */
	h.page_size = 4096;
	walfmt_header_encode(&h, hdr);
	ck_assert_int_eq(w.f->pMethods->xWrite(w.f, hdr, sizeof hdr, 0),
			 SQLITE_IOERR_WRITE);
	check_read(&w, model, WALFMT_HDR_SIZE, 0);
	raw_close(&w);
	raw_close(&db);
	free(path);
	free(wal);
}
END_TEST

/* SQLite about to write a database of another page size than the one
 * registered: refused before anything reaches the file. */
START_TEST(test_page_size_refused)
{
	char *path = fixture_path(dir, "ps.db");
	uint8_t salt[CIPHER_SALT_SIZE] = {5};
	struct cipher *c = make(PASSPHRASE, salt);
	sqlite3 *db;
	size_t n;
	uint8_t *disk;
	int rc;

	add(path, c, 4096);
	cipher_free(c);
	db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);
	rc = sqlite3_exec(db, "PRAGMA page_size=1024; CREATE TABLE t(x)", NULL,
			  NULL, NULL);
	ck_assert_int_eq(rc & 0xff, SQLITE_IOERR);
	sqlite3_close(db);
	disk = slurp(path, &n);
	ck_assert_uint_eq(n, 0);
	free(disk);
	/* The page size registered works. */
	db = open_db(path, SQLITE_OPEN_READWRITE, VFS_NAME);
	fixture_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x);"
			 "INSERT INTO t VALUES ('SECRET-MARKER')");
	fixture_assert_integrity(db);
	sqlite3_close(db);
	ck_assert(!file_contains(path, "SECRET-MARKER"));
	free(path);
}
END_TEST

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

#define BENCH_ROWS 20000
#define BENCH_READS 20000

static sqlite3 *bench_db(const char *path, const char *vfs_name)
{
	sqlite3 *db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs_name);

	fixture_exec(db, "PRAGMA journal_mode=WAL;"
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 20000) "
			 "INSERT INTO t SELECT i, randomblob(400) FROM n;"
			 "PRAGMA wal_checkpoint(TRUNCATE);");
	sqlite3_close(db);
	db = open_db(path, SQLITE_OPEN_READWRITE, vfs_name);
	/* 64 KiB of cache for ~9 MB: nearly every read misses it. */
	fixture_exec(db, "PRAGMA cache_size=-64");
	return db;
}

/* ns per point read of a random row. */
static double bench_reads(sqlite3 *db)
{
	sqlite3_stmt *st;
	unsigned seed = 42;
	int64_t sum = 0;
	double t0;
	int i;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT length(v) FROM t "
					    "WHERE id = ?",
					    -1, &st, NULL),
			 SQLITE_OK);
	t0 = now_ns();
	for (i = 0; i < BENCH_READS; i++) {
		seed = seed * 1103515245u + 12345u;
		sqlite3_bind_int(st, 1, (int)(seed >> 8) % BENCH_ROWS + 1);
		if (sqlite3_step(st) == SQLITE_ROW)
			sum += sqlite3_column_int(st, 0);
		sqlite3_reset(st);
	}
	t0 = (now_ns() - t0) / BENCH_READS;
	sqlite3_finalize(st);
	ck_assert_int_eq(sum, (int64_t)BENCH_READS * 400);
	return t0;
}

/* A figure for the record (no assertion on time): point reads missing
 * SQLite's page cache, through the shim and without it, alternated. */
START_TEST(test_bench_point_reads)
{
	char *plain_path = fixture_path(dir, "plain.db");
	char *enc_path = fixture_path(dir, "enc.db");
	uint8_t salt[CIPHER_SALT_SIZE] = {6};
	struct cipher *c = make(PASSPHRASE, salt);
	double plain = 1e18, enc = 1e18, t;
	sqlite3 *pdb, *edb;
	int round;

	add(enc_path, c, 4096);
	cipher_free(c);
	pdb = bench_db(plain_path, NULL);
	edb = bench_db(enc_path, VFS_NAME);
	for (round = 0; round < 5; round++) {
		t = bench_reads(pdb);
		plain = t < plain ? t : plain;
		t = bench_reads(edb);
		enc = t < enc ? t : enc;
	}
	printf("cipher_vfs: point reads (64 KiB cache, 9 MB db): plain %.0f "
	       "ns, encrypted %.0f ns, %.2fx\n",
	       plain, enc, enc / plain);
	sqlite3_close(pdb);
	sqlite3_close(edb);
	free(plain_path);
	free(enc_path);
}
END_TEST

/* Users of a path: added again with the same key, one more user (the
 * replica and a reader in one process); with another key, refused; the
 * path stays encrypted until its last user removes it. */
START_TEST(test_users_of_a_path)
{
	char *path = fixture_path(dir, "users.db");
	uint8_t salt[CIPHER_SALT_SIZE] = {7},
		other_salt[CIPHER_SALT_SIZE] = {8};
	struct cipher *a = make(PASSPHRASE, salt), *b = make(PASSPHRASE, salt);
	struct cipher *other = make(PASSPHRASE, other_salt);
	char err[256] = "";
	sqlite3 *db;
	size_t n;
	uint8_t *bytes;

	add(path, a, 4096);
	add(path, b, 4096); /* the same key and salt */
	ck_assert_int_ne(
	    cipher_vfs_add(vfs, path, other, 4096, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "already encrypted"));
	ck_assert_int_ne(cipher_vfs_add(vfs, path, a, 1024, err, sizeof err),
			 0);
	ck_assert_int_eq(cipher_vfs_remove(vfs, path), 0);
	/* One user left: still encrypted. */
	db =
	    open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, VFS_NAME);
	fixture_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(v);"
			 "INSERT INTO t VALUES ('USERSMARKER')");
	sqlite3_close(db);
	bytes = slurp(path, &n);
	ck_assert(n > 0 && !contains(bytes, n, "USERSMARKER"));
	free(bytes);
	ck_assert_int_eq(cipher_vfs_remove(vfs, path), 0);
	ck_assert_int_ne(cipher_vfs_remove(vfs, path), 0); /* none left */
	cipher_free(a);
	cipher_free(b);
	cipher_free(other);
	free(path);
}
END_TEST

static Suite *cipher_vfs_suite(void)
{
	Suite *s = suite_create("cipher_vfs");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_plain_files_hold_markers);
	tcase_add_test(tc, test_other_files_pass_through);
	tcase_add_test(tc, test_encrypted_files);
	tcase_add_test(tc, test_crash_wal_and_stock_sqlite);
	tcase_add_test(tc, test_db_layout);
	tcase_add_test(tc, test_wal_layout);
	tcase_add_test(tc, test_page_size_refused);
	tcase_add_test(tc, test_bench_point_reads);
	tcase_add_test(tc, test_users_of_a_path);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(cipher_vfs_suite());
}
