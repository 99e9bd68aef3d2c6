#include "wal_observer.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wal/failed_file.h"
#include "wal/page_map.h"
#include "wal/wal_index.h"
#include "wal/walfmt.h"

/* The wal-index lock slots of the readers, as a mask of bits. */
#define SHM_READ_MASK                                                          \
	(((1u << WAL_INDEX_NREADER) - 1) << WAL_INDEX_READ_LOCK(0))

enum obs_kind { OBS_OTHER = 0, OBS_MAIN, OBS_WAL };

struct observer {
	sqlite3_vfs vfs; /* must be first: the registered VFS */
	sqlite3_vfs *root;
	struct wal_observer_hooks hooks;
	pthread_mutex_t mu; /* guards the list of main files */
	struct obs_file *mains;
	char *name;
};

/* The write transaction in progress on one WAL handle. */
struct obs_txn {
	uint32_t page_size;
	struct page_map pages;
	uint32_t max_frame;
	int have_commit_hdr; /* the commit header is held back, see below */
	uint8_t commit_hdr[WALFMT_FRAME_HDR_SIZE];
	sqlite3_int64 commit_hdr_off;
	uint32_t commit_frame;
	int committed; /* on_commit accepted the transaction */
};

struct obs_file {
	sqlite3_file base; /* must be first */
	struct observer *obs;
	enum obs_kind kind;
	const char *name;      /* main: the zName SQLite gave xOpen */
	struct obs_file *next; /* main: observer's list */
	struct obs_file *wal;  /* main: its connection's WAL handle */
	struct obs_file *main; /* WAL: its connection's main handle */
	struct obs_txn txn;    /* WAL only */
	void *ctx;             /* main: from hooks.on_open_main */
	unsigned shm_held;     /* main: bit i = wal-index lock slot i held */
	/* main, while it holds the write lock for a write transaction: the
	 * last wal-index header published before its commit (see
	 * keep_private), and whether the commit is kept private. */
	int in_write;
	int keep_private;
	uint8_t stable_hdr[WAL_INDEX_HDR_COPY_SIZE];
	/* The real file follows this struct. */
};

_Static_assert(sizeof(struct obs_file) >= sizeof(struct failed_file),
	       "a refused open turns the handle into a failed file");

#define REAL(f) ((sqlite3_file *)((struct obs_file *)(f) + 1))

static const sqlite3_io_methods obs_io_methods;

sqlite3_file *wal_observer_unwrap(sqlite3_file *f)
{
	if (f != NULL && f->pMethods == &obs_io_methods) {
		return REAL(f);
	}
	return f;
}

void *wal_observer_ctx(sqlite3_file *f)
{
	if (f != NULL && f->pMethods == &obs_io_methods)
		return ((struct obs_file *)f)->ctx;
	return NULL;
}

const char *wal_observer_open_error(sqlite3_file *f)
{
	return failed_file_reason(f);
}

/* ---------------------------------------------------------------------- */
/* transaction tracking */

static void txn_reset(struct obs_txn *t)
{
	uint32_t page_size = t->page_size;

	page_map_clear(&t->pages);
	memset(t, 0, sizeof *t);
	t->page_size = page_size; /* the WAL's page size outlives a txn */
}

static int txn_learn_page_size(struct obs_file *wal)
{
	uint8_t hdr[WALFMT_HDR_SIZE];
	struct walfmt_header h;
	int rc;

	if (wal->txn.page_size != 0)
		return SQLITE_OK;
	rc = REAL(wal)->pMethods->xRead(REAL(wal), hdr, sizeof hdr, 0);
	if (rc != SQLITE_OK || walfmt_header_decode(hdr, &h) != 0) {
		sqlite3_log(SQLITE_IOERR, "replite: cannot read WAL header");
		return SQLITE_IOERR_READ;
	}
	wal->txn.page_size = h.page_size;
	return SQLITE_OK;
}

static uint32_t frame_index(const struct obs_txn *t, sqlite3_int64 off)
{
	return (uint32_t)((off - WALFMT_HDR_SIZE) /
			  (t->page_size + WALFMT_FRAME_HDR_SIZE)) +
	       1;
}

static int cmp_page(const void *a, const void *b)
{
	const struct wal_page *x = a, *y = b;

	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* Gather the final image of every page the transaction wrote: the commit
 * page from the buffer SQLite is about to write, the others read back from
 * the WAL (in-place overwrites have already landed there). */
static int txn_collect(struct obs_file *wal, const void *commit_data,
		       uint32_t db_size, struct wal_page **out, size_t *n_out,
		       uint8_t **buf_out)
{
	struct obs_txn *t = &wal->txn;
	struct wal_page *pages;
	uint8_t *buf;
	size_t i, n = 0;
	int rc = SQLITE_OK;

	pages = calloc(t->pages.len ? t->pages.len : 1, sizeof *pages);
	buf = malloc(t->pages.len * (size_t)t->page_size + 1);
	if (pages == NULL || buf == NULL) {
		rc = SQLITE_NOMEM;
		goto err;
	}
	for (i = 0; i < t->pages.cap; i++) {
		uint32_t pgno = t->pages.pgno[i];
		uint32_t frame = t->pages.frame[i];
		uint8_t *dst;

		if (pgno == 0 || pgno > db_size)
			continue;
		dst = buf + n * (size_t)t->page_size;
		if (frame == t->commit_frame) {
			memcpy(dst, commit_data, t->page_size);
		} else {
			sqlite3_int64 off = (sqlite3_int64)walfmt_frame_offset(
						frame, t->page_size) +
					    WALFMT_FRAME_HDR_SIZE;
			rc = REAL(wal)->pMethods->xRead(REAL(wal), dst,
							(int)t->page_size, off);
			if (rc != SQLITE_OK)
				goto err;
		}
		pages[n].pgno = pgno;
		pages[n].data = dst;
		n++;
	}
	qsort(pages, n, sizeof *pages, cmp_page);
	*out = pages;
	*n_out = n;
	*buf_out = buf;
	return SQLITE_OK;
err:
	free(pages);
	free(buf);
	return rc;
}

static int txn_commit_hook(struct obs_file *wal, const void *commit_data)
{
	struct observer *obs = wal->obs;
	struct obs_txn *t = &wal->txn;
	uint32_t db_size = walfmt_get32(t->commit_hdr + 4);
	struct wal_page *pages = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc;

	if (obs->hooks.on_commit == NULL)
		return SQLITE_OK;
	rc = txn_collect(wal, commit_data, db_size, &pages, &n, &buf);
	if (rc == SQLITE_OK) {
		const char *path = wal->main ? wal->main->name : NULL;
		void *ctx = wal->main ? wal->main->ctx : NULL;
		rc = obs->hooks.on_commit(obs->hooks.arg, ctx, path, pages, n,
					  db_size);
	}
	free(pages);
	free(buf);
	return rc;
}

/* A 24-byte write at a frame slot is a frame header.  The header of the
 * commit frame is held back until its page data arrives, so that a refused
 * or failed commit leaves no commit-marked header in the WAL for crash
 * recovery to find. */
static int wal_write_header(struct obs_file *wal, const void *buf,
			    sqlite3_int64 off, int *held)
{
	struct obs_txn *t = &wal->txn;
	const uint8_t *h = buf;
	uint32_t frame, pgno = walfmt_get32(h), db_size = walfmt_get32(h + 4);
	int rc;

	*held = 0;
	if (t->committed)
		return SQLITE_OK; /* padding or checksum rewrite */
	rc = txn_learn_page_size(wal);
	if (rc != SQLITE_OK)
		return rc;
	frame = frame_index(t, off);
	if (db_size != 0 && frame > t->max_frame) {
		memcpy(t->commit_hdr, h, sizeof t->commit_hdr);
		t->commit_hdr_off = off;
		t->commit_frame = frame;
		t->have_commit_hdr = 1;
		*held = 1;
	}
	if (frame > t->max_frame)
		t->max_frame = frame;
	return page_map_put(&t->pages, pgno, frame);
}

static int wal_write_commit_data(struct obs_file *wal, const void *buf, int amt,
				 sqlite3_int64 off)
{
	struct obs_txn *t = &wal->txn;
	sqlite3_file *real = REAL(wal);
	int rc;

	rc = txn_commit_hook(wal, buf);
	t->have_commit_hdr = 0;
	if (rc != SQLITE_OK)
		return rc;
	t->committed = 1;
	if (wal->main != NULL && wal->main->in_write &&
	    wal->obs->hooks.commit_is_private != NULL &&
	    wal->obs->hooks.commit_is_private(wal->obs->hooks.arg,
					      wal->main->ctx))
		wal->main->keep_private = 1;
	rc = real->pMethods->xWrite(real, t->commit_hdr, WALFMT_FRAME_HDR_SIZE,
				    t->commit_hdr_off);
	if (rc != SQLITE_OK)
		return rc;
	return real->pMethods->xWrite(real, buf, amt, off);
}

static int obs_wal_write(struct obs_file *wal, const void *buf, int amt,
			 sqlite3_int64 off)
{
	struct obs_txn *t = &wal->txn;
	sqlite3_file *real = REAL(wal);
	int held = 0, rc;

	if (off == 0 && amt == WALFMT_HDR_SIZE) {
		/* A new WAL header: the log restarts at frame 1. */
		txn_reset(t);
		t->page_size = walfmt_get32((const uint8_t *)buf + 8);
	} else if (amt == WALFMT_FRAME_HDR_SIZE && off >= WALFMT_HDR_SIZE) {
		rc = wal_write_header(wal, buf, off, &held);
		if (rc != SQLITE_OK)
			return rc;
		if (held)
			return SQLITE_OK;
	} else if (t->have_commit_hdr &&
		   off == t->commit_hdr_off + WALFMT_FRAME_HDR_SIZE &&
		   (uint32_t)amt == t->page_size) {
		return wal_write_commit_data(wal, buf, amt, off);
	}
	return real->pMethods->xWrite(real, buf, amt, off);
}

/* ---------------------------------------------------------------------- */
/* main-file shm lock tracking */

/* Region 0 of the wal-index: the header copies come first. */
static volatile uint8_t *wal_index_header(struct obs_file *main)
{
	sqlite3_file *real = REAL(main);
	volatile void *p = NULL;

	if (real->pMethods->xShmMap(real, 0, 32768, 0, &p) != SQLITE_OK)
		return NULL;
	return p;
}

/* The WAL position published in the wal-index (header copy 1, which the
 * lock holder is the only one to change). */
static int wal_index_position(struct obs_file *main, struct wal_position *pos)
{
	volatile const uint32_t *hdr =
	    (volatile const uint32_t *)wal_index_header(main);

	if (hdr == NULL)
		return SQLITE_IOERR_SHMMAP;
	pos->frames = hdr[4];  /* WalIndexHdr.mxFrame */
	pos->salt[0] = hdr[8]; /* aSalt */
	pos->salt[1] = hdr[9];
	return SQLITE_OK;
}

/* Remember the header copy a writer is publishing (copy is 0 for copy 1, 1
 * for copy 2).  Returns 1, or 0 when the wal-index cannot be mapped. */
static int capture_header(struct obs_file *main, int copy)
{
	volatile uint8_t *shm = wal_index_header(main);

	if (shm == NULL)
		return 0;
	memcpy(main->stable_hdr,
	       (const void *)(shm + copy * WAL_INDEX_HDR_COPY_SIZE),
	       WAL_INDEX_HDR_COPY_SIZE);
	return 1;
}

/* Publish hdr as both header copies, the way SQLite does (copy 2, barrier,
 * copy 1), so that a reader sees one or the other whole. */
static void write_index_header(struct obs_file *main, const uint8_t *hdr)
{
	volatile uint8_t *shm = wal_index_header(main);

	if (shm == NULL)
		return;
	memcpy((void *)(shm + WAL_INDEX_HDR_COPY_SIZE), hdr,
	       WAL_INDEX_HDR_COPY_SIZE);
	REAL(main)->pMethods->xShmBarrier(REAL(main));
	memcpy((void *)shm, hdr, WAL_INDEX_HDR_COPY_SIZE);
}

/* The write lock is still held: let the hook record what was published.  A
 * commit kept private is withdrawn first: the header published before it
 * is restored (its frames stay beyond mxFrame, like a rolled-back
 * transaction's, and the writer's next read finds the header changed and
 * drops its cache). */
static void main_write_lock_releasing(struct obs_file *main)
{
	struct observer *obs = main->obs;
	struct obs_file *wal = main->wal;
	struct wal_position pos = {0};
	int committed = wal != NULL && wal->txn.committed;
	int have_pos;

	if (main->keep_private)
		write_index_header(main, main->stable_hdr);
	main->keep_private = 0;
	main->in_write = 0;
	have_pos = wal_index_position(main, &pos) == SQLITE_OK;

	obs->hooks.before_write_unlock(obs->hooks.arg, main->ctx, committed,
				       committed && have_pos &&
					   pos.frames >= wal->txn.commit_frame,
				       have_pos ? &pos : NULL);
}

static void main_write_lock_released(struct obs_file *main)
{
	struct obs_file *wal = main->wal;
	struct observer *obs = main->obs;

	if (wal != NULL) {
		if (wal->txn.committed && obs->hooks.on_commit_end != NULL) {
			struct wal_position pos;
			int published =
			    wal_index_position(main, &pos) == SQLITE_OK &&
			    pos.frames >= wal->txn.commit_frame;
			obs->hooks.on_commit_end(obs->hooks.arg, main->ctx,
						 main->name, published);
		}
		txn_reset(&wal->txn);
	}
	if (obs->hooks.on_write_unlock != NULL)
		obs->hooks.on_write_unlock(obs->hooks.arg, main->ctx);
}

/* Does this lock request begin a write transaction?  A connection takes
 * the write lock while it holds a read lock; recovery (no read lock) and
 * checkpoints (the checkpoint lock held) take it too but change nothing. */
static int begins_write(const struct obs_file *p, int ofst, int n, int flags)
{
	return ofst == WAL_INDEX_WRITE_LOCK && n == 1 &&
	       flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) &&
	       (p->shm_held & SHM_READ_MASK) != 0 &&
	       (p->shm_held & (1u << WAL_INDEX_CKPT_LOCK)) == 0;
}

static int obs_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
	struct obs_file *p = (struct obs_file *)f;
	struct observer *obs = p->obs;
	sqlite3_file *real = REAL(f);
	int is_write = ofst == WAL_INDEX_WRITE_LOCK && n >= 1;
	int was_begin_write;
	unsigned mask;
	int rc;

	was_begin_write = p->kind == OBS_MAIN && p->ctx != NULL &&
			  begins_write(p, ofst, n, flags);
	if (was_begin_write && obs->hooks.on_begin_write != NULL) {
		/* Another writer holds the lock: SQLite's busy handler
		 * waits for it as usual, and the hook runs when the lock is
		 * free (it may wait for work that needs the lock). */
		rc = real->pMethods->xShmLock(real, ofst, n, flags);
		if (rc != SQLITE_OK)
			return rc;
		/* A hook that can decide holding the lock keeps it: two
		 * fcntl calls fewer per transaction. */
		rc = obs->hooks.begin_write_held != NULL
			 ? obs->hooks.begin_write_held(obs->hooks.arg, p->ctx)
			 : SQLITE_NOTFOUND;
		if (rc == SQLITE_OK)
			goto locked;
		real->pMethods->xShmLock(
		    real, ofst, n, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
		if (rc != SQLITE_NOTFOUND)
			return rc;
		rc = obs->hooks.on_begin_write(obs->hooks.arg, p->ctx);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (p->kind == OBS_MAIN && p->ctx != NULL && is_write &&
	    (flags & SQLITE_SHM_UNLOCK) &&
	    (p->shm_held & (1u << WAL_INDEX_WRITE_LOCK)) &&
	    obs->hooks.before_write_unlock != NULL)
		main_write_lock_releasing(p);
	rc = real->pMethods->xShmLock(real, ofst, n, flags);
locked:
	if (rc != SQLITE_OK || p->kind != OBS_MAIN)
		return rc;
	assert(ofst >= 0 && n >= 1 && ofst + n <= WAL_INDEX_NLOCK);
	mask = ((1u << n) - 1) << ofst;
	if (flags & SQLITE_SHM_UNLOCK)
		p->shm_held &= ~mask;
	else
		p->shm_held |= mask;
	if (!is_write)
		return rc;
	if (flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)) {
		if (p->wal != NULL)
			txn_reset(&p->wal->txn);
		p->keep_private = 0;
		p->in_write = was_begin_write && capture_header(p, 0);
	} else if (flags & SQLITE_SHM_UNLOCK) {
		main_write_lock_released(p);
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* io methods: forward everything */

static int obs_close(sqlite3_file *f)
{
	struct obs_file *p = (struct obs_file *)f;
	struct observer *obs = p->obs;
	int rc =
	    REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;

	pthread_mutex_lock(&obs->mu);
	if (p->kind == OBS_MAIN) {
		struct obs_file **pp = &obs->mains;
		while (*pp != NULL && *pp != p)
			pp = &(*pp)->next;
		if (*pp == p)
			*pp = p->next;
		if (p->wal != NULL)
			p->wal->main = NULL;
	} else if (p->kind == OBS_WAL) {
		if (p->main != NULL)
			p->main->wal = NULL;
		txn_reset(&p->txn);
	}
	pthread_mutex_unlock(&obs->mu);
	if (p->kind == OBS_MAIN && p->ctx != NULL &&
	    obs->hooks.on_close_main != NULL)
		obs->hooks.on_close_main(obs->hooks.arg, p->ctx);
	return rc;
}

static int obs_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int obs_write(sqlite3_file *f, const void *buf, int amt,
		     sqlite3_int64 off)
{
	struct obs_file *p = (struct obs_file *)f;

	if (p->kind == OBS_WAL)
		return obs_wal_write(p, buf, amt, off);
	return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int obs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int obs_sync(sqlite3_file *f, int flags)
{
	struct obs_file *p = (struct obs_file *)f;
	struct observer *obs = p->obs;

	if (p->kind == OBS_WAL && p->txn.committed && p->main != NULL &&
	    p->main->ctx != NULL && obs->hooks.before_wal_sync != NULL) {
		int rc =
		    obs->hooks.before_wal_sync(obs->hooks.arg, p->main->ctx);
		if (rc == WAL_OBSERVER_SYNC_DONE)
			return SQLITE_OK;
		if (rc != SQLITE_OK)
			return rc;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int obs_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int obs_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int obs_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int obs_check_reserved_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int obs_file_control(sqlite3_file *f, int op, void *arg)
{
	struct obs_file *p = (struct obs_file *)f;
	struct observer *obs = p->obs;
	int rc;

	if (op == SQLITE_FCNTL_PRAGMA && p->kind == OBS_MAIN &&
	    p->ctx != NULL && obs->hooks.on_pragma != NULL) {
		rc = obs->hooks.on_pragma(obs->hooks.arg, p->ctx, arg);
		if (rc != SQLITE_NOTFOUND)
			return rc;
	}
	rc = REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
	if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) {
		char **name = arg;
		*name = sqlite3_mprintf("%s/%z", p->obs->name, *name);
	}
	return rc;
}

static int obs_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

/* POWERSAFE_OVERWRITE: SQLite then writes no padding frames at commit. */
static int obs_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)) |
	       SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int obs_shm_map(sqlite3_file *f, int region, int size, int extend,
		       void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

/* SQLite publishes a wal-index header as: copy 2, barrier, copy 1.  While a
 * write transaction holds the lock, a barrier before its commit publishes a
 * header the transaction may keep (a WAL restart): remember it.  At the
 * commit of a transaction kept private, copy 2 is set back to that header
 * instead, so the two copies differ until the lock is released: readers
 * treat that as a header being written and retry, and none can start on the
 * private commit before main_write_lock_releasing withdraws it. */
static void obs_shm_barrier(sqlite3_file *f)
{
	struct obs_file *p = (struct obs_file *)f;

	if (p->kind == OBS_MAIN && p->in_write && p->wal != NULL) {
		if (!p->wal->txn.committed) {
			capture_header(p, 1);
		} else if (p->keep_private) {
			volatile uint8_t *shm = wal_index_header(p);
			if (shm != NULL)
				memcpy((void *)(shm + WAL_INDEX_HDR_COPY_SIZE),
				       p->stable_hdr, WAL_INDEX_HDR_COPY_SIZE);
		}
	}
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int obs_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int obs_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int obs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods obs_io_methods = {
    3,
    obs_close,
    obs_read,
    obs_write,
    obs_truncate,
    obs_sync,
    obs_file_size,
    obs_lock,
    obs_unlock,
    obs_check_reserved_lock,
    obs_file_control,
    obs_sector_size,
    obs_device_characteristics,
    obs_shm_map,
    obs_shm_lock,
    obs_shm_barrier,
    obs_shm_unmap,
    obs_fetch,
    obs_unfetch,
};

static int open_failed(struct obs_file *p, sqlite3_filename name, int rc,
		       char *msg, int *out_flags, int flags)
{
	p->kind = OBS_OTHER;
	if (msg == NULL)
		msg = sqlite3_mprintf("cannot open %s: %s", name,
				      sqlite3_errstr(rc));
	if (msg == NULL)
		return SQLITE_NOMEM;
	if (out_flags != NULL)
		*out_flags = flags;
	failed_file_init(&p->base, msg);
	return SQLITE_OK;
}

/* ---------------------------------------------------------------------- */
/* vfs methods */

static struct obs_file *find_main_locked(struct observer *obs, const char *name)
{
	struct obs_file *m;

	for (m = obs->mains; m != NULL; m = m->next) {
		if (m->name == name)
			return m;
	}
	return NULL;
}

static int obs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
		    int flags, int *out_flags)
{
	struct observer *obs = (struct observer *)vfs;
	struct obs_file *p = (struct obs_file *)f;
	int rc;

	memset(p, 0, sizeof *p);
	p->obs = obs;
	if ((flags & SQLITE_OPEN_MAIN_DB) && name != NULL &&
	    obs->hooks.on_open_main != NULL) {
		char *msg = NULL;
		rc = obs->hooks.on_open_main(obs->hooks.arg, name, &p->ctx,
					     &msg);
		if (rc != SQLITE_OK)
			return open_failed(p, name, rc, msg, out_flags, flags);
	}
	rc = obs->root->xOpen(obs->root, name, REAL(f), flags, out_flags);
	if (rc != SQLITE_OK) {
		if (p->ctx != NULL && obs->hooks.on_close_main != NULL)
			obs->hooks.on_close_main(obs->hooks.arg, p->ctx);
		return rc;
	}
	p->base.pMethods = &obs_io_methods;
	pthread_mutex_lock(&obs->mu);
	if (flags & SQLITE_OPEN_MAIN_DB) {
		p->kind = OBS_MAIN;
		p->name = name;
		p->next = obs->mains;
		obs->mains = p;
	} else if (flags & SQLITE_OPEN_WAL) {
		p->kind = OBS_WAL;
		p->main =
		    find_main_locked(obs, sqlite3_filename_database(name));
		if (p->main != NULL)
			p->main->wal = p;
	}
	pthread_mutex_unlock(&obs->mu);
	return SQLITE_OK;
}

static int obs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xDelete(root, name, sync_dir);
}

static int obs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xAccess(root, name, flags, out);
}

static int obs_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			     char *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xFullPathname(root, name, n, out);
}

static void *obs_dl_open(sqlite3_vfs *vfs, const char *path)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xDlOpen(root, path);
}

static void obs_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	root->xDlError(root, n, msg);
}

static void (*obs_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xDlSym(root, h, sym);
}

static void obs_dl_close(sqlite3_vfs *vfs, void *h)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	root->xDlClose(root, h);
}

static int obs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xRandomness(root, n, out);
}

static int obs_sleep(sqlite3_vfs *vfs, int us)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xSleep(root, us);
}

static int obs_current_time(sqlite3_vfs *vfs, double *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xCurrentTime(root, out);
}

static int obs_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xGetLastError ? root->xGetLastError(root, n, out) : 0;
}

static int obs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	sqlite3_vfs *root = ((struct observer *)vfs)->root;
	return root->xCurrentTimeInt64(root, out);
}

int wal_observer_register(const char *name,
			  const struct wal_observer_hooks *hooks,
			  sqlite3_vfs **out)
{
	struct observer *obs;
	sqlite3_vfs *root = sqlite3_vfs_find(NULL);
	int rc;

	if (root == NULL)
		return SQLITE_ERROR;
	obs = calloc(1, sizeof *obs);
	if (obs == NULL)
		return SQLITE_NOMEM;
	obs->name = strdup(name);
	if (obs->name == NULL) {
		free(obs);
		return SQLITE_NOMEM;
	}
	obs->root = root;
	obs->hooks = *hooks;
	pthread_mutex_init(&obs->mu, NULL);
	obs->vfs.iVersion = 2;
	obs->vfs.szOsFile = (int)sizeof(struct obs_file) + root->szOsFile;
	obs->vfs.mxPathname = root->mxPathname;
	obs->vfs.zName = obs->name;
	obs->vfs.xOpen = obs_open;
	obs->vfs.xDelete = obs_delete;
	obs->vfs.xAccess = obs_access;
	obs->vfs.xFullPathname = obs_full_pathname;
	obs->vfs.xDlOpen = obs_dl_open;
	obs->vfs.xDlError = obs_dl_error;
	obs->vfs.xDlSym = obs_dl_sym;
	obs->vfs.xDlClose = obs_dl_close;
	obs->vfs.xRandomness = obs_randomness;
	obs->vfs.xSleep = obs_sleep;
	obs->vfs.xCurrentTime = obs_current_time;
	obs->vfs.xGetLastError = obs_get_last_error;
	obs->vfs.xCurrentTimeInt64 = obs_current_time_int64;
	rc = sqlite3_vfs_register(&obs->vfs, 0);
	if (rc != SQLITE_OK) {
		pthread_mutex_destroy(&obs->mu);
		free(obs->name);
		free(obs);
		return rc;
	}
	*out = &obs->vfs;
	return SQLITE_OK;
}

void wal_observer_unregister(sqlite3_vfs *vfs)
{
	struct observer *obs = (struct observer *)vfs;

	if (vfs == NULL)
		return;
	assert(obs->mains == NULL);
	sqlite3_vfs_unregister(vfs);
	pthread_mutex_destroy(&obs->mu);
	free(obs->name);
	free(obs);
}
