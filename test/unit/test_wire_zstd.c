/* Compression on the wire (issue 16): the primary answers GET /export and
 * GET /sync with a zstd body when the client accepts it, and the replica
 * asks for it and uses only what decodes and verifies.
 *
 *   1. Raw answers (libcurl told not to decode): with "Accept-Encoding:
 *      zstd" the body is a zstd stream that decodes to exactly the plain
 *      answer, and a text-heavy one is well under half its size; refused
 *      weights, other codings and --compression-level 0 get plain bodies.
 *   2. A replica reports the bytes on the wire (wire_bytes_pulled) beside
 *      the decoded ones, and ends equal to the primary.
 *   3. A byte flipped in a compressed answer (fault_proxy.h, passing
 *      Accept-Encoding through) is never used: the HTTP client names the
 *      cause, and the replica counts a rejected transfer, asks again and
 *      ends equal to the primary. A cut stream leaves no body.
 *   4. The client's body limit applies to the decoded bytes, so a small
 *      compressed answer cannot blow up the replica's memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zstd.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/http_client.h"

/* Rows whose text compresses like prose does (repeated words, some
 * numbers): about 600 KB in all. */
#define TEXT_ROWS                                                              \
	"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "      \
	"WHERE i < 1500) INSERT INTO t(v) SELECT printf('row %d: the "         \
	"quick brown fox jumps over the lazy dog while the replica keeps "     \
	"its copy of the primary in sync, page after page, frame after "       \
	"frame; order %d of customer %d shipped on day %d', i, i * 7, i % "    \
	"97, i % 365) || printf('%.*c', 200 + i % 50, 'x') FROM n"

struct raw {
	char *body;
	size_t len;
	char headers[4096];
	size_t hlen;
	long status;
};

static size_t on_body(char *d, size_t size, size_t n, void *arg)
{
	struct raw *r = arg;
	char *q = realloc(r->body, r->len + size * n + 1);

	ck_assert_ptr_nonnull(q);
	r->body = q;
	memcpy(r->body + r->len, d, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t on_header(char *d, size_t size, size_t n, void *arg)
{
	struct raw *r = arg;
	size_t k = size * n;

	if (r->hlen + k < sizeof r->headers) {
		memcpy(r->headers + r->hlen, d, k);
		r->hlen += k;
		r->headers[r->hlen] = '\0';
	}
	return k;
}

/* GET url+path as sent, libcurl decoding nothing, with the Accept-Encoding
 * value given (NULL: no such header). */
static void fetch_raw(const char *url, const char *path, const char *accept,
		      struct raw *r)
{
	CURL *easy = curl_easy_init();
	struct curl_slist *h = NULL;
	char full[256], line[256];

	memset(r, 0, sizeof *r);
	ck_assert_ptr_nonnull(easy);
	snprintf(full, sizeof full, "%s%s", url, path);
	if (accept != NULL) {
		snprintf(line, sizeof line, "Accept-Encoding: %s", accept);
		h = curl_slist_append(h, line);
	}
	curl_easy_setopt(easy, CURLOPT_URL, full);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
	ck_assert_int_eq(curl_easy_perform(easy), CURLE_OK);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
}

static int has_header(const struct raw *r, const char *name_value)
{
	const char *p;

	for (p = r->headers; (p = strchr(p, '\n')) != NULL; p++)
		if (strncasecmp(p + 1, name_value, strlen(name_value)) == 0)
			return 1;
	return 0;
}

/* Decode a whole zstd stream (the test fails if it does not decode). */
static char *unzstd(const struct raw *r, size_t *out_len)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer in = {r->body, r->len, 0};
	size_t cap = 1 << 20, rc = 1;
	char *out = malloc(cap);
	ZSTD_outBuffer o = {out, cap, 0};

	ck_assert_ptr_nonnull(d);
	while (rc != 0) {
		if (o.pos == o.size) {
			cap *= 2;
			out = realloc(out, cap);
			o.dst = out;
			o.size = cap;
		}
		rc = ZSTD_decompressStream(d, &o, &in);
		ck_assert_msg(!ZSTD_isError(rc), "zstd: %s",
			      ZSTD_getErrorName(rc));
		if (rc != 0 && in.pos == in.size && o.pos < o.size)
			ck_abort_msg("the zstd stream ends in the middle");
	}
	ck_assert_uint_eq(in.pos, in.size);
	ZSTD_freeDCtx(d);
	*out_len = o.pos;
	return out;
}

/* A primary (with extra arguments) whose current generation's base holds
 * the text rows: generations end after 50 frames, so the rows written
 * before the last rollover are in the image /export serves. */
static void start_text_primary(struct rfx_env *e, const char *level,
			       struct rfx_info *info)
{
	const char *args[] = {"--generation-frames", "50", NULL, NULL, NULL};
	int i;

	if (level != NULL) {
		args[2] = "--compression-level";
		args[3] = level;
	}
	rfx_env_start(e, args);
	rfx_primary_exec(e->srv.url,
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
	rfx_primary_exec(e->srv.url, TEXT_ROWS);
	/* The rollover comes with the primary's periodic maintenance. */
	for (i = 0; i < 300; i++) {
		rfx_primary_info(e->srv.url, NULL, info);
		if (info->generation >= 2)
			break;
		rfx_sleep_ms(50);
	}
	ck_assert_uint_ge(info->generation, 2);
	rfx_primary_exec(e->srv.url, "INSERT INTO t(v) VALUES ('after')");
}

/* The compressed answer to path decodes to the plain one, and is at most
 * ratio of its size. */
static void assert_compressed(const char *url, const char *path, double ratio)
{
	struct raw plain, z;
	size_t n;
	char *decoded;

	fetch_raw(url, path, NULL, &plain);
	fetch_raw(url, path, "gzip, deflate, br, zstd", &z);
	ck_assert_int_eq(plain.status, 200);
	ck_assert_int_eq(z.status, 200);
	ck_assert_msg(!has_header(&plain, "Content-Encoding:"), "%s",
		      plain.headers);
	ck_assert_msg(has_header(&z, "Content-Encoding: zstd"), "%s",
		      z.headers);
	ck_assert_msg(has_header(&z, "Vary: Accept-Encoding"), "%s", z.headers);
	decoded = unzstd(&z, &n);
	ck_assert_uint_eq(n, plain.len);
	ck_assert(memcmp(decoded, plain.body, n) == 0);
	ck_assert_msg((double)z.len <= ratio * (double)plain.len,
		      "%s: %zu bytes compressed of %zu", path, z.len,
		      plain.len);
	free(decoded);
	free(plain.body);
	free(z.body);
}

START_TEST(test_export_and_frames_are_compressed_when_asked)
{
	struct rfx_env e;
	struct rfx_info info;
	char path[64];

	start_text_primary(&e, NULL, &info);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	assert_compressed(e.srv.url, path, 0.4);
	/* The frames of generation 1: the text rows as the log has them. */
	assert_compressed(e.srv.url, "/sync/1/1/40", 0.4);
	rfx_env_stop(&e);
}
END_TEST

/* Answers that must stay plain. */
static void assert_plain(const char *url, const char *path, const char *ae)
{
	struct raw r;

	fetch_raw(url, path, ae, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(!has_header(&r, "Content-Encoding:"), "%s: %s", ae,
		      r.headers);
	free(r.body);
}

START_TEST(test_refused_or_disabled_compression_gets_plain_bodies)
{
	struct rfx_env e;
	struct rfx_info info;
	char path[64];

	start_text_primary(&e, NULL, &info);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	assert_plain(e.srv.url, path, "zstd;q=0");
	assert_plain(e.srv.url, path, "gzip, deflate, br");
	assert_plain(e.srv.url, path, "identity");
	assert_plain(e.srv.url, "/sync/1/1/40", "*, zstd;q=0");
	rfx_env_stop(&e);

	start_text_primary(&e, "0", &info);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	assert_plain(e.srv.url, path, "zstd");
	assert_plain(e.srv.url, "/sync/1/1/40", "zstd");
	rfx_env_stop(&e);
}
END_TEST

START_TEST(test_replica_counts_the_bytes_on_the_wire)
{
	struct rfx_env e;
	struct rfx_info info;
	sqlite3 *db;
	int64_t wire, bytes;

	start_text_primary(&e, NULL, &info);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	wire = rfx_status_int(db, "wire_bytes_pulled");
	bytes = rfx_status_int(db, "bytes_pulled");
	ck_assert_msg(wire > 0 && (double)wire <= 0.4 * (double)bytes,
		      "%lld bytes on the wire for %lld", (long long)wire,
		      (long long)bytes);
	rfx_assert_same_table(db, e.srv.url, "t", "v");
	rfx_assert_verified(db);
	sqlite3_close(db);
	rfx_env_stop(&e);

	/* Not compressed: as many bytes on the wire as received. */
	start_text_primary(&e, "0", &info);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(rfx_status_int(db, "wire_bytes_pulled"),
			 rfx_status_int(db, "bytes_pulled"));
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

static int url_port(const char *url)
{
	return atoi(strrchr(url, ':') + 1);
}

static struct http_client *client_for(const char *url, size_t max_body)
{
	struct http_client_config cfg = {url, NULL, 2000, max_body,
					 0,   NULL, NULL};
	struct http_client *c = NULL;
	char err[256];

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	return c;
}

START_TEST(test_damaged_compressed_answer_is_refused_by_name)
{
	struct rfx_env e;
	struct rfx_info info;
	struct fault_proxy *proxy;
	struct http_client *c;
	struct http_client_response r = {0};
	char path[64], err[512];
	int rc;

	start_text_primary(&e, NULL, &info);
	proxy = fault_proxy_start(url_port(e.srv.url));
	ck_assert_ptr_nonnull(proxy);
	fault_proxy_pass_encoding(proxy, 1);
	c = client_for(fault_proxy_url(proxy), 64 << 20);
	snprintf(path, sizeof path, "/export/%u", info.generation);

	fault_proxy_set(proxy, FAULT_PROXY_CORRUPT_BYTE, "GET /export/", 3000);
	rc = http_client_request(c, "GET", path, NULL, 0, 30000, &r, err,
				 sizeof err);
	ck_assert_uint_eq(fault_proxy_fired(proxy), 1);
	ck_assert_int_eq(rc, 1);
	ck_assert_ptr_null(r.body);
	RFX_ASSERT_HAS(err, "compressed answer from");
	RFX_ASSERT_HAS(err, "could not be decoded");
	RFX_ASSERT_HAS(err, "nothing of it was used");

	/* Cut in the middle of the stream: no answer, and no body. */
	fault_proxy_set(proxy, FAULT_PROXY_CUT_BYTE, "GET /export/", 3000);
	rc = http_client_request(c, "GET", path, NULL, 0, 30000, &r, err,
				 sizeof err);
	ck_assert_uint_eq(fault_proxy_fired(proxy), 2);
	ck_assert_int_ne(rc, 0);
	ck_assert_ptr_null(r.body);

	/* And untouched, the same request decodes. */
	ck_assert_int_eq(http_client_request(c, "GET", path, NULL, 0, 30000, &r,
					     err, sizeof err),
			 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_gt(r.len, 4 * r.wire_len);
	http_client_response_free(&r);

	http_client_free(c);
	fault_proxy_stop(proxy);
	rfx_env_stop(&e);
}
END_TEST

/* Wait until the current generation has fewer frames than the 50 that end
 * one (start_text_primary), so that no rollover is due. */
static void wait_settled(const char *url)
{
	struct rfx_info info;
	int i;

	for (i = 0; i < 300; i++) {
		rfx_primary_info(url, NULL, &info);
		if (info.max_frame_no < 50)
			return;
		rfx_sleep_ms(50);
	}
	ck_abort_msg("the primary did not roll over");
}

START_TEST(test_replica_refetches_a_damaged_compressed_answer)
{
	struct rfx_env e;
	struct rfx_info info;
	struct fault_proxy *proxy;
	sqlite3 *db;
	int64_t rejected;

	start_text_primary(&e, NULL, &info);
	proxy = fault_proxy_start(url_port(e.srv.url));
	ck_assert_ptr_nonnull(proxy);
	fault_proxy_pass_encoding(proxy, 1);

	/* The image, while bootstrapping. */
	fault_proxy_set(proxy, FAULT_PROXY_CORRUPT_BYTE, "GET /export/", 3000);
	db = rfx_open(e.path, fault_proxy_url(proxy), "sync_interval=0");
	ck_assert_uint_eq(fault_proxy_fired(proxy), 1);
	rejected = rfx_status_int(db, "rejected_transfers");
	ck_assert_int_ge(rejected, 1);
	rfx_assert_same_table(db, e.srv.url, "t", "v");

	/* Frames, while catching up. */
	rfx_primary_exec(e.srv.url, "UPDATE t SET v = v || ' (updated)' "
				    "WHERE id % 3 = 0");
	/* (Generations end after 50 frames: let the primary settle, so that
	 * no rollover comes between the sync and the verification.) */
	wait_settled(e.srv.url);
	fault_proxy_set(proxy, FAULT_PROXY_CORRUPT_BYTE, "GET /sync/", 1000);
	rfx_sync(db);
	ck_assert_uint_eq(fault_proxy_fired(proxy), 2);
	ck_assert_int_gt(rfx_status_int(db, "rejected_transfers"), rejected);
	ck_assert_int_lt(rfx_status_int(db, "wire_bytes_pulled"),
			 rfx_status_int(db, "bytes_pulled"));
	rfx_assert_same_table(db, e.srv.url, "t", "v");
	rfx_assert_verified(db);

	sqlite3_close(db);
	fault_proxy_stop(proxy);
	rfx_env_stop(&e);
}
END_TEST

START_TEST(test_body_limit_counts_decoded_bytes)
{
	struct rfx_env e;
	struct rfx_info info;
	struct http_client *c;
	struct http_client_response r = {0};
	struct raw z;
	char path[64], err[512];

	start_text_primary(&e, NULL, &info);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	fetch_raw(e.srv.url, path, "zstd", &z);
	/* A limit the compressed body fits in but the image does not. */
	c = client_for(e.srv.url, z.len * 2);
	ck_assert_int_eq(http_client_request(c, "GET", path, NULL, 0, 30000, &r,
					     err, sizeof err),
			 -1);
	ck_assert_ptr_null(r.body);
	RFX_ASSERT_HAS(err, "is larger than");
	http_client_free(c);
	free(z.body);
	rfx_env_stop(&e);
}
END_TEST

/* The file at path exists (waiting up to 10 s for it). */
static int wait_for_file(const char *path)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (access(path, F_OK) == 0)
			return 1;
		rfx_sleep_ms(50);
	}
	return 0;
}

/* The current generation's base is compressed once, in the background,
 * into gen-G/base.db.zst; from then on an export to a client that accepts
 * zstd is that file as it is (with a length, not chunked), and decodes to
 * the plain image. */
START_TEST(test_export_copy_is_made_once_and_sent_as_is)
{
	struct rfx_env e;
	struct rfx_info info;
	struct raw plain, z;
	char path[64], *copy, rel[64];
	size_t n;
	char *decoded;

	start_text_primary(&e, NULL, &info);
	snprintf(rel, sizeof rel, "data/gen-%08u/base.db.zst", info.generation);
	copy = fixture_path(e.srv.dir, rel);
	ck_assert_msg(wait_for_file(copy), "no %s", copy);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	fetch_raw(e.srv.url, path, NULL, &plain);
	fetch_raw(e.srv.url, path, "zstd", &z);
	ck_assert_msg(has_header(&z, "Content-Encoding: zstd"), "%s",
		      z.headers);
	ck_assert_msg(has_header(&z, "Content-Length:"), "%s", z.headers);
	ck_assert_msg(!has_header(&z, "Transfer-Encoding:"), "%s", z.headers);
	decoded = unzstd(&z, &n);
	ck_assert_uint_eq(n, plain.len);
	ck_assert(memcmp(decoded, plain.body, n) == 0);
	ck_assert_msg((double)z.len <= 0.4 * (double)plain.len, "%zu of %zu",
		      z.len, plain.len);
	free(decoded);
	free(plain.body);
	free(z.body);
	free(copy);
	rfx_env_stop(&e);
}
END_TEST

/* A copy damaged while the primary was down (a flipped byte) is found at
 * start-up, made again, and no client ever gets the damaged one. */
START_TEST(test_damaged_export_copy_is_made_again)
{
	struct rfx_durable d;
	struct raw plain, z;
	char *copy, *body;
	size_t len, n;
	char *decoded;
	FILE *f;
	int i;

	rfx_durable_start(&d, NULL);
	rfx_primary_exec(d.srv.url, "CREATE TABLE t(v TEXT)");
	copy = fixture_path(d.data, "gen-00000001/base.db.zst");
	ck_assert_msg(wait_for_file(copy), "no %s", copy);
	server_fixture_stop(&d.srv);

	body = rfx_slurp(copy, &len);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_gt(len, 16);
	body[len / 2] ^= 0x5a;
	f = fopen(copy, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(body, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);

	rfx_durable_restart(&d, 1);
	/* Until the copy is made again, exports are compressed as sent; from
	 * then on the new copy is sent.  Either way they decode right. */
	fetch_raw(d.srv.url, "/export/1", NULL, &plain);
	for (i = 0; i < 200; i++) {
		char *now = rfx_slurp(copy, &n);
		int same = now != NULL && n == len && memcmp(now, body, n) == 0;

		free(now);
		if (!same)
			break;
		rfx_sleep_ms(50);
	}
	ck_assert_msg(i < 200, "the damaged copy was not made again");
	ck_assert_msg(wait_for_file(copy), "no %s", copy);
	for (i = 0; i < 3; i++) {
		fetch_raw(d.srv.url, "/export/1", "zstd", &z);
		ck_assert_msg(has_header(&z, "Content-Encoding: zstd"), "%s",
			      z.headers);
		decoded = unzstd(&z, &n);
		ck_assert_uint_eq(n, plain.len);
		ck_assert(memcmp(decoded, plain.body, n) == 0);
		free(decoded);
		free(z.body);
	}
	free(plain.body);
	free(body);
	free(copy);
	rfx_durable_stop(&d);
}
END_TEST

/* An image that hardly compresses (random blobs: the copy saves less than
 * a tenth) is sent plain once that is known: compressing it would cost
 * both ends time for almost nothing. */
START_TEST(test_incompressible_image_is_sent_plain)
{
	const char *args[] = {"--generation-frames", "50", NULL};
	struct rfx_env e;
	struct rfx_info info;
	struct raw r;
	char path[64], rel[64], *copy;
	int i;

	rfx_env_start(&e, args);
	rfx_primary_exec(e.srv.url, "CREATE TABLE b(x BLOB)");
	rfx_primary_exec(e.srv.url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 300) INSERT INTO b SELECT "
			 "randomblob(3800) FROM n");
	for (i = 0; i < 300; i++) {
		rfx_primary_info(e.srv.url, NULL, &info);
		if (info.generation >= 2)
			break;
		rfx_sleep_ms(50);
	}
	ck_assert_uint_ge(info.generation, 2);
	snprintf(rel, sizeof rel, "data/gen-%08u/base.db.zst", info.generation);
	copy = fixture_path(e.srv.dir, rel);
	ck_assert_msg(wait_for_file(copy), "no %s", copy);
	snprintf(path, sizeof path, "/export/%u", info.generation);
	/* Once the thread has weighed the copy (right after it is renamed
	 * into place), answers are plain. */
	for (i = 0; i < 100; i++) {
		fetch_raw(e.srv.url, path, "zstd", &r);
		free(r.body);
		if (!has_header(&r, "Content-Encoding:"))
			break;
		rfx_sleep_ms(50);
	}
	ck_assert_msg(i < 100, "still compressed: %s", r.headers);
	free(copy);
	rfx_env_stop(&e);
}
END_TEST

static Suite *wire_zstd_suite(void)
{
	Suite *s = suite_create("wire_zstd");
	TCase *tc = tcase_create("wire");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_export_and_frames_are_compressed_when_asked);
	tcase_add_test(tc,
		       test_refused_or_disabled_compression_gets_plain_bodies);
	tcase_add_test(tc, test_replica_counts_the_bytes_on_the_wire);
	tcase_add_test(tc, test_damaged_compressed_answer_is_refused_by_name);
	tcase_add_test(tc, test_replica_refetches_a_damaged_compressed_answer);
	tcase_add_test(tc, test_body_limit_counts_decoded_bytes);
	tcase_add_test(tc, test_export_copy_is_made_once_and_sent_as_is);
	tcase_add_test(tc, test_damaged_export_copy_is_made_again);
	tcase_add_test(tc, test_incompressible_image_is_sent_plain);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(wire_zstd_suite());
}
