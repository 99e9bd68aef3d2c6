/* What a push may do to the primary's database (issue 9): whatever bytes a
 * client pushes, the database stays sound, as PRAGMA integrity_check judges
 * it, and the cost is in proportion to the pages pushed:
 *
 *   - the size the commit frame states agrees with page 1's header;
 *   - the references between pages stay a forest hung from page 1, each
 *     page's content fitting its role (the page map, store_map.h);
 *   - the tables and indexes whose pages change still agree row by row
 *     (store_rows.h), judged on a read-only view of the database as the
 *     push would leave it (wal/page_view.h).
 *
 * The page map also follows SQL commits, which SQLite itself wrote. */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/wal_observer.h"
#include "wal/wal_read.h"
#include "wal/page_view.h"
#include "store_map_internal.h"
#include "store_rows.h"

#define PAGE WALFMT_PAGE_SIZE

/* The last image of each page a set of frames writes, sorted by page
 * number: what a page view overlays on the live database. */
struct overlay_item {
	uint32_t pgno;
	size_t pos;
	const uint8_t *data;
};

static int cmp_item(const void *a, const void *b)
{
	const struct overlay_item *x = a, *y = b;

	if (x->pgno != y->pgno)
		return x->pgno < y->pgno ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* out has room for n; returns how many pages. */
static size_t last_images(const struct wal_page *pages, size_t n,
			  struct page_view_page *out)
{
	struct overlay_item *items = malloc((n ? n : 1) * sizeof *items);
	size_t i, k = 0;

	if (items == NULL)
		return (size_t)-1;
	for (i = 0; i < n; i++) {
		items[i].pgno = pages[i].pgno;
		items[i].pos = i;
		items[i].data = pages[i].data;
	}
	qsort(items, n, sizeof *items, cmp_item);
	for (i = 0; i < n; i++) {
		if (i + 1 < n && items[i + 1].pgno == items[i].pgno)
			continue; /* a later image of the same page follows */
		out[k].pgno = items[i].pgno;
		out[k].data = items[i].data;
		k++;
	}
	free(items);
	return k;
}

static int cmp_page(const void *a, const void *b)
{
	const struct page_view_page *x = a, *y = b;

	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

static const uint8_t *overlay_image(const struct page_view_page *p, size_t n,
				    uint32_t pgno)
{
	struct page_view_page key = {.pgno = pgno};
	const struct page_view_page *hit =
	    n ? bsearch(&key, p, n, sizeof *p, cmp_page) : NULL;

	return hit ? hit->data : NULL;
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
	const uint8_t *img =
	    overlay_image(s->check_before, s->n_check_before, pgno);
	uint32_t size;
	char *msg = NULL;

	if (img != NULL) {
		memcpy(out, img, PAGE);
		return 0;
	}
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
	/* A fork sharing its base (live_overlay.h) opens without reading
	 * the whole database: its map is built before its first push. */
	if (s->overlay != NULL)
		return 0;
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
	s->map_ahead = 0;
	if (s->map != NULL)
		store_map_commit(s->map);
	store_check_verify(s);
}

void store_check_abort(struct store *s)
{
	if (s->map != NULL)
		store_map_abort(s->map);
	if (s->map_ahead && s->map != NULL)
		s->map->stale = 1;
	s->map_ahead = 0;
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

/* How many of a sorted overlay's pages lie inside a database of size
 * pages (the rest are cut off by the commit). */
static size_t inside(const struct page_view_page *p, size_t n, uint32_t size)
{
	while (n > 0 && p[n - 1].pgno > size)
		n--;
	return n;
}

static int read_base(void *arg, uint32_t pgno, uint8_t *out)
{
	char why[256];

	return read_live_page(arg, pgno, out, why, sizeof why);
}

/* A view over the live database; a schema that does not parse is refused
 * as "the pushed schema does not parse: ...", as it always was. */
static int open_view(struct store *s, struct page_view **out, uint32_t db_size,
		     const struct page_view_page *overlay, size_t n, char *why,
		     size_t why_len)
{
	static const char schema[] = "the schema does not parse";
	char err[512];

	if (page_view_open(out, db_size, overlay, n, read_base, s, err,
			   sizeof err) == 0)
		return 0;
	if (strncmp(err, schema, sizeof schema - 1) == 0)
		errors_set(why, why_len, "the pushed %s", err + 4);
	else
		errors_set(why, why_len, "%s", err);
	return -1;
}

struct rows_read {
	struct store *s;
	const struct page_view_page *after;
	size_t n_after;
};

static int read_for_rows(void *arg, int after, uint32_t pgno, uint8_t *out)
{
	struct rows_read *r = arg;
	const uint8_t *img =
	    after ? overlay_image(r->after, r->n_after, pgno) : NULL;

	if (img != NULL) {
		memcpy(out, img, PAGE);
		return 0;
	}
	return read_base(r->s, pgno, out);
}

/* The record-level checks (store_rows.h) of the trees a transaction
 * changes: old_db sees the database before it, a page view (the pages
 * written so far over the live database) after; a rewrite of most of the
 * database gets SQLite's whole integrity_check, which then costs about
 * what the push does. */
static int rows_check(struct store *s, sqlite3 *old_db,
		      const struct page_view_page *after, size_t n_after,
		      uint32_t db_size, char *why, size_t why_len)
{
	struct store_rows_tree *trees = NULL;
	const struct store_map_tree *mt;
	struct rows_read rr = {s, after, n_after};
	struct page_view *c = NULL;
	size_t i, n_trees;
	int rv;

	store_map_trees(s->map, &mt, &n_trees);
	if (!store_map_whole(s->map) && n_trees == 0)
		return 0;
	if (open_view(s, &c, db_size, after, inside(after, n_after, db_size),
		      why, why_len) != 0)
		return 1; /* the pushed schema does not parse */
	if (store_map_whole(s->map)) {
		rv = whole_check(page_view_db(c), why, why_len);
		goto out;
	}
	trees = calloc(n_trees, sizeof *trees);
	if (trees == NULL) {
		errors_set(why, why_len, "out of memory");
		rv = -1;
		goto out;
	}
	for (i = 0; i < n_trees; i++) {
		trees[i].root_old = mt[i].root_before;
		trees[i].root_new = mt[i].root_after;
		trees[i].old_pages = mt[i].before;
		trees[i].n_old = mt[i].n_before;
		trees[i].new_pages = mt[i].after;
		trees[i].n_new = mt[i].n_after;
	}
	rv = store_rows_check(old_db, page_view_db(c), trees, n_trees,
			      read_for_rows, &rr, why, why_len);
	/* A check that could not run refuses as well: nothing unchecked
	 * reaches the database. */
	if (rv < 0)
		rv = 1;
out:
	page_view_close(c);
	free(trees);
	return rv;
}

/* One transaction of a push: pages[] over the database the earlier ones
 * left (s->check_before), after = all the push's pages so far. */
static int check_txn(struct store *s, const struct wal_page *pages, size_t n,
		     uint32_t old_size, uint32_t db_size,
		     const struct page_view_page *after, size_t n_after,
		     char *why, size_t why_len)
{
	struct page_view *before = NULL;
	sqlite3 *old_db = s->internal;
	const uint8_t *page1 = NULL;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if (pages[i].pgno == 1)
			page1 = pages[i].data;
	if (check_size(page1, old_size, db_size, why, why_len) != 0)
		return 1;
	rc = store_map_check(s->map, pages, n, db_size, why, why_len);
	if (rc != 0)
		return rc;
	if (s->n_check_before > 0) {
		/* The database as the push's earlier transactions left it. */
		rc = open_view(
		    s, &before, old_size, s->check_before,
		    inside(s->check_before, s->n_check_before, old_size), why,
		    why_len);
		if (rc != 0) {
			store_map_abort(s->map);
			return 1;
		}
		old_db = page_view_db(before);
	}
	rc = rows_check(s, old_db, after, n_after, db_size, why, why_len);
	page_view_close(before);
	if (rc != 0)
		store_map_abort(s->map);
	return rc;
}

int store_check_push(struct store *s, const struct wal_page *pages,
		     const uint32_t *sizes, size_t n, char *why, size_t why_len)
{
	struct page_view_page *after = calloc(n ? n : 1, sizeof *after);
	struct page_view_page *before = calloc(n ? n : 1, sizeof *before);
	uint32_t old_size = 0, one = 1;
	uint8_t page1[PAGE];
	char *msg = NULL, err[512];
	size_t start = 0, j, n_after, n_before = 0;
	int rv = -1;

	if (after == NULL || before == NULL) {
		errors_set(why, why_len, "out of memory");
		goto out;
	}
	if ((s->map == NULL || s->map->stale) &&
	    build_map(s, err, sizeof err) != 0) {
		errors_set(why, why_len,
			   "the primary's database fails its own structure "
			   "check, so no push can be checked: %s",
			   err);
		goto out;
	}
	store_check_verify(s);
	if (wal_read_pages(s->internal, wal_observer_unwrap, PAGE, &one, 1,
			   page1, &old_size, &msg) != SQLITE_OK) {
		errors_set(why, why_len, "cannot read the live database: %s",
			   msg ? msg : "error");
		goto out;
	}
	/* Each transaction on the state the ones before it leave: a reader
	 * of the log may stop at any commit frame. */
	for (j = 0; j < n; j++) {
		if (sizes[j] == 0)
			continue;
		n_after = last_images(pages, j + 1, after);
		if (n_after == (size_t)-1) {
			errors_set(why, why_len, "out of memory");
			goto out;
		}
		s->check_before = before;
		s->n_check_before = n_before;
		rv = check_txn(s, pages + start, j + 1 - start, old_size,
			       sizes[j], after, n_after, why, why_len);
		s->check_before = NULL;
		s->n_check_before = 0;
		if (rv != 0)
			goto out;
		if (j + 1 < n) {
			/* Not the last: the map moves on, ahead of the live
			 * database until the push is applied. */
			store_map_commit(s->map);
			s->map_ahead = 1;
			n_before = last_images(pages, j + 1, before);
			if (n_before == (size_t)-1) {
				errors_set(why, why_len, "out of memory");
				rv = -1;
				goto out;
			}
		}
		old_size = sizes[j];
		start = j + 1;
	}
	rv = 0;
out:
	if (rv != 0 && s->map_ahead) {
		/* Earlier transactions moved the map: built again. */
		s->map->stale = 1;
		s->map_ahead = 0;
	}
	sqlite3_free(msg);
	free(after);
	free(before);
	return rv;
}
