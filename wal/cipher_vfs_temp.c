#include "cipher_vfs_temp.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wal/cipher_temp.h"

/* A write larger than this is encrypted and written in pieces, so that the
 * scratch buffer of a file stays small (a sort may have many files open).
 * SQLite writes at most a page at once to its temporary files (a sorter
 * buffer is a page), 64 KiB at most. */
#define CHUNK_BYTES (64 * 1024)

/* Bytes [start, end) of the file were written through the cipher. */
struct extent {
	sqlite3_int64 start;
	sqlite3_int64 end;
};

struct cipher_vfs_temp {
	struct cipher_temp *c;
	/* What was written through c: sorted, disjoint, none touching the
	 * next.  Any other byte (a gap a write past the end left, the
	 * zeros of an extension, past the end) is the root's and reads as
	 * it gives it (zeros), not decrypted (keystream).  Kept here, not on
	 * disk: no other handle can write the file (it has no name, or was
	 * unlinked at open).  Few: SQLite appends to spill files and
	 * journals, and the pages a temporary database spills out of order
	 * join up as the gaps between them are written. */
	struct extent *ext;
	size_t n, n_cap;
	/* The ciphertext of a write: SQLite's buffer is const, and
	 * encrypting from it into this one never puts plaintext here. */
	uint8_t *buf;
	size_t cap;
};

int cipher_vfs_temp_wanted(sqlite3_filename name, int flags)
{
	return name == NULL || (flags & SQLITE_OPEN_DELETEONCLOSE) != 0;
}

int cipher_vfs_temp_new(struct cipher_vfs_temp **out)
{
	struct cipher_vfs_temp *t = calloc(1, sizeof *t);

	*out = NULL;
	if (t == NULL)
		return -1;
	if (cipher_temp_new(&t->c) != 0) {
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void cipher_vfs_temp_free(struct cipher_vfs_temp *t)
{
	if (t == NULL)
		return;
	cipher_temp_free(t->c);
	free(t->ext);
	free(t->buf);
	free(t);
}

/* ---------------------------------------------------------------------- */
/* extents */

/* The index of the first extent that ends at or after off, or t->n. */
static size_t first_ending_from(const struct cipher_vfs_temp *t,
				sqlite3_int64 off)
{
	size_t lo = 0, hi = t->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (t->ext[mid].end < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Room for one more extent, before the write (adding must not fail after
 * it).  Returns 0 or -1. */
static int extents_reserve(struct cipher_vfs_temp *t)
{
	struct extent *e;
	size_t cap;

	if (t->n < t->n_cap)
		return 0;
	cap = t->n_cap ? 2 * t->n_cap : 8;
	e = realloc(t->ext, cap * sizeof *e);
	if (e == NULL)
		return -1;
	t->ext = e;
	t->n_cap = cap;
	return 0;
}

/* [a, b) was written: merged with the extents it overlaps or touches. */
static void extents_add(struct cipher_vfs_temp *t, sqlite3_int64 a,
			sqlite3_int64 b)
{
	size_t i = first_ending_from(t, a), j = i;

	assert(a < b);
	while (j < t->n && t->ext[j].start <= b)
		j++;
	if (i == j) {
		assert(t->n < t->n_cap); /* extents_reserve */
		memmove(t->ext + i + 1, t->ext + i,
			(t->n - i) * sizeof *t->ext);
		t->ext[i].start = a;
		t->ext[i].end = b;
		t->n++;
		return;
	}
	/* Extents i to j - 1 become one. */
	if (a < t->ext[i].start)
		t->ext[i].start = a;
	t->ext[i].end = b > t->ext[j - 1].end ? b : t->ext[j - 1].end;
	memmove(t->ext + i + 1, t->ext + j, (t->n - j) * sizeof *t->ext);
	t->n -= j - i - 1;
}

/* ---------------------------------------------------------------------- */
/* io */

int cipher_vfs_temp_read(struct cipher_vfs_temp *t, sqlite3_file *real,
			 void *buf, int amt, sqlite3_int64 off)
{
	uint8_t *out = buf;
	sqlite3_int64 end = off + amt, lo, hi;
	size_t i;
	int rc;

	assert(amt >= 0 && off >= 0);
	rc = real->pMethods->xRead(real, buf, amt, off);
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return rc;
	/* Only what was written is decrypted: the root's zeros past its end
	 * (with its short-read code) and in gaps stay zeros. */
	for (i = first_ending_from(t, off + 1);
	     i < t->n && t->ext[i].start < end; i++) {
		lo = t->ext[i].start > off ? t->ext[i].start : off;
		hi = t->ext[i].end < end ? t->ext[i].end : end;
		if (cipher_temp_xor(t->c, (uint64_t)lo, out + (lo - off),
				    out + (lo - off), (size_t)(hi - lo)) != 0)
			return SQLITE_IOERR_READ;
	}
	return rc;
}

int cipher_vfs_temp_write(struct cipher_vfs_temp *t, sqlite3_file *real,
			  const void *buf, int amt, sqlite3_int64 off)
{
	const uint8_t *in = buf;
	size_t want = amt < CHUNK_BYTES ? (size_t)amt : CHUNK_BYTES;
	int n, rc;

	assert(amt >= 0 && off >= 0);
	if (amt == 0)
		return SQLITE_OK;
	if (want > t->cap) {
		uint8_t *b = realloc(t->buf, want);
		if (b == NULL)
			return SQLITE_IOERR_NOMEM;
		t->buf = b;
		t->cap = want;
	}
	if (extents_reserve(t) != 0)
		return SQLITE_IOERR_NOMEM;
	/* Pieces need no alignment: each byte's keystream depends on its
	 * offset alone.  A temporary file does not outlive a crash, so a
	 * write in several pieces is as good as one. */
	while (amt > 0) {
		n = amt < CHUNK_BYTES ? amt : CHUNK_BYTES;
		if (cipher_temp_xor(t->c, (uint64_t)off, in, t->buf,
				    (size_t)n) != 0)
			return SQLITE_IOERR_WRITE;
		rc = real->pMethods->xWrite(real, t->buf, n, off);
		if (rc != SQLITE_OK)
			return rc;
		/* Piece by piece: each joins the last, so one reserved
		 * extent is enough. */
		extents_add(t, off, off + n);
		in += n;
		off += n;
		amt -= n;
	}
	return SQLITE_OK;
}

int cipher_vfs_temp_truncate(struct cipher_vfs_temp *t, sqlite3_file *real,
			     sqlite3_int64 size)
{
	int rc = real->pMethods->xTruncate(real, size);

	/* Also when it failed: part of the file may be gone.  A larger size
	 * extends the file with the root's zeros, which stay zeros. */
	while (t->n > 0 && t->ext[t->n - 1].start >= size)
		t->n--;
	if (t->n > 0 && t->ext[t->n - 1].end > size)
		t->ext[t->n - 1].end = size;
	return rc;
}
