/* Safety of the replica's write path against a real primary (DESIGN.md §3
 * "Write path" and "Crash safety", issue 4): crash safety.  A replica
 * process writing transactions (small ones, and ones larger than one push
 * request; autocommit and explicit) while other writers race it is killed
 * with SIGKILL at random moments; the file left behind must recover (a copy
 * without the -shm, and the file itself) to exactly a state the primary
 * had, never to one it did not have, and syncing it again must make it
 * equal to the primary.
 *
 * The workload is self-describing (replica_write_safety_helpers.h): every
 * transaction appends a row to the table log, and the content of any
 * committed state is a function of its log, so a half-applied or foreign
 * transaction shows.
 *
 * The other safety suites of the write path: test_replica_write_converge
 * (two writing replicas converge) and test_replica_write_lost_updates (no
 * lost updates across processes).
 *
 * Other processes run this same executable (see main). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "replica_write_safety_helpers.h"
#include "sync/http_client.h"
#include "sync/replica_state.h"

/* ====================================================================== */
/* crash safety of a writing replica */

/* Commit hook of the crash writer: tell the parent which transaction is
 * being committed (pushed), for the statistics only. */
static struct rws_txn *hook_txn;
static double hook_time;

static int on_commit_hook(void *arg)
{
	char line[96];
	int n;

	(void)arg;
	hook_time = pfx_now_s();
	if (hook_txn != NULL) {
		n = snprintf(line, sizeof line, "P %lld %d\n",
			     (long long)hook_txn->nonce, hook_txn->kind);
		if (write(1, line, (size_t)n) < 0) {
			/* The parent does not listen: fine. */
		}
	}
	return 0;
}

static void say_nonblocking(const char *s)
{
	if (write(1, s, strlen(s)) < 0) {
		/* statistics only */
	}
}

/* The process to be killed: writes transactions to its replica until
 * killed, retrying on SQLITE_BUSY(_SNAPSHOT).  It records nothing the test
 * relies on; it tells the parent "P NONCE KIND" when a commit starts and
 * "D" / "B" when it succeeded / lost (statistics). */
static int crash_writer_main(const char *path, const char *url, int writer,
			     uint64_t seed, const char *extra, int big_first)
{
	uint64_t rng = (seed ^ ((uint64_t)writer << 32)) | 1;
	sqlite3 *db;
	struct rws_txn t;
	char err[512];
	int first = 1, commits = 0;

	fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
	db = pfx_child_open(path, url, extra);
	say_nonblocking("O\n"); /* open: see the kill delay */
	sqlite3_commit_hook(db, on_commit_hook, NULL);
	for (;;) {
		uint64_t r = pfx_rnd(&rng) % 100;
		int kind = r < 55   ? RWS_K_SMALL
			   : r < 85 ? RWS_K_MEDIUM
				    : RWS_K_BIG;
		int mode = (int)(pfx_rnd(&rng) % 3), rc;

		if (first && big_first)
			kind = RWS_K_BIG;
		first = 0;
		rws_make(&rng, &t, kind, writer);
		hook_txn = &t;
		hook_time = 0;
		rc = rws_run(db, &t, mode, err, sizeof err);
		hook_txn = NULL;
		if (rc == SQLITE_OK) {
			char line[32];

			commits++;
			/* How long the commit (push) took. */
			snprintf(line, sizeof line, "D %d\n",
				 hook_time > 0
				     ? (int)((pfx_now_s() - hook_time) * 1000)
				     : -1);
			say_nonblocking(line);
		} else if (rws_is_busy(rc)) {
			say_nonblocking("B\n");
		} else {
			/* Any other error is a failure of the test (e.g. "no
			 * such table" here would mean this open returned a
			 * state older than the primary's schema). */
			sqlite3_stmt *st = NULL;

			sqlite3_prepare_v2(db, "SELECT replite_status()", -1,
					   &st, NULL);
			fprintf(stderr,
				"crash writer %d: %s (%d) after %d commits; "
				"replite_status: %s\n",
				writer, err, rc, commits,
				st != NULL && sqlite3_step(st) == SQLITE_ROW
				    ? (const char *)sqlite3_column_text(st, 0)
				    : "?");
			_exit(4);
		}
	}
	return 0;
}

/* A long-lived rival replica (its own file): "r" runs small and medium
 * transactions, "p" pauses (answered "paused" once no transaction is in
 * flight), EOF ends (answered "stats COMMITS LOST"). */
static int rival_main(const char *path, const char *url, uint64_t seed)
{
	uint64_t rng = seed | 1;
	sqlite3 *db = pfx_child_open(path, url, "-");
	int running = 0, commits = 0, lost = 0;
	char err[512];

	for (;;) {
		struct pollfd pf = {.fd = 0, .events = POLLIN};
		struct rws_txn t;
		int rc;

		if (poll(&pf, 1, running ? 0 : -1) > 0) {
			char c;

			if (read(0, &c, 1) <= 0)
				break;
			if (c == 'r')
				running = 1;
			if (c == 'p') {
				running = 0;
				pfx_child_say("paused\n");
			}
			continue;
		}
		if (!running)
			continue;
		rws_make(&rng, &t,
			 pfx_rnd(&rng) % 4 == 0 ? RWS_K_MEDIUM : RWS_K_SMALL,
			 RWS_WRITER_RIVAL);
		rc = rws_run(db, &t, (int)(pfx_rnd(&rng) % 3), err, sizeof err);
		if (rc == SQLITE_OK) {
			commits++;
		} else if (rws_is_busy(rc)) {
			lost++;
		} else {
			fprintf(stderr, "rival: %s (%d)\n", err, rc);
			_exit(4);
		}
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 30));
	}
	pfx_child_say("stats %d %d\n", commits, lost);
	if (sqlite3_close(db) != SQLITE_OK)
		return 5;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* the writer on the primary (Hrana), a thread */

struct hwriter {
	const char *url;
	struct http_client *http;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t rng;
	int run, stop, in_txn, failed;
	int64_t commits;
	char err[512];
};

static void *hwriter_main(void *arg)
{
	struct hwriter *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct rws_txn t;
		char err[512], *sql;
		long pause;
		int rc;

		while (!w->stop && (!w->run || w->failed))
			pthread_cond_wait(&w->cond, &w->mu);
		if (w->stop)
			break;
		rws_make(&w->rng, &t,
			 pfx_rnd(&w->rng) % 5 == 0 ? RWS_K_MEDIUM : RWS_K_SMALL,
			 RWS_WRITER_HRANA);
		pause = 5 + (long)(pfx_rnd(&w->rng) % 40);
		w->in_txn = 1;
		pthread_mutex_unlock(&w->mu);
		sql = rws_auto_sql(&t);
		rc = pfx_primary_run(w->http, sql, 0, NULL, err, sizeof err);
		sqlite3_free(sql);
		pthread_mutex_lock(&w->mu);
		w->in_txn = 0;
		if (rc != 0) {
			w->failed = 1;
			snprintf(w->err, sizeof w->err, "%s", err);
		} else {
			w->commits++;
		}
		pthread_cond_broadcast(&w->cond);
		if (w->run && !w->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += pause * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&w->cond, &w->mu, &ts);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static struct hwriter *hwriter_start(const char *url, uint64_t seed)
{
	struct hwriter *w = calloc(1, sizeof *w);

	ck_assert_ptr_nonnull(w);
	w->url = url;
	w->http = pfx_primary_client(url);
	w->rng = seed * 2 + 1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	ck_assert_int_eq(pthread_create(&w->thread, NULL, hwriter_main, w), 0);
	return w;
}

static void hwriter_set(struct hwriter *w, int run)
{
	pthread_mutex_lock(&w->mu);
	w->run = run;
	pthread_cond_broadcast(&w->cond);
	while (!run && w->in_txn)
		pthread_cond_wait(&w->cond, &w->mu);
	ck_assert_msg(!w->failed, "the writer on the primary failed: %s",
		      w->err);
	pthread_mutex_unlock(&w->mu);
}

static void hwriter_stop(struct hwriter *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	http_client_free(w->http);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}

/* ---------------------------------------------------------------------- */
/* the trials */

struct crash_stats {
	int trials, fresh, two, targeted, targeted_hit, with_hrana, with_rival;
	int no_file, empty, hwm_ahead, advanced, late_commits;
	int killed_in_commit, killed_in_big_commit;
	int pending_nowhere, pending_primary_only, pending_both;
	int64_t child_commits, child_big_commits, child_lost, child_acked;
	int big_acked, big_ms_sum, big_ms_max, quiet;
	int64_t versions_recovered;
};

/* What a dead writer said: the commit in flight when it died (if any). */
struct child_report {
	int commits, lost;
	int big_commits, big_ms_sum, big_ms_max; /* commit durations */
	int pending;
	int64_t pending_nonce;
	int pending_kind;
	int64_t *acked;   /* nonces of commits that returned SQLITE_OK */
	int64_t *refused; /* nonces of commits that returned BUSY */
	int n_acked, n_refused;
};

static void report_line(struct child_report *r, const char *line)
{
	long long nonce;
	int kind;

	if (sscanf(line, "P %lld %d", &nonce, &kind) == 2) {
		r->pending = 1;
		r->pending_nonce = nonce;
		r->pending_kind = kind;
	} else if (line[0] == 'D') {
		r->commits++;
		if (r->pending && r->pending_kind == RWS_K_BIG) {
			int ms = atoi(line + 1);

			r->big_commits++;
			r->big_ms_sum += ms;
			r->big_ms_max = ms > r->big_ms_max ? ms : r->big_ms_max;
		}
		if (r->pending) {
			r->acked = realloc(r->acked, (size_t)(r->n_acked + 1) *
							 sizeof *r->acked);
			r->acked[r->n_acked++] = r->pending_nonce;
		}
		r->pending = 0;
	} else if (line[0] == 'B') {
		r->lost++;
		if (r->pending) {
			r->refused =
			    realloc(r->refused, (size_t)(r->n_refused + 1) *
						    sizeof *r->refused);
			r->refused[r->n_refused++] = r->pending_nonce;
		}
		r->pending = 0;
	}
}

static void rival_cmd(struct pfx_proc *rival, char c)
{
	char line[64];

	pfx_proc_send(rival, "%c\n", c);
	if (c == 'p') {
		ck_assert_msg(pfx_proc_line(rival, line, sizeof line, 60000),
			      "the rival replica died");
		ck_assert_str_eq(line, "paused");
	}
}

START_TEST(test_crash_safety)
{
	int trials = pfx_env_int("REPLITE_CRASH_TRIALS", 50);
	uint64_t seed = pfx_seed_from_env(), rng;
	struct crash_stats cs = {0};
	struct rfx_env env;
	char *copy_path, *log, *rival_path;
	char path[1024], state_path[1100], what[160];
	char seed_text[32], line[256], *schema;
	double started = pfx_now_s();
	int64_t before = -1;
	uint8_t *recovered;
	struct hwriter *hw;
	struct pfx_proc rival;
	int t, status;

	signal(SIGPIPE, SIG_IGN);
	rng = seed | 1;
	printf("crash safety of writes: %d trials, seed %llu "
	       "(REPLITE_CRASH_TRIALS, REPLITE_SAFETY_SEED)\n",
	       trials, (unsigned long long)seed);
	fflush(stdout);
	rfx_env_start(&env, NULL);
	schema = rws_schema_sql();
	rfx_primary_exec(env.srv.url, schema);
	sqlite3_free(schema);
	copy_path = fixture_path(env.dir, "copy.db");
	log = fixture_path(env.dir, "children.log");
	rival_path = fixture_path(env.dir, "rival.db");
	snprintf(seed_text, sizeof seed_text, "%llu",
		 (unsigned long long)(seed + 99));
	{
		const char *args[] = {"--rival", rival_path, env.srv.url,
				      seed_text, NULL};
		pfx_proc_start(&rival, args, log);
	}
	hw = hwriter_start(env.srv.url, seed);
	recovered = calloc(1 << 20, 1);
	ck_assert_ptr_nonnull(recovered);
	path[0] = '\0';

	for (t = 0; t < trials; t++) {
		int fresh = t % 6 == 0;
		int two = t % 5 == 3;
		int targeted = !two && t % 4 == 1;
		/* Some trials without other writers: large transactions
		 * rarely win a race against them. */
		int quiet = t % 8 == 5;
		int use_hrana = !quiet && t % 3 != 1;
		int use_rival = !quiet && t % 3 != 0;
		struct child_report rep[2];
		struct pfx_proc kid[2];
		struct rws_log plog, llog, clog;
		struct replica_state st = {0};
		int n_kids = two ? 2 : 1, loaded, allow_empty, k, rc;
		int64_t v_orig, primary_v;
		long delay[2];
		pid_t pids[2];
		char *ptext, *pd, *rd, err[512];
		sqlite3 *db;
		size_t i;

		if (fresh) {
			if (path[0] != '\0')
				pfx_remove_db_files(path);
			snprintf(path, sizeof path, "%s/r%d.db", env.dir, t);
			before = -1;
			cs.fresh++;
		}
		snprintf(state_path, sizeof state_path, "%s-replite", path);
		cs.two += two;
		cs.with_hrana += use_hrana;
		cs.with_rival += use_rival;
		cs.targeted += targeted;
		cs.quiet += quiet;

		/* Others write while the replica process writes. */
		if (use_hrana)
			hwriter_set(hw, 1);
		if (use_rival)
			rival_cmd(&rival, 'r');
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 30));
		memset(rep, 0, sizeof rep);
		for (k = 0; k < n_kids; k++) {
			char writer[16], kseed[32];
			const char *args[] = {
			    "--crash-writer",
			    path,
			    env.srv.url,
			    writer,
			    kseed,
			    pfx_rnd(&rng) % 3 == 0 ? "sync_interval=0" : "-",
			    targeted ? "big" : "-",
			    NULL};

			snprintf(writer, sizeof writer, "%d",
				 RWS_WRITER_CHILD0 + 2 * t + k);
			snprintf(kseed, sizeof kseed, "%llu",
				 (unsigned long long)pfx_rnd(&rng));
			pfx_proc_start(&kid[k], args, log);
			delay[k] = (long)(pfx_rnd(&rng) % 301);
		}
		if (targeted) {
			/* Kill it while it commits a transaction larger
			 * than one push request. */
			double until = pfx_now_s() + 10;

			while (pfx_now_s() < until &&
			       pfx_proc_line(
				   &kid[0], line, sizeof line,
				   (int)((until - pfx_now_s()) * 1000) + 1)) {
				report_line(&rep[0], line);
				if (rep[0].pending &&
				    rep[0].pending_kind == RWS_K_BIG) {
					cs.targeted_hit++;
					break;
				}
			}
			delay[0] = (long)(pfx_rnd(&rng) % 120);
		} else if (t % 2 == 0) {
			/* Half of the trials count the delay from the open,
			 * so that the kills land among commits however long
			 * the open takes (AddressSanitizer, a loaded machine);
			 * the others also kill during the open. */
			double until = pfx_now_s() + 10;

			while (pfx_now_s() < until &&
			       pfx_proc_line(
				   &kid[0], line, sizeof line,
				   (int)((until - pfx_now_s()) * 1000) + 1)) {
				report_line(&rep[0], line);
				if (line[0] == 'O')
					break;
			}
		}
		for (k = 0; k < n_kids; k++)
			pids[k] = kid[k].pid;
		snprintf(what, sizeof what, "trial %d: a writer", t);
		pfx_kill_after(pids, delay, n_kids, what, log);
		for (k = 0; k < n_kids; k++) {
			while (pfx_proc_line(&kid[k], line, sizeof line, 0))
				report_line(&rep[k], line);
			close(kid[k].to);
			close(kid[k].from);
		}
		if (use_hrana)
			hwriter_set(hw, 0);
		if (use_rival)
			rival_cmd(&rival, 'p');

		/* The primary, still now. */
		ptext = pfx_primary_text(env.srv.url, RWS_LOG_SQL);
		rws_log_parse(ptext, &plog);
		free(ptext);
		primary_v = (int64_t)plog.n;

		/* What the dead processes left. */
		loaded = pfx_left_state(state_path, t, &st, &allow_empty);
		cs.hwm_ahead += loaded == 0 && st.frame_hwm > st.frame_no;
		replica_state_free(&st);
		memset(&llog, 0, sizeof llog);
		memset(&clog, 0, sizeof clog);
		cs.no_file += !pfx_file_exists(path);
		v_orig =
		    pfx_check_crashed(path, copy_path, t, loaded, allow_empty,
				      before, rws_check_plain, &clog, &llog);
		/* (iii) only transactions the primary has. */
		snprintf(what, sizeof what, "trial %d: after the kill", t);
		rws_assert_log_prefix(&clog, &plog, what);
		rws_assert_log_prefix(&llog, &plog, what);
		cs.empty += v_orig < 0;
		cs.advanced += v_orig > before;
		if (v_orig >= 0 && v_orig < (1 << 20) && !recovered[v_orig]) {
			recovered[v_orig] = 1;
			cs.versions_recovered++;
		}

		/* What the writers were told, against the primary: a commit
		 * that returned SQLITE_OK is there, one refused is not. */
		for (k = 0; k < n_kids; k++) {
			struct child_report *r = &rep[k];
			int j;

			for (j = 0; j < r->n_acked; j++)
				ck_assert_msg(
				    rws_log_has_nonce(&plog, r->acked[j]),
				    "trial %d: transaction %lld returned "
				    "SQLITE_OK but the primary does not have "
				    "it",
				    t, (long long)r->acked[j]);
			for (j = 0; j < r->n_refused; j++)
				ck_assert_msg(
				    !rws_log_has_nonce(&plog, r->refused[j]),
				    "trial %d: transaction %lld failed with "
				    "SQLITE_BUSY but the primary has it",
				    t, (long long)r->refused[j]);
			cs.child_acked += r->n_acked;
			cs.big_acked += r->big_commits;
			cs.big_ms_sum += r->big_ms_sum;
			if (r->big_ms_max > cs.big_ms_max)
				cs.big_ms_max = r->big_ms_max;
			cs.child_lost += r->lost;
			if (r->pending) {
				int on_primary =
				    rws_log_has_nonce(&plog, r->pending_nonce);
				int local =
				    rws_log_has_nonce(&llog, r->pending_nonce);

				cs.killed_in_commit++;
				cs.killed_in_big_commit +=
				    r->pending_kind == RWS_K_BIG;
				ck_assert_msg(on_primary || !local,
					      "trial %d: the file holds the "
					      "transaction being committed, "
					      "the primary does not",
					      t);
				if (!on_primary)
					cs.pending_nowhere++;
				else if (!local)
					cs.pending_primary_only++;
				else
					cs.pending_both++;
			}
			free(r->acked);
			free(r->refused);
		}
		for (i = 0; i < plog.n; i++) {
			if (plog.e[i].writer >= RWS_WRITER_CHILD0 + 2 * t) {
				cs.child_commits++;
				cs.child_big_commits +=
				    plog.e[i].kind == RWS_K_BIG;
			}
		}

		/* (iv) reopened as a replica and synced: exactly the
		 * primary.  A request a killed writer had sent may still
		 * commit on the primary after the kill: compare with the
		 * primary as it is after the sync, syncing again if it
		 * moved meanwhile. */
		db = rfx_open(path, env.srv.url, "sync_interval=0");
		snprintf(what, sizeof what, "trial %d: synced again", t);
		for (k = 0;; k++) {
			struct rws_log pnow;
			int same;

			rfx_sync(db);
			ptext = pfx_primary_text(env.srv.url, RWS_LOG_SQL);
			rws_log_parse(ptext, &pnow);
			free(ptext);
			pd = pfx_primary_text(env.srv.url, RWS_DIGEST_SQL);
			rd = pfx_local_text(db, RWS_DIGEST_SQL);
			rws_log_free(&llog);
			rc = rws_read_check(db, &llog, err, sizeof err);
			same = rc == RWS_OK && llog.n == pnow.n &&
			       strcmp(pd, rd) == 0;
			if (same || k == 4) {
				ck_assert_msg(rc == RWS_OK, "%s: %s", what,
					      err);
				/* The primary's history only grows. */
				rws_assert_log_prefix(&plog, &pnow,
						      "the primary's log");
				rws_assert_log_prefix(&llog, &pnow, what);
				ck_assert_msg(llog.n == pnow.n,
					      "%s: version %zu, the primary is "
					      "at %zu",
					      what, llog.n, pnow.n);
				ck_assert_msg(strcmp(pd, rd) == 0,
					      "%s: the replica differs from "
					      "the primary:\nreplica "
					      "%.400s\nprimary %.400s",
					      what, rd, pd);
				cs.late_commits += pnow.n > plog.n;
				primary_v = (int64_t)pnow.n;
			}
			free(pd);
			free(rd);
			rws_log_free(&pnow);
			if (same || k == 4)
				break;
			rfx_sleep_ms(50);
		}
		fixture_assert_integrity(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		before = primary_v;
		rws_log_free(&llog);
		rws_log_free(&clog);
		rws_log_free(&plog);
		cs.trials++;
	}

	/* The rival's replica, and the primary's own content. */
	status = pfx_proc_finish(&rival);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the rival ended with status %d: %s", status,
		      pfx_slurp(log));
	{
		sqlite3 *db =
		    rfx_open(rival_path, env.srv.url, "sync_interval=0");
		struct rws_log l;
		char *pd, *rd, *sql, *p1, *p2, *p3, why[512];

		rfx_sync(db);
		ck_assert_msg(rws_read_check(db, &l, why, sizeof why) == RWS_OK,
			      "the rival's replica: %s", why);
		pd = pfx_primary_text(env.srv.url, RWS_DIGEST_SQL);
		rd = pfx_local_text(db, RWS_DIGEST_SQL);
		ck_assert_str_eq(pd, rd);
		p1 = rws_pattern("length(v)", "ver");
		p2 = rws_pattern("900", "1000000 + id");
		sql = sqlite3_mprintf(
		    "SELECT (SELECT count(*) FROM pad WHERE v IS NOT %s) + "
		    "(SELECT count(*) FROM big WHERE v IS NOT %s) + (SELECT "
		    "count(*) FROM accounts WHERE filler IS NOT %s)",
		    p1, p1, p2);
		p3 = pfx_primary_text(env.srv.url, sql);
		ck_assert_msg(strcmp(p3, "0") == 0,
			      "the primary holds %s blobs that are not their "
			      "pattern",
			      p3);
		free(pd);
		pd = pfx_primary_text(env.srv.url, "PRAGMA integrity_check");
		ck_assert_str_eq(pd, "ok");
		printf("  primary: %zu transactions (%lld over Hrana)\n", l.n,
		       (long long)hw->commits);
		sqlite3_free(sql);
		sqlite3_free(p1);
		sqlite3_free(p2);
		free(p3);
		free(pd);
		free(rd);
		rws_log_free(&l);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
	printf("  %d trials in %.1f s: %d fresh files, %d with two writer "
	       "processes on the file, %d with the Hrana writer, %d with a "
	       "rival replica, %d with neither; %d targeted at a big commit "
	       "(%d found it)\n",
	       cs.trials, pfx_now_s() - started, cs.fresh, cs.two,
	       cs.with_hrana, cs.with_rival, cs.quiet, cs.targeted,
	       cs.targeted_hit);
	printf("  killed writers committed %lld transactions on the primary "
	       "(%lld larger than one push request), %lld returned "
	       "SQLITE_OK before the kill, %lld lost a race "
	       "(SQLITE_BUSY*)\n",
	       (long long)cs.child_commits, (long long)cs.child_big_commits,
	       (long long)cs.child_acked, (long long)cs.child_lost);
	if (cs.big_acked > 0)
		printf("  big commits (%d seen by the writer) took %d ms on "
		       "average, %d at most, from the commit hook to "
		       "SQLITE_OK\n",
		       cs.big_acked, cs.big_ms_sum / cs.big_acked,
		       cs.big_ms_max);
	printf("  kills during a commit: %d (%d of a big one): %d before the "
	       "primary had it, %d after the primary had it but before the "
	       "file did, %d after both had it\n",
	       cs.killed_in_commit, cs.killed_in_big_commit, cs.pending_nowhere,
	       cs.pending_primary_only, cs.pending_both);
	printf("  after the kill: %d no file yet, %d empty, %d with frame_hwm "
	       "> frame_no, %d advanced during the trial, %lld distinct "
	       "versions recovered; %d trials where the primary committed a "
	       "dead writer's request after the kill\n",
	       cs.no_file, cs.empty, cs.hwm_ahead, cs.advanced,
	       (long long)cs.versions_recovered, cs.late_commits);
	fflush(stdout);
	ck_assert_int_eq(cs.trials, trials);
	if (trials >= 20) {
		/* Not vacuous (a loose bound: a loaded machine, or ASan,
		 * fits fewer commits into the trials). */
		ck_assert_int_ge(cs.child_commits, 5);
		ck_assert_int_ge(cs.killed_in_commit, 1);
		ck_assert_int_ge(cs.advanced, 1);
	}
	hwriter_stop(hw);
	free(recovered);
	free(copy_path);
	free(rival_path);
	free(log);
	rfx_env_stop(&env);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 8 && strcmp(argv[1], "--crash-writer") == 0)
		return crash_writer_main(argv[2], argv[3], atoi(argv[4]),
					 strtoull(argv[5], NULL, 10), argv[6],
					 strcmp(argv[7], "big") == 0);
	if (argc == 5 && strcmp(argv[1], "--rival") == 0)
		return rival_main(argv[2], argv[3],
				  strtoull(argv[4], NULL, 10));
	s = suite_create("replica_write_safety");
	tc = tcase_create("crashes");
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, test_crash_safety);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
