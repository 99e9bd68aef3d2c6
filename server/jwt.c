#include "base/base64.h"
#include "jwt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "util.h"
#include "base/fileio.h"

#define MAX_KEYS 64

struct jwt_keys {
	EVP_PKEY *keys[MAX_KEYS];
	size_t n;
};

static void set_msg(char *msg, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, n, fmt, ap);
	va_end(ap);
}

void jwt_keys_free(struct jwt_keys *keys)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < keys->n; i++)
		EVP_PKEY_free(keys->keys[i]);
	free(keys);
}

static int add_key(struct jwt_keys *keys, EVP_PKEY *k)
{
	if (keys->n == MAX_KEYS || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return -1;
	}
	keys->keys[keys->n++] = k;
	return 0;
}

/* PEM blocks: every "PUBLIC KEY" block in the text (other blocks are
 * skipped).  A "PUBLIC KEY" block that cannot be read is an error, not
 * dropped silently: the operator believes that key is in use. */
static int load_pem(struct jwt_keys *keys, const char *text, char *err,
		    size_t n)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	BIO *bio = BIO_new_mem_buf(text, -1);
	const char *p;
	size_t blocks = 0;
	EVP_PKEY *k;
	int rv = 0;

	if (bio == NULL)
		return -1;
	for (p = strstr(text, begin); p != NULL; p = strstr(p + 1, begin))
		blocks++;
	while ((k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL) {
		if (add_key(keys, k) != 0) {
			set_msg(err, n,
				"a PEM key is not an Ed25519 public key");
			rv = -1;
			break;
		}
	}
	if (rv == 0 && keys->n < blocks) {
		set_msg(err, n,
			"PEM \"PUBLIC KEY\" block %zu of %zu cannot be read "
			"(damaged base64 or not a public key)",
			keys->n + 1, blocks);
		rv = -1;
	}
	/* OpenSSL leaves its decoders' attempts on the thread's queue. */
	ERR_clear_error();
	BIO_free(bio);
	return rv;
}

/* One raw 32-byte key per line, base64 (URL-safe or standard). */
static int load_raw(struct jwt_keys *keys, const char *text, char *err,
		    size_t n)
{
	const char *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, "\r\n");
		size_t raw_len = 0;
		uint8_t *raw;
		EVP_PKEY *k;

		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		if (len == 0) {
			p += strspn(p, " \t\r\n");
			continue;
		}
		raw = base64_decode(p, len, &raw_len);
		if (raw == NULL || raw_len != 32) {
			free(raw);
			set_msg(err, n,
				"line '%.20s...' is neither a PEM public key "
				"nor a 32-byte Ed25519 key in base64",
				p);
			return -1;
		}
		k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
						32);
		free(raw);
		if (k == NULL || add_key(keys, k) != 0) {
			set_msg(err, n, "invalid Ed25519 public key");
			return -1;
		}
		p += len;
		p += strspn(p, " \t\r\n");
	}
	return 0;
}

int jwt_keys_load_text(const char *text, struct jwt_keys **out, char *err,
		       size_t err_len)
{
	struct jwt_keys *keys = calloc(1, sizeof *keys);
	int rv;

	if (keys == NULL) {
		set_msg(err, err_len, "out of memory");
		return -1;
	}
	if (strstr(text, "-----BEGIN") != NULL)
		rv = load_pem(keys, text, err, err_len);
	else
		rv = load_raw(keys, text, err, err_len);
	if (rv == 0 && keys->n == 0) {
		set_msg(err, err_len, "no Ed25519 public key found");
		rv = -1;
	}
	if (rv != 0) {
		jwt_keys_free(keys);
		return -1;
	}
	*out = keys;
	return 0;
}

int jwt_keys_load_file(const char *path, struct jwt_keys **out, char *err,
		       size_t err_len)
{
	char *text = NULL;
	char why[256] = "";
	size_t len;
	int e = fileio_read_file(path, &text, &len);

	if (e != 0) {
		set_msg(err, err_len, "cannot read JWT key file %s: %s", path,
			strerror(-e));
		return -1;
	}
	e = jwt_keys_load_text(text, out, why, sizeof why);
	free(text);
	if (e != 0) {
		set_msg(err, err_len, "JWT key file %s: %s", path, why);
		return -1;
	}
	return 0;
}

static json_t *decode_json_part(const char *part, size_t len)
{
	size_t raw_len;
	uint8_t *raw = base64_decode(part, len, &raw_len);
	json_t *j;

	if (raw == NULL)
		return NULL;
	j = json_loadb((const char *)raw, raw_len, 0, NULL);
	free(raw);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int verify_signature(const struct jwt_keys *keys,
			    const char *signed_part, size_t signed_len,
			    const uint8_t *sig, size_t sig_len)
{
	size_t i;

	for (i = 0; i < keys->n; i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int ok = ctx != NULL &&
			 EVP_DigestVerifyInit(ctx, NULL, NULL, NULL,
					      keys->keys[i]) == 1 &&
			 EVP_DigestVerify(ctx, sig, sig_len,
					  (const uint8_t *)signed_part,
					  signed_len) == 1;
		EVP_MD_CTX_free(ctx);
		if (ok)
			return 0;
	}
	return -1;
}

static enum jwt_access access_of(json_t *claims, const char **code, char *msg,
				 size_t n)
{
	json_t *a = json_object_get(claims, "a");
	const char *v;

	if (a == NULL || json_is_null(a))
		return JWT_ACCESS_READ_WRITE;
	v = json_string_value(a);
	if (v != NULL && strcmp(v, "rw") == 0)
		return JWT_ACCESS_READ_WRITE;
	if (v != NULL && (strcmp(v, "ro") == 0 || strcmp(v, "roa") == 0))
		return JWT_ACCESS_READ_ONLY;
	*code = "AUTH_JWT_INVALID";
	set_msg(msg, n,
		"unknown access claim \"a\" (expected \"rw\" or \"ro\")");
	return JWT_ACCESS_DENIED;
}

/* Does a "p" scope ({"ns": [names], "tags": [...]}) name database? */
static int scope_names(json_t *scope, const char *database)
{
	json_t *ns = json_object_get(scope, "ns"), *x;
	size_t i;

	json_array_foreach(ns, i, x)
	{
		const char *v = json_string_value(x);
		if (v != NULL && strcmp(v, database) == 0)
			return 1;
	}
	return 0;
}

/* The access claims grant to database (sqld's rules: jwt.h). */
static enum jwt_access access_for(json_t *claims, const char *database,
				  const char **code, char *msg, size_t n)
{
	json_t *p = json_object_get(claims, "p");
	const char *id = json_string_value(json_object_get(claims, "id"));

	if (database == NULL)
		return access_of(claims, code, msg, n);
	if (p != NULL && !json_is_null(p)) {
		if (!json_is_object(p)) {
			*code = "AUTH_JWT_INVALID";
			set_msg(msg, n, "claim \"p\" is not an object");
			return JWT_ACCESS_DENIED;
		}
		if (scope_names(json_object_get(p, "rw"), database) ||
		    scope_names(json_object_get(p, "rwa"), database))
			return JWT_ACCESS_READ_WRITE;
		if (scope_names(json_object_get(p, "ro"), database) ||
		    scope_names(json_object_get(p, "roa"), database))
			return JWT_ACCESS_READ_ONLY;
		*code = JWT_WRONG_DATABASE;
		set_msg(msg, n,
			"this token's permissions (claim \"p\") do not "
			"include database \"%s\"",
			database);
		return JWT_ACCESS_DENIED;
	}
	if (id != NULL && strcmp(id, database) != 0) {
		*code = JWT_WRONG_DATABASE;
		set_msg(msg, n, "this token is for database \"%s\", not \"%s\"",
			id, database);
		return JWT_ACCESS_DENIED;
	}
	return access_of(claims, code, msg, n);
}

enum jwt_access jwt_verify(const struct jwt_keys *keys, const char *token,
			   int64_t now, const char **code, char *msg,
			   size_t msg_len)
{
	return jwt_verify_until(keys, token, now, NULL, NULL, code, msg,
				msg_len);
}

enum jwt_access jwt_verify_until(const struct jwt_keys *keys, const char *token,
				 int64_t now, const char *database,
				 int64_t *expires, const char **code, char *msg,
				 size_t msg_len)
{
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	json_t *header = NULL, *claims = NULL, *exp;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	const char *alg;
	enum jwt_access access = JWT_ACCESS_DENIED;

	*code = "AUTH_JWT_INVALID";
	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
		set_msg(msg, msg_len,
			"malformed token: a JWT has three "
			"dot-separated parts");
		goto out;
	}
	header = decode_json_part(token, (size_t)(dot1 - token));
	claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	sig = base64_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
	if (header == NULL || claims == NULL || sig == NULL) {
		set_msg(msg, msg_len,
			"malformed token: parts are not "
			"base64url-encoded JSON");
		goto out;
	}
	alg = json_string_value(json_object_get(header, "alg"));
	if (alg == NULL || strcmp(alg, "EdDSA") != 0) {
		set_msg(msg, msg_len,
			"unsupported token algorithm '%s' (only EdDSA)",
			alg ? alg : "(none)");
		goto out;
	}
	if (verify_signature(keys, token, (size_t)(dot2 - token), sig,
			     sig_len) != 0) {
		set_msg(msg, msg_len,
			"signature does not match any configured key");
		goto out;
	}
	exp = json_object_get(claims, "exp");
	if (exp != NULL && !json_is_number(exp)) {
		set_msg(msg, msg_len, "claim \"exp\" is not a number");
		goto out;
	}
	if (exp != NULL && json_number_value(exp) <= (double)now) {
		time_t t = (time_t)json_number_value(exp);
		char when[64];
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		*code = "AUTH_JWT_EXPIRED";
		set_msg(msg, msg_len, "token expired at %s", when);
		goto out;
	}
	access = access_for(claims, database, code, msg, msg_len);
	if (expires != NULL)
		*expires = exp != NULL ? (int64_t)json_number_value(exp) : 0;
out:
	json_decref(header);
	json_decref(claims);
	free(sig);
	return access;
}

enum jwt_access jwt_verify_header(const struct jwt_keys *keys,
				  const char *header, int64_t now,
				  const char *database, const char **code,
				  char *msg, size_t msg_len)
{
	const char *token;

	if (header == NULL) {
		*code = "AUTH_HEADER_NOT_FOUND";
		set_msg(msg, msg_len,
			"missing Authorization header: send "
			"'Authorization: Bearer <token>'");
		return JWT_ACCESS_DENIED;
	}
	if (strncasecmp(header, "Bearer ", 7) != 0) {
		*code = "AUTH_HEADER_MALFORMED";
		set_msg(msg, msg_len,
			"the Authorization header must use the "
			"Bearer scheme");
		return JWT_ACCESS_DENIED;
	}
	token = header + 7;
	while (*token == ' ')
		token++;
	if (*token == '\0') {
		*code = "AUTH_HEADER_MALFORMED";
		set_msg(msg, msg_len, "the Authorization header has no token");
		return JWT_ACCESS_DENIED;
	}
	return jwt_verify_until(keys, token, now, database, NULL, code, msg,
				msg_len);
}
