/* Helpers shared by the tests of the replica read path (test_replica.c and
 * test_replica_{status,open,resume,failures}.c, one theme each): a
 * deadline for waits, the seed data set on the primary, SQL that must fail,
 * and polling a local query. */
#ifndef REPLITE_TEST_REPLICA_TEST_HELPERS_H
#define REPLITE_TEST_REPLICA_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

/* How long a wait for something asynchronous may take before the test
 * fails (never an expectation of speed). */
#define RTH_DEADLINE_MS 10000

/* ---------------------------------------------------------------------- */
/* small helpers */

/* path followed by suffix (malloc'd), e.g. its "-wal" or "-replite". */
char *rth_sibling(const char *path, const char *suffix);

/* What an open as a replica of a plain SQLite file with data says, with
 * a key (encrypted runs: the key is checked first) or without. */
const char *rth_not_a_replica(void);

/* The integer field key of the JSON object o (0 if there is none). */
int64_t rth_jint(json_t *o, const char *key);

/* ---------------------------------------------------------------------- */
/* the primary */

/* The test data set: several tables (one WITHOUT ROWID), an index, and
 * blobs of every tenth item larger than a page (overflow chains). */
extern const char rth_seed_schema[];

/* Rows lo..hi of the three tables (sqlite3_free). */
char *rth_seed_rows(int lo, int hi);

/* A SQLite file holding the seed with rows 1..n, for --import. */
void rth_make_seed_file(const char *path, int n);

/* Every table of the seed (and sqlite_schema) is the same on the
 * connection db and on the primary at url. */
void rth_assert_same_seed(sqlite3 *db, const char *url);

/* ---------------------------------------------------------------------- */
/* the replica */

/* Run sql that must fail; its result code, the extended code and the
 * message. */
int rth_exec_fails(sqlite3 *db, const char *sql, int *xrc, char *msg,
		   size_t msg_len);

/* Poll a local query until it returns want; fails after RTH_DEADLINE_MS.
 * Returns the milliseconds it took (for printing only). */
int64_t rth_poll_until(sqlite3 *db, const char *sql, int64_t want,
		       long every_ms);

#endif
