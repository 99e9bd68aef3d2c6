/* lag_ms in replite_status: the age of the oldest primary commit the
 * replica knows of and has not applied, from the X-Replite-Behind-Since
 * header the primary sends with frames that stop short of its head; 0 once
 * it is caught up.
 *
 * The replica is made to stop half-way: three big transactions on the
 * primary, 300 ms apart, of which a replica's first pull (4096 frames)
 * holds the first two and part of the third, and the fault proxy cuts the
 * answer to its second pull in its header (a lost answer on a kept-alive
 * connection, libcurl would send again).  The replica then has applied two and
 * knows the third is missing: its lag is the third's age. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One transaction of about 1,960 frames: an 8 MB blob's overflow pages. */
static void big_transaction(const char *url)
{
	rfx_primary_exec(url, "INSERT INTO b(v) VALUES (zeroblob(8000000))");
}

START_TEST(test_lag_while_behind)
{
	struct rfx_env env;
	struct fault_proxy *proxy;
	int64_t f0, sent3, acked3, lag, now, frame_no;
	char match[64], *err;
	sqlite3 *db;

	rfx_env_start(&env, NULL);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)");
	proxy = fault_proxy_start(atoi(strrchr(env.srv.url, ':') + 1));
	ck_assert_ptr_nonnull(proxy);
	db = rfx_open(env.path, fault_proxy_url(proxy), "sync_interval=0");
	f0 = rfx_status_int(db, "frame_no");
	ck_assert_int_eq(rfx_status_int(db, "lag_ms"), 0);

	big_transaction(env.srv.url);
	rfx_sleep_ms(300);
	big_transaction(env.srv.url);
	rfx_sleep_ms(300);
	sent3 = unix_ms();
	big_transaction(env.srv.url);
	acked3 = unix_ms();

	/* The first pull asks for frames f0+1 ... f0+4096; the second one,
	 * from f0+4097, gets half an answer. */
	snprintf(match, sizeof match, "GET /sync/1/%lld/",
		 (long long)(f0 + 4097));
	ck_assert_int_eq(
	    fault_proxy_set(proxy, FAULT_PROXY_CUT_HEADER, match, 0), 0);
	err = rfx_sync_error(db);
	ck_assert_msg(err != NULL, "the second pull should have failed");
	free(err);
	rfx_sleep_ms(200);
	frame_no = rfx_status_int(db, "frame_no");
	lag = rfx_status_int(db, "lag_ms");
	now = unix_ms();
	/* Two transactions applied, the third not. */
	ck_assert_int_gt(frame_no, f0 + 3000);
	ck_assert_int_lt(frame_no, f0 + 4097);
	ck_assert_msg(lag >= now - acked3 - 20 && lag <= now - sent3 + 20,
		      "lag_ms %lld, expected the third transaction's age "
		      "(%lld to %lld ms)",
		      (long long)lag, (long long)(now - acked3),
		      (long long)(now - sent3));

	/* Caught up: no lag. */
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "lag_ms"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM b"), 3);
	sqlite3_close(db);
	fault_proxy_stop(proxy);
	rfx_env_stop(&env);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_lag_while_behind,
	};

	return rfx_run_tests("replica_lag", tests,
			     sizeof tests / sizeof tests[0]);
}
