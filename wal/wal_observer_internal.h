/* The WAL observer's handles, shared by the files that implement it
 * (wal_observer.h is the interface): wal_observer.c (the VFS, its io methods
 * and the main file's wal-index locks) and wal_observer_txn.c (the write
 * transaction a WAL handle is writing, and the commit hook). */
#ifndef REPLITE_WAL_OBSERVER_INTERNAL_H
#define REPLITE_WAL_OBSERVER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "wal/page_map.h"
#include "wal/wal_index.h"
#include "wal/wal_observer.h"
#include "wal/walfmt.h"

enum obs_kind { OBS_OTHER = 0, OBS_MAIN, OBS_WAL };

struct observer {
	sqlite3_vfs vfs; /* must be first: the registered VFS */
	sqlite3_vfs *root;
	struct wal_observer_hooks hooks;
	pthread_mutex_t mu; /* guards the list of main files */
	struct obs_file *mains;
	char *name;
};

/* The write transaction in progress on one WAL handle. */
struct obs_txn {
	uint32_t page_size;
	struct page_map pages;
	uint32_t max_frame;
	int have_commit_hdr; /* the commit header is held back, see
			      * wal_write_header (wal_observer_txn.c) */
	uint8_t commit_hdr[WALFMT_FRAME_HDR_SIZE];
	sqlite3_int64 commit_hdr_off;
	uint32_t commit_frame;
	int committed; /* on_commit accepted the transaction */
};

struct obs_file {
	sqlite3_file base; /* must be first */
	struct observer *obs;
	enum obs_kind kind;
	const char *name;      /* main: the zName SQLite gave xOpen */
	struct obs_file *next; /* main: observer's list */
	struct obs_file *wal;  /* main: its connection's WAL handle */
	struct obs_file *main; /* WAL: its connection's main handle */
	struct obs_txn txn;    /* WAL only */
	void *ctx;             /* main: from hooks.on_open_main */
	unsigned shm_held;     /* main: bit i = wal-index lock slot i held */
	/* main, while it holds the write lock for a write transaction: the
	 * last wal-index header published before its commit (see
	 * keep_private), and whether the commit is kept private. */
	int in_write;
	int keep_private;
	uint8_t stable_hdr[WAL_INDEX_HDR_COPY_SIZE];
	/* The real file follows this struct. */
};

/* The real file a handle wraps: it follows struct obs_file. */
#define REAL(f) ((sqlite3_file *)((struct obs_file *)(f) + 1))

/* Forget the transaction being written; the WAL's page size stays. */
void wal_observer_txn_reset(struct obs_txn *t);

/* xWrite of a WAL handle: follows the frames of the transaction being
 * written, and holds its commit frame back for hooks.on_commit. */
int wal_observer_txn_write(struct obs_file *wal, const void *buf, int amt,
			   sqlite3_int64 off);

#endif
