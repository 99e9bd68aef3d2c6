/* The offline replica's outbox, "app.db-replite-outbox" beside the database:
 * the write transactions committed locally and not yet pushed to the
 * primary, oldest first.  A local commit appends its record BEFORE the
 * transaction's commit frame reaches the local WAL, so every committed local
 * transaction is in the outbox (a record whose commit then failed is removed
 * with outbox_truncate).
 *
 * All integers are big-endian, as in SQLite's WAL.  The file header, 32
 * bytes:
 *
 *    0  16  magic "replite outbox\0\0"
 *   16   4  format: 1, or 2 for the outbox of an encrypted replica
 *   20   4  page size of the database
 *   24   4  salt: 0 in a new file, a new random value each time the
 *           outbox is emptied
 *   28   4  low 32 bits of XXH3_64bits(bytes 0..27)
 *
 * then records, back to back.  A record is a 96-byte header:
 *
 *    0   4  magic 0x52504f42 ("RPOB")
 *    4   4  length: the whole record's bytes, header included
 *    8  16  transaction id
 *   24   4  n: pages written (>= 1)
 *   28   4  db_size: database size in pages after the transaction
 *   32   4  old_db_size: database size in pages before it
 *   36   4  flags: bit 0 = has_sums (base and result are meaningful),
 *           bit 1 = sealed (set in every record of a format-2 file)
 *   40   8  base: whole-database checksum before (base/dbsum.h)
 *   48   8  result: whole-database checksum after
 *   56   8  commit time, Unix milliseconds (signed)
 *   64   8  body_hash: XXH3_64bits of the body
 *   72   4  salt: the file header's when the record was written
 *   76  12  zeros
 *   88   8  header_hash: XXH3_64bits(bytes 0..87)
 *
 * and a body: n page numbers (4 bytes each, ascending), the n new page
 * images, then the n old page images (page_size bytes each), so length =
 * 96 + 4n + 2 n page_size.
 *
 * In a format-2 outbox (an encrypted replica, docs/architecture.md
 * "Encryption at rest") the images are sealed (wal/cipher.h cipher_seal:
 * AES-256-GCM, authenticated with the header's bytes 0..63 and the page
 * numbers): a 12-byte nonce, the images encrypted, a 16-byte tag, so length
 * = 96 + 4n + 2 n page_size + 28.  The page numbers stay in clear, as in
 * the WAL's frame headers; body_hash covers the bytes as stored, so torn
 * records are found without the key.
 *
 * The records end at the first header that is not valid: zeros, a torn
 * record, or a record of another salt.  The file is longer than its records:
 * it grows OUTBOX_GROW bytes of zeros at a time (outbox_append), so that
 * appends overwrite allocated blocks and a commit's fdatasync writes no
 * metadata, and emptying the outbox (outbox_truncate to the first record)
 * only changes the salt, which makes every record in the file invalid in
 * one durable 32-byte write and keeps the blocks.
 *
 * One writer appends at a time (it holds the database's WAL write lock), each
 * record with one pwrite; other processes may scan the file meanwhile without
 * the lock.  A reader may therefore see the last record half written, and a
 * crash may leave it so: every record's header is checked by its hash, and
 * the body of the last record by body_hash; the first record that fails
 * ends the valid records, and the next append overwrites it.  Bodies of
 * earlier records are not read by a scan: a record followed by another was
 * wholly written before that one began.  After a power loss that holds only
 * for records made durable (outbox_sync) before the next was appended;
 * outbox_read verifies the body hash of any record anyway. */
#ifndef REPLITE_SYNC_OUTBOX_H
#define REPLITE_SYNC_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#define OUTBOX_SUFFIX "-replite-outbox"
#define OUTBOX_FORMAT 1
#define OUTBOX_FORMAT_SEALED 2
#define OUTBOX_HEADER_SIZE 32        /* the file header */
#define OUTBOX_RECORD_HEADER_SIZE 96 /* each record's header */
#define OUTBOX_RECORD_MAGIC 0x52504f42u

struct outbox;
struct cipher;

/* What a writer appends. */
struct outbox_record {
	uint8_t id[16];
	uint32_t n;
	const uint32_t *pgnos;    /* ascending, distinct, >= 1 */
	const uint8_t *new_pages; /* n * page_size */
	const uint8_t *old_pages; /* n * page_size */
	uint32_t db_size;         /* after the transaction, in pages */
	uint32_t old_db_size;     /* before it */
	int has_sums;             /* base and result are meaningful */
	uint64_t base, result;    /* whole-database checksums */
	int64_t commit_unix_ms;
};

/* A record's header, as outbox_scan found it. */
struct outbox_entry {
	uint8_t id[16];
	uint32_t n, db_size, old_db_size;
	int has_sums;
	uint64_t base, result;
	int64_t commit_unix_ms;
	uint64_t offset; /* of the record in the file */
	uint64_t length; /* of the whole record */
	uint64_t body_hash;
};

/* "db_path-replite-outbox" in a malloc'd string (NULL when out of memory). */
char *outbox_path(const char *db_path);

/* Open the outbox of db_path, creating it (mode 0644) if missing.  A file
 * without a header (new, or its creation cut short by a crash) gets one,
 * written and made durable.  c (NULL: none) is the encrypted replica's
 * cipher, which must outlive the handle: the outbox is then format 2.
 * Returns 0 with *out, or -1 with err naming the file and the cause: I/O
 * error, a header that is not an outbox header, one of another format or
 * page size, an encrypted outbox without c or a plain one with c. */
int outbox_open(const char *db_path, uint32_t page_size, const struct cipher *c,
		struct outbox **out, char *err, size_t err_len);

/* Close the file and free o (NULL is fine). */
void outbox_close(struct outbox *o);

/* Append rec at *at, the end of the valid records as outbox_scan's
 * valid_end reported it: the whole record is written with one pwrite (with
 * OUTBOX_GROW bytes of zeros after it when it reaches past the file's end)
 * over whatever follows the valid records, and *at becomes its end.  Not made
 * durable (see outbox_sync).  The caller holds the database's WAL write lock.
 * Returns 0, or -1 with err (*at unchanged, the file cut back to *at): I/O
 * error, an invalid record (n = 0, page numbers not ascending from 1, a record
 * of 4 GiB or more), or a file shorter than *at (changed since the scan). */
int outbox_append(struct outbox *o, const struct outbox_record *rec,
		  uint64_t *at, char *err, size_t err_len);

/* fdatasync the file.  Returns 0, or -1 with err. */
int outbox_sync(struct outbox *o, char *err, size_t err_len);

/* Drop every record from offset on (a record boundary, >= 32, not past the
 * end): undo an append whose commit failed (the file is cut there), or empty
 * the outbox (offset 32) once everything is pushed (a new salt).  Made
 * durable.  Returns 0, or -1 with err. */
int outbox_truncate(struct outbox *o, uint64_t offset, char *err,
		    size_t err_len);

/* The headers of the valid records from offset from (a record boundary;
 * 32 = the first) on, in *entries (malloc'd, *n of them; NULL when *n is
 * 0), and in *valid_end the end of the last valid one (from if none).
 * Valid: the header hash matches, the magic, flags, n and length agree,
 * the record lies wholly inside the file and, for the last record in the
 * file only, the body hash matches.  The first invalid record ends the scan
 * (it and what follows are a torn tail: not an error).  Returns 0, or -1
 * with err on an I/O error or a from before 32 or past the end. */
int outbox_scan(struct outbox *o, uint64_t from, struct outbox_entry **entries,
		size_t *n, uint64_t *valid_end, char *err, size_t err_len);

/* Is the record at off (a record boundary) the last valid one, as the
 * file is now?  1 with its header in *e (checked by its hash, not its
 * body), 0 when there is no valid record at off, another follows it, or the
 * outbox was emptied since the handle last looked (its salt changed), -1
 * with err on an I/O error.  The cheap check that the records this process
 * scanned, or appended, are still all there are. */
int outbox_last_at(struct outbox *o, uint64_t off, struct outbox_entry *e,
		   char *err, size_t err_len);

/* Read the body of the record e: *pgnos (n of them), *new_pages and
 * *old_pages (n * page_size bytes each), all malloc'd (free with free()).
 * Returns 0, or -1 with err naming the file and the offset: I/O error, or
 * "corrupt" when the body does not match its hash, the record there is no
 * longer the one scanned, or sealed images do not authenticate. */
int outbox_read(struct outbox *o, const struct outbox_entry *e,
		uint32_t **pgnos, uint8_t **new_pages, uint8_t **old_pages,
		char *err, size_t err_len);

/* Only the page numbers of the record e, in *pgnos (malloc'd, e->n of
 * them), not checked against the body hash: for planning which pages to
 * look at before the record is read whole (outbox_read checks it then).
 * Returns 0, or -1 with err naming the file: I/O error, or the file ends
 * first. */
int outbox_read_pgnos(struct outbox *o, const struct outbox_entry *e,
		      uint32_t **pgnos, char *err, size_t err_len);

/* The id of one push holding the records first..last (two or more): a
 * function of the two ids alone, and unlike any record's. */
void outbox_batch_id(const uint8_t first[16], const uint8_t last[16],
		     uint8_t out[16]);

/* A transaction id as 32 lowercase hex digits and a NUL. */
void outbox_id_hex(const uint8_t id[16], char out[33]);

#endif
