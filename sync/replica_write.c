/* The replica's write path (DESIGN.md §3, docs/architecture.md "Walk 2"):
 * begin-write catches up, commit pushes, the release records the new
 * position, and after a lost push or a refused one the file is brought back
 * to the primary's state. */
#include "replica_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/errors.h"
#include "base/sqlite_api.h"
#include "sync/pusher.h"
#include "sync/replica_state.h"

/* Pause between a writer's catch-up attempts (catch_up). */
#define CATCH_UP_PAUSE_MS 50

static void write_failed(struct replica *r, const char *err)
{
	pthread_mutex_lock(&r->mu);
	snprintf(r->last_error, sizeof r->last_error, "%s", err);
	pthread_mutex_unlock(&r->mu);
	sqlite3_log(SQLITE_IOERR_WRITE, "replite: write to %s: %s", r->db_path,
		    err);
}

/* Ask the primary where it stands (GET /info on the writers' kept-alive
 * connection) and compare with the file: 1 when the file holds the
 * primary's head, 0 when a catch-up is needed, -1 with err when the primary
 * cannot be asked or is another database.  A live long-poll in flight is no
 * proof: frames committed just before may be on the wire, and a writer that
 * raced them would lose its push with SQLITE_BUSY_SNAPSHOT. */
static int primary_matches_file(struct replica *r, char *err, size_t err_len)
{
	struct replica_state st = {0};
	struct messages_info info = {0};
	int rv;

	pthread_mutex_lock(&r->push_mu);
	rv = puller_fetch_info(r->push_http, (long)r->params.write_timeout_ms,
			       &info, NULL, err, err_len);
	pthread_mutex_unlock(&r->push_mu);
	if (rv != 0)
		return -1;
	rv = -1;
	if (applier_load_state(r->applier, &st, err, err_len) != 0)
		goto out;
	if (replica_has_pending(r)) {
		/* An offline session's commits go first. */
		rv = 0;
		goto out;
	}
	if (replica_state_check_primary(&st, info.database_id,
					r->params.sync_url, err, err_len) != 0)
		goto out;
	rv = !st.bootstrapping && info.has_max_frame_no &&
	     info.current_generation == st.generation &&
	     info.max_frame_no == st.frame_no && st.frame_hwm == st.frame_no;
out:
	replica_state_free(&st);
	messages_info_free(&info);
	return rv;
}

int replica_reads_own_writes(const struct replica *r)
{
	/* An offline commit exists nowhere else: always visible. */
	return r->params.read_your_writes || r->params.offline;
}

/* A writer's catch-up: syncs until one succeeds or write_timeout runs out,
 * so that one transfer cut short (a reset connection) does not fail the
 * write while the primary is reachable. */
static int catch_up(struct replica *r, char *err, size_t err_len)
{
	int64_t deadline = clock_monotonic_ms() + r->params.write_timeout_ms;
	int64_t left;

	for (;;) {
		left = deadline - clock_monotonic_ms();
		if (replica_sync_timed(r, left > 0 ? left : 0, NULL, err,
				       err_len) == 0)
			return 0;
		left = deadline - clock_monotonic_ms();
		if (left <= CATCH_UP_PAUSE_MS)
			return -1;
		sqlite3_sleep(CATCH_UP_PAUSE_MS);
	}
}

int replica_begin_write_held(struct replica *r)
{
	if (r->as_of_state.has_as_of) /* refused at once, lock or not */
		return replica_as_of_write(r);
	/* Offline: nothing that needs the lock free (no catch-up). */
	if (!r->params.offline)
		return SQLITE_NOTFOUND;
	return replica_begin_write(r);
}

int replica_begin_write(struct replica *r)
{
	char err[1024];
	int current;

	if (r->as_of_state.has_as_of)
		return replica_as_of_write(r);
	if (r->token_read_only) {
		sqlite3_log(SQLITE_READONLY,
			    "replite: %s: the auth token is read-only (claim "
			    "\"a\": \"ro\"); writes are refused",
			    r->db_path);
		return SQLITE_READONLY;
	}
	if (r->params.offline) /* no network: pushed later */
		return applier_lock_wanted(r->applier) ? SQLITE_BUSY
						       : SQLITE_OK;
	current = primary_matches_file(r, err, sizeof err);
	if (current < 0) {
		write_failed(r, err);
		return SQLITE_IOERR_WRITE;
	}
	if (current)
		return SQLITE_OK;
	/* Catch up first: a transaction on a stale snapshot would only be
	 * refused by the primary.  If this applied anything, SQLite finds
	 * the writer's snapshot stale and retries (busy handler) or returns
	 * SQLITE_BUSY_SNAPSHOT inside an explicit transaction. */
	if (catch_up(r, err, sizeof err) != 0) {
		write_failed(r, err);
		return SQLITE_IOERR_WRITE;
	}
	return SQLITE_OK;
}

int replica_commit(struct replica *r, const struct wal_page *pages, size_t n,
		   uint32_t db_size)
{
	struct replica_state st = {0};
	struct pusher_txn t = {0};
	struct pusher_logged logged = {0};
	enum pusher_result pushed;
	char err[1024];
	int rc = SQLITE_IOERR_WRITE;

	r->push_end = 0;
	r->push_conflict = 0;
	r->push_diverged = 0;
	if (r->as_of_state.has_as_of) /* never reached: refused at begin */
		return replica_as_of_write(r);
	if (r->params.offline)
		return replica_offline_commit(r, pages, n, db_size, NULL);
	if (n == 0)
		return SQLITE_OK;
	if (applier_load_state(r->applier, &st, err, sizeof err) != 0 ||
	    st.bootstrapping) {
		if (st.bootstrapping)
			snprintf(err, sizeof err,
				 "the replica is being downloaded again");
		goto fail;
	}
	t.generation = st.generation;
	t.start = st.frame_no + 1;
	t.pages = pages;
	t.n = (uint32_t)n;
	t.db_size = db_size;
	t.page_size = st.page_size;
	sqlite3_randomness(sizeof t.id, t.id);
	/* What the transaction is built on and leads to, from this file's
	 * own pages: the primary refuses it if either differs from its
	 * own, so a foreign write to this file never reaches it. */
	t.has_sums = st.has_checksum && st.frame_hwm == st.frame_no;
	t.base = st.checksum;
	if (t.has_sums &&
	    applier_checksum_commit(r->applier, st.checksum, pages, n, db_size,
				    &t.result, err, sizeof err) != 0)
		goto fail;
	r->push_has_checksum = t.has_sums;
	r->push_checksum = t.result;

	pthread_mutex_lock(&r->push_mu);
	pushed = pusher_push(r->push_http, &t, r->params.write_timeout_ms,
			     &logged, err, sizeof err);
	pthread_mutex_unlock(&r->push_mu);
	switch (pushed) {
	case PUSHER_OK:
		/* Where the primary logged it: in t.generation, or (the
		 * generation ended just before the push) at the start of the
		 * next one, which the state then moves to. */
		if (applier_commit_prepare(r->applier, t.generation, t.start,
					   logged.generation, logged.head, err,
					   sizeof err) != 0)
			goto fail; /* the primary has it: the next sync pulls */
		r->push_generation = logged.generation;
		r->push_end = logged.head;
		rc = SQLITE_OK;
		break;
	case PUSHER_CONFLICT:
		/* Another writer got there first: SQLite rolls back, and the
		 * frames that won are applied before the writer retries. */
		r->push_conflict = 1;
		rc = SQLITE_BUSY_SNAPSHOT;
		break;
	case PUSHER_DENIED:
		write_failed(r, err);
		rc = SQLITE_READONLY;
		break;
	case PUSHER_DIVERGED:
		/* This file is not the primary's: fail the write, and
		 * download it again once the write lock is released. */
		r->push_diverged = 1;
		goto fail;
	case PUSHER_ERROR:
		goto fail;
	}
	replica_state_free(&st);
	return rc;
fail:
	write_failed(r, err);
	replica_state_free(&st);
	return SQLITE_IOERR_WRITE;
}

void replica_write_unlocking(struct replica *r, int committed, int published,
			     const struct wal_position *pos)
{
	char err[1024];

	if (r->params.offline) {
		replica_offline_unlocking(r, committed && published);
		return;
	}
	if (!committed || r->push_end == 0)
		return;
	if (published &&
	    applier_commit_done(r->applier, r->push_generation, r->push_end,
				pos, r->push_has_checksum, r->push_checksum,
				err, sizeof err) != 0)
		write_failed(r, err);
	r->push_end = 0;
}

void replica_write_unlocked(struct replica *r)
{
	char err[1024];

	if (r->params.offline) {
		replica_offline_unlocked(r);
		return;
	}
	if (r->push_diverged) {
		r->push_diverged = 0;
		if (applier_require_image(r->applier, err, sizeof err) != 0) {
			write_failed(r, err);
			return;
		}
		r->push_conflict = 1;
	}
	if (!r->push_conflict)
		return;
	r->push_conflict = 0;
	if (replica_sync_timed(r, r->params.write_timeout_ms, NULL, err,
			       sizeof err) != 0)
		write_failed(r, err);
}
