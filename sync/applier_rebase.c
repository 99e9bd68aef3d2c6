/* The plan of dropped records, the applier's part: when the pending
 * records are dropped (applier_drop.c), the row changes of each, computed
 * from its pages (sync/rowdiff.h), are written to the rebase plan
 * (sync/rebase_plan.h) before the drop is published, for the sync thread
 * to re-apply them on top of the primary's state (conflict=rebase), or to
 * record each row as lost (conflict=discard) (sync/replica_rebase.c).
 *
 * A record's row changes need the database as it was right before the
 * record (its base) for the pages it did not change.  Under the write
 * lock the file holds the primary's state plus every pending record, so
 * the records are taken newest first: an overlay of old images, over the
 * file, is the state after the record at hand; its own old images then
 * make it the state before it, which is the state after the previous one. */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/errors.h"
#include "sync/outbox.h"
#include "sync/rebase_plan.h"
#include "sync/rowdiff.h"
#include "wal/wal_read.h"

/* The state after the record at hand: an image per page some later record
 * changed (indexed by pgno), else the file. */
struct overlay {
	struct applier *a;
	uint8_t **pages;
	size_t n;
	char *err; /* the first read error */
};

static int overlay_read(void *arg, uint32_t pgno, uint8_t *out)
{
	struct overlay *o = arg;
	uint32_t db_pages;
	char *msg = NULL;
	int rc;

	if (pgno < o->n && o->pages[pgno] != NULL) {
		memcpy(out, o->pages[pgno], o->a->page_size);
		return 0;
	}
	/* Through the reader, as the tail check: the write lock is held. */
	rc = wal_read_pages(o->a->reader, NULL, o->a->page_size, &pgno, 1, out,
			    &db_pages, &msg);
	if (rc != SQLITE_OK && o->err == NULL)
		o->err = sqlite3_mprintf("%s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The record's old images become the overlay's: the state before it. */
static int overlay_step_back(struct overlay *o, const uint32_t *pgnos,
			     const uint8_t *old_pages, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint32_t pgno = pgnos[i];
		if (pgno >= o->n) {
			size_t want = (size_t)pgno * 2 + 16;
			uint8_t **grown =
			    realloc(o->pages, want * sizeof *grown);
			if (grown == NULL)
				return -1;
			memset(grown + o->n, 0, (want - o->n) * sizeof *grown);
			o->pages = grown;
			o->n = want;
		}
		if (o->pages[pgno] == NULL &&
		    (o->pages[pgno] = malloc(o->a->page_size)) == NULL)
			return -1;
		memcpy(o->pages[pgno], old_pages + (size_t)i * o->a->page_size,
		       o->a->page_size);
	}
	return 0;
}

static void overlay_free(struct overlay *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		free(o->pages[i]);
	free(o->pages);
	sqlite3_free(o->err);
}

static const char *op_name(enum rowdiff_op op)
{
	return op == ROWDIFF_INSERT   ? "insert"
	       : op == ROWDIFF_UPDATE ? "update"
				      : "delete";
}

static json_t *changes_json(const struct rowdiff_change *c, size_t n)
{
	json_t *all = json_array(), *one;
	size_t i;

	for (i = 0; all != NULL && i < n; i++) {
		one = json_pack("{s:s, s:s, s:O, s:O?, s:O?}", "table",
				c[i].table, "op", op_name(c[i].op), "key",
				c[i].key, "before", c[i].before, "after",
				c[i].after);
		if (one == NULL || json_array_append_new(all, one) != 0) {
			json_decref(all);
			return NULL;
		}
	}
	return all;
}

/* The plan entry of record e (pages as read from the outbox), over the
 * overlay: {"id", "committed_unix_ms", "changes"}, or with "error" in
 * place of the changes when they cannot be computed (the re-application
 * then records the transaction as skipped, with that reason). */
static json_t *entry_json(struct overlay *o, const struct outbox_entry *e,
			  const uint32_t *pgnos, const uint8_t *new_pages,
			  const uint8_t *old_pages, const char *discard)
{
	struct rowdiff_page *pages = calloc(e->n, sizeof *pages);
	struct rowdiff_input in = {0};
	struct rowdiff_change *c = NULL;
	size_t n_c = 0;
	json_t *entry = NULL, *changes;
	char hex[33], err[512];
	uint32_t i;

	outbox_id_hex(e->id, hex);
	if (pages == NULL)
		return NULL;
	for (i = 0; i < e->n; i++) {
		pages[i].pgno = pgnos[i];
		pages[i].before = old_pages + (size_t)i * o->a->page_size;
		pages[i].after = new_pages + (size_t)i * o->a->page_size;
	}
	in.read = overlay_read;
	in.arg = o;
	in.pages = pages;
	in.n_pages = e->n;
	in.size_before = e->old_db_size;
	in.size_after = e->db_size;
	if (rowdiff_compute(&in, &c, &n_c, err, sizeof err) != 0) {
		entry =
		    json_pack("{s:s, s:I, s:s}", "id", hex, "committed_unix_ms",
			      (json_int_t)e->commit_unix_ms, "error", err);
	} else if ((changes = changes_json(c, n_c)) != NULL) {
		entry = json_pack(
		    "{s:s, s:I, s:o}", "id", hex, "committed_unix_ms",
		    (json_int_t)e->commit_unix_ms, "changes", changes);
	}
	/* conflict=discard: recorded as lost, with the reason, not
	 * re-applied. */
	if (entry != NULL && discard != NULL &&
	    (json_object_set_new(entry, "discard", json_true()) != 0 ||
	     json_object_set_new(entry, "reason", json_string(discard)) != 0)) {
		json_decref(entry);
		entry = NULL;
	}
	rowdiff_free(c, n_c);
	free(pages);
	return entry;
}

/* Is id the re-application of the plan's first entry (the plan is
 * re-applied as one transaction, sync/replica_rebase.c)? */
static int is_reapplication(const json_t *plan, const uint8_t id[16])
{
	const char *first =
	    json_string_value(json_object_get(json_array_get(plan, 0), "id"));
	uint8_t entry[16], again[16];

	if (rebase_plan_parse_id(first, entry) != 0)
		return 0;
	rebase_plan_reapplied_id(entry, again);
	return memcmp(again, id, 16) == 0;
}

/* The ids the plan already has, and those of their re-applications. */
static json_t *planned_ids(const json_t *plan)
{
	json_t *ids = json_object(), *e;
	uint8_t id[16], again[16];
	char hex[33];
	size_t i;

	json_array_foreach(plan, i, e)
	{
		const char *s = json_string_value(json_object_get(e, "id"));
		if (ids == NULL || rebase_plan_parse_id(s, id) != 0)
			continue;
		rebase_plan_reapplied_id(id, again);
		outbox_id_hex(again, hex);
		if (json_object_set_new(ids, s, json_true()) != 0 ||
		    json_object_set_new(ids, hex, json_true()) != 0) {
			json_decref(ids);
			return NULL;
		}
	}
	return ids;
}

int applier_rebase_plan_locked(struct applier *a, size_t first,
			       const char *discard, char *err, size_t err_len)
{
	struct overlay o = {.a = a};
	json_t *plan = NULL, *ids = NULL, **fresh = NULL;
	uint32_t *pgnos = NULL;
	uint8_t *new_pages = NULL, *old_pages = NULL;
	size_t r, n_fresh = 0;
	char hex[33];
	int rv = -1;

	if (rebase_plan_read(a->db_path, a->cipher, &plan, err, err_len) != 0)
		return -1;
	ids = planned_ids(plan);
	fresh = calloc(a->ob_n - first + 1, sizeof *fresh);
	if (ids == NULL || fresh == NULL)
		goto oom;
	for (r = a->ob_n; r-- > first;) {
		const struct outbox_entry *e = &a->ob_entries[r];
		if (outbox_read(a->outbox, e, &pgnos, &new_pages, &old_pages,
				err, err_len) != 0)
			goto out;
		outbox_id_hex(e->id, hex);
		/* Planned before a crash cut the drop short (the file may
		 * then hold the primary's pages already: not computed
		 * again), or a re-application of a planned entry. */
		if (json_object_get(ids, hex) == NULL) {
			fresh[r - first] = entry_json(&o, e, pgnos, new_pages,
						      old_pages, discard);
			if (fresh[r - first] == NULL)
				goto oom;
			n_fresh++;
		}
		if (o.err != NULL) {
			errors_set(err, err_len,
				   "cannot read the local database %s: %s",
				   a->db_path, o.err);
			goto out;
		}
		if (overlay_step_back(&o, pgnos, old_pages, e->n) != 0)
			goto oom;
		free(pgnos);
		free(new_pages);
		free(old_pages);
		pgnos = NULL;
		new_pages = old_pages = NULL;
	}
	if (n_fresh == 0) {
		rv = 0;
		goto out;
	}
	for (r = 0; r < a->ob_n - first; r++) {
		if (fresh[r] != NULL && json_array_append(plan, fresh[r]) != 0)
			goto oom;
	}
	rv = rebase_plan_write(a->db_path, a->cipher, plan, err, err_len);
	if (rv == 0)
		sqlite3_log(SQLITE_NOTICE,
			    "replite: %s: %llu local transactions lost a "
			    "conflict; %s",
			    a->db_path, (unsigned long long)n_fresh,
			    discard ? "they are dropped (conflict=discard)"
				    : "their row changes are re-applied on the "
				      "primary's state (conflict=rebase)");
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	if (fresh != NULL)
		for (r = 0; r < a->ob_n - first; r++)
			json_decref(fresh[r]);
	free(fresh);
	free(pgnos);
	free(new_pages);
	free(old_pages);
	json_decref(ids);
	json_decref(plan);
	overlay_free(&o);
	return rv;
}

int applier_rebase_dropped(struct applier *a, const json_t *plan, char *err,
			   size_t err_len)
{
	struct replica_state st = {0};
	json_t *ids = planned_ids(plan);
	size_t first, i;
	char hex[33];
	int rv = 1;

	if (ids == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	if (applier_load_state(a, &st, err, err_len) != 0) {
		json_decref(ids);
		return -1;
	}
	pthread_mutex_lock(&a->ob_mu);
	if (a->outbox != NULL) {
		if (applier_pending_locked(a, &st, &first, err, err_len) != 0)
			rv = -1;
		for (i = first; rv == 1 && i < a->ob_n; i++) {
			outbox_id_hex(a->ob_entries[i].id, hex);
			/* The entries themselves, not their re-application
			 * (which planned_ids also lists). */
			if (json_object_get(ids, hex) != NULL &&
			    !is_reapplication(plan, a->ob_entries[i].id))
				rv = 0;
		}
	}
	pthread_mutex_unlock(&a->ob_mu);
	replica_state_free(&st);
	json_decref(ids);
	return rv;
}
