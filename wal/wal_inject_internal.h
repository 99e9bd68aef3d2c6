/* The injector's state, shared by the files that implement it (wal_inject.h
 * is the interface): wal_inject.c (the connection and its files, the WAL
 * file's header and frames, the batch) and wal_inject_index.c (the
 * wal-index: its header copies, the checkpoint info of a restart and the
 * hash tables). */
#ifndef REPLITE_WAL_INJECT_INTERNAL_H
#define REPLITE_WAL_INJECT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "wal/wal_index.h"
#include "wal/wal_inject.h"

/* A page of the batch as it will be written. */
struct frame_plan {
	uint32_t pgno;
	const uint8_t *data;
};

struct injector {
	sqlite3 *db;
	sqlite3_file *db_file;  /* xShm* methods */
	sqlite3_file *wal_file; /* frames and the WAL header */
	char **errmsg;
	bool sync;
	bool may_restart;          /* the VFS lets us prove READ(0), below */
	uint32_t page_size;        /* of the batch, checked against the db */
	volatile uint8_t *region0; /* header copies, ckpt info, block 0 */
	struct wal_index_hdr hdr;  /* private copy, published at the end */
	bool restarted;            /* this call reset the WAL to frame 1 */
	uint32_t ckpt_seq;         /* the new WAL header's nCkpt */
};

/* Set *inj->errmsg (when wanted) to the message; returns rc, never
 * SQLITE_OK. */
int wal_inject_fail(struct injector *inj, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The checkpoint info, after the two header copies in region 0. */
static inline volatile struct wal_index_ckpt_info *
wal_inject_ckpt_info(struct injector *inj)
{
	return (volatile struct wal_index_ckpt_info *)(inj->region0 +
						       WAL_INDEX_CKPT_OFFSET);
}

/* Take the header from wal-index copy 1 (inj->region0, inj->hdr), checked
 * against copy 2 and its checksum. */
int wal_inject_read_index_header(struct injector *inj);
/* Publish inj->hdr as both header copies. */
void wal_inject_publish_header(struct injector *inj);
/* Drop the hash entries of frames beyond the header's mxFrame. */
int wal_inject_clean_leftover_hash(struct injector *inj);
/* Publish in the wal-index the header of a WAL restarted under salt2. */
void wal_inject_restart_header(struct injector *inj, const uint8_t salt2[4]);
/* Hash entries for the n frames of plan, from mxFrame + 1 on. */
int wal_inject_append_index(struct injector *inj, const struct frame_plan *plan,
			    size_t n);

#endif
