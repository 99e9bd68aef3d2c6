/* store_pages (Turso Sync's pull): a full image is byte for byte the
 * database SQLite reads; an increment laid over an older image gives the
 * newer one, also across rollovers; revisions from the future and from
 * dropped generations are told apart. */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "store_fixture.h"

/* An image: db_size pages. */
struct image {
	uint8_t *bytes;
	uint32_t pages;
};

/* What SQLite reads through the store's connection now. */
static struct image live_image(struct fx *f)
{
	sqlite3_int64 size = 0;
	struct image im;

	im.bytes = sqlite3_serialize(f->db, "main", &size, 0);
	ck_assert_ptr_nonnull(im.bytes);
	im.pages = (uint32_t)(size / WALFMT_PAGE_SIZE);
	return im;
}

/* Lay p's pages over im (grown or cut to p's size). */
static void apply(struct image *im, struct store_pages *p)
{
	uint32_t i, n = store_pages_db_size(p);
	uint8_t *b = realloc(im->bytes, (size_t)n * WALFMT_PAGE_SIZE);

	ck_assert_ptr_nonnull(b);
	if (n > im->pages)
		memset(b + (size_t)im->pages * WALFMT_PAGE_SIZE, 0xee,
		       (size_t)(n - im->pages) * WALFMT_PAGE_SIZE);
	im->bytes = b;
	im->pages = n;
	for (i = 0; i < store_pages_count(p); i++) {
		uint32_t pgno = store_pages_pgno(p, i);
		ck_assert_uint_le(pgno, n);
		if (i > 0)
			ck_assert_uint_gt(pgno, store_pages_pgno(p, i - 1));
		ck_assert_int_eq(
		    store_pages_read(p, i,
				     b + (size_t)(pgno - 1) * WALFMT_PAGE_SIZE),
		    0);
	}
}

static void assert_same(struct image *a, struct image *b)
{
	ck_assert_uint_eq(a->pages, b->pages);
	ck_assert_int_eq(
	    memcmp(a->bytes, b->bytes, (size_t)a->pages * WALFMT_PAGE_SIZE), 0);
}

static void write_rows(struct fx *f, int from, int n)
{
	char sql[200];
	int i;

	for (i = from; i < from + n; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO t VALUES (%d, randomblob(%d))", i,
			 100 + (i * 37) % 3000);
		fx_exec(f, sql);
	}
}

START_TEST(test_full_image_and_increments)
{
	struct fx f;
	struct store_pages *p;
	struct image client = {0}, want;
	uint32_t gen, frame;

	fx_init(&f, "data");
	f.cfg.generation_frames = 25;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)");
	write_rows(&f, 0, 10);
	ck_assert_int_eq(store_pages_open(f.store, 0, 0, &p), 0);
	apply(&client, p);
	gen = store_pages_generation(p);
	frame = store_pages_frame(p);
	store_pages_close(p);
	want = live_image(&f);
	assert_same(&client, &want);
	sqlite3_free(want.bytes);

	/* Nothing new: no pages, the same state. */
	ck_assert_int_eq(store_pages_open(f.store, gen, frame, &p), 0);
	ck_assert_uint_eq(store_pages_count(p), 0);
	ck_assert_uint_eq(store_pages_frame(p), frame);
	ck_assert_uint_eq(store_pages_db_size(p), client.pages);
	store_pages_close(p);

	/* Increments, each across rollovers, some shrinking the database. */
	for (int round = 0; round < 4; round++) {
		write_rows(&f, 100 * (round + 1), 15);
		store_maintain(f.store);
		fx_exec(&f, round % 2 ? "DELETE FROM t WHERE id % 3 = 0"
				      : "UPDATE t SET b = zeroblob(10)");
		if (round == 2)
			fx_exec(&f, "VACUUM");
		store_maintain(f.store);
		write_rows(&f, 100 * (round + 1) + 50, 3);
		ck_assert_int_eq(store_pages_open(f.store, gen, frame, &p), 0);
		ck_assert_uint_gt(store_pages_generation(p), gen);
		apply(&client, p);
		gen = store_pages_generation(p);
		frame = store_pages_frame(p);
		store_pages_close(p);
		want = live_image(&f);
		assert_same(&client, &want);
		sqlite3_free(want.bytes);
	}
	/* A full image after all that is the same too. */
	ck_assert_int_eq(store_pages_open(f.store, 0, 0, &p), 0);
	free(client.bytes);
	memset(&client, 0, sizeof client);
	apply(&client, p);
	store_pages_close(p);
	want = live_image(&f);
	assert_same(&client, &want);
	sqlite3_free(want.bytes);
	free(client.bytes);

	/* From the future: a later frame or generation. */
	ck_assert_int_eq(store_pages_open(f.store, gen, frame + 1, &p), 1);
	ck_assert_int_eq(store_pages_open(f.store, gen + 1, 0, &p), 1);
	fx_done(&f);
}
END_TEST

START_TEST(test_dropped_generation_needs_full_image)
{
	struct fx f;
	struct store_pages *p;

	fx_init(&f, "data");
	f.cfg.generation_frames = 5;
	f.cfg.retention_ms = 0;
	fx_open(&f);
	fx_exec(&f, "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)");
	write_rows(&f, 0, 8);
	store_maintain(f.store); /* rolls over */
	write_rows(&f, 10, 8);
	store_maintain(f.store); /* and drops generation 1 */
	ck_assert_uint_ge(store_generation(f.store), 2);
	ck_assert_int_eq(store_pages_open(f.store, 1, 1, &p), 2);
	fx_done(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_pages");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_full_image_and_increments);
	tcase_add_test(tc, test_dropped_generation_needs_full_image);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
