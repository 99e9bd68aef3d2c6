/* The files of an encrypted offline replica that are not pages, sealed with
 * AES-256-GCM (wal/cipher.h cipher_seal): the outbox's page images
 * (sync/outbox.h format 2), the conflict records (sync/conflicts.h) and the
 * rebase plan (sync/rebase_plan.h).  Each round-trips under the key and
 * holds no byte of its content in clear (a control written without a key
 * shows the marker); without the key, or with a plain file given a key, it
 * is refused naming the case; bytes changed behind its back, even with
 * every hash made to match again, are refused as not authenticating, never
 * returned. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "fixture.h"
#include "sync/conflicts.h"
#include "sync/outbox.h"
#include "sync/outbox_internal.h" /* the record layout */
#include "sync/rebase_plan.h"
#include "wal/cipher.h"

#define PAGE 1024
#define MARK "SEALEDMARK"

static struct cipher *make_cipher(const char *passphrase)
{
	uint8_t salt[CIPHER_SALT_SIZE];
	struct cipher_key key;
	struct cipher *c = NULL;
	char err[256] = "";

	memset(salt, 0x42, sizeof salt);
	ck_assert_msg(cipher_key_parse(passphrase, &key, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_msg(cipher_new(&key, salt, &c, err, sizeof err) == 0, "%s",
		      err);
	cipher_key_wipe(&key);
	return c;
}

/* How many times needle occurs in the file at path (0 when missing). */
static int occurrences(const char *path, const char *needle)
{
	size_t len = 0, n = strlen(needle), i;
	int fd = open(path, O_RDONLY), found = 0;
	struct stat st;
	char *text;

	if (fd < 0)
		return 0;
	ck_assert_int_eq(fstat(fd, &st), 0);
	len = (size_t)st.st_size;
	text = malloc(len + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(pread(fd, text, len, 0), (ssize_t)len);
	close(fd);
	for (i = 0; i + n <= len; i++)
		found += memcmp(text + i, needle, n) == 0;
	free(text);
	return found;
}

static void patch(const char *path, uint64_t off, const void *buf, size_t n)
{
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void read_at(const char *path, uint64_t off, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* ---------------------------------------------------------------------- */
/* the outbox */

/* Append one record of two pages whose images are full of the marker, and
 * return its outbox (open). */
static struct outbox *outbox_with_record(const char *db, struct cipher *c,
					 uint8_t *images)
{
	static const uint32_t pgnos[2] = {3, 7};
	struct outbox_record rec = {0};
	struct outbox_entry *e = NULL;
	struct outbox *o;
	uint64_t end = 0;
	char err[512] = "";
	size_t n = 0, i;

	for (i = 0; i < 4 * PAGE; i += strlen(MARK))
		memcpy(images + i, MARK,
		       strlen(MARK) < 4 * PAGE - i ? strlen(MARK)
						   : 4 * PAGE - i);
	images[5] = 'x'; /* new and old images differ */
	memset(rec.id, 9, sizeof rec.id);
	rec.n = 2;
	rec.pgnos = pgnos;
	rec.new_pages = images;
	rec.old_pages = images + 2 * PAGE;
	rec.db_size = rec.old_db_size = 8;
	ck_assert_msg(outbox_open(db, PAGE, c, &o, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_int_eq(
	    outbox_scan(o, OUTBOX_HEADER_SIZE, &e, &n, &end, err, sizeof err),
	    0);
	ck_assert_msg(outbox_append(o, &rec, &end, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_int_eq(outbox_sync(o, err, sizeof err), 0);
	free(e);
	return o;
}

/* The one record of the outbox at db, read back whole: 0, or -1 with err. */
static int read_only_record(const char *db, const struct cipher *c,
			    uint8_t *images, char *err, size_t err_len)
{
	struct outbox_entry *e = NULL;
	uint8_t *np = NULL, *op = NULL;
	uint32_t *pg = NULL;
	struct outbox *o;
	uint64_t end = 0;
	size_t n = 0;
	int rv;

	if (outbox_open(db, PAGE, c, &o, err, err_len) != 0)
		return -1;
	ck_assert_int_eq(
	    outbox_scan(o, OUTBOX_HEADER_SIZE, &e, &n, &end, err, err_len), 0);
	ck_assert_uint_eq(n, 1);
	rv = outbox_read(o, &e[0], &pg, &np, &op, err, err_len);
	if (rv == 0) {
		ck_assert_uint_eq(pg[0], 3);
		ck_assert_uint_eq(pg[1], 7);
		ck_assert_mem_eq(np, images, 2 * PAGE);
		ck_assert_mem_eq(op, images + 2 * PAGE, 2 * PAGE);
	}
	free(pg);
	free(np);
	free(op);
	free(e);
	outbox_close(o);
	return rv;
}

START_TEST(test_outbox_sealed)
{
	char *dir = fixture_tmpdir(), *plain_dir = fixture_tmpdir();
	char *db = fixture_path(dir, "app.db");
	char *plain_db = fixture_path(plain_dir, "app.db");
	char *path = outbox_path(db), *plain_path = outbox_path(plain_db);
	struct cipher *c = make_cipher("outbox key"), *other;
	uint8_t *images = malloc(4 * PAGE), h[OUTBOX_RECORD_HEADER_SIZE];
	uint64_t body = OUTBOX_RECORD_HEADER_SIZE + 8, len;
	uint8_t flip;
	char err[512] = "";

	/* The control: a plain outbox holds the images in clear. */
	outbox_close(outbox_with_record(plain_db, NULL, images));
	ck_assert_int_gt(occurrences(plain_path, MARK), 0);

	outbox_close(outbox_with_record(db, c, images));
	ck_assert_int_eq(occurrences(path, MARK), 0);
	ck_assert_msg(read_only_record(db, c, images, err, sizeof err) == 0,
		      "%s", err);

	/* Without the key, and a plain outbox given one. */
	ck_assert_int_eq(read_only_record(db, NULL, images, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "is encrypted"));
	ck_assert_int_eq(read_only_record(plain_db, c, images, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "holds pages in clear"));

	/* Another key (the replica's key file would refuse it first). */
	other = make_cipher("another key");
	ck_assert_int_eq(read_only_record(db, other, images, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "do not authenticate"));
	cipher_free(other);

	/* One bit of the sealed images changed, and the body hash and the
	 * header hash made to match again (a deliberate change, not a torn
	 * write): refused, the images never handed out. */
	read_at(path, OUTBOX_HEADER_SIZE, h, sizeof h);
	len = walfmt_get32(h + 4);
	ck_assert_uint_eq(len, outbox_record_length(2, PAGE, 1));
	read_at(path, OUTBOX_HEADER_SIZE + body + 100, &flip, 1);
	flip ^= 1;
	patch(path, OUTBOX_HEADER_SIZE + body + 100, &flip, 1);
	{
		uint8_t *rest = malloc(len - OUTBOX_RECORD_HEADER_SIZE);
		read_at(path, OUTBOX_HEADER_SIZE + OUTBOX_RECORD_HEADER_SIZE,
			rest, len - OUTBOX_RECORD_HEADER_SIZE);
		outbox_put64(
		    h + 64, XXH3_64bits(rest, len - OUTBOX_RECORD_HEADER_SIZE));
		outbox_put64(h + OUTBOX_RECORD_HASHED,
			     XXH3_64bits(h, OUTBOX_RECORD_HASHED));
		patch(path, OUTBOX_HEADER_SIZE, h, sizeof h);
		free(rest);
	}
	ck_assert_int_eq(read_only_record(db, c, images, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "do not authenticate"));

	cipher_free(c);
	free(images);
	free(path);
	free(plain_path);
	free(db);
	free(plain_db);
	fixture_rmdir(dir);
	fixture_rmdir(plain_dir);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* the conflict records and the rebase plan */

static void add_conflicts(const char *db, const struct cipher *c)
{
	json_t *r =
	    json_pack("[{s:s, s:s}, {s:s, s:s}]", "txn", "a1", "replica",
		      MARK " one", "txn", "b2", "replica", MARK " two");
	char err[512] = "";

	ck_assert_msg(conflicts_append(db, c, r, err, sizeof err) == 0, "%s",
		      err);
	json_decref(r);
}

START_TEST(test_conflicts_sealed)
{
	char *dir = fixture_tmpdir();
	char *db = fixture_path(dir, "app.db");
	char *plain = fixture_path(dir, "plain.db");
	char *path = fixture_path(dir, "app.db" CONFLICTS_SUFFIX);
	char *plain_path = fixture_path(dir, "plain.db" CONFLICTS_SUFFIX);
	struct cipher *c = make_cipher("conflicts key");
	char err[512] = "", *text, *s;
	json_t *ids;
	uint64_t n = 0;

	add_conflicts(plain, NULL);
	ck_assert_int_eq(occurrences(plain_path, MARK), 2);

	add_conflicts(db, c);
	add_conflicts(db, c);
	ck_assert_int_eq(occurrences(path, MARK), 0);
	text = conflicts_read_json(db, c, err, sizeof err);
	ck_assert_msg(text != NULL, "%s", err);
	ck_assert_str_eq(text,
			 "[{\"txn\":\"a1\",\"replica\":\"" MARK " one\"},"
			 "{\"txn\":\"b2\",\"replica\":\"" MARK " two\"},"
			 "{\"txn\":\"a1\",\"replica\":\"" MARK " one\"},"
			 "{\"txn\":\"b2\",\"replica\":\"" MARK " two\"}]");
	free(text);
	ck_assert_int_eq(conflicts_count(db, c, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 4);
	ids = conflicts_txn_ids(db, c, err, sizeof err);
	ck_assert_ptr_nonnull(ids);
	ck_assert_uint_eq(json_object_size(ids), 2);
	json_decref(ids);

	/* A torn last line is skipped, as in a plain file. */
	{
		int fd = open(path, O_WRONLY | O_APPEND);
		ck_assert_int_eq(write(fd, "{\"sealed\":\"AAAA", 15), 15);
		close(fd);
	}
	ck_assert_int_eq(conflicts_count(db, c, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 4);

	/* Without the key; a plain file given one. */
	ck_assert_ptr_null(conflicts_read_json(db, NULL, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "is encrypted"));
	ck_assert_int_eq(conflicts_count(plain, c, &n, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "in clear"));

	/* A sealed record changed: refused, not skipped. */
	text = malloc(64);
	read_at(path, 20, text, 1);
	text[0] = text[0] == 'A' ? 'B' : 'A';
	patch(path, 20, text, 1);
	free(text);
	s = conflicts_read_json(db, c, err, sizeof err);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(err, "does not authenticate"));

	cipher_free(c);
	free(path);
	free(plain_path);
	free(plain);
	free(db);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_rebase_plan_sealed)
{
	char *dir = fixture_tmpdir();
	char *db = fixture_path(dir, "app.db");
	char *plain = fixture_path(dir, "plain.db");
	char *path = rebase_plan_path(db),
	     *plain_path = rebase_plan_path(plain);
	struct cipher *c = make_cipher("plan key");
	json_t *entries = json_pack(
	    "[{s:s, s:I, s:[s]}, {s:s, s:I, s:[]}]", "id",
	    "00112233445566778899aabbccddeeff", "committed_unix_ms",
	    (json_int_t)1700000000000, "changes", MARK " change", "id",
	    "ffeeddccbbaa99887766554433221100", "committed_unix_ms",
	    (json_int_t)1700000000001, "changes");
	json_t *got = NULL;
	char err[512] = "", byte;
	struct stat st;

	ck_assert_int_eq(
	    rebase_plan_write(plain, NULL, entries, err, sizeof err), 0);
	ck_assert_int_eq(occurrences(plain_path, MARK), 1);

	ck_assert_msg(rebase_plan_write(db, c, entries, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(occurrences(path, MARK), 0);
	ck_assert_msg(rebase_plan_read(db, c, &got, err, sizeof err) == 0, "%s",
		      err);
	ck_assert(json_equal(got, entries));
	json_decref(got);
	/* The count is in the header line, readable without the key. */
	ck_assert_uint_eq(rebase_plan_count(db), 2);

	ck_assert_int_eq(rebase_plan_read(db, NULL, &got, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "is encrypted"));
	ck_assert_int_eq(rebase_plan_read(plain, c, &got, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "in clear"));

	/* A byte of the sealed line changed. */
	ck_assert_int_eq(stat(path, &st), 0);
	read_at(path, (uint64_t)st.st_size - 10, &byte, 1);
	byte = byte == 'A' ? 'B' : 'A';
	patch(path, (uint64_t)st.st_size - 10, &byte, 1);
	ck_assert_int_eq(rebase_plan_read(db, c, &got, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "do not authenticate"));

	json_decref(entries);
	cipher_free(c);
	free(path);
	free(plain_path);
	free(plain);
	free(db);
	fixture_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sealed_files");
	TCase *tc = tcase_create("sealed_files");

	tcase_add_test(tc, test_outbox_sealed);
	tcase_add_test(tc, test_conflicts_sealed);
	tcase_add_test(tc, test_rebase_plan_sealed);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
