/* The bank of the fault scenarios and the primary over Hrana
 * (replica_faults_bank.h). */
#include "replica_faults_bank.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

uint64_t rfb_rnd(uint64_t *s)
{
	/* xorshift64*: one generator per thread */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

void rfb_text_add(struct rfb_text *t, const char *s, size_t n)
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

void rfb_text_printf(struct rfb_text *t, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	rfb_text_add(t, s, (size_t)n);
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
CURLcode rfb_hrana_post(CURL *h, const char *url, json_t *request,
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
const char *rfb_hrana_first(json_t *doc, json_t **inner)
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
void rfb_primary_rows(const char *url, const char *sql, struct rfb_text *out)
{
	CURL *h = curl_easy_init();
	json_t *doc = NULL, *inner, *rows, *row;
	const char *type;
	long status;
	CURLcode rc;
	size_t i;

	ck_assert_ptr_nonnull(h);
	rc = rfb_hrana_post(
	    h, url,
	    json_pack("{s:s, s:{s:s}}", "type", "execute", "stmt", "sql", sql),
	    30000, &status, &doc);
	ck_assert_msg(rc == CURLE_OK, "%s on the primary: %s", sql,
		      curl_easy_strerror(rc));
	ck_assert_msg(status == 200 && doc != NULL,
		      "%s on the primary: HTTP %ld", sql, status);
	type = rfb_hrana_first(doc, &inner);
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
			rfb_text_add(out, v, strlen(v));
		rfb_text_add(out, "\n", 1);
	}
	json_decref(doc);
	curl_easy_cleanup(h);
}

/* The same on a replica connection. */
void rfb_local_rows(sqlite3 *db, const char *sql, struct rfb_text *out)
{
	sqlite3_stmt *st;
	int rc;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
		      "%s: %s", sql, sqlite3_errmsg(db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (v != NULL)
			rfb_text_add(out, v, strlen(v));
		rfb_text_add(out, "\n", 1);
	}
	ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

/* ---------------------------------------------------------------------- */
/* the bank */

const char *const rfb_schema_sql =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, "
    "pad BLOB);"
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE ledger(id TEXT PRIMARY KEY, src INTEGER NOT NULL, "
    "dst INTEGER NOT NULL, amount INTEGER NOT NULL, seq INTEGER NOT NULL "
    "UNIQUE);"
    "CREATE INDEX ledger_src ON ledger(src);"
    "CREATE INDEX ledger_dst ON ledger(dst);"
    /* RFB_ACCOUNTS accounts of RFB_START_BALANCE.  The padding spreads them
     * over several pages, so a transfer writes several frames (body faults aim
     * at frames 0 to 2). */
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE "
    "i < 100) INSERT INTO accounts SELECT i, 1000, randomblob(300) FROM n;"
    "INSERT INTO meta VALUES ('seq', 0)";

/* One transfer, the ledger row named id (sqlite3_free). */
char *rfb_transfer_sql(uint64_t *rng, const char *id)
{
	int src = 1 + (int)(rfb_rnd(rng) % RFB_ACCOUNTS);
	int dst =
	    1 + (int)((src + rfb_rnd(rng) % (RFB_ACCOUNTS - 1)) % RFB_ACCOUNTS);
	int amount = 1 + (int)(rfb_rnd(rng) % 50);

	return sqlite3_mprintf(
	    "UPDATE accounts SET bal = bal - %d WHERE id = %d;"
	    "UPDATE accounts SET bal = bal + %d WHERE id = %d;"
	    "UPDATE meta SET v = v + 1 WHERE k = 'seq';"
	    "INSERT INTO ledger(id, src, dst, amount, seq) VALUES ('%q', %d, "
	    "%d, %d, (SELECT v FROM meta WHERE k = 'seq'))",
	    amount, src, amount, dst, id, src, dst, amount);
}

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

void rfb_primary_digest(const char *url, struct rfb_text *out)
{
	size_t i;

	for (i = 0; i < DIGEST_PARTS; i++) {
		rfb_primary_rows(url, digest_sql[i], out);
		rfb_text_add(out, "--\n", 3);
	}
}

void rfb_local_digest(sqlite3 *db, struct rfb_text *out)
{
	size_t i;

	/* One read transaction: the parts of one state. */
	fixture_exec(db, "BEGIN");
	for (i = 0; i < DIGEST_PARTS; i++) {
		rfb_local_rows(db, digest_sql[i], out);
		rfb_text_add(out, "--\n", 3);
	}
	fixture_exec(db, "COMMIT");
}
