/* Helpers shared by the Hrana tests (see hrana_test_helpers.h). */
#include "hrana_test_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>

#include "server/hrana.h"

/* ---------------------------------------------------------------------- */
/* JSON and SQLite */

json_t *hth_parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	ck_assert_msg(j != NULL, "bad JSON in test: %s (%s)", text, e.text);
	return j;
}

char *hth_dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

sqlite3 *hth_open_db(void)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	return db;
}

/* ---------------------------------------------------------------------- */
/* a Hrana connection */

void hth_fx_init(struct hth_fx *f, int version, int read_only)
{
	f->db = hth_open_db();
	hrana_conn_init(&f->c, f->db, version, read_only);
}

void hth_fx_done(struct hth_fx *f)
{
	hrana_conn_reset(&f->c);
	sqlite3_close(f->db);
}

/* Execute one request (JSON text); it must be a valid request. */
json_t *hth_request(struct hth_fx *f, const char *req_json, int *close)
{
	json_t *req = hth_parse(req_json);
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
void hth_assert_proto_error(struct hth_fx *f, const char *req_json)
{
	json_t *req = hth_parse(req_json);
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
json_t *hth_ok_response(json_t *res, const char *type)
{
	json_t *resp = json_object_get(res, "response");
	char *d = hth_dump(res);

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
const char *hth_error_code(json_t *res)
{
	json_t *e = json_object_get(res, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	char *d = hth_dump(res);

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
json_t *hth_execute(struct hth_fx *f, const char *stmt_json)
{
	char *req = NULL;
	json_t *res, *r;

	ck_assert(asprintf(&req, "{\"type\":\"execute\",\"stmt\":%s}",
			   stmt_json) > 0);
	res = hth_request(f, req, NULL);
	r = json_object_get(hth_ok_response(res, "execute"), "result");
	ck_assert_ptr_nonnull(r);
	json_incref(r);
	json_decref(res);
	free(req);
	return r;
}

/* Execute a statement that must fail; returns a copy of its error code. */
char *hth_execute_error(struct hth_fx *f, const char *stmt_json)
{
	char *req = NULL, *code;
	json_t *res;

	ck_assert(asprintf(&req, "{\"type\":\"execute\",\"stmt\":%s}",
			   stmt_json) > 0);
	res = hth_request(f, req, NULL);
	code = strdup(hth_error_code(res));
	json_decref(res);
	free(req);
	return code;
}
