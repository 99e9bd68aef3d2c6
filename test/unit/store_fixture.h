/* A primary's store opened in-process on a temporary data directory, with a
 * connection to its live database (test_store, test_group_commit). */
#ifndef REPLITE_TEST_STORE_FIXTURE_H
#define REPLITE_TEST_STORE_FIXTURE_H

#include <sqlite3.h>

#include "server/store.h"

struct fx {
	char *dir;  /* the temporary directory (owned) */
	char *data; /* dir/<name>, the data directory */
	struct store_config cfg;
	struct store *store;
	sqlite3 *db;
};

/* A data directory named name in a new temporary directory (dir NULL), or
 * in dir (copied); the default configuration. */
void fx_init_in(struct fx *f, const char *dir, const char *name);
void fx_init(struct fx *f, const char *name);
/* Open the store and a connection through its capture. */
void fx_open(struct fx *f);
void fx_close(struct fx *f);
/* fx_close, then free and remove the temporary directory. */
void fx_done(struct fx *f);
/* SQL through the store's capture, as a Hrana request runs it: its answer
 * waits until the log is durable (group commit), and so does this. */
void fx_exec(struct fx *f, const char *sql);
/* Two primaries, a and b, opened on data directories seeded from the same
 * file, which seed_sql builds (push tests: frames a logs apply on b). */
void fx_open_pair(struct fx *a, struct fx *b, const char *seed_sql);

#endif
