/* The page map (server/store_map.h) refuses corruption: transactions whose
 * images were mutated into corruption (child pointers into other trees,
 * overflow chains and freelists gone wrong, keys out of order, schema roots
 * elsewhere, pages nobody refers to, and, with auto_vacuum=FULL, wrong
 * pointer-map entries) are refused, each confirmed as corruption by PRAGMA
 * integrity_check.  The same transactions unmutated are accepted first.
 * Legitimate transactions are in test_store_map.c; the helpers both share
 * are in store_map_test_helpers.[ch]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "rows_fixture.h"
#include "server/store_map.h"
#include "store_map_test_helpers.h"
#include "wal/btree_page.h"

/* --- Bytes ---------------------------------------------------------------- */

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t varint(const uint8_t *p, int *len)
{
	uint64_t x = 0;
	int i;

	for (i = 0; i < 8; i++) {
		x = x << 7 | (p[i] & 0x7f);
		if ((p[i] & 0x80) == 0) {
			*len = i + 1;
			return x;
		}
	}
	*len = 9;
	return x << 8 | p[8];
}

/* The transaction from a.db to b.db is refused, and b.db is corrupt. */
static void assert_refused(const char *what)
{
	struct rows_file old, new;
	struct store_map *m;
	struct smh_txn t;
	char why[512] = "", *ok = rows_integrity(smh_b_path);
	int rv;

	ck_assert_msg(strcmp(ok, "ok") != 0, "%s: not a corruption", what);
	rows_file_load(&old, smh_a_path);
	rows_file_load(&new, smh_b_path);
	m = smh_build(&old);
	smh_txn_diff(&t, &old, &new);
	rv = store_map_check(m, t.pages, t.n, t.db_size, why, sizeof why);
	ck_assert_msg(rv == 1, "%s: accepted (%d) %s (integrity_check: %s)",
		      what, rv, why, ok);
	fprintf(stderr, "%-46s refused: %s (integrity_check: %s)\n", what, why,
		ok);
	store_map_free(m);
	free(t.pages);
	rows_file_free(&old);
	rows_file_free(&new);
	free(ok);
}

/* --- Finding pages ----------------------------------------------------- */

static uint32_t root_of(const char *path, const char *name)
{
	sqlite3 *db = rows_open(path);
	char *q = sqlite3_mprintf(
	    "SELECT rootpage FROM sqlite_schema WHERE name = %Q", name);
	uint32_t root = (uint32_t)fixture_query_int(db, q);

	sqlite3_free(q);
	sqlite3_close(db);
	return root;
}

/* The free leaf pages the freelist lists. */
static size_t free_leaves(struct rows_file *f, uint32_t *out, size_t max)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), i;
	size_t n = 0;

	while (trunk != 0) {
		const uint8_t *pg = rows_file_page(f, trunk);
		for (i = 0; i < get32(pg + 4) && n < max; i++)
			out[n++] = get32(pg + 8 + 4 * i);
		trunk = get32(pg);
	}
	return n;
}

static unsigned hdr_of(uint32_t pgno)
{
	return pgno == 1 ? 100 : 0;
}

static unsigned n_cells(const uint8_t *pg, uint32_t pgno)
{
	return get16(pg + hdr_of(pgno) + 3);
}

/* Cell i of the page (in the cell pointer array's order). */
static uint8_t *cell_at(uint8_t *pg, uint32_t pgno, unsigned i)
{
	unsigned h = hdr_of(pgno);
	unsigned ptrs = h + (pg[h] == 2 || pg[h] == 5 ? 12 : 8);

	ck_assert_uint_lt(i, n_cells(pg, pgno));
	return pg + get16(pg + ptrs + 2 * i);
}

/* Grows f by n zeroed pages, the header's page count too. */
static uint32_t grow(struct rows_file *f, uint32_t n)
{
	uint32_t first = f->n_pages + 1;

	f->data = realloc(f->data, (size_t)(f->n_pages + n) * SMH_PAGE);
	ck_assert_ptr_nonnull(f->data);
	memset(f->data + (size_t)f->n_pages * SMH_PAGE, 0,
	       (size_t)n * SMH_PAGE);
	f->n_pages += n;
	put32(rows_file_page(f, 1) + 28, f->n_pages);
	return first;
}

/* Makes pg an empty table interior page with the right child given. */
static void empty_interior(uint8_t *pg, uint32_t right)
{
	memset(pg, 0, SMH_PAGE);
	pg[0] = 5;
	put16(pg + 5, SMH_PAGE);
	put32(pg + 8, right);
}

struct find_cell {
	int64_t key;
	const uint8_t *base;
	long overflow_at; /* offset of the cell's overflow page number */
	uint32_t first;
};

static int find_cell_fn(void *arg, const struct btree_cell *c)
{
	struct find_cell *x = arg;

	if (c->key != x->key || c->overflow == 0)
		return 0;
	x->overflow_at = (long)(c->local + c->n_local - x->base);
	x->first = c->overflow;
	return 1;
}

/* The overflow page number of the row key of table tree (in f), and its
 * leaf. */
static uint8_t *overflow_ptr(struct rows_file *f, const char *tree, int64_t key)
{
	uint32_t leaves[1024];
	size_t n = rows_tree_pages(smh_b_path, tree, "leaf", leaves, 1024), i;

	for (i = 0; i < n; i++) {
		uint8_t *pg = rows_file_page(f, leaves[i]);
		struct find_cell x = {key, pg, -1, 0};
		btree_page_cells(pg, leaves[i], SMH_PAGE, find_cell_fn, &x);
		if (x.overflow_at >= 0)
			return pg + x.overflow_at;
	}
	ck_abort_msg("no overflow cell for row %lld of %s", (long long)key,
		     tree);
	return NULL;
}

/* The bytes of the rootpage field of name's record in the schema (which
 * must fit on page 1), and their number. */
static uint8_t *schema_rootpage(struct rows_file *f, const char *name,
				unsigned *size)
{
	uint8_t *pg = rows_file_page(f, 1);
	unsigned i;

	ck_assert_int_eq(pg[100], 13);
	for (i = 0; i < n_cells(pg, 1); i++) {
		uint8_t *p = cell_at(pg, 1, i), *hdr, *body;
		uint64_t types[5], hdr_len;
		unsigned sizes[5], k;
		int len;
		varint(p, &len); /* the payload size */
		p += len;
		varint(p, &len); /* the rowid */
		p += len;
		hdr_len = varint(p, &len);
		hdr = p + len;
		body = p + hdr_len;
		for (k = 0; k < 5; k++) {
			types[k] = varint(hdr, &len);
			hdr += len;
			sizes[k] = types[k] >= 12
				       ? (unsigned)(types[k] - 12) / 2
				   : types[k] <= 4 ? (unsigned)types[k]
				   : types[k] == 5 ? 6
				   : types[k] <= 7 ? 8
						   : 0;
		}
		if (sizes[1] == strlen(name) &&
		    memcmp(body + sizes[0], name, sizes[1]) == 0) {
			*size = sizes[3];
			return body + sizes[0] + sizes[1] + sizes[2];
		}
	}
	ck_abort_msg("%s not in the schema on page 1", name);
	return NULL;
}

static void set_rootpage(struct rows_file *f, const char *name, uint32_t root)
{
	unsigned size;
	uint8_t *at = schema_rootpage(f, name, &size);

	if (size == 1) {
		ck_assert_uint_lt(root, 128);
		at[0] = (uint8_t)root;
	} else {
		ck_assert_uint_eq(size, 2);
		ck_assert_uint_lt(root, 32768);
		put16(at, root);
	}
}

/* --- Corruptions --------------------------------------------------------- */

/* Mutations of the images of a legitimate transaction, on b.db loaded in
 * f (b.db itself is still the sound result until they are stored). */

/* t's root, an interior page over leaves. */
static uint8_t *t_root(struct rows_file *f, uint32_t *root)
{
	uint8_t *pg;

	*root = root_of(smh_b_path, "t");
	pg = rows_file_page(f, *root);
	ck_assert_int_eq(pg[0], 5);
	ck_assert_uint_ge(n_cells(pg, *root), 4);
	return pg;
}

static void child_to_other_tree(struct rows_file *f)
{
	uint32_t root, w_leaves[4];
	uint8_t *pg = t_root(f, &root);

	ck_assert_uint_ge(rows_tree_pages(smh_b_path, "w", "leaf", w_leaves, 4),
			  1);
	put32(cell_at(pg, root, 1), w_leaves[0]);
}

static void child_to_other_table(struct rows_file *f)
{
	uint32_t root, big_leaves[4];
	uint8_t *pg = t_root(f, &root);

	ck_assert_uint_ge(
	    rows_tree_pages(smh_b_path, "big", "leaf", big_leaves, 4), 1);
	put32(cell_at(pg, root, 1), big_leaves[0]);
}

static void child_to_sibling(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root);

	put32(cell_at(pg, root, 1), get32(cell_at(pg, root, 2)));
}

static void right_child_to_sibling(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root);

	put32(pg + 8, get32(cell_at(pg, root, 0)));
}

/* The cell at the start of the content area of t's root removed (its
 * bytes given back to the content area, so the page stays well formed):
 * its child page is no longer used. */
static void child_dropped(struct rows_file *f)
{
	uint32_t root, content, n, i;
	uint8_t *pg = t_root(f, &root);
	int len;

	content = get16(pg + 5);
	n = n_cells(pg, root);
	for (i = 0; i < n && get16(pg + 12 + 2 * i) != content; i++)
		;
	ck_assert_uint_lt(i, n);
	varint(pg + content + 4, &len);
	memmove(pg + 12 + 2 * i, pg + 14 + 2 * i, 2 * (n - 1 - i));
	put16(pg + 3, n - 1);
	put16(pg + 5, content + 4 + (uint32_t)len);
}

static void overflow_to_free_page(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	put32(overflow_ptr(f, "big", 5), leaves[0]);
}

static void overflow_last_goes_on(struct rows_file *f)
{
	uint32_t leaves[8], p = get32(overflow_ptr(f, "big", 5));

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	while (get32(rows_file_page(f, p)) != 0)
		p = get32(rows_file_page(f, p));
	put32(rows_file_page(f, p), leaves[0]);
}

static void overflow_cut_short(struct rows_file *f)
{
	uint32_t p = get32(overflow_ptr(f, "big", 5));

	put32(rows_file_page(f, p), 0);
}

static void trunk_lists_used_page(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), t_leaves[4];
	uint8_t *pg = rows_file_page(f, trunk);

	ck_assert_uint_ge(get32(pg + 4), 1);
	ck_assert_uint_ge(rows_tree_pages(smh_b_path, "t", "leaf", t_leaves, 4),
			  1);
	put32(pg + 8 + 4 * (get32(pg + 4) - 1), t_leaves[0]);
}

static void trunk_lists_itself(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32);
	uint8_t *pg = rows_file_page(f, trunk);

	put32(pg + 8, trunk);
}

static void freelist_count_up(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 36, get32(p1 + 36) + 1);
}

static void freelist_count_down(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 36, get32(p1 + 36) - 1);
}

/* The last rowid of the leaf under t's root's cell 2 becomes its
 * divider + 1 (a 2-byte varint either way). */
static void rowid_out_of_order(struct rows_file *f)
{
	uint32_t root, leaf, divider;
	uint8_t *pg = t_root(f, &root), *cell, *leaf_pg;
	int len;

	cell = cell_at(pg, root, 2);
	leaf = get32(cell);
	divider = (uint32_t)varint(cell + 4, &len);
	leaf_pg = rows_file_page(f, leaf);
	ck_assert_int_eq(leaf_pg[0], 13);
	cell = cell_at(leaf_pg, leaf, n_cells(leaf_pg, leaf) - 1);
	varint(cell, &len);
	cell += len;
	ck_assert_uint_eq((uint32_t)varint(cell, &len), divider);
	ck_assert_int_eq(len, 2);
	ck_assert_uint_lt(divider + 1, 16384);
	cell[0] = (uint8_t)(0x80 | (divider + 1) >> 7);
	cell[1] = (uint8_t)((divider + 1) & 0x7f);
}

/* An empty interior page between t's root and one of its leaves: that
 * leaf is one level deeper than its siblings. */
static void depth_differs(struct rows_file *f)
{
	uint32_t root, n;
	uint8_t *pg;

	n = grow(f, 1);
	pg = t_root(f, &root);
	empty_interior(rows_file_page(f, n), get32(cell_at(pg, root, 1)));
	put32(cell_at(pg, root, 1), n);
}

static void schema_root_other_table(struct rows_file *f)
{
	set_rootpage(f, "w", root_of(smh_b_path, "big"));
}

static void schema_root_leaf(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(rows_tree_pages(smh_b_path, "big", "leaf", leaves, 8),
			  1);
	set_rootpage(f, "w", leaves[0]);
}

static void schema_root_free(struct rows_file *f)
{
	uint32_t leaves[8];

	ck_assert_uint_ge(free_leaves(f, leaves, 8), 1);
	set_rootpage(f, "big", leaves[0]);
}

static void size_cut(struct rows_file *f)
{
	f->n_pages--;
	put32(rows_file_page(f, 1) + 28, f->n_pages);
}

static void page_nobody_refers_to(struct rows_file *f)
{
	uint32_t n = grow(f, 1), leaves[4];

	ck_assert_uint_ge(rows_tree_pages(smh_b_path, "t", "leaf", leaves, 4),
			  1);
	memcpy(rows_file_page(f, n), rows_file_page(f, leaves[0]), SMH_PAGE);
}

static void pages_in_a_loop(struct rows_file *f)
{
	uint32_t n = grow(f, 2);

	empty_interior(rows_file_page(f, n), n + 1);
	empty_interior(rows_file_page(f, n + 1), n);
}

/* An overflow chain pushed past the end, looping on itself. */
static void overflow_loop(struct rows_file *f)
{
	uint32_t n = grow(f, 2);

	put32(rows_file_page(f, n), n + 1);
	put32(rows_file_page(f, n + 1), n);
}

/* A free page of the freelist given a second trunk: the trunk chain. */
static void trunk_chain_to_used(struct rows_file *f)
{
	uint32_t trunk = get32(rows_file_page(f, 1) + 32), t_leaves[4];

	ck_assert_uint_ge(rows_tree_pages(smh_b_path, "t", "leaf", t_leaves, 4),
			  1);
	while (get32(rows_file_page(f, trunk)) != 0)
		trunk = get32(rows_file_page(f, trunk));
	put32(rows_file_page(f, trunk), t_leaves[0]);
}

struct mutation {
	const char *what;
	void (*fn)(struct rows_file *f);
};

static const char *update_t = "UPDATE t SET b = randomblob(60) WHERE id = "
			      "1500";
static const char *update_big =
    "UPDATE big SET v = randomblob(20000) WHERE id = 5";
static const char *delete_big = "DELETE FROM big WHERE id = 11";

static const struct mutation mutations[] = {
    {"child pointer into another tree", child_to_other_tree},
    {"child pointer into another table's tree", child_to_other_table},
    {"child pointer to an unchanged sibling", child_to_sibling},
    {"right child to a sibling", right_child_to_sibling},
    {"a child dropped", child_dropped},
    {"overflow pointer to a free page", overflow_to_free_page},
    {"last overflow page goes on", overflow_last_goes_on},
    {"overflow chain cut short", overflow_cut_short},
    {"trunk lists a page in use", trunk_lists_used_page},
    {"trunk lists itself", trunk_lists_itself},
    {"trunk chain into a page in use", trunk_chain_to_used},
    {"freelist count one more", freelist_count_up},
    {"freelist count one less", freelist_count_down},
    {"rowid out of order", rowid_out_of_order},
    {"children at different depths", depth_differs},
    {"schema root to another table's root", schema_root_other_table},
    {"schema root to a leaf page", schema_root_leaf},
    {"schema root to a free page", schema_root_free},
    {"database cut short", size_cut},
    {"a page nobody refers to", page_nobody_refers_to},
    {"two pages referring to each other", pages_in_a_loop},
    {"an overflow loop nobody refers to", overflow_loop},
};

static void run_mutation(const char *what, const char *sql,
			 void (*fn)(struct rows_file *f))
{
	struct rows_file f;

	rows_copy(smh_base_path, smh_a_path);
	rows_copy(smh_a_path, smh_b_path);
	rows_exec(smh_b_path, sql);
	smh_assert_legit(what); /* before the mutation */
	rows_file_load(&f, smh_b_path);
	fn(&f);
	rows_file_store(&f, smh_b_path);
	rows_file_free(&f);
	assert_refused(what);
}

START_TEST(test_corruptions_refused)
{
	const char *sqls[] = {update_t, update_big, delete_big};
	size_t i, j;

	rows_exec(smh_base_path, smh_base_sql);
	for (i = 0; i < sizeof mutations / sizeof *mutations; i++)
		for (j = 0; j < sizeof sqls / sizeof *sqls; j++) {
			char what[128];
			snprintf(what, sizeof what, "%s (%.*s)",
				 mutations[i].what, 10, sqls[j]);
			run_mutation(what, sqls[j], mutations[i].fn);
		}
}
END_TEST

/* auto_vacuum=FULL: a pointer-map entry wrong, for a page the transaction
 * writes and for one it does not. */
static void ptrmap_written_page(struct rows_file *f)
{
	uint32_t root;
	uint8_t *pg = t_root(f, &root), *pm = rows_file_page(f, 2);
	uint32_t leaf = get32(cell_at(pg, root, 0));

	ck_assert_uint_lt(leaf, 2 + SMH_PAGE / 5);
	ck_assert_int_eq(pm[5 * (leaf - 3)], 5);
	put32(pm + 5 * (leaf - 3) + 1, root + 1);
}

static void ptrmap_other_page(struct rows_file *f)
{
	uint8_t *pm = rows_file_page(f, 2);
	uint32_t w_root = root_of(smh_b_path, "w");

	ck_assert_int_eq(pm[5 * (w_root - 3)], 1);
	pm[5 * (w_root - 3)] = 5;
	put32(pm + 5 * (w_root - 3) + 1, 1);
}

static void ptrmap_overflow_type(struct rows_file *f)
{
	uint8_t *pm = rows_file_page(f, 2);
	uint32_t p = get32(overflow_ptr(f, "big", 5));

	ck_assert_uint_lt(p, 2 + SMH_PAGE / 5);
	ck_assert_int_eq(pm[5 * (p - 3)], 3);
	pm[5 * (p - 3)] = 4;
}

static void largest_root_wrong(struct rows_file *f)
{
	uint8_t *p1 = rows_file_page(f, 1);

	put32(p1 + 52, get32(p1 + 52) - 1);
}

START_TEST(test_autovacuum_corruptions_refused)
{
	const char *sqls[] = {update_t, update_big};
	const struct mutation av[] = {
	    {"pointer map: a written page's parent", ptrmap_written_page},
	    {"pointer map: another root's entry", ptrmap_other_page},
	    {"pointer map: an overflow page's type", ptrmap_overflow_type},
	    {"largest root page wrong", largest_root_wrong},
	    {"child pointer to an unchanged sibling", child_to_sibling},
	    {"database cut short", size_cut},
	    {"schema root to a leaf page", schema_root_leaf},
	};
	size_t i, j;

	rows_exec(smh_base_path, "PRAGMA auto_vacuum=FULL");
	rows_exec(smh_base_path, smh_base_sql);
	for (i = 0; i < sizeof av / sizeof *av; i++)
		for (j = 0; j < sizeof sqls / sizeof *sqls; j++) {
			char what[128];
			snprintf(what, sizeof what, "%s (%.*s)", av[i].what, 10,
				 sqls[j]);
			run_mutation(what, sqls[j], av[i].fn);
		}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store_map_corruptions");
	TCase *tc = tcase_create("store_map_corruptions");

	tcase_add_checked_fixture(tc, smh_setup, smh_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_corruptions_refused);
	tcase_add_test(tc, test_autovacuum_corruptions_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(suite());
}
