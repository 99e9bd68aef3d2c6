/* The whole-database checksum of the live database (base/dbsum.h), kept per
 * commit: the term of every page of the head state, the checksum at the
 * head, and the checksum after every commit frame of the current
 * generation, so that /info, pulls and pushes can name the checksum of any
 * position a replica can be at.  Updated under the live database's write
 * lock (the SQL commit hook and the push path both hold it), in proportion
 * to the pages a transaction writes; the checksums after frames are also
 * read under mu. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dbsum.h"
#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

/* The term of a page that the database grew to without writing it: SQLite
 * reads such a page as zeros. */
static uint64_t zero_term(uint32_t pgno)
{
	static const uint8_t zeros[WALFMT_PAGE_SIZE];

	return dbsum_page(pgno, zeros, WALFMT_PAGE_SIZE);
}

static int reserve_terms(struct store_sum *m, uint32_t n_pages)
{
	uint64_t *grown;
	uint32_t cap = m->cap ? m->cap : 1024;

	if (n_pages <= m->cap)
		return 0;
	while (cap < n_pages)
		cap *= 2;
	grown = realloc(m->terms, (size_t)cap * sizeof *grown);
	if (grown == NULL)
		return -ENOMEM;
	m->terms = grown;
	m->cap = cap;
	return 0;
}

static int undo_push(struct store_sum *m, uint32_t pgno, uint64_t old)
{
	if (m->n_undo == m->cap_undo) {
		size_t cap = m->cap_undo ? m->cap_undo * 2 : 256;
		struct store_sum_undo *grown =
		    realloc(m->undo, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		m->undo = grown;
		m->cap_undo = cap;
	}
	m->undo[m->n_undo].pgno = pgno;
	m->undo[m->n_undo].term = old;
	m->n_undo++;
	return 0;
}

static int set_term(struct store_sum *m, uint32_t pgno, uint64_t term)
{
	uint64_t old = m->terms[pgno - 1];

	if (undo_push(m, pgno, old) != 0)
		return -ENOMEM;
	m->sum ^= old ^ term;
	m->terms[pgno - 1] = term;
	return 0;
}

int store_sum_apply(struct store_sum *m, const struct wal_page *pages, size_t n,
		    uint32_t db_size, uint64_t *result)
{
	uint32_t p;
	size_t i;

	m->n_undo = 0;
	m->undo_n_pages = m->n_pages;
	m->undo_sum = m->sum;
	if (reserve_terms(m, db_size) != 0)
		return -ENOMEM;
	/* Grown without being written: zeros (pages written below get
	 * their own term next).  Shrunk: the pages past the end leave. */
	for (p = m->n_pages + 1; p <= db_size; p++) {
		m->terms[p - 1] = 0;
		if (set_term(m, p, zero_term(p)) != 0)
			goto oom;
	}
	for (i = 0; i < n; i++) {
		if (pages[i].pgno == 0 || pages[i].pgno > db_size)
			continue;
		if (set_term(m, pages[i].pgno,
			     dbsum_page(pages[i].pgno, pages[i].data,
					WALFMT_PAGE_SIZE)) != 0)
			goto oom;
	}
	for (p = db_size + 1; p <= m->n_pages; p++) {
		if (set_term(m, p, 0) != 0)
			goto oom;
	}
	m->n_pages = db_size;
	*result = m->sum;
	return 0;
oom:
	store_sum_undo(m);
	return -ENOMEM;
}

void store_sum_undo(struct store_sum *m)
{
	size_t i;

	for (i = m->n_undo; i > 0; i--)
		m->terms[m->undo[i - 1].pgno - 1] = m->undo[i - 1].term;
	m->n_undo = 0;
	m->n_pages = m->undo_n_pages;
	m->sum = m->undo_sum;
}

int store_sum_record_locked(struct store_sum *m, uint32_t frame, uint64_t sum)
{
	if (frame > m->cap_at) {
		size_t cap = m->cap_at ? m->cap_at : 1024;
		uint64_t *grown;
		while (cap < frame)
			cap *= 2;
		grown = realloc(m->at, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		m->at = grown;
		m->cap_at = cap;
	}
	/* Frames of the transaction before its commit frame have no
	 * checksum of their own. */
	while (m->n_at + 1 < frame)
		m->at[m->n_at++] = 0;
	m->at[frame - 1] = sum;
	m->n_at = frame;
	return 0;
}

void store_sum_forget_locked(struct store_sum *m, uint32_t after)
{
	if (m->n_at > after)
		m->n_at = after;
}

int store_sum_at_locked(const struct store_sum *m, uint32_t frame,
			uint64_t *out)
{
	if (frame == 0) {
		*out = m->base;
		return 0;
	}
	if (frame > m->n_at || m->at[frame - 1] == 0)
		return -1;
	*out = m->at[frame - 1];
	return 0;
}

void store_sum_new_generation_locked(struct store_sum *m)
{
	m->base = m->sum;
	m->n_at = 0;
}

/* The terms of every page of the generation's base: from its base.terms
 * (store_terms.c) when that checks, else read in chunks and kept there. */
static int load_file(struct store_sum *m, const char *gen_dir, const char *path,
		     char *err, size_t n)
{
	const size_t chunk = 256 * WALFMT_PAGE_SIZE;
	uint8_t *buf = malloc(chunk);
	struct stat st;
	uint64_t off;
	int fd = -1, rv = -1, e;

	if (buf == NULL) {
		errors_set(err, n, "out of memory");
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		errors_set(err, n, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	m->n_pages = (uint32_t)((uint64_t)st.st_size / WALFMT_PAGE_SIZE);
	if (reserve_terms(m, m->n_pages) != 0) {
		errors_set(err, n, "out of memory");
		goto out;
	}
	m->sum = 0;
	if (store_terms_read(gen_dir, (uint64_t)st.st_size, m->terms,
			     m->n_pages) == 0) {
		uint32_t i;
		for (i = 0; i < m->n_pages; i++)
			m->sum ^= m->terms[i];
		rv = 0;
		goto out;
	}
	for (off = 0; off < (uint64_t)m->n_pages * WALFMT_PAGE_SIZE;
	     off += chunk) {
		uint64_t left = (uint64_t)m->n_pages * WALFMT_PAGE_SIZE - off;
		size_t len = left < chunk ? (size_t)left : chunk, i;

		e = fileio_read_all(fd, buf, len, off);
		if (e != 0) {
			errors_set(err, n, "cannot read %s: %s", path,
				   strerror(-e));
			goto out;
		}
		for (i = 0; i < len; i += WALFMT_PAGE_SIZE) {
			uint32_t pgno =
			    (uint32_t)((off + i) / WALFMT_PAGE_SIZE) + 1;
			m->terms[pgno - 1] =
			    dbsum_page(pgno, buf + i, WALFMT_PAGE_SIZE);
			m->sum ^= m->terms[pgno - 1];
		}
	}
	store_terms_write(gen_dir, m->terms, m->n_pages, (uint64_t)st.st_size);
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rv;
}

int store_sum_init(struct store *s, char *err, size_t n)
{
	struct store_sum *m = &s->sum;
	struct generation *g = store_current_locked(s);
	uint32_t head = frame_log_head(g->log), f, first = 1;
	struct wal_page *pages = NULL;
	uint8_t *buf = NULL;
	char *base = util_strdupf("%s/base.db", g->dir);
	size_t cap = 0;
	uint64_t sum;
	int rv = -1;

	if (base == NULL || load_file(m, g->dir, base, err, n) != 0)
		goto out;
	store_sum_new_generation_locked(m);
	/* Replay the generation's transactions, recording the checksum
	 * after each commit frame. */
	for (f = 1; f <= head; f++) {
		uint32_t k = f - first, db_size;
		if (k >= cap) {
			size_t ncap = cap ? cap * 2 : 64;
			uint8_t *nbuf = realloc(buf, ncap * WALFMT_FRAME_SIZE);
			struct wal_page *np;
			if (nbuf == NULL)
				goto oom;
			buf = nbuf;
			np = realloc(pages, ncap * sizeof *np);
			if (np == NULL)
				goto oom;
			pages = np;
			cap = ncap;
		}
		if (frame_log_read(g->log, f, f + 1,
				   buf + (size_t)k * WALFMT_FRAME_SIZE) != 0) {
			errors_set(err, n,
				   "cannot read frame %u of generation %u", f,
				   g->number);
			goto out;
		}
		db_size = walfmt_get32(buf + (size_t)k * WALFMT_FRAME_SIZE + 4);
		if (db_size == 0)
			continue;
		for (k = 0; k <= f - first; k++) {
			const uint8_t *fr = buf + (size_t)k * WALFMT_FRAME_SIZE;
			pages[k].pgno = walfmt_get32(fr);
			pages[k].data = fr + WALFMT_FRAME_HDR_SIZE;
		}
		if (store_sum_apply(m, pages, f - first + 1, db_size, &sum) !=
			0 ||
		    store_sum_record_locked(m, f, sum) != 0)
			goto oom;
		first = f + 1;
	}
	rv = 0;
	goto out;
oom:
	errors_set(err, n, "out of memory");
out:
	free(pages);
	free(buf);
	free(base);
	return rv;
}

void store_sum_free(struct store_sum *m)
{
	free(m->terms);
	free(m->undo);
	free(m->at);
	memset(m, 0, sizeof *m);
}
