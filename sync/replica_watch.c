/* What a replica knows of the primary's head, so that a writer whose file
 * is at the head skips the GET /info round trip at begin-write
 * (docs/architecture.md, "The replica's write path", 1).
 *
 * The knowledge comes from the primary's answers: a caught-up pull, frames
 * that did not fill the range asked for, an accepted push, GET /info.  It
 * stays good while the sync thread has a pull outstanding for the frame
 * right after it, sent as soon as it was learned: the primary answers that
 * pull as soon as its head moves (a long-poll is parked until then), so a
 * commit elsewhere makes the knowledge stale only for as long as its
 * answer takes to arrive.  Otherwise it is trusted for WATCH_TRUST_US after
 * it was learned, about the time GET /info's answer would be used for.
 *
 * Being wrong costs a conflict, never a lost update: the primary still
 * refuses a push that does not start right after its head, and the writer
 * then gets SQLITE_BUSY_SNAPSHOT and catches up, as after any race. */
#include "replica_internal.h"

#include "base/clock.h"

/* How long an answer of the primary is trusted on its own (no pull
 * outstanding after it): a writer's next transaction right after its
 * commit, while its own commit comes back on the long-poll. */
#define WATCH_TRUST_US 1000
/* A pull sent later than this after the head it follows was learned does
 * not keep the knowledge (a sync asked for after an idle spell). */
#define WATCH_CHAIN_US 1000
/* How long the sync thread waits for a writer's commit of frames it
 * pulled before it applies them itself (under the write lock). */
#define WATCH_SETTLE_MS 50

static void learned_locked(struct replica *r, uint32_t gen, uint32_t head)
{
	r->watch.known = 1;
	r->watch.gen = gen;
	r->watch.head = head;
	r->watch.at_us = clock_monotonic_us();
}

static void on_sent(void *arg, uint32_t gen, uint32_t start)
{
	struct replica *r = arg;

	pthread_mutex_lock(&r->mu);
	r->watch.out = 1;
	r->watch.out_gen = gen;
	r->watch.out_start = start;
	r->watch.out_chained = r->watch.known && r->watch.gen == gen &&
			       r->watch.head + 1 == start &&
			       clock_monotonic_us() - r->watch.at_us <=
				   WATCH_CHAIN_US;
	pthread_mutex_unlock(&r->mu);
}

static void on_done(void *arg)
{
	struct replica *r = arg;

	pthread_mutex_lock(&r->mu);
	r->watch.out = 0;
	pthread_mutex_unlock(&r->mu);
}

static void on_learned(void *arg, uint32_t gen, uint32_t head)
{
	struct replica *r = arg;

	pthread_mutex_lock(&r->mu);
	learned_locked(r, gen, head);
	pthread_mutex_unlock(&r->mu);
}

static void on_settle(void *arg, uint32_t gen, uint32_t last)
{
	struct replica *r = arg;
	int64_t until = clock_monotonic_ms() + WATCH_SETTLE_MS;
	struct timespec ts;

	pthread_mutex_lock(&r->mu);
	while (r->wr_active && r->wr_gen == gen && r->wr_end >= last &&
	       !r->closing && clock_monotonic_ms() < until) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 2 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->cond, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
}

void replica_watch_start(struct replica *r)
{
	struct puller_watch w = {
	    .arg = r,
	    .sent = on_sent,
	    .done = on_done,
	    .learned = on_learned,
	    .settle = on_settle,
	};

	puller_set_watch(r->puller, &w);
}

int replica_watch_current(struct replica *r, uint32_t gen, uint32_t frame_no)
{
	int64_t now = clock_monotonic_us();
	int current;

	pthread_mutex_lock(&r->mu);
	current = r->watch.known && r->watch.gen == gen &&
		  r->watch.head == frame_no &&
		  (now - r->watch.at_us <= WATCH_TRUST_US ||
		   (r->watch.out && r->watch.out_chained &&
		    r->watch.out_gen == gen &&
		    r->watch.out_start == frame_no + 1));
	pthread_mutex_unlock(&r->mu);
	return current;
}

void replica_watch_learned(struct replica *r, uint32_t gen, uint32_t head)
{
	pthread_mutex_lock(&r->mu);
	learned_locked(r, gen, head);
	pthread_mutex_unlock(&r->mu);
}

void replica_watch_pushed(struct replica *r, uint32_t gen, uint32_t head)
{
	pthread_mutex_lock(&r->mu);
	learned_locked(r, gen, head);
	r->wr_active = 1;
	r->wr_gen = gen;
	r->wr_end = head;
	pthread_mutex_unlock(&r->mu);
}

void replica_watch_commit_over(struct replica *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->wr_active) {
		r->wr_active = 0;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
}

void replica_watch_forget(struct replica *r)
{
	pthread_mutex_lock(&r->mu);
	r->watch.known = 0;
	pthread_mutex_unlock(&r->mu);
}
