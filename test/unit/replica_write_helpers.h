/* Helpers shared by the tests of the replica write path
 * (test_replica_write.c and test_replica_write_*.c, one theme each):
 * SQL that may fail, the replica compared with the primary, a test's start
 * and end, and a writer retrying on SQLITE_BUSY. */
#ifndef REPLITE_TEST_REPLICA_WRITE_HELPERS_H
#define REPLITE_TEST_REPLICA_WRITE_HELPERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "replica_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

/* Run sql; its result code, with the extended code and the message. */
int rwh_try_exec(sqlite3 *db, const char *sql, int *xrc, char *msg,
		 size_t msg_len);
/* sql must fail with the extended result code want_xrc. */
void rwh_assert_fails_with(sqlite3 *db, const char *sql, int want_xrc,
			   char *msg, size_t msg_len);

/* ---------------------------------------------------------------------- */
/* the primary */

/* The value of an integer query, which must be the same on the replica
 * connection db and on the primary. */
int64_t rwh_both_int(sqlite3 *db, const char *url, const char *sql);
/* PRAGMA integrity_check is "ok" on the replica connection and on the
 * primary. */
void rwh_assert_integrity_both(sqlite3 *db, const char *url);

/* A row of sqlite_schema as text (rfx_assert_same_table). */
#define RWH_SCHEMA_ROW                                                         \
	"type || ',' || name || ',' || tbl_name || ',' || coalesce(sql, '')"

/* ---------------------------------------------------------------------- */
/* the replica */

/* replite_status().last_error (malloc'd), or NULL when it is null. */
char *rwh_last_error(sqlite3 *db);
/* The replica's position equals the primary's head, in the status and in
 * the state file, with no error recorded. */
void rwh_assert_at_head(sqlite3 *db, const char *path, const char *url);
/* Start e (a primary with no extra arguments) and open a connection to
 * its replica in *db, and another in *db2 unless db2 is NULL, both with
 * explicit syncs only (sync_interval=0): the primary's URL. */
const char *rwh_start_explicit(struct rfx_env *e, sqlite3 **db, sqlite3 **db2);
/* The end of a test: db sound on the replica and on the primary, db2
 * (another connection, or NULL) sound too; both closed, e stopped. */
void rwh_finish(struct rfx_env *e, sqlite3 *db, sqlite3 *db2);

/* ---------------------------------------------------------------------- */
/* a writer */

/* A connection writing, maybe in a thread of its own, and what its writes
 * did. */
struct rwh_writer {
	sqlite3 *db;
	pthread_t thread;
	int id;
	int ops;
	/* For incr_main: an increment, an SQL format given the writer's id
	 * and the operation's number. */
	const char *incr;
	int inserted;    /* successful INSERTs */
	int incremented; /* successful counter increments */
	int busy;        /* SQLITE_BUSY results retried */
	int snapshot;    /* of which SQLITE_BUSY_SNAPSHOT */
	int failed;      /* other errors */
	char first_error[256];
};

/* Run sql until it succeeds or fails with something else than BUSY. */
int rwh_writer_exec(struct rwh_writer *w, const char *sql);

#endif
