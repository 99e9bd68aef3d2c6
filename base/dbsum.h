/* The whole-database checksum (as LiteFS keeps one): the XOR over every page
 * p of the database of a 64-bit hash of (p, page p's bytes).  Because it is
 * an XOR of per-page terms it is updated per transaction in proportion to
 * the pages the transaction changes (xor out a page's old term, xor in its
 * new one), yet it covers every page: two databases with the same checksum
 * hold the same pages, barring a collision of 64-bit hashes.
 *
 * The per-page hash is XXH3-64 (libxxhash) seeded with the page number:
 * much faster than the disk, and any change of a page's bytes or its place
 * changes its term.  Page 1 is hashed with its bytes 18-19 (the file format
 * versions, 1 = rollback journal, 2 = WAL) read as 2: replicas force WAL
 * mode into the page 1 they apply.  Checksums are shown as 16 lowercase hex
 * digits. */
#ifndef REPLITE_BASE_DBSUM_H
#define REPLITE_BASE_DBSUM_H

#include <stddef.h>
#include <stdint.h>

#define DBSUM_TEXT_SIZE 17 /* 16 hex digits + NUL */

/* The term of page pgno (>= 1) holding page_size bytes at data. */
uint64_t dbsum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size);

/* The checksum of a database image: len / page_size whole pages, page 1
 * first (a trailing partial page is ignored). */
uint64_t dbsum_image(const uint8_t *image, size_t len, uint32_t page_size);

void dbsum_format(uint64_t sum, char out[DBSUM_TEXT_SIZE]);
/* Parse exactly 16 hex digits.  Returns 0, or -1 when text is not that. */
int dbsum_parse(const char *text, uint64_t *out);

#endif
