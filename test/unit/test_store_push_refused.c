/* Pushes the primary's storage refuses, with nothing applied: malformed
 * frames and ranges, bodies too large, page 1 headers SQLite refuses,
 * checksums that do not match, and pages that would damage the database. */
#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "store_fixture.h"
#include "store_test_helpers.h"
#include "server/store.h"
#include "wal/walfmt.h"

START_TEST(test_push_rejects_bad_frames)
{
	struct fx f;
	uint8_t frame[WALFMT_FRAME_SIZE];
	int status;
	json_t *j;

	fx_init(&f, "data");
	fx_open(&f);
	memset(frame, 0, sizeof frame);
	walfmt_put32(frame + 4, 1);
	j = sth_push(f.store, 1, 1, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400); /* page number 0 */
	json_decref(j);
	walfmt_put32(frame, 1);
	j = sth_push(f.store, 1, 1, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400); /* page 1 without a SQLite header */
	json_decref(j);
	j = sth_push(f.store, 1, 1, 2, "no-such-baton", frame, sizeof frame,
		     &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);
	j = sth_push(f.store, 1, 3, 2, NULL, frame, sizeof frame, &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);
	ck_assert_int_eq(
	    fixture_query_int(f.db, "SELECT count(*) FROM sqlite_schema"), 0);
	fx_done(&f);
}
END_TEST

/* Frame number (1-based) of the first frame of page pgno, or 0. */
static uint32_t find_page(uint8_t *frames, uint32_t n, uint32_t pgno)
{
	uint32_t i;

	for (i = 1; i <= n; i++) {
		if (walfmt_get32(sth_frame_at(frames, i)) == pgno)
			return i;
	}
	return 0;
}

START_TEST(test_push_refuses_malformed)
{
	struct fx a, b;
	uint8_t *frames, *copy;
	uint32_t n, p1;
	size_t len;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	copy = malloc(len + WALFMT_FRAME_SIZE);

	/* The body disagrees with the range: one frame more or less, a
	 * partial frame, nothing. */
	sth_assert_push_refused(&b, 1, 1, n, NULL, frames, len, 400,
				"INVALID_FRAMES");
	sth_assert_push_refused(&b, 1, 1, n + 2, NULL, frames, len, 400,
				"INVALID_FRAMES");
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, frames, len + 1, 400,
				"INVALID_FRAMES");
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, frames, len - 4096, 400,
				"INVALID_FRAMES");
	sth_assert_push_refused(&b, 1, 1, 2, NULL, frames, 0, 400,
				"INVALID_FRAMES");
	/* Empty or reversed ranges. */
	sth_assert_push_refused(&b, 1, 0, n, NULL, frames,
				(size_t)n * WALFMT_FRAME_SIZE, 400, NULL);
	sth_assert_push_refused(&b, 1, 2, 2, NULL, frames, 0, 400, NULL);

	/* Page number 0 anywhere (here: the commit frame). */
	memcpy(copy, frames, len);
	walfmt_put32(sth_frame_at(copy, n), 0);
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
				"INVALID_FRAMES");
	/* The pending-byte page, which SQLite never writes. */
	memcpy(copy, frames, len);
	walfmt_put32(sth_frame_at(copy, 2), 0x40000000u / 4096 + 1);
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
				"INVALID_FRAMES");
	/* A database size no SQLite file can have. */
	memcpy(copy, frames, len);
	walfmt_put32(sth_frame_at(copy, n) + 4, 0xffffffffu);
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
				"INVALID_FRAMES");
	/* Page 1 not a SQLite header, or for another page size. */
	p1 = find_page(frames, n, 1);
	ck_assert_uint_gt(p1, 0);
	memcpy(copy, frames, len);
	memcpy(sth_frame_at(copy, p1) + WALFMT_FRAME_HDR_SIZE,
	       "SQLite format 4", 15);
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
				"INVALID_FRAMES");
	memcpy(copy, frames, len);
	sth_frame_at(copy, p1)[WALFMT_FRAME_HDR_SIZE + 16] = 0x04; /* 1024 */
	sth_frame_at(copy, p1)[WALFMT_FRAME_HDR_SIZE + 17] = 0x00;
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, copy, len, 400,
				"INVALID_FRAMES");
	sth_assert_untouched(&b);

	/* A bad frame in a later request of a baton push: the frames
	 * buffered before it are not applied either. */
	{
		char *baton = sth_assert_push_ok(&b, 1, 2, NULL, frames);
		ck_assert_ptr_nonnull(baton);
		memcpy(copy, frames, len);
		walfmt_put32(sth_frame_at(copy, n), 0);
		sth_assert_push_refused(
		    &b, 1, 2, n + 1, baton, sth_frame_at(copy, 2),
		    (size_t)(n - 1) * WALFMT_FRAME_SIZE, 400, "INVALID_FRAMES");
		sth_assert_untouched(&b);
		free(baton);
	}

	/* The unaltered frames are accepted: the refusals were about the
	 * alterations. */
	free(sth_assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 6000);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);
	free(copy);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

START_TEST(test_push_too_large)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	char *baton;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	b.cfg.max_push_bytes = 2 * WALFMT_FRAME_SIZE;
	fx_close(&b);
	fx_open(&b);
	sth_assert_push_refused(&b, 1, 1, n + 1, NULL, frames,
				(size_t)n * WALFMT_FRAME_SIZE, 413,
				"PUSH_TOO_LARGE");
	sth_assert_untouched(&b);
	/* Buffered across requests counts too. */
	baton = sth_assert_push_ok(&b, 1, 3, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	sth_assert_push_refused(&b, 1, 3, n + 1, baton, sth_frame_at(frames, 3),
				(size_t)(n - 2) * WALFMT_FRAME_SIZE, 413,
				"PUSH_TOO_LARGE");
	sth_assert_untouched(&b);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Page 1 headers that SQLite refuses: once applied, every write to the
 * live database would fail (SQLITE_NOTADB / SQLITE_CORRUPT) and the store
 * might not reopen, so the push is refused with nothing applied. */
static void assert_page1_refused(int offset, uint8_t value)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, p1;
	int status;
	json_t *j;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	p1 = find_page(frames, n, 1);
	ck_assert_uint_gt(p1, 0);
	ck_assert_uint_ne(
	    sth_frame_at(frames, p1)[WALFMT_FRAME_HDR_SIZE + offset], value);
	sth_frame_at(frames, p1)[WALFMT_FRAME_HDR_SIZE + offset] = value;
	j = sth_push(b.store, 1, 1, n + 1, NULL, frames,
		     (size_t)n * WALFMT_FRAME_SIZE, &status);
	json_decref(j);
	ck_assert_msg(status == 400,
		      "page 1 with byte %d = %u was accepted (status %d)",
		      offset, value, status);
	sth_assert_untouched(&b);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}

START_TEST(test_push_page1_bad_payload_fraction)
{
	assert_page1_refused(21, 0); /* must be 64 */
}
END_TEST

START_TEST(test_push_page1_reserved_bytes)
{
	assert_page1_refused(20, 32); /* reserved bytes per page */
}
END_TEST

START_TEST(test_push_page1_bad_versions)
{
	assert_page1_refused(18, 3); /* 1 = rollback journal, 2 = WAL */
}
END_TEST

/* Pushes that state the checksums they were built on and lead to: taken
 * when both match, refused (400, nothing applied) when either does not. */
START_TEST(test_push_checksums)
{
	struct fx a, b;
	struct store_push_opts o = {.flags = STORE_PUSH_STRICT};
	struct http_reply r = {0};
	uint8_t *frames;
	uint32_t n;
	size_t len;
	json_t *info;
	uint64_t base, result;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	info = store_info(b.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&base),
	    0);
	json_decref(info);
	info = store_info(a.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&result),
	    0);
	json_decref(info);

	/* A wrong base, then a wrong result: refused, nothing applied. */
	o.has_base = 1;
	o.base = base ^ 1;
	o.has_result = 1;
	o.result = result;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "differs from the primary"));
	http_reply_free(&r);
	o.base = base;
	o.result = result ^ 1;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "foreign write"));
	http_reply_free(&r);
	sth_assert_untouched(&b);
	sth_assert_checksum_of_live(&b);

	/* Both right: applied, and b's checksum is a's. */
	o.result = result;
	store_push(b.store, 1, 1, n + 1, NULL, &o, frames, len, &r);
	ck_assert_int_eq(r.status, 200);
	http_reply_free(&r);
	ck_assert_uint_eq(store_head(b.store), n);
	sth_assert_checksum_of_live(&b);
	info = store_info(b.store);
	ck_assert_int_eq(
	    dbsum_parse(json_string_value(json_object_get(info, "checksum")),
			&base),
	    0);
	json_decref(info);
	ck_assert(base == result);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Page pgno of f's live database as it stands (checkpointed first). */
static void live_page(struct fx *f, uint32_t pgno, uint8_t *out)
{
	char *live = fixture_path(f->data, "live.db");
	uint8_t *img;
	size_t len;

	ck_assert_int_eq(sqlite3_wal_checkpoint_v2(f->db, "main",
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, NULL),
			 SQLITE_OK);
	img = fixture_read_file(live, &len);
	ck_assert_uint_ge(len, (size_t)pgno * WALFMT_PAGE_SIZE);
	memcpy(out, img + (size_t)(pgno - 1) * WALFMT_PAGE_SIZE,
	       WALFMT_PAGE_SIZE);
	free(img);
	free(live);
}

/* Pushes that would damage the primary are refused (400, naming the page)
 * and change nothing (issue 9, finding 3): a table's root page zeroed, an
 * index page with a cell pointer out of its page, a leaf whose header lies
 * about its cells.  A push that frees a page (DROP TABLE) is taken. */
START_TEST(test_push_refuses_damaging_pages)
{
	struct fx a, b;
	struct store_push_opts o = {.flags = STORE_PUSH_STRICT};
	struct http_reply r = {0};
	uint8_t frame[WALFMT_FRAME_SIZE], *frames;
	uint32_t n, head, db_size, i;
	static const struct {
		size_t off;
		uint8_t value;
		const char *needle;
	} damage[] = {
	    {0, 0, "page 2 is not a b-tree page"}, /* zeroed below */
	    {3, 0x40, "page 2"},                   /* 16k cells */
	    {7, 61, "fragmented"}, /* the header's fragment count */
	};

	static const char *const one_row[] = {"INSERT INTO t VALUES (1)"};

	sth_push_pair(&a, &b, one_row, 1, &frames, &n);
	free(frames);
	head = store_head(b.store);
	db_size = (uint32_t)fixture_query_int(b.db, "PRAGMA page_count");
	for (i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		uint8_t *page = frame + WALFMT_FRAME_HDR_SIZE;
		memset(frame, 0, sizeof frame);
		walfmt_put32(frame, 2); /* the root page of t */
		walfmt_put32(frame + 4, db_size);
		if (i > 0) {
			/* The real page 2, then one byte changed. */
			live_page(&b, 2, page);
			page[damage[i].off] = damage[i].value;
		}
		store_push(b.store, 1, head + 1, head + 2, NULL, &o, frame,
			   sizeof frame, &r);
		ck_assert_int_eq(r.status, 400);
		ck_assert_msg(strstr(r.body, damage[i].needle) != NULL,
			      "damage %u: %s", i, r.body);
		ck_assert_ptr_nonnull(strstr(r.body, "PUSH_CORRUPT"));
		http_reply_free(&r);
		ck_assert_uint_eq(store_head(b.store), head);
		fixture_assert_integrity(b.db);
	}
	/* A commit that changes the database size without page 1. */
	memset(frame, 0, sizeof frame);
	live_page(&b, 2, frame + WALFMT_FRAME_HDR_SIZE);
	walfmt_put32(frame, 2);
	walfmt_put32(frame + 4, db_size + 3);
	store_push(b.store, 1, head + 1, head + 2, NULL, &o, frame,
		   sizeof frame, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "without writing page 1"));
	http_reply_free(&r);
	ck_assert_uint_eq(store_head(b.store), head);
	/* A transaction that grows the table (new leaves under a new
	 * interior root, an overflow chain), with one of its new pages
	 * damaged: a new leaf zeroed, an overflow page ending the chain
	 * early.  Pages the live database never had are checked through the
	 * pushed pages that lead to them. */
	fx_exec(&a, "INSERT INTO t SELECT randomblob(700) FROM "
		    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
		    "SELECT i + 1 FROM n WHERE i < 40) SELECT i FROM n);"
		    "INSERT INTO t VALUES (randomblob(14000))");
	frames = sth_pull_all(a.store, 1, &n);
	for (i = 0; i < 2; i++) {
		uint8_t *copy = malloc((size_t)n * WALFMT_FRAME_SIZE);
		uint32_t f, target = 0;
		memcpy(copy, frames, (size_t)n * WALFMT_FRAME_SIZE);
		for (f = n; f > 1 && target == 0; f--) {
			uint8_t *pg =
			    sth_frame_at(copy, f) + WALFMT_FRAME_HDR_SIZE;
			uint32_t pgno = walfmt_get32(sth_frame_at(copy, f));
			if (pgno > db_size &&
			    (i == 0 ? pg[0] == 13
				    : pg[0] == 0 && walfmt_get32(pg) != 0))
				target = f;
		}
		ck_assert_uint_ne(target, 0);
		if (i == 0)
			memset(sth_frame_at(copy, target) +
				   WALFMT_FRAME_HDR_SIZE,
			       0, WALFMT_PAGE_SIZE);
		else
			walfmt_put32(sth_frame_at(copy, target) +
					 WALFMT_FRAME_HDR_SIZE,
				     0);
		store_push(b.store, 1, 1, n + 1, NULL, &o, copy,
			   (size_t)n * WALFMT_FRAME_SIZE, &r);
		ck_assert_msg(
		    r.status == 400 &&
			strstr(r.body, i == 0 ? "is not a b-tree page"
					      : "ends its chain") != NULL,
		    "damaged new page %u: %d %s", i, r.status, r.body);
		http_reply_free(&r);
		ck_assert_uint_eq(store_head(b.store), head);
		fixture_assert_integrity(b.db);
		free(copy);
	}
	free(frames);
	/* Still writable, and a real push that frees pages is taken. */
	fx_exec(&a, "CREATE TABLE big(x); INSERT INTO big VALUES "
		    "(randomblob(50000)); DROP TABLE big;"
		    "INSERT INTO t VALUES (7)");
	frames = sth_pull_all(a.store, 1, &n);
	free(sth_assert_push_ok(&b, 1, n + 1, NULL, frames));
	fixture_assert_integrity(b.db);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"),
			 fixture_query_int(a.db, "SELECT count(*) FROM t"));
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

static Suite *store_push_refused_suite(void)
{
	Suite *s = suite_create("store_push_refused");
	TCase *tc = tcase_create("store_push_refused");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_push_rejects_bad_frames);
	tcase_add_test(tc, test_push_refuses_malformed);
	tcase_add_test(tc, test_push_too_large);
	tcase_add_test(tc, test_push_page1_bad_payload_fraction);
	tcase_add_test(tc, test_push_page1_reserved_bytes);
	tcase_add_test(tc, test_push_page1_bad_versions);
	tcase_add_test(tc, test_push_checksums);
	tcase_add_test(tc, test_push_refuses_damaging_pages);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(store_push_refused_suite());
}
