/* The frame log of one generation: a file in SQLite WAL format (32-byte
 * header, then frames of 24-byte header + 4096-byte page, chained
 * checksums), so frame N (1-based) sits at a fixed offset and a torn tail is
 * detected by its checksum.  Only whole transactions count: the head is the
 * last valid commit frame (db_size != 0).
 *
 * Concurrency: one appender at a time (the caller serialises appends, the
 * primary does so under the live database's write lock); any number of
 * readers on other threads.  Frames at or below the head never change. */
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

/* Frames in the log (= number of the last commit frame; 0 when empty). */
uint32_t frame_log_head(struct frame_log *l);
/* Database size in pages after the last commit (0 when empty). */
uint32_t frame_log_db_size(struct frame_log *l);

/* Append frames as frames head+1 ... head+n and make them durable (fsync)
 * before returning; the last entry must be a commit frame.  On failure the
 * head is unchanged (a partial tail is overwritten by the next append and
 * dropped at the next open).  Returns 0 or -errno. */
int frame_log_append(struct frame_log *l, const struct frame_log_entry *e,
		     size_t n);

/* The file descriptor and byte range of frames [start, end): serving a range
 * is a single contiguous read (or sendfile) of length
 * (end - start) * WALFMT_FRAME_SIZE at the returned offset.  Requires
 * 1 <= start < end <= head + 1. */
int frame_log_fd(struct frame_log *l);
uint64_t frame_log_offset(uint32_t frame_no);

/* The log's checksum parameters and the chain right before frame start
 * (1 <= start <= head + 1): the header's checksum for frame 1, else the
 * checksum of frame start - 1.  A reader of frames [start, ...) checks each
 * of them against it (proto/frames.h, "verified transfers").  Returns 0 or
 * -errno. */
int frame_log_chain(struct frame_log *l, uint32_t start, int *big_endian,
		    uint32_t salt[2], uint32_t chain[2]);

/* Read frames [start, end) (header + page each) into buf. */
int frame_log_read(struct frame_log *l, uint32_t start, uint32_t end,
		   uint8_t *buf);

/* Replay frames [1, upto] onto the database file open as db_fd: every page
 * gets its last image at or before upto, then the file is truncated to the
 * database size of frame upto (which must be a commit frame) and fsync'd.
 * Used to build the next generation's base and to bring the live database up
 * to the head at start-up.  Returns 0 or -errno. */
int frame_log_replay(struct frame_log *l, uint32_t upto, int db_fd);

#endif
