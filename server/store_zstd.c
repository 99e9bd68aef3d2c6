/* The current generation's base image kept zstd-compressed beside it
 * (gen-G/base.db.zst), so that GET /export to a client that accepts zstd
 * is a file sent as it is (sendfile), not the whole image compressed again
 * for every new replica.
 *
 * base.db never changes once its generation exists, so neither does its
 * compressed copy. The copy is made by the maintenance thread, never by a
 * request: until it exists, answers are compressed as they are sent
 * (http_zstd.c), which gives the same decoded bytes. It is written to
 * base.db.zst.tmp, synced and renamed, so a crash never leaves a partial
 * copy under the final name; a copy found at start-up is used only if its
 * zstd frame says it decodes to base.db's size. Its frame carries zstd's
 * content checksum, and the replica checks the decoded image against the
 * whole-database checksum the answer announces, as for any image. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "base/fileio.h"
#include "store_internal.h"
#include "util.h"

/* Read and written this much at a time. */
#define ZSTD_CHUNK ((size_t)1 << 20)

/* Does the file at path hold one whole zstd frame that decodes, its content
 * checksum included, to size bytes?  (A copy found at start-up is checked
 * whole once: a damaged one would be refused by every replica.) */
static int copy_matches(const char *path, uint64_t size)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	uint8_t *in = malloc(ZSTD_CHUNK), *out = malloc(ZSTD_CHUNK);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t off = 0, decoded = 0;
	size_t rc = 1;
	ssize_t got;
	int ok = 0, full;

	if (d == NULL || in == NULL || out == NULL || fd < 0)
		goto out;
	while ((got = pread(fd, in, ZSTD_CHUNK, (off_t)off)) > 0) {
		ZSTD_inBuffer ib = {in, (size_t)got, 0};

		off += (uint64_t)got;
		/* Until the input is used and the decoder has nothing more
		 * to give (a full output buffer may leave some). */
		for (full = 1; ib.pos < ib.size || full;) {
			ZSTD_outBuffer ob = {out, ZSTD_CHUNK, 0};

			if (rc == 0 && ib.pos < ib.size)
				goto out; /* bytes after the frame */
			rc = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(rc))
				goto out;
			decoded += ob.pos;
			full = ob.pos == ob.size;
		}
	}
	ok = got == 0 && rc == 0 && decoded == size;
out:
	if (fd >= 0)
		close(fd);
	ZSTD_freeDCtx(d);
	free(in);
	free(out);
	return ok;
}

/* The copy being made, owned by its thread. */
struct zstd_job {
	struct store *s;
	char *dir;
	uint32_t number;
	int level;
};

/* Compress src (size bytes) into a new file dst at level; 0, or -1 (also
 * when the store is closing). */
static int compress_file(struct store *s, int src, uint64_t size,
			 const char *dst, int level)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	uint8_t *in = malloc(ZSTD_CHUNK), *out = malloc(ZSTD_CHUNK);
	uint64_t off = 0, woff = 0;
	int fd = -1, rv = -1, last = 0;
	size_t left;

	if (cctx == NULL || in == NULL || out == NULL)
		goto out;
	if (ZSTD_isError(
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, size)))
		goto out;
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	while (!last) {
		size_t n =
		    size - off < ZSTD_CHUNK ? (size_t)(size - off) : ZSTD_CHUNK;
		ZSTD_inBuffer ib = {in, n, 0};

		if (atomic_load(&s->zstd_stop))
			goto out;
		if (n > 0 && fileio_read_all(src, in, n, off) != 0)
			goto out;
		off += n;
		last = off == size;
		do {
			ZSTD_outBuffer ob = {out, ZSTD_CHUNK, 0};

			left = ZSTD_compressStream2(cctx, &ob, &ib,
						    last ? ZSTD_e_end
							 : ZSTD_e_continue);
			if (ZSTD_isError(left))
				goto out;
			if (fileio_write_all(fd, out, ob.pos, woff) != 0)
				goto out;
			woff += ob.pos;
		} while (last ? left != 0 : ib.pos < ib.size);
	}
	if (fsync(fd) != 0)
		goto out;
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	ZSTD_freeCCtx(cctx);
	free(in);
	free(out);
	return rv;
}

/* Make dir/base.db.zst unless a complete one is there: 0; 1 when it saves
 * less than a tenth of the image's bytes (random or compressed data: both
 * ends would spend time on it for nothing, so such an image is sent plain);
 * or -1. */
static int make_copy(struct store *s, const char *dir, int level)
{
	char *base = util_strdupf("%s/base.db", dir);
	char *tmp = util_strdupf("%s/base.db.zst.tmp", dir);
	char *final = util_strdupf("%s/base.db.zst", dir);
	struct stat st;
	int fd = -1, rv = -1;

	if (base == NULL || tmp == NULL || final == NULL)
		goto out;
	fd = open(base, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		goto out;
	if (copy_matches(final, (uint64_t)st.st_size)) {
		rv = 0;
		goto out;
	}
	if (compress_file(s, fd, (uint64_t)st.st_size, tmp, level) != 0 ||
	    rename(tmp, final) != 0 || fileio_fsync_dir(dir) != 0) {
		if (!atomic_load(&s->zstd_stop))
			store_log("compressing %s failed: %s; images are "
				  "compressed as they are sent instead",
				  base, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rv = 0;
out:
	if (rv == 0) {
		struct stat zs;
		if (stat(final, &zs) == 0 &&
		    (uint64_t)zs.st_size * 10 > (uint64_t)st.st_size * 9)
			rv = 1;
	}
	if (fd >= 0)
		close(fd);
	free(base);
	free(tmp);
	free(final);
	return rv;
}

static void *zstd_main(void *arg)
{
	struct zstd_job *job = arg;
	struct store *s = job->s;
	struct generation *g;
	int rv = make_copy(s, job->dir, job->level);

	pthread_mutex_lock(&s->mu);
	/* By number: a rollover may have made another one current, and
	 * retention may even have dropped this one meanwhile. */
	g = store_find_gen_locked(s, job->number);
	if (g != NULL && !atomic_load(&s->zstd_stop))
		g->have_base_zst = rv == 0 ? 1 : rv == 1 ? 2 : -1;
	s->zstd_done = 1;
	pthread_mutex_unlock(&s->mu);
	free(job->dir);
	free(job);
	return NULL;
}

void store_zstd_prepare(struct store *s)
{
	struct generation *g;
	struct zstd_job *job;

	if (s->cfg.compression_level <= 0)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->zstd_running) {
		if (!s->zstd_done)
			goto out;
		pthread_join(s->zstd_thread, NULL);
		s->zstd_running = 0;
	}
	g = store_current_locked(s);
	if (g->have_base_zst != 0)
		goto out;
	job = calloc(1, sizeof *job);
	if (job == NULL || (job->dir = strdup(g->dir)) == NULL) {
		free(job);
		goto out;
	}
	job->s = s;
	job->number = g->number;
	job->level = s->cfg.compression_level;
	s->zstd_done = 0;
	if (pthread_create(&s->zstd_thread, NULL, zstd_main, job) != 0) {
		free(job->dir);
		free(job);
		goto out;
	}
	s->zstd_running = 1;
out:
	pthread_mutex_unlock(&s->mu);
}

void store_zstd_stop(struct store *s)
{
	atomic_store(&s->zstd_stop, 1);
	if (s->zstd_running)
		pthread_join(s->zstd_thread, NULL);
	s->zstd_running = 0;
}

int store_export_zstd(struct store *s, uint32_t gen, int *fd, uint64_t *size)
{
	struct generation *g;
	char *path = NULL;
	int plain = 0, rv;

	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	if (g != NULL && g->have_base_zst == 1)
		path = util_strdupf("%s/base.db.zst", g->dir);
	plain = g != NULL && g->have_base_zst == 2;
	pthread_mutex_unlock(&s->mu);
	if (plain)
		return 1;
	if (path == NULL)
		return -1;
	rv = util_open_sized(path, fd, size);
	free(path);
	return rv;
}
