/* The fault proxy (fault_proxy.h) between libcurl and a real primary: each
 * fault does what it says, and nothing else. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "server_fixture.h"

#define FRAME 4120

static struct server_fixture srv;
static struct fault_proxy *fp;

struct body {
	char *p;
	size_t len;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static size_t collect(char *d, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	char *q = realloc(b->p, b->len + size * n + 1);

	if (q == NULL)
		return 0;
	memcpy(q + b->len, d, size * n);
	b->p = q;
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* One request on h (its connection kept alive between calls, as the
 * replica's client does): GET, or POST of post. The body received, even
 * of a failed transfer, goes to b (empty when nothing came). */
static CURLcode request_ex(CURL *h, const char *base, const char *path,
			   const char *post, int chunked, long timeout_ms,
			   struct body *b, long *status)
{
	struct curl_slist *headers = NULL;
	char url[256];
	CURLcode rc;

	b->p = calloc(1, 1);
	b->len = 0;
	ck_assert_ptr_nonnull(b->p);
	snprintf(url, sizeof url, "%s%s", base, path);
	curl_easy_reset(h); /* keeps the connection cache */
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	headers = curl_slist_append(headers, "Expect:");
	if (chunked)
		headers =
		    curl_slist_append(headers, "Transfer-Encoding: chunked");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (post != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
		if (!chunked)
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE,
					 (long)strlen(post));
	}
	rc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(headers);
	return rc;
}

static CURLcode request(CURL *h, const char *base, const char *path,
			const char *post, long timeout_ms, struct body *b)
{
	long status;

	return request_ex(h, base, path, post, 0, timeout_ms, b, &status);
}

/* A request that must succeed with 200; its body (malloc'd). */
static struct body get_ok(CURL *h, const char *base, const char *path)
{
	struct body b;
	long status;
	CURLcode rc = request_ex(h, base, path, NULL, 0, 5000, &b, &status);

	ck_assert_msg(rc == CURLE_OK, "GET %s%s: %s", base, path,
		      curl_easy_strerror(rc));
	ck_assert_msg(status == 200, "GET %s%s: HTTP %ld: %s", base, path,
		      status, b.p);
	return b;
}

static char *pipeline_body(const char *sql)
{
	char *s;

	ck_assert_int_ge(asprintf(&s,
				  "{\"requests\":[{\"type\":\"execute\","
				  "\"stmt\":{\"sql\":\"%s\"}},"
				  "{\"type\":\"close\"}]}",
				  sql),
			 0);
	return s;
}

/* Run one statement on the primary directly; its answer (malloc'd). */
static char *primary_sql(const char *sql)
{
	CURL *h = curl_easy_init();
	char *post = pipeline_body(sql);
	struct body b;
	CURLcode rc = request(h, srv.url, "/v2/pipeline", post, 5000, &b);

	ck_assert_msg(rc == CURLE_OK, "%s: %s", sql, curl_easy_strerror(rc));
	ck_assert_msg(strstr(b.p, "\"error\"") == NULL, "%s: %s", sql, b.p);
	free(post);
	curl_easy_cleanup(h);
	return b.p;
}

static void primary_exec(const char *sql)
{
	free(primary_sql(sql));
}

static long rows(void)
{
	char *r = primary_sql("SELECT count(*) FROM t");
	char *v = strstr(r, "\"value\":\"");
	long n;

	ck_assert_ptr_nonnull(v);
	n = strtol(v + strlen("\"value\":\""), NULL, 10);
	free(r);
	return n;
}

/* The primary's head, asked directly. */
static long max_frame(void)
{
	CURL *h = curl_easy_init();
	struct body b = get_ok(h, srv.url, "/info");
	char *v = strstr(b.p, "\"max_frame_no\":");
	long n;

	ck_assert_ptr_nonnull(v);
	n = strtol(v + strlen("\"max_frame_no\":"), NULL, 10);
	free(b.p);
	curl_easy_cleanup(h);
	return n;
}

static const char *insert_sql = "INSERT INTO t VALUES(randomblob(3000))";

/* One primary for the whole suite (started in Check's parent process):
 * tests aim at frames by index, and each compares with its own direct
 * answer, so the rows that tests add do not matter. */
static void setup_primary(void)
{
	int i;

	server_fixture_start(&srv, NULL);
	/* Several transactions: bodies of several frames to aim at. */
	primary_exec("CREATE TABLE t(x)");
	for (i = 0; i < 3; i++)
		primary_exec(insert_sql);
	ck_assert_int_ge(max_frame(), 4);
}

static void teardown_primary(void)
{
	server_fixture_stop(&srv);
}

/* A proxy per test: faults and counters start afresh. */
static void setup(void)
{
	const char *colon = strrchr(srv.url, ':');

	ck_assert_ptr_nonnull(colon);
	fp = fault_proxy_start(atoi(colon + 1));
	ck_assert_ptr_nonnull(fp);
}

static void teardown(void)
{
	fault_proxy_stop(fp);
	fp = NULL;
}

static const char *all_frames = "/sync/1/1/100000";

/* The index of the only byte where a and b differ (same length). */
static size_t only_difference(const struct body *a, const struct body *b)
{
	size_t i, at = 0, n = 0;

	ck_assert_uint_eq(a->len, b->len);
	for (i = 0; i < a->len; i++)
		if (a->p[i] != b->p[i]) {
			at = i;
			n++;
		}
	ck_assert_uint_eq(n, 1);
	return at;
}

START_TEST(test_passthrough_keep_alive_chunked)
{
	CURL *h = curl_easy_init();
	struct body d = get_ok(h, srv.url, all_frames), b;
	char *post = pipeline_body("SELECT 40 + 2");
	long status, connects = -1;

	ck_assert_uint_eq(d.len % FRAME, 0);
	b = get_ok(h, fault_proxy_url(fp), all_frames);
	ck_assert_mem_eq(b.p, d.p, d.len);
	ck_assert_uint_eq(b.len, d.len);
	free(b.p);
	/* One kept-alive connection through the proxy. */
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(connects, 0);
	/* A chunked request body is followed too: the next request on the
	 * connection is still recognised. */
	ck_assert_int_eq(request_ex(h, fault_proxy_url(fp), "/v2/pipeline",
				    post, 1, 5000, &b, &status),
			 CURLE_OK);
	ck_assert_int_eq(status, 200);
	ck_assert_ptr_nonnull(strstr(b.p, "\"42\""));
	free(b.p);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(connects, 0);
	ck_assert_int_eq(
	    fault_proxy_set(fp, FAULT_PROXY_CUT_HEADER, "GET /info", 0), 0);
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), "/info", NULL, 5000, &b), CURLE_OK);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	ck_assert_uint_eq(fault_proxy_requests(fp), 4);
	free(post);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_corrupt_page)
{
	CURL *h = curl_easy_init();
	struct body d = get_ok(h, srv.url, all_frames), b;
	size_t at;

	ck_assert_int_eq(
	    fault_proxy_set(fp, FAULT_PROXY_CORRUPT_PAGE, "GET /sync/", 0), 0);
	/* Not a match: it stays armed. */
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 0);
	b = get_ok(h, fault_proxy_url(fp), all_frames);
	at = only_difference(&d, &b);
	ck_assert_uint_eq(at / FRAME, 0);
	ck_assert_uint_ge(at % FRAME, 24); /* in the page */
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	free(b.p);
	/* One-shot. */
	b = get_ok(h, fault_proxy_url(fp), all_frames);
	ck_assert_mem_eq(b.p, d.p, d.len);
	free(b.p);
	/* param aims at a frame. */
	fault_proxy_set(fp, FAULT_PROXY_CORRUPT_PAGE, NULL, 2);
	b = get_ok(h, fault_proxy_url(fp), all_frames);
	at = only_difference(&d, &b);
	ck_assert_uint_eq(at / FRAME, 2);
	ck_assert_uint_ge(at % FRAME, 24);
	free(b.p);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_corrupt_header)
{
	CURL *h = curl_easy_init();
	struct body d = get_ok(h, srv.url, all_frames), b;

	fault_proxy_set(fp, FAULT_PROXY_CORRUPT_HEADER, "GET /sync/", 0);
	b = get_ok(h, fault_proxy_url(fp), all_frames);
	/* The page number's lowest byte (big-endian bytes 0-3). */
	ck_assert_uint_eq(only_difference(&d, &b), 3);
	ck_assert_int_eq((uint8_t)b.p[3], (uint8_t)d.p[3] ^ 0x80);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	free(b.p);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_cut_frame)
{
	CURL *h = curl_easy_init();
	struct body d = get_ok(h, srv.url, all_frames), b;
	char path[64];
	long head = max_frame(), status;

	fault_proxy_set(fp, FAULT_PROXY_CUT_FRAME, "GET /sync/", 0);
	/* Past the head: a 400 without frames leaves it armed. */
	snprintf(path, sizeof path, "/sync/1/%ld/%ld", head + 1, head + 10);
	ck_assert_int_eq(request_ex(h, fault_proxy_url(fp), path, NULL, 0, 5000,
				    &b, &status),
			 CURLE_OK);
	ck_assert_int_eq(status, 400);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 0);
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), all_frames, NULL, 5000, &b),
	    CURLE_OK);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	ck_assert_uint_ne(b.len % FRAME, 0);
	ck_assert_uint_eq(b.len, FRAME / 2);
	ck_assert_mem_eq(b.p, d.p, b.len);
	free(b.p);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_cut_boundary)
{
	CURL *h = curl_easy_init();
	struct body d = get_ok(h, srv.url, all_frames), b;
	CURLcode rc;

	ck_assert_uint_gt(d.len, 2 * FRAME);
	fault_proxy_set(fp, FAULT_PROXY_CUT_BOUNDARY, "GET /sync/", 0);
	rc = request(h, fault_proxy_url(fp), all_frames, NULL, 5000, &b);
	ck_assert_int_ne(rc, CURLE_OK);
	ck_assert_uint_eq(b.len, FRAME);
	ck_assert_mem_eq(b.p, d.p, b.len);
	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_CUT_BOUNDARY, "GET /sync/", 2);
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), all_frames, NULL, 5000, &b),
	    CURLE_OK);
	ck_assert_uint_eq(b.len, 2 * FRAME);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 2);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_cut_header)
{
	CURL *h = curl_easy_init();
	struct body b;

	fault_proxy_set(fp, FAULT_PROXY_CUT_HEADER, NULL, 0);
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), "/info", NULL, 5000, &b), CURLE_OK);
	ck_assert_uint_eq(b.len, 0);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	/* Disarmed: the client reconnects and is served. */
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_lose_answer)
{
	CURL *h = curl_easy_init();
	char *post = pipeline_body(insert_sql);
	long head = max_frame(), n = rows();
	struct body b;

	/* A new connection: the primary applies the write, the client
	 * gets an error. */
	fault_proxy_set(fp, FAULT_PROXY_LOSE_ANSWER, "POST /v2/", 0);
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), "/v2/pipeline", post, 5000, &b),
	    CURLE_OK);
	ck_assert_uint_eq(b.len, 0);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	ck_assert_uint_eq(fault_proxy_requests(fp), 1);
	ck_assert_int_gt(max_frame(), head);
	ck_assert_int_eq(rows(), n + 1);
	free(post);
	curl_easy_cleanup(h);
}
END_TEST

/* What the replica's client must be ready for: on a reused connection
 * that dies before any byte of the answer, libcurl sends the request again
 * on a new connection without telling, a POST included, so the primary
 * runs it twice. */
START_TEST(test_lose_answer_curl_resends)
{
	CURL *h = curl_easy_init();
	char *post = pipeline_body(insert_sql);
	long n = rows(), status;
	struct body b = get_ok(h, fault_proxy_url(fp), "/health");

	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_LOSE_ANSWER, "POST /v2/", 0);
	ck_assert_int_eq(request_ex(h, fault_proxy_url(fp), "/v2/pipeline",
				    post, 0, 5000, &b, &status),
			 CURLE_OK);
	ck_assert_int_eq(status, 200);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	ck_assert_uint_eq(fault_proxy_requests(fp), 3);
	ck_assert_int_eq(rows(), n + 2);
	free(post);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_refuse)
{
	CURL *h = curl_easy_init(), *fresh = curl_easy_init();
	int port = fault_proxy_port(fp);
	struct body b = get_ok(h, fault_proxy_url(fp), "/info");

	free(b.p);
	ck_assert_int_eq(fault_proxy_set(fp, FAULT_PROXY_REFUSE, NULL, 0), 0);
	ck_assert_int_eq(
	    request(fresh, fault_proxy_url(fp), "/info", NULL, 2000, &b),
	    CURLE_COULDNT_CONNECT);
	free(b.p);
	/* An open connection goes on. */
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	ck_assert_int_eq(fault_proxy_clear(fp), 0);
	ck_assert_int_eq(fault_proxy_port(fp), port);
	b = get_ok(fresh, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_cleanup(fresh);
	curl_easy_cleanup(h);
}
END_TEST

struct later_get {
	CURLcode rc;
	long elapsed_ms;
};

static void *get_through_proxy(void *arg)
{
	struct later_get *g = arg;
	CURL *h = curl_easy_init();
	int64_t t0 = now_ms();
	struct body b;

	g->rc = request(h, fault_proxy_url(fp), "/info", NULL, 10000, &b);
	g->elapsed_ms = (long)(now_ms() - t0);
	free(b.p);
	curl_easy_cleanup(h);
	return NULL;
}

START_TEST(test_stall)
{
	CURL *h = curl_easy_init();
	struct body b = get_ok(h, fault_proxy_url(fp), "/info");
	struct later_get g;
	pthread_t t;
	int64_t t0;

	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_STALL, NULL, 0);
	t0 = now_ms();
	ck_assert_int_eq(
	    request(h, fault_proxy_url(fp), "/info", NULL, 1000, &b),
	    CURLE_OPERATION_TIMEDOUT);
	ck_assert_int_ge(now_ms() - t0, 900);
	free(b.p);
	/* A request held by the stall goes through when it ends. */
	pthread_create(&t, NULL, get_through_proxy, &g);
	sleep_ms(300);
	fault_proxy_clear(fp);
	pthread_join(t, NULL);
	ck_assert_int_eq(g.rc, CURLE_OK);
	ck_assert_int_ge(g.elapsed_ms, 250);
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_blackhole)
{
	CURL *h = curl_easy_init(), *fresh = curl_easy_init();
	struct body b = get_ok(h, fault_proxy_url(fp), "/info");
	unsigned seen;

	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_BLACKHOLE, NULL, 0);
	seen = fault_proxy_requests(fp);
	ck_assert_int_eq(
	    request(fresh, fault_proxy_url(fp), "/info", NULL, 500, &b),
	    CURLE_OPERATION_TIMEDOUT);
	free(b.p);
	ck_assert_int_eq(
	    request(h, fault_proxy_url(fp), "/info", NULL, 500, &b),
	    CURLE_OPERATION_TIMEDOUT);
	free(b.p);
	ck_assert_uint_eq(fault_proxy_requests(fp), seen);
	fault_proxy_clear(fp);
	b = get_ok(fresh, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_cleanup(fresh);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_reset)
{
	CURL *h = curl_easy_init(), *fresh = curl_easy_init();
	struct body b = get_ok(h, fault_proxy_url(fp), "/info");
	CURLcode rc;

	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_RESET, NULL, 0);
	/* The open connection was reset; curl finds it dead and tries a new
	 * one, which is reset too. */
	ck_assert_int_ne(
	    request(h, fault_proxy_url(fp), "/info", NULL, 2000, &b), CURLE_OK);
	free(b.p);
	/* A reset, not a refused connect. */
	rc = request(fresh, fault_proxy_url(fp), "/info", NULL, 2000, &b);
	ck_assert_msg(rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR, "%s",
		      curl_easy_strerror(rc));
	free(b.p);
	ck_assert_uint_eq(fault_proxy_requests(fp), 1);
	fault_proxy_clear(fp);
	b = get_ok(h, fault_proxy_url(fp), "/info");
	free(b.p);
	curl_easy_cleanup(fresh);
	curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_latency)
{
	CURL *h = curl_easy_init();
	struct body b = get_ok(h, fault_proxy_url(fp), "/health");
	int64_t t0;

	free(b.p);
	fault_proxy_set(fp, FAULT_PROXY_LATENCY, NULL, 300);
	t0 = now_ms();
	b = get_ok(h, fault_proxy_url(fp), "/health");
	/* Request and answer are held 300 ms each. */
	ck_assert_int_ge(now_ms() - t0, 600);
	free(b.p);
	fault_proxy_clear(fp);
	curl_easy_cleanup(h);
}
END_TEST

static void *insert_later(void *arg)
{
	(void)arg;
	sleep_ms(300);
	primary_exec(insert_sql);
	return NULL;
}

/* A long-poll held by the primary, answered when a write commits, is
 * followed like any other answer. */
START_TEST(test_long_poll)
{
	CURL *h = curl_easy_init();
	long head = max_frame();
	struct body d, b;
	char path[64];
	pthread_t t;

	fault_proxy_set(fp, FAULT_PROXY_CORRUPT_PAGE, "GET /sync/", 0);
	snprintf(path, sizeof path, "/sync/1/%ld/%ld?wait=5", head + 1,
		 head + 100);
	pthread_create(&t, NULL, insert_later, NULL);
	b = get_ok(h, fault_proxy_url(fp), path);
	pthread_join(t, NULL);
	ck_assert_uint_ge(b.len, FRAME);
	ck_assert_uint_eq(fault_proxy_fired(fp), 1);
	d = get_ok(h, srv.url, path);
	ck_assert_uint_ge(only_difference(&d, &b) % FRAME, 24);
	free(b.p);
	free(d.p);
	curl_easy_cleanup(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault_proxy");
	TCase *tc = tcase_create("fault_proxy");
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, setup_primary, teardown_primary);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_passthrough_keep_alive_chunked);
	tcase_add_test(tc, test_corrupt_page);
	tcase_add_test(tc, test_corrupt_header);
	tcase_add_test(tc, test_cut_frame);
	tcase_add_test(tc, test_cut_boundary);
	tcase_add_test(tc, test_cut_header);
	tcase_add_test(tc, test_lose_answer);
	tcase_add_test(tc, test_lose_answer_curl_resends);
	tcase_add_test(tc, test_refuse);
	tcase_add_test(tc, test_stall);
	tcase_add_test(tc, test_blackhole);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_latency);
	tcase_add_test(tc, test_long_poll);
	suite_add_tcase(s, tc);
	rc = fixture_run(s);
	curl_global_cleanup();
	return rc;
}
