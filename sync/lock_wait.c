#include "lock_wait.h"

#include <time.h>

void lock_wait_init(struct lock_wait *w)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &attr);
	pthread_condattr_destroy(&attr);
	w->releases = 0;
}

void lock_wait_destroy(struct lock_wait *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mu);
}

void lock_wait_released(struct lock_wait *w)
{
	pthread_mutex_lock(&w->mu);
	w->releases++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

void lock_wait_next(struct lock_wait *w, int64_t max_us)
{
	struct timespec until;
	uint64_t seen;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)(max_us % 1000000) * 1000;
	until.tv_sec += (time_t)(max_us / 1000000) + until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	pthread_mutex_lock(&w->mu);
	seen = w->releases;
	while (w->releases == seen &&
	       pthread_cond_timedwait(&w->cond, &w->mu, &until) == 0)
		;
	pthread_mutex_unlock(&w->mu);
}
