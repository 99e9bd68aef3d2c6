/* The page cipher of encryption at rest (issue 11): the key the user gives
 * (a passphrase or a raw 256-bit key), the per-file keys derived from it and
 * a salt, a key-check value that detects a wrong key before any file is
 * touched, and AES-256-XTS over whole pages (libgcrypt; OpenSSL for the key
 * derivation, the sealed files and the random bytes).
 *
 * XTS needs no per-page space (pages arriving from the primary have no
 * reserved bytes): the tweak is the page's position, as in dm-crypt.  See
 * "Encryption at rest" in docs/architecture.md for what that leaks.
 *
 * A struct cipher holds a libgcrypt handle whose tweak it sets for every
 * page: one object must not en- or decrypt pages in two threads at once
 * (cipher_dup gives each user its own; sealing is safe to share). */
#ifndef REPLITE_CIPHER_H
#define REPLITE_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#define CIPHER_KEY_SIZE 32   /* a raw key, and the master key */
#define CIPHER_SALT_SIZE 16  /* per file, random, stored in clear */
#define CIPHER_CHECK_SIZE 16 /* the key-check value, stored in clear */

/* The key as the user gave it, parsed. */
struct cipher_key {
	int is_raw;
	uint8_t raw[CIPHER_KEY_SIZE]; /* is_raw */
	char *passphrase;             /* !is_raw: malloc'd copy */
	size_t passphrase_len;
};

/* Parse key text: x'<64 hex digits>' (or X'...') is a raw 256-bit key,
 * anything else non-empty a passphrase.  Returns 0, or -1 with err naming
 * the expected form (never the key).  Clear *out with cipher_key_wipe. */
int cipher_key_parse(const char *text, struct cipher_key *out, char *err,
		     size_t err_len);
/* Erase and free what cipher_key_parse stored (a zeroed struct is fine). */
void cipher_key_wipe(struct cipher_key *k);

/* A fresh random salt for a new encrypted file.  Returns 0 or -1 (err). */
int cipher_salt_new(uint8_t salt[CIPHER_SALT_SIZE], char *err, size_t err_len);

/* Which file a page lives in: its tweak space, so that the same position
 * in the database file and in the WAL never shares a tweak. */
enum cipher_space { CIPHER_SPACE_DB = 0, CIPHER_SPACE_WAL = 1 };

struct cipher;

/* The cipher of the files salted with salt, under key: for a passphrase
 * this runs the KDF (scrypt, tens of milliseconds).  Returns 0 with *out,
 * or -1 with err. */
int cipher_new(const struct cipher_key *key,
	       const uint8_t salt[CIPHER_SALT_SIZE], struct cipher **out,
	       char *err, size_t err_len);
/* Another cipher with the same keys and contexts of its own (no KDF). */
int cipher_dup(const struct cipher *c, struct cipher **out, char *err,
	       size_t err_len);
/* Erase the keys and free (NULL is fine). */
void cipher_free(struct cipher *c);

/* The key-check value of c's key and salt, to store beside the salt when a
 * file is created; a later open compares it with cipher_check_matches
 * before reading or writing anything. */
void cipher_check_value(const struct cipher *c, uint8_t out[CIPHER_CHECK_SIZE]);
/* 1 when check is c's key-check value (constant time), else 0. */
int cipher_check_matches(const struct cipher *c,
			 const uint8_t check[CIPHER_CHECK_SIZE]);

/* Encrypt or decrypt n bytes (16 <= n <= 16 MiB: one XTS data unit, a
 * whole page) at position pos of space (the page number in the database
 * file, the frame number in the WAL).  in may equal out.  Returns 0, or -1
 * (n out of range, or libgcrypt refused). */
int cipher_encrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n);
int cipher_decrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n);

/* Sealing: the replica's files that are not pages (the offline outbox's
 * page images, the conflict records, the rebase plan) are written whole,
 * once, so they are encrypted AND authenticated with AES-256-GCM under a
 * subkey of their own, a random 96-bit nonce per message (2^32 messages
 * under one key keep the collision chance below 2^-32), and a 128-bit tag.
 *
 * A sealed message in memory is nonce || ciphertext || tag, with n bytes
 * of data in the middle: CIPHER_SEAL_OVERHEAD bytes more than the data.
 * aad is authenticated, not encrypted (what the message is bound to: a
 * record header, a file name's role).  These keep no state in c: any
 * number of threads may seal and unseal with one c at once. */
#define CIPHER_SEAL_NONCE 12
#define CIPHER_SEAL_TAG 16
#define CIPHER_SEAL_OVERHEAD (CIPHER_SEAL_NONCE + CIPHER_SEAL_TAG)

/* Bytes authenticated with a sealed message, in pieces. */
struct cipher_aad {
	const void *p;
	size_t n;
};

/* Seal in place: buf holds CIPHER_SEAL_NONCE bytes of room, the n bytes of
 * data, and CIPHER_SEAL_TAG bytes of room; the nonce, the data encrypted
 * and the tag are written there.  Returns 0, or -1 (OpenSSL failed). */
int cipher_seal(const struct cipher *c, const struct cipher_aad *aad,
		size_t naad, uint8_t *buf, size_t n);
/* Open a message cipher_seal wrote (n data bytes, as sealed): the data
 * is decrypted in place (at buf + CIPHER_SEAL_NONCE) and the tag checked.
 * Returns 0, or -1 when it does not authenticate (damaged, another aad,
 * another key) or OpenSSL failed; the data is then wiped. */
int cipher_unseal(const struct cipher *c, const struct cipher_aad *aad,
		  size_t naad, uint8_t *buf, size_t n);

/* The same for text files: data sealed (aad: a NUL-terminated label) and
 * written as base64 (malloc'd, NUL-terminated; NULL on failure), and back
 * (malloc'd, *n bytes and a NUL after them; NULL when the text is not
 * base64 or does not authenticate). */
char *cipher_seal_text(const struct cipher *c, const char *aad,
		       const void *data, size_t n);
char *cipher_unseal_text(const struct cipher *c, const char *aad,
			 const char *text, size_t len, size_t *n);

#endif
