/* Recovery of offline commits a power loss took from the WAL
 * (docs/architecture.md "Offline writes", 10).
 *
 * With synchronous=FULL an offline commit makes its outbox record durable
 * before the commit frame is written, and SQLite's WAL sync after it is
 * skipped: one flush per commit.  The record holds the transaction's pages,
 * so it is a redo record: after a power loss the WAL may have lost its
 * unsynced tail (SQLite's recovery keeps the frames up to the last valid
 * commit, a prefix of the commits), while the outbox still has every
 * record of a commit that returned.  The file then holds the primary's
 * state at frame_no plus the pending records [first, j] only, for some j,
 * and the records after j must be applied again.
 *
 * Which j: the file is "after record j" when every page any pending record
 * touched holds what it held after j (the new image of the last record up
 * to j that wrote it, else the old image of the first record after j) and
 * the file has j's size.  Pages no pending record touched are the same
 * either way.  The records are walked newest first, each undone in turn on
 * a table of the expected images, counting the pages that differ from the
 * file; the first j with none is where the file stands.  The records after
 * it are published again as one transaction, so readers go from the
 * recovered state to the complete one at once.
 *
 * The same holds after a kill -9 between a record and its commit frame:
 * that transaction never returned to its application, and it is now
 * committed rather than dropped (either is allowed; keeping it needs no
 * guess about which of the two happened).
 *
 * A file that is after no j (a program without the extension wrote to it,
 * or a power loss with synchronous=NORMAL took a record whose commit
 * survived) is left as it is, with a warning in SQLite's log: the
 * divergence checks of the sync decide what follows. */
#include "applier_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "sync/outbox.h"
#include "wal/wal_read.h"

/* One page some pending record touched: what the file holds, and what it
 * should hold at the current step of the walk. */
struct rc_page {
	uint32_t pgno;
	int in_file;   /* pgno <= the file's size */
	int expected;  /* the page exists in the expected state */
	int differs;   /* counted in rc_walk.mismatches */
	uint8_t *file; /* page_size bytes */
	uint8_t *want; /* page_size bytes (when expected) */
};

struct rc_walk {
	struct applier *a;
	struct rc_page *pages; /* sorted by pgno */
	size_t n;
	size_t mismatches;
	uint32_t file_pages; /* the file's size in pages */
	uint8_t *images;     /* the file and want images of every page */
};

/* One record's body, as outbox_read gives it. */
struct rc_body {
	uint32_t *pgnos;
	uint8_t *new_pages, *old_pages;
};

static void body_free(struct rc_body *b)
{
	free(b->pgnos);
	free(b->new_pages);
	free(b->old_pages);
	memset(b, 0, sizeof *b);
}

static int body_read(struct applier *a, size_t k, struct rc_body *b, char *err,
		     size_t err_len)
{
	body_free(b);
	return outbox_read(a->outbox, &a->ob_entries[k], &b->pgnos,
			   &b->new_pages, &b->old_pages, err, err_len);
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

static struct rc_page *find_page(struct rc_walk *w, uint32_t pgno)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->pages[mid].pgno < pgno)
			lo = mid + 1;
		else
			hi = mid;
	}
	assert(lo < w->n && w->pages[lo].pgno == pgno);
	return &w->pages[lo];
}

/* Set what page p should hold (image NULL: it does not exist) and keep the
 * count of the pages that differ from the file. */
static void expect(struct rc_walk *w, struct rc_page *p, const uint8_t *image)
{
	size_t ps = w->a->page_size;
	int differs;

	p->expected = image != NULL;
	if (image != NULL)
		memcpy(p->want, image, ps);
	if (p->in_file != p->expected)
		differs = 1;
	else
		differs = p->in_file && memcmp(p->file, p->want, ps) != 0;
	if (differs && !p->differs)
		w->mismatches++;
	else if (!differs && p->differs)
		w->mismatches--;
	p->differs = differs;
}

static void walk_free(struct rc_walk *w)
{
	free(w->pages);
	free(w->images);
	memset(w, 0, sizeof *w);
}

/* The pages the records [first, end) touched, and the file's images of
 * them. */
static int walk_init(struct rc_walk *w, struct applier *a, size_t first,
		     size_t end, char *err, size_t err_len)
{
	uint32_t *all = NULL, *grown, *pgnos = NULL;
	size_t n_all = 0, i, k;
	char *msg = NULL;
	int rc, rv = -1;

	memset(w, 0, sizeof *w);
	w->a = a;
	/* Page numbers only: the images are read (and checked) once, by the
	 * walk's steps. */
	for (k = first; k < end; k++) {
		uint32_t n = a->ob_entries[k].n, *pg;
		if (outbox_read_pgnos(a->outbox, &a->ob_entries[k], &pg, err,
				      err_len) != 0)
			goto out;
		grown = realloc(all, (n_all + n) * sizeof *all);
		if (grown == NULL) {
			free(pg);
			goto oom;
		}
		all = grown;
		memcpy(all + n_all, pg, n * sizeof *all);
		free(pg);
		n_all += n;
	}
	qsort(all, n_all, sizeof *all, cmp_u32);
	for (i = 0; i < n_all; i++)
		if (w->n == 0 || all[w->n - 1] != all[i])
			all[w->n++] = all[i];
	w->pages = calloc(w->n ? w->n : 1, sizeof *w->pages);
	w->images = malloc(2 * (w->n ? w->n : 1) * (size_t)a->page_size);
	if (w->pages == NULL || w->images == NULL)
		goto oom;
	pgnos = all;
	rc = wal_read_pages(a->reader, NULL, a->page_size, pgnos, w->n,
			    w->images, &w->file_pages, &msg);
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot read the local database %s: %s", a->db_path,
			   msg ? msg : sqlite3_errstr(rc));
		goto out;
	}
	for (i = 0; i < w->n; i++) {
		struct rc_page *p = &w->pages[i];
		p->pgno = pgnos[i];
		p->in_file = p->pgno <= w->file_pages;
		p->file = w->images + i * (size_t)a->page_size;
		p->want = w->images + (w->n + i) * (size_t)a->page_size;
		/* Until the first expect(): "does not exist", which differs
		 * from a page the file has. */
		p->differs = p->in_file;
		w->mismatches += (size_t)p->differs;
	}
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	sqlite3_free(msg);
	free(all);
	return rv;
}

/* Apply record k's images on the table: forward (its new images: the state
 * after it) or backward (its old ones: the state before it). */
static int walk_step(struct rc_walk *w, size_t k, int forward, char *err,
		     size_t err_len)
{
	struct applier *a = w->a;
	const struct outbox_entry *e = &a->ob_entries[k];
	uint32_t size = forward ? e->db_size : e->old_db_size;
	struct rc_body b = {0};
	uint32_t i;

	if (body_read(a, k, &b, err, err_len) != 0)
		return -1;
	for (i = 0; i < e->n; i++) {
		const uint8_t *img = (forward ? b.new_pages : b.old_pages) +
				     (size_t)i * a->page_size;
		expect(w, find_page(w, b.pgnos[i]),
		       b.pgnos[i] <= size ? img : NULL);
	}
	body_free(&b);
	return 0;
}

/* Publish the records [from, end) again as one transaction: the last image
 * of each page they wrote, at the last one's size. */
static int reapply(struct applier *a, size_t from, size_t end, char *err,
		   size_t err_len)
{
	struct rc_walk w;
	struct wal_page *pages = NULL;
	uint32_t db_size = a->ob_entries[end - 1].db_size, one = 1, ignored;
	uint8_t *page1 = NULL;
	char *msg = NULL;
	size_t i, n = 0;
	int rc, rv = -1;

	if (walk_init(&w, a, from, end, err, err_len) != 0)
		return -1;
	for (i = from; i < end; i++)
		if (walk_step(&w, i, 1, err, err_len) != 0)
			goto out;
	pages = calloc(w.n + 1, sizeof *pages);
	page1 = malloc(a->page_size);
	if (pages == NULL || page1 == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	/* The injector wants page 1 in every batch: the file's is current
	 * when no record wrote it. */
	if (w.n == 0 || w.pages[0].pgno != 1) {
		rc = wal_read_pages(a->reader, NULL, a->page_size, &one, 1,
				    page1, &ignored, &msg);
		if (rc != SQLITE_OK) {
			errors_set(err, err_len,
				   "cannot read the local database %s: %s",
				   a->db_path, msg ? msg : sqlite3_errstr(rc));
			goto out;
		}
		pages[n++] = (struct wal_page){1, page1};
	}
	for (i = 0; i < w.n; i++)
		if (w.pages[i].expected && w.pages[i].pgno <= db_size)
			pages[n++] =
			    (struct wal_page){w.pages[i].pgno, w.pages[i].want};
	rv = applier_inject(a, pages, n, db_size, err, err_len);
out:
	sqlite3_free(msg);
	free(page1);
	free(pages);
	walk_free(&w);
	return rv;
}

/* Under the lock, with ob_mu held: find where the file stands among the
 * pending records [first, a->ob_n), and publish the ones it lacks. */
static int recover_locked(struct applier *a, size_t first, char *err,
			  size_t err_len)
{
	struct rc_walk w;
	size_t end = a->ob_n, j, i;
	int found = 0, rv = -1;

	if (walk_init(&w, a, first, end, err, err_len) != 0)
		return -1;
	/* The state after the last record... */
	for (i = first; i < end; i++)
		if (walk_step(&w, i, 1, err, err_len) != 0)
			goto out;
	/* ...then after each earlier one, newest first; j = end means after
	 * end - 1, j = first: before all of them. */
	for (j = end;; j--) {
		uint32_t size = j > first ? a->ob_entries[j - 1].db_size
					  : a->ob_entries[first].old_db_size;
		if (w.mismatches == 0 && w.file_pages == size) {
			found = 1;
			break;
		}
		if (j == first)
			break;
		if (walk_step(&w, j - 1, 0, err, err_len) != 0)
			goto out;
	}
	walk_free(&w);
	if (!found) {
		sqlite3_log(SQLITE_WARNING,
			    "replite: %s: the local file holds none of the "
			    "states its %llu pending local transactions lead "
			    "through (written by a program without the "
			    "extension, or a power loss with "
			    "synchronous=NORMAL?); left as it is",
			    a->db_path, (unsigned long long)(end - first));
		return 0;
	}
	if (j < end) {
		sqlite3_log(SQLITE_NOTICE,
			    "replite: %s: %llu committed local transactions "
			    "were missing from the WAL (a power loss, or a "
			    "writer stopped in its commit); applied again "
			    "from the outbox",
			    a->db_path, (unsigned long long)(end - j));
		if (reapply(a, j, end, err, err_len) != 0)
			return -1;
	}
	applier_tail_checked_locked(a);
	return 0;
out:
	walk_free(&w);
	return rv;
}

int applier_recover_outbox(struct applier *a, char *err, size_t err_len)
{
	struct replica_state st = {0};
	size_t first = 0;
	int loaded, rv = -1;

	if (a->outbox == NULL)
		return 0;
	loaded = applier_load_state(a, &st, err, err_len);
	if (loaded != 0 || st.bootstrapping) {
		replica_state_free(&st);
		return loaded < 0 ? -1 : 0;
	}
	if (applier_lock_begin(a, err, err_len) != 0) {
		/* Another process has held the write lock all this time: it
		 * is alive, so it opened the file after any power loss and
		 * recovered it then. */
		if (sqlite3_errcode(a->db) == SQLITE_BUSY)
			rv = 0;
		goto out;
	}
	pthread_mutex_lock(&a->ob_mu);
	if (applier_pending_unchecked_locked(a, &st, &first, err, err_len) ==
		0 &&
	    (first >= a->ob_n || recover_locked(a, first, err, err_len) == 0))
		rv = 0;
	pthread_mutex_unlock(&a->ob_mu);
	applier_lock_end(a);
out:
	replica_state_free(&st);
	return rv;
}
