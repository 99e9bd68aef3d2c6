/* conflict=rebase, the replica's part (docs/architecture.md "Offline
 * writes"): the sync thread re-applies the entries of the rebase plan
 * (sync/rebase_plan.h), oldest first, all in ONE new local transaction
 * whose outbox record gets the id rebase_plan_reapplied_id derives from the
 * first entry's, and pushes it like any other once the plan is removed.
 * One transaction: the local commits come back in one publication (a
 * reader never sees half of them), with one fsync and one push for all;
 * each entry has a savepoint of its own, so one that cannot be re-applied
 * is rolled back alone, recorded, and the next goes on.
 *
 * The re-application writes through SQL on a connection of its own, opened
 * through a private observer VFS (wal/wal_observer.h) whose commit hook
 * appends the outbox record with that id: the same path as an
 * application's offline commit, so the record holds the pages and old
 * images SQLite wrote, checksums included.  The hooks are those of the
 * replica VFS's offline commit, minus the begin-write checks (the sync
 * thread is the one that other writers wait for).
 *
 * Under the write lock the plan is checked to still exist (another process
 * may have finished it) and the outbox to lack its transaction (committed
 * before a crash, or by another process; then the plan is removed): both
 * facts are stable while the lock is held, and pushes, the only thing
 * that empties the outbox, wait while a plan exists.  The conflict records
 * are appended before the commit: a crash in between re-applies the plan,
 * and records nothing twice (by transaction id). */
#include "replica_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/errors.h"
#include "sync/conflicts.h"
#include "sync/outbox.h"
#include "sync/rebase_apply.h"
#include "sync/rebase_plan.h"
#include "wal/wal_observer.h"

/* ---------------------------------------------------------------------- */
/* the private VFS: an offline commit with a given id */

static int rb_open_main(void *arg, sqlite3_filename name, void **ctx,
			char **errmsg)
{
	(void)name;
	(void)errmsg;
	*ctx = arg;
	return SQLITE_OK;
}

static int rb_commit(void *arg, void *ctx, const char *main_path,
		     const struct wal_page *pages, size_t n_pages,
		     uint32_t db_size)
{
	struct replica *r = arg;

	(void)ctx;
	(void)main_path;
	/* Only the re-application writes through this VFS. */
	if (!r->rebase_committing)
		return SQLITE_READONLY;
	return replica_offline_commit(r, pages, n_pages, db_size, r->rebase_id);
}

static void rb_before_write_unlock(void *arg, void *ctx, int committed,
				   int published,
				   const struct wal_position *pos)
{
	(void)ctx;
	(void)committed;
	(void)pos;
	replica_offline_unlocking(arg, published);
}

static int rb_before_wal_sync(void *arg, void *ctx)
{
	(void)ctx;
	return replica_offline_wal_sync(arg);
}

static int open_connection(struct replica *r, sqlite3 **out, char *err,
			   size_t err_len)
{
	struct wal_observer_hooks hooks = {0};
	char name[64];
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	snprintf(name, sizeof name, "replite-rebase-%p", (void *)r);
	if (r->rebase_vfs == NULL) {
		hooks.arg = r;
		hooks.on_open_main = rb_open_main;
		hooks.on_commit = rb_commit;
		hooks.before_write_unlock = rb_before_write_unlock;
		hooks.before_wal_sync = rb_before_wal_sync;
		/* An encrypted replica's pages are read and written through
		 * its cipher VFS, as the replica's own connections do. */
		rc = r->cipher_vfs != NULL
			 ? wal_observer_register_over(
			       name, &hooks, r->cipher_vfs, &r->rebase_vfs)
			 : wal_observer_register(name, &hooks, &r->rebase_vfs);
		if (rc != SQLITE_OK) {
			errors_set(err, err_len,
				   "cannot register the rebase VFS: %s",
				   sqlite3_errstr(rc));
			return -1;
		}
	}
	rc = sqlite3_open_v2(r->db_path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
			     name);
	if (rc == SQLITE_OK) {
		/* The rows triggers changed are in the plan already. */
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0,
				       (int *)NULL);
	}
	/* The re-applied transaction replaces a local commit that was
	 * durable: so is it, outbox record first. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL,
				  NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot open %s to re-apply local transactions: %s",
			   r->db_path,
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return -1;
	}
	*out = db;
	return 0;
}

void replica_rebase_close(struct replica *r)
{
	if (r->rebase_vfs != NULL)
		wal_observer_unregister(r->rebase_vfs);
	r->rebase_vfs = NULL;
}

/* ---------------------------------------------------------------------- */
/* conflict records */

/* Append each record of rows (conflict objects without the transaction's
 * fields), completed with them, unless txn is recorded already. */
static int record_rows(struct replica *r, json_t *recorded, const char *txn,
		       const json_t *entry, json_t *rows, char *err,
		       size_t err_len)
{
	json_t *committed = json_object_get(entry, "committed_unix_ms"), *rec;
	int64_t now = clock_unix_ms();
	size_t i;

	if (json_array_size(rows) == 0 || json_object_get(recorded, txn))
		return 0;
	json_array_foreach(rows, i, rec)
	{
		if (json_object_set_new(rec, "txn", json_string(txn)) != 0 ||
		    json_object_set(rec, "committed_unix_ms",
				    committed ? committed : json_null()) != 0 ||
		    json_object_set_new(rec, "unix_ms",
					json_integer((json_int_t)now)) != 0) {
			errors_set(err, err_len, "out of memory");
			return -1;
		}
	}
	/* All in one write: a crash records all of them or, but for a torn
	 * last line, none. */
	if (conflicts_append(r->db_path, r->cipher, rows, err, err_len) != 0)
		return -1;
	return json_object_set_new(recorded, txn, json_true());
}

/* A transaction that cannot be re-applied: a record per row it changed,
 * resolution "skipped", with the reason. */
static int record_skipped(struct replica *r, json_t *recorded, const char *txn,
			  const json_t *entry, const char *reason, char *err,
			  size_t err_len)
{
	json_t *rows = json_array(), *c, *rec;
	size_t i;
	int rv;

	json_array_foreach(json_object_get(entry, "changes"), i, c)
	{
		rec = json_pack("{s:O, s:O, s:O, s:n, s:s, s:s}", "table",
				json_object_get(c, "table"), "key",
				json_object_get(c, "key"), "replica",
				json_object_get(c, "after"), "primary",
				"resolution", "skipped", "reason", reason);
		if (rec == NULL || json_array_append_new(rows, rec) != 0)
			goto oom;
	}
	if (json_array_size(rows) == 0) {
		rec = json_pack("{s:n, s:n, s:n, s:n, s:s, s:s}", "table",
				"key", "replica", "primary", "resolution",
				"skipped", "reason", reason);
		if (rec == NULL || json_array_append_new(rows, rec) != 0)
			goto oom;
	}
	if (!json_object_get(recorded, txn))
		sqlite3_log(SQLITE_WARNING,
			    "replite: %s: local transaction %s is not "
			    "re-applied: %s",
			    r->db_path, txn, reason);
	rv = record_rows(r, recorded, txn, entry, rows, err, err_len);
	json_decref(rows);
	return rv;
oom:
	json_decref(rows);
	errors_set(err, err_len, "out of memory");
	return -1;
}

/* conflict=discard: a record per row the transaction changed, with the
 * primary's row now and the reason it was dropped. */
static int record_discarded(struct replica *r, sqlite3 *db, json_t *recorded,
			    const char *txn, const json_t *entry, char *err,
			    size_t err_len)
{
	const char *reason =
	    json_string_value(json_object_get(entry, "reason"));
	json_t *rows = json_array(), *rec;
	size_t i;
	int rv = -1;

	if (rows == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	if (json_object_get(recorded, txn) != NULL) {
		json_decref(rows);
		return 0;
	}
	if (rebase_apply_describe(db, json_object_get(entry, "changes"), rows,
				  err, err_len) != 0)
		goto out;
	json_array_foreach(rows, i, rec)
	{
		if (json_object_set_new(rec, "reason",
					json_string(reason ? reason : "")) !=
		    0) {
			errors_set(err, err_len, "out of memory");
			goto out;
		}
	}
	sqlite3_log(SQLITE_WARNING,
		    "replite: %s: local transaction %s dropped: %s", r->db_path,
		    txn, reason ? reason : "");
	rv = record_rows(r, recorded, txn, entry, rows, err, err_len);
out:
	json_decref(rows);
	return rv;
}

/* ---------------------------------------------------------------------- */
/* re-application */

static int exec(sqlite3 *db, const char *sql, const char *what, char *err,
		size_t err_len)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		errors_set(err, err_len, "%s: %s", what, sqlite3_errmsg(db));
	return rc == SQLITE_OK ? 0 : -1;
}

/* Re-apply one plan entry inside the plan's transaction, in a savepoint
 * of its own: a transaction that cannot be re-applied is rolled back alone,
 * recorded, and the next goes on.  Returns 0, or -1 with err. */
static int reapply_entry(struct replica *r, sqlite3 *db,
			 struct rebase_apply *ra, json_t *recorded,
			 const json_t *entry, char *err, size_t err_len)
{
	const char *txn = json_string_value(json_object_get(entry, "id"));
	const char *failed = json_string_value(json_object_get(entry, "error"));
	json_t *rows = json_array();
	char why[1024];
	int rv = -1;

	if (rows == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	if (txn == NULL)
		txn = "";
	if (failed != NULL) {
		snprintf(why, sizeof why,
			 "its row changes could not be computed: %s", failed);
		rv = record_skipped(r, recorded, txn, entry, why, err, err_len);
		goto out;
	}
	if (json_is_true(json_object_get(entry, "discard"))) {
		rv =
		    record_discarded(r, db, recorded, txn, entry, err, err_len);
		goto out;
	}
	if (exec(db, "SAVEPOINT entry", "cannot re-apply", err, err_len) != 0)
		goto out;
	switch (rebase_apply_txn(ra, db, json_object_get(entry, "changes"),
				 rows, why, sizeof why)) {
	case 0:
		rv = exec(db, "RELEASE entry", "cannot re-apply", err, err_len);
		if (rv == 0)
			rv = record_rows(r, recorded, txn, entry, rows, err,
					 err_len);
		break;
	case 1:
		rv = exec(db, "ROLLBACK TO entry; RELEASE entry",
			  "cannot re-apply", err, err_len);
		if (rv == 0)
			rv = record_skipped(r, recorded, txn, entry, why, err,
					    err_len);
		break;
	default:
		errors_set(err, err_len,
			   "cannot re-apply local transaction %s: %s", txn,
			   why);
		break;
	}
out:
	json_decref(rows);
	return rv;
}

/* Under the write lock: the plan's transaction is done when the outbox
 * holds it (before a crash, or by another process), or when nothing of it
 * was left to write; then the plan goes.  Returns 1 (gone or removed), 0
 * (to be re-applied), or -1 with err. */
static int plan_done(struct replica *r, int wrote_nothing, char *err,
		     size_t err_len)
{
	int has;

	if (!rebase_plan_exists(r->db_path))
		return 1;
	has = wrote_nothing
		  ? 1
		  : applier_outbox_has(r->applier, r->rebase_id, err, err_len);
	if (has <= 0)
		return has;
	return rebase_plan_remove(r->db_path, err, err_len) == 0 ? 1 : -1;
}

/* The id of the plan's transaction: derived from its first entry's. */
static int plan_txn_id(struct replica *r, const json_t *plan, char *err,
		       size_t err_len)
{
	const char *first =
	    json_string_value(json_object_get(json_array_get(plan, 0), "id"));
	uint8_t id[16];

	if (rebase_plan_parse_id(first, id) != 0) {
		errors_set(err, err_len,
			   "the rebase plan of %s has an entry without a "
			   "transaction id",
			   r->db_path);
		return -1;
	}
	rebase_plan_reapplied_id(id, r->rebase_id);
	return 0;
}

/* Re-apply every entry as one transaction: the local commits come back in
 * one publication, with one outbox record (and one push) for all. */
static int reapply_plan(struct replica *r, sqlite3 *db, const json_t *plan,
			char *err, size_t err_len)
{
	struct rebase_apply *ra = NULL;
	json_t *recorded = NULL, *entry;
	size_t i;
	int rv = -1, done;

	if (plan_txn_id(r, plan, err, err_len) != 0 ||
	    applier_lock_begin_on(r->applier, db, err, err_len) != 0)
		return -1;
	done = plan_done(r, 0, err, err_len);
	if (done != 0) {
		rv = done > 0 ? 0 : -1;
		goto rollback;
	}
	/* Planned, but the drop was cut short: the pull does it first. */
	done = applier_rebase_dropped(r->applier, plan, err, err_len);
	if (done <= 0) {
		rv = done;
		goto rollback;
	}
	recorded = conflicts_txn_ids(r->db_path, r->cipher, err, err_len);
	ra = rebase_apply_new();
	if (recorded == NULL || ra == NULL) {
		if (ra == NULL)
			errors_set(err, err_len, "out of memory");
		goto rollback;
	}
	json_array_foreach(plan, i, entry)
	{
		if (reapply_entry(r, db, ra, recorded, entry, err, err_len) !=
		    0)
			goto rollback;
	}
	/* Conflict records first (written above): a crash before the
	 * commit re-applies the plan and records nothing twice. */
	r->rebase_committing = 1;
	rv = exec(db, "COMMIT", "cannot commit the re-applied transactions",
		  err, err_len);
	r->rebase_committing = 0;
	if (rv != 0)
		goto rollback;
	rebase_apply_free(ra);
	json_decref(recorded);
	if (applier_lock_begin_on(r->applier, db, err, err_len) != 0)
		return -1;
	done = plan_done(r, !r->rebase_wrote, err, err_len);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (done < 0)
		return -1;
	sqlite3_log(SQLITE_NOTICE,
		    "replite: %s: %llu local transactions re-applied on the "
		    "primary's state",
		    r->db_path, (unsigned long long)json_array_size(plan));
	return 0;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	rebase_apply_free(ra);
	json_decref(recorded);
	return rv;
}

int replica_rebase_pending(struct replica *r, char *err, size_t err_len)
{
	json_t *plan = NULL;
	sqlite3 *db = NULL;
	int rv = -1;

	if (!rebase_plan_exists(r->db_path))
		return 0;
	if (rebase_plan_read(r->db_path, r->cipher, &plan, err, err_len) != 0)
		goto out;
	if (json_array_size(plan) == 0) {
		rv = rebase_plan_remove(r->db_path, err, err_len);
		goto out;
	}
	r->rebase_wrote = 0;
	if (open_connection(r, &db, err, err_len) == 0)
		rv = reapply_plan(r, db, plan, err, err_len);
out:
	sqlite3_close(db);
	json_decref(plan);
	return rv;
}
