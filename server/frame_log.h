/* The frame log of one generation: a file in SQLite WAL format (32-byte
 * header, then frames of 24-byte header + 4096-byte page, chained
 * checksums), so frame N (1-based) sits at a fixed offset and a torn tail is
 * detected by its checksum.  Only whole transactions count: the head is the
 * last valid commit frame (db_size != 0).
 *
 * Concurrency: one appender at a time (the caller serialises appends, the
 * primary does so under the live database's write lock); any number of
 * readers on other threads (see "group commit" below). */
#ifndef REPLITE_FRAME_LOG_H
#define REPLITE_FRAME_LOG_H

#include <stddef.h>
#include <stdint.h>

struct frame_log;

struct frame_log_entry {
	uint32_t pgno;       /* >= 1 */
	uint32_t db_size;    /* pages after commit on a commit frame, else 0 */
	const uint8_t *page; /* WALFMT_PAGE_SIZE bytes */
};

/* Open (create = 1: create if missing) the log at path.  Verifies the header
 * and the checksum chain and truncates (durably) everything after the last
 * valid commit frame.  Returns 0, or -1 with the cause in err. */
int frame_log_open(const char *path, int create, struct frame_log **out,
		   char *err, size_t err_len);
void frame_log_close(struct frame_log *l);

/* Group commit.  An appender under the write lock stores a transaction with
 * frame_log_write, which advances the *written* head; the frames become
 * durable at the next frame_log_sync, whoever calls it (the store's
 * group-commit leader, a push, a rollover), which advances the *durable*
 * head.  Readers that serve frames to others use the durable head; the
 * appender, which numbers the next frames and checks pushes against what
 * is logged, uses the written one.  Frames at or below the written head
 * never change. */

/* The durable head: the last commit frame an fdatasync covered, or that
 * the appender declared durable (0 when empty). */
uint32_t frame_log_head(struct frame_log *l);
/* The synced head: the last commit frame an fdatasync of this file
 * covered (<= the durable head). */
uint32_t frame_log_synced_head(struct frame_log *l);
/* The appender made the frames it wrote durable elsewhere (a pushed
 * transaction's frames in the push log, push_log.h, from which start-up
 * copies them back): advance the durable head to the written head without
 * an fdatasync.  Every frame before those must be durable already. */
void frame_log_declare_durable(struct frame_log *l);
/* The written head: the last commit frame stored (>= the durable head). */
uint32_t frame_log_written_head(struct frame_log *l);
/* Database size in pages after the written head (0 when empty). */
uint32_t frame_log_db_size(struct frame_log *l);

/* Store frames as frames written+1 ... written+n, without waiting for the
 * disk; the last entry must be a commit frame.  On failure the head is
 * unchanged (a partial tail is cut off durably, or, if even that fails, the
 * log refuses further appends).  Returns 0 or -errno. */
int frame_log_write(struct frame_log *l, const struct frame_log_entry *e,
		    size_t n);
/* fdatasync the log and advance the synced and durable heads to the
 * written head as it was before the call (no system call when everything
 * written is synced).  Calls are
 * serialised.  A failure breaks the log for good: Linux may drop the pages
 * it could not write, so a later fdatasync would prove nothing.  The
 * caller keeps the log open meanwhile.  Returns 0 or -errno (-EIO once
 * broken). */
int frame_log_sync(struct frame_log *l);
/* Time every fdatasync of frame_log_sync into h (metrics.h; it must
 * outlive the log), e.g. the store's fsync latency for /metrics. */
struct metrics_histogram;
void frame_log_set_sync_histogram(struct frame_log *l,
				  struct metrics_histogram *h);
/* 1 once a failed sync (or an append that could not be undone) broke the
 * log: it takes no more appends and its durable head stays. */
int frame_log_broken(struct frame_log *l);
/* frame_log_write + frame_log_sync: the transaction is durable on return.
 * When the sync fails the frames stay written (and the log broken): their
 * fate is unknown until the next open.  Returns 0 or -errno. */
int frame_log_append(struct frame_log *l, const struct frame_log_entry *e,
		     size_t n);

/* The file descriptor and byte range of frames [start, end): serving a range
 * is a single contiguous read (or sendfile) of length
 * (end - start) * WALFMT_FRAME_SIZE at the returned offset.  Requires
 * 1 <= start < end <= head + 1 (the durable head, for what is served). */
int frame_log_fd(struct frame_log *l);
uint64_t frame_log_offset(uint32_t frame_no);

/* The log's checksum parameters and the chain right before frame start
 * (1 <= start <= written head + 1): the header's checksum for frame 1, else the
 * checksum of frame start - 1.  A reader of frames [start, ...) checks each
 * of them against it (proto/frames.h, "verified transfers").  Returns 0 or
 * -errno. */
int frame_log_chain(struct frame_log *l, uint32_t start, int *big_endian,
		    uint32_t salt[2], uint32_t chain[2]);

/* Read frames [start, end) (header + page each, end <= written head + 1)
 * into buf. */
int frame_log_read(struct frame_log *l, uint32_t start, uint32_t end,
		   uint8_t *buf);

/* Replay frames [1, upto] onto the database file open as db_fd: every page
 * gets its last image at or before upto, then the file is truncated to the
 * database size of frame upto (which must be a commit frame) and fsync'd.
 * Used to build the next generation's base and to bring the live database up
 * to the head at start-up.  Returns 0 or -errno. */
int frame_log_replay(struct frame_log *l, uint32_t upto, int db_fd);

#endif
