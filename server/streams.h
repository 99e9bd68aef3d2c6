/* Hrana streams over HTTP: each stream keeps one SQLite connection across
 * requests (so interactive transactions work), is named by an unguessable
 * baton that changes with every request, expires when idle, and their number
 * is bounded. */
#ifndef REPLITE_STREAMS_H
#define REPLITE_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "http_reply.h"

struct streams;
struct metrics_sql;

struct streams_config {
	/* Open a new connection to the live database (through the capturing
	 * VFS).  Returns an SQLite code. */
	int (*open_db)(void *arg, sqlite3 **db);
	void *open_db_arg;
	int max_streams;    /* open streams at most; beyond: 503 */
	int idle_expiry_ms; /* idle streams are closed (their txn rolled back)
			     */
	int64_t statement_timeout_ms;  /* longer statements are interrupted
					* (0: never) */
	struct metrics_sql *sql_stats; /* what statements do; NULL: none */
};

struct streams *streams_new(const struct streams_config *cfg);
void streams_free(struct streams *s);

/* How a pipeline's or a cursor's body and answer are encoded: JSON, or
 * Hrana 3's protobuf (/v3-protobuf/...; hrana_pb.h).  Errors are JSON in
 * both, as sqld's are. */
enum streams_encoding { STREAMS_JSON, STREAMS_PROTOBUF };

/* POST /v2/pipeline, /v3/pipeline (version 2 or 3), /v3-protobuf/pipeline.
 * body is the raw request body; client_fd the requester's socket (-1:
 * unknown), whose departure interrupts a running statement.  Fills reply
 * (the answer, or a 4xx/5xx Hrana error body). */
void streams_pipeline(struct streams *s, int version, int read_only,
		      enum streams_encoding enc, const char *body, size_t len,
		      int client_fd, struct http_reply *reply);
/* POST /v3/cursor (newline-delimited JSON answer) and /v3-protobuf/cursor
 * (length-delimited protobuf). */
void streams_cursor(struct streams *s, int read_only, enum streams_encoding enc,
		    const char *body, size_t len, int client_fd,
		    struct http_reply *reply);
/* POST /v1/execute and /v1/batch (stateless, Hrana 1). */
void streams_v1_execute(struct streams *s, int read_only, const char *body,
			size_t len, int client_fd, struct http_reply *reply);
void streams_v1_batch(struct streams *s, int read_only, const char *body,
		      size_t len, int client_fd, struct http_reply *reply);
/* A connection to the live database for a stream of another transport
 * (ws.c), from the pool of idle connections or newly opened; given back
 * with streams_release_db (rolled back if a transaction is open).  The
 * stream counts against max_streams with the HTTP ones until then: returns
 * SQLITE_FULL (*db NULL) when none is left, or another SQLite code. */
int streams_acquire_db(struct streams *s, sqlite3 **db);
/* The message of a refusal for want of streams, naming the limit. */
void streams_exhausted_message(const struct streams *s, char *buf, size_t n);
/* The statement timeout of the streams' connections (for another
 * transport's: ws_hrana.c). */
int64_t streams_statement_timeout(const struct streams *s);
/* Where the streams' statements are counted (NULL: nowhere). */
struct metrics_sql *streams_sql_stats(const struct streams *s);
void streams_release_db(struct streams *s, sqlite3 *db);
/* Close streams idle for longer than the expiry; called periodically. */
void streams_expire(struct streams *s);
/* Open streams, of every transport. */
int streams_count(struct streams *s);

#endif
