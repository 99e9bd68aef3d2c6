/* The replica state file's container (sync/state_file.h): versions in
 * rotating checksummed slots, the old bare-JSON format, torn and lost
 * writes, and the rule that keeps one of two consecutive versions durable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "sync/replica_state.h"
#include "sync/state_file.h"

struct fx {
	char *dir;
	char *path;
};

static void fx_init(struct fx *f)
{
	f->dir = fixture_tmpdir();
	f->path = fixture_path(f->dir, "app.db-replite");
}

static void fx_done(struct fx *f)
{
	free(f->path);
	fixture_rmdir(f->dir);
}

static void write_version(struct fx *f, int n, int durable)
{
	char text[64];

	snprintf(text, sizeof text, "{\"version\":%d}", n);
	ck_assert_int_eq(state_file_write(f->path, text, strlen(text), durable),
			 0);
}

/* The version number in the newest valid text, or -errno. */
static int read_version(struct fx *f)
{
	char *text;
	size_t len;
	int rv, v = -1;

	rv = state_file_read(f->path, &text, &len);
	if (rv != 0)
		return rv;
	ck_assert_int_eq(sscanf(text, "{\"version\":%d}", &v), 1);
	ck_assert_uint_eq(strlen(text), len);
	free(text);
	return v;
}

static off_t file_size(struct fx *f)
{
	struct stat st;

	ck_assert_int_eq(stat(f->path, &st), 0);
	return st.st_size;
}

/* The slot of the version numbered seq (each save is numbered one past the
 * newest valid version; the first, which creates the file, is 1). */
static long slot_offset(int seq)
{
	return (long)(seq % STATE_FILE_SLOTS) * STATE_FILE_SLOT_SIZE;
}

/* Overwrite len bytes at off, as a torn or damaged write would. */
static void damage(struct fx *f, long off, size_t len)
{
	FILE *fp = fopen(f->path, "r+b");
	size_t i;

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, off, SEEK_SET), 0);
	for (i = 0; i < len; i++)
		fputc(0xA5, fp);
	fclose(fp);
}

static uint32_t slot_flags(struct fx *f, int seq)
{
	FILE *fp = fopen(f->path, "rb");
	uint8_t b[4];

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, slot_offset(seq) + 20, SEEK_SET), 0);
	ck_assert_int_eq(fread(b, 1, 4, fp), 4);
	fclose(fp);
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

START_TEST(test_versions_rotate_in_place)
{
	struct fx f;
	ino_t ino;
	struct stat st;
	int i;

	fx_init(&f);
	ck_assert_int_eq(read_version(&f), -ENOENT);
	write_version(&f, 1, 1);
	ck_assert_int_eq(stat(f.path, &st), 0);
	ino = st.st_ino;
	for (i = 2; i <= 10; i++) {
		write_version(&f, i, i % 2);
		ck_assert_int_eq(read_version(&f), i);
	}
	/* Overwritten in place: the same file, the same size. */
	ck_assert_int_eq(stat(f.path, &st), 0);
	ck_assert_uint_eq(st.st_ino, ino);
	ck_assert_int_eq(file_size(&f),
			 STATE_FILE_SLOTS * STATE_FILE_SLOT_SIZE);
	fx_done(&f);
}
END_TEST

/* A file of the old format (bare JSON) is read as it is, and replaced by
 * the container at the next save. */
START_TEST(test_old_format_converted)
{
	struct fx f;
	FILE *fp;

	fx_init(&f);
	fp = fopen(f.path, "w");
	fputs("{\"version\":7}", fp);
	fclose(fp);
	ck_assert_int_eq(read_version(&f), 7);
	write_version(&f, 8, 1);
	ck_assert_int_eq(read_version(&f), 8);
	ck_assert_int_eq(file_size(&f),
			 STATE_FILE_SLOTS * STATE_FILE_SLOT_SIZE);
	fx_done(&f);
}
END_TEST

/* A torn newest version (a crash while it was written) leaves the one
 * before it. */
START_TEST(test_torn_write_keeps_previous)
{
	struct fx f;

	fx_init(&f);
	write_version(&f, 1, 1);
	write_version(&f, 2, 1);
	write_version(&f, 3, 1);
	damage(&f, slot_offset(3) + STATE_FILE_HEADER_SIZE + 3, 2);
	ck_assert_int_eq(read_version(&f), 2);
	/* The next save takes the torn one's place (it follows version 2)
	 * and is read; torn in its header instead, even the slot's magic,
	 * it leaves version 2 again. */
	write_version(&f, 4, 1);
	ck_assert_int_eq(read_version(&f), 4);
	damage(&f, slot_offset(3), 8);
	ck_assert_int_eq(read_version(&f), 2);
	fx_done(&f);
}
END_TEST

/* Two unsynced saves in a row: the second is made durable anyway, so a
 * power loss that tears the next write and loses an unsynced version still
 * finds a durable one intact. */
START_TEST(test_unsynced_then_durable)
{
	struct fx f;

	fx_init(&f);
	write_version(&f, 1, 1);
	ck_assert_uint_eq(slot_flags(&f, 1), 1);
	write_version(&f, 2, 0);
	ck_assert_uint_eq(slot_flags(&f, 2), 0);
	write_version(&f, 3, 0); /* after an unsynced one: durable */
	ck_assert_uint_eq(slot_flags(&f, 3), 1);
	write_version(&f, 4, 0);
	ck_assert_uint_eq(slot_flags(&f, 4), 0);
	/* The power loss: version 5 torn, 4 (unsynced) lost. */
	write_version(&f, 5, 1);
	damage(&f, slot_offset(5) + 10, 4);
	damage(&f, slot_offset(4) + STATE_FILE_HEADER_SIZE, 1);
	ck_assert_int_eq(read_version(&f), 3);
	fx_done(&f);
}
END_TEST

START_TEST(test_all_damaged)
{
	struct fx f;
	struct replica_state st;
	char err[512] = "";
	int i;

	fx_init(&f);
	for (i = 1; i <= 3; i++)
		write_version(&f, i, 1);
	for (i = 1; i <= 3; i++)
		damage(&f, slot_offset(i) + 30, 4);
	ck_assert_int_eq(read_version(&f), -EBADMSG);
	ck_assert_int_eq(replica_state_load(f.path, &st, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "no valid version"));
	ck_assert_ptr_nonnull(strstr(err, f.path));
	fx_done(&f);
}
END_TEST

START_TEST(test_too_long)
{
	struct fx f;
	char *text = malloc(STATE_FILE_MAX_TEXT + 2);

	fx_init(&f);
	memset(text, ' ', STATE_FILE_MAX_TEXT + 1);
	text[STATE_FILE_MAX_TEXT + 1] = '\0';
	ck_assert_int_eq(
	    state_file_write(f.path, text, STATE_FILE_MAX_TEXT + 1, 1), -E2BIG);
	ck_assert_int_eq(state_file_write(f.path, text, STATE_FILE_MAX_TEXT, 1),
			 0);
	free(text);
	fx_done(&f);
}
END_TEST

/* Every save changes the stamp, however close together (a modification
 * time may not), and so does a save that takes a torn one's place under
 * the same seq. */
START_TEST(test_stamp_names_one_version)
{
	struct state_file_stamp a, b;
	struct fx f;
	int i;

	fx_init(&f);
	ck_assert_int_eq(state_file_stamp(f.path, &a), -ENOENT);
	write_version(&f, 1, 1);
	ck_assert_int_eq(state_file_stamp(f.path, &a), 0);
	for (i = 2; i < 50; i++) {
		write_version(&f, i, 0);
		ck_assert_int_eq(state_file_stamp(f.path, &b), 0);
		ck_assert(memcmp(&a, &b, sizeof a) != 0);
		a = b;
	}
	ck_assert_int_eq(state_file_stamp(f.path, &b), 0);
	ck_assert(memcmp(&a, &b, sizeof a) == 0);
	/* Version 50 (seq 50) torn; 51 is written as seq 50 again. */
	write_version(&f, 50, 1);
	damage(&f, slot_offset(50) + STATE_FILE_HEADER_SIZE, 2);
	ck_assert_int_eq(state_file_stamp(f.path, &a), 0);
	write_version(&f, 51, 1);
	ck_assert_int_eq(read_version(&f), 51);
	ck_assert_int_eq(state_file_stamp(f.path, &b), 0);
	ck_assert(memcmp(&a, &b, sizeof a) != 0);
	fx_done(&f);
}
END_TEST

static Suite *state_file_suite(void)
{
	Suite *s = suite_create("state_file");
	TCase *tc = tcase_create("state_file");

	tcase_add_test(tc, test_versions_rotate_in_place);
	tcase_add_test(tc, test_old_format_converted);
	tcase_add_test(tc, test_torn_write_keeps_previous);
	tcase_add_test(tc, test_unsynced_then_durable);
	tcase_add_test(tc, test_all_damaged);
	tcase_add_test(tc, test_too_long);
	tcase_add_test(tc, test_stamp_names_one_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return fixture_run(state_file_suite());
}
