#include "replicas.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct replicas {
	pthread_mutex_t mu;
	int64_t expiry_ms;
	size_t max;
	struct replicas_entry *e;
	size_t n, cap;
};

struct replicas *replicas_new(int64_t expiry_ms, size_t max)
{
	struct replicas *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->expiry_ms = expiry_ms;
	r->max = max > 0 ? max : 1;
	return r;
}

void replicas_free(struct replicas *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r->e);
	free(r);
}

int replicas_valid_id(const char *id)
{
	size_t n;

	if (id == NULL)
		return 0;
	n = strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz"
		       "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-");
	return n > 0 && n <= REPLICAS_ID_MAX && id[n] == '\0';
}

/* The entry to (re)use for id: its own, a free one, or the stalest. */
static struct replicas_entry *slot_locked(struct replicas *r, const char *id)
{
	struct replicas_entry *stalest = NULL;
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (strcmp(r->e[i].id, id) == 0)
			return &r->e[i];
		if (stalest == NULL || r->e[i].seen_ms < stalest->seen_ms)
			stalest = &r->e[i];
	}
	if (r->n < r->max) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 16;
			void *p;
			if (cap > r->max)
				cap = r->max;
			p = realloc(r->e, cap * sizeof *r->e);
			if (p == NULL)
				return stalest;
			r->e = p;
			r->cap = cap;
		}
		return &r->e[r->n++];
	}
	return stalest;
}

void replicas_seen(struct replicas *r, const char *id, uint32_t gen,
		   uint32_t frame, int64_t now_ms)
{
	struct replicas_entry *e;

	if (!replicas_valid_id(id))
		return;
	pthread_mutex_lock(&r->mu);
	e = slot_locked(r, id);
	if (e != NULL) {
		memcpy(e->id, id, strlen(id) + 1);
		e->gen = gen;
		e->frame = frame;
		e->seen_ms = now_ms;
	}
	pthread_mutex_unlock(&r->mu);
}

void replicas_expire(struct replicas *r, int64_t now_ms)
{
	size_t i = 0;

	pthread_mutex_lock(&r->mu);
	while (i < r->n) {
		if (now_ms - r->e[i].seen_ms > r->expiry_ms)
			r->e[i] = r->e[--r->n];
		else
			i++;
	}
	pthread_mutex_unlock(&r->mu);
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct replicas_entry *)a)->id,
		      ((const struct replicas_entry *)b)->id);
}

size_t replicas_list(struct replicas *r, struct replicas_entry **out)
{
	size_t n;

	*out = NULL;
	pthread_mutex_lock(&r->mu);
	n = r->n;
	if (n > 0 && (*out = malloc(n * sizeof **out)) != NULL)
		memcpy(*out, r->e, n * sizeof **out);
	pthread_mutex_unlock(&r->mu);
	if (*out == NULL)
		return 0;
	qsort(*out, n, sizeof **out, by_id);
	return n;
}
