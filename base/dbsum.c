#include "dbsum.h"

#include <stdio.h>
#include <string.h>

#include "base/hex.h"

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

uint64_t dbsum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size)
{
	static const uint8_t wal_mode[2] = {2, 2};
	XXH3_state_t st;
	uint64_t h;

	if (pgno != 1 || page_size < 100 || (data[18] == 2 && data[19] == 2))
		return XXH3_64bits_withSeed(data, page_size, pgno);
	/* Page 1 counts as in WAL mode (bytes 18-19 = 2): a replica forces
	 * them so, whatever the primary's page says (sync/applier.c). */
	XXH3_64bits_reset_withSeed(&st, pgno);
	XXH3_64bits_update(&st, data, 18);
	XXH3_64bits_update(&st, wal_mode, 2);
	XXH3_64bits_update(&st, data + 20, page_size - 20);
	h = XXH3_64bits_digest(&st);
	return h;
}

uint64_t dbsum_image(const uint8_t *image, size_t len, uint32_t page_size)
{
	uint64_t sum = 0;
	size_t n = len / page_size, i;

	for (i = 0; i < n; i++)
		sum ^= dbsum_page((uint32_t)(i + 1), image + i * page_size,
				  page_size);
	return sum;
}

void dbsum_format(uint64_t sum, char out[DBSUM_TEXT_SIZE])
{
	snprintf(out, DBSUM_TEXT_SIZE, "%016llx", (unsigned long long)sum);
}

int dbsum_parse(const char *text, uint64_t *out)
{
	uint8_t b[8];
	uint64_t v = 0;
	size_t i;

	if (hex_decode(text, b, sizeof b) != 0)
		return -1;
	for (i = 0; i < sizeof b; i++)
		v = v << 8 | b[i];
	*out = v;
	return 0;
}
