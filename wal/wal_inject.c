#include "wal_inject_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal/walfmt.h"

/* SQLite's default PENDING_BYTE: the page holding it is never written. */
#define PENDING_BYTE 0x40000000u

int wal_inject_fail(struct injector *inj, int rc, const char *fmt, ...)
{
	va_list ap;

	assert(rc != SQLITE_OK);
	if (inj->errmsg != NULL) {
		sqlite3_free(*inj->errmsg);
		va_start(ap, fmt);
		*inj->errmsg = sqlite3_vmprintf(fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void salts_as_words(const struct wal_index_hdr *h, uint32_t salt[2])
{
	salt[0] = walfmt_get32(h->salt);
	salt[1] = walfmt_get32(h->salt + 4);
}

/* ---- The connection and its files ---- */

static int query_text(struct injector *inj, const char *sql, char *out,
		      size_t out_len)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *text;
	int rc;

	rc = sqlite3_prepare_v2(inj->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		rc = wal_inject_fail(inj, rc, "%s: %s", sql,
				     sqlite3_errmsg(inj->db));
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		rc = wal_inject_fail(inj, rc == SQLITE_DONE ? SQLITE_ERROR : rc,
				     "%s: %s", sql, sqlite3_errmsg(inj->db));
		goto out;
	}
	text = sqlite3_column_text(stmt, 0);
	snprintf(out, out_len, "%s", text != NULL ? (const char *)text : "");
	rc = SQLITE_OK;
out:
	sqlite3_finalize(stmt);
	return rc;
}

/* The injector can only stand in for a writer of a WAL-mode database whose
 * wal-index lives in the shared -shm file (not in heap memory, as with
 * locking_mode=EXCLUSIVE), and only while that connection holds the write
 * lock with a fresh snapshot, which BEGIN IMMEDIATE guarantees. */
static int in_write_transaction(sqlite3 *db)
{
	/* sqlite3_txn_state (3.34) asks exactly this; an older host's
	 * routines table has no such entry (calling it jumps to garbage), so
	 * there ask whether a transaction is open at all: the callers open
	 * theirs with BEGIN IMMEDIATE, the only way they ever open one. */
	if (sqlite3_libversion_number() >= 3034000)
		return sqlite3_txn_state(db, "main") == SQLITE_TXN_WRITE;
	return !sqlite3_get_autocommit(db);
}

static int check_connection(struct injector *inj)
{
	char mode[32];
	int rc;

	if (!in_write_transaction(inj->db)) {
		return wal_inject_fail(inj, SQLITE_MISUSE,
				       "not in a write transaction on main "
				       "(BEGIN IMMEDIATE first)");
	}
	rc = query_text(inj, "PRAGMA main.journal_mode", mode, sizeof mode);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (strcmp(mode, "wal") != 0) {
		return wal_inject_fail(
		    inj, SQLITE_MISUSE,
		    "database is not in WAL mode (journal_mode=%s)", mode);
	}
	rc = query_text(inj, "PRAGMA main.locking_mode", mode, sizeof mode);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (strcmp(mode, "normal") != 0) {
		return wal_inject_fail(
		    inj, SQLITE_MISUSE,
		    "locking_mode=%s is not supported: the wal-index "
		    "must be shared",
		    mode);
	}
	return SQLITE_OK;
}

static int get_file(struct injector *inj, int op, wal_inject_unwrap_fn unwrap,
		    const char *what, sqlite3_file **out)
{
	sqlite3_file *f = NULL;
	int rc;

	rc = sqlite3_file_control(inj->db, "main", op, &f);
	if (rc != SQLITE_OK || f == NULL) {
		return wal_inject_fail(inj, rc != SQLITE_OK ? rc : SQLITE_ERROR,
				       "no %s file handle", what);
	}
	if (unwrap != NULL) {
		f = unwrap(f);
	}
	if (f == NULL || f->pMethods == NULL) {
		return wal_inject_fail(inj, SQLITE_MISUSE,
				       "the %s file is not open", what);
	}
	*out = f;
	return SQLITE_OK;
}

/* Restarting the WAL is only safe if this connection reads through READ(0)
 * (it has no frame of the WAL in its snapshot).  SQLite keeps that in its
 * private Wal object; we prove it instead with the restart's own lock:
 * unixShmLock() refuses an exclusive lock on READ(1..4) with SQLITE_BUSY
 * while any connection of the process -- this one included -- holds one of
 * them, so if the lock is granted our read lock must be READ(0).  Other VFSes
 * make no such promise, so they never restart (callers checkpoint with
 * TRUNCATE instead). */
static bool vfs_proves_read_lock(sqlite3_file *db_file)
{
	char *name = NULL;
	bool unix_vfs;

	if (db_file->pMethods->xFileControl(db_file, SQLITE_FCNTL_VFSNAME,
					    &name) != SQLITE_OK ||
	    name == NULL) {
		return false;
	}
	unix_vfs = strncmp(name, "unix", 4) == 0 &&
		   (name[4] == '\0' || name[4] == '-');
	sqlite3_free(name);
	return unix_vfs;
}

static int open_files(struct injector *inj, wal_inject_unwrap_fn unwrap)
{
	int rc;

	rc = get_file(inj, SQLITE_FCNTL_FILE_POINTER, unwrap, "database",
		      &inj->db_file);
	if (rc != SQLITE_OK) {
		return rc;
	}
	/* In WAL mode this is the WAL, opened with the pager's WAL. */
	rc = get_file(inj, SQLITE_FCNTL_JOURNAL_POINTER, unwrap, "WAL",
		      &inj->wal_file);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (inj->db_file->pMethods->iVersion < 2 ||
	    inj->db_file->pMethods->xShmMap == NULL) {
		return wal_inject_fail(
		    inj, SQLITE_MISUSE,
		    "the database file has no shared-memory methods");
	}
	inj->may_restart = vfs_proves_read_lock(inj->db_file);
	return SQLITE_OK;
}

/* ---- The WAL file ---- */

/* The current WAL header, if the file holds a complete one. */
static int read_wal_header(struct injector *inj, uint8_t buf[WALFMT_HDR_SIZE],
			   bool *present)
{
	const sqlite3_io_methods *m = inj->wal_file->pMethods;
	sqlite3_int64 size = 0;
	int rc;

	*present = false;
	rc = m->xFileSize(inj->wal_file, &size);
	if (rc != SQLITE_OK) {
		return wal_inject_fail(inj, rc, "cannot stat the WAL");
	}
	if (size < WALFMT_HDR_SIZE) {
		return SQLITE_OK;
	}
	rc = m->xRead(inj->wal_file, buf, WALFMT_HDR_SIZE, 0);
	if (rc != SQLITE_OK) {
		return wal_inject_fail(inj, rc, "cannot read the WAL header");
	}
	*present = true;
	return SQLITE_OK;
}

static int write_wal(struct injector *inj, const void *buf, int len,
		     sqlite3_int64 off)
{
	int rc;

	rc = inj->wal_file->pMethods->xWrite(inj->wal_file, buf, len, off);
	if (rc != SQLITE_OK) {
		return wal_inject_fail(inj, rc,
				       "cannot write the WAL at offset %lld",
				       (long long)off);
	}
	return SQLITE_OK;
}

static int sync_wal(struct injector *inj)
{
	int rc;

	rc = inj->wal_file->pMethods->xSync(inj->wal_file, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		return wal_inject_fail(inj, rc, "cannot sync the WAL");
	}
	return SQLITE_OK;
}

/* walRestartLog(): when every frame is already in the database file and no
 * reader uses the WAL, start it over instead of appending.  SQLite only
 * tries when its own read lock is READ(0), i.e. nBackfill == mxFrame. */
static int maybe_restart(struct injector *inj)
{
	const int flags_lock = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE;
	const int flags_unlock = SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE;
	sqlite3_file *f = inj->db_file;
	uint8_t wal_hdr[WALFMT_HDR_SIZE];
	uint8_t salt2[4];
	bool present;
	uint32_t backfilled;
	int rc;

	backfilled =
	    __atomic_load_n((uint32_t *)&wal_inject_ckpt_info(inj)->n_backfill,
			    __ATOMIC_RELAXED);
	if (!inj->may_restart || inj->hdr.max_frame == 0 ||
	    backfilled != inj->hdr.max_frame) {
		return SQLITE_OK;
	}
	/* nCkpt lives in SQLite's private Wal object; the file's header is
	 * the best record of it (mxFrame > 0, so there is one). */
	rc = read_wal_header(inj, wal_hdr, &present);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (!present) {
		return wal_inject_fail(inj, SQLITE_CORRUPT,
				       "WAL has frames but no header");
	}
	/* Drawn before the lock, as SQLite does, so a test can replay the
	 * PRNG and get SQLite's very salts. */
	sqlite3_randomness(sizeof salt2, salt2);
	rc = f->pMethods->xShmLock(f, WAL_INDEX_READ_LOCK(1),
				   WAL_INDEX_NREADER - 1, flags_lock);
	if (rc == SQLITE_BUSY) {
		return SQLITE_OK; /* a reader uses the WAL: append */
	}
	if (rc != SQLITE_OK) {
		return wal_inject_fail(inj, rc,
				       "cannot lock the wal-index read slots");
	}
	wal_inject_restart_header(inj, salt2);
	f->pMethods->xShmLock(f, WAL_INDEX_READ_LOCK(1), WAL_INDEX_NREADER - 1,
			      flags_unlock);
	inj->restarted = true;
	inj->ckpt_seq = walfmt_get32(wal_hdr + 12) + 1;
	return SQLITE_OK;
}

/* The first frame of a WAL needs a header.  After our own restart it takes
 * the restart's salts and sequence number.  Otherwise (a new WAL, or one that
 * a RESTART/TRUNCATE checkpoint reset) we behave as a SQLite connection that
 * has not restarted the WAL itself: sequence 0 and random salts, which must
 * differ from those of the header still in the file, or that file's old
 * frames could pass for ours in recovery. */
static int write_wal_header(struct injector *inj)
{
	uint8_t old[WALFMT_HDR_SIZE], buf[WALFMT_HDR_SIZE];
	struct walfmt_header h;
	bool present;
	int rc;

	assert(inj->hdr.max_frame == 0);
	if (!inj->restarted) {
		rc = read_wal_header(inj, old, &present);
		if (rc != SQLITE_OK) {
			return rc;
		}
		inj->ckpt_seq = 0;
		do {
			sqlite3_randomness(sizeof inj->hdr.salt, inj->hdr.salt);
		} while (present && memcmp(inj->hdr.salt, old + 16, 8) == 0);
	}
	h.magic = WALFMT_MAGIC_LE | WAL_INDEX_HOST_BIG_ENDIAN;
	h.page_size = inj->page_size;
	h.ckpt_seq = inj->ckpt_seq;
	salts_as_words(&inj->hdr, h.salt);
	walfmt_header_encode(&h, buf);
	inj->hdr.big_end_cksum = WAL_INDEX_HOST_BIG_ENDIAN;
	inj->hdr.frame_cksum[0] = h.cksum[0];
	inj->hdr.frame_cksum[1] = h.cksum[1];
	rc = write_wal(inj, buf, WALFMT_HDR_SIZE, 0);
	if (rc != SQLITE_OK) {
		return rc;
	}
	/* SQLite syncs a new header at any synchronous level but OFF: frames
	 * written after a restart must not reach the disk before it. */
	return sync_wal(inj);
}

/* Frames at mxFrame + 1..., each as SQLite writes it: the 24-byte header,
 * then the page.  The checksum chain continues in hdr.frame_cksum in the
 * byte order the WAL was created with, which need not be the host's. */
static int write_frames(struct injector *inj, const struct frame_plan *plan,
			size_t n, uint32_t db_size)
{
	uint8_t fh[WALFMT_FRAME_HDR_SIZE];
	uint32_t salt[2];
	sqlite3_int64 off;
	size_t i;
	int rc;

	salts_as_words(&inj->hdr, salt);
	off = (sqlite3_int64)walfmt_frame_offset(inj->hdr.max_frame + 1,
						 inj->page_size);
	for (i = 0; i < n; i++) {
		uint32_t commit = i + 1 == n ? db_size : 0;

		walfmt_frame_encode(inj->hdr.big_end_cksum, salt,
				    inj->hdr.frame_cksum, plan[i].pgno, commit,
				    plan[i].data, inj->page_size, fh);
		rc = write_wal(inj, fh, sizeof fh, off);
		if (rc != SQLITE_OK) {
			return rc;
		}
		rc = write_wal(inj, plan[i].data, (int)inj->page_size,
			       off + WALFMT_FRAME_HDR_SIZE);
		if (rc != SQLITE_OK) {
			return rc;
		}
		off += WALFMT_FRAME_HDR_SIZE + inj->page_size;
	}
	return SQLITE_OK;
}

/* ---- The batch ---- */

/* After recovery of an empty WAL the header holds no page size; the pager's
 * is the database's then. */
static int check_page_size(struct injector *inj)
{
	char text[32];
	uint32_t wal_size = wal_index_decode_page_size(inj->hdr.page_size);
	int rc;

	if (wal_size == 0) {
		rc =
		    query_text(inj, "PRAGMA main.page_size", text, sizeof text);
		if (rc != SQLITE_OK) {
			return rc;
		}
		wal_size = (uint32_t)strtoul(text, NULL, 10);
	}
	if (wal_size != inj->page_size) {
		return wal_inject_fail(inj, SQLITE_MISUSE,
				       "page size mismatch: WAL %u, batch %u",
				       wal_size, inj->page_size);
	}
	return SQLITE_OK;
}

struct page_ref {
	uint32_t pgno;
	size_t idx;
};

static int cmp_page_ref(const void *a, const void *b)
{
	const struct page_ref *x = a, *y = b;

	if (x->pgno != y->pgno) {
		return x->pgno < y->pgno ? -1 : 1;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_pages(struct injector *inj, const struct wal_page *pages,
		       size_t n, uint32_t db_size)
{
	uint32_t pending = PENDING_BYTE / inj->page_size + 1;
	size_t i;

	if (db_size == 0) {
		return wal_inject_fail(inj, SQLITE_MISUSE, "database size 0");
	}
	for (i = 0; i < n; i++) {
		if (pages[i].pgno == 0) {
			return wal_inject_fail(inj, SQLITE_CORRUPT,
					       "page number 0 in the batch");
		}
		if (pages[i].pgno > db_size) {
			continue; /* dropped: beyond the new end */
		}
		if (pages[i].pgno == pending) {
			return wal_inject_fail(
			    inj, SQLITE_CORRUPT,
			    "page %u is the pending-byte page", pages[i].pgno);
		}
		if (pages[i].data == NULL) {
			return wal_inject_fail(inj, SQLITE_MISUSE,
					       "page %u has no data",
					       pages[i].pgno);
		}
	}
	return SQLITE_OK;
}

/* One frame per page of at most db_size: the last image of a page, at the
 * place of its first occurrence (as SQLite overwrites a spilled frame in
 * place).  *out is sqlite3_malloc'd. */
static int plan_frames(struct injector *inj, const struct wal_page *pages,
		       size_t n, uint32_t db_size, struct frame_plan **out,
		       size_t *n_out)
{
	struct page_ref *refs = NULL;
	size_t *last = NULL; /* by first occurrence: index of the last */
	struct frame_plan *plan = NULL;
	size_t i, j, n_refs = 0, n_plan = 0;
	int rc = SQLITE_NOMEM;

	refs = sqlite3_malloc64((n + 1) * sizeof *refs);
	last = sqlite3_malloc64((n + 1) * sizeof *last);
	plan = sqlite3_malloc64((n + 1) * sizeof *plan);
	if (refs == NULL || last == NULL || plan == NULL) {
		rc = wal_inject_fail(inj, SQLITE_NOMEM, "out of memory");
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		last[i] = SIZE_MAX;
		if (pages[i].pgno <= db_size) {
			refs[n_refs].pgno = pages[i].pgno;
			refs[n_refs].idx = i;
			n_refs++;
		}
	}
	qsort(refs, n_refs, sizeof *refs, cmp_page_ref);
	for (i = 0; i < n_refs; i = j) {
		for (j = i + 1; j < n_refs && refs[j].pgno == refs[i].pgno;
		     j++) {
		}
		last[refs[i].idx] = refs[j - 1].idx;
	}
	for (i = 0; i < n; i++) {
		if (last[i] != SIZE_MAX) {
			plan[n_plan].pgno = pages[i].pgno;
			plan[n_plan].data = pages[last[i]].data;
			n_plan++;
		}
	}
	if (n_plan == 0) {
		/* SQLite commits at least one frame; callers always send page
		 * 1, whose change counter moves with every transaction. */
		rc = wal_inject_fail(
		    inj, SQLITE_MISUSE,
		    "no page of the batch is within the database size %u",
		    db_size);
		goto cleanup;
	}
	*out = plan;
	*n_out = n_plan;
	plan = NULL;
	rc = SQLITE_OK;
cleanup:
	sqlite3_free(refs);
	sqlite3_free(last);
	sqlite3_free(plan);
	return rc;
}

/* ---- The whole injection ---- */

static int publish_batch(struct injector *inj, const struct frame_plan *plan,
			 size_t n, uint32_t db_size)
{
	int rc;

	rc = maybe_restart(inj);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (inj->hdr.max_frame == 0) {
		rc = write_wal_header(inj);
		if (rc != SQLITE_OK) {
			return rc;
		}
	}
	rc = wal_inject_clean_leftover_hash(inj);
	if (rc != SQLITE_OK) {
		return rc;
	}
	rc = write_frames(inj, plan, n, db_size);
	if (rc != SQLITE_OK) {
		return rc;
	}
	/* Durable before visible: once published, a crash must keep it. */
	if (inj->sync) {
		rc = sync_wal(inj);
		if (rc != SQLITE_OK) {
			return rc;
		}
	}
	rc = wal_inject_append_index(inj, plan, n);
	if (rc != SQLITE_OK) {
		return rc;
	}
	inj->hdr.page_size = wal_index_encode_page_size(inj->page_size);
	inj->hdr.max_frame += (uint32_t)n;
	inj->hdr.n_page = db_size;
	inj->hdr.change++; /* readers' caches compare the header */
	wal_inject_publish_header(inj);
	return SQLITE_OK;
}

int wal_inject(sqlite3 *db, const struct wal_inject_opts *opts,
	       const struct wal_page *pages, size_t n_pages, uint32_t db_size,
	       char **errmsg)
{
	struct injector inj = {0};
	struct frame_plan *plan = NULL;
	size_t n_plan = 0;
	int rc;

	if (errmsg != NULL) {
		*errmsg = NULL;
	}
	inj.db = db;
	inj.errmsg = errmsg;
	inj.sync = opts != NULL && opts->sync;
	inj.page_size = opts != NULL && opts->page_size != 0 ? opts->page_size
							     : WALFMT_PAGE_SIZE;
	if (db == NULL || (pages == NULL && n_pages > 0)) {
		return wal_inject_fail(&inj, SQLITE_MISUSE,
				       "no connection or no pages");
	}
	if (inj.page_size < 512 || inj.page_size > 65536 ||
	    (inj.page_size & (inj.page_size - 1)) != 0) {
		return wal_inject_fail(&inj, SQLITE_MISUSE,
				       "invalid page size %u", inj.page_size);
	}
	rc = check_connection(&inj);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = open_files(&inj, opts != NULL ? opts->unwrap : NULL);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = wal_inject_read_index_header(&inj);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = check_page_size(&inj);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = check_pages(&inj, pages, n_pages, db_size);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = plan_frames(&inj, pages, n_pages, db_size, &plan, &n_plan);
	if (rc != SQLITE_OK) {
		goto cleanup;
	}
	rc = publish_batch(&inj, plan, n_plan, db_size);
cleanup:
	sqlite3_free(plan);
	return rc;
}

/* The setup of the calls below: the connection checked and its files
 * found. */
static int open_injector(struct injector *inj, sqlite3 *db,
			 wal_inject_unwrap_fn unwrap, char **errmsg)
{
	int rc;

	if (errmsg != NULL) {
		*errmsg = NULL;
	}
	inj->db = db;
	inj->errmsg = errmsg;
	rc = check_connection(inj);
	if (rc == SQLITE_OK) {
		rc = open_files(inj, unwrap);
	}
	return rc;
}

int wal_inject_position(sqlite3 *db, wal_inject_unwrap_fn unwrap,
			struct wal_position *out, char **errmsg)
{
	struct injector inj = {0};
	int rc;

	rc = open_injector(&inj, db, unwrap, errmsg);
	if (rc == SQLITE_OK) {
		rc = wal_inject_read_index_header(&inj);
	}
	if (rc != SQLITE_OK) {
		return rc;
	}
	out->frames = inj.hdr.max_frame;
	memcpy(out->salt, inj.hdr.salt, sizeof out->salt);
	return SQLITE_OK;
}

int wal_inject_sync(sqlite3 *db, wal_inject_unwrap_fn unwrap, char **errmsg)
{
	struct injector inj = {0};
	int rc;

	rc = open_injector(&inj, db, unwrap, errmsg);
	if (rc == SQLITE_OK) {
		rc = sync_wal(&inj);
	}
	return rc;
}
