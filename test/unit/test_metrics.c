/* The primary's numbers: histograms and the request table (metrics.h),
 * commit times (commit_times.h) and the replicas table (replicas.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "server/commit_times.h"
#include "server/metrics.h"
#include "server/replicas.h"

static char *render(struct metrics *m)
{
	struct metrics_text t = {0};

	metrics_render(m, &t);
	ck_assert(!t.failed);
	metrics_text_printf(&t, "%s", ""); /* NUL-terminated */
	return t.p;
}

START_TEST(test_histogram_buckets)
{
	struct metrics_histogram h = {0};
	struct metrics_text t = {0};

	metrics_histogram_observe(&h, 50);       /* <= 100 us */
	metrics_histogram_observe(&h, 100);      /* on a bound: in it */
	metrics_histogram_observe(&h, 3000);     /* <= 5 ms */
	metrics_histogram_observe(&h, 99000000); /* above 30 s: +Inf only */
	metrics_histogram_observe(&h, -5);       /* a clock step: as 0 */
	metrics_text_histogram(&t, "x", "a=\"b\"", &h);
	metrics_text_printf(&t, "%s", "");
	ck_assert_ptr_nonnull(
	    strstr(t.p, "x_bucket{a=\"b\",le=\"0.0001\"} 3\n"));
	ck_assert_ptr_nonnull(
	    strstr(t.p, "x_bucket{a=\"b\",le=\"0.0025\"} 3\n"));
	ck_assert_ptr_nonnull(
	    strstr(t.p, "x_bucket{a=\"b\",le=\"0.005\"} 4\n"));
	ck_assert_ptr_nonnull(strstr(t.p, "x_bucket{a=\"b\",le=\"30\"} 4\n"));
	ck_assert_ptr_nonnull(strstr(t.p, "x_bucket{a=\"b\",le=\"+Inf\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(t.p, "x_count{a=\"b\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(t.p, "x_sum{a=\"b\"} 99.003150\n"));
	free(t.p);
}
END_TEST

START_TEST(test_requests_by_route)
{
	struct metrics *m = metrics_new();
	char *page;
	int i;

	for (i = 0; i < 3; i++)
		metrics_request(m, "GET", "/sync/1/5/4101", 200, 1000);
	metrics_request(m, "POST", "/sync/1/5/6/abc", 200, 1000);
	metrics_request(m, "GET", "/sync/1/5/4101", 400, 1000);
	/* Paths of no route, and odd methods, share one row. */
	metrics_request(m, "GET", "/secret-path-1", 404, 10);
	metrics_request(m, "GET", "/secret-path-2", 404, 10);
	metrics_request(m, "BREW", "/health", 405, 10);
	page = render(m);
	ck_assert_ptr_nonnull(
	    strstr(page, "replite_http_requests_total{route=\"/sync/{gen}/"
			 "{start}/{end}\",method=\"GET\",status=\"200\"} 3\n"));
	ck_assert_ptr_nonnull(
	    strstr(page, "replite_http_requests_total{route=\"/sync/{gen}/"
			 "{start}/{end}\",method=\"GET\",status=\"400\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(
	    page, "replite_http_requests_total{route=\"/sync/{gen}/{start}/"
		  "{end}/{baton}\",method=\"POST\",status=\"200\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(page, "replite_http_requests_total{route=\"other\","
			 "method=\"GET\",status=\"404\"} 2\n"));
	ck_assert_ptr_nonnull(
	    strstr(page, "replite_http_requests_total{route=\"/health\","
			 "method=\"other\",status=\"405\"} 1\n"));
	ck_assert_ptr_null(strstr(page, "secret"));
	ck_assert_ptr_nonnull(strstr(
	    page, "replite_http_request_duration_seconds_count{route=\"/sync/"
		  "{gen}/{start}/{end}\"} 4\n"));
	free(page);
	metrics_free(m);
}
END_TEST

START_TEST(test_commit_times)
{
	struct commit_times *c = commit_times_new();

	ck_assert_int_eq(commit_times_after(c, 1, 0), 0);
	commit_times_note(c, 1, 0, 900); /* a generation's start: ignored */
	commit_times_note(c, 1, 3, 1000);
	commit_times_note(c, 1, 5, 1005); /* within the grain: merged */
	commit_times_note(c, 1, 9, 1100);
	commit_times_note(c, 1, 9, 1200); /* not newer: ignored */
	commit_times_note(c, 1, 7, 1300); /* older: ignored */
	commit_times_note(c, 2, 4, 1400);
	ck_assert_int_eq(commit_times_after(c, 1, 0), 1000);
	ck_assert_int_eq(commit_times_after(c, 1, 4), 1000); /* overstated */
	ck_assert_int_eq(commit_times_after(c, 1, 5), 1100);
	ck_assert_int_eq(commit_times_after(c, 1, 8), 1100);
	ck_assert_int_eq(commit_times_after(c, 1, 9), 1400); /* next gen */
	ck_assert_int_eq(commit_times_after(c, 2, 0), 1400);
	ck_assert_int_eq(commit_times_after(c, 2, 4), 0); /* caught up */
	ck_assert_int_eq(commit_times_after(c, 3, 0), 0);
	commit_times_free(c);
}
END_TEST

START_TEST(test_commit_times_wrap)
{
	struct commit_times *c = commit_times_new();
	uint32_t i, n = COMMIT_TIMES_CAP + 100;

	for (i = 1; i <= n; i++)
		commit_times_note(c, 1, i, 1000 + (int64_t)i * 20);
	/* The oldest 100 entries are gone: older positions are behind
	 * since the oldest entry kept. */
	ck_assert_int_eq(commit_times_after(c, 1, 0), 1000 + 101 * 20);
	ck_assert_int_eq(commit_times_after(c, 1, 500), 1000 + 501 * 20);
	ck_assert_int_eq(commit_times_after(c, 1, n - 1),
			 1000 + (int64_t)n * 20);
	ck_assert_int_eq(commit_times_after(c, 1, n), 0);
	commit_times_free(c);
}
END_TEST

START_TEST(test_replicas_table)
{
	struct replicas *r = replicas_new(1000, 3);
	struct replicas_entry *e;
	size_t n;

	ck_assert(!replicas_valid_id(NULL));
	ck_assert(!replicas_valid_id(""));
	ck_assert(!replicas_valid_id("a b"));
	ck_assert(!replicas_valid_id("x\"}"));
	ck_assert(!replicas_valid_id("0123456789012345678901234567890123"));
	replicas_seen(r, "bad id", 1, 1, 0);
	replicas_seen(r, "b", 1, 10, 100);
	replicas_seen(r, "a", 1, 20, 200);
	replicas_seen(r, "b", 1, 15, 300); /* moves on */
	n = replicas_list(r, &e);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(e[0].id, "a");
	ck_assert_str_eq(e[1].id, "b");
	ck_assert_uint_eq(e[1].frame, 15);
	ck_assert_int_eq(e[1].seen_ms, 300);
	free(e);
	/* Full: the one heard from longest ago makes room. */
	replicas_seen(r, "c", 1, 1, 400);
	replicas_seen(r, "d", 1, 1, 500);
	n = replicas_list(r, &e);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(e[0].id, "b");
	ck_assert_str_eq(e[1].id, "c");
	ck_assert_str_eq(e[2].id, "d");
	free(e);
	/* Expiry: not heard from for more than 1000 ms. */
	replicas_expire(r, 1350);
	n = replicas_list(r, &e);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(e[0].id, "c");
	free(e);
	replicas_expire(r, 10000);
	ck_assert_uint_eq(replicas_list(r, &e), 0);
	ck_assert_ptr_null(e);
	replicas_free(r);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_histogram_buckets);
	tcase_add_test(tc, test_requests_by_route);
	tcase_add_test(tc, test_commit_times);
	tcase_add_test(tc, test_commit_times_wrap);
	tcase_add_test(tc, test_replicas_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(metrics_suite());
}
