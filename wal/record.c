#include "record.h"

int record_varint(const uint8_t *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++) {
		if ((size_t)i >= n)
			return 0;
		v = (v << 7) | (p[i] & 0x7f);
		if ((p[i] & 0x80) == 0) {
			*out = v;
			return i + 1;
		}
	}
	if (n < 9)
		return 0;
	/* The ninth byte gives all 8 of its bits. */
	*out = (v << 8) | p[8];
	return 9;
}

int64_t record_field_size(uint64_t t)
{
	static const uint8_t small[] = {0, 1, 2, 3, 4, 6, 8, 8, 0, 0};

	if (t < 10)
		return small[t];
	if (t < 12)
		return -1;
	return (int64_t)((t - 12) / 2);
}

int record_int(uint64_t type, const uint8_t *bytes, int64_t *out)
{
	static const uint8_t len[] = {0, 1, 2, 3, 4, 6, 8};
	uint64_t v;
	int i;

	if (type == 8 || type == 9) {
		*out = (int64_t)(type - 8);
		return 0;
	}
	if (type < 1 || type > 6)
		return -1;
	/* Big-endian two's complement of len[type] bytes. */
	v = bytes[0] & 0x80 ? UINT64_MAX : 0;
	for (i = 0; i < len[type]; i++)
		v = (v << 8) | bytes[i];
	*out = (int64_t)v;
	return 0;
}
