/* The page map (store_map.h): the references each kind of page holds, and
 * the start-up walk that finds every page's role. */
#include "store_map_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/btree_page.h"
#include "wal/record.h"

int map_fixed_page(int autovacuum, uint32_t pgno)
{
	/* SQLite's PTRMAP_PAGENO: page 2 and every (usable/5 + 1)th page
	 * after it, skipping the lock-byte page. */
	const uint32_t per = MAP_PAGE / 5 + 1;
	uint32_t first;

	if (pgno == MAP_LOCK_PAGE)
		return 1;
	if (!autovacuum || pgno < 2)
		return 0;
	first = (pgno - 2) / per * per + 2;
	if (first == MAP_LOCK_PAGE)
		first++;
	return first == pgno;
}

const char *map_role_name(uint8_t role)
{
	switch (role) {
	case MAP_BTREE:
		return "b-tree";
	case MAP_OVERFLOW:
		return "overflow";
	case MAP_TRUNK:
		return "freelist trunk";
	case MAP_LEAF:
		return "free";
	case MAP_PTRMAP:
		return "pointer-map";
	case MAP_LOCK:
		return "lock-byte";
	default:
		return "unused";
	}
}

/* --- Schema records: the roots of the tables and indexes ------------- */

/* The size of a field (reserved types, which schema_root refuses first,
 * count as empty). */
static uint64_t serial_size(uint64_t t)
{
	int64_t n = record_field_size(t);

	return n < 0 ? 0 : (uint64_t)n;
}

/* An integer column (NULL, and a type that is not an integer's, read as
 * 0). */
static int64_t serial_int(uint64_t t, const uint8_t *p)
{
	int64_t v = 0;

	return record_int(t, p, &v) == 0 ? v : 0;
}

/* Does a CREATE TABLE statement end in WITHOUT ROWID (after the column
 * list, among the table options, comments allowed)? */
static int without_rowid(const uint8_t *sql, size_t len)
{
	const uint8_t *p = sql + len, *end = sql + len;
	int saw_without = 0;

	while (p > sql && p[-1] != ')')
		p--;
	while (p < end) {
		if (isspace(*p) || *p == ',') {
			p++;
		} else if (p + 1 < end && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
		} else if (p + 1 < end && p[0] == '/' && p[1] == '*') {
			p += 2;
			while (p + 1 < end && !(p[0] == '*' && p[1] == '/'))
				p++;
			p += 2;
		} else {
			const uint8_t *w = p;
			while (p < end && (isalnum(*p) || *p == '_'))
				p++;
			if (p == w)
				p++;
			if (p - w == 7 &&
			    strncasecmp((const char *)w, "without", 7) == 0)
				saw_without = 1;
			else if (saw_without && p - w == 5 &&
				 strncasecmp((const char *)w, "rowid", 5) == 0)
				return 1;
			else
				saw_without = 0;
		}
	}
	return 0;
}

/* A cell's whole payload, its overflow pages read through v. */
static uint8_t *cell_payload(struct map_view *v, const struct btree_cell *c,
			     uint32_t db_size, char *why, size_t why_len)
{
	uint8_t *out = malloc(c->payload ? c->payload : 1), scratch[MAP_PAGE];
	uint64_t have = c->n_local;
	uint32_t next = c->overflow;

	if (out == NULL) {
		errors_set(why, why_len, "out of memory");
		return NULL;
	}
	memcpy(out, c->local, c->n_local);
	while (have < c->payload) {
		const uint8_t *o;
		uint64_t take = c->payload - have;

		if (next < 1 || next > db_size) {
			errors_set(why, why_len,
				   "an overflow chain reaches page %u, outside "
				   "the database",
				   next);
			free(out);
			return NULL;
		}
		o = map_view_page(v, next, scratch, why, why_len);
		if (o == NULL) {
			free(out);
			return NULL;
		}
		if (take > MAP_PAGE - 4)
			take = MAP_PAGE - 4;
		memcpy(out + have, o + 4, take);
		have += take;
		next = walfmt_get32(o);
	}
	return out;
}

/* From one record of the schema table: a table's or an index's root page
 * (0 for views, triggers and virtual tables), and its b-tree's kind. */
static int schema_root(const uint8_t *rec, uint64_t len, uint32_t *root,
		       int *index)
{
	const uint8_t *end = rec + len, *p = rec, *body;
	uint64_t hdr, t[5];
	const uint8_t *col[5];
	int i, k;

	k = record_varint(p, (size_t)(end - p), &hdr);
	if (k == 0 || hdr > len)
		return -1;
	p += k;
	body = rec + hdr;
	for (i = 0; i < 5; i++) {
		k = record_varint(p, (size_t)(rec + hdr - p), &t[i]);
		if (k == 0 || t[i] == 10 || t[i] == 11)
			return -1;
		p += k;
		col[i] = body;
		body += serial_size(t[i]);
		if (body > end)
			return -1;
	}
	*root = 0;
	*index = 0;
	if (t[0] < 13 || t[0] % 2 == 0 || t[3] > 9 || t[3] == 7)
		return t[0] >= 13 ? 0 : -1;
	if (serial_int(t[3], col[3]) <= 0)
		return 0;
	if (serial_size(t[0]) == 5 && memcmp(col[0], "index", 5) == 0) {
		*index = 1;
	} else if (serial_size(t[0]) == 5 && memcmp(col[0], "table", 5) == 0) {
		*index = t[4] >= 13 && t[4] % 2 == 1 &&
			 without_rowid(col[4], serial_size(t[4]));
	} else {
		return 0;
	}
	if (serial_int(t[3], col[3]) > UINT32_MAX)
		return -1;
	*root = (uint32_t)serial_int(t[3], col[3]);
	return 0;
}

/* --- References --------------------------------------------------------- */

struct refs_ctx {
	struct map_view *v;
	uint32_t pgno, db_size;
	const struct map_entry *e;
	int interior;
	int (*fn)(void *arg, const struct map_ref *r);
	void *arg;
	char *why;
	size_t why_len;
	int problem; /* 1: the content does not fit, -1: an error */
};

static int cell_refs(void *arg, const struct btree_cell *c)
{
	struct refs_ctx *x = arg;
	struct map_ref r = {0};
	int rc;

	r.as.owner = x->pgno;
	r.as.kind = x->e->kind;
	if (x->interior) {
		r.to = c->child;
		r.as.role = MAP_BTREE;
		rc = x->fn(x->arg, &r);
		if (rc != 0)
			return rc;
	}
	if (c->overflow != 0) {
		r.to = c->overflow;
		r.as.role = MAP_OVERFLOW;
		r.as.aux = c->n_overflow;
		rc = x->fn(x->arg, &r);
		if (rc != 0)
			return rc;
	}
	if (!x->interior && x->e->kind == MAP_SCHEMA) {
		const uint8_t *rec = c->local;
		uint8_t *whole = NULL;
		uint32_t root;
		int index;

		if (c->payload > c->n_local) {
			rec = whole = cell_payload(x->v, c, x->db_size, x->why,
						   x->why_len);
			if (rec == NULL) {
				x->problem = 1;
				return 1;
			}
		}
		rc = schema_root(rec, c->payload, &root, &index);
		free(whole);
		if (rc != 0) {
			errors_set(x->why, x->why_len,
				   "schema page %u: cell %u is not a valid "
				   "schema record",
				   x->pgno, c->index);
			x->problem = 1;
			return 1;
		}
		if (root != 0) {
			struct map_ref t = {0};
			t.to = root;
			t.as.owner = x->pgno;
			t.as.root = root;
			t.as.kind = index ? MAP_INDEX : MAP_TABLE;
			t.as.role = MAP_BTREE;
			return x->fn(x->arg, &t);
		}
	}
	return 0;
}

static int btree_refs(struct refs_ctx *x, const uint8_t *page)
{
	const uint8_t *h = page + (x->pgno == 1 ? 100 : 0);
	int index =
	    h[0] == BTREE_PAGE_INTERIOR_INDEX || h[0] == BTREE_PAGE_LEAF_INDEX;
	struct map_ref r = {0};
	char bad[256];
	int rc;

	if (btree_page_check(page, x->pgno, MAP_PAGE, x->db_size, bad,
			     sizeof bad) != 0) {
		errors_set(x->why, x->why_len, "%s", bad);
		return 1;
	}
	if (index != (x->e->kind == MAP_INDEX)) {
		errors_set(x->why, x->why_len,
			   "page %u is %s b-tree page, but the page referring "
			   "to it (%u) makes it %s's",
			   x->pgno, index ? "an index" : "a table", x->e->owner,
			   index ? "a table" : "an index");
		return 1;
	}
	x->interior = h[0] == BTREE_PAGE_INTERIOR_INDEX ||
		      h[0] == BTREE_PAGE_INTERIOR_TABLE;
	r.as.owner = x->pgno;
	if (x->pgno == 1 && walfmt_get32(page + 32) != 0) {
		r.to = walfmt_get32(page + 32);
		r.as.role = MAP_TRUNK;
		rc = x->fn(x->arg, &r);
		if (rc != 0)
			return rc;
	}
	rc = btree_page_cells(page, x->pgno, MAP_PAGE, cell_refs, x);
	if (rc != 0)
		return x->problem ? x->problem : rc;
	if (x->interior) {
		r.to = btree_page_right_child(page, x->pgno);
		r.as.role = MAP_BTREE;
		r.as.kind = x->e->kind;
		return x->fn(x->arg, &r);
	}
	return 0;
}

int map_refs(struct map_view *v, const uint8_t *page, uint32_t pgno,
	     const struct map_entry *e, uint32_t db_size,
	     int (*fn)(void *arg, const struct map_ref *r), void *arg,
	     char *why, size_t why_len)
{
	struct refs_ctx x = {v, pgno, db_size, e, 0, fn, arg, why, why_len, 0};
	struct map_ref r = {0};
	uint32_t next, n, i;
	int rc;

	r.as.owner = pgno;
	switch (e->role) {
	case MAP_BTREE:
		return btree_refs(&x, page);
	case MAP_OVERFLOW:
		next = walfmt_get32(page);
		if (e->aux > 1 && next == 0) {
			errors_set(why, why_len,
				   "overflow page %u ends its chain, %u pages "
				   "before its payload does",
				   pgno, e->aux - 1);
			return 1;
		}
		if (e->aux <= 1 && next != 0) {
			errors_set(why, why_len,
				   "overflow page %u is the last its payload "
				   "needs, but its chain goes on to page %u",
				   pgno, next);
			return 1;
		}
		if (next == 0)
			return 0;
		r.to = next;
		r.as = *e;
		r.as.owner = pgno;
		r.as.aux = e->aux - 1;
		return fn(arg, &r);
	case MAP_TRUNK:
		next = walfmt_get32(page);
		n = walfmt_get32(page + 4);
		if (n > MAP_MAX_LEAVES) {
			errors_set(why, why_len,
				   "freelist trunk page %u lists %u pages (at "
				   "most %u fit)",
				   pgno, n, MAP_MAX_LEAVES);
			return 1;
		}
		if (next != 0) {
			r.to = next;
			r.as.role = MAP_TRUNK;
			rc = fn(arg, &r);
			if (rc != 0)
				return rc;
		}
		r.as.role = MAP_LEAF;
		for (i = 0; i < n; i++) {
			r.to = walfmt_get32(page + 8 + 4 * i);
			rc = fn(arg, &r);
			if (rc != 0)
				return rc;
		}
		return 0;
	default:
		return 0;
	}
}

/* --- The start-up walk -------------------------------------------------- */

struct build_ctx {
	struct store_map *m;
	int autovacuum;
	uint32_t *order; /* pages in the order they were reached */
	uint32_t n_order;
	uint32_t *first_child; /* interior b-tree pages: one child */
	char *why;
	size_t why_len;
};

static int build_ref(void *arg, const struct map_ref *r)
{
	struct build_ctx *b = arg;
	struct store_map *m = b->m;

	if (r->to < 2 || r->to > m->n_pages ||
	    map_fixed_page(b->autovacuum, r->to)) {
		errors_set(b->why, b->why_len,
			   "page %u refers to page %u, which no reference "
			   "may name",
			   r->as.owner, r->to);
		return 1;
	}
	if (m->e[r->to].role != MAP_NONE) {
		errors_set(b->why, b->why_len,
			   "page %u is referred to twice, by pages %u and %u",
			   r->to, m->e[r->to].owner, r->as.owner);
		return 1;
	}
	m->e[r->to] = r->as;
	if (r->as.role == MAP_BTREE && b->first_child[r->as.owner] == 0 &&
	    r->as.root != r->to)
		b->first_child[r->as.owner] = r->to;
	b->order[b->n_order++] = r->to;
	return 0;
}

int store_map_build(struct store_map **out, uint32_t n_pages,
		    store_map_read_fn read, void *arg, char *err, size_t n)
{
	struct store_map *m = calloc(1, sizeof *m);
	struct build_ctx b = {0};
	struct map_view v = {m, NULL, 0};
	uint8_t buf[MAP_PAGE];
	uint32_t p, i;
	int rc;

	b.why = err;
	b.why_len = n;
	if (m == NULL)
		goto oom;
	m->read = read;
	m->arg = arg;
	m->n_pages = n_pages;
	m->e = calloc((size_t)n_pages + 1, sizeof *m->e);
	b.order = malloc(((size_t)n_pages + 1) * sizeof *b.order);
	b.first_child = calloc((size_t)n_pages + 1, sizeof *b.first_child);
	b.m = m;
	if (m->e == NULL || b.order == NULL || b.first_child == NULL)
		goto oom;
	if (n_pages == 0)
		goto done;
	if (read(arg, 1, buf, err, n) != 0)
		goto fail;
	b.autovacuum = walfmt_get32(buf + 52) != 0;
	for (p = 1; p <= n_pages; p++)
		if (map_fixed_page(b.autovacuum, p))
			m->e[p].role =
			    p == MAP_LOCK_PAGE ? MAP_LOCK : MAP_PTRMAP;
	m->e[1].role = MAP_BTREE;
	m->e[1].root = 1;
	m->e[1].kind = MAP_SCHEMA;
	b.order[b.n_order++] = 1;
	for (i = 0; i < b.n_order; i++) {
		const struct map_entry *e;
		p = b.order[i];
		e = &m->e[p];
		if (e->role != MAP_BTREE && e->role != MAP_OVERFLOW &&
		    e->role != MAP_TRUNK)
			continue;
		if (read(arg, p, buf, err, n) != 0)
			goto fail;
		rc = map_refs(&v, buf, p, e, n_pages, build_ref, &b, err, n);
		if (rc != 0)
			goto fail;
	}
	for (p = 1; p <= n_pages; p++) {
		if (m->e[p].role == MAP_NONE) {
			errors_set(err, n, "page %u is never used", p);
			goto fail;
		}
		m->n_free +=
		    m->e[p].role == MAP_TRUNK || m->e[p].role == MAP_LEAF;
	}
	if (read(arg, 1, buf, err, n) != 0)
		goto fail;
	if (walfmt_get32(buf + 36) != m->n_free) {
		errors_set(err, n,
			   "the freelist holds %u pages, the header says %u",
			   m->n_free, walfmt_get32(buf + 36));
		goto fail;
	}
	/* Heights, children first (they were reached after their parents);
	 * then every child one below its parent, as integrity_check wants
	 * ("Child page depth differs"). */
	for (i = b.n_order; i-- > 0;) {
		p = b.order[i];
		if (m->e[p].role == MAP_BTREE)
			m->e[p].aux = b.first_child[p]
					  ? m->e[b.first_child[p]].aux + 1
					  : 0;
	}
	for (p = 1; p <= n_pages; p++) {
		const struct map_entry *e = &m->e[p];
		if (e->role == MAP_BTREE && e->root != p &&
		    e->aux + 1 != m->e[e->owner].aux) {
			errors_set(err, n,
				   "b-tree page %u is not at the depth of its "
				   "siblings (children of page %u)",
				   p, e->owner);
			goto fail;
		}
	}
done:
	free(b.order);
	free(b.first_child);
	*out = m;
	return 0;
oom:
	errors_set(err, n, "out of memory");
fail:
	free(b.order);
	free(b.first_child);
	store_map_free(m);
	return -1;
}

int store_map_compare(const struct store_map *a, const struct store_map *b,
		      char *why, size_t why_len)
{
	uint32_t p;

	if (a->n_pages != b->n_pages || a->n_free != b->n_free) {
		errors_set(why, why_len,
			   "%u pages with %u free, against %u with %u",
			   a->n_pages, a->n_free, b->n_pages, b->n_free);
		return -1;
	}
	for (p = 1; p <= a->n_pages; p++) {
		const struct map_entry *x = &a->e[p], *y = &b->e[p];
		if (x->role != y->role || x->owner != y->owner ||
		    x->root != y->root || x->aux != y->aux ||
		    x->kind != y->kind) {
			errors_set(why, why_len,
				   "page %u: %s (owner %u, root %u, aux %u) "
				   "against %s (owner %u, root %u, aux %u)",
				   p, map_role_name(x->role), x->owner, x->root,
				   x->aux, map_role_name(y->role), y->owner,
				   y->root, y->aux);
			return -1;
		}
	}
	return 0;
}
