/* A replica's options, read when the VFS opens a main database file: from
 * the URI parameters of the file name SQLite passes to xOpen, each of
 * sync_url, auth_token, encryption_key and tls_ca_file falling back to an
 * environment variable when absent from the URI (DESIGN.md §2):
 *
 *   parameter         environment             default
 *   sync_url          REPLITE_SYNC_URL        absent (NULL)
 *   auth_token        REPLITE_AUTH_TOKEN      none (NULL)
 *   encryption_key    REPLITE_ENCRYPTION_KEY  none (NULL)
 *   tls_ca_file       REPLITE_CA_FILE         the system's CAs (NULL)
 *   sync_interval     -                       1 second; 0 = explicit only
 *   read_your_writes  -                       1
 *   offline           REPLITE_OFFLINE         0
 *   conflict          -                       rebase (or discard)
 *   write_timeout     -                       10 seconds
 *   as_of             -                       none (a live replica)
 *
 * Durations are non-negative decimal seconds ("1", "0.5", "2.25"), kept in
 * milliseconds (a fraction of a millisecond rounds up, so a positive value
 * never becomes 0); write_timeout must be positive.  Booleans are 0, 1,
 * true, false, yes, no, on, off (any case).  sync_url is normalised by
 * http_client_normalize_url.  tls_ca_file must name a readable file (not a
 * directory) and is kept as an absolute path.  An environment variable set
 * to "" counts as unset; auth_token=, encryption_key= or tls_ca_file= left
 * empty in the URI means "none" and overrides the environment.  A parameter of
 * ours given twice in one URI is refused.  as_of is an RFC 3339 time or
 * GENERATION:FRAME (sync/as_of.h); with as_of, offline=1 in the URI is
 * refused and REPLITE_OFFLINE ignored (an as-of replica is read-only).  Any
 * malformed value fails with a message naming the parameter, the value (never a
 * secret's) and what is expected. */
#ifndef REPLITE_URI_PARAMS_H
#define REPLITE_URI_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"
#include "sync/replica_options.h"

/* Upper bound of sync_interval and write_timeout, in seconds (one year). */
#define URI_PARAMS_MAX_SECONDS 31536000

/* A getenv-like lookup: the value of the variable, or NULL when unset. */
typedef const char *(*uri_params_env_fn)(const char *name);

/* Read the options of the database whose file name is name (the zName of
 * xOpen for a main database; NULL, as for a temporary database, gives the
 * defaults and the environment).  env looks up the environment; NULL means
 * getenv.  Returns 0 with *out filled (release with replica_options_free),
 * or -1 with *out zeroed and the reason in err. */
int uri_params_parse(sqlite3_filename name, uri_params_env_fn env,
		     struct replica_options *out, char *err, size_t err_len);

#endif
