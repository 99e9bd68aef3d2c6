/* Transactions as a push carries them, built from two database files: the
 * pages that differ, and each b-tree's changed pages before and after (the
 * membership from SQLite's dbstat), for wal/page_view.h and store_rows.h. */
#ifndef REPLITE_TEST_ROWS_FIXTURE_H
#define REPLITE_TEST_ROWS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "wal/page_view.h"
#include "server/store_rows.h"

/* A whole database file in memory. */
struct rows_file {
	uint8_t *data;
	uint32_t n_pages;
};

void rows_file_load(struct rows_file *f, const char *path);
void rows_file_store(const struct rows_file *f, const char *path);
void rows_file_free(struct rows_file *f);
uint8_t *rows_file_page(const struct rows_file *f, uint32_t pgno);

/* The transaction that turns the file at old_path into the one at
 * new_path. */
struct rows_txn {
	struct rows_file old, new;
	struct page_view_page *overlay; /* the pages that differ */
	size_t n_overlay;
	struct store_rows_tree *trees;
	size_t n_trees;
	struct store_rows_page *pages; /* the trees' lists point in here */
};

void rows_txn_build(struct rows_txn *t, const char *old_path,
		    const char *new_path);
void rows_txn_free(struct rows_txn *t);

/* Reads a page before (the old file) or after (the new one). */
int rows_txn_read(void *arg, int after, uint32_t pgno, uint8_t *out);
/* A page_view_read_fn on the old file. */
int rows_txn_read_base(void *arg, uint32_t pgno, uint8_t *out);

/* store_rows_check of the transaction from old_path to new_path, with a
 * connection on old_path and a page view; its answer, why filled. */
int rows_check(const char *old_path, const char *new_path, char *why,
	       size_t why_len);

/* PRAGMA integrity_check's first line on the file: "ok" or what is wrong
 * (malloc'd). */
char *rows_integrity(const char *path);

/* Opens path read-write with journal_mode=DELETE (the default). */
sqlite3 *rows_open(const char *path);
/* Runs sql on the file at path (one connection, closed after). */
void rows_exec(const char *path, const char *sql);
/* Sets the sql of schema object name (NULL: back to its sql in
 * orig_path) with writable_schema, as a corrupting client could. */
void rows_set_sql(const char *path, const char *name, const char *sql,
		  const char *orig_path);
void rows_copy(const char *from, const char *to);
/* The pages (dbstat) of tree in the file at path, of pagetype type
 * ("internal", "leaf", "overflow"), ascending, at most max. */
size_t rows_tree_pages(const char *path, const char *tree, const char *type,
		       uint32_t *out, size_t max);

#endif
