/* The state an as-of replica holds (URI parameter as_of, issue 12): a time
 * (RFC 3339, base/clock.h) or a commit frame of a generation
 * ("GENERATION:FRAME", frame 0: the generation's base).  The primary
 * resolves either to one of its states (GET /info?as_of=...); the replica
 * keeps the request, in its canonical text, to recognise it when the file
 * is opened again without asking the primary. */
#ifndef REPLITE_AS_OF_H
#define REPLITE_AS_OF_H

#include <stddef.h>
#include <stdint.h>

enum as_of_kind {
	AS_OF_NONE = 0, /* a live replica */
	AS_OF_TIME,
	AS_OF_FRAME,
};

struct as_of {
	enum as_of_kind kind;
	int64_t unix_ms;     /* AS_OF_TIME: >= 0 (from 1970 on) */
	uint32_t generation; /* AS_OF_FRAME: >= 1 */
	uint32_t frame;
};

/* Room for the canonical text of any as_of, with its NUL. */
#define AS_OF_TEXT_SIZE 40

/* Parse text: an RFC 3339 time (offsets allowed; none = UTC; fractions
 * finer than a millisecond truncated) from 1970 on, or GENERATION:FRAME in
 * plain decimal digits with GENERATION >= 1.  Returns 0 with *out, or -1
 * (*out untouched). */
int as_of_parse(const char *text, struct as_of *out);

/* The canonical text of a (not AS_OF_NONE): the time in UTC with
 * milliseconds ("2026-12-03T17:00:00.250Z"), or "G:F".  It holds only
 * characters that need no escaping in a URL's query. */
void as_of_format(const struct as_of *a, char out[AS_OF_TEXT_SIZE]);

/* Do a and b name the same request (equal times, or the same frame)? */
int as_of_equal(const struct as_of *a, const struct as_of *b);

/* Does want name the state that the request `held` resolved to (a commit
 * made at unix_ms, frame `frame` of generation `generation`)?  So it does
 * when it is the same request, or that state's frame, or (for a state found
 * by time) that state's time: the last commit at or before the state's time
 * is the state itself. */
int as_of_names_state(const struct as_of *want, const struct as_of *held,
		      int64_t unix_ms, uint32_t generation, uint32_t frame);

#endif
