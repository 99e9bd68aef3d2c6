#include "cipher_temp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KEY_SIZE 32   /* AES-256 */
#define BLOCK_SIZE 16 /* AES's block: one counter value per block */
#define NONCE_SIZE 8  /* the counter block's first half */
/* EVP_CipherUpdate takes an int length: longer inputs go in pieces. */
#define MAX_UPDATE (1 << 30)

struct cipher_temp {
	EVP_CIPHER *ctr; /* fetched once: an implicit fetch per call costs */
	/* Keyed once, at creation; each call only sets the counter block.
	 * CTR encrypts and decrypts alike, so one context serves both. */
	EVP_CIPHER_CTX *ctx;
	uint8_t nonce[NONCE_SIZE];
};

int cipher_temp_new(struct cipher_temp **out)
{
	uint8_t key[KEY_SIZE];
	struct cipher_temp *t = calloc(1, sizeof *t);
	int rc = -1;

	*out = NULL;
	if (t == NULL)
		goto cleanup;
	/* The key exists only here and in the context's key schedule, which
	 * EVP_CIPHER_CTX_free clears. */
	if (RAND_bytes(key, sizeof key) != 1 ||
	    RAND_bytes(t->nonce, sizeof t->nonce) != 1)
		goto cleanup;
	t->ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
	t->ctx = EVP_CIPHER_CTX_new();
	if (t->ctr == NULL || t->ctx == NULL ||
	    EVP_EncryptInit_ex(t->ctx, t->ctr, NULL, key, NULL) != 1)
		goto cleanup;
	*out = t;
	t = NULL;
	rc = 0;
cleanup:
	OPENSSL_cleanse(key, sizeof key);
	cipher_temp_free(t);
	return rc;
}

void cipher_temp_free(struct cipher_temp *t)
{
	if (t == NULL)
		return;
	EVP_CIPHER_CTX_free(t->ctx);
	EVP_CIPHER_free(t->ctr);
	OPENSSL_cleanse(t, sizeof *t);
	free(t);
}

/* The counter block of the 16-byte block number block: the nonce, then
 * the block number big-endian (OpenSSL's CTR increments the block as one
 * big-endian 128-bit number; offsets below 2^63 never carry into the
 * nonce). */
static void counter_block(const struct cipher_temp *t, uint64_t block,
			  uint8_t iv[BLOCK_SIZE])
{
	int i;

	memcpy(iv, t->nonce, NONCE_SIZE);
	for (i = 0; i < 8; i++)
		iv[NONCE_SIZE + i] = (uint8_t)(block >> (56 - 8 * i));
}

int cipher_temp_xor(struct cipher_temp *t, uint64_t off, const uint8_t *in,
		    uint8_t *out, size_t n)
{
	static const uint8_t zeros[BLOCK_SIZE];
	uint8_t iv[BLOCK_SIZE], ks[BLOCK_SIZE];
	size_t skip = (size_t)(off % BLOCK_SIZE), k, i;
	int outl, len, rc = -1;

	assert(off < ((uint64_t)1 << 63) && n <= ((uint64_t)1 << 63) - off);
	if (n == 0)
		return 0;
	counter_block(t, off / BLOCK_SIZE, iv);
	/* No key: the key schedule stays, only the counter is set (and the
	 * context's position in its block goes back to 0). */
	if (EVP_EncryptInit_ex(t->ctx, NULL, NULL, NULL, iv) != 1)
		goto cleanup;
	if (skip != 0) {
		/* off is inside a block: its keystream block, of which the
		 * bytes before off are dropped; the context then stands at
		 * the next block, aligned. */
		if (EVP_EncryptUpdate(t->ctx, ks, &outl, zeros, BLOCK_SIZE) !=
			1 ||
		    outl != BLOCK_SIZE)
			goto cleanup;
		k = BLOCK_SIZE - skip < n ? BLOCK_SIZE - skip : n;
		for (i = 0; i < k; i++)
			out[i] = in[i] ^ ks[skip + i];
		in += k;
		out += k;
		n -= k;
	}
	while (n > 0) {
		len = n > MAX_UPDATE ? MAX_UPDATE : (int)n;
		if (EVP_EncryptUpdate(t->ctx, out, &outl, in, len) != 1 ||
		    outl != len)
			goto cleanup;
		in += len;
		out += len;
		n -= (size_t)len;
	}
	rc = 0;
cleanup:
	OPENSSL_cleanse(ks, sizeof ks);
	return rc;
}
