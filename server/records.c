/* Cells and records (SQLite's file format, sections 1.6 and 2.1).  Every
 * offset read from a page is bounds-checked: the pages may come from a
 * client. */
#include "records.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/record.h"

#define PAGE RECORDS_PAGE_SIZE
#define USABLE PAGE /* the primary's databases reserve no bytes */
/* Larger than any payload SQLite writes (SQLITE_MAX_LENGTH is 1e9 at most
 * plus the record header): a claim beyond it is malformed. */
#define MAX_PAYLOAD 0x7fff0000u

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

int records_page_kind(uint32_t pgno, const uint8_t *page)
{
	uint8_t kind = page[pgno == 1 ? 100 : 0];

	switch (kind) {
	case RECORDS_INDEX_INTERIOR:
	case RECORDS_TABLE_INTERIOR:
	case RECORDS_INDEX_LEAF:
	case RECORDS_TABLE_LEAF:
		return kind;
	default:
		return -1;
	}
}

/* The part of a payload of size p stored on the page (file format 1.6). */
static uint32_t local_size(int kind, uint64_t p)
{
	uint32_t x = kind == RECORDS_TABLE_LEAF ? USABLE - 35
						: (USABLE - 12) * 64 / 255 - 23;
	uint32_t m = (USABLE - 12) * 32 / 255 - 23;
	uint32_t k;

	if (p <= x)
		return (uint32_t)p;
	k = m + (uint32_t)((p - m) % (USABLE - 4));
	return k <= x ? k : m;
}

/* The whole payload of a spilled cell into *buf (malloc'd). */
static int reassemble(uint32_t pgno, int cell, const uint8_t *local,
		      uint32_t n_local, uint32_t first, uint32_t size,
		      records_read_fn read_overflow, void *read_arg,
		      uint8_t **buf, char *why, size_t why_len)
{
	uint8_t *out = malloc(size), *page = malloc(PAGE);
	uint32_t have = n_local, next = first;
	int rv = -1;

	if (out == NULL || page == NULL) {
		errors_set(why, why_len, "out of memory");
		goto out;
	}
	memcpy(out, local, n_local);
	while (have < size) {
		uint32_t take =
		    size - have < USABLE - 4 ? size - have : USABLE - 4;
		if (next < 2) {
			errors_set(why, why_len,
				   "page %" PRIu32 " cell %d: the overflow "
				   "chain ends %" PRIu32 " bytes early",
				   pgno, cell, size - have);
			rv = 1;
			goto out;
		}
		if (read_overflow(read_arg, next, page) != 0) {
			errors_set(why, why_len,
				   "cannot read overflow page %" PRIu32, next);
			goto out;
		}
		memcpy(out + have, page + 4, take);
		have += take;
		next = get32(page);
	}
	*buf = out;
	out = NULL;
	rv = 0;
out:
	free(out);
	free(page);
	return rv;
}

int records_page_cells(uint32_t pgno, const uint8_t *page,
		       records_read_fn read_overflow, void *read_arg,
		       records_cell_fn cb, void *cb_arg, char *why,
		       size_t why_len)
{
	uint32_t hdr = pgno == 1 ? 100 : 0, ptrs, n, i;
	int kind = records_page_kind(pgno, page);

	if (kind < 0) {
		errors_set(why, why_len,
			   "page %" PRIu32 " is not a b-tree page", pgno);
		return 1;
	}
	ptrs =
	    hdr +
	    (kind == RECORDS_INDEX_LEAF || kind == RECORDS_TABLE_LEAF ? 8 : 12);
	n = get16(page + hdr + 3);
	if (ptrs + 2 * n > PAGE) {
		errors_set(why, why_len,
			   "page %" PRIu32 ": %" PRIu32 " cells do not fit",
			   pgno, n);
		return 1;
	}
	for (i = 0; i < n; i++) {
		uint32_t off = get16(page + ptrs + 2 * i), at, n_local;
		struct records_cell cell = {(int)i, 0, NULL, 0};
		uint64_t size, rowid;
		uint8_t *spilled = NULL;
		int len, rv;

		if (kind == RECORDS_TABLE_INTERIOR)
			continue;
		at = off + (kind == RECORDS_INDEX_INTERIOR ? 4 : 0);
		if (off < ptrs + 2 * n || at >= PAGE)
			goto bad;
		len = record_varint(page + at, PAGE - at, &size);
		if (len == 0 || size > MAX_PAYLOAD)
			goto bad;
		at += (uint32_t)len;
		if (kind == RECORDS_TABLE_LEAF) {
			len = record_varint(page + at, PAGE - at, &rowid);
			if (len == 0)
				goto bad;
			at += (uint32_t)len;
			cell.rowid = (int64_t)rowid;
		}
		n_local = local_size(kind, size);
		if (at + n_local + (n_local < size ? 4 : 0) > PAGE)
			goto bad;
		cell.size = (uint32_t)size;
		cell.payload = page + at;
		if (n_local < size) {
			rv = reassemble(pgno, (int)i, page + at, n_local,
					get32(page + at + n_local),
					(uint32_t)size, read_overflow, read_arg,
					&spilled, why, why_len);
			if (rv != 0)
				return rv;
			cell.payload = spilled;
		}
		rv = cb(cb_arg, &cell);
		free(spilled);
		if (rv != 0)
			return rv;
		continue;
	bad:
		errors_set(why, why_len,
			   "page %" PRIu32 " cell %" PRIu32 " lies outside "
			   "the page",
			   pgno, i);
		return 1;
	}
	return 0;
}

int records_parse(const uint8_t *payload, uint32_t size,
		  struct records_record *out, char *why, size_t why_len)
{
	uint64_t hdr, t = 0, body = 0;
	uint32_t at, fields = 0;
	const uint8_t *last = NULL;
	int len = record_varint(payload, size, &hdr);

	if (len == 0 || hdr < (uint64_t)len || hdr > size) {
		errors_set(why, why_len,
			   "its header size does not fit its %" PRIu32
			   "-byte payload",
			   size);
		return -1;
	}
	for (at = (uint32_t)len; at < hdr; fields++) {
		int64_t fs;

		len = record_varint(payload + at, hdr - at, &t);
		if (len == 0) {
			errors_set(why, why_len,
				   "field %" PRIu32 "'s serial type runs past "
				   "the header",
				   fields);
			return -1;
		}
		at += (uint32_t)len;
		fs = record_field_size(t);
		if (fs < 0) {
			errors_set(why, why_len,
				   "field %" PRIu32 " has the reserved serial "
				   "type %" PRIu64,
				   fields, t);
			return -1;
		}
		last = payload + hdr + body;
		body += (uint64_t)fs;
		if (hdr + body > size)
			break;
	}
	if (hdr + body != size) {
		errors_set(why, why_len,
			   "its fields need %" PRIu64 " bytes, its payload has "
			   "%" PRIu32,
			   hdr + body, size);
		return -1;
	}
	out->n_fields = fields;
	out->last_type = t;
	out->last = last;
	return 0;
}
