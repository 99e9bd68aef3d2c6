#include "applier_internal.h"

#include "sync/checksum.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "wal/walfmt.h"
#include "wal/wal_inject.h"

static int exec_sql(struct applier *a, const char *sql, char *err,
		    size_t err_len)
{
	char *msg = NULL;
	int rc = sqlite3_exec(a->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "%s on the local database %s: %s", sql,
			   a->db_path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Like exec_sql, retrying while the database is locked: changing the
 * journal mode of a new file returns SQLITE_BUSY at once, without the busy
 * handler, when another process opens it at the same moment. */
static int exec_retrying(struct applier *a, const char *sql, char *err,
			 size_t err_len)
{
	int waited_ms = 0, rc;

	for (;;) {
		rc = sqlite3_exec(a->db, sql, NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY ||
		    waited_ms >= APPLIER_BUSY_TIMEOUT_MS)
			break;
		sqlite3_sleep(10);
		waited_ms += 10;
	}
	if (rc == SQLITE_OK)
		return 0;
	return exec_sql(a, sql, err, err_len);
}

int applier_query_int(struct applier *a, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* the emptiness check, through the VFS (a raw close() would drop the
 * process's POSIX locks on the file) */

static int read_through_vfs(sqlite3_vfs *vfs, const char *path, void *buf,
			    int amt, sqlite3_int64 *size)
{
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
	int out_flags = 0, rc;

	*size = -1;
	if (f == NULL)
		return SQLITE_NOMEM;
	rc = vfs->xOpen(vfs, path, f,
			SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READONLY, &out_flags);
	if (rc == SQLITE_OK) {
		rc = f->pMethods->xFileSize(f, size);
		if (rc == SQLITE_OK)
			rc = f->pMethods->xRead(f, buf, amt, 0);
		if (rc == SQLITE_IOERR_SHORT_READ)
			rc = SQLITE_OK;
	}
	if (f->pMethods != NULL)
		f->pMethods->xClose(f);
	free(f);
	return rc;
}

int applier_file_is_empty(const char *db_path, const char *vfs_name, char *err,
			  size_t err_len)
{
	sqlite3_vfs *vfs = sqlite3_vfs_find(vfs_name);
	uint8_t page1[512] = {0};
	char *wal_path = NULL;
	sqlite3_int64 size = -1, wal_size = -1;
	struct stat wst;
	int exists = 0, rc;
	uint32_t page_size;

	if (vfs->xAccess(vfs, db_path, SQLITE_ACCESS_EXISTS, &exists) !=
		SQLITE_OK ||
	    !exists)
		return 1;
	rc = read_through_vfs(vfs, db_path, page1, sizeof page1, &size);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot read %s: %s", db_path,
			   sqlite3_errstr(rc));
		return -1;
	}
	/* stat() is harmless: no lock lives on the -wal file itself. */
	wal_path = sqlite3_mprintf("%s-wal", db_path);
	if (wal_path == NULL)
		return -1;
	if (stat(wal_path, &wst) == 0)
		wal_size = wst.st_size;
	sqlite3_free(wal_path);
	if (wal_size > WALFMT_HDR_SIZE)
		return 0; /* frames in a WAL: data, maybe committed */
	if (size == 0)
		return 1;
	page_size = (uint32_t)page1[16] << 8 | page1[17];
	if (page_size == 1)
		page_size = 65536;
	/* One page, a table b-tree leaf (0x0d) with no cells: an empty
	 * schema, as left by setting the page size and WAL mode. */
	return memcmp(page1, "SQLite format 3", 16) == 0 &&
	       size == (sqlite3_int64)page_size && page1[100] == 0x0d &&
	       page1[103] == 0 && page1[104] == 0;
}

/* ---------------------------------------------------------------------- */
/* open / close */

/* The internal connection's busy handler: try again every millisecond for
 * APPLIER_BUSY_TIMEOUT_MS (SQLite's own sleeps up to 100 ms between tries,
 * and loses every time to a writer that takes the lock again at once).
 * lock_waiters tells offline writers to let it through (see
 * applier_lock_wanted). */
static int busy_retry(void *arg, int count)
{
	(void)arg;
	if (count >= APPLIER_BUSY_TIMEOUT_MS)
		return 0;
	sqlite3_sleep(1);
	return 1;
}

int applier_lock_wanted(struct applier *a)
{
	return __atomic_load_n(&a->lock_waiters, __ATOMIC_RELAXED) > 0;
}

int applier_open(const char *db_path, const char *vfs_name, uint32_t page_size,
		 struct applier **out, char *err, size_t err_len)
{
	struct applier *a = calloc(1, sizeof *a);
	char sql[64];
	int64_t v = 0;
	int rc;

	if (a == NULL)
		goto oom;
	pthread_mutex_init(&a->ob_mu, NULL);
	a->page_size = page_size;
	a->db_path = strdup(db_path);
	a->state_path = replica_state_path(db_path);
	a->vfs_name = vfs_name != NULL ? strdup(vfs_name) : NULL;
	if (a->db_path == NULL || a->state_path == NULL ||
	    (vfs_name != NULL && a->vfs_name == NULL))
		goto oom;
	rc = sqlite3_open_v2(db_path, &a->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_FULLMUTEX,
			     vfs_name);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot open the local database %s: %s", db_path,
			   a->db ? sqlite3_errmsg(a->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_handler(a->db, busy_retry, a);
	snprintf(sql, sizeof sql, "PRAGMA page_size=%u", page_size);
	if (exec_retrying(a, sql, err, err_len) != 0 ||
	    exec_retrying(a, "PRAGMA journal_mode=WAL", err, err_len) != 0)
		goto fail;
	rc = sqlite3_open_v2(db_path, &a->reader,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
			     vfs_name);
	/* A first read opens its WAL and wal-index, which stay open. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(a->reader,
				  "SELECT count(*) FROM sqlite_master", NULL,
				  NULL, NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot open the local database %s: %s", db_path,
			   a->reader ? sqlite3_errmsg(a->reader)
				     : sqlite3_errstr(rc));
		goto fail;
	}
	if (applier_query_int(a, "PRAGMA page_size", &v) != SQLITE_OK ||
	    v != (int64_t)page_size) {
		errors_set(
		    err, err_len,
		    "the local database %s has pages of %lld bytes, but "
		    "the primary's have %u bytes: it is not a replica of "
		    "this primary",
		    db_path, (long long)v, page_size);
		goto fail;
	}
	*out = a;
	return 0;
oom:
	errors_set(err, err_len, "out of memory opening %s", db_path);
fail:
	applier_close(a);
	return -1;
}

void applier_close(struct applier *a)
{
	if (a == NULL)
		return;
	sqlite3_close_v2(a->reader);
	sqlite3_close_v2(a->db);
	if (a->outbox != NULL)
		outbox_close(a->outbox);
	free(a->ob_entries);
	replica_state_free(&a->st_cache);
	replica_state_free(&a->push_st);
	replica_state_free(&a->push_file);
	pthread_mutex_destroy(&a->ob_mu);
	free(a->vfs_name);
	free(a->db_path);
	free(a->state_path);
	free(a);
}

/* ---------------------------------------------------------------------- */
/* the sync lock */

/* Take the WAL write lock through the internal connection.  BEGIN
 * IMMEDIATE also opens a fresh snapshot, so the wal-index header the
 * injector reads is the latest and stays put. */
int applier_lock_begin(struct applier *a, char *err, size_t err_len)
{
	return applier_lock_begin_on(a, a->db, err, err_len);
}

int applier_lock_begin_on(struct applier *a, sqlite3 *db, char *err,
			  size_t err_len)
{
	int rc;

	if (db != a->db)
		sqlite3_busy_handler(db, busy_retry, a);
	__atomic_add_fetch(&a->lock_waiters, 1, __ATOMIC_RELAXED);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	__atomic_sub_fetch(&a->lock_waiters, 1, __ATOMIC_RELAXED);

	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_BUSY)
		errors_set(err, err_len,
			   "the local database %s stayed locked by another "
			   "writer for %d ms; the sync will be retried",
			   a->db_path, APPLIER_BUSY_TIMEOUT_MS);
	else
		errors_set(err, err_len,
			   "cannot lock the local database %s for the sync: %s",
			   a->db_path, sqlite3_errmsg(db));
	return -1;
}

void applier_lock_end(struct applier *a)
{
	/* Nothing is dirty, so COMMIT writes nothing; it just releases the
	 * write lock.  ROLLBACK if COMMIT cannot. */
	if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
}

/* A replica is always in WAL mode: page 1 must say so (file format bytes
 * 18 and 19 = 2), whatever the primary's page 1 says, or a connection
 * opening the file after a checkpoint would use a rollback journal. */
static const uint8_t *wal_mode_page1(const uint8_t *page, uint32_t page_size,
				     uint8_t **copy)
{
	*copy = NULL;
	if (page[18] == 2 && page[19] == 2)
		return page;
	*copy = malloc(page_size);
	if (*copy == NULL)
		return NULL;
	memcpy(*copy, page, page_size);
	(*copy)[18] = 2;
	(*copy)[19] = 2;
	return *copy;
}

static int inject(struct applier *a, struct wal_page *pages, size_t n,
		  uint32_t db_size, int sync, char *err, size_t err_len)
{
	struct wal_inject_opts opts = {
	    .unwrap = NULL, .sync = sync, .page_size = a->page_size};
	uint8_t *page1_copy = NULL;
	char *msg = NULL;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (pages[i].pgno == 1) {
			pages[i].data = wal_mode_page1(
			    pages[i].data, a->page_size, &page1_copy);
			if (pages[i].data == NULL) {
				errors_set(err, err_len, "out of memory");
				return -1;
			}
		}
	}
	rc = wal_inject(a->db, &opts, pages, n, db_size, &msg);
	free(page1_copy);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot apply frames to the local database %s: %s",
			   a->db_path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int applier_inject(struct applier *a, struct wal_page *pages, size_t n,
		   uint32_t db_size, char *err, size_t err_len)
{
	return inject(a, pages, n, db_size, 1, err, err_len);
}

static int sync_wal(struct applier *a, char *err, size_t err_len)
{
	char *msg = NULL;
	int rc = wal_inject_sync(a->db, NULL, &msg);

	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot sync the WAL of %s: %s",
			   a->db_path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Was the local WAL written by something other than replite since the last
 * batch (a plain sqlite3 writing to the replica file)?  Then the file holds
 * pages the primary does not have: only a full image repairs it.  Not
 * decidable after an interrupted batch (frame_hwm > frame_no: its frames
 * may be there), nor once the WAL was checkpointed and reset. */
static int check_wal_unchanged(struct applier *a, struct replica_state *st,
			       char *err, size_t err_len)
{
	struct wal_position pos;
	char *msg = NULL;
	int rc;

	if (!st->wal_known || st->frame_hwm > st->frame_no)
		return 0;
	rc = wal_inject_position(a->db, NULL, &pos, &msg);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot read the WAL of %s: %s",
			   a->db_path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	if (pos.frames == 0 ||
	    (pos.frames == st->wal_frames &&
	     memcmp(pos.salt, st->wal_salt, sizeof pos.salt) == 0))
		return 0;
	st->bootstrapping = 1;
	if (applier_state_save(a, st, err, err_len) != 0)
		return -1;
	errors_set(err, err_len,
		   "the local file %s was written by something other than "
		   "replite (its WAL holds %u frames, replite left %u): it no "
		   "longer matches the primary and will be downloaded again",
		   a->db_path, pos.frames, st->wal_frames);
	return -1;
}

/* Remember where the WAL stands after a batch (see check_wal_unchanged). */
int applier_record_wal(struct applier *a, struct replica_state *st, char *err,
		       size_t err_len)
{
	struct wal_position pos;
	char *msg = NULL;
	int rc = wal_inject_position(a->db, NULL, &pos, &msg);

	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot read the WAL of %s: %s",
			   a->db_path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	st->wal_known = 1;
	st->wal_frames = pos.frames;
	memcpy(st->wal_salt, pos.salt, sizeof pos.salt);
	return 0;
}

/* The frames of b from index skip on, as pages for the injector, after the
 * old images of the local transactions dropped with them (the last image of
 * a page wins: the primary's). */
static struct wal_page *frames_to_pages(const struct applier_frames *b,
					uint32_t skip,
					const struct applier_drop *drop)
{
	struct wal_page *pages = calloc(drop->n + b->n - skip, sizeof *pages);
	uint32_t i;

	if (pages == NULL)
		return NULL;
	if (drop->n > 0)
		memcpy(pages, drop->pages, drop->n * sizeof *pages);
	for (i = skip; i < b->n; i++) {
		pages[drop->n + i - skip].pgno = b->frames[i].pgno;
		pages[drop->n + i - skip].data = b->frames[i].page;
	}
	return pages;
}

/* Where the batch b starts relative to the state st: the index of its first
 * frame after st->frame_no, which must follow a commit frame of b. */
static enum applier_result trim(const struct applier_frames *b,
				const struct replica_state *st, uint32_t *skip,
				char *err, size_t err_len)
{
	uint32_t end = b->first + b->span - 1; /* last frame of the batch */

	if (st->bootstrapping || st->generation != b->generation)
		return APPLIER_MOVED;
	if (st->frame_no >= end)
		return APPLIER_STALE;
	if (b->span != b->n && st->frame_no + 1 != b->first) {
		/* A squashed batch has no frame boundaries inside: it
		 * applies to exactly the state before it. */
		errors_set(err, err_len,
			   "a squashed batch of frames %u..%u of generation "
			   "%u does not follow the applied frame %u",
			   b->first, end, b->generation, st->frame_no);
		return APPLIER_MOVED;
	}
	if (st->frame_no + 1 < b->first) {
		errors_set(err, err_len,
			   "frames %u..%u of generation %u do not follow the "
			   "applied frame %u",
			   b->first, end, b->generation, st->frame_no);
		return APPLIER_MOVED;
	}
	*skip = st->frame_no + 1 - b->first;
	if (*skip > 0 && b->frames[*skip - 1].db_size == 0) {
		errors_set(err, err_len,
			   "the applied position %u of generation %u is not a "
			   "commit frame of the primary",
			   st->frame_no, b->generation);
		return APPLIER_ERROR;
	}
	if (end < st->frame_hwm)
		return APPLIER_NEED_MORE;
	return APPLIER_APPLIED;
}

struct known_sum {
	int known;
	uint64_t value;
};

/* The checksum after a batch, carried forward from the state's (when it
 * has one) over the old images in the local file, and checked against the
 * one the primary announced for the batch's last frame: a difference means
 * the local file holds pages the primary does not (a foreign write), so it
 * is marked for a full image and the batch is not applied. */
static int batch_checksum(struct applier *a, const struct applier_frames *b,
			  struct replica_state *st, struct known_sum base,
			  const struct wal_page *pages, size_t n,
			  struct known_sum *out, char *err, size_t err_len)
{
	uint32_t end = b->first + b->span - 1;
	char got[DBSUM_TEXT_SIZE], want[DBSUM_TEXT_SIZE];

	out->known = 0;
	if (base.known) {
		if (checksum_after(a->db, NULL, a->page_size, base.value, pages,
				   n, b->frames[b->n - 1].db_size, &out->value,
				   err, err_len) != 0)
			return -1;
		out->known = 1;
	}
	if (!b->has_expected || b->expected_frame != end)
		return 0;
	if (!out->known) {
		/* A state from before checksums: adopt the primary's. */
		out->value = b->expected;
		out->known = 1;
		return 0;
	}
	if (out->value == b->expected)
		return 0;
	dbsum_format(out->value, got);
	dbsum_format(b->expected, want);
	st->bootstrapping = 1;
	if (applier_state_save(a, st, err, err_len) != 0)
		return -1;
	errors_set(err, err_len,
		   "the local file %s differs from the primary: after frame %u "
		   "its checksum would be %s, the primary's is %s (something "
		   "other than replite wrote to it); it will be downloaded "
		   "again",
		   a->db_path, end, got, want);
	return -1;
}

enum applier_result applier_apply_frames(struct applier *a,
					 const struct applier_frames *b,
					 struct replica_state *st, char *err,
					 size_t err_len)
{
	uint32_t end = b->first + b->span - 1, skip = 0;
	enum applier_result res = APPLIER_ERROR;
	struct applier_drop drop = {0};
	struct wal_page *pages = NULL;
	struct known_sum sum = {0}, base;
	size_t n_pages;
	int loaded, dropping;

	assert(b->n >= 1 && b->frames[b->n - 1].db_size != 0);
	assert(b->span >= b->n);
	memset(st, 0, sizeof *st);
	if (applier_lock_begin(a, err, err_len) != 0)
		return APPLIER_ERROR;
	loaded = applier_load_state(a, st, err, err_len);
	if (loaded != 0) {
		if (loaded == 1)
			errors_set(err, err_len,
				   "the replica state file %s disappeared",
				   a->state_path);
		goto out;
	}
	res = trim(b, st, &skip, err, err_len);
	if (res != APPLIER_APPLIED)
		goto out;
	res = APPLIER_ERROR;
	/* Local transactions not on the primary yet: the batch may only
	 * drop them (applier_offline.c). */
	dropping = applier_drop_prepare(a, st, NULL, &drop, err, err_len);
	if (dropping < 0)
		goto out;
	/* Past frame_no the file may already hold frames up to frame_hwm
	 * (an interrupted batch, a commit kept private): its content is not
	 * the state's, until this batch overwrites all of them.  With
	 * records dropped, it is the last one's result. */
	base.known = st->has_checksum && st->frame_hwm == st->frame_no;
	base.value = st->checksum;
	if (dropping) {
		/* A drop cut short by a crash may already be published:
		 * then the file is not "records on top" any more. */
		base.known = drop.has_file_sum && st->frame_hwm == st->frame_no;
		base.value = drop.file_sum;
	} else if (check_wal_unchanged(a, st, err, err_len) != 0) {
		goto out;
	}
	pages = frames_to_pages(b, skip, &drop);
	if (pages == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	n_pages = drop.n + b->n - skip;
	if (batch_checksum(a, b, st, base, pages, n_pages, &sum, err,
			   err_len) != 0)
		goto out;
	if (end > st->frame_hwm) {
		/* Durable before any frame is written: after a crash, the
		 * next batch must reach at least this far. */
		st->frame_hwm = end;
		if (applier_state_save(a, st, err, err_len) != 0)
			goto out;
	}
	/* Published before the WAL is synced: readers see the batch one
	 * fsync sooner.  A power loss may then take it back, never more:
	 * frame_hwm, durable, makes the next batch cover it again, and
	 * frame_no moves only once the WAL is durable. */
	if (inject(a, pages, n_pages, b->frames[b->n - 1].db_size, 0, err,
		   err_len) != 0 ||
	    sync_wal(a, err, err_len) != 0)
		goto out;
	st->has_checksum = sum.known;
	st->checksum = sum.value;
	st->frame_no = end;
	if (dropping)
		applier_drop_done(a, st, &drop);
	/* Unsynced: frame_hwm, durable, already covers the batch. */
	if (applier_record_wal(a, st, err, err_len) != 0 ||
	    applier_state_save_unsynced(a, st, err, err_len) != 0)
		goto out; /* published; the next batch re-applies it */
	if (dropping)
		applier_drop_clear(a);
	res = APPLIER_APPLIED;
out:
	free(pages);
	applier_drop_free(&drop);
	applier_lock_end(a);
	return res;
}

enum applier_result applier_next_generation(struct applier *a, uint32_t from,
					    uint32_t at, uint32_t to,
					    struct replica_state *st, char *err,
					    size_t err_len)
{
	enum applier_result res = APPLIER_ERROR;
	struct applier_drop drop = {0};
	int dropping;

	memset(st, 0, sizeof *st);
	if (applier_lock_begin(a, err, err_len) != 0)
		return APPLIER_ERROR;
	if (applier_load_state(a, st, err, err_len) != 0)
		goto out;
	if (st->bootstrapping || st->generation != from || st->frame_no != at) {
		res = st->generation >= to && !st->bootstrapping
			  ? APPLIER_STALE
			  : APPLIER_MOVED;
		goto out;
	}
	if (st->frame_hwm > st->frame_no) {
		/* Frames past the end of the generation may be in the file:
		 * the primary lost frames it had served.  Only a full image
		 * makes the content exact again. */
		errors_set(
		    err, err_len,
		    "generation %u ended at frame %u, but frames up to %u "
		    "may have been applied; the replica bootstraps again",
		    from, at, st->frame_hwm);
		st->bootstrapping = 1;
		res = applier_state_save(a, st, err, err_len) == 0
			  ? APPLIER_MOVED
			  : APPLIER_ERROR;
		goto out;
	}
	/* Local transactions not on the primary: only dropped ones may be,
	 * their pages put back as they were at the generation's end. */
	dropping = applier_drop_prepare(a, st, NULL, &drop, err, err_len);
	if (dropping < 0 ||
	    (dropping && applier_inject(a, drop.pages, drop.n,
					drop.base_db_size, err, err_len) != 0))
		goto out;
	st->generation = to;
	st->frame_no = 0;
	st->frame_hwm = 0;
	if (dropping) {
		/* The file is the generation's end again, whose checksum
		 * the state still has. */
		applier_drop_done(a, st, &drop);
		if (applier_record_wal(a, st, err, err_len) != 0)
			goto out;
	}
	if (applier_state_save(a, st, err, err_len) == 0) {
		if (dropping)
			applier_drop_clear(a);
		res = APPLIER_APPLIED;
	}
out:
	applier_drop_free(&drop);
	applier_lock_end(a);
	return res;
}

int applier_checkpoint(struct applier *a, int truncate, int *wal_frames,
		       char *err, size_t err_len)
{
	int log = 0, ckpt = 0;
	int rc = sqlite3_wal_checkpoint_v2(a->db, "main",
					   truncate ? SQLITE_CHECKPOINT_TRUNCATE
						    : SQLITE_CHECKPOINT_PASSIVE,
					   &log, &ckpt);

	if (wal_frames != NULL)
		*wal_frames = log;
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		errors_set(err, err_len,
			   "cannot checkpoint the local database %s: %s",
			   a->db_path, sqlite3_errmsg(a->db));
		return -1;
	}
	return 0;
}
