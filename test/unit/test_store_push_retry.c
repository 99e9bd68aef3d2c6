/* Pushes sent again or overtaken: a transaction pushed with an id (?txn=)
 * and sent again after a lost answer or a restart, applied once; and a push
 * for a generation that a rollover ended (?rollover=1), carried into the
 * next generation or refused as a conflict. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "store_fixture.h"
#include "store_test_helpers.h"
#include "server/push_log.h"
#include "server/store.h"
#include "wal/walfmt.h"

static json_t *push_txn(struct store *s, uint32_t start, uint32_t end,
			const char *baton, const uint8_t *txn,
			const uint8_t *body, size_t len)
{
	struct http_reply r = {0};
	json_t *j;

	struct store_push_opts o = {.flags = STORE_PUSH_STRICT, .txn = txn};

	store_push(s, 1, start, end, baton, &o, body, len, &r);
	ck_assert_int_eq(r.status, 200);
	j = json_loadb(r.body, r.len, 0, NULL);
	http_reply_free(&r);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* A transaction pushed with an id (?txn=, what replite replicas send) and
 * sent again, whole or its last request only, after a lost answer or with
 * the primary restarted in between: answered as committed, applied once.
 * Another id with the same bytes is another writer's: a conflict.  A
 * record whose frames never became durable does not count. */
START_TEST(test_push_txn_sent_again)
{
	static const uint8_t x[FRAMES_TXN_ID_SIZE] = {1, 2, 3};
	static const uint8_t y[FRAMES_TXN_ID_SIZE] = {9, 9, 9};
	static const uint8_t z[FRAMES_TXN_ID_SIZE] = {7};
	struct push_log_record rec = {.first = 0};
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	size_t len;
	char *path, err[256];
	struct push_log *pl;
	json_t *j;
	int round;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;
	ck_assert_uint_ge(n, 2);
	j = push_txn(b.store, 1, n + 1, NULL, x, frames, len);
	ck_assert_str_eq(sth_str_of(j, "status"), "ok");
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), n);
	json_decref(j);
	for (round = 0; round < 2; round++) {
		/* Whole, then its last request alone (a baton that is gone). */
		j = push_txn(b.store, 1, n + 1, NULL, x, frames, len);
		ck_assert_str_eq(sth_str_of(j, "status"), "ok");
		ck_assert_int_eq(sth_int_of(j, "max_frame_no"), n);
		ck_assert_int_eq(sth_int_of(j, "generation"), 1);
		json_decref(j);
		j = push_txn(b.store, n, n + 1, "gone", x,
			     frames + (size_t)(n - 1) * WALFMT_FRAME_SIZE,
			     WALFMT_FRAME_SIZE);
		ck_assert_str_eq(sth_str_of(j, "status"), "ok");
		ck_assert_int_eq(sth_int_of(j, "max_frame_no"), n);
		json_decref(j);
		ck_assert_uint_eq(store_head(b.store), n);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
		/* The same bytes under another id: another writer's. */
		j = push_txn(b.store, 1, n + 1, NULL, y, frames, len);
		ck_assert_str_eq(sth_str_of(j, "status"), "conflict");
		json_decref(j);
		ck_assert_uint_eq(store_head(b.store), n);
		/* The record is durable: after a restart too. */
		fx_close(&b);
		fx_open(&b);
	}
	sth_assert_log_matches_live(&b, 1);

	/* A record naming frames n+1.. that never reached the log (a crash
	 * between the record and the frames): z is not committed, so its
	 * push (frames n+1..) is applied, once. */
	fx_exec(&a, "INSERT INTO t VALUES (5)");
	free(frames);
	{
		struct store_frames fr;
		uint32_t m;
		ck_assert_int_eq(store_pull(a.store, 1, n + 1, 100000, &fr),
				 STORE_PULL_FRAMES);
		m = fr.end - (n + 1);
		frames = malloc(fr.len);
		ck_assert_int_eq(pread(fr.fd, frames, fr.len, (off_t)fr.offset),
				 (ssize_t)fr.len);
		close(fr.fd);
		fx_close(&b);
		path = fixture_path(b.data, "gen-00000001/pushes.log");
		ck_assert_int_eq(push_log_open(path, &pl, err, sizeof err), 0);
		memcpy(rec.id, z, sizeof z);
		rec.first = n + 1;
		rec.last = n + m;
		rec.digest = 12345;
		ck_assert_int_eq(push_log_append(pl, &rec), 0);
		push_log_close(pl);
		free(path);
		fx_open(&b);
		j = push_txn(b.store, n + 1, n + m + 1, NULL, z, frames,
			     (size_t)m * WALFMT_FRAME_SIZE);
		ck_assert_str_eq(sth_str_of(j, "status"), "ok");
		json_decref(j);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
		j = push_txn(b.store, n + 1, n + m + 1, NULL, z, frames,
			     (size_t)m * WALFMT_FRAME_SIZE);
		ck_assert_str_eq(sth_str_of(j, "status"), "ok");
		json_decref(j);
		ck_assert_int_eq(
		    fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	}
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push of generation gen, frames [start, end) taken from A's frames
 * from A's frame number from on, with flags: the reply's status, generation
 * and max_frame_no must be the ones given. */
static void assert_push_reply(struct fx *b, uint32_t gen, uint32_t start,
			      uint32_t end, const char *baton, unsigned flags,
			      uint8_t *frames, uint32_t from,
			      const char *status, uint32_t want_gen,
			      uint32_t want_head)
{
	int http;
	json_t *j = sth_push_mode(
	    b->store, gen, start, end, baton, flags, sth_frame_at(frames, from),
	    (size_t)(end - start) * WALFMT_FRAME_SIZE, &http);

	ck_assert_int_eq(http, 200);
	ck_assert_msg(strcmp(sth_str_of(j, "status"), status) == 0,
		      "push of generation %u [%u, %u): %s, expected %s", gen,
		      start, end, sth_str_of(j, "status"), status);
	ck_assert_int_eq(sth_int_of(j, "generation"), want_gen);
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), want_head);
	json_decref(j);
}

/* The first frames of A's transactions: starts[i] is where transaction i
 * (0-based) begins, starts[n_txns] = n + 1. */
static void txn_starts(uint8_t *frames, uint32_t n, uint32_t *starts,
		       size_t n_txns)
{
	size_t k = 0;
	uint32_t i;

	starts[0] = 1;
	for (i = 1; i <= n; i++) {
		if (walfmt_get32(sth_frame_at(frames, i) + 4) != 0) {
			ck_assert_uint_lt(k, n_txns);
			starts[++k] = i + 1;
		}
	}
	ck_assert_uint_eq(k, n_txns);
}

/* A push for a generation that ended right where the push starts, with
 * nothing logged since (the rollover came between the client's look at the
 * head and its push): with ?rollover=1 it becomes frames 1... of the next
 * generation, also when the rollover came between two requests of one
 * push, after a restart, and once the ended generation is past retention;
 * without the flag, not right after the end, after something else was
 * logged, or when more frames follow the commit, it is a conflict. */
START_TEST(test_push_after_rollover)
{
	static const char *const txns[] = {
	    "BEGIN; INSERT INTO t VALUES (1); CREATE TABLE u(y);"
	    "INSERT INTO u VALUES (zeroblob(6000)); COMMIT",
	    "BEGIN; INSERT INTO t VALUES (2); CREATE TABLE v(z);"
	    "INSERT INTO v VALUES (zeroblob(6000)); COMMIT",
	    "INSERT INTO t VALUES (3)",
	    "INSERT INTO t VALUES (4)",
	    "INSERT INTO u VALUES (zeroblob(9000))",
	};
	const unsigned both = STORE_PUSH_STRICT | STORE_PUSH_ROLLOVER;
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, s[6], len2, len3, len4;
	struct store_frames fr;
	char *baton;
	int status;
	json_t *j;

	sth_push_pair(&a, &b, txns, 5, &frames, &n);
	txn_starts(frames, n, s, 5);
	len2 = s[2] - s[1];
	len3 = s[3] - s[2];
	len4 = s[4] - s[3];
	ck_assert_uint_ge(len2, 2);
	fx_close(&b);
	b.cfg.generation_frames = 1;
	fx_open(&b);

	/* Generation 1: the first transaction, and the first request of the
	 * second; then the rollover; then the rest of the second, which
	 * becomes generation 2's frames 1..len2. */
	free(sth_assert_push_ok(&b, 1, s[1], NULL, frames));
	j = sth_push_mode(b.store, 1, s[1], s[1] + 1, NULL, both,
			  sth_frame_at(frames, s[1]), WALFMT_FRAME_SIZE,
			  &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(sth_str_of(j, "status"), "ok");
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), s[1]);
	baton = strdup(sth_str_of(j, "baton"));
	json_decref(j);
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 2);
	ck_assert_uint_eq(store_head(b.store), 0);
	assert_push_reply(&b, 1, s[1] + 1, s[2], baton, both, frames, s[1] + 1,
			  "ok", 2, len2);
	free(baton);
	ck_assert_uint_eq(store_head(b.store), len2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 2);

	/* Generation 2 ends at frame len2; after a restart, and once
	 * retention dropped generations 1 and 2, that is still known. */
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 3);
	fx_close(&b);
	b.cfg.retention_ms = 0;
	fx_open(&b);
	usleep(2000);
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 3);
	ck_assert_int_eq(store_pull(b.store, 2, 1, 10, &fr),
			 STORE_PULL_UNKNOWN_GEN);
	/* Without the flag (a libSQL client), not right after the end, for
	 * an older generation, or with frames after the commit: conflicts,
	 * and nothing changes. */
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL,
			  STORE_PUSH_STRICT, frames, s[2], "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, 0, frames,
			  s[2], "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 2, len2 + 2 + len3, NULL, both, frames,
			  s[2], "conflict", 3, 0);
	assert_push_reply(&b, 1, s[1], s[1] + len3, NULL, both, frames, s[2],
			  "conflict", 3, 0);
	assert_push_reply(&b, 2, len2 + 1, len2 + 2 + len3 + len4, NULL, both,
			  frames, s[2], "conflict", 3, 0);
	ck_assert_uint_eq(store_head(b.store), 0);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);

	/* The third transaction alone: generation 3's frames 1..len3.  The
	 * same push again (its answer lost) finds generation 3 no longer
	 * empty: a conflict, not a second copy. */
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, both, frames,
			  s[2], "ok", 3, len3);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL, both, frames,
			  s[2], "conflict", 3, len3);
	assert_push_reply(&b, 2, len2 + 1, len2 + 1 + len3, NULL,
			  STORE_PUSH_ROLLOVER, frames, s[2], "conflict", 3,
			  len3);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 3);

	/* Generation 3 ended, and an SQL commit reached generation 4 first:
	 * the fourth transaction is built on a state that is gone. */
	store_maintain(b.store);
	ck_assert_uint_eq(store_generation(b.store), 4);
	fx_exec(&b, "INSERT INTO t VALUES (99)");
	assert_push_reply(&b, 3, len3 + 1, len3 + 1 + len4, NULL, both, frames,
			  s[3], "conflict", 4, store_head(b.store));
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM t WHERE x = 4"), 0);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 4);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

static Suite *store_push_retry_suite(void)
{
	Suite *s = suite_create("store_push_retry");
	TCase *tc = tcase_create("store_push_retry");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_push_after_rollover);
	tcase_add_test(tc, test_push_txn_sent_again);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(store_push_retry_suite());
}
