/* The replica's offline mode (offline=1, docs/architecture.md "Offline
 * writes"): a write commits locally with no network, its outbox record
 * written before its commit frame (sync/applier_offline.c), and the sync
 * thread pushes the pending records in commit order, one transaction per
 * push, before it pulls.  A push the primary refuses as a conflict marks
 * the pending records for dropping (conflict=discard): the next batch
 * pulled restores their pages and brings the primary's, in one
 * publication, and records each dropped transaction in the conflicts file
 * (sync/conflicts.h). */
#include "replica_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/errors.h"
#include "include/replite.h"
#include "sync/conflicts.h"
#include "sync/pusher.h"
#include "sync/rebase_plan.h"
#include "sync/replica_state.h"
#include "wal/wal_observer.h"

static void offline_failed(struct replica *r, const char *err)
{
	pthread_mutex_lock(&r->mu);
	snprintf(r->last_error, sizeof r->last_error, "%s", err);
	pthread_mutex_unlock(&r->mu);
	sqlite3_log(SQLITE_IOERR_WRITE, "replite: offline write to %s: %s",
		    r->db_path, err);
}

int replica_offline_commit(struct replica *r, const struct wal_page *pages,
			   size_t n, uint32_t db_size, const uint8_t *given_id)
{
	struct replica_state st = {0};
	uint8_t id[16];
	char err[1024];
	int loaded;

	r->ob_appended = 0;
	if (n == 0)
		return SQLITE_OK;
	/* Stable: the writer holds the write lock, under which alone the
	 * state changes. */
	loaded = applier_load_state_cached(r->applier, &st, err, sizeof err);
	if (loaded != 0 || st.bootstrapping) {
		if (loaded == 1 || st.bootstrapping)
			snprintf(err, sizeof err,
				 "the replica is being downloaded again; the "
				 "write is refused until it is complete");
		goto fail;
	}
	if (given_id != NULL)
		memcpy(id, given_id, sizeof id);
	else
		sqlite3_randomness(sizeof id, id);
	if (applier_offline_commit(r->applier, &st, pages, n, db_size, id,
				   &r->ob_undo_at, err, sizeof err) != 0)
		goto fail;
	r->ob_appended = 1;
	r->ob_sync_asked = 0;
	/* With synchronous=FULL (SQLite's default: the last commit synced
	 * the WAL), the record is made durable now, before the commit frame
	 * is written, and the WAL sync that follows is skipped: one flush
	 * per commit instead of two.  The record then carries the
	 * transaction: should a power loss take the WAL's unsynced tail,
	 * the next open re-applies the records the file lacks
	 * (applier_recover_outbox).  And since the record is durable before
	 * any of the commit can be, the WAL never holds a commit without
	 * its record. */
	r->ob_synced = 0;
	if (!r->ob_lazy) {
		if (applier_offline_sync(r->applier, err, sizeof err) != 0) {
			replica_state_free(&st);
			offline_failed(r, err);
			return SQLITE_IOERR_FSYNC;
		}
		r->ob_synced = 1;
	}
	replica_state_free(&st);
	return SQLITE_OK;
fail:
	offline_failed(r, err);
	replica_state_free(&st);
	return SQLITE_IOERR_WRITE;
}

int replica_offline_wal_sync(struct replica *r)
{
	char err[512];

	if (!r->ob_appended)
		return SQLITE_OK;
	r->ob_sync_asked = 1;
	if (r->ob_synced)
		return WAL_OBSERVER_SYNC_DONE;
	/* The first synced commit after unsynced ones: the record was not
	 * synced at the commit, so the order is kept by syncing it before
	 * the WAL, and the WAL is synced too. */
	if (applier_offline_sync(r->applier, err, sizeof err) != 0) {
		offline_failed(r, err);
		return SQLITE_IOERR_FSYNC;
	}
	return SQLITE_OK;
}

void replica_offline_unlocking(struct replica *r, int published)
{
	char err[512];

	if (!r->ob_appended)
		return;
	r->ob_appended = 0;
	r->ob_committed = published;
	if (published)
		r->ob_lazy = !r->ob_sync_asked;
	/* SQLite failed after the record was written: the transaction is
	 * not in the file, so neither may its record be. */
	if (published)
		applier_offline_committed(r->applier, r->ob_undo_at);
	else if (applier_offline_undo(r->applier, r->ob_undo_at, err,
				      sizeof err) != 0)
		offline_failed(r, err);
}

void replica_offline_unlocked(struct replica *r)
{
	if (!r->ob_committed)
		return;
	r->ob_committed = 0;
	/* Push it now, unless the last sync failed: the back-off decides
	 * when the primary is tried again. */
	pthread_mutex_lock(&r->mu);
	r->push_wanted = 1;
	if (r->last_rc == 0) {
		pthread_cond_broadcast(&r->cond);
		if (r->polling) {
			r->interrupted = 1;
			http_client_cancel(r->http);
		}
	}
	pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------------- */
/* pushing, in the sync thread */

/* Pushes between two saves of the state (applier_push_flush). */
#define PUSHES_PER_SAVE 256

/* One pending record after the other, each its own push, until none is
 * left, one fails, or the primary refuses one.  Returns 0 (nothing left
 * to push, or they wait to be dropped), or -1 with err. */
static int push_run(struct replica *r, char *err, size_t err_len)
{
	struct applier_push p;
	struct pusher_txn t;
	struct pusher_logged logged;
	enum pusher_result res;
	unsigned pushed = 0;
	int rv;

	for (;;) {
		rv = applier_next_push(r->applier, &p, err, err_len);
		if (rv != 1)
			return rv < 0 ? -1 : 0;
		memset(&t, 0, sizeof t);
		memset(&logged, 0, sizeof logged);
		t.generation = p.generation;
		t.start = p.start;
		t.pages = p.pages;
		t.n = p.n;
		t.db_size = p.entry.db_size;
		t.page_size = REPLITE_PAGE_SIZE;
		memcpy(t.id, p.entry.id, sizeof t.id);
		t.has_sums = p.entry.has_sums;
		t.base = p.entry.base;
		t.result = p.entry.result;
		t.once = 1;
		/* Records committed with synchronous=NORMAL are not durable
		 * yet: one the primary holds must not be lost by a power
		 * loss here (the state names the last one pushed). */
		if (applier_offline_sync(r->applier, err, err_len) != 0) {
			applier_push_free(&p);
			return -1;
		}
		res = pusher_push(r->http, &t, r->params.write_timeout_ms,
				  &logged, err, err_len);
		switch (res) {
		case PUSHER_OK:
			/* Before the state says so: status never shows the
			 * record gone with no push time. */
			pthread_mutex_lock(&r->mu);
			r->last_push_unix_ms = clock_unix_ms();
			pthread_mutex_unlock(&r->mu);
			rv = applier_pushed(
			    r->applier, &p, logged.generation, logged.head,
			    ++pushed % PUSHES_PER_SAVE == 0, err, err_len);
			break;
		case PUSHER_CONFLICT:
			/* The primary moved since the records' base. */
			applier_push_free(&p);
			if (applier_push_flush(r->applier, err, err_len) != 0)
				return -1;
			return applier_push_lost(r->applier, err, err_len);
		case PUSHER_DIVERGED:
			/* This file is not the primary's: a full image, which
			 * drops the records (recorded as such). */
			sqlite3_log(SQLITE_WARNING, "replite: %s: %s",
				    r->db_path, err);
			applier_push_free(&p);
			if (applier_push_flush(r->applier, err, err_len) != 0)
				return -1;
			return applier_require_image(r->applier, err, err_len);
		case PUSHER_DENIED:
		case PUSHER_ERROR:
		default:
			rv = -1;
			break;
		}
		applier_push_free(&p);
		if (rv != 0)
			return -1;
	}
}

int replica_push_pending(struct replica *r, char *err, size_t err_len)
{
	char ferr[512];
	int rv = push_run(r, err, err_len);

	/* Whatever happened, the state says what was pushed before anything
	 * else reads or changes it. */
	if (applier_push_flush(r->applier, ferr, sizeof ferr) != 0 && rv == 0) {
		errors_set(err, err_len, "%s", ferr);
		rv = -1;
	}
	return rv;
}

int replica_has_pending(struct replica *r)
{
	struct replica_state st = {0};
	uint64_t txns = 0, frames = 0;
	char err[256];

	if (rebase_plan_exists(r->db_path))
		return 1; /* dropped by a conflict, to be re-applied */
	if (applier_load_state(r->applier, &st, err, sizeof err) != 0)
		return 0;
	applier_pending_counts(r->applier, &st, &txns, &frames, err,
			       sizeof err);
	replica_state_free(&st);
	return txns > 0;
}

/* ---------------------------------------------------------------------- */
/* status and conflicts */

void replica_offline_status(struct replica *r, const struct replica_state *st,
			    json_t *o)
{
	uint64_t txns = 0, frames = 0, conflicts = 0, plan;
	char err[256];

	applier_pending_counts(r->applier, st, &txns, &frames, err, sizeof err);
	/* Transactions a conflict dropped are pending until their
	 * re-application is: the plan's count, not the outbox's, while it
	 * exists (the outbox then holds them before the drop, nothing, or
	 * their one re-application). */
	plan = rebase_plan_count(r->db_path);
	if (plan > txns)
		txns = plan;
	conflicts_count(r->db_path, r->cipher, &conflicts, err, sizeof err);
	json_object_set_new(o, "pending_transactions",
			    json_integer((json_int_t)txns));
	json_object_set_new(o, "pending_frames",
			    json_integer((json_int_t)frames));
	pthread_mutex_lock(&r->mu);
	json_object_set_new(o, "last_push_unix_ms",
			    json_integer((json_int_t)r->last_push_unix_ms));
	pthread_mutex_unlock(&r->mu);
	json_object_set_new(o, "conflicts",
			    json_integer((json_int_t)conflicts));
	json_object_set_new(
	    o, "conflict",
	    json_string(r->params.conflict == REPLICA_CONFLICT_DISCARD
			    ? "discard"
			    : "rebase"));
}

char *replica_conflicts_json(struct replica *r, char *err, size_t err_len)
{
	char *text = conflicts_read_json(r->db_path, r->cipher, err, err_len),
	     *out;

	if (text == NULL)
		return NULL;
	out = sqlite3_mprintf("%s", text);
	free(text);
	if (out == NULL)
		errors_set(err, err_len, "out of memory");
	return out;
}

int replica_conflicts_clear(struct replica *r, uint64_t *cleared, char *err,
			    size_t err_len)
{
	*cleared = 0;
	if (conflicts_count(r->db_path, r->cipher, cleared, err, err_len) != 0)
		return -1;
	return conflicts_clear(r->db_path, err, err_len);
}
