/* Integrity end to end under network faults (issue 9): a replica talks to
 * a real primary through the fault proxy (fault_proxy.h) while a bank
 * runs on it, and each test case is one fault of the proxy, so one can be
 * run alone (CK_RUN_CASE=test_reset).
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
#include "replica_fixture.h"
#include "server_fixture.h"

#define ACCOUNTS 100
#define START_BALANCE 1000
#define TOTAL ((int64_t)ACCOUNTS * START_BALANCE)
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
#define LATENCY_MS 50
/* Load before the first fault and after the heal. */
#define WARM_MS 500
#define TAIL_MS 300
/* A replica write this slow (or half a fault window, if less) was held up
 * by the fault. */
#define SLOW_MS 200
#define DEFAULT_SECONDS 4

/* ---------------------------------------------------------------------- */
/* small helpers */

static int64_t now_ms(void)
{
	return rfx_now_ms();
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: one generator per thread */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

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

/* A growable string. */
struct text {
	char *p;
	size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;

		while (cap < t->len + n + 1)
			cap *= 2;
		t->p = realloc(t->p, cap);
		ck_assert_ptr_nonnull(t->p);
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_printf(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	text_add(t, s, (size_t)n);
	free(s);
}

/* ---------------------------------------------------------------------- */
/* the primary over Hrana, with libcurl (usable from threads) */

struct body {
	char *p;
	size_t len;
};

static size_t body_write(char *d, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	char *q = realloc(b->p, b->len + size * n + 1);

	if (q == NULL)
		return 0;
	memcpy(q + b->len, d, size * n);
	b->p = q;
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* POST /v2/pipeline to the primary at url on h (its connection kept alive
 * between calls): one request (a JSON object) and a close.  The transport's
 * result; the HTTP status in *status and the answer parsed in *doc when it
 * is JSON (else NULL). */
static CURLcode hrana_post(CURL *h, const char *url, json_t *request,
			   long timeout_ms, long *status, json_t **doc)
{
	json_t *req =
	    json_pack("{s:[o, {s:s}]}", "requests", request, "type", "close");
	char *post = json_dumps(req, JSON_COMPACT);
	struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
	struct body b = {NULL, 0};
	char target[128];
	CURLcode rc;

	json_decref(req);
	snprintf(target, sizeof target, "%s/v2/pipeline", url);
	curl_easy_reset(h); /* keeps the connection cache */
	curl_easy_setopt(h, CURLOPT_URL, target);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	*doc = b.p != NULL ? json_loadb(b.p, b.len, 0, NULL) : NULL;
	free(b.p);
	free(post);
	curl_slist_free_all(headers);
	return rc;
}

/* The first result of a pipeline answer: its type ("ok", "error") and
 * the object under "response" or "error". */
static const char *hrana_first(json_t *doc, json_t **inner)
{
	json_t *first = json_array_get(json_object_get(doc, "results"), 0);
	const char *type = json_string_value(json_object_get(first, "type"));

	*inner = NULL;
	if (type != NULL && strcmp(type, "ok") == 0)
		*inner = json_object_get(first, "response");
	else if (type != NULL && strcmp(type, "error") == 0)
		*inner = json_object_get(first, "error");
	return type;
}

/* Run one query on the primary (main thread only: asserts): the text of
 * the first column of every row, each followed by '\n', in *out. */
static void primary_rows(const char *url, const char *sql, struct text *out)
{
	CURL *h = curl_easy_init();
	json_t *doc = NULL, *inner, *rows, *row;
	const char *type;
	long status;
	CURLcode rc;
	size_t i;

	ck_assert_ptr_nonnull(h);
	rc = hrana_post(
	    h, url,
	    json_pack("{s:s, s:{s:s}}", "type", "execute", "stmt", "sql", sql),
	    30000, &status, &doc);
	ck_assert_msg(rc == CURLE_OK, "%s on the primary: %s", sql,
		      curl_easy_strerror(rc));
	ck_assert_msg(status == 200 && doc != NULL,
		      "%s on the primary: HTTP %ld", sql, status);
	type = hrana_first(doc, &inner);
	ck_assert_msg(type != NULL && strcmp(type, "ok") == 0,
		      "%s on the primary: %s", sql,
		      json_string_value(json_object_get(inner, "message")));
	rows = json_object_get(json_object_get(inner, "result"), "rows");
	json_array_foreach(rows, i, row)
	{
		json_t *cell = json_array_get(row, 0);
		const char *v =
		    json_string_value(json_object_get(cell, "value"));

		if (v != NULL)
			text_add(out, v, strlen(v));
		text_add(out, "\n", 1);
	}
	json_decref(doc);
	curl_easy_cleanup(h);
}

/* The same on a replica connection. */
static void local_rows(sqlite3 *db, const char *sql, struct text *out)
{
	sqlite3_stmt *st;
	int rc;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
		      "%s: %s", sql, sqlite3_errmsg(db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (v != NULL)
			text_add(out, v, strlen(v));
		text_add(out, "\n", 1);
	}
	ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

/* ---------------------------------------------------------------------- */
/* the bank */

static const char *const schema_sql =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, "
    "pad BLOB);"
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE ledger(id TEXT PRIMARY KEY, src INTEGER NOT NULL, "
    "dst INTEGER NOT NULL, amount INTEGER NOT NULL, seq INTEGER NOT NULL "
    "UNIQUE);"
    "CREATE INDEX ledger_src ON ledger(src);"
    "CREATE INDEX ledger_dst ON ledger(dst);"
    /* ACCOUNTS accounts of START_BALANCE.  The padding spreads them over
     * several pages, so a transfer writes several frames (body faults aim
     * at frames 0 to 2). */
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE "
    "i < 100) INSERT INTO accounts SELECT i, 1000, randomblob(300) FROM n;"
    "INSERT INTO meta VALUES ('seq', 0)";

/* One transfer, the ledger row named id (sqlite3_free). */
static char *transfer_sql(uint64_t *rng, const char *id)
{
	int src = 1 + (int)(rnd(rng) % ACCOUNTS);
	int dst = 1 + (int)((src + rnd(rng) % (ACCOUNTS - 1)) % ACCOUNTS);
	int amount = 1 + (int)(rnd(rng) % 50);

	return sqlite3_mprintf(
	    "UPDATE accounts SET bal = bal - %d WHERE id = %d;"
	    "UPDATE accounts SET bal = bal + %d WHERE id = %d;"
	    "UPDATE meta SET v = v + 1 WHERE k = 'seq';"
	    "INSERT INTO ledger(id, src, dst, amount, seq) VALUES ('%q', %d, "
	    "%d, %d, (SELECT v FROM meta WHERE k = 'seq'))",
	    amount, src, amount, dst, id, src, dst, amount);
}

/* Accounts whose balance is not what the ledger says it should be (1000:
 * START_BALANCE). */
#define RECONCILE_SQL                                                          \
	"SELECT count(*) FROM accounts a WHERE bal <> 1000 + "                 \
	"coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0) - "    \
	"coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)"

/* Every row of every table, in a fixed order, as text: equal digests are
 * equal contents. */
static const char *const digest_sql[] = {
    "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || "
    "coalesce(sql, '') FROM sqlite_schema ORDER BY name",
    "SELECT id || ' ' || bal || ' ' || hex(pad) FROM accounts ORDER BY id",
    "SELECT k || ' ' || v FROM meta ORDER BY k",
    "SELECT id || ' ' || src || ' ' || dst || ' ' || amount || ' ' || seq "
    "FROM ledger ORDER BY id",
};
#define DIGEST_PARTS (sizeof digest_sql / sizeof digest_sql[0])

static void primary_digest(const char *url, struct text *out)
{
	size_t i;

	for (i = 0; i < DIGEST_PARTS; i++) {
		primary_rows(url, digest_sql[i], out);
		text_add(out, "--\n", 3);
	}
}

static void local_digest(sqlite3 *db, struct text *out)
{
	size_t i;

	/* One read transaction: the parts of one state. */
	fixture_exec(db, "BEGIN");
	for (i = 0; i < DIGEST_PARTS; i++) {
		local_rows(db, digest_sql[i], out);
		text_add(out, "--\n", 3);
	}
	fixture_exec(db, "COMMIT");
}

/* ---------------------------------------------------------------------- */
/* scenarios */

struct scenario {
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

static const struct scenario sc_latency = {
    .name = "LATENCY",
    .fault = FAULT_PROXY_LATENCY,
    .persistent = 1,
    .param = LATENCY_MS,
    .on_ms = 2800,
    .off_ms = 300,
    /* Under latency a replica write takes two round trips (GET /info,
     * the push) of 2 * LATENCY_MS each, plus a catch-up when behind:
     * with the primary changing every few ms no replica write could ever
     * win, whatever the replica did. */
    .primary_pause_ms = 400,
};
static const struct scenario sc_reset = {
    .name = "RESET",
    .fault = FAULT_PROXY_RESET,
    .persistent = 1,
    .on_ms = 300,
    .off_ms = 400,
};
static const struct scenario sc_stall = {
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
static const struct scenario sc_blackhole = {
    .name = "BLACKHOLE",
    .fault = FAULT_PROXY_BLACKHOLE,
    .persistent = 1,
    .on_ms = 150,
    .off_ms = 150,
};
static const struct scenario sc_refuse = {
    .name = "REFUSE",
    .fault = FAULT_PROXY_REFUSE,
    .persistent = 1,
    .on_ms = 700,
    .off_ms = 400,
};
/* Any request: pulls, /info and pushes alike. */
static const struct scenario sc_cut_header = {
    .name = "CUT_HEADER",
    .fault = FAULT_PROXY_CUT_HEADER,
};
static const struct scenario sc_cut_frame = {
    .name = "CUT_FRAME",
    .fault = FAULT_PROXY_CUT_FRAME,
    .match = "GET /sync/",
    .param = 2,
};
static const struct scenario sc_cut_boundary = {
    .name = "CUT_BOUNDARY",
    .fault = FAULT_PROXY_CUT_BOUNDARY,
    .match = "GET /sync/",
    .param = 2,
};
static const struct scenario sc_corrupt_page = {
    .name = "CORRUPT_PAGE",
    .fault = FAULT_PROXY_CORRUPT_PAGE,
    .match = "GET /sync/",
    .param = 2,
    .corrupts = 1,
};
static const struct scenario sc_corrupt_header = {
    .name = "CORRUPT_HEADER",
    .fault = FAULT_PROXY_CORRUPT_HEADER,
    .match = "GET /sync/",
    .param = 2,
    .corrupts = 1,
};
/* The push's answer: the primary applied it, the replica never hears. */
static const struct scenario sc_lose_answer = {
    .name = "LOSE_ANSWER",
    .fault = FAULT_PROXY_LOSE_ANSWER,
    .match = "POST /sync/",
};

/* ---------------------------------------------------------------------- */
/* one scenario's world */

struct world {
	const struct scenario *sc;
	struct rfx_env env;
	struct fault_proxy *fp;
	atomic_int stop;
	/* Bumped when a fault is set and when it is cleared: odd only while
	 * one is in force (made odd after the fault is applied, even before it
	 * is lifted), so a writer that sees the same odd value at both ends of
	 * an attempt ran entirely under the fault. */
	atomic_uint window;
	int on_ms, off_ms; /* a persistent fault's windows */
	int slow_ms;       /* see SLOW_MS */
};

/* What became of one write. */
enum outcome {
	OUT_ACKED,   /* SQLITE_OK / Hrana ok: must be in the ledger */
	OUT_FAILED,  /* reported as not done: must not be */
	OUT_ABORTED, /* failed before COMMIT, nothing pushed: must not be */
	OUT_UNKNOWN, /* by contract either way: counted */
};

static const char *const outcome_name[] = {"acknowledged", "failed",
					   "aborted before commit", "unknown"};

struct attempt {
	char id[24];
	int8_t outcome;
	int code; /* SQLite extended code, or HTTP status / curl code */
};

/* A writer's attempts, in its own thread until joined. */
struct wlog {
	struct attempt *a;
	size_t n, cap;
	long count[4]; /* by outcome */
	long other;    /* replica: unknown with another code than IOERR_WRITE */
	char first[4][256]; /* the first message of each outcome */
};

static void wlog_add(struct wlog *l, const char *id, enum outcome o, int code,
		     const char *msg)
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

struct rwriter {
	struct world *w;
	sqlite3 *db;
	pthread_t thread;
	int id;
	uint64_t rng;
	long attempts;
	struct wlog log;
	long ryw_bad; /* acknowledged but not visible at once */
	char ryw_first[160];
	/* The fault's effect on these writes. */
	long disturbed;     /* under a fault: failed, or slow (SLOW_MS) */
	long acked_faulted; /* acknowledged, under a fault at some point */
	long under_fault;   /* acknowledged, entirely under a fault */
	int64_t under_fault_min_ms;
	int64_t total_ms, max_ms, begin_ms; /* time spent in attempts */
};

/* Run sql on the writer's connection: the extended code, the message in
 * msg. */
static int rw_exec(struct rwriter *rw, const char *sql, char *msg,
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
static enum outcome commit_outcome(int code)
{
	if (code == SQLITE_OK)
		return OUT_ACKED;
	/* Another writer was first / the token is read-only: the contract
	 * says the transaction was not applied. */
	if (code == SQLITE_BUSY_SNAPSHOT || (code & 0xff) == SQLITE_READONLY)
		return OUT_FAILED;
	/* SQLITE_IOERR_WRITE after write_timeout; anything else unforeseen
	 * is counted as unknown too (and shown). */
	return OUT_UNKNOWN;
}

/* Is the ledger row id visible on the writer's own connection? */
static int rw_sees(struct rwriter *rw, const char *id)
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

static void rw_attempt(struct rwriter *rw)
{
	unsigned win0 = atomic_load(&rw->w->window), win1;
	int64_t t0 = now_ms(), ms;
	enum outcome o;
	char id[24], msg[256] = "", *sql;
	int code, faulted;

	snprintf(id, sizeof id, "r%d-%ld", rw->id, rw->attempts++);
	sql = transfer_sql(&rw->rng, id);
	code = rw_exec(rw, "BEGIN IMMEDIATE", msg, sizeof msg);
	rw->begin_ms += now_ms() - t0;
	if (code == SQLITE_OK) {
		code = rw_exec(rw, sql, msg, sizeof msg);
		if (code == SQLITE_OK) {
			code = rw_exec(rw, "COMMIT", msg, sizeof msg);
			o = commit_outcome(code);
		} else {
			o = OUT_ABORTED;
		}
	} else {
		o = OUT_ABORTED;
	}
	sqlite3_free(sql);
	/* A failed COMMIT may leave the transaction open (SQLite rolls back
	 * on some errors only). */
	if (!sqlite3_get_autocommit(rw->db))
		sqlite3_exec(rw->db, "ROLLBACK", NULL, NULL, NULL);
	ms = now_ms() - t0;
	rw->total_ms += ms;
	if (ms > rw->max_ms)
		rw->max_ms = ms;
	win1 = atomic_load(&rw->w->window);
	wlog_add(&rw->log, id, o, code, msg);
	if (o == OUT_UNKNOWN && code != SQLITE_IOERR_WRITE)
		rw->log.other++;
	if (o == OUT_ACKED && !rw_sees(rw, id) && rw->ryw_bad++ == 0)
		snprintf(rw->ryw_first, sizeof rw->ryw_first,
			 "%s committed but not visible on its connection", id);
	faulted = (win0 & 1) || (win1 & 1) || win1 - win0 > 1;
	if (faulted && (o != OUT_ACKED || ms >= rw->w->slow_ms))
		rw->disturbed++;
	if (faulted && o == OUT_ACKED)
		rw->acked_faulted++;
	if (win0 == win1 && (win0 & 1) && o == OUT_ACKED) {
		if (rw->under_fault++ == 0 || ms < rw->under_fault_min_ms)
			rw->under_fault_min_ms = ms;
	}
	/* Don't spin while the primary is out of reach. */
	if (o != OUT_ACKED && o != OUT_FAILED)
		rfx_sleep_ms(5 + (long)(rnd(&rw->rng) % 20));
}

static void *rwriter_main(void *arg)
{
	struct rwriter *rw = arg;

	while (!atomic_load(&rw->w->stop))
		rw_attempt(rw);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* the writer on the primary */

struct hwriter {
	struct world *w;
	pthread_t thread;
	uint64_t rng;
	long attempts;
	struct wlog log;
};

/* The pause before the next transfer on the primary.  A replica write
 * succeeds only if the primary's head does not move between its GET /info
 * and its push (else SQLITE_BUSY_SNAPSHOT, and a catch-up before the next
 * try): against a primary committing every few ms without a break, replica
 * writes would hardly ever win (under ASan, never).  So the primary writes
 * in bursts (a transfer every 0-10 ms) with quiet spells of 100-300 ms:
 * races in the bursts, wins in the spells. */
static long primary_pause(struct hwriter *hw)
{
	long mean = hw->w->sc->primary_pause_ms;

	if (mean > 0)
		return mean / 2 + (long)(rnd(&hw->rng) % (uint64_t)mean);
	if (rnd(&hw->rng) % 5 == 0)
		return 100 + (long)(rnd(&hw->rng) % 200);
	return (long)(rnd(&hw->rng) % 10);
}

static void hw_attempt(struct hwriter *hw, CURL *h)
{
	char id[24], msg[256] = "", *transfer, *sql;
	json_t *doc = NULL, *inner;
	const char *type;
	enum outcome o;
	long status;
	CURLcode rc;
	int code;

	snprintf(id, sizeof id, "h-%ld", hw->attempts++);
	transfer = transfer_sql(&hw->rng, id);
	/* A sequence stops at its first error, and closing the stream rolls
	 * back what is left open: all or nothing. */
	sql = sqlite3_mprintf("BEGIN IMMEDIATE; %s; COMMIT", transfer);
	rc = hrana_post(h, hw->w->env.srv.url,
			json_pack("{s:s, s:s}", "type", "sequence", "sql", sql),
			10000, &status, &doc);
	sqlite3_free(sql);
	sqlite3_free(transfer);
	if (rc != CURLE_OK) {
		/* Sent or not, run or not: unknown. */
		o = OUT_UNKNOWN;
		code = (int)rc;
		snprintf(msg, sizeof msg, "%s", curl_easy_strerror(rc));
	} else if (status != 200 || doc == NULL) {
		/* The pipeline was refused as a whole. */
		o = OUT_FAILED;
		code = (int)status;
		snprintf(msg, sizeof msg, "HTTP %ld", status);
	} else {
		type = hrana_first(doc, &inner);
		code = 200;
		if (type != NULL && strcmp(type, "ok") == 0) {
			o = OUT_ACKED;
		} else if (type != NULL && strcmp(type, "error") == 0) {
			const char *m = json_string_value(
			    json_object_get(inner, "message"));

			o = OUT_FAILED;
			snprintf(msg, sizeof msg, "%s", m ? m : "(no message)");
		} else {
			o = OUT_UNKNOWN;
			snprintf(msg, sizeof msg, "an answer without result");
		}
	}
	json_decref(doc);
	wlog_add(&hw->log, id, o, code, msg);
	rfx_sleep_ms(primary_pause(hw));
}

static void *hwriter_main(void *arg)
{
	struct hwriter *hw = arg;
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

struct reader {
	struct world *w;
	sqlite3 *db;
	pthread_t thread;
	long reads;
	long violations;
	char first[256];
	int64_t last_seq;
};

static void violation(struct reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->violations++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(r->first, sizeof r->first, fmt, ap);
	va_end(ap);
}

/* Step a one-row statement into v[0..n-1]; 0, or -1 (a violation). */
static int read_row(struct reader *r, sqlite3_stmt *st, int64_t *v, int n)
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
static void read_once(struct reader *r, sqlite3_stmt *sums,
		      sqlite3_stmt *counts, sqlite3_stmt *reconcile)
{
	int64_t a[2], c[3], bad;

	if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		violation(r, "read %ld: BEGIN: %s", r->reads,
			  sqlite3_errmsg(r->db));
		return;
	}
	if (read_row(r, sums, a, 2) == 0 && (a[0] != TOTAL || a[1] != ACCOUNTS))
		violation(r,
			  "read %ld: %" PRId64 " accounts hold %" PRId64
			  ", not %" PRId64,
			  r->reads, a[1], a[0], TOTAL);
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

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	sqlite3_stmt *sums = NULL, *counts = NULL, *reconcile = NULL;

	if (sqlite3_prepare_v2(r->db, "SELECT sum(bal), count(*) FROM accounts",
			       -1, &sums, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
		r->db,
		"SELECT (SELECT v FROM meta WHERE k = 'seq'), (SELECT "
		"count(*) FROM ledger), (SELECT coalesce(max(seq), 0) FROM "
		"ledger)",
		-1, &counts, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, RECONCILE_SQL, -1, &reconcile, NULL) !=
		SQLITE_OK) {
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

/* A thread calling replite_sync() now and then, as an application that
 * wants fresh reads does.  A call interrupts the sync thread's long-poll if
 * it is in one (its connection is dropped and a new one made): under a
 * fault, that new connection is the one the fault meets. */
struct syncer {
	struct world *w;
	sqlite3 *db;
	pthread_t thread;
	uint64_t rng;
	long ok, failed;
	int64_t max_ms;
	char first_error[256];
};

static void *syncer_main(void *arg)
{
	struct syncer *sy = arg;
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(sy->db, "SELECT replite_sync()", -1, &st,
			       NULL) != SQLITE_OK) {
		snprintf(sy->first_error, sizeof sy->first_error, "prepare: %s",
			 sqlite3_errmsg(sy->db));
		sy->failed++;
		return NULL;
	}
	while (!atomic_load(&sy->w->stop)) {
		int64_t t0 = now_ms(), ms;

		if (sqlite3_step(st) == SQLITE_ROW)
			sy->ok++;
		else if (sy->failed++ == 0)
			snprintf(sy->first_error, sizeof sy->first_error, "%s",
				 sqlite3_errmsg(sy->db));
		sqlite3_reset(st);
		ms = now_ms() - t0;
		if (ms > sy->max_ms)
			sy->max_ms = ms;
		rfx_sleep_ms(50 + (long)(rnd(&sy->rng) % 100));
	}
	sqlite3_finalize(st);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* applying the fault */

struct fault_stats {
	int windows;       /* persistent: times set */
	int arms;          /* one-shot: times armed */
	int status_errors; /* samples of last_error under a fault */
	unsigned requests_under_fault;
	int64_t heal_ms; /* when the fault was lifted for good */
};

/* Sleep until the time until, sampling replite_status().last_error (into
 * fs unless NULL). */
static void sample_until(sqlite3 *monitor, int64_t until,
			 struct fault_stats *fs)
{
	while (now_ms() < until) {
		json_t *o = rfx_status_json(monitor);

		if (fs != NULL &&
		    json_is_string(json_object_get(o, "last_error")))
			fs->status_errors++;
		json_decref(o);
		rfx_sleep_ms(20);
	}
}

static void set_fault(struct world *w, int param)
{
	const struct scenario *sc = w->sc;

	ck_assert_int_eq(fault_proxy_set(w->fp, sc->fault, sc->match, param),
			 0);
}

/* Set and clear a persistent fault in turns until end. */
static void drive_persistent(struct world *w, sqlite3 *monitor, int64_t end,
			     struct fault_stats *fs)
{
	const struct scenario *sc = w->sc;

	while (now_ms() + w->on_ms <= end) {
		unsigned before = fault_proxy_requests(w->fp);

		set_fault(w, sc->param);
		atomic_fetch_add(&w->window, 1);
		fs->windows++;
		sample_until(monitor, now_ms() + w->on_ms, fs);
		fs->requests_under_fault +=
		    fault_proxy_requests(w->fp) - before;
		atomic_fetch_add(&w->window, 1);
		ck_assert_int_eq(fault_proxy_clear(w->fp), 0);
		fs->heal_ms = now_ms();
		sample_until(monitor, now_ms() + w->off_ms, NULL);
	}
}

/* Arm a one-shot fault again each time it fired, until end. */
static void drive_oneshot(struct world *w, int64_t end, struct fault_stats *fs)
{
	const struct scenario *sc = w->sc;
	unsigned fired = fault_proxy_fired(w->fp);
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	int param = 0;

	set_fault(w, param);
	fs->arms++;
	atomic_fetch_add(&w->window, 1);
	while (now_ms() < end) {
		if (fault_proxy_fired(w->fp) == fired) {
			rfx_sleep_ms(5);
			continue;
		}
		fired = fault_proxy_fired(w->fp);
		/* A short breath: some exchanges go through between faults,
		 * as on a flaky network. */
		rfx_sleep_ms((long)(rnd(&rng) % 40));
		param = (param + 1) % (sc->param + 1);
		set_fault(w, param);
		fs->arms++;
	}
	atomic_fetch_add(&w->window, 1);
	ck_assert_int_eq(fault_proxy_clear(w->fp), 0);
	fs->heal_ms = now_ms();
}

/* ---------------------------------------------------------------------- */
/* after the heal: the checks */

/* Problems found, printed and asserted at the end. */
struct problems {
	struct text t;
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
	text_printf(&p->t, "\n  - %s", s);
	free(s);
	p->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_attempt(const void *a, const void *b)
{
	return strcmp(((const struct attempt *)a)->id,
		      ((const struct attempt *)b)->id);
}

struct accounting {
	long count[4];        /* all writers, by outcome */
	long wrong[4];        /* by outcome: in the ledger or not, wrongly */
	long unknown_applied; /* of the unknown, in the ledger */
	long ledger_rows;
};

/* Every write against the primary's ledger. */
static void account(const char *url, struct wlog *const *logs, int nlogs,
		    struct accounting *acc, struct problems *p)
{
	struct text ids = {NULL, 0, 0};
	struct attempt *all;
	char **rows = NULL, *line;
	size_t n = 0, nrows = 0, cap = 0, i;
	int k, o, shown = 0;

	memset(acc, 0, sizeof *acc);
	primary_rows(url, "SELECT id FROM ledger ORDER BY id", &ids);
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
		if (o == OUT_UNKNOWN) {
			acc->unknown_applied += found;
		} else if (found != (o == OUT_ACKED)) {
			acc->wrong[o]++;
			if (shown++ < 5)
				problem(p,
					"write %s: %s (code %d), but %s the "
					"primary's ledger",
					id, outcome_name[o], all[i].code,
					found ? "in" : "not in");
		}
	}
	for (o = 0; o < 4; o++)
		if (acc->wrong[o] > 0)
			problem(p,
				"%ld of %ld writes %s %s the primary's ledger",
				acc->wrong[o], acc->count[o], outcome_name[o],
				o == OUT_ACKED ? "are missing from" : "are in");
	/* Nothing in the ledger that no writer attempted (a write applied
	 * twice would fail its primary key). */
	for (i = 0; i < nrows; i++) {
		struct attempt key;

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
	struct text ic = {NULL, 0, 0};
	int64_t total = rfx_primary_query_int(url, "SELECT sum(bal) FROM "
						   "accounts");
	int64_t seq = rfx_primary_query_int(url, "SELECT v FROM meta WHERE k "
						 "= 'seq'");
	int64_t rows =
	    rfx_primary_query_int(url, "SELECT count(*) FROM ledger");
	int64_t bad = rfx_primary_query_int(url, RECONCILE_SQL);

	if (total != TOTAL)
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
	primary_rows(url, "PRAGMA integrity_check", &ic);
	if (strcmp(ic.p, "ok\n") != 0)
		problem(p, "integrity_check on the primary: %s", ic.p);
	free(ic.p);
}

/* Wait (without asking for a sync: the replica must get there by itself)
 * until a fresh replica connection reads exactly the primary's digest.
 * The time from the heal, or -1 when it did not happen by the deadline
 * (extended by REPLITE_FAULT_PATIENCE seconds, to see how late it comes). */
static int64_t converge(struct world *w, const struct text *want,
			int64_t heal_ms, struct text *last)
{
	int64_t limit = heal_ms + CONVERGE_MS +
			1000LL * env_int("REPLITE_FAULT_PATIENCE", 0);

	for (;;) {
		sqlite3 *db = rfx_open(w->env.path, fault_proxy_url(w->fp),
				       REPLICA_PARAMS);
		int64_t t = now_ms();

		last->len = 0;
		local_digest(db, last);
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
static void first_difference(const struct text *a, const struct text *b,
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
	struct world w;
	sqlite3 *monitor; /* replite_status() */
	struct rwriter rw[REPLICA_WRITERS];
	struct hwriter hw;
	struct reader rd[READERS];
	struct syncer sy;
	struct wlog *logs[REPLICA_WRITERS + 1];
	struct fault_stats fs;
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
static void run_start(struct run *r, const struct scenario *sc)
{
	const char *port;
	uint64_t seed = (uint64_t)now_ms();
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
	rfx_primary_exec(r->w.env.srv.url, schema_sql);
	r->monitor = open_replica(r);
	ck_assert_int_eq(
	    fixture_query_int(r->monitor, "SELECT count(*) FROM accounts"),
	    ACCOUNTS);
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

	r->t_start = now_ms();
	end = r->t_start + seconds * 1000LL - TAIL_MS;
	for (i = 0; i < REPLICA_WRITERS; i++)
		ck_assert_int_eq(pthread_create(&r->rw[i].thread, NULL,
						rwriter_main, &r->rw[i]),
				 0);
	ck_assert_int_eq(
	    pthread_create(&r->hw.thread, NULL, hwriter_main, &r->hw), 0);
	for (i = 0; i < READERS; i++)
		ck_assert_int_eq(pthread_create(&r->rd[i].thread, NULL,
						reader_main, &r->rd[i]),
				 0);
	ck_assert_int_eq(
	    pthread_create(&r->sy.thread, NULL, syncer_main, &r->sy), 0);

	rfx_sleep_ms(WARM_MS);
	r->fs.heal_ms = now_ms();
	if (r->w.sc->persistent)
		drive_persistent(&r->w, r->monitor, end, &r->fs);
	else
		drive_oneshot(&r->w, end, &r->fs);
	/* Healed: the load goes on a little, then stops. */
	rfx_sleep_ms(TAIL_MS);
	atomic_store(&r->w.stop, 1);
	for (i = 0; i < REPLICA_WRITERS; i++)
		pthread_join(r->rw[i].thread, NULL);
	pthread_join(r->hw.thread, NULL);
	for (i = 0; i < READERS; i++)
		pthread_join(r->rd[i].thread, NULL);
	r->t_stopped = now_ms();
	r->fired = fault_proxy_fired(r->w.fp);
	r->requests = fault_proxy_requests(r->w.fp);
}

/* The replica against the primary, the writes against the ledger. */
static void run_verify(struct run *r)
{
	struct text want = {NULL, 0, 0}, got = {NULL, 0, 0}, ic = {NULL, 0, 0};
	char diff[200];
	json_t *status;
	sqlite3 *db;

	/* The primary no longer changes: its state is the one to reach. */
	primary_digest(r->w.env.srv.url, &want);
	r->converge_ms = converge(&r->w, &want, r->fs.heal_ms, &got);
	if (r->converge_ms < 0) {
		first_difference(&want, &got, diff, sizeof diff);
		problem(&r->p,
			"the replica did not equal the primary within %d ms "
			"of the heal (%" PRId64 " ms after the load stopped; "
			"digest %016" PRIx64 " vs the primary's %016" PRIx64
			"; first difference: %s)",
			CONVERGE_MS, now_ms() - r->t_stopped,
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
	local_rows(db, "PRAGMA integrity_check", &ic);
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
		const struct rwriter *rw = &r->rw[i];

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
	const struct wlog *hl = &r->hw.log;
	int i, o;

	printf("faults %s: %" PRId64 " reads, %" PRId64
	       " violations; replica writes %ld acked / %ld failed / %ld "
	       "unknown (%ld applied) / %ld aborted before commit; primary "
	       "writes %ld acked / %ld failed / %ld unknown; rejected "
	       "transfers %" PRId64 "; converged in %" PRId64 " ms\n",
	       r->w.sc->name, r->reads, r->violations, r->replica[OUT_ACKED],
	       r->replica[OUT_FAILED], r->replica[OUT_UNKNOWN],
	       r->acc.unknown_applied, r->replica[OUT_ABORTED],
	       hl->count[OUT_ACKED], hl->count[OUT_FAILED],
	       hl->count[OUT_UNKNOWN], r->rejected, r->converge_ms);
	printf("  proxy: %u requests, %u faults fired, %d windows, %d arms; "
	       "%ld replica writes disturbed; last_error seen %d times under "
	       "the fault; replite_sync(): %ld ok, %ld failed, the longest "
	       "%" PRId64 " ms\n",
	       r->requests, r->fired, r->fs.windows, r->fs.arms, r->disturbed,
	       r->fs.status_errors, r->sy.ok, r->sy.failed, r->sy.max_ms);
	for (i = 0; i < REPLICA_WRITERS + 1; i++)
		for (o = OUT_FAILED; o <= OUT_UNKNOWN; o++)
			if (r->logs[i]->count[o] > 0)
				printf("  %s writer: %ld %s, first: %s\n",
				       i < REPLICA_WRITERS ? "replica"
							   : "primary",
				       r->logs[i]->count[o], outcome_name[o],
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
	const struct scenario *sc = r->w.sc;
	const struct wlog *hl = &r->hw.log;

	if (r->reads < 10)
		problem(&r->p, "only %" PRId64 " reads", r->reads);
	if (r->violations > 0)
		problem(&r->p, "%" PRId64 " invariant violations, first: %s",
			r->violations, r->first_violation);
	if (r->replica[OUT_ACKED] == 0)
		problem(&r->p, "no write through the replica was acknowledged");
	if (hl->count[OUT_ACKED] == 0)
		problem(&r->p, "no write on the primary was acknowledged");
	if (hl->count[OUT_FAILED] + hl->count[OUT_UNKNOWN] > 0)
		problem(&r->p,
			"the writer on the primary (no fault on its path) "
			"failed: %s",
			hl->first[OUT_FAILED][0] ? hl->first[OUT_FAILED]
						 : hl->first[OUT_UNKNOWN]);
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
		    r->under_fault_min_ms < 2 * LATENCY_MS)
			problem(&r->p,
				"a replica write under %d ms of latency took "
				"only %" PRId64 " ms",
				LATENCY_MS, r->under_fault_min_ms);
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

static void run_scenario(const struct scenario *sc)
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

START_TEST(test_latency)
{
	run_scenario(&sc_latency);
}
END_TEST

START_TEST(test_reset)
{
	run_scenario(&sc_reset);
}
END_TEST

START_TEST(test_cut_header)
{
	run_scenario(&sc_cut_header);
}
END_TEST

START_TEST(test_cut_frame)
{
	run_scenario(&sc_cut_frame);
}
END_TEST

START_TEST(test_cut_boundary)
{
	run_scenario(&sc_cut_boundary);
}
END_TEST

START_TEST(test_stall)
{
	run_scenario(&sc_stall);
}
END_TEST

START_TEST(test_blackhole)
{
	run_scenario(&sc_blackhole);
}
END_TEST

START_TEST(test_refuse)
{
	run_scenario(&sc_refuse);
}
END_TEST

START_TEST(test_corrupt_page)
{
	run_scenario(&sc_corrupt_page);
}
END_TEST

START_TEST(test_corrupt_header)
{
	run_scenario(&sc_corrupt_header);
}
END_TEST

START_TEST(test_lose_answer)
{
	run_scenario(&sc_lose_answer);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_latency,        test_reset,        test_cut_header,
	    test_cut_frame,      test_cut_boundary, test_stall,
	    test_blackhole,      test_refuse,       test_corrupt_page,
	    test_corrupt_header, test_lose_answer,
	};
	int seconds = env_int("REPLITE_FAULT_SECONDS", DEFAULT_SECONDS);
	Suite *s = suite_create("replica_faults");
	size_t i;
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
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
