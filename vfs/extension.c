/* The extension's entry point and SQL functions.
 *
 *   .load ./libreplite          (entry point sqlite3_replite_init)
 *
 * registers the VFS "replite" once per process, the SQL functions
 * replite_sync() and replite_status() on the loading connection and, as an
 * automatic extension, on every later connection, and stays loaded
 * (SQLITE_OK_LOAD_PERMANENTLY) since the VFS outlives the connection that
 * loaded it.  The automatic extension also turns a replica open that failed
 * into an error of sqlite3_open_v2 carrying the reason. */
#include "base/sqlite_api.h"

#ifdef REPLITE_EXTENSION
SQLITE_EXTENSION_INIT1
#endif

#include <stdint.h>

#include "include/replite.h"
#include "sync/replica.h"
#include "vfs/replite_vfs.h"

#define REPLITE_VFS_NAME "replite"
/* The oldest SQLite the extension runs in (tested by
 * test/compat/sqlite_hosts): every routine it calls through the host's
 * routines table exists there, and newer ones are called only after a
 * version check. */
#define REPLITE_MIN_SQLITE 3031000
#define REPLITE_DEFAULT_BUSY_TIMEOUT_MS 5000

#ifdef REPLITE_EXTENSION
#define REPLITE_EXPORT __attribute__((visibility("default")))
#else
#define REPLITE_EXPORT
#endif

static sqlite3_file *schema_file(sqlite3 *db, const char *schema)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &f) !=
	    SQLITE_OK)
		return NULL;
	return f;
}

/* The replica of the schema named by the optional first argument (default
 * "main"), or NULL with the function's error set. */
static struct replica *function_replica(sqlite3_context *ctx, int argc,
					sqlite3_value **argv, const char *fn)
{
	sqlite3 *db = sqlite3_context_db_handle(ctx);
	const char *schema = "main";
	struct replica *r;
	char *msg;

	if (argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL)
		schema = (const char *)sqlite3_value_text(argv[0]);
	r = schema ? replite_vfs_replica(schema_file(db, schema)) : NULL;
	if (r == NULL) {
		msg = sqlite3_mprintf("%s(): database %s is not a replica "
				      "(open it with ?vfs=replite)",
				      fn, schema ? schema : "NULL");
		sqlite3_result_error(ctx, msg ? msg : fn, -1);
		sqlite3_free(msg);
	}
	return r;
}

static void fn_sync(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct replica *r = function_replica(ctx, argc, argv, "replite_sync");
	uint32_t frame_no = 0;
	char err[1024];

	if (r == NULL)
		return;
	if (replica_sync(r, &frame_no, err, sizeof err) != 0) {
		sqlite3_result_error(ctx, err, -1);
		return;
	}
	sqlite3_result_int64(ctx, frame_no);
}

static void fn_status(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct replica *r = function_replica(ctx, argc, argv, "replite_status");
	char *json;

	if (r == NULL)
		return;
	json = replica_status_json(r);
	if (json == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, json, -1, sqlite3_free);
}

static void fn_verify(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct replica *r = function_replica(ctx, argc, argv, "replite_verify");
	char err[1024], *json;

	if (r == NULL)
		return;
	json = replica_verify_json(r, err, sizeof err);
	if (json == NULL) {
		sqlite3_result_error(ctx, err, -1);
		return;
	}
	sqlite3_result_text(ctx, json, -1, sqlite3_free);
}

static void fn_conflicts(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct replica *r =
	    function_replica(ctx, argc, argv, "replite_conflicts");
	char err[1024], *json;

	if (r == NULL)
		return;
	json = replica_conflicts_json(r, err, sizeof err);
	if (json == NULL) {
		sqlite3_result_error(ctx, err, -1);
		return;
	}
	sqlite3_result_text(ctx, json, -1, sqlite3_free);
}

static void fn_conflicts_clear(sqlite3_context *ctx, int argc,
			       sqlite3_value **argv)
{
	struct replica *r =
	    function_replica(ctx, argc, argv, "replite_conflicts_clear");
	uint64_t cleared = 0;
	char err[1024];

	if (r == NULL)
		return;
	if (replica_conflicts_clear(r, &cleared, err, sizeof err) != 0) {
		sqlite3_result_error(ctx, err, -1);
		return;
	}
	sqlite3_result_int64(ctx, (sqlite3_int64)cleared);
}

static int register_functions(sqlite3 *db)
{
	static const struct {
		const char *name;
		int argc;
		void (*fn)(sqlite3_context *, int, sqlite3_value **);
	} fns[] = {
	    {"replite_sync", 0, fn_sync},
	    {"replite_sync", 1, fn_sync},
	    {"replite_status", 0, fn_status},
	    {"replite_status", 1, fn_status},
	    {"replite_verify", 0, fn_verify},
	    {"replite_verify", 1, fn_verify},
	    {"replite_conflicts", 0, fn_conflicts},
	    {"replite_conflicts", 1, fn_conflicts},
	    {"replite_conflicts_clear", 0, fn_conflicts_clear},
	    {"replite_conflicts_clear", 1, fn_conflicts_clear},
	};
	size_t i;
	int rc = SQLITE_OK;

	for (i = 0; i < sizeof fns / sizeof fns[0] && rc == SQLITE_OK; i++)
		rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].argc,
						SQLITE_UTF8 | SQLITE_DIRECTONLY,
						NULL, fns[i].fn, NULL, NULL,
						NULL);
	return rc;
}

/* Run for every new connection: report a replica open that failed, then
 * add the functions. */
static int connection_init(sqlite3 *db, char **errmsg,
			   const struct sqlite3_api_routines *api)
{
	sqlite3_file *main;
	const char *why;

	(void)api;
	main = schema_file(db, "main");
	why = replite_vfs_open_error(main);
	if (why != NULL) {
		*errmsg = sqlite3_mprintf("%s", why);
		return SQLITE_CANTOPEN;
	}
	/* A write that finds the replica behind catches up and lets SQLite
	 * retry through the busy handler: give replica connections one
	 * (the application may set its own afterwards). */
	if (replite_vfs_replica(main) != NULL)
		sqlite3_busy_timeout(db, REPLITE_DEFAULT_BUSY_TIMEOUT_MS);
	return register_functions(db);
}

static int register_all(void)
{
	int rc = replite_vfs_register(REPLITE_VFS_NAME);

	if (rc == SQLITE_OK)
		rc = sqlite3_auto_extension((void (*)(void))connection_init);
	return rc;
}

REPLITE_EXPORT int sqlite3_replite_init(sqlite3 *db, char **errmsg,
					const sqlite3_api_routines *api)
{
	int rc;

#ifdef REPLITE_EXTENSION
	SQLITE_EXTENSION_INIT2(api);
#else
	(void)api;
#endif
	if (sqlite3_libversion_number() < REPLITE_MIN_SQLITE) {
		*errmsg = sqlite3_mprintf(
		    "replite: needs SQLite 3.31.0 or later, and this program "
		    "runs SQLite %s",
		    sqlite3_libversion());
		return SQLITE_ERROR;
	}
	rc = register_all();
	if (rc == SQLITE_OK)
		rc = register_functions(db);
	if (rc != SQLITE_OK) {
		*errmsg = sqlite3_mprintf("replite: cannot register: %s",
					  sqlite3_errstr(rc));
		return rc;
	}
	return SQLITE_OK_LOAD_PERMANENTLY;
}

#ifndef REPLITE_EXTENSION
int replite_register(void)
{
	return register_all();
}
#endif
