#include "outbox_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "wal/walfmt.h"

/* The 14 characters, then NULs up to 16 bytes. */
static const uint8_t file_magic[16] = "replite outbox";

char *outbox_path(const char *db_path)
{
	char *path;

	if (asprintf(&path, "%s" OUTBOX_SUFFIX, db_path) < 0)
		return NULL;
	return path;
}

static int page_size_valid(uint32_t page_size)
{
	return page_size >= 512 && page_size <= 65536 &&
	       (page_size & (page_size - 1)) == 0;
}

ssize_t outbox_pread_upto(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    pread(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static void file_header_encode(const struct outbox *o, uint32_t salt,
			       uint8_t out[OUTBOX_HEADER_SIZE])
{
	memset(out, 0, OUTBOX_HEADER_SIZE);
	memcpy(out, file_magic, sizeof file_magic);
	walfmt_put32(out + 16,
		     o->c != NULL ? OUTBOX_FORMAT_SEALED : OUTBOX_FORMAT);
	walfmt_put32(out + 20, o->page_size);
	walfmt_put32(out + 24, salt);
	walfmt_put32(out + 28, (uint32_t)XXH3_64bits(out, 28));
}

static int file_header_check(struct outbox *o,
			     const uint8_t h[OUTBOX_HEADER_SIZE], char *err,
			     size_t err_len)
{
	uint32_t format = walfmt_get32(h + 16),
		 page_size = walfmt_get32(h + 20);

	if (memcmp(h, file_magic, sizeof file_magic) != 0 ||
	    walfmt_get32(h + 28) != (uint32_t)XXH3_64bits(h, 28)) {
		errors_set(err, err_len,
			   "the outbox file %s does not start with a valid "
			   "outbox header: it is damaged, or not an outbox "
			   "file",
			   o->path);
		return -1;
	}
	if (format == OUTBOX_FORMAT_SEALED && o->c == NULL) {
		errors_set(err, err_len,
			   "the outbox file %s is encrypted, but the replica "
			   "was opened without a key",
			   o->path);
		return -1;
	}
	if (format == OUTBOX_FORMAT && o->c != NULL) {
		errors_set(err, err_len,
			   "the outbox file %s holds pages in clear, but the "
			   "replica is encrypted: it is not this replica's "
			   "outbox",
			   o->path);
		return -1;
	}
	if (format != OUTBOX_FORMAT && format != OUTBOX_FORMAT_SEALED) {
		errors_set(err, err_len,
			   "the outbox file %s has format %u, but this replite "
			   "reads formats %d and %d only: open the database "
			   "with the replite version that wrote it (or a newer "
			   "one)",
			   o->path, format, OUTBOX_FORMAT,
			   OUTBOX_FORMAT_SEALED);
		return -1;
	}
	if (page_size != o->page_size) {
		errors_set(err, err_len,
			   "the outbox file %s holds pages of %u bytes, but "
			   "the database's page size is %u",
			   o->path, page_size, o->page_size);
		return -1;
	}
	o->salt = walfmt_get32(h + 24);
	return 0;
}

int outbox_reread_salt(struct outbox *o, char *err, size_t err_len)
{
	uint8_t h[OUTBOX_HEADER_SIZE];
	uint32_t was = o->salt;
	ssize_t got = outbox_pread_upto(o->fd, h, sizeof h, 0);

	if (got < 0) {
		errors_set(err, err_len, "cannot read the outbox file %s: %s",
			   o->path, strerror((int)-got));
		return -1;
	}
	if ((size_t)got < sizeof h) {
		errors_set(err, err_len,
			   "the outbox file %s lost its header (%zd bytes "
			   "left): it was damaged while open",
			   o->path, got);
		return -1;
	}
	if (file_header_check(o, h, err, err_len) != 0)
		return -1;
	return o->salt != was;
}

static int write_file_header(struct outbox *o,
			     const uint8_t h[OUTBOX_HEADER_SIZE], char *err,
			     size_t err_len)
{
	int rv = fileio_write_all(o->fd, h, OUTBOX_HEADER_SIZE, 0);

	if (rv == 0 && fdatasync(o->fd) != 0)
		rv = -errno;
	/* The new file's name as durable as the records fdatasync'd into
	 * it later. */
	if (rv == 0)
		rv = fileio_fsync_parent(o->path);
	if (rv != 0) {
		errors_set(err, err_len,
			   "cannot write the header of the outbox file %s: %s",
			   o->path, strerror(-rv));
		return -1;
	}
	return 0;
}

int outbox_open(const char *db_path, uint32_t page_size, const struct cipher *c,
		struct outbox **out, char *err, size_t err_len)
{
	uint8_t want[OUTBOX_HEADER_SIZE], have[OUTBOX_HEADER_SIZE];
	struct outbox *o;
	ssize_t got;

	if (!page_size_valid(page_size)) {
		errors_set(err, err_len,
			   "cannot open the outbox of %s: page size %u is not "
			   "a power of two in 512..65536",
			   db_path, page_size);
		return -1;
	}
	o = calloc(1, sizeof *o);
	if (o == NULL || (o->path = outbox_path(db_path)) == NULL) {
		errors_set(err, err_len,
			   "out of memory opening the outbox of %s", db_path);
		free(o);
		return -1;
	}
	o->page_size = page_size;
	o->c = c;
	o->fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (o->fd < 0) {
		errors_set(err, err_len, "cannot open the outbox file %s: %s",
			   o->path, strerror(errno));
		goto fail;
	}
	/* Salt 0 for a new file: processes creating it at once write the
	 * same bytes.  It changes when the outbox is emptied. */
	file_header_encode(o, 0, want);
	got = outbox_pread_upto(o->fd, have, sizeof have, 0);
	if (got < 0) {
		errors_set(err, err_len, "cannot read the outbox file %s: %s",
			   o->path, strerror((int)-got));
		goto fail;
	}
	if ((size_t)got == sizeof have) {
		if (file_header_check(o, have, err, err_len) != 0)
			goto fail;
	} else if (memcmp(have, want, (size_t)got) == 0) {
		/* Empty, or a prefix of our header: a new file, one another
		 * process is creating right now, or a creation a crash cut
		 * short.  Writing the same bytes again is harmless. */
		if (write_file_header(o, want, err, err_len) != 0)
			goto fail;
	} else {
		errors_set(err, err_len,
			   "the outbox file %s is %zd bytes long, shorter than "
			   "its header, and not a part of one: it is damaged, "
			   "or not an outbox file",
			   o->path, got);
		goto fail;
	}
	*out = o;
	return 0;
fail:
	outbox_close(o);
	return -1;
}

void outbox_close(struct outbox *o)
{
	if (o == NULL)
		return;
	if (o->fd >= 0)
		close(o->fd);
	free(o->path);
	free(o);
}

static int check_record(const struct outbox *o, const struct outbox_record *r,
			char *err, size_t err_len)
{
	uint32_t i;

	if (r->n == 0) {
		errors_set(err, err_len,
			   "cannot append to the outbox file %s: a transaction "
			   "record needs at least one page",
			   o->path);
		return -1;
	}
	for (i = 0; i < r->n; i++) {
		if (r->pgnos[i] == 0 ||
		    (i > 0 && r->pgnos[i] <= r->pgnos[i - 1])) {
			errors_set(err, err_len,
				   "cannot append to the outbox file %s: page "
				   "number %u (at %u) is not above the one "
				   "before it (page numbers are ascending "
				   "from 1)",
				   o->path, r->pgnos[i], i);
			return -1;
		}
	}
	/* The length field is 32 bits. */
	if (outbox_record_length(r->n, o->page_size, o->c != NULL) >
	    UINT32_MAX) {
		errors_set(err, err_len,
			   "cannot append to the outbox file %s: a transaction "
			   "of %u pages of %u bytes makes a record of 4 GiB or "
			   "more",
			   o->path, r->n, o->page_size);
		return -1;
	}
	return 0;
}

/* The record rec as it is written: header, page numbers, new and old
 * images (sealed in an encrypted outbox), in buf (length bytes).  Returns
 * 0, or -1 when sealing failed. */
static int record_encode(const struct outbox *o,
			 const struct outbox_record *rec, uint8_t *buf,
			 uint64_t length)
{
	size_t images = (size_t)rec->n * o->page_size;
	uint8_t *body = buf + OUTBOX_RECORD_HEADER_SIZE, *p = body;
	struct cipher_aad aad[2];
	uint32_t i;

	for (i = 0; i < rec->n; i++, p += 4)
		walfmt_put32(p, rec->pgnos[i]);
	if (o->c != NULL)
		p += CIPHER_SEAL_NONCE;
	memcpy(p, rec->new_pages, images);
	memcpy(p + images, rec->old_pages, images);

	memset(buf, 0, OUTBOX_RECORD_HEADER_SIZE);
	walfmt_put32(buf, OUTBOX_RECORD_MAGIC);
	walfmt_put32(buf + 4, (uint32_t)length);
	memcpy(buf + 8, rec->id, 16);
	walfmt_put32(buf + 24, rec->n);
	walfmt_put32(buf + 28, rec->db_size);
	walfmt_put32(buf + 32, rec->old_db_size);
	walfmt_put32(buf + 36, (rec->has_sums ? OUTBOX_FLAG_HAS_SUMS : 0) |
				   (o->c != NULL ? OUTBOX_FLAG_SEALED : 0));
	outbox_put64(buf + 40, rec->base);
	outbox_put64(buf + 48, rec->result);
	outbox_put64(buf + 56, (uint64_t)rec->commit_unix_ms);
	/* Sealed with what says where the images belong: a sealed body
	 * moved under another header, or page numbers changed, fail. */
	aad[0] = (struct cipher_aad){buf, OUTBOX_RECORD_SEALED_AAD};
	aad[1] = (struct cipher_aad){body, 4 * (size_t)rec->n};
	if (o->c != NULL && cipher_seal(o->c, aad, 2, body + 4 * (size_t)rec->n,
					2 * images) != 0)
		return -1;
	outbox_put64(buf + 64,
		     XXH3_64bits(body, length - OUTBOX_RECORD_HEADER_SIZE));
	walfmt_put32(buf + OUTBOX_RECORD_SALT, o->salt);
	outbox_put64(buf + OUTBOX_RECORD_HASHED,
		     XXH3_64bits(buf, OUTBOX_RECORD_HASHED));
	return 0;
}

int outbox_append(struct outbox *o, const struct outbox_record *rec,
		  uint64_t *at, char *err, size_t err_len)
{
	uint64_t length, total;
	struct stat st;
	uint8_t *buf;
	int rv;

	if (check_record(o, rec, err, err_len) != 0)
		return -1;
	if (o->grown == 0 || o->grown < *at) {
		if (fstat(o->fd, &st) != 0) {
			errors_set(err, err_len,
				   "cannot stat the outbox file %s: %s",
				   o->path, strerror(errno));
			return -1;
		}
		o->grown = (uint64_t)st.st_size;
	}
	if (*at < OUTBOX_HEADER_SIZE || o->grown < *at) {
		errors_set(err, err_len,
			   "cannot append to the outbox file %s at offset "
			   "%llu: the file is %llu bytes long (it changed "
			   "since it was scanned?)",
			   o->path, (unsigned long long)*at,
			   (unsigned long long)o->grown);
		return -1;
	}
	length = outbox_record_length(rec->n, o->page_size, o->c != NULL);
	/* Room ahead: a record that reaches past the end brings OUTBOX_GROW
	 * bytes of zeros with it, in the same write.  The records after it
	 * then overwrite blocks the file system has allocated already, and
	 * the fdatasync of a commit has only data to write, no metadata (a
	 * third cheaper here, as SQLite's WAL once it wraps). */
	total = length;
	if (*at + length > o->grown)
		total = (*at + length + OUTBOX_GROW + 4095) / 4096 * 4096 - *at;
	buf = total > length ? calloc(1, (size_t)total) : malloc((size_t)total);
	if (buf == NULL) {
		errors_set(err, err_len,
			   "out of memory appending to the outbox file %s",
			   o->path);
		return -1;
	}
	if (record_encode(o, rec, buf, length) != 0) {
		free(buf);
		errors_set(err, err_len,
			   "cannot encrypt a record for the outbox file %s "
			   "(OpenSSL's AES-256-GCM failed)",
			   o->path);
		return -1;
	}
	/* What followed the last valid record (zeros, a torn record, or
	 * records of an emptied outbox, with another salt) is overwritten
	 * as far as the record goes; what remains after it is no valid
	 * record of this salt, so the scan still ends after it. */
	rv = fileio_write_all(o->fd, buf, (size_t)total, *at);
	free(buf);
	if (rv != 0) {
		/* Leave no piece of the record behind.  Should this fail
		 * too, a scan still rejects the piece as a torn tail. */
		if (ftruncate(o->fd, (off_t)*at) == 0)
			o->grown = *at;
		errors_set(err, err_len,
			   "cannot append to the outbox file %s at offset "
			   "%llu: %s",
			   o->path, (unsigned long long)*at, strerror(-rv));
		return -1;
	}
	if (*at + total > o->grown)
		o->grown = *at + total;
	*at += length;
	return 0;
}

int outbox_sync(struct outbox *o, char *err, size_t err_len)
{
	if (fdatasync(o->fd) != 0) {
		errors_set(err, err_len, "cannot sync the outbox file %s: %s",
			   o->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Empty the outbox: a new salt in the header makes every record in the
 * file invalid at once (one 32-byte write, made durable), and the file
 * keeps its blocks for the next records, unless it grew large. */
static int empty(struct outbox *o, uint64_t size, char *err, size_t err_len)
{
	uint8_t h[OUTBOX_HEADER_SIZE];
	uint32_t salt;
	int rv = 0;

	do {
		if (getrandom(&salt, sizeof salt, 0) != sizeof salt)
			salt = (uint32_t)XXH3_64bits(&o->salt, sizeof o->salt) ^
			       (uint32_t)time(NULL);
	} while (salt == o->salt);
	if (size > OUTBOX_KEEP_MAX) {
		if (ftruncate(o->fd, OUTBOX_HEADER_SIZE) != 0)
			rv = -errno;
		o->grown = 0;
	}
	file_header_encode(o, salt, h);
	if (rv == 0)
		rv = fileio_write_all(o->fd, h, sizeof h, 0);
	if (rv == 0 && fdatasync(o->fd) != 0)
		rv = -errno;
	if (rv != 0) {
		errors_set(err, err_len, "cannot empty the outbox file %s: %s",
			   o->path, strerror(-rv));
		return -1;
	}
	o->salt = salt;
	return 0;
}

int outbox_truncate(struct outbox *o, uint64_t offset, char *err,
		    size_t err_len)
{
	struct stat st;

	if (fstat(o->fd, &st) != 0) {
		errors_set(err, err_len, "cannot stat the outbox file %s: %s",
			   o->path, strerror(errno));
		return -1;
	}
	/* Past the end, ftruncate would add zeros: a torn tail, but one
	 * the caller cannot have meant. */
	if (offset < OUTBOX_HEADER_SIZE || offset > (uint64_t)st.st_size) {
		errors_set(err, err_len,
			   "cannot truncate the outbox file %s to %llu bytes: "
			   "it is %lld bytes long and its records start at %d",
			   o->path, (unsigned long long)offset,
			   (long long)st.st_size, OUTBOX_HEADER_SIZE);
		return -1;
	}
	if (offset == OUTBOX_HEADER_SIZE)
		return empty(o, (uint64_t)st.st_size, err, err_len);
	/* Undoing the last record (rare): cut it off. */
	if (ftruncate(o->fd, (off_t)offset) != 0 || fdatasync(o->fd) != 0) {
		errors_set(err, err_len,
			   "cannot truncate the outbox file %s to %llu bytes: "
			   "%s",
			   o->path, (unsigned long long)offset,
			   strerror(errno));
		return -1;
	}
	o->grown = offset;
	return 0;
}

void outbox_id_hex(const uint8_t id[16], char out[33])
{
	hex_encode(id, 16, out);
}

void outbox_batch_id(const uint8_t first[16], const uint8_t last[16],
		     uint8_t out[16])
{
	uint8_t both[32];
	XXH128_canonical_t c;

	memcpy(both, first, 16);
	memcpy(both + 16, last, 16);
	XXH128_canonicalFromHash(
	    &c, XXH3_128bits_withSeed(both, sizeof both, OUTBOX_BATCH_SEED));
	memcpy(out, c.digest, 16);
}
