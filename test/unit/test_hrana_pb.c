/* Hrana 3 protobuf (server/hrana_pb.h): requests built with protobuf-c's
 * generated structs decode to the JSON the JSON encoding carries; answers
 * encode to messages protobuf-c unpacks with the expected fields; nesting
 * is bounded; random and mutated bytes never crash a decoder (this runs
 * under ASan/UBSan in CI). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "hrana.pb-c.h"
#include "hrana_http.pb-c.h"
#include "hrana_ws.pb-c.h"
#include "server/hrana.h"
#include "server/hrana_pb.h"

/* A packed message in a malloc'd buffer. */
static uint8_t *packed(const ProtobufCMessage *m, size_t *n)
{
	uint8_t *b;

	*n = protobuf_c_message_get_packed_size(m);
	b = malloc(*n ? *n : 1);
	ck_assert_ptr_nonnull(b);
	protobuf_c_message_pack(m, b);
	return b;
}

static void assert_json(json_t *got, const char *want_text)
{
	json_error_t e;
	json_t *want = json_loads(want_text, JSON_ALLOW_NUL, &e);
	char *g;

	ck_assert_msg(want != NULL, "bad expectation: %s", e.text);
	g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
	ck_assert_msg(json_equal(got, want), "got %s", g);
	free(g);
	json_decref(want);
}

START_TEST(test_pipeline_request)
{
	Hrana__Value v_int = HRANA__VALUE__INIT, v_text = HRANA__VALUE__INIT,
		     v_blob = HRANA__VALUE__INIT, v_null = HRANA__VALUE__INIT,
		     v_float = HRANA__VALUE__INIT;
	Hrana__Value__Null null = HRANA__VALUE__NULL__INIT;
	Hrana__Value *args[] = {&v_int, &v_text, &v_blob, &v_float};
	Hrana__NamedArg named = HRANA__NAMED_ARG__INIT;
	Hrana__NamedArg *nameds[] = {&named};
	Hrana__Stmt stmt = HRANA__STMT__INIT;
	Hrana__Http__ExecuteStreamReq exec =
	    HRANA__HTTP__EXECUTE_STREAM_REQ__INIT;
	Hrana__Http__StoreSqlStreamReq store =
	    HRANA__HTTP__STORE_SQL_STREAM_REQ__INIT;
	Hrana__Http__GetAutocommitStreamReq ac =
	    HRANA__HTTP__GET_AUTOCOMMIT_STREAM_REQ__INIT;
	Hrana__Http__CloseStreamReq close = HRANA__HTTP__CLOSE_STREAM_REQ__INIT;
	Hrana__Http__StreamRequest r1 = HRANA__HTTP__STREAM_REQUEST__INIT,
				   r2 = HRANA__HTTP__STREAM_REQUEST__INIT,
				   r3 = HRANA__HTTP__STREAM_REQUEST__INIT,
				   r4 = HRANA__HTTP__STREAM_REQUEST__INIT;
	Hrana__Http__StreamRequest *reqs[] = {&r1, &r2, &r3, &r4};
	Hrana__Http__PipelineReqBody body =
	    HRANA__HTTP__PIPELINE_REQ_BODY__INIT;
	const char *err = NULL;
	uint8_t *b;
	size_t n;
	json_t *j;

	v_int.value_case = HRANA__VALUE__VALUE_INTEGER;
	v_int.integer = -9007199254740993;
	v_text.value_case = HRANA__VALUE__VALUE_TEXT;
	v_text.text.data = (uint8_t *)"a\0b";
	v_text.text.len = 3;
	v_blob.value_case = HRANA__VALUE__VALUE_BLOB;
	v_blob.blob.data = (uint8_t *)"\x00\xff";
	v_blob.blob.len = 2;
	v_float.value_case = HRANA__VALUE__VALUE_FLOAT;
	v_float.float_ = 0.5;
	v_null.value_case = HRANA__VALUE__VALUE_NULL;
	v_null.null = &null;
	named.name = ":x";
	named.value = &v_null;
	stmt.sql = "SELECT ?, ?, ?, ?, :x";
	stmt.n_args = 4;
	stmt.args = args;
	stmt.n_named_args = 1;
	stmt.named_args = nameds;
	stmt.has_want_rows = 1;
	stmt.want_rows = 0;
	exec.stmt = &stmt;
	r1.request_case = HRANA__HTTP__STREAM_REQUEST__REQUEST_EXECUTE;
	r1.execute = &exec;
	store.sql_id = 7;
	store.has_sql_id = 1;
	store.sql = "SELECT 1";
	r2.request_case = HRANA__HTTP__STREAM_REQUEST__REQUEST_STORE_SQL;
	r2.store_sql = &store;
	r3.request_case = HRANA__HTTP__STREAM_REQUEST__REQUEST_GET_AUTOCOMMIT;
	r3.get_autocommit = &ac;
	r4.request_case = HRANA__HTTP__STREAM_REQUEST__REQUEST_CLOSE;
	r4.close = &close;
	body.baton = "B";
	body.n_requests = 4;
	body.requests = reqs;
	b = packed(&body.base, &n);
	j = hrana_pb_pipeline_request(b, n, &err);
	ck_assert_msg(j != NULL, "%s", err);
	assert_json(
	    j,
	    "{\"baton\":\"B\",\"requests\":["
	    "{\"type\":\"execute\",\"stmt\":{\"sql\":\"SELECT ?, ?, ?, ?, :x\","
	    "\"want_rows\":false,\"args\":["
	    "{\"type\":\"integer\",\"value\":\"-9007199254740993\"},"
	    "{\"type\":\"text\",\"value\":\"a\\u0000b\"},"
	    "{\"type\":\"blob\",\"base64\":\"AP8=\"},"
	    "{\"type\":\"float\",\"value\":0.5}],"
	    "\"named_args\":[{\"name\":\":x\",\"value\":{\"type\":\"null\"}}]}}"
	    ","
	    "{\"type\":\"store_sql\",\"sql_id\":7,\"sql\":\"SELECT 1\"},"
	    "{\"type\":\"get_autocommit\"},{\"type\":\"close\"}]}");
	/* What the JSON encoding's checks accept. */
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(
		    hrana_check_request(
			json_array_get(json_object_get(j, "requests"), i), 3,
			&err),
		    0);
	json_decref(j);
	free(b);
}
END_TEST

/* A batch whose one step's condition is `levels` nested "not"s. */
static uint8_t *nested_cursor(int levels, size_t *n)
{
	Hrana__BatchCond *conds = calloc((size_t)levels + 1, sizeof *conds);
	Hrana__BatchCond__IsAutocommit ac =
	    HRANA__BATCH_COND__IS_AUTOCOMMIT__INIT;
	Hrana__Stmt stmt = HRANA__STMT__INIT;
	Hrana__BatchStep step = HRANA__BATCH_STEP__INIT;
	Hrana__BatchStep *steps[] = {&step};
	Hrana__Batch batch = HRANA__BATCH__INIT;
	Hrana__Http__CursorReqBody body = HRANA__HTTP__CURSOR_REQ_BODY__INIT;
	uint8_t *b;
	int i;

	for (i = 0; i <= levels; i++) {
		hrana__batch_cond__init(&conds[i]);
		if (i == levels) {
			conds[i].cond_case =
			    HRANA__BATCH_COND__COND_IS_AUTOCOMMIT;
			conds[i].is_autocommit = &ac;
		} else {
			conds[i].cond_case = HRANA__BATCH_COND__COND_NOT;
			conds[i].not_ = &conds[i + 1];
		}
	}
	stmt.sql = "SELECT 1";
	step.stmt = &stmt;
	step.condition = &conds[0];
	batch.n_steps = 1;
	batch.steps = steps;
	body.batch = &batch;
	b = packed(&body.base, n);
	free(conds);
	return b;
}

START_TEST(test_nesting_bound)
{
	const char *err = NULL;
	size_t n;
	/* CursorReqBody > Batch > BatchStep, then levels + 1 BatchConds and
	 * the innermost one's IsAutocommit: 5 + levels messages deep, so 59
	 * levels fit in 64 and 60 do not. */
	uint8_t *ok = nested_cursor(59, &n);
	json_t *j = hrana_pb_cursor_request(ok, n, &err);

	ck_assert_msg(j != NULL, "%s", err);
	ck_assert_int_eq(
	    hrana_check_batch(json_object_get(j, "batch"), 3, &err), 0);
	json_decref(j);
	free(ok);
	ok = nested_cursor(60, &n);
	err = NULL;
	ck_assert_ptr_null(hrana_pb_cursor_request(ok, n, &err));
	ck_assert_str_eq(err, "the protobuf message nests too deeply");
	free(ok);
}
END_TEST

START_TEST(test_ws_client_msgs)
{
	Hrana__Ws__HelloMsg hello = HRANA__WS__HELLO_MSG__INIT;
	Hrana__Ws__FetchCursorReq fetch = HRANA__WS__FETCH_CURSOR_REQ__INIT;
	Hrana__Ws__RequestMsg req = HRANA__WS__REQUEST_MSG__INIT;
	Hrana__Ws__ClientMsg m = HRANA__WS__CLIENT_MSG__INIT;
	const char *err = NULL;
	uint8_t *b;
	size_t n;
	json_t *j;

	hello.jwt = "token";
	m.msg_case = HRANA__WS__CLIENT_MSG__MSG_HELLO;
	m.hello = &hello;
	b = packed(&m.base, &n);
	j = hrana_pb_client_msg(b, n, &err);
	assert_json(j, "{\"type\":\"hello\",\"jwt\":\"token\"}");
	json_decref(j);
	free(b);

	fetch.has_cursor_id = 1;
	fetch.cursor_id = 3;
	fetch.has_max_count = 1;
	fetch.max_count = 100;
	req.has_request_id = 1;
	req.request_id = 9;
	req.request_case = HRANA__WS__REQUEST_MSG__REQUEST_FETCH_CURSOR;
	req.fetch_cursor = &fetch;
	m.msg_case = HRANA__WS__CLIENT_MSG__MSG_REQUEST;
	m.request = &req;
	b = packed(&m.base, &n);
	j = hrana_pb_client_msg(b, n, &err);
	assert_json(j, "{\"type\":\"request\",\"request_id\":9,\"request\":"
		       "{\"type\":\"fetch_cursor\",\"cursor_id\":3,"
		       "\"max_count\":100}}");
	json_decref(j);
	free(b);
}
END_TEST

START_TEST(test_pipeline_response)
{
	json_t *resp = json_loads(
	    "{\"baton\":\"next\",\"base_url\":null,\"results\":["
	    "{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
	    "{\"cols\":[{\"name\":\"a\",\"decltype\":\"TEXT\"},{\"name\":null}]"
	    ","
	    "\"rows\":[[{\"type\":\"text\",\"value\":\"x\\u0000y\"},"
	    "{\"type\":\"blob\",\"base64\":\"AP8=\"}]],"
	    "\"affected_row_count\":2,\"last_insert_rowid\":\"-5\","
	    "\"rows_written\":2,\"query_duration_ms\":0.25}}},"
	    "{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":"
	    "{\"step_results\":[null,{\"cols\":[],\"rows\":[],"
	    "\"affected_row_count\":0,\"last_insert_rowid\":null}],"
	    "\"step_errors\":[{\"message\":\"m\",\"code\":\"C\"},null]}}},"
	    "{\"type\":\"error\",\"error\":{\"message\":\"bad\",\"code\":"
	    "\"SQL_PARSE_ERROR\"}}]}",
	    JSON_ALLOW_NUL, NULL);
	struct hrana_pb_buf out = {0};
	Hrana__Http__PipelineRespBody *m;
	Hrana__StmtResult *r;
	Hrana__BatchResult *br;

	ck_assert_ptr_nonnull(resp);
	ck_assert_int_eq(hrana_pb_pipeline_response(resp, &out), 0);
	m = hrana__http__pipeline_resp_body__unpack(NULL, out.len, out.data);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->baton, "next");
	ck_assert_ptr_null(m->base_url);
	ck_assert_uint_eq(m->n_results, 3);
	r = m->results[0]->ok->execute->result;
	ck_assert_uint_eq(r->n_cols, 2);
	ck_assert_str_eq(r->cols[0]->decltype, "TEXT");
	ck_assert_ptr_null(r->cols[1]->name);
	ck_assert_uint_eq(r->rows[0]->values[0]->text.len, 3);
	ck_assert_int_eq(memcmp(r->rows[0]->values[0]->text.data, "x\0y", 3),
			 0);
	ck_assert_uint_eq(r->rows[0]->values[1]->blob.len, 2);
	ck_assert_int_eq(r->rows[0]->values[1]->blob.data[1], 0xff);
	ck_assert_uint_eq(r->affected_row_count, 2);
	ck_assert(r->has_last_insert_rowid);
	ck_assert_int_eq(r->last_insert_rowid, -5);
	ck_assert_uint_eq(r->rows_written, 2);
	br = m->results[1]->ok->batch->result;
	ck_assert_uint_eq(br->n_step_results, 1);
	ck_assert_uint_eq(br->step_results[0]->key, 1);
	ck_assert(!br->step_results[0]->value->has_last_insert_rowid);
	ck_assert_uint_eq(br->n_step_errors, 1);
	ck_assert_uint_eq(br->step_errors[0]->key, 0);
	ck_assert_str_eq(br->step_errors[0]->value->code, "C");
	ck_assert_int_eq(m->results[2]->result_case,
			 HRANA__HTTP__STREAM_RESULT__RESULT_ERROR);
	ck_assert_str_eq(m->results[2]->error->code, "SQL_PARSE_ERROR");
	hrana__http__pipeline_resp_body__free_unpacked(m, NULL);
	hrana_pb_buf_free(&out);
	/* A shape hrana.c never produces is refused, not half-encoded. */
	json_object_set_new(
	    json_object_get(json_array_get(json_object_get(resp, "results"), 0),
			    "response"),
	    "type", json_string("no_such_response"));
	ck_assert_int_eq(hrana_pb_pipeline_response(resp, &out), -1);
	hrana_pb_buf_free(&out);
	json_decref(resp);
}
END_TEST

/* Read one varint length prefix; returns the length. */
static size_t delimited(const uint8_t *b, size_t *pos)
{
	size_t len = 0;
	unsigned shift = 0;

	while (b[*pos] & 0x80) {
		len |= (size_t)(b[(*pos)++] & 0x7f) << shift;
		shift += 7;
	}
	len |= (size_t)b[(*pos)++] << shift;
	return len;
}

START_TEST(test_cursor_response)
{
	json_t *head = json_pack("{s:s, s:n}", "baton", "b", "base_url");
	json_t *entries[3];
	struct hrana_pb_buf out = {0};
	Hrana__Http__CursorRespBody *h;
	Hrana__CursorEntry *e;
	size_t pos = 0, len, i;

	entries[0] = json_loads("{\"type\":\"step_begin\",\"step\":1,\"cols\":"
				"[{\"name\":\"v\"}]}",
				0, NULL);
	entries[1] = json_loads("{\"type\":\"row\",\"row\":[{\"type\":"
				"\"integer\",\"value\":\"300\"}]}",
				0, NULL);
	entries[2] = json_loads("{\"type\":\"step_end\",\"affected_row_count\":"
				"0,\"last_insert_rowid\":\"4\"}",
				0, NULL);
	ck_assert_int_eq(hrana_pb_cursor_response(head, &out), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(hrana_pb_cursor_entry(entries[i], &out), 0);
	len = delimited(out.data, &pos);
	h = hrana__http__cursor_resp_body__unpack(NULL, len, out.data + pos);
	ck_assert_str_eq(h->baton, "b");
	hrana__http__cursor_resp_body__free_unpacked(h, NULL);
	pos += len;
	for (i = 0; i < 3; i++) {
		len = delimited(out.data, &pos);
		e = hrana__cursor_entry__unpack(NULL, len, out.data + pos);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(e->entry_case, (int)i + 1 == 1   ? 1
						: (int)i + 1 == 2 ? 4
								  : 2);
		if (i == 0)
			ck_assert_uint_eq(e->step_begin->step, 1);
		if (i == 1)
			ck_assert_int_eq(e->row->values[0]->integer, 300);
		if (i == 2)
			ck_assert_int_eq(e->step_end->last_insert_rowid, 4);
		hrana__cursor_entry__free_unpacked(e, NULL);
		pos += len;
		json_decref(entries[i]);
	}
	ck_assert_uint_eq(pos, out.len);
	hrana_pb_buf_free(&out);
	json_decref(head);
}
END_TEST

/* xorshift: the same bytes on every run. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Whatever the bytes, a decoder returns a JSON object or NULL with a
 * cause; what it returns goes through the JSON checks without harm. */
static void decode_any(const uint8_t *b, size_t n)
{
	json_t *(*decoders[])(const uint8_t *, size_t, const char **) = {
	    hrana_pb_pipeline_request, hrana_pb_cursor_request,
	    hrana_pb_client_msg};
	size_t d, i;

	for (d = 0; d < 3; d++) {
		const char *err = NULL;
		json_t *j = decoders[d](b, n, &err), *r;
		if (j == NULL) {
			ck_assert_ptr_nonnull(err);
			continue;
		}
		ck_assert(json_is_object(j));
		json_array_foreach(json_object_get(j, "requests"), i, r)
		    hrana_check_request(r, 3, &err);
		if (json_object_get(j, "batch") != NULL)
			hrana_check_batch(json_object_get(j, "batch"), 3, &err);
		json_decref(j);
	}
}

START_TEST(test_fuzz_decoders)
{
	uint64_t seed = 0x9e3779b97f4a7c15u;
	uint8_t buf[256];
	size_t seeds_n[2], k;
	uint8_t *seeds[2];
	int i;

	seeds[0] = nested_cursor(5, &seeds_n[0]);
	{
		Hrana__Stmt stmt = HRANA__STMT__INIT;
		Hrana__Http__ExecuteStreamReq exec =
		    HRANA__HTTP__EXECUTE_STREAM_REQ__INIT;
		Hrana__Http__StreamRequest r =
		    HRANA__HTTP__STREAM_REQUEST__INIT;
		Hrana__Http__StreamRequest *rs[] = {&r, &r};
		Hrana__Http__PipelineReqBody body =
		    HRANA__HTTP__PIPELINE_REQ_BODY__INIT;
		stmt.sql = "SELECT 1";
		exec.stmt = &stmt;
		r.request_case = HRANA__HTTP__STREAM_REQUEST__REQUEST_EXECUTE;
		r.execute = &exec;
		body.n_requests = 2;
		body.requests = rs;
		seeds[1] = packed(&body.base, &seeds_n[1]);
	}
	for (i = 0; i < 20000; i++) {
		size_t n;
		if (i % 2 == 0) {
			n = next_random(&seed) % sizeof buf;
			for (k = 0; k < n; k++)
				buf[k] = (uint8_t)next_random(&seed);
		} else {
			const uint8_t *s = seeds[(i / 2) % 2];
			n = seeds_n[(i / 2) % 2];
			ck_assert_uint_le(n, sizeof buf);
			memcpy(buf, s, n);
			for (k = 0; k < 1 + next_random(&seed) % 4; k++)
				buf[next_random(&seed) % n] ^=
				    (uint8_t)(1u << (next_random(&seed) % 8));
			n -= next_random(&seed) % 3 == 0
				 ? next_random(&seed) % (n + 1)
				 : 0;
		}
		decode_any(buf, n);
	}
	free(seeds[0]);
	free(seeds[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hrana_pb");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_pipeline_request);
	tcase_add_test(tc, test_nesting_bound);
	tcase_add_test(tc, test_ws_client_msgs);
	tcase_add_test(tc, test_pipeline_response);
	tcase_add_test(tc, test_cursor_response);
	tcase_add_test(tc, test_fuzz_decoders);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
