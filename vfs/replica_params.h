/* A replica's options, read when the VFS opens a main database file: from
 * the URI parameters of the file name SQLite passes to xOpen, each of
 * sync_url, auth_token and encryption_key falling back to an environment
 * variable when absent from the URI (DESIGN.md §2):
 *
 *   parameter         environment             default
 *   sync_url          REPLITE_SYNC_URL        absent (NULL)
 *   auth_token        REPLITE_AUTH_TOKEN      none (NULL)
 *   encryption_key    REPLITE_ENCRYPTION_KEY  none (NULL)
 *   sync_interval     -                       1 second; 0 = explicit only
 *   read_your_writes  -                       1
 *   offline           -                       0
 *   write_timeout     -                       10 seconds
 *
 * Durations are non-negative decimal seconds ("1", "0.5", "2.25"), kept in
 * milliseconds (a fraction of a millisecond rounds up, so a positive value
 * never becomes 0); write_timeout must be positive.  Booleans are 0, 1,
 * true, false, yes, no, on, off (any case).  sync_url is normalised by
 * http_client_normalize_url.  An environment variable set to "" counts as
 * unset; auth_token= or encryption_key= left empty in the URI means "none"
 * and overrides the environment.  A parameter of ours given twice in one
 * URI is refused.  Any malformed value fails with a message naming the
 * parameter, the value (never a secret's) and what is expected. */
#ifndef REPLITE_REPLICA_PARAMS_H
#define REPLITE_REPLICA_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "vfs/sqlite_api.h"

#define REPLICA_PARAMS_SYNC_INTERVAL_MS 1000
#define REPLICA_PARAMS_WRITE_TIMEOUT_MS 10000
/* Upper bound of sync_interval and write_timeout, in seconds (one year). */
#define REPLICA_PARAMS_MAX_SECONDS 31536000

struct replica_params {
	char *sync_url;           /* malloc'd, normalised; NULL = absent */
	char *auth_token;         /* malloc'd; NULL = none */
	char *encryption_key;     /* malloc'd; NULL = none */
	int64_t sync_interval_ms; /* 0 = only explicit syncs */
	int read_your_writes;     /* 0 or 1 */
	int offline;              /* 0 or 1 */
	int64_t write_timeout_ms; /* > 0 */
};

/* A getenv-like lookup: the value of the variable, or NULL when unset. */
typedef const char *(*replica_params_env_fn)(const char *name);

/* Read the options of the database whose file name is name (the zName of
 * xOpen for a main database; NULL, as for a temporary database, gives the
 * defaults and the environment).  env looks up the environment; NULL means
 * getenv.  Returns 0 with *out filled (release with replica_params_free),
 * or -1 with *out zeroed and the reason in err. */
int replica_params_parse(sqlite3_filename name, replica_params_env_fn env,
			 struct replica_params *out, char *err, size_t err_len);

/* Free the strings of p and zero it; p may be zeroed already. */
void replica_params_free(struct replica_params *p);

#endif
