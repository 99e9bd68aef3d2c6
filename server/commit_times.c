#include "commit_times.h"

#include <pthread.h>
#include <stdlib.h>

struct entry {
	uint32_t gen;
	uint32_t head;
	int64_t unix_ms;
};

struct commit_times {
	pthread_mutex_t mu;
	struct entry *ring; /* COMMIT_TIMES_CAP entries */
	size_t first;       /* index of the oldest */
	size_t n;
};

struct commit_times *commit_times_new(void)
{
	struct commit_times *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->ring = calloc(COMMIT_TIMES_CAP, sizeof *c->ring);
	if (c->ring == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void commit_times_free(struct commit_times *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->ring);
	free(c);
}

static struct entry *at(struct commit_times *c, size_t i)
{
	return &c->ring[(c->first + i) % COMMIT_TIMES_CAP];
}

/* (gen, frame) strictly before (e->gen, e->head). */
static int before(uint32_t gen, uint32_t frame, const struct entry *e)
{
	return gen < e->gen || (gen == e->gen && frame < e->head);
}

void commit_times_note(struct commit_times *c, uint32_t gen, uint32_t head,
		       int64_t unix_ms)
{
	struct entry *last;

	pthread_mutex_lock(&c->mu);
	last = c->n > 0 ? at(c, c->n - 1) : NULL;
	if (head == 0)
		goto out; /* a generation's start: no commit */
	if (last != NULL &&
	    !before(last->gen, last->head, &(struct entry){gen, head, 0})) {
		goto out; /* not newer */
	}
	if (last != NULL && last->gen == gen &&
	    unix_ms - last->unix_ms < COMMIT_TIMES_GRAIN_MS) {
		last->head = head;
		goto out;
	}
	if (c->n == COMMIT_TIMES_CAP) {
		c->first = (c->first + 1) % COMMIT_TIMES_CAP;
		c->n--;
	}
	*at(c, c->n) = (struct entry){gen, head, unix_ms};
	c->n++;
out:
	pthread_mutex_unlock(&c->mu);
}

int64_t commit_times_after(struct commit_times *c, uint32_t gen, uint32_t frame)
{
	size_t lo = 0, hi;
	int64_t rv = 0;

	pthread_mutex_lock(&c->mu);
	hi = c->n;
	/* The first entry whose head is past (gen, frame): the entries are
	 * in (generation, head) order. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (before(gen, frame, at(c, mid)))
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo < c->n)
		rv = at(c, lo)->unix_ms;
	pthread_mutex_unlock(&c->mu);
	return rv;
}
