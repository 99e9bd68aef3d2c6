/* The checks and the run of one fault scenario
 * (replica_faults_helpers.h): start a primary with the bank, the proxy and
 * the replica's connections, run the load while the fault is applied, heal
 * it, then check the replica against the primary and every write against
 * the ledger, and report. */
#include "replica_faults_helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_faults_bank.h"
#include "replica_faults_load.h"
#include "replica_fixture.h"
#include "server_fixture.h"

#define REPLICA_WRITERS 2
#define READERS 2
/* The replica must hold the primary's state this long after the heal. */
#define CONVERGE_MS 5000
/* write_timeout=2: a write cut off from the primary fails within 2 s, so
 * writers keep trying during a fault.  sync_interval=0.2: the sync thread's
 * back-off after failures starts at 250 ms (with the default 1 s it would
 * reach several seconds within one fault window).  Live sync (long-polls)
 * stays on: sync_interval > 0. */
#define REPLICA_PARAMS "sync_interval=0.2&write_timeout=2"
/* Load before the first fault and after the heal. */
#define WARM_MS 500
#define TAIL_MS 300
/* A replica write this slow (or half a fault window, if less) was held up
 * by the fault. */
#define SLOW_MS 200
#define DEFAULT_SECONDS 4

/* ---------------------------------------------------------------------- */
/* small helpers */

static int env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v != NULL && atoi(v) > 0 ? atoi(v) : def;
}

/* FNV-1a: a short name for a digest in the summary. */
static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* ---------------------------------------------------------------------- */
/* after the heal: the checks */

/* Problems found, printed and asserted at the end. */
struct problems {
	struct rfb_text t;
	int n;
};

static void problem(struct problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct problems *p, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
	va_end(ap);
	rfb_text_printf(&p->t, "\n  - %s", s);
	free(s);
	p->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_attempt(const void *a, const void *b)
{
	return strcmp(((const struct rfl_attempt *)a)->id,
		      ((const struct rfl_attempt *)b)->id);
}

struct accounting {
	long count[4];        /* all writers, by outcome */
	long wrong[4];        /* by outcome: in the ledger or not, wrongly */
	long unknown_applied; /* of the unknown, in the ledger */
	long ledger_rows;
};

/* Every write against the primary's ledger. */
static void account(const char *url, struct rfl_wlog *const *logs, int nlogs,
		    struct accounting *acc, struct problems *p)
{
	struct rfb_text ids = {NULL, 0, 0};
	struct rfl_attempt *all;
	char **rows = NULL, *line;
	size_t n = 0, nrows = 0, cap = 0, i;
	int k, o, shown = 0;

	memset(acc, 0, sizeof *acc);
	rfb_primary_rows(url, "SELECT id FROM ledger ORDER BY id", &ids);
	for (line = ids.p; line != NULL && *line != '\0';) {
		char *eol = strchr(line, '\n');

		*eol = '\0';
		if (nrows == cap) {
			cap = cap ? cap * 2 : 1024;
			rows = realloc(rows, cap * sizeof *rows);
			ck_assert_ptr_nonnull(rows);
		}
		rows[nrows++] = line;
		line = eol + 1;
	}
	qsort(rows, nrows, sizeof *rows, cmp_str);
	for (k = 0; k < nlogs; k++)
		n += logs[k]->n;
	all = calloc(n > 0 ? n : 1, sizeof *all);
	ck_assert_ptr_nonnull(all);
	for (n = 0, k = 0; k < nlogs; k++) {
		memcpy(all + n, logs[k]->a, logs[k]->n * sizeof *all);
		n += logs[k]->n;
	}
	qsort(all, n, sizeof *all, cmp_attempt);
	acc->ledger_rows = (long)nrows;
	for (i = 0; i < n; i++) {
		const char *id = all[i].id;
		int found =
		    bsearch(&id, rows, nrows, sizeof *rows, cmp_str) != NULL;

		o = all[i].outcome;
		acc->count[o]++;
		if (o == RFL_OUT_UNKNOWN) {
			acc->unknown_applied += found;
		} else if (found != (o == RFL_OUT_ACKED)) {
			acc->wrong[o]++;
			if (shown++ < 5)
				problem(p,
					"write %s: %s (code %d), but %s the "
					"primary's ledger",
					id, rfl_outcome_name[o], all[i].code,
					found ? "in" : "not in");
		}
	}
	for (o = 0; o < 4; o++)
		if (acc->wrong[o] > 0)
			problem(
			    p, "%ld of %ld writes %s %s the primary's ledger",
			    acc->wrong[o], acc->count[o], rfl_outcome_name[o],
			    o == RFL_OUT_ACKED ? "are missing from" : "are in");
	/* Nothing in the ledger that no writer attempted (a write applied
	 * twice would fail its primary key). */
	for (i = 0; i < nrows; i++) {
		struct rfl_attempt key;

		snprintf(key.id, sizeof key.id, "%s", rows[i]);
		if (bsearch(&key, all, n, sizeof *all, cmp_attempt) == NULL) {
			problem(p, "the ledger has %s, which nobody wrote",
				rows[i]);
			break;
		}
	}
	free(all);
	free(rows);
	free(ids.p);
}

/* The primary's own invariants and integrity. */
static void check_primary(const char *url, struct problems *p)
{
	struct rfb_text ic = {NULL, 0, 0};
	int64_t total = rfx_primary_query_int(url, "SELECT sum(bal) FROM "
						   "accounts");
	int64_t seq = rfx_primary_query_int(url, "SELECT v FROM meta WHERE k "
						 "= 'seq'");
	int64_t rows =
	    rfx_primary_query_int(url, "SELECT count(*) FROM ledger");
	int64_t bad = rfx_primary_query_int(url, RFB_RECONCILE_SQL);

	if (total != RFB_TOTAL)
		problem(p, "the primary's accounts hold %" PRId64, total);
	if (seq != rows)
		problem(p,
			"the primary's seq is %" PRId64 " with %" PRId64
			" ledger rows",
			seq, rows);
	if (bad != 0)
		problem(p,
			"%" PRId64 " of the primary's balances disagree with "
			"its ledger",
			bad);
	rfb_primary_rows(url, "PRAGMA integrity_check", &ic);
	if (strcmp(ic.p, "ok\n") != 0)
		problem(p, "integrity_check on the primary: %s", ic.p);
	free(ic.p);
}

/* Wait (without asking for a sync: the replica must get there by itself)
 * until a fresh replica connection reads exactly the primary's digest.
 * The time from the heal, or -1 when it did not happen by the deadline
 * (extended by REPLITE_FAULT_PATIENCE seconds, to see how late it comes). */
static int64_t converge(struct rfl_world *w, const struct rfb_text *want,
			int64_t heal_ms, struct rfb_text *last)
{
	int64_t limit = heal_ms + CONVERGE_MS +
			1000LL * env_int("REPLITE_FAULT_PATIENCE", 0);

	for (;;) {
		sqlite3 *db = rfx_open(w->env.path, fault_proxy_url(w->fp),
				       REPLICA_PARAMS);
		int64_t t = rfx_now_ms();

		last->len = 0;
		rfb_local_digest(db, last);
		sqlite3_close(db);
		if (last->len == want->len &&
		    memcmp(last->p, want->p, want->len) == 0)
			return t - heal_ms;
		if (t > limit)
			return -1;
		rfx_sleep_ms(20);
	}
}

/* The first line where two digests differ, for the report. */
static void first_difference(const struct rfb_text *a, const struct rfb_text *b,
			     char *out, size_t out_len)
{
	size_t i = 0, line = 0;

	while (i < a->len && i < b->len && a->p[i] == b->p[i]) {
		if (a->p[i] == '\n')
			line = i + 1;
		i++;
	}
	snprintf(out, out_len, "primary \"%.60s\", replica \"%.60s\"",
		 a->p + line, b->p + line);
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] == '\n')
			out[i] = '|';
}

/* ---------------------------------------------------------------------- */
/* one scenario */

/* Everything one scenario runs and finds. */
struct run {
	struct rfl_world w;
	sqlite3 *monitor; /* replite_status() */
	struct rfl_rwriter rw[REPLICA_WRITERS];
	struct rfl_hwriter hw;
	struct rfl_reader rd[READERS];
	struct rfl_syncer sy;
	struct rfl_wlog *logs[REPLICA_WRITERS + 1];
	struct rfl_fault_stats fs;
	int64_t t_start, t_stopped;
	/* found after the load */
	unsigned fired, requests;
	int64_t converge_ms, rejected;
	char *status_text;
	struct accounting acc;
	/* the replica writers' and readers' sums */
	long replica[4];
	long disturbed, acked_faulted, under_fault, other;
	int64_t under_fault_min_ms;
	int64_t reads, violations;
	const char *first_violation;
	struct problems p;
};

static sqlite3 *open_replica(struct run *r)
{
	/* Every replica connection names the proxy: the replica's whole
	 * traffic (pulls, /info, pushes) crosses it. */
	return rfx_open(r->w.env.path, fault_proxy_url(r->w.fp),
			REPLICA_PARAMS);
}

/* A primary with the bank, the proxy in front of it, and the replica's
 * connections (the first open bootstraps it, before any fault). */
static void run_start(struct run *r, const struct rfh_scenario *sc)
{
	const char *port;
	uint64_t seed = (uint64_t)rfx_now_ms();
	int i;

	memset(r, 0, sizeof *r);
	r->w.sc = sc;
	/* REPLITE_FAULT_ON_MS / _OFF_MS: other windows, to explore. */
	r->w.on_ms = env_int("REPLITE_FAULT_ON_MS", sc->on_ms);
	r->w.off_ms = env_int("REPLITE_FAULT_OFF_MS", sc->off_ms);
	r->w.slow_ms = sc->persistent && r->w.on_ms / 2 < SLOW_MS
			   ? r->w.on_ms / 2
			   : SLOW_MS;
	rfx_env_start(&r->w.env, NULL);
	port = strrchr(r->w.env.srv.url, ':');
	ck_assert_ptr_nonnull(port);
	r->w.fp = fault_proxy_start(atoi(port + 1));
	ck_assert_ptr_nonnull(r->w.fp);
	rfx_primary_exec(r->w.env.srv.url, rfb_schema_sql);
	r->monitor = open_replica(r);
	ck_assert_int_eq(
	    fixture_query_int(r->monitor, "SELECT count(*) FROM accounts"),
	    RFB_ACCOUNTS);
	for (i = 0; i < REPLICA_WRITERS; i++) {
		r->rw[i].w = &r->w;
		r->rw[i].id = i;
		r->rw[i].rng = seed * 2 + 1 + (uint64_t)i * 0x9e3779b9ULL;
		r->rw[i].db = open_replica(r);
		r->logs[i] = &r->rw[i].log;
	}
	r->hw.w = &r->w;
	r->hw.rng = seed * 2 + 0x7654321ULL;
	r->logs[REPLICA_WRITERS] = &r->hw.log;
	for (i = 0; i < READERS; i++) {
		r->rd[i].w = &r->w;
		r->rd[i].db = open_replica(r);
	}
	r->sy.w = &r->w;
	r->sy.rng = seed * 2 + 0x5555ULL;
	r->sy.db = open_replica(r);
}

/* The load with the fault, then healed; the load stops (all but the
 * syncer, which may be stuck in a sync until the proxy stops). */
static void run_load(struct run *r)
{
	int seconds = env_int("REPLITE_FAULT_SECONDS", DEFAULT_SECONDS);
	int64_t end;
	int i;

	r->t_start = rfx_now_ms();
	end = r->t_start + seconds * 1000LL - TAIL_MS;
	for (i = 0; i < REPLICA_WRITERS; i++)
		ck_assert_int_eq(pthread_create(&r->rw[i].thread, NULL,
						rfl_rwriter_main, &r->rw[i]),
				 0);
	ck_assert_int_eq(
	    pthread_create(&r->hw.thread, NULL, rfl_hwriter_main, &r->hw), 0);
	for (i = 0; i < READERS; i++)
		ck_assert_int_eq(pthread_create(&r->rd[i].thread, NULL,
						rfl_reader_main, &r->rd[i]),
				 0);
	ck_assert_int_eq(
	    pthread_create(&r->sy.thread, NULL, rfl_syncer_main, &r->sy), 0);

	rfx_sleep_ms(WARM_MS);
	r->fs.heal_ms = rfx_now_ms();
	if (r->w.sc->persistent)
		rfl_drive_persistent(&r->w, r->monitor, end, &r->fs);
	else
		rfl_drive_oneshot(&r->w, end, &r->fs);
	/* Healed: the load goes on a little, then stops. */
	rfx_sleep_ms(TAIL_MS);
	atomic_store(&r->w.stop, 1);
	for (i = 0; i < REPLICA_WRITERS; i++)
		pthread_join(r->rw[i].thread, NULL);
	pthread_join(r->hw.thread, NULL);
	for (i = 0; i < READERS; i++)
		pthread_join(r->rd[i].thread, NULL);
	r->t_stopped = rfx_now_ms();
	r->fired = fault_proxy_fired(r->w.fp);
	r->requests = fault_proxy_requests(r->w.fp);
}

/* The replica against the primary, the writes against the ledger. */
static void run_verify(struct run *r)
{
	struct rfb_text want = {NULL, 0, 0}, got = {NULL, 0, 0},
			ic = {NULL, 0, 0};
	char diff[200];
	json_t *status;
	sqlite3 *db;

	/* The primary no longer changes: its state is the one to reach. */
	rfb_primary_digest(r->w.env.srv.url, &want);
	r->converge_ms = converge(&r->w, &want, r->fs.heal_ms, &got);
	if (r->converge_ms < 0) {
		first_difference(&want, &got, diff, sizeof diff);
		problem(&r->p,
			"the replica did not equal the primary within %d ms "
			"of the heal (%" PRId64 " ms after the load stopped; "
			"digest %016" PRIx64 " vs the primary's %016" PRIx64
			"; first difference: %s)",
			CONVERGE_MS, rfx_now_ms() - r->t_stopped,
			fnv1a(got.p, got.len), fnv1a(want.p, want.len), diff);
	} else if (r->converge_ms > CONVERGE_MS) {
		problem(&r->p,
			"the replica equalled the primary only %" PRId64
			" ms after the heal, not within %d ms",
			r->converge_ms, CONVERGE_MS);
	}
	/* replite_status().checksum (the whole-database checksum, against
	 * the primary's) belongs here once the replica reports it. */
	db = open_replica(r);
	rfb_local_rows(db, "PRAGMA integrity_check", &ic);
	if (strcmp(ic.p, "ok\n") != 0)
		problem(&r->p, "integrity_check on the replica: %s", ic.p);
	sqlite3_close(db);
	check_primary(r->w.env.srv.url, &r->p);
	account(r->w.env.srv.url, r->logs, REPLICA_WRITERS + 1, &r->acc, &r->p);

	r->status_text = rfx_status_text(r->monitor);
	status = json_loads(r->status_text, 0, NULL);
	ck_assert_msg(
	    json_is_integer(json_object_get(status, "rejected_transfers")),
	    "replite_status() has no rejected_transfers: %s", r->status_text);
	r->rejected =
	    json_integer_value(json_object_get(status, "rejected_transfers"));
	json_decref(status);
	free(want.p);
	free(got.p);
	free(ic.p);
}

/* The threads' figures, summed. */
static void run_sum(struct run *r)
{
	int i, o;

	r->under_fault_min_ms = -1;
	r->first_violation = "";
	for (i = 0; i < READERS; i++) {
		r->reads += r->rd[i].reads;
		if (r->rd[i].violations > 0 && r->violations == 0)
			r->first_violation = r->rd[i].first;
		r->violations += r->rd[i].violations;
		if (r->rd[i].reads == 0)
			problem(&r->p, "reader %d made no read", i);
	}
	for (i = 0; i < REPLICA_WRITERS; i++) {
		const struct rfl_rwriter *rw = &r->rw[i];

		for (o = 0; o < 4; o++)
			r->replica[o] += rw->log.count[o];
		r->disturbed += rw->disturbed;
		r->other += rw->log.other;
		if (rw->ryw_bad > 0)
			problem(&r->p,
				"read-your-writes: %ld writes, first: %s",
				rw->ryw_bad, rw->ryw_first);
		if (rw->under_fault > 0 &&
		    (r->under_fault_min_ms < 0 ||
		     rw->under_fault_min_ms < r->under_fault_min_ms))
			r->under_fault_min_ms = rw->under_fault_min_ms;
		r->under_fault += rw->under_fault;
		r->acked_faulted += rw->acked_faulted;
	}
}

/* One summary line, then the details worth a look. */
static void run_report(const struct run *r)
{
	const struct rfl_wlog *hl = &r->hw.log;
	int i, o;

	printf("faults %s: %" PRId64 " reads, %" PRId64
	       " violations; replica writes %ld acked / %ld failed / %ld "
	       "unknown (%ld applied) / %ld aborted before commit; primary "
	       "writes %ld acked / %ld failed / %ld unknown; rejected "
	       "transfers %" PRId64 "; converged in %" PRId64 " ms\n",
	       r->w.sc->name, r->reads, r->violations,
	       r->replica[RFL_OUT_ACKED], r->replica[RFL_OUT_FAILED],
	       r->replica[RFL_OUT_UNKNOWN], r->acc.unknown_applied,
	       r->replica[RFL_OUT_ABORTED], hl->count[RFL_OUT_ACKED],
	       hl->count[RFL_OUT_FAILED], hl->count[RFL_OUT_UNKNOWN],
	       r->rejected, r->converge_ms);
	printf("  proxy: %u requests, %u faults fired, %d windows, %d arms; "
	       "%ld replica writes disturbed; last_error seen %d times under "
	       "the fault; replite_sync(): %ld ok, %ld failed, the longest "
	       "%" PRId64 " ms\n",
	       r->requests, r->fired, r->fs.windows, r->fs.arms, r->disturbed,
	       r->fs.status_errors, r->sy.ok, r->sy.failed, r->sy.max_ms);
	for (i = 0; i < REPLICA_WRITERS + 1; i++)
		for (o = RFL_OUT_FAILED; o <= RFL_OUT_UNKNOWN; o++)
			if (r->logs[i]->count[o] > 0)
				printf(
				    "  %s writer: %ld %s, first: %s\n",
				    i < REPLICA_WRITERS ? "replica" : "primary",
				    r->logs[i]->count[o], rfl_outcome_name[o],
				    r->logs[i]->first[o]);
	for (i = 0; i < REPLICA_WRITERS; i++)
		printf("  replica writer %d: %ld attempts, %" PRId64
		       " ms in them (%" PRId64 " ms in BEGIN IMMEDIATE), the "
		       "longest %" PRId64 " ms\n",
		       i, r->rw[i].attempts, r->rw[i].total_ms,
		       r->rw[i].begin_ms, r->rw[i].max_ms);
	if (r->sy.failed > 0)
		printf("  replite_sync(): first failure: %s\n",
		       r->sy.first_error);
	if (r->w.sc->fault == FAULT_PROXY_LATENCY)
		printf("  %ld replica writes acked under latency, %ld of them "
		       "entirely, the fastest of those in %" PRId64
		       " ms; %u requests under it\n",
		       r->acked_faulted, r->under_fault, r->under_fault_min_ms,
		       r->fs.requests_under_fault);
	printf("  status: %s\n", r->status_text);
	fflush(stdout);
}

/* The scenario must have done what it says: no vacuous pass. */
static void run_expect(struct run *r)
{
	const struct rfh_scenario *sc = r->w.sc;
	const struct rfl_wlog *hl = &r->hw.log;

	if (r->reads < 10)
		problem(&r->p, "only %" PRId64 " reads", r->reads);
	if (r->violations > 0)
		problem(&r->p, "%" PRId64 " invariant violations, first: %s",
			r->violations, r->first_violation);
	if (r->replica[RFL_OUT_ACKED] == 0)
		problem(&r->p, "no write through the replica was acknowledged");
	if (hl->count[RFL_OUT_ACKED] == 0)
		problem(&r->p, "no write on the primary was acknowledged");
	if (hl->count[RFL_OUT_FAILED] + hl->count[RFL_OUT_UNKNOWN] > 0)
		problem(&r->p,
			"the writer on the primary (no fault on its path) "
			"failed: %s",
			hl->first[RFL_OUT_FAILED][0]
			    ? hl->first[RFL_OUT_FAILED]
			    : hl->first[RFL_OUT_UNKNOWN]);
	if (r->other > 0)
		problem(&r->p,
			"%ld replica COMMITs failed with an unexpected code "
			"(see above)",
			r->other);
	if (r->sy.ok == 0)
		problem(&r->p, "no replite_sync() succeeded");
	if (!sc->persistent && r->fired == 0)
		problem(&r->p, "the fault never fired");
	if (sc->persistent && r->fs.windows == 0)
		problem(&r->p, "the fault was never set");
	if (sc->fault == FAULT_PROXY_LATENCY) {
		/* Every replica write is two round trips (GET /info, the
		 * push), each delayed both ways. */
		if (r->acked_faulted == 0)
			problem(&r->p,
				"no replica write succeeded under latency");
		if (r->fs.requests_under_fault == 0)
			problem(&r->p, "no request crossed the proxy under "
				       "latency");
		if (r->under_fault > 0 &&
		    r->under_fault_min_ms < 2 * RFH_LATENCY_MS)
			problem(&r->p,
				"a replica write under %d ms of latency took "
				"only %" PRId64 " ms",
				RFH_LATENCY_MS, r->under_fault_min_ms);
	} else if (sc->persistent && r->disturbed == 0) {
		problem(&r->p, "no replica write was disturbed by the fault");
	}
	if (sc->corrupts && r->rejected == 0)
		problem(&r->p, "no damaged transfer was rejected");
}

static void run_stop(struct run *r)
{
	int i;

	/* First the proxy: closing its connections ends a sync stuck on one
	 * (the syncer may wait for it). */
	fault_proxy_stop(r->w.fp);
	pthread_join(r->sy.thread, NULL);
	sqlite3_close(r->sy.db);
	for (i = 0; i < READERS; i++)
		sqlite3_close(r->rd[i].db);
	for (i = 0; i < REPLICA_WRITERS; i++) {
		sqlite3_close(r->rw[i].db);
		free(r->rw[i].log.a);
	}
	free(r->hw.log.a);
	sqlite3_close(r->monitor);
	rfx_env_stop(&r->w.env);
	free(r->status_text);
}

void rfh_run_scenario(const struct rfh_scenario *sc)
{
	struct run *r = calloc(1, sizeof *r);

	ck_assert_ptr_nonnull(r);
	run_start(r, sc);
	run_load(r);
	run_verify(r);
	run_sum(r);
	run_report(r);
	run_expect(r);
	if (r->p.n > 0) {
		printf("  problems:%s\n", r->p.t.p);
		fflush(stdout);
	}
	run_stop(r);
	ck_assert_msg(r->p.n == 0, "faults %s:%s", sc->name, r->p.t.p);
	free(r->p.t.p);
	free(r);
}

int rfh_run_tests(const char *name, const TTest *const *tests, size_t n)
{
	int seconds = env_int("REPLITE_FAULT_SECONDS", DEFAULT_SECONDS);
	Suite *s = suite_create(name);
	size_t i;
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < n; i++) {
		TCase *tc = tcase_create(tests[i]->name);

		/* The load, the wait for convergence (with its patience),
		 * writers finishing an attempt, and set-up. */
		tcase_set_timeout(tc, seconds + 60 +
					  env_int("REPLITE_FAULT_PATIENCE", 0));
		tcase_add_test(tc, tests[i]);
		suite_add_tcase(s, tc);
	}
	rc = fixture_run(s);
	curl_global_cleanup();
	return rc;
}
