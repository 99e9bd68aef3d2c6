/* The applier's part in offline mode (docs/architecture.md "Offline
 * writes"): the outbox of local commits not yet on the primary, the state
 * edits around pushing them, and dropping them when they lost a conflict.
 *
 * An offline commit appends one outbox record (sync/outbox.h) before its
 * commit frame reaches the WAL: the transaction's pages as committed, and
 * their images before it, read from the file (the same reads that carry the
 * checksum forward).  The records after the state's "pushed" id are
 * pending: the file holds the primary's state at frame_no plus exactly those
 * transactions, in order.  So while any are pending no pulled batch may be
 * applied on top (it would mix the primary's pages with local ones), except
 * one that drops them: with the state's "discard" flag, the next batch (or
 * full image, or generation switch) is published together with the old
 * images of every page the pending records changed, which puts those pages
 * back as they were at frame_no before the batch overwrites what the
 * primary changed since.  One publication, so a reader sees the local
 * commits or the primary's newer state, never a mix; and the batch may be
 * applied again after a crash with the same result, since the old images
 * stay in the outbox until the state says the records are gone.  The list
 * of records and the pending range are applier_pending.c's. */
#include "applier_internal.h"

#include <assert.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/errors.h"
#include "sync/checksum.h"
#include "sync/outbox.h"
#include "sync/rebase_plan.h"

/* The outbox header's size: the offset of its first record. */
#define OUTBOX_START OUTBOX_HEADER_SIZE

int applier_open_outbox(struct applier *a, int create, char *err,
			size_t err_len)
{
	char *path;
	int exists;

	if (a->outbox != NULL)
		return 0;
	path = outbox_path(a->db_path);
	if (path == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	exists = access(path, F_OK) == 0;
	free(path);
	if (!create && !exists)
		return 0;
	return outbox_open(a->db_path, a->page_size, a->cipher, &a->outbox, err,
			   err_len);
}

/* ---------------------------------------------------------------------- */
/* the offline commit */

void applier_set_rebase(struct applier *a, int rebase)
{
	a->rebase = rebase;
}

void applier_set_cipher(struct applier *a, const struct cipher *c)
{
	assert(a->outbox == NULL);
	a->cipher = c;
}

int applier_offline_commit(struct applier *a, const struct replica_state *st,
			   const struct wal_page *pages, size_t n,
			   uint32_t db_size, const uint8_t id[16],
			   uint64_t *undo_at, char *err, size_t err_len)
{
	struct checksum_old old = {0};
	struct outbox_record rec = {0};
	uint8_t *new_pages = NULL;
	uint64_t base = 0, result = 0, at;
	size_t first, i, j;
	int has_base, rv = -1;

	assert(a->outbox != NULL);
	pthread_mutex_lock(&a->ob_mu);
	if (applier_pending_locked(a, st, &first, err, err_len) != 0)
		goto out;
	/* The checksum the transaction is built on: the last pending
	 * record's result, else the state's (frame_hwm > frame_no: a batch
	 * may have been cut short, the content is not the state's). */
	if (first < a->ob_n) {
		has_base = a->ob_entries[a->ob_n - 1].has_sums;
		base = a->ob_entries[a->ob_n - 1].result;
	} else {
		has_base = st->has_checksum && st->frame_hwm == st->frame_no;
		base = st->checksum;
	}
	if (checksum_after_old(a->reader, NULL, a->page_size, base, pages, n,
			       db_size, &result, &old, err, err_len) != 0)
		goto out;
	new_pages = calloc(old.n ? old.n : 1, a->page_size);
	if (new_pages == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	/* The committed image of each page (the last one given wins), zeros
	 * for the pages cut off. */
	for (i = 0; i < old.n; i++) {
		for (j = n; j > 0; j--) {
			if (pages[j - 1].pgno == old.pgnos[i]) {
				memcpy(new_pages + i * a->page_size,
				       pages[j - 1].data, a->page_size);
				break;
			}
		}
	}
	memcpy(rec.id, id, sizeof rec.id);
	rec.n = (uint32_t)old.n;
	rec.pgnos = old.pgnos;
	rec.new_pages = new_pages;
	rec.old_pages = old.images;
	rec.db_size = db_size;
	rec.old_db_size = old.db_pages;
	rec.has_sums = has_base;
	rec.base = base;
	rec.result = result;
	rec.commit_unix_ms = clock_unix_ms();
	at = a->ob_end;
	if (outbox_append(a->outbox, &rec, &a->ob_end, err, err_len) != 0)
		goto out;
	*undo_at = at;
	a->ob_appended_at = at;
	memcpy(a->ob_appended_id, id, sizeof a->ob_appended_id);
	rv = 0;
out:
	pthread_mutex_unlock(&a->ob_mu);
	checksum_old_free(&old);
	free(new_pages);
	return rv;
}

int applier_offline_sync(struct applier *a, char *err, size_t err_len)
{
	return outbox_sync(a->outbox, err, err_len);
}

void applier_offline_committed(struct applier *a, uint64_t at)
{
	pthread_mutex_lock(&a->ob_mu);
	if (a->ob_appended_at == at) {
		a->ob_tail_checked = at + 1;
		memcpy(a->ob_tail_id, a->ob_appended_id, sizeof a->ob_tail_id);
	}
	pthread_mutex_unlock(&a->ob_mu);
}

int applier_offline_undo(struct applier *a, uint64_t at, char *err,
			 size_t err_len)
{
	int rv;

	pthread_mutex_lock(&a->ob_mu);
	rv = outbox_truncate(a->outbox, at, err, err_len);
	if (rv == 0) {
		while (a->ob_n > 0 && a->ob_entries[a->ob_n - 1].offset >= at)
			a->ob_n--;
		a->ob_end = at;
	}
	pthread_mutex_unlock(&a->ob_mu);
	return rv;
}

/* ---------------------------------------------------------------------- */
/* pushing */

void applier_push_free(struct applier_push *p)
{
	free(p->images);
	free(p->pages);
	memset(p, 0, sizeof *p);
}

/* A run of pushes saves the state once at its end (applier_push_flush), not
 * after every push: two fsyncs per transaction otherwise.  A crash in
 * between loses nothing: the records then look pending, and pushing them
 * again is answered by their ids with where the primary logged them.  The
 * run's state is used only while the file still says what it said when the
 * run began (anything else that changes the state changes the file). */
static int same_file_state(const struct replica_state *x,
			   const struct replica_state *y)
{
	return x->generation == y->generation && x->frame_no == y->frame_no &&
	       x->frame_hwm == y->frame_hwm &&
	       x->bootstrapping == y->bootstrapping &&
	       x->discard == y->discard && x->has_pushed == y->has_pushed &&
	       memcmp(x->pushed_id, y->pushed_id, sizeof x->pushed_id) == 0;
}

static void drop_push_run(struct applier *a)
{
	if (!a->push_cached)
		return;
	replica_state_free(&a->push_st);
	a->push_cached = 0;
}

/* The state under the lock: the file's, or the run's if the file has not
 * changed since it began.  *file receives the file's.  0, 1 (no state
 * file) or -1 with err. */
static int current_state(struct applier *a, struct replica_state *st,
			 struct replica_state *file, char *err, size_t err_len)
{
	int loaded = applier_load_state(a, file, err, err_len);

	if (loaded != 0)
		return loaded;
	if (a->push_cached && same_file_state(file, &a->push_file)) {
		*st = a->push_st;
		st->database_id = a->push_st.database_id
				      ? strdup(a->push_st.database_id)
				      : NULL;
		st->sync_url = strdup(a->push_st.sync_url);
		if (st->sync_url == NULL || (a->push_st.database_id != NULL &&
					     st->database_id == NULL)) {
			replica_state_free(st);
			errors_set(err, err_len, "out of memory");
			return -1;
		}
		return 0;
	}
	drop_push_run(a);
	*st = *file;
	st->database_id = file->database_id ? strdup(file->database_id) : NULL;
	st->sync_url = strdup(file->sync_url);
	if (st->sync_url == NULL ||
	    (file->database_id != NULL && st->database_id == NULL)) {
		replica_state_free(st);
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

int applier_push_flush(struct applier *a, char *err, size_t err_len)
{
	struct replica_state file = {0};
	int rv = 0;

	if (!a->push_cached)
		return 0;
	if (applier_lock_begin(a, err, err_len) != 0)
		return -1;
	pthread_mutex_lock(&a->ob_mu);
	if (applier_load_state(a, &file, err, err_len) == 0 &&
	    same_file_state(&file, &a->push_file))
		rv = applier_state_save(a, &a->push_st, err, err_len);
	drop_push_run(a);
	pthread_mutex_unlock(&a->ob_mu);
	replica_state_free(&file);
	applier_lock_end(a);
	return rv;
}

/* How many of the pending records from first the next push holds: those
 * up to the batch the state names, if it names a pending one (a push sent
 * before: the same records again); else as many as the limits allow. */
static size_t push_size_locked(struct applier *a,
			       const struct replica_state *st, size_t first)
{
	size_t i, pages = 0;

	if (st->has_batch)
		for (i = first; i < a->ob_n; i++)
			if (memcmp(a->ob_entries[i].id, st->batch_last, 16) ==
			    0)
				return i - first + 1;
	/* Distinct pages are not known before the bodies are read: the sum
	 * bounds them. */
	for (i = first; i < a->ob_n && i - first < APPLIER_PUSH_RECORDS; i++) {
		pages += a->ob_entries[i].n;
		if (i > first && pages > APPLIER_PUSH_PAGES)
			break;
	}
	return i - first;
}

/* The push of records [first, first + k): the last image of each page
 * they wrote, up to the last one's size. */
static int combine_locked(struct applier *a, size_t first, size_t k,
			  struct applier_push *p, char *err, size_t err_len)
{
	const struct outbox_entry *e0 = &a->ob_entries[first],
				  *e1 = &a->ob_entries[first + k - 1];
	uint8_t **latest = NULL, *new_pages = NULL, *old_pages = NULL;
	uint32_t *pgnos = NULL, max_pgno = 0, pg, i;
	size_t r, n = 0;
	int rv = -1, sums = 1;

	for (r = first; r < first + k; r++) {
		const struct outbox_entry *e = &a->ob_entries[r];
		sums = sums && e->has_sums;
		if (e->db_size > max_pgno)
			max_pgno = e->db_size;
	}
	latest = calloc((size_t)max_pgno + 1, sizeof *latest);
	if (latest == NULL)
		goto oom;
	for (r = first; r < first + k; r++) {
		const struct outbox_entry *e = &a->ob_entries[r];
		if (outbox_read(a->outbox, e, &pgnos, &new_pages, &old_pages,
				err, err_len) != 0)
			goto out;
		for (i = 0; i < e->n && pgnos[i] <= e->db_size; i++) {
			if (latest[pgnos[i]] == NULL &&
			    (latest[pgnos[i]] = malloc(a->page_size)) == NULL)
				goto oom;
			memcpy(latest[pgnos[i]],
			       new_pages + (size_t)i * a->page_size,
			       a->page_size);
		}
		free(pgnos);
		free(new_pages);
		free(old_pages);
		pgnos = NULL;
		new_pages = old_pages = NULL;
	}
	for (pg = 1; pg <= e1->db_size; pg++)
		n += latest[pg] != NULL;
	p->pages = calloc(n ? n : 1, sizeof *p->pages);
	p->images = malloc((n ? n : 1) * (size_t)a->page_size);
	if (p->pages == NULL || p->images == NULL)
		goto oom;
	p->n = 0;
	for (pg = 1; pg <= e1->db_size; pg++) {
		if (latest[pg] == NULL)
			continue;
		memcpy(p->images + (size_t)p->n * a->page_size, latest[pg],
		       a->page_size);
		p->pages[p->n].pgno = pg;
		p->pages[p->n].data = p->images + (size_t)p->n * a->page_size;
		p->n++;
	}
	p->entry = *e1;
	p->entry.has_sums = sums;
	p->entry.base = e0->base;
	p->entry.old_db_size = e0->old_db_size;
	p->n_records = k;
	memcpy(p->first_id, e0->id, 16);
	memcpy(p->last_id, e1->id, 16);
	if (k > 1)
		outbox_batch_id(e0->id, e1->id, p->entry.id);
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	if (latest != NULL)
		for (pg = 0; pg <= max_pgno; pg++)
			free(latest[pg]);
	free(latest);
	free(pgnos);
	free(new_pages);
	free(old_pages);
	return rv;
}

int applier_next_push(struct applier *a, struct applier_push *p, char *err,
		      size_t err_len)
{
	struct replica_state st = {0}, file = {0};
	size_t first, k;
	int rv = -1, loaded;

	memset(p, 0, sizeof *p);
	if (a->outbox == NULL)
		return 0;
	if (applier_lock_begin(a, err, err_len) != 0)
		return -1;
	pthread_mutex_lock(&a->ob_mu);
	loaded = current_state(a, &st, &file, err, err_len);
	if (loaded != 0) {
		rv = loaded == 1 ? 0 : -1; /* no state: nothing committed */
		goto out;
	}
	/* Re-applied transactions wait for the rest of their plan: pushes
	 * would empty the outbox, which tells which entries are done. */
	if (rebase_plan_exists(a->db_path)) {
		rv = 2;
		goto out;
	}
	if (applier_pending_locked(a, &st, &first, err, err_len) != 0)
		goto out;
	if (first >= a->ob_n) {
		/* Everything pushed: once the state says so, empty the
		 * outbox (the state names the last record, which then no
		 * longer exists: fine). */
		if (a->push_cached) {
			if (applier_state_save(a, &st, err, err_len) != 0)
				goto out;
			drop_push_run(a);
		}
		rv = 0;
		if (a->ob_n > 0 && outbox_truncate(a->outbox, OUTBOX_START, err,
						   err_len) == 0) {
			a->ob_n = 0;
			a->ob_end = OUTBOX_START;
		}
		goto out;
	}
	if (st.discard || st.bootstrapping) {
		rv = 2; /* dropped with the next batch */
		goto out;
	}
	k = push_size_locked(a, &st, first);
	if (!st.has_batch ||
	    memcmp(st.batch_last, a->ob_entries[first + k - 1].id, 16) != 0) {
		/* Durable before the push is sent (applier.h). */
		st.has_batch = 1;
		memcpy(st.batch_last, a->ob_entries[first + k - 1].id, 16);
		if (applier_state_save(a, &st, err, err_len) != 0)
			goto out;
		drop_push_run(a);
	}
	p->last = first + k == a->ob_n;
	p->generation = st.generation;
	p->start = st.frame_no + 1;
	if (combine_locked(a, first, k, p, err, err_len) != 0)
		goto out;
	rv = 1;
out:
	pthread_mutex_unlock(&a->ob_mu);
	replica_state_free(&st);
	replica_state_free(&file);
	applier_lock_end(a);
	if (rv != 1)
		applier_push_free(p);
	return rv;
}

int applier_pushed(struct applier *a, const struct applier_push *p,
		   uint32_t logged_generation, uint32_t logged_head, int save,
		   char *err, size_t err_len)
{
	struct replica_state st = {0}, file = {0};
	size_t first;
	int rv = -1;

	if (applier_lock_begin(a, err, err_len) != 0)
		return -1;
	pthread_mutex_lock(&a->ob_mu);
	if (current_state(a, &st, &file, err, err_len) != 0 ||
	    applier_pending_locked(a, &st, &first, err, err_len) != 0)
		goto out;
	if (first + p->n_records > a->ob_n ||
	    memcmp(a->ob_entries[first].id, p->first_id, 16) != 0 ||
	    memcmp(a->ob_entries[first + p->n_records - 1].id, p->last_id,
		   16) != 0 ||
	    st.generation != p->generation || st.frame_no + 1 != p->start) {
		/* Another process pushed it meanwhile (the primary answered
		 * both by the transaction's id): nothing to record. */
		rv = 0;
		goto out;
	}
	st.generation = logged_generation;
	st.frame_no = logged_head;
	st.frame_hwm = logged_head;
	st.has_checksum = p->entry.has_sums;
	st.checksum = p->entry.result;
	st.has_pushed = 1;
	memcpy(st.pushed_id, p->last_id, sizeof st.pushed_id);
	st.has_batch = 0;
	first += p->n_records - 1; /* the last record pushed */
	if (first + 1 == a->ob_n) {
		/* The file is the primary's state again: where its WAL
		 * stands now is replite's doing (the divergence check). */
		struct wal_position pos;
		char *msg = NULL;
		if (wal_inject_position(a->db, NULL, &pos, &msg) == SQLITE_OK) {
			st.wal_known = 1;
			st.wal_frames = pos.frames;
			memcpy(st.wal_salt, pos.salt, sizeof st.wal_salt);
		} else {
			st.wal_known = 0;
		}
		sqlite3_free(msg);
	}
	if (!save && first + 1 < a->ob_n) {
		/* Saved at the end of the run (applier_push_flush). */
		drop_push_run(a);
		a->push_st = st;
		memset(&st, 0, sizeof st);
		replica_state_free(&a->push_file);
		a->push_file = file;
		memset(&file, 0, sizeof file);
		a->push_cached = 1;
		rv = 0;
		goto out;
	}
	if (applier_state_save(a, &st, err, err_len) != 0)
		goto out;
	drop_push_run(a);
	if (first + 1 == a->ob_n &&
	    outbox_truncate(a->outbox, OUTBOX_START, err, err_len) == 0) {
		a->ob_n = 0;
		a->ob_end = OUTBOX_START;
	}
	rv = 0;
out:
	pthread_mutex_unlock(&a->ob_mu);
	replica_state_free(&st);
	replica_state_free(&file);
	applier_lock_end(a);
	return rv;
}

static int set_discard(struct replica_state *st)
{
	if (st->discard)
		return 0;
	st->discard = 1;
	return 1;
}

int applier_push_lost(struct applier *a, char *err, size_t err_len)
{
	return applier_edit_state(a, set_discard, err, err_len);
}
