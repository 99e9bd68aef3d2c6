/* Fixtures for tests of the replica against a real primary
 * (server_fixture.h): SQL run on the primary over Hrana, and replica
 * connections opened through the VFS "replite" (registered with
 * replite_register, as a program linking replite directly does). */
#ifndef REPLITE_TEST_REPLICA_FIXTURE_H
#define REPLITE_TEST_REPLICA_FIXTURE_H

#include <stdint.h>

#include <sqlite3.h>

#include "server_fixture.h"

/* One test's world: a real primary (started with server_args, may be NULL)
 * and a temporary directory with the path of a replica file in it
 * (dir/app.db).  rfx_env_stop stops the primary and removes the directory. */
struct rfx_env {
	struct server_fixture srv;
	char *dir;
	char *path;
};
void rfx_env_start(struct rfx_env *e, const char *const *server_args);
void rfx_env_stop(struct rfx_env *e);

/* Run SQL (one statement, or several separated by ';' run as one
 * sequence) on the primary at url; the test fails if the primary refuses
 * it. */
void rfx_primary_exec(const char *url, const char *sql);
/* The integer in the first column of the first row of a query run on the
 * primary. */
int64_t rfx_primary_query_int(const char *url, const char *sql);

/* The URI opening db_path as a replica of url with extra parameters (may be
 * NULL or ""; e.g. "sync_interval=0"), sqlite3_malloc'd. */
char *rfx_uri(const char *db_path, const char *url, const char *extra);

/* Open a replica connection; the test fails if it cannot be opened. */
sqlite3 *rfx_open(const char *db_path, const char *url, const char *extra);
/* Try to open one: SQLITE_OK with *db, or the error code with the message
 * in *errmsg (malloc'd) and no connection. */
int rfx_try_open(const char *db_path, const char *url, const char *extra,
		 sqlite3 **db, char **errmsg);

/* Run SELECT replite_sync(): NULL when it succeeded, else its error message
 * (malloc'd). */
char *rfx_sync_error(sqlite3 *db);

/* SELECT replite_sync(): the frame number applied. */
int64_t rfx_sync(sqlite3 *db);
/* A field of replite_status() as an integer (json_extract). */
int64_t rfx_status_int(sqlite3 *db, const char *field);
/* The whole replite_status() text (malloc'd). */
char *rfx_status_text(sqlite3 *db);

#endif
