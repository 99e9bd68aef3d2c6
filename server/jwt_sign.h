/* Making what jwt.h verifies: Ed25519 key pairs (`replite keygen`) and
 * libSQL-style access tokens signed with them (`replite token`).  A token is
 * a compact JWS, header {"alg":"EdDSA","typ":"JWT"}, claims as sqld reads
 * them: "iat", "exp" (absent: never expires), "a" = "rw" | "ro", and "id"
 * (the namespace, i.e. database name, the token is for). */
#ifndef REPLITE_JWT_SIGN_H
#define REPLITE_JWT_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* The files `replite keygen --out DIR` writes inside DIR. */
#define JWT_SIGN_PRIVATE_FILE "jwt_private.pem"
#define JWT_SIGN_PUBLIC_FILE "jwt_public.pem"

/* Generate an Ed25519 key pair into dir (created with mode 0700 if
 * missing): dir/jwt_private.pem, PKCS#8 PEM, created with mode 0600 (never
 * readable by others, not even while it is written), and dir/jwt_public.pem,
 * a PEM "PUBLIC KEY" block (SPKI), the form --auth-jwt-key-file reads.  An
 * existing file is never overwritten: then nothing is written.  On success
 * *priv_path and *pub_path are malloc'd paths.  Returns 0, or -1 with err
 * naming the file and the cause. */
int jwt_sign_keygen(const char *dir, char **priv_path, char **pub_path,
		    char *err, size_t err_len);

struct jwt_sign_key;

/* Load an Ed25519 private key (PEM, PKCS#8 or OpenSSL's forms).  Returns 0,
 * or -1 with err naming the file and the cause. */
int jwt_sign_key_load_file(const char *path, struct jwt_sign_key **out,
			   char *err, size_t err_len);
int jwt_sign_key_load_text(const char *text, struct jwt_sign_key **out,
			   char *err, size_t err_len);
void jwt_sign_key_free(struct jwt_sign_key *key);

struct jwt_sign_claims {
	int read_only;  /* "a": "ro" if set, else "rw" */
	int64_t iat;    /* issued at, Unix seconds */
	int64_t exp;    /* expiry, Unix seconds; 0 = no "exp" claim */
	const char *db; /* "id" claim, or NULL for none */
};

/* A signed compact JWT (malloc'd), or NULL with err set. */
char *jwt_sign_token(const struct jwt_sign_key *key,
		     const struct jwt_sign_claims *claims, char *err,
		     size_t err_len);

/* Parse a lifetime: a positive integer followed by one unit, s, m, h, d or
 * w ("30d", "12h", "3600s"), at most 100 years, or "never" (*seconds = 0).
 * Returns 0, or -1 with err saying what was expected. */
int jwt_sign_parse_duration(const char *text, int64_t *seconds, char *err,
			    size_t err_len);

/* Whether name is a valid database (namespace) name as sqld accepts it:
 * 1 to 128 characters among ASCII letters, digits, '-' and '_'. */
int jwt_sign_valid_db_name(const char *name);

#endif
