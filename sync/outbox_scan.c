#include "outbox_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "base/errors.h"

/* The buffer a scan hashes a tail record's body through. */
#define HASH_CHUNK (64 * 1024)

/* Read len bytes at off into buf and add them to the hash s.  Returns 0, 1
 * when the file ends first, or -errno. */
static int read_hashed(int fd, void *buf, size_t len, uint64_t off,
		       XXH3_state_t *s)
{
	ssize_t got = outbox_pread_upto(fd, buf, len, off);

	if (got < 0)
		return (int)got;
	if ((size_t)got < len)
		return 1;
	XXH3_64bits_update(s, buf, len);
	return 0;
}

/* Decode and check a record header found at off.  Returns 0 when its hash
 * matches, it carries the file's salt and its fields agree, -1 otherwise
 * (zeros, a torn record, a record of before the outbox was emptied). */
static int record_decode(const struct outbox *o, const uint8_t *h, uint64_t off,
			 struct outbox_entry *e)
{
	uint32_t flags = walfmt_get32(h + 36), page_size = o->page_size;
	int sealed = o->c != NULL;

	/* Every record of an encrypted outbox is sealed, and none of a
	 * plain one. */
	if (outbox_get64(h + OUTBOX_RECORD_HASHED) !=
		XXH3_64bits(h, OUTBOX_RECORD_HASHED) ||
	    walfmt_get32(h) != OUTBOX_RECORD_MAGIC ||
	    walfmt_get32(h + OUTBOX_RECORD_SALT) != o->salt ||
	    (flags & ~(OUTBOX_FLAG_HAS_SUMS | OUTBOX_FLAG_SEALED)) ||
	    ((flags & OUTBOX_FLAG_SEALED) != 0) != sealed)
		return -1;
	memcpy(e->id, h + 8, 16);
	e->n = walfmt_get32(h + 24);
	e->length = walfmt_get32(h + 4);
	if (e->n == 0 ||
	    e->length != outbox_record_length(e->n, page_size, sealed))
		return -1;
	e->db_size = walfmt_get32(h + 28);
	e->old_db_size = walfmt_get32(h + 32);
	e->has_sums = (flags & OUTBOX_FLAG_HAS_SUMS) != 0;
	e->base = outbox_get64(h + 40);
	e->result = outbox_get64(h + 48);
	e->commit_unix_ms = (int64_t)outbox_get64(h + 56);
	e->body_hash = outbox_get64(h + 64);
	e->offset = off;
	return 0;
}

/* Does the body of e, as in the file now, match its hash?  1 if so, 0 if
 * not (or the file ends before it does), -errno on an I/O error. */
static int body_matches(const struct outbox *o, const struct outbox_entry *e)
{
	uint64_t off = e->offset + OUTBOX_RECORD_HEADER_SIZE;
	uint64_t end = e->offset + e->length;
	XXH3_state_t *s = XXH3_createState();
	uint8_t *chunk = malloc(HASH_CHUNK);
	int rv = -ENOMEM;

	if (s == NULL || chunk == NULL)
		goto out;
	XXH3_64bits_reset(s);
	for (rv = 0; rv == 0 && off < end; off += HASH_CHUNK) {
		size_t len =
		    end - off < HASH_CHUNK ? (size_t)(end - off) : HASH_CHUNK;
		rv = read_hashed(o->fd, chunk, len, off, s);
	}
	if (rv == 0)
		rv = XXH3_64bits_digest(s) == e->body_hash;
	else if (rv == 1)
		rv = 0;
out:
	free(chunk);
	XXH3_freeState(s);
	return rv;
}

/* The valid record header at off in *e: 1, 0 when there is none (zeros,
 * the file's end, another salt), or -errno. */
static int header_at(struct outbox *o, uint64_t off, struct outbox_entry *e)
{
	uint8_t h[OUTBOX_RECORD_HEADER_SIZE];
	ssize_t got = outbox_pread_upto(o->fd, h, sizeof h, off);

	if (got < 0)
		return (int)got;
	return (size_t)got == sizeof h && record_decode(o, h, off, e) == 0;
}

int outbox_last_at(struct outbox *o, uint64_t off, struct outbox_entry *e,
		   char *err, size_t err_len)
{
	struct outbox_entry next;
	int rv;

	rv = outbox_reread_salt(o, err, err_len);
	if (rv != 0)
		return rv < 0 ? -1 : 0;
	if (off < OUTBOX_HEADER_SIZE)
		return 0;
	rv = header_at(o, off, e);
	if (rv == 1)
		rv = header_at(o, off + e->length, &next);
	else if (rv == 0)
		return 0;
	else
		goto io_error;
	if (rv < 0)
		goto io_error;
	/* Another record after it: the outbox grew since. */
	return rv == 0;
io_error:
	errors_set(err, err_len, "cannot read the outbox file %s: %s", o->path,
		   strerror(-rv));
	return -1;
}

int outbox_scan(struct outbox *o, uint64_t from, struct outbox_entry **entries,
		size_t *n, uint64_t *valid_end, char *err, size_t err_len)
{
	struct outbox_entry *list = NULL, *grown, e;
	size_t count = 0, cap = 0;
	uint64_t off = from, size;
	struct stat st;
	int rv;

	if (outbox_reread_salt(o, err, err_len) < 0)
		return -1;
	if (fstat(o->fd, &st) != 0) {
		errors_set(err, err_len, "cannot stat the outbox file %s: %s",
			   o->path, strerror(errno));
		return -1;
	}
	size = (uint64_t)st.st_size;
	if (from < OUTBOX_HEADER_SIZE || from > size) {
		errors_set(err, err_len,
			   "cannot scan the outbox file %s from offset %llu: "
			   "it is %llu bytes long and its records start at %d",
			   o->path, (unsigned long long)from,
			   (unsigned long long)size, OUTBOX_HEADER_SIZE);
		return -1;
	}
	for (;;) {
		rv = header_at(o, off, &e);
		if (rv < 0)
			goto io_error;
		if (rv == 1 && count == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(list, cap * sizeof *list);
			if (grown == NULL) {
				rv = -ENOMEM;
				goto io_error;
			}
			list = grown;
		}
		if (rv == 1) {
			list[count++] = e;
			off += e.length;
			continue;
		}
		/* The records end here.  The last one is the only one that
		 * may be torn (a record followed by another was wholly
		 * written before that one began): its body is checked, and
		 * a torn one ends the records where it starts. */
		if (count > 0) {
			rv = body_matches(o, &list[count - 1]);
			if (rv < 0)
				goto io_error;
			if (rv == 0)
				off = list[--count].offset;
		}
		break;
	}
	*entries = list;
	*n = count;
	*valid_end = off;
	if (count == 0) {
		free(list);
		*entries = NULL;
	}
	return 0;
io_error:
	errors_set(err, err_len,
		   "cannot read the outbox file %s at offset %llu: %s", o->path,
		   (unsigned long long)off, strerror(-rv));
	free(list);
	return -1;
}

/* Open the sealed images of the record with header h and page numbers pgnos
 * (as stored) at sealed (2 images bytes of data).  Returns 0, or -1. */
static int unseal_images(const struct outbox *o, const uint8_t *h,
			 const uint8_t *pgnos, uint32_t n, uint8_t *sealed,
			 size_t images)
{
	struct cipher_aad aad[2] = {{h, OUTBOX_RECORD_SEALED_AAD},
				    {pgnos, 4 * (size_t)n}};

	return cipher_unseal(o->c, aad, 2, sealed, 2 * images);
}

int outbox_read(struct outbox *o, const struct outbox_entry *e,
		uint32_t **pgnos, uint8_t **new_pages, uint8_t **old_pages,
		char *err, size_t err_len)
{
	uint8_t h[OUTBOX_RECORD_HEADER_SIZE];
	size_t images = (size_t)e->n * o->page_size;
	size_t extra = o->c != NULL ? CIPHER_SEAL_OVERHEAD : 0;
	uint64_t off = e->offset + OUTBOX_RECORD_HEADER_SIZE;
	XXH3_state_t *s = XXH3_createState();
	uint32_t *pg = malloc(4 * (size_t)(e->n ? e->n : 1));
	/* The images as stored (both, with the seal's nonce and tag), then
	 * the new ones stay where they are and the old ones are copied. */
	uint8_t *both = malloc(2 * images + extra + 1);
	uint8_t *op = malloc(images ? images : 1);
	struct outbox_entry now;
	ssize_t got;
	uint32_t i;
	int rv;

	if (s == NULL || pg == NULL || both == NULL || op == NULL) {
		errors_set(err, err_len,
			   "out of memory reading the outbox file %s", o->path);
		rv = -1;
		goto out;
	}
	/* The record there must still be the one scanned: the outbox may
	 * have been truncated and appended to since. */
	got = outbox_pread_upto(o->fd, h, sizeof h, e->offset);
	if (got < 0) {
		rv = (int)got;
		goto io_error;
	}
	if ((size_t)got < sizeof h ||
	    record_decode(o, h, e->offset, &now) != 0 ||
	    now.length != e->length || now.body_hash != e->body_hash ||
	    memcmp(now.id, e->id, sizeof now.id) != 0)
		goto corrupt;
	XXH3_64bits_reset(s);
	rv = read_hashed(o->fd, pg, 4 * (size_t)e->n, off, s);
	off += 4 * (uint64_t)e->n;
	if (rv == 0)
		rv = read_hashed(o->fd, both, 2 * images + extra, off, s);
	if (rv < 0)
		goto io_error;
	if (rv == 1 || XXH3_64bits_digest(s) != e->body_hash)
		goto corrupt;
	if (o->c != NULL) {
		if (unseal_images(o, h, (const uint8_t *)pg, e->n, both,
				  images) != 0) {
			errors_set(err, err_len,
				   "the outbox file %s is corrupt: the "
				   "encrypted pages of the record at offset "
				   "%llu do not authenticate under the "
				   "replica's key",
				   o->path, (unsigned long long)e->offset);
			rv = -1;
			goto out;
		}
		memmove(both, both + CIPHER_SEAL_NONCE, 2 * images);
	}
	memcpy(op, both + images, images);
	for (i = 0; i < e->n; i++)
		pg[i] = walfmt_get32((const uint8_t *)&pg[i]);
	*pgnos = pg;
	*new_pages = both;
	*old_pages = op;
	pg = NULL;
	both = op = NULL;
	rv = 0;
	goto out;
corrupt:
	errors_set(err, err_len,
		   "the outbox file %s is corrupt: the record at offset %llu "
		   "does not match its hash (or was truncated away)",
		   o->path, (unsigned long long)e->offset);
	rv = -1;
	goto out;
io_error:
	errors_set(err, err_len,
		   "cannot read the outbox file %s at offset %llu: %s", o->path,
		   (unsigned long long)e->offset, strerror(-rv));
	rv = -1;
out:
	XXH3_freeState(s);
	free(pg);
	free(both);
	free(op);
	return rv;
}

int outbox_read_pgnos(struct outbox *o, const struct outbox_entry *e,
		      uint32_t **pgnos, char *err, size_t err_len)
{
	size_t len = 4 * (size_t)e->n;
	uint32_t *pg = malloc(len ? len : 1), i;
	ssize_t got;

	if (pg == NULL) {
		errors_set(err, err_len,
			   "out of memory reading the outbox file %s", o->path);
		return -1;
	}
	got = outbox_pread_upto(o->fd, pg, len,
				e->offset + OUTBOX_RECORD_HEADER_SIZE);
	if (got < 0 || (size_t)got < len) {
		errors_set(err, err_len,
			   "cannot read the outbox file %s at offset %llu: %s",
			   o->path, (unsigned long long)e->offset,
			   got < 0 ? strerror((int)-got)
				   : "the file ends first");
		free(pg);
		return -1;
	}
	for (i = 0; i < e->n; i++)
		pg[i] = walfmt_get32((const uint8_t *)&pg[i]);
	*pgnos = pg;
	return 0;
}
