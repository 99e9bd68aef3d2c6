/* Shared by rebase_apply.c (the row changes, the rowid remap) and
 * rebase_apply_schema.c (the schema changes): one call's connection, its
 * error buffer and the statements it prepared. */
#ifndef REPLITE_SYNC_REBASE_APPLY_INTERNAL_H
#define REPLITE_SYNC_REBASE_APPLY_INTERNAL_H

#include "rebase_apply.h"

/* A statement prepared once per call and reused for every row with the
 * same SQL (a transaction's rows of one table share their statements). */
struct ra_stmt {
	char *sql;
	sqlite3_stmt *st;
};

/* The tables the transaction drops, and which of them it creates again. */
struct ra_dropped {
	char **names;
	int *recreated;
	size_t n;
};

enum ra_op { RA_INSERT, RA_UPDATE, RA_DELETE };

struct ra_change {
	const char *table, *op_name;
	enum ra_op op;
	const json_t *key, *before, *after;
	/* keyed {"rowid": n}: a table without a declared PRIMARY KEY */
	int by_rowid;
	sqlite3_int64 rowid; /* the replica's */
};

/* Where a change's row is on the primary: by rowid (rowid_name set) or by
 * the PRIMARY KEY's values (key). */
struct ra_target {
	const char *table;
	const json_t *key;
	const char *rowid_name;
	sqlite3_int64 rowid;
};

/* One call of rebase_apply_txn. */
struct ra_call {
	sqlite3 *db;
	char *err;
	size_t err_len;
	struct ra_stmt *stmts;
	size_t n_stmts, cap_stmts;
	/* per table name: which of rowid, _rowid_, oid names the rowid */
	struct ra_rowid_name {
		char *table;
		const char *name;
	} * rowid_names;
	size_t n_rowid_names;
	struct ra_dropped dropped;
};

/* A failed SQLite call (rc) on table: err names the table and SQLite's
 * message.  Returns 1 for the failures that are the transaction's (the
 * header's list), else -1. */
int ra_fail(struct ra_call *c, int rc, const char *table);

/* "out of memory" in err; returns -1. */
int ra_oom(struct ra_call *c);

/* The cached statement for sql (reset, bindings cleared).  Returns 0, or
 * 1 / -1 as ra_fail. */
int ra_prepare(struct ra_call *c, const char *table, const char *sql,
	       sqlite3_stmt **st);

/* Bind a Hrana value (a malformed one: 1 with err).  Returns 0, 1 or
 * -1. */
int ra_bind_value(struct ra_call *c, const char *table, sqlite3_stmt *st,
		  int idx, const json_t *v);

/* Step a write to its end and reset it (a statement left pending would
 * hold its table against a later DROP).  Returns 0, 1 or -1. */
int ra_run_write(struct ra_call *c, const char *table, sqlite3_stmt *st);

/* The text of column col of a row {"col": Hrana value}: NULL when it is
 * missing, null, or not text. */
const char *ra_text_of(const json_t *row, const char *col);

/* Which of rowid, _rowid_, oid names the rowid of table (a column may
 * take the name), found in the live table.  Returns 0, 1 (all three are
 * columns, or as ra_fail) or -1. */
int ra_rowid_name(struct ra_call *c, const char *table, const char **name);

/* Which tables the changes drop (sqlite_schema deletes of type table), and
 * which of those they create again.  Returns 0 or -1 (out of memory). */
int ra_schema_scan(struct ra_call *c, const json_t *changes);
void ra_dropped_free(struct ra_dropped *d);

/* The index of table among the dropped (names compare as SQL's do), or
 * -1. */
int ra_dropped_find(const struct ra_dropped *d, const char *table);

/* Apply one change of table sqlite_schema ("insert", "update" or
 * "delete").  Returns 0, 1 or -1. */
int ra_schema_apply(struct ra_call *c, const char *op, const json_t *before,
		    const json_t *after);

/* Merge a row of sqlite_sequence (after, {"name", "seq"}): the larger
 * seq wins, so that neither side's AUTOINCREMENT values are given out
 * again.  Returns 0, 1 or -1. */
int ra_merge_sequence(struct ra_call *c, const json_t *after);

/* Whether after is before with ", <column definition>" inserted, as
 * ALTER TABLE ... ADD COLUMN changes a table's sql: then *def and *def_len
 * are the definition (inside after) and 1 is returned, else 0. */
int ra_added_column(const char *before, const char *after, const char **def,
		    size_t *def_len);

/* Release what a call prepared. */
void ra_call_free(struct ra_call *c);
/* Change i of a transaction, checked: 0, or 1 with err (malformed). */
int ra_parse_change(struct ra_call *c, size_t i, const json_t *ch,
		    struct ra_change *out);
/* The primary's row at t now (*row NULL when there is none): 0, 1 (the
 * table or a column is gone) or -1, with err. */
int ra_lookup(struct ra_call *c, const struct ra_target *t, json_t **row);

#endif
