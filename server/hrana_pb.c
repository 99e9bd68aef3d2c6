/* Hrana 3 protobuf requests, decoded into the JSON form hrana.c executes
 * (hrana_pb.h says why a translation).  The encoders of the answers are in
 * hrana_pb_encode.c.
 *
 * Presence follows the spec's proto3 schema: a field the spec marks
 * "optional" (sql, sql_id, want_rows, a step's condition, the baton, the
 * hello's jwt) appears in the JSON only when the message carries it; any
 * other scalar has proto3's implicit default (0, false) when absent, and
 * the JSON gets that default, as sqld's decoder gives it. */
#include "hrana_pb.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "hrana.pb-c.h"
#include "hrana_http.pb-c.h"
#include "hrana_ws.pb-c.h"

void hrana_pb_buf_free(struct hrana_pb_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------- */
/* Nesting: protobuf-c unpacks nested messages recursively with no bound,
 * so a hostile body of nested BatchCond "not"s (2 bytes a level) could
 * exhaust a worker thread's stack.  This walks the wire format first,
 * descending only into fields the descriptor says are messages, and
 * refuses more than HRANA_PB_MAX_DEPTH levels.  Anything else malformed
 * is left to protobuf-c, which reports it. */

static int read_varint(const uint8_t *b, size_t n, size_t *pos, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*pos < n && shift < 64) {
		uint8_t byte = b[(*pos)++];
		*v |= (uint64_t)(byte & 0x7f) << shift;
		if ((byte & 0x80) == 0)
			return 0;
		shift += 7;
	}
	return -1;
}

/* 0: no deeper than allowed, or malformed (protobuf-c will say so);
 * -1: too deep. */
static int depth_check(const ProtobufCMessageDescriptor *d, const uint8_t *b,
		       size_t n, int depth)
{
	size_t pos = 0;

	if (depth > HRANA_PB_MAX_DEPTH)
		return -1;
	while (pos < n) {
		const ProtobufCFieldDescriptor *f;
		uint64_t key, len;

		if (read_varint(b, n, &pos, &key) != 0)
			return 0;
		switch (key & 7) {
		case 0: /* varint */
			if (read_varint(b, n, &pos, &len) != 0)
				return 0;
			break;
		case 1: /* 64-bit */
			pos += 8;
			break;
		case 5: /* 32-bit */
			pos += 4;
			break;
		case 2: /* length-delimited */
			if (read_varint(b, n, &pos, &len) != 0 || len > n - pos)
				return 0;
			f = protobuf_c_message_descriptor_get_field(
			    d, (unsigned)(key >> 3));
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    depth_check(f->descriptor, b + pos, (size_t)len,
					depth + 1) != 0)
				return -1;
			pos += (size_t)len;
			break;
		default: /* groups and the rest: protobuf-c refuses them */
			return 0;
		}
	}
	return 0;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d,
				const uint8_t *b, size_t n, const char **err)
{
	ProtobufCMessage *m;

	if (depth_check(d, b, n, 1) != 0) {
		*err = "the protobuf message nests too deeply";
		return NULL;
	}
	m = protobuf_c_message_unpack(d, NULL, n, b);
	if (m == NULL)
		*err = "the body is not a valid protobuf message of the "
		       "expected type";
	return m;
}

/* ---------------------------------------------------------------------- */
/* Shared structures */

/* A string as JSON; NULL with *err when it is not UTF-8. */
static json_t *text_json(const char *s, size_t n, const char **err)
{
	json_t *j = json_stringn(s, n);

	if (j == NULL)
		*err = "a protobuf string is not valid UTF-8";
	return j;
}

/* Set key to the string s (if s), or fail.  Returns 0 or -1. */
static int set_text(json_t *obj, const char *key, const char *s,
		    const char **err)
{
	json_t *j;

	if (s == NULL)
		return 0;
	j = text_json(s, strlen(s), err);
	return j == NULL ? -1 : json_object_set_new(obj, key, j);
}

static json_t *value_json(const Hrana__Value *v, const char **err)
{
	char num[32];
	char *b64;
	json_t *j;

	if (v == NULL) {
		*err = "a Value is missing";
		return NULL;
	}
	switch (v->value_case) {
	case HRANA__VALUE__VALUE_NULL:
		return json_pack("{s:s}", "type", "null");
	case HRANA__VALUE__VALUE_INTEGER:
		snprintf(num, sizeof num, "%" PRId64, v->integer);
		return json_pack("{s:s, s:s}", "type", "integer", "value", num);
	case HRANA__VALUE__VALUE_FLOAT:
		if (!isfinite(v->float_)) {
			*err = "a float Value must be finite";
			return NULL;
		}
		return json_pack("{s:s, s:f}", "type", "float", "value",
				 v->float_);
	case HRANA__VALUE__VALUE_TEXT:
		j = text_json((const char *)v->text.data, v->text.len, err);
		return j == NULL ? NULL
				 : json_pack("{s:s, s:o}", "type", "text",
					     "value", j);
	case HRANA__VALUE__VALUE_BLOB:
		b64 = base64_encode(v->blob.data, v->blob.len, 0, 1);
		if (b64 == NULL) {
			*err = "out of memory";
			return NULL;
		}
		j = json_pack("{s:s, s:s}", "type", "blob", "base64", b64);
		free(b64);
		return j;
	default:
		*err = "a Value holds no value";
		return NULL;
	}
}

static json_t *stmt_json(const Hrana__Stmt *s, const char **err)
{
	json_t *j, *args, *named;
	size_t i;

	if (s == NULL) {
		*err = "a statement is missing";
		return NULL;
	}
	j = json_object();
	args = json_array();
	named = json_array();
	json_object_set_new(j, "args", args);
	json_object_set_new(j, "named_args", named);
	if (set_text(j, "sql", s->sql, err) != 0)
		goto fail;
	if (s->has_sql_id)
		json_object_set_new(j, "sql_id", json_integer(s->sql_id));
	if (s->has_want_rows)
		json_object_set_new(j, "want_rows", json_boolean(s->want_rows));
	for (i = 0; i < s->n_args; i++) {
		json_t *v = value_json(s->args[i], err);
		if (v == NULL)
			goto fail;
		json_array_append_new(args, v);
	}
	for (i = 0; i < s->n_named_args; i++) {
		const Hrana__NamedArg *a = s->named_args[i];
		json_t *v = value_json(a->value, err), *name;
		if (v == NULL)
			goto fail;
		name = text_json(a->name ? a->name : "",
				 a->name ? strlen(a->name) : 0, err);
		if (name == NULL) {
			json_decref(v);
			goto fail;
		}
		json_array_append_new(
		    named, json_pack("{s:o, s:o}", "name", name, "value", v));
	}
	return j;
fail:
	json_decref(j);
	return NULL;
}

static json_t *cond_json(const Hrana__BatchCond *c, const char **err);

static json_t *cond_list_json(const char *type,
			      const Hrana__BatchCond__CondList *l,
			      const char **err)
{
	json_t *conds = json_array();
	size_t i;

	for (i = 0; l != NULL && i < l->n_conds; i++) {
		json_t *c = cond_json(l->conds[i], err);
		if (c == NULL) {
			json_decref(conds);
			return NULL;
		}
		json_array_append_new(conds, c);
	}
	return json_pack("{s:s, s:o}", "type", type, "conds", conds);
}

/* Recursion is bounded: unpack refused deeper nesting. */
static json_t *cond_json(const Hrana__BatchCond *c, const char **err)
{
	json_t *inner;

	switch (c->cond_case) {
	case HRANA__BATCH_COND__COND_STEP_OK:
		return json_pack("{s:s, s:I}", "type", "ok", "step",
				 (json_int_t)c->step_ok);
	case HRANA__BATCH_COND__COND_STEP_ERROR:
		return json_pack("{s:s, s:I}", "type", "error", "step",
				 (json_int_t)c->step_error);
	case HRANA__BATCH_COND__COND_NOT:
		inner = cond_json(c->not_, err);
		return inner == NULL ? NULL
				     : json_pack("{s:s, s:o}", "type", "not",
						 "cond", inner);
	case HRANA__BATCH_COND__COND_AND:
		return cond_list_json("and", c->and_, err);
	case HRANA__BATCH_COND__COND_OR:
		return cond_list_json("or", c->or_, err);
	case HRANA__BATCH_COND__COND_IS_AUTOCOMMIT:
		return json_pack("{s:s}", "type", "is_autocommit");
	default:
		*err = "a batch condition holds no condition";
		return NULL;
	}
}

static json_t *batch_json(const Hrana__Batch *b, const char **err)
{
	json_t *steps = json_array();
	size_t i;

	if (b == NULL) {
		json_decref(steps);
		*err = "a batch is missing";
		return NULL;
	}
	for (i = 0; i < b->n_steps; i++) {
		const Hrana__BatchStep *s = b->steps[i];
		json_t *step, *stmt = stmt_json(s->stmt, err);
		if (stmt == NULL)
			goto fail;
		step = json_pack("{s:o}", "stmt", stmt);
		json_array_append_new(steps, step);
		if (s->condition != NULL) {
			json_t *c = cond_json(s->condition, err);
			if (c == NULL)
				goto fail;
			json_object_set_new(step, "condition", c);
		}
	}
	return json_pack("{s:o}", "steps", steps);
fail:
	json_decref(steps);
	return NULL;
}

/* {"type": type, plus the sql or sql_id of a sequence or describe}. */
static json_t *sql_request(const char *type, const char *sql, int has_id,
			   int32_t id, const char **err)
{
	json_t *j = json_pack("{s:s}", "type", type);

	if (set_text(j, "sql", sql, err) != 0) {
		json_decref(j);
		return NULL;
	}
	if (has_id)
		json_object_set_new(j, "sql_id", json_integer(id));
	return j;
}

/* {"type": type, key: value} with value a new reference or NULL (failed,
 * *err already set). */
static json_t *wrap(const char *type, const char *key, json_t *value)
{
	return value == NULL
		   ? NULL
		   : json_pack("{s:s, s:o}", "type", type, key, value);
}

static json_t *store_sql(int32_t id, const char *sql, const char **err)
{
	json_t *j = json_pack("{s:s, s:I}", "type", "store_sql", "sql_id",
			      (json_int_t)id);

	if (set_text(j, "sql", sql != NULL ? sql : "", err) != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---------------------------------------------------------------------- */
/* HTTP */

static json_t *stream_request_json(const Hrana__Http__StreamRequest *r,
				   const char **err)
{
	switch (r->request_case) {
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_CLOSE:
		return json_pack("{s:s}", "type", "close");
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_EXECUTE:
		return wrap("execute", "stmt",
			    stmt_json(r->execute->stmt, err));
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_BATCH:
		return wrap("batch", "batch", batch_json(r->batch->batch, err));
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_SEQUENCE:
		return sql_request("sequence", r->sequence->sql,
				   r->sequence->has_sql_id, r->sequence->sql_id,
				   err);
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_DESCRIBE:
		return sql_request("describe", r->describe->sql,
				   r->describe->has_sql_id, r->describe->sql_id,
				   err);
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_STORE_SQL:
		return store_sql(r->store_sql->sql_id, r->store_sql->sql, err);
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_CLOSE_SQL:
		return json_pack("{s:s, s:I}", "type", "close_sql", "sql_id",
				 (json_int_t)r->close_sql->sql_id);
	case HRANA__HTTP__STREAM_REQUEST__REQUEST_GET_AUTOCOMMIT:
		return json_pack("{s:s}", "type", "get_autocommit");
	default:
		*err = "a StreamRequest holds no request this server knows";
		return NULL;
	}
}

/* "baton": the string, or null. */
static int set_baton(json_t *j, const char *baton, const char **err)
{
	if (baton == NULL)
		return json_object_set_new(j, "baton", json_null());
	return set_text(j, "baton", baton, err);
}

json_t *hrana_pb_pipeline_request(const uint8_t *b, size_t n, const char **err)
{
	Hrana__Http__PipelineReqBody *m =
	    (Hrana__Http__PipelineReqBody *)unpack(
		&hrana__http__pipeline_req_body__descriptor, b, n, err);
	json_t *j = NULL, *requests;
	size_t i;

	if (m == NULL)
		return NULL;
	j = json_object();
	requests = json_array();
	json_object_set_new(j, "requests", requests);
	if (set_baton(j, m->baton, err) != 0)
		goto fail;
	for (i = 0; i < m->n_requests; i++) {
		json_t *r = stream_request_json(m->requests[i], err);
		if (r == NULL)
			goto fail;
		json_array_append_new(requests, r);
	}
	goto out;
fail:
	json_decref(j);
	j = NULL;
out:
	hrana__http__pipeline_req_body__free_unpacked(m, NULL);
	return j;
}

json_t *hrana_pb_cursor_request(const uint8_t *b, size_t n, const char **err)
{
	Hrana__Http__CursorReqBody *m = (Hrana__Http__CursorReqBody *)unpack(
	    &hrana__http__cursor_req_body__descriptor, b, n, err);
	json_t *j = NULL, *batch;

	if (m == NULL)
		return NULL;
	batch = batch_json(m->batch, err);
	if (batch == NULL)
		goto out;
	j = json_pack("{s:o}", "batch", batch);
	if (set_baton(j, m->baton, err) != 0) {
		json_decref(j);
		j = NULL;
	}
out:
	hrana__http__cursor_req_body__free_unpacked(m, NULL);
	return j;
}

/* ---------------------------------------------------------------------- */
/* WebSocket */

/* {"type": type, "stream_id": id}, for the requests naming a stream. */
static json_t *on_stream(const char *type, int32_t id)
{
	return json_pack("{s:s, s:I}", "type", type, "stream_id",
			 (json_int_t)id);
}

/* Add "stream_id" to a request built by another helper. */
static json_t *with_stream(json_t *j, int32_t id)
{
	if (j != NULL)
		json_object_set_new(j, "stream_id", json_integer(id));
	return j;
}

static json_t *ws_request_json(const Hrana__Ws__RequestMsg *r, const char **err)
{
	switch (r->request_case) {
	case HRANA__WS__REQUEST_MSG__REQUEST_OPEN_STREAM:
		return on_stream("open_stream", r->open_stream->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_CLOSE_STREAM:
		return on_stream("close_stream", r->close_stream->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_EXECUTE:
		return with_stream(
		    wrap("execute", "stmt", stmt_json(r->execute->stmt, err)),
		    r->execute->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_BATCH:
		return with_stream(
		    wrap("batch", "batch", batch_json(r->batch->batch, err)),
		    r->batch->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_OPEN_CURSOR: {
		json_t *j =
		    with_stream(wrap("open_cursor", "batch",
				     batch_json(r->open_cursor->batch, err)),
				r->open_cursor->stream_id);
		if (j != NULL)
			json_object_set_new(
			    j, "cursor_id",
			    json_integer(r->open_cursor->cursor_id));
		return j;
	}
	case HRANA__WS__REQUEST_MSG__REQUEST_CLOSE_CURSOR:
		return json_pack("{s:s, s:I}", "type", "close_cursor",
				 "cursor_id",
				 (json_int_t)r->close_cursor->cursor_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_FETCH_CURSOR:
		return json_pack(
		    "{s:s, s:I, s:I}", "type", "fetch_cursor", "cursor_id",
		    (json_int_t)r->fetch_cursor->cursor_id, "max_count",
		    (json_int_t)r->fetch_cursor->max_count);
	case HRANA__WS__REQUEST_MSG__REQUEST_SEQUENCE:
		return with_stream(sql_request("sequence", r->sequence->sql,
					       r->sequence->has_sql_id,
					       r->sequence->sql_id, err),
				   r->sequence->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_DESCRIBE:
		return with_stream(sql_request("describe", r->describe->sql,
					       r->describe->has_sql_id,
					       r->describe->sql_id, err),
				   r->describe->stream_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_STORE_SQL:
		return store_sql(r->store_sql->sql_id, r->store_sql->sql, err);
	case HRANA__WS__REQUEST_MSG__REQUEST_CLOSE_SQL:
		return json_pack("{s:s, s:I}", "type", "close_sql", "sql_id",
				 (json_int_t)r->close_sql->sql_id);
	case HRANA__WS__REQUEST_MSG__REQUEST_GET_AUTOCOMMIT:
		return on_stream("get_autocommit",
				 r->get_autocommit->stream_id);
	default:
		*err = "a request message holds no request this server "
		       "knows";
		return NULL;
	}
}

json_t *hrana_pb_client_msg(const uint8_t *b, size_t n, const char **err)
{
	Hrana__Ws__ClientMsg *m = (Hrana__Ws__ClientMsg *)unpack(
	    &hrana__ws__client_msg__descriptor, b, n, err);
	json_t *j = NULL, *req;

	if (m == NULL)
		return NULL;
	switch (m->msg_case) {
	case HRANA__WS__CLIENT_MSG__MSG_HELLO:
		j = json_pack("{s:s}", "type", "hello");
		if (set_text(j, "jwt", m->hello->jwt, err) != 0) {
			json_decref(j);
			j = NULL;
		}
		break;
	case HRANA__WS__CLIENT_MSG__MSG_REQUEST:
		req = ws_request_json(m->request, err);
		if (req != NULL)
			j = json_pack(
			    "{s:s, s:I, s:o}", "type", "request", "request_id",
			    (json_int_t)m->request->request_id, "request", req);
		break;
	default:
		*err = "a client message holds neither a hello nor a request";
		break;
	}
	hrana__ws__client_msg__free_unpacked(m, NULL);
	return j;
}
