/* The pieces of SQLite's record format every decoder needs: varints,
 * serial types' sizes, and integer fields (fileformat2.html, "Record
 * Format").  Used by the b-tree page checks (wal/btree_page.c) and by the
 * primary's page map and record checks. */
#ifndef REPLITE_WAL_RECORD_H
#define REPLITE_WAL_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* The varint at p[0..n): its length (1-9), with *out; 0 if it runs past
 * n. */
int record_varint(const uint8_t *p, size_t n, uint64_t *out);

/* The size of a field of serial type t, or -1 for the reserved types 10
 * and 11. */
int64_t record_field_size(uint64_t t);

/* An integer field (serial types 1-6, 8, 9) as a signed value: 0, or -1
 * when the type is not an integer's. */
int record_int(uint64_t type, const uint8_t *bytes, int64_t *out);

#endif
