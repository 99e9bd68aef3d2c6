/* The stream cipher of the temporary files of encryption at rest (issue
 * 11): VACUUM's temporary database, the sorter's spill files, statement
 * journals, temporary tables and materialized views that spill.  AES-256-CTR
 * through OpenSSL's EVP interface, under a key and a nonce drawn at random
 * when the file is opened, held only in memory and wiped when it is closed.
 *
 * Why CTR and not the page cipher (wal/cipher.h):
 * - SQLite writes temporary files at any offset and length (the sorter
 *   appends records of any size; journals and temporary databases write
 *   pages, their headers apart), and they have no page size the cipher VFS
 *   could cut them by.  CTR encrypts each byte on its own: the counter
 *   block of byte i is nonce || i / 16, so any range encrypts and decrypts
 *   without reading its neighbours (no read-modify-write, no per-page
 *   space).
 * - CTR's weakness is keystream reuse: writing the same offset twice under
 *   one key gives whoever holds both versions their XOR.  The key here
 *   lives as long as one open file, so reuse happens only within one
 *   temporary file's life, at an offset rewritten in place (a temporary
 *   database's page spilled again, a statement journal reused by the next
 *   statement); never across files, runs or processes.  Once the file is
 *   closed the key is gone: each version of its bytes, wherever it remains
 *   on the disk, is noise on its own; no key is derived from the user's, so
 *   nothing ties a temporary file to another one or to the database.
 *
 * What it leaks: the file's size and which ranges were written (the cipher
 * VFS leaves gaps as holes); to someone who holds two versions of a rewritten
 * range (a copy of the open, already unlinked, file taken while SQLite runs, or
 * an old block a copy-on-write file system or an SSD kept after the rewrite),
 * the XOR of their plaintexts, which gives one where the other is known (a
 * page's zeros).  It gives no integrity: flipping a ciphertext bit flips
 * the same plaintext bit (writing into a running process's open temporary
 * file is beyond what encryption at rest addresses).
 *
 * One struct cipher_temp is used by one thread at a time (SQLite uses a
 * file handle from one thread at a time). */
#ifndef REPLITE_CIPHER_TEMP_H
#define REPLITE_CIPHER_TEMP_H

#include <stddef.h>
#include <stdint.h>

struct cipher_temp;

/* A cipher under a fresh random key and nonce (OpenSSL's RAND_bytes).
 * Returns 0 with *out, or -1 (no randomness, no memory, OpenSSL refused). */
int cipher_temp_new(struct cipher_temp **out);
/* Wipe the key and free (NULL is fine). */
void cipher_temp_free(struct cipher_temp *t);

/* Encrypt or decrypt (the same operation) the n bytes that sit at byte
 * offset off of the file: out[i] = in[i] ^ keystream[off + i].  in may
 * equal out; any off and n (off + n below 2^63).  Returns 0, or -1
 * (OpenSSL refused). */
int cipher_temp_xor(struct cipher_temp *t, uint64_t off, const uint8_t *in,
		    uint8_t *out, size_t n);

#endif
