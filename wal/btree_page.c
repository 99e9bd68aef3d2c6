#include "btree_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal/record.h"
#include "wal/walfmt.h"

/* SQLite's default PENDING_BYTE: the page holding it is never used. */
#define PENDING_BYTE 0x40000000u

struct range {
	uint32_t start, end; /* [start, end) within the page */
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int valid_child(uint32_t pgno, uint32_t db_size, uint32_t page_size)
{
	return pgno >= 1 && pgno <= db_size &&
	       pgno != PENDING_BYTE / page_size + 1;
}

struct cell {
	uint32_t size;       /* bytes of the cell in the page */
	uint32_t overflow;   /* first overflow page, or 0 */
	uint32_t n_overflow; /* overflow pages the payload needs */
	uint32_t child;      /* left child (interior pages), or 0 */
	uint64_t key;        /* table pages: the rowid or divider */
	uint64_t payload;    /* payload bytes (not interior table cells) */
	uint32_t local;      /* of them, on the page */
	const uint8_t *data; /* the local payload */
};

/* The cell at offset off of a page of type type (SQLite's
 * btreeParseCellPtr and its payload split).  Returns 0, or -1 when it runs
 * past the end of the page. */
static int parse_cell(const uint8_t *page, uint32_t off, uint8_t type,
		      uint32_t usable, struct cell *c)
{
	const uint8_t *p = page + off, *end = page + usable;
	uint64_t payload = 0, rowid;
	uint32_t max_local, min_local, local;
	int n;

	memset(c, 0, sizeof *c);
	if (type == BTREE_PAGE_INTERIOR_TABLE ||
	    type == BTREE_PAGE_INTERIOR_INDEX) {
		if (p + 4 > end)
			return -1;
		c->child = walfmt_get32(p);
		p += 4;
	}
	if (type == BTREE_PAGE_INTERIOR_TABLE) {
		n = record_varint(p, (size_t)(end - p), &rowid);
		if (n == 0)
			return -1;
		c->key = rowid;
		c->size = (uint32_t)(p + n - (page + off));
		return 0;
	}
	n = record_varint(p, (size_t)(end - p), &payload);
	if (n == 0)
		return -1;
	p += n;
	if (type == BTREE_PAGE_LEAF_TABLE) {
		n = record_varint(p, (size_t)(end - p), &rowid);
		if (n == 0)
			return -1;
		c->key = rowid;
		p += n;
		max_local = usable - 35;
	} else {
		max_local = (usable - 12) * 64 / 255 - 23;
	}
	min_local = (usable - 12) * 32 / 255 - 23;
	if (payload <= max_local) {
		local = (uint32_t)payload;
	} else {
		uint64_t k = min_local + (payload - min_local) % (usable - 4);
		local = k <= max_local ? (uint32_t)k : min_local;
	}
	if ((uint64_t)(end - p) <
	    (uint64_t)local + (payload > max_local ? 4 : 0))
		return -1;
	c->payload = payload;
	c->local = local;
	c->data = p;
	p += local;
	if (payload > max_local) {
		c->overflow = walfmt_get32(p);
		c->n_overflow =
		    (uint32_t)((payload - local + usable - 5) / (usable - 4));
		p += 4;
	}
	c->size = (uint32_t)(p - (page + off));
	if (c->size < 4)
		c->size = 4; /* SQLite never stores a cell smaller */
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Walk the page: header, cells, freeblocks. */
static int walk(const uint8_t *page, uint32_t pgno, uint32_t page_size,
		uint32_t db_size, char *why, size_t why_len)
{
	const uint32_t usable = page_size, hdr = pgno == 1 ? 100 : 0;
	const uint8_t *h = page + hdr;
	uint8_t type = h[0];
	uint32_t hdr_size, ncell, content, i, n_ranges = 0, fb, prev_end;
	uint32_t pos, frag = 0;
	struct range *ranges = NULL;
	int interior, rv = -1;

	if (type != BTREE_PAGE_INTERIOR_INDEX &&
	    type != BTREE_PAGE_INTERIOR_TABLE &&
	    type != BTREE_PAGE_LEAF_INDEX && type != BTREE_PAGE_LEAF_TABLE) {
		snprintf(why, why_len, "page %u is not a b-tree page (type %u)",
			 pgno, type);
		return -1;
	}
	interior = type == BTREE_PAGE_INTERIOR_INDEX ||
		   type == BTREE_PAGE_INTERIOR_TABLE;
	hdr_size = interior ? 12 : 8;
	ncell = get16(h + 3);
	content = get16(h + 5);
	if (content == 0)
		content = 65536;
	if (h[7] > 60) {
		snprintf(why, why_len,
			 "page %u has %u fragmented bytes (at most 60)", pgno,
			 h[7]);
		return -1;
	}
	if (hdr + hdr_size + 2 * ncell > content || content > usable) {
		snprintf(why, why_len,
			 "page %u: %u cells do not fit before its content area "
			 "at %u",
			 pgno, ncell, content);
		return -1;
	}
	if (interior && !valid_child(walfmt_get32(h + 8), db_size, page_size)) {
		snprintf(why, why_len,
			 "page %u points to child page %u, outside the "
			 "database of %u pages",
			 pgno, walfmt_get32(h + 8), db_size);
		return -1;
	}
	ranges = malloc((ncell + usable / 4 + 1) * sizeof *ranges);
	if (ranges == NULL) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	for (i = 0; i < ncell; i++) {
		uint32_t off = get16(h + hdr_size + 2 * i);
		struct cell c;

		if (off < content || off >= usable ||
		    parse_cell(page, off, type, usable, &c) != 0 ||
		    off + c.size > usable) {
			snprintf(why, why_len,
				 "page %u: cell %u at offset %u lies outside "
				 "the page's content area",
				 pgno, i, off);
			goto out;
		}
		if (interior && !valid_child(c.child, db_size, page_size)) {
			snprintf(why, why_len,
				 "page %u: cell %u points to child page %u, "
				 "outside the database of %u pages",
				 pgno, i, c.child, db_size);
			goto out;
		}
		if (c.overflow != 0 &&
		    !valid_child(c.overflow, db_size, page_size)) {
			snprintf(why, why_len,
				 "page %u: cell %u points to overflow page %u, "
				 "outside the database of %u pages",
				 pgno, i, c.overflow, db_size);
			goto out;
		}
		ranges[n_ranges].start = off;
		ranges[n_ranges].end = off + c.size;
		n_ranges++;
	}
	/* The freeblock chain: ascending, inside the content area, each at
	 * least 4 bytes. */
	prev_end = 0;
	for (fb = get16(h + 1); fb != 0; fb = get16(page + fb)) {
		uint32_t size;

		if (fb < content || fb + 4 > usable || fb < prev_end ||
		    n_ranges >= ncell + usable / 4) {
			snprintf(why, why_len,
				 "page %u has a broken freeblock chain (at %u)",
				 pgno, fb);
			goto out;
		}
		size = get16(page + fb + 2);
		if (size < 4 || fb + size > usable) {
			snprintf(why, why_len,
				 "page %u has a freeblock of %u bytes at %u",
				 pgno, size, fb);
			goto out;
		}
		ranges[n_ranges].start = fb;
		ranges[n_ranges].end = fb + size;
		n_ranges++;
		prev_end = fb + size;
	}
	/* The content area is exactly cells, freeblocks and the fragments
	 * the header counts, as integrity_check requires.  A fragment is
	 * usually 1 to 3 bytes, but SQLite leaves longer ones too (a 5-byte
	 * gap between two cells of an index interior page, after a run of
	 * inserts, is "ok" to integrity_check, which only compares the
	 * total with the header's count): no limit on one gap. */
	qsort(ranges, n_ranges, sizeof *ranges, cmp_range);
	pos = content;
	for (i = 0; i <= n_ranges; i++) {
		uint32_t start = i < n_ranges ? ranges[i].start : usable;
		if (start < pos) {
			snprintf(
			    why, why_len,
			    "page %u: cells or freeblocks overlap at offset "
			    "%u",
			    pgno, start);
			goto out;
		}
		frag += start - pos;
		if (i < n_ranges)
			pos = ranges[i].end;
	}
	if (frag != h[7]) {
		snprintf(why, why_len,
			 "page %u has %u fragmented bytes, its header says %u",
			 pgno, frag, h[7]);
		goto out;
	}
	rv = 0;
out:
	free(ranges);
	return rv;
}

int btree_page_check(const uint8_t *page, uint32_t pgno, uint32_t page_size,
		     uint32_t db_size, char *why, size_t why_len)
{
	return walk(page, pgno, page_size, db_size, why, why_len);
}

uint32_t btree_page_right_child(const uint8_t *page, uint32_t pgno)
{
	const uint8_t *h = page + (pgno == 1 ? 100 : 0);

	if (h[0] != BTREE_PAGE_INTERIOR_INDEX &&
	    h[0] != BTREE_PAGE_INTERIOR_TABLE)
		return 0;
	return walfmt_get32(h + 8);
}

int btree_page_cells(const uint8_t *page, uint32_t pgno, uint32_t page_size,
		     int (*fn)(void *arg, const struct btree_cell *cell),
		     void *arg)
{
	const uint8_t *h = page + (pgno == 1 ? 100 : 0);
	uint8_t type = h[0];
	uint32_t hdr_size, ncell, i;

	if (type != BTREE_PAGE_INTERIOR_INDEX &&
	    type != BTREE_PAGE_INTERIOR_TABLE &&
	    type != BTREE_PAGE_LEAF_INDEX && type != BTREE_PAGE_LEAF_TABLE)
		return -1;
	hdr_size = (type == BTREE_PAGE_INTERIOR_INDEX ||
		    type == BTREE_PAGE_INTERIOR_TABLE)
		       ? 12
		       : 8;
	ncell = get16(h + 3);
	for (i = 0; i < ncell; i++) {
		uint32_t off = get16(h + hdr_size + 2 * i);
		struct btree_cell bc;
		struct cell c;
		int rc;

		if (off >= page_size ||
		    parse_cell(page, off, type, page_size, &c) != 0)
			return -1;
		bc.index = i;
		bc.child = c.child;
		bc.key = (int64_t)c.key;
		bc.payload = c.payload;
		bc.local = c.data;
		bc.n_local = c.local;
		bc.overflow = c.overflow;
		bc.n_overflow = c.n_overflow;
		rc = fn(arg, &bc);
		if (rc != 0)
			return rc;
	}
	return 0;
}
