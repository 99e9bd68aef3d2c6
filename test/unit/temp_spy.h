/* A root VFS for tests that sees what reaches SQLite's temporary files:
 * registered under the cipher VFS (test_cipher_temp) or as the default VFS
 * before replite stacks over it (test_replica_encryption), it records, per
 * file type, the bytes written to every temporary file (no name, deleted
 * on close, or opened as a temporary database, temporary or statement
 * journal, or transient database) and how many of those files held a
 * marker string: in one write, or in the file's content before a truncation
 * or at its close (a marker cut across two writes).  Other files are the
 * root's own handles.  One spy per process; the counts are guarded by a mutex.
 */
#ifndef REPLITE_TEST_TEMP_SPY_H
#define REPLITE_TEST_TEMP_SPY_H

#include <stdint.h>

#include <sqlite3.h>

/* The types a temporary file is counted under: its open flags. */
enum temp_spy_type {
	TEMP_SPY_TEMP_DB = 0,  /* SQLITE_OPEN_TEMP_DB (VACUUM, temp tables) */
	TEMP_SPY_TRANSIENT_DB, /* SQLITE_OPEN_TRANSIENT_DB (ephemeral) */
	TEMP_SPY_TEMP_JOURNAL, /* SQLITE_OPEN_TEMP_JOURNAL (sorter, ...) */
	TEMP_SPY_SUBJOURNAL,   /* SQLITE_OPEN_SUBJOURNAL (statement journal) */
	TEMP_SPY_OTHER,        /* none of those */
	TEMP_SPY_NTYPES
};

struct temp_spy_stats {
	int64_t opens;                  /* temporary files opened */
	int64_t bytes[TEMP_SPY_NTYPES]; /* written to them */
	/* Of them, those that held the marker: in a write (counted then), or
	 * in their content when truncated or closed. */
	int64_t holding[TEMP_SPY_NTYPES];
	int64_t mapped; /* xFetch calls on them that returned a mapping */
	/* Opens with a temporary type that had a name or no
	 * SQLITE_OPEN_DELETEONCLOSE (wal/cipher_vfs_temp.h counts on none). */
	int64_t named_or_kept;
};

/* Register the spy as name over the current default VFS, as the default
 * when make_default; files holding marker are counted.  Returns an SQLite
 * code. */
int temp_spy_register(const char *name, int make_default, const char *marker);
/* The counts so far, and their reset. */
void temp_spy_get(struct temp_spy_stats *out);
void temp_spy_reset(void);
/* Bytes written to temporary files of any type; files holding the marker. */
int64_t temp_spy_total_bytes(const struct temp_spy_stats *s);
int64_t temp_spy_total_holding(const struct temp_spy_stats *s);

#endif
