/* A map from page number to the WAL frame holding the page's latest image:
 * open addressing over two parallel arrays, so that a transaction of any
 * size is tracked in O(1) per frame write.  The observer iterates it
 * directly (slots with pgno 0 are empty). */
#ifndef REPLITE_WAL_PAGE_MAP_H
#define REPLITE_WAL_PAGE_MAP_H

#include <stddef.h>
#include <stdint.h>

/* pgno -> index of the frame holding the page's latest image. */
struct page_map {
	uint32_t *pgno; /* 0 = empty slot */
	uint32_t *frame;
	size_t cap; /* power of two */
	size_t len;
};

/* Free the arrays and empty the map (a zeroed map is empty). */
void page_map_clear(struct page_map *m);
/* Map pgno (>= 1) to frame, replacing an earlier frame of the page.
 * Returns SQLITE_OK or SQLITE_NOMEM. */
int page_map_put(struct page_map *m, uint32_t pgno, uint32_t frame);

#endif
