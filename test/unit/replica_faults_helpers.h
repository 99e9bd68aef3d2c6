/* The harness of the fault scenarios (test_replica_faults.c: persistent
 * faults, test_replica_faults_answers.c: one-shot faults on an answer):
 * integrity end to end under network faults (issue 9).  A replica talks to
 * a real primary through the fault proxy (fault_proxy.h) while a bank runs
 * on it; a scenario is one fault of the proxy, a test case runs one.  The
 * bank and the primary over Hrana are in replica_faults_bank.[ch], the
 * load and the fault applied in replica_faults_load.[ch], the checks and
 * the run of a scenario in replica_faults_helpers.c.
 *
 * The bank: 100 accounts whose balances always add up to the same total,
 * a counter row meta('seq'), and a ledger with one row per transfer (its
 * unique id says who wrote it and which attempt it was, its seq the
 * counter's value after it).  So every committed state satisfies, in one
 * snapshot: sum(bal) = total, count(ledger) = max(ledger.seq) = seq, and
 * every balance = its start + what the ledger moved in and out.
 *
 * The load, for the scenario's time (REPLITE_FAULT_SECONDS, 4 s by
 * default): two writer threads on replica connections (all replica
 * traffic crosses the proxy) and one writer on the primary directly over
 * Hrana run transfers all the time, the latter in bursts (see
 * primary_pause); two reader threads on replica connections check the
 * invariants in every read transaction (and that seq never goes back); an
 * application thread asks for syncs now and then (replite_sync).
 * Meanwhile the fault is applied: a persistent one is set and cleared in
 * turns (REPLITE_FAULT_ON_MS / _OFF_MS override the windows), a one-shot
 * one is armed again each time it fired.  Then it is healed, and the load
 * goes on a little before it stops.
 *
 * Then: within 5 s of the heal the replica holds exactly the primary's rows
 * (an ordered digest of every table from a fresh replica connection
 * against the same from the primary over Hrana; REPLITE_FAULT_PATIENCE=S
 * waits S s more to see when it comes); PRAGMA integrity_check is ok on both;
 * every write that was acknowledged (COMMIT returned SQLITE_OK, Hrana "ok") is
 * in the primary's ledger, every write reported as failed
 * (SQLITE_BUSY_SNAPSHOT, SQLITE_READONLY, a Hrana error; or an error before
 * COMMIT, when nothing was pushed yet) is not, and nothing else is; writes
 * whose outcome is unknown by contract (SQLITE_IOERR_WRITE after write_timeout,
 * a transport failure to the primary) are only counted.  To make sure no
 * scenario passes vacuously, reads, acknowledged writes on both paths and the
 * fault's effect (one-shot faults fired, persistent ones disturbed writes) must
 * have happened.  Every check's failure is collected, so one summary line and
 * all problems of a scenario are printed before it fails.
 *
 * Replica writes are explicit BEGIN IMMEDIATE ... COMMIT transactions: an
 * autocommit statement whose push lost would be retried by SQLite's busy
 * handler, and the outcome of one attempt would be hidden. */
#ifndef REPLITE_TEST_REPLICA_FAULTS_HELPERS_H
#define REPLITE_TEST_REPLICA_FAULTS_HELPERS_H

#include <stddef.h>

#include <check.h>

#include "fault_proxy.h"

/* The LATENCY scenario's delay; the checks expect a replica write under
 * it to take at least twice that. */
#define RFH_LATENCY_MS 50

/* One fault and how it is applied (a test file's scenarios). */
struct rfh_scenario {
	const char *name;
	enum fault_proxy_fault fault;
	int persistent;
	const char *match; /* one-shot faults: the requests aimed at */
	/* Persistent: LATENCY's delay.  One-shot body faults: the frame aimed
	 * at goes round 0..param. */
	int param;
	int on_ms, off_ms; /* persistent: set for on_ms, cleared for off_ms */
	int corrupts;      /* the replica must reject damaged answers */
	/* The writer on the primary pauses 0.5 to 1.5 times this between
	 * transfers (0: bursts, see primary_pause). */
	int primary_pause_ms;
};

/* Run the scenario sc as above and fail the test with every problem
 * found: the body of each test. */
void rfh_run_scenario(const struct rfh_scenario *sc);

/* Run tests[0..n-1] as the suite name, each a test case of its own named
 * after it, with a timeout for the load, the wait for convergence and
 * set-up: the main of each test file. */
int rfh_run_tests(const char *name, const TTest *const *tests, size_t n);

#endif
