/* Helpers shared by the tests of the WAL injector (test_inject.c and
 * test_inject_{wal,batch}.c, one theme each): a primary P (plain SQLite)
 * and a replica R made from the same base file, P's committed frames read
 * back from its WAL and injected into R, and the checks that R's WAL,
 * wal-index and content are P's. */
#ifndef REPLITE_TEST_INJECT_HELPERS_H
#define REPLITE_TEST_INJECT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "wal/wal_inject.h"

/* The page size of the fixed-size tests. */
#define IJH_PAGE_SIZE 4096
/* Frames the wal-index's first hash block indexes (the boundary tests). */
#define IJH_HASH_NPAGE_ONE 4062

/* WalIndexHdr as SQLite lays it out (native byte order). */
struct ijh_shm_hdr {
	uint32_t version;
	uint32_t unused;
	uint32_t change;
	uint8_t is_init;
	uint8_t big_end_cksum;
	uint16_t page_size;
	uint32_t max_frame;
	uint32_t n_page;
	uint32_t frame_cksum[2];
	uint8_t salt[8];
	uint32_t cksum[2];
};

/* The page size of the databases of the running test
 * (ijh_pair_new_sized()); frame offsets depend on it. */
extern uint32_t ijh_page_size;

/* ---- SQL helpers ---- */

/* The (busy, log, checkpointed) row of PRAGMA wal_checkpoint(mode). */
void ijh_checkpoint(sqlite3 *db, const char *mode, int out[3]);
/* A checkpoint that must copy every frame (mode PASSIVE, RESTART, ...). */
void ijh_checkpoint_fully(sqlite3 *db, const char *mode);
/* A digest of the schema and every row of the test tables: compares P and
 * R, or a snapshot before and after. */
uint64_t ijh_content_hash(sqlite3 *db);
/* The same in a read transaction of its own. */
uint64_t ijh_content_hash_in_txn(sqlite3 *db);
/* A connection with a busy timeout that never checkpoints by itself. */
sqlite3 *ijh_open_db(const char *path);

/* ---- Files, through the connection's own handles ---- */

/* The main database (SQLITE_FCNTL_FILE_POINTER) or WAL
 * (SQLITE_FCNTL_JOURNAL_POINTER) handle of db: a raw open() and close()
 * would drop SQLite's locks. */
sqlite3_file *ijh_file_of(sqlite3 *db, int op);
/* The size of a handle's file. */
int64_t ijh_handle_size(sqlite3_file *f);
/* A handle's whole file (malloc'd), to compare P's with R's. */
uint8_t *ijh_read_whole(sqlite3_file *f, size_t *len);
/* len bytes of db's WAL at off (malloc'd): headers and frames. */
uint8_t *ijh_wal_range(sqlite3 *db, int64_t off, size_t len);
/* The size of db's WAL file. */
int64_t ijh_wal_size(sqlite3 *db);
/* Region region of db's wal-index, mapped through its own handle. */
volatile uint8_t *ijh_shm_region(sqlite3 *db, int region);
/* The wal-index header of db as it is now. */
struct ijh_shm_hdr ijh_shm_header(sqlite3 *db);
/* The wal-index hash block that indexes frame. */
uint32_t ijh_frame_block(uint32_t frame);
/* A file by path when no connection has it open (a copy, a converted
 * WAL); read back with fixture_read_file. */
void ijh_write_file(const char *path, const uint8_t *buf, size_t len);

/* ---- WAL and wal-index checks ---- */

/* Every frame up to mxFrame has the header's salts and a valid checksum
 * chain; returns the WAL's checksum byte order (-1 for an empty WAL). */
int ijh_assert_wal_chain(sqlite3 *db);
/* SQLite's own wal-index asserts: one slot per indexed frame, each frame
 * reachable from its page's key. */
void ijh_assert_hash_blocks(sqlite3 *db);
/* db and its WAL copied to dir/name without the -shm, as a crash leaves
 * them (the last frame's checksum broken if corrupt_last_frame), opened by
 * plain SQLite, whose recovery rebuilds the wal-index. */
sqlite3 *ijh_crash_copy(sqlite3 *db, const char *dir, const char *name,
			bool corrupt_last_frame);
/* A crash copy of db recovers every frame: same content, same mxFrame. */
void ijh_assert_crash_copy_equal(sqlite3 *db, const char *dir);

/* ---- A primary and its replica ---- */

/* The frames P committed since the last extraction. */
struct ijh_batch {
	struct wal_page *pages;
	uint8_t *buf;
	size_t n;
	uint32_t db_size;
};

struct ijh_pair {
	char *dir;
	char *p_path;
	char *r_path;
	sqlite3 *p;    /* the primary's writer */
	sqlite3 *p2;   /* the primary's checkpointer */
	sqlite3 *r;    /* the replica's internal connection */
	sqlite3 *r2;   /* the replica's checkpointer and reader */
	bool lockstep; /* replay SQLite's PRNG: byte-identical files */
	int sync;
	uint32_t consumed;        /* last frame of P's WAL injected */
	uint8_t p_salt[8];        /* salts of P's WAL for consumed */
	uint32_t r_first, r_last; /* R's frames of the last batch */
	bool straddled;           /* some batch held frames 4062 and 4063 */
	size_t max_batch;
};

/* Open R's two connections (again, after a simulated crash). */
void ijh_pair_open_replica(struct ijh_pair *pr);
/* P and R from one base file of page size size; lockstep: R's WAL and
 * wal-index compared with P's byte for byte after every batch. */
struct ijh_pair *ijh_pair_new_sized(bool lockstep, uint32_t size);
/* The same with IJH_PAGE_SIZE. */
struct ijh_pair *ijh_pair_new(bool lockstep);
/* Close every connection and remove the directory. */
void ijh_pair_free(struct ijh_pair *pr);
/* Free a batch of ijh_pair_extract. */
void ijh_batch_free(struct ijh_batch *b);
/* The frames P committed since the last call, for a test that injects them
 * itself. */
void ijh_pair_extract(struct ijh_pair *pr, struct ijh_batch *b);
/* The sync thread's step on db: BEGIN IMMEDIATE, wal_inject, COMMIT;
 * wal_inject's result. */
int ijh_inject_into(sqlite3 *db, const struct wal_inject_opts *opts,
		    const struct wal_page *pages, size_t n, uint32_t db_size,
		    char **msg);
/* P's and R's database files are byte-identical (after a checkpoint). */
void ijh_pair_compare_db_files(struct ijh_pair *pr);
/* Commit sql on P as one transaction and inject it into R. */
void ijh_pair_commit(struct ijh_pair *pr, const char *sql);
/* The same for a statement that is a transaction of its own (VACUUM). */
void ijh_pair_commit_bare(struct ijh_pair *pr, const char *sql);
/* ijh_pair_commit of fmt with the number n (IJH_INSERT_ROWS). */
void ijh_pair_commitf(struct ijh_pair *pr, const char *fmt, int n);
/* Both of R's connections see P's content, and R is sound. */
void ijh_pair_assert_same_content(struct ijh_pair *pr);

/* Insert %d rows of 3000 random bytes into t (ijh_pair_commitf). */
#define IJH_INSERT_ROWS                                                        \
	"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "      \
	"WHERE i < %d) INSERT INTO t(v) SELECT randomblob(3000) FROM c"

#endif
