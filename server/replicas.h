/* The replicas the primary has heard from, for their lag in /metrics: each
 * replite replica sends an id (X-Replite-Replica: a random id per replica
 * per process), and every pull says where it is (GET /sync/{gen}/{start}/..
 * asks for what follows frame start - 1, which it has applied).
 *
 * Entries expire when a replica has not pulled for expiry_ms (a live one
 * long-polls at least once a minute), and the table is bounded: when it is
 * full, the replica heard from longest ago makes room, so that clients
 * inventing ids cannot grow it. */
#ifndef REPLITE_REPLICAS_H
#define REPLITE_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

#define REPLICAS_ID_MAX 32 /* characters of an id, [0-9a-zA-Z_-] */

struct replicas;

struct replicas_entry {
	char id[REPLICAS_ID_MAX + 1];
	uint32_t gen;    /* its generation */
	uint32_t frame;  /* its last applied frame there */
	int64_t seen_ms; /* monotonic, its last pull */
};

struct replicas *replicas_new(int64_t expiry_ms, size_t max);
void replicas_free(struct replicas *r);

/* Whether id is one to track (length and characters). */
int replicas_valid_id(const char *id);
/* Replica id pulled what follows frame `frame` of generation gen at
 * now_ms (monotonic).  Invalid ids are ignored. */
void replicas_seen(struct replicas *r, const char *id, uint32_t gen,
		   uint32_t frame, int64_t now_ms);
/* Drop those not heard from since now_ms - expiry_ms. */
void replicas_expire(struct replicas *r, int64_t now_ms);
/* A copy of the table (malloc'd, *out freed by the caller), by id. */
size_t replicas_list(struct replicas *r, struct replicas_entry **out);

#endif
