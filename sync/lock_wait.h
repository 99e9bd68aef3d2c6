/* Waiting for the local database's write lock inside one process: instead
 * of sleeping a fixed millisecond between tries (SQLite's busy handlers),
 * a waiter sleeps until the holder says it released the lock, or at most
 * max_us (holders in other processes say nothing).  The holders that say so
 * are the replica's: application writers (the VFS sees their release) and
 * the applier's internal connection (applier_lock_end). */
#ifndef REPLITE_SYNC_LOCK_WAIT_H
#define REPLITE_SYNC_LOCK_WAIT_H

#include <pthread.h>
#include <stdint.h>

struct lock_wait {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t releases;
};

void lock_wait_init(struct lock_wait *w);
void lock_wait_destroy(struct lock_wait *w);
/* The lock was released: wake every waiter. */
void lock_wait_released(struct lock_wait *w);
/* Sleep until the next release, or max_us. */
void lock_wait_next(struct lock_wait *w, int64_t max_us);

#endif
