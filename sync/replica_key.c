/* Encryption at rest of a replica (issue 11; docs/architecture.md
 * "Encryption at rest"): the key file beside the database, the checks at
 * open, and the registration of the database with the cipher VFS.
 *
 * DB-replite-key holds what is needed to tell the right key from a wrong
 * one, never the key:
 *
 *   {"format": 1, "cipher": "aes-256-xts", "kdf": "scrypt-14-8-1/hkdf-sha256",
 *    "salt": "<32 hex>", "check": "<32 hex>"}
 *
 * It is written once, when a new replica is created with a key, before any
 * page exists: made under a temporary name, synced, and linked into place,
 * which fails if another process made one first (then its salt is used).
 * Its presence is what makes a replica encrypted:
 *
 *   key file  key given  open
 *   no        no         a plain replica
 *   no        yes        a new replica (no state file, no database
 *                        content): encrypted from its first page; an
 *                        existing one: refused, "is not encrypted"
 *   yes       no         refused, "is encrypted"
 *   yes       yes        the key's check value must match: "wrong key"
 *
 * Every refusal comes before any file is opened or changed, and no message
 * contains the key. */
#include "replica_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "include/replite.h"
#include "base/errors.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "wal/cipher.h"
#include "wal/cipher_vfs.h"

#define KEY_FORMAT 1
#define KEY_CIPHER "aes-256-xts"
#define KEY_KDF "scrypt-14-8-1/hkdf-sha256"

struct key_file {
	uint8_t salt[CIPHER_SALT_SIZE];
	uint8_t check[CIPHER_CHECK_SIZE];
};

static char *key_path(const char *db_path)
{
	char *p = NULL;

	if (asprintf(&p, "%s-replite-key", db_path) < 0)
		return NULL;
	return p;
}

/* 1 with *kf, 0 when there is no key file, -1 with err. */
static int read_key_file(const char *path, struct key_file *kf, char *err,
			 size_t err_len)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	const char *salt, *check, *cipher, *kdf;
	json_int_t format;

	if (j == NULL) {
		if (access(path, F_OK) != 0 && errno == ENOENT)
			return 0;
		errors_set(err, err_len,
			   "the encryption key file %s cannot be read (%s): "
			   "without it the replica cannot be decrypted",
			   path, je.text);
		return -1;
	}
	if (json_unpack(j, "{s:I, s:s, s:s, s:s, s:s}", "format", &format,
			"cipher", &cipher, "kdf", &kdf, "salt", &salt, "check",
			&check) != 0 ||
	    hex_decode(salt, kf->salt, sizeof kf->salt) != 0 ||
	    hex_decode(check, kf->check, sizeof kf->check) != 0) {
		errors_set(err, err_len,
			   "the encryption key file %s is damaged (it needs "
			   "format, cipher, kdf, salt and check)",
			   path);
		json_decref(j);
		return -1;
	}
	if (format != KEY_FORMAT || strcmp(cipher, KEY_CIPHER) != 0 ||
	    strcmp(kdf, KEY_KDF) != 0) {
		errors_set(err, err_len,
			   "the encryption key file %s is of another format "
			   "(format %lld, %s, %s): this replite reads format "
			   "%d, %s, %s",
			   path, (long long)format, cipher, kdf, KEY_FORMAT,
			   KEY_CIPHER, KEY_KDF);
		json_decref(j);
		return -1;
	}
	json_decref(j);
	return 1;
}

/* Create the key file for a new encrypted replica, unless another process
 * created it first: 0 (*kf is the file's, whichever made it), -1 with
 * err. */
static int create_key_file(const char *path, const struct cipher *c,
			   const uint8_t salt[CIPHER_SALT_SIZE],
			   struct key_file *kf, char *err, size_t err_len)
{
	char salt_hex[2 * CIPHER_SALT_SIZE + 1],
	    check_hex[2 * CIPHER_CHECK_SIZE + 1];
	char *tmp = NULL, *text = NULL;
	uint8_t check[CIPHER_CHECK_SIZE];
	json_t *j = NULL;
	int fd = -1, rv = -1, e;

	cipher_check_value(c, check);
	hex_encode(salt, CIPHER_SALT_SIZE, salt_hex);
	hex_encode(check, CIPHER_CHECK_SIZE, check_hex);
	j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "format", KEY_FORMAT,
		      "cipher", KEY_CIPHER, "kdf", KEY_KDF, "salt", salt_hex,
		      "check", check_hex);
	text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	if (text == NULL ||
	    asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) < 0) {
		tmp = NULL;
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	e = fd < 0 ? -errno : fileio_write_all(fd, text, strlen(text), 0);
	if (e == 0 && fsync(fd) != 0)
		e = -errno;
	if (e != 0) {
		errors_set(err, err_len, "cannot write %s: %s", tmp,
			   strerror(-e));
		goto out;
	}
	/* link, not rename: the first process to create the replica wins,
	 * and every other one uses its salt. */
	if (link(tmp, path) != 0 && errno != EEXIST) {
		errors_set(err, err_len, "cannot create %s: %s", path,
			   strerror(errno));
		goto out;
	}
	e = fileio_fsync_parent(path);
	if (e != 0) {
		errors_set(err, err_len, "cannot sync the directory of %s: %s",
			   path, strerror(-e));
		goto out;
	}
	rv = read_key_file(path, kf, err, err_len) == 1 ? 0 : -1;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(text);
	json_decref(j);
	return rv;
}

/* Does the replica exist already, as a plain one: a state file, or a
 * database or WAL with bytes in it? */
static int exists_in_clear(const struct replica *r)
{
	struct stat st;
	char *wal = NULL;
	int found;

	found = access(r->state_path, F_OK) == 0 ||
		(stat(r->db_path, &st) == 0 && st.st_size > 0);
	if (!found && asprintf(&wal, "%s-wal", r->db_path) >= 0) {
		found = stat(wal, &st) == 0 && st.st_size > 0;
		free(wal);
	}
	return found;
}

/* SHA-256 of the key text: how later opens in this process are compared
 * with the first (the replica keeps no copy of the key). */
static int key_digest(const char *key, uint8_t out[32])
{
	unsigned int n = 32;

	return EVP_Digest(key, strlen(key), out, &n, EVP_sha256(), NULL) == 1
		   ? 0
		   : -1;
}

int replica_key_open(struct replica *r, const char *key_text,
		     sqlite3_vfs *cipher_vfs, char *err, size_t err_len)
{
	struct cipher_key key = {0};
	struct cipher *c = NULL;
	struct key_file kf;
	char *path = key_path(r->db_path);
	int has, rv = -1;

	if (path == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	has = read_key_file(path, &kf, err, err_len);
	if (has < 0)
		goto out;
	if (!has && key_text == NULL) {
		rv = 0; /* a plain replica */
		goto out;
	}
	if (has && key_text == NULL) {
		errors_set(
		    err, err_len,
		    "%s is an encrypted replica (%s): give its key with "
		    "encryption_key= in the URI or REPLITE_ENCRYPTION_KEY",
		    r->db_path, path);
		goto out;
	}
	if (!has && exists_in_clear(r)) {
		/* A file with data and no state file is no replica at all:
		 * said as an open without a key says it. */
		if (access(r->state_path, F_OK) != 0)
			errors_set(err, err_len,
				   "%s holds data but has no replica state "
				   "file (%s), and an encryption key was "
				   "given: it is not a replica (an encrypted "
				   "one starts as a new file)",
				   r->db_path, r->state_path);
		else
			errors_set(
			    err, err_len,
			    "%s is a replica that is not encrypted (it has no "
			    "%s), and an encryption key was given: open it "
			    "without encryption_key (and "
			    "REPLITE_ENCRYPTION_KEY), or create an encrypted "
			    "replica under a new file name",
			    r->db_path, path);
		goto out;
	}
	if (cipher_key_parse(key_text, &key, err, err_len) != 0)
		goto out;
	if (has) {
		if (cipher_new(&key, kf.salt, &c, err, err_len) != 0)
			goto out;
		if (!cipher_check_matches(c, kf.check)) {
			errors_set(err, err_len,
				   "the encryption key given for %s is not the "
				   "one it was encrypted with",
				   r->db_path);
			goto out;
		}
	} else {
		uint8_t salt[CIPHER_SALT_SIZE];
		if (cipher_salt_new(salt, err, err_len) != 0 ||
		    cipher_new(&key, salt, &c, err, err_len) != 0 ||
		    create_key_file(path, c, salt, &kf, err, err_len) != 0)
			goto out;
		/* Another process created it first: its salt. */
		if (memcmp(kf.salt, salt, sizeof salt) != 0) {
			cipher_free(c);
			c = NULL;
			if (cipher_new(&key, kf.salt, &c, err, err_len) != 0)
				goto out;
			if (!cipher_check_matches(c, kf.check)) {
				errors_set(
				    err, err_len,
				    "the encryption key given for %s is "
				    "not the one another process created "
				    "it with",
				    r->db_path);
				goto out;
			}
		}
	}
	if (cipher_vfs_add(cipher_vfs, r->db_path, c, REPLITE_PAGE_SIZE, err,
			   err_len) != 0)
		goto out;
	if (key_digest(key_text, r->key_digest) != 0) {
		errors_set(err, err_len, "cannot hash the key (OpenSSL)");
		cipher_vfs_remove(cipher_vfs, r->db_path);
		goto out;
	}
	r->cipher_vfs = cipher_vfs;
	r->cipher = c;
	c = NULL;
	rv = 0;
out:
	cipher_free(c);
	cipher_key_wipe(&key);
	free(path);
	return rv;
}

void replica_key_close(struct replica *r)
{
	if (r->cipher_vfs != NULL)
		cipher_vfs_remove(r->cipher_vfs, r->db_path);
	r->cipher_vfs = NULL;
	cipher_free(r->cipher);
	r->cipher = NULL;
}

int replica_check_key(struct replica *r, const char *key, char *err,
		      size_t err_len)
{
	int mine = r->cipher_vfs != NULL;
	uint8_t digest[32];

	if (!mine && key == NULL)
		return 0;
	if (mine && key != NULL && key_digest(key, digest) == 0 &&
	    CRYPTO_memcmp(digest, r->key_digest, sizeof digest) == 0)
		return 0;
	errors_set(err, err_len,
		   "%s is already open in this process %s; it cannot also be "
		   "opened %s",
		   r->db_path, mine ? "with an encryption key" : "without one",
		   key != NULL && mine ? "with another key"
		   : key != NULL       ? "with a key"
				       : "without its key");
	return -1;
}

int replica_encrypted(const struct replica *r)
{
	return r->cipher_vfs != NULL;
}
