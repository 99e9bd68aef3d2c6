/* Snapshot isolation of the replica's read path against a real primary
 * (DESIGN.md §3): while a writer streams multi-page transactions to the
 * primary and the replica applies them (live sync and explicit replite_sync
 * calls), readers -- threads of this process on replica connections, and
 * another process with plain SQLite on the same file -- only ever see whole
 * transactions of the primary, in order, and a read transaction keeps its
 * snapshot across syncs.
 *
 * The workload and its model are in replica_safety_helpers.h; crash safety
 * is in test_replica_safety_crash.c.
 *
 * The reader in another process runs this same executable (see main). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "replica_safety_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* other processes: this executable run again (see main) */

/* True once the parent closed our stdin. */
static int parent_said_stop(void)
{
	struct pollfd p = {.fd = 0, .events = POLLIN};
	char c;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	return read(0, &c, 1) <= 0;
}

/* A reader with plain SQLite (default VFS, no replite): read transactions
 * checking the invariants, and long ones checking that the snapshot holds,
 * until stdin is closed.  Each version seen goes to the result file as
 * "v VERSION HASH" for the parent to compare with its model; the last line
 * is "summary CHECKS SNAPSHOTS VIOLATIONS ERRORS LONG_TXNS LONG_QUERIES". */
static int plain_reader_main(const char *path, const char *result_path)
{
	uint64_t checks = 0, snapshots = 0, violations = 0, errors = 0;
	uint64_t long_txns = 0, long_queries = 0, iter = 0;
	int64_t last = -1;
	FILE *out = fopen(result_path, "w");
	sqlite3 *db = NULL;
	char why[512];

	if (out == NULL || sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
					   rfx_plain_vfs(path)) != SQLITE_OK) {
		fprintf(stderr, "plain reader: cannot open %s\n", path);
		_exit(2);
	}
	sqlite3_busy_timeout(db, 5000);
	while (!parent_said_stop()) {
		struct rsh_state s;
		int is_long = iter % 16 == 15, rc, i, bad = 0;

		iter++;
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			errors++;
			continue;
		}
		rc = rsh_read_state(db, &s, iter % 8 == 0, why, sizeof why);
		for (i = 0; is_long && rc == RSH_OK && i < 20; i++) {
			rfx_sleep_ms(2);
			rc = rsh_reread_state(db, &s, i % 5 == 4, why,
					      sizeof why);
			long_queries++;
		}
		long_txns += is_long;
		if (is_long) {
			fprintf(out, "L\n");
			fflush(out);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		checks++;
		if (rc == RSH_SQL || rc == RSH_EMPTY) {
			if (errors++ < 5)
				fprintf(stderr, "plain reader error: %s\n",
					rc == RSH_EMPTY ? "empty database"
							: why);
			continue;
		}
		if (rc == RSH_OK &&
		    rsh_check_invariants(&s, why, sizeof why) != 0)
			rc = RSH_BAD;
		if (rc == RSH_OK && s.version < last) {
			snprintf(why, sizeof why,
				 "version %lld after version %lld",
				 (long long)s.version, (long long)last);
			rc = RSH_BAD;
		}
		if (rc != RSH_OK) {
			if (violations++ < 5)
				fprintf(stderr, "plain reader violation: %s\n",
					why);
			bad = 1;
		}
		if (!bad && s.version != last) {
			snapshots++;
			last = s.version;
			fprintf(out, "v %lld %llu\n", (long long)s.version,
				(unsigned long long)rsh_state_hash(&s));
			fflush(out);
		}
	}
	fprintf(out, "summary %llu %llu %llu %llu %llu %llu\n",
		(unsigned long long)checks, (unsigned long long)snapshots,
		(unsigned long long)violations, (unsigned long long)errors,
		(unsigned long long)long_txns,
		(unsigned long long)long_queries);
	fclose(out);
	sqlite3_close(db);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* snapshot isolation */

struct reader {
	int id;
	int is_long;
	sqlite3 *db;
	struct rsh_writer *w;
	const int *stop;
	pthread_t thread;
	uint64_t checks, snapshots, violations, errors;
	uint64_t long_txns, long_queries, syncs_in_txn, advanced_in_txn;
	double max_sync_s; /* the slowest replite_sync() inside a transaction */
	int64_t last;
	char problem[640];
};

/* Counters the main thread watches while the reader runs. */
static void bump(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static uint64_t peek(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static void reader_problem(struct reader *r, int violation, const char *why)
{
	if (violation)
		r->violations++;
	else
		r->errors++;
	if (r->problem[0] == '\0')
		snprintf(r->problem, sizeof r->problem, "reader %d: %s", r->id,
			 why);
}

static int64_t query_int_or(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char why[512];
	uint64_t iter = 0;

	r->last = -1;
	while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED)) {
		struct rsh_state s;
		int rc, i, n_long = r->is_long ? 12 : 0;

		iter++;
		if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			reader_problem(r, 0, sqlite3_errmsg(r->db));
			continue;
		}
		rc = rsh_read_state(r->db, &s, r->is_long || iter % 8 == 0, why,
				    sizeof why);
		for (i = 0; rc == RSH_OK && i < n_long; i++) {
			int64_t before, after;
			double t0;

			/* A sync applied while the transaction is open. */
			before = query_int_or(
			    r->db,
			    "SELECT json_extract(replite_status(), "
			    "'$.frame_no')",
			    -1);
			t0 = pfx_now_s();
			if (query_int_or(r->db, "SELECT replite_sync()", -1) <
			    0) {
				snprintf(why, sizeof why,
					 "replite_sync() in a read "
					 "transaction: %s",
					 sqlite3_errmsg(r->db));
				rc = RSH_SQL;
				break;
			}
			after = query_int_or(
			    r->db,
			    "SELECT json_extract(replite_status(), "
			    "'$.frame_no')",
			    -1);
			if (pfx_now_s() - t0 > r->max_sync_s)
				r->max_sync_s = pfx_now_s() - t0;
			r->syncs_in_txn++;
			if (after > before)
				bump(&r->advanced_in_txn);
			rc = rsh_reread_state(r->db, &s, i % 5 == 4, why,
					      sizeof why);
			r->long_queries++;
		}
		if (r->is_long)
			bump(&r->long_txns);
		if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) !=
		    SQLITE_OK)
			reader_problem(r, 0, sqlite3_errmsg(r->db));
		r->checks++;
		if (rc == RSH_SQL || rc == RSH_EMPTY) {
			reader_problem(
			    r, 0, rc == RSH_EMPTY ? "empty database" : why);
			continue;
		}
		if (rc == RSH_OK &&
		    rsh_check_invariants(&s, why, sizeof why) != 0)
			rc = RSH_BAD;
		if (rc == RSH_OK &&
		    rsh_writer_matches(r->w, &s, why, sizeof why))
			rc = RSH_BAD;
		if (rc == RSH_OK && s.version < r->last) {
			snprintf(why, sizeof why,
				 "version %lld after version %lld",
				 (long long)s.version, (long long)r->last);
			rc = RSH_BAD;
		}
		if (rc != RSH_OK) {
			reader_problem(r, 1, why);
			continue;
		}
		if (s.version != r->last) {
			bump(&r->snapshots);
			r->last = s.version;
		}
	}
	return NULL;
}

/* How long the snapshot test may take to reach enough_progress. */
#define SNAPSHOT_DEADLINE_S 90.0
#define MIN_SNAPSHOTS 5
#define MIN_LONG_SNAPSHOTS 2

static int count_lines(const char *path, const char *prefix)
{
	char *text = pfx_slurp(path), *p;
	int n = 0;

	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	}
	free(text);
	return n;
}

static int enough_progress(struct rsh_writer *w, struct reader *readers, int n,
			   const char *plain_results)
{
	int i;

	pthread_mutex_lock(&w->mu);
	i = w->committed >= 20 && w->large_txns >= 1 && w->big_txns >= 1;
	pthread_mutex_unlock(&w->mu);
	if (!i)
		return 0;
	for (i = 0; i < n; i++) {
		struct reader *r = &readers[i];

		if (peek(&r->snapshots) <
		    (uint64_t)(r->is_long ? MIN_LONG_SNAPSHOTS : MIN_SNAPSHOTS))
			return 0;
		if (r->is_long &&
		    (peek(&r->long_txns) < 2 || peek(&r->advanced_in_txn) < 1))
			return 0;
	}
	return count_lines(plain_results, "v ") >= MIN_SNAPSHOTS &&
	       count_lines(plain_results, "L") >= 1;
}

START_TEST(test_snapshot_isolation)
{
	const int n_readers = 4; /* the last one holds long transactions */
	double seconds = pfx_env_int("REPLITE_SNAPSHOT_SECONDS", 5), started;
	struct reader readers[4];
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *result_path = fixture_path(dir, "plain.txt");
	char *child_log = fixture_path(dir, "plain.log");
	uint64_t seed = pfx_seed_from_env(), explicit_syncs = 0;
	uint64_t p_checks = 0, p_snaps = 0, p_viol = 99, p_err = 99;
	uint64_t p_long = 0, p_longq = 0, p_versions = 0;
	uint64_t t_checks = 0, t_snaps = 0;
	double max_sync_s = 0;
	int stop = 0, pipe_fds[2], status, i, big_done = 0;
	struct rsh_writer *w;
	sqlite3 *db;
	pid_t child;
	char *results, *line, *save = NULL;
	const char *child_args[4];

	printf("snapshot isolation: seed %llu (REPLITE_SAFETY_SEED)\n",
	       (unsigned long long)seed);
	server_fixture_start(&srv, NULL);
	rsh_create_schema(srv.url);
	w = rsh_writer_start(srv.url, seed);
	db = rfx_open(path, srv.url, NULL); /* live sync */
	rsh_assert_equals_primary(db, w, "after bootstrap");

	/* The reader in another process, with plain SQLite. */
	ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
	child_args[0] = "--plain-reader";
	child_args[1] = path;
	child_args[2] = result_path;
	child_args[3] = NULL;
	child = pfx_spawn_self(child_args, pipe_fds[0], -1, child_log);
	close(pipe_fds[0]);

	for (i = 0; i < n_readers; i++) {
		memset(&readers[i], 0, sizeof readers[i]);
		readers[i].id = i;
		readers[i].is_long = i == n_readers - 1;
		readers[i].db = rfx_open(path, srv.url, NULL);
		readers[i].w = w;
		readers[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&readers[i].thread, NULL,
						reader_main, &readers[i]),
				 0);
	}

	rsh_writer_resume(w);
	started = pfx_now_s();
	/* At least the given time, and until every reader saw enough (no
	 * vacuous pass), within a generous deadline. */
	for (;;) {
		double elapsed = pfx_now_s() - started, t0;

		if (elapsed >= seconds &&
		    enough_progress(w, readers, n_readers, result_path))
			break;
		if (elapsed >= SNAPSHOT_DEADLINE_S)
			break; /* the assertions below say what is missing */
		rfx_sleep_ms(30);
		t0 = pfx_now_s();
		ck_assert_int_ge(rfx_sync(db), 0);
		if (pfx_now_s() - t0 > max_sync_s)
			max_sync_s = pfx_now_s() - t0;
		explicit_syncs++;
		if (!big_done && elapsed > seconds / 2) {
			rsh_writer_request_big(w);
			big_done = 1;
		}
		rsh_writer_check(w);
	}
	rsh_writer_pause(w);
	rfx_sync(db);
	rsh_assert_equals_primary(db, w, "after the workload");

	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < n_readers; i++)
		pthread_join(readers[i].thread, NULL);
	close(pipe_fds[1]);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the plain reader failed (status %d): %s", status,
		      pfx_slurp(child_log));

	/* The plain reader's versions, checked against the model. */
	results = pfx_slurp(result_path);
	for (line = strtok_r(results, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		long long v;
		unsigned long long h;
		unsigned long long a, b, c, d, e, f;

		if (sscanf(line, "v %lld %llu", &v, &h) == 2) {
			uint64_t expected;

			ck_assert_int_le(v, w->logged);
			ck_assert_int_ge(v, 0);
			expected = w->hash[v];
			ck_assert_msg(expected == h,
				      "the plain reader saw version %lld with "
				      "content that the primary never had",
				      v);
			w->seen[v] = 1;
			p_versions++;
		} else if (sscanf(line, "summary %llu %llu %llu %llu %llu %llu",
				  &a, &b, &c, &d, &e, &f) == 6) {
			p_checks = a;
			p_snaps = b;
			p_viol = c;
			p_err = d;
			p_long = e;
			p_longq = f;
		}
	}
	free(results);

	for (i = 0; i < n_readers; i++) {
		struct reader *r = &readers[i];

		printf("  reader %d%s: %llu checks, %llu snapshots, %llu "
		       "violations, %llu errors",
		       i, r->is_long ? " (long transactions)" : "",
		       (unsigned long long)r->checks,
		       (unsigned long long)r->snapshots,
		       (unsigned long long)r->violations,
		       (unsigned long long)r->errors);
		if (r->is_long)
			printf(", %llu long transactions with %llu queries, "
			       "%llu syncs inside them (%llu advanced)",
			       (unsigned long long)r->long_txns,
			       (unsigned long long)r->long_queries,
			       (unsigned long long)r->syncs_in_txn,
			       (unsigned long long)r->advanced_in_txn);
		printf("\n");
		t_checks += r->checks;
		t_snaps += r->snapshots;
	}
	printf("  reader threads: %llu checks, %llu snapshots in all\n",
	       (unsigned long long)t_checks, (unsigned long long)t_snaps);
	printf("  plain-SQLite process: %llu checks, %llu snapshots, %llu "
	       "violations, %llu errors, %llu long transactions (%llu "
	       "queries)\n",
	       (unsigned long long)p_checks, (unsigned long long)p_snaps,
	       (unsigned long long)p_viol, (unsigned long long)p_err,
	       (unsigned long long)p_long, (unsigned long long)p_longq);
	printf("  writer: %lld transactions (%lld of more than 100 pages, "
	       "%lld of more than 4096), ~%lld pages; %llu explicit syncs "
	       "(slowest %.2f s; in a read transaction %.2f s); %lld distinct "
	       "versions seen by all readers; %.1f s\n",
	       (long long)w->committed, (long long)w->large_txns,
	       (long long)w->big_txns, (long long)w->frames_est,
	       (unsigned long long)explicit_syncs, max_sync_s,
	       readers[n_readers - 1].max_sync_s,
	       (long long)rsh_writer_distinct_seen(w), pfx_now_s() - started);
	fflush(stdout);

	for (i = 0; i < n_readers; i++) {
		struct reader *r = &readers[i];

		ck_assert_msg(r->violations == 0 && r->errors == 0, "%s",
			      r->problem);
		/* Not vacuous: every reader saw the data move. */
		ck_assert_int_ge(r->snapshots, r->is_long ? MIN_LONG_SNAPSHOTS
							  : MIN_SNAPSHOTS);
		sqlite3_close(r->db);
	}
	ck_assert_msg(p_viol == 0 && p_err == 0,
		      "the plain reader saw violations or errors: %s",
		      pfx_slurp(child_log));
	ck_assert_int_ge(p_snaps, MIN_SNAPSHOTS);
	ck_assert_int_eq(p_versions, p_snaps);
	ck_assert_int_ge(readers[n_readers - 1].long_txns, 2);
	ck_assert_int_ge(readers[n_readers - 1].advanced_in_txn, 1);
	ck_assert_int_ge(p_long, 1);
	ck_assert_int_ge(w->committed, 20);
	ck_assert_int_ge(w->large_txns, 1);
	ck_assert_int_ge(w->big_txns, 1);
	ck_assert_int_ge(rsh_writer_distinct_seen(w), 10);

	sqlite3_close(db);
	rsh_writer_stop(w);
	server_fixture_stop(&srv);
	free(path);
	free(result_path);
	free(child_log);
	fixture_rmdir(dir);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 4 && strcmp(argv[1], "--plain-reader") == 0)
		return plain_reader_main(argv[2], argv[3]);
	s = suite_create("replica_safety");
	tc = tcase_create("snapshots");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_snapshot_isolation);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
