/* The codec of the sync protocol bodies: frame bodies of pulls, /info and
 * the "generation" answer of a pull past the head. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "proto/frames.h"
#include "proto/messages.h"
#include "wal/walfmt.h"

/* n frames with the given page numbers and db sizes; page i is filled with
 * the byte i + 1; salts and checksums are junk (the codec ignores them). */
static uint8_t *build(uint32_t page_size, uint32_t n, const uint32_t *pgno,
		      const uint32_t *db_size, size_t *len)
{
	size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)page_size;
	uint8_t *body = malloc(n * frame_size);
	uint32_t i;

	ck_assert_ptr_nonnull(body);
	for (i = 0; i < n; i++) {
		uint8_t *f = body + i * frame_size;
		walfmt_put32(f, pgno[i]);
		walfmt_put32(f + 4, db_size[i]);
		walfmt_put32(f + 8, 0xdeadbeef);
		walfmt_put32(f + 12, 0xcafebabe);
		walfmt_put32(f + 16, 0x01020304);
		walfmt_put32(f + 20, 0x05060708);
		memset(f + WALFMT_FRAME_HDR_SIZE, (int)(i + 1), page_size);
	}
	*len = n * frame_size;
	return body;
}

START_TEST(test_parse_whole_transactions)
{
	static const uint32_t pgno[] = {2, 5, 1, 3};
	static const uint32_t db_size[] = {0, 0, 0, 7};
	struct frames_batch b;
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 4, pgno, db_size, &len);
	uint32_t i;

	ck_assert_uint_eq(len, 4 * 4120);
	ck_assert_msg(
	    frames_parse(body, len, 4096, 10, 138, &b, err, sizeof err) == 0,
	    "%s", err);
	ck_assert_uint_eq(b.n, 4);
	ck_assert_uint_eq(b.n_complete, 4);
	ck_assert_uint_eq(b.db_size, 7);
	for (i = 0; i < 4; i++) {
		ck_assert_uint_eq(b.frames[i].pgno, pgno[i]);
		ck_assert_uint_eq(b.frames[i].db_size, db_size[i]);
		/* A view into the body, no copy. */
		ck_assert_ptr_eq(b.frames[i].page,
				 body + i * 4120 + WALFMT_FRAME_HDR_SIZE);
		ck_assert_uint_eq(b.frames[i].page[0], i + 1);
		ck_assert_uint_eq(b.frames[i].page[4095], i + 1);
	}
	frames_batch_free(&b);
	ck_assert_ptr_null(b.frames);
	ck_assert_uint_eq(b.n, 0);
	free(body);
}
END_TEST

/* Frames after the last commit are an incomplete transaction. */
START_TEST(test_parse_incomplete_tail)
{
	static const uint32_t pgno[] = {2, 3, 4, 2, 9, 8};
	static const uint32_t db_size[] = {0, 4, 4, 0, 0, 0};
	struct frames_batch b;
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 6, pgno, db_size, &len);

	ck_assert_msg(
	    frames_parse(body, len, 4096, 1, 129, &b, err, sizeof err) == 0,
	    "%s", err);
	ck_assert_uint_eq(b.n, 6);
	ck_assert_uint_eq(b.n_complete, 3);
	ck_assert_uint_eq(b.db_size, 4);
	frames_batch_free(&b);

	/* No commit at all: nothing complete (the transaction is longer
	 * than the range asked for). */
	ck_assert_int_eq(
	    frames_parse(body, 1 * 4120, 4096, 1, 129, &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.n, 1);
	ck_assert_uint_eq(b.n_complete, 0);
	ck_assert_uint_eq(b.db_size, 0);
	frames_batch_free(&b);
	free(body);
}
END_TEST

/* A commit frame may name a page beyond its db_size (a truncating
 * transaction); the injector drops such pages, the codec accepts them. */
START_TEST(test_parse_commit_beyond_db_size)
{
	static const uint32_t pgno[] = {9, 3};
	static const uint32_t db_size[] = {0, 2};
	struct frames_batch b;
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 2, pgno, db_size, &len);

	ck_assert_msg(
	    frames_parse(body, len, 4096, 1, 3, &b, err, sizeof err) == 0, "%s",
	    err);
	ck_assert_uint_eq(b.n_complete, 2);
	ck_assert_uint_eq(b.frames[1].pgno, 3);
	ck_assert_uint_eq(b.db_size, 2);
	frames_batch_free(&b);
	free(body);
}
END_TEST

/* The page size is a parameter. */
START_TEST(test_parse_page_sizes)
{
	static const uint32_t sizes[] = {512, 1024, 8192, 65536};
	static const uint32_t pgno[] = {1, 2};
	static const uint32_t db_size[] = {0, 2};
	struct frames_batch b;
	char err[256] = "";
	size_t len, k;

	for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		uint8_t *body = build(sizes[k], 2, pgno, db_size, &len);
		ck_assert_msg(frames_parse(body, len, sizes[k], 1, 3, &b, err,
					   sizeof err) == 0,
			      "%s", err);
		ck_assert_uint_eq(b.n, 2);
		ck_assert_ptr_eq(b.frames[1].page, body + len - sizes[k]);
		frames_batch_free(&b);
		/* The same body read with 4096-byte pages is malformed. */
		ck_assert_int_eq(
		    frames_parse(body, len, 4096, 1, 3, &b, err, sizeof err),
		    -1);
		free(body);
	}
}
END_TEST

START_TEST(test_parse_bad_length)
{
	static const uint32_t pgno[] = {1, 2};
	static const uint32_t db_size[] = {0, 2};
	struct frames_batch b = {0};
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 2, pgno, db_size, &len);

	ck_assert_int_eq(
	    frames_parse(body, 0, 4096, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "empty body"));
	ck_assert_ptr_nonnull(strstr(err, "[1, 129)"));

	/* Truncated by one byte, one byte too many, a lone header. */
	ck_assert_int_eq(
	    frames_parse(body, len - 1, 4096, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "8239 bytes"));
	ck_assert_ptr_nonnull(strstr(err, "frame size 4120"));
	ck_assert_int_eq(
	    frames_parse(body, 4121, 4096, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "4121 bytes"));
	ck_assert_int_eq(
	    frames_parse(body, 24, 4096, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "24 bytes"));
	/* *out untouched on failure. */
	ck_assert_ptr_null(b.frames);
	free(body);
}
END_TEST

START_TEST(test_parse_bad_pgno)
{
	uint32_t pgno[] = {1, 0, 2};
	static const uint32_t db_size[] = {0, 0, 3};
	struct frames_batch b = {0};
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 3, pgno, db_size, &len);

	ck_assert_int_eq(
	    frames_parse(body, len, 4096, 20, 148, &b, err, sizeof err), -1);
	/* Names the primary's frame number and the page number. */
	ck_assert_ptr_nonnull(strstr(err, "frame 21 "));
	ck_assert_ptr_nonnull(strstr(err, "page number 0"));
	ck_assert_ptr_null(b.frames);
	free(body);

	ck_assert_uint_eq(frames_pending_byte_page(4096), 262145);
	ck_assert_uint_eq(frames_pending_byte_page(512), 2097153);
	ck_assert_uint_eq(frames_pending_byte_page(65536), 16385);

	/* The pending-byte page, for two page sizes; its neighbours are
	 * fine. */
	pgno[1] = 262145;
	body = build(4096, 3, pgno, db_size, &len);
	ck_assert_int_eq(
	    frames_parse(body, len, 4096, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "page number 262145"));
	ck_assert_ptr_nonnull(strstr(err, "pending-byte page"));
	free(body);
	pgno[1] = 2097153;
	body = build(512, 3, pgno, db_size, &len);
	ck_assert_int_eq(
	    frames_parse(body, len, 512, 1, 129, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "pending-byte page"));
	free(body);
	pgno[1] = 262144;
	pgno[2] = 262146;
	body = build(4096, 3, pgno, db_size, &len);
	ck_assert_msg(
	    frames_parse(body, len, 4096, 1, 129, &b, err, sizeof err) == 0,
	    "%s", err);
	frames_batch_free(&b);
	free(body);
}
END_TEST

/* No more frames than [start, end) holds. */
START_TEST(test_parse_too_many)
{
	static const uint32_t pgno[] = {1, 2, 3};
	static const uint32_t db_size[] = {0, 0, 3};
	struct frames_batch b = {0};
	char err[256] = "";
	size_t len;
	uint8_t *body = build(4096, 3, pgno, db_size, &len);

	ck_assert_int_eq(
	    frames_parse(body, len, 4096, 5, 7, &b, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "3 frames, more than the 2 asked"));
	ck_assert_ptr_null(b.frames);
	ck_assert_int_eq(
	    frames_parse(body, len, 4096, 5, 8, &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.n, 3);
	frames_batch_free(&b);
	free(body);
}
END_TEST

/* Frames as the primary's log stores them (walfmt_frame_encode, real salts
 * and checksum chain) decode to the same pages, and the body still
 * verifies: the codec reads, never rewrites. */
START_TEST(test_roundtrip_walfmt)
{
	static const uint32_t pgno[] = {1, 4, 2, 7, 3};
	static const uint32_t db_size[] = {0, 0, 7, 0, 7};
	const uint32_t salt[2] = {0x11223344, 0x55667788};
	const uint32_t hdr_cksum[2] = {0x0badf00d, 0x12345678};
	uint32_t chain[2] = {hdr_cksum[0], hdr_cksum[1]};
	struct frames_batch b;
	char err[256] = "";
	uint8_t *body = malloc(5 * WALFMT_FRAME_SIZE);
	uint32_t i, j;

	ck_assert_ptr_nonnull(body);
	for (i = 0; i < 5; i++) {
		uint8_t *f = body + i * WALFMT_FRAME_SIZE;
		for (j = 0; j < WALFMT_PAGE_SIZE; j++) {
			f[WALFMT_FRAME_HDR_SIZE + j] = (uint8_t)(i * 31 + j);
		}
		walfmt_frame_encode(1, salt, chain, pgno[i], db_size[i],
				    f + WALFMT_FRAME_HDR_SIZE, WALFMT_PAGE_SIZE,
				    f);
	}
	ck_assert_msg(frames_parse(body, 5 * WALFMT_FRAME_SIZE,
				   WALFMT_PAGE_SIZE, 1, 129, &b, err,
				   sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(b.n, 5);
	ck_assert_uint_eq(b.n_complete, 5);
	ck_assert_uint_eq(b.db_size, 7);
	chain[0] = hdr_cksum[0];
	chain[1] = hdr_cksum[1];
	for (i = 0; i < 5; i++) {
		const uint8_t *f = body + i * WALFMT_FRAME_SIZE;
		ck_assert_uint_eq(b.frames[i].pgno, pgno[i]);
		ck_assert_uint_eq(b.frames[i].db_size, db_size[i]);
		for (j = 0; j < WALFMT_PAGE_SIZE; j++) {
			ck_assert_uint_eq(b.frames[i].page[j],
					  (uint8_t)(i * 31 + j));
		}
		ck_assert_int_eq(
		    walfmt_frame_verify(1, salt, chain, f, WALFMT_PAGE_SIZE),
		    0);
	}
	frames_batch_free(&b);
	free(body);
}
END_TEST

/* messages_parse_info on a NUL-terminated text. */
static int parse_info(const char *text, struct messages_info *info, char *err,
		      size_t err_len)
{
	return messages_parse_info(text, strlen(text), info, err, err_len);
}

START_TEST(test_info)
{
	struct messages_info info;
	char err[256] = "";
	const char *full = "{\"current_generation\":3,\"database_id\":\"abc\","
			   "\"max_frame_no\":120,\"oldest_generation\":2}";

	ck_assert_msg(parse_info(full, &info, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(info.current_generation, 3);
	ck_assert_str_eq(info.database_id, "abc");
	ck_assert_int_eq(info.has_max_frame_no, 1);
	ck_assert_uint_eq(info.max_frame_no, 120);
	ck_assert_uint_eq(info.oldest_generation, 2);
	messages_info_free(&info);
	ck_assert_ptr_null(info.database_id);

	/* An old server: the generation only. */
	ck_assert_msg(parse_info("{\"current_generation\":1}", &info, err,
				 sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(info.current_generation, 1);
	ck_assert_ptr_null(info.database_id);
	ck_assert_int_eq(info.has_max_frame_no, 0);
	ck_assert_uint_eq(info.oldest_generation, 0);
	messages_info_free(&info);

	/* max_frame_no 0 is a real value (empty generation). */
	ck_assert_int_eq(parse_info("{\"current_generation\":4294967295,"
				    "\"max_frame_no\":0,\"database_id\":null}",
				    &info, err, sizeof err),
			 0);
	ck_assert_uint_eq(info.current_generation, UINT32_MAX);
	ck_assert_int_eq(info.has_max_frame_no, 1);
	ck_assert_uint_eq(info.max_frame_no, 0);
	ck_assert_ptr_null(info.database_id);
	messages_info_free(&info);

	/* Optional fields given as null count as absent. */
	ck_assert_int_eq(parse_info("{\"current_generation\":2,"
				    "\"max_frame_no\":null,"
				    "\"oldest_generation\":null}",
				    &info, err, sizeof err),
			 0);
	ck_assert_int_eq(info.has_max_frame_no, 0);
	ck_assert_uint_eq(info.oldest_generation, 0);
	messages_info_free(&info);
}
END_TEST

static const struct {
	const char *body;
	const char *expect;
} bad_info[] = {
    {"", "not a JSON object: ''"},
    {"<html>502 Bad Gateway</html>",
     "not a JSON object: '<html>502 Bad Gateway</html>'"},
    {"[1]", "not a JSON object"},
    {"{}", "no \"current_generation\""},
    {"{\"current_generation\":0}", "\"current_generation\": 0, out of range"},
    {"{\"current_generation\":-2}", "out of range"},
    {"{\"current_generation\":4294967296}", "out of range"},
    {"{\"current_generation\":\"1\"}",
     "\"current_generation\" that is not an integer"},
    {"{\"current_generation\":1.0}", "not an integer"},
    {"{\"current_generation\":1,\"database_id\":5}",
     "\"database_id\" that is not a non-empty string"},
    {"{\"current_generation\":1,\"database_id\":\"\"}",
     "\"database_id\" that is not a non-empty string"},
    {"{\"current_generation\":1,\"max_frame_no\":-1}",
     "\"max_frame_no\": -1, out of range"},
    {"{\"current_generation\":1,\"max_frame_no\":\"9\"}",
     "\"max_frame_no\" that is not an integer"},
};

START_TEST(test_info_malformed)
{
	struct messages_info info = {0};
	char err[256] = "";

	ck_assert_int_eq(messages_parse_info(bad_info[_i].body,
					     strlen(bad_info[_i].body), &info,
					     err, sizeof err),
			 -1);
	ck_assert_msg(strstr(err, bad_info[_i].expect) != NULL,
		      "case %d: expected '%s' in '%s'", _i, bad_info[_i].expect,
		      err);
	ck_assert_ptr_nonnull(strstr(err, "GET /info"));
	ck_assert_uint_eq(info.current_generation, 0);
	ck_assert_ptr_null(info.database_id);
}
END_TEST

START_TEST(test_info_long_body_excerpt)
{
	struct messages_info info;
	char err[512] = "";
	char body[4000];

	memset(body, 'x', sizeof body);
	body[10] = '\n';
	ck_assert_int_eq(
	    messages_parse_info(body, sizeof body, &info, err, sizeof err), -1);
	/* Cut short, control characters masked. */
	ck_assert_ptr_nonnull(strstr(err, "...'"));
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert_uint_lt(strlen(err), 200);
}
END_TEST

START_TEST(test_generation)
{
	const char *caught_up = "{\"generation\":3,\"message\":\"no more "
				"frames\"}";
	char err[256] = "";
	uint32_t gen = 0;

	ck_assert_msg(messages_parse_generation(caught_up, strlen(caught_up),
						&gen, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(gen, 3);
	ck_assert_int_eq(messages_parse_generation("{\"generation\":4}",
						   strlen("{\"generation\":4}"),
						   &gen, err, sizeof err),
			 0);
	ck_assert_uint_eq(gen, 4);
}
END_TEST

static const struct {
	const char *body;
	const char *expect;
} bad_generation[] = {
    {"{\"generation\":0}", "\"generation\": 0, out of range"},
    {"{\"generation\":\"2\"}", "\"generation\" that is not an integer"},
    {"{\"generation\":null}", "not an integer"},
    {"{\"generation\":4294967296}", "out of range"},
    {"{}", "has no \"generation\""},
    {"not json", "not a JSON object: 'not json'"},
    /* Another 400 of the primary: its message is passed on. */
    {"{\"error\":\"invalid frame range [0, 5)\",\"message\":\"invalid frame "
     "range [0, 5)\",\"code\":\"INVALID_FRAME_RANGE\"}",
     "the primary refused the pull: invalid frame range [0, 5)"},
    {"{\"error\":\"Unauthorized\"}", "refused the pull: Unauthorized"},
};

START_TEST(test_generation_malformed)
{
	char err[256] = "";
	uint32_t gen = 77;

	ck_assert_int_eq(
	    messages_parse_generation(bad_generation[_i].body,
				      strlen(bad_generation[_i].body), &gen,
				      err, sizeof err),
	    -1);
	ck_assert_msg(strstr(err, bad_generation[_i].expect) != NULL,
		      "case %d: expected '%s' in '%s'", _i,
		      bad_generation[_i].expect, err);
	ck_assert_uint_eq(gen, 77);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("frames");
	TCase *tc = tcase_create("frames");

	tcase_add_test(tc, test_parse_whole_transactions);
	tcase_add_test(tc, test_parse_incomplete_tail);
	tcase_add_test(tc, test_parse_commit_beyond_db_size);
	tcase_add_test(tc, test_parse_page_sizes);
	tcase_add_test(tc, test_parse_bad_length);
	tcase_add_test(tc, test_parse_bad_pgno);
	tcase_add_test(tc, test_parse_too_many);
	tcase_add_test(tc, test_roundtrip_walfmt);
	tcase_add_test(tc, test_info);
	tcase_add_loop_test(tc, test_info_malformed, 0,
			    (int)(sizeof bad_info / sizeof bad_info[0]));
	tcase_add_test(tc, test_info_long_body_excerpt);
	tcase_add_test(tc, test_generation);
	tcase_add_loop_test(
	    tc, test_generation_malformed, 0,
	    (int)(sizeof bad_generation / sizeof bad_generation[0]));
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
