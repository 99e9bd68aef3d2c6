/* The frame log tests' shared helpers (frame_log_helpers.h): a log in a
 * temporary directory, transactions of pages whose bytes tell their page
 * and version, whole files, and checks of a log file and its frames. */
#include "frame_log_helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "fixture.h"
#include "wal/walfmt.h"

void flh_fx_open(struct flh_fx *f)
{
	char err[512] = "";

	ck_assert_msg(frame_log_open(f->path, 1, &f->log, err, sizeof err) == 0,
		      "frame_log_open: %s", err);
}

void flh_fx_reopen(struct flh_fx *f)
{
	frame_log_close(f->log);
	f->log = NULL;
	flh_fx_open(f);
}

void flh_fx_init(struct flh_fx *f)
{
	f->dir = fixture_tmpdir();
	f->path = fixture_path(f->dir, "frames.log");
	f->log = NULL;
	flh_fx_open(f);
}

void flh_fx_done(struct flh_fx *f)
{
	frame_log_close(f->log);
	free(f->path);
	fixture_rmdir(f->dir);
}

/* The content of page pgno as written by "version" v: every byte depends on
 * both, so a frame read back from the wrong place is noticed. */
void flh_fill_page(uint8_t *page, uint32_t pgno, uint32_t v)
{
	uint32_t x = pgno * 2654435761u ^ v * 40503u ^ 0x9e3779b9u;
	size_t i;

	for (i = 0; i < WALFMT_PAGE_SIZE; i++) {
		x = x * 1103515245u + 12345u;
		page[i] = (uint8_t)(x >> 16);
	}
}

/* Append one transaction writing pgnos[0..n) (version v), committing with
 * db_size.  Returns frame_log_append's result. */
int flh_append_txn(struct frame_log *l, const uint32_t *pgnos, size_t n,
		   uint32_t db_size, uint32_t v)
{
	struct frame_log_entry *e = calloc(n, sizeof *e);
	uint8_t *pages = malloc(n * WALFMT_PAGE_SIZE);
	size_t i;
	int rv;

	for (i = 0; i < n; i++) {
		flh_fill_page(pages + i * WALFMT_PAGE_SIZE, pgnos[i], v);
		e[i].pgno = pgnos[i];
		e[i].db_size = i == n - 1 ? db_size : 0;
		e[i].page = pages + i * WALFMT_PAGE_SIZE;
	}
	rv = frame_log_append(l, e, n);
	free(e);
	free(pages);
	return rv;
}

uint64_t flh_file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

uint8_t *flh_read_whole(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *buf;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

void flh_write_whole(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	if (len > 0)
		ck_assert_int_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

/* Check every frame of the file at path up to head: a valid WAL header,
 * the checksum chain unbroken, commit marks exactly where expected
 * (commits[i] != 0 for frame i + 1), and nothing after the head. */
void flh_assert_file_valid(const char *path, uint32_t head,
			   const uint32_t *commits)
{
	size_t len, i;
	uint8_t *buf = flh_read_whole(path, &len);
	struct walfmt_header h;
	uint32_t chain[2];

	ck_assert_uint_eq(len, frame_log_offset(head + 1));
	ck_assert_int_eq(walfmt_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.page_size, WALFMT_PAGE_SIZE);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	for (i = 0; i < head; i++) {
		const uint8_t *fr = buf + frame_log_offset((uint32_t)i + 1);
		ck_assert_msg(walfmt_frame_verify(h.magic & 1, h.salt, chain,
						  fr, WALFMT_PAGE_SIZE) == 0,
			      "frame %zu breaks the checksum chain", i + 1);
		if (commits != NULL)
			ck_assert_uint_eq(walfmt_get32(fr + 4), commits[i]);
	}
	free(buf);
}

/* Frame header fields and page of frame buffer fr. */
void flh_assert_frame(const uint8_t *fr, uint32_t pgno, uint32_t db_size,
		      uint32_t v)
{
	uint8_t page[WALFMT_PAGE_SIZE];

	ck_assert_uint_eq(walfmt_get32(fr), pgno);
	ck_assert_uint_eq(walfmt_get32(fr + 4), db_size);
	flh_fill_page(page, pgno, v);
	ck_assert_msg(
	    memcmp(fr + WALFMT_FRAME_HDR_SIZE, page, WALFMT_PAGE_SIZE) == 0,
	    "page %u (version %u) differs", pgno, v);
}
