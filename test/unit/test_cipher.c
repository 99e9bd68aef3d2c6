/* The page cipher of encryption at rest (wal/cipher.h): key text, the KDF
 * and its salt, the key-check value, pages in and out of AES-256-XTS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "fixture.h"
#include "wal/cipher.h"

#define RAW_HEX                                                                \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const uint8_t salt_a[CIPHER_SALT_SIZE] = {1, 2,  3,  4,  5,  6,  7,  8,
						 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t salt_b[CIPHER_SALT_SIZE] = {16, 15, 14, 13, 12, 11, 10, 9,
						 8,  7,  6,  5,  4,  3,  2,  1};

static struct cipher *make(const char *text, const uint8_t *salt)
{
	struct cipher_key k;
	struct cipher *c = NULL;
	char err[256] = "";

	ck_assert_msg(cipher_key_parse(text, &k, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(cipher_new(&k, salt, &c, err, sizeof err) == 0, "%s",
		      err);
	cipher_key_wipe(&k);
	return c;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

START_TEST(test_parse_raw)
{
	struct cipher_key k;
	char err[256] = "";
	int i;

	ck_assert_int_eq(
	    cipher_key_parse("x'" RAW_HEX "'", &k, err, sizeof err), 0);
	ck_assert_int_eq(k.is_raw, 1);
	ck_assert_ptr_null(k.passphrase);
	for (i = 0; i < CIPHER_KEY_SIZE; i++)
		ck_assert_uint_eq(k.raw[i], i);
	cipher_key_wipe(&k);
	ck_assert_int_eq(k.is_raw, 0);
	ck_assert_uint_eq(k.raw[31], 0);

	/* X'...' and upper-case digits, as in an SQL blob literal. */
	ck_assert_int_eq(
	    cipher_key_parse(
		"X'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
		"FFFFFFFFFFFFFF'",
		&k, err, sizeof err),
	    0);
	ck_assert_int_eq(k.is_raw, 1);
	ck_assert_uint_eq(k.raw[0], 0xff);
	cipher_key_wipe(&k);
}
END_TEST

START_TEST(test_parse_passphrase)
{
	struct cipher_key k;
	char err[256] = "";

	ck_assert_int_eq(
	    cipher_key_parse("correct horse battery", &k, err, sizeof err), 0);
	ck_assert_int_eq(k.is_raw, 0);
	ck_assert_str_eq(k.passphrase, "correct horse battery");
	ck_assert_uint_eq(k.passphrase_len, 21);
	cipher_key_wipe(&k);
	ck_assert_ptr_null(k.passphrase);
	/* 64 hex digits without the x'' form are a passphrase. */
	ck_assert_int_eq(cipher_key_parse(RAW_HEX, &k, err, sizeof err), 0);
	ck_assert_int_eq(k.is_raw, 0);
	cipher_key_wipe(&k);
}
END_TEST

/* Each bad form is refused with the form expected, and the error never
 * holds the key. */
START_TEST(test_parse_bad)
{
	static const struct {
		const char *text;
		const char *says;
		const char *secret;
	} bad[] = {
	    {"", "empty", NULL},
	    {"x'abc'", "has 3 characters", "abc"},
	    {"x''", "has 0 characters", NULL},
	    {"x'" RAW_HEX "00'", "has 66 characters", RAW_HEX},
	    {"x'" RAW_HEX, "closing quote", RAW_HEX},
	    {"x'0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
	     "1f'",
	     "not a hex digit", "0g01"},
	};
	struct cipher_key k;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		ck_assert_int_eq(
		    cipher_key_parse(bad[i].text, &k, err, sizeof err), -1);
		ck_assert_msg(strstr(err, bad[i].says) != NULL, "%s: %s",
			      bad[i].text, err);
		if (bad[i].text[0] != '\0')
			ck_assert_msg(strstr(err, "x'<64 hex digits>'") != NULL,
				      "%s", err);
		if (bad[i].secret != NULL)
			ck_assert_msg(strstr(err, bad[i].secret) == NULL, "%s",
				      err);
		ck_assert_ptr_null(k.passphrase);
	}
	ck_assert_int_eq(cipher_key_parse(NULL, &k, err, sizeof err), -1);
}
END_TEST

/* The same passphrase and salt give the same keys; another salt, or
 * another passphrase, others. */
START_TEST(test_kdf)
{
	struct cipher *a1 = make("secret passphrase", salt_a);
	struct cipher *a2 = make("secret passphrase", salt_a);
	struct cipher *b = make("secret passphrase", salt_b);
	struct cipher *other = make("secret passphrasf", salt_a);
	uint8_t ca1[CIPHER_CHECK_SIZE], ca2[CIPHER_CHECK_SIZE];
	uint8_t cb[CIPHER_CHECK_SIZE], co[CIPHER_CHECK_SIZE];
	uint8_t page[4096], x1[4096], x2[4096], xb[4096];

	cipher_check_value(a1, ca1);
	cipher_check_value(a2, ca2);
	cipher_check_value(b, cb);
	cipher_check_value(other, co);
	ck_assert_int_eq(memcmp(ca1, ca2, sizeof ca1), 0);
	ck_assert_int_ne(memcmp(ca1, cb, sizeof ca1), 0);
	ck_assert_int_ne(memcmp(ca1, co, sizeof ca1), 0);

	fill(page, sizeof page, 7);
	ck_assert_int_eq(
	    cipher_encrypt(a1, CIPHER_SPACE_DB, 3, page, x1, sizeof page), 0);
	ck_assert_int_eq(
	    cipher_encrypt(a2, CIPHER_SPACE_DB, 3, page, x2, sizeof page), 0);
	ck_assert_int_eq(
	    cipher_encrypt(b, CIPHER_SPACE_DB, 3, page, xb, sizeof page), 0);
	ck_assert_int_eq(memcmp(x1, x2, sizeof x1), 0);
	ck_assert_int_ne(memcmp(x1, xb, sizeof x1), 0);
	cipher_free(a1);
	cipher_free(a2);
	cipher_free(b);
	cipher_free(other);
}
END_TEST

/* A raw key is salted too: one key on two files gives unrelated pages. */
START_TEST(test_raw_key_salted)
{
	struct cipher *a = make("x'" RAW_HEX "'", salt_a);
	struct cipher *b = make("x'" RAW_HEX "'", salt_b);
	uint8_t page[4096] = {0}, xa[4096], xb[4096];

	ck_assert_int_eq(
	    cipher_encrypt(a, CIPHER_SPACE_DB, 1, page, xa, sizeof page), 0);
	ck_assert_int_eq(
	    cipher_encrypt(b, CIPHER_SPACE_DB, 1, page, xb, sizeof page), 0);
	ck_assert_int_ne(memcmp(xa, xb, sizeof xa), 0);
	cipher_free(a);
	cipher_free(b);
}
END_TEST

/* The caller stores the salt and the check value when it creates a file; a
 * later open derives the cipher from the key given and the stored salt,
 * and compares check values before touching any file. */
START_TEST(test_key_check)
{
	struct cipher *right = make("the right key", salt_a);
	struct cipher *again = make("the right key", salt_a);
	struct cipher *wrong = make("the wrong key", salt_a);
	struct cipher *raw = make("x'" RAW_HEX "'", salt_a);
	uint8_t stored[CIPHER_CHECK_SIZE];

	cipher_check_value(right, stored);
	ck_assert_int_eq(cipher_check_matches(again, stored), 1);
	ck_assert_int_eq(cipher_check_matches(wrong, stored), 0);
	ck_assert_int_eq(cipher_check_matches(raw, stored), 0);
	stored[15] ^= 1;
	ck_assert_int_eq(cipher_check_matches(again, stored), 0);
	cipher_free(right);
	cipher_free(again);
	cipher_free(wrong);
	cipher_free(raw);
}
END_TEST

START_TEST(test_salt_new)
{
	uint8_t a[CIPHER_SALT_SIZE], b[CIPHER_SALT_SIZE];

	ck_assert_int_eq(cipher_salt_new(a, NULL, 0), 0);
	ck_assert_int_eq(cipher_salt_new(b, NULL, 0), 0);
	ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
}
END_TEST

START_TEST(test_page_roundtrip)
{
	struct cipher *c = make("x'" RAW_HEX "'", salt_a);
	struct cipher *d = NULL;
	uint8_t page[4096], x[4096], back[4096];
	size_t i, same = 0;

	fill(page, sizeof page, 1);
	ck_assert_int_eq(
	    cipher_encrypt(c, CIPHER_SPACE_DB, 9, page, x, sizeof page), 0);
	/* Nothing of the plaintext survives, block by block. */
	for (i = 0; i < sizeof page; i += 16)
		same += memcmp(page + i, x + i, 16) == 0;
	ck_assert_uint_eq(same, 0);
	ck_assert_int_eq(
	    cipher_decrypt(c, CIPHER_SPACE_DB, 9, x, back, sizeof x), 0);
	ck_assert_int_eq(memcmp(page, back, sizeof page), 0);
	/* Another tweak does not decrypt it. */
	ck_assert_int_eq(
	    cipher_decrypt(c, CIPHER_SPACE_DB, 10, x, back, sizeof x), 0);
	ck_assert_int_ne(memcmp(page, back, sizeof page), 0);
	/* In place, and with a copy of the cipher. */
	ck_assert_int_eq(cipher_dup(c, &d, NULL, 0), 0);
	memcpy(back, x, sizeof x);
	ck_assert_int_eq(
	    cipher_decrypt(d, CIPHER_SPACE_DB, 9, back, back, sizeof back), 0);
	ck_assert_int_eq(memcmp(page, back, sizeof page), 0);
	/* Other page sizes; too short is refused. */
	ck_assert_int_eq(cipher_encrypt(c, CIPHER_SPACE_WAL, 1, page, x, 512),
			 0);
	ck_assert_int_eq(cipher_decrypt(c, CIPHER_SPACE_WAL, 1, x, back, 512),
			 0);
	ck_assert_int_eq(memcmp(page, back, 512), 0);
	ck_assert_int_eq(cipher_encrypt(c, CIPHER_SPACE_WAL, 1, page, x, 8),
			 -1);
	cipher_free(c);
	cipher_free(d);
}
END_TEST

/* One plaintext at different positions, or in the database file and the
 * WAL at the same number, never encrypts alike. */
START_TEST(test_tweaks_differ)
{
	struct cipher *c = make("x'" RAW_HEX "'", salt_a);
	uint8_t page[4096] = {0}, x1[4096], x2[4096], w1[4096];
	size_t i, same = 0;

	ck_assert_int_eq(
	    cipher_encrypt(c, CIPHER_SPACE_DB, 1, page, x1, sizeof page), 0);
	ck_assert_int_eq(
	    cipher_encrypt(c, CIPHER_SPACE_DB, 2, page, x2, sizeof page), 0);
	ck_assert_int_eq(
	    cipher_encrypt(c, CIPHER_SPACE_WAL, 1, page, w1, sizeof page), 0);
	for (i = 0; i < sizeof page; i += 16) {
		same += memcmp(x1 + i, x2 + i, 16) == 0;
		same += memcmp(x1 + i, w1 + i, 16) == 0;
	}
	ck_assert_uint_eq(same, 0);
	/* Within a page, equal plaintext blocks differ too (XTS). */
	ck_assert_int_ne(memcmp(x1, x1 + 16, 16), 0);
	/* Positions above 2^32 are distinct. */
	ck_assert_int_eq(cipher_encrypt(c, CIPHER_SPACE_DB, 1 + (1ull << 32),
					page, x2, sizeof page),
			 0);
	ck_assert_int_ne(memcmp(x1, x2, sizeof x1), 0);
	cipher_free(c);
}
END_TEST

/* HKDF-SHA256 of RAW_HEX's key with salt_a under label, by OpenSSL. */
static void reference_hkdf(const char *label, uint8_t out[32])
{
	uint8_t master[32];
	size_t n = 32;
	EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	int i;

	for (i = 0; i < 32; i++)
		master[i] = (uint8_t)i;
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(EVP_PKEY_derive_init(k), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set1_hkdf_salt(k, salt_a, sizeof salt_a),
			 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set1_hkdf_key(k, master, 32), 1);
	ck_assert_int_eq(
	    EVP_PKEY_CTX_add1_hkdf_info(k, (const unsigned char *)label,
					(int)strlen(label)),
	    1);
	ck_assert_int_eq(EVP_PKEY_derive(k, out, &n), 1);
	ck_assert_uint_eq(n, 32);
	EVP_PKEY_CTX_free(k);
}

/* in through OpenSSL's EVP AES-256-XTS with key, the tweak being pos as 8
 * little-endian bytes then the space (the format docs/architecture.md
 * gives). */
static void reference_xts(const uint8_t key[64], int enc, uint8_t space,
			  uint64_t pos, const uint8_t *in, uint8_t *out, int n)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	uint8_t iv[16] = {0};
	int i, outl = 0;

	for (i = 0; i < 8; i++)
		iv[i] = (uint8_t)(pos >> (8 * i));
	iv[8] = space;
	ck_assert_int_eq(
	    EVP_CipherInit_ex(x, EVP_aes_256_xts(), NULL, key, iv, enc), 1);
	ck_assert_int_eq(EVP_CipherUpdate(x, out, &outl, in, n), 1);
	ck_assert_int_eq(outl, n);
	EVP_CIPHER_CTX_free(x);
}

/* The pages are standard AES-256-XTS (IEEE P1619) under the documented
 * keys and tweaks: every page cipher_encrypt writes, OpenSSL's
 * EVP_aes_256_xts decrypts, and the other way round.  (The pages were
 * encrypted through OpenSSL's EVP before libgcrypt did it: files written
 * then open now, and a file can be decrypted by anyone with the key and
 * the format, without replite.) */
START_TEST(test_same_bytes_as_openssl)
{
	struct cipher *c = make("x'" RAW_HEX "'", salt_a);
	static const struct {
		enum cipher_space space;
		uint64_t pos;
		int n;
	} cases[] = {
	    {CIPHER_SPACE_DB, 1, 4096},
	    {CIPHER_SPACE_DB, 9, 4096},
	    {CIPHER_SPACE_DB, 1 + (1ull << 32), 4096},
	    {CIPHER_SPACE_WAL, 1, 4096},
	    {CIPHER_SPACE_WAL, 70000, 512},
	    {CIPHER_SPACE_DB, 3, 65536},
	    {CIPHER_SPACE_DB, 4, 4100}, /* not whole blocks: stealing */
	};
	static uint8_t page[65536], mine[65536], theirs[65536];
	uint8_t key[64];
	size_t i;

	reference_hkdf("replite xts data key v1", key);
	reference_hkdf("replite xts tweak key v1", key + 32);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int n = cases[i].n;
		uint8_t space = (uint8_t)cases[i].space;

		fill(page, (size_t)n, (unsigned)i + 7);
		ck_assert_int_eq(cipher_encrypt(c, cases[i].space, cases[i].pos,
						page, mine, (size_t)n),
				 0);
		reference_xts(key, 1, space, cases[i].pos, page, theirs, n);
		ck_assert_msg(memcmp(mine, theirs, (size_t)n) == 0,
			      "case %zu: other bytes than OpenSSL's", i);
		reference_xts(key, 0, space, cases[i].pos, mine, theirs, n);
		ck_assert_int_eq(memcmp(theirs, page, (size_t)n), 0);
		/* OpenSSL's ciphertext, decrypted in place by ours. */
		ck_assert_int_eq(cipher_decrypt(c, cases[i].space, cases[i].pos,
						mine, mine, (size_t)n),
				 0);
		ck_assert_int_eq(memcmp(mine, page, (size_t)n), 0);
	}
	cipher_free(c);
}
END_TEST

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Figures for the record (no assertion on time): a 4 KiB page encrypted
 * and decrypted, and the passphrase KDF. */
START_TEST(test_bench)
{
	struct cipher *c = make("x'" RAW_HEX "'", salt_a);
	static uint8_t page[4096], x[4096];
	const int n = 50000;
	double t0, t1;
	int i, failed = 0;

	fill(page, sizeof page, 3);
	/* No ck_assert in the loop: each one writes to Check's pipe. */
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		failed |= cipher_encrypt(c, CIPHER_SPACE_DB, (uint64_t)i + 1,
					 page, x, sizeof page);
		failed |= cipher_decrypt(c, CIPHER_SPACE_DB, (uint64_t)i + 1, x,
					 page, sizeof page);
	}
	t1 = now_ns();
	ck_assert_int_eq(failed, 0);
	printf("cipher: 4 KiB page encrypt+decrypt: %.0f ns/page\n",
	       (t1 - t0) / n);
	cipher_free(c);

	t0 = now_ns();
	c = make("a passphrase", salt_b);
	t1 = now_ns();
	printf("cipher: scrypt KDF + subkeys: %.1f ms\n", (t1 - t0) / 1e6);
	cipher_free(c);
}
END_TEST

static Suite *cipher_suite(void)
{
	Suite *s = suite_create("cipher");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_parse_raw);
	tcase_add_test(tc, test_parse_passphrase);
	tcase_add_test(tc, test_parse_bad);
	tcase_add_test(tc, test_kdf);
	tcase_add_test(tc, test_raw_key_salted);
	tcase_add_test(tc, test_key_check);
	tcase_add_test(tc, test_salt_new);
	tcase_add_test(tc, test_page_roundtrip);
	tcase_add_test(tc, test_tweaks_differ);
	tcase_add_test(tc, test_same_bytes_as_openssl);
	tcase_add_test(tc, test_bench);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(cipher_suite());
}
