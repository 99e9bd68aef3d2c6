/* Integrity end to end under network faults (issue 9), the persistent
 * faults: a replica talks to a real primary through the fault proxy
 * (fault_proxy.h) while a bank runs on it, and the proxy delays, resets,
 * stalls, blackholes or refuses its connections in turns, set for a window
 * then cleared.  Each test case is one fault of the proxy, so one can be
 * run alone (CK_RUN_CASE=test_reset).  The one-shot faults on an answer are
 * in test_replica_faults_answers.c; what a scenario runs and checks is in
 * replica_faults_helpers.h. */
#include "fault_proxy.h"
#include "fixture.h"
#include "replica_faults_helpers.h"

/* ---------------------------------------------------------------------- */
/* scenarios */

static const struct rfh_scenario sc_latency = {
    .name = "LATENCY",
    .fault = FAULT_PROXY_LATENCY,
    .persistent = 1,
    .param = RFH_LATENCY_MS,
    .on_ms = 2800,
    .off_ms = 300,
    /* Under latency a replica write takes two round trips (GET /info,
     * the push) of 2 * RFH_LATENCY_MS each, plus a catch-up when behind:
     * with the primary changing every few ms no replica write could ever
     * win, whatever the replica did. */
    .primary_pause_ms = 400,
};
static const struct rfh_scenario sc_reset = {
    .name = "RESET",
    .fault = FAULT_PROXY_RESET,
    .persistent = 1,
    .on_ms = 300,
    .off_ms = 400,
};
static const struct rfh_scenario sc_stall = {
    .name = "STALL",
    .fault = FAULT_PROXY_STALL,
    .persistent = 1,
    .on_ms = 1000,
    .off_ms = 500,
};
/* Short windows, many of them: the replica meets the blackhole only with a
 * connection it opens during a window (one that was open stalls and goes
 * on at the clear), and it opens one when a sync is asked for while it
 * long-polls: each window is one more chance of that. */
static const struct rfh_scenario sc_blackhole = {
    .name = "BLACKHOLE",
    .fault = FAULT_PROXY_BLACKHOLE,
    .persistent = 1,
    .on_ms = 150,
    .off_ms = 150,
};
static const struct rfh_scenario sc_refuse = {
    .name = "REFUSE",
    .fault = FAULT_PROXY_REFUSE,
    .persistent = 1,
    .on_ms = 700,
    .off_ms = 400,
};

START_TEST(test_latency)
{
	rfh_run_scenario(&sc_latency);
}
END_TEST

START_TEST(test_reset)
{
	rfh_run_scenario(&sc_reset);
}
END_TEST

START_TEST(test_stall)
{
	rfh_run_scenario(&sc_stall);
}
END_TEST

START_TEST(test_blackhole)
{
	rfh_run_scenario(&sc_blackhole);
}
END_TEST

START_TEST(test_refuse)
{
	rfh_run_scenario(&sc_refuse);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_latency, test_reset, test_stall, test_blackhole, test_refuse,
	};

	return rfh_run_tests("replica_faults", tests,
			     sizeof tests / sizeof tests[0]);
}
