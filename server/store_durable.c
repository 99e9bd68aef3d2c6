/* Group commit.  A commit is written to the frame log under the live
 * database's write lock (frame_log_write, no fdatasync) and its commit frame
 * then reaches the live WAL, so the next writer can take the lock at once.
 * Nobody may learn of a commit before it is durable, though: not its client,
 * not a reader whose snapshot includes it, not a replica.  So
 *
 *   - every answer that can show SQL results (Hrana, over HTTP or
 *     WebSocket) first calls store_make_durable, which returns once the log
 *     is durable up to what was written when the call began: everything the
 *     answer's statements saw or wrote;
 *   - frames are served, and /info reports a head, only up to the log's
 *     durable head (frame_log_head).
 *
 * Waiters share fdatasyncs: the first one to find none running becomes the
 * leader, syncs the log (covering every frame written so far) and wakes the
 * others, who return if that covered them or elect the next leader.  While
 * one sync runs, the next group of commits gathers behind it.
 *
 * A crash can lose written but not durable frames while the live WAL, or
 * live.db after a checkpoint, keeps them: start-up therefore rebuilds the
 * live database from the log after an unclean stop (store_recover.c), and
 * store_close makes the log durable before the last connection checkpoints.
 *
 * An fdatasync that fails leaves the fate of the written frames unknown
 * (Linux may drop pages it could not write): the log refuses appends, the
 * store refuses writes, and every answer still waiting fails with the
 * reason, until a restart recovers from what the log holds. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/errors.h"

/* 1: frames up to upto of generation gen are durable; -1: they never will
 * be (the log broke); 0: not yet. */
static int reached(struct store *s, uint32_t gen, uint32_t upto)
{
	struct generation *g;
	int rv;

	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	/* A rollover makes the ended generation's log durable first, and
	 * retention drops only ended ones. */
	if (g == NULL || g->ended_ms != 0 || frame_log_head(g->log) >= upto)
		rv = 1;
	else if (frame_log_broken(g->log))
		rv = -1;
	else
		rv = 0;
	pthread_mutex_unlock(&s->mu);
	return rv;
}

/* Sync the current generation's frame log under leader_mu (retention does
 * not free the log meanwhile); with release, the push log's copies of the
 * frames that sync made durable are then given back.  Returns 0 or a
 * negative errno, with the generation's number in *number. */
static int sync_current_log(struct store *s, int release, uint32_t *number)
{
	struct generation *g;
	int rv;

	pthread_mutex_lock(&s->leader_mu);
	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	*number = g->number;
	pthread_mutex_unlock(&s->mu);
	rv = store_gen_sync(g);
	if (rv == 0 && release)
		push_log_release(g->pushes, frame_log_synced_head(g->log));
	/* g may be freed by retention from here on. */
	pthread_mutex_unlock(&s->leader_mu);
	return rv;
}

/* The leader's part: sync the current generation's log. */
static void lead(struct store *s)
{
	uint32_t number;
	char why[256];
	int rv = sync_current_log(s, 0, &number);

	if (rv != 0) {
		errors_set(why, sizeof why,
			   "cannot make the frame log of generation %" PRIu32
			   " durable (fdatasync: %s); restart the server: "
			   "start-up recovers what the log holds",
			   number, strerror(-rv));
		store_mark_failed(s, why);
	}
	/* Long-polls wait for durable frames. */
	store_notify(s);
}

int store_make_durable(struct store *s, char *err, size_t n)
{
	struct generation *g;
	uint32_t gen, upto;
	int rv;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	gen = g->number;
	upto = frame_log_written_head(g->log);
	rv = frame_log_head(g->log) >= upto;
	pthread_mutex_unlock(&s->mu);
	if (rv)
		return 0; /* nothing pending: the common case for reads */
	pthread_mutex_lock(&s->durable_mu);
	while ((rv = reached(s, gen, upto)) == 0) {
		if (s->syncing) {
			pthread_cond_wait(&s->durable_cond, &s->durable_mu);
			continue;
		}
		s->syncing = 1;
		pthread_mutex_unlock(&s->durable_mu);
		lead(s);
		pthread_mutex_lock(&s->durable_mu);
		s->syncing = 0;
		pthread_cond_broadcast(&s->durable_cond);
	}
	pthread_mutex_unlock(&s->durable_mu);
	if (rv > 0)
		return 0;
	pthread_mutex_lock(&s->mu);
	errors_set(err, n, "%s",
		   s->failed[0] != '\0'
		       ? s->failed
		       : "the frame log could not be made durable");
	pthread_mutex_unlock(&s->mu);
	return -1;
}

void store_sync_log(struct store *s)
{
	uint32_t number;
	char why[256];
	int rv = sync_current_log(s, 1, &number);

	if (rv != 0) {
		errors_set(why, sizeof why,
			   "cannot sync the frame log of generation %" PRIu32
			   " (fdatasync: %s); restart the server: start-up "
			   "recovers what the log and the push log hold",
			   number, strerror(-rv));
		store_mark_failed(s, why);
	}
}

void store_synced_marks(struct store *s, uint32_t *log_synced,
			uint64_t *pushes_synced)
{
	struct generation *g;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	*log_synced = frame_log_synced_head(g->log);
	*pushes_synced = push_log_synced_size(g->pushes);
	pthread_mutex_unlock(&s->mu);
}

uint64_t store_times_synced_size(struct store *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->mu);
	n = time_log_synced_size(store_current_locked(s)->times);
	pthread_mutex_unlock(&s->mu);
	return n;
}
