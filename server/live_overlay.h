/* The live database of a fork, copy-on-write over the base it shares with
 * its source (store_fork.c): forking a large database costs neither a copy
 * of it nor its size on disk.
 *
 * Such a live.db is a sparse file of the database's size that holds only
 * the pages written since it was created: the frames of the fork's log,
 * replayed into it at every start, and what SQLite's checkpoints write.
 * Every other page is read from the shared base, kept beside it as the
 * hard link live.base (so that retention removing the generation's name
 * does not take it away).  SQLite reads and writes live.db through a VFS
 * shim (live_overlay_vfs) that sends each page to the right file:
 *
 *   page p comes from live.db  if it was written since (a bit per page of
 *                              the base), or p > limit
 *   page p comes from base     otherwise
 *
 * limit starts at the base's size in pages and only shrinks: when the
 * database is truncated below a page, that page's base image is gone for
 * good (a database that grows again writes its new pages before reading
 * them).
 *
 * Nothing of this is stored: at start-up the fork's whole current log is
 * replayed onto live.db (store_recover.c), and the pages of the log are
 * exactly the pages that differ from the base (every page a transaction
 * changes is in its frames, and a checkpoint only writes committed pages,
 * which are in the log), so live_overlay_take_log rebuilds the bits and
 * the limit from the log's frame headers.  Once the fork has a generation
 * of its own (a rollover), its next start rebuilds live.db whole from that
 * generation's base and drops live.base. */
#ifndef REPLITE_SERVER_LIVE_OVERLAY_H
#define REPLITE_SERVER_LIVE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

#include "frame_log.h"

struct live_overlay;

/* Read through base_path (the shared base: never written) for the pages
 * live_path (the sparse live.db) does not hold.  0, or -1 with err. */
int live_overlay_open(const char *base_path, const char *live_path,
		      struct live_overlay **out, char *err, size_t n);
/* No connection may still use its VFS. NULL is a no-op. */
void live_overlay_free(struct live_overlay *o);

/* The pages of frames 1..head of log (replayed into live.db) are read
 * from live.db, and a commit frame's smaller size lowers the limit. 0, or
 * -errno. */
int live_overlay_take_log(struct live_overlay *o, struct frame_log *log);

/* The shim over the default VFS (not registered: it is the root of the
 * store's capture VFS).  Only the main file at live_path is redirected. */
sqlite3_vfs *live_overlay_vfs(struct live_overlay *o);

/* Reads served from the base so far. */
uint32_t live_overlay_base_reads(const struct live_overlay *o);

#endif
