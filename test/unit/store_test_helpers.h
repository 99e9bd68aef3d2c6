/* Helpers shared by the tests of the primary's storage (test_store.c and
 * test_store_push*.c, one theme each): files read and copied, the frame log
 * replayed against the live database, the live database's checksum, and
 * pushes from one primary to another with their replies checked. */
#ifndef REPLITE_TEST_STORE_TEST_HELPERS_H
#define REPLITE_TEST_STORE_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store_fixture.h"

/* ---------------------------------------------------------------------- */
/* files, the log and the checksum */

/* A copy of the file src at dst: old copies of a live database. */
void sth_copy_file(const char *src, const char *dst);

/* base(gen) + frames [1, head] of gen, replayed into a scratch file, must be
 * byte-equal to the live database once it is fully checkpointed. */
void sth_assert_log_matches_live(struct fx *f, uint32_t gen);

/* The checksum /info reports equals the whole-database checksum of the
 * live database, computed from scratch, after every kind of change. */
void sth_assert_checksum_of_live(struct fx *f);

/* ---------------------------------------------------------------------- */
/* pushes */

/* store_push of frames [start, end) of generation gen with flags
 * (STORE_PUSH_*): the reply's JSON, its HTTP status in *status. */
json_t *sth_push_mode(struct store *s, uint32_t gen, uint32_t start,
		      uint32_t end, const char *baton, unsigned flags,
		      const uint8_t *body, size_t len, int *status);
/* sth_push_mode without flags (a libSQL client's push). */
json_t *sth_push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		 const char *baton, const uint8_t *body, size_t len,
		 int *status);
/* All the frames of generation gen (malloc'd), their number in *n: what a
 * primary logged, to push to another. */
uint8_t *sth_pull_all(struct store *s, uint32_t gen, uint32_t *n);

/* Primaries a and b seeded from the same file; a's transactions (SQL, run
 * in order) are pulled into *frames (*n frames). */
void sth_push_pair(struct fx *a, struct fx *b, const char *const *txns,
		   size_t n_txns, uint8_t **frames, uint32_t *n);
/* Frame frame_no (1-based) of frames. */
uint8_t *sth_frame_at(uint8_t *frames, uint32_t frame_no);

/* The string field key of a reply, or "(none)": safe in messages. */
const char *sth_str_of(json_t *j, const char *key);
/* The integer field key of a reply, which must be there. */
json_int_t sth_int_of(json_t *j, const char *key);

/* A push that must be refused with HTTP status and error code (NULL: any
 * code), and a message. */
void sth_assert_push_refused(struct fx *f, uint32_t gen, uint32_t start,
			     uint32_t end, const char *baton,
			     const uint8_t *body, size_t len, int status,
			     const char *code);
/* A push of generation 1 that must succeed: status "ok", max_frame_no ==
 * end - 1.  Returns the baton (malloc'd) or NULL. */
char *sth_assert_push_ok(struct fx *f, uint32_t start, uint32_t end,
			 const char *baton, const uint8_t *body);
/* b still holds only the seed of sth_push_pair. */
void sth_assert_untouched(struct fx *b);

/* One transaction of three frames or more (a row in t, a new table u with
 * a row that overflows), for sth_push_pair. */
extern const char *const sth_three_page_txn[];

#endif
