/* The replica object, shared by the files that implement it (replica.h is
 * the interface): replica.c (open, close, the sync thread, status, verify)
 * and replica_write.c (the write path). */
#ifndef REPLITE_REPLICA_INTERNAL_H
#define REPLITE_REPLICA_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "sync/applier.h"
#include "sync/http_client.h"
#include "sync/puller.h"
#include "sync/replica.h"
#include "sync/replica_options.h"

struct replica {
	char *db_path;
	char *state_path;
	struct replica_options params;
	struct applier *applier;
	struct http_client *http;
	struct puller *puller;
	pthread_t thread;
	int thread_started;
	int synced_at_open; /* the file had content: no sync needed to read */
	int file_lost;      /* a state file but no database: download again */
	int catching_up_at_open; /* see replica_state.catching_up */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* Guarded by mu: */
	int closing;
	uint64_t requested; /* on-demand syncs asked for */
	uint64_t served;    /* requests covered by a finished sync */
	int last_rc;        /* of the last finished sync: 0 or -1 */
	char last_error[1024];
	int64_t last_sync_unix_ms;
	int rounds;      /* finished syncs, successful or not */
	int polling;     /* the sync in progress long-polls */
	int interrupted; /* it was cancelled for a request or close */
	struct puller_stats stats;

	/* The write path: pushes run in the writer's thread with the WAL
	 * write lock held, so one writer at a time (of any process) uses
	 * these. */
	struct http_client *push_http;
	pthread_mutex_t push_mu; /* push_http: writers begin concurrently */
	int token_read_only;     /* the token's claim "a" is "ro" */
	uint32_t push_generation;
	uint32_t push_end;     /* the pushed transaction's last frame, or 0 */
	int push_conflict;     /* the last push lost: catch up after unlock */
	int push_diverged;     /* ... was refused: download after unlock */
	int push_has_checksum; /* the file's checksum after the push */
	uint64_t push_checksum;
};

/* Ask the sync thread for a sync and wait for it, at most timeout_ms (-1:
 * no limit).  Returns 0 (with the frame applied in *frame_no unless NULL),
 * or -1 with err. */
int replica_sync_timed(struct replica *r, int64_t timeout_ms,
		       uint32_t *frame_no, char *err, size_t err_len);

#endif
