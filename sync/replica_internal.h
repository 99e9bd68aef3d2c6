/* The replica object, shared by the files that implement it (replica.h is
 * the interface): replica.c (open, close, the sync thread, status, verify)
 * and replica_write.c (the write path). */
#ifndef REPLITE_REPLICA_INTERNAL_H
#define REPLITE_REPLICA_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

#include "sync/applier.h"
#include "sync/http_client.h"
#include "sync/puller.h"
#include "sync/replica.h"
#include "sync/replica_options.h"
#include "sync/replica_state.h"

struct replica {
	/* Sent to the primary with every request (X-Replite-Replica): 16
	 * hex digits, random per replica per process. */
	char replica_id[17];
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

	/* Offline mode (replica_offline.c).  The writer's, under the write
	 * lock: an outbox record was appended for the commit in progress
	 * (at ob_undo_at), and whether the last one was published. */
	int ob_appended;
	uint64_t ob_undo_at;
	int ob_committed;
	/* How the record is made durable (replica_offline.c): ob_synced, it
	 * was synced at the commit (then the WAL need not be); ob_sync_asked,
	 * SQLite synced the WAL after the commit frame; ob_lazy, the last
	 * commit had no WAL sync (synchronous=NORMAL or OFF), so the next
	 * record is not synced at its commit either. */
	int ob_synced;
	int ob_sync_asked;
	int ob_lazy;
	/* Guarded by mu: a local commit waits to be pushed; the last push. */
	int push_wanted;
	int64_t last_push_unix_ms;

	/* conflict=rebase (replica_rebase.c), the sync thread's: the private
	 * VFS the re-application writes through (registered at the first
	 * rebase), and the id its commit in progress gets. */
	sqlite3_vfs *rebase_vfs;
	int rebase_committing;
	int rebase_wrote; /* the commit reached the outbox */
	uint8_t rebase_id[16];

	/* An as-of replica (params.as_of given; replica_as_of.c): its
	 * state's as-of fields and position, kept from the open (no other
	 * string than none). */
	struct replica_state as_of_state;

	/* Encryption at rest (replica_key.c): the cipher VFS the database is
	 * registered with (NULL: a plain replica), and the SHA-256 of the
	 * key text it was opened with. */
	sqlite3_vfs *cipher_vfs;
	uint8_t key_digest[32];
	/* Its cipher, for the files that are not pages (the offline outbox,
	 * conflicts and rebase plan are sealed with it); NULL when plain. */
	struct cipher *cipher;
};

/* Encryption at rest (replica_key.c): at open, before anything touches
 * the files, decide from the key file and the key text (NULL: none)
 * whether the replica is encrypted, check the key, and register the
 * database with cipher_vfs (0, or -1 with err naming the cause, never the
 * key); at close, unregister it. */
int replica_key_open(struct replica *r, const char *key_text,
		     sqlite3_vfs *cipher_vfs, char *err, size_t err_len);
void replica_key_close(struct replica *r);

/* Offline mode (replica_offline.c): the commit (an outbox record instead
 * of a push; its id random unless given), the WAL's sync, the release of the
 * write lock, and the push of the pending records by the sync thread before it
 * pulls (0, or -1 with err: the primary could not be reached, refused, ...). */
int replica_offline_commit(struct replica *r, const struct wal_page *pages,
			   size_t n, uint32_t db_size, const uint8_t *given_id);
void replica_offline_unlocking(struct replica *r, int published);
void replica_offline_unlocked(struct replica *r);
int replica_push_pending(struct replica *r, char *err, size_t err_len);
/* Are local transactions waiting for the primary? */
int replica_has_pending(struct replica *r);
/* The offline fields of replite_status(). */
void replica_offline_status(struct replica *r, const struct replica_state *st,
			    json_t *o);

/* conflict=rebase (replica_rebase.c), in the sync thread: re-apply the
 * rebase plan's entries, if there is a plan, as local transactions
 * (0, or -1 with err); and unregister the private VFS at close. */
int replica_rebase_pending(struct replica *r, char *err, size_t err_len);
void replica_rebase_close(struct replica *r);

/* As-of replicas (replica_as_of.c).  At open, instead of the sync
 * thread: bootstrap the file with the state unless it has it (synced), and
 * check it (0, or -1 with err).  replite_sync() (always -1 with err),
 * begin-write (always SQLITE_READONLY, the cause logged and in
 * last_error), and replite_verify() (the local checksum against the one
 * recorded; NULL with err when it cannot be read). */
int replica_as_of_open(struct replica *r, int synced, char *err,
		       size_t err_len);
int replica_as_of_sync(struct replica *r, char *err, size_t err_len);
int replica_as_of_write(struct replica *r);
json_t *replica_as_of_verify(struct replica *r, char *err, size_t err_len);

/* Ask the sync thread for a sync and wait for it, at most timeout_ms (-1:
 * no limit).  Returns 0 (with the frame applied in *frame_no unless NULL),
 * or -1 with err. */
int replica_sync_timed(struct replica *r, int64_t timeout_ms,
		       uint32_t *frame_no, char *err, size_t err_len);

#endif
