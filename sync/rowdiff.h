/* The row-level difference one transaction makes: for a local transaction
 * given as pages (the pages it changed, their images before and after, over
 * a common base read by a callback), which rows of which tables it
 * inserted, updated and deleted, with their values before and after.  The
 * offline replica's "conflict=rebase" re-applies these row changes on top
 * of the primary's newer state.
 *
 * The cost follows the transaction: only the rows whose table leaves the
 * transaction changes or frees are looked up, in two read-only views of the
 * database (wal/page_view.h).  Fallbacks that diff tables whole are taken
 * only where pages cannot say which rows changed (rowdiff.c says when);
 * rowdiff_stats reports them. */
#ifndef REPLITE_SYNC_ROWDIFF_H
#define REPLITE_SYNC_ROWDIFF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wal/page_view.h"

enum rowdiff_op { ROWDIFF_INSERT = 1, ROWDIFF_UPDATE, ROWDIFF_DELETE };

/* Values are Hrana values, as the primary encodes them:
 * {"type":"null"}, {"type":"integer","value":"42"}, {"type":"float",
 * "value":1.5}, {"type":"text","value":"..."}, {"type":"blob",
 * "base64":"..."}. */
struct rowdiff_change {
	char *table; /* malloc'd; "sqlite_schema" for the schema (DDL) */
	enum rowdiff_op op;
	int64_t rowid; /* rowid tables; 0 for WITHOUT ROWID */
	/* The row's key: {"rowid": n} for a table without a declared
	 * PRIMARY KEY, else the PRIMARY KEY's columns (an INTEGER PRIMARY
	 * KEY is the rowid by its column's name); taken from the row before
	 * for an update or a delete, after for an insert. */
	json_t *key;
	/* {"col": value, ...} of every column; NULL for an insert (before)
	 * resp. a delete (after). */
	json_t *before, *after;
};

/* One page the transaction changed.  A page beyond the size before (the
 * database grew) has no image before: NULL or zeros, either is ignored; one
 * beyond the size after (cut off) likewise has no image after. */
struct rowdiff_page {
	uint32_t pgno;
	const uint8_t *before; /* PAGE_VIEW_PAGE_SIZE bytes, or NULL */
	const uint8_t *after;  /* PAGE_VIEW_PAGE_SIZE bytes, or NULL */
};

/* How the difference was found (for tests and the curious). */
struct rowdiff_stats {
	size_t rows_looked_up; /* (table, rowid) pairs read in both views */
	size_t pages_freed;    /* pages the transaction frees without writing
				* them, whose rows were looked at */
	size_t tables_listed;  /* tables created or dropped: listed whole */
	size_t tables_merged;  /* tables diffed whole by a fallback */
	int overflow_fallback; /* a changed page nothing else accounts for */
	int without_rowid_fallback; /* an index page changed, and the schema
				     * has WITHOUT ROWID tables */
};

struct rowdiff_input {
	/* Every page the transaction did not change (the base). */
	page_view_read_fn read;
	void *arg;
	/* The pages it changed, sorted by pgno, unique. */
	const struct rowdiff_page *pages;
	size_t n_pages;
	/* The database's size in pages before and after (0: empty). */
	uint32_t size_before, size_after;
	/* Filled when not NULL. */
	struct rowdiff_stats *stats;
};

/* The changes, schema (table "sqlite_schema") first, then by table name,
 * then by key: the rowid, or the declared PRIMARY KEY's values in BINARY
 * order (whatever the columns' collations; a key deleted and inserted
 * again under another rowid: the delete first).  *out is malloc'd (free with
 * rowdiff_free; NULL when there are none).  Returns 0, or -1 with err
 * filled (a page that cannot be read, a schema that does not parse, out of
 * memory). */
int rowdiff_compute(const struct rowdiff_input *in, struct rowdiff_change **out,
		    size_t *n_out, char *err, size_t err_len);

void rowdiff_free(struct rowdiff_change *c, size_t n);

#endif
