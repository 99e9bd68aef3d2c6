/* Pushes into the primary's storage (store_push): frames of one primary
 * applied on another, acknowledged again after a lost reply, conflicts for
 * frames that do not follow the head or of another generation, and
 * transactions pushed over several requests with a baton (nothing visible
 * before the commit frame, a commit mid-request, a conflict at the commit,
 * an expired baton). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "store_fixture.h"
#include "store_test_helpers.h"
#include "server/store.h"
#include "wal/walfmt.h"

/* Two primaries seeded from the same file; frames of A pushed to B make B
 * equal to A. */
START_TEST(test_push_applies_frames)
{
	struct fx a, b;
	char *seed;
	sqlite3 *db;
	uint8_t *frames;
	uint32_t n, m;
	int status;
	json_t *j;

	fx_init(&a, "a");
	fx_init(&b, "b");
	seed = fixture_path(a.dir, "seed.db");
	ck_assert_int_eq(sqlite3_open(seed, &db), SQLITE_OK);
	fixture_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42)");
	sqlite3_close(db);
	a.cfg.import_path = seed;
	b.cfg.import_path = seed;
	fx_open(&a);
	fx_open(&b);
	/* One transaction of several pages: only its last frame commits. */
	fx_exec(&a, "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"
		    "CREATE TABLE u(y); COMMIT");
	frames = sth_pull_all(a.store, 1, &n);
	ck_assert_uint_ge(n, 2);

	/* Wrong body size, page 0, bad page 1: refused, nothing applied. */
	j = sth_push(b.store, 1, 1, n + 1, NULL, frames,
		     n * WALFMT_FRAME_SIZE - 1, &status);
	ck_assert_int_eq(status, 400);
	json_decref(j);

	/* Push in two requests: the first has no commit frame, so a baton
	 * carries the sequence. */
	j = sth_push(b.store, 1, 1, 2, NULL, frames, WALFMT_FRAME_SIZE,
		     &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 1);
	{
		char *baton =
		    strdup(json_string_value(json_object_get(j, "baton")));
		json_decref(j);
		j = sth_push(b.store, 1, 2, n + 1, baton,
			     frames + WALFMT_FRAME_SIZE,
			     (n - 1) * WALFMT_FRAME_SIZE, &status);
		free(baton);
	}
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 n);
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT sum(x) FROM t"), 45);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);

	/* The same push again (a lost reply) is acknowledged, not applied. */
	j = sth_push(b.store, 1, 1, n + 1, NULL, frames, n * WALFMT_FRAME_SIZE,
		     &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	/* A strict push (a replite replica) of the same frames is another
	 * writer's transaction that lost: conflict, never "ok". */
	j = sth_push_mode(b.store, 1, 1, n + 1, NULL, 1, frames,
			  n * WALFMT_FRAME_SIZE, &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);

	/* A push again that starts with the logged frames and goes on with
	 * new ones (a lost answer, then more local writes): the logged part
	 * is acknowledged and the rest applied; a strict one conflicts. */
	fx_exec(&a, "INSERT INTO t VALUES (7)");
	free(frames);
	frames = sth_pull_all(a.store, 1, &m);
	ck_assert_uint_gt(m, n);
	j = sth_push_mode(b.store, 1, 1, m + 1, NULL, 1, frames,
			  m * WALFMT_FRAME_SIZE, &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 3);
	j = sth_push(b.store, 1, 1, m + 1, NULL, frames, m * WALFMT_FRAME_SIZE,
		     &status);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "max_frame_no")),
			 m);
	json_decref(j);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);

	/* Frames that do not follow the head: conflict. */
	fx_exec(&a, "INSERT INTO t VALUES (3)");
	free(frames);
	frames = sth_pull_all(a.store, 1, &n);
	fx_exec(&b, "INSERT INTO t VALUES (99)");
	j = sth_push(b.store, 1, n, n + 1, NULL,
		     frames + (n - 1) * WALFMT_FRAME_SIZE, WALFMT_FRAME_SIZE,
		     &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "conflict");
	json_decref(j);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM t WHERE x = 3"), 0);

	free(frames);
	free(seed);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* Frames that do not start right after the head, or of another generation,
 * change nothing; the reply gives the head so that the client can resume. */
START_TEST(test_push_not_at_head)
{
	struct fx a, b;
	uint8_t *frames, *copy;
	uint32_t n;
	size_t len;
	int status;
	json_t *j;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	len = (size_t)n * WALFMT_FRAME_SIZE;

	/* A gap: frames 3.. when the head is 0. */
	j = sth_push(b.store, 1, 3, n + 3, NULL, frames, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_msg(strcmp(sth_str_of(j, "status"), "conflict") == 0 ||
			  strcmp(sth_str_of(j, "status"), "ok") == 0,
		      "status %s", sth_str_of(j, "status"));
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), 0);
	ck_assert_int_eq(sth_int_of(j, "generation"), 1);
	json_decref(j);
	sth_assert_untouched(&b);

	/* Another generation. */
	j = sth_push(b.store, 2, 1, n + 1, NULL, frames, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(sth_str_of(j, "status"), "conflict");
	ck_assert_int_eq(sth_int_of(j, "generation"), 1);
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), 0);
	json_decref(j);
	sth_assert_untouched(&b);

	free(sth_assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);

	/* The same range again with other content: not a retry of what
	 * was applied, so a conflict, and nothing changes. */
	copy = malloc(len);
	memcpy(copy, frames, len);
	sth_frame_at(copy, n)[WALFMT_FRAME_SIZE - 1] ^= 0x55;
	j = sth_push(b.store, 1, 1, n + 1, NULL, copy, len, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(sth_str_of(j, "status"), "conflict");
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), n);
	json_decref(j);
	ck_assert_uint_eq(store_head(b.store), n);
	sth_assert_log_matches_live(&b, 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	free(copy);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A transaction pushed one frame per request: nothing is visible (live
 * database, log head, pulls) until its commit frame arrives, then all of
 * it at once. */
START_TEST(test_push_baton_atomic)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, i;
	char *baton = NULL;
	struct store_frames fr;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	ck_assert_uint_ge(n, 3);
	for (i = 1; i < n; i++) {
		char *next;
		ck_assert_uint_eq(walfmt_get32(sth_frame_at(frames, i) + 4), 0);
		next = sth_assert_push_ok(&b, i, i + 1, baton,
					  sth_frame_at(frames, i));
		ck_assert_msg(next != NULL, "no baton after frame %u", i);
		free(baton);
		baton = next;
		sth_assert_untouched(&b);
		if (i == 1) {
			/* Out of order continuations are refused and do
			 * not spoil the pending push. */
			sth_assert_push_refused(
			    &b, 1, 3, 4, baton, sth_frame_at(frames, 3),
			    WALFMT_FRAME_SIZE, 400, "PUSH_OUT_OF_ORDER");
			sth_assert_push_refused(
			    &b, 2, 2, 3, baton, sth_frame_at(frames, 2),
			    WALFMT_FRAME_SIZE, 400, "PUSH_OUT_OF_ORDER");
			sth_assert_untouched(&b);
		}
	}
	ck_assert_uint_ne(walfmt_get32(sth_frame_at(frames, n) + 4), 0);
	{
		char *last = sth_assert_push_ok(&b, n, n + 1, baton,
						sth_frame_at(frames, n));
		ck_assert_ptr_null(last);
	}
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(store_pull(b.store, 1, 1, 100, &fr),
			 STORE_PULL_FRAMES);
	close(fr.fd);
	ck_assert_uint_eq(fr.end, n + 1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 6000);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* One request ending with the start of the next transaction: the first
 * transaction is applied at once, the rest waits for its commit. */
START_TEST(test_push_commit_mid_request)
{
	static const char *const txns[] = {
	    "INSERT INTO t VALUES (1)",
	    "BEGIN; CREATE TABLE u(y); INSERT INTO u VALUES (zeroblob(9000));"
	    "COMMIT",
	};
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, k1;
	char *baton;

	sth_push_pair(&a, &b, txns, 2, &frames, &n);
	for (k1 = 1; k1 <= n; k1++) {
		if (walfmt_get32(sth_frame_at(frames, k1) + 4) != 0)
			break;
	}
	ck_assert_uint_lt(k1 + 1, n); /* the second has >= 2 frames */
	baton = sth_assert_push_ok(&b, 1, k1 + 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	ck_assert_uint_eq(store_head(b.store), k1);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM sqlite_schema"), 1);
	free(sth_assert_push_ok(&b, k1 + 2, n + 1, baton,
				sth_frame_at(frames, k1 + 2)));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT length(y) FROM u"),
			 9000);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push started at head + 1 whose commit arrives after an SQL commit
 * moved the head: a conflict, and none of its frames are applied. */
START_TEST(test_push_pending_conflict_at_commit)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n, head;
	char *baton;
	int status;
	json_t *j;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	baton = sth_assert_push_ok(&b, 1, 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	fx_exec(&b, "INSERT INTO t VALUES (7)");
	head = store_head(b.store);
	ck_assert_uint_gt(head, 0);
	j = sth_push(b.store, 1, 2, n + 1, baton, sth_frame_at(frames, 2),
		     (size_t)(n - 1) * WALFMT_FRAME_SIZE, &status);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(sth_str_of(j, "status"), "conflict");
	ck_assert_int_eq(sth_int_of(j, "max_frame_no"), head);
	json_decref(j);
	ck_assert_uint_eq(store_head(b.store), head);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT sum(x) FROM t"), 49);
	ck_assert_int_eq(
	    fixture_query_int(b.db, "SELECT count(*) FROM sqlite_schema"), 1);
	fixture_assert_integrity(b.db);
	sth_assert_log_matches_live(&b, 1);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

/* A push left without its commit frame expires; its frames never
 * appear, and a fresh push of the whole transaction works. */
START_TEST(test_push_baton_expires)
{
	struct fx a, b;
	uint8_t *frames;
	uint32_t n;
	char *baton;
	int status;
	json_t *j;

	sth_push_pair(&a, &b, sth_three_page_txn, 1, &frames, &n);
	b.cfg.push_expiry_ms = 10;
	fx_close(&b);
	fx_open(&b);
	baton = sth_assert_push_ok(&b, 1, 2, NULL, frames);
	ck_assert_ptr_nonnull(baton);
	usleep(50 * 1000);
	store_maintain(b.store);
	j = sth_push(b.store, 1, 2, n + 1, baton, sth_frame_at(frames, 2),
		     (size_t)(n - 1) * WALFMT_FRAME_SIZE, &status);
	/* Refused (400), or "ok" with the head so the client restarts: but
	 * never applied, never acknowledged up to n. */
	ck_assert_msg(!(status == 200 &&
			strcmp(sth_str_of(j, "status"), "ok") == 0 &&
			sth_int_of(j, "max_frame_no") == n),
		      "the continuation of an expired push was acknowledged");
	json_decref(j);
	sth_assert_untouched(&b);
	free(sth_assert_push_ok(&b, 1, n + 1, NULL, frames));
	ck_assert_uint_eq(store_head(b.store), n);
	ck_assert_int_eq(fixture_query_int(b.db, "SELECT count(*) FROM t"), 2);
	free(baton);
	free(frames);
	fx_done(&a);
	fx_done(&b);
}
END_TEST

static Suite *store_push_suite(void)
{
	Suite *s = suite_create("store_push");
	TCase *tc = tcase_create("store_push");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_push_applies_frames);
	tcase_add_test(tc, test_push_not_at_head);
	tcase_add_test(tc, test_push_baton_atomic);
	tcase_add_test(tc, test_push_commit_mid_request);
	tcase_add_test(tc, test_push_pending_conflict_at_commit);
	tcase_add_test(tc, test_push_baton_expires);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(store_push_suite());
}
