/* Hrana (libSQL's SQL-over-HTTP protocol, versions 1-3) on top of SQLite
 * connections.  This module executes requests for one stream; streams.h
 * owns the streams themselves (batons, expiry, bounds). */
#ifndef REPLITE_HRANA_H
#define REPLITE_HRANA_H

#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "metrics.h"

/* The SQL side of one Hrana stream. */
struct hrana_conn {
	sqlite3 *db;
	int version;   /* 2 or 3: v3 adds get_autocommit, is_autocommit */
	int read_only; /* refuse statements that are not sqlite3_stmt_readonly
			*/
	json_t *sqls;  /* sql_id (decimal text) -> SQL text, from store_sql */
	int tx_read_only; /* the open transaction began with BEGIN READONLY
			     (libSQL's read transactions): refuse writes */
	/* A statement running longer than this is interrupted (0: never;
	 * replite serve --statement-timeout). */
	int64_t timeout_ms;
	int64_t deadline_ms; /* monotonic; while a statement runs */
	int timed_out;       /* the last statement was interrupted so */
	/* The socket of the client waiting for this request's answer (-1:
	 * none): a statement whose client is gone is interrupted, since
	 * nobody will read its answer. */
	int client_fd;
	int client_ws;   /* client_fd carries WebSocket frames */
	int client_gone; /* the last statement was interrupted so */
	unsigned checks; /* progress-handler calls of this statement */
	struct metrics_sql *stats; /* NULL: statements are not counted */
	int64_t started_us;        /* of the running statement, for stats */
	sqlite3_int64 changes_before;
};

void hrana_conn_init(struct hrana_conn *c, sqlite3 *db, int version,
		     int read_only);
void hrana_conn_reset(struct hrana_conn *c); /* frees sqls; not db */

/* The default of replite serve --statement-timeout. */
#define HRANA_DEFAULT_STATEMENT_TIMEOUT_MS 30000

/* Around the stepping of one statement (hrana_timeout.c): its deadline
 * (c->timeout_ms from now) and the progress handler that enforces it, set
 * per statement because the connection may be another stream's next
 * time.  The error of a statement that failed with rc: one that names the
 * timeout when it was interrupted for it. */
void hrana_statement_begins(struct hrana_conn *c);
/* rc: the last sqlite3_step's; rows: the rows it returned (counted into
 * c->stats with the rest of what the statement did). */
void hrana_statement_ends(struct hrana_conn *c, sqlite3_stmt *st, int rc,
			  uint64_t rows);
json_t *hrana_statement_error(struct hrana_conn *c, int rc);

/* Execute one pipeline request object.  Returns a new reference to a
 * StreamResult: {"type":"ok","response":{"type":...}} or
 * {"type":"error","error":{"message":...,"code":...}}.  Sets *close when the
 * request was "close".  Returns NULL only when req is not a valid request
 * object (a protocol error: the caller answers HTTP 400), with *proto_err set
 * to a static message. */
json_t *hrana_execute_request(struct hrana_conn *c, json_t *req, int *close,
			      const char **proto_err);

/* Check the shape of a pipeline request (type, required fields, batch
 * conditions) without executing anything, so that a malformed request is
 * refused before any request of its pipeline runs.  Returns 0, or -1 with
 * *proto_err set to a static message. */
int hrana_check_request(json_t *req, int version, const char **proto_err);
int hrana_check_batch(json_t *batch, int version, const char **proto_err);

/* Execute a Batch ({"steps":[...]}) for /v3/cursor, emitting the cursor
 * entries (step_begin, row, step_end, step_error, error) through emit.
 * Returns 0, or -1 with *proto_err when batch is malformed. */
int hrana_cursor(struct hrana_conn *c, json_t *batch,
		 void (*emit)(void *arg, json_t *entry), void *arg,
		 const char **proto_err);

/* Helpers also used by /v1/execute and /v1/batch. */
json_t *hrana_execute_stmt(struct hrana_conn *c, json_t *stmt, json_t **error);
json_t *hrana_execute_batch(struct hrana_conn *c, json_t *batch,
			    const char **proto_err);

/* Hrana Error objects: {"message", "code"}, and an error of SQLite on db
 * with the code sqld gives it (hrana_values.c). */
json_t *hrana_make_error(const char *message, const char *code);
json_t *hrana_sqlite_error(sqlite3 *db, int rc);

#endif
