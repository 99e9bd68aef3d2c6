/* The page view: a VFS (modelled on SQLite's ext/misc/memvfs.c) whose only
 * file is a struct page_view, named in the URI (ptr=0x...), read page by page
 * from the overlay or the base.  The file says SQLITE_IOCAP_IMMUTABLE, so the
 * pager treats it like a temporary file: no locks, and no hot journal, -wal
 * or -shm is ever looked for.
 *
 * The VFS's name carries the address of its own sqlite3_vfs: this code is
 * linked into the primary's static libraries and, again, into
 * libreplite.so, and a process may hold both copies registered with one
 * SQLite; each copy must find its own VFS, never the other's (whose struct
 * page_view may differ). */
#include "page_view.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"

#define PAGE PAGE_VIEW_PAGE_SIZE

struct page_view {
	uint32_t db_size;
	const struct page_view_page *overlay;
	size_t n;
	page_view_read_fn read_base;
	void *arg;
	sqlite3 *db;
	uint8_t scratch[PAGE]; /* base pages and the patched page 1 */
};

struct view_file {
	sqlite3_file base;
	struct page_view *c;
};

static sqlite3_vfs *default_vfs;

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static const uint8_t *find_overlay(const struct page_view *c, uint32_t pgno)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->overlay[mid].pgno == pgno)
			return c->overlay[mid].data;
		if (c->overlay[mid].pgno < pgno)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Page pgno as SQLite must see it, or NULL if it cannot be read.  Page 1 is
 * patched in a copy: a rollback-journal database (bytes 18-19 = 1, so SQLite
 * never looks for a WAL), whose in-header size is db_size and is trusted
 * (version-valid-for = change counter). */
static const uint8_t *page_image(struct page_view *c, uint32_t pgno)
{
	const uint8_t *img = find_overlay(c, pgno);

	if (img == NULL) {
		if (c->read_base(c->arg, pgno, c->scratch) != 0)
			return NULL;
		img = c->scratch;
	}
	if (pgno != 1)
		return img;
	if (img != c->scratch)
		memcpy(c->scratch, img, PAGE);
	c->scratch[18] = 1;
	c->scratch[19] = 1;
	put32(c->scratch + 28, c->db_size);
	put32(c->scratch + 92, get32(c->scratch + 24));
	return c->scratch;
}

static int view_close(sqlite3_file *f)
{
	(void)f;
	return SQLITE_OK;
}

/* Any range: SQLite reads the first 100 bytes of the header alone, then
 * whole pages; a read past the end is zero-filled and short. */
static int view_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct page_view *c = ((struct view_file *)f)->c;
	uint8_t *out = buf;
	sqlite3_int64 end = (sqlite3_int64)c->db_size * PAGE;

	assert(amt >= 0 && off >= 0);
	while (amt > 0) {
		uint32_t pgno;
		int in_page, len;
		const uint8_t *img;

		if (off >= end) {
			memset(out, 0, (size_t)amt);
			return SQLITE_IOERR_SHORT_READ;
		}
		pgno = (uint32_t)(off / PAGE) + 1;
		in_page = (int)(off % PAGE);
		len = PAGE - in_page < amt ? PAGE - in_page : amt;
		img = page_image(c, pgno);
		if (img == NULL)
			return SQLITE_IOERR_READ;
		memcpy(out, img + in_page, (size_t)len);
		out += len;
		off += len;
		amt -= len;
	}
	return SQLITE_OK;
}

static int view_write(sqlite3_file *f, const void *buf, int amt,
		      sqlite3_int64 off)
{
	(void)f;
	(void)buf;
	(void)amt;
	(void)off;
	return SQLITE_READONLY;
}

static int view_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	(void)f;
	(void)size;
	return SQLITE_READONLY;
}

static int view_sync(sqlite3_file *f, int flags)
{
	(void)f;
	(void)flags;
	return SQLITE_OK;
}

static int view_size(sqlite3_file *f, sqlite3_int64 *size)
{
	*size = (sqlite3_int64)((struct view_file *)f)->c->db_size * PAGE;
	return SQLITE_OK;
}

/* Nothing else can change the view: every lock is granted. */
static int view_lock(sqlite3_file *f, int level)
{
	(void)f;
	(void)level;
	return SQLITE_OK;
}

static int view_reserved(sqlite3_file *f, int *out)
{
	(void)f;
	*out = 0;
	return SQLITE_OK;
}

static int view_fcntl(sqlite3_file *f, int op, void *arg)
{
	(void)f;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

static int view_sector(sqlite3_file *f)
{
	(void)f;
	return PAGE;
}

static int view_chars(sqlite3_file *f)
{
	(void)f;
	return SQLITE_IOCAP_IMMUTABLE;
}

static const sqlite3_io_methods view_io = {
    .iVersion = 1, /* no shared memory, no mmap */
    .xClose = view_close,
    .xRead = view_read,
    .xWrite = view_write,
    .xTruncate = view_truncate,
    .xSync = view_sync,
    .xFileSize = view_size,
    .xLock = view_lock,
    .xUnlock = view_lock,
    .xCheckReservedLock = view_reserved,
    .xFileControl = view_fcntl,
    .xSectorSize = view_sector,
    .xDeviceCharacteristics = view_chars,
};

/* Only the main database, named by its view's address.  Any other file
 * (journal, WAL, temporary) is refused: the connection runs with
 * temp_store=MEMORY and an immutable file needs none. */
static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
		    int flags, int *out_flags)
{
	struct view_file *cf = (struct view_file *)f;
	const char *ptr;
	unsigned long long v;
	char *end;

	(void)vfs;
	f->pMethods = NULL;
	if (name == NULL || (flags & SQLITE_OPEN_MAIN_DB) == 0)
		return SQLITE_CANTOPEN;
	ptr = sqlite3_uri_parameter(name, "ptr");
	if (ptr == NULL)
		return SQLITE_CANTOPEN;
	v = strtoull(ptr, &end, 16);
	if (*end != '\0' || v == 0)
		return SQLITE_CANTOPEN;
	cf->c = (struct page_view *)(uintptr_t)v;
	f->pMethods = &view_io;
	if (out_flags != NULL)
		*out_flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB;
	return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	(void)name;
	(void)sync;
	return SQLITE_IOERR_DELETE;
}

/* No journal, WAL or other file exists next to a view. */
static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	(void)name;
	(void)flags;
	*out = 0;
	return SQLITE_OK;
}

static int vfs_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	sqlite3_snprintf(n, out, "%s", name);
	return SQLITE_OK;
}

static void *vfs_dlopen(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	(void)name;
	return NULL;
}

static void vfs_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	sqlite3_snprintf(n, msg, "no extensions in a page view");
}

static void (*vfs_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	(void)h;
	(void)sym;
	return NULL;
}

static void vfs_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	(void)h;
}

static int vfs_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return default_vfs->xRandomness(default_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return default_vfs->xSleep(default_vfs, us);
}

static int vfs_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return default_vfs->xCurrentTime(default_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return default_vfs->xGetLastError(default_vfs, n, out);
}

static int vfs_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return default_vfs->xCurrentTimeInt64(default_vfs, out);
}

static sqlite3_vfs view_vfs = {
    .iVersion = 2,
    .szOsFile = sizeof(struct view_file),
    .mxPathname = 1024,
    .zName = NULL, /* set at registration: vfs_name */
    .xOpen = vfs_open,
    .xDelete = vfs_delete,
    .xAccess = vfs_access,
    .xFullPathname = vfs_fullpath,
    .xDlOpen = vfs_dlopen,
    .xDlError = vfs_dlerror,
    .xDlSym = vfs_dlsym,
    .xDlClose = vfs_dlclose,
    .xRandomness = vfs_random,
    .xSleep = vfs_sleep,
    .xCurrentTime = vfs_time,
    .xGetLastError = vfs_last_error,
    .xCurrentTimeInt64 = vfs_time64,
};

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;
static char vfs_name[48];

static void register_vfs(void)
{
	default_vfs = sqlite3_vfs_find(NULL);
	if (default_vfs == NULL || default_vfs->iVersion < 2 ||
	    default_vfs->xCurrentTimeInt64 == NULL)
		return;
	snprintf(vfs_name, sizeof vfs_name, "replite-page-view-%p",
		 (void *)&view_vfs);
	view_vfs.zName = vfs_name;
	register_rc = sqlite3_vfs_register(&view_vfs, 0);
}

int page_view_open(struct page_view **out, uint32_t db_size,
		   const struct page_view_page *overlay, size_t n,
		   page_view_read_fn read_base, void *arg, char *err,
		   size_t err_len)
{
	struct page_view *c;
	char uri[96];
	size_t i;
	int rc;

	*out = NULL;
	for (i = 0; i < n; i++)
		assert(overlay[i].pgno >= 1 && overlay[i].pgno <= db_size &&
		       (i == 0 || overlay[i - 1].pgno < overlay[i].pgno));
	pthread_once(&register_once, register_vfs);
	if (register_rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot register the page view VFS");
		return -1;
	}
	if (db_size == 0) {
		errors_set(err, err_len, "a page view database has no pages");
		return -1;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	c->db_size = db_size;
	c->overlay = overlay;
	c->n = n;
	c->read_base = read_base;
	c->arg = arg;
	snprintf(uri, sizeof uri, "file:/page-view-%p?ptr=%" PRIxPTR, (void *)c,
		 (uintptr_t)c);
	rc = sqlite3_open_v2(uri, &c->db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
				 SQLITE_OPEN_NOMUTEX,
			     vfs_name);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot open the page view: %s",
			   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	/* The pages are not trusted (a client pushed them, or a replica's
	 * file holds them): functions with side effects stay out of their
	 * views, indexes and defaults. */
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* sqlite_master: the name every SQLite the extension runs in
	 * (3.31 and later) knows. */
	rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL,
			  NULL, NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "the schema does not parse: %s",
			   sqlite3_errmsg(c->db));
		goto fail;
	}
	/* No temporary files (sorters stay in memory), and every cell's size
	 * is checked as its page is loaded. */
	rc = sqlite3_exec(c->db,
			  "PRAGMA temp_store=MEMORY; PRAGMA cell_size_check=ON",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len, "cannot set up the page view: %s",
			   sqlite3_errmsg(c->db));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	page_view_close(c);
	return -1;
}

sqlite3 *page_view_db(struct page_view *v)
{
	return v->db;
}

uint32_t page_view_size(const struct page_view *v)
{
	return v->db_size;
}

int page_view_read(struct page_view *v, uint32_t pgno, uint8_t *out)
{
	const uint8_t *img;

	if (pgno < 1 || pgno > v->db_size)
		return -1;
	img = find_overlay(v, pgno);
	if (img == NULL)
		return v->read_base(v->arg, pgno, out);
	memcpy(out, img, PAGE);
	return 0;
}

void page_view_close(struct page_view *v)
{
	if (v == NULL)
		return;
	sqlite3_close(v->db);
	free(v);
}
