/* Integrity of what a replica receives (issue 9, findings 2 and 5), with a
 * fault-injecting proxy (fault_proxy.h) between the replica and a real
 * primary:
 *
 *   1. a byte flipped in a pulled page, or in a frame header's page number,
 *      is never applied: the answer fails the checksum chain the primary
 *      announced, is fetched again and counted (rejected_transfers), and the
 *      replica ends equal to the primary;
 *   2. a dead connection (the proxy stalls, or swallows new connections) is
 *      noticed within seconds (last_error names the unreachable primary),
 *      and once the path heals the replica is caught up within 5 s;
 *   3. a push whose answer is lost (the primary committed it) is sent again
 *      (by libcurl itself, or by the replica) and answered as committed:
 *      the write succeeds, exactly once (finding 4);
 *   4. a write by something other than replite (the stock sqlite3 API on
 *      the replica file) never reaches the primary: the write through
 *      replite that would carry it fails, the primary stays sound, and the
 *      replica is downloaded again and equals the primary (finding 1);
 *      in encrypted runs the foreign writer has the key, and bytes written
 *      in clear into the encrypted file are never taken for pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_proxy.h"
#include "fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"

/* How long the liveness tests allow, from the heal to the row showing. */
#define CATCH_UP_MS 5000
/* How long a dead connection may go unnoticed (last_error still null). */
#define NOTICE_MS 6000

struct world {
	struct rfx_env env;
	struct fault_proxy *proxy;
	sqlite3 *db;
};

static int url_port(const char *url)
{
	const char *colon = strrchr(url, ':');

	ck_assert_ptr_nonnull(colon);
	return atoi(colon + 1);
}

/* A primary with table t (an index, so a damaged page shows in
 * integrity_check), a proxy in front of it, and a replica through the
 * proxy with the given URI parameters. */
static void world_start(struct world *w, const char *params)
{
	rfx_env_start(&w->env, NULL);
	rfx_primary_exec(w->env.srv.url,
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			 "CREATE INDEX t_v ON t(v);"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 200) INSERT INTO t(v) SELECT "
			 "printf('row %d %s', i, hex(randomblob(40))) FROM n");
	w->proxy = fault_proxy_start(url_port(w->env.srv.url));
	ck_assert_ptr_nonnull(w->proxy);
	w->db = rfx_open(w->env.path, fault_proxy_url(w->proxy), params);
	ck_assert_int_eq(fixture_query_int(w->db, "SELECT count(*) FROM t"),
			 200);
}

static void world_stop(struct world *w)
{
	sqlite3_close(w->db);
	fault_proxy_stop(w->proxy);
	rfx_env_stop(&w->env);
}

/* Same content, and, once caught up, the same whole-database checksum. */
static void assert_same_checksum(struct world *w)
{
	struct rfx_info info;
	json_t *status;

	rfx_sync(w->db);
	rfx_primary_info(w->env.srv.url, NULL, &info);
	status = rfx_status_json(w->db);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(status, "frame_no")),
	    info.max_frame_no);
	ck_assert_str_eq(json_string_value(json_object_get(status, "checksum")),
			 info.checksum);
	json_decref(status);
}

static void assert_equal_to_primary(struct world *w)
{
	fixture_assert_integrity(w->db);
	rfx_assert_same_table(w->db, w->env.srv.url, "t", "id || ':' || v");
	assert_same_checksum(w);
}

/* A transaction on the primary that changes many pages of t and its index
 * (so that every pulled answer holds several frames). */
static void primary_writes(struct world *w, int round)
{
	char sql[256];

	snprintf(sql, sizeof sql,
		 "UPDATE t SET v = printf('round %d %%d %%s', id, "
		 "hex(randomblob(40)))",
		 round);
	rfx_primary_exec(w->env.srv.url, sql);
}

/* ---------------------------------------------------------------------- */
/* 1. damaged answers */

static void damaged_answer(enum fault_proxy_fault fault)
{
	struct world w;
	char *err;
	int round;

	world_start(&w, "sync_interval=0");
	for (round = 1; round <= 3; round++) {
		unsigned fired = fault_proxy_fired(w.proxy);
		/* Frame `round` of the next answer: not always the first. */
		ck_assert_int_eq(
		    fault_proxy_set(w.proxy, fault, "GET /sync/", round), 0);
		primary_writes(&w, round);
		err = rfx_sync_error(w.db);
		ck_assert_msg(err == NULL, "replite_sync() failed: %s", err);
		ck_assert_uint_eq(fault_proxy_fired(w.proxy), fired + 1);
		ck_assert_int_eq(rfx_status_int(w.db, "rejected_transfers"),
				 round);
		assert_equal_to_primary(&w);
	}
	world_stop(&w);
}

START_TEST(test_corrupt_page)
{
	damaged_answer(FAULT_PROXY_CORRUPT_PAGE);
}
END_TEST

START_TEST(test_corrupt_page_number)
{
	damaged_answer(FAULT_PROXY_CORRUPT_HEADER);
}
END_TEST

/* A damaged answer during a live (background) sync: readers of the replica
 * never see a damaged page, and the replica converges. */
START_TEST(test_corrupt_live)
{
	struct world w;
	int64_t until;
	int round;

	world_start(&w, NULL);
	for (round = 1; round <= 3; round++) {
		ck_assert_int_eq(
		    fault_proxy_set(w.proxy,
				    round % 2 ? FAULT_PROXY_CORRUPT_PAGE
					      : FAULT_PROXY_CORRUPT_HEADER,
				    "GET /sync/", 0),
		    0);
		primary_writes(&w, round);
		until = rfx_now_ms() + CATCH_UP_MS;
		while (rfx_now_ms() < until &&
		       rfx_status_int(w.db, "rejected_transfers") < round)
			rfx_sleep_ms(20);
		ck_assert_int_eq(rfx_status_int(w.db, "rejected_transfers"),
				 round);
		rfx_sync(w.db);
		assert_equal_to_primary(&w);
	}
	world_stop(&w);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. dead connections */

/* The replica is live (a long-poll in flight), the path dies; a commit on
 * the primary is not seen; within NOTICE_MS last_error says the primary is
 * unreachable; once the path heals the commit shows within CATCH_UP_MS. */
static void dead_connection(enum fault_proxy_fault fault)
{
	struct world w;
	int64_t start, noticed_ms, heal, caught_up_ms;
	char *status;

	world_start(&w, NULL);
	/* Let the live sync settle into its long-polls. */
	rfx_sleep_ms(300);
	ck_assert_int_eq(fault_proxy_set(w.proxy, fault, NULL, 0), 0);
	rfx_primary_exec(w.env.srv.url, "INSERT INTO t(v) VALUES ('after')");
	start = rfx_now_ms();
	for (;;) {
		status = rfx_status_text(w.db);
		if (strstr(status, "\"last_error\":null") == NULL)
			break;
		free(status);
		ck_assert_msg(rfx_now_ms() - start < NOTICE_MS,
			      "the dead connection went unnoticed for %d ms",
			      NOTICE_MS);
		rfx_sleep_ms(50);
	}
	noticed_ms = rfx_now_ms() - start;
	RFX_ASSERT_HAS(status, "unreachable");
	free(status);
	ck_assert_int_eq(
	    fixture_query_int(w.db, "SELECT count(*) FROM t WHERE v = 'after'"),
	    0);

	ck_assert_int_eq(fault_proxy_clear(w.proxy), 0);
	heal = rfx_now_ms();
	while (fixture_query_int(
		   w.db, "SELECT count(*) FROM t WHERE v = 'after'") == 0) {
		ck_assert_msg(rfx_now_ms() - heal < CATCH_UP_MS,
			      "not caught up %d ms after the path healed",
			      CATCH_UP_MS);
		rfx_sleep_ms(20);
	}
	caught_up_ms = rfx_now_ms() - heal;
	printf("dead connection (fault %d): noticed after %lld ms, caught up "
	       "%lld ms after the heal\n",
	       (int)fault, (long long)noticed_ms, (long long)caught_up_ms);
	assert_equal_to_primary(&w);
	world_stop(&w);
}

START_TEST(test_stalled_connection)
{
	dead_connection(FAULT_PROXY_STALL);
}
END_TEST

START_TEST(test_blackholed_connection)
{
	dead_connection(FAULT_PROXY_BLACKHOLE);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 3. lost push answers */

/* Commit one write transaction on db; the result code of COMMIT (after a
 * ROLLBACK when it failed). */
static int write_txn(sqlite3 *db, const char *sql)
{
	int rc;

	fixture_exec(db, "BEGIN IMMEDIATE");
	fixture_exec(db, sql);
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

START_TEST(test_lost_push_answers)
{
	struct world w;
	char sql[256];
	int i, rc;

	world_start(&w, "sync_interval=0&write_timeout=5");
	fixture_exec(w.db, "CREATE TABLE ledger(id TEXT PRIMARY KEY, n INT)");
	for (i = 0; i < 20; i++) {
		unsigned fired = fault_proxy_fired(w.proxy);
		ck_assert_int_eq(fault_proxy_set(w.proxy,
						 FAULT_PROXY_LOSE_ANSWER,
						 "POST /sync/", 0),
				 0);
		snprintf(sql, sizeof sql,
			 "INSERT INTO ledger VALUES ('w%d', %d)", i, i);
		rc = write_txn(w.db, sql);
		ck_assert_msg(rc == SQLITE_OK,
			      "write %d with its answer lost: %d (%s)", i, rc,
			      sqlite3_errmsg(w.db));
		ck_assert_uint_eq(fault_proxy_fired(w.proxy), fired + 1);
	}
	/* A transaction of several push requests (> 1024 pages), with the
	 * answer to its first request lost, then to its last. */
	for (i = 0; i < 2; i++) {
		char match[64];
		unsigned fired = fault_proxy_fired(w.proxy);
		/* The first request starts right after the applied frame;
		 * the second 1024 frames later. */
		snprintf(match, sizeof match, "POST /sync/1/%lld/",
			 (long long)rfx_status_int(w.db, "frame_no") + 1 +
			     (i == 1 ? 1024 : 0));
		ck_assert_int_eq(
		    fault_proxy_set(w.proxy, FAULT_PROXY_LOSE_ANSWER, match, 0),
		    0);
		snprintf(sql, sizeof sql,
			 "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT "
			 "k + 1 FROM n WHERE k < 1200) INSERT INTO ledger "
			 "SELECT 'big%d-' || k, zeroblob(3000) FROM n",
			 i);
		rc = write_txn(w.db, sql);
		ck_assert_msg(rc == SQLITE_OK, "big write %d: %d (%s)", i, rc,
			      sqlite3_errmsg(w.db));
		ck_assert_uint_eq(fault_proxy_fired(w.proxy), fired + 1);
	}
	ck_assert_int_eq(
	    rfx_primary_query_int(w.env.srv.url, "SELECT count(*) FROM ledger"),
	    20 + 2 * 1200);
	ck_assert_int_eq(
	    rfx_primary_query_int(w.env.srv.url,
				  "SELECT count(*) FROM ledger WHERE id LIKE "
				  "'w%' AND n = CAST(substr(id, 2) AS INT)"),
	    20);
	rfx_sync(w.db);
	fixture_assert_integrity(w.db);
	rfx_assert_same_table(w.db, w.env.srv.url, "ledger", "id || ':' || n");
	world_stop(&w);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 4. foreign writes */

/* Write to the replica file with plain SQLite (no replite), as the stock
 * sqlite3 shell would; closing checkpoints it into the database file.  In
 * encrypted runs the writer has the key (rfx_plain_vfs): a foreign write
 * of rows, not of bytes in clear (test_clear_write). */
static void foreign_write(const char *path, const char *sql)
{
	sqlite3 *db = rfx_plain_open(path, SQLITE_OPEN_READWRITE);

	fixture_exec(db, sql);
	ck_assert_int_eq(rfx_plain_close(db), SQLITE_OK);
}

static void assert_primary_sound(struct world *w)
{
	char *body = NULL;

	ck_assert_int_eq(
	    rfx_primary_query_int(w->env.srv.url,
				  "SELECT count(*) FROM pragma_integrity_check "
				  "WHERE integrity_check = 'ok'"),
	    1);
	(void)body;
}

/* absent: a query counting what the foreign write made, 0 on the primary
 * and, once downloaded again, on the replica. */
static void foreign_write_case(const char *foreign, const char *then,
			       const char *absent)
{
	struct world w;
	int rc;

	world_start(&w, "sync_interval=0");
	fixture_exec(w.db, "CREATE TABLE a(x)");
	sqlite3_close(w.db);
	foreign_write(w.env.path, foreign);
	w.db =
	    rfx_open(w.env.path, fault_proxy_url(w.proxy), "sync_interval=0");
	rc = write_txn(w.db, then);
	ck_assert_msg(rc != SQLITE_OK,
		      "a write on top of a foreign write was accepted");
	assert_primary_sound(&w);
	ck_assert_int_eq(rfx_primary_query_int(w.env.srv.url, absent), 0);
	/* Downloaded again: equal to the primary, and writable. */
	rfx_sync(w.db);
	ck_assert_int_eq(fixture_query_int(w.db, absent), 0);
	fixture_assert_integrity(w.db);
	assert_equal_to_primary(&w);
	ck_assert_int_eq(write_txn(w.db, then), SQLITE_OK);
	assert_primary_sound(&w);
	world_stop(&w);
}

START_TEST(test_foreign_write_big)
{
	foreign_write_case("CREATE TABLE big(x); "
			   "INSERT INTO big VALUES (randomblob(20000))",
			   "CREATE TABLE b(y)",
			   "SELECT count(*) FROM sqlite_master WHERE name = "
			   "'big'");
}
END_TEST

START_TEST(test_foreign_write_row)
{
	/* One row into a; then a write to the same table through replite. */
	foreign_write_case("INSERT INTO a VALUES ('foreign')",
			   "INSERT INTO a VALUES ('mine')",
			   "SELECT count(*) FROM a WHERE x = 'foreign'");
}
END_TEST

/* SELECT replite_verify(): true on a replica equal to the primary, false
 * (naming both checksums) once the file was changed behind replite. */
static json_t *verify_with(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	json_t *j;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "replite_verify(): %s",
		      sqlite3_errmsg(db));
	j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	ck_assert_ptr_nonnull(j);
	return j;
}

static json_t *verify(sqlite3 *db)
{
	return verify_with(db, "SELECT replite_verify()");
}

START_TEST(test_verify)
{
	struct world w;
	struct rfx_info info;
	json_t *j;

	world_start(&w, "sync_interval=0");
	primary_writes(&w, 1);
	j = verify(w.db);
	ck_assert(json_is_true(json_object_get(j, "match")));
	rfx_primary_info(w.env.srv.url, NULL, &info);
	ck_assert_str_eq(json_string_value(json_object_get(j, "local")),
			 info.checksum);
	ck_assert_str_eq(json_string_value(json_object_get(j, "primary")),
			 info.checksum);
	json_decref(j);
	/* PRAGMA replite_verify says the same. */
	j = verify_with(w.db, "PRAGMA replite_verify");
	ck_assert(json_is_true(json_object_get(j, "match")));
	json_decref(j);

	sqlite3_close(w.db);
	foreign_write(w.env.path, "UPDATE t SET v = 'changed' WHERE id = 7");
	w.db =
	    rfx_open(w.env.path, fault_proxy_url(w.proxy), "sync_interval=0");
	j = verify(w.db);
	ck_assert(json_is_false(json_object_get(j, "match")));
	ck_assert_str_ne(json_string_value(json_object_get(j, "local")),
			 json_string_value(json_object_get(j, "primary")));
	json_decref(j);
	world_stop(&w);
}
END_TEST

/* Overwrite page pgno of the database file at path with bytes in clear,
 * as a tool without the key would patch it. */
static void clear_write(const char *path, int64_t pgno)
{
	static const char text[] = "written in clear, without the key. ";
	uint8_t page[4096];
	size_t i;
	FILE *f = fopen(path, "r+b");

	for (i = 0; i < sizeof page; i++)
		page[i] = (uint8_t)text[i % (sizeof text - 1)];
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, (long)(pgno - 1) * 4096, SEEK_SET), 0);
	ck_assert_uint_eq(fwrite(page, 1, sizeof page, f), sizeof page);
	ck_assert_int_eq(fclose(f), 0);
}

/* Encrypted replicas only (a plain file's foreign writes are the tests
 * above): bytes written in clear into an encrypted database file decrypt
 * to noise, and are never taken for pages.  On a table's page:
 * replite_verify says the file differs from the primary, and a write
 * through replite that reads the page fails -- SQLite finds the page
 * malformed, or (noise that happens to parse) the primary refuses a
 * transaction built on a file that is not its own -- with nothing reaching
 * the primary.  On page 1: the open fails. */
START_TEST(test_clear_write)
{
	struct world w;
	char msg[512], *status, *err = NULL;
	sqlite3 *db = NULL;
	int64_t root;
	json_t *j;
	int rc;

	if (!rfx_encrypted()) {
		printf("test_clear_write: skipped: for encrypted replicas only "
		       "(REPLITE_ENCRYPTION_KEY)\n");
		return;
	}
	world_start(&w, "sync_interval=0");
	root = fixture_query_int(
	    w.db, "SELECT rootpage FROM sqlite_master WHERE name = 't'");
	/* Every page in the database file, none in the WAL to shadow it. */
	fixture_exec(w.db, "PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(w.db);
	clear_write(w.env.path, root);
	w.db =
	    rfx_open(w.env.path, fault_proxy_url(w.proxy), "sync_interval=0");
	j = verify(w.db);
	ck_assert(json_is_false(json_object_get(j, "match")));
	json_decref(j);
	fixture_exec(w.db, "BEGIN IMMEDIATE");
	rc = sqlite3_exec(w.db, "UPDATE t SET v = 'mine' WHERE id = 7", NULL,
			  NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(w.db, "COMMIT", NULL, NULL, NULL);
	snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(w.db));
	sqlite3_exec(w.db, "ROLLBACK", NULL, NULL, NULL);
	status = rfx_status_text(w.db);
	printf("a write on a page written in clear: %s\n",
	       (rc & 0xff) == SQLITE_CORRUPT ? msg : status);
	ck_assert_msg((rc & 0xff) == SQLITE_CORRUPT ||
			  (rc != SQLITE_OK &&
			   strstr(status, "refused the write") != NULL),
		      "a write on a page written in clear: %d (%s), %s", rc,
		      msg, status);
	free(status);
	assert_primary_sound(&w);
	ck_assert_int_eq(
	    rfx_primary_query_int(w.env.srv.url,
				  "SELECT count(*) FROM t WHERE v = 'mine'"),
	    0);

	sqlite3_close(w.db);
	clear_write(w.env.path, 1);
	rc = rfx_try_open(w.env.path, fault_proxy_url(w.proxy),
			  "sync_interval=0", &db, &err);
	ck_assert_int_ne(rc, SQLITE_OK);
	ck_assert_ptr_nonnull(err);
	printf("an open with page 1 written in clear: %s\n", err);
	RFX_ASSERT_HAS(err, "file is not a database");
	free(err);
	assert_primary_sound(&w);
	w.db = NULL; /* closed above */
	world_stop(&w);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
	    test_corrupt_page,
	    test_corrupt_page_number,
	    test_corrupt_live,
	    test_stalled_connection,
	    test_blackholed_connection,
	    test_lost_push_answers,
	    test_foreign_write_big,
	    test_foreign_write_row,
	    test_verify,
	    test_clear_write,
	};

	return rfx_run_tests("replica_integrity", tests,
			     sizeof tests / sizeof tests[0]);
}
