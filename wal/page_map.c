#include "page_map.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/sqlite_api.h"

void page_map_clear(struct page_map *m)
{
	free(m->pgno);
	free(m->frame);
	memset(m, 0, sizeof *m);
}

static int page_map_grow(struct page_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	uint32_t *pgno = calloc(cap, sizeof *pgno);
	uint32_t *frame = calloc(cap, sizeof *frame);
	size_t i;

	if (pgno == NULL || frame == NULL) {
		free(pgno);
		free(frame);
		return SQLITE_NOMEM;
	}
	for (i = 0; i < m->cap; i++) {
		size_t j;
		if (m->pgno[i] == 0)
			continue;
		j = (m->pgno[i] * 2654435761u) & (cap - 1);
		while (pgno[j] != 0)
			j = (j + 1) & (cap - 1);
		pgno[j] = m->pgno[i];
		frame[j] = m->frame[i];
	}
	free(m->pgno);
	free(m->frame);
	m->pgno = pgno;
	m->frame = frame;
	m->cap = cap;
	return SQLITE_OK;
}

int page_map_put(struct page_map *m, uint32_t pgno, uint32_t frame)
{
	size_t j;

	assert(pgno != 0);
	if ((m->len + 1) * 2 > m->cap) {
		int rc = page_map_grow(m);
		if (rc != SQLITE_OK)
			return rc;
	}
	j = (pgno * 2654435761u) & (m->cap - 1);
	while (m->pgno[j] != 0 && m->pgno[j] != pgno)
		j = (j + 1) & (m->cap - 1);
	if (m->pgno[j] == 0) {
		m->pgno[j] = pgno;
		m->len++;
	}
	m->frame[j] = frame;
	return SQLITE_OK;
}
