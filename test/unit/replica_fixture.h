/* Fixtures for tests of the replica against a real primary
 * (server_fixture.h): SQL run on the primary over Hrana, and replica
 * connections opened through the VFS "replite" (registered with
 * replite_register, as a program linking replite directly does). */
#ifndef REPLITE_TEST_REPLICA_FIXTURE_H
#define REPLITE_TEST_REPLICA_FIXTURE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
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

/* A primary that can stop and start again with the same data (kept in
 * dir/primary, apart from srv.dir), and the path of a replica file in dir
 * (dir/app.db). */
struct rfx_durable {
	struct server_fixture srv;
	char *dir;
	char *data;
	char *path;
	char url[64];    /* where the primary was first started */
	char listen[64]; /* the same as host:port */
};
/* Start it, with one more argument for the primary unless extra is NULL
 * (e.g. "--log-requests"). */
void rfx_durable_start(struct rfx_durable *d, const char *extra);
/* Start the primary again after it stopped (server_fixture_stop, or killed
 * with srv.pid set to 0) with the same data, at its first address or, unless
 * same_address, at a new one. */
void rfx_durable_restart(struct rfx_durable *d, int same_address);
/* Stop the primary and remove the directory. */
void rfx_durable_stop(struct rfx_durable *d);

/* The body of a Hrana v2 pipeline request (malloc'd) running sql: as one
 * statement (execute, its rows returned) or as a sequence of statements
 * separated by ';', then closing the stream. */
char *rfx_pipeline_body(const char *sql, int execute);

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

/* ---------------------------------------------------------------------- */
/* the stock SQLite on a replica's file, in plain and encrypted runs */

/* Is this run encrypting every replica (REPLITE_ENCRYPTION_KEY set, which
 * the URI parameter falls back to; scripts/test runs replica suites again
 * so)? */
int rfx_encrypted(void);
/* The VFS through which a stock SQLite (no replite) opens the replica file
 * at path: NULL (the default) in plain runs; in encrypted runs the replite
 * cipher VFS, with path added to it under the key and the salt of path's
 * key file (one user more: rfx_plain_vfs_release), so the stock SQLite
 * reads and writes the pages as an application holding the key would.  No
 * Check assertions (plain readers run in child processes): when that
 * fails, a VFS name nothing has, so the open fails naming it. */
const char *rfx_plain_vfs(const char *path);
/* One user of path less on the cipher VFS (nothing in plain runs). */
void rfx_plain_vfs_release(const char *path);
/* Open the replica file at path with the stock SQLite through
 * rfx_plain_vfs (flags: SQLITE_OPEN_*); the test fails if it cannot.
 * Close it with rfx_plain_close. */
sqlite3 *rfx_plain_open(const char *path, int flags);
/* sqlite3_close, then rfx_plain_vfs_release of its file: the result of
 * sqlite3_close. */
int rfx_plain_close(sqlite3 *db);

/* ---------------------------------------------------------------------- */
/* helpers shared by the replica tests */

/* Milliseconds on the monotonic clock; sleep for ms milliseconds. */
int64_t rfx_now_ms(void);
void rfx_sleep_ms(long ms);

/* The whole file at path (malloc'd, NUL terminated, its length in *len
 * when len is not NULL), or NULL when it does not exist. */
char *rfx_slurp(const char *path, size_t *len);

/* Occurrences of needle in the server's log (with --log-requests, one JSON
 * object per answered request: server/access_log.h). */
int rfx_log_count(const struct server_fixture *srv, const char *needle);
/* Needles: a bootstrap's GET /export/G, a push's POST /sync/... */
#define RFX_LOG_EXPORT "\"method\":\"GET\",\"route\":\"/export/"
#define RFX_LOG_PUSH "\"method\":\"POST\",\"route\":\"/sync/"

#define RFX_ASSERT_HAS(text, needle)                                           \
	ck_assert_msg(strstr((text), (needle)) != NULL,                        \
		      "expected \"%s\" in: %s", (needle), (text))

/* What the primary's GET /info says. */
struct rfx_info {
	uint32_t generation; /* current_generation */
	uint32_t max_frame_no;
	uint32_t oldest_generation;
	char database_id[128];
	char checksum[17]; /* "" when not reported */
};
/* GET /info from the primary at url (with a bearer token when token is not
 * NULL). */
void rfx_primary_info(const char *url, const char *token, struct rfx_info *out);

/* rfx_primary_query_int with a bearer token (NULL: none). */
int64_t rfx_primary_query_int_tok(const char *url, const char *token,
				  const char *sql);

/* A hash-like aggregate of a table (sqlite3_free): the row count, and for
 * every row (the expression row gives it as text) its length and 64
 * characters sampled across its whole text, so a wrong overflow page
 * shows. */
char *rfx_digest_sql(const char *table, const char *row);
/* The table has the same digest on the connection db and on the primary. */
void rfx_assert_same_table(sqlite3 *db, const char *url, const char *table,
			   const char *row);

/* replite_status() parsed (json_decref). */
json_t *rfx_status_json(sqlite3 *db);
/* SELECT replite_conflicts() parsed (a JSON array; json_decref). */
json_t *rfx_conflicts(sqlite3 *db);
/* integrity_check ok, and replite_verify() says the file matches the
 * primary. */
void rfx_assert_verified(sqlite3 *db);
/* The state file beside db_path (db_path-replite), parsed (json_decref). */
json_t *rfx_state_json(const char *db_path);
/* An integer field of that state file. */
int64_t rfx_state_int(const char *db_path, const char *key);

/* An Ed25519 key pair made in dir with the openssl command: the private
 * key's path (malloc'd), the public key's in *pub_path (malloc'd); NULL
 * (and *pub_path NULL) when there is no openssl command. */
char *rfx_make_ed25519_key(const char *dir, char **pub_path);
/* A JWT with claims (JSON text) signed by the Ed25519 key in key_pem, with
 * scratch files in dir (malloc'd). */
char *rfx_sign_token(const char *dir, const char *key_pem, const char *claims);
/* rfx_env_start for the tests of tokens: the primary accepts only tokens
 * signed by an Ed25519 key made in e->dir, whose private key's path goes
 * in *key (malloc'd, for rfx_sign_token); REPLITE_AUTH_TOKEN is unset.  0
 * when there is no openssl command: then nothing is left to stop, it
 * printed that the test named test is skipped, and the test should
 * return. */
int rfx_env_start_auth(struct rfx_env *e, const char *test, char **key);

/* A thread that reads on db in a loop until stopped, checking an invariant
 * the writes keep: every read of sql (one row of two integers) must give
 * want[0] and want[1].  Readers never seeing part of a transaction is
 * what it shows (test_replica, test_replica_squash). */
struct rfx_reader {
	sqlite3 *db;
	const char *sql;
	int64_t want[2];
	pthread_t thread;
	int stop;
	long reads;
	long bad;
	char first_bad[256];
};
void rfx_reader_start(struct rfx_reader *r, sqlite3 *db, const char *sql,
		      int64_t want0, int64_t want1);
/* Stop it and wait for it; r->reads and r->bad are then final. */
void rfx_reader_stop(struct rfx_reader *r);

/* The cipher of the encrypted replica at db_path under the key in
 * REPLITE_ENCRYPTION_KEY (the suites' encrypted mode), from its key file's
 * salt; NULL when no key is set.  NULL too, with the cause on stderr, when
 * there is no key file or the key does not parse: what the caller then
 * opens fails, saying it is encrypted.  Free with cipher_free. */
struct cipher;
struct cipher *rfx_key_cipher(const char *db_path);

/* Keep SQLite's log (SQLITE_CONFIG_LOG) for rfx_log_seen; before SQLite
 * initialises (rfx_run_tests calls it). */
void rfx_log_capture(void);
/* Has SQLite's log (set by rfx_log_capture) said needle, in this process? */
int rfx_log_seen(const char *needle);

/* Run tests[0..n-1] as the suite name, each a test case of its own named
 * after it (CK_RUN_CASE=name runs one) with a timeout of 120 s: the
 * process's exit code. */
int rfx_run_tests(const char *name, const TTest *const *tests, size_t n);

#endif
