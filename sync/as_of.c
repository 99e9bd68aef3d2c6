#include "as_of.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/clock.h"

/* Plain decimal digits up to the end or stop, into a u32: the rest after
 * them, or NULL (no digit, another character, overflow). */
static const char *parse_u32(const char *p, char stop, uint32_t *out)
{
	uint64_t v = 0;
	const char *start = p;

	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return NULL;
	}
	if (p == start || *p != stop)
		return NULL;
	*out = (uint32_t)v;
	return p;
}

/* GENERATION:FRAME, strictly: sscanf would take signs and spaces. */
static int parse_frame(const char *text, struct as_of *out)
{
	uint32_t gen, frame;
	const char *p = parse_u32(text, ':', &gen);

	if (p == NULL || parse_u32(p + 1, '\0', &frame) == NULL || gen == 0)
		return -1;
	out->kind = AS_OF_FRAME;
	out->unix_ms = 0;
	out->generation = gen;
	out->frame = frame;
	return 0;
}

int as_of_parse(const char *text, struct as_of *out)
{
	int64_t ms;

	if (text == NULL)
		return -1;
	if (parse_frame(text, out) == 0)
		return 0;
	/* Before 1970 no primary has a state, and the canonical text would
	 * not be RFC 3339. */
	if (clock_parse_rfc3339(text, &ms) != 0 || ms < 0)
		return -1;
	out->kind = AS_OF_TIME;
	out->unix_ms = ms;
	out->generation = 0;
	out->frame = 0;
	return 0;
}

void as_of_format(const struct as_of *a, char out[AS_OF_TEXT_SIZE])
{
	if (a->kind == AS_OF_TIME)
		clock_format_rfc3339(a->unix_ms, out, AS_OF_TEXT_SIZE);
	else if (a->kind == AS_OF_FRAME)
		snprintf(out, AS_OF_TEXT_SIZE, "%" PRIu32 ":%" PRIu32,
			 a->generation, a->frame);
	else
		snprintf(out, AS_OF_TEXT_SIZE, "(none)");
}

int as_of_equal(const struct as_of *a, const struct as_of *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == AS_OF_TIME)
		return a->unix_ms == b->unix_ms;
	if (a->kind == AS_OF_FRAME)
		return a->generation == b->generation && a->frame == b->frame;
	return 1;
}

int as_of_names_state(const struct as_of *want, const struct as_of *held,
		      int64_t unix_ms, uint32_t generation, uint32_t frame)
{
	if (as_of_equal(want, held))
		return 1;
	/* Only a state found by time: two commits may share a millisecond,
	 * and the time of a frame's commit may then name a later frame. */
	if (want->kind == AS_OF_TIME)
		return held->kind == AS_OF_TIME && want->unix_ms == unix_ms;
	if (want->kind == AS_OF_FRAME)
		return want->generation == generation && want->frame == frame;
	return 0;
}
