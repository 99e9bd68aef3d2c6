/* The load of a fault scenario (replica_faults_helpers.h): writers on
 * replica connections and on the primary, each logging what became of
 * every write, readers checking the bank's invariants, an application
 * asking for syncs, all threads of one world; and the fault applied to the
 * proxy meanwhile.  Used by replica_faults_helpers.c, which starts, stops
 * and checks them. */
#ifndef REPLITE_TEST_REPLICA_FAULTS_LOAD_H
#define REPLITE_TEST_REPLICA_FAULTS_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "replica_faults_helpers.h"
#include "replica_fixture.h"

/* ---------------------------------------------------------------------- */
/* one scenario's world */

/* What every thread of one scenario shares. */
struct rfl_world {
	const struct rfh_scenario *sc;
	struct rfx_env env;
	struct fault_proxy *fp;
	atomic_int stop;
	/* Bumped when a fault is set and when it is cleared: odd only while
	 * one is in force (made odd after the fault is applied, even before it
	 * is lifted), so a writer that sees the same odd value at both ends of
	 * an attempt ran entirely under the fault. */
	atomic_uint window;
	int on_ms, off_ms; /* a persistent fault's windows */
	int slow_ms;       /* see SLOW_MS (replica_faults_helpers.c) */
};

/* What became of one write. */
enum rfl_outcome {
	RFL_OUT_ACKED,   /* SQLITE_OK / Hrana ok: must be in the ledger */
	RFL_OUT_FAILED,  /* reported as not done: must not be */
	RFL_OUT_ABORTED, /* failed before COMMIT, nothing pushed: must not be */
	RFL_OUT_UNKNOWN, /* by contract either way: counted */
};

/* The outcomes' names, for the report. */
extern const char *const rfl_outcome_name[];

/* One write, to be found in the primary's ledger or not. */
struct rfl_attempt {
	char id[24];
	int8_t outcome;
	int code; /* SQLite extended code, or HTTP status / curl code */
};

/* A writer's attempts, in its own thread until joined. */
struct rfl_wlog {
	struct rfl_attempt *a;
	size_t n, cap;
	long count[4]; /* by outcome */
	long other;    /* replica: unknown with another code than IOERR_WRITE */
	char first[4][256]; /* the first message of each outcome */
};

/* ---------------------------------------------------------------------- */
/* writers on replica connections */

/* A writer thread on a replica connection, and what it saw. */
struct rfl_rwriter {
	struct rfl_world *w;
	sqlite3 *db;
	pthread_t thread;
	int id;
	uint64_t rng;
	long attempts;
	struct rfl_wlog log;
	long ryw_bad; /* acknowledged but not visible at once */
	char ryw_first[160];
	/* The fault's effect on these writes. */
	long disturbed;     /* under a fault: failed, or slow (slow_ms) */
	long acked_faulted; /* acknowledged, under a fault at some point */
	long under_fault;   /* acknowledged, entirely under a fault */
	int64_t under_fault_min_ms;
	int64_t total_ms, max_ms, begin_ms; /* time spent in attempts */
};

/* The thread: BEGIN IMMEDIATE, a transfer, COMMIT, until w->stop. */
void *rfl_rwriter_main(void *arg);

/* ---------------------------------------------------------------------- */
/* the writer on the primary */

/* The writer thread on the primary (no fault on its path). */
struct rfl_hwriter {
	struct rfl_world *w;
	pthread_t thread;
	uint64_t rng;
	long attempts;
	struct rfl_wlog log;
};

/* The thread: transfers on the primary over Hrana, paced by the scenario
 * (primary_pause), until w->stop. */
void *rfl_hwriter_main(void *arg);

/* ---------------------------------------------------------------------- */
/* readers on replica connections */

/* A reader thread on a replica connection, and the violations it saw. */
struct rfl_reader {
	struct rfl_world *w;
	sqlite3 *db;
	pthread_t thread;
	long reads;
	long violations;
	char first[256];
	int64_t last_seq;
};

/* The thread: read transactions checking the bank's invariants, until
 * w->stop. */
void *rfl_reader_main(void *arg);

/* ---------------------------------------------------------------------- */
/* an application asking for syncs */

/* A thread calling replite_sync() now and then, as an application that
 * wants fresh reads does.  A call interrupts the sync thread's long-poll if
 * it is in one (its connection is dropped and a new one made): under a
 * fault, that new connection is the one the fault meets. */
struct rfl_syncer {
	struct rfl_world *w;
	sqlite3 *db;
	pthread_t thread;
	uint64_t rng;
	long ok, failed;
	int64_t max_ms;
	char first_error[256];
};

/* The thread: replite_sync() every 50 to 150 ms, until w->stop. */
void *rfl_syncer_main(void *arg);

/* ---------------------------------------------------------------------- */
/* applying the fault */

/* How often the fault was applied and what it did, for the checks. */
struct rfl_fault_stats {
	int windows;       /* persistent: times set */
	int arms;          /* one-shot: times armed */
	int status_errors; /* samples of last_error under a fault */
	unsigned requests_under_fault;
	int64_t heal_ms; /* when the fault was lifted for good */
};

/* Set and clear a persistent fault in turns until end, sampling
 * replite_status() on monitor. */
void rfl_drive_persistent(struct rfl_world *w, sqlite3 *monitor, int64_t end,
			  struct rfl_fault_stats *fs);
/* Arm a one-shot fault again each time it fired, until end. */
void rfl_drive_oneshot(struct rfl_world *w, int64_t end,
		       struct rfl_fault_stats *fs);

#endif
