/* The WAL injector's tests' shared helpers (inject_helpers.h): SQL, the
 * files of a connection through its own SQLite handles, the WAL and
 * wal-index checks, and a primary with its replica. */
#include "inject_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "fixture.h"
#include "wal/walfmt.h"

#define REGION_SIZE 32768
#define HASH_NPAGE 4096
#define HASH_NSLOT 8192
#define FRAME_SIZE (WALFMT_FRAME_HDR_SIZE + ijh_page_size)

/* The page size of the databases of the running test (ijh_pair_new_sized()). */
uint32_t ijh_page_size = IJH_PAGE_SIZE;

/* ---- SQL helpers ---- */

/* The (busy, log, checkpointed) row of PRAGMA wal_checkpoint. */
void ijh_checkpoint(sqlite3 *db, const char *mode, int out[3])
{
	char sql[64];
	sqlite3_stmt *stmt;
	int i;

	snprintf(sql, sizeof sql, "PRAGMA wal_checkpoint(%s)", mode);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(stmt), SQLITE_ROW);
	for (i = 0; i < 3; i++) {
		out[i] = sqlite3_column_int(stmt, i);
	}
	sqlite3_finalize(stmt);
}

void ijh_checkpoint_fully(sqlite3 *db, const char *mode)
{
	int r[3];

	ijh_checkpoint(db, mode, r);
	ck_assert_msg(r[0] == 0 && r[1] == r[2], "%s checkpoint: %d %d %d",
		      mode, r[0], r[1], r[2]);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n-- > 0) {
		h = (h ^ *b++) * 1099511628211u;
	}
	return h;
}

/* A digest of the schema and every row of the test tables. */
uint64_t ijh_content_hash(sqlite3 *db)
{
	static const char *const queries[] = {
	    "SELECT type, name, sql FROM sqlite_master ORDER BY name",
	    "SELECT id, v FROM t ORDER BY id",
	    "SELECT id, bal FROM acc ORDER BY id",
	    "SELECT rowid, x FROM loc ORDER BY rowid",
	};
	uint64_t h = 14695981039346656037u;
	sqlite3_stmt *stmt;
	size_t q;
	int i, rc;

	for (q = 0; q < sizeof queries / sizeof queries[0]; q++) {
		ck_assert_int_eq(
		    sqlite3_prepare_v2(db, queries[q], -1, &stmt, NULL),
		    SQLITE_OK);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			for (i = 0; i < sqlite3_column_count(stmt); i++) {
				uint8_t type =
				    (uint8_t)sqlite3_column_type(stmt, i);
				const void *b = sqlite3_column_blob(stmt, i);

				h = fnv(h, &type, 1);
				h = fnv(h, b,
					(size_t)sqlite3_column_bytes(stmt, i));
			}
		}
		ck_assert_int_eq(rc, SQLITE_DONE);
		sqlite3_finalize(stmt);
	}
	return h;
}

uint64_t ijh_content_hash_in_txn(sqlite3 *db)
{
	uint64_t h;

	fixture_exec(db, "BEGIN");
	h = ijh_content_hash(db);
	fixture_exec(db, "COMMIT");
	return h;
}

/* Connections get a busy timeout and never checkpoint by themselves. */
sqlite3 *ijh_open_db(const char *path)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	fixture_exec(db, "PRAGMA wal_autocheckpoint=0");
	/* A first read maps the wal-index. */
	fixture_query_int(db, "SELECT count(*) FROM sqlite_master");
	return db;
}

/* ---- Files, through the connection's own handles ---- */

/* Raw open()/close() of a database, -wal or -shm file that the process has
 * open would drop SQLite's fcntl locks, so everything goes through SQLite's
 * handles. */
sqlite3_file *ijh_file_of(sqlite3 *db, int op)
{
	sqlite3_file *f = NULL;

	ck_assert_int_eq(sqlite3_file_control(db, "main", op, &f), SQLITE_OK);
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(f->pMethods);
	return f;
}

int64_t ijh_handle_size(sqlite3_file *f)
{
	sqlite3_int64 size;

	ck_assert_int_eq(f->pMethods->xFileSize(f, &size), SQLITE_OK);
	return size;
}

static uint8_t *handle_read(sqlite3_file *f, int64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(buf);
	if (len > 0) {
		ck_assert_int_eq(f->pMethods->xRead(f, buf, (int)len, off),
				 SQLITE_OK);
	}
	return buf;
}

uint8_t *ijh_read_whole(sqlite3_file *f, size_t *len)
{
	*len = (size_t)ijh_handle_size(f);
	return handle_read(f, 0, *len);
}

uint8_t *ijh_wal_range(sqlite3 *db, int64_t off, size_t len)
{
	return handle_read(ijh_file_of(db, SQLITE_FCNTL_JOURNAL_POINTER), off,
			   len);
}

int64_t ijh_wal_size(sqlite3 *db)
{
	return ijh_handle_size(ijh_file_of(db, SQLITE_FCNTL_JOURNAL_POINTER));
}

volatile uint8_t *ijh_shm_region(sqlite3 *db, int region)
{
	sqlite3_file *f = ijh_file_of(db, SQLITE_FCNTL_FILE_POINTER);
	volatile void *p = NULL;

	ck_assert_int_eq(f->pMethods->xShmMap(f, region, REGION_SIZE, 0, &p),
			 SQLITE_OK);
	ck_assert_ptr_nonnull((void *)p);
	return p;
}

struct ijh_shm_hdr ijh_shm_header(sqlite3 *db)
{
	struct ijh_shm_hdr h;

	memcpy(&h, (const void *)ijh_shm_region(db, 0), sizeof h);
	return h;
}

uint32_t ijh_frame_block(uint32_t frame)
{
	return (frame + HASH_NPAGE - IJH_HASH_NPAGE_ONE - 1) / HASH_NPAGE;
}

void ijh_write_file(const char *path, const uint8_t *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(buf, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

/* Every frame up to the published mxFrame carries the header's salts and a
 * valid checksum chain; returns the checksum byte order of the WAL. */
int ijh_assert_wal_chain(sqlite3 *db)
{
	struct ijh_shm_hdr sh = ijh_shm_header(db);
	struct walfmt_header h;
	uint32_t chain[2], i;
	uint8_t *hdr, *frame;
	int big;

	if (sh.max_frame == 0) {
		return -1;
	}
	hdr = ijh_wal_range(db, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(walfmt_header_decode(hdr, &h), 0);
	ck_assert_int_eq(memcmp(hdr + 16, sh.salt, 8), 0);
	big = (int)(h.magic & 1);
	ck_assert_int_eq(big, sh.big_end_cksum);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	for (i = 1; i <= sh.max_frame; i++) {
		frame = ijh_wal_range(
		    db, (int64_t)walfmt_frame_offset(i, ijh_page_size),
		    FRAME_SIZE);
		ck_assert_msg(walfmt_frame_verify(big, h.salt, chain, frame,
						  ijh_page_size) == 0,
			      "frame %u fails its checksum", i);
		free(frame);
	}
	ck_assert_uint_eq(chain[0], sh.frame_cksum[0]);
	ck_assert_uint_eq(chain[1], sh.frame_cksum[1]);
	free(hdr);
	return big;
}

/* SQLite's expensive wal-index asserts: each hash block holds exactly one
 * slot per indexed frame, and every frame is reachable from its page's key. */
void ijh_assert_hash_blocks(sqlite3 *db)
{
	struct ijh_shm_hdr sh = ijh_shm_header(db);
	uint32_t block, last;

	if (sh.max_frame == 0) {
		return;
	}
	last = ijh_frame_block(sh.max_frame);
	for (block = 0; block <= last; block++) {
		volatile uint8_t *base = ijh_shm_region(db, (int)block);
		volatile uint32_t *pgno =
		    (volatile uint32_t *)(base + (block == 0 ? 136 : 0));
		volatile uint16_t *slots =
		    (volatile uint16_t *)(base + HASH_NPAGE * 4);
		uint32_t zero =
		    block == 0 ? 0
			       : IJH_HASH_NPAGE_ONE + (block - 1) * HASH_NPAGE;
		uint32_t end =
		    block == 0 ? IJH_HASH_NPAGE_ONE : zero + HASH_NPAGE;
		uint32_t n = (sh.max_frame < end ? sh.max_frame : end) - zero;
		uint32_t used = 0, j, key;

		for (j = 0; j < HASH_NSLOT; j++) {
			if (slots[j] != 0) {
				ck_assert_uint_le(slots[j], n);
				used++;
			}
		}
		ck_assert_uint_eq(used, n);
		for (j = 0; j < n; j++) {
			ck_assert_uint_ne(pgno[j], 0);
			for (key = (pgno[j] * 383) & (HASH_NSLOT - 1);
			     slots[key] != 0 && slots[key] != j + 1;
			     key = (key + 1) & (HASH_NSLOT - 1)) {
			}
			ck_assert_uint_eq(slots[key], j + 1);
		}
	}
}

/* Copy db + WAL without the -shm, as a crash would leave them, and open the
 * copy with plain SQLite: recovery rebuilds the wal-index from checksums. */
sqlite3 *ijh_crash_copy(sqlite3 *db, const char *dir, const char *name,
			bool corrupt_last_frame)
{
	char *path = fixture_path(dir, name);
	char *wal_path;
	uint8_t *buf;
	size_t len;
	sqlite3 *copy;

	ck_assert_int_ne(asprintf(&wal_path, "%s-wal", path), -1);
	unlink(path);
	unlink(wal_path);
	buf = ijh_read_whole(ijh_file_of(db, SQLITE_FCNTL_FILE_POINTER), &len);
	ijh_write_file(path, buf, len);
	free(buf);
	buf =
	    ijh_read_whole(ijh_file_of(db, SQLITE_FCNTL_JOURNAL_POINTER), &len);
	if (corrupt_last_frame) {
		uint32_t mx = ijh_shm_header(db).max_frame;

		ck_assert_uint_gt(mx, 0);
		buf[walfmt_frame_offset(mx, ijh_page_size) + 16] ^= 0x01;
	}
	ijh_write_file(wal_path, buf, len);
	free(buf);
	copy = ijh_open_db(path);
	free(wal_path);
	free(path);
	return copy;
}

void ijh_assert_crash_copy_equal(sqlite3 *db, const char *dir)
{
	sqlite3 *copy = ijh_crash_copy(db, dir, "crash.db", false);

	fixture_assert_integrity(copy);
	ck_assert_uint_eq(ijh_content_hash_in_txn(copy),
			  ijh_content_hash_in_txn(db));
	ck_assert_uint_eq(ijh_shm_header(copy).max_frame,
			  ijh_shm_header(db).max_frame);
	sqlite3_close(copy);
}

/* ---- A primary and its replica ---- */

static void copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *buf = fixture_read_file(from, &len);

	ijh_write_file(to, buf, len);
	free(buf);
}

static void make_base(const char *path)
{
	char sql[64];
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	snprintf(sql, sizeof sql, "PRAGMA page_size=%u", ijh_page_size);
	fixture_exec(db, sql);
	fixture_exec(
	    db, "PRAGMA journal_mode=WAL;"
		"CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
		"CREATE TABLE acc(id INTEGER PRIMARY KEY, bal INTEGER);"
		"CREATE TABLE loc(x);"
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
		"FROM c WHERE i < 100) INSERT INTO acc SELECT i, 1000 FROM c;"
		"INSERT INTO t(v) SELECT randomblob(500) FROM acc;");
	/* The last close checkpoints and deletes the WAL. */
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

void ijh_pair_open_replica(struct ijh_pair *pr)
{
	pr->r = ijh_open_db(pr->r_path);
	pr->r2 = ijh_open_db(pr->r_path);
}

struct ijh_pair *ijh_pair_new_sized(bool lockstep, uint32_t size)
{
	struct ijh_pair *pr = calloc(1, sizeof *pr);
	char *base;

	ck_assert_ptr_nonnull(pr);
	ijh_page_size = size;
	pr->dir = fixture_tmpdir();
	pr->p_path = fixture_path(pr->dir, "p.db");
	pr->r_path = fixture_path(pr->dir, "r.db");
	pr->lockstep = lockstep;
	base = fixture_path(pr->dir, "base.db");
	make_base(base);
	copy_file(base, pr->p_path);
	copy_file(base, pr->r_path);
	free(base);

	pr->p = ijh_open_db(pr->p_path);
	/* No spill: each commit's frames are its pages, once each. */
	fixture_exec(pr->p, "PRAGMA cache_size=-400000; PRAGMA cache_spill=0");
	pr->p2 = ijh_open_db(pr->p_path);
	ijh_pair_open_replica(pr);
	return pr;
}

struct ijh_pair *ijh_pair_new(bool lockstep)
{
	return ijh_pair_new_sized(lockstep, IJH_PAGE_SIZE);
}

void ijh_pair_free(struct ijh_pair *pr)
{
	sqlite3_close(pr->p);
	sqlite3_close(pr->p2);
	sqlite3_close(pr->r);
	sqlite3_close(pr->r2);
	free(pr->p_path);
	free(pr->r_path);
	fixture_rmdir(pr->dir);
	free(pr);
}

void ijh_batch_free(struct ijh_batch *b)
{
	free(b->pages);
	free(b->buf);
	memset(b, 0, sizeof *b);
}

/* The frames P committed since the last call, as a batch.  A changed salt
 * means P restarted its WAL: the new transactions start at frame 1. */
void ijh_pair_extract(struct ijh_pair *pr, struct ijh_batch *b)
{
	struct ijh_shm_hdr h = ijh_shm_header(pr->p);
	uint32_t i;

	memset(b, 0, sizeof *b);
	if (memcmp(h.salt, pr->p_salt, 8) != 0) {
		pr->consumed = 0;
		memcpy(pr->p_salt, h.salt, 8);
	}
	ck_assert_uint_ge(h.max_frame, pr->consumed);
	b->n = h.max_frame - pr->consumed;
	if (b->n == 0) {
		return;
	}
	b->buf = ijh_wal_range(
	    pr->p,
	    (int64_t)walfmt_frame_offset(pr->consumed + 1, ijh_page_size),
	    b->n * FRAME_SIZE);
	b->pages = calloc(b->n, sizeof *b->pages);
	ck_assert_ptr_nonnull(b->pages);
	for (i = 0; i < b->n; i++) {
		const uint8_t *f = b->buf + (size_t)i * FRAME_SIZE;

		b->pages[i].pgno = walfmt_get32(f);
		b->pages[i].data = f + WALFMT_FRAME_HDR_SIZE;
		if (walfmt_get32(f + 4) != 0) {
			b->db_size = walfmt_get32(f + 4);
		}
	}
	ck_assert_uint_ne(walfmt_get32(b->buf + (b->n - 1) * FRAME_SIZE + 4),
			  0);
	pr->consumed = h.max_frame;
}

/* The sync thread's step: BEGIN IMMEDIATE, inject, COMMIT. */
int ijh_inject_into(sqlite3 *db, const struct wal_inject_opts *opts,
		    const struct wal_page *pages, size_t n, uint32_t db_size,
		    char **msg)
{
	int rc;

	fixture_exec(db, "BEGIN IMMEDIATE");
	rc = wal_inject(db, opts, pages, n, db_size, msg);
	fixture_exec(db, "COMMIT");
	ck_assert_int_ne(sqlite3_get_autocommit(db), 0);
	return rc;
}

static void pair_inject(struct ijh_pair *pr, const struct ijh_batch *b)
{
	struct wal_inject_opts opts = {NULL, pr->sync, ijh_page_size};
	char *msg = NULL;
	int rc;

	rc = ijh_inject_into(pr->r, &opts, b->pages, b->n, b->db_size, &msg);
	ck_assert_msg(rc == SQLITE_OK, "wal_inject: %d %s", rc, msg ? msg : "");
	pr->r_last = ijh_shm_header(pr->r).max_frame;
	pr->r_first = pr->r_last - (uint32_t)b->n + 1;
	if (pr->r_first <= IJH_HASH_NPAGE_ONE &&
	    pr->r_last > IJH_HASH_NPAGE_ONE) {
		pr->straddled = true;
	}
	if (b->n > pr->max_batch) {
		pr->max_batch = b->n;
	}
}

/* The wal-index must match P's except the checkpoint info (bytes 96..135),
 * which depends on each side's readers. */
static void pair_compare_shm(struct ijh_pair *pr)
{
	struct ijh_shm_hdr hp = ijh_shm_header(pr->p),
			   hr = ijh_shm_header(pr->r);
	uint32_t region;

	ck_assert_int_eq(memcmp(&hp, &hr, sizeof hp), 0);
	ck_assert_int_eq(memcmp((const void *)ijh_shm_region(pr->p, 0),
				(const void *)ijh_shm_region(pr->r, 0), 96),
			 0);
	ck_assert_int_eq(memcmp((const void *)(ijh_shm_region(pr->p, 0) + 136),
				(const void *)(ijh_shm_region(pr->r, 0) + 136),
				REGION_SIZE - 136),
			 0);
	if (hp.max_frame == 0) {
		return;
	}
	for (region = 1; region <= ijh_frame_block(hp.max_frame); region++) {
		ck_assert_msg(
		    memcmp((const void *)ijh_shm_region(pr->p, region),
			   (const void *)ijh_shm_region(pr->r, region),
			   REGION_SIZE) == 0,
		    "wal-index region %u differs", region);
	}
}

/* The WAL header and the frames of the last batch. */
static void pair_compare_wal_step(struct ijh_pair *pr)
{
	uint8_t *a, *b;
	size_t len = (size_t)(pr->r_last - pr->r_first + 1) * FRAME_SIZE;
	int64_t off = (int64_t)walfmt_frame_offset(pr->r_first, ijh_page_size);

	ck_assert_int_eq(ijh_wal_size(pr->p), ijh_wal_size(pr->r));
	a = ijh_wal_range(pr->p, 0, WALFMT_HDR_SIZE);
	b = ijh_wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(memcmp(a, b, WALFMT_HDR_SIZE), 0);
	free(a);
	free(b);
	a = ijh_wal_range(pr->p, off, len);
	b = ijh_wal_range(pr->r, off, len);
	ck_assert_int_eq(memcmp(a, b, len), 0);
	free(a);
	free(b);
}

void ijh_pair_compare_db_files(struct ijh_pair *pr)
{
	size_t la, lb;
	uint8_t *a =
	    ijh_read_whole(ijh_file_of(pr->p, SQLITE_FCNTL_FILE_POINTER), &la);
	uint8_t *b =
	    ijh_read_whole(ijh_file_of(pr->r, SQLITE_FCNTL_FILE_POINTER), &lb);

	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
}

/* Inject whatever P committed since the last sync. */
static void pair_sync(struct ijh_pair *pr)
{
	struct ijh_batch b;

	ijh_pair_extract(pr, &b);
	if (pr->lockstep) {
		/* R's injector draws the PRNG exactly where P's writer did. */
		sqlite3_test_control(SQLITE_TESTCTRL_PRNG_RESTORE);
	}
	if (b.n > 0) {
		pair_inject(pr, &b);
		if (pr->lockstep) {
			pair_compare_shm(pr);
			pair_compare_wal_step(pr);
		}
	}
	ijh_batch_free(&b);
}

/* Commit sql on P as one transaction and replicate it.  New WAL salts are
 * the only random bytes in a commit; P's writer draws them from SQLite's
 * PRNG at COMMIT, so saving the PRNG right before and restoring it before
 * the injection (pair_sync) makes the injector draw the very same bytes, and
 * R's WAL and wal-index can be compared with P's byte for byte.  (The
 * statement's randomblob() calls come before the save.) */
void ijh_pair_commit(struct ijh_pair *pr, const char *sql)
{
	fixture_exec(pr->p, "BEGIN");
	fixture_exec(pr->p, sql);
	sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SAVE);
	fixture_exec(pr->p, "COMMIT");
	pair_sync(pr);
}

/* The same for a statement that is a transaction of its own (VACUUM: only
 * where the commit draws no salts, as its temporary file names use the
 * PRNG too). */
void ijh_pair_commit_bare(struct ijh_pair *pr, const char *sql)
{
	sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SAVE);
	fixture_exec(pr->p, sql);
	pair_sync(pr);
}

void ijh_pair_commitf(struct ijh_pair *pr, const char *fmt, int n)
{
	char sql[512];

	snprintf(sql, sizeof sql, fmt, n);
	ijh_pair_commit(pr, sql);
}

/* Both replica connections see P's content: the injector's own connection
 * too, whose page cache predates the batch. */
void ijh_pair_assert_same_content(struct ijh_pair *pr)
{
	uint64_t expected = ijh_content_hash_in_txn(pr->p2);

	ck_assert_uint_eq(ijh_content_hash_in_txn(pr->r2), expected);
	ck_assert_uint_eq(ijh_content_hash_in_txn(pr->r), expected);
	fixture_assert_integrity(pr->r2);
}
