/* The applier's list of outbox records (docs/architecture.md "Offline
 * writes", 3 and 4): the records as last scanned, brought up to date
 * cheaply (outbox_last_at) or by a scan, the first pending one after the
 * state's "pushed" id, and the check that the last record committed.  The
 * offline commit, pushes and drops (applier_offline.c, applier_drop.c) and
 * recovery (applier_recover.c) work on it under ob_mu. */
#include "applier_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "sync/outbox.h"
#include "wal/wal_read.h"

/* The outbox header's size: the offset of its first record. */
#define OUTBOX_START OUTBOX_HEADER_SIZE

/* ---------------------------------------------------------------------- */
/* the record list, cached */

/* The common case of refresh_locked, in three small reads
 * (outbox_last_at): the last record cached, or the one this process
 * appended after it (then cached now), is still the last in the file.  A
 * record's random id at the same offset, under the same salt, is the same
 * record, and nothing before it changed: a truncation before it would have
 * removed it, emptying would have changed the salt.  Returns 1 (up to
 * date), 0 (scan), or -1 with err. */
static int unchanged_locked(struct applier *a, char *err, size_t err_len)
{
	const struct outbox_entry *last =
	    a->ob_n > 0 ? &a->ob_entries[a->ob_n - 1] : NULL;
	uint64_t cached_end = last ? last->offset + last->length : OUTBOX_START;
	struct outbox_entry e, *grown;
	uint64_t at;
	int rc;

	if (last == NULL && a->ob_end <= OUTBOX_START)
		return 0;
	/* Our own append after the cached list, else the last cached. */
	at = a->ob_appended_at == cached_end && a->ob_end > cached_end
		 ? cached_end
		 : (last ? last->offset : 0);
	if (at == 0)
		return 0;
	rc = outbox_last_at(a->outbox, at, &e, err, err_len);
	if (rc <= 0)
		return rc;
	if (e.offset + e.length != a->ob_end)
		return 0;
	if (at == cached_end) {
		if (memcmp(e.id, a->ob_appended_id, 16) != 0)
			return 0;
		grown = realloc(a->ob_entries, (a->ob_n + 1) * sizeof *grown);
		if (grown == NULL)
			return 0;
		a->ob_entries = grown;
		a->ob_entries[a->ob_n++] = e;
		return 1;
	}
	return memcmp(e.id, last->id, 16) == 0;
}

/* Bring the cached list of records up to date with the file: scan from
 * the last record known, if it is still there (same id at the same
 * offset), else from the start.  Called with ob_mu held. */
static int refresh_locked(struct applier *a, char *err, size_t err_len)
{
	struct outbox_entry *more = NULL, *grown;
	uint64_t from = OUTBOX_START, end = 0;
	size_t n_more = 0, keep = 0;
	int fast = unchanged_locked(a, err, err_len);

	if (fast != 0)
		return fast > 0 ? 0 : -1;

	if (a->ob_n > 0) {
		from = a->ob_entries[a->ob_n - 1].offset;
		keep = a->ob_n - 1;
	}
	if (a->ob_n > 0 && (outbox_scan(a->outbox, from, &more, &n_more, &end,
					err, err_len) != 0 ||
			    n_more == 0 ||
			    memcmp(more[0].id, a->ob_entries[a->ob_n - 1].id,
				   sizeof more[0].id) != 0)) {
		/* Truncated (and maybe appended to) since, maybe to less
		 * than that offset: start over. */
		free(more);
		more = NULL;
		keep = 0;
		if (outbox_scan(a->outbox, OUTBOX_START, &more, &n_more, &end,
				err, err_len) != 0)
			return -1;
	} else if (a->ob_n == 0 &&
		   outbox_scan(a->outbox, OUTBOX_START, &more, &n_more, &end,
			       err, err_len) != 0) {
		return -1;
	}
	grown = realloc(a->ob_entries, (keep + n_more + 1) * sizeof *grown);
	if (grown == NULL) {
		free(more);
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	a->ob_entries = grown;
	if (n_more > 0)
		memcpy(a->ob_entries + keep, more, n_more * sizeof *more);
	a->ob_n = keep + n_more;
	a->ob_end = end;
	free(more);
	return 0;
}

/* The index of the first pending record: the one after the record named
 * pushed, or 0 when no record has that id.  Every commit asks, with up to
 * thousands of records pending, so the answer is kept: the index found
 * (still right while the entry before it has the id), or how far the id
 * was not found (the entries up to a known one are the same records while
 * that one is still there: ids are random, records only appended until the
 * outbox is cut or emptied).  Called with ob_mu held. */
static size_t first_pending(struct applier *a, const struct replica_state *st)
{
	size_t i, from = 0;

	if (!st->has_pushed)
		return 0;
	if (a->fp_valid && memcmp(a->fp_pushed, st->pushed_id, 16) == 0) {
		if (a->fp_index > 0 && a->fp_index <= a->ob_n &&
		    memcmp(a->ob_entries[a->fp_index - 1].id, st->pushed_id,
			   16) == 0)
			return a->fp_index;
		if (a->fp_index == 0 && a->fp_scanned > 0 &&
		    a->fp_scanned <= a->ob_n &&
		    memcmp(a->ob_entries[a->fp_scanned - 1].id, a->fp_last,
			   16) == 0)
			from = a->fp_scanned;
	}
	a->fp_valid = 1;
	memcpy(a->fp_pushed, st->pushed_id, 16);
	for (i = a->ob_n; i > from; i--) {
		if (memcmp(a->ob_entries[i - 1].id, st->pushed_id,
			   sizeof st->pushed_id) == 0) {
			a->fp_index = i;
			return i;
		}
	}
	a->fp_index = 0;
	a->fp_scanned = a->ob_n;
	if (a->ob_n > 0)
		memcpy(a->fp_last, a->ob_entries[a->ob_n - 1].id, 16);
	return 0;
}

int applier_pending_counts(struct applier *a, const struct replica_state *st,
			   uint64_t *txns, uint64_t *frames, char *err,
			   size_t err_len)
{
	size_t i;
	int rv = 0;

	*txns = 0;
	*frames = 0;
	if (a->outbox == NULL)
		return 0;
	pthread_mutex_lock(&a->ob_mu);
	if (refresh_locked(a, err, err_len) != 0) {
		rv = -1;
	} else {
		for (i = first_pending(a, st); i < a->ob_n; i++) {
			(*txns)++;
			*frames += a->ob_entries[i].n;
		}
	}
	pthread_mutex_unlock(&a->ob_mu);
	return rv;
}

/* A record at the end of the outbox whose transaction did not commit: its
 * writer crashed between the record and the commit frame (or SQLite failed
 * to write the commit and the writer died before undoing the record).
 * Under the write lock nothing is being committed, and nothing is applied
 * on top of pending records, so the last record committed exactly when the
 * file holds its pages and its size.  Called with ob_mu held. */
static int check_tail_locked(struct applier *a, size_t first, char *err,
			     size_t err_len)
{
	const struct outbox_entry *e;
	uint32_t *pgnos = NULL, db_pages = 0, i, k = 0;
	uint8_t *new_pages = NULL, *old_pages = NULL, *cur = NULL;
	char *msg = NULL;
	int rv = -1, same, rc;

	if (first >= a->ob_n)
		return 0;
	e = &a->ob_entries[a->ob_n - 1];
	if (a->ob_tail_checked == e->offset + 1 &&
	    memcmp(a->ob_tail_id, e->id, sizeof e->id) == 0)
		return 0;
	if (outbox_read(a->outbox, e, &pgnos, &new_pages, &old_pages, err,
			err_len) != 0)
		goto out;
	cur = malloc((size_t)e->n * a->page_size);
	if (cur == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	/* The pages the transaction kept (the ones past its end are cut). */
	while (k < e->n && pgnos[k] <= e->db_size)
		k++;
	/* Through the reader: the caller holds the write lock, maybe through
	 * a writer's connection while the sync thread waits for it on the
	 * internal one. */
	rc = wal_read_pages(a->reader, NULL, a->page_size, pgnos, k, cur,
			    &db_pages, &msg);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot read the local database %s: %s", a->db_path,
			   msg ? msg : sqlite3_errstr(rc));
		goto out;
	}
	same = db_pages == e->db_size;
	for (i = 0; same && i < k; i++)
		same = memcmp(cur + (size_t)i * a->page_size,
			      new_pages + (size_t)i * a->page_size,
			      a->page_size) == 0;
	if (!same) {
		sqlite3_log(SQLITE_NOTICE,
			    "replite: %s: the last outbox record was never "
			    "committed (its writer stopped before the commit); "
			    "it is dropped",
			    a->db_path);
		if (outbox_truncate(a->outbox, e->offset, err, err_len) != 0)
			goto out;
		a->ob_n--;
		a->ob_end = e->offset;
	} else {
		a->ob_tail_checked = e->offset + 1;
		memcpy(a->ob_tail_id, e->id, sizeof e->id);
	}
	rv = 0;
out:
	sqlite3_free(msg);
	free(pgnos);
	free(new_pages);
	free(old_pages);
	free(cur);
	return rv;
}

int applier_pending_unchecked_locked(struct applier *a,
				     const struct replica_state *st,
				     size_t *first, char *err, size_t err_len)
{
	*first = 0;
	if (a->outbox == NULL)
		return 0;
	if (refresh_locked(a, err, err_len) != 0)
		return -1;
	*first = first_pending(a, st);
	return 0;
}

void applier_tail_checked_locked(struct applier *a)
{
	const struct outbox_entry *e;

	if (a->ob_n == 0)
		return;
	e = &a->ob_entries[a->ob_n - 1];
	a->ob_tail_checked = e->offset + 1;
	memcpy(a->ob_tail_id, e->id, sizeof e->id);
}

/* The pending records under the write lock: [*first, a->ob_n) of the cache,
 * the tail checked.  Called with ob_mu held. */
int applier_pending_locked(struct applier *a, const struct replica_state *st,
			   size_t *first, char *err, size_t err_len)
{
	*first = 0;
	if (a->outbox == NULL)
		return 0;
	if (refresh_locked(a, err, err_len) != 0)
		return -1;
	*first = first_pending(a, st);
	return check_tail_locked(a, *first, err, err_len);
}

int applier_outbox_has(struct applier *a, const uint8_t id[16], char *err,
		       size_t err_len)
{
	size_t i;
	int rv = 0;

	if (a->outbox == NULL)
		return 0;
	pthread_mutex_lock(&a->ob_mu);
	if (refresh_locked(a, err, err_len) != 0)
		rv = -1;
	for (i = 0; rv == 0 && i < a->ob_n; i++)
		rv = memcmp(a->ob_entries[i].id, id, 16) == 0;
	pthread_mutex_unlock(&a->ob_mu);
	return rv;
}
