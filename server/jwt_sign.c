#include "jwt_sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/base64.h"
#include "base/fileio.h"
#include "util.h"

struct jwt_sign_key {
	EVP_PKEY *pkey;
};

static void set_err(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------- */
/* keygen */

/* The PEM text of k written by write (PEM_write_bio_PrivateKey or
 * PEM_write_bio_PUBKEY), malloc'd. */
static char *pem_text(EVP_PKEY *k, int private_key, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	long n;
	int ok;

	if (bio == NULL)
		return NULL;
	ok = private_key
		 ? PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL)
		 : PEM_write_bio_PUBKEY(bio, k);
	n = BIO_get_mem_data(bio, &data);
	if (ok == 1 && n > 0) {
		out = malloc((size_t)n + 1);
		if (out != NULL) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
			*len = (size_t)n;
		}
	}
	BIO_free(bio);
	return out;
}

/* Create path (it must not exist) with mode, write text, fsync.  Returns 0
 * or -errno; a file it created is removed on failure. */
static int write_new_file(const char *path, mode_t mode, const char *text,
			  size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	int e;

	if (fd < 0)
		return -errno;
	/* The umask may have narrowed mode; never widened it.  Set it exactly
	 * (the private key stays 0600 whatever the umask). */
	if (fchmod(fd, mode) != 0) {
		e = -errno;
		goto fail;
	}
	e = fileio_write_all(fd, text, len, 0);
	if (e == 0 && fsync(fd) != 0)
		e = -errno;
	if (e != 0)
		goto fail;
	if (close(fd) != 0) {
		e = -errno;
		unlink(path);
		return e;
	}
	return 0;
fail:
	close(fd);
	unlink(path);
	return e;
}

static int make_dir(const char *dir, char *err, size_t n)
{
	char *parent, *slash;
	struct stat st;
	int e;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			set_err(err, n, "%s exists and is not a directory",
				dir);
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT) {
		set_err(err, n, "cannot use directory %s: %s", dir,
			strerror(errno));
		return -1;
	}
	/* Parents as mkdir -p makes them; the key directory itself 0700. */
	parent = strdup(dir);
	if (parent == NULL) {
		set_err(err, n, "out of memory");
		return -1;
	}
	for (slash = parent + strlen(parent);
	     slash > parent && slash[-1] == '/';)
		*--slash = '\0';
	slash = strrchr(parent, '/');
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		e = fileio_mkdir_p(parent);
		if (e != 0) {
			set_err(err, n, "cannot create directory %s: %s",
				parent, strerror(-e));
			free(parent);
			return -1;
		}
	}
	free(parent);
	if (mkdir(dir, 0700) != 0) {
		set_err(err, n, "cannot create directory %s: %s", dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

int jwt_sign_keygen(const char *dir, char **priv_path, char **pub_path,
		    char *err, size_t err_len)
{
	size_t dir_len = strlen(dir);
	char *priv, *pub;
	char *priv_pem = NULL, *pub_pem = NULL;
	size_t priv_len = 0, pub_len = 0;
	EVP_PKEY *k = NULL;
	struct stat st;
	int e, rv = -1;

	while (dir_len > 0 && dir[dir_len - 1] == '/')
		dir_len--; /* "keys/" -> "keys/jwt_...", "/" -> "/jwt_..." */
	priv =
	    util_strdupf("%.*s/%s", (int)dir_len, dir, JWT_SIGN_PRIVATE_FILE);
	pub = util_strdupf("%.*s/%s", (int)dir_len, dir, JWT_SIGN_PUBLIC_FILE);
	if (priv == NULL || pub == NULL) {
		set_err(err, err_len, "out of memory");
		goto out;
	}
	if (make_dir(dir, err, err_len) != 0)
		goto out;
	/* Refuse before writing anything: a half-replaced pair would break
	 * every token in use.  (O_EXCL below closes the race.) */
	if (lstat(priv, &st) == 0 || lstat(pub, &st) == 0) {
		set_err(err, err_len,
			"%s already exists: refusing to overwrite a key (move "
			"it away or choose another --out directory)",
			lstat(priv, &st) == 0 ? priv : pub);
		goto out;
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k != NULL) {
		priv_pem = pem_text(k, 1, &priv_len);
		pub_pem = pem_text(k, 0, &pub_len);
	}
	if (priv_pem == NULL || pub_pem == NULL) {
		set_err(err, err_len,
			"cannot generate an Ed25519 key with OpenSSL");
		goto out;
	}
	e = write_new_file(priv, 0600, priv_pem, priv_len);
	if (e != 0) {
		set_err(err, err_len, "cannot create %s: %s", priv,
			strerror(-e));
		goto out;
	}
	e = write_new_file(pub, 0644, pub_pem, pub_len);
	if (e != 0) {
		set_err(err, err_len, "cannot create %s: %s", pub,
			strerror(-e));
		unlink(priv);
		goto out;
	}
	fileio_fsync_dir(dir);
	*priv_path = priv;
	*pub_path = pub;
	priv = pub = NULL;
	rv = 0;
out:
	ERR_clear_error();
	if (priv_pem != NULL)
		OPENSSL_cleanse(priv_pem, priv_len);
	free(priv_pem);
	free(pub_pem);
	EVP_PKEY_free(k);
	free(priv);
	free(pub);
	return rv;
}

/* ---------------------------------------------------------------------- */
/* private keys */

void jwt_sign_key_free(struct jwt_sign_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

int jwt_sign_key_load_text(const char *text, struct jwt_sign_key **out,
			   char *err, size_t err_len)
{
	BIO *bio;
	EVP_PKEY *k;
	struct jwt_sign_key *key;

	if (strstr(text, "-----BEGIN PUBLIC KEY-----") != NULL &&
	    strstr(text, "PRIVATE KEY-----") == NULL) {
		set_err(err, err_len,
			"this is a public key; tokens are signed with the "
			"private key (" JWT_SIGN_PRIVATE_FILE ")");
		return -1;
	}
	bio = BIO_new_mem_buf(text, -1);
	if (bio == NULL) {
		set_err(err, err_len, "out of memory");
		return -1;
	}
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (k == NULL) {
		set_err(
		    err, err_len,
		    "not a PEM private key (expected the " JWT_SIGN_PRIVATE_FILE
		    " that `replite keygen` writes)");
		return -1;
	}
	if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
		set_err(err, err_len, "an %s key, not Ed25519",
			EVP_PKEY_get0_type_name(k));
		EVP_PKEY_free(k);
		return -1;
	}
	key = calloc(1, sizeof *key);
	if (key == NULL) {
		EVP_PKEY_free(k);
		set_err(err, err_len, "out of memory");
		return -1;
	}
	key->pkey = k;
	*out = key;
	return 0;
}

int jwt_sign_key_load_file(const char *path, struct jwt_sign_key **out,
			   char *err, size_t err_len)
{
	char *text = NULL;
	char why[256] = "";
	size_t len = 0;
	int e = fileio_read_file(path, &text, &len);

	if (e != 0) {
		set_err(err, err_len, "cannot read key file %s: %s", path,
			strerror(-e));
		return -1;
	}
	e = jwt_sign_key_load_text(text, out, why, sizeof why);
	OPENSSL_cleanse(text, len);
	free(text);
	if (e != 0) {
		set_err(err, err_len, "key file %s: %s", path, why);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* tokens */

static char *b64url_json(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *out;

	if (text == NULL)
		return NULL;
	out = base64_encode((const uint8_t *)text, strlen(text), 1, 0);
	free(text);
	return out;
}

char *jwt_sign_token(const struct jwt_sign_key *key,
		     const struct jwt_sign_claims *claims, char *err,
		     size_t err_len)
{
	json_t *header = json_pack("{s:s, s:s}", "alg", "EdDSA", "typ", "JWT");
	json_t *body = json_object();
	char *h = NULL, *b = NULL, *signing = NULL, *s = NULL, *token = NULL;
	uint8_t sig[64];
	size_t sig_len = sizeof sig;
	EVP_MD_CTX *ctx = NULL;

	if (claims->db != NULL && !jwt_sign_valid_db_name(claims->db)) {
		set_err(err, err_len,
			"invalid database name '%s': 1 to 128 letters, digits, "
			"'-' or '_'",
			claims->db);
		goto out;
	}
	if (header == NULL || body == NULL ||
	    json_object_set_new(body, "iat", json_integer(claims->iat)) != 0 ||
	    (claims->exp != 0 &&
	     json_object_set_new(body, "exp", json_integer(claims->exp)) !=
		 0) ||
	    json_object_set_new(
		body, "a", json_string(claims->read_only ? "ro" : "rw")) != 0 ||
	    (claims->db != NULL &&
	     json_object_set_new(body, "id", json_string(claims->db)) != 0)) {
		set_err(err, err_len, "out of memory");
		goto out;
	}
	h = b64url_json(header);
	b = b64url_json(body);
	signing = h && b ? util_strdupf("%s.%s", h, b) : NULL;
	ctx = EVP_MD_CTX_new();
	if (signing == NULL || ctx == NULL) {
		set_err(err, err_len, "out of memory");
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)signing,
			   strlen(signing)) != 1 ||
	    sig_len != 64) {
		set_err(err, err_len, "Ed25519 signing failed (OpenSSL)");
		goto out;
	}
	s = base64_encode(sig, sig_len, 1, 0);
	if (s == NULL) {
		set_err(err, err_len, "out of memory");
		goto out;
	}
	token = util_strdupf("%s.%s", signing, s);
	if (token == NULL)
		set_err(err, err_len, "out of memory");
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	json_decref(header);
	json_decref(body);
	free(h);
	free(b);
	free(signing);
	free(s);
	return token;
}

int jwt_sign_parse_duration(const char *text, int64_t *seconds, char *err,
			    size_t err_len)
{
	static const int64_t max = 100LL * 365 * 86400;
	const char *p = text;
	int64_t v = 0, unit;

	if (strcmp(text, "never") == 0) {
		*seconds = 0;
		return 0;
	}
	while (*p >= '0' && *p <= '9') {
		if (v <= max) /* past max: out of range, and no overflow */
			v = v * 10 + (*p - '0');
		p++;
	}
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		unit = 0;
		break;
	}
	if (p == text || unit == 0 || p[1] != '\0') {
		set_err(err, err_len,
			"'%s' is not a duration: expected a whole number "
			"with one unit, s, m, h, d or w (30d, 12h, 3600s), "
			"or 'never'",
			text);
		return -1;
	}
	if (v < 1 || v > max || v * unit > max) {
		set_err(err, err_len,
			"'%s' is out of range: from 1s to 100 years (36500d)",
			text);
		return -1;
	}
	*seconds = v * unit;
	return 0;
}

int jwt_sign_valid_db_name(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= 128 &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}
