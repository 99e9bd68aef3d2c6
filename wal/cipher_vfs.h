/* The cipher VFS: a shim (in the style of SQLite's cksumvfs.c and of
 * wal/wal_observer.c) over a root VFS that encrypts, with wal/cipher.h, the
 * pages of the database files it is told about and of their WALs.
 *
 * - The database file: every page whole, page 1 included (so a SQLite
 *   without the key says "file is not a database").  Reads of part of a
 *   page (the 100-byte header, ...) read and decrypt the whole page; a
 *   write of part of a page is a read-modify-write of the page.
 * - The WAL: the 32-byte WAL header and each frame's 24-byte header stay in
 *   clear (SQLite, recovery and the WAL injector read them); each frame's
 *   page is encrypted, whatever mix of headers and pages a read or write
 *   covers.
 * - Temporary files (no name, or deleted on close: sorts that spill,
 *   VACUUM's temporary database, statement journals, temporary tables),
 *   while at least one database is added: each under a random key of its
 *   own, forgotten at close (AES-256-CTR, wal/cipher_temp.h,
 *   wal/cipher_vfs_temp.h).  Such a file has no name tying it to a
 *   connection, so all of them are encrypted meanwhile.
 * - Everything else (the -shm wal-index, which holds no page content;
 *   rollback journals; other files) passes through unchanged, as do
 *   locks, xShm* and file controls.  Memory mapping is refused for the
 *   encrypted files (SQLite then reads through xRead).
 *
 * SQLite computes WAL checksums over the plaintext before xWrite and
 * verifies them after xRead, so they keep working. */
#ifndef REPLITE_CIPHER_VFS_H
#define REPLITE_CIPHER_VFS_H

#include <stddef.h>
#include <stdint.h>

#include "base/sqlite_api.h"

#include "wal/cipher.h"

/* Register a cipher VFS named name over root (NULL: the current default
 * VFS), not as the default.  Returns an SQLite code. */
int cipher_vfs_register(const char *name, sqlite3_vfs *root, sqlite3_vfs **out);
/* Unregister and free it; no file may still be open through it. */
void cipher_vfs_unregister(sqlite3_vfs *vfs);

/* Encrypt the database file at path (any form the root VFS's
 * xFullPathname accepts) and its WAL with a copy of c, in pages of
 * page_size bytes (a power of two, 512 to 65536, the database's page size:
 * a write that says otherwise fails).  Applies to files opened from now on.
 * Adding a path again with the same key and page size counts one more
 * user of it (cipher_vfs_remove takes one away).  Returns 0, or -1 with
 * err (path already added with another key, bad page size, ...). */
int cipher_vfs_add(sqlite3_vfs *vfs, const char *path, const struct cipher *c,
		   uint32_t page_size, char *err, size_t err_len);
/* One user of path less; with none left, files at path opened from now
 * on are not encrypted (open handles keep their cipher).  Returns 0, or
 * -1 when path was not added. */
int cipher_vfs_remove(sqlite3_vfs *vfs, const char *path);

#endif
