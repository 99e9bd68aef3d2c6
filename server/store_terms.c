/* gen-N/base.terms: the checksum terms (base/dbsum.h) of every page of the
 * generation's base.db, kept so that opening a database does not read its
 * whole base to know its checksum (a fork of a large database opens in
 * time that does not grow with it).
 *
 * A base.db never changes, so neither do its terms.  They are written
 * when they are known without reading the base (at a rollover, the terms
 * of the state the new base holds; a fork links its source's file), or
 * after a start-up computed them.  The file is a cache: it is written
 * without fsync (a temporary file renamed into place), and a file that
 * does not check is ignored and the terms computed again:
 *
 *   0   8  "RPLTERM1"
 *   8   4  page count n
 *   12  4  page size (4096)
 *   16  8  base.db's size in bytes
 *   24  8  XXH3-64 of the n terms
 *   32  8n the terms, in the host's byte order (a file from another host
 *          fails the check and is recomputed)
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/fileio.h"
#include "util.h"

#define TERMS_MAGIC "RPLTERM1"
#define TERMS_HEADER 32

int store_terms_read(const char *gen_dir, uint64_t base_size, uint64_t *terms,
		     uint32_t n_pages)
{
	char *path = util_strdupf("%s/base.terms", gen_dir);
	uint8_t h[TERMS_HEADER];
	uint32_t n, ps;
	uint64_t size, sum;
	int fd = -1, rv = -1;

	if (path == NULL)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fileio_read_all(fd, h, sizeof h, 0) != 0)
		goto out;
	memcpy(&n, h + 8, 4);
	memcpy(&ps, h + 12, 4);
	memcpy(&size, h + 16, 8);
	memcpy(&sum, h + 24, 8);
	if (memcmp(h, TERMS_MAGIC, 8) != 0 || n != n_pages ||
	    ps != WALFMT_PAGE_SIZE || size != base_size)
		goto out;
	if (fileio_read_all(fd, terms, (size_t)n * sizeof *terms,
			    TERMS_HEADER) != 0 ||
	    XXH3_64bits(terms, (size_t)n * sizeof *terms) != sum)
		goto out;
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rv;
}

void store_terms_write(const char *gen_dir, const uint64_t *terms,
		       uint32_t n_pages, uint64_t base_size)
{
	char *path = util_strdupf("%s/base.terms", gen_dir);
	char *tmp = util_strdupf("%s/base.terms.tmp", gen_dir);
	uint8_t h[TERMS_HEADER];
	uint32_t ps = WALFMT_PAGE_SIZE;
	uint64_t sum = XXH3_64bits(terms, (size_t)n_pages * sizeof *terms);
	int fd = -1, ok = 0;

	if (path == NULL || tmp == NULL)
		goto out;
	memcpy(h, TERMS_MAGIC, 8);
	memcpy(h + 8, &n_pages, 4);
	memcpy(h + 12, &ps, 4);
	memcpy(h + 16, &base_size, 8);
	memcpy(h + 24, &sum, 8);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ok = fd >= 0 && fileio_write_all(fd, h, sizeof h, 0) == 0 &&
	     fileio_write_all(fd, terms, (size_t)n_pages * sizeof *terms,
			      TERMS_HEADER) == 0;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, path) == 0;
	if (!ok) {
		store_log("cannot write %s (%s): the next start reads the "
			  "whole base instead",
			  path, strerror(errno));
		unlink(tmp);
	}
out:
	free(path);
	free(tmp);
}
