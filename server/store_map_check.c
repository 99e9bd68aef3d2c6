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

/* --- The transaction ---------------------------------------------------- */

static struct map_txn *txn_of(struct map_view *v)
{
	return v->t;
}

int map_pushed(const struct map_txn *t, uint32_t pgno, uint32_t *i)
{
	return pgmap_get(&t->pushed, pgno, i);
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
	if (v->after && map_pushed(t, pgno, &i))
		return t->images[i];
	if (pgmap_get(&t->cache, pgno, &i))
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
	if (pgmap_put(&t->cache, pgno, (uint32_t)t->n_bufs) != 0) {
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
	pgmap_free(&t->pushed);
	pgmap_free(&t->cache);
	pgmap_free(&t->in_c);
	pgmap_free(&t->lost);
	pgmap_free(&t->where);
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
const struct map_entry *map_before(const struct store_map *m,
				   const struct map_txn *t, uint32_t pgno)
{
	static const struct map_entry none = {0};

	return pgno <= t->old_size ? &m->e[pgno] : &none;
}

/* Is the page named by a reference before (a role some page gives it)? */
int map_was_named(const struct store_map *m, const struct map_txn *t,
		  uint32_t pgno)
{
	uint8_t role = map_before(m, t, pgno)->role;

	return pgno != 1 && role != MAP_NONE && role != MAP_PTRMAP &&
	       role != MAP_LOCK;
}

static int holds_refs(uint8_t role)
{
	return role == MAP_BTREE || role == MAP_OVERFLOW || role == MAP_TRUNK;
}

const struct assigned *map_where_after(const struct map_txn *t, uint32_t pgno)
{
	uint32_t i;

	return pgmap_get(&t->where, pgno, &i) ? &t->as[i] : NULL;
}

/* The role after: assigned in this pass, else the one before. */
const struct map_entry *map_after(const struct store_map *m,
				  const struct map_txn *t, uint32_t pgno)
{
	const struct assigned *a = map_where_after(t, pgno);

	return a ? &a->e : map_before(m, t, pgno);
}

void map_fail(struct map_txn *t, int how, const char *fmt, ...)
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
	if (pgmap_get(&t->in_c, pgno, NULL))
		return 0;
	if (pgmap_put(&t->in_c, pgno, 1) != 0 || pglist_add(&t->c, pgno) != 0)
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
	if (pgmap_put(&t->where, pgno, (uint32_t)t->n_as) != 0)
		return -ENOMEM;
	t->as[t->n_as].pgno = pgno;
	t->as[t->n_as].e = *e;
	t->as[t->n_as].kept = kept;
	t->n_as++;
	return pglist_add(&t->queue, pgno);
}

struct lost_ctx {
	struct store_map *m;
	struct map_txn *t;
};

static int note_lost(void *arg, const struct map_ref *r)
{
	struct lost_ctx *x = arg;
	const struct assigned *a = map_where_after(x->t, r->to);

	if (pgmap_put(&x->t->lost, r->to, r->as.owner) != 0)
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
	const struct map_entry *e = map_before(m, t, pgno);
	const uint8_t *img;
	char why[256];
	int rc;

	if (!holds_refs(e->role))
		return 0;
	img = map_view_page(&v, pgno, NULL, why, sizeof why);
	if (img == NULL) {
		map_fail(t, -1, "%s", why);
		return -1;
	}
	rc = map_refs(&v, img, pgno, e, t->old_size, note_lost, &x, why,
		      sizeof why);
	if (rc == -ENOMEM) {
		map_fail(t, -1, "out of memory");
		return -1;
	}
	if (rc != 0) {
		map_fail(t, -1,
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
		map_fail(
		    t, 1, "page %u refers to page %u as a %s page, but %s",
		    r->as.owner, to, map_role_name(r->as.role),
		    to == 1 ? "page 1 is the schema's root"
		    : to > t->new_size
			? "the database ends before it"
			: "that is a fixed (lock-byte or pointer-map) page");
		return 0;
	}
	a = map_where_after(t, to);
	if (a != NULL) {
		if (a->kept && pgmap_get(&t->lost, to, NULL))
			t->again = 1;
		else
			map_fail(
			    t, 1,
			    "page %u is referred to twice, by pages %u and "
			    "%u",
			    to, a->e.owner, r->as.owner);
		return 0;
	}
	if (assign(t, to, &r->as, 0) != 0)
		return -ENOMEM;
	if (pgmap_get(&t->in_c, to, NULL))
		return 0;
	if (to <= t->old_size && same_role(map_before(x->m, t, to), &r->as))
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

	pgmap_clear(&t->lost);
	pgmap_clear(&t->where);
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
		} else if (map_was_named(m, t, p) &&
			   !pgmap_get(&t->lost, p, NULL)) {
			if (assign(t, p, map_before(m, t, p), 1) != 0)
				goto oom;
		}
	}
	/* Follow the references after, from the pages of C. */
	for (i = 0; i < t->queue.n; i++) {
		uint32_t p = t->queue.v[i];
		const struct assigned *a = map_where_after(t, p);
		struct map_entry e = a->e;
		const uint8_t *img;
		char why[256];
		int rc;

		if (!pgmap_get(&t->in_c, p, NULL) || !holds_refs(e.role))
			continue;
		if (!map_pushed(t, p, NULL)) {
			/* Not written, a page only becomes free (a root
			 * auto-vacuum moves is written; the pages under it
			 * keep their entries, which hold no root). */
			map_fail(t, 1,
				 "page %u would become a %s page without being "
				 "written (it was a %s page)",
				 p, map_role_name(e.role),
				 map_role_name(map_before(m, t, p)->role));
			continue;
		}
		img = map_view_page(&v, p, NULL, why, sizeof why);
		if (img == NULL) {
			map_fail(t, -1, "%s", why);
			return -1;
		}
		rc = map_refs(&v, img, p, &e, t->new_size, note_gained, &g, why,
			      sizeof why);
		if (rc == -ENOMEM)
			goto oom;
		if (rc < 0)
			return -1;
		if (rc > 0)
			map_fail(t, 1, "pushed page %u, as a %s page: %s", p,
				 map_role_name(e.role), why);
	}
	return 0;
oom:
	map_fail(t, -1, "out of memory");
	return -1;
}

int map_written(const struct map_txn *t, uint32_t p)
{
	return p <= t->new_size && map_pushed(t, p, NULL);
}

/* --- The whole check ---------------------------------------------------- */

/* A page after the transaction, read without caching (the whole walk). */
static int read_after_direct(void *arg, uint32_t pgno, uint8_t *out, char *why,
			     size_t why_len)
{
	struct map_view *v = arg;
	uint32_t i;

	if (map_pushed(v->t, pgno, &i)) {
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
	struct pgmap heights = {0};
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
		if (map_pushed(t, pages[i].pgno, &at)) {
			t->images[at] = pages[i].data;
			continue;
		}
		if (pgmap_put(&t->pushed, pages[i].pgno, k) != 0)
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
		map_check_complete(m, t);
	if (t->failed == 0)
		map_check_reachable(m, t);
	if (t->failed == 0)
		map_check_heights(m, t, &heights);
	for (i = 0; i < t->n_as && t->failed == 0; i++) {
		const struct assigned *a = &t->as[i];
		if (a->e.role == MAP_BTREE && a->e.kind != MAP_INDEX &&
		    map_written(t, a->pgno))
			map_check_order(m, t, a->pgno);
	}
	if (t->failed == 0 && map_free_delta(m, t, &delta) == 0 &&
	    (int64_t)m->n_free + delta !=
		(int64_t)walfmt_get32(page1_after + 36))
		map_fail(t, 1,
			 "the freelist would hold %lld pages, page 1 says %u",
			 (long long)((int64_t)m->n_free + delta),
			 walfmt_get32(page1_after + 36));
	if (t->failed == 0 && t->autovacuum) {
		map_check_ptrmap(m, t);
		if (t->failed == 0)
			map_check_max_root(m, t, page1_before, page1_after);
	}
	if (t->failed == 0)
		map_collect_trees(m, t);
	if (t->failed != 0)
		goto txn_error;
	/* Keep the heights found for the commit. */
	for (i = 0; i < t->n_as; i++) {
		uint32_t h;
		if (t->as[i].e.role != MAP_BTREE)
			continue;
		if (pgmap_get(&heights, t->as[i].pgno, &h))
			t->as[i].e.aux = h - 1;
		else if (t->as[i].pgno <= t->old_size)
			t->as[i].e.aux = m->e[t->as[i].pgno].aux;
	}
	pgmap_free(&heights);
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
		pgmap_free(&heights);
		m->txn = t;
		return 0;
	}
txn_error:
	rc = t->failed;
	errors_set(why, why_len, "%s", t->why);
	pgmap_free(&heights);
	txn_free(t);
	return rc < 0 ? -1 : 1;
unsound:
	pgmap_free(&heights);
	txn_free(t);
	return 1;
oom:
	errors_set(why, why_len, "out of memory");
error:
	pgmap_free(&heights);
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
	map_free_delta(m, t, &delta);
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
