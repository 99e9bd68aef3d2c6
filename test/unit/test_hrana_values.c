/* Hrana value encoding, run against real SQLite :memory: connections:
 * column values out (integers past 2^53, floats, text with NULs or invalid
 * UTF-8, base64 blobs) and Hrana values bound in, with the values that
 * must be refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fixture.h"
#include "hrana_test_helpers.h"
#include "proto/values.h"

/* ---------------------------------------------------------------------- */
/* helpers */

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
	json_t *value = hth_parse(value_json);
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

/* ---------------------------------------------------------------------- */
/* values out */

START_TEST(test_value_from_column)
{
	sqlite3 *db = hth_open_db();
	json_t *v;

	v = column_value(db, "SELECT NULL");
	HTH_ASSERT_JSON(v, "{\"type\":\"null\"}");
	json_decref(v);
	v = column_value(db, "SELECT 42");
	HTH_ASSERT_JSON(v, "{\"type\":\"integer\",\"value\":\"42\"}");
	json_decref(v);
	v = column_value(db, "SELECT -7");
	HTH_ASSERT_JSON(v, "{\"type\":\"integer\",\"value\":\"-7\"}");
	json_decref(v);
	/* Integers beyond 2^53 keep every digit (a decimal string). */
	v = column_value(db, "SELECT 9007199254740993");
	HTH_ASSERT_JSON(
	    v, "{\"type\":\"integer\",\"value\":\"9007199254740993\"}");
	json_decref(v);
	v = column_value(db, "SELECT 9223372036854775807");
	HTH_ASSERT_JSON(
	    v, "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
	json_decref(v);
	v = column_value(db, "SELECT -9223372036854775807 - 1");
	HTH_ASSERT_JSON(
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
	HTH_ASSERT_JSON(
	    v, "{\"type\":\"text\",\"value\":\"h\\u00e9llo \\u20ac\"}");
	json_decref(v);
	v = column_value(db, "SELECT ''");
	HTH_ASSERT_JSON(v, "{\"type\":\"text\",\"value\":\"\"}");
	json_decref(v);
	/* Blobs: standard base64 alphabet, no padding. */
	v = column_value(db, "SELECT x'fbff'");
	HTH_ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"+/8\"}");
	json_decref(v);
	v = column_value(db, "SELECT x'00010203'");
	HTH_ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"AAECAw\"}");
	json_decref(v);
	v = column_value(db, "SELECT x'000102'");
	HTH_ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"AAEC\"}");
	json_decref(v);
	v = column_value(db, "SELECT x''");
	HTH_ASSERT_JSON(v, "{\"type\":\"blob\",\"base64\":\"\"}");
	json_decref(v);
	sqlite3_close(db);
}
END_TEST

/* Text that holds a NUL keeps its full length. */
START_TEST(test_text_with_nul)
{
	sqlite3 *db = hth_open_db();
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

/* Text that is not valid UTF-8 (CAST of a blob, or written by another
 * client) still is a value: jansson refuses such strings, and the row must
 * not silently lose the column. */
START_TEST(test_invalid_utf8_text)
{
	sqlite3 *db = hth_open_db();
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

/* ---------------------------------------------------------------------- */
/* values in */

START_TEST(test_value_bind_roundtrip)
{
	sqlite3 *db = hth_open_db();
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
		HTH_ASSERT_JSON(v, cases[i].out);
		json_decref(v);
	}
	/* The blob's bytes themselves. */
	{
		sqlite3_stmt *st;
		json_t *b =
		    hth_parse("{\"type\":\"blob\",\"base64\":\"AP9/gA\"}");
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
	sqlite3 *db = hth_open_db();
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

static Suite *hrana_values_suite(void)
{
	Suite *s = suite_create("hrana_values");
	TCase *tc = tcase_create("hrana_values");

	tcase_add_test(tc, test_value_from_column);
	tcase_add_test(tc, test_text_with_nul);
	tcase_add_test(tc, test_value_bind_roundtrip);
	tcase_add_test(tc, test_value_bind_errors);
	tcase_add_test(tc, test_invalid_utf8_text);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(hrana_values_suite());
}
