/* Re-applying a transaction's row changes with row-level last push wins
 * (sync/rebase_apply.h has the rules).  Every change looks its row up by
 * key in the database as it is, then writes the replica's version by
 * naming its columns, so that columns the primary added keep theirs.
 * Statements are prepared once per call and SQL text: a transaction's rows
 * of one table share them. */
#include "rebase_apply_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/errors.h"
#include "proto/values.h"

/* --- The rowid remap ---------------------------------------------------- */

/* (table, the replica's rowid) -> the rowid its row got on the primary:
 * an open-addressing hash (a run may re-insert many rows), at most half
 * full. */
struct rowid_entry {
	char *table; /* NULL: an empty slot */
	sqlite3_int64 from, to;
};

struct rowid_map {
	struct rowid_entry *e;
	size_t cap, n; /* cap: 0 or a power of two */
};

struct rebase_apply {
	struct rowid_map map;
};

static uint64_t rowid_hash(const char *table, sqlite3_int64 from)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *table != '\0'; table++)
		h = (h ^ (unsigned char)*table) * 1099511628211ull;
	h = (h ^ (uint64_t)from) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

/* The entry of (table, from), or the empty slot it would take. */
static struct rowid_entry *map_slot(const struct rowid_map *m,
				    const char *table, sqlite3_int64 from)
{
	size_t i = rowid_hash(table, from) & (m->cap - 1);

	while (m->e[i].table != NULL &&
	       (m->e[i].from != from || strcmp(m->e[i].table, table) != 0))
		i = (i + 1) & (m->cap - 1);
	return &m->e[i];
}

/* Room for n entries. */
static int map_reserve(struct rowid_map *m, size_t n)
{
	struct rowid_entry *old = m->e;
	size_t old_cap = m->cap, cap = m->cap ? m->cap : 64, i;

	if (2 * n <= m->cap)
		return 0;
	while (cap < 2 * n)
		cap *= 2;
	m->e = calloc(cap, sizeof *m->e);
	if (m->e == NULL) {
		m->e = old;
		return -1;
	}
	m->cap = cap;
	for (i = 0; i < old_cap; i++)
		if (old[i].table != NULL)
			*map_slot(m, old[i].table, old[i].from) = old[i];
	free(old);
	return 0;
}

static int map_get(const struct rowid_map *m, const char *table,
		   sqlite3_int64 from, sqlite3_int64 *to)
{
	const struct rowid_entry *e;

	if (m->n == 0)
		return 0;
	e = map_slot(m, table, from);
	if (e->table == NULL)
		return 0;
	*to = e->to;
	return 1;
}

/* Set an entry (room reserved); table is the map's now. */
static void map_set_owned(struct rowid_map *m, char *table, sqlite3_int64 from,
			  sqlite3_int64 to)
{
	struct rowid_entry *e = map_slot(m, table, from);

	if (e->table != NULL) {
		free(table);
	} else {
		e->table = table;
		e->from = from;
		m->n++;
	}
	e->to = to;
}

static int map_put(struct rowid_map *m, const char *table, sqlite3_int64 from,
		   sqlite3_int64 to)
{
	char *t;

	if (map_reserve(m, m->n + 1) != 0 || (t = strdup(table)) == NULL)
		return -1;
	map_set_owned(m, t, from, to);
	return 0;
}

/* Move src's entries into dst.  The only allocation comes first: dst gets
 * all of them or none (a failed call remembers nothing). */
static int map_merge(struct rowid_map *dst, struct rowid_map *src)
{
	size_t i;

	if (src->n == 0)
		return 0;
	if (map_reserve(dst, dst->n + src->n) != 0)
		return -1;
	for (i = 0; i < src->cap; i++)
		if (src->e[i].table != NULL) {
			map_set_owned(dst, src->e[i].table, src->e[i].from,
				      src->e[i].to);
			src->e[i].table = NULL;
		}
	src->n = 0;
	return 0;
}

static void map_free(struct rowid_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].table);
	free(m->e);
	memset(m, 0, sizeof *m);
}

struct rebase_apply *rebase_apply_new(void)
{
	return calloc(1, sizeof(struct rebase_apply));
}

void rebase_apply_free(struct rebase_apply *ra)
{
	if (ra == NULL)
		return;
	map_free(&ra->map);
	free(ra);
}

/* --- One call ----------------------------------------------------------- */

int ra_oom(struct ra_call *c)
{
	errors_set(c->err, c->err_len, "out of memory");
	return -1;
}

int ra_fail(struct ra_call *c, int rc, const char *table)
{
	int primary = rc & 0xff;

	errors_set(c->err, c->err_len, "table %s: %s", table,
		   sqlite3_errmsg(c->db));
	return primary == SQLITE_CONSTRAINT || primary == SQLITE_MISMATCH ||
		       primary == SQLITE_TOOBIG || primary == SQLITE_ERROR
		   ? 1
		   : -1;
}

int ra_prepare(struct ra_call *c, const char *table, const char *sql,
	       sqlite3_stmt **st)
{
	struct ra_stmt *s;
	size_t i;
	int rc;

	for (i = 0; i < c->n_stmts; i++)
		if (strcmp(c->stmts[i].sql, sql) == 0) {
			sqlite3_reset(c->stmts[i].st);
			sqlite3_clear_bindings(c->stmts[i].st);
			*st = c->stmts[i].st;
			return 0;
		}
	if (c->n_stmts == c->cap_stmts) {
		size_t cap = c->cap_stmts ? 2 * c->cap_stmts : 16;

		s = realloc(c->stmts, cap * sizeof *s);
		if (s == NULL)
			return ra_oom(c);
		c->stmts = s;
		c->cap_stmts = cap;
	}
	s = &c->stmts[c->n_stmts];
	s->sql = strdup(sql);
	if (s->sql == NULL)
		return ra_oom(c);
	rc = sqlite3_prepare_v2(c->db, sql, -1, &s->st, NULL);
	if (rc != SQLITE_OK) {
		free(s->sql);
		return ra_fail(c, rc, table);
	}
	c->n_stmts++;
	*st = s->st;
	return 0;
}

void ra_call_free(struct ra_call *c)
{
	size_t i;

	for (i = 0; i < c->n_stmts; i++) {
		sqlite3_finalize(c->stmts[i].st);
		free(c->stmts[i].sql);
	}
	free(c->stmts);
	for (i = 0; i < c->n_rowid_names; i++)
		free(c->rowid_names[i].table);
	free(c->rowid_names);
	ra_dropped_free(&c->dropped);
}

/* --- Changes ------------------------------------------------------------ */

static int malformed(struct ra_call *c, size_t i, const char *table,
		     const char *why)
{
	errors_set(c->err, c->err_len, "table %s: change %zu is malformed: %s",
		   table ? table : "?", i, why);
	return 1;
}

int ra_parse_change(struct ra_call *c, size_t i, const json_t *ch,
		    struct ra_change *out)
{
	const json_t *rowid;

	memset(out, 0, sizeof *out);
	out->table = json_string_value(json_object_get(ch, "table"));
	out->op_name = json_string_value(json_object_get(ch, "op"));
	if (out->table == NULL || out->op_name == NULL)
		return malformed(c, i, out->table, "no table or op");
	if (strcmp(out->op_name, "insert") == 0)
		out->op = RA_INSERT;
	else if (strcmp(out->op_name, "update") == 0)
		out->op = RA_UPDATE;
	else if (strcmp(out->op_name, "delete") == 0)
		out->op = RA_DELETE;
	else
		return malformed(c, i, out->table, "unknown op");
	out->key = json_object_get(ch, "key");
	out->before = json_object_get(ch, "before");
	out->after = json_object_get(ch, "after");
	if (!json_is_object(out->key) || json_object_size(out->key) == 0)
		return malformed(c, i, out->table, "no key");
	if (out->op != RA_INSERT && !json_is_object(out->before))
		return malformed(c, i, out->table, "no row before");
	if (out->op != RA_DELETE && !json_is_object(out->after))
		return malformed(c, i, out->table, "no row after");
	if (out->op == RA_INSERT)
		out->before = NULL;
	if (out->op == RA_DELETE)
		out->after = NULL;
	/* rowdiff writes the rowid as a JSON integer, never as a Hrana
	 * value: a column named rowid in a PRIMARY KEY is told apart. */
	rowid = json_object_get(out->key, "rowid");
	if (json_object_size(out->key) == 1 && json_is_integer(rowid)) {
		out->by_rowid = 1;
		out->rowid = json_integer_value(rowid);
	}
	return 0;
}

/* The row {"col": value} at the statement's columns. */
static json_t *row_json(sqlite3_stmt *st)
{
	json_t *row = json_object();
	int i, n = sqlite3_column_count(st);

	for (i = 0; row != NULL && i < n; i++)
		if (json_object_set_new(row, sqlite3_column_name(st, i),
					values_from_column(st, i)) != 0) {
			json_decref(row);
			row = NULL;
		}
	return row;
}

/* Column names are case-insensitive in SQL. */
static const json_t *column_of(const json_t *row, const char *name)
{
	const char *k;
	json_t *v = json_object_get(row, name);

	if (v != NULL)
		return v;
	json_object_foreach((json_t *)row, k, v)
	{
		if (strcasecmp(k, name) == 0)
			return v;
	}
	return NULL;
}

/* Whether the primary's row has the values of every column of want (the
 * columns it has beyond them are not looked at). */
static int row_has(const json_t *row, const json_t *want)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)want, k, v)
	{
		const json_t *have = column_of(row, k);

		if (have == NULL || !json_equal((json_t *)have, v))
			return 0;
	}
	return 1;
}

int ra_bind_value(struct ra_call *c, const char *table, sqlite3_stmt *st,
		  int idx, const json_t *v)
{
	const char *why = NULL;

	if (values_bind(st, idx, (json_t *)v, &why) == 0)
		return 0;
	if (why != NULL) {
		errors_set(c->err, c->err_len, "table %s: a value: %s", table,
			   why);
		return 1;
	}
	return ra_fail(c, sqlite3_errcode(c->db), table);
}

static void append_where(sqlite3_str *s, const struct ra_target *t, int first)
{
	const char *k, *sep = " WHERE ";
	json_t *v;

	if (t->rowid_name != NULL) {
		sqlite3_str_appendf(s, " WHERE %s = ?%d", t->rowid_name, first);
		return;
	}
	/* IS: a PRIMARY KEY column of a rowid table may hold NULL. */
	json_object_foreach((json_t *)t->key, k, v)
	{
		(void)v;
		sqlite3_str_appendf(s, "%s\"%w\" IS ?%d", sep, k, first++);
		sep = " AND ";
	}
}

static int bind_where(struct ra_call *c, sqlite3_stmt *st,
		      const struct ra_target *t, int first)
{
	const char *k;
	json_t *v;
	int rv;

	if (t->rowid_name != NULL)
		return sqlite3_bind_int64(st, first, t->rowid) == SQLITE_OK
			   ? 0
			   : ra_fail(c, sqlite3_errcode(c->db), t->table);
	json_object_foreach((json_t *)t->key, k, v)
	{
		(void)k;
		rv = ra_bind_value(c, t->table, st, first++, v);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Prepare the SQL s built (consumed). */
static int prepare_built(struct ra_call *c, const char *table, sqlite3_str *s,
			 sqlite3_stmt **st)
{
	char *sql = sqlite3_str_finish(s);
	int rv;

	if (sql == NULL)
		return ra_oom(c);
	rv = ra_prepare(c, table, sql, st);
	sqlite3_free(sql);
	return rv;
}

int ra_run_write(struct ra_call *c, const char *table, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st), rv = 0;

	if (rc != SQLITE_DONE)
		rv = ra_fail(c, rc, table);
	sqlite3_reset(st);
	return rv;
}

/* The primary's row at t, all its columns (NULL in *row: none). */
int ra_lookup(struct ra_call *c, const struct ra_target *t, json_t **row)
{
	sqlite3_str *s = sqlite3_str_new(c->db);
	sqlite3_stmt *st;
	int rc, rv;

	*row = NULL;
	sqlite3_str_appendf(s, "SELECT * FROM \"%w\"", t->table);
	append_where(s, t, 1);
	rv = prepare_built(c, t->table, s, &st);
	if (rv == 0)
		rv = bind_where(c, st, t, 1);
	if (rv != 0)
		return rv;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (*row = row_json(st)) == NULL)
		rv = ra_oom(c);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		rv = ra_fail(c, rc, t->table);
	sqlite3_reset(st);
	return rv;
}

/* Insert the replica's row; by rowid at t->rowid, or where SQLite puts it
 * with any_rowid (*rowid then says where). */
static int insert_row(struct ra_call *c, const struct ra_target *t,
		      const json_t *row, int any_rowid, sqlite3_int64 *rowid)
{
	sqlite3_str *s = sqlite3_str_new(c->db);
	sqlite3_stmt *st;
	const char *k;
	json_t *v;
	int i = 1, rv;

	sqlite3_str_appendf(s, "INSERT INTO \"%w\"(", t->table);
	json_object_foreach((json_t *)row, k, v)
	{
		sqlite3_str_appendf(s, "%s\"%w\"", i++ > 1 ? ", " : "", k);
	}
	if (t->rowid_name != NULL)
		sqlite3_str_appendf(s, "%s%s", i++ > 1 ? ", " : "",
				    t->rowid_name);
	sqlite3_str_appendall(s, ") VALUES (");
	for (int p = 1; p < i; p++)
		sqlite3_str_appendf(s, "%s?%d", p > 1 ? ", " : "", p);
	sqlite3_str_appendall(s, ")");
	rv = prepare_built(c, t->table, s, &st);
	i = 1;
	json_object_foreach((json_t *)row, k, v)
	{
		if (rv == 0)
			rv = ra_bind_value(c, t->table, st, i++, v);
	}
	if (rv == 0 && t->rowid_name != NULL && !any_rowid)
		rv = bind_where(c, st, t, i);
	if (rv == 0)
		rv = ra_run_write(c, t->table, st);
	if (rv == 0 && rowid != NULL)
		*rowid = sqlite3_last_insert_rowid(c->db);
	return rv;
}

static int update_row(struct ra_call *c, const struct ra_target *t,
		      const json_t *row)
{
	sqlite3_str *s = sqlite3_str_new(c->db);
	sqlite3_stmt *st;
	const char *k;
	json_t *v;
	int i = 1, rv;

	sqlite3_str_appendf(s, "UPDATE \"%w\" SET ", t->table);
	json_object_foreach((json_t *)row, k, v)
	{
		sqlite3_str_appendf(s, "%s\"%w\" = ?%d", i > 1 ? ", " : "", k,
				    i);
		i++;
	}
	append_where(s, t, i);
	rv = prepare_built(c, t->table, s, &st);
	i = 1;
	json_object_foreach((json_t *)row, k, v)
	{
		if (rv == 0)
			rv = ra_bind_value(c, t->table, st, i++, v);
	}
	if (rv == 0)
		rv = bind_where(c, st, t, i);
	return rv == 0 ? ra_run_write(c, t->table, st) : rv;
}

static int delete_row(struct ra_call *c, const struct ra_target *t)
{
	sqlite3_str *s = sqlite3_str_new(c->db);
	sqlite3_stmt *st;
	int rv;

	sqlite3_str_appendf(s, "DELETE FROM \"%w\"", t->table);
	append_where(s, t, 1);
	rv = prepare_built(c, t->table, s, &st);
	if (rv == 0)
		rv = bind_where(c, st, t, 1);
	return rv == 0 ? ra_run_write(c, t->table, st) : rv;
}

/* The primary's row differed from the replica's: {"table", "key",
 * "replica", "primary", "resolution"}. */
static int add_conflict(struct ra_call *c, json_t *conflicts,
			const struct ra_change *ch, const json_t *primary)
{
	json_t *e;

	if (conflicts == NULL)
		return 0;
	e = json_pack("{s:s, s:o, s:o?, s:o?, s:s}", "table", ch->table, "key",
		      json_deep_copy(ch->key), "replica",
		      ch->after ? json_deep_copy(ch->after) : NULL, "primary",
		      primary ? json_deep_copy(primary) : NULL, "resolution",
		      "replica");
	if (e == NULL || json_array_append_new(conflicts, e) != 0)
		return ra_oom(c);
	return 0;
}

/* --- The rules ---------------------------------------------------------- */

static int apply_insert(struct ra_call *c, const struct ra_change *ch,
			const struct ra_target *t, json_t *conflicts)
{
	json_t *row;
	int rv = ra_lookup(c, t, &row);

	if (rv != 0)
		return rv;
	if (row == NULL) {
		rv = insert_row(c, t, ch->after, 0, NULL);
	} else if (!row_has(row, ch->after)) {
		rv = update_row(c, t, ch->after);
		if (rv == 0)
			rv = add_conflict(c, conflicts, ch, row);
	}
	json_decref(row);
	return rv;
}

/* A table without a declared PRIMARY KEY: the rowid is SQLite's, not the
 * application's, so a taken one means another row, never this one: the
 * row goes elsewhere, and staged remembers where. */
static int apply_rowid_insert(struct rebase_apply *ra, struct ra_call *c,
			      struct rowid_map *staged,
			      const struct ra_change *ch, struct ra_target *t)
{
	sqlite3_int64 got, old;
	json_t *row;
	int rv;

	t->rowid = ch->rowid;
	rv = ra_lookup(c, t, &row);
	if (rv != 0)
		return rv;
	rv = insert_row(c, t, ch->after, row != NULL, &got);
	json_decref(row);
	if (rv != 0)
		return rv;
	/* A rowid kept needs remembering only over an older remap of it (a
	 * row of an earlier transaction, deleted since). */
	if (got != ch->rowid || map_get(staged, ch->table, ch->rowid, &old) ||
	    map_get(&ra->map, ch->table, ch->rowid, &old)) {
		if (map_put(staged, ch->table, ch->rowid, got) != 0)
			return ra_oom(c);
	}
	return 0;
}

static int apply_update(struct ra_call *c, const struct ra_change *ch,
			const struct ra_target *t, json_t *conflicts)
{
	json_t *row;
	int rv = ra_lookup(c, t, &row);

	if (rv != 0)
		return rv;
	if (row == NULL)
		rv = insert_row(c, t, ch->after, 0, NULL);
	else
		rv = update_row(c, t, ch->after);
	/* The primary made the same change: no conflict. */
	if (rv == 0 && (row == NULL || (!row_has(row, ch->before) &&
					!row_has(row, ch->after))))
		rv = add_conflict(c, conflicts, ch, row);
	json_decref(row);
	return rv;
}

static int apply_delete(struct ra_call *c, const struct ra_change *ch,
			const struct ra_target *t, json_t *conflicts)
{
	json_t *row;
	int rv = ra_lookup(c, t, &row);

	if (rv != 0 || row == NULL)
		return rv;
	rv = delete_row(c, t);
	if (rv == 0 && !row_has(row, ch->before))
		rv = add_conflict(c, conflicts, ch, row);
	json_decref(row);
	return rv;
}

/* The change's row after, keyed by the after's own key columns. */
static json_t *key_after(const struct ra_change *ch)
{
	json_t *key = json_object(), *v;
	const char *k;

	json_object_foreach((json_t *)ch->key, k, v)
	{
		const json_t *a = column_of(ch->after, k);

		if (key == NULL || a == NULL ||
		    json_object_set(key, k, (json_t *)a) != 0) {
			json_decref(key);
			return NULL;
		}
	}
	return key;
}

static int apply_change(struct rebase_apply *ra, struct ra_call *c,
			struct rowid_map *staged, struct ra_change *ch,
			json_t *conflicts)
{
	struct ra_target t = {.table = ch->table, .key = ch->key};
	json_t *own_key = NULL;
	int d, rv;

	if (strcmp(ch->table, "sqlite_schema") == 0)
		return ra_schema_apply(c, ch->op_name, ch->before, ch->after);
	if (strncmp(ch->table, "sqlite_stat", 11) == 0)
		return 0; /* ANALYZE's advice, not data */
	/* A deleted sqlite_sequence row is not re-applied: SQLite deletes a
	 * table's row with the table. */
	if (strcmp(ch->table, "sqlite_sequence") == 0)
		return ch->op == RA_DELETE ? 0
					   : ra_merge_sequence(c, ch->after);
	/* A table the transaction dropped: its rows went with it.  One it
	 * created again is another table: its rows before are gone, and its
	 * rows after are new rows. */
	d = ra_dropped_find(&c->dropped, ch->table);
	if (d >= 0 && (!c->dropped.recreated[d] || ch->op == RA_DELETE))
		return 0;
	if (d >= 0 && ch->op == RA_UPDATE) {
		ch->op = RA_INSERT;
		ch->before = NULL;
		if (!ch->by_rowid) {
			own_key = key_after(ch);
			if (own_key == NULL) {
				errors_set(c->err, c->err_len,
					   "table %s: a row's key is not in "
					   "its row after",
					   ch->table);
				return 1;
			}
			ch->key = t.key = own_key;
		}
	}
	if (ch->by_rowid) {
		rv = ra_rowid_name(c, ch->table, &t.rowid_name);
		if (rv != 0)
			goto out;
		if (ch->op == RA_INSERT) {
			rv = apply_rowid_insert(ra, c, staged, ch, &t);
			goto out;
		}
		/* A row re-inserted by this run is where it was put. */
		if (!map_get(staged, ch->table, ch->rowid, &t.rowid) &&
		    !map_get(&ra->map, ch->table, ch->rowid, &t.rowid))
			t.rowid = ch->rowid;
	}
	switch (ch->op) {
	case RA_INSERT:
		rv = apply_insert(c, ch, &t, conflicts);
		break;
	case RA_UPDATE:
		rv = apply_update(c, ch, &t, conflicts);
		break;
	default:
		rv = apply_delete(c, ch, &t, conflicts);
		break;
	}
out:
	json_decref(own_key);
	return rv;
}

int rebase_apply_txn(struct rebase_apply *ra, sqlite3 *db,
		     const json_t *changes, json_t *conflicts, char *err,
		     size_t err_len)
{
	struct ra_call c = {.db = db, .err = err, .err_len = err_len};
	struct rowid_map staged = {0};
	struct ra_change ch;
	json_t *one;
	size_t i;
	int rv = 0;

	if (!json_is_array(changes)) {
		errors_set(err, err_len, "the changes are not a JSON array");
		return 1;
	}
	if (ra_schema_scan(&c, changes) != 0) {
		rv = -1;
		goto cleanup;
	}
	json_array_foreach(changes, i, one)
	{
		rv = ra_parse_change(&c, i, one, &ch);
		if (rv == 0)
			rv = apply_change(ra, &c, &staged, &ch, conflicts);
		if (rv != 0)
			goto cleanup;
	}
	/* Only now: after 1 or -1 the caller rolls back, and the rowids
	 * staged name rows that are no more. */
	if (map_merge(&ra->map, &staged) != 0)
		rv = ra_oom(&c);
cleanup:
	map_free(&staged);
	ra_call_free(&c);
	return rv;
}
