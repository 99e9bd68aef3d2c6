#include "replica_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "fixture.h"
#include "include/replite.h"
#include "sync/http_client.h"

void rfx_env_start(struct rfx_env *e, const char *const *server_args)
{
	server_fixture_start(&e->srv, server_args);
	e->dir = fixture_tmpdir();
	e->path = fixture_path(e->dir, "app.db");
}

void rfx_env_stop(struct rfx_env *e)
{
	server_fixture_stop(&e->srv);
	free(e->path);
	fixture_rmdir(e->dir);
	e->path = NULL;
	e->dir = NULL;
}

char *rfx_sync_error(sqlite3 *db)
{
	sqlite3_stmt *st;
	char *msg = NULL;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_sync()", -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) != SQLITE_ROW)
		msg = strdup(sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return msg;
}

static void register_once(void)
{
	static int done;

	if (!done) {
		ck_assert_int_eq(replite_register(), SQLITE_OK);
		done = 1;
	}
}

/* POST a Hrana v2 pipeline running sql; the result of its execute. */
static json_t *primary_pipeline(const char *url, const char *sql, int want_rows)
{
	struct http_client_config cfg = {
	    .base_url = url, .connect_timeout_ms = 5000, .max_body = 64 << 20};
	struct http_client_response res = {0};
	struct http_client *c = NULL;
	json_t *req, *doc, *first, *out;
	char err[512];
	char *body;
	int rc;

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	if (want_rows)
		req =
		    json_pack("{s:[{s:s, s:{s:s}}, {s:s}]}", "requests", "type",
			      "execute", "stmt", "sql", sql, "type", "close");
	else
		req = json_pack("{s:[{s:s, s:s}, {s:s}]}", "requests", "type",
				"sequence", "sql", sql, "type", "close");
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	rc = http_client_request(c, "POST", "/v2/pipeline", body, strlen(body),
				 30000, &res, err, sizeof err);
	free(body);
	ck_assert_msg(rc == 0, "primary_exec(%s): %s", sql, err);
	ck_assert_msg(res.status == 200, "primary_exec(%s): HTTP %ld: %s", sql,
		      res.status, (char *)res.body);
	doc = json_loadb((const char *)res.body, res.len, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	first = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_msg(strcmp(json_string_value(json_object_get(first, "type")),
			     "ok") == 0,
		      "primary refused %s: %s", sql, (char *)res.body);
	out = json_incref(json_object_get(first, "response"));
	json_decref(doc);
	http_client_response_free(&res);
	http_client_free(c);
	return out;
}

void rfx_primary_exec(const char *url, const char *sql)
{
	json_decref(primary_pipeline(url, sql, 0));
}

int64_t rfx_primary_query_int(const char *url, const char *sql)
{
	json_t *r = primary_pipeline(url, sql, 1);
	json_t *cell = json_array_get(
	    json_array_get(
		json_object_get(json_object_get(r, "result"), "rows"), 0),
	    0);
	const char *v = json_string_value(json_object_get(cell, "value"));
	int64_t out;

	ck_assert_msg(v != NULL, "rfx_primary_query_int(%s): no integer", sql);
	out = strtoll(v, NULL, 10);
	json_decref(r);
	return out;
}

char *rfx_uri(const char *db_path, const char *url, const char *extra)
{
	return sqlite3_mprintf(
	    "file:%s?vfs=replite%s%s%s%s", db_path, url ? "&sync_url=" : "",
	    url ? url : "", extra && extra[0] ? "&" : "", extra ? extra : "");
}

int rfx_try_open(const char *db_path, const char *url, const char *extra,
		 sqlite3 **db, char **errmsg)
{
	char *uri;
	int rc;

	register_once();
	uri = rfx_uri(db_path, url, extra);
	*db = NULL;
	*errmsg = NULL;
	rc = sqlite3_open_v2(
	    uri, db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
	sqlite3_free(uri);
	if (rc != SQLITE_OK) {
		*errmsg =
		    strdup(*db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
}

sqlite3 *rfx_open(const char *db_path, const char *url, const char *extra)
{
	sqlite3 *db;
	char *msg;
	int rc = rfx_try_open(db_path, url, extra, &db, &msg);

	ck_assert_msg(rc == SQLITE_OK, "cannot open replica %s: %s", db_path,
		      msg);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

int64_t rfx_sync(sqlite3 *db)
{
	return fixture_query_int(db, "SELECT replite_sync()");
}

int64_t rfx_status_int(sqlite3 *db, const char *field)
{
	char *sql = sqlite3_mprintf(
	    "SELECT json_extract(replite_status(), '$.%s')", field);
	int64_t v = fixture_query_int(db, sql);

	sqlite3_free(sql);
	return v;
}

char *rfx_status_text(sqlite3 *db)
{
	sqlite3_stmt *st;
	char *out;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_status()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}
