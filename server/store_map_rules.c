/* The rules a transaction must keep once its references have settled
 * (store_map_check.c): the parts of integrity_check's structural walk that
 * depend on more than one reference, restricted to what the transaction
 * changes; and the trees it changes, for the record-level checks. */
#include "store_map_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/btree_page.h"

/* --- After a settled pass ---------------------------------------------- */

/* Every page named before and still inside is named after, every page
 * named after was not named before unless its referrer dropped it, and the
 * pages of C and the ones the database grows by are named. */
void map_check_complete(struct store_map *m, struct map_txn *t)
{
	size_t i;
	uint32_t p;

	for (i = 0; i < t->n_as; i++) {
		const struct assigned *a = &t->as[i];
		if (!a->kept && map_was_named(m, t, a->pgno) &&
		    !pgmap_get(&t->lost, a->pgno, NULL))
			map_fail(t, 1,
				 "page %u is referred to twice, by page %u and "
				 "still by page %u",
				 a->pgno, a->e.owner,
				 map_before(m, t, a->pgno)->owner);
	}
	for (i = 0; i < t->lost.cap; i++) {
		p = t->lost.keys[i];
		if (p != 0 && p <= t->new_size && map_where_after(t, p) == NULL)
			map_fail(
			    t, 1,
			    "page %u would be left unused: page %u no longer "
			    "refers to it, and no page does",
			    p, t->lost.vals[i]);
	}
	for (i = 0; i < t->c.n; i++) {
		p = t->c.v[i];
		if (p <= t->new_size && !map_fixed_page(t->autovacuum, p) &&
		    map_where_after(t, p) == NULL)
			map_fail(
			    t, 1,
			    "pushed page %u is not part of the database: no "
			    "page refers to it",
			    p);
	}
	/* A page cut off the end must be dropped by the page that referred
	 * to it.  The references after are read from the pages of C only, so
	 * a referrer outside C (not written, keeping its content) would go on
	 * naming a page past the end unseen: integrity_check's "invalid page
	 * number". */
	for (p = t->new_size + 1; p <= t->old_size; p++) {
		uint32_t o = map_before(m, t, p)->owner;
		if (map_was_named(m, t, p) && o <= t->new_size &&
		    !pgmap_get(&t->in_c, o, NULL))
			map_fail(t, 1,
				 "page %u is cut off the end, but page %u, not "
				 "written, still refers to it",
				 p, o);
	}
	for (p = t->old_size + 1; p <= t->new_size; p++)
		if (!map_fixed_page(t->autovacuum, p) &&
		    map_where_after(t, p) == NULL)
			map_fail(
			    t, 1,
			    "page %u is added to the database, but no page "
			    "refers to it",
			    p);
}

/* Every page whose reference changed hangs from page 1: the references
 * after cannot form a loop of their own. */
int map_check_reachable(struct store_map *m, struct map_txn *t)
{
	struct pgmap state = {0}; /* 1: on the current path, 2: reachable */
	struct pglist path = {0};
	size_t i, j;
	int rv = -1;

	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		uint32_t p = t->as[i].pgno, s;
		path.n = 0;
		while (p != 1) {
			const struct map_entry *e = map_after(m, t, p);
			if (pgmap_get(&state, p, &s)) {
				if (s == 1)
					map_fail(
					    t, 1,
					    "pages %u and the ones it refers "
					    "to form a loop no root reaches",
					    p);
				break;
			}
			if (pgmap_put(&state, p, 1) != 0 ||
			    pglist_add(&path, p) != 0)
				goto out;
			if (e->owner == 0) {
				map_fail(t, 1, "page %u is not reachable", p);
				break;
			}
			p = e->owner;
		}
		for (j = 0; j < path.n; j++)
			if (pgmap_put(&state, path.v[j], 2) != 0)
				goto out;
	}
	rv = 0;
out:
	if (rv != 0)
		map_fail(t, -1, "out of memory");
	pgmap_free(&state);
	free(path.v);
	return rv;
}

struct kids {
	uint32_t v[MAP_PAGE / 4 + 1];
	int64_t key[MAP_PAGE / 4 + 1]; /* divider after child i (table) */
	size_t n;
};

static int collect_kid(void *arg, const struct btree_cell *c)
{
	struct kids *k = arg;

	k->key[k->n] = c->key;
	k->v[k->n++] = c->child;
	return 0;
}

/* The children of an interior page, left to right. */
static void children(const uint8_t *img, uint32_t pgno, struct kids *k)
{
	k->n = 0;
	btree_page_cells(img, pgno, MAP_PAGE, collect_kid, k);
	k->v[k->n++] = btree_page_right_child(img, pgno);
}

static int is_leaf(const uint8_t *img, uint32_t pgno)
{
	uint8_t type = img[pgno == 1 ? 100 : 0];

	return type == BTREE_PAGE_LEAF_TABLE || type == BTREE_PAGE_LEAF_INDEX;
}

/* The height of a written b-tree page (its children at one depth); the
 * heights found are kept in heights (page -> height + 1). */
static int height(struct store_map *m, struct map_txn *t, struct pgmap *heights,
		  uint32_t p, uint32_t *out, int depth)
{
	struct map_view v = {m, t, 1};
	const uint8_t *img;
	struct kids *k;
	uint32_t h = 0, hc, known;
	char why[256];
	size_t i;

	if (pgmap_get(heights, p, &known)) {
		*out = known - 1;
		return 0;
	}
	if (depth > 64) {
		map_fail(t, 1, "the b-tree under page %u is too deep", p);
		return 1;
	}
	img = map_view_page(&v, p, NULL, why, sizeof why);
	if (img == NULL) {
		map_fail(t, -1, "%s", why);
		return -1;
	}
	if (!is_leaf(img, p)) {
		k = malloc(sizeof *k);
		if (k == NULL) {
			map_fail(t, -1, "out of memory");
			return -1;
		}
		children(img, p, k);
		for (i = 0; i < k->n; i++) {
			uint32_t c = k->v[i];
			if (map_written(t, c)) {
				int rc =
				    height(m, t, heights, c, &hc, depth + 1);
				if (rc != 0) {
					free(k);
					return rc;
				}
			} else {
				hc = map_before(m, t, c)->aux;
			}
			if (i > 0 && hc + 1 != h) {
				map_fail(
				    t, 1,
				    "b-tree page %u has children at different "
				    "depths (pages %u and %u)",
				    p, k->v[0], c);
				free(k);
				return 1;
			}
			h = hc + 1;
		}
		free(k);
	}
	*out = h;
	return pgmap_put(heights, p, h + 1) == 0 ? 0 : -1;
}

int map_check_heights(struct store_map *m, struct map_txn *t,
		      struct pgmap *heights)
{
	size_t i;

	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		const struct assigned *a = &t->as[i];
		const struct map_entry *o;
		uint32_t h;

		if (a->e.role != MAP_BTREE || !map_written(t, a->pgno))
			continue;
		if (height(m, t, heights, a->pgno, &h, 0) != 0)
			return t->failed < 0 ? -1 : 0;
		if (a->e.root == a->pgno || map_written(t, a->e.owner))
			continue;
		o = map_before(m, t, a->e.owner); /* not written: its height
						   * is the same */
		if (o->role == MAP_BTREE && o->aux != h + 1)
			map_fail(t, 1,
				 "b-tree page %u is %u levels high, but its "
				 "siblings under page %u are %u",
				 a->pgno, h, a->e.owner, o->aux - 1);
	}
	return 0;
}

/* --- Rowids in order (table b-trees) ------------------------------------ */

struct bounds {
	int has_lo, has_hi;
	int64_t lo, hi; /* keys must be > lo and <= hi */
};

/* The bounds the ancestors after put on page p's keys: each ancestor's
 * dividers on either side of the path down. */
static int bounds_of(struct store_map *m, struct map_txn *t, uint32_t p,
		     struct bounds *b, struct kids *k)
{
	struct map_view v = {m, t, 1};
	uint32_t cur = p;
	int steps = 0;
	char why[256];

	memset(b, 0, sizeof *b);
	while (map_after(m, t, cur)->root != cur) {
		uint32_t o = map_after(m, t, cur)->owner;
		const uint8_t *img =
		    map_view_page(&v, o, NULL, why, sizeof why);
		size_t i;

		if (img == NULL || ++steps > 64) {
			map_fail(t, -1,
				 "cannot find the ancestors of page %u: %s", p,
				 img == NULL ? why : "too deep");
			return -1;
		}
		children(img, o, k);
		for (i = 0; i < k->n && k->v[i] != cur; i++)
			;
		if (i == k->n) {
			map_fail(
			    t, -1,
			    "the primary's page map is out of step: page %u "
			    "is not a child of page %u",
			    cur, o);
			return -1;
		}
		if (i + 1 < k->n && (!b->has_hi || k->key[i] < b->hi)) {
			b->hi = k->key[i];
			b->has_hi = 1;
		}
		if (i > 0 && (!b->has_lo || k->key[i - 1] > b->lo)) {
			b->lo = k->key[i - 1];
			b->has_lo = 1;
		}
		cur = o;
	}
	return 0;
}

struct edge {
	int64_t first, last;
	size_t n;
};

static int leaf_key(void *arg, const struct btree_cell *c)
{
	struct edge *e = arg;

	if (e->n++ == 0)
		e->first = c->key;
	e->last = c->key;
	return 0;
}

/* The smallest or largest key under page p (none when its edge leaf is
 * empty). */
static int subtree_edge(struct store_map *m, struct map_txn *t, uint32_t p,
			int largest, int64_t *key, int *found)
{
	struct map_view v = {m, t, 1};
	char why[256];
	int depth;

	*found = 0;
	for (depth = 0; depth < 64; depth++) {
		const uint8_t *img =
		    map_view_page(&v, p, NULL, why, sizeof why);
		struct edge e = {0};

		if (img == NULL) {
			map_fail(t, -1, "%s", why);
			return -1;
		}
		if (!is_leaf(img, p)) {
			if (largest) {
				p = btree_page_right_child(img, p);
			} else {
				struct kids k1;
				btree_page_cells(img, p, MAP_PAGE, collect_kid,
						 (k1.n = 0, &k1));
				p = k1.n ? k1.v[0]
					 : btree_page_right_child(img, p);
			}
			continue;
		}
		btree_page_cells(img, p, MAP_PAGE, leaf_key, &e);
		if (e.n > 0) {
			*key = largest ? e.last : e.first;
			*found = 1;
		}
		return 0;
	}
	map_fail(t, -1, "the b-tree under page %u is too deep", p);
	return -1;
}

static int in_bounds(const struct bounds *b, int64_t k)
{
	return (!b->has_lo || k > b->lo) && (!b->has_hi || k <= b->hi);
}

/* The range page p's interior image gives child i. */
static void child_bounds(const struct bounds *b, const struct kids *k, size_t i,
			 struct bounds *out)
{
	*out = *b;
	if (i > 0) {
		out->has_lo = 1;
		out->lo = k->key[i - 1];
	}
	if (i + 1 < k->n) {
		out->has_hi = 1;
		out->hi = k->key[i];
	}
}

static int same_bounds(const struct bounds *a, const struct bounds *b)
{
	return a->has_lo == b->has_lo && a->has_hi == b->has_hi &&
	       (!a->has_lo || a->lo == b->lo) && (!a->has_hi || a->hi == b->hi);
}

struct order_ctx {
	struct map_txn *t;
	uint32_t pgno;
	struct bounds b;
	int has_prev;
	int64_t prev;
	int interior;
};

static int key_in_order(void *arg, const struct btree_cell *c)
{
	struct order_ctx *x = arg;
	int64_t k = c->key;

	if ((x->has_prev && k <= x->prev) || !in_bounds(&x->b, k) ||
	    (x->interior && x->b.has_hi && k >= x->b.hi)) {
		map_fail(x->t, 1,
			 "rowid %lld on page %u (cell %u) is out of order",
			 (long long)k, x->pgno, c->index);
		return 1;
	}
	x->has_prev = 1;
	x->prev = k;
	return 0;
}

/* SQLite's checkTreePage order for a written table page: keys ascending
 * inside the bounds its ancestors give, each child's keys inside the range
 * its dividers give (only children whose range changed are looked at: the
 * others, and the written ones, are checked on their own). */
int map_check_order(struct store_map *m, struct map_txn *t, uint32_t p)
{
	struct map_view va = {m, t, 1}, vb = {m, t, 0};
	struct order_ctx x = {t, p, {0}, 0, 0, 0};
	struct kids *k = malloc(2 * sizeof *k), *old_k = k + 1;
	struct bounds cb, ob;
	const uint8_t *img, *old = NULL;
	char why[256];
	size_t i, j;
	int rv = -1;

	if (k == NULL) {
		map_fail(t, -1, "out of memory");
		return -1;
	}
	if (bounds_of(m, t, p, &x.b, k) != 0)
		goto out;
	img = map_view_page(&va, p, NULL, why, sizeof why);
	if (img == NULL)
		goto read_failed;
	x.interior = !is_leaf(img, p);
	if (btree_page_cells(img, p, MAP_PAGE, key_in_order, &x) < 0)
		goto out;
	if (!x.interior || t->failed) {
		rv = 0;
		goto out;
	}
	children(img, p, k);
	old_k->n = 0;
	if (p <= t->old_size && map_before(m, t, p)->role == MAP_BTREE &&
	    map_before(m, t, p)->kind == map_after(m, t, p)->kind) {
		old = map_view_page(&vb, p, NULL, why, sizeof why);
		if (old == NULL)
			goto read_failed;
		if (!is_leaf(old, p))
			children(old, p, old_k);
	}
	for (i = 0; i < k->n && t->failed == 0; i++) {
		uint32_t c = k->v[i];
		int64_t key;
		int found, largest;

		if (map_written(t, c))
			continue;
		child_bounds(&x.b, k, i, &cb);
		for (j = 0; j < old_k->n && old_k->v[j] != c; j++)
			;
		if (j < old_k->n) {
			child_bounds(&x.b, old_k, j, &ob);
			if (same_bounds(&cb, &ob))
				continue;
		}
		/* Its smallest key, then its largest. */
		for (largest = 0; largest < 2; largest++) {
			if (subtree_edge(m, t, c, largest, &key, &found) != 0)
				goto out;
			if (found && !in_bounds(&cb, key))
				map_fail(t, 1,
					 "rowid %lld under page %u (child %u "
					 "of page %u) is out of order",
					 (long long)key, c, (unsigned)i, p);
		}
	}
	rv = 0;
	goto out;
read_failed:
	map_fail(t, -1, "%s", why);
out:
	free(k);
	return rv;
}

/* --- The freelist's length and the pointer map -------------------------- */

static int is_free(uint8_t role)
{
	return role == MAP_TRUNK || role == MAP_LEAF;
}

/* The change in the number of free pages: over the pages whose role may
 * differ (assigned, in C, or in lost). */
int map_free_delta(struct store_map *m, struct map_txn *t, int64_t *delta)
{
	struct pgmap seen = {0};
	size_t i;
	int64_t d = 0;

#define COUNT(p)                                                               \
	do {                                                                   \
		uint32_t p_ = (p);                                             \
		if (!pgmap_get(&seen, p_, NULL)) {                             \
			const struct assigned *a_ = map_where_after(t, p_);    \
			if (pgmap_put(&seen, p_, 1) != 0)                      \
				goto oom;                                      \
			d += (a_ != NULL && is_free(a_->e.role)) -             \
			     is_free(map_before(m, t, p_)->role);              \
		}                                                              \
	} while (0)
	for (i = 0; i < t->n_as; i++)
		COUNT(t->as[i].pgno);
	for (i = 0; i < t->c.n; i++)
		COUNT(t->c.v[i]);
	for (i = 0; i < t->lost.cap; i++)
		if (t->lost.keys[i] != 0)
			COUNT(t->lost.keys[i]);
#undef COUNT
	pgmap_free(&seen);
	*delta = d;
	return 0;
oom:
	pgmap_free(&seen);
	map_fail(t, -1, "out of memory");
	return -1;
}

static uint32_t ptrmap_page_of(uint32_t pgno)
{
	const uint32_t per = MAP_PAGE / 5 + 1;
	uint32_t ret = (pgno - 2) / per * per + 2;

	return ret == MAP_LOCK_PAGE ? ret + 1 : ret;
}

/* The pointer-map entry SQLite keeps for a page in role e. */
static void ptrmap_expected(struct store_map *m, struct map_txn *t,
			    uint32_t pgno, const struct map_entry *e,
			    uint8_t *type, uint32_t *parent)
{
	*parent = 0;
	switch (e->role) {
	case MAP_BTREE:
		*type = e->root == pgno ? 1 : 5;
		if (*type == 5)
			*parent = e->owner;
		return;
	case MAP_OVERFLOW:
		*type = map_after(m, t, e->owner)->role == MAP_BTREE ? 3 : 4;
		*parent = e->owner;
		return;
	default:
		*type = 2;
	}
}

static void check_ptrmap_entry(struct store_map *m, struct map_txn *t,
			       uint32_t pgno)
{
	struct map_view v = {m, t, 1};
	const struct map_entry *e = map_after(m, t, pgno);
	uint32_t pm = ptrmap_page_of(pgno), parent, got_parent;
	const uint8_t *img, *entry;
	uint8_t type;
	char why[256];

	if (e->role == MAP_NONE || e->role == MAP_PTRMAP ||
	    e->role == MAP_LOCK || pgno == 1)
		return;
	img = map_view_page(&v, pm, NULL, why, sizeof why);
	if (img == NULL) {
		map_fail(t, -1, "%s", why);
		return;
	}
	entry = img + 5 * (pgno - pm - 1);
	ptrmap_expected(m, t, pgno, e, &type, &parent);
	got_parent = walfmt_get32(entry + 1);
	if (entry[0] != type || got_parent != parent)
		map_fail(t, 1,
			 "the pointer map (page %u) says (%u, %u) for page %u, "
			 "which is (%u, %u)",
			 pm, entry[0], got_parent, pgno, type, parent);
}

void map_check_ptrmap(struct store_map *m, struct map_txn *t)
{
	const uint32_t per = MAP_PAGE / 5;
	size_t i;

	for (i = 0; i < t->n_as && t->failed == 0; i++)
		if (!t->as[i].kept)
			check_ptrmap_entry(m, t, t->as[i].pgno);
	for (i = 0; i < t->c.n && t->failed == 0; i++) {
		uint32_t pm = t->c.v[i], x;
		if (!map_written(t, pm) || pm == MAP_LOCK_PAGE ||
		    !map_fixed_page(1, pm))
			continue;
		for (x = pm + 1; x <= pm + per && x <= t->new_size; x++)
			check_ptrmap_entry(m, t, x);
	}
}

/* Auto-vacuum databases keep their largest root page in the header. */
void map_check_max_root(struct store_map *m, struct map_txn *t,
			const uint8_t *page1_before, const uint8_t *page1_after)
{
	uint32_t mx = 0, p, in_header = walfmt_get32(page1_after + 52);
	int changed = 0;
	size_t i;

	for (i = 0; i < t->n_as && !changed; i++)
		changed = !t->as[i].kept && t->as[i].e.role == MAP_BTREE &&
			  t->as[i].e.root == t->as[i].pgno;
	for (i = 0; i < t->lost.cap && !changed; i++) {
		p = t->lost.keys[i];
		changed = p != 0 && map_before(m, t, p)->role == MAP_BTREE &&
			  map_before(m, t, p)->root == p;
	}
	if (!changed) {
		if (in_header != walfmt_get32(page1_before + 52))
			map_fail(
			    t, 1,
			    "page 1 changes the largest root page to %u, but "
			    "no root page changes",
			    in_header);
		return;
	}
	for (p = 1; p <= t->new_size; p++) {
		const struct map_entry *e = map_after(m, t, p);
		if (e->role == MAP_BTREE && e->root == p && p > mx)
			mx = p;
	}
	if (mx != in_header)
		map_fail(
		    t, 1,
		    "the largest root page would be %u, but page 1 says %u", mx,
		    in_header);
}

/* --- The trees the transaction changes ---------------------------------- */

static struct store_map_tree *tree_for(struct map_txn *t, uint32_t root,
				       int index)
{
	size_t i;
	struct store_map_tree *g;

	for (i = 0; i < t->n_trees; i++)
		if (t->trees[i].root == root && t->trees[i].index == index)
			return &t->trees[i];
	g = realloc(t->trees, (t->n_trees + 1) * sizeof *g);
	if (g == NULL)
		return NULL;
	t->trees = g;
	g = &t->trees[t->n_trees++];
	memset(g, 0, sizeof *g);
	g->root = root;
	g->index = index;
	return g;
}

static int tree_add(struct map_txn *t, uint32_t root, int index, int after_,
		    uint32_t pgno, const uint8_t *img)
{
	struct store_map_tree *tr = tree_for(t, root, index);
	struct store_rows_page **list;
	size_t *n;
	struct store_rows_page *g;

	if (tr == NULL)
		return -1;
	list = after_ ? &tr->after : &tr->before;
	n = after_ ? &tr->n_after : &tr->n_before;
	g = realloc(*list, (*n + 1) * sizeof *g);
	if (g == NULL)
		return -1;
	g[*n].pgno = pgno;
	g[*n].data = img;
	(*n)++;
	*list = g;
	return 0;
}

/* The b-tree page holding the cell whose overflow chain page p is in. */
static uint32_t holder(struct store_map *m, struct map_txn *t, uint32_t p,
		       int after_)
{
	int steps;

	for (steps = 0; p != 0 && steps < 1 << 24; steps++) {
		const struct map_entry *e =
		    after_ ? map_after(m, t, p) : map_before(m, t, p);
		if (e->role != MAP_OVERFLOW)
			return e->role == MAP_BTREE ? p : 0;
		p = e->owner;
	}
	return 0;
}

/* The root of the tree b-tree page p is in, before or after. */
static uint32_t tree_root(struct store_map *m, struct map_txn *t, uint32_t p,
			  int after_)
{
	int steps;

	for (steps = 0; steps < 64 && p != 0; steps++) {
		const struct map_entry *e =
		    after_ ? map_after(m, t, p) : map_before(m, t, p);
		if (e->role != MAP_BTREE)
			return 0;
		if (e->root == p)
			return p;
		p = e->owner;
	}
	return 0;
}

int map_collect_trees(struct store_map *m, struct map_txn *t)
{
	struct map_view vb = {m, t, 0}, va = {m, t, 1};
	struct pgmap held = {0};
	char why[256];
	size_t i;
	int side;

	for (i = 0; i < t->c.n; i++) {
		uint32_t p = t->c.v[i];
		const struct map_entry *b = map_before(m, t, p);
		const struct assigned *a =
		    p <= t->new_size ? map_where_after(t, p) : NULL;
		for (side = 0; side < 2; side++) {
			const struct map_entry *e =
			    side ? (a ? &a->e : NULL) : b;
			struct map_view *v = side ? &va : &vb;
			uint32_t h;
			const uint8_t *img;
			if (e == NULL)
				continue;
			if (e->role == MAP_BTREE) {
				img =
				    map_view_page(v, p, NULL, why, sizeof why);
				if (img == NULL ||
				    tree_add(t, tree_root(m, t, p, side),
					     e->kind == MAP_INDEX, side, p,
					     img))
					goto fail;
				continue;
			}
			if (e->role != MAP_OVERFLOW)
				continue;
			/* A changed chain changes the payload of a cell
			 * whose page may not have changed. */
			h = holder(m, t, p, side);
			if (h == 0 || pgmap_get(&t->in_c, h, NULL) ||
			    pgmap_get(&held, h, NULL))
				continue;
			if (pgmap_put(&held, h, 1) != 0)
				goto fail;
			e = map_before(m, t, h);
			img = map_view_page(&vb, h, NULL, why, sizeof why);
			if (img == NULL ||
			    tree_add(t, tree_root(m, t, h, 0),
				     e->kind == MAP_INDEX, 0, h, img) != 0)
				goto fail;
			img = map_view_page(&va, h, NULL, why, sizeof why);
			if (img == NULL ||
			    tree_add(t, tree_root(m, t, h, 1),
				     e->kind == MAP_INDEX, 1, h, img) != 0)
				goto fail;
		}
	}
	for (i = 0; i < t->n_trees; i++) {
		struct store_map_tree *tr = &t->trees[i];
		const struct map_entry *b = map_before(m, t, tr->root);
		const struct map_entry *a =
		    tr->root <= t->new_size ? map_after(m, t, tr->root) : NULL;
		if (b->role == MAP_BTREE && b->root == tr->root)
			tr->root_before = tr->root;
		if (a != NULL && a->role == MAP_BTREE && a->root == tr->root)
			tr->root_after = tr->root;
	}
	pgmap_free(&held);
	return 0;
fail:
	pgmap_free(&held);
	map_fail(t, -1, "cannot collect the changed b-tree pages: %s", why);
	return -1;
}
