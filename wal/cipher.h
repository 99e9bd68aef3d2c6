/* The page cipher of encryption at rest (issue 11): the key the user gives
 * (a passphrase or a raw 256-bit key), the per-file keys derived from it and
 * a salt, a key-check value that detects a wrong key before any file is
 * touched, and AES-256-XTS over whole pages through OpenSSL's EVP interface.
 *
 * XTS needs no per-page space (pages arriving from the primary have no
 * reserved bytes): the tweak is the page's position, as in dm-crypt.  See
 * "Encryption at rest" in docs/architecture.md for what that leaks.
 *
 * A struct cipher holds OpenSSL contexts that it re-initialises for every
 * page: one object must not be used by two threads at once (cipher_dup
 * gives each user its own). */
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
 * (OpenSSL refused: n out of range). */
int cipher_encrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n);
int cipher_decrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n);

#endif
