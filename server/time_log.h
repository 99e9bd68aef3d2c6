/* When each commit of a generation was made, durably, for point-in-time
 * restore: the state "as of TIME" is the one after the last commit made at
 * or before TIME.
 *
 * The file (gen-N/times.log) is a sequence of 16-byte records, one per
 * commit frame of the generation's frame log, in frame order:
 *
 *    0  the commit frame (u32, big-endian); 0 for the generation's base
 *    4  when it was made (Unix ms, i64 big-endian)
 *   12  the low 32 bits of XXH3-64 of bytes 0..11 (big-endian)
 *
 * The first record is frame 0: when the state in base.db began (the
 * database's creation or import for the first generation; the previous
 * generation's last commit for the others), so that a time before the
 * generation's first commit resolves to its base.  Frames are strictly
 * increasing and times never decrease: a record is given at least the time
 * of the one before it, so that a clock stepping back cannot make a later
 * commit look earlier, and "the last commit at or before TIME" is the last
 * record at or before it.
 *
 * Durability (store_durable.c, store_push.c): a commit's record is written
 * before its frames go to the frame log, and synced before the log is, so
 * a commit that is durable in the log has its time durable too.  A pushed
 * transaction's time also travels in its push-log entry, since start-up
 * may copy its frames back from there.  Start-up (store_gen.c) cuts records
 * past the log's head (their frames were lost: never answered), and gives
 * a commit the log holds without a record (its frames became durable
 * before its time did, or the log predates this file) the start-up time:
 * when it became visible.  A torn record at the end is cut off at open.
 *
 * Concurrency: one appender at a time (the store's write lock); lookups
 * from any thread (an internal mutex). */
#ifndef REPLITE_TIME_LOG_H
#define REPLITE_TIME_LOG_H

#include <stddef.h>
#include <stdint.h>

#define TIME_LOG_RECORD_SIZE 16

struct time_log;

/* Open (creating it if missing) the time log at path and load it; a torn
 * or damaged tail is cut off, durably.  *created says whether the file was
 * new.  Returns 0, or -1 with the cause in err. */
int time_log_open(const char *path, struct time_log **out, int *created,
		  char *err, size_t err_len);
void time_log_close(struct time_log *t);

/* Write the record of commit frame `frame` (> the last one's, or 0 as the
 * first record) made at unix_ms, without waiting for the disk; the time
 * recorded is max(unix_ms, the last record's).  Returns 0 or -errno
 * (-EINVAL for a frame not after the last one's). */
int time_log_append(struct time_log *t, uint32_t frame, int64_t unix_ms);
/* Make every record written durable (fdatasync, when any is not).
 * Returns 0 or -errno. */
int time_log_sync(struct time_log *t);
/* Drop the records of frames after `frame`, durably (a commit whose
 * frames could not be logged; start-up, for frames the log lost).
 * Returns 0 or -errno. */
int time_log_cut_after(struct time_log *t, uint32_t frame);

/* The file's size as the last fdatasync left it (crash images in tests). */
uint64_t time_log_synced_size(struct time_log *t);
/* Records held, and the last record's frame and time (0 and 0 when
 * empty). */
size_t time_log_count(struct time_log *t);
uint32_t time_log_last_frame(struct time_log *t);
int64_t time_log_last_ms(struct time_log *t);
/* The first record's time: when the generation's base state began
 * (0 when empty). */
int64_t time_log_first_ms(struct time_log *t);

/* The last record made at or before unix_ms among frames <= upto: 1 with
 * its frame and time, or 0 when there is none. */
int time_log_find(struct time_log *t, int64_t unix_ms, uint32_t upto,
		  uint32_t *frame, int64_t *at_ms);
/* The time of commit frame `frame` (0: the base): 1 with *at_ms, or 0 when
 * there is no record of it. */
int time_log_time_of(struct time_log *t, uint32_t frame, int64_t *at_ms);

/* A copy of the records of frames <= upto, for a fork (store_fork.c):
 * malloc'd into *out (the caller frees it).  Returns their number, or -1
 * when out of memory. */
struct time_log_record {
	uint32_t frame;
	int64_t unix_ms;
};
long time_log_snapshot(struct time_log *t, uint32_t upto,
		       struct time_log_record **out);

#endif
