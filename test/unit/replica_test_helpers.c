#include "replica_test_helpers.h"

#include <stdio.h>
#include <stdlib.h>

#include <check.h>

#include "fixture.h"
#include "replica_fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

char *rth_sibling(const char *path, const char *suffix)
{
	char *out;

	ck_assert_int_ge(asprintf(&out, "%s%s", path, suffix), 0);
	return out;
}

const char *rth_not_a_replica(void)
{
	return "holds data but has no replica state file";
}

int64_t rth_jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* ---------------------------------------------------------------------- */
/* the primary */

const char rth_seed_schema[] =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "qty INTEGER, data BLOB);"
    "CREATE INDEX items_name ON items(name, qty);"
    "CREATE TABLE tags(item INTEGER, tag TEXT, PRIMARY KEY(item, tag)) "
    "WITHOUT ROWID;"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)";

char *rth_seed_rows(int lo, int hi)
{
	char *sql = sqlite3_mprintf(
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO items(id, name, qty, data) SELECT i, "
	    "printf('item-%%05d', i), i * 7, randomblob(CASE WHEN i %% 10 = 0 "
	    "THEN 6000 + i * 13 ELSE 50 + i %% 200 END) FROM n;"
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO tags(item, tag) SELECT i, 'tag-' || "
	    "(i %% 7) FROM n;"
	    "WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < %d) INSERT INTO notes(id, body) SELECT i, "
	    "replace(hex(zeroblob(20 + i %% 300)), '00', 'ab') || i FROM n",
	    lo, hi, lo, hi, lo, hi);

	ck_assert_ptr_nonnull(sql);
	return sql;
}

void rth_make_seed_file(const char *path, int n)
{
	char *rows = rth_seed_rows(1, n);
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=4096");
	fixture_exec(db, rth_seed_schema);
	fixture_exec(db, rows);
	sqlite3_close(db);
	sqlite3_free(rows);
}

/* Tables of the seed and, for each, an expression giving a row as text. */
static const char *const seed_tables[][2] = {
    {"items", "id || ',' || name || ',' || qty || ',' || hex(data)"},
    {"tags", "item || ',' || tag"},
    {"notes", "id || ',' || body"},
    {"sqlite_schema", "type || ',' || name || ',' || tbl_name || ',' || "
		      "rootpage || ',' || coalesce(sql, '')"},
};

void rth_assert_same_seed(sqlite3 *db, const char *url)
{
	size_t i;

	for (i = 0; i < sizeof seed_tables / sizeof seed_tables[0]; i++)
		rfx_assert_same_table(db, url, seed_tables[i][0],
				      seed_tables[i][1]);
}

/* ---------------------------------------------------------------------- */
/* the replica */

int rth_exec_fails(sqlite3 *db, const char *sql, int *xrc, char *msg,
		   size_t msg_len)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

	ck_assert_msg(rc != SQLITE_OK, "%s succeeded, expected a failure", sql);
	if (xrc != NULL)
		*xrc = sqlite3_extended_errcode(db);
	snprintf(msg, msg_len, "%s", err ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return rc;
}

int64_t rth_poll_until(sqlite3 *db, const char *sql, int64_t want,
		       long every_ms)
{
	int64_t start = rfx_now_ms(), v;

	for (;;) {
		v = fixture_query_int(db, sql);
		if (v == want)
			return rfx_now_ms() - start;
		ck_assert_msg(rfx_now_ms() - start < RTH_DEADLINE_MS,
			      "%s is %lld after %d ms, expected %lld", sql,
			      (long long)v, RTH_DEADLINE_MS, (long long)want);
		rfx_sleep_ms(every_ms);
	}
}
