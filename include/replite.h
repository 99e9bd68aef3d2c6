/* replite: embedded replicas of a remote SQLite primary.
 *
 * Public C API for programs that link replite directly (the static library
 * libreplite_replica.a with the system SQLite) instead of loading the
 * extension libreplite.so.  Either way, a replica is then opened as
 *
 *   sqlite3_open_v2("file:app.db?vfs=replite&sync_url=http://host:8080",
 *                   &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
 *                   SQLITE_OPEN_URI, NULL);
 *
 * and controlled with PRAGMA replite_sync / replite_status or the SQL
 * functions replite_sync() / replite_status() (README.md). */
#ifndef REPLITE_H
#define REPLITE_H

#ifdef __cplusplus
extern "C" {
#endif

#define REPLITE_VERSION_MAJOR 0
#define REPLITE_VERSION_MINOR 1
#define REPLITE_VERSION_PATCH 0

/* Page size replicas and the primary exchange (the libSQL clients hard-code
 * it): databases served by `replite serve` always use it. */
#define REPLITE_PAGE_SIZE 4096

/* Register the VFS "replite" (not as the default VFS) and, as an automatic
 * extension, the SQL functions on every connection opened afterwards.  Safe
 * to call more than once.  Returns an SQLite result code.  (A loaded
 * extension does this in its entry point, sqlite3_replite_init.) */
int replite_register(void);

#ifdef __cplusplus
}
#endif

#endif
