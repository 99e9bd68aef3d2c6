/* A replica's options, as the VFS reads them from the URI parameters and the
 * environment (vfs/uri_params.h) and as the replica engine uses them
 * (DESIGN.md §2). */
#ifndef REPLITE_REPLICA_OPTIONS_H
#define REPLITE_REPLICA_OPTIONS_H

#include <stdint.h>

#include "sync/as_of.h"

#define REPLICA_OPTIONS_SYNC_INTERVAL_MS 1000
#define REPLICA_OPTIONS_WRITE_TIMEOUT_MS 10000

/* What an offline replica does when the primary moved since the base of its
 * unpushed transactions (DESIGN.md §7). */
enum replica_conflict {
	REPLICA_CONFLICT_REBASE = 0, /* re-apply their row changes on top */
	REPLICA_CONFLICT_DISCARD,    /* drop them, take the primary's state */
};

struct replica_options {
	char *sync_url;       /* malloc'd, normalised; NULL = absent */
	char *auth_token;     /* malloc'd; NULL = none */
	char *encryption_key; /* malloc'd; NULL = none */
	/* malloc'd; NULL = the system's CAs: a PEM file of the CAs that
	 * verify the primary's certificate (https) */
	char *tls_ca_file;
	int64_t sync_interval_ms; /* 0 = only explicit syncs */
	int read_your_writes;     /* 0 or 1 */
	int offline;              /* 0 or 1 */
	enum replica_conflict conflict;
	int64_t write_timeout_ms; /* > 0 */
	/* as_of: a read-only replica of the primary's state at that time or
	 * frame, which never syncs (kind AS_OF_NONE: a live replica). */
	struct as_of as_of;
};

/* Free the strings of o and zero it; o may be zeroed already. */
void replica_options_free(struct replica_options *o);

#endif
