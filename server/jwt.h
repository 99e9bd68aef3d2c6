/* Verification of libSQL-style access tokens: JWTs signed with Ed25519
 * (alg "EdDSA"), claim "a" = "ro" | "rw" | "roa" (absent = read-write),
 * optional "exp" (Unix seconds). */
#ifndef REPLITE_JWT_H
#define REPLITE_JWT_H

#include <stddef.h>
#include <stdint.h>

struct jwt_keys;

enum jwt_access {
	JWT_ACCESS_DENIED = 0,
	JWT_ACCESS_READ_ONLY,
	JWT_ACCESS_READ_WRITE,
};

/* Load one or more Ed25519 public keys from a file: PEM "PUBLIC KEY" blocks
 * (SPKI), or raw 32-byte keys as URL-safe base64 (with or without padding),
 * one per line.  Returns 0, or -1 with a message in err naming the cause. */
int jwt_keys_load_file(const char *path, struct jwt_keys **out, char *err,
		       size_t err_len);
/* Same, from text in memory. */
int jwt_keys_load_text(const char *text, struct jwt_keys **out, char *err,
		       size_t err_len);
void jwt_keys_free(struct jwt_keys *keys);

/* Verify a compact JWT against every key.  now is Unix seconds.  On success
 * returns the access level; on failure JWT_ACCESS_DENIED with *code set to a
 * static error code ("AUTH_JWT_INVALID", "AUTH_JWT_EXPIRED", ...) and a human
 * readable reason in msg. */
enum jwt_access jwt_verify(const struct jwt_keys *keys, const char *token,
			   int64_t now, const char **code, char *msg,
			   size_t msg_len);

/* The same, and *expires (if not NULL) gets the token's "exp" (Unix
 * seconds; 0 when it never expires) on success: a connection that keeps a
 * token (Hrana over WebSocket) stops honouring it then.
 *
 * database (not NULL): the access the token grants to that database, with
 * sqld's claims: "p" ({"rw": {"ns": [names]}, "ro": {...}, and the attach
 * variants "rwa", "roa"}) when present, else the legacy "id" (a token for
 * that one database; absent: any) with "a".  A token for other databases
 * is denied with code JWT_WRONG_DATABASE (an HTTP 403). */
#define JWT_WRONG_DATABASE "AUTH_WRONG_DATABASE"
enum jwt_access jwt_verify_until(const struct jwt_keys *keys, const char *token,
				 int64_t now, const char *database,
				 int64_t *expires, const char **code, char *msg,
				 size_t msg_len);

/* Verify an HTTP Authorization header value ("Bearer <jwt>", scheme
 * case-insensitive), for database as jwt_verify_until.  NULL header or a
 * missing token is AUTH_HEADER_NOT_FOUND / AUTH_HEADER_MALFORMED. */
enum jwt_access jwt_verify_header(const struct jwt_keys *keys,
				  const char *header, int64_t now,
				  const char *database, const char **code,
				  char *msg, size_t msg_len);

#endif
