#include "rows_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"

#define PAGE 4096

void rows_file_load(struct rows_file *f, const char *path)
{
	FILE *fp = fopen(path, "rb");
	long size;

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	size = ftell(fp);
	ck_assert_int_eq(size % PAGE, 0);
	rewind(fp);
	f->n_pages = (uint32_t)(size / PAGE);
	f->data = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(f->data);
	ck_assert_uint_eq(fread(f->data, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
}

void rows_file_store(const struct rows_file *f, const char *path)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(f->data, PAGE, f->n_pages, fp), f->n_pages);
	ck_assert_int_eq(fclose(fp), 0);
}

void rows_file_free(struct rows_file *f)
{
	free(f->data);
	f->data = NULL;
}

uint8_t *rows_file_page(const struct rows_file *f, uint32_t pgno)
{
	ck_assert(pgno >= 1 && pgno <= f->n_pages);
	return f->data + (size_t)(pgno - 1) * PAGE;
}

void rows_copy(const char *from, const char *to)
{
	struct rows_file f;

	rows_file_load(&f, from);
	rows_file_store(&f, to);
	rows_file_free(&f);
}

sqlite3 *rows_open(const char *path)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

void rows_exec(const char *path, const char *sql)
{
	sqlite3 *db = rows_open(path);

	fixture_exec(db, sql);
	sqlite3_close(db);
}

void rows_set_sql(const char *path, const char *name, const char *sql,
		  const char *orig_path)
{
	char *orig = NULL, *q;
	sqlite3 *db;

	if (sql == NULL) {
		sqlite3_stmt *st;
		db = rows_open(orig_path);
		ck_assert_int_eq(sqlite3_prepare_v2(db,
						    "SELECT sql FROM "
						    "sqlite_schema WHERE "
						    "name = ?",
						    -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		orig = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		sqlite3_close(db);
		sql = orig;
	}
	q = sqlite3_mprintf("PRAGMA writable_schema=ON;"
			    "UPDATE sqlite_schema SET sql = %Q WHERE name = %Q;"
			    "PRAGMA writable_schema=OFF;",
			    sql, name);
	rows_exec(path, q);
	sqlite3_free(q);
	free(orig);
}

char *rows_integrity(const char *path)
{
	sqlite3 *db = rows_open(path);
	sqlite3_stmt *st;
	char *out;
	int rc;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	    SQLITE_OK);
	rc = sqlite3_step(st);
	out = rc == SQLITE_ROW
		  ? strdup((const char *)sqlite3_column_text(st, 0))
		  : strdup(sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* Where each page is, from dbstat: its tree, whether it is a b-tree page,
 * and for overflow pages the page whose cell leads to them. */
struct where {
	int tree; /* index into names, -1: not in a tree */
	int btree;
	uint32_t owner;
};

struct names {
	char *v[256];
	uint32_t root_old[256], root_new[256];
	int n;
};

static int name_id(struct names *ns, const char *name)
{
	int i;

	for (i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return i;
	ck_assert_int_lt(ns->n, 256);
	ns->v[ns->n] = strdup(name);
	ns->root_old[ns->n] = ns->root_new[ns->n] = 0;
	return ns->n++;
}

static struct where *locate(const char *path, uint32_t n_pages,
			    struct names *ns, int after)
{
	struct where *w = calloc(n_pages + 1, sizeof *w);
	sqlite3 *db = rows_open(path);
	sqlite3_stmt *st;
	char **paths = calloc(n_pages + 1, sizeof *paths);
	uint32_t p, q;

	ck_assert_ptr_nonnull(w);
	for (p = 0; p <= n_pages; p++)
		w[p].tree = -1;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT name, pageno, pagetype, path FROM "
			       "dbstat",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		p = (uint32_t)sqlite3_column_int64(st, 1);
		ck_assert_uint_le(p, n_pages);
		w[p].tree =
		    name_id(ns, (const char *)sqlite3_column_text(st, 0));
		w[p].btree = strcmp((const char *)sqlite3_column_text(st, 2),
				    "overflow") != 0;
		paths[p] = strdup((const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	/* An overflow page's path is its cell's page's path, the cell and
	 * "+n": the owner is the b-tree page of the tree with that prefix. */
	for (p = 1; p <= n_pages; p++) {
		char *plus = paths[p] ? strchr(paths[p], '+') : NULL;
		size_t len;
		if (plus == NULL)
			continue;
		len = (size_t)(strrchr(paths[p], '/') - paths[p]) + 1;
		for (q = 1; q <= n_pages; q++)
			if (w[q].btree && w[q].tree == w[p].tree &&
			    strlen(paths[q]) == len &&
			    strncmp(paths[q], paths[p], len) == 0)
				w[p].owner = q;
		ck_assert_uint_ne(w[p].owner, 0);
	}
	for (p = 0; p <= n_pages; p++)
		free(paths[p]);
	free(paths);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT name, rootpage FROM "
			       "sqlite_schema WHERE rootpage > 0 "
			       "UNION ALL SELECT 'sqlite_schema', 1",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int id = name_id(ns, (const char *)sqlite3_column_text(st, 0));
		uint32_t root = (uint32_t)sqlite3_column_int64(st, 1);
		if (after)
			ns->root_new[id] = root;
		else
			ns->root_old[id] = root;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return w;
}

static int changed(const struct rows_txn *t, uint32_t p)
{
	if (p > t->old.n_pages || p > t->new.n_pages)
		return 1;
	return memcmp(rows_file_page(&t->old, p), rows_file_page(&t->new, p),
		      PAGE) != 0;
}

void rows_txn_build(struct rows_txn *t, const char *old_path,
		    const char *new_path)
{
	struct names ns = {.n = 0};
	struct where *wo, *wn;
	uint32_t p, n_max;
	uint8_t *force_old, *force_new;
	size_t n_pages = 0;
	int id;

	memset(t, 0, sizeof *t);
	rows_file_load(&t->old, old_path);
	rows_file_load(&t->new, new_path);
	n_max =
	    t->old.n_pages > t->new.n_pages ? t->old.n_pages : t->new.n_pages;
	t->overlay = calloc(t->new.n_pages, sizeof *t->overlay);
	for (p = 1; p <= t->new.n_pages; p++)
		if (changed(t, p))
			t->overlay[t->n_overlay++] = (struct page_view_page){
			    p, rows_file_page(&t->new, p)};
	wo = locate(old_path, t->old.n_pages, &ns, 0);
	wn = locate(new_path, t->new.n_pages, &ns, 1);
	/* A page whose cell leads to a changed overflow page is listed on
	 * both sides (store_rows.h). */
	force_old = calloc(n_max + 1, 1);
	force_new = calloc(n_max + 1, 1);
	for (p = 1; p <= n_max; p++) {
		struct where *a = p <= t->old.n_pages ? &wo[p] : NULL;
		struct where *b = p <= t->new.n_pages ? &wn[p] : NULL;
		int moved = a == NULL || b == NULL || a->tree != b->tree ||
			    a->owner != b->owner;
		if (!changed(t, p) && !moved)
			continue;
		if (a != NULL && a->owner != 0) {
			force_old[a->owner] = force_new[a->owner] = 1;
		}
		if (b != NULL && b->owner != 0) {
			force_old[b->owner] = force_new[b->owner] = 1;
		}
	}
	t->pages = calloc(2 * (size_t)n_max + 2, sizeof *t->pages);
	t->trees = calloc((size_t)ns.n, sizeof *t->trees);
	for (id = 0; id < ns.n; id++) {
		struct store_rows_tree *tr = &t->trees[t->n_trees];
		tr->root_old = ns.root_old[id];
		tr->root_new = ns.root_new[id];
		tr->old_pages = &t->pages[n_pages];
		for (p = 1; p <= t->old.n_pages; p++) {
			int in_new = p <= t->new.n_pages &&wn[p].tree == id;
			if (wo[p].tree != id || !wo[p].btree)
				continue;
			if (changed(t, p) || !in_new || force_old[p])
				t->pages[n_pages++] = (struct store_rows_page){
				    p, rows_file_page(&t->old, p)};
		}
		tr->n_old = (size_t)(&t->pages[n_pages] - tr->old_pages);
		tr->new_pages = &t->pages[n_pages];
		for (p = 1; p <= t->new.n_pages; p++) {
			int in_old = p <= t->old.n_pages && wo[p].tree == id;
			if (wn[p].tree != id || !wn[p].btree)
				continue;
			if (changed(t, p) || !in_old || force_new[p])
				t->pages[n_pages++] = (struct store_rows_page){
				    p, rows_file_page(&t->new, p)};
		}
		tr->n_new = (size_t)(&t->pages[n_pages] - tr->new_pages);
		if (tr->n_old + tr->n_new > 0 || tr->root_old != tr->root_new)
			t->n_trees++;
		free(ns.v[id]);
	}
	free(force_old);
	free(force_new);
	free(wo);
	free(wn);
}

void rows_txn_free(struct rows_txn *t)
{
	rows_file_free(&t->old);
	rows_file_free(&t->new);
	free(t->overlay);
	free(t->trees);
	free(t->pages);
}

int rows_txn_read(void *arg, int after, uint32_t pgno, uint8_t *out)
{
	struct rows_txn *t = arg;
	const struct rows_file *f = after ? &t->new : &t->old;

	if (pgno < 1 || pgno > f->n_pages)
		return -1;
	memcpy(out, rows_file_page(f, pgno), PAGE);
	return 0;
}

int rows_txn_read_base(void *arg, uint32_t pgno, uint8_t *out)
{
	return rows_txn_read(arg, 0, pgno, out);
}

int rows_check(const char *old_path, const char *new_path, char *why,
	       size_t why_len)
{
	struct rows_txn t;
	struct page_view *c;
	sqlite3 *old_db;
	int rv;

	rows_txn_build(&t, old_path, new_path);
	ck_assert_int_eq(
	    sqlite3_open_v2(old_path, &old_db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	fixture_exec(old_db, "BEGIN; SELECT count(*) FROM sqlite_schema");
	rv = page_view_open(&c, t.new.n_pages, t.overlay, t.n_overlay,
			    rows_txn_read_base, &t, why, why_len);
	if (rv == 0) {
		rv = store_rows_check(old_db, page_view_db(c), t.trees,
				      t.n_trees, rows_txn_read, &t, why,
				      why_len);
		page_view_close(c);
	} else {
		rv = STORE_ROWS_REFUSED; /* the schema does not parse */
	}
	fixture_exec(old_db, "COMMIT");
	sqlite3_close(old_db);
	rows_txn_free(&t);
	return rv;
}

size_t rows_tree_pages(const char *path, const char *tree, const char *type,
		       uint32_t *out, size_t max)
{
	sqlite3 *db = rows_open(path);
	sqlite3_stmt *st;
	size_t n = 0;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT pageno FROM dbstat WHERE "
					    "name = ?1 AND pagetype = ?2 "
					    "ORDER BY pageno",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, tree, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && n < max)
		out[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}
