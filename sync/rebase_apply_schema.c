/* The schema changes of a rebased transaction: rows of sqlite_schema the
 * transaction inserted (CREATE), deleted (DROP) or updated (a moved root
 * page, or ALTER TABLE ... ADD COLUMN), re-applied as the statements that
 * make them (sync/rebase_apply.h says which are refused); and the tables
 * SQLite keeps for itself that are merged rather than re-applied. */
#include "rebase_apply_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/errors.h"

const char *ra_text_of(const json_t *row, const char *col)
{
	const json_t *v = json_object_get(row, col);
	const char *type = json_string_value(json_object_get(v, "type"));

	if (type == NULL || strcmp(type, "text") != 0)
		return NULL;
	return json_string_value(json_object_get(v, "value"));
}

/* --- Dropped tables ----------------------------------------------------- */

static int add_dropped(struct ra_dropped *d, const char *name)
{
	char **names;
	int *recreated;

	for (size_t i = 0; i < d->n; i++)
		if (strcasecmp(d->names[i], name) == 0)
			return 0;
	names = realloc(d->names, (d->n + 1) * sizeof *names);
	if (names == NULL)
		return -1;
	d->names = names;
	recreated = realloc(d->recreated, (d->n + 1) * sizeof *recreated);
	if (recreated == NULL)
		return -1;
	d->recreated = recreated;
	d->names[d->n] = strdup(name);
	if (d->names[d->n] == NULL)
		return -1;
	d->recreated[d->n++] = 0;
	return 0;
}

static int is_schema_change(const json_t *change, const char *op)
{
	const char *table = json_string_value(json_object_get(change, "table"));
	const char *o = json_string_value(json_object_get(change, "op"));

	return table != NULL && o != NULL &&
	       strcmp(table, "sqlite_schema") == 0 && strcmp(o, op) == 0;
}

static const char *table_named(const json_t *change, const char *side)
{
	const json_t *row = json_object_get(change, side);
	const char *type = ra_text_of(row, "type");

	if (type == NULL || strcmp(type, "table") != 0)
		return NULL;
	return ra_text_of(row, "name");
}

int ra_schema_scan(struct ra_call *c, const json_t *changes)
{
	struct ra_dropped *d = &c->dropped;
	const char *name;
	size_t i, k;
	json_t *ch;

	json_array_foreach(changes, i, ch)
	{
		if (is_schema_change(ch, "delete") &&
		    (name = table_named(ch, "before")) != NULL &&
		    add_dropped(d, name) != 0)
			return ra_oom(c);
	}
	/* Only a create of a name dropped counts: one that merely exists
	 * already is no table of this transaction's. */
	json_array_foreach(changes, i, ch)
	{
		if (!is_schema_change(ch, "insert") ||
		    (name = table_named(ch, "after")) == NULL)
			continue;
		for (k = 0; k < d->n; k++)
			if (strcasecmp(d->names[k], name) == 0)
				d->recreated[k] = 1;
	}
	return 0;
}

int ra_dropped_find(const struct ra_dropped *d, const char *table)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcasecmp(d->names[i], table) == 0)
			return (int)i;
	return -1;
}

void ra_dropped_free(struct ra_dropped *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->recreated);
	memset(d, 0, sizeof *d);
}

/* --- ADD COLUMN --------------------------------------------------------- */

int ra_added_column(const char *before, const char *after, const char **def,
		    size_t *def_len)
{
	size_t lb = strlen(before), la = strlen(after), pre = 0, suf = 0, p;
	size_t k;

	if (la <= lb + 2)
		return 0;
	k = la - lb; /* the length of ", <definition>" */
	while (pre < lb && before[pre] == after[pre])
		pre++;
	while (suf < lb && before[lb - 1 - suf] == after[la - 1 - suf])
		suf++;
	/* after is before with k bytes inserted at p for every p with
	 * lb - suf <= p <= pre.  Several p may fit when the text around the
	 * insertion repeats its start: CREATE TABLE t(a, PRIMARY KEY(a))
	 * becomes t(a, b, PRIMARY KEY(a)), ", b" inserted after "a" or
	 * "b, " after "a, ".  SQLite inserts right after the last column's
	 * definition: the first p whose insertion starts with ", ". */
	for (p = lb > suf ? lb - suf : 0; p <= pre; p++)
		if (after[p] == ',' && after[p + 1] == ' ') {
			*def = after + p + 2;
			*def_len = k - 2;
			return 1;
		}
	return 0;
}

/* --- The live schema ---------------------------------------------------- */

/* A column may be called rowid (or _rowid_, oid): SQL then means the
 * column by that name, and the rowid goes by another of the three (as
 * rowdiff_rows.c picks it, here on the live table). */
int ra_rowid_name(struct ra_call *c, const char *table, const char **name)
{
	static const char *const names[] = {"rowid", "_rowid_", "oid"};
	struct ra_rowid_name *n;
	sqlite3_stmt *st;
	size_t i;
	int rc;

	for (i = 0; i < c->n_rowid_names; i++)
		if (strcmp(c->rowid_names[i].table, table) == 0) {
			*name = c->rowid_names[i].name;
			return 0;
		}
	rc = ra_prepare(c, table,
			"SELECT count(*) FROM pragma_table_info(?1) "
			"WHERE name = ?2 COLLATE NOCASE",
			&st);
	for (*name = NULL, i = 0; rc == 0 && *name == NULL && i < 3; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			rc = ra_fail(c, rc, table);
			break;
		}
		rc = 0;
		if (sqlite3_column_int(st, 0) == 0)
			*name = names[i];
	}
	if (rc == 0)
		sqlite3_reset(st);
	if (rc != 0)
		return rc;
	if (*name == NULL) {
		errors_set(c->err, c->err_len,
			   "table %s: it has columns rowid, _rowid_ and oid: "
			   "its rows cannot be found by rowid",
			   table);
		return 1;
	}
	n = realloc(c->rowid_names, (c->n_rowid_names + 1) * sizeof *n);
	if (n == NULL)
		return ra_oom(c);
	c->rowid_names = n;
	n[c->n_rowid_names].table = strdup(table);
	if (n[c->n_rowid_names].table == NULL)
		return ra_oom(c);
	n[c->n_rowid_names++].name = *name;
	return 0;
}

/* --- Applying ----------------------------------------------------------- */

/* Statements that come from data (sqlite_schema's sql, a column
 * definition taken from it): a second statement hidden in one is refused,
 * not run. */
static int exec_one(struct ra_call *c, const char *table, const char *sql)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	int rc, rv;

	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, &tail);
	if (rc != SQLITE_OK)
		return ra_fail(c, rc, table);
	if (st == NULL || tail[strspn(tail, " \t\r\n\f;")] != '\0') {
		sqlite3_finalize(st);
		errors_set(c->err, c->err_len,
			   "table %s: not one SQL statement: %s", table, sql);
		return 1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	rv = rc == SQLITE_DONE ? 0 : ra_fail(c, rc, table);
	sqlite3_finalize(st);
	return rv;
}

/* The sql of the live object of this type and name (sqlite3_free'd by the
 * caller; NULL with *found 0 when there is none, NULL with *found 1 for
 * an object without sql).  Tables, indexes and views share one namespace,
 * triggers have their own. */
static int live_sql(struct ra_call *c, const char *type, const char *name,
		    int *found, char **sql)
{
	sqlite3_stmt *st;
	int rc;

	*found = 0;
	*sql = NULL;
	/* sqlite_master: the name sqlite_schema is SQLite 3.33's, and the
	 * extension runs in older ones. */
	rc = ra_prepare(c, name,
			"SELECT type, sql FROM sqlite_master WHERE name = ?1 "
			"COLLATE NOCASE AND (type = 'trigger') = "
			"(?2 = 'trigger')",
			&st);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 1);

		*found = 1;
		/* An object of another type under the name: its sql differs
		 * from any CREATE of this type, which is what callers ask. */
		if (s != NULL) {
			*sql = sqlite3_mprintf("%s", s);
			if (*sql == NULL) {
				sqlite3_reset(st);
				return ra_oom(c);
			}
		}
		rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ra_fail(c, rc, name);
}

static int refuse(struct ra_call *c, const char *name, const char *why)
{
	errors_set(c->err, c->err_len, "table %s: %s", name, why);
	return 1;
}

static int create_object(struct ra_call *c, const json_t *after)
{
	const char *type = ra_text_of(after, "type");
	const char *name = ra_text_of(after, "name");
	const char *sql = ra_text_of(after, "sql");
	char *live = NULL;
	int found, rv;

	if (type == NULL || name == NULL)
		return refuse(c, "sqlite_schema",
			      "a created object has no name");
	if (sql == NULL)
		return 0; /* an automatic index: its table makes it */
	rv = live_sql(c, type, name, &found, &live);
	if (rv != 0)
		return rv;
	if (!found)
		rv = exec_one(c, name, sql);
	else if (live == NULL || strcmp(live, sql) != 0)
		rv = refuse(c, name,
			    "the primary has another object of that name");
	sqlite3_free(live);
	return rv;
}

static int drop_object(struct ra_call *c, const json_t *before)
{
	const char *type = ra_text_of(before, "type");
	const char *name = ra_text_of(before, "name");
	sqlite3_stmt *st;
	char *sql;
	int rc;

	if (type == NULL || name == NULL)
		return refuse(c, "sqlite_schema",
			      "a dropped object has no name");
	if (ra_text_of(before, "sql") == NULL)
		return 0; /* an automatic index goes with its table */
	if (strcmp(type, "table") != 0 && strcmp(type, "index") != 0 &&
	    strcmp(type, "view") != 0 && strcmp(type, "trigger") != 0)
		return refuse(c, name, "a dropped object of an unknown type");
	/* Exists as this type: DROP TABLE IF EXISTS would fail on a view of
	 * the name, and the primary may have dropped it already (a table
	 * drop takes its indexes and triggers along). */
	rc = ra_prepare(c, name,
			"SELECT 1 FROM sqlite_master WHERE type = ?1 AND "
			"name = ?2 COLLATE NOCASE",
			&st);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return ra_fail(c, rc, name);
	sql = sqlite3_mprintf("DROP %s \"%w\"", type, name);
	if (sql == NULL)
		return ra_oom(c);
	rc = exec_one(c, name, sql);
	sqlite3_free(sql);
	return rc;
}

static int alter_object(struct ra_call *c, const json_t *before,
			const json_t *after)
{
	const char *sql_before = ra_text_of(before, "sql");
	const char *sql_after = ra_text_of(after, "sql");
	const char *type = ra_text_of(after, "type");
	const char *name = ra_text_of(before, "name");
	const char *def;
	char *live = NULL, *alter;
	size_t def_len;
	int found, rv;

	if (name == NULL || type == NULL)
		return refuse(c, "sqlite_schema",
			      "a changed object has no name");
	if ((sql_before == NULL && sql_after == NULL) ||
	    (sql_before != NULL && sql_after != NULL &&
	     strcmp(sql_before, sql_after) == 0))
		return 0; /* only the root page moved (VACUUM, autovacuum) */
	rv = live_sql(c, type, name, &found, &live);
	if (rv != 0)
		return rv;
	if (found && live != NULL && sql_after != NULL &&
	    strcmp(live, sql_after) == 0)
		goto out; /* the primary made the same change */
	if (sql_before == NULL || sql_after == NULL ||
	    strcmp(type, "table") != 0 ||
	    !ra_added_column(sql_before, sql_after, &def, &def_len)) {
		rv = refuse(c, name,
			    "its schema changed otherwise than by ADD COLUMN");
		goto out;
	}
	alter = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %.*s", name,
				(int)def_len, def);
	if (alter == NULL) {
		rv = ra_oom(c);
		goto out;
	}
	rv = exec_one(c, name, alter);
	sqlite3_free(alter);
out:
	sqlite3_free(live);
	return rv;
}

/* SQLite's own objects (sqlite_sequence, sqlite_stat1..4, automatic
 * indexes): SQLite makes them itself, and refuses CREATE of the name. */
static int is_internal(const json_t *row)
{
	const char *name = ra_text_of(row, "name");

	return name != NULL && strncasecmp(name, "sqlite_", 7) == 0;
}

int ra_schema_apply(struct ra_call *c, const char *op, const json_t *before,
		    const json_t *after)
{
	if (strcmp(op, "insert") == 0)
		return is_internal(after) ? 0 : create_object(c, after);
	if (strcmp(op, "delete") == 0)
		return is_internal(before) ? 0 : drop_object(c, before);
	return is_internal(before) ? 0 : alter_object(c, before, after);
}

/* --- sqlite_sequence ---------------------------------------------------- */

int ra_merge_sequence(struct ra_call *c, const json_t *after)
{
	const json_t *name = json_object_get(after, "name");
	const json_t *seq = json_object_get(after, "seq");
	const char *table = "sqlite_sequence";
	sqlite3_stmt *st;
	int rv;

	if (name == NULL || seq == NULL) {
		errors_set(c->err, c->err_len,
			   "table %s: a row without name or seq", table);
		return 1;
	}
	rv = ra_prepare(c, table,
			"UPDATE sqlite_sequence SET seq = max(seq, ?2) "
			"WHERE name = ?1",
			&st);
	if (rv == 0)
		rv = ra_bind_value(c, table, st, 1, name);
	if (rv == 0)
		rv = ra_bind_value(c, table, st, 2, seq);
	if (rv == 0)
		rv = ra_run_write(c, table, st);
	if (rv != 0 || sqlite3_changes(c->db) > 0)
		return rv;
	rv = ra_prepare(c, table,
			"INSERT INTO sqlite_sequence(name, seq) "
			"VALUES (?1, ?2)",
			&st);
	if (rv == 0)
		rv = ra_bind_value(c, table, st, 1, name);
	if (rv == 0)
		rv = ra_bind_value(c, table, st, 2, seq);
	return rv == 0 ? ra_run_write(c, table, st) : rv;
}
