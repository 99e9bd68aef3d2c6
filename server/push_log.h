/* The record of pushed transactions of one generation, so that a push sent
 * again is recognised and answered as committed: never applied twice, and
 * never taken for another writer's conflicting transaction.  A push is sent
 * again by libcurl itself (it silently resends a POST whose kept-alive
 * connection died before any answer), by the replica's own retry after a
 * failed request, and by a client whose answer was lost.  Replicas name
 * each transaction with a random 128-bit id (?txn= on every request of its
 * push); pushes without an id are not recorded.
 *
 * The file (gen-N/pushes.log) is a sequence of entries, each a 64-byte
 * header, optionally followed by the transaction's frames:
 *
 *    0  "RPL2" ("RPL1": an entry of an older version, without frames)
 *    4  the transaction's id (16 bytes)
 *   20  its first frame in the generation's log (u32, big-endian)
 *   24  its last frame (the commit frame)
 *   28  flags (u32): PUSH_LOG_FRAMES, the frames follow; PUSH_LOG_DROPPED,
 *       the entry no longer counts (start-up recovery found it past the
 *       log's head and unusable)
 *   32  the digest of its frames (push_log_digest, u64 big-endian)
 *   40  when the transaction was logged (Unix ms, i64 big-endian; 0 in
 *       entries of older versions): start-up gives the commit this time
 *       when it copies the entry back (time_log.h)
 *   48  zero (8 bytes)
 *   56  XXH3-64 of bytes 0..55 (u64 big-endian)
 *   64  with PUSH_LOG_FRAMES: its last - first + 1 frames as pushed (24-byte
 *       header + page each); the digest checks them
 *
 * One fdatasync per pushed transaction (issue 16).  The entry, frames
 * included, is appended and made durable *before* the frames are written
 * to the frame log, and that write is not synced: the transaction is
 * durable through this file alone, and the frame log's next fdatasync
 * (group commit, the maintenance tick, a rollover, a clean close) covers
 * it there too.  Start-up (store_gen.c) copies into the frame log every
 * entry that continues right after the log's head, so a commit whose
 * frames the log lost comes back, with its record; an entry past the head
 * that cannot be copied (frames torn or missing: it was never answered) is
 * marked dropped.  So a record never claims a commit whose frames are not
 * durable, and a commit never loses its record.  Once the frame log is
 * synced past an entry its frames are no longer needed and are punched out
 * (push_log_release), so the file stays small on disk.
 *
 * Older entries (RPL1) were written without frames, before their frames
 * went to the frame log: one past the head is dropped at start-up, and any
 * record counts only while the frame log holds, at first..last, frames with
 * its digest (the caller checks with push_log_digest on what the log holds).
 * A torn entry at the end is cut off at open. */
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
	int64_t unix_ms; /* when it was logged; 0: not recorded */
};

/* Open (creating it if missing) the record file at path and load its
 * records.  Returns 0, or -1 with the cause in err. */
int push_log_open(const char *path, struct push_log **out, char *err,
		  size_t err_len);
void push_log_close(struct push_log *pl);

/* Append an entry with the transaction's frames (r->last - r->first + 1
 * frames of WALFMT_FRAME_SIZE bytes, as pushed; r->digest must be
 * push_log_digest of them) and make it durable (fdatasync).  Callers
 * serialise appends (the primary does so under the live database's write
 * lock); lookups may run concurrently.  On failure the entry is cut off
 * again (durably), or, if even that fails, the log refuses further appends.
 * Returns 0 or -errno. */
int push_log_append_frames(struct push_log *pl, const struct push_log_record *r,
			   const uint8_t *frames);
/* Append an entry without frames (the older format), durably.  Only tests
 * write these now, to build what an older version left. */
int push_log_append(struct push_log *pl, const struct push_log_record *r);
/* Cut the last entry off again, durably: its frames could not be written to
 * the frame log and the push is answered as failed.  Returns 0 or -errno
 * (then the log refuses further appends: the entry may come back). */
int push_log_cancel_last(struct push_log *pl);
/* 1 once an append or a cancel could not be undone. */
int push_log_broken(struct push_log *pl);

/* The newest record of id that is not dropped: 1 with *out, or 0. */
int push_log_find(struct push_log *pl, const uint8_t id[PUSH_LOG_ID_SIZE],
		  struct push_log_record *out);

/* Start-up recovery (store_gen.c).  The number of entries; entry i (in
 * file order = log order), with *has_frames when its frames are kept and
 * *dropped when marked so. */
size_t push_log_count(struct push_log *pl);
void push_log_entry(struct push_log *pl, size_t i, struct push_log_record *r,
		    int *has_frames, int *dropped);
/* Read entry i's frames (last - first + 1 of WALFMT_FRAME_SIZE bytes)
 * into buf.  Returns 0 or -errno. */
int push_log_read_frames(struct push_log *pl, size_t i, uint8_t *buf);
/* Mark entry i dropped, durably.  Returns 0 or -errno. */
int push_log_drop(struct push_log *pl, size_t i);

/* The frame log is synced through frame upto: the frames kept for entries
 * ending there or before are punched out of the file (best effort). */
void push_log_release(struct push_log *pl, uint32_t upto);
/* The file's size as the last fdatasync left it (crash images in tests). */
uint64_t push_log_synced_size(struct push_log *pl);

/* The digest of n frames in wire and log format (24-byte header + page of
 * page_size bytes): over each frame's page number, commit size and page,
 * not the salts and checksums, which differ between a push and the log. */
uint64_t push_log_digest(const uint8_t *frames, size_t n, uint32_t page_size);

#endif
