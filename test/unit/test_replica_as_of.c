/* As-of replicas (URI as_of) against a real primary, through a
 * fault-injecting proxy (fault_proxy.h) where the transfer is the point:
 *
 *   1. a byte flipped in a frame or in the image of an as-of bootstrap is
 *      never applied: the answer fails verification, is fetched again and
 *      counted, and the replica holds exactly the state as of its time,
 *      though the primary has frames after it;
 *   2. a bootstrap cut short (the state file still says bootstrapping, over
 *      a file that has content) is done again only by an open with the same
 *      as_of, through a whole image rolled forward to the state, never past
 *      it; other opens are refused and change nothing;
 *   3. a state file whose database was deleted gets the same state again;
 *   4. the state of frame 0 (a generation's base) and the request log: no
 *      frame past the state is ever asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/replica_state.h"

/* Needles of the request log: a GET /sync/..., a GET /info (with or
 * without ?as_of: the log has the path only). */
#define RFX_LOG_SYNC "\"method\":\"GET\",\"route\":\"/sync/"
#define RFX_LOG_INFO_AS_OF "\"method\":\"GET\",\"route\":\"/info\""

struct world {
	struct rfx_env env;
	struct fault_proxy *proxy;
	char as_of[64];  /* the time recorded after round 2 */
	char query[128]; /* "sync_interval=0&as_of=..." */
};

/* A table whose every row an update round rewrites, with an index, so
 * that every round is many frames. */
static void round_writes(const char *url, int round)
{
	char sql[256];

	snprintf(sql, sizeof sql,
		 "UPDATE t SET v = printf('round %d %%d %%s', id, "
		 "hex(randomblob(40)))",
		 round);
	rfx_primary_exec(url, sql);
}

/* Rows of round r in the replica (all 200 when it holds that state). */
static int64_t rows_of_round(sqlite3 *db, int r)
{
	char sql[128];

	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM t WHERE v LIKE 'round %d %%'", r);
	return fixture_query_int(db, sql);
}

/* Rounds 1 and 2, the time after them, rounds 3 and 4: the state as of
 * that time is round 2's, and the primary has frames after it. */
static void world_start(struct world *w, const char *const *server_args)
{
	int64_t now;

	rfx_env_start(&w->env, server_args);
	rfx_primary_exec(w->env.srv.url,
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			 "CREATE INDEX t_v ON t(v);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 200) INSERT INTO t(v) SELECT "
			 "printf('row %d', i) FROM n");
	round_writes(w->env.srv.url, 1);
	round_writes(w->env.srv.url, 2);
	rfx_sleep_ms(20);
	now = clock_unix_ms();
	clock_format_rfc3339(now, w->as_of, sizeof w->as_of);
	rfx_sleep_ms(20);
	round_writes(w->env.srv.url, 3);
	round_writes(w->env.srv.url, 4);
	snprintf(w->query, sizeof w->query, "sync_interval=0&as_of=%s",
		 w->as_of);
	w->proxy = fault_proxy_start(atoi(strrchr(w->env.srv.url, ':') + 1));
	ck_assert_ptr_nonnull(w->proxy);
}

static void world_stop(struct world *w)
{
	fault_proxy_stop(w->proxy);
	rfx_env_stop(&w->env);
}

/* SELECT replite_verify() parsed (json_decref). */
static json_t *verify_json(sqlite3 *db)
{
	sqlite3_stmt *st;
	json_t *v;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_verify()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	ck_assert_ptr_nonnull(v);
	return v;
}

/* The replica holds round 2's state, sound, its checksum the one recorded
 * when it was downloaded (and verified). */
static void assert_round_2(sqlite3 *db)
{
	json_t *v;

	ck_assert_int_eq(rows_of_round(db, 2), 200);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 200);
	fixture_assert_integrity(db);
	v = verify_json(db);
	ck_assert_msg(json_is_true(json_object_get(v, "match")),
		      "replite_verify() says the file does not match");
	ck_assert_str_eq(json_string_value(json_object_get(v, "local")),
			 json_string_value(json_object_get(v, "recorded")));
	json_decref(v);
}

/* ---------------------------------------------------------------------- */
/* 1. damaged answers */

static void damaged_bootstrap(enum fault_proxy_fault fault, const char *match,
			      int param)
{
	struct world w;
	sqlite3 *db;

	world_start(&w, NULL);
	ck_assert_int_eq(fault_proxy_set(w.proxy, fault, match, param), 0);
	db = rfx_open(w.env.path, fault_proxy_url(w.proxy), w.query);
	ck_assert_uint_eq(fault_proxy_fired(w.proxy), 1);
	ck_assert_int_eq(rfx_status_int(db, "rejected_transfers"), 1);
	assert_round_2(db);
	sqlite3_close(db);
	world_stop(&w);
}

START_TEST(test_damaged_frame_is_fetched_again)
{
	damaged_bootstrap(FAULT_PROXY_CORRUPT_PAGE, "GET /sync/", 2);
}
END_TEST

START_TEST(test_damaged_page_number_is_fetched_again)
{
	damaged_bootstrap(FAULT_PROXY_CORRUPT_HEADER, "GET /sync/", 1);
}
END_TEST

START_TEST(test_damaged_image_is_fetched_again)
{
	damaged_bootstrap(FAULT_PROXY_CORRUPT_BYTE, "GET /export/", 5000);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. a bootstrap cut short */

static void set_bootstrapping(const char *path)
{
	char *state_path = replica_state_path(path);
	struct replica_state st;
	char err[512];

	ck_assert_msg(replica_state_load(state_path, &st, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(st.has_as_of, 1);
	st.bootstrapping = 1;
	ck_assert_msg(replica_state_save(state_path, &st, err, sizeof err) == 0,
		      "%s", err);
	replica_state_free(&st);
	free(state_path);
}

START_TEST(test_interrupted_bootstrap_is_redone_with_the_same_as_of)
{
	struct world w;
	sqlite3 *db;
	char *state_path, *before, *after, *msg, query[128], resolved[64];
	size_t before_len, after_len;
	json_t *status;

	world_start(&w, NULL);
	db = rfx_open(w.env.path, w.env.srv.url, w.query);
	status = rfx_status_json(db);
	snprintf(resolved, sizeof resolved, "%s",
		 json_string_value(json_object_get(status, "as_of")));
	json_decref(status);
	sqlite3_close(db);
	set_bootstrapping(w.env.path);
	state_path = replica_state_path(w.env.path);
	before = rfx_slurp(state_path, &before_len);

	/* Until its image is whole again, the state's own time does not
	 * name it (its position is unknown): only the request does. */
	snprintf(query, sizeof query, "as_of=%s", resolved);
	ck_assert_int_ne(
	    rfx_try_open(w.env.path, w.env.srv.url, query, &db, &msg),
	    SQLITE_OK);
	RFX_ASSERT_HAS(msg, "is an as-of replica of another state");
	free(msg);
	ck_assert_int_ne(rfx_try_open(w.env.path, w.env.srv.url,
				      "sync_interval=0", &db, &msg),
			 SQLITE_OK);
	RFX_ASSERT_HAS(msg, "is an as-of replica: it holds the primary's "
			    "state as of");
	free(msg);
	after = rfx_slurp(state_path, &after_len);
	ck_assert_uint_eq(after_len, before_len);
	ck_assert_int_eq(memcmp(after, before, before_len), 0);
	free(after);

	/* The same as_of downloads it again: a whole image (the file has
	 * content), rolled forward to the state, a damaged frame on the way
	 * refused. */
	ck_assert_int_eq(
	    fault_proxy_set(w.proxy, FAULT_PROXY_CORRUPT_PAGE, "GET /sync/", 1),
	    0);
	db = rfx_open(w.env.path, fault_proxy_url(w.proxy), w.query);
	ck_assert_int_eq(rfx_status_int(db, "rejected_transfers"), 1);
	assert_round_2(db);
	ck_assert_int_eq(rfx_state_int(w.env.path, "frame_no"),
			 rfx_status_int(db, "frame_no"));
	/* The image went through the WAL, and with no sync thread to
	 * checkpoint it ever, into the file at once. */
	{
		char wal[4096];
		struct stat sb;
		snprintf(wal, sizeof wal, "%s-wal", w.env.path);
		ck_assert_int_eq(stat(wal, &sb), 0);
		ck_assert_int_eq(sb.st_size, 0);
	}
	sqlite3_close(db);
	free(before);
	free(state_path);
	world_stop(&w);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. the database deleted under its state file */

START_TEST(test_deleted_database_gets_the_same_state)
{
	struct world w;
	sqlite3 *db;
	char wal[4096], query[128], *state_path, *text;
	size_t len;
	json_t *status;
	int64_t frame;

	world_start(&w, NULL);
	db = rfx_open(w.env.path, w.env.srv.url, w.query);
	frame = rfx_status_int(db, "frame_no");
	status = rfx_status_json(db);
	snprintf(query, sizeof query, "as_of=%s",
		 json_string_value(json_object_get(status, "as_of")));
	json_decref(status);
	sqlite3_close(db);
	ck_assert_int_eq(unlink(w.env.path), 0);
	snprintf(wal, sizeof wal, "%s-wal", w.env.path);
	unlink(wal);
	/* Opened by the state's own time: downloaded again for the request
	 * it was made with, which the state file keeps. */
	db = rfx_open(w.env.path, w.env.srv.url, query);
	assert_round_2(db);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), frame);
	sqlite3_close(db);
	state_path = replica_state_path(w.env.path);
	text = rfx_slurp(state_path, &len);
	ck_assert_ptr_nonnull(text);
	{
		char needle[128];
		snprintf(needle, sizeof needle, "\"as_of_request\":\"%s\"",
			 w.as_of);
		ck_assert_ptr_nonnull(
		    memmem(text, len, needle, strlen(needle)));
	}
	free(text);
	free(state_path);
	world_stop(&w);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 4. frame 0, and what is asked for */

START_TEST(test_nothing_past_the_state_is_requested)
{
	static const char *const args[] = {"--log-requests", NULL};
	struct world w;
	struct rfx_info info;
	sqlite3 *db;
	char query[64], *base_path;
	int64_t frame;

	world_start(&w, args);
	db = rfx_open(w.env.path, w.env.srv.url, w.query);
	frame = rfx_status_int(db, "frame_no");
	/* One image, and frames up to the state only: every answer of
	 * frames ends at its frame. */
	ck_assert_int_eq(rfx_log_count(&w.env.srv, RFX_LOG_EXPORT), 1);
	{
		char needle[128];
		snprintf(needle, sizeof needle,
			 "\"path\":\"/sync/1/1/%lld\",\"status\":200",
			 (long long)frame + 1);
		ck_assert_int_eq(rfx_log_count(&w.env.srv, needle), 1);
		ck_assert_int_eq(rfx_log_count(&w.env.srv, RFX_LOG_SYNC), 1);
		ck_assert_int_eq(rfx_log_count(&w.env.srv, RFX_LOG_INFO_AS_OF),
				 1);
	}
	/* The primary's head is past the state. */
	rfx_primary_info(w.env.srv.url, NULL, &info);
	ck_assert_int_lt(frame, info.max_frame_no);
	sqlite3_close(db);

	/* Frame 0: the generation's base, the empty database. */
	base_path = fixture_path(w.env.dir, "base.db");
	snprintf(query, sizeof query, "sync_interval=0&as_of=1:0");
	db = rfx_open(base_path, w.env.srv.url, query);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_master"), 0);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), 0);
	/* Nothing but the image: no frame asked for. */
	ck_assert_int_eq(rfx_log_count(&w.env.srv, RFX_LOG_EXPORT), 2);
	ck_assert_int_eq(rfx_log_count(&w.env.srv, RFX_LOG_SYNC), 1);
	sqlite3_close(db);
	free(base_path);
	world_stop(&w);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_damaged_frame_is_fetched_again,
	    test_damaged_page_number_is_fetched_again,
	    test_damaged_image_is_fetched_again,
	    test_interrupted_bootstrap_is_redone_with_the_same_as_of,
	    test_deleted_database_gets_the_same_state,
	    test_nothing_past_the_state_is_requested,
	};

	return rfx_run_tests("replica_as_of", tests,
			     sizeof tests / sizeof tests[0]);
}
