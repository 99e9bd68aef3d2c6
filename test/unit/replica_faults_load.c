/* The load of a fault scenario and the fault applied meanwhile
 * (replica_faults_load.h). */
#include "replica_faults_load.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>

#include "fault_proxy.h"
#include "replica_faults_bank.h"
#include "replica_fixture.h"

/* ---------------------------------------------------------------------- */
/* what became of the writes */

const char *const rfl_outcome_name[] = {"acknowledged", "failed",
					"aborted before commit", "unknown"};

static void wlog_add(struct rfl_wlog *l, const char *id, enum rfl_outcome o,
		     int code, const char *msg)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->a = realloc(l->a, l->cap * sizeof *l->a);
		if (l->a == NULL)
			abort(); /* not in the test's thread: no ck_assert */
	}
	snprintf(l->a[l->n].id, sizeof l->a[l->n].id, "%s", id);
	l->a[l->n].outcome = (int8_t)o;
	l->a[l->n].code = code;
	l->n++;
	if (l->count[o]++ == 0 && msg != NULL)
		snprintf(l->first[o], sizeof l->first[o], "%s (%d): %s", id,
			 code, msg);
}

/* ---------------------------------------------------------------------- */
/* writers on replica connections */

/* Run sql on the writer's connection: the extended code, the message in
 * msg. */
static int rw_exec(struct rfl_rwriter *rw, const char *sql, char *msg,
		   size_t msg_len)
{
	int rc = sqlite3_exec(rw->db, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return SQLITE_OK;
	rc = sqlite3_extended_errcode(rw->db);
	snprintf(msg, msg_len, "%s: %s",
		 sql[0] == 'B' || sql[0] == 'C' ? sql : "transfer",
		 sqlite3_errmsg(rw->db));
	return rc;
}

/* A COMMIT that returned code: what the application was told. */
static enum rfl_outcome commit_outcome(int code)
{
	if (code == SQLITE_OK)
		return RFL_OUT_ACKED;
	/* Another writer was first / the token is read-only: the contract
	 * says the transaction was not applied. */
	if (code == SQLITE_BUSY_SNAPSHOT || (code & 0xff) == SQLITE_READONLY)
		return RFL_OUT_FAILED;
	/* SQLITE_IOERR_WRITE after write_timeout; anything else unforeseen
	 * is counted as unknown too (and shown). */
	return RFL_OUT_UNKNOWN;
}

/* Is the ledger row id visible on the writer's own connection? */
static int rw_sees(struct rfl_rwriter *rw, const char *id)
{
	char *sql =
	    sqlite3_mprintf("SELECT count(*) FROM ledger WHERE id = '%q'", id);
	sqlite3_stmt *st;
	int n = -1;

	if (sqlite3_prepare_v2(rw->db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_free(sql);
	return n == 1;
}

static void rw_attempt(struct rfl_rwriter *rw)
{
	unsigned win0 = atomic_load(&rw->w->window), win1;
	int64_t t0 = rfx_now_ms(), ms;
	enum rfl_outcome o;
	char id[24], msg[256] = "", *sql;
	int code, faulted;

	snprintf(id, sizeof id, "r%d-%ld", rw->id, rw->attempts++);
	sql = rfb_transfer_sql(&rw->rng, id);
	code = rw_exec(rw, "BEGIN IMMEDIATE", msg, sizeof msg);
	rw->begin_ms += rfx_now_ms() - t0;
	if (code == SQLITE_OK) {
		code = rw_exec(rw, sql, msg, sizeof msg);
		if (code == SQLITE_OK) {
			code = rw_exec(rw, "COMMIT", msg, sizeof msg);
			o = commit_outcome(code);
		} else {
			o = RFL_OUT_ABORTED;
		}
	} else {
		o = RFL_OUT_ABORTED;
	}
	sqlite3_free(sql);
	/* A failed COMMIT may leave the transaction open (SQLite rolls back
	 * on some errors only). */
	if (!sqlite3_get_autocommit(rw->db))
		sqlite3_exec(rw->db, "ROLLBACK", NULL, NULL, NULL);
	ms = rfx_now_ms() - t0;
	rw->total_ms += ms;
	if (ms > rw->max_ms)
		rw->max_ms = ms;
	win1 = atomic_load(&rw->w->window);
	wlog_add(&rw->log, id, o, code, msg);
	if (o == RFL_OUT_UNKNOWN && code != SQLITE_IOERR_WRITE)
		rw->log.other++;
	if (o == RFL_OUT_ACKED && !rw_sees(rw, id) && rw->ryw_bad++ == 0)
		snprintf(rw->ryw_first, sizeof rw->ryw_first,
			 "%s committed but not visible on its connection", id);
	faulted = (win0 & 1) || (win1 & 1) || win1 - win0 > 1;
	if (faulted && (o != RFL_OUT_ACKED || ms >= rw->w->slow_ms))
		rw->disturbed++;
	if (faulted && o == RFL_OUT_ACKED)
		rw->acked_faulted++;
	if (win0 == win1 && (win0 & 1) && o == RFL_OUT_ACKED) {
		if (rw->under_fault++ == 0 || ms < rw->under_fault_min_ms)
			rw->under_fault_min_ms = ms;
	}
	/* Don't spin while the primary is out of reach. */
	if (o != RFL_OUT_ACKED && o != RFL_OUT_FAILED)
		rfx_sleep_ms(5 + (long)(rfb_rnd(&rw->rng) % 20));
}

void *rfl_rwriter_main(void *arg)
{
	struct rfl_rwriter *rw = arg;

	while (!atomic_load(&rw->w->stop))
		rw_attempt(rw);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* the writer on the primary */

/* The pause before the next transfer on the primary.  A replica write
 * succeeds only if the primary's head does not move between its GET /info
 * and its push (else SQLITE_BUSY_SNAPSHOT, and a catch-up before the next
 * try): against a primary committing every few ms without a break, replica
 * writes would hardly ever win (under ASan, never).  So the primary writes
 * in bursts (a transfer every 0-10 ms) with quiet spells of 100-300 ms:
 * races in the bursts, wins in the spells. */
static long primary_pause(struct rfl_hwriter *hw)
{
	long mean = hw->w->sc->primary_pause_ms;

	if (mean > 0)
		return mean / 2 + (long)(rfb_rnd(&hw->rng) % (uint64_t)mean);
	if (rfb_rnd(&hw->rng) % 5 == 0)
		return 100 + (long)(rfb_rnd(&hw->rng) % 200);
	return (long)(rfb_rnd(&hw->rng) % 10);
}

static void hw_attempt(struct rfl_hwriter *hw, CURL *h)
{
	char id[24], msg[256] = "", *transfer, *sql;
	json_t *doc = NULL, *inner;
	const char *type;
	enum rfl_outcome o;
	long status;
	CURLcode rc;
	int code;

	snprintf(id, sizeof id, "h-%ld", hw->attempts++);
	transfer = rfb_transfer_sql(&hw->rng, id);
	/* A sequence stops at its first error, and closing the stream rolls
	 * back what is left open: all or nothing. */
	sql = sqlite3_mprintf("BEGIN IMMEDIATE; %s; COMMIT", transfer);
	rc = rfb_hrana_post(
	    h, hw->w->env.srv.url,
	    json_pack("{s:s, s:s}", "type", "sequence", "sql", sql), 10000,
	    &status, &doc);
	sqlite3_free(sql);
	sqlite3_free(transfer);
	if (rc != CURLE_OK) {
		/* Sent or not, run or not: unknown. */
		o = RFL_OUT_UNKNOWN;
		code = (int)rc;
		snprintf(msg, sizeof msg, "%s", curl_easy_strerror(rc));
	} else if (status != 200 || doc == NULL) {
		/* The pipeline was refused as a whole. */
		o = RFL_OUT_FAILED;
		code = (int)status;
		snprintf(msg, sizeof msg, "HTTP %ld", status);
	} else {
		type = rfb_hrana_first(doc, &inner);
		code = 200;
		if (type != NULL && strcmp(type, "ok") == 0) {
			o = RFL_OUT_ACKED;
		} else if (type != NULL && strcmp(type, "error") == 0) {
			const char *m = json_string_value(
			    json_object_get(inner, "message"));

			o = RFL_OUT_FAILED;
			snprintf(msg, sizeof msg, "%s", m ? m : "(no message)");
		} else {
			o = RFL_OUT_UNKNOWN;
			snprintf(msg, sizeof msg, "an answer without result");
		}
	}
	json_decref(doc);
	wlog_add(&hw->log, id, o, code, msg);
	rfx_sleep_ms(primary_pause(hw));
}

void *rfl_hwriter_main(void *arg)
{
	struct rfl_hwriter *hw = arg;
	CURL *h = curl_easy_init();

	if (h == NULL)
		abort();
	while (!atomic_load(&hw->w->stop))
		hw_attempt(hw, h);
	curl_easy_cleanup(h);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* readers on replica connections */

static void violation(struct rfl_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct rfl_reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->violations++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(r->first, sizeof r->first, fmt, ap);
	va_end(ap);
}

/* Step a one-row statement into v[0..n-1]; 0, or -1 (a violation). */
static int read_row(struct rfl_reader *r, sqlite3_stmt *st, int64_t *v, int n)
{
	int rc = sqlite3_step(st), i;

	if (rc != SQLITE_ROW) {
		violation(r, "read %ld: %s: %s (%d)", r->reads, sqlite3_sql(st),
			  sqlite3_errmsg(r->db),
			  sqlite3_extended_errcode(r->db));
		sqlite3_reset(st);
		return -1;
	}
	for (i = 0; i < n; i++)
		v[i] = sqlite3_column_int64(st, i);
	sqlite3_reset(st);
	return 0;
}

/* One read transaction: all statements see one state of the primary. */
static void read_once(struct rfl_reader *r, sqlite3_stmt *sums,
		      sqlite3_stmt *counts, sqlite3_stmt *reconcile)
{
	int64_t a[2], c[3], bad;

	if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		violation(r, "read %ld: BEGIN: %s", r->reads,
			  sqlite3_errmsg(r->db));
		return;
	}
	if (read_row(r, sums, a, 2) == 0 &&
	    (a[0] != RFB_TOTAL || a[1] != RFB_ACCOUNTS))
		violation(r,
			  "read %ld: %" PRId64 " accounts hold %" PRId64
			  ", not %" PRId64,
			  r->reads, a[1], a[0], RFB_TOTAL);
	if (read_row(r, counts, c, 3) == 0) {
		if (c[0] != c[1] || c[0] != c[2])
			violation(r,
				  "read %ld: seq %" PRId64 ", %" PRId64
				  " ledger rows, max seq %" PRId64,
				  r->reads, c[0], c[1], c[2]);
		if (c[0] < r->last_seq)
			violation(r,
				  "read %ld: seq went back from %" PRId64
				  " to %" PRId64,
				  r->reads, r->last_seq, c[0]);
		r->last_seq = c[0];
	}
	/* The full reconciliation costs 200 index look-ups: now and then. */
	if (r->reads % 16 == 0 && read_row(r, reconcile, &bad, 1) == 0 &&
	    bad != 0)
		violation(r,
			  "read %ld: %" PRId64
			  " balances disagree with the ledger",
			  r->reads, bad);
	if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		violation(r, "read %ld: COMMIT: %s", r->reads,
			  sqlite3_errmsg(r->db));
	r->reads++;
}

void *rfl_reader_main(void *arg)
{
	struct rfl_reader *r = arg;
	sqlite3_stmt *sums = NULL, *counts = NULL, *reconcile = NULL;

	if (sqlite3_prepare_v2(r->db, "SELECT sum(bal), count(*) FROM accounts",
			       -1, &sums, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		r->db,
		"SELECT (SELECT v FROM meta WHERE k = 'seq'), (SELECT "
		"count(*) FROM ledger), (SELECT coalesce(max(seq), 0) FROM "
		"ledger)",
		-1, &counts, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, RFB_RECONCILE_SQL, -1, &reconcile,
			       NULL) != SQLITE_OK) {
		violation(r, "prepare: %s", sqlite3_errmsg(r->db));
	} else {
		while (!atomic_load(&r->w->stop)) {
			read_once(r, sums, counts, reconcile);
			/* Leave the CPUs to the writers, the proxy and
			 * the primary. */
			rfx_sleep_ms(1);
		}
	}
	sqlite3_finalize(sums);
	sqlite3_finalize(counts);
	sqlite3_finalize(reconcile);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* an application asking for syncs */

void *rfl_syncer_main(void *arg)
{
	struct rfl_syncer *sy = arg;
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(sy->db, "SELECT replite_sync()", -1, &st,
			       NULL) != SQLITE_OK) {
		snprintf(sy->first_error, sizeof sy->first_error, "prepare: %s",
			 sqlite3_errmsg(sy->db));
		sy->failed++;
		return NULL;
	}
	while (!atomic_load(&sy->w->stop)) {
		int64_t t0 = rfx_now_ms(), ms;

		if (sqlite3_step(st) == SQLITE_ROW)
			sy->ok++;
		else if (sy->failed++ == 0)
			snprintf(sy->first_error, sizeof sy->first_error, "%s",
				 sqlite3_errmsg(sy->db));
		sqlite3_reset(st);
		ms = rfx_now_ms() - t0;
		if (ms > sy->max_ms)
			sy->max_ms = ms;
		rfx_sleep_ms(50 + (long)(rfb_rnd(&sy->rng) % 100));
	}
	sqlite3_finalize(st);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* applying the fault */

/* Sleep until the time until, sampling replite_status().last_error (into
 * fs unless NULL). */
static void sample_until(sqlite3 *monitor, int64_t until,
			 struct rfl_fault_stats *fs)
{
	while (rfx_now_ms() < until) {
		json_t *o = rfx_status_json(monitor);

		if (fs != NULL &&
		    json_is_string(json_object_get(o, "last_error")))
			fs->status_errors++;
		json_decref(o);
		rfx_sleep_ms(20);
	}
}

static void set_fault(struct rfl_world *w, int param)
{
	const struct rfh_scenario *sc = w->sc;

	ck_assert_int_eq(fault_proxy_set(w->fp, sc->fault, sc->match, param),
			 0);
}

/* Set and clear a persistent fault in turns until end. */
void rfl_drive_persistent(struct rfl_world *w, sqlite3 *monitor, int64_t end,
			  struct rfl_fault_stats *fs)
{
	const struct rfh_scenario *sc = w->sc;

	while (rfx_now_ms() + w->on_ms <= end) {
		unsigned before = fault_proxy_requests(w->fp);

		set_fault(w, sc->param);
		atomic_fetch_add(&w->window, 1);
		fs->windows++;
		sample_until(monitor, rfx_now_ms() + w->on_ms, fs);
		fs->requests_under_fault +=
		    fault_proxy_requests(w->fp) - before;
		atomic_fetch_add(&w->window, 1);
		ck_assert_int_eq(fault_proxy_clear(w->fp), 0);
		fs->heal_ms = rfx_now_ms();
		sample_until(monitor, rfx_now_ms() + w->off_ms, NULL);
	}
}

/* Arm a one-shot fault again each time it fired, until end. */
void rfl_drive_oneshot(struct rfl_world *w, int64_t end,
		       struct rfl_fault_stats *fs)
{
	const struct rfh_scenario *sc = w->sc;
	unsigned fired = fault_proxy_fired(w->fp);
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	int param = 0;

	set_fault(w, param);
	fs->arms++;
	atomic_fetch_add(&w->window, 1);
	while (rfx_now_ms() < end) {
		if (fault_proxy_fired(w->fp) == fired) {
			rfx_sleep_ms(5);
			continue;
		}
		fired = fault_proxy_fired(w->fp);
		/* A short breath: some exchanges go through between faults,
		 * as on a flaky network. */
		rfx_sleep_ms((long)(rfb_rnd(&rng) % 40));
		param = (param + 1) % (sc->param + 1);
		set_fault(w, param);
		fs->arms++;
	}
	atomic_fetch_add(&w->window, 1);
	ck_assert_int_eq(fault_proxy_clear(w->fp), 0);
	fs->heal_ms = rfx_now_ms();
}
