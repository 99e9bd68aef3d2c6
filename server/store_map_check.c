/* Checking a transaction against the page map (store_map.h).
 *
 * The pages whose role or content the transaction may change form the set
 * C: the pages it writes, the pages it cuts off the end, and the pages an
 * unchanged page turns into free ones (SQLite frees a page without writing
 * it: only the trunk page that lists it changes).  Every other page keeps
 * its content and its role, so the references it holds are the same
 * before and after.  The references that change are therefore those held
 * by C: its pages' references before ("lost", read from the images
 * before, in their roles before) and after (read from the images after,
 * in their roles after).  A page of C keeps its role when nothing that
 * refers to it changes (it is not in lost); otherwise its role after is
 * the one a reference after gives it.
 *
 * The transaction leaves the database sound when, after it:
 *   - every page the references after name is inside the database, not a
 *     fixed page, and named once: it was not named before, or the page
 *     that named it is in C (it is in lost);
 *   - every page named before and still inside the database is named
 *     after (else integrity_check: "never used"), and so is every page of
 *     C and every page the database grows by;
 *   - every page's content fits its role (map_refs), b-tree pages are at
 *     one depth under each parent, rowids are in order, the freelist's
 *     length is the header's, and pointer-map entries are right;
 *   - a page the transaction does not write may only become free.
 *
 * Turning a page free adds it to C, which adds references to lost: a page
 * of C assumed to keep its role may have lost its reference after all.
 * The pass then runs again with the larger C (it only grows, so this
 * ends). */
#include "store_map_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/btree_page.h"

#define MAX_PASSES 16

/* --- A hash map from page numbers to small integers -------------------- */

struct pmap {
	uint32_t *keys; /* 0: empty */
	uint32_t *vals;
	size_t cap, n;
};

static size_t pmap_slot(const struct pmap *h, uint32_t key)
{
	size_t i = (key * 2654435761u) & (h->cap - 1);

	while (h->keys[i] != 0 && h->keys[i] != key)
		i = (i + 1) & (h->cap - 1);
	return i;
}

static int pmap_get(const struct pmap *h, uint32_t key, uint32_t *val)
{
	size_t i;

	if (h->cap == 0)
		return 0;
	i = pmap_slot(h, key);
	if (h->keys[i] == 0)
		return 0;
	if (val != NULL)
		*val = h->vals[i];
	return 1;
}

static int pmap_put(struct pmap *h, uint32_t key, uint32_t val)
{
	size_t i;

	if ((h->n + 1) * 2 > h->cap) {
		struct pmap g = {0};
		size_t j;
		g.cap = h->cap ? h->cap * 2 : 64;
		g.keys = calloc(g.cap, sizeof *g.keys);
		g.vals = malloc(g.cap * sizeof *g.vals);
		if (g.keys == NULL || g.vals == NULL) {
			free(g.keys);
			free(g.vals);
			return -ENOMEM;
		}
		for (j = 0; j < h->cap; j++) {
			if (h->keys[j] == 0)
				continue;
			i = pmap_slot(&g, h->keys[j]);
			g.keys[i] = h->keys[j];
			g.vals[i] = h->vals[j];
			g.n++;
		}
		free(h->keys);
		free(h->vals);
		*h = g;
	}
	i = pmap_slot(h, key);
	if (h->keys[i] == 0)
		h->n++;
	h->keys[i] = key;
	h->vals[i] = val;
	return 0;
}

static void pmap_clear(struct pmap *h)
{
	if (h->cap)
		memset(h->keys, 0, h->cap * sizeof *h->keys);
	h->n = 0;
}

static void pmap_free(struct pmap *h)
{
	free(h->keys);
	free(h->vals);
	memset(h, 0, sizeof *h);
}

struct u32s {
	uint32_t *v;
	size_t n, cap;
};

static int u32s_add(struct u32s *a, uint32_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint32_t *g = realloc(a->v, cap * sizeof *g);
		if (g == NULL)
			return -ENOMEM;
		a->v = g;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

/* --- The transaction ---------------------------------------------------- */

struct assigned {
	uint32_t pgno;
	struct map_entry e;
	int kept; /* kept its role because nothing referring to it changed */
};

struct map_txn {
	uint32_t old_size, new_size;
	int autovacuum;
	/* The last image of each pushed page, by page number. */
	struct pmap pushed;
	const uint8_t **images;
	/* Images before, read once. */
	struct pmap cache;
	uint8_t **bufs;
	size_t n_bufs, cap_bufs;
	/* C, and whether each page of it was written. */
	struct pmap in_c;
	struct u32s c;
	/* lost: page -> the page of C whose reference to it is dropped */
	struct pmap lost;
	/* The roles after, of the pages whose reference changed. */
	struct pmap where;
	struct assigned *as;
	size_t n_as, cap_as;
	struct u32s queue;
	int again;
	int failed; /* 1: unsound (why), -1: error */
	char why[512];
	/* For the record-level checks. */
	struct store_map_tree *trees;
	size_t n_trees;
	/* A transaction checked by walking the whole database after it: the
	 * map it leaves. */
	struct store_map *whole;
};

static struct map_txn *txn_of(struct map_view *v)
{
	return v->t;
}

static int pushed_index(const struct map_txn *t, uint32_t pgno, uint32_t *i)
{
	return pmap_get(&t->pushed, pgno, i);
}

const uint8_t *map_view_page(struct map_view *v, uint32_t pgno,
			     uint8_t *scratch, char *why, size_t why_len)
{
	struct map_txn *t = txn_of(v);
	uint32_t i;
	uint8_t *buf;

	if (t == NULL) {
		if (v->m->read(v->m->arg, pgno, scratch, why, why_len) != 0)
			return NULL;
		return scratch;
	}
	if (v->after && pushed_index(t, pgno, &i))
		return t->images[i];
	if (pmap_get(&t->cache, pgno, &i))
		return t->bufs[i];
	if (t->n_bufs == t->cap_bufs) {
		size_t cap = t->cap_bufs ? t->cap_bufs * 2 : 32;
		uint8_t **g = realloc(t->bufs, cap * sizeof *g);
		if (g == NULL)
			goto oom;
		t->bufs = g;
		t->cap_bufs = cap;
	}
	buf = malloc(MAP_PAGE);
	if (buf == NULL)
		goto oom;
	if (v->m->read(v->m->arg, pgno, buf, why, why_len) != 0) {
		free(buf);
		return NULL;
	}
	if (pmap_put(&t->cache, pgno, (uint32_t)t->n_bufs) != 0) {
		free(buf);
		goto oom;
	}
	t->bufs[t->n_bufs++] = buf;
	return buf;
oom:
	errors_set(why, why_len, "out of memory");
	return NULL;
}

static void txn_free(struct map_txn *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_bufs; i++)
		free(t->bufs[i]);
	free(t->bufs);
	free(t->images);
	pmap_free(&t->pushed);
	pmap_free(&t->cache);
	pmap_free(&t->in_c);
	pmap_free(&t->lost);
	pmap_free(&t->where);
	free(t->c.v);
	free(t->as);
	free(t->queue.v);
	for (i = 0; i < t->n_trees; i++) {
		free(t->trees[i].before);
		free(t->trees[i].after);
	}
	free(t->trees);
	if (t->whole != NULL)
		store_map_free(t->whole);
	free(t);
}

void store_map_free(struct store_map *m)
{
	if (m == NULL)
		return;
	txn_free(m->txn);
	free(m->e);
	free(m);
}

/* The role before (none past the old end). */
static const struct map_entry *before(const struct store_map *m,
				      const struct map_txn *t, uint32_t pgno)
{
	static const struct map_entry none = {0};

	return pgno <= t->old_size ? &m->e[pgno] : &none;
}

/* Is the page named by a reference before (a role some page gives it)? */
static int was_named(const struct store_map *m, const struct map_txn *t,
		     uint32_t pgno)
{
	uint8_t role = before(m, t, pgno)->role;

	return pgno != 1 && role != MAP_NONE && role != MAP_PTRMAP &&
	       role != MAP_LOCK;
}

static int holds_refs(uint8_t role)
{
	return role == MAP_BTREE || role == MAP_OVERFLOW || role == MAP_TRUNK;
}

static const struct assigned *where_after(const struct map_txn *t,
					  uint32_t pgno)
{
	uint32_t i;

	return pmap_get(&t->where, pgno, &i) ? &t->as[i] : NULL;
}

/* The role after: assigned in this pass, else the one before. */
static const struct map_entry *after(const struct store_map *m,
				     const struct map_txn *t, uint32_t pgno)
{
	const struct assigned *a = where_after(t, pgno);

	return a ? &a->e : before(m, t, pgno);
}

static void fail(struct map_txn *t, int how, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct map_txn *t, int how, const char *fmt, ...)
{
	va_list ap;

	if (t->failed != 0)
		return;
	t->failed = how;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof t->why, fmt, ap);
	va_end(ap);
}

static int add_c(struct map_txn *t, uint32_t pgno)
{
	if (pmap_get(&t->in_c, pgno, NULL))
		return 0;
	if (pmap_put(&t->in_c, pgno, 1) != 0 || u32s_add(&t->c, pgno) != 0)
		return -ENOMEM;
	return 0;
}

static int assign(struct map_txn *t, uint32_t pgno, const struct map_entry *e,
		  int kept)
{
	if (t->n_as == t->cap_as) {
		size_t cap = t->cap_as ? t->cap_as * 2 : 64;
		struct assigned *g = realloc(t->as, cap * sizeof *g);
		if (g == NULL)
			return -ENOMEM;
		t->as = g;
		t->cap_as = cap;
	}
	if (pmap_put(&t->where, pgno, (uint32_t)t->n_as) != 0)
		return -ENOMEM;
	t->as[t->n_as].pgno = pgno;
	t->as[t->n_as].e = *e;
	t->as[t->n_as].kept = kept;
	t->n_as++;
	return u32s_add(&t->queue, pgno);
}

struct lost_ctx {
	struct store_map *m;
	struct map_txn *t;
};

static int note_lost(void *arg, const struct map_ref *r)
{
	struct lost_ctx *x = arg;
	const struct assigned *a = where_after(x->t, r->to);

	if (pmap_put(&x->t->lost, r->to, r->as.owner) != 0)
		return -ENOMEM;
	/* A page assumed to keep its role turns out to lose its
	 * reference: that assumption needs another pass. */
	if (a != NULL && a->kept)
		x->t->again = 1;
	return 0;
}

/* The references page pgno of C held before are dropped. */
static int add_lost(struct store_map *m, struct map_txn *t, uint32_t pgno)
{
	struct map_view v = {m, t, 0};
	struct lost_ctx x = {m, t};
	const struct map_entry *e = before(m, t, pgno);
	const uint8_t *img;
	char why[256];
	int rc;

	if (!holds_refs(e->role))
		return 0;
	img = map_view_page(&v, pgno, NULL, why, sizeof why);
	if (img == NULL) {
		fail(t, -1, "%s", why);
		return -1;
	}
	rc = map_refs(&v, img, pgno, e, t->old_size, note_lost, &x, why,
		      sizeof why);
	if (rc == -ENOMEM) {
		fail(t, -1, "out of memory");
		return -1;
	}
	if (rc != 0) {
		fail(t, -1,
		     "the primary's page map is out of step with its "
		     "database at page %u: %s",
		     pgno, why);
		return -1;
	}
	return 0;
}

static int same_role(const struct map_entry *a, const struct map_entry *b)
{
	return a->role == b->role && a->root == b->root && a->kind == b->kind &&
	       (a->role != MAP_OVERFLOW || a->aux == b->aux);
}

struct gain_ctx {
	struct store_map *m;
	struct map_txn *t;
};

/* A reference after, held by a page of C. */
static int note_gained(void *arg, const struct map_ref *r)
{
	struct gain_ctx *x = arg;
	struct map_txn *t = x->t;
	const struct assigned *a;
	uint32_t to = r->to;

	if (to < 2 || to > t->new_size || map_fixed_page(t->autovacuum, to)) {
		fail(t, 1, "page %u refers to page %u as a %s page, but %s",
		     r->as.owner, to, map_role_name(r->as.role),
		     to == 1 ? "page 1 is the schema's root"
		     : to > t->new_size
			 ? "the database ends before it"
			 : "that is a fixed (lock-byte or pointer-map) page");
		return 0;
	}
	a = where_after(t, to);
	if (a != NULL) {
		if (a->kept && pmap_get(&t->lost, to, NULL))
			t->again = 1;
		else
			fail(t, 1,
			     "page %u is referred to twice, by pages %u and "
			     "%u",
			     to, a->e.owner, r->as.owner);
		return 0;
	}
	if (assign(t, to, &r->as, 0) != 0)
		return -ENOMEM;
	if (pmap_get(&t->in_c, to, NULL))
		return 0;
	if (to <= t->old_size && same_role(before(x->m, t, to), &r->as))
		return 0; /* the same page, now under another parent */
	/* A page not written whose role changes: its old references go. */
	if (add_c(t, to) != 0)
		return -ENOMEM;
	return add_lost(x->m, t, to) == 0 ? 0 : -1;
}

static int pass(struct store_map *m, struct map_txn *t)
{
	struct map_view v = {m, t, 1};
	struct gain_ctx g = {m, t};
	size_t i, n_c = t->c.n;

	pmap_clear(&t->lost);
	pmap_clear(&t->where);
	t->n_as = 0;
	t->queue.n = 0;
	t->again = 0;
	t->failed = 0;
	for (i = 0; i < t->c.n; i++)
		if (add_lost(m, t, t->c.v[i]) != 0)
			return -1;
	/* Pages of C whose reference did not change keep their role. */
	for (i = 0; i < n_c; i++) {
		uint32_t p = t->c.v[i];
		if (p > t->new_size || map_fixed_page(t->autovacuum, p))
			continue;
		if (p == 1) {
			struct map_entry e = {0, 1, 0, MAP_BTREE, MAP_SCHEMA};
			if (assign(t, 1, &e, 1) != 0)
				goto oom;
		} else if (was_named(m, t, p) && !pmap_get(&t->lost, p, NULL)) {
			if (assign(t, p, before(m, t, p), 1) != 0)
				goto oom;
		}
	}
	/* Follow the references after, from the pages of C. */
	for (i = 0; i < t->queue.n; i++) {
		uint32_t p = t->queue.v[i];
		const struct assigned *a = where_after(t, p);
		struct map_entry e = a->e;
		const uint8_t *img;
		char why[256];
		int rc;

		if (!pmap_get(&t->in_c, p, NULL) || !holds_refs(e.role))
			continue;
		if (!pushed_index(t, p, NULL)) {
			/* Not written, a page only becomes free (a root
			 * auto-vacuum moves is written; the pages under it
			 * keep their entries, which hold no root). */
			fail(t, 1,
			     "page %u would become a %s page without being "
			     "written (it was a %s page)",
			     p, map_role_name(e.role),
			     map_role_name(before(m, t, p)->role));
			continue;
		}
		img = map_view_page(&v, p, NULL, why, sizeof why);
		if (img == NULL) {
			fail(t, -1, "%s", why);
			return -1;
		}
		rc = map_refs(&v, img, p, &e, t->new_size, note_gained, &g, why,
			      sizeof why);
		if (rc == -ENOMEM)
			goto oom;
		if (rc < 0)
			return -1;
		if (rc > 0)
			fail(t, 1, "pushed page %u, as a %s page: %s", p,
			     map_role_name(e.role), why);
	}
	return 0;
oom:
	fail(t, -1, "out of memory");
	return -1;
}

/* --- After a settled pass ---------------------------------------------- */

/* Every page named before and still inside is named after, every page
 * named after was not named before unless its referrer dropped it, and the
 * pages of C and the ones the database grows by are named. */
static void check_complete(struct store_map *m, struct map_txn *t)
{
	size_t i;
	uint32_t p;

	for (i = 0; i < t->n_as; i++) {
		const struct assigned *a = &t->as[i];
		if (!a->kept && was_named(m, t, a->pgno) &&
		    !pmap_get(&t->lost, a->pgno, NULL))
			fail(t, 1,
			     "page %u is referred to twice, by page %u and "
			     "still by page %u",
			     a->pgno, a->e.owner, before(m, t, a->pgno)->owner);
	}
	for (i = 0; i < t->lost.cap; i++) {
		p = t->lost.keys[i];
		if (p != 0 && p <= t->new_size && where_after(t, p) == NULL)
			fail(t, 1,
			     "page %u would be left unused: page %u no longer "
			     "refers to it, and no page does",
			     p, t->lost.vals[i]);
	}
	for (i = 0; i < t->c.n; i++) {
		p = t->c.v[i];
		if (p <= t->new_size && !map_fixed_page(t->autovacuum, p) &&
		    where_after(t, p) == NULL)
			fail(t, 1,
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
		uint32_t o = before(m, t, p)->owner;
		if (was_named(m, t, p) && o <= t->new_size &&
		    !pmap_get(&t->in_c, o, NULL))
			fail(t, 1,
			     "page %u is cut off the end, but page %u, not "
			     "written, still refers to it",
			     p, o);
	}
	for (p = t->old_size + 1; p <= t->new_size; p++)
		if (!map_fixed_page(t->autovacuum, p) &&
		    where_after(t, p) == NULL)
			fail(t, 1,
			     "page %u is added to the database, but no page "
			     "refers to it",
			     p);
}

/* Every page whose reference changed hangs from page 1: the references
 * after cannot form a loop of their own. */
static int check_reachable(struct store_map *m, struct map_txn *t)
{
	struct pmap state = {0}; /* 1: on the current path, 2: reachable */
	struct u32s path = {0};
	size_t i, j;
	int rv = -1;

	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		uint32_t p = t->as[i].pgno, s;
		path.n = 0;
		while (p != 1) {
			const struct map_entry *e = after(m, t, p);
			if (pmap_get(&state, p, &s)) {
				if (s == 1)
					fail(t, 1,
					     "pages %u and the ones it refers "
					     "to form a loop no root reaches",
					     p);
				break;
			}
			if (pmap_put(&state, p, 1) != 0 ||
			    u32s_add(&path, p) != 0)
				goto out;
			if (e->owner == 0) {
				fail(t, 1, "page %u is not reachable", p);
				break;
			}
			p = e->owner;
		}
		for (j = 0; j < path.n; j++)
			if (pmap_put(&state, path.v[j], 2) != 0)
				goto out;
	}
	rv = 0;
out:
	if (rv != 0)
		fail(t, -1, "out of memory");
	pmap_free(&state);
	free(path.v);
	return rv;
}

static int written(const struct map_txn *t, uint32_t p)
{
	return p <= t->new_size && pushed_index(t, p, NULL);
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
static int height(struct store_map *m, struct map_txn *t, struct pmap *heights,
		  uint32_t p, uint32_t *out, int depth)
{
	struct map_view v = {m, t, 1};
	const uint8_t *img;
	struct kids *k;
	uint32_t h = 0, hc, known;
	char why[256];
	size_t i;

	if (pmap_get(heights, p, &known)) {
		*out = known - 1;
		return 0;
	}
	if (depth > 64) {
		fail(t, 1, "the b-tree under page %u is too deep", p);
		return 1;
	}
	img = map_view_page(&v, p, NULL, why, sizeof why);
	if (img == NULL) {
		fail(t, -1, "%s", why);
		return -1;
	}
	if (!is_leaf(img, p)) {
		k = malloc(sizeof *k);
		if (k == NULL) {
			fail(t, -1, "out of memory");
			return -1;
		}
		children(img, p, k);
		for (i = 0; i < k->n; i++) {
			uint32_t c = k->v[i];
			if (written(t, c)) {
				int rc =
				    height(m, t, heights, c, &hc, depth + 1);
				if (rc != 0) {
					free(k);
					return rc;
				}
			} else {
				hc = before(m, t, c)->aux;
			}
			if (i > 0 && hc + 1 != h) {
				fail(t, 1,
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
	return pmap_put(heights, p, h + 1) == 0 ? 0 : -1;
}

static int check_heights(struct store_map *m, struct map_txn *t,
			 struct pmap *heights)
{
	size_t i;

	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		const struct assigned *a = &t->as[i];
		const struct map_entry *o;
		uint32_t h;

		if (a->e.role != MAP_BTREE || !written(t, a->pgno))
			continue;
		if (height(m, t, heights, a->pgno, &h, 0) != 0)
			return t->failed < 0 ? -1 : 0;
		if (a->e.root == a->pgno || written(t, a->e.owner))
			continue;
		o = before(m, t, a->e.owner); /* not written: its height
					       * is the same */
		if (o->role == MAP_BTREE && o->aux != h + 1)
			fail(t, 1,
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
	while (after(m, t, cur)->root != cur) {
		uint32_t o = after(m, t, cur)->owner;
		const uint8_t *img =
		    map_view_page(&v, o, NULL, why, sizeof why);
		size_t i;

		if (img == NULL || ++steps > 64) {
			fail(t, -1, "cannot find the ancestors of page %u: %s",
			     p, img == NULL ? why : "too deep");
			return -1;
		}
		children(img, o, k);
		for (i = 0; i < k->n && k->v[i] != cur; i++)
			;
		if (i == k->n) {
			fail(t, -1,
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
			fail(t, -1, "%s", why);
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
	fail(t, -1, "the b-tree under page %u is too deep", p);
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
		fail(x->t, 1, "rowid %lld on page %u (cell %u) is out of order",
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
static int check_order(struct store_map *m, struct map_txn *t, uint32_t p)
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
		fail(t, -1, "out of memory");
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
	if (p <= t->old_size && before(m, t, p)->role == MAP_BTREE &&
	    before(m, t, p)->kind == after(m, t, p)->kind) {
		old = map_view_page(&vb, p, NULL, why, sizeof why);
		if (old == NULL)
			goto read_failed;
		if (!is_leaf(old, p))
			children(old, p, old_k);
	}
	for (i = 0; i < k->n && t->failed == 0; i++) {
		uint32_t c = k->v[i];
		int64_t key;
		int found;

		if (written(t, c))
			continue;
		child_bounds(&x.b, k, i, &cb);
		for (j = 0; j < old_k->n && old_k->v[j] != c; j++)
			;
		if (j < old_k->n) {
			child_bounds(&x.b, old_k, j, &ob);
			if (same_bounds(&cb, &ob))
				continue;
		}
		if (subtree_edge(m, t, c, 0, &key, &found) != 0)
			goto out;
		if (found && !in_bounds(&cb, key))
			fail(t, 1,
			     "rowid %lld under page %u (child %u of page %u) "
			     "is out of order",
			     (long long)key, c, (unsigned)i, p);
		if (subtree_edge(m, t, c, 1, &key, &found) != 0)
			goto out;
		if (found && !in_bounds(&cb, key))
			fail(t, 1,
			     "rowid %lld under page %u (child %u of page %u) "
			     "is out of order",
			     (long long)key, c, (unsigned)i, p);
	}
	rv = 0;
	goto out;
read_failed:
	fail(t, -1, "%s", why);
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
static int free_delta(struct store_map *m, struct map_txn *t, int64_t *delta)
{
	struct pmap seen = {0};
	size_t i;
	int64_t d = 0;

#define COUNT(p)                                                               \
	do {                                                                   \
		uint32_t p_ = (p);                                             \
		if (!pmap_get(&seen, p_, NULL)) {                              \
			const struct assigned *a_ = where_after(t, p_);        \
			if (pmap_put(&seen, p_, 1) != 0)                       \
				goto oom;                                      \
			d += (a_ != NULL && is_free(a_->e.role)) -             \
			     is_free(before(m, t, p_)->role);                  \
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
	pmap_free(&seen);
	*delta = d;
	return 0;
oom:
	pmap_free(&seen);
	fail(t, -1, "out of memory");
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
		*type = after(m, t, e->owner)->role == MAP_BTREE ? 3 : 4;
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
	const struct map_entry *e = after(m, t, pgno);
	uint32_t pm = ptrmap_page_of(pgno), parent, got_parent;
	const uint8_t *img, *entry;
	uint8_t type;
	char why[256];

	if (e->role == MAP_NONE || e->role == MAP_PTRMAP ||
	    e->role == MAP_LOCK || pgno == 1)
		return;
	img = map_view_page(&v, pm, NULL, why, sizeof why);
	if (img == NULL) {
		fail(t, -1, "%s", why);
		return;
	}
	entry = img + 5 * (pgno - pm - 1);
	ptrmap_expected(m, t, pgno, e, &type, &parent);
	got_parent = walfmt_get32(entry + 1);
	if (entry[0] != type || got_parent != parent)
		fail(t, 1,
		     "the pointer map (page %u) says (%u, %u) for page %u, "
		     "which is (%u, %u)",
		     pm, entry[0], got_parent, pgno, type, parent);
}

static void check_ptrmap(struct store_map *m, struct map_txn *t)
{
	const uint32_t per = MAP_PAGE / 5;
	size_t i;

	for (i = 0; i < t->n_as && t->failed == 0; i++)
		if (!t->as[i].kept)
			check_ptrmap_entry(m, t, t->as[i].pgno);
	for (i = 0; i < t->c.n && t->failed == 0; i++) {
		uint32_t pm = t->c.v[i], x;
		if (!written(t, pm) || pm == MAP_LOCK_PAGE ||
		    !map_fixed_page(1, pm))
			continue;
		for (x = pm + 1; x <= pm + per && x <= t->new_size; x++)
			check_ptrmap_entry(m, t, x);
	}
}

/* Auto-vacuum databases keep their largest root page in the header. */
static void check_max_root(struct store_map *m, struct map_txn *t,
			   const uint8_t *page1_before,
			   const uint8_t *page1_after)
{
	uint32_t mx = 0, p, in_header = walfmt_get32(page1_after + 52);
	int changed = 0;
	size_t i;

	for (i = 0; i < t->n_as && !changed; i++)
		changed = !t->as[i].kept && t->as[i].e.role == MAP_BTREE &&
			  t->as[i].e.root == t->as[i].pgno;
	for (i = 0; i < t->lost.cap && !changed; i++) {
		p = t->lost.keys[i];
		changed = p != 0 && before(m, t, p)->role == MAP_BTREE &&
			  before(m, t, p)->root == p;
	}
	if (!changed) {
		if (in_header != walfmt_get32(page1_before + 52))
			fail(t, 1,
			     "page 1 changes the largest root page to %u, but "
			     "no root page changes",
			     in_header);
		return;
	}
	for (p = 1; p <= t->new_size; p++) {
		const struct map_entry *e = after(m, t, p);
		if (e->role == MAP_BTREE && e->root == p && p > mx)
			mx = p;
	}
	if (mx != in_header)
		fail(t, 1,
		     "the largest root page would be %u, but page 1 says %u",
		     mx, in_header);
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
		    after_ ? after(m, t, p) : before(m, t, p);
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
		    after_ ? after(m, t, p) : before(m, t, p);
		if (e->role != MAP_BTREE)
			return 0;
		if (e->root == p)
			return p;
		p = e->owner;
	}
	return 0;
}

static int collect_trees(struct store_map *m, struct map_txn *t)
{
	struct map_view vb = {m, t, 0}, va = {m, t, 1};
	struct pmap held = {0};
	char why[256];
	size_t i;
	int side;

	for (i = 0; i < t->c.n; i++) {
		uint32_t p = t->c.v[i];
		const struct map_entry *b = before(m, t, p);
		const struct assigned *a =
		    p <= t->new_size ? where_after(t, p) : NULL;
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
			if (h == 0 || pmap_get(&t->in_c, h, NULL) ||
			    pmap_get(&held, h, NULL))
				continue;
			if (pmap_put(&held, h, 1) != 0)
				goto fail;
			e = before(m, t, h);
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
		const struct map_entry *b = before(m, t, tr->root);
		const struct map_entry *a =
		    tr->root <= t->new_size ? after(m, t, tr->root) : NULL;
		if (b->role == MAP_BTREE && b->root == tr->root)
			tr->root_before = tr->root;
		if (a != NULL && a->role == MAP_BTREE && a->root == tr->root)
			tr->root_after = tr->root;
	}
	pmap_free(&held);
	return 0;
fail:
	pmap_free(&held);
	fail(t, -1, "cannot collect the changed b-tree pages: %s", why);
	return -1;
}

/* --- The whole check ---------------------------------------------------- */

/* A page after the transaction, read without caching (the whole walk). */
static int read_after_direct(void *arg, uint32_t pgno, uint8_t *out, char *why,
			     size_t why_len)
{
	struct map_view *v = arg;
	uint32_t i;

	if (pushed_index(v->t, pgno, &i)) {
		memcpy(out, v->t->images[i], MAP_PAGE);
		return 0;
	}
	return v->m->read(v->m->arg, pgno, out, why, why_len);
}

int store_map_check(struct store_map *m, const struct wal_page *pages, size_t n,
		    uint32_t db_size, char *why, size_t why_len)
{
	struct map_txn *t = calloc(1, sizeof *t);
	struct map_view va = {m, t, 1}, vb = {m, t, 0};
	struct pmap heights = {0};
	uint8_t page1_before[100], page1_after[100];
	const uint8_t *img;
	int64_t delta;
	size_t i;
	uint32_t p, k;
	int passes, rc;

	txn_free(m->txn);
	m->txn = NULL;
	if (t == NULL ||
	    (t->images = calloc(n ? n : 1, sizeof *t->images)) == NULL)
		goto oom;
	t->old_size = m->n_pages;
	t->new_size = db_size;
	for (i = 0, k = 0; i < n; i++) {
		uint32_t at;
		if (pushed_index(t, pages[i].pgno, &at)) {
			t->images[at] = pages[i].data;
			continue;
		}
		if (pmap_put(&t->pushed, pages[i].pgno, k) != 0)
			goto oom;
		t->images[k++] = pages[i].data;
	}
	img = map_view_page(&vb, 1, NULL, why, why_len);
	if (img == NULL)
		goto error;
	memcpy(page1_before, img, sizeof page1_before);
	img = map_view_page(&va, 1, NULL, why, why_len);
	if (img == NULL)
		goto error;
	memcpy(page1_after, img, sizeof page1_after);
	t->autovacuum = walfmt_get32(page1_after + 52) != 0;
	if (!t->autovacuum && walfmt_get32(page1_after + 64) != 0) {
		errors_set(why, why_len,
			   "page 1 turns incremental vacuum on without "
			   "auto-vacuum");
		goto unsound;
	}
	if (t->autovacuum != (walfmt_get32(page1_before + 52) != 0) ||
	    (size_t)k * 2 > db_size)
		goto whole;
	for (i = 0; i < t->pushed.cap; i++) {
		p = t->pushed.keys[i];
		if (p != 0 &&
		    p <= (db_size > m->n_pages ? db_size : m->n_pages) &&
		    add_c(t, p) != 0)
			goto oom;
	}
	for (p = db_size + 1; p <= m->n_pages; p++)
		if (add_c(t, p) != 0)
			goto oom;
	for (passes = 0;; passes++) {
		if (pass(m, t) != 0 && t->failed < 0)
			goto txn_error;
		if (!t->again)
			break;
		if (passes == MAX_PASSES)
			goto whole;
	}
	if (t->failed == 0)
		check_complete(m, t);
	if (t->failed == 0)
		check_reachable(m, t);
	if (t->failed == 0)
		check_heights(m, t, &heights);
	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		const struct assigned *a = &t->as[i];
		if (a->e.role == MAP_BTREE && a->e.kind != MAP_INDEX &&
		    written(t, a->pgno))
			check_order(m, t, a->pgno);
	}
	if (t->failed == 0 && free_delta(m, t, &delta) == 0 &&
	    (int64_t)m->n_free + delta !=
		(int64_t)walfmt_get32(page1_after + 36))
		fail(t, 1, "the freelist would hold %lld pages, page 1 says %u",
		     (long long)((int64_t)m->n_free + delta),
		     walfmt_get32(page1_after + 36));
	if (t->failed == 0 && t->autovacuum) {
		check_ptrmap(m, t);
		if (t->failed == 0)
			check_max_root(m, t, page1_before, page1_after);
	}
	if (t->failed == 0)
		collect_trees(m, t);
	if (t->failed != 0)
		goto txn_error;
	/* Keep the heights found for the commit. */
	for (i = 0; i < t->n_as; i++) {
		uint32_t h;
		if (t->as[i].e.role != MAP_BTREE)
			continue;
		if (pmap_get(&heights, t->as[i].pgno, &h))
			t->as[i].e.aux = h - 1;
		else if (t->as[i].pgno <= t->old_size)
			t->as[i].e.aux = m->e[t->as[i].pgno].aux;
	}
	pmap_free(&heights);
	m->txn = t;
	return 0;
whole:
	/* A rewrite of most of the database, or a change of its kind:
	 * walk all of it as it would be. */
	{
		struct store_map *nm = NULL;
		struct map_view direct = {m, t, 1};
		if (store_map_build(&nm, db_size, read_after_direct, &direct,
				    why, why_len) != 0)
			goto unsound;
		nm->read = m->read;
		nm->arg = m->arg;
		t->whole = nm;
		pmap_free(&heights);
		m->txn = t;
		return 0;
	}
txn_error:
	rc = t->failed;
	errors_set(why, why_len, "%s", t->why);
	pmap_free(&heights);
	txn_free(t);
	return rc < 0 ? -1 : 1;
unsound:
	pmap_free(&heights);
	txn_free(t);
	return 1;
oom:
	errors_set(why, why_len, "out of memory");
error:
	pmap_free(&heights);
	txn_free(t);
	return -1;
}

void store_map_trees(const struct store_map *m,
		     const struct store_map_tree **trees, size_t *n)
{
	*trees = m->txn ? m->txn->trees : NULL;
	*n = m->txn ? m->txn->n_trees : 0;
}

int store_map_whole(const struct store_map *m)
{
	return m->txn != NULL && m->txn->whole != NULL;
}

void store_map_commit(struct store_map *m)
{
	struct map_txn *t = m->txn;
	struct map_entry *g;
	int64_t delta = 0;
	size_t i;
	uint32_t p;

	if (t == NULL)
		return;
	if (t->whole != NULL) {
		struct store_map *nm = t->whole;
		t->whole = NULL;
		free(m->e);
		m->e = nm->e;
		m->n_pages = nm->n_pages;
		m->n_free = nm->n_free;
		nm->e = NULL;
		store_map_free(nm);
		goto out;
	}
	free_delta(m, t, &delta);
	if (t->new_size != m->n_pages) {
		g = realloc(m->e, ((size_t)t->new_size + 1) * sizeof *g);
		if (g == NULL && t->new_size > m->n_pages) {
			/* Cannot grow: the next check starts afresh. */
			m->stale = 1;
			goto out;
		}
		if (g != NULL)
			m->e = g;
		for (p = m->n_pages + 1; p <= t->new_size; p++) {
			memset(&m->e[p], 0, sizeof m->e[p]);
			if (map_fixed_page(t->autovacuum, p))
				m->e[p].role =
				    p == MAP_LOCK_PAGE ? MAP_LOCK : MAP_PTRMAP;
		}
		m->n_pages = t->new_size;
	}
	for (i = 0; i < t->n_as; i++)
		if (t->as[i].pgno <= m->n_pages)
			m->e[t->as[i].pgno] = t->as[i].e;
	m->n_free = (uint32_t)((int64_t)m->n_free + delta);
out:
	txn_free(t);
	m->txn = NULL;
}

void store_map_abort(struct store_map *m)
{
	txn_free(m->txn);
	m->txn = NULL;
}
