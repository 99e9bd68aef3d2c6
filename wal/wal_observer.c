#include "wal_observer_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wal/failed_file.h"

/* The wal-index lock slots of the readers, as a mask of bits. */
#define SHM_READ_MASK                                                          \
	(((1u << WAL_INDEX_NREADER) - 1) << WAL_INDEX_READ_LOCK(0))

_Static_assert(sizeof(struct obs_file) >= sizeof(struct failed_file),
	       "a refused open turns the handle into a failed file");

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
		wal_observer_txn_reset(&wal->txn);
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
			wal_observer_txn_reset(&p->wal->txn);
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
		wal_observer_txn_reset(&p->txn);
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
		return wal_observer_txn_write(p, buf, amt, off);
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

/* A file below without memory mapping (a shim of version 2, such as the
 * primary's live overlay) maps nothing: SQLite then reads. */
static int obs_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	if (REAL(f)->pMethods->iVersion < 3) {
		*pp = NULL;
		return SQLITE_OK;
	}
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int obs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	if (REAL(f)->pMethods->iVersion < 3)
		return SQLITE_OK;
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
	return wal_observer_register_over(name, hooks, sqlite3_vfs_find(NULL),
					  out);
}

int wal_observer_register_over(const char *name,
			       const struct wal_observer_hooks *hooks,
			       sqlite3_vfs *root, sqlite3_vfs **out)
{
	struct observer *obs;
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
