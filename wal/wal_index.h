/* The wal-index (-shm) of SQLite 3.7.0 and later, as wal.c lays it out:
 * two copies of the header (WalIndexHdr), the checkpoint info
 * (WalCkptInfo), then hash blocks mapping frame numbers to page numbers.
 * Shared by the injector (which writes it as a SQLite writer does) and the
 * observer (which reads the header a writer publishes).  See
 * shared/notes/wal-injection.md. */
#ifndef REPLITE_WAL_INDEX_H
#define REPLITE_WAL_INDEX_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_INDEX_VERSION 3007000u
#define WAL_INDEX_REGION_SIZE 32768
#define WAL_INDEX_HDR_TOTAL 136 /* two header copies + checkpoint info */
#define WAL_INDEX_CKPT_OFFSET 96
#define WAL_INDEX_HASH_NPAGE 4096 /* page numbers per hash block */
#define WAL_INDEX_HASH_NSLOT 8192 /* hash slots per hash block */
#define WAL_INDEX_HASH_1 383
/* Block 0 shares its region with the header: 4062 entries. */
#define WAL_INDEX_HASH_NPAGE_ONE                                               \
	(WAL_INDEX_HASH_NPAGE - WAL_INDEX_HDR_TOTAL / 4)
#define WAL_INDEX_NREADER 5
#define WAL_INDEX_READMARK_NOT_USED 0xffffffffu

/* xShmLock slots. */
#define WAL_INDEX_WRITE_LOCK 0
#define WAL_INDEX_CKPT_LOCK 1
#define WAL_INDEX_READ_LOCK(i) (3 + (i))
#define WAL_INDEX_NLOCK 8
/* One copy of the header (WalIndexHdr); copy 1 is at offset 0, copy 2
 * right after it. */
#define WAL_INDEX_HDR_COPY_SIZE 48

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WAL_INDEX_HOST_BIG_ENDIAN 1
#else
#define WAL_INDEX_HOST_BIG_ENDIAN 0
#endif

/* WalIndexHdr: native byte order except the salts, which are the raw bytes
 * of the WAL header. */
struct wal_index_hdr {
	uint32_t version;
	uint32_t unused;
	uint32_t change;
	uint8_t is_init;
	uint8_t big_end_cksum;
	uint16_t page_size; /* (sz & 0xff00) | (sz >> 16): 1 means 65536 */
	uint32_t max_frame;
	uint32_t n_page;
	uint32_t frame_cksum[2];
	uint8_t salt[8];
	uint32_t cksum[2];
};

/* WalCkptInfo, right after the two header copies. */
struct wal_index_ckpt_info {
	uint32_t n_backfill;
	uint32_t read_mark[WAL_INDEX_NREADER];
	uint8_t lock[8];
	uint32_t n_backfill_attempted;
	uint32_t not_used;
};

_Static_assert(sizeof(struct wal_index_hdr) == WAL_INDEX_HDR_COPY_SIZE,
	       "WalIndexHdr is 48 bytes");
_Static_assert(WAL_INDEX_CKPT_OFFSET + sizeof(struct wal_index_ckpt_info) ==
		   WAL_INDEX_HDR_TOTAL,
	       "WalCkptInfo ends the wal-index header");

/* One hash block of the wal-index (WalHashLoc). */
struct wal_index_hash_block {
	volatile uint32_t *pgno;  /* pgno[0] is the page of frame zero + 1 */
	volatile uint16_t *slots; /* WAL_INDEX_HASH_NSLOT entries */
	uint32_t zero;            /* frame number before the first indexed */
};

static inline uint32_t wal_index_decode_page_size(uint16_t v)
{
	return (uint32_t)(v & 0xfe00) + ((uint32_t)(v & 0x0001) << 16);
}

static inline uint16_t wal_index_encode_page_size(uint32_t sz)
{
	return (uint16_t)((sz & 0xff00) | (sz >> 16));
}

/* The hash block that indexes a frame (1-based). */
static inline uint32_t wal_index_frame_block(uint32_t frame)
{
	assert(frame > 0);
	return (frame + WAL_INDEX_HASH_NPAGE - WAL_INDEX_HASH_NPAGE_ONE - 1) /
	       WAL_INDEX_HASH_NPAGE;
}

/* walHash() and walNextHash(). */
static inline uint32_t wal_index_hash_key(uint32_t pgno)
{
	return (pgno * WAL_INDEX_HASH_1) & (WAL_INDEX_HASH_NSLOT - 1);
}

static inline uint32_t wal_index_next_hash_key(uint32_t key)
{
	return (key + 1) & (WAL_INDEX_HASH_NSLOT - 1);
}

/* The checksum of a header copy (over every field before cksum, in native
 * byte order as SQLite computes it). */
void wal_index_hdr_checksum(const struct wal_index_hdr *h, uint32_t out[2]);

#endif
