#include "replica_write_safety_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"
#include "process_fixture.h"

/* ---------------------------------------------------------------------- */
/* common helpers */

int rws_is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY;
}

/* ---------------------------------------------------------------------- */
/* the crash workload */

#define W_ACCOUNTS 200
#define W_INITIAL 1000
#define W_TOTAL ((int64_t)W_ACCOUNTS * W_INITIAL)
#define W_PAD 32
#define W_FILLER 900
#define W_FILLER_STAMP 1000000
#define OVERFLOW_BYTES 4092

struct wstate {
	int64_t version;
	int64_t bal[W_ACCOUNTS], ver[W_ACCOUNTS];
	int64_t pad_ver[W_PAD], pad_len[W_PAD]; /* -1: no row */
	int64_t big_ver, big_len;               /* -1: no row */
};

/* The two transfers of version v (account indexes 0-based). */
static void transfers(int64_t v, int from[2], int to[2], int amt[2])
{
	from[0] = (int)((v * 7919) % W_ACCOUNTS);
	to[0] = (int)((from[0] + 1 + v % (W_ACCOUNTS - 1)) % W_ACCOUNTS);
	amt[0] = (int)(v % 97 + 1);
	from[1] = (int)((v * 104729 + 17) % W_ACCOUNTS);
	to[1] = (int)((from[1] + 1 + (v * 31) % (W_ACCOUNTS - 1)) % W_ACCOUNTS);
	amt[1] = (int)(v % 53 + 1);
}

static void wstate_init(struct wstate *s)
{
	int i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < W_ACCOUNTS; i++)
		s->bal[i] = W_INITIAL;
	for (i = 0; i < W_PAD; i++)
		s->pad_ver[i] = s->pad_len[i] = -1;
	s->big_ver = s->big_len = -1;
}

static void wstate_apply(struct wstate *s, const struct rws_txn *t)
{
	int from[2], to[2], amt[2], i;

	transfers(t->v, from, to, amt);
	for (i = 0; i < 2; i++) {
		s->bal[from[i]] -= amt[i];
		s->bal[to[i]] += amt[i];
		s->ver[from[i]] = t->v;
		s->ver[to[i]] = t->v;
	}
	s->pad_ver[t->v % W_PAD] = t->v;
	s->pad_len[t->v % W_PAD] = t->pad_len;
	if (t->big_len > 0) {
		s->big_ver = t->v;
		s->big_len = t->big_len;
	}
	s->version = t->v;
}

char *rws_pattern(const char *len, const char *stamp)
{
	return sqlite3_mprintf(PFX_PATTERN_SQL, len, stamp, len);
}

char *rws_schema_sql(void)
{
	char *filler = rws_pattern("900", "1000000 + i");
	char *pad = rws_pattern("NEW.pad_len", "NEW.v");
	char *big = rws_pattern("NEW.big_len", "NEW.v");
	char *sql = sqlite3_mprintf(
	    "BEGIN;"
	    "CREATE TABLE meta(id INTEGER PRIMARY KEY, version INTEGER NOT "
	    "NULL);"
	    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT "
	    "NULL, version INTEGER NOT NULL, filler BLOB);"
	    "CREATE TABLE pad(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, v "
	    "BLOB);"
	    "CREATE TABLE big(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, v "
	    "BLOB);"
	    "CREATE TABLE log(v INTEGER PRIMARY KEY, kind INTEGER NOT NULL, "
	    "writer INTEGER NOT NULL, nonce INTEGER NOT NULL, pad_len INTEGER "
	    "NOT NULL, big_len INTEGER NOT NULL, auto INTEGER NOT NULL);"
	    /* A transaction as one statement: INSERT INTO log with auto = 1
	     * (the same changes as the explicit form, see w_txn_sql). */
	    "CREATE TRIGGER log_apply AFTER INSERT ON log WHEN NEW.auto BEGIN "
	    "UPDATE meta SET version = NEW.v WHERE id = 1;"
	    "UPDATE accounts SET balance = balance - (NEW.v %% 97 + 1), "
	    "version = NEW.v WHERE id = (NEW.v * 7919) %% %d + 1;"
	    "UPDATE accounts SET balance = balance + (NEW.v %% 97 + 1), "
	    "version = NEW.v WHERE id = ((NEW.v * 7919) %% %d + 1 + NEW.v %% "
	    "%d) %% %d + 1;"
	    "UPDATE accounts SET balance = balance - (NEW.v %% 53 + 1), "
	    "version = NEW.v WHERE id = (NEW.v * 104729 + 17) %% %d + 1;"
	    "UPDATE accounts SET balance = balance + (NEW.v %% 53 + 1), "
	    "version = NEW.v WHERE id = ((NEW.v * 104729 + 17) %% %d + 1 + "
	    "(NEW.v * 31) %% %d) %% %d + 1;"
	    "INSERT OR REPLACE INTO pad(id, ver, v) VALUES (NEW.v %% %d, "
	    "NEW.v, %s);"
	    "INSERT OR REPLACE INTO big(id, ver, v) SELECT 1, NEW.v, %s WHERE "
	    "NEW.big_len > 0;"
	    "END;"
	    "INSERT INTO meta VALUES (1, 0);"
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < %d) INSERT INTO accounts SELECT i, %d, 0, %s FROM c;"
	    "COMMIT",
	    W_ACCOUNTS, W_ACCOUNTS, W_ACCOUNTS - 1, W_ACCOUNTS, W_ACCOUNTS,
	    W_ACCOUNTS, W_ACCOUNTS - 1, W_ACCOUNTS, W_PAD, pad, big, W_ACCOUNTS,
	    W_INITIAL, filler);

	sqlite3_free(filler);
	sqlite3_free(pad);
	sqlite3_free(big);
	return sql;
}

void rws_make(uint64_t *rng, struct rws_txn *t, int kind, int writer)
{
	memset(t, 0, sizeof *t);
	t->kind = kind;
	t->writer = writer;
	t->nonce = (int64_t)(pfx_rnd(rng) >> 2);
	if (kind == RWS_K_MEDIUM)
		t->pad_len =
		    (5 + (int64_t)(pfx_rnd(rng) % 40)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
	else
		t->pad_len = 1 + (int64_t)(pfx_rnd(rng) % 3000);
	/* More than 1024 pages: a push of several requests. */
	if (kind == RWS_K_BIG)
		t->big_len =
		    (1050 + (int64_t)(pfx_rnd(rng) % 1000)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
}

char *rws_auto_sql(const struct rws_txn *t)
{
	return sqlite3_mprintf(
	    "INSERT INTO log(v, kind, writer, nonce, pad_len, big_len, auto) "
	    "SELECT version + 1, %d, %d, %lld, %lld, %lld, 1 FROM meta WHERE "
	    "id = 1",
	    t->kind, t->writer, (long long)t->nonce, (long long)t->pad_len,
	    (long long)t->big_len);
}

/* The statements of the explicit form of t at version t->v. */
static int w_txn_sql(const struct rws_txn *t, char **stmts)
{
	int from[2], to[2], amt[2], n = 0, i;
	char v[32], len[32];
	char *pat;

	transfers(t->v, from, to, amt);
	snprintf(v, sizeof v, "%lld", (long long)t->v);
	for (i = 0; i < 2; i++) {
		stmts[n++] = sqlite3_mprintf(
		    "UPDATE accounts SET balance = balance - %d, version = %s "
		    "WHERE id = %d",
		    amt[i], v, from[i] + 1);
		if (i == 0)
			stmts[n++] = sqlite3_mprintf(
			    "INSERT INTO log(v, kind, writer, nonce, pad_len, "
			    "big_len, auto) VALUES (%s, %d, %d, %lld, %lld, "
			    "%lld, 0)",
			    v, t->kind, t->writer, (long long)t->nonce,
			    (long long)t->pad_len, (long long)t->big_len);
		stmts[n++] = sqlite3_mprintf(
		    "UPDATE accounts SET balance = balance + %d, version = %s "
		    "WHERE id = %d",
		    amt[i], v, to[i] + 1);
	}
	snprintf(len, sizeof len, "%lld", (long long)t->pad_len);
	pat = rws_pattern(len, v);
	stmts[n++] = sqlite3_mprintf(
	    "INSERT OR REPLACE INTO pad(id, ver, v) VALUES (%d, %s, %s)",
	    (int)(t->v % W_PAD), v, pat);
	sqlite3_free(pat);
	if (t->big_len > 0) {
		snprintf(len, sizeof len, "%lld", (long long)t->big_len);
		pat = rws_pattern(len, v);
		stmts[n++] = sqlite3_mprintf(
		    "INSERT OR REPLACE INTO big(id, ver, v) VALUES (1, %s, %s)",
		    v, pat);
		sqlite3_free(pat);
	}
	stmts[n++] =
	    sqlite3_mprintf("UPDATE meta SET version = %s WHERE id = 1", v);
	return n;
}

int rws_run(sqlite3 *db, struct rws_txn *t, int mode, char *err, size_t err_len)
{
	char *stmts[16];
	sqlite3_stmt *st = NULL;
	int rc, n, i;

	if (mode == 0) {
		char *sql = rws_auto_sql(t);

		t->autoc = 1;
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		snprintf(err, err_len, "autocommit: %s", sqlite3_errmsg(db));
		sqlite3_free(sql);
		return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
	}
	t->autoc = 0;
	rc = sqlite3_exec(db, mode == 1 ? "BEGIN" : "BEGIN IMMEDIATE", NULL,
			  NULL, NULL);
	snprintf(err, err_len, "BEGIN: %s", sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_prepare_v2(db, "SELECT version FROM meta WHERE id = 1", -1,
				&st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		t->v = sqlite3_column_int64(st, 0) + 1;
		rc = SQLITE_OK;
	}
	snprintf(err, err_len, "SELECT version: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto out;
	n = w_txn_sql(t, stmts);
	for (i = 0; i < n; i++) {
		if (rc == SQLITE_OK) {
			rc = sqlite3_exec(db, stmts[i], NULL, NULL, NULL);
			snprintf(err, err_len, "%.60s: %s", stmts[i],
				 sqlite3_errmsg(db));
		}
		sqlite3_free(stmts[i]);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		snprintf(err, err_len, "COMMIT: %s", sqlite3_errmsg(db));
	}
out:
	if (rc != SQLITE_OK) {
		rc = sqlite3_extended_errcode(db);
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* reading and checking a state */

void rws_log_free(struct rws_log *l)
{
	free(l->e);
	memset(l, 0, sizeof *l);
}

static void wlog_push(struct rws_log *l, const struct rws_txn *t)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->e = realloc(l->e, l->cap * sizeof *l->e);
		ck_assert_ptr_nonnull(l->e);
	}
	l->e[l->n++] = *t;
}

void rws_log_parse(const char *text, struct rws_log *l)
{
	const char *p = text;

	memset(l, 0, sizeof *l);
	while (*p != '\0') {
		struct rws_txn t;
		long long f[7];
		char *end;
		int i;

		for (i = 0; i < 7; i++) {
			f[i] = strtoll(p, &end, 10);
			ck_assert_msg(end != p, "bad log text at %.40s", p);
			p = end;
			if (i < 6) {
				ck_assert_int_eq(*p, ',');
				p++;
			}
		}
		t.v = f[0];
		t.kind = (int)f[1];
		t.writer = (int)f[2];
		t.nonce = f[3];
		t.pad_len = f[4];
		t.big_len = f[5];
		t.autoc = (int)f[6];
		wlog_push(l, &t);
		if (*p == ';')
			p++;
	}
}

int rws_log_has_nonce(const struct rws_log *l, int64_t nonce)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->e[i].nonce == nonce)
			return 1;
	}
	return 0;
}

#define BAD(...)                                                               \
	do {                                                                   \
		snprintf(why, why_len, __VA_ARGS__);                           \
		out = RWS_BAD;                                                 \
		goto done;                                                     \
	} while (0)

int rws_read_check(sqlite3 *db, struct rws_log *log, char *why, size_t why_len)
{
	struct wstate model, s;
	sqlite3_stmt *st = NULL;
	int out = RWS_OK, rc, rows;
	size_t i;

	memset(log, 0, sizeof *log);
	if (fixture_query_int(db, "SELECT count(*) FROM sqlite_schema") == 0)
		return RWS_EMPTY;
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT v, kind, writer, nonce, "
					    "pad_len, big_len, auto FROM log "
					    "ORDER BY v",
					    -1, &st, NULL),
			 SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rws_txn t;

		t.v = sqlite3_column_int64(st, 0);
		t.kind = sqlite3_column_int(st, 1);
		t.writer = sqlite3_column_int(st, 2);
		t.nonce = sqlite3_column_int64(st, 3);
		t.pad_len = sqlite3_column_int64(st, 4);
		t.big_len = sqlite3_column_int64(st, 5);
		t.autoc = sqlite3_column_int(st, 6);
		wlog_push(log, &t);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;
	wstate_init(&model);
	for (i = 0; i < log->n; i++) {
		if (log->e[i].v != (int64_t)i + 1)
			BAD("log row %zu has version %lld", i,
			    (long long)log->e[i].v);
		wstate_apply(&model, &log->e[i]);
	}

	wstate_init(&s);
	s.version = fixture_query_int(db, "SELECT version FROM meta");
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT id, balance, version, "
					    "filler FROM accounts ORDER BY id",
					    -1, &st, NULL),
			 SQLITE_OK);
	rows = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		if (id != rows + 1 || rows >= W_ACCOUNTS)
			BAD("account row %d has id %lld", rows, (long long)id);
		s.bal[rows] = sqlite3_column_int64(st, 1);
		s.ver[rows] = sqlite3_column_int64(st, 2);
		if (sqlite3_column_bytes(st, 3) != W_FILLER ||
		    !pfx_pattern_ok(sqlite3_column_blob(st, 3), W_FILLER,
				    W_FILLER_STAMP + id))
			BAD("account %lld: the filler is not its pattern",
			    (long long)id);
		rows++;
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;
	if (rows != W_ACCOUNTS)
		BAD("%d accounts", rows);

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT id, ver, v FROM pad", -1, &st, NULL),
	    SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t ver = sqlite3_column_int64(st, 1);
		int64_t len = sqlite3_column_bytes(st, 2);

		if (id < 0 || id >= W_PAD)
			BAD("pad row id %lld", (long long)id);
		s.pad_ver[id] = ver;
		s.pad_len[id] = len;
		if (!pfx_pattern_ok(sqlite3_column_blob(st, 2), len, ver))
			BAD("pad %lld (version %lld, %lld bytes): the blob is "
			    "not its pattern",
			    (long long)id, (long long)ver, (long long)len);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT id, ver, v FROM big", -1, &st, NULL),
	    SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) != 1)
			BAD("big row id %lld",
			    (long long)sqlite3_column_int64(st, 0));
		s.big_ver = sqlite3_column_int64(st, 1);
		s.big_len = sqlite3_column_bytes(st, 2);
		if (!pfx_pattern_ok(sqlite3_column_blob(st, 2), s.big_len,
				    s.big_ver))
			BAD("big (version %lld): the blob is not its pattern",
			    (long long)s.big_ver);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;

	if (s.version != (int64_t)log->n)
		BAD("meta says version %lld, the log holds %zu transactions",
		    (long long)s.version, log->n);
	for (i = 0; i < W_ACCOUNTS; i++) {
		if (s.bal[i] != model.bal[i] || s.ver[i] != model.ver[i])
			BAD("version %lld: account %zu is %lld (version %lld), "
			    "its log says %lld (version %lld)",
			    (long long)s.version, i + 1, (long long)s.bal[i],
			    (long long)s.ver[i], (long long)model.bal[i],
			    (long long)model.ver[i]);
	}
	for (i = 0; i < W_PAD; i++) {
		if (s.pad_ver[i] != model.pad_ver[i] ||
		    s.pad_len[i] != model.pad_len[i])
			BAD("version %lld: pad %zu is version %lld (%lld "
			    "bytes), its log says %lld (%lld bytes)",
			    (long long)s.version, i, (long long)s.pad_ver[i],
			    (long long)s.pad_len[i],
			    (long long)model.pad_ver[i],
			    (long long)model.pad_len[i]);
	}
	if (s.big_ver != model.big_ver || s.big_len != model.big_len)
		BAD("version %lld: big is version %lld (%lld bytes), its log "
		    "says %lld (%lld bytes)",
		    (long long)s.version, (long long)s.big_ver,
		    (long long)s.big_len, (long long)model.big_ver,
		    (long long)model.big_len);
done:
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return out;
}

#undef BAD

void rws_assert_log_prefix(const struct rws_log *local,
			   const struct rws_log *primary, const char *what)
{
	size_t i;

	ck_assert_msg(local->n <= primary->n,
		      "%s: the file holds version %zu, the primary only %zu: "
		      "a transaction the primary does not have",
		      what, local->n, primary->n);
	for (i = 0; i < local->n; i++) {
		const struct rws_txn *a = &local->e[i], *b = &primary->e[i];

		ck_assert_msg(
		    a->v == b->v && a->kind == b->kind &&
			a->writer == b->writer && a->nonce == b->nonce &&
			a->pad_len == b->pad_len && a->big_len == b->big_len &&
			a->autoc == b->autoc,
		    "%s: version %lld is transaction %lld of writer %d "
		    "locally, transaction %lld of writer %d on the primary: a "
		    "transaction the primary does not have",
		    what, (long long)a->v, (long long)a->nonce, a->writer,
		    (long long)b->nonce, b->writer);
	}
}

int64_t rws_check_plain(const char *path, int allow_empty,
			int checkpoint_on_close, const char *what, void *arg)
{
	struct rws_log *log = arg;
	sqlite3 *db = pfx_open_plain(path, checkpoint_on_close, what);
	char why[512];
	int rc = rws_read_check(db, log, why, sizeof why);

	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	if (rc == RWS_EMPTY) {
		ck_assert_msg(allow_empty,
			      "%s: the database is empty, but its state file "
			      "says it holds frames of the primary",
			      what);
		return -1;
	}
	ck_assert_msg(rc == RWS_OK, "%s: %s", what, why);
	return (int64_t)log->n;
}
