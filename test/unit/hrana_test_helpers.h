/* Helpers shared by the Hrana tests (test_hrana.c and
 * test_hrana_{values,requests}.c, one theme each): JSON in and out, a
 * :memory: database, a Hrana connection on one, and running requests and
 * statements on it with their ok or error results checked. */
#ifndef REPLITE_TEST_HRANA_TEST_HELPERS_H
#define REPLITE_TEST_HRANA_TEST_HELPERS_H

#include <stdlib.h>

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>

#include "server/hrana.h"

/* ---------------------------------------------------------------------- */
/* JSON and SQLite */

/* Parse JSON text written in a test (any value, NULs allowed); fails the
 * test on bad JSON. */
json_t *hth_parse(const char *text);

/* Compact JSON text of j with sorted keys (free()), for messages. */
char *hth_dump(json_t *j);

/* j equals the JSON text expected (key order ignored). */
#define HTH_ASSERT_JSON(j, expected)                                           \
	do {                                                                   \
		json_t *want_ = hth_parse(expected);                           \
		char *got_ = hth_dump(j);                                      \
		ck_assert_msg(json_equal((j), want_), "got %s, want %s", got_, \
			      (expected));                                     \
		free(got_);                                                    \
		json_decref(want_);                                            \
	} while (0)

/* A new :memory: database; every test runs against real SQLite. */
sqlite3 *hth_open_db(void);

/* ---------------------------------------------------------------------- */
/* a Hrana connection */

/* A Hrana connection on its own :memory: database. */
struct hth_fx {
	sqlite3 *db;
	struct hrana_conn c;
};

/* Open the database and a connection of the given protocol version. */
void hth_fx_init(struct hth_fx *f, int version, int read_only);

/* Reset the connection and close the database. */
void hth_fx_done(struct hth_fx *f);

/* Execute one request (JSON text); it must be a valid request. */
json_t *hth_request(struct hth_fx *f, const char *req_json, int *close);

/* A request that must be refused as a protocol error (HTTP 400). */
void hth_assert_proto_error(struct hth_fx *f, const char *req_json);

/* The response object of an ok result, of the given type. */
json_t *hth_ok_response(json_t *res, const char *type);

/* The code of an error result (and it has a non-empty message). */
const char *hth_error_code(json_t *res);

/* Execute a statement, returning the StmtResult (a new reference). */
json_t *hth_execute(struct hth_fx *f, const char *stmt_json);

/* Execute a statement that must fail; returns a copy of its error code. */
char *hth_execute_error(struct hth_fx *f, const char *stmt_json);

/* Executing the statement stmt fails with the error code expected. */
#define HTH_ASSERT_CODE(f, stmt, expected)                                     \
	do {                                                                   \
		char *code_ = hth_execute_error((f), (stmt));                  \
		ck_assert_str_eq(code_, (expected));                           \
		free(code_);                                                   \
	} while (0)

#endif
