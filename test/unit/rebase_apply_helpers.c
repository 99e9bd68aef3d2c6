/* The rebase_apply tests' shared state and helpers (rebase_apply_helpers.h):
 * the databases and the applier of a case, changes built from SELECTs,
 * their application through the plan file's JSON text, and the result
 * read back. */
#include "rebase_apply_helpers.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "fixture.h"
#include "proto/values.h"

sqlite3 *rah_db, *rah_scratch;
struct rebase_apply *rah_ra;
json_t *rah_conflicts;
char rah_err[512];

void rah_setup(void)
{
	ck_assert_int_eq(sqlite3_open(":memory:", &rah_db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_open(":memory:", &rah_scratch), SQLITE_OK);
	rah_ra = rebase_apply_new();
	ck_assert_ptr_nonnull(rah_ra);
	rah_conflicts = json_array();
	rah_err[0] = '\0';
}

void rah_teardown(void)
{
	json_decref(rah_conflicts);
	rebase_apply_free(rah_ra);
	sqlite3_close(rah_scratch);
	sqlite3_close(rah_db);
}

/* --- Building changes --------------------------------------------------- */

/* The one row of a SELECT as {"col": Hrana value}; NULL for NULL. */
static json_t *row(const char *select)
{
	sqlite3_stmt *st;
	json_t *r;
	int i;

	if (select == NULL)
		return NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(rah_scratch, select, -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	r = json_object();
	for (i = 0; i < sqlite3_column_count(st); i++)
		json_object_set_new(r, sqlite3_column_name(st, i),
				    values_from_column(st, i));
	sqlite3_finalize(st);
	return r;
}

/* A change of a table with a PRIMARY KEY: key, before and after are
 * SELECTs (NULL: none). */
json_t *rah_change(const char *table, const char *op, const char *key,
		   const char *before, const char *after)
{
	return json_pack("{s:s, s:s, s:o, s:o?, s:o?}", "table", table, "op",
			 op, "key", row(key), "before", row(before), "after",
			 row(after));
}

/* A change of a table without a declared PRIMARY KEY: keyed by rowid. */
json_t *rah_change_rowid(const char *table, const char *op, long long rowid,
			 const char *before, const char *after)
{
	return json_pack("{s:s, s:s, s:{s:I}, s:o?, s:o?}", "table", table,
			 "op", op, "key", "rowid", (json_int_t)rowid, "before",
			 row(before), "after", row(after));
}

/* Apply the changes (NULL-terminated; consumed) in a transaction of
 * their own: committed when applied, else rolled back. */
int rah_apply(json_t *first, ...)
{
	json_t *arr = json_array(), *c, *loaded;
	va_list ap;
	char *text;
	int rv;

	va_start(ap, first);
	for (c = first; c != NULL; c = va_arg(ap, json_t *)) {
		ck_assert_ptr_nonnull(c);
		json_array_append_new(arr, c);
	}
	va_end(ap);
	/* Through the text of the plan file. */
	text = json_dumps(arr, JSON_COMPACT);
	loaded = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(loaded);
	free(text);
	json_decref(arr);
	fixture_exec(rah_db, "BEGIN IMMEDIATE");
	rah_err[0] = '\0';
	rv = rebase_apply_txn(rah_ra, rah_db, loaded, rah_conflicts, rah_err,
			      sizeof rah_err);
	fixture_exec(rah_db, rv == 0 ? "COMMIT" : "ROLLBACK");
	json_decref(loaded);
	return rv;
}

/* --- Reading the result ------------------------------------------------- */

/* Every row of sql, its values quote()d and joined by ",", rows by "|". */
char *rah_dump(const char *sql)
{
	sqlite3_str *s = sqlite3_str_new(NULL);
	sqlite3_stmt *st;
	int i, rows = 0;
	char *out;

	ck_assert_int_eq(sqlite3_prepare_v2(rah_db, sql, -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (rows++)
			sqlite3_str_appendall(s, "|");
		for (i = 0; i < sqlite3_column_count(st); i++)
			sqlite3_str_appendf(
			    s, "%s%s", i ? "," : "",
			    sqlite3_column_text(st, i)
				? (const char *)sqlite3_column_text(st, i)
				: "NULL");
	}
	sqlite3_finalize(st);
	out = sqlite3_str_finish(s);
	return out ? out : sqlite3_mprintf("");
}
