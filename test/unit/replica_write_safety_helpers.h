/* Helpers shared by the safety tests of the replica write path
 * (test_replica_write_safety.c, test_replica_write_converge.c,
 * test_replica_write_lost_updates.c): telling a lost race from a failure,
 * and the workload of the crash test (test_replica_write_safety).
 *
 * The crash workload is self-describing: every transaction appends a row to
 * the table log (its version V, kind, writer, a random nonce, blob sizes)
 * and moves the rest of the database deterministically from version V-1 to
 * V (transfers between accounts chosen by V, a padding blob and sometimes a
 * big blob holding patterns of V).  So the content of any committed state is
 * a function of its log, the log of any state of the primary is a prefix of
 * the primary's log, and a half-applied or foreign transaction shows. */
#ifndef REPLITE_TEST_REPLICA_WRITE_SAFETY_HELPERS_H
#define REPLITE_TEST_REPLICA_WRITE_SAFETY_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* ---------------------------------------------------------------------- */
/* common helpers */

/* Did another writer get there first (retry)? */
int rws_is_busy(int rc);

/* ---------------------------------------------------------------------- */
/* the crash workload */

/* The kinds of transactions: small, with a padding blob of a few overflow
 * pages, with a big blob of more than one push request. */
enum { RWS_K_SMALL, RWS_K_MEDIUM, RWS_K_BIG };
/* Who wrote a transaction (the log's writer): the writer on the primary,
 * the rival replica, the crash writers (from RWS_WRITER_CHILD0 on). */
enum { RWS_WRITER_HRANA = 1, RWS_WRITER_RIVAL = 2, RWS_WRITER_CHILD0 = 10 };

/* Every row of every table but the blob contents (checked against their
 * patterns separately), identical on the primary and on a replica. */
#define RWS_DIGEST_SQL                                                         \
	"SELECT (SELECT version FROM meta) || '|' || (SELECT group_concat(id " \
	"|| ':' || balance || ':' || version, ',') FROM (SELECT id, balance, " \
	"version FROM accounts ORDER BY id)) || '|' || ifnull((SELECT "        \
	"group_concat(id || ':' || ver || ':' || l, ',') FROM (SELECT id, "    \
	"ver, length(v) AS l FROM pad ORDER BY id)), '') || '|' || "           \
	"ifnull((SELECT group_concat(id || ':' || ver || ':' || length(v), "   \
	"',') FROM big), '') || '|' || (SELECT count(*) || ':' || "            \
	"ifnull(max(v), 0) || ':' || ifnull(sum(nonce % 1000003), 0) FROM "    \
	"log) || '|' || (SELECT group_concat(type || ' ' || name || ' ' || "   \
	"ifnull(sql, ''), ';') FROM (SELECT * FROM sqlite_schema ORDER BY "    \
	"name))"

/* The whole log as text (rws_log_parse). */
#define RWS_LOG_SQL                                                            \
	"SELECT ifnull(group_concat(v || ',' || kind || ',' || writer || ',' " \
	"|| nonce || ',' || pad_len || ',' || big_len || ',' || auto, ';'), "  \
	"'') FROM (SELECT * FROM log ORDER BY v)"

/* A transaction: its row of the log. */
struct rws_txn {
	int64_t v;
	int kind, writer, autoc;
	int64_t nonce, pad_len, big_len;
};

/* A log: transactions in order of version. */
struct rws_log {
	struct rws_txn *e;
	size_t n, cap;
};

/* An SQL expression: a blob of len bytes holding the pattern of stamp
 * (both SQL expressions; PFX_PATTERN_SQL), sqlite3_free'd. */
char *rws_pattern(const char *len, const char *stamp);
/* The SQL creating the workload's schema and its version 0 (sqlite3_free). */
char *rws_schema_sql(void);
/* A new transaction of the given kind (its version is decided when it
 * runs). */
void rws_make(uint64_t *rng, struct rws_txn *t, int kind, int writer);
/* The one statement of the autocommit form (the trigger does the rest). */
char *rws_auto_sql(const struct rws_txn *t);
/* Run t once on a replica connection: mode 0 autocommit, 1 BEGIN (read,
 * then write: the snapshot may be stale), 2 BEGIN IMMEDIATE.  Returns
 * SQLITE_OK or the extended code of the failure (rolled back). */
int rws_run(sqlite3 *db, struct rws_txn *t, int mode, char *err,
	    size_t err_len);

/* ---------------------------------------------------------------------- */
/* reading and checking a state */

/* Free a log's transactions; the log is then empty. */
void rws_log_free(struct rws_log *l);
/* Parse the text of RWS_LOG_SQL. */
void rws_log_parse(const char *text, struct rws_log *l);
/* Does the log hold the transaction with this nonce? */
int rws_log_has_nonce(const struct rws_log *l, int64_t nonce);

enum { RWS_OK, RWS_BAD, RWS_EMPTY };
/* Read the whole state of db and check it is self-consistent: its log is
 * versions 1..V and every other row is what that log implies (blobs
 * included).  Fills *log.  Returns RWS_OK, RWS_EMPTY (no schema) or RWS_BAD
 * with why; SQL errors fail the test. */
int rws_read_check(sqlite3 *db, struct rws_log *log, char *why, size_t why_len);
/* local is a prefix of the primary's log: the same transactions. */
void rws_assert_log_prefix(const struct rws_log *local,
			   const struct rws_log *primary, const char *what);
/* Open path with plain SQLite; intact and self-consistent.  Returns its
 * version (-1: empty, if allowed) with its log in *log (a pfx_check_fn; arg
 * is the struct rws_log). */
int64_t rws_check_plain(const char *path, int allow_empty,
			int checkpoint_on_close, const char *what, void *arg);

#endif
