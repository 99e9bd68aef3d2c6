/* One replica writing while the primary starts new generations (issue 9,
 * finding 6): with a single writer, no write may fail with
 * SQLITE_BUSY_SNAPSHOT, rollovers included, and none may be lost, doubled
 * or corrupt.
 *
 * The primary rolls over in its maintenance tick (every 250 ms) once the
 * current generation holds --generation-frames frames.  A rollover can come
 * between a writer's begin-write (GET /info: the file is at the head of
 * generation G) and its push (frames of G after G's last frame), which the
 * primary must take as the first frames of generation G+1.  Autocommit
 * INSERTs meet that window by chance; the "straddling" transactions below
 * meet it on purpose: they begin right after a write that filled the
 * generation and wait 300 ms (more than a tick) before COMMIT, so the
 * rollover happens while they hold the write lock.  One of them is larger
 * than a push request (1024 frames), so its push needs a baton.
 *
 * Every statement's result code is counted and printed; every acknowledged
 * row must be on the primary exactly once and no other row; integrity_check
 * must pass on the writer's replica and on a fresh one; the replica must end
 * in the primary's generation at its head.
 *
 * Each test is its own test case: CK_RUN_CASE=test_rollover_live runs
 * one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"

/* Rows of the big transactions: one page each (3500 bytes fit in a 4096-byte
 * leaf), so more than one push request of 1024 frames. */
#define BIG_ROWS 1100
/* Longer than the primary's maintenance tick (250 ms). */
#define STRADDLE_MS 300

struct scenario {
	const char *generation_frames;
	const char *replica_params; /* URI parameters of the writer */
	int autocommits;            /* autocommit INSERTs */
	int txn_every;     /* a multi-statement transaction every so many */
	int straddles;     /* transactions held open across a rollover */
	int bigs;          /* of which larger than one push request */
	int min_rollovers; /* the run must see at least this many */
};

/* What one run saw. */
struct tally {
	int ok;
	int busy_snapshot;
	int busy; /* other SQLITE_BUSY codes */
	int other;
	char first_error[512];
	int straddled; /* transactions that committed in a later generation
			* than the one they began in */
	/* seq values acknowledged (1) or refused (0), by seq */
	unsigned char *acked;
	int n_seq;
	int n_acked;
};

static void tally_rc(struct tally *t, sqlite3 *db, int rc, const char *sql)
{
	int xrc;

	if (rc == SQLITE_OK) {
		t->ok++;
		return;
	}
	xrc = sqlite3_extended_errcode(db);
	if (xrc == SQLITE_BUSY_SNAPSHOT)
		t->busy_snapshot++;
	else if ((xrc & 0xff) == SQLITE_BUSY)
		t->busy++;
	else
		t->other++;
	if (t->first_error[0] == '\0')
		snprintf(t->first_error, sizeof t->first_error,
			 "%.200s: %s (extended code %d)", sql,
			 sqlite3_errmsg(db), xrc);
}

/* Run sql; count its result; roll back what a failure left open.  1 when
 * it succeeded. */
static int run(struct tally *t, sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	tally_rc(t, db, rc, sql);
	if (rc != SQLITE_OK && sqlite3_get_autocommit(db) == 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc == SQLITE_OK;
}

/* seq values [first, first + n) were written by one transaction. */
static void settle(struct tally *t, int first, int n, int committed)
{
	int i;

	for (i = first; i < first + n; i++) {
		ck_assert_int_lt(i, t->n_seq);
		t->acked[i] = (unsigned char)committed;
		t->n_acked += committed;
	}
}

/* The generation recorded in the writer's state file. */
static int64_t state_generation(const char *path)
{
	return rfx_state_int(path, "generation");
}

/* The transaction's statements in one sqlite3_exec: BEGIN, two INSERTs, an
 * UPDATE of the first, COMMIT. */
static void multi_statement(struct tally *t, sqlite3 *db, int *seq)
{
	char *sql = sqlite3_mprintf(
	    "BEGIN; INSERT INTO t(seq, b) VALUES (%d, randomblob(200));"
	    "INSERT INTO t(seq, b) VALUES (%d, randomblob(50));"
	    "UPDATE t SET b = randomblob(300) WHERE seq = %d; COMMIT",
	    *seq, *seq + 1, *seq);

	settle(t, *seq, 2, run(t, db, sql));
	sqlite3_free(sql);
	*seq += 2;
}

/* A transaction that takes the write lock, waits past a maintenance tick
 * and commits: big ones insert BIG_ROWS one-page rows. */
static void straddle(struct tally *t, sqlite3 *db, const char *path, int big,
		     int *seq)
{
	int n = big ? BIG_ROWS : 3;
	int64_t gen_before;
	char *sql;
	int ok;

	sql = sqlite3_mprintf(
	    "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c "
	    "WHERE x + 1 < %d) INSERT INTO t(seq, b) SELECT %d + x, "
	    "randomblob(%d) FROM c",
	    n, *seq, big ? 3500 : 100);
	ok = run(t, db, "BEGIN") && run(t, db, sql);
	sqlite3_free(sql);
	/* The write lock is held: the state file cannot move now. */
	gen_before = state_generation(path);
	if (ok) {
		rfx_sleep_ms(STRADDLE_MS);
		ok = run(t, db, "COMMIT");
	}
	if (ok && state_generation(path) > gen_before)
		t->straddled++;
	settle(t, *seq, n, ok);
	*seq += n;
}

/* The replica and the primary agree on t, row for row, and the rows are the
 * acknowledged ones, each once. */
static void assert_rows(const struct tally *t, sqlite3 *db, const char *url)
{
	char *list = sqlite3_mprintf("-1");
	char *sql;
	int i;

	for (i = 0; i < t->n_seq; i++) {
		if (t->acked[i]) {
			char *more = sqlite3_mprintf("%s,%d", list, i);
			sqlite3_free(list);
			list = more;
		}
	}
	ck_assert_int_eq(rfx_primary_query_int(url, "SELECT count(*) FROM t"),
			 t->n_acked);
	ck_assert_int_eq(
	    rfx_primary_query_int(url, "SELECT count(DISTINCT seq) FROM t"),
	    t->n_acked);
	sql = sqlite3_mprintf("SELECT count(*) FROM t WHERE seq IN (%s)", list);
	ck_assert_int_eq(rfx_primary_query_int(url, sql), t->n_acked);
	sqlite3_free(sql);
	sqlite3_free(list);
	ck_assert_int_eq(rfx_primary_query_int(
			     url, "SELECT count(*) FROM pragma_integrity_check "
				  "WHERE integrity_check <> 'ok'"),
			 0);
	rfx_assert_same_table(db, url, "t", "seq || ',' || hex(b)");
}

static void run_scenario(const struct scenario *sc, const char *name)
{
	const char *args[] = {"--generation-frames", sc->generation_frames,
			      NULL};
	struct tally t = {0};
	struct rfx_env e;
	struct rfx_info start, info;
	const char *url;
	sqlite3 *db, *fresh;
	char *fresh_path;
	int64_t t0, frames_per_gen = atoll(sc->generation_frames);
	int i, seq = 0, straddles = 0, bigs = 0;

	/* Autocommits, two rows per multi-statement transaction, the writes
	 * filling a generation before each straddle, the straddles. */
	t.n_seq = sc->autocommits * 3 +
		  sc->straddles * ((int)frames_per_gen + 3) +
		  sc->bigs * BIG_ROWS;
	t.acked = calloc((size_t)t.n_seq, 1);
	ck_assert_ptr_nonnull(t.acked);
	rfx_env_start(&e, args);
	url = e.srv.url;
	db = rfx_open(e.path, url, sc->replica_params);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, seq INTEGER "
			 "NOT NULL, b BLOB)");
	rfx_primary_info(url, NULL, &start);
	t0 = rfx_now_ms();
	for (i = 0; i < sc->autocommits; i++) {
		char *sql;

		/* Straddle when the generation is full: the next tick rolls
		 * over while the transaction holds the write lock. */
		if (straddles < sc->straddles && i > 0 &&
		    i % (sc->autocommits / (sc->straddles + 1)) == 0) {
			int fill = 0;
			while (rfx_state_int(e.path, "frame_no") <
			       frames_per_gen) {
				ck_assert_int_lt(fill++, 100);
				sql = sqlite3_mprintf(
				    "INSERT INTO t(seq, b) VALUES (%d, "
				    "randomblob(100))",
				    seq);
				settle(&t, seq++, 1, run(&t, db, sql));
				sqlite3_free(sql);
			}
			straddle(&t, db, e.path, bigs < sc->bigs, &seq);
			bigs += bigs < sc->bigs;
			straddles++;
		}
		if (sc->txn_every > 0 && i % sc->txn_every == sc->txn_every - 1)
			multi_statement(&t, db, &seq);
		sql = sqlite3_mprintf(
		    "INSERT INTO t(seq, b) VALUES (%d, randomblob(%d))", seq,
		    i % 7 == 0 ? 5000 : 100);
		settle(&t, seq++, 1, run(&t, db, sql));
		sqlite3_free(sql);
	}
	rfx_primary_info(url, NULL, &info);
	printf("%s: --generation-frames %s, %s: %d statements in %lld ms over "
	       "generations %u..%u: %d ok, %d SQLITE_BUSY_SNAPSHOT, %d other "
	       "SQLITE_BUSY, %d other errors; %d of %d straddling "
	       "transactions committed in a later generation; %d rows "
	       "acknowledged\n",
	       name, sc->generation_frames, sc->replica_params,
	       t.ok + t.busy_snapshot + t.busy + t.other,
	       (long long)(rfx_now_ms() - t0), start.generation,
	       info.generation, t.ok, t.busy_snapshot, t.busy, t.other,
	       t.straddled, straddles, t.n_acked);
	fflush(stdout);

	ck_assert_int_eq(straddles, sc->straddles);
	ck_assert_int_eq(bigs, sc->bigs);
	ck_assert_msg(info.generation >=
			  start.generation + (uint32_t)sc->min_rollovers,
		      "only %u rollovers", info.generation - start.generation);

	/* Once the primary has nothing left to roll over (the current
	 * generation is not full), the writer's replica must be at its
	 * head. */
	for (;;) {
		rfx_primary_info(url, NULL, &info);
		if (info.max_frame_no < (uint32_t)frames_per_gen)
			break;
		ck_assert_msg(rfx_now_ms() - t0 < 60000,
			      "generation %u stays full", info.generation);
		rfx_sleep_ms(50);
	}
	rfx_sync(db);
	fixture_assert_integrity(db);
	assert_rows(&t, db, url);
	ck_assert_int_eq(rfx_status_int(db, "generation"), info.generation);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rfx_state_int(e.path, "frame_hwm"), info.max_frame_no);

	/* Whatever failed, nothing may be lost, doubled or corrupt (above);
	 * and nothing may fail. */
	ck_assert_msg(t.busy_snapshot == 0 && t.busy == 0 && t.other == 0,
		      "%d SQLITE_BUSY_SNAPSHOT, %d SQLITE_BUSY, %d other "
		      "errors; first: %s",
		      t.busy_snapshot, t.busy, t.other, t.first_error);
	/* Timing decides whether a tick falls inside a straddling
	 * transaction; with a tick every 250 ms and a 300 ms wait, at least
	 * one of them must have. */
	ck_assert_int_gt(t.straddled, 0);

	/* A fresh replica: the primary's generations chain up to the same
	 * content. */
	fresh_path = fixture_path(e.dir, "fresh.db");
	fresh = rfx_open(fresh_path, url, "sync_interval=0");
	fixture_assert_integrity(fresh);
	assert_rows(&t, fresh, url);
	ck_assert_int_eq(rfx_status_int(fresh, "generation"), info.generation);
	sqlite3_close(fresh);
	free(fresh_path);

	sqlite3_close(db);
	free(t.acked);
	rfx_env_stop(&e);
}

/* Generations of 20 frames, a live sync thread (long-polls that the
 * rollover answers with the next generation), transactions larger than a
 * push request. */
START_TEST(test_rollover_live)
{
	static const struct scenario sc = {
	    .generation_frames = "20",
	    .replica_params = "sync_interval=1",
	    .autocommits = 300,
	    .txn_every = 10,
	    .straddles = 6,
	    .bigs = 2,
	    .min_rollovers = 3,
	};

	run_scenario(&sc, "rollover_live");
}
END_TEST

/* Every tick rolls over (one frame is enough), and the replica syncs only
 * when asked: begin-write alone finds the new generations. */
START_TEST(test_rollover_every_tick)
{
	static const struct scenario sc = {
	    .generation_frames = "1",
	    .replica_params = "sync_interval=0",
	    .autocommits = 100,
	    .txn_every = 7,
	    .straddles = 6,
	    .bigs = 0,
	    .min_rollovers = 3,
	};

	run_scenario(&sc, "rollover_every_tick");
}
END_TEST

/* Small generations of 5 frames with live sync. */
START_TEST(test_rollover_small)
{
	static const struct scenario sc = {
	    .generation_frames = "5",
	    .replica_params = "sync_interval=1",
	    .autocommits = 100,
	    .txn_every = 5,
	    .straddles = 4,
	    .bigs = 1,
	    .min_rollovers = 3,
	};

	run_scenario(&sc, "rollover_small");
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_rollover_live, test_rollover_every_tick, test_rollover_small};

	return rfx_run_tests("replica_rollover", tests,
			     sizeof tests / sizeof tests[0]);
}
