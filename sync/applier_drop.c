/* Dropping an offline replica's pending records when they lost a conflict
 * or a full image replaces the file: the old image of every page they
 * changed, published under the batch's own pages, after their row changes
 * were planned for re-application or records (applier_rebase.c;
 * docs/architecture.md "Offline writes", 6). */
#include "applier_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "sync/outbox.h"

/* The outbox header's size: the offset of its first record. */
#define OUTBOX_START OUTBOX_HEADER_SIZE

static int grow_drop(struct applier_drop *d, size_t *cap, uint32_t page_size)
{
	size_t want = *cap ? *cap * 2 : 64;
	struct wal_page *pages = realloc(d->pages, want * sizeof *pages);
	uint8_t *images;

	if (pages == NULL)
		return -1;
	d->pages = pages;
	images = realloc(d->images, want * page_size);
	if (images == NULL)
		return -1;
	d->images = images;
	*cap = want;
	return 0;
}

/* Mark pgno in a bitmap grown as needed: returns 1 when it was new, 0 when
 * already marked, -1 when out of memory. */
static int mark_page(uint8_t **bits, size_t *nbytes, uint32_t pgno)
{
	size_t byte = pgno / 8;

	if (byte >= *nbytes) {
		size_t want = byte * 2 + 64;
		uint8_t *grown = realloc(*bits, want);
		if (grown == NULL)
			return -1;
		memset(grown + *nbytes, 0, want - *nbytes);
		*bits = grown;
		*nbytes = want;
	}
	if ((*bits)[byte] & (1u << (pgno % 8)))
		return 0;
	(*bits)[byte] |= (uint8_t)(1u << (pgno % 8));
	return 1;
}

void applier_drop_free(struct applier_drop *d)
{
	free(d->pages);
	free(d->images);
	memset(d, 0, sizeof *d);
}

int applier_drop_prepare(struct applier *a, struct replica_state *st,
			 const char *reason, struct applier_drop *d, char *err,
			 size_t err_len)
{
	uint32_t *pgnos = NULL, i, k;
	uint8_t *new_pages = NULL, *old_pages = NULL, *seen = NULL;
	size_t first, r, cap = 0, seen_bytes = 0;
	int rv = -1, fresh;

	memset(d, 0, sizeof *d);
	if (a->outbox == NULL)
		return 0;
	pthread_mutex_lock(&a->ob_mu);
	if (applier_pending_locked(a, st, &first, err, err_len) != 0)
		goto out;
	if (first >= a->ob_n) {
		rv = 0;
		goto out;
	}
	if (!st->discard && reason == NULL) {
		errors_set(
		    err, err_len,
		    "%zu local transactions of %s are not on the primary "
		    "yet; they are pushed before anything is pulled",
		    a->ob_n - first, a->db_path);
		goto out;
	}
	/* Their row changes first, to re-apply (rebase) or to record as
	 * lost (discard, with the reason). */
	if (!a->rebase && reason == NULL)
		reason = "the primary changed since the transaction's base "
			 "(conflict=discard)";
	if (applier_rebase_plan_locked(a, first, a->rebase ? NULL : reason, err,
				       err_len) != 0)
		goto out;
	d->n_txns = a->ob_n - first;
	d->base_db_size = a->ob_entries[first].old_db_size;
	memcpy(d->last_id, a->ob_entries[a->ob_n - 1].id, sizeof d->last_id);
	d->has_file_sum = a->ob_entries[a->ob_n - 1].has_sums;
	d->file_sum = a->ob_entries[a->ob_n - 1].result;
	/* The image of each page before the first pending record that
	 * changed it. */
	for (r = first; r < a->ob_n; r++) {
		const struct outbox_entry *e = &a->ob_entries[r];
		if (outbox_read(a->outbox, e, &pgnos, &new_pages, &old_pages,
				err, err_len) != 0)
			goto out;
		for (i = 0; i < e->n; i++) {
			fresh = mark_page(&seen, &seen_bytes, pgnos[i]);
			if (fresh == 0)
				continue;
			if (fresh < 0 ||
			    (d->n == cap &&
			     grow_drop(d, &cap, a->page_size) != 0)) {
				errors_set(err, err_len, "out of memory");
				goto out;
			}
			memcpy(d->images + (size_t)d->n * a->page_size,
			       old_pages + (size_t)i * a->page_size,
			       a->page_size);
			d->pages[d->n].pgno = pgnos[i];
			d->n++;
		}
		free(pgnos);
		free(new_pages);
		free(old_pages);
		pgnos = NULL;
		new_pages = old_pages = NULL;
	}
	for (k = 0; k < d->n; k++)
		d->pages[k].data = d->images + (size_t)k * a->page_size;
	rv = 1;
out:
	pthread_mutex_unlock(&a->ob_mu);
	free(seen);
	free(pgnos);
	free(new_pages);
	free(old_pages);
	if (rv != 1)
		applier_drop_free(d);
	return rv;
}

void applier_drop_done(struct applier *a, struct replica_state *st,
		       const struct applier_drop *d)
{
	(void)a;
	st->has_pushed = 1;
	memcpy(st->pushed_id, d->last_id, sizeof st->pushed_id);
	st->discard = 0;
	st->has_batch = 0;
}

void applier_drop_clear(struct applier *a)
{
	char err[256];

	if (a->outbox == NULL)
		return;
	pthread_mutex_lock(&a->ob_mu);
	if (outbox_truncate(a->outbox, OUTBOX_START, err, sizeof err) == 0) {
		a->ob_n = 0;
		a->ob_end = OUTBOX_START;
	}
	pthread_mutex_unlock(&a->ob_mu);
}
