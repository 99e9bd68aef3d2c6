/* The outbox's handle and record layout, shared by the files that implement
 * it (outbox.h is the interface and teaches the format): outbox.c (opening,
 * the file header, appending and truncating) and outbox_scan.c (scanning
 * the records and reading their bodies). */
#ifndef REPLITE_OUTBOX_INTERNAL_H
#define REPLITE_OUTBOX_INTERNAL_H

#include <sys/types.h>

#include "sync/outbox.h"
#include "wal/cipher.h"
#include "wal/walfmt.h"

/* Bit 0 of a record's flags: base and result are meaningful. */
#define OUTBOX_FLAG_HAS_SUMS 1u
/* Bit 1: the page images are sealed (an encrypted outbox, format 2). */
#define OUTBOX_FLAG_SEALED 2u
/* The bytes of a record header a sealed record authenticates with its
 * images (magic to commit time: all but the hashes and the salt). */
#define OUTBOX_RECORD_SEALED_AAD 64
/* Mixed into the hash of a push of several records (outbox_batch_id). */
#define OUTBOX_BATCH_SEED 0x7265706c62617463ull /* "replbatc" */
/* Bytes of a record header covered by its hash (the hash is the rest). */
#define OUTBOX_RECORD_HASHED 88

/* Past its last record, the file grows by this many bytes of zeros at a
 * time, written with the record that needs the room (outbox_append). */
#define OUTBOX_GROW (256 * 1024)
/* Emptied (outbox_truncate to the first record), a file up to this size
 * keeps its blocks for the records to come; a larger one is cut back. */
#define OUTBOX_KEEP_MAX (8 * 1024 * 1024)
/* Where a record header keeps the salt of its file's header. */
#define OUTBOX_RECORD_SALT 72

struct outbox {
	int fd;
	uint32_t page_size;
	/* An encrypted outbox (format 2): the replica's, not owned. */
	const struct cipher *c;
	char *path;
	/* The file header's salt as last read (every record of the current
	 * file carries it), and how far the file is known to extend (0:
	 * not known yet). */
	uint32_t salt;
	uint64_t grown;
};

static inline void outbox_put64(uint8_t *p, uint64_t v)
{
	walfmt_put32(p, (uint32_t)(v >> 32));
	walfmt_put32(p + 4, (uint32_t)v);
}

static inline uint64_t outbox_get64(const uint8_t *p)
{
	return (uint64_t)walfmt_get32(p) << 32 | walfmt_get32(p + 4);
}

/* The length of a record of n pages, its images sealed or not. */
static inline uint64_t outbox_record_length(uint32_t n, uint32_t page_size,
					    int sealed)
{
	return OUTBOX_RECORD_HEADER_SIZE + 4 * (uint64_t)n +
	       2 * (uint64_t)n * page_size +
	       (sealed ? CIPHER_SEAL_OVERHEAD : 0);
}

/* pread up to len bytes at off, retrying on EINTR and short transfers: the
 * bytes read (fewer when the file ends first), or -errno.  Unlike
 * fileio_read_all, a short file is no error: another process may be
 * appending to or truncating the outbox while we read it. */
ssize_t outbox_pread_upto(int fd, void *buf, size_t len, uint64_t off);

/* Read the file header again and take its salt (another process may have
 * emptied the outbox since, which changes it).  Returns 1 when the salt
 * changed, 0 when not, -1 with err. */
int outbox_reread_salt(struct outbox *o, char *err, size_t err_len);

#endif
