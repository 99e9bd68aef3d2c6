/* A read-only SQLite connection on "the database as a transaction would
 * leave it": page p is the transaction's image of p if it has one, else the
 * page as it is now (a callback), and the file is the transaction's size.
 * Nothing is copied and nothing is written: SQLite reads through a private
 * VFS whose only file is this view, immutable (no locks, no journal, no WAL,
 * no -shm).  The primary uses it to judge a push with SQL before logging it
 * (store_rows.h). */
#ifndef REPLITE_SERVER_CANDIDATE_H
#define REPLITE_SERVER_CANDIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Page size of every candidate (the primary's). */
#define CANDIDATE_PAGE_SIZE 4096

/* One page image the transaction writes. */
struct candidate_page {
	uint32_t pgno;
	const uint8_t *data; /* CANDIDATE_PAGE_SIZE bytes */
};

/* Reads page pgno (1-based) as it is now into out (CANDIDATE_PAGE_SIZE
 * bytes); 0 on success, -1 on failure. */
typedef int (*candidate_read_fn)(void *arg, uint32_t pgno, uint8_t *out);

struct candidate;

/* Opens the view of db_size pages: overlay (n pages, sorted by pgno, unique,
 * each <= db_size) over read_base.  The overlay, its images and arg must
 * outlive the candidate.  The schema is loaded at once: a schema that does
 * not parse is a failure here.  Returns 0, or -1 with why filled. */
int candidate_open(struct candidate **out, uint32_t db_size,
		   const struct candidate_page *overlay, size_t n,
		   candidate_read_fn read_base, void *arg, char *why,
		   size_t why_len);

/* The connection (SQLITE_OPEN_READONLY); owned by the candidate. */
sqlite3 *candidate_db(struct candidate *c);

/* Closes the connection and frees c (NULL is ignored). */
void candidate_close(struct candidate *c);

#endif
