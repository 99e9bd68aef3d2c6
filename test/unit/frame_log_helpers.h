/* Helpers shared by the tests of the frame log (test_frame_log.c and
 * test_frame_log_recovery.c, one theme each): a log in a temporary
 * directory, transactions of pages whose every byte tells their page and
 * version, whole files, and the checks of a log file and of its frames. */
#ifndef REPLITE_TEST_FRAME_LOG_HELPERS_H
#define REPLITE_TEST_FRAME_LOG_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "server/frame_log.h"

/* A frame log at dir/frames.log. */
struct flh_fx {
	char *dir;
	char *path;
	struct frame_log *log;
};

/* Open (and create) f->path as f->log; the test fails if it cannot. */
void flh_fx_open(struct flh_fx *f);
/* Close and open again: what a restart finds. */
void flh_fx_reopen(struct flh_fx *f);
/* A new log in a fresh temporary directory. */
void flh_fx_init(struct flh_fx *f);
/* Close the log and remove its directory. */
void flh_fx_done(struct flh_fx *f);

/* The content of page pgno as written by version v: a frame read back
 * from the wrong place is noticed. */
void flh_fill_page(uint8_t *page, uint32_t pgno, uint32_t v);
/* Append one transaction writing pgnos[0..n) (version v), committing with
 * db_size; frame_log_append's result. */
int flh_append_txn(struct frame_log *l, const uint32_t *pgnos, size_t n,
		   uint32_t db_size, uint32_t v);

/* The size of the file at path. */
uint64_t flh_file_size(const char *path);
/* The whole file at path (malloc'd), to check or damage a log, or to
 * compare a replayed database. */
uint8_t *flh_read_whole(const char *path, size_t *len);
/* Replace the file at path by len bytes of buf. */
void flh_write_whole(const char *path, const uint8_t *buf, size_t len);

/* The log file at path holds exactly head frames with an unbroken
 * checksum chain, and frame i + 1 commits commits[i] (unless commits is
 * NULL). */
void flh_assert_file_valid(const char *path, uint32_t head,
			   const uint32_t *commits);
/* The frame at fr is page pgno of version v with database size db_size. */
void flh_assert_frame(const uint8_t *fr, uint32_t pgno, uint32_t db_size,
		      uint32_t v);

#endif
