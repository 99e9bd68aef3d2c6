/* The record of pushed transactions of one generation, so that a push sent
 * again is recognised and answered as committed: never applied twice, and
 * never taken for another writer's conflicting transaction.  A push is sent
 * again by libcurl itself (it silently resends a POST whose kept-alive
 * connection died before any answer), by the replica's own retry after a
 * failed request, and by a client whose answer was lost.  Replicas name
 * each transaction with a random 128-bit id (?txn= on every request of its
 * push); pushes without an id are not recorded.
 *
 * The file (gen-N/pushes.log) is a sequence of 64-byte records:
 *
 *    0  "RPL1"
 *    4  the transaction's id (16 bytes)
 *   20  its first frame in the generation's log (u32, big-endian)
 *   24  its last frame (the commit frame)
 *   28  zero
 *   32  the digest of its frames (push_log_digest, u64 big-endian)
 *   40  zero (16 bytes)
 *   56  XXH3-64 of bytes 0..55 (u64 big-endian)
 *
 * A record is appended and made durable *before* the transaction's frames
 * are appended to the frame log, so a committed transaction always has its
 * record.  A crash in between leaves a record naming frames that never
 * became durable (and that a later transaction may reuse): a record counts
 * only while the frame log holds, at first..last, frames with its digest
 * (the caller checks with push_log_digest on what the log holds).  A torn
 * or damaged record at the end is dropped at open. */
#ifndef REPLITE_PUSH_LOG_H
#define REPLITE_PUSH_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frames.h" /* FRAMES_TXN_ID_SIZE */

#define PUSH_LOG_ID_SIZE FRAMES_TXN_ID_SIZE

struct push_log;

struct push_log_record {
	uint8_t id[PUSH_LOG_ID_SIZE];
	uint32_t first;
	uint32_t last;
	uint64_t digest;
};

/* Open (creating it if missing) the record file at path and load its
 * records.  Returns 0, or -1 with the cause in err. */
int push_log_open(const char *path, struct push_log **out, char *err,
		  size_t err_len);
void push_log_close(struct push_log *pl);

/* Append a record and make it durable (fdatasync).  Callers serialise
 * appends (the primary does so under the live database's write lock);
 * lookups may run concurrently (a mutex guards the records in memory).  Returns
 * 0 or -errno. */
int push_log_append(struct push_log *pl, const struct push_log_record *r);

/* The newest record of id: 1 with *out, or 0 when there is none. */
int push_log_find(struct push_log *pl, const uint8_t id[PUSH_LOG_ID_SIZE],
		  struct push_log_record *out);

/* The digest of n frames in wire and log format (24-byte header + page of
 * page_size bytes): over each frame's page number, commit size and page,
 * not the salts and checksums, which differ between a push and the log. */
uint64_t push_log_digest(const uint8_t *frames, size_t n, uint32_t page_size);

#endif
