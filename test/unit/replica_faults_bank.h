/* The bank of the fault scenarios (replica_faults_helpers.h) and the
 * primary over Hrana: the schema and the transfers, the SQL that checks
 * the bank's invariants, ordered digests of every table on the primary and
 * on a replica connection, and small helpers.  Used by
 * replica_faults_load.c (the load) and replica_faults_helpers.c (the
 * checks). */
#ifndef REPLITE_TEST_REPLICA_FAULTS_BANK_H
#define REPLITE_TEST_REPLICA_FAULTS_BANK_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>

#define RFB_ACCOUNTS 100
#define RFB_START_BALANCE 1000
#define RFB_TOTAL ((int64_t)RFB_ACCOUNTS * RFB_START_BALANCE)

/* ---------------------------------------------------------------------- */
/* small helpers */

/* xorshift64*: one generator per thread (no locks, no libc state). */
uint64_t rfb_rnd(uint64_t *s);

/* A growable string. */
struct rfb_text {
	char *p;
	size_t len, cap;
};

/* Append n bytes of s to t (kept NUL-terminated). */
void rfb_text_add(struct rfb_text *t, const char *s, size_t n);
/* Append a formatted string to t. */
void rfb_text_printf(struct rfb_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------- */
/* the primary over Hrana, with libcurl (usable from threads) */

/* POST one request (a JSON object, stolen) and a close to url's
 * /v2/pipeline on h: the transport's result, the HTTP status, the answer
 * parsed when it is JSON (else NULL). */
CURLcode rfb_hrana_post(CURL *h, const char *url, json_t *request,
			long timeout_ms, long *status, json_t **doc);
/* The first result of a pipeline answer: its type ("ok", "error") and the
 * object under "response" or "error" in *inner. */
const char *rfb_hrana_first(json_t *doc, json_t **inner);
/* Run one query on the primary (main thread only: asserts): the first
 * column of every row, each followed by '\n', appended to out. */
void rfb_primary_rows(const char *url, const char *sql, struct rfb_text *out);
/* The same on a replica connection. */
void rfb_local_rows(sqlite3 *db, const char *sql, struct rfb_text *out);

/* ---------------------------------------------------------------------- */
/* the bank */

/* The schema and RFB_ACCOUNTS accounts of RFB_START_BALANCE, for the
 * primary. */
extern const char *const rfb_schema_sql;

/* One transfer, the ledger row named id (sqlite3_free). */
char *rfb_transfer_sql(uint64_t *rng, const char *id);

/* Accounts whose balance is not what the ledger says it should be (1000:
 * RFB_START_BALANCE). */
#define RFB_RECONCILE_SQL                                                      \
	"SELECT count(*) FROM accounts a WHERE bal <> 1000 + "                 \
	"coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0) - "    \
	"coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)"

/* Every row of every table of the primary at url, in a fixed order, as
 * text: equal digests are equal contents. */
void rfb_primary_digest(const char *url, struct rfb_text *out);
/* The same on a replica connection, in one read transaction. */
void rfb_local_digest(sqlite3 *db, struct rfb_text *out);

#endif
