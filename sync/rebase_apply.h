/* Re-applying one local transaction's row changes on top of the primary's
 * newer state: the heart of the offline replica's conflict=rebase
 * (docs/architecture.md "Offline writes").  The changes are those
 * sync/rowdiff.h computed from the transaction's pages, as JSON (they are
 * kept in the rebase plan file between the drop of the local transactions
 * and their re-application):
 *
 *   {"table": "t", "op": "insert" | "update" | "delete",
 *    "key": {...}, "before": {...} | null, "after": {...} | null}
 *
 * with rowdiff's keys ({"rowid": n} for a table without a declared PRIMARY
 * KEY, else the PRIMARY KEY's columns) and Hrana values (proto/values.h).
 * Schema changes come first, as rows of table "sqlite_schema" (columns
 * type, name, tbl_name, rootpage, sql).
 *
 * The semantics are row-level last push wins, as Turso documents it: a row
 * the replica changed gets the replica's version, a row it deleted is
 * deleted, and rows it did not touch keep the primary's version.  Per
 * change, looking the row up by its key in the database as it is now:
 *
 * - insert: no row with the key: insert it.  A row with the key and the
 *   replica's values: nothing.  A row with other values: it gets the
 *   replica's values (a conflict).  In a table without a declared PRIMARY
 *   KEY the rowid is not a key the application chose: the row keeps its
 *   rowid when that is free, else gets a new one, and later changes of the
 *   same run to that rowid follow it (struct rebase_apply remembers).
 * - update: the row as the replica had it before: it gets the replica's
 *   values after.  A row that already has the values after (the primary
 *   made the same change): the same, no conflict.  Another row: likewise,
 *   a conflict.  No row (the primary deleted it): it is inserted with the
 * replica's values, a conflict.
 * - delete: the row as the replica had it: deleted.  Another row: deleted,
 *   a conflict.  No row: nothing.
 *
 * "The row as the replica had it" compares the columns of the replica's
 * "before" only (a column the primary added since is not looked at), as
 * values (json_equal on the Hrana values).  Writes name their columns, so
 * a column the primary added keeps its default or its value.
 *
 * Schema rows: a created object (insert) is created with its sql unless an
 * object of that name exists (same sql: nothing; other sql: the
 * transaction cannot be re-applied); an object without sql (an automatic
 * index) is skipped.  A dropped object (delete) is dropped if it exists.
 * A changed object (update) whose sql is unchanged (only rootpage moved) is
 * nothing; one whose sql changed as ALTER TABLE ... ADD COLUMN changes it
 * (", <column definition>" inserted) gets that ALTER TABLE, unless the
 * primary's sql already is the replica's after; any other change of sql
 * cannot be re-applied.  Objects named sqlite_* (sqlite_sequence,
 * sqlite_stat1..4, automatic indexes) are skipped: SQLite makes them
 * itself, and refuses a CREATE of such a name.  Row changes of a table the
 * same transaction dropped are skipped; when it created the table again,
 * only its deletes are (its updates are inserts into the new table).
 * sqlite_sequence rows are merged by name (the larger seq wins; a deleted
 * one is not re-applied: it goes with its table); sqlite_stat1..4 rows are
 * skipped (ANALYZE's advice, not data).
 *
 * A transaction "cannot be re-applied" when a statement fails with
 * SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG or SQLITE_ERROR (no
 * such table or column: the primary dropped or renamed it), a schema
 * change conflicts as above, or a change is malformed.  The caller then
 * rolls the transaction back, records it as skipped, and goes on with the
 * next. */
#ifndef REPLITE_SYNC_REBASE_APPLY_H
#define REPLITE_SYNC_REBASE_APPLY_H

#include <stddef.h>

#include <jansson.h>

#include "base/sqlite_api.h"

/* One rebase run: the rowids given to re-inserted rows of tables without a
 * declared PRIMARY KEY, so that later transactions of the run find them. */
struct rebase_apply;

struct rebase_apply *rebase_apply_new(void);
void rebase_apply_free(struct rebase_apply *ra);

/* Apply changes (a JSON array as above, in order) on db, inside the write
 * transaction the caller began (BEGIN IMMEDIATE; the caller commits or
 * rolls back).  Triggers are the caller's business (it disables them: the
 * rows they changed are in the changes already).
 *
 * For each row where the primary's row differed from what the replica had,
 * appends to conflicts (a JSON array) {"table", "key", "replica",
 * "primary", "resolution": "replica"}: "replica" is the replica's row
 * after (null for a delete), "primary" the primary's row before the change
 * (all its columns, null when it had none).
 *
 * Returns 0 (applied), 1 (cannot be re-applied: err says why, naming the
 * table and the cause; conflicts may hold entries the caller discards), or
 * -1 (an error that is not the transaction's: I/O, out of memory, busy;
 * err names it).  After 1 or -1 the caller rolls back, and nothing of the
 * call is remembered in ra. */
int rebase_apply_txn(struct rebase_apply *ra, sqlite3 *db,
		     const json_t *changes, json_t *conflicts, char *err,
		     size_t err_len);

/* conflict=discard: the changes of a dropped transaction are not applied;
 * appends to out, per row change, {"table", "key", "replica" (the row
 * after, null for a delete), "primary" (the primary's row now, null if
 * none, or for a schema row or a table the primary no longer has),
 * "resolution": "discarded"}.  Returns 0, or -1 with err (I/O, out of
 * memory). */
int rebase_apply_describe(sqlite3 *db, const json_t *changes, json_t *out,
			  char *err, size_t err_len);

#endif
