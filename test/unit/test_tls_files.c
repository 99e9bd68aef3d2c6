/* tls_files_load (replite serve --tls-cert/--tls-key) on real PEM files made
 * here with OpenSSL: a good pair loads; every wrong file fails naming it,
 * among them an encrypted key (refused without asking for a passphrase). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fixture.h"
#include "server/tls.h"

static char *tmp;

static void setup(void)
{
	tmp = fixture_tmpdir();
}

static void teardown(void)
{
	fixture_rmdir(tmp);
	tmp = NULL;
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	ck_assert_ptr_nonnull(k);
	return k;
}

/* A self-signed certificate for key, valid from now + from_s for days. */
static X509 *new_cert(EVP_PKEY *key, long from_s, long days)
{
	X509 *c = X509_new();
	X509_NAME *name;

	ck_assert_ptr_nonnull(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_gmtime_adj(X509_getm_notBefore(c), from_s);
	X509_gmtime_adj(X509_getm_notAfter(c), from_s + days * 86400);
	X509_set_pubkey(c, key);
	name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"127.0.0.1", -1, -1,
				   0);
	X509_set_issuer_name(c, name);
	ck_assert_int_gt(X509_sign(c, key, EVP_sha256()), 0);
	return c;
}

static char *write_cert(const char *name, X509 *c)
{
	char *path = fixture_path(tmp, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, c), 1);
	fclose(f);
	return path;
}

/* pass != NULL: encrypted with it (AES-256-CBC). */
static char *write_key(const char *name, EVP_PKEY *k, const char *pass)
{
	char *path = fixture_path(tmp, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(
	    PEM_write_PrivateKey(f, k, pass ? EVP_aes_256_cbc() : NULL,
				 (unsigned char *)pass,
				 pass ? (int)strlen(pass) : 0, NULL, NULL),
	    1);
	fclose(f);
	return path;
}

static char *write_text(const char *name, const char *text)
{
	char *path = fixture_path(tmp, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* tls_files_load(cert, key) fails with each of want[] in its message and
 * leaves *out zeroed. */
static void assert_refused(const char *cert, const char *key,
			   const char *const *want)
{
	struct tls_files f = {(char *)"x", (char *)"y"};
	char err[1024] = "";

	ck_assert_int_eq(tls_files_load(cert, key, &f, err, sizeof err), -1);
	ck_assert_ptr_null(f.cert_pem);
	ck_assert_ptr_null(f.key_pem);
	for (; *want != NULL; want++)
		ck_assert_msg(strstr(err, *want) != NULL, "'%s' not in: %s",
			      *want, err);
}

START_TEST(test_good_pair)
{
	EVP_PKEY *k = new_key();
	X509 *c = new_cert(k, -60, 2);
	char *cert = write_cert("c.pem", c), *key = write_key("k.pem", k, NULL);
	struct tls_files f;
	char err[512];

	ck_assert_msg(tls_files_load(cert, key, &f, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_ptr_nonnull(strstr(f.cert_pem, "-----BEGIN CERTIFICATE"));
	ck_assert_ptr_nonnull(strstr(f.key_pem, "PRIVATE KEY-----"));
	tls_files_free(&f);
	ck_assert_ptr_null(f.cert_pem);
	ck_assert_ptr_null(f.key_pem);
	tls_files_free(&f); /* twice is harmless */
	free(cert);
	free(key);
	X509_free(c);
	EVP_PKEY_free(k);
}
END_TEST

/* Expired or not yet valid: loaded (with a warning on stderr). */
START_TEST(test_out_of_date_loads)
{
	EVP_PKEY *k = new_key();
	X509 *old = new_cert(k, -10 * 86400, 1), *later = new_cert(k, 86400, 2);
	char *c1 = write_cert("old.pem", old),
	     *c2 = write_cert("later.pem", later);
	char *key = write_key("k.pem", k, NULL);
	struct tls_files f;
	char err[512];

	ck_assert_msg(tls_files_load(c1, key, &f, err, sizeof err) == 0, "%s",
		      err);
	tls_files_free(&f);
	ck_assert_msg(tls_files_load(c2, key, &f, err, sizeof err) == 0, "%s",
		      err);
	tls_files_free(&f);
	free(c1);
	free(c2);
	free(key);
	X509_free(old);
	X509_free(later);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_refusals)
{
	EVP_PKEY *k = new_key(), *other = new_key();
	X509 *c = new_cert(k, -60, 2);
	char *cert = write_cert("c.pem", c), *key = write_key("k.pem", k, NULL);
	char *other_key = write_key("other.pem", other, NULL);
	char *encrypted = write_key("enc.pem", k, "secret passphrase");
	char *garbage = write_text("garbage.pem", "hello\n");
	char *empty = write_text("empty.pem", "");
	char *missing = fixture_path(tmp, "missing.pem");
	char *big = fixture_path(tmp, "big.pem");
	FILE *f = fopen(big, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, TLS_MAX_FILE + 1, SEEK_SET), 0);
	fputc('x', f);
	fclose(f);

	assert_refused(missing, key,
		       (const char *const[]){"cannot read --tls-cert", missing,
					     "No such file or directory",
					     NULL});
	assert_refused(
	    cert, missing,
	    (const char *const[]){"cannot read --tls-key", missing, NULL});
	assert_refused(
	    tmp, key,
	    (const char *const[]){"--tls-cert", "not a regular file", NULL});
	assert_refused(big, key,
		       (const char *const[]){"--tls-cert", big,
					     "expected a PEM file of at most",
					     NULL});
	assert_refused(garbage, key,
		       (const char *const[]){"--tls-cert", garbage,
					     "holds no PEM certificate", NULL});
	assert_refused(empty, key,
		       (const char *const[]){"holds no PEM certificate", NULL});
	/* The key where the certificate belongs, and the reverse. */
	assert_refused(key, key,
		       (const char *const[]){"holds no PEM certificate", NULL});
	assert_refused(cert, cert,
		       (const char *const[]){"--tls-key", cert,
					     "holds no usable PEM private key",
					     NULL});
	assert_refused(cert, encrypted,
		       (const char *const[]){"--tls-key", encrypted,
					     "expected an unencrypted key",
					     NULL});
	assert_refused(cert, other_key,
		       (const char *const[]){"the key in --tls-key", other_key,
					     "does not belong to the "
					     "certificate in --tls-cert",
					     cert, NULL});
	free(cert);
	free(key);
	free(other_key);
	free(encrypted);
	free(garbage);
	free(empty);
	free(missing);
	free(big);
	X509_free(c);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls_files");
	TCase *tc = tcase_create("tls_files");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_pair);
	tcase_add_test(tc, test_out_of_date_loads);
	tcase_add_test(tc, test_refusals);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
