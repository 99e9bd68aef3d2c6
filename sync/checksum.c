#include "checksum.h"

#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "base/errors.h"
#include "wal/wal_read.h"

struct slot {
	uint32_t pgno;
	size_t index; /* in pages[]: the latest image wins */
};

static int cmp_slot(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	if (x->pgno != y->pgno)
		return x->pgno < y->pgno ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The term of a page the database grew to without writing it. */
static uint64_t zero_term(uint32_t pgno, const uint8_t *zeros,
			  uint32_t page_size)
{
	return dbsum_page(pgno, zeros, page_size);
}

void checksum_old_free(struct checksum_old *old)
{
	free(old->pgnos);
	free(old->images);
	memset(old, 0, sizeof *old);
}

int checksum_after(sqlite3 *db, wal_inject_unwrap_fn unwrap, uint32_t page_size,
		   uint64_t base, const struct wal_page *pages, size_t n,
		   uint32_t db_size, uint64_t *result, char *err,
		   size_t err_len)
{
	return checksum_after_old(db, unwrap, page_size, base, pages, n,
				  db_size, result, NULL, err, err_len);
}

int checksum_after_old(sqlite3 *db, wal_inject_unwrap_fn unwrap,
		       uint32_t page_size, uint64_t base,
		       const struct wal_page *pages, size_t n, uint32_t db_size,
		       uint64_t *result, struct checksum_old *keep, char *err,
		       size_t err_len)
{
	struct slot *slots = calloc(n ? n : 1, sizeof *slots);
	uint32_t *want = NULL, old_pages = 0, p;
	uint8_t *old = NULL, *zeros = calloc(1, page_size);
	size_t i, k = 0, n_want = 0, n_read;
	char *msg = NULL;
	uint64_t sum = base;
	int rv = -1, rc;

	if (slots == NULL || zeros == NULL)
		goto oom;
	/* The latest image of each page up to db_size, sorted by page. */
	for (i = 0; i < n; i++) {
		if (pages[i].pgno == 0 || pages[i].pgno > db_size)
			continue;
		slots[k].pgno = pages[i].pgno;
		slots[k].index = i;
		k++;
	}
	qsort(slots, k, sizeof *slots, cmp_slot);
	for (i = 0; i < k; i++) {
		if (i + 1 < k && slots[i + 1].pgno == slots[i].pgno)
			continue;
		slots[n_want++] = slots[i];
	}
	/* First the database size before, then the old images of the
	 * pages written and of the pages cut off. */
	rc = wal_read_pages(db, unwrap, page_size, NULL, 0, NULL, &old_pages,
			    &msg);
	if (rc != SQLITE_OK)
		goto read_failed;
	n_read = n_want + (old_pages > db_size ? old_pages - db_size : 0);
	want = malloc((n_read ? n_read : 1) * sizeof *want);
	old = malloc((n_read ? n_read : 1) * (size_t)page_size);
	if (want == NULL || old == NULL)
		goto oom;
	for (i = 0; i < n_want; i++)
		want[i] = slots[i].pgno;
	for (p = db_size + 1; p <= old_pages; p++)
		want[i++] = p;
	rc = wal_read_pages(db, unwrap, page_size, want, n_read, old,
			    &old_pages, &msg);
	if (rc != SQLITE_OK)
		goto read_failed;
	/* As the primary does (server/store_sum.c): pages the database grew
	 * to count as zeros until written; written pages swap their old
	 * term for the new; pages past the new end leave. */
	for (p = old_pages + 1; p <= db_size; p++)
		sum ^= zero_term(p, zeros, page_size);
	for (i = 0; i < n_want; i++) {
		uint32_t pg = slots[i].pgno;
		uint64_t before =
		    pg <= old_pages
			? dbsum_page(pg, old + i * page_size, page_size)
			: zero_term(pg, zeros, page_size);
		sum ^= before ^
		       dbsum_page(pg, pages[slots[i].index].data, page_size);
	}
	for (i = n_want; i < n_read; i++)
		sum ^=
		    dbsum_page(want[i], old + i * (size_t)page_size, page_size);
	*result = sum;
	if (keep != NULL) {
		/* Pages the database grows to had no content before. */
		for (i = 0; i < n_want; i++) {
			if (want[i] > old_pages)
				memset(old + i * (size_t)page_size, 0,
				       page_size);
		}
		keep->db_pages = old_pages;
		keep->n = n_read;
		keep->pgnos = want;
		keep->images = old;
		want = NULL;
		old = NULL;
	}
	rv = 0;
	goto out;
read_failed:
	errors_set(err, err_len, "cannot read the local pages: %s",
		   msg ? msg : sqlite3_errstr(rc));
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	sqlite3_free(msg);
	free(slots);
	free(want);
	free(old);
	free(zeros);
	return rv;
}
