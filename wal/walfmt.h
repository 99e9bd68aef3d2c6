/* SQLite WAL file format: the one encoding shared by the primary's frame log,
 * the wire protocol and the replica's WAL injector.  All multi-byte fields of
 * the WAL header and frame headers are big-endian; checksums follow SQLite's
 * walChecksumBytes(). */
#ifndef REPLITE_WALFMT_H
#define REPLITE_WALFMT_H

#include <stddef.h>
#include <stdint.h>

#define WALFMT_PAGE_SIZE 4096
#define WALFMT_HDR_SIZE 32
#define WALFMT_FRAME_HDR_SIZE 24
#define WALFMT_FRAME_SIZE (WALFMT_FRAME_HDR_SIZE + WALFMT_PAGE_SIZE)
#define WALFMT_MAGIC_LE 0x377f0682u /* checksums over little-endian words */
#define WALFMT_MAGIC_BE 0x377f0683u /* checksums over big-endian words */
#define WALFMT_VERSION 3007000u

/* Inline: the checksums call these for every word of every page, and an
 * exported function in position-independent code is not inlined (it could
 * be interposed), which cost a tenth of a bootstrap's CPU time. */
static inline uint32_t walfmt_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void walfmt_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Continue a checksum over n bytes (n a multiple of 8).  big_endian selects
 * the word order, as bit 0 of the WAL magic does. */
void walfmt_checksum(int big_endian, const uint8_t *a, size_t n,
		     const uint32_t in[2], uint32_t out[2]);

/* Offset of 1-based frame i in a WAL-format file with the given page size. */
static inline uint64_t walfmt_frame_offset(uint32_t i, uint32_t page_size)
{
	return WALFMT_HDR_SIZE +
	       (uint64_t)(i - 1) * (WALFMT_FRAME_HDR_SIZE + page_size);
}

struct walfmt_header {
	uint32_t magic;
	uint32_t page_size;
	uint32_t ckpt_seq;
	uint32_t salt[2];
	uint32_t cksum[2];
};

/* Encode a 32-byte WAL header, computing its checksum into h->cksum. */
void walfmt_header_encode(struct walfmt_header *h,
			  uint8_t out[WALFMT_HDR_SIZE]);

/* Decode and verify a WAL header.  Returns 0 if valid, -1 otherwise. */
int walfmt_header_decode(const uint8_t in[WALFMT_HDR_SIZE],
			 struct walfmt_header *h);

struct walfmt_frame_header {
	uint32_t pgno;
	uint32_t db_size; /* non-zero only on a commit frame */
	uint32_t salt[2];
	uint32_t cksum[2];
};

void walfmt_frame_header_decode(const uint8_t in[WALFMT_FRAME_HDR_SIZE],
				struct walfmt_frame_header *f);

/* Write a frame header for page data, continuing the checksum chain in
 * chain[2] (updated in place). */
void walfmt_frame_encode(int big_endian, const uint32_t salt[2],
			 uint32_t chain[2], uint32_t pgno, uint32_t db_size,
			 const uint8_t *page, uint32_t page_size,
			 uint8_t out[WALFMT_FRAME_HDR_SIZE]);

/* Verify a frame against salts and the running chain; on success the chain
 * is advanced and 0 returned, otherwise -1 and the chain is unchanged. */
int walfmt_frame_verify(int big_endian, const uint32_t salt[2],
			uint32_t chain[2], const uint8_t *frame,
			uint32_t page_size);

/* The page size stored in a database header (bytes 16..17; 1 = 65536). */
uint32_t walfmt_db_page_size(const uint8_t db_header[100]);

#endif
