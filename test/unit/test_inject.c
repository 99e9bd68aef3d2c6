/* The WAL injector against real SQLite: a primary P (plain SQLite) commits,
 * its frames are read back from P's WAL and injected into a replica R made
 * from the same base file, and R must end up exactly as P -- byte for byte
 * where SQLite's own choices can be replayed (see pair_commit()). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "wal/walfmt.h"
#include "wal/wal_inject.h"

#define PAGE_SIZE 4096 /* of the fixed-size tests */
#define REGION_SIZE 32768
#define HASH_NPAGE 4096
#define HASH_NSLOT 8192
#define HASH_NPAGE_ONE 4062
#define PENDING_PAGE (0x40000000u / PAGE_SIZE + 1)
#define FRAME_SIZE (WALFMT_FRAME_HDR_SIZE + page_size)
#define ACCOUNTS 100
#define BALANCE 1000

/* WalIndexHdr as SQLite lays it out (native byte order). */
struct shm_hdr {
	uint32_t version;
	uint32_t unused;
	uint32_t change;
	uint8_t is_init;
	uint8_t big_end_cksum;
	uint16_t page_size;
	uint32_t max_frame;
	uint32_t n_page;
	uint32_t frame_cksum[2];
	uint8_t salt[8];
	uint32_t cksum[2];
};

/* The page size of the databases of the running test (pair_new_sized()). */
static uint32_t page_size = PAGE_SIZE;

/* ---- SQL helpers ---- */

/* The (busy, log, checkpointed) row of PRAGMA wal_checkpoint. */
static void checkpoint(sqlite3 *db, const char *mode, int out[3])
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

static void checkpoint_fully(sqlite3 *db, const char *mode)
{
	int r[3];

	checkpoint(db, mode, r);
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
static uint64_t content_hash(sqlite3 *db)
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

static uint64_t content_hash_in_txn(sqlite3 *db)
{
	uint64_t h;

	fixture_exec(db, "BEGIN");
	h = content_hash(db);
	fixture_exec(db, "COMMIT");
	return h;
}

/* Connections get a busy timeout and never checkpoint by themselves. */
static sqlite3 *open_db(const char *path)
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
static sqlite3_file *file_of(sqlite3 *db, int op)
{
	sqlite3_file *f = NULL;

	ck_assert_int_eq(sqlite3_file_control(db, "main", op, &f), SQLITE_OK);
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(f->pMethods);
	return f;
}

static int64_t handle_size(sqlite3_file *f)
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

static uint8_t *read_whole(sqlite3_file *f, size_t *len)
{
	*len = (size_t)handle_size(f);
	return handle_read(f, 0, *len);
}

static uint8_t *wal_range(sqlite3 *db, int64_t off, size_t len)
{
	return handle_read(file_of(db, SQLITE_FCNTL_JOURNAL_POINTER), off, len);
}

static int64_t wal_size(sqlite3 *db)
{
	return handle_size(file_of(db, SQLITE_FCNTL_JOURNAL_POINTER));
}

static volatile uint8_t *shm_region(sqlite3 *db, int region)
{
	sqlite3_file *f = file_of(db, SQLITE_FCNTL_FILE_POINTER);
	volatile void *p = NULL;

	ck_assert_int_eq(f->pMethods->xShmMap(f, region, REGION_SIZE, 0, &p),
			 SQLITE_OK);
	ck_assert_ptr_nonnull((void *)p);
	return p;
}

static struct shm_hdr shm_header(sqlite3 *db)
{
	struct shm_hdr h;

	memcpy(&h, (const void *)shm_region(db, 0), sizeof h);
	return h;
}

static uint32_t shm_backfill(sqlite3 *db)
{
	uint32_t v;

	memcpy(&v, (const void *)(shm_region(db, 0) + 96), 4);
	return v;
}

static uint32_t frame_block(uint32_t frame)
{
	return (frame + HASH_NPAGE - HASH_NPAGE_ONE - 1) / HASH_NPAGE;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(buf, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long size;

	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)size + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	*len = (size_t)size;
	return buf;
}

/* Every frame up to the published mxFrame carries the header's salts and a
 * valid checksum chain; returns the checksum byte order of the WAL. */
static int assert_wal_chain(sqlite3 *db)
{
	struct shm_hdr sh = shm_header(db);
	struct walfmt_header h;
	uint32_t chain[2], i;
	uint8_t *hdr, *frame;
	int big;

	if (sh.max_frame == 0) {
		return -1;
	}
	hdr = wal_range(db, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(walfmt_header_decode(hdr, &h), 0);
	ck_assert_int_eq(memcmp(hdr + 16, sh.salt, 8), 0);
	big = (int)(h.magic & 1);
	ck_assert_int_eq(big, sh.big_end_cksum);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	for (i = 1; i <= sh.max_frame; i++) {
		frame = wal_range(
		    db, (int64_t)walfmt_frame_offset(i, page_size), FRAME_SIZE);
		ck_assert_msg(walfmt_frame_verify(big, h.salt, chain, frame,
						  page_size) == 0,
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
static void assert_hash_blocks(sqlite3 *db)
{
	struct shm_hdr sh = shm_header(db);
	uint32_t block, last;

	if (sh.max_frame == 0) {
		return;
	}
	last = frame_block(sh.max_frame);
	for (block = 0; block <= last; block++) {
		volatile uint8_t *base = shm_region(db, (int)block);
		volatile uint32_t *pgno =
		    (volatile uint32_t *)(base + (block == 0 ? 136 : 0));
		volatile uint16_t *slots =
		    (volatile uint16_t *)(base + HASH_NPAGE * 4);
		uint32_t zero =
		    block == 0 ? 0 : HASH_NPAGE_ONE + (block - 1) * HASH_NPAGE;
		uint32_t end = block == 0 ? HASH_NPAGE_ONE : zero + HASH_NPAGE;
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
static sqlite3 *crash_copy(sqlite3 *db, const char *dir, const char *name,
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
	buf = read_whole(file_of(db, SQLITE_FCNTL_FILE_POINTER), &len);
	write_file(path, buf, len);
	free(buf);
	buf = read_whole(file_of(db, SQLITE_FCNTL_JOURNAL_POINTER), &len);
	if (corrupt_last_frame) {
		uint32_t mx = shm_header(db).max_frame;

		ck_assert_uint_gt(mx, 0);
		buf[walfmt_frame_offset(mx, page_size) + 16] ^= 0x01;
	}
	write_file(wal_path, buf, len);
	free(buf);
	copy = open_db(path);
	free(wal_path);
	free(path);
	return copy;
}

static void assert_crash_copy_equal(sqlite3 *db, const char *dir)
{
	sqlite3 *copy = crash_copy(db, dir, "crash.db", false);

	fixture_assert_integrity(copy);
	ck_assert_uint_eq(content_hash_in_txn(copy), content_hash_in_txn(db));
	ck_assert_uint_eq(shm_header(copy).max_frame, shm_header(db).max_frame);
	sqlite3_close(copy);
}

/* ---- A primary and its replica ---- */

struct batch {
	struct wal_page *pages;
	uint8_t *buf;
	size_t n;
	uint32_t db_size;
};

struct pair {
	char *dir;
	char *p_path;
	char *r_path;
	sqlite3 *p;    /* the primary's writer */
	sqlite3 *p2;   /* the primary's checkpointer */
	sqlite3 *r;    /* the replica's internal connection */
	sqlite3 *r2;   /* the replica's checkpointer and reader */
	bool lockstep; /* replay SQLite's PRNG: byte-identical files */
	int sync;
	uint32_t consumed;        /* last frame of P's WAL injected */
	uint8_t p_salt[8];        /* salts of P's WAL for consumed */
	uint32_t r_first, r_last; /* R's frames of the last batch */
	bool straddled;           /* some batch held frames 4062 and 4063 */
	size_t max_batch;
};

static void copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *buf = read_file(from, &len);

	write_file(to, buf, len);
	free(buf);
}

static void make_base(const char *path)
{
	char sql[64];
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	snprintf(sql, sizeof sql, "PRAGMA page_size=%u", page_size);
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

static void pair_open_replica(struct pair *pr)
{
	pr->r = open_db(pr->r_path);
	pr->r2 = open_db(pr->r_path);
}

/* Leave the WAL and -shm files behind, as a crashed process would. */
static void pair_close_replica(struct pair *pr)
{
	int off;

	ck_assert_int_eq(
	    sqlite3_db_config(pr->r, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &off),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_db_config(
			     pr->r2, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &off),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(pr->r), SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(pr->r2), SQLITE_OK);
	pr->r = pr->r2 = NULL;
}

static struct pair *pair_new_sized(bool lockstep, uint32_t size)
{
	struct pair *pr = calloc(1, sizeof *pr);
	char *base;

	ck_assert_ptr_nonnull(pr);
	page_size = size;
	pr->dir = fixture_tmpdir();
	pr->p_path = fixture_path(pr->dir, "p.db");
	pr->r_path = fixture_path(pr->dir, "r.db");
	pr->lockstep = lockstep;
	base = fixture_path(pr->dir, "base.db");
	make_base(base);
	copy_file(base, pr->p_path);
	copy_file(base, pr->r_path);
	free(base);

	pr->p = open_db(pr->p_path);
	/* No spill: each commit's frames are its pages, once each. */
	fixture_exec(pr->p, "PRAGMA cache_size=-400000; PRAGMA cache_spill=0");
	pr->p2 = open_db(pr->p_path);
	pair_open_replica(pr);
	return pr;
}

static struct pair *pair_new(bool lockstep)
{
	return pair_new_sized(lockstep, PAGE_SIZE);
}

static void pair_free(struct pair *pr)
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

static void batch_free(struct batch *b)
{
	free(b->pages);
	free(b->buf);
	memset(b, 0, sizeof *b);
}

/* The frames P committed since the last call, as a batch.  A changed salt
 * means P restarted its WAL: the new transactions start at frame 1. */
static void pair_extract(struct pair *pr, struct batch *b)
{
	struct shm_hdr h = shm_header(pr->p);
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
	b->buf = wal_range(
	    pr->p, (int64_t)walfmt_frame_offset(pr->consumed + 1, page_size),
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
static int inject_into(sqlite3 *db, const struct wal_inject_opts *opts,
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

static void pair_inject(struct pair *pr, const struct batch *b)
{
	struct wal_inject_opts opts = {NULL, pr->sync, page_size};
	char *msg = NULL;
	int rc;

	rc = inject_into(pr->r, &opts, b->pages, b->n, b->db_size, &msg);
	ck_assert_msg(rc == SQLITE_OK, "wal_inject: %d %s", rc, msg ? msg : "");
	pr->r_last = shm_header(pr->r).max_frame;
	pr->r_first = pr->r_last - (uint32_t)b->n + 1;
	if (pr->r_first <= HASH_NPAGE_ONE && pr->r_last > HASH_NPAGE_ONE) {
		pr->straddled = true;
	}
	if (b->n > pr->max_batch) {
		pr->max_batch = b->n;
	}
}

/* The wal-index must match P's except the checkpoint info (bytes 96..135),
 * which depends on each side's readers. */
static void pair_compare_shm(struct pair *pr)
{
	struct shm_hdr hp = shm_header(pr->p), hr = shm_header(pr->r);
	uint32_t region;

	ck_assert_int_eq(memcmp(&hp, &hr, sizeof hp), 0);
	ck_assert_int_eq(memcmp((const void *)shm_region(pr->p, 0),
				(const void *)shm_region(pr->r, 0), 96),
			 0);
	ck_assert_int_eq(memcmp((const void *)(shm_region(pr->p, 0) + 136),
				(const void *)(shm_region(pr->r, 0) + 136),
				REGION_SIZE - 136),
			 0);
	if (hp.max_frame == 0) {
		return;
	}
	for (region = 1; region <= frame_block(hp.max_frame); region++) {
		ck_assert_msg(memcmp((const void *)shm_region(pr->p, region),
				     (const void *)shm_region(pr->r, region),
				     REGION_SIZE) == 0,
			      "wal-index region %u differs", region);
	}
}

/* The WAL header and the frames of the last batch. */
static void pair_compare_wal_step(struct pair *pr)
{
	uint8_t *a, *b;
	size_t len = (size_t)(pr->r_last - pr->r_first + 1) * FRAME_SIZE;
	int64_t off = (int64_t)walfmt_frame_offset(pr->r_first, page_size);

	ck_assert_int_eq(wal_size(pr->p), wal_size(pr->r));
	a = wal_range(pr->p, 0, WALFMT_HDR_SIZE);
	b = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(memcmp(a, b, WALFMT_HDR_SIZE), 0);
	free(a);
	free(b);
	a = wal_range(pr->p, off, len);
	b = wal_range(pr->r, off, len);
	ck_assert_int_eq(memcmp(a, b, len), 0);
	free(a);
	free(b);
}

static void pair_compare_wal_full(struct pair *pr)
{
	size_t la, lb;
	uint8_t *a =
	    read_whole(file_of(pr->p, SQLITE_FCNTL_JOURNAL_POINTER), &la);
	uint8_t *b =
	    read_whole(file_of(pr->r, SQLITE_FCNTL_JOURNAL_POINTER), &lb);

	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
}

static void pair_compare_db_files(struct pair *pr)
{
	size_t la, lb;
	uint8_t *a = read_whole(file_of(pr->p, SQLITE_FCNTL_FILE_POINTER), &la);
	uint8_t *b = read_whole(file_of(pr->r, SQLITE_FCNTL_FILE_POINTER), &lb);

	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(a, b, la), 0);
	free(a);
	free(b);
}

/* Inject whatever P committed since the last sync. */
static void pair_sync(struct pair *pr)
{
	struct batch b;

	pair_extract(pr, &b);
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
	batch_free(&b);
}

/* Commit sql on P as one transaction and replicate it.  New WAL salts are
 * the only random bytes in a commit; P's writer draws them from SQLite's
 * PRNG at COMMIT, so saving the PRNG right before and restoring it before
 * the injection (pair_sync) makes the injector draw the very same bytes, and
 * R's WAL and wal-index can be compared with P's byte for byte.  (The
 * statement's randomblob() calls come before the save.) */
static void pair_commit(struct pair *pr, const char *sql)
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
static void pair_commit_bare(struct pair *pr, const char *sql)
{
	sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SAVE);
	fixture_exec(pr->p, sql);
	pair_sync(pr);
}

static void pair_commitf(struct pair *pr, const char *fmt, int n)
{
	char sql[512];

	snprintf(sql, sizeof sql, fmt, n);
	pair_commit(pr, sql);
}

#define INSERT_ROWS                                                            \
	"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "      \
	"WHERE i < %d) INSERT INTO t(v) SELECT randomblob(3000) FROM c"

/* Both replica connections see P's content: the injector's own connection
 * too, whose page cache predates the batch. */
static void pair_assert_same_content(struct pair *pr)
{
	uint64_t expected = content_hash_in_txn(pr->p2);

	ck_assert_uint_eq(content_hash_in_txn(pr->r2), expected);
	ck_assert_uint_eq(content_hash_in_txn(pr->r), expected);
	fixture_assert_integrity(pr->r2);
}

/* ---- 1, 2: differential against SQLite itself ---- */

/* Every batch leaves R's WAL and wal-index byte-identical to P's: across
 * the 4062/4063 hash-block boundary, a transaction of more than 4096 frames,
 * a shrinking VACUUM, a new WAL after TRUNCATE, one after RESTART, and a WAL
 * restarted by the writer itself; the database files match after a
 * checkpoint. */
START_TEST(test_differential)
{
	struct pair *pr = pair_new(true);
	uint32_t pages_before;
	uint8_t *hdr;
	int i;

	pr->sync = 1;
	for (i = 0; i < 5; i++) {
		pair_commitf(pr, INSERT_ROWS, 3);
	}
	pair_commit(pr, "UPDATE acc SET bal = bal + 1 WHERE id % 3 = 0");
	pair_commitf(pr, INSERT_ROWS, 3800);
	for (i = 0; i < 40 && !pr->straddled; i++) {
		pair_commitf(pr, INSERT_ROWS, 30);
	}
	ck_assert(pr->straddled);
	pair_commitf(pr, INSERT_ROWS, 4500);
	ck_assert_uint_gt(pr->r_last - pr->r_first + 1, 4096);
	ck_assert_uint_ge(frame_block(pr->r_last), 2);
	pair_compare_wal_full(pr);
	assert_hash_blocks(pr->r);
	ck_assert_int_eq(assert_wal_chain(pr->r), 0);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);

	/* A transaction that shrinks the database. */
	pages_before = shm_header(pr->r).n_page;
	pair_commit(pr, "DELETE FROM t WHERE id % 4 != 0");
	pair_commit_bare(pr, "VACUUM");
	ck_assert_uint_lt(shm_header(pr->r).n_page, pages_before / 2);
	pair_compare_wal_full(pr);
	pair_assert_same_content(pr);

	/* TRUNCATE by another connection: the next batch makes a new WAL. */
	checkpoint_fully(pr->p2, "TRUNCATE");
	checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(wal_size(pr->r), 0);
	pair_compare_db_files(pr);
	pair_commitf(pr, INSERT_ROWS, 10);
	ck_assert_uint_eq(pr->r_first, 1);
	pair_commit(pr, "UPDATE t SET v = randomblob(100) WHERE id % 10 = 0");
	pair_compare_wal_full(pr);

	/* RESTART leaves the wal-index alone once no reader uses the WAL; the
	 * next writer restarts it (nCkpt + 1, salt-1 + 1), SQLite and the
	 * injector alike.  The old frames stay in the file behind the new. */
	pair_commitf(pr, INSERT_ROWS, 40);
	checkpoint_fully(pr->p2, "RESTART");
	checkpoint_fully(pr->r2, "RESTART");
	pair_commitf(pr, INSERT_ROWS, 5);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 1);
	free(hdr);
	pair_compare_wal_full(pr);
	pair_assert_same_content(pr);

	/* The same after a PASSIVE checkpoint that copied every frame. */
	pair_commitf(pr, INSERT_ROWS, 5);
	checkpoint_fully(pr->p2, "PASSIVE");
	checkpoint_fully(pr->r2, "PASSIVE");
	pair_commitf(pr, INSERT_ROWS, 2);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 2);
	free(hdr);
	pair_compare_wal_full(pr);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);

	checkpoint_fully(pr->p2, "TRUNCATE");
	checkpoint_fully(pr->r2, "TRUNCATE");
	pair_compare_db_files(pr);
	pair_free(pr);
}
END_TEST

/* The same with the smallest and the largest page size (whose wal-index
 * encoding is 1). */
static const uint32_t other_page_sizes[] = {512, 65536};

START_TEST(test_differential_page_sizes)
{
	struct pair *pr = pair_new_sized(true, other_page_sizes[_i]);
	uint8_t *hdr;
	int i;

	for (i = 0; i < 3; i++) {
		pair_commitf(pr, INSERT_ROWS, 20);
	}
	ck_assert_uint_eq(shm_header(pr->r).page_size,
			  page_size == 65536 ? 1 : page_size);
	pair_commit(pr, "UPDATE acc SET bal = bal + 1 WHERE id % 2 = 0");
	checkpoint_fully(pr->p2, "PASSIVE");
	checkpoint_fully(pr->r2, "PASSIVE");
	pair_commitf(pr, INSERT_ROWS, 300);
	ck_assert_uint_eq(pr->r_first, 1);
	hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr + 8), page_size);
	free(hdr);
	pair_compare_wal_full(pr);
	assert_hash_blocks(pr->r);
	ck_assert_int_eq(assert_wal_chain(pr->r), 0);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	checkpoint_fully(pr->p2, "TRUNCATE");
	checkpoint_fully(pr->r2, "TRUNCATE");
	pair_compare_db_files(pr);
	pair_free(pr);
}
END_TEST

/* ---- 3: readers keep their snapshot ---- */

START_TEST(test_reader_snapshot)
{
	struct pair *pr = pair_new(false);
	sqlite3 *reader;
	sqlite3_stmt *count;
	uint64_t before;
	int64_t n_before, dv_before;

	pair_commitf(pr, INSERT_ROWS, 5);
	reader = open_db(pr->r_path);
	ck_assert_int_eq(sqlite3_prepare_v2(reader, "SELECT count(*) FROM t",
					    -1, &count, NULL),
			 SQLITE_OK);
	fixture_exec(reader, "BEGIN");
	before = content_hash(reader);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	n_before = sqlite3_column_int64(count, 0);
	sqlite3_reset(count);
	dv_before = fixture_query_int(reader, "PRAGMA data_version");

	pair_commitf(pr, INSERT_ROWS, 50);
	pair_commit(pr, "UPDATE acc SET bal = bal - 7 WHERE id = 1");
	ck_assert_uint_eq(content_hash(reader), before);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int64(count, 0), n_before);
	sqlite3_reset(count);
	fixture_exec(reader, "COMMIT");

	ck_assert_int_ne(fixture_query_int(reader, "PRAGMA data_version"),
			 dv_before);
	ck_assert_int_eq(sqlite3_step(count), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int64(count, 0), n_before + 50);
	sqlite3_finalize(count);
	ck_assert_uint_eq(content_hash_in_txn(reader),
			  content_hash_in_txn(pr->p2));
	ck_assert_int_eq(
	    fixture_query_int(reader, "SELECT bal FROM acc WHERE id = 1"),
	    BALANCE - 7);
	sqlite3_close(reader);
	pair_free(pr);
}
END_TEST

/* ---- 5: crash copies ---- */

/* Recovery from db + WAL alone finds every injected frame; with the last
 * frame's checksum broken it drops exactly the last batch, which live
 * readers (who never check checksums) do see. */
START_TEST(test_crash_copy)
{
	struct pair *pr = pair_new(false);
	uint64_t previous, latest;
	sqlite3 *copy;
	int i;

	for (i = 0; i < 4; i++) {
		pair_commitf(pr, INSERT_ROWS, 10 + i);
	}
	assert_crash_copy_equal(pr->r, pr->dir);
	previous = content_hash_in_txn(pr->r2);
	pair_commitf(pr, INSERT_ROWS, 20);
	latest = content_hash_in_txn(pr->r2);
	ck_assert_uint_ne(latest, previous);
	assert_crash_copy_equal(pr->r, pr->dir);

	copy = crash_copy(pr->r, pr->dir, "broken.db", true);
	fixture_assert_integrity(copy);
	ck_assert_uint_eq(content_hash_in_txn(copy), previous);
	ck_assert_uint_eq(shm_header(copy).max_frame, pr->r_first - 1);
	sqlite3_close(copy);
	ck_assert_uint_eq(content_hash_in_txn(pr->r2), latest);
	pair_free(pr);
}
END_TEST

/* ---- 6: restarting the WAL ---- */

START_TEST(test_inject_after_truncate)
{
	struct pair *pr = pair_new(false);
	struct shm_hdr before, after;
	uint8_t *hdr;

	pair_commitf(pr, INSERT_ROWS, 30);
	before = shm_header(pr->r);
	checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(wal_size(pr->r), 0);
	pair_commitf(pr, INSERT_ROWS, 5);
	after = shm_header(pr->r);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_int_ne(memcmp(before.salt, after.salt, 8), 0);
	hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_int_eq(memcmp(hdr + 16, after.salt, 8), 0);
	ck_assert_uint_eq(walfmt_get32(hdr + 12), 0);
	free(hdr);
	ck_assert_int_eq(assert_wal_chain(pr->r), 0);
	assert_hash_blocks(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	pair_free(pr);
}
END_TEST

START_TEST(test_inject_after_restart)
{
	struct pair *pr = pair_new(false);
	uint8_t *old_hdr, *new_hdr;
	int64_t size;

	pair_commitf(pr, INSERT_ROWS, 60);
	old_hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	checkpoint_fully(pr->r2, "RESTART");
	size = wal_size(pr->r);
	pair_commitf(pr, INSERT_ROWS, 3);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_int_eq(wal_size(pr->r), size); /* old frames remain */
	/* RESTART itself leaves the header; the injector restarts the WAL. */
	new_hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 12),
			  walfmt_get32(old_hdr + 12) + 1);
	ck_assert_int_ne(memcmp(old_hdr + 16, new_hdr + 16, 8), 0);
	free(old_hdr);
	free(new_hdr);
	assert_wal_chain(pr->r);
	pair_assert_same_content(pr);
	/* Recovery must stop at our commit, not resurrect the old frames. */
	assert_crash_copy_equal(pr->r, pr->dir);
	pair_free(pr);
}
END_TEST

/* The checkpoint read locks stay usable after a restart: nothing leaked. */
static void assert_wal_usable(struct pair *pr)
{
	sqlite3 *other = open_db(pr->r_path);

	sqlite3_busy_timeout(other, 0);
	ck_assert_uint_eq(content_hash_in_txn(other),
			  content_hash_in_txn(pr->p2));
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	checkpoint_fully(other, "PASSIVE");
	sqlite3_close(other);
}

START_TEST(test_injector_restarts_wal)
{
	struct pair *pr = pair_new(false);
	uint8_t *old_hdr, *new_hdr;

	pair_commitf(pr, INSERT_ROWS, 20);
	old_hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	checkpoint_fully(pr->r2, "PASSIVE");
	ck_assert_uint_eq(shm_backfill(pr->r), shm_header(pr->r).max_frame);
	pair_commitf(pr, INSERT_ROWS, 2);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_uint_eq(shm_backfill(pr->r), 0);
	new_hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 12),
			  walfmt_get32(old_hdr + 12) + 1);
	ck_assert_uint_eq(walfmt_get32(new_hdr + 16),
			  walfmt_get32(old_hdr + 16) + 1);
	free(old_hdr);
	free(new_hdr);
	assert_wal_chain(pr->r);
	assert_hash_blocks(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	assert_wal_usable(pr);
	pair_free(pr);
}
END_TEST

/* A reader whose snapshot includes WAL frames (READ(k), k > 0) blocks the
 * restart: the batch is appended, and the reader keeps its snapshot. */
START_TEST(test_reader_in_wal_blocks_restart)
{
	struct pair *pr = pair_new(false);
	sqlite3 *reader = open_db(pr->r_path);
	uint32_t mx;
	uint64_t seen;

	pair_commitf(pr, INSERT_ROWS, 20);
	fixture_exec(reader, "BEGIN");
	seen = content_hash(reader);
	checkpoint_fully(pr->r2, "PASSIVE");
	mx = shm_header(pr->r).max_frame;
	ck_assert_uint_eq(shm_backfill(pr->r), mx);
	pair_commitf(pr, INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, mx + 1);
	ck_assert_uint_eq(content_hash(reader), seen);
	fixture_exec(reader, "COMMIT");
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);

	/* Once the reader is gone the next batch restarts the WAL. */
	checkpoint_fully(pr->r2, "PASSIVE");
	pair_commitf(pr, INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, 1);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(reader);
	pair_free(pr);
}
END_TEST

/* A reader that started after a full checkpoint reads through READ(0), from
 * the database file only: the restart goes ahead under it. */
START_TEST(test_restart_under_read0_reader)
{
	struct pair *pr = pair_new(false);
	sqlite3 *reader = open_db(pr->r_path);
	uint64_t seen;

	pair_commitf(pr, INSERT_ROWS, 20);
	checkpoint_fully(pr->r2, "PASSIVE");
	fixture_exec(reader, "BEGIN");
	seen = content_hash(reader);
	pair_commitf(pr, INSERT_ROWS, 4);
	ck_assert_uint_eq(pr->r_first, 1);
	ck_assert_uint_eq(content_hash(reader), seen);
	fixture_exec(reader, "COMMIT");
	ck_assert_uint_ne(content_hash_in_txn(reader), seen);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(reader);
	pair_free(pr);
}
END_TEST

/* The internal connection itself reads through READ(k > 0) (its transaction
 * began before the checkpoint): it must not restart the WAL although
 * nBackfill == mxFrame. */
START_TEST(test_own_wal_snapshot_blocks_restart)
{
	struct pair *pr = pair_new(false);
	struct batch b;
	char *msg = NULL;
	uint32_t mx;

	pair_commitf(pr, INSERT_ROWS, 20);
	fixture_exec(pr->p, "INSERT INTO t(v) VALUES (randomblob(5000))");
	pair_extract(pr, &b);
	fixture_exec(pr->r, "BEGIN IMMEDIATE");
	checkpoint_fully(pr->r2, "PASSIVE");
	mx = shm_header(pr->r).max_frame;
	ck_assert_uint_eq(shm_backfill(pr->r), mx);
	ck_assert_int_eq(wal_inject(pr->r, NULL, b.pages, b.n, b.db_size, &msg),
			 SQLITE_OK);
	fixture_exec(pr->r, "COMMIT");
	ck_assert_uint_eq(shm_header(pr->r).max_frame, mx + b.n);
	batch_free(&b);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	assert_wal_usable(pr);
	pair_free(pr);
}
END_TEST

/* ---- 7: a WAL with big-endian checksums ---- */

/* Rewrite a WAL (no connection open) with magic 0x377f0683: the same frames,
 * checksummed over big-endian words. */
static void convert_wal_big_endian(const char *path)
{
	struct walfmt_header h;
	uint32_t chain[2], out[2], i, n = 0;
	size_t len;
	uint8_t *buf = read_file(path, &len);

	ck_assert_int_eq(walfmt_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.magic, WALFMT_MAGIC_LE);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	while (walfmt_frame_offset(n + 2, page_size) <= len &&
	       walfmt_frame_verify(0, h.salt, chain,
				   buf + walfmt_frame_offset(n + 1, page_size),
				   page_size) == 0) {
		n++;
	}
	ck_assert_uint_gt(n, 0);
	h.magic = WALFMT_MAGIC_BE;
	walfmt_header_encode(&h, buf);
	out[0] = h.cksum[0];
	out[1] = h.cksum[1];
	for (i = 1; i <= n; i++) {
		uint8_t *f = buf + walfmt_frame_offset(i, page_size);

		walfmt_frame_encode(1, h.salt, out, walfmt_get32(f),
				    walfmt_get32(f + 4),
				    f + WALFMT_FRAME_HDR_SIZE, page_size, f);
	}
	write_file(path, buf, len);
	free(buf);
}

START_TEST(test_big_endian_wal)
{
	struct pair *pr = pair_new(false);
	char *wal_path;
	uint8_t *hdr;

	pair_commitf(pr, INSERT_ROWS, 10);
	pair_commit(pr, "UPDATE acc SET bal = bal + 3 WHERE id < 10");
	pair_close_replica(pr);
	ck_assert_int_ne(asprintf(&wal_path, "%s-wal", pr->r_path), -1);
	convert_wal_big_endian(wal_path);
	free(wal_path);
	pair_open_replica(pr); /* the first opener recovers the WAL */
	ck_assert_uint_eq(shm_header(pr->r).big_end_cksum, 1);
	ck_assert_uint_gt(shm_header(pr->r).max_frame, 0);
	pair_assert_same_content(pr);

	pair_commitf(pr, INSERT_ROWS, 25);
	pair_commit(pr, "UPDATE acc SET bal = bal - 3 WHERE id < 10");
	ck_assert_int_eq(assert_wal_chain(pr->r), 1);
	pair_assert_same_content(pr);
	/* SQLite itself appends to the injected big-endian chain. */
	fixture_exec(pr->r2, "INSERT INTO loc VALUES ('written by SQLite')");
	ck_assert_int_eq(assert_wal_chain(pr->r), 1);
	hdr = wal_range(pr->r, 0, WALFMT_HDR_SIZE);
	ck_assert_uint_eq(walfmt_get32(hdr), WALFMT_MAGIC_BE);
	free(hdr);
	fixture_assert_integrity(pr->r2);
	assert_crash_copy_equal(pr->r, pr->dir);
	pair_free(pr);
}
END_TEST

/* ---- 10: leftovers of a writer that died ---- */

/* Run in a fresh process (see main): spill a large uncommitted transaction
 * into the WAL and the wal-index, then die without rolling back. */
static int spill_and_die(const char *path, int rows)
{
	char sql[256];
	sqlite3 *db;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		return 2;
	}
	snprintf(sql, sizeof sql,
		 "PRAGMA cache_size=10; BEGIN; " INSERT_ROWS ";", rows);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		return 3;
	}
	_exit(0);
}

static void run_spill_child(const char *path, int rows)
{
	char n[16];
	pid_t pid;
	int status;

	snprintf(n, sizeof n, "%d", rows);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		execl("/proc/self/exe", "test_inject", "--spill-and-die", path,
		      n, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}

START_TEST(test_leftover_hash_entries)
{
	struct pair *pr = pair_new(false);
	volatile uint32_t *pgno;
	uint32_t mx;

	pair_commitf(pr, INSERT_ROWS, 10);
	mx = shm_header(pr->r).max_frame;
	ck_assert_uint_lt(mx, 200);
	/* R stays open, so the dead writer's -shm survives as it left it. */
	run_spill_child(pr->r_path, 5000);
	ck_assert_uint_eq(shm_header(pr->r).max_frame, mx);
	pgno = (volatile uint32_t *)(shm_region(pr->r, 0) + 136);
	ck_assert_uint_ne(pgno[mx], 0); /* frame mx + 1 */
	ck_assert_uint_ne(pgno[HASH_NPAGE_ONE - 1], 0);
	ck_assert_uint_ne(((volatile uint32_t *)shm_region(pr->r, 1))[0], 0);

	pair_commitf(pr, INSERT_ROWS, 5);
	assert_hash_blocks(pr->r);
	ck_assert_uint_eq(pgno[pr->r_last], 0);
	assert_wal_chain(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);

	/* Into the dead writer's second hash block. */
	pair_commitf(pr, INSERT_ROWS, 4200);
	ck_assert_uint_ge(frame_block(pr->r_last), 1);
	assert_hash_blocks(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	pair_free(pr);
}
END_TEST

/* A local writer that spilled and rolled back left frames (with the current
 * salts) beyond mxFrame in the WAL file: our frames overwrite them. */
START_TEST(test_after_spilled_rollback)
{
	struct pair *pr = pair_new(false);
	sqlite3 *local = open_db(pr->r_path);
	char sql[256];
	uint32_t mx;
	int64_t size;

	pair_commitf(pr, INSERT_ROWS, 10);
	mx = shm_header(pr->r).max_frame;
	snprintf(sql, sizeof sql,
		 "PRAGMA cache_size=10; BEGIN; " INSERT_ROWS "; ROLLBACK", 500);
	fixture_exec(local, sql);
	size = wal_size(pr->r);
	ck_assert_int_gt(size,
			 (int64_t)walfmt_frame_offset(mx + 100, PAGE_SIZE));
	ck_assert_uint_eq(shm_header(pr->r).max_frame, mx);
	pair_commitf(pr, INSERT_ROWS, 20);
	ck_assert_uint_eq(pr->r_first, mx + 1);
	assert_hash_blocks(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	sqlite3_close(local);
	pair_free(pr);
}
END_TEST

/* ---- The batch ---- */

static const uint8_t zero_page[PAGE_SIZE];

/* An earlier image of a page in the same batch is superseded. */
START_TEST(test_duplicates_last_wins)
{
	struct pair *pr = pair_new(false);
	struct wal_page *pages;
	struct batch b;
	char *msg = NULL;
	uint32_t mx;
	size_t i;

	pair_commitf(pr, INSERT_ROWS, 10);
	fixture_exec(pr->p, "UPDATE acc SET bal = bal + 1; "
			    "INSERT INTO t(v) VALUES (randomblob(9000))");
	pair_extract(pr, &b);
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
	mx = shm_header(pr->r).max_frame;
	ck_assert_int_eq(
	    inject_into(pr->r, NULL, pages, 2 * b.n + 1, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_uint_eq(shm_header(pr->r).max_frame, mx + b.n);
	assert_hash_blocks(pr->r);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	free(pages);
	batch_free(&b);
	pair_free(pr);
}
END_TEST

START_TEST(test_drops_pages_beyond_db_size)
{
	struct pair *pr = pair_new(false);
	struct wal_page *pages;
	struct batch b;
	char *msg = NULL;
	uint32_t mx;

	pair_commitf(pr, INSERT_ROWS, 10);
	fixture_exec(pr->p, "UPDATE acc SET bal = bal + 1");
	pair_extract(pr, &b);
	pages = calloc(b.n + 2, sizeof *pages);
	pages[0].pgno = b.db_size + 1;
	pages[0].data = zero_page;
	memcpy(pages + 1, b.pages, b.n * sizeof *pages);
	pages[b.n + 1].pgno = b.db_size + 100;
	pages[b.n + 1].data = zero_page;
	mx = shm_header(pr->r).max_frame;
	ck_assert_int_eq(
	    inject_into(pr->r, NULL, pages, b.n + 2, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_uint_eq(shm_header(pr->r).max_frame, mx + b.n);
	ck_assert_uint_eq(shm_header(pr->r).n_page, b.db_size);
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	free(pages);
	batch_free(&b);
	pair_free(pr);
}
END_TEST

/* A refused batch publishes nothing and leaves no lock behind. */
static void assert_refused(struct pair *pr, const struct wal_inject_opts *opts,
			   const struct wal_page *pages, size_t n,
			   uint32_t db_size, int code, const char *needle)
{
	uint8_t before[96], after[96];
	int64_t size = wal_size(pr->r);
	char *msg = NULL;
	sqlite3 *other;

	memcpy(before, (const void *)shm_region(pr->r, 0), sizeof before);
	ck_assert_int_eq(inject_into(pr->r, opts, pages, n, db_size, &msg),
			 code);
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' lacks '%s'",
		      msg, needle);
	sqlite3_free(msg);
	memcpy(after, (const void *)shm_region(pr->r, 0), sizeof after);
	ck_assert_int_eq(memcmp(before, after, sizeof before), 0);
	ck_assert_int_eq(wal_size(pr->r), size);
	other = open_db(pr->r_path);
	sqlite3_busy_timeout(other, 0);
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	sqlite3_close(other);
}

START_TEST(test_refuses_bad_batches)
{
	struct pair *pr = pair_new(false);
	struct wal_inject_opts small = {NULL, 0, 1024};
	struct wal_page page = {1, zero_page};
	struct wal_page bad[2] = {{1, zero_page}, {0, zero_page}};
	struct wal_page pending[2] = {{1, zero_page},
				      {PENDING_PAGE, zero_page}};

	pair_commitf(pr, INSERT_ROWS, 10);
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
	pair_commitf(pr, INSERT_ROWS, 3);
	pair_assert_same_content(pr);
	pair_free(pr);
}
END_TEST

START_TEST(test_requires_write_transaction)
{
	struct pair *pr = pair_new(false);
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
	pair_free(pr);
}
END_TEST

/* A batch that only shrinks the database: after a checkpoint R's file has
 * P's size. */
START_TEST(test_shrinking_batch)
{
	struct pair *pr = pair_new(false);
	uint32_t big;

	pair_commitf(pr, INSERT_ROWS, 300);
	big = shm_header(pr->r).n_page;
	pair_commit(pr, "DELETE FROM t WHERE id > 50");
	pair_commit_bare(pr, "VACUUM");
	ck_assert_uint_lt(shm_header(pr->r).n_page, big / 4);
	ck_assert_uint_eq(shm_header(pr->r).n_page, shm_header(pr->p).n_page);
	pair_assert_same_content(pr);
	checkpoint_fully(pr->p2, "TRUNCATE");
	checkpoint_fully(pr->r2, "TRUNCATE");
	ck_assert_int_eq(handle_size(file_of(pr->r, SQLITE_FCNTL_FILE_POINTER)),
			 (int64_t)shm_header(pr->p).n_page * PAGE_SIZE);
	pair_compare_db_files(pr);
	pair_free(pr);
}
END_TEST

START_TEST(test_lock_released)
{
	struct pair *pr = pair_new(false);
	sqlite3 *other = open_db(pr->r_path);

	sqlite3_busy_timeout(other, 0);
	pair_commitf(pr, INSERT_ROWS, 3);
	fixture_exec(other,
		     "BEGIN IMMEDIATE; INSERT INTO loc VALUES (1); COMMIT");
	checkpoint_fully(pr->r2, "PASSIVE");
	pair_commit(pr, "DELETE FROM loc");
	fixture_exec(other, "BEGIN IMMEDIATE; ROLLBACK");
	checkpoint_fully(other, "TRUNCATE");
	sqlite3_close(other);
	pair_free(pr);
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
	struct pair *pr = pair_new(false);
	struct wal_inject_opts opts = {counting_unwrap, 1, 0};
	struct batch b;
	char *msg = NULL;

	fixture_exec(pr->p, "INSERT INTO loc VALUES (42)");
	pair_extract(pr, &b);
	ck_assert_int_eq(
	    inject_into(pr->r, &opts, b.pages, b.n, b.db_size, &msg),
	    SQLITE_OK);
	ck_assert_int_eq(unwrap_calls, 2);
	batch_free(&b);
	pair_assert_same_content(pr);
	pair_free(pr);
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
	struct pair *pr = pair_new(false);
	struct reader_arg args[2];
	pthread_t threads[2];
	volatile int stop = 0;
	unsigned seed = 42;
	sqlite3 *ckpt = open_db(pr->r_path);
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
		pair_commit(pr, sql);
		if (i % 20 == 19) {
			checkpoint(ckpt, i % 60 == 59 ? "TRUNCATE" : "PASSIVE",
				   r);
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
	pair_assert_same_content(pr);
	assert_crash_copy_equal(pr->r, pr->dir);
	pair_free(pr);
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
	tcase_add_test(tc, test_inject_after_truncate);
	tcase_add_test(tc, test_inject_after_restart);
	tcase_add_test(tc, test_injector_restarts_wal);
	tcase_add_test(tc, test_reader_in_wal_blocks_restart);
	tcase_add_test(tc, test_restart_under_read0_reader);
	tcase_add_test(tc, test_own_wal_snapshot_blocks_restart);
	tcase_add_test(tc, test_big_endian_wal);
	tcase_add_test(tc, test_leftover_hash_entries);
	tcase_add_test(tc, test_after_spilled_rollback);
	tcase_add_test(tc, test_duplicates_last_wins);
	tcase_add_test(tc, test_drops_pages_beyond_db_size);
	tcase_add_test(tc, test_refuses_bad_batches);
	tcase_add_test(tc, test_requires_write_transaction);
	tcase_add_test(tc, test_shrinking_batch);
	tcase_add_test(tc, test_lock_released);
	tcase_add_test(tc, test_unwrap_applied);
	tcase_add_test(tc, test_concurrent_readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--spill-and-die") == 0) {
		return spill_and_die(argv[2], atoi(argv[3]));
	}
	return fixture_run(inject_suite());
}
