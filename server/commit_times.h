/* When the primary's commits became durable, for lag: a replica at frame F
 * of generation G is as far behind as the oldest commit after F is old.
 *
 * A ring of (generation, durable head, Unix ms) entries, appended to each
 * time the durable head advances.  Commits that become durable within
 * COMMIT_TIMES_GRAIN_MS of the ring's newest entry extend that entry
 * instead of adding one, so that the ring covers at least
 * COMMIT_TIMES_CAP * COMMIT_TIMES_GRAIN_MS of history however fast commits
 * come (over 2.5 minutes), and a lag is overstated by at most the grain.
 * A position older than the ring's oldest entry is reported as behind since
 * that entry: an understatement, only for replicas minutes behind. */
#ifndef REPLITE_COMMIT_TIMES_H
#define REPLITE_COMMIT_TIMES_H

#include <stdint.h>

#define COMMIT_TIMES_CAP 16384
#define COMMIT_TIMES_GRAIN_MS 10

struct commit_times;

struct commit_times *commit_times_new(void);
void commit_times_free(struct commit_times *c);

/* The durable head of generation gen reached frame head at unix_ms.
 * Calls come in (generation, head) order; others are ignored. */
void commit_times_note(struct commit_times *c, uint32_t gen, uint32_t head,
		       int64_t unix_ms);

/* When the oldest commit after frame `frame` of generation gen became
 * durable (Unix ms), or 0 when nothing after it is known (caught up). */
int64_t commit_times_after(struct commit_times *c, uint32_t gen,
			   uint32_t frame);

#endif
