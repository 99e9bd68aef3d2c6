/* A read-only SQLite connection on a database given as pages: page p is the
 * overlay's image of p if it has one, else the page a callback reads (the
 * base), and the file is db_size pages.  Nothing is copied and nothing is
 * written: SQLite reads through a private VFS whose only file is this view,
 * immutable (no locks, no journal, no WAL, no -shm).
 *
 * The primary judges a push with SQL on the database as the push would
 * leave it (server/store_check.c, server/store_rows.h); the replica compares
 * the rows before and after one of its transactions (sync/rowdiff.h).
 * Views are independent: any number may be open at once, each used by one
 * thread at a time (the connection is opened SQLITE_OPEN_NOMUTEX). */
#ifndef REPLITE_WAL_PAGE_VIEW_H
#define REPLITE_WAL_PAGE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

/* Page size of every view (replite's). */
#define PAGE_VIEW_PAGE_SIZE 4096

/* One page image over the base. */
struct page_view_page {
	uint32_t pgno;
	const uint8_t *data; /* PAGE_VIEW_PAGE_SIZE bytes */
};

/* Reads page pgno (1-based) of the base into out (PAGE_VIEW_PAGE_SIZE
 * bytes); 0 on success, -1 on failure. */
typedef int (*page_view_read_fn)(void *arg, uint32_t pgno, uint8_t *out);

struct page_view;

/* Opens the view of db_size pages: overlay (n pages, sorted by pgno, unique,
 * each <= db_size) over read_base.  The overlay, its images and arg must
 * outlive the view.  The schema is loaded at once: a schema that does not
 * parse is a failure here ("the schema does not parse: ...").  Returns 0, or
 * -1 with err filled. */
int page_view_open(struct page_view **out, uint32_t db_size,
		   const struct page_view_page *overlay, size_t n,
		   page_view_read_fn read_base, void *arg, char *err,
		   size_t err_len);

/* The connection (SQLITE_OPEN_READONLY); owned by the view. */
sqlite3 *page_view_db(struct page_view *v);

/* The view's size in pages. */
uint32_t page_view_size(const struct page_view *v);

/* Page pgno (1..size) as the view holds it, unpatched (page 1 as given,
 * not as SQLite is shown it), into out.  0, or -1 when it is out of range
 * or the base cannot be read. */
int page_view_read(struct page_view *v, uint32_t pgno, uint8_t *out);

/* Closes the connection and frees v (NULL is ignored). */
void page_view_close(struct page_view *v);

#endif
