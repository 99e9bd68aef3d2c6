/* A hash map from page numbers (>= 1) to 32-bit values, and a growable
 * list of page numbers: the sets a transaction check builds, sized by the
 * pages the transaction touches rather than by the database. */
#ifndef REPLITE_SERVER_PGMAP_H
#define REPLITE_SERVER_PGMAP_H

#include <stddef.h>
#include <stdint.h>

struct pgmap {
	uint32_t *keys; /* 0: an empty slot */
	uint32_t *vals;
	size_t cap, n;
};

/* 1 and *val (if not NULL) when key is in the map, else 0. */
int pgmap_get(const struct pgmap *h, uint32_t key, uint32_t *val);
/* Add or replace: 0, or -ENOMEM. */
int pgmap_put(struct pgmap *h, uint32_t key, uint32_t val);
void pgmap_clear(struct pgmap *h);
void pgmap_free(struct pgmap *h);

struct pglist {
	uint32_t *v;
	size_t n, cap;
};

/* 0, or -ENOMEM. */
int pglist_add(struct pglist *a, uint32_t x);

#endif
