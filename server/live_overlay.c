/* A fork's live database, copy-on-write over its shared base (see
 * live_overlay.h for the scheme).  The VFS shim is shaped like SQLite's
 * ext/misc/cksumvfs.c: files other than the one live.db are opened by the
 * default VFS directly (their methods are the default's, no indirection),
 * and live.db's methods forward everything but reads, writes and
 * truncation, which go page by page to live.db or to the base. */
#include "live_overlay.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "wal/walfmt.h"

#define PAGE WALFMT_PAGE_SIZE

struct live_overlay {
	sqlite3_vfs vfs; /* first: the VFS's methods get the overlay */
	sqlite3_vfs *root;
	dev_t live_dev; /* live.db, recognised by its inode */
	ino_t live_ino;
	int base_fd;
	uint32_t base_pages; /* the base's size in pages */
	/* Read and written with atomics: SQLite's connections run in many
	 * threads; a page's bit is set after its bytes are in live.db. */
	uint8_t *written; /* a bit per page of the base */
	uint32_t limit;   /* pages above it never come from the base */
	uint32_t base_reads;
};

struct ov_file {
	sqlite3_file base; /* pMethods = &ov_methods */
	struct live_overlay *o;
	/* the default VFS's file follows */
};

#define REAL(f) ((sqlite3_file *)((struct ov_file *)(f) + 1))

static int from_base(struct live_overlay *o, uint32_t pgno)
{
	uint8_t bits;

	if (pgno > __atomic_load_n(&o->limit, __ATOMIC_ACQUIRE))
		return 0;
	bits = __atomic_load_n(&o->written[(pgno - 1) / 8], __ATOMIC_ACQUIRE);
	return (bits & (1u << ((pgno - 1) % 8))) == 0;
}

static void mark_written(struct live_overlay *o, uint32_t pgno)
{
	if (pgno > o->base_pages)
		return;
	__atomic_fetch_or(&o->written[(pgno - 1) / 8],
			  (uint8_t)(1u << ((pgno - 1) % 8)), __ATOMIC_RELEASE);
}

static void lower_limit(struct live_overlay *o, uint32_t pages)
{
	uint32_t cur = __atomic_load_n(&o->limit, __ATOMIC_ACQUIRE);

	while (pages < cur &&
	       !__atomic_compare_exchange_n(&o->limit, &cur, pages, 0,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* ---------------------------------------------------------------------- */
/* live.db's methods */

static int ov_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct live_overlay *o = ((struct ov_file *)f)->o;
	uint8_t *out = buf;
	int short_read = 0, rc;

	while (amt > 0) {
		uint32_t pgno = (uint32_t)(off / PAGE) + 1;
		int in = (int)(off % PAGE);
		int len = amt < PAGE - in ? amt : PAGE - in;

		if (from_base(o, pgno)) {
			if (fileio_read_all(o->base_fd, out, (size_t)len,
					    (uint64_t)off) != 0)
				return SQLITE_IOERR_READ;
			__atomic_fetch_add(&o->base_reads, 1, __ATOMIC_RELAXED);
		} else {
			rc = REAL(f)->pMethods->xRead(REAL(f), out, len, off);
			if (rc == SQLITE_IOERR_SHORT_READ)
				short_read = 1; /* zero-filled by the VFS */
			else if (rc != SQLITE_OK)
				return rc;
		}
		out += len;
		off += len;
		amt -= len;
	}
	return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int ov_write(sqlite3_file *f, const void *buf, int amt,
		    sqlite3_int64 off)
{
	struct live_overlay *o = ((struct ov_file *)f)->o;
	const uint8_t *in_buf = buf;
	uint8_t page[PAGE];
	int rc;

	while (amt > 0) {
		uint32_t pgno = (uint32_t)(off / PAGE) + 1;
		int in = (int)(off % PAGE);
		int len = amt < PAGE - in ? amt : PAGE - in;

		if (len < PAGE && from_base(o, pgno)) {
			/* Part of a page still in the base: the rest of it
			 * comes along, so that live.db holds it whole. */
			sqlite3_int64 start = off - in;
			if (fileio_read_all(o->base_fd, page, PAGE,
					    (uint64_t)start) != 0)
				return SQLITE_IOERR_WRITE;
			memcpy(page + in, in_buf, (size_t)len);
			rc = REAL(f)->pMethods->xWrite(REAL(f), page, PAGE,
						       start);
		} else {
			rc = REAL(f)->pMethods->xWrite(REAL(f), in_buf, len,
						       off);
		}
		if (rc != SQLITE_OK)
			return rc;
		mark_written(o, pgno);
		in_buf += len;
		off += len;
		amt -= len;
	}
	return SQLITE_OK;
}

static int ov_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct live_overlay *o = ((struct ov_file *)f)->o;
	int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);

	if (rc == SQLITE_OK)
		lower_limit(o, (uint32_t)(size / PAGE));
	return rc;
}

static int ov_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int ov_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int ov_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	/* live.db is as long as the database (sparse where the base
	 * holds the pages). */
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int ov_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int ov_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int ov_check_reserved_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int ov_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int ov_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int ov_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int ov_shm_map(sqlite3_file *f, int region, int size, int extend,
		      void volatile **out)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int ov_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void ov_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int ov_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

/* Version 2: no xFetch, so SQLite never memory-maps live.db (a mapping
 * would read the holes). */
static const sqlite3_io_methods ov_methods = {
    .iVersion = 2,
    .xClose = ov_close,
    .xRead = ov_read,
    .xWrite = ov_write,
    .xTruncate = ov_truncate,
    .xSync = ov_sync,
    .xFileSize = ov_file_size,
    .xLock = ov_lock,
    .xUnlock = ov_unlock,
    .xCheckReservedLock = ov_check_reserved_lock,
    .xFileControl = ov_file_control,
    .xSectorSize = ov_sector_size,
    .xDeviceCharacteristics = ov_device_characteristics,
    .xShmMap = ov_shm_map,
    .xShmLock = ov_shm_lock,
    .xShmBarrier = ov_shm_barrier,
    .xShmUnmap = ov_shm_unmap,
};

/* ---------------------------------------------------------------------- */
/* the VFS */

#define ROOT(vfs) (((struct live_overlay *)(vfs))->root)

static int is_live(struct live_overlay *o, const char *name)
{
	struct stat st;

	return name != NULL && stat(name, &st) == 0 &&
	       st.st_dev == o->live_dev && st.st_ino == o->live_ino;
}

static int ov_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
		   int flags, int *out_flags)
{
	struct live_overlay *o = (struct live_overlay *)vfs;
	struct ov_file *p = (struct ov_file *)f;
	int rc;

	if (!(flags & SQLITE_OPEN_MAIN_DB) || !is_live(o, name))
		return o->root->xOpen(o->root, name, f, flags, out_flags);
	memset(p, 0, sizeof *p);
	rc = o->root->xOpen(o->root, name, REAL(f), flags, out_flags);
	if (rc != SQLITE_OK)
		return rc;
	p->o = o;
	p->base.pMethods = &ov_methods;
	return SQLITE_OK;
}

static int ov_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return ROOT(vfs)->xDelete(ROOT(vfs), name, sync_dir);
}

static int ov_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return ROOT(vfs)->xAccess(ROOT(vfs), name, flags, out);
}

static int ov_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			    char *out)
{
	return ROOT(vfs)->xFullPathname(ROOT(vfs), name, n, out);
}

static void *ov_dl_open(sqlite3_vfs *vfs, const char *path)
{
	return ROOT(vfs)->xDlOpen(ROOT(vfs), path);
}

static void ov_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	ROOT(vfs)->xDlError(ROOT(vfs), n, msg);
}

static void (*ov_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return ROOT(vfs)->xDlSym(ROOT(vfs), h, sym);
}

static void ov_dl_close(sqlite3_vfs *vfs, void *h)
{
	ROOT(vfs)->xDlClose(ROOT(vfs), h);
}

static int ov_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return ROOT(vfs)->xRandomness(ROOT(vfs), n, out);
}

static int ov_sleep(sqlite3_vfs *vfs, int us)
{
	return ROOT(vfs)->xSleep(ROOT(vfs), us);
}

static int ov_current_time(sqlite3_vfs *vfs, double *out)
{
	return ROOT(vfs)->xCurrentTime(ROOT(vfs), out);
}

static int ov_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return ROOT(vfs)->xGetLastError(ROOT(vfs), n, out);
}

static int ov_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return ROOT(vfs)->xCurrentTimeInt64(ROOT(vfs), out);
}

int live_overlay_open(const char *base_path, const char *live_path,
		      struct live_overlay **out, char *err, size_t n)
{
	struct live_overlay *o = calloc(1, sizeof *o);
	struct stat st;

	if (o == NULL) {
		errors_set(err, n, "out of memory");
		return -1;
	}
	o->base_fd = -1;
	o->root = sqlite3_vfs_find(NULL);
	if (o->root == NULL) {
		errors_set(err, n, "SQLite has no default VFS");
		goto fail;
	}
	if (stat(live_path, &st) != 0) {
		errors_set(err, n, "cannot open %s: %s", live_path,
			   strerror(errno));
		goto fail;
	}
	o->live_dev = st.st_dev;
	o->live_ino = st.st_ino;
	o->base_fd = open(base_path, O_RDONLY | O_CLOEXEC);
	if (o->base_fd < 0 || fstat(o->base_fd, &st) != 0) {
		errors_set(err, n, "cannot open %s: %s", base_path,
			   strerror(errno));
		goto fail;
	}
	o->base_pages = (uint32_t)((uint64_t)st.st_size / PAGE);
	o->limit = o->base_pages;
	o->written = calloc((size_t)o->base_pages / 8 + 1, 1);
	if (o->written == NULL) {
		errors_set(err, n, "out of memory");
		goto fail;
	}
	o->vfs.iVersion = 2;
	o->vfs.szOsFile = (int)sizeof(struct ov_file) + o->root->szOsFile;
	o->vfs.mxPathname = o->root->mxPathname;
	o->vfs.zName = "replite-live-overlay"; /* never registered */
	o->vfs.xOpen = ov_open;
	o->vfs.xDelete = ov_delete;
	o->vfs.xAccess = ov_access;
	o->vfs.xFullPathname = ov_full_pathname;
	o->vfs.xDlOpen = ov_dl_open;
	o->vfs.xDlError = ov_dl_error;
	o->vfs.xDlSym = ov_dl_sym;
	o->vfs.xDlClose = ov_dl_close;
	o->vfs.xRandomness = ov_randomness;
	o->vfs.xSleep = ov_sleep;
	o->vfs.xCurrentTime = ov_current_time;
	o->vfs.xGetLastError = ov_get_last_error;
	o->vfs.xCurrentTimeInt64 = ov_current_time_int64;
	*out = o;
	return 0;
fail:
	live_overlay_free(o);
	return -1;
}

void live_overlay_free(struct live_overlay *o)
{
	if (o == NULL)
		return;
	if (o->base_fd >= 0)
		close(o->base_fd);
	free(o->written);
	free(o);
}

int live_overlay_take_log(struct live_overlay *o, struct frame_log *log)
{
	uint32_t head = frame_log_head(log), f;
	int fd = frame_log_fd(log), e;
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];

	for (f = 1; f <= head; f++) {
		uint32_t db_size;
		e = fileio_read_all(fd, hdr, sizeof hdr, frame_log_offset(f));
		if (e != 0)
			return e;
		mark_written(o, walfmt_get32(hdr));
		db_size = walfmt_get32(hdr + 4);
		if (db_size != 0)
			lower_limit(o, db_size);
	}
	return 0;
}

sqlite3_vfs *live_overlay_vfs(struct live_overlay *o)
{
	return &o->vfs;
}

uint32_t live_overlay_base_reads(const struct live_overlay *o)
{
	return __atomic_load_n(&o->base_reads, __ATOMIC_RELAXED);
}
