#include "cipher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "base/base64.h"
#include "base/errors.h"
#include "base/hex.h"

/* The passphrase KDF: scrypt, because it is memory-hard (each guess costs
 * 16 MiB as well as time, which is what makes GPU and ASIC guessing dear;
 * PBKDF2 costs time only).  N = 2^14, r = 8, p = 1 are Percival's
 * "interactive" parameters: measured 86-92 ms on this 2-core machine
 * (N = 2^15 took 170 ms, over the ~100 ms an open may spend).  The
 * parameters are part of the file format: changing them needs a version
 * beside the salt. */
#define KDF_SCRYPT_N (1u << 14)
#define KDF_SCRYPT_R 8u
#define KDF_SCRYPT_P 1u
/* 128 * N * r bytes for V plus B and XY; with room to spare. */
#define KDF_SCRYPT_MAXMEM (32u << 20)

/* The labels of the subkeys drawn from the master key by HKDF: one key per
 * use, so that no key serves two purposes (the check value reveals nothing
 * about the XTS keys). */
#define LABEL_XTS_DATA "replite xts data key v1"
#define LABEL_XTS_TWEAK "replite xts tweak key v1"
#define LABEL_CHECK "replite key check v1"
#define LABEL_SEAL "replite gcm seal key v1"

struct cipher {
	/* XTS's 512-bit key: the data key, then the tweak key. */
	uint8_t xts_key[2 * CIPHER_KEY_SIZE];
	uint8_t check[CIPHER_CHECK_SIZE];
	uint8_t seal_key[CIPHER_KEY_SIZE]; /* AES-256-GCM (cipher_seal) */
	/* AES-256-XTS, keyed once; each page only sets its tweak.  One
	 * handle does both directions (libgcrypt keeps the decryption key
	 * schedule beside the encryption one). */
	gcry_cipher_hd_t xts;
};

/* ---------------------------------------------------------------------- */
/* the key text */

static int starts_raw(const char *text)
{
	return (text[0] == 'x' || text[0] == 'X') && text[1] == '\'';
}

int cipher_key_parse(const char *text, struct cipher_key *out, char *err,
		     size_t err_len)
{
	char hex[2 * CIPHER_KEY_SIZE + 1];
	size_t len, inner;

	memset(out, 0, sizeof *out);
	if (text == NULL || text[0] == '\0') {
		errors_set(err, err_len,
			   "the encryption key is empty: give a passphrase or "
			   "x'<64 hex digits>'");
		return -1;
	}
	len = strlen(text);
	/* Text that starts like a raw key must be one: a mistyped raw key
	 * taken as a passphrase would encrypt under a key nobody knows. */
	if (starts_raw(text)) {
		inner = len >= 3 && text[len - 1] == '\'' ? len - 3 : 0;
		if (len < 3 || text[len - 1] != '\'') {
			errors_set(err, err_len,
				   "a raw encryption key is written x'<64 hex "
				   "digits>' (a closing quote is missing)");
			return -1;
		}
		if (inner != 2 * CIPHER_KEY_SIZE) {
			errors_set(err, err_len,
				   "a raw encryption key is written x'<64 hex "
				   "digits>' (256 bits); this one has %zu "
				   "characters between the quotes",
				   inner);
			return -1;
		}
		memcpy(hex, text + 2, inner);
		hex[inner] = '\0';
		if (hex_decode(hex, out->raw, CIPHER_KEY_SIZE) != 0) {
			OPENSSL_cleanse(hex, sizeof hex);
			OPENSSL_cleanse(out->raw, sizeof out->raw);
			errors_set(err, err_len,
				   "a raw encryption key is written x'<64 hex "
				   "digits>'; this one has a character that is "
				   "not a hex digit (0-9, a-f)");
			return -1;
		}
		OPENSSL_cleanse(hex, sizeof hex);
		out->is_raw = 1;
		return 0;
	}
	out->passphrase = malloc(len + 1);
	if (out->passphrase == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	memcpy(out->passphrase, text, len + 1);
	out->passphrase_len = len;
	return 0;
}

void cipher_key_wipe(struct cipher_key *k)
{
	if (k == NULL)
		return;
	if (k->passphrase != NULL) {
		OPENSSL_cleanse(k->passphrase, k->passphrase_len);
		free(k->passphrase);
	}
	OPENSSL_cleanse(k, sizeof *k); /* zeros: a wiped key is empty */
}

int cipher_salt_new(uint8_t salt[CIPHER_SALT_SIZE], char *err, size_t err_len)
{
	if (RAND_bytes(salt, CIPHER_SALT_SIZE) != 1) {
		errors_set(err, err_len,
			   "OpenSSL could not produce random bytes for a salt");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* key derivation */

/* HKDF-SHA256 (RFC 5869) of the master key, salted with the file's salt:
 * the same raw key on two files gives unrelated page keys. */
static int hkdf(const uint8_t master[CIPHER_KEY_SIZE],
		const uint8_t salt[CIPHER_SALT_SIZE], const char *label,
		uint8_t *out, size_t n)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5];
	int rc = -1;

	if (kdf == NULL)
		goto cleanup;
	ctx = EVP_KDF_CTX_new(kdf);
	if (ctx == NULL)
		goto cleanup;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_KEY, (void *)master, CIPHER_KEY_SIZE);
	params[2] = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_SALT, (void *)salt, CIPHER_SALT_SIZE);
	params[3] = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_INFO, (void *)label, strlen(label));
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, n, params) == 1)
		rc = 0;
cleanup:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

static int master_key(const struct cipher_key *key,
		      const uint8_t salt[CIPHER_SALT_SIZE],
		      uint8_t master[CIPHER_KEY_SIZE])
{
	if (key->is_raw) {
		memcpy(master, key->raw, CIPHER_KEY_SIZE);
		return 0;
	}
	if (key->passphrase == NULL || key->passphrase_len == 0)
		return -1;
	return EVP_PBE_scrypt(key->passphrase, key->passphrase_len, salt,
			      CIPHER_SALT_SIZE, KDF_SCRYPT_N, KDF_SCRYPT_R,
			      KDF_SCRYPT_P, KDF_SCRYPT_MAXMEM, master,
			      CIPHER_KEY_SIZE) == 1
		   ? 0
		   : -1;
}

/* libgcrypt initialises itself in its first gcry_check_version, which is
 * not safe to run in two threads at once (two replicas opened together);
 * later calls only compare versions.  A library that may be one of several
 * users in a process does only that, and leaves the rest of the set-up
 * (secure memory, which the page cipher does not use) to the application.
 * The flag is libgcrypt's set-up, not state of ours. */
static pthread_once_t gcrypt_once = PTHREAD_ONCE_INIT;

static void gcrypt_init(void)
{
	(void)gcry_check_version(NULL);
}

/* Open and key c->xts from c->xts_key. */
static int cipher_init_xts(struct cipher *c, char *err, size_t err_len)
{
	gcry_error_t e;

	pthread_once(&gcrypt_once, gcrypt_init);
	if (gcry_check_version(GCRYPT_VERSION) == NULL) {
		errors_set(err, err_len,
			   "could not set up AES-256-XTS: the libgcrypt "
			   "loaded is older than %s, which replite was built "
			   "with",
			   GCRYPT_VERSION);
		return -1;
	}
	e = gcry_cipher_open(&c->xts, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_XTS,
			     0);
	/* A key whose halves are equal is refused (XTS is then insecure);
	 * two HKDF outputs under different labels differ. */
	if (e == 0)
		e = gcry_cipher_setkey(c->xts, c->xts_key, sizeof c->xts_key);
	if (e != 0) {
		errors_set(err, err_len,
			   "could not set up AES-256-XTS (libgcrypt: %s)",
			   gcry_strerror(e));
		return -1;
	}
	return 0;
}

int cipher_new(const struct cipher_key *key,
	       const uint8_t salt[CIPHER_SALT_SIZE], struct cipher **out,
	       char *err, size_t err_len)
{
	uint8_t master[CIPHER_KEY_SIZE];
	struct cipher *c = calloc(1, sizeof *c);
	int rc = -1;

	*out = NULL;
	if (c == NULL) {
		errors_set(err, err_len, "out of memory");
		goto cleanup;
	}
	if (master_key(key, salt, master) != 0) {
		errors_set(err, err_len,
			   "could not derive a key from the passphrase "
			   "(OpenSSL's scrypt failed)");
		goto cleanup;
	}
	if (hkdf(master, salt, LABEL_XTS_DATA, c->xts_key, CIPHER_KEY_SIZE) !=
		0 ||
	    hkdf(master, salt, LABEL_XTS_TWEAK, c->xts_key + CIPHER_KEY_SIZE,
		 CIPHER_KEY_SIZE) != 0 ||
	    hkdf(master, salt, LABEL_CHECK, c->check, CIPHER_CHECK_SIZE) != 0 ||
	    hkdf(master, salt, LABEL_SEAL, c->seal_key, CIPHER_KEY_SIZE) != 0) {
		errors_set(err, err_len,
			   "could not derive the page keys (OpenSSL's HKDF "
			   "failed)");
		goto cleanup;
	}
	if (cipher_init_xts(c, err, err_len) != 0)
		goto cleanup;
	*out = c;
	c = NULL;
	rc = 0;
cleanup:
	OPENSSL_cleanse(master, sizeof master);
	cipher_free(c);
	return rc;
}

int cipher_dup(const struct cipher *c, struct cipher **out, char *err,
	       size_t err_len)
{
	struct cipher *d = calloc(1, sizeof *d);

	*out = NULL;
	if (d == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	memcpy(d->xts_key, c->xts_key, sizeof d->xts_key);
	memcpy(d->check, c->check, sizeof d->check);
	memcpy(d->seal_key, c->seal_key, sizeof d->seal_key);
	if (cipher_init_xts(d, err, err_len) != 0) {
		cipher_free(d);
		return -1;
	}
	*out = d;
	return 0;
}

void cipher_free(struct cipher *c)
{
	if (c == NULL)
		return;
	/* gcry_cipher_close wipes the key schedules it holds. */
	if (c->xts != NULL)
		gcry_cipher_close(c->xts);
	OPENSSL_cleanse(c, sizeof *c);
	free(c);
}

void cipher_check_value(const struct cipher *c, uint8_t out[CIPHER_CHECK_SIZE])
{
	memcpy(out, c->check, CIPHER_CHECK_SIZE);
}

int cipher_check_matches(const struct cipher *c,
			 const uint8_t check[CIPHER_CHECK_SIZE])
{
	return CRYPTO_memcmp(c->check, check, CIPHER_CHECK_SIZE) == 0;
}

/* ---------------------------------------------------------------------- */
/* pages */

/* The tweak: the position as 8 little-endian bytes (dm-crypt's "plain64"),
 * then the space, so a database page and a WAL frame at the same number
 * never share one. */
static void tweak(enum cipher_space space, uint64_t pos, uint8_t iv[16])
{
	int i;

	memset(iv, 0, 16);
	for (i = 0; i < 8; i++)
		iv[i] = (uint8_t)(pos >> (8 * i));
	iv[8] = (uint8_t)space;
}

/* One XTS data unit, the whole of in (in may equal out).  libgcrypt, not
 * OpenSSL's EVP, for the pages alone: Debian's OpenSSL 3.0 runs XTS on
 * AES-NI one 16-byte block per instruction (0.65 us per 4 KiB page here),
 * libgcrypt 1.10 on VAES/AVX2 two blocks per instruction (0.33 us), and a read
 * that misses SQLite's page cache pays one page's decryption.  Both are IEEE
 * P1619 XTS: the bytes are the same (test_cipher checks them against
 * OpenSSL's EVP_aes_256_xts). */
static int page_crypt(struct cipher *c, int enc, enum cipher_space space,
		      uint64_t pos, const uint8_t *in, uint8_t *out, size_t n)
{
	uint8_t iv[16];
	gcry_error_t e;

	/* A data unit of 1 to 2^20 blocks (as OpenSSL takes: the files
	 * never need more, a page being at most 64 KiB). */
	if (n < 16 || n > (16u << 20))
		return -1;
	tweak(space, pos, iv);
	e = gcry_cipher_setiv(c->xts, iv, sizeof iv);
	if (e == 0 && in == out)
		e = enc ? gcry_cipher_encrypt(c->xts, out, n, NULL, 0)
			: gcry_cipher_decrypt(c->xts, out, n, NULL, 0);
	else if (e == 0)
		e = enc ? gcry_cipher_encrypt(c->xts, out, n, in, n)
			: gcry_cipher_decrypt(c->xts, out, n, in, n);
	return e == 0 ? 0 : -1;
}

int cipher_encrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n)
{
	return page_crypt(c, 1, space, pos, in, out, n);
}

int cipher_decrypt(struct cipher *c, enum cipher_space space, uint64_t pos,
		   const uint8_t *in, uint8_t *out, size_t n)
{
	return page_crypt(c, 0, space, pos, in, out, n);
}

/* ---------------------------------------------------------------------- */
/* sealing */

/* Run n bytes of buf through ctx, in pieces EVP's int lengths can take. */
static int gcm_update(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t n)
{
	int outl;

	while (n > 0) {
		int piece = n > (1u << 30) ? 1 << 30 : (int)n;
		if (EVP_CipherUpdate(ctx, buf, &outl, buf, piece) != 1 ||
		    outl != piece)
			return -1;
		buf += piece;
		n -= (size_t)piece;
	}
	return 0;
}

/* Key ctx for GCM with the nonce at buf and feed it the aad. */
static int gcm_begin(EVP_CIPHER_CTX *ctx, const struct cipher *c, int enc,
		     const struct cipher_aad *aad, size_t naad,
		     const uint8_t *nonce)
{
	size_t i;
	int outl;

	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, c->seal_key, nonce,
			      enc) != 1)
		return -1;
	for (i = 0; i < naad; i++)
		if (aad[i].n > INT32_MAX ||
		    EVP_CipherUpdate(ctx, NULL, &outl, aad[i].p,
				     (int)aad[i].n) != 1)
			return -1;
	return 0;
}

int cipher_seal(const struct cipher *c, const struct cipher_aad *aad,
		size_t naad, uint8_t *buf, size_t n)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *data = buf + CIPHER_SEAL_NONCE;
	int outl, rv = -1;

	/* A random nonce: the files sealed are rewritten under one key for
	 * the replica's life, and no counter would survive every crash. */
	if (ctx == NULL || RAND_bytes(buf, CIPHER_SEAL_NONCE) != 1 ||
	    gcm_begin(ctx, c, 1, aad, naad, buf) != 0 ||
	    gcm_update(ctx, data, n) != 0 ||
	    EVP_EncryptFinal_ex(ctx, data + n, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CIPHER_SEAL_TAG,
				data + n) != 1)
		goto out;
	rv = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rv;
}

int cipher_unseal(const struct cipher *c, const struct cipher_aad *aad,
		  size_t naad, uint8_t *buf, size_t n)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *data = buf + CIPHER_SEAL_NONCE;
	uint8_t tag[CIPHER_SEAL_TAG], end[16];
	int outl, rv = -1;

	memcpy(tag, data + n, sizeof tag);
	if (ctx == NULL || gcm_begin(ctx, c, 0, aad, naad, buf) != 0 ||
	    gcm_update(ctx, data, n) != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, sizeof tag, tag) !=
		1 ||
	    EVP_DecryptFinal_ex(ctx, end, &outl) != 1) {
		/* Never hand out bytes that did not authenticate. */
		OPENSSL_cleanse(data, n);
		goto out;
	}
	rv = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rv;
}

char *cipher_seal_text(const struct cipher *c, const char *aad,
		       const void *data, size_t n)
{
	struct cipher_aad a = {aad, strlen(aad)};
	uint8_t *buf = malloc(n + CIPHER_SEAL_OVERHEAD);
	char *text = NULL;

	if (buf == NULL)
		return NULL;
	memcpy(buf + CIPHER_SEAL_NONCE, data, n);
	if (cipher_seal(c, &a, 1, buf, n) == 0)
		text = base64_encode(buf, n + CIPHER_SEAL_OVERHEAD, 0, 1);
	OPENSSL_cleanse(buf, n + CIPHER_SEAL_OVERHEAD);
	free(buf);
	return text;
}

char *cipher_unseal_text(const struct cipher *c, const char *aad,
			 const char *text, size_t len, size_t *n)
{
	struct cipher_aad a = {aad, strlen(aad)};
	size_t got = 0;
	uint8_t *buf = base64_decode(text, len, &got);
	char *out = NULL;

	if (buf == NULL || got < CIPHER_SEAL_OVERHEAD ||
	    cipher_unseal(c, &a, 1, buf, got - CIPHER_SEAL_OVERHEAD) != 0)
		goto out;
	*n = got - CIPHER_SEAL_OVERHEAD;
	out = malloc(*n + 1);
	if (out != NULL) {
		memcpy(out, buf + CIPHER_SEAL_NONCE, *n);
		out[*n] = '\0';
	}
	OPENSSL_cleanse(buf, got);
out:
	free(buf);
	return out;
}
