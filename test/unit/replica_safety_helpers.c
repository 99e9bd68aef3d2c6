/* The workload of the safety tests of the replica read path
 * (replica_safety_helpers.h): the model of the database at one version,
 * reading and checking a replica's state, and the writer thread that
 * commits the workload on the primary. */
#include "replica_safety_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "sync/http_client.h"

#define INITIAL_BALANCE 1000
#define TOTAL ((int64_t)RSH_N_ACCOUNTS * INITIAL_BALANCE)
#define FILLER_LEN 900 /* per account: about 4 accounts per page */
#define FILLER_STAMP 1000000
#define OVERFLOW_BYTES 4092 /* payload of one overflow page */
#define BIG_PAGES 4300      /* a big transaction: more than 4096 frames */
#define MAX_TRANSFERS 6

/* The same text, identical on the primary and on a replica: every row of
 * every table but the blob contents (checked against their pattern). */
#define DIGEST_SQL                                                             \
	"SELECT (SELECT version FROM meta) || '|' || "                         \
	"(SELECT group_concat(id || ':' || balance || ':' || version, ',') "   \
	"FROM (SELECT id, balance, version FROM accounts ORDER BY id)) || "    \
	"'|' || ifnull((SELECT group_concat(id || ':' || ver || ':' || "       \
	"length(v), ',') FROM (SELECT id, ver, v FROM pad ORDER BY id)), '') " \
	"|| '|' || ifnull((SELECT group_concat(id || ':' || ver || ':' || "    \
	"length(v), ',') FROM big), '') || '|' || (SELECT group_concat(type "  \
	"|| ' ' || name || ' ' || ifnull(sql, ''), ';') FROM (SELECT * FROM "  \
	"sqlite_schema ORDER BY name))"

/* ---------------------------------------------------------------------- */
/* the state of the database at one version */

static void state_init(struct rsh_state *s)
{
	int i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < RSH_N_ACCOUNTS; i++)
		s->bal[i] = INITIAL_BALANCE;
	for (i = 0; i < RSH_N_PAD; i++)
		s->pad_ver[i] = s->pad_len[i] = -1;
	s->big_ver = s->big_len = -1;
}

uint64_t rsh_state_hash(const struct rsh_state *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < sizeof *s; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int sql_fail(sqlite3 *db, const char *what, char *why, size_t why_len)
{
	snprintf(why, why_len, "%s: %s (%d)", what, sqlite3_errmsg(db),
		 sqlite3_extended_errcode(db));
	return RSH_SQL;
}

/* Read the rows of table pad or big (id, ver, length(v), and with
 * content the blob, checked against its pattern) into s, recording a
 * violation in *out (described in why unless one already was).  Returns
 * RSH_OK or RSH_SQL (an error, in why). */
static int read_blobs(sqlite3 *db, const char *table, int content,
		      struct rsh_state *s, int *out, char *why, size_t why_len)
{
	int big = strcmp(table, "big") == 0;
	sqlite3_stmt *st = NULL;
	char sql[64];
	int rc;

	snprintf(sql, sizeof sql, "SELECT id, ver, length(v)%s FROM %s",
		 content ? ", v" : "", table);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	snprintf(sql, sizeof sql, "SELECT %s", table);
	if (rc != SQLITE_OK)
		return sql_fail(db, sql, why, why_len);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t ver = sqlite3_column_int64(st, 1);
		int64_t len = sqlite3_column_int64(st, 2);

		if (big ? id != 1 : id < 0 || id >= RSH_N_PAD) {
			if (*out == RSH_OK)
				snprintf(why, why_len, "%s row id %lld", table,
					 (long long)id);
			*out = RSH_BAD;
			if (!big)
				continue;
		}
		if (big) {
			s->big_ver = ver;
			s->big_len = len;
		} else {
			s->pad_ver[id] = ver;
			s->pad_len[id] = len;
		}
		if (content && *out == RSH_OK &&
		    (sqlite3_column_bytes(st, 3) != len ||
		     !pfx_pattern_ok(sqlite3_column_blob(st, 3), len, ver))) {
			if (big)
				snprintf(why, why_len,
					 "big (version %lld): the blob is not "
					 "its pattern",
					 (long long)ver);
			else
				snprintf(why, why_len,
					 "pad %lld (version %lld, %lld bytes): "
					 "the blob is not its pattern",
					 (long long)id, (long long)ver,
					 (long long)len);
			*out = RSH_BAD;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(db, sql, why, why_len);
	return RSH_OK;
}

/* Read the whole state of db (inside the caller's read transaction, if
 * any).  content: also check every blob against its pattern.  Returns
 * RSH_OK, RSH_BAD (a violation, described in why), RSH_SQL (an error) or
 * RSH_EMPTY (a database with no schema yet). */
int rsh_read_state(sqlite3 *db, struct rsh_state *s, int content, char *why,
		   size_t why_len)
{
	sqlite3_stmt *st = NULL;
	int rc, i, rows = 0, out = RSH_OK;

	state_init(s);
	for (i = 0; i < RSH_N_ACCOUNTS; i++)
		s->bal[i] = 0;
	rc = sqlite3_prepare_v2(db, "SELECT version FROM meta WHERE id = 1", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		int64_t tables = -1;
		sqlite3_stmt *q = NULL;

		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema",
				       -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			tables = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (tables == 0)
			return RSH_EMPTY;
		return sql_fail(db, "SELECT version", why, why_len);
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE) {
			snprintf(why, why_len, "no version row");
			return RSH_BAD;
		}
		return sql_fail(db, "SELECT version", why, why_len);
	}
	s->version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);

	rc = sqlite3_prepare_v2(
	    db,
	    content ? "SELECT id, balance, version, filler FROM accounts "
		      "ORDER BY id"
		    : "SELECT id, balance, version FROM accounts ORDER BY id",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, "SELECT accounts", why, why_len);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (rows >= RSH_N_ACCOUNTS || id != rows + 1) {
			if (out == RSH_OK)
				snprintf(why, why_len,
					 "account row %d has id %lld", rows,
					 (long long)id);
			out = RSH_BAD;
			rows++;
			continue;
		}
		s->bal[rows] = sqlite3_column_int64(st, 1);
		s->ver[rows] = sqlite3_column_int64(st, 2);
		if (content &&
		    (sqlite3_column_bytes(st, 3) != FILLER_LEN ||
		     !pfx_pattern_ok(sqlite3_column_blob(st, 3), FILLER_LEN,
				     FILLER_STAMP + id)) &&
		    out == RSH_OK) {
			snprintf(why, why_len,
				 "account %lld: filler is not its pattern",
				 (long long)id);
			out = RSH_BAD;
		}
		rows++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(db, "SELECT accounts", why, why_len);
	if (rows != RSH_N_ACCOUNTS && out == RSH_OK) {
		snprintf(why, why_len, "%d accounts instead of %d", rows,
			 RSH_N_ACCOUNTS);
		out = RSH_BAD;
	}

	rc = read_blobs(db, "pad", content, s, &out, why, why_len);
	if (rc == RSH_OK)
		rc = read_blobs(db, "big", content, s, &out, why, why_len);
	return rc == RSH_OK ? out : rc;
}

/* Read the state again in the read transaction that read s: RSH_BAD (a
 * violation, in why) if the snapshot changed, else what rsh_read_state
 * returned. */
int rsh_reread_state(sqlite3 *db, const struct rsh_state *s, int content,
		     char *why, size_t why_len)
{
	struct rsh_state s2;
	int rc = rsh_read_state(db, &s2, content, why, why_len);

	if (rc == RSH_OK && memcmp(s, &s2, sizeof s2) != 0) {
		snprintf(why, why_len,
			 "the snapshot of version %lld changed to version "
			 "%lld within a read transaction",
			 (long long)s->version, (long long)s2.version);
		rc = RSH_BAD;
	}
	return rc;
}

/* The invariants every version satisfies.  Returns 0, or -1 with why. */
int rsh_check_invariants(const struct rsh_state *s, char *why, size_t why_len)
{
	int64_t sum = 0, max_ver = 0, max_pad = 0;
	int i;

	for (i = 0; i < RSH_N_ACCOUNTS; i++) {
		sum += s->bal[i];
		if (s->ver[i] > max_ver)
			max_ver = s->ver[i];
	}
	for (i = 0; i < RSH_N_PAD; i++) {
		if (s->pad_ver[i] < 0)
			continue;
		if (s->pad_ver[i] > max_pad)
			max_pad = s->pad_ver[i];
		if (s->pad_ver[i] % RSH_N_PAD != i ||
		    s->pad_ver[i] + RSH_N_PAD <= s->version) {
			snprintf(why, why_len,
				 "version %lld: pad %d holds version %lld",
				 (long long)s->version, i,
				 (long long)s->pad_ver[i]);
			return -1;
		}
	}
	if (sum != TOTAL) {
		snprintf(why, why_len,
			 "version %lld: the balances sum to %lld, not %lld",
			 (long long)s->version, (long long)sum,
			 (long long)TOTAL);
		return -1;
	}
	if (max_ver != s->version || max_pad != s->version ||
	    s->big_ver > s->version) {
		snprintf(why, why_len,
			 "version %lld, but accounts were last changed by "
			 "version %lld, the padding by %lld, the big row by "
			 "%lld",
			 (long long)s->version, (long long)max_ver,
			 (long long)max_pad, (long long)s->big_ver);
		return -1;
	}
	return 0;
}

void rsh_create_schema(const char *url)
{
	char *filler =
	    sqlite3_mprintf(PFX_PATTERN_SQL, "900", "1000000 + i", "900");
	char *sql = sqlite3_mprintf(
	    "BEGIN;"
	    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT "
	    "NULL, version INTEGER NOT NULL, filler BLOB);"
	    "CREATE TABLE meta(id INTEGER PRIMARY KEY, version INTEGER NOT "
	    "NULL);"
	    "CREATE TABLE pad(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, "
	    "v BLOB);"
	    "CREATE TABLE big(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, "
	    "v BLOB);"
	    "INSERT INTO meta VALUES (1, 0);"
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < %d) INSERT INTO accounts SELECT i, %d, 0, %s FROM c;"
	    "COMMIT",
	    RSH_N_ACCOUNTS, INITIAL_BALANCE, filler);

	ck_assert_int_eq(FILLER_LEN, 900);
	rfx_primary_exec(url, sql);
	sqlite3_free(sql);
	sqlite3_free(filler);
}

/* ---------------------------------------------------------------------- */
/* the writer: a thread committing transactions on the primary */

struct txn {
	int k;
	int from[MAX_TRANSFERS], to[MAX_TRANSFERS], amount[MAX_TRANSFERS];
	int64_t pad_len;
	int64_t big_len; /* 0: no big row */
};

static int64_t blob_pages(int64_t len)
{
	return len <= 3000 ? 0 : (len + OVERFLOW_BYTES - 1) / OVERFLOW_BYTES;
}

static void make_txn(uint64_t *rng, struct txn *t, int64_t big_len)
{
	uint64_t r = pfx_rnd(rng) % 100;
	int i;

	t->k = 2 + (int)(pfx_rnd(rng) % (MAX_TRANSFERS - 1));
	for (i = 0; i < t->k; i++) {
		t->from[i] = (int)(pfx_rnd(rng) % RSH_N_ACCOUNTS);
		do {
			t->to[i] = (int)(pfx_rnd(rng) % RSH_N_ACCOUNTS);
		} while (t->to[i] == t->from[i]);
		t->amount[i] = 1 + (int)(pfx_rnd(rng) % 100);
	}
	if (r < 10) /* fits in the leaf */
		t->pad_len = 1 + (int64_t)(pfx_rnd(rng) % 3000);
	else if (r < 75)
		t->pad_len =
		    (1 + (int64_t)(pfx_rnd(rng) % 24)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
	else /* more than 100 pages */
		t->pad_len =
		    (100 + (int64_t)(pfx_rnd(rng) % 100)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
	t->big_len = big_len;
}

static void apply_txn(struct rsh_state *s, const struct txn *t, int64_t v)
{
	int i;

	for (i = 0; i < t->k; i++) {
		s->bal[t->from[i]] -= t->amount[i];
		s->bal[t->to[i]] += t->amount[i];
		s->ver[t->from[i]] = v;
		s->ver[t->to[i]] = v;
	}
	s->pad_ver[v % RSH_N_PAD] = v;
	s->pad_len[v % RSH_N_PAD] = t->pad_len;
	if (t->big_len > 0) {
		s->big_ver = v;
		s->big_len = t->big_len;
	}
	s->version = v;
}

static void append_pattern(sqlite3_str *q, int64_t len, int64_t stamp)
{
	char l[32], st[32];

	snprintf(l, sizeof l, "%lld", (long long)len);
	snprintf(st, sizeof st, "%lld", (long long)stamp);
	sqlite3_str_appendf(q, PFX_PATTERN_SQL, l, st, l);
}

static char *txn_sql(const struct txn *t, int64_t v)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	int i;

	sqlite3_str_appendall(q, "BEGIN;");
	for (i = 0; i < t->k; i++)
		sqlite3_str_appendf(
		    q,
		    "UPDATE accounts SET balance = balance - %d, version = "
		    "%lld WHERE id = %d;"
		    "UPDATE accounts SET balance = balance + %d, version = "
		    "%lld WHERE id = %d;",
		    t->amount[i], (long long)v, t->from[i] + 1, t->amount[i],
		    (long long)v, t->to[i] + 1);
	sqlite3_str_appendf(q, "UPDATE meta SET version = %lld WHERE id = 1;",
			    (long long)v);
	sqlite3_str_appendf(q,
			    "INSERT OR REPLACE INTO pad(id, ver, v) VALUES "
			    "(%d, %lld, ",
			    (int)(v % RSH_N_PAD), (long long)v);
	append_pattern(q, t->pad_len, v);
	sqlite3_str_appendall(q, ");");
	if (t->big_len > 0) {
		sqlite3_str_appendf(q,
				    "INSERT OR REPLACE INTO big(id, ver, v) "
				    "VALUES (1, %lld, ",
				    (long long)v);
		append_pattern(q, t->big_len, v);
		sqlite3_str_appendall(q, ");");
	}
	sqlite3_str_appendall(q, "COMMIT");
	return sqlite3_str_finish(q);
}

/* Commit the next transaction.  Called by the writer thread, or by the
 * main thread while the writer is paused. */
static int writer_txn(struct rsh_writer *w, int64_t big_len, char *err,
		      size_t err_len)
{
	struct txn t;
	int64_t v, pages;
	char *sql;
	int rc;

	make_txn(&w->rng, &t, big_len);
	pthread_mutex_lock(&w->mu);
	v = w->logged + 1;
	if (v >= RSH_MAX_VERSIONS) {
		pthread_mutex_unlock(&w->mu);
		snprintf(err, err_len, "too many versions");
		return -1;
	}
	apply_txn(&w->model, &t, v);
	w->hash[v] = rsh_state_hash(&w->model);
	w->logged = v;
	pthread_mutex_unlock(&w->mu);

	sql = txn_sql(&t, v);
	rc = pfx_primary_run(w->http, sql, 0, NULL, err, err_len);
	sqlite3_free(sql);
	if (rc != 0)
		return -1;
	pages = blob_pages(t.pad_len) + blob_pages(t.big_len) + 2 * t.k;
	pthread_mutex_lock(&w->mu);
	w->committed = v;
	w->frames_est += pages;
	if (pages > 100)
		w->large_txns++;
	if (blob_pages(t.big_len) > 4096) {
		w->big_txns++;
		w->last_big = v;
	}
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static void *writer_main(void *arg)
{
	struct rsh_writer *w = arg;
	char err[512];

	pthread_mutex_lock(&w->mu);
	for (;;) {
		int64_t big;
		int rc;

		while (!w->stop && (!w->run || w->failed))
			pthread_cond_wait(&w->cond, &w->mu);
		if (w->stop)
			break;
		big = w->big_next;
		w->big_next = 0;
		w->in_txn = 1;
		pthread_mutex_unlock(&w->mu);
		rc = writer_txn(w, big, err, sizeof err);
		pthread_mutex_lock(&w->mu);
		w->in_txn = 0;
		if (rc != 0) {
			w->failed = 1;
			snprintf(w->err, sizeof w->err, "%s", err);
		}
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct rsh_writer *rsh_writer_start(const char *url, uint64_t seed)
{
	struct rsh_writer *w = calloc(1, sizeof *w);

	ck_assert_ptr_nonnull(w);
	w->url = url;
	w->http = pfx_primary_client(url);
	w->rng = seed * 2 + 1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->hash = calloc(RSH_MAX_VERSIONS, sizeof *w->hash);
	w->seen = calloc(RSH_MAX_VERSIONS, 1);
	ck_assert_ptr_nonnull(w->hash);
	ck_assert_ptr_nonnull(w->seen);
	state_init(&w->model);
	w->hash[0] = rsh_state_hash(&w->model);
	ck_assert_int_eq(pthread_create(&w->thread, NULL, writer_main, w), 0);
	return w;
}

void rsh_writer_check(struct rsh_writer *w)
{
	pthread_mutex_lock(&w->mu);
	ck_assert_msg(!w->failed, "the writer failed: %s", w->err);
	pthread_mutex_unlock(&w->mu);
}

void rsh_writer_resume(struct rsh_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->run = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

/* Stop committing; returns once no transaction is in flight. */
void rsh_writer_pause(struct rsh_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->run = 0;
	while (w->in_txn)
		pthread_cond_wait(&w->cond, &w->mu);
	pthread_mutex_unlock(&w->mu);
	rsh_writer_check(w);
}

void rsh_writer_request_big(struct rsh_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->big_next = (int64_t)BIG_PAGES * OVERFLOW_BYTES - 1000;
	pthread_mutex_unlock(&w->mu);
}

/* One transaction now, in this thread (the writer must be paused). */
void rsh_writer_commit_now(struct rsh_writer *w, int big)
{
	char err[512];

	ck_assert_int_eq(
	    writer_txn(w, big ? (int64_t)BIG_PAGES * OVERFLOW_BYTES - 1000 : 0,
		       err, sizeof err),
	    0);
}

int64_t rsh_writer_committed(struct rsh_writer *w)
{
	int64_t v;

	pthread_mutex_lock(&w->mu);
	v = w->committed;
	pthread_mutex_unlock(&w->mu);
	return v;
}

/* Is s exactly the primary's state at its version?  0, or -1 with why. */
int rsh_writer_matches(struct rsh_writer *w, const struct rsh_state *s,
		       char *why, size_t why_len)
{
	uint64_t expected = 0;
	int known;

	pthread_mutex_lock(&w->mu);
	known = s->version >= 0 && s->version <= w->logged;
	if (known)
		expected = w->hash[s->version];
	pthread_mutex_unlock(&w->mu);
	if (!known) {
		snprintf(why, why_len, "version %lld was never written",
			 (long long)s->version);
		return -1;
	}
	if (rsh_state_hash(s) != expected) {
		snprintf(why, why_len,
			 "version %lld: the content differs from the "
			 "primary's at that version",
			 (long long)s->version);
		return -1;
	}
	if (s->version < RSH_MAX_VERSIONS)
		__atomic_store_n(&w->seen[s->version], 1, __ATOMIC_RELAXED);
	return 0;
}

void rsh_writer_stop(struct rsh_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	http_client_free(w->http);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w->hash);
	free(w->seen);
	free(w);
}

int64_t rsh_writer_distinct_seen(struct rsh_writer *w)
{
	int64_t i, n = 0;

	for (i = 0; i < RSH_MAX_VERSIONS; i++)
		n += __atomic_load_n(&w->seen[i], __ATOMIC_RELAXED);
	return n;
}

/* The replica at db equals the primary right now (writer paused): the same
 * digest, the exact state of the primary's version, intact. */
void rsh_assert_equals_primary(sqlite3 *db, struct rsh_writer *w,
			       const char *what)
{
	char *p = pfx_primary_text(w->url, DIGEST_SQL);
	char *r = pfx_local_text(db, DIGEST_SQL);
	char why[512];
	struct rsh_state s;
	int rc;

	ck_assert_msg(strcmp(p, r) == 0,
		      "%s: the replica differs from the primary:\n"
		      "replica %.300s\nprimary %.300s",
		      what, r, p);
	rc = rsh_read_state(db, &s, 1, why, sizeof why);
	ck_assert_msg(rc == RSH_OK, "%s: %s", what, why);
	ck_assert_msg(s.version == rsh_writer_committed(w),
		      "%s: the replica is at version %lld, the primary at %lld",
		      what, (long long)s.version,
		      (long long)rsh_writer_committed(w));
	ck_assert_msg(rsh_writer_matches(w, &s, why, sizeof why) == 0, "%s: %s",
		      what, why);
	fixture_assert_integrity(db);
	free(p);
	free(r);
}
