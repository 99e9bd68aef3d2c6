/* Integrity end to end under network faults (issue 9), the one-shot
 * faults on an answer: a replica talks to a real primary through the fault
 * proxy (fault_proxy.h) while a bank runs on it, and the proxy cuts an
 * answer in its header, in a frame or at a frame boundary, corrupts a
 * frame's page or header, or loses the answer to a push the primary
 * applied, armed again each time it fired.  Each test case is one fault of
 * the proxy, so one can be run alone (CK_RUN_CASE=test_cut_frame).  The
 * persistent faults are in test_replica_faults.c; what a scenario runs and
 * checks is in replica_faults_helpers.h. */
#include "fault_proxy.h"
#include "fixture.h"
#include "replica_faults_helpers.h"

/* ---------------------------------------------------------------------- */
/* scenarios */

/* Any request: pulls, /info and pushes alike. */
static const struct rfh_scenario sc_cut_header = {
    .name = "CUT_HEADER",
    .fault = FAULT_PROXY_CUT_HEADER,
};
static const struct rfh_scenario sc_cut_frame = {
    .name = "CUT_FRAME",
    .fault = FAULT_PROXY_CUT_FRAME,
    .match = "GET /sync/",
    .param = 2,
};
static const struct rfh_scenario sc_cut_boundary = {
    .name = "CUT_BOUNDARY",
    .fault = FAULT_PROXY_CUT_BOUNDARY,
    .match = "GET /sync/",
    .param = 2,
};
static const struct rfh_scenario sc_corrupt_page = {
    .name = "CORRUPT_PAGE",
    .fault = FAULT_PROXY_CORRUPT_PAGE,
    .match = "GET /sync/",
    .param = 2,
    .corrupts = 1,
};
static const struct rfh_scenario sc_corrupt_header = {
    .name = "CORRUPT_HEADER",
    .fault = FAULT_PROXY_CORRUPT_HEADER,
    .match = "GET /sync/",
    .param = 2,
    .corrupts = 1,
};
/* The push's answer: the primary applied it, the replica never hears. */
static const struct rfh_scenario sc_lose_answer = {
    .name = "LOSE_ANSWER",
    .fault = FAULT_PROXY_LOSE_ANSWER,
    .match = "POST /sync/",
};

START_TEST(test_cut_header)
{
	rfh_run_scenario(&sc_cut_header);
}
END_TEST

START_TEST(test_cut_frame)
{
	rfh_run_scenario(&sc_cut_frame);
}
END_TEST

START_TEST(test_cut_boundary)
{
	rfh_run_scenario(&sc_cut_boundary);
}
END_TEST

START_TEST(test_corrupt_page)
{
	rfh_run_scenario(&sc_corrupt_page);
}
END_TEST

START_TEST(test_corrupt_header)
{
	rfh_run_scenario(&sc_corrupt_header);
}
END_TEST

START_TEST(test_lose_answer)
{
	rfh_run_scenario(&sc_lose_answer);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_cut_header,   test_cut_frame,      test_cut_boundary,
	    test_corrupt_page, test_corrupt_header, test_lose_answer,
	};

	return rfh_run_tests("replica_faults_answers", tests,
			     sizeof tests / sizeof tests[0]);
}
