/* The primary's TLS certificate and private key (replite serve --tls-cert,
 * --tls-key): read into memory for libmicrohttpd, whose GnuTLS serves them,
 * and checked first with OpenSSL, so that a missing, unreadable or wrong file
 * fails the start with a message naming the file instead of libmicrohttpd's
 * bare refusal. */
#ifndef REPLITE_TLS_H
#define REPLITE_TLS_H

#include <stddef.h>

/* Larger files are refused (a certificate chain is a few kilobytes). */
#define TLS_MAX_FILE (1u << 20)

struct tls_files {
	char *cert_pem; /* malloc'd, NUL terminated; the chain, leaf first */
	char *key_pem;  /* malloc'd, NUL terminated; wiped when freed */
};

/* Read and check the certificate file (PEM, the server's certificate first,
 * then any intermediates) and the key file (an unencrypted PEM private key
 * that belongs to that certificate).  A certificate that has expired or is
 * not valid yet is served (the operator may be replacing it) with a warning
 * on stderr.  Returns 0 with *out filled (release with tls_files_free), or -1
 * with *out zeroed and err naming the file and the cause. */
int tls_files_load(const char *cert_path, const char *key_path,
		   struct tls_files *out, char *err, size_t err_len);
void tls_files_free(struct tls_files *f);

#endif
