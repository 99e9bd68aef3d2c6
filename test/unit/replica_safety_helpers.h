/* Helpers shared by the safety tests of the replica read path
 * (test_replica_safety.c: snapshot isolation, test_replica_safety_crash.c:
 * crash safety): the workload's model of the database, reading and checking
 * a state, and the writer committing the workload on the primary.
 *
 * The workload is deterministic given its log: transaction V moves money
 * between accounts (the total is constant), stamps the accounts it touches,
 * the version row and a padding blob with V, and every blob holds a pattern
 * derived from its stamp.  The writer keeps the expected state of every
 * version (a hash), so a reader can tell that what it sees is exactly the
 * primary at some version, not merely plausible. */
#ifndef REPLITE_TEST_REPLICA_SAFETY_HELPERS_H
#define REPLITE_TEST_REPLICA_SAFETY_HELPERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define RSH_N_ACCOUNTS 200
#define RSH_N_PAD 32 /* padding rows: transaction V writes V % RSH_N_PAD */
/* The versions the writer can keep a hash of (and readers mark seen). */
#define RSH_MAX_VERSIONS (1 << 18)

/* ---------------------------------------------------------------------- */
/* the state of the database at one version */

/* What a reader saw, compared with the writer's model by its hash. */
struct rsh_state {
	int64_t version;
	int64_t bal[RSH_N_ACCOUNTS];
	int64_t ver[RSH_N_ACCOUNTS];
	int64_t pad_ver[RSH_N_PAD]; /* -1: no row */
	int64_t pad_len[RSH_N_PAD];
	int64_t big_ver; /* -1: no row */
	int64_t big_len;
};

/* What rsh_read_state found: a state, a violation, an SQL error, or a
 * database with no schema yet. */
enum { RSH_OK, RSH_BAD, RSH_SQL, RSH_EMPTY };

/* The hash of s, as the writer keeps one for every version. */
uint64_t rsh_state_hash(const struct rsh_state *s);

/* Read the whole state of db (content: check every blob's pattern too):
 * RSH_OK, or RSH_BAD / RSH_SQL / RSH_EMPTY with why. */
int rsh_read_state(sqlite3 *db, struct rsh_state *s, int content, char *why,
		   size_t why_len);

/* Read it again in the same read transaction: RSH_BAD if the snapshot
 * changed, else what rsh_read_state returned. */
int rsh_reread_state(sqlite3 *db, const struct rsh_state *s, int content,
		     char *why, size_t why_len);

/* The invariants every version satisfies: 0, or -1 with why. */
int rsh_check_invariants(const struct rsh_state *s, char *why, size_t why_len);

/* The workload's schema and version 0 on the primary at url. */
void rsh_create_schema(const char *url);

/* ---------------------------------------------------------------------- */
/* the writer: a thread committing transactions on the primary */

struct rsh_writer {
	const char *url;
	struct http_client *http;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t rng;
	/* Guarded by mu: */
	int run, stop, in_txn, failed;
	int64_t big_next; /* bytes of the big row of the next transaction */
	char err[512];
	struct rsh_state model; /* after version logged */
	uint64_t *hash;         /* hash[V]: the state at version V */
	int64_t logged;         /* transactions sent (or being sent) */
	int64_t committed;      /* acknowledged by the primary */
	int64_t frames_est;     /* pages written, roughly */
	int64_t large_txns;     /* of more than 100 pages */
	int64_t big_txns;       /* of more than 4096 pages */
	int64_t last_big;       /* the version of the last of them */
	uint8_t *seen;          /* seen[V]: some reader saw version V */
};

/* Start the writer's thread on the primary at url, paused. */
struct rsh_writer *rsh_writer_start(const char *url, uint64_t seed);
/* Fail the test if the writer failed. */
void rsh_writer_check(struct rsh_writer *w);
/* Let the writer commit. */
void rsh_writer_resume(struct rsh_writer *w);
/* Stop committing; returns once no transaction is in flight. */
void rsh_writer_pause(struct rsh_writer *w);
/* Make the writer's next transaction a big one (more than 4096 frames). */
void rsh_writer_request_big(struct rsh_writer *w);
/* One transaction now, in this thread (the writer must be paused). */
void rsh_writer_commit_now(struct rsh_writer *w, int big);
/* The last version the primary acknowledged. */
int64_t rsh_writer_committed(struct rsh_writer *w);
/* Is s exactly the primary's state at its version (marked seen)?  0, or
 * -1 with why. */
int rsh_writer_matches(struct rsh_writer *w, const struct rsh_state *s,
		       char *why, size_t why_len);
/* Stop the thread and free w. */
void rsh_writer_stop(struct rsh_writer *w);
/* How many versions some reader saw (no vacuous pass). */
int64_t rsh_writer_distinct_seen(struct rsh_writer *w);

/* The replica at db equals the primary right now (writer paused): the same
 * digest, the exact state of the primary's version, intact. */
void rsh_assert_equals_primary(sqlite3 *db, struct rsh_writer *w,
			       const char *what);

#endif
