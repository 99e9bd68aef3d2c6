/* Hrana requests and value encoding, run against real SQLite :memory:
 * connections. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fixture.h"
#include "proto/values.h"
#include "server/hrana.h"

/* ---------------------------------------------------------------------- */
/* helpers */

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	ck_assert_msg(j != NULL, "bad JSON in test: %s (%s)", text, e.text);
	return j;
}

static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* j equals the JSON text expected (key order ignored). */
#define ASSERT_JSON(j, expected)                                               \
	do {                                                                   \
		json_t *want_ = parse(expected);                               \
		char *got_ = dump(j);                                          \
		ck_assert_msg(json_equal((j), want_), "got %s, want %s", got_, \
			      (expected));                                     \
		free(got_);                                                    \
		json_decref(want_);                                            \
	} while (0)

static sqlite3 *open_db(void)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	return db;
}

/* The Hrana value of column 0 of a one-row query. */
static json_t *column_value(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	json_t *v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = values_from_column(st, 0);
	sqlite3_finalize(st);
	ck_assert_msg(v != NULL, "no value for %s", sql);
	return v;
}

/* Bind a Hrana value as ?1 and read back typeof(?1) and ?1 as a Hrana
 * value.  Returns the value, or NULL with *err when the bind failed. */
static json_t *bind_roundtrip(sqlite3 *db, const char *value_json,
			      char *type_out, size_t type_len, const char **err)
{
	json_t *value = parse(value_json);
	sqlite3_stmt *st;
	json_t *out = NULL;

	*err = NULL;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT ?1, typeof(?1)", -1, &st, NULL),
	    SQLITE_OK);
	if (values_bind(st, 1, value, err) == 0) {
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		out = values_from_column(st, 0);
		snprintf(type_out, type_len, "%s", sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	json_decref(value);
	return out;
}

struct fx {
	sqlite3 *db;
	struct hrana_conn c;
};

static void fx_init(struct fx *f, int version, int read_only)
{
	f->db = open_db();
	hrana_conn_init(&f->c, f->db, version, read_only);
}

static void fx_done(struct fx *f)
{
	hrana_conn_reset(&f->c);
	sqlite3_close(f->db);
}

/* Execute one request (JSON text); it must be a valid request. */
static json_t *request(struct fx *f, const char *req_json, int *close)
{
	json_t *req = parse(req_json);
	const char *proto_err = NULL;
	int dummy;
	json_t *res = hrana_execute_request(&f->c, req, close ? close : &dummy,
					    &proto_err);

	ck_assert_msg(res != NULL, "%s: protocol error %s", req_json,
		      proto_err ? proto_err : "(none)");
	json_decref(req);
	return res;
}

/* A request that must be refused as a protocol error (HTTP 400). */
static void assert_proto_error(struct fx *f, const char *req_json)
{
	json_t *req = parse(req_json);
	const char *proto_err = NULL;
	int close = 0;
	json_t *res = hrana_execute_request(&f->c, req, &close, &proto_err);

	ck_assert_msg(res == NULL, "%s was accepted", req_json);
	ck_assert_msg(proto_err != NULL && proto_err[0] != '\0',
		      "%s: no protocol error message", req_json);
	ck_assert_int_eq(close, 0);
	json_decref(req);
}

/* The response object of an ok result, of the given type. */
static json_t *ok_response(json_t *res, const char *type)
{
	json_t *resp = json_object_get(res, "response");
	char *d = dump(res);

	ck_assert_msg(
	    json_is_object(resp) &&
		strcmp(json_string_value(json_object_get(res, "type")), "ok") ==
		    0,
	    "not ok: %s", d);
	free(d);
	ck_assert_str_eq(json_string_value(json_object_get(resp, "type")),
			 type);
	return resp;
}

/* The code of an error result (and it has a non-empty message). */
static const char *error_code(json_t *res)
{
	json_t *e = json_object_get(res, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	char *d = dump(res);

	ck_assert_msg(strcmp(json_string_value(json_object_get(res, "type")),
			     "error") == 0,
		      "not an error: %s", d);
	free(d);
	ck_assert_ptr_nonnull(msg);
	ck_assert_uint_gt(strlen(msg), 0);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "code")));
	return json_string_value(json_object_get(e, "code"));
}

/* Execute a statement, returning the StmtResult (a new reference). */
static json_t *execute(struct fx *f, const char *stmt_json)
{
	char *req = NULL;
	json_t *res, *r;

	ck_assert(asprintf(&req, "{\"type\":\"execute\",\"stmt\":%s}",
			   stmt_json) > 0);
	res = request(f, req, NULL);
	r = json_object_get(ok_response(res, "execute"), "result");
	ck_assert_ptr_nonnull(r);
	json_incref(r);
	json_decref(res);
	free(req);
	return r;
}

/* Execute a statement that must fail; returns a copy of its error code. */
static char *execute_error(struct fx *f, const char *stmt_json)
{
	char *req = NULL, *code;
	json_t *res;

	ck_assert(asprintf(&req, "{\"type\":\"execute\",\"stmt\":%s}",
			   stmt_json) > 0);
	res = request(f, req, NULL);
	code = strdup(error_code(res));
	json_decref(res);
	free(req);
	return code;
}

#define ASSERT_CODE(f, stmt, expected)                                         \
	do {                                                                   \
		char *code_ = execute_error((f), (stmt));                      \
		ck_assert_str_eq(code_, (expected));                           \
		free(code_);                                                   \
	} while (0)

/* ---------------------------------------------------------------------- */
/* values out */

START_TEST(test_value_from_column)
{
	sqlite3 *db = open_db();
	json_t *v;

	v = column_value(db, "SELECT NULL");
	ASSERT_JSON(v, "{\"type\":\"null\"}");
	json_decref(v);
	v = column_value(db, "SELECT 42");
	ASSERT_JSON(v, "{\"type\":\"integer\",\"value\":\"42\"}");
	json_decref(v);
	v = column_value(db, "SELECT -7");
	ASSERT_JSON(v, "{\"type\":\"integer\",\"value\":\"-7\"}");
	json_decref(v);
	/* Integers beyond 2^53 keep every digit (a decimal string). */
	v = column_value(db, "SELECT 9007199254740993");
	ASSERT_JSON(v, "{\"type\":\"integer\",\"value\":\"9007199254740993\"}");
	json_decref(v);
	v = column_value(db, "SELECT 9223372036854775807");
	ASSERT_JSON(v,
		    "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
	json_decref(v);
	v = column_value(db, "SELECT -9223372036854775807 - 1");
	ASSERT_JSON(
	    v, "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
	json_decref(v);
	/* Floats are JSON numbers, integral ones included. */
	v = column_value(db, "SELECT 0.1");
	ck_assert_str_eq(json_string_value(json_object_get(v, "type")),
			 "float");
	ck_assert(json_is_real(json_object_get(v, "value")));
	ck_assert(json_real_value(json_object_get(v, "value")) == 0.1);
	json_decref(v);
	v = column_value(db, "SELECT 2.0");
	ck_assert_str_eq(json_string_value(json_object_get(v, "type")),
			 "float");
	ck_assert(json_number_value(json_object_get(v, "value")) == 2.0);
	json_decref(v);
	v = column_value(db, "SELECT -1.5e300");
	ck_assert(json_number_value(json_object_get(v, "value")) == -1.5e300);
	json_decref(v);
	/* JSON has no infinity: it must still produce a valid value. */
	v = column_value(db, "SELECT 1e999");
	{
		char *s = json_dumps(v, JSON_COMPACT);
		ck_assert_ptr_nonnull(s);
		ck_assert_ptr_null(strstr(s, "inf"));
		free(s);
	}
	json_decref(v);
	/* Text, UTF-8 and empty. */
	v = column_value(db, "SELECT 'h\xc3\xa9llo \xe2\x82\xac'");
	ASSERT_JSON(v, "{\"type\":\"text\",\"value\":\"h\\u00e9llo \\u20ac\"}");
	json_decref(v);
	v = column_value(db, "SELECT ''");
	ASSERT_JSON(v, "{\"type\":\"text\",\"value\":\"\"}");
	json_decref(v);
	/* Blobs: standard base64 alphabet, no padding. */
	v = column_value(db, "SELECT x'fbff'");
	ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"+/8\"}");
	json_decref(v);
	v = column_value(db, "SELECT x'00010203'");
	ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"AAECAw\"}");
	json_decref(v);
	v = column_value(db, "SELECT x'000102'");
	ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"AAEC\"}");
	json_decref(v);
	v = column_value(db, "SELECT x''");
	ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"\"}");
	json_decref(v);
	sqlite3_close(db);
}
END_TEST

/* Text that holds a NUL keeps its full length. */
START_TEST(test_text_with_nul)
{
	sqlite3 *db = open_db();
	sqlite3_stmt *st;
	json_t *v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, "a\0b", 3, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = values_from_column(st, 0);
	sqlite3_finalize(st);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(json_string_length(json_object_get(v, "value")), 3);
	ck_assert_int_eq(
	    memcmp(json_string_value(json_object_get(v, "value")), "a\0b", 3),
	    0);
	json_decref(v);
	sqlite3_close(db);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* values in */

START_TEST(test_value_bind_roundtrip)
{
	sqlite3 *db = open_db();
	const char *err;
	char type[16];
	json_t *v;
	struct {
		const char *in, *type, *out;
	} cases[] = {
	    {"{\"type\":\"null\"}", "null", "{\"type\":\"null\"}"},
	    {"{\"type\":\"integer\",\"value\":\"12\"}", "integer",
	     "{\"type\":\"integer\",\"value\":\"12\"}"},
	    {"{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}",
	     "integer",
	     "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}"},
	    {"{\"type\":\"integer\",\"value\":\"9223372036854775807\"}",
	     "integer",
	     "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}"},
	    {"{\"type\":\"integer\",\"value\":\"9007199254740993\"}", "integer",
	     "{\"type\":\"integer\",\"value\":\"9007199254740993\"}"},
	    /* The JS clients send numbers as float, integral ones too. */
	    {"{\"type\":\"float\",\"value\":3}", "real",
	     "{\"type\":\"float\",\"value\":3.0}"},
	    {"{\"type\":\"float\",\"value\":-0.25}", "real",
	     "{\"type\":\"float\",\"value\":-0.25}"},
	    {"{\"type\":\"text\",\"value\":\"\\u00e9t\\u00e9\"}", "text",
	     "{\"type\":\"text\",\"value\":\"\\u00e9t\\u00e9\"}"},
	    {"{\"type\":\"text\",\"value\":\"a\\u0000b\"}", "text",
	     "{\"type\":\"text\",\"value\":\"a\\u0000b\"}"},
	    {"{\"type\":\"text\",\"value\":\"\"}", "text",
	     "{\"type\":\"text\",\"value\":\"\"}"},
	    /* Blobs in: padded, unpadded, URL-safe; out: standard, no
	     * padding. */
	    {"{\"type\":\"blob\",\"base64\":\"+/8=\"}", "blob",
	     "{\"type\":\"blob\",\"base64\":\"+/8\"}"},
	    {"{\"type\":\"blob\",\"base64\":\"+/8\"}", "blob",
	     "{\"type\":\"blob\",\"base64\":\"+/8\"}"},
	    {"{\"type\":\"blob\",\"base64\":\"-_8\"}", "blob",
	     "{\"type\":\"blob\",\"base64\":\"+/8\"}"},
	    {"{\"type\":\"blob\",\"base64\":\"aGVsbG8gd29ybGQ=\"}", "blob",
	     "{\"type\":\"blob\",\"base64\":\"aGVsbG8gd29ybGQ\"}"},
	    {"{\"type\":\"blob\",\"base64\":\"\"}", "blob",
	     "{\"type\":\"blob\",\"base64\":\"\"}"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		v = bind_roundtrip(db, cases[i].in, type, sizeof type, &err);
		ck_assert_msg(v != NULL, "%s: %s", cases[i].in, err);
		ck_assert_msg(strcmp(type, cases[i].type) == 0,
			      "%s bound as %s", cases[i].in, type);
		ASSERT_JSON(v, cases[i].out);
		json_decref(v);
	}
	/* The blob's bytes themselves. */
	{
		sqlite3_stmt *st;
		json_t *b = parse("{\"type\":\"blob\",\"base64\":\"AP9/gA\"}");
		ck_assert_int_eq(
		    sqlite3_prepare_v2(db, "SELECT hex(?)", -1, &st, NULL),
		    SQLITE_OK);
		ck_assert_int_eq(values_bind(st, 1, b, &err), 0);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 0),
				 "00FF7F80");
		sqlite3_finalize(st);
		json_decref(b);
	}
	sqlite3_close(db);
}
END_TEST

START_TEST(test_value_bind_errors)
{
	sqlite3 *db = open_db();
	const char *bad[] = {
	    "{\"type\":\"integer\",\"value\":\"abc\"}",
	    "{\"type\":\"integer\",\"value\":\"12x\"}",
	    "{\"type\":\"integer\",\"value\":\"\"}",
	    "{\"type\":\"integer\",\"value\":\"1.5\"}",
	    "{\"type\":\"integer\",\"value\":\"9223372036854775808\"}",
	    "{\"type\":\"integer\",\"value\":\"-9223372036854775809\"}",
	    "{\"type\":\"integer\",\"value\":1.5}",
	    "{\"type\":\"integer\",\"value\":null}",
	    "{\"type\":\"integer\"}",
	    "{\"type\":\"float\",\"value\":\"1.5\"}",
	    "{\"type\":\"float\"}",
	    "{\"type\":\"text\",\"value\":5}",
	    "{\"type\":\"text\"}",
	    "{\"type\":\"blob\"}",
	    "{\"type\":\"blob\",\"value\":\"AAAA\"}",
	    "{\"type\":\"blob\",\"base64\":5}",
	    "{\"type\":\"blob\",\"base64\":\"A\"}",
	    "{\"type\":\"blob\",\"base64\":\"AA*A\"}",
	    "{\"type\":\"blob\",\"base64\":\"AA=A\"}",
	    "{\"type\":\"boolean\",\"value\":true}",
	    "{\"type\":5}",
	    "{\"value\":\"1\"}",
	    "{}",
	    "\"text\"",
	    "42",
	    "null",
	};
	const char *err;
	char type[16];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v = bind_roundtrip(db, bad[i], type, sizeof type, &err);
		ck_assert_msg(v == NULL, "%s was accepted as %s", bad[i], type);
		ck_assert_msg(err != NULL && err[0] != '\0',
			      "%s: no error message", bad[i]);
	}
	sqlite3_close(db);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* execute */

START_TEST(test_execute_results)
{
	struct fx f;
	json_t *r;

	fx_init(&f, 3, 0);
	r = execute(&f, "{\"sql\":\"CREATE TABLE t(id INTEGER PRIMARY KEY, "
			"name TEXT, v)\"}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "cols")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 0);
	json_decref(r);
	r = execute(&f, "{\"sql\":\"INSERT INTO t(name, v) VALUES ('a', 1), "
			"('b', 2), ('c', 3)\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 3);
	ck_assert_str_eq(
	    json_string_value(json_object_get(r, "last_insert_rowid")), "3");
	json_decref(r);
	r = execute(&f, "{\"sql\":\"UPDATE t SET v = v + 10 WHERE id >= 2\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 2);
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(v) FROM t"), 26);
	r = execute(&f, "{\"sql\":\"SELECT id, name, v * 2 AS d FROM t "
			"ORDER BY id\"}");
	ASSERT_JSON(json_object_get(r, "cols"),
		    "[{\"name\":\"id\",\"decltype\":\"INTEGER\"},"
		    "{\"name\":\"name\",\"decltype\":\"TEXT\"},"
		    "{\"name\":\"d\",\"decltype\":null}]");
	ASSERT_JSON(json_object_get(r, "rows"),
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
	r = execute(&f, "{\"sql\":\"DELETE FROM t WHERE id = 1 RETURNING id\","
			"\"want_rows\":false}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 0);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 1);
	json_decref(r);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 2);
	/* Explicit nulls (npm libsql sends them). */
	r = execute(&f, "{\"sql\":\"SELECT 1\",\"args\":null,"
			"\"named_args\":null,\"want_rows\":null}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 1);
	json_decref(r);
	fx_done(&f);
}
END_TEST

START_TEST(test_execute_args)
{
	struct fx f;
	json_t *r;

	fx_init(&f, 2, 0);
	/* Positional. */
	r = execute(&f, "{\"sql\":\"SELECT ?, ?2 + 1, typeof(?3)\",\"args\":["
			"{\"type\":\"text\",\"value\":\"x\"},"
			"{\"type\":\"integer\",\"value\":\"41\"},"
			"{\"type\":\"blob\",\"base64\":\"AA\"}]}");
	ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
		    "[{\"type\":\"text\",\"value\":\"x\"},"
		    "{\"type\":\"integer\",\"value\":\"42\"},"
		    "{\"type\":\"text\",\"value\":\"blob\"}]");
	json_decref(r);
	/* Named, with each prefix spelled out or left to the server. */
	r = execute(&f, "{\"sql\":\"SELECT :a, @b, $c\",\"named_args\":["
			"{\"name\":\":a\",\"value\":"
			"{\"type\":\"integer\",\"value\":\"1\"}},"
			"{\"name\":\"@b\",\"value\":"
			"{\"type\":\"integer\",\"value\":\"2\"}},"
			"{\"name\":\"$c\",\"value\":"
			"{\"type\":\"integer\",\"value\":\"3\"}}]}");
	ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
		    "[{\"type\":\"integer\",\"value\":\"1\"},"
		    "{\"type\":\"integer\",\"value\":\"2\"},"
		    "{\"type\":\"integer\",\"value\":\"3\"}]");
	json_decref(r);
	r = execute(&f, "{\"sql\":\"SELECT :a, @b, $c\",\"named_args\":["
			"{\"name\":\"c\",\"value\":"
			"{\"type\":\"text\",\"value\":\"C\"}},"
			"{\"name\":\"a\",\"value\":"
			"{\"type\":\"text\",\"value\":\"A\"}},"
			"{\"name\":\"b\",\"value\":"
			"{\"type\":\"text\",\"value\":\"B\"}},"
			"{\"name\":\"unused\",\"value\":"
			"{\"type\":\"text\",\"value\":\"U\"}}]}");
	ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
		    "[{\"type\":\"text\",\"value\":\"A\"},"
		    "{\"type\":\"text\",\"value\":\"B\"},"
		    "{\"type\":\"text\",\"value\":\"C\"}]");
	json_decref(r);
	/* A parameter given no value is NULL. */
	r = execute(&f, "{\"sql\":\"SELECT ?1 IS NULL, ?2 IS NULL\",\"args\":["
			"{\"type\":\"integer\",\"value\":\"5\"}]}");
	ASSERT_JSON(json_array_get(json_object_get(r, "rows"), 0),
		    "[{\"type\":\"integer\",\"value\":\"0\"},"
		    "{\"type\":\"integer\",\"value\":\"1\"}]");
	json_decref(r);
	/* Arguments are data, never SQL. */
	fixture_exec(f.db, "CREATE TABLE t(x)");
	json_decref(execute(&f, "{\"sql\":\"INSERT INTO t VALUES (?)\","
				"\"args\":[{\"type\":\"text\",\"value\":"
				"\"'); DROP TABLE t; --\"}]}"));
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);

	ASSERT_CODE(&f,
		    "{\"sql\":\"SELECT ?\",\"args\":["
		    "{\"type\":\"integer\",\"value\":\"1\"},"
		    "{\"type\":\"integer\",\"value\":\"2\"}]}",
		    "ARGS_INVALID");
	ASSERT_CODE(&f,
		    "{\"sql\":\"SELECT ?\",\"args\":["
		    "{\"type\":\"integer\",\"value\":\"one\"}]}",
		    "ARGS_INVALID");
	ASSERT_CODE(&f,
		    "{\"sql\":\"SELECT :a\",\"named_args\":[{\"name\":\"a\","
		    "\"value\":{\"type\":\"nope\"}}]}",
		    "ARGS_INVALID");
	ASSERT_CODE(&f, "{\"sql\":\"SELECT ?\",\"args\":{}}",
		    "HRANA_PROTO_ERROR");
	ASSERT_CODE(&f,
		    "{\"sql\":\"SELECT :a\",\"named_args\":[{\"value\":"
		    "{\"type\":\"null\"}}]}",
		    "HRANA_PROTO_ERROR");
	fx_done(&f);
}
END_TEST

START_TEST(test_execute_errors)
{
	struct fx f;
	json_t *res;
	char *code;

	fx_init(&f, 2, 0);
	fixture_exec(
	    f.db, "CREATE TABLE t(id INTEGER PRIMARY KEY, u UNIQUE NOT NULL);"
		  "INSERT INTO t VALUES (1, 'a')");
	/* Constraint violations: sqld (and so @libsql/client, which passes
	 * the code through as LibsqlError.code) uses the primary code. */
	res = request(&f,
		      "{\"type\":\"execute\",\"stmt\":{\"sql\":"
		      "\"INSERT INTO t VALUES (2, 'a')\"}}",
		      NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_CONSTRAINT");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(
		       json_object_get(res, "error"), "message")),
		   "UNIQUE constraint failed"));
	json_decref(res);
	ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (1, 'b')\"}",
		    "SQLITE_CONSTRAINT");
	ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (3, NULL)\"}",
		    "SQLITE_CONSTRAINT");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	ASSERT_CODE(&f, "{\"sql\":\"SELEC 1\"}", "SQL_PARSE_ERROR");
	ASSERT_CODE(&f, "{\"sql\":\"SELECT (1\"}", "SQL_PARSE_ERROR");
	ASSERT_CODE(&f, "{\"sql\":\"SELECT * FROM missing\"}", "SQLITE_ERROR");
	ASSERT_CODE(&f, "{\"sql\":\"\"}", "SQL_NO_STATEMENT");
	ASSERT_CODE(&f, "{\"sql\":\"  -- only a comment\"}",
		    "SQL_NO_STATEMENT");
	ASSERT_CODE(&f, "{\"sql\":\"SELECT 1; SELECT 2\"}",
		    "SQL_MANY_STATEMENTS");
	ASSERT_CODE(&f,
		    "{\"sql\":\"INSERT INTO t VALUES (5, 'x'); DELETE "
		    "FROM t\"}",
		    "SQL_MANY_STATEMENTS");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	/* Trailing separators and comments are not another statement. */
	json_decref(
	    execute(&f, "{\"sql\":\"SELECT 1; -- done\\n /* c */ ;\"}"));
	ASSERT_CODE(&f, "{}", "HRANA_PROTO_ERROR");
	ASSERT_CODE(&f, "{\"sql\":5}", "HRANA_PROTO_ERROR");
	code = execute_error(&f, "{\"sql_id\":77}");
	ck_assert_str_eq(code, "SQL_STORE_DOES_NOT_EXIST");
	free(code);
	/* A statement that is not an object. */
	res = request(&f, "{\"type\":\"execute\",\"stmt\":\"SELECT 1\"}", NULL);
	error_code(res);
	json_decref(res);
	res = request(&f, "{\"type\":\"execute\"}", NULL);
	error_code(res);
	json_decref(res);
	fx_done(&f);
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
	struct fx f;
	json_t *res, *err;
	char req[512];

	fx_init(&f, 3, 0);
	f.c.timeout_ms = 200;
	fixture_exec(f.db, "CREATE TABLE t(x)");
	snprintf(req, sizeof req,
		 "{\"type\":\"execute\",\"stmt\":{\"sql\":\"%s\"}}", heavy);
	res = request(&f, req, NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_INTERRUPT");
	err = json_object_get(res, "error");
	ck_assert_ptr_nonnull(strstr(
	    json_string_value(json_object_get(err, "message")), "200 ms"));
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(err, "message")),
		   "--statement-timeout"));
	json_decref(res);
	/* The next statement runs, on the same connection. */
	json_decref(execute(&f, "{\"sql\":\"SELECT 1\"}"));

	/* A write interrupted in an explicit transaction: all of it is
	 * rolled back, the earlier insert included. */
	json_decref(execute(&f, "{\"sql\":\"BEGIN\"}"));
	json_decref(execute(&f, "{\"sql\":\"INSERT INTO t VALUES (1)\"}"));
	snprintf(req, sizeof req,
		 "{\"type\":\"execute\",\"stmt\":{\"sql\":\"INSERT INTO t "
		 "%s\"}}",
		 heavy);
	res = request(&f, req, NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_INTERRUPT");
	json_decref(res);
	ck_assert_int_eq(sqlite3_get_autocommit(f.db), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 0);

	/* sequence */
	snprintf(req, sizeof req, "{\"type\":\"sequence\",\"sql\":\"%s\"}",
		 heavy);
	res = request(&f, req, NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_INTERRUPT");
	json_decref(res);

	/* No limit: a statement that takes a while completes. */
	f.c.timeout_ms = 0;
	json_decref(execute(&f, "{\"sql\":\"WITH RECURSIVE n(i) AS (SELECT 1 "
				"UNION ALL SELECT i + 1 FROM n WHERE i < "
				"300000) SELECT count(*) FROM n\"}"));
	fx_done(&f);
}
END_TEST

START_TEST(test_read_only)
{
	struct fx f;
	json_t *r, *res;

	fx_init(&f, 3, 1);
	fixture_exec(f.db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	r = execute(&f, "{\"sql\":\"SELECT x FROM t\"}");
	ck_assert_int_eq(json_array_size(json_object_get(r, "rows")), 1);
	json_decref(r);
	ASSERT_CODE(&f, "{\"sql\":\"INSERT INTO t VALUES (2)\"}",
		    "SQLITE_READONLY");
	ASSERT_CODE(&f, "{\"sql\":\"DELETE FROM t\"}", "SQLITE_READONLY");
	ASSERT_CODE(&f, "{\"sql\":\"CREATE TABLE u(y)\"}", "SQLITE_READONLY");
	ASSERT_CODE(&f, "{\"sql\":\"DROP TABLE t\"}", "SQLITE_READONLY");
	ASSERT_CODE(&f, "{\"sql\":\"PRAGMA user_version = 7\"}",
		    "SQLITE_READONLY");
	/* Not through a batch or a sequence either. */
	res = request(&f,
		      "{\"type\":\"batch\",\"batch\":{\"steps\":["
		      "{\"stmt\":{\"sql\":\"SELECT 1\"}},"
		      "{\"stmt\":{\"sql\":\"UPDATE t SET x = 5\"}}]}}",
		      NULL);
	r = json_object_get(ok_response(res, "batch"), "result");
	ck_assert(json_is_object(
	    json_array_get(json_object_get(r, "step_results"), 0)));
	ck_assert(json_is_null(
	    json_array_get(json_object_get(r, "step_results"), 1)));
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(r, "step_errors"), 1), "code")),
	    "SQLITE_READONLY");
	json_decref(res);
	res = request(&f,
		      "{\"type\":\"sequence\",\"sql\":\"SELECT 1; "
		      "INSERT INTO t VALUES (3)\"}",
		      NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_READONLY");
	json_decref(res);
	/* Transactions for consistent reads are fine. */
	json_decref(execute(&f, "{\"sql\":\"BEGIN\"}"));
	json_decref(execute(&f, "{\"sql\":\"SELECT count(*) FROM t\"}"));
	json_decref(execute(&f, "{\"sql\":\"COMMIT\"}"));
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 1);
	ck_assert_int_eq(fixture_query_int(f.db, "PRAGMA user_version"), 0);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* batches */

static json_t *batch(struct fx *f, const char *steps_json)
{
	char *req = NULL;
	json_t *res, *r;

	ck_assert(asprintf(&req,
			   "{\"type\":\"batch\",\"batch\":{\"steps\":%s}}",
			   steps_json) > 0);
	res = request(f, req, NULL);
	r = json_object_get(ok_response(res, "batch"), "result");
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
	struct fx f;
	json_t *r;

	fx_init(&f, 3, 0);
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
	ASSERT_JSON(
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
	fx_done(&f);
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
	struct fx f;
	char steps[1024];
	json_t *r;

	fx_init(&f, 2, 0);
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
	fx_done(&f);
}
END_TEST

START_TEST(test_batch_is_autocommit)
{
	struct fx f;
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

	fx_init(&f, 3, 0);
	r = batch(&f, steps);
	assert_outcomes(r, "oo-oo");
	json_decref(r);
	ck_assert_int_ne(sqlite3_get_autocommit(f.db), 0);
	fx_done(&f);

	/* Hrana 2 takes it too: Turso Sync's clients push on /v2/pipeline
	 * with batches guarded by it. */
	fx_init(&f, 2, 0);
	r = batch(&f, steps);
	assert_outcomes(r, "oo-oo");
	json_decref(r);
	fx_done(&f);
}
END_TEST

START_TEST(test_batch_malformed)
{
	struct fx f;
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

	fx_init(&f, 3, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_proto_error(&f, bad[i]);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* other requests */

START_TEST(test_store_sql)
{
	struct fx f;
	json_t *res, *r;

	fx_init(&f, 2, 0);
	fixture_exec(f.db, "CREATE TABLE t(x)");
	res = request(&f,
		      "{\"type\":\"store_sql\",\"sql_id\":1,"
		      "\"sql\":\"INSERT INTO t VALUES (?)\"}",
		      NULL);
	ok_response(res, "store_sql");
	json_decref(res);
	res = request(&f,
		      "{\"type\":\"store_sql\",\"sql_id\":2,"
		      "\"sql\":\"SELECT sum(x) FROM t\"}",
		      NULL);
	ok_response(res, "store_sql");
	json_decref(res);
	json_decref(execute(&f, "{\"sql_id\":1,\"args\":[{\"type\":"
				"\"integer\",\"value\":\"20\"}]}"));
	r = batch(&f, "[{\"stmt\":{\"sql_id\":1,\"args\":[{\"type\":"
		      "\"integer\",\"value\":\"22\"}]}},"
		      "{\"stmt\":{\"sql_id\":2}}]");
	assert_outcomes(r, "oo");
	ASSERT_JSON(
	    json_object_get(
		json_array_get(json_object_get(r, "step_results"), 1), "rows"),
	    "[[{\"type\":\"integer\",\"value\":\"42\"}]]");
	json_decref(r);
	/* Re-storing an id replaces its SQL. */
	res = request(&f,
		      "{\"type\":\"store_sql\",\"sql_id\":2,"
		      "\"sql\":\"SELECT count(*) FROM t\"}",
		      NULL);
	json_decref(res);
	r = execute(&f, "{\"sql_id\":2}");
	ASSERT_JSON(json_object_get(r, "rows"),
		    "[[{\"type\":\"integer\",\"value\":\"2\"}]]");
	json_decref(r);
	res = request(&f, "{\"type\":\"close_sql\",\"sql_id\":1}", NULL);
	ok_response(res, "close_sql");
	json_decref(res);
	ASSERT_CODE(&f, "{\"sql_id\":1}", "SQL_STORE_DOES_NOT_EXIST");
	/* describe and sequence take sql_id as well. */
	res = request(&f, "{\"type\":\"describe\",\"sql_id\":2}", NULL);
	ok_response(res, "describe");
	json_decref(res);
	res = request(&f, "{\"type\":\"sequence\",\"sql_id\":1}", NULL);
	ck_assert_str_eq(error_code(res), "SQL_STORE_DOES_NOT_EXIST");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 42);

	assert_proto_error(&f, "{\"type\":\"store_sql\",\"sql\":\"SELECT 1\"}");
	assert_proto_error(&f, "{\"type\":\"store_sql\",\"sql_id\":\"3\","
			       "\"sql\":\"SELECT 1\"}");
	assert_proto_error(&f, "{\"type\":\"store_sql\",\"sql_id\":3}");
	assert_proto_error(&f, "{\"type\":\"close_sql\"}");
	/* Stored SQL belongs to the connection: reset forgets it. */
	hrana_conn_reset(&f.c);
	hrana_conn_init(&f.c, f.db, 2, 0);
	ASSERT_CODE(&f, "{\"sql_id\":2}", "SQL_STORE_DOES_NOT_EXIST");
	fx_done(&f);
}
END_TEST

START_TEST(test_sequence)
{
	struct fx f;
	json_t *res;

	fx_init(&f, 2, 0);
	res = request(&f,
		      "{\"type\":\"sequence\",\"sql\":\"CREATE TABLE t(x);"
		      " INSERT INTO t VALUES (1); -- comment\\n"
		      "INSERT INTO t VALUES (2);;  SELECT * FROM t; \"}",
		      NULL);
	ok_response(res, "sequence");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 3);
	/* It stops at the first error; earlier statements stay done. */
	res = request(&f,
		      "{\"type\":\"sequence\",\"sql\":\"INSERT INTO t "
		      "VALUES (10); INSERT INTO missing VALUES (1); "
		      "INSERT INTO t VALUES (100)\"}",
		      NULL);
	ck_assert_str_eq(error_code(res), "SQLITE_ERROR");
	json_decref(res);
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT sum(x) FROM t"), 13);
	res = request(&f, "{\"type\":\"sequence\",\"sql\":\"SELEC 1\"}", NULL);
	ck_assert_str_eq(error_code(res), "SQL_PARSE_ERROR");
	json_decref(res);
	res = request(&f, "{\"type\":\"sequence\",\"sql\":\"\"}", NULL);
	ok_response(res, "sequence");
	json_decref(res);
	res = request(&f, "{\"type\":\"sequence\"}", NULL);
	error_code(res);
	json_decref(res);
	fx_done(&f);
}
END_TEST

START_TEST(test_describe)
{
	struct fx f;
	json_t *res, *r;

	fx_init(&f, 3, 0);
	fixture_exec(f.db, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)");
	res = request(&f,
		      "{\"type\":\"describe\",\"sql\":\"SELECT id, name, 1 "
		      "FROM t WHERE id = :id AND name = ?2\"}",
		      NULL);
	r = json_object_get(ok_response(res, "describe"), "result");
	ASSERT_JSON(json_object_get(r, "params"),
		    "[{\"name\":\":id\"},{\"name\":\"?2\"}]");
	ASSERT_JSON(json_object_get(r, "cols"),
		    "[{\"name\":\"id\",\"decltype\":\"INTEGER\"},"
		    "{\"name\":\"name\",\"decltype\":\"TEXT\"},"
		    "{\"name\":\"1\",\"decltype\":null}]");
	ck_assert(json_is_false(json_object_get(r, "is_explain")));
	ck_assert(json_is_true(json_object_get(r, "is_readonly")));
	json_decref(res);
	res = request(&f,
		      "{\"type\":\"describe\",\"sql\":\"INSERT INTO t(name) "
		      "VALUES (?)\"}",
		      NULL);
	r = json_object_get(ok_response(res, "describe"), "result");
	ASSERT_JSON(json_object_get(r, "params"), "[{\"name\":null}]");
	ck_assert(json_is_false(json_object_get(r, "is_readonly")));
	json_decref(res);
	res = request(
	    &f, "{\"type\":\"describe\",\"sql\":\"EXPLAIN SELECT 1\"}", NULL);
	r = json_object_get(ok_response(res, "describe"), "result");
	ck_assert(json_is_true(json_object_get(r, "is_explain")));
	json_decref(res);
	/* Describing does not execute. */
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM t"), 0);
	res = request(&f, "{\"type\":\"describe\",\"sql\":\"SELEC\"}", NULL);
	ck_assert_str_eq(error_code(res), "SQL_PARSE_ERROR");
	json_decref(res);
	res = request(&f, "{\"type\":\"describe\",\"sql\":\"\"}", NULL);
	ck_assert_str_eq(error_code(res), "SQL_NO_STATEMENT");
	json_decref(res);
	fx_done(&f);
}
END_TEST

START_TEST(test_get_autocommit_and_close)
{
	struct fx f;
	json_t *res;
	int close = -1;

	fx_init(&f, 3, 0);
	res = request(&f, "{\"type\":\"get_autocommit\"}", &close);
	ck_assert(json_is_true(json_object_get(
	    ok_response(res, "get_autocommit"), "is_autocommit")));
	ck_assert_int_eq(close, 0);
	json_decref(res);
	json_decref(execute(&f, "{\"sql\":\"BEGIN\"}"));
	res = request(&f, "{\"type\":\"get_autocommit\"}", NULL);
	ck_assert(json_is_false(json_object_get(
	    ok_response(res, "get_autocommit"), "is_autocommit")));
	json_decref(res);
	json_decref(execute(&f, "{\"sql\":\"ROLLBACK\"}"));
	res = request(&f, "{\"type\":\"close\"}", &close);
	ok_response(res, "close");
	ck_assert_int_eq(close, 1);
	json_decref(res);
	fx_done(&f);

	fx_init(&f, 2, 0);
	assert_proto_error(&f, "{\"type\":\"get_autocommit\"}");
	res = request(&f, "{\"type\":\"close\"}", &close);
	ck_assert_int_eq(close, 1);
	json_decref(res);
	fx_done(&f);
}
END_TEST

START_TEST(test_malformed_requests)
{
	struct fx f;
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

	fx_init(&f, 3, 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_proto_error(&f, bad[i]);
	fx_done(&f);
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
	struct fx f;
	json_t *b, *entries = json_array();
	const char *proto_err = NULL;

	fx_init(&f, 3, 0);
	fixture_exec(f.db,
		     "CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1), (2)");
	b = parse("{\"steps\":["
		  "{\"stmt\":{\"sql\":\"SELECT x FROM t ORDER BY x\"}},"
		  "{\"stmt\":{\"sql\":\"INSERT INTO t VALUES (1)\"}},"
		  "{\"condition\":{\"type\":\"ok\",\"step\":1},"
		  "\"stmt\":{\"sql\":\"SELECT 'skipped'\"}},"
		  "{\"condition\":{\"type\":\"error\",\"step\":1},"
		  "\"stmt\":{\"sql\":\"INSERT INTO t VALUES (?)\",\"args\":"
		  "[{\"type\":\"integer\",\"value\":\"7\"}]}}]}");
	ck_assert_int_eq(hrana_cursor(&f.c, b, collect, entries, &proto_err),
			 0);
	ASSERT_JSON(entries, "[{\"type\":\"step_begin\",\"step\":0,\"cols\":"
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
	b = parse("{\"stops\":[]}");
	ck_assert_int_eq(hrana_cursor(&f.c, b, collect, entries, &proto_err),
			 -1);
	ck_assert_ptr_nonnull(proto_err);
	ck_assert_uint_eq(json_array_size(entries), 0);
	json_decref(b);
	json_decref(entries);
	fx_done(&f);
}
END_TEST

/* Text that is not valid UTF-8 (CAST of a blob, or written by another
 * client) still is a value: jansson refuses such strings, and the row must
 * not silently lose the column. */
START_TEST(test_invalid_utf8_text)
{
	sqlite3 *db = open_db();
	sqlite3_stmt *st;
	json_t *v;

	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT CAST(x'61ff62' AS TEXT)",
					    -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = values_from_column(st, 0);
	sqlite3_finalize(st);
	ck_assert_msg(v != NULL, "invalid UTF-8 text gives no value at all");
	ck_assert_str_eq(json_string_value(json_object_get(v, "type")), "text");
	/* The invalid byte becomes U+FFFD; the valid ones are kept. */
	ck_assert_str_eq(json_string_value(json_object_get(v, "value")),
			 "a\xef\xbf\xbd"
			 "b");
	json_decref(v);
	sqlite3_close(db);
}
END_TEST

/* affected_row_count is the statement's own changes (sqlite3_changes64),
 * as sqld reports it, not including rows changed by triggers. */
START_TEST(test_affected_rows_without_triggers)
{
	struct fx f;
	json_t *r;

	fx_init(&f, 2, 0);
	fixture_exec(f.db,
		     "CREATE TABLE t(x); CREATE TABLE audit(y);"
		     "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
		     "INSERT INTO audit VALUES (new.x); INSERT INTO audit "
		     "VALUES (new.x); END");
	r = execute(&f, "{\"sql\":\"INSERT INTO t VALUES (1)\"}");
	ck_assert_int_eq(fixture_query_int(f.db, "SELECT count(*) FROM audit"),
			 2);
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 1);
	json_decref(r);
	/* DDL changes no rows, whatever the previous statement changed. */
	r = execute(&f, "{\"sql\":\"CREATE TABLE u(z)\"}");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(r, "affected_row_count")), 0);
	json_decref(r);
	fx_done(&f);
}
END_TEST

static Suite *hrana_suite(void)
{
	Suite *s = suite_create("hrana");
	TCase *tc = tcase_create("hrana");

	tcase_add_test(tc, test_value_from_column);
	tcase_add_test(tc, test_text_with_nul);
	tcase_add_test(tc, test_value_bind_roundtrip);
	tcase_add_test(tc, test_value_bind_errors);
	tcase_add_test(tc, test_execute_results);
	tcase_add_test(tc, test_execute_args);
	tcase_add_test(tc, test_execute_errors);
	tcase_add_test(tc, test_statement_timeout);
	tcase_add_test(tc, test_read_only);
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
	tcase_add_test(tc, test_invalid_utf8_text);
	tcase_add_test(tc, test_affected_rows_without_triggers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(hrana_suite());
}
