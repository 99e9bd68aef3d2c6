/* Safety of the replica's write path against a real primary (DESIGN.md §3
 * "Write path", issue 4): no lost updates.  Processes each with its own
 * replica (and, in a variant, processes sharing one replica file plus a
 * writer on the primary) increment one counter with retries on SQLITE_BUSY
 * and SQLITE_BUSY_SNAPSHOT, some as a read-modify-write in a deferred
 * transaction; every successful increment saw a distinct value, the values
 * are exactly 1..total, and the primary and every replica end at total.
 *
 * The incrementers run this same executable (see main). */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <sqlite3.h>

#include "fixture.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "replica_write_safety_helpers.h"
#include "sync/http_client.h"

/* ====================================================================== */
/* no lost updates */

/* UPDATE ... RETURNING the counter, run to its end: SQLITE_OK with the
 * value written in *v, or the code of the failure (with err). */
static int update_returning(sqlite3 *db, int64_t *v, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(
	    db, "UPDATE c SET v = v + 1 WHERE id = 1 RETURNING v", -1, &st,
	    NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	snprintf(err, err_len, "UPDATE: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

/* One increment: 0 autocommit UPDATE ... RETURNING, 1 read-modify-write
 * in a deferred transaction, 2 BEGIN IMMEDIATE + UPDATE ... RETURNING.
 * Returns SQLITE_OK with the value written, or the (extended) code of the
 * failure, the transaction rolled back. */
static int increment(sqlite3 *db, int mode, int64_t *value, char *err,
		     size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	int rc;

	if (mode == 0) {
		/* The commit happens when the statement ends. */
		rc = update_returning(db, &v, err, err_len);
		goto out;
	}
	rc = sqlite3_exec(db, mode == 1 ? "BEGIN" : "BEGIN IMMEDIATE", NULL,
			  NULL, NULL);
	snprintf(err, err_len, "BEGIN: %s", sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		goto out;
	if (mode == 1) {
		char sql[128];

		rc = sqlite3_prepare_v2(db, "SELECT v FROM c WHERE id = 1", -1,
					&st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			v = sqlite3_column_int64(st, 0) + 1;
			rc = SQLITE_OK;
		}
		snprintf(err, err_len, "SELECT: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		if (rc != SQLITE_OK)
			goto out;
		snprintf(sql, sizeof sql, "UPDATE c SET v = %lld WHERE id = 1",
			 (long long)v);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		snprintf(err, err_len, "UPDATE: %s", sqlite3_errmsg(db));
	} else {
		rc = update_returning(db, &v, err, err_len);
	}
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	snprintf(err, err_len, "COMMIT: %s", sqlite3_errmsg(db));
out:
	if (rc != SQLITE_OK) {
		rc = sqlite3_extended_errcode(db) ? sqlite3_extended_errcode(db)
						  : rc;
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	*value = v;
	return rc;
}

/* An incrementer: opens its replica, says "ready", waits for "go", then
 * makes m increments, answering "v VALUE MODE" for each and "done
 * SUCCESSES BUSY BUSY_SNAPSHOT" at the end ("err ..." on another error). */
static int counter_child_main(const char *path, const char *url, int m,
			      uint64_t seed, const char *extra)
{
	sqlite3 *db = pfx_child_open(path, url, extra);
	uint64_t rng = seed | 1;
	int ok = 0, busy = 0, snap = 0;
	char line[64], err[512];

	pfx_child_say("ready\n");
	if (fgets(line, sizeof line, stdin) == NULL)
		return 0;
	while (ok < m) {
		int mode = (int)(pfx_rnd(&rng) % 3), rc;
		int64_t v;

		rc = increment(db, mode, &v, err, sizeof err);
		if (rc == SQLITE_OK) {
			ok++;
			pfx_child_say("v %lld %d\n", (long long)v, mode);
		} else if (rc == SQLITE_BUSY_SNAPSHOT) {
			snap++;
		} else if (rws_is_busy(rc)) {
			busy++;
		} else {
			pfx_child_say("err mode %d: %s (%d)\n", mode, err, rc);
			sqlite3_close(db);
			return 3;
		}
	}
	pfx_child_say("done %d %d %d\n", ok, busy, snap);
	if (sqlite3_close(db) != SQLITE_OK)
		return 5;
	return 0;
}

/* Increments on the primary over Hrana, from a thread. */
struct hrana_incr {
	const char *url;
	int n;
	int64_t *values;
	int done;
	char err[512];
	pthread_t thread;
};

static void *hrana_incr_main(void *arg)
{
	struct hrana_incr *h = arg;
	struct http_client *c = pfx_primary_client(h->url);
	uint64_t rng = (uint64_t)h->n * 77 + 5;

	for (h->done = 0; h->done < h->n; h->done++) {
		char *text = NULL;

		if (pfx_primary_run(
			c,
			"UPDATE c SET v = v + 1 WHERE id = 1 RETURNING "
			"v",
			1, &text, h->err, sizeof h->err) != 0)
			break;
		h->values[h->done] = strtoll(text, NULL, 10);
		free(text);
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 20));
	}
	http_client_free(c);
	return NULL;
}

/* n_procs incrementer processes making m increments each, on n_files
 * replica files (process i uses file i % n_files), plus hrana increments
 * on the primary. */
static void run_counter(int n_procs, int n_files, int m, int hrana)
{
	struct rfx_env env;
	uint64_t seed = pfx_seed_from_env();
	int total = n_procs * m + hrana, i, n_values = 0;
	int64_t *values = calloc((size_t)total + 1, sizeof *values);
	int *by = calloc((size_t)total + 1, sizeof *by);     /* -1: Hrana */
	int *seen = calloc((size_t)total + 1, sizeof *seen); /* by + 2 */
	struct pfx_proc *p = calloc((size_t)n_procs, sizeof *p);
	int modes[3] = {0, 0, 0}, busy = 0, snap = 0;
	struct hrana_incr h = {0};
	double started = pfx_now_s();
	char **paths, *log, line[512];
	int64_t final;

	ck_assert_ptr_nonnull(values);
	ck_assert_ptr_nonnull(seen);
	ck_assert_ptr_nonnull(by);
	ck_assert_ptr_nonnull(p);
	signal(SIGPIPE, SIG_IGN);
	rfx_env_start(&env, NULL);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER NOT "
			 "NULL); INSERT INTO c VALUES (1, 0)");
	log = fixture_path(env.dir, "children.log");
	paths = calloc((size_t)n_files, sizeof *paths);
	for (i = 0; i < n_files; i++) {
		char name[32];

		snprintf(name, sizeof name, "r%d.db", i);
		paths[i] = fixture_path(env.dir, name);
	}
	for (i = 0; i < n_procs; i++) {
		char m_text[16], seed_text[32];
		/* Half with live sync (known current: no catch-up at
		 * begin-write), half without. */
		const char *args[] = {"--counter-child",
				      paths[i % n_files],
				      env.srv.url,
				      m_text,
				      seed_text,
				      i % 2 ? "sync_interval=0" : "-",
				      NULL};

		snprintf(m_text, sizeof m_text, "%d", m);
		snprintf(seed_text, sizeof seed_text, "%llu",
			 (unsigned long long)(seed + (uint64_t)i * 1000003));
		pfx_proc_start(&p[i], args, log);
	}
	for (i = 0; i < n_procs; i++) {
		ck_assert_msg(pfx_proc_line(&p[i], line, sizeof line, 60000),
			      "incrementer %d did not start: %s", i,
			      pfx_slurp(log));
		ck_assert_str_eq(line, "ready");
	}
	for (i = 0; i < n_procs; i++)
		pfx_proc_send(&p[i], "go\n");
	if (hrana > 0) {
		h.url = env.srv.url;
		h.n = hrana;
		h.values = calloc((size_t)hrana, sizeof *h.values);
		ck_assert_int_eq(
		    pthread_create(&h.thread, NULL, hrana_incr_main, &h), 0);
	}
	for (i = 0; i < n_procs; i++) {
		int status, ok = -1, b = 0, sn = 0;

		while (pfx_proc_line(&p[i], line, sizeof line, 120000)) {
			long long v;
			int mode;

			if (sscanf(line, "v %lld %d", &v, &mode) == 2) {
				ck_assert_int_lt(n_values, total);
				by[n_values] = i;
				values[n_values++] = v;
				modes[mode]++;
			} else if (sscanf(line, "done %d %d %d", &ok, &b,
					  &sn) == 3) {
				break;
			} else {
				ck_abort_msg("incrementer %d: %s", i, line);
			}
		}
		ck_assert_msg(ok == m, "incrementer %d: %d increments: %s", i,
			      ok, pfx_slurp(log));
		busy += b;
		snap += sn;
		status = pfx_proc_finish(&p[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "incrementer %d ended with status %d: %s", i,
			      status, pfx_slurp(log));
	}
	if (hrana > 0) {
		pthread_join(h.thread, NULL);
		ck_assert_msg(h.done == hrana, "hrana increments: %s", h.err);
		for (i = 0; i < hrana; i++) {
			by[n_values] = -1;
			values[n_values++] = h.values[i];
		}
		free(h.values);
	}

	/* Every successful increment wrote a distinct value: 1..total. */
	final =
	    rfx_primary_query_int(env.srv.url, "SELECT v FROM c WHERE id = 1");
	ck_assert_int_eq(n_values, total);
	for (i = 0; i < n_values; i++) {
		ck_assert_msg(values[i] >= 1 && values[i] <= total,
			      "an increment wrote %lld (total %d)",
			      (long long)values[i], total);
		ck_assert_msg(seen[values[i]] == 0,
			      "two successful increments both wrote %lld (by "
			      "incrementer %d and %d; -1: over Hrana): an "
			      "update was lost; the primary ends at %lld after "
			      "%d successful increments",
			      (long long)values[i], seen[values[i]] - 2, by[i],
			      (long long) final, total);
		seen[values[i]] = by[i] + 2;
	}
	ck_assert_int_eq(final, total);
	for (i = 0; i < n_files; i++) {
		sqlite3 *db =
		    rfx_open(paths[i], env.srv.url, "sync_interval=0");

		rfx_sync(db);
		ck_assert_int_eq(
		    fixture_query_int(db, "SELECT v FROM c WHERE id = 1"),
		    total);
		fixture_assert_integrity(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		db = pfx_open_plain(paths[i], 1, paths[i]);
		ck_assert_int_eq(
		    fixture_query_int(db, "SELECT v FROM c WHERE id = 1"),
		    total);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
	printf("no lost updates: %d processes on %d replica file%s + %d "
	       "increments on the primary: %d increments (%d autocommit, %d "
	       "read-modify-write, %d immediate), %d retries after "
	       "SQLITE_BUSY, %d after SQLITE_BUSY_SNAPSHOT; final %lld; %.1f "
	       "s\n",
	       n_procs, n_files, n_files == 1 ? "" : "s", hrana, total,
	       modes[0], modes[1], modes[2], busy, snap, (long long) final,
	       pfx_now_s() - started);
	fflush(stdout);
	for (i = 0; i < n_files; i++)
		free(paths[i]);
	free(paths);
	free(log);
	free(values);
	free(by);
	free(seen);
	free(p);
	rfx_env_stop(&env);
}

START_TEST(test_no_lost_updates_own_files)
{
	run_counter(4, 4, 50, 0);
}
END_TEST

START_TEST(test_no_lost_updates_shared_file)
{
	run_counter(3, 1, 50, 30);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 7 && strcmp(argv[1], "--counter-child") == 0)
		return counter_child_main(argv[2], argv[3], atoi(argv[4]),
					  strtoull(argv[5], NULL, 10), argv[6]);
	s = suite_create("replica_write_lost_updates");
	tc = tcase_create("counter");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_no_lost_updates_own_files);
	tcase_add_test(tc, test_no_lost_updates_shared_file);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
