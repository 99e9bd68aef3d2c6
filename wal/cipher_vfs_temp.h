/* The temporary files of the cipher VFS (wal/cipher_vfs.h): which files get
 * a key of their own, and their reads and writes through it
 * (wal/cipher_temp.h).  Internal to wal/cipher_vfs.c, which opens, closes
 * and refuses to map them.
 *
 * A temporary file (VACUUM's temporary database, the sorter's spill files,
 * statement journals, temporary tables, materialized views, the journals
 * of those) is written and read by the handle that made it only, and
 * deleted when that handle closes: its key can be drawn at random at open
 * and forgotten at close, and nothing about it has to be stored. */
#ifndef REPLITE_CIPHER_VFS_TEMP_H
#define REPLITE_CIPHER_VFS_TEMP_H

#include "base/sqlite_api.h"

struct cipher_vfs_temp;

/* Whether a file SQLite opens with name and flags is a temporary one that
 * a key of its own protects: a file without a name (the root VFS makes one
 * up and deletes the file on close) or one deleted on close.  The type
 * flags (SQLITE_OPEN_TEMP_DB, _TEMP_JOURNAL, _SUBJOURNAL, _TRANSIENT_DB)
 * are not the test: what an ephemeral key needs is that the content dies
 * with the handle, and SQLite opens every file of those types without a
 * name and with SQLITE_OPEN_DELETEONCLOSE (test_cipher_temp checks it). */
int cipher_vfs_temp_wanted(sqlite3_filename name, int flags);

/* A fresh ephemeral key and an empty scratch buffer.  Returns 0 with *out,
 * or -1. */
int cipher_vfs_temp_new(struct cipher_vfs_temp **out);
/* Wipe the key and free (NULL is fine). */
void cipher_vfs_temp_free(struct cipher_vfs_temp *t);

/* xRead, xWrite and xTruncate of a temporary file whose real handle is
 * real.  Any offset and length; only bytes written through the handle are
 * decrypted, so the others (past the end, with the root VFS's
 * SQLITE_IOERR_SHORT_READ; a gap a write past the end left) read as the
 * root VFS gives them: zeros. */
int cipher_vfs_temp_read(struct cipher_vfs_temp *t, sqlite3_file *real,
			 void *buf, int amt, sqlite3_int64 off);
int cipher_vfs_temp_write(struct cipher_vfs_temp *t, sqlite3_file *real,
			  const void *buf, int amt, sqlite3_int64 off);
int cipher_vfs_temp_truncate(struct cipher_vfs_temp *t, sqlite3_file *real,
			     sqlite3_int64 size);

#endif
