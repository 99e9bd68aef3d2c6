#include "wal_index.h"

#include "wal/walfmt.h"

void wal_index_hdr_checksum(const struct wal_index_hdr *h, uint32_t out[2])
{
	static const uint32_t zero[2] = {0, 0};

	walfmt_checksum(WAL_INDEX_HOST_BIG_ENDIAN, (const uint8_t *)h,
			offsetof(struct wal_index_hdr, cksum), zero, out);
}
