/* What a push may do to pages that are b-tree pages now (issue 9, finding 3):
 * whatever bytes a client pushes, a page that holds a b-tree page of the
 * live database stays a well-formed b-tree page, or it was freed (it is on
 * the freelist the push leaves), reused as an overflow page (a pushed cell
 * or overflow page leads to it), turned into a pointer-map page (auto-vacuum)
 * or cut off the end.  A page 1 always holds the schema's b-tree.  Any pushed
 * page that claims to be a b-tree page's content is checked whole
 * (wal/btree_page.h).  The cost is in proportion to the pages pushed (and to
 * the freelist's trunk pages, only when a b-tree page leaves its role).
 *
 * This does not yet follow the references between pages (a valid page can
 * still be hung under the wrong parent): that needs each page's role and
 * parent kept per commit, as the checksum terms are (store_sum.c). */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/btree_page.h"
#include "wal/wal_observer.h"
#include "wal/wal_read.h"
#include "candidate.h"
#include "store_map_internal.h"
#include "store_rows.h"

#define PAGE WALFMT_PAGE_SIZE
#define PENDING_PAGE (0x40000000u / PAGE + 1)

struct pushed {
	uint32_t pgno;
	const uint8_t *data; /* the last image pushed */
};

struct set {
	uint32_t *v;
	size_t n, cap;
};

static int set_add(struct set *s, uint32_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint32_t *grown = realloc(s->v, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		s->v = grown;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int set_has(const struct set *s, uint32_t v)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == v)
			return 1;
	return 0;
}

static int cmp_pushed(const void *a, const void *b)
{
	const struct pushed *x = a, *y = b;

	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* The last image of each pushed page, sorted by page number. */
static size_t last_images(const struct wal_page *pages, size_t n,
			  struct pushed *out)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < k; j++)
			if (out[j].pgno == pages[i].pgno)
				break;
		out[j].pgno = pages[i].pgno;
		out[j].data = pages[i].data;
		if (j == k)
			k++;
	}
	qsort(out, k, sizeof *out, cmp_pushed);
	return k;
}

static const uint8_t *pushed_image(const struct pushed *p, size_t n,
				   uint32_t pgno)
{
	struct pushed key = {.pgno = pgno};
	const struct pushed *hit = bsearch(&key, p, n, sizeof *p, cmp_pushed);

	return hit ? hit->data : NULL;
}

struct chain {
	uint32_t first, n;
};

struct ctx {
	struct store *s;
	const struct pushed *pushed;
	size_t n_pushed;
	uint32_t db_size; /* after the push */
	struct set overflow;
	struct set freelist;
	struct chain *chains; /* overflow chains of pushed cells */
	size_t n_chains, cap_chains;
	int have_freelist;
	uint8_t buf[PAGE];
};

static int note_overflow(void *arg, uint32_t first, uint32_t n)
{
	struct ctx *c = arg;

	if (c->n_chains == c->cap_chains) {
		size_t cap = c->cap_chains ? c->cap_chains * 2 : 32;
		struct chain *grown = realloc(c->chains, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		c->chains = grown;
		c->cap_chains = cap;
	}
	c->chains[c->n_chains].first = first;
	c->chains[c->n_chains].n = n;
	c->n_chains++;
	return set_add(&c->overflow, first);
}

/* A page as the push leaves it: pushed, else the live database's. */
static const uint8_t *page_after(struct ctx *c, uint32_t pgno, char *why,
				 size_t why_len)
{
	const uint8_t *img = pushed_image(c->pushed, c->n_pushed, pgno);
	uint32_t size;
	char *msg = NULL;

	if (img != NULL)
		return img;
	if (wal_read_pages(c->s->internal, wal_observer_unwrap, PAGE, &pgno, 1,
			   c->buf, &size, &msg) != SQLITE_OK) {
		errors_set(why, why_len, "cannot read page %u: %s", pgno,
			   msg ? msg : "error");
		sqlite3_free(msg);
		return NULL;
	}
	return c->buf;
}

struct child_ctx {
	struct ctx *c;
	uint32_t parent;
	char *why;
	size_t why_len;
};

/* A pushed page that a pushed interior page hangs below itself must be a
 * b-tree page of the same tree kind (table or index). */
static int check_child(void *arg, uint32_t child, int table)
{
	struct child_ctx *cc = arg;
	const uint8_t *img =
	    pushed_image(cc->c->pushed, cc->c->n_pushed, child);
	char bad[256];
	uint8_t type;

	if (img == NULL || child == 1 || child > cc->c->db_size)
		return 0;
	if (btree_page_check(img, child, PAGE, cc->c->db_size, bad,
			     sizeof bad) != 0) {
		errors_set(cc->why, cc->why_len,
			   "page %u is a child of pushed page %u, but %s",
			   child, cc->parent, bad);
		return -1;
	}
	type = img[0];
	if (table != (type == BTREE_PAGE_INTERIOR_TABLE ||
		      type == BTREE_PAGE_LEAF_TABLE)) {
		errors_set(cc->why, cc->why_len,
			   "page %u is a child of %s page %u, but is %s page",
			   child, table ? "table" : "index", cc->parent,
			   table ? "an index" : "a table");
		return -1;
	}
	return 0;
}

/* An overflow chain that starts on a pushed page (a payload the push
 * writes): exactly n pages inside the database, the last one ending it. */
static int check_chain(struct ctx *c, const struct chain *ch, char *why,
		       size_t why_len)
{
	uint32_t p = ch->first, i;

	for (i = 0; i < ch->n; i++) {
		const uint8_t *page;
		uint32_t next;

		if (p < 1 || p > c->db_size || p == PENDING_PAGE) {
			errors_set(why, why_len,
				   "an overflow chain starting at page %u "
				   "reaches page %u, outside the database of "
				   "%u pages",
				   ch->first, p, c->db_size);
			return -1;
		}
		page = page_after(c, p, why, why_len);
		if (page == NULL)
			return -1;
		next = walfmt_get32(page);
		if ((i + 1 < ch->n) != (next != 0)) {
			errors_set(why, why_len,
				   "the overflow chain starting at page %u "
				   "should have %u pages, but page %u (its "
				   "page %u) %s",
				   ch->first, ch->n, p, i + 1,
				   next != 0 ? "goes on" : "ends it");
			return -1;
		}
		p = next;
	}
	return 0;
}

/* The freelist the push leaves: trunk pages and the leaves they list. */
static int load_freelist(struct ctx *c, const uint8_t *page1, char *why,
			 size_t why_len)
{
	uint32_t trunk = walfmt_get32(page1 + 32);
	uint32_t total = walfmt_get32(page1 + 36), seen = 0;

	c->have_freelist = 1;
	while (trunk != 0) {
		const uint8_t *t;
		uint32_t n, i;

		if (trunk > c->db_size || seen++ > total) {
			errors_set(why, why_len,
				   "the freelist reaches page %u, outside the "
				   "database of %u pages (or loops)",
				   trunk, c->db_size);
			return -1;
		}
		if (set_add(&c->freelist, trunk) != 0)
			goto oom;
		t = page_after(c, trunk, why, why_len);
		if (t == NULL)
			return -1;
		n = walfmt_get32(t + 4);
		if (n > PAGE / 4 - 2) {
			errors_set(why, why_len,
				   "freelist trunk page %u lists %u pages",
				   trunk, n);
			return -1;
		}
		for (i = 0; i < n; i++)
			if (set_add(&c->freelist,
				    walfmt_get32(t + 8 + 4 * i)) != 0)
				goto oom;
		trunk = walfmt_get32(t);
	}
	return 0;
oom:
	errors_set(why, why_len, "out of memory");
	return -1;
}

/* Is pgno a pointer-map page of an auto-vacuum database (page 1 says so)? */
static int ptrmap_page(const uint8_t *page1, uint32_t pgno)
{
	const uint32_t per = PAGE / 5 + 1;

	if (walfmt_get32(page1 + 52) == 0 || pgno < 2)
		return 0;
	return (pgno - 2) % per == 0 ||
	       (pgno > PENDING_PAGE && (pgno - 3) % per == 0 &&
		(pgno - 3) / per == (PENDING_PAGE - 2) / per);
}

/* SQLite writes page 1 whenever the database's size changes, with the size
 * in its header (bytes 28-31, valid when bytes 92-95 equal the change
 * counter at 24-27): a commit that changes the size without it, or with
 * another size, would cut off or leave out pages the rest still uses. */
static int check_size(const uint8_t *pushed_page1, uint32_t old_size,
		      uint32_t db_size, char *why, size_t why_len)
{
	uint32_t in_header;

	if (pushed_page1 == NULL) {
		if (db_size == old_size)
			return 0;
		errors_set(why, why_len,
			   "the push changes the database size from %u to %u "
			   "pages without writing page 1",
			   old_size, db_size);
		return -1;
	}
	in_header = walfmt_get32(pushed_page1 + 28);
	if (walfmt_get32(pushed_page1 + 92) !=
		walfmt_get32(pushed_page1 + 24) ||
	    in_header == db_size)
		return 0;
	errors_set(why, why_len,
		   "the push commits a database of %u pages, but its page 1 "
		   "says %u",
		   db_size, in_header);
	return -1;
}

/* --- The page map ------------------------------------------------------- */

static int read_live_page(void *arg, uint32_t pgno, uint8_t *out, char *why,
			  size_t why_len)
{
	struct store *s = arg;
	uint32_t size;
	char *msg = NULL;

	if (wal_read_pages(s->reader, wal_observer_unwrap, PAGE, &pgno, 1, out,
			   &size, &msg) != SQLITE_OK) {
		errors_set(why, why_len, "cannot read page %u: %s", pgno,
			   msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int build_map(struct store *s, char *err, size_t n)
{
	uint32_t size, one = 1;
	uint8_t page[PAGE];
	char *msg = NULL;

	store_map_free(s->map);
	s->map = NULL;
	if (wal_read_pages(s->reader, wal_observer_unwrap, PAGE, &one, 1, page,
			   &size, &msg) != SQLITE_OK) {
		errors_set(err, n, "cannot read the live database: %s",
			   msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return store_map_build(&s->map, size, read_live_page, s, err, n);
}

int store_check_init(struct store *s, char *err, size_t n)
{
	char why[512];
	int rc = store_open_conn(s, &s->reader);

	if (rc != SQLITE_OK) {
		errors_set(err, n, "cannot open %s: %s", s->live_path,
			   sqlite3_errstr(rc));
		return -1;
	}
	/* A first read opens the WAL and its index, which wal_read_pages
	 * reads through this connection's file handles from then on. */
	rc = sqlite3_exec(s->reader, "SELECT count(*) FROM sqlite_schema", NULL,
			  NULL, NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "cannot read %s: %s", s->live_path,
			   sqlite3_errmsg(s->reader));
		return -1;
	}
	if (build_map(s, why, sizeof why) != 0) {
		/* Not fatal: pushes are refused with this reason, the rest
		 * of the server works. */
		store_log("the live database fails its structure check, "
			  "pushes will be refused: %s",
			  why);
	}
	return 0;
}

void store_check_close(struct store *s)
{
	store_map_free(s->map);
	s->map = NULL;
	if (s->reader != NULL)
		sqlite3_close(s->reader);
	s->reader = NULL;
}

void store_check_sql_commit(struct store *s, const struct wal_page *pages,
			    size_t n, uint32_t db_size)
{
	char why[512];
	int rc;

	if (s->map == NULL || s->map->stale)
		return;        /* built again before the next push */
	store_check_verify(s); /* the previous change, under this lock */
	rc = store_map_check(s->map, pages, n, db_size, why, sizeof why);
	if (rc == 0) {
		store_map_commit(s->map);
		return;
	}
	store_log("the page map cannot follow a SQL commit (%s); it is built "
		  "again before the next push",
		  why);
	s->map->stale = 1;
}

/* REPLITE_VERIFY_MAP=1 (tests): after every change, the map must equal
 * one built afresh from the database; a difference is a bug in the
 * incremental update, and aborts. */
void store_check_verify(struct store *s)
{
	struct store_map *fresh = NULL;
	const char *on = getenv("REPLITE_VERIFY_MAP");
	char why[512];
	uint32_t size, one = 1;
	uint8_t page[PAGE];
	char *msg = NULL;

	if (on == NULL || strcmp(on, "1") != 0 || s->map == NULL ||
	    s->map->stale)
		return;
	if (wal_read_pages(s->reader, wal_observer_unwrap, PAGE, &one, 1, page,
			   &size, &msg) != SQLITE_OK) {
		sqlite3_free(msg);
		return;
	}
	if (store_map_build(&fresh, size, read_live_page, s, why, sizeof why) !=
		0 ||
	    store_map_compare(s->map, fresh, why, sizeof why) != 0) {
		store_log("REPLITE_VERIFY_MAP: the page map is wrong: %s", why);
		abort();
	}
	store_map_free(fresh);
}

void store_check_commit(struct store *s)
{
	if (s->map != NULL)
		store_map_commit(s->map);
	store_check_verify(s);
}

void store_check_abort(struct store *s)
{
	if (s->map != NULL)
		store_map_abort(s->map);
}

/* SQLite's own integrity_check of the whole database after the push. */
static int whole_check(sqlite3 *db, char *why, size_t why_len)
{
	sqlite3_stmt *st = NULL;
	int rc, rv = -1;

	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (r != NULL && strcmp(r, "ok") == 0) {
			rv = 0;
		} else {
			errors_set(why, why_len,
				   "the pushed database fails integrity_check: "
				   "%s",
				   r ? r : "(null)");
			rv = 1;
		}
	} else {
		errors_set(why, why_len,
			   "cannot run integrity_check on the pushed "
			   "database: %s",
			   sqlite3_errmsg(db));
		rv = 1;
	}
	sqlite3_finalize(st);
	return rv;
}

static int read_base(void *arg, uint32_t pgno, uint8_t *out)
{
	char why[256];

	return read_live_page(arg, pgno, out, why, sizeof why);
}

struct rows_read {
	struct store *s;
	const struct pushed *pushed;
	size_t n_pushed;
};

static int read_for_rows(void *arg, int after, uint32_t pgno, uint8_t *out)
{
	struct rows_read *r = arg;
	const uint8_t *img =
	    after ? pushed_image(r->pushed, r->n_pushed, pgno) : NULL;

	if (img != NULL) {
		memcpy(out, img, PAGE);
		return 0;
	}
	return read_base(r->s, pgno, out);
}

/* The record-level checks (store_rows.h) of the trees the push changes, on
 * a connection that sees the database as the push would leave it; a
 * rewrite of most of the database gets SQLite's whole integrity_check,
 * which then costs about what the push does. */
static int rows_check(struct store *s, const struct pushed *pushed,
		      size_t n_pushed, uint32_t db_size, char *why,
		      size_t why_len)
{
	struct candidate_page *overlay =
	    calloc(n_pushed ? n_pushed : 1, sizeof *overlay);
	struct store_rows_tree *trees = NULL;
	const struct store_map_tree *mt;
	struct rows_read rr = {s, pushed, n_pushed};
	struct candidate *c = NULL;
	size_t i, k = 0, n_trees;
	int rv = -1;

	store_map_trees(s->map, &mt, &n_trees);
	if (!store_map_whole(s->map) && n_trees == 0) {
		free(overlay);
		return 0;
	}
	if (overlay == NULL)
		goto oom;
	for (i = 0; i < n_pushed; i++) {
		if (pushed[i].pgno > db_size)
			continue;
		overlay[k].pgno = pushed[i].pgno;
		overlay[k].data = pushed[i].data;
		k++;
	}
	rv =
	    candidate_open(&c, db_size, overlay, k, read_base, s, why, why_len);
	if (rv != 0) {
		rv = 1; /* the pushed schema does not parse */
		goto out;
	}
	if (store_map_whole(s->map)) {
		rv = whole_check(candidate_db(c), why, why_len);
		goto out;
	}
	trees = calloc(n_trees, sizeof *trees);
	if (trees == NULL)
		goto oom;
	for (i = 0; i < n_trees; i++) {
		trees[i].root_old = mt[i].root_before;
		trees[i].root_new = mt[i].root_after;
		trees[i].old_pages = mt[i].before;
		trees[i].n_old = mt[i].n_before;
		trees[i].new_pages = mt[i].after;
		trees[i].n_new = mt[i].n_after;
	}
	rv = store_rows_check(s->internal, candidate_db(c), trees, n_trees,
			      read_for_rows, &rr, why, why_len);
	/* A check that could not run refuses as well: nothing unchecked
	 * reaches the database. */
	if (rv < 0)
		rv = 1;
	goto out;
oom:
	errors_set(why, why_len, "out of memory");
	rv = -1;
out:
	candidate_close(c);
	free(trees);
	free(overlay);
	return rv;
}

static int map_check(struct store *s, const struct wal_page *pages, size_t n,
		     const struct pushed *pushed, size_t n_pushed,
		     uint32_t db_size, char *why, size_t why_len)
{
	char err[512];
	int rc;

	if ((s->map == NULL || s->map->stale) &&
	    build_map(s, err, sizeof err) != 0) {
		errors_set(why, why_len,
			   "the primary's database fails its own structure "
			   "check, so no push can be checked: %s",
			   err);
		return -1;
	}
	store_check_verify(s);
	rc = store_map_check(s->map, pages, n, db_size, why, why_len);
	if (rc != 0)
		return rc;
	rc = rows_check(s, pushed, n_pushed, db_size, why, why_len);
	if (rc != 0)
		store_map_abort(s->map);
	return rc;
}

int store_check_push(struct store *s, const struct wal_page *pages, size_t n,
		     uint32_t db_size, char *why, size_t why_len)
{
	struct ctx c = {.s = s, .db_size = db_size};
	struct pushed *pushed = calloc(n ? n : 1, sizeof *pushed);
	uint32_t *want = NULL, old_size = 0;
	uint8_t *old = NULL, hdr1[100];
	const uint8_t *page1;
	char *msg = NULL;
	size_t i, k;
	int rv = 1;

	if (pushed == NULL)
		goto oom;
	k = last_images(pages, n, pushed);
	c.pushed = pushed;
	c.n_pushed = k;
	/* The old images, where the live database has them. */
	want = malloc((k ? k : 1) * sizeof *want);
	old = malloc((k ? k : 1) * (size_t)PAGE);
	if (want == NULL || old == NULL)
		goto oom;
	for (i = 0; i < k; i++)
		want[i] = pushed[i].pgno;
	if (wal_read_pages(s->internal, wal_observer_unwrap, PAGE, want, k, old,
			   &old_size, &msg) != SQLITE_OK) {
		errors_set(why, why_len, "cannot read the live database: %s",
			   msg ? msg : "error");
		rv = -1;
		goto out;
	}
	/* The database header as the push leaves it, kept apart:
	 * page_after's buffer is reused. */
	page1 = page_after(&c, 1, why, why_len);
	if (page1 == NULL)
		goto out;
	memcpy(hdr1, page1, sizeof hdr1);
	if (check_size(pushed_image(pushed, k, 1), old_size, db_size, why,
		       why_len) != 0)
		goto out;
	/* Pushed pages that are b-tree pages must be whole ones, and what
	 * they spill to is overflow. */
	for (i = 0; i < k; i++) {
		uint32_t p = pushed[i].pgno;
		char bad[256];
		int valid;

		if (p > db_size)
			continue;
		valid = btree_page_check(pushed[i].data, p, PAGE, db_size, bad,
					 sizeof bad) == 0;
		if (valid &&
		    btree_page_overflows(pushed[i].data, p, PAGE, db_size,
					 note_overflow, &c) != 0)
			goto oom;
		if (p == 1 && !valid) {
			errors_set(why, why_len, "pushed %s", bad);
			goto out;
		}
	}
	/* The pushed children of pushed interior pages are whole b-tree
	 * pages of their tree's kind. */
	for (i = 0; i < k; i++) {
		struct child_ctx cc = {&c, pushed[i].pgno, why, why_len};
		char unused[16];
		if (pushed[i].pgno > db_size ||
		    btree_page_check(pushed[i].data, pushed[i].pgno, PAGE,
				     db_size, unused, sizeof unused) != 0)
			continue;
		if (btree_page_children(pushed[i].data, pushed[i].pgno, PAGE,
					db_size, check_child, &cc) != 0)
			goto out;
	}
	/* The chains of the payloads the push writes have the lengths their
	 * payloads need. */
	for (i = 0; i < c.n_chains; i++) {
		if (pushed_image(pushed, k, c.chains[i].first) != NULL &&
		    check_chain(&c, &c.chains[i], why, why_len) != 0)
			goto out;
	}
	/* Overflow chains continue through pushed overflow pages. */
	for (i = 0; i < c.overflow.n; i++) {
		const uint8_t *o = pushed_image(pushed, k, c.overflow.v[i]);
		uint32_t next = o ? walfmt_get32(o) : 0;
		if (next != 0 && next <= db_size &&
		    !set_has(&c.overflow, next) &&
		    set_add(&c.overflow, next) != 0)
			goto oom;
	}
	for (i = 0; i < k; i++) {
		uint32_t p = pushed[i].pgno;
		char bad[256], unused[16];

		if (p > db_size || p > old_size ||
		    btree_page_check(old + i * (size_t)PAGE, p, PAGE, old_size,
				     unused, sizeof unused) != 0 ||
		    btree_page_check(pushed[i].data, p, PAGE, db_size, bad,
				     sizeof bad) == 0)
			continue;
		/* A b-tree page that is not one any more. */
		if (set_has(&c.overflow, p) || ptrmap_page(hdr1, p))
			continue;
		if (!c.have_freelist &&
		    load_freelist(&c, hdr1, why, why_len) != 0)
			goto out;
		if (set_has(&c.freelist, p))
			continue;
		errors_set(why, why_len,
			   "page %u is a b-tree page of the database, and the "
			   "push makes it something else without freeing it: "
			   "%s",
			   p, bad);
		goto out;
	}
	/* Then the references between pages, through the page map. */
	rv = map_check(s, pages, n, pushed, k, db_size, why, why_len);
	goto out;
oom:
	errors_set(why, why_len, "out of memory");
	rv = -1;
out:
	sqlite3_free(msg);
	free(c.overflow.v);
	free(c.freelist.v);
	free(c.chains);
	free(pushed);
	free(want);
	free(old);
	return rv;
}
