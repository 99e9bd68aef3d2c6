/* Page-number sets and maps (pgmap.h). */
#include "pgmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t slot(const struct pgmap *h, uint32_t key)
{
	size_t i = (key * 2654435761u) & (h->cap - 1);

	while (h->keys[i] != 0 && h->keys[i] != key)
		i = (i + 1) & (h->cap - 1);
	return i;
}

int pgmap_get(const struct pgmap *h, uint32_t key, uint32_t *val)
{
	size_t i;

	if (h->cap == 0)
		return 0;
	i = slot(h, key);
	if (h->keys[i] == 0)
		return 0;
	if (val != NULL)
		*val = h->vals[i];
	return 1;
}

int pgmap_put(struct pgmap *h, uint32_t key, uint32_t val)
{
	size_t i;

	if ((h->n + 1) * 2 > h->cap) {
		struct pgmap g = {0};
		size_t j;
		g.cap = h->cap ? h->cap * 2 : 64;
		g.keys = calloc(g.cap, sizeof *g.keys);
		g.vals = malloc(g.cap * sizeof *g.vals);
		if (g.keys == NULL || g.vals == NULL) {
			free(g.keys);
			free(g.vals);
			return -ENOMEM;
		}
		for (j = 0; j < h->cap; j++) {
			if (h->keys[j] == 0)
				continue;
			i = slot(&g, h->keys[j]);
			g.keys[i] = h->keys[j];
			g.vals[i] = h->vals[j];
			g.n++;
		}
		free(h->keys);
		free(h->vals);
		*h = g;
	}
	i = slot(h, key);
	if (h->keys[i] == 0)
		h->n++;
	h->keys[i] = key;
	h->vals[i] = val;
	return 0;
}

void pgmap_clear(struct pgmap *h)
{
	if (h->cap)
		memset(h->keys, 0, h->cap * sizeof *h->keys);
	h->n = 0;
}

void pgmap_free(struct pgmap *h)
{
	free(h->keys);
	free(h->vals);
	memset(h, 0, sizeof *h);
}

int pglist_add(struct pglist *a, uint32_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint32_t *g = realloc(a->v, cap * sizeof *g);
		if (g == NULL)
			return -ENOMEM;
		a->v = g;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}
