/* The conflict records, "app.db-replite-conflicts" beside the database: one
 * JSON object per line (JSON Lines), appended when the replica resolves a
 * conflict between a local transaction and the primary, for the
 * application to read.  They survive restarts until cleared.
 *
 * Each record is one write of a compact line with O_APPEND, made durable
 * before the call returns.  An encrypted replica's records (c given below)
 * are sealed one by one (wal/cipher.h cipher_seal_text, AES-256-GCM): each
 * line is then {"sealed":"<base64 of nonce, record, tag>"}.  A crash can leave
 * the last line torn (no newline, not valid JSON): readers skip any line that
 * is not a JSON object, and the next append starts on a line of its own. */
#ifndef REPLITE_SYNC_CONFLICTS_H
#define REPLITE_SYNC_CONFLICTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CONFLICTS_SUFFIX "-replite-conflicts"

/* c below: an encrypted replica's cipher, or NULL. */
struct cipher;

/* Append records (a JSON object, or an array of them; not consumed) to
 * the conflicts of db_path, one compact line each, in one write, creating
 * the file (mode 0644) if missing, and fdatasync it.  Returns 0, or -1
 * with err naming the file and the cause. */
int conflicts_append(const char *db_path, const struct cipher *c,
		     const json_t *records, char *err, size_t err_len);

/* All records of db_path as the text of one JSON array, "[{...},{...}]",
 * oldest first (malloc'd); "[]" when the file is missing or empty.  Lines
 * that are not JSON objects (a torn last line) are skipped.  NULL with err
 * on an I/O error, out of memory, or a sealed record without c or that
 * does not authenticate. */
char *conflicts_read_json(const char *db_path, const struct cipher *c,
			  char *err, size_t err_len);

/* The number of records (the lines that are JSON objects) in *n; 0 when the
 * file is missing.  Returns 0, or -1 with err. */
int conflicts_count(const char *db_path, const struct cipher *c, uint64_t *n,
		    char *err, size_t err_len);

/* The transactions the records name (their "txn"), as the keys of a JSON
 * object (new reference): a conflict resolved again after a crash is
 * recorded once.  NULL with err on an I/O error or out of memory. */
json_t *conflicts_txn_ids(const char *db_path, const struct cipher *c,
			  char *err, size_t err_len);

/* Remove all records: truncate the file to 0 bytes and fdatasync it (a
 * missing file is fine).  Returns 0, or -1 with err. */
int conflicts_clear(const char *db_path, char *err, size_t err_len);

#endif
