/* Hrana execute requests, run against real SQLite :memory: connections:
 * results, arguments, errors, the statement timeout, read-only connections
 * and the affected row count.  Value encoding is tested in
 * test_hrana_values.c; batches, cursors and the other requests in
 * test_hrana_requests.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fixture.h"
#include "hrana_test_helpers.h"
#include "server/hrana.h"

/* ---------------------------------------------------------------------- */
/* execute */

START_TEST(test_execute_results)
{
	struct hth_fx f;
	json_t *r;

	hth_fx_init(&f, 3, 0);
	r = hth_execute(&f, "{\"sql\":\"CREATE TABLE t(id INTEGER PRIMARY KEY, "
			    "name TEXT, v)\"}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "cols")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 0);
	json_decref(r);
	r = hth_execute(&f,
			"{\"sql\":\"INSERT INTO t(name, v) VALUES ('a', 1), "
			"('b', 2), ('c', 3)\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "last_insert_rowid")), "3");
	json_decref(r);
	r = hth_execute(&f,
			"{\"sql\":\"UPDATE t SET v = v + 10 WHERE id >= 2\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 2);
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(v) FROM t"), 26);
	r = hth_execute(&f, "{\"sql\":\"SELECT id, name, v * 2 AS d FROM t "
			    "ORDER BY id\"}");
	HTH_ASSERT_JSON(json_object_get(r, "cols"),
			"[{\"name\":\"id\",\"decltype\":\"INTEGER\"},"
			"{\"name\":\"name\",\"decltype\":\"TEXT\"},"
			"{\"name\":\"d\",\"decltype\":null}]");
	HTH_ASSERT_JSON(json_object_get(r, "rows"),
			"[[{\"type\":\"integer\",\"value\":\"1\"},"
			"{\"type\":\"text\",\"value\":\"a\"},"
			"{\"type\":\"integer\",\"value\":\"2\"}],"
			"[{\"type\":\"integer\",\"value\":\"2\"},"
			"{\"type\":\"text\",\"value\":\"b\"},"
			"{\"type\":\"integer\",\"value\":\"24\"}],"
			"[{\"type\":\"integer\",\"value\":\"3\"},"
			"{\"type\":\"text\",\"value\":\"c\"},"
			"{\"type\":\"integer\",\"value\":\"26\"}]]");
	/* A read does not report the previous write's changes. */
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 0);
	json_decref(r);
	/* want_rows false: executed, no rows. */
	r = hth_execute(&f,
			"{\"sql\":\"DELETE FROM t WHERE id = 1 RETURNING id\","
			"\"want_rows\":false}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 0);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 1);
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 2);
	/* Explicit nulls (npm libsql sends them). */
	r = hth_execute(&f, "{\"sql\":\"SELECT 1\",\"args\":null,"
			    "\"named_args\":null,\"want_rows\":null}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 1);
	json_decref(r);
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_execute_args)
{
	struct hth_fx f;
	json_t *r;

	hth_fx_init(&f, 2, 0);
	/* Positional. */
	r = hth_execute(&f,
			"{\"sql\":\"SELECT ?, ?2 + 1, typeof(?3)\",\"args\":["
			"{\"type\":\"text\",\"value\":\"x\"},"
			"{\"type\":\"integer\",\"value\":\"41\"},"
			"{\"type\":\"blob\",\"base64\":\"AA\"}]}");
	HTH_ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
			"[{\"type\":\"text\",\"value\":\"x\"},"
			"{\"type\":\"integer\",\"value\":\"42\"},"
			"{\"type\":\"text\",\"value\":\"blob\"}]");
	json_decref(r);
	/* Named, with each prefix spelled out or left to the server. */
	r = hth_execute(&f, "{\"sql\":\"SELECT :a, @b, $c\",\"named_args\":["
			    "{\"name\":\":a\",\"value\":"
			    "{\"type\":\"integer\",\"value\":\"1\"}},"
			    "{\"name\":\"@b\",\"value\":"
			    "{\"type\":\"integer\",\"value\":\"2\"}},"
			    "{\"name\":\"$c\",\"value\":"
			    "{\"type\":\"integer\",\"value\":\"3\"}}]}");
	HTH_ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
			"[{\"type\":\"integer\",\"value\":\"1\"},"
			"{\"type\":\"integer\",\"value\":\"2\"},"
			"{\"type\":\"integer\",\"value\":\"3\"}]");
	json_decref(r);
	r = hth_execute(&f, "{\"sql\":\"SELECT :a, @b, $c\",\"named_args\":["
			    "{\"name\":\"c\",\"value\":"
			    "{\"type\":\"text\",\"value\":\"C\"}},"
			    "{\"name\":\"a\",\"value\":"
			    "{\"type\":\"text\",\"value\":\"A\"}},"
			    "{\"name\":\"b\",\"value\":"
			    "{\"type\":\"text\",\"value\":\"B\"}},"
			    "{\"name\":\"unused\",\"value\":"
			    "{\"type\":\"text\",\"value\":\"U\"}}]}");
	HTH_ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
			"[{\"type\":\"text\",\"value\":\"A\"},"
			"{\"type\":\"text\",\"value\":\"B\"},"
			"{\"type\":\"text\",\"value\":\"C\"}]");
	json_decref(r);
	/* A parameter given no value is NULL. */
	r = hth_execute(&f,
			"{\"sql\":\"SELECT ?1 IS NULL, ?2 IS NULL\",\"args\":["
			"{\"type\":\"integer\",\"value\":\"5\"}]}");
	HTH_ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
			"[{\"type\":\"integer\",\"value\":\"0\"},"
			"{\"type\":\"integer\",\"value\":\"1\"}]");
	json_decref(r);
	/* Arguments are data, never SQL. */
	fixture_exec(f.db, "CREATE TABLE t(x)");
	json_decref(hth_execute(&f, "{\"sql\":\"INSERT INTO t VALUES (?)\","
				    "\"args\":[{\"type\":\"text\",\"value\":"
				    "\"'); DROP TABLE t; --\"}]}"));
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);

	HTH_ASSERT_CODE(&f,
			"{\"sql\":\"SELECT ?\",\"args\":["
			"{\"type\":\"integer\",\"value\":\"1\"},"
			"{\"type\":\"integer\",\"value\":\"2\"}]}",
			"ARGS_INVALID");
	HTH_ASSERT_CODE(&f,
			"{\"sql\":\"SELECT ?\",\"args\":["
			"{\"type\":\"integer\",\"value\":\"one\"}]}",
			"ARGS_INVALID");
	HTH_ASSERT_CODE(
	    &f,
	    "{\"sql\":\"SELECT :a\",\"named_args\":[{\"name\":\"a\","
	    "\"value\":{\"type\":\"nope\"}}]}",
	    "ARGS_INVALID");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"SELECT ?\",\"args\":{}}",
			"HRANA_PROTO_ERROR");
	HTH_ASSERT_CODE(&f,
			"{\"sql\":\"SELECT :a\",\"named_args\":[{\"value\":"
			"{\"type\":\"null\"}}]}",
			"HRANA_PROTO_ERROR");
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_execute_errors)
{
	struct hth_fx f;
	json_t *res;
	char *code;

	hth_fx_init(&f, 2, 0);
	fixture_exec(
	    f.db, "CREATE TABLE t(id INTEGER PRIMARY KEY, u UNIQUE NOT NULL);"
		  "INSERT INTO t VALUES (1, 'a')");
	/* Constraint violations: sqld (and so @libsql/client, which passes
	 * the code through as LibsqlError.code) uses the primary code. */
	res = hth_request(&f,
			  "{\"type\":\"execute\",\"stmt\":{\"sql\":"
			  "\"INSERT INTO t VALUES (2, 'a')\"}}",
			  NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_CONSTRAINT");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(
		       json_object_get(res, "error"), "message")),
		   "UNIQUE constraint failed"));
	json_decref(res);
	HTH_ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (1, 'b')\"}",
			"SQLITE_CONSTRAINT");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (3, NULL)\"}",
			"SQLITE_CONSTRAINT");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	HTH_ASSERT_CODE(&f, "{\"sql\":\"SELEC 1\"}", "SQL_PARSE_ERROR");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"SELECT (1\"}", "SQL_PARSE_ERROR");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"SELECT * FROM missing\"}",
			"SQLITE_ERROR");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"\"}", "SQL_NO_STATEMENT");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"  -- only a comment\"}",
			"SQL_NO_STATEMENT");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"SELECT 1; SELECT 2\"}",
			"SQL_MANY_STATEMENTS");
	HTH_ASSERT_CODE(&f,
			"{\"sql\":\"INSERT INTO t VALUES (5, 'x'); DELETE "
			"FROM t\"}",
			"SQL_MANY_STATEMENTS");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	/* Trailing separators and comments are not another statement. */
	json_decref(
	    hth_execute(&f, "{\"sql\":\"SELECT 1; -- done\\n /* c */ ;\"}"));
	HTH_ASSERT_CODE(&f, "{}", "HRANA_PROTO_ERROR");
	HTH_ASSERT_CODE(&f, "{\"sql\":5}", "HRANA_PROTO_ERROR");
	code = hth_execute_error(&f, "{\"sql_id\":77}");
	ck_assert_str_eq(code, "SQL_STORE_DOES_NOT_EXIST");
	free(code);
	/* A statement that is not an object. */
	res = hth_request(&f, "{\"type\":\"execute\",\"stmt\":\"SELECT 1\"}",
			  NULL);
	hth_error_code(res);
	json_decref(res);
	res = hth_request(&f, "{\"type\":\"execute\"}", NULL);
	hth_error_code(res);
	json_decref(res);
	hth_fx_done(&f);
}
END_TEST

/* A statement that runs past the connection's timeout is interrupted, with
 * an error that names the limit; what it wrote is rolled back (in an
 * explicit transaction, the transaction), and the connection serves the
 * next statement.  Both ways of running SQL: execute and sequence. */
START_TEST(test_statement_timeout)
{
	static const char *const heavy =
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < 10000000000) SELECT count(*) FROM n";
	struct hth_fx f;
	json_t *res, *err;
	char req[512];

	hth_fx_init(&f, 3, 0);
	f.c.timeout_ms = 200;
	fixture_exec(f.db, "CREATE TABLE t(x)");
	snprintf(req, sizeof req,
		 "{\"type\":\"execute\",\"stmt\":{\"sql\":\"%s\"}}", heavy);
	res = hth_request(&f, req, NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_INTERRUPT");
	err = json_object_get(res, "error");
	ck_assert_ptr_nonnull(strstr(
	    json_string_value(json_object_get(err, "message")), "200 ms"));
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(err, "message")),
		   "--statement-timeout"));
	json_decref(res);
	/* The next statement runs, on the same connection. */
	json_decref(hth_execute(&f, "{\"sql\":\"SELECT 1\"}"));

	/* A write interrupted in an explicit transaction: all of it is
	 * rolled back, the earlier insert included. */
	json_decref(hth_execute(&f, "{\"sql\":\"BEGIN\"}"));
	json_decref(hth_execute(&f, "{\"sql\":\"INSERT INTO t VALUES (1)\"}"));
	snprintf(req, sizeof req,
		 "{\"type\":\"execute\",\"stmt\":{\"sql\":\"INSERT INTO t "
		 "%s\"}}",
		 heavy);
	res = hth_request(&f, req, NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_INTERRUPT");
	json_decref(res);
	ck_assert_int_eq(sqlite3_get_autocommit(f.db), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 0);

	/* sequence */
	snprintf(req, sizeof req, "{\"type\":\"sequence\",\"sql\":\"%s\"}",
		 heavy);
	res = hth_request(&f, req, NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_INTERRUPT");
	json_decref(res);

	/* No limit: a statement that takes a while completes. */
	f.c.timeout_ms = 0;
	json_decref(hth_execute(&f,
				"{\"sql\":\"WITH RECURSIVE n(i) AS (SELECT 1 "
				"UNION ALL SELECT i + 1 FROM n WHERE i < "
				"300000) SELECT count(*) FROM n\"}"));
	hth_fx_done(&f);
}
END_TEST

START_TEST(test_read_only)
{
	struct hth_fx f;
	json_t *r, *res;

	hth_fx_init(&f, 3, 1);
	fixture_exec(f.db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	r = hth_execute(&f, "{\"sql\":\"SELECT x FROM t\"}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 1);
	json_decref(r);
	HTH_ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (2)\"}",
			"SQLITE_READONLY");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"DELETE FROM t\"}", "SQLITE_READONLY");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"CREATE TABLE u(y)\"}",
			"SQLITE_READONLY");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"DROP TABLE t\"}", "SQLITE_READONLY");
	HTH_ASSERT_CODE(&f, "{\"sql\":\"PRAGMA user_version = 7\"}",
			"SQLITE_READONLY");
	/* Not through a batch or a sequence either. */
	res = hth_request(&f,
			  "{\"type\":\"batch\",\"batch\":{\"steps\":["
			  "{\"stmt\":{\"sql\":\"SELECT 1\"}},"
			  "{\"stmt\":{\"sql\":\"UPDATE t SET x = 5\"}}]}}",
			  NULL);
	r = json_object_get(hth_ok_response(res, "batch"), "result");
	ck_assert(json_is_object(
	    json_array_get(json_object_get(r, "step_results"), 0)));
	ck_assert(json_is_null(
	    json_array_get(json_object_get(r, "step_results"), 1)));
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(r, "step_errors"), 1), "code")),
	    "SQLITE_READONLY");
	json_decref(res);
	res = hth_request(&f,
			  "{\"type\":\"sequence\",\"sql\":\"SELECT 1; "
			  "INSERT INTO t VALUES (3)\"}",
			  NULL);
	ck_assert_str_eq(hth_error_code(res), "SQLITE_READONLY");
	json_decref(res);
	/* Transactions for consistent reads are fine. */
	json_decref(hth_execute(&f, "{\"sql\":\"BEGIN\"}"));
	json_decref(hth_execute(&f, "{\"sql\":\"SELECT count(*) FROM t\"}"));
	json_decref(hth_execute(&f, "{\"sql\":\"COMMIT\"}"));
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "PRAGMA user_version"), 0);
	hth_fx_done(&f);
}
END_TEST

/* affected_row_count is the statement's own changes (sqlite3_changes64),
 * as sqld reports it, not including rows changed by triggers. */
START_TEST(test_affected_rows_without_triggers)
{
	struct hth_fx f;
	json_t *r;

	hth_fx_init(&f, 2, 0);
	fixture_exec(f.db,
		     "CREATE TABLE t(x); CREATE TABLE audit(y);"
		     "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
		     "INSERT INTO audit VALUES (new.x); INSERT INTO audit "
		     "VALUES (new.x); END");
	r = hth_execute(&f, "{\"sql\":\"INSERT INTO t VALUES (1)\"}");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM audit"),
			 2);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 1);
	json_decref(r);
	/* DDL changes no rows, whatever the previous statement changed. */
	r = hth_execute(&f, "{\"sql\":\"CREATE TABLE u(z)\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 0);
	json_decref(r);
	hth_fx_done(&f);
}
END_TEST

static Suite *hrana_suite(void)
{
	Suite *s = suite_create("hrana");
	TCase *tc = tcase_create("hrana");

	tcase_add_test(tc, test_execute_results);
	tcase_add_test(tc, test_execute_args);
	tcase_add_test(tc, test_execute_errors);
	tcase_add_test(tc, test_statement_timeout);
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_affected_rows_without_triggers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(hrana_suite());
}
