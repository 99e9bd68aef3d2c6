/* The offline replica's outbox (sync/outbox.h): records appended, scanned
 * and read back; torn tails found and replaced; damaged headers refused;
 * and the conflict records (sync/conflicts.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fixture.h"
#include "sync/conflicts.h"
#include "sync/outbox.h"
#include "sync/outbox_internal.h" /* OUTBOX_GROW */

#define PAGE 512

/* A test's directory, database path and open outbox. */
struct fx {
	char *dir;
	char *db;
	char *path; /* of the outbox */
	struct outbox *o;
};

static void fx_open(struct fx *f)
{
	char err[512] = "";

	f->dir = fixture_tmpdir();
	f->db = fixture_path(f->dir, "app.db");
	f->path = outbox_path(f->db);
	ck_assert_msg(outbox_open(f->db, PAGE, NULL, &f->o, err, sizeof err) ==
			  0,
		      "%s", err);
}

/* Open the outbox again (as another process would). */
static void fx_reopen(struct fx *f)
{
	char err[512] = "";

	outbox_close(f->o);
	ck_assert_msg(outbox_open(f->db, PAGE, NULL, &f->o, err, sizeof err) ==
			  0,
		      "%s", err);
}

static void fx_close(struct fx *f)
{
	outbox_close(f->o);
	free(f->path);
	free(f->db);
	fixture_rmdir(f->dir);
}

/* A record and the buffers it points into. */
struct rec_buf {
	struct outbox_record r;
	uint32_t pgnos[16];
	uint8_t new_pages[16 * PAGE];
	uint8_t old_pages[16 * PAGE];
};

/* Bytes of the images of record k: distinct for each page, new and old. */
#define FILL(k, pgno, old, i) ((uint8_t)((k)*31 + (pgno)*7 + (old)*101 + (i)))

/* Record k: n pages from first_pgno on (every other page). */
static void make_record(struct rec_buf *b, int k, uint32_t n,
			uint32_t first_pgno)
{
	uint32_t i;
	size_t j;

	memset(b, 0, sizeof *b);
	ck_assert_uint_le(n, 16);
	for (i = 0; i < 16; i++)
		b->r.id[i] = (uint8_t)(k * 16 + i);
	for (i = 0; i < n; i++) {
		b->pgnos[i] = first_pgno + 2 * i;
		for (j = 0; j < PAGE; j++) {
			b->new_pages[i * PAGE + j] = FILL(k, b->pgnos[i], 0, j);
			b->old_pages[i * PAGE + j] = FILL(k, b->pgnos[i], 1, j);
		}
	}
	b->r.n = n;
	b->r.pgnos = b->pgnos;
	b->r.new_pages = b->new_pages;
	b->r.old_pages = b->old_pages;
	b->r.db_size = 100 + (uint32_t)k;
	b->r.old_db_size = 90 + (uint32_t)k;
	b->r.has_sums = k % 2;
	b->r.base = 0x0123456789abcdefULL * (uint64_t)(k + 1);
	b->r.result = 0xfedcba9876543210ULL ^ (uint64_t)k;
	b->r.commit_unix_ms = k == 1 ? -5 : 1700000000000LL + k;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void read_header(const char *path, uint8_t h[32])
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_eq(pread(fd, h, 32, 0), 32);
	close(fd);
}

/* Every byte of path in [from, to) is zero. */
static void check_zeros(const char *path, uint64_t from, uint64_t to)
{
	uint8_t buf[4096];
	int fd = open(path, O_RDONLY);
	uint64_t off;

	ck_assert_int_ge(fd, 0);
	for (off = from; off < to; off += sizeof buf) {
		size_t len =
		    to - off < sizeof buf ? (size_t)(to - off) : sizeof buf;
		size_t i;
		ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
		for (i = 0; i < len; i++)
			ck_assert_msg(buf[i] == 0, "byte %llu is %u",
				      (unsigned long long)(off + i), buf[i]);
	}
	close(fd);
}

static void write_raw(const char *path, const void *buf, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void append(struct fx *f, const struct rec_buf *b, uint64_t *at)
{
	char err[512] = "";

	ck_assert_msg(outbox_append(f->o, &b->r, at, err, sizeof err) == 0,
		      "%s", err);
}

/* Scan from offset from, expecting n entries. */
static struct outbox_entry *scan(struct fx *f, uint64_t from, size_t want,
				 uint64_t *valid_end)
{
	struct outbox_entry *e = NULL;
	char err[512] = "";
	size_t n = 99;

	ck_assert_msg(
	    outbox_scan(f->o, from, &e, &n, valid_end, err, sizeof err) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, want);
	if (n == 0)
		ck_assert_ptr_null(e);
	return e;
}

/* The three records of most tests: 1, 3 and 2 pages. */
static void append_three(struct fx *f, struct rec_buf b[3], uint64_t *at)
{
	make_record(&b[0], 0, 1, 1);
	make_record(&b[1], 1, 3, 5);
	make_record(&b[2], 2, 2, 2);
	*at = OUTBOX_HEADER_SIZE;
	append(f, &b[0], at);
	append(f, &b[1], at);
	append(f, &b[2], at);
}

static void check_entry(const struct outbox_entry *e,
			const struct outbox_record *r)
{
	ck_assert_mem_eq(e->id, r->id, 16);
	ck_assert_uint_eq(e->n, r->n);
	ck_assert_uint_eq(e->db_size, r->db_size);
	ck_assert_uint_eq(e->old_db_size, r->old_db_size);
	ck_assert_int_eq(e->has_sums, r->has_sums);
	ck_assert_uint_eq(e->base, r->base);
	ck_assert_uint_eq(e->result, r->result);
	ck_assert_int_eq(e->commit_unix_ms, r->commit_unix_ms);
	ck_assert_uint_eq(e->length, 96 + 4 * r->n + 2 * r->n * PAGE);
}

static void check_body(struct fx *f, const struct outbox_entry *e,
		       const struct outbox_record *r)
{
	uint32_t *pgnos = NULL;
	uint8_t *np = NULL, *op = NULL;
	char err[512] = "";

	ck_assert_msg(outbox_read(f->o, e, &pgnos, &np, &op, err, sizeof err) ==
			  0,
		      "%s", err);
	ck_assert_mem_eq(pgnos, r->pgnos, 4 * r->n);
	ck_assert_mem_eq(np, r->new_pages, r->n * PAGE);
	ck_assert_mem_eq(op, r->old_pages, r->n * PAGE);
	free(pgnos);
	free(np);
	free(op);
}

START_TEST(test_append_scan_read)
{
	struct fx f;
	struct rec_buf b[3];
	struct outbox_entry *e;
	uint8_t h[32];
	uint64_t at, end;
	char hex[33];
	int i;

	fx_open(&f);

	ck_assert_str_eq(strrchr(f.path, '/'), "/app.db-replite-outbox");
	/* A new file: the header only. */
	ck_assert_uint_eq(file_size(f.path), 32);
	read_header(f.path, h);
	ck_assert_mem_eq(h, "replite outbox\0\0", 16);
	ck_assert_mem_eq(h + 16, "\0\0\0\1\0\0\2\0\0\0\0\0", 12);
	scan(&f, 32, 0, &end);
	ck_assert_uint_eq(end, 32);

	append_three(&f, b, &at);
	/* The file grew ahead of the records, with zeros. */
	ck_assert_uint_ge(file_size(f.path), 32 + OUTBOX_GROW);
	ck_assert_uint_eq(file_size(f.path) % 4096, 0);
	check_zeros(f.path, at, file_size(f.path));
	e = scan(&f, 32, 3, &end);
	ck_assert_uint_eq(end, at);
	ck_assert_uint_eq(e[0].offset, 32);
	for (i = 0; i < 3; i++) {
		check_entry(&e[i], &b[i].r);
		if (i > 0)
			ck_assert_uint_eq(e[i].offset,
					  e[i - 1].offset + e[i - 1].length);
		check_body(&f, &e[i], &b[i].r);
	}
	outbox_id_hex(e[1].id, hex);
	ck_assert_str_eq(hex, "101112131415161718191a1b1c1d1e1f");
	free(e);

	/* Another handle sees the same records. */
	fx_reopen(&f);
	e = scan(&f, 32, 3, &end);
	check_body(&f, &e[1], &b[1].r);
	free(e);
	fx_close(&f);
}
END_TEST

START_TEST(test_scan_from)
{
	struct fx f;
	struct rec_buf b[3];
	struct outbox_entry *e, *later;
	uint64_t at, end, end2;

	fx_open(&f);
	append_three(&f, b, &at);
	e = scan(&f, 32, 3, &end);
	later = scan(&f, e[1].offset, 2, &end2);
	ck_assert_uint_eq(end2, end);
	check_entry(&later[0], &b[1].r);
	check_entry(&later[1], &b[2].r);
	ck_assert_uint_eq(later[0].offset, e[1].offset);
	free(later);
	/* From the end: nothing more. */
	scan(&f, end, 0, &end2);
	ck_assert_uint_eq(end2, end);
	free(e);
	fx_close(&f);
}
END_TEST

/* The ways the last record can be torn. */
enum { TORN_CUT, TORN_HEADER_CUT, TORN_BODY, TORN_HEADER };

START_TEST(test_torn_tail)
{
	struct fx f;
	struct rec_buf b[3], more;
	struct outbox_entry *e;
	uint64_t at, end, torn;

	fx_open(&f);
	append_three(&f, b, &at);
	e = scan(&f, 32, 3, &end);
	torn = e[2].offset;
	switch (_i) {
	case TORN_CUT: /* in the middle of the body */
		ck_assert_int_eq(truncate(f.path, (off_t)(torn + 500)), 0);
		break;
	case TORN_HEADER_CUT: /* in the middle of the header */
		ck_assert_int_eq(truncate(f.path, (off_t)(torn + 40)), 0);
		break;
	case TORN_BODY: /* an old image's last byte */
		flip_byte(f.path, end - 1);
		break;
	case TORN_HEADER: /* the db_size */
		flip_byte(f.path, torn + 30);
		break;
	}
	free(e);
	e = scan(&f, 32, 2, &end);
	ck_assert_uint_eq(end, torn);
	check_entry(&e[0], &b[0].r);
	check_entry(&e[1], &b[1].r);
	free(e);

	/* A smaller record replaces the torn one: what is left of the torn
	 * one after it is no record. */
	make_record(&more, 7, 1, 9);
	append(&f, &more, &end);
	ck_assert_uint_eq(end, torn + 96 + 4 + 2 * PAGE);
	e = scan(&f, 32, 3, &at);
	ck_assert_uint_eq(at, end);
	check_entry(&e[2], &more.r);
	check_body(&f, &e[2], &more.r);
	check_body(&f, &e[1], &b[1].r);
	free(e);
	fx_close(&f);
}
END_TEST

START_TEST(test_corrupt_middle)
{
	struct fx f;
	struct rec_buf b[3];
	struct outbox_entry *e;
	uint32_t *pgnos = NULL;
	uint8_t *np = NULL, *op = NULL;
	uint64_t at, end;
	char err[512] = "", off[32];

	fx_open(&f);
	append_three(&f, b, &at);
	e = scan(&f, 32, 3, &end);
	/* A new image of the second record. */
	flip_byte(f.path, e[1].offset + 96 + 12 + PAGE + 3);
	free(e);
	/* Only the tail's body is checked by a scan. */
	e = scan(&f, 32, 3, &end);
	ck_assert_uint_eq(end, at);
	ck_assert_int_eq(
	    outbox_read(f.o, &e[1], &pgnos, &np, &op, err, sizeof err), -1);
	ck_assert_ptr_null(pgnos);
	ck_assert_ptr_nonnull(strstr(err, "corrupt"));
	ck_assert_ptr_nonnull(strstr(err, f.path));
	snprintf(off, sizeof off, "%llu", (unsigned long long)e[1].offset);
	ck_assert_ptr_nonnull(strstr(err, off));
	check_body(&f, &e[0], &b[0].r);
	check_body(&f, &e[2], &b[2].r);
	free(e);
	fx_close(&f);
}
END_TEST

START_TEST(test_truncate)
{
	struct fx f;
	struct rec_buf b[3], again;
	struct outbox_entry *e;
	uint64_t at, end, second;
	char err[512] = "";

	fx_open(&f);
	append_three(&f, b, &at);
	e = scan(&f, 32, 3, &end);
	second = e[1].offset;
	free(e);
	ck_assert_msg(outbox_truncate(f.o, second, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_eq(file_size(f.path), second);
	e = scan(&f, 32, 1, &end);
	ck_assert_uint_eq(end, second);
	check_entry(&e[0], &b[0].r);
	free(e);
	/* Emptied: the records are gone, the file keeps its blocks. */
	append(&f, &b[1], &end);
	append(&f, &b[2], &end);
	ck_assert_int_eq(outbox_truncate(f.o, 32, err, sizeof err), 0);
	ck_assert_uint_gt(file_size(f.path), end);
	scan(&f, 32, 0, &end);
	ck_assert_uint_eq(end, 32);
	/* A record of the same length as the first lands at 32, so the old
	 * second record's header follows it where a record would: it is of
	 * the salt before the emptying, and stays gone, in this handle and
	 * in another. */
	make_record(&again, 9, 1, 1);
	end = 32;
	append(&f, &again, &end);
	ck_assert_uint_eq(end, second);
	e = scan(&f, 32, 1, &end);
	check_entry(&e[0], &again.r);
	free(e);
	fx_reopen(&f);
	e = scan(&f, 32, 1, &end);
	ck_assert_uint_eq(end, second);
	free(e);
	ck_assert_int_eq(outbox_sync(f.o, err, sizeof err), 0);
	fx_close(&f);
}
END_TEST

/* Offsets outside the records and invalid records change nothing. */
START_TEST(test_refused)
{
	struct fx f;
	struct rec_buf b;
	struct outbox_entry *e;
	uint64_t at = 32, end;
	char err[512] = "";
	size_t n;

	fx_open(&f);
	make_record(&b, 0, 1, 1);
	append(&f, &b, &at);
	ck_assert_int_eq(outbox_scan(f.o, 31, &e, &n, &end, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, f.path));
	ck_assert_int_eq(outbox_scan(f.o, file_size(f.path) + 1, &e, &n, &end,
				     err, sizeof err),
			 -1);
	ck_assert_int_eq(outbox_truncate(f.o, 31, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, f.path));
	ck_assert_int_eq(
	    outbox_truncate(f.o, file_size(f.path) + 1, err, sizeof err), -1);
	ck_assert_int_eq(outbox_truncate(f.o, 32, err, sizeof err), 0);

	at = 32;
	make_record(&b, 0, 3, 4);
	b.pgnos[1] = 4; /* not ascending */
	ck_assert_int_eq(outbox_append(f.o, &b.r, &at, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "ascending"));
	b.pgnos[0] = 0;
	b.pgnos[1] = 1;
	ck_assert_int_eq(outbox_append(f.o, &b.r, &at, err, sizeof err), -1);
	make_record(&b, 0, 3, 4);
	b.r.n = 0;
	ck_assert_int_eq(outbox_append(f.o, &b.r, &at, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "at least one page"));
	/* The file is shorter than the caller thinks: not a hole. */
	b.r.n = 3;
	end = file_size(f.path);
	at = end + 1;
	ck_assert_int_eq(outbox_append(f.o, &b.r, &at, err, sizeof err), -1);
	ck_assert_uint_eq(at, end + 1);
	ck_assert_uint_eq(file_size(f.path), end);
	fx_close(&f);
}
END_TEST

START_TEST(test_open_errors)
{
	struct fx f;
	struct outbox *o = NULL;
	char err[512] = "";
	uint8_t h[32];

	fx_open(&f);
	read_header(f.path, h);
	/* Another page size. */
	ck_assert_int_eq(outbox_open(f.db, 1024, NULL, &o, err, sizeof err),
			 -1);
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(err, f.path));
	ck_assert_ptr_nonnull(strstr(err, "512"));
	ck_assert_ptr_nonnull(strstr(err, "1024"));
	/* Not a page size at all. */
	ck_assert_int_eq(outbox_open(f.db, 1000, NULL, &o, err, sizeof err),
			 -1);

	/* Garbage. */
	write_raw(f.path, "this is no outbox file, really!!", 32, O_TRUNC);
	err[0] = '\0';
	ck_assert_int_eq(outbox_open(f.db, PAGE, NULL, &o, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, f.path));
	ck_assert_ptr_nonnull(strstr(err, "not an outbox file"));

	/* A valid header with one byte changed: its hash fails. */
	h[21] ^= 1;
	write_raw(f.path, h, 32, O_TRUNC);
	ck_assert_int_eq(outbox_open(f.db, PAGE, NULL, &o, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "not an outbox file"));
	h[21] ^= 1;

	/* Shorter than a header: repaired when a prefix of ours (a creation
	 * a crash cut short), refused otherwise. */
	write_raw(f.path, "replite out", 11, O_TRUNC);
	ck_assert_msg(outbox_open(f.db, PAGE, NULL, &o, err, sizeof err) == 0,
		      "%s", err);
	outbox_close(o);
	o = NULL;
	ck_assert_uint_eq(file_size(f.path), 32);
	write_raw(f.path, "replite in", 10, O_TRUNC);
	ck_assert_int_eq(outbox_open(f.db, PAGE, NULL, &o, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, f.path));

	/* The original header opens again. */
	write_raw(f.path, h, 32, O_TRUNC);
	fx_reopen(&f);
	fx_close(&f);
}
END_TEST

static void add_conflict(const char *db, int k)
{
	json_t *r = json_pack("{s:i, s:s, s:s}", "k", k, "table", "t", "note",
			      "line\nbreak");
	char err[512] = "";

	ck_assert_msg(conflicts_append(db, NULL, r, err, sizeof err) == 0, "%s",
		      err);
	json_decref(r);
}

/* The records read back, as text and counted. */
static void check_conflicts(const char *db, const char *want, uint64_t count)
{
	char err[512] = "";
	char *text = conflicts_read_json(db, NULL, err, sizeof err);
	uint64_t n = 99;

	ck_assert_msg(text != NULL, "%s", err);
	ck_assert_str_eq(text, want);
	free(text);
	ck_assert_msg(conflicts_count(db, NULL, &n, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_eq(n, count);
}

#define C(k) "{\"k\":" #k ",\"table\":\"t\",\"note\":\"line\\nbreak\"}"

START_TEST(test_conflicts)
{
	char *dir = fixture_tmpdir();
	char *db = fixture_path(dir, "app.db");
	char *path = fixture_path(dir, "app.db" CONFLICTS_SUFFIX);
	char err[512] = "";
	json_t *r;

	/* Missing. */
	check_conflicts(db, "[]", 0);
	ck_assert_int_eq(conflicts_clear(db, err, sizeof err), 0);

	add_conflict(db, 1);
	add_conflict(db, 2);
	check_conflicts(db, "[" C(1) "," C(2) "]", 2);

	/* A torn last line, as a crash mid-append leaves it. */
	write_raw(path, "{\"k\":3,\"tab", 11, O_APPEND);
	check_conflicts(db, "[" C(1) "," C(2) "]", 2);
	/* The next record is on a line of its own. */
	add_conflict(db, 4);
	check_conflicts(db, "[" C(1) "," C(2) "," C(4) "]", 3);

	/* Only objects. */
	r = json_integer(5);
	ck_assert_int_eq(conflicts_append(db, NULL, r, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	json_decref(r);

	ck_assert_msg(conflicts_clear(db, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(file_size(path), 0);
	check_conflicts(db, "[]", 0);
	free(path);
	free(db);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("outbox");

	tcase_add_test(tc, test_append_scan_read);
	tcase_add_test(tc, test_scan_from);
	tcase_add_loop_test(tc, test_torn_tail, TORN_CUT, TORN_HEADER + 1);
	tcase_add_test(tc, test_corrupt_middle);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_conflicts);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
