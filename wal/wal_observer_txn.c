/* The write transaction a WAL handle is writing: which frame holds each page,
 * and its commit frame, held back until hooks.on_commit accepts it. */
#include "wal_observer_internal.h"

#include <stdlib.h>
#include <string.h>

void wal_observer_txn_reset(struct obs_txn *t)
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

int wal_observer_txn_write(struct obs_file *wal, const void *buf, int amt,
			   sqlite3_int64 off)
{
	struct obs_txn *t = &wal->txn;
	sqlite3_file *real = REAL(wal);
	int held = 0, rc;

	if (off == 0 && amt == WALFMT_HDR_SIZE) {
		/* A new WAL header: the log restarts at frame 1. */
		wal_observer_txn_reset(t);
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
