/* JWT verification against tokens signed here with freshly generated
 * Ed25519 keys (OpenSSL), in every key-file form libSQL accepts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/base64.h"
#include "fixture.h"
#include "server/jwt.h"
#include "server/util.h"

#define NOW 1700000000 /* a fixed "now" for every verification */

static EVP_PKEY *key_a, *key_b;

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	ck_assert_ptr_nonnull(k);
	return k;
}

static void setup(void)
{
	key_a = new_key();
	key_b = new_key();
}

static void teardown(void)
{
	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	key_a = key_b = NULL;
}

/* The key as a PEM "PUBLIC KEY" block (SPKI). */
static char *pem_of(EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, k), 1);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	BIO_free(bio);
	return out;
}

/* The raw 32-byte public key in base64 (url_safe, pad as asked). */
static char *raw_of(EVP_PKEY *k, int url_safe, int pad)
{
	uint8_t raw[32];
	size_t len = sizeof raw;

	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
	ck_assert_uint_eq(len, 32);
	return base64_encode(raw, len, url_safe, pad);
}

static char *b64url(const void *data, size_t len)
{
	return base64_encode(data, len, 1, 0);
}

/* A compact JWT: base64url(header).base64url(claims).base64url(sig), the
 * signature by k over the first two parts. */
static char *make_token(EVP_PKEY *k, const char *header, const char *claims)
{
	char *h = b64url(header, strlen(header));
	char *c = b64url(claims, strlen(claims));
	char *signing = util_strdupf("%s.%s", h, c);
	uint8_t sig[64];
	size_t sig_len = sizeof sig;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *s, *token;

	ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, k), 1);
	ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len,
					(const uint8_t *)signing,
					strlen(signing)),
			 1);
	ck_assert_uint_eq(sig_len, 64);
	EVP_MD_CTX_free(ctx);
	s = b64url(sig, sig_len);
	token = util_strdupf("%s.%s", signing, s);
	free(h);
	free(c);
	free(s);
	free(signing);
	return token;
}

static const char *EDDSA = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";

static struct jwt_keys *load(const char *text)
{
	struct jwt_keys *keys = NULL;
	char err[256] = "";

	ck_assert_msg(jwt_keys_load_text(text, &keys, err, sizeof err) == 0,
		      "jwt_keys_load_text: %s", err);
	ck_assert_ptr_nonnull(keys);
	return keys;
}

static struct jwt_keys *load_pem(EVP_PKEY *k)
{
	char *pem = pem_of(k);
	struct jwt_keys *keys = load(pem);

	free(pem);
	return keys;
}

struct verdict {
	enum jwt_access access;
	const char *code;
	char msg[256];
};

static struct verdict verify(const struct jwt_keys *keys, const char *token)
{
	struct verdict v;

	v.code = NULL;
	v.msg[0] = '\0';
	v.access = jwt_verify(keys, token, NOW, &v.code, v.msg, sizeof v.msg);
	return v;
}

/* Sign claims with k and verify against keys. */
static struct verdict sign_verify(const struct jwt_keys *keys, EVP_PKEY *k,
				  const char *claims)
{
	char *token = make_token(k, EDDSA, claims);
	struct verdict v = verify(keys, token);

	free(token);
	return v;
}

static void assert_denied(struct verdict v, const char *code)
{
	ck_assert_int_eq(v.access, JWT_ACCESS_DENIED);
	ck_assert_ptr_nonnull(v.code);
	ck_assert_str_eq(v.code, code);
	ck_assert_msg(v.msg[0] != '\0', "no message for %s", code);
}

/* ---------------------------------------------------------------------- */
/* claims */

START_TEST(test_access_claims)
{
	struct jwt_keys *keys = load_pem(key_a);

	ck_assert_int_eq(sign_verify(keys, key_a, "{\"a\":\"rw\"}").access,
			 JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(sign_verify(keys, key_a, "{}").access,
			 JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(sign_verify(keys, key_a, "{\"sub\":\"x\"}").access,
			 JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(sign_verify(keys, key_a, "{\"a\":\"ro\"}").access,
			 JWT_ACCESS_READ_ONLY);
	ck_assert_int_eq(sign_verify(keys, key_a, "{\"a\":\"roa\"}").access,
			 JWT_ACCESS_READ_ONLY);
	/* An access level we do not know is not silently read-write. */
	assert_denied(sign_verify(keys, key_a, "{\"a\":\"admin\"}"),
		      "AUTH_JWT_INVALID");
	assert_denied(sign_verify(keys, key_a, "{\"a\":1}"),
		      "AUTH_JWT_INVALID");
	jwt_keys_free(keys);
}
END_TEST

/* claims checked for one database (sqld's "id" and "p") */
static struct verdict for_db(const struct jwt_keys *keys, const char *claims,
			     const char *database)
{
	char *token = make_token(key_a, EDDSA, claims);
	struct verdict v;

	v.code = NULL;
	v.msg[0] = '\0';
	v.access = jwt_verify_until(keys, token, NOW, database, NULL, &v.code,
				    v.msg, sizeof v.msg);
	free(token);
	return v;
}

START_TEST(test_database_scopes)
{
	struct jwt_keys *keys = load_pem(key_a);
	const char *p = "{\"p\":{\"rw\":{\"ns\":[\"shop\"]},"
			"\"ro\":{\"ns\":[\"blog\",\"default\"]}}}";

	/* No scope: every database. */
	ck_assert_int_eq(for_db(keys, "{\"a\":\"ro\"}", "shop").access,
			 JWT_ACCESS_READ_ONLY);
	/* Legacy "id": that database only, with "a". */
	ck_assert_int_eq(for_db(keys, "{\"id\":\"shop\"}", "shop").access,
			 JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(
	    for_db(keys, "{\"id\":\"shop\",\"a\":\"ro\"}", "shop").access,
	    JWT_ACCESS_READ_ONLY);
	assert_denied(for_db(keys, "{\"id\":\"shop\"}", "blog"),
		      JWT_WRONG_DATABASE);
	assert_denied(for_db(keys, "{\"id\":\"shop\"}", "default"),
		      JWT_WRONG_DATABASE);
	/* "p": the permission its scopes give, whatever "a" says. */
	ck_assert_int_eq(for_db(keys, p, "shop").access, JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(for_db(keys, p, "blog").access, JWT_ACCESS_READ_ONLY);
	ck_assert_int_eq(for_db(keys, p, "default").access,
			 JWT_ACCESS_READ_ONLY);
	assert_denied(for_db(keys, p, "other"), JWT_WRONG_DATABASE);
	assert_denied(for_db(keys, "{\"p\":{},\"a\":\"rw\"}", "shop"),
		      JWT_WRONG_DATABASE);
	assert_denied(for_db(keys, "{\"p\":[1]}", "shop"), "AUTH_JWT_INVALID");
	/* Without a database (the admin API's keys), scopes are not read. */
	ck_assert_int_eq(for_db(keys, "{\"id\":\"shop\"}", NULL).access,
			 JWT_ACCESS_READ_WRITE);
	jwt_keys_free(keys);
}
END_TEST

START_TEST(test_expiry)
{
	struct jwt_keys *keys = load_pem(key_a);
	struct verdict v;
	char claims[128];

	snprintf(claims, sizeof claims, "{\"a\":\"ro\",\"exp\":%d}", NOW + 60);
	ck_assert_int_eq(sign_verify(keys, key_a, claims).access,
			 JWT_ACCESS_READ_ONLY);
	snprintf(claims, sizeof claims, "{\"exp\":%d}", NOW + 1);
	ck_assert_int_eq(sign_verify(keys, key_a, claims).access,
			 JWT_ACCESS_READ_WRITE);
	/* Fractional seconds are numbers too. */
	snprintf(claims, sizeof claims, "{\"exp\":%d.5}", NOW + 10);
	ck_assert_int_eq(sign_verify(keys, key_a, claims).access,
			 JWT_ACCESS_READ_WRITE);

	snprintf(claims, sizeof claims, "{\"a\":\"rw\",\"exp\":%d}", NOW - 1);
	v = sign_verify(keys, key_a, claims);
	assert_denied(v, "AUTH_JWT_EXPIRED");
	ck_assert_msg(strstr(v.msg, "expired") != NULL, "%s", v.msg);
	/* exp is the first second at which the token is no longer valid. */
	snprintf(claims, sizeof claims, "{\"exp\":%d}", NOW);
	assert_denied(sign_verify(keys, key_a, claims), "AUTH_JWT_EXPIRED");
	assert_denied(sign_verify(keys, key_a, "{\"exp\":0}"),
		      "AUTH_JWT_EXPIRED");
	/* exp must be a number. */
	assert_denied(sign_verify(keys, key_a, "{\"exp\":\"9999999999\"}"),
		      "AUTH_JWT_INVALID");
	jwt_keys_free(keys);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* signatures */

START_TEST(test_wrong_key)
{
	struct jwt_keys *keys = load_pem(key_a);
	struct verdict v = sign_verify(keys, key_b, "{\"a\":\"rw\"}");

	assert_denied(v, "AUTH_JWT_INVALID");
	ck_assert_msg(strstr(v.msg, "signature") != NULL, "%s", v.msg);
	/* An expired token with a bad signature is invalid, not expired:
	 * nothing of an unverified token is believed. */
	assert_denied(sign_verify(keys, key_b, "{\"exp\":1}"),
		      "AUTH_JWT_INVALID");
	jwt_keys_free(keys);
}
END_TEST

START_TEST(test_tampered_payload)
{
	struct jwt_keys *keys = load_pem(key_a);
	char *token = make_token(key_a, EDDSA, "{\"a\":\"ro\"}");
	char *other = make_token(key_a, EDDSA, "{\"a\":\"rw\"}");
	char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
	char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
	char *forged;

	ck_assert_int_eq(verify(keys, token).access, JWT_ACCESS_READ_ONLY);
	/* The read-write claims under the read-only token's signature. */
	forged = util_strdupf("%.*s.%.*s%s", (int)(dot1 - token), token,
			      (int)(o2 - o1 - 1), o1 + 1, dot2);
	assert_denied(verify(keys, forged), "AUTH_JWT_INVALID");
	free(forged);
	/* The header changed (a different but still EdDSA header). */
	{
		char *h = b64url("{\"alg\":\"EdDSA\"}", 15);
		forged = util_strdupf("%s%s", h, dot1);
		assert_denied(verify(keys, forged), "AUTH_JWT_INVALID");
		free(forged);
		free(h);
	}
	free(token);
	free(other);
	jwt_keys_free(keys);
}
END_TEST

START_TEST(test_tampered_signature)
{
	struct jwt_keys *keys = load_pem(key_a);
	char *token = make_token(key_a, EDDSA, "{\"a\":\"rw\"}");
	char *sig = strrchr(token, '.') + 1;
	char *copy;
	size_t i, len = strlen(sig);

	ck_assert_int_eq(verify(keys, token).access, JWT_ACCESS_READ_WRITE);
	/* Change one character at several places of the signature. */
	for (i = 0; i + 1 < len; i += 17) {
		copy = strdup(token);
		char *c = copy + (sig - token) + i;
		*c = *c == 'A' ? 'B' : 'A';
		assert_denied(verify(keys, copy), "AUTH_JWT_INVALID");
		free(copy);
	}
	/* Truncated, and empty. */
	copy = strndup(token, strlen(token) - 4);
	assert_denied(verify(keys, copy), "AUTH_JWT_INVALID");
	free(copy);
	copy = strndup(token, (size_t)(sig - token));
	assert_denied(verify(keys, copy), "AUTH_JWT_INVALID");
	free(copy);
	free(token);
	jwt_keys_free(keys);
}
END_TEST

START_TEST(test_other_algorithms_refused)
{
	struct jwt_keys *keys = load_pem(key_a);
	char *token, *h, *c, *none;
	struct verdict v;

	/* Signed with the right key, but the header names another
	 * algorithm: refused, never verified as something else. */
	token = make_token(key_a, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
			   "{\"a\":\"rw\"}");
	v = verify(keys, token);
	assert_denied(v, "AUTH_JWT_INVALID");
	ck_assert_msg(strstr(v.msg, "HS256") != NULL, "%s", v.msg);
	free(token);
	token = make_token(key_a, "{\"typ\":\"JWT\"}", "{\"a\":\"rw\"}");
	assert_denied(verify(keys, token), "AUTH_JWT_INVALID");
	free(token);
	token = make_token(key_a, "{\"alg\":\"eddsa\"}", "{\"a\":\"rw\"}");
	assert_denied(verify(keys, token), "AUTH_JWT_INVALID");
	free(token);
	/* alg "none" with an empty signature. */
	h = b64url("{\"alg\":\"none\"}", 14);
	c = b64url("{\"a\":\"rw\"}", 10);
	none = util_strdupf("%s.%s.", h, c);
	assert_denied(verify(keys, none), "AUTH_JWT_INVALID");
	free(none);
	free(h);
	free(c);
	jwt_keys_free(keys);
}
END_TEST

START_TEST(test_malformed_tokens)
{
	struct jwt_keys *keys = load_pem(key_a);
	char *good = make_token(key_a, EDDSA, "{\"a\":\"rw\"}");
	char *dot1 = strchr(good, '.');
	char *dot2 = strrchr(good, '.');
	char *bad, *h, *c;
	struct verdict v;

	ck_assert_int_eq(verify(keys, good).access, JWT_ACCESS_READ_WRITE);
	/* Two parts. */
	bad = strndup(good, (size_t)(dot2 - good));
	v = verify(keys, bad);
	assert_denied(v, "AUTH_JWT_INVALID");
	ck_assert_msg(strstr(v.msg, "three") != NULL, "%s", v.msg);
	free(bad);
	/* Four parts. */
	bad = util_strdupf("%s.xyz", good);
	assert_denied(verify(keys, bad), "AUTH_JWT_INVALID");
	free(bad);
	assert_denied(verify(keys, ""), "AUTH_JWT_INVALID");
	assert_denied(verify(keys, ".."), "AUTH_JWT_INVALID");
	assert_denied(verify(keys, "not a token"), "AUTH_JWT_INVALID");
	/* Characters outside base64 in the header, payload, signature. */
	bad = util_strdupf("%.*s!%s", (int)(dot1 - good), good, dot1);
	assert_denied(verify(keys, bad), "AUTH_JWT_INVALID");
	free(bad);
	bad = util_strdupf("%.*s*%s", (int)(dot2 - good), good, dot2);
	assert_denied(verify(keys, bad), "AUTH_JWT_INVALID");
	free(bad);
	bad = util_strdupf("%s%%", good);
	assert_denied(verify(keys, bad), "AUTH_JWT_INVALID");
	free(bad);
	/* Validly signed, but the payload is not a JSON object. */
	{
		const char *payloads[] = {"not json", "[1,2]", "\"rw\"", "",
					  "{\"a\":"};
		size_t i;
		for (i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
			char *t = make_token(key_a, EDDSA, payloads[i]);
			v = verify(keys, t);
			assert_denied(v, "AUTH_JWT_INVALID");
			free(t);
		}
		/* ... or the header is not. */
		bad = make_token(key_a, "EdDSA", "{}");
		assert_denied(verify(keys, bad), "AUTH_JWT_INVALID");
		free(bad);
	}
	/* Base64 whose length cannot be (one leftover character). */
	h = b64url(EDDSA, strlen(EDDSA));
	c = util_strdupf("%s.AAAAA%s", h, dot2);
	assert_denied(verify(keys, c), "AUTH_JWT_INVALID");
	free(c);
	free(h);
	free(good);
	jwt_keys_free(keys);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* the Authorization header */

START_TEST(test_header_forms)
{
	struct jwt_keys *keys = load_pem(key_a);
	char *token = make_token(key_a, EDDSA, "{\"a\":\"ro\"}");
	char *hdr;
	const char *code = NULL;
	char msg[256];

#define HDR(h) jwt_verify_header(keys, (h), NOW, NULL, &code, msg, sizeof msg)
	hdr = util_strdupf("Bearer %s", token);
	ck_assert_int_eq(HDR(hdr), JWT_ACCESS_READ_ONLY);
	free(hdr);
	hdr = util_strdupf("bearer %s", token);
	ck_assert_int_eq(HDR(hdr), JWT_ACCESS_READ_ONLY);
	free(hdr);
	hdr = util_strdupf("BEARER   %s", token);
	ck_assert_int_eq(HDR(hdr), JWT_ACCESS_READ_ONLY);
	free(hdr);

	ck_assert_int_eq(HDR(NULL), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_NOT_FOUND");
	ck_assert_int_eq(HDR("Basic dXNlcjpwYXNz"), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_MALFORMED");
	/* libsql sends literally "Bearer " when it has no token. */
	ck_assert_int_eq(HDR("Bearer "), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_MALFORMED");
	ck_assert_int_eq(HDR("Bearer"), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_MALFORMED");
	ck_assert_int_eq(HDR(""), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_MALFORMED");
	/* The token itself without a scheme. */
	ck_assert_int_eq(HDR(token), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_HEADER_MALFORMED");
	ck_assert_int_eq(HDR("Bearer garbage"), JWT_ACCESS_DENIED);
	ck_assert_str_eq(code, "AUTH_JWT_INVALID");
	{
		char *other = make_token(key_b, EDDSA, "{}");
		hdr = util_strdupf("Bearer %s", other);
		ck_assert_int_eq(HDR(hdr), JWT_ACCESS_DENIED);
		ck_assert_str_eq(code, "AUTH_JWT_INVALID");
		free(hdr);
		free(other);
	}
#undef HDR
	free(token);
	jwt_keys_free(keys);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* key files */

/* Tokens by key_a and key_b against a loaded key set: which are accepted. */
static void assert_accepts(const char *text, int a, int b)
{
	struct jwt_keys *keys = load(text);

	ck_assert_int_eq(sign_verify(keys, key_a, "{}").access,
			 a ? JWT_ACCESS_READ_WRITE : JWT_ACCESS_DENIED);
	ck_assert_int_eq(sign_verify(keys, key_b, "{}").access,
			 b ? JWT_ACCESS_READ_WRITE : JWT_ACCESS_DENIED);
	jwt_keys_free(keys);
}

START_TEST(test_key_forms)
{
	char *pa = pem_of(key_a), *pb = pem_of(key_b);
	char *text;
	char *raw;

	assert_accepts(pa, 1, 0);
	assert_accepts(pb, 0, 1);
	/* Raw 32-byte keys: URL-safe unpadded (libSQL's form), padded,
	 * standard alphabet, surrounded by blanks. */
	raw = raw_of(key_a, 1, 0);
	ck_assert_uint_eq(strlen(raw), 43);
	assert_accepts(raw, 1, 0);
	text = util_strdupf("  %s \n\n", raw);
	assert_accepts(text, 1, 0);
	free(text);
	free(raw);
	raw = raw_of(key_a, 1, 1);
	assert_accepts(raw, 1, 0);
	free(raw);
	raw = raw_of(key_b, 0, 1);
	assert_accepts(raw, 0, 1);
	free(raw);
	free(pa);
	free(pb);
}
END_TEST

START_TEST(test_several_keys)
{
	char *pa = pem_of(key_a), *pb = pem_of(key_b);
	char *ra = raw_of(key_a, 1, 0), *rb = raw_of(key_b, 1, 0);
	EVP_PKEY *c = new_key();
	char *rc = raw_of(c, 1, 0);
	char *text;

	/* The right key second: every key is tried. */
	text = util_strdupf("%s%s", pb, pa);
	assert_accepts(text, 1, 1);
	free(text);
	text = util_strdupf("# comment lines are not keys\n%s\n%s", pb, pa);
	assert_accepts(text, 1, 1);
	free(text);
	text = util_strdupf("%s\n%s\n", rb, ra);
	assert_accepts(text, 1, 1);
	free(text);
	text = util_strdupf("%s\r\n%s\r\n", rc, rb);
	assert_accepts(text, 0, 1);
	free(text);
	free(pa);
	free(pb);
	free(ra);
	free(rb);
	free(rc);
	EVP_PKEY_free(c);
}
END_TEST

static void assert_load_fails(const char *text, const char *needle)
{
	struct jwt_keys *keys = NULL;
	char err[256] = "";

	ck_assert_msg(jwt_keys_load_text(text, &keys, err, sizeof err) != 0,
		      "accepted: '%s'", text);
	ck_assert_ptr_null(keys);
	ck_assert_msg(err[0] != '\0', "no message for '%s'", text);
	if (needle != NULL)
		ck_assert_msg(strstr(err, needle) != NULL,
			      "'%s' not in message '%s'", needle, err);
}

START_TEST(test_key_load_errors)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem, *text, *raw;
	uint8_t short_key[31] = {1};

	assert_load_fails("", "no Ed25519 public key");
	assert_load_fails("\n \n", "no Ed25519 public key");
	assert_load_fails("this is not a key", "neither");
	assert_load_fails(
	    "-----BEGIN GARBAGE-----\nabc\n-----END GARBAGE-----\n", NULL);
	/* 31 bytes of base64 is not an Ed25519 key. */
	raw = base64_encode(short_key, sizeof short_key, 1, 0);
	assert_load_fails(raw, NULL);
	free(raw);
	/* One good raw key then a bad line: the whole file is refused. */
	raw = raw_of(key_a, 1, 0);
	text = util_strdupf("%s\nnot-a-key!\n", raw);
	assert_load_fails(text, NULL);
	free(text);
	free(raw);
	/* A PEM public key of another type. */
	ck_assert_ptr_nonnull(ec);
	pem = pem_of(ec);
	assert_load_fails(pem, "Ed25519");
	/* ... even after a good one. */
	raw = pem_of(key_a);
	text = util_strdupf("%s%s", raw, pem);
	assert_load_fails(text, "Ed25519");
	free(text);
	/* A good PEM key followed by a damaged block: refused, not silently
	 * dropped (the operator would believe both keys are active). */
	text = util_strdupf("%s-----BEGIN PUBLIC KEY-----\n"
			    "MCowBQYDK2VwAyEA!!!!\n"
			    "-----END PUBLIC KEY-----\n",
			    raw);
	assert_load_fails(text, NULL);
	free(text);
	free(raw);
	free(pem);
	EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_key_file)
{
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "key.pem");
	char *missing = fixture_path(dir, "missing.pem");
	char *pem = pem_of(key_b);
	struct jwt_keys *keys = NULL;
	char err[512] = "";
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(pem, fp);
	fclose(fp);
	ck_assert_msg(jwt_keys_load_file(path, &keys, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(sign_verify(keys, key_b, "{}").access,
			 JWT_ACCESS_READ_WRITE);
	ck_assert_int_eq(sign_verify(keys, key_a, "{}").access,
			 JWT_ACCESS_DENIED);
	jwt_keys_free(keys);
	keys = NULL;

	ck_assert_int_ne(jwt_keys_load_file(missing, &keys, err, sizeof err),
			 0);
	ck_assert_ptr_nonnull(strstr(err, "missing.pem"));
	fp = fopen(path, "w");
	fclose(fp);
	ck_assert_int_ne(jwt_keys_load_file(path, &keys, err, sizeof err), 0);
	ck_assert_ptr_nonnull(strstr(err, "key.pem"));
	ck_assert_ptr_nonnull(strstr(err, "no Ed25519"));
	free(pem);
	free(path);
	free(missing);
	fixture_rmdir(dir);
}
END_TEST

static Suite *jwt_suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_access_claims);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_tampered_payload);
	tcase_add_test(tc, test_tampered_signature);
	tcase_add_test(tc, test_other_algorithms_refused);
	tcase_add_test(tc, test_malformed_tokens);
	tcase_add_test(tc, test_database_scopes);
	tcase_add_test(tc, test_header_forms);
	tcase_add_test(tc, test_key_forms);
	tcase_add_test(tc, test_several_keys);
	tcase_add_test(tc, test_key_load_errors);
	tcase_add_test(tc, test_key_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(jwt_suite());
}
