#include "sync/base64.h"
#include "hrana.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

void hrana_conn_init(struct hrana_conn *c, sqlite3 *db, int version,
		     int read_only)
{
	c->db = db;
	c->version = version;
	c->read_only = read_only;
	c->sqls = json_object();
	c->tx_read_only = 0;
}

void hrana_conn_reset(struct hrana_conn *c)
{
	json_decref(c->sqls);
	c->sqls = NULL;
}

/* ---------------------------------------------------------------------- */
/* errors */

static const char *sqlite_code_name(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_ERROR:
		return "SQLITE_ERROR";
	case SQLITE_INTERNAL:
		return "SQLITE_INTERNAL";
	case SQLITE_PERM:
		return "SQLITE_PERM";
	case SQLITE_ABORT:
		return "SQLITE_ABORT";
	case SQLITE_BUSY:
		return "SQLITE_BUSY";
	case SQLITE_LOCKED:
		return "SQLITE_LOCKED";
	case SQLITE_NOMEM:
		return "SQLITE_NOMEM";
	case SQLITE_READONLY:
		return "SQLITE_READONLY";
	case SQLITE_INTERRUPT:
		return "SQLITE_INTERRUPT";
	case SQLITE_IOERR:
		return "SQLITE_IOERR";
	case SQLITE_CORRUPT:
		return "SQLITE_CORRUPT";
	case SQLITE_NOTFOUND:
		return "SQLITE_NOTFOUND";
	case SQLITE_FULL:
		return "SQLITE_FULL";
	case SQLITE_CANTOPEN:
		return "SQLITE_CANTOPEN";
	case SQLITE_PROTOCOL:
		return "SQLITE_PROTOCOL";
	case SQLITE_EMPTY:
		return "SQLITE_EMPTY";
	case SQLITE_SCHEMA:
		return "SQLITE_SCHEMA";
	case SQLITE_TOOBIG:
		return "SQLITE_TOOBIG";
	case SQLITE_CONSTRAINT:
		return "SQLITE_CONSTRAINT";
	case SQLITE_MISMATCH:
		return "SQLITE_MISMATCH";
	case SQLITE_MISUSE:
		return "SQLITE_MISUSE";
	case SQLITE_NOLFS:
		return "SQLITE_NOLFS";
	case SQLITE_AUTH:
		return "SQLITE_AUTH";
	case SQLITE_FORMAT:
		return "SQLITE_FORMAT";
	case SQLITE_RANGE:
		return "SQLITE_RANGE";
	case SQLITE_NOTADB:
		return "SQLITE_NOTADB";
	default:
		return "SQLITE_UNKNOWN";
	}
}

static json_t *make_error(const char *message, const char *code)
{
	return json_pack("{s:s, s:s}", "message", message, "code", code);
}

/* An error from SQLite on this connection; like sqld, syntax errors get
 * SQL_PARSE_ERROR and the rest the primary result code's name. */
static json_t *sqlite_error(sqlite3 *db, int rc)
{
	const char *msg = sqlite3_errmsg(db);

	if ((rc & 0xff) == SQLITE_AUTH) {
		return make_error(
		    "not authorized: replite serve refuses ATTACH, DETACH, "
		    "VACUUM INTO and changes of journal_mode or "
		    "locking_mode (the primary's storage depends on them)",
		    "SQLITE_AUTH");
	}
	if ((rc & 0xff) == SQLITE_ERROR &&
	    (strstr(msg, "syntax error") || strstr(msg, "incomplete input") ||
	     strstr(msg, "unrecognized token")))
		return make_error(msg, "SQL_PARSE_ERROR");
	return make_error(msg, sqlite_code_name(rc));
}

/* ---------------------------------------------------------------------- */
/* values */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A text value.  SQLite stores whatever bytes it is given as TEXT; JSON
 * strings must be UTF-8, so invalid sequences become U+FFFD (as a lossy
 * UTF-8 decoder does) instead of dropping the value from its row. */
static json_t *text_value(const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0, o = 0, k;
	json_t *v;
	char *fixed;

	v = json_pack("{s:s, s:s%}", "type", "text", "value", text, len);
	if (v != NULL)
		return v;
	fixed = malloc(len * 3 + 1);
	if (fixed == NULL)
		return NULL;
	while (i < len) {
		k = utf8_sequence(p + i, len - i);
		if (k == 0) {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, p + i, k);
			o += k;
			i += k;
		}
	}
	v = json_pack("{s:s, s:s%}", "type", "text", "value", fixed, o);
	free(fixed);
	return v;
}

json_t *hrana_value_from_column(sqlite3_stmt *stmt, int col)
{
	char buf[32];
	char *b64;
	json_t *v;

	switch (sqlite3_column_type(stmt, col)) {
	case SQLITE_INTEGER:
		snprintf(buf, sizeof buf, "%lld",
			 (long long)sqlite3_column_int64(stmt, col));
		return json_pack("{s:s, s:s}", "type", "integer", "value", buf);
	case SQLITE_FLOAT: {
		double d = sqlite3_column_double(stmt, col);
		if (!isfinite(d)) /* JSON has no infinities */
			return json_pack("{s:s}", "type", "null");
		return json_pack("{s:s, s:f}", "type", "float", "value", d);
	}
	case SQLITE_TEXT:
		return text_value((const char *)sqlite3_column_text(stmt, col),
				  (size_t)sqlite3_column_bytes(stmt, col));
	case SQLITE_BLOB:
		b64 = base64_encode(sqlite3_column_blob(stmt, col),
				    (size_t)sqlite3_column_bytes(stmt, col), 0,
				    0);
		v = json_pack("{s:s, s:s}", "type", "blob", "base64",
			      b64 ? b64 : "");
		free(b64);
		return v;
	default:
		return json_pack("{s:s}", "type", "null");
	}
}

static int parse_i64(const char *s, sqlite3_int64 *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int hrana_value_bind(sqlite3_stmt *stmt, int idx, json_t *value,
		     const char **err)
{
	const char *type = json_string_value(json_object_get(value, "type"));
	json_t *v = json_object_get(value, "value");
	sqlite3_int64 i;

	if (!json_is_object(value) || type == NULL) {
		*err = "a value must be an object with a \"type\"";
		return -1;
	}
	if (strcmp(type, "null") == 0)
		return sqlite3_bind_null(stmt, idx) == SQLITE_OK ? 0 : -1;
	if (strcmp(type, "integer") == 0) {
		if (json_is_string(v) &&
		    parse_i64(json_string_value(v), &i) == 0)
			return sqlite3_bind_int64(stmt, idx, i) == SQLITE_OK
				   ? 0
				   : -1;
		if (json_is_integer(v))
			return sqlite3_bind_int64(stmt, idx,
						  json_integer_value(v)) ==
				       SQLITE_OK
				   ? 0
				   : -1;
		*err = "an integer value must be a decimal string in the "
		       "64-bit range";
		return -1;
	}
	if (strcmp(type, "float") == 0) {
		if (!json_is_number(v)) {
			*err = "a float value must be a JSON number";
			return -1;
		}
		return sqlite3_bind_double(stmt, idx, json_number_value(v)) ==
			       SQLITE_OK
			   ? 0
			   : -1;
	}
	if (strcmp(type, "text") == 0) {
		if (!json_is_string(v)) {
			*err = "a text value must be a JSON string";
			return -1;
		}
		return sqlite3_bind_text(stmt, idx, json_string_value(v),
					 (int)json_string_length(v),
					 SQLITE_TRANSIENT) == SQLITE_OK
			   ? 0
			   : -1;
	}
	if (strcmp(type, "blob") == 0) {
		json_t *b = json_object_get(value, "base64");
		size_t len = 0;
		uint8_t *raw;
		int rc;
		if (!json_is_string(b)) {
			*err = "a blob value must have a \"base64\" string";
			return -1;
		}
		raw = base64_decode(json_string_value(b), json_string_length(b),
				    &len);
		if (raw == NULL) {
			*err = "a blob value has invalid base64";
			return -1;
		}
		rc = sqlite3_bind_blob64(stmt, idx, raw, len, SQLITE_TRANSIENT);
		free(raw);
		return rc == SQLITE_OK ? 0 : -1;
	}
	*err = "unknown value type";
	return -1;
}

/* ---------------------------------------------------------------------- */
/* statements */

static const char *stmt_sql(struct hrana_conn *c, json_t *obj, json_t **error)
{
	json_t *sql = json_object_get(obj, "sql");
	json_t *sql_id = json_object_get(obj, "sql_id");

	if (json_is_string(sql))
		return json_string_value(sql);
	if (json_is_integer(sql_id)) {
		char key[32];
		json_t *s;
		snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(sql_id));
		s = json_object_get(c->sqls, key);
		if (s != NULL)
			return json_string_value(s);
		*error =
		    make_error("unknown sql_id (not stored with store_sql)",
			       "SQL_STORE_DOES_NOT_EXIST");
		return NULL;
	}
	*error = make_error("a statement needs \"sql\" or \"sql_id\"",
			    "HRANA_PROTO_ERROR");
	return NULL;
}

static int only_whitespace_or_comments(const char *p)
{
	for (;;) {
		while (isspace((unsigned char)*p) || *p == ';')
			p++;
		if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");
			if (e == NULL)
				return 1;
			p = e + 2;
		} else {
			return *p == '\0';
		}
	}
}

static int bind_args(sqlite3_stmt *st, json_t *stmt, json_t **error)
{
	json_t *args = json_object_get(stmt, "args");
	json_t *named = json_object_get(stmt, "named_args");
	const char *err = NULL;
	size_t i;
	json_t *v;

	if (args != NULL && !json_is_null(args)) {
		if (!json_is_array(args))
			goto proto;
		if ((int)json_array_size(args) >
		    sqlite3_bind_parameter_count(st)) {
			*error = make_error("more arguments than the statement "
					    "has parameters",
					    "ARGS_INVALID");
			return -1;
		}
		json_array_foreach(args, i, v)
		{
			if (hrana_value_bind(st, (int)i + 1, v, &err) != 0)
				goto bad_value;
		}
	}
	if (named != NULL && !json_is_null(named)) {
		if (!json_is_array(named))
			goto proto;
		json_array_foreach(named, i, v)
		{
			const char *name =
			    json_string_value(json_object_get(v, "name"));
			int idx;
			if (name == NULL)
				goto proto;
			idx = sqlite3_bind_parameter_index(st, name);
			if (idx == 0 && strchr(":@$", name[0]) == NULL) {
				static const char prefixes[] = ":@$";
				char buf[256];
				int k;
				for (k = 0; idx == 0 && k < 3; k++) {
					snprintf(buf, sizeof buf, "%c%s",
						 prefixes[k], name);
					idx = sqlite3_bind_parameter_index(st,
									   buf);
				}
			}
			if (idx == 0)
				continue; /* like sqld: unused names are ignored
					   */
			if (hrana_value_bind(st, idx,
					     json_object_get(v, "value"),
					     &err) != 0)
				goto bad_value;
		}
	}
	return 0;
proto:
	*error = make_error("\"args\" and \"named_args\" must be arrays of "
			    "values / {name, value}",
			    "HRANA_PROTO_ERROR");
	return -1;
bad_value:
	*error = make_error(err ? err : "cannot bind a value", "ARGS_INVALID");
	return -1;
}

static json_t *columns_of(sqlite3_stmt *st)
{
	json_t *cols = json_array();
	int i, n = sqlite3_column_count(st);

	for (i = 0; i < n; i++) {
		const char *decl = sqlite3_column_decltype(st, i);
		json_array_append_new(cols,
				      json_pack("{s:s?, s:s?}", "name",
						sqlite3_column_name(st, i),
						"decltype", decl));
	}
	return cols;
}

static json_t *row_of(sqlite3_stmt *st)
{
	json_t *row = json_array();
	int i, n = sqlite3_column_count(st);

	for (i = 0; i < n; i++)
		json_array_append_new(row, hrana_value_from_column(st, i));
	return row;
}

/* What a statement's text says about transactions: BEGIN_NONE for anything
 * but BEGIN.  BEGIN_READONLY is libSQL's read transaction, which
 * @libsql/client sends as "BEGIN TRANSACTION READONLY" for
 * transaction("read") and batch(..., "read"); stock SQLite would parse that
 * as a deferred transaction named READONLY and let it write. */
enum begin_kind {
	BEGIN_NONE,
	BEGIN_DEFERRED,
	BEGIN_IMMEDIATE,
	BEGIN_EXCLUSIVE,
	BEGIN_READONLY,
};

static const char *skip_space(const char *p)
{
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");
			p = e ? e + 2 : p + strlen(p);
		} else {
			return p;
		}
	}
}

/* If p starts with the keyword w (any case, as a whole word), returns the
 * text after it and its trailing space; else NULL. */
static const char *keyword(const char *p, const char *w)
{
	size_t n = strlen(w);

	if (strncasecmp(p, w, n) != 0 || isalnum((unsigned char)p[n]) ||
	    p[n] == '_')
		return NULL;
	return skip_space(p + n);
}

static enum begin_kind begin_kind(const char *sql)
{
	const char *p = keyword(skip_space(sql), "BEGIN"), *q;

	if (p == NULL)
		return BEGIN_NONE;
	if (keyword(p, "DEFERRED") != NULL)
		return BEGIN_DEFERRED;
	if (keyword(p, "IMMEDIATE") != NULL)
		return BEGIN_IMMEDIATE;
	if (keyword(p, "EXCLUSIVE") != NULL)
		return BEGIN_EXCLUSIVE;
	/* BEGIN READONLY [TRANSACTION] or BEGIN TRANSACTION READONLY, alone */
	if ((q = keyword(p, "READONLY")) != NULL) {
		const char *t = keyword(q, "TRANSACTION");
		p = t ? t : q;
	} else if ((q = keyword(p, "TRANSACTION")) != NULL &&
		   (q = keyword(q, "READONLY")) != NULL) {
		p = q;
	} else {
		return BEGIN_DEFERRED;
	}
	return only_whitespace_or_comments(p) ? BEGIN_READONLY : BEGIN_DEFERRED;
}

/* Refuse writes on a read-only stream (token) or inside a read-only
 * transaction.  A read-only token may not take the write lock either. */
static int refuse_write(struct hrana_conn *c, sqlite3_stmt *st,
			enum begin_kind kind, json_t **error)
{
	if (c->read_only &&
	    (kind == BEGIN_IMMEDIATE || kind == BEGIN_EXCLUSIVE)) {
		*error = make_error("this token is read-only: BEGIN IMMEDIATE "
				    "and BEGIN EXCLUSIVE take the write lock",
				    "SQLITE_READONLY");
		return 1;
	}
	if (sqlite3_stmt_readonly(st))
		return 0;
	if (c->read_only) {
		*error = make_error("this token is read-only: the statement "
				    "would write to the database",
				    "SQLITE_READONLY");
		return 1;
	}
	if (c->tx_read_only && !sqlite3_get_autocommit(c->db)) {
		*error = make_error("the transaction is read-only (BEGIN "
				    "READONLY): the statement would write to "
				    "the database",
				    "SQLITE_READONLY");
		return 1;
	}
	return 0;
}

/* Prepare a statement of a Stmt object, refusing several statements in one
 * string and writes on a read-only stream or transaction. */
static sqlite3_stmt *prepare_stmt(struct hrana_conn *c, json_t *stmt,
				  json_t **error, enum begin_kind *kind)
{
	const char *sql = stmt_sql(c, stmt, error);
	const char *tail = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sql == NULL)
		return NULL;
	*kind = begin_kind(sql);
	if (*kind == BEGIN_READONLY)
		sql = "BEGIN DEFERRED"; /* writes are refused by refuse_write */
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, &tail);
	if (rc != SQLITE_OK) {
		*error = sqlite_error(c->db, rc);
		return NULL;
	}
	if (st == NULL) {
		*error = make_error("the SQL text contains no statement",
				    "SQL_NO_STATEMENT");
		return NULL;
	}
	if (tail != NULL && !only_whitespace_or_comments(tail)) {
		sqlite3_finalize(st);
		*error =
		    make_error("SQL string contains more than one statement",
			       "SQL_MANY_STATEMENTS");
		return NULL;
	}
	if (refuse_write(c, st, *kind, error)) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

json_t *hrana_execute_stmt(struct hrana_conn *c, json_t *stmt, json_t **error)
{
	json_t *want = json_object_get(stmt, "want_rows");
	int want_rows =
	    want == NULL || json_is_null(want) || json_is_true(want);
	sqlite3_int64 changes_before = sqlite3_total_changes64(c->db);
	sqlite3_int64 changes, rows_written;
	struct timespec t0, t1;
	enum begin_kind kind = BEGIN_NONE;
	sqlite3_stmt *st;
	json_t *rows, *res;
	char rowid[32];
	int rc;

	*error = NULL;
	if (!json_is_object(stmt)) {
		*error = make_error("a statement must be an object",
				    "HRANA_PROTO_ERROR");
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = prepare_stmt(c, stmt, error, &kind);
	if (st == NULL)
		return NULL;
	if (bind_args(st, stmt, error) != 0) {
		sqlite3_finalize(st);
		return NULL;
	}
	rows = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (want_rows)
			json_array_append_new(rows, row_of(st));
	}
	if (rc != SQLITE_DONE) {
		*error = sqlite_error(c->db, rc);
		json_decref(rows);
		sqlite3_finalize(st);
		return NULL;
	}
	if (kind != BEGIN_NONE)
		c->tx_read_only = kind == BEGIN_READONLY;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	snprintf(rowid, sizeof rowid, "%lld",
		 (long long)sqlite3_last_insert_rowid(c->db));
	/* Rows the statement itself changed, as sqld reports them: not those
	 * of triggers (sqlite3_changes64), and 0 for a statement that changed
	 * nothing (where sqlite3_changes64 still holds an older count). */
	changes = sqlite3_stmt_readonly(st) ||
			  sqlite3_total_changes64(c->db) == changes_before
		      ? 0
		      : sqlite3_changes64(c->db);
	rows_written = sqlite3_total_changes64(c->db) - changes_before;
	res =
	    json_pack("{s:o, s:o, s:I, s:s, s:I, s:f}", "cols", columns_of(st),
		      "rows", rows, "affected_row_count", (json_int_t)changes,
		      "last_insert_rowid", rowid, "rows_written",
		      (json_int_t)rows_written, "query_duration_ms",
		      (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			  (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	sqlite3_finalize(st);
	return res;
}

/* ---------------------------------------------------------------------- */
/* batches */

/* Evaluate a batch condition against the outcomes of earlier steps:
 * outcome[i] = 1 ok, 0 error, -1 not executed.  Returns 1/0, or -1 when the
 * condition is malformed. */
static int eval_cond(struct hrana_conn *c, json_t *cond, const int *outcome,
		     size_t step)
{
	const char *type = json_string_value(json_object_get(cond, "type"));
	json_t *x;
	size_t i;

	if (type == NULL)
		return -1;
	if (strcmp(type, "ok") == 0 || strcmp(type, "error") == 0) {
		json_t *s = json_object_get(cond, "step");
		json_int_t k;
		if (!json_is_integer(s))
			return -1;
		k = json_integer_value(s);
		if (k < 0 || (size_t)k >= step)
			return -1;
		if (strcmp(type, "ok") == 0)
			return outcome[k] == 1;
		return outcome[k] == 0;
	}
	if (strcmp(type, "not") == 0) {
		int r =
		    eval_cond(c, json_object_get(cond, "cond"), outcome, step);
		return r < 0 ? -1 : !r;
	}
	if (strcmp(type, "and") == 0 || strcmp(type, "or") == 0) {
		int is_and = strcmp(type, "and") == 0;
		int acc = is_and;
		json_t *conds = json_object_get(cond, "conds");
		if (!json_is_array(conds))
			return -1;
		json_array_foreach(conds, i, x)
		{
			int r = eval_cond(c, x, outcome, step);
			if (r < 0)
				return -1;
			acc = is_and ? (acc && r) : (acc || r);
		}
		return acc;
	}
	if (strcmp(type, "is_autocommit") == 0 && c->version >= 3)
		return sqlite3_get_autocommit(c->db) != 0;
	return -1;
}

struct batch_sink {
	void (*step_ok)(void *arg, size_t step, json_t *result);
	void (*step_error)(void *arg, size_t step, json_t *error);
	void *arg;
};

static int run_batch(struct hrana_conn *c, json_t *batch,
		     const struct batch_sink *sink, const char **proto_err)
{
	json_t *steps = json_object_get(batch, "steps");
	int *outcome;
	size_t i, n;
	json_t *step;

	if (!json_is_object(batch) || !json_is_array(steps)) {
		*proto_err = "a batch must be {\"steps\": [...]}";
		return -1;
	}
	n = json_array_size(steps);
	outcome = calloc(n ? n : 1, sizeof *outcome);
	if (outcome == NULL) {
		*proto_err = "out of memory";
		return -1;
	}
	json_array_foreach(steps, i, step)
	{
		json_t *cond = json_object_get(step, "condition");
		json_t *err = NULL, *res;

		outcome[i] = -1;
		if (cond != NULL && !json_is_null(cond)) {
			int r = eval_cond(c, cond, outcome, i);
			if (r < 0) {
				*proto_err = "invalid batch condition (steps "
					     "may only refer to earlier steps)";
				free(outcome);
				return -1;
			}
			if (!r)
				continue;
		}
		res =
		    hrana_execute_stmt(c, json_object_get(step, "stmt"), &err);
		if (res != NULL) {
			outcome[i] = 1;
			sink->step_ok(sink->arg, i, res);
		} else {
			outcome[i] = 0;
			sink->step_error(sink->arg, i, err);
		}
	}
	free(outcome);
	return 0;
}

struct batch_result {
	json_t *results;
	json_t *errors;
};

static void br_ok(void *arg, size_t step, json_t *result)
{
	struct batch_result *b = arg;

	json_array_set_new(b->results, step, result);
}

static void br_error(void *arg, size_t step, json_t *error)
{
	struct batch_result *b = arg;

	json_array_set_new(b->errors, step, error);
}

json_t *hrana_execute_batch(struct hrana_conn *c, json_t *batch,
			    const char **proto_err)
{
	struct batch_result b = {json_array(), json_array()};
	struct batch_sink sink = {br_ok, br_error, &b};
	json_t *steps = json_object_get(batch, "steps");
	size_t i;

	for (i = 0; json_is_array(steps) && i < json_array_size(steps); i++) {
		json_array_append_new(b.results, json_null());
		json_array_append_new(b.errors, json_null());
	}
	if (run_batch(c, batch, &sink, proto_err) != 0) {
		json_decref(b.results);
		json_decref(b.errors);
		return NULL;
	}
	return json_pack("{s:o, s:o}", "step_results", b.results, "step_errors",
			 b.errors);
}

/* ---------------------------------------------------------------------- */
/* cursor */

struct cursor_sink {
	void (*emit)(void *arg, json_t *entry);
	void *arg;
};

static void cursor_ok(void *arg, size_t step, json_t *result)
{
	struct cursor_sink *cs = arg;
	json_t *rows = json_object_get(result, "rows");
	json_t *row;
	size_t i;

	cs->emit(cs->arg, json_pack("{s:s, s:I, s:O}", "type", "step_begin",
				    "step", (json_int_t)step, "cols",
				    json_object_get(result, "cols")));
	json_array_foreach(rows, i, row)
	{
		cs->emit(cs->arg,
			 json_pack("{s:s, s:O}", "type", "row", "row", row));
	}
	cs->emit(cs->arg,
		 json_pack("{s:s, s:O, s:O}", "type", "step_end",
			   "affected_row_count",
			   json_object_get(result, "affected_row_count"),
			   "last_insert_rowid",
			   json_object_get(result, "last_insert_rowid")));
	json_decref(result);
}

static void cursor_error(void *arg, size_t step, json_t *error)
{
	struct cursor_sink *cs = arg;

	cs->emit(cs->arg, json_pack("{s:s, s:I, s:o}", "type", "step_error",
				    "step", (json_int_t)step, "error", error));
}

int hrana_cursor(struct hrana_conn *c, json_t *batch,
		 void (*emit)(void *arg, json_t *entry), void *arg,
		 const char **proto_err)
{
	struct cursor_sink cs = {emit, arg};
	struct batch_sink sink = {cursor_ok, cursor_error, &cs};

	return run_batch(c, batch, &sink, proto_err);
}

/* ---------------------------------------------------------------------- */
/* requests */

static json_t *ok_response(const char *type, json_t *fields)
{
	json_t *resp = fields ? fields : json_object();

	json_object_set_new(resp, "type", json_string(type));
	return json_pack("{s:s, s:o}", "type", "ok", "response", resp);
}

static json_t *error_result(json_t *error)
{
	return json_pack("{s:s, s:o}", "type", "error", "error", error);
}

static json_t *describe(struct hrana_conn *c, json_t *req, json_t **error)
{
	sqlite3_stmt *st;
	json_t *params, *cols;
	const char *tail = NULL;
	const char *sql = stmt_sql(c, req, error);
	int i, rc;

	if (sql == NULL)
		return NULL;
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, &tail);
	if (rc != SQLITE_OK) {
		*error = sqlite_error(c->db, rc);
		return NULL;
	}
	if (st == NULL) {
		*error = make_error("the SQL text contains no statement",
				    "SQL_NO_STATEMENT");
		return NULL;
	}
	params = json_array();
	for (i = 1; i <= sqlite3_bind_parameter_count(st); i++) {
		json_array_append_new(
		    params, json_pack("{s:s?}", "name",
				      sqlite3_bind_parameter_name(st, i)));
	}
	cols = columns_of(st);
	{
		json_t *r = json_pack(
		    "{s:o, s:o, s:b, s:b}", "params", params, "cols", cols,
		    "is_explain", sqlite3_stmt_isexplain(st) != 0,
		    "is_readonly", sqlite3_stmt_readonly(st) != 0);
		sqlite3_finalize(st);
		return json_pack("{s:o}", "result", r);
	}
}

static json_t *sequence(struct hrana_conn *c, json_t *req, json_t **error)
{
	const char *sql = stmt_sql(c, req, error);
	enum begin_kind kind;
	const char *p;

	if (sql == NULL)
		return NULL;
	p = sql;
	while (*p != '\0') {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		int rc = sqlite3_prepare_v2(c->db, p, -1, &st, &tail);
		if (rc != SQLITE_OK) {
			*error = sqlite_error(c->db, rc);
			return NULL;
		}
		if (st == NULL)
			break; /* only comments or whitespace left */
		kind = begin_kind(sqlite3_sql(st));
		if (refuse_write(c, st, kind, error)) {
			sqlite3_finalize(st);
			return NULL;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			*error = sqlite_error(c->db, rc);
			return NULL;
		}
		if (kind != BEGIN_NONE)
			c->tx_read_only = 0;
		p = tail;
	}
	return json_object();
}

static json_t *store_sql(struct hrana_conn *c, json_t *req,
			 const char **proto_err)
{
	json_t *id = json_object_get(req, "sql_id");
	json_t *sql = json_object_get(req, "sql");
	char key[32];

	if (!json_is_integer(id) || !json_is_string(sql)) {
		*proto_err = "store_sql needs an integer sql_id and sql";
		return NULL;
	}
	if (json_object_size(c->sqls) >= 1000) {
		return error_result(make_error("too many stored SQL texts",
					       "SQL_STORE_TOO_MANY"));
	}
	snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
		 json_integer_value(id));
	json_object_set(c->sqls, key, sql);
	return ok_response("store_sql", NULL);
}

static json_t *close_sql(struct hrana_conn *c, json_t *req,
			 const char **proto_err)
{
	json_t *id = json_object_get(req, "sql_id");
	char key[32];

	if (!json_is_integer(id)) {
		*proto_err = "close_sql needs an integer sql_id";
		return NULL;
	}
	snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
		 json_integer_value(id));
	json_object_del(c->sqls, key);
	return ok_response("close_sql", NULL);
}

/* ---------------------------------------------------------------------- */
/* validation, before anything runs */

static int check_cond(json_t *cond, size_t step, int version)
{
	const char *type = json_string_value(json_object_get(cond, "type"));
	json_t *x;
	size_t i;

	if (!json_is_object(cond) || type == NULL)
		return -1;
	if (strcmp(type, "ok") == 0 || strcmp(type, "error") == 0) {
		json_t *s = json_object_get(cond, "step");
		return json_is_integer(s) && json_integer_value(s) >= 0 &&
			       (size_t)json_integer_value(s) < step
			   ? 0
			   : -1;
	}
	if (strcmp(type, "not") == 0)
		return check_cond(json_object_get(cond, "cond"), step, version);
	if (strcmp(type, "and") == 0 || strcmp(type, "or") == 0) {
		json_t *conds = json_object_get(cond, "conds");
		if (!json_is_array(conds))
			return -1;
		json_array_foreach(conds, i, x)
		{
			if (check_cond(x, step, version) != 0)
				return -1;
		}
		return 0;
	}
	if (strcmp(type, "is_autocommit") == 0 && version >= 3)
		return 0;
	return -1;
}

static int check_sql_ref(json_t *obj)
{
	json_t *sql = json_object_get(obj, "sql");
	json_t *id = json_object_get(obj, "sql_id");

	return json_is_string(sql) || json_is_integer(id) ? 0 : -1;
}

int hrana_check_batch(json_t *batch, int version, const char **proto_err)
{
	json_t *steps = json_object_get(batch, "steps"), *step, *cond;
	size_t i;

	if (!json_is_object(batch) || !json_is_array(steps)) {
		*proto_err = "a batch must be {\"steps\": [...]}";
		return -1;
	}
	json_array_foreach(steps, i, step)
	{
		json_t *stmt = json_object_get(step, "stmt");
		if (!json_is_object(step) || !json_is_object(stmt) ||
		    check_sql_ref(stmt) != 0) {
			*proto_err = "a batch step must be {\"stmt\": {\"sql\" "
				     "or \"sql_id\", ...}, \"condition\"?}";
			return -1;
		}
		cond = json_object_get(step, "condition");
		if (cond != NULL && !json_is_null(cond) &&
		    check_cond(cond, i, version) != 0) {
			*proto_err = "invalid batch condition (steps may only "
				     "refer to earlier steps)";
			return -1;
		}
	}
	return 0;
}

int hrana_check_request(json_t *req, int version, const char **proto_err)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *stmt = json_object_get(req, "stmt");

	if (!json_is_object(req) || type == NULL) {
		*proto_err = "a request must be an object with a \"type\"";
		return -1;
	}
	if (strcmp(type, "execute") == 0) {
		if (json_is_object(stmt) && check_sql_ref(stmt) == 0)
			return 0;
		*proto_err = "execute needs \"stmt\": {\"sql\" or \"sql_id\", "
			     "...}";
		return -1;
	}
	if (strcmp(type, "batch") == 0)
		return hrana_check_batch(json_object_get(req, "batch"), version,
					 proto_err);
	if (strcmp(type, "sequence") == 0 || strcmp(type, "describe") == 0) {
		if (check_sql_ref(req) == 0)
			return 0;
		*proto_err = "sequence and describe need \"sql\" or \"sql_id\"";
		return -1;
	}
	if (strcmp(type, "store_sql") == 0) {
		if (json_is_integer(json_object_get(req, "sql_id")) &&
		    json_is_string(json_object_get(req, "sql")))
			return 0;
		*proto_err = "store_sql needs an integer sql_id and sql";
		return -1;
	}
	if (strcmp(type, "close_sql") == 0) {
		if (json_is_integer(json_object_get(req, "sql_id")))
			return 0;
		*proto_err = "close_sql needs an integer sql_id";
		return -1;
	}
	if (strcmp(type, "close") == 0 ||
	    (strcmp(type, "get_autocommit") == 0 && version >= 3))
		return 0;
	*proto_err = "unknown request type";
	return -1;
}

json_t *hrana_execute_request(struct hrana_conn *c, json_t *req, int *close,
			      const char **proto_err)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *error = NULL, *res;

	*close = 0;
	if (!json_is_object(req) || type == NULL) {
		*proto_err = "a request must be an object with a \"type\"";
		return NULL;
	}
	if (strcmp(type, "execute") == 0) {
		res =
		    hrana_execute_stmt(c, json_object_get(req, "stmt"), &error);
		if (res == NULL)
			return error_result(error);
		return ok_response("execute",
				   json_pack("{s:o}", "result", res));
	}
	if (strcmp(type, "batch") == 0) {
		res = hrana_execute_batch(c, json_object_get(req, "batch"),
					  proto_err);
		if (res == NULL)
			return NULL;
		return ok_response("batch", json_pack("{s:o}", "result", res));
	}
	if (strcmp(type, "sequence") == 0) {
		res = sequence(c, req, &error);
		return res ? ok_response("sequence", res) : error_result(error);
	}
	if (strcmp(type, "describe") == 0) {
		res = describe(c, req, &error);
		return res ? ok_response("describe", res) : error_result(error);
	}
	if (strcmp(type, "store_sql") == 0)
		return store_sql(c, req, proto_err);
	if (strcmp(type, "close_sql") == 0)
		return close_sql(c, req, proto_err);
	if (strcmp(type, "get_autocommit") == 0 && c->version >= 3) {
		return ok_response(
		    "get_autocommit",
		    json_pack("{s:b}", "is_autocommit",
			      sqlite3_get_autocommit(c->db) != 0));
	}
	if (strcmp(type, "close") == 0) {
		*close = 1;
		return ok_response("close", NULL);
	}
	*proto_err = "unknown request type";
	return NULL;
}
