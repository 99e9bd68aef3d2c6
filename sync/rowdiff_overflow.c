/* The overflow pages of rowdiff: which written pages are overflow pages of
 * cells the transaction changed (so their rows are looked up already), and
 * the fallback for those that are not (rowdiff.c says why it is needed). */
#include "rowdiff_internal.h"

#include <stdlib.h>

#include "wal/btree_page.h"
#include "wal/walfmt.h"

#define PAGE PAGE_VIEW_PAGE_SIZE

struct chain_walk {
	struct rowdiff_ctx *c;
	int s;
	int failed;
};

/* Marks the pages of a cell's overflow chain that the list holds. */
static int chain_cell(void *arg, const struct btree_cell *cell)
{
	struct chain_walk *w = arg;
	struct rowdiff_ctx *c = w->c;
	uint32_t pg = cell->overflow, i;
	uint8_t buf[PAGE];

	for (i = 0; i < cell->n_overflow && pg >= 2 && pg <= c->side[w->s].size;
	     i++) {
		struct rowdiff_seen *p = rowdiff_find_page(c, pg);

		if (p != NULL)
			p->chained[w->s] = 1;
		if (i + 1 == cell->n_overflow)
			break;
		if (rowdiff_read_page(c, w->s, pg, buf) != 0) {
			w->failed = 1;
			return 1;
		}
		pg = walfmt_get32(buf);
	}
	return 0;
}

/* Pass 2: the overflow chains of every cell on the listed b-tree pages
 * (only needed, and only run, when pass 1 left pages unexplained). */
int rowdiff_walk_chains(struct rowdiff_ctx *c)
{
	size_t i;
	int s;

	for (i = 0; i < c->n_pages; i++)
		for (s = 0; s < 2; s++) {
			struct rowdiff_seen *p = &c->pages[i];
			struct chain_walk w = {c, s, 0};
			const uint8_t *img;
			uint8_t type;

			if (!rowdiff_present(p, s) || !p->known[s])
				continue;
			if (rowdiff_image(c, p, s, &img) != 0)
				return -1;
			type = img[p->pgno == 1 ? 100 : 0];
			if (type != BTREE_PAGE_LEAF_TABLE &&
			    type != BTREE_PAGE_LEAF_INDEX &&
			    type != BTREE_PAGE_INTERIOR_INDEX)
				continue;
			if (rowdiff_has_u32(c->side[s].free, c->side[s].n_free,
					    p->pgno))
				continue; /* a free page's old cells */
			btree_page_cells(img, p->pgno, PAGE, chain_cell, &w);
			if (w.failed)
				return -1;
		}
	return 0;
}

struct any_overflow {
	int found;
};

static int overflow_cell(void *arg, const struct btree_cell *cell)
{
	struct any_overflow *a = arg;

	if (cell->overflow == 0)
		return 0;
	a->found = 1;
	return 1;
}

struct children {
	uint32_t *pg;
	size_t n, cap;
};

static int child_cell(void *arg, const struct btree_cell *cell)
{
	struct children *k = arg;

	if (k->n == k->cap) {
		size_t nc = k->cap ? 2 * k->cap : 64;
		uint32_t *v = realloc(k->pg, nc * sizeof *v);

		if (v == NULL)
			return -2;
		k->pg = v;
		k->cap = nc;
	}
	k->pg[k->n++] = cell->child;
	return 0;
}

/* Whether rowid table t of side s has a leaf cell with overflow (a walk of
 * its pages, stopping at the first). 1, 0, or -1. */
static int has_overflow(struct rowdiff_ctx *c, int s,
			const struct rowdiff_table *t)
{
	struct children k = {NULL, 0, 0};
	uint32_t steps = 0;
	int rv = 0;

	if (child_cell(&k, &(struct btree_cell){.child = t->root}) != 0)
		return rowdiff_oom(c);
	while (k.n > 0 && rv == 0) {
		uint32_t pg = k.pg[--k.n], right;
		struct any_overflow a = {0};
		uint8_t type;

		if (pg < 1 || pg > c->side[s].size || steps++ > c->side[s].size)
			continue;
		if (rowdiff_read_page(c, s, pg, c->buf) != 0) {
			rv = -1;
			break;
		}
		type = c->buf[pg == 1 ? 100 : 0];
		if (type == BTREE_PAGE_LEAF_TABLE) {
			btree_page_cells(c->buf, pg, PAGE, overflow_cell, &a);
			rv = a.found;
		} else if (type == BTREE_PAGE_INTERIOR_TABLE) {
			right = btree_page_right_child(c->buf, pg);
			if (btree_page_cells(c->buf, pg, PAGE, child_cell,
					     &k) == -2 ||
			    child_cell(
				&k, &(struct btree_cell){.child = right}) != 0)
				rv = rowdiff_oom(c);
		}
	}
	free(k.pg);
	return rv;
}

/* The overflow fallback: pages nothing explains are overflow pages of
 * unknown rows, so every rowid table with overflow cells is merged whole. */
int rowdiff_overflow_fallback(struct rowdiff_ctx *c)
{
	size_t i;
	int s, rc;

	c->st.overflow_fallback = 1;
	for (i = 0; i < c->n_jobs; i++) {
		struct rowdiff_job *j = &c->jobs[i];

		for (s = 0; s < 2 && !j->whole; s++) {
			if (j->t[s] == NULL || j->t[s]->without_rowid)
				continue;
			rc = has_overflow(c, s, j->t[s]);
			if (rc < 0)
				return -1;
			j->whole = rc;
		}
	}
	return 0;
}

size_t rowdiff_unexplained(const struct rowdiff_ctx *c)
{
	size_t i, n = 0;
	int s;

	for (i = 0; i < c->n_pages; i++)
		for (s = 0; s < 2; s++)
			if (rowdiff_present(&c->pages[i], s) &&
			    !c->pages[i].known[s] && !c->pages[i].chained[s])
				n++;
	return n;
}
