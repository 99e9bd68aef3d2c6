#include "wal_read.h"

#include <stdarg.h>
#include <string.h>

#include "wal/wal_index.h"
#include "wal/walfmt.h"

struct reader {
	sqlite3_file *db_file;
	sqlite3_file *wal_file; /* NULL: the WAL is not open */
	uint32_t page_size;
	struct wal_index_hdr hdr;
	char **errmsg;
};

static int fail(struct reader *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct reader *r, int rc, const char *fmt, ...)
{
	va_list ap;

	if (r->errmsg != NULL) {
		sqlite3_free(*r->errmsg);
		va_start(ap, fmt);
		*r->errmsg = sqlite3_vmprintf(fmt, ap);
		va_end(ap);
	}
	return rc;
}

static sqlite3_file *file_of(sqlite3 *db, int op, wal_inject_unwrap_fn unwrap)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(db, "main", op, &f) != SQLITE_OK || f == NULL)
		return NULL;
	if (unwrap != NULL)
		f = unwrap(f);
	return f != NULL && f->pMethods != NULL ? f : NULL;
}

static int map_region(struct reader *r, uint32_t region, volatile uint8_t **out)
{
	volatile void *p = NULL;
	int rc = r->db_file->pMethods->xShmMap(r->db_file, (int)region,
					       WAL_INDEX_REGION_SIZE, 0, &p);

	if (rc != SQLITE_OK)
		return fail(r, rc, "cannot map wal-index region %u", region);
	*out = p;
	return SQLITE_OK;
}

/* Header copy 1, checked against copy 2 and its checksum. */
static int read_header(struct reader *r)
{
	struct wal_index_hdr copy2;
	volatile uint8_t *region0 = NULL;
	uint32_t sum[2];
	int rc = map_region(r, 0, &region0);

	if (rc != SQLITE_OK)
		return rc;
	if (region0 == NULL)
		return fail(r, SQLITE_CORRUPT, "the wal-index is not mapped");
	memcpy(&r->hdr, (const void *)region0, sizeof r->hdr);
	r->db_file->pMethods->xShmBarrier(r->db_file);
	memcpy(&copy2, (const void *)(region0 + sizeof r->hdr), sizeof copy2);
	wal_index_hdr_checksum(&r->hdr, sum);
	if (memcmp(&r->hdr, &copy2, sizeof copy2) != 0 || r->hdr.is_init != 1 ||
	    sum[0] != r->hdr.cksum[0] || sum[1] != r->hdr.cksum[1])
		return fail(r, SQLITE_BUSY,
			    "the wal-index header is being written");
	return SQLITE_OK;
}

/* The latest frame holding pgno at or below mxFrame, or 0. */
static int find_frame(struct reader *r, uint32_t pgno, uint32_t *frame)
{
	uint32_t last = r->hdr.max_frame, block;

	*frame = 0;
	if (last == 0)
		return SQLITE_OK;
	for (block = wal_index_frame_block(last);; block--) {
		volatile uint8_t *base = NULL;
		volatile uint16_t *slots;
		volatile uint32_t *pgnos;
		uint32_t zero, key, collisions = WAL_INDEX_HASH_NSLOT;
		int rc = map_region(r, block, &base);

		if (rc != SQLITE_OK)
			return rc;
		if (base == NULL)
			return fail(r, SQLITE_CORRUPT,
				    "wal-index region %u is missing", block);
		slots = (volatile uint16_t *)(base + WAL_INDEX_HASH_NPAGE * 4);
		if (block == 0) {
			pgnos =
			    (volatile uint32_t *)(base + WAL_INDEX_HDR_TOTAL);
			zero = 0;
		} else {
			pgnos = (volatile uint32_t *)base;
			zero = WAL_INDEX_HASH_NPAGE_ONE +
			       (block - 1) * WAL_INDEX_HASH_NPAGE;
		}
		for (key = wal_index_hash_key(pgno); slots[key] != 0;
		     key = wal_index_next_hash_key(key)) {
			uint32_t idx = slots[key], f = idx + zero;
			if (f <= last && f > *frame && pgnos[idx - 1] == pgno)
				*frame = f;
			if (--collisions == 0)
				return fail(r, SQLITE_CORRUPT,
					    "wal-index hash block %u loops",
					    block);
		}
		if (*frame != 0 || block == 0)
			return SQLITE_OK;
	}
}

static int read_page(struct reader *r, uint32_t pgno, uint8_t *out)
{
	uint32_t frame;
	sqlite3_int64 off;
	int rc = find_frame(r, pgno, &frame);

	if (rc != SQLITE_OK)
		return rc;
	if (frame != 0) {
		if (r->wal_file == NULL)
			return fail(r, SQLITE_CORRUPT,
				    "page %u is in the WAL, which is not open",
				    pgno);
		off = (sqlite3_int64)walfmt_frame_offset(frame, r->page_size) +
		      WALFMT_FRAME_HDR_SIZE;
		rc = r->wal_file->pMethods->xRead(r->wal_file, out,
						  (int)r->page_size, off);
		return rc == SQLITE_OK
			   ? SQLITE_OK
			   : fail(r, rc, "cannot read frame %u of the WAL",
				  frame);
	}
	off = (sqlite3_int64)(pgno - 1) * r->page_size;
	rc = r->db_file->pMethods->xRead(r->db_file, out, (int)r->page_size,
					 off);
	if (rc == SQLITE_IOERR_SHORT_READ)
		return SQLITE_OK; /* past the end: SQLite zero-fills */
	return rc == SQLITE_OK
		   ? SQLITE_OK
		   : fail(r, rc, "cannot read page %u of the database", pgno);
}

int wal_read_pages(sqlite3 *db, wal_inject_unwrap_fn unwrap, uint32_t page_size,
		   const uint32_t *pgnos, size_t n, uint8_t *out,
		   uint32_t *db_pages, char **errmsg)
{
	struct reader r = {.page_size = page_size, .errmsg = errmsg};
	sqlite3_int64 size = 0;
	size_t i;
	int rc;

	r.db_file = file_of(db, SQLITE_FCNTL_FILE_POINTER, unwrap);
	if (r.db_file == NULL)
		return fail(&r, SQLITE_MISUSE, "the database file is not open");
	r.wal_file = file_of(db, SQLITE_FCNTL_JOURNAL_POINTER, unwrap);
	rc = read_header(&r);
	if (rc != SQLITE_OK)
		return rc;
	if (r.hdr.max_frame > 0) {
		*db_pages = r.hdr.n_page;
	} else {
		rc = r.db_file->pMethods->xFileSize(r.db_file, &size);
		if (rc != SQLITE_OK)
			return fail(&r, rc, "cannot size the database file");
		*db_pages = (uint32_t)(size / page_size);
	}
	for (i = 0; i < n; i++) {
		rc = read_page(&r, pgnos[i], out + i * (size_t)page_size);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}
