/* Which rows one transaction changed, from its pages.
 *
 * The normal path costs what the transaction does.  A row lives in a cell
 * of a table b-tree leaf, so a row that changed has a cell on a leaf the
 * transaction wrote, before or after (a row moved by a page split has a
 * cell on a written leaf on both sides, and compares equal), or on a leaf
 * it freed: SQLite does not write a page it moves to the freelist
 * (sqlite3PagerDontWrite), so the leaves of a dropped table, or one emptied
 * by deletes, are found as the pages the freelist gains (walking its trunk
 * chain, from page 1 offset 32, costs one read per 1022 free pages).  Each
 * such leaf's table is the rowid table whose descent by the leaf's first
 * rowid, from its root in that state's schema, reaches the leaf; its rowids
 * are then read in both views (wal/page_view.h) and rows that are equal are
 * no change.  Page 1 is sqlite_schema's root: DDL shows as its rows.
 *
 * Every other page the transaction writes must then be accounted for: a
 * freelist page, a pointer-map page (auto-vacuum), an index or interior
 * page, or an overflow page of a cell on one of those leaves.  What is left
 * is an overflow page of a row whose leaf cell did not change (SQLite
 * overwrites a same-size payload in place, writing only the overflow pages
 * that differ): pages cannot say whose, so every rowid table having cells
 * with overflow is diffed whole, by rowid (the overflow fallback).
 *
 * WITHOUT ROWID tables are index b-trees, which this module does not
 * attribute to their tables: when an index page changes and the schema has
 * WITHOUT ROWID tables, each is diffed whole by its PRIMARY KEY (the
 * WITHOUT ROWID fallback).  A table in one state only (created, dropped, or
 * replaced by one of another kind or key) has every row listed.
 *
 * Not reported: what a schema change alone reinterprets (ALTER TABLE ADD
 * COLUMN gives old rows the default without writing them): the
 * sqlite_schema row shows it.  Rows are compared as SQLite stores them
 * (type and bytes), matched by rowid (under whichever of rowid, _rowid_,
 * oid no column takes) or by the PRIMARY KEY under BINARY (so a change of
 * a NOCASE key's case is a delete and an insert). */
#include "rowdiff_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/btree_page.h"
#include "wal/walfmt.h"

#define PAGE PAGE_VIEW_PAGE_SIZE
/* The page holding SQLite's default PENDING_BYTE: never used. */
#define PENDING_PAGE (0x40000000u / PAGE + 1)

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int rowdiff_has_u32(const uint32_t *v, size_t n, uint32_t x)
{
	return n > 0 && bsearch(&x, v, n, sizeof *v, cmp_u32) != NULL;
}

struct rowdiff_seen *rowdiff_find_page(struct rowdiff_ctx *c, uint32_t pgno)
{
	size_t lo = 0, hi = c->n_pages;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->pages[mid].pgno == pgno)
			return &c->pages[mid];
		if (c->pages[mid].pgno < pgno)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int rowdiff_oom(struct rowdiff_ctx *c)
{
	errors_set(c->err, c->err_len, "out of memory");
	return -1;
}

int rowdiff_read_page(struct rowdiff_ctx *c, int s, uint32_t pgno, uint8_t *out)
{
	if (c->side[s].v != NULL &&
	    page_view_read(c->side[s].v, pgno, out) == 0)
		return 0;
	errors_set(c->err, c->err_len, "cannot read page %u (%s)", pgno,
		   s ? "after" : "before");
	return -1;
}

int rowdiff_present(const struct rowdiff_seen *p, int s)
{
	return p->img[s] != NULL || (s == 0 && p->freed);
}

int rowdiff_image(struct rowdiff_ctx *c, const struct rowdiff_seen *p, int s,
		  const uint8_t **out)
{
	*out = p->img[s];
	if (*out != NULL || s != 0 || !p->freed)
		return 0;
	if (rowdiff_read_page(c, 0, p->pgno, c->freed_buf) != 0)
		return -1;
	*out = c->freed_buf;
	return 0;
}

/* --- The states ---------------------------------------------------------- */

/* SQLite's ptrmapPageno: pointer-map pages follow page 2 every
 * usable/5 + 1 pages. */
static int is_ptrmap(uint32_t pgno)
{
	uint32_t per = PAGE / 5 + 1, map;

	if (pgno < 2)
		return 0;
	map = (pgno - 2) / per * per + 2;
	if (map == PENDING_PAGE)
		map++;
	return map == pgno;
}

static int push_u32(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		uint32_t *nv = realloc(*v, nc * sizeof *nv);

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

/* The freelist of side s: its trunk chain and every leaf the trunks list
 * (pages beyond the size are ignored; a cycle ends the walk). */
static int load_freelist(struct rowdiff_ctx *c, int s)
{
	struct rowdiff_side *sd = &c->side[s];
	size_t cap = 0, steps = 0;
	uint32_t trunk, n, i;

	if (sd->v == NULL)
		return 0;
	if (rowdiff_read_page(c, s, 1, c->buf) != 0)
		return -1;
	sd->autovacuum = walfmt_get32(c->buf + 52) != 0;
	trunk = walfmt_get32(c->buf + 32);
	while (trunk >= 2 && trunk <= sd->size && steps++ < sd->size) {
		if (rowdiff_read_page(c, s, trunk, c->buf) != 0)
			return -1;
		if (push_u32(&sd->free, &sd->n_free, &cap, trunk) != 0)
			return rowdiff_oom(c);
		n = walfmt_get32(c->buf + 4);
		if (n > (PAGE - 8) / 4)
			n = (PAGE - 8) / 4;
		for (i = 0; i < n; i++) {
			uint32_t leaf = walfmt_get32(c->buf + 8 + 4 * i);

			if (leaf >= 2 && leaf <= sd->size &&
			    push_u32(&sd->free, &sd->n_free, &cap, leaf) != 0)
				return rowdiff_oom(c);
		}
		trunk = walfmt_get32(c->buf);
	}
	/* (qsort's array may not be NULL, even empty) */
	if (sd->n_free > 0)
		qsort(sd->free, sd->n_free, sizeof *sd->free, cmp_u32);
	return 0;
}

static int open_side(struct rowdiff_ctx *c, int s)
{
	const struct rowdiff_input *in = c->in;
	struct rowdiff_side *sd = &c->side[s];
	size_t i;

	sd->size = s ? in->size_after : in->size_before;
	sd->overlay =
	    calloc(in->n_pages ? in->n_pages : 1, sizeof *sd->overlay);
	if (sd->overlay == NULL)
		return rowdiff_oom(c);
	for (i = 0; i < in->n_pages; i++) {
		const struct rowdiff_page *p = &in->pages[i];
		const uint8_t *img = s ? p->after : p->before;

		if (p->pgno > sd->size)
			continue;
		if (img == NULL) {
			errors_set(c->err, c->err_len,
				   "page %u has no image %s", p->pgno,
				   s ? "after" : "before");
			return -1;
		}
		sd->overlay[sd->n_overlay].pgno = p->pgno;
		sd->overlay[sd->n_overlay].data = img;
		sd->n_overlay++;
	}
	if (sd->size == 0)
		return 0; /* an empty database: no view, no tables */
	if (page_view_open(&sd->v, sd->size, sd->overlay, sd->n_overlay,
			   in->read, in->arg, c->err, c->err_len) != 0)
		return -1;
	if (rowdiff_schema_load(sd, c->err, c->err_len) != 0)
		return -1;
	return load_freelist(c, s);
}

static void close_side(struct rowdiff_side *sd)
{
	rowdiff_schema_free(sd);
	page_view_close(sd->v);
	free(sd->overlay);
	free(sd->free);
}

/* The written pages, then the freed ones: on the freelist after, not
 * before, inside the database before and not written (their rows are
 * still on them as they were). */
static int collect_pages(struct rowdiff_ctx *c)
{
	const struct rowdiff_input *in = c->in;
	struct rowdiff_side *b = &c->side[0], *a = &c->side[1];
	size_t i, n_freed = 0, k = 0;

	for (i = 0; i < a->n_free; i++)
		if (a->free[i] <= b->size &&
		    !rowdiff_has_u32(b->free, b->n_free, a->free[i]))
			n_freed++;
	c->pages = calloc(in->n_pages + n_freed + 1, sizeof *c->pages);
	if (c->pages == NULL)
		return rowdiff_oom(c);
	for (i = 0; i < in->n_pages; i++) {
		const struct rowdiff_page *p = &in->pages[i];

		c->pages[k].pgno = p->pgno;
		c->pages[k].img[0] = p->pgno <= b->size ? p->before : NULL;
		c->pages[k].img[1] = p->pgno <= a->size ? p->after : NULL;
		k++;
	}
	c->n_pages = k;
	for (i = 0; i < a->n_free; i++) {
		uint32_t pg = a->free[i];

		if (pg > b->size || rowdiff_has_u32(b->free, b->n_free, pg) ||
		    rowdiff_find_page(c, pg) != NULL)
			continue; /* written too: its images are given */
		c->pages[k].pgno = pg;
		c->pages[k].freed = 1;
		k++;
		c->st.pages_freed++;
	}
	c->n_pages = k;
	qsort(c->pages, c->n_pages, sizeof *c->pages, cmp_u32);
	return 0;
}

/* --- Jobs: one per table name ----------------------------------------- */

static struct rowdiff_job *job_for(struct rowdiff_ctx *c, const char *name)
{
	struct rowdiff_job *j;
	size_t i;

	for (i = 0; i < c->n_jobs; i++)
		if (strcmp(c->jobs[i].name, name) == 0)
			return &c->jobs[i];
	j = realloc(c->jobs, (c->n_jobs + 1) * sizeof *j);
	if (j == NULL)
		return NULL;
	c->jobs = j;
	j += c->n_jobs++;
	memset(j, 0, sizeof *j);
	j->name = name;
	return j;
}

/* sqlite_schema first, then by name. */
static int cmp_job(const void *a, const void *b)
{
	const struct rowdiff_job *x = a, *y = b;
	int sx = x->t[0] ? x->t[0]->root == 1 : x->t[1]->root == 1;
	int sy = y->t[0] ? y->t[0]->root == 1 : y->t[1]->root == 1;

	if (sx != sy)
		return sx ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int make_jobs(struct rowdiff_ctx *c)
{
	size_t i;
	int s;

	for (s = 0; s < 2; s++)
		for (i = 0; i < c->side[s].n_tables; i++) {
			struct rowdiff_table *t = &c->side[s].tables[i];
			struct rowdiff_job *j = job_for(c, t->name);

			if (j == NULL)
				return rowdiff_oom(c);
			j->t[s] = t;
		}
	qsort(c->jobs, c->n_jobs, sizeof *c->jobs, cmp_job);
	return 0;
}

static struct rowdiff_job *job_of(struct rowdiff_ctx *c,
				  const struct rowdiff_table *t)
{
	size_t i;

	for (i = 0; i < c->n_jobs; i++)
		if (c->jobs[i].t[0] == t || c->jobs[i].t[1] == t)
			return &c->jobs[i];
	return NULL;
}

static int add_rowid(struct rowdiff_job *j, int64_t rowid)
{
	if (j->n_rowids == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 64;
		int64_t *v = realloc(j->rowids, cap * sizeof *v);

		if (v == NULL)
			return -1;
		j->rowids = v;
		j->cap = cap;
	}
	j->rowids[j->n_rowids++] = rowid;
	return 0;
}

/* --- Leaves and their tables ------------------------------------------ */

struct seek {
	int64_t rowid;
	uint32_t child;
};

static int seek_cell(void *arg, const struct btree_cell *cell)
{
	struct seek *k = arg;

	if (cell->key < k->rowid)
		return 0;
	k->child = cell->child;
	return 1;
}

/* 1 if t's descent by rowid reaches page leaf in side s, 0 if not, -1 on
 * a read failure. */
static int reaches(struct rowdiff_ctx *c, int s, const struct rowdiff_table *t,
		   int64_t rowid, uint32_t leaf)
{
	uint32_t pg = t->root;
	int depth;

	for (depth = 0; depth < 64; depth++) {
		struct seek k = {rowid, 0};

		if (pg == leaf)
			return 1;
		if (pg < 1 || pg > c->side[s].size)
			return 0;
		if (rowdiff_read_page(c, s, pg, c->buf) != 0)
			return -1;
		if (c->buf[pg == 1 ? 100 : 0] != BTREE_PAGE_INTERIOR_TABLE)
			return 0;
		if (btree_page_cells(c->buf, pg, PAGE, seek_cell, &k) < 0)
			return 0;
		pg = k.child ? k.child : btree_page_right_child(c->buf, pg);
	}
	return 0;
}

/* The rowid table of side s whose tree holds leaf (NULL: none, e.g. a
 * page of another kind whose first byte looks like a leaf's). */
static int owner(struct rowdiff_ctx *c, int s, uint32_t leaf, int has_rowid,
		 int64_t rowid, const struct rowdiff_table **out)
{
	struct rowdiff_side *sd = &c->side[s];
	size_t i, n = sd->n_tables;

	*out = NULL;
	for (i = 0; i < n; i++) {
		/* The last leaf's table first: leaves come in runs. */
		size_t k = (c->owner_hint[s] + i) % n;
		const struct rowdiff_table *t = &sd->tables[k];
		int rc;

		if (t->without_rowid)
			continue;
		if (!has_rowid) {
			/* An empty leaf is a table's only when it is the
			 * root of an empty table. */
			if (t->root == leaf) {
				*out = t;
				return 0;
			}
			continue;
		}
		rc = reaches(c, s, t, rowid, leaf);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			c->owner_hint[s] = k;
			*out = t;
			return 0;
		}
	}
	return 0;
}

struct leaf_rows {
	int64_t *rowids;
	size_t n, cap;
};

static int leaf_cell(void *arg, const struct btree_cell *cell)
{
	struct leaf_rows *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		int64_t *v = realloc(r->rowids, cap * sizeof *v);

		if (v == NULL)
			return -2;
		r->rowids = v;
		r->cap = cap;
	}
	r->rowids[r->n++] = cell->key;
	return 0;
}

/* The rowids of a table leaf of side s, added to its table's job. */
static int leaf_rows(struct rowdiff_ctx *c, int s, uint32_t pgno,
		     const uint8_t *img)
{
	struct leaf_rows r = {NULL, 0, 0};
	const struct rowdiff_table *t;
	struct rowdiff_job *j;
	size_t i;
	int rc, rv = -1;

	rc = btree_page_cells(img, pgno, PAGE, leaf_cell, &r);
	if (rc == -2) {
		rowdiff_oom(c);
		goto out;
	}
	if (rc != 0) {
		rv = 0; /* not a b-tree page after all: no rows */
		goto out;
	}
	if (owner(c, s, pgno, r.n > 0, r.n ? r.rowids[0] : 0, &t) != 0)
		goto out;
	rv = 0;
	if (t == NULL)
		goto out;
	j = job_of(c, t);
	for (i = 0; j != NULL && i < r.n; i++)
		if (add_rowid(j, r.rowids[i]) != 0) {
			rv = rowdiff_oom(c);
			goto out;
		}
out:
	free(r.rowids);
	return rv;
}

/* Pass 1: what each page is in each state; the rows of table leaves. */
static int classify(struct rowdiff_ctx *c, size_t *unknown)
{
	size_t i;
	int s;

	*unknown = 0;
	for (i = 0; i < c->n_pages; i++) {
		struct rowdiff_seen *p = &c->pages[i];

		for (s = 0; s < 2; s++) {
			struct rowdiff_side *sd = &c->side[s];
			const uint8_t *img;
			uint8_t type;

			if (!rowdiff_present(p, s))
				continue;
			if ((sd->autovacuum && is_ptrmap(p->pgno)) ||
			    p->pgno == PENDING_PAGE ||
			    rowdiff_has_u32(sd->free, sd->n_free, p->pgno)) {
				p->known[s] = 1;
				continue;
			}
			if (rowdiff_image(c, p, s, &img) != 0)
				return -1;
			type = img[p->pgno == 1 ? 100 : 0];
			switch (type) {
			case BTREE_PAGE_LEAF_TABLE:
				if (leaf_rows(c, s, p->pgno, img) != 0)
					return -1;
				/* fall through */
			case BTREE_PAGE_INTERIOR_TABLE:
				p->known[s] = 1;
				break;
			case BTREE_PAGE_LEAF_INDEX:
			case BTREE_PAGE_INTERIOR_INDEX:
				p->known[s] = 1;
				c->index_changed = 1;
				break;
			default:
				(*unknown)++;
			}
		}
	}
	return 0;
}

/* --- The difference ------------------------------------------------------ */

static size_t dedupe(int64_t *v, size_t n)
{
	size_t i, k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_i64);
	for (i = 0; i < n; i++)
		if (k == 0 || v[k - 1] != v[i])
			v[k++] = v[i];
	return k;
}

int rowdiff_compute(const struct rowdiff_input *in, struct rowdiff_change **out,
		    size_t *n_out, char *err, size_t err_len)
{
	struct rowdiff_ctx *c = calloc(1, sizeof *c);
	struct rowdiff_out o = {NULL, 0, 0};
	size_t i, unknown;
	int s, rv = -1, any_wr = 0;

	*out = NULL;
	*n_out = 0;
	if (c == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	c->in = in;
	c->err = err;
	c->err_len = err_len;
	for (i = 0; i < in->n_pages; i++)
		if (in->pages[i].pgno == 0 ||
		    (i > 0 && in->pages[i].pgno <= in->pages[i - 1].pgno)) {
			errors_set(err, err_len,
				   "the changed pages are not sorted and "
				   "unique (page %u)",
				   in->pages[i].pgno);
			goto done;
		}
	for (s = 0; s < 2; s++)
		if (open_side(c, s) != 0)
			goto done;
	if (collect_pages(c) != 0 || make_jobs(c) != 0 ||
	    classify(c, &unknown) != 0)
		goto done;
	if (unknown > 0) {
		if (rowdiff_walk_chains(c) != 0)
			goto done;
		if (rowdiff_unexplained(c) > 0 &&
		    rowdiff_overflow_fallback(c) != 0)
			goto done;
	}
	for (i = 0; i < c->n_jobs; i++)
		for (s = 0; s < 2; s++)
			if (c->jobs[i].t[s] && c->jobs[i].t[s]->without_rowid)
				any_wr = 1;
	if (c->index_changed && any_wr) {
		c->st.without_rowid_fallback = 1;
		for (i = 0; i < c->n_jobs; i++)
			for (s = 0; s < 2; s++)
				if (c->jobs[i].t[s] &&
				    c->jobs[i].t[s]->without_rowid)
					c->jobs[i].whole = 1;
	}
	for (i = 0; i < c->n_jobs; i++) {
		struct rowdiff_job *j = &c->jobs[i];

		j->n_rowids = dedupe(j->rowids, j->n_rowids);
		if (rowdiff_job_run(c->side, j, &o, &c->st, err, err_len) != 0)
			goto done;
	}
	rv = 0;
done:
	if (rv == 0) {
		*out = o.c;
		*n_out = o.n;
	} else {
		rowdiff_free(o.c, o.n);
	}
	if (in->stats != NULL)
		*in->stats = c->st;
	for (i = 0; i < c->n_jobs; i++)
		free(c->jobs[i].rowids);
	free(c->jobs);
	free(c->pages);
	for (s = 0; s < 2; s++)
		close_side(&c->side[s]);
	free(c);
	return rv;
}

void rowdiff_free(struct rowdiff_change *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(c[i].table);
		json_decref(c[i].key);
		json_decref(c[i].before);
		json_decref(c[i].after);
	}
	free(c);
}
