/* The frame log's recovery at open: a torn tail (a frame cut short, a bad
 * checksum, an uncommitted transaction, garbage or another log's frames
 * after ours, nothing valid at all) is cut back to the last commit, a
 * failed append leaves no partial tail, and a damaged or foreign header is
 * refused without touching the file.  See test_frame_log.c for appends,
 * reads and replay. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fixture.h"
#include "frame_log_helpers.h"
#include "server/frame_log.h"
#include "wal/walfmt.h"

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

/* ---------------------------------------------------------------------- */
/* torn tails */

/* Two transactions: frames 1-2 (commit, db 2) and 3-5 (commit, db 5). */
static void two_txns(struct flh_fx *f)
{
	const uint32_t t1[] = {1, 2}, t2[] = {3, 4, 5};

	flh_fx_init(f);
	ck_assert_int_eq(flh_append_txn(f->log, t1, 2, 2, 1), 0);
	ck_assert_int_eq(flh_append_txn(f->log, t2, 3, 5, 2), 0);
	frame_log_close(f->log);
	f->log = NULL;
}

/* After the damage: the head is back at frame 2, the file cut there, and
 * the log takes appends that survive another reopen. */
static void assert_recovered_to_first(struct flh_fx *f)
{
	const uint32_t t3[] = {2, 6};
	const uint32_t commits[] = {0, 2, 0, 6};
	uint8_t buf[2 * WALFMT_FRAME_SIZE];

	flh_fx_open(f);
	ck_assert_uint_eq(frame_log_head(f->log), 2);
	ck_assert_uint_eq(frame_log_db_size(f->log), 2);
	ck_assert_uint_eq(flh_file_size(f->path), frame_log_offset(3));
	ck_assert_int_eq(frame_log_read(f->log, 3, 4, buf), -EINVAL);
	ck_assert_int_eq(flh_append_txn(f->log, t3, 2, 6, 3), 0);
	ck_assert_uint_eq(frame_log_head(f->log), 4);
	flh_fx_reopen(f);
	ck_assert_uint_eq(frame_log_head(f->log), 4);
	ck_assert_uint_eq(frame_log_db_size(f->log), 6);
	ck_assert_int_eq(frame_log_read(f->log, 1, 2, buf), 0);
	flh_assert_frame(buf, 1, 0, 1);
	ck_assert_int_eq(frame_log_read(f->log, 3, 5, buf), 0);
	flh_assert_frame(buf, 2, 0, 3);
	flh_assert_frame(buf + WALFMT_FRAME_SIZE, 6, 6, 3);
	flh_assert_file_valid(f->path, 4, commits);
}

START_TEST(test_torn_mid_frame)
{
	struct flh_fx f;

	two_txns(&f);
	/* The last commit frame half written. */
	truncate_to(f.path, frame_log_offset(5) + 100);
	assert_recovered_to_first(&f);
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_torn_frame_header_only)
{
	struct flh_fx f;

	two_txns(&f);
	truncate_to(f.path, frame_log_offset(4) + WALFMT_FRAME_HDR_SIZE);
	assert_recovered_to_first(&f);
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_torn_bad_checksum_last_frame)
{
	struct flh_fx f;
	uint8_t b = 0x5a;

	two_txns(&f);
	/* One byte of the commit frame's page differs from its checksum. */
	patch(f.path, frame_log_offset(5) + WALFMT_FRAME_HDR_SIZE + 4000, &b,
	      1);
	assert_recovered_to_first(&f);
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_torn_bad_checksum_mid_txn)
{
	struct flh_fx f;
	uint8_t cksum[4] = {0xde, 0xad, 0xbe, 0xef};

	two_txns(&f);
	/* The first frame of the second transaction is broken: its valid
	 * successors cannot be trusted either. */
	patch(f.path, frame_log_offset(3) + 16, cksum, 4);
	assert_recovered_to_first(&f);
	flh_fx_done(&f);
}
END_TEST

/* Frames with a valid checksum chain but no commit frame: a transaction
 * that was being written when the process died. */
START_TEST(test_torn_uncommitted_tail)
{
	struct flh_fx f;
	const uint32_t t1[] = {1, 2};
	uint8_t hdr[WALFMT_HDR_SIZE], last[WALFMT_FRAME_HDR_SIZE];
	uint8_t frame[WALFMT_FRAME_SIZE];
	struct walfmt_header h;
	uint32_t chain[2];
	int fd, i;

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, t1, 2, 2, 1), 0);
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
		flh_fill_page(frame + WALFMT_FRAME_HDR_SIZE, pgno, 2);
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
		uint8_t *buf = flh_read_whole(f.path, &len);
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
	flh_fx_done(&f);
}
END_TEST

START_TEST(test_torn_garbage_appended)
{
	struct flh_fx f;
	uint8_t junk[3 * WALFMT_FRAME_SIZE + 77];
	size_t i;

	two_txns(&f);
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	patch(f.path, frame_log_offset(6), junk, sizeof junk);
	flh_fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(frame_log_db_size(f.log), 5);
	ck_assert_uint_eq(flh_file_size(f.path), frame_log_offset(6));
	flh_fx_done(&f);
}
END_TEST

/* Frames of another log (other salts) after ours: not ours, dropped. */
START_TEST(test_torn_foreign_frames)
{
	struct flh_fx f, g;
	const uint32_t t[] = {7, 8};
	uint8_t buf[2 * WALFMT_FRAME_SIZE];

	two_txns(&f);
	flh_fx_init(&g);
	ck_assert_int_eq(flh_append_txn(g.log, t, 2, 8, 4), 0);
	ck_assert_int_eq(frame_log_read(g.log, 1, 3, buf), 0);
	patch(f.path, frame_log_offset(6), buf, sizeof buf);
	flh_fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 5);
	ck_assert_uint_eq(flh_file_size(f.path), frame_log_offset(6));
	flh_fx_done(&f);
	flh_fx_done(&g);
}
END_TEST

START_TEST(test_torn_everything)
{
	struct flh_fx f;
	uint8_t b = 1;

	two_txns(&f);
	/* The very first frame is bad: an empty log remains. */
	patch(f.path, frame_log_offset(1) + 30, &b, 1);
	flh_fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 0);
	ck_assert_uint_eq(frame_log_db_size(f.log), 0);
	ck_assert_uint_eq(flh_file_size(f.path), WALFMT_HDR_SIZE);
	{
		const uint32_t t[] = {1};
		ck_assert_int_eq(flh_append_txn(f.log, t, 1, 1, 5), 0);
	}
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	flh_fx_done(&f);
}
END_TEST

/* A failing write (here: the file size limit) leaves the head where it was
 * and the file without the partial tail; the log keeps working. */
START_TEST(test_failed_append_rolls_back)
{
	struct flh_fx f;
	const uint32_t t1[] = {1}, t2[] = {2, 3, 4};
	const uint32_t commits[] = {1, 0, 0, 4};
	struct rlimit old, lim;

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, t1, 1, 1, 1), 0);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = frame_log_offset(3) + 100;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(flh_append_txn(f.log, t2, 3, 4, 2), -EFBIG);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_uint_eq(frame_log_head(f.log), 1);
	ck_assert_uint_eq(frame_log_db_size(f.log), 1);
	ck_assert_uint_eq(flh_file_size(f.path), frame_log_offset(2));
	ck_assert_int_eq(flh_append_txn(f.log, t2, 3, 4, 3), 0);
	flh_fx_reopen(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 4);
	flh_assert_file_valid(f.path, 4, commits);
	flh_fx_done(&f);
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
	struct flh_fx f;
	const uint32_t t[] = {1, 2};
	uint8_t *orig, hdr[WALFMT_HDR_SIZE];
	size_t len;
	struct walfmt_header h;

	flh_fx_init(&f);
	ck_assert_int_eq(flh_append_txn(f.log, t, 2, 2, 1), 0);
	frame_log_close(f.log);
	f.log = NULL;
	orig = flh_read_whole(f.path, &len);

	/* A flipped bit in the salt: the header checksum fails. */
	memcpy(hdr, orig, sizeof hdr);
	hdr[17] ^= 0x10;
	patch(f.path, 0, hdr, sizeof hdr);
	assert_open_fails(f.path, 0, "header");
	assert_open_fails(f.path, 1, "header");
	/* The frames are still there: nothing was truncated. */
	ck_assert_uint_eq(flh_file_size(f.path), len);

	/* A valid WAL header, but for 1024-byte pages. */
	ck_assert_int_eq(walfmt_header_decode(orig, &h), 0);
	h.page_size = 1024;
	walfmt_header_encode(&h, hdr);
	patch(f.path, 0, hdr, sizeof hdr);
	assert_open_fails(f.path, 0, "header");

	/* Not a WAL file at all. */
	flh_write_whole(
	    f.path, (const uint8_t *)"SQLite format 3\0 and more bytes", 32);
	assert_open_fails(f.path, 0, "header");
	flh_write_whole(
	    f.path,
	    (const uint8_t *)"this is a text file, not a frame log, "
			     "but it is long enough to hold a header",
	    76);
	assert_open_fails(f.path, 1, "header");
	ck_assert_uint_eq(flh_file_size(f.path), 76);

	/* Shorter than a header: truncated. */
	flh_write_whole(f.path, orig, 10);
	assert_open_fails(f.path, 0, "truncated");

	/* The original bytes open again. */
	flh_write_whole(f.path, orig, len);
	flh_fx_open(&f);
	ck_assert_uint_eq(frame_log_head(f.log), 2);
	free(orig);
	flh_fx_done(&f);
}
END_TEST

static Suite *frame_log_recovery_suite(void)
{
	Suite *s = suite_create("frame_log_recovery");
	TCase *tc = tcase_create("frame_log_recovery");

	tcase_set_timeout(tc, 60);
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
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(frame_log_recovery_suite());
}
