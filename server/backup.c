#include "backup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "wal/walfmt.h"

struct backup {
	struct store_pages *pages;
	uint32_t db_size;
	uint32_t next_pgno; /* the page being sent */
	uint32_t next_src;  /* index of the next page store_pages has */
	uint8_t page[WALFMT_PAGE_SIZE];
	size_t page_pos; /* bytes of page already sent */
};

static void backup_free(void *arg)
{
	struct backup *b = arg;

	store_pages_close(b->pages);
	free(b);
}

/* Load page b->next_pgno into b->page.  Returns 0 or -1. */
static int load_page(struct backup *b)
{
	uint32_t pgno = b->next_pgno;

	if (b->next_src < store_pages_count(b->pages) &&
	    store_pages_pgno(b->pages, b->next_src) == pgno) {
		if (store_pages_read(b->pages, b->next_src, b->page) != 0)
			return -1;
		b->next_src++;
	} else {
		memset(b->page, 0, sizeof b->page);
	}
	if (pgno == 1) {
		/* A plain database file: rollback-journal mode. */
		b->page[18] = 1;
		b->page[19] = 1;
	}
	return 0;
}

static long backup_read(void *arg, uint64_t pos, uint8_t *buf, size_t max)
{
	struct backup *b = arg;
	size_t n = 0;

	(void)pos;
	while (n < max) {
		size_t k;
		if (b->page_pos == sizeof b->page) {
			if (b->next_pgno == b->db_size)
				break;
			b->next_pgno++;
			if (load_page(b) != 0)
				return -1; /* cut: the client sees no end */
			b->page_pos = 0;
		}
		k = sizeof b->page - b->page_pos;
		if (k > max - n)
			k = max - n;
		memcpy(buf + n, b->page + b->page_pos, k);
		b->page_pos += k;
		n += k;
	}
	return (long)n;
}

void backup_answer(struct store *s, const struct store_point *at,
		   struct http_response *res)
{
	struct backup *b = calloc(1, sizeof *b);

	if (b == NULL) {
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "out of memory");
		return;
	}
	if (store_pages_open_at(s, at, &b->pages) != 0) {
		http_reply_error(&res->reply, 500, "INTERNAL_ERROR",
				 "generation %" PRIu32 " is no longer there "
				 "(retention removed it meanwhile?)",
				 at->generation);
		free(b);
		return;
	}
	b->db_size = store_pages_db_size(b->pages);
	b->page_pos = sizeof b->page; /* nothing loaded yet */
	res->reply.status = 200;
	res->reply.content_type = "application/vnd.sqlite3";
	res->headers[0].name = "X-Replite-Pages";
	snprintf(res->headers[0].value, sizeof res->headers[0].value,
		 "%" PRIu32, b->db_size);
	res->headers[1].name = "X-Replite-State";
	snprintf(res->headers[1].value, sizeof res->headers[1].value,
		 "%" PRIu32 ":%" PRIu32, at->generation, at->frame);
	res->headers[2].name = "X-Replite-Timestamp";
	clock_format_rfc3339(at->unix_ms, res->headers[2].value,
			     sizeof res->headers[2].value);
	res->stream = backup_read;
	res->stream_free = backup_free;
	res->stream_arg = b;
}
