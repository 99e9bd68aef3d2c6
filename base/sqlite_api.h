/* The SQLite API as the replica's modules see it.  Built into the loadable
 * extension (REPLITE_EXTENSION), every sqlite3_* call goes through the
 * routines table SQLite hands to sqlite3_replite_init, so the extension works
 * inside programs that bundle their own SQLite (Node's better-sqlite3, ...)
 * and always talks to the same SQLite as the application.  Built for direct
 * linking (tests, programs calling replite_register), the calls are plain. */
#ifndef REPLITE_SQLITE_API_H
#define REPLITE_SQLITE_API_H

#ifdef REPLITE_EXTENSION
#include <sqlite3ext.h>
extern const sqlite3_api_routines *sqlite3_api;
#else
#include <sqlite3.h>
#endif

#endif
