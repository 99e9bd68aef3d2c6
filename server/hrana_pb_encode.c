/* Hrana 3 protobuf answers, encoded from the JSON form hrana.c produces
 * (hrana_pb.h says why a translation; hrana_pb.c decodes the requests).
 *
 * protobuf-c packs a tree of C structs, so each answer is first built as
 * one: every struct and array comes from an arena that is freed as a whole
 * once the answer is packed.  Strings point into the JSON, which outlives
 * the packing.  Where proto3 leaves a zero scalar out, so does this. */
#include "hrana_pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "hrana.pb-c.h"
#include "hrana_http.pb-c.h"
#include "hrana_ws.pb-c.h"

/* ---------------------------------------------------------------------- */
/* The arena and the output buffer */

struct arena {
	void **blocks;
	size_t n, cap;
	int failed; /* an allocation failed: the answer cannot be built */
};

static void *arena_alloc(struct arena *a, size_t size)
{
	void *p;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		void **b = realloc(a->blocks, cap * sizeof *b);
		if (b == NULL) {
			a->failed = 1;
			return NULL;
		}
		a->blocks = b;
		a->cap = cap;
	}
	p = calloc(1, size ? size : 1);
	if (p == NULL) {
		a->failed = 1;
		return NULL;
	}
	a->blocks[a->n++] = p;
	return p;
}

static void arena_free(struct arena *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
}

/* A new message of type T, initialised by its generated init function. */
#define NEW(a, T, init)                                                        \
	({                                                                     \
		T *m_ = arena_alloc((a), sizeof(T));                           \
		if (m_ != NULL)                                                \
			init(m_);                                              \
		m_;                                                            \
	})

/* An array of n pointers (NULL when n is 0 or memory ran out). */
static void *new_array(struct arena *a, size_t n)
{
	return n == 0 ? NULL : arena_alloc(a, n * sizeof(void *));
}

struct sink {
	ProtobufCBuffer base;
	struct hrana_pb_buf *out;
	int failed;
};

static int buf_reserve(struct hrana_pb_buf *b, size_t more)
{
	size_t cap;
	uint8_t *d;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	d = realloc(b->data, cap);
	if (d == NULL)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

static void sink_append(ProtobufCBuffer *buffer, size_t len,
			const uint8_t *data)
{
	struct sink *s = (struct sink *)buffer;

	if (s->failed || buf_reserve(s->out, len) != 0) {
		s->failed = 1;
		return;
	}
	memcpy(s->out->data + s->out->len, data, len);
	s->out->len += len;
}

/* Pack m after out's contents, preceded by its length as a varint when
 * delimited.  Returns 0 or -1. */
static int pack(const ProtobufCMessage *m, int delimited,
		struct hrana_pb_buf *out)
{
	struct sink s = {{.append = sink_append}, out, 0};
	size_t len = protobuf_c_message_get_packed_size(m);

	if (delimited) {
		uint8_t v[10];
		size_t n = 0, x = len;
		do {
			v[n++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
			x >>= 7;
		} while (x != 0);
		sink_append(&s.base, n, v);
	}
	protobuf_c_message_pack_to_buffer(m, &s.base);
	return s.failed ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Shared structures */

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int64_t integer(json_t *obj, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(obj, key));
}

static Hrana__Error *error_pb(struct arena *a, json_t *j)
{
	Hrana__Error *e = NEW(a, Hrana__Error, hrana__error__init);

	if (e == NULL || !json_is_object(j))
		return NULL;
	e->message = (char *)(str(j, "message") ? str(j, "message") : "");
	e->code = (char *)str(j, "code");
	return e;
}

static Hrana__Value *value_pb(struct arena *a, json_t *j)
{
	Hrana__Value *v = NEW(a, Hrana__Value, hrana__value__init);
	const char *type = str(j, "type"), *text;
	size_t n;

	if (v == NULL || type == NULL)
		return NULL;
	if (strcmp(type, "null") == 0) {
		v->value_case = HRANA__VALUE__VALUE_NULL;
		v->null = NEW(a, Hrana__Value__Null, hrana__value__null__init);
		return v->null != NULL ? v : NULL;
	}
	if (strcmp(type, "integer") == 0) {
		char *end;
		text = str(j, "value");
		if (text == NULL)
			return NULL;
		errno = 0;
		v->integer = strtoll(text, &end, 10);
		if (errno != 0 || *end != '\0')
			return NULL;
		v->value_case = HRANA__VALUE__VALUE_INTEGER;
		return v;
	}
	if (strcmp(type, "float") == 0) {
		v->value_case = HRANA__VALUE__VALUE_FLOAT;
		v->float_ = json_number_value(json_object_get(j, "value"));
		return v;
	}
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(j, "value");
		if (!json_is_string(t))
			return NULL;
		v->value_case = HRANA__VALUE__VALUE_TEXT;
		v->text.data = (uint8_t *)json_string_value(t);
		v->text.len = json_string_length(t);
		return v;
	}
	if (strcmp(type, "blob") == 0) {
		uint8_t *bytes, *copy;
		text = str(j, "base64");
		if (text == NULL)
			return NULL;
		bytes = base64_decode(text, strlen(text), &n);
		if (bytes == NULL)
			return NULL;
		copy = arena_alloc(a, n);
		if (copy != NULL)
			memcpy(copy, bytes, n);
		free(bytes);
		v->value_case = HRANA__VALUE__VALUE_BLOB;
		v->blob.data = copy;
		v->blob.len = n;
		return copy != NULL ? v : NULL;
	}
	return NULL;
}

/* The values of a JSON array into (n, values); 0 or -1. */
static int values_pb(struct arena *a, json_t *arr, size_t *n,
		     Hrana__Value ***values)
{
	size_t i;

	*n = json_array_size(arr);
	*values = new_array(a, *n);
	if (*n != 0 && *values == NULL)
		return -1;
	for (i = 0; i < *n; i++) {
		(*values)[i] = value_pb(a, json_array_get(arr, i));
		if ((*values)[i] == NULL)
			return -1;
	}
	return 0;
}

static int cols_pb(struct arena *a, json_t *arr, size_t *n, Hrana__Col ***cols)
{
	size_t i;

	*n = json_array_size(arr);
	*cols = new_array(a, *n);
	if (*n != 0 && *cols == NULL)
		return -1;
	for (i = 0; i < *n; i++) {
		json_t *c = json_array_get(arr, i);
		Hrana__Col *col = NEW(a, Hrana__Col, hrana__col__init);
		if (col == NULL)
			return -1;
		col->name = (char *)str(c, "name");
		col->decltype = (char *)str(c, "decltype");
		(*cols)[i] = col;
	}
	return 0;
}

/* "last_insert_rowid": a decimal string or null. */
static void rowid_pb(json_t *j, protobuf_c_boolean *has, int64_t *rowid)
{
	const char *text = str(j, "last_insert_rowid");

	if (text != NULL) {
		*rowid = strtoll(text, NULL, 10);
		*has = 1;
	}
}

static Hrana__StmtResult *stmt_result_pb(struct arena *a, json_t *j)
{
	Hrana__StmtResult *r =
	    NEW(a, Hrana__StmtResult, hrana__stmt_result__init);
	json_t *rows = json_object_get(j, "rows");
	size_t i;

	if (r == NULL || !json_is_object(j) ||
	    cols_pb(a, json_object_get(j, "cols"), &r->n_cols, &r->cols) != 0)
		return NULL;
	r->n_rows = json_array_size(rows);
	r->rows = new_array(a, r->n_rows);
	if (r->n_rows != 0 && r->rows == NULL)
		return NULL;
	for (i = 0; i < r->n_rows; i++) {
		Hrana__Row *row = NEW(a, Hrana__Row, hrana__row__init);
		if (row == NULL || values_pb(a, json_array_get(rows, i),
					     &row->n_values, &row->values) != 0)
			return NULL;
		r->rows[i] = row;
	}
	r->affected_row_count = (uint64_t)integer(j, "affected_row_count");
	r->has_affected_row_count = r->affected_row_count != 0;
	rowid_pb(j, &r->has_last_insert_rowid, &r->last_insert_rowid);
	r->rows_read = (uint64_t)integer(j, "rows_read");
	r->has_rows_read = r->rows_read != 0;
	r->rows_written = (uint64_t)integer(j, "rows_written");
	r->has_rows_written = r->rows_written != 0;
	r->query_duration_ms =
	    json_number_value(json_object_get(j, "query_duration_ms"));
	r->has_query_duration_ms = r->query_duration_ms != 0;
	return r;
}

/* JSON's arrays with null holes become protobuf maps from step index. */
static Hrana__BatchResult *batch_result_pb(struct arena *a, json_t *j)
{
	Hrana__BatchResult *r =
	    NEW(a, Hrana__BatchResult, hrana__batch_result__init);
	json_t *results = json_object_get(j, "step_results");
	json_t *errors = json_object_get(j, "step_errors");
	size_t i;

	if (r == NULL)
		return NULL;
	r->step_results = new_array(a, json_array_size(results));
	r->step_errors = new_array(a, json_array_size(errors));
	if (a->failed)
		return NULL;
	for (i = 0; i < json_array_size(results); i++) {
		json_t *s = json_array_get(results, i);
		Hrana__BatchResult__StepResultsEntry *e;
		if (json_is_null(s))
			continue;
		e = NEW(a, Hrana__BatchResult__StepResultsEntry,
			hrana__batch_result__step_results_entry__init);
		if (e == NULL)
			return NULL;
		e->has_key = 1;
		e->key = (uint32_t)i;
		e->value = stmt_result_pb(a, s);
		if (e->value == NULL)
			return NULL;
		r->step_results[r->n_step_results++] = e;
	}
	for (i = 0; i < json_array_size(errors); i++) {
		json_t *s = json_array_get(errors, i);
		Hrana__BatchResult__StepErrorsEntry *e;
		if (json_is_null(s))
			continue;
		e = NEW(a, Hrana__BatchResult__StepErrorsEntry,
			hrana__batch_result__step_errors_entry__init);
		if (e == NULL)
			return NULL;
		e->has_key = 1;
		e->key = (uint32_t)i;
		e->value = error_pb(a, s);
		if (e->value == NULL)
			return NULL;
		r->step_errors[r->n_step_errors++] = e;
	}
	return r;
}

static Hrana__DescribeResult *describe_pb(struct arena *a, json_t *j)
{
	Hrana__DescribeResult *r =
	    NEW(a, Hrana__DescribeResult, hrana__describe_result__init);
	json_t *params = json_object_get(j, "params");
	json_t *cols = json_object_get(j, "cols");
	size_t i;

	if (r == NULL)
		return NULL;
	r->n_params = json_array_size(params);
	r->params = new_array(a, r->n_params);
	r->n_cols = json_array_size(cols);
	r->cols = new_array(a, r->n_cols);
	if (a->failed)
		return NULL;
	for (i = 0; i < r->n_params; i++) {
		r->params[i] =
		    NEW(a, Hrana__DescribeParam, hrana__describe_param__init);
		if (r->params[i] == NULL)
			return NULL;
		r->params[i]->name =
		    (char *)str(json_array_get(params, i), "name");
	}
	for (i = 0; i < r->n_cols; i++) {
		json_t *c = json_array_get(cols, i);
		r->cols[i] =
		    NEW(a, Hrana__DescribeCol, hrana__describe_col__init);
		if (r->cols[i] == NULL)
			return NULL;
		r->cols[i]->name =
		    (char *)(str(c, "name") ? str(c, "name") : "");
		r->cols[i]->decltype = (char *)str(c, "decltype");
	}
	r->is_explain = json_is_true(json_object_get(j, "is_explain"));
	r->has_is_explain = r->is_explain;
	r->is_readonly = json_is_true(json_object_get(j, "is_readonly"));
	r->has_is_readonly = r->is_readonly;
	return r;
}

static Hrana__CursorEntry *cursor_entry_pb(struct arena *a, json_t *j)
{
	Hrana__CursorEntry *e =
	    NEW(a, Hrana__CursorEntry, hrana__cursor_entry__init);
	const char *type = str(j, "type");

	if (e == NULL || type == NULL)
		return NULL;
	if (strcmp(type, "step_begin") == 0) {
		Hrana__StepBeginEntry *b = NEW(a, Hrana__StepBeginEntry,
					       hrana__step_begin_entry__init);
		if (b == NULL || cols_pb(a, json_object_get(j, "cols"),
					 &b->n_cols, &b->cols) != 0)
			return NULL;
		b->step = (uint32_t)integer(j, "step");
		b->has_step = b->step != 0;
		e->entry_case = HRANA__CURSOR_ENTRY__ENTRY_STEP_BEGIN;
		e->step_begin = b;
	} else if (strcmp(type, "step_end") == 0) {
		Hrana__StepEndEntry *s =
		    NEW(a, Hrana__StepEndEntry, hrana__step_end_entry__init);
		if (s == NULL)
			return NULL;
		s->affected_row_count =
		    (uint64_t)integer(j, "affected_row_count");
		s->has_affected_row_count = s->affected_row_count != 0;
		rowid_pb(j, &s->has_last_insert_rowid, &s->last_insert_rowid);
		e->entry_case = HRANA__CURSOR_ENTRY__ENTRY_STEP_END;
		e->step_end = s;
	} else if (strcmp(type, "step_error") == 0) {
		Hrana__StepErrorEntry *s = NEW(a, Hrana__StepErrorEntry,
					       hrana__step_error_entry__init);
		if (s == NULL)
			return NULL;
		s->step = (uint32_t)integer(j, "step");
		s->has_step = s->step != 0;
		s->error = error_pb(a, json_object_get(j, "error"));
		if (s->error == NULL)
			return NULL;
		e->entry_case = HRANA__CURSOR_ENTRY__ENTRY_STEP_ERROR;
		e->step_error = s;
	} else if (strcmp(type, "row") == 0) {
		Hrana__Row *row = NEW(a, Hrana__Row, hrana__row__init);
		if (row == NULL || values_pb(a, json_object_get(j, "row"),
					     &row->n_values, &row->values) != 0)
			return NULL;
		e->entry_case = HRANA__CURSOR_ENTRY__ENTRY_ROW;
		e->row = row;
	} else if (strcmp(type, "error") == 0) {
		e->error = error_pb(a, json_object_get(j, "error"));
		if (e->error == NULL)
			return NULL;
		e->entry_case = HRANA__CURSOR_ENTRY__ENTRY_ERROR;
	} else {
		return NULL;
	}
	return e;
}

/* ---------------------------------------------------------------------- */
/* HTTP */

/* The branches of the two response encoders (HTTP's StreamResponse, the
 * WebSocket's ResponseOkMsg): the same responses in parallel types.  Each
 * expects r, a, type, j and result in scope. */

/* A response with no fields. */
#define EMPTY(name, T, init, CASE)                                             \
	if (strcmp(type, #name) == 0) {                                        \
		r->response_case = CASE;                                       \
		r->name = NEW(a, T, init);                                     \
		return r->name != NULL ? r : NULL;                             \
	}

/* A response carrying one result, built by build(a, result). */
#define WITH_RESULT(name, T, init, CASE, build)                                \
	if (strcmp(type, #name) == 0) {                                        \
		r->response_case = CASE;                                       \
		r->name = NEW(a, T, init);                                     \
		if (r->name == NULL)                                           \
			return NULL;                                           \
		r->name->result = build(a, result);                            \
		return r->name->result != NULL ? r : NULL;                     \
	}

/* get_autocommit's answer. */
#define AUTOCOMMIT(T, init, CASE)                                              \
	if (strcmp(type, "get_autocommit") == 0) {                             \
		r->response_case = CASE;                                       \
		r->get_autocommit = NEW(a, T, init);                           \
		if (r->get_autocommit == NULL)                                 \
			return NULL;                                           \
		r->get_autocommit->is_autocommit =                             \
		    json_is_true(json_object_get(j, "is_autocommit"));         \
		r->get_autocommit->has_is_autocommit =                         \
		    r->get_autocommit->is_autocommit;                          \
		return r;                                                      \
	}

/* The StreamResponse of one {"type": ..., ...} response. */
static Hrana__Http__StreamResponse *stream_response_pb(struct arena *a,
						       json_t *j)
{
	Hrana__Http__StreamResponse *r = NEW(
	    a, Hrana__Http__StreamResponse, hrana__http__stream_response__init);
	const char *type = str(j, "type");
	json_t *result = json_object_get(j, "result");

	if (r == NULL || type == NULL)
		return NULL;
	EMPTY(close, Hrana__Http__CloseStreamResp,
	      hrana__http__close_stream_resp__init,
	      HRANA__HTTP__STREAM_RESPONSE__RESPONSE_CLOSE)
	EMPTY(sequence, Hrana__Http__SequenceStreamResp,
	      hrana__http__sequence_stream_resp__init,
	      HRANA__HTTP__STREAM_RESPONSE__RESPONSE_SEQUENCE)
	EMPTY(store_sql, Hrana__Http__StoreSqlStreamResp,
	      hrana__http__store_sql_stream_resp__init,
	      HRANA__HTTP__STREAM_RESPONSE__RESPONSE_STORE_SQL)
	EMPTY(close_sql, Hrana__Http__CloseSqlStreamResp,
	      hrana__http__close_sql_stream_resp__init,
	      HRANA__HTTP__STREAM_RESPONSE__RESPONSE_CLOSE_SQL)
	WITH_RESULT(execute, Hrana__Http__ExecuteStreamResp,
		    hrana__http__execute_stream_resp__init,
		    HRANA__HTTP__STREAM_RESPONSE__RESPONSE_EXECUTE,
		    stmt_result_pb)
	WITH_RESULT(batch, Hrana__Http__BatchStreamResp,
		    hrana__http__batch_stream_resp__init,
		    HRANA__HTTP__STREAM_RESPONSE__RESPONSE_BATCH,
		    batch_result_pb)
	WITH_RESULT(describe, Hrana__Http__DescribeStreamResp,
		    hrana__http__describe_stream_resp__init,
		    HRANA__HTTP__STREAM_RESPONSE__RESPONSE_DESCRIBE,
		    describe_pb)
	AUTOCOMMIT(Hrana__Http__GetAutocommitStreamResp,
		   hrana__http__get_autocommit_stream_resp__init,
		   HRANA__HTTP__STREAM_RESPONSE__RESPONSE_GET_AUTOCOMMIT)
	return NULL;
}

int hrana_pb_pipeline_response(json_t *resp, struct hrana_pb_buf *out)
{
	struct arena a = {0};
	Hrana__Http__PipelineRespBody body =
	    HRANA__HTTP__PIPELINE_RESP_BODY__INIT;
	json_t *results = json_object_get(resp, "results");
	int rc = -1;
	size_t i;

	body.baton = (char *)str(resp, "baton");
	body.base_url = (char *)str(resp, "base_url");
	body.n_results = json_array_size(results);
	body.results = new_array(&a, body.n_results);
	if (a.failed)
		goto out;
	for (i = 0; i < body.n_results; i++) {
		json_t *r = json_array_get(results, i);
		const char *type = str(r, "type");
		Hrana__Http__StreamResult *sr =
		    NEW(&a, Hrana__Http__StreamResult,
			hrana__http__stream_result__init);
		if (sr == NULL || type == NULL)
			goto out;
		if (strcmp(type, "ok") == 0) {
			sr->result_case = HRANA__HTTP__STREAM_RESULT__RESULT_OK;
			sr->ok = stream_response_pb(
			    &a, json_object_get(r, "response"));
			if (sr->ok == NULL)
				goto out;
		} else {
			sr->result_case =
			    HRANA__HTTP__STREAM_RESULT__RESULT_ERROR;
			sr->error = error_pb(&a, json_object_get(r, "error"));
			if (sr->error == NULL)
				goto out;
		}
		body.results[i] = sr;
	}
	rc = pack(&body.base, 0, out);
out:
	arena_free(&a);
	return rc;
}

int hrana_pb_cursor_response(json_t *head, struct hrana_pb_buf *out)
{
	Hrana__Http__CursorRespBody body = HRANA__HTTP__CURSOR_RESP_BODY__INIT;

	body.baton = (char *)str(head, "baton");
	body.base_url = (char *)str(head, "base_url");
	return pack(&body.base, 1, out);
}

int hrana_pb_cursor_entry(json_t *entry, struct hrana_pb_buf *out)
{
	struct arena a = {0};
	Hrana__CursorEntry *e = cursor_entry_pb(&a, entry);
	int rc = e != NULL ? pack(&e->base, 1, out) : -1;

	arena_free(&a);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* WebSocket */

static Hrana__Ws__ResponseOkMsg *ws_response_pb(struct arena *a, json_t *j)
{
	Hrana__Ws__ResponseOkMsg *r =
	    NEW(a, Hrana__Ws__ResponseOkMsg, hrana__ws__response_ok_msg__init);
	const char *type = str(j, "type");
	json_t *result = json_object_get(j, "result");

	if (r == NULL || type == NULL)
		return NULL;
	EMPTY(open_stream, Hrana__Ws__OpenStreamResp,
	      hrana__ws__open_stream_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_OPEN_STREAM)
	EMPTY(close_stream, Hrana__Ws__CloseStreamResp,
	      hrana__ws__close_stream_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_CLOSE_STREAM)
	EMPTY(open_cursor, Hrana__Ws__OpenCursorResp,
	      hrana__ws__open_cursor_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_OPEN_CURSOR)
	EMPTY(close_cursor, Hrana__Ws__CloseCursorResp,
	      hrana__ws__close_cursor_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_CLOSE_CURSOR)
	EMPTY(sequence, Hrana__Ws__SequenceResp, hrana__ws__sequence_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_SEQUENCE)
	EMPTY(store_sql, Hrana__Ws__StoreSqlResp,
	      hrana__ws__store_sql_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_STORE_SQL)
	EMPTY(close_sql, Hrana__Ws__CloseSqlResp,
	      hrana__ws__close_sql_resp__init,
	      HRANA__WS__RESPONSE_OK_MSG__RESPONSE_CLOSE_SQL)
	WITH_RESULT(
	    execute, Hrana__Ws__ExecuteResp, hrana__ws__execute_resp__init,
	    HRANA__WS__RESPONSE_OK_MSG__RESPONSE_EXECUTE, stmt_result_pb)
	WITH_RESULT(batch, Hrana__Ws__BatchResp, hrana__ws__batch_resp__init,
		    HRANA__WS__RESPONSE_OK_MSG__RESPONSE_BATCH, batch_result_pb)
	WITH_RESULT(describe, Hrana__Ws__DescribeResp,
		    hrana__ws__describe_resp__init,
		    HRANA__WS__RESPONSE_OK_MSG__RESPONSE_DESCRIBE, describe_pb)
	AUTOCOMMIT(Hrana__Ws__GetAutocommitResp,
		   hrana__ws__get_autocommit_resp__init,
		   HRANA__WS__RESPONSE_OK_MSG__RESPONSE_GET_AUTOCOMMIT)
	if (strcmp(type, "fetch_cursor") == 0) {
		json_t *entries = json_object_get(j, "entries");
		Hrana__Ws__FetchCursorResp *f =
		    NEW(a, Hrana__Ws__FetchCursorResp,
			hrana__ws__fetch_cursor_resp__init);
		size_t i;
		if (f == NULL)
			return NULL;
		f->n_entries = json_array_size(entries);
		f->entries = new_array(a, f->n_entries);
		if (a->failed)
			return NULL;
		for (i = 0; i < f->n_entries; i++) {
			f->entries[i] =
			    cursor_entry_pb(a, json_array_get(entries, i));
			if (f->entries[i] == NULL)
				return NULL;
		}
		f->done = json_is_true(json_object_get(j, "done"));
		f->has_done = f->done;
		r->response_case =
		    HRANA__WS__RESPONSE_OK_MSG__RESPONSE_FETCH_CURSOR;
		r->fetch_cursor = f;
		return r;
	}
	return NULL;
}

/* A ServerMsg: hello_ok, hello_error, response_ok or response_error. */
static Hrana__Ws__ServerMsg *server_msg_pb(struct arena *a, json_t *j)
{
	Hrana__Ws__ServerMsg *m =
	    NEW(a, Hrana__Ws__ServerMsg, hrana__ws__server_msg__init);
	const char *type = str(j, "type");
	int32_t rid = (int32_t)integer(j, "request_id");

	if (m == NULL || type == NULL)
		return NULL;
	if (strcmp(type, "hello_ok") == 0) {
		m->msg_case = HRANA__WS__SERVER_MSG__MSG_HELLO_OK;
		m->hello_ok = NEW(a, Hrana__Ws__HelloOkMsg,
				  hrana__ws__hello_ok_msg__init);
		return m->hello_ok != NULL ? m : NULL;
	}
	if (strcmp(type, "hello_error") == 0) {
		m->msg_case = HRANA__WS__SERVER_MSG__MSG_HELLO_ERROR;
		m->hello_error = NEW(a, Hrana__Ws__HelloErrorMsg,
				     hrana__ws__hello_error_msg__init);
		if (m->hello_error == NULL)
			return NULL;
		m->hello_error->error =
		    error_pb(a, json_object_get(j, "error"));
		return m->hello_error->error != NULL ? m : NULL;
	}
	if (strcmp(type, "response_ok") == 0) {
		m->msg_case = HRANA__WS__SERVER_MSG__MSG_RESPONSE_OK;
		m->response_ok =
		    ws_response_pb(a, json_object_get(j, "response"));
		if (m->response_ok == NULL)
			return NULL;
		m->response_ok->request_id = rid;
		m->response_ok->has_request_id = rid != 0;
		return m;
	}
	if (strcmp(type, "response_error") == 0) {
		m->msg_case = HRANA__WS__SERVER_MSG__MSG_RESPONSE_ERROR;
		m->response_error = NEW(a, Hrana__Ws__ResponseErrorMsg,
					hrana__ws__response_error_msg__init);
		if (m->response_error == NULL)
			return NULL;
		m->response_error->request_id = rid;
		m->response_error->has_request_id = rid != 0;
		m->response_error->error =
		    error_pb(a, json_object_get(j, "error"));
		return m->response_error->error != NULL ? m : NULL;
	}
	return NULL;
}

int hrana_pb_server_msg(json_t *msg, struct hrana_pb_buf *out)
{
	struct arena a = {0};
	Hrana__Ws__ServerMsg *m = server_msg_pb(&a, msg);
	int rc = m != NULL ? pack(&m->base, 0, out) : -1;

	arena_free(&a);
	return rc;
}

#undef EMPTY
#undef WITH_RESULT
#undef AUTOCOMMIT
