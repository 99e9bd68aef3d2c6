/* Hrana batches and the other requests, run against real SQLite :memory:
 * connections: batch conditions and transactions, store_sql and
 * close_sql, sequence, describe, get_autocommit and close, malformed
 * requests, and cursors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fixture.h"
#include "hrana_test_helpers.h"
#include "server/hrana.h"

/* ---------------------------------------------------------------------- */
/* batches */

static json_t *batch(struct hth_fx *f, const char *steps_json)
{
	char *req = NULL;
	json_t *res, *r;

	ck_assert(asprintf(&req,
			   "{\"type\":\"batch\",\"batch\":{\"steps\":%s}}",
			   steps_json) > 0);
	res = hth_request(f, req, NULL);
	r = json_object_get(hth_ok_response(res, "batch"), "result");
	ck_assert_ptr_nonnull(r);
	json_incref(r);
	json_decref(res);
	free(req);
	return r;
}

/* "o" ok result, "e" error, "-" skipped, per step. */
static void assert_outcomes(json_t *r, const char *expected)
{
	json_t *res = json_object_get(r, "step_results");
	json_t *err = json_object_get(r, "step_errors");
	size_t i, n = strlen(expected);

	ck_assert_uint_eq(json_array_size(res), n);
	ck_assert_uint_eq(json_array_size(err), n);
	for (i = 0; i < n; i++) {
		json_t *a = json_array_get(res, i), *b = json_array_get(err, i);
		char got = json_is_object(a) && json_is_null(b)   ? 'o'
			   : json_is_null(a) && json_is_object(b) ? 'e'
			   : json_is_null(a) && json_is_null(b)   ? '-'
								  : '?';
		ck_assert_msg(got == expected[i], "step %zu: got %c, want %s",
			      i, got, expected);
	}
}

START_TEST(test_batch_conditions)
{
	struct hth_fx f;
	json_t *r;

	hth_fx_init(&f, 3, 0);
	r = batch(
	    &f,
	    "[{\"stmt\":{\"sql\":\"SELECT 1\"}},"
	    "{\"stmt\":{\"sql\":\"SELECT nope\"}},"
	    "{\"condition\":{\"type\":\"ok\",\"step\":0},"
	    "\"stmt\":{\"sql\":\"SELECT 2\"}},"
	    "{\"condition\":{\"type\":\"ok\",\"step\":1},"
	    "\"stmt\":{\"sql\":\"SELECT 3\"}},"
	    "{\"condition\":{\"type\":\"error\",\"step\":1},"
	    "\"stmt\":{\"sql\":\"SELECT 4\"}},"
	    "{\"condition\":{\"type\":\"error\",\"step\":0},"
	    "\"stmt\":{\"sql\":\"SELECT 5\"}},"
	    "{\"condition\":{\"type\":\"not\",\"cond\":"
	    "{\"type\":\"ok\",\"step\":1}},"
	    "\"stmt\":{\"sql\":\"SELECT 6\"}},"
	    "{\"condition\":{\"type\":\"and\",\"conds\":["
	    "{\"type\":\"ok\",\"step\":0},{\"type\":\"error\",\"step\":1}]},"
	    "\"stmt\":{\"sql\":\"SELECT 7\"}},"
	    "{\"condition\":{\"type\":\"and\",\"conds\":["
	    "{\"type\":\"ok\",\"step\":0},{\"type\":\"ok\",\"step\":1}]},"
	    "\"stmt\":{\"sql\":\"SELECT 8\"}},"
	    "{\"condition\":{\"type\":\"or\",\"conds\":["
	    "{\"type\":\"ok\",\"step\":1},{\"type\":\"ok\",\"step\":3}]},"
	    "\"stmt\":{\"sql\":\"SELECT 9\"}},"
	    "{\"condition\":{\"type\":\"or\",\"conds\":["
	    "{\"type\":\"ok\",\"step\":1},{\"type\":\"ok\",\"step\":2}]},"
	    "\"stmt\":{\"sql\":\"SELECT 10\"}},"
	    /* A skipped step is neither ok nor an error. */
	    "{\"condition\":{\"type\":\"or\",\"conds\":["
	    "{\"type\":\"ok\",\"step\":3},{\"type\":\"error\",\"step\":3}]},"
	    "\"stmt\":{\"sql\":\"SELECT 11\"}},"
	    "{\"condition\":{\"type\":\"and\",\"conds\":[]},"
	    "\"stmt\":{\"sql\":\"SELECT 12\"}},"
	    "{\"condition\":{\"type\":\"or\",\"conds\":[]},"
	    "\"stmt\":{\"sql\":\"SELECT 13\"}},"
	    "{\"condition\":null,\"stmt\":{\"sql\":\"SELECT 14\"}}]");
	assert_outcomes(r, "oeo-o-oo--o-o-o");
	/* Each result is the step's own. */
	HTH_ASSERT_JSON(
	    json_object_get(
		json_array_get(json_object_get(r, "step_results"), 10), "rows"),
	    "[[{\"type\":\"integer\",\"value\":\"10\"}]]");
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(r, "step_errors"), 1), "code")),
	    "SQLITE_ERROR");
	json_decref(r);
	r = batch(&f, "[]");
	assert_outcomes(r, "");
	json_decref(r);
	hth_fx_done(&f);
}
END_TEST

/* What @libsql/client sends for batch(stmts, "write"). */
static const char *client_write_batch =
    "[{\"stmt\":{\"sql\":\"BEGIN IMMEDIATE\"}},"
    "{\"condition\":{\"type\":\"ok\",\"step\":0},"
    "\"stmt\":{\"sql\":\"INSERT INTO t VALUES (1)\"}},"
    "{\"condition\":{\"type\":\"ok\",\"step\":1},"
    "\"stmt\":{\"sql\":\"%s\"}},"
    "{\"condition\":{\"type\":\"ok\",\"step\":2},"
    "\"stmt\":{\"sql\":\"COMMIT\"}},"
    "{\"condition\":{\"type\":\"not\",\"cond\":"
    "{\"type\":\"ok\",\"step\":3}},"
    "\"stmt\":{\"sql\":\"ROLLBACK\"}}]";

START_TEST(test_batch_transaction)
{
	struct hth_fx f;
	char steps[1024];
	json_t *r;

	hth_fx_init(&f, 2, 0);
	fixture_exec(f.db, "CREATE TABLE t(x PRIMARY KEY)");
	snprintf(steps, sizeof steps, client_write_batch,
		 "INSERT INTO t VALUES (2)");
	r = batch(&f, steps);
	assert_outcomes(r, "oooo-");
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 2);
	/* The second insert fails: the first is rolled back with it. */
	fixture_exec(f.db, "DELETE FROM t");
	snprintf(steps, sizeof steps, client_write_batch,
		 "INSERT INTO t VALUES (1)");
	r = batch(&f, steps);
	assert_outcomes(r, "ooe-o");
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(r, "step_errors"), 2), "code")),
	    "SQLITE_CONSTRAINT");
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 0);
	ck_assert_int_ne(sqlite3_get_autocommit(f.db), 0);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_batch_is_autocommit)
{
	struct hth_fx f;
	json_t *r;
	const char *steps = "[{\"condition\":{\"type\":\"is_autocommit\"},"
			    "\"stmt\":{\"sql\":\"SELECT 1\"}},"
			    "{\"stmt\":{\"sql\":\"BEGIN\"}},"
			    "{\"condition\":{\"type\":\"is_autocommit\"},"
			    "\"stmt\":{\"sql\":\"SELECT 2\"}},"
			    "{\"condition\":{\"type\":\"not\",\"cond\":"
			    "{\"type\":\"is_autocommit\"}},"
			    "\"stmt\":{\"sql\":\"COMMIT\"}},"
			    "{\"condition\":{\"type\":\"is_autocommit\"},"
			    "\"stmt\":{\"sql\":\"SELECT 3\"}}]";

	hth_fx_init(&f, 3, 0);
	r = batch(&f, steps);
	assert_outcomes(r, "oo-oo");
	json_decref(r);
	ck_assert_int_ne(sqlite3_get_autocommit(f.db), 0);
	hth_fx_done(&f);

	/* Hrana 2 takes it too: Turso Sync's clients push on /v2/pipeline
	 * with batches guarded by it. */
	hth_fx_init(&f, 2, 0);
	r = batch(&f, steps);
	assert_outcomes(r, "oo-oo");
	json_decref(r);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_batch_malformed)
{
	struct hth_fx f;
	const char *bad[] = {
	    "{\"type\":\"batch\"}",
	    "{\"type\":\"batch\",\"batch\":{}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":{}}}",
	    "{\"type\":\"batch\",\"batch\":[]}",
	    /* Conditions may only look back. */
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"condition\":"
	    "{\"type\":\"ok\",\"step\":0},\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"ok\",\"step\":5},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"ok\",\"step\":-1},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"ok\"},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"maybe\"},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"and\",\"conds\":5},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	    "{\"type\":\"batch\",\"batch\":{\"steps\":[{\"stmt\":{\"sql\":"
	    "\"SELECT 1\"}},{\"condition\":{\"type\":\"not\"},"
	    "\"stmt\":{\"sql\":\"SELECT 1\"}}]}}",
	};
	size_t i;

	hth_fx_init(&f, 3, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		hth_assert_proto_error(&f, bad[i]);
	hth_fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* other requests */

START_TEST(test_store_sql)
{
	struct hth_fx f;
	json_t *res, *r;

	hth_fx_init(&f, 2, 0);
	fixture_exec(f.db, "CREATE TABLE t(x)");
	res = hth_request(&f,
			  "{\"type\":\"store_sql\",\"sql_id\":1,"
			  "\"sql\":\"INSERT INTO t VALUES (?)\"}",
			  NULL);
	hth_ok_response(res, "store_sql");
	json_decref(res);
	res = hth_request(&f,
			  "{\"type\":\"store_sql\",\"sql_id\":2,"
			  "\"sql\":\"SELECT sum(x) FROM t\"}",
			  NULL);
	hth_ok_response(res, "store_sql");
	json_decref(res);
	json_decref(hth_execute(&f, "{\"sql_id\":1,\"args\":[{\"type\":"
				    "\"integer\",\"value\":\"20\"}]}"));
	r = batch(&f, "[{\"stmt\":{\"sql_id\":1,\"args\":[{\"type\":"
		      "\"integer\",\"value\":\"22\"}]}},"
		      "{\"stmt\":{\"sql_id\":2}}]");
	assert_outcomes(r, "oo");
	HTH_ASSERT_JSON(
	    json_object_get(
		json_array_get(json_object_get(r, "step_results"), 1), "rows"),
	    "[[{\"type\":\"integer\",\"value\":\"42\"}]]");
	json_decref(r);
	/* Re-storing an id replaces its SQL. */
	res = hth_request(&f,
			  "{\"type\":\"store_sql\",\"sql_id\":2,"
			  "\"sql\":\"SELECT count(*) FROM t\"}",
			  NULL);
	json_decref(res);
	r = hth_execute(&f, "{\"sql_id\":2}");
	HTH_ASSERT_JSON(json_object_get(r, "rows"),
			"[[{\"type\":\"integer\",\"value\":\"2\"}]]");
	json_decref(r);
	res = hth_request(&f, "{\"type\":\"close_sql\",\"sql_id\":1}", NULL);
	hth_ok_response(res, "close_sql");
	json_decref(res);
	HTH_ASSERT_CODE(&f, "{\"sql_id\":1}", "SQL_STORE_DOES_NOT_EXIST");
	/* describe and sequence take sql_id as well. */
	res = hth_request(&f, "{\"type\":\"describe\",\"sql_id\":2}", NULL);
	hth_ok_response(res, "describe");
	json_decref(res);
	res = hth_request(&f, "{\"type\":\"sequence\",\"sql_id\":1}", NULL);
	ck_assert_str_eq(hth_error_code(res), "SQL_STORE_DOES_NOT_EXIST");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 42);

	hth_assert_proto_error(&f,
			       "{\"type\":\"store_sql\",\"sql\":\"SELECT 1\"}");
	hth_assert_proto_error(&f, "{\"type\":\"store_sql\",\"sql_id\":\"3\","
				   "\"sql\":\"SELECT 1\"}");
	hth_assert_proto_error(&f, "{\"type\":\"store_sql\",\"sql_id\":3}");
	hth_assert_proto_error(&f, "{\"type\":\"close_sql\"}");
	/* Stored SQL belongs to the connection: reset forgets it. */
	hrana_conn_reset(&f.c);
	hrana_conn_init(&f.c, f.db, 2, 0);
	HTH_ASSERT_CODE(&f, "{\"sql_id\":2}", "SQL_STORE_DOES_NOT_EXIST");
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_sequence)
{
	struct hth_fx f;
	json_t *res;

	hth_fx_init(&f, 2, 0);
	res = hth_request(&f,
			  "{\"type\":\"sequence\",\"sql\":\"CREATE TABLE t(x);"
			  " INSERT INTO t VALUES (1); -- comment\\n"
			  "INSERT INTO t VALUES (2);;  SELECT * FROM t; \"}",
			  NULL);
	hth_ok_response(res, "sequence");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 3);
	/* It stops at the first error; earlier statements stay done. */
	res = hth_request(&f,
			  "{\"type\":\"sequence\",\"sql\":\"INSERT INTO t "
			  "VALUES (10); INSERT INTO missing VALUES (1); "
			  "INSERT INTO t VALUES (100)\"}",
			  NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_ERROR");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 13);
	res = hth_request(&f, "{\"type\":\"sequence\",\"sql\":\"SELEC 1\"}",
			  NULL);
	ck_assert_str_eq(hth_error_code(res), "SQL_PARSE_ERROR");
	json_decref(res);
	res = hth_request(&f, "{\"type\":\"sequence\",\"sql\":\"\"}", NULL);
	hth_ok_response(res, "sequence");
	json_decref(res);
	res = hth_request(&f, "{\"type\":\"sequence\"}", NULL);
	hth_error_code(res);
	json_decref(res);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_describe)
{
	struct hth_fx f;
	json_t *res, *r;

	hth_fx_init(&f, 3, 0);
	fixture_exec(f.db, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)");
	res = hth_request(&f,
			  "{\"type\":\"describe\",\"sql\":\"SELECT id, name, 1 "
			  "FROM t WHERE id = :id AND name = ?2\"}",
			  NULL);
	r = json_object_get(hth_ok_response(res, "describe"), "result");
	HTH_ASSERT_JSON(json_object_get(r, "params"),
			"[{\"name\":\":id\"},{\"name\":\"?2\"}]");
	HTH_ASSERT_JSON(json_object_get(r, "cols"),
			"[{\"name\":\"id\",\"decltype\":\"INTEGER\"},"
			"{\"name\":\"name\",\"decltype\":\"TEXT\"},"
			"{\"name\":\"1\",\"decltype\":null}]");
	ck_assert(json_is_false(json_object_get(r, "is_explain")));
	ck_assert(json_is_true(json_object_get(r, "is_readonly")));
	json_decref(res);
	res =
	    hth_request(&f,
			"{\"type\":\"describe\",\"sql\":\"INSERT INTO t(name) "
			"VALUES (?)\"}",
			NULL);
	r = json_object_get(hth_ok_response(res, "describe"), "result");
	HTH_ASSERT_JSON(json_object_get(r, "params"), "[{\"name\":null}]");
	ck_assert(json_is_false(json_object_get(r, "is_readonly")));
	json_decref(res);
	res = hth_request(
	    &f, "{\"type\":\"describe\",\"sql\":\"EXPLAIN SELECT 1\"}", NULL);
	r = json_object_get(hth_ok_response(res, "describe"), "result");
	ck_assert(json_is_true(json_object_get(r, "is_explain")));
	json_decref(res);
	/* Describing does not execute. */
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 0);
	res =
	    hth_request(&f, "{\"type\":\"describe\",\"sql\":\"SELEC\"}", NULL);
	ck_assert_str_eq(hth_error_code(res), "SQL_PARSE_ERROR");
	json_decref(res);
	res = hth_request(&f, "{\"type\":\"describe\",\"sql\":\"\"}", NULL);
	ck_assert_str_eq(hth_error_code(res), "SQL_NO_STATEMENT");
	json_decref(res);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_get_autocommit_and_close)
{
	struct hth_fx f;
	json_t *res;
	int close = -1;

	hth_fx_init(&f, 3, 0);
	res = hth_request(&f, "{\"type\":\"get_autocommit\"}", &close);
	ck_assert(json_is_true(json_object_get(
	    hth_ok_response(res, "get_autocommit"), "is_autocommit")));
	ck_assert_int_eq(close, 0);
	json_decref(res);
	json_decref(hth_execute(&f, "{\"sql\":\"BEGIN\"}"));
	res = hth_request(&f, "{\"type\":\"get_autocommit\"}", NULL);
	ck_assert(json_is_false(json_object_get(
	    hth_ok_response(res, "get_autocommit"), "is_autocommit")));
	json_decref(res);
	json_decref(hth_execute(&f, "{\"sql\":\"ROLLBACK\"}"));
	res = hth_request(&f, "{\"type\":\"close\"}", &close);
	hth_ok_response(res, "close");
	ck_assert_int_eq(close, 1);
	json_decref(res);
	hth_fx_done(&f);

	hth_fx_init(&f, 2, 0);
	hth_assert_proto_error(&f, "{\"type\":\"get_autocommit\"}");
	res = hth_request(&f, "{\"type\":\"close\"}", &close);
	ck_assert_int_eq(close, 1);
	json_decref(res);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_malformed_requests)
{
	struct hth_fx f;
	const char *bad[] = {
	    "[]",
	    "\"execute\"",
	    "42",
	    "null",
	    "{}",
	    "{\"type\":5}",
	    "{\"type\":\"explode\"}",
	    "{\"type\":\"EXECUTE\"}",
	    "{\"type\":null}",
	};
	size_t i;

	hth_fx_init(&f, 3, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		hth_assert_proto_error(&f, bad[i]);
	hth_fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* cursor */

static void collect(void *arg, json_t *entry)
{
	ck_assert_ptr_nonnull(entry);
	json_array_append_new(arg, entry);
}

START_TEST(test_cursor)
{
	struct hth_fx f;
	json_t *b, *entries = json_array();
	const char *proto_err = NULL;

	hth_fx_init(&f, 3, 0);
	fixture_exec(f.db,
		     "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1), (2)");
	b = hth_parse("{\"steps\":["
		      "{\"stmt\":{\"sql\":\"SELECT x FROM t ORDER BY x\"}},"
		      "{\"stmt\":{\"sql\":\"INSERT INTO t VALUES (1)\"}},"
		      "{\"condition\":{\"type\":\"ok\",\"step\":1},"
		      "\"stmt\":{\"sql\":\"SELECT 'skipped'\"}},"
		      "{\"condition\":{\"type\":\"error\",\"step\":1},"
		      "\"stmt\":{\"sql\":\"INSERT INTO t VALUES (?)\",\"args\":"
		      "[{\"type\":\"integer\",\"value\":\"7\"}]}}]}");
	ck_assert_int_eq(hrana_cursor(&f.c, b, collect, entries, &proto_err),
			 0);
	HTH_ASSERT_JSON(entries,
			"[{\"type\":\"step_begin\",\"step\":0,\"cols\":"
			"[{\"name\":\"x\",\"decltype\":null}]},"
			"{\"type\":\"row\",\"row\":"
			"[{\"type\":\"integer\",\"value\":\"1\"}]},"
			"{\"type\":\"row\",\"row\":"
			"[{\"type\":\"integer\",\"value\":\"2\"}]},"
			"{\"type\":\"step_end\",\"affected_row_count\":0,"
			"\"last_insert_rowid\":\"2\"},"
			"{\"type\":\"step_error\",\"step\":1,\"error\":{"
			"\"message\":\"UNIQUE constraint failed: t.x\","
			"\"code\":\"SQLITE_CONSTRAINT\"}},"
			"{\"type\":\"step_begin\",\"step\":3,\"cols\":[]},"
			"{\"type\":\"step_end\",\"affected_row_count\":1,"
			"\"last_insert_rowid\":\"3\"}]");
	json_decref(b);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 10);

	/* Malformed: -1 and a message, nothing emitted. */
	json_array_clear(entries);
	b = hth_parse("{\"stops\":[]}");
	ck_assert_int_eq(hrana_cursor(&f.c, b, collect, entries, &proto_err),
			 -1);
	ck_assert_ptr_nonnull(proto_err);
	ck_assert_uint_eq(json_array_size(entries), 0);
	json_decref(b);
	json_decref(entries);
	hth_fx_done(&f);
}
END_TEST

static Suite *hrana_requests_suite(void)
{
	Suite *s = suite_create("hrana_requests");
	TCase *tc = tcase_create("hrana_requests");

	tcase_add_test(tc, test_batch_conditions);
	tcase_add_test(tc, test_batch_transaction);
	tcase_add_test(tc, test_batch_is_autocommit);
	tcase_add_test(tc, test_batch_malformed);
	tcase_add_test(tc, test_store_sql);
	tcase_add_test(tc, test_sequence);
	tcase_add_test(tc, test_describe);
	tcase_add_test(tc, test_get_autocommit_and_close);
	tcase_add_test(tc, test_malformed_requests);
	tcase_add_test(tc, test_cursor);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(hrana_requests_suite());
}
