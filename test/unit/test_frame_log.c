/* The frame log: appends, range reads, recovery of a torn tail, and replay
 * into a database file byte-equal to what SQLite itself wrote. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "server/frame_log.h"
#include "wal/walfmt.h"

/* ---------------------------------------------------------------------- */
/* helpers */

struct fx {
	char *dir;
	char *path;
	struct frame_log *log;
};

static void fx_open(struct fx *f)
{
	char err[512] = "";

	ck_assert_msg(frame_log_open(f->path, 1, &f->log, err, sizeof err) == 0,
		      "frame_log_open: %s", err);
}

static void fx_reopen(struct fx *f)
{
	frame_log_close(f->log);
	f->log = NULL;
	fx_open(f);
}

static void fx_init(struct fx *f)
{
	f->dir = fixture_tmpdir();
	f->path = fixture_path(f->dir, "frames.log");
	f->log = NULL;
	fx_open(f);
}

static void fx_done(struct fx *f)
{
	frame_log_close(f->log);
	free(f->path);
	fixture_rmdir(f->dir);
}

/* The content of page pgno as written by "version" v: every byte depends on
 * both, so a frame read back from the wrong place is noticed. */
static void fill_page(uint8_t *page, uint32_t pgno, uint32_t v)
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
static int append_txn(struct frame_log *l, const uint32_t *pgnos, size_t n,
		      uint32_t db_size, uint32_t v)
{
	struct frame_log_entry *e = calloc(n, sizeof *e);
	uint8_t *pages = malloc(n * WALFMT_PAGE_SIZE);
	size_t i;
	int rv;

	for (i = 0; i < n; i++) {
		fill_page(pages + i * WALFMT_PAGE_SIZE, pgnos[i], v);
		e[i].pgno = pgnos[i];
		e[i].db_size = i == n - 1 ? db_size : 0;
		e[i].page = pages + i * WALFMT_PAGE_SIZE;
	}
	rv = frame_log_append(l, e, n);
	free(e);
	free(pages);
	return rv;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static uint8_t *read_whole(const char *path, size_t *len)
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

static void write_whole(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	if (len > 0)
		ck_assert_int_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static void patch(const char *path, uint64_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void truncate_to(const char *path, uint64_t size)
{
	ck_assert_int_eq(truncate(path, (off_t)size), 0);
}

/* Check every frame of the file at path up to head: a valid WAL header,
 * the checksum chain unbroken, commit marks exactly where expected
 * (commits[i] != 0 for frame i + 1), and nothing after the head. */
static void assert_file_valid(const char *path, uint32_t head,
			      const uint32_t *commits)
{
	size_t len, i;
	uint8_t *buf = read_whole(path, &len);
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
static void assert_frame(const uint8_t *fr, uint32_t pgno, uint32_t db_size,
			 uint32_t v)
{
	uint8_t page[WALFMT_PAGE_SIZE];

	ck_assert_uint_eq(walfmt_get32(fr), pgno);
	ck_assert_uint_eq(walfmt_get32(fr + 4), db_size);
	fill_page(page, pgno, v);
	ck_assert_msg(
	    memcmp(fr + WALFMT_FRAME_HDR_SIZE, page, WALFMT_PAGE_SIZE) == 0,
	    "page %u (version %u) differs", pgno, v);
}

/* ---------------------------------------------------------------------- */
/* basics */

START_TEST(test_create_and_open_errors)
{
	struct fx f;
	struct frame_log *l = NULL;
	char err[512] = "";
	char *missing;

	fx_init(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(frame_log_db_size(f.log), 0);
	ck_assert_uint_eq(file_size(f.path), WALFMT_HDR_SIZE);
	assert_file_valid(f.path, 0, NULL);
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(file_size(f.path), WALFMT_HDR_SIZE);
	/* Not created without create. */
	missing = fixture_path(f.dir, "missing.log");
	ck_assert_int_ne(frame_log_open(missing, 0, &l, err, sizeof err), 0);
	ck_assert_msg(strstr(err, "missing.log") != NULL, "%s", err);
	ck_assert_int_ne(access(missing, F_OK), 0);
	free(missing);
	fx_done(&f);
}
END_TEST

START_TEST(test_append_and_read)
{
	struct fx f;
	const uint32_t t1[] = {1, 2}, t2[] = {2, 3, 1}, t3[] = {4};
	const uint32_t commits[] = {0, 2, 0, 0, 3, 4};
	uint8_t *buf, *raw;
	uint64_t len;

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, t1, 2, 2, 1), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 2);
	ck_assert_uint_eq(frame_log_db_size(f.log), 2);
	ck_assert_int_eq(append_txn(f.log, t2, 3, 3, 2), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(frame_log_db_size(f.log), 3);
	ck_assert_int_eq(append_txn(f.log, t3, 1, 4, 3), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 6);
	ck_assert_uint_eq(frame_log_db_size(f.log), 4);
	assert_file_valid(f.path, 6, commits);

	/* Frame N sits at its fixed offset. */
	ck_assert_uint_eq(frame_log_offset(1), WALFMT_HDR_SIZE);
	ck_assert_uint_eq(frame_log_offset(4),
			  WALFMT_HDR_SIZE + 3 * WALFMT_FRAME_SIZE);

	buf = malloc(6 * WALFMT_FRAME_SIZE);
	ck_assert_int_eq(frame_log_read(f.log, 1, 7, buf), 0);
	assert_frame(buf, 1, 0, 1);
	assert_frame(buf + WALFMT_FRAME_SIZE, 2, 2, 1);
	assert_frame(buf + 2 * WALFMT_FRAME_SIZE, 2, 0, 2);
	assert_frame(buf + 3 * WALFMT_FRAME_SIZE, 3, 0, 2);
	assert_frame(buf + 4 * WALFMT_FRAME_SIZE, 1, 3, 2);
	assert_frame(buf + 5 * WALFMT_FRAME_SIZE, 4, 4, 3);

	/* A middle range, by read and through the fd: the same bytes. */
	ck_assert_int_eq(frame_log_read(f.log, 3, 5, buf), 0);
	assert_frame(buf, 2, 0, 2);
	assert_frame(buf + WALFMT_FRAME_SIZE, 3, 0, 2);
	len = 2 * WALFMT_FRAME_SIZE;
	raw = malloc(len);
	ck_assert_int_eq(
	    pread(frame_log_fd(f.log), raw, len, (off_t)frame_log_offset(3)),
	    (ssize_t)len);
	ck_assert_int_eq(memcmp(raw, buf, len), 0);
	ck_assert_int_eq(frame_log_read(f.log, 6, 7, buf), 0);
	assert_frame(buf, 4, 4, 3);

	/* Ranges outside [1, head + 1). */
	ck_assert_int_eq(frame_log_read(f.log, 0, 2, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 3, 3, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 4, 2, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 1, 8, buf), -EINVAL);
	ck_assert_int_eq(frame_log_read(f.log, 7, 8, buf), -EINVAL);
	free(raw);
	free(buf);
	fx_done(&f);
}
END_TEST

START_TEST(test_append_refuses_bad_entries)
{
	struct fx f;
	const uint32_t ok[] = {1}, zero[] = {1, 0};
	uint8_t page[WALFMT_PAGE_SIZE];
	struct frame_log_entry e[2];

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, ok, 1, 1, 1), 0);
	/* No commit frame at the end. */
	ck_assert_int_eq(append_txn(f.log, ok, 1, 0, 2), -EINVAL);
	/* Page number 0. */
	ck_assert_int_eq(append_txn(f.log, zero, 2, 2, 2), -EINVAL);
	/* Nothing. */
	ck_assert_int_eq(frame_log_append(f.log, e, 0), -EINVAL);
	/* A missing page. */
	fill_page(page, 1, 9);
	e[0] = (struct frame_log_entry){1, 0, NULL};
	e[1] = (struct frame_log_entry){2, 2, page};
	ck_assert_int_eq(frame_log_append(f.log, e, 2), -EINVAL);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	ck_assert_uint_eq(frame_log_db_size(f.log), 1);
	ck_assert_uint_eq(file_size(f.path), frame_log_offset(2));
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	fx_done(&f);
}
END_TEST

/* Appends larger than one write chunk, and a reopen that walks them. */
START_TEST(test_reopen_keeps_everything)
{
	struct fx f;
	uint32_t pg[150], commits[152] = {0};
	uint8_t *a, *b;
	size_t i;

	fx_init(&f);
	for (i = 0; i < 150; i++)
		pg[i] = (uint32_t)(i % 140) + 1;
	ck_assert_int_eq(append_txn(f.log, pg, 150, 140, 1), 0);
	ck_assert_int_eq(append_txn(f.log, pg, 1, 140, 2), 0);
	commits[149] = 140;
	commits[150] = 140;
	a = malloc(151 * WALFMT_FRAME_SIZE);
	b = malloc(151 * WALFMT_FRAME_SIZE);
	ck_assert_int_eq(frame_log_read(f.log, 1, 152, a), 0);
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 151);
	ck_assert_uint_eq(frame_log_db_size(f.log), 140);
	ck_assert_int_eq(frame_log_read(f.log, 1, 152, b), 0);
	ck_assert_int_eq(memcmp(a, b, 151 * WALFMT_FRAME_SIZE), 0);
	for (i = 0; i < 150; i++)
		assert_frame(b + i * WALFMT_FRAME_SIZE, pg[i],
			     i == 149 ? 140 : 0, 1);
	/* Appends after a reopen continue the checksum chain. */
	ck_assert_int_eq(append_txn(f.log, pg + 3, 1, 140, 3), 0);
	commits[151] = 140;
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 152);
	assert_file_valid(f.path, 152, commits);
	free(a);
	free(b);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* torn tails */

/* Two transactions: frames 1-2 (commit, db 2) and 3-5 (commit, db 5). */
static void two_txns(struct fx *f)
{
	const uint32_t t1[] = {1, 2}, t2[] = {3, 4, 5};

	fx_init(f);
	ck_assert_int_eq(append_txn(f->log, t1, 2, 2, 1), 0);
	ck_assert_int_eq(append_txn(f->log, t2, 3, 5, 2), 0);
	frame_log_close(f->log);
	f->log = NULL;
}

/* After the damage: the head is back at frame 2, the file cut there, and
 * the log takes appends that survive another reopen. */
static void assert_recovered_to_first(struct fx *f)
{
	const uint32_t t3[] = {2, 6};
	const uint32_t commits[] = {0, 2, 0, 6};
	uint8_t buf[2 * WALFMT_FRAME_SIZE];

	fx_open(f);
	ck_assert_uint_eq(frame_log_head(f->log), 2);
	ck_assert_uint_eq(frame_log_db_size(f->log), 2);
	ck_assert_uint_eq(file_size(f->path), frame_log_offset(3));
	ck_assert_int_eq(frame_log_read(f->log, 3, 4, buf), -EINVAL);
	ck_assert_int_eq(append_txn(f->log, t3, 2, 6, 3), 0);
	ck_assert_uint_eq(frame_log_head(f->log), 4);
	fx_reopen(f);
	ck_assert_uint_eq(frame_log_head(f->log), 4);
	ck_assert_uint_eq(frame_log_db_size(f->log), 6);
	ck_assert_int_eq(frame_log_read(f->log, 1, 2, buf), 0);
	assert_frame(buf, 1, 0, 1);
	ck_assert_int_eq(frame_log_read(f->log, 3, 5, buf), 0);
	assert_frame(buf, 2, 0, 3);
	assert_frame(buf + WALFMT_FRAME_SIZE, 6, 6, 3);
	assert_file_valid(f->path, 4, commits);
}

START_TEST(test_torn_mid_frame)
{
	struct fx f;

	two_txns(&f);
	/* The last commit frame half written. */
	truncate_to(f.path, frame_log_offset(5) + 100);
	assert_recovered_to_first(&f);
	fx_done(&f);
}
END_TEST

START_TEST(test_torn_frame_header_only)
{
	struct fx f;

	two_txns(&f);
	truncate_to(f.path, frame_log_offset(4) + WALFMT_FRAME_HDR_SIZE);
	assert_recovered_to_first(&f);
	fx_done(&f);
}
END_TEST

START_TEST(test_torn_bad_checksum_last_frame)
{
	struct fx f;
	uint8_t b = 0x5a;

	two_txns(&f);
	/* One byte of the commit frame's page differs from its checksum. */
	patch(f.path, frame_log_offset(5) + WALFMT_FRAME_HDR_SIZE + 4000, &b,
	      1);
	assert_recovered_to_first(&f);
	fx_done(&f);
}
END_TEST

START_TEST(test_torn_bad_checksum_mid_txn)
{
	struct fx f;
	uint8_t cksum[4] = {0xde, 0xad, 0xbe, 0xef};

	two_txns(&f);
	/* The first frame of the second transaction is broken: its valid
	 * successors cannot be trusted either. */
	patch(f.path, frame_log_offset(3) + 16, cksum, 4);
	assert_recovered_to_first(&f);
	fx_done(&f);
}
END_TEST

/* Frames with a valid checksum chain but no commit frame: a transaction
 * that was being written when the process died. */
START_TEST(test_torn_uncommitted_tail)
{
	struct fx f;
	const uint32_t t1[] = {1, 2};
	uint8_t hdr[WALFMT_HDR_SIZE], last[WALFMT_FRAME_HDR_SIZE];
	uint8_t frame[WALFMT_FRAME_SIZE];
	struct walfmt_header h;
	uint32_t chain[2];
	int fd, i;

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, t1, 2, 2, 1), 0);
	frame_log_close(f.log);
	f.log = NULL;
	fd = open(f.path, O_RDWR);
	ck_assert_int_eq(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
	ck_assert_int_eq(walfmt_header_decode(hdr, &h), 0);
	ck_assert_int_eq(
	    pread(fd, last, sizeof last, (off_t)frame_log_offset(2)),
	    (ssize_t)sizeof last);
	chain[0] = walfmt_get32(last + 16);
	chain[1] = walfmt_get32(last + 20);
	for (i = 0; i < 3; i++) {
		uint32_t pgno = 3 + (uint32_t)i;
		fill_page(frame + WALFMT_FRAME_HDR_SIZE, pgno, 2);
		walfmt_frame_encode(h.magic & 1, h.salt, chain, pgno, 0,
				    frame + WALFMT_FRAME_HDR_SIZE,
				    WALFMT_PAGE_SIZE, frame);
		ck_assert_int_eq(pwrite(fd, frame, sizeof frame,
					(off_t)frame_log_offset(pgno)),
				 (ssize_t)sizeof frame);
	}
	close(fd);
	/* The crafted frames are well formed: only the missing commit makes
	 * them go. */
	{
		size_t len;
		uint8_t *buf = read_whole(f.path, &len);
		uint32_t c[2] = {h.cksum[0], h.cksum[1]};
		ck_assert_uint_eq(len, frame_log_offset(6));
		for (i = 1; i <= 5; i++)
			ck_assert_int_eq(
			    walfmt_frame_verify(
				h.magic & 1, h.salt, c,
				buf + frame_log_offset((uint32_t)i),
				WALFMT_PAGE_SIZE),
			    0);
		free(buf);
	}
	assert_recovered_to_first(&f);
	fx_done(&f);
}
END_TEST

START_TEST(test_torn_garbage_appended)
{
	struct fx f;
	uint8_t junk[3 * WALFMT_FRAME_SIZE + 77];
	size_t i;

	two_txns(&f);
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	patch(f.path, frame_log_offset(6), junk, sizeof junk);
	fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(frame_log_db_size(f.log), 5);
	ck_assert_uint_eq(file_size(f.path), frame_log_offset(6));
	fx_done(&f);
}
END_TEST

/* Frames of another log (other salts) after ours: not ours, dropped. */
START_TEST(test_torn_foreign_frames)
{
	struct fx f, g;
	const uint32_t t[] = {7, 8};
	uint8_t buf[2 * WALFMT_FRAME_SIZE];

	two_txns(&f);
	fx_init(&g);
	ck_assert_int_eq(append_txn(g.log, t, 2, 8, 4), 0);
	ck_assert_int_eq(frame_log_read(g.log, 1, 3, buf), 0);
	patch(f.path, frame_log_offset(6), buf, sizeof buf);
	fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(file_size(f.path), frame_log_offset(6));
	fx_done(&f);
	fx_done(&g);
}
END_TEST

START_TEST(test_torn_everything)
{
	struct fx f;
	uint8_t b = 1;

	two_txns(&f);
	/* The very first frame is bad: an empty log remains. */
	patch(f.path, frame_log_offset(1) + 30, &b, 1);
	fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(frame_log_db_size(f.log), 0);
	ck_assert_uint_eq(file_size(f.path), WALFMT_HDR_SIZE);
	{
		const uint32_t t[] = {1};
		ck_assert_int_eq(append_txn(f.log, t, 1, 1, 5), 0);
	}
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	fx_done(&f);
}
END_TEST

/* A failing write (here: the file size limit) leaves the head where it was
 * and the file without the partial tail; the log keeps working. */
START_TEST(test_failed_append_rolls_back)
{
	struct fx f;
	const uint32_t t1[] = {1}, t2[] = {2, 3, 4};
	const uint32_t commits[] = {1, 0, 0, 4};
	struct rlimit old, lim;

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, t1, 1, 1, 1), 0);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = frame_log_offset(3) + 100;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(append_txn(f.log, t2, 3, 4, 2), -EFBIG);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	ck_assert_uint_eq(frame_log_db_size(f.log), 1);
	ck_assert_uint_eq(file_size(f.path), frame_log_offset(2));
	ck_assert_int_eq(append_txn(f.log, t2, 3, 4, 3), 0);
	fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 4);
	assert_file_valid(f.path, 4, commits);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* headers */

static void assert_open_fails(const char *path, int create, const char *needle)
{
	struct frame_log *l = NULL;
	char err[512] = "";

	ck_assert_int_ne(frame_log_open(path, create, &l, err, sizeof err), 0);
	ck_assert_msg(strstr(err, path) != NULL, "no path in '%s'", err);
	if (needle != NULL)
		ck_assert_msg(strstr(err, needle) != NULL, "'%s' not in '%s'",
			      needle, err);
}

START_TEST(test_bad_header_refused)
{
	struct fx f;
	const uint32_t t[] = {1, 2};
	uint8_t *orig, hdr[WALFMT_HDR_SIZE];
	size_t len;
	struct walfmt_header h;

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, t, 2, 2, 1), 0);
	frame_log_close(f.log);
	f.log = NULL;
	orig = read_whole(f.path, &len);

	/* A flipped bit in the salt: the header checksum fails. */
	memcpy(hdr, orig, sizeof hdr);
	hdr[17] ^= 0x10;
	patch(f.path, 0, hdr, sizeof hdr);
	assert_open_fails(f.path, 0, "header");
	assert_open_fails(f.path, 1, "header");
	/* The frames are still there: nothing was truncated. */
	ck_assert_uint_eq(file_size(f.path), len);

	/* A valid WAL header, but for 1024-byte pages. */
	ck_assert_int_eq(walfmt_header_decode(orig, &h), 0);
	h.page_size = 1024;
	walfmt_header_encode(&h, hdr);
	patch(f.path, 0, hdr, sizeof hdr);
	assert_open_fails(f.path, 0, "header");

	/* Not a WAL file at all. */
	write_whole(f.path, (const uint8_t *)"SQLite format 3\0 and more bytes",
		    32);
	assert_open_fails(f.path, 0, "header");
	write_whole(f.path,
		    (const uint8_t *)"this is a text file, not a frame log, "
				     "but it is long enough to hold a header",
		    76);
	assert_open_fails(f.path, 1, "header");
	ck_assert_uint_eq(file_size(f.path), 76);

	/* Shorter than a header: truncated. */
	write_whole(f.path, orig, 10);
	assert_open_fails(f.path, 0, "truncated");

	/* The original bytes open again. */
	write_whole(f.path, orig, len);
	fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 2);
	free(orig);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* replay */

/* A database built by SQLite one transaction at a time (rollback journal,
 * so the file itself is the state after each commit); each transaction
 * becomes frames of its changed pages, as the primary logs them. */
struct history {
	int n;            /* transactions */
	uint8_t *img[16]; /* database file after transaction i */
	size_t len[16];
	uint32_t head[16]; /* log head after transaction i */
};

static void history_free(struct history *h)
{
	int i;

	for (i = 0; i < h->n; i++)
		free(h->img[i]);
}

static void log_transaction(struct fx *f, struct history *h,
			    const char *db_path)
{
	const uint8_t *prev = h->n > 0 ? h->img[h->n - 1] : NULL;
	size_t prev_len = h->n > 0 ? h->len[h->n - 1] : 0;
	struct frame_log_entry e[4096];
	size_t len, n = 0, off;
	uint8_t *img = read_whole(db_path, &len);

	ck_assert_uint_eq(len % WALFMT_PAGE_SIZE, 0);
	ck_assert_uint_gt(len, 0);
	for (off = 0; off < len; off += WALFMT_PAGE_SIZE) {
		if (off + WALFMT_PAGE_SIZE <= prev_len &&
		    memcmp(prev + off, img + off, WALFMT_PAGE_SIZE) == 0)
			continue;
		ck_assert_uint_lt(n, 4096);
		e[n].pgno = (uint32_t)(off / WALFMT_PAGE_SIZE) + 1;
		e[n].db_size = 0;
		e[n].page = img + off;
		n++;
	}
	/* SQLite changes page 1 (the change counter) in every commit. */
	ck_assert_uint_gt(n, 0);
	e[n - 1].db_size = (uint32_t)(len / WALFMT_PAGE_SIZE);
	ck_assert_int_eq(frame_log_append(f->log, e, n), 0);
	ck_assert_uint_lt(h->n, 16);
	h->img[h->n] = img;
	h->len[h->n] = len;
	h->head[h->n] = frame_log_head(f->log);
	h->n++;
}

static void build_history(struct fx *f, struct history *h,
			  const char *const *txns, size_t n_txns,
			  const char *setup)
{
	char *db_path = fixture_path(f->dir, "sqlite.db");
	sqlite3 *db;
	size_t i;

	memset(h, 0, sizeof *h);
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	if (setup != NULL)
		ck_assert_int_eq(sqlite3_exec(db, setup, NULL, NULL, NULL),
				 SQLITE_OK);
	for (i = 0; i < n_txns; i++) {
		char *msg = NULL;
		ck_assert_msg(sqlite3_exec(db, txns[i], NULL, NULL, &msg) ==
				  SQLITE_OK,
			      "%s: %s", txns[i], msg ? msg : "");
		log_transaction(f, h, db_path);
	}
	sqlite3_close(db);
	free(db_path);
}

static void assert_integrity_ok(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Replay [1, upto] onto a file holding initial (len bytes) and compare
 * with the expected image. */
static void assert_replay(struct fx *f, uint32_t upto, const uint8_t *initial,
			  size_t initial_len, const uint8_t *want,
			  size_t want_len)
{
	char *out = fixture_path(f->dir, "replayed.db");
	uint8_t *got;
	size_t got_len;
	int fd;

	write_whole(out, initial, initial_len);
	fd = open(out, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(frame_log_replay(f->log, upto, fd), 0);
	close(fd);
	got = read_whole(out, &got_len);
	ck_assert_uint_eq(got_len, want_len);
	ck_assert_msg(memcmp(got, want, want_len) == 0,
		      "replay up to frame %u differs from SQLite's file", upto);
	assert_integrity_ok(out);
	free(got);
	unlink(out);
	free(out);
}

static const char *const workload[] = {
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
    "CREATE INDEX t_v ON t(v)",
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
    "WHERE i < 300) INSERT INTO t(v) SELECT randomblob(300 + i % 700) "
    "FROM c",
    "UPDATE t SET v = randomblob(50) WHERE id % 3 = 0",
    "CREATE TABLE u(x TEXT); INSERT INTO u VALUES ('a'), ('b')",
    "DELETE FROM t WHERE id > 40",
    "VACUUM", /* the file shrinks */
    "INSERT INTO t(v) VALUES (randomblob(20000))",
    "DROP TABLE u",
};

START_TEST(test_replay_matches_sqlite)
{
	struct fx f;
	struct history h;
	size_t n = sizeof workload / sizeof workload[0];
	int i;

	fx_init(&f);
	build_history(&f, &h, workload, n, NULL);
	ck_assert_int_eq(h.n, (int)n);
	/* The VACUUM made the database smaller. */
	ck_assert_uint_lt(h.len[5], h.len[4]);
	/* Every commit point, from the empty base (the first generation's
	 * base is an empty file). */
	for (i = 0; i < h.n; i++)
		assert_replay(&f, h.head[i], NULL, 0, h.img[i], h.len[i]);
	/* From a copy of an older state (the next generation's base is
	 * built this way, and so is the live database at start-up). */
	assert_replay(&f, h.head[h.n - 1], h.img[2], h.len[2], h.img[h.n - 1],
		      h.len[h.n - 1]);
	/* Onto a file that is bigger than the result: cut to size. */
	assert_replay(&f, h.head[5], h.img[4], h.len[4], h.img[5], h.len[5]);
	/* The log survives a reopen and replays the same. */
	fx_reopen(&f);
	assert_replay(&f, h.head[h.n - 1], NULL, 0, h.img[h.n - 1],
		      h.len[h.n - 1]);
	history_free(&h);
	fx_done(&f);
}
END_TEST

/* auto_vacuum=FULL shrinks the file at the commit of a DELETE. */
START_TEST(test_replay_auto_vacuum_shrink)
{
	static const char *const txns[] = {
	    "CREATE TABLE t(x)",
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < 200) INSERT INTO t SELECT randomblob(2000) FROM c",
	    "DELETE FROM t WHERE rowid > 10",
	    "INSERT INTO t VALUES (randomblob(5000))",
	};
	struct fx f;
	struct history h;
	int i;

	fx_init(&f);
	build_history(&f, &h, txns, 4, "PRAGMA auto_vacuum = FULL");
	ck_assert_uint_lt(h.len[2], h.len[1]);
	for (i = 0; i < h.n; i++)
		assert_replay(&f, h.head[i], NULL, 0, h.img[i], h.len[i]);
	ck_assert_uint_eq(frame_log_db_size(f.log),
			  h.len[3] / WALFMT_PAGE_SIZE);
	history_free(&h);
	fx_done(&f);
}
END_TEST

/* The database size of the commit frame decides the length, not the
 * highest page written. */
START_TEST(test_replay_db_size)
{
	struct fx f;
	const uint32_t t1[] = {1, 2, 3, 4}, t2[] = {1}, t3[] = {3};
	uint8_t *img, page[WALFMT_PAGE_SIZE];
	char *out;
	size_t len;
	int fd;

	fx_init(&f);
	ck_assert_int_eq(append_txn(f.log, t1, 4, 4, 1), 0);
	ck_assert_int_eq(append_txn(f.log, t2, 1, 2, 2), 0);
	ck_assert_int_eq(append_txn(f.log, t3, 1, 3, 3), 0);
	out = fixture_path(f.dir, "out.db");

	write_whole(out, NULL, 0);
	fd = open(out, O_RDWR);
	ck_assert_int_eq(frame_log_replay(f.log, 5, fd), 0);
	img = read_whole(out, &len);
	ck_assert_uint_eq(len, 2 * WALFMT_PAGE_SIZE);
	fill_page(page, 1, 2);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	fill_page(page, 2, 1);
	ck_assert_int_eq(memcmp(img + WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE),
			 0);
	free(img);

	/* Up to frame 4: four pages, the first of version 1. */
	ck_assert_int_eq(frame_log_replay(f.log, 4, fd), 0);
	img = read_whole(out, &len);
	ck_assert_uint_eq(len, 4 * WALFMT_PAGE_SIZE);
	fill_page(page, 1, 1);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	fill_page(page, 4, 1);
	ck_assert_int_eq(
	    memcmp(img + 3 * WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE), 0);
	free(img);

	/* Up to frame 6: three pages, page 3 of version 3. */
	ck_assert_int_eq(frame_log_replay(f.log, 6, fd), 0);
	img = read_whole(out, &len);
	ck_assert_uint_eq(len, 3 * WALFMT_PAGE_SIZE);
	fill_page(page, 1, 2);
	ck_assert_int_eq(memcmp(img, page, WALFMT_PAGE_SIZE), 0);
	fill_page(page, 3, 3);
	ck_assert_int_eq(
	    memcmp(img + 2 * WALFMT_PAGE_SIZE, page, WALFMT_PAGE_SIZE), 0);
	free(img);

	/* Only commit frames within the head. */
	ck_assert_int_eq(frame_log_replay(f.log, 0, fd), -EINVAL);
	ck_assert_int_eq(frame_log_replay(f.log, 3, fd), -EINVAL);
	ck_assert_int_eq(frame_log_replay(f.log, 7, fd), -EINVAL);
	/* ... and a refused replay leaves the file alone. */
	ck_assert_uint_eq(file_size(out), 3 * WALFMT_PAGE_SIZE);
	close(fd);
	free(out);
	fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* concurrency: readers on other threads while appending */

struct reader_arg {
	struct frame_log *log;
	_Atomic int stop;
	_Atomic int checked;
	_Atomic int bad;
};

/* Frame i (1-based) of the concurrency test writes page i, version i. */
static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t *buf = malloc(WALFMT_FRAME_SIZE);
	uint8_t page[WALFMT_PAGE_SIZE];

	while (!a->stop) {
		uint32_t head = frame_log_head(a->log), i;
		if (head == 0)
			continue;
		i = head - (uint32_t)(a->checked % (int)head);
		if (frame_log_read(a->log, i, i + 1, buf) != 0) {
			a->bad++;
			continue;
		}
		fill_page(page, i, i);
		if (walfmt_get32(buf) != i ||
		    memcmp(buf + WALFMT_FRAME_HDR_SIZE, page,
			   WALFMT_PAGE_SIZE) != 0)
			a->bad++;
		a->checked++;
	}
	free(buf);
	return NULL;
}

START_TEST(test_concurrent_readers)
{
	struct fx f;
	struct reader_arg a[2];
	pthread_t th[2];
	int k;
	uint8_t page[WALFMT_PAGE_SIZE];
	uint32_t i;

	fx_init(&f);
	memset(a, 0, sizeof a);
	for (k = 0; k < 2; k++) {
		a[k].log = f.log;
		ck_assert_int_eq(pthread_create(&th[k], NULL, reader, &a[k]),
				 0);
	}
	for (i = 1; i <= 200; i++) {
		struct frame_log_entry e = {i, i, page};
		fill_page(page, i, i);
		ck_assert_int_eq(frame_log_append(f.log, &e, 1), 0);
	}
	for (k = 0; k < 2; k++) {
		/* Let each reader see the full log at least once. */
		while (a[k].checked < 10)
			usleep(1000);
		a[k].stop = 1;
		pthread_join(th[k], NULL);
		ck_assert_int_eq(a[k].bad, 0);
		ck_assert_int_gt(a[k].checked, 0);
	}
	ck_assert_uint_eq(frame_log_head(f.log), 200);
	fx_done(&f);
}
END_TEST

static Suite *frame_log_suite(void)
{
	Suite *s = suite_create("frame_log");
	TCase *tc = tcase_create("frame_log");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_and_open_errors);
	tcase_add_test(tc, test_append_and_read);
	tcase_add_test(tc, test_append_refuses_bad_entries);
	tcase_add_test(tc, test_reopen_keeps_everything);
	tcase_add_test(tc, test_torn_mid_frame);
	tcase_add_test(tc, test_torn_frame_header_only);
	tcase_add_test(tc, test_torn_bad_checksum_last_frame);
	tcase_add_test(tc, test_torn_bad_checksum_mid_txn);
	tcase_add_test(tc, test_torn_uncommitted_tail);
	tcase_add_test(tc, test_torn_garbage_appended);
	tcase_add_test(tc, test_torn_foreign_frames);
	tcase_add_test(tc, test_torn_everything);
	tcase_add_test(tc, test_failed_append_rolls_back);
	tcase_add_test(tc, test_bad_header_refused);
	tcase_add_test(tc, test_replay_matches_sqlite);
	tcase_add_test(tc, test_replay_auto_vacuum_shrink);
	tcase_add_test(tc, test_replay_db_size);
	tcase_add_test(tc, test_concurrent_readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(frame_log_suite());
}
