#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* The whole file as text, or NULL with err. */
static char *read_pem(const char *what, const char *path, char *err,
		      size_t err_len)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	char *buf = NULL;
	size_t n;

	if (f == NULL) {
		snprintf(err, err_len, "cannot read %s %s: %s", what, path,
			 strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, err_len, "cannot read %s %s: not a regular file",
			 what, path);
		goto out;
	}
	if ((size_t)sb.st_size > TLS_MAX_FILE) {
		snprintf(err, err_len,
			 "%s %s is %lld bytes: expected a PEM file of at most "
			 "%u bytes",
			 what, path, (long long)sb.st_size, TLS_MAX_FILE);
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		snprintf(err, err_len, "out of memory reading %s", path);
		goto out;
	}
	n = fread(buf, 1, (size_t)sb.st_size, f);
	if (n != (size_t)sb.st_size || ferror(f)) {
		snprintf(err, err_len, "cannot read %s %s: %s", what, path,
			 ferror(f) ? strerror(errno) : "file changed size");
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
out:
	fclose(f);
	return buf;
}

/* OpenSSL's reason for the last failure, for a message. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "no PEM block found";
}

/* Never prompt for a passphrase (OpenSSL's default would read the
 * terminal): an encrypted key fails. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static void warn_validity(const X509 *cert, const char *path)
{
	const ASN1_TIME *not_after = X509_get0_notAfter(cert);
	const ASN1_TIME *not_before = X509_get0_notBefore(cert);

	if (X509_cmp_current_time(not_after) < 0)
		fprintf(stderr,
			"replite: WARNING: the certificate in --tls-cert %s "
			"has expired: clients will refuse it\n",
			path);
	else if (X509_cmp_current_time(not_before) > 0)
		fprintf(stderr,
			"replite: WARNING: the certificate in --tls-cert %s "
			"is not valid yet: clients will refuse it\n",
			path);
}

int tls_files_load(const char *cert_path, const char *key_path,
		   struct tls_files *out, char *err, size_t err_len)
{
	struct tls_files f = {NULL, NULL};
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	int rv = -1;

	memset(out, 0, sizeof *out);
	f.cert_pem = read_pem("--tls-cert", cert_path, err, err_len);
	if (f.cert_pem == NULL)
		goto out;
	f.key_pem = read_pem("--tls-key", key_path, err, err_len);
	if (f.key_pem == NULL)
		goto out;
	ERR_clear_error();
	bio = BIO_new_mem_buf(f.cert_pem, -1);
	cert = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;
	if (cert == NULL) {
		snprintf(err, err_len,
			 "--tls-cert %s holds no PEM certificate (%s): "
			 "expected -----BEGIN CERTIFICATE-----, the server's "
			 "certificate first",
			 cert_path, ssl_reason());
		goto out;
	}
	BIO_free(bio);
	ERR_clear_error();
	bio = BIO_new_mem_buf(f.key_pem, -1);
	key =
	    bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
	if (key == NULL) {
		snprintf(err, err_len,
			 "--tls-key %s holds no usable PEM private key (%s): "
			 "expected an unencrypted key, -----BEGIN PRIVATE "
			 "KEY----- or -----BEGIN RSA/EC PRIVATE KEY-----",
			 key_path, ssl_reason());
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		snprintf(err, err_len,
			 "the key in --tls-key %s does not belong to the "
			 "certificate in --tls-cert %s",
			 key_path, cert_path);
		goto out;
	}
	warn_validity(cert, cert_path);
	*out = f;
	memset(&f, 0, sizeof f);
	rv = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(cert);
	EVP_PKEY_free(key);
	tls_files_free(&f);
	return rv;
}

void tls_files_free(struct tls_files *f)
{
	if (f->key_pem != NULL)
		OPENSSL_cleanse(f->key_pem, strlen(f->key_pem));
	free(f->key_pem);
	free(f->cert_pem);
	f->key_pem = NULL;
	f->cert_pem = NULL;
}
