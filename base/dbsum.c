#include "dbsum.h"

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

uint64_t dbsum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size)
{
	return XXH3_64bits_withSeed(data, page_size, pgno);
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
	uint64_t v = 0;
	size_t i;

	if (text == NULL || strlen(text) != 16)
		return -1;
	for (i = 0; i < 16; i++) {
		char c = text[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}
