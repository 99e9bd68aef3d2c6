/* The WAL format helpers against files written by SQLite itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fixture.h"
#include "wal/walfmt.h"

START_TEST(test_put_get_roundtrip)
{
	uint8_t b[4];

	walfmt_put32(b, 0x377f0682u);
	ck_assert_uint_eq(b[0], 0x37);
	ck_assert_uint_eq(b[3], 0x82);
	ck_assert_uint_eq(walfmt_get32(b), 0x377f0682u);
}
END_TEST

/* A WAL written by SQLite verifies with our checksum code, frame by frame,
 * and a flipped byte breaks the chain. */
START_TEST(test_verifies_sqlite_wal)
{
	char *dir = fixture_tmpdir();
	char *db_path = fixture_path(dir, "a.db");
	char *wal_path = fixture_path(dir, "a.db-wal");
	struct walfmt_header h;
	uint8_t *buf;
	uint32_t chain[2], frames = 0;
	sqlite3 *db, *reader;
	long size, off;
	FILE *fp;

	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_exec(db,
			 "PRAGMA page_size=4096;"
			 "PRAGMA journal_mode=WAL;"
			 "PRAGMA wal_autocheckpoint=0;"
			 "CREATE TABLE t(x);"
			 "INSERT INTO t VALUES (randomblob(9000));",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	/* Keep the WAL: a second connection stops close from deleting it. */
	ck_assert_int_eq(sqlite3_open(db_path, &reader), SQLITE_OK);
	fp = fopen(wal_path, "rb");
	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)size);
	ck_assert_int_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);

	ck_assert_int_eq(walfmt_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.page_size, 4096);
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	for (off = WALFMT_HDR_SIZE; off + WALFMT_FRAME_SIZE <= size;
	     off += WALFMT_FRAME_SIZE) {
		ck_assert_int_eq(walfmt_frame_verify(h.magic & 1, h.salt, chain,
						     buf + off, 4096),
				 0);
		frames++;
	}
	ck_assert_uint_ge(frames, 3);
	/* Re-encoding a header reproduces SQLite's bytes. */
	{
		uint8_t again[WALFMT_HDR_SIZE];
		struct walfmt_header h2 = h;
		walfmt_header_encode(&h2, again);
		ck_assert_int_eq(memcmp(again, buf, WALFMT_HDR_SIZE), 0);
	}
	/* Corruption is detected. */
	buf[WALFMT_HDR_SIZE + WALFMT_FRAME_HDR_SIZE + 100] ^= 1;
	chain[0] = h.cksum[0];
	chain[1] = h.cksum[1];
	ck_assert_int_eq(walfmt_frame_verify(h.magic & 1, h.salt, chain,
					     buf + WALFMT_HDR_SIZE, 4096),
			 -1);
	buf[0] ^= 0xff;
	ck_assert_int_eq(walfmt_header_decode(buf, &h), -1);

	free(buf);
	sqlite3_close(reader);
	sqlite3_close(db);
	free(db_path);
	free(wal_path);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_db_page_size)
{
	uint8_t hdr[100] = {0};

	hdr[16] = 0x10;
	ck_assert_uint_eq(walfmt_db_page_size(hdr), 4096);
	hdr[16] = 0;
	hdr[17] = 1;
	ck_assert_uint_eq(walfmt_db_page_size(hdr), 65536);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("walfmt");
	TCase *tc = tcase_create("walfmt");

	tcase_add_test(tc, test_put_get_roundtrip);
	tcase_add_test(tc, test_verifies_sqlite_wal);
	tcase_add_test(tc, test_db_page_size);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
