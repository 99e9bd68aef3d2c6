#include "temp_spy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TEMP_TYPES                                                             \
	(SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TRANSIENT_DB |                      \
	 SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_SUBJOURNAL)

static sqlite3_vfs spy_vfs;
static sqlite3_vfs *root;
static char *marker;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct temp_spy_stats stats;

struct spy_file {
	sqlite3_file base; /* must be first */
	enum temp_spy_type type;
	int held; /* counted as holding the marker */
	/* What the file holds, as written (its plaintext or ciphertext). */
	uint8_t *shadow;
	size_t len, cap;
	/* The real file follows this struct. */
};

#define REAL(f) ((sqlite3_file *)((struct spy_file *)(f) + 1))

static int has_marker(const void *buf, size_t n)
{
	return n > 0 && memmem(buf, n, marker, strlen(marker)) != NULL;
}

static enum temp_spy_type type_of(int flags)
{
	if (flags & SQLITE_OPEN_TEMP_DB)
		return TEMP_SPY_TEMP_DB;
	if (flags & SQLITE_OPEN_TRANSIENT_DB)
		return TEMP_SPY_TRANSIENT_DB;
	if (flags & SQLITE_OPEN_TEMP_JOURNAL)
		return TEMP_SPY_TEMP_JOURNAL;
	if (flags & SQLITE_OPEN_SUBJOURNAL)
		return TEMP_SPY_SUBJOURNAL;
	return TEMP_SPY_OTHER;
}

/* Count p as holding the marker (once). */
static void saw_marker(struct spy_file *p)
{
	if (p->held)
		return;
	p->held = 1;
	pthread_mutex_lock(&mu);
	stats.holding[p->type]++;
	pthread_mutex_unlock(&mu);
}

static int spy_close(sqlite3_file *f)
{
	struct spy_file *p = (struct spy_file *)f;

	if (has_marker(p->shadow, p->len))
		saw_marker(p);
	free(p->shadow);
	p->shadow = NULL;
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int spy_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int spy_write(sqlite3_file *f, const void *buf, int amt,
		     sqlite3_int64 off)
{
	struct spy_file *p = (struct spy_file *)f;
	size_t end = (size_t)off + (size_t)amt;

	if (end > p->cap) {
		size_t cap = p->cap ? p->cap : 4096;
		uint8_t *s;
		while (cap < end)
			cap *= 2;
		s = realloc(p->shadow, cap);
		if (s == NULL)
			return SQLITE_IOERR_NOMEM;
		p->shadow = s;
		p->cap = cap;
	}
	if ((size_t)off > p->len)
		memset(p->shadow + p->len, 0, (size_t)off - p->len);
	memcpy(p->shadow + off, buf, (size_t)amt);
	if (end > p->len)
		p->len = end;
	if (has_marker(buf, (size_t)amt))
		saw_marker(p);
	pthread_mutex_lock(&mu);
	stats.bytes[p->type] += amt;
	pthread_mutex_unlock(&mu);
	return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int spy_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct spy_file *p = (struct spy_file *)f;

	/* What was cut off was seen: scan it before it goes. */
	if (has_marker(p->shadow, p->len))
		saw_marker(p);
	if ((size_t)size < p->len)
		p->len = (size_t)size;
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int spy_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int spy_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int spy_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int spy_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int spy_check_reserved_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int spy_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int spy_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int spy_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int spy_shm_map(sqlite3_file *f, int region, int size, int extend,
		       void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

static int spy_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), ofst, n, flags);
}

static void spy_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int spy_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int spy_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	int rc;

	*pp = NULL;
	if (REAL(f)->pMethods->iVersion < 3)
		return SQLITE_OK;
	rc = REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
	if (rc == SQLITE_OK && *pp != NULL) {
		pthread_mutex_lock(&mu);
		stats.mapped++;
		pthread_mutex_unlock(&mu);
	}
	return rc;
}

static int spy_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	if (REAL(f)->pMethods->iVersion < 3)
		return SQLITE_OK;
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods spy_io_methods = {
    3,
    spy_close,
    spy_read,
    spy_write,
    spy_truncate,
    spy_sync,
    spy_file_size,
    spy_lock,
    spy_unlock,
    spy_check_reserved_lock,
    spy_file_control,
    spy_sector_size,
    spy_device_characteristics,
    spy_shm_map,
    spy_shm_lock,
    spy_shm_barrier,
    spy_shm_unmap,
    spy_fetch,
    spy_unfetch,
};

static int spy_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
		    int flags, int *out_flags)
{
	struct spy_file *p = (struct spy_file *)f;
	int rc;

	(void)vfs;
	if (name != NULL && !(flags & (TEMP_TYPES | SQLITE_OPEN_DELETEONCLOSE)))
		return root->xOpen(root, name, f, flags, out_flags);
	memset(p, 0, sizeof *p);
	p->type = type_of(flags);
	rc = root->xOpen(root, name, REAL(f), flags, out_flags);
	if (rc != SQLITE_OK)
		return rc;
	p->base.pMethods = &spy_io_methods;
	pthread_mutex_lock(&mu);
	stats.opens++;
	if ((flags & TEMP_TYPES) &&
	    (name != NULL || !(flags & SQLITE_OPEN_DELETEONCLOSE)))
		stats.named_or_kept++;
	pthread_mutex_unlock(&mu);
	return SQLITE_OK;
}

static int spy_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return root->xDelete(root, name, sync_dir);
}

static int spy_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return root->xAccess(root, name, flags, out);
}

static int spy_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			     char *out)
{
	(void)vfs;
	return root->xFullPathname(root, name, n, out);
}

static void *spy_dl_open(sqlite3_vfs *vfs, const char *path)
{
	(void)vfs;
	return root->xDlOpen(root, path);
}

static void spy_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	root->xDlError(root, n, msg);
}

static void (*spy_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return root->xDlSym(root, h, sym);
}

static void spy_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	root->xDlClose(root, h);
}

static int spy_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return root->xRandomness(root, n, out);
}

static int spy_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return root->xSleep(root, us);
}

static int spy_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return root->xCurrentTime(root, out);
}

static int spy_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return root->xGetLastError ? root->xGetLastError(root, n, out) : 0;
}

static int spy_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return root->xCurrentTimeInt64(root, out);
}

int temp_spy_register(const char *name, int make_default, const char *m)
{
	if (root != NULL) /* already (a test run without fork) */
		return strcmp(m, marker) == 0 ? SQLITE_OK : SQLITE_MISUSE;
	root = sqlite3_vfs_find(NULL);
	if (root == NULL || root->iVersion < 2)
		return SQLITE_ERROR;
	marker = strdup(m);
	if (marker == NULL)
		return SQLITE_NOMEM;
	spy_vfs.iVersion = 2;
	spy_vfs.szOsFile = (int)sizeof(struct spy_file) + root->szOsFile;
	spy_vfs.mxPathname = root->mxPathname;
	spy_vfs.zName = name;
	spy_vfs.xOpen = spy_open;
	spy_vfs.xDelete = spy_delete;
	spy_vfs.xAccess = spy_access;
	spy_vfs.xFullPathname = spy_full_pathname;
	spy_vfs.xDlOpen = spy_dl_open;
	spy_vfs.xDlError = spy_dl_error;
	spy_vfs.xDlSym = spy_dl_sym;
	spy_vfs.xDlClose = spy_dl_close;
	spy_vfs.xRandomness = spy_randomness;
	spy_vfs.xSleep = spy_sleep;
	spy_vfs.xCurrentTime = spy_current_time;
	spy_vfs.xGetLastError = spy_get_last_error;
	spy_vfs.xCurrentTimeInt64 = spy_current_time_int64;
	return sqlite3_vfs_register(&spy_vfs, make_default);
}

void temp_spy_get(struct temp_spy_stats *out)
{
	pthread_mutex_lock(&mu);
	*out = stats;
	pthread_mutex_unlock(&mu);
}

void temp_spy_reset(void)
{
	pthread_mutex_lock(&mu);
	memset(&stats, 0, sizeof stats);
	pthread_mutex_unlock(&mu);
}

int64_t temp_spy_total_bytes(const struct temp_spy_stats *s)
{
	int64_t n = 0;
	int i;

	for (i = 0; i < TEMP_SPY_NTYPES; i++)
		n += s->bytes[i];
	return n;
}

int64_t temp_spy_total_holding(const struct temp_spy_stats *s)
{
	int64_t n = 0;
	int i;

	for (i = 0; i < TEMP_SPY_NTYPES; i++)
		n += s->holding[i];
	return n;
}
