/* Values of rowdiff as Hrana JSON: encoded from a column as the primary
 * encodes them (server/hrana_values.c), and ordered as SQLite orders the
 * values they stand for under BINARY (the order of the changes). */
#include "rowdiff_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "proto/values.h"

/* SQLite's order of types: NULL, numbers, text, blobs. */
static int json_rank(json_t *v)
{
	const char *type = json_string_value(json_object_get(v, "type"));

	if (type == NULL || strcmp(type, "null") == 0)
		return 0;
	if (strcmp(type, "integer") == 0 || strcmp(type, "float") == 0)
		return 1;
	return strcmp(type, "text") == 0 ? 2 : 3;
}

static int json_is_int(json_t *v, long long *out)
{
	const char *type = json_string_value(json_object_get(v, "type"));
	const char *s = json_string_value(json_object_get(v, "value"));

	if (type == NULL || strcmp(type, "integer") != 0 || s == NULL)
		return 0;
	*out = strtoll(s, NULL, 10);
	return 1;
}

static long double json_number(json_t *v)
{
	long long i;

	if (json_is_int(v, &i))
		return (long double)i;
	return json_number_value(json_object_get(v, "value"));
}

static int cmp_bytes(const void *a, size_t na, const void *b, size_t nb)
{
	int c = memcmp(a, b, na < nb ? na : nb);

	if (c != 0)
		return c < 0 ? -1 : 1;
	return na < nb ? -1 : na > nb;
}

/* Two Hrana values in SQLite's BINARY order. */
static int cmp_json_values(json_t *a, json_t *b)
{
	int ra = json_rank(a), rb = json_rank(b), c;
	long long x, y;
	long double dx, dy;
	json_t *sa, *sb;
	uint8_t *ba, *bb;
	size_t na = 0, nb = 0;

	if (ra != rb)
		return ra < rb ? -1 : 1;
	switch (ra) {
	case 0:
		return 0;
	case 1:
		if (json_is_int(a, &x) && json_is_int(b, &y))
			return x < y ? -1 : x > y;
		dx = json_number(a);
		dy = json_number(b);
		return dx < dy ? -1 : dx > dy;
	case 2:
		sa = json_object_get(a, "value");
		sb = json_object_get(b, "value");
		return cmp_bytes(json_string_value(sa), json_string_length(sa),
				 json_string_value(sb), json_string_length(sb));
	default:
		sa = json_object_get(a, "base64");
		sb = json_object_get(b, "base64");
		ba = base64_decode(json_string_value(sa),
				   json_string_length(sa), &na);
		bb = base64_decode(json_string_value(sb),
				   json_string_length(sb), &nb);
		c = cmp_bytes(ba ? ba : (const uint8_t *)"", na,
			      bb ? bb : (const uint8_t *)"", nb);
		free(ba);
		free(bb);
		return c;
	}
}

static int cmp_by_key(const void *pa, const void *pb, void *arg)
{
	const struct rowdiff_change *a = pa, *b = pb;
	const struct rowdiff_table *t = arg;
	size_t i;
	int c;

	for (i = 0; i < t->n_pk; i++) {
		c = cmp_json_values(json_object_get(a->key, t->pk[i]),
				    json_object_get(b->key, t->pk[i]));
		if (c != 0)
			return c;
	}
	/* One key deleted and inserted again (under another rowid): the
	 * delete first, as the changes would be applied. */
	if (a->op != b->op)
		return a->op == ROWDIFF_DELETE   ? -1
		       : b->op == ROWDIFF_DELETE ? 1
		       : a->op < b->op           ? -1
						 : 1;
	return a->rowid < b->rowid ? -1 : a->rowid > b->rowid;
}

void rowdiff_sort_by_key(struct rowdiff_change *c, size_t n,
			 const struct rowdiff_table *t)
{
	if (n > 1)
		qsort_r(c, n, sizeof *c, cmp_by_key, (void *)t);
}
