#include "base/base64.h"
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

#include "proto/values.h"
#include "util.h"

void hrana_conn_init(struct hrana_conn *c, sqlite3 *db, int version,
		     int read_only)
{
	c->db = db;
	c->version = version;
	c->read_only = read_only;
	c->sqls = json_object();
	c->tx_read_only = 0;
	c->timeout_ms = 0;
	c->deadline_ms = 0;
	c->timed_out = 0;
	c->client_fd = -1;
	c->client_ws = 0;
	c->client_gone = 0;
	c->checks = 0;
	c->stats = NULL;
	c->started_us = 0;
	c->changes_before = 0;
}

void hrana_conn_reset(struct hrana_conn *c)
{
	json_decref(c->sqls);
	c->sqls = NULL;
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
		*error = hrana_make_error(
		    "unknown sql_id (not stored with store_sql)",
		    "SQL_STORE_DOES_NOT_EXIST");
		return NULL;
	}
	*error = hrana_make_error("a statement needs \"sql\" or \"sql_id\"",
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
			*error = hrana_make_error(
			    "more arguments than the statement "
			    "has parameters",
			    "ARGS_INVALID");
			return -1;
		}
		json_array_foreach(args, i, v)
		{
			if (values_bind(st, (int)i + 1, v, &err) != 0)
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
			if (values_bind(st, idx, json_object_get(v, "value"),
					&err) != 0)
				goto bad_value;
		}
	}
	return 0;
proto:
	*error =
	    hrana_make_error("\"args\" and \"named_args\" must be arrays of "
			     "values / {name, value}",
			     "HRANA_PROTO_ERROR");
	return -1;
bad_value:
	*error =
	    hrana_make_error(err ? err : "cannot bind a value", "ARGS_INVALID");
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
		json_array_append_new(row, values_from_column(st, i));
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
		*error =
		    hrana_make_error("this token is read-only: BEGIN IMMEDIATE "
				     "and BEGIN EXCLUSIVE take the write lock",
				     "SQLITE_READONLY");
		return 1;
	}
	if (sqlite3_stmt_readonly(st))
		return 0;
	if (c->read_only) {
		*error =
		    hrana_make_error("this token is read-only: the statement "
				     "would write to the database",
				     "SQLITE_READONLY");
		return 1;
	}
	if (c->tx_read_only && !sqlite3_get_autocommit(c->db)) {
		*error =
		    hrana_make_error("the transaction is read-only (BEGIN "
				     "READONLY): the statement would write to "
				     "the database",
				     "SQLITE_READONLY");
		return 1;
	}
	return 0;
}

/* Prepare a statement of a Stmt object, refusing several statements in one
 * string and writes on a read-only stream or transaction. */
/* Prepare sql, and once more after the connection re-reads the schema if
 * that fails: connections are reused across streams, each keeps the schema
 * it last read, and SQLite reports some errors while preparing against it
 * ("table t has 1 columns but 2 values were supplied", "no such column")
 * without checking whether another connection changed the schema since.
 * Running a statement that reads the database does check (the schema
 * cookie), and reloads the schema when it changed. */
static int prepare_current(sqlite3 *db, const char *sql, sqlite3_stmt **st,
			   const char **tail)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, tail);

	if (rc != SQLITE_ERROR)
		return rc;
	/* (If this fails too, the second prepare gives the error.) */
	sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL,
		     NULL);
	return sqlite3_prepare_v2(db, sql, -1, st, tail);
}

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
	rc = prepare_current(c->db, sql, &st, &tail);
	if (rc != SQLITE_OK) {
		*error = hrana_sqlite_error(c->db, rc);
		return NULL;
	}
	if (st == NULL) {
		*error = hrana_make_error("the SQL text contains no statement",
					  "SQL_NO_STATEMENT");
		return NULL;
	}
	if (tail != NULL && !only_whitespace_or_comments(tail)) {
		sqlite3_finalize(st);
		*error = hrana_make_error(
		    "SQL string contains more than one statement",
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
	uint64_t n_rows = 0;
	struct timespec t0, t1;
	enum begin_kind kind = BEGIN_NONE;
	sqlite3_stmt *st;
	json_t *rows, *res;
	char rowid[32];
	int rc;

	*error = NULL;
	if (!json_is_object(stmt)) {
		*error = hrana_make_error("a statement must be an object",
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
	hrana_statement_begins(c);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n_rows++;
		if (want_rows)
			json_array_append_new(rows, row_of(st));
	}
	hrana_statement_ends(c, st, rc, n_rows);
	if (rc != SQLITE_DONE) {
		*error = hrana_statement_error(c, rc);
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
	if (strcmp(type, "is_autocommit") == 0) /* on v2 too: hrana_check.c */
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
	rc = prepare_current(c->db, sql, &st, &tail);
	if (rc != SQLITE_OK) {
		*error = hrana_sqlite_error(c->db, rc);
		return NULL;
	}
	if (st == NULL) {
		*error = hrana_make_error("the SQL text contains no statement",
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
		int rc = prepare_current(c->db, p, &st, &tail);
		if (rc != SQLITE_OK) {
			*error = hrana_sqlite_error(c->db, rc);
			return NULL;
		}
		if (st == NULL)
			break; /* only comments or whitespace left */
		kind = begin_kind(sqlite3_sql(st));
		if (refuse_write(c, st, kind, error)) {
			sqlite3_finalize(st);
			return NULL;
		}
		uint64_t n_rows = 0;
		hrana_statement_begins(c);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			n_rows++;
		hrana_statement_ends(c, st, rc, n_rows);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			*error = hrana_statement_error(c, rc);
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
		return error_result(hrana_make_error(
		    "too many stored SQL texts", "SQL_STORE_TOO_MANY"));
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
