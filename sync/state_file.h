/* The container of the replica state file ("app.db-replite"): versions of
 * the state's JSON text (sync/replica_state.h), overwritten in place, so
 * that a save costs one pwrite and at most one fdatasync instead of a
 * temporary file, its fsync, a rename and an fsync of the directory.
 *
 * The file holds STATE_FILE_SLOTS slots of STATE_FILE_SLOT_SIZE bytes; the
 * version numbered seq lives in slot seq % STATE_FILE_SLOTS:
 *
 *    0  "RPLS"
 *    4  the container's version (2; version 1 was the bare JSON text)
 *    8  seq (u64, big-endian), >= 1
 *   16  the length of the text (u32)
 *   20  flags (u32): 1 = the save made itself durable (fdatasync)
 *   24  XXH3-64 of bytes 0..23 and of the text (u64)
 *   32  the text
 *
 * The state is the valid slot with the highest seq.  A save overwrites the
 * oldest slot, never the two newest, so a crash in the middle of it (a
 * torn slot, caught by its checksum) leaves the newer of the others.
 *
 * Durability.  A save may skip its fdatasync (state_file_write with
 * durable = 0) only when losing it is safe, i.e. the state before it is
 * also a correct description of the file (the replica's "frame_no follows"
 * saves: frame_hwm, made durable before, already covers what they record).
 * The save after an unsynced one is always made durable, whatever it
 * asks: so of any two consecutive versions one is durable, and a power
 * loss that tears the slot being written and loses the unsynced version
 * before it still finds the durable one before that, intact.
 *
 * A file in the old format (JSON text; any file not starting with "RPLS")
 * is read as such;
 * the first save replaces it with a new-format file, atomically and
 * durably, as are files that are missing or damaged.  All saves of one
 * file are serialised (the replica saves under the WAL write lock); reads
 * need no lock. */
#ifndef REPLITE_STATE_FILE_H
#define REPLITE_STATE_FILE_H

#include <stddef.h>
#include <stdint.h>

#define STATE_FILE_SLOTS 3
#define STATE_FILE_SLOT_SIZE 16384
#define STATE_FILE_HEADER_SIZE 32
/* The longest text a slot holds. */
#define STATE_FILE_MAX_TEXT (STATE_FILE_SLOT_SIZE - STATE_FILE_HEADER_SIZE)

/* The text of the newest valid version (malloc'd, NUL-terminated) into
 * *text and *len.  Returns 0, -ENOENT when there is no file, -EBADMSG when
 * no slot is valid, or another -errno. */
int state_file_read(const char *path, char **text, size_t *len);

/* What names one content of the file, cheaply (a stat and three small
 * reads): two equal stamps, the same newest version.  The inode (a
 * replacement), and the newest slot's seq and checksum as written (a slot
 * torn and then written again under the same seq differs in checksum);
 * for a file of the old format, its inode, size and modification time. */
struct state_file_stamp {
	uint64_t v[4];
};
/* Returns 0, or -errno (-ENOENT: no file). */
int state_file_stamp(const char *path, struct state_file_stamp *out);

/* Save text (len <= STATE_FILE_MAX_TEXT) as the newest version; durable:
 * fdatasync before returning (see above for when it may be 0).  Returns 0,
 * -E2BIG for a text too long, or another -errno. */
int state_file_write(const char *path, const char *text, size_t len,
		     int durable);

#endif
