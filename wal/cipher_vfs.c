#include "cipher_vfs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/cipher_vfs_temp.h"
#include "wal/walfmt.h"

/* A write larger than this is written in pieces cut at page boundaries, so
 * that the scratch buffer of a file stays small (a bootstrap writes runs of
 * many pages at once). */
#define CHUNK_BYTES (1 << 20)

/* A file to encrypt, as cipher_vfs_add registered it. */
struct cvfs_entry {
	char *path; /* full pathname, as the root VFS gives it to xOpen */
	struct cipher *c;
	uint32_t page_size;
	int refs; /* cipher_vfs_add calls with this key, less removes */
	struct cvfs_entry *next;
};

struct cvfs {
	sqlite3_vfs vfs; /* must be first: the registered VFS */
	sqlite3_vfs *root;
	pthread_mutex_t mu; /* guards entries */
	struct cvfs_entry *entries;
	char *name;
};

/* CFILE_TEMP: a temporary file, under a key of its own (cipher_vfs_temp.h). */
enum cfile_kind { CFILE_PLAIN = 0, CFILE_DB, CFILE_WAL, CFILE_TEMP };

struct cfile {
	sqlite3_file base; /* must be first */
	struct cvfs *cv;
	enum cfile_kind kind;
	/* Encrypted files: a cipher of the handle's own (SQLite may use two
	 * connections' handles from two threads at once), and a scratch
	 * buffer (a handle is used by one thread at a time). */
	struct cipher *c;
	uint32_t page_size;
	uint8_t *buf;
	size_t cap;
	/* CFILE_TEMP: instead of the above, a key of its own. */
	struct cipher_vfs_temp *temp;
	/* The real file follows this struct. */
};

#define REAL(f) ((sqlite3_file *)((struct cfile *)(f) + 1))

/* ---------------------------------------------------------------------- */
/* regions: how a file is cut into parts in clear and pages to encrypt */

struct region {
	sqlite3_int64 start;
	sqlite3_int64 len;
	int encrypted;
	enum cipher_space space;
	uint64_t pos; /* the tweak: page number, or frame number */
};

/* The region holding byte off.  The database file is pages; the WAL is its
 * header, then frames of a header and a page. */
static void region_at(const struct cfile *p, sqlite3_int64 off,
		      struct region *r)
{
	sqlite3_int64 ps = p->page_size;
	sqlite3_int64 frame = WALFMT_FRAME_HDR_SIZE + ps, k, frame_start;

	/* Every field set, in clear regions too (no tweak there). */
	r->encrypted = 1;
	r->space = CIPHER_SPACE_DB;
	r->pos = 0;
	if (p->kind == CFILE_DB) {
		r->start = off / ps * ps;
		r->len = ps;
		r->space = CIPHER_SPACE_DB;
		r->pos = (uint64_t)(off / ps) + 1;
		return;
	}
	if (off < WALFMT_HDR_SIZE) {
		r->start = 0;
		r->len = WALFMT_HDR_SIZE;
		r->encrypted = 0;
		return;
	}
	k = (off - WALFMT_HDR_SIZE) / frame;
	frame_start = WALFMT_HDR_SIZE + k * frame;
	if (off < frame_start + WALFMT_FRAME_HDR_SIZE) {
		r->start = frame_start;
		r->len = WALFMT_FRAME_HDR_SIZE;
		r->encrypted = 0;
		return;
	}
	/* The tweak of a frame's page is its frame number (1-based, as
	 * SQLite counts): unique in the file, whatever page it holds. */
	r->start = frame_start + WALFMT_FRAME_HDR_SIZE;
	r->len = ps;
	r->space = CIPHER_SPACE_WAL;
	r->pos = (uint64_t)k + 1;
}

static int ensure_buf(struct cfile *p, size_t n)
{
	uint8_t *b;

	if (n <= p->cap)
		return 0;
	b = realloc(p->buf, n);
	if (b == NULL)
		return -1;
	p->buf = b;
	p->cap = n;
	return 0;
}

/* The plaintext of encrypted region r into out (r->len bytes).  A region
 * not wholly in the file (past its end, or torn by a crash) reads as
 * zeros: decrypting the zeros the root VFS fills in would give noise. */
static int read_plain(struct cfile *p, const struct region *r, uint8_t *out)
{
	sqlite3_file *real = REAL(p);
	int rc = real->pMethods->xRead(real, out, (int)r->len, r->start);

	if (rc == SQLITE_IOERR_SHORT_READ) {
		memset(out, 0, (size_t)r->len);
		return SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		return rc;
	if (cipher_decrypt(p->c, r->space, r->pos, out, out, (size_t)r->len) !=
	    0)
		return SQLITE_IOERR_READ;
	return SQLITE_OK;
}

/* ---------------------------------------------------------------------- */
/* io methods */

static int cf_close(sqlite3_file *f)
{
	struct cfile *p = (struct cfile *)f;
	int rc = REAL(f)->pMethods->xClose(REAL(f));

	cipher_free(p->c);
	p->c = NULL;
	cipher_vfs_temp_free(p->temp);
	p->temp = NULL;
	free(p->buf);
	p->buf = NULL;
	p->cap = 0;
	return rc;
}

/* One read of the range; pages it covers whole are decrypted in place, a
 * page it covers in part is read again whole (the 100-byte header of page
 * 1, a frame's page read with part of a header, ...). */
static int cf_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct cfile *p = (struct cfile *)f;
	sqlite3_file *real = REAL(f);
	uint8_t *out = buf;
	/* Where the file ends, when a short read says it ends early. */
	sqlite3_int64 end = off + amt, valid_end = INT64_MAX, at;
	struct region r;
	int rc, rc2;

	if (p->kind == CFILE_TEMP)
		return cipher_vfs_temp_read(p->temp, real, buf, amt, off);
	rc = real->pMethods->xRead(real, buf, amt, off);
	if (p->kind == CFILE_PLAIN)
		return rc;
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return rc;
	if (rc == SQLITE_IOERR_SHORT_READ) {
		sqlite3_int64 size;
		rc2 = real->pMethods->xFileSize(real, &size);
		if (rc2 != SQLITE_OK)
			return rc2;
		valid_end = size;
	}
	for (at = off; at < end; at = r.start + r.len) {
		sqlite3_int64 lo, hi;
		region_at(p, at, &r);
		if (!r.encrypted)
			continue;
		lo = r.start > off ? r.start : off;
		hi = r.start + r.len < end ? r.start + r.len : end;
		if (r.start + r.len > valid_end) {
			/* Not (wholly) in the file: as the root VFS does
			 * past the end, zeros. */
			memset(out + (lo - off), 0, (size_t)(hi - lo));
		} else if (lo == r.start && hi == r.start + r.len) {
			if (cipher_decrypt(p->c, r.space, r.pos,
					   out + (lo - off), out + (lo - off),
					   (size_t)r.len) != 0)
				return SQLITE_IOERR_READ;
		} else {
			if (ensure_buf(p, (size_t)r.len) != 0)
				return SQLITE_IOERR_NOMEM;
			rc2 = read_plain(p, &r, p->buf);
			if (rc2 != SQLITE_OK)
				return rc2;
			memcpy(out + (lo - off), p->buf + (lo - r.start),
			       (size_t)(hi - lo));
		}
	}
	return rc;
}

/* The page size a header being written states, or 0 when buf is not a
 * header (a write elsewhere, or an empty database's first page). */
static uint32_t written_page_size(const struct cfile *p, const uint8_t *buf,
				  int amt, sqlite3_int64 off)
{
	uint32_t ps;

	if (off != 0)
		return 0;
	if (p->kind == CFILE_WAL && amt >= WALFMT_HDR_SIZE)
		return walfmt_get32(buf + 8);
	if (p->kind == CFILE_DB && amt >= 100 &&
	    memcmp(buf, "SQLite format 3", 16) == 0) {
		ps = (uint32_t)buf[16] << 8 | buf[17];
		return ps == 1 ? 65536 : ps;
	}
	return 0;
}

/* Write [off, off + amt) after widening it to whole pages: XTS
 * encrypts a data unit from its first block on, so a page written in part
 * is read, patched, encrypted and written whole (not atomic against a
 * concurrent writer of the same page; SQLite's locks exclude one). */
static int write_piece(struct cfile *p, const uint8_t *buf, sqlite3_int64 amt,
		       sqlite3_int64 off)
{
	sqlite3_file *real = REAL(p);
	sqlite3_int64 lo = off, hi = off + amt, at;
	struct region head, tail, r;
	int rc;

	region_at(p, lo, &head);
	if (head.encrypted)
		lo = head.start;
	region_at(p, hi - 1, &tail);
	if (tail.encrypted)
		hi = tail.start + tail.len;
	if (ensure_buf(p, (size_t)(hi - lo)) != 0)
		return SQLITE_IOERR_NOMEM;
	if (lo < off) {
		rc = read_plain(p, &head, p->buf);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (hi > off + amt && !(tail.start == head.start && lo < off)) {
		rc = read_plain(p, &tail, p->buf + (tail.start - lo));
		if (rc != SQLITE_OK)
			return rc;
	}
	memcpy(p->buf + (off - lo), buf, (size_t)amt);
	for (at = lo; at < hi; at = r.start + r.len) {
		region_at(p, at, &r);
		if (r.encrypted &&
		    cipher_encrypt(p->c, r.space, r.pos,
				   p->buf + (r.start - lo),
				   p->buf + (r.start - lo), (size_t)r.len) != 0)
			return SQLITE_IOERR_WRITE;
	}
	return real->pMethods->xWrite(real, p->buf, (int)(hi - lo), lo);
}

static int cf_write(sqlite3_file *f, const void *buf, int amt,
		    sqlite3_int64 off)
{
	struct cfile *p = (struct cfile *)f;
	const uint8_t *in = buf;
	sqlite3_int64 left = amt, n;
	uint32_t ps;
	struct region r;
	int rc;

	if (p->kind == CFILE_PLAIN)
		return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
	if (p->kind == CFILE_TEMP)
		return cipher_vfs_temp_write(p->temp, REAL(f), buf, amt, off);
	/* Pages of another size would be cut in the wrong places: refuse
	 * before anything reaches the file. */
	ps = written_page_size(p, in, amt, off);
	if (ps != 0 && ps != p->page_size) {
		sqlite3_log(SQLITE_IOERR_WRITE,
			    "cipher VFS: a %s of %u-byte pages, but the file "
			    "is encrypted in %u-byte pages",
			    p->kind == CFILE_WAL ? "WAL" : "database", ps,
			    p->page_size);
		return SQLITE_IOERR_WRITE;
	}
	while (left > 0) {
		n = left;
		if (n > CHUNK_BYTES) {
			region_at(p, off + CHUNK_BYTES, &r);
			n = r.start > off ? r.start - off
					  : r.start + r.len - off;
		}
		rc = write_piece(p, in, n, off);
		if (rc != SQLITE_OK)
			return rc;
		in += n;
		off += n;
		left -= n;
	}
	return SQLITE_OK;
}

static int cf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct cfile *p = (struct cfile *)f;

	if (p->kind == CFILE_TEMP)
		return cipher_vfs_temp_truncate(p->temp, REAL(f), size);
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int cf_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int cf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int cf_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int cf_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int cf_check_reserved_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int cf_file_control(sqlite3_file *f, int op, void *arg)
{
	struct cfile *p = (struct cfile *)f;
	int rc = REAL(f)->pMethods->xFileControl(REAL(f), op, arg);

	if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) {
		char **name = arg;
		*name = sqlite3_mprintf("%s/%z", p->cv->name, *name);
	}
	return rc;
}

static int cf_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int cf_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int cf_shm_map(sqlite3_file *f, int region, int size, int extend,
		      void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

static int cf_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), ofst, n, flags);
}

static void cf_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int cf_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

/* A mapping of an encrypted file, temporary ones included (SQLite's sorter
 * maps its spill files when allowed to), would hand SQLite ciphertext: none
 * (SQLite then reads through xRead). */
static int cf_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	struct cfile *p = (struct cfile *)f;

	if (p->kind != CFILE_PLAIN || REAL(f)->pMethods->iVersion < 3) {
		*pp = NULL;
		return SQLITE_OK;
	}
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int cf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *pp)
{
	struct cfile *p = (struct cfile *)f;

	if (p->kind != CFILE_PLAIN || REAL(f)->pMethods->iVersion < 3)
		return SQLITE_OK;
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, pp);
}

static const sqlite3_io_methods cf_io_methods = {
    3,
    cf_close,
    cf_read,
    cf_write,
    cf_truncate,
    cf_sync,
    cf_file_size,
    cf_lock,
    cf_unlock,
    cf_check_reserved_lock,
    cf_file_control,
    cf_sector_size,
    cf_device_characteristics,
    cf_shm_map,
    cf_shm_lock,
    cf_shm_barrier,
    cf_shm_unmap,
    cf_fetch,
    cf_unfetch,
};

/* ---------------------------------------------------------------------- */
/* vfs methods */

/* What to do with a file named name: the entry of a database file or of
 * the database whose WAL it is, and which.  Called with cv->mu held. */
static struct cvfs_entry *find_locked(struct cvfs *cv, const char *name,
				      enum cfile_kind *kind)
{
	size_t len = strlen(name);
	struct cvfs_entry *e;

	for (e = cv->entries; e != NULL; e = e->next) {
		size_t n = strlen(e->path);
		if (n == len && memcmp(e->path, name, n) == 0) {
			*kind = CFILE_DB;
			return e;
		}
		/* SQLite names the WAL after the database's full path. */
		if (len == n + 4 && memcmp(e->path, name, n) == 0 &&
		    memcmp(name + n, "-wal", 4) == 0) {
			*kind = CFILE_WAL;
			return e;
		}
	}
	return NULL;
}

static int cv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
		   int flags, int *out_flags)
{
	struct cvfs *cv = (struct cvfs *)vfs;
	struct cfile *p = (struct cfile *)f;
	enum cfile_kind kind = CFILE_PLAIN;
	struct cvfs_entry *e;
	int rc = SQLITE_OK;

	memset(p, 0, sizeof *p);
	p->cv = cv;
	pthread_mutex_lock(&cv->mu);
	/* By name, whatever the flags: every handle on an encrypted file
	 * (SQLite's, or one opened directly through the VFS) sees plaintext
	 * and writes ciphertext. */
	e = name != NULL ? find_locked(cv, name, &kind) : NULL;
	if (e != NULL) {
		p->kind = kind;
		p->page_size = e->page_size;
		if (cipher_dup(e->c, &p->c, NULL, 0) != 0)
			rc = SQLITE_NOMEM;
	} else if (cv->entries != NULL && cipher_vfs_temp_wanted(name, flags)) {
		/* A temporary file while the process has an encrypted
		 * database: it may hold that database's rows (a sort, a
		 * VACUUM, a statement journal).  A temporary file has no
		 * name tying it to its connection, so every one opened
		 * through this VFS meanwhile is encrypted. */
		p->kind = CFILE_TEMP;
	}
	pthread_mutex_unlock(&cv->mu);
	if (rc != SQLITE_OK)
		return rc;
	if (p->kind == CFILE_TEMP && cipher_vfs_temp_new(&p->temp) != 0) {
		/* Never in clear instead. */
		sqlite3_log(SQLITE_CANTOPEN, "cipher VFS: cannot set up the "
					     "key of a temporary file");
		return SQLITE_CANTOPEN;
	}
	/* Any other file is the root's own handle, with the root's methods
	 * (as cksumvfs.c does): no indirection on the read path of
	 * replicas without a key. */
	if (p->kind == CFILE_PLAIN)
		return cv->root->xOpen(cv->root, name, f, flags, out_flags);
	rc = cv->root->xOpen(cv->root, name, REAL(f), flags, out_flags);
	if (rc != SQLITE_OK) {
		cipher_free(p->c);
		p->c = NULL;
		cipher_vfs_temp_free(p->temp);
		p->temp = NULL;
		return rc;
	}
	p->base.pMethods = &cf_io_methods;
	return SQLITE_OK;
}

static int cv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xDelete(root, name, sync_dir);
}

static int cv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xAccess(root, name, flags, out);
}

static int cv_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			    char *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xFullPathname(root, name, n, out);
}

static void *cv_dl_open(sqlite3_vfs *vfs, const char *path)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xDlOpen(root, path);
}

static void cv_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	root->xDlError(root, n, msg);
}

static void (*cv_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xDlSym(root, h, sym);
}

static void cv_dl_close(sqlite3_vfs *vfs, void *h)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	root->xDlClose(root, h);
}

static int cv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xRandomness(root, n, out);
}

static int cv_sleep(sqlite3_vfs *vfs, int us)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xSleep(root, us);
}

static int cv_current_time(sqlite3_vfs *vfs, double *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xCurrentTime(root, out);
}

static int cv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xGetLastError ? root->xGetLastError(root, n, out) : 0;
}

static int cv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	sqlite3_vfs *root = ((struct cvfs *)vfs)->root;
	return root->xCurrentTimeInt64(root, out);
}

int cipher_vfs_register(const char *name, sqlite3_vfs *root, sqlite3_vfs **out)
{
	struct cvfs *cv;
	int rc;

	if (root == NULL)
		root = sqlite3_vfs_find(NULL);
	if (root == NULL || root->iVersion < 2)
		return SQLITE_ERROR;
	cv = calloc(1, sizeof *cv);
	if (cv == NULL)
		return SQLITE_NOMEM;
	cv->name = strdup(name);
	if (cv->name == NULL) {
		free(cv);
		return SQLITE_NOMEM;
	}
	cv->root = root;
	pthread_mutex_init(&cv->mu, NULL);
	cv->vfs.iVersion = 2;
	cv->vfs.szOsFile = (int)sizeof(struct cfile) + root->szOsFile;
	cv->vfs.mxPathname = root->mxPathname;
	cv->vfs.zName = cv->name;
	cv->vfs.xOpen = cv_open;
	cv->vfs.xDelete = cv_delete;
	cv->vfs.xAccess = cv_access;
	cv->vfs.xFullPathname = cv_full_pathname;
	cv->vfs.xDlOpen = cv_dl_open;
	cv->vfs.xDlError = cv_dl_error;
	cv->vfs.xDlSym = cv_dl_sym;
	cv->vfs.xDlClose = cv_dl_close;
	cv->vfs.xRandomness = cv_randomness;
	cv->vfs.xSleep = cv_sleep;
	cv->vfs.xCurrentTime = cv_current_time;
	cv->vfs.xGetLastError = cv_get_last_error;
	cv->vfs.xCurrentTimeInt64 = cv_current_time_int64;
	rc = sqlite3_vfs_register(&cv->vfs, 0);
	if (rc != SQLITE_OK) {
		pthread_mutex_destroy(&cv->mu);
		free(cv->name);
		free(cv);
		return rc;
	}
	*out = &cv->vfs;
	return SQLITE_OK;
}

static void entry_free(struct cvfs_entry *e)
{
	if (e == NULL)
		return;
	free(e->path);
	cipher_free(e->c);
	free(e);
}

void cipher_vfs_unregister(sqlite3_vfs *vfs)
{
	struct cvfs *cv = (struct cvfs *)vfs;
	struct cvfs_entry *e, *next;

	if (vfs == NULL)
		return;
	sqlite3_vfs_unregister(vfs);
	for (e = cv->entries; e != NULL; e = next) {
		next = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&cv->mu);
	free(cv->name);
	free(cv);
}

/* path as SQLite will name it to xOpen (sqlite3_malloc'd), or NULL. */
static char *full_pathname(struct cvfs *cv, const char *path)
{
	int n = cv->root->mxPathname + 1;
	char *out = sqlite3_malloc(n);

	if (out == NULL)
		return NULL;
	if (cv->root->xFullPathname(cv->root, path, n, out) != SQLITE_OK) {
		sqlite3_free(out);
		return NULL;
	}
	return out;
}

int cipher_vfs_add(sqlite3_vfs *vfs, const char *path, const struct cipher *c,
		   uint32_t page_size, char *err, size_t err_len)
{
	struct cvfs *cv = (struct cvfs *)vfs;
	struct cvfs_entry *e = NULL, *had;
	enum cfile_kind kind;
	char *full = NULL;
	int rc = -1;

	if (page_size < 512 || page_size > 65536 ||
	    (page_size & (page_size - 1)) != 0) {
		errors_set(err, err_len,
			   "page size %u is not a power of two from 512 to "
			   "65536",
			   page_size);
		return -1;
	}
	full = full_pathname(cv, path);
	e = calloc(1, sizeof *e);
	if (full == NULL || e == NULL || (e->path = strdup(full)) == NULL) {
		errors_set(err, err_len, "cannot resolve the path %s", path);
		goto cleanup;
	}
	if (cipher_dup(c, &e->c, err, err_len) != 0)
		goto cleanup;
	e->page_size = page_size;
	e->refs = 1;
	pthread_mutex_lock(&cv->mu);
	if ((had = find_locked(cv, e->path, &kind)) != NULL) {
		/* Added again with the same key (another user of the file in
		 * this process): one more reference; with another key, or as
		 * the WAL of another name, refused. */
		uint8_t a[CIPHER_CHECK_SIZE], b[CIPHER_CHECK_SIZE];
		int same = kind == CFILE_DB && had->page_size == page_size;
		if (same) {
			cipher_check_value(had->c, a);
			cipher_check_value(c, b);
			same = memcmp(a, b, sizeof a) == 0;
		}
		if (same)
			had->refs++;
		pthread_mutex_unlock(&cv->mu);
		if (same) {
			rc = 0;
			goto cleanup;
		}
		errors_set(err, err_len, "%s is already encrypted by %s", path,
			   cv->name);
		goto cleanup;
	}
	e->next = cv->entries;
	cv->entries = e;
	e = NULL;
	pthread_mutex_unlock(&cv->mu);
	rc = 0;
cleanup:
	entry_free(e);
	sqlite3_free(full);
	return rc;
}

int cipher_vfs_remove(sqlite3_vfs *vfs, const char *path)
{
	struct cvfs *cv = (struct cvfs *)vfs;
	struct cvfs_entry **pp, *e = NULL;
	char *full = full_pathname(cv, path);
	int found;

	if (full == NULL)
		return -1;
	pthread_mutex_lock(&cv->mu);
	for (pp = &cv->entries; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->path, full) == 0) {
			e = *pp;
			break;
		}
	}
	found = e != NULL;
	if (found && --e->refs == 0)
		*pp = e->next;
	else
		e = NULL; /* still added for another user, or never was */
	pthread_mutex_unlock(&cv->mu);
	sqlite3_free(full);
	entry_free(e);
	return found ? 0 : -1;
}
