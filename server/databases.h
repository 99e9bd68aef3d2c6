/* Many databases in one primary (issue 12).  Each database has a directory
 * of its own holding a complete store (store.h: its frame log and
 * generations, its database id, its retention and its write lock), and its
 * own Hrana streams and replica table.
 *
 *   DATA_DIR/                 the default database ("default", as sqld
 *                             names it), answering at the root URL as
 *                             before
 *   DATA_DIR/databases/NAME/  database NAME, answering under /db/NAME/
 *
 * Creating and deleting are atomic on disk: a database is built in
 * databases/.creating-NAME-*, then renamed into place; a deleted one is
 * first renamed to databases/.deleting-NAME-*, then removed.  Start-up
 * removes what an interrupted create or delete left, so a database is
 * either there, complete, or not at all.
 *
 * Requests hold a database (databases_get/_put): one deleted meanwhile
 * is closed, and its files removed, when the last holder lets go. */
#ifndef REPLITE_DATABASES_H
#define REPLITE_DATABASES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "replicas.h"
#include "store.h"
#include "streams.h"

#define DATABASES_DEFAULT "default"
#define DATABASES_NAME_MAX 63

struct database {
	char name[DATABASES_NAME_MAX + 1];
	struct store *store;
	struct streams *streams;
	struct replicas *replicas;
};

struct databases_config {
	const char *data_dir;
	/* Seeds a new default database (replite serve --import). */
	const char *import_path;
	/* Templates for every database's store and streams (data_dir,
	 * import_path, open_db and open_db_arg are set per database). */
	struct store_config store;
	struct streams_config streams;
	int64_t replica_expiry_ms;
	/* Every store's commit listener (store_set_listener). */
	void (*listener)(void *arg);
	void *listener_arg;
};

struct databases;

/* Open the default database and every named one found, after removing
 * what interrupted creates and deletes left.  Returns 0, or -1 with the
 * cause in err. */
int databases_open(const struct databases_config *cfg, struct databases **out,
		   char *err, size_t n);
void databases_close(struct databases *d);

/* Is name a valid database name: 1-63 of [a-z0-9_-], starting and ending
 * with a letter or digit (a DNS label, so that it can be a Host's first
 * label; lowercase only, since host names are case-insensitive). */
int databases_name_valid(const char *name);
/* Names no database may take, since they are path segments of the routes
 * (v1, v2, v3, v3-protobuf, and DATABASES_DEFAULT). */
int databases_name_reserved(const char *name);

/* The database named name (NULL or DATABASES_DEFAULT: the default one),
 * held until databases_put; NULL when there is none. */
struct database *databases_get(struct databases *d, const char *name);
void databases_put(struct database *db); /* NULL: nothing */
/* Another hold on a database already held. */
struct database *databases_hold(struct database *db);
/* Whether a database of that name exists now (no hold). */
int databases_exists(struct databases *d, const char *name);

/* Create database name, empty, with a new database id, and its own
 * retention when retention_ms >= 0 (else the server's).  Returns 0; -1
 * with the cause in err and *status the HTTP status to answer (400 bad
 * name, 409 exists, 500 failure). */
int databases_create(struct databases *d, const char *name,
		     int64_t retention_ms, int *status, char *err, size_t n);
/* A state to fork: the current one, the one as of a time, or the one
 * after a commit frame of a generation (0: its base). */
enum databases_at_kind {
	DATABASES_AT_NOW,
	DATABASES_AT_TIME,
	DATABASES_AT_FRAME,
};
struct databases_at {
	enum databases_at_kind kind;
	int64_t unix_ms;     /* DATABASES_AT_TIME */
	uint32_t generation; /* DATABASES_AT_FRAME */
	uint32_t frame;
};
/* The state named by a timestamp (an RFC 3339 string, clock.h) or a
 * frame ("GENERATION:FRAME"), either of them NULL or JSON null, neither:
 * now.  Returns 0, or -1 with err and *code (INVALID_TIMESTAMP,
 * INVALID_FRAME, INVALID_POINT). */
int databases_parse_at(json_t *timestamp, json_t *frame,
		       struct databases_at *at, const char **code, char *err,
		       size_t n);
/* Resolve at to a state of db (store_locate_*): 0, or -1 with err naming
 * why it is not available. */
int databases_locate(struct database *db, const struct databases_at *at,
		     struct store_point *out, char *err, size_t n);
/* Create database `to` as a copy of database `from` (NULL or
 * DATABASES_DEFAULT: the default one) in the state `at` (store_fork): its
 * own database id, generation 1 holding that state.  Returns 0 with the
 * state in *point; -1 with err, *status (404 no `from`, 400 bad name or a
 * state not available, 409 `to` exists, 500) and for a state not
 * available *code "POINT_NOT_AVAILABLE" (else NULL). */
int databases_fork(struct databases *d, const char *from, const char *to,
		   const struct databases_at *at, struct store_point *point,
		   int *status, const char **code, char *err, size_t n);
/* Delete database name (not the default one): same conventions (404 when
 * there is none, 400 for the default). */
int databases_delete(struct databases *d, const char *name, int *status,
		     char *err, size_t n);
/* [{"name", "database_id", "generation", "frame_no"}], default first. */
json_t *databases_list(struct databases *d);

/* Periodic work of every database: stream and replica expiry, store
 * maintenance (rollover, checkpoints, retention). */
void databases_maintain(struct databases *d, int64_t now_ms);
/* Each database in turn, held during fn. */
void databases_each(struct databases *d,
		    void (*fn)(void *arg, struct database *db), void *arg);

#endif
