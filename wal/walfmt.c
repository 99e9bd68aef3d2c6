#include "walfmt.h"

#include <string.h>

static uint32_t load_word(int big_endian, const uint8_t *p)
{
	if (big_endian) {
		return walfmt_get32(p);
	}
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

void walfmt_checksum(int big_endian, const uint8_t *a, size_t n,
		     const uint32_t in[2], uint32_t out[2])
{
	uint32_t s0 = in[0];
	uint32_t s1 = in[1];
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		s0 += load_word(big_endian, a + i) + s1;
		s1 += load_word(big_endian, a + i + 4) + s0;
	}
	out[0] = s0;
	out[1] = s1;
}

void walfmt_header_encode(struct walfmt_header *h, uint8_t out[WALFMT_HDR_SIZE])
{
	static const uint32_t zero[2] = {0, 0};

	walfmt_put32(out, h->magic);
	walfmt_put32(out + 4, WALFMT_VERSION);
	walfmt_put32(out + 8, h->page_size);
	walfmt_put32(out + 12, h->ckpt_seq);
	walfmt_put32(out + 16, h->salt[0]);
	walfmt_put32(out + 20, h->salt[1]);
	walfmt_checksum(h->magic & 1, out, 24, zero, h->cksum);
	walfmt_put32(out + 24, h->cksum[0]);
	walfmt_put32(out + 28, h->cksum[1]);
}

int walfmt_header_decode(const uint8_t in[WALFMT_HDR_SIZE],
			 struct walfmt_header *h)
{
	static const uint32_t zero[2] = {0, 0};
	uint32_t sum[2];

	h->magic = walfmt_get32(in);
	if (h->magic != WALFMT_MAGIC_LE && h->magic != WALFMT_MAGIC_BE) {
		return -1;
	}
	if (walfmt_get32(in + 4) != WALFMT_VERSION) {
		return -1;
	}
	h->page_size = walfmt_get32(in + 8);
	h->ckpt_seq = walfmt_get32(in + 12);
	h->salt[0] = walfmt_get32(in + 16);
	h->salt[1] = walfmt_get32(in + 20);
	h->cksum[0] = walfmt_get32(in + 24);
	h->cksum[1] = walfmt_get32(in + 28);
	walfmt_checksum(h->magic & 1, in, 24, zero, sum);
	if (sum[0] != h->cksum[0] || sum[1] != h->cksum[1]) {
		return -1;
	}
	if (h->page_size < 512 || h->page_size > 65536 ||
	    (h->page_size & (h->page_size - 1)) != 0) {
		return -1;
	}
	return 0;
}

void walfmt_frame_header_decode(const uint8_t in[WALFMT_FRAME_HDR_SIZE],
				struct walfmt_frame_header *f)
{
	f->pgno = walfmt_get32(in);
	f->db_size = walfmt_get32(in + 4);
	f->salt[0] = walfmt_get32(in + 8);
	f->salt[1] = walfmt_get32(in + 12);
	f->cksum[0] = walfmt_get32(in + 16);
	f->cksum[1] = walfmt_get32(in + 20);
}

void walfmt_frame_encode(int big_endian, const uint32_t salt[2],
			 uint32_t chain[2], uint32_t pgno, uint32_t db_size,
			 const uint8_t *page, uint32_t page_size,
			 uint8_t out[WALFMT_FRAME_HDR_SIZE])
{
	walfmt_put32(out, pgno);
	walfmt_put32(out + 4, db_size);
	walfmt_put32(out + 8, salt[0]);
	walfmt_put32(out + 12, salt[1]);
	walfmt_checksum(big_endian, out, 8, chain, chain);
	walfmt_checksum(big_endian, page, page_size, chain, chain);
	walfmt_put32(out + 16, chain[0]);
	walfmt_put32(out + 20, chain[1]);
}

int walfmt_frame_verify(int big_endian, const uint32_t salt[2],
			uint32_t chain[2], const uint8_t *frame,
			uint32_t page_size)
{
	struct walfmt_frame_header f;
	uint32_t sum[2];

	walfmt_frame_header_decode(frame, &f);
	if (f.pgno == 0 || f.salt[0] != salt[0] || f.salt[1] != salt[1]) {
		return -1;
	}
	walfmt_checksum(big_endian, frame, 8, chain, sum);
	walfmt_checksum(big_endian, frame + WALFMT_FRAME_HDR_SIZE, page_size,
			sum, sum);
	if (sum[0] != f.cksum[0] || sum[1] != f.cksum[1]) {
		return -1;
	}
	chain[0] = sum[0];
	chain[1] = sum[1];
	return 0;
}

uint32_t walfmt_db_page_size(const uint8_t db_header[100])
{
	uint32_t sz = ((uint32_t)db_header[16] << 8) | db_header[17];

	return sz == 1 ? 65536 : sz;
}
