/* The cells of one b-tree page and the records they hold, decoded in C and
 * checked strictly (SQLite's record format: a header-size varint, one serial
 * type per field, and the fields' sizes adding up to the payload exactly).
 * Payloads that spill are reassembled from their overflow chains. */
#ifndef REPLITE_SERVER_RECORDS_H
#define REPLITE_SERVER_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#define RECORDS_PAGE_SIZE 4096

/* The b-tree page kinds (the page header's first byte). */
enum {
	RECORDS_INDEX_INTERIOR = 2,
	RECORDS_TABLE_INTERIOR = 5,
	RECORDS_INDEX_LEAF = 10,
	RECORDS_TABLE_LEAF = 13,
};

/* Reads page pgno into out (RECORDS_PAGE_SIZE bytes); 0 or -1. */
typedef int (*records_read_fn)(void *arg, uint32_t pgno, uint8_t *out);

/* One cell that holds a record: a table leaf cell (rowid and payload) or an
 * index cell, leaf or interior (payload; rowid 0).  Table interior cells
 * hold only keys and are not reported. */
struct records_cell {
	int index;     /* the cell's number on its page */
	int64_t rowid; /* table leaf cells */
	const uint8_t *payload;
	uint32_t size;
};

/* Called for every record-holding cell in order; a non-zero return stops
 * the walk and is returned by records_page_cells(). */
typedef int (*records_cell_fn)(void *arg, const struct records_cell *cell);

/* The page's kind (one of the enum above), or -1 if it is not a b-tree
 * page.  Page 1's header is at offset 100. */
int records_page_kind(uint32_t pgno, const uint8_t *page);

/* Walks the cells of b-tree page pgno, reading overflow pages through
 * read_overflow.  Returns 0, the callback's non-zero answer, 1 if the page
 * or a cell is malformed (why names the page and the cell) or -1 if an
 * overflow page cannot be read or memory runs out (why says which). */
int records_page_cells(uint32_t pgno, const uint8_t *page,
		       records_read_fn read_overflow, void *read_arg,
		       records_cell_fn cb, void *cb_arg, char *why,
		       size_t why_len);

/* A record decoded: its number of fields and its last field. */
struct records_record {
	uint32_t n_fields;
	uint64_t last_type;  /* the last field's serial type */
	const uint8_t *last; /* its bytes */
};

/* Decodes payload strictly; 0, or -1 with why saying what is wrong. */
int records_parse(const uint8_t *payload, uint32_t size,
		  struct records_record *out, char *why, size_t why_len);

#endif
